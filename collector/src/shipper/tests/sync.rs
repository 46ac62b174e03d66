//! `Shipper::sync` against a filesystem bucket behind a recording, failing `TestStore`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use trawl_tsdb::fs::FsError;
use ulid::Ulid;

use super::{FakeBlock, HOUR_MS, TestStore, fast_backoff, fs_bucket, now_ms};
use crate::shipper::state::{SHIPPER_FILENAME, ShipperState};
use crate::shipper::upload::PART_SIZE;
use crate::shipper::{Shipper, ShipperError, ShipperMetrics};

const RETENTION: Duration = Duration::from_secs(6 * 3600);

/// A tenant directory, a bucket directory and a registry with the shipper metrics.
struct Fixture {
    tmp: tempfile::TempDir,
    store: Arc<TestStore>,
    registry: Registry,
    metrics: ShipperMetrics,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let store = fs_bucket(&tmp.path().join("bucket"));
        std::fs::create_dir_all(tmp.path().join("tenant")).unwrap();
        let mut registry = Registry::default();
        let metrics = ShipperMetrics::new(&mut registry);
        Fixture {
            tmp,
            store,
            registry,
            metrics,
        }
    }

    fn tenant(&self) -> std::path::PathBuf {
        self.tmp.path().join("tenant")
    }

    fn shipper(&self) -> Shipper {
        Shipper::new(self.store.clone(), self.tenant(), RETENTION, self.metrics.clone()).with_backoff(fast_backoff(3))
    }

    fn add(&self, block: FakeBlock) -> Ulid {
        block.write(&self.tenant())
    }

    fn recorded(&self) -> Vec<Ulid> {
        ShipperState::read(&self.tenant())
            .unwrap()
            .expect("shipper.json written")
            .uploaded
    }

    /// Value of a metric sample in the text exposition.
    fn metric(&self, name: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} not in\n{text}"))
            .parse()
            .unwrap()
    }
}

/// The objects of a block in Thanos's upload order.
fn block_objects(id: Ulid, chunk_files: usize) -> Vec<String> {
    let mut objects: Vec<String> = (1..=chunk_files).map(|i| format!("{id}/chunks/{i:06}")).collect();
    objects.push(format!("{id}/index"));
    objects.push(format!("{id}/meta.json"));
    objects
}

async fn assert_same_bytes(store: &TestStore, tenant: &Path, object: &str) {
    let local = std::fs::read(tenant.join(object)).unwrap();
    assert_eq!(store.bytes(object).await, local, "{object} differs from the local file");
}

#[tokio::test]
async fn uploads_oldest_first_chunks_then_index_then_meta_json() {
    let f = Fixture::new();
    let now = now_ms();
    // Written out of order; the ULID of the newest range sorts first, so ULID order is wrong too.
    let middle = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS).created(now - 30 * 60_000));
    let newest = f.add(
        FakeBlock::new(now - 2 * HOUR_MS, now)
            .created(now - 40 * 60_000)
            .chunks(&[10, 20, 30]),
    );
    let oldest = f.add(FakeBlock::new(now - 6 * HOUR_MS, now - 4 * HOUR_MS).created(now - 20 * 60_000));
    assert!(
        newest < middle && middle < oldest,
        "ULIDs must not already be in time order"
    );

    let report = f.shipper().sync().await.unwrap();

    assert_eq!(report.uploaded, vec![oldest, middle, newest]);
    let mut expected = block_objects(oldest, 2);
    expected.extend(block_objects(middle, 2));
    expected.extend(block_objects(newest, 3));
    assert_eq!(f.store.writes(), expected);
    for object in &expected {
        assert_same_bytes(&f.store, &f.tenant(), object).await;
    }
    // Thanos does not upload tombstones.
    assert!(!f.store.exists(&format!("{oldest}/tombstones")).await);
    let local_bytes: u64 = expected
        .iter()
        .map(|o| std::fs::metadata(f.tenant().join(o)).unwrap().len())
        .sum();
    assert_eq!(report.uploaded_bytes, local_bytes);
    assert_eq!(f.recorded(), vec![oldest, middle, newest]);
    assert!(report.deleted.is_empty(), "nothing is past the 6h retention");
}

