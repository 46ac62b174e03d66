//! Sending one batch to the healthy collectors of an endpoint, and the classification of each
//! answer as Prometheus `storage/remote/client.go` (`Client.Store`): 2xx is success; 5xx,
//! network errors and (when enabled) 429 are recoverable; any other status drops the batch.
//!
//! A recoverable failure marks the collector down (see [`collectors`]) and the same body goes
//! at once to the next healthy collector; a collector silent for several times its recent
//! answer time (250 ms to 1.5 s) while another healthy one exists gets the body sent to that
//! one too (a hedged request: the first 2xx wins and the other request is cancelled; receivers
//! take identical duplicates).

#[path = "collectors.rs"]
mod collectors;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use tracing::debug;

use super::RemoteWriteError;
use crate::config::RemoteWriteConfig;
use crate::http_client::{self, Auth, HttpClientError};
use collectors::{Collector, Collectors, Resolver, SystemResolver, Timing};

pub use collectors::CollectorFamilies;

/// `User-Agent` of every remote write request.
const USER_AGENT_VALUE: &str = concat!("trawl-agent/", env!("CARGO_PKG_VERSION"));
/// Protocol version header required by remote write 1.0.
const VERSION_HEADER: &str = "x-prometheus-remote-write-version";
/// Longest part of an error response body kept for logs, in bytes (as Prometheus `maxErrMsgLen`).
const MAX_ERROR_LINE_BYTES: usize = 1024;
/// Most of a successful response body read to let the connection be reused, in bytes.
const MAX_DRAINED_BYTES: usize = 64 * 1024;

/// Why one send of a batch failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Credentials could not be attached (e.g. an unreadable `password_file`). Recoverable, as in
    /// Prometheus where the failing round tripper surfaces as a request error.
    #[error("authenticate remote write request: {0}")]
    Auth(HttpClientError),
    /// The request failed before a response arrived: connection, TLS, or `remote_timeout`.
    #[error("send remote write request: {}", http_client::error_chain(.0))]
    Request(reqwest::Error),
    /// The server answered 429 and `retry_on_http_429` is on.
    #[error("server returned HTTP status 429 Too Many Requests: {line}")]
    RateLimited {
        /// Delay asked for by a valid, future `Retry-After` header (seconds or HTTP date).
        retry_after: Option<Duration>,
        /// First line of the response body, at most 1024 bytes.
        line: String,
    },
    /// The server answered with another non-2xx status.
    #[error("server returned HTTP status {status}: {line}")]
    Status {
        /// The response status.
        status: StatusCode,
        /// First line of the response body, at most 1024 bytes.
        line: String,
    },
    /// The endpoint has no URL (configuration validation rejects that earlier). Permanent.
    #[error("remote write endpoint has no URL")]
    NoCollector,
}

impl SendError {
    /// Whether sending the same batch again may succeed: network errors, 5xx, and 429 when
    /// `retry_on_http_429` is on are retried; any other status drops the batch.
    pub fn is_recoverable(&self) -> bool {
        match self {
            SendError::Auth(_) | SendError::Request(_) | SendError::RateLimited { .. } => true,
            SendError::Status { status, .. } => status.is_server_error(),
            SendError::NoCollector => false,
        }
    }

    /// The delay the server asked for with `Retry-After`, which replaces the backoff.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the collector is at fault, so another one may take the same body: every
    /// recoverable error but [`SendError::Auth`], which fails the same way everywhere.
    fn fails_over(&self) -> bool {
        self.is_recoverable() && !matches!(self, SendError::Auth(_))
    }
}

/// Sends encoded batches to the collectors of one endpoint.
pub(super) struct Client {
    collectors: Collectors,
    auth: Auth,
    headers: HeaderMap,
    timeout: Duration,
    retry_on_http_429: bool,
}

impl Client {
    /// Builds the collectors of `cfg.urls` (HTTP clients with TLS and redirects) and the fixed
    /// request headers of `cfg`, reporting collector health and failovers into `families`.
    ///
    /// # Errors
    /// [`RemoteWriteError::HttpClient`] when TLS files cannot be loaded,
    /// [`RemoteWriteError::Header`] for a configured header that is not valid HTTP.
    pub(super) fn new(cfg: &RemoteWriteConfig, families: &CollectorFamilies) -> Result<Client, RemoteWriteError> {
        Self::build(cfg, families, Timing::default(), Arc::new(SystemResolver))
    }

