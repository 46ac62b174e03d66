//! The shard queue on a temporary directory: memory and disk paths, rotation, replay after a
//! reopen (a crash: no settle, no release), corruption, the disk budget and the directory lock.

use std::path::Path;
use std::time::Duration;

use prometheus_client::registry::Registry;
use trawl_model::labels::Labels;
use trawl_model::remote::{Compressor, SeriesBuffer, decode_write_request, encode_labels};

use super::position::{self, Position};
use super::segment::{self, SEGMENT_HEADER_LEN};
use super::*;
use crate::remote_write::RemoteWriteFamilies;

const WAIT: Duration = Duration::from_secs(5);

fn metrics() -> QueueMetrics {
    let families = RemoteWriteFamilies::register(&mut Registry::default());
    let endpoint = families.endpoint("test", "http://x");
    families.queue("test", &endpoint)
}

fn options(capacity: usize, max_bytes: u64, segment_bytes: u64) -> QueueOptions {
    QueueOptions {
        remote_name: "test".to_owned(),
        capacity,
        max_bytes,
        segment_bytes,
    }
}

fn open(dir: &Path, opts: &QueueOptions, metrics: &QueueMetrics) -> ShardQueue {
    ShardQueue::open(dir, true, opts.clone(), metrics.clone()).expect("queue opens")
}

/// Appends one record with one sample of `up` at timestamp `t`.
fn append(queue: &ShardQueue, t: i64) {
    let labels = encode_labels(&Labels::from_pairs([("__name__", "up"), ("job", "node")]));
    let mut chunk = SeriesBuffer::default();
    chunk.push_sample(&labels, t, t as f64);
    let mut compressor = Compressor::default();
    let block = compressor.compress(chunk.proto()).unwrap();
    queue.append(1, t, block).expect("append");
}

/// The timestamps a batch carries, decoded from the joined body a send would use.
fn timestamps(batch: &Batch) -> Vec<i64> {
    let request = decode_write_request(&join_blocks(&batch.records)).unwrap();
    request
        .timeseries
        .iter()
        .flat_map(|ts| ts.samples.iter().map(|s| s.timestamp))
        .collect()
}

/// The next batch (at most `max` samples, no deadline wait), or `None` when nothing comes.
async fn next(queue: &ShardQueue, reader: &mut Option<segment::SegmentReader>, max: usize) -> Option<Batch> {
    tokio::time::timeout(
        Duration::from_millis(200),
        queue.next_batch(reader, max, Duration::ZERO),
    )
    .await
    .ok()
    .flatten()
}

/// Takes and settles every batch until the queue has nothing more; returns the timestamps.
async fn drain(queue: &ShardQueue, max: usize) -> Vec<i64> {
    let mut reader = None;
    let mut got = Vec::new();
    while let Some(batch) = next(queue, &mut reader, max).await {
        assert!(batch.samples <= max || batch.records.len() == 1);
        got.extend(timestamps(&batch));
        queue.settle(&batch);
    }
    got
}

#[tokio::test]
async fn the_healthy_path_sends_from_memory_and_deletes_settled_segments() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let queue = open(dir.path(), &options(100, 1 << 20, 300), &m);
    for t in 0..20 {
        append(&queue, t);
    }
    assert!(segment::list_segments(dir.path()).unwrap().len() > 2, "segments rotate");
    let got = tokio::time::timeout(WAIT, drain(&queue, 7)).await.unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(m.read.get(), 0, "nothing read back from disk");
    assert!(m.written.get() > 0);
    // Only the segment being written is left.
    assert_eq!(segment::list_segments(dir.path()).unwrap().len(), 1);
    assert_eq!(m.segments.get(), 1);
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(m.usage.get(), on_disk as i64);
    assert_eq!(queue.release(), 0);
    assert_eq!((m.usage.get(), m.segments.get()), (0, 0));
}

