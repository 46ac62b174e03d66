//! The rustls client configuration for a `tls_config`, as prometheus/common `NewTLSConfig`:
//! - trust: the system roots (rustls-native-certs, loaded once), or only the certificates of
//!   `ca_file` when it is set (Prometheus replaces the system pool too);
//! - `cert_file` + `key_file`: the client certificate chain and key;
//! - `server_name`: the name the server certificate is verified against instead of the URL's
//!   host. Scrapes also send it as SNI, as Go's `tls.Config.ServerName`; reqwest (remote write)
//!   gives no hook to change SNI, so there SNI stays the URL's host (none for an IP);
//! - `insecure_skip_verify`: any certificate is accepted; handshake signatures are still checked.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tracing::warn;

use super::HttpClientError;
use crate::config::TlsConfig;

/// ALPN offers: HTTP/2 when the server supports it, else HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system trust store, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                warn!(message = "Error loading system CA certificates.", %error);
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            if ignored > 0 || added == 0 {
                warn!(message = "Some system CA certificates are unusable.", added, ignored);
            }
            Arc::new(roots)
        })
        .clone()
}

fn read_pem_err(what: &'static str, path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> HttpClientError {
    let path = path.to_owned();
    move |e| HttpClientError::ReadFile {
        what,
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The trust anchors: `ca_file`'s certificates, or the system roots.
fn roots(cfg: &TlsConfig) -> Result<Arc<RootCertStore>, HttpClientError> {
    let Some(ca_file) = &cfg.ca_file else {
        return Ok(system_roots());
    };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(read_pem_err("ca_file", ca_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_pem_err("ca_file", ca_file))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(HttpClientError::NoCaCertificate(ca_file.clone()));
    }
    Ok(Arc::new(roots))
}

/// `server_name` as rustls takes it; `None` when not configured.
///
/// Errors: [`HttpClientError::InvalidServerName`] when it is not a DNS name or IP address.
pub fn server_name(cfg: &TlsConfig) -> Result<Option<ServerName<'static>>, HttpClientError> {
    cfg.server_name
        .as_ref()
        .map(|name| ServerName::try_from(name.clone()).map_err(|_| HttpClientError::InvalidServerName(name.clone())))
        .transpose()
}

/// Builds the rustls client configuration for `cfg`, with the ring provider and ALPN h2 +
/// http/1.1, ready for `reqwest::ClientBuilder::tls_backend_preconfigured` (the scraper narrows
/// ALPN to http/1.1).
///
/// Errors: unreadable or empty `ca_file`, unreadable `cert_file`/`key_file`, a key that does not
/// fit the certificate, or an invalid `server_name`.
pub fn tls_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, HttpClientError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if cfg.insecure_skip_verify {
        Arc::new(AcceptAnyCertificate {
            provider: provider.clone(),
        })
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots(cfg)?, provider.clone()).build()?;
        match server_name(cfg)? {
            Some(name) => Arc::new(VerifyAsServerName { inner: webpki, name }),
            None => webpki,
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .map_err(read_pem_err("cert_file", cert_file))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(read_pem_err("cert_file", cert_file))?;
            if chain.is_empty() {
                return Err(HttpClientError::NoClientCertificate(cert_file.clone()));
            }
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(read_pem_err("key_file", key_file))?;
            builder.with_client_auth_cert(chain, key)?
        }
        // The config refuses one without the other.
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Verifies the server certificate against the configured `server_name` instead of the URL's
/// host; everything else is WebPKI's.
#[derive(Debug)]
struct VerifyAsServerName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAsServerName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _url_host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: trusts any certificate, but still checks that the server holds the
/// key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
