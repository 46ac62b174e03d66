//! Loopback peers for unit tests: a scripted remote-write receiver that records what it decodes,
//! a scrape target whose body, content type and status the test changes as it goes, a raw
//! HTTP/1.1 server scripted byte by byte ([`RawServer`], plain or TLS), and a test CA ([`Ca`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use trawl_model::remote::{WriteRequest, decode_write_request};

/// Upper bound of any single wait in tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// One scripted answer; requests beyond the script get 200.
#[derive(Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(&'static str, &'static str)>,
    /// Response body.
    pub body: &'static str,
}

/// A reply with `status`, no headers and no body.
pub fn reply(status: u16) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: "",
    }
}

/// A request as received.
pub struct Recorded {
    /// Request headers.
    pub headers: HeaderMap,
    /// The raw (snappy) body.
    pub body: Bytes,
    /// The decoded body.
    pub request: WriteRequest,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

/// What the receiver has left to answer and what it got.
#[derive(Default)]
pub struct ReceiverState {
    /// Replies still to give, in order.
    pub script: VecDeque<Reply>,
    /// Every request, in arrival order.
    pub requests: Vec<Recorded>,
}

/// A remote-write receiver on 127.0.0.1 that decodes every request with prost, answers from a
/// script, and records what it got.
#[derive(Clone)]
pub struct Receiver {
    /// Its write URL.
    pub url: url::Url,
    /// Script and records.
    pub state: Arc<Mutex<ReceiverState>>,
    /// When set, each request waits for one permit before it is answered.
    pub gate: Option<Arc<Semaphore>>,
}

impl Receiver {
    /// Starts answering from `script` (then 200).
    pub async fn start(script: Vec<Reply>) -> Receiver {
        Self::start_with_gate(script, None).await
    }

    /// As [`Receiver::start`]; each request first waits for a permit of `gate`.
    pub async fn start_with_gate(script: Vec<Reply>, gate: Option<Arc<Semaphore>>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve(listener, script, gate)
    }

    /// Serves on an already bound `listener` (e.g. an address a sender already retries).
    pub fn serve(listener: tokio::net::TcpListener, script: Vec<Reply>, gate: Option<Arc<Semaphore>>) -> Receiver {
        let addr: SocketAddr = listener.local_addr().unwrap();
        let receiver = Receiver {
            url: format!("http://{addr}/api/v1/write").parse().unwrap(),
            state: Arc::new(Mutex::new(ReceiverState {
                script: script.into(),
                requests: Vec::new(),
            })),
            gate,
        };
        let app = axum::Router::new()
            .route("/api/v1/write", axum::routing::post(handle))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    /// Requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<WriteRequest> {
        let state = self.state.lock().unwrap();
        state
            .requests
            .iter()
            .filter(|r| r.status / 100 == 2)
            .map(|r| r.request.clone())
            .collect()
    }

    /// Requests received, whatever the answer.
    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// Samples in requests answered 2xx.
    pub fn accepted_samples(&self) -> usize {
        self.accepted()
            .iter()
            .map(|r| r.timeseries.iter().map(|t| t.samples.len()).sum::<usize>())
            .sum()
    }

    /// Waits up to [`WAIT`] for `n` accepted samples.
    pub async fn wait_for_samples(&self, n: usize) {
        until(
            || self.accepted_samples() >= n,
            || format!("only {} of {n} samples arrived", self.accepted_samples()),
        )
        .await;
    }

    /// Waits up to [`WAIT`] for `n` requests.
    pub async fn wait_for_attempts(&self, n: usize) {
        until(
            || self.attempts() >= n,
            || format!("only {} of {n} requests arrived", self.attempts()),
        )
        .await;
    }

    /// Every accepted sample as (series labels as text, timestamp ms, value).
    pub fn samples(&self) -> Vec<(String, i64, f64)> {
        let mut out = Vec::new();
        for request in self.accepted() {
            for ts in &request.timeseries {
                let labels: Vec<String> = ts.labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
                let labels = format!("{{{}}}", labels.join(", "));
                out.extend(ts.samples.iter().map(|s| (labels.clone(), s.timestamp, s.value)));
            }
        }
        out
    }

