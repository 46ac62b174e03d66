//! Index v2 writer: one pass over series already sorted by labels, in the section order of
//! Prometheus 2.42 (`index.Writer`): symbols, series, label indices, postings, label offset
//! table, postings offset table, TOC.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use trawl_model::labels::Labels;

use crate::fs::FsError;

use super::encoding::{crc32c, put_uvarint, put_uvarint_str, put_varint, uvarint_len};
use super::{ChunkMeta, FORMAT_V2, IndexError, MAGIC_INDEX, SERIES_ALIGN, Toc};

/// One series handed to [`write_index`].
#[derive(Debug, Clone, Copy)]
pub struct IndexSeries<'a> {
    /// Its labels.
    pub labels: &'a Labels,
    /// Its chunks, ordered by time, not overlapping.
    pub chunks: &'a [ChunkMeta],
}

/// What [`write_index`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// File size in bytes.
    pub size_bytes: u64,
    /// Number of series.
    pub num_series: u64,
    /// Number of distinct strings in the symbol table.
    pub num_symbols: u64,
    /// Number of postings lists, including the all-series list.
    pub num_postings: u64,
    /// Sections' offsets.
    pub toc: Toc,
}

/// Writes an index v2 file at `path` (created, fsync'd). `series` must be sorted strictly by
/// labels (as `Labels`' `Ord`, which is Prometheus `labels.Compare`) with chunk references
/// non-decreasing in that order. Errors: ordering violations, empty label names or values, a
/// file over 64 GiB, I/O.
pub fn write_index(path: &Path, series: &[IndexSeries<'_>]) -> Result<IndexStats, IndexError> {
    check_input(series)?;
    let symbols = collect_symbols(series)?;
    let lookup: HashMap<&str, u32> = symbols.iter().enumerate().map(|(i, s)| (*s, i as u32)).collect();

    let file = File::create(path).map_err(FsError::at("create", path))?;
    let mut out = Out {
        w: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        path: path.to_owned(),
    };
    let mut toc = Toc::default();
    let mut buf = Vec::with_capacity(1 << 16);

    // Header.
    buf.extend_from_slice(&MAGIC_INDEX.to_be_bytes());
    buf.push(FORMAT_V2);
    out.write(&buf)?;

    toc.symbols = out.pos;
    write_symbols(&mut out, &symbols, &mut buf)?;

    // Series, 16-byte aligned; remember (name, value, series ref) for the postings.
    toc.series = out.pos;
    let mut all_refs = Vec::with_capacity(series.len());
    let mut pairs: Vec<(u32, u32, u32)> = Vec::with_capacity(series.len() * 8);
    let mut head = Vec::with_capacity(10);
    for s in series {
        out.pad(SERIES_ALIGN)?;
        let series_ref = u32::try_from(out.pos / SERIES_ALIGN).map_err(|_| IndexError::TooLarge("series section"))?;
        all_refs.push(series_ref);
        buf.clear();
        put_uvarint(&mut buf, s.labels.len() as u64);
        for l in s.labels {
            let (name, value) = (lookup[l.name.as_str()], lookup[l.value.as_str()]);
            put_uvarint(&mut buf, name.into());
            put_uvarint(&mut buf, value.into());
            pairs.push((name, value, series_ref));
        }
        put_chunk_metas(&mut buf, s.chunks);
        head.clear();
        put_uvarint(&mut head, buf.len() as u64);
        out.write(&head)?;
        out.write_with_crc(&buf)?;
    }
    // Symbol ids follow string order, so this sorts by name, then value, then series.
    pairs.sort_unstable();

    toc.label_indices = out.pos;
    let label_offsets = write_label_indices(&mut out, &pairs, &mut buf)?;

    toc.postings = out.pos;
    let postings_offsets = write_postings(&mut out, &all_refs, &pairs, &mut buf)?;

    toc.label_indices_table = out.pos;
    buf.clear();
    buf.extend_from_slice(&(label_offsets.len() as u32).to_be_bytes());
    for (name, offset) in &label_offsets {
        put_uvarint(&mut buf, 1);
        put_uvarint_str(&mut buf, symbols[*name as usize]);
        put_uvarint(&mut buf, *offset);
    }
    out.write_table(&buf)?;

    toc.postings_table = out.pos;
    buf.clear();
    buf.extend_from_slice(
        &u32::try_from(postings_offsets.len())
            .map_err(|_| IndexError::TooLarge("postings table"))?
            .to_be_bytes(),
    );
    for (i, (name, value, offset)) in postings_offsets.iter().enumerate() {
        put_uvarint(&mut buf, 2);
        // The first list is the all-series list keyed ("", "").
        let (name, value) = if i == 0 {
            ("", "")
        } else {
            (symbols[*name as usize], symbols[*value as usize])
        };
        put_uvarint_str(&mut buf, name);
        put_uvarint_str(&mut buf, value);
        put_uvarint(&mut buf, *offset);
    }
    out.write_table(&buf)?;

    buf.clear();
    for off in [
        toc.symbols,
        toc.series,
        toc.label_indices,
        toc.label_indices_table,
        toc.postings,
        toc.postings_table,
    ] {
        buf.extend_from_slice(&off.to_be_bytes());
    }
    out.write_with_crc(&buf)?;
    let size_bytes = out.finish()?;

    Ok(IndexStats {
        size_bytes,
        num_series: series.len() as u64,
        num_symbols: symbols.len() as u64,
        num_postings: postings_offsets.len() as u64,
        toc,
    })
}

/// Checks the writer's preconditions before touching the file.
fn check_input(series: &[IndexSeries<'_>]) -> Result<(), IndexError> {
    let mut last_ref = 0u64;
    for (index, s) in series.iter().enumerate() {
        if index > 0 && series[index - 1].labels >= s.labels {
            return Err(IndexError::SeriesOutOfOrder { index });
        }
        if s.labels.iter().any(|l| l.name.is_empty() || l.value.is_empty()) {
            return Err(IndexError::EmptyLabel { index: index as u64 });
        }
        for (chunk, c) in s.chunks.iter().enumerate() {
            if c.max_time < c.min_time || (chunk > 0 && c.min_time <= s.chunks[chunk - 1].max_time) {
                return Err(IndexError::ChunksOutOfOrder { index, chunk });
            }
            if c.chunk_ref < last_ref {
                return Err(IndexError::ChunkRefsOutOfOrder { index });
            }
            last_ref = c.chunk_ref;
        }
    }
    Ok(())
}

/// All label names and values, sorted and deduplicated.
fn collect_symbols<'a>(series: &[IndexSeries<'a>]) -> Result<Vec<&'a str>, IndexError> {
    let mut symbols: Vec<&'a str> = Vec::with_capacity(series.len() * 4);
    for s in series {
        for l in s.labels {
            symbols.push(&l.name);
            symbols.push(&l.value);
        }
    }
    symbols.sort_unstable();
    symbols.dedup();
    u32::try_from(symbols.len()).map_err(|_| IndexError::TooLarge("symbol table"))?;
    Ok(symbols)
}

