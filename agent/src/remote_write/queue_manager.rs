//! One remote write endpoint, as Prometheus `storage/remote/queue_manager.go` `QueueManager`
//! but fed directly by the scrape loops instead of tailing a WAL, with an on-disk queue per
//! shard in between (see [`super::disk`]).
//!
//! Samples are routed by series hash to a fixed number of shards, `max(min_shards, 1)`:
//! Prometheus's dynamic resharding needs every old shard flushed before new ones start (to keep
//! per-series order) and is left out. Each chunk is compressed once, in `append`; a send joins
//! the compressed records of a batch and retries the same bytes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use trawl_model::labels::Labels;
use trawl_model::relabel::{self, RelabelConfig};
use trawl_model::remote::{CodecError, Compressor, encode_labels};

use super::RemoteWriteError;
use super::batch::{EndpointBatch, recycle};
use super::client::Client;
use super::disk::{self, AppendError, Batch, QueueOptions};
use super::metrics::{EndpointMetrics, RemoteWriteFamilies};
use super::shards::{self, Shards};
use crate::config::RemoteWriteConfig;
use crate::plugin::StagePlugins;

/// Smallest retry delay, so a zero `min_backoff` cannot turn retries into a busy loop.
const MIN_BACKOFF_FLOOR: Duration = Duration::from_millis(1);

thread_local! {
    /// Snappy state and output buffer of the scrape loops running on this thread.
    static COMPRESSOR: RefCell<Compressor> = RefCell::new(Compressor::default());
}

/// The queue and shards of one endpoint.
pub(super) struct QueueManager {
    /// Name, metrics and batch size of the endpoint, shared with its shards.
    sender: Arc<Sender>,
    write_relabel_configs: Vec<RelabelConfig>,
    /// Write-stage plugins, run after `write_relabel_configs`.
    plugins: StagePlugins,
    flush_timeout: Duration,
    shards: Arc<Shards>,
    /// The task that opens the queue and runs the shards; taken by `shutdown`.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl QueueManager {
    /// Builds the client for `cfg` and starts the task (inside a tokio runtime) that opens its
    /// on-disk queue under `queue_dir` (waiting for a previous queue of the same endpoint to
    /// release it) and runs the shards; `plugins` are the endpoint's write-stage plugins.
    ///
    /// # Errors
    /// As [`Client::new`]; [`RemoteWriteError::Queue`] when the queue directory cannot be
    /// created.
    pub(super) fn start(
        cfg: &RemoteWriteConfig,
        families: &RemoteWriteFamilies,
        plugins: StagePlugins,
        queue_dir: &Path,
    ) -> Result<QueueManager, RemoteWriteError> {
        let client = Client::new(cfg, families.collectors())?;
        let urls: Vec<String> = cfg.urls.iter().map(redacted).collect();
        let metrics = families.endpoint(&cfg.name, &urls.join(","));
        let queue = &cfg.queue_config;
        let dir = disk::endpoint_dir(queue_dir, &cfg.name);
        std::fs::create_dir_all(&dir).map_err(|source| RemoteWriteError::Queue {
            remote_name: cfg.name.clone(),
            source: disk::DiskError::Io {
                dir: dir.clone(),
                source,
            },
        })?;
        let sender = Arc::new(Sender {
            name: cfg.name.clone(),
            client,
            metrics: metrics.clone(),
            max_samples_per_send: queue.max_samples_per_send.max(1),
            batch_send_deadline: queue.batch_send_deadline,
            min_backoff: queue.min_backoff.max(MIN_BACKOFF_FLOOR),
            max_backoff: queue.max_backoff.max(MIN_BACKOFF_FLOOR),
        });
        let shards = Arc::new(Shards::new(queue.min_shards.max(1), dir.clone()));
        let options = QueueOptions {
            remote_name: cfg.name.clone(),
            capacity: queue.capacity.max(1),
            // The endpoint's budget; `disk::open_shards` splits it and sizes the segments.
            max_bytes: queue.max_disk_usage,
            segment_bytes: 0,
        };
        let queue_metrics = families.queue(&cfg.name, &metrics);
        let task = tokio::spawn(shards::run(
            Arc::clone(&shards),
            Arc::clone(&sender),
            options,
            queue_metrics,
        ));
        metrics.set_sizing(shards.len(), queue.capacity);
        info!(
            message = "Remote write endpoint started.",
            remote_name = %cfg.name,
            url = %urls.join(","),
            shards = shards.len(),
            queue = %dir.display(),
        );
        Ok(QueueManager {
            sender,
            write_relabel_configs: cfg.write_relabel_configs.clone(),
            plugins,
            flush_timeout: cfg.remote_timeout,
            shards,
            task: Mutex::new(Some(task)),
        })
    }

