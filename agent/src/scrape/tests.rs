//! Scraping against loopback peers: a target server the test controls and a recording
//! remote-write receiver.

use std::io::Write;
use std::time::Duration;

use axum::http::StatusCode;
use prometheus_client::registry::Registry;
use prost::Message;
use trawl_model::exposition::Format;
use trawl_model::labels::Labels;
use trawl_model::remote::WriteRequest;

use super::append::{AppendError, AppendOptions, Appender, PREPARE_CHUNK, merge_target_labels};
use super::cache::SeriesCache;
use super::{ScrapeFamilies, ScrapeManager, SharedTargets, Stop};
use crate::config::Config;
use crate::discovery::KubernetesRegistry;
use crate::plugin::{PluginHost, PluginSet};
use crate::remote_write::{RemoteWrite, RemoteWriteFamilies};
use crate::test_support::{Answer, Exposition, RawServer, Receiver, TargetServer};

const STALE_BITS: u64 = 0x7ff0_0000_0000_0002;

fn config(job_extra: &str, address: &str, receiver: &url::Url) -> Config {
    let yaml = format!(
        "global: {{scrape_interval: 100ms, scrape_timeout: 100ms}}\n\
         scrape_configs:\n  - job_name: test\n    static_configs: [{{targets: ['{address}']}}]\n{job_extra}\
         remote_write:\n  - url: {receiver}\n    queue_config: {{batch_send_deadline: 50ms}}\n"
    );
    Config::from_yaml(&yaml, "test.yml").expect("valid config")
}

struct Running {
    manager: ScrapeManager,
    remote: RemoteWrite,
    targets: SharedTargets,
}

async fn start(cfg: &Config) -> Running {
    let mut registry = Registry::default();
    let families = ScrapeFamilies::register(&mut registry);
    let remote_families = RemoteWriteFamilies::register(&mut registry);
    let remote = RemoteWrite::new(
        &cfg.remote_write,
        &cfg.global.external_labels,
        &remote_families,
        &PluginSet::default(),
        &tempfile::tempdir().unwrap().keep(),
    )
    .expect("remote");
    let targets = SharedTargets::default();
    let kubernetes = KubernetesRegistry::new(&mut registry);
    let mut manager = ScrapeManager::new(
        remote.clone(),
        PluginSet::default(),
        families,
        kubernetes,
        0,
        targets.clone(),
    );
    manager.apply(&cfg.scrape_configs).await;
    Running {
        manager,
        remote,
        targets,
    }
}

fn has(samples: &[(String, i64, f64)], series: &str, value: f64) -> bool {
    samples
        .iter()
        .any(|(l, _, v)| l == series && (v.to_bits() == value.to_bits() || *v == value))
}

/// The receiver's text for a series of the test job: labels sorted, as `Labels` prints them.
fn series(name: &str, address: &str, extra: &[(&str, &str)]) -> String {
    let pairs = [("__name__", name), ("instance", address), ("job", "test")];
    Labels::from_pairs(pairs.into_iter().chain(extra.iter().copied())).to_string()
}

/// target ──scrape──► agent ──remote write──► receiver
#[tokio::test]
async fn scrapes_are_delivered_with_target_labels_and_report_series() {
    let receiver = Receiver::start(Vec::new()).await;
    let url = receiver.url.clone();
    let (server, address) = TargetServer::start(Exposition::text("a 1\nb{x=\"y\"} 2 \n# HELP c x\n")).await;
    let running = start(&config("", &address, &url)).await;

    receiver
        .wait_for("samples and report series", |s| {
            has(s, &series("a", &address, &[]), 1.0)
                && has(s, &series("b", &address, &[("x", "y")]), 2.0)
                && has(s, &series("up", &address, &[]), 1.0)
                && has(s, &series("scrape_samples_scraped", &address, &[]), 2.0)
                && has(s, &series("scrape_samples_post_metric_relabeling", &address, &[]), 2.0)
                && has(s, &series("scrape_series_added", &address, &[]), 2.0)
                && has(s, &series("scrape_series_added", &address, &[]), 0.0)
        })
        .await;
    let headers = server.last_headers.lock().unwrap().clone();
    assert_eq!(headers["accept"], trawl_model::exposition::ACCEPT_HEADER);
    assert_eq!(headers["accept-encoding"], "gzip");
    assert_eq!(headers["x-prometheus-scrape-timeout-seconds"], "0.1");
    assert!(headers["user-agent"].to_str().unwrap().starts_with("trawl-agent/"));

    {
        let pools = running.targets.read().unwrap();
        let pool = pools["test"].read().unwrap();
        assert_eq!(pool.active.len(), 1);
        assert_eq!(pool.active[0].status().health, super::target::Health::Up);
    }
    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
}

