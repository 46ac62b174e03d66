//! Edit semantics, through the harness (encode → runtime → outcome → validate → apply).

use crate::Stage;
use crate::log::Level;
use crate::testing::scripted::Scripted;
use crate::testing::{Harness, HarnessError, Verdict};
use serde_json::json;

const TWO: &str = "a{x=\"1\",y=\"2\"} 1\nb{x=\"1\"} 2";

fn harness(ops: serde_json::Value) -> Harness<Scripted> {
    Harness::new(json!({ "ops": ops })).unwrap()
}

fn run(ops: serde_json::Value, stage: Stage, text: &str) -> Result<Vec<String>, HarnessError> {
    harness(ops).kept(stage, text)
}

fn failure(ops: serde_json::Value, stage: Stage) -> String {
    match harness(ops).run(stage, TWO) {
        Err(HarnessError::Failed(message)) => message,
        other => panic!("expected a plugin failure, got {other:?}"),
    }
}

#[test]
fn a_batch_left_alone_is_kept_without_edits() {
    let out = harness(json!([])).run(Stage::Filter, TWO).unwrap();
    assert!(out.iter().all(|o| o.verdict == Verdict::Keep));
    assert_eq!(out[0].to_string(), "a{x=\"1\",y=\"2\"} 1");
    assert_eq!(out[1].to_string(), "b{x=\"1\"} 2");
}

#[test]
fn an_empty_batch_works() {
    assert_eq!(run(json!([]), Stage::Relabel, "").unwrap(), Vec::<String>::new());
}

#[test]
fn views_show_labels_metric_names_and_only_the_columns_asked_for() {
    let mut h = Harness::<Scripted>::new(json!({"ops": [{"op": "describe"}]})).unwrap();
    h.set_target(&[("job", "node"), ("instance", "h:9100")]).unwrap();
    h.run(Stage::Filter, "up{Zone=\"z\",job=\"j\"} 1 1000").unwrap();
    let logs = h.take_logs();
    assert_eq!(
        logs,
        [
            (Level::Info, "filter n=1 target={}".to_owned()),
            (
                Level::Info,
                "0 up {\"Zone\": \"z\", \"__name__\": \"up\", \"job\": \"j\"} None None".to_owned()
            ),
        ],
        "labels sorted by name (uppercase before `__name__`), no values or target unless asked"
    );

    let mut h = Harness::<Scripted>::new(json!({
        "ops": [{"op": "describe"}],
        "needs": ["values", "timestamps", "target"]
    }))
    .unwrap();
    h.set_target(&[("job", "node")]).unwrap();
    h.run(Stage::Filter, "up 1.5 1000").unwrap();
    let logs = h.take_logs();
    assert_eq!(logs[0].1, "filter n=1 target={\"job\": \"node\"}");
    assert_eq!(logs[1].1, "0 up {\"__name__\": \"up\"} Some(1.5) Some(1000)");

    h.run(Stage::Relabel, "up 1.5 1000").unwrap();
    let logs = h.take_logs();
    assert_eq!(logs[0].1, "relabel n=1 target={\"job\": \"node\"}");
    assert_eq!(
        logs[1].1, "0 up {\"__name__\": \"up\"} None None",
        "values and timestamps only cross in the filter stage"
    );
}

#[test]
fn symbol_views_resolve_to_the_same_strings() {
    let mut h = Harness::<Scripted>::new(json!({"ops": [{"op": "describe_symbols"}]})).unwrap();
    h.run(Stage::Filter, "up{job=\"j\",Zone=\"z\"} 1\nup 2").unwrap();
    let logs: Vec<String> = h.take_logs().into_iter().map(|(_, line)| line).collect();
    assert_eq!(
        logs,
        [
            "0 name=Some(\"up\") job=Some(\"j\") Zone=z,__name__=up,job=j",
            "1 name=Some(\"up\") job=None __name__=up",
        ]
    );
    let mut h = Harness::<Scripted>::new(json!({"ops": [{"op": "describe_symbols"}]})).unwrap();
    h.run_samples(Stage::Filter, &[]).unwrap();
    assert!(h.take_logs().is_empty());
}

#[test]
fn drop_drops_only_that_series() {
    let out = harness(json!([{"op": "drop", "series": 1}]))
        .run(Stage::Relabel, TWO)
        .unwrap();
    assert_eq!(out[0].verdict, Verdict::Keep);
    assert_eq!(out[1].verdict, Verdict::Drop);
}

#[test]
fn set_label_adds_and_replaces_with_new_or_known_strings() {
    let ops = json!([
        {"op": "set", "series": 0, "name": "cluster", "value": "eu1"},
        {"op": "set", "series": 0, "name": "x", "value": "2"},
        {"op": "set", "series": 1, "name": "x", "value": "b"},
    ]);
    assert_eq!(
        run(ops, Stage::Relabel, TWO).unwrap(),
        ["a{cluster=\"eu1\",x=\"2\",y=\"2\"} 1", "b{x=\"b\"} 2"]
    );
}

#[test]
fn set_label_renames_the_metric() {
    let ops = json!([{"op": "set", "series": 1, "name": "__name__", "value": "c"}]);
    assert_eq!(
        run(ops, Stage::Write, TWO).unwrap(),
        ["a{x=\"1\",y=\"2\"} 1", "c{x=\"1\"} 2"]
    );
}

#[test]
fn setting_what_is_already_there_is_not_an_edit() {
    let ops = json!([
        {"op": "set", "series": 0, "name": "x", "value": "1"},
        {"op": "set", "series": 0, "name": "absent", "value": ""},
        {"op": "remove", "series": 1, "name": "absent"},
    ]);
    let out = harness(ops).run(Stage::Relabel, TWO).unwrap();
    assert_eq!(out[0].verdict, Verdict::Keep);
    assert_eq!(out[1].verdict, Verdict::Keep);
}

