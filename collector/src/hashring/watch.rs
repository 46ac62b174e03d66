//! The hashrings file in force: loaded at start (a bad file stops the collector), then reloaded
//! when the file's directory changes (notify; the directory, so Kubernetes ConfigMap symlink
//! swaps are seen) and every refresh interval, as Thanos's `ConfigWatcher`. A bad new file keeps
//! the old rings, logs the reason and sets `trawl_collector_hashring_config_last_reload_successful`
//! to 0.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::Watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use trawl_process::error_chain;

use super::config::{self, Algorithm};
use super::{HashringError, Hashrings};

/// Quiet time after a file event before reading, so an editor's or kubelet's several writes
/// are read once, finished.
const SETTLE: Duration = Duration::from_millis(200);

/// The `--receive.hashrings-*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashringSettings {
    /// `--receive.hashrings-file`.
    pub file: PathBuf,
    /// `--receive.hashrings-algorithm`, for rings without their own `algorithm`.
    pub algorithm: Algorithm,
    /// `--receive.replication-factor`: owners per series (at least 1).
    pub replication_factor: usize,
    /// `--receive.hashrings-file-refresh-interval`: re-read the file this often even without
    /// a change notification.
    pub refresh_interval: Duration,
}

/// The rings in force and how they are reloaded.
#[derive(Debug)]
pub struct HashringWatcher {
    settings: HashringSettings,
    current: RwLock<Arc<Hashrings>>,
    /// xxhash64 of the file content in force, to skip rebuilding an unchanged file.
    content_hash: Mutex<u64>,
    metrics: HashringMetrics,
}

// === impl HashringWatcher ===

impl HashringWatcher {
    /// Reads and builds the rings of `settings.file`, registering the metrics into `registry`.
    ///
    /// # Errors
    /// [`HashringError`] when the file cannot be read or is refused.
    pub fn load(settings: HashringSettings, registry: &mut Registry) -> Result<HashringWatcher, HashringError> {
        let (rings, hash) = read(&settings)?;
        let metrics = HashringMetrics::new(registry);
        metrics.loaded(&rings);
        info!(
            message = "Hashrings loaded.",
            file = %settings.file.display(),
            endpoints = rings.addresses().len(),
            replication_factor = settings.replication_factor
        );
        Ok(HashringWatcher {
            settings,
            current: RwLock::new(Arc::new(rings)),
            content_hash: Mutex::new(hash),
            metrics,
        })
    }

    /// The rings in force.
    pub fn current(&self) -> Arc<Hashrings> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The settings the watcher was loaded with.
    pub fn settings(&self) -> &HashringSettings {
        &self.settings
    }

    /// Re-reads the file; a changed, valid file replaces the rings in force. Returns whether
    /// the rings changed.
    ///
    /// # Errors
    /// [`HashringError`] for an unreadable or refused file; the old rings stay in force and the
    /// failure is counted.
    pub fn reload(&self) -> Result<bool, HashringError> {
        let (rings, hash) = match read(&self.settings) {
            Ok(loaded) => loaded,
            Err(error) => {
                self.metrics.failed();
                return Err(error);
            }
        };
        let mut content_hash = self.content_hash.lock().unwrap_or_else(PoisonError::into_inner);
        self.metrics.loaded(&rings);
        if *content_hash == hash {
            return Ok(false);
        }
        *content_hash = hash;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rings);
        Ok(true)
    }

    /// Reloads on every change of the file's directory and every refresh interval until
    /// `shutdown`. Without a working file watch (e.g. inotify limits), the interval alone is used.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let dir = self
            .settings
            .file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        // Kept alive until the loop ends; dropping it stops the watch.
        let _watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::NonRecursive).map(|()| w))
        .inspect_err(|error| {
            warn!(message = "Cannot watch the hashrings file; it is re-read every refresh interval only.", dir = %dir.display(), %error);
        })
        .ok();
        let mut tick = tokio::time::interval(self.settings.refresh_interval.max(Duration::from_millis(1)));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                Some(()) = rx.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while rx.try_recv().is_ok() {}
                }
            }
            match self.reload() {
                Ok(true) => info!(message = "Hashrings reloaded.", file = %self.settings.file.display()),
                Ok(false) => {}
                Err(error) => warn!(
                    message = "Hashrings file refused; the previous hashrings stay in force.",
                    file = %self.settings.file.display(),
                    error = %error_chain(&error)
                ),
            }
        }
    }
}

