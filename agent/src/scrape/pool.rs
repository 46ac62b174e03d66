//! The scrape pool of one job: turns discovered target groups into targets, keeps one scrape
//! loop per distinct target, starts new loops and stops vanished ones (with staleness markers).
//! As Prometheus `scrapePool.Sync`, keyed by the target hash.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tracing::{info, warn};
use trawl_model::labels::Labels;

use super::append::{AppendOptions, Appender};
use super::metrics::ScrapeMetrics;
use super::scrape_loop::{ForcedError, LoopHandle, ScrapeLoop, Stop};
use super::scraper::Scraper;
use super::target::{Target, with_scrape_labels};
use crate::config::ScrapeConfig;
use crate::discovery::TargetGroup;
use crate::http_client::HttpClientError;
use crate::plugin::PluginSet;
use crate::remote_write::RemoteWrite;

/// What the targets API shows of a pool.
#[derive(Debug, Default)]
pub struct PoolTargets {
    /// Targets with a running scrape loop.
    pub active: Vec<Arc<Target>>,
    /// Discovered label sets (with the job's scrape labels) that relabeling dropped or that
    /// were invalid.
    pub dropped: Vec<Labels>,
}

/// A pool's targets, shared with the web API.
pub type SharedPoolTargets = Arc<RwLock<PoolTargets>>;

/// The scrape pool of one job.
pub struct ScrapePool {
    cfg: Arc<ScrapeConfig>,
    scraper: Scraper,
    opts: AppendOptions,
    remote: RemoteWrite,
    metrics: ScrapeMetrics,
    offset_seed: u64,
    groups: HashMap<String, TargetGroup>,
    loops: HashMap<u64, (Arc<Target>, LoopHandle)>,
    shared: SharedPoolTargets,
    forced_error: ForcedError,
}

impl ScrapePool {
    /// A pool for `cfg` with no targets yet; builds the job's scraper (TLS files are read now).
    /// The job's plugins come from `plugins`.
    pub fn new(
        cfg: Arc<ScrapeConfig>,
        remote: RemoteWrite,
        plugins: &PluginSet,
        metrics: ScrapeMetrics,
        offset_seed: u64,
    ) -> Result<Self, HttpClientError> {
        let scraper = Scraper::new(&cfg)?;
        Ok(ScrapePool {
            opts: AppendOptions::new(&cfg, plugins),
            cfg,
            scraper,
            remote,
            metrics,
            offset_seed,
            groups: HashMap::new(),
            loops: HashMap::new(),
            shared: SharedPoolTargets::default(),
            forced_error: ForcedError::default(),
        })
    }

    /// The pool's targets, as the web API reads them.
    pub fn shared_targets(&self) -> SharedPoolTargets {
        self.shared.clone()
    }

    /// Takes updated target groups (an empty group removes its source), recomputes the targets,
    /// starts loops for new ones and stops loops of vanished ones with staleness markers.
    pub async fn sync(&mut self, groups: Vec<TargetGroup>) {
        for group in groups {
            if group.targets.is_empty() {
                self.groups.remove(&group.source);
            } else {
                self.groups.insert(group.source.clone(), group);
            }
        }
        let (targets, dropped) = self.populate();
        self.check_target_limit(targets.len());

        // Keep loops of unchanged targets; start the new ones.
        let mut loops = HashMap::with_capacity(targets.len());
        for target in targets {
            if loops.contains_key(&target.hash) {
                continue;
            }
            let entry = match self.loops.remove(&target.hash) {
                Some(existing) => existing,
                None => {
                    let target = Arc::new(target);
                    (target.clone(), self.start_loop(target))
                }
            };
            loops.insert(entry.0.hash, entry);
        }
        // Stop what vanished; their series go stale.
        let vanished = std::mem::replace(&mut self.loops, loops);
        futures::future::join_all(vanished.into_values().map(|(_, handle)| handle.stop(Stop::Removed))).await;

        let active: Vec<Arc<Target>> = self.loops.values().map(|(t, _)| t.clone()).collect();
        self.metrics.set_targets(active.len(), dropped.len());
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = PoolTargets { active, dropped };
    }

    /// Stops every loop; `how` says whether their series go stale.
    pub async fn stop(mut self, how: Stop) {
        let loops = std::mem::take(&mut self.loops);
        futures::future::join_all(loops.into_values().map(|(_, handle)| handle.stop(how))).await;
        self.metrics.remove();
    }

    /// Targets from all groups; invalid and relabel-dropped ones go to the dropped list.
    fn populate(&self) -> (Vec<Target>, Vec<Labels>) {
        let mut targets = Vec::new();
        let mut dropped = Vec::new();
        for group in self.groups.values() {
            for target_labels in &group.targets {
                let mut discovered = group.labels.clone();
                for l in target_labels {
                    discovered.set(l.name.clone(), l.value.clone());
                }
                // Dropped targets are listed with the scrape labels too, as Prometheus does.
                let discovered = with_scrape_labels(discovered, &self.cfg);
                match Target::populate(discovered.clone(), &self.cfg) {
                    Ok(Some(target)) => targets.push(target),
                    Ok(None) => dropped.push(discovered),
                    Err(error) => {
                        warn!(message = "Creating target failed.", job = %self.cfg.job_name, labels = %discovered, %error);
                        dropped.push(discovered);
                    }
                }
            }
        }
        (targets, dropped)
    }

    /// Over `target_limit`, every scrape of the pool fails with the same error (up = 0) until
    /// the count drops, as Prometheus `scrapePool.checkTargetLimit`.
    fn check_target_limit(&self, targets: usize) {
        let limit = self.cfg.target_limit;
        let error = (limit > 0 && targets > limit)
            .then(|| format!("target_limit exceeded (number of targets: {targets}, limit: {limit})"));
        if let Some(error) = &error {
            warn!(message = "Target limit exceeded; scrapes of this job fail.", job = %self.cfg.job_name, %error);
        }
        *self.forced_error.write().unwrap_or_else(|e| e.into_inner()) = error;
    }

    fn start_loop(&self, target: Arc<Target>) -> LoopHandle {
        info!(message = "Starting scrape loop.", job = %self.cfg.job_name, target = %target.url);
        let appender = Appender::new(target.labels.clone(), self.opts.clone(), self.remote.clone());
        ScrapeLoop::new(
            target,
            self.scraper.clone(),
            appender,
            self.metrics.clone(),
            self.forced_error.clone(),
        )
        .spawn(self.offset_seed)
    }
}
