//! The head of one tenant, as Prometheus `tsdb/head.go`: recent samples in memory as XOR chunks
//! per series, every appended request logged to a WAL first, replayed on open, and cut into
//! 2h blocks once it spans 1.5 block durations.
//!
//! - `index`: interned label strings and the series hash index.
//! - `series`: one series with its chunks; chunks are cut at 120 samples and at block boundaries.
//! - `appender`: [`HeadAppender`] checks samples (out of bounds, out of order, duplicates) and
//!   commits them: WAL first, then memory.
//! - `replay`: rebuilds series (same refs) and chunks from the WAL checkpoint and segments.
//! - `compact`: writes the oldest block range (or everything, on flush) as a block, drops it from
//!   memory and truncates the WAL behind a checkpoint.
//! - `metrics`: [`HeadMetrics`], per tenant.
//!
//! A tenant directory holds `wal/`, the finished blocks `<ULID>/` (as Thanos Receive's
//! multi-TSDB), which the shipper uploads, and [`HEAD_STATE_FILE`].

mod appender;
mod compact;
mod index;
mod metrics;
mod replay;
mod series;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use trawl_tsdb::block::BlockError;
use trawl_tsdb::fs::FsError;
use trawl_tsdb::meta::MetaError;
use trawl_tsdb::wal::record::RecordError;
use trawl_tsdb::wal::{DEFAULT_SEGMENT_SIZE, Wal, WalError};

pub use appender::{AppendReport, HeadAppender};
pub use compact::HEAD_STATE_FILE;
pub use metrics::HeadMetrics;

use index::SeriesSet;
use metrics::TenantMetrics;

/// Name of the WAL directory inside a tenant directory (as Prometheus).
pub const WAL_DIR: &str = "wal";

/// Default block duration: 2h in ms, as `--tsdb.block-duration`.
pub const DEFAULT_BLOCK_DURATION_MS: i64 = 2 * 3600 * 1000;

/// One series of a write request, borrowed from the request body. The receiver has validated it:
/// labels sorted by name and unique, `__name__` present, valid names, no empty values.
#[derive(Debug, Clone, Copy)]
pub struct SeriesInput<'a> {
    /// Label pairs `(name, value)` sorted by name.
    pub labels: &'a [(&'a str, &'a str)],
    /// Samples `(timestamp in ms since epoch, value)` in request order.
    pub samples: &'a [(i64, f64)],
}

/// Settings of a head.
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// Block range in ms (`--tsdb.block-duration`, default 2h): blocks cover `[k·d, (k+1)·d)`,
    /// chunks never cross such a boundary, and the head is compacted once it spans 1.5·d.
    /// Must be positive.
    pub block_duration_ms: i64,
    /// WAL segment size in bytes (default 128 MiB, as Prometheus).
    pub wal_segment_size: u64,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            block_duration_ms: DEFAULT_BLOCK_DURATION_MS,
            wal_segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

impl HeadOptions {
    /// Checks the options: block duration and segment size must be positive.
    pub fn validate(&self) -> Result<(), HeadError> {
        if self.block_duration_ms <= 0 {
            return Err(HeadError::InvalidOptions("block duration must be positive"));
        }
        if self.wal_segment_size == 0 {
            return Err(HeadError::InvalidOptions("WAL segment size must be positive"));
        }
        Ok(())
    }
}