#[test]
fn an_empty_value_and_remove_label_both_remove() {
    let ops = json!([
        {"op": "set", "series": 0, "name": "x", "value": ""},
        {"op": "remove", "series": 1, "name": "x"},
    ]);
    assert_eq!(run(ops, Stage::Relabel, TWO).unwrap(), ["a{y=\"2\"} 1", "b 2"]);
}

#[test]
fn edits_take_effect_in_call_order() {
    let ops = json!([
        // set then remove: gone, although the host applies removes before sets
        {"op": "set", "series": 0, "name": "x", "value": "9"},
        {"op": "remove", "series": 0, "name": "x"},
        {"op": "set", "series": 0, "name": "new", "value": "n"},
        {"op": "remove", "series": 0, "name": "new"},
        // remove then set: the new value
        {"op": "remove", "series": 1, "name": "x"},
        {"op": "set", "series": 1, "name": "x", "value": "7"},
        // remove an absent label after an edit: still a no-op in effect
        {"op": "remove", "series": 1, "name": "nope"},
    ]);
    assert_eq!(run(ops, Stage::Relabel, TWO).unwrap(), ["a{y=\"2\"} 1", "b{x=\"7\"} 2"]);
}

#[test]
fn restoring_a_removed_label_to_its_old_value_is_sent() {
    let ops = json!([
        {"op": "remove", "series": 0, "name": "x"},
        {"op": "set", "series": 0, "name": "x", "value": "1"},
    ]);
    let out = harness(ops).run(Stage::Relabel, TWO).unwrap();
    assert_eq!(out[0].verdict, Verdict::Modified);
    assert_eq!(out[0].get("x"), Some("1"));
}

#[test]
fn drop_wins_over_edits_before_and_after() {
    let ops = json!([
        {"op": "set", "series": 0, "name": "x", "value": "9"},
        {"op": "drop", "series": 0},
        {"op": "drop", "series": 1},
        {"op": "set", "series": 1, "name": "x", "value": "9"},
        {"op": "remove", "series": 1, "name": "x"},
    ]);
    // The harness rejects edits on a dropped series, so this also checks they were removed.
    let out = harness(ops).run(Stage::Relabel, TWO).unwrap();
    assert!(out.iter().all(|o| o.is_dropped()));
}

#[test]
fn set_value_replaces_values_in_the_filter_stage() {
    let ops = json!([
        {"op": "value", "series": 0, "value": 1.0},
        {"op": "value", "series": 1, "value": 0.002},
    ]);
    let mut h = Harness::<Scripted>::new(json!({"ops": ops, "needs": ["values"]})).unwrap();
    let out = h.run(Stage::Filter, TWO).unwrap();
    assert_eq!(out[0].verdict, Verdict::Keep, "same value as sent is no edit");
    assert_eq!(out[1].verdict, Verdict::Modified);
    assert_eq!(out[1].value, 0.002);
}

#[test]
fn set_value_without_values_is_still_sent() {
    let ops = json!([{"op": "value", "series": 0, "value": 1.0}]);
    let out = harness(ops).run(Stage::Filter, TWO).unwrap();
    assert_eq!(out[0].verdict, Verdict::Modified);
}

#[test]
fn edits_that_break_the_contract_fail_the_call() {
    let cases = [
        (
            json!([{"op": "set", "series": 0, "name": "a-b", "value": "1"}]),
            "invalid label name",
        ),
        (
            json!([{"op": "set", "series": 0, "name": "", "value": "1"}]),
            "invalid label name",
        ),
        (
            json!([{"op": "set", "series": 0, "name": "__name__", "value": ""}]),
            "__name__",
        ),
        (json!([{"op": "remove", "series": 0, "name": "__name__"}]), "__name__"),
        (
            json!([{"op": "drop", "series": 2}]),
            "series 2 is out of range for a batch of 2",
        ),
        (
            json!([{"op": "set", "series": 9, "name": "a", "value": "1"}]),
            "out of range",
        ),
        (json!([{"op": "remove", "series": 9, "name": "a"}]), "out of range"),
        (json!([{"op": "value", "series": 9, "value": 1.0}]), "out of range"),
        (json!([{"op": "fail", "message": "boom"}]), "boom"),
    ];
    for (ops, expect) in cases {
        let message = failure(ops.clone(), Stage::Relabel);
        assert!(message.contains(expect), "{ops}: {message}");
    }
    for stage in [Stage::Relabel, Stage::Write] {
        let message = failure(json!([{"op": "value", "series": 0, "value": 1.0}]), stage);
        assert!(message.contains("filter stage"), "{message}");
    }
}

#[test]
fn a_thousand_series_round_trip() {
    let text: String = (0..1000)
        .map(|i| format!("m{}{{i=\"{i}\",pod=\"p{}\"}} {i}\n", i % 7, i % 13))
        .collect();
    let ops: Vec<_> = (0..1000)
        .step_by(3)
        .map(|i| json!({"op": "set", "series": i, "name": "pod", "value": format!("q{i}")}))
        .chain((1..1000).step_by(3).map(|i| json!({"op": "drop", "series": i})))
        .collect();
    let out = harness(json!(ops)).run(Stage::Relabel, &text).unwrap();
    assert_eq!(out.len(), 1000);
    for (i, o) in out.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(o.get("pod"), Some(format!("q{i}").as_str())),
            1 => assert!(o.is_dropped()),
            _ => assert_eq!(o.verdict, Verdict::Keep),
        }
    }
}
