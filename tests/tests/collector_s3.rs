//! The collector ships its blocks to S3: a real `moto_server` receives the upload through
//! `--objstore.config-file` (Thanos's objstore.yml, `type: S3`); the test downloads the block and
//! checks it with `promtool tsdb analyze` and `promtool tsdb dump`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use trawl_collector::shipper::ObjstoreConfig;
use trawl_e2e::{Collector, Moto, TEXT_FORMAT, eventually, exposition_server, fixtures_dir, promtool, trawl_agent};

/// node_exporter fixture ─► trawl-agent ─► trawl-collector ──SIGTERM──► moto_server (S3) ─► test downloads ─► promtool
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_uploads_a_valid_block_to_s3() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let moto = Moto::start(dir, "trawl-blocks").await?;
    let endpoint = moto.url.trim_start_matches("http://");
    let objstore = format!(
        "type: S3\nconfig:\n  bucket: trawl-blocks\n  endpoint: {endpoint}\n  access_key: test\n  \
         secret_key: test\n  insecure: true\n  region: us-east-1\nprefix: e2e\n"
    );
    let objstore_file = dir.join("objstore.yml");
    std::fs::write(&objstore_file, &objstore)?;
    let tsdb = dir.join("collector");
    let mut collector = Collector::start(
        dir,
        "collector",
        &tsdb,
        &[format!("--objstore.config-file={}", objstore_file.display())],
    )
    .await?;

    let payload = std::fs::read_to_string(fixtures_dir().join("node_exporter.prom"))?;
    let target = exposition_server(vec![("/metrics", payload, TEXT_FORMAT)]).await?;
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['{target}']}}]\n\
         remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 1s}}\n",
        collector.receive_url()
    );
    let (mut agent, _) = trawl_agent(dir, &config).await?;
    eventually("a few scrapes in the collector", Duration::from_secs(30), || async {
        Ok((collector.metric("trawl_collector_head_samples_appended_total").await? > 2000.0).then_some(()))
    })
    .await?;
    agent.terminate(Duration::from_secs(30))?;
    let appended = collector.metric("trawl_collector_head_samples_appended_total").await?;
    assert_eq!(
        collector.proc.terminate(Duration::from_secs(60))?,
        0,
        "{}",
        collector.proc.log()
    );

    // Download every object of the whole bucket (no prefix) into a database directory for
    // promtool: each must sit under the configured prefix.
    let whole = objstore.replace("prefix: e2e\n", "");
    let bucket = ObjstoreConfig::parse(&whole, "objstore.yml")?.open()?;
    let objects: Vec<_> = bucket.list(None).try_collect().await?;
    ensure!(!objects.is_empty(), "nothing uploaded; log:\n{}", collector.proc.log());
    let data = dir.join("downloaded");
    std::fs::create_dir_all(data.join("wal"))?;
    let mut ulids = std::collections::BTreeSet::new();
    for object in &objects {
        let key = object.location.as_ref();
        let relative = key
            .strip_prefix("e2e/")
            .with_context(|| format!("{key} is outside the prefix"))?;
        ulids.insert(relative.split('/').next().context("ulid")?.to_owned());
        let bytes = bucket.get(&object.location).await?.bytes().await?;
        let path = data.join(relative);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(path, bytes)?;
    }
    let mut num_samples = 0;
    for ulid in &ulids {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join(ulid).join("meta.json"))?)?;
        num_samples += meta["stats"]["numSamples"].as_u64().context("numSamples")?;
        let analyze = promtool(&["tsdb", "analyze", &data.display().to_string(), ulid])?;
        ensure!(analyze.contains("Block ID"), "promtool tsdb analyze:\n{analyze}");
    }
    assert_eq!(num_samples as f64, appended, "samples in the uploaded blocks");
    let dump = promtool(&["tsdb", "dump", &data.display().to_string()])?;
    assert_eq!(dump.lines().count() as u64, num_samples, "promtool tsdb dump lines");
    println!(
        "{} block(s), {num_samples} samples downloaded from S3 and verified",
        ulids.len()
    );
    Ok(())
}
