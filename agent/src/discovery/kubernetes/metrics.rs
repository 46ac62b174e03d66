//! Metrics of Kubernetes discovery, named in the spirit of Prometheus's
//! `prometheus_sd_kubernetes_events_total` and `prometheus_sd_kubernetes_failures_total`,
//! registered once per agent into an injected registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::Role;

/// What happened to a watched object, the `event` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// First seen.
    Add,
    /// Seen again (changed, or listed again after a relist).
    Update,
    /// Deleted, or gone from a relist.
    Delete,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Add => "add",
            EventKind::Update => "update",
            EventKind::Delete => "delete",
        }
    }
}

/// Why a list, watch or object failed, the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// One object could not be read as its kind; it was skipped.
    Malformed,
    /// The API server could not be reached (connect, TLS, reset, timeout).
    Unreachable,
    /// HTTP 401: credentials missing, wrong or expired.
    Unauthorized,
    /// HTTP 403: RBAC forbids get/list/watch.
    Forbidden,
    /// HTTP 410 or a watch `ERROR` with code 410: the resource version expired; relisting.
    Expired,
    /// HTTP 5xx.
    ServerError,
    /// Another HTTP error status.
    HttpError,
    /// A response that is not the JSON expected (list, watch event).
    Decode,
    /// The client could not be built or a request could not be authenticated.
    Client,
}

impl Failure {
    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Malformed => "malformed",
            Failure::Unreachable => "unreachable",
            Failure::Unauthorized => "unauthorized",
            Failure::Forbidden => "forbidden",
            Failure::Expired => "expired",
            Failure::ServerError => "server_error",
            Failure::HttpError => "http_error",
            Failure::Decode => "decode",
            Failure::Client => "client",
        }
    }

    const ALL: [Failure; 9] = [
        Failure::Malformed,
        Failure::Unreachable,
        Failure::Unauthorized,
        Failure::Forbidden,
        Failure::Expired,
        Failure::ServerError,
        Failure::HttpError,
        Failure::Decode,
        Failure::Client,
    ];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    role: &'static str,
    event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    role: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

/// The discovery metrics; cheap to clone (shared families).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    events: Family<EventLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    watches: Family<ResourceLabels, Gauge>,
    discoverers: Gauge,
}

impl Metrics {
    /// Registers under `trawl_agent_sd_kubernetes_`: `events_total{role,event}`,
    /// `failures_total{role,reason}`, `watches{resource}` (open watch streams) and
    /// `discoverers` (running discoverers). Every label value is pre-initialised.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let r = registry.sub_registry_with_prefix("trawl_agent_sd_kubernetes");
        r.register(
            "events",
            "Kubernetes watch events handled, by resource (role) and event.",
            metrics.events.clone(),
        );
        r.register(
            "failures",
            "Failed lists and watches and skipped malformed objects, by resource (role) and reason.",
            metrics.failures.clone(),
        );
        r.register(
            "watches",
            "Kubernetes watch streams currently running, by resource.",
            metrics.watches.clone(),
        );
        r.register(
            "discoverers",
            "Running Kubernetes discoverers (one per distinct kubernetes_sd_configs entry).",
            metrics.discoverers.clone(),
        );
        metrics
    }

    /// Families not registered anywhere, pre-initialised (for tests and registration).
    pub(crate) fn unregistered() -> Self {
        let metrics = Metrics {
            events: Family::default(),
            failures: Family::default(),
            watches: Family::default(),
            discoverers: Gauge::default(),
        };
        for role in Role::ALL {
            for event in [EventKind::Add, EventKind::Update, EventKind::Delete] {
                drop(metrics.events.get_or_create(&EventLabels {
                    role: role.as_str(),
                    event: event.as_str(),
                }));
            }
            for reason in Failure::ALL {
                drop(metrics.failures.get_or_create(&FailureLabels {
                    role: role.as_str(),
                    reason: reason.as_str(),
                }));
            }
            drop(metrics.watches.get_or_create(&ResourceLabels {
                resource: role.as_str(),
            }));
        }
        metrics
    }

    /// Counts one event on an object of `resource`.
    pub(crate) fn event(&self, resource: Role, event: EventKind) {
        self.events
            .get_or_create(&EventLabels {
                role: resource.as_str(),
                event: event.as_str(),
            })
            .inc();
    }

    /// Counts one failure on `resource`.
    pub(crate) fn failure(&self, resource: Role, reason: Failure) {
        self.failures
            .get_or_create(&FailureLabels {
                role: resource.as_str(),
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Marks a watch stream of `resource` open until the guard drops.
    pub(crate) fn watch_open(&self, resource: Role) -> GaugeGuard {
        GaugeGuard::new(
            self.watches
                .get_or_create(&ResourceLabels {
                    resource: resource.as_str(),
                })
                .clone(),
        )
    }

    /// Marks a discoverer running until the guard drops.
    pub(crate) fn discoverer_running(&self) -> GaugeGuard {
        GaugeGuard::new(self.discoverers.clone())
    }

    #[cfg(test)]
    pub(crate) fn events_of(&self, resource: Role, event: EventKind) -> u64 {
        self.events
            .get_or_create(&EventLabels {
                role: resource.as_str(),
                event: event.as_str(),
            })
            .get()
    }

    #[cfg(test)]
    pub(crate) fn failures_of(&self, resource: Role, reason: Failure) -> u64 {
        self.failures
            .get_or_create(&FailureLabels {
                role: resource.as_str(),
                reason: reason.as_str(),
            })
            .get()
    }

    #[cfg(test)]
    pub(crate) fn watches_of(&self, resource: Role) -> i64 {
        self.watches
            .get_or_create(&ResourceLabels {
                resource: resource.as_str(),
            })
            .get()
    }

    #[cfg(test)]
    pub(crate) fn discoverers(&self) -> i64 {
        self.discoverers.get()
    }
}

/// Increments a gauge now and decrements it when dropped, so early returns and task aborts
/// never leave it high.
#[derive(Debug)]
pub(crate) struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn families_are_registered_and_pre_initialised() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.event(Role::Pod, EventKind::Add);
        metrics.failure(Role::Node, Failure::Forbidden);
        let watch = metrics.watch_open(Role::EndpointSlice);
        let running = metrics.discoverer_running();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            r#"trawl_agent_sd_kubernetes_events_total{role="pod",event="add"} 1"#,
            r#"trawl_agent_sd_kubernetes_events_total{role="ingress",event="delete"} 0"#,
            r#"trawl_agent_sd_kubernetes_failures_total{role="node",reason="forbidden"} 1"#,
            r#"trawl_agent_sd_kubernetes_failures_total{role="pod",reason="malformed"} 0"#,
            r#"trawl_agent_sd_kubernetes_watches{resource="endpointslice"} 1"#,
            "trawl_agent_sd_kubernetes_discoverers 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        drop((watch, running));
        assert_eq!(metrics.watches_of(Role::EndpointSlice), 0);
        assert_eq!(metrics.discoverers(), 0);
    }
}
