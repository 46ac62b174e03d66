//! Replay: the newest checkpoint, then every later segment in order, one callback per record;
//! a torn tail is cut off, other damage is an error (see the [module docs](super)).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::WalError;
use super::dir;
use super::segment::{Damage, Frame, FrameReader};
use crate::fs::FsError;

/// What [`replay`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Index of the checkpoint read first, if any.
    pub checkpoint: Option<u32>,
    /// `(first, last)` segment indices read after it, inclusive; `None` if there were none.
    pub segments: Option<(u32, u32)>,
    /// Records handed to the callback.
    pub records: u64,
    /// Payload bytes handed to the callback (frame headers excluded).
    pub bytes: u64,
    /// The torn tail that was cut off, if any (worth a warning in the log).
    pub torn_tail: Option<TornTail>,
}

/// A damaged end of the tail segment, truncated by [`replay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Index of the segment.
    pub segment: u32,
    /// Its new length in bytes: the end of the last intact record.
    pub offset: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// What was wrong with the first removed frame.
    pub damage: Damage,
}

/// Errors of [`replay`]: the WAL itself, or the callback rejecting a record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading, truncating or validating the WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The callback returned an error for the record at `offset` of `path`.
    #[error("apply WAL record at offset {offset} of {}", path.display())]
    Apply {
        /// Segment or checkpoint file.
        path: PathBuf,
        /// Byte offset of the record's frame.
        offset: u64,
        /// The callback's error.
        #[source]
        source: E,
    },
}

/// Replays the WAL in `dir` (a missing directory is an empty WAL): the newest checkpoint, then the
/// segments after it in index order, calling `f` once per record with its payload. Segments at or
/// below the checkpoint are skipped (they may outlive it if [`Wal::truncate`](super::Wal::truncate)
/// did not run). Damage in the tail segment (the newest non-empty one) truncates that file at the
/// last intact record ([`ReplayStats::torn_tail`]); damage in the checkpoint or an earlier segment
/// is [`WalError::Corrupt`], and a gap in segment indices is [`WalError::MissingSegment`].
/// Records before the failure have already been passed to `f`.
pub fn replay<E>(dir: &Path, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<ReplayStats, ReplayError<E>> {
    let listing = dir::list(dir)?;
    let mut stats = ReplayStats::default();

    // Checkpoint first: it was fsynced before its rename, so any damage is corruption.
    if let Some(&index) = listing.checkpoints.last() {
        let path = dir.join(dir::checkpoint_name(index));
        let len = dir::file_len(&path)?;
        if let Some((offset, damage)) = read_file(&path, len, &mut f, &mut stats)? {
            return Err(WalError::Corrupt { path, offset, damage }.into());
        }
        stats.checkpoint = Some(index);
    }

    // Segments after it must be consecutive, starting right after the checkpoint.
    let mut segments = Vec::new();
    let mut expected = stats.checkpoint.map(|c| c.checked_add(1));
    for index in listing
        .segments
        .into_iter()
        .filter(|&i| stats.checkpoint.is_none_or(|c| i > c))
    {
        if let Some(Some(missing)) = expected
            && missing != index
        {
            return Err(WalError::MissingSegment {
                dir: dir.to_owned(),
                missing,
                found: index,
            }
            .into());
        }
        expected = Some(index.checked_add(1));
        let path = dir.join(dir::segment_name(index));
        let len = dir::file_len(&path)?;
        segments.push((index, path, len));
    }
    let tail = segments.iter().rposition(|(_, _, len)| *len > 0);
    stats.segments = segments
        .first()
        .zip(segments.last())
        .map(|(first, last)| (first.0, last.0));

    for (position, (index, path, len)) in segments.into_iter().enumerate() {
        let Some((offset, damage)) = read_file(&path, len, &mut f, &mut stats)? else {
            continue;
        };
        if Some(position) != tail {
            return Err(WalError::Corrupt { path, offset, damage }.into());
        }
        truncate_file(&path, offset)?;
        stats.torn_tail = Some(TornTail {
            segment: index,
            offset,
            dropped_bytes: len - offset,
            damage,
        });
    }
    Ok(stats)
}

/// Feeds every intact record of `path` (`len` bytes) to `f`; returns the first damage and its offset.
fn read_file<E>(
    path: &Path,
    len: u64,
    f: &mut impl FnMut(&[u8]) -> Result<(), E>,
    stats: &mut ReplayStats,
) -> Result<Option<(u64, Damage)>, ReplayError<E>> {
    let file = File::open(path).map_err(|e| WalError::from(FsError::at("open WAL file", path)(e)))?;
    let mut reader = FrameReader::new(file, len);
    loop {
        let offset = reader.offset();
        match reader
            .next_frame()
            .map_err(|e| WalError::from(FsError::at("read WAL file", path)(e)))?
        {
            Frame::End => return Ok(None),
            Frame::Damaged(damage) => return Ok(Some((offset, damage))),
            Frame::Record(record) => {
                stats.records += 1;
                stats.bytes += record.len() as u64;
                f(record).map_err(|source| ReplayError::Apply {
                    path: path.to_owned(),
                    offset,
                    source,
                })?;
            }
        }
    }
}

/// Cuts `path` to `len` bytes and fsyncs it, so the torn bytes are gone for good.
fn truncate_file(path: &Path, len: u64) -> Result<(), WalError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|file| file.set_len(len).and_then(|()| file.sync_all()))
        .map_err(FsError::at("truncate torn WAL segment", path))?;
    Ok(())
}
