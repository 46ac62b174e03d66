//! The agent against real programs: it scrapes node_exporter, Prometheus's own `/metrics` and
//! two fixture targets (text 0.0.4 and OpenMetrics, from file_sd), and remote-writes into a real
//! Prometheus 2.42 receiver, which the test queries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use trawl_e2e::{
    OPENMETRICS_FORMAT, Prometheus, TEXT_FORMAT, eventually, exposition_server, fixtures_dir, http_client, label_map,
    node_exporter, trawl_agent,
};
use trawl_model::exposition::{Entry, Format, Parser, parse_series};

/// Serves the shared fixtures: `/text` (text 0.0.4) and `/om` (OpenMetrics).
async fn fixture_server() -> Result<String> {
    exposition_server(vec![
        (
            "/text",
            std::fs::read_to_string(fixtures_dir().join("python_client.prom"))?,
            TEXT_FORMAT,
        ),
        (
            "/om",
            std::fs::read_to_string(fixtures_dir().join("python_client.om.txt"))?,
            OPENMETRICS_FORMAT,
        ),
    ])
    .await
}

/// Series (label sets, `__name__` included) and values of an exposition, as we parse it.
fn exposition_samples(body: &[u8], format: Format) -> Result<BTreeMap<BTreeMap<String, String>, f64>> {
    let mut out = BTreeMap::new();
    for entry in Parser::new(body, format) {
        if let Entry::Sample(s) = entry? {
            let labels = parse_series(s.series, format)?;
            out.insert(
                labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                s.value,
            );
        }
    }
    Ok(out)
}

fn parse_prom_value(v: &str) -> f64 {
    match v {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or(f64::NAN),
    }
}

/// Asserts that every series a direct scrape of `address` sees arrived in Prometheus under
/// `job`/`instance` and the external label (retrying while the agent's next scrapes land).
async fn assert_all_series_arrived(prom: &Prometheus, job: &str, address: &str, path: &str) -> Result<()> {
    eventually(
        &format!("every series of {job} in the receiver"),
        Duration::from_secs(30),
        || async {
            let response = http_client().get(format!("http://{address}{path}")).send().await?;
            let format =
                Format::from_content_type(response.headers().get("content-type").and_then(|v| v.to_str().ok()));
            let body = response.bytes().await?;
            let expected = exposition_samples(&body, format)?;
            let stored: BTreeSet<BTreeMap<String, String>> = prom
                .series(&format!("{{job=\"{job}\"}}"))
                .await?
                .iter()
                .map(label_map)
                .collect();
            let missing: Vec<_> = expected
                .keys()
                .map(|labels| {
                    let mut l = labels.clone();
                    l.insert("job".into(), job.into());
                    l.insert("instance".into(), address.into());
                    l.insert("agent".into(), "e2e".into());
                    l
                })
                .filter(|l| !stored.contains(l))
                .collect();
            if missing.is_empty() {
                return Ok(Some(expected.len()));
            }
            bail!(
                "{} of {} series missing, e.g. {:?}",
                missing.len(),
                expected.len(),
                missing.first()
            )
        },
    )
    .await
    .map(|n| assert!(n > 10, "{job}: only {n} series scraped"))
}

/// node_exporter ──────────┐
/// prometheus /metrics ────┤                      remote write
/// fixture /text, /om ─────┴─► trawl-agent ─────────────────────► prometheus (receiver)
///   (file_sd)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_delivers_every_series_to_a_prometheus_receiver() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let prom = Prometheus::receiver(dir.path(), "global:\n  scrape_interval: 1h\n").await?;
    let (_node, node_address) = node_exporter(dir.path()).await?;
    let fixture = fixture_server().await?;
    let prom_address = prom.url.trim_start_matches("http://").to_owned();

    // Two fixture targets in one file_sd file, each with its own metrics path.
    let sd_file = dir.path().join("fixtures.json");
    let both = serde_json::json!([
        {"targets": [fixture], "labels": {"__metrics_path__": "/text", "format": "text"}},
        {"targets": [format!("localhost:{}", fixture.rsplit(':').next().unwrap_or_default())],
         "labels": {"__metrics_path__": "/om", "format": "openmetrics"}},
    ]);
    std::fs::write(&sd_file, both.to_string())?;
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels: {{agent: e2e}}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ['{node_address}']}}]
  - job_name: prometheus
    static_configs: [{{targets: ['{prom_address}']}}]
  - job_name: fixture
    file_sd_configs: [{{files: ['{sd}']}}]
