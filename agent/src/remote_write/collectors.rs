//! The collectors of one remote write endpoint and their health.
//!
//! Every configured URL is one collector; a URL whose host name resolves to several addresses
//! (a Kubernetes headless Service) is one collector per address, each with its own reqwest
//! client pinned to that address with `ClientBuilder::resolve`, so `Host` and TLS SNI stay the
//! name. Names are resolved again every 30 s, and at the next send after every collector
//! failed. A collector that fails is down for its own backoff (1 s doubling to 30 s) and then
//! probed again; a success brings it back up.
//!
//! Each collector keeps the recent peak of its answer times; a send to it is hedged (the same
//! body also goes to the next collector) after [`HEDGE_LATENCY_FACTOR`] times that peak, within
//! [`Timing::hedge_min`] and [`Timing::hedge_max`]. A collector cut off the network never
//! answers nor refuses, so this delay is what failover costs then.

use std::fmt::Display;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use url::{Host, Url};

use crate::config::HttpClientConfig;
use crate::http_client::{self, HttpClientError};

#[cfg(test)]
#[path = "collectors_tests.rs"]
mod tests;

/// How many times a collector's recent peak answer time a send waits before it is hedged.
pub(super) const HEDGE_LATENCY_FACTOR: u32 = 4;

/// The delays of failover; [`Timing::default`] holds the production values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Shortest wait for an answer before the same body also goes to the next collector.
    pub(super) hedge_min: Duration,
    /// Longest such wait, and the wait for a collector that has not answered yet.
    pub(super) hedge_max: Duration,
    /// First time a failed collector is skipped; doubles on each failed probe.
    pub(super) min_down: Duration,
    /// Longest time a failed collector is skipped (also caps `Retry-After`).
    pub(super) max_down: Duration,
    /// How often host names are resolved again.
    pub(super) resolve_every: Duration,
    /// Longest wait for one name resolution; the previous addresses stay on timeout.
    pub(super) resolve_timeout: Duration,
    /// Longest wait for a TCP connection (and TLS handshake) to one collector.
    pub(super) connect_timeout: Duration,
}

impl Default for Timing {
    /// Failover within 2 s of a failure: hedge after 250 ms to 1.5 s, connect timeout 1 s.
    fn default() -> Self {
        Timing {
            hedge_min: Duration::from_millis(250),
            hedge_max: Duration::from_millis(1500),
            min_down: Duration::from_secs(1),
            max_down: Duration::from_secs(30),
            resolve_every: Duration::from_secs(30),
            resolve_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// Turns a host name into addresses; the system resolver in production, a table in tests.
pub(super) trait Resolver: Send + Sync {
    /// Every address of `host`, in the resolver's order.
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// `getaddrinfo` through tokio (`/etc/hosts`, then DNS).
pub(super) struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect()) })
    }
}

// === Metrics ===

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectorLabels {
    remote_name: String,
    collector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RemoteLabels {
    remote_name: String,
}

/// `trawl_agent_remote_write_collector_up{remote_name,collector}` (1 healthy, 0 down) and
/// `trawl_agent_remote_write_failovers_total{remote_name}` (sends of a body to another collector
/// after a failure or after a hedge delay without an answer). Cheap to clone;
/// [`Default`] gives families registered nowhere.
#[derive(Clone, Default)]
pub struct CollectorFamilies {
    up: Family<CollectorLabels, Gauge>,
    failovers: Family<RemoteLabels, Counter>,
}

impl std::fmt::Debug for CollectorFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorFamilies").finish_non_exhaustive()
    }
}

impl CollectorFamilies {
    /// Registers both families into `registry` under the `trawl_agent_remote_write` prefix (the
    /// root registry, not the prefixed one): call once per registry.
    pub fn register(registry: &mut Registry) -> CollectorFamilies {
        let families = CollectorFamilies::default();
        let r = registry.sub_registry_with_prefix("trawl_agent_remote_write");
        r.register(
            "collector_up",
            "Whether a collector of the endpoint is healthy (1) or skipped after a failure (0).",
            families.up.clone(),
        );
        r.register(
            "failovers",
            "Sends of a batch to another collector after a failure or a slow answer.",
            families.failovers.clone(),
        );
        families
    }

