//! Scrape targets that count what they serve, so a scenario can compare the samples the agent was
//! given with the samples found in the bucket. A synthetic target serves `series` counters whose
//! values are unique per scrape and series; a node_exporter proxy passes a real node_exporter's
//! exposition through. Both remember when each scrape was served and can be frozen: a frozen
//! target answers 503 and serves (counts) nothing, which lets a scenario end with nothing in
//! flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Result;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::TEXT_FORMAT;

/// Name of the synthetic counter every synthetic target serves.
pub const SYNTHETIC_METRIC: &str = "trawl_ha_synthetic_total";

/// What a target serves.
#[derive(Debug, Clone)]
enum Source {
    /// `series` synthetic counters.
    Synthetic { series: usize },
    /// The exposition of `GET url`.
    Proxy { url: String },
}

/// Shared state of one target's HTTP handler.
#[derive(Debug)]
struct Shared {
    source: Source,
    /// When each scrape was served, in order (its index + 1 is the scrape number).
    served: Mutex<Vec<Instant>>,
    frozen: AtomicBool,
    client: reqwest::Client,
}

/// A counting target on 127.0.0.1 serving `GET /metrics`; it runs until the runtime stops.
#[derive(Debug, Clone)]
pub struct CountingTarget {
    address: String,
    shared: Arc<Shared>,
}

/// The text exposition of scrape number `scrape` (from 1) of a synthetic target with `series`
/// series: `trawl_ha_synthetic_total{series="k"} = scrape * series + k`, unique per scrape and
/// series, and growing per series (a counter).
pub fn synthetic_exposition(scrape: u64, series: usize) -> String {
    let mut body =
        format!("# HELP {SYNTHETIC_METRIC} Synthetic counter, unique per scrape.\n# TYPE {SYNTHETIC_METRIC} counter\n");
    for k in 0..series {
        let value = scrape * series as u64 + k as u64;
        body.push_str(&format!("{SYNTHETIC_METRIC}{{series=\"{k:04}\"}} {value}\n"));
    }
    body
}

/// The `series` label value of synthetic series `k`.
pub fn synthetic_series_label(k: usize) -> String {
    format!("{k:04}")
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    if shared.frozen.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "frozen\n").into_response();
    }
    let body = match &shared.source {
        Source::Synthetic { series } => {
            let mut served = shared.served.lock().unwrap_or_else(PoisonError::into_inner);
            served.push(Instant::now());
            synthetic_exposition(served.len() as u64, *series)
        }
        Source::Proxy { url } => {
            let fetched = match shared.client.get(url).send().await {
                Ok(r) if r.status().is_success() => r.text().await,
                Ok(r) => return (StatusCode::BAD_GATEWAY, format!("upstream {}\n", r.status())).into_response(),
                Err(e) => Err(e),
            };
            match fetched {
                Ok(body) => {
                    shared
                        .served
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Instant::now());
                    body
                }
                Err(e) => return (StatusCode::BAD_GATEWAY, format!("upstream: {e}\n")).into_response(),
            }
        }
    };
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], body).into_response()
}

impl CountingTarget {
    /// Starts a synthetic target serving `series` counters.
    pub async fn synthetic(series: usize) -> Result<CountingTarget> {
        CountingTarget::start(Source::Synthetic { series }).await
    }

    /// Starts a proxy serving the exposition of `GET upstream` (e.g. node_exporter's
    /// `http://127.0.0.1:9100/metrics`); a failed upstream answers 502 and is not counted.
    pub async fn proxy(upstream: &str) -> Result<CountingTarget> {
        CountingTarget::start(Source::Proxy {
            url: upstream.to_owned(),
        })
        .await
    }

    async fn start(source: Source) -> Result<CountingTarget> {
        let shared = Arc::new(Shared {
            source,
            served: Mutex::new(Vec::new()),
            frozen: AtomicBool::new(false),
            client: crate::http_client(),
        });
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(CountingTarget { address, shared })
    }