    /// The encoded labels this endpoint sends for each series of one target: `merged[i]`
    /// (external labels already merged) after `write_relabel_configs` and the write-stage
    /// plugins, or `None` when they drop it or leave it without labels. `encoded[i]` is
    /// `encode_labels(&merged[i])`, reused when nothing can change the labels; `target` is the
    /// target's labels, for plugins that ask for them.
    pub(super) fn prepare<'a>(
        &self,
        merged: &[Labels],
        encoded: &'a [Vec<u8>],
        target: &Labels,
    ) -> Vec<Option<Cow<'a, [u8]>>> {
        if self.write_relabel_configs.is_empty() && self.plugins.is_empty() {
            return merged
                .iter()
                .zip(encoded)
                .map(|(labels, encoded)| (!labels.is_empty()).then_some(Cow::Borrowed(&encoded[..])))
                .collect();
        }
        let mut relabeled: Vec<Option<Labels>> = merged
            .iter()
            .map(|labels| {
                let mut labels = labels.clone();
                let kept = relabel::process(&self.write_relabel_configs, &mut labels) && !labels.is_empty();
                kept.then_some(labels)
            })
            .collect();
        // Plugins see the series as this endpoint would send them.
        self.plugins.apply(&mut relabeled, target);
        relabeled
            .into_iter()
            .map(|labels| labels.filter(|l| !l.is_empty()).map(|l| Cow::Owned(encode_labels(&l))))
            .collect()
    }

    /// See [`StagePlugins::version`].
    pub(super) fn plugins_version(&self) -> u64 {
        self.plugins.version()
    }

    /// Queues one scrape's chunks for this endpoint: each is compressed and written to its
    /// shard's on-disk queue. Waits only while the queue is being opened (at start, or for the
    /// previous queue of this endpoint to finish its shutdown).
    pub(super) async fn append(&self, batch: EndpointBatch) {
        if batch.dropped > 0 {
            self.sender.metrics.dropped(batch.dropped);
        }
        let Some(queues) = self.shards.queues().await else {
            self.rejected_after_shutdown(batch.samples());
            return;
        };
        for (shard, chunk) in batch.into_chunks() {
            let n = chunk.samples();
            // Counted before the write, so a fast send cannot take the gauge below zero.
            self.sender.metrics.queued(n);
            let max_timestamp_ms = chunk.max_timestamp_ms().unwrap_or(i64::MIN);
            let result = COMPRESSOR.with_borrow_mut(|compressor| {
                let block = compressor.compress(chunk.proto())?;
                Ok::<_, CodecError>(
                    queues
                        .get(shard)
                        .map_or(Err(AppendError::Closed), |q| q.append(n, max_timestamp_ms, block)),
                )
            });
            recycle(chunk);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(AppendError::Closed)) => {
                    self.sender.metrics.failed(n, true);
                    self.log_rejected(n);
                }
                Ok(Err(error)) => {
                    self.sender.metrics.failed(n, true);
                    error!(message = "Remote write queue write failed; dropping samples.", remote_name = %self.sender.name, samples = n, %error);
                }
                Err(error) => {
                    self.sender.metrics.failed(n, true);
                    error!(message = "Remote write chunk could not be compressed; dropping it.", remote_name = %self.sender.name, samples = n, %error);
                }
            }
        }
    }

    /// Shard count and `max_samples_per_send`, to shape a [`super::WriteBatch`].
    pub(super) fn batch_shape(&self) -> (usize, usize) {
        (self.shards.len(), self.sender.max_samples_per_send)
    }

    /// Counts samples handed over after shutdown began: they are never sent.
    pub(super) fn rejected_after_shutdown(&self, n: usize) {
        self.sender.metrics.failed(n, false);
        self.log_rejected(n);
    }

    fn log_rejected(&self, n: usize) {
        debug!(
            message = "Samples appended after shutdown were not queued.",
            remote_name = %self.sender.name,
            samples = n,
        );
    }

    /// Stops accepting, lets the shards send what is queued (memory and disk) for up to
    /// `remote_timeout`, then stops them; what is left stays on disk for the next start.
    pub(super) async fn shutdown(&self) {
        self.shards.close();
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut task) = task {
            tokio::select! {
                _ = &mut task => {}
                () = tokio::time::sleep(self.flush_timeout) => {
                    task.abort();
                    // Wait for the task to be dropped: it holds the directory lock.
                    let _ = task.await;
                }
            }
        }
        self.shards.release(&self.sender.metrics);
        info!(message = "Remote write endpoint stopped.", remote_name = %self.sender.name);
    }
}