    fn up(&self, remote_name: &str, collector: &str) -> Gauge {
        self.up.get_or_create_owned(&CollectorLabels {
            remote_name: remote_name.to_owned(),
            collector: collector.to_owned(),
        })
    }
}

// === impl Collector ===

/// One collector: a configured URL, possibly pinned to one address of its host.
pub(super) struct Collector {
    /// Where requests go (the configured URL; the host stays the name).
    pub(super) url: Url,
    /// The HTTP client, pinned to [`Collector::address`] when there is one.
    pub(super) http: reqwest::Client,
    /// Index of the URL in the endpoint's `urls`.
    url_index: usize,
    /// The resolved address of a host name, `None` for an IP literal or an unresolved name.
    address: Option<IpAddr>,
    /// `collector` label and log field: the URL without credentials, host replaced by the
    /// resolved address.
    name: String,
    remote_name: String,
    health: Mutex<Health>,
    up: Gauge,
}

/// Up, or down until a time after which the next send probes it; and how fast it answers.
#[derive(Debug, Clone, Copy)]
struct Health {
    down_until: Option<Instant>,
    /// The last down time, doubled on each failed probe.
    backoff: Duration,
    /// Recent peak answer time: raised at once by a slower answer, decays by 1/8 of the
    /// difference toward each faster one. `None` before the first answer.
    peak_latency: Option<Duration>,
}

impl Collector {
    /// The collector's name, as in its `collector` label.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // The guarded data is two plain values, consistent even after a panic elsewhere.
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Up, or down with its backoff expired.
    fn eligible(&self, now: Instant) -> bool {
        self.health().down_until.is_none_or(|until| until <= now)
    }

    /// When a down collector may be probed; `None` when it is up.
    fn down_until(&self) -> Option<Instant> {
        self.health().down_until
    }

    /// How long a send to this collector waits for an answer before it is hedged:
    /// [`HEDGE_LATENCY_FACTOR`] times its recent peak answer time, within the bounds of
    /// `timing`; [`Timing::hedge_max`] before its first answer.
    pub(super) fn hedge_after(&self, timing: &Timing) -> Duration {
        self.health().peak_latency.map_or(timing.hedge_max, |peak| {
            peak.saturating_mul(HEDGE_LATENCY_FACTOR)
                .clamp(timing.hedge_min, timing.hedge_max)
        })
    }

    /// The collector answered after `latency`: up again (logged when it was down).
    pub(super) fn answered(&self, latency: Duration) {
        let was_down = {
            let mut health = self.health();
            health.peak_latency = Some(match health.peak_latency {
                Some(peak) if peak > latency => peak - (peak - latency) / 8,
                _ => latency,
            });
            health.down_until.take().is_some()
        };
        if was_down {
            self.up.set(1);
            info!(
                message = "Remote write collector is up again.",
                remote_name = %self.remote_name,
                collector = %self.name,
            );
        }
    }

    /// The collector failed (`reason`): skip it for its backoff, 1 s doubling to 30 s, or for
    /// `retry_after` when the server asked for a delay (capped at the longest backoff).
    pub(super) fn failed(&self, timing: &Timing, reason: &dyn Display, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut health = self.health();
        let was_up = health.down_until.is_none();
        health.backoff = if was_up {
            timing.min_down
        } else {
            health.backoff.saturating_mul(2).min(timing.max_down)
        };
        let skip = retry_after.map_or(health.backoff, |d| d.clamp(timing.min_down, timing.max_down));
        health.down_until = Some(now + skip);
        drop(health);
        if was_up {
            self.up.set(0);
            warn!(
                message = "Remote write collector is down; sending to the others.",
                remote_name = %self.remote_name,
                collector = %self.name,
                retry_in = ?skip,
                error = %reason,
            );
        } else {
            debug!(
                message = "Remote write collector is still down.",
                remote_name = %self.remote_name,
                collector = %self.name,
                retry_in = ?skip,
                error = %reason,
            );
        }
    }
}

