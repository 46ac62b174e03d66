//! Chunk segment files `chunks/000001…` of a block, as Prometheus `tsdb/chunks/chunks.go` and
//! `tsdb/docs/format/chunks.md`.
//!
//! A segment is `magic 0x85BD40DD <4b BE> | version 1 <1b> | 3 zero bytes`, then chunks
//! `len(data) <uvarint> | encoding <1b> | data | CRC32C(encoding, data) <4b BE>`. A chunk
//! reference is `(segment index from 0) << 32 | byte offset in the segment`; files are numbered
//! from `000001`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::fs::{FsError, sync_dir};
use crate::index::encoding::{Decbuf, crc32c, put_uvarint};

/// Magic number at the start of every segment file.
pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
/// Segment format version.
pub const CHUNKS_FORMAT_V1: u8 = 1;
/// Bytes of the segment header (magic, version, padding).
pub const SEGMENT_HEADER_SIZE: u64 = 8;
/// Prometheus's segment size limit: 512 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 512 << 20;
/// Name of the chunks directory inside a block.
pub const CHUNKS_DIR: &str = "chunks";

/// Errors writing or reading chunk segments.
#[derive(Debug, thiserror::Error)]
pub enum ChunksError {
    /// File system error on a path.
    #[error(transparent)]
    Io(#[from] FsError),
    /// Segment size outside `9..=u32::MAX` bytes.
    #[error("invalid segment size {0} bytes")]
    InvalidSegmentSize(u64),
    /// A file in `chunks/` is not a numbered segment, or numbers are not `1..=n`.
    #[error("unexpected file {0:?} in chunks directory (want 000001, 000002, …)")]
    UnexpectedFile(String),
    /// Bad magic number or version in a segment header.
    #[error("segment {name}: bad header (magic {magic:#010x}, version {version})")]
    BadHeader {
        /// Segment file name.
        name: String,
        /// Magic number read.
        magic: u32,
        /// Version read.
        version: u8,
    },
    /// A chunk reference points outside the segments.
    #[error("chunk reference {0:#x} out of range")]
    BadRef(u64),
    /// A chunk's length runs past the end of its segment, or its varint is broken.
    #[error("chunk {0:#x} is truncated")]
    Truncated(u64),
    /// The checksum of a chunk does not match.
    #[error("chunk {chunk_ref:#x}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// Reference of the chunk.
        chunk_ref: u64,
        /// Checksum in the file.
        stored: u32,
        /// Checksum of the bytes.
        computed: u32,
    },
}

/// Packs a chunk reference: segment index (from 0) in the upper 32 bits, offset in the lower.
pub fn chunk_ref(segment: u32, offset: u32) -> u64 {
    (u64::from(segment) << 32) | u64::from(offset)
}

/// Splits a chunk reference into (segment index, offset).
pub fn split_chunk_ref(r: u64) -> (u32, u32) {
    ((r >> 32) as u32, r as u32)
}

/// File name of segment `index` (from 0): `000001` for 0.
pub fn segment_name(index: u32) -> String {
    format!("{:06}", u64::from(index) + 1)
}

/// One finished segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// File name inside `chunks/`, e.g. `000001`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

// === ChunkWriter ===

/// Appends chunks to numbered segment files, cutting a new one when the next chunk would not fit.
#[derive(Debug)]
pub struct ChunkWriter {
    dir: PathBuf,
    segment_size: u64,
    segments: Vec<SegmentFile>,
    cur: Option<BufWriter<File>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// Creates `dir` (the block's `chunks/`) and a writer whose segments stay below
    /// `segment_size` bytes (unless one chunk alone is larger). Use [`DEFAULT_SEGMENT_SIZE`].
    pub fn create(dir: &Path, segment_size: u64) -> Result<ChunkWriter, ChunksError> {
        if !(SEGMENT_HEADER_SIZE + 1..=u64::from(u32::MAX)).contains(&segment_size) {
            return Err(ChunksError::InvalidSegmentSize(segment_size));
        }
        fs::create_dir_all(dir).map_err(FsError::at("create", dir))?;
        Ok(ChunkWriter {
            dir: dir.to_owned(),
            segment_size,
            segments: Vec::new(),
            cur: None,
            buf: Vec::with_capacity(64),
        })
    }