#[tokio::test]
async fn a_reopened_queue_replays_from_the_last_settled_batch() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let opts = options(100, 1 << 20, 300);
    {
        let queue = open(dir.path(), &opts, &m);
        for t in 0..20 {
            append(&queue, t);
        }
        let mut reader = None;
        let first = next(&queue, &mut reader, 5).await.unwrap();
        assert_eq!(timestamps(&first), [0, 1, 2, 3, 4]);
        queue.settle(&first);
        // Taken but never settled: in flight when the process dies.
        let second = next(&queue, &mut reader, 5).await.unwrap();
        assert_eq!(timestamps(&second), [5, 6, 7, 8, 9]);
        // Dropped without release, as a killed process.
    }
    let m = metrics();
    let queue = open(dir.path(), &opts, &m);
    append(&queue, 20);
    let got = tokio::time::timeout(WAIT, drain(&queue, 5)).await.unwrap();
    assert_eq!(
        got,
        (5..21).collect::<Vec<_>>(),
        "nothing lost, nothing settled re-sent"
    );
    assert!(m.read.get() > 0, "the backlog is read from disk");
    // Samples queued by the earlier run enter pending when read back (the sender takes them out).
    assert_eq!(m.pending.get(), 15);
    assert_eq!(m.corrupt_records.get(), 0);
    drop(queue);
    // Everything settled: a third run has nothing to send.
    let queue = open(dir.path(), &opts, &metrics());
    assert_eq!(drain(&queue, 5).await, Vec::<i64>::new());
}

#[tokio::test]
async fn memory_overflow_spills_to_disk_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    let queue = open(dir.path(), &options(3, 1 << 20, 1 << 16), &m);
    for t in 0..10 {
        append(&queue, t);
    }
    for t in 10..15 {
        append(&queue, t);
    }
    let got = tokio::time::timeout(WAIT, drain(&queue, 4)).await.unwrap();
    assert_eq!(got, (0..15).collect::<Vec<_>>());
    assert!(m.read.get() > 0);
    // Caught up: new records use memory again.
    let read = m.read.get();
    append(&queue, 15);
    assert_eq!(drain(&queue, 4).await, [15]);
    assert_eq!(m.read.get(), read);
}

/// Writes records 0..n to a fresh queue and drops it, as a crash would.
fn crashed_queue(dir: &Path, n: i64, segment_bytes: u64) {
    let queue = open(dir, &options(1, 1 << 20, segment_bytes), &metrics());
    for t in 0..n {
        append(&queue, t);
    }
}

#[tokio::test]
async fn a_torn_tail_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    crashed_queue(dir.path(), 3, 1 << 16);
    let path = segment::segment_path(dir.path(), 1);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();

    let m = metrics();
    let queue = open(dir.path(), &options(100, 1 << 20, 1 << 16), &m);
    append(&queue, 100);
    let got = tokio::time::timeout(WAIT, drain(&queue, 10)).await.unwrap();
    assert_eq!(got, [0, 1, 100]);
    assert_eq!(m.corrupt_records.get(), 1);
    // The damaged segment is gone once everything after it was delivered.
    assert!(!path.exists());
}

#[tokio::test]
async fn flipped_bytes_skip_the_rest_of_their_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    // About three records per segment.
    crashed_queue(dir.path(), 9, 250);
    let ids = segment::list_segments(dir.path()).unwrap();
    assert!(ids.len() >= 3, "{ids:?}");
    let path = segment::segment_path(dir.path(), ids[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // The second segment loses its magic.
    let second = segment::segment_path(dir.path(), ids[1]);
    let mut bytes = std::fs::read(&second).unwrap();
    bytes[0] = b'X';
    std::fs::write(&second, &bytes).unwrap();

    let m = metrics();
    let queue = open(dir.path(), &options(100, 1 << 20, 250), &m);
    let got = tokio::time::timeout(WAIT, drain(&queue, 100)).await.unwrap();
    assert_eq!(m.corrupt_records.get(), 2);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "order kept: {got:?}");
    assert!(got.contains(&0) && got.contains(&8), "{got:?}");
    assert!(got.len() < 9);
}

