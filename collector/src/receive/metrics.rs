//! Receive metrics, `trawl_collector_received_*` and `trawl_collector_rejected_samples_total`,
//! in the spirit of Thanos's `thanos_receive_write_*` and Prometheus's
//! `prometheus_tsdb_out_of_order_samples_total` family.

use axum::http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Status codes the endpoint answers, pre-initialised so rates start at zero.
const CODES: [StatusCode; 7] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::CONFLICT,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::SERVICE_UNAVAILABLE,
];

/// Why samples were refused for good (4xx); samples of 5xx answers are retried by the sender
/// and not counted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Older than their series' newest sample.
    OutOfOrder,
    /// Outside the time range the head accepts.
    OutOfBounds,
    /// Same timestamp as a stored sample, other value.
    Duplicate,
    /// In a series with invalid labels.
    Invalid,
    /// In a request above the per-request series or sample limits.
    TooLarge,
    /// In a request naming an invalid tenant.
    Tenant,
    /// In a request of a tenant above its head series limit.
    Limit,
}

impl RejectReason {
    const ALL: [RejectReason; 7] = [
        RejectReason::OutOfOrder,
        RejectReason::OutOfBounds,
        RejectReason::Duplicate,
        RejectReason::Invalid,
        RejectReason::TooLarge,
        RejectReason::Tenant,
        RejectReason::Limit,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::OutOfBounds => "out_of_bounds",
            RejectReason::Duplicate => "duplicate",
            RejectReason::Invalid => "invalid",
            RejectReason::TooLarge => "too_large",
            RejectReason::Tenant => "tenant",
            RejectReason::Limit => "limit",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Counters of the receive endpoint. Cheap to clone (shared counters).
#[derive(Debug, Clone)]
pub struct ReceiveMetrics {
    requests: Family<CodeLabel, Counter>,
    samples: Counter,
    rejected: Family<ReasonLabel, Counter>,
}

impl ReceiveMetrics {
    /// Registers the receive metrics into `registry` under the `trawl_collector` prefix, every
    /// code and reason at zero; call once per registry.
    pub fn new(registry: &mut Registry) -> ReceiveMetrics {
        let metrics = ReceiveMetrics {
            requests: Family::default(),
            samples: Counter::default(),
            rejected: Family::default(),
        };
        for code in CODES {
            metrics.requests.get_or_create_owned(&CodeLabel { code: code.as_u16() });
        }
        for reason in RejectReason::ALL {
            metrics.rejected.get_or_create_owned(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        let r = registry.sub_registry_with_prefix("trawl_collector");
        r.register(
            "received_requests",
            "Remote write requests answered, by HTTP status code.",
            metrics.requests.clone(),
        );
        r.register(
            "received_samples",
            "Samples in decoded remote write requests, stored or not.",
            metrics.samples.clone(),
        );
        r.register(
            "rejected_samples",
            "Samples refused for good (4xx answers), by reason; samples of 5xx answers are retried \
             by senders and not counted.",
            metrics.rejected.clone(),
        );
        metrics
    }

    /// Counts one answered request.
    pub(crate) fn request(&self, code: StatusCode) {
        self.requests.get_or_create(&CodeLabel { code: code.as_u16() }).inc();
    }

    /// Counts the samples of a decoded request.
    pub(crate) fn received(&self, samples: u64) {
        self.samples.inc_by(samples);
    }

    /// Counts refused samples.
    pub(crate) fn rejected(&self, reason: RejectReason, samples: u64) {
        if samples > 0 {
            self.rejected
                .get_or_create(&ReasonLabel {
                    reason: reason.as_str(),
                })
                .inc_by(samples);
        }
    }
}