remote_write:
  - url: {url}/api/v1/write
    queue_config: {{batch_send_deadline: 1s}}
"#,
        sd = sd_file.display(),
        url = prom.url,
    );
    let (mut agent, agent_url) = trawl_agent(dir.path(), &config).await?;

    // Every target is up.
    eventually("up == 1 for all four targets", Duration::from_secs(30), || async {
        let up = prom.query("up == 1").await?;
        Ok((up.len() == 4).then_some(()))
    })
    .await
    .with_context(|| agent.log())?;

    // Every series node_exporter and Prometheus expose arrived, with job and instance.
    assert_all_series_arrived(&prom, "node", &node_address, "/metrics").await?;
    assert_all_series_arrived(&prom, "prometheus", &prom_address, "/metrics").await?;

    // The fixture series arrived with their exact values and the external label.
    for (path, format, file) in [
        ("text", Format::Text, "python_client.prom"),
        ("openmetrics", Format::OpenMetrics, "python_client.om.txt"),
    ] {
        let expected = exposition_samples(&std::fs::read(fixtures_dir().join(file))?, format)?;
        let result = prom.query(&format!("{{job=\"fixture\",format=\"{path}\"}}")).await?;
        let got: BTreeMap<BTreeMap<String, String>, f64> = result
            .iter()
            .filter(|r| {
                let name = r["metric"]["__name__"].as_str().unwrap_or_default();
                name != "up" && !name.starts_with("scrape_")
            })
            .map(|r| {
                let mut l = label_map(&r["metric"]);
                assert_eq!(l.remove("agent").as_deref(), Some("e2e"), "external label on {l:?}");
                for k in ["job", "instance", "format"] {
                    l.remove(k);
                }
                (l, parse_prom_value(r["value"][1].as_str().unwrap_or_default()))
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "{path}: series count");
        for (labels, value) in &expected {
            let v = got.get(labels).with_context(|| format!("{path}: missing {labels:?}"))?;
            assert!(
                v == value || (v.is_nan() && value.is_nan()),
                "{path}: {labels:?} = {v}, want {value}"
            );
        }
    }

    // The agent's targets API shows all four healthy.
    let targets: Value = http_client()
        .get(format!("{agent_url}/api/v1/targets"))
        .send()
        .await?
        .json()
        .await?;
    let active = targets["data"]["activeTargets"].as_array().context("activeTargets")?;
    assert_eq!(active.len(), 4, "{targets}");
    assert!(active.iter().all(|t| t["health"] == "up"), "{targets}");

    // Removing a target from file_sd makes its series stale in the receiver.
    std::fs::write(&sd_file, serde_json::json!([both[0].clone()]).to_string())?;
    eventually(
        "the removed target's series to go stale",
        Duration::from_secs(30),
        || async {
            let gone = prom
                .query("up{job=\"fixture\",format=\"openmetrics\"}")
                .await?
                .is_empty()
                && prom.query("{job=\"fixture\",format=\"openmetrics\"}").await?.is_empty();
            Ok(gone.then_some(()))
        },
    )
    .await
    .with_context(|| agent.log())?;
    assert_eq!(prom.query("up{job=\"fixture\",format=\"text\"}").await?.len(), 1);

    agent.check_running()?;
    assert_eq!(agent.terminate(Duration::from_secs(40))?, 0, "{}", agent.log());
    Ok(())
}
