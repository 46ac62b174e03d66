//! One keep-alive HTTP/1.1 connection to one origin (scheme, host, port), owned by a scrape loop
//! and driven inside the loop's own task: no pool, no connection task, no idle timer. hyper's
//! low-level `client::conn::http1` writes the request and parses the response; a fixed read
//! buffer bounds what a connection holds between scrapes.
//!
//! ```text
//! Connector::connect ── TCP (nodelay) ── TLS for https ── http1 handshake ──► Connection
//! Connection::send / next_chunk: poll hyper's I/O driver, then the request or body, in one task
//! ```

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::{Host, Url};

use crate::config::TlsConfig;
use crate::http_client::{HttpClientError, server_name, tls_config};

/// Bytes hyper reads from the socket at a time, kept per connection between scrapes; also the
/// largest response head (status line and headers) accepted. Measured on a 57 KB node_exporter
/// body: 16 KiB costs 4 reads and ~36 KB per idle connection in all, 64 KiB 1 read and ~80 KB,
/// for a few µs of CPU per scrape less.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Why a connection could not be opened or an exchange on it failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The URL has no host (only `http` and `https` URLs are fetched, which always do).
    #[error("URL has no host")]
    NoHost,
    /// The host name did not resolve.
    #[error("resolve {host}")]
    Resolve {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The TCP connection could not be made (refused, unreachable).
    #[error("connect to {address}")]
    Connect {
        /// The address tried last.
        address: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The URL's host is not a name TLS can verify.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// The TLS handshake failed (unknown CA, name mismatch, a peer that does not speak TLS).
    #[error("TLS handshake")]
    Tls(#[source] io::Error),
    /// The answer is not HTTP/1.x, or its head is larger than [`READ_BUFFER_BYTES`].
    #[error("malformed HTTP response")]
    Malformed(#[source] hyper::Error),
    /// Sending the request or reading the response failed (closed, reset, truncated).
    #[error(transparent)]
    Http(hyper::Error),
}

/// Opens [`Connection`]s with one scrape config's TLS settings.
pub struct Connector {
    tls: TlsConnector,
    /// `tls_config.server_name`: sent as SNI and verified instead of the URL's host, as Go's
    /// `tls.Config.ServerName`.
    server_name: Option<ServerName<'static>>,
    http1: http1::Builder,
}

impl Connector {
    /// A connector for `cfg`; see [`tls_config`] for what is read and verified.
    ///
    /// Errors: as [`tls_config`] and [`server_name`].
    pub fn new(cfg: &TlsConfig) -> Result<Self, HttpClientError> {
        let mut tls = tls_config(cfg)?;
        // Only HTTP/1.1 is spoken here, so the server must not pick h2.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut http1 = http1::Builder::new();
        // A fixed buffer instead of hyper's adaptive one, which grows to ~400 KB per connection.
        http1.read_buf_exact_size(Some(READ_BUFFER_BYTES));
        Ok(Connector {
            tls: TlsConnector::from(Arc::new(tls)),
            server_name: server_name(cfg)?,
            http1,
        })
    }

    /// Connects to the origin of `url` (`http` or `https`): TCP with `TCP_NODELAY`, TLS for
    /// `https`, then the HTTP/1.1 handshake (which sends nothing). Unbounded in time: the caller
    /// bounds the whole scrape.
    ///
    /// Errors: [`ConnectionError::Resolve`], [`ConnectionError::Connect`],
    /// [`ConnectionError::ServerName`], [`ConnectionError::Tls`].
    pub async fn connect(&self, url: &Url) -> Result<Connection, ConnectionError> {
        let origin = Origin::of(url)?;
        let host = url.host().ok_or(ConnectionError::NoHost)?;
        let tcp = tcp_connect(&host, origin.port).await?;
        let stream = if origin.https {
            let name = match &self.server_name {
                Some(name) => name.clone(),
                None => tls_name(&host)?,
            };
            let tls = self.tls.connect(name, tcp).await.map_err(ConnectionError::Tls)?;
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        let (sender, driver) = self
            .http1
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectionError::Http)?;
        Ok(Connection {
            origin,
            sender,
            driver: Some(driver),
            failure: None,
        })
    }
}

/// Resolves `host` and connects to its addresses in order; the last error wins.
async fn tcp_connect(host: &Host<&str>, port: u16) -> Result<TcpStream, ConnectionError> {
    let addresses: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Ipv6(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Domain(name) => tokio::net::lookup_host((*name, port))
            .await
            .map_err(|source| ConnectionError::Resolve {
                host: (*name).to_owned(),
                source,
            })?
            .collect(),
    };
    let mut error = ConnectionError::Resolve {
        host: host.to_string(),
        source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
    };
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(tcp) => {
                // Requests are one small write; do not hold them back for Nagle.
                tcp.set_nodelay(true)
                    .map_err(|source| ConnectionError::Connect { address, source })?;
                return Ok(tcp);
            }
            Err(source) => error = ConnectionError::Connect { address, source },
        }
    }
    Err(error)
}

/// The name the server certificate is verified against, and SNI (none for an IP address).
fn tls_name(host: &Host<&str>) -> Result<ServerName<'static>, ConnectionError> {
    match host {
        Host::Ipv4(ip) => Ok(ServerName::from(std::net::IpAddr::from(*ip))),
        Host::Ipv6(ip) => Ok(ServerName::from(std::net::IpAddr::from(*ip))),
        Host::Domain(name) => {
            ServerName::try_from((*name).to_owned()).map_err(|_| ConnectionError::ServerName((*name).to_owned()))
        }
    }
}

