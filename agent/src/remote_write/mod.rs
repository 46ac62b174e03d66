//! Remote write 1.0 (<https://prometheus.io/docs/specs/remote_write_spec/>): per-endpoint queues
//! on disk fed by the scrape loops, shards that batch samples, and the HTTP client that sends
//! them.
//!
//! ```text
//! scrape loops ──append()──► QueueManager ──hash──► shard 0..n: ShardQueue ──► Client ──► receiver
//!               (compress,   (one per endpoint)       write(2) to segment      (joins records,
//!                returns after the disk write)        + memory up to capacity   2xx → position)
//!                                                     <storage.path>/queue/<name>/shard-<i>/
//! prepare_series(), once per new series: external labels, write relabel, encoded labels
//! ```
//!
//! Files: `queue_manager.rs` (one endpoint: routing, compression, retries with backoff,
//! shutdown with a flush deadline), `shards.rs` (the endpoint task: directory lock, one send
//! loop per shard), `disk/` (the on-disk queue: segments, records, read position, budget,
//! replay), `client.rs` (one HTTP send and the recoverable/permanent split, [`SendError`]),
//! `metrics.rs` (`trawl_agent_remote_write_*`).

mod batch;
mod client;
mod disk;
mod metrics;
mod prepared;
mod queue_manager;
mod shards;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use trawl_model::labels::Labels;
use trawl_model::remote::encode_labels;

pub use batch::WriteBatch;
pub use client::SendError;
pub use disk::DiskError;
pub use metrics::RemoteWriteFamilies;
pub use prepared::PreparedSeries;

use crate::config::RemoteWriteConfig;
use crate::http_client::HttpClientError;
use crate::plugin::{PluginSet, Stage};
use queue_manager::QueueManager;

/// Why remote write could not start.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The endpoint's HTTP client could not be built (TLS files, certificates).
    #[error("remote_write {remote_name}: {source}")]
    HttpClient {
        /// The endpoint's `name`.
        remote_name: String,
        /// What failed.
        #[source]
        source: HttpClientError,
    },
    /// A configured header name or value is not valid HTTP.
    #[error("remote_write {remote_name}: invalid HTTP header {header:?}")]
    Header {
        /// The endpoint's `name`.
        remote_name: String,
        /// The header's configured name.
        header: String,
    },
    /// The endpoint's queue directory could not be created.
    #[error("remote_write {remote_name}: {source}")]
    Queue {
        /// The endpoint's `name`.
        remote_name: String,
        /// What failed.
        #[source]
        source: DiskError,
    },
}

/// Every remote write endpoint of the agent. A cheap handle: clones share the same queues, so
/// every scrape loop holds one.
#[derive(Clone)]
pub struct RemoteWrite {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<QueueManager>,
    external_labels: Labels,
    closed: AtomicBool,
}

impl std::fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWrite")
            .field("endpoints", &self.inner.endpoints.len())
            .finish()
    }
}