#[tokio::test]
async fn second_sync_uploads_nothing_and_does_not_ask_the_bucket() {
    let f = Fixture::new();
    let now = now_ms();
    let a = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS));
    let b = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    let shipper = f.shipper();
    assert_eq!(shipper.sync().await.unwrap().uploaded, vec![a, b]);
    f.store.clear_log();

    let again = shipper.sync().await.unwrap();
    assert_eq!(again, Default::default());
    assert_eq!(f.store.log(), Vec::<String>::new());

    // A new shipper (a restart) reloads thanos.shipper.json: still nothing.
    let report = f.shipper().sync().await.unwrap();
    assert!(report.uploaded.is_empty() && report.found_in_bucket.is_empty());
    assert_eq!(f.store.log(), Vec::<String>::new());
    assert_eq!(f.metric("trawl_collector_shipper_uploads_total"), 2.0);
}

#[tokio::test]
async fn shipper_json_has_thanos_shape_and_no_temporary_file_remains() {
    let f = Fixture::new();
    let now = now_ms();
    let a = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS));
    let b = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    f.shipper().sync().await.unwrap();

    let text = std::fs::read_to_string(f.tenant().join(SHIPPER_FILENAME)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"version": 1, "uploaded": [a.to_string(), b.to_string()]})
    );
    assert!(text.contains("\n\t\"version\": 1"), "tab-indented like Thanos: {text}");
    let leftovers: Vec<_> = std::fs::read_dir(f.tenant())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn shipper_state_reads_thanos_files_and_rejects_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(ShipperState::read(dir.path()).unwrap(), None);
    let path = dir.path().join(SHIPPER_FILENAME);
    // As Thanos writes it, including `null` for an empty list.
    std::fs::write(
        &path,
        "{\n\t\"version\": 1,\n\t\"uploaded\": [\n\t\t\"01BKGV7JC0RY8A6MACW02A2PJD\"\n\t]\n}\n",
    )
    .unwrap();
    let state = ShipperState::read(dir.path()).unwrap().unwrap();
    assert_eq!(
        state.uploaded,
        vec![Ulid::from_string("01BKGV7JC0RY8A6MACW02A2PJD").unwrap()]
    );
    std::fs::write(&path, r#"{"version":1,"uploaded":null}"#).unwrap();
    assert_eq!(
        ShipperState::read(dir.path()).unwrap().unwrap().uploaded,
        Vec::<Ulid>::new()
    );

    for broken in [
        "",
        "{",
        "null",
        r#"{"version":2,"uploaded":[]}"#,
        r#"{"version":1,"uploaded":["not-a-ulid"]}"#,
        r#"{"version":1,"uploaded":[1]}"#,
        r#"{"uploaded":[]}"#,
    ] {
        std::fs::write(&path, broken).unwrap();
        assert!(
            matches!(
                ShipperState::read(dir.path()),
                Err(ShipperError::Io(FsError { op: "parse", .. }))
            ),
            "accepted {broken:?}"
        );
    }

    let state = ShipperState {
        version: 1,
        uploaded: vec![Ulid::from_parts(1, 2), Ulid::from_parts(3, 4)],
    };
    state.write(dir.path()).unwrap();
    assert_eq!(ShipperState::read(dir.path()).unwrap().unwrap(), state);
}

#[tokio::test]
async fn lost_or_corrupt_shipper_json_records_blocks_found_in_the_bucket_without_uploading() {
    let f = Fixture::new();
    let now = now_ms();
    let a = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS));
    let b = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    f.shipper().sync().await.unwrap();

    for damage in [None, Some("{\"version\": 1, \"upl"), Some("\u{0}\u{1}garbage")] {
        match damage {
            None => std::fs::remove_file(f.tenant().join(SHIPPER_FILENAME)).unwrap(),
            Some(text) => std::fs::write(f.tenant().join(SHIPPER_FILENAME), text).unwrap(),
        }
        f.store.clear_log();
        let report = f.shipper().sync().await.unwrap();
        assert_eq!(report.found_in_bucket, vec![a, b], "after {damage:?}");
        assert!(report.uploaded.is_empty());
        assert_eq!(
            f.store.writes(),
            Vec::<String>::new(),
            "nothing re-uploaded after {damage:?}"
        );
        assert_eq!(f.recorded(), vec![a, b], "record rebuilt after {damage:?}");
    }
    assert_eq!(f.metric("trawl_collector_shipper_uploads_total"), 2.0);
}

