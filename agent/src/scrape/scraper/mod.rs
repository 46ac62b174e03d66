//! One HTTP scrape: the request Prometheus sends (Accept, Accept-Encoding, User-Agent, the
//! timeout header, Authorization), redirects, the body read under `body_size_limit`, gzip
//! decoded, and the format picked from Content-Type. As Prometheus `scrape/scrape.go`
//! (`targetScraper`).
//!
//! A scrape pool builds one [`Scraper`]; each scrape loop owns a clone of it, and in it one
//! keep-alive HTTP/1.1 connection to its target (`connection.rs`), opened at the first scrape and
//! again after a failure or a close by the server.

mod connection;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::io::Read;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HOST, HeaderName, HeaderValue, LOCATION,
    USER_AGENT,
};
use hyper::{Request, Response, StatusCode, Uri};
use trawl_model::exposition::{ACCEPT_HEADER, Format};
use url::{Position, Url};

use connection::{Connection, Connector};
pub use connection::{ConnectionError, READ_BUFFER_BYTES};

use crate::config::ScrapeConfig;
use crate::http_client::{Auth, HttpClientError, MAX_REDIRECTS, error_chain};
use crate::spare::Spares;

/// `User-Agent` of scrapes and remote writes.
pub const TRAWL_USER_AGENT: &str = concat!("trawl-agent/", env!("CARGO_PKG_VERSION"));

/// Tells the target how long it has to answer, in seconds, as Prometheus.
const SCRAPE_TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-prometheus-scrape-timeout-seconds");

/// Most of a redirect's body read so that its connection can carry the next request, in bytes
/// (Go's client reads 2 KiB); a longer body closes the connection instead.
const MAX_DRAINED_BYTES: usize = 2 * 1024;

/// Idle body buffers kept for reuse per scrape pool: at most this many, and past the first only
/// while their capacity stays under [`POOLED_BYTES`] (see [`crate::spare`]).
const POOLED_BUFFERS: usize = 8;

/// Capacity of the idle body buffers kept beyond the first, in bytes.
const POOLED_BYTES: usize = 4 << 20;

/// Most bytes reserved for a body from its `Content-Length` before it is read, so a false length
/// (with no `body_size_limit`) cannot make the agent reserve more; a longer body grows as read.
const MAX_RESERVED_BODY: u64 = 16 << 20;

/// Why a scrape got no body to parse.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Credentials could not be read (e.g. `credentials_file` missing).
    #[error("{0}")]
    Auth(#[from] HttpClientError),
    /// Connecting, TLS, sending the request or reading the response failed; the message carries
    /// the whole cause chain, as Go's `Get "url": …`.
    #[error("Get \"{url}\": {}", error_chain(.error))]
    Http {
        /// The URL requested (a redirect's target after a redirect).
        url: String,
        /// What failed.
        error: ConnectionError,
    },
    /// The whole scrape took longer than `scrape_timeout`.
    #[error("context deadline exceeded (scrape timeout {0:?})")]
    Timeout(Duration),
    /// The target answered with a status other than 200 (a redirect when `follow_redirects` is
    /// false or it has no `Location`).
    #[error("server returned HTTP status {0}")]
    Status(StatusCode),
    /// Another redirect came after [`MAX_REDIRECTS`], as Go's `http.Client`.
    #[error("Get \"{url}\": stopped after {MAX_REDIRECTS} redirects")]
    TooManyRedirects {
        /// The URL that answered with the redirect.
        url: String,
    },
    /// A redirect's `Location` is not an `http` or `https` URL.
    #[error("Get \"{url}\": invalid redirect location {location:?}")]
    InvalidRedirect {
        /// The URL that answered with the redirect.
        url: String,
        /// The `Location` header, lossily decoded.
        location: String,
    },
    /// The URL's path and query cannot be sent as an HTTP request target.
    #[error("Get \"{0}\": invalid request URI")]
    InvalidUri(String),
    /// The (uncompressed) body reached `body_size_limit` bytes.
    #[error("body size limit exceeded ({0} bytes)")]
    BodySizeLimit(u64),
    /// The body claimed gzip and was not.
    #[error("invalid gzip body: {0}")]
    Gzip(std::io::Error),
}

