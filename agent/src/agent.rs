//! The running agent: loads the config, starts remote write, the scrape manager and the web API,
//! reloads on SIGHUP, `POST /-/reload` or a change of the config file (a bad config keeps the
//! old one), and shuts down flushing the queues.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::discovery::KubernetesRegistry;
use crate::plugin::{PluginError, PluginHost, PluginSet, PluginWatcher};
use crate::remote_write::{RemoteWrite, RemoteWriteError, RemoteWriteFamilies};
use crate::scrape::{ScrapeFamilies, ScrapeManager, SharedTargets, Stop};
use crate::web::{self, ReloadRequest, WebState};

/// Directory under `--storage.path` holding compiled plugins.
const PLUGIN_CACHE_DIR: &str = "plugins-cache";

/// How long file events are gathered before the config file is looked at again.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(500);

/// What the agent is started with (the command-line flags).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// `--config.file`.
    pub config_file: PathBuf,
    /// `--storage.path`: where the agent keeps state: compiled plugins under `plugins-cache/`,
    /// the remote write queues under `queue/`.
    pub storage_path: PathBuf,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A remote_write endpoint could not be set up.
    #[error(transparent)]
    RemoteWrite(#[from] RemoteWriteError),
    /// A plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The storage directory or the HTTP server failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The reload metrics, as Prometheus's `prometheus_config_last_reload_*`.
#[derive(Debug, Clone, Default)]
struct ReloadMetrics {
    successful: Gauge,
    success_timestamp: Gauge,
}

impl ReloadMetrics {
    fn register(registry: &mut Registry) -> Self {
        let m = ReloadMetrics::default();
        let r = registry.sub_registry_with_prefix("trawl_agent");
        r.register(
            "config_last_reload_successful",
            "Whether the last configuration reload attempt was successful (1) or not (0).",
            m.successful.clone(),
        );
        r.register_with_unit(
            "config_last_reload_success_timestamp",
            "Timestamp of the last successful configuration reload.",
            Unit::Seconds,
            m.success_timestamp.clone(),
        );
        m
    }

    fn record(&self, ok: bool) {
        self.successful.set(i64::from(ok));
        if ok {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            self.success_timestamp.set(now.as_secs() as i64);
        }
    }
}

/// The running pieces that a reload replaces.
struct Running {
    config: Config,
    plugins: PluginSet,
    /// Hot reload of the plugins' `.wasm` files; stops when dropped.
    plugin_watcher: Option<PluginWatcher>,
    remote: RemoteWrite,
    manager: ScrapeManager,
}

/// What the agent keeps across reloads.
struct Shared {
    host: PluginHost,
    scrape_families: ScrapeFamilies,
    remote_families: RemoteWriteFamilies,
    kubernetes: KubernetesRegistry,
    seed: u64,
    /// `<storage.path>/queue`: the remote write endpoints' on-disk queues.
    queue_dir: PathBuf,
}

/// Runs the agent until `shutdown` is cancelled, serving the web API on `listener`.
pub async fn run(opts: AgentOptions, listener: TcpListener, shutdown: CancellationToken) -> Result<(), AgentError> {
    // Catch SIGHUP before anything slow: its default action kills the process, and a reload
    // asked for while we start (a config reloader, `systemctl reload`) must wait, not kill us.
    // Signals that arrive meanwhile are kept by the stream and trigger one reload once started.
    let hup = signal(SignalKind::hangup())?;
    let config = Config::load(&opts.config_file)?;
    std::fs::create_dir_all(&opts.storage_path)?;

    // Register every metric family once; reloads reuse them.
    let mut registry = Registry::default();
    let scrape_families = ScrapeFamilies::register(&mut registry);
    let remote_families = RemoteWriteFamilies::register(&mut registry);
    let reload_metrics = ReloadMetrics::register(&mut registry);
    let host = PluginHost::new(Some(opts.storage_path.join(PLUGIN_CACHE_DIR)), &mut registry)?;
    let kubernetes = KubernetesRegistry::new(&mut registry);
    let targets = SharedTargets::default();
    let shared = Shared {
        host,
        scrape_families,
        remote_families,
        kubernetes,
        seed: offset_seed(&config),
        queue_dir: opts.storage_path.join("queue"),
    };

    let (plugins, remote, mut manager) = shared.start(&config, &PluginSet::default(), targets.clone()).await?;
    manager.apply(&config.scrape_configs).await;
    reload_metrics.record(true);
    let mut running = Running {
        plugin_watcher: watch_plugins(&shared.host, &plugins),
        config,
        plugins,
        remote,
        manager,
    };
    info!(
        message = "Agent started.",
        config = %opts.config_file.display(),
        jobs = running.config.scrape_configs.len(),
        remote_write = running.config.remote_write.len()
    );

    // Serve the API; it can now answer ready.
    let ready = Arc::new(AtomicBool::new(true));
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let web_shutdown = CancellationToken::new();
    let state = WebState {
        registry: Arc::new(registry),
        targets,
        reload: reload_tx.clone(),
        ready: ready.clone(),
    };
    let web = tokio::spawn(web::serve(listener, state, web_shutdown.clone()));

    // Reload triggers besides the API: SIGHUP and changes of the config file.
    spawn_sighup(hup, reload_tx.clone(), shutdown.clone());
    let _watcher = watch_config(&opts.config_file, reload_tx);

    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(request) = reload_rx.recv() => {
                let result = reload(&opts.config_file, &mut running, &shared).await;
                reload_metrics.record(result.is_ok());
                let _ = request.send(result.map_err(|e| e.to_string()));
            }
        }
    }

    // Stop scraping, flush the queues within remote_timeout, then stop serving.
    info!(message = "Shutting down; flushing remote write queues.");
    ready.store(false, Ordering::Relaxed);
    running.manager.stop(Stop::Quiet).await;
    running.remote.shutdown().await;
    web_shutdown.cancel();
    web.await.map_err(std::io::Error::other)??;
    info!(message = "Agent stopped.");
    Ok(())
}

