//! Remote write metrics, named as Prometheus `storage/remote/queue_manager.go`'s
//! `prometheus_remote_storage_*` but under `trawl_agent_remote_write_`, one series per endpoint
//! (labels `remote_name` and `url`, as Prometheus), plus Trawl's on-disk queue metrics
//! `trawl_agent_remote_write_disk_*` (label `remote_name`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::client::CollectorFamilies;

/// Buckets of `sent_batch_duration_seconds`: Prometheus's default buckets plus 25s..300s, as
/// Prometheus 2.42 uses for the same histogram (sends can take up to `remote_timeout`).
const BATCH_DURATION_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0,
];

/// Identifies an endpoint's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    remote_name: String,
    url: String,
}

/// Identifies an endpoint's on-disk queue series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    remote_name: String,
}

fn new_batch_duration_histogram() -> Histogram {
    Histogram::new(BATCH_DURATION_BUCKETS)
}

/// The `trawl_agent_remote_write_*` metric families of every endpoint, registered once per
/// registry and shared by every [`RemoteWrite`](super::RemoteWrite) built over the agent's
/// lifetime (reloads included). An endpoint's series carry `remote_name` and `url` (without
/// credentials); a restarted endpoint with the same name and URL continues its counters.
/// Cheap to clone (the families are shared).
#[derive(Clone)]
pub struct RemoteWriteFamilies {
    samples: Family<EndpointLabels, Counter>,
    samples_failed: Family<EndpointLabels, Counter>,
    samples_retried: Family<EndpointLabels, Counter>,
    samples_dropped: Family<EndpointLabels, Counter>,
    samples_pending: Family<EndpointLabels, Gauge>,
    shards: Family<EndpointLabels, Gauge>,
    sent_batch_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
    bytes: Family<EndpointLabels, Counter>,
    highest_sent_timestamp: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    queue_capacity: Family<EndpointLabels, Gauge>,
    disk_usage: Family<QueueLabels, Gauge>,
    disk_segments: Family<QueueLabels, Gauge>,
    disk_written: Family<QueueLabels, Counter>,
    disk_read: Family<QueueLabels, Counter>,
    disk_dropped_samples: Family<QueueLabels, Counter>,
    disk_dropped: Family<QueueLabels, Counter>,
    disk_corrupt_records: Family<QueueLabels, Counter>,
    /// Per-collector health and failovers, registered by the client's own module.
    collectors: CollectorFamilies,
}

impl std::fmt::Debug for RemoteWriteFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteFamilies").finish_non_exhaustive()
    }
}

