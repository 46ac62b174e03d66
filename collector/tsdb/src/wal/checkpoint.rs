//! Checkpoints: one file `checkpoint.NNNNNNNN` holding the records that replace segments up to
//! NNNNNNNN, written atomically (temporary file, fsync, rename, fsync of the directory), as
//! Prometheus `tsdb/wlog/checkpoint.go` (which uses a directory of segments instead of one file).

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::WalError;
use super::dir;
use super::segment::{HEADER_LEN, frame_header};
use crate::fs::FsError;

/// Write buffer for checkpoint files.
const WRITE_BUFFER: usize = 1024 * 1024;

/// What [`write_checkpoint`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Records written.
    pub records: u64,
    /// Size of the checkpoint file in bytes, frames included.
    pub bytes: u64,
}

/// Writes `records` (framed like segments) as `dir/checkpoint.{upto_segment:08}`, replacing segments
/// `..=upto_segment` on replay, then deletes older checkpoints. Segments are left alone: call
/// [`Wal::truncate`](super::Wal::truncate)`(upto_segment + 1)` afterwards.
///
/// `upto_segment` must be a finished segment (below the one being written, e.g. the index returned
/// by [`Wal::cut_segment`](super::Wal::cut_segment) minus one): records logged later into that segment
/// would be skipped by replay. The file appears under its final name only when complete and
/// fsynced; a leftover `.tmp` from a crash is replaced here, ignored by replay and removed by
/// [`Wal::open`](super::Wal::open). On error the temporary file is removed.
pub fn write_checkpoint<R: AsRef<[u8]>>(
    dir: &Path,
    upto_segment: u32,
    records: impl IntoIterator<Item = R>,
) -> Result<CheckpointStats, WalError> {
    let tmp = dir.join(dir::checkpoint_tmp_name(upto_segment));
    let path = dir.join(dir::checkpoint_name(upto_segment));
    dir::remove_path(&tmp)?;
    let stats = match write_file(&tmp, records) {
        Ok(stats) => stats,
        Err(e) => {
            // The error being returned matters more than a failed cleanup; open retries it.
            let _ = dir::remove_path(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, &path).map_err(FsError::at("rename checkpoint", &path))?;
    dir::sync_dir(dir)?;
    for old in dir::list(dir)?
        .checkpoints
        .into_iter()
        .take_while(|&i| i < upto_segment)
    {
        dir::remove_path(&dir.join(dir::checkpoint_name(old)))?;
    }
    Ok(stats)
}

/// Writes the framed records to a new file at `path` and fsyncs it.
fn write_file<R: AsRef<[u8]>>(path: &Path, records: impl IntoIterator<Item = R>) -> Result<CheckpointStats, WalError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(FsError::at("create checkpoint", path))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut stats = CheckpointStats::default();
    for record in records {
        let record = record.as_ref();
        out.write_all(&frame_header(record)?)
            .and_then(|()| out.write_all(record))
            .map_err(FsError::at("write checkpoint", path))?;
        stats.records += 1;
        stats.bytes += (HEADER_LEN + record.len()) as u64;
    }
    let file = out
        .into_inner()
        .map_err(|e| FsError::at("write checkpoint", path)(e.into_error()))?;
    file.sync_all().map_err(FsError::at("sync checkpoint", path))?;
    Ok(stats)
}