#[tokio::test]
async fn garbage_files_and_a_bad_position_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    crashed_queue(dir.path(), 4, 1 << 16);
    std::fs::write(dir.path().join("position"), b"garbage").unwrap();
    std::fs::write(segment::segment_path(dir.path(), 7), b"").unwrap();
    std::fs::write(dir.path().join("stray.seg"), b"x").unwrap();
    let m = metrics();
    let queue = open(dir.path(), &options(100, 1 << 20, 1 << 16), &m);
    // A bad position replays from the oldest segment: duplicates rather than loss.
    let got = tokio::time::timeout(WAIT, drain(&queue, 100)).await.unwrap();
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(m.corrupt_records.get(), 1, "the empty segment has no header");
}

#[tokio::test]
async fn past_the_budget_the_oldest_segments_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let m = metrics();
    // Memory holds one record; each segment about three records.
    let queue = open(dir.path(), &options(1, 1000, 250), &m);
    for t in 0..60 {
        append(&queue, t);
    }
    let usage = m.usage.get();
    assert!(usage <= 1000 + 250, "usage {usage}");
    let dropped = m.dropped_samples.get();
    assert!(dropped > 30, "dropped {dropped}");
    assert!(m.dropped_bytes.get() > 0);
    let got = tokio::time::timeout(WAIT, drain(&queue, 100)).await.unwrap();
    // The record in memory, then the newest ones; the counted ones are exactly the gap.
    assert_eq!(got[0], 0);
    assert_eq!(got.len() as u64 + dropped, 60, "{got:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*got.last().unwrap(), 59);
    // The caller counts appends into pending; the drop takes its samples back out.
    assert_eq!(m.pending.get(), -(dropped as i64));
}

#[tokio::test]
async fn a_closed_queue_rejects_appends_and_ends_after_draining() {
    let dir = tempfile::tempdir().unwrap();
    let queue = open(dir.path(), &options(100, 1 << 20, 1 << 16), &metrics());
    append(&queue, 1);
    queue.close();
    let block = Compressor::default().compress(b"").unwrap().to_vec();
    assert!(matches!(queue.append(1, 0, &block), Err(AppendError::Closed)));
    let mut reader = None;
    let batch = queue
        .next_batch(&mut reader, 10, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(timestamps(&batch), [1]);
    queue.settle(&batch);
    assert!(
        queue
            .next_batch(&mut reader, 10, Duration::from_secs(600))
            .await
            .is_none()
    );
    assert!(queue.is_drained());
}

#[tokio::test]
async fn leftover_shard_directories_open_read_only() {
    let dir = tempfile::tempdir().unwrap();
    crashed_queue(&shard_dir(dir.path(), 2), 3, 1 << 16);
    let m = metrics();
    let queues = open_shards(dir.path(), 1, &options(100, 1 << 20, 0), &m).unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(drain(&queues[1], 10).await, [0, 1, 2]);
    assert!(queues[1].is_drained());
    assert_eq!(
        segment::list_segments(&shard_dir(dir.path(), 2)).unwrap(),
        Vec::<u64>::new()
    );
}

#[test]
fn the_directory_lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lock = DirLock::try_lock(dir.path()).unwrap().expect("free");
    assert!(DirLock::try_lock(dir.path()).unwrap().is_none());
    drop(lock);
    assert!(DirLock::try_lock(dir.path()).unwrap().is_some());
}

#[test]
fn endpoint_directories_are_safe_and_distinct() {
    let root = Path::new("/q");
    assert_eq!(endpoint_dir(root, "prod-1_a"), root.join("prod-1_a"));
    let odd = ["../etc", "a/b", "a_b~", ".", "", "ü", &"x".repeat(100)];
    let dirs: Vec<_> = odd.iter().map(|n| endpoint_dir(root, n)).collect();
    for (name, dir) in odd.iter().zip(&dirs) {
        assert_eq!(dir.parent(), Some(root), "{name:?} → {dir:?}");
        let file = dir.file_name().unwrap().to_str().unwrap();
        assert!(!file.starts_with('.') && !file.contains('/'), "{file}");
    }
    let unique: std::collections::HashSet<_> = dirs.iter().collect();
    assert_eq!(unique.len(), dirs.len());
    assert_ne!(endpoint_dir(root, "a/b"), endpoint_dir(root, "a_b"));
}