impl RemoteWriteFamilies {
    /// Registers the families into `registry` under the `trawl_agent_remote_write` prefix: call
    /// once per registry.
    pub fn register(registry: &mut Registry) -> RemoteWriteFamilies {
        let metrics = RemoteWriteFamilies {
            samples: Family::default(),
            samples_failed: Family::default(),
            samples_retried: Family::default(),
            samples_dropped: Family::default(),
            samples_pending: Family::default(),
            shards: Family::default(),
            sent_batch_duration: Family::new_with_constructor(new_batch_duration_histogram),
            bytes: Family::default(),
            highest_sent_timestamp: Family::default(),
            queue_capacity: Family::default(),
            disk_usage: Family::default(),
            disk_segments: Family::default(),
            disk_written: Family::default(),
            disk_read: Family::default(),
            disk_dropped_samples: Family::default(),
            disk_dropped: Family::default(),
            disk_corrupt_records: Family::default(),
            collectors: CollectorFamilies::register(registry),
        };
        let r = registry.sub_registry_with_prefix("trawl_agent_remote_write");
        r.register("samples", "Samples sent successfully.", metrics.samples.clone());
        r.register(
            "samples_failed",
            "Samples not delivered: rejected with a non-retryable error, appended after shutdown \
             began, or not written to the on-disk queue.",
            metrics.samples_failed.clone(),
        );
        r.register(
            "samples_retried",
            "Samples whose send failed with a recoverable error and was retried (counted once per \
             retry).",
            metrics.samples_retried.clone(),
        );
        r.register(
            "samples_dropped",
            "Samples dropped before queueing, by write_relabel_configs.",
            metrics.samples_dropped.clone(),
        );
        r.register(
            "samples_pending",
            "Samples handed to the queue and not yet delivered or failed (in memory, on disk, or \
             being sent); samples an earlier run left on disk count once read back.",
            metrics.samples_pending.clone(),
        );
        r.register("shards", "Shards sending in parallel.", metrics.shards.clone());
        r.register_with_unit(
            "sent_batch_duration",
            "Duration of one send attempt of a batch, including the response.",
            Unit::Seconds,
            metrics.sent_batch_duration.clone(),
        );
        r.register(
            "bytes",
            "Compressed request body bytes sent, counted per attempt.",
            metrics.bytes.clone(),
        );
        r.register_with_unit(
            "highest_sent_timestamp",
            "Highest sample timestamp delivered successfully, in seconds since the epoch.",
            Unit::Seconds,
            metrics.highest_sent_timestamp.clone(),
        );
        r.register(
            "queue_capacity",
            "Capacity of each shard's in-memory queue, in samples; more wait on disk only.",
            metrics.queue_capacity.clone(),
        );
        r.register_with_unit(
            "disk_usage",
            "Bytes of the endpoint's on-disk queue segment files.",
            Unit::Bytes,
            metrics.disk_usage.clone(),
        );
        r.register(
            "disk_segments",
            "Segment files of the endpoint's on-disk queue.",
            metrics.disk_segments.clone(),
        );
        r.register_with_unit(
            "disk_written",
            "Bytes appended to the on-disk queue (compressed records).",
            Unit::Bytes,
            metrics.disk_written.clone(),
        );
        r.register_with_unit(
            "disk_read",
            "Bytes read back from the on-disk queue: replay after a restart, or a backlog larger \
             than the in-memory capacity.",
            Unit::Bytes,
            metrics.disk_read.clone(),
        );
        r.register(
            "disk_dropped_samples",
            "Samples not yet sent that were deleted with the oldest segments past max_disk_usage.",
            metrics.disk_dropped_samples.clone(),
        );
        r.register_with_unit(
            "disk_dropped",
            "Bytes of unsent records deleted with the oldest segments past max_disk_usage.",
            Unit::Bytes,
            metrics.disk_dropped.clone(),
        );
        r.register(
            "disk_corrupt_records",
            "Unreadable records (CRC mismatch, torn tail, bad header) skipped with the rest of \
             their segment.",
            metrics.disk_corrupt_records.clone(),
        );
        metrics
    }

    /// The per-collector families, for the endpoint's client.
    pub(super) fn collectors(&self) -> &CollectorFamilies {
        &self.collectors
    }

    /// The on-disk queue handles of endpoint `remote_name`, pre-initialised at zero; `pending`
    /// is the endpoint's `samples_pending`, which replayed and dropped samples move.
    pub(super) fn queue(&self, remote_name: &str, endpoint: &EndpointMetrics) -> QueueMetrics {
        let labels = QueueLabels {
            remote_name: remote_name.to_owned(),
        };
        QueueMetrics {
            usage: self.disk_usage.get_or_create_owned(&labels),
            segments: self.disk_segments.get_or_create_owned(&labels),
            written: self.disk_written.get_or_create_owned(&labels),
            read: self.disk_read.get_or_create_owned(&labels),
            dropped_samples: self.disk_dropped_samples.get_or_create_owned(&labels),
            dropped_bytes: self.disk_dropped.get_or_create_owned(&labels),
            corrupt_records: self.disk_corrupt_records.get_or_create_owned(&labels),
            pending: endpoint.samples_pending.clone(),
        }
    }

    /// The handles of one endpoint; creates (pre-initialises) its series at zero. `url` should
    /// carry no credentials.
    pub(super) fn endpoint(&self, remote_name: &str, url: &str) -> EndpointMetrics {
        let labels = EndpointLabels {
            remote_name: remote_name.to_owned(),
            url: url.to_owned(),
        };
        EndpointMetrics {
            samples: self.samples.get_or_create_owned(&labels),
            samples_failed: self.samples_failed.get_or_create_owned(&labels),
            samples_retried: self.samples_retried.get_or_create_owned(&labels),
            samples_dropped: self.samples_dropped.get_or_create_owned(&labels),
            samples_pending: self.samples_pending.get_or_create_owned(&labels),
            shards: self.shards.get_or_create_owned(&labels),
            sent_batch_duration: self.sent_batch_duration.get_or_create_owned(&labels),
            bytes: self.bytes.get_or_create_owned(&labels),
            highest_sent_timestamp: self.highest_sent_timestamp.get_or_create_owned(&labels),
            highest_sent_ms: std::sync::Arc::new(AtomicI64::new(i64::MIN)),
            queue_capacity: self.queue_capacity.get_or_create_owned(&labels),
        }
    }
}

