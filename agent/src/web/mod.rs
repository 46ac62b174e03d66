//! The agent's HTTP API: `/metrics`, `/-/healthy`, `/-/ready`, `POST /-/reload` and
//! `/api/v1/targets`, with Prometheus's paths and answers.

pub mod targets;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::scrape::SharedTargets;

/// A reload request: the answer says whether the new config was applied.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    /// The agent's own metrics.
    pub registry: Arc<Registry>,
    /// Every pool's targets.
    pub targets: SharedTargets,
    /// Where `POST /-/reload` sends its request.
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Set once the config is loaded and scraping started; cleared at shutdown.
    pub ready: Arc<AtomicBool>,
}

/// The router of the agent's HTTP API.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Trawl agent is Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/api/v1/targets", get(api_targets))
        .with_state(state)
}

/// Serves the API on an already bound `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: WebState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(state): State<WebState>) -> Response {
    trawl_process::metrics_response(&state.registry)
}

async fn ready(State(state): State<WebState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "Trawl agent is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn reload(State(state): State<WebState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "").into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
    }
}

async fn api_targets(State(state): State<WebState>, Query(query): Query<targets::TargetsQuery>) -> Response {
    Json(targets::targets(&state.targets, &query)).into_response()
}
