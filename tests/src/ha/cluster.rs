//! A fault scenario's fleet and its final accounting. [`Cluster::start`] builds the picture
//!
//! ```text
//!  synthetic targets ×N ─┐                      ┌─► c0 (netns 0) ─┐
//!  node_exporter ◄─proxy ┼─◄ scrape ─ agent ────┼─► c1 (netns 1) ─┼─► filesystem bucket
//!                        │  (root ns, disk queue)└─► c2 (netns 2) ─┘   (shared)
//! ```
//!
//! (every collector forwards to its peers over the bridge as the hashring says); the scenario
//! then injects its faults through the public fields, and [`Cluster::finish`] stops the targets,
//! lets the agent drain, stops everything cleanly, runs `bucket verify` and compares what the
//! targets served with what the bucket holds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::config::{Job, agent_yml, hashrings_json, objstore_yml};
use super::netns::Network;
use super::procs::{CollectorSpec, HaAgent, HaCollector};
use super::target::{CountingTarget, SYNTHETIC_METRIC, synthetic_series_label};
use super::verify::{VerifyReport, bucket_verify};
use crate::{Proc, eventually, metric_sum, node_exporter};

/// The agent's counter of samples acknowledged by a collector.
pub const SENT_METRIC: &str = "trawl_agent_remote_write_samples_total";
/// The agent's gauge of samples not yet acknowledged.
pub const PENDING_METRIC: &str = "trawl_agent_remote_write_samples_pending";
/// The agent's newest delivered sample time, seconds since the epoch.
pub const HIGHEST_SENT_METRIC: &str = "trawl_agent_remote_write_highest_sent_timestamp_seconds";
/// The agent's failover counter (issue 6).
pub const FAILOVERS_METRIC: &str = "trawl_agent_remote_write_failovers_total";

/// The agent's `max_disk_usage`: far more than any scenario queues.
const AGENT_DISK_BUDGET: u64 = 256 << 20;

/// node_exporter series present in every successful scrape: each must hold exactly as many
/// samples as scrapes the proxy served.
pub const NODE_CONSTANT_SERIES: [&str; 6] = [
    "node_exporter_build_info",
    "node_time_seconds",
    "node_boot_time_seconds",
    "node_load1",
    "node_memory_MemTotal_bytes",
    "go_goroutines",
];

/// What a scenario runs.
#[derive(Debug, Clone)]
pub struct ScenarioSpec {
    /// Short name, used in printed figures.
    pub name: &'static str,
    /// `--receive.replication-factor` of every collector; `None` runs them without a hashring
    /// (each stores what the agent sent it: failover without replication).
    pub replication_factor: Option<usize>,
    /// `--tsdb.block-duration` (the head refuses samples older than half of it behind its
    /// newest: longer than any outage the scenario makes).
    pub block_duration: &'static str,
    /// The hashring's `algorithm` field (`None`: the collectors' default, hashmod).
    pub algorithm: Option<&'static str>,
    /// Synthetic targets, each scraped every second.
    pub synthetic_targets: usize,
    /// Series per synthetic target.
    pub series_per_target: usize,
}

/// The agent's `samples_total` sampled every 100 ms, from which failover times are read.
#[derive(Debug, Clone, Default)]
pub struct SendProbe {
    points: Arc<Mutex<Vec<(Instant, f64)>>>,
}