fn write_symbols(out: &mut Out, symbols: &[&str], buf: &mut Vec<u8>) -> Result<(), IndexError> {
    let body: usize = 4 + symbols
        .iter()
        .map(|s| uvarint_len(s.len() as u64) + s.len())
        .sum::<usize>();
    let len = u32::try_from(body).map_err(|_| IndexError::TooLarge("symbol table"))?;
    out.write(&len.to_be_bytes())?;
    // Streamed in pieces with a running CRC: the table can be large.
    buf.clear();
    buf.extend_from_slice(&(symbols.len() as u32).to_be_bytes());
    let mut crc = 0u32;
    for s in symbols {
        put_uvarint_str(buf, s);
        if buf.len() >= 1 << 16 {
            crc = crc32c::crc32c_append(crc, buf);
            out.write(buf)?;
            buf.clear();
        }
    }
    crc = crc32c::crc32c_append(crc, buf);
    out.write(buf)?;
    out.write(&crc.to_be_bytes())
}

/// Chunk metas: the first as absolute values, the rest as deltas (Prometheus `AddSeries`).
fn put_chunk_metas(buf: &mut Vec<u8>, chunks: &[ChunkMeta]) {
    put_uvarint(buf, chunks.len() as u64);
    let Some(first) = chunks.first() else { return };
    put_varint(buf, first.min_time);
    put_uvarint(buf, first.max_time.wrapping_sub(first.min_time) as u64);
    put_uvarint(buf, first.chunk_ref);
    let (mut t0, mut ref0) = (first.max_time, first.chunk_ref as i64);
    for c in &chunks[1..] {
        put_uvarint(buf, c.min_time.wrapping_sub(t0) as u64);
        put_uvarint(buf, c.max_time.wrapping_sub(c.min_time) as u64);
        put_varint(buf, (c.chunk_ref as i64).wrapping_sub(ref0));
        t0 = c.max_time;
        ref0 = c.chunk_ref as i64;
    }
}