    fn build(
        cfg: &RemoteWriteConfig,
        families: &CollectorFamilies,
        timing: Timing,
        resolver: Arc<dyn Resolver>,
    ) -> Result<Client, RemoteWriteError> {
        let collectors =
            Collectors::new(&cfg.name, &cfg.urls, &cfg.http, timing, resolver, families).map_err(|source| {
                RemoteWriteError::HttpClient {
                    remote_name: cfg.name.clone(),
                    source,
                }
            })?;
        Ok(Client {
            collectors,
            auth: Auth::from_config(&cfg.http),
            headers: request_headers(cfg)?,
            timeout: cfg.remote_timeout,
            retry_on_http_429: cfg.queue_config.retry_on_http_429,
        })
    }

    /// Sends one snappy-compressed `WriteRequest` to one healthy collector, each attempt bounded
    /// by `remote_timeout`. A recoverable failure sends the same body at once to the next
    /// healthy collector; an attempt without an answer within its collector's hedge delay
    /// ([`Collector::hedge_after`]) is hedged to the next one.
    /// Returns at the first 2xx, or at the first permanent error (the body is bad everywhere).
    ///
    /// # Errors
    /// The last collector's error when every collector tried failed; a permanent error at once.
    /// [`SendError::is_recoverable`] tells whether to retry.
    pub(super) async fn store(&self, body: Bytes) -> Result<(), SendError> {
        // Resolve names first when due, so this round sees the current addresses.
        self.collectors.refresh().await;
        let mut waiting = self.collectors.candidates().into_iter();
        let Some(first) = waiting.next() else {
            return Err(SendError::NoCollector);
        };
        let timing = *self.collectors.timing();
        let mut hedge_after = first.hedge_after(&timing);
        let mut started = vec![Arc::clone(&first)];
        let mut in_flight = FuturesUnordered::new();
        in_flight.push(self.attempt(first, body.clone()));
        let hedge = tokio::time::sleep(hedge_after);
        tokio::pin!(hedge);
        loop {
            let next = tokio::select! {
                answer = in_flight.next() => {
                    let Some((collector, latency, result)) = answer else {
                        return Err(SendError::NoCollector);
                    };
                    started.retain(|c| !Arc::ptr_eq(c, &collector));
                    let error = match result {
                        Ok(()) => {
                            collector.answered(latency);
                            // The requests still in flight are cancelled when this returns.
                            for slow in &started {
                                slow.failed(&timing, &"no answer while another collector accepted the batch", None);
                            }
                            return Ok(());
                        }
                        Err(error) if !error.fails_over() => {
                            // A permanent answer shows the collector is reachable; an auth
                            // failure says nothing about it.
                            if !error.is_recoverable() {
                                collector.answered(latency);
                            }
                            return Err(error);
                        }
                        Err(error) => error,
                    };
                    collector.failed(&timing, &error, error.retry_after());
                    match waiting.next() {
                        Some(next) => next,
                        None if in_flight.is_empty() => {
                            self.collectors.all_failed();
                            return Err(error);
                        }
                        None => continue,
                    }
                }
                () = &mut hedge, if waiting.len() > 0 => match waiting.next() {
                    Some(next) => {
                        debug!(
                            message = "No answer yet; sending the batch to another collector too.",
                            collector = %next.name(),
                            after = ?hedge_after,
                        );
                        next
                    }
                    None => continue,
                },
            };
            self.collectors.failover();
            hedge_after = next.hedge_after(&timing);
            hedge.as_mut().reset(tokio::time::Instant::now() + hedge_after);
            started.push(Arc::clone(&next));
            in_flight.push(self.attempt(next, body.clone()));
        }
    }

    /// POSTs `body` to `collector` with a timeout of `remote_timeout`; also returns how long
    /// the answer took.
    async fn attempt(
        &self,
        collector: Arc<Collector>,
        body: Bytes,
    ) -> (Arc<Collector>, Duration, Result<(), SendError>) {
        let started = tokio::time::Instant::now();
        let result = self.post(&collector, body).await;
        (collector, started.elapsed(), result)
    }

