use super::*;
use serde_json::json;
use trawl_plugin_sdk::Stage;
use trawl_plugin_sdk::testing::{Harness, HarnessError, Verdict};

fn kept(config: serde_json::Value, input: &str) -> Vec<String> {
    Harness::<AddLabels>::new(config)
        .unwrap()
        .kept(Stage::Relabel, input)
        .unwrap()
}

fn config_error(config: serde_json::Value) -> String {
    match Harness::<AddLabels>::new(config.clone()) {
        Err(HarnessError::InvalidConfig(message)) => message,
        Err(other) => panic!("{config}: {other}"),
        Ok(_) => panic!("{config}: accepted"),
    }
}

const INPUT: &str = "\
up 1
kube_pod_info{cluster=\"old\",pod_name=\"web-1\"} 1
kube_pod_info{pod=\"stale\",pod_name=\"web-2\"} 1
";

#[test]
fn adds_static_labels_replacing_existing_values() {
    assert_eq!(
        kept(json!({"labels": {"cluster": "eu1", "region": "west"}}), INPUT),
        [
            "up{cluster=\"eu1\",region=\"west\"} 1",
            "kube_pod_info{cluster=\"eu1\",pod_name=\"web-1\",region=\"west\"} 1",
            "kube_pod_info{cluster=\"eu1\",pod=\"stale\",pod_name=\"web-2\",region=\"west\"} 1",
        ]
    );
}

#[test]
fn keep_existing_leaves_values_the_series_has() {
    assert_eq!(
        kept(json!({"labels": {"cluster": "eu1"}, "keep_existing": true}), INPUT),
        [
            "up{cluster=\"eu1\"} 1",
            "kube_pod_info{cluster=\"old\",pod_name=\"web-1\"} 1",
            "kube_pod_info{cluster=\"eu1\",pod=\"stale\",pod_name=\"web-2\"} 1",
        ]
    );
}

#[test]
fn renames_move_the_value_and_replace_the_target() {
    let out = Harness::<AddLabels>::new(json!({"rename": {"pod_name": "pod"}}))
        .unwrap()
        .run(Stage::Write, INPUT)
        .unwrap();
    assert_eq!(
        out.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "up 1",
            "kube_pod_info{cluster=\"old\",pod=\"web-1\"} 1",
            "kube_pod_info{pod=\"web-2\"} 1",
        ]
    );
    assert_eq!(out[0].verdict, Verdict::Keep, "nothing to rename: no edit");
}

#[test]
fn renames_and_static_labels_combine() {
    assert_eq!(
        kept(
            json!({"labels": {"cluster": "eu1"}, "rename": {"pod_name": "pod"}}),
            INPUT
        ),
        [
            "up{cluster=\"eu1\"} 1",
            "kube_pod_info{cluster=\"eu1\",pod=\"web-1\"} 1",
            "kube_pod_info{cluster=\"eu1\",pod=\"web-2\"} 1",
        ]
    );
}

#[test]
fn a_series_that_already_has_the_labels_is_not_edited() {
    let mut h = Harness::<AddLabels>::new(json!({"labels": {"cluster": "eu1"}})).unwrap();
    let out = h.run(Stage::Filter, "up{cluster=\"eu1\"} 1").unwrap();
    assert_eq!(out[0].verdict, Verdict::Keep);
}

#[test]
fn broken_configs_are_rejected_with_the_key() {
    for (config, expect) in [
        (json!({}), "nothing to add"),
        (json!("cluster=eu1"), "JSON object"),
        (json!({"label": {"a": "b"}}), "unknown field `label`"),
        (json!({"labels": {"a": 1}}), "invalid type"),
        (json!({"labels": {"a-b": "1"}}), "labels: invalid label name \"a-b\""),
        (json!({"labels": {"__name__": "x"}}), "__name__ cannot be set"),
        (json!({"labels": {"a": ""}}), "labels.a: empty value"),
        (json!({"rename": {"a": "1b"}}), "rename.a: invalid label name \"1b\""),
        (json!({"rename": {"": "b"}}), "rename: invalid label name \"\""),
        (
            json!({"rename": {"__name__": "b"}}),
            "__name__ cannot be set or renamed",
        ),
        (
            json!({"rename": {"a": "__name__"}}),
            "__name__ cannot be set or renamed",
        ),
        (json!({"rename": {"a": "a"}}), "renames to itself"),
        (json!({"rename": {"a": "b", "b": "c"}}), "chains are ambiguous"),
        (
            json!({"rename": {"a": "c", "b": "c"}}),
            "several labels renamed to \"c\"",
        ),
        (
            json!({"rename": {"a": "c"}, "labels": {"c": "1"}}),
            "also a static label",
        ),
        (json!({"labels": {"a": "1"}, "keep_existing": "yes"}), "invalid type"),
    ] {
        let message = config_error(config.clone());
        assert!(message.contains(expect), "{config}: {message}");
    }
}
