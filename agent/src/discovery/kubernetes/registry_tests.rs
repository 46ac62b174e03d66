use std::sync::atomic::AtomicUsize;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::config::{Config, Role};
use crate::discovery::kubernetes::object::{ObjKey, Object};

/// A starter that plans `specs` without connecting and hands the change senders to the test.
struct FakeStarter {
    specs: Vec<WatchSpec>,
    sinks: Mutex<Vec<mpsc::Sender<(usize, Change)>>>,
    starts: AtomicUsize,
    failures_left: AtomicUsize,
}

impl FakeStarter {
    fn new(specs: Vec<WatchSpec>, failures: usize) -> Arc<Self> {
        Arc::new(FakeStarter {
            specs,
            sinks: Mutex::new(Vec::new()),
            starts: AtomicUsize::new(0),
            failures_left: AtomicUsize::new(failures),
        })
    }

    fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }

    /// The change sender of the `n`th successful start.
    fn sink(&self, n: usize) -> mpsc::Sender<(usize, Change)> {
        self.sinks.lock().unwrap()[n].clone()
    }
}

impl Starter for FakeStarter {
    fn start(&self, _cfg: &KubernetesSdConfig, sink: WatchSink) -> StartFuture {
        self.starts.fetch_add(1, Ordering::SeqCst);
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Box::pin(async { Err(ClientError::NotInCluster) });
        }
        self.sinks.lock().unwrap().push(sink.tx);
        let specs = self.specs.clone();
        Box::pin(async move { Ok(specs) })
    }
}

fn pod_spec() -> Vec<WatchSpec> {
    vec![WatchSpec {
        resource: Role::Pod,
        namespace: None,
        label: None,
        field: None,
    }]
}

fn sd(entry: &str) -> KubernetesSdConfig {
    let text = format!("scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - {entry}\n");
    Config::from_yaml(&text, "t.yml").unwrap().scrape_configs[0].kubernetes_sd_configs[0].clone()
}

fn pod(name: &str, ip: &str) -> Change {
    Change::Apply(Object::Pod(Box::new(
        serde_json::from_value::<Pod>(json!({
            "metadata": {"name": name, "namespace": "a"},
            "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
            "status": {"podIP": ip},
        }))
        .unwrap(),
    )))
}

fn registry(starter: Arc<FakeStarter>) -> (KubernetesRegistry, Metrics) {
    let metrics = Metrics::unregistered();
    (
        KubernetesRegistry::with_parts(metrics.clone(), Duration::from_secs(10), starter),
        metrics,
    )
}

/// Subscribes with `prefix`; returns the receiver and the subscription's token.
fn subscribe(
    r: &KubernetesRegistry,
    cfg: &KubernetesSdConfig,
    prefix: &str,
) -> (mpsc::Receiver<Vec<TargetGroup>>, CancellationToken) {
    let (tx, rx) = mpsc::channel(16);
    let token = CancellationToken::new();
    r.subscribe(cfg, prefix.to_owned(), tx, token.clone());
    (rx, token)
}

/// The next update as sorted (source, address count) pairs; panics after 5 s of (paused) time.
async fn next(rx: &mut mpsc::Receiver<Vec<TargetGroup>>) -> Vec<(String, usize)> {
    let groups = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an update")
        .expect("channel open");
    let mut out: Vec<_> = groups.into_iter().map(|g| (g.source, g.targets.len())).collect();
    out.sort();
    out
}

async fn nothing_within(rx: &mut mpsc::Receiver<Vec<TargetGroup>>, wait: Duration) {
    if let Ok(Some(groups)) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected update {groups:?}");
    }
}

/// Lets spawned tasks run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn g(source: &str, n: usize) -> (String, usize) {
    (source.to_owned(), n)
}

