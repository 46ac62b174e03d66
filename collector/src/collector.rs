//! The running collector: replays every tenant's WAL, loads the hashrings (when replicating)
//! and keeps them reloaded, serves the write routes and its own endpoints, cuts a block whenever
//! a head spans 1.5× the block duration and ships it; on shutdown it refuses new writes, drains
//! the ones in flight, flushes every head into blocks and uploads them before returning.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use trawl_tsdb::meta::ThanosMeta;

use crate::external_labels::TENANT_LABEL;
use crate::hashring::{HashringError, HashringSettings, HashringWatcher};
use crate::head::{Head, HeadError, HeadOptions};
use crate::receive::{self, ReceiveConfig, Receiver};
use crate::replicate::{ReplicateError, ReplicationConfig, Replicator};
use crate::shipper::{Shipper, ShipperError, ShipperMetrics, open_bucket};
use crate::tenants::Tenants;
use crate::web::{self, WebState};

/// How often heads are checked for a block to cut and blocks are shipped, as Prometheus checks
/// for compaction once a minute.
pub const COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

/// How a collector runs; `main.rs` builds it from the command line.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// `--tsdb.path`: one directory per tenant (WAL and blocks before upload).
    pub tsdb_path: PathBuf,
    /// `--tsdb.block-duration`: the time range of each block.
    pub block_duration: Duration,
    /// `--tsdb.retention`: how long uploaded blocks stay on local disk.
    pub retention: Duration,
    /// `--objstore.config-file`; `None` is the filesystem bucket `<tsdb.path>/bucket`.
    pub objstore_config: Option<PathBuf>,
    /// `--label`: external labels of every block (with `tenant_id` added per tenant).
    pub external_labels: BTreeMap<String, String>,
    /// `--receive.*`: tenant header, default tenant and limits.
    pub receive: ReceiveConfig,
    /// `--receive.hashrings-file` and the other replication flags; `None` stores every series
    /// locally.
    pub replication: Option<ReplicationOptions>,
}

/// How a collector shares series with its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationOptions {
    /// The hashrings file, default algorithm, replication factor and refresh interval.
    pub hashrings: HashringSettings,
    /// This collector's endpoint and the forward timeout.
    pub replication: ReplicationConfig,
}

