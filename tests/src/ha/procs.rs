//! The processes of a fault scenario, each restartable with the same flags and data: collectors
//! inside their network namespaces and the agent in the root namespace. Every run logs to its
//! own file (`<name>.<run>.log`), so a restart keeps the log of the crash before it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::netns::Network;
use crate::{Proc, agent_args, free_port, wait_http_ok, workspace_bin};

/// The port every collector listens on inside its own namespace.
pub const COLLECTOR_PORT: u16 = 19291;

/// A program that can be stopped and started again with the same command line.
struct Restartable {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    proc: Option<Proc>,
    runs: u32,
}

impl Restartable {
    fn start(&mut self) -> Result<()> {
        if self.proc.is_some() {
            bail!("{} is already running", self.name);
        }
        self.runs += 1;
        let log_name = format!("{}.{}", self.name, self.runs);
        self.proc = Some(Proc::start(&log_name, &self.program, &self.args, &self.dir)?);
        Ok(())
    }

    fn running(&mut self) -> Result<&mut Proc> {
        let name = &self.name;
        self.proc.as_mut().with_context(|| format!("{name} is not running"))
    }

    /// SIGKILL: a crash.
    fn kill9(&mut self) -> Result<()> {
        self.running()?.kill()?;
        self.proc = None;
        Ok(())
    }

    /// SIGTERM and wait for the exit; returns the exit code.
    fn terminate(&mut self, timeout: Duration) -> Result<i32> {
        let code = self.running()?.terminate(timeout)?;
        self.proc = None;
        Ok(code)
    }

    fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Every run's log, oldest first, each under a header line.
    fn logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let path = self.dir.join(format!("{}.{run}.log", self.name));
                format!(
                    "==> {} <==\n{}",
                    path.display(),
                    std::fs::read_to_string(&path).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How the collectors of a scenario run.
#[derive(Debug, Clone)]
pub struct CollectorSpec {
    /// `--receive.hashrings-file` and `--receive.replication-factor`; `None` runs without a
    /// hashring (each collector stores what it receives).
    pub replication: Option<(PathBuf, usize)>,
    /// `--tsdb.block-duration`, a Prometheus duration (`2m`).
    pub block_duration: String,
    /// The shared bucket's objstore.yml (`--objstore.config-file`).
    pub objstore: PathBuf,
}

/// `trawl-collector` number `index` in namespace `index` of a [`Network`], with
/// `--label=replica="c<index>"`.
pub struct HaCollector {
    index: usize,
    endpoint: String,
    proc: Restartable,
}

impl HaCollector {
    /// Starts collector `index` in `net`'s namespace `index`, storing under `<dir>/c<index>`,
    /// and waits for `/-/ready`.
    pub async fn start(net: &Network, index: usize, spec: &CollectorSpec, dir: &Path) -> Result<HaCollector> {
        let endpoint = format!("{}:{COLLECTOR_PORT}", net.address(index));
        let mut collector_args = vec![
            format!("--web.listen-address=0.0.0.0:{COLLECTOR_PORT}"),
            format!("--tsdb.path={}", dir.join(format!("c{index}")).display()),
            format!("--tsdb.block-duration={}", spec.block_duration),
            format!("--objstore.config-file={}", spec.objstore.display()),
            format!("--label=replica=\"c{index}\""),
            "--log.level=info".to_owned(),
        ];
        if let Some((hashrings, rf)) = &spec.replication {
            collector_args.extend([
                format!("--receive.hashrings-file={}", hashrings.display()),
                format!("--receive.local-endpoint={endpoint}"),
                format!("--receive.replication-factor={rf}"),
            ]);
        }
        let bin = workspace_bin("trawl-collector");
        let (program, args) = net.exec_in(index, &bin.display().to_string(), &collector_args);
        let mut collector = HaCollector {
            index,
            endpoint,
            proc: Restartable {
                name: format!("collector-c{index}"),
                program: PathBuf::from(program),
                args,
                dir: dir.to_owned(),
                proc: None,
                runs: 0,
            },
        };
        collector.restart().await?;
        Ok(collector)
    }

    /// The collector's number (and namespace index).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its hashring endpoint, `10.a.b.c:19291`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `http://10.a.b.c:19291`.
    pub fn url(&self) -> String {
        format!("http://{}", self.endpoint)
    }

    /// `http://10.a.b.c:19291/api/v1/receive`.
    pub fn receive_url(&self) -> String {
        format!("{}/api/v1/receive", self.url())
    }

    /// Starts it again (same flags, same data) and waits for `/-/ready` (WAL replayed).
    pub async fn restart(&mut self) -> Result<()> {
        self.proc.start()?;
        if let Err(e) = wait_http_ok(&format!("{}/-/ready", self.url()), Duration::from_secs(120)).await {
            bail!("{e:#}; logs:\n{}", self.proc.logs());
        }
        Ok(())
    }

    /// `kill -9`.
    pub fn kill9(&mut self) -> Result<()> {
        self.proc.kill9()
    }

    /// SIGTERM (flush the head into blocks, upload them) and wait for the exit; fails unless it
    /// exits 0 within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Result<()> {
        let code = self.proc.terminate(timeout)?;
        if code != 0 {
            bail!("collector c{} exited {code}; logs:\n{}", self.index, self.proc.logs());
        }
        Ok(())
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Every run's log.
    pub fn logs(&self) -> String {
        self.proc.logs()
    }
}

/// `trawl-agent` in the root namespace, with a fixed port, config and `--storage.path` across
/// restarts.
pub struct HaAgent {
    url: String,
    proc: Restartable,
}

impl HaAgent {
    /// Writes `config` to `<dir>/agent.yml`, starts the agent with `--storage.path=<dir>/agent-data`
    /// and waits for `/-/ready`.
    pub async fn start(dir: &Path, config: &str) -> Result<HaAgent> {
        let port = free_port();
        let args = agent_args(dir, config, port, "info")?;
        let mut agent = HaAgent {
            url: format!("http://127.0.0.1:{port}"),
            proc: Restartable {
                name: "agent".to_owned(),
                program: workspace_bin("trawl-agent"),
                args,
                dir: dir.to_owned(),
                proc: None,
                runs: 0,
            },
        };
        agent.restart().await?;
        Ok(agent)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts it again and waits for `/-/ready`.
    pub async fn restart(&mut self) -> Result<()> {
        self.proc.start()?;
        if let Err(e) = wait_http_ok(&format!("{}/-/ready", self.url), Duration::from_secs(60)).await {
            bail!("{e:#}; logs:\n{}", self.proc.logs());
        }
        Ok(())
    }

    /// `kill -9`.
    pub fn kill9(&mut self) -> Result<()> {
        self.proc.kill9()
    }

    /// Replaces its config file with `config` and reloads it (`POST /-/reload`); fails unless
    /// the reload answers 200.
    pub async fn reload(&self, config: &str) -> Result<()> {
        std::fs::write(self.config_path(), config)?;
        let response = crate::http_client()
            .post(format!("{}/-/reload", self.url))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "reload: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    fn config_path(&self) -> PathBuf {
        self.proc.dir.join("agent.yml")
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<i32> {
        self.proc.terminate(timeout)
    }

    /// Every run's log.
    pub fn logs(&self) -> String {
        self.proc.logs()
    }
}

/// CPU time (user + system) `pid` has used, in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = stat_cpu_ticks(&stat).with_context(|| format!("/proc/{pid}/stat: {stat}"))?;
    // USER_HZ is 100 on every Linux architecture Trawl supports.
    Ok(ticks as f64 / 100.0)
}

/// `utime + stime` (fields 14 and 15, clock ticks) of a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may hold spaces and parentheses: fields are counted
/// after its last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_stat_lines() {
        let line = "4242 (trawl-collector) S 1 4242 4242 0 -1 4194560 2000 0 0 0 1234 567 0 0 20 0 8 0 100 0 0";
        assert_eq!(stat_cpu_ticks(line), Some(1801));
        // A hostile command name with spaces and parentheses.
        let line = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 0 0";
        assert_eq!(stat_cpu_ticks(line), Some(15));
        for bad in ["", "7 (x", "7 (x) S 1 2", "7 (x) S 1 7 7 0 -1 0 0 0 0 0 ten 5 0"] {
            assert_eq!(stat_cpu_ticks(bad), None, "{bad}");
        }
    }

    #[test]
    fn own_cpu_time_is_read() -> Result<()> {
        let before = cpu_seconds(std::process::id())?;
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(std::process::id())? >= before);
        assert!(cpu_seconds(u32::MAX).is_err());
        Ok(())
    }
}
