//! A batch as a plugin sees it: views to read, and edits that become the WIT `outcome`.
//!
//! Edits are recorded, not applied: the host applies them (remove-labels, then set-labels in
//! order, then set-values) to series whose verdict is `modified`. The methods here translate
//! call order into that shape, so `set_label(i, "a", "x")` followed by `remove_label(i, "a")`
//! ends without `a`, and a series dropped after an edit carries no edits.

use crate::memo::Symbol;
use crate::plugin::{Error, Stage, is_valid_label_name};
use crate::symbols::{METRIC_NAME, SymbolTable};
use crate::view::{Columns, Labels, Series, SeriesIter};
use crate::wire;

/// Verdict bytes of the WIT `outcome.verdicts`.
const KEEP: u8 = 0;
const DROP: u8 = 1;
const MODIFIED: u8 = 2;

/// One batch of series from one target, handed to [`Plugin::process`](crate::Plugin::process).
///
/// Read with [`Batch::series`] (or [`Batch::series_at`]); views show the labels as the host
/// sent them, not this call's edits. Decide with [`Batch::drop`], [`Batch::set_label`],
/// [`Batch::remove_label`] and [`Batch::set_value`]; series left alone are kept as they are,
/// which costs nothing.
pub struct Batch<'a> {
    columns: Columns<'a>,
    verdicts: Vec<u8>,
    set_labels: Vec<wire::SetLabel>,
    remove_labels: Vec<wire::RemoveLabel>,
    set_values: Vec<wire::SetValue>,
    /// A series with edits was dropped: its edits must go before the outcome is sent.
    dropped_edited: bool,
}

impl<'a> Batch<'a> {
    /// A batch over validated columns, every series kept.
    pub(crate) fn new(columns: Columns<'a>) -> Self {
        Batch {
            verdicts: vec![KEEP; columns.len()],
            columns,
            set_labels: Vec::new(),
            remove_labels: Vec::new(),
            set_values: Vec::new(),
            dropped_edited: false,
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    /// Whether the batch has no series.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
    }

    /// The pipeline stage this batch comes from.
    pub fn stage(&self) -> Stage {
        self.columns.stage
    }

    /// The target's labels (`job`, `instance`, …); empty unless the plugin needs
    /// `target_labels`.
    pub fn target(&self) -> Labels<'a> {
        Labels::new(self.columns.target, self.columns.symbols)
    }