/// Scheme, host and port: requests to the same origin may share a connection.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Result<Origin, ConnectionError> {
        Ok(Origin {
            https: url.scheme() == "https",
            host: url.host_str().ok_or(ConnectionError::NoHost)?.to_owned(),
            port: url.port_or_known_default().ok_or(ConnectionError::NoHost)?,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        (url.scheme() == "https") == self.https
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }
}

/// hyper's state machine for one connection: reads, writes, keep-alive.
type Driver = http1::Connection<TokioIo<Stream>, Empty<Bytes>>;

/// An open HTTP/1.1 connection. Its I/O only progresses inside [`Connection::send`] and
/// [`Connection::next_chunk`]; between scrapes it sits idle, and a close by the server is
/// noticed at the next `send`.
pub struct Connection {
    origin: Origin,
    sender: http1::SendRequest<Empty<Bytes>>,
    /// `None` once the connection ended (closed by either side or failed).
    driver: Option<Driver>,
    /// Why the driver failed: the real cause behind the generic error a body then gets.
    failure: Option<hyper::Error>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("origin", &self.origin)
            .field("open", &self.driver.is_some())
            .finish()
    }
}

impl Connection {
    /// Whether `url` has this connection's scheme, host and port.
    pub fn serves(&self, url: &Url) -> bool {
        self.origin.matches(url)
    }

    /// Sends `request` (origin-form URI, `Host` set) and waits for the response head.
    ///
    /// Errors: the connection was closed (also when the server closed it while idle),
    /// reset, or answered with something that is not HTTP/1.x.
    pub async fn send(&mut self, request: Request<Empty<Bytes>>) -> Result<Response<Incoming>, ConnectionError> {
        let sender = &mut self.sender;
        let sent = drive(&mut self.driver, &mut self.failure, async move {
            sender.ready().await?;
            sender.send_request(request).await
        })
        .await;
        sent.map_err(|error| self.error(error))
    }

    /// The next piece of `body` (a response received on this connection), `None` at its end;
    /// trailers are skipped. Pieces are at most [`READ_BUFFER_BYTES`] long.
    ///
    /// Errors: the connection failed or closed before the body was complete.
    pub async fn next_chunk(&mut self, body: &mut Incoming) -> Result<Option<Bytes>, ConnectionError> {
        loop {
            match drive(&mut self.driver, &mut self.failure, body.frame()).await {
                None => return Ok(None),
                Some(Err(error)) => return Err(self.error(error)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Prefers the cause the driver saw over the generic error handed to the request or body.
    fn error(&mut self, error: hyper::Error) -> ConnectionError {
        let error = self.failure.take().unwrap_or(error);
        if error.is_parse() {
            ConnectionError::Malformed(error)
        } else {
            ConnectionError::Http(error)
        }
    }
}

/// Runs `work` (a request or body read on this connection) while polling the connection's
/// driver in the same task, driver first so that a close seen while idle fails `work` at once.
async fn drive<W: Future>(driver: &mut Option<Driver>, failure: &mut Option<hyper::Error>, work: W) -> W::Output {
    let mut work = pin!(work);
    poll_fn(|cx| {
        if let Some(io) = driver.as_mut()
            && let Poll::Ready(ended) = Pin::new(io).poll(cx)
        {
            *failure = ended.err();
            // Dropping the driver fails whatever still waits on it, so `work` ends below.
            *driver = None;
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// A plain or TLS TCP stream.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
