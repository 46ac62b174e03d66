//! Kubernetes discovery benchmark (measured, not asserted): an agent discovers 1,000 pods from
//! the fake API server, of which a few are annotated for scraping, as a DaemonSet agent without
//! node-local mode would. Prints, per agent: idle RSS once every annotated pod is scraped, the
//! WATCH requests per resource, and the time from a new pod's watch event to its first scrape.
//!
//! ```text
//!  fake API server ──list/watch pods──► agent ──scrape──► exposition server (/probe/<pod>)
//!  (10 nodes, 1,000 pods)                 └──remote write──► sink (204)
//! ```
//!
//! `cargo build --release -p trawl-agent && cargo bench -p trawl-e2e --bench kubernetes`.
//! `KUBE_BENCH_AGENTS=ours,vmagent` (default) picks the agents; each runs alone. `prometheus` is
//! accepted too, but Debian's Prometheus 2.42 is built without Kubernetes discovery ("field
//! kubernetes_sd_configs not found").

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use trawl_e2e::kube_api::objects::{Build, Container, Node, Pod};
use trawl_e2e::kube_api::{KubeApi, Resource, Verb};
use trawl_e2e::{Proc, free_port, system_bin, workspace_bin};

/// Pods served, spread over [`NODES`] nodes and ten namespaces.
const PODS: usize = 1_000;
const NODES: usize = 10;
/// Every `SCRAPED_EVERY`-th pod carries `prometheus.io/scrape: "true"`.
const SCRAPED_EVERY: usize = 100;
/// Pods added one at a time to time the path from watch event to first scrape.
const NEW_PODS: usize = 5;
const SCRAPE_INTERVAL_S: u64 = 15;

/// First scrape time per path, as the exposition server saw it.
type Hits = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let agents = std::env::var("KUBE_BENCH_AGENTS").unwrap_or_else(|_| "ours,vmagent".to_owned());
    println!(
        "| agent | idle RSS (MB) | peak RSS (MB) | WATCH pods | LIST pods | event → first scrape, median / max (s) |"
    );
    println!("|---|---|---|---|---|---|");
    for agent in agents.split(',') {
        let dir = tempfile::tempdir()?;
        match run(agent.trim(), dir.path()).await {
            Ok(row) => println!("{row}"),
            // One agent failing (a peer that cannot talk to the fake server) keeps the others.
            Err(error) => {
                println!("| {agent} | failed: {error:#} | | | | |");
                let log = std::fs::read_to_string(dir.path().join(format!("{}.log", agent.trim()))).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                eprintln!(
                    "{agent} log, last lines:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
    Ok(())
}

/// One agent against a fresh API server, working in `dir`; returns its table row.
async fn run(agent: &str, dir: &Path) -> Result<String> {
    let api = KubeApi::start().await?;
    let (exposition_port, hits) = exposition_server().await?;
    let sink_port = sink().await?;
    for node in 0..NODES {
        api.apply(
            Node::new(&format!("node-{node}"))
                .address("InternalIP", &format!("10.0.0.{node}"))
                .build(),
        )?;
    }
    for i in 0..PODS {
        api.apply(pod(i, exposition_port))?;
    }

    let mut proc = start(agent, dir, &scrape_config(&api.url()), sink_port)?;
    let scraped: Vec<String> = (0..PODS).step_by(SCRAPED_EVERY).map(probe_path).collect();
    wait_until(Duration::from_secs(120), || {
        let hits = hits.lock().unwrap();
        scraped.iter().all(|p| hits.contains_key(p))
    })
    .await
    .context("annotated pods were not scraped")?;
    // Idle: two more intervals with nothing changing.
    tokio::time::sleep(Duration::from_secs(2 * SCRAPE_INTERVAL_S)).await;
    proc.check_running()?;
    let (rss, hwm) = rss_mb(proc.pid())?;

    let mut latencies = Vec::new();
    for n in 0..NEW_PODS {
        let i = PODS + n * SCRAPED_EVERY;
        let applied = Instant::now();
        api.apply(pod(i, exposition_port))?;
        let path = probe_path(i);
        wait_until(Duration::from_secs(3 * SCRAPE_INTERVAL_S), || {
            hits.lock().unwrap().contains_key(&path)
        })
        .await
        .with_context(|| format!("new pod {i} was not scraped"))?;
        latencies.push(hits.lock().unwrap()[&path].duration_since(applied).as_secs_f64());
        // New pods arrive at different phases of the interval.
        tokio::time::sleep(Duration::from_millis(3_100)).await;
    }
    latencies.sort_by(f64::total_cmp);
    let watches = api.count(Verb::Watch, Resource::Pods);
    let lists = api.count(Verb::List, Resource::Pods);
    proc.terminate(Duration::from_secs(10))?;
    Ok(format!(
        "| {agent} | {rss:.1} | {hwm:.1} | {watches} | {lists} | {:.2} / {:.2} |",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    ))
}

/// The `i`th pod: two containers with three ports; every `SCRAPED_EVERY`th is annotated to be
/// scraped at the exposition server on `/probe/pod-<i>`.
fn pod(i: usize, exposition_port: u16) -> serde_json::Value {
    let name = format!("pod-{i}");
    let mut pod = Pod::new(&format!("ns-{}", i % 10), &name)
        .node(&format!("node-{}", i % NODES))
        .ip("127.0.0.1")
        .host_ip(&format!("10.0.0.{}", i % NODES))
        .container(
            Container::new("app", "ghcr.io/acme/app:1.4")
                .port("http", 8080)
                .port("grpc", 9090),
        )
        .container(Container::new("proxy", "envoyproxy/envoy:v1.30").port("admin", 9901))
        .label("app.kubernetes.io/name", &format!("app-{}", i % 37))
        .label("pod-template-hash", "5d8f7c9b6d")
        .annotation("kubectl.kubernetes.io/restartedAt", "2025-06-02T09:14:07Z");
    if i.is_multiple_of(SCRAPED_EVERY) {
        pod = pod
            .annotation("prometheus.io/scrape", "true")
            .annotation("prometheus.io/port", &exposition_port.to_string())
            .annotation("prometheus.io/path", &probe_path(i));
    }
    pod.build()
}

fn probe_path(i: usize) -> String {
    format!("/probe/pod-{i}")
}

/// The annotated-pods job of Prometheus's `prometheus-kubernetes.yml`, shared by all agents.
fn scrape_config(api_server: &str) -> String {
    format!(
        r#"global: {{scrape_interval: {SCRAPE_INTERVAL_S}s}}
scrape_configs:
  - job_name: kubernetes-pods
    kubernetes_sd_configs: [{{role: pod, api_server: "{api_server}"}}]
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: "true"}}
      - {{source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], target_label: __metrics_path__, regex: (.+)}}
      - {{source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port], regex: '([^:]+)(?::\d+)?;(\d+)', replacement: '$1:$2', target_label: __address__}}
      - {{action: labelmap, regex: __meta_kubernetes_pod_label_(.+)}}
      - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
"#
    )
}

