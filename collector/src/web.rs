//! The collector's own HTTP endpoints beside the write routes: `/metrics`, `/-/healthy` and
//! `/-/ready`, with Prometheus's and Thanos's paths and answers.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::receive::Receiver;

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    /// The collector's own metrics.
    pub registry: Arc<Registry>,
    /// Ready while it accepts writes (after WAL replay, before the shutdown flush).
    pub receiver: Arc<Receiver>,
}

/// The router of `/metrics`, `/-/healthy` and `/-/ready`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Trawl collector is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(state): State<WebState>) -> Response {
    trawl_process::metrics_response(&state.registry)
}

async fn ready(State(state): State<WebState>) -> Response {
    if state.receiver.is_ready() {
        (StatusCode::OK, "Trawl collector is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}
