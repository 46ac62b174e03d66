//! The agent-wide wasmtime engine, the epoch ticker that enforces call deadlines, and the cache
//! of compiled components under `<storage>/plugins-cache/`.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, OptLevel};

use super::PluginError;

/// Period of the epoch ticker: deadlines are counted in these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine every plugin is compiled for: Cranelift, epoch interruption for deadlines, and no
/// support for concurrent (async) component calls, which makes each call ~3× cheaper.
pub(super) fn new_engine() -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .concurrency_support(false)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed);
    Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))
}

/// Hands the memory Cranelift freed back to the system. Compiling allocates tens of MB per MB of
/// wasm, and glibc keeps freed memory of non-main arenas mapped, which would stay in the agent's
/// RSS for its whole life; other allocators return it themselves.
pub(super) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks glibc's own heaps and madvises free pages away; it has no
    // preconditions and touches no Rust-owned memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Epoch deadline, in ticks, for a call of at most `timeout`: `ceil(timeout / tick) + 1`, the
/// extra tick because the current tick is already partly over.
pub(super) fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    (timeout.as_nanos().div_ceil(tick) + 1).min(u64::MAX as u128) as u64
}

/// A thread that increments the engine's epoch every [`EPOCH_TICK`] while a guest call runs, and
/// sleeps otherwise, so plugins that are rarely called (relabel and write stages) cost no
/// wake-ups; stops when dropped.
#[derive(Debug)]
pub(super) struct EpochTicker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct TickerShared {
    /// Guest calls running now.
    in_flight: AtomicUsize,
    stop: AtomicBool,
}

/// A guest call in progress: the ticker counts epochs until it drops.
pub(super) struct Running<'a>(&'a TickerShared);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> Result<EpochTicker, PluginError> {
        let shared = Arc::new(TickerShared::default());
        let ticker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !ticker.stop.load(Ordering::Acquire) {
                    if ticker.in_flight.load(Ordering::Acquire) == 0 {
                        // `running` and `drop` unpark us; a spurious wake-up just loops.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(PluginError::Ticker)?;
        Ok(EpochTicker {
            shared,
            thread: Some(thread),
        })
    }

    /// Marks a guest call as running until the returned guard drops; deadlines set with
    /// `set_epoch_deadline` only advance while some call runs.
    pub(super) fn running(&self) -> Running<'_> {
        if self.shared.in_flight.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
        Running(&self.shared)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Compiled components on disk, one file per (wasm SHA-256, engine compatibility hash):
/// `<dir>/<sha256>-<engine hash>.cwasm`, written via a temp file, fsync and rename.
#[derive(Debug)]
pub(super) struct CodeCache {
    dir: PathBuf,
    engine_hash: String,
}

impl CodeCache {
    pub(super) fn new(dir: PathBuf, engine: &Engine) -> CodeCache {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CodeCache {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    /// Where the component with this SHA-256 (lowercase hex) is cached.
    pub(super) fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_hash))
    }

    /// The cached component, if present and loadable by this engine.
    pub(super) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = fs::read(&path).ok()?;
        match deserialize(engine, &bytes) {
            Ok(component) => Some(component),
            Err(error) => {
                debug!(message = "Ignoring unusable compiled plugin.", path = %path.display(), error = %format!("{error:#}"));
                None
            }
        }
    }

    /// Stores `component` for later loads; failures are logged, a missing cache only costs time.
    pub(super) fn store(&self, sha256: &str, component: &Component) {
        let path = self.path(sha256);
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|bytes| write_atomically(&self.dir, &path, &bytes));
        if let Err(error) = result {
            warn!(message = "Cannot cache compiled plugin.", path = %path.display(), %error);
        }
    }
}

/// Loads a component compiled by [`CodeCache::store`].
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own output. These bytes
    // come from our cache directory under `--storage.path`, written only by `CodeCache::store`
    // (serialize, then temp file + fsync + rename, so a reader never sees a partial file), and
    // their file name is keyed by the wasm's SHA-256 and this engine's precompile compatibility
    // hash; wasmtime additionally checks its version and engine settings in the header and
    // returns an error (never UB) on a mismatch. The bytes are an owned copy, so later changes
    // to the file cannot affect the loaded code.
    unsafe { Component::deserialize(engine, bytes) }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