impl RemoteWrite {
    /// Starts one queue per endpoint in `configs` (in order: the index into
    /// [`PreparedSeries::endpoints`]) with `max(min_shards, 1)` shards each, reporting into
    /// `families`; each endpoint runs the write-stage plugins it names from `plugins`. Each
    /// endpoint's on-disk queue lives in `<queue_dir>/<name>/` (the agent passes
    /// `<storage.path>/queue`); what an earlier run left there is sent first. An endpoint whose
    /// directory is still held by a previous `RemoteWrite` (a reload) waits for its shutdown.
    /// Call inside a tokio runtime.
    ///
    /// # Errors
    /// [`RemoteWriteError`] when an endpoint's HTTP client or headers are invalid or its queue
    /// directory cannot be created; nothing is left running then.
    pub fn new(
        configs: &[RemoteWriteConfig],
        external_labels: &Labels,
        families: &RemoteWriteFamilies,
        plugins: &PluginSet,
        queue_dir: &Path,
    ) -> Result<RemoteWrite, RemoteWriteError> {
        // An error drops the endpoints started so far, which closes their shards.
        let endpoints = configs
            .iter()
            .map(|cfg| {
                let stage = plugins.stage(Stage::Write, cfg.plugins.iter().map(String::as_str));
                QueueManager::start(cfg, families, stage, queue_dir)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RemoteWrite {
            inner: Arc::new(Inner {
                endpoints,
                external_labels: external_labels.clone(),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Prepares new series of one target (their final labels after scrape relabeling and
    /// plugins) for every endpoint: external labels, then each endpoint's write relabeling and
    /// write-stage plugins (one call per plugin for all of them); see [`PreparedSeries`]. Takes
    /// the label sets (the external labels are merged in place); returns one prepared series
    /// per set, in order. `target` is the target's labels, for plugins that ask for them. Call
    /// once per series and cache the result.
    pub fn prepare_series(&self, mut merged: Vec<Labels>, target: &Labels) -> Vec<PreparedSeries> {
        merged.iter_mut().for_each(|l| self.add_external_labels(l));
        let encoded: Vec<Vec<u8>> = merged.iter().map(encode_labels).collect();
        let per_endpoint: Vec<_> = self
            .inner
            .endpoints
            .iter()
            .map(|e| e.prepare(&merged, &encoded, target))
            .collect();
        encoded
            .iter()
            .enumerate()
            .map(|(i, encoded)| {
                PreparedSeries::new(
                    xxhash_rust::xxh3::xxh3_64(encoded),
                    per_endpoint.iter().map(|e| e[i].as_deref()),
                )
            })
            .collect()
    }

    /// Changes whenever a write-stage plugin of any endpoint is hot-reloaded, so series prepared
    /// before are outdated; see [`crate::plugin::StagePlugins::version`].
    pub fn plugins_version(&self) -> u64 {
        self.inner
            .endpoints
            .iter()
            .fold(0, |acc, e| acc.wrapping_mul(31).wrapping_add(e.plugins_version()))
    }

    /// Adds the external labels `labels` lacks.
    fn add_external_labels(&self, labels: &mut Labels) {
        for external in &self.inner.external_labels {
            if !labels.contains(&external.name) {
                labels.set(external.name.clone(), external.value.clone());
            }
        }
    }

    /// An empty batch to encode one scrape's samples into (see [`WriteBatch::push`]), with room
    /// for `chunk_hint` bytes in each shard's first chunk (the last scrape's
    /// [`WriteBatch::chunk_bytes`]).
    pub fn batch(&self, chunk_hint: usize) -> WriteBatch {
        WriteBatch::new(self.inner.endpoints.iter().map(QueueManager::batch_shape), chunk_hint)
    }

    /// Queues one scrape's batch for every endpoint: returns once it is written to each
    /// endpoint's on-disk queue (page cache), never waiting for the network. Samples whose
    /// series an endpoint dropped are counted in its `samples_dropped_total`; batches appended
    /// after [`shutdown`](Self::shutdown) began are counted in `samples_failed_total` and not
    /// sent.
    pub async fn append(&self, batch: WriteBatch) {
        let closed = self.inner.closed.load(Ordering::Acquire);
        for (endpoint, part) in self.inner.endpoints.iter().zip(batch.endpoints) {
            if closed {
                endpoint.rejected_after_shutdown(part.samples());
            } else {
                endpoint.append(part).await;
            }
        }
    }

    /// Stops accepting, flushes what is queued within each endpoint's remote_timeout, then
    /// returns and releases the queue directories.
    ///
    /// Endpoints flush concurrently. Samples still queued or in flight when an endpoint's
    /// `remote_timeout` expires stay on disk and are sent by the next `RemoteWrite` over the
    /// same directory (they leave `samples_pending`, and are not failed). Other clones of this
    /// handle stay valid but no longer send anything; a second `shutdown` returns at once.
    /// Dropping every handle without `shutdown` lets the shards send what is queued in the
    /// background, with no deadline.
    pub async fn shutdown(self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            // Another clone is already shutting down and will count what is left.
            return;
        }
        futures::future::join_all(self.inner.endpoints.iter().map(QueueManager::shutdown)).await;
    }
}
