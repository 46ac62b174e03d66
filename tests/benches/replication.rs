//! Replication benchmark (measured, not asserted; issue 6 aims at RF = 3 ≤ 3.2× the CPU of
//! RF = 1): the same remote-write input goes round-robin into three collectors sharing one
//! hashring, once at `--receive.replication-factor=1` (each series stored once, two thirds of
//! it forwarded) and once at 3 (each series stored by all three). Prints the collectors' CPU
//! seconds (user + system, `/proc/<pid>/stat`) for each and the ratio.
//!
//! ```text
//!  bench ──remote write, round-robin──► c0 ◄─┐
//!  (SERIES × STEPS samples)         ──► c1 ◄─┼─ forwards as the hashring says
//!                                   ──► c2 ◄─┘
//! ```
//!
//! `cargo build --release -p trawl-collector && cargo bench -p trawl-e2e --bench replication`.
//! `REPLICATION_BENCH_SERIES` and `REPLICATION_BENCH_STEPS` change the input size.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use prost::Message;
use trawl_e2e::ha::config::{hashrings_json, objstore_yml};
use trawl_e2e::ha::procs::cpu_seconds;
use trawl_e2e::{Proc, free_port, http_client, wait_http_ok, workspace_bin};
use trawl_model::remote::proto::{Label, Sample, TimeSeries, WriteRequest};

const COLLECTORS: usize = 3;
/// Requests in flight at once (the agent's shards).
const CONCURRENCY: usize = 4;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let series = env_usize("REPLICATION_BENCH_SERIES", 2_000);
    let steps = env_usize("REPLICATION_BENCH_STEPS", 300);
    let requests = build_requests(series, steps);
    println!(
        "input: {series} series × {steps} steps = {} samples, {} requests",
        series * steps,
        requests.iter().map(Vec::len).sum::<usize>()
    );
    println!("| RF | collectors' CPU (s) | per collector (s) | wall (s) |");
    println!("|---|---|---|---|");
    let mut cpu = Vec::new();
    for rf in [1, 3] {
        let dir = tempfile::tempdir()?;
        let (total, each, wall) = run(rf, dir.path(), &requests).await?;
        let each: Vec<String> = each.iter().map(|c| format!("{c:.2}")).collect();
        println!("| {rf} | {total:.2} | {} | {wall:.1} |", each.join(" / "));
        cpu.push(total);
    }
    println!("RF=3 / RF=1 CPU ratio: {:.2} (goal ≤ 3.2)", cpu[1] / cpu[0]);
    Ok(())
}

/// Snappy-compressed write requests, `[shard][step]`: series `k` belongs to shard
/// `k % CONCURRENCY` (as an agent's shards), and each request holds one step of its shard's
/// series at `now - steps + step` seconds (recent, so the heads accept them).
fn build_requests(series: usize, steps: usize) -> Vec<Vec<Vec<u8>>> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let start = now_ms - steps as i64 * 1000;
    (0..CONCURRENCY)
        .map(|shard| (0..steps).map(|step| encode_step(shard, step, series, start)).collect())
        .collect()
}

/// One request: shard `shard`'s series at step `step`.
fn encode_step(shard: usize, step: usize, series: usize, start: i64) -> Vec<u8> {
    let timeseries = (shard..series)
        .step_by(CONCURRENCY)
        .map(|k| TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "replication_bench_total".into(),
                },
                Label {
                    name: "instance".into(),
                    value: format!("host-{}:9100", k / 100),
                },
                Label {
                    name: "series".into(),
                    value: format!("{k:05}"),
                },
            ],
            samples: vec![Sample {
                value: (step * series + k) as f64,
                timestamp: start + step as i64 * 1000,
            }],
            exemplars: vec![],
        })
        .collect();
    let proto = WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&proto).unwrap_or_default()
}

/// Three collectors at `rf` on loopback, fed `requests` (one sequential sender per shard, so
/// each series' samples arrive in order; collectors taken round-robin); returns their total
/// CPU seconds, each one's, and the wall time.
async fn run(rf: usize, dir: &Path, requests: &[Vec<Vec<u8>>]) -> Result<(f64, Vec<f64>, f64)> {
    let ports: Vec<u16> = (0..COLLECTORS).map(|_| free_port()).collect();
    let endpoints: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let hashrings = dir.join("hashrings.json");
    std::fs::write(&hashrings, hashrings_json(&endpoints, None))?;
    let objstore = dir.join("objstore.yml");
    std::fs::write(&objstore, objstore_yml(&dir.join("bucket")))?;
    let mut procs = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let args = vec![
            format!("--web.listen-address={endpoint}"),
            format!("--tsdb.path={}", dir.join(format!("c{i}")).display()),
            format!("--objstore.config-file={}", objstore.display()),
            format!("--label=replica=\"c{i}\""),
            format!("--receive.hashrings-file={}", hashrings.display()),
            format!("--receive.local-endpoint={endpoint}"),
            format!("--receive.replication-factor={rf}"),
            "--log.level=warn".to_owned(),
        ];
        procs.push(Proc::start(
            &format!("c{i}"),
            &workspace_bin("trawl-collector"),
            &args,
            dir,
        )?);
    }
    for endpoint in &endpoints {
        wait_http_ok(&format!("http://{endpoint}/-/ready"), Duration::from_secs(60)).await?;
    }
    let before: Vec<f64> = procs.iter().map(|p| cpu_seconds(p.pid())).collect::<Result<_>>()?;
    let client = http_client();
    let start = Instant::now();
    let results: Vec<Result<()>> = futures::future::join_all(requests.iter().enumerate().map(|(shard, steps)| {
        let client = client.clone();
        let endpoints = &endpoints;
        async move {
            for (step, body) in steps.iter().enumerate() {
                let url = format!("http://{}/api/v1/receive", endpoints[(shard + step) % COLLECTORS]);
                post(&client, &url, body.clone()).await?;
            }
            Ok(())
        }
    }))
    .await;
    let wall = start.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    let mut each = Vec::new();
    for (p, b) in procs.iter_mut().zip(before) {
        p.check_running()?;
        each.push(cpu_seconds(p.pid())? - b);
    }
    for p in &mut procs {
        p.terminate(Duration::from_secs(60))?;
    }
    Ok((each.iter().sum(), each, wall))
}

/// Posts one request, retrying 5xx (a peer still starting) a few times.
async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<()> {
    for _ in 0..10 {
        let response = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if !status.is_server_error() {
            bail!("POST {url}: {status}: {}", response.text().await.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("POST {url}: still failing after 10 tries")
}