// === impl Collectors ===

/// Every collector of one endpoint, with what is needed to resolve their names again.
pub(super) struct Collectors {
    remote_name: String,
    urls: Vec<Url>,
    http: HttpClientConfig,
    timing: Timing,
    resolver: Arc<dyn Resolver>,
    families: CollectorFamilies,
    failovers: Counter,
    /// The current set, replaced whole by a resolution.
    current: RwLock<Arc<[Arc<Collector>]>>,
    /// Start of the next send's rotation, so sends spread over healthy collectors.
    next: AtomicUsize,
    /// When names are resolved next; held while resolving, so only one send resolves.
    resolve_at: tokio::sync::Mutex<Instant>,
}

impl Collectors {
    /// One collector per URL of `urls` (in order), with `http`'s client settings; host names
    /// are resolved at the first [`Collectors::refresh`].
    ///
    /// # Errors
    /// The HTTP client could not be built (TLS files).
    pub(super) fn new(
        remote_name: &str,
        urls: &[Url],
        http: &HttpClientConfig,
        timing: Timing,
        resolver: Arc<dyn Resolver>,
        families: &CollectorFamilies,
    ) -> Result<Collectors, HttpClientError> {
        let collectors = Collectors {
            remote_name: remote_name.to_owned(),
            urls: urls.to_vec(),
            http: http.clone(),
            timing,
            resolver,
            families: families.clone(),
            failovers: families.failovers.get_or_create_owned(&RemoteLabels {
                remote_name: remote_name.to_owned(),
            }),
            current: RwLock::new(Arc::from(Vec::new())),
            next: AtomicUsize::new(0),
            resolve_at: tokio::sync::Mutex::new(Instant::now()),
        };
        let initial = (0..urls.len())
            .map(|i| collectors.build(i, None))
            .collect::<Result<Vec<_>, _>>()?;
        *collectors.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::from(initial);
        Ok(collectors)
    }

    /// The delays in use.
    pub(super) fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Counts one send of a body to another collector.
    pub(super) fn failover(&self) {
        self.failovers.inc();
    }

