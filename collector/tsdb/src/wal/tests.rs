//! File-level tests of the whole WAL: write, reopen, replay, torn tails, corruption, checkpoints.

use std::convert::Infallible;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// A record whose size and content depend on `i`.
fn rec(i: usize) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat(i % 7)).into_bytes()
}

fn framed_len(record: &[u8]) -> u64 {
    (segment::HEADER_LEN + record.len()) as u64
}

fn replay_all(dir: &Path) -> Result<(Vec<Vec<u8>>, ReplayStats), ReplayError<Infallible>> {
    let mut records = Vec::new();
    let stats = replay(dir, |r| {
        records.push(r.to_vec());
        Ok::<(), Infallible>(())
    })?;
    Ok((records, stats))
}

fn seg(dir: &Path, index: u32) -> PathBuf {
    dir.join(dir::segment_name(index))
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").len()
}

/// Logs `records` one per call into a fresh WAL at `dir` and closes it.
fn write_wal(dir: &Path, records: &[Vec<u8>]) {
    let mut wal = Wal::open(dir, DEFAULT_SEGMENT_SIZE).expect("open");
    for r in records {
        wal.log(&[r]).expect("log");
    }
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open")
        .write_all(bytes)
        .expect("append");
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).expect("write");
}

/// Sum of all file sizes in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum()
}

#[test]
fn write_reopen_replay_yields_exactly_the_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("wal");
    let mut expected = Vec::new();
    let mut previous = None;
    for run in 0..3 {
        let mut wal = Wal::open(&dir, 120).expect("open");
        let current = wal.segment_range().1;
        assert_eq!(current, previous.map_or(0, |p: u32| p + 1), "a new segment per open");
        for batch in 0..10 {
            let records: Vec<Vec<u8>> = (0..=batch % 3).map(|i| rec(run * 100 + batch * 10 + i)).collect();
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            wal.log(&refs).expect("log");
            expected.extend(records);
        }
        assert_eq!(wal.size_bytes(), dir_bytes(&dir));
        previous = Some(wal.segment_range().1);
    }
    let (records, stats) = replay_all(&dir).expect("replay");
    assert_eq!(records, expected);
    assert_eq!(stats.records, expected.len() as u64);
    assert_eq!(stats.bytes, expected.iter().map(|r| r.len() as u64).sum::<u64>());
    assert_eq!(stats.checkpoint, None);
    assert_eq!(stats.torn_tail, None);
    let (first, last) = stats.segments.expect("segments");
    assert_eq!(first, 0);
    assert!(last > 3, "small segments were cut: {last}");
}

#[test]
fn a_batch_stays_in_one_segment_and_large_records_get_their_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(tmp.path(), 50).expect("open");
    let big = vec![7u8; 40];
    // 3 × 48 bytes > 50, but the segment is empty: all three go in, uncut.
    wal.log(&[&big, &big, &big]).expect("log");
    assert_eq!(wal.segment_range(), (0, 0));
    assert_eq!(len(&seg(tmp.path(), 0)), 3 * framed_len(&big));
    // The next batch does not fit: a new segment takes it whole.
    wal.log(&[b"a", b"b"]).expect("log");
    assert_eq!(wal.segment_range(), (0, 1));
    assert_eq!(len(&seg(tmp.path(), 1)), 2 * framed_len(b"a"));
    // An empty call writes nothing.
    wal.log(&[]).expect("log");
    assert_eq!(len(&seg(tmp.path(), 1)), 2 * framed_len(b"a"));
    assert_eq!(wal.size_bytes(), 3 * framed_len(&big) + 2 * framed_len(b"a"));
}

#[test]
fn empty_records_are_logged_and_replayed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    Wal::open(tmp.path(), 1024)
        .expect("open")
        .log(&[b"", b"x", b""])
        .expect("log");
    let (records, _) = replay_all(tmp.path()).expect("replay");
    assert_eq!(records, vec![vec![], b"x".to_vec(), vec![]]);
}

