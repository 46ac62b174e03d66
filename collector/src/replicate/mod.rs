//! Replication: every collector accepts writes and sends each series to its `RF` owners on the
//! tenant's hashring, as Thanos Receive's router (`pkg/receive/handler.go` `fanoutForward`).
//!
//! One request goes through these stages:
//! - [`plan`]: the owners of each series ([`Plan`]), and one re-encoded body per peer owner.
//! - [`peers`] (private): forwards with the [`FORWARDED_HEADER`] (the peer stores locally, no
//!   second routing), retried until the forward deadline, per-peer backoff.
//! - the local part is appended by the receive handler while the forwards run.
//! - [`quorum`]: the answer, as soon as every series is stored by a quorum of its owners (then
//!   forwards still retrying a lagging peer finish in the background; a late one can only be
//!   refused there as out of order, never cost the quorum), else once every forward finished.
//! - [`metrics`]: the `trawl_collector_replication_*` counters and gauges.
//! - [`flags`]: `--receive.hashrings-file`, `--receive.replication-factor` and the others.

pub mod flags;
pub mod metrics;
mod peers;
pub mod plan;
pub mod quorum;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prometheus_client::registry::Registry;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::warn;

pub use flags::ReplicationFlags;
pub use metrics::ReplicateMetrics;
pub use plan::Plan;
pub use quorum::{Outcome, Verdict, decide, quorum, stored_by_quorum};

use crate::hashring::{HashringError, HashringWatcher};
use crate::head::SeriesInput;
use peers::Peers;

/// Header marking a request forwarded by a peer; its receiver stores it locally without
/// routing it again. Any value counts; Trawl sends `1`.
pub const FORWARDED_HEADER: &str = "trawl-forwarded";

/// How this collector replicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `--receive.local-endpoint`: this collector's address in the hashrings file.
    pub local_endpoint: String,
    /// `--receive-forward-timeout`: how long one request's forwards may take, retries included.
    pub forward_timeout: Duration,
}

/// Why a request could not be routed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    /// The tenant has no ring.
    #[error(transparent)]
    Hashring(#[from] HashringError),
    /// The ring cannot place the replication factor (guarded when rings are loaded).
    #[error("hashring cannot place {rf} owners per series")]
    Placement {
        /// The replication factor.
        rf: usize,
    },
    /// A forward body could not be compressed.
    #[error("snappy-compress a forwarded request")]
    Encode(#[source] snap::Error),
    /// The tenant header name is invalid.
    #[error("tenant header {0:?} is not a valid HTTP header name")]
    TenantHeader(String),
    /// The HTTP client could not be built.
    #[error("build the forwarding HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Routes series to their owners and forwards to peers.
#[derive(Debug)]
pub struct Replicator {
    hashrings: Arc<HashringWatcher>,
    config: ReplicationConfig,
    tenant_header: HeaderName,
    peers: Peers,
    metrics: ReplicateMetrics,
}

/// Forwards of one request, running.
#[derive(Debug)]
pub struct Forwards {
    running: Vec<(usize, JoinHandle<Outcome>)>,
}

// === impl Replicator ===

impl Replicator {
    /// A replicator placing series on the rings of `hashrings`, sending the tenant in
    /// `tenant_header`; registers its metrics into `registry`.
    ///
    /// # Errors
    /// [`ReplicateError::TenantHeader`] or [`ReplicateError::Client`].
    pub fn new(
        hashrings: Arc<HashringWatcher>,
        config: ReplicationConfig,
        tenant_header: &str,
        registry: &mut Registry,
    ) -> Result<Replicator, ReplicateError> {
        let tenant_header = HeaderName::from_bytes(tenant_header.as_bytes())
            .map_err(|_| ReplicateError::TenantHeader(tenant_header.to_owned()))?;
        let metrics = ReplicateMetrics::new(registry);
        let peers = Peers::new(metrics.clone()).map_err(ReplicateError::Client)?;
        let addresses = hashrings
            .current()
            .addresses()
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        for address in addresses.iter().filter(|a| **a != config.local_endpoint) {
            peers.get(address);
        }
        if !addresses.contains(&config.local_endpoint) {
            warn!(
                message = "--receive.local-endpoint is in no hashring: this collector only forwards.",
                local_endpoint = %config.local_endpoint
            );
        }
        Ok(Replicator {
            hashrings,
            config,
            tenant_header,
            peers,
            metrics,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// The owners of each series of `tenant` on the rings in force.
    ///
    /// # Errors
    /// [`ReplicateError::Hashring`] when no ring serves the tenant.
    pub fn plan<'a>(
        &self,
        tenant: &str,
        series: impl Iterator<Item = &'a [(&'a str, &'a str)]>,
    ) -> Result<Plan, ReplicateError> {
        let rings = self.hashrings.current();
        let ring = rings.ring_for(tenant)?;
        Plan::new(
            ring,
            rings.replication_factor(),
            &self.config.local_endpoint,
            tenant,
            series,
        )
    }

    /// Builds the peers' bodies from `series` and starts their forwards on `runtime`, all
    /// bounded by one deadline of the forward timeout from now.
    ///
    /// # Errors
    /// [`ReplicateError::Encode`]; nothing was sent then.
    pub fn start_forwards<'a>(
        self: &Arc<Self>,
        runtime: &Handle,
        tenant: &str,
        plan: &Plan,
        series: impl Iterator<Item = SeriesInput<'a>>,
    ) -> Result<Forwards, ReplicateError> {
        let bodies = plan.bodies(series)?;
        let deadline = Instant::now() + self.config.forward_timeout;
        let local = (0..plan.series()).filter(|&i| plan.is_local(i)).count() as u64;
        let copies = (0..plan.series())
            .map(|i| {
                plan.owners(i)
                    .iter()
                    .filter(|&&s| Some(s as usize) != plan.local_slot())
                    .count() as u64
            })
            .sum();
        self.metrics.routed(local, copies);
        let running = bodies
            .into_iter()
            .map(|(slot, body)| {
                let replicator = Arc::clone(self);
                let peer = self.peers.get(plan.address(slot));
                let tenant = tenant.to_owned();
                let task = runtime.spawn(async move {
                    replicator
                        .peers
                        .forward(&peer, &replicator.tenant_header, &tenant, body, deadline)
                        .await
                });
                (slot, task)
            })
            .collect();
        Ok(Forwards { running })
    }

    /// Waits for the forwards and decides the answer with the local outcome (`None` when this
    /// collector owns none of the series). Answers as soon as every series is stored by a
    /// quorum and nothing was refused, as Thanos does: the forwards still running (a dead or
    /// slow peer retried until the deadline) finish in the background, so one lost peer does
    /// not hold every write for the forward timeout. Otherwise waits for all of them, because
    /// the answer's status depends on every refusal.
    pub async fn finish(&self, plan: &Plan, local: Option<Outcome>, forwards: Forwards) -> Verdict {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; plan.slots()];
        if let (Some(slot), Some(local)) = (plan.local_slot(), local) {
            outcomes[slot] = Some(local);
        }
        let mut running: FuturesUnordered<_> = forwards
            .running
            .into_iter()
            .map(|(slot, task)| async move { (slot, task.await) })
            .collect();
        while !stored_by_quorum(plan, &outcomes)
            && let Some((slot, joined)) = running.next().await
        {
            outcomes[slot] = Some(joined.unwrap_or_else(|error| Outcome::Failed {
                reason: format!("forward task failed: {error}"),
            }));
        }
        let verdict = decide(plan, &outcomes);
        if matches!(verdict, Verdict::NoQuorum { .. }) {
            self.metrics.quorum_failure();
        }
        verdict
    }
}
