//! What a plugin instance may touch: the imports it is granted (the linker), the store data
//! behind them (log sink, random source) and its resource limits.
//!
//! Granted: `trawl:plugin/host` (a rate-limited `log`) and, because Rust's std links them, the
//! WASI 0.2 interfaces `wasi:cli/{environment,exit,stdin,stdout,stderr,terminal-*}`,
//! `wasi:io/{error,poll,streams}` (every function traps: no environment, no stdio) and
//! `wasi:random/{insecure-seed,insecure,random}` (real values from the host; nothing to leak).
//! A component importing anything else (`wasi:filesystem`, `wasi:sockets`, `wasi:clocks`,
//! `wasi:http`, …) is refused at load.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use ring::rand::{SecureRandom, SystemRandom};
use tracing::{debug, error, info, warn};
use wasmtime::component::{Component, HasSelf, Linker, LinkerInstance};
use wasmtime::{Engine, ResourceLimiter, StoreContextMut, StoreLimits, StoreLimitsBuilder};

use super::bindings::TrawlPlugin;
use super::bindings::trawl::plugin::host::{Host, Level};
use super::ratelimit::TokenBucket;

/// Log lines per second a plugin may write on average.
const LOG_RATE: f64 = 10.0;
/// Log lines a plugin may write in a burst.
const LOG_BURST: u32 = 20;
/// Longest log line kept, in bytes; longer lines are cut.
const MAX_LOG_LINE: usize = 4096;
/// Most random bytes one `get-*random-bytes` call may ask for (a larger request traps).
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// Where a plugin's `log` lines go: the agent's log, attributed to the plugin, rate-limited per
/// plugin (shared by its successive instances).
#[derive(Debug)]
pub(super) struct PluginLog {
    plugin: String,
    bucket: Mutex<TokenBucket>,
    dropped: Counter,
}

impl PluginLog {
    pub(super) fn new(plugin: &str, dropped: Counter) -> PluginLog {
        PluginLog {
            plugin: plugin.to_owned(),
            bucket: Mutex::new(TokenBucket::new(LOG_RATE, LOG_BURST)),
            dropped,
        }
    }

    fn write(&self, level: Level, line: &str) {
        let allowed = self
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(Instant::now());
        if !allowed {
            self.dropped.inc();
            return;
        }
        let mut end = line.len().min(MAX_LOG_LINE);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let (plugin, line) = (self.plugin.as_str(), &line[..end]);
        match level {
            Level::Debug => debug!(plugin, message = line),
            Level::Info => info!(plugin, message = line),
            Level::Warn => warn!(plugin, message = line),
            Level::Error => error!(plugin, message = line),
        }
    }
}

/// The data of one instance's `Store`.
pub(super) struct HostState {
    limiter: Limiter,
    log: Arc<PluginLog>,
    rng: u64,
}

impl HostState {
    /// State for an instance whose linear memories may total `memory_limit` bytes.
    pub(super) fn new(memory_limit: u64, log: Arc<PluginLog>) -> HostState {
        let memory_limit = usize::try_from(memory_limit).unwrap_or(usize::MAX);
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_limit)
            .table_elements(100_000)
            .instances(32)
            .tables(32)
            .memories(8)
            .trap_on_grow_failure(true)
            .build();
        HostState {
            limiter: Limiter {
                limits,
                memory_limit,
                memory_total: 0,
                denied: false,
            },
            log,
            rng: RandomState::new().hash_one(Instant::now()),
        }
    }

    pub(super) fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }

    /// Whether a memory or table growth was refused since the last call, and resets it: the
    /// trap that followed is then a `memory` failure.
    pub(super) fn take_limit_hit(&mut self) -> bool {
        std::mem::take(&mut self.limiter.denied)
    }

    /// splitmix64: fast, seeded per instance, good enough for hash seeds.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.log.write(level, &message);
    }
}

/// The `types` interface has no functions.
impl super::bindings::trawl::plugin::types::Host for HostState {}

