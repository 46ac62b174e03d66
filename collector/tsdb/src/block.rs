//! Whole blocks: [`write_block`] writes one atomically, [`BlockReader`] opens and verifies one.
//!
//! Layout (Prometheus `tsdb/block.go`, Thanos `pkg/block`): `<ulid>/{chunks/000001…, index,
//! tombstones, meta.json}`. The writer fills `<parent>/<ulid>.tmp-for-creation/`, fsyncs every
//! file, writes `meta.json` last, renames the directory and fsyncs `parent`, so a block directory
//! either is complete or does not exist.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use trawl_model::labels::Labels;
use ulid::Ulid;

use crate::chunkenc::{ChunkError, ENCODING_XOR, XorChunk, XorIter, iter_xor};
use crate::chunks::{CHUNKS_DIR, ChunkReader, ChunkWriter, ChunksError, DEFAULT_SEGMENT_SIZE};
use crate::fs::{FsError, sync_dir};
use crate::index::{ChunkMeta, INDEX_FILENAME, IndexError, IndexReader, IndexSeries, IndexSummary, write_index};
use crate::meta::{BlockMeta, BlockStats, META_FILENAME, MetaError, ThanosFile, ThanosMeta};
use crate::tombstones::{self, TOMBSTONES_FILENAME, TombstonesError};

/// Suffix of the directory a block is built in before its rename (as Prometheus).
pub const TMP_SUFFIX: &str = ".tmp-for-creation";

/// Errors writing, opening or verifying a block.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// File system error.
    #[error(transparent)]
    Io(#[from] FsError),
    /// No series with chunks were given.
    #[error("block would be empty")]
    Empty,
    /// `min_time` is not below `max_time`.
    #[error("invalid block range [{min_time}, {max_time})")]
    InvalidRange {
        /// Start (ms, inclusive).
        min_time: i64,
        /// End (ms, exclusive).
        max_time: i64,
    },
    /// A series given to the writer breaks a rule.
    #[error("series {labels}: {reason}")]
    InvalidSeries {
        /// The series' labels.
        labels: String,
        /// What is wrong.
        reason: String,
    },
    /// `meta.json` error.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Chunk segment error.
    #[error(transparent)]
    Chunks(#[from] ChunksError),
    /// Index error.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Tombstones error.
    #[error(transparent)]
    Tombstones(#[from] TombstonesError),
    /// A chunk's samples could not be decoded.
    #[error("series {labels}: chunk starting at {min_time}")]
    Chunk {
        /// The series' labels.
        labels: String,
        /// Min time of the chunk (ms) according to the index.
        min_time: i64,
        /// Decoding error.
        #[source]
        source: ChunkError,
    },
    /// The block's parts disagree with each other or with `meta.json`.
    #[error("block inconsistent: {0}")]
    Inconsistent(String),
}

/// One XOR chunk of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkData {
    /// Timestamp of the first sample (ms).
    pub min_time: i64,
    /// Timestamp of the last sample (ms, inclusive).
    pub max_time: i64,
    /// The XOR chunk bytes ([`XorChunk::bytes`]).
    pub data: Vec<u8>,
}

impl ChunkData {
    /// Copies a non-empty chunk; `None` if it has no samples.
    pub fn from_xor(c: &XorChunk) -> Option<ChunkData> {
        Some(ChunkData {
            min_time: c.min_time()?,
            max_time: c.max_time()?,
            data: c.bytes().to_vec(),
        })
    }

    /// Sample count from the chunk header (0 if the header is missing).
    pub fn num_samples(&self) -> usize {
        match self.data[..] {
            [a, b, ..] => usize::from(u16::from_be_bytes([a, b])),
            _ => 0,
        }
    }

    /// Decodes the samples.
    pub fn iter(&self) -> XorIter<'_> {
        iter_xor(&self.data)
    }
}

/// A series and its chunks, ordered by time.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSeries {
    /// Labels (sorted, unique names, non-empty values).
    pub labels: Labels,
    /// Chunks in time order, not overlapping.
    pub chunks: Vec<ChunkData>,
}

