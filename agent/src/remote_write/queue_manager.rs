//! One remote write endpoint, as Prometheus `storage/remote/queue_manager.go` `QueueManager`
//! but fed directly by the scrape loops instead of tailing a WAL.
//!
//! Samples are routed by series hash to a fixed number of shards, `max(min_shards, 1)`:
//! Prometheus's dynamic resharding needs every old shard flushed before new ones start (to keep
//! per-series order) and is left out. Each shard sends one batch at a time, encoded once and
//! retried with the same bytes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};
use trawl_model::labels::Labels;
use trawl_model::relabel::{self, RelabelConfig};
use trawl_model::remote::{Compressor, SeriesBuffer, encode_labels};

use super::RemoteWriteError;
use super::batch::EndpointBatch;
use super::client::Client;
use super::metrics::{EndpointMetrics, RemoteWriteFamilies};
use super::shards::Shards;
use crate::config::RemoteWriteConfig;
use crate::plugin::StagePlugins;

/// Smallest retry delay, so a zero `min_backoff` cannot turn retries into a busy loop.
const MIN_BACKOFF_FLOOR: Duration = Duration::from_millis(1);

/// The queue and shards of one endpoint.
pub(super) struct QueueManager {
    /// Name, metrics and batch size of the endpoint, shared with its shards.
    sender: Arc<Sender>,
    write_relabel_configs: Vec<RelabelConfig>,
    /// Write-stage plugins, run after `write_relabel_configs`.
    plugins: StagePlugins,
    flush_timeout: Duration,
    shards: Shards,
}

impl QueueManager {
    /// Builds the client for `cfg` and starts its shard tasks (inside a tokio runtime);
    /// `plugins` are the endpoint's write-stage plugins.
    ///
    /// # Errors
    /// As [`Client::new`].
    pub(super) fn start(
        cfg: &RemoteWriteConfig,
        families: &RemoteWriteFamilies,
        plugins: StagePlugins,
    ) -> Result<QueueManager, RemoteWriteError> {
        let client = Client::new(cfg)?;
        let metrics = families.endpoint(&cfg.name, &redacted(&cfg.url));
        let queue = &cfg.queue_config;
        let sender = Arc::new(Sender {
            name: cfg.name.clone(),
            client,
            metrics: metrics.clone(),
            max_samples_per_send: queue.max_samples_per_send.max(1),
            batch_send_deadline: queue.batch_send_deadline,
            min_backoff: queue.min_backoff.max(MIN_BACKOFF_FLOOR),
            max_backoff: queue.max_backoff.max(MIN_BACKOFF_FLOOR),
        });
        let shards = Shards::start(queue.min_shards, queue.capacity, &sender);
        metrics.set_sizing(shards.len(), queue.capacity);
        info!(
            message = "Remote write endpoint started.",
            remote_name = %cfg.name,
            url = %redacted(&cfg.url),
            shards = shards.len(),
        );
        Ok(QueueManager {
            sender,
            write_relabel_configs: cfg.write_relabel_configs.clone(),
            plugins,
            flush_timeout: cfg.remote_timeout,
            shards,
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

    /// Queues one scrape's chunks for this endpoint, waiting while a shard is full.
    pub(super) async fn append(&self, batch: EndpointBatch) {
        if batch.dropped > 0 {
            self.sender.metrics.dropped(batch.dropped);
        }
        for (shard, chunk) in batch.into_chunks() {
            // Counted before the push, so a fast send cannot take the gauge below zero.
            self.sender.metrics.queued(chunk.samples());
            if let Err(rejected) = self.shards.push(shard, chunk).await {
                self.sender.metrics.failed(rejected, true);
                self.log_rejected(rejected);
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

    /// Stops accepting, lets the shards send what is queued for up to `remote_timeout`, then
    /// aborts them and counts what is left as failed.
    pub(super) async fn shutdown(&self) {
        self.shards.close();
        let tasks = self.shards.take_tasks();
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let all = futures::future::join_all(tasks);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            () = tokio::time::sleep(self.flush_timeout) => {
                aborts.iter().for_each(|a| a.abort());
                // Wait for the aborted tasks to be dropped so their in-flight counts are final.
                all.await;
            }
        }
        let undelivered = self.shards.undelivered();
        if undelivered > 0 {
            self.sender.metrics.failed(undelivered, true);
            warn!(
                message = "Remote write stopped with samples not sent.",
                remote_name = %self.sender.name,
                samples = undelivered,
                flush_timeout = ?self.flush_timeout,
            );
        }
        info!(message = "Remote write endpoint stopped.", remote_name = %self.sender.name);
    }
}

impl Drop for QueueManager {
    /// Lets the shard tasks drain and end when the endpoint is dropped without `shutdown`.
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

    /// Longest wait for a batch to fill.
    pub(super) fn batch_send_deadline(&self) -> Duration {
        self.batch_send_deadline
    }

    /// Sends `batch` until it is delivered or rejected for good. Recoverable errors are retried
    /// forever, after `Retry-After` when the server gave one, else after a backoff doubling from
    /// `min_backoff` to `max_backoff`.
    pub(super) async fn send_batch(&self, batch: &SeriesBuffer, compressor: &mut Compressor) {
        // Compress once; every retry sends the same bytes.
        let max_timestamp_ms = batch.max_timestamp_ms().unwrap_or(i64::MIN);
        let n = batch.samples();
        let body = match compressor.compress(batch.proto()) {
            Ok(body) => Bytes::copy_from_slice(body),
            Err(error) => {
                self.metrics.failed(n, true);
                error!(
                    message = "Remote write batch could not be encoded; dropping it.",
                    remote_name = %self.name,
                    samples = n,
                    %error,
                );
                return;
            }
        };

        let mut backoff = self.min_backoff;
        loop {
            let started = Instant::now();
            let result = self.client.store(body.clone()).await;
            self.metrics.attempt(body.len(), started.elapsed());
            let error = match result {
                Ok(()) => {
                    self.metrics.sent(n, max_timestamp_ms);
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
