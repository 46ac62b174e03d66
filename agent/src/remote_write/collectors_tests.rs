//! Failover between collectors on loopback: real HTTP receivers, a server that never answers,
//! a closed port, and host names resolved by a scripted table (several loopback addresses,
//! 127.0.0.1 and 127.0.0.2, on one port) or by the system (`localhost`).
//!
//! ```text
//!                 ┌─► collector A  127.0.0.1:a   (503 / 400 / 429 / silent / closed)
//! test ─store()─► Client ─┼─► collector B  127.0.0.1:b   (200)
//!                 └─► collector C  127.0.0.1:c
//! ```
//!
//! Real time; every wait is bounded by [`WAIT`]. Hedging is shown by which receiver got the
//! batch with `remote_timeout` far longer than the test may take, not by wall-clock limits.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use trawl_model::labels::Labels;
use trawl_model::remote::{Compressor, SeriesBuffer, encode_labels};

use super::super::{Client, SendError};
use super::{CollectorFamilies, Resolver, SystemResolver, Timing};
use crate::config::{HttpClientConfig, QueueConfig, RemoteWriteConfig, TlsConfig};
use crate::test_support::{Answer, Ca, RawServer, Receiver, Reply, WAIT, reply};

// === Helpers ===

/// Longer than any test runs: a send that waits for it has not failed over.
const NEVER: Duration = Duration::from_secs(300);

fn config(urls: &[&url::Url]) -> RemoteWriteConfig {
    RemoteWriteConfig {
        urls: urls.iter().map(|u| (*u).clone()).collect(),
        name: "test".to_owned(),
        remote_timeout: NEVER,
        headers: BTreeMap::new(),
        write_relabel_configs: Vec::new(),
        queue_config: QueueConfig {
            retry_on_http_429: true,
            ..QueueConfig::default()
        },
        http: HttpClientConfig::default(),
        plugins: Vec::new(),
    }
}

/// A client with production timing over a scripted resolver, and the registry of its metrics.
fn client(cfg: &RemoteWriteConfig) -> (Client, Registry) {
    client_with(cfg, Timing::default(), Arc::new(Table::default()))
}

fn client_with(cfg: &RemoteWriteConfig, timing: Timing, resolver: Arc<dyn Resolver>) -> (Client, Registry) {
    let mut registry = Registry::default();
    let families = CollectorFamilies::register(&mut registry);
    let client = Client::build(cfg, &families, timing, resolver).expect("client builds");
    (client, registry)
}

/// A valid snappy `WriteRequest` with one sample at `t`.
fn body(t: i64) -> Bytes {
    let mut batch = SeriesBuffer::with_capacity(64);
    batch.push_sample(&encode_labels(&Labels::from_pairs([("__name__", "up")])), t, 1.0);
    Bytes::copy_from_slice(Compressor::default().compress(batch.proto()).expect("compress"))
}

/// Stores `body` within [`WAIT`].
async fn store(client: &Client, body: Bytes) -> Result<(), SendError> {
    tokio::time::timeout(WAIT, client.store(body))
        .await
        .expect("store returns in time")
}

/// The exposition line values of `trawl_agent_remote_write_<name>` containing `needle`.
fn metric(registry: &Registry, name: &str, needle: &str) -> Vec<f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    let prefix = format!("trawl_agent_remote_write_{name}{{");
    text.lines()
        .filter(|line| line.starts_with(&prefix) && line.contains(needle))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// `collector_up` of the collector whose name is `url`.
fn up(registry: &Registry, url: &url::Url) -> f64 {
    let values = metric(registry, "collector_up", &format!("collector=\"{url}\""));
    assert_eq!(values.len(), 1, "one collector_up series for {url}");
    values[0]
}

/// The `collector` names of the client's current collectors, in order.
fn names(client: &Client) -> Vec<String> {
    client
        .collectors
        .snapshot()
        .iter()
        .map(|c| c.name().to_owned())
        .collect()
}