#[tokio::test]
async fn retried_writes_succeed_within_the_attempts() {
    let f = Fixture::new();
    let now = now_ms();
    let a = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    f.store.fail_next_writes(2);

    let report = f.shipper().sync().await.unwrap();

    assert_eq!(report.uploaded, vec![a]);
    let chunk = format!("{a}/chunks/000001");
    let mut expected = vec![chunk.clone(), chunk.clone(), chunk];
    expected.extend(block_objects(a, 2).into_iter().skip(1));
    assert_eq!(f.store.writes(), expected, "the failing file is retried in place");
    assert_same_bytes(&f.store, &f.tenant(), &format!("{a}/meta.json")).await;
    assert_eq!(f.metric("trawl_collector_shipper_upload_failures_total"), 0.0);
}

#[tokio::test]
async fn a_failing_block_stops_the_sync_and_the_next_sync_resumes_in_order() {
    let f = Fixture::new();
    let now = now_ms();
    let first = f.add(FakeBlock::new(now - 6 * HOUR_MS, now - 4 * HOUR_MS));
    let second = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS).created(now - HOUR_MS));
    let third = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    f.store.fail_writes_matching(Some(&format!("{second}/index")));

    let error = f.shipper().sync().await.unwrap_err();

    match &error {
        ShipperError::Block {
            block,
            attempts,
            source,
        } => {
            assert_eq!((*block, *attempts), (second, 3));
            assert!(
                matches!(**source, ShipperError::Bucket { op: "upload", .. }),
                "{source:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.is_recoverable());
    assert_eq!(f.recorded(), vec![first]);
    assert!(
        !f.store.exists(&format!("{second}/meta.json")).await,
        "no meta.json without its index"
    );
    assert!(
        !f.store.exists(&format!("{third}/chunks/000001")).await,
        "later blocks wait"
    );
    assert_eq!(f.metric("trawl_collector_shipper_upload_failures_total"), 1.0);
    assert_eq!(f.metric("trawl_collector_shipper_uploads_total"), 1.0);
    // The lag is the age of `second`, created an hour ago.
    let lag = f.metric("trawl_collector_shipper_upload_lag_seconds");
    assert!((3590.0..3700.0).contains(&lag), "lag {lag}");

    f.store.fail_writes_matching(None);
    f.store.clear_log();
    let report = f.shipper().sync().await.unwrap();
    assert_eq!(report.uploaded, vec![second, third]);
    let mut expected = block_objects(second, 2);
    expected.extend(block_objects(third, 2));
    assert_eq!(f.store.writes(), expected);
    assert_eq!(f.recorded(), vec![first, second, third]);
    assert_eq!(f.metric("trawl_collector_shipper_upload_lag_seconds"), 0.0);
    assert_eq!(f.metric("trawl_collector_shipper_upload_failures_total"), 1.0);
}

#[tokio::test]
async fn retention_deletes_only_uploaded_blocks_past_it() {
    let f = Fixture::new();
    let now = now_ms();
    let old_uploaded = f.add(FakeBlock::new(now - 12 * HOUR_MS, now - 10 * HOUR_MS));
    let old_failing = f.add(FakeBlock::new(now - 10 * HOUR_MS, now - 8 * HOUR_MS));
    let recent = f.add(FakeBlock::new(now - 2 * HOUR_MS, now - HOUR_MS));
    f.store.fail_writes_matching(Some(&old_failing.to_string()));

    assert!(f.shipper().sync().await.is_err());
    assert!(
        !f.tenant().join(old_uploaded.to_string()).exists(),
        "uploaded and past retention"
    );
    assert!(
        f.tenant().join(old_failing.to_string()).exists(),
        "never delete what is not in the bucket"
    );
    assert!(f.tenant().join(recent.to_string()).exists());
    assert!(
        f.store.exists(&format!("{old_uploaded}/meta.json")).await,
        "the bucket keeps its copy"
    );
    assert_eq!(f.recorded(), Vec::<Ulid>::new(), "deleted blocks leave the record");

    f.store.fail_writes_matching(None);
    let report = f.shipper().sync().await.unwrap();
    assert_eq!(report.uploaded, vec![old_failing, recent]);
    assert_eq!(report.deleted, vec![old_failing]);
    assert!(!f.tenant().join(old_failing.to_string()).exists());
    assert!(f.tenant().join(recent.to_string()).exists(), "inside the retention");
    assert_eq!(f.recorded(), vec![recent]);
    let leftovers: Vec<_> = std::fs::read_dir(f.tenant())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "the recent block and thanos.shipper.json: {leftovers:?}"
    );
}

#[tokio::test]
async fn interrupted_deletions_are_cleaned_up() {
    let f = Fixture::new();
    let now = now_ms();
    let id = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    let doomed = f.tenant().join(format!("{id}.tmp-for-deletion"));
    std::fs::rename(f.tenant().join(id.to_string()), &doomed).unwrap();

    let report = f.shipper().sync().await.unwrap();

    assert!(report.uploaded.is_empty());
    assert!(!doomed.exists());
}

#[tokio::test]
async fn skips_unfinished_foreign_and_broken_directories() {
    let f = Fixture::new();
    let now = now_ms();
    let tenant = f.tenant();
    let good = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));

    // Unfinished: being written, or a crash before meta.json.
    let creating = FakeBlock::new(now - 4 * HOUR_MS, now - 3 * HOUR_MS).write(&tenant);
    std::fs::rename(
        tenant.join(creating.to_string()),
        tenant.join(format!("{creating}.tmp-for-creation")),
    )
    .unwrap();
    let no_meta = f.add(FakeBlock::new(now - 5 * HOUR_MS, now - 4 * HOUR_MS));
    std::fs::remove_file(tenant.join(format!("{no_meta}/meta.json"))).unwrap();
    // Not blocks at all.
    std::fs::create_dir_all(tenant.join("wal")).unwrap();
    let lowercase = FakeBlock::new(now - 6 * HOUR_MS, now - 5 * HOUR_MS).write(&tenant);
    std::fs::rename(
        tenant.join(lowercase.to_string()),
        tenant.join(lowercase.to_string().to_lowercase()),
    )
    .unwrap();
    std::fs::write(
        tenant.join(Ulid::from_parts(5, 5).to_string()),
        b"a file named like a block",
    )
    .unwrap();
    // Broken: bad meta.json, meta.json of another block, missing index, missing chunks/.
    let bad_json = f.add(FakeBlock::new(now - 7 * HOUR_MS, now - 6 * HOUR_MS));
    std::fs::write(tenant.join(format!("{bad_json}/meta.json")), b"{\"ulid\": ").unwrap();
    let other = f.add(FakeBlock::new(now - 8 * HOUR_MS, now - 7 * HOUR_MS));
    let wrong_name = Ulid::from_parts(now as u64, 77);
    std::fs::rename(tenant.join(other.to_string()), tenant.join(wrong_name.to_string())).unwrap();
    let no_index = f.add(FakeBlock::new(now - 9 * HOUR_MS, now - 8 * HOUR_MS));
    std::fs::remove_file(tenant.join(format!("{no_index}/index"))).unwrap();
    let no_chunks = f.add(FakeBlock::new(now - 10 * HOUR_MS, now - 9 * HOUR_MS));
    std::fs::remove_dir_all(tenant.join(format!("{no_chunks}/chunks"))).unwrap();

    let report = f.shipper().sync().await.unwrap();

    assert_eq!(report.uploaded, vec![good]);
    assert_eq!(f.store.writes(), block_objects(good, 2));
    let mut broken = report.broken.clone();
    broken.sort();
    let mut expected: Vec<_> = [bad_json, wrong_name, no_index, no_chunks]
        .iter()
        .map(|id| tenant.join(id.to_string()))
        .collect();
    expected.sort();
    assert_eq!(broken, expected);
    // Broken blocks are never deleted, even far past the retention, and keep the lag up.
    assert!(tenant.join(no_chunks.to_string()).exists());
    assert!(f.metric("trawl_collector_shipper_upload_lag_seconds") > 0.0);
}

