//! The queue of one shard: records are appended to segment files before `append` returns, and
//! while the sender keeps up they are also kept in memory (at most `capacity` samples), so the
//! healthy path never reads the disk. When memory is full (an outage, a burst) later records
//! are on disk only, and the sender reads them back once memory is empty.
//!
//! ```text
//!            acked (persisted)       disk_from                 write_pos
//! segments  ──────┬──────────────────────┬─────────────────────────┤
//!   settled       │ in flight / memory   │ on disk only            │
//! ```
//!
//! One task takes batches ([`ShardQueue::next_batch`]) and settles each one
//! ([`ShardQueue::settle`]) before taking the next, so the read position moves only over
//! delivered (or rejected for good) records and a restart re-sends at most the last batch.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use super::DiskError;
use super::position::{Position, PositionFile};
use super::record::Record;
use super::segment::{self, DiskRead, SEGMENT_HEADER_LEN, SegmentReader, SegmentWriter};
use crate::remote_write::metrics::{QueueMetrics, saturating_i64};

/// Sizing of one shard's queue.
#[derive(Debug, Clone)]
pub(crate) struct QueueOptions {
    /// Endpoint name, for logs.
    pub(crate) remote_name: String,
    /// Samples kept in memory for the sender; more go to disk only.
    pub(crate) capacity: usize,
    /// Disk budget of this shard, in bytes; past it the oldest segments are deleted.
    pub(crate) max_bytes: u64,
    /// A segment is closed once the next record would take it past this many bytes.
    pub(crate) segment_bytes: u64,
}

/// Records taken for one send, in queue order.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The records, oldest first.
    pub(crate) records: Vec<Record>,
    /// Samples in `records`.
    pub(crate) samples: usize,
    /// Newest sample timestamp in `records` (ms since the epoch), `i64::MIN` when unknown.
    pub(crate) max_timestamp_ms: i64,
    /// The position after the last record.
    end: Position,
}