    /// Writes one chunk (`encoding`, e.g. [`crate::chunkenc::ENCODING_XOR`], and its bytes);
    /// returns its reference.
    pub fn write_chunk(&mut self, encoding: u8, data: &[u8]) -> Result<u64, ChunksError> {
        self.buf.clear();
        put_uvarint(&mut self.buf, data.len() as u64);
        self.buf.push(encoding);
        let crc = crc32c::crc32c_append(crc32c(&[encoding]), data);
        let size = self.buf.len() as u64 + data.len() as u64 + 4;

        let used = self.segments.last().map_or(0, |s| s.size);
        if self.cur.is_none() || (used > SEGMENT_HEADER_SIZE && used + size > self.segment_size) {
            self.cut()?;
        }
        let (Some(w), Some(seg)) = (self.cur.as_mut(), self.segments.last_mut()) else {
            return Err(ChunksError::BadRef(0));
        };
        let offset = seg.size;
        let written = w
            .write_all(&self.buf)
            .and_then(|()| w.write_all(data))
            .and_then(|()| w.write_all(&crc.to_be_bytes()));
        written.map_err(|e| FsError::at("write", &self.dir.join(&seg.name))(e))?;
        seg.size += size;
        let index = (self.segments.len() - 1) as u32;
        // Offsets stay below segment_size ≤ u32::MAX, so the cast is exact.
        Ok(chunk_ref(index, offset as u32))
    }

    /// Finishes the current segment and starts the next one.
    fn cut(&mut self) -> Result<(), ChunksError> {
        self.close_current()?;
        let name = segment_name(self.segments.len() as u32);
        let path = self.dir.join(&name);
        let f = File::create(&path).map_err(FsError::at("create", &path))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut header = [0u8; SEGMENT_HEADER_SIZE as usize];
        header[..4].copy_from_slice(&MAGIC_CHUNKS.to_be_bytes());
        header[4] = CHUNKS_FORMAT_V1;
        w.write_all(&header).map_err(FsError::at("write", &path))?;
        self.cur = Some(w);
        self.segments.push(SegmentFile {
            name,
            size: SEGMENT_HEADER_SIZE,
        });
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), ChunksError> {
        if let (Some(w), Some(seg)) = (self.cur.take(), self.segments.last()) {
            let path = self.dir.join(&seg.name);
            let f = w
                .into_inner()
                .map_err(|e| FsError::at("flush", &path)(e.into_error()))?;
            f.sync_all().map_err(FsError::at("fsync", &path))?;
        }
        Ok(())
    }

    /// Flushes and fsyncs all segments and the directory; returns the segment files in order.
    pub fn finish(mut self) -> Result<Vec<SegmentFile>, ChunksError> {
        self.close_current()?;
        sync_dir(&self.dir).map_err(FsError::at("fsync", &self.dir))?;
        Ok(std::mem::take(&mut self.segments))
    }
}

// === ChunkReader ===

#[derive(Debug)]
struct Segment {
    name: String,
    file: File,
    len: u64,
}

/// Reads chunks of a block's `chunks/` directory by reference, with positional reads.
#[derive(Debug)]
pub struct ChunkReader {
    dir: PathBuf,
    segments: Vec<Segment>,
}