/// Fetches one target's metrics. A pool's scrapers share settings and body buffers; each clone
/// has its own connection, so a scrape loop owns a clone.
#[derive(Debug)]
pub struct Scraper {
    shared: Arc<Shared>,
    /// The keep-alive connection to the target's origin; `None` before the first scrape and
    /// after a failed one.
    conn: Option<Connection>,
}

/// What a pool's scrapers share.
struct Shared {
    connector: Connector,
    auth: Auth,
    follow_redirects: bool,
    /// In bytes, 0 for none.
    body_size_limit: u64,
    enable_compression: bool,
    buffers: Arc<BufferPool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("auth", &self.auth)
            .field("follow_redirects", &self.follow_redirects)
            .field("body_size_limit", &self.body_size_limit)
            .field("enable_compression", &self.enable_compression)
            .finish_non_exhaustive()
    }
}

impl Clone for Scraper {
    /// The same settings and buffers, without the connection.
    fn clone(&self) -> Self {
        Scraper {
            shared: self.shared.clone(),
            conn: None,
        }
    }
}

/// Idle body buffers, shared by a pool's scrapers.
#[derive(Debug)]
struct BufferPool(Mutex<Spares<Vec<u8>>>);

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool(Mutex::new(Spares::new(POOLED_BUFFERS, POOLED_BYTES)))
    }
}

impl BufferPool {
    fn take(&self) -> Vec<u8> {
        self.lock().take()
    }

    fn put(&self, bytes: Vec<u8>) {
        self.lock().put(bytes);
    }

    fn lock(&self) -> MutexGuard<'_, Spares<Vec<u8>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A scraped body (uncompressed); its buffer goes back to the scraper's pool when dropped.
#[derive(Debug)]
pub struct Body {
    bytes: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        self.pool.put(std::mem::take(&mut self.bytes));
    }
}

impl Scraper {
    /// A scraper for the targets of `cfg`: its `tls_config`, auth, `follow_redirects`,
    /// `body_size_limit` (bytes, 0 for none) and `enable_compression`.
    ///
    /// Errors: unreadable or invalid TLS files or `server_name`, as [`crate::http_client::tls_config`].
    pub fn new(cfg: &ScrapeConfig) -> Result<Self, HttpClientError> {
        Ok(Scraper {
            shared: Arc::new(Shared {
                connector: Connector::new(&cfg.http.tls_config)?,
                auth: Auth::from_config(&cfg.http),
                follow_redirects: cfg.http.follow_redirects,
                body_size_limit: cfg.body_size_limit,
                enable_compression: cfg.enable_compression,
                buffers: Arc::default(),
            }),
            conn: None,
        })
    }

    /// Scrapes `url` within `timeout`; returns the format to parse the body with, and the body.
    pub async fn scrape(&mut self, url: &Url, timeout: Duration) -> Result<(Format, Body), ScrapeError> {
        let mut body = Body {
            bytes: self.shared.buffers.take(),
            pool: self.shared.buffers.clone(),
        };
        // A timeout drops the connection in use with the future: its state is unknown.
        match tokio::time::timeout(timeout, self.fetch(url, timeout, &mut body.bytes)).await {
            Ok(result) => result.map(|format| (format, body)),
            Err(_) => Err(ScrapeError::Timeout(timeout)),
        }
    }

