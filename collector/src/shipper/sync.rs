//! [`Shipper::sync`]: one pass over a tenant directory, as Thanos `pkg/shipper/shipper.go`
//! `Sync` — find finished blocks, upload the ones not in the bucket yet oldest first, record
//! them in `thanos.shipper.json`, then apply the local retention.
//!
//! A tenant directory holds block directories named by ULID (written by the head as
//! `<ULID>.tmp-for-creation/` and renamed once complete, `meta.json` last), the `wal/`, and
//! `thanos.shipper.json`. A ULID directory without `meta.json` is unfinished and ignored. One
//! whose `meta.json` is unreadable, names another ULID, or lacks `index` or `chunks/` is
//! reported as broken and left alone (never uploaded, never deleted).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use trawl_process::error_chain;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tracing::{debug, error, info, warn};
use trawl_tsdb::fs::{FsError, sync_dir};
use trawl_tsdb::meta::{BlockMeta, META_FILENAME};
use ulid::Ulid;

use super::state::ShipperState;
use super::upload::{self, Backoff, CHUNKS_DIRNAME};
use super::{ShipperError, ShipperMetrics};

/// Suffix of a block directory being deleted (renamed first, so a crash mid-delete never
/// leaves a half-deleted directory that looks like a block), as Prometheus `tsdb/db.go`.
const DELETION_SUFFIX: &str = ".tmp-for-deletion";

/// Uploads the finished blocks of one tenant directory to the bucket and applies the local
/// retention. `Send + Sync`; concurrent [`Shipper::sync`] calls run one after the other.
#[derive(Debug)]
pub struct Shipper {
    bucket: Arc<dyn ObjectStore>,
    dir: PathBuf,
    retention: Duration,
    metrics: ShipperMetrics,
    backoff: Backoff,
    running: tokio::sync::Mutex<()>,
}

/// What one [`Shipper::sync`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    /// Blocks uploaded, in upload order (oldest first).
    pub uploaded: Vec<Ulid>,
    /// Blocks whose `meta.json` was already in the bucket (e.g. `thanos.shipper.json` was
    /// lost): recorded, not uploaded again.
    pub found_in_bucket: Vec<Ulid>,
    /// Bytes of the files uploaded.
    pub uploaded_bytes: u64,
    /// Blocks without samples: not uploaded (as Thanos), deleted after the retention.
    pub skipped_empty: Vec<Ulid>,
    /// Block directories left alone because they are broken (see the module docs).
    pub broken: Vec<PathBuf>,
    /// Local blocks deleted by the retention.
    pub deleted: Vec<Ulid>,
}

/// A finished block directory.
#[derive(Debug)]
struct LocalBlock {
    dir: PathBuf,
    meta: BlockMeta,
    /// Files in upload order, see [`upload::block_files`].
    files: Vec<String>,
}

impl LocalBlock {
    fn is_empty(&self) -> bool {
        self.meta.stats.num_samples == 0
    }
}

/// What the scan of a tenant directory found.
struct Scan {
    /// Finished blocks by (minTime, ULID).
    blocks: Vec<LocalBlock>,
    /// Broken block directories with their ULID (for the lag).
    broken: Vec<(Ulid, PathBuf)>,
    /// Blocks recorded as uploaded.
    recorded: HashSet<Ulid>,
}

// === impl Shipper ===

