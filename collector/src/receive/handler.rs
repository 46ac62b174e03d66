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
use super::error::ReceiveError;
use super::metrics::{ReceiveMetrics, RejectReason};
use crate::head::{AppendReport, HeadError};
use crate::tenants::{Tenants, validate_tenant};

/// The receive side of a collector: reads write requests, picks the tenant's head, appends.
pub struct Receiver {
    tenants: Arc<Tenants>,
    config: ReceiveConfig,
    metrics: ReceiveMetrics,
    ready: AtomicBool,
    pool: BufferPool,
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

/// `error` and its sources, joined by `: `.
fn error_chain(error: &ReceiveError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
        }
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
        // Decoding and the WAL write are blocking work: keep them off the async workers.
        let receiver = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let result = receiver.ingest(&mut buffers, tenant);
            receiver.pool.give(buffers);
            result
        })
        .await
        .map_err(ReceiveError::Task)?
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

    /// Decompresses, decodes, validates and appends a request read into `buffers`.
    fn ingest(&self, buffers: &mut Buffers, tenant: Result<String, ReceiveError>) -> Result<(), ReceiveError> {
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
            if !batch.is_empty() {
                let report = self.append(&tenant, batch, received)?;
                let r = &mut batch.rejections;
                r.out_of_order = report.out_of_order;
                r.out_of_bounds = report.out_of_bounds;
                r.duplicate = report.duplicate;
            }

            let r = &batch.rejections;
            self.metrics.rejected(RejectReason::Invalid, r.invalid_samples);
            self.metrics.rejected(RejectReason::OutOfOrder, r.out_of_order);
            self.metrics.rejected(RejectReason::OutOfBounds, r.out_of_bounds);
            self.metrics.rejected(RejectReason::Duplicate, r.duplicate);
            if r.is_empty() {
                Ok(())
            } else {
                Err(ReceiveError::Rejected(r.clone()))
            }
        })
    }

    /// Appends the batch's valid series to the tenant's head under one head lock, then commits
    /// (WAL first, then memory).
    fn append(&self, tenant: &str, batch: &Batch<'_>, received: u64) -> Result<AppendReport, ReceiveError> {
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
        for series in batch.iter() {
            appender.append(series);
        }
        appender.commit().map_err(head_error)
    }
}
