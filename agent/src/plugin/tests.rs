//! Plugin host tests against real components: the `tests/guests/hostile` guest, whose config
//! picks its (mis)behaviour, and `tests/guests/wasi-fs`, which imports `wasi:filesystem`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use trawl_model::labels::Labels;

use super::test_guests::guests;
use super::*;
use crate::config::{OnError, PluginConfig};

/// A compiled-code cache shared by the tests, so each component compiles once per run.
fn shared_cache() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
        .to_owned()
}

fn cfg(path: &Path, config: Value) -> PluginConfig {
    PluginConfig {
        name: "p".into(),
        path: path.to_owned(),
        sha256: None,
        config,
        on_error: OnError::FailOpen,
        timeout: Duration::from_millis(200),
        memory_limit: 64 << 20,
    }
}

fn hostile(config: Value) -> PluginConfig {
    cfg(&guests().hostile, config)
}

/// A host with its own registry, and helpers to build batches and read metrics.
struct Fixture {
    host: PluginHost,
    registry: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_symbols(Symbols::default())
    }

    fn with_symbols(symbols: Symbols) -> Fixture {
        let mut registry = Registry::default();
        let host = PluginHost::with_symbols(Some(shared_cache()), &mut registry, symbols).expect("host");
        Fixture { host, registry }
    }

    fn load(&self, cfg: &PluginConfig) -> Plugin {
        self.host.load(cfg).unwrap_or_else(|e| panic!("load: {e}"))
    }

    /// A batch of `series` (label pairs, sorted here) with values 1.5, 2.5, … and target labels
    /// `job="j", instance="i:1"`.
    fn batch(&self, stage: Stage, series: &[&[(&str, &str)]]) -> Batch {
        let mut symbols = self.host.symbols().lock();
        let mut batch = Batch::new(stage, symbols.generation());
        let mut pairs = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let labels = Labels::from_pairs(s.iter().copied());
            intern_pairs(&mut symbols, &labels, &mut pairs);
            batch.push_sample(&pairs, i as f64 + 1.5, 1000 + i as i64);
        }
        let target = Labels::from_pairs([("job", "j"), ("instance", "i:1")]);
        intern_pairs(&mut symbols, &target, &mut batch.target_labels);
        batch
    }

    fn labels(&self, outcome: &Outcome, i: usize, batch: &Batch) -> Labels {
        outcome.labels(i, batch, &self.host.symbols().lock())
    }

    /// The value of the sample `name{labels}` in the text exposition, 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("encode");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.parse().expect("number"))
    }

    fn errors(&self, reason: &str) -> f64 {
        self.metric(&format!(
            "trawl_agent_plugin_errors_total{{plugin=\"p\",reason=\"{reason}\"}}"
        ))
    }

    fn instantiations(&self) -> f64 {
        self.metric("trawl_agent_plugin_instantiations_total{plugin=\"p\"}")
    }
}

const UP: &[(&str, &str)] = &[("__name__", "up"), ("job", "a"), ("drop_me", "x")];
const GONE: &[(&str, &str)] = &[("__name__", "gone_drop"), ("job", "a")];
const OTHER: &[(&str, &str)] = &[("__name__", "other"), ("zone", "z1")];

fn pairs(labels: &Labels) -> Vec<(String, String)> {
    labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

fn expect_labels(labels: &Labels, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    assert_eq!(pairs(labels), expected);
}

/// What the `inspect` mode reported, as `name=value` pairs of series 0.
fn inspected(f: &Fixture, outcome: &Outcome, batch: &Batch) -> Labels {
    assert_eq!(outcome.verdict(0), Verdict::Modified);
    f.labels(outcome, 0, batch)
}

#[test]
fn plugin_and_host_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Plugin>();
    check::<PluginHost>();
    check::<Symbols>();
}

