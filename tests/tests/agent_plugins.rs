//! The example plugins, built for wasm32-wasip2, run by the agent at every stage into a real
//! Prometheus 2.42 receiver; `check-plugin` on an exposition file; and a hot reload of a
//! plugin's file under load that loses no sample.
//!
//! ```text
//!  exposition server ──scrape 1s──► trawl-agent ──────────remote write──► Prometheus 2.42
//!   /app                             relabel: drop-labels, add-labels       (receiver)
//!                                    filter:  value-filter
//!                                    write:   redact
//! ```

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use trawl_e2e::wasm::{example_plugin, test_guest};
use trawl_e2e::{
    Prometheus, TEXT_FORMAT, eventually, exposition_server, label_map, metric_sum, trawl_agent, workspace_bin,
};

const APP: &str = r#"# TYPE app_requests_total counter
app_requests_total{path="/api",email="alice@example.com",user_id="42",pod_template_hash="abc"} 10
app_requests_total{path="/debug/pprof",email="bob@example.com",user_id="7",pod_template_hash="abc"} 3
# TYPE go_gc_cycles gauge
go_gc_cycles 5
# TYPE app_latency_milliseconds gauge
app_latency_milliseconds{path="/api"} 250
# TYPE app_temp gauge
app_temp{sensor="a"} NaN
app_temp{sensor="b"} 21
# TYPE app_broken_total counter
app_broken_total -4
"#;

