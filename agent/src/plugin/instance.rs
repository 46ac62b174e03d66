//! One live plugin instance: its `Store` (limits, deadline), the guest's exports, and the
//! guest's view of the symbol table (which generation, how many symbols it has).

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::TrawlPlugin;
use super::bindings::trawl::plugin::types;
use super::failure::Failure;
use super::info::{Needs, PluginInfo};
use super::load::Code;
use super::sandbox::{HostState, PluginLog};
use super::{Batch, Outcome, Stage, StaleSymbols, Symbols};

/// New symbols a call may send per extra epoch tick (10 ms) of deadline, i.e. 5 µs each
/// (lowering a string costs a guest `realloc` call: measured ~250 ns per symbol in release,
/// ~1.2 µs in a debug build; the rest is room for a loaded machine). A fresh instance (after a
/// trap or a reload) receives the whole table, up to 1 Mi strings, which no 50 ms timeout
/// allows; without this it would time out forever.
const NEW_SYMBOLS_PER_EXTRA_TICK: u64 = 2_000;

/// Why a new instance could not start.
#[derive(Debug)]
pub(super) enum StartError {
    /// `init` answered `invalid-config`.
    InvalidConfig(String),
    /// Instantiation or `init` failed otherwise.
    Failed(Failure),
}

/// A live instance. Reused across calls: the store, and the buffer of the symbol delta.
pub(super) struct Instance {
    store: Store<HostState>,
    guest: TrawlPlugin,
    /// Generation of the guest's table; `None` while it is empty and fresh.
    generation: Option<u32>,
    /// Symbols the guest has (its next `symbol-base`).
    base: u32,
    /// The strings of this call's `new-symbols`, concatenated; `delta_ends[i]` ends string `i`.
    delta: String,
    delta_ends: Vec<usize>,
}

impl Instance {
    /// Instantiates `code` in a fresh store and calls `init(config_json)` within `init_ticks`.
    pub(super) fn start(
        code: &Code,
        memory_limit: u64,
        log: Arc<PluginLog>,
        config_json: &str,
        init_ticks: u64,
    ) -> Result<(Instance, PluginInfo), StartError> {
        let mut store = Store::new(code.pre.engine(), HostState::new(memory_limit, log));
        store.limiter(|state| state.limiter());
        store.set_epoch_deadline(init_ticks);
        let failed = |store: &mut Store<HostState>, e: wasmtime::Error| {
            StartError::Failed(Failure::from_call(&e, store.data_mut().take_limit_hit()))
        };
        let guest = code.pre.instantiate(&mut store).map_err(|e| failed(&mut store, e))?;
        let info = match guest.trawl_plugin_plugin().call_init(&mut store, config_json) {
            Ok(Ok(info)) => info,
            Ok(Err(types::PluginError::InvalidConfig(m))) => return Err(StartError::InvalidConfig(m)),
            Ok(Err(e)) => return Err(StartError::Failed(Failure::PluginError(describe(&e)))),
            Err(e) => return Err(failed(&mut store, e)),
        };
        let instance = Instance {
            store,
            guest,
            generation: None,
            base: 0,
            delta: String::new(),
            delta_ends: Vec::new(),
        };
        Ok((instance, info.into()))
    }

    /// Sends `batch` (columns per `needs`) and validates the answer; each guest call gets
    /// `ticks` epochs. A `symbol-gap` answer resets the guest's table and resends once.
    pub(super) fn process(
        &mut self,
        batch: &Batch,
        symbols: &Symbols,
        needs: Needs,
        ticks: u64,
    ) -> Result<Outcome, Failure> {
        let mut guest_symbols = self.sync(batch, symbols, ticks)?;
        let mut answer = self.call(batch, needs, ticks)?;
        if let Err(types::PluginError::SymbolGap(_)) = answer {
            // The guest lost track (e.g. it reset itself): start its table over, resend all.
            self.reset_symbols(ticks)?;
            guest_symbols = self.sync(batch, symbols, ticks)?;
            answer = self.call(batch, needs, ticks)?;
        }
        match answer {
            Ok(raw) => Outcome::validate(raw, batch, guest_symbols, symbols),
            Err(e) => Err(Failure::PluginError(describe(&e))),
        }
    }