    /// Waits up to [`WAIT`] until `check` holds for the samples accepted so far.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[(String, i64, f64)]) -> bool) {
        until(
            || check(&self.samples()),
            || format!("timed out waiting for {what}; received: {:#?}", self.samples()),
        )
        .await;
    }
}

/// Polls `done` every 5 ms; fails with `failure()` once [`WAIT`] has passed.
async fn until(done: impl Fn() -> bool, failure: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{}", failure());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn handle(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(gate) = &receiver.gate {
        gate.acquire().await.unwrap().forget();
    }
    let request = decode_write_request(&body).expect("sender must send a valid snappy WriteRequest");
    let mut state = receiver.state.lock().unwrap();
    let reply = state.script.pop_front().unwrap_or_else(|| reply(200));
    state.requests.push(Recorded {
        headers,
        body,
        request,
        status: reply.status,
        at: Instant::now(),
    });
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// What a [`TargetServer`] answers.
#[derive(Debug, Clone)]
pub struct Exposition {
    /// HTTP status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Encoding`, if any.
    pub content_encoding: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Exposition {
    /// A 200 text-format answer.
    pub fn text(body: &str) -> Self {
        Exposition {
            status: StatusCode::OK,
            content_type: "text/plain; version=0.0.4",
            content_encoding: None,
            body: body.as_bytes().to_vec(),
        }
    }
}

/// A scrape target on 127.0.0.1 serving `/metrics`.
#[derive(Clone)]
pub struct TargetServer {
    /// What the next scrapes get.
    pub exposition: Arc<Mutex<Exposition>>,
    /// Headers of the last scrape request.
    pub last_headers: Arc<Mutex<HeaderMap>>,
}

impl TargetServer {
    /// Starts serving `exposition`; returns the server and its `host:port`.
    pub async fn start(exposition: Exposition) -> (TargetServer, String) {
        let server = TargetServer {
            exposition: Arc::new(Mutex::new(exposition)),
            last_headers: Arc::default(),
        };
        let app = Router::new().route("/metrics", get(expose)).with_state(server.clone());
        let url = serve(app).await;
        (
            server,
            format!("{}:{}", url.host_str().expect("host"), url.port().expect("port")),
        )
    }

    /// Changes what the next scrapes get.
    pub fn set(&self, exposition: Exposition) {
        *self.exposition.lock().expect("lock") = exposition;
    }
}

async fn expose(State(s): State<TargetServer>, headers: HeaderMap) -> impl IntoResponse {
    *s.last_headers.lock().expect("lock") = headers;
    let e = s.exposition.lock().expect("lock").clone();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, e.content_type.parse().expect("header"));
    if let Some(enc) = e.content_encoding {
        headers.insert(header::CONTENT_ENCODING, enc.parse().expect("header"));
    }
    (e.status, headers, e.body)
}

async fn serve(app: Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    url::Url::parse(&format!("http://{address}/")).expect("url")
}

