//! Index format v2 of a block, as Prometheus `tsdb/index/index.go` and
//! `tsdb/docs/format/index.md`.
//!
//! ```text
//! magic 0xBAAAD700 <4b> | version 2 <1b>
//! symbols              len <4b> | #symbols <4b> | (len <uvarint> | utf-8 bytes)… | CRC32C <4b>
//! series (16-aligned)  len <uvarint> | #labels | (name ref, value ref)… | #chunks | chunk metas | CRC32C
//! label indices        (4-aligned) len <4b> | #names=1 <4b> | #values <4b> | value refs <4b>… | CRC32C
//! postings             (4-aligned) len <4b> | #refs <4b> | series refs <4b>… | CRC32C; first the ("", "") list of all series
//! label offset table   len <4b> | #entries <4b> | (1 | name | offset <uvarint64>)… | CRC32C
//! postings offset table len <4b> | #entries <4b> | (2 | name | value | offset <uvarint64>)… | CRC32C
//! TOC                  6 × offset <8b> | CRC32C
//! ```
//! A series reference is its byte offset / 16. Strings are uvarint-length-prefixed; symbol refs
//! are indexes into the sorted symbol table. Every CRC covers the bytes after `len`.

pub mod encoding;
mod reader;
mod writer;

pub use reader::{IndexReader, IndexSummary, PostingsEntry, SeriesEntry};
pub use writer::{IndexSeries, IndexStats, write_index};

use encoding::DecodeError;

use crate::fs::FsError;

/// Magic number at the start of an index file.
pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
/// The index format version we write and read.
pub const FORMAT_V2: u8 = 2;
/// Bytes of the header (magic and version).
pub const HEADER_LEN: usize = 5;
/// Series entries start at multiples of this; a series reference is offset / 16.
pub const SERIES_ALIGN: u64 = 16;
/// Bytes of the table of contents at the end of the file (6 offsets and a CRC).
pub const TOC_LEN: usize = 6 * 8 + 4;
/// File name of the index inside a block.
pub const INDEX_FILENAME: &str = "index";

/// Time range and location of one chunk, as stored in a series entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp of the first sample, ms since epoch.
    pub min_time: i64,
    /// Timestamp of the last sample, ms since epoch (inclusive).
    pub max_time: i64,
    /// Chunk reference into the segment files (see [`crate::chunks::chunk_ref`]).
    pub chunk_ref: u64,
}

/// Table of contents: byte offsets of the sections (Prometheus `index.TOC`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Toc {
    /// Start of the symbol table.
    pub symbols: u64,
    /// Start of the series section.
    pub series: u64,
    /// Start of the label indices.
    pub label_indices: u64,
    /// Start of the label offset table.
    pub label_indices_table: u64,
    /// Start of the postings lists.
    pub postings: u64,
    /// Start of the postings offset table.
    pub postings_table: u64,
}

/// Errors writing or reading an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// File system error.
    #[error(transparent)]
    Io(#[from] FsError),
    /// Series handed to the writer are not strictly increasing by labels.
    #[error("series {index} is not after the previous one in label order (or a duplicate)")]
    SeriesOutOfOrder {
        /// Position in the input.
        index: usize,
    },
    /// A series' chunks overlap, go backwards, or have max time before min time.
    #[error("series {index}: chunk {chunk} overlaps or precedes the previous one, or has max < min time")]
    ChunksOutOfOrder {
        /// Position of the series.
        index: usize,
        /// Position of the chunk in the series.
        chunk: usize,
    },
    /// Chunk references are not non-decreasing in series order.
    #[error("series {index}: chunk reference smaller than a previous series' reference")]
    ChunkRefsOutOfOrder {
        /// Position of the series.
        index: usize,
    },
    /// A label name is empty (reserved for the all-series postings list) or a value is empty.
    #[error("series {index}: empty label name or value")]
    EmptyLabel {
        /// Position (writer) or reference (reader) of the series.
        index: u64,
    },
    /// The index would exceed what 4-byte references can address.
    #[error("index too large: {0}")]
    TooLarge(&'static str),
    /// Bad magic number or unsupported version.
    #[error("bad index header (magic {magic:#010x}, version {version})")]
    BadHeader {
        /// Magic number read.
        magic: u32,
        /// Version read.
        version: u8,
    },
    /// A section could not be decoded.
    #[error("decode {section} at offset {offset}")]
    Decode {
        /// Section name.
        section: &'static str,
        /// Byte offset in the file.
        offset: u64,
        /// What went wrong.
        #[source]
        source: DecodeError,
    },
    /// A checksum does not match.
    #[error("{section} at offset {offset}: checksum mismatch")]
    Checksum {
        /// Section name.
        section: &'static str,
        /// Byte offset in the file.
        offset: u64,
    },
    /// A structural rule of the format is broken.
    #[error("{0}")]
    Corrupt(String),
}

#[cfg(test)]
mod tests;
