use super::*;
use serde_json::json;
use trawl_plugin_sdk::Stage;
use trawl_plugin_sdk::testing::{Harness, HarnessError, Verdict};

fn kept(config: serde_json::Value, input: &str) -> Vec<String> {
    Harness::<DropLabels>::new(config)
        .unwrap()
        .kept(Stage::Relabel, input)
        .unwrap()
}

fn config_error(config: serde_json::Value) -> String {
    match Harness::<DropLabels>::new(config.clone()) {
        Err(HarnessError::InvalidConfig(message)) => message,
        Err(other) => panic!("{config}: {other}"),
        Ok(_) => panic!("{config}: accepted"),
    }
}

const INPUT: &str = "\
go_gc_duration_seconds{quantile=\"0.5\"} 1
xgo_gc 1
process_open_fds 2
http_requests_total{env=\"dev\",path=\"/api\",pod_template_hash=\"abc\"} 3
http_requests_total{env=\"prod\",path=\"/debug/pprof\"} 4
http_requests_total{path=\"/api\",tmp_id=\"7\",tmp_x=\"8\"} 5
";

#[test]
fn drops_metrics_by_anchored_name_regex() {
    assert_eq!(
        kept(json!({"drop_metrics": ["go_.*", "process_open_fds"]}), INPUT),
        [
            "xgo_gc 1",
            "http_requests_total{env=\"dev\",path=\"/api\",pod_template_hash=\"abc\"} 3",
            "http_requests_total{env=\"prod\",path=\"/debug/pprof\"} 4",
            "http_requests_total{path=\"/api\",tmp_id=\"7\",tmp_x=\"8\"} 5",
        ]
    );
}

#[test]
fn drops_series_by_label_value_or_regex_and_absent_labels_are_empty() {
    let config = json!({"drop_series": [
        {"label": "env", "value": "dev"},
        {"label": "path", "regex": "/debug/.*"},
    ]});
    assert_eq!(
        kept(config, INPUT),
        [
            "go_gc_duration_seconds{quantile=\"0.5\"} 1",
            "xgo_gc 1",
            "process_open_fds 2",
            "http_requests_total{path=\"/api\",tmp_id=\"7\",tmp_x=\"8\"} 5",
        ]
    );
    let absent = json!({"drop_series": [{"label": "env", "value": ""}]});
    assert_eq!(
        kept(absent, INPUT),
        [
            "http_requests_total{env=\"dev\",path=\"/api\",pod_template_hash=\"abc\"} 3",
            "http_requests_total{env=\"prod\",path=\"/debug/pprof\"} 4",
        ]
    );
}

#[test]
fn drops_labels_by_name_and_regex_but_never_the_metric_name() {
    let config = json!({
        "drop_labels": ["pod_template_hash"],
        "drop_labels_regex": ["tmp_.*", ".*name.*"],
    });
    let mut h = Harness::<DropLabels>::new(config).unwrap();
    let out = h.run(Stage::Relabel, INPUT).unwrap();
    assert_eq!(
        out.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "go_gc_duration_seconds{quantile=\"0.5\"} 1",
            "xgo_gc 1",
            "process_open_fds 2",
            "http_requests_total{env=\"dev\",path=\"/api\"} 3",
            "http_requests_total{env=\"prod\",path=\"/debug/pprof\"} 4",
            "http_requests_total{path=\"/api\"} 5",
        ]
    );
    assert_eq!(out[0].verdict, Verdict::Keep, "untouched series carry no edits");
    assert_eq!(out[3].verdict, Verdict::Modified);
    // The decisions are cached by name; a second batch gives the same answer.
    assert_eq!(
        h.kept(Stage::Filter, "m{tmp_a=\"1\",keep=\"2\"} 1").unwrap(),
        ["m{keep=\"2\"} 1"]
    );
}

#[test]
fn series_rules_win_over_label_rules() {
    let config = json!({
        "drop_series": [{"label": "tmp_id", "regex": ".+"}],
        "drop_labels_regex": ["tmp_.*"],
    });
    assert_eq!(kept(config, INPUT).len(), 5);
}

#[test]
fn remembered_answers_survive_a_symbol_reset() {
    let mut h = Harness::<DropLabels>::new(json!({
        "drop_metrics": ["go_.*"],
        "drop_series": [{"label": "env", "regex": "de.*"}],
        "drop_labels_regex": ["tmp_.*"],
    }))
    .unwrap();
    let input = "go_a 1\nup{env=\"dev\"} 1\nup{env=\"prod\",tmp_x=\"1\"} 1\nup{x=\"go_a\",y=\"tmp_x\"} 1";
    let expected = ["up{env=\"prod\"} 1", "up{x=\"go_a\",y=\"tmp_x\"} 1"];
    assert_eq!(h.kept(Stage::Relabel, input).unwrap(), expected);
    // After a reset the same ids name other strings; stale answers would drop the wrong series.
    h.reset_symbols();
    let shuffled = "up{x=\"go_a\",y=\"tmp_x\"} 1\nup{env=\"prod\",tmp_x=\"1\"} 1\ngo_a 1\nup{env=\"dev\"} 1";
    assert_eq!(
        h.kept(Stage::Relabel, shuffled).unwrap(),
        ["up{x=\"go_a\",y=\"tmp_x\"} 1", "up{env=\"prod\"} 1"]
    );
}

#[test]
fn absent_labels_match_regexes_that_match_empty() {
    let config = json!({"drop_series": [{"label": "env", "regex": "|dev"}]});
    assert_eq!(
        kept(config, "a 1\nb{env=\"dev\"} 1\nc{env=\"prod\"} 1"),
        ["c{env=\"prod\"} 1"]
    );
}

#[test]
fn broken_configs_are_rejected_with_the_key() {
    for (config, expect) in [
        (json!({}), "nothing to drop"),
        (json!([]), "JSON object"),
        (json!({"drop_metric": ["a"]}), "unknown field `drop_metric`"),
        (json!({"drop_metrics": "go_.*"}), "invalid type"),
        (json!({"drop_metrics": ["("]}), "drop_metrics: invalid regex \"(\""),
        (
            json!({"drop_labels_regex": ["[z-a]"]}),
            "drop_labels_regex: invalid regex",
        ),
        (json!({"drop_labels": ["__name__"]}), "__name__ cannot be dropped"),
        (
            json!({"drop_labels": ["a-b"]}),
            "drop_labels: invalid label name \"a-b\"",
        ),
        (
            json!({"drop_series": [{"label": "a"}]}),
            "drop_series[0]: set exactly one",
        ),
        (
            json!({"drop_series": [{"label": "a", "value": "1"}, {"label": "b", "value": "1", "regex": "1"}]}),
            "drop_series[1]: set exactly one",
        ),
        (
            json!({"drop_series": [{"label": "a", "regex": "(?P<"}]}),
            "drop_series[0].regex: invalid regex",
        ),
        (
            json!({"drop_series": [{"label": "1a", "value": "x"}]}),
            "drop_series[0].label: invalid label name",
        ),
        (
            json!({"drop_series": [{"label": "a", "value": "x", "op": "!="}]}),
            "unknown field `op`",
        ),
    ] {
        let message = config_error(config.clone());
        assert!(message.contains(expect), "{config}: {message}");
    }
}

#[test]
fn reports_its_name_and_needs_nothing() {
    let h = Harness::<DropLabels>::new(json!({"drop_labels": ["a"]})).unwrap();
    assert_eq!(h.name(), "drop-labels");
    assert_eq!(h.version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(h.needs(), trawl_plugin_sdk::Needs::default());
}
