//! Regular expressions for plugin configs, anchored like Prometheus's (feature `regex`).
//!
//! Prometheus anchors every relabel regex as `^(?s:<pattern>)$` (`model/relabel/relabel.go`,
//! `NewRegexp`), so `go_.*` matches `go_gc_duration_seconds` but not `xgo_a`, and `.` matches
//! newlines. Plugins that take regexes in their config should do the same so users can move
//! rules between `metric_relabel_configs` and a plugin. The syntax is the Rust `regex` crate's,
//! which is RE2's with small differences (e.g. `\d` matches any Unicode digit).

use crate::plugin::Error;
pub use regex::Regex;

/// Compiles `pattern` anchored at both ends. Errors: [`Error::InvalidConfig`] naming `key`, the
/// pattern and the parser's message.
pub fn anchored(key: &str, pattern: &str) -> Result<Regex, Error> {
    let invalid = |error| Error::config(format!("{key}: invalid regex {pattern:?}: {error}"));
    // Alone first: a pattern like `)|(.*` is unbalanced, but would close the anchoring group.
    Regex::new(pattern).map_err(invalid)?;
    Regex::new(&format!("^(?s:{pattern})$")).map_err(invalid)
}

/// One regex matching any of `patterns`, each anchored; `None` for an empty list. Each pattern
/// is first compiled alone, so an error names the one that is wrong.
pub fn anchored_any(key: &str, patterns: &[String]) -> Result<Option<Regex>, Error> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for pattern in patterns {
        anchored(key, pattern)?;
    }
    let alternatives: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
    anchored(key, &alternatives.join("|")).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored_and_dot_matches_newline() {
        let re = anchored("k", "go_.*").unwrap();
        assert!(re.is_match("go_gc_duration_seconds"));
        assert!(!re.is_match("xgo_a"));
        assert!(!re.is_match("go"));
        assert!(anchored("k", "a.b").unwrap().is_match("a\nb"));
        assert!(
            !anchored("k", "a|b").unwrap().is_match("ab"),
            "alternation stays inside the anchors"
        );
    }

    #[test]
    fn several_patterns_match_any_and_errors_name_the_bad_one() {
        let patterns = vec!["a|b".to_owned(), "c+".to_owned()];
        let re = anchored_any("drop", &patterns).unwrap().unwrap();
        for ok in ["a", "b", "ccc"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for no in ["ab", "ac", "", "d"] {
            assert!(!re.is_match(no), "{no}");
        }
        assert!(anchored_any("drop", &[]).unwrap().is_none());
        let bad = vec!["ok".to_owned(), "(".to_owned()];
        let err = anchored_any("drop_metrics", &bad).unwrap_err().to_string();
        assert!(err.contains("drop_metrics: invalid regex \"(\""), "{err}");
        // A pattern cannot escape its group to unanchor the others.
        let err = anchored_any("k", &[")|(.*".to_owned()]).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
    }
}
