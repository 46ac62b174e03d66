//! Per-string caches keyed by symbol id.
//!
//! Label names and values arrive interned, so a plugin can decide something once per distinct
//! string (does this label name match a regex? which rule applies to this metric?) and find the
//! answer again by indexing a vector, instead of hashing the string on every series. Ids name the
//! same string until the agent resets the plugin's symbol table; [`SymbolMemo`] notices the reset
//! and forgets.

use crate::batch::Batch;

/// A label name or value of a batch, as its symbol id: a cheap key for [`SymbolMemo`]. Valid for
/// the batch it came from and later batches of the same plugin instance, until a symbol reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Symbol(pub(crate) u32);

/// One `T` per symbol, computed on first use from the symbol's string.
///
/// Memory is one `Option<T>` per symbol the plugin has received (the agent caps the table), so
/// keep `T` small: a `bool`, an index, an `Option<Box<_>>`.
#[derive(Debug)]
pub struct SymbolMemo<T> {
    epoch: u64,
    slots: Vec<Option<T>>,
    /// Holds the answer for an id the table does not have (a host bug), so it is not remembered.
    spare: Option<T>,
}

impl<T> Default for SymbolMemo<T> {
    fn default() -> Self {
        SymbolMemo {
            epoch: 0,
            slots: Vec::new(),
            spare: None,
        }
    }
}

impl<T> SymbolMemo<T> {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value for `symbol` (from `batch` or an earlier batch), computing it with `compute`
    /// from the symbol's string the first time.
    pub fn get_or_insert_with(&mut self, batch: &Batch<'_>, symbol: Symbol, compute: impl FnOnce(&str) -> T) -> &T {
        let table = batch.symbol_table();
        if table.epoch() != self.epoch {
            self.slots.clear();
            self.epoch = table.epoch();
        }
        let id = symbol.0 as usize;
        if id >= table.len() {
            return self.spare.insert(compute(table.resolve(symbol.0)));
        }
        if id >= self.slots.len() {
            self.slots.resize_with(table.len(), || None);
        }
        self.slots[id].get_or_insert_with(|| compute(table.resolve(symbol.0)))
    }

    /// Forgets every value (e.g. after the plugin's rules changed).
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Stage;
    use crate::symbols::SymbolTable;
    use crate::view::Columns;

    fn with_batch(table: &SymbolTable, f: impl FnOnce(&Batch<'_>)) {
        let batch = Batch::new(Columns {
            stage: Stage::Relabel,
            symbols: table,
            labels: &[],
            offsets: &[],
            values: &[],
            timestamps: &[],
            target: &[],
        });
        f(&batch);
    }

    #[test]
    fn computes_once_per_symbol_and_forgets_after_a_reset() {
        let mut table = SymbolTable::default();
        table.extend(vec!["go_gc".to_owned(), "up".to_owned()]);
        let mut memo = SymbolMemo::new();
        let mut calls = Vec::new();
        with_batch(&table, |batch| {
            for id in [0, 1, 0, 1, 0] {
                let len = *memo.get_or_insert_with(batch, Symbol(id), |s| {
                    calls.push(s.to_owned());
                    s.len()
                });
                assert_eq!(len, [5, 2][id as usize]);
            }
        });
        assert_eq!(calls, ["go_gc", "up"]);

        table.extend(vec!["later".to_owned()]);
        with_batch(&table, |batch| {
            assert_eq!(*memo.get_or_insert_with(batch, Symbol(2), str::len), 5);
            assert_eq!(*memo.get_or_insert_with(batch, Symbol(0), |_| 99), 5, "remembered");
        });

        table.clear();
        table.extend(vec!["abc".to_owned()]);
        with_batch(&table, |batch| {
            assert_eq!(
                *memo.get_or_insert_with(batch, Symbol(0), str::len),
                3,
                "id 0 names another string after the reset"
            );
        });
    }

    #[test]
    fn unknown_ids_are_computed_from_the_empty_string_and_not_kept() {
        let mut table = SymbolTable::default();
        table.extend(vec!["a".to_owned()]);
        let mut memo = SymbolMemo::new();
        with_batch(&table, |batch| {
            assert_eq!(*memo.get_or_insert_with(batch, Symbol(u32::MAX), |s| s.len() + 7), 7);
            assert_eq!(*memo.get_or_insert_with(batch, Symbol(u32::MAX), |_| 8), 8);
        });
        assert!(memo.slots.len() <= 1, "no slot for a huge id");
        memo.clear();
        assert!(memo.slots.is_empty());
    }
}
