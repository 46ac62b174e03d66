//! Why a write request was not (completely) stored, and the HTTP status Thanos Receive answers
//! for it (`pkg/receive/handler.go` `receiveHTTP`, `pkg/receive/writer.go`).

use std::fmt;

use axum::http::StatusCode;
use trawl_model::remote::ViewError;

use crate::head::HeadError;
use crate::replicate::ReplicateError;

/// A failed or partly stored write request. [`ReceiveError::status`] gives the answer.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The collector is replaying its WAL or shutting down (503, retried by senders).
    #[error("collector is not ready")]
    NotReady,
    /// Reading the body failed, e.g. the client went away (500, as Thanos).
    #[error("read request body")]
    ReadBody(#[source] axum::Error),
    /// The compressed body is above `max_body_bytes` (413).
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// The body is not a snappy block (400).
    #[error("snappy-decompress request body")]
    Decompress(#[source] snap::Error),
    /// The snappy header announces more than `max_decoded_bytes` (413).
    #[error("decompressed request would be {len} bytes, above the limit of {limit} bytes")]
    DecodedTooLarge {
        /// Decompressed size announced by the snappy header, in bytes.
        len: usize,
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// The decompressed bytes are not a valid `prometheus.WriteRequest` (400).
    #[error("decode write request protobuf")]
    Protobuf(#[from] ViewError),
    /// The request has more series or samples than the per-request limits allow (413, as
    /// Thanos's request limiter).
    #[error(
        "request has {series} series and {samples} samples, above the limits of {series_limit} series and {samples_limit} samples per request (0 = none)"
    )]
    TooManySamples {
        /// Series in the request.
        series: usize,
        /// Samples in the request.
        samples: usize,
        /// `series_limit` in force.
        series_limit: usize,
        /// `samples_limit` in force.
        samples_limit: usize,
    },
    /// The tenant header names an invalid tenant ([`HeadError::InvalidTenant`], 400).
    #[error(transparent)]
    Tenant(HeadError),
    /// The tenant's head holds `head_series_limit` series or more (429, as Thanos).
    #[error("tenant {tenant:?} is above its active series limit ({series} series, limit {limit})")]
    HeadSeriesLimit {
        /// The tenant.
        tenant: String,
        /// Series in its head.
        series: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Some series or samples were refused; everything else of the request was stored. 400 when
    /// a series was invalid, else 409 (Thanos: conflict).
    #[error("{0}")]
    Rejected(Rejections),
    /// Opening the tenant's head or writing the WAL failed; nothing of the request is stored (500).
    #[error("write to tenant {tenant:?}")]
    Head {
        /// The tenant.
        tenant: String,
        /// The head's error.
        #[source]
        source: HeadError,
    },
    /// The blocking task running the write panicked or was cancelled (500).
    #[error("write task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The request could not be routed on the hashring, e.g. no ring serves the tenant (500:
    /// the sender keeps the data until the hashrings file is fixed).
    #[error("route write request")]
    Route(#[source] ReplicateError),
    /// Some series were stored by fewer than a quorum of their owners (503, retried by
    /// senders; owners that did store them take the retry as exact duplicates).
    #[error(
        "{failed_series} of {series} series stored by fewer than {quorum} of their owners; first failure: {first_failure}"
    )]
    Quorum {
        /// Series short of quorum.
        failed_series: usize,
        /// Series in the request.
        series: usize,
        /// Owners needed per series, `RF/2 + 1`.
        quorum: usize,
        /// The first failure, `address: reason`.
        first_failure: String,
    },
    /// A peer owner refused samples for good; the answer carries its status (400, 409, 413…).
    #[error("peer {endpoint} answered {status}: {reason}")]
    PeerRefused {
        /// The peer's address.
        endpoint: String,
        /// The peer's status.
        status: StatusCode,
        /// The peer's reason.
        reason: String,
    },
}

impl ReceiveError {
    /// The HTTP status Thanos Receive answers for this outcome.
    pub fn status(&self) -> StatusCode {
        match self {
            ReceiveError::NotReady | ReceiveError::Quorum { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ReceiveError::PeerRefused { status, .. } => *status,
            ReceiveError::BodyTooLarge { .. }
            | ReceiveError::DecodedTooLarge { .. }
            | ReceiveError::TooManySamples { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ReceiveError::Decompress(_) | ReceiveError::Protobuf(_) | ReceiveError::Tenant(_) => {
                StatusCode::BAD_REQUEST
            }
            ReceiveError::HeadSeriesLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            ReceiveError::Rejected(r) if r.invalid_series > 0 => StatusCode::BAD_REQUEST,
            ReceiveError::Rejected(_) => StatusCode::CONFLICT,
            ReceiveError::Head {
                source: HeadError::InvalidTenant { .. },
                ..
            } => StatusCode::BAD_REQUEST,
            ReceiveError::ReadBody(_) | ReceiveError::Head { .. } | ReceiveError::Task(_) | ReceiveError::Route(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// What was refused from a request whose other series and samples were stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Series refused for their labels (not stored at all).
    pub invalid_series: u64,
    /// Samples of those series.
    pub invalid_samples: u64,
    /// The first invalid series and why, e.g. `duplicate label name "job" in {…}`.
    pub first_invalid: Option<String>,
    /// Samples older than their series' newest sample.
    pub out_of_order: u64,
    /// Samples outside the time range the head accepts.
    pub out_of_bounds: u64,
    /// Samples with a stored timestamp but another value.
    pub duplicate: u64,
}

impl Rejections {
    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.invalid_series == 0 && self.out_of_order == 0 && self.out_of_bounds == 0 && self.duplicate == 0
    }
}

impl fmt::Display for Rejections {
    /// As Thanos's joined write errors: one clause per kind, e.g. `add 2 samples: out of order
    /// sample; add 1 series: duplicate label name "a" in {…}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut clauses = Vec::new();
        if self.invalid_series > 0 {
            let first = self.first_invalid.as_deref().unwrap_or("invalid labels");
            clauses.push(format!(
                "add {} series ({} samples): invalid series, first: {first}",
                self.invalid_series, self.invalid_samples
            ));
        }
        for (count, what) in [
            (self.out_of_order, "out of order sample"),
            (self.out_of_bounds, "out of bounds"),
            (self.duplicate, "duplicate sample for timestamp"),
        ] {
            if count > 0 {
                clauses.push(format!("add {count} samples: {what}"));
            }
        }
        f.write_str(&clauses.join("; "))
    }
}
