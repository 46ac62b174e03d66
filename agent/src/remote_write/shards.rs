//! Shards of one endpoint: each is an on-disk queue ([`ShardQueue`]) and a loop that takes
//! batches of at most `max_samples_per_send` from it, hands them to the [`Sender`] and settles
//! them. A series always maps to the same shard (by its hash), so its samples are sent in
//! order. The shard count is fixed for the endpoint's lifetime; see [`super::queue_manager`].
//!
//! One task per endpoint takes the directory lock (a previous queue of the same endpoint may
//! still be shutting down after a reload), opens the shard queues, then runs every shard loop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{error, info, warn};

use super::disk::{self, DirLock, QueueOptions, ShardQueue};
use super::metrics::{EndpointMetrics, QueueMetrics};
use super::queue_manager::Sender;

/// How often a queue waiting for its directory lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);
/// Delay before opening a queue again after an I/O error.
const OPEN_RETRY: Duration = Duration::from_secs(1);

/// The shard queues of one endpoint, once opened.
pub(super) struct Shards {
    count: usize,
    dir: PathBuf,
    /// `count` writable queues, then leftover read-only ones.
    opened: OnceLock<Vec<Arc<ShardQueue>>>,
    /// Wakes appends waiting for `opened`, and on close.
    ready: Notify,
    closed: AtomicBool,
}

impl Shards {
    /// `count` shards (at least one) whose queues live in the endpoint directory `dir`.
    pub(super) fn new(count: usize, dir: PathBuf) -> Shards {
        Shards {
            count: count.max(1),
            dir,
            opened: OnceLock::new(),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Number of shards.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// The writable shard queues, in shard order, once open; `None` when closed before.
    pub(super) async fn queues(&self) -> Option<&[Arc<ShardQueue>]> {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if let Some(queues) = self.opened.get() {
                return Some(&queues[..self.count.min(queues.len())]);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            ready.await;
        }
    }

    /// Stops accepting samples; the shard loops send what is queued, then end.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.close_queues();
        self.ready.notify_waiters();
    }

    fn close_queues(&self) {
        self.opened.get().into_iter().flatten().for_each(|q| q.close());
    }

    /// Releases the queues once their loops ended: what is left stays on disk and leaves
    /// `samples_pending` (logged). Only the first call after the loops ended does anything.
    pub(super) fn release(&self, metrics: &EndpointMetrics) {
        let left: usize = self.opened.get().into_iter().flatten().map(|q| q.release()).sum();
        if left > 0 {
            metrics.left_on_disk(left);
            info!(
                message = "Remote write stopped with samples queued on disk; they are sent after the next start.",
                dir = %self.dir.display(),
                samples = left,
            );
        }
    }
}

/// The endpoint's task: lock and open the queue directory, run every shard until closed and
/// drained, then release the queues (leftover shard directories that drained are deleted).
pub(super) async fn run(shards: Arc<Shards>, sender: Arc<Sender>, options: QueueOptions, metrics: QueueMetrics) {
    // Held until this task ends or is aborted.
    let Some(_lock) = lock(&shards).await else {
        return;
    };
    let Some(queues) = open(&shards, &options, &metrics).await else {
        return;
    };
    if shards.opened.set(queues).is_err() {
        return;
    }
    shards.ready.notify_waiters();
    if shards.closed.load(Ordering::SeqCst) {
        shards.close_queues();
    }
    let queues = shards.opened.get().map(Vec::as_slice).unwrap_or_default();
    let count = shards.count;
    let loops = queues.iter().enumerate().map(|(index, queue)| {
        let sender = Arc::clone(&sender);
        async move {
            shard_loop(Arc::clone(queue), sender).await;
            if index >= count && queue.is_drained() {
                remove_leftover(queue);
            }
        }
    });
    futures::future::join_all(loops).await;
    shards.release(sender.metrics());
}

/// Deletes a drained leftover shard directory (from a configuration with more shards).
fn remove_leftover(queue: &ShardQueue) {
    queue.release();
    match std::fs::remove_dir_all(queue.dir()) {
        Ok(()) => info!(message = "Drained and removed a leftover queue shard.", dir = %queue.dir().display()),
        Err(error) => warn!(message = "Cannot delete a drained queue directory.", dir = %queue.dir().display(), %error),
    }
}

/// Takes the endpoint directory's lock, waiting while another queue holds it; `None` when
/// closed meanwhile.
async fn lock(shards: &Shards) -> Option<DirLock> {
    let mut logged = false;
    loop {
        if shards.closed.load(Ordering::SeqCst) {
            return None;
        }
        match DirLock::try_lock(&shards.dir) {
            Ok(Some(lock)) => return Some(lock),
            Ok(None) => {
                if !logged {
                    info!(message = "Waiting for the previous remote write queue to release its directory.", dir = %shards.dir.display());
                    logged = true;
                }
                tokio::time::sleep(LOCK_RETRY).await;
            }
            Err(error) => {
                error!(message = "Cannot lock the remote write queue directory; will retry.", %error);
                tokio::time::sleep(OPEN_RETRY).await;
            }
        }
    }
}

/// Opens the shard queues (off the async workers), retrying after errors; `None` when closed
/// meanwhile.
async fn open(shards: &Shards, options: &QueueOptions, metrics: &QueueMetrics) -> Option<Vec<Arc<ShardQueue>>> {
    loop {
        if shards.closed.load(Ordering::SeqCst) {
            return None;
        }
        let (dir, count, options, metrics) = (shards.dir.clone(), shards.count, options.clone(), metrics.clone());
        let opened = tokio::task::spawn_blocking(move || disk::open_shards(&dir, count, &options, &metrics)).await;
        match opened {
            Ok(Ok(queues)) => return Some(queues.into_iter().map(Arc::new).collect()),
            Ok(Err(error)) => error!(message = "Cannot open the remote write queue; will retry.", %error),
            Err(error) => error!(message = "Opening the remote write queue failed; will retry.", %error),
        }
        tokio::time::sleep(OPEN_RETRY).await;
    }
}

/// One shard: take a batch, send it (with retries) until delivered or rejected, settle it.
async fn shard_loop(queue: Arc<ShardQueue>, sender: Arc<Sender>) {
    let mut reader = None;
    while let Some(batch) = queue
        .next_batch(&mut reader, sender.max_samples_per_send(), sender.batch_send_deadline())
        .await
    {
        sender.send_batch(&batch).await;
        queue.settle(&batch);
    }
}
