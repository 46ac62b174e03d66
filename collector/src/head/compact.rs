//! Cutting blocks out of the head, as Prometheus `tsdb/db.go` (`compactable`, `compactHead`) and
//! `tsdb/head.go` (`truncateMemory`, `truncateWAL`): once the head spans more than 1.5 block
//! durations, the oldest aligned range `[k·d, (k+1)·d)` is written as a block, dropped from
//! memory, and the WAL segments whose samples are now all in blocks are replaced by a checkpoint
//! of the live series. [`Head::flush`] writes everything, range by range (on shutdown).
//!
//! The head lock is held only to copy a range's chunks out and to drop them afterwards, not
//! while the block is written: appends cannot reach a range being written, because it lies below
//! the appendable minimum (`max_time - d/2`, or the raised minimum valid time during a flush).

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::PoisonError;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use trawl_model::labels::Labels;
use trawl_tsdb::block::{BlockSeries, TMP_SUFFIX, write_block};
use trawl_tsdb::fs::{FsError, sync_dir};
use trawl_tsdb::meta::{BlockMeta, META_FILENAME, ThanosMeta};
use trawl_tsdb::wal::record::encode_series;
use trawl_tsdb::wal::write_checkpoint;
use ulid::Ulid;

use super::series::{range_end, range_start};
use super::{Head, HeadError, HeadState, WAL_DIR};

/// Series per record in a checkpoint, so no record grows without bound.
const CHECKPOINT_SERIES_PER_RECORD: usize = 10_000;

/// File in the tenant directory remembering the minimum valid time, for when the shipper has
/// deleted every local block (retention) while samples below it still sit in WAL segments.
pub const HEAD_STATE_FILE: &str = "head.json";

/// Contents of [`HEAD_STATE_FILE`].
#[derive(Debug, Serialize, Deserialize)]
struct HeadStateFile {
    /// No sample below this (ms) is replayed or accepted.
    min_valid_time: i64,
}