impl Shipper {
    /// A shipper for `blocks_dir` (a tenant directory `<tsdb.path>/<tenant>`) that uploads into
    /// `bucket` and deletes uploaded blocks whose maxTime is older than now − `retention`
    /// (`--tsdb.retention`, default 6h). Uses [`Backoff::default`].
    pub fn new(
        bucket: Arc<dyn ObjectStore>,
        blocks_dir: PathBuf,
        retention: Duration,
        metrics: ShipperMetrics,
    ) -> Self {
        Shipper {
            bucket,
            dir: blocks_dir,
            retention,
            metrics,
            backoff: Backoff::default(),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Replaces the retry policy of file uploads and bucket checks.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The tenant directory this shipper watches.
    pub fn blocks_dir(&self) -> &Path {
        &self.dir
    }

    /// One idempotent pass: uploads every finished, non-empty block that is neither recorded in
    /// `thanos.shipper.json` nor already in the bucket, oldest (minTime, then ULID) first; each
    /// as `chunks/…`, `index`, `meta.json` last. The record is rewritten atomically after each
    /// upload. Then deletes uploaded (or empty) blocks past the retention and updates the lag.
    ///
    /// Errors: listing the directory fails ([`ShipperError::Io`]), or a block could not be
    /// uploaded after every retry ([`ShipperError::Block`]): later blocks wait, so blocks keep
    /// reaching the bucket in order, and the next sync starts with that block. The retention
    /// still runs on failure; it never deletes a block that is not in the bucket.
    pub async fn sync(&self) -> Result<SyncReport, ShipperError> {
        let _running = self.running.lock().await;
        // Scan: finished blocks oldest first, broken ones, and the record of uploads.
        let dir = self.dir.clone();
        let scan = blocking(&self.dir, move || scan(&dir)).await?;
        let mut report = SyncReport {
            broken: scan.broken.iter().map(|(_, dir)| dir.clone()).collect(),
            ..SyncReport::default()
        };
        // Upload what is not in the bucket yet, stopping at the first block that fails.
        let (mut done, failure) = self.upload_pending(&scan, &mut report).await;
        // Delete local copies past the retention, whatever the uploads did.
        self.apply_retention(&scan.blocks, &mut done, &mut report).await;
        self.update_lag(&scan, &done);
        match failure {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Uploads the blocks not recorded, in order, recording each; returns the blocks now in the
    /// bucket and the error that stopped the uploads, if any. Recorded blocks gone locally drop
    /// out of the record, as Thanos rebuilds it.
    async fn upload_pending(&self, scan: &Scan, report: &mut SyncReport) -> (HashSet<Ulid>, Option<ShipperError>) {
        let local: HashSet<Ulid> = scan.blocks.iter().map(|b| b.meta.ulid).collect();
        let mut done: HashSet<Ulid> = scan.recorded.intersection(&local).copied().collect();
        for block in &scan.blocks {
            let id = block.meta.ulid;
            if done.contains(&id) {
                continue;
            }
            if block.is_empty() {
                debug!(message = "Skipping empty block.", block = %id);
                report.skipped_empty.push(id);
                continue;
            }
            match self.ship(block).await {
                Ok(Some(bytes)) => {
                    report.uploaded.push(id);
                    report.uploaded_bytes += bytes;
                }
                Ok(None) => report.found_in_bucket.push(id),
                Err(error) => {
                    self.metrics.upload_failures.inc();
                    error!(message = "Block upload failed; the next sync retries it.", block = %id, %error);
                    return (done, Some(error));
                }
            }
            done.insert(id);
            self.record(&scan.blocks, &done).await;
        }
        (done, None)
    }

    /// Deletes blocks whose maxTime is before now − retention, if they are in the bucket (`done`)
    /// or have no samples; a failed deletion is logged and retried by the next sync.
    async fn apply_retention(&self, blocks: &[LocalBlock], done: &mut HashSet<Ulid>, report: &mut SyncReport) {
        let retention_ms = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = unix_ms(SystemTime::now()).saturating_sub(retention_ms);
        for block in blocks {
            let id = block.meta.ulid;
            let shipped = done.contains(&id) || block.is_empty();
            if !shipped || block.meta.max_time >= cutoff_ms {
                continue;
            }
            let dir = block.dir.clone();
            match blocking(&block.dir, move || delete_block(&dir)).await {
                Ok(()) => {
                    info!(message = "Deleted local block past retention.", block = %id, max_time = block.meta.max_time);
                    done.remove(&id);
                    report.deleted.push(id);
                }
                Err(error) => warn!(message = "Deleting local block failed; will retry.", block = %id, %error),
            }
        }
        if !report.deleted.is_empty() {
            self.record(blocks, done).await;
        }
    }

    /// Sets the upload lag: age of the oldest finished block not in the bucket, from its ULID
    /// time; broken blocks count (they need a human), empty ones do not.
    fn update_lag(&self, scan: &Scan, done: &HashSet<Ulid>) {
        let oldest_pending = scan
            .blocks
            .iter()
            .filter(|b| !done.contains(&b.meta.ulid) && !b.is_empty())
            .map(|b| b.meta.ulid)
            .chain(scan.broken.iter().map(|(id, _)| *id))
            .map(|id| i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX))
            .min();
        let now_ms = unix_ms(SystemTime::now());
        let lag_seconds = oldest_pending.map_or(0.0, |created_ms| {
            now_ms.saturating_sub(created_ms).max(0) as f64 / 1000.0
        });
        self.metrics.set_lag(&self.dir, lag_seconds);
    }

    /// Uploads `block` unless its `meta.json` is already in the bucket. `Some(bytes)` when
    /// uploaded, `None` when found.
    async fn ship(&self, block: &LocalBlock) -> Result<Option<u64>, ShipperError> {
        let id = block.meta.ulid;
        let meta_object = format!("{id}/{META_FILENAME}");
        let location = ObjectPath::from(meta_object.as_str());
        let in_bucket = self
            .backoff
            .retry(&meta_object, || async {
                match self.bucket.head(&location).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(source) => Err(ShipperError::Bucket {
                        op: "check",
                        object: meta_object.clone(),
                        source,
                    }),
                }
            })
            .await
            .map_err(|(attempts, source)| ShipperError::Block {
                block: id,
                attempts,
                source: Box::new(source),
            })?;
        if in_bucket {
            info!(message = "Block already in the bucket; recorded as uploaded.", block = %id);
            return Ok(None);
        }
        info!(message = "Uploading block.", block = %id, min_time = block.meta.min_time, max_time = block.meta.max_time);
        let started = Instant::now();
        let bytes = upload::upload_block(&*self.bucket, &block.dir, id, &block.files, &self.backoff).await?;
        self.metrics.uploads.inc();
        self.metrics.uploaded_bytes.inc_by(bytes);
        self.metrics
            .last_upload_timestamp
            .set(unix_ms(SystemTime::now()) as f64 / 1000.0);
        info!(message = "Uploaded block.", block = %id, bytes, duration = ?started.elapsed());
        Ok(Some(bytes))
    }

    /// Rewrites `thanos.shipper.json` with the `done` blocks in block order. A failed write is
    /// logged: the record only saves bucket lookups (as Thanos).
    async fn record(&self, blocks: &[LocalBlock], done: &HashSet<Ulid>) {
        let mut state = ShipperState::new();
        state.uploaded = blocks
            .iter()
            .map(|b| b.meta.ulid)
            .filter(|id| done.contains(id))
            .collect();
        let dir = self.dir.clone();
        if let Err(error) = blocking(&self.dir, move || state.write(&dir)).await {
            warn!(message = "Writing the shipper record failed.", dir = %self.dir.display(), %error);
        }
    }
}

/// Lists `dir`: finished blocks sorted by (minTime, ULID), broken ones, and the record (an
/// unreadable record is logged and treated as empty). Removes leftovers of interrupted
/// deletions. A missing `dir` has no blocks.
fn scan(dir: &Path) -> Result<Scan, ShipperError> {
    let recorded = match ShipperState::read(dir) {
        Ok(state) => state.unwrap_or_default().uploaded.into_iter().collect(),
        Err(error) => {
            warn!(message = "Reading the shipper record failed; starting from an empty one.", %error);
            HashSet::new()
        }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Scan {
                blocks: Vec::new(),
                broken: Vec::new(),
                recorded,
            });
        }
        Err(e) => return Err(FsError::at("list", dir)(e).into()),
    };
    let mut blocks = Vec::new();
    let mut broken = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FsError::at("list", dir))?;
        // Symlinks and files are never blocks; `file_type` does not follow links.
        if !entry.file_type().map_err(FsError::at("list", dir))?.is_dir() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        if name.ends_with(DELETION_SUFFIX) {
            if let Err(error) = std::fs::remove_dir_all(&path) {
                warn!(message = "Removing an interrupted deletion failed.", dir = %path.display(), %error);
            }
            continue;
        }
        // Only canonical ULID names: skips `wal`, `*.tmp-for-creation` and lowercase look-alikes.
        let Some(id) = Ulid::from_string(&name).ok().filter(|id| id.to_string() == name) else {
            continue;
        };
        if !path.join(META_FILENAME).exists() {
            debug!(message = "Skipping unfinished block directory.", dir = %path.display());
            continue;
        }
        match read_block(&path, id) {
            Ok(block) => blocks.push(block),
            Err(reason) => {
                error!(message = "Skipping broken block directory.", dir = %path.display(), %reason);
                broken.push((id, path));
            }
        }
    }
    blocks.sort_by_key(|b| (b.meta.min_time, b.meta.ulid));
    Ok(Scan {
        blocks,
        broken,
        recorded,
    })
}