/// Why a collector could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The receive settings are unusable.
    #[error("invalid receive settings")]
    Config(#[from] receive::config::ConfigError),
    /// The hashrings file is unreadable or refused.
    #[error("--receive.hashrings-file")]
    Hashring(#[from] HashringError),
    /// Replication could not be set up.
    #[error("replication")]
    Replicate(#[from] ReplicateError),
    /// A head could not be opened (its WAL is corrupt or unreadable) or flushed.
    #[error("tsdb")]
    Head(#[from] HeadError),
    /// The bucket could not be opened from its config.
    #[error("bucket")]
    Bucket(#[from] ShipperError),
    /// The HTTP server failed.
    #[error("serve HTTP")]
    Serve(#[source] std::io::Error),
    /// A blocking task (WAL replay, block writing) panicked.
    #[error("blocking task")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs a collector on the already bound `listener` until `shutdown` is cancelled, then flushes
/// and uploads every head before returning.
///
/// Errors: see [`CollectorError`]; a failed upload at shutdown is logged, not returned (the
/// blocks stay on disk and are uploaded by the next start).
pub async fn run(
    opts: CollectorOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), CollectorError> {
    opts.receive.validate()?;
    let bucket = open_bucket(opts.objstore_config.as_deref(), &opts.tsdb_path.join("bucket"))?;
    let head_options = HeadOptions {
        block_duration_ms: opts.block_duration.as_millis() as i64,
        ..HeadOptions::default()
    };

    // Replay every tenant's WAL before accepting writes.
    let tsdb_path = opts.tsdb_path.clone();
    let (tenants, mut registry) = tokio::task::spawn_blocking(move || {
        let mut registry = Registry::default();
        Tenants::open(&tsdb_path, head_options, &mut registry).map(|t| (t, registry))
    })
    .await??;
    let tenants = Arc::new(tenants);
    let blocks = Blocks {
        tenants: tenants.clone(),
        shippers: std::sync::Mutex::new(HashMap::new()),
        bucket,
        retention: opts.retention,
        shipper_metrics: ShipperMetrics::new(&mut registry),
        external_labels: opts.external_labels,
    };
    let tenant_header = opts.receive.tenant_header.clone();
    let mut receiver = Receiver::new(tenants, opts.receive, &mut registry);
    if let Some(replication) = opts.replication {
        // Routing: the rings in force, reloaded on change until shutdown.
        let hashrings = Arc::new(HashringWatcher::load(replication.hashrings, &mut registry)?);
        let replicator = Replicator::new(
            hashrings.clone(),
            replication.replication,
            &tenant_header,
            &mut registry,
        )?;
        receiver = receiver.with_replicator(Arc::new(replicator));
        tokio::spawn(hashrings.run(shutdown.clone()));
    }
    let receiver = Arc::new(receiver);
    let state = WebState {
        registry: Arc::new(registry),
        receiver: receiver.clone(),
    };
    let app = receive::router(receiver.clone()).merge(web::router(state));
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    info!(message = "Collector is ready.", tsdb_path = %opts.tsdb_path.display());

    // Cut and ship blocks once a minute until shutdown; blocks left from a previous run go first.
    let mut tick = tokio::time::interval(COMPACTION_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => blocks.compact_and_ship(false).await,
        }
    }

    // Refuse new writes (senders keep them and retry), let the ones in flight finish, then turn
    // every head into blocks and upload them.
    receiver.set_ready(false);
    server.await?.map_err(CollectorError::Serve)?;
    info!(message = "Flushing the heads into blocks.");
    blocks.compact_and_ship(true).await;
    info!(message = "Collector stopped.");
    Ok(())
}

/// Block cutting and shipping for every tenant.
struct Blocks {
    tenants: Arc<Tenants>,
    shippers: std::sync::Mutex<HashMap<String, Arc<Shipper>>>,
    bucket: Arc<dyn ObjectStore>,
    retention: Duration,
    shipper_metrics: ShipperMetrics,
    external_labels: BTreeMap<String, String>,
}

// === impl Blocks ===

impl Blocks {
    /// For every tenant: cut the blocks that are due (`flush`: the whole head), then upload what
    /// is finished. Failures are logged; the next pass retries.
    async fn compact_and_ship(&self, flush: bool) {
        for (tenant, head) in self.tenants.all() {
            let thanos = self.thanos_meta(&tenant);
            let shipper = self.shipper(&tenant, &head);
            let cut = tokio::task::spawn_blocking(move || cut_blocks(&head, thanos, flush)).await;
            match cut {
                Ok(Ok(())) => {}
                Ok(Err(error)) => warn!(message = "Cutting a block failed; will retry.", tenant, %error),
                Err(error) => warn!(message = "Cutting a block panicked.", tenant, %error),
            }
            if let Err(error) = shipper.sync().await {
                warn!(message = "Shipping blocks failed; will retry.", tenant, %error);
            }
        }
    }

    /// The tenant's shipper, created on first use.
    fn shipper(&self, tenant: &str, head: &Head) -> Arc<Shipper> {
        let mut shippers = self.shippers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shippers
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                Arc::new(Shipper::new(
                    self.bucket.clone(),
                    head.dir().to_owned(),
                    self.retention,
                    self.shipper_metrics.clone(),
                ))
            })
            .clone()
    }

    /// The Thanos section of the tenant's blocks: the external labels plus `tenant_id`.
    fn thanos_meta(&self, tenant: &str) -> ThanosMeta {
        let mut labels = self.external_labels.clone();
        labels.insert(TENANT_LABEL.to_owned(), tenant.to_owned());
        ThanosMeta::receive(labels)
    }
}

/// Cuts the blocks that are due, or on `flush` the whole head (the head logs each block).
fn cut_blocks(head: &Head, thanos: ThanosMeta, flush: bool) -> Result<(), HeadError> {
    if flush {
        head.flush(thanos)?;
    } else {
        head.compact(thanos)?;
    }
    Ok(())
}
