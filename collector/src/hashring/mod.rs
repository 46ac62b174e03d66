//! Hashring: which collectors own a series, compatible with Thanos Receive's hashrings so golden
//! placements are shared and mixed fleets work.
//!
//! - [`config`]: the hashrings.json file (Thanos's shape) and its checks.
//! - [`ring`]: the series hash, `hashmod` and `ketama` placement, tenant → ring selection.
//! - [`glob`]: tenant patterns of `"tenant_matcher_type": "glob"`.
//! - [`watch`]: loading the file, reloading it on change, the current rings and their metrics.

pub mod config;
pub mod glob;
pub mod ring;
pub mod watch;

#[cfg(test)]
mod tests;

pub use config::{Algorithm, Endpoint, HashringConfig};
pub use ring::{Hashrings, Ring, series_hash};
pub use watch::{HashringSettings, HashringWatcher};

/// Why a hashrings file was refused, or why a tenant has no ring.
#[derive(Debug, thiserror::Error)]
pub enum HashringError {
    /// The file could not be read.
    #[error("read hashrings file {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`config::MAX_FILE_BYTES`].
    #[error("hashrings file is {len} bytes, above the limit of {limit} bytes")]
    TooLarge {
        /// File size in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The file is not JSON of the hashrings shape.
    #[error("hashrings file is not a valid hashrings JSON array")]
    Json(#[source] serde_json::Error),
    /// The file holds no hashring (Thanos: "configuration file is empty").
    #[error("hashrings file is empty: it must list at least one hashring")]
    Empty,
    /// More endpoints than [`config::MAX_ENDPOINTS`] over all rings.
    #[error("hashrings file lists {count} endpoints, above the limit of {limit}")]
    TooManyEndpoints {
        /// Endpoints listed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One hashring is unusable.
    #[error("hashring {hashring}: {reason}")]
    Ring {
        /// The ring's quoted `hashring` name, or `#<position>` when it has none.
        hashring: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No hashring serves the tenant and there is no default ring (Thanos: "no matching
    /// hashring to handle tenant").
    #[error("no hashring serves tenant {tenant:?}")]
    NoRing {
        /// The tenant.
        tenant: String,
    },
}