#[test]
fn torn_tail_is_truncated_at_every_cut_point() {
    let records: Vec<Vec<u8>> = (0..4).map(rec).collect();
    let last_start: u64 = records[..3].iter().map(|r| framed_len(r)).sum();
    let total = last_start + framed_len(&records[3]);
    for cut in last_start + 1..total {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_wal(tmp.path(), &records);
        let path = seg(tmp.path(), 0);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(cut)
            .expect("cut");

        let (replayed, stats) = replay_all(tmp.path()).expect("replay");
        assert_eq!(replayed, records[..3], "cut at {cut}");
        let torn = stats.torn_tail.expect("torn tail reported");
        assert_eq!(
            (torn.segment, torn.offset, torn.dropped_bytes),
            (0, last_start, cut - last_start)
        );
        assert_eq!(len(&path), last_start, "file truncated to the last whole record");

        let (again, stats) = replay_all(tmp.path()).expect("second replay");
        assert_eq!((again, stats.torn_tail), (records[..3].to_vec(), None));
    }
}

#[test]
fn garbage_after_the_last_record_is_dropped() {
    for garbage in [&[0u8; 100][..], &[0xff; 3], b"\x05\x00\x00\x00\x12\x34\x56\x78hello"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let records: Vec<Vec<u8>> = (0..5).map(rec).collect();
        write_wal(tmp.path(), &records);
        let path = seg(tmp.path(), 0);
        let good = len(&path);
        append(&path, garbage);

        let (replayed, stats) = replay_all(tmp.path()).expect("replay");
        assert_eq!(replayed, records);
        let torn = stats.torn_tail.expect("torn tail");
        assert_eq!((torn.offset, torn.dropped_bytes), (good, garbage.len() as u64));
        assert_eq!(len(&path), good);
    }
}

#[test]
fn flipped_byte_in_the_tail_segment_drops_that_record_and_all_after_it() {
    let records: Vec<Vec<u8>> = (0..5).map(rec).collect();
    let starts: Vec<u64> = records
        .iter()
        .scan(0, |at, r| Some(std::mem::replace(at, *at + framed_len(r))))
        .collect();
    // The CRC of the last record, then a payload byte of the third.
    for (victim, offset) in [(4, starts[4] + 5), (2, starts[2] + 9)] {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_wal(tmp.path(), &records);
        flip_byte(&seg(tmp.path(), 0), offset);
        let (replayed, stats) = replay_all(tmp.path()).expect("replay");
        assert_eq!(replayed, records[..victim]);
        let torn = stats.torn_tail.expect("torn tail");
        assert_eq!(torn.damage, Damage::ChecksumMismatch);
        assert_eq!(torn.offset, starts[victim]);
    }
}

#[test]
fn tail_is_the_newest_non_empty_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records: Vec<Vec<u8>> = (0..3).map(rec).collect();
    write_wal(tmp.path(), &records);
    append(&seg(tmp.path(), 0), b"torn");
    // Restarts without logging leave empty segments 1 and 2 behind the torn one.
    drop(Wal::open(tmp.path(), DEFAULT_SEGMENT_SIZE).expect("open"));
    let wal = Wal::open(tmp.path(), DEFAULT_SEGMENT_SIZE).expect("open");
    assert_eq!(wal.segment_range(), (0, 2));
    let (replayed, stats) = replay_all(tmp.path()).expect("replay");
    assert_eq!(replayed, records);
    assert_eq!(stats.segments, Some((0, 2)));
    assert_eq!(stats.torn_tail.map(|t| (t.segment, t.dropped_bytes)), Some((0, 4)));
}

#[test]
fn damage_in_an_earlier_segment_is_an_error_naming_file_and_offset() {
    let records: Vec<Vec<u8>> = (0..3).map(rec).collect();
    let second = framed_len(&records[0]);
    type Damager = fn(&Path, u64);
    let damagers: [(Damager, u64); 2] = [
        (|p, at| flip_byte(p, at + 6), second),
        (
            |p, at| {
                OpenOptions::new()
                    .write(true)
                    .open(p)
                    .expect("open")
                    .set_len(at + 3)
                    .expect("cut")
            },
            second,
        ),
    ];
    for (damage, at) in damagers {
        let tmp = tempfile::tempdir().expect("tempdir");
        write_wal(tmp.path(), &records);
        write_wal(tmp.path(), &[rec(9)]);
        let path = seg(tmp.path(), 0);
        damage(&path, at);
        let before = len(&path);
        match replay_all(tmp.path()) {
            Err(ReplayError::Wal(WalError::Corrupt { path: p, offset, .. })) => {
                assert_eq!((p, offset), (path.clone(), at));
            }
            other => panic!("expected corruption error, got {other:?}"),
        }
        assert_eq!(len(&path), before, "an earlier segment is never truncated");
        let message = replay_all(tmp.path()).expect_err("still corrupt").to_string();
        assert!(
            message.contains("00000000") && message.contains(&format!("offset {at}")),
            "{message}"
        );
    }
}

