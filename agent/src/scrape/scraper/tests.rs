//! The scraper against raw HTTP/1.1 servers scripted byte by byte (plain and TLS): connection
//! reuse and replacement, redirects, timeouts, limits, framing and broken peers.
//!
//! Scraper ──HTTP/1.1 (keep-alive)──► RawServer (counts connections, records request heads)

use std::time::{Duration, Instant};

use trawl_model::exposition::Format;

use super::*;
use crate::config::Config;
use crate::test_support::{Answer, Ca, Handshake, RawServer, WAIT, http_ok};

/// A scraper for a job with `extra` YAML keys (each line indented by four spaces).
fn scraper(extra: &str) -> Scraper {
    let yaml = format!("scrape_configs:\n  - job_name: test\n{extra}");
    let cfg = Config::from_yaml(&yaml, "test.yml").expect("valid config");
    Scraper::new(&cfg.scrape_configs[0]).expect("scraper")
}

/// Scrapes `url` with a generous timeout; returns the body as text.
async fn get(scraper: &mut Scraper, url: &str) -> Result<String, ScrapeError> {
    let (_, body) = scraper.scrape(&url.parse().unwrap(), WAIT).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The value of header `name` in a request head (names compared case-insensitively).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The request target of a request head (`/path?query`).
fn path(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

#[tokio::test]
async fn one_connection_carries_every_scrape_with_the_prometheus_headers() {
    let server = RawServer::start(|_| Answer::Keep(http_ok("a 1\n"))).await;
    let mut scraper = scraper("    basic_auth: {username: user, password: pass}\n");
    let url = format!("http://{}/metrics?module=x&b=%20", server.address);
    for _ in 0..5 {
        assert_eq!(get(&mut scraper, &url).await.unwrap(), "a 1\n");
    }
    assert_eq!(server.accepts(), 1);
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests.iter().all(|r| r.connection == 0));

    let head = &requests[4].head;
    assert!(head.starts_with("GET /metrics?module=x&b=%20 HTTP/1.1\r\n"), "{head}");
    assert_eq!(header(head, "host"), Some(server.address.as_str()));
    assert_eq!(header(head, "accept"), Some(ACCEPT_HEADER));
    assert_eq!(header(head, "accept-encoding"), Some("gzip"));
    assert_eq!(header(head, "user-agent"), Some(TRAWL_USER_AGENT));
    assert_eq!(header(head, "x-prometheus-scrape-timeout-seconds"), Some("10"));
    // base64("user:pass")
    assert_eq!(header(head, "authorization"), Some("Basic dXNlcjpwYXNz"));

    // A clone (another loop of the same pool) has its own connection.
    let mut other = scraper.clone();
    get(&mut other, &url).await.unwrap();
    get(&mut scraper, &url).await.unwrap();
    assert_eq!(server.accepts(), 2);

    let mut plain = self::scraper("    enable_compression: false\n");
    get(&mut plain, &url).await.unwrap();
    let head = server.requests().pop().unwrap().head;
    assert_eq!(header(&head, "accept-encoding"), Some("identity"));
    assert_eq!(header(&head, "authorization"), None);
}

#[tokio::test]
async fn a_connection_closed_by_the_server_is_replaced_without_a_failed_scrape() {
    // Each answer is followed by a close the client is not told about in advance.
    let server = RawServer::start(|_| Answer::Close(http_ok("a 1\n"))).await;
    let mut scraper = scraper("");
    let url = format!("http://{}/metrics", server.address);
    for _ in 0..3 {
        assert_eq!(get(&mut scraper, &url).await.unwrap(), "a 1\n");
    }
    assert_eq!(server.accepts(), 3);

    // The server drops a kept connection only when the next request arrives (an idle close
    // racing the request): the request is repeated once on a new connection.
    let server = RawServer::start(|r| match r.index {
        0 => Answer::Keep(http_ok("b 2\n")),
        _ => Answer::HangUp,
    })
    .await;
    let url = format!("http://{}/metrics", server.address);
    for _ in 0..3 {
        assert_eq!(get(&mut scraper, &url).await.unwrap(), "b 2\n");
    }
    assert_eq!(server.accepts(), 3);

    // A new connection that fails is not retried.
    let server = RawServer::start(|_| Answer::HangUp).await;
    let url = format!("http://{}/metrics", server.address);
    let error = get(&mut scraper, &url).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("Get \"{url}\": connection closed before message completed")
    );
    assert_eq!(server.accepts(), 1);
}