/// [`StoreLimits`] (which bound each memory, tables and instance counts) plus a bound on the
/// total of all linear memories, remembering a refusal so the trap that follows counts as
/// `memory`.
pub(super) struct Limiter {
    limits: StoreLimits,
    /// Most bytes all linear memories of the instance may total.
    memory_limit: usize,
    /// Bytes granted so far (memories never shrink).
    memory_total: usize,
    denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_total.saturating_add(growth);
        if total > self.memory_limit {
            self.denied = true;
            wasmtime::bail!(
                "plugin memory limit of {} bytes reached (asked for {total})",
                self.memory_limit
            );
        }
        let result = self.limits.memory_growing(current, desired, maximum);
        match result {
            Ok(true) => self.memory_total = total,
            _ => self.denied = true,
        }
        result
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let result = self.limits.table_growing(current, desired, maximum);
        self.denied |= !matches!(result, Ok(true));
        result
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied = true;
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Why a component cannot be linked.
#[derive(Debug)]
pub(super) enum LinkError {
    /// The component imports these interfaces, which are not granted.
    Forbidden(Vec<String>),
    /// wasmtime refused a definition (a granted import with an unexpected shape).
    Link(String),
}

/// What a granted import is linked to.
enum Grant {
    /// Defined by the generated bindings.
    Host,
    /// `wasi:random/insecure-seed`.
    Seed,
    /// `wasi:random/insecure`.
    Insecure,
    /// `wasi:random/random`.
    Random,
    /// Every function traps when called.
    Trap,
}

/// The grant of the import named `name` (e.g. `wasi:io/streams@0.2.6`), `None` if forbidden.
fn grant(name: &str) -> Option<Grant> {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    if matches!(interface, "trawl:plugin/host" | "trawl:plugin/types") {
        return version.starts_with("0.1.").then_some(Grant::Host);
    }
    if !version.starts_with("0.2.") {
        return None;
    }
    match interface {
        "wasi:random/insecure-seed" => Some(Grant::Seed),
        "wasi:random/insecure" => Some(Grant::Insecure),
        "wasi:random/random" => Some(Grant::Random),
        "wasi:cli/environment"
        | "wasi:cli/exit"
        | "wasi:cli/stdin"
        | "wasi:cli/stdout"
        | "wasi:cli/stderr"
        | "wasi:io/error"
        | "wasi:io/poll"
        | "wasi:io/streams" => Some(Grant::Trap),
        _ if interface.starts_with("wasi:cli/terminal-") => Some(Grant::Trap),
        _ => None,
    }
}

/// A linker satisfying exactly `component`'s imports, or every import that is not granted.
pub(super) fn linker(engine: &Engine, component: &Component) -> Result<Linker<HostState>, LinkError> {
    let link = |e: wasmtime::Error| LinkError::Link(format!("{e:#}"));
    let ty = component.component_type();
    let forbidden: Vec<String> = ty
        .imports(engine)
        .filter(|(name, _)| grant(name).is_none())
        .map(|(name, _)| name.to_owned())
        .collect();
    if !forbidden.is_empty() {
        return Err(LinkError::Forbidden(forbidden));
    }
    let mut linker = Linker::new(engine);
    TrawlPlugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state).map_err(link)?;
    for (name, _) in ty.imports(engine) {
        let Some(grant) = grant(name) else { continue };
        let mut instance = linker.instance(name).map_err(link)?;
        match grant {
            Grant::Host | Grant::Trap => Ok(()),
            Grant::Seed => define_seed(&mut instance),
            Grant::Insecure => define_insecure(&mut instance),
            Grant::Random => define_random(&mut instance),
        }
        .map_err(link)?;
    }
    // Everything granted but not defined above (cli, io and their resources) traps if called.
    linker.define_unknown_imports_as_traps(component).map_err(link)?;
    Ok(linker)
}

fn define_seed(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.func_wrap("insecure-seed", |mut store: StoreContextMut<'_, HostState>, (): ()| {
        let state = store.data_mut();
        Ok(((state.next_u64(), state.next_u64()),))
    })
}

fn define_insecure(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.func_wrap(
        "get-insecure-random-u64",
        |mut store: StoreContextMut<'_, HostState>, (): ()| Ok((store.data_mut().next_u64(),)),
    )?;
    instance.func_wrap(
        "get-insecure-random-bytes",
        |mut store: StoreContextMut<'_, HostState>, (len,): (u64,)| {
            let state = store.data_mut();
            let bytes = random_len(len)?;
            Ok(((0..bytes).map(|_| state.next_u64() as u8).collect::<Vec<u8>>(),))
        },
    )
}