/// Applies a changed config file. Scrape pools of unchanged jobs keep running; a change of
/// `remote_write`, the external labels or `plugins` restarts the queues (after flushing the old
/// ones) and every pool, because each cached series is prepared for the endpoints and holds
/// plugin outcomes. Plugins whose entry is unchanged keep their instance.
async fn reload(path: &Path, running: &mut Running, shared: &Shared) -> Result<(), AgentError> {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            error!(message = "Reloading configuration failed; keeping the old one.", %error);
            return Err(error.into());
        }
    };
    if config == running.config {
        return Ok(());
    }
    let remote_changed = config.remote_write != running.config.remote_write
        || config.global.external_labels != running.config.global.external_labels
        || config.plugins != running.config.plugins;
    if remote_changed {
        let started = shared.start(&config, &running.plugins, running.manager.targets()).await;
        let (plugins, remote, manager) = match started {
            Ok(started) => started,
            Err(error) => {
                error!(message = "Reloading configuration failed; keeping the old one.", %error);
                return Err(error);
            }
        };
        running.plugin_watcher = watch_plugins(&shared.host, &plugins);
        running.plugins = plugins;
        let old_manager = std::mem::replace(&mut running.manager, manager);
        old_manager.stop(Stop::Quiet).await;
        let old_remote = std::mem::replace(&mut running.remote, remote);
        old_remote.shutdown().await;
    }
    running.manager.apply(&config.scrape_configs).await;
    running.config = config;
    info!(message = "Configuration reloaded.", file = %path.display(), remote_write_restarted = remote_changed);
    Ok(())
}

impl Shared {
    /// Loads the plugins of `config` (reusing the unchanged ones of `previous`) and starts
    /// remote write and a scrape manager without pools over them, publishing into `targets`.
    async fn start(
        &self,
        config: &Config,
        previous: &PluginSet,
        targets: SharedTargets,
    ) -> Result<(PluginSet, RemoteWrite, ScrapeManager), AgentError> {
        let plugins = load_plugins(&self.host, config, previous).await?;
        let remote = RemoteWrite::new(
            &config.remote_write,
            &config.global.external_labels,
            &self.remote_families,
            &plugins,
            &self.queue_dir,
        )?;
        let manager = ScrapeManager::new(
            remote.clone(),
            plugins.clone(),
            self.scrape_families.clone(),
            self.kubernetes.clone(),
            self.seed,
            targets,
        );
        Ok((plugins, remote, manager))
    }
}

/// Loads the config's plugins off the async workers (compiling takes a while), reusing the
/// unchanged ones of `previous`.
async fn load_plugins(host: &PluginHost, config: &Config, previous: &PluginSet) -> Result<PluginSet, AgentError> {
    if config.plugins.is_empty() {
        return Ok(PluginSet::default());
    }
    let (host, configs, previous) = (host.clone(), config.plugins.clone(), previous.clone());
    let loaded = tokio::task::spawn_blocking(move || PluginSet::load(&host, &configs, &previous))
        .await
        .map_err(std::io::Error::other)??;
    info!(message = "Plugins loaded.", plugins = config.plugins.len());
    Ok(loaded)
}

/// Starts hot reload of the plugins' files; `None` (logged) when watching is impossible.
fn watch_plugins(host: &PluginHost, plugins: &PluginSet) -> Option<PluginWatcher> {
    let plugins = plugins.plugins();
    if plugins.is_empty() {
        return None;
    }
    match host.watch(&plugins) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            warn!(message = "Cannot watch plugin files; they are not hot-reloaded.", %error);
            None
        }
    }
}

/// Sends a reload request on every SIGHUP of `hup` until shutdown.
fn spawn_sighup(mut hup: Signal, reload: mpsc::Sender<ReloadRequest>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = hup.recv() => {
                    info!(message = "Received SIGHUP; reloading configuration.");
                    let (tx, _rx) = oneshot::channel();
                    let _ = reload.send(tx).await;
                }
            }
        }
    });
}

/// Watches the config file's directory (so editors' renames and Kubernetes ConfigMap symlink
/// swaps are seen) and asks for a reload when the file's content changed. The watcher stops
/// when the returned value is dropped; `None` when watching is impossible (logged).
fn watch_config(path: &Path, reload: mpsc::Sender<ReloadRequest>) -> Option<impl Drop> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let file = path.to_owned();
    let mut last = std::fs::read(&file).ok();
    let debouncer = new_debouncer(WATCH_DEBOUNCE, None, move |events: DebounceEventResult| {
        if events.is_err() {
            return;
        }
        let content = std::fs::read(&file).ok();
        if content.is_some() && content != last {
            last = content;
            let (tx, _rx) = oneshot::channel();
            let _ = reload.try_send(tx);
        }
    });
    let mut debouncer = match debouncer {
        Ok(d) => d,
        Err(error) => {
            warn!(message = "Cannot watch the config file; reload with SIGHUP or /-/reload.", %error);
            return None;
        }
    };
    if let Err(error) = debouncer.watch(&dir, RecursiveMode::NonRecursive) {
        warn!(message = "Cannot watch the config file; reload with SIGHUP or /-/reload.", dir = %dir.display(), %error);
        return None;
    }
    Some(debouncer)
}

/// Seed of the scrape offsets, from the host name and external labels as Prometheus does, so
/// agents with the same targets scrape them at different phases.
fn offset_seed(config: &Config) -> u64 {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let text = format!("{}{}", host.trim(), config.global.external_labels);
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}