/// `/hop/N` redirects to `/hop/N-1` with each redirect status in turn; `/hop/0` answers.
async fn hops() -> RawServer {
    RawServer::start(|r| {
        let hop = path(&r.head)
            .strip_prefix("/hop/")
            .and_then(|n| n.parse::<usize>().ok());
        match hop {
            Some(n) if n > 0 => {
                let status = [301, 302, 303, 307, 308][n % 5];
                let next = n - 1;
                Answer::Keep(
                    format!("HTTP/1.1 {status} Moved\r\nLocation: /hop/{next}\r\nContent-Length: 5\r\n\r\nmoved")
                        .into_bytes(),
                )
            }
            _ => Answer::Keep(http_ok("a 1\n")),
        }
    })
    .await
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_connection_up_to_ten() {
    let server = hops().await;
    let mut scraper = scraper("");
    let base = format!("http://{}/hop", server.address);
    assert_eq!(get(&mut scraper, &format!("{base}/10")).await.unwrap(), "a 1\n");
    assert_eq!(server.requests().len(), 11);
    assert_eq!(
        server.accepts(),
        1,
        "redirect bodies are drained and the connection reused"
    );

    let error = get(&mut scraper, &format!("{base}/11")).await.unwrap_err();
    assert!(matches!(error, ScrapeError::TooManyRedirects { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("Get \"{base}/1\": stopped after 10 redirects")
    );

    let mut no_follow = self::scraper("    follow_redirects: false\n");
    let error = get(&mut no_follow, &format!("{base}/5")).await.unwrap_err();
    assert_eq!(error.to_string(), "server returned HTTP status 301 Moved Permanently");
}

#[tokio::test]
async fn a_redirect_to_another_host_gets_its_own_connection_and_no_credentials() {
    let other = RawServer::start(|_| Answer::Keep(http_ok("b 2\n"))).await;
    let port = other.address.rsplit_once(':').unwrap().1.to_owned();
    let target = RawServer::start(move |_| {
        Answer::Keep(
            format!("HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/metrics\r\nContent-Length: 0\r\n\r\n")
                .into_bytes(),
        )
    })
    .await;
    let mut scraper = scraper("    authorization: {credentials: secret}\n");
    let url = format!("http://{}/metrics", target.address);
    for _ in 0..2 {
        assert_eq!(get(&mut scraper, &url).await.unwrap(), "b 2\n");
    }
    assert_eq!(target.accepts(), 1, "the target's connection is kept");
    assert_eq!(
        other.accepts(),
        2,
        "the other origin's connection lives for one request"
    );
    assert_eq!(
        header(&target.requests()[1].head, "authorization"),
        Some("Bearer secret")
    );
    assert_eq!(header(&other.requests()[1].head, "authorization"), None);
    assert_eq!(
        header(&other.requests()[1].head, "host"),
        Some(other.address.replace("127.0.0.1", "localhost").as_str())
    );
}

#[tokio::test]
async fn bad_redirects_fail_the_scrape() {
    let server = RawServer::start(|r| match path(&r.head) {
        "/ftp" => Answer::Keep(b"HTTP/1.1 302 Found\r\nLocation: ftp://host/x\r\nContent-Length: 0\r\n\r\n".to_vec()),
        "/nowhere" => Answer::Keep(b"HTTP/1.1 307 Temporary Redirect\r\nContent-Length: 0\r\n\r\n".to_vec()),
        _ => Answer::Keep(b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n".to_vec()),
    })
    .await;
    let mut scraper = scraper("");
    let url = format!("http://{}/ftp", server.address);
    assert_eq!(
        get(&mut scraper, &url).await.unwrap_err().to_string(),
        format!("Get \"{url}\": invalid redirect location \"ftp://host/x\"")
    );
    let url = format!("http://{}/broken", server.address);
    assert!(matches!(
        get(&mut scraper, &url).await.unwrap_err(),
        ScrapeError::InvalidRedirect { .. }
    ));
    // A redirect without Location is returned as it is, as Go's client does.
    let url = format!("http://{}/nowhere", server.address);
    assert_eq!(
        get(&mut scraper, &url).await.unwrap_err().to_string(),
        "server returned HTTP status 307 Temporary Redirect"
    );
}

#[tokio::test]
async fn a_slow_loris_is_cut_at_the_scrape_timeout_and_its_connection_dropped() {
    let server = RawServer::start(|r| match r.connection {
        0 => Answer::Trickle(http_ok("a 1\n"), Duration::from_millis(50)),
        _ => Answer::Keep(http_ok("a 1\n")),
    })
    .await;
    let mut scraper = scraper("");
    let url: Url = format!("http://{}/metrics", server.address).parse().unwrap();
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let error = scraper.scrape(&url, timeout).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    assert_eq!(error.to_string(), "context deadline exceeded (scrape timeout 300ms)");

    // The next scrape does not reuse the half-read connection.
    let (_, body) = scraper.scrape(&url, timeout).await.unwrap();
    assert_eq!(&*body, b"a 1\n");
    assert_eq!(server.accepts(), 2);

    // A server that sends one byte of its answer, then nothing.
    let stalled = RawServer::start(|_| Answer::Trickle(b"HTTP".to_vec(), Duration::from_secs(60))).await;
    let url: Url = format!("http://{}/metrics", stalled.address).parse().unwrap();
    let error = scraper.scrape(&url, timeout).await.unwrap_err();
    assert!(matches!(error, ScrapeError::Timeout(_)), "{error:?}");
}

#[tokio::test]
async fn the_body_limit_is_enforced_while_streaming() {
    let mut chunk = b"400\r\n".to_vec();
    chunk.extend([b'#'; 0x400]);
    chunk.extend(b"\r\n");
    // An endless chunked body: only the limit ends the scrape.
    let endless = RawServer::start(move |_| Answer::Endless {
        head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        chunk: chunk.clone(),
    })
    .await;
    let mut scraper = scraper("    body_size_limit: 100KiB\n");
    let url = format!("http://{}/metrics", endless.address);
    let error = get(&mut scraper, &url).await.unwrap_err();
    assert_eq!(error.to_string(), "body size limit exceeded (102400 bytes)");

    // A declared length at the limit fails before the body arrives (it never does).
    let declared =
        RawServer::start(|_| Answer::Keep(b"HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n".to_vec())).await;
    let url = format!("http://{}/metrics", declared.address);
    let start = Instant::now();
    let error = get(&mut scraper, &url).await.unwrap_err();
    assert!(matches!(error, ScrapeError::BodySizeLimit(102_400)), "{error:?}");
    assert!(start.elapsed() < WAIT / 2);

    // Just under the limit is fine.
    let under = "#".repeat(102_399);
    let fits = RawServer::start(move |_| Answer::Keep(http_ok(&under))).await;
    let url = format!("http://{}/metrics", fits.address);
    assert_eq!(get(&mut scraper, &url).await.unwrap().len(), 102_399);
}

/// Count and capacity (bytes) of the pool's idle body buffers.
fn pooled(scraper: &Scraper) -> (usize, usize) {
    let spares = scraper.shared.buffers.lock();
    (spares.len(), spares.bytes())
}

#[tokio::test]
async fn bodies_are_reserved_from_their_length_and_pooled_up_to_a_budget() {
    let body = "#".repeat(100_000);
    let server = RawServer::start(move |_| Answer::Keep(http_ok(&body))).await;
    let mut scraper = scraper("");
    let url = format!("http://{}/metrics", server.address);
    assert_eq!(get(&mut scraper, &url).await.unwrap().len(), 100_000);
    assert_eq!(pooled(&scraper), (1, 100_000), "reserved once, not doubled");

    // A length far beyond the bytes that come reserves at most MAX_RESERVED_BODY.
    let liar = RawServer::start(|_| {
        Answer::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\na 1\n".to_vec())
    })
    .await;
    let url = format!("http://{}/metrics", liar.address);
    assert!(get(&mut scraper, &url).await.is_err());
    assert_eq!(pooled(&scraper), (1, MAX_RESERVED_BODY as usize));
}

#[tokio::test]
async fn chunked_bodies_are_joined_and_the_connection_kept() {
    let response = "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0\r\n\
                    Transfer-Encoding: chunked\r\n\r\n\
                    4\r\na 1\n\r\n5;ext=1\r\nb 22\n\r\n6\r\n# EOF\n\r\n0\r\nx-trailer: y\r\n\r\n";
    let server = RawServer::start(move |_| Answer::Keep(response.as_bytes().to_vec())).await;
    let mut scraper = scraper("");
    let url: Url = format!("http://{}/metrics", server.address).parse().unwrap();
    for _ in 0..2 {
        let (format, body) = scraper.scrape(&url, WAIT).await.unwrap();
        assert_eq!(format, Format::OpenMetrics);
        assert_eq!(&*body, b"a 1\nb 22\n# EOF\n");
    }
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn gzip_bodies_are_decoded_under_the_limit() {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all("a 1\n".repeat(1000).as_bytes()).unwrap();
    let zipped = encoder.finish().unwrap();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        zipped.len()
    )
    .into_bytes();
    response.extend(&zipped);
    let server = RawServer::start(move |_| Answer::Keep(response.clone())).await;
    let url = format!("http://{}/metrics", server.address);
    assert_eq!(get(&mut scraper(""), &url).await.unwrap(), "a 1\n".repeat(1000));
    // 4000 bytes decoded reach a 4000-byte limit, though the compressed body is far smaller.
    let error = get(&mut scraper("    body_size_limit: 4000B\n"), &url)
        .await
        .unwrap_err();
    assert!(matches!(error, ScrapeError::BodySizeLimit(4000)), "{error:?}");
}

#[tokio::test]
async fn broken_peers_fail_with_the_cause() {
    let garbage = RawServer::start(|_| Answer::Close(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())).await;
    let mut scraper = scraper("");
    let url = format!("http://{}/metrics", garbage.address);
    assert_eq!(
        get(&mut scraper, &url).await.unwrap_err().to_string(),
        format!("Get \"{url}\": malformed HTTP response: invalid HTTP version parsed")
    );

    // A head larger than the read buffer.
    let big_head = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "a".repeat(READ_BUFFER_BYTES));
    let big = RawServer::start(move |_| Answer::Keep(big_head.clone().into_bytes())).await;
    let url = format!("http://{}/metrics", big.address);
    assert_eq!(
        get(&mut scraper, &url).await.unwrap_err().to_string(),
        format!("Get \"{url}\": malformed HTTP response: message head is too large")
    );

    // A body cut short of its Content-Length.
    let short =
        RawServer::start(|_| Answer::Close(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\na 1\n".to_vec())).await;
    let url = format!("http://{}/metrics", short.address);
    let error = get(&mut scraper, &url).await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("Get \"{url}\": error reading a body from connection")),
        "{error}"
    );

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/metrics");
    assert_eq!(
        get(&mut scraper, &url).await.unwrap_err().to_string(),
        format!("Get \"{url}\": connect to {closed}: Connection refused (os error 111)")
    );
}

#[tokio::test]
async fn tls_verifies_server_name_sends_it_as_sni_and_keeps_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("trawl test ca");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.issuer.pem()).unwrap();
    // The server also offers h2: the scraper must only agree to HTTP/1.1.
    let config = ca.leaf(&["scrape.example"]).server_config(None, &[b"h2", b"http/1.1"]);
    let server = RawServer::start_tls(config, |_| Answer::Keep(http_ok("a 1\n"))).await;
    let url = format!("https://{}/metrics", server.address);
    let ca_file = ca_file.display();

    let error = get(&mut scraper(&format!("    tls_config: {{ca_file: {ca_file}}}\n")), &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("Get \"{url}\": TLS handshake: invalid peer certificate"))
            && error.contains("not valid for name \"127.0.0.1\""),
        "{error}"
    );

    let named = format!("    tls_config: {{ca_file: {ca_file}, server_name: scrape.example}}\n");
    let mut scraper = scraper(&named);
    for _ in 0..3 {
        assert_eq!(get(&mut scraper, &url).await.unwrap(), "a 1\n");
    }
    assert_eq!(
        server.accepts(),
        2,
        "one failed handshake, then one connection for three scrapes"
    );
    assert_eq!(
        server.handshakes(),
        [Handshake {
            server_name: Some("scrape.example".into()),
            alpn: Some(b"http/1.1".to_vec()),
        }]
    );

    let unknown = Ca::new("unknown ca")
        .leaf(&["elsewhere.example"])
        .server_config(None, &[]);
    let untrusted = RawServer::start_tls(unknown, |_| Answer::Keep(http_ok("b 2\n"))).await;
    let url = format!("https://{}/metrics", untrusted.address);
    let mut insecure = self::scraper("    tls_config: {insecure_skip_verify: true}\n");
    assert_eq!(get(&mut insecure, &url).await.unwrap(), "b 2\n");
    // No SNI for an IP address.
    assert_eq!(untrusted.handshakes()[0].server_name, None);

    // Plain HTTP spoken to a TLS server, and TLS to a plain one.
    let url = format!("http://{}/metrics", untrusted.address);
    assert!(get(&mut insecure, &url).await.is_err());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, &http_ok("a 1\n")).await;
        }
    });
    let url = format!("https://{plain}/metrics");
    let error = get(&mut insecure, &url).await.unwrap_err().to_string();
    assert!(error.starts_with(&format!("Get \"{url}\": TLS handshake: ")), "{error}");
}
