//! [`KubernetesRegistry`]: one running discoverer per distinct `kubernetes_sd_configs` entry,
//! shared by every job (and every reload) subscribing with an equal entry, so an agent opens
//! one watch per resource however many jobs use it.
//!
//! Each discoverer is a task that owns a [`Discoverer`] and its subscribers:
//!
//! ```text
//! watch tasks ──(index, Change)──► discoverer task ──Arc<[group]>──► forwarder per subscriber
//!   (watch.rs)                      (state, joins,                     (prefix sources, merge
//!                                    snapshot, grace)                   backlog, send to tx)
//! ```
//!
//! - The client is built when the discoverer starts; failures are logged and retried with
//!   backoff (from [`CONNECT_RETRY_MIN`] to [`CONNECT_RETRY_MAX`]).
//! - Subscribers get the full snapshot once every watch finished its first list (or after
//!   [`INITIAL_SYNC_TIMEOUT`], with a warning), then the changes; a later subscriber gets the
//!   current snapshot at once.
//! - A discoverer left without subscribers stops after the grace period; the registry lock
//!   makes "stop" and "subscribe" exclusive, so no subscription is lost to a stopping task.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::client::{self, ClientError};
use super::discoverer::{Change, Discoverer};
use super::metrics::{Failure, Metrics};
use super::plan::{self, WatchSpec};
use super::watch::{self, WatchContext};
use crate::config::KubernetesSdConfig;
use crate::discovery::TargetGroup;

/// How long a discoverer without subscribers keeps its watches (a reload re-subscribes well
/// within it).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// How long subscribers wait for every watch's first list before getting what is known.
pub const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// First retry delay after the client could not be built; doubled up to [`CONNECT_RETRY_MAX`].
pub const CONNECT_RETRY_MIN: Duration = Duration::from_secs(5);
/// Largest retry delay for building the client.
pub const CONNECT_RETRY_MAX: Duration = Duration::from_secs(60);
/// Changes buffered between the watch tasks and the discoverer.
const CHANGES_BUFFER: usize = 256;
/// Changes applied before the groups they changed are sent.
const MAX_BATCH: usize = 1024;

/// Shares Kubernetes discoverers between jobs with identical `kubernetes_sd_configs` entries.
/// Cheap to clone; lives as long as the agent.
#[derive(Clone)]
pub struct KubernetesRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KubernetesRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("KubernetesRegistry")
            .field("discoverers", &running)
            .finish()
    }
}

struct Inner {
    metrics: Metrics,
    grace: Duration,
    starter: Arc<dyn Starter>,
    running: Mutex<HashMap<KubernetesSdConfig, Running>>,
    next_id: AtomicU64,
}

/// The registry's handle on a running discoverer.
struct Running {
    id: u64,
    control: mpsc::UnboundedSender<Control>,
}

enum Control {
    Subscribe(Subscription),
    Ended(u64),
}

struct Subscription {
    id: u64,
    prefix: String,
    tx: mpsc::Sender<Vec<TargetGroup>>,
    shutdown: CancellationToken,
}

/// Where a discoverer's watches send their changes.
pub(crate) struct WatchSink {
    /// Changes, tagged with the index of the watch in the returned plan.
    pub tx: mpsc::Sender<(usize, Change)>,
    /// Cancelled when the discoverer stops.
    pub shutdown: CancellationToken,
    /// Discovery metrics.
    pub metrics: Metrics,
}

type StartFuture = Pin<Box<dyn Future<Output = Result<Vec<WatchSpec>, ClientError>> + Send>>;

/// Starts the watches of a discoverer and returns the plan they follow (the real one connects
/// to the API server; tests feed changes by hand).
pub(crate) trait Starter: Send + Sync + 'static {
    /// Starts watching for `cfg`, sending into `sink`.
    fn start(&self, cfg: &KubernetesSdConfig, sink: WatchSink) -> StartFuture;
}

/// Connects to the API server of the config and runs one watch task per planned watch.
struct ApiStarter;

impl Starter for ApiStarter {
    fn start(&self, cfg: &KubernetesSdConfig, sink: WatchSink) -> StartFuture {
        let cfg = cfg.clone();
        Box::pin(async move {
            let api = client::connect(&cfg).await?;
            let specs = plan::watches(&cfg, api.own_namespace.as_deref());
            info!(
                message = "Kubernetes discovery connected.",
                role = cfg.role.as_str(),
                server = %api.server,
                watches = specs.len(),
            );
            for (index, spec) in specs.iter().enumerate() {
                let ctx = WatchContext {
                    index,
                    tx: sink.tx.clone(),
                    metrics: sink.metrics.clone(),
                    shutdown: sink.shutdown.child_token(),
                    server: api.server.clone(),
                };
                watch::spawn(api.client.clone(), spec, ctx);
            }
            Ok(specs)
        })
    }
}

