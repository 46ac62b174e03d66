//! The agent-wide plugin host: engine, epoch ticker, symbol table, metrics and code cache.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use prometheus_client::registry::Registry;
use wasmtime::Engine;

use crate::config::PluginConfig;

use super::engine::{self, CodeCache, EpochTicker};
use super::metrics::PluginFamilies;
use super::symbols::Symbols;
use super::watch::{self, PluginWatcher};
use super::{Plugin, PluginError};

/// Agent-wide plugin runtime; one per agent process, cheap to clone (`Arc`).
///
/// Owns the wasmtime engine (Cranelift, epoch interruption, no concurrency support), the epoch
/// ticker thread (10 ms ticks during guest calls only; the thread exists while a [`Plugin`] is
/// loaded), the [`Symbols`] table, the `trawl_agent_plugin_*` metric
/// families, and the compiled-code cache directory.
#[derive(Clone, Debug)]
pub struct PluginHost {
    shared: Arc<HostShared>,
}

/// What the host and every plugin share.
#[derive(Debug)]
pub(super) struct HostShared {
    /// The engine and the code cache, made by the first load: an agent without plugins keeps
    /// no compiler state in memory.
    runtime: OnceLock<Runtime>,
    cache_dir: Option<PathBuf>,
    pub(super) symbols: Symbols,
    pub(super) families: PluginFamilies,
    /// The running ticker, shared by the loaded plugins: the last one to drop stops it.
    ticker: Mutex<Weak<EpochTicker>>,
}

/// What compiling and running plugins needs.
#[derive(Debug)]
pub(super) struct Runtime {
    pub(super) engine: Engine,
    pub(super) cache: Option<CodeCache>,
}

impl HostShared {
    /// The engine and code cache, created on first use. Errors: the engine cannot be
    /// configured.
    pub(super) fn runtime(&self) -> Result<&Runtime, PluginError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let engine = engine::new_engine()?;
        let cache = self.cache_dir.clone().map(|dir| CodeCache::new(dir, &engine));
        // A racing first load may have set it meanwhile; either engine is equivalent.
        Ok(self.runtime.get_or_init(|| Runtime { engine, cache }))
    }

    /// The epoch ticker, started if no plugin holds it. Errors: the thread cannot start.
    pub(super) fn ticker(&self) -> Result<Arc<EpochTicker>, PluginError> {
        let mut ticker = self.ticker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = ticker.upgrade() {
            return Ok(running);
        }
        let started = Arc::new(EpochTicker::start(self.runtime()?.engine.clone())?);
        *ticker = Arc::downgrade(&started);
        Ok(started)
    }
}

impl PluginHost {
    /// Registers the plugin metric families into `registry` (call once per registry); the
    /// engine is created by the first [`load`](Self::load). `cache_dir` (e.g.
    /// `<storage.path>/plugins-cache`) keeps compiled code across restarts, keyed by the wasm's
    /// SHA-256 and the engine's compatibility hash; `None` compiles every time. Errors: none
    /// today; the `Result` keeps room for setup that can fail.
    pub fn new(cache_dir: Option<PathBuf>, registry: &mut Registry) -> Result<PluginHost, PluginError> {
        PluginHost::with_symbols(cache_dir, registry, Symbols::default())
    }

    /// As [`new`](Self::new), with a given symbol table (e.g. [`Symbols::with_caps`] for tests).
    pub fn with_symbols(
        cache_dir: Option<PathBuf>,
        registry: &mut Registry,
        symbols: Symbols,
    ) -> Result<PluginHost, PluginError> {
        let families = PluginFamilies::register(registry);
        Ok(PluginHost {
            shared: Arc::new(HostShared {
                runtime: OnceLock::new(),
                cache_dir,
                symbols,
                families,
                ticker: Mutex::new(Weak::new()),
            }),
        })
    }

    /// Loads plugin `cfg`; blocking (compiles, typically 0.1–1 s without a cache hit): reads the
    /// file, checks its SHA-256 against `cfg.sha256`, compiles it or loads it from the cache,
    /// checks its imports against the sandbox, instantiates it and calls `init` with
    /// `cfg.config` as JSON. Errors name the plugin, the path and what failed.
    pub fn load(&self, cfg: &PluginConfig) -> Result<Plugin, PluginError> {
        Plugin::load(self.shared.clone(), cfg)
    }

    /// The agent-wide symbol table batches are built with.
    pub fn symbols(&self) -> &Symbols {
        &self.shared.symbols
    }

    /// Where the compiled code of a wasm with this SHA-256 is cached, if there is a cache.
    pub fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let runtime = self.shared.runtime().ok()?;
        runtime.cache.as_ref().map(|c| c.path(sha256))
    }

    /// Watches every plugin's file (its directory, with notify, debounced): when a file's
    /// content changes, the plugin is recompiled and re-initialised on the watcher's thread and
    /// swapped in atomically (see [`Plugin::reload`]); a failed reload keeps the running
    /// instance. Dropping the returned value stops watching. Errors: a directory cannot be
    /// watched.
    pub fn watch(&self, plugins: &[Plugin]) -> Result<PluginWatcher, PluginError> {
        watch::watch(plugins)
    }
}
