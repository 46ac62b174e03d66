//! The series index of a head: label strings interned once per head ([`Symbols`]) and series
//! found by the xxh3 hash of their labels, collisions resolved by comparing the labels
//! ([`SeriesSet`]), as Prometheus `tsdb/head.go` `stripeSeries` (hash → series, `seriesHashmap`
//! with its collision list) but single-threaded behind the head lock.

use hashbrown::HashTable;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::series::MemSeries;

/// Hashes a label set (sorted by name): xxh3 of each name and value in turn, each seeded with
/// the hash so far. xxh3 mixes the length of its input in, so `a="bc"` and `ab="c"` differ, as
/// the 0xff separators of Prometheus `labels.Hash` ensure; no bytes are copied.
pub(super) fn hash_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    labels.fold(0, |h, (name, value)| {
        xxh3_64_with_seed(value.as_bytes(), xxh3_64_with_seed(name.as_bytes(), h))
    })
}

// === impl Symbols ===

/// One interned string: where it lives in the arena and how many label slots use it.
#[derive(Clone, Copy, Debug)]
struct SymbolEntry {
    off: usize,
    len: u32,
    refs: u32,
}

/// Interned label names and values with reference counts. Strings live back to back in one
/// arena (no allocation per string); a string whose count drops to zero leaves a hole that
/// [`Symbols::compact`] reclaims. Ids of live strings never change. Cloned (a few bytes per
/// string) to resolve labels outside the head lock.
#[derive(Debug, Default, Clone)]
pub(super) struct Symbols {
    arena: String,
    entries: Vec<SymbolEntry>,
    free: Vec<u32>,
    table: HashTable<u32>,
    garbage: usize,
}

impl Symbols {
    /// The string of a live id.
    pub(super) fn get(&self, id: u32) -> &str {
        let e = self.entries[id as usize];
        self.arena.get(e.off..e.off + e.len as usize).unwrap_or("")
    }

    /// Returns the id of `s`, adding it if new; counts one more user either way.
    pub(super) fn intern(&mut self, s: &str) -> u32 {
        let hash = xxh3_64(s.as_bytes());
        let Self {
            arena, entries, table, ..
        } = self;
        let found = table.find(hash, |&id| {
            let e = entries[id as usize];
            arena.as_bytes().get(e.off..e.off + e.len as usize) == Some(s.as_bytes())
        });
        if let Some(&id) = found {
            self.entries[id as usize].refs += 1;
            return id;
        }
        // A string longer than 4 GiB cannot reach here: request bodies are bounded far below.
        let entry = SymbolEntry {
            off: self.arena.len(),
            len: s.len() as u32,
            refs: 1,
        };
        self.arena.push_str(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = entry;
                id
            }
            None => {
                // 2^32 entries of 16 bytes do not fit in memory, so the id cannot wrap.
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        let Self {
            arena, entries, table, ..
        } = self;
        table.insert_unique(hash, id, |&id| xxh3_64(entry_bytes(arena, entries[id as usize])));
        id
    }

    /// Drops one user of `id`; the string is forgotten when none is left.
    pub(super) fn release(&mut self, id: u32) {
        let e = &mut self.entries[id as usize];
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            return;
        }
        let e = *e;
        let hash = xxh3_64(entry_bytes(&self.arena, e));
        if let Ok(entry) = self.table.find_entry(hash, |&x| x == id) {
            entry.remove();
        }
        self.garbage += e.len as usize;
        self.free.push(id);
    }

    /// Rewrites the arena without the holes of released strings once they are more than half
    /// of it; called after series are dropped (head truncation), never on the append path.
    pub(super) fn compact(&mut self) {
        if self.garbage <= self.arena.len() / 2 {
            return;
        }
        let mut arena = String::with_capacity(self.arena.len() - self.garbage);
        for e in self.entries.iter_mut().filter(|e| e.refs > 0) {
            let off = arena.len();
            arena.push_str(self.arena.get(e.off..e.off + e.len as usize).unwrap_or(""));
            e.off = off;
        }
        self.arena = arena;
        self.garbage = 0;
        let Self {
            arena, entries, table, ..
        } = self;
        table.shrink_to_fit(|&id| xxh3_64(entry_bytes(arena, entries[id as usize])));
    }

    /// Number of distinct live strings.
    pub(super) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Heap bytes held (arena, entries, free list and hash table), for memory accounting.
    pub(super) fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.entries.capacity() * size_of::<SymbolEntry>()
            + self.free.capacity() * size_of::<u32>()
            + self.table.allocation_size()
    }
}

fn entry_bytes(arena: &str, e: SymbolEntry) -> &[u8] {
    arena.as_bytes().get(e.off..e.off + e.len as usize).unwrap_or(&[])
}

// === impl SeriesSet ===

/// Slots per page of series storage: pages keep the growth slack of the storage to one page
/// instead of up to half of all series (as a doubling `Vec` would).
const PAGE: usize = 1024;

