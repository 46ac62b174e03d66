//! Index v2 reader over the whole file in memory: header, TOC and symbol checks on open; series
//! and postings lookups; a full structural [`IndexReader::verify`].

use std::fs;
use std::path::Path;

use trawl_model::labels::Labels;

use crate::fs::FsError;

use super::encoding::{Decbuf, DecodeError, crc32c};
use super::{ChunkMeta, FORMAT_V2, HEADER_LEN, IndexError, MAGIC_INDEX, SERIES_ALIGN, TOC_LEN, Toc};

/// A decoded series entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesEntry {
    /// Its labels.
    pub labels: Labels,
    /// Its chunks' time ranges and references.
    pub chunks: Vec<ChunkMeta>,
}

/// One entry of the postings offset table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostingsEntry<'a> {
    /// Label name (`""` for the all-series list).
    pub name: &'a str,
    /// Label value (`""` for the all-series list).
    pub value: &'a str,
    /// Byte offset of the postings list.
    pub offset: u64,
}

/// Counts found by [`IndexReader::verify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexSummary {
    /// Series in the index.
    pub num_series: u64,
    /// Chunks referenced by all series.
    pub num_chunks: u64,
    /// Symbols in the symbol table.
    pub num_symbols: u64,
    /// Postings lists, including the all-series one.
    pub num_postings: u64,
    /// Label names with a label index (0 for indexes written without label indices).
    pub num_label_indices: u64,
}

/// Reads an index file held in memory.
#[derive(Debug)]
pub struct IndexReader {
    data: Vec<u8>,
    toc: Toc,
    /// Byte offset of each symbol's length prefix.
    symbols: Vec<usize>,
}

fn decode_err(section: &'static str, offset: u64) -> impl Fn(DecodeError) -> IndexError {
    move |source| IndexError::Decode {
        section,
        offset,
        source,
    }
}

impl IndexReader {
    /// Reads `path` and checks header, TOC and symbol table (CRC, UTF-8, strictly sorted).
    pub fn open(path: &Path) -> Result<IndexReader, IndexError> {
        let data = fs::read(path).map_err(FsError::at("read", path))?;
        Self::from_bytes(data)
    }

    /// As [`IndexReader::open`] on bytes already in memory.
    pub fn from_bytes(data: Vec<u8>) -> Result<IndexReader, IndexError> {
        if data.len() < HEADER_LEN + TOC_LEN {
            return Err(IndexError::BadHeader { magic: 0, version: 0 });
        }
        let magic = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        if magic != MAGIC_INDEX || data[4] != FORMAT_V2 {
            return Err(IndexError::BadHeader {
                magic,
                version: data[4],
            });
        }
        let toc_at = data.len() - TOC_LEN;
        let (toc_body, toc_crc) = data[toc_at..].split_at(TOC_LEN - 4);
        if crc32c(toc_body).to_be_bytes() != toc_crc {
            return Err(IndexError::Checksum {
                section: "TOC",
                offset: toc_at as u64,
            });
        }
        let mut d = Decbuf::new(toc_body);
        let mut next = || d.be64().map_err(decode_err("TOC", toc_at as u64));
        let toc = Toc {
            symbols: next()?,
            series: next()?,
            label_indices: next()?,
            label_indices_table: next()?,
            postings: next()?,
            postings_table: next()?,
        };
        let ordered = [
            toc.symbols,
            toc.series,
            toc.label_indices,
            toc.postings,
            toc.label_indices_table,
            toc.postings_table,
            toc_at as u64,
        ];
        if toc.symbols != HEADER_LEN as u64 || ordered.windows(2).any(|w| w[0] > w[1]) {
            return Err(IndexError::Corrupt(format!("TOC offsets out of order: {toc:?}")));
        }
        let mut r = IndexReader {
            data,
            toc,
            symbols: Vec::new(),
        };
        r.symbols = r.read_symbol_offsets()?;
        Ok(r)
    }

    /// The table of contents.
    pub fn toc(&self) -> Toc {
        self.toc
    }

    /// Number of symbols.
    pub fn num_symbols(&self) -> usize {
        self.symbols.len()
    }

