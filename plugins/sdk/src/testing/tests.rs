//! The harness itself: input checks, symbol bookkeeping, logs, and the outcome validator.

use super::host::Host;
use super::scripted::Scripted;
use super::*;
use serde_json::json;

#[test]
fn reports_what_init_returned() {
    let h = Harness::<Scripted>::new(json!({"needs": ["timestamps"]})).unwrap();
    assert_eq!((h.name(), h.version()), ("scripted", "9.9.9"));
    assert_eq!(
        h.needs(),
        Needs {
            timestamps: true,
            ..Needs::default()
        }
    );
    assert!(matches!(
        Harness::<Scripted>::from_json("{oops"),
        Err(HarnessError::InvalidConfig(m)) if m.contains("not valid JSON")
    ));
}

#[test]
fn rejects_input_the_agent_would_never_send() {
    let mut h = Harness::<Scripted>::new(json!({})).unwrap();
    let cases = [
        (Sample::new(&[("a", "1")], 1.0), "no __name__"),
        (Sample::new(&[("__name__", "")], 1.0), "no __name__"),
        (
            Sample::new(&[("__name__", "m"), ("a", "1"), ("a", "2")], 1.0),
            "given twice",
        ),
        (
            Sample::new(&[("__name__", "m"), ("a-b", "1")], 1.0),
            "invalid label name",
        ),
    ];
    for (sample, expect) in cases {
        match h.run_samples(Stage::Relabel, &[Sample::new(&[("__name__", "ok")], 1.0), sample]) {
            Err(HarnessError::Input { what, reason }) => {
                assert_eq!(what, "series 1");
                assert!(reason.contains(expect), "{reason}");
            }
            other => panic!("{expect}: {other:?}"),
        }
    }
    assert!(matches!(
        h.set_target(&[("job", "a"), ("job", "b")]),
        Err(HarnessError::Input { what, .. }) if what == "target"
    ));
    assert!(matches!(
        h.run(Stage::Filter, "up{"),
        Err(HarnessError::Parse { line: 1, .. })
    ));
}

#[test]
fn empty_label_values_are_absent() {
    let mut h = Harness::<Scripted>::new(json!({})).unwrap();
    assert_eq!(
        h.kept(Stage::Filter, "up{a=\"\",b=\"1\"} 1").unwrap(),
        ["up{b=\"1\"} 1"]
    );
}

#[test]
fn only_new_strings_cross_and_a_reset_resends_them() {
    let mut h = Harness::<Scripted>::new(json!({})).unwrap();
    h.run(Stage::Relabel, "up{job=\"a\"} 1").unwrap();
    assert_eq!(h.symbols_sent(), 4);
    h.run(Stage::Relabel, "up{job=\"a\"} 1\nup{job=\"b\"} 1").unwrap();
    assert_eq!(h.symbols_sent(), 5, "only \"b\" is new");
    h.reset_symbols();
    assert_eq!(h.symbols_sent(), 0);
    let out = h.kept(Stage::Relabel, "up{job=\"b\"} 1").unwrap();
    assert_eq!(out, ["up{job=\"b\"} 1"]);
    assert_eq!(h.symbols_sent(), 4, "a new generation: only what this batch uses");
}

#[test]
fn created_strings_are_sent_back_when_a_later_batch_needs_them() {
    let ops = json!([{"op": "set", "series": 0, "name": "cluster", "value": "eu1"}]);
    let mut h = Harness::<Scripted>::new(json!({ "ops": ops })).unwrap();
    assert_eq!(h.kept(Stage::Relabel, "up 1").unwrap(), ["up{cluster=\"eu1\"} 1"]);
    // The agent interned "cluster" and "eu1"; the next batch uses them as input labels.
    assert_eq!(
        h.kept(Stage::Relabel, "up{cluster=\"eu1\"} 1").unwrap(),
        ["up{cluster=\"eu1\"} 1"]
    );
    assert_eq!(h.symbols_sent(), 4);
}

#[test]
fn logs_are_handed_back_once() {
    let mut h = Harness::<Scripted>::new(json!({"ops": [{"op": "describe"}]})).unwrap();
    h.run(Stage::Write, "up 1").unwrap();
    assert_eq!(h.take_logs().len(), 2);
    assert!(h.take_logs().is_empty());
}

