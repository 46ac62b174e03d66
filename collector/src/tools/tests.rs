//! The bucket verifier on blocks written by the real block writer into a filesystem bucket:
//! sound blocks, every kind of damage (each byte of index and chunks flipped, truncations,
//! missing and broken files, unsorted postings, samples out of order), deduplication across
//! replicas, the output shapes, and a cross-check of the sample count with `promtool`.
//!
//! ```text
//! write_block ──► <tmp>/bucket/<ULID>/… ──LocalFileSystem──► verify_bucket ──► Report
//!                        ▲ damage applied here
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use object_store::local::LocalFileSystem;
use trawl_model::labels::Labels;
use trawl_tsdb::block::{BlockSeries, ChunkData, write_block};
use trawl_tsdb::chunkenc::XorChunk;
use trawl_tsdb::index::IndexReader;
use trawl_tsdb::meta::ThanosMeta;
use ulid::Ulid;

use super::report::STALE_NAN_BITS;
use super::*;

const HOUR: i64 = 3_600_000;
/// A block boundary: 2023-11-14T22:00:00Z.
const T0: i64 = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// A bucket directory with a scratch directory beside it.
struct Bucket {
    tmp: tempfile::TempDir,
}

impl Bucket {
    fn new() -> Bucket {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("bucket")).unwrap();
        std::fs::create_dir_all(tmp.path().join("scratch")).unwrap();
        Bucket { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("bucket")
    }

    fn block(&self, id: Ulid) -> PathBuf {
        self.dir().join(id.to_string())
    }

    /// Writes a block of `series` (labels, samples) with external labels `external`.
    fn write(&self, external: &[(&str, &str)], series: &[(Labels, Vec<(i64, f64)>)]) -> Ulid {
        let external: BTreeMap<String, String> = external.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let series = series
            .iter()
            .map(|(labels, samples)| BlockSeries {
                labels: labels.clone(),
                chunks: to_chunks(samples, 5),
            })
            .collect();
        write_block(
            &self.dir(),
            T0,
            T0 + 2 * HOUR,
            Some(ThanosMeta::receive(external)),
            series,
        )
        .unwrap()
        .ulid
    }

