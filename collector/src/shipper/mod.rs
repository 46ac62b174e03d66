//! The shipper: uploads a tenant's finished blocks to object storage, oldest first, and deletes
//! local copies once they are uploaded and older than `--tsdb.retention`. Behaviour follows
//! Thanos `pkg/shipper/shipper.go`; the bucket layout is Thanos's (`<prefix>/<ULID>/chunks/000001`,
//! `<ULID>/index`, `<ULID>/meta.json`), so Thanos Store, the Thanos tools and Prometheus (after a
//! download) read what we write.
//!
//! - [`objstore`]: `--objstore.config-file` in Thanos's `objstore.yml` shape → [`open_bucket`].
//! - [`sync`]: [`Shipper::sync`], one idempotent pass over a tenant directory.
//! - [`upload`]: streams one block's files into the bucket (multipart for large files), with
//!   bounded exponential backoff.
//! - [`state`]: `thanos.shipper.json`, the record of uploaded blocks, written atomically.
//! - [`metrics`]: the `trawl_collector_shipper_*` metrics.
//!
//! Wiring: one [`ShipperMetrics`] per registry, one [`Shipper`] per tenant directory sharing the
//! bucket and the metrics; call [`Shipper::sync`] after each block is cut, periodically, and once
//! more after the SIGTERM flush.

pub mod metrics;
pub mod objstore;
pub mod state;
pub mod sync;
pub mod upload;

#[cfg(test)]
mod tests;

use std::io;

use trawl_tsdb::fs::FsError;
use ulid::Ulid;

pub use metrics::ShipperMetrics;
pub use objstore::{ObjstoreConfig, open_bucket};
pub use sync::{Shipper, SyncReport};
pub use upload::Backoff;

/// Errors of the shipper: building the bucket from its config (permanent) and syncing blocks
/// (recoverable: the next [`Shipper::sync`] retries; see [`ShipperError::is_recoverable`]).
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The objstore config file could not be read (missing, unreadable, or larger than
    /// [`objstore::MAX_CONFIG_BYTES`]).
    #[error("read objstore config {path}")]
    ReadConfig {
        /// Path of the config file.
        path: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The objstore config is not valid YAML of the expected shape (unknown or duplicate key,
    /// wrong type, missing `type`); the message names the key and line.
    #[error("objstore config {origin}: {message}")]
    ParseConfig {
        /// File the config came from.
        origin: String,
        /// What is wrong, with the line and column when known.
        message: String,
    },
    /// A key of the objstore config has a value we cannot use, or sets a Thanos feature this
    /// collector does not implement.
    #[error("objstore config {origin}: `{key}`: {message}")]
    InvalidConfig {
        /// File the config came from.
        origin: String,
        /// Key path, e.g. `config.bucket`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The bucket could not be opened (object_store rejected the settings, or the filesystem
    /// bucket's directory could not be created).
    #[error("open {kind} bucket")]
    OpenBucket {
        /// `S3` or `FILESYSTEM`.
        kind: &'static str,
        /// Underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Local I/O on the tenant directory failed (listing it, reading a block file, writing
    /// `thanos.shipper.json`, deleting a block); its `op` says which, e.g. `read block file`.
    #[error(transparent)]
    Io(#[from] FsError),
    /// A bucket operation failed.
    #[error("{op} {object}")]
    Bucket {
        /// What was being done, e.g. `upload`.
        op: &'static str,
        /// Object name inside the bucket (before the config's `prefix`).
        object: String,
        /// Underlying error.
        #[source]
        source: object_store::Error,
    },
    /// A block was not uploaded after all attempts; the sync stopped there so that blocks keep
    /// being shipped oldest first, and the next sync starts again with this block.
    #[error("block {block} not uploaded after {attempts} attempts")]
    Block {
        /// The block.
        block: Ulid,
        /// Attempts made, see [`Backoff`].
        attempts: u32,
        /// Error of the last attempt.
        #[source]
        source: Box<ShipperError>,
    },
}

impl ShipperError {
    /// `true` for errors of a sync (the next sync retries); `false` for config errors, which
    /// need the operator.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ShipperError::Io(_) | ShipperError::Bucket { .. } | ShipperError::Block { .. }
        )
    }
}
