//! Checks on each series' label set (tenant names are checked by
//! [`crate::tenants::validate_tenant`]).
//!
//! A series must have labels sorted by name with unique names (remote write 1.0 spec), a
//! `__name__`, and names valid under Prometheus's legacy rules (`model/labels` `IsValid`:
//! label names `[a-zA-Z_][a-zA-Z0-9_]*`, metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`). Labels with an
//! empty value are dropped first, as Prometheus's head does on append (`lset.WithoutEmpty()`):
//! in the Prometheus data model an empty value is the same as no label. Thanos instead refuses
//! such series; dropping them stores what the sender meant.

use std::fmt;

use trawl_model::labels::{METRIC_NAME, is_valid_label_name, is_valid_metric_name};

/// Longest label text quoted in an error message, in bytes; hostile values can be megabytes.
const MAX_QUOTED_BYTES: usize = 512;

/// Why one series' labels are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError<'a> {
    /// A label has an empty name and a non-empty value.
    #[error("empty label name")]
    EmptyName,
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {:?}", Clipped(.0))]
    InvalidName(&'a str),
    /// `__name__` outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {:?}", Clipped(.0))]
    InvalidMetricName(&'a str),
    /// `name` comes after a label whose name sorts later.
    #[error("labels not sorted by name: {:?} after {:?}", Clipped(.name), Clipped(.previous))]
    NotSorted {
        /// The earlier label's name.
        previous: &'a str,
        /// The name out of order.
        name: &'a str,
    },
    /// The same name twice.
    #[error("duplicate label name {:?}", Clipped(.0))]
    Duplicate(&'a str),
    /// No `__name__` label (or only an empty one).
    #[error("no __name__ label")]
    MissingMetricName,
}

/// Drops labels with empty values from the end of `labels` starting at `start` (the series just
/// decoded into a shared buffer), keeping the others in order.
pub(crate) fn drop_empty_values(labels: &mut Vec<(&str, &str)>, start: usize) {
    let mut kept = start;
    for i in start..labels.len() {
        if !labels[i].1.is_empty() {
            labels[kept] = labels[i];
            kept += 1;
        }
    }
    labels.truncate(kept);
}

/// Checks one series' labels (empty values already dropped).
///
/// # Errors
/// The first problem found, in label order.
pub fn validate_labels<'a>(labels: &[(&'a str, &'a str)]) -> Result<(), LabelError<'a>> {
    let mut has_metric_name = false;
    let mut previous: Option<&str> = None;
    for &(name, value) in labels {
        if name.is_empty() {
            return Err(LabelError::EmptyName);
        }
        if let Some(previous) = previous {
            match name.cmp(previous) {
                std::cmp::Ordering::Less => return Err(LabelError::NotSorted { previous, name }),
                std::cmp::Ordering::Equal => return Err(LabelError::Duplicate(name)),
                std::cmp::Ordering::Greater => {}
            }
        }
        if name == METRIC_NAME {
            if !is_valid_metric_name(value) {
                return Err(LabelError::InvalidMetricName(value));
            }
            has_metric_name = true;
        } else if !is_valid_label_name(name) {
            return Err(LabelError::InvalidName(name));
        }
        previous = Some(name);
    }
    if has_metric_name {
        Ok(())
    } else {
        Err(LabelError::MissingMetricName)
    }
}

/// Writes a label set as Prometheus prints it, `{a="1", b="2"}`, clipping long text so an error
/// message stays short.
pub(crate) struct LabelSet<'l, 'a>(pub &'l [(&'a str, &'a str)]);

impl fmt::Display for LabelSet<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if i == 32 {
                return write!(f, "… {} more}}", self.0.len() - i);
            }
            write!(f, "{}={:?}", Clipped(name), Clipped(value))?;
        }
        f.write_str("}")
    }
}

/// Text cut to [`MAX_QUOTED_BYTES`] at a character boundary, with `…` when cut.
struct Clipped<'s>(&'s str);

impl Clipped<'_> {
    /// The kept text and whether anything was cut.
    fn parts(&self) -> (&str, bool) {
        let cut = self.0.floor_char_boundary(MAX_QUOTED_BYTES);
        (&self.0[..cut], cut < self.0.len())
    }
}

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = self.parts();
        f.write_str(text)?;
        if cut { f.write_str("…") } else { Ok(()) }
    }
}

impl fmt::Debug for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = self.parts();
        fmt::Debug::fmt(text, f)?;
        if cut { f.write_str("…") } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_series_passes() {
        let labels = [("__name__", "up"), ("instance", "a:1"), ("job", "node")];
        assert_eq!(validate_labels(&labels), Ok(()));
        // Names that sort before __name__ (upper case) are fine too.
        assert_eq!(validate_labels(&[("Zone", "x"), ("__name__", "ns:up_total")]), Ok(()));
    }

    #[test]
    fn each_rule_is_enforced() {
        let cases: [(&[(&str, &str)], LabelError<'_>); 7] = [
            (&[("__name__", "up"), ("", "x")], LabelError::EmptyName),
            (
                &[("__name__", "up"), ("job", "a"), ("instance", "b")],
                LabelError::NotSorted {
                    previous: "job",
                    name: "instance",
                },
            ),
            (
                &[("__name__", "up"), ("job", "a"), ("job", "b")],
                LabelError::Duplicate("job"),
            ),
            (
                &[("__name__", "up"), ("job-name", "a")],
                LabelError::InvalidName("job-name"),
            ),
            (&[("1abc", "a"), ("__name__", "up")], LabelError::InvalidName("1abc")),
            (
                &[("__name__", "http.requests")],
                LabelError::InvalidMetricName("http.requests"),
            ),
            (&[("job", "a")], LabelError::MissingMetricName),
        ];
        for (labels, expected) in cases {
            assert_eq!(validate_labels(labels), Err(expected), "{labels:?}");
        }
        assert_eq!(validate_labels(&[]), Err(LabelError::MissingMetricName));
    }

    #[test]
    fn empty_values_are_dropped_only_after_start() {
        let mut labels = vec![("keep", ""), ("__name__", "up"), ("a", ""), ("job", "x"), ("z", "")];
        drop_empty_values(&mut labels, 1);
        assert_eq!(labels, [("keep", ""), ("__name__", "up"), ("job", "x")]);
        // An empty __name__ is no __name__.
        let mut labels = vec![("__name__", ""), ("job", "x")];
        drop_empty_values(&mut labels, 0);
        assert_eq!(validate_labels(&labels), Err(LabelError::MissingMetricName));
    }

    #[test]
    fn messages_clip_hostile_text() {
        let huge = "v".repeat(100_000);
        let labels = [("__name__", "up"), ("a", huge.as_str())];
        let shown = LabelSet(&labels).to_string();
        assert!(shown.len() < 2 * MAX_QUOTED_BYTES, "{}", shown.len());
        assert!(shown.starts_with(r#"{__name__="up", a="vvv"#) && shown.ends_with("…}"));
        let error = LabelError::InvalidName(huge.as_str()).to_string();
        assert!(error.len() < 2 * MAX_QUOTED_BYTES);
        let many: Vec<(&str, &str)> = (0..40).map(|_| ("a", "b")).collect();
        assert!(LabelSet(&many).to_string().ends_with("… 8 more}"));
        // Cutting never splits a character.
        let wide = "é".repeat(1000);
        assert!(format!("{:?}", Clipped(&wide)).ends_with("\"…"));
    }
}