#[tokio::test]
async fn empty_blocks_are_not_uploaded_and_expire_locally() {
    let f = Fixture::new();
    let now = now_ms();
    let empty_old = f.add(FakeBlock::new(now - 12 * HOUR_MS, now - 10 * HOUR_MS).samples(0));
    let empty_recent = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS).samples(0));
    let full = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));

    let report = f.shipper().sync().await.unwrap();

    assert_eq!(report.uploaded, vec![full]);
    assert_eq!(report.skipped_empty, vec![empty_old, empty_recent]);
    assert_eq!(report.deleted, vec![empty_old]);
    assert!(f.tenant().join(empty_recent.to_string()).exists());
    assert!(!f.store.exists(&format!("{empty_recent}/meta.json")).await);
    assert_eq!(
        f.metric("trawl_collector_shipper_upload_lag_seconds"),
        0.0,
        "empty blocks are not lag"
    );
}

#[tokio::test]
async fn large_files_are_streamed_as_multipart_uploads() {
    let f = Fixture::new();
    let now = now_ms();
    let big = PART_SIZE * 2 + 12_345;
    let id = f.add(FakeBlock::new(now - 2 * HOUR_MS, now).chunks(&[big, 10]));

    let report = f.shipper().sync().await.unwrap();

    assert_eq!(report.uploaded, vec![id]);
    let log = f.store.log();
    assert!(log.contains(&format!("multipart {id}/chunks/000001")), "{log:?}");
    assert!(log.contains(&format!("put {id}/chunks/000002")), "{log:?}");
    assert_same_bytes(&f.store, &f.tenant(), &format!("{id}/chunks/000001")).await;
    assert!(f.metric("trawl_collector_shipper_uploaded_bytes_total") > big as f64);
}