#[test]
fn positions_order_by_segment_then_offset() {
    let at = |segment, offset| Position { segment, offset };
    assert!(at(1, 900) < at(2, SEGMENT_HEADER_LEN));
    assert!(at(2, 8) < at(2, 9));
}

#[tokio::test]
async fn a_position_past_the_end_of_its_segment_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    crashed_queue(dir.path(), 3, 1 << 16);
    // A second segment with records, then a position far past the end of the first.
    crashed_queue(dir.path(), 2, 1 << 16);
    let (file, _) = position::PositionFile::open(dir.path()).unwrap();
    file.store(Position {
        segment: 1,
        offset: u64::MAX,
    })
    .unwrap();
    drop(file);
    let m = metrics();
    // A tiny budget drops the first segment before anything is read.
    let queue = open(dir.path(), &options(100, 1, 1 << 16), &m);
    append(&queue, 10);
    let got = tokio::time::timeout(WAIT, drain(&queue, 100)).await.unwrap();
    assert_eq!(got, [10], "the budget left only the newest segment");
    assert_eq!(m.dropped_samples.get(), 2, "the first segment had nothing unsent");
}

/// Runs a reopened queue (ten records from the crashed run) while receivers fail: each batch
/// is held (retried) while scrapes keep appending, then settled, so reads reach segments that
/// grew after the reader opened them. Segments of `segment_bytes`.
async fn outage_after_a_crash(segment_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    crashed_queue(dir.path(), 10, 300);
    let m = metrics();
    let queue = open(dir.path(), &options(100, 1 << 20, segment_bytes), &m);
    let mut reader = None;
    let mut got = Vec::new();
    let mut t = 10;
    while let Some(batch) = next(&queue, &mut reader, 3).await {
        for _ in 0..2 {
            if t < 40 {
                append(&queue, t);
                t += 1;
            }
        }
        got.extend(timestamps(&batch));
        queue.settle(&batch);
    }
    assert_eq!(got, (0..40).collect::<Vec<_>>(), "every record sent once, in order");
    // Only the earlier run's samples enter pending when read back.
    assert_eq!(m.pending.get(), 10);
    assert_eq!(m.corrupt_records.get(), 0);
    assert_eq!(
        segment::list_segments(dir.path()).unwrap().len(),
        1,
        "settled segments are deleted"
    );
    assert_eq!(queue.release(), 0, "nothing this run counted stays pending");
}

#[tokio::test]
async fn after_a_crash_a_growing_writer_segment_is_read_to_its_end() {
    tokio::time::timeout(WAIT, outage_after_a_crash(1 << 16)).await.unwrap();
}

#[tokio::test]
async fn a_segment_rotated_after_the_reader_opened_it_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    crashed_queue(dir.path(), 1, 1 << 16);
    let record_len = std::fs::metadata(segment::segment_path(dir.path(), 1)).unwrap().len() - SEGMENT_HEADER_LEN;
    let m = metrics();
    // Six records per segment; the backlog keeps new records on disk only.
    let queue = open(
        dir.path(),
        &options(100, 1 << 20, SEGMENT_HEADER_LEN + 6 * record_len),
        &m,
    );
    let mut reader = None;
    let mut got = Vec::new();
    (1..4).for_each(|t| append(&queue, t));
    // Opens the writer's segment while it holds three records.
    let batch = next(&queue, &mut reader, 2).await.unwrap();
    got.extend(timestamps(&batch));
    queue.settle(&batch);
    // Fill it and rotate past it while the sender holds nothing.
    (4..8).for_each(|t| append(&queue, t));
    assert_eq!(segment::list_segments(dir.path()).unwrap(), [2, 3], "rotated");
    got.extend(drain_with(&queue, &mut reader, 2).await);
    assert_eq!(got, (0..8).collect::<Vec<_>>(), "every record sent once, in order");
    assert_eq!(m.pending.get(), 1);
    assert_eq!(queue.release(), 0, "nothing this run counted stays pending");
}

/// As [`drain`], with the sender's reader.
async fn drain_with(queue: &ShardQueue, reader: &mut Option<segment::SegmentReader>, max: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while let Some(batch) = next(queue, reader, max).await {
        got.extend(timestamps(&batch));
        queue.settle(&batch);
    }
    got
}
