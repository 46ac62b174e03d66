//! Support for Trawl's end-to-end scenarios: real programs (Trawl's binaries, Prometheus,
//! node_exporter, vmagent) started as child processes on loopback, killed when dropped, and
//! small clients for what the scenarios assert on.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub mod ha;
pub mod kube_api;
pub mod wasm;

/// A free port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Path of a binary built from this workspace (`trawl-agent`, …), next to the test executable's
/// `deps/` directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Finds an installed program, failing with the package to install when it is missing.
pub fn system_bin(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
    {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} not found: install the Debian package {package} (README's test command does)");
}

/// A child process that is killed when dropped; its output goes to a log file.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args…` with stdout and stderr in `<dir>/<name>.log`.
    pub fn start(name: &str, program: &Path, args: &[String], dir: &Path) -> Result<Proc> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not exit within {timeout:?} after SIGTERM; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGKILL (a crash: nothing is flushed) and reaps the process.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Fails with the log if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}; log:\n{}", self.name, self.log());
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 250 ms until it returns `Ok(Some(_))` or `timeout` passes; the last
/// error or `what` is reported on timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `GET url` answers 200.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> Result<()> {
    let client = http_client();
    eventually(url, timeout, || async {
        Ok(client
            .get(url)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ()))
    })
    .await
}

/// A plain HTTP client for the scenarios (no TLS needed on loopback; reqwest still wants
/// rustls's ring provider installed).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A Prometheus 2.42 server started by a scenario.
pub struct Prometheus {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Prometheus {
    /// Starts Prometheus as a remote-write receiver with `config` (YAML) in `dir`.
    pub async fn receiver(dir: &Path, config: &str) -> Result<Prometheus> {
        let data = dir.join("prometheus-data");
        Prometheus::start(
            dir,
            "prometheus",
            config,
            &[
                format!("--storage.tsdb.path={}", data.display()),
                "--web.enable-remote-write-receiver".to_owned(),
            ],
        )
        .await
    }

    /// Starts Prometheus in agent mode (`--enable-feature=agent`): it scrapes and remote-writes
    /// as `config` says, keeping only its WAL.
    pub async fn agent(dir: &Path, config: &str) -> Result<Prometheus> {
        let data = dir.join("prometheus-agent-data");
        Prometheus::start(
            dir,
            "prometheus-agent",
            config,
            &[
                "--enable-feature=agent".to_owned(),
                format!("--storage.agent.path={}", data.display()),
            ],
        )
        .await
    }

    /// Starts a Prometheus server that only reads the blocks in `data` (no scraping).
    pub async fn reader(dir: &Path, data: &Path) -> Result<Prometheus> {
        Prometheus::start(
            dir,
            "prometheus-reader",
            "global:\n  scrape_interval: 1h\n",
            &[
                format!("--storage.tsdb.path={}", data.display()),
                "--storage.tsdb.retention.time=100y".to_owned(),
            ],
        )
        .await
    }