#[tokio::test]
async fn concurrent_syncs_upload_each_block_once() {
    let f = Fixture::new();
    let now = now_ms();
    let a = f.add(FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS));
    let b = f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    let shipper = f.shipper();

    let (one, two) = tokio::join!(shipper.sync(), shipper.sync());

    let mut uploaded = one.unwrap().uploaded;
    uploaded.extend(two.unwrap().uploaded);
    assert_eq!(uploaded, vec![a, b]);
    assert_eq!(f.store.writes(), [block_objects(a, 2), block_objects(b, 2)].concat());
}

#[tokio::test]
async fn missing_tenant_directory_is_an_empty_sync() {
    let f = Fixture::new();
    let shipper = Shipper::new(f.store.clone(), f.tmp.path().join("nope"), RETENTION, f.metrics.clone());
    assert_eq!(shipper.sync().await.unwrap(), Default::default());
    assert_eq!(shipper.blocks_dir(), f.tmp.path().join("nope"));
}

#[tokio::test]
async fn metrics_have_their_names_and_units() {
    let f = Fixture::new();
    let now = now_ms();
    f.add(FakeBlock::new(now - 2 * HOUR_MS, now));
    let before = now_ms() as f64 / 1000.0;
    let report = f.shipper().sync().await.unwrap();

    assert_eq!(f.metric("trawl_collector_shipper_uploads_total"), 1.0);
    assert_eq!(f.metric("trawl_collector_shipper_upload_failures_total"), 0.0);
    assert_eq!(
        f.metric("trawl_collector_shipper_uploaded_bytes_total"),
        report.uploaded_bytes as f64
    );
    let last = f.metric("trawl_collector_shipper_last_upload_timestamp_seconds");
    assert!(
        last >= before.floor() && last <= now_ms() as f64 / 1000.0 + 1.0,
        "{last}"
    );
    assert_eq!(f.metric("trawl_collector_shipper_upload_lag_seconds"), 0.0);
}

#[tokio::test]
async fn upload_lag_is_the_worst_tenant() {
    let f = Fixture::new();
    let now = now_ms();
    let other_tenant = f.tmp.path().join("other");
    FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS)
        .created(now - 2 * HOUR_MS)
        .write(&other_tenant);
    f.add(FakeBlock::new(now - 2 * HOUR_MS, now).created(now - HOUR_MS));
    f.store.fail_next_writes(usize::MAX);
    let other = Shipper::new(f.store.clone(), other_tenant, RETENTION, f.metrics.clone()).with_backoff(fast_backoff(1));

    assert!(other.sync().await.is_err());
    assert!(f.shipper().sync().await.is_err());
    let lag = f.metric("trawl_collector_shipper_upload_lag_seconds");
    assert!((7190.0..7300.0).contains(&lag), "two hours, not one: {lag}");

    f.store.fail_next_writes(0);
    other.sync().await.unwrap();
    let lag = f.metric("trawl_collector_shipper_upload_lag_seconds");
    assert!((3590.0..3700.0).contains(&lag), "now the other tenant's hour: {lag}");
}