fn failovers(registry: &Registry) -> f64 {
    metric(registry, "failovers_total", "remote_name=\"test\"")[0]
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> url::Url {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}/api/v1/write").parse().expect("url")
}

/// A server that accepts connections, reads what comes, and never answers.
struct Silent {
    url: url::Url,
    accepts: Arc<AtomicUsize>,
}

impl Silent {
    async fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepts);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut sink = tokio::io::sink();
                    let _ = tokio::io::copy(&mut stream, &mut sink).await;
                });
            }
        });
        Silent {
            url: format!("http://{address}/api/v1/write").parse().expect("url"),
            accepts,
        }
    }
}

/// A resolver answering from a table the test changes; names not in it fail. Counts lookups.
#[derive(Default)]
struct Table {
    hosts: Mutex<HashMap<String, Vec<IpAddr>>>,
    lookups: AtomicUsize,
}

impl Table {
    fn set(&self, host: &str, addresses: &[IpAddr]) {
        self.hosts.lock().unwrap().insert(host.to_owned(), addresses.to_vec());
    }
}

impl Resolver for Table {
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = self.hosts.lock().unwrap().get(host).cloned();
        Box::pin(async move { answer.ok_or_else(|| std::io::Error::other("no such host")) })
    }
}

/// A resolver that never answers.
struct Stuck;

impl Resolver for Stuck {
    fn lookup(&self, _: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        Box::pin(std::future::pending())
    }
}