/// Reads, parses and builds the rings; returns them with the content hash.
fn read(settings: &HashringSettings) -> Result<(Hashrings, u64), HashringError> {
    let read_error = |source| HashringError::Read {
        path: settings.file.display().to_string(),
        source,
    };
    let len = std::fs::metadata(&settings.file).map_err(read_error)?.len();
    if len > config::MAX_FILE_BYTES as u64 {
        return Err(HashringError::TooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            limit: config::MAX_FILE_BYTES,
        });
    }
    let content = std::fs::read(&settings.file).map_err(read_error)?;
    let configs = config::parse(&content)?;
    let rings = Hashrings::new(&configs, settings.algorithm, settings.replication_factor)?;
    Ok((rings, xxhash_rust::xxh64::xxh64(&content, 0)))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RingLabel {
    hashring: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Hashring metrics, as Thanos's `thanos_receive_config_*` and `thanos_receive_hashring_nodes`.
#[derive(Debug, Clone)]
struct HashringMetrics {
    last_reload_successful: Gauge,
    last_success_seconds: Gauge<f64, AtomicU64>,
    reloads: Family<ResultLabel, Counter>,
    nodes: Family<RingLabel, Gauge>,
}

impl HashringMetrics {
    fn new(registry: &mut Registry) -> HashringMetrics {
        let metrics = HashringMetrics {
            last_reload_successful: Gauge::default(),
            last_success_seconds: Gauge::default(),
            reloads: Family::default(),
            nodes: Family::default(),
        };
        for result in ["success", "failure"] {
            metrics.reloads.get_or_create_owned(&ResultLabel { result });
        }
        let r = registry.sub_registry_with_prefix("trawl_collector_hashring");
        r.register(
            "config_last_reload_successful",
            "Whether the last read of the hashrings file was accepted (1) or refused (0).",
            metrics.last_reload_successful.clone(),
        );
        r.register(
            "config_last_reload_success_timestamp_seconds",
            "When the hashrings file was last read and accepted, in seconds since the epoch.",
            metrics.last_success_seconds.clone(),
        );
        r.register(
            "config_reloads",
            "Reads of the hashrings file, by result.",
            metrics.reloads.clone(),
        );
        r.register("nodes", "Endpoints per hashring in force.", metrics.nodes.clone());
        metrics
    }

    fn loaded(&self, rings: &Hashrings) {
        self.last_reload_successful.set(1);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_success_seconds.set(now.as_secs_f64());
        self.reloads.get_or_create(&ResultLabel { result: "success" }).inc();
        self.nodes.clear();
        for (name, count) in rings.nodes_per_ring() {
            self.nodes
                .get_or_create(&RingLabel {
                    hashring: name.to_owned(),
                })
                .set(count as i64);
        }
    }

    fn failed(&self) {
        self.last_reload_successful.set(0);
        self.reloads.get_or_create(&ResultLabel { result: "failure" }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(file: PathBuf) -> HashringSettings {
        HashringSettings {
            file,
            algorithm: Algorithm::Hashmod,
            replication_factor: 1,
            refresh_interval: Duration::from_millis(50),
        }
    }

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    /// Asserts that the exposition of `registry` holds every line of `lines`.
    fn assert_exposes(registry: &Registry, lines: &[&str]) {
        let text = encoded(registry);
        for line in lines {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    fn a_bad_new_file_keeps_the_old_rings_and_sets_the_metric() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hashrings.json");
        std::fs::write(&file, r#"[{"endpoints": ["a:1", "b:1"]}]"#).unwrap();
        let mut registry = Registry::default();
        let watcher = HashringWatcher::load(settings(file.clone()), &mut registry).unwrap();
        assert_eq!(watcher.current().addresses(), ["a:1", "b:1"]);
        assert_exposes(&registry, &["trawl_collector_hashring_config_last_reload_successful 1"]);

        std::fs::write(&file, r#"[{"endpoints": []}]"#).unwrap();
        let error = watcher.reload().unwrap_err();
        assert!(error.to_string().contains("no endpoints"), "{error}");
        assert_eq!(watcher.current().addresses(), ["a:1", "b:1"]);
        assert_exposes(
            &registry,
            &[
                "trawl_collector_hashring_config_last_reload_successful 0",
                r#"trawl_collector_hashring_config_reloads_total{result="failure"} 1"#,
            ],
        );

        std::fs::write(&file, r#"[{"hashring": "r", "endpoints": ["c:1"]}]"#).unwrap();
        assert!(watcher.reload().unwrap());
        assert!(!watcher.reload().unwrap(), "unchanged content is not rebuilt");
        assert_eq!(watcher.current().addresses(), ["c:1"]);
        assert_exposes(
            &registry,
            &[
                "trawl_collector_hashring_config_last_reload_successful 1",
                r#"trawl_collector_hashring_nodes{hashring="r"} 1"#,
            ],
        );

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(watcher.reload(), Err(HashringError::Read { .. })));
        assert_eq!(watcher.current().addresses(), ["c:1"]);
    }

    #[test]
    fn a_bad_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hashrings.json");
        std::fs::write(&file, "[").unwrap();
        let error = HashringWatcher::load(settings(file), &mut Registry::default()).unwrap_err();
        assert!(matches!(error, HashringError::Json(_)), "{error:?}");
        let missing = HashringWatcher::load(settings(dir.path().join("none.json")), &mut Registry::default());
        assert!(matches!(missing, Err(HashringError::Read { .. })));
    }

    #[tokio::test]
    async fn changes_are_picked_up_by_the_running_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hashrings.json");
        std::fs::write(&file, r#"[{"endpoints": ["a:1"]}]"#).unwrap();
        let watcher = Arc::new(HashringWatcher::load(settings(file.clone()), &mut Registry::default()).unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&watcher).run(shutdown.clone()));
        // Replace the file the way Kubernetes does: write aside, rename over.
        let aside = dir.path().join(".hashrings.json.tmp");
        std::fs::write(&aside, r#"[{"endpoints": ["b:1", "c:1"]}]"#).unwrap();
        std::fs::rename(&aside, &file).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while watcher.current().addresses() != ["b:1", "c:1"] {
            assert!(tokio::time::Instant::now() < deadline, "reload not seen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
    }
}
