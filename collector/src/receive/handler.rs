//! The write endpoint: `POST /api/v1/receive` (and `/api/v1/write`), answered as Thanos Receive
//! answers (`pkg/receive/handler.go` `receiveHTTP`, `pkg/receive/writer.go` `Write`):
//!
//! | outcome | status |
//! |---|---|
//! | every sample stored (exact duplicates of stored samples count as stored) | 200 |
//! | body not snappy, protobuf malformed, invalid tenant | 400, nothing stored |
//! | some series with invalid labels | 400, the request's valid series stored |
//! | out-of-order, out-of-bounds or duplicate-with-other-value samples | 409, the other samples stored |
//! | body, decompressed size, series or samples per request above the limits | 413, nothing stored |
//! | tenant at its head series limit | 429, nothing stored |
//! | WAL or head failure | 500, nothing stored |
//! | not ready (WAL replay, shutdown) | 503, nothing stored |
//! | hashring: some series stored by fewer than `RF/2 + 1` owners | 503, retried by the sender |
//! | hashring: every series at quorum, a peer refused samples | the peer's 4xx |
//! | hashring: no ring serves the tenant | 500 |
//!
//! With a hashring ([`Receiver::with_replicator`]), a request without the
//! [`FORWARDED_HEADER`] is routed: the series this collector owns are appended here while the
//! others are forwarded to their owners, and the answer waits for every forward. A forwarded
//! request is stored here as it is.
//!
//! Thanos answers 409 for invalid label sets too (they are "conflicts" in `writer.go`); here
//! they are 400, the status for malformed input, while the rest of the request is still stored
//! as Thanos does. When a request has both, 400 wins.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prometheus_client::registry::Registry;
use tracing::{debug, warn};

use super::config::ReceiveConfig;
use super::decode::{Batch, BufferPool, Buffers};
use super::error::{ReceiveError, Rejections};
use super::metrics::{ReceiveMetrics, RejectReason};
use crate::head::{AppendReport, HeadError};
use crate::replicate::{FORWARDED_HEADER, Forwards, Outcome, Plan, Replicator, Verdict};
use crate::tenants::{Tenants, validate_tenant};

/// The receive side of a collector: reads write requests, picks the tenant's head, appends.
pub struct Receiver {
    tenants: Arc<Tenants>,
    config: ReceiveConfig,
    metrics: ReceiveMetrics,
    ready: AtomicBool,
    pool: BufferPool,
    replicator: Option<Arc<Replicator>>,
}

/// A routed request whose local part is stored and whose forwards are running.
struct Routed {
    tenant: String,
    plan: Plan,
    forwards: Forwards,
    local: Option<Outcome>,
    rejections: Rejections,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("config", &self.config)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// The write routes, `POST /api/v1/receive` and `POST /api/v1/write`, served by `receiver`.
/// Merge it into the collector's router; it sets no body limit of its own beyond
/// [`ReceiveConfig::max_body_bytes`].
pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route("/api/v1/receive", post(receive))
        .route("/api/v1/write", post(receive))
        .with_state(receiver)
}

/// The axum handler: one request in, Thanos's status and a one-line reason out.
async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Body) -> Response {
    let result = receiver.write(&headers, body).await;
    let status = result.as_ref().map_or_else(ReceiveError::status, |()| StatusCode::OK);
    receiver.metrics.request(status);
    match result {
        Ok(()) => status.into_response(),
        Err(error) => {
            let error = error_chain(&error);
            if status.is_server_error() {
                warn!(message = "Write request failed.", %status, %error);
            } else {
                debug!(message = "Write request refused.", %status, %error);
            }
            (status, format!("{error}\n")).into_response()
        }
    }
}

/// The answer to a routed request from the quorum verdict and what this collector refused
/// itself: no quorum (503) first, then invalid series (400), a peer's 400, this collector's
/// conflicts (409, with counts), another peer refusal.
fn answer(verdict: Verdict, rejections: Rejections, tenant: &str) -> Result<(), ReceiveError> {
    match verdict {
        Verdict::NoQuorum {
            failed_series,
            series,
            quorum,
            first_failure,
        } => {
            debug!(
                message = "Write request short of quorum.",
                tenant, failed_series, series
            );
            Err(ReceiveError::Quorum {
                failed_series,
                series,
                quorum,
                first_failure,
            })
        }
        _ if rejections.invalid_series > 0 => Err(ReceiveError::Rejected(rejections)),
        Verdict::Refused {
            endpoint,
            status,
            reason,
        } if status == StatusCode::BAD_REQUEST || rejections.is_empty() => Err(ReceiveError::PeerRefused {
            endpoint,
            status,
            reason,
        }),
        _ if !rejections.is_empty() => Err(ReceiveError::Rejected(rejections)),
        _ => Ok(()),
    }
}

/// `error` and its sources, joined by `: `.
fn error_chain(error: &ReceiveError) -> String {
    trawl_process::error_chain(error)
}

// === impl Receiver ===