const LOCAL_1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const LOCAL_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Receivers on 127.0.0.1 and 127.0.0.2 with the same port, as two pods behind one name.
async fn same_port_pair(first: Vec<Reply>, second: Vec<Reply>) -> (Receiver, Receiver, u16) {
    for _ in 0..20 {
        let a = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = a.local_addr().expect("address").port();
        if let Ok(b) = TcpListener::bind(SocketAddr::new(LOCAL_2, port)).await {
            return (Receiver::serve(a, first, None), Receiver::serve(b, second, None), port);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

fn pinned(ip: IpAddr, port: u16) -> url::Url {
    format!("http://{}/api/v1/write", SocketAddr::new(ip, port))
        .parse()
        .expect("url")
}

// === Failover ===

#[tokio::test]
async fn a_503_sends_the_same_batch_to_the_next_collector() {
    let a = Receiver::start(vec![reply(503)]).await;
    let b = Receiver::start(Vec::new()).await;
    let (client, registry) = client(&config(&[&a.url, &b.url]));

    store(&client, body(1)).await.expect("B accepts");

    assert_eq!(a.attempts(), 1);
    assert_eq!(b.accepted().len(), 1);
    assert_eq!(
        a.state.lock().unwrap().requests[0].body,
        b.state.lock().unwrap().requests[0].body
    );
    assert_eq!(up(&registry, &a.url), 0.0);
    assert_eq!(up(&registry, &b.url), 1.0);
    assert_eq!(failovers(&registry), 1.0);

    // A is skipped for its backoff: the next batches go to B only.
    store(&client, body(2)).await.expect("B accepts");
    store(&client, body(3)).await.expect("B accepts");
    assert_eq!(a.attempts(), 1);
    assert_eq!(b.accepted().len(), 3);
}

#[tokio::test]
async fn two_failing_collectors_of_three_leave_the_batch_to_the_third() {
    let a = Receiver::start(vec![reply(503)]).await;
    let b = Receiver::start(vec![reply(500)]).await;
    let c = Receiver::start(Vec::new()).await;
    let (client, registry) = client(&config(&[&a.url, &b.url, &c.url]));

    store(&client, body(1)).await.expect("C accepts");

    assert_eq!((a.attempts(), b.attempts(), c.accepted().len()), (1, 1, 1));
    assert_eq!(failovers(&registry), 2.0);
    assert_eq!(
        (up(&registry, &a.url), up(&registry, &b.url), up(&registry, &c.url)),
        (0.0, 0.0, 1.0)
    );
}

/// Stores one batch that first goes to `silent` and is hedged to `b`, which accepts it; the
/// silent collector is then marked down.
async fn hedged_once(client: &Client, registry: &Registry, silent: &Silent, b: &Receiver) {
    store(client, body(1)).await.expect("B accepts the hedged batch");

    assert_eq!(
        silent.accepts.load(Ordering::SeqCst),
        1,
        "the first send went to the silent one"
    );
    assert_eq!(b.accepted().len(), 1);
    assert_eq!(failovers(registry), 1.0);
    assert_eq!(up(registry, &silent.url), 0.0);
}

#[tokio::test]
async fn a_silent_collector_is_hedged_to_another_one() {
    let silent = Silent::start().await;
    let b = Receiver::start(Vec::new()).await;
    let (client, registry) = client(&config(&[&silent.url, &b.url]));

    // remote_timeout is NEVER: only the hedge after 1.5 s can deliver within WAIT.
    hedged_once(&client, &registry, &silent, &b).await;

    // The loser is cancelled and skipped: the next batch goes straight to B.
    store(&client, body(2)).await.expect("B accepts");
    assert_eq!(b.accepted().len(), 2);
    assert_eq!(silent.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_collector_that_answered_fast_and_went_silent_is_hedged_sooner() {
    let silent = Silent::start().await;
    let b = Receiver::start(Vec::new()).await;
    // hedge_max is NEVER: only the delay learnt from the silent one's past answers can hedge.
    let timing = Timing {
        hedge_min: Duration::from_millis(50),
        hedge_max: NEVER,
        ..Timing::default()
    };
    let (client, registry) = client_with(&config(&[&silent.url, &b.url]), timing, Arc::new(Table::default()));
    client.collectors.snapshot()[0].answered(Duration::from_millis(5));

    hedged_once(&client, &registry, &silent, &b).await;
}

#[tokio::test]
async fn hedge_delay_follows_the_recent_peak_answer_time() {
    let (client, _registry) = client(&config(&[&closed_port().await]));
    let collector = Arc::clone(&client.collectors.snapshot()[0]);
    let timing = Timing::default();
    let ms = Duration::from_millis;
    assert_eq!(collector.hedge_after(&timing), timing.hedge_max, "no answer yet");

    collector.answered(ms(10));
    assert_eq!(
        collector.hedge_after(&timing),
        timing.hedge_min,
        "4 × 10 ms is under the floor"
    );
    collector.answered(ms(200));
    assert_eq!(
        collector.hedge_after(&timing),
        ms(800),
        "a slower answer raises the peak at once"
    );
    collector.answered(ms(100));
    assert_eq!(
        collector.hedge_after(&timing),
        ms(750),
        "a faster one lowers it by 1/8 of the gap"
    );
    collector.answered(ms(1000));
    assert_eq!(collector.hedge_after(&timing), timing.hedge_max, "capped");

    let mut delays = Vec::new();
    for _ in 0..40 {
        collector.answered(ms(10));
        delays.push(collector.hedge_after(&timing));
    }
    assert!(delays.is_sorted_by(|a, b| a >= b), "decays steadily: {delays:?}");
    assert_eq!(delays.last(), Some(&timing.hedge_min), "back to the floor");
}

#[tokio::test]
async fn a_single_silent_collector_times_out_without_failover() {
    let silent = Silent::start().await;
    let mut cfg = config(&[&silent.url]);
    cfg.remote_timeout = Duration::from_millis(300);
    let (client, registry) = client(&cfg);

    let error = store(&client, body(1)).await.expect_err("nobody answers");

    assert!(matches!(error, SendError::Request(ref e) if e.is_timeout()), "{error}");
    assert!(error.is_recoverable());
    assert_eq!(failovers(&registry), 0.0);
    assert_eq!(up(&registry, &silent.url), 0.0);
}

#[tokio::test]
async fn a_closed_port_fails_over_at_once() {
    let closed = closed_port().await;
    let b = Receiver::start(Vec::new()).await;
    let (client, registry) = client(&config(&[&closed, &b.url]));

    store(&client, body(1)).await.expect("B accepts");

    assert_eq!(b.accepted().len(), 1);
    assert_eq!(up(&registry, &closed), 0.0);
    assert_eq!(failovers(&registry), 1.0);
}

#[tokio::test]
async fn all_down_is_an_error_then_a_probe_recovers() {
    let a = Receiver::start(vec![reply(503)]).await;
    let b = Receiver::start(vec![reply(502)]).await;
    let (client, registry) = client(&config(&[&a.url, &b.url]));

    let error = store(&client, body(1)).await.expect_err("both fail");
    assert!(error.is_recoverable(), "{error}");
    assert!(
        matches!(error, SendError::Status { status, .. } if status.as_u16() == 502),
        "{error}"
    );
    assert_eq!((up(&registry, &a.url), up(&registry, &b.url)), (0.0, 0.0));

    // Both are in their 1 s backoff; the send still probes the one due first (A), which now
    // answers 200 and is up again.
    store(&client, body(2)).await.expect("A recovered");
    assert_eq!(a.accepted().len(), 1);
    assert_eq!(b.attempts(), 1);
    assert_eq!((up(&registry, &a.url), up(&registry, &b.url)), (1.0, 0.0));
}

#[tokio::test]
async fn a_400_is_not_failed_over() {
    let a = Receiver::start(vec![reply(400)]).await;
    let b = Receiver::start(Vec::new()).await;
    let (client, registry) = client(&config(&[&a.url, &b.url]));

    let error = store(&client, body(1)).await.expect_err("bad request");

    assert!(
        matches!(error, SendError::Status { status, .. } if status.as_u16() == 400),
        "{error}"
    );
    assert!(!error.is_recoverable());
    assert_eq!(b.attempts(), 0);
    assert_eq!(up(&registry, &a.url), 1.0, "a collector that answers is healthy");
    assert_eq!(failovers(&registry), 0.0);
}

#[tokio::test]
async fn a_429_is_failed_over_only_when_retried() {
    let a = Receiver::start(vec![reply(429)]).await;
    let b = Receiver::start(Vec::new()).await;
    let mut cfg = config(&[&a.url, &b.url]);
    cfg.queue_config.retry_on_http_429 = false;
    let (client, _) = client(&cfg);

    let error = store(&client, body(1)).await.expect_err("429 is permanent here");
    assert!(!error.is_recoverable());
    assert_eq!(b.attempts(), 0);
}

#[tokio::test]
async fn garbage_and_huge_retry_after_values_keep_the_backoff_bounded() {
    for (value, least, most) in [
        ("soon", Duration::ZERO, Duration::from_secs(1)),
        ("-5", Duration::ZERO, Duration::from_secs(1)),
        ("99999999999999999999", Duration::ZERO, Duration::from_secs(1)),
        ("18446744073709551615", Duration::from_secs(29), Duration::from_secs(30)),
        ("7", Duration::from_secs(6), Duration::from_secs(7)),
    ] {
        let a = Receiver::start(vec![Reply {
            status: 429,
            headers: vec![("retry-after", value)],
            body: "slow down\nsecond line",
        }])
        .await;
        let b = Receiver::start(Vec::new()).await;
        let (client, _) = client(&config(&[&a.url, &b.url]));

        store(&client, body(1)).await.expect("B accepts");

        assert_eq!(b.accepted().len(), 1, "Retry-After {value:?}");
        let collectors = client.collectors.snapshot();
        let until = collectors[0].down_until().expect("A is down");
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        assert!(left > least && left <= most, "Retry-After {value:?}: down for {left:?}");
    }
}

// === Health ===

#[tokio::test]
async fn backoff_doubles_to_the_cap_and_resets_after_an_answer() {
    let (client, registry) = client(&config(&[&closed_port().await]));
    let collector = Arc::clone(&client.collectors.snapshot()[0]);
    let timing = Timing::default();
    let mut seen = Vec::new();
    for _ in 0..7 {
        collector.failed(&timing, &"test", None);
        seen.push(collector.health().backoff.as_secs());
    }
    assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(up(&registry, &collector.url), 0.0);

    collector.answered(Duration::from_millis(10));
    assert!(collector.down_until().is_none());
    assert_eq!(up(&registry, &collector.url), 1.0);
    collector.failed(&timing, &"test", None);
    assert_eq!(collector.health().backoff, Duration::from_secs(1));
}

#[tokio::test]
async fn sends_rotate_over_healthy_collectors() {
    let a = Receiver::start(Vec::new()).await;
    let b = Receiver::start(Vec::new()).await;
    let (client, registry) = client(&config(&[&a.url, &b.url]));

    for t in 0..4 {
        store(&client, body(t)).await.expect("accepted");
    }

    assert_eq!((a.accepted().len(), b.accepted().len()), (2, 2));
    assert_eq!(failovers(&registry), 0.0);
}

#[tokio::test]
async fn an_endpoint_without_urls_fails_without_panicking() {
    let (client, _) = client(&config(&[]));
    let error = store(&client, body(1)).await.expect_err("nowhere to send");
    assert!(matches!(error, SendError::NoCollector));
    assert!(!error.is_recoverable());
}

// === Names resolving to several addresses ===

#[tokio::test]
async fn a_name_with_two_addresses_is_two_collectors() {
    let (first, second, port) = same_port_pair(vec![reply(503)], Vec::new()).await;
    let table = Arc::new(Table::default());
    table.set("collectors.test", &[LOCAL_1, LOCAL_2, LOCAL_1]);
    let url: url::Url = format!("http://collectors.test:{port}/api/v1/write").parse().unwrap();
    let (client, registry) = client_with(&config(&[&url]), Timing::default(), table.clone());

    store(&client, body(1)).await.expect("the second address accepts");

    let names = names(&client);
    assert_eq!(
        names,
        [pinned(LOCAL_1, port).to_string(), pinned(LOCAL_2, port).to_string()]
    );
    assert_eq!(first.attempts(), 1);
    assert_eq!(second.accepted().len(), 1);
    // Pinning the address keeps the name in the Host header (and SNI).
    let host = second.state.lock().unwrap().requests[0].headers["host"].clone();
    assert_eq!(host, format!("collectors.test:{port}").as_str());
    assert_eq!(up(&registry, &pinned(LOCAL_1, port)), 0.0);
    assert_eq!(up(&registry, &pinned(LOCAL_2, port)), 1.0);
    // The unresolved name's series is gone once its addresses are known.
    assert!(metric(&registry, "collector_up", "collectors.test").is_empty());
    assert_eq!(table.lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pinned_address_keeps_the_name_for_tls() {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf(&["collectors.test"]);
    let server = RawServer::start_tls(leaf.server_config(None, &[b"http/1.1"]), |_| {
        Answer::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let port = server.address.rsplit(':').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.issuer.pem()).unwrap();
    let table = Arc::new(Table::default());
    table.set("collectors.test", &[LOCAL_1]);
    let url: url::Url = format!("https://collectors.test:{port}/api/v1/write").parse().unwrap();
    let mut cfg = config(&[&url]);
    cfg.http.tls_config = TlsConfig {
        ca_file: Some(ca_file),
        ..TlsConfig::default()
    };
    let (client, _) = client_with(&cfg, Timing::default(), table);

    store(&client, body(1))
        .await
        .expect("the certificate for the name verifies");

    let handshakes = server.handshakes();
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].server_name.as_deref(), Some("collectors.test"));
    assert!(
        server.requests()[0]
            .head
            .to_ascii_lowercase()
            .contains(&format!("host: collectors.test:{port}"))
    );
}

#[tokio::test]
async fn names_are_resolved_again_and_vanished_addresses_dropped() {
    let (first, second, port) = same_port_pair(Vec::new(), Vec::new()).await;
    let table = Arc::new(Table::default());
    table.set("collectors.test", &[LOCAL_1]);
    let url: url::Url = format!("http://collectors.test:{port}/api/v1/write").parse().unwrap();
    let timing = Timing {
        resolve_every: Duration::ZERO,
        ..Timing::default()
    };
    let (client, registry) = client_with(&config(&[&url]), timing, table.clone());

    store(&client, body(1)).await.expect("first address accepts");
    table.set("collectors.test", &[LOCAL_2]);
    store(&client, body(2)).await.expect("second address accepts");

    assert_eq!((first.accepted().len(), second.accepted().len()), (1, 1));
    assert!(metric(&registry, "collector_up", pinned(LOCAL_1, port).as_str()).is_empty());
    assert_eq!(up(&registry, &pinned(LOCAL_2, port)), 1.0);

    // A failed lookup keeps the addresses known so far.
    table.hosts.lock().unwrap().clear();
    store(&client, body(3)).await.expect("second address still accepts");
    assert_eq!(second.accepted().len(), 2);
}

#[tokio::test]
async fn total_failure_resolves_again_before_the_next_send() {
    let (first, second, port) = same_port_pair(vec![reply(503), reply(503)], Vec::new()).await;
    let table = Arc::new(Table::default());
    table.set("collectors.test", &[LOCAL_1]);
    let url: url::Url = format!("http://collectors.test:{port}/api/v1/write").parse().unwrap();
    let (client, _) = client_with(&config(&[&url]), Timing::default(), table.clone());

    store(&client, body(1)).await.expect_err("the only address fails");
    // The service moved; the 30 s re-resolution is far off, but total failure forces one.
    table.set("collectors.test", &[LOCAL_2]);
    store(&client, body(2)).await.expect("the new address accepts");

    assert_eq!((first.attempts(), second.accepted().len()), (1, 1));
    assert_eq!(table.lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unresolvable_or_stuck_name_keeps_one_collector() {
    let url: url::Url = "http://collectors.invalid:19291/api/v1/write".parse().unwrap();
    for resolver in [Arc::new(Table::default()) as Arc<dyn Resolver>, Arc::new(Stuck)] {
        let timing = Timing {
            resolve_timeout: Duration::from_millis(50),
            ..Timing::default()
        };
        let (client, registry) = client_with(&config(&[&url]), timing, resolver);
        client.collectors.refresh().await;
        let names = names(&client);
        assert_eq!(names, [url.to_string()]);
        assert_eq!(up(&registry, &url), 1.0);
    }
}

#[tokio::test]
async fn localhost_resolves_through_the_system() {
    let a = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = a.local_addr().expect("address").port();
    let v4 = Receiver::serve(a, Vec::new(), None);
    // ::1 too, when this host has it and `localhost` names it.
    let v6 = match TcpListener::bind(("::1", port)).await {
        Ok(listener) => Some(Receiver::serve(listener, Vec::new(), None)),
        Err(_) => None,
    };
    let url: url::Url = format!("http://localhost:{port}/api/v1/write").parse().unwrap();
    let (client, _) = client_with(&config(&[&url]), Timing::default(), Arc::new(SystemResolver));

    store(&client, body(1)).await.expect("accepted");
    store(&client, body(2)).await.expect("accepted");

    let names = names(&client);
    assert!(names.contains(&pinned(LOCAL_1, port).to_string()), "{names:?}");
    let received = v4.accepted().len() + v6.as_ref().map_or(0, |r| r.accepted().len());
    assert_eq!(received, 2);
}
