//! Wasm plugins: the host side of `wit/plugin.wit` (`trawl:plugin@0.1.0`) on wasmtime 48.
//!
//! ```text
//!  caller (scrape / remote write)               PluginHost (one per agent)
//!  ─────────────────────────────                ───────────────────────────────────────────
//!  symbols.lock() ── intern labels ──► Batch    Engine + epoch ticker (10 ms) + code cache
//!                                       │       Symbols: string ⇄ u32, per generation
//!  plugin.process(&batch) ◄─────────────┘       Plugin (Arc, one Mutex per plugin)
//!     │  breaker open? ─► policy                  └ Instance: Store (memory cap, deadline)
//!     │  sync: reset-symbols on a new generation,        guest symbol-base, delta buffer
//!     │        new-symbols = table[base..]
//!     │  guest process(batch) ── trap ─► policy, fresh instance next call
//!     │  validate outcome ── invalid ─► policy
//!     ▼
//!  Outcome: verdict per series, labels(i), value(i)
//! ```
//!
//! Files: `host.rs` (the agent-wide [`PluginHost`]), `loaded.rs` ([`Plugin`]: the call, its
//! failures, reload), `load.rs` (file → compiled, linked code), `instance.rs` (store, call,
//! symbol sync), `sandbox.rs` (granted imports, limits, log), `symbols.rs`, `batch.rs`,
//! `outcome.rs` (validation and application), `breaker.rs`, `metrics.rs`, `engine.rs` (engine,
//! epoch ticker, code cache), `watch.rs` (hot reload); `set.rs` and `stage.rs` run the plugins
//! of a config and of a pipeline stage on label sets.

mod batch;
mod bindings;
mod breaker;
mod engine;
mod error;
mod failure;
mod host;
mod info;
mod instance;
mod load;
mod loaded;
mod metrics;
mod outcome;
mod ratelimit;
mod sandbox;
mod set;
mod stage;
mod symbols;
mod watch;

#[cfg(test)]
pub(crate) mod test_guests;
#[cfg(test)]
mod tests;

pub use batch::{Batch, Stage};
pub use error::{PluginError, StaleSymbols};
pub use host::PluginHost;
pub use info::{Needs, PluginInfo};
pub use loaded::Plugin;
pub use outcome::{Outcome, Verdict};
pub use set::PluginSet;
pub use stage::{StagePlugins, intern_pairs};
pub use symbols::{Symbols, SymbolsGuard};
pub use watch::PluginWatcher;
