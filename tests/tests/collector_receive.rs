//! The collector binary's promises on the receive path: every acknowledged sample survives a
//! `kill -9` (WAL replay), and hostile requests get Thanos Receive's status codes without changing
//! anything else. Samples are read back from the uploaded block with `promtool tsdb dump`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use prost::Message;
use reqwest::StatusCode;
use trawl_e2e::{Collector, http_client, promtool};
use trawl_model::remote::proto::{Label, Sample, TimeSeries, WriteRequest};

const SERIES: usize = 50;
/// Milliseconds since the epoch of the first sample: recent, so the head accepts it.
fn base_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    now - 10 * 60 * 1000
}

/// Starts a collector named `collector` storing under `<dir>/collector`; returns it, that TSDB
/// path and its receive URL.
async fn start_collector(dir: &Path) -> Result<(Collector, PathBuf, String)> {
    let tsdb = dir.join("collector");
    let collector = Collector::start(dir, "collector", &tsdb, &[]).await?;
    let url = collector.receive_url();
    Ok((collector, tsdb, url))
}

/// Request `step`: one sample per series at `base + step` seconds with value `step`.
fn request(base: i64, step: i64) -> Vec<u8> {
    let timeseries = (0..SERIES)
        .map(|k| TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "crash_test".into(),
                },
                Label {
                    name: "series".into(),
                    value: format!("{k:03}"),
                },
            ],
            samples: vec![Sample {
                value: step as f64,
                timestamp: base + step * 1000,
            }],
            exemplars: vec![],
        })
        .collect();
    snappy(
        &WriteRequest {
            timeseries,
            metadata: vec![],
        }
        .encode_to_vec(),
    )
}

fn snappy(proto: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(proto).expect("snappy")
}

async fn post(url: &str, body: Vec<u8>, tenant: Option<&str>) -> Result<StatusCode> {
    let mut request = http_client()
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(tenant) = tenant {
        request = request.header("THANOS-TENANT", tenant);
    }
    Ok(request.send().await?.status())
}