#[tokio::test]
async fn vanished_series_failed_scrapes_and_removed_targets_go_stale() {
    let receiver = Receiver::start(Vec::new()).await;
    let url = receiver.url.clone();
    let (server, address) = TargetServer::start(Exposition::text("a 1\nb 2\n")).await;
    let mut running = start(&config("", &address, &url)).await;
    let (a, b, up) = (
        series("a", &address, &[]),
        series("b", &address, &[]),
        series("up", &address, &[]),
    );
    let stale = f64::from_bits(STALE_BITS);

    receiver.wait_for("b", |s| has(s, &b, 2.0)).await;
    server.set(Exposition::text("a 1\n"));
    receiver
        .wait_for("a staleness marker for b", |s| has(s, &b, stale))
        .await;
    assert!(!has(&receiver.samples(), &a, stale));

    // A failed scrape: up = 0 and every series of the last scrape goes stale.
    server.set(Exposition {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        ..Exposition::text("")
    });
    receiver
        .wait_for("up = 0 and a stale", |s| has(s, &up, 0.0) && has(s, &a, stale))
        .await;
    let status = running.targets.read().unwrap()["test"].read().unwrap().active[0].status();
    assert_eq!(
        status.last_error,
        "server returned HTTP status 500 Internal Server Error"
    );

    // The job is removed: its report series go stale too.
    server.set(Exposition::text("a 1\n"));
    receiver
        .wait_for("up = 1 again", |s| {
            s.iter().filter(|(l, _, v)| *l == up && *v == 1.0).count() >= 2
        })
        .await;
    running.manager.apply(&[]).await;
    receiver
        .wait_for("stale up", |s| has(s, &up, stale) && has(s, &a, stale))
        .await;
    assert!(running.targets.read().unwrap().is_empty());

    // Per series, timestamps only increase: shards keep the order.
    let samples = receiver.samples();
    for name in [&a, &b, &up] {
        let ts: Vec<i64> = samples
            .iter()
            .filter(|(l, _, _)| l == name)
            .map(|(_, t, _)| *t)
            .collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{name}: {ts:?}");
    }
    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
}