    /// The series in batch order. The iterator does not borrow `self`, so the loop body may
    /// edit the batch.
    pub fn series(&self) -> SeriesIter<'a> {
        SeriesIter::new(self.columns)
    }

    /// Series `index`, if the batch has it.
    pub fn series_at(&self, index: usize) -> Option<Series<'a>> {
        self.columns.series(index)
    }

    /// The sample value of series `index`; `None` unless the plugin needs values and the stage
    /// is `filter`, or when `index` is out of range.
    pub fn value(&self, index: usize) -> Option<f64> {
        self.columns.values.get(index).copied()
    }

    /// The sample timestamp of series `index` in ms since the Unix epoch; `None` unless the
    /// plugin needs timestamps and the stage is `filter`, or when `index` is out of range.
    pub fn timestamp_ms(&self, index: usize) -> Option<i64> {
        self.columns.timestamps.get(index).copied()
    }

    /// The string of a [`Symbol`] from this batch or an earlier one; `""` for a symbol from
    /// before the last symbol reset that this table does not have.
    pub fn resolve(&self, symbol: Symbol) -> &'a str {
        self.columns.symbols.resolve(symbol.0)
    }

    /// The plugin's symbol table, for [`SymbolMemo`](crate::SymbolMemo).
    pub(crate) fn symbol_table(&self) -> &'a SymbolTable {
        self.columns.symbols
    }

    /// Whether series `index` has been dropped in this call.
    pub fn is_dropped(&self, index: usize) -> bool {
        self.verdicts.get(index) == Some(&DROP)
    }

    /// Drops series `index`. Dropping wins over edits, before or after.
    ///
    /// Errors: [`Error::NoSuchSeries`].
    pub fn drop(&mut self, index: usize) -> Result<(), Error> {
        let verdict = self.verdict_mut(index)?;
        let edited = *verdict == MODIFIED;
        *verdict = DROP;
        self.dropped_edited |= edited;
        Ok(())
    }

    /// Sets label `name` of series `index` to `value`, adding it if absent; an empty `value`
    /// removes the label, as in Prometheus. Setting a label to the value it already has is not
    /// an edit. No-op on a dropped series.
    ///
    /// Errors: [`Error::NoSuchSeries`], [`Error::InvalidLabelName`], and
    /// [`Error::MetricNameRemoved`] for an empty `__name__`.
    pub fn set_label(&mut self, index: usize, name: &str, value: &str) -> Result<(), Error> {
        let verdict = *self.verdict_mut(index)?;
        if !is_valid_label_name(name) {
            return Err(Error::InvalidLabelName(name.to_owned()));
        }
        if value.is_empty() && name == METRIC_NAME {
            return Err(Error::MetricNameRemoved);
        }
        if verdict == DROP {
            return Ok(());
        }
        let labels = Labels::new(self.columns.pairs(index), self.columns.symbols);
        let current = labels.position(name).map(|at| labels.ids_at(at));
        let unchanged = current.is_some_and(|(_, id)| self.columns.symbols.resolve(id) == value);
        // With no earlier edit the host's labels are the final ones, so an unchanged label
        // needs nothing; after edits, a set may undo an earlier remove and must be sent.
        if verdict == KEEP && (unchanged || (current.is_none() && value.is_empty())) {
            return Ok(());
        }
        let name = match current {
            Some((name_id, _)) => wire::Text::Symbol(name_id),
            None => self.text(name),
        };
        let value = match current {
            Some((_, value_id)) if unchanged => wire::Text::Symbol(value_id),
            _ => self.text(value),
        };
        self.set_labels.push(wire::SetLabel {
            series: series_id(index),
            name,
            value,
        });
        self.verdicts[index] = MODIFIED;
        Ok(())
    }

    /// Removes label `name` from series `index`; a no-op if the series has no such label or is
    /// dropped.
    ///
    /// Errors: [`Error::NoSuchSeries`], [`Error::MetricNameRemoved`] for `__name__`.
    pub fn remove_label(&mut self, index: usize, name: &str) -> Result<(), Error> {
        let verdict = *self.verdict_mut(index)?;
        if name == METRIC_NAME {
            return Err(Error::MetricNameRemoved);
        }
        let labels = Labels::new(self.columns.pairs(index), self.columns.symbols);
        let current = labels.position(name).map(|at| labels.ids_at(at));
        match (verdict, current) {
            (DROP, _) => {}
            (KEEP, None) => {}
            (KEEP, Some((name_id, _))) => {
                self.remove_labels.push(wire::RemoveLabel {
                    series: series_id(index),
                    name: name_id,
                });
                self.verdicts[index] = MODIFIED;
            }
            // An earlier set_label may have added or changed the label, and the host applies
            // removes before sets; an empty set after it removes the label in call order.
            (_, current) => {
                let name = match current {
                    Some((name_id, _)) => wire::Text::Symbol(name_id),
                    // Never set (set_label rejects the name) and not present: nothing to do.
                    None if !is_valid_label_name(name) => return Ok(()),
                    None => self.text(name),
                };
                let value = self.text("");
                self.set_labels.push(wire::SetLabel {
                    series: series_id(index),
                    name,
                    value,
                });
            }
        }
        Ok(())
    }

    /// Replaces the sample value of series `index` (filter stage only; in the other stages
    /// the outcome is cached per series and values are not sent). No-op on a dropped series.
    ///
    /// Errors: [`Error::NoSuchSeries`], [`Error::ValueOutsideFilter`].
    pub fn set_value(&mut self, index: usize, value: f64) -> Result<(), Error> {
        let verdict = *self.verdict_mut(index)?;
        let stage = self.columns.stage;
        if stage != Stage::Filter {
            return Err(Error::ValueOutsideFilter(stage));
        }
        let unchanged = self.value(index).is_some_and(|old| old.to_bits() == value.to_bits());
        if verdict == DROP || (verdict == KEEP && unchanged) {
            return Ok(());
        }
        self.set_values.push(wire::SetValue {
            series: series_id(index),
            value,
        });
        self.verdicts[index] = MODIFIED;
        Ok(())
    }

    /// The WIT outcome: verdicts, and the edits of series still `modified`.
    pub(crate) fn into_outcome(self) -> wire::Outcome {
        let Batch {
            verdicts,
            mut set_labels,
            mut remove_labels,
            mut set_values,
            dropped_edited,
            ..
        } = self;
        if dropped_edited {
            let modified = |series: u32| verdicts.get(series as usize) == Some(&MODIFIED);
            set_labels.retain(|edit| modified(edit.series));
            remove_labels.retain(|edit| modified(edit.series));
            set_values.retain(|edit| modified(edit.series));
        }
        wire::Outcome {
            verdicts,
            set_labels,
            remove_labels,
            set_values,
        }
    }

    fn verdict_mut(&mut self, index: usize) -> Result<&mut u8, Error> {
        let len = self.verdicts.len();
        self.verdicts.get_mut(index).ok_or(Error::NoSuchSeries { index, len })
    }

    /// `string` as a symbol when the guest's table has it, else as a new string.
    fn text(&self, string: &str) -> wire::Text {
        match self.columns.symbols.lookup(string) {
            Some(id) => wire::Text::Symbol(id),
            None => wire::Text::New(string.to_owned()),
        }
    }
}

/// A series index as the WIT's `u32`; batches are validated to hold fewer than `u32::MAX`
/// series (their offsets are `u32`).
fn series_id(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