impl KubernetesRegistry {
    /// An empty registry; its metrics (`trawl_agent_sd_kubernetes_*`) are registered in
    /// `registry`.
    pub fn new(registry: &mut prometheus_client::registry::Registry) -> Self {
        Self::with_parts(Metrics::register(registry), DEFAULT_GRACE, Arc::new(ApiStarter))
    }

    pub(crate) fn with_parts(metrics: Metrics, grace: Duration, starter: Arc<dyn Starter>) -> Self {
        KubernetesRegistry {
            inner: Arc::new(Inner {
                metrics,
                grace,
                starter,
                running: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Subscribes to the discoverer for `cfg`, starting it on first use. Must be called inside
    /// a tokio runtime.
    ///
    /// `tx` first gets every current group (once the initial lists are done), then each change
    /// as whole groups; a vanished object is an empty group of the same source. Every source is
    /// prefixed with `source_prefix` (e.g. `"kubernetes_sd_configs[0]/"`) so several configs in
    /// one job never collide. The subscription ends when `shutdown` is cancelled or `tx`'s
    /// receiver is dropped; a discoverer without subscribers stops after a short grace period
    /// ([`DEFAULT_GRACE`]), so a reload that subscribes again keeps its watches and does not
    /// relist.
    pub fn subscribe(
        &self,
        cfg: &KubernetesSdConfig,
        source_prefix: String,
        tx: mpsc::Sender<Vec<TargetGroup>>,
        shutdown: CancellationToken,
    ) {
        let inner = &self.inner;
        let mut sub = Subscription {
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            prefix: source_prefix,
            tx,
            shutdown,
        };
        let mut running = inner.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = running.get(cfg) {
            match r.control.send(Control::Subscribe(sub)) {
                Ok(()) => return,
                // The task is gone without retiring (it panicked): start a new one.
                Err(mpsc::error::SendError(Control::Subscribe(back))) => sub = back,
                Err(_) => return,
            }
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        // The receiver is alive: this send cannot fail.
        let _ = control.send(Control::Subscribe(sub));
        running.insert(
            cfg.clone(),
            Running {
                id,
                control: control.clone(),
            },
        );
        let task = DiscovererTask {
            cfg: cfg.clone(),
            id,
            inner: self.inner.clone(),
            control_tx: control,
            subscribers: Vec::new(),
            ready: false,
        };
        tokio::spawn(task.run(control_rx));
    }

    /// Number of running discoverers.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Inner {
    /// Removes discoverer `id` from the registry unless a message is waiting for it, which is
    /// returned instead; holds the registry lock, so no subscription can slip in between.
    fn retire(
        &self,
        cfg: &KubernetesSdConfig,
        id: u64,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Option<Control> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(message) = control.try_recv() {
            return Some(message);
        }
        if running.get(cfg).is_some_and(|r| r.id == id) {
            running.remove(cfg);
        }
        None
    }
}

/// A subscriber as the discoverer task sees it.
struct Subscriber {
    id: u64,
    queue: mpsc::UnboundedSender<Arc<Vec<TargetGroup>>>,
}

/// The task running one discoverer; see the module docs.
struct DiscovererTask {
    cfg: KubernetesSdConfig,
    id: u64,
    inner: Arc<Inner>,
    control_tx: mpsc::UnboundedSender<Control>,
    subscribers: Vec<Subscriber>,
    ready: bool,
}

// === impl DiscovererTask ===

impl DiscovererTask {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let metrics = self.inner.metrics.clone();
        let _running = metrics.discoverer_running();
        let watches = CancellationToken::new();
        let _stop_watches = watches.clone().drop_guard();
        let (changes_tx, mut changes) = mpsc::channel(CHANGES_BUFFER);
        let mut changes_tx = Some(changes_tx);
        let mut state: Option<Discoverer> = None;
        let mut starting: Option<StartFuture> = None;
        let mut connect_at = Some(Instant::now());
        let mut retry = CONNECT_RETRY_MIN;
        let mut sync_deadline: Option<Instant> = None;
        let mut idle_since: Option<Instant> = None;

        loop {
            let grace_end = idle_since.map(|t| t + self.inner.grace);
            tokio::select! {
                Some(message) = control.recv() => self.handle(message, state.as_ref(), &mut idle_since),
                _ = sleep_until(grace_end), if grace_end.is_some() => {
                    match self.inner.retire(&self.cfg, self.id, &mut control) {
                        Some(message) => self.handle(message, state.as_ref(), &mut idle_since),
                        None => return,
                    }
                }
                _ = sleep_until(connect_at), if connect_at.is_some() => {
                    connect_at = None;
                    if let Some(tx) = changes_tx.clone() {
                        let sink = WatchSink { tx, shutdown: watches.clone(), metrics: metrics.clone() };
                        starting = Some(self.inner.starter.start(&self.cfg, sink));
                    }
                }
                started = async {
                    match starting.as_mut() {
                        Some(start) => Some(start.await),
                        None => None,
                    }
                }, if starting.is_some() => {
                    starting = None;
                    match started {
                        Some(Ok(specs)) => {
                            // Only the watch tasks hold senders now: the channel closes with them.
                            changes_tx = None;
                            let mut d = Discoverer::new(self.cfg.role, plan::join_options(&self.cfg), &specs, metrics.clone());
                            if d.synced() {
                                self.become_ready(&mut d);
                            } else {
                                sync_deadline = Some(Instant::now() + INITIAL_SYNC_TIMEOUT);
                            }
                            state = Some(d);
                        }
                        Some(Err(error)) => {
                            metrics.failure(self.cfg.role, Failure::Client);
                            warn!(
                                message = "Kubernetes discovery cannot connect; retrying.",
                                role = self.cfg.role.as_str(),
                                retry_in = ?retry,
                                %error,
                            );
                            connect_at = Some(Instant::now() + retry);
                            retry = (retry * 2).min(CONNECT_RETRY_MAX);
                        }
                        None => {}
                    }
                }
                Some((index, change)) = changes.recv(), if state.is_some() => {
                    let Some(d) = state.as_mut() else { continue };
                    d.apply(index, change);
                    for _ in 0..MAX_BATCH {
                        match changes.try_recv() {
                            Ok((index, change)) => d.apply(index, change),
                            Err(_) => break,
                        }
                    }
                    if self.ready {
                        let pending = d.out.take_pending();
                        if !pending.is_empty() {
                            self.broadcast(Arc::new(pending));
                        }
                    } else if d.synced() {
                        self.become_ready(d);
                    }
                }
                _ = sleep_until(sync_deadline), if sync_deadline.is_some() && !self.ready => {
                    sync_deadline = None;
                    if let Some(d) = state.as_mut() {
                        warn!(
                            message = "Kubernetes discovery has not completed its initial lists; using the objects listed so far.",
                            role = self.cfg.role.as_str(),
                            waited = ?INITIAL_SYNC_TIMEOUT,
                        );
                        self.become_ready(d);
                    }
                }
            }
        }
    }

    /// Adds or removes a subscriber; a new one gets the snapshot when the discoverer is ready.
    fn handle(&mut self, message: Control, state: Option<&Discoverer>, idle_since: &mut Option<Instant>) {
        match message {
            Control::Subscribe(sub) => {
                let (queue, rx) = mpsc::unbounded_channel();
                if self.ready
                    && let Some(d) = state
                {
                    let snapshot = d.out.snapshot();
                    if !snapshot.is_empty() {
                        let _ = queue.send(Arc::new(snapshot));
                    }
                }
                self.subscribers.push(Subscriber { id: sub.id, queue });
                *idle_since = None;
                tokio::spawn(forward(sub, rx, self.control_tx.clone()));
            }
            Control::Ended(id) => {
                self.subscribers.retain(|s| s.id != id);
                if self.subscribers.is_empty() && idle_since.is_none() {
                    *idle_since = Some(Instant::now());
                }
            }
        }
    }

    /// Sends the snapshot to every subscriber and forwards changes from now on.
    fn become_ready(&mut self, d: &mut Discoverer) {
        self.ready = true;
        // Everything pending is in the snapshot.
        d.out.take_pending();
        let snapshot = d.out.snapshot();
        if !snapshot.is_empty() {
            self.broadcast(Arc::new(snapshot));
        }
    }

    fn broadcast(&self, batch: Arc<Vec<TargetGroup>>) {
        for sub in &self.subscribers {
            let _ = sub.queue.send(batch.clone());
        }
    }
}

/// `sleep_until(deadline)`, pending forever without one (for disabled `select!` arms).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends a subscriber its batches with prefixed sources, merging whatever queued up while it
/// was slow (the latest group of a source wins); reports its end to the discoverer.
async fn forward(
    sub: Subscription,
    mut rx: mpsc::UnboundedReceiver<Arc<Vec<TargetGroup>>>,
    control: mpsc::UnboundedSender<Control>,
) {
    loop {
        let first = tokio::select! {
            _ = sub.shutdown.cancelled() => break,
            _ = sub.tx.closed() => break,
            batch = rx.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        let mut merged = Merged::default();
        merged.add(&sub.prefix, &first);
        while let Ok(more) = rx.try_recv() {
            merged.add(&sub.prefix, &more);
        }
        let sent = tokio::select! {
            _ = sub.shutdown.cancelled() => false,
            sent = sub.tx.send(merged.groups) => sent.is_ok(),
        };
        if !sent {
            break;
        }
    }
    let _ = control.send(Control::Ended(sub.id));
}

/// Groups with prefixed sources, one per source.
#[derive(Default)]
struct Merged {
    groups: Vec<TargetGroup>,
    index: HashMap<String, usize>,
}

impl Merged {
    fn add(&mut self, prefix: &str, batch: &[TargetGroup]) {
        for group in batch {
            let group = TargetGroup {
                source: format!("{prefix}{}", group.source),
                ..group.clone()
            };
            match self.index.get(&group.source) {
                Some(&i) => self.groups[i] = group,
                None => {
                    self.index.insert(group.source.clone(), self.groups.len());
                    self.groups.push(group);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