#[tokio::test]
async fn broken_bodies_fail_the_scrape_with_a_clear_error() {
    let receiver = Receiver::start(Vec::new()).await;
    let url = receiver.url.clone();
    let (server, address) = TargetServer::start(Exposition::text("a{b=\"1\" 1\n")).await;
    let running = start(&config("    body_size_limit: 64B\n", &address, &url)).await;
    let up = series("up", &address, &[]);
    let last_error = || {
        let pools = running.targets.read().unwrap();
        let pool = pools["test"].read().unwrap();
        pool.active[0].status().last_error
    };

    receiver
        .wait_for("up = 0 after a parse error", |s| has(s, &up, 0.0))
        .await;
    assert!(last_error().contains("line 1"), "{}", last_error());

    server.set(Exposition::text(&"a 1\n".repeat(100)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(last_error(), "body size limit exceeded (64 bytes)");

    // A gzip body under the limit is decoded; a gzip bomb stops at the limit.
    let gzip = |text: &str| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        Exposition {
            content_encoding: Some("gzip"),
            body: enc.finish().unwrap(),
            ..Exposition::text("")
        }
    };
    server.set(gzip("zipped 7\n"));
    receiver
        .wait_for("the gzip sample", |s| has(s, &series("zipped", &address, &[]), 7.0))
        .await;
    server.set(gzip(&"x".repeat(10 << 20)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(last_error(), "body size limit exceeded (64 bytes)");
    server.set(Exposition {
        body: b"\x1f\x8b garbage".to_vec(),
        ..gzip("")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(last_error().starts_with("invalid gzip body"), "{}", last_error());

    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
}

/// target (nothing listening) ──✗── agent ──remote write──► receiver
#[tokio::test]
async fn an_unreachable_target_is_down_with_the_connection_error() {
    let receiver = Receiver::start(Vec::new()).await;
    let url = receiver.url.clone();
    // Bind and drop to get a port nobody listens on.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let running = start(&config("", &address, &url)).await;
    let up = series("up", &address, &[]);
    receiver.wait_for("up = 0", |s| has(s, &up, 0.0)).await;
    let status = running.targets.read().unwrap()["test"].read().unwrap().active[0].status();
    assert_eq!(status.health, super::target::Health::Down);
    assert!(
        status.last_error.contains("Connection refused"),
        "{}",
        status.last_error
    );
    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
}

/// target (answers with something that is not HTTP) ──✗── agent ──remote write──► receiver
#[tokio::test]
async fn a_target_speaking_garbage_is_down_with_a_clear_error() {
    let receiver = Receiver::start(Vec::new()).await;
    let url = receiver.url.clone();
    let server = RawServer::start(|_| Answer::Close(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())).await;
    let running = start(&config("", &server.address, &url)).await;
    let up = series("up", &server.address, &[]);
    receiver.wait_for("up = 0", |s| has(s, &up, 0.0)).await;
    let status = running.targets.read().unwrap()["test"].read().unwrap().active[0].status();
    assert_eq!(status.health, super::target::Health::Down);
    assert_eq!(
        status.last_error,
        format!(
            "Get \"http://{}/metrics\": malformed HTTP response: invalid HTTP version parsed",
            server.address
        )
    );
    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
}

#[tokio::test]
async fn bearer_token_file_is_read_on_every_scrape() {
    let url = Receiver::start(Vec::new()).await.url;
    let (server, address) = TargetServer::start(Exposition::text("a 1\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first\n").unwrap();
    let extra = format!("    authorization: {{credentials_file: {}}}\n", token.display());
    let running = start(&config(&extra, &address, &url)).await;
    let auth = || {
        let h = server.last_headers.lock().unwrap();
        h.get("authorization").map(|v| v.to_str().unwrap().to_owned())
    };
    for want in ["Bearer first", "Bearer second"] {
        std::fs::write(&token, want.trim_start_matches("Bearer ")).unwrap();
        for _ in 0..100 {
            if auth().as_deref() == Some(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(auth().as_deref(), Some(want));
    }
    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
}

// === Appender: labels, relabeling, limits ===

async fn appender(job_extra: &str, target: Labels) -> (Appender, RemoteWrite) {
    let url = Receiver::start(Vec::new()).await.url;
    let cfg = config(job_extra, "unused:1", &url);
    let mut registry = Registry::default();
    let remote_families = RemoteWriteFamilies::register(&mut registry);
    let remote = RemoteWrite::new(
        &cfg.remote_write,
        &cfg.global.external_labels,
        &remote_families,
        &PluginSet::default(),
        &tempfile::tempdir().unwrap().keep(),
    )
    .unwrap();
    let opts = AppendOptions::new(&cfg.scrape_configs[0], &PluginSet::default());
    (Appender::new(target, opts, remote.clone()), remote)
}

/// Appends `body` once and returns the queued series as label text with their values, in the
/// order they were queued (one shard).
fn run(a: &mut Appender, body: &str) -> Result<Vec<(String, i64, f64)>, AppendError> {
    run_cached(a, &mut SeriesCache::default(), body)
}

/// [`run`] with the target's cache kept across calls.
fn run_cached(a: &mut Appender, cache: &mut SeriesCache, body: &str) -> Result<Vec<(String, i64, f64)>, AppendError> {
    cache.begin();
    let mut batch = a.remote.batch(0);
    a.append(
        body.as_bytes(),
        Format::Text,
        1000,
        cache,
        &mut batch,
        &mut Default::default(),
    )?;
    let request = WriteRequest::decode(batch.into_proto().proto()).unwrap();
    Ok(request
        .timeseries
        .iter()
        .map(|ts| {
            let labels: Vec<String> = ts.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            (labels.join(","), ts.samples[0].timestamp, ts.samples[0].value)
        })
        .collect())
}

fn target() -> Labels {
    Labels::from_pairs([("instance", "t:1"), ("job", "j")])
}

#[tokio::test]
async fn conflicting_labels_are_exported_unless_honored() {
    let (mut a, _r) = appender("", target()).await;
    let out = run(&mut a, "m{instance=\"x\",exported_instance=\"y\",job=\"z\"} 1\n").unwrap();
    assert_eq!(
        out[0].0,
        "__name__=m,exported_exported_instance=x,exported_instance=y,exported_job=z,instance=t:1,job=j"
    );
    let (mut a, _r) = appender("    honor_labels: true\n", target()).await;
    let out = run(&mut a, "m{instance=\"x\"} 1\n").unwrap();
    assert_eq!(out[0].0, "__name__=m,instance=x,job=j");

    let exposed = Labels::from_pairs([("__name__", "m"), ("job", "a"), ("instance", "b")]);
    let merged = merge_target_labels(exposed, &Labels::from_pairs([("job", "j")]), false);
    assert_eq!(
        merged.to_string(),
        r#"{__name__="m", exported_job="a", instance="b", job="j"}"#
    );
}

#[tokio::test]
async fn timestamps_duplicates_and_metric_relabeling() {
    let relabel = "    metric_relabel_configs:\n      - {source_labels: [__name__], regex: drop_me, action: drop}\n";
    let (mut a, _r) = appender(relabel, target()).await;
    let out = run(&mut a, "m 1 5000\nm 2 6000\ndrop_me 3\nn 4\n").unwrap();
    let got: Vec<(i64, f64)> = out.iter().map(|(_, t, v)| (*t, *v)).collect();
    assert_eq!(
        got,
        [(5000, 1.0), (1000, 4.0)],
        "duplicate m dropped, drop_me relabeled away"
    );

    let (mut a, _r) = appender("    honor_timestamps: false\n", target()).await;
    assert_eq!(run(&mut a, "m 1 5000\n").unwrap()[0].1, 1000);

    let drop_name = "    metric_relabel_configs:\n      - {action: labeldrop, regex: __name__}\n";
    let (mut a, _r) = appender(drop_name, target()).await;
    assert_eq!(run(&mut a, "m 1\n").unwrap_err(), AppendError::NameLabelMissing);
}

#[tokio::test]
async fn limits_fail_the_whole_scrape() {
    let (mut a, _r) = appender("    sample_limit: 2\n", target()).await;
    assert_eq!(run(&mut a, "a 1\nb 1\n").unwrap().len(), 2);
    assert_eq!(run(&mut a, "a 1\nb 1\nc 1\n").unwrap_err(), AppendError::SampleLimit(2));

    let (mut a, _r) = appender("    label_limit: 3\n", target()).await;
    assert!(run(&mut a, "a 1\n").is_ok());
    assert!(matches!(
        run(&mut a, "a{x=\"1\"} 1\n").unwrap_err(),
        AppendError::LabelLimit { count: 4, .. }
    ));

    let (mut a, _r) = appender("    label_name_length_limit: 8\n", target()).await;
    assert!(matches!(
        run(&mut a, "a{long_name=\"1\"} 1\n").unwrap_err(),
        AppendError::LabelNameLength { .. }
    ));

    let (mut a, _r) = appender("    label_value_length_limit: 3\n", target()).await;
    assert!(matches!(
        run(&mut a, "a{x=\"long\"} 1\n").unwrap_err(),
        AppendError::LabelValueLength { .. }
    ));
    assert!(matches!(
        run(&mut a, "a{x=\"1\" 1\n").unwrap_err(),
        AppendError::Parse(_)
    ));
}

#[tokio::test]
async fn a_body_of_blank_lines_queues_and_caches_nothing() {
    let (mut a, _r) = appender("", target()).await;
    let mut cache = SeriesCache::default();
    assert_eq!(run_cached(&mut a, &mut cache, &"\n".repeat(3_000_000)).unwrap(), []);
    assert!(cache.is_empty());
}

#[tokio::test]
async fn a_first_scrape_reserves_the_cache_for_its_sample_lines_not_its_comments() {
    let (mut a, _r) = appender("", target()).await;
    let mut cache = SeriesCache::default();
    let body: String = (0..300)
        .map(|i| format!("# HELP m{i} Help.\n# TYPE m{i} gauge\n\nm{i} 1\n"))
        .collect();
    assert_eq!(run_cached(&mut a, &mut cache, &body).unwrap().len(), 300);
    assert_eq!(cache.capacity(), 300, "reserved once, for the samples");
}

// === Appender with plugins (the hostile test guest, see tests/guests/hostile) ===

/// An appender whose job runs `plugins` (name, stage, guest config as YAML flow), with the
/// registry holding the plugin metrics.
async fn plugin_appender(plugins: &[(&str, &str, &str)], job_extra: &str) -> (Appender, Registry) {
    let url = Receiver::start(Vec::new()).await.url;
    let hostile = crate::plugin::test_guests::guests().hostile.display().to_string();
    let mut yaml = String::from("plugins:\n");
    let mut refs = Vec::new();
    for (name, stage, config) in plugins {
        yaml.push_str(&format!("  - {{name: {name}, path: '{hostile}', config: {config}}}\n"));
        refs.push(format!("{{name: {name}, stage: {stage}}}"));
    }
    yaml.push_str(&format!(
        "scrape_configs:\n  - job_name: test\n    plugins: [{}]\n{job_extra}remote_write:\n  - url: {url}\n",
        refs.join(", ")
    ));
    let cfg = Config::from_yaml(&yaml, "test.yml").expect("valid config");
    let mut registry = Registry::default();
    let host = PluginHost::new(None, &mut registry).unwrap();
    let set = PluginSet::load(&host, &cfg.plugins, &PluginSet::default()).unwrap();
    let remote_families = RemoteWriteFamilies::register(&mut registry);
    let remote = RemoteWrite::new(
        &cfg.remote_write,
        &cfg.global.external_labels,
        &remote_families,
        &set,
        &tempfile::tempdir().unwrap().keep(),
    )
    .unwrap();
    let appender = Appender::new(target(), AppendOptions::new(&cfg.scrape_configs[0], &set), remote);
    (appender, registry)
}

fn plugin_calls(registry: &Registry, plugin: &str, stage: &str) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let prefix = format!("trawl_agent_plugin_calls_total{{plugin=\"{plugin}\",stage=\"{stage}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or("absent")
        .to_owned()
}

#[tokio::test]
async fn relabel_plugins_run_once_per_new_series_and_are_cached() {
    let (mut a, registry) = plugin_appender(&[("r", "relabel", "{mode: modify}")], "").await;
    let mut cache = SeriesCache::default();
    let body = "a{drop_me=\"x\"} 1\nb_drop 2\nc 3\n";
    let out = run_cached(&mut a, &mut cache, body).unwrap();
    let want = [
        ("__name__=a,copy=a,instance=t:1,job=j,plugin=hostile", 1.0),
        ("__name__=c,copy=c,instance=t:1,job=j,plugin=hostile", 3.0),
    ];
    let got: Vec<(&str, f64)> = out.iter().map(|(l, _, v)| (l.as_str(), *v)).collect();
    assert_eq!(got, want, "labels edited, b_drop dropped, values untouched");
    assert_eq!(run_cached(&mut a, &mut cache, body).unwrap().len(), 2);
    assert_eq!(
        plugin_calls(&registry, "r", "relabel"),
        "1",
        "the second scrape hit the cache"
    );
    let out = run_cached(&mut a, &mut cache, "c 4\nd 5\n").unwrap();
    assert_eq!(out[1].0, "__name__=d,copy=d,instance=t:1,job=j,plugin=hostile");
    assert_eq!(
        plugin_calls(&registry, "r", "relabel"),
        "2",
        "one call for the new series d"
    );
}

#[tokio::test]
async fn new_series_are_prepared_a_chunk_at_a_time() {
    let (mut a, registry) = plugin_appender(&[("r", "relabel", "{mode: modify}")], "    label_limit: 6\n").await;
    let mut cache = SeriesCache::default();
    let series = 2 * PREPARE_CHUNK + 7;
    let body: String = (0..series).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    let out = run_cached(&mut a, &mut cache, &body).unwrap();
    assert_eq!(out.len(), series);
    for (i, (labels, _, value)) in out.iter().enumerate() {
        assert_eq!(
            *labels,
            format!("__name__=m,copy=m,i={i},instance=t:1,job=j,plugin=hostile")
        );
        assert_eq!(*value, i as f64);
    }
    assert_eq!(
        plugin_calls(&registry, "r", "relabel"),
        "3",
        "two full chunks and the rest"
    );
    assert_eq!(run_cached(&mut a, &mut cache, &body).unwrap().len(), series);
    assert_eq!(plugin_calls(&registry, "r", "relabel"), "3", "all cached");

    // A limit broken in a later chunk fails the scrape and caches none of its new series.
    let mut cache = SeriesCache::default();
    let body = format!("{body}late{{x=\"1\",y=\"2\"}} 1\n");
    assert!(matches!(
        run_cached(&mut a, &mut cache, &body).unwrap_err(),
        AppendError::LabelLimit { count: 7, .. }
    ));
    assert!(cache.is_empty());
}

#[tokio::test]
async fn filter_plugins_see_every_scrape_with_values() {
    let plugins = [("f", "filter", "{mode: modify, needs: [values]}")];
    let (mut a, registry) = plugin_appender(&plugins, "    sample_limit: 2\n").await;
    let mut cache = SeriesCache::default();
    for scrape in 1..=2 {
        let out = run_cached(&mut a, &mut cache, "a 1\nb_drop 2\nc 3\n").unwrap();
        let got: Vec<(&str, f64)> = out.iter().map(|(l, _, v)| (l.as_str(), *v)).collect();
        assert_eq!(
            got,
            [
                ("__name__=a,copy=a,instance=t:1,job=j,plugin=hostile", 2.0),
                ("__name__=c,copy=c,instance=t:1,job=j,plugin=hostile", 6.0)
            ],
            "scrape {scrape}: values doubled, b_drop dropped before sample_limit counts"
        );
        assert_eq!(plugin_calls(&registry, "f", "filter"), scrape.to_string());
    }
    assert_eq!(
        run_cached(&mut a, &mut cache, "a 1\nc 3\nd 4\n").unwrap_err(),
        AppendError::SampleLimit(2)
    );
}

#[tokio::test]
async fn a_failed_scrape_forgets_the_series_it_had_not_prepared() {
    let drop_name = "    metric_relabel_configs:\n      - {action: labeldrop, regex: __name__, source_labels: []}\n";
    let (mut a, _registry) = plugin_appender(&[("r", "relabel", "{mode: keep}")], drop_name).await;
    let mut cache = SeriesCache::default();
    assert_eq!(
        run_cached(&mut a, &mut cache, "m 1\n").unwrap_err(),
        AppendError::NameLabelMissing
    );
    assert!(cache.is_empty(), "no placeholder left to pass for a dropped series");
}