/// A test certificate authority made with rcgen.
pub struct Ca {
    /// The CA certificate and key.
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A leaf certificate and its key, in DER and PEM.
pub struct Leaf {
    /// Certificate, DER.
    pub cert: CertificateDer<'static>,
    /// PKCS#8 key, DER.
    pub key: Vec<u8>,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Key, PEM.
    pub key_pem: String,
}

impl Leaf {
    /// A rustls server config presenting this certificate; requires a client certificate
    /// signed by `client_ca` when given; offers `alpn` (none when empty).
    pub fn server_config(&self, client_ca: Option<&Ca>, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.issuer.der().clone()).unwrap();
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let mut config = builder.with_single_cert(vec![self.cert.clone()], key).unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

/// What a [`RawServer`] does with one request.
#[derive(Clone)]
pub enum Answer {
    /// Writes the bytes and waits for the next request on the same connection.
    Keep(Vec<u8>),
    /// Writes the bytes, then closes the connection.
    Close(Vec<u8>),
    /// Closes the connection without answering.
    HangUp,
    /// Writes the bytes one at a time, `delay` apart, then closes (a slow loris).
    Trickle(Vec<u8>, Duration),
    /// Writes `head`, then `chunk` again and again until the client goes away.
    Endless {
        /// Status line, headers and the blank line.
        head: Vec<u8>,
        /// Repeated body bytes.
        chunk: Vec<u8>,
    },
}

/// A 200 text-format response with `Content-Length`.
pub fn http_ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request a [`RawServer`] received.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Which accepted connection it came on, from 0.
    pub connection: usize,
    /// Its position on that connection, from 0.
    pub index: usize,
    /// Request line and headers, as text.
    pub head: String,
}

/// A TLS connection's view of the handshake.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// SNI sent by the client.
    pub server_name: Option<String>,
    /// ALPN protocol agreed.
    pub alpn: Option<Vec<u8>>,
}

type Respond = dyn Fn(&RawRequest) -> Answer + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 that answers each request head with the bytes a test
/// scripts, counting connections; with a TLS acceptor it speaks HTTPS.
#[derive(Clone)]
pub struct RawServer {
    /// `127.0.0.1:port`.
    pub address: String,
    accepts: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
}

impl RawServer {
    /// Starts a plain server answering with `respond`.
    pub async fn start(respond: impl Fn(&RawRequest) -> Answer + Send + Sync + 'static) -> RawServer {
        Self::start_with(None, Arc::new(respond)).await
    }

    /// Starts an HTTPS server with `config`.
    pub async fn start_tls(
        config: rustls::ServerConfig,
        respond: impl Fn(&RawRequest) -> Answer + Send + Sync + 'static,
    ) -> RawServer {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::start_with(Some(acceptor), Arc::new(respond)).await
    }

    async fn start_with(acceptor: Option<tokio_rustls::TlsAcceptor>, respond: Arc<Respond>) -> RawServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = RawServer {
            address: listener.local_addr().unwrap().to_string(),
            accepts: Arc::default(),
            requests: Arc::default(),
            handshakes: Arc::default(),
        };
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let connection = state.accepts.fetch_add(1, Ordering::SeqCst);
                let (state, respond, acceptor) = (state.clone(), respond.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => state.serve(connection, tcp, &*respond).await,
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return;
                            };
                            let session = tls.get_ref().1;
                            state.handshakes.lock().unwrap().push(Handshake {
                                server_name: session.server_name().map(str::to_owned),
                                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                            });
                            state.serve(connection, tls, &*respond).await;
                        }
                    }
                });
            }
        });
        server
    }

    async fn serve(&self, connection: usize, mut io: impl AsyncRead + AsyncWrite + Unpin, respond: &Respond) {
        let mut buffered = Vec::new();
        for index in 0.. {
            let head = loop {
                if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = buffered.drain(..end + 4).collect();
                    break String::from_utf8_lossy(&head).into_owned();
                }
                let mut buf = [0u8; 4096];
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffered.extend_from_slice(&buf[..n]),
                }
            };
            let request = RawRequest {
                connection,
                index,
                head,
            };
            self.requests.lock().unwrap().push(request.clone());
            let written = match respond(&request) {
                Answer::Keep(bytes) => io.write_all(&bytes).await,
                Answer::Close(bytes) => {
                    let _ = io.write_all(&bytes).await;
                    let _ = io.shutdown().await;
                    return;
                }
                Answer::HangUp => return,
                Answer::Trickle(bytes, delay) => {
                    for byte in bytes {
                        if io.write_all(&[byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(delay).await;
                    }
                    return;
                }
                Answer::Endless { head, chunk } => {
                    let _ = io.write_all(&head).await;
                    while io.write_all(&chunk).await.is_ok() {}
                    return;
                }
            };
            if written.is_err() {
                return;
            }
        }
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// Requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }
}
