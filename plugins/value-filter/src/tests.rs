use super::*;
use serde_json::json;
use trawl_plugin_sdk::STALE_NAN_BITS;
use trawl_plugin_sdk::testing::{Harness, HarnessError, Sample, Verdict};

fn harness(config: serde_json::Value) -> Harness<ValueFilter> {
    Harness::new(config).unwrap()
}

fn kept(config: serde_json::Value, input: &str) -> Vec<String> {
    harness(config).kept(Stage::Filter, input).unwrap()
}

fn config_error(config: serde_json::Value) -> String {
    match Harness::<ValueFilter>::new(config.clone()) {
        Err(HarnessError::InvalidConfig(message)) => message,
        Err(other) => panic!("{config}: {other}"),
        Ok(_) => panic!("{config}: accepted"),
    }
}

#[test]
fn asks_for_values_only() {
    assert_eq!(
        harness(json!({"drop_nan": true})).needs(),
        Needs {
            values: true,
            ..Needs::default()
        }
    );
}

#[test]
fn drops_nan_but_never_staleness_markers() {
    let mut h = harness(json!({"drop_nan": true}));
    let samples = [
        Sample::new(&[("__name__", "a")], f64::NAN),
        Sample::new(&[("__name__", "b")], f64::from_bits(STALE_NAN_BITS)),
        Sample::new(&[("__name__", "c")], 1.0),
    ];
    let out = h.run_samples(Stage::Filter, &samples).unwrap();
    assert!(out[0].is_dropped());
    assert_eq!(out[1].verdict, Verdict::Keep);
    assert_eq!(out[1].value.to_bits(), STALE_NAN_BITS);
    assert_eq!(out[2].verdict, Verdict::Keep);
    assert_eq!(
        kept(json!({"ranges": [{"max": 1}]}), "a NaN\nb 2"),
        ["a NaN"],
        "without drop_nan, NaN is kept and not range-checked"
    );
}

#[test]
fn drops_negative_counters_by_suffix() {
    let input = "a_total -1\nb_total 0\nc -1\nd_count -2";
    assert_eq!(
        kept(json!({"drop_negative_counters": true}), input),
        ["b_total 0", "c -1", "d_count -2"]
    );
    assert_eq!(
        kept(
            json!({"drop_negative_counters": true, "counter_suffixes": ["_total", "_count"]}),
            input
        ),
        ["b_total 0", "c -1"]
    );
}

#[test]
fn keeps_values_within_every_matching_range() {
    let config = json!({"ranges": [
        {"metric": "temp_.*", "min": -50, "max": 150},
        {"metric": "temp_cpu", "max": 110},
        {"min": -1000},
    ]});
    assert_eq!(
        kept(
            config,
            "temp_cpu 100\ntemp_cpu 120\ntemp_gpu 120\ntemp_gpu -51\ntemp_gpu 150\nother -1001\nother +Inf\nxtemp_a 200"
        ),
        [
            "temp_cpu 100",
            "temp_gpu 120",
            "temp_gpu 150",
            "other +Inf",
            "xtemp_a 200"
        ]
    );
}

#[test]
fn scales_and_renames_with_the_first_matching_rule() {
    let config = json!({"scale": [
        {"metric": "(.*)_milliseconds", "factor": 0.001, "rename": "${1}_seconds"},
        {"metric": "latency_.*", "factor": 2},
        {"metric": ".*", "factor": 10},
    ]});
    let mut h = harness(config);
    let out = h
        .run(
            Stage::Filter,
            "req_milliseconds{le=\"1\"} 1500\nlatency_a 3\nlatency_milliseconds 4",
        )
        .unwrap();
    assert_eq!(out[0].to_string(), "req_seconds{le=\"1\"} 1.5");
    assert_eq!(out[1].to_string(), "latency_a 6");
    assert_eq!(out[2].to_string(), "latency_seconds 0.004");
    // Cached plans give the same answer on the next scrape.
    assert_eq!(
        h.kept(Stage::Filter, "req_milliseconds 2000").unwrap(),
        ["req_seconds 2"]
    );
}

#[test]
fn a_rename_to_an_invalid_name_keeps_the_name_and_warns() {
    let mut h = harness(json!({"scale": [{"metric": "a_(.*)", "factor": 2, "rename": "$1"}]}));
    let out = h.run(Stage::Filter, "a_x 1\na_9 1").unwrap();
    assert_eq!(out[0].to_string(), "x 2");
    assert_eq!(out[1].to_string(), "a_9 2");
    let logs = h.take_logs();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].1.contains("not a valid metric name"));
}

#[test]
fn other_stages_fail_loudly() {
    let mut h = harness(json!({"drop_nan": true}));
    for stage in [Stage::Relabel, Stage::Write] {
        match h.run(stage, "a 1") {
            Err(HarnessError::Failed(message)) => {
                assert!(message.contains("filter stage only"), "{message}")
            }
            other => panic!("{stage}: {other:?}"),
        }
    }
}

#[test]
fn plans_are_per_metric_and_survive_a_symbol_reset() {
    let mut h = harness(json!({
        "drop_negative_counters": true,
        "ranges": [{"metric": "temp", "max": 100}],
    }));
    let input = "temp 101\na_total -1\nb 101";
    assert_eq!(h.kept(Stage::Filter, input).unwrap(), ["b 101"]);
    h.reset_symbols();
    // New ids in another order: stale plans would drop `b` or keep `temp`.
    assert_eq!(h.kept(Stage::Filter, "b 101\ntemp 101\na_total -1").unwrap(), ["b 101"]);
}

#[test]
fn broken_configs_are_rejected_with_the_key() {
    for (config, expect) in [
        (json!({}), "nothing to do"),
        (json!(true), "JSON object"),
        (json!({"drop_nans": true}), "unknown field `drop_nans`"),
        (
            json!({"drop_negative_counters": true, "counter_suffixes": [""]}),
            "counter_suffixes",
        ),
        (json!({"ranges": [{"metric": "a"}]}), "ranges[0]: set min, max or both"),
        (
            json!({"ranges": [{"min": 2, "max": 1}]}),
            "ranges[0]: min 2 is above max 1",
        ),
        (
            json!({"ranges": [{"metric": "(", "min": 1}]}),
            "ranges[0].metric: invalid regex",
        ),
        (json!({"ranges": [{"min": "1"}]}), "invalid type"),
        (json!({"scale": [{"metric": "a"}]}), "missing field `factor`"),
        (json!({"scale": [{"factor": 2}]}), "missing field `metric`"),
        (json!({"scale": [{"metric": "a", "factor": 0}]}), "scale[0].factor: 0"),
        (
            json!({"scale": [{"metric": "a", "factor": 2, "rename": ""}]}),
            "scale[0].rename: empty",
        ),
        (
            json!({"scale": [{"metric": "[", "factor": 2}]}),
            "scale[0].metric: invalid regex",
        ),
    ] {
        let message = config_error(config.clone());
        assert!(message.contains(expect), "{config}: {message}");
    }
}

#[test]
fn an_infinite_factor_cannot_even_be_written() {
    match Harness::<ValueFilter>::from_json(r#"{"scale": [{"metric": "a", "factor": 1e309}]}"#) {
        Err(HarnessError::InvalidConfig(message)) => {
            assert!(message.contains("not valid JSON"), "{message}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn metric_names_follow_prometheus() {
    for ok in ["a", "a:b_c9", ":x", "_"] {
        assert!(is_valid_metric_name(ok), "{ok}");
    }
    for bad in ["", "9a", "a-b", "a b", "é"] {
        assert!(!is_valid_metric_name(bad), "{bad}");
    }
}