#[test]
fn loads_inits_and_keeps() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "keep"})));
    assert_eq!(plugin.name(), "p");
    let info = plugin.info();
    assert_eq!((info.name.as_str(), info.version.as_str()), ("hostile", "0.1.0"));
    assert_eq!(info.needs, Needs::default());
    let batch = f.batch(Stage::Relabel, &[UP, GONE, OTHER]);
    let outcome = plugin.process(&batch).expect("fresh batch");
    assert!(outcome.keeps_all());
    assert_eq!(outcome.len(), 3);
    assert!((0..3).all(|i| outcome.verdict(i) == Verdict::Keep));
    expect_labels(
        &f.labels(&outcome, 0, &batch),
        &[("__name__", "up"), ("drop_me", "x"), ("job", "a")],
    );
    assert_eq!(
        f.metric("trawl_agent_plugin_calls_total{plugin=\"p\",stage=\"relabel\"}"),
        1.0
    );
    assert_eq!(
        f.metric("trawl_agent_plugin_series_total{plugin=\"p\",stage=\"relabel\"}"),
        3.0
    );
    assert_eq!(f.instantiations(), 1.0);
    // Pre-initialised at load.
    let mut text = String::new();
    encode(&mut text, &f.registry).expect("encode");
    for series in [
        "trawl_agent_plugin_errors_total{plugin=\"p\",reason=\"breaker_open\"} 0",
        "trawl_agent_plugin_reloads_total{plugin=\"p\",result=\"failure\"} 0",
        "trawl_agent_plugin_series_dropped_total{plugin=\"p\",stage=\"write\"} 0",
        "trawl_agent_plugin_breaker_open{plugin=\"p\"} 0",
        "trawl_agent_plugin_log_lines_dropped_total{plugin=\"p\"} 0",
        "trawl_agent_plugin_call_duration_seconds_count{plugin=\"p\",stage=\"relabel\"} 1",
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
}

/// A plugin crate that uses the SDK by path, as an author's would, loads and answers through the
/// real host.
#[test]
fn an_sdk_plugin_built_outside_the_workspace_keeps_all() {
    let f = Fixture::new();
    let plugin = f.load(&cfg(&guests().sdk_keep, json!({})));
    let info = plugin.info();
    assert_eq!((info.name.as_str(), info.version.as_str()), ("sdk-keep", "0.1.0"));
    let batch = f.batch(Stage::Filter, &[UP, GONE, OTHER]);
    let outcome = plugin.process(&batch).expect("fresh batch");
    assert!(outcome.keeps_all() && outcome.len() == 3);
    assert_eq!(
        f.metric("trawl_agent_plugin_errors_total{plugin=\"p\",reason=\"invalid_output\"}"),
        0.0
    );
}

#[test]
fn an_empty_batch_is_not_sent() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "trap"})));
    let outcome = plugin.process(&f.batch(Stage::Filter, &[])).expect("fresh");
    assert_eq!(outcome.len(), 0);
    assert_eq!(f.errors("trap"), 0.0);
    assert_eq!(
        f.metric("trawl_agent_plugin_calls_total{plugin=\"p\",stage=\"filter\"}"),
        0.0
    );
}

#[test]
fn drops_all() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "drop"})));
    let outcome = plugin.process(&f.batch(Stage::Write, &[UP, OTHER])).expect("fresh");
    assert_eq!((outcome.verdict(0), outcome.verdict(1)), (Verdict::Drop, Verdict::Drop));
    assert_eq!(outcome.dropped(), 2);
    assert_eq!(
        f.metric("trawl_agent_plugin_series_dropped_total{plugin=\"p\",stage=\"write\"}"),
        2.0
    );
}

#[test]
fn modifies_with_created_strings_and_symbols() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "modify", "needs": ["values"]})));
    assert!(plugin.info().needs.values);
    let batch = f.batch(Stage::Filter, &[UP, GONE, OTHER]);
    let outcome = plugin.process(&batch).expect("fresh");
    assert_eq!(outcome.verdict(0), Verdict::Modified);
    assert_eq!(outcome.verdict(1), Verdict::Drop);
    assert_eq!((outcome.modified(), outcome.dropped()), (2, 1));
    // drop_me removed, copy=<__name__> (a symbol), plugin=hostile (created), sorted.
    expect_labels(
        &f.labels(&outcome, 0, &batch),
        &[("__name__", "up"), ("copy", "up"), ("job", "a"), ("plugin", "hostile")],
    );
    expect_labels(
        &f.labels(&outcome, 2, &batch),
        &[
            ("__name__", "other"),
            ("copy", "other"),
            ("plugin", "hostile"),
            ("zone", "z1"),
        ],
    );
    assert_eq!(outcome.value(0), Some(3.0), "1.5 doubled");
    assert_eq!(outcome.value(1), None, "dropped");
    assert_eq!(outcome.value(2), Some(7.0));
    assert_eq!(
        f.metric("trawl_agent_plugin_series_modified_total{plugin=\"p\",stage=\"filter\"}"),
        2.0
    );
}