/// One endpoint's series; cheap to clone (every handle is shared).
#[derive(Clone)]
pub(super) struct EndpointMetrics {
    samples: Counter,
    samples_failed: Counter,
    samples_retried: Counter,
    samples_dropped: Counter,
    samples_pending: Gauge,
    shards: Gauge,
    sent_batch_duration: Histogram,
    bytes: Counter,
    highest_sent_timestamp: Gauge<f64, AtomicU64>,
    /// The gauge's value in milliseconds, so concurrent shards can keep the maximum atomically.
    highest_sent_ms: std::sync::Arc<AtomicI64>,
    queue_capacity: Gauge,
}

impl EndpointMetrics {
    /// Records the sizing chosen at start.
    pub(super) fn set_sizing(&self, shards: usize, capacity: usize) {
        self.shards.set(saturating_i64(shards));
        self.queue_capacity.set(saturating_i64(capacity));
    }

    /// `n` samples are being queued.
    pub(super) fn queued(&self, n: usize) {
        self.samples_pending.inc_by(saturating_i64(n));
    }

    /// `n` samples were dropped by write relabeling.
    pub(super) fn dropped(&self, n: usize) {
        self.samples_dropped.inc_by(n as u64);
    }

    /// `n` pending samples were delivered; `max_timestamp_ms` is the highest among them.
    pub(super) fn sent(&self, n: usize, max_timestamp_ms: i64) {
        self.samples.inc_by(n as u64);
        self.samples_pending.dec_by(saturating_i64(n));
        let previous = self.highest_sent_ms.fetch_max(max_timestamp_ms, Ordering::Relaxed);
        if max_timestamp_ms > previous {
            // Re-read rather than set our own value: a concurrent shard may have raised it since.
            let highest = self.highest_sent_ms.load(Ordering::Relaxed);
            self.highest_sent_timestamp.set(highest as f64 / 1000.0);
        }
    }

    /// `n` samples will never be delivered; `pending` says whether they were counted as pending.
    pub(super) fn failed(&self, n: usize, pending: bool) {
        self.samples_failed.inc_by(n as u64);
        if pending {
            self.samples_pending.dec_by(saturating_i64(n));
        }
    }

    /// `n` pending samples stay on disk when the queue stops; the next run counts them again.
    pub(super) fn left_on_disk(&self, n: usize) {
        self.samples_pending.dec_by(saturating_i64(n));
    }

    /// A batch of `n` samples is about to be sent again.
    pub(super) fn retried(&self, n: usize) {
        self.samples_retried.inc_by(n as u64);
    }

    /// One send attempt of `bytes` bytes took `duration`.
    pub(super) fn attempt(&self, bytes: usize, duration: Duration) {
        self.bytes.inc_by(bytes as u64);
        self.sent_batch_duration.observe(duration.as_secs_f64());
    }
}

/// One endpoint's on-disk queue series, shared by its shards; cheap to clone. Gauges move by
/// deltas, so a queue that stops takes back exactly what it added.
#[derive(Clone)]
pub(crate) struct QueueMetrics {
    /// `disk_usage_bytes`.
    pub(crate) usage: Gauge,
    /// `disk_segments`.
    pub(crate) segments: Gauge,
    /// `disk_written_bytes_total`.
    pub(crate) written: Counter,
    /// `disk_read_bytes_total`.
    pub(crate) read: Counter,
    /// `disk_dropped_samples_total`.
    pub(crate) dropped_samples: Counter,
    /// `disk_dropped_bytes_total`.
    pub(crate) dropped_bytes: Counter,
    /// `disk_corrupt_records_total`.
    pub(crate) corrupt_records: Counter,
    /// The endpoint's `samples_pending`.
    pub(crate) pending: Gauge,
}

impl std::fmt::Debug for QueueMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueMetrics").finish_non_exhaustive()
    }
}

/// `n` as a gauge value, saturating.
pub(crate) fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
