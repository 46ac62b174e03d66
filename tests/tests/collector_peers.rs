//! The collector against real senders and readers. Prometheus 2.42 in agent mode, vmagent and
//! trawl-agent each scrape the same target and remote-write into trawl-collector and, for
//! reference, into a Prometheus 2.42 receiver. On SIGTERM the collector cuts its head into a block
//! in its bucket; the block passes `promtool tsdb analyze` and `promtool tsdb dump` (one line per
//! sample of `meta.json`), and a Prometheus 2.42 started on a copy of the bucket returns exactly the
//! raw samples the reference received.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use trawl_e2e::{
    Collector, Prometheus, TEXT_FORMAT, eventually, exposition_server, fixtures_dir, promtool, trawl_agent, vmagent,
};

const SENDERS: [&str; 3] = ["prometheus", "vmagent", "trawl"];

/// Raw samples per series: label set → `(timestamp, value)` as the query API prints them.
type Samples = BTreeMap<BTreeMap<String, String>, Vec<(String, String)>>;

/// Every raw sample of `sender` that `prom` holds, read with a range selector at `at`.
async fn raw_samples(prom: &Prometheus, sender: &str, at: f64) -> Result<Samples> {
    let query = format!("{{sender=\"{sender}\"}}[1h]");
    let result = trawl_e2e::http_client()
        .get(format!("{}/api/v1/query", prom.url))
        .query(&[("query", query.as_str()), ("time", &format!("{at:.3}"))])
        .send()
        .await?
        .json::<Value>()
        .await?;
    let series = result["data"]["result"]
        .as_array()
        .with_context(|| format!("{result}"))?;
    let mut out = Samples::new();
    for s in series {
        let labels = s["metric"]
            .as_object()
            .context("metric")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let values = s["values"]
            .as_array()
            .context("values")?
            .iter()
            .map(|p| (p[0].to_string(), p[1].as_str().unwrap_or_default().to_owned()))
            .collect();
        out.insert(labels, values);
    }
    Ok(out)
}

/// The block directories (ULID names) in a filesystem bucket.
fn blocks_in(bucket: &Path) -> Result<Vec<PathBuf>> {
    let mut blocks: Vec<PathBuf> = std::fs::read_dir(bucket)
        .with_context(|| format!("read {}", bucket.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    blocks.sort();
    Ok(blocks)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// prometheus --enable-feature=agent ─┐        ┌─► trawl-collector ──SIGTERM──► bucket ──copy──► prometheus (reader)
/// vmagent ───────────────────────────┼─ both ─┤
/// trawl-agent ───────────────────────┘        └─► prometheus (reference receiver)
///                  (all scrape one node_exporter fixture target every second)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_hold_exactly_what_three_senders_wrote() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let payload = std::fs::read_to_string(fixtures_dir().join("node_exporter.prom"))?;
    let target = exposition_server(vec![("/metrics", payload, TEXT_FORMAT)]).await?;
    let reference = Prometheus::receiver(dir, "global:\n  scrape_interval: 1h\n").await?;
    let reference_url = format!("{}/api/v1/write", reference.url);
    let tsdb = dir.join("collector");
    let mut collector = Collector::start(dir, "collector", &tsdb, &[r#"--label=replica="e2e""#.to_owned()]).await?;
    let collector_url = collector.receive_url();

    let scrape = |external: &str| {
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s{external}}}\n\
             scrape_configs:\n  - job_name: fixture\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
    };
    let remote_write = format!(
        "remote_write:\n  - url: {collector_url}\n    queue_config: {{batch_send_deadline: 1s}}\n  \
         - url: {reference_url}\n    queue_config: {{batch_send_deadline: 1s}}\n"
    );
    let mut prometheus_agent = Prometheus::agent(
        dir,
        &format!("{}{remote_write}", scrape(", external_labels: {sender: prometheus}")),
    )
    .await?;
    let mut vmagent = vmagent(
        dir,
        &scrape(""),
        &collector_url,
        &[
            format!("-remoteWrite.url={reference_url}"),
            "-remoteWrite.label=sender=vmagent".to_owned(),
        ],
    )
    .await?;
    let (mut trawl, _) = trawl_agent(
        dir,
        &format!("{}{remote_write}", scrape(", external_labels: {sender: trawl}")),
    )
    .await?;

    // Let every sender deliver a few scrapes to both receivers.
    eventually("samples from all three senders", Duration::from_secs(60), || async {
        let mut ready = true;
        for sender in SENDERS {
            let series = reference.query(&format!("count({{sender=\"{sender}\"}})")).await?;
            ready &= !series.is_empty();
        }
        Ok(ready.then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Stop the senders (each flushes its queue), then the collector (which cuts and uploads a block).
    prometheus_agent.proc.terminate(Duration::from_secs(90))?;
    vmagent.terminate(Duration::from_secs(30))?;
    trawl.terminate(Duration::from_secs(30))?;
    collector.proc.check_running()?;
    let appended = collector.metric("trawl_collector_head_samples_appended_total").await?;
    assert_eq!(
        collector.proc.terminate(Duration::from_secs(60))?,
        0,
        "{}",
        collector.proc.log()
    );

    // The block(s) in the bucket pass promtool's checks: analyze, and one dump line per sample.
    // promtool opens a directory as a database, which needs a WAL directory: it reads a copy.
    let bucket = tsdb.join("bucket");
    let data = dir.join("reader-data");
    copy_dir(&bucket, &data)?;
    std::fs::create_dir_all(data.join("wal"))?;
    let blocks = blocks_in(&bucket)?;
    ensure!(
        !blocks.is_empty(),
        "no block in {}; log:\n{}",
        bucket.display(),
        collector.proc.log()
    );
    let mut num_samples = 0;
    for block in &blocks {
        let meta: Value = serde_json::from_slice(&std::fs::read(block.join("meta.json"))?)?;
        num_samples += meta["stats"]["numSamples"].as_u64().context("numSamples")?;
        assert_eq!(meta["thanos"]["labels"]["replica"], "e2e", "{meta}");
        assert_eq!(meta["thanos"]["labels"]["tenant_id"], "default-tenant", "{meta}");
        let ulid = block.file_name().and_then(|n| n.to_str()).context("block name")?;
        let analyze = promtool(&["tsdb", "analyze", &data.display().to_string(), ulid])?;
        ensure!(analyze.contains("Block ID"), "promtool tsdb analyze:\n{analyze}");
    }
    assert_eq!(
        num_samples as f64, appended,
        "numSamples of the blocks vs samples appended"
    );
    let dump = promtool(&["tsdb", "dump", &data.display().to_string()])?;
    assert_eq!(dump.lines().count() as u64, num_samples, "promtool tsdb dump lines");

    // A Prometheus server on a copy of the blocks returns exactly what the reference received.
    let reader = Prometheus::reader(dir, &data).await?;
    let at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    for sender in SENDERS {
        let expected = raw_samples(&reference, sender, at).await?;
        let got = raw_samples(&reader, sender, at).await?;
        ensure!(
            expected.len() > 100,
            "{sender}: only {} series in the reference",
            expected.len()
        );
        let samples: usize = got.values().map(Vec::len).sum();
        println!(
            "{sender}: {} series, {samples} samples, identical in the block",
            got.len()
        );
        for (labels, values) in &expected {
            assert_eq!(got.get(labels), Some(values), "{sender}: samples of {labels:?}");
        }
        assert_eq!(got.len(), expected.len(), "{sender}: series count");
    }
    Ok(())
}
