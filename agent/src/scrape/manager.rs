//! The scrape manager: one scrape pool per job, each fed by its job's discoverers. On reload,
//! pools whose config is unchanged keep running untouched (their loops keep their caches);
//! changed pools are replaced, removed ones stop and mark their series stale.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::metrics::ScrapeFamilies;
use super::pool::{ScrapePool, SharedPoolTargets};
use super::scrape_loop::Stop;
use crate::config::ScrapeConfig;
use crate::discovery::{FileDiscovery, KubernetesRegistry, TargetGroup, static_groups};
use crate::plugin::PluginSet;
use crate::remote_write::RemoteWrite;

/// Every pool's targets by job name, as the web API reads them.
pub type SharedTargets = Arc<RwLock<BTreeMap<String, SharedPoolTargets>>>;

/// Discovery updates a pool task waits for at once; discoverers wait when it is full.
const UPDATE_BUFFER: usize = 16;

/// Runs the scrape pools of all jobs.
pub struct ScrapeManager {
    remote: RemoteWrite,
    plugins: PluginSet,
    families: ScrapeFamilies,
    kubernetes: KubernetesRegistry,
    offset_seed: u64,
    pools: HashMap<String, PoolTask>,
    targets: SharedTargets,
}

/// A running pool: its config, its discoverers and its task.
struct PoolTask {
    cfg: Arc<ScrapeConfig>,
    discovery: CancellationToken,
    stop: oneshot::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

impl PoolTask {
    async fn stop(self, how: Stop) {
        self.discovery.cancel();
        let _ = self.stop.send(how);
        let _ = self.task.await;
    }
}

impl ScrapeManager {
    /// A manager with no pools, whose jobs run their plugins from `plugins`. Jobs subscribe to
    /// `kubernetes` for their `kubernetes_sd_configs` (its watches outlive the manager, so a
    /// restart does not relist). `offset_seed` spreads scrape phases across agents; `targets`
    /// is where the pools publish their targets (kept across a restart of the manager).
    pub fn new(
        remote: RemoteWrite,
        plugins: PluginSet,
        families: ScrapeFamilies,
        kubernetes: KubernetesRegistry,
        offset_seed: u64,
        targets: SharedTargets,
    ) -> Self {
        ScrapeManager {
            remote,
            plugins,
            families,
            kubernetes,
            offset_seed,
            pools: HashMap::new(),
            targets,
        }
    }

    /// The targets of all pools, kept current as pools change.
    pub fn targets(&self) -> SharedTargets {
        self.targets.clone()
    }

    /// Makes the running pools match `configs`: unchanged jobs keep running, changed ones are
    /// restarted (their series continue, no staleness), removed ones stop with staleness markers.
    pub async fn apply(&mut self, configs: &[ScrapeConfig]) {
        let mut old = std::mem::take(&mut self.pools);
        for cfg in configs {
            if let Some(existing) = old.remove(&cfg.job_name) {
                if *existing.cfg == *cfg {
                    self.pools.insert(cfg.job_name.clone(), existing);
                    continue;
                }
                info!(message = "Scrape config changed; restarting its pool.", job = %cfg.job_name);
                existing.stop(Stop::Quiet).await;
            }
            if let Some(pool) = self.start_pool(Arc::new(cfg.clone())) {
                self.pools.insert(cfg.job_name.clone(), pool);
            }
        }
        for (job, pool) in old {
            info!(message = "Scrape config removed; stopping its pool.", %job);
            pool.stop(Stop::Removed).await;
        }
        let mut targets = self.targets.write().unwrap_or_else(|e| e.into_inner());
        targets.retain(|job, _| self.pools.contains_key(job));
    }

    /// Stops every pool; `how` says whether the series go stale.
    pub async fn stop(mut self, how: Stop) {
        let pools = std::mem::take(&mut self.pools);
        futures::future::join_all(pools.into_values().map(|p| p.stop(how))).await;
    }

    fn start_pool(&self, cfg: Arc<ScrapeConfig>) -> Option<PoolTask> {
        let metrics = self.families.pool(&cfg.job_name);
        let pool = match ScrapePool::new(
            cfg.clone(),
            self.remote.clone(),
            &self.plugins,
            metrics,
            self.offset_seed,
        ) {
            Ok(pool) => pool,
            Err(error) => {
                error!(message = "Cannot create scrape pool.", job = %cfg.job_name, %error);
                return None;
            }
        };
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cfg.job_name.clone(), pool.shared_targets());

        // Discoverers: the static groups once, each file_sd config as its own task, each
        // kubernetes_sd config through the shared registry (sources prefixed per config).
        let (tx, rx) = mpsc::channel(UPDATE_BUFFER);
        let discovery = CancellationToken::new();
        let initial = static_groups(&cfg);
        for file_sd in &cfg.file_sd_configs {
            tokio::spawn(FileDiscovery::new(file_sd).run(tx.clone(), discovery.child_token()));
        }
        for (i, kubernetes_sd) in cfg.kubernetes_sd_configs.iter().enumerate() {
            let prefix = format!("kubernetes_sd_configs[{i}]/");
            self.kubernetes
                .subscribe(kubernetes_sd, prefix, tx.clone(), discovery.child_token());
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run_pool(pool, initial, rx, stopped));
        Some(PoolTask {
            cfg,
            discovery,
            stop,
            task,
        })
    }
}

/// A pool's task: applies discovery updates until told to stop.
async fn run_pool(
    mut pool: ScrapePool,
    initial: Vec<TargetGroup>,
    mut updates: mpsc::Receiver<Vec<TargetGroup>>,
    mut stopped: oneshot::Receiver<Stop>,
) {
    pool.sync(initial).await;
    let how = loop {
        tokio::select! {
            how = &mut stopped => break how.unwrap_or(Stop::Quiet),
            update = updates.recv() => match update {
                Some(groups) => pool.sync(groups).await,
                None => break (&mut stopped).await.unwrap_or(Stop::Quiet),
            },
        }
    };
    pool.stop(how).await;
}
