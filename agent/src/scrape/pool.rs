//! The scrape pool of one job: turns discovered target groups into targets, keeps one scrape
//! loop per distinct target, starts new loops and stops vanished ones (with staleness markers).
//! As Prometheus `scrapePool.Sync`, keyed by the target hash.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tracing::{info, warn};
use trawl_model::labels::Labels;

use super::append::{AppendOptions, Appender};
use super::metrics::ScrapeMetrics;
use super::scrape_loop::{FirstScrape, ForcedError, LoopHandle, ScrapeLoop, Stop};
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
    /// The pool's config and discovered groups (shared with the pool), from which the dropped
    /// targets are derived when asked for: with Kubernetes discovery they are most of the
    /// discovered label sets, and keeping each with its `__meta_*` labels would cost more memory
    /// than everything else.
    discovered: Option<(Arc<ScrapeConfig>, Vec<Arc<TargetGroup>>)>,
}

impl PoolTargets {
    /// The pool's targets: `active` ones and the `groups` of `cfg` they came from.
    pub fn new(active: Vec<Arc<Target>>, cfg: Arc<ScrapeConfig>, groups: Vec<Arc<TargetGroup>>) -> Self {
        PoolTargets {
            active,
            discovered: Some((cfg, groups)),
        }
    }

    /// Discovered label sets (with the job's scrape labels) that relabeling dropped or that
    /// were invalid; relabels every discovered target again.
    pub fn dropped(&self) -> Vec<Labels> {
        let Some((cfg, groups)) = &self.discovered else {
            return Vec::new();
        };
        discovered(cfg, groups)
            .filter(|(labels, _)| !matches!(Target::populate(labels.clone(), cfg), Ok(Some(_))))
            .map(|(labels, _)| labels)
            .collect()
    }
}

/// Each target of `groups` as discovered: group labels, then the target's own, then the job's
/// scrape labels (as Prometheus lists them, for active and dropped targets alike), with the
/// group's source.
fn discovered<'a>(
    cfg: &'a ScrapeConfig,
    groups: &'a [Arc<TargetGroup>],
) -> impl Iterator<Item = (Labels, &'a str)> + 'a {
    groups.iter().flat_map(move |group| {
        group.targets.iter().map(move |target_labels| {
            let mut labels = group.labels.clone();
            for l in target_labels {
                labels.set(l.name.clone(), l.value.clone());
            }
            (with_scrape_labels(labels, cfg), group.source.as_str())
        })
    })
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
    groups: HashMap<String, Arc<TargetGroup>>,
    loops: HashMap<u64, (Arc<Target>, LoopHandle)>,
    shared: SharedPoolTargets,
    forced_error: ForcedError,
    /// When the pool started: targets found after its first interval are scraped promptly.
    started: tokio::time::Instant,
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
            started: tokio::time::Instant::now(),
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
                self.groups.insert(group.source.clone(), Arc::new(group));
            }
        }
        let groups: Vec<Arc<TargetGroup>> = self.groups.values().cloned().collect();
        let (targets, dropped) = self.populate(&groups);
        self.check_target_limit(targets.len());

        // Keep loops of unchanged targets; start the new ones.
        let mut loops = HashMap::with_capacity(targets.len());
        for target in targets {
            if loops.contains_key(&target.hash) {
                continue;
            }
            let entry = match self.loops.remove(&target.hash) {
                Some(existing) => {
                    existing.0.refresh_discovered_labels(target);
                    existing
                }
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
        self.metrics.set_targets(active.len(), dropped);
        *self.shared.write().unwrap_or_else(|e| e.into_inner()) = PoolTargets::new(active, self.cfg.clone(), groups);
    }

    /// Stops every loop; `how` says whether their series go stale.
    pub async fn stop(mut self, how: Stop) {
        let loops = std::mem::take(&mut self.loops);
        futures::future::join_all(loops.into_values().map(|(_, handle)| handle.stop(how))).await;
        self.metrics.remove();
    }

    /// Targets from all groups, and how many were dropped by relabeling or invalid.
    fn populate(&self, groups: &[Arc<TargetGroup>]) -> (Vec<Target>, usize) {
        let mut targets = Vec::new();
        let mut dropped = 0;
        for (labels, source) in discovered(&self.cfg, groups) {
            match Target::populate(labels, &self.cfg) {
                Ok(Some(target)) => targets.push(target),
                Ok(None) => dropped += 1,
                Err(error) => {
                    warn!(message = "Creating target failed.", job = %self.cfg.job_name, %source, %error);
                    dropped += 1;
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
        .spawn(self.offset_seed, self.first_scrape())
    }

    /// The pool's first targets keep their phase, so a start is spread over an interval; later
    /// ones (a new pod, a new file entry) are scraped at once.
    fn first_scrape(&self) -> FirstScrape {
        if self.started.elapsed() < self.cfg.scrape_interval {
            FirstScrape::AtPhase
        } else {
            FirstScrape::Prompt
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::registry::Registry;

    use super::*;
    use crate::config::Config;
    use crate::remote_write::RemoteWriteFamilies;
    use crate::scrape::ScrapeFamilies;

    fn pool() -> ScrapePool {
        let cfg = Config::from_yaml("scrape_configs:\n  - job_name: a\n    scrape_interval: 30s\n", "t.yml").unwrap();
        let mut registry = Registry::default();
        let families = ScrapeFamilies::register(&mut registry);
        let remote = RemoteWrite::new(
            &[],
            &Labels::new(),
            &RemoteWriteFamilies::register(&mut registry),
            &PluginSet::default(),
            std::path::Path::new("no-endpoints"),
        )
        .unwrap();
        ScrapePool::new(
            Arc::new(cfg.scrape_configs[0].clone()),
            remote,
            &PluginSet::default(),
            families.pool("a"),
            0,
        )
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn targets_found_after_the_first_interval_are_scraped_promptly() {
        let pool = pool();
        assert_eq!(pool.first_scrape(), FirstScrape::AtPhase);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(pool.first_scrape(), FirstScrape::AtPhase);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(pool.first_scrape(), FirstScrape::Prompt);
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_found_again_with_other_meta_labels_keeps_its_loop_and_shows_them() {
        let mut pool = pool();
        let group = |phase: &str| TargetGroup {
            source: "pod/ns/p".into(),
            targets: vec![Labels::from_pairs([
                ("__address__", "127.0.0.1:9"),
                ("__meta_phase", phase),
            ])],
            labels: Labels::new(),
        };
        pool.sync(vec![group("Pending")]).await;
        let first = pool.shared.read().unwrap().active[0].clone();
        pool.sync(vec![group("Running")]).await;
        let active = pool.shared.read().unwrap().active.clone();
        assert!(pool.shared.read().unwrap().dropped().is_empty());
        assert_eq!(active.len(), 1);
        assert!(Arc::ptr_eq(&first, &active[0]), "the loop and its target are kept");
        assert_eq!(active[0].discovered_labels().get("__meta_phase"), "Running");
        pool.stop(Stop::Quiet).await;
    }
}
