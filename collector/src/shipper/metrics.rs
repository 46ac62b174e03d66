//! Shipper metrics, named like Thanos `pkg/shipper/shipper.go`'s `thanos_shipper_*` under
//! `trawl_collector_shipper_`. All tenants' shippers share one [`ShipperMetrics`], so the series
//! carry no labels: counters add up, and the lag is the worst tenant's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// The `trawl_collector_shipper_*` metrics:
///
/// | name | meaning |
/// |---|---|
/// | `uploads_total` | blocks uploaded (not counting blocks found already in the bucket) |
/// | `upload_failures_total` | blocks whose upload failed after every retry (each failed sync counts once) |
/// | `uploaded_bytes_total` | bytes of block files uploaded (a retried file counts once) |
/// | `last_upload_timestamp_seconds` | when the last block upload finished, seconds since the epoch; 0 before the first |
/// | `upload_lag_seconds` | age of the oldest block that is finished (has `meta.json`) but not in the bucket yet, measured from its creation time (the ULID's timestamp) at the end of each sync; 0 when every block is uploaded. The maximum over all tenants. |
///
/// Cheap to clone; clones share the series.
#[derive(Clone, Debug, Default)]
pub struct ShipperMetrics {
    pub(super) uploads: Counter,
    pub(super) upload_failures: Counter,
    pub(super) uploaded_bytes: Counter,
    pub(super) last_upload_timestamp: Gauge<f64, AtomicU64>,
    upload_lag: Gauge<f64, AtomicU64>,
    /// Lag of each shipper (by tenant directory), so the gauge can show the maximum.
    lags: Arc<Mutex<HashMap<PathBuf, f64>>>,
}

impl ShipperMetrics {
    /// Registers the metrics into `registry` under `trawl_collector_shipper`; call once per
    /// registry and share the result between shippers.
    pub fn new(registry: &mut Registry) -> ShipperMetrics {
        let metrics = ShipperMetrics::default();
        let r = registry.sub_registry_with_prefix("trawl_collector_shipper");
        r.register("uploads", "Blocks uploaded to the bucket.", metrics.uploads.clone());
        r.register(
            "upload_failures",
            "Block uploads that failed after every retry; the next sync tries again.",
            metrics.upload_failures.clone(),
        );
        r.register_with_unit(
            "uploaded",
            "Bytes of block files uploaded.",
            Unit::Bytes,
            metrics.uploaded_bytes.clone(),
        );
        r.register_with_unit(
            "last_upload_timestamp",
            "When the last block upload finished, in seconds since the epoch.",
            Unit::Seconds,
            metrics.last_upload_timestamp.clone(),
        );
        r.register_with_unit(
            "upload_lag",
            "Age of the oldest finished block not yet in the bucket, from its ULID time; 0 when all are uploaded.",
            Unit::Seconds,
            metrics.upload_lag.clone(),
        );
        metrics
    }

    /// Records the lag of the shipper of `dir` and shows the maximum over all shippers.
    pub(super) fn set_lag(&self, dir: &Path, seconds: f64) {
        let mut lags = self.lags.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        lags.insert(dir.to_path_buf(), seconds);
        self.upload_lag.set(lags.values().copied().fold(0.0, f64::max));
    }
}