    /// GETs `target`, following redirects, into `body`. Keeps the connection only when the
    /// exchange ended cleanly; any error drops it.
    async fn fetch(&mut self, target: &Url, timeout: Duration, body: &mut Vec<u8>) -> Result<Format, ScrapeError> {
        let shared = self.shared.clone();
        let authorization = shared.auth.header()?;
        // Go formats the seconds with the shortest exact decimal, as Rust's `Display` does.
        let timeout_seconds = HeaderValue::try_from(timeout.as_secs_f64().to_string()).ok();
        let mut url = Cow::Borrowed(target);
        let mut redirects = 0;
        loop {
            // Credentials go to the target's host only; Prometheus would also send them to
            // another host a redirect names (a documented difference).
            let request = RequestHead {
                authorization: authorization.as_ref().filter(|_| url.host() == target.host()),
                timeout_seconds: timeout_seconds.as_ref(),
                enable_compression: shared.enable_compression,
            };
            let (mut conn, response) = self.send(&url, &request).await?;
            let status = response.status();
            if status == StatusCode::OK {
                let format = shared.read_body(&mut conn, &url, response, body).await?;
                self.keep(conn, target);
                return Ok(format);
            }
            let location = response.headers().get(LOCATION);
            let Some(location) = location.filter(|_| shared.follow_redirects && is_redirect(status)) else {
                return Err(ScrapeError::Status(status));
            };
            if redirects == MAX_REDIRECTS {
                return Err(ScrapeError::TooManyRedirects { url: url.to_string() });
            }
            let next = redirect_target(&url, location)?;
            if drain(&mut conn, response).await {
                self.keep(conn, target);
            }
            url = Cow::Owned(next);
            redirects += 1;
        }
    }

    /// Sends a GET for `url` on the kept connection when it serves `url`'s origin, else on a new
    /// one. A kept connection that fails is replaced once: the server may have closed it while
    /// idle, and a GET can be repeated.
    async fn send(
        &mut self,
        url: &Url,
        head: &RequestHead<'_>,
    ) -> Result<(Connection, Response<Incoming>), ScrapeError> {
        let failed = |error| ScrapeError::Http {
            url: url.to_string(),
            error,
        };
        if let Some(mut conn) = self.conn.take_if(|conn| conn.serves(url))
            && let Ok(response) = conn.send(head.request(url)?).await
        {
            return Ok((conn, response));
        }
        let mut conn = self.shared.connector.connect(url).await.map_err(failed)?;
        let response = conn.send(head.request(url)?).await.map_err(failed)?;
        Ok((conn, response))
    }

    /// Keeps `conn` for the next scrape when it leads to the target; a connection to a
    /// redirect's other origin lives for one request.
    fn keep(&mut self, conn: Connection, target: &Url) {
        if conn.serves(target) {
            self.conn = Some(conn);
        }
    }
}

impl Shared {
    /// Streams a 200 response's body into `body` under the limit, gunzipping it when its
    /// `Content-Encoding` is gzip; returns the format its `Content-Type` names.
    async fn read_body(
        &self,
        conn: &mut Connection,
        url: &Url,
        response: Response<Incoming>,
        body: &mut Vec<u8>,
    ) -> Result<Format, ScrapeError> {
        let (head, mut incoming) = response.into_parts();
        let format = Format::from_content_type(header_str(head.headers.get(CONTENT_TYPE)));
        // A declared length that reaches the limit fails before anything is read; one under it
        // is reserved, so the body is not copied as it grows.
        let length = incoming.size_hint().exact();
        if let Some(length) = length {
            self.check_limit(length)?;
        }
        let reserve = |buffer: &mut Vec<u8>| {
            if let Some(length) = length {
                buffer.reserve_exact(length.min(MAX_RESERVED_BODY) as usize);
            }
        };
        if header_str(head.headers.get(CONTENT_ENCODING)) != Some("gzip") {
            reserve(body);
            return self.stream(conn, url, &mut incoming, body).await.map(|()| format);
        }
        let mut compressed = self.buffers.take();
        reserve(&mut compressed);
        let result = match self.stream(conn, url, &mut incoming, &mut compressed).await {
            Ok(()) => self.gunzip(&compressed, body),
            Err(error) => Err(error),
        };
        self.buffers.put(compressed);
        result.map(|()| format)
    }