/// Every series of a head: slots addressed by a `u32` index (stable while the series lives;
/// freed slots are reused), the hash index over their labels and the symbols they use.
#[derive(Debug, Default)]
pub(super) struct SeriesSet {
    pages: Vec<Box<[Option<MemSeries>]>>,
    /// Slots handed out so far (live or free).
    used: usize,
    free: Vec<u32>,
    table: HashTable<u32>,
    /// The head's symbol table.
    pub(super) symbols: Symbols,
}

impl SeriesSet {
    /// The slot of the series with exactly these labels (sorted by name), given their
    /// [`hash_labels`] hash.
    pub(super) fn find(&self, hash: u64, labels: &[(&str, &str)]) -> Option<u32> {
        self.table
            .find(hash, |&idx| match self.get(idx) {
                Some(s) => s.hash == hash && labels_equal(&self.symbols, &s.labels, labels),
                None => false,
            })
            .copied()
    }

    /// Adds a series (its labels must not be present yet) and returns its slot.
    pub(super) fn insert<'a>(
        &mut self,
        hash: u64,
        labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
        series_ref: u64,
    ) -> u32 {
        let mut ids = Vec::with_capacity(labels.len() * 2);
        for (name, value) in labels {
            ids.push(self.symbols.intern(name));
            ids.push(self.symbols.intern(value));
        }
        let series = MemSeries::new(series_ref, hash, ids.into_boxed_slice());
        let idx = match self.free.pop() {
            Some(idx) => idx as usize,
            None => {
                if self.used.is_multiple_of(PAGE) {
                    self.pages.push((0..PAGE).map(|_| None).collect());
                }
                self.used += 1;
                self.used - 1
            }
        };
        self.pages[idx / PAGE][idx % PAGE] = Some(series);
        // Slots are bounded by memory long before u32::MAX (each series is > 100 bytes).
        let idx = idx as u32;
        let Self { pages, table, .. } = self;
        table.insert_unique(hash, idx, |&i| slot(pages, i).as_ref().map_or(0, |s| s.hash));
        idx
    }

    /// Removes the series in `idx` with its index entry and its symbol uses.
    pub(super) fn remove(&mut self, idx: u32) -> Option<MemSeries> {
        let series = self
            .pages
            .get_mut(idx as usize / PAGE)?
            .get_mut(idx as usize % PAGE)?
            .take()?;
        if let Ok(entry) = self.table.find_entry(series.hash, |&i| i == idx) {
            entry.remove();
        }
        for &id in series.labels.iter() {
            self.symbols.release(id);
        }
        self.free.push(idx);
        Some(series)
    }

    /// The series in `idx`, if that slot is live.
    pub(super) fn get(&self, idx: u32) -> Option<&MemSeries> {
        self.pages.get(idx as usize / PAGE)?.get(idx as usize % PAGE)?.as_ref()
    }

    /// The series in `idx`, mutably, if that slot is live.
    pub(super) fn get_mut(&mut self, idx: u32) -> Option<&mut MemSeries> {
        self.pages
            .get_mut(idx as usize / PAGE)?
            .get_mut(idx as usize % PAGE)?
            .as_mut()
    }

    /// Live series with their slots, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &MemSeries)> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.as_ref()?)))
    }

    /// Live series, mutably, with their slots.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut MemSeries)> {
        self.pages
            .iter_mut()
            .flat_map(|p| p.iter_mut())
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.as_mut()?)))
    }

    /// The labels of a series as `(name, value)` pairs, sorted by name.
    pub(super) fn labels<'a>(
        &'a self,
        series: &'a MemSeries,
    ) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        series
            .labels
            .chunks_exact(2)
            .map(|p| (self.symbols.get(p[0]), self.symbols.get(p[1])))
    }

    /// Number of live series.
    pub(super) fn len(&self) -> usize {
        self.used - self.free.len()
    }

    /// Heap bytes of the index itself (series slots, free list, hash table, symbols), excluding
    /// what each series owns.
    pub(super) fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE * size_of::<Option<MemSeries>>()
            + self.pages.capacity() * size_of::<Box<[Option<MemSeries>]>>()
            + self.free.capacity() * size_of::<u32>()
            + self.table.allocation_size()
            + self.symbols.heap_bytes()
    }
}

fn slot(pages: &[Box<[Option<MemSeries>]>], idx: u32) -> &Option<MemSeries> {
    &pages[idx as usize / PAGE][idx as usize % PAGE]
}

fn labels_equal(symbols: &Symbols, ids: &[u32], labels: &[(&str, &str)]) -> bool {
    ids.len() == labels.len() * 2
        && ids
            .chunks_exact(2)
            .zip(labels)
            .all(|(p, (n, v))| symbols.get(p[0]) == *n && symbols.get(p[1]) == *v)
}