#[test]
fn columns_are_sent_only_when_asked_and_in_the_filter_stage() {
    let f = Fixture::new();
    let plain = f.load(&hostile(json!({"mode": "inspect"})));
    let batch = f.batch(Stage::Filter, &[UP, OTHER]);
    let seen = inspected(&f, &plain.process(&batch).expect("fresh"), &batch);
    assert_eq!(
        (
            seen.get("values"),
            seen.get("timestamps"),
            seen.get("targets"),
            seen.get("stage")
        ),
        ("0", "0", "0", "filter")
    );

    let all = json!({"mode": "inspect", "needs": ["values", "timestamps", "target-labels"]});
    let greedy = f.load(&hostile(all));
    let seen = inspected(&f, &greedy.process(&batch).expect("fresh"), &batch);
    assert_eq!(
        (seen.get("values"), seen.get("timestamps"), seen.get("targets")),
        ("2", "2", "4")
    );

    let relabel = f.batch(Stage::Relabel, &[UP, OTHER]);
    let seen = inspected(&f, &greedy.process(&relabel).expect("fresh"), &relabel);
    assert_eq!(
        (
            seen.get("values"),
            seen.get("timestamps"),
            seen.get("targets"),
            seen.get("stage")
        ),
        ("0", "0", "4", "relabel"),
        "values only in the filter stage, target labels in all"
    );
}

#[test]
fn sends_only_the_symbol_delta() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "inspect"})));
    let first = f.batch(Stage::Relabel, &[UP]);
    let table = f.host.symbols().lock().len();
    let seen = inspected(&f, &plugin.process(&first).expect("fresh"), &first);
    assert_eq!((seen.get("base"), seen.get("table")), ("0", table.to_string().as_str()));

    let second = f.batch(Stage::Relabel, &[UP, &[("__name__", "new_metric"), ("shard", "7")]]);
    let grown = f.host.symbols().lock().len();
    assert_eq!(grown, table + 3, "new_metric, shard, 7");
    let seen = inspected(&f, &plugin.process(&second).expect("fresh"), &second);
    assert_eq!(
        (seen.get("base"), seen.get("table")),
        (table.to_string().as_str(), grown.to_string().as_str())
    );

    // Nothing new: the base is the whole table.
    let seen = inspected(&f, &plugin.process(&second).expect("fresh"), &second);
    assert_eq!(
        (seen.get("base"), seen.get("table")),
        (grown.to_string().as_str(), grown.to_string().as_str())
    );
}

#[test]
fn recovers_from_a_symbol_gap() {
    let f = Fixture::new();
    // The guest forgets its table after every call, so each later call first answers symbol-gap.
    let plugin = f.load(&hostile(json!({"mode": "inspect", "forget": true})));
    let batch = f.batch(Stage::Relabel, &[UP, OTHER]);
    let table = f.host.symbols().lock().len().to_string();
    for _ in 0..3 {
        let seen = inspected(&f, &plugin.process(&batch).expect("fresh"), &batch);
        assert_eq!(
            (seen.get("base"), seen.get("table")),
            ("0", table.as_str()),
            "resent from 0"
        );
    }
    assert_eq!(f.errors("plugin_error"), 0.0);
}

#[test]
fn a_new_generation_resets_the_guest_and_stales_old_batches() {
    // A generation ends past 10 symbols: the first batch (12) passes it, the second (8) not.
    let f = Fixture::with_symbols(Symbols::with_caps(10, 1 << 20));
    let plugin = f.load(&hostile(json!({"mode": "inspect"})));
    let old = f.batch(Stage::Relabel, &[UP, OTHER]);
    assert_eq!(old.generation, 0);
    let seen = inspected(&f, &plugin.process(&old).expect("fresh"), &old);
    assert_eq!(seen.get("base"), "0");

    let new = f.batch(Stage::Relabel, &[OTHER]);
    assert_eq!(new.generation, 1, "the table passed its cap");
    let table = f.host.symbols().lock().len();
    let seen = inspected(&f, &plugin.process(&new).expect("fresh"), &new);
    assert_eq!(
        (seen.get("base"), seen.get("table")),
        ("0", table.to_string().as_str()),
        "guest reset"
    );

    let stale = plugin.process(&old).expect_err("old generation");
    assert_eq!((stale.batch, stale.current), (0, 1));
    assert_eq!(f.errors("plugin_error"), 0.0, "stale is not a failure");
}