#[test]
fn checkpoint_truncate_and_replay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut wal = Wal::open(dir, 64).expect("open");
    let old: Vec<Vec<u8>> = (0..8).map(rec).collect();
    for r in &old {
        wal.log(&[r]).expect("log");
    }
    let next = wal.cut_segment().expect("cut");
    assert!(next >= 2);
    let new: Vec<Vec<u8>> = (100..103).map(rec).collect();
    for r in &new {
        wal.log(&[r]).expect("log");
    }
    let cp_records = vec![b"series state".to_vec(), b"live samples".to_vec()];
    let stats = write_checkpoint(dir, next - 1, cp_records.clone()).expect("checkpoint");
    assert_eq!(stats.records, 2);
    assert_eq!(stats.bytes, len(&dir.join(dir::checkpoint_name(next - 1))));

    let mut expected = cp_records.clone();
    expected.extend(new.iter().cloned());
    // Before truncation the old segments still exist but are skipped.
    let (replayed, stats) = replay_all(dir).expect("replay");
    assert_eq!(replayed, expected);
    let current = wal.segment_range().1;
    assert_eq!(
        (stats.checkpoint, stats.segments),
        (Some(next - 1), Some((next, current)))
    );

    let size_before = wal.size_bytes();
    wal.truncate(next).expect("truncate");
    assert_eq!(wal.segment_range(), (next, current));
    assert!((0..next).all(|i| !seg(dir, i).exists()));
    assert!(wal.size_bytes() < size_before);
    assert_eq!(wal.size_bytes(), dir_bytes(dir));
    assert_eq!(replay_all(dir).expect("replay").0, expected);

    // Reopen: the new segment follows; replay is unchanged.
    drop(wal);
    let wal = Wal::open(dir, 64).expect("reopen");
    assert_eq!(wal.segment_range(), (next, current + 1));
    assert_eq!(replay_all(dir).expect("replay").0, expected);
}

#[test]
fn newer_checkpoint_replaces_older_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut wal = Wal::open(dir, 1024).expect("open");
    wal.log(&[b"a"]).expect("log");
    wal.cut_segment().expect("cut");
    write_checkpoint(dir, 0, [b"cp0"]).expect("checkpoint 0");
    wal.log(&[b"b"]).expect("log");
    wal.cut_segment().expect("cut");
    write_checkpoint(dir, 1, [&b"cp1"[..], b"cp1b"]).expect("checkpoint 1");
    assert!(!dir.join(dir::checkpoint_name(0)).exists());
    wal.truncate(2).expect("truncate");
    wal.log(&[b"c"]).expect("log");
    let (replayed, stats) = replay_all(dir).expect("replay");
    assert_eq!(replayed, vec![b"cp1".to_vec(), b"cp1b".to_vec(), b"c".to_vec()]);
    assert_eq!(stats.checkpoint, Some(1));
}

#[test]
fn unfinished_checkpoints_are_ignored_and_removed_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_wal(dir, &[rec(1)]);
    let tmp_file = dir.join(dir::checkpoint_tmp_name(0));
    fs::write(&tmp_file, b"half written garbage").expect("write tmp");
    let tmp_dir = dir.join("checkpoint.00000000.tmp.old.tmp");
    fs::create_dir(&tmp_dir).expect("tmp dir");
    let (replayed, stats) = replay_all(dir).expect("replay");
    assert_eq!((replayed, stats.checkpoint), (vec![rec(1)], None));
    drop(Wal::open(dir, 1024).expect("open"));
    assert!(!tmp_file.exists() && !tmp_dir.exists());
    // A leftover tmp of the same index is replaced by the next checkpoint.
    fs::write(&tmp_file, b"junk").expect("write tmp");
    write_checkpoint(dir, 0, [b"cp"]).expect("checkpoint");
    assert!(!tmp_file.exists());
    assert_eq!(replay_all(dir).expect("replay").0, vec![b"cp".to_vec()]);
}

