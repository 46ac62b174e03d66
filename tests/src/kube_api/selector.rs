//! Label and field selectors as the API server parses and applies them
//! (k8s.io/apimachinery `pkg/labels/selector.go`, `pkg/fields/selector.go`).

use serde_json::Value;

use super::resource::Resource;

/// One label-selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelOp {
    Exists,
    NotExists,
    In(Vec<String>),
    NotIn(Vec<String>),
    Gt(i64),
    Lt(i64),
}

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<(String, LabelOp)>);

/// A parsed `fieldSelector`: `(field, value, equal)` terms, every one must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, String, bool)>);

/// The message of the 400 the API server answers to a selector it rejects.
pub(crate) type SelectorError = String;

impl LabelSelector {
    /// Parses `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`,
    /// joined by commas.
    pub(crate) fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let mut out = Vec::new();
        for term in split_outside_parens(text) {
            let term = term.trim();
            if term.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(format!("unable to parse requirement: empty requirement in {text:?}"));
            }
            out.push(parse_requirement(term)?);
        }
        Ok(LabelSelector(out))
    }

    /// Whether `labels` (the object's `metadata.labels`) satisfies every requirement.
    pub(crate) fn matches(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|(key, op)| match (op, get(key)) {
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::NotExists, v) => v.is_none(),
            (LabelOp::In(set), Some(v)) => set.iter().any(|s| s == v),
            (LabelOp::In(_), None) => false,
            (LabelOp::NotIn(set), v) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            (LabelOp::Gt(n), v) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
            (LabelOp::Lt(n), v) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
        })
    }
}

/// Splits on commas that are not inside `( … )`.
fn split_outside_parens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn parse_requirement(term: &str) -> Result<(String, LabelOp), SelectorError> {
    let bad = |why: &str| format!("unable to parse requirement: {why}: {term:?}");
    if let Some(key) = term.strip_prefix('!') {
        return Ok((valid_key(key.trim()).map_err(|e| bad(&e))?, LabelOp::NotExists));
    }
    for (word, negate) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(word) {
            let set = set
                .trim()
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| bad("expected a parenthesised set of values"))?;
            let values = set
                .split(',')
                .map(|v| valid_value(v.trim()).map_err(|e| bad(&e)))
                .collect::<Result<Vec<_>, _>>()?;
            let key = valid_key(key.trim()).map_err(|e| bad(&e))?;
            return Ok((
                key,
                if negate {
                    LabelOp::NotIn(values)
                } else {
                    LabelOp::In(values)
                },
            ));
        }
    }
    for op in ["!=", "==", "=", ">", "<"] {
        if let Some((key, value)) = term.split_once(op) {
            let key = valid_key(key.trim()).map_err(|e| bad(&e))?;
            let value = valid_value(value.trim()).map_err(|e| bad(&e))?;
            let number = || value.parse::<i64>().map_err(|_| bad("expected an integer"));
            let op = match op {
                "!=" => LabelOp::NotIn(vec![value]),
                ">" => LabelOp::Gt(number()?),
                "<" => LabelOp::Lt(number()?),
                _ => LabelOp::In(vec![value]),
            };
            return Ok((key, op));
        }
    }
    Ok((valid_key(term).map_err(|e| bad(&e))?, LabelOp::Exists))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn valid_key(key: &str) -> Result<String, String> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || prefix.len() > 253
                || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
            {
                return Err(format!("invalid label key prefix {prefix:?}"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        return Err("empty label key".to_owned());
    }
    valid_value(name).map(|_| key.to_owned())
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric, or empty.
fn valid_value(value: &str) -> Result<String, String> {
    let edge_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if value.len() > 63
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || !edge_ok(value.chars().next())
        || !edge_ok(value.chars().last())
    {
        return Err(format!("invalid label value {value:?}"));
    }
    Ok(value.to_owned())
}

impl FieldSelector {
    /// Parses `field=value`, `field==value`, `field!=value` joined by commas; `\,`, `\=`, `\!`
    /// and `\\` escape those characters in values. Fields other than `metadata.name`,
    /// `metadata.namespace` and the resource's selectable fields are rejected as the real
    /// server does.
    pub(crate) fn parse(text: &str, resource: Resource) -> Result<FieldSelector, SelectorError> {
        let mut out = Vec::new();
        for term in split_unescaped(text, ',')? {
            if term.is_empty() && text.is_empty() {
                continue;
            }
            let (field, value, equal) =
                split_term(&term).ok_or_else(|| format!("invalid selector: '{text}'; can't understand '{term}'"))?;
            if !matches!(field.as_str(), "metadata.name" | "metadata.namespace")
                && !resource.selectable_fields().contains(&field.as_str())
            {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field, value, equal));
        }
        Ok(FieldSelector(out))
    }

    /// Whether `object` satisfies every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0
            .iter()
            .all(|(field, value, equal)| (field_value(object, field) == *value) == *equal)
    }
}

