//! The writing side: [`Wal`] appends framed records to the newest segment and cuts, syncs and
//! truncates segments, as Prometheus `tsdb/wlog/wlog.go` (`Log`, `NextSegment`, `Truncate`).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::WalError;
use super::dir::{self, Listing};
use super::segment::{HEADER_LEN, frame_header};
use crate::fs::FsError;

/// Default segment size in bytes (128 MiB), as Prometheus `wlog.DefaultSegmentSize`.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 * 1024 * 1024;

/// Above this capacity the write buffer is released after use, so one huge request does not pin
/// its size for the life of the process.
const MAX_KEPT_BUFFER: usize = 8 * 1024 * 1024;

/// A write-ahead log in one directory; see the [module docs](super) for format and guarantees.
/// Not internally synchronised: the owner (one head) serialises calls.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    /// The segment being written, opened for appending.
    file: File,
    current: u32,
    /// Oldest segment on disk.
    first: u32,
    /// Bytes in the current segment.
    offset: u64,
    /// Bytes of older segments and checkpoints, as of the last open, cut or truncate.
    older_bytes: u64,
    /// Reused frame buffer: one request's frames, written with one call.
    buf: Vec<u8>,
    /// Set when a failed write could not be rolled back; every later write fails.
    poisoned: bool,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` and starts a new, empty segment after the newest
    /// segment or checkpoint, so a possibly torn segment is never appended to. Leftover
    /// `checkpoint.*.tmp` files are removed. `segment_size` is in bytes (see
    /// [`DEFAULT_SEGMENT_SIZE`]); zero is [`WalError::InvalidSegmentSize`].
    pub fn open(dir: &Path, segment_size: u64) -> Result<Wal, WalError> {
        if segment_size == 0 {
            return Err(WalError::InvalidSegmentSize);
        }
        fs::create_dir_all(dir).map_err(FsError::at("create WAL directory", dir))?;
        let listing = dir::list(dir)?;
        for tmp in &listing.temporaries {
            dir::remove_path(tmp)?;
        }
        let newest = listing.segments.last().max(listing.checkpoints.last()).copied();
        let current = match newest {
            None => 0,
            Some(i) => i
                .checked_add(1)
                .ok_or_else(|| WalError::IndexOverflow { dir: dir.to_owned() })?,
        };
        let file = create_segment(dir, current)?;
        let older_bytes = older_bytes(dir, &listing)?;
        Ok(Wal {
            dir: dir.to_owned(),
            segment_size,
            file,
            current,
            first: listing.segments.first().copied().unwrap_or(current),
            offset: 0,
            older_bytes,
            buf: Vec::new(),
            poisoned: false,
        })
    }

    /// Appends `records` (each framed with its CRC32C) to the current segment with one `write(2)`
    /// call and returns once the kernel has the bytes (not fsynced; see [`Wal::sync`]). All records
    /// of one call land in one segment: if they do not fit into the rest of a non-empty segment, a
    /// new one is cut first. On a write error the partial bytes are truncated away and the error is
    /// returned; if even that fails, the WAL is poisoned ([`WalError::Poisoned`]).
    pub fn log(&mut self, records: &[&[u8]]) -> Result<(), WalError> {
        self.check_poisoned()?;
        self.buf.clear();
        self.buf.reserve(records.iter().map(|r| HEADER_LEN + r.len()).sum());
        for record in records {
            self.buf.extend_from_slice(&frame_header(record)?);
            self.buf.extend_from_slice(record);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let len = self.buf.len() as u64;
        if self.offset > 0 && self.offset.saturating_add(len) > self.segment_size {
            self.cut_segment()?;
        }
        let result = self.file.write_all(&self.buf);
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            self.buf = Vec::new();
        }
        match result {
            Ok(()) => {
                self.offset += len;
                Ok(())
            }
            Err(source) => {
                // Remove partial bytes so the segment stays a clean sequence of frames.
                if self.file.set_len(self.offset).is_err() {
                    self.poisoned = true;
                }
                Err(FsError::at("write segment", &self.segment_path(self.current))(source).into())
            }
        }
    }

    /// Fsyncs the current segment, making everything logged so far survive a power loss.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check_poisoned()?;
        self.file
            .sync_all()
            .map_err(|e| FsError::at("sync segment", &self.segment_path(self.current))(e).into())
    }

    /// Fsyncs and closes the current segment and starts the next one (also when the current one is
    /// empty); returns the new segment's index. Everything in segments below it is durable, so
    /// the owner may checkpoint up to `index - 1`.
    pub fn cut_segment(&mut self) -> Result<u32, WalError> {
        self.sync()?;
        let next = self
            .current
            .checked_add(1)
            .ok_or_else(|| WalError::IndexOverflow { dir: self.dir.clone() })?;
        self.file = create_segment(&self.dir, next)?;
        self.older_bytes += self.offset;
        self.offset = 0;
        self.current = next;
        Ok(next)
    }

    /// Deletes segments with an index below `before_segment`, oldest first (so a failure leaves a
    /// contiguous range). Call it after [`write_checkpoint`](super::write_checkpoint) with the
    /// checkpoint index + 1. The current segment cannot be deleted: `before_segment` greater than
    /// it is [`WalError::TruncateCurrent`].
    pub fn truncate(&mut self, before_segment: u32) -> Result<(), WalError> {
        if before_segment > self.current {
            return Err(WalError::TruncateCurrent {
                before: before_segment,
                current: self.current,
            });
        }
        let listing = dir::list(&self.dir)?;
        for &index in listing.segments.iter().take_while(|&&i| i < before_segment) {
            dir::remove_path(&self.segment_path(index))?;
        }
        dir::sync_dir(&self.dir)?;
        let listing = dir::list(&self.dir)?;
        self.first = listing.segments.first().copied().unwrap_or(self.current);
        self.older_bytes = older_bytes(&self.dir, &listing)?.saturating_sub(self.offset);
        Ok(())
    }

    /// Bytes on disk: segments and checkpoints (checkpoints as of the last open, cut or truncate).
    pub fn size_bytes(&self) -> u64 {
        self.older_bytes + self.offset
    }

    /// `(first, current)`: the oldest segment on disk and the one being written, inclusive.
    pub fn segment_range(&self) -> (u32, u32) {
        (self.first, self.current)
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment_path(&self, index: u32) -> PathBuf {
        self.dir.join(dir::segment_name(index))
    }

    fn check_poisoned(&self) -> Result<(), WalError> {
        match self.poisoned {
            true => Err(WalError::Poisoned {
                path: self.segment_path(self.current),
            }),
            false => Ok(()),
        }
    }
}

/// Creates segment `index` (it must not exist) and makes its name durable.
fn create_segment(dir: &Path, index: u32) -> Result<File, WalError> {
    let path = dir.join(dir::segment_name(index));
    let file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(&path)
        .map_err(FsError::at("create segment", &path))?;
    dir::sync_dir(dir)?;
    Ok(file)
}

/// Total bytes of the listed segments and checkpoints, except any segment being written later.
fn older_bytes(dir: &Path, listing: &Listing) -> Result<u64, WalError> {
    let names = listing.segments.iter().map(|&i| dir::segment_name(i));
    let names = names.chain(listing.checkpoints.iter().map(|&i| dir::checkpoint_name(i)));
    names.map(|name| dir::file_len(&dir.join(name))).sum()
}