impl SendProbe {
    /// Starts polling `<agent>/metrics` until the runtime stops.
    fn start(agent: String) -> SendProbe {
        let probe = SendProbe::default();
        let points = probe.points.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(v) = metric_sum(&agent, SENT_METRIC, &[]).await {
                    points
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((Instant::now(), v));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        probe
    }

    /// Time from `fault` to the first increase of the agent's acknowledged samples counter
    /// after it (the first 2xx after the fault), waiting up to `timeout`. The baseline is the
    /// first reading taken at or after `fault`, so a batch acknowledged just before is not
    /// counted; `None` on timeout.
    pub async fn first_ack_after(&self, fault: Instant, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
                let mut after = points.iter().filter(|(t, _)| *t >= fault);
                if let Some(&(_, base)) = after.next()
                    && let Some((t, _)) = after.find(|(_, v)| *v > base)
                {
                    return Some(t.duration_since(fault));
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Longest time within `[from, until]` in which the acknowledged samples counter did not
    /// rise, counted from `from` or a rise to the next rise or `until`: the longest wait of the
    /// agent's data for a collector in that window, batching included (100 ms resolution).
    pub fn longest_stall(&self, from: Instant, until: Instant) -> Duration {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        let mut previous = points.iter().take_while(|(t, _)| *t < from).last().map(|&(_, v)| v);
        let (mut last_rise, mut longest) = (from, Duration::ZERO);
        for &(t, v) in points.iter().filter(|(t, _)| (from..=until).contains(t)) {
            if previous.is_some_and(|p| v > p) {
                longest = longest.max(t.duration_since(last_rise));
                last_rise = t;
            }
            previous = Some(v);
        }
        longest.max(until.saturating_duration_since(last_rise))
    }
}

/// The fleet of one scenario; everything is stopped and the namespaces removed when dropped.
/// The working directory is kept (and its path printed) unless [`Cluster::finish`] succeeded.
pub struct Cluster {
    /// The scenario.
    pub spec: ScenarioSpec,
    /// Collectors `c0`, `c1`, `c2`; the agent lists them in this order.
    pub collectors: Vec<HaCollector>,
    /// The agent.
    pub agent: HaAgent,
    /// The synthetic targets.
    pub synthetic: Vec<CountingTarget>,
    /// The counting proxy in front of node_exporter (job `node`).
    pub node: CountingTarget,
    /// Polls the agent's acknowledged samples.
    pub probe: SendProbe,
    /// The namespaces (dropped after the processes above: fields drop in order).
    pub net: Network,
    node_exporter: Proc,
    objstore: PathBuf,
    /// The agent's config without scrape jobs, for the final drain.
    idle_agent_config: String,
    /// `(after, until)` windows in which a scrape may be lost: the agent was `kill -9`ed right
    /// after it (the scrape was served but maybe not yet written to the agent's disk).
    agent_kills: Vec<Instant>,
    dir: Option<tempfile::TempDir>,
    keep_dir: bool,
}

impl Cluster {
    /// Builds and starts the fleet, and waits until the agent has had a first batch
    /// acknowledged.
    pub async fn start(spec: ScenarioSpec) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("trawl-ha-{}-", spec.name))
            .tempdir()?;
        let path = dir.path().to_owned();
        let bucket = path.join("bucket");
        std::fs::create_dir_all(&bucket)?;
        let objstore = path.join("objstore.yml");
        std::fs::write(&objstore, objstore_yml(&bucket))?;
        let net = Network::create(3)?;
        let endpoints: Vec<String> = (0..net.size())
            .map(|i| format!("{}:{}", net.address(i), super::procs::COLLECTOR_PORT))
            .collect();
        let hashrings = path.join("hashrings.json");
        std::fs::write(&hashrings, hashrings_json(&endpoints, spec.algorithm))?;
        let collector_spec = CollectorSpec {
            replication: spec.replication_factor.map(|rf| (hashrings, rf)),
            block_duration: spec.block_duration.to_owned(),
            objstore: objstore.clone(),
        };
        let mut collectors = Vec::new();
        for i in 0..net.size() {
            collectors.push(HaCollector::start(&net, i, &collector_spec, &path).await?);
        }
        let (node_exporter, node_address) = node_exporter(&path).await?;
        let node = CountingTarget::proxy(&format!("http://{node_address}/metrics")).await?;
        let mut synthetic = Vec::new();
        for _ in 0..spec.synthetic_targets {
            synthetic.push(CountingTarget::synthetic(spec.series_per_target).await?);
        }
        let jobs = [
            Job {
                name: "synthetic".to_owned(),
                targets: synthetic.iter().map(|t| t.address().to_owned()).collect(),
                interval_s: 1,
            },
            Job {
                name: "node".to_owned(),
                targets: vec![node.address().to_owned()],
                interval_s: 2,
            },
        ];
        let urls: Vec<String> = collectors.iter().map(HaCollector::receive_url).collect();
        let agent = HaAgent::start(&path, &agent_yml(&jobs, &urls, AGENT_DISK_BUDGET)).await?;
        let probe = SendProbe::start(agent.url().to_owned());
        let cluster = Cluster {
            spec,
            collectors,
            agent,
            synthetic,
            node,
            probe,
            net,
            node_exporter,
            objstore,
            idle_agent_config: agent_yml(&[], &urls, AGENT_DISK_BUDGET),
            agent_kills: Vec::new(),
            dir: Some(dir),
            keep_dir: true,
        };
        let agent_url = cluster.agent.url().to_owned();
        eventually("a first acknowledged batch", Duration::from_secs(60), || async {
            Ok((metric_sum(&agent_url, SENT_METRIC, &[]).await? > 0.0).then_some(()))
        })
        .await
        .with_context(|| format!("agent logs:\n{}", cluster.agent.logs()))?;
        Ok(cluster)
    }

    /// `kill -9` of the agent, remembering when (scrapes served just before may be lost).
    pub fn kill9_agent(&mut self) -> Result<()> {
        self.agent_kills.push(Instant::now());
        self.agent.kill9()
    }

    /// A metric of the agent (sum over label sets), 0 when it cannot be read.
    pub async fn agent_metric(&self, name: &str) -> f64 {
        metric_sum(self.agent.url(), name, &[]).await.unwrap_or(0.0)
    }

    /// Waits until the agent has delivered a sample scraped at or after `since` (its backlog
    /// from before is sent, the queue being in order); returns how long that took.
    pub async fn wait_caught_up(&self, since: SystemTime, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let since_s = since.duration_since(UNIX_EPOCH)?.as_secs_f64();
        let url = self.agent.url().to_owned();
        eventually("the agent to catch up", timeout, || async {
            let newest = metric_sum(&url, HIGHEST_SENT_METRIC, &[]).await?;
            Ok((newest >= since_s).then_some(()))
        })
        .await
        .with_context(|| format!("agent logs (tail):\n{}", tail(&self.agent.logs(), 40)))?;
        Ok(start.elapsed())
    }

    /// Waits until the agent, which no longer scrapes, has nothing pending and its acknowledged
    /// count stood still for 3 s; returns how long that took.
    async fn wait_drained(&self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let url = self.agent.url().to_owned();
        let last = Arc::new(Mutex::new((f64::NAN, Instant::now())));
        eventually("the agent's queue to drain", timeout, || {
            let (url, last) = (url.clone(), last.clone());
            async move {
                let pending = metric_sum(&url, PENDING_METRIC, &[]).await?;
                let sent = metric_sum(&url, SENT_METRIC, &[]).await?;
                let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
                if sent != last.0 {
                    *last = (sent, Instant::now());
                }
                Ok((pending == 0.0 && last.1.elapsed() >= Duration::from_secs(3)).then_some(()))
            }
        })
        .await
        .with_context(|| format!("agent logs (tail):\n{}", tail(&self.agent.logs(), 40)))?;
        Ok(start.elapsed())
    }

    /// Ends the scenario: freezes the targets (nothing served from then on), lets the agent
    /// drain, stops the agent and then each collector with SIGTERM (they flush and upload), runs
    /// `bucket verify` and accounts every served sample. Fails on any step; the figures are
    /// printed before the caller asserts on them.
    pub async fn finish(mut self) -> Result<Outcome> {
        for target in self.synthetic.iter().chain([&self.node]) {
            target.freeze();
        }
        // A scrape already past the target when it froze still has to reach the agent's queue;
        // then the agent stops scraping (failed scrapes would keep adding `up` samples) and
        // sends what it holds.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.agent.reload(&self.idle_agent_config).await?;
        // A pending count that never reaches 0 is reported, not fatal: the bucket's counts
        // decide whether anything was lost.
        if let Err(e) = self.wait_drained(Duration::from_secs(60)).await {
            eprintln!("[{}] warning: {e:#}", self.spec.name);
        }
        let pending_at_stop = self.agent_metric(PENDING_METRIC).await + 0.0;
        let code = self.agent.terminate(Duration::from_secs(60))?;
        if code != 0 {
            bail!("agent exited {code}; logs:\n{}", tail(&self.agent.logs(), 60));
        }
        for collector in &mut self.collectors {
            collector.terminate(Duration::from_secs(120))?;
        }
        let report = bucket_verify(&self.objstore, &["replica"])?;
        let mut outcome = self.account(&report)?;
        outcome.agent_pending_at_stop = pending_at_stop;
        outcome.print(&self.spec);
        self.keep_dir = false;
        Ok(outcome)
    }

    /// Compares the targets' served scrapes with the bucket's series.
    fn account(&self, report: &VerifyReport) -> Result<Outcome> {
        let mut targets = Vec::new();
        for target in &self.synthetic {
            let served = target.served() as u64;
            let allowed = self
                .agent_kills
                .iter()
                .map(|&k| target.served_between(k - Duration::from_secs(1), k) as u64)
                .sum();
            let mut found = Vec::new();
            for k in 0..target.series() {
                let label = synthetic_series_label(k);
                let matchers = [
                    ("__name__", SYNTHETIC_METRIC),
                    ("instance", target.address()),
                    ("series", label.as_str()),
                ];
                let series: Vec<_> = report.matching(&matchers).collect();
                if series.len() > 1 {
                    bail!(
                        "series {label} of {} is split into {} identities (replica label not removed?): {:?}",
                        target.address(),
                        series.len(),
                        series.iter().map(|s| &s.labels).collect::<Vec<_>>()
                    );
                }
                found.push(series.first().map_or(0, |s| s.samples));
            }
            targets.push(TargetTally {
                instance: target.address().to_owned(),
                served,
                allowed_loss: allowed,
                found,
            });
        }
        let node_served = self.node.served() as u64;
        let node_allowed: u64 = self
            .agent_kills
            .iter()
            .map(|&k| self.node.served_between(k - Duration::from_secs(1), k) as u64)
            .sum();
        let mut node = Vec::new();
        for name in NODE_CONSTANT_SERIES {
            let samples = report
                .matching(&[("__name__", name), ("job", "node")])
                .map(|s| s.samples)
                .collect::<Vec<_>>();
            node.push((name.to_owned(), samples));
        }
        let node_up = report
            .matching(&[("__name__", "up"), ("job", "node")])
            .map(|s| s.samples)
            .sum();
        let node_excess = report
            .series
            .iter()
            .filter(|s| s.labels.get("job").map(String::as_str) == Some("node") && s.samples > node_served)
            // `up` and `scrape_*` also get a sample for each failed scrape.
            .filter(|s| {
                s.labels
                    .get("__name__")
                    .is_some_and(|n| n != "up" && !n.starts_with("scrape_"))
            })
            .map(|s| format!("{:?}: {}", s.labels, s.samples))
            .collect();
        Ok(Outcome {
            targets,
            node_served,
            node_allowed_loss: node_allowed,
            node_constant: node,
            node_up,
            node_excess,
            blocks: report.blocks.len(),
            replicas: report
                .blocks
                .iter()
                .filter_map(|b| b.labels.get("replica").cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            block_samples: report.block_samples(),
            problems: report.problem_list(),
            agent_pending_at_stop: 0.0,
        })
    }

    /// The scenario's working directory (logs, data, bucket).
    pub fn dir(&self) -> PathBuf {
        self.dir.as_ref().map(|d| d.path().to_owned()).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.node_exporter.kill();
        if self.keep_dir
            && let Some(dir) = self.dir.take()
        {
            eprintln!("{}: scenario files kept in {}", self.spec.name, dir.keep().display());
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One synthetic target's account.
#[derive(Debug, Clone)]
pub struct TargetTally {
    /// `127.0.0.1:PORT`.
    pub instance: String,
    /// Scrapes served (each series got one sample per scrape).
    pub served: u64,
    /// Scrapes served in the second before an agent `kill -9`: these may be lost.
    pub allowed_loss: u64,
    /// Samples found in the bucket per series (deduplicated across replicas).
    pub found: Vec<u64>,
}

/// What a scenario's bucket holds against what was served.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Per synthetic target.
    pub targets: Vec<TargetTally>,
    /// Scrapes of node_exporter served through the proxy.
    pub node_served: u64,
    /// node_exporter scrapes served in the second before an agent `kill -9`.
    pub node_allowed_loss: u64,
    /// Samples of each constant node_exporter series (one entry per identity found).
    pub node_constant: Vec<(String, Vec<u64>)>,
    /// Samples of `up{job="node"}` (includes failed scrapes, up = 0).
    pub node_up: u64,
    /// node_exporter series with more samples than scrapes served.
    pub node_excess: Vec<String>,
    /// Blocks in the bucket.
    pub blocks: usize,
    /// Distinct replica labels among the blocks.
    pub replicas: usize,
    /// Samples in all blocks, replicas counted separately.
    pub block_samples: u64,
    /// Problems bucket verify found.
    pub problems: Vec<String>,
    /// The agent's pending samples when it was stopped (0 once drained).
    pub agent_pending_at_stop: f64,
}

impl Outcome {
    /// Samples the synthetic targets served.
    pub fn served_samples(&self) -> u64 {
        self.targets.iter().map(|t| t.served * t.found.len() as u64).sum()
    }

    /// Synthetic samples found in the bucket.
    pub fn found_samples(&self) -> u64 {
        self.targets.iter().flat_map(|t| &t.found).sum()
    }

    /// Synthetic samples missing from the bucket (served, not found).
    pub fn missing_samples(&self) -> u64 {
        self.targets
            .iter()
            .flat_map(|t| t.found.iter().map(|&f| t.served.saturating_sub(f)))
            .sum()
    }

    /// Synthetic samples the agent's `kill -9` may have lost (served in the second before).
    pub fn allowed_loss_samples(&self) -> u64 {
        self.targets.iter().map(|t| t.allowed_loss * t.found.len() as u64).sum()
    }

    fn print(&self, spec: &ScenarioSpec) {
        println!(
            "[{}] RF={} block={}: synthetic samples served {}, found in bucket {}, missing {} \
             (may be lost to agent kill -9: {}); {} blocks from {} replicas, {} samples in blocks; \
             node_exporter scrapes served {}, up samples {}, constant series {:?}; problems {}; \
             agent pending at stop {}",
            spec.name,
            spec.replication_factor
                .map_or("none (no hashring)".to_owned(), |rf| rf.to_string()),
            spec.block_duration,
            self.served_samples(),
            self.found_samples(),
            self.missing_samples(),
            self.allowed_loss_samples(),
            self.blocks,
            self.replicas,
            self.block_samples,
            self.node_served,
            self.node_up,
            self.node_constant,
            self.problems.len(),
            self.agent_pending_at_stop,
        );
    }

    /// Asserts that nothing was lost or invented: every synthetic series holds every served
    /// sample (less at most the scrapes served in the second before an agent `kill -9`) and no
    /// more; each constant node_exporter series holds exactly as many samples as node_exporter
    /// scrapes served (same allowance); no node_exporter series holds more; the bucket has no
    /// problem. Returns every violation.
    pub fn check(&self) -> Result<()> {
        let mut errors = Vec::new();
        if !self.problems.is_empty() {
            errors.push(format!("bucket verify found problems: {:?}", self.problems));
        }
        for t in &self.targets {
            for (k, &found) in t.found.iter().enumerate() {
                if found > t.served {
                    errors.push(format!(
                        "{} series {k}: {found} samples > {} served",
                        t.instance, t.served
                    ));
                } else if t.served - found > t.allowed_loss {
                    errors.push(format!(
                        "{} series {k}: {} of {} served samples missing",
                        t.instance,
                        t.served - found,
                        t.served
                    ));
                }
            }
            if t.served == 0 {
                errors.push(format!("{} was never scraped", t.instance));
            }
        }
        for (name, samples) in &self.node_constant {
            match samples.as_slice() {
                [n] if *n <= self.node_served && self.node_served - n <= self.node_allowed_loss => {}
                [n] => errors.push(format!(
                    "node_exporter {name}: {n} samples, {} scrapes served",
                    self.node_served
                )),
                other => errors.push(format!("node_exporter {name}: {} identities {other:?}", other.len())),
            }
        }
        if self.node_up < self.node_served.saturating_sub(self.node_allowed_loss) {
            errors.push(format!(
                "up{{job=\"node\"}}: {} samples < {} scrapes served",
                self.node_up, self.node_served
            ));
        }
        if !self.node_excess.is_empty() {
            errors.push(format!(
                "node_exporter series with more samples than scrapes: {:?}",
                self.node_excess
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("{}", errors.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_stall_runs_between_rises_and_window_edges() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let probe = SendProbe::default();
        // Rises at 100, 1400 and 1500 ms; flat from 1500 on.
        let readings = [(0, 1.0), (100, 2.0), (600, 2.0), (1400, 3.0), (1500, 4.0), (3000, 4.0)];
        probe.points.lock().unwrap().extend(readings.map(|(ms, v)| (at(ms), v)));

        assert_eq!(probe.longest_stall(at(0), at(2000)), Duration::from_millis(1300));
        assert_eq!(
            probe.longest_stall(at(0), at(4000)),
            Duration::from_millis(2500),
            "until the window's end"
        );
        assert_eq!(
            probe.longest_stall(at(500), at(1450)),
            Duration::from_millis(900),
            "from the window's start"
        );
        assert_eq!(
            SendProbe::default().longest_stall(at(0), at(700)),
            Duration::from_millis(700),
            "no readings"
        );
    }
}