/// The `app` job's series in the receiver (report series left out), as label maps.
async fn app_series(prom: &Prometheus) -> Result<Vec<BTreeMap<String, String>>> {
    let all = prom.series(r#"{job="app",__name__!~"up|scrape_.*"}"#).await?;
    Ok(all.iter().map(label_map).collect())
}

/// The value of a query that returns one series.
async fn instant_value(prom: &Prometheus, query: &str) -> Result<f64> {
    let result = prom.query(query).await?;
    let v = result
        .first()
        .and_then(|r| r["value"][1].as_str())
        .context("no result")?;
    Ok(v.parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugins_shape_what_arrives() -> Result<()> {
    let (drop, add, values, redact) = (
        example_plugin("drop-labels")?,
        example_plugin("add-labels")?,
        example_plugin("value-filter")?,
        example_plugin("redact")?,
    );
    let dir = tempfile::tempdir()?;
    let prom = Prometheus::receiver(dir.path(), "global:\n  scrape_interval: 1h\n").await?;
    let target = exposition_server(vec![("/app", APP.to_owned(), TEXT_FORMAT)]).await?;
    // `$${1}` is a literal `${1}` for the plugin: the agent expands `${VAR}` from the environment.
    let config = format!(
        r#"global: {{scrape_interval: 1s, scrape_timeout: 1s}}
plugins:
  - name: drop
    path: {drop}
    config: {{drop_metrics: ["go_gc_.*"], drop_series: [{{label: path, regex: "/debug/.*"}}], drop_labels: [pod_template_hash]}}
  - name: add
    path: {add}
    config: {{labels: {{cluster: eu1}}, rename: {{sensor: probe}}}}
  - name: values
    path: {values}
    config: {{drop_nan: true, drop_negative_counters: true, scale: [{{metric: "(.*)_milliseconds", factor: 0.001, rename: "$${{1}}_seconds"}}]}}
  - name: redact
    path: {redact}
    config: {{hash: [email], drop: [user_id], salt: s3cret, hash_length: 16}}
    on_error: fail_closed
scrape_configs:
  - job_name: app
    metrics_path: /app
    static_configs: [{{targets: ['{target}']}}]
    plugins: [{{name: drop, stage: relabel}}, {{name: add, stage: relabel}}, {{name: values, stage: filter}}]
remote_write:
  - url: {receiver}/api/v1/write
    queue_config: {{batch_send_deadline: 1s}}
    plugins: [redact]
"#,
        drop = drop.display(),
        add = add.display(),
        values = values.display(),
        redact = redact.display(),
        receiver = prom.url,
    );
    let (_agent, url) = trawl_agent(dir.path(), &config).await?;

    let series = eventually("the app's series in the receiver", Duration::from_secs(30), || async {
        let series = app_series(&prom).await?;
        Ok((series.len() >= 3).then_some(series))
    })
    .await?;
    let names: Vec<&str> = series.iter().map(|s| s["__name__"].as_str()).collect();
    assert_eq!(
        names,
        ["app_latency_seconds", "app_requests_total", "app_temp"],
        "go_gc_* and the negative counter dropped, milliseconds renamed: {series:?}"
    );
    for s in &series {
        assert_eq!(s.get("cluster").map(String::as_str), Some("eu1"), "add-labels on {s:?}");
        assert!(
            !s.contains_key("pod_template_hash") && !s.contains_key("user_id"),
            "{s:?}"
        );
        assert_ne!(
            s.get("path").map(String::as_str),
            Some("/debug/pprof"),
            "drop_series on {s:?}"
        );
    }
    let requests = &series[1];
    let email = requests.get("email").context("email hashed, not dropped")?;
    assert!(
        email.len() == 16 && email.bytes().all(|b| b.is_ascii_hexdigit()),
        "email = {email}"
    );
    assert_eq!(
        series[2].get("probe").map(String::as_str),
        Some("b"),
        "NaN sample of probe a dropped"
    );

    assert_eq!(
        instant_value(&prom, "app_latency_seconds").await?,
        0.25,
        "scaled by 0.001"
    );
    assert_eq!(instant_value(&prom, "app_requests_total").await?, 10.0);

    for (plugin, stage) in [
        ("drop", "relabel"),
        ("add", "relabel"),
        ("values", "filter"),
        ("redact", "write"),
    ] {
        let calls = metric_sum(
            &url,
            "trawl_agent_plugin_calls_total",
            &[("plugin", plugin), ("stage", stage)],
        )
        .await?;
        assert!(calls >= 1.0, "{plugin} called at {stage}");
        let errors = metric_sum(&url, "trawl_agent_plugin_errors_total", &[("plugin", plugin)]).await?;
        assert_eq!(errors, 0.0, "{plugin} failed");
    }
    // Relabel and write plugins run only for new series; the filter plugin on every scrape.
    eventually("three filter calls", Duration::from_secs(10), || async {
        let n = metric_sum(&url, "trawl_agent_plugin_calls_total", &[("plugin", "values")]).await?;
        Ok((n >= 3.0).then_some(()))
    })
    .await?;
    let relabels = metric_sum(&url, "trawl_agent_plugin_calls_total", &[("plugin", "drop")]).await?;
    assert_eq!(
        relabels, 1.0,
        "the relabel stage ran once, on the first scrape's new series"
    );
    Ok(())
}

#[test]
fn check_plugin_prints_what_the_plugin_does() -> Result<()> {
    let redact = example_plugin("redact")?;
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("app.prom");
    std::fs::write(&input, APP)?;
    let run = |wasm: &std::path::Path, config: &str| {
        Command::new(workspace_bin("trawl-agent"))
            .arg("check-plugin")
            .arg(wasm)
            .args(["--plugin.config", config, "--input"])
            .arg(&input)
            .output()
    };

    let out = run(&redact, r#"{"hash": ["email"], "drop": ["user_id"], "salt": "s"}"#)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("# plugin redact "), "{stdout}");
    assert!(
        stdout.contains(r#"# modified: app_requests_total{email="alice@example.com",path="/api""#),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| !l.starts_with('#') && l.contains("alice@")),
        "{stdout}"
    );
    assert!(
        stdout.contains("# 7 series: 5 kept unchanged, 2 modified, 0 dropped"),
        "{stdout}"
    );

    // A config the plugin rejects, and a plugin that traps: exit 1 with the reason.
    let out = run(&redact, r#"{"hash": "email"}"#)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("FAILED"), "{stderr}");
    let out = run(&test_guest("hostile")?, r#"{"mode": "trap"}"#)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("trap=1"), "{stderr}");
    let out = run(&redact, "not json")?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    Ok(())
}

/// `wasm` with a custom section appended: a different file (new SHA-256) with the same code.
fn with_custom_section(mut wasm: Vec<u8>) -> Vec<u8> {
    let (name, payload) = (b"trawl-test".as_slice(), b"rebuilt".as_slice());
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128, "one-byte LEB128 sizes");
    wasm.extend_from_slice(&[0, size as u8, name.len() as u8]);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(payload);
    wasm
}

/// Swaps a filter plugin's file (a rebuilt copy) while 5 targets × 200 series are scraped every
/// second, then checks that every scrape's samples arrived: each series has as many samples as
/// its target's `up`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_loses_no_sample() -> Result<()> {
    const TARGETS: usize = 5;
    const SERIES: usize = 200;
    let original = std::fs::read(example_plugin("value-filter")?)?;
    let dir = tempfile::tempdir()?;
    let wasm = dir.path().join("filter.wasm");
    std::fs::write(&wasm, &original)?;
    let prom = Prometheus::receiver(dir.path(), "global:\n  scrape_interval: 1h\n").await?;
    let body: String = (0..SERIES).map(|i| format!("load_metric{{i=\"{i}\"}} {i}\n")).collect();
    let mut targets = Vec::new();
    for _ in 0..TARGETS {
        targets.push(format!(
            "'{}'",
            exposition_server(vec![("/metrics", body.clone(), TEXT_FORMAT)]).await?
        ));
    }
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nplugins:\n  - {{name: f, path: {}, config: {{drop_nan: true}}}}\n\
         scrape_configs:\n  - job_name: load\n    static_configs: [{{targets: [{}]}}]\n    plugins: [{{name: f, stage: filter}}]\n\
         remote_write:\n  - url: {}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s}}\n",
        wasm.display(),
        targets.join(","),
        prom.url
    );
    let (mut agent, url) = trawl_agent(dir.path(), &config).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Replace the file the way a deploy would: write beside it, then rename over it.
    let staged = dir.path().join("filter.wasm.new");
    std::fs::write(&staged, with_custom_section(original))?;
    std::fs::rename(&staged, &wasm)?;
    eventually("the plugin reloaded", Duration::from_secs(30), || async {
        let n = metric_sum(
            &url,
            "trawl_agent_plugin_reloads_total",
            &[("plugin", "f"), ("result", "success")],
        )
        .await?;
        Ok((n >= 1.0).then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let errors = metric_sum(&url, "trawl_agent_plugin_errors_total", &[("plugin", "f")]).await?;
    assert_eq!(errors, 0.0);
    agent.terminate(Duration::from_secs(30))?;

    // Both counts come from the same scrapes (same timestamps), so they match exactly; a failed
    // scrape (up = 0) delivers no samples and is not counted.
    let per_target = prom.query("sum_over_time(up{job=\"load\"}[10m])").await?;
    let series = prom
        .query("count by (instance) (count_over_time(load_metric[10m]))")
        .await?;
    let samples = prom
        .query("sum by (instance) (count_over_time(load_metric[10m]))")
        .await?;
    assert_eq!(per_target.len(), TARGETS);
    let by_instance = |v: &[Value]| -> BTreeMap<String, f64> {
        v.iter()
            .map(|r| {
                let instance = r["metric"]["instance"].as_str().unwrap_or_default().to_owned();
                (
                    instance,
                    r["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0),
                )
            })
            .collect()
    };
    let (scrapes, series, samples) = (by_instance(&per_target), by_instance(&series), by_instance(&samples));
    for (instance, scrapes) in &scrapes {
        assert!(*scrapes >= 6.0, "{instance}: only {scrapes} scrapes");
        assert_eq!(series.get(instance), Some(&(SERIES as f64)), "{instance}");
        if samples.get(instance) != Some(&(scrapes * SERIES as f64)) {
            bail!(
                "{instance}: {:?} samples for {scrapes} scrapes of {SERIES} series",
                samples.get(instance)
            );
        }
    }
    Ok(())
}
