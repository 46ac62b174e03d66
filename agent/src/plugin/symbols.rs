//! The agent-wide symbol table: label names and values interned as `u32` ids, so batches cross
//! into Wasm as flat integer lists and each string crosses once per plugin instance.
//!
//! Ids are dense and append-only within a generation, so a guest's table is always a prefix of
//! the host's: a plugin remembers how many symbols its guest has (its `symbol-base`) and sends
//! the rest as the batch's `new-symbols`. When the table passes its cap, the next
//! [`Symbols::lock`] starts a new, empty generation; every plugin then calls `reset-symbols`
//! before its next batch, and batches built under the old generation are stale.

use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

/// Default cap on the number of symbols of a generation (1 Mi).
pub const DEFAULT_MAX_SYMBOLS: usize = 1 << 20;
/// Default cap on the bytes of all strings of a generation (64 MiB).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// Interned strings shared by every plugin of the agent; see the module docs. `Send + Sync`;
/// one `Mutex` guards the table, so callers intern a whole batch under one [`SymbolsGuard`].
#[derive(Debug)]
pub struct Symbols {
    table: Mutex<Table>,
    max_symbols: usize,
    max_bytes: usize,
}

/// The table of one generation: every string concatenated in `bytes`, `ends[id]` the end of
/// string `id` (its start is the previous end), and a hash index from string to id.
#[derive(Default)]
struct Table {
    generation: u32,
    bytes: String,
    ends: Vec<usize>,
    index: HashTable<u32>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("generation", &self.generation)
            .field("symbols", &self.ends.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Table {
    fn get(&self, id: u32) -> Option<&str> {
        get(&self.bytes, &self.ends, id)
    }
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols::with_caps(DEFAULT_MAX_SYMBOLS, DEFAULT_MAX_BYTES)
    }
}

impl Symbols {
    /// An empty table (generation 0) whose generation ends, at the next [`lock`](Self::lock),
    /// once it holds more than `max_symbols` symbols or more than `max_bytes` bytes of strings.
    pub fn with_caps(max_symbols: usize, max_bytes: usize) -> Symbols {
        Symbols {
            table: Mutex::new(Table::default()),
            max_symbols,
            max_bytes,
        }
    }

    /// Locks the table to intern or resolve; starts a new generation first if the table passed
    /// its cap. Hold one guard while building a batch and while applying its outcome, or check
    /// [`SymbolsGuard::generation`] against the batch's.
    pub fn lock(&self) -> SymbolsGuard<'_> {
        let mut table = self.lock_current();
        if table.ends.len() > self.max_symbols || table.bytes.len() > self.max_bytes {
            let generation = table.generation.wrapping_add(1);
            *table = Table {
                generation,
                ..Table::default()
            };
        }
        SymbolsGuard { table }
    }

    /// Locks the table without starting a new generation: plugins use it to read a batch's
    /// symbols, which must stay valid.
    fn lock_current(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent: every mutation
        // pushes the string before its index entry.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Guard over the current generation without starting a new one.
    pub(super) fn current(&self) -> SymbolsGuard<'_> {
        SymbolsGuard {
            table: self.lock_current(),
        }
    }
}

/// Exclusive access to the symbol table; see [`Symbols::lock`].
#[derive(Debug)]
pub struct SymbolsGuard<'a> {
    table: MutexGuard<'a, Table>,
}

impl SymbolsGuard<'_> {
    /// The current generation; batches carry it in [`Batch::generation`](super::Batch).
    pub fn generation(&self) -> u32 {
        self.table.generation
    }

    /// The id of `s`, interning it if new. Ids are dense from 0 within a generation.
    pub fn intern(&mut self, s: &str) -> u32 {
        let hash = xxh3_64(s.as_bytes());
        let Table { bytes, ends, index, .. } = &mut *self.table;
        if let Some(&id) = index.find(hash, |&id| get(bytes, ends, id) == Some(s)) {
            return id;
        }
        bytes.push_str(s);
        let id = ends.len() as u32;
        ends.push(bytes.len());
        index.insert_unique(hash, id, |&id| xxh3_64(get(bytes, ends, id).unwrap_or("").as_bytes()));
        id
    }

    /// The string of `id` in the current generation, `None` if `id` was never handed out.
    pub fn resolve(&self, id: u32) -> Option<&str> {
        self.table.get(id)
    }

    /// Number of symbols in the current generation.
    pub fn len(&self) -> usize {
        self.table.ends.len()
    }

    /// Whether the current generation has no symbols yet.
    pub fn is_empty(&self) -> bool {
        self.table.ends.is_empty()
    }

    /// Strings of ids `from..` in order: what a guest with `from` symbols is missing.
    pub(super) fn since(&self, from: u32) -> impl Iterator<Item = &str> {
        (from..self.len() as u32).filter_map(|id| self.table.get(id))
    }
}

/// String `id` of a table: it ends at `ends[id]` and starts where `id - 1` ends.
fn get<'t>(bytes: &'t str, ends: &[usize], id: u32) -> Option<&'t str> {
    let id = id as usize;
    let end = *ends.get(id)?;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    bytes.get(start..end)
}