impl ChunkReader {
    /// Opens all segments of `dir` and checks that they are named `000001..` without gaps and
    /// start with a valid header.
    pub fn open(dir: &Path) -> Result<ChunkReader, ChunksError> {
        let mut numbered = Vec::new();
        for entry in fs::read_dir(dir).map_err(FsError::at("list", dir))? {
            let entry = entry.map_err(FsError::at("list", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.parse::<u64>() {
                Ok(n) if name.bytes().all(|b| b.is_ascii_digit()) => numbered.push((n, name)),
                _ => return Err(ChunksError::UnexpectedFile(name)),
            }
        }
        numbered.sort_unstable();
        let mut segments = Vec::with_capacity(numbered.len());
        for (i, (n, name)) in numbered.into_iter().enumerate() {
            if n != i as u64 + 1 || i >= u32::MAX as usize {
                return Err(ChunksError::UnexpectedFile(name));
            }
            let path = dir.join(&name);
            let file = File::open(&path).map_err(FsError::at("open", &path))?;
            let len = file.metadata().map_err(FsError::at("stat", &path))?.len();
            let mut header = [0u8; SEGMENT_HEADER_SIZE as usize];
            if len < SEGMENT_HEADER_SIZE {
                return Err(ChunksError::BadHeader {
                    name,
                    magic: 0,
                    version: 0,
                });
            }
            file.read_exact_at(&mut header, 0).map_err(FsError::at("read", &path))?;
            let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            if magic != MAGIC_CHUNKS || header[4] != CHUNKS_FORMAT_V1 || header[5..] != [0, 0, 0] {
                return Err(ChunksError::BadHeader {
                    name,
                    magic,
                    version: header[4],
                });
            }
            segments.push(Segment { name, file, len });
        }
        Ok(ChunkReader {
            dir: dir.to_owned(),
            segments,
        })
    }

    /// The segment files (name and size), in order.
    pub fn segments(&self) -> Vec<SegmentFile> {
        self.segments
            .iter()
            .map(|s| SegmentFile {
                name: s.name.clone(),
                size: s.len,
            })
            .collect()
    }

    /// Reads the chunk at `r` into `data` (replacing its contents), checks its CRC and returns
    /// its encoding byte.
    pub fn read_into(&self, r: u64, data: &mut Vec<u8>) -> Result<u8, ChunksError> {
        let (index, offset) = split_chunk_ref(r);
        let seg = self.segments.get(index as usize).ok_or(ChunksError::BadRef(r))?;
        let offset = u64::from(offset);
        if offset < SEGMENT_HEADER_SIZE || offset >= seg.len {
            return Err(ChunksError::BadRef(r));
        }
        let path = || self.dir.join(&seg.name);
        // Length varint (at most 10 bytes) and the encoding byte.
        let mut head = [0u8; 11];
        let head_len = (seg.len - offset).min(head.len() as u64) as usize;
        seg.file
            .read_exact_at(&mut head[..head_len], offset)
            .map_err(|e| FsError::at("read", &path())(e))?;
        let mut d = Decbuf::new(&head[..head_len]);
        let data_len = d.uvarint().map_err(|_| ChunksError::Truncated(r))?;
        let varint_len = (head_len - d.len()) as u64;
        let body_start = offset + varint_len;
        let total = data_len.checked_add(1 + 4).ok_or(ChunksError::Truncated(r))?;
        if body_start.checked_add(total).is_none_or(|end| end > seg.len) {
            return Err(ChunksError::Truncated(r));
        }
        // encoding | data | crc, read in one call.
        data.clear();
        data.resize(total as usize, 0);
        seg.file
            .read_exact_at(data, body_start)
            .map_err(|e| FsError::at("read", &path())(e))?;
        let crc_at = data.len() - 4;
        let stored = u32::from_be_bytes([data[crc_at], data[crc_at + 1], data[crc_at + 2], data[crc_at + 3]]);
        let computed = crc32c(&data[..crc_at]);
        if stored != computed {
            return Err(ChunksError::Checksum {
                chunk_ref: r,
                stored,
                computed,
            });
        }
        let encoding = data[0];
        data.truncate(crc_at);
        data.remove(0);
        Ok(encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunkenc::{ENCODING_XOR, XorChunk};

    fn chunk(n: i64) -> Vec<u8> {
        let mut c = XorChunk::new();
        for t in 0..n {
            c.append(t * 1000, t as f64);
        }
        c.bytes().to_vec()
    }

    #[test]
    fn writes_prometheus_layout_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let chunks_dir = dir.path().join(CHUNKS_DIR);
        let mut w = ChunkWriter::create(&chunks_dir, DEFAULT_SEGMENT_SIZE).unwrap();
        let a = chunk(3);
        let b = chunk(120);
        let ra = w.write_chunk(ENCODING_XOR, &a).unwrap();
        let rb = w.write_chunk(ENCODING_XOR, &b).unwrap();
        let segs = w.finish().unwrap();
        assert_eq!(ra, 8);
        assert_eq!(rb, 8 + 1 + 1 + a.len() as u64 + 4);
        assert_eq!(
            segs,
            vec![SegmentFile {
                name: "000001".into(),
                size: rb + 2 + 1 + b.len() as u64 + 4
            }]
        );

        let raw = fs::read(chunks_dir.join("000001")).unwrap();
        assert_eq!(&raw[..8], &[0x85, 0xBD, 0x40, 0xDD, 1, 0, 0, 0]);
        assert_eq!(raw[8] as usize, a.len());
        assert_eq!(raw[9], ENCODING_XOR);
        assert_eq!(&raw[10..10 + a.len()], &a[..]);
        let crc = crc32c::crc32c(&raw[9..10 + a.len()]);
        assert_eq!(&raw[10 + a.len()..14 + a.len()], &crc.to_be_bytes());

        let r = ChunkReader::open(&chunks_dir).unwrap();
        let mut data = Vec::new();
        assert_eq!(r.read_into(rb, &mut data).unwrap(), ENCODING_XOR);
        assert_eq!(data, b);
        assert_eq!(r.read_into(ra, &mut data).unwrap(), ENCODING_XOR);
        assert_eq!(data, a);
    }

    #[test]
    fn cuts_segments_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let c = chunk(50);
        let per_chunk = 1 + 1 + c.len() as u64 + 4;
        let mut w = ChunkWriter::create(dir.path(), SEGMENT_HEADER_SIZE + 2 * per_chunk).unwrap();
        let refs: Vec<u64> = (0..5).map(|_| w.write_chunk(ENCODING_XOR, &c).unwrap()).collect();
        let segs = w.finish().unwrap();
        assert_eq!(
            segs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["000001", "000002", "000003"]
        );
        assert_eq!(
            refs.iter().map(|r| split_chunk_ref(*r)).collect::<Vec<_>>(),
            [
                (0, 8),
                (0, 8 + per_chunk as u32),
                (1, 8),
                (1, 8 + per_chunk as u32),
                (2, 8)
            ]
        );
        let r = ChunkReader::open(dir.path()).unwrap();
        let mut data = Vec::new();
        for rf in refs {
            r.read_into(rf, &mut data).unwrap();
            assert_eq!(data, c);
        }
        // A chunk bigger than a segment still gets written, alone.
        let mut w = ChunkWriter::create(&dir.path().join("big"), 20).unwrap();
        assert_eq!(w.write_chunk(ENCODING_XOR, &c).unwrap(), 8);
        assert_eq!(w.write_chunk(ENCODING_XOR, &c).unwrap(), chunk_ref(1, 8));
        assert!(matches!(
            ChunkWriter::create(dir.path(), 8),
            Err(ChunksError::InvalidSegmentSize(8))
        ));
        assert!(matches!(
            ChunkWriter::create(dir.path(), 1 << 32),
            Err(ChunksError::InvalidSegmentSize(_))
        ));
    }

    #[test]
    fn hostile_segments_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path(), DEFAULT_SEGMENT_SIZE).unwrap();
        let c = chunk(10);
        let r0 = w.write_chunk(ENCODING_XOR, &c).unwrap();
        w.finish().unwrap();
        let path = dir.path().join("000001");
        let good = fs::read(&path).unwrap();
        let mut data = Vec::new();

        // Every single flipped byte is caught (header or CRC), and nothing panics.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            let res = ChunkReader::open(dir.path()).and_then(|r| r.read_into(r0, &mut data));
            assert!(res.is_err(), "flip at {i} not detected");
        }
        // Every truncation errors.
        for n in 0..good.len() {
            fs::write(&path, &good[..n]).unwrap();
            let res = ChunkReader::open(dir.path()).and_then(|r| r.read_into(r0, &mut data));
            assert!(res.is_err(), "truncation to {n} not detected");
        }
        fs::write(&path, &good).unwrap();
        let r = ChunkReader::open(dir.path()).unwrap();
        for bad_ref in [0, 7, chunk_ref(1, 8), good.len() as u64, u64::MAX] {
            assert!(r.read_into(bad_ref, &mut data).is_err(), "{bad_ref:#x}");
        }
        // Gaps and strangers in the directory.
        fs::write(dir.path().join("000003"), &good).unwrap();
        assert!(matches!(ChunkReader::open(dir.path()), Err(ChunksError::UnexpectedFile(n)) if n == "000003"));
        fs::remove_file(dir.path().join("000003")).unwrap();
        fs::write(dir.path().join("000002.tmp"), b"").unwrap();
        assert!(matches!(
            ChunkReader::open(dir.path()),
            Err(ChunksError::UnexpectedFile(_))
        ));
    }
}