impl Receiver {
    /// A receiver writing into `tenants`, ready at once (`Tenants::open` has replayed the WALs)
    /// and registering its metrics into `registry`. `config` should have passed
    /// [`ReceiveConfig::validate`].
    pub fn new(tenants: Arc<Tenants>, config: ReceiveConfig, registry: &mut Registry) -> Receiver {
        Receiver {
            tenants,
            config,
            metrics: ReceiveMetrics::new(registry),
            ready: AtomicBool::new(true),
            pool: BufferPool::default(),
            replicator: None,
        }
    }

    /// Routes every request that is not itself forwarded through `replicator`: each series to
    /// its owners on the hashring.
    pub fn with_replicator(mut self, replicator: Arc<Replicator>) -> Receiver {
        self.replicator = Some(replicator);
        self
    }

    /// Marks the endpoint ready or not; while not ready every write gets 503 (set it before the
    /// shutdown flush so senders keep their data and retry elsewhere).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether writes are accepted (for `/-/ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReceiveConfig {
        &self.config
    }

    /// Reads, decodes and stores one write request.
    async fn write(self: &Arc<Self>, headers: &HeaderMap, body: Body) -> Result<(), ReceiveError> {
        // Refuse early while replaying or shutting down, as Thanos's readiness gate.
        if !self.is_ready() {
            return Err(ReceiveError::NotReady);
        }
        // A bad tenant is reported after decoding, so its samples can be counted.
        let tenant = self.tenant(headers);
        let size_hint = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut buffers = self.pool.take();
        if let Err(error) = buffers.read_body(body, size_hint, self.config.max_body_bytes).await {
            self.pool.give(buffers);
            return Err(error);
        }
        // A forwarded request was routed by the peer that sent it: store it here as it is.
        let route = match &self.replicator {
            Some(replicator) if !headers.contains_key(FORWARDED_HEADER) => {
                Some((Arc::clone(replicator), tokio::runtime::Handle::current()))
            }
            _ => None,
        };
        // Decoding and the WAL write are blocking work: keep them off the async workers.
        let receiver = Arc::clone(self);
        let routed = tokio::task::spawn_blocking(move || {
            let result = receiver.ingest(&mut buffers, tenant, route.as_ref());
            receiver.pool.give(buffers);
            result
        })
        .await
        .map_err(ReceiveError::Task)??;
        match (routed, &self.replicator) {
            (Some(routed), Some(replicator)) => {
                let verdict = replicator.finish(&routed.plan, routed.local, routed.forwards).await;
                answer(verdict, routed.rejections, &routed.tenant)
            }
            _ => Ok(()),
        }
    }

    /// The tenant named by the tenant header, or the default tenant when it is absent or empty.
    fn tenant(&self, headers: &HeaderMap) -> Result<String, ReceiveError> {
        let Some(value) = headers.get(self.config.tenant_header.as_str()) else {
            return Ok(self.config.default_tenant.clone());
        };
        let Ok(tenant) = value.to_str() else {
            return Err(ReceiveError::Tenant(HeadError::InvalidTenant {
                tenant: String::from_utf8_lossy(value.as_bytes()).chars().take(80).collect(),
                reason: "not visible ASCII",
            }));
        };
        if tenant.is_empty() {
            return Ok(self.config.default_tenant.clone());
        }
        validate_tenant(tenant).map_err(ReceiveError::Tenant)?;
        Ok(tenant.to_owned())
    }

    /// Decompresses, decodes, validates and appends a request read into `buffers`. With a
    /// `route`, only the series this collector owns are appended and the others' forwards are
    /// started; the running request is returned for [`answer`].
    fn ingest(
        &self,
        buffers: &mut Buffers,
        tenant: Result<String, ReceiveError>,
        route: Option<&(Arc<Replicator>, tokio::runtime::Handle)>,
    ) -> Result<Option<Routed>, ReceiveError> {
        buffers.decompress(self.config.max_decoded_bytes)?;
        buffers.with_batch(|proto, batch| {
            let decoded = batch.decode(proto, &self.config.limits);
            let received = batch.received_samples as u64;
            match decoded {
                // Malformed bytes: what was decoded before the error is not counted.
                Err(error @ ReceiveError::Protobuf(_)) => return Err(error),
                Err(error) => {
                    self.metrics.received(received);
                    self.metrics.rejected(RejectReason::TooLarge, received);
                    return Err(error);
                }
                Ok(()) => self.metrics.received(received),
            }
            let tenant = tenant.inspect_err(|_| self.metrics.rejected(RejectReason::Tenant, received))?;

            // Nothing valid to store: no head is opened, no tenant directory created.
            let mut routed = None;
            if !batch.is_empty() {
                let report = match route {
                    None => Some(self.append(&tenant, batch, received, |_| true)?),
                    Some((replicator, runtime)) => {
                        let (running, report) = self.route(replicator, runtime, tenant, batch, received)?;
                        routed = Some(running);
                        report
                    }
                };
                if let Some(report) = report {
                    let r = &mut batch.rejections;
                    r.out_of_order = report.out_of_order;
                    r.out_of_bounds = report.out_of_bounds;
                    r.duplicate = report.duplicate;
                }
            }

            let r = &batch.rejections;
            self.metrics.rejected(RejectReason::Invalid, r.invalid_samples);
            self.metrics.rejected(RejectReason::OutOfOrder, r.out_of_order);
            self.metrics.rejected(RejectReason::OutOfBounds, r.out_of_bounds);
            self.metrics.rejected(RejectReason::Duplicate, r.duplicate);
            if let Some(mut routed) = routed {
                routed.rejections = r.clone();
                Ok(Some(routed))
            } else if r.is_empty() {
                Ok(None)
            } else {
                Err(ReceiveError::Rejected(r.clone()))
            }
        })
    }

    /// Starts the forwards of a request's series owned by peers, then appends the series this
    /// collector owns; the local append's failure becomes the local owner's [`Outcome`].
    fn route(
        &self,
        replicator: &Arc<Replicator>,
        runtime: &tokio::runtime::Handle,
        tenant: String,
        batch: &Batch<'_>,
        received: u64,
    ) -> Result<(Routed, Option<AppendReport>), ReceiveError> {
        let plan = replicator
            .plan(&tenant, batch.iter().map(|s| s.labels))
            .map_err(ReceiveError::Route)?;
        let forwards = replicator
            .start_forwards(runtime, &tenant, &plan, batch.iter())
            .map_err(ReceiveError::Route)?;
        let (local, report) = if plan.has_local() {
            match self.append(&tenant, batch, received, |i| plan.is_local(i)) {
                Ok(report) if report.rejected() > 0 => {
                    let reason = format!("{} samples refused here", report.rejected());
                    let status = StatusCode::CONFLICT;
                    (Some(Outcome::Refused { status, reason }), Some(report))
                }
                Ok(report) => (Some(Outcome::Stored), Some(report)),
                Err(error) => (
                    Some(Outcome::Failed {
                        reason: error_chain(&error),
                    }),
                    None,
                ),
            }
        } else {
            (None, None)
        };
        let routed = Routed {
            tenant,
            plan,
            forwards,
            local,
            rejections: Rejections::default(),
        };
        Ok((routed, report))
    }

    /// Appends the batch's valid series numbered `keep` (in request order) to the tenant's head
    /// under one head lock, then commits (WAL first, then memory).
    fn append(
        &self,
        tenant: &str,
        batch: &Batch<'_>,
        received: u64,
        keep: impl Fn(usize) -> bool,
    ) -> Result<AppendReport, ReceiveError> {
        let head_error = |source| ReceiveError::Head {
            tenant: tenant.to_owned(),
            source,
        };
        let head = self.tenants.get_or_create(tenant).map_err(head_error)?;
        let limit = self.config.limits.head_series_limit;
        if limit > 0 && head.num_series() >= limit {
            self.metrics.rejected(RejectReason::Limit, received);
            return Err(ReceiveError::HeadSeriesLimit {
                tenant: tenant.to_owned(),
                series: head.num_series(),
                limit,
            });
        }
        let mut appender = head.appender();
        for (_, series) in batch.iter().enumerate().filter(|(i, _)| keep(*i)) {
            appender.append(series);
        }
        appender.commit().map_err(head_error)
    }
}

