//! TLS and auth against a real rustls server on 127.0.0.1, with certificates made by rcgen.
//!
//! client (build_client) ──TLS──► test server (tokio-rustls, optional client-cert check)
//!                                  └─ answers `client_cert=<bool> auth=<Authorization header>`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::config::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};
use crate::test_support::{Ca, Leaf};

/// Bound on every network wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A one-shot-per-connection HTTPS server; returns its port.
async fn serve(leaf: &Leaf, client_ca: Option<&Ca>) -> u16 {
    let config = leaf.server_config(client_ca, &[]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&request).to_string();
                let response = if request.starts_with("GET /redirect") {
                    "HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n".to_owned()
                } else {
                    let auth = request
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("authorization: ")
                                .or_else(|| l.strip_prefix("Authorization: "))
                        })
                        .unwrap_or("-");
                    let body = format!("client_cert={client_cert} auth={auth}");
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn http_config(tls: TlsConfig) -> HttpClientConfig {
    HttpClientConfig {
        tls_config: tls,
        ..HttpClientConfig::default()
    }
}

/// GETs `url` with `cfg`; returns (status, body) or the full error chain.
async fn get(cfg: &HttpClientConfig, url: &str) -> Result<(u16, String), String> {
    let client = build_client(cfg).map_err(|e| e.to_string())?;
    let req = Auth::from_config(cfg)
        .apply(client.get(url).timeout(WAIT))
        .map_err(|e| e.to_string())?;
    let resp = req.send().await.map_err(|e| error_chain(&e))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.map_err(|e| error_chain(&e))?))
}

#[tokio::test]
async fn verifies_with_ca_file_and_rejects_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("trawl test ca");
    let other = Ca::new("other ca");
    let port = serve(&ca.leaf(&["localhost", "127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{port}/metrics");

    let ca_file = write(dir.path(), "ca.pem", &ca.issuer.pem());
    let ok = get(
        &http_config(TlsConfig {
            ca_file: Some(ca_file),
            ..TlsConfig::default()
        }),
        &url,
    )
    .await;
    assert_eq!(ok, Ok((200, "client_cert=false auth=-".to_owned())));

    let other_file = write(dir.path(), "other.pem", &other.issuer.pem());
    let err = get(
        &http_config(TlsConfig {
            ca_file: Some(other_file),
            ..TlsConfig::default()
        }),
        &url,
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("invalid peer certificate") && err.contains("UnknownIssuer"),
        "{err}"
    );

    // Without ca_file the system roots are used, which do not know the test CA.
    let err = get(&http_config(TlsConfig::default()), &url).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn server_name_overrides_the_verified_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("trawl test ca");
    let port = serve(&ca.leaf(&["scrape.example"]), None).await;
    let url = format!("https://127.0.0.1:{port}/");
    let ca_file = write(dir.path(), "ca.pem", &ca.issuer.pem());

    let plain = TlsConfig {
        ca_file: Some(ca_file.clone()),
        ..TlsConfig::default()
    };
    let err = get(&http_config(plain.clone()), &url).await.unwrap_err();
    assert!(err.contains("certificate not valid for name \"127.0.0.1\""), "{err}");

    let named = TlsConfig {
        server_name: Some("scrape.example".into()),
        ..plain.clone()
    };
    assert_eq!(get(&http_config(named), &url).await.map(|r| r.0), Ok(200));

    let wrong = TlsConfig {
        server_name: Some("other.example".into()),
        ..plain
    };
    assert!(
        get(&http_config(wrong), &url)
            .await
            .unwrap_err()
            .contains("not valid for name")
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_unknown_certificates() {
    let ca = Ca::new("unknown ca");
    let port = serve(&ca.leaf(&["whatever.example"]), None).await;
    let cfg = http_config(TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    });
    assert_eq!(
        get(&cfg, &format!("https://127.0.0.1:{port}/")).await.map(|r| r.0),
        Ok(200)
    );
}

#[tokio::test]
async fn client_certificate_is_sent_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("trawl test ca");
    let port = serve(&ca.leaf(&["127.0.0.1"]), Some(&ca)).await;
    let url = format!("https://127.0.0.1:{port}/");
    let ca_file = write(dir.path(), "ca.pem", &ca.issuer.pem());
    let client = ca.leaf(&["agent"]);
    let cert_file = write(dir.path(), "client.pem", &client.cert_pem);
    let key_file = write(dir.path(), "client.key", &client.key_pem);

    let without = TlsConfig {
        ca_file: Some(ca_file.clone()),
        ..TlsConfig::default()
    };
    assert!(
        get(&http_config(without.clone()), &url).await.is_err(),
        "the server requires a client certificate"
    );

    let with = TlsConfig {
        cert_file: Some(cert_file),
        key_file: Some(key_file),
        ..without
    };
    assert_eq!(
        get(&http_config(with), &url).await,
        Ok((200, "client_cert=true auth=-".to_owned()))
    );
}

#[tokio::test]
async fn credentials_file_is_reread_on_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("trawl test ca");
    let port = serve(&ca.leaf(&["127.0.0.1"]), None).await;
    let url = format!("https://127.0.0.1:{port}/");
    let token = write(dir.path(), "token", "first-token\n");
    let cfg = HttpClientConfig {
        authorization: Some(Authorization {
            r#type: "Bearer".into(),
            credentials: None,
            credentials_file: Some(token.clone()),
        }),
        ..http_config(TlsConfig {
            insecure_skip_verify: true,
            ..TlsConfig::default()
        })
    };
    assert_eq!(
        get(&cfg, &url).await.unwrap().1,
        "client_cert=false auth=Bearer first-token"
    );
    std::fs::write(&token, "  rotated-token \n").unwrap();
    assert_eq!(
        get(&cfg, &url).await.unwrap().1,
        "client_cert=false auth=Bearer rotated-token"
    );
    std::fs::remove_file(&token).unwrap();
    let err = get(&cfg, &url).await.unwrap_err();
    assert!(err.contains("read secret file") && err.contains("token"), "{err}");
}