/// Reads a finished block directory named `id`; the error says why it is broken.
fn read_block(dir: &Path, id: Ulid) -> Result<LocalBlock, String> {
    let meta = BlockMeta::read(dir).map_err(|e| error_chain(&e))?;
    if meta.ulid != id {
        return Err(format!("meta.json names block {}", meta.ulid));
    }
    if !dir.join(CHUNKS_DIRNAME).is_dir() {
        return Err(format!("no {CHUNKS_DIRNAME}/ directory"));
    }
    let files = upload::block_files(dir).map_err(|e| e.to_string())?;
    for rel in &files {
        if !dir.join(rel).is_file() {
            return Err(format!("{rel} is missing or not a file"));
        }
    }
    Ok(LocalBlock {
        dir: dir.to_path_buf(),
        meta,
        files,
    })
}

/// Deletes a block directory: rename to `<ULID>.tmp-for-deletion`, fsync the parent, remove.
fn delete_block(dir: &Path) -> Result<(), ShipperError> {
    let mut doomed = dir.as_os_str().to_owned();
    doomed.push(DELETION_SUFFIX);
    let doomed = PathBuf::from(doomed);
    std::fs::rename(dir, &doomed).map_err(FsError::at("rename for deletion", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent).map_err(FsError::at("sync parent of", dir))?;
    }
    std::fs::remove_dir_all(&doomed).map_err(FsError::at("delete", dir))?;
    Ok(())
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T, F>(path: &Path, f: F) -> Result<T, ShipperError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ShipperError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|join_error| Err(FsError::at("background task on", path)(io::Error::other(join_error)).into()))
}

/// Milliseconds since the epoch (0 before it).
fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
