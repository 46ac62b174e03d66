//! A plugin's validated answer for one batch, and how it applies to the batch's series.
//!
//! Validation is the host's side of the WIT contract: one verdict per series, verdict bytes
//! 0/1/2, edits only on `modified` series, symbol ids the guest had, valid label names,
//! `__name__` neither removed nor emptied, `set-value` only in the filter stage. Anything else
//! fails the call (`invalid_output`), so applying a validated outcome cannot fail.

use trawl_model::labels::{Labels, METRIC_NAME, is_valid_label_name};

use super::bindings::trawl::plugin::types::{self, Text};
use super::failure::Failure;
use super::{Batch, Stage, StaleSymbols, Symbols, SymbolsGuard};

/// What happens to one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Kept unchanged.
    Keep,
    /// Dropped.
    Drop,
    /// Kept with edits: see [`Outcome::labels`] and [`Outcome::value`].
    Modified,
}

/// The verdicts of a batch: uniform ones (policy outcomes) need no allocation.
#[derive(Debug, Clone)]
enum Verdicts {
    All(Verdict, usize),
    Each(Vec<u8>),
}

/// A validated outcome for one batch; see the module docs. Edits are sorted by series.
#[derive(Debug, Clone)]
pub struct Outcome {
    verdicts: Verdicts,
    set_labels: Vec<types::SetLabel>,
    remove_labels: Vec<types::RemoveLabel>,
    set_values: Vec<types::SetValue>,
    dropped: usize,
    modified: usize,
}

impl Outcome {
    /// Keeps all `n` series unchanged (also `fail_open`'s outcome).
    pub fn keep_all(n: usize) -> Outcome {
        Outcome::uniform(Verdict::Keep, n)
    }

    /// Drops all `n` series (`fail_closed`'s outcome).
    pub fn drop_all(n: usize) -> Outcome {
        Outcome {
            dropped: n,
            ..Outcome::uniform(Verdict::Drop, n)
        }
    }

    fn uniform(verdict: Verdict, n: usize) -> Outcome {
        Outcome {
            verdicts: Verdicts::All(verdict, n),
            set_labels: Vec::new(),
            remove_labels: Vec::new(),
            set_values: Vec::new(),
            dropped: 0,
            modified: 0,
        }
    }