/// One label index per label name listing its values; returns (name symbol, offset) entries.
fn write_label_indices(
    out: &mut Out,
    pairs: &[(u32, u32, u32)],
    buf: &mut Vec<u8>,
) -> Result<Vec<(u32, u64)>, IndexError> {
    let mut offsets = Vec::new();
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        out.pad(4)?;
        offsets.push((group[0].0, out.pos));
        buf.clear();
        buf.extend_from_slice(&1u32.to_be_bytes());
        buf.extend_from_slice(&[0; 4]);
        let mut n = 0u32;
        for values in group.chunk_by(|a, b| a.1 == b.1) {
            buf.extend_from_slice(&values[0].1.to_be_bytes());
            n += 1;
        }
        buf[4..8].copy_from_slice(&n.to_be_bytes());
        out.write_table(buf)?;
    }
    Ok(offsets)
}

/// Postings lists, 4-byte aligned: all series first, then one per (name, value); returns
/// (name symbol, value symbol, offset) in table order (the first entry's symbols are unused).
fn write_postings(
    out: &mut Out,
    all_refs: &[u32],
    pairs: &[(u32, u32, u32)],
    buf: &mut Vec<u8>,
) -> Result<Vec<(u32, u32, u64)>, IndexError> {
    let mut offsets = Vec::new();
    let mut put_list = |out: &mut Out, key: (u32, u32), refs: &mut dyn Iterator<Item = u32>| {
        out.pad(4)?;
        offsets.push((key.0, key.1, out.pos));
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let mut n = 0u32;
        for r in refs {
            buf.extend_from_slice(&r.to_be_bytes());
            n += 1;
        }
        buf[..4].copy_from_slice(&n.to_be_bytes());
        out.write_table(buf)
    };
    put_list(out, (0, 0), &mut all_refs.iter().copied())?;
    for group in pairs.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        put_list(out, (group[0].0, group[0].1), &mut group.iter().map(|p| p.2))?;
    }
    Ok(offsets)
}

/// Buffered file output that tracks its position.
struct Out {
    w: BufWriter<File>,
    pos: u64,
    path: PathBuf,
}

impl Out {
    fn write(&mut self, b: &[u8]) -> Result<(), IndexError> {
        self.w.write_all(b).map_err(FsError::at("write", &self.path))?;
        self.pos += b.len() as u64;
        // Series references are 4 bytes of offset / 16.
        if self.pos > 16 * u64::from(u32::MAX) {
            return Err(IndexError::TooLarge("over 64 GiB"));
        }
        Ok(())
    }

    /// Zero bytes up to the next multiple of `align`.
    fn pad(&mut self, align: u64) -> Result<(), IndexError> {
        let rem = self.pos % align;
        if rem == 0 {
            return Ok(());
        }
        self.write(&[0u8; 16][..(align - rem) as usize])
    }

    /// `body` then CRC32C(body).
    fn write_with_crc(&mut self, body: &[u8]) -> Result<(), IndexError> {
        self.write(body)?;
        self.write(&crc32c(body).to_be_bytes())
    }

    /// `len <4b> | body | CRC32C(body)`.
    fn write_table(&mut self, body: &[u8]) -> Result<(), IndexError> {
        let len = u32::try_from(body.len()).map_err(|_| IndexError::TooLarge("section over 4 GiB"))?;
        self.write(&len.to_be_bytes())?;
        self.write_with_crc(body)
    }

    fn finish(self) -> Result<u64, IndexError> {
        let path = self.path;
        let f = self
            .w
            .into_inner()
            .map_err(|e| FsError::at("flush", &path)(e.into_error()))?;
        f.sync_all().map_err(FsError::at("fsync", &path))?;
        Ok(self.pos)
    }
}