/// Reads [`HEAD_STATE_FILE`]; `None` when absent.
fn read_state_file(dir: &Path) -> Result<Option<i64>, HeadError> {
    let path = dir.join(HEAD_STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FsError::at("read", &path)(e).into()),
    };
    let state: HeadStateFile = serde_json::from_slice(&bytes)
        .map_err(|e| FsError::at("parse", &path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    Ok(Some(state.min_valid_time))
}

/// Writes [`HEAD_STATE_FILE`] atomically: temporary file, fsync, rename, fsync of `dir`.
fn write_state_file(dir: &Path, min_valid_time: i64) -> Result<(), HeadError> {
    let path = dir.join(HEAD_STATE_FILE);
    let tmp = dir.join(format!("{HEAD_STATE_FILE}.tmp"));
    let json = serde_json::to_vec(&HeadStateFile { min_valid_time })
        .map_err(|e| FsError::at("encode", &path)(io::Error::other(e)))?;
    let mut file = fs::File::create(&tmp).map_err(FsError::at("create", &tmp))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(FsError::at("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(FsError::at("rename", &tmp))?;
    sync_dir(dir).map_err(FsError::at("sync", dir))?;
    Ok(())
}

/// Prepares a tenant directory for opening: removes block directories left unfinished by a
/// crash, and returns the minimum valid time: the newest `maxTime` of the finished blocks, as
/// Prometheus `DB.Open` → `Head.Init(minValidTime)`, or the one recorded in
/// [`HEAD_STATE_FILE`] if higher (`i64::MIN` without either).
pub(super) fn prepare_dir(dir: &Path) -> Result<i64, HeadError> {
    let mut min_valid = read_state_file(dir)?.unwrap_or(i64::MIN);
    for entry in fs::read_dir(dir).map_err(FsError::at("list tenant directory", dir))? {
        let entry = entry.map_err(FsError::at("list tenant directory", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_SUFFIX) {
            if let Err(error) = fs::remove_dir_all(&path) {
                warn!(message = "Cannot remove unfinished block.", path = %path.display(), %error);
            }
            continue;
        }
        if Ulid::from_string(name).is_ok() && path.join(META_FILENAME).is_file() {
            min_valid = min_valid.max(BlockMeta::read(&path)?.max_time);
        }
    }
    Ok(min_valid)
}

/// The range to compact, Prometheus `Head.compactable`: the head spans more than 1.5 block
/// durations. Returns `(mint, maxt)`: the oldest sample and the end of its aligned range.
fn compactable(st: &HeadState, block_ms: i64) -> Option<(i64, i64)> {
    let (min, max) = (st.min_time?, st.max_time?);
    (max.saturating_sub(min) > block_ms / 2 * 3).then(|| (min, range_end(min, block_ms)))
}

impl Head {
    /// Writes the oldest block range into `<dir>/<ULID>/` once the head spans more than 1.5
    /// block durations, drops it from memory and truncates the WAL behind a checkpoint. Returns
    /// the block's meta, or `None` if the head is not compactable yet. Call it periodically
    /// (Prometheus checks every minute); one call cuts at most one range. On an error the
    /// samples stay in the head and the WAL, so the next call retries; a failed WAL truncation
    /// after a written block is only logged (the next compaction retries it).
    pub fn compact(&self, thanos: ThanosMeta) -> Result<Option<BlockMeta>, HeadError> {
        let _serial = self.compaction.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((mint, maxt)) = compactable(&self.lock(), self.opts.block_duration_ms) else {
            return Ok(None);
        };
        let meta = self.cut_block(mint, maxt, thanos).inspect_err(|_| {
            self.metrics.compaction_failures.inc();
        })?;
        self.truncate_wal_logged();
        Ok(meta)
    }

    /// Writes everything in the head into blocks, one per aligned block range (the last one
    /// ending after the newest sample, so it may be short), and truncates the WAL: for
    /// shutdown (SIGTERM). Samples older than the end of the last block are refused from then
    /// on. Returns the metas of the blocks written, oldest first; on an error, blocks written
    /// before it stay and the rest stays in the head and the WAL.
    pub fn flush(&self, thanos: ThanosMeta) -> Result<Vec<BlockMeta>, HeadError> {
        let _serial = self.compaction.lock().unwrap_or_else(PoisonError::into_inner);
        let end = {
            let mut st = self.lock();
            let Some(max) = st.max_time else { return Ok(Vec::new()) };
            let end = max.saturating_add(1);
            // Nothing may be appended any more to the ranges being written, and open chunks are
            // closed so that later samples start new ones.
            st.min_valid_time = st.min_valid_time.max(end);
            for (_, s) in st.series.iter_mut() {
                s.close_head();
            }
            end
        };
        let mut metas = Vec::new();
        loop {
            let oldest = self.lock().min_time;
            let Some(mint) = oldest.filter(|&t| t < end) else { break };
            let maxt = range_end(mint, self.opts.block_duration_ms).min(end);
            match self.cut_block(mint, maxt, thanos.clone()) {
                Ok(meta) => metas.extend(meta),
                Err(e) => {
                    self.metrics.compaction_failures.inc();
                    return Err(e);
                }
            }
        }
        self.truncate_wal_logged();
        Ok(metas)
    }

    /// Writes the chunks in `[range_start(mint), maxt)` as a block `[mint, maxt)`, then drops
    /// them and the series left empty from memory and raises the minimum valid time to `maxt`.
    /// `None` when the range holds no chunk (memory is truncated all the same).
    fn cut_block(&self, mint: i64, maxt: i64, thanos: ThanosMeta) -> Result<Option<BlockMeta>, HeadError> {
        let start = Instant::now();
        // Copy the range's chunks, label ids and the symbols out under the lock; label strings
        // are built and the block is written without it.
        let (symbols, copied) = {
            let st = self.lock();
            let from = range_start(mint, self.opts.block_duration_ms);
            let copied: Vec<_> = st
                .series
                .iter()
                .filter_map(|(_, s)| {
                    let chunks = s.chunks_in(from, maxt);
                    (!chunks.is_empty()).then(|| (s.labels.clone(), chunks))
                })
                .collect();
            (st.series.symbols.clone(), copied)
        };
        let series: Vec<BlockSeries> = copied
            .into_iter()
            .map(|(ids, chunks)| {
                let pairs = ids.chunks_exact(2).map(|p| (symbols.get(p[0]), symbols.get(p[1])));
                BlockSeries {
                    labels: Labels::from_pairs(pairs),
                    chunks,
                }
            })
            .collect();
        drop(symbols);
        let meta = match series.is_empty() {
            true => None,
            false => {
                let meta = write_block(&self.dir, mint, maxt, Some(thanos), series)?;
                self.metrics.blocks_written.inc();
                info!(
                    message = "Wrote block.",
                    tenant = %self.tenant,
                    ulid = %meta.ulid,
                    min_time = meta.min_time,
                    max_time = meta.max_time,
                    series = meta.stats.num_series,
                    samples = meta.stats.num_samples,
                    duration_seconds = start.elapsed().as_secs_f64(),
                );
                Some(meta)
            }
        };
        self.truncate_memory(maxt);
        // The block's meta.json records the same while the block is on disk.
        if let Err(error) = write_state_file(&self.dir, self.min_valid_time()) {
            warn!(message = "Cannot record the head's minimum valid time.", tenant = %self.tenant, %error);
        }
        Ok(meta)
    }

    /// Drops chunks ending before `maxt` and series left without chunks (Prometheus
    /// `Head.truncateMemory` + `gc`), and refuses samples below `maxt` from now on.
    fn truncate_memory(&self, maxt: i64) {
        let mut st = self.lock();
        st.min_valid_time = st.min_valid_time.max(maxt);
        let mut dropped_chunks = 0;
        let mut empty = Vec::new();
        for (slot, s) in st.series.iter_mut() {
            dropped_chunks += s.drop_chunks_before(maxt);
            if s.is_empty() {
                empty.push(slot);
            }
        }
        for &slot in &empty {
            st.series.remove(slot);
        }
        st.series.symbols.compact();
        st.num_chunks = st.num_chunks.saturating_sub(dropped_chunks);
        st.min_time = st.series.iter().filter_map(|(_, s)| s.min_time()).min();
        if st.min_time.is_none() {
            st.max_time = None;
        }
        self.metrics.series_removed.inc_by(empty.len() as u64);
        self.metrics.series.set(st.series.len() as i64);
        self.metrics.chunks.set(st.num_chunks as i64);
    }

    fn truncate_wal_logged(&self) {
        if let Err(error) = self.truncate_wal() {
            self.metrics.compaction_failures.inc();
            warn!(message = "Cannot truncate the WAL; will retry after the next block.", tenant = %self.tenant, %error);
        }
    }

    /// Starts a new WAL segment, then replaces the oldest segments whose samples all lie below
    /// the minimum valid time (they are in blocks) by a checkpoint holding the series records of
    /// the live series, and deletes them. Samples still in memory stay in the segments kept, as
    /// Prometheus keeps the segments of the last third of its WAL.
    fn truncate_wal(&self) -> Result<(), HeadError> {
        let (upto, records) = {
            let mut st = self.lock();
            let current = st.wal.cut_segment()?;
            st.segment_max_t.insert(current, i64::MIN);
            let (first, _) = st.wal.segment_range();
            let mut upto = None;
            for segment in first..current {
                match st.segment_max_t.get(&segment) {
                    Some(&max_t) if max_t < st.min_valid_time => upto = Some(segment),
                    _ => break,
                }
            }
            let Some(upto) = upto else { return Ok(()) };
            (upto, checkpoint_records(&st))
        };
        // Written without the lock; segments after `upto` are not touched by it.
        let wal_dir = self.dir.join(WAL_DIR);
        let stats = write_checkpoint(&wal_dir, upto, &records)?;
        let mut st = self.lock();
        st.wal.truncate(upto + 1)?;
        st.segment_max_t.retain(|&segment, _| segment > upto);
        self.metrics.wal_size.set(st.wal.size_bytes() as i64);
        info!(
            message = "Truncated WAL behind a checkpoint.",
            tenant = %self.tenant,
            checkpoint = upto,
            series = st.series.len(),
            checkpoint_bytes = stats.bytes,
        );
        Ok(())
    }
}

/// Series records of every live series, [`CHECKPOINT_SERIES_PER_RECORD`] per record.
fn checkpoint_records(st: &HeadState) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut live = st.series.iter().map(|(_, s)| s).peekable();
    while live.peek().is_some() {
        let mut rec = Vec::new();
        let batch = live.by_ref().take(CHECKPOINT_SERIES_PER_RECORD);
        encode_series(batch.map(|s| (s.series_ref, st.series.labels(s))), &mut rec);
        records.push(rec);
    }
    records
}
