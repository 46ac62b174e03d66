//! Replication metrics, in the spirit of Thanos's `thanos_receive_forward_requests_total` and
//! `thanos_receive_write_errors_total`: forwards by peer and result, retries, peer health and
//! requests short of quorum.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How one forward ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardResult {
    /// The peer stored everything (2xx).
    Success,
    /// The peer refused samples for good (4xx other than 429).
    Refused,
    /// No success before the forward deadline (connection errors, timeouts, 5xx, 429).
    Failed,
    /// Not tried: the peer was backing off after failures.
    Skipped,
}

impl ForwardResult {
    const ALL: [ForwardResult; 4] = [
        ForwardResult::Success,
        ForwardResult::Refused,
        ForwardResult::Failed,
        ForwardResult::Skipped,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ForwardResult::Success => "success",
            ForwardResult::Refused => "refused",
            ForwardResult::Failed => "failed",
            ForwardResult::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ForwardLabels {
    peer: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

/// Counters and gauges of replication. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ReplicateMetrics {
    forwards: Family<ForwardLabels, Counter>,
    retries: Family<PeerLabel, Counter>,
    peer_up: Family<PeerLabel, Gauge>,
    quorum_failures: Counter,
    series_local: Counter,
    series_forwarded: Counter,
}

impl ReplicateMetrics {
    /// Registers the metrics into `registry` under `trawl_collector_replication`.
    pub fn new(registry: &mut Registry) -> ReplicateMetrics {
        let metrics = ReplicateMetrics {
            forwards: Family::default(),
            retries: Family::default(),
            peer_up: Family::default(),
            quorum_failures: Counter::default(),
            series_local: Counter::default(),
            series_forwarded: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("trawl_collector_replication");
        r.register(
            "forwards",
            "Write requests forwarded to peer collectors, by peer and result.",
            metrics.forwards.clone(),
        );
        r.register(
            "forward_retries",
            "Retried attempts of forwards, by peer.",
            metrics.retries.clone(),
        );
        r.register(
            "peer_up",
            "Whether forwarding to a peer collector works (1) or it is backing off (0).",
            metrics.peer_up.clone(),
        );
        r.register(
            "quorum_failures",
            "Write requests answered 503 because a series was stored by fewer than RF/2+1 owners.",
            metrics.quorum_failures.clone(),
        );
        r.register(
            "series_local",
            "Series of routed write requests appended to this collector's heads.",
            metrics.series_local.clone(),
        );
        r.register(
            "series_forwarded",
            "Series copies of routed write requests sent to peers (one per peer owner).",
            metrics.series_forwarded.clone(),
        );
        metrics
    }

    /// Sets whether `peer` is up; its forward results start at zero.
    pub(crate) fn peer_up(&self, peer: &str, up: bool) {
        for result in ForwardResult::ALL {
            self.forwards.get_or_create_owned(&ForwardLabels {
                peer: peer.to_owned(),
                result: result.as_str(),
            });
        }
        self.peer_up
            .get_or_create(&PeerLabel { peer: peer.to_owned() })
            .set(i64::from(up));
    }

    /// Counts one ended forward.
    pub(crate) fn forward(&self, peer: &str, result: ForwardResult) {
        self.forwards
            .get_or_create(&ForwardLabels {
                peer: peer.to_owned(),
                result: result.as_str(),
            })
            .inc();
    }

    /// Counts one retried attempt.
    pub(crate) fn retry(&self, peer: &str) {
        self.retries.get_or_create(&PeerLabel { peer: peer.to_owned() }).inc();
    }

    /// Counts one request short of quorum.
    pub(crate) fn quorum_failure(&self) {
        self.quorum_failures.inc();
    }

    /// Counts series stored here and series copies forwarded.
    pub(crate) fn routed(&self, local: u64, forwarded: u64) {
        self.series_local.inc_by(local);
        self.series_forwarded.inc_by(forwarded);
    }
}
