//! Remote write against an in-test receiver on loopback that decodes every request with prost.
//!
//! ```text
//! test ──append()──► RemoteWrite ──HTTP POST──► axum receiver on 127.0.0.1:0
//!                                                (scripted replies, records every request)
//! ```
//!
//! Real time with short durations; every wait is bounded.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tempfile::TempDir;
use tokio::sync::Semaphore;
use trawl_model::labels::Labels;
use trawl_model::relabel::RelabelConfig;
use trawl_model::remote::{SeriesBuffer, WriteRequest, encode_labels};

use super::*;
use crate::config::{HttpClientConfig, QueueConfig, RemoteWriteConfig};
use crate::test_support::{Receiver, Reply, reply};

use crate::plugin::PluginSet;
use crate::test_support::WAIT;

/// Prepares one series of a target without labels.
fn prepare(rw: &RemoteWrite, labels: &Labels) -> PreparedSeries {
    rw.prepare_series(vec![labels.clone()], &Labels::new()).remove(0)
}

// === Helpers ===

fn config(url: &url::Url) -> RemoteWriteConfig {
    RemoteWriteConfig {
        urls: vec![url.clone()],
        name: "test".to_owned(),
        remote_timeout: Duration::from_secs(5),
        headers: BTreeMap::new(),
        write_relabel_configs: Vec::new(),
        queue_config: QueueConfig {
            capacity: 100,
            min_shards: 1,
            max_shards: 1,
            max_samples_per_send: 10,
            batch_send_deadline: Duration::from_millis(50),
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            retry_on_http_429: false,
            max_disk_usage: 1 << 30,
        },
        http: HttpClientConfig::default(),
        plugins: Vec::new(),
    }
}

