//! Positions in a shard's queue and the persisted read position: the position just after the
//! last record delivered (2xx) or dropped for good, rewritten in place after every batch.
//!
//! ```text
//! position file: u64 segment | u64 offset | u32 CRC32C of the first 16 bytes   (20 bytes, LE)
//! ```
//!
//! Written with one `pwrite` and no fsync: a crash of the process keeps it (page cache); a torn
//! or missing file makes the queue replay from its oldest segment, which re-sends data (harmless
//! duplicates for receivers) but loses none.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Name of the position file in a shard directory.
pub(super) const POSITION_FILE: &str = "position";
const LEN: usize = 20;

/// A byte position in a shard's queue: segment id, then byte offset in that segment file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Position {
    /// Segment id (the file name's number).
    pub(crate) segment: u64,
    /// Byte offset in the segment file.
    pub(crate) offset: u64,
}

/// The open position file of one shard.
#[derive(Debug)]
pub(super) struct PositionFile {
    file: File,
}

impl PositionFile {
    /// Opens (creating) the position file in `dir`; also returns the stored position, `None`
    /// when the file is new, short or fails its CRC.
    ///
    /// # Errors
    /// When the file cannot be opened or read.
    pub(super) fn open(dir: &Path) -> io::Result<(PositionFile, Option<Position>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(POSITION_FILE))?;
        let mut buf = [0u8; LEN];
        let stored = match file.read_exact_at(&mut buf, 0) {
            Ok(()) => decode(&buf),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
            Err(e) => return Err(e),
        };
        Ok((PositionFile { file }, stored))
    }

    /// Persists `position` (no fsync; see the module docs).
    ///
    /// # Errors
    /// When the write fails.
    pub(super) fn store(&self, position: Position) -> io::Result<()> {
        self.file.write_all_at(&encode(position), 0)
    }

    /// Flushes the file to the device (at shutdown).
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

fn encode(position: Position) -> [u8; LEN] {
    let mut buf = [0u8; LEN];
    buf[..8].copy_from_slice(&position.segment.to_le_bytes());
    buf[8..16].copy_from_slice(&position.offset.to_le_bytes());
    let crc = crc32c::crc32c(&buf[..16]);
    buf[16..].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn decode(buf: &[u8; LEN]) -> Option<Position> {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let crc = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]);
    (crc32c::crc32c(&buf[..16]) == crc).then(|| Position {
        segment: word(0),
        offset: word(8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_persist_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (file, stored) = PositionFile::open(dir.path()).unwrap();
        assert_eq!(stored, None);
        let at = Position {
            segment: 7,
            offset: 1 << 40,
        };
        file.store(at).unwrap();
        file.store(Position { segment: 8, offset: 8 }).unwrap();
        drop(file);
        let (_, stored) = PositionFile::open(dir.path()).unwrap();
        assert_eq!(stored, Some(Position { segment: 8, offset: 8 }));

        let path = dir.path().join(POSITION_FILE);
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert_eq!(PositionFile::open(dir.path()).unwrap().1, None, "byte {i}");
        }
        std::fs::write(&path, &good[..10]).unwrap();
        assert_eq!(PositionFile::open(dir.path()).unwrap().1, None);
    }
}