impl Drop for QueueManager {
    /// Lets the shards drain and end when the endpoint is dropped without `shutdown`.
    fn drop(&mut self) {
        self.shards.close();
    }
}

/// Encodes batches and sends them with retries, as Prometheus `sendSamplesWithBackoff`.
pub(super) struct Sender {
    name: String,
    client: Client,
    metrics: EndpointMetrics,
    max_samples_per_send: usize,
    batch_send_deadline: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl Sender {
    /// Largest batch, in samples (at least 1).
    pub(super) fn max_samples_per_send(&self) -> usize {
        self.max_samples_per_send
    }

    /// The endpoint's metrics.
    pub(super) fn metrics(&self) -> &EndpointMetrics {
        &self.metrics
    }

    /// Longest wait for a batch to fill.
    pub(super) fn batch_send_deadline(&self) -> Duration {
        self.batch_send_deadline
    }

    /// Sends `batch` until it is delivered or rejected for good. Recoverable errors are retried
    /// forever, after `Retry-After` when the server gave one, else after a backoff doubling from
    /// `min_backoff` to `max_backoff`.
    pub(super) async fn send_batch(&self, batch: &Batch) {
        // Joined once; every retry sends the same bytes.
        let body = disk::join_blocks(&batch.records);
        let n = batch.samples;
        let mut backoff = self.min_backoff;
        loop {
            let started = Instant::now();
            let result = self.client.store(body.clone()).await;
            self.metrics.attempt(body.len(), started.elapsed());
            let error = match result {
                Ok(()) => {
                    self.metrics.sent(n, batch.max_timestamp_ms);
                    return;
                }
                Err(error) => error,
            };
            if !error.is_recoverable() {
                self.metrics.failed(n, true);
                error!(
                    message = "Remote write rejected; dropping batch.",
                    remote_name = %self.name,
                    samples = n,
                    %error,
                );
                return;
            }
            let delay = error.retry_after().unwrap_or(backoff);
            warn!(
                message = "Remote write failed; will retry.",
                remote_name = %self.name,
                samples = n,
                retry_in = ?delay,
                %error,
            );
            tokio::time::sleep(delay).await;
            self.metrics.retried(n);
            backoff = delay.saturating_mul(2).min(self.max_backoff);
        }
    }
}

/// The URL without user info, for labels and logs.
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    // Both only fail for URLs that cannot have credentials, which then have none to hide.
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}
