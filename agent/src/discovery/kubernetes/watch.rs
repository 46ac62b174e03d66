//! One task per [`WatchSpec`]: kube's `watcher` (paginated list, then watch from its resource
//! version with bookmarks; a watch that expires with 410 Gone relists, a broken one resumes),
//! slowed by kube's default backoff after errors (0.8 s doubling to 30 s, reset after 2 min of
//! quiet), its events turned into [`Change`]s for the discoverer.
//!
//! Errors never end the task: each is counted in `failures_total{role,reason}` and logged —
//! a warning the first time a reason occurs and again at most once per [`WARN_INTERVAL`] while
//! it repeats (with an RBAC hint for 403), and an info line when the watch recovers. The
//! discoverer keeps its groups meanwhile, so targets keep being scraped.

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::ClientError;
use super::discoverer::Change;
use super::metrics::{Failure, Metrics};
use super::object::{Lenient, Watched};
use super::plan::WatchSpec;
use crate::config::Role;

/// Objects per list page; small pages keep the memory of a relist small.
const PAGE_SIZE: u32 = 100;
/// Least time between two warnings of the same failure of one watch.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// Pause before a watcher is recreated from scratch (after an HTTP 410 to a watch request).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What a watch task needs besides its API.
pub(crate) struct WatchContext {
    /// The watch's index in the plan, sent with each change.
    pub index: usize,
    /// Where changes go; the task ends when it closes.
    pub tx: mpsc::Sender<(usize, Change)>,
    /// Discovery metrics.
    pub metrics: Metrics,
    /// Ends the task.
    pub shutdown: CancellationToken,
    /// The API server, for logs.
    pub server: String,
}

/// Starts the task watching `spec` with `client`.
pub(crate) fn spawn(client: kube::Client, spec: &WatchSpec, ctx: WatchContext) -> tokio::task::JoinHandle<()> {
    let mut config = watcher::Config::default().page_size(PAGE_SIZE);
    if let Some(label) = &spec.label {
        config = config.labels(label);
    }
    if let Some(field) = &spec.field {
        config = config.fields(field);
    }
    let ns = spec.namespace.as_deref();
    match spec.resource {
        Role::Pod => tokio::spawn(run(namespaced::<Pod>(client, ns), config, ctx)),
        Role::Service => tokio::spawn(run(namespaced::<Service>(client, ns), config, ctx)),
        Role::Endpoints => tokio::spawn(run(namespaced::<Endpoints>(client, ns), config, ctx)),
        Role::EndpointSlice => tokio::spawn(run(namespaced::<EndpointSlice>(client, ns), config, ctx)),
        Role::Ingress => tokio::spawn(run(namespaced::<Ingress>(client, ns), config, ctx)),
        Role::Node => tokio::spawn(run(Api::<Lenient<Node>>::all(client), config, ctx)),
    }
}

/// The API of a namespaced kind in `namespace`, or across all namespaces.
fn namespaced<K>(client: kube::Client, namespace: Option<&str>) -> Api<Lenient<K>>
where
    K: Watched + k8s_openapi::Resource<Scope = NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

async fn run<K: Watched>(api: Api<Lenient<K>>, config: watcher::Config, ctx: WatchContext) {
    let _open = ctx.metrics.watch_open(K::ROLE);
    let mut log = FailureLog::new(K::ROLE, ctx.server.clone(), ctx.metrics.clone());
    loop {
        let mut stream = pin!(watcher::watcher(api.clone(), config.clone()).default_backoff());
        loop {
            let next = tokio::select! {
                _ = ctx.shutdown.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    log.recovered();
                    let Some(change) = change(event, &ctx) else { continue };
                    if ctx.tx.send((ctx.index, change)).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    if log.failed(&error) {
                        break;
                    }
                }
                // kube's watcher never ends; start over if it does.
                None => break,
            }
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(RESTART_DELAY) => {}
        }
    }
}

