//! The plugins of one pipeline stage, as the scrape loops and remote write run them: label sets
//! in, label sets (or drops) out, one call per plugin per batch.

use trawl_model::labels::Labels;

use super::{Batch, Outcome, Plugin, PluginHost, Stage, SymbolsGuard, Verdict};

/// The plugins a job or endpoint runs at one stage, in config order, with the host whose
/// symbol table they share. Empty when the config names none; cheap to clone.
#[derive(Debug, Clone)]
pub struct StagePlugins {
    stage: Stage,
    plugins: Vec<Plugin>,
    host: Option<PluginHost>,
}

impl StagePlugins {
    /// No plugins at `stage`.
    pub fn none(stage: Stage) -> StagePlugins {
        StagePlugins {
            stage,
            plugins: Vec::new(),
            host: None,
        }
    }

    /// `plugins` (loaded by `host`) run at `stage` in this order.
    pub fn new(stage: Stage, plugins: Vec<Plugin>, host: &PluginHost) -> StagePlugins {
        let host = (!plugins.is_empty()).then(|| host.clone());
        StagePlugins { stage, plugins, host }
    }

    /// Whether no plugin runs at this stage.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plugins, in order.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The host, when any plugin runs.
    pub fn host(&self) -> Option<&PluginHost> {
        self.host.as_ref()
    }

    /// Changes whenever one of the plugins is hot-reloaded: outcomes cached under another value
    /// are outdated.
    pub fn version(&self) -> u64 {
        self.plugins
            .iter()
            .fold(0, |acc, p| acc.wrapping_mul(31).wrapping_add(p.version()))
    }

    /// Runs every plugin, in order, on the label sets still present; a plugin's drop turns a
    /// set into `None`, its edits replace it. `target` is the target's labels, sent to plugins
    /// that ask for them. Failed calls follow each plugin's `on_error` (see [`Plugin::process`]).
    pub fn apply(&self, series: &mut [Option<Labels>], target: &Labels) {
        let Some(host) = &self.host else { return };
        let mut positions = Vec::new();
        let mut pairs = Vec::new();
        for plugin in &self.plugins {
            // A batch built under an older symbol generation is rebuilt; generations end
            // rarely (the table's cap), so this loops at most a few times.
            loop {
                let mut symbols = host.symbols().lock();
                let mut batch = Batch::new(self.stage, symbols.generation());
                positions.clear();
                for (i, lset) in series.iter().enumerate() {
                    if let Some(lset) = lset {
                        intern_pairs(&mut symbols, lset, &mut pairs);
                        batch.push_series(&pairs);
                        positions.push(i);
                    }
                }
                if batch.is_empty() {
                    return;
                }
                if plugin.needs().target_labels {
                    intern_pairs(&mut symbols, target, &mut batch.target_labels);
                }
                drop(symbols);
                let Ok(outcome) = plugin.process(&batch) else { continue };
                if apply_outcome(&outcome, &batch, &positions, series, host) {
                    break;
                }
            }
        }
    }
}

/// Applies `outcome` to the series at `positions`; false when the symbol table moved to a new
/// generation before the edits could be resolved (the caller calls again).
fn apply_outcome(
    outcome: &Outcome,
    batch: &Batch,
    positions: &[usize],
    series: &mut [Option<Labels>],
    host: &PluginHost,
) -> bool {
    if outcome.keeps_all() {
        return true;
    }
    let symbols = host.symbols().lock();
    if outcome.modified() > 0 && symbols.generation() != batch.generation {
        return false;
    }
    for (i, &position) in positions.iter().enumerate() {
        match outcome.verdict(i) {
            Verdict::Keep => {}
            Verdict::Drop => series[position] = None,
            Verdict::Modified => series[position] = Some(outcome.labels(i, batch, &symbols)),
        }
    }
    true
}

/// The ids of `lset`'s pairs, `name, value, …`, into `out` (cleared first).
pub fn intern_pairs(symbols: &mut SymbolsGuard<'_>, lset: &Labels, out: &mut Vec<u32>) {
    out.clear();
    for l in lset {
        out.push(symbols.intern(&l.name));
        out.push(symbols.intern(&l.value));
    }
}