fn samples() -> Vec<Sample> {
    vec![
        Sample::new(&[("__name__", "up"), ("job", "a")], 1.0),
        Sample::new(&[("__name__", "up"), ("job", "b")], 2.0),
    ]
}

/// A host that has sent `__name__ up job a b` (ids 0-4).
fn host() -> Host {
    let mut host = Host::default();
    host.encode(Stage::Filter, wire::Needs::empty(), &samples(), &[]);
    host
}

fn outcome(verdicts: &[u8]) -> wire::Outcome {
    wire::Outcome {
        verdicts: verdicts.to_vec(),
        set_labels: Vec::new(),
        remove_labels: Vec::new(),
        set_values: Vec::new(),
    }
}

fn set(series: u32, name: wire::Text, value: wire::Text) -> wire::SetLabel {
    wire::SetLabel { series, name, value }
}

fn new(text: &str) -> wire::Text {
    wire::Text::New(text.to_owned())
}

#[test]
fn the_validator_applies_a_good_outcome() {
    let mut o = outcome(&[1, 2]);
    o.remove_labels.push(wire::RemoveLabel { series: 1, name: 2 });
    o.set_labels.push(set(1, new("zone"), wire::Text::Symbol(3)));
    o.set_values.push(wire::SetValue { series: 1, value: 5.0 });
    let out = host().apply(Stage::Filter, &samples(), o).unwrap();
    assert!(out[0].is_dropped());
    assert_eq!(out[1].to_string(), "up{zone=\"a\"} 5");
}

#[test]
fn the_validator_rejects_every_broken_rule() {
    let cases: Vec<(&str, Stage, wire::Outcome)> = vec![
        ("1 verdicts for 2", Stage::Filter, outcome(&[0])),
        ("verdict 3", Stage::Filter, outcome(&[0, 3])),
        ("whose verdict is Keep", Stage::Filter, {
            let mut o = outcome(&[0, 0]);
            o.set_labels.push(set(0, new("a"), new("b")));
            o
        }),
        ("whose verdict is Drop", Stage::Filter, {
            let mut o = outcome(&[1, 0]);
            o.remove_labels.push(wire::RemoveLabel { series: 0, name: 2 });
            o
        }),
        ("in a batch of 2", Stage::Filter, {
            let mut o = outcome(&[2, 2]);
            o.set_values.push(wire::SetValue { series: 7, value: 1.0 });
            o
        }),
        ("symbol 5 is not among the 5", Stage::Filter, {
            let mut o = outcome(&[2, 0]);
            o.set_labels.push(set(0, wire::Text::Symbol(5), new("b")));
            o
        }),
        ("symbol 99", Stage::Filter, {
            let mut o = outcome(&[2, 0]);
            o.remove_labels.push(wire::RemoveLabel { series: 0, name: 99 });
            o
        }),
        ("__name__ removed", Stage::Filter, {
            let mut o = outcome(&[2, 0]);
            o.remove_labels.push(wire::RemoveLabel { series: 0, name: 0 });
            o
        }),
        ("which it does not have", Stage::Filter, {
            let mut o = outcome(&[2, 0]);
            o.remove_labels.push(wire::RemoveLabel { series: 0, name: 1 });
            o
        }),
        ("invalid label name \"1a\"", Stage::Filter, {
            let mut o = outcome(&[2, 0]);
            o.set_labels.push(set(0, new("1a"), new("b")));
            o
        }),
        ("__name__ set empty", Stage::Filter, {
            let mut o = outcome(&[2, 0]);
            o.set_labels.push(set(0, wire::Text::Symbol(0), new("")));
            o
        }),
        ("set-value in the relabel stage", Stage::Relabel, {
            let mut o = outcome(&[2, 0]);
            o.set_values.push(wire::SetValue { series: 0, value: 1.0 });
            o
        }),
    ];
    for (expect, stage, o) in cases {
        match host().apply(stage, &samples(), o) {
            Err(HarnessError::InvalidOutcome(reason)) => {
                assert!(reason.contains(expect), "{expect}: {reason}")
            }
            other => panic!("{expect}: {other:?}"),
        }
    }
}