    /// Number of series (the batch's length).
    pub fn len(&self) -> usize {
        match &self.verdicts {
            Verdicts::All(_, n) => *n,
            Verdicts::Each(v) => v.len(),
        }
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of dropped series.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Number of modified series.
    pub fn modified(&self) -> usize {
        self.modified
    }

    /// Whether every series is kept unchanged, so the caller can skip applying the outcome.
    pub fn keeps_all(&self) -> bool {
        self.dropped == 0 && self.modified == 0
    }

    /// The verdict of series `i` ([`Verdict::Keep`] past the end).
    pub fn verdict(&self, i: usize) -> Verdict {
        match &self.verdicts {
            Verdicts::All(v, n) if i < *n => *v,
            Verdicts::All(..) => Verdict::Keep,
            Verdicts::Each(v) => match v.get(i) {
                Some(1) => Verdict::Drop,
                Some(2) => Verdict::Modified,
                _ => Verdict::Keep,
            },
        }
    }

    /// The final labels of series `i`: its batch labels, with the edits applied if it is
    /// `Modified` (removals, then sets in order; an empty value removes the label, as in
    /// Prometheus). Created strings are used as is; ids resolve through `symbols`, which must be
    /// a guard of the batch's generation (ids that do not resolve are skipped).
    pub fn labels(&self, i: usize, batch: &Batch, symbols: &SymbolsGuard<'_>) -> Labels {
        let mut labels = Labels::from_pairs(
            batch
                .series(i)
                .chunks_exact(2)
                .filter_map(|pair| Some((symbols.resolve(pair[0])?, symbols.resolve(pair[1])?))),
        );
        if self.verdict(i) != Verdict::Modified {
            return labels;
        }
        let series = i as u32;
        for remove in edits_of(&self.remove_labels, series, |e| e.series) {
            if let Some(name) = symbols.resolve(remove.name) {
                labels.remove(name);
            }
        }
        for set in edits_of(&self.set_labels, series, |e| e.series) {
            if let (Some(name), Some(value)) = (text(&set.name, symbols), text(&set.value, symbols)) {
                labels.set(name.to_owned(), value.to_owned());
            }
        }
        labels
    }

    /// Whether the plugin changed the labels of series `i` (a `Modified` series may change only
    /// its value), so callers keep the series they have when it did not.
    pub fn relabels(&self, i: usize) -> bool {
        let series = i as u32;
        self.verdict(i) == Verdict::Modified
            && !(edits_of(&self.set_labels, series, |e| e.series).is_empty()
                && edits_of(&self.remove_labels, series, |e| e.series).is_empty())
    }

    /// The value of series `i` replaced by the plugin (filter stage), if any; the last
    /// `set-value` of a series wins.
    pub fn value(&self, i: usize) -> Option<f64> {
        if self.verdict(i) != Verdict::Modified {
            return None;
        }
        edits_of(&self.set_values, i as u32, |e| e.series)
            .last()
            .map(|e| e.value)
    }

    /// Validates a guest's outcome for `batch`. `guest_symbols` is the size of the guest's
    /// table during the call (ids at or above it are unknown to the guest).
    pub(super) fn validate(
        raw: types::Outcome,
        batch: &Batch,
        guest_symbols: u32,
        symbols: &Symbols,
    ) -> Result<Outcome, Failure> {
        let types::Outcome {
            verdicts,
            mut set_labels,
            mut remove_labels,
            mut set_values,
        } = raw;
        let n = batch.len();
        let invalid = |m: String| Err(Failure::InvalidOutput(m));
        if verdicts.len() != n {
            return invalid(format!("{} verdicts for {n} series", verdicts.len()));
        }
        let (mut dropped, mut modified) = (0, 0);
        for (i, v) in verdicts.iter().enumerate() {
            match v {
                0 => {}
                1 => dropped += 1,
                2 => modified += 1,
                _ => return invalid(format!("verdict {v} of series {i} is not 0, 1 or 2")),
            }
        }
        let check_series = |what: &str, series: u32| match verdicts.get(series as usize) {
            Some(2) => Ok(()),
            Some(_) => Err(Failure::InvalidOutput(format!(
                "{what} edits series {series}, whose verdict is not modified"
            ))),
            None => Err(Failure::InvalidOutput(format!(
                "{what} edits series {series} of a batch of {n}"
            ))),
        };
        for e in &set_labels {
            check_series("set-label", e.series)?;
        }
        for e in &remove_labels {
            check_series("remove-label", e.series)?;
        }
        for e in &set_values {
            check_series("set-value", e.series)?;
        }
        if !set_values.is_empty() && batch.stage != Stage::Filter {
            return invalid(format!("set-value in the {} stage (only filter)", batch.stage.as_str()));
        }
        if !set_labels.is_empty() || !remove_labels.is_empty() {
            let guard = symbols.current();
            if guard.generation() != batch.generation {
                return Err(Failure::Stale(StaleSymbols {
                    batch: batch.generation,
                    current: guard.generation(),
                }));
            }
            let known = |id: u32| (id < guest_symbols).then(|| guard.resolve(id)).flatten();
            for e in &remove_labels {
                match known(e.name) {
                    None => return invalid(unknown(e.name, guest_symbols)),
                    Some(METRIC_NAME) => return invalid(format!("remove-label removes {METRIC_NAME}")),
                    Some(_) => {}
                }
            }
            for e in &set_labels {
                let name = resolve(&e.name, known).map_err(Failure::InvalidOutput)?;
                let value = resolve(&e.value, known).map_err(Failure::InvalidOutput)?;
                if !is_valid_label_name(name) {
                    return invalid(format!("set-label sets invalid label name {name:?}"));
                }
                if name == METRIC_NAME && value.is_empty() {
                    return invalid(format!("set-label empties {METRIC_NAME}"));
                }
            }
        }
        // Stable sorts keep the list order of edits of one series, which the WIT makes significant.
        if !set_labels.is_sorted_by_key(|e| e.series) {
            set_labels.sort_by_key(|e| e.series);
        }
        if !remove_labels.is_sorted_by_key(|e| e.series) {
            remove_labels.sort_by_key(|e| e.series);
        }
        if !set_values.is_sorted_by_key(|e| e.series) {
            set_values.sort_by_key(|e| e.series);
        }
        Ok(Outcome {
            verdicts: Verdicts::Each(verdicts),
            set_labels,
            remove_labels,
            set_values,
            dropped,
            modified,
        })
    }
}

fn unknown(id: u32, guest_symbols: u32) -> String {
    format!("symbol id {id} is not in the plugin's table of {guest_symbols} symbols")
}

/// The string of an edit's text, for validation: symbols must be among the guest's.
fn resolve<'a>(t: &'a Text, known: impl Fn(u32) -> Option<&'a str>) -> Result<&'a str, String> {
    match t {
        Text::Symbol(id) => known(*id).ok_or_else(|| format!("set-label names symbol id {id}, unknown to the plugin")),
        Text::New(s) => Ok(s),
    }
}

fn text<'a>(t: &'a Text, symbols: &'a SymbolsGuard<'_>) -> Option<&'a str> {
    match t {
        Text::Symbol(id) => symbols.resolve(*id),
        Text::New(s) => Some(s),
    }
}

/// The edits of `series` in a list sorted by series.
fn edits_of<E>(edits: &[E], series: u32, key: impl Fn(&E) -> u32) -> &[E] {
    let start = edits.partition_point(|e| key(e) < series);
    let end = start + edits[start..].partition_point(|e| key(e) == series);
    &edits[start..end]
}
