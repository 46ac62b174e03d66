//! Forwarding to peers: one HTTP client for all, per-peer health with its own backoff (a peer
//! that failed is skipped until its backoff expires, 1 s doubling to 30 s), and retries of a
//! forward with short waits until the forward deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use bytes::Bytes;
use tokio::time::Instant;
use tracing::{info, warn};

use super::FORWARDED_HEADER;
use super::metrics::{ForwardResult, ReplicateMetrics};
use super::quorum::Outcome;
use trawl_process::error_chain;

/// First backoff of a failed peer; doubles per consecutive failure.
const PEER_BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest backoff of a failed peer.
const PEER_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// First wait between attempts of one forward; doubles per attempt.
const RETRY_WAIT_MIN: Duration = Duration::from_millis(100);
/// TCP connect timeout of forwards: a peer on the same network answers far faster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest reason kept from a peer's answer.
const MAX_REASON_BYTES: usize = 512;

/// Every peer seen, by address, and the client forwarding to them.
#[derive(Debug)]
pub(crate) struct Peers {
    client: reqwest::Client,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    metrics: ReplicateMetrics,
}

/// One peer collector and its health.
#[derive(Debug)]
pub(crate) struct Peer {
    address: String,
    url: String,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Consecutive failed attempts.
    failures: u32,
    /// While set and in the future, forwards to the peer are skipped.
    retry_at: Option<Instant>,
}

// === impl Peers ===

impl Peers {
    /// Peers forwarded to with a client built once.
    ///
    /// # Errors
    /// The client's error when it cannot be built (no TLS backend is needed for `http://`).
    pub(crate) fn new(metrics: ReplicateMetrics) -> Result<Peers, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Peers {
            client,
            peers: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The peer at `address`, created (healthy) on first use.
    pub(crate) fn get(&self, address: &str) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(peer) = peers.get(address) {
            return Arc::clone(peer);
        }
        self.metrics.peer_up(address, true);
        let peer = Arc::new(Peer {
            address: address.to_owned(),
            url: format!("http://{address}/api/v1/receive"),
            health: Mutex::new(Health::default()),
        });
        peers.insert(address.to_owned(), Arc::clone(&peer));
        peer
    }

    /// Sends `body` (snappy protobuf) to `peer` as a forwarded request of `tenant`, retrying
    /// recoverable failures until `deadline`; a peer in backoff is skipped at once.
    pub(crate) async fn forward(
        &self,
        peer: &Peer,
        tenant_header: &HeaderName,
        tenant: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Outcome {
        if let Some(retry_at) = peer.backing_off(Instant::now()) {
            self.metrics.forward(&peer.address, ForwardResult::Skipped);
            return Outcome::Failed {
                reason: format!(
                    "peer is backing off for {:.1}s after failures",
                    retry_at.saturating_duration_since(Instant::now()).as_secs_f64()
                ),
            };
        }
        let headers = match forward_headers(tenant_header, tenant) {
            Ok(headers) => headers,
            Err(reason) => return Outcome::Failed { reason },
        };
        let mut wait = RETRY_WAIT_MIN;
        loop {
            let attempt = self
                .client
                .post(&peer.url)
                .headers(headers.clone())
                .body(body.clone())
                .send();
            let reason = match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => "no answer before the forward deadline".to_owned(),
                Ok(Err(error)) => error_chain(&error),
                Ok(Ok(response)) => {
                    let status = response.status();
                    if status.is_success() {
                        self.recovered(peer);
                        self.metrics.forward(&peer.address, ForwardResult::Success);
                        return Outcome::Stored;
                    }
                    let text = reason_text(response).await;
                    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                        // The peer works; the data is what it refused.
                        self.recovered(peer);
                        self.metrics.forward(&peer.address, ForwardResult::Refused);
                        return Outcome::Refused { status, reason: text };
                    }
                    format!("{status}: {text}")
                }
            };
            self.failed(peer, &reason);
            let now = Instant::now();
            if now + wait >= deadline {
                self.metrics.forward(&peer.address, ForwardResult::Failed);
                return Outcome::Failed { reason };
            }
            self.metrics.retry(&peer.address);
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    fn recovered(&self, peer: &Peer) {
        let mut health = peer.health.lock().unwrap_or_else(PoisonError::into_inner);
        if health.failures > 0 {
            info!(message = "Peer collector is reachable again.", peer = %peer.address);
            self.metrics.peer_up(&peer.address, true);
        }
        *health = Health::default();
    }

    fn failed(&self, peer: &Peer, reason: &str) {
        let mut health = peer.health.lock().unwrap_or_else(PoisonError::into_inner);
        if health.failures == 0 {
            warn!(message = "Forwarding to a peer collector failed; it is skipped while it backs off.", peer = %peer.address, error = %reason);
            self.metrics.peer_up(&peer.address, false);
        }
        health.failures = health.failures.saturating_add(1);
        let backoff = PEER_BACKOFF_MIN
            .saturating_mul(1 << (health.failures - 1).min(5))
            .min(PEER_BACKOFF_MAX);
        health.retry_at = Some(Instant::now() + backoff);
    }
}

// === impl Peer ===

impl Peer {
    /// When the peer may be tried again, if that is after `now`.
    fn backing_off(&self, now: Instant) -> Option<Instant> {
        let health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        health.retry_at.filter(|&at| at > now)
    }
}

/// Headers of a forwarded request: remote write 1.0, the tenant, and the marker that makes the
/// peer store locally without routing again.
fn forward_headers(tenant_header: &HeaderName, tenant: &str) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    headers.insert(
        HeaderName::from_static("x-prometheus-remote-write-version"),
        HeaderValue::from_static("0.1.0"),
    );
    headers.insert(HeaderName::from_static(FORWARDED_HEADER), HeaderValue::from_static("1"));
    let tenant = HeaderValue::from_str(tenant).map_err(|_| format!("tenant {tenant:?} is not a valid header value"))?;
    headers.insert(tenant_header.clone(), tenant);
    Ok(headers)
}

/// The first line of a peer's answer, cut to [`MAX_REASON_BYTES`].
async fn reason_text(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let line = text.lines().next().unwrap_or("").trim();
    let mut end = line.len().min(MAX_REASON_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_owned()
}
