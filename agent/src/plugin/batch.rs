//! The batch a caller builds for [`Plugin::process`](super::Plugin::process): the series of one
//! target as symbol ids in flat lists, shaped like the WIT `batch` record minus the symbol delta
//! (each plugin adds its own).

use serde::Deserialize;

/// Where in the pipeline a batch comes from (WIT `stage`); config spelling is lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Series new to a target's series cache, after `metric_relabel_configs`; labels only.
    Relabel,
    /// Every series of one scrape, with values when the plugin asks for them.
    Filter,
    /// Series new to a `remote_write` endpoint, after its `write_relabel_configs`; labels only.
    Write,
}

impl Stage {
    /// The stage as written in configs and in the `stage` label of the plugin metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Relabel => "relabel",
            Stage::Filter => "filter",
            Stage::Write => "write",
        }
    }

    /// Every stage, for pre-initialising metric series.
    pub const ALL: [Stage; 3] = [Stage::Relabel, Stage::Filter, Stage::Write];
}

/// A batch of series of one target, built by the caller under one
/// [`SymbolsGuard`](super::SymbolsGuard) and reusable across calls ([`clear`](Self::clear) keeps
/// the allocations).
///
/// Invariants (kept by [`push_series`](Self::push_series) and [`push_sample`](Self::push_sample);
/// a caller filling the fields directly keeps them too): `offsets` has `len() + 1` entries, starts
/// at 0, is non-decreasing and even, and ends at `labels.len()`; each series' pairs are sorted by
/// name with unique names; every id was interned in `generation`; `values` and `timestamps_ms` are
/// empty or have one entry per series.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The stage the batch is for.
    pub stage: Stage,
    /// The symbol-table generation the ids belong to ([`SymbolsGuard::generation`](super::SymbolsGuard::generation)).
    pub generation: u32,
    /// Label pairs of every series as symbol ids: `name, value, name, value, …`.
    pub labels: Vec<u32>,
    /// `len() + 1` offsets into `labels`: series `i` is `labels[offsets[i]..offsets[i + 1]]`.
    pub offsets: Vec<u32>,
    /// Sample values, one per series (filter stage), or empty.
    pub values: Vec<f64>,
    /// Sample timestamps in milliseconds since the Unix epoch, one per series, or empty.
    pub timestamps_ms: Vec<i64>,
    /// The target's label pairs as symbol ids, sorted by name.
    pub target_labels: Vec<u32>,
}

impl Batch {
    /// An empty batch for `stage` in symbol generation `generation`.
    pub fn new(stage: Stage, generation: u32) -> Batch {
        Batch {
            stage,
            generation,
            labels: Vec::new(),
            offsets: vec![0],
            values: Vec::new(),
            timestamps_ms: Vec::new(),
            target_labels: Vec::new(),
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether the batch has no series.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the batch for reuse in `generation`, keeping stage, target labels and allocations.
    pub fn clear(&mut self, generation: u32) {
        self.generation = generation;
        self.labels.clear();
        self.offsets.clear();
        self.offsets.push(0);
        self.values.clear();
        self.timestamps_ms.clear();
    }

    /// Appends a series given as `name, value, …` ids, sorted by name.
    pub fn push_series(&mut self, pairs: &[u32]) {
        self.labels.extend_from_slice(pairs);
        self.offsets.push(self.labels.len() as u32);
    }

    /// Appends a series with its sample (filter stage).
    pub fn push_sample(&mut self, pairs: &[u32], value: f64, timestamp_ms: i64) {
        self.push_series(pairs);
        self.values.push(value);
        self.timestamps_ms.push(timestamp_ms);
    }

    /// The `name, value, …` ids of series `i` (empty if out of range or malformed).
    pub fn series(&self, i: usize) -> &[u32] {
        let (Some(&start), Some(&end)) = (self.offsets.get(i), self.offsets.get(i + 1)) else {
            return &[];
        };
        self.labels.get(start as usize..end as usize).unwrap_or(&[])
    }
}
