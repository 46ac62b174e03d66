//! Placement into plans, the quorum decision, and forwarding against fake peers on loopback:
//!
//! ```text
//! Peers::forward ──POST /api/v1/receive──► axum fake peer (scripted statuses, records headers)
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, StatusCode};
use bytes::Bytes;
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use trawl_model::remote::decode_write_request;

use super::metrics::ReplicateMetrics;
use super::peers::{Peer, Peers};
use super::*;
use crate::hashring::{Algorithm, Endpoint, Ring};

fn ring(addresses: &[&str], rf: usize) -> Ring {
    let endpoints = addresses
        .iter()
        .map(|a| Endpoint {
            address: (*a).to_owned(),
            az: String::new(),
        })
        .collect();
    Ring::new(Algorithm::Hashmod, endpoints, rf).unwrap()
}

/// Owned label sets, one per series.
type LabelSets = Vec<Vec<(&'static str, String)>>;

/// Label sets `{__name__="up", i="<i>"}` for `i` in `0..n`, with one sample each.
fn series(n: usize) -> (LabelSets, Vec<(i64, f64)>) {
    let labels = (0..n)
        .map(|i| vec![("__name__", "up".to_owned()), ("i", i.to_string())])
        .collect();
    (labels, vec![(1000, 1.0)])
}

fn plan_of(ring: &Ring, rf: usize, local: &str, n: usize) -> Plan {
    let (labels, _) = series(n);
    let borrowed: Vec<Vec<(&str, &str)>> = labels
        .iter()
        .map(|l| l.iter().map(|(k, v)| (*k, v.as_str())).collect())
        .collect();
    Plan::new(ring, rf, local, "t", borrowed.iter().map(Vec::as_slice)).unwrap()
}

#[test]
fn quorum_is_half_plus_one() {
    let got: Vec<usize> = (1..=5).map(quorum).collect();
    assert_eq!(got, [1, 2, 2, 3, 3]);
}

#[test]
fn plans_give_each_series_rf_distinct_owners_and_know_the_local_one() {
    let ring = ring(&["a:1", "b:1", "c:1"], 2);
    let plan = plan_of(&ring, 2, "b:1", 50);
    assert_eq!(plan.series(), 50);
    let mut local = 0;
    for i in 0..50 {
        let owners = plan.owners(i);
        assert_eq!(owners.len(), 2);
        assert_ne!(owners[0], owners[1]);
        let b_owns = owners.iter().any(|&s| plan.address(s as usize) == "b:1");
        assert_eq!(plan.is_local(i), b_owns);
        local += usize::from(b_owns);
    }
    assert!(local > 0 && local < 50, "b owns {local} of 50");
    // A collector outside the ring owns nothing: it only routes.
    let router = plan_of(&ring, 2, "z:1", 50);
    assert!(!router.has_local() && router.local_slot().is_none());
}

#[test]
fn bodies_hold_exactly_each_peers_series_in_order() {
    let ring = ring(&["a:1", "b:1", "c:1"], 2);
    let (labels, samples) = series(30);
    let borrowed: Vec<Vec<(&str, &str)>> = labels
        .iter()
        .map(|l| l.iter().map(|(k, v)| (*k, v.as_str())).collect())
        .collect();
    let plan = Plan::new(&ring, 2, "a:1", "t", borrowed.iter().map(Vec::as_slice)).unwrap();
    let inputs = || {
        borrowed.iter().map(|l| crate::head::SeriesInput {
            labels: l,
            samples: &samples,
        })
    };
    let bodies = plan.bodies(inputs()).unwrap();
    assert!(
        bodies.iter().all(|(slot, _)| plan.address(*slot) != "a:1"),
        "no body for the local slot"
    );
    for (slot, body) in bodies {
        let request = decode_write_request(&body).unwrap();
        let got: Vec<String> = request
            .timeseries
            .iter()
            .map(|ts| {
                assert_eq!(ts.samples.len(), 1);
                assert_eq!((ts.samples[0].timestamp, ts.samples[0].value), (1000, 1.0));
                ts.labels[1].value.clone()
            })
            .collect();
        let want: Vec<String> = (0..30)
            .filter(|&i| plan.owners(i).contains(&(slot as u32)))
            .map(|i| i.to_string())
            .collect();
        assert_eq!(got, want, "series of {}", plan.address(slot));
    }
}

fn failed() -> Option<Outcome> {
    Some(Outcome::Failed {
        reason: "connection refused".into(),
    })
}

fn refused(status: StatusCode) -> Option<Outcome> {
    Some(Outcome::Refused {
        status,
        reason: "no".into(),
    })
}

#[test]
fn the_verdict_follows_the_quorum_of_each_series() {
    let stored = || Some(Outcome::Stored);
    // RF = 3 over exactly 3 endpoints: every series is on every slot.
    let plan3 = plan_of(&ring(&["a:1", "b:1", "c:1"], 3), 3, "a:1", 10);
    assert_eq!(decide(&plan3, &[stored(), stored(), stored()]), Verdict::Stored);
    assert_eq!(decide(&plan3, &[stored(), failed(), stored()]), Verdict::Stored);
    let no_quorum = decide(&plan3, &[stored(), failed(), failed()]);
    assert!(
        matches!(&no_quorum, Verdict::NoQuorum { failed_series: 10, series: 10, quorum: 2, first_failure } if first_failure == "b:1: connection refused"),
        "{no_quorum:?}"
    );
    // Refusals settle a series (a retry would be refused again) and set the status.
    let conflict = decide(&plan3, &[refused(StatusCode::CONFLICT), failed(), stored()]);
    assert!(
        matches!(conflict, Verdict::Refused { status: StatusCode::CONFLICT, ref endpoint, .. } if endpoint == "a:1")
    );
    let bad = decide(
        &plan3,
        &[
            refused(StatusCode::CONFLICT),
            refused(StatusCode::BAD_REQUEST),
            stored(),
        ],
    );
    assert!(
        matches!(
            bad,
            Verdict::Refused {
                status: StatusCode::BAD_REQUEST,
                ..
            }
        ),
        "400 wins: {bad:?}"
    );
    // RF = 2: quorum 2, one failure is too many.
    let plan2 = plan_of(&ring(&["a:1", "b:1"], 2), 2, "a:1", 10);
    assert_eq!(decide(&plan2, &[stored(), stored()]), Verdict::Stored);
    assert!(matches!(
        decide(&plan2, &[stored(), failed()]),
        Verdict::NoQuorum { .. }
    ));
    // RF = 1 over 3 endpoints: only the failed slot's series fail.
    let plan1 = plan_of(&ring(&["a:1", "b:1", "c:1"], 1), 1, "a:1", 60);
    let on_b = (0..60).filter(|&i| plan1.owners(i) == [1]).count();
    assert!(on_b > 0);
    let verdict = decide(&plan1, &[stored(), failed(), stored()]);
    assert!(
        matches!(verdict, Verdict::NoQuorum { failed_series, .. } if failed_series == on_b),
        "{verdict:?}"
    );
}

/// A fake peer answering the scripted statuses in turn (the last one forever), recording the
/// headers of every request.
struct FakePeer {
    address: String,
    requests: Arc<AtomicUsize>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
}

async fn fake_peer(script: Vec<StatusCode>) -> FakePeer {
    let requests = Arc::new(AtomicUsize::new(0));
    let headers = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (Arc::clone(&requests), Arc::clone(&headers));
    let app = axum::Router::new().route(
        "/api/v1/receive",
        axum::routing::post(move |h: HeaderMap, _body: Bytes| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            seen.lock().unwrap().push(h);
            let status = script[n.min(script.len() - 1)];
            async move { (status, "scripted answer\nsecond line") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakePeer {
        address,
        requests,
        headers,
    }
}

fn peers() -> Peers {
    Peers::new(ReplicateMetrics::new(&mut Registry::default())).unwrap()
}

fn tenant_header() -> HeaderName {
    HeaderName::from_static("thanos-tenant")
}

/// Forwards the body `x` of tenant `t` to `peer` until `deadline`.
async fn forward_x(peers: &Peers, peer: &Peer, deadline: Instant) -> Outcome {
    peers
        .forward(peer, &tenant_header(), "t", Bytes::from_static(b"x"), deadline)
        .await
}

#[tokio::test]
async fn forwards_carry_the_tenant_and_the_forwarded_marker() {
    let fake = fake_peer(vec![StatusCode::OK]).await;
    let peers = peers();
    let peer = peers.get(&fake.address);
    let deadline = Instant::now() + Duration::from_secs(5);
    let outcome = peers
        .forward(&peer, &tenant_header(), "team-a", Bytes::from_static(b"x"), deadline)
        .await;
    assert_eq!(outcome, Outcome::Stored);
    let headers = fake.headers.lock().unwrap();
    assert_eq!(headers[0]["thanos-tenant"], "team-a");
    assert_eq!(headers[0][FORWARDED_HEADER], "1");
    assert_eq!(headers[0]["content-encoding"], "snappy");
}

#[tokio::test]
async fn recoverable_failures_are_retried_within_the_deadline() {
    let fake = fake_peer(vec![
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::OK,
    ])
    .await;
    let peers = peers();
    let peer = peers.get(&fake.address);
    let deadline = Instant::now() + Duration::from_secs(5);
    let outcome = forward_x(&peers, &peer, deadline).await;
    assert_eq!(outcome, Outcome::Stored);
    assert_eq!(fake.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn refusals_are_not_retried_and_keep_the_peer_healthy() {
    let fake = fake_peer(vec![StatusCode::CONFLICT]).await;
    let peers = peers();
    let peer = peers.get(&fake.address);
    let deadline = Instant::now() + Duration::from_secs(5);
    let outcome = forward_x(&peers, &peer, deadline).await;
    assert_eq!(
        outcome,
        Outcome::Refused {
            status: StatusCode::CONFLICT,
            reason: "scripted answer".into()
        }
    );
    let again = forward_x(&peers, &peer, deadline).await;
    assert!(matches!(again, Outcome::Refused { .. }));
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_peer_gives_up_at_the_deadline_then_is_skipped_while_backing_off() {
    let fake = fake_peer(vec![StatusCode::INTERNAL_SERVER_ERROR]).await;
    let peers = peers();
    let peer = peers.get(&fake.address);
    let start = Instant::now();
    let deadline = start + Duration::from_millis(600);
    let outcome = forward_x(&peers, &peer, deadline).await;
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if reason.contains("500")),
        "{outcome:?}"
    );
    assert!(start.elapsed() <= Duration::from_millis(900), "{:?}", start.elapsed());
    let attempts = fake.requests.load(Ordering::SeqCst);
    assert!(attempts >= 2, "retried: {attempts}");
    // Backing off: the next forward is not even tried.
    let skipped = forward_x(&peers, &peer, Instant::now() + Duration::from_secs(5)).await;
    assert!(
        matches!(&skipped, Outcome::Failed { reason } if reason.contains("backing off")),
        "{skipped:?}"
    );
    assert_eq!(fake.requests.load(Ordering::SeqCst), attempts);
}

#[tokio::test]
async fn an_unreachable_peer_fails_fast_with_the_reason() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let peers = peers();
    let peer = peers.get(&address);
    let outcome = forward_x(&peers, &peer, Instant::now() + Duration::from_millis(300)).await;
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if !reason.is_empty()),
        "{outcome:?}"
    );
}
