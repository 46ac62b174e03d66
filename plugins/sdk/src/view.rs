//! Read-only views over a batch: label sets and series, with plain `&str` access.
//!
//! Views borrow the batch's flat `labels`/`offsets` lists and the symbol table; making one
//! costs a few index loads and allocates nothing. They are `Copy` and do not borrow the
//! [`Batch`](crate::Batch) itself, so a loop over `batch.series()` may call `batch.drop(i)`.

use crate::memo::Symbol;
use crate::plugin::Stage;
use crate::symbols::{METRIC_NAME, SymbolTable};
use std::fmt;
use std::slice::ChunksExact;

/// The columns of a checked batch: offsets are even, non-decreasing and inside `labels`,
/// `values`/`timestamps` are empty or one per series, and target ids resolve. Series' ids are
/// not checked (too costly per label); an unknown one reads as `""`.
#[derive(Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub(crate) stage: Stage,
    pub(crate) symbols: &'a SymbolTable,
    pub(crate) labels: &'a [u32],
    /// `len + 1` entries.
    pub(crate) offsets: &'a [u32],
    pub(crate) values: &'a [f64],
    pub(crate) timestamps: &'a [i64],
    pub(crate) target: &'a [u32],
}

impl<'a> Columns<'a> {
    /// Number of series.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The label pairs (`name, value, …` ids) of series `index`; empty when out of range.
    pub(crate) fn pairs(&self, index: usize) -> &'a [u32] {
        let (Some(&start), Some(&end)) = (self.offsets.get(index), self.offsets.get(index + 1)) else {
            return &[];
        };
        self.labels.get(start as usize..end as usize).unwrap_or(&[])
    }

    /// The view of series `index`, if the batch has it.
    pub(crate) fn series(&self, index: usize) -> Option<Series<'a>> {
        (index < self.len()).then(|| Series {
            index,
            labels: Labels::new(self.pairs(index), self.symbols),
            value: self.values.get(index).copied(),
            timestamp_ms: self.timestamps.get(index).copied(),
        })
    }
}

/// A sorted set of labels (a series' or the target's), as `(name, value)` string pairs.
#[derive(Clone, Copy)]
pub struct Labels<'a> {
    pairs: &'a [u32],
    symbols: &'a SymbolTable,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(pairs: &'a [u32], symbols: &'a SymbolTable) -> Self {
        Labels { pairs, symbols }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len() / 2
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.pairs.len() < 2
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        if name == METRIC_NAME {
            return self.metric_name();
        }
        self.position(name)
            .map(|pair| self.symbols.resolve(self.pairs[pair + 1]))
    }

    /// Whether label `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value of label `name` as a [`Symbol`], the key of a
    /// [`SymbolMemo`](crate::SymbolMemo).
    pub fn get_symbol(&self, name: &str) -> Option<Symbol> {
        if name == METRIC_NAME {
            return self.metric_name_id().map(Symbol);
        }
        self.position(name).map(|pair| Symbol(self.pairs[pair + 1]))
    }

    /// The value of `__name__`, compared by symbol id rather than by string.
    fn metric_name(&self) -> Option<&'a str> {
        self.metric_name_id().map(|id| self.symbols.resolve(id))
    }

    /// The symbol id of the value of `__name__`.
    fn metric_name_id(&self) -> Option<u32> {
        let id = self.symbols.metric_name_id()?;
        self.pairs
            .chunks_exact(2)
            .find(|pair| pair[0] == id)
            .map(|pair| pair[1])
    }

    /// Index into `pairs` of the pair named `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.pairs
            .chunks_exact(2)
            .position(|pair| self.symbols.resolve(pair[0]) == name)
            .map(|pair| pair * 2)
    }

    /// The symbol ids of pair `position` (from [`Labels::position`]).
    pub(crate) fn ids_at(&self, position: usize) -> (u32, u32) {
        (self.pairs[position], self.pairs[position + 1])
    }

    /// The labels in name order.
    pub fn iter(&self) -> LabelsIter<'a> {
        LabelsIter {
            pairs: self.pairs.chunks_exact(2),
            symbols: self.symbols,
        }
    }

    /// The labels in name order as `(name, value)` [`Symbol`]s, for per-string caches; turn one
    /// back into text with [`Batch::resolve`](crate::Batch::resolve).
    pub fn symbols(&self) -> impl ExactSizeIterator<Item = (Symbol, Symbol)> + use<'a> {
        self.pairs
            .chunks_exact(2)
            .map(|pair| (Symbol(pair[0]), Symbol(pair[1])))
    }
}

impl<'a> IntoIterator for Labels<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = LabelsIter<'a>;

    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Iterator over `(name, value)` pairs of a [`Labels`].
#[derive(Clone)]
pub struct LabelsIter<'a> {
    pairs: ChunksExact<'a, u32>,
    symbols: &'a SymbolTable,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let pair = self.pairs.next()?;
        Some((self.symbols.resolve(pair[0]), self.symbols.resolve(pair[1])))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.pairs.size_hint()
    }
}

impl ExactSizeIterator for LabelsIter<'_> {}

/// One series of a batch, as the host sent it (edits made during this call are not reflected).
#[derive(Clone, Copy)]
pub struct Series<'a> {
    index: usize,
    labels: Labels<'a>,
    value: Option<f64>,
    timestamp_ms: Option<i64>,
}

impl<'a> Series<'a> {
    /// Position in the batch, the index the edit methods of [`Batch`](crate::Batch) take.
    pub fn index(&self) -> usize {
        self.index
    }

    /// All labels, `__name__` included, sorted by name.
    pub fn labels(&self) -> Labels<'a> {
        self.labels
    }

    /// The metric name (`__name__`); `""` if the series has none.
    pub fn metric_name(&self) -> &'a str {
        self.labels.metric_name().unwrap_or("")
    }

    /// The metric name as a [`Symbol`], the key of a [`SymbolMemo`](crate::SymbolMemo) for
    /// per-metric decisions; `None` if the series has no `__name__`.
    pub fn metric_name_symbol(&self) -> Option<Symbol> {
        self.labels.metric_name_id().map(Symbol)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.labels.get(name)
    }

    /// The sample value; `None` unless the plugin needs values and the stage is `filter`.
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// The sample timestamp in ms since the Unix epoch; `None` unless the plugin needs
    /// timestamps and the stage is `filter`.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp_ms
    }
}

impl fmt::Debug for Series<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Series")
            .field("index", &self.index)
            .field("labels", &self.labels)
            .field("value", &self.value)
            .field("timestamp_ms", &self.timestamp_ms)
            .finish()
    }
}

/// Iterator over the series of a batch, in batch order.
#[derive(Clone)]
pub struct SeriesIter<'a> {
    columns: Columns<'a>,
    next: usize,
}

impl<'a> SeriesIter<'a> {
    pub(crate) fn new(columns: Columns<'a>) -> Self {
        SeriesIter { columns, next: 0 }
    }
}

impl<'a> Iterator for SeriesIter<'a> {
    type Item = Series<'a>;

    fn next(&mut self) -> Option<Series<'a>> {
        let series = self.columns.series(self.next)?;
        self.next += 1;
        Some(series)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.columns.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for SeriesIter<'_> {}
