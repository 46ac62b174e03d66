//! HTTP client settings from an [`HttpClientConfig`], as prometheus/common
//! `config.NewClientFromConfig`: rustls with the ring provider (never aws-lc), system roots or
//! `ca_file`, client certificates, `server_name`, `insecure_skip_verify`, redirects; and
//! per-request auth ([`Auth`]) whose secret files are re-read on every request. Remote write
//! uses the reqwest client of [`build_client`]; scrapes use [`tls_config`] and [`Auth`] with
//! their own HTTP/1.1 connections (`crate::scrape::scraper`).
//!
//! - [`tls`]: the `rustls::ClientConfig` and the two custom certificate verifiers.
//! - [`auth`]: basic auth and `Authorization` headers.

mod auth;
mod tls;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use auth::{Auth, Secret};
pub use tls::{server_name, tls_config};

use crate::config::HttpClientConfig;

/// Redirects followed when `follow_redirects` is true (Go's `http.Client` default); the next
/// one fails the request.
pub const MAX_REDIRECTS: usize = 10;

/// Why a client could not be built or a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// A file named in the config (CA, client certificate or key) could not be read.
    #[error("read {what} {path}: {source}")]
    ReadFile {
        /// Which file: `ca_file`, `cert_file` or `key_file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O or PEM error.
        source: std::io::Error,
    },
    /// `ca_file` holds no PEM certificate.
    #[error("unable to use specified CA cert {0}: no certificate found")]
    NoCaCertificate(PathBuf),
    /// `cert_file` holds no PEM certificate.
    #[error("client certificate file {0} holds no certificate")]
    NoClientCertificate(PathBuf),
    /// `server_name` is not a valid DNS name or IP address.
    #[error("invalid tls_config.server_name {0:?}")]
    InvalidServerName(String),
    /// rustls refused the TLS settings (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The CA certificates could not be turned into a verifier.
    #[error("TLS verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// `password_file` or `credentials_file` could not be read at request time.
    #[error("read secret file {path}: {source}")]
    ReadSecret {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The credentials cannot be sent in an HTTP header (e.g. they contain a line break).
    #[error("credentials are not a valid HTTP header value")]
    InvalidCredentials,
    /// reqwest refused to build the client.
    #[error("build HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Builds a client for `cfg`: TLS as [`tls_config`], redirects per `follow_redirects`, no
/// proxy from the environment (Prometheus 2.42 ignores `HTTP_PROXY`). Timeouts are per request:
/// remote write sets `remote_timeout` with `RequestBuilder::timeout`.
///
/// Errors: unreadable or invalid `ca_file`, `cert_file`, `key_file`, or `server_name`.
pub fn build_client(cfg: &HttpClientConfig) -> Result<reqwest::Client, HttpClientError> {
    client_builder(cfg)?.build().map_err(HttpClientError::Build)
}

/// The builder [`build_client`] finishes, for callers that add settings of their own (remote
/// write pins each collector's address with `ClientBuilder::resolve`).
///
/// Errors: as [`build_client`], except reqwest's own build error.
pub fn client_builder(cfg: &HttpClientConfig) -> Result<reqwest::ClientBuilder, HttpClientError> {
    let tls = tls_config(&cfg.tls_config)?;
    let redirects = if cfg.follow_redirects {
        reqwest::redirect::Policy::limited(MAX_REDIRECTS)
    } else {
        reqwest::redirect::Policy::none()
    };
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(redirects)
        .no_proxy()
        .user_agent(concat!("trawl-agent/", env!("CARGO_PKG_VERSION"))))
}

pub use trawl_process::error_chain;