/// Starts remote write with a fresh registry, returned for [`metric`], and a fresh queue
/// directory (deleted when the returned `TempDir` drops).
fn start(configs: &[RemoteWriteConfig], external_labels: &Labels) -> (RemoteWrite, Registry, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let families = RemoteWriteFamilies::register(&mut registry);
    let rw = RemoteWrite::new(configs, external_labels, &families, &PluginSet::default(), dir.path())
        .expect("remote write starts");
    (rw, registry, dir)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn series(rw: &RemoteWrite, name: &str) -> Arc<PreparedSeries> {
    Arc::new(prepare(rw, &labels(&[("__name__", name), ("job", "node")])))
}

/// A sample as the tests write them; [`append`] encodes them into a [`super::WriteBatch`].
struct QueuedSample {
    series: Arc<PreparedSeries>,
    timestamp_ms: i64,
    value: f64,
}

/// Appends `samples` as one scrape's batch, as a scrape loop does.
async fn append(rw: &RemoteWrite, samples: Vec<QueuedSample>) {
    let mut batch = rw.batch(0);
    for s in &samples {
        batch.push(&s.series, s.timestamp_ms, s.value);
    }
    rw.append(batch).await;
}

fn samples(series: &Arc<PreparedSeries>, timestamps: std::ops::Range<i64>) -> Vec<QueuedSample> {
    timestamps
        .map(|t| QueuedSample {
            series: Arc::clone(series),
            timestamp_ms: t,
            value: t as f64,
        })
        .collect()
}

/// The value of `trawl_agent_remote_write_<name>` (exposition name) with `remote_name="<remote>"`.
fn metric(registry: &Registry, name: &str, remote: &str) -> f64 {
    let name = format!("trawl_agent_remote_write_{name}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let prefix = format!("{name}{{");
    let label = format!("remote_name=\"{remote}\"");
    text.lines()
        .find(|line| line.starts_with(&prefix) && line.contains(&label))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} for {remote} in:\n{text}"))
}

/// Waits until [`metric`] reads `want`: the sender updates its metrics after the response, so
/// after the receiver has recorded the request.
async fn settled(registry: &Registry, name: &str, remote: &str, want: f64) {
    let deadline = Instant::now() + WAIT;
    while metric(registry, name, remote) != want {
        assert!(
            Instant::now() < deadline,
            "{name} for {remote} is {}, not {want}",
            metric(registry, name, remote)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn label_pairs(request: &WriteRequest, series: usize) -> Vec<(String, String)> {
    request.timeseries[series]
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// `(metric name, timestamp)` of every accepted sample, in arrival order.
fn received(receiver: &Receiver) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for request in receiver.accepted() {
        for ts in &request.timeseries {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map(|l| l.value.clone())
                .unwrap_or_default();
            out.extend(ts.samples.iter().map(|s| (name.clone(), s.timestamp)));
        }
    }
    out
}

/// The varint at the start of `bytes` (a snappy block's decoded length).
fn leading_varint(bytes: &[u8]) -> u64 {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

fn relabel_configs(yaml: &str) -> Vec<RelabelConfig> {
    serde_saphyr::from_str(yaml).expect("valid relabel configs")
}

// === Protocol ===

#[tokio::test]
async fn requests_carry_the_protocol_headers_and_a_snappy_block_body() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut cfg = config(&receiver.url);
    cfg.headers.insert("X-Scope-OrgID".to_owned(), "tenant-a".to_owned());
    let (rw, _registry, _queue) = start(&[cfg], &Labels::new());
    let up = series(&rw, "up");
    append(&rw, samples(&up, 1..2)).await;
    receiver.wait_for_samples(1).await;

    let state = receiver.state.lock().unwrap();
    let recorded = &state.requests[0];
    let header = |name: &str| {
        recorded
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-encoding").as_deref(), Some("snappy"));
    assert_eq!(header("content-type").as_deref(), Some("application/x-protobuf"));
    assert_eq!(
        header("user-agent"),
        Some(format!("trawl-agent/{}", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(header("x-prometheus-remote-write-version").as_deref(), Some("0.1.0"));
    assert_eq!(header("x-scope-orgid").as_deref(), Some("tenant-a"));
    // Block format: the body starts with the protobuf's length as a varint, where a framed
    // stream would start with its 0xff stream identifier chunk.
    assert_ne!(recorded.body.first(), Some(&0xff));
    let mut reencoded = SeriesBuffer::default();
    for ts in &recorded.request.timeseries {
        let labels = Labels::from_pairs(ts.labels.iter().map(|l| (l.name.clone(), l.value.clone())));
        reencoded.push_series(&encode_labels(&labels), &ts.samples);
    }
    assert_eq!(leading_varint(&recorded.body), reencoded.proto().len() as u64);
    assert_eq!(recorded.request.timeseries[0].samples[0].timestamp, 1);
    assert_eq!(recorded.request.timeseries[0].samples[0].value, 1.0);
}

#[tokio::test]
async fn protocol_headers_cannot_be_overridden_by_configured_headers() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut cfg = config(&receiver.url);
    cfg.headers.insert("Content-Type".to_owned(), "text/plain".to_owned());
    cfg.headers.insert("User-Agent".to_owned(), "other".to_owned());
    let (rw, _registry, _queue) = start(&[cfg], &Labels::new());
    append(&rw, samples(&series(&rw, "up"), 1..2)).await;
    receiver.wait_for_samples(1).await;
    let state = receiver.state.lock().unwrap();
    let headers = &state.requests[0].headers;
    assert_eq!(
        headers.get_all("content-type").iter().collect::<Vec<_>>(),
        ["application/x-protobuf"]
    );
    assert!(
        headers
            .get("user-agent")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("trawl-agent/")
    );
}

#[tokio::test]
async fn invalid_configured_headers_are_rejected_at_start() {
    let url: url::Url = "http://127.0.0.1:1/api/v1/write".parse().unwrap();
    for (name, value) in [("bad header", "x"), ("X-Ok", "line\nbreak")] {
        let mut cfg = config(&url);
        cfg.headers.insert(name.to_owned(), value.to_owned());
        let families = RemoteWriteFamilies::register(&mut Registry::default());
        let dir = tempfile::tempdir().unwrap();
        let result = RemoteWrite::new(&[cfg], &Labels::new(), &families, &PluginSet::default(), dir.path());
        assert!(
            matches!(result, Err(RemoteWriteError::Header { ref header, .. }) if header == name),
            "{name}"
        );
    }
}

#[tokio::test]
async fn labels_are_sorted_and_external_labels_do_not_override() {
    let receiver = Receiver::start(Vec::new()).await;
    let external = labels(&[("job", "external"), ("cluster", "c1"), ("zone", "z9")]);
    let (rw, _registry, _queue) = start(&[config(&receiver.url)], &external);
    let s = Arc::new(prepare(
        &rw,
        &labels(&[("zz", "1"), ("job", "node"), ("__name__", "up"), ("a", "2")]),
    ));
    append(&rw, samples(&s, 7..8)).await;
    receiver.wait_for_samples(1).await;

    let got = label_pairs(&receiver.accepted()[0], 0);
    let want: Vec<(String, String)> = [
        ("__name__", "up"),
        ("a", "2"),
        ("cluster", "c1"),
        ("job", "node"),
        ("zone", "z9"),
        ("zz", "1"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
    let names: Vec<&String> = got.iter().map(|(n, _)| n).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "labels sorted and unique: {names:?}"
    );
}

#[tokio::test]
async fn write_relabel_configs_rewrite_and_drop_per_endpoint() {
    let plain = Receiver::start(Vec::new()).await;
    let relabeled = Receiver::start(Vec::new()).await;
    let mut with_relabel = config(&relabeled.url);
    with_relabel.name = "relabeled".to_owned();
    // Drops `secret_*` series and then the `job` label; sees the external `cluster` label.
    with_relabel.write_relabel_configs = relabel_configs(
        "- source_labels: [__name__]\n  regex: secret_.*\n  action: drop\n\
         - regex: job\n  action: labeldrop\n\
         - source_labels: [cluster]\n  target_label: copied\n",
    );
    let (rw, registry, _queue) = start(&[config(&plain.url), with_relabel], &labels(&[("cluster", "c1")]));

    let kept = series(&rw, "up");
    let secret = series(&rw, "secret_token");
    assert!(kept.endpoint(0).is_some() && kept.endpoint(1).is_some());
    assert!(secret.endpoint(0).is_some() && secret.endpoint(1).is_none());
    let mut batch = samples(&kept, 1..3);
    batch.extend(samples(&secret, 1..4));
    append(&rw, batch).await;
    plain.wait_for_samples(5).await;
    relabeled.wait_for_samples(2).await;

    assert_eq!(received(&relabeled), [("up".to_owned(), 1), ("up".to_owned(), 2)]);
    let got = label_pairs(&relabeled.accepted()[0], 0);
    assert_eq!(
        got,
        [("__name__", "up"), ("cluster", "c1"), ("copied", "c1")].map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    assert_eq!(metric(&registry, "samples_dropped_total", "relabeled"), 3.0);
    assert_eq!(metric(&registry, "samples_dropped_total", "test"), 0.0);
    settled(&registry, "samples_total", "test", 5.0).await;
}

#[tokio::test]
async fn series_without_labels_are_dropped() {
    let url: url::Url = "http://127.0.0.1:1/api/v1/write".parse().unwrap();
    let (rw, _registry, _queue) = start(&[config(&url)], &Labels::new());
    assert_eq!(prepare(&rw, &Labels::new()).endpoints().collect::<Vec<_>>(), [None]);
}

// === Batching ===

#[tokio::test]
async fn batches_never_exceed_max_samples_per_send_and_partial_ones_wait_for_the_deadline() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.batch_send_deadline = Duration::from_millis(500);
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    let s = series(&rw, "up");

    let appended = Instant::now();
    append(&rw, samples(&s, 0..25)).await;
    receiver.wait_for_samples(25).await;

    {
        let state = receiver.state.lock().unwrap();
        let sizes: Vec<usize> = state.requests.iter().map(|r| r.request.timeseries.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        // Full batches go at once; the partial one only after the deadline.
        assert!(state.requests[1].at - appended < Duration::from_millis(450));
        assert!(state.requests[2].at - appended >= Duration::from_millis(500));
    }
    assert_eq!(
        received(&receiver).iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>()
    );
    settled(&registry, "samples_pending", "test", 0.0).await;
    settled(&registry, "highest_sent_timestamp_seconds", "test", 0.024).await;
    assert_eq!(metric(&registry, "queue_capacity", "test"), 100.0);
    assert_eq!(metric(&registry, "shards", "test"), 1.0);
}

#[tokio::test]
async fn a_scrape_larger_than_the_queue_is_queued_in_chunks() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.capacity = 7;
    cfg.queue_config.max_samples_per_send = 5;
    let (rw, _registry, _queue) = start(&[cfg], &Labels::new());
    let s = series(&rw, "up");
    tokio::time::timeout(WAIT, append(&rw, samples(&s, 0..100)))
        .await
        .expect("append must not wait forever");
    receiver.wait_for_samples(100).await;
    assert!(receiver.accepted().iter().all(|r| r.timeseries.len() <= 5));
    assert_eq!(
        received(&receiver).iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
}

// === Retries ===

#[tokio::test]
async fn server_errors_are_retried_without_loss_and_in_order_per_series() {
    let receiver = Receiver::start(vec![reply(500), reply(503), reply(500), reply(503)]).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.min_shards = 3;
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    let names = ["a", "b", "c", "d", "e"];
    let all: Vec<_> = names.iter().map(|n| series(&rw, n)).collect();
    // Ten scrapes, each with one sample of every series.
    for t in 0..10 {
        let scrape = all.iter().flat_map(|s| samples(s, t..t + 1)).collect();
        append(&rw, scrape).await;
    }
    receiver.wait_for_samples(50).await;

    let got = received(&receiver);
    assert_eq!(got.len(), 50, "each sample delivered exactly once");
    for name in names {
        let timestamps: Vec<i64> = got.iter().filter(|(n, _)| n == name).map(|(_, t)| *t).collect();
        assert_eq!(timestamps, (0..10).collect::<Vec<_>>(), "order of series {name}");
    }
    assert_eq!(receiver.attempts(), receiver.accepted().len() + 4);
    assert!(metric(&registry, "samples_retried_total", "test") >= 4.0);
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 0.0);
    settled(&registry, "samples_total", "test", 50.0).await;
}

#[tokio::test]
async fn retry_delays_double_from_min_backoff_up_to_max_backoff() {
    let receiver = Receiver::start(vec![reply(503); 5]).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.min_backoff = Duration::from_millis(20);
    cfg.queue_config.max_backoff = Duration::from_millis(80);
    let (rw, _registry, _queue) = start(&[cfg], &Labels::new());
    append(&rw, samples(&series(&rw, "up"), 0..10)).await;
    receiver.wait_for_samples(10).await;

    let state = receiver.state.lock().unwrap();
    let gaps: Vec<Duration> = state.requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    let expected = [20, 40, 80, 80, 80].map(Duration::from_millis);
    assert_eq!(gaps.len(), expected.len());
    for (gap, want) in gaps.iter().zip(expected) {
        // Uncapped doubling would wait 160 ms and 320 ms for the last two.
        assert!(*gap >= want && *gap < want + Duration::from_millis(75), "gaps {gaps:?}");
    }
}

#[tokio::test]
async fn network_errors_are_retried_until_the_receiver_appears() {
    // Reserve a port, close it, and start the receiver there only after the first attempts failed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url: url::Url = format!("http://{addr}/api/v1/write").parse().unwrap();
    let (rw, registry, _queue) = start(&[config(&url)], &Labels::new());
    append(&rw, samples(&series(&rw, "up"), 0..10)).await;

    let deadline = Instant::now() + WAIT;
    while metric(&registry, "samples_retried_total", "test") < 20.0 {
        assert!(Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let receiver = Receiver::serve(listener, Vec::new(), None);
    receiver.wait_for_samples(10).await;
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 0.0);
}

#[tokio::test]
async fn client_errors_drop_the_batch_without_retry() {
    let bad = Reply {
        status: 400,
        headers: Vec::new(),
        body: "out of order sample\nsecond line",
    };
    let receiver = Receiver::start(vec![bad]).await;
    let (rw, registry, _queue) = start(&[config(&receiver.url)], &Labels::new());
    let s = series(&rw, "up");
    append(&rw, samples(&s, 0..10)).await;
    receiver.wait_for_attempts(1).await;
    append(&rw, samples(&s, 10..20)).await;
    receiver.wait_for_samples(10).await;

    assert_eq!(receiver.attempts(), 2, "the rejected batch is not sent again");
    assert_eq!(
        received(&receiver).iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 10.0);
    assert_eq!(metric(&registry, "samples_retried_total", "test"), 0.0);
    settled(&registry, "samples_total", "test", 10.0).await;
    settled(&registry, "samples_pending", "test", 0.0).await;
}

fn too_many_requests() -> Reply {
    Reply {
        status: 429,
        headers: vec![("retry-after", "1")],
        body: "slow down",
    }
}

#[tokio::test]
async fn rate_limited_batches_are_retried_after_retry_after_when_enabled() {
    let receiver = Receiver::start(vec![too_many_requests()]).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.retry_on_http_429 = true;
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    append(&rw, samples(&series(&rw, "up"), 0..10)).await;
    receiver.wait_for_samples(10).await;

    let state = receiver.state.lock().unwrap();
    assert_eq!(state.requests.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    let waited = state.requests[1].at - state.requests[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retried after {waited:?}, before Retry-After"
    );
    drop(state);
    assert_eq!(metric(&registry, "samples_retried_total", "test"), 10.0);
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 0.0);
}

#[tokio::test]
async fn rate_limited_batches_are_dropped_when_retry_is_disabled() {
    let receiver = Receiver::start(vec![too_many_requests()]).await;
    let (rw, registry, _queue) = start(&[config(&receiver.url)], &Labels::new());
    let s = series(&rw, "up");
    append(&rw, samples(&s, 0..10)).await;
    receiver.wait_for_attempts(1).await;
    append(&rw, samples(&s, 10..11)).await;
    receiver.wait_for_samples(1).await;
    assert_eq!(receiver.attempts(), 2);
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 10.0);
    assert_eq!(metric(&registry, "samples_retried_total", "test"), 0.0);
}

// === Back-pressure and shutdown ===

/// A scrape ends with a partial chunk; the next one overflows the in-memory capacity and goes
/// to disk only: the partial batch is sent at once (a backlog waits), then the rest is read back.
#[tokio::test]
async fn a_scrape_past_the_memory_capacity_spills_to_disk_and_is_sent_in_order() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.capacity = 10;
    cfg.queue_config.batch_send_deadline = Duration::from_secs(600);
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    let s = series(&rw, "up");
    append(&rw, samples(&s, 0..5)).await;
    append(&rw, samples(&s, 5..15)).await;
    receiver.wait_for_samples(15).await;
    let timestamps: Vec<i64> = received(&receiver).iter().map(|(_, t)| *t).collect();
    assert_eq!(timestamps, (0..15).collect::<Vec<_>>());
    assert!(metric(&registry, "disk_read_bytes_total", "test") > 0.0);
    assert!(metric(&registry, "disk_written_bytes_total", "test") > 0.0);
}

#[tokio::test]
async fn append_never_waits_for_the_network() {
    let gate = Arc::new(Semaphore::new(0));
    let receiver = Receiver::start_with_gate(Vec::new(), Some(Arc::clone(&gate))).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.capacity = 20;
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    let s = series(&rw, "up");

    // 10 samples go in flight (held by the receiver), 20 fill memory, the rest is on disk only.
    for range in [0..10, 10..30, 30..31, 31..100] {
        tokio::time::timeout(WAIT, append(&rw, samples(&s, range)))
            .await
            .expect("append returns after the disk write");
    }
    assert_eq!(metric(&registry, "samples_pending", "test"), 100.0);
    assert_eq!(metric(&registry, "samples_total", "test"), 0.0);

    gate.add_permits(1000);
    receiver.wait_for_samples(100).await;
    assert_eq!(
        received(&receiver).iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 0.0);
    assert_eq!(metric(&registry, "samples_dropped_total", "test"), 0.0);
    settled(&registry, "samples_pending", "test", 0.0).await;
}

/// agent (3 shards) ──► receiver answering 503 for a while, then 200
#[tokio::test]
async fn a_receiver_down_then_up_gets_everything_in_order_per_series() {
    let receiver = Receiver::start(vec![reply(503); 40]).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.min_shards = 3;
    cfg.queue_config.capacity = 15;
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    let all: Vec<_> = names.iter().map(|n| series(&rw, n)).collect();
    for t in 0..60 {
        let scrape = all.iter().flat_map(|s| samples(s, t..t + 1)).collect();
        append(&rw, scrape).await;
    }
    receiver.wait_for_samples(7 * 60).await;
    let got = received(&receiver);
    assert_eq!(got.len(), 7 * 60, "each sample delivered exactly once");
    for name in names {
        let timestamps: Vec<i64> = got.iter().filter(|(n, _)| n == name).map(|(_, t)| *t).collect();
        assert_eq!(timestamps, (0..60).collect::<Vec<_>>(), "order of series {name}");
    }
    assert!(
        metric(&registry, "disk_read_bytes_total", "test") > 0.0,
        "the backlog went to disk"
    );
    assert_eq!(metric(&registry, "disk_dropped_samples_total", "test"), 0.0);
    settled(&registry, "samples_pending", "test", 0.0).await;
}

#[tokio::test]
async fn shutdown_flushes_queued_samples_without_waiting_for_the_deadline() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut cfg = config(&receiver.url);
    cfg.queue_config.batch_send_deadline = Duration::from_secs(60);
    cfg.queue_config.min_shards = 2;
    let (rw, registry, _queue) = start(&[cfg], &Labels::new());
    let (a, b) = (series(&rw, "a"), series(&rw, "b"));
    let mut batch = samples(&a, 0..13);
    batch.extend(samples(&b, 0..4));
    append(&rw, batch).await;

    let started = Instant::now();
    tokio::time::timeout(WAIT, rw.shutdown())
        .await
        .expect("shutdown returns");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(receiver.accepted_samples(), 17);
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 0.0);
    assert_eq!(metric(&registry, "samples_pending", "test"), 0.0);
}

/// agent ──► receiver answering 503 ── shutdown ── new agent on the same queue dir ──► receiver (200)
#[tokio::test]
async fn samples_left_at_shutdown_stay_on_disk_and_are_sent_after_a_restart() {
    let down = Receiver::start(vec![reply(503); 1000]).await;
    let mut cfg = config(&down.url);
    cfg.remote_timeout = Duration::from_millis(400);
    cfg.queue_config.batch_send_deadline = Duration::from_secs(60);
    let (rw, registry, queue) = start(std::slice::from_ref(&cfg), &Labels::new());
    let s = series(&rw, "up");
    append(&rw, samples(&s, 0..25)).await;
    down.wait_for_attempts(1).await;

    let late = rw.clone();
    let started = Instant::now();
    tokio::time::timeout(WAIT, rw.shutdown())
        .await
        .expect("shutdown returns");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert_eq!(down.accepted_samples(), 0);
    assert_eq!(
        metric(&registry, "samples_failed_total", "test"),
        0.0,
        "kept, not failed"
    );
    assert_eq!(metric(&registry, "samples_pending", "test"), 0.0);
    assert_eq!(metric(&registry, "disk_usage_bytes", "test"), 0.0);

    // A clone that appends after shutdown gets its samples counted, not queued.
    append(&late, samples(&s, 25..28)).await;
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 3.0);

    // The next run over the same directory sends them first, then its own.
    let up = Receiver::start(Vec::new()).await;
    cfg.urls = vec![up.url.clone()];
    let mut registry = Registry::default();
    let families = RemoteWriteFamilies::register(&mut registry);
    let rw = RemoteWrite::new(&[cfg], &Labels::new(), &families, &PluginSet::default(), queue.path()).unwrap();
    let s = series(&rw, "up");
    append(&rw, samples(&s, 28..30)).await;
    up.wait_for_samples(27).await;
    let timestamps: Vec<i64> = received(&up).iter().map(|(_, t)| *t).collect();
    assert_eq!(timestamps, (0..25).chain(28..30).collect::<Vec<_>>());
    settled(&registry, "samples_total", "test", 27.0).await;
    settled(&registry, "samples_pending", "test", 0.0).await;
}

/// agent (its runtime dropped mid-send, as `kill -9`) ── next agent, same queue dir ──► receiver
#[tokio::test]
async fn samples_appended_before_a_crash_are_sent_by_the_next_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url: url::Url = format!("http://{addr}/api/v1/write").parse().unwrap();
    let cfg = config(&url);
    let dir = tempfile::tempdir().unwrap();
    let (crashed, path) = (cfg.clone(), dir.path().to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let families = RemoteWriteFamilies::register(&mut Registry::default());
            let rw = RemoteWrite::new(&[crashed], &Labels::new(), &families, &PluginSet::default(), &path).unwrap();
            let s = series(&rw, "up");
            append(&rw, samples(&s, 0..15)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            append(&rw, samples(&s, 15..25)).await;
            // Never shut down nor dropped: only the runtime goes away.
            std::mem::forget(rw);
        });
    })
    .join()
    .unwrap();

    let receiver = Receiver::serve(tokio::net::TcpListener::bind(addr).await.unwrap(), Vec::new(), None);
    let mut registry = Registry::default();
    let families = RemoteWriteFamilies::register(&mut registry);
    let rw = RemoteWrite::new(&[cfg], &Labels::new(), &families, &PluginSet::default(), dir.path()).unwrap();
    receiver.wait_for_samples(25).await;
    let timestamps: Vec<i64> = received(&receiver).iter().map(|(_, t)| *t).collect();
    assert_eq!(timestamps, (0..25).collect::<Vec<_>>());
    settled(&registry, "samples_pending", "test", 0.0).await;
    rw.shutdown().await;
}

/// A reload starts the new queue before the old one has shut down: the new one waits for the
/// directory, and both runs' samples arrive in order.
#[tokio::test]
async fn a_new_remote_write_waits_for_the_previous_one_to_release_the_directory() {
    let receiver = Receiver::start(Vec::new()).await;
    let cfg = config(&receiver.url);
    let mut registry = Registry::default();
    let families = RemoteWriteFamilies::register(&mut registry);
    let dir = tempfile::tempdir().unwrap();
    let new = |families: &RemoteWriteFamilies| {
        RemoteWrite::new(
            std::slice::from_ref(&cfg),
            &Labels::new(),
            families,
            &PluginSet::default(),
            dir.path(),
        )
        .unwrap()
    };
    let old = new(&families);
    append(&old, samples(&series(&old, "up"), 0..5)).await;
    let next = new(&families);
    let s = series(&next, "up");
    let appending = tokio::spawn({
        let next = next.clone();
        async move { append(&next, samples(&s, 5..10)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!appending.is_finished(), "waits for the old queue");
    old.shutdown().await;
    tokio::time::timeout(WAIT, appending)
        .await
        .expect("append resumes")
        .unwrap();
    receiver.wait_for_samples(10).await;
    let timestamps: Vec<i64> = received(&receiver).iter().map(|(_, t)| *t).collect();
    assert_eq!(timestamps, (0..10).collect::<Vec<_>>());
    next.shutdown().await;
}

#[tokio::test]
async fn a_lower_shard_count_drains_the_leftover_shard_directories() {
    let down = Receiver::start(vec![reply(503); 1000]).await;
    let mut cfg = config(&down.url);
    cfg.remote_timeout = Duration::from_millis(100);
    cfg.queue_config.min_shards = 4;
    let (rw, _registry, queue) = start(std::slice::from_ref(&cfg), &Labels::new());
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let all: Vec<_> = names.iter().map(|n| series(&rw, n)).collect();
    append(&rw, all.iter().flat_map(|s| samples(s, 0..3)).collect()).await;
    rw.shutdown().await;

    let up = Receiver::start(Vec::new()).await;
    cfg.urls = vec![up.url.clone()];
    cfg.queue_config.min_shards = 1;
    let mut registry = Registry::default();
    let families = RemoteWriteFamilies::register(&mut registry);
    let rw = RemoteWrite::new(
        std::slice::from_ref(&cfg),
        &Labels::new(),
        &families,
        &PluginSet::default(),
        queue.path(),
    )
    .unwrap();
    up.wait_for_samples(24).await;
    assert_eq!(received(&up).len(), 24);
    let endpoint = queue.path().join("test");
    let deadline = Instant::now() + WAIT;
    while endpoint.join("shard-3").exists() {
        assert!(Instant::now() < deadline, "leftover shard directory not removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rw.shutdown().await;
}

#[tokio::test]
async fn endpoints_are_independent_series_per_endpoint_metrics() {
    let first = Receiver::start(Vec::new()).await;
    let second = Receiver::start(vec![reply(400)]).await;
    let mut other = config(&second.url);
    other.name = "second".to_owned();
    let (rw, registry, _queue) = start(&[config(&first.url), other], &Labels::new());
    append(&rw, samples(&series(&rw, "up"), 0..10)).await;
    first.wait_for_samples(10).await;
    second.wait_for_attempts(1).await;
    rw.shutdown().await;
    assert_eq!(metric(&registry, "samples_total", "test"), 10.0);
    assert_eq!(metric(&registry, "samples_failed_total", "test"), 0.0);
    assert_eq!(metric(&registry, "samples_failed_total", "second"), 10.0);
    let by_endpoint: HashMap<&str, f64> = ["test", "second"]
        .into_iter()
        .map(|r| (r, metric(&registry, "bytes_total", r)))
        .collect();
    assert!(by_endpoint.values().all(|b| *b > 0.0), "{by_endpoint:?}");
    assert_eq!(metric(&registry, "sent_batch_duration_seconds_count", "test"), 1.0);
    assert_eq!(metric(&registry, "sent_batch_duration_seconds_count", "second"), 1.0);
}

#[tokio::test]
async fn a_restarted_endpoint_continues_its_series_in_the_same_families() {
    let receiver = Receiver::start(Vec::new()).await;
    let mut registry = Registry::default();
    let families = RemoteWriteFamilies::register(&mut registry);
    let cfg = config(&receiver.url);
    let dir = tempfile::tempdir().unwrap();
    let before = RemoteWrite::new(
        std::slice::from_ref(&cfg),
        &Labels::new(),
        &families,
        &PluginSet::default(),
        dir.path(),
    )
    .unwrap();
    append(&before, samples(&series(&before, "up"), 0..10)).await;
    before.shutdown().await;
    // A reload builds a new RemoteWrite over the same families.
    let after = RemoteWrite::new(&[cfg], &Labels::new(), &families, &PluginSet::default(), dir.path()).unwrap();
    append(&after, samples(&series(&after, "up"), 10..15)).await;
    after.shutdown().await;
    assert_eq!(receiver.accepted_samples(), 15);
    assert_eq!(metric(&registry, "samples_total", "test"), 15.0);
    assert_eq!(metric(&registry, "samples_pending", "test"), 0.0);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert_eq!(
        text.matches("# TYPE trawl_agent_remote_write_samples counter").count(),
        1
    );
}