/// The discoverer's view of one watcher event; malformed objects are counted and logged here.
fn change<K: Watched>(event: Event<Lenient<K>>, ctx: &WatchContext) -> Option<Change> {
    let malformed = |object: &Lenient<K>, error: &str| {
        ctx.metrics.failure(K::ROLE, Failure::Malformed);
        let key = object.key();
        warn!(
            message = "Skipping a malformed Kubernetes object.",
            resource = K::ROLE.as_str(),
            namespace = %key.namespace,
            name = %key.name,
            %error,
        );
    };
    Some(match event {
        Event::Init => Change::Init,
        Event::InitDone => Change::InitDone,
        Event::Delete(object) => Change::Delete(object.key()),
        Event::InitApply(object) => match object.object {
            Ok(typed) => Change::Apply(typed.into_object()),
            Err(ref error) => {
                malformed(&object, error);
                Change::Keep(object.key())
            }
        },
        Event::Apply(object) => match object.object {
            Ok(typed) => Change::Apply(typed.into_object()),
            Err(ref error) => {
                malformed(&object, error);
                return None;
            }
        },
    })
}

/// Counts failures and logs them without flooding.
struct FailureLog {
    resource: Role,
    server: String,
    metrics: Metrics,
    last_warned: Option<(Failure, Instant)>,
    failing: bool,
}

impl FailureLog {
    fn new(resource: Role, server: String, metrics: Metrics) -> Self {
        FailureLog {
            resource,
            server,
            metrics,
            last_warned: None,
            failing: false,
        }
    }

    /// Records `error`; returns whether the watcher must be recreated (HTTP 410 to a watch
    /// request, which kube's watcher would otherwise retry with the same expired version).
    fn failed(&mut self, error: &watcher::Error) -> bool {
        let (reason, restart) = classify(error);
        self.metrics.failure(self.resource, reason);
        self.failing = reason != Failure::Expired;
        let resource = self.resource.as_str();
        if reason == Failure::Expired {
            debug!(message = "Kubernetes resource version expired; relisting.", resource);
            return restart;
        }
        let now = Instant::now();
        let repeated = self
            .last_warned
            .is_some_and(|(last, at)| last == reason && now.duration_since(at) < WARN_INTERVAL);
        if repeated {
            debug!(message = "Kubernetes list/watch failed again.", resource, reason = reason.as_str(), %error);
            return restart;
        }
        self.last_warned = Some((reason, now));
        let hint = hint(self.resource, reason);
        warn!(
            message = "Kubernetes list/watch failed; keeping the last targets and retrying.",
            resource,
            server = %self.server,
            reason = reason.as_str(),
            hint,
            error = %crate::http_client::error_chain(error),
        );
        restart
    }

    /// Notes a successful event; logs the recovery after failures.
    fn recovered(&mut self) {
        if self.failing {
            info!(
                message = "Kubernetes list/watch recovered.",
                resource = self.resource.as_str()
            );
        }
        self.failing = false;
        self.last_warned = None;
    }
}

/// What the operator can do about `reason`.
fn hint(resource: Role, reason: Failure) -> String {
    let plural = match resource {
        Role::Node => "nodes",
        Role::Service => "services",
        Role::Pod => "pods",
        Role::Endpoints => "endpoints",
        Role::EndpointSlice => "endpointslices (API group discovery.k8s.io)",
        Role::Ingress => "ingresses (API group networking.k8s.io)",
    };
    match reason {
        Failure::Forbidden => format!("check the RBAC rules: the service account needs get/list/watch on {plural}"),
        Failure::Unauthorized => {
            "check the credentials (service account token, bearer_token_file, kubeconfig)".to_owned()
        }
        Failure::Unreachable => "check the API server address and the network".to_owned(),
        Failure::ServerError => "the API server failed; retrying".to_owned(),
        _ => String::new(),
    }
}

/// The failure reason of `error`, and whether the watcher must be recreated.
pub(crate) fn classify(error: &watcher::Error) -> (Failure, bool) {
    match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchFailed(e) => (classify_client(e), false),
        watcher::Error::WatchStartFailed(e) => {
            let reason = classify_client(e);
            (reason, reason == Failure::Expired)
        }
        watcher::Error::WatchError(status) => (by_status(status.code), false),
        watcher::Error::NoResourceVersion => (Failure::Decode, false),
    }
}

