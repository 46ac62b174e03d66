//! The Kubernetes API client of one discoverer, from its config, as Prometheus
//! `discovery/kubernetes` `New`:
//!
//! - `api_server`: our HTTP client settings — TLS from [`tls_config`] (rustls + ring, `ca_file`,
//!   client certificates, `server_name` as SNI, `insecure_skip_verify`) and the `Authorization`
//!   header from [`Auth`], computed for every request so `bearer_token_file` /
//!   `credentials_file` / `password_file` are re-read and a rotated token is used at once.
//! - in-cluster (neither key): `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the
//!   service account's `ca.crt` and its `token` file, re-read per request the same way (kubelet
//!   rotates projected tokens); its `namespace` file gives `namespaces.own_namespace`.
//! - `kubeconfig_file`: kube's kubeconfig support (current context; certificates, tokens, exec).
//!
//! The first two use one hyper connection pool (HTTP/1.1; watches hold a connection each) under
//! a small [`tower_service::Service`] that sets the base URL, the auth header and the user agent.
//! `follow_redirects` has no effect: the API server does not redirect.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use hyper::{Request, Response, Uri};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::Body;

use crate::config::{Authorization, HttpClientConfig, KubernetesSdConfig, TlsConfig};
use crate::http_client::{Auth, HttpClientError, server_name, tls_config};

/// Where the service account's files are mounted in a pod.
pub(crate) const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Longest wait for a TCP (and TLS) connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for response headers; watch responses send theirs at once.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP keepalive, so a dead peer ends an idle watch connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

const AGENT: &str = concat!("trawl-agent/", env!("CARGO_PKG_VERSION"));

/// Why the client of a discoverer could not be built, or a request not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither `api_server` nor `kubeconfig_file`, and not inside a pod.
    #[error(
        "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (set api_server or kubeconfig_file to discover from outside the cluster)"
    )]
    NotInCluster,
    /// The in-cluster host and port do not form a URL.
    #[error("invalid in-cluster API server address {0:?}")]
    InClusterAddress(String),
    /// The service account's namespace file, needed for `own_namespace`, cannot be read.
    #[error("could not determine the pod's namespace from {path}: {source}")]
    Namespace {
        /// The namespace file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The service account's namespace file is empty.
    #[error("could not read own namespace name ({0} is empty)")]
    EmptyNamespace(PathBuf),
    /// TLS settings or credentials could not be used.
    #[error(transparent)]
    Http(#[from] HttpClientError),
    /// The kubeconfig file cannot be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// kube's error.
        source: kube::config::KubeconfigError,
    },
    /// kube refused the kubeconfig's settings.
    #[error("kubeconfig {path}: {source}")]
    KubeconfigClient {
        /// The kubeconfig file.
        path: PathBuf,
        /// kube's error.
        source: Box<kube::Error>,
    },
    /// The request URL could not be joined onto the API server URL.
    #[error("invalid request URL {0}")]
    RequestUrl(String),
    /// The API server did not answer in time.
    #[error("no response from the API server within {0:?}")]
    Timeout(Duration),
}

/// A client and what it found out about its environment.
#[derive(Clone)]
pub(crate) struct ApiClient {
    /// The kube client.
    pub client: kube::Client,
    /// The namespace of the agent's pod, when `own_namespace` asked for it.
    pub own_namespace: Option<String>,
    /// The API server, for logs.
    pub server: String,
}

/// The in-cluster API server and service account files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InCluster {
    /// `https://host:port`.
    pub url: url::Url,
    /// The service account directory (`ca.crt`, `token`, `namespace`).
    pub dir: PathBuf,
}

impl InCluster {
    /// From `KUBERNETES_SERVICE_HOST`/`_PORT` as `env` gives them, with files under `dir`.
    ///
    /// Errors: [`ClientError::NotInCluster`] when either variable is unset or empty,
    /// [`ClientError::InClusterAddress`] when they do not form a URL.
    pub(crate) fn from_env(env: impl Fn(&str) -> Option<String>, dir: &Path) -> Result<Self, ClientError> {
        let var = |name| env(name).filter(|v| !v.is_empty());
        let (Some(host), Some(port)) = (var("KUBERNETES_SERVICE_HOST"), var("KUBERNETES_SERVICE_PORT")) else {
            return Err(ClientError::NotInCluster);
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let address = format!("https://{host}:{port}");
        let bad = || ClientError::InClusterAddress(address.clone());
        port.parse::<u16>().map_err(|_| bad())?;
        let url = url::Url::parse(&address).map_err(|_| bad())?;
        // A host with a path or query in it would not be the host.
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad());
        }
        Ok(InCluster {
            url,
            dir: dir.to_owned(),
        })
    }

    /// The HTTP client settings of the service account: its CA and its token file.
    pub(crate) fn http(&self) -> HttpClientConfig {
        HttpClientConfig {
            authorization: Some(Authorization {
                r#type: "Bearer".to_owned(),
                credentials: None,
                credentials_file: Some(self.dir.join("token")),
            }),
            tls_config: TlsConfig {
                ca_file: Some(self.dir.join("ca.crt")),
                ..TlsConfig::default()
            },
            ..HttpClientConfig::default()
        }
    }

    /// The pod's namespace, from the `namespace` file (trimmed).
    pub(crate) fn namespace(&self) -> Result<String, ClientError> {
        let path = self.dir.join("namespace");
        let text = std::fs::read_to_string(&path).map_err(|source| ClientError::Namespace {
            path: path.clone(),
            source,
        })?;
        let namespace = text.trim();
        if namespace.is_empty() {
            return Err(ClientError::EmptyNamespace(path));
        }
        Ok(namespace.to_owned())
    }
}

