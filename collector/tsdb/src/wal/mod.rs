//! Segmented write-ahead log with CRC32C-framed records, checkpoints and replay, following the
//! ideas of Prometheus `tsdb/wlog/wlog.go` and `tsdb/wlog/checkpoint.go` (our own, simpler framing).
//!
//! # Directory layout
//!
//! ```text
//! wal/
//!   checkpoint.00000004       records that replace segments 00000000..=00000004
//!   00000005 00000006 …       segments, named by 8-digit index, written in order
//!   checkpoint.00000009.tmp   a checkpoint being written; ignored by replay, removed by Wal::open
//! ```
//!
//! # Framing
//!
//! Segments and checkpoints hold a plain sequence of frames, no pages and no padding:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC32C(length bytes ‖ payload) | payload
//! ```
//!
//! The checksum covers the length, so a zero-filled tail (what a file system may leave after a
//! crash) never reads as a valid empty record, and a damaged length is caught. A record never spans
//! two segments; a record larger than the segment size gets a segment of its own. Payloads are at
//! most `u32::MAX` bytes. The payload format is the caller's; [`record`] has ours.
//!
//! # Durability
//!
//! [`Wal::log`] hands all records of one call to the kernel with one `write(2)` before it returns,
//! so an acknowledged request survives the process being killed (`kill -9`). Data reaches the disk
//! (fsync) when a segment is cut, on [`Wal::sync`], and for checkpoints before they are renamed into
//! place; a power loss can cost the unsynced tail of the newest segment, as in Prometheus.
//!
//! # Recovery
//!
//! [`replay`] reads the newest checkpoint, then every segment after it. Damage in the *tail*
//! segment (the newest segment holding any bytes) is a torn write: the file is truncated at the
//! last intact record and [`ReplayStats::torn_tail`] says how many bytes were dropped. Damage
//! anywhere else is [`WalError::Corrupt`], naming the file and offset. [`Wal::open`] always starts a
//! fresh segment, so an old, possibly torn segment is never appended to; run [`replay`] before
//! logging new records (before or after `open`, since empty trailing segments are skipped).
//!
//! # Truncation
//!
//! [`write_checkpoint`] writes `checkpoint.NNNNNNNN` (NNNNNNNN = the last segment it replaces) and
//! deletes older checkpoints; it does not touch segments. The owner then calls
//! [`Wal::truncate`]`(NNNNNNNN + 1)` to delete the replaced segments. Replay skips segments at or
//! below the checkpoint, so a crash between the two steps is harmless.

mod checkpoint;
mod dir;
pub mod record;
mod replay;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use crate::fs::FsError;

pub use checkpoint::{CheckpointStats, write_checkpoint};
pub use replay::{ReplayError, ReplayStats, TornTail, replay};
pub use segment::Damage;
pub use writer::{DEFAULT_SEGMENT_SIZE, Wal};

/// Errors of the WAL: file-system failures, damaged files and misuse.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file-system operation failed; its `op` names it (e.g. "create segment").
    #[error(transparent)]
    Io(#[from] FsError),
    /// A checkpoint, or a segment other than the tail segment, holds a damaged frame.
    #[error("WAL file {} is corrupt at offset {offset}: {damage}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first damaged frame.
        offset: u64,
        /// What is wrong with it.
        damage: Damage,
    },
    /// A record is longer than a frame can describe (`u32::MAX` bytes).
    #[error("WAL record of {len} bytes exceeds the frame limit of 4 GiB")]
    RecordTooLarge {
        /// Length of the record in bytes.
        len: usize,
    },
    /// Segments to replay are not consecutive (or do not follow the checkpoint): data is missing.
    #[error("WAL segment {missing:08} is missing in {} (next present: {found:08})", dir.display())]
    MissingSegment {
        /// The WAL directory.
        dir: PathBuf,
        /// Index that should exist.
        missing: u32,
        /// Index found in its place.
        found: u32,
    },
    /// [`Wal::truncate`] was asked to delete the segment being written.
    #[error("cannot truncate the WAL before segment {before:08}: segment {current:08} is being written")]
    TruncateCurrent {
        /// The requested bound.
        before: u32,
        /// The segment being written.
        current: u32,
    },
    /// The segment size given to [`Wal::open`] is zero.
    #[error("WAL segment size must be at least 1 byte")]
    InvalidSegmentSize,
    /// Segment indices are exhausted (`u32::MAX` reached).
    #[error("WAL segment index overflows u32 in {}", dir.display())]
    IndexOverflow {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// An earlier write failed and its partial bytes could not be removed; reopen the WAL.
    #[error("WAL segment {} has a failed partial write that could not be rolled back", path.display())]
    Poisoned {
        /// The segment holding the partial write.
        path: PathBuf,
    },
}