#[tokio::test(start_paused = true)]
async fn jobs_with_equal_configs_share_one_discoverer_and_get_prefixed_snapshots() {
    let starter = FakeStarter::new(pod_spec(), 0);
    let (r, metrics) = registry(starter.clone());
    let cfg = sd("role: pod");
    let (mut a, _ta) = subscribe(&r, &cfg, "kubernetes_sd_configs[0]/");
    let (mut b, _tb) = subscribe(&r, &cfg.clone(), "kubernetes_sd_configs[1]/");
    settle().await;
    assert_eq!((starter.starts(), r.running(), metrics.discoverers()), (1, 1, 1));

    // Nothing before the initial list completes.
    let sink = starter.sink(0);
    sink.send((0, Change::Init)).await.unwrap();
    sink.send((0, pod("p1", "10.0.0.1"))).await.unwrap();
    nothing_within(&mut a, Duration::from_millis(100)).await;
    sink.send((0, Change::InitDone)).await.unwrap();
    assert_eq!(next(&mut a).await, vec![g("kubernetes_sd_configs[0]/pod/a/p1", 1)]);
    assert_eq!(next(&mut b).await, vec![g("kubernetes_sd_configs[1]/pod/a/p1", 1)]);

    // Then changes only, a deletion as an empty group of the same source.
    sink.send((0, pod("p2", "10.0.0.2"))).await.unwrap();
    assert_eq!(next(&mut a).await, vec![g("kubernetes_sd_configs[0]/pod/a/p2", 1)]);
    sink.send((
        0,
        Change::Delete(ObjKey {
            namespace: "a".into(),
            name: "p1".into(),
        }),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut a).await, vec![g("kubernetes_sd_configs[0]/pod/a/p1", 0)]);
    assert_eq!(next(&mut b).await, vec![g("kubernetes_sd_configs[1]/pod/a/p2", 1)]);
    assert_eq!(next(&mut b).await, vec![g("kubernetes_sd_configs[1]/pod/a/p1", 0)]);

    // A different config gets its own discoverer.
    let (_c, _tc) = subscribe(&r, &sd("role: node"), "x/");
    settle().await;
    assert_eq!((starter.starts(), r.running()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_late_subscriber_gets_the_current_groups_at_once() {
    let starter = FakeStarter::new(pod_spec(), 0);
    let (r, _) = registry(starter.clone());
    let cfg = sd("role: pod");
    let (_a, _ta) = subscribe(&r, &cfg, "a/");
    settle().await;
    let sink = starter.sink(0);
    for change in [
        Change::Init,
        pod("p1", "10.0.0.1"),
        pod("p2", "10.0.0.2"),
        Change::InitDone,
    ] {
        sink.send((0, change)).await.unwrap();
    }
    sink.send((
        0,
        Change::Delete(ObjKey {
            namespace: "a".into(),
            name: "p2".into(),
        }),
    ))
    .await
    .unwrap();
    settle().await;
    let (mut late, _tl) = subscribe(&r, &cfg, "late/");
    assert_eq!(next(&mut late).await, vec![g("late/pod/a/p1", 1)]);
    nothing_within(&mut late, Duration::from_millis(100)).await;
    assert_eq!(starter.starts(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unsubscribed_discoverer_survives_a_reload_and_stops_after_the_grace() {
    let starter = FakeStarter::new(pod_spec(), 0);
    let (r, metrics) = registry(starter.clone());
    let cfg = sd("role: pod");
    let (_a, token) = subscribe(&r, &cfg, "a/");
    settle().await;
    let sink = starter.sink(0);
    for change in [Change::Init, pod("p1", "10.0.0.1"), Change::InitDone] {
        sink.send((0, change)).await.unwrap();
    }
    settle().await;

    // A reload: the old job's subscription ends, the new one arrives within the grace.
    token.cancel();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut b, token_b) = subscribe(&r, &cfg, "b/");
    assert_eq!(next(&mut b).await, vec![g("b/pod/a/p1", 1)]);
    assert_eq!(starter.starts(), 1, "the watches were kept: no new list");

    // Dropping the receiver ends a subscription too; after the grace the discoverer stops.
    drop(b);
    tokio::time::sleep(Duration::from_secs(11)).await;
    settle().await;
    assert_eq!((r.running(), metrics.discoverers()), (0, 0));
    assert!(sink.is_closed(), "watch side closed with the discoverer");
    drop(token_b);

    // A new subscription starts a fresh discoverer.
    let (_c, _tc) = subscribe(&r, &cfg, "c/");
    settle().await;
    assert_eq!((starter.starts(), r.running()), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn connect_failures_are_retried_with_backoff() {
    let starter = FakeStarter::new(pod_spec(), 2);
    let (r, metrics) = registry(starter.clone());
    let (mut a, _t) = subscribe(&r, &sd("role: pod"), "a/");
    settle().await;
    assert_eq!(starter.starts(), 1);
    tokio::time::sleep(CONNECT_RETRY_MIN + Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(starter.starts(), 2);
    tokio::time::sleep(CONNECT_RETRY_MIN).await;
    settle().await;
    assert_eq!(starter.starts(), 2, "the second delay is doubled");
    tokio::time::sleep(CONNECT_RETRY_MIN).await;
    settle().await;
    assert_eq!(starter.starts(), 3);
    assert_eq!(metrics.failures_of(Role::Pod, Failure::Client), 2);
    let sink = starter.sink(0);
    for change in [Change::Init, pod("p1", "10.0.0.1"), Change::InitDone] {
        sink.send((0, change)).await.unwrap();
    }
    assert_eq!(next(&mut a).await, vec![g("a/pod/a/p1", 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_watch_that_never_lists_does_not_hold_back_the_others_forever() {
    let mut specs = pod_spec();
    specs.push(WatchSpec {
        resource: Role::Node,
        namespace: None,
        label: None,
        field: None,
    });
    let starter = FakeStarter::new(specs, 0);
    let (r, _) = registry(starter.clone());
    let (mut a, _t) = subscribe(&r, &sd("{role: pod, attach_metadata: {node: true}}"), "a/");
    settle().await;
    let sink = starter.sink(0);
    for change in [Change::Init, pod("p1", "10.0.0.1"), Change::InitDone] {
        sink.send((0, change)).await.unwrap();
    }
    // The node watch (index 1) is forbidden and never lists.
    nothing_within(&mut a, INITIAL_SYNC_TIMEOUT - Duration::from_secs(1)).await;
    assert_eq!(next(&mut a).await, vec![g("a/pod/a/p1", 1)]);
    sink.send((0, pod("p2", "10.0.0.2"))).await.unwrap();
    assert_eq!(next(&mut a).await, vec![g("a/pod/a/p2", 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_gets_merged_updates() {
    let starter = FakeStarter::new(pod_spec(), 0);
    let (r, _) = registry(starter.clone());
    let cfg = sd("role: pod");
    let (tx, mut rx) = mpsc::channel(1);
    r.subscribe(&cfg, "s/".into(), tx, CancellationToken::new());
    settle().await;
    let sink = starter.sink(0);
    for change in [Change::Init, pod("p1", "10.0.0.1"), Change::InitDone] {
        sink.send((0, change)).await.unwrap();
    }
    settle().await;
    // The channel holds the snapshot; later changes queue and merge by source.
    for ip in ["10.0.0.2", "10.0.0.3", "10.0.0.4"] {
        sink.send((0, pod("p1", ip))).await.unwrap();
        settle().await;
    }
    sink.send((0, pod("p9", "10.0.0.9"))).await.unwrap();
    settle().await;
    assert_eq!(next(&mut rx).await, vec![g("s/pod/a/p1", 1)]);
    let mut received = Vec::new();
    while let Ok(Some(groups)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
        received.extend(groups);
    }
    let last_p1 = received.iter().rev().find(|g| g.source == "s/pod/a/p1").unwrap();
    assert_eq!(last_p1.targets[0].get("__address__"), "10.0.0.4:80");
    assert!(received.iter().any(|g| g.source == "s/pod/a/p9"));
    assert!(received.len() < 4, "queued updates were merged: {}", received.len());
}