/// Splits `text` on unescaped `sep`, keeping escapes (they are resolved per value).
fn split_unescaped(text: &str, sep: char) -> Result<Vec<String>, SelectorError> {
    let mut out = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars
                    .next()
                    .ok_or_else(|| format!("invalid selector: '{text}'; trailing backslash"))?;
                let last = out.last_mut().expect("never empty");
                last.push('\\');
                last.push(next);
            }
            c if c == sep => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    Ok(out)
}

/// Splits one term at its first unescaped operator and unescapes the value.
fn split_term(term: &str) -> Option<(String, String, bool)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'!' if bytes.get(i + 1) == Some(&b'=') => return Some(term_parts(term, i, 2, false)),
            b'=' if bytes.get(i + 1) == Some(&b'=') => return Some(term_parts(term, i, 2, true)),
            b'=' => return Some(term_parts(term, i, 1, true)),
            _ => i += 1,
        }
    }
    None
}

fn term_parts(term: &str, at: usize, len: usize, equal: bool) -> (String, String, bool) {
    let mut value = String::new();
    let mut chars = term[at + len..].chars();
    while let Some(c) = chars.next() {
        value.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
    }
    (term[..at].trim().to_owned(), value, equal)
}

/// The string value of a selectable field: strings as they are, booleans as `true`/`false`
/// (absent booleans are `false`, as the Go zero value), anything absent is `""`.
fn field_value(object: &Value, field: &str) -> String {
    let value = field.split('.').try_fold(object, |v, key| v.get(key));
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ if matches!(field, "spec.hostNetwork" | "spec.unschedulable") => "false".to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn label_selectors_match_as_kubernetes_does() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5", "app.kubernetes.io/name": "x"}));
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "app",
            "!missing",
            "app in (web,db)",
            "app notin (db)",
            "missing notin (db)",
            "app=web,tier=front",
            "app in (web, db),tier",
            "n>4",
            "n<6",
            "app.kubernetes.io/name=x",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "!app",
            "missing",
            "app in (db)",
            "app notin (web,db)",
            "n>5",
            "app=web,tier=back",
            "missing in (x)",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(Some(&l)), "{s}");
        }
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
    }

    #[test]
    fn hostile_label_selectors_are_rejected() {
        for s in [
            "app=web,",
            ",app",
            "app in web",
            "app in (web",
            "=web",
            "app=we b",
            "app=-web",
            "n>x",
            "a/b/c=d",
            "/x=y",
            "app=(web)",
            &format!("app={}", "a".repeat(64)),
        ] {
            assert!(LabelSelector::parse(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn field_selectors_match_and_reject_unsupported_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let ok = |s: &str| FieldSelector::parse(s, Resource::Pods).unwrap().matches(&pod);
        assert!(ok(""));
        assert!(ok("spec.nodeName=n1"));
        assert!(ok("spec.nodeName==n1,metadata.namespace=ns"));
        assert!(ok("spec.nodeName!=n2"));
        assert!(ok("spec.hostNetwork=false"));
        assert!(ok("status.podIP="));
        assert!(!ok("spec.nodeName="));
        assert!(!ok("metadata.name=p,status.phase!=Running"));
        let unscheduled = json!({"metadata": {"name": "p"}});
        assert!(
            FieldSelector::parse("spec.nodeName=", Resource::Pods)
                .unwrap()
                .matches(&unscheduled)
        );

        assert_eq!(
            FieldSelector::parse("spec.nodeName=n1", Resource::Services).unwrap_err(),
            "field label not supported: spec.nodeName"
        );
        assert!(FieldSelector::parse("metadata.name=a", Resource::Ingresses).is_ok());
        for s in ["spec.nodeName", "spec.nodeName=a,", "=x", "spec.nodeName=a\\"] {
            assert!(FieldSelector::parse(s, Resource::Pods).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn field_selector_values_unescape() {
        let obj = json!({"metadata": {"name": "a,b=c"}});
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c", Resource::Nodes).unwrap();
        assert!(sel.matches(&obj));
    }
}