    /// Brings the guest to the batch's generation and fills the delta with what it lacks;
    /// returns the size its table will have.
    fn sync(&mut self, batch: &Batch, symbols: &Symbols, ticks: u64) -> Result<u32, Failure> {
        if self.generation != Some(batch.generation) {
            if self.base > 0 {
                self.reset_symbols(ticks)?;
            }
            self.generation = Some(batch.generation);
        }
        let guard = symbols.current();
        if guard.generation() != batch.generation {
            return Err(Failure::Stale(StaleSymbols {
                batch: batch.generation,
                current: guard.generation(),
            }));
        }
        self.delta.clear();
        self.delta_ends.clear();
        for s in guard.since(self.base) {
            self.delta.push_str(s);
            self.delta_ends.push(self.delta.len());
        }
        Ok(guard.len() as u32)
    }

    /// One `process` call with the current delta.
    fn call(
        &mut self,
        batch: &Batch,
        needs: Needs,
        ticks: u64,
    ) -> Result<Result<types::Outcome, types::PluginError>, Failure> {
        let Instance {
            store,
            guest,
            base,
            delta,
            delta_ends,
            ..
        } = self;
        let mut start = 0;
        // Allocates only when there are new symbols.
        let new_symbols: Vec<&str> = delta_ends
            .iter()
            .map(|&end| {
                let s = delta.get(start..end).unwrap_or("");
                start = end;
                s
            })
            .collect();
        let n = batch.len();
        let filter = batch.stage == Stage::Filter;
        let column = |wanted: bool, len: usize| wanted && filter && len == n;
        let wire = types::Batch {
            stage: match batch.stage {
                Stage::Relabel => types::Stage::Relabel,
                Stage::Filter => types::Stage::Filter,
                Stage::Write => types::Stage::Write,
            },
            symbol_base: *base,
            new_symbols: &new_symbols,
            labels: &batch.labels,
            offsets: &batch.offsets,
            values: if column(needs.values, batch.values.len()) {
                &batch.values
            } else {
                &[]
            },
            timestamps_ms: if column(needs.timestamps, batch.timestamps_ms.len()) {
                &batch.timestamps_ms
            } else {
                &[]
            },
            target_labels: if needs.target_labels { &batch.target_labels } else { &[] },
        };
        store.data_mut().take_limit_hit();
        store.set_epoch_deadline(ticks + (delta_ends.len() as u64).div_ceil(NEW_SYMBOLS_PER_EXTRA_TICK));
        match guest.trawl_plugin_plugin().call_process(&mut *store, wire) {
            Ok(answer) => {
                // The guest appended the delta, whatever it answers, unless it saw a gap.
                if !matches!(answer, Err(types::PluginError::SymbolGap(_))) {
                    *base += delta_ends.len() as u32;
                }
                Ok(answer)
            }
            Err(e) => Err(Failure::from_call(&e, store.data_mut().take_limit_hit())),
        }
    }

    fn reset_symbols(&mut self, ticks: u64) -> Result<(), Failure> {
        self.store.set_epoch_deadline(ticks);
        let result = self.guest.trawl_plugin_plugin().call_reset_symbols(&mut self.store);
        result.map_err(|e| Failure::from_call(&e, self.store.data_mut().take_limit_hit()))?;
        self.base = 0;
        Ok(())
    }
}

/// A `plugin-error` as a log message.
fn describe(e: &types::PluginError) -> String {
    match e {
        types::PluginError::InvalidConfig(m) => format!("invalid-config: {m}"),
        types::PluginError::SymbolGap(len) => format!("symbol-gap({len}) right after reset-symbols"),
        types::PluginError::Failed(m) => m.clone(),
    }
}