fn define_random(instance: &mut LinkerInstance<'_, HostState>) -> wasmtime::Result<()> {
    instance.func_wrap("get-random-u64", |_: StoreContextMut<'_, HostState>, (): ()| {
        let mut bytes = [0u8; 8];
        fill_secure(&mut bytes)?;
        Ok((u64::from_le_bytes(bytes),))
    })?;
    instance.func_wrap(
        "get-random-bytes",
        |_: StoreContextMut<'_, HostState>, (len,): (u64,)| {
            let mut bytes = vec![0u8; random_len(len)?];
            fill_secure(&mut bytes)?;
            Ok((bytes,))
        },
    )
}

fn random_len(len: u64) -> wasmtime::Result<usize> {
    if len > MAX_RANDOM_BYTES {
        wasmtime::bail!("plugin asked for {len} random bytes, more than {MAX_RANDOM_BYTES}");
    }
    Ok(len as usize)
}

fn fill_secure(bytes: &mut [u8]) -> wasmtime::Result<()> {
    SystemRandom::new()
        .fill(bytes)
        .map_err(|_| wasmtime::format_err!("the system random source failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_only_the_listed_interfaces() {
        for allowed in [
            "trawl:plugin/host@0.1.0",
            "trawl:plugin/types@0.1.0",
            "wasi:cli/environment@0.2.0",
            "wasi:cli/stderr@0.2.6",
            "wasi:cli/terminal-stdout@0.2.6",
            "wasi:io/streams@0.2.3",
            "wasi:random/insecure-seed@0.2.6",
            "wasi:random/random@0.2.0",
        ] {
            assert!(grant(allowed).is_some(), "{allowed}");
        }
        for forbidden in [
            "wasi:filesystem/types@0.2.6",
            "wasi:filesystem/preopens@0.2.0",
            "wasi:sockets/tcp@0.2.0",
            "wasi:clocks/wall-clock@0.2.6",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:io/streams@0.3.0",
            "wasi:io/streams",
            "trawl:plugin/host@0.2.0",
            "trawl:plugin/other@0.1.0",
            "wasi:cli/run@0.2.0",
            "evil:thing/x@0.2.0",
            "",
        ] {
            assert!(grant(forbidden).is_none(), "{forbidden}");
        }
    }

    #[test]
    fn random_requests_are_capped() {
        assert_eq!(random_len(16).ok(), Some(16));
        assert!(random_len(MAX_RANDOM_BYTES + 1).is_err());
        assert!(random_len(u64::MAX).is_err());
    }

    #[test]
    fn the_limiter_remembers_a_refused_growth() {
        let log = Arc::new(PluginLog::new("t", Counter::default()));
        let mut state = HostState::new(1 << 20, log);
        assert!(matches!(state.limiter().memory_growing(0, 1 << 16, None), Ok(true)));
        assert!(!state.take_limit_hit());
        assert!(state.limiter().memory_growing(1 << 16, 2 << 20, None).is_err());
        assert!(state.take_limit_hit());
        assert!(!state.take_limit_hit(), "reset after reading");
    }

    #[test]
    fn the_limit_bounds_all_memories_together() {
        let log = Arc::new(PluginLog::new("t", Counter::default()));
        let mut state = HostState::new(1 << 20, log);
        // Two memories of 512 KiB each fit; a third memory's first page does not.
        assert!(matches!(state.limiter().memory_growing(0, 512 << 10, None), Ok(true)));
        assert!(matches!(state.limiter().memory_growing(0, 256 << 10, None), Ok(true)));
        assert!(matches!(
            state.limiter().memory_growing(256 << 10, 512 << 10, None),
            Ok(true)
        ));
        assert!(state.limiter().memory_growing(0, 64 << 10, None).is_err());
        assert!(state.take_limit_hit());
        assert!(
            state.limiter().memory_growing(0, 0, None).is_ok_and(|ok| ok),
            "nothing more is fine"
        );
    }
}
