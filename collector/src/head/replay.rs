//! Rebuilding a head from its WAL on open, as Prometheus `tsdb/head_wal.go` `loadWAL`: series
//! records recreate series under the same refs, samples records refill their chunks. Samples
//! below the minimum valid time (already in a block) are skipped, as are samples of unknown refs
//! and samples not newer than their series' last one.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use tracing::{info, warn};
use trawl_tsdb::wal::record::{self, Record, RecordError, RecordType, SampleRecord};
use trawl_tsdb::wal::{self, ReplayError};

use super::index::{SeriesSet, hash_labels};
use super::metrics::TenantMetrics;
use super::{HeadError, HeadOptions};

/// The state rebuilt from the WAL.
#[derive(Debug)]
pub(super) struct Replayed {
    pub(super) series: SeriesSet,
    /// Highest series ref seen (also of series not kept): new refs start above it.
    pub(super) max_ref: u64,
    pub(super) min_time: Option<i64>,
    pub(super) max_time: Option<i64>,
    pub(super) num_chunks: usize,
    /// Newest sample time seen in the WAL, kept or not (`i64::MIN` for none).
    pub(super) max_t_seen: i64,
}

/// Counts of what replay skipped, for the log.
#[derive(Debug, Default)]
struct Skipped {
    too_old: u64,
    unknown_ref: u64,
    not_newer: u64,
}

/// Applies records one by one.
struct Replayer {
    series: SeriesSet,
    /// WAL ref → slot. Two refs may map to one slot when a series was logged twice (Prometheus
    /// `multiRef`): its samples under either ref land in the one series.
    refs: HashMap<u64, u32>,
    min_valid_time: i64,
    block_ms: i64,
    max_ref: u64,
    max_t_seen: i64,
    num_chunks: usize,
    samples: u64,
    skipped: Skipped,
    sample_buf: Vec<SampleRecord>,
}

impl Replayer {
    fn apply(&mut self, rec: &[u8]) -> Result<(), RecordError> {
        match record::record_type(rec)? {
            RecordType::Series => {
                let Record::Series(entries) = record::decode(rec)? else {
                    return Ok(());
                };
                for e in entries {
                    self.max_ref = self.max_ref.max(e.series_ref);
                    if self.refs.contains_key(&e.series_ref) {
                        continue;
                    }
                    let hash = hash_labels(e.labels.iter().copied());
                    let slot = match self.series.find(hash, &e.labels) {
                        Some(slot) => slot,
                        None => self.series.insert(hash, e.labels.iter().copied(), e.series_ref),
                    };
                    self.refs.insert(e.series_ref, slot);
                }
            }
            RecordType::Samples => {
                let mut buf = std::mem::take(&mut self.sample_buf);
                record::decode_samples_into(rec, &mut buf)?;
                for s in &buf {
                    self.sample(*s);
                }
                self.sample_buf = buf;
            }
        }
        Ok(())
    }

    fn sample(&mut self, s: SampleRecord) {
        self.max_t_seen = self.max_t_seen.max(s.t_ms);
        if s.t_ms < self.min_valid_time {
            self.skipped.too_old += 1;
            return;
        }
        let Some(series) = self.refs.get(&s.series_ref).and_then(|&slot| self.series.get_mut(slot)) else {
            self.skipped.unknown_ref += 1;
            return;
        };
        if !series.is_empty() && s.t_ms <= series.last_t {
            self.skipped.not_newer += 1;
            return;
        }
        self.num_chunks += series.append(s.t_ms, s.value, self.block_ms);
        self.samples += 1;
    }
}

/// Replays the WAL in `wal_dir` (missing: empty head). Series left without samples (all of them
/// in blocks already) are dropped. A torn tail of the last segment is cut off and logged.
pub(super) fn replay(
    wal_dir: &Path,
    tenant: &str,
    opts: &HeadOptions,
    min_valid_time: i64,
    metrics: &TenantMetrics,
) -> Result<Replayed, HeadError> {
    let start = Instant::now();
    let mut r = Replayer {
        series: SeriesSet::default(),
        refs: HashMap::new(),
        min_valid_time,
        block_ms: opts.block_duration_ms,
        max_ref: 0,
        max_t_seen: i64::MIN,
        num_chunks: 0,
        samples: 0,
        skipped: Skipped::default(),
        sample_buf: Vec::new(),
    };
    let stats = wal::replay(wal_dir, |rec| r.apply(rec)).map_err(|e| match e {
        ReplayError::Wal(e) => HeadError::Wal(e),
        ReplayError::Apply { path, offset, source } => HeadError::Record { path, offset, source },
    })?;
    if let Some(torn) = stats.torn_tail {
        warn!(
            message = "Cut off a torn tail of the WAL.",
            tenant,
            segment = torn.segment,
            offset = torn.offset,
            dropped_bytes = torn.dropped_bytes,
            damage = %torn.damage,
        );
    }

    // Series without samples are already in blocks (or were never completed).
    let empty: Vec<u32> = r
        .series
        .iter()
        .filter(|(_, s)| s.is_empty())
        .map(|(slot, _)| slot)
        .collect();
    for slot in empty {
        r.series.remove(slot);
    }
    r.series.symbols.compact();
    let min_time = r.series.iter().filter_map(|(_, s)| s.min_time()).min();
    let max_time = r
        .series
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(_, s)| s.last_t)
        .max();

    let elapsed = start.elapsed();
    metrics.wal_replay_duration.set(elapsed.as_secs_f64());
    info!(
        message = "Replayed WAL.",
        tenant,
        checkpoint = ?stats.checkpoint,
        segments = ?stats.segments,
        records = stats.records,
        series = r.series.len(),
        samples = r.samples,
        skipped_too_old = r.skipped.too_old,
        skipped_unknown_ref = r.skipped.unknown_ref,
        skipped_not_newer = r.skipped.not_newer,
        duration_seconds = elapsed.as_secs_f64(),
    );
    Ok(Replayed {
        series: r.series,
        max_ref: r.max_ref,
        min_time,
        max_time,
        num_chunks: r.num_chunks,
        max_t_seen: r.max_t_seen,
    })
}
