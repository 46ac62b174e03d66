//! Trawl's Prometheus TSDB formats, pure and synchronous (std I/O only; no tokio).
//!
//! - [`chunkenc`]: XOR (Gorilla) chunk encoding, as Prometheus `tsdb/chunkenc/xor.go`.
//! - [`chunks`]: chunk segment files `chunks/000001…`, as Prometheus `tsdb/chunks/chunks.go`.
//! - [`index`]: index format v2 writer and reader, as Prometheus `tsdb/docs/format/index.md`.
//! - [`tombstones`]: the (empty) tombstones file.
//! - [`meta`]: `meta.json` with the Thanos section.
//! - [`block`]: writes a whole block atomically (temporary directory, `meta.json` last, rename) and reads one back.
//! - [`wal`]: segmented write-ahead log with CRC32C records, record encoding and checkpoints.
//! - [`fs`]: [`fs::FsError`] (an I/O error with its operation and path) and directory fsync.

pub mod block;
pub mod chunkenc;
pub mod chunks;
pub mod fs;
pub mod index;
pub mod meta;
pub mod tombstones;
pub mod wal;