    /// The current set.
    pub(super) fn snapshot(&self) -> Arc<[Arc<Collector>]> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The collectors to try for one send, in order: every eligible one (up, or down with its
    /// backoff expired), starting one further than the previous send; when none is, the one
    /// whose backoff ends first, so a send is always attempted somewhere.
    pub(super) fn candidates(&self) -> Vec<Arc<Collector>> {
        let all = self.snapshot();
        if all.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % all.len();
        let rotated = all[start..].iter().chain(&all[..start]);
        let eligible: Vec<_> = rotated.filter(|c| c.eligible(now)).cloned().collect();
        if !eligible.is_empty() {
            return eligible;
        }
        all.iter().min_by_key(|c| c.down_until()).cloned().into_iter().collect()
    }

    /// Every collector failed this round: resolve names again before the next send.
    pub(super) fn all_failed(&self) {
        if let Ok(mut at) = self.resolve_at.try_lock() {
            *at = Instant::now();
        }
    }

    /// Resolves host names again when due (every [`Timing::resolve_every`], or after
    /// [`Collectors::all_failed`]). A concurrent send that finds a resolution running goes on
    /// with the current set. A name that fails to resolve keeps its previous collectors.
    pub(super) async fn refresh(&self) {
        let Ok(mut at) = self.resolve_at.try_lock() else {
            return;
        };
        if Instant::now() < *at {
            return;
        }
        let previous = self.snapshot();
        // Every name at once, so a slow one delays the send by one resolve_timeout at most.
        let lookups = self.urls.iter().map(|url| async move {
            match url.host() {
                Some(Host::Domain(host)) => Some((host, self.resolve(host).await)),
                _ => None,
            }
        });
        let answers = futures::future::join_all(lookups).await;
        let mut next: Vec<Arc<Collector>> = Vec::with_capacity(previous.len());
        for (index, answer) in answers.into_iter().enumerate() {
            let kept = previous.iter().filter(|c| c.url_index == index);
            let Some((host, addresses)) = answer else {
                next.extend(kept.cloned());
                continue;
            };
            match addresses.and_then(|addresses| self.collectors_for(index, &addresses, &previous)) {
                Ok(collectors) => next.extend(collectors),
                Err(error) => {
                    debug!(
                        message = "Collector host could not be resolved; keeping its previous addresses.",
                        remote_name = %self.remote_name,
                        host,
                        %error,
                    );
                    next.extend(kept.cloned());
                }
            }
        }
        for gone in previous.iter().filter(|p| !next.iter().any(|n| Arc::ptr_eq(p, n))) {
            let labels = CollectorLabels {
                remote_name: self.remote_name.clone(),
                collector: gone.name.clone(),
            };
            // Another collector of the same name (a duplicate URL) may still use the series.
            if !next.iter().any(|n| n.name == gone.name) {
                self.families.up.remove(&labels);
            }
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::from(next);
        *at = Instant::now() + self.timing.resolve_every;
    }

    /// The addresses of `host`, deduplicated, in the resolver's order.
    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let addresses = tokio::time::timeout(self.timing.resolve_timeout, self.resolver.lookup(host))
            .await
            .map_err(|_| ResolveError::Timeout(self.timing.resolve_timeout))?
            .map_err(ResolveError::Lookup)?;
        let mut unique: Vec<IpAddr> = Vec::with_capacity(addresses.len());
        for address in addresses {
            if !unique.contains(&address) {
                unique.push(address);
            }
        }
        if unique.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        Ok(unique)
    }

    /// One collector per address of URL `index`, reusing those of `previous` (health, pooled
    /// connections) for addresses that stay.
    fn collectors_for(
        &self,
        index: usize,
        addresses: &[IpAddr],
        previous: &[Arc<Collector>],
    ) -> Result<Vec<Arc<Collector>>, ResolveError> {
        addresses
            .iter()
            .map(|&address| {
                match previous
                    .iter()
                    .find(|c| c.url_index == index && c.address == Some(address))
                {
                    Some(existing) => Ok(Arc::clone(existing)),
                    None => self.build(index, Some(address)).map_err(ResolveError::Client),
                }
            })
            .collect()
    }

    /// A new collector (up) for URL `index`, pinned to `address` when given.
    fn build(&self, index: usize, address: Option<IpAddr>) -> Result<Arc<Collector>, HttpClientError> {
        let url = &self.urls[index];
        let mut builder = http_client::client_builder(&self.http)?.connect_timeout(self.timing.connect_timeout);
        let mut name = redacted_url(url);
        if let (Some(ip), Some(Host::Domain(host))) = (address, url.host()) {
            // The URL's own port wins over this one; it matters only for a URL without a port.
            let port = url.port_or_known_default().unwrap_or(0);
            builder = builder.resolve(host, SocketAddr::new(ip, port));
            if name.set_ip_host(ip).is_err() {
                debug!(message = "Collector URL cannot carry an address.", url = %name);
            }
        }
        let http = builder.build().map_err(HttpClientError::Build)?;
        let name = name.to_string();
        let up = self.families.up(&self.remote_name, &name);
        up.set(1);
        Ok(Arc::new(Collector {
            url: url.clone(),
            http,
            url_index: index,
            address,
            name,
            remote_name: self.remote_name.clone(),
            health: Mutex::new(Health {
                down_until: None,
                backoff: self.timing.min_down,
                peak_latency: None,
            }),
            up,
        }))
    }
}

/// Why a host name gave no collectors.
#[derive(Debug, thiserror::Error)]
enum ResolveError {
    #[error("resolve: {0}")]
    Lookup(io::Error),
    #[error("resolve: no answer within {0:?}")]
    Timeout(Duration),
    #[error("resolve: no address")]
    NoAddress,
    #[error("{0}")]
    Client(HttpClientError),
}

/// `url` without user info, for labels and logs.
pub(super) fn redacted_url(url: &Url) -> Url {
    let mut url = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none to hide.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url
}
