//! One loaded plugin (a `plugins:` entry): the call with its failure handling (policy, breaker,
//! re-instantiation after a trap, metrics, rate-limited error log) and the reload swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::{OnError, PluginConfig};

use super::breaker::{Breaker, OPEN_FOR};
use super::engine::{EpochTicker, deadline_ticks};
use super::failure::Failure;
use super::host::HostShared;
use super::info::{Needs, PluginInfo};
use super::instance::{Instance, StartError};
use super::load::{self, Code};
use super::metrics::PluginMetrics;
use super::ratelimit::TokenBucket;
use super::sandbox::PluginLog;
use super::{Batch, Outcome, PluginError, StaleSymbols};

/// Source of [`Plugin::version`] values, unique within the process.
static NEXT_VERSION: AtomicU64 = AtomicU64::new(1);

/// Shortest deadline of `init` (it may compile regexes, build tables, …).
const MIN_INIT_TIMEOUT: Duration = Duration::from_secs(1);

/// One loaded plugin; cheap to clone (`Arc`), `Send + Sync`.
///
/// Its single instance sits behind a `Mutex`: calls are short (bounded by `timeout`) and a
/// plugin instance is single-threaded anyway, so concurrent callers of one plugin take turns;
/// different plugins run in parallel. The lock is taken once per batch, never per series.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: PluginConfig,
    config_json: String,
    host: Arc<HostShared>,
    /// Counts epochs during this plugin's guest calls; shared by the loaded plugins.
    ticker: Arc<EpochTicker>,
    metrics: PluginMetrics,
    log: Arc<PluginLog>,
    info: Mutex<PluginInfo>,
    /// Changes whenever the running code is swapped.
    version: AtomicU64,
    state: Mutex<State>,
}

/// What a reload swaps and a call uses.
struct State {
    code: Arc<Code>,
    /// `None` after a trap: the next call starts a fresh instance from `code`.
    instance: Option<Instance>,
    /// Columns the running instance asked for.
    needs: Needs,
    breaker: Breaker,
    /// Limits the host's own error lines about this plugin.
    error_log: TokenBucket,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.cfg.name)
            .field("path", &self.inner.cfg.path)
            .finish()
    }
}

