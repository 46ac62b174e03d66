//! The per-target series cache, as Prometheus's `scrapeCache`: keyed by the raw bytes of a
//! series line (`name{labels}`), it remembers what relabeling and remote-write preparation made
//! of that series, so a steady-state sample costs one hash and a comparison. It also tracks which
//! series were in the last scrape, for staleness markers.
//!
//! Targets expose their series in the same order on every scrape, so the cache keeps its
//! entries in first-seen order and first checks the entry after the previous match: the common
//! case walks memory sequentially instead of probing a hash table, which is only consulted
//! where the order differs.
//!
//! The key is the 128-bit xxh3 of the line rather than the line itself: less memory and no byte
//! comparison per lookup. A collision would need about 2^64 series in one target; a target
//! crafting one could only confuse its own series.

use hashbrown::HashTable;

use crate::remote_write::PreparedSeries;

/// One cached series.
#[derive(Debug)]
pub struct CacheEntry {
    /// What to queue for this series; `None` when metric relabeling or a plugin dropped it (or
    /// while it is being prepared).
    pub series: Option<PreparedSeries>,
    /// The final labels as plugin symbol ids (`name, value, …`), for the job's filter-stage
    /// plugins; `None` when it has none. Boxed twice so that entries of the many jobs without
    /// filter plugins stay 8 bytes smaller.
    pub symbols: Option<Box<Box<[u32]>>>,
    /// 128-bit hash of the series line, as two words so the entry needs 8-byte alignment only.
    key: [u64; 2],
    /// Iteration of the last scrape that contained this series.
    seen: u32,
    /// A sample of this series was delivered and no staleness marker has followed it yet.
    live: bool,
    /// The series' samples carry their own timestamps; Prometheus does not mark those stale.
    explicit_timestamps: bool,
}

/// Series seen by one target's scrape loop.
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// Entries in first-seen order.
    entries: Vec<CacheEntry>,
    /// Positions in `entries`, hashed by their key's first word.
    index: HashTable<u32>,
    /// Where the next series of the current scrape is expected.
    cursor: usize,
    /// Series inserted since [`SeriesCache::begin`].
    inserted: usize,
    iteration: u32,
    /// The plugin version the entries were prepared under; see [`SeriesCache::sync_version`].
    version: u64,
}

/// What [`SeriesCache::lookup`] found for a series line in the current scrape.
pub enum Lookup {
    /// Known series, first time in this scrape: its position, for [`SeriesCache::entry`].
    Hit(usize),
    /// The same series already appeared earlier in this scrape.
    Duplicate,
    /// Not cached: the caller prepares it and calls [`SeriesCache::insert`] with this key.
    Miss([u64; 2]),
}

impl CacheEntry {
    /// Marks whether this scrape's sample carried its own timestamp.
    pub fn set_explicit_timestamp(&mut self, explicit: bool) {
        self.explicit_timestamps = explicit;
    }
}

impl SeriesCache {
    /// Starts a new scrape; series looked up from now on count as seen in it.
    pub fn begin(&mut self) {
        self.iteration = self.iteration.wrapping_add(1);
        self.cursor = 0;
        self.inserted = 0;
    }