    fn verify_with(&self, opts: &VerifyOptions) -> Report {
        let store = LocalFileSystem::new_with_prefix(self.dir()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let report = runtime
            .block_on(verify_bucket(&store, opts, &self.tmp.path().join("scratch")))
            .unwrap();
        let left: Vec<_> = std::fs::read_dir(self.tmp.path().join("scratch")).unwrap().collect();
        assert!(left.is_empty(), "scratch directories left behind");
        report
    }

    fn verify(&self) -> Report {
        self.verify_with(&VerifyOptions::default())
    }
}

/// Cuts samples into XOR chunks of at most `per_chunk` samples, as the head does.
fn to_chunks(samples: &[(i64, f64)], per_chunk: usize) -> Vec<ChunkData> {
    samples
        .chunks(per_chunk)
        .filter_map(|part| {
            let mut c = XorChunk::new();
            for &(t, v) in part {
                c.append(t, v);
            }
            ChunkData::from_xor(&c)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Three series of 12 samples 15 s apart; the last sample of `up{instance="b"}` is a stale marker.
fn three_series() -> Vec<(Labels, Vec<(i64, f64)>)> {
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let samples = (0..12)
                .map(|k| {
                    let v = if *inst == "b" && k == 11 {
                        stale()
                    } else {
                        (i * 100 + k) as f64
                    };
                    (T0 + k as i64 * 15_000, v)
                })
                .collect();
            (labels(&[("__name__", "up"), ("instance", inst)]), samples)
        })
        .collect()
}

fn sound_block(bucket: &Bucket) -> Ulid {
    bucket.write(&[("tenant_id", "t1"), ("replica", "r0")], &three_series())
}

fn one_block(report: &Report) -> &BlockReport {
    assert_eq!(report.blocks.len(), 1, "{report:#?}");
    &report.blocks[0]
}

/// Asserts that the report has problems and one of them mentions `says`.
fn assert_problem(report: &Report, says: &str) {
    assert!(report.problems > 0, "no problem reported, wanted {says:?}: {report:#?}");
    let all: Vec<&String> = report.blocks.iter().flat_map(|b| &b.problems).collect();
    assert!(
        all.iter().any(|p| p.contains(says)),
        "no problem says {says:?}: {all:#?}"
    );
}

fn segment(bucket: &Bucket, id: Ulid) -> PathBuf {
    bucket.block(id).join("chunks/000001")
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_sound_block_has_no_problems_and_its_samples_are_counted() {
    let bucket = Bucket::new();
    let id = sound_block(&bucket);
    // Not blocks: ignored.
    std::fs::create_dir_all(bucket.dir().join("debug/metas")).unwrap();
    std::fs::write(bucket.dir().join("debug/metas/x.json"), "{}").unwrap();
    std::fs::write(bucket.dir().join("thanos.shipper.json"), "{}").unwrap();

    let report = bucket.verify_with(&VerifyOptions {
        replica_labels: vec!["replica".into()],
        series: true,
    });
    let block = one_block(&report);
    assert_eq!(report.problems, 0, "{report:#?}");
    assert!(block.problems.is_empty());
    assert_eq!(block.ulid, id.to_string());
    assert_eq!((block.min_time, block.max_time), (Some(T0), Some(T0 + 2 * HOUR)));
    assert_eq!(block.labels.get("tenant_id").map(String::as_str), Some("t1"));
    assert_eq!((block.series, block.samples), (3, 36));

    let series = report.series.as_ref().unwrap();
    let counts: Vec<(String, u64, u64, i64, i64)> = series
        .iter()
        .map(|s| {
            (
                s.labels["instance"].clone(),
                s.samples,
                s.stale_markers,
                s.min_time,
                s.max_time,
            )
        })
        .collect();
    let last = T0 + 11 * 15_000;
    assert_eq!(
        counts,
        vec![
            ("a".into(), 12, 0, T0, last),
            ("b".into(), 11, 1, T0, last),
            ("c".into(), 12, 0, T0, last),
        ]
    );
    // Identity: external labels joined, replica label dropped.
    assert_eq!(
        series[0].labels.keys().map(String::as_str).collect::<Vec<_>>(),
        ["__name__", "instance", "tenant_id"]
    );
}

#[test]
fn an_empty_bucket_is_sound() {
    let report = Bucket::new().verify();
    assert_eq!(report, Report::new(Vec::new(), None));
    assert_eq!(report.to_json(), r#"{"blocks":[],"problems":0}"#);
}

/// Flips each byte of the `what` file at `path` in turn and asserts that `bucket verify` reports
/// a problem, restoring the file after each; returns the file's length.
fn every_flip_is_a_problem(bucket: &Bucket, path: &Path, what: &str) -> usize {
    let good = std::fs::read(path).unwrap();
    for at in 0..good.len() {
        flip(path, at);
        let report = bucket.verify();
        assert!(
            report.problems > 0,
            "flipped {what} byte {at} of {} went unnoticed",
            good.len()
        );
        std::fs::write(path, &good).unwrap();
    }
    good.len()
}

#[test]
fn every_flipped_index_byte_is_a_problem() {
    let bucket = Bucket::new();
    let id = sound_block(&bucket);
    let path = bucket.block(id).join("index");
    every_flip_is_a_problem(&bucket, &path, "index");
    assert_eq!(bucket.verify().problems, 0);
}

#[test]
fn every_flipped_chunk_byte_is_a_problem() {
    let bucket = Bucket::new();
    let id = sound_block(&bucket);
    let path = segment(&bucket, id);
    let len = every_flip_is_a_problem(&bucket, &path, "chunk");
    // A flipped data byte is named as a checksum mismatch.
    flip(&path, len - 10);
    assert_problem(&bucket.verify(), "checksum mismatch");
}

#[test]
fn damaged_files_are_reported_and_sound_blocks_beside_them_are_not() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 10] = [
        (
            "meta.json removed",
            |b| std::fs::remove_file(b.join("meta.json")).unwrap(),
            "meta.json missing",
        ),
        (
            "meta.json not JSON",
            |b| std::fs::write(b.join("meta.json"), "{\"ulid\": ").unwrap(),
            "not valid block meta JSON",
        ),
        (
            "meta.json version 2",
            |b| edit_meta(b, |m| m["version"] = 2.into()),
            "version 2",
        ),
        (
            "meta.json of another block",
            |b| edit_meta(b, |m| m["ulid"] = "00000000000000000000000000".into()),
            "names block 00000000000000000000000000",
        ),
        (
            "meta.json stats wrong",
            |b| edit_meta(b, |m| m["stats"]["numSamples"] = 37.into()),
            "stats say 37 samples",
        ),
        (
            "index removed",
            |b| std::fs::remove_file(b.join("index")).unwrap(),
            "index missing",
        ),
        (
            "index truncated",
            |b| truncate(&b.join("index"), 100),
            "index unreadable",
        ),
        (
            "chunks truncated",
            |b| truncate(&b.join("chunks/000001"), 40),
            "truncated",
        ),
        (
            "chunks removed",
            |b| std::fs::remove_dir_all(b.join("chunks")).unwrap(),
            "chunks/000001 listed in meta.json is missing",
        ),
        (
            "stray chunk file",
            |b| std::fs::write(b.join("chunks/000002"), "x").unwrap(),
            "chunks unreadable",
        ),
    ];
    for (what, damage, says) in cases {
        let bucket = Bucket::new();
        let sound = sound_block(&bucket);
        let broken = sound_block(&bucket);
        damage(&bucket.block(broken));
        let report = bucket.verify();
        assert_problem(&report, says);
        let sound_report = report.blocks.iter().find(|b| b.ulid == sound.to_string()).unwrap();
        assert!(sound_report.problems.is_empty(), "{what}: {sound_report:#?}");
        assert_eq!(report.blocks.len(), 2, "{what}");
        assert!(report.to_text().contains("PROBLEMS"), "{what}");
    }
}

/// Rewrites `<block>/meta.json` after `edit`.
fn edit_meta(block: &Path, edit: fn(&mut serde_json::Value)) {
    let path = block.join("meta.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
}

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

#[test]
fn unsorted_postings_are_reported() {
    let bucket = Bucket::new();
    let id = sound_block(&bucket);
    let path = bucket.block(id).join("index");
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = {
        let reader = IndexReader::from_bytes(bytes.clone()).unwrap();
        let table = reader.postings_table().unwrap();
        table.iter().find(|e| e.name == "__name__").unwrap().offset as usize
    };
    // `len | count | refs… | crc`: swap the first two refs and fix the CRC.
    let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
    let refs = offset + 8;
    let first: [u8; 4] = bytes[refs..refs + 4].try_into().unwrap();
    bytes.copy_within(refs + 4..refs + 8, refs);
    bytes[refs + 4..refs + 8].copy_from_slice(&first);
    let crc = crc32c::crc32c(&bytes[offset + 4..offset + 4 + len]);
    bytes[offset + 4 + len..offset + 8 + len].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&path, bytes).unwrap();

    let report = bucket.verify();
    assert_problem(&report, "not strictly increasing");
    // The series themselves are still read.
    assert_eq!(one_block(&report).samples, 36);
}

#[test]
fn samples_out_of_order_inside_a_chunk_are_reported() {
    let bucket = Bucket::new();
    let samples = vec![(T0 + 1000, 1.0), (T0 + 3000, 2.0), (T0 + 2000, 3.0)];
    bucket.write(&[("tenant_id", "t1")], &[(labels(&[("__name__", "x")]), samples)]);
    let says = format!("sample at {} does not come after {}", T0 + 2000, T0 + 3000);
    assert_problem(&bucket.verify(), &says);
}

#[test]
fn a_badly_damaged_block_lists_100_problems_and_counts_the_rest() {
    let bucket = Bucket::new();
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..150)
        .map(|i| (labels(&[("__name__", "m"), ("i", &i.to_string())]), vec![(T0, 1.0)]))
        .collect();
    let id = bucket.write(&[("tenant_id", "t1")], &series);
    // A segment with its header only: every chunk reference points past its end.
    let path = segment(&bucket, id);
    truncate(&path, 8);

    let report = bucket.verify();
    let block = one_block(&report);
    assert_eq!(block.problems.len(), verify::MAX_LISTED_PROBLEMS + 1);
    // 150 bad references and the segment size meta.json records.
    assert_eq!(report.problems, 151);
    assert_eq!(block.problems.last().unwrap(), "51 more problems not listed");
}

#[test]
fn replicas_deduplicate_into_one_series_with_distinct_timestamps() {
    let bucket = Bucket::new();
    let series = labels(&[("__name__", "requests_total"), ("job", "app")]);
    // Replica a: 0..100 s; replica b: 50..150 s and a stale marker at 160 s; both every 10 s.
    let a: Vec<(i64, f64)> = (0..=10).map(|k| (T0 + k * 10_000, k as f64)).collect();
    let mut b: Vec<(i64, f64)> = (5..=15).map(|k| (T0 + k * 10_000, k as f64)).collect();
    b.push((T0 + 160_000, stale()));
    bucket.write(&[("tenant_id", "t1"), ("replica", "a")], &[(series.clone(), a)]);
    bucket.write(&[("tenant_id", "t1"), ("replica", "b")], &[(series.clone(), b)]);
    // Another tenant's copy stays its own series.
    bucket.write(
        &[("tenant_id", "t2"), ("replica", "a")],
        &[(series.clone(), vec![(T0, 1.0)])],
    );

    let report = bucket.verify_with(&VerifyOptions {
        replica_labels: vec!["replica".into()],
        series: true,
    });
    assert_eq!(report.problems, 0);
    let got: Vec<(String, u64, u64, i64, i64)> = report
        .series
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.labels["tenant_id"].clone(),
                s.samples,
                s.stale_markers,
                s.min_time,
                s.max_time,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![("t1".into(), 16, 1, T0, T0 + 160_000), ("t2".into(), 1, 0, T0, T0),]
    );