    /// `len <4b> | body | CRC32C(body)` at `offset`; returns the checked body.
    fn table(&self, offset: u64, section: &'static str) -> Result<&[u8], IndexError> {
        let start = usize::try_from(offset)
            .ok()
            .filter(|o| *o <= self.data.len())
            .ok_or(IndexError::Decode {
                section,
                offset,
                source: DecodeError::Eof,
            })?;
        let mut d = Decbuf::new(&self.data[start..]);
        let len = d.be32().map_err(decode_err(section, offset))? as usize;
        let body = d.bytes(len).map_err(decode_err(section, offset))?;
        let crc = d.be32().map_err(decode_err(section, offset))?;
        if crc32c(body) != crc {
            return Err(IndexError::Checksum { section, offset });
        }
        Ok(body)
    }

    fn read_symbol_offsets(&self) -> Result<Vec<usize>, IndexError> {
        let at = self.toc.symbols;
        let body = self.table(at, "symbols")?;
        let mut d = Decbuf::new(body);
        let count = d.be32().map_err(decode_err("symbols", at))? as usize;
        let base = at as usize + 4 + body.len();
        let mut offsets = Vec::with_capacity(count.min(body.len()));
        let mut last: Option<&str> = None;
        for _ in 0..count {
            offsets.push(base - d.len());
            let raw = d.uvarint_bytes().map_err(decode_err("symbols", at))?;
            let s = std::str::from_utf8(raw)
                .map_err(|_| IndexError::Corrupt(format!("symbol {} is not UTF-8", offsets.len() - 1)))?;
            if last.is_some_and(|l| l >= s) {
                return Err(IndexError::Corrupt(format!(
                    "symbols not strictly sorted at {}",
                    offsets.len() - 1
                )));
            }
            last = Some(s);
        }
        Ok(offsets)
    }

    /// The symbol with id `i`.
    pub fn symbol(&self, i: u32) -> Result<&str, IndexError> {
        let at = *self
            .symbols
            .get(i as usize)
            .ok_or_else(|| IndexError::Corrupt(format!("unknown symbol {i}")))?;
        let raw = Decbuf::new(&self.data[at..])
            .uvarint_bytes()
            .map_err(decode_err("symbols", at as u64))?;
        // Checked at open.
        std::str::from_utf8(raw).map_err(|_| IndexError::Corrupt(format!("symbol {i} is not UTF-8")))
    }