fn classify_client(error: &kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) => by_status(status.code),
        kube::Error::Service(inner) => match inner.downcast_ref::<ClientError>() {
            Some(ClientError::Timeout(_)) | None => Failure::Unreachable,
            Some(_) => Failure::Client,
        },
        kube::Error::HyperError(_) | kube::Error::ReadEvents(_) => Failure::Unreachable,
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) | kube::Error::LinesCodecMaxLineLengthExceeded => {
            Failure::Decode
        }
        _ => Failure::Client,
    }
}

fn by_status(code: u16) -> Failure {
    match code {
        401 => Failure::Unauthorized,
        403 => Failure::Forbidden,
        410 => Failure::Expired,
        500..=599 => Failure::ServerError,
        _ => Failure::HttpError,
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("x", "y").with_code(code).boxed())
    }

    #[test]
    fn failures_are_classified_by_status_and_kind() {
        let cases = [
            (watcher::Error::InitialListFailed(api(403)), Failure::Forbidden, false),
            (
                watcher::Error::InitialListFailed(api(401)),
                Failure::Unauthorized,
                false,
            ),
            (watcher::Error::InitialListFailed(api(503)), Failure::ServerError, false),
            (watcher::Error::InitialListFailed(api(404)), Failure::HttpError, false),
            (watcher::Error::WatchStartFailed(api(410)), Failure::Expired, true),
            (watcher::Error::WatchStartFailed(api(500)), Failure::ServerError, false),
            (
                watcher::Error::WatchError(Status::failure("gone", "Expired").with_code(410).boxed()),
                Failure::Expired,
                false,
            ),
            (
                watcher::Error::WatchFailed(kube::Error::SerdeError(serde_json::from_str::<u8>("x").unwrap_err())),
                Failure::Decode,
                false,
            ),
            (
                watcher::Error::InitialListFailed(kube::Error::Service("connection refused".into())),
                Failure::Unreachable,
                false,
            ),
            (
                watcher::Error::InitialListFailed(kube::Error::Service(Box::new(ClientError::Http(
                    crate::http_client::HttpClientError::InvalidCredentials,
                )))),
                Failure::Client,
                false,
            ),
            (watcher::Error::NoResourceVersion, Failure::Decode, false),
        ];
        for (error, reason, restart) in cases {
            assert_eq!(classify(&error), (reason, restart), "{error}");
        }
    }

    #[test]
    fn forbidden_names_the_rbac_rule() {
        assert_eq!(
            hint(Role::Pod, Failure::Forbidden),
            "check the RBAC rules: the service account needs get/list/watch on pods"
        );
        assert!(hint(Role::EndpointSlice, Failure::Forbidden).contains("discovery.k8s.io"));
        assert!(hint(Role::Node, Failure::Unauthorized).contains("token"));
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_are_counted_every_time_and_warned_rarely() {
        let metrics = Metrics::unregistered();
        let mut log = FailureLog::new(Role::Pod, "https://k".into(), metrics.clone());
        let forbidden = watcher::Error::InitialListFailed(api(403));
        assert!(!log.failed(&forbidden));
        let first = log.last_warned.unwrap().1;
        tokio::time::advance(Duration::from_secs(10)).await;
        log.failed(&forbidden);
        assert_eq!(
            log.last_warned.unwrap().1,
            first,
            "no second warning within the interval"
        );
        tokio::time::advance(WARN_INTERVAL).await;
        log.failed(&forbidden);
        assert!(log.last_warned.unwrap().1 > first, "warned again after the interval");
        assert_eq!(metrics.failures_of(Role::Pod, Failure::Forbidden), 3);
        assert!(log.failing);
        log.recovered();
        assert!(!log.failing && log.last_warned.is_none());
        // An expired version is routine: counted, never a warning.
        log.failed(&watcher::Error::WatchError(
            Status::failure("", "").with_code(410).boxed(),
        ));
        assert!(!log.failing && log.last_warned.is_none());
        assert_eq!(metrics.failures_of(Role::Pod, Failure::Expired), 1);
    }
}