/// Every sample in the bucket's blocks, by metric name and `series` label: timestamp → value.
fn dumped_samples(dir: &Path, bucket: &Path) -> Result<BTreeMap<String, BTreeMap<i64, f64>>> {
    // promtool opens the directory as a database (with a WAL directory): give it a copy.
    let data = dir.join(format!("dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(data.join("wal"))?;
    for entry in std::fs::read_dir(bucket)? {
        let block = entry?.path();
        let target = data.join(block.file_name().context("name")?);
        std::fs::create_dir_all(target.join("chunks"))?;
        for file in ["index", "meta.json", "tombstones"] {
            if block.join(file).exists() {
                std::fs::copy(block.join(file), target.join(file))?;
            }
        }
        for chunk in std::fs::read_dir(block.join("chunks"))? {
            let chunk = chunk?.path();
            std::fs::copy(&chunk, target.join("chunks").join(chunk.file_name().context("name")?))?;
        }
    }
    let dump = promtool(&["tsdb", "dump", &data.display().to_string()])?;
    let mut out: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
    for line in dump.lines() {
        // {__name__="crash_test", series="007"} 12 1700000000000
        let (labels, rest) = line.rsplit_once("} ").context("dump line")?;
        let mut fields = rest.split(' ');
        let value: f64 = fields.next().context("value")?.parse()?;
        let ts: i64 = fields.next().context("timestamp")?.parse()?;
        out.entry(format!("{labels}}}")).or_default().insert(ts, value);
    }
    Ok(out)
}

/// test client ──remote write──► trawl-collector ──kill -9──► trawl-collector (WAL replay) ──SIGTERM──► bucket
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_sample_survives_kill_9() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let (mut collector, tsdb, url) = start_collector(dir).await?;
    let base = base_ms();

    // Send requests back to back; kill -9 the collector while they are flowing.
    let sender = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for step in 0.. {
                match post(&url, request(base, step), None).await {
                    Ok(s) if s.is_success() => acked.push(step),
                    _ => break,
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    collector.proc.kill()?;
    let acked_before = sender.await?;
    ensure!(
        acked_before.len() > 10,
        "only {} requests acknowledged before the kill",
        acked_before.len()
    );

    // Restart on the same directory: replay, then keep writing after the last acknowledged step.
    let mut collector = Collector::start(dir, "collector-restarted", &tsdb, &[]).await?;
    let next = acked_before.last().copied().unwrap_or_default() + 2;
    let mut acked = acked_before.clone();
    for step in next..next + 20 {
        assert_eq!(
            post(&collector.receive_url(), request(base, step), None).await?,
            StatusCode::OK
        );
        acked.push(step);
    }
    assert_eq!(
        collector.proc.terminate(Duration::from_secs(60))?,
        0,
        "{}",
        collector.proc.log()
    );

    let stored = dumped_samples(dir, &tsdb.join("bucket"))?;
    assert_eq!(stored.len(), SERIES, "series in the block");
    for (series, samples) in &stored {
        for step in &acked {
            assert_eq!(
                samples.get(&(base + step * 1000)),
                Some(&(*step as f64)),
                "{series}: acknowledged step {step} missing"
            );
        }
    }
    println!(
        "kill -9 after {} acknowledged requests; {} acknowledged samples all found after replay",
        acked_before.len(),
        acked.len() * SERIES
    );
    Ok(())
}

/// hostile client ──garbage, bombs, bad labels, disorder──► trawl-collector ──SIGTERM──► bucket
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_thanos_status_codes_and_change_nothing_else() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let (mut collector, tsdb, url) = start_collector(dir).await?;
    let base = base_ms();
    let series = |labels: &[(&str, &str)], ts: i64, value: f64| TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: vec![Sample { value, timestamp: ts }],
        exemplars: vec![],
    };
    let write = |timeseries: Vec<TimeSeries>| {
        snappy(
            &WriteRequest {
                timeseries,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
    };

    // Good data first.
    assert_eq!(post(&url, request(base, 10), None).await?, StatusCode::OK);
    // Garbage: not snappy; snappy of garbage protobuf.
    assert_eq!(
        post(&url, b"not snappy at all".to_vec(), None).await?,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(post(&url, snappy(&[0xff; 64]), None).await?, StatusCode::BAD_REQUEST);
    // A snappy bomb: a tiny body whose header claims a huge decoded length.
    let mut bomb = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    bomb.extend_from_slice(&[0; 16]);
    assert_eq!(post(&url, bomb, None).await?, StatusCode::PAYLOAD_TOO_LARGE);
    // Unsorted, duplicate and nameless label sets.
    let unsorted = series(&[("__name__", "bad"), ("b", "1"), ("a", "2")], base, 1.0);
    assert_eq!(post(&url, write(vec![unsorted]), None).await?, StatusCode::BAD_REQUEST);
    let duplicate = series(&[("__name__", "bad"), ("a", "1"), ("a", "2")], base, 1.0);
    assert_eq!(post(&url, write(vec![duplicate]), None).await?, StatusCode::BAD_REQUEST);
    let nameless = series(&[("a", "1")], base, 1.0);
    assert_eq!(post(&url, write(vec![nameless]), None).await?, StatusCode::BAD_REQUEST);
    // Out of order and a changed value at an existing timestamp: 409.
    let older = request(base, 5);
    assert_eq!(post(&url, older, None).await?, StatusCode::CONFLICT);
    let changed = series(&[("__name__", "crash_test"), ("series", "000")], base + 10_000, 99.0);
    assert_eq!(post(&url, write(vec![changed]), None).await?, StatusCode::CONFLICT);
    // An exact retry is accepted silently.
    assert_eq!(post(&url, request(base, 10), None).await?, StatusCode::OK);
    // A path-traversing tenant is refused.
    assert_eq!(
        post(&url, request(base, 11), Some("../../etc")).await?,
        StatusCode::BAD_REQUEST
    );

    collector.proc.check_running()?;
    assert_eq!(
        collector.proc.terminate(Duration::from_secs(60))?,
        0,
        "{}",
        collector.proc.log()
    );
    let stored = dumped_samples(dir, &tsdb.join("bucket"))?;
    assert_eq!(
        stored.len(),
        SERIES,
        "only the good series are stored: {:?}",
        stored.keys()
    );
    for (series, samples) in &stored {
        assert_eq!(samples.len(), 1, "{series}: {samples:?}");
        assert_eq!(samples.get(&(base + 10_000)), Some(&10.0), "{series}");
    }
    Ok(())
}
