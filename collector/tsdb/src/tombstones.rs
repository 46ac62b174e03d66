//! The `tombstones` file of a block, as Prometheus `tsdb/tombstones/tombstones.go` and
//! `tsdb/docs/format/tombstones.md`. We never delete, so we write the empty file:
//! `magic 0x0130BA30 <4b BE> | version 1 <1b> | CRC32C <4b BE>`; the CRC covers the stones after
//! the version byte (none, so it is 0).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::index::encoding::{Decbuf, crc32c};

/// Magic number of the tombstones file.
pub const MAGIC_TOMBSTONES: u32 = 0x0130_BA30;
/// Tombstones format version.
pub const TOMBSTONES_FORMAT_V1: u8 = 1;
/// File name inside a block.
pub const TOMBSTONES_FILENAME: &str = "tombstones";

/// Errors reading a tombstones file.
#[derive(Debug, thiserror::Error)]
pub enum TombstonesError {
    /// The file could not be read.
    #[error("read tombstones")]
    Io(#[from] io::Error),
    /// Shorter than header and CRC.
    #[error("tombstones file too short ({0} bytes)")]
    TooShort(usize),
    /// Wrong magic number or version.
    #[error("tombstones: bad header (magic {magic:#010x}, version {version})")]
    BadHeader {
        /// Magic number read.
        magic: u32,
        /// Version read.
        version: u8,
    },
    /// The checksum does not match.
    #[error("tombstones: checksum mismatch")]
    Checksum,
    /// A stone could not be decoded.
    #[error("tombstones: truncated or malformed stone")]
    Malformed,
}

/// The bytes of a tombstones file without stones.
pub fn empty_bytes() -> [u8; 9] {
    let mut b = [0u8; 9];
    b[..4].copy_from_slice(&MAGIC_TOMBSTONES.to_be_bytes());
    b[4] = TOMBSTONES_FORMAT_V1;
    b[5..].copy_from_slice(&crc32c(&[]).to_be_bytes());
    b
}

/// Writes an empty `<dir>/tombstones` and fsyncs it; returns its size in bytes.
pub fn write_empty(dir: &Path) -> io::Result<u64> {
    let bytes = empty_bytes();
    let mut f = File::create(dir.join(TOMBSTONES_FILENAME))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    Ok(bytes.len() as u64)
}

/// Checks a tombstones file's bytes; returns the number of stones (series ref, min and max
/// time triples) it holds.
pub fn parse(b: &[u8]) -> Result<usize, TombstonesError> {
    if b.len() < 9 {
        return Err(TombstonesError::TooShort(b.len()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    let magic = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if magic != MAGIC_TOMBSTONES || body[4] != TOMBSTONES_FORMAT_V1 {
        return Err(TombstonesError::BadHeader {
            magic,
            version: body[4],
        });
    }
    let stones = &body[5..];
    if crc32c(stones).to_be_bytes() != crc {
        return Err(TombstonesError::Checksum);
    }
    let mut d = Decbuf::new(stones);
    let mut n = 0;
    while !d.is_empty() {
        d.uvarint()
            .and_then(|_| d.varint())
            .and_then(|_| d.varint())
            .map_err(|_| TombstonesError::Malformed)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::encoding::{put_uvarint, put_varint};

    #[test]
    fn empty_file_is_prometheus_layout() {
        assert_eq!(empty_bytes(), [0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0]);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write_empty(dir.path()).unwrap(), 9);
        let b = std::fs::read(dir.path().join(TOMBSTONES_FILENAME)).unwrap();
        assert_eq!(parse(&b).unwrap(), 0);
    }

    #[test]
    fn parses_stones_and_rejects_damage() {
        let mut stones = Vec::new();
        put_uvarint(&mut stones, 16);
        put_varint(&mut stones, -5);
        put_varint(&mut stones, 100);
        let mut b = empty_bytes()[..5].to_vec();
        b.extend_from_slice(&stones);
        b.extend_from_slice(&crc32c(&stones).to_be_bytes());
        assert_eq!(parse(&b).unwrap(), 1);

        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert!(parse(&bad).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "truncated to {n}");
        }
        // A stone cut short but with a matching CRC.
        let short = [0x80u8];
        let mut bad = empty_bytes()[..5].to_vec();
        bad.extend_from_slice(&short);
        bad.extend_from_slice(&crc32c(&short).to_be_bytes());
        assert!(matches!(parse(&bad), Err(TombstonesError::Malformed)));
    }
}
