//! The guest's symbol table: the strings the host has sent, indexed by symbol id.
//!
//! Each string is stored once (moved out of the batch's `new-symbols`). Reading labels only
//! indexes the vector; the reverse map (string → id), which edits need to name an existing
//! string as `text::symbol`, is a hash table of ids that compares against the vector, and it is
//! brought up to date lazily, on the first lookup after new symbols arrived, so plugins that
//! never edit never pay for it.

use hashbrown::HashTable;
use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};

/// The label name that holds the metric name.
pub(crate) const METRIC_NAME: &str = "__name__";

/// Symbol id → string, with a lazy string → id index.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    strings: Vec<String>,
    /// Id of `__name__` once the host has sent it, so `metric_name()` compares integers.
    metric_name: Option<u32>,
    /// Counts resets, so caches keyed by id know when ids start naming other strings.
    epoch: u64,
    reverse: RefCell<Reverse>,
}

/// Ids of `strings[..indexed]`, hashed by their string.
#[derive(Debug, Default)]
struct Reverse {
    ids: HashTable<u32>,
    indexed: usize,
    /// Seeded per instance: label values come from scraped targets, so a fixed hash would let a
    /// target pick colliding values.
    hasher: RandomState,
}

impl SymbolTable {
    /// Number of symbols; the `symbol-base` the next batch must carry.
    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }

    /// Appends the strings of a batch's `new-symbols`, in order.
    pub(crate) fn extend(&mut self, new_symbols: Vec<String>) {
        for string in new_symbols {
            if self.metric_name.is_none() && string == METRIC_NAME {
                self.metric_name = u32::try_from(self.strings.len()).ok();
            }
            self.strings.push(string);
        }
    }

    /// Empties the table (`reset-symbols`).
    pub(crate) fn clear(&mut self) {
        self.strings.clear();
        self.metric_name = None;
        self.epoch += 1;
        let reverse = self.reverse.get_mut();
        reverse.ids.clear();
        reverse.indexed = 0;
    }

    /// The string of `id`; `""` for an id the table does not have, which only a host bug can
    /// send (the runtime does not check every label id: that would cost more than the views).
    pub(crate) fn resolve(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", String::as_str)
    }

    /// How many times the table was reset; ids of different epochs are unrelated.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Id of `__name__`, if the host has sent it.
    pub(crate) fn metric_name_id(&self) -> Option<u32> {
        self.metric_name
    }

    /// The id of `string`, if the table has it. First indexes the symbols added since the last
    /// lookup.
    pub(crate) fn lookup(&self, string: &str) -> Option<u32> {
        let mut reverse = self.reverse.borrow_mut();
        let Reverse { ids, indexed, hasher } = &mut *reverse;
        for (id, added) in self.strings.iter().enumerate().skip(*indexed) {
            let Ok(id) = u32::try_from(id) else { break };
            let hash = hasher.hash_one(added.as_str());
            // A string sent twice keeps its first id; both ids name the same string.
            if ids
                .find(hash, |&other| self.strings[other as usize] == *added)
                .is_none()
            {
                ids.insert_unique(hash, id, |&other| {
                    hasher.hash_one(self.strings[other as usize].as_str())
                });
            }
        }
        *indexed = self.strings.len();
        let hash = hasher.hash_one(string);
        ids.find(hash, |&id| self.strings[id as usize] == string).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(strings: &[&str]) -> SymbolTable {
        let mut table = SymbolTable::default();
        table.extend(strings.iter().map(|s| (*s).to_owned()).collect());
        table
    }

    #[test]
    fn resolves_ids_in_arrival_order_and_unknown_ids_to_empty() {
        let mut t = table(&["a", "b"]);
        t.extend(vec!["c".to_owned()]);
        assert_eq!(t.len(), 3);
        assert_eq!((t.resolve(0), t.resolve(1), t.resolve(2)), ("a", "b", "c"));
        assert_eq!(t.resolve(3), "");
        assert_eq!(t.resolve(u32::MAX), "");
    }

    #[test]
    fn remembers_the_metric_name_symbol() {
        let mut t = table(&["job", "x"]);
        assert_eq!(t.metric_name_id(), None);
        t.extend(vec![METRIC_NAME.to_owned(), METRIC_NAME.to_owned()]);
        assert_eq!(t.metric_name_id(), Some(2), "the first of duplicates wins");
    }

    #[test]
    fn lookup_indexes_symbols_that_arrive_after_earlier_lookups() {
        let mut t = table(&["a", "b"]);
        assert_eq!(t.lookup("b"), Some(1));
        assert_eq!(t.lookup("c"), None);
        t.extend(vec!["c".to_owned(), "a".to_owned()]);
        assert_eq!(t.lookup("c"), Some(2));
        assert_eq!(t.lookup("a"), Some(0), "a duplicate keeps the first id");
        assert_eq!(t.lookup(""), None);
    }

    #[test]
    fn lookup_handles_many_symbols_and_empty_strings() {
        let mut t = SymbolTable::default();
        t.extend((0..10_000).map(|i| format!("v{i}")).collect());
        t.extend(vec![String::new()]);
        assert_eq!(t.lookup("v0"), Some(0));
        assert_eq!(t.lookup("v9999"), Some(9999));
        assert_eq!(t.lookup(""), Some(10_000));
        assert_eq!(t.lookup("v10000"), None);
    }

    #[test]
    fn clear_forgets_strings_names_and_the_index() {
        let mut t = table(&[METRIC_NAME, "a"]);
        assert_eq!(t.lookup("a"), Some(1));
        assert_eq!(t.epoch(), 0);
        t.clear();
        assert_eq!(t.epoch(), 1);
        assert_eq!(t.len(), 0);
        assert_eq!(t.metric_name_id(), None);
        assert_eq!(t.lookup("a"), None);
        t.extend(vec!["a".to_owned()]);
        assert_eq!(t.lookup("a"), Some(0), "ids restart at 0 after a reset");
    }
}