    /// Starts `prometheus` with its config in `<dir>/<name>.yml`, its log in `<dir>/<name>.log`.
    async fn start(dir: &Path, name: &str, config: &str, extra: &[String]) -> Result<Prometheus> {
        let port = free_port();
        let cfg = dir.join(format!("{name}.yml"));
        std::fs::write(&cfg, config)?;
        let mut args = vec![
            format!("--config.file={}", cfg.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_owned(),
        ];
        args.extend_from_slice(extra);
        let proc = Proc::start(name, &system_bin("prometheus", "prometheus"), &args, dir)?;
        let url = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{url}/-/ready"), Duration::from_secs(30)).await?;
        Ok(Prometheus { proc, url })
    }

    /// Runs an instant query and returns `data.result`.
    pub async fn query(&self, query: &str) -> Result<Vec<Value>> {
        self.api_list("query", ("query", query)).await
    }

    /// Every series matching `matcher` (e.g. `{job="node"}`), as label maps.
    pub async fn series(&self, matcher: &str) -> Result<Vec<Value>> {
        self.api_list("series", ("match[]", matcher)).await
    }

    /// `GET /api/v1/<endpoint>?<param>` and its list: `data.result`, or `data` itself.
    async fn api_list(&self, endpoint: &str, param: (&str, &str)) -> Result<Vec<Value>> {
        let url = format!("{}/api/v1/{endpoint}", self.url);
        let body: Value = http_client().get(&url).query(&[param]).send().await?.json().await?;
        if body["status"] != "success" {
            bail!("Prometheus API error: {body}");
        }
        let data = body.get("data").context("no data")?;
        let list = data.get("result").unwrap_or(data);
        list.as_array()
            .cloned()
            .with_context(|| format!("{url}: not a list: {list}"))
    }
}

/// A series' labels from a Prometheus API answer (`{"__name__": "up", …}`) as a sorted map.
pub fn label_map(metric: &Value) -> std::collections::BTreeMap<String, String> {
    metric
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts node_exporter on a free loopback port; returns it and its `host:port`.
pub async fn node_exporter(dir: &Path) -> Result<(Proc, String)> {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let args = vec![format!("--web.listen-address={address}")];
    let proc = Proc::start(
        "node_exporter",
        &system_bin("prometheus-node-exporter", "prometheus-node-exporter"),
        &args,
        dir,
    )?;
    wait_http_ok(&format!("http://{address}/metrics"), Duration::from_secs(30)).await?;
    Ok((proc, address))
}

/// Writes `config` (YAML) to `<dir>/agent.yml` and returns the `trawl-agent` flags that run it
/// on 127.0.0.1:`port` with `--storage.path=<dir>/agent-data` and `--log.level=<log_level>`.
pub fn agent_args(dir: &Path, config: &str, port: u16, log_level: &str) -> Result<Vec<String>> {
    let cfg = dir.join("agent.yml");
    std::fs::write(&cfg, config)?;
    Ok(vec![
        format!("--config.file={}", cfg.display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--storage.path={}", dir.join("agent-data").display()),
        format!("--log.level={log_level}"),
    ])
}

/// Starts `trawl-agent` with `config` (YAML) in `dir`; returns it and its API URL.
pub async fn trawl_agent(dir: &Path, config: &str) -> Result<(Proc, String)> {
    let port = free_port();
    let mut args = agent_args(dir, config, port, "debug")?;
    // The default is one thread; the end-to-end run covers the work-stealing runtime.
    args.push("--runtime.worker-threads=2".to_owned());
    let proc = Proc::start("trawl-agent", &workspace_bin("trawl-agent"), &args, dir)?;
    let url = format!("http://127.0.0.1:{port}");
    wait_http_ok(&format!("{url}/-/ready"), Duration::from_secs(30)).await?;
    Ok((proc, url))
}

/// The directory holding the shared exposition fixtures: `$TRAWL_FIXTURES`, or `shared/fixtures`
/// beside the repository.
pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TRAWL_FIXTURES") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// A `trawl-collector` started by a scenario.
pub struct Collector {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Collector {
    /// Starts `trawl-collector` with `--tsdb.path=tsdb` and `extra` flags; its log is
    /// `<dir>/<name>.log`. Returns once `/-/ready` answers 200 (the WAL is replayed).
    pub async fn start(dir: &Path, name: &str, tsdb: &Path, extra: &[String]) -> Result<Collector> {
        let port = free_port();
        let mut args = vec![
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--tsdb.path={}", tsdb.display()),
            "--log.level=debug".to_owned(),
        ];
        args.extend_from_slice(extra);
        let proc = Proc::start(name, &workspace_bin("trawl-collector"), &args, dir)?;
        let url = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{url}/-/ready"), Duration::from_secs(60)).await?;
        Ok(Collector { proc, url })
    }

    /// The remote-write URL, `http://127.0.0.1:PORT/api/v1/receive`.
    pub fn receive_url(&self) -> String {
        format!("{}/api/v1/receive", self.url)
    }

    /// The sum of every sample of the collector's own metric `name` (any labels) on `/metrics`.
    pub async fn metric(&self, name: &str) -> Result<f64> {
        metric_sum(&self.url, name, &[]).await
    }
}

/// The sum of the samples of metric `name` on `<base>/metrics` (a Trawl process) whose labels
/// include every `(name, value)` of `labels`.
pub async fn metric_sum(base: &str, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
    let body = http_client()
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(body
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// Starts vmagent scraping as `scrape_config` (YAML) says and remote-writing to `url` with the
/// extra flags `extra` (e.g. `-remoteWrite.label=sender=vmagent`).
pub async fn vmagent(dir: &Path, scrape_config: &str, url: &str, extra: &[String]) -> Result<Proc> {
    let port = free_port();
    let cfg = dir.join("vmagent.yml");
    std::fs::write(&cfg, scrape_config)?;
    let mut args = vec![
        format!("-promscrape.config={}", cfg.display()),
        format!("-remoteWrite.url={url}"),
        format!("-remoteWrite.tmpDataPath={}", dir.join("vmagent-data").display()),
        format!("-httpListenAddr=127.0.0.1:{port}"),
        "-loggerLevel=WARN".to_owned(),
    ];
    args.extend_from_slice(extra);
    let proc = Proc::start("vmagent", &system_bin("vmagent", "victoria-metrics"), &args, dir)?;
    wait_http_ok(&format!("http://127.0.0.1:{port}/health"), Duration::from_secs(30)).await?;
    Ok(proc)
}

/// Runs `promtool args…` and returns its stdout, failing with stderr when it exits non-zero.
pub fn promtool(args: &[&str]) -> Result<String> {
    let out = Command::new(system_bin("promtool", "prometheus")).args(args).output()?;
    if !out.status.success() {
        bail!(
            "promtool {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The Prometheus text format 0.0.4 content type.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The OpenMetrics 1.0 content type.
pub const OPENMETRICS_FORMAT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves fixed expositions on 127.0.0.1: each `(path, body, content type)` answers `GET path`.
/// Returns `host:port`; the server runs until the test's runtime stops.
pub async fn exposition_server(routes: Vec<(&'static str, String, &'static str)>) -> Result<String> {
    use axum::http::header;
    let mut app = axum::Router::new();
    for (path, body, content_type) in routes {
        app = app.route(
            path,
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

/// A `moto_server` (pip `moto[server]`): an S3 API on 127.0.0.1, killed when dropped.
pub struct Moto {
    /// The process.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Moto {
    /// Starts `moto_server` on a free port and creates `bucket` (moto accepts an unsigned
    /// `PUT /<bucket>`).
    pub async fn start(dir: &Path, bucket: &str) -> Result<Moto> {
        let port = free_port();
        let args = vec![
            "-H".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        let proc = Proc::start("moto", &system_bin("moto_server", "pip moto[server]"), &args, dir)?;
        let url = format!("http://127.0.0.1:{port}");
        wait_http_ok(&format!("{url}/"), Duration::from_secs(60)).await?;
        let created = http_client().put(format!("{url}/{bucket}")).send().await?;
        if !created.status().is_success() {
            bail!("create bucket {bucket}: {}", created.status());
        }
        Ok(Moto { proc, url })
    }
}
