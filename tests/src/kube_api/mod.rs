//! A fake Kubernetes API server for tests (no real one can be installed here): an axum server on
//! 127.0.0.1 serving what kube-rs watchers and Prometheus-style discovery use.
//!
//! - core/v1 pods, nodes, services, endpoints, namespaces; discovery.k8s.io/v1 endpointslices;
//!   networking.k8s.io/v1 ingresses — cluster-wide and per namespace
//!   ([`resource`]: paths and kinds).
//! - LIST with `resourceVersion` semantics (unset/`0`: now; `N` with `resourceVersionMatch=Exact`
//!   or with `limit`: exactly at N, 410 Gone once compacted), equality and set-based
//!   `labelSelector`, `fieldSelector` with the fields the real server allows
//!   (`spec.nodeName`, `metadata.name`, …; others are a 400), `limit`/`continue` pagination over
//!   a consistent snapshot ([`http`]).
//! - WATCH streaming newline-delimited JSON events, resumed from any resourceVersion of the
//!   history; a compacted one gets an ERROR event with a `Status` 410 `Expired`, as the real
//!   server answers watches; periodic BOOKMARKs when `allowWatchBookmarks=true` ([`watch`]).
//! - One global resourceVersion, history and snapshots ([`store`]).
//! - Control for tests on [`KubeApi`]: apply/delete objects, compact, restart, outage, bearer
//!   tokens (401), RBAC refusals (403), raw hostile watch lines, and a request log.
//!
//! [`objects`] builds objects shaped like real clusters' JSON. Every task stops when the
//! [`KubeApi`] is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod http;
mod log;
pub mod objects;
mod resource;
mod selector;
mod server;
mod store;
mod watch;

pub use log::{LoggedRequest, Verb};
pub use resource::Resource;

/// How a [`KubeApi`] behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often open watches that allow bookmarks get one (the real server: about a minute).
    pub bookmark_interval: Duration,
    /// Bearer tokens accepted; empty: no authentication (every request is served).
    pub tokens: Vec<String>,
    /// The user named in 403 messages (`system:serviceaccount:<ns>:<name>` in a real cluster).
    pub user: String,
    /// The resourceVersion before the first write; real clusters' are large numbers.
    pub first_resource_version: u64,
}

impl Default for Options {
    /// Bookmarks every second, no authentication, user `system:serviceaccount:monitoring:trawl-agent`,
    /// resourceVersions starting after 481516.
    fn default() -> Options {
        Options {
            bookmark_interval: Duration::from_secs(1),
            tokens: Vec::new(),
            user: "system:serviceaccount:monitoring:trawl-agent".to_owned(),
            first_resource_version: 481_516,
        }
    }
}

/// A running fake API server at `http://127.0.0.1:PORT`; stops (tasks and connections) when
/// dropped. Must be created and used inside a tokio runtime.
pub struct KubeApi {
    shared: Arc<Shared>,
    running: Mutex<Option<server::Running>>,
}

/// What the request handlers and watch tasks share.
pub(crate) struct Shared {
    port: u16,
    options: Options,
    store: Mutex<store::Store>,
    access: Mutex<Access>,
    log: Mutex<Vec<LoggedRequest>>,
    watches: Mutex<HashMap<Resource, usize>>,
    /// The connections' generation: cancelled by a restart or an outage.
    generation: Mutex<CancellationToken>,
}

/// Authentication and authorization settings.
struct Access {
    tokens: HashSet<String>,
    forbidden: HashSet<Resource>,
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide the state).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    pub(crate) fn open_watches(&self) -> MutexGuard<'_, HashMap<Resource, usize>> {
        lock(&self.watches)
    }

    pub(crate) fn generation(&self) -> CancellationToken {
        lock(&self.generation).clone()
    }

    pub(crate) fn log(&self, request: LoggedRequest) {
        lock(&self.log).push(request);
    }

    /// Whether a request bearing `token` is let in.
    pub(crate) fn authenticated(&self, token: Option<&str>) -> bool {
        let access = lock(&self.access);
        access.tokens.is_empty() || token.is_some_and(|t| access.tokens.contains(t))
    }

    pub(crate) fn forbidden(&self, resource: Resource) -> bool {
        lock(&self.access).forbidden.contains(&resource)
    }

    /// The user a token authenticates as.
    pub(crate) fn user(&self, token: Option<&str>) -> String {
        match token {
            Some(_) => self.options.user.clone(),
            None => "system:anonymous".to_owned(),
        }
    }
}