#[test]
fn an_infinite_loop_times_out_and_the_next_call_works() {
    let f = Fixture::new();
    let mut c = hostile(json!({"mode": "loop", "at": 2}));
    c.on_error = OnError::FailClosed;
    c.timeout = Duration::from_millis(100);
    let plugin = f.load(&c);
    let batch = f.batch(Stage::Filter, &[UP, OTHER]);
    assert!(plugin.process(&batch).expect("fresh").keeps_all());
    let started = Instant::now();
    let outcome = plugin.process(&batch).expect("fresh");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "deadline enforced: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (outcome.dropped(), outcome.verdict(0)),
        (2, Verdict::Drop),
        "fail_closed"
    );
    assert_eq!(f.errors("timeout"), 1.0);
    assert!(plugin.process(&batch).expect("fresh").keeps_all(), "fresh instance");
    assert_eq!(f.instantiations(), 2.0);
}

#[test]
fn a_memory_bomb_hits_the_limit() {
    let f = Fixture::new();
    let mut c = hostile(json!({"mode": "grow", "at": 2}));
    c.memory_limit = 16 << 20;
    let plugin = f.load(&c);
    let batch = f.batch(Stage::Filter, &[UP]);
    assert!(plugin.process(&batch).expect("fresh").keeps_all());
    let outcome = plugin.process(&batch).expect("fresh");
    assert!(outcome.keeps_all(), "fail_open");
    assert_eq!(f.errors("memory"), 1.0);
    assert_eq!(f.errors("trap"), 0.0);
    assert!(plugin.process(&batch).expect("fresh").keeps_all());
    assert_eq!(f.instantiations(), 2.0);
}

#[test]
fn a_trap_reinstantiates() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "trap", "at": 2})));
    let batch = f.batch(Stage::Relabel, &[UP]);
    for round in 1..=2 {
        assert!(
            plugin.process(&batch).expect("fresh").keeps_all(),
            "first call of instance {round}"
        );
        assert!(
            plugin.process(&batch).expect("fresh").keeps_all(),
            "fail_open after the trap"
        );
        assert_eq!(f.errors("trap"), round as f64);
    }
    assert_eq!(f.instantiations(), 2.0, "a fresh instance starts at the next call");
    assert!(plugin.process(&batch).expect("fresh").keeps_all());
    assert_eq!(f.instantiations(), 3.0, "load, then one per trap");
}

#[test]
fn a_plugin_error_applies_the_policy() {
    let f = Fixture::new();
    let mut c = hostile(json!({"mode": "error", "at": 1}));
    c.on_error = OnError::FailClosed;
    let plugin = f.load(&c);
    let batch = f.batch(Stage::Relabel, &[UP]);
    assert_eq!(plugin.process(&batch).expect("fresh").verdict(0), Verdict::Drop);
    assert_eq!(f.errors("plugin_error"), 1.0);
    assert!(
        plugin.process(&batch).expect("fresh").keeps_all(),
        "same instance, second call"
    );
    assert_eq!(f.instantiations(), 1.0, "a plugin-error does not poison the instance");
}

#[test]
fn invalid_outcomes_are_rejected() {
    let f = Fixture::new();
    let filter = f.batch(Stage::Filter, &[UP, OTHER]);
    let relabel = f.batch(Stage::Relabel, &[UP, OTHER]);
    let kinds = [
        ("count", &filter),
        ("verdict", &filter),
        ("series", &filter),
        ("symbol", &filter),
        ("remove-symbol", &filter),
        ("unmodified", &filter),
        ("label-name", &filter),
        ("remove-name", &filter),
        ("empty-name", &filter),
        ("set-value", &relabel),
    ];
    for (i, (kind, batch)) in kinds.iter().enumerate() {
        let mut c = hostile(json!({"mode": "invalid", "kind": kind}));
        c.on_error = OnError::FailClosed;
        let plugin = f.load(&c);
        let outcome = plugin.process(batch).expect("fresh");
        assert_eq!(outcome.dropped(), 2, "{kind}: fail_closed");
        assert_eq!(f.errors("invalid_output"), (i + 1) as f64, "{kind}");
    }
    // set-value is fine in the filter stage.
    let plugin = f.load(&hostile(json!({"mode": "invalid", "kind": "set-value"})));
    let outcome = plugin.process(&filter).expect("fresh");
    assert_eq!(outcome.value(0), Some(1.0));
    assert_eq!(f.errors("invalid_output"), kinds.len() as f64);
}

