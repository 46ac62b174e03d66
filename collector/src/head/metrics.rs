//! Head metrics `trawl_collector_head_*`, `trawl_collector_wal_*` and
//! `trawl_collector_blocks_written_total`, one series per tenant (label `tenant`), after
//! Prometheus `tsdb/head.go` `headMetrics` (`prometheus_tsdb_head_*`) and Thanos Receive's
//! per-tenant TSDB metrics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

/// Identifies a tenant's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// The head metric families of every tenant, registered once per registry and handed to each
/// [`Head`](super::Head). Cheap to clone (the families are shared). `Default` gives families
/// registered nowhere (for tests).
#[derive(Clone, Default)]
pub struct HeadMetrics {
    samples_appended: Family<TenantLabels, Counter>,
    series: Family<TenantLabels, Gauge>,
    series_created: Family<TenantLabels, Counter>,
    series_removed: Family<TenantLabels, Counter>,
    chunks: Family<TenantLabels, Gauge>,
    wal_size: Family<TenantLabels, Gauge>,
    wal_replay_duration: Family<TenantLabels, Gauge<f64, AtomicU64>>,
    blocks_written: Family<TenantLabels, Counter>,
    compaction_failures: Family<TenantLabels, Counter>,
}

impl std::fmt::Debug for HeadMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadMetrics").finish_non_exhaustive()
    }
}

impl HeadMetrics {
    /// Registers the families into `registry` under the `trawl_collector` prefix: call once per
    /// registry. `head_samples_appended_total` is what `bench/receivers.sh` reads.
    pub fn new(registry: &mut Registry) -> Self {
        let m = HeadMetrics::default();
        let r = registry.sub_registry_with_prefix("trawl_collector");
        r.register(
            "head_samples_appended",
            "Samples stored in the head (written to the WAL, then to memory); exact duplicates are not counted.",
            m.samples_appended.clone(),
        );
        r.register("head_series", "Series held in the head.", m.series.clone());
        r.register(
            "head_series_created",
            "Series created in the head.",
            m.series_created.clone(),
        );
        r.register(
            "head_series_removed",
            "Series dropped from the head once all their samples were written to blocks.",
            m.series_removed.clone(),
        );
        r.register(
            "head_chunks",
            "XOR chunks held in the head, open and closed.",
            m.chunks.clone(),
        );
        r.register_with_unit(
            "wal_size",
            "Size of the WAL segments on disk (checkpoint excluded).",
            Unit::Bytes,
            m.wal_size.clone(),
        );
        r.register_with_unit(
            "wal_replay_duration",
            "Time the last WAL replay took when the head was opened.",
            Unit::Seconds,
            m.wal_replay_duration.clone(),
        );
        r.register(
            "blocks_written",
            "Blocks written from the head.",
            m.blocks_written.clone(),
        );
        r.register(
            "compaction_failures",
            "Failed attempts to write a block from the head or to truncate the WAL after it.",
            m.compaction_failures.clone(),
        );
        m
    }

    /// The handles of one tenant; creates its series at zero.
    pub(super) fn tenant(&self, tenant: &str) -> TenantMetrics {
        let l = TenantLabels {
            tenant: tenant.to_owned(),
        };
        TenantMetrics {
            samples_appended: self.samples_appended.get_or_create_owned(&l),
            series: self.series.get_or_create_owned(&l),
            series_created: self.series_created.get_or_create_owned(&l),
            series_removed: self.series_removed.get_or_create_owned(&l),
            chunks: self.chunks.get_or_create_owned(&l),
            wal_size: self.wal_size.get_or_create_owned(&l),
            wal_replay_duration: self.wal_replay_duration.get_or_create_owned(&l),
            blocks_written: self.blocks_written.get_or_create_owned(&l),
            compaction_failures: self.compaction_failures.get_or_create_owned(&l),
        }
    }
}

/// One tenant's metric handles (shared atomics; updating them takes no lock).
#[derive(Clone, Debug)]
pub(super) struct TenantMetrics {
    pub(super) samples_appended: Counter,
    pub(super) series: Gauge,
    pub(super) series_created: Counter,
    pub(super) series_removed: Counter,
    pub(super) chunks: Gauge,
    pub(super) wal_size: Gauge,
    pub(super) wal_replay_duration: Gauge<f64, AtomicU64>,
    pub(super) blocks_written: Counter,
    pub(super) compaction_failures: Counter,
}