impl BlockSeries {
    /// Samples in all chunks, from the chunk headers.
    pub fn num_samples(&self) -> u64 {
        self.chunks.iter().map(|c| c.num_samples() as u64).sum()
    }
}

/// Knobs of [`write_block_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Largest chunk segment file in bytes; Prometheus uses [`DEFAULT_SEGMENT_SIZE`] (512 MiB).
    pub segment_size: u64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

// === write ===

/// Writes a block of `series` (any order; series without chunks are left out) covering
/// `[min_time, max_time_exclusive)` ms into `<parent>/<new ulid>/` (see the module docs) and
/// returns its meta. When `thanos` is given, its `files` and `segment_files` are filled in.
/// Errors: no series with chunks ([`BlockError::Empty`]), duplicate series, chunks that are
/// empty, overlapping or outside the range, and I/O; the temporary directory is removed then.
pub fn write_block(
    parent: &Path,
    min_time: i64,
    max_time_exclusive: i64,
    thanos: Option<ThanosMeta>,
    series: Vec<BlockSeries>,
) -> Result<BlockMeta, BlockError> {
    write_block_with(
        parent,
        WriteOptions::default(),
        min_time,
        max_time_exclusive,
        thanos,
        series,
    )
}

/// [`write_block`] with explicit [`WriteOptions`].
pub fn write_block_with(
    parent: &Path,
    opts: WriteOptions,
    min_time: i64,
    max_time_exclusive: i64,
    thanos: Option<ThanosMeta>,
    mut series: Vec<BlockSeries>,
) -> Result<BlockMeta, BlockError> {
    if min_time >= max_time_exclusive {
        return Err(BlockError::InvalidRange {
            min_time,
            max_time: max_time_exclusive,
        });
    }
    series.retain(|s| !s.chunks.is_empty());
    if series.is_empty() {
        return Err(BlockError::Empty);
    }
    series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    let stats = check_series(&series, min_time, max_time_exclusive)?;

    let ulid = Ulid::new();
    let tmp = parent.join(format!("{ulid}{TMP_SUFFIX}"));
    fs::create_dir_all(&tmp).map_err(FsError::at("create", &tmp))?;
    let meta = match write_parts(&tmp, opts, ulid, min_time, max_time_exclusive, stats, thanos, &series) {
        Ok(meta) => meta,
        Err(e) => {
            // Best effort: the error that matters is the one being returned.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let dst = parent.join(ulid.to_string());
    fs::rename(&tmp, &dst).map_err(FsError::at("rename", &tmp))?;
    sync_dir(parent).map_err(FsError::at("fsync", parent))?;
    Ok(meta)
}

/// Checks the writer's rules on sorted series and counts samples, chunks and series.
fn check_series(series: &[BlockSeries], min_time: i64, max_time: i64) -> Result<BlockStats, BlockError> {
    let invalid = |s: &BlockSeries, reason: String| BlockError::InvalidSeries {
        labels: s.labels.to_string(),
        reason,
    };
    let mut stats = BlockStats::default();
    for (i, s) in series.iter().enumerate() {
        if i > 0 && series[i - 1].labels == s.labels {
            return Err(invalid(s, "given twice".into()));
        }
        if s.labels.iter().any(|l| l.name.is_empty()) || s.labels.is_empty() {
            return Err(invalid(s, "empty label set or label name".into()));
        }
        for (j, c) in s.chunks.iter().enumerate() {
            if c.num_samples() == 0 {
                return Err(invalid(s, format!("chunk {j} has no samples")));
            }
            if c.min_time > c.max_time || c.min_time < min_time || c.max_time >= max_time {
                return Err(invalid(
                    s,
                    format!(
                        "chunk {j} [{}, {}] outside [{min_time}, {max_time})",
                        c.min_time, c.max_time
                    ),
                ));
            }
            if j > 0 && c.min_time <= s.chunks[j - 1].max_time {
                return Err(invalid(s, format!("chunk {j} overlaps the previous chunk")));
            }
            stats.num_samples += c.num_samples() as u64;
        }
        stats.num_chunks += s.chunks.len() as u64;
    }
    stats.num_series = series.len() as u64;
    Ok(stats)
}

/// Writes chunks, index, tombstones and finally meta.json into `tmp`, and fsyncs `tmp`.
#[allow(clippy::too_many_arguments)]
fn write_parts(
    tmp: &Path,
    opts: WriteOptions,
    ulid: Ulid,
    min_time: i64,
    max_time: i64,
    stats: BlockStats,
    thanos: Option<ThanosMeta>,
    series: &[BlockSeries],
) -> Result<BlockMeta, BlockError> {
    // Chunks in series order, so references grow with the index order (Prometheus requires it).
    let mut writer = ChunkWriter::create(&tmp.join(CHUNKS_DIR), opts.segment_size)?;
    let mut metas = Vec::with_capacity(stats.num_chunks as usize);
    for s in series {
        for c in &s.chunks {
            let chunk_ref = writer.write_chunk(ENCODING_XOR, &c.data)?;
            metas.push(ChunkMeta {
                min_time: c.min_time,
                max_time: c.max_time,
                chunk_ref,
            });
        }
    }
    let segments = writer.finish()?;

    let mut entries = Vec::with_capacity(series.len());
    let mut rest = &metas[..];
    for s in series {
        let (mine, tail) = rest.split_at(s.chunks.len());
        entries.push(IndexSeries {
            labels: &s.labels,
            chunks: mine,
        });
        rest = tail;
    }
    let index = write_index(&tmp.join(INDEX_FILENAME), &entries)?;
    tombstones::write_empty(tmp).map_err(FsError::at("write", &tmp.join(TOMBSTONES_FILENAME)))?;

    let thanos = thanos.map(|mut t| {
        t.segment_files = segments.iter().map(|s| s.name.clone()).collect();
        t.files = segments
            .iter()
            .map(|s| ThanosFile {
                rel_path: format!("{CHUNKS_DIR}/{}", s.name),
                size_bytes: Some(s.size),
            })
            .chain([
                ThanosFile {
                    rel_path: INDEX_FILENAME.into(),
                    size_bytes: Some(index.size_bytes),
                },
                ThanosFile {
                    rel_path: META_FILENAME.into(),
                    size_bytes: None,
                },
            ])
            .collect();
        t
    });
    let meta = BlockMeta::new_level1(ulid, min_time, max_time, stats, thanos);
    meta.write(tmp)
        .map_err(FsError::at("write", &tmp.join(META_FILENAME)))?;
    Ok(meta)
}

// === read ===

/// An opened block: meta, index and chunk segments.
#[derive(Debug)]
pub struct BlockReader {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
}

/// Totals found by [`BlockReader::verify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Series in the index.
    pub num_series: u64,
    /// Chunks read and decoded.
    pub num_chunks: u64,
    /// Samples decoded.
    pub num_samples: u64,
    /// Stones in the tombstones file (0 when it is absent, as in buckets).
    pub num_tombstones: u64,
    /// Index section counts.
    pub index: IndexSummary,
}

impl BlockReader {
    /// Opens the block directory `dir`: reads `meta.json`, the index (header, TOC and symbols
    /// checked) and the chunk segment headers.
    pub fn open(dir: &Path) -> Result<BlockReader, BlockError> {
        let meta = BlockMeta::read(dir)?;
        let index = IndexReader::open(&dir.join(INDEX_FILENAME))?;
        let chunks = ChunkReader::open(&dir.join(CHUNKS_DIR))?;
        Ok(BlockReader {
            dir: dir.to_owned(),
            meta,
            index,
            chunks,
        })
    }

    /// The block's meta.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The index reader.
    pub fn index(&self) -> &IndexReader {
        &self.index
    }

    /// All series in label order with their chunks (CRC checked, not decoded).
    pub fn series(&self) -> SeriesIter<'_> {
        let (refs, first_err) = match self.index.all_series_refs() {
            Ok(refs) => (refs, None),
            Err(e) => (Vec::new(), Some(e.into())),
        };
        SeriesIter {
            block: self,
            refs: refs.into_iter(),
            first_err,
        }
    }

    fn read_series(&self, series_ref: u32) -> Result<BlockSeries, BlockError> {
        let entry = self.index.series(series_ref)?;
        let mut chunks = Vec::with_capacity(entry.chunks.len());
        for m in entry.chunks {
            let mut data = Vec::new();
            let encoding = self.chunks.read_into(m.chunk_ref, &mut data)?;
            if encoding != ENCODING_XOR {
                return Err(BlockError::Inconsistent(format!(
                    "series {}: chunk {:#x} has encoding {encoding}, only XOR (1) is supported",
                    entry.labels, m.chunk_ref
                )));
            }
            chunks.push(ChunkData {
                min_time: m.min_time,
                max_time: m.max_time,
                data,
            });
        }
        Ok(BlockSeries {
            labels: entry.labels,
            chunks,
        })
    }

    /// Checks the whole block: index structure and CRCs, every chunk's CRC and samples (strictly
    /// increasing, first/last matching the index, inside the block range), totals against
    /// `meta.json` stats, Thanos file sizes, and the tombstones file when present.
    pub fn verify(&self) -> Result<VerifyReport, BlockError> {
        let index = self.index.verify()?;
        let mut report = VerifyReport {
            index,
            ..VerifyReport::default()
        };
        for s in self.series() {
            let s = s?;
            report.num_series += 1;
            for c in &s.chunks {
                report.num_chunks += 1;
                report.num_samples += self.verify_chunk(&s.labels, c)?;
            }
        }
        let stats = self.meta.stats;
        let found = BlockStats {
            num_samples: report.num_samples,
            num_series: report.num_series,
            num_chunks: report.num_chunks,
        };
        if stats != found {
            return Err(BlockError::Inconsistent(format!(
                "meta.json stats {stats:?}, block has {found:?}"
            )));
        }
        if let Some(thanos) = &self.meta.thanos {
            for f in thanos.files.iter().filter(|f| f.size_bytes.is_some()) {
                let path = self.dir.join(&f.rel_path);
                let size = fs::metadata(&path).map_err(FsError::at("stat", &path))?.len();
                if Some(size) != f.size_bytes {
                    return Err(BlockError::Inconsistent(format!(
                        "{} is {size} bytes, meta.json says {:?}",
                        f.rel_path, f.size_bytes
                    )));
                }
            }
        }
        let tomb = self.dir.join(TOMBSTONES_FILENAME);
        match fs::read(&tomb) {
            Ok(b) => report.num_tombstones = tombstones::parse(&b)? as u64,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::at("read", &tomb)(e).into()),
        }
        Ok(report)
    }

    /// Decodes one chunk and checks its samples; returns the sample count.
    fn verify_chunk(&self, labels: &Labels, c: &ChunkData) -> Result<u64, BlockError> {
        let (mut n, mut first, mut last) = (0u64, None, None);
        for sample in c.iter() {
            let (t, _) = sample.map_err(|source| BlockError::Chunk {
                labels: labels.to_string(),
                min_time: c.min_time,
                source,
            })?;
            if last.is_some_and(|l| t <= l) {
                return Err(BlockError::Inconsistent(format!(
                    "series {labels}: timestamps not increasing at {t}"
                )));
            }
            first.get_or_insert(t);
            last = Some(t);
            n += 1;
        }
        if first != Some(c.min_time) || last != Some(c.max_time) {
            return Err(BlockError::Inconsistent(format!(
                "series {labels}: chunk samples span {first:?}..{last:?}, index says {}..{}",
                c.min_time, c.max_time
            )));
        }
        if c.min_time < self.meta.min_time || c.max_time >= self.meta.max_time {
            return Err(BlockError::Inconsistent(format!(
                "series {labels}: chunk outside the block's time range"
            )));
        }
        Ok(n)
    }
}

/// Iterator over a block's series; see [`BlockReader::series`].
#[derive(Debug)]
pub struct SeriesIter<'a> {
    block: &'a BlockReader,
    refs: std::vec::IntoIter<u32>,
    first_err: Option<BlockError>,
}

impl Iterator for SeriesIter<'_> {
    type Item = Result<BlockSeries, BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.first_err.take() {
            return Some(Err(e));
        }
        let r = self.refs.next()?;
        Some(self.block.read_series(r))
    }
}

#[cfg(test)]
mod tests;
