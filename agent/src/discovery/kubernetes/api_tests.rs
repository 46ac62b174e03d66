//! The whole path against a tiny API server on loopback (the full fake API server with
//! resource versions, 410 Gone and restarts lives in the `tests` crate):
//!
//! ```text
//! KubernetesRegistry ─► client ─HTTP─► axum: GET /api/v1/pods (list, then ?watch=true)
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::KubernetesRegistry;
use crate::config::Config;
use crate::discovery::TargetGroup;

#[derive(Default)]
struct Fake {
    /// Status of list requests; 200 serves the list.
    list_status: AtomicU16,
    /// Query parameters of every request.
    queries: Mutex<Vec<HashMap<String, String>>>,
}

fn pod(name: &str, ip: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "5"},
        "spec": {"nodeName": "w1", "containers": [{"name": "app", "ports": [{"containerPort": 8080}]}]},
        "status": {"podIP": ip},
    })
}

async fn pods(State(fake): State<Arc<Fake>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let watch = query.get("watch").is_some_and(|w| w == "true");
    fake.queries.lock().unwrap().push(query);
    if watch {
        let added = serde_json::json!({"type": "ADDED", "object": pod("p3", "10.0.0.3")});
        let bookmark = serde_json::json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}});
        let lines = [format!("{added}\n"), format!("{bookmark}\n")];
        let stream = futures::stream::iter(lines.map(Ok::<_, std::io::Error>)).chain(futures::stream::pending());
        return Body::from_stream(stream).into_response();
    }
    let status = fake.list_status.load(Ordering::SeqCst);
    if status != 200 {
        let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "pods is forbidden: User \"system:serviceaccount:mon:trawl\" cannot list resource \"pods\"",
            "reason": "Forbidden", "code": status});
        return (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
    }
    let list = serde_json::json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
        "items": [pod("p1", "10.0.0.1"), {"metadata": {"name": "p2", "namespace": "default"}, "spec": {"containers": 5}}],
    });
    list.to_string().into_response()
}

async fn serve(fake: Arc<Fake>) -> String {
    let router = Router::new().route("/api/v1/pods", get(pods)).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn config(server: &str) -> crate::config::KubernetesSdConfig {
    let text = format!(
        "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - {{role: pod, api_server: '{server}', node_name: w1, selectors: [{{role: pod, label: app=web}}]}}\n"
    );
    Config::from_yaml(&text, "t.yml").unwrap().scrape_configs[0].kubernetes_sd_configs[0].clone()
}

async fn next(rx: &mut mpsc::Receiver<Vec<TargetGroup>>) -> Vec<String> {
    let groups = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an update in time")
        .expect("open");
    groups
        .into_iter()
        .map(|g| {
            format!(
                "{} {:?}",
                g.source,
                g.targets.iter().map(|t| t.get("__address__")).collect::<Vec<_>>()
            )
        })
        .collect()
}

#[tokio::test]
async fn lists_watches_and_skips_malformed_objects() {
    let fake = Arc::new(Fake::default());
    fake.list_status.store(200, Ordering::SeqCst);
    let server = serve(fake.clone()).await;
    let mut registry = Registry::default();
    let r = KubernetesRegistry::new(&mut registry);
    let (tx, mut rx) = mpsc::channel(8);
    r.subscribe(&config(&server), "sd0/".into(), tx, CancellationToken::new());

    assert_eq!(next(&mut rx).await, ["sd0/pod/default/p1 [\"10.0.0.1:8080\"]"]);
    assert_eq!(next(&mut rx).await, ["sd0/pod/default/p3 [\"10.0.0.3:8080\"]"]);

    let queries = fake.queries.lock().unwrap().clone();
    assert_eq!(
        queries[0].get("fieldSelector").map(String::as_str),
        Some("spec.nodeName=w1")
    );
    assert_eq!(queries[0].get("labelSelector").map(String::as_str), Some("app=web"));
    assert_eq!(queries[1].get("resourceVersion").map(String::as_str), Some("10"));
    assert_eq!(queries[1].get("allowWatchBookmarks").map(String::as_str), Some("true"));

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        r#"trawl_agent_sd_kubernetes_failures_total{role="pod",reason="malformed"} 1"#,
        r#"trawl_agent_sd_kubernetes_events_total{role="pod",event="add"} 2"#,
        r#"trawl_agent_sd_kubernetes_watches{resource="pod"} 1"#,
        "trawl_agent_sd_kubernetes_discoverers 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn a_forbidden_list_is_retried_until_rbac_allows_it() {
    let fake = Arc::new(Fake::default());
    fake.list_status.store(403, Ordering::SeqCst);
    let server = serve(fake.clone()).await;
    let mut registry = Registry::default();
    let r = KubernetesRegistry::new(&mut registry);
    let (tx, mut rx) = mpsc::channel(8);
    r.subscribe(&config(&server), String::new(), tx, CancellationToken::new());

    // Wait for two failed lists (the second after the first backoff), then allow.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while fake.queries.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "list was not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rx.try_recv().is_err(), "no groups while forbidden");
    fake.list_status.store(200, Ordering::SeqCst);
    assert_eq!(next(&mut rx).await, ["pod/default/p1 [\"10.0.0.1:8080\"]"]);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let forbidden = text
        .lines()
        .find(|l| l.starts_with(r#"trawl_agent_sd_kubernetes_failures_total{role="pod",reason="forbidden"}"#))
        .unwrap();
    let count: u64 = forbidden.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2, "{forbidden}");
}