#[test]
fn damaged_checkpoint_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_checkpoint(dir, 3, [b"one", b"two"]).expect("checkpoint");
    let path = dir.join(dir::checkpoint_name(3));
    append(&path, b"xx");
    let err = replay_all(dir).expect_err("corrupt checkpoint");
    assert!(
        matches!(err, ReplayError::Wal(WalError::Corrupt { path: ref p, .. }) if *p == path),
        "{err}"
    );
}

#[test]
fn missing_segments_are_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    for _ in 0..3 {
        write_wal(dir, &[rec(0)]);
    }
    fs::remove_file(seg(dir, 1)).expect("remove");
    let err = replay_all(dir).expect_err("gap");
    assert!(
        matches!(
            err,
            ReplayError::Wal(WalError::MissingSegment {
                missing: 1,
                found: 2,
                ..
            })
        ),
        "{err}"
    );

    // After a checkpoint, the next segment must follow it directly.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write_checkpoint(dir, 4, [b"cp"]).expect("checkpoint");
    fs::write(seg(dir, 6), b"").expect("segment");
    let err = replay_all(dir).expect_err("gap after checkpoint");
    assert!(
        matches!(
            err,
            ReplayError::Wal(WalError::MissingSegment {
                missing: 5,
                found: 6,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn open_after_a_checkpoint_without_segments_continues_after_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_checkpoint(tmp.path(), 7, [b"cp"]).expect("checkpoint");
    let mut wal = Wal::open(tmp.path(), 1024).expect("open");
    assert_eq!(wal.segment_range(), (8, 8));
    assert_eq!(wal.size_bytes(), framed_len(b"cp"));
    wal.log(&[b"after"]).expect("log");
    let (replayed, stats) = replay_all(tmp.path()).expect("replay");
    assert_eq!(replayed, vec![b"cp".to_vec(), b"after".to_vec()]);
    assert_eq!(stats.segments, Some((8, 8)));
}

#[test]
fn misuse_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(matches!(Wal::open(tmp.path(), 0), Err(WalError::InvalidSegmentSize)));
    let mut wal = Wal::open(tmp.path(), 1024).expect("open");
    assert!(matches!(
        wal.truncate(1),
        Err(WalError::TruncateCurrent { before: 1, current: 0 })
    ));
    wal.truncate(0).expect("nothing to delete");
    wal.log(&[b"still works"]).expect("log");
    wal.sync().expect("sync");
}

#[test]
fn callback_errors_stop_replay_with_the_record_position() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let records: Vec<Vec<u8>> = (0..4).map(rec).collect();
    write_wal(tmp.path(), &records);
    let mut seen = 0;
    let err = replay(tmp.path(), |r| {
        seen += 1;
        if r == rec(2) { Err("bad record") } else { Ok(()) }
    })
    .expect_err("callback error");
    assert_eq!(seen, 3);
    match err {
        ReplayError::Apply { path, offset, source } => {
            assert_eq!(path, seg(tmp.path(), 0));
            assert_eq!(offset, framed_len(&records[0]) + framed_len(&records[1]));
            assert_eq!(source, "bad record");
        }
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[test]
fn missing_directory_replays_as_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (records, stats) = replay_all(&tmp.path().join("absent")).expect("replay");
    assert!(records.is_empty());
    assert_eq!(stats, ReplayStats::default());
}

#[test]
fn size_bytes_tracks_segments_across_cuts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::open(tmp.path(), 100).expect("open");
    for i in 0..30 {
        wal.log(&[&rec(i)]).expect("log");
        assert_eq!(wal.size_bytes(), dir_bytes(tmp.path()));
    }
    wal.cut_segment().expect("cut");
    assert_eq!(wal.size_bytes(), dir_bytes(tmp.path()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hostile_segment_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), tail in any::<bool>()) {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(seg(tmp.path(), 0), &bytes).expect("write");
        if !tail {
            write_wal(tmp.path(), &[rec(1)]);
        }
        match replay_all(tmp.path()) {
            Ok((_, stats)) => {
                // Whatever was kept is now a clean sequence of frames.
                let again = replay_all(tmp.path()).expect("second replay");
                prop_assert_eq!(again.1.torn_tail, None);
                prop_assert_eq!(again.1.records, stats.records);
            }
            Err(ReplayError::Wal(WalError::Corrupt { .. })) => prop_assert!(!tail),
            Err(other) => return Err(TestCaseError::fail(format!("unexpected error {other}"))),
        }
    }
}