    async fn post(&self, collector: &Collector, body: Bytes) -> Result<(), SendError> {
        let request = collector
            .http
            .post(collector.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout)
            .body(body);
        let request = self.auth.apply(request).map_err(SendError::Auth)?;
        let mut response = request.send().await.map_err(SendError::Request)?;
        let status = response.status();
        if status.is_success() {
            drain(&mut response).await;
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let line = first_line(&mut response).await;
        if status == StatusCode::TOO_MANY_REQUESTS && self.retry_on_http_429 {
            let retry_after = retry_after.and_then(|v| parse_retry_after(&v, SystemTime::now()));
            return Err(SendError::RateLimited { retry_after, line });
        }
        Err(SendError::Status { status, line })
    }
}

/// Configured headers, then the protocol's own, which configuration cannot override.
fn request_headers(cfg: &RemoteWriteConfig) -> Result<HeaderMap, RemoteWriteError> {
    let invalid = |header: &str| RemoteWriteError::Header {
        remote_name: cfg.name.clone(),
        header: header.to_owned(),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(name))?;
        let header_value = HeaderValue::from_str(value).map_err(|_| invalid(name))?;
        headers.insert(header_name, header_value);
    }
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(VERSION_HEADER, HeaderValue::from_static("0.1.0"));
    Ok(headers)
}

/// Reads a bounded part of a successful response so the connection can be reused.
async fn drain(response: &mut reqwest::Response) {
    let mut read = 0;
    while read < MAX_DRAINED_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => return,
        }
    }
}

/// The first line of an error response body, at most [`MAX_ERROR_LINE_BYTES`], lossily UTF-8.
async fn first_line(response: &mut reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_LINE_BYTES && !body.contains(&b'\n') {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let end = body
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(body.len())
        .min(MAX_ERROR_LINE_BYTES);
    String::from_utf8_lossy(&body[..end]).trim_end_matches('\r').to_owned()
}

/// Parses `Retry-After` as Prometheus `retryAfterDuration`: whole seconds or an HTTP date
/// (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`). `None` for zero, past dates and anything
/// unparsable, meaning "use the backoff".
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => parse_http_date(value)?.duration_since(now).ok()?,
    };
    (!delay.is_zero()).then_some(delay)
}

/// Parses an IMF-fixdate (RFC 9110 §5.6.7), the only HTTP date form Go's `http.TimeFormat` reads.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = value.split(' ');
    let (weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || zone != "GMT" || weekday.len() != 4 || !weekday.ends_with(',') {
        return None;
    }
    let day = parse_digits(day, 2)?;
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year = parse_digits(year, 4)?;
    let mut hms = time.split(':');
    let (hour, minute, second) = (
        parse_digits(hms.next()?, 2)?,
        parse_digits(hms.next()?, 2)?,
        parse_digits(hms.next()?, 2)?,
    );
    if hms.next().is_some() || day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// Exactly `len` ASCII digits.
fn parse_digits(s: &str, len: usize) -> Option<i64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12): count whole 400-year eras
/// of 146097 days from a year starting in March, so the leap day falls at the end of the year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after("1", at(0)), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 120 ", at(0)), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("0", at(0)), None);
        assert_eq!(parse_retry_after("-1", at(0)), None);
        assert_eq!(parse_retry_after("1.5", at(0)), None);
        assert_eq!(parse_retry_after("", at(0)), None);
        assert_eq!(parse_retry_after("99999999999999999999999", at(0)), None);
    }

    #[test]
    fn retry_after_http_date() {
        // 1994-11-06T08:49:37Z is 784111777 s after the epoch (RFC 9110's example date).
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse_http_date(date), Some(at(784_111_777)));
        assert_eq!(parse_retry_after(date, at(784_111_770)), Some(Duration::from_secs(7)));
        // A date in the past or now falls back to the backoff.
        assert_eq!(parse_retry_after(date, at(784_111_777)), None);
        assert_eq!(parse_retry_after(date, at(784_111_800)), None);
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(at(0)));
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT"),
            Some(at(1_709_251_199))
        );
    }

    #[test]
    fn broken_http_dates_are_rejected() {
        for date in [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Apr 1994 08:49:37 GMT",
            "Sun, 29 Feb 2023 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(date), None, "{date}");
        }
    }

    #[test]
    fn recoverable_split_follows_prometheus() {
        let status = |code: u16| SendError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            line: String::new(),
        };
        assert!(status(500).is_recoverable());
        assert!(status(503).is_recoverable());
        assert!(!status(400).is_recoverable());
        assert!(!status(404).is_recoverable());
        assert!(!status(429).is_recoverable());
        assert!(!status(302).is_recoverable());
        let limited = SendError::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
            line: String::new(),
        };
        assert!(limited.is_recoverable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(1)));
        assert_eq!(status(503).retry_after(), None);
    }
}