#[cfg(test)]
mod answer_tests {
    use super::*;

    fn conflicts() -> Rejections {
        Rejections {
            duplicate: 2,
            ..Rejections::default()
        }
    }

    fn invalid() -> Rejections {
        Rejections {
            invalid_series: 1,
            invalid_samples: 1,
            ..Rejections::default()
        }
    }

    fn refused(status: StatusCode) -> Verdict {
        Verdict::Refused {
            endpoint: "peer:1".into(),
            status,
            reason: "no".into(),
        }
    }

    fn status(verdict: Verdict, rejections: Rejections) -> u16 {
        answer(verdict, rejections, "t").map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn routed_requests_are_answered_by_precedence() {
        let no_quorum = || Verdict::NoQuorum {
            failed_series: 1,
            series: 2,
            quorum: 2,
            first_failure: "peer:1: refused".into(),
        };
        assert_eq!(status(Verdict::Stored, Rejections::default()), 200);
        // No quorum wins over everything: the sender retries, nothing is dropped.
        assert_eq!(status(no_quorum(), invalid()), 503);
        assert_eq!(status(no_quorum(), conflicts()), 503);
        // Invalid series here, then a peer's 400, then conflicts here, then a peer's 409.
        assert_eq!(status(refused(StatusCode::CONFLICT), invalid()), 400);
        assert_eq!(status(refused(StatusCode::BAD_REQUEST), conflicts()), 400);
        assert_eq!(status(refused(StatusCode::CONFLICT), conflicts()), 409);
        assert_eq!(status(Verdict::Stored, conflicts()), 409);
        assert_eq!(status(refused(StatusCode::CONFLICT), Rejections::default()), 409);
        assert_eq!(
            status(refused(StatusCode::PAYLOAD_TOO_LARGE), Rejections::default()),
            413
        );
        let text = answer(no_quorum(), Rejections::default(), "t").unwrap_err().to_string();
        assert_eq!(
            text,
            "1 of 2 series stored by fewer than 2 of their owners; first failure: peer:1: refused"
        );
    }
}
