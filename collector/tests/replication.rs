//! Three collectors in this process on loopback, sharing one hashrings file, at RF = 3 and
//! RF = 2: every series lands on exactly its owners, a write survives one peer down at RF = 3,
//! and a write that cannot reach quorum gets 503.
//!
//! ```text
//!                    ┌─► collector-0 (owns some series: local head)
//! test ──POST──► any ┼─► collector-1   ◄─ forwards, header trawl-forwarded: 1
//!                    └─► collector-2   (a stopped one: connection refused)
//! probes: test ──POST (forwarded, same timestamp, other value)──► each collector:
//!         409 = it holds the series, 200 = it did not
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trawl_collector::collector::{self, CollectorError, CollectorOptions, ReplicationOptions};
use trawl_collector::hashring::{Algorithm, HashringSettings, Hashrings, config, series_hash};
use trawl_collector::receive::ReceiveConfig;
use trawl_collector::replicate::ReplicationConfig;
use trawl_model::remote::{Label, Sample, TimeSeries, WriteRequest};

const TENANT: &str = "team-a";
const TIMESTAMP: i64 = 1_700_000_000_000;

struct Node {
    address: String,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), CollectorError>>>,
}

/// Three collectors; `running[i]` says whether collector `i` is started. A stopped one's port
/// refuses connections, or with [`Fleet::start_silent`] accepts them and never answers.
struct Fleet {
    _dir: tempfile::TempDir,
    /// The bound but never served listeners of the silent collectors.
    _silent: Vec<tokio::net::TcpListener>,
    nodes: Vec<Node>,
    rings: Hashrings,
    rf: usize,
    client: reqwest::Client,
}

impl Fleet {
    async fn start(rf: usize, running: [bool; 3]) -> Fleet {
        Self::start_with(rf, running, false, Duration::from_secs(1)).await
    }

    /// As [`Fleet::start`], but the stopped collectors hang instead of refusing, and forwards
    /// are retried for `forward_timeout`.
    async fn start_silent(rf: usize, running: [bool; 3], forward_timeout: Duration) -> Fleet {
        Self::start_with(rf, running, true, forward_timeout).await
    }