/// Builds the client for `cfg`: `api_server`, else `kubeconfig_file`, else in-cluster from the
/// process environment and [`SERVICE_ACCOUNT_DIR`]. Must run inside a tokio runtime.
///
/// Errors: see [`ClientError`]; none of them goes away without a change outside the agent,
/// but the caller retries anyway (a pod's files may appear late).
pub(crate) async fn connect(cfg: &KubernetesSdConfig) -> Result<ApiClient, ClientError> {
    if let Some(url) = &cfg.api_server {
        return Ok(ApiClient {
            client: from_http_config(url, &cfg.http)?,
            own_namespace: None,
            server: url.to_string(),
        });
    }
    if let Some(path) = &cfg.kubeconfig_file {
        return from_kubeconfig(path).await;
    }
    let in_cluster = InCluster::from_env(|name| std::env::var(name).ok(), Path::new(SERVICE_ACCOUNT_DIR))?;
    in_cluster_client(&in_cluster, cfg.namespaces.own_namespace)
}

/// The client of an in-cluster environment; reads the namespace when `own_namespace`.
pub(crate) fn in_cluster_client(in_cluster: &InCluster, own_namespace: bool) -> Result<ApiClient, ClientError> {
    let own_namespace = if own_namespace {
        Some(in_cluster.namespace()?)
    } else {
        None
    };
    Ok(ApiClient {
        client: from_http_config(&in_cluster.url, &in_cluster.http())?,
        own_namespace,
        server: in_cluster.url.to_string(),
    })
}

async fn from_kubeconfig(path: &Path) -> Result<ApiClient, ClientError> {
    let kubeconfig_err = |source| ClientError::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_err)?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| ClientError::KubeconfigClient {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(ApiClient {
        client,
        own_namespace: None,
        server,
    })
}

/// A kube client talking to `base` with `http`'s TLS and auth.
///
/// Errors: unreadable or invalid TLS files or `server_name`.
pub(crate) fn from_http_config(base: &url::Url, http: &HttpClientConfig) -> Result<kube::Client, ClientError> {
    let mut tls = tls_config(&http.tls_config)?;
    // hyper-rustls sets ALPN itself (HTTP/1.1 only here).
    tls.alpn_protocols.clear();
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_keepalive(Some(TCP_KEEPALIVE));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match server_name(&http.tls_config)? {
        // Send the configured name as SNI too, as Go's `tls.Config.ServerName`.
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let connector: HttpsConnector<HttpConnector> = builder.enable_http1().wrap_connector(connector);
    let service = ApiService {
        http: HyperClient::builder(TokioExecutor::new()).build(connector),
        base: Arc::from(base_prefix(base)),
        auth: Arc::new(Auth::from_config(http)),
    };
    Ok(kube::Client::new(service, "default"))
}

/// `scheme://host:port/path` of the API server without a trailing `/`, the prefix of every
/// request path (API servers behind a proxy may have a path).
fn base_prefix(url: &url::Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}{}", url.scheme(), url.path().trim_end_matches('/'))
}

/// The HTTP stack under kube's client: base URL, auth and user agent per request.
#[derive(Clone)]
struct ApiService {
    http: HyperClient<HttpsConnector<HttpConnector>, Body>,
    base: Arc<str>,
    auth: Arc<Auth>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ApiService {
    /// Points `req` at the API server and authenticates it, reading token files now.
    fn prepare(&self, mut req: Request<Body>) -> Result<Request<Body>, ClientError> {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let full = format!("{}{path}", self.base);
        *req.uri_mut() = full.parse::<Uri>().map_err(|_| ClientError::RequestUrl(full.clone()))?;
        if let Some(value) = self.auth.header()? {
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        req.headers_mut().insert(USER_AGENT, HeaderValue::from_static(AGENT));
        Ok(req)
    }
}

impl tower_service::Service<Request<Body>> for ApiService {
    type Response = Response<hyper::body::Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pool opens connections on demand.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let prepared = self.prepare(req);
        let http = self.http.clone();
        Box::pin(async move {
            let req = prepared?;
            match tokio::time::timeout(RESPONSE_TIMEOUT, http.request(req)).await {
                Ok(response) => Ok(response?),
                Err(_) => Err(ClientError::Timeout(RESPONSE_TIMEOUT).into()),
            }
        })
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