/// Errors of the head and the tenant registry.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The options are unusable; says which.
    #[error("invalid head options: {0}")]
    InvalidOptions(&'static str),
    /// A tenant name is not usable as a directory name (see [`crate::tenants::validate_tenant`]);
    /// the receiver answers 400.
    #[error("invalid tenant {tenant:?}: {reason}")]
    InvalidTenant {
        /// The name, cut to 80 characters.
        tenant: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file-system operation on the tenant directory failed. The message ends with the OS
    /// error because warnings log only the message, so it is not repeated as a `source()`.
    #[error("{fs}: {cause}", fs = .0, cause = .0.source)]
    Io(FsError),
    /// Writing, reading or truncating the WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A WAL record that passed its checksum does not decode: the WAL is corrupt.
    #[error("decode WAL record at offset {offset} of {}: {source}", path.display())]
    Record {
        /// Segment or checkpoint file.
        path: PathBuf,
        /// Byte offset of the record's frame.
        offset: u64,
        /// What is wrong with it.
        #[source]
        source: RecordError,
    },
    /// The `meta.json` of a block in the tenant directory cannot be read.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Writing a block failed; the samples stay in the head and the WAL.
    #[error(transparent)]
    Block(#[from] BlockError),
}

impl From<FsError> for HeadError {
    fn from(error: FsError) -> Self {
        HeadError::Io(error)
    }
}

/// Memory held by a head, from its own bookkeeping (allocator overhead not included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Live series.
    pub series: usize,
    /// Distinct interned label strings.
    pub symbols: usize,
    /// Chunks held, open and closed.
    pub chunks: usize,
    /// Encoded chunk bytes.
    pub chunk_bytes: usize,
    /// Everything else: series structs, label ids, chunk lists, hash tables, symbol arena.
    pub overhead_bytes: usize,
}

/// The head of one tenant. `Send + Sync`: appends are serialised by one lock, held by a
/// [`HeadAppender`] from [`Head::appender`] to its commit; compaction takes it only briefly.
#[derive(Debug)]
pub struct Head {
    dir: PathBuf,
    tenant: String,
    opts: HeadOptions,
    state: Mutex<HeadState>,
    /// Serialises [`Head::compact`] and [`Head::flush`].
    compaction: Mutex<()>,
    metrics: TenantMetrics,
}

/// Everything behind the head lock.
#[derive(Debug)]
struct HeadState {
    series: SeriesSet,
    wal: Wal,
    /// Ref of the next new series; refs only grow, so a ref is never reused.
    next_ref: u64,
    /// No sample below this time (ms) is accepted: the end of the newest block written.
    min_valid_time: i64,
    /// Oldest and newest sample times held (ms); `None` when the head is empty.
    min_time: Option<i64>,
    max_time: Option<i64>,
    /// Chunks held, open and closed.
    num_chunks: usize,
    /// Newest sample time (ms) logged into each WAL segment still on disk (`i64::MIN` for none):
    /// a segment whose samples are all below `min_valid_time` can be replaced by a checkpoint.
    segment_max_t: BTreeMap<u32, i64>,
    /// Buffers of the appender, reused across requests.
    scratch: appender::Scratch,
}

impl HeadState {
    /// Records that samples up to `max_t` were logged into the WAL's current segment.
    fn note_logged(&mut self, max_t: i64) {
        let current = self.wal.segment_range().1;
        let entry = self.segment_max_t.entry(current).or_insert(i64::MIN);
        *entry = (*entry).max(max_t);
    }
}

impl Head {
    /// Opens the head of `tenant` in `dir` (`<tsdb.path>/<tenant>`, created if missing): removes
    /// unfinished block directories, takes the minimum valid time from the newest block's
    /// `meta.json`, replays `dir/wal` (checkpoint, then segments) and starts a new WAL segment.
    /// Errors: options, I/O, WAL corruption outside its tail, unreadable block metas.
    pub fn open(dir: &Path, tenant: &str, opts: HeadOptions, metrics: HeadMetrics) -> Result<Head, HeadError> {
        opts.validate()?;
        std::fs::create_dir_all(dir).map_err(FsError::at("create tenant directory", dir))?;
        let min_valid_time = compact::prepare_dir(dir)?;
        let metrics = metrics.tenant(tenant);
        let wal_dir = dir.join(WAL_DIR);
        let replayed = replay::replay(&wal_dir, tenant, &opts, min_valid_time, &metrics)?;
        let wal = Wal::open(&wal_dir, opts.wal_segment_size)?;
        // Segments from before this start are not broken down by time: keep them until
        // everything replayed from them is in a block.
        let (first, current) = wal.segment_range();
        let segment_max_t = (first..=current)
            .map(|s| (s, if s == current { i64::MIN } else { replayed.max_t_seen }))
            .collect();
        let state = HeadState {
            next_ref: replayed.max_ref.saturating_add(1),
            min_valid_time,
            min_time: replayed.min_time,
            max_time: replayed.max_time,
            num_chunks: replayed.num_chunks,
            series: replayed.series,
            wal,
            segment_max_t,
            scratch: appender::Scratch::default(),
        };
        metrics.series.set(state.series.len() as i64);
        metrics.chunks.set(state.num_chunks as i64);
        metrics.wal_size.set(state.wal.size_bytes() as i64);
        Ok(Head {
            dir: dir.to_owned(),
            tenant: tenant.to_owned(),
            opts,
            state: Mutex::new(state),
            compaction: Mutex::new(()),
            metrics,
        })
    }

    /// An appender holding the head lock until [`HeadAppender::commit`] or drop (which rolls
    /// back). Appends of one head are serialised; keep the appender for one request only.
    pub fn appender(&self) -> HeadAppender<'_> {
        HeadAppender::new(self, self.lock())
    }

    /// Time of the oldest sample held (ms), if any.
    pub fn min_time(&self) -> Option<i64> {
        self.lock().min_time
    }

    /// Time of the newest sample held (ms), if any.
    pub fn max_time(&self) -> Option<i64> {
        self.lock().max_time
    }

    /// No sample older than this (ms) is accepted: the end of the newest block written from this
    /// head, or `i64::MIN` before the first. Appends are further bounded by
    /// `max_time - block_duration / 2`.
    pub fn min_valid_time(&self) -> i64 {
        self.lock().min_valid_time
    }

    /// Number of series held.
    pub fn num_series(&self) -> usize {
        self.lock().series.len()
    }

    /// The tenant directory: blocks are written into `<dir>/<ULID>/`, the WAL lives in
    /// `<dir>/wal/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tenant this head belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The options the head was opened with.
    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    /// Fsyncs the WAL, so every committed request survives a power loss (commits only reach the
    /// kernel); call on shutdown.
    pub fn sync_wal(&self) -> Result<(), HeadError> {
        Ok(self.lock().wal.sync()?)
    }

    /// Memory held by the head (walks every series; for tests and diagnostics).
    pub fn memory(&self) -> MemoryStats {
        let st = self.lock();
        let mut m = MemoryStats {
            series: st.series.len(),
            symbols: st.series.symbols.len(),
            chunks: st.num_chunks,
            overhead_bytes: st.series.heap_bytes(),
            ..MemoryStats::default()
        };
        for (_, s) in st.series.iter() {
            let (chunk_bytes, other) = s.heap_bytes();
            m.chunk_bytes += chunk_bytes;
            m.overhead_bytes += other;
        }
        m
    }

    fn lock(&self) -> MutexGuard<'_, HeadState> {
        // Nothing panics under the lock by design; were it to, each mutation is complete per
        // series, so the state stays usable and the lock is taken over.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