    /// Appends the body's pieces to `out`, failing as soon as it reaches the limit (for gzip,
    /// a compressed body that reaches the limit would decompress past it too).
    async fn stream(
        &self,
        conn: &mut Connection,
        url: &Url,
        incoming: &mut Incoming,
        out: &mut Vec<u8>,
    ) -> Result<(), ScrapeError> {
        loop {
            match conn.next_chunk(incoming).await {
                Ok(Some(chunk)) => {
                    out.extend_from_slice(&chunk);
                    self.check_limit(out.len() as u64)?;
                }
                Ok(None) => return Ok(()),
                Err(error) => {
                    return Err(ScrapeError::Http {
                        url: url.to_string(),
                        error,
                    });
                }
            }
        }
    }

    /// Decodes gzip into `body`, stopping at the limit so a gzip bomb costs at most the limit.
    fn gunzip(&self, compressed: &[u8], body: &mut Vec<u8>) -> Result<(), ScrapeError> {
        let decoder = flate2::read::GzDecoder::new(compressed);
        let cap = if self.body_size_limit == 0 {
            u64::MAX
        } else {
            self.body_size_limit
        };
        decoder.take(cap).read_to_end(body).map_err(ScrapeError::Gzip)?;
        self.check_limit(body.len() as u64)
    }

    /// Prometheus fails the scrape once the body *reaches* the limit.
    fn check_limit(&self, len: u64) -> Result<(), ScrapeError> {
        if self.body_size_limit > 0 && len >= self.body_size_limit {
            return Err(ScrapeError::BodySizeLimit(self.body_size_limit));
        }
        Ok(())
    }
}

/// The headers every request of one scrape carries, as Prometheus sends them.
struct RequestHead<'a> {
    authorization: Option<&'a HeaderValue>,
    timeout_seconds: Option<&'a HeaderValue>,
    enable_compression: bool,
}

impl RequestHead<'_> {
    /// A GET for `url` in origin form (`/path?query`) with `Host` and this scrape's headers.
    fn request(&self, url: &Url) -> Result<Request<Empty<Bytes>>, ScrapeError> {
        let invalid = || ScrapeError::InvalidUri(url.to_string());
        let uri = Uri::try_from(&url[Position::BeforePath..Position::AfterQuery]).map_err(|_| invalid())?;
        let host = HeaderValue::try_from(&url[Position::BeforeHost..Position::AfterPort]).map_err(|_| invalid())?;
        let encoding = if self.enable_compression { "gzip" } else { "identity" };
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(HOST, host);
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(encoding));
        headers.insert(USER_AGENT, HeaderValue::from_static(TRAWL_USER_AGENT));
        if let Some(seconds) = self.timeout_seconds {
            headers.insert(SCRAPE_TIMEOUT_HEADER, seconds.clone());
        }
        if let Some(authorization) = self.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        Ok(request)
    }
}

/// The statuses Go's client follows for a GET.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// `location` resolved against `url`; only `http` and `https` are followed.
fn redirect_target(url: &Url, location: &HeaderValue) -> Result<Url, ScrapeError> {
    let invalid = || ScrapeError::InvalidRedirect {
        url: url.to_string(),
        location: String::from_utf8_lossy(location.as_bytes()).into_owned(),
    };
    let next = location
        .to_str()
        .ok()
        .and_then(|l| url.join(l).ok())
        .ok_or_else(invalid)?;
    match next.scheme() {
        "http" | "https" => Ok(next),
        _ => Err(invalid()),
    }
}

/// Reads and discards a redirect's body; whether the connection can carry another request.
async fn drain(conn: &mut Connection, response: Response<Incoming>) -> bool {
    let mut body = response.into_body();
    let mut read = 0;
    loop {
        match conn.next_chunk(&mut body).await {
            Ok(Some(chunk)) if read + chunk.len() <= MAX_DRAINED_BYTES => read += chunk.len(),
            Ok(Some(_)) | Err(_) => return false,
            Ok(None) => return true,
        }
    }
}

fn header_str(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}