#[test]
fn the_breaker_opens_after_five_failures() {
    let f = Fixture::new();
    let mut c = hostile(json!({"mode": "error"}));
    c.on_error = OnError::FailClosed;
    let plugin = f.load(&c);
    let batch = f.batch(Stage::Relabel, &[UP]);
    for _ in 0..5 {
        assert_eq!(plugin.process(&batch).expect("fresh").dropped(), 1);
    }
    assert_eq!(f.errors("plugin_error"), 5.0);
    assert_eq!(f.metric("trawl_agent_plugin_breaker_open{plugin=\"p\"}"), 1.0);
    for _ in 0..3 {
        assert_eq!(plugin.process(&batch).expect("fresh").dropped(), 1, "policy while open");
    }
    assert_eq!(f.errors("breaker_open"), 3.0);
    assert_eq!(f.errors("plugin_error"), 5.0, "the plugin was not called");
}

#[test]
fn plugin_log_lines_are_rate_limited() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "log", "lines": 100})));
    plugin.process(&f.batch(Stage::Relabel, &[UP])).expect("fresh");
    let dropped = f.metric("trawl_agent_plugin_log_lines_dropped_total{plugin=\"p\"}");
    // A burst of 20 passes; a slow call may refill a token or two.
    assert!((70.0..=80.0).contains(&dropped), "dropped {dropped}");
}

#[test]
fn concurrent_callers_take_turns() {
    let f = Fixture::new();
    let plugin = f.load(&hostile(json!({"mode": "modify"})));
    let batch = f.batch(Stage::Relabel, &[UP, OTHER]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(plugin.process(&batch).expect("fresh").modified(), 2);
                }
            });
        }
    });
    assert_eq!(
        f.metric("trawl_agent_plugin_calls_total{plugin=\"p\",stage=\"relabel\"}"),
        100.0
    );
}

// === load errors ===

fn load_error(cfg: &PluginConfig) -> PluginError {
    Fixture::new().host.load(cfg).expect_err("must not load")
}

