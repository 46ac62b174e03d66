//! The runtime against hand-built WIT batches: symbol continuity, malformed input, init.

use super::*;
use crate::testing::scripted::Scripted;
use serde_json::json;

fn runtime(config: serde_json::Value) -> Runtime<Scripted> {
    let mut runtime = Runtime::new();
    runtime.init(&config.to_string()).unwrap();
    runtime
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// One series `__name__=up, job=<id 2>` over symbols `__name__ up job x`.
fn batch(symbol_base: u32, new_symbols: &[&str]) -> wire::Batch {
    wire::Batch {
        stage: wire::Stage::Relabel,
        symbol_base,
        new_symbols: strings(new_symbols),
        labels: vec![0, 1, 2, 3],
        offsets: vec![0, 4],
        values: Vec::new(),
        timestamps_ms: Vec::new(),
        target_labels: Vec::new(),
    }
}

fn failed(result: Result<wire::Outcome, wire::PluginError>) -> String {
    match result {
        Err(wire::PluginError::Failed(message)) => message,
        other => panic!("expected failed, got {other:?}"),
    }
}

#[test]
fn init_reports_name_version_and_needs() {
    let mut r = Runtime::<Scripted>::new();
    let info = r.init(r#"{"needs": ["values", "target"]}"#).unwrap();
    assert_eq!(info.name, "scripted");
    assert_eq!(info.version, "9.9.9");
    assert_eq!(info.needs, wire::Needs::VALUES | wire::Needs::TARGET_LABELS);
    let info = r.init("  ").unwrap();
    assert_eq!(info.needs, wire::Needs::empty(), "empty text is {{}}");
}

#[test]
fn init_rejects_bad_json_and_bad_config_as_invalid_config() {
    let mut r = Runtime::<Scripted>::new();
    for (text, expect) in [
        ("{", "config is not valid JSON"),
        ("nul", "config is not valid JSON"),
        ("\u{0}", "config is not valid JSON"),
        (r#"{"ops": 3}"#, "invalid type"),
        (r#"{"opz": []}"#, "unknown field"),
        (r#"{"needs": ["all"]}"#, "needs: unknown \"all\""),
        ("[]", "must be a JSON object"),
        ("null", "must be a JSON object"),
    ] {
        match r.init(text) {
            Err(wire::PluginError::InvalidConfig(message)) => {
                assert!(message.contains(expect), "{text}: {message}");
                assert!(!message.starts_with("invalid config"), "{message}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn process_before_init_fails_but_keeps_the_symbols() {
    let mut r = Runtime::<Scripted>::new();
    let message = failed(r.process(batch(0, &["__name__", "up", "job", "x"])));
    assert!(message.contains("before init"), "{message}");
    r.init("{}").unwrap();
    assert!(r.process(batch(4, &[])).is_ok(), "the symbols arrived");
}

#[test]
fn a_keep_all_outcome_is_zeros_without_edits() {
    let mut r = runtime(json!({}));
    let mut b = batch(0, &["__name__", "up", "job", "x"]);
    b.labels = [0, 1, 2, 3].repeat(3);
    b.offsets = vec![0, 4, 8, 12];
    let outcome = r.process(b).unwrap();
    assert_eq!(
        outcome,
        wire::Outcome {
            verdicts: vec![0, 0, 0],
            set_labels: Vec::new(),
            remove_labels: Vec::new(),
            set_values: Vec::new(),
        }
    );
}

#[test]
fn symbols_continue_across_batches_and_a_gap_is_reported() {
    let mut r = runtime(json!({}));
    let mut first = batch(0, &["__name__", "up"]);
    first.labels = vec![0, 1];
    first.offsets = vec![0, 2];
    assert!(r.process(first).is_ok());
    assert_eq!(
        r.process(batch(0, &[])),
        Err(wire::PluginError::SymbolGap(2)),
        "a base behind the table is a gap"
    );
    assert_eq!(
        r.process(batch(5, &["x"])),
        Err(wire::PluginError::SymbolGap(2)),
        "a base past the table is a gap too"
    );
    assert!(r.process(batch(2, &["job", "x"])).is_ok());
    assert!(r.process(batch(4, &[])).is_ok(), "later batches reuse the ids");
}

#[test]
fn reset_symbols_restarts_at_zero() {
    let mut r = runtime(json!({}));
    r.process(batch(0, &["__name__", "up", "job", "x"])).unwrap();
    r.reset_symbols();
    assert_eq!(r.process(batch(4, &[])), Err(wire::PluginError::SymbolGap(0)));
    assert!(r.process(batch(0, &["__name__", "up", "job", "x"])).is_ok());
}

#[test]
fn edits_name_known_strings_by_symbol_and_others_by_text() {
    let mut r = runtime(json!({"ops": [
        {"op": "set", "series": 0, "name": "x", "value": "up"},
        {"op": "set", "series": 0, "name": "new", "value": "fresh"},
        {"op": "remove", "series": 1, "name": "job"},
    ]}));
    let mut b = batch(0, &["__name__", "up", "job", "x"]);
    b.labels = [0, 1, 2, 3].repeat(2);
    b.offsets = vec![0, 4, 8];
    let outcome = r.process(b).unwrap();
    assert_eq!(outcome.verdicts, [2, 2]);
    assert_eq!(
        outcome.set_labels,
        [
            wire::SetLabel {
                series: 0,
                name: wire::Text::Symbol(3),
                value: wire::Text::Symbol(1),
            },
            wire::SetLabel {
                series: 0,
                name: wire::Text::New("new".to_owned()),
                value: wire::Text::New("fresh".to_owned()),
            },
        ]
    );
    assert_eq!(outcome.remove_labels, [wire::RemoveLabel { series: 1, name: 2 }]);
}

#[test]
fn malformed_batches_fail_without_panicking() {
    let symbols = ["__name__", "up", "job", "x"];
    type Breaker = Box<dyn Fn(&mut wire::Batch)>;
    let cases: Vec<(&str, Breaker)> = vec![
        ("target symbol 9", Box::new(|b| b.target_labels = vec![0, 9])),
        ("odd length", Box::new(|b| b.target_labels = vec![0])),
        ("even and non-decreasing", Box::new(|b| b.offsets = vec![0, 3])),
        ("even and non-decreasing", Box::new(|b| b.offsets = vec![4, 2])),
        ("past the 4 label ids", Box::new(|b| b.offsets = vec![0, 6])),
        ("values has 2 entries for 1", Box::new(|b| b.values = vec![1.0, 2.0])),
        (
            "timestamps-ms has 3 entries",
            Box::new(|b| b.timestamps_ms = vec![1, 2, 3]),
        ),
    ];
    for (expect, break_it) in cases {
        let mut r = runtime(json!({"ops": [{"op": "describe"}]}));
        let mut b = batch(0, &symbols);
        break_it(&mut b);
        let message = failed(r.process(b));
        assert!(message.starts_with("malformed batch"), "{message}");
        assert!(message.contains(expect), "{expect}: {message}");
    }
}

#[test]
fn unknown_label_ids_read_as_empty_strings() {
    let mut r = runtime(json!({"ops": [{"op": "describe"}]}));
    let mut b = batch(0, &["__name__", "up", "job", "x"]);
    b.labels = vec![0, 1, 2, 4, u32::MAX, 3];
    b.offsets = vec![0, 6];
    assert_eq!(r.process(b).unwrap().verdicts, [0]);
    let logs = crate::log::capture::take();
    assert_eq!(
        logs[1].1, "0 up {\"__name__\": \"up\", \"job\": \"\", \"\": \"x\"} None None",
        "{logs:?}"
    );
}

#[test]
fn odd_but_valid_shapes_are_accepted() {
    let mut r = runtime(json!({"ops": [{"op": "describe"}]}));
    let mut b = batch(0, &["__name__", "up", "job", "x"]);
    // No offsets at all: zero series. Labels beyond the last offset are ignored.
    b.offsets = Vec::new();
    assert_eq!(r.process(b).unwrap().verdicts, Vec::<u8>::new());
    let mut b = batch(4, &[]);
    // A series with no labels at all, and one without __name__.
    b.offsets = vec![0, 0, 2];
    b.labels = vec![2, 3];
    assert_eq!(r.process(b).unwrap().verdicts, [0, 0]);
    let logs = crate::log::capture::take();
    assert!(logs.iter().any(|(_, line)| line == "0  {} None None"), "{logs:?}");
    assert!(
        logs.iter().any(|(_, line)| line == "1  {\"job\": \"x\"} None None"),
        "{logs:?}"
    );
}