    /// `127.0.0.1:PORT`, the target's `instance` label.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Series per scrape (0 for a proxy: unknown).
    pub fn series(&self) -> usize {
        match self.shared.source {
            Source::Synthetic { series } => series,
            Source::Proxy { .. } => 0,
        }
    }

    /// Scrapes served so far.
    pub fn served(&self) -> usize {
        self.lock().len()
    }

    /// Scrapes served strictly after `after` and not after `until`.
    pub fn served_between(&self, after: Instant, until: Instant) -> usize {
        self.lock().iter().filter(|&&t| t > after && t <= until).count()
    }

    /// From now on, answers 503 and serves nothing.
    pub fn freeze(&self) {
        self.shared.frozen.store(true, Ordering::SeqCst);
    }

    /// Serves again after [`CountingTarget::freeze`].
    pub fn thaw(&self) {
        self.shared.frozen.store(false, Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Instant>> {
        self.shared.served.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    #[test]
    fn synthetic_values_are_unique_per_scrape_and_series_and_grow() {
        let mut seen = HashSet::new();
        let mut last = [-1.0; 7];
        for scrape in 1..=20 {
            let body = synthetic_exposition(scrape, 7);
            let samples: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
            assert_eq!(samples.len(), 7);
            for (k, line) in samples.iter().enumerate() {
                let (name, value) = line.rsplit_once(' ').expect("sample line");
                assert_eq!(
                    name,
                    format!("{SYNTHETIC_METRIC}{{series=\"{}\"}}", synthetic_series_label(k))
                );
                let value: f64 = value.parse().expect("value");
                assert!(value > last[k], "counter {k} did not grow");
                last[k] = value;
                assert!(seen.insert(value as u64), "value {value} repeated");
            }
        }
        assert!(synthetic_exposition(1, 0).lines().all(|l| l.starts_with('#')));
    }

    #[tokio::test]
    async fn synthetic_target_counts_each_scrape_and_not_when_frozen() -> Result<()> {
        let target = CountingTarget::synthetic(3).await?;
        let url = format!("http://{}/metrics", target.address());
        let client = crate::http_client();
        let start = Instant::now();
        let first = client.get(&url).send().await?.text().await?;
        assert!(
            first.contains(&format!("{SYNTHETIC_METRIC}{{series=\"0000\"}} 3\n")),
            "{first}"
        );
        let second = client.get(&url).send().await?.text().await?;
        assert!(
            second.contains(&format!("{SYNTHETIC_METRIC}{{series=\"0002\"}} 8\n")),
            "{second}"
        );
        assert_eq!(target.served(), 2);
        target.freeze();
        let frozen = client.get(&url).send().await?;
        assert_eq!(frozen.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(target.served(), 2);
        target.thaw();
        client.get(&url).send().await?.error_for_status()?;
        assert_eq!(target.served(), 3);
        let now = Instant::now();
        assert_eq!(target.served_between(start, now), 3);
        assert_eq!(target.served_between(now, now + Duration::from_secs(1)), 0);
        // Other paths are not scrapes.
        let other = client.get(format!("http://{}/other", target.address())).send().await?;
        assert_eq!(other.status(), StatusCode::NOT_FOUND);
        assert_eq!(target.served(), 3);
        Ok(())
    }

    #[tokio::test]
    async fn proxy_counts_only_what_upstream_served() -> Result<()> {
        let upstream = CountingTarget::synthetic(2).await?;
        let proxy = CountingTarget::proxy(&format!("http://{}/metrics", upstream.address())).await?;
        let client = crate::http_client();
        let url = format!("http://{}/metrics", proxy.address());
        let body = client.get(&url).send().await?.text().await?;
        assert_eq!(body, synthetic_exposition(1, 2));
        assert_eq!((proxy.served(), upstream.served()), (1, 1));
        // A failing upstream: 502, not counted.
        upstream.freeze();
        let failed = client.get(&url).send().await?;
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(proxy.served(), 1);
        // An upstream that is not there at all.
        let dead = CountingTarget::proxy("http://127.0.0.1:1/metrics").await?;
        let failed = client.get(format!("http://{}/metrics", dead.address())).send().await?;
        assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(dead.served(), 0);
        Ok(())
    }
}