    /// Number of cached series (kept and dropped).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries it holds without reallocating.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Makes room for `additional` more series (e.g. the lines of a first scrape).
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
        let entries = &self.entries;
        self.index.reserve(additional, |&p| entries[p as usize].key[0]);
    }

    /// Looks up a series line and marks it seen in the current scrape.
    pub fn lookup(&mut self, line: &[u8]) -> Lookup {
        let hash = xxhash_rust::xxh3::xxh3_128(line);
        let key = [hash as u64, (hash >> 64) as u64];
        // The series that followed the previous one last time, or else the hash table.
        let position = match self.entries.get(self.cursor) {
            Some(entry) if entry.key == key => self.cursor,
            _ => {
                let entries = &self.entries;
                match self.index.find(key[0], |&p| entries[p as usize].key == key) {
                    Some(&position) => position as usize,
                    None => return Lookup::Miss(key),
                }
            }
        };
        self.cursor = position + 1;
        let entry = &mut self.entries[position];
        if entry.seen == self.iteration {
            return Lookup::Duplicate;
        }
        entry.seen = self.iteration;
        Lookup::Hit(position)
    }

    /// The entry at `position` (from [`Lookup::Hit`] or [`SeriesCache::insert`]).
    ///
    /// # Panics
    /// If `position` is past the end.
    pub fn entry(&self, position: usize) -> &CacheEntry {
        &self.entries[position]
    }

    /// The entry at `position`, to update.
    ///
    /// # Panics
    /// If `position` is past the end.
    pub fn entry_mut(&mut self, position: usize) -> &mut CacheEntry {
        &mut self.entries[position]
    }

    /// Forgets every entry when `version` (of the plugins whose outcomes the entries hold)
    /// differs from the one they were prepared under, as Prometheus drops a scrape loop's cache
    /// on reload: no staleness markers; series whose labels changed go stale by age.
    pub fn sync_version(&mut self, version: u64) {
        if version != self.version {
            self.entries.clear();
            self.index.clear();
            self.cursor = 0;
            self.version = version;
        }
    }

    /// Forgets the entries from `len` on: series inserted by a scrape that then failed before
    /// they were prepared.
    pub fn truncate(&mut self, len: usize) {
        self.retain_positions(|position| position < len);
    }

    /// Caches a new series seen in the current scrape under the key of its [`Lookup::Miss`];
    /// returns its position.
    pub fn insert(&mut self, key: [u64; 2], series: Option<PreparedSeries>, explicit_timestamps: bool) -> usize {
        let position = self.entries.len();
        self.inserted += 1;
        self.entries.push(CacheEntry {
            series,
            symbols: None,
            key,
            seen: self.iteration,
            live: false,
            explicit_timestamps,
        });
        let entries = &self.entries;
        self.index
            .insert_unique(key[0], position as u32, |&p| entries[p as usize].key[0]);
        self.cursor = position + 1;
        position
    }

    /// Ends a scrape whose samples were delivered: the series in it become live; live series
    /// missing from it are handed to `stale` (for a staleness marker) and forgotten. A scrape that
    /// adds no series gives back the room growth or [`SeriesCache::reserve`] left beyond an eighth
    /// of the entries (kept for series that come and go), in the entries and their index.
    pub fn commit(&mut self, mut stale: impl FnMut(&PreparedSeries)) {
        let iteration = self.iteration;
        self.retain(|e| {
            if e.seen == iteration {
                e.live = e.series.is_some() && !e.explicit_timestamps;
                return true;
            }
            if e.live
                && let Some(series) = &e.series
            {
                stale(series);
            }
            false
        });
        let len = self.entries.len();
        if self.inserted == 0 && self.entries.capacity() > len + len / 4 {
            self.entries.shrink_to(len + len / 8);
            let entries = &self.entries;
            self.index.shrink_to(len + len / 8, |&p| entries[p as usize].key[0]);
        }
    }

    /// Ends a scrape that failed, or the loop itself: every live series is handed to `stale`.
    /// Entries seen in this scrape stay cached (their preparation is still valid); the rest are
    /// forgotten.
    pub fn fail(&mut self, mut stale: impl FnMut(&PreparedSeries)) {
        let iteration = self.iteration;
        self.retain(|e| {
            if e.live
                && let Some(series) = &e.series
            {
                stale(series);
            }
            e.live = false;
            e.seen == iteration
        });
    }

    /// Keeps the entries whose position `keep` accepts.
    fn retain_positions(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut position = 0;
        self.retain(|_| {
            position += 1;
            keep(position - 1)
        });
    }

    /// Keeps the entries `keep` accepts, in order, and reindexes them when any was removed.
    fn retain(&mut self, keep: impl FnMut(&mut CacheEntry) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(keep);
        if self.entries.len() != before {
            self.index.clear();
            let entries = &self.entries;
            for (position, entry) in entries.iter().enumerate() {
                self.index
                    .insert_unique(entry.key[0], position as u32, |&p| entries[p as usize].key[0]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(hash: u64) -> PreparedSeries {
        PreparedSeries::new(hash, [])
    }

    /// Ends the scrape with `commit` (or `fail`) and returns the stale series' hashes, sorted.
    fn end(cache: &mut SeriesCache, ok: bool) -> Vec<u64> {
        let mut stale = Vec::new();
        if ok {
            cache.commit(|s| stale.push(s.hash()));
        } else {
            cache.fail(|s| stale.push(s.hash()));
        }
        stale.sort();
        stale
    }

    fn insert(cache: &mut SeriesCache, line: &[u8], series: Option<PreparedSeries>, explicit: bool) {
        let Lookup::Miss(key) = cache.lookup(line) else {
            panic!("{line:?} is cached")
        };
        cache.insert(key, series, explicit);
    }

    /// Runs one scrape of `n` series `m{i="…"}` (hashes 0..n) into `cache`; returns their lines.
    fn fill(cache: &mut SeriesCache, n: usize) -> Vec<Vec<u8>> {
        let lines: Vec<Vec<u8>> = (0..n).map(|i| format!("m{{i=\"{i}\"}}").into_bytes()).collect();
        cache.begin();
        for (i, line) in lines.iter().enumerate() {
            insert(cache, line, Some(series(i as u64)), false);
        }
        end(cache, true);
        lines
    }

    fn hit(cache: &mut SeriesCache, line: &[u8]) -> u64 {
        match cache.lookup(line) {
            Lookup::Hit(position) => cache.entry(position).series.as_ref().map_or(0, PreparedSeries::hash),
            _ => panic!("{line:?} is not a hit"),
        }
    }

    #[test]
    fn vanished_series_are_returned_once_for_staleness() {
        let mut cache = SeriesCache::default();
        cache.begin();
        insert(&mut cache, b"a", Some(series(1)), false);
        insert(&mut cache, b"b", Some(series(2)), false);
        insert(&mut cache, b"dropped", None, false);
        assert!(end(&mut cache, true).is_empty());

        cache.begin();
        assert_eq!(hit(&mut cache, b"a"), 1);
        assert!(matches!(cache.lookup(b"a"), Lookup::Duplicate));
        assert_eq!(end(&mut cache, true), [2]);
        assert_eq!(cache.len(), 1);

        cache.begin();
        assert_eq!(end(&mut cache, true), [1]);
        cache.begin();
        assert!(end(&mut cache, true).is_empty(), "a marker is sent once");
    }

    #[test]
    fn failed_scrape_marks_every_live_series_but_not_unsent_ones() {
        let mut cache = SeriesCache::default();
        cache.begin();
        insert(&mut cache, b"a", Some(series(1)), false);
        insert(&mut cache, b"ts", Some(series(2)), true);
        assert!(end(&mut cache, true).is_empty());

        cache.begin();
        hit(&mut cache, b"a");
        insert(&mut cache, b"new", Some(series(3)), false);
        assert_eq!(
            end(&mut cache, false),
            [1],
            "explicit timestamps and unsent series get no marker"
        );
        cache.begin();
        assert!(end(&mut cache, false).is_empty());
        assert!(cache.is_empty());
    }

    #[test]
    fn room_left_by_growth_is_given_back_once_no_series_are_added() {
        let mut cache = SeriesCache::default();
        let lines = fill(&mut cache, 600);
        assert!(
            cache.entries.capacity() >= 1024,
            "grown by doubling, kept while growing"
        );
        cache.begin();
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(hit(&mut cache, line), i as u64);
        }
        end(&mut cache, true);
        assert!((600..=675).contains(&cache.entries.capacity()));
        cache.begin();
        insert(&mut cache, b"new", Some(series(600)), false);
        assert_eq!(hit(&mut cache, &lines[0]), 0, "the index still finds moved entries");
        end(&mut cache, true);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn reserved_room_is_used_without_doubling_and_given_back_when_unused() {
        let mut cache = SeriesCache::default();
        cache.reserve(600);
        fill(&mut cache, 600);
        assert_eq!(cache.entries.capacity(), 600);

        // A first scrape of blank lines reserves for each and adds nothing.
        let mut cache = SeriesCache::default();
        cache.reserve(1 << 16);
        assert!(cache.index.capacity() >= 1 << 16);
        cache.begin();
        end(&mut cache, true);
        assert_eq!((cache.entries.capacity(), cache.index.capacity()), (0, 0));
    }

    #[test]
    fn reordered_inserted_and_removed_series_are_still_found() {
        let mut cache = SeriesCache::default();
        let lines = fill(&mut cache, 50);
        // Reversed, with every 7th series gone and a new one in the middle.
        cache.begin();
        for (i, line) in lines.iter().enumerate().rev() {
            if i % 7 != 0 {
                assert_eq!(hit(&mut cache, line), i as u64);
            }
            if i == 25 {
                insert(&mut cache, b"new", Some(series(99)), false);
            }
        }
        let gone: Vec<u64> = (0..50).filter(|i| i % 7 == 0).collect();
        assert_eq!(end(&mut cache, true), gone);
        // The surviving order is found again, including after the removals.
        cache.begin();
        for (i, line) in lines.iter().enumerate() {
            if i % 7 != 0 {
                assert_eq!(hit(&mut cache, line), i as u64);
            }
        }
        assert_eq!(hit(&mut cache, b"new"), 99);
        assert!(end(&mut cache, true).is_empty());
        assert_eq!(cache.len(), 43);
    }
}