    // Without the replica label, each replica is a series of its own.
    let report = bucket.verify_with(&VerifyOptions {
        replica_labels: vec![],
        series: true,
    });
    let samples: Vec<u64> = report.series.unwrap().iter().map(|s| s.samples).collect();
    // Sorted by labels: replica a of t1 and t2, then replica b.
    assert_eq!(samples, vec![11, 1, 11]);
}

#[test]
fn a_value_wins_over_a_stale_marker_at_the_same_timestamp() {
    let mut tally = SeriesTally::new(vec!["replica".into()]);
    let series = labels(&[("__name__", "x"), ("replica", "in-series-labels")]);
    tally.add(&BTreeMap::new(), &series, &[(1, stale()), (2, 2.0)]);
    tally.add(&BTreeMap::new(), &series, &[(1, 1.0), (3, stale())]);
    // Ordinary NaN is a value, not a marker.
    tally.add(&BTreeMap::new(), &series, &[(4, f64::NAN)]);
    let out = tally.finish();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].samples, out[0].stale_markers), (3, 1));
    assert_eq!(out[0].labels, BTreeMap::from([("__name__".to_owned(), "x".to_owned())]));
}

#[test]
fn json_and_text_outputs_have_the_documented_shape() {
    let bucket = Bucket::new();
    let id = sound_block(&bucket);
    let report = bucket.verify_with(&VerifyOptions {
        replica_labels: vec!["replica".into()],
        series: true,
    });
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["problems"], 0);
    let block = &json["blocks"][0];
    assert_eq!(block["ulid"], id.to_string());
    assert_eq!(block["min_time"], T0);
    assert_eq!(block["max_time"], T0 + 2 * HOUR);
    assert_eq!(block["labels"]["replica"], "r0");
    assert_eq!(block["series"], 3);
    assert_eq!(block["samples"], 36);
    assert_eq!(block["problems"], serde_json::json!([]));
    assert!(block.get("problem_count").is_none());
    let series = &json["series"][1];
    assert_eq!(series["labels"]["instance"], "b");
    assert_eq!(series["samples"], 11);
    assert_eq!(series["stale_markers"], 1);
    assert_eq!(series["min_time"], T0);
    assert_eq!(series["max_time"], T0 + 11 * 15_000);

    let text = report.to_text();
    assert!(
        text.contains(&format!(
            "block {id} [{T0}, {}) {{replica=\"r0\", tenant_id=\"t1\"}} series=3 samples=36 ok",
            T0 + 2 * HOUR
        )),
        "{text}"
    );
    assert!(
        text.contains("series {__name__=\"up\", instance=\"b\", tenant_id=\"t1\"} samples=11 stale_markers=1"),
        "{text}"
    );
    assert!(text.ends_with("1 blocks, 0 problems\n"), "{text}");
}

