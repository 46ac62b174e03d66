//! Label sets, as Prometheus `model/labels/labels.go`: name/value pairs sorted by name, names
//! unique. [`Labels`] is the owned set; relabeling edits one in place.
//!
//! A set is shared copy-on-write: cloning it is a reference count, and the first edit of a
//! shared set copies it. Discovery hands the same target groups to the discoverer, the scrape
//! pool and the targets API, which would otherwise each hold a copy of every `__meta_*` label.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";
/// The label that holds a target's `host:port`.
pub const ADDRESS: &str = "__address__";
/// The label that holds a target's scheme (`http` or `https`).
pub const SCHEME: &str = "__scheme__";
/// The label that holds a target's metrics path.
pub const METRICS_PATH: &str = "__metrics_path__";
/// The label that holds a target's scrape interval (Prometheus duration).
pub const SCRAPE_INTERVAL: &str = "__scrape_interval__";
/// The label that holds a target's scrape timeout (Prometheus duration).
pub const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
/// Prefix of labels that become URL parameters of a target (`__param_<name>`).
pub const PARAM_PREFIX: &str = "__param_";
/// Labels starting with `__` are internal and removed after target relabeling.
pub const RESERVED_PREFIX: &str = "__";
/// The job label.
pub const JOB: &str = "job";
/// The instance label.
pub const INSTANCE: &str = "instance";

/// One label: a name and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name, e.g. `instance`.
    pub name: String,
    /// Label value; an empty value is the same as an absent label.
    pub value: String,
}

/// A set of labels sorted by name with unique names, as Prometheus `labels.Labels`. Clones
/// share the labels until one of them is edited; `None` is the empty set without allocating.
#[derive(Clone, Default)]
pub struct Labels(Option<Arc<Vec<Label>>>);

impl Labels {
    /// An empty label set.
    pub const fn new() -> Self {
        Labels(None)
    }

    /// The labels in name order, as a slice.
    pub fn as_slice(&self) -> &[Label] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The labels for editing, copied first when another clone shares them.
    fn labels_mut(&mut self) -> &mut Vec<Label> {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default))
    }

    /// Builds a set from pairs in any order; a later pair wins over an earlier one of the same
    /// name, and pairs with an empty value are left out (Prometheus treats them as absent).
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut labels = Labels::new();
        for (name, value) in pairs {
            labels.set(name.into(), value.into());
        }
        labels
    }

    /// The value of `name`, or `""` when absent (as Prometheus `Labels.Get`).
    pub fn get(&self, name: &str) -> &str {
        match self.position(name) {
            Ok(i) => &self.as_slice()[i].value,
            Err(_) => "",
        }
    }

    /// Whether a label named `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets `name` to `value`, keeping the order; an empty value removes the label.
    pub fn set(&mut self, name: String, value: String) {
        if value.is_empty() {
            self.remove(&name);
            return;
        }
        match self.position(&name) {
            Ok(i) if self.as_slice()[i].value == value => {}
            Ok(i) => self.labels_mut()[i].value = value,
            Err(i) => self.labels_mut().insert(i, Label { name, value }),
        }
    }

    /// Removes `name`; returns its value if it was present.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name).ok()?;
        Some(self.labels_mut().remove(i).value)
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) {
        if !self.is_empty() {
            self.labels_mut().retain(|l| keep(l));
        }
    }

    /// The labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.as_slice().iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The metric name (`__name__`), or `""`.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.as_slice().binary_search_by(|l| l.name.as_str().cmp(name))
    }
}

// Equality, order and hash are those of the label slice, so an empty set is the same however
// it was made (never allocated, or emptied by edits).
impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels").field(&self.as_slice()).finish()
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for Labels {
    /// Formats as Prometheus does: `{a="1", b="2"}` with Go-style escapes in values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_deduplicated_and_empty_values_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("c"), "");
        assert!(!l.contains("c"));
    }

    #[test]
    fn set_and_remove_keep_order() {
        let mut l = Labels::from_pairs([("z", "1"), ("a", "1")]);
        l.set("m".into(), "x".into());
        assert_eq!(l.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["a", "m", "z"]);
        l.set("m".into(), String::new());
        assert_eq!(l.len(), 2);
        assert_eq!(l.remove("a").as_deref(), Some("1"));
        assert_eq!(l.remove("a"), None);
    }

    #[test]
    fn clones_share_until_one_is_edited() {
        let original = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let mut copy = original.clone();
        assert!(std::ptr::eq(original.as_slice(), copy.as_slice()));
        copy.set("a".into(), "1".into());
        assert!(
            std::ptr::eq(original.as_slice(), copy.as_slice()),
            "an equal value copies nothing"
        );
        copy.set("b".into(), "3".into());
        copy.remove("a");
        assert_eq!(original.to_string(), r#"{a="1", b="2"}"#);
        assert_eq!(copy.to_string(), r#"{b="3"}"#);
        let mut kept = original.clone();
        kept.retain(|l| l.name == "b");
        assert_eq!(original.len(), 2);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn an_emptied_set_equals_a_new_one() {
        use std::hash::BuildHasher;
        let mut emptied = Labels::from_pairs([("a", "1")]);
        emptied.remove("a");
        assert_eq!(emptied, Labels::new());
        assert_eq!(emptied.cmp(&Labels::default()), Ordering::Equal);
        let hasher = std::collections::hash_map::RandomState::new();
        assert_eq!(hasher.hash_one(&emptied), hasher.hash_one(Labels::new()));
        assert!(Labels::new() < Labels::from_pairs([("a", "1")]));
        assert_eq!(
            format!("{:?}", Labels::from_pairs([("a", "1")])),
            r#"Labels([Label { name: "a", value: "1" }])"#
        );
    }

    #[test]
    fn names_are_validated_like_prometheus() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name(""));
        assert!(is_valid_metric_name("job:rate5m"));
        assert!(!is_valid_metric_name("a-b"));
    }
}
