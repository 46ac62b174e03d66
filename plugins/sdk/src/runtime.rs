//! The guest side of the WIT `plugin` interface, independent of wit-bindgen: `init`,
//! `process` and `reset-symbols` over the [`wire`] types. The Wasm glue calls it with
//! wit-bindgen's types; the native `testing` harness calls it with the stub
//! types, so both run this same code.

use crate::batch::Batch;
use crate::plugin::{Error, Plugin, Stage};
use crate::symbols::SymbolTable;
use crate::view::Columns;
use crate::wire;

/// One plugin instance's state: the plugin (after `init`) and the guest's symbol table.
#[derive(Debug, Default)]
pub struct Runtime<P> {
    plugin: Option<P>,
    symbols: SymbolTable,
}

impl<P: Plugin> Runtime<P> {
    /// A runtime before `init`, with an empty symbol table.
    pub fn new() -> Self {
        Runtime {
            plugin: None,
            symbols: SymbolTable::default(),
        }
    }

    /// WIT `init`: parses `config_json` (empty text counts as `{}`) and builds the plugin.
    /// Errors: `invalid-config` with the plugin's message, or with serde's for text that is not
    /// JSON. Symbols already received are kept.
    pub fn init(&mut self, config_json: &str) -> Result<wire::PluginInfo, wire::PluginError> {
        let config = if config_json.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(config_json)
                .map_err(|error| wire::PluginError::InvalidConfig(format!("config is not valid JSON: {error}")))?
        };
        let plugin = P::new(config).map_err(|error| match error {
            Error::InvalidConfig(message) => wire::PluginError::InvalidConfig(message),
            other => wire::PluginError::InvalidConfig(other.to_string()),
        })?;
        let needs = plugin.needs();
        let mut flags = wire::Needs::empty();
        flags.set(wire::Needs::VALUES, needs.values);
        flags.set(wire::Needs::TIMESTAMPS, needs.timestamps);
        flags.set(wire::Needs::TARGET_LABELS, needs.target_labels);
        self.plugin = Some(plugin);
        Ok(wire::PluginInfo {
            name: P::NAME.to_owned(),
            version: P::VERSION.to_owned(),
            needs: flags,
        })
    }

    /// WIT `process`. Errors: `symbol-gap(len)` when `symbol-base` is not the table's size
    /// (the batch is ignored, its symbols too); `failed` before `init`, for a malformed batch
    /// (see `check`) or when the plugin fails.
    pub fn process(&mut self, batch: wire::Batch) -> Result<wire::Outcome, wire::PluginError> {
        let wire::Batch {
            stage,
            symbol_base,
            new_symbols,
            labels,
            offsets,
            values,
            timestamps_ms,
            target_labels,
        } = batch;
        let known = self.symbols.len();
        if symbol_base as usize != known {
            return Err(wire::PluginError::SymbolGap(u32::try_from(known).unwrap_or(u32::MAX)));
        }
        // The symbols are ours once the base matched, even if this call fails below: the host
        // counts them as sent.
        self.symbols.extend(new_symbols);
        let Some(plugin) = self.plugin.as_mut() else {
            return Err(wire::PluginError::Failed("process called before init".to_owned()));
        };
        let columns = Columns {
            stage: match stage {
                wire::Stage::Relabel => Stage::Relabel,
                wire::Stage::Filter => Stage::Filter,
                wire::Stage::Write => Stage::Write,
            },
            symbols: &self.symbols,
            labels: &labels,
            offsets: &offsets,
            values: &values,
            timestamps: &timestamps_ms,
            target: &target_labels,
        };
        check(&columns).map_err(|reason| wire::PluginError::Failed(format!("malformed batch: {reason}")))?;
        let mut batch = Batch::new(columns);
        plugin
            .process(&mut batch)
            .map_err(|error| wire::PluginError::Failed(error.to_string()))?;
        Ok(batch.into_outcome())
    }

    /// WIT `reset-symbols`: empties the symbol table; the next batch starts at id 0.
    pub fn reset_symbols(&mut self) {
        self.symbols.clear();
    }
}

/// Checks the batch's shape: offsets even, non-decreasing and inside `labels`, one value and
/// timestamp per series (or none), target ids known. Linear in the number of series, not of
/// labels: checking every label id costs ~12 ns per series in Wasm, so series' ids are not
/// checked here; an unknown one (a host bug) reads as `""` (see `SymbolTable::resolve`).
fn check(columns: &Columns<'_>) -> Result<(), String> {
    let known = columns.symbols.len();
    if let Some(max) = columns.target.iter().copied().max()
        && max as usize >= known
    {
        return Err(format!("target symbol {max} is not among the {known} sent"));
    }
    if !columns.target.len().is_multiple_of(2) {
        return Err(format!("target-labels has odd length {}", columns.target.len()));
    }
    let mut previous = 0;
    for &offset in columns.offsets {
        if offset < previous || !offset.is_multiple_of(2) {
            return Err(format!(
                "offset {offset} after {previous} (offsets must be even and non-decreasing)"
            ));
        }
        previous = offset;
    }
    if previous as usize > columns.labels.len() {
        return Err(format!(
            "offset {previous} is past the {} label ids",
            columns.labels.len()
        ));
    }
    let series = columns.len();
    for (column, len) in [
        ("values", columns.values.len()),
        ("timestamps-ms", columns.timestamps.len()),
    ] {
        if len != 0 && len != series {
            return Err(format!("{column} has {len} entries for {series} series"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
