//! The filter stage of a scrape: each filter plugin, in config order, sees every sample still
//! kept (its series' final labels as cached symbol ids, plus values and timestamps when the
//! plugin asks) in one call, and may drop samples, replace values or change labels. Nothing is
//! cached: the next scrape asks again.

use trawl_model::labels::Labels;

use super::append::{Deferred, Fate, Pass};
use super::cache::SeriesCache;
use crate::plugin::{Batch, PluginHost, Stage, StagePlugins, Verdict, intern_pairs};

/// The symbol ids of each label set, cached with the series so a scrape does not intern.
pub(super) fn intern(host: &PluginHost, sets: &[Labels]) -> Vec<Box<[u32]>> {
    let mut symbols = host.symbols().lock();
    let mut pairs = Vec::new();
    sets.iter()
        .map(|lset| {
            intern_pairs(&mut symbols, lset, &mut pairs);
            pairs.as_slice().into()
        })
        .collect()
}

/// Buffers of the filter stage, kept by a target's appender from scrape to scrape.
#[derive(Debug)]
pub(super) struct Scratch {
    batch: Batch,
    /// Position in the scrape's deferred samples of each series of `batch`.
    members: Vec<usize>,
    pairs: Vec<u32>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            batch: Batch::new(Stage::Filter, 0),
            members: Vec::new(),
            pairs: Vec::new(),
        }
    }
}

impl Scratch {
    /// Runs the filter plugins on `deferred` (the scrape's samples, in body order), updating
    /// each sample's fate and value. Returns the label sets of samples whose labels a plugin
    /// changed (indexed by [`Fate::Relabeled`]); nothing to do without filter plugins.
    ///
    /// # Errors
    /// [`Pass::Stale`] when the cached symbol ids are not of the symbol table's current
    /// generation (`generation` is the one the cache holds ids of).
    pub(super) fn run(
        &mut self,
        plugins: &StagePlugins,
        generation: u32,
        deferred: &mut [Deferred],
        cache: &SeriesCache,
        target: &Labels,
    ) -> Result<Vec<Labels>, Pass> {
        let Some(host) = plugins.host() else {
            return Ok(Vec::new());
        };
        let Scratch { batch, members, pairs } = self;
        let mut relabeled: Vec<Labels> = Vec::new();
        for plugin in plugins.plugins() {
            let needs = plugin.needs();
            let mut symbols = host.symbols().lock();
            if symbols.generation() != generation {
                return Err(Pass::Stale);
            }
            batch.clear(generation);
            batch.target_labels.clear();
            members.clear();
            for (k, d) in deferred.iter().enumerate() {
                let ids: &[u32] = match d.fate {
                    Fate::Dropped => continue,
                    Fate::Cached if cache.entry(d.position).series.is_none() => continue,
                    Fate::Cached => cache.entry(d.position).symbols.as_deref().map_or(&[], |ids| &ids[..]),
                    Fate::Relabeled(i) => {
                        intern_pairs(&mut symbols, &relabeled[i], pairs);
                        pairs
                    }
                };
                batch.push_series(ids);
                if needs.values {
                    batch.values.push(d.value);
                }
                if needs.timestamps {
                    batch.timestamps_ms.push(d.timestamp_ms);
                }
                members.push(k);
            }
            if batch.is_empty() {
                break;
            }
            if needs.target_labels {
                intern_pairs(&mut symbols, target, &mut batch.target_labels);
            }
            drop(symbols);
            let outcome = plugin.process(batch).map_err(|_| Pass::Stale)?;
            if outcome.keeps_all() {
                continue;
            }
            let symbols = host.symbols().lock();
            if symbols.generation() != generation {
                return Err(Pass::Stale);
            }
            for (i, &k) in members.iter().enumerate() {
                let d = &mut deferred[k];
                match outcome.verdict(i) {
                    Verdict::Keep => {}
                    Verdict::Drop => d.fate = Fate::Dropped,
                    Verdict::Modified => {
                        if let Some(value) = outcome.value(i) {
                            d.value = value;
                        }
                        // A new value alone keeps the prepared series.
                        if outcome.relabels(i) {
                            relabeled.push(outcome.labels(i, batch, &symbols));
                            d.fate = Fate::Relabeled(relabeled.len() - 1);
                        }
                    }
                }
            }
        }
        Ok(relabeled)
    }
}