/// Why [`ShardQueue::append`] did not queue a record.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    /// The queue was closed (shutdown) or never writable.
    #[error("queue closed")]
    Closed,
    /// Writing the segment failed.
    #[error("write queue segment in {dir}")]
    Write {
        /// The shard directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// A record held in memory, with the position after it.
#[derive(Debug)]
struct Entry {
    record: Record,
    end: Position,
}

#[derive(Debug)]
struct SegmentInfo {
    id: u64,
    bytes: u64,
}

#[derive(Debug)]
struct State {
    /// `None` for a leftover shard directory (drained only) and after release.
    writer: Option<SegmentWriter>,
    /// Where the next record goes.
    write_pos: Position,
    /// Live segments, oldest first; the writer's is last.
    segments: VecDeque<SegmentInfo>,
    disk_bytes: u64,
    /// Records not yet taken that follow the read cursor, while no record is on disk only.
    memory: VecDeque<Entry>,
    memory_samples: usize,
    /// When the oldest memory record arrived.
    oldest: Option<Instant>,
    /// First record that is on disk only; later appends stay on disk only until it catches up.
    disk_from: Option<Position>,
    /// Everything before it is delivered or dropped for good.
    acked: Position,
    position_file: PositionFile,
    /// Bumped when a budget drop moves `disk_from`, which voids a concurrent disk read.
    drop_epoch: u64,
    /// The first position this queue wrote: records before it were queued by an earlier run
    /// and are not yet in `samples_pending`.
    start_pos: Position,
    /// Samples this run counted in `samples_pending` and not yet settled or dropped.
    pending: usize,
    closed: bool,
    released: bool,
}

/// The on-disk queue of one shard directory; see the module docs.
#[derive(Debug)]
pub(crate) struct ShardQueue {
    dir: PathBuf,
    opts: QueueOptions,
    state: Mutex<State>,
    /// Wakes the sender: new records, close.
    work: Notify,
    metrics: QueueMetrics,
}

impl ShardQueue {
    /// Opens (creating) the shard directory `dir` and resumes from its persisted read position:
    /// older segments are deleted, the rest is replayed before new records. `writable` starts a
    /// new segment for appends; a non-writable queue (a shard directory the configuration no
    /// longer has) is closed from the start and only drained. Blocking (directory scan).
    ///
    /// # Errors
    /// [`DiskError`] when the directory, a segment or the position file cannot be created or read.
    pub(crate) fn open(
        dir: &Path,
        writable: bool,
        opts: QueueOptions,
        metrics: QueueMetrics,
    ) -> Result<ShardQueue, DiskError> {
        let io = |source| DiskError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let ids = segment::list_segments(dir).map_err(io)?;
        let (position_file, stored) = PositionFile::open(dir).map_err(io)?;
        let last = ids.last().copied().unwrap_or(0).max(stored.map_or(0, |p| p.segment));
        let write_pos = Position {
            segment: last + 1,
            offset: SEGMENT_HEADER_LEN,
        };
        // Resume at the stored position when its segment is still there; before the oldest
        // segment (a budget drop, a lost position file) replay everything; past the last one
        // everything was delivered.
        let first_after = |segment: Option<u64>| {
            ids.iter()
                .find(|&&id| segment.is_none_or(|s| id > s))
                .map_or(write_pos, |&id| Position {
                    segment: id,
                    offset: SEGMENT_HEADER_LEN,
                })
        };
        let start = match stored {
            Some(p) if ids.contains(&p.segment) => Position {
                segment: p.segment,
                offset: p.offset.max(SEGMENT_HEADER_LEN),
            },
            Some(p) => first_after(Some(p.segment)),
            None => first_after(None),
        };
        let mut segments = VecDeque::new();
        let mut disk_bytes = 0;
        for id in ids {
            let path = segment::segment_path(dir, id);
            if id < start.segment {
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            let bytes = std::fs::metadata(&path).map_err(io)?.len();
            disk_bytes += bytes;
            segments.push_back(SegmentInfo { id, bytes });
        }
        let writer = if writable {
            let writer = SegmentWriter::create(dir, write_pos.segment).map_err(io)?;
            segments.push_back(SegmentInfo {
                id: writer.id(),
                bytes: writer.len(),
            });
            disk_bytes += writer.len();
            Some(writer)
        } else {
            None
        };
        metrics.usage.inc_by(disk_bytes as i64);
        metrics.segments.inc_by(segments.len() as i64);
        if start < write_pos {
            info!(
                message = "Replaying the remote write queue from disk.",
                remote_name = %opts.remote_name,
                dir = %dir.display(),
                bytes = disk_bytes,
            );
        }
        Ok(ShardQueue {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                writer,
                write_pos,
                segments,
                disk_bytes,
                memory: VecDeque::new(),
                memory_samples: 0,
                oldest: None,
                disk_from: (start < write_pos).then_some(start),
                acked: start,
                position_file,
                drop_epoch: 0,
                start_pos: write_pos,
                pending: 0,
                closed: !writable,
                released: false,
            }),
            opts,
            work: Notify::new(),
            metrics,
        })
    }

    /// The shard directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record of `samples` samples (newest `max_timestamp_ms`) whose protobuf
    /// compresses to the snappy `block`: one `write(2)` to the current segment, then memory
    /// when there is room. Never waits for the sender; past the disk budget the oldest
    /// segments are deleted and their unsent samples counted.
    ///
    /// # Errors
    /// [`AppendError`] when closed or the write fails; the samples are then not queued.
    pub(crate) fn append(&self, samples: usize, max_timestamp_ms: i64, block: &[u8]) -> Result<(), AppendError> {
        let encoded = Record::encode(samples, max_timestamp_ms, block);
        let mut state = lock(&self.state);
        if state.closed {
            return Err(AppendError::Closed);
        }
        let start = self.write_record(&mut state, &encoded)?;
        let end = state.write_pos;
        state.pending += samples;
        self.metrics.written.inc_by(encoded.len() as u64);
        if state.disk_from.is_none()
            && (state.memory.is_empty() || state.memory_samples + samples <= self.opts.capacity)
        {
            if state.memory.is_empty() {
                state.oldest = Some(Instant::now());
            }
            state.memory_samples += samples;
            state.memory.push_back(Entry {
                record: Record::trusted(Bytes::from(encoded)),
                end,
            });
        } else if state.disk_from.is_none() {
            state.disk_from = Some(start);
        }
        self.enforce_budget(&mut state);
        drop(state);
        self.work.notify_one();
        Ok(())
    }

    /// Writes `encoded` to the current segment (rotating first when it is full); returns
    /// where it starts.
    fn write_record(&self, state: &mut State, encoded: &[u8]) -> Result<Position, AppendError> {
        let io = |source| AppendError::Write {
            dir: self.dir.clone(),
            source,
        };
        let writer = state.writer.as_mut().ok_or(AppendError::Closed)?;
        if writer.len() > SEGMENT_HEADER_LEN && writer.len() + encoded.len() as u64 > self.opts.segment_bytes {
            let next = SegmentWriter::create(&self.dir, writer.id() + 1).map_err(io)?;
            *writer = next;
            state.segments.push_back(SegmentInfo {
                id: writer.id(),
                bytes: writer.len(),
            });
            state.disk_bytes += writer.len();
            self.metrics.usage.inc_by(writer.len() as i64);
            self.metrics.segments.inc();
        }
        let start = Position {
            segment: writer.id(),
            offset: writer.len(),
        };
        writer.append(encoded).map_err(io)?;
        state.write_pos = Position {
            segment: writer.id(),
            offset: writer.len(),
        };
        if let Some(current) = state.segments.back_mut() {
            current.bytes = writer.len();
        }
        state.disk_bytes += encoded.len() as u64;
        self.metrics.usage.inc_by(encoded.len() as i64);
        Ok(start)
    }

    /// Deletes the oldest segments while the queue is over its budget (never the one being
    /// written); counts and logs the samples that were on disk only.
    fn enforce_budget(&self, state: &mut State) {
        while state.disk_bytes > self.opts.max_bytes && state.segments.len() > 1 {
            let Some(oldest) = state.segments.pop_front() else {
                return;
            };
            // Records before `disk_from` are in memory or in flight and still get sent.
            let lost_from = match state.disk_from {
                Some(p) if p.segment == oldest.id => Some(p.offset),
                Some(p) if p.segment < oldest.id => Some(SEGMENT_HEADER_LEN),
                _ => None,
            };
            let (records, samples) = match lost_from {
                Some(from) => segment::count_samples(&self.dir, oldest.id, from).unwrap_or_else(|error| {
                    warn!(message = "Cannot count the samples of a dropped queue segment.", dir = %self.dir.display(), %error);
                    (0, 0)
                }),
                None => (0, 0),
            };
            self.remove_segment(state, &oldest);
            if let Some(from) = lost_from {
                let bytes = oldest.bytes.saturating_sub(from);
                self.metrics.dropped_samples.inc_by(samples as u64);
                self.metrics.dropped_bytes.inc_by(bytes);
                if oldest.id >= state.start_pos.segment {
                    state.pending = state.pending.saturating_sub(samples);
                    self.metrics.pending.dec_by(saturating_i64(samples));
                }
                let next = Position {
                    segment: state.segments.front().map_or(state.write_pos.segment, |s| s.id),
                    offset: SEGMENT_HEADER_LEN,
                };
                state.disk_from = (next < state.write_pos).then_some(next);
                state.drop_epoch += 1;
                warn!(
                    message = "Remote write queue is over max_disk_usage; dropped its oldest segment.",
                    remote_name = %self.opts.remote_name,
                    dir = %self.dir.display(),
                    records,
                    samples,
                    bytes,
                );
            }
        }
    }

    fn remove_segment(&self, state: &mut State, segment: &SegmentInfo) {
        if let Err(error) = std::fs::remove_file(segment::segment_path(&self.dir, segment.id)) {
            warn!(message = "Cannot delete a queue segment.", dir = %self.dir.display(), segment = segment.id, %error);
        }
        state.disk_bytes -= segment.bytes.min(state.disk_bytes);
        self.metrics.usage.dec_by(segment.bytes as i64);
        self.metrics.segments.dec();
    }

    /// The next batch to send, at most `max_samples` samples (at least one record), or `None`
    /// once closed and empty. Memory records are taken once `max_samples` are there, a backlog
    /// waits on disk, the oldest has waited `deadline`, or the queue is closing; otherwise
    /// records are read back from disk when memory is empty. Call from one task only, settling
    /// each batch before the next call; `reader` is that task's.
    pub(crate) async fn next_batch(
        &self,
        reader: &mut Option<SegmentReader>,
        max_samples: usize,
        deadline: Duration,
    ) -> Option<Batch> {
        loop {
            let (from, limit, epoch) = match self.step(max_samples, deadline) {
                Step::Take(batch) => return Some(batch),
                Step::Done => return None,
                Step::Wait(until) => {
                    self.wait(until).await;
                    continue;
                }
                Step::Read { from, limit, epoch } => (from, limit, epoch),
            };
            let mut taken = reader.take().unwrap_or_else(|| SegmentReader::new(&self.dir));
            let read = tokio::task::spawn_blocking(move || {
                let read = segment::read_range(&mut taken, from, limit, max_samples);
                (taken, read)
            })
            .await;
            let read = match read {
                Ok((taken, Ok(read))) => {
                    *reader = Some(taken);
                    read
                }
                Ok((_, Err(error))) => {
                    warn!(message = "Cannot read the remote write queue; will retry.", dir = %self.dir.display(), %error);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(error) => {
                    warn!(message = "Queue read task failed; will retry.", dir = %self.dir.display(), %error);
                    continue;
                }
            };
            if let Some(batch) = self.accept_read(read, from, epoch) {
                return Some(batch);
            }
        }
    }

    /// What the sender does next, decided under the lock.
    fn step(&self, max_samples: usize, deadline: Duration) -> Step {
        let mut state = lock(&self.state);
        if !state.memory.is_empty() {
            let due = state.oldest.and_then(|t| t.checked_add(deadline));
            let expired = due.is_some_and(|due| due <= Instant::now());
            if state.memory_samples >= max_samples || state.disk_from.is_some() || expired || state.closed {
                return Step::Take(take_memory(&mut state, max_samples));
            }
            return Step::Wait(due);
        }
        match state.disk_from {
            Some(from) => Step::Read {
                from,
                limit: state.write_pos,
                epoch: state.drop_epoch,
            },
            None if state.closed => Step::Done,
            None => Step::Wait(None),
        }
    }

    /// Takes the result of a disk read started at `from` unless a budget drop voided it.
    fn accept_read(&self, read: DiskRead, from: Position, epoch: u64) -> Option<Batch> {
        let mut state = lock(&self.state);
        if state.drop_epoch != epoch || state.disk_from != Some(from) {
            return None;
        }
        for (at, kind, skipped) in &read.corrupt {
            self.metrics.corrupt_records.inc();
            warn!(
                message = "Skipped an unreadable part of the remote write queue.",
                remote_name = %self.opts.remote_name,
                dir = %self.dir.display(),
                segment = at.segment,
                offset = at.offset,
                reason = ?kind,
                bytes = skipped,
            );
        }
        state.disk_from = (read.next < state.write_pos).then_some(read.next);
        self.metrics.read.inc_by(read.bytes);
        if read.records.is_empty() {
            // Nothing is in memory or in flight: the skipped range is settled.
            self.advance(&mut state, read.next);
            return None;
        }
        let replayed: usize = read
            .records
            .iter()
            .filter(|(start, _)| *start < state.start_pos)
            .map(|(_, r)| r.samples)
            .sum();
        state.pending += replayed;
        self.metrics.pending.inc_by(saturating_i64(replayed));
        let records: Vec<Record> = read.records.into_iter().map(|(_, r)| r).collect();
        Some(Batch {
            samples: records.iter().map(|r| r.samples).sum(),
            max_timestamp_ms: records.iter().map(|r| r.max_timestamp_ms).max().unwrap_or(i64::MIN),
            records,
            end: read.next,
        })
    }

    async fn wait(&self, until: Option<Instant>) {
        match until {
            Some(at) => {
                tokio::select! {
                    () = self.work.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => self.work.notified().await,
        }
    }

    /// Marks `batch` delivered or rejected for good: persists the read position after it and
    /// deletes segments that hold nothing unsent.
    pub(crate) fn settle(&self, batch: &Batch) {
        let mut state = lock(&self.state);
        state.pending = state.pending.saturating_sub(batch.samples);
        self.advance(&mut state, batch.end);
    }

    fn advance(&self, state: &mut State, to: Position) {
        if to <= state.acked {
            return;
        }
        state.acked = to;
        if let Err(error) = state.position_file.store(to) {
            warn!(message = "Cannot persist the remote write queue position.", dir = %self.dir.display(), %error);
        }
        let writing = state.writer.as_ref().map(SegmentWriter::id);
        while let Some(front) = state.segments.front() {
            let done = front.id < to.segment || (front.id == to.segment && to.offset >= front.bytes);
            if !done || Some(front.id) == writing {
                break;
            }
            if let Some(front) = state.segments.pop_front() {
                self.remove_segment(state, &front);
            }
        }
    }

    /// Stops accepting records; the sender drains what is queued, then gets `None`.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.work.notify_one();
    }

    /// Whether nothing is left to send (memory and disk).
    pub(crate) fn is_drained(&self) -> bool {
        let state = lock(&self.state);
        state.memory.is_empty() && state.disk_from.is_none()
    }

    /// Closes for good once the sender is gone: syncs the files and takes back this queue's
    /// share of the gauges. Returns the samples this run counted as pending that stay on disk
    /// for the next run (the caller takes them out of `samples_pending`). A second call
    /// returns 0.
    pub(crate) fn release(&self) -> usize {
        let mut state = lock(&self.state);
        if state.released {
            return 0;
        }
        state.released = true;
        state.closed = true;
        if let Some(writer) = state.writer.take() {
            let _ = writer.sync();
        }
        let _ = state.position_file.sync();
        self.metrics.usage.dec_by(state.disk_bytes as i64);
        self.metrics.segments.dec_by(state.segments.len() as i64);
        state.memory.clear();
        std::mem::take(&mut state.pending)
    }
}

/// The sender's next move; see [`ShardQueue::next_batch`].
enum Step {
    /// Send these memory records.
    Take(Batch),
    /// Read from disk at `from`, up to `limit`; void if the drop epoch changes meanwhile.
    Read {
        from: Position,
        limit: Position,
        epoch: u64,
    },
    /// Wait for new records, close, or this deadline.
    Wait(Option<Instant>),
    /// Closed and empty.
    Done,
}

/// Takes memory records up to `max` samples (at least one).
fn take_memory(state: &mut State, max: usize) -> Batch {
    let mut batch = Batch {
        records: Vec::new(),
        samples: 0,
        max_timestamp_ms: i64::MIN,
        end: state.acked,
    };
    while let Some(entry) = state.memory.front() {
        if batch.samples > 0 && batch.samples + entry.record.samples > max {
            break;
        }
        let Some(entry) = state.memory.pop_front() else {
            break;
        };
        batch.samples += entry.record.samples;
        batch.max_timestamp_ms = batch.max_timestamp_ms.max(entry.record.max_timestamp_ms);
        batch.end = entry.end;
        batch.records.push(entry.record);
    }
    state.memory_samples -= batch.samples.min(state.memory_samples);
    if state.memory.is_empty() {
        state.oldest = None;
    }
    batch
}

/// Locks, ignoring poisoning: the state stays consistent between statements, and a panicking
/// task must not take every scrape loop down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
