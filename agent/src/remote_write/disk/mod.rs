//! The on-disk queue of each remote write endpoint: every chunk handed to `append` is written
//! (snappy-compressed, CRC-checked) to segment files before `append` returns, so a crash of the
//! agent or an outage of the receivers loses nothing within the disk budget.
//!
//! ```text
//! <storage.path>/queue/<remote name>/
//!   lock                      flock(2) held by the running queue (one writer per directory)
//!   shard-<i>/                one queue per shard: a series always maps to the same shard
//!     00000000000000000001.seg  segments: magic "TRWLQ\0\0\x01", then records
//!     position                the read position (segment, offset) after the last 2xx
//! record: u32 payload len | u32 CRC32C(payload) | u32 samples | i64 max ts ms | snappy block
//! ```
//!
//! Files: `record.rs` (framing and joining snappy blocks without recompressing), `segment.rs`
//! (segment files, writer and reader), `position.rs` (the persisted read position),
//! `queue.rs` (one shard: memory + disk, budget, replay). Writes go to the page cache without
//! fsync: a killed process loses nothing; a power loss may lose the last seconds.

mod position;
mod queue;
mod record;
mod segment;

#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

pub(crate) use queue::{AppendError, Batch, QueueOptions, ShardQueue};
pub(crate) use record::join_blocks;

use super::metrics::QueueMetrics;

/// Smallest and largest segment file, in bytes.
const SEGMENT_BYTES: (u64, u64) = (64 << 10, 16 << 20);

/// Why an on-disk queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// A file or directory of the queue could not be created, read or deleted.
    #[error("remote write queue {}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
}

/// The directory of endpoint `remote_name` under `queue_dir`: the name itself when it is a
/// plain file name (ASCII letters, digits, `_`, `-`, at most 64 bytes), else the name with
/// other bytes replaced by `_` and an xxh3 suffix, so distinct names never share a directory.
pub(crate) fn endpoint_dir(queue_dir: &Path, remote_name: &str) -> PathBuf {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !remote_name.is_empty() && remote_name.len() <= 64 && remote_name.bytes().all(plain) {
        return queue_dir.join(remote_name);
    }
    let cleaned: String = remote_name
        .bytes()
        .take(48)
        .map(|b| if plain(b) { b as char } else { '_' })
        .collect();
    let hash = xxhash_rust::xxh3::xxh3_64(remote_name.as_bytes());
    queue_dir.join(format!("{cleaned}~{hash:016x}"))
}

/// An exclusive `flock(2)` on an endpoint directory's `lock` file, released when dropped (or
/// when the process dies).
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (created if needed); `None` while another queue holds it.
    ///
    /// # Errors
    /// [`DiskError::Io`] when the directory or lock file cannot be created or locked.
    pub(crate) fn try_lock(dir: &Path) -> Result<Option<DirLock>, DiskError> {
        let io = |source| DiskError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("lock"))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

/// Opens the shard queues of the endpoint directory `dir` (locked by the caller): `shards`
/// writable ones, then read-only ones for `shard-<i>` directories with `i >= shards` left by a
/// configuration with more shards, drained before they are removed. `opts.max_bytes` is the
/// endpoint's disk budget, split evenly between the writable shards; `opts.segment_bytes` is
/// derived from it. Blocking.
///
/// # Errors
/// As [`ShardQueue::open`].
pub(crate) fn open_shards(
    dir: &Path,
    shards: usize,
    opts: &QueueOptions,
    metrics: &QueueMetrics,
) -> Result<Vec<ShardQueue>, DiskError> {
    let max_bytes = opts.max_bytes / shards.max(1) as u64;
    let opts = QueueOptions {
        max_bytes,
        segment_bytes: (max_bytes / 8).clamp(SEGMENT_BYTES.0, SEGMENT_BYTES.1),
        ..opts.clone()
    };
    let mut leftover: Vec<usize> = std::fs::read_dir(dir)
        .map_err(|source| DiskError::Io {
            dir: dir.to_owned(),
            source,
        })?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.strip_prefix("shard-")?.parse::<usize>().ok()
        })
        .filter(|&i| i >= shards)
        .collect();
    leftover.sort_unstable();
    (0..shards)
        .map(|i| (i, true))
        .chain(leftover.into_iter().map(|i| (i, false)))
        .map(|(i, writable)| ShardQueue::open(&shard_dir(dir, i), writable, opts.clone(), metrics.clone()))
        .collect()
}

/// Directory of shard `index` in an endpoint directory.
pub(crate) fn shard_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("shard-{index}"))
}
