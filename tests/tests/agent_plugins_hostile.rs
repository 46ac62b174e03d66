//! Hostile plugins against a running agent: each misbehaves in its own job, and the agent keeps
//! scraping, applies the plugin's `on_error` policy, and counts the failure by reason.
//!
//! ```text
//!  exposition server ──scrape 1s──► trawl-agent ───────────remote write──► Prometheus 2.42
//!   10 series × 4 jobs              filter plugins: loop (fail_open),        (receiver)
//!                                   grow (fail_closed), trap (fail_open),
//!                                   invalid (fail_closed)
//!                                   reload with a wasi:filesystem plugin → refused, still running
//! ```

use std::time::Duration;

use anyhow::{Result, bail};
use trawl_e2e::wasm::test_guest;
use trawl_e2e::{Prometheus, TEXT_FORMAT, eventually, exposition_server, http_client, metric_sum, trawl_agent};

const SERIES: usize = 10;

fn exposition() -> String {
    let mut body = String::from("# TYPE test_metric gauge\n");
    for i in 0..SERIES {
        body.push_str(&format!("test_metric{{i=\"{i}\"}} {i}\n"));
    }
    body
}

/// One job per hostile plugin, all scraping `target`.
fn config(target: &str, receiver: &str, hostile: &str, extra_plugin: &str) -> String {
    let plugins = [
        ("loop", r#"{mode: loop}"#, "fail_open", ""),
        ("grow", r#"{mode: grow}"#, "fail_closed", "    memory_limit: 8MiB\n"),
        ("trap", r#"{mode: trap}"#, "fail_open", ""),
        ("invalid", r#"{mode: invalid, kind: symbol}"#, "fail_closed", ""),
    ];
    let mut text = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nplugins:\n");
    for (name, config, on_error, extra) in plugins {
        text.push_str(&format!(
            "  - name: {name}\n    path: {hostile}\n    config: {config}\n    on_error: {on_error}\n    timeout: 50ms\n{extra}"
        ));
    }
    text.push_str(extra_plugin);
    text.push_str("scrape_configs:\n");
    for (name, ..) in plugins {
        text.push_str(&format!(
            "  - job_name: {name}\n    static_configs: [{{targets: ['{target}']}}]\n    plugins: [{{name: {name}, stage: filter}}]\n"
        ));
    }
    text.push_str(&format!(
        "remote_write:\n  - url: {receiver}/api/v1/write\n    queue_config: {{batch_send_deadline: 1s}}\n"
    ));
    text
}

/// Number of `test_metric` series of `job` in the receiver.
async fn series_of(prom: &Prometheus, job: &str) -> Result<usize> {
    Ok(prom.series(&format!("test_metric{{job=\"{job}\"}}")).await?.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_leave_the_agent_running_with_their_policy() -> Result<()> {
    let hostile = test_guest("hostile")?;
    let wasi_fs = test_guest("wasi-fs")?;
    let dir = tempfile::tempdir()?;
    let prom = Prometheus::receiver(dir.path(), "global:\n  scrape_interval: 1h\n").await?;
    let target = exposition_server(vec![("/metrics", exposition(), TEXT_FORMAT)]).await?;
    let text = config(&target, &prom.url, &hostile.display().to_string(), "");
    let (mut agent, url) = trawl_agent(dir.path(), &text).await?;

    // Every failure is counted under its reason, and the breaker eventually skips calls.
    for (plugin, reason) in [
        ("loop", "timeout"),
        ("grow", "memory"),
        ("trap", "trap"),
        ("invalid", "invalid_output"),
    ] {
        eventually(
            &format!("{plugin} counted as {reason}"),
            Duration::from_secs(30),
            || async {
                let n = metric_sum(
                    &url,
                    "trawl_agent_plugin_errors_total",
                    &[("plugin", plugin), ("reason", reason)],
                )
                .await?;
                if n < 1.0 {
                    bail!("{n} errors so far");
                }
                Ok(Some(()))
            },
        )
        .await?;
    }
    eventually("a fresh instance after a trap", Duration::from_secs(30), || async {
        let n = metric_sum(&url, "trawl_agent_plugin_instantiations_total", &[("plugin", "trap")]).await?;
        Ok((n >= 2.0).then_some(()))
    })
    .await?;

    // fail_open delivers the batch unchanged; fail_closed drops it. Scrapes go on (up = 1).
    eventually("policies applied in the receiver", Duration::from_secs(30), || async {
        let counts = (
            series_of(&prom, "loop").await?,
            series_of(&prom, "trap").await?,
            series_of(&prom, "grow").await?,
            series_of(&prom, "invalid").await?,
        );
        let up = prom.query("sum(up{job=~\"loop|grow|trap|invalid\"})").await?;
        let up = up
            .first()
            .and_then(|v| v["value"][1].as_str())
            .unwrap_or("0")
            .to_owned();
        if counts != (SERIES, SERIES, 0, 0) || up != "4" {
            bail!("series per job (loop, trap, grow, invalid) = {counts:?}, sum(up) = {up}");
        }
        Ok(Some(()))
    })
    .await?;

    // A component importing wasi:filesystem is refused at load: the reload fails, the running
    // config stays, the agent keeps serving.
    let with_fs = config(
        &target,
        &prom.url,
        &hostile.display().to_string(),
        &format!("  - name: fs\n    path: {}\n", wasi_fs.display()),
    );
    std::fs::write(dir.path().join("agent.yml"), with_fs)?;
    let reload = http_client().post(format!("{url}/-/reload")).send().await?;
    let status = reload.status();
    let body = reload.text().await?;
    assert!(
        !status.is_success(),
        "reload with a filesystem plugin must fail: {status} {body}"
    );
    assert!(body.contains("wasi:filesystem"), "the error names the import: {body}");
    assert_eq!(
        metric_sum(&url, "trawl_agent_config_last_reload_successful", &[]).await?,
        0.0
    );
    agent.check_running()?;
    let calls = metric_sum(&url, "trawl_agent_plugin_calls_total", &[("plugin", "loop")]).await?;
    eventually(
        "scraping goes on after the refused reload",
        Duration::from_secs(20),
        || async {
            let now = metric_sum(&url, "trawl_agent_plugin_calls_total", &[("plugin", "loop")]).await?;
            if now <= calls {
                bail!("no new calls: {now}");
            }
            Ok(Some(()))
        },
    )
    .await?;
    Ok(())
}
