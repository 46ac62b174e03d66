//! Cost of one plugin call through the host, with the keep-all plugin (`tests/guests/hostile`
//! in mode `keep`): batches of 1, 100 and 1000 series of 6 label pairs, in steady state (every
//! symbol already sent). Covers the whole `Plugin::process`: lock, breaker, symbol sync, lowering
//! the lists into the guest, the guest building its verdicts, lifting and validating them,
//! metrics. The goals (issue 4): fixed cost per call (batch 1) ≤ 2 µs, and ≤ 70 ns per series at
//! batch 1000 (time / 1000). `filter_values` adds the values and timestamps columns.
//!
//! Run: `cargo bench -p trawl-agent --bench plugin` (builds the guest for wasm32-wasip2 first).

use std::time::Duration;

use divan::Bencher;
use divan::counter::ItemsCount;
use prometheus_client::registry::Registry;
use serde_json::json;
use trawl_agent::config::{OnError, PluginConfig};
use trawl_agent::plugin::{Batch, Plugin, PluginHost, Stage};

// Shared with the plugin unit tests; the benchmark needs only the hostile guest.
#[allow(dead_code)]
#[path = "../src/plugin/test_guests.rs"]
mod test_guests;

fn main() {
    divan::main();
}

/// The keep-all plugin's config (the bare wit-bindgen guest); `needs` are its columns.
fn keep_config(needs: &[&str]) -> PluginConfig {
    guest_config(
        test_guests::guests().hostile.clone(),
        json!({"mode": "keep", "needs": needs}),
    )
}

fn guest_config(path: std::path::PathBuf, config: serde_json::Value) -> PluginConfig {
    PluginConfig {
        name: "keep".into(),
        path,
        sha256: None,
        config,
        // A failing call would drop the batch, which the warm-up below would notice.
        on_error: OnError::FailClosed,
        timeout: Duration::from_millis(50),
        memory_limit: 64 << 20,
    }
}

/// A host and a keep-all plugin.
fn keep_plugin(needs: &[&str]) -> (PluginHost, Plugin) {
    load(&keep_config(needs))
}

fn load(cfg: &PluginConfig) -> (PluginHost, Plugin) {
    let host = PluginHost::new(None, &mut Registry::default()).expect("plugin host");
    let plugin = host.load(cfg).expect("load the keep plugin");
    (host, plugin)
}

/// `n` node_exporter-like series of 6 label pairs, with a value and a timestamp each.
fn batch(host: &PluginHost, stage: Stage, n: usize) -> Batch {
    let mut symbols = host.symbols().lock();
    let mut batch = Batch::new(stage, symbols.generation());
    for i in 0..n {
        let pairs = [
            ("__name__", format!("node_metric_{}", i % 50)),
            ("cpu", format!("{}", i % 16)),
            ("device", format!("dev{}", i % 7)),
            ("instance", "10.0.0.1:9100".to_owned()),
            ("job", "node".to_owned()),
            ("mode", format!("m{i}")),
        ];
        let ids: Vec<u32> = pairs
            .iter()
            .flat_map(|(n, v)| [symbols.intern(n), symbols.intern(v)])
            .collect();
        batch.push_sample(&ids, i as f64, 1_700_000_000_000 + i as i64);
    }
    batch
}

/// The first call sends every symbol; the benchmarks measure the steady state after it. Checks
/// the plugin really ran (a failure would have dropped the batch).
fn warm_up(plugin: &Plugin, batch: &Batch) {
    let outcome = plugin.process(batch).expect("fresh batch");
    assert!(
        outcome.keeps_all() && outcome.len() == batch.len(),
        "the keep plugin kept the batch"
    );
}

#[divan::bench(args = [1, 100, 1000])]
fn keep_relabel(bencher: Bencher, n: usize) {
    let (host, plugin) = keep_plugin(&[]);
    let batch = batch(&host, Stage::Relabel, n);
    warm_up(&plugin, &batch);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| plugin.process(divan::black_box(&batch)).map(|o| o.len()));
}

#[divan::bench(args = [1, 1000])]
fn keep_filter_values(bencher: Bencher, n: usize) {
    let (host, plugin) = keep_plugin(&["values", "timestamps"]);
    let batch = batch(&host, Stage::Filter, n);
    warm_up(&plugin, &batch);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| plugin.process(divan::black_box(&batch)).map(|o| o.len()));
}

/// The keep-all plugin written with the SDK (`tests/guests/sdk-keep`, reads each metric name):
/// what a plugin author's keep-all costs, SDK included.
#[divan::bench(args = [1, 1000])]
fn sdk_keep_relabel(bencher: Bencher, n: usize) {
    let (host, plugin) = load(&guest_config(test_guests::guests().sdk_keep.clone(), json!({})));
    let batch = batch(&host, Stage::Relabel, n);
    warm_up(&plugin, &batch);
    bencher
        .counter(ItemsCount::new(n))
        .bench_local(|| plugin.process(divan::black_box(&batch)).map(|o| o.len()));
}

/// A fresh instance's first call in a table of 100 000 symbols, which it receives all at once
/// (after a trap or a reload): ns per symbol = time / 100 000.
#[divan::bench(sample_count = 20)]
fn catch_up_100k_symbols(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = PluginHost::new(Some(dir.path().to_owned()), &mut Registry::default()).expect("plugin host");
    let mut batch = batch(&host, Stage::Relabel, 1);
    {
        let mut symbols = host.symbols().lock();
        (0..100_000).for_each(|i| _ = symbols.intern(&format!("pod-{i:08}")));
        batch.generation = symbols.generation();
    }
    let cfg = keep_config(&[]);
    bencher
        .counter(ItemsCount::new(100_000usize))
        .with_inputs(|| host.load(&cfg).expect("load from the cache"))
        .bench_local_values(|plugin| plugin.process(&batch).map(|o| o.len()));
}