#[tokio::test]
async fn basic_auth_and_redirect_policy() {
    let ca = Ca::new("trawl test ca");
    let port = serve(&ca.leaf(&["127.0.0.1"]), None).await;
    let tls = TlsConfig {
        insecure_skip_verify: true,
        ..TlsConfig::default()
    };
    let cfg = HttpClientConfig {
        basic_auth: Some(BasicAuth {
            username: "user".into(),
            password: Some("pass".into()),
            password_file: None,
        }),
        ..http_config(tls.clone())
    };
    // base64("user:pass") = dXNlcjpwYXNz
    assert_eq!(
        get(&cfg, &format!("https://127.0.0.1:{port}/")).await.unwrap().1,
        "client_cert=false auth=Basic dXNlcjpwYXNz"
    );

    let redirect = format!("https://127.0.0.1:{port}/redirect");
    assert_eq!(get(&http_config(tls.clone()), &redirect).await.unwrap().0, 200);
    let no_follow = HttpClientConfig {
        follow_redirects: false,
        ..http_config(tls)
    };
    assert_eq!(get(&no_follow, &redirect).await.unwrap().0, 302);
}

#[test]
fn bad_tls_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = tls_config(&TlsConfig {
        ca_file: Some(missing),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, HttpClientError::ReadFile { what: "ca_file", .. }),
        "{err:?}"
    );

    let empty = write(dir.path(), "empty.pem", "not a certificate\n");
    let err = tls_config(&TlsConfig {
        ca_file: Some(empty.clone()),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, HttpClientError::NoCaCertificate(_)), "{err:?}");

    let err = tls_config(&TlsConfig {
        server_name: Some("not a name!".into()),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, HttpClientError::InvalidServerName(_)), "{err:?}");

    let leaf = Ca::new("ca").leaf(&["x"]);
    let cert = write(dir.path(), "c.pem", &leaf.cert_pem);
    let err = tls_config(&TlsConfig {
        cert_file: Some(cert.clone()),
        key_file: Some(empty.clone()),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, HttpClientError::ReadFile { what: "key_file", .. }),
        "{err:?}"
    );
    let err = tls_config(&TlsConfig {
        cert_file: Some(empty),
        key_file: Some(cert),
        ..TlsConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, HttpClientError::NoClientCertificate(_)), "{err:?}");
}

#[test]
fn tls_config_offers_h2_and_http1() {
    let config = tls_config(&TlsConfig::default()).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn auth_from_config_and_secrets_stay_hidden() {
    let cfg = HttpClientConfig {
        authorization: Some(Authorization {
            r#type: "Bearer".into(),
            credentials: Some("s3cret".into()),
            credentials_file: None,
        }),
        ..HttpClientConfig::default()
    };
    let auth = Auth::from_config(&cfg);
    assert_eq!(
        auth,
        Auth::Header {
            scheme: "Bearer".into(),
            credentials: Secret::Inline("s3cret".into())
        }
    );
    assert!(!format!("{auth:?}").contains("s3cret"));
    assert_eq!(Auth::from_config(&HttpClientConfig::default()), Auth::None);

    let bad = Auth::Header {
        scheme: "Bearer".into(),
        credentials: Secret::Inline("a\nb".into()),
    };
    let client = build_client(&HttpClientConfig::default()).unwrap();
    assert!(matches!(
        bad.apply(client.get("http://127.0.0.1/")),
        Err(HttpClientError::InvalidCredentials)
    ));
    // No credentials configured: no header, as Prometheus.
    let none = Auth::Header {
        scheme: "Bearer".into(),
        credentials: Secret::None,
    };
    let req = none.apply(client.get("http://127.0.0.1/")).unwrap().build().unwrap();
    assert!(req.headers().get("authorization").is_none());
}

#[test]
fn auth_header_values() {
    let basic = |password: Secret| Auth::Basic {
        username: "user".into(),
        password,
    };
    let value = basic(Secret::Inline("pass".into())).header().unwrap().unwrap();
    // base64("user:pass"); sensitive values are hidden from debug output.
    assert_eq!(value, "Basic dXNlcjpwYXNz");
    assert!(value.is_sensitive());
    // No password sends "user:", as Go's `SetBasicAuth`.
    assert_eq!(basic(Secret::None).header().unwrap().unwrap(), "Basic dXNlcjo=");
    let bearer = Auth::Header {
        scheme: "Bearer".into(),
        credentials: Secret::Inline("t0ken".into()),
    };
    assert_eq!(bearer.header().unwrap().unwrap(), "Bearer t0ken");
    assert_eq!(Auth::None.header().unwrap(), None);
}