/// Starts `agent` (ours, prometheus in agent mode, or vmagent) on `scrape_config`, writing to
/// the sink on `sink_port` (vmagent takes the URL as a flag, the others in `remote_write:`).
fn start(agent: &str, dir: &Path, scrape_config: &str, sink_port: u16) -> Result<Proc> {
    let sink = format!("http://127.0.0.1:{sink_port}/api/v1/write");
    let file = dir.join("agent.yml");
    let config = match agent {
        "vmagent" => scrape_config.to_owned(),
        _ => format!("{scrape_config}remote_write:\n  - url: {sink}\n"),
    };
    std::fs::write(&file, config)?;
    let listen = format!("127.0.0.1:{}", free_port());
    let (program, args) = match agent {
        "ours" => (
            workspace_bin("trawl-agent"),
            vec![
                format!("--config.file={}", file.display()),
                format!("--storage.path={}", dir.join("data").display()),
                format!("--web.listen-address={listen}"),
                "--log.level=warn".to_owned(),
            ],
        ),
        "prometheus" => (
            system_bin("prometheus", "prometheus"),
            vec![
                "--enable-feature=agent".to_owned(),
                format!("--config.file={}", file.display()),
                format!("--storage.agent.path={}", dir.join("data").display()),
                format!("--web.listen-address={listen}"),
                "--log.level=warn".to_owned(),
            ],
        ),
        "vmagent" => (
            system_bin("vmagent", "victoria-metrics"),
            vec![
                format!("-promscrape.config={}", file.display()),
                format!("-remoteWrite.url={sink}"),
                format!("-remoteWrite.tmpDataPath={}", dir.join("data").display()),
                format!("-httpListenAddr={listen}"),
                "-loggerLevel=ERROR".to_owned(),
            ],
        ),
        other => bail!("unknown agent {other}; use ours, prometheus or vmagent"),
    };
    Proc::start(agent, &program, &args, dir)
}

/// Serves an exposition on every `/probe/<name>` path, recording each path's first scrape.
async fn exposition_server() -> Result<(u16, Hits)> {
    let hits = Hits::default();
    let app = axum::Router::new()
        .route("/probe/{name}", get(probe))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((port, hits))
}

async fn probe(State(hits): State<Hits>, UrlPath(name): UrlPath<String>) -> &'static str {
    hits.lock()
        .unwrap()
        .entry(format!("/probe/{name}"))
        .or_insert_with(Instant::now);
    "# TYPE requests_total counter\nrequests_total{code=\"200\"} 1027\nrequests_total{code=\"500\"} 3\n"
}

/// A remote-write receiver that accepts and drops everything.
async fn sink() -> Result<u16> {
    let app = axum::Router::new().route("/api/v1/write", post(|| async { axum::http::StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            bail!("gave up after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Current and peak resident set of `pid`, in MB (`VmRSS`, `VmHWM` of `/proc/PID/status`).
fn rss_mb(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing"))?;
        let kb: f64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