/// `promtool tsdb dump` prints one line per sample (stale markers included): its count must
/// equal ours.
#[test]
fn sample_count_matches_promtool_dump() {
    let Ok(out) = Command::new("promtool").arg("--version").output() else {
        eprintln!("promtool not installed; skipped");
        return;
    };
    assert!(out.status.success());
    let bucket = Bucket::new();
    let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..20)
        .map(|i| {
            let samples = (0..(i * 7 + 3))
                .map(|k| (T0 + k * 15_000 + i, (k * i) as f64))
                .collect();
            (labels(&[("__name__", "m"), ("i", &i.to_string())]), samples)
        })
        .collect();
    bucket.write(&[("tenant_id", "t1")], &series);
    let report = bucket.verify();
    assert_eq!(report.problems, 0);

    // promtool 2.42 opens the directory as a database, which needs a WAL directory.
    std::fs::create_dir(bucket.dir().join("wal")).unwrap();
    let dump = Command::new("promtool")
        .args([
            "tsdb",
            "dump",
            "--min-time",
            &T0.to_string(),
            "--max-time",
            &(T0 + 2 * HOUR).to_string(),
        ])
        .arg(bucket.dir())
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let lines = String::from_utf8_lossy(&dump.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .count() as u64;
    assert_eq!(lines, one_block(&report).samples);
    assert_eq!(lines, (0..20).map(|i| i * 7 + 3).sum::<u64>());
}