impl KubeApi {
    /// Starts a server with [`Options::default`] on a free loopback port.
    pub async fn start() -> Result<KubeApi> {
        KubeApi::start_with(Options::default()).await
    }

    /// Starts a server with `options` on a free loopback port.
    pub async fn start_with(options: Options) -> Result<KubeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let generation = CancellationToken::new();
        let shared = Arc::new(Shared {
            port,
            store: Mutex::new(store::Store::new(options.first_resource_version)),
            access: Mutex::new(Access {
                tokens: options.tokens.iter().cloned().collect(),
                forbidden: HashSet::new(),
            }),
            options,
            log: Mutex::new(Vec::new()),
            watches: Mutex::new(HashMap::new()),
            generation: Mutex::new(generation.clone()),
        });
        let running = server::serve(listener, shared.clone(), generation);
        Ok(KubeApi {
            shared,
            running: Mutex::new(Some(running)),
        })
    }

    /// `http://127.0.0.1:PORT`, the `api_server` of a config.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.port)
    }

    /// The port; it stays the same across restarts and outages.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// The current resourceVersion (that of the last write).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Creates or replaces `object` (ADDED or MODIFIED for watchers); returns its new
    /// resourceVersion. It needs `apiVersion` and `kind` of a served resource, `metadata.name`
    /// and, when namespaced, `metadata.namespace`; nothing else is checked, so a malformed
    /// object (see [`objects::malformed_pod`]) is served in lists and watches as given.
    pub fn apply(&self, object: Value) -> Result<u64> {
        self.shared.store().apply(object)
    }

    /// Deletes an object (DELETED for watchers); `namespace` is `""` for nodes and namespaces.
    /// Returns the resourceVersion of the deletion; fails if it does not exist.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) -> Result<u64> {
        self.shared.store().delete(resource, namespace, name)
    }

    /// The stored object, if any.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(resource, namespace, name).map(|o| (*o).clone())
    }

    /// Forgets the history, as an etcd compaction does: every open watch ends with an ERROR
    /// event (`Status` code 410, reason `Expired`); later watches from an older resourceVersion
    /// get the same, and exact or paginated lists at one, or continue tokens from before, get
    /// an HTTP 410.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Cuts every connection (open watches end mid-stream) and listens again on the same port,
    /// keeping the objects and history: an API server restart.
    pub async fn restart(&self) -> Result<()> {
        self.set_unreachable(true).await?;
        self.set_unreachable(false).await
    }

    /// `true`: cuts every connection and closes the port (connections are refused).
    /// `false`: listens again on the same port. Idempotent.
    pub async fn set_unreachable(&self, unreachable: bool) -> Result<()> {
        if unreachable {
            let running = lock(&self.running).take();
            if let Some(running) = running {
                running.generation.cancel();
                // Wait until the listener is closed, so the port can be bound again.
                let _ = running.task.await;
            }
            return Ok(());
        }
        if lock(&self.running).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(("127.0.0.1", self.shared.port))
            .await
            .with_context(|| format!("listen again on 127.0.0.1:{}", self.shared.port))?;
        let generation = CancellationToken::new();
        *lock(&self.shared.generation) = generation.clone();
        *lock(&self.running) = Some(server::serve(listener, self.shared.clone(), generation));
        Ok(())
    }

    /// Replaces the accepted bearer tokens (a rotation); empty disables authentication. Open
    /// watches are not cut, as on a real server: they were authenticated when they started.
    pub fn set_tokens<I, S>(&self, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        lock(&self.shared.access).tokens = tokens.into_iter().map(Into::into).collect();
    }

    /// Refuses every request on `resource` with 403 and the RBAC authorizer's message.
    pub fn forbid(&self, resource: Resource) {
        lock(&self.shared.access).forbidden.insert(resource);
    }

    /// Serves `resource` again after [`KubeApi::forbid`].
    pub fn allow(&self, resource: Resource) {
        lock(&self.shared.access).forbidden.remove(&resource);
    }

    /// Sends `line` (plus a newline), unchecked, to every open watch of `resource`: hostile
    /// input such as a truncated event or one of an unknown type.
    pub fn inject_watch_line(&self, resource: Resource, line: &str) {
        self.shared.store().raw_line(resource, line);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).clone()
    }

    /// How many `verb` requests on `resource` were made so far.
    pub fn count(&self, verb: Verb, resource: Resource) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| r.verb == verb && r.resource == Some(resource))
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// How many watches of `resource` are open now.
    pub fn open_watches(&self, resource: Resource) -> usize {
        self.shared.open_watches().get(&resource).copied().unwrap_or(0)
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            running.generation.cancel();
            running.task.abort();
        }
    }
}