    /// The postings offset table (CRC checked), in file order.
    pub fn postings_table(&self) -> Result<Vec<PostingsEntry<'_>>, IndexError> {
        let at = self.toc.postings_table;
        let mut d = Decbuf::new(self.table(at, "postings offset table")?);
        let err = decode_err("postings offset table", at);
        let count = d.be32().map_err(&err)?;
        let mut entries = Vec::with_capacity((count as usize).min(d.len()));
        for _ in 0..count {
            if d.uvarint().map_err(&err)? != 2 {
                return Err(IndexError::Corrupt("postings offset entry without 2 keys".into()));
            }
            let name = utf8(d.uvarint_bytes().map_err(&err)?)?;
            let value = utf8(d.uvarint_bytes().map_err(&err)?)?;
            entries.push(PostingsEntry {
                name,
                value,
                offset: d.uvarint().map_err(&err)?,
            });
        }
        Ok(entries)
    }

    /// The series references of the postings list at `offset` (CRC checked).
    pub fn postings(&self, offset: u64) -> Result<Vec<u32>, IndexError> {
        let mut d = Decbuf::new(self.table(offset, "postings")?);
        let n = d.be32().map_err(decode_err("postings", offset))? as usize;
        if d.len() != n * 4 {
            return Err(IndexError::Corrupt(format!(
                "postings at {offset}: {n} entries in {} bytes",
                d.len()
            )));
        }
        (0..n)
            .map(|_| d.be32().map_err(decode_err("postings", offset)))
            .collect()
    }

    /// References of all series in label order (the `("", "")` postings list).
    pub fn all_series_refs(&self) -> Result<Vec<u32>, IndexError> {
        match self.postings_table()?.first() {
            Some(e) if e.name.is_empty() && e.value.is_empty() => self.postings(e.offset),
            _ => Err(IndexError::Corrupt(
                "postings offset table does not start with the all-series list".into(),
            )),
        }
    }

    /// Decodes the series `series_ref` (CRC checked).
    pub fn series(&self, series_ref: u32) -> Result<SeriesEntry, IndexError> {
        let mut pairs = Vec::new();
        let mut chunks = Vec::new();
        self.series_raw(series_ref, &mut pairs, &mut chunks)?;
        let mut resolved = Vec::with_capacity(pairs.len());
        for (n, v) in pairs {
            resolved.push((self.symbol(n)?, self.symbol(v)?));
        }
        check_label_names(series_ref, &resolved)?;
        Ok(SeriesEntry {
            labels: Labels::from_pairs(resolved),
            chunks,
        })
    }

    /// Decodes a series into symbol id pairs and chunk metas.
    fn series_raw(
        &self,
        series_ref: u32,
        pairs: &mut Vec<(u32, u32)>,
        chunks: &mut Vec<ChunkMeta>,
    ) -> Result<(), IndexError> {
        let at = u64::from(series_ref) * SERIES_ALIGN;
        if at < self.toc.series || at >= self.toc.label_indices {
            return Err(IndexError::Corrupt(format!(
                "series reference {series_ref} outside the series section"
            )));
        }
        let end = self.toc.label_indices as usize;
        let err = decode_err("series", at);
        let mut d = Decbuf::new(&self.data[at as usize..end]);
        let len = usize::try_from(d.uvarint().map_err(&err)?).map_err(|_| err(DecodeError::Eof))?;
        let body = d.bytes(len).map_err(&err)?;
        let crc = d.be32().map_err(&err)?;
        if crc32c(body) != crc {
            return Err(IndexError::Checksum {
                section: "series",
                offset: at,
            });
        }
        let mut d = Decbuf::new(body);
        pairs.clear();
        chunks.clear();
        let n = d.uvarint().map_err(&err)?;
        for _ in 0..n {
            pairs.push((d.uvarint32().map_err(&err)?, d.uvarint32().map_err(&err)?));
        }
        let n = d.uvarint().map_err(&err)?;
        if n > 0 {
            let min_time = d.varint().map_err(&err)?;
            let max_time = min_time.wrapping_add(d.uvarint().map_err(&err)? as i64);
            let chunk_ref = d.uvarint().map_err(&err)?;
            chunks.push(ChunkMeta {
                min_time,
                max_time,
                chunk_ref,
            });
            for _ in 1..n {
                let prev = chunks[chunks.len() - 1];
                let min_time = prev.max_time.wrapping_add(d.uvarint().map_err(&err)? as i64);
                let max_time = min_time.wrapping_add(d.uvarint().map_err(&err)? as i64);
                let chunk_ref = (prev.chunk_ref as i64).wrapping_add(d.varint().map_err(&err)?) as u64;
                chunks.push(ChunkMeta {
                    min_time,
                    max_time,
                    chunk_ref,
                });
            }
        }
        if !d.is_empty() {
            return Err(IndexError::Corrupt(format!(
                "series {series_ref}: {} trailing bytes",
                d.len()
            )));
        }
        Ok(())
    }

    /// Checks every section: CRCs, series order and alignment, that every series is listed in
    /// the all-series postings, that postings lists are strictly increasing and equal the
    /// series' labels exactly, and that label indices (when present) list exactly the values
    /// of each name.
    pub fn verify(&self) -> Result<IndexSummary, IndexError> {
        let table = self.postings_table()?;
        for (i, w) in table.windows(2).enumerate() {
            if (w[0].name, w[0].value) >= (w[1].name, w[1].value) {
                return Err(IndexError::Corrupt(format!(
                    "postings offset table unsorted at entry {}",
                    i + 1
                )));
            }
        }
        let all = self.all_series_refs()?;
        check_postings_sorted("", "", &all)?;
        let scanned = self.scan_series_offsets()?;
        if all != scanned {
            return Err(IndexError::Corrupt(format!(
                "all-series postings list ({} refs) differs from the series section ({} entries)",
                all.len(),
                scanned.len()
            )));
        }

        // Decode every series once; keep (name, value, ref) triples to rebuild the postings.
        let mut triples: Vec<(u32, u32, u32)> = Vec::new();
        let (mut pairs, mut prev_pairs, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
        let mut num_chunks = 0u64;
        let mut last_chunk_ref = 0u64;
        for (i, &r) in all.iter().enumerate() {
            self.series_raw(r, &mut pairs, &mut chunks)?;
            let mut resolved = Vec::with_capacity(pairs.len());
            for &(n, v) in &pairs {
                resolved.push((self.symbol(n)?, self.symbol(v)?));
            }
            check_label_names(r, &resolved)?;
            // Symbol ids follow string order, so comparing ids compares label sets.
            if i > 0 && prev_pairs >= pairs {
                return Err(IndexError::Corrupt(format!(
                    "series {r} is not after the previous series in label order"
                )));
            }
            for (j, c) in chunks.iter().enumerate() {
                if c.max_time < c.min_time || (j > 0 && c.min_time <= chunks[j - 1].max_time) {
                    return Err(IndexError::Corrupt(format!("series {r}: chunk {j} out of order")));
                }
                if c.chunk_ref < last_chunk_ref {
                    return Err(IndexError::Corrupt(format!(
                        "series {r}: chunk references go backwards"
                    )));
                }
                last_chunk_ref = c.chunk_ref;
            }
            num_chunks += chunks.len() as u64;
            triples.extend(pairs.iter().map(|&(n, v)| (n, v, r)));
            std::mem::swap(&mut prev_pairs, &mut pairs);
        }
        triples.sort_unstable();

        let groups: Vec<&[(u32, u32, u32)]> = triples.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).collect();
        if groups.len() + 1 != table.len() {
            return Err(IndexError::Corrupt(format!(
                "{} postings lists for {} label pairs",
                table.len() - 1,
                groups.len()
            )));
        }
        for (e, g) in table[1..].iter().zip(&groups) {
            if e.offset < self.toc.postings || e.offset >= self.toc.label_indices_table.max(self.toc.postings_table) {
                return Err(IndexError::Corrupt(format!(
                    "postings list {}={:?} outside the postings section",
                    e.name, e.value
                )));
            }
            if self.symbol(g[0].0)? != e.name || self.symbol(g[0].1)? != e.value {
                return Err(IndexError::Corrupt(format!(
                    "postings list {}={:?} has no series with that label",
                    e.name, e.value
                )));
            }
            let refs = self.postings(e.offset)?;
            check_postings_sorted(e.name, e.value, &refs)?;
            if !refs.iter().copied().eq(g.iter().map(|t| t.2)) {
                return Err(IndexError::Corrupt(format!(
                    "postings list {}={:?} differs from the series' labels",
                    e.name, e.value
                )));
            }
        }
        let num_label_indices = self.verify_label_indices(&triples)?;
        // Every byte between the tables must belong to one (or be alignment padding).
        let listed: Vec<u64> = table.iter().map(|e| e.offset).collect();
        if self.scan_tables(
            self.toc.postings,
            self.toc.label_indices_table.min(self.toc.postings_table),
            "postings",
        )? != listed
        {
            return Err(IndexError::Corrupt(
                "postings section holds lists the offset table does not list".into(),
            ));
        }
        Ok(IndexSummary {
            num_series: all.len() as u64,
            num_chunks,
            num_symbols: self.symbols.len() as u64,
            num_postings: table.len() as u64,
            num_label_indices,
        })
    }

    /// Walks the series section like Prometheus does (skipping zero padding) and returns the
    /// reference of every entry.
    fn scan_series_offsets(&self) -> Result<Vec<u32>, IndexError> {
        let (start, end) = (self.toc.series as usize, self.toc.label_indices as usize);
        let mut d = Decbuf::new(&self.data[start..end]);
        let mut refs = Vec::new();
        loop {
            let zeros = d.rest().iter().take_while(|b| **b == 0).count();
            d.skip(zeros).map_err(decode_err("series", start as u64))?;
            if d.is_empty() {
                return Ok(refs);
            }
            let at = (end - d.len()) as u64;
            if !at.is_multiple_of(SERIES_ALIGN) {
                return Err(IndexError::Corrupt(format!(
                    "series at offset {at} not 16-byte aligned"
                )));
            }
            refs.push(u32::try_from(at / SERIES_ALIGN).map_err(|_| IndexError::TooLarge("series section"))?);
            let len = d.uvarint().map_err(decode_err("series", at))?;
            let skip = usize::try_from(len)
                .ok()
                .and_then(|l| l.checked_add(4))
                .ok_or(IndexError::Decode {
                    section: "series",
                    offset: at,
                    source: DecodeError::Eof,
                })?;
            d.skip(skip).map_err(decode_err("series", at))?;
        }
    }

    /// Walks `len <4b> | body | CRC` entries at 4-byte alignment from `start` to `end`, requiring
    /// zero padding between them; returns each entry's offset.
    fn scan_tables(&self, start: u64, end: u64, section: &'static str) -> Result<Vec<u64>, IndexError> {
        let mut offsets = Vec::new();
        let mut pos = start;
        while pos < end {
            let aligned = pos.next_multiple_of(4);
            let padding = self.data.get(pos as usize..aligned.min(end) as usize).unwrap_or(&[]);
            if padding.iter().any(|b| *b != 0) {
                return Err(IndexError::Corrupt(format!("non-zero padding in {section} at {pos}")));
            }
            if aligned >= end {
                break;
            }
            let body = self.table(aligned, section)?;
            offsets.push(aligned);
            pos = aligned + 4 + body.len() as u64 + 4;
        }
        if pos > end {
            return Err(IndexError::Corrupt(format!(
                "{section} entry runs past the end of its section"
            )));
        }
        Ok(offsets)
    }

    /// Checks the label offset table and label indices against the sorted triples; returns how
    /// many there are. Indexes written without label indices point the label offset table at
    /// the postings offset table; they have none.
    fn verify_label_indices(&self, triples: &[(u32, u32, u32)]) -> Result<u64, IndexError> {
        if self.toc.label_indices_table == self.toc.postings_table {
            return Ok(0);
        }
        let at = self.toc.label_indices_table;
        let err = decode_err("label offset table", at);
        let mut d = Decbuf::new(self.table(at, "label offset table")?);
        let count = d.be32().map_err(&err)? as usize;
        let names: Vec<&[(u32, u32, u32)]> = triples.chunk_by(|a, b| a.0 == b.0).collect();
        let mut listed = Vec::with_capacity(names.len());
        if count != names.len() {
            return Err(IndexError::Corrupt(format!(
                "{count} label indices for {} label names",
                names.len()
            )));
        }
        for group in names {
            if d.uvarint().map_err(&err)? != 1 {
                return Err(IndexError::Corrupt("label index entry with more than one name".into()));
            }
            let name = utf8(d.uvarint_bytes().map_err(&err)?)?;
            let offset = d.uvarint().map_err(&err)?;
            if name != self.symbol(group[0].0)? || offset < self.toc.label_indices || offset >= self.toc.postings {
                return Err(IndexError::Corrupt(format!(
                    "label offset table entry {name:?} does not match the series"
                )));
            }
            listed.push(offset);
            let mut li = Decbuf::new(self.table(offset, "label index")?);
            let lerr = decode_err("label index", offset);
            let (n_names, n_values) = (li.be32().map_err(&lerr)?, li.be32().map_err(&lerr)? as usize);
            let values: Vec<u32> = group.chunk_by(|a, b| a.1 == b.1).map(|g| g[0].1).collect();
            if n_names != 1 || n_values != values.len() || li.len() != 4 * n_values {
                return Err(IndexError::Corrupt(format!(
                    "label index of {name:?} has the wrong shape"
                )));
            }
            for v in values {
                if li.be32().map_err(&lerr)? != v {
                    return Err(IndexError::Corrupt(format!(
                        "label index of {name:?} lists other values than the series"
                    )));
                }
            }
        }
        if self.scan_tables(self.toc.label_indices, self.toc.postings, "label indices")? != listed {
            return Err(IndexError::Corrupt(
                "label indices section holds entries the label offset table does not list".into(),
            ));
        }
        Ok(count as u64)
    }
}

/// A postings list holds series references in strictly increasing order (Prometheus merges
/// and intersects them assuming it).
fn check_postings_sorted(name: &str, value: &str, refs: &[u32]) -> Result<(), IndexError> {
    match refs.windows(2).position(|w| w[0] >= w[1]) {
        Some(i) => Err(IndexError::Corrupt(format!(
            "postings list {name}={value:?} not strictly increasing at entry {}",
            i + 1
        ))),
        None => Ok(()),
    }
}

/// Label names must be non-empty, strictly increasing; values non-empty.
fn check_label_names(series_ref: u32, labels: &[(&str, &str)]) -> Result<(), IndexError> {
    if labels.iter().any(|(n, v)| n.is_empty() || v.is_empty()) {
        return Err(IndexError::EmptyLabel {
            index: series_ref.into(),
        });
    }
    if labels.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(IndexError::Corrupt(format!(
            "series {series_ref}: label names not strictly sorted"
        )));
    }
    Ok(())
}

fn utf8(b: &[u8]) -> Result<&str, IndexError> {
    std::str::from_utf8(b).map_err(|_| IndexError::Corrupt("string is not UTF-8".into()))
}