#[test]
fn a_filesystem_import_is_refused_at_load() {
    let err = load_error(&cfg(&guests().wasi_fs, json!({})));
    match &err {
        PluginError::ForbiddenImport { plugin, imports, .. } => {
            assert_eq!(plugin, "p");
            assert!(
                imports.iter().any(|i| i.starts_with("wasi:filesystem/types@0.2.")),
                "{imports:?}"
            );
            assert!(
                imports.iter().any(|i| i.starts_with("wasi:filesystem/preopens@0.2.")),
                "{imports:?}"
            );
            assert!(
                imports.iter().all(|i| !i.starts_with("wasi:io/")),
                "io is granted: {imports:?}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("wasi:filesystem") && message.contains("wasi_fs.wasm"),
        "{message}"
    );
}

#[test]
fn a_sha256_mismatch_is_refused() {
    let path = &guests().hostile;
    let actual = load::sha256_hex(&std::fs::read(path).expect("read"));
    let mut c = hostile(json!({"mode": "keep"}));
    c.sha256 = Some("0".repeat(64));
    match load_error(&c) {
        PluginError::Checksum {
            expected, actual: a, ..
        } => assert_eq!((expected, a), ("0".repeat(64), actual.clone())),
        other => panic!("unexpected {other}"),
    }
    c.sha256 = Some(actual.to_uppercase());
    Fixture::new().load(&c);
}

#[test]
fn broken_files_and_configs_are_load_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(matches!(
        load_error(&cfg(&dir.path().join("missing.wasm"), json!({}))),
        PluginError::Read { .. }
    ));

    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x0d\0\x01\0 not really").expect("write");
    assert!(matches!(
        load_error(&cfg(&garbage, json!({}))),
        PluginError::Compile { .. }
    ));
    std::fs::write(&garbage, b"").expect("write");
    assert!(matches!(
        load_error(&cfg(&garbage, json!({}))),
        PluginError::Compile { .. }
    ));

    match load_error(&hostile(json!({"mode": "bad-config"}))) {
        PluginError::InvalidConfig { reason, .. } => assert!(reason.contains("bad-config"), "{reason}"),
        other => panic!("unexpected {other}"),
    }
    assert!(matches!(
        load_error(&hostile(json!("not an object"))),
        PluginError::InvalidConfig { .. }
    ));
    assert!(matches!(
        load_error(&hostile(json!({"mode": "keep", "needs": ["clocks"]}))),
        PluginError::InvalidConfig { .. }
    ));

    // Too little memory to even instantiate.
    let mut tiny = hostile(json!({"mode": "keep"}));
    tiny.memory_limit = 64 << 10;
    match load_error(&tiny) {
        PluginError::Init { reason, .. } => assert_eq!(reason, "memory"),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn compiled_code_is_cached() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("plugins-cache");
    let c = hostile(json!({"mode": "keep"}));
    let sha = load::sha256_hex(&std::fs::read(&c.path).expect("read"));
    let new_host = || PluginHost::new(Some(cache.clone()), &mut Registry::default()).expect("host");

    let first = new_host();
    first.load(&c).expect("compiles");
    let cached = first.cache_path(&sha).expect("a cache");
    assert!(cached.starts_with(&cache) && cached.exists(), "{}", cached.display());
    let written = std::fs::metadata(&cached).and_then(|m| m.modified()).expect("mtime");

    // A second agent process loads from the cache and leaves the file alone.
    let second = new_host();
    let plugin = second.load(&c).expect("from cache");
    assert!(plugin.process(&batch_of(&second)).expect("fresh").keeps_all());
    assert_eq!(
        std::fs::metadata(&cached).and_then(|m| m.modified()).expect("mtime"),
        written
    );

    // A corrupt cache file is ignored and replaced.
    std::fs::write(&cached, b"corrupt").expect("write");
    new_host().load(&c).expect("recompiles");
    assert!(std::fs::metadata(&cached).expect("stat").len() > 1000);
}

fn batch_of(host: &PluginHost) -> Batch {
    let mut symbols = host.symbols().lock();
    let mut batch = Batch::new(Stage::Relabel, symbols.generation());
    let pair = [symbols.intern("__name__"), symbols.intern("up")];
    batch.push_series(&pair);
    batch
}

// === reload ===

/// `wasm` with a custom section appended: the same plugin, another SHA-256.
fn with_custom_section(wasm: &[u8], tag: u8) -> Vec<u8> {
    let mut out = wasm.to_vec();
    // Section id 0, size 3, name length 1, name "t", payload `tag`.
    out.extend_from_slice(&[0, 3, 1, b't', tag]);
    out
}

fn copy_plugin(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("plugin.wasm");
    let tmp = dir.join("plugin.wasm.tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

#[test]
fn reload_swaps_only_changed_and_valid_code() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let original = std::fs::read(&guests().hostile).expect("read");
    let path = copy_plugin(dir.path(), &original);
    let plugin = f.load(&cfg(&path, json!({"mode": "drop"})));
    let version = plugin.version();
    let batch = f.batch(Stage::Relabel, &[UP]);

    assert!(!plugin.reload(false).expect("unchanged"), "same content: no swap");
    assert_eq!(plugin.version(), version);

    copy_plugin(dir.path(), b"broken");
    assert!(plugin.reload(false).is_err());
    assert_eq!(
        f.metric("trawl_agent_plugin_reloads_total{plugin=\"p\",result=\"failure\"}"),
        1.0
    );
    assert_eq!(plugin.process(&batch).expect("fresh").dropped(), 1, "old instance kept");

    copy_plugin(dir.path(), &with_custom_section(&original, 1));
    assert!(plugin.reload(false).expect("valid"));
    assert_ne!(plugin.version(), version);
    assert_eq!(
        f.metric("trawl_agent_plugin_reloads_total{plugin=\"p\",result=\"success\"}"),
        1.0
    );
    assert_eq!(plugin.sha256(), load::sha256_hex(&with_custom_section(&original, 1)));
    assert_eq!(
        plugin.process(&batch).expect("fresh").dropped(),
        1,
        "new instance, same config"
    );
}

#[test]
fn the_watcher_hot_reloads_a_changed_file() {
    let f = Fixture::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let original = std::fs::read(&guests().hostile).expect("read");
    let path = copy_plugin(dir.path(), &original);
    let plugin = f.load(&cfg(&path, json!({"mode": "keep"})));
    let version = plugin.version();
    let _watcher = f.host.watch(std::slice::from_ref(&plugin)).expect("watch");

    copy_plugin(dir.path(), &with_custom_section(&original, 2));
    let deadline = Instant::now() + Duration::from_secs(30);
    while plugin.version() == version && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(plugin.version(), version, "reloaded within 30 s");
    assert_eq!(plugin.sha256(), load::sha256_hex(&with_custom_section(&original, 2)));
    assert!(
        plugin
            .process(&f.batch(Stage::Relabel, &[UP]))
            .expect("fresh")
            .keeps_all()
    );
}

// === symbols and outcomes without Wasm ===

#[test]
fn symbols_intern_resolve_and_roll_over() {
    let symbols = Symbols::with_caps(3, 1 << 20);
    let mut g = symbols.lock();
    let (a, b) = (g.intern("a"), g.intern("bb"));
    assert_eq!((a, b, g.intern("a"), g.intern("")), (0, 1, 0, 2));
    assert_eq!(
        (g.resolve(0), g.resolve(1), g.resolve(2), g.resolve(3)),
        (Some("a"), Some("bb"), Some(""), None)
    );
    assert_eq!(g.since(1).collect::<Vec<_>>(), ["bb", ""]);
    g.intern("c");
    assert_eq!((g.len(), g.generation()), (4, 0));
    drop(g);
    let g = symbols.lock();
    assert_eq!(
        (g.len(), g.generation(), g.resolve(0)),
        (0, 1, None),
        "past the cap: new generation"
    );
    drop(g);
    assert_eq!(symbols.lock().generation(), 1, "an empty table stays");

    let by_bytes = Symbols::with_caps(100, 8);
    by_bytes.lock().intern("123456789");
    assert_eq!(by_bytes.lock().generation(), 1);
}

#[test]
fn symbols_survive_many_strings() {
    let symbols = Symbols::default();
    let mut g = symbols.lock();
    let ids: Vec<u32> = (0..10_000).map(|i| g.intern(&format!("value-{i}"))).collect();
    assert!(ids.iter().enumerate().all(|(i, &id)| id == i as u32));
    assert!((0..10_000).all(|i| g.resolve(i as u32) == Some(format!("value-{i}").as_str())));
    assert_eq!(g.intern("value-1234"), 1234);
}

#[test]
fn policy_outcomes_and_batches() {
    let keep = Outcome::keep_all(3);
    assert!(keep.keeps_all() && keep.len() == 3 && keep.verdict(2) == Verdict::Keep);
    let drop = Outcome::drop_all(2);
    assert_eq!(
        (drop.dropped(), drop.verdict(1), drop.verdict(5), drop.value(0)),
        (2, Verdict::Drop, Verdict::Keep, None)
    );

    let mut batch = Batch::new(Stage::Filter, 0);
    assert!(batch.is_empty());
    batch.push_sample(&[0, 1], 1.0, 5);
    batch.push_series(&[0, 2, 3, 4]);
    assert_eq!(
        (batch.len(), batch.series(1), batch.series(2)),
        (2, &[0, 2, 3, 4][..], &[][..])
    );
    batch.clear(3);
    assert_eq!(
        (batch.len(), batch.generation, batch.offsets.as_slice()),
        (0, 3, &[0][..])
    );
}

/// A fresh instance gets the whole table in its first call; a 10 ms timeout alone would never
/// let 40k symbols (~50 ms in a debug build) through, so the deadline grows with the symbols sent.
#[test]
fn a_fresh_instance_catches_up_with_a_large_table() {
    let f = Fixture::new();
    let mut c = hostile(json!({"mode": "keep"}));
    c.timeout = Duration::from_millis(10);
    c.on_error = OnError::FailClosed;
    let plugin = f.load(&c);
    let mut batch = f.batch(Stage::Relabel, &[UP]);
    {
        let mut symbols = f.host.symbols().lock();
        for i in 0..40_000 {
            symbols.intern(&format!("pod-{i:08}"));
        }
        batch.generation = symbols.generation();
    }
    let started = Instant::now();
    let outcome = plugin.process(&batch).expect("fresh");
    let took = started.elapsed();
    assert!(
        outcome.keeps_all(),
        "sent 40k symbols within the extended deadline ({took:?})"
    );
    assert_eq!(f.errors("timeout"), 0.0);
}