    async fn start_with(rf: usize, running: [bool; 3], silent: bool, forward_timeout: Duration) -> Fleet {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let mut listeners = Vec::new();
        for _ in 0..3 {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
        let file = dir.path().join("hashrings.json");
        let json = format!(r#"[{{"hashring": "default", "endpoints": {addresses:?}}}]"#);
        std::fs::write(&file, &json).unwrap();
        let rings = Hashrings::new(&config::parse(json.as_bytes()).unwrap(), Algorithm::Hashmod, rf).unwrap();
        let mut nodes = Vec::new();
        let mut silent_listeners = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let shutdown = CancellationToken::new();
            let task = if running[i] {
                let opts = options(dir.path(), i, &file, &addresses[i], rf, forward_timeout);
                Some(tokio::spawn(collector::run(opts, listener, shutdown.clone())))
            } else {
                if silent {
                    silent_listeners.push(listener);
                }
                None
            };
            nodes.push(Node {
                address: addresses[i].clone(),
                shutdown,
                task,
            });
        }
        let fleet = Fleet {
            _dir: dir,
            _silent: silent_listeners,
            nodes,
            rings,
            rf,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        for node in fleet.nodes.iter().filter(|n| n.task.is_some()) {
            fleet.wait_ready(&node.address).await;
        }
        fleet
    }

    async fn wait_ready(&self, address: &str) {
        for _ in 0..200 {
            let ready = self.client.get(format!("http://{address}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{address} not ready");
    }

    /// Posts series `ids` (value `value`) to collector `node`; `forwarded` marks it as a
    /// peer's forward (stored there, not routed).
    async fn post(&self, node: usize, ids: &[usize], value: f64, forwarded: bool) -> (u16, String) {
        let body = snap::raw::Encoder::new().compress_vec(&request(ids, value)).unwrap();
        let mut post = self
            .client
            .post(format!("http://{}/api/v1/receive", self.nodes[node].address))
            .header("Content-Encoding", "snappy")
            .header("THANOS-TENANT", TENANT)
            .body(body);
        if forwarded {
            post = post.header("Trawl-Forwarded", "1");
        }
        let response = post.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The collectors that should hold series `id`, by placement.
    fn owners(&self, id: usize) -> BTreeSet<usize> {
        let ring = self.rings.ring_for(TENANT).unwrap();
        let value = id.to_string();
        let hash = series_hash(TENANT, &[("__name__", "requests"), ("id", &value)]);
        (0..self.rf)
            .map(|n| {
                let address = &ring.get_n(hash, n).unwrap().address;
                self.nodes.iter().position(|node| &node.address == address).unwrap()
            })
            .collect()
    }

    /// The collectors holding series `id`: a forwarded sample at the same timestamp with
    /// another value is a conflict (409) exactly where the series is stored. (Where it is not,
    /// the probe stores it, so probe each series once.)
    async fn holders(&self, id: usize) -> BTreeSet<usize> {
        let mut holders = BTreeSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.task.is_none() {
                continue;
            }
            let (status, text) = self.post(i, &[id], -1.0, true).await;
            match status {
                409 => {
                    holders.insert(i);
                }
                200 => {}
                other => panic!("probe of series {id} on collector {i}: {other} {text}"),
            }
        }
        holders
    }

    async fn stop(mut self) {
        for node in &mut self.nodes {
            node.shutdown.cancel();
            if let Some(task) = node.task.take() {
                task.await.unwrap().unwrap();
            }
        }
    }
}

fn options(dir: &Path, i: usize, file: &Path, address: &str, rf: usize, forward_timeout: Duration) -> CollectorOptions {
    CollectorOptions {
        tsdb_path: dir.join(format!("collector-{i}")),
        block_duration: Duration::from_secs(2 * 3600),
        retention: Duration::from_secs(6 * 3600),
        objstore_config: None,
        external_labels: [("replica".to_owned(), format!("collector-{i}"))].into(),
        receive: ReceiveConfig::default(),
        replication: Some(ReplicationOptions {
            hashrings: HashringSettings {
                file: file.to_owned(),
                algorithm: Algorithm::Hashmod,
                replication_factor: rf,
                refresh_interval: Duration::from_secs(300),
            },
            replication: ReplicationConfig {
                local_endpoint: address.to_owned(),
                forward_timeout,
            },
        }),
    }
}

/// `requests{id="<id>"}` with one sample at [`TIMESTAMP`] per id.
fn request(ids: &[usize], value: f64) -> Vec<u8> {
    WriteRequest {
        timeseries: ids
            .iter()
            .map(|id| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "requests".into(),
                    },
                    Label {
                        name: "id".into(),
                        value: id.to_string(),
                    },
                ],
                samples: vec![Sample {
                    value,
                    timestamp: TIMESTAMP,
                }],
                exemplars: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    }
    .encode_to_vec()
}

/// Writes `ids` through collector `entry`, then checks every series is held by exactly its
/// owners.
async fn assert_exact_placement(fleet: &Fleet, entry: usize, ids: &[usize]) {
    let (status, text) = fleet.post(entry, ids, 1.0, false).await;
    assert_eq!(status, 200, "{text}");
    let mut per_node = [0usize; 3];
    for &id in ids {
        let owners = fleet.owners(id);
        assert_eq!(owners.len(), fleet.rf);
        assert_eq!(fleet.holders(id).await, owners, "series {id}");
        owners.iter().for_each(|&o| per_node[o] += 1);
    }
    // Hashmod over 3 nodes: every collector owns some series (at RF = 3, all of them).
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rf3_every_series_lands_on_its_three_owners() {
    let fleet = Fleet::start(3, [true; 3]).await;
    assert_exact_placement(&fleet, 0, &(0..20).collect::<Vec<_>>()).await;
    // The same request again is made of exact duplicates everywhere: stored.
    assert_eq!(fleet.post(1, &[20, 21], 1.0, false).await.0, 200);
    assert_eq!(fleet.post(1, &[20, 21], 1.0, false).await.0, 200);
    // Other values at stored timestamps conflict on every owner: 409, not retried.
    let (status, text) = fleet.post(2, &[20, 21], 2.0, false).await;
    assert_eq!(status, 409, "{text}");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rf2_every_series_lands_on_exactly_its_two_owners() {
    let fleet = Fleet::start(2, [true; 3]).await;
    assert_exact_placement(&fleet, 1, &(0..30).collect::<Vec<_>>()).await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rf3_write_succeeds_with_one_peer_down() {
    let fleet = Fleet::start(3, [true, true, false]).await;
    let ids: Vec<usize> = (0..10).collect();
    let (status, text) = fleet.post(0, &ids, 1.0, false).await;
    assert_eq!(status, 200, "{text}");
    for id in ids {
        assert_eq!(fleet.holders(id).await, BTreeSet::from([0, 1]), "series {id}");
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rf3_answers_at_quorum_without_waiting_for_a_silent_peer() {
    // Collector 2 accepts connections and never answers; its forwards are retried for 60 s.
    let fleet = Fleet::start_silent(3, [true, true, false], Duration::from_secs(60)).await;
    let ids: Vec<usize> = (0..10).collect();
    let started = std::time::Instant::now();
    let (status, text) = fleet.post(0, &ids, 1.0, false).await;
    assert_eq!(status, 200, "{text}");
    // Far below the forward timeout: the answer came at quorum, not at the deadline.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    for id in ids {
        assert_eq!(fleet.holders(id).await, BTreeSet::from([0, 1]), "series {id}");
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_out_of_reach_is_503() {
    // RF = 3 with two of three down: one owner of 2 needed.
    let fleet = Fleet::start(3, [true, false, false]).await;
    let (status, text) = fleet.post(0, &[1, 2, 3], 1.0, false).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("fewer than 2 of their owners"), "{text}");
    fleet.stop().await;

    // RF = 2 with one of three down: the series it co-owns cannot reach 2 of 2.
    let fleet = Fleet::start(2, [true, true, false]).await;
    let ids: Vec<usize> = (0..30).collect();
    let affected = ids.iter().filter(|&&id| fleet.owners(id).contains(&2)).count();
    assert!(affected > 0);
    let (status, text) = fleet.post(0, &ids, 1.0, false).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains(&format!("{affected} of 30 series")), "{text}");
    fleet.stop().await;
}