/// Compiles `cfg`'s file with the host's engine and cache.
fn compile(host: &HostShared, cfg: &PluginConfig) -> Result<Code, PluginError> {
    let runtime = host.runtime()?;
    load::compile(
        &runtime.engine,
        runtime.cache.as_ref(),
        &cfg.name,
        &cfg.path,
        cfg.sha256.as_deref(),
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under the lock leaves at worst a stale instance, which the next trap replaces.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Plugin {
    /// Compiles and starts plugin `cfg`; see [`PluginHost::load`](super::PluginHost::load).
    pub(super) fn load(host: Arc<HostShared>, cfg: &PluginConfig) -> Result<Plugin, PluginError> {
        let metrics = host.families.plugin(&cfg.name);
        let log = Arc::new(PluginLog::new(&cfg.name, metrics.log_lines_dropped.clone()));
        let config_json = cfg.config.to_string();
        let code = Arc::new(compile(&host, cfg)?);
        let inner = Inner {
            cfg: cfg.clone(),
            config_json,
            ticker: host.ticker()?,
            host,
            metrics,
            log,
            info: Mutex::new(PluginInfo::default()),
            version: AtomicU64::new(NEXT_VERSION.fetch_add(1, Ordering::Relaxed)),
            state: Mutex::new(State {
                code: code.clone(),
                instance: None,
                needs: Needs::default(),
                breaker: Breaker::new(OPEN_FOR),
                error_log: TokenBucket::new(1.0, 5),
            }),
        };
        let (instance, info) = inner.start(&code).map_err(|e| inner.start_error(e))?;
        let mut state = lock(&inner.state);
        state.instance = Some(instance);
        state.needs = info.needs;
        drop(state);
        *lock(&inner.info) = info;
        Ok(Plugin { inner: Arc::new(inner) })
    }

    /// The config name (`plugins[].name`).
    pub fn name(&self) -> &str {
        &self.inner.cfg.name
    }

    /// The config this plugin was loaded from.
    pub fn config(&self) -> &PluginConfig {
        &self.inner.cfg
    }

    /// What the current instance's `init` returned.
    pub fn info(&self) -> PluginInfo {
        lock(&self.inner.info).clone()
    }

    /// The columns the current instance asked for (cheaper than [`info`](Self::info)).
    pub fn needs(&self) -> Needs {
        lock(&self.inner.info).needs
    }

    /// Identifies the running code: a value no other load or reload in this process had, so
    /// outcomes cached under another value are outdated after a hot reload.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// SHA-256 (lowercase hex) of the file the running code was compiled from.
    pub fn sha256(&self) -> String {
        lock(&self.inner.state).code.sha256.clone()
    }

    /// One call for one batch. Never fails: on any failure (trap, deadline, memory limit,
    /// `plugin-error`, invalid outcome, open breaker) the `on_error` policy gives the outcome
    /// (`fail_open` keeps all, `fail_closed` drops all), the failure is logged (rate-limited) and
    /// counted by reason, and after a trap the next call runs on a fresh instance (`init` again).
    /// An empty batch returns at once without a call.
    ///
    /// `Err(StaleSymbols)` only when `batch` was built under an older symbol generation: rebuild
    /// it and call again.
    pub fn process(&self, batch: &Batch) -> Result<Outcome, StaleSymbols> {
        let n = batch.len();
        if n == 0 {
            return Ok(Outcome::keep_all(0));
        }
        let inner = &*self.inner;
        let stage = PluginMetrics::stage(batch.stage);
        let started = Instant::now();
        let mut state = lock(&inner.state);
        let result = if state.breaker.allow(started) {
            inner.call(&mut state, batch)
        } else {
            Err(Failure::BreakerOpen)
        };
        let outcome = match result {
            Ok(outcome) => {
                if state.breaker.success() {
                    inner.metrics.breaker_open.set(0);
                    info!(message = "Plugin circuit breaker closed.", plugin = %inner.cfg.name);
                }
                outcome
            }
            Err(Failure::Stale(stale)) => return Err(stale),
            Err(failure) => inner.failed(&mut state, failure, n, started),
        };
        drop(state);
        let m = &inner.metrics;
        m.calls[stage].inc();
        m.series[stage].inc_by(n as u64);
        m.dropped[stage].inc_by(outcome.dropped() as u64);
        m.modified[stage].inc_by(outcome.modified() as u64);
        m.call_duration[stage].observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// Recompiles the plugin's file and swaps in a new instance if its content changed (or
    /// always with `force`). Compiling and `init` run on the calling thread without blocking
    /// calls; only the swap takes the lock. A failed reload keeps the running instance, is
    /// logged and counted. Returns whether it swapped.
    pub fn reload(&self, force: bool) -> Result<bool, PluginError> {
        let inner = &*self.inner;
        let result = inner.reload(force);
        match &result {
            Ok(true) => {
                inner.metrics.reload_success.inc();
                info!(message = "Plugin reloaded.", plugin = %inner.cfg.name, path = %inner.cfg.path.display());
            }
            Ok(false) => {}
            Err(error) => {
                inner.metrics.reload_failure.inc();
                warn!(message = "Plugin reload failed; keeping the running version.", %error);
            }
        }
        result
    }
}

// === impl Inner ===

impl Inner {
    fn init_ticks(&self) -> u64 {
        deadline_ticks(self.cfg.timeout.max(MIN_INIT_TIMEOUT))
    }

    /// A fresh instance of `code`, counted.
    fn start(&self, code: &Code) -> Result<(Instance, PluginInfo), StartError> {
        self.metrics.instantiations.inc();
        let _running = self.ticker.running();
        Instance::start(
            code,
            self.cfg.memory_limit,
            self.log.clone(),
            &self.config_json,
            self.init_ticks(),
        )
    }

    fn start_error(&self, e: StartError) -> PluginError {
        let (plugin, path) = (self.cfg.name.clone(), self.cfg.path.clone());
        match e {
            StartError::InvalidConfig(reason) => PluginError::InvalidConfig { plugin, path, reason },
            StartError::Failed(f) => PluginError::Init {
                plugin,
                path,
                reason: f.reason(),
                message: f.message(),
            },
        }
    }

    /// Calls the instance, starting one first if the last call trapped.
    fn call(&self, state: &mut State, batch: &Batch) -> Result<Outcome, Failure> {
        let instance = match &mut state.instance {
            Some(instance) => instance,
            slot @ None => {
                let (instance, info) = self.start(&state.code).map_err(|e| match e {
                    StartError::InvalidConfig(m) => Failure::PluginError(format!("init: invalid-config: {m}")),
                    StartError::Failed(f) => f,
                })?;
                state.needs = info.needs;
                *lock(&self.info) = info;
                slot.insert(instance)
            }
        };
        let _running = self.ticker.running();
        let result = instance.process(batch, &self.host.symbols, state.needs, deadline_ticks(self.cfg.timeout));
        if result.as_ref().is_err_and(Failure::poisons_instance) {
            state.instance = None;
        }
        result
    }

    /// Applies the failure: counts, logs (rate-limited), feeds the breaker, returns the policy.
    fn failed(&self, state: &mut State, failure: Failure, n: usize, now: Instant) -> Outcome {
        self.metrics.error(&failure);
        let opened = failure != Failure::BreakerOpen && state.breaker.failure(now);
        if opened {
            self.metrics.breaker_open.set(1);
        }
        let policy = self.cfg.on_error;
        if opened || (failure != Failure::BreakerOpen && state.error_log.take(now)) {
            warn!(
                message = "Plugin call failed; applied its on_error policy.",
                plugin = %self.cfg.name,
                reason = failure.reason(),
                error = %failure.message(),
                on_error = ?policy,
                breaker_opened = opened,
            );
        }
        match policy {
            OnError::FailOpen => Outcome::keep_all(n),
            OnError::FailClosed => Outcome::drop_all(n),
        }
    }

    fn reload(&self, force: bool) -> Result<bool, PluginError> {
        let cfg = &self.cfg;
        if !force {
            let current = lock(&self.state).code.sha256.clone();
            let bytes = std::fs::read(&cfg.path).map_err(|source| PluginError::Read {
                plugin: cfg.name.clone(),
                path: cfg.path.clone(),
                source,
            })?;
            if load::sha256_hex(&bytes) == current {
                return Ok(false);
            }
        }
        let code = Arc::new(compile(&self.host, cfg)?);
        let (instance, info) = self.start(&code).map_err(|e| self.start_error(e))?;
        let mut state = lock(&self.state);
        state.code = code;
        state.instance = Some(instance);
        state.needs = info.needs;
        state.breaker.reset();
        *lock(&self.info) = info;
        self.version
            .store(NEXT_VERSION.fetch_add(1, Ordering::Relaxed), Ordering::Release);
        drop(state);
        self.metrics.breaker_open.set(0);
        Ok(true)
    }
}
