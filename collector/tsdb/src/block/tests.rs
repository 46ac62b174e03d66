use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use super::*;
use crate::chunkenc::XorChunk;
use crate::chunks::split_chunk_ref;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);

/// Samples of series `i`: a few special values among ordinary ones, 15 s apart with jitter.
fn samples(i: usize, n: usize) -> Vec<(i64, f64)> {
    (0..n)
        .map(|k| {
            let t = T0 + (k as i64) * 15_000 + ((i * 7 + k * 13) % 11) as i64;
            let v = match (i + k) % 17 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => -0.0,
                _ => (i * 1000 + k) as f64 * 0.25 - 3.0,
            };
            (t, v)
        })
        .collect()
}

/// Cuts samples into chunks of at most `per_chunk` samples, as the head does.
fn to_chunks(samples: &[(i64, f64)], per_chunk: usize) -> Vec<ChunkData> {
    samples
        .chunks(per_chunk)
        .map(|part| {
            let mut c = XorChunk::new();
            for &(t, v) in part {
                c.append(t, v);
            }
            ChunkData::from_xor(&c).unwrap()
        })
        .collect()
}

fn edge_value(i: usize) -> String {
    match i % 8 {
        0 => "héllo wörld ✓".into(),
        1 => " ".into(),
        2 => "\"quoted\" \\ back\\slash".into(),
        3 => "line\nbreak\ttab".into(),
        4 => "日本語🚀".into(),
        5 => "0".into(),
        6 => "a=b,c}{".into(),
        _ => format!("plain-{i}"),
    }
}

fn make_series(n: usize, samples_per_series: usize) -> Vec<(Labels, Vec<(i64, f64)>)> {
    (0..n)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", format!("metric_{}", i % 7)),
                ("id", i.to_string()),
                ("edge", edge_value(i)),
                (
                    "job",
                    if i % 2 == 0 {
                        "node".to_owned()
                    } else {
                        "app".to_owned()
                    },
                ),
            ]);
            (labels, samples(i, samples_per_series))
        })
        .collect()
}

fn to_block_series(data: &[(Labels, Vec<(i64, f64)>)]) -> Vec<BlockSeries> {
    // Reverse so the writer has to sort.
    data.iter()
        .rev()
        .map(|(l, s)| BlockSeries {
            labels: l.clone(),
            chunks: to_chunks(s, 120),
        })
        .collect()
}

fn thanos() -> ThanosMeta {
    ThanosMeta::receive(BTreeMap::from([
        ("tenant_id".to_owned(), "t1".to_owned()),
        ("replica".to_owned(), "a".to_owned()),
    ]))
}

fn decoded(s: &BlockSeries) -> Vec<(i64, u64)> {
    s.chunks
        .iter()
        .flat_map(|c| c.iter().map(|r| r.map(|(t, v)| (t, v.to_bits())).unwrap()))
        .collect()
}

#[test]
fn round_trip_through_reader() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_series(50, 300);
    let meta = write_block(dir.path(), T0, T0 + 2 * HOUR, Some(thanos()), to_block_series(&data)).unwrap();

    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![meta.ulid.to_string()],
        "only the final block directory remains"
    );
    let block_dir = dir.path().join(meta.ulid.to_string());
    let block = BlockReader::open(&block_dir).unwrap();
    assert_eq!(block.meta(), &meta);
    assert_eq!(
        meta.stats,
        BlockStats {
            num_samples: 50 * 300,
            num_series: 50,
            num_chunks: 50 * 3
        }
    );
    assert_eq!(
        (meta.compaction.level, meta.compaction.sources.clone()),
        (1, vec![meta.ulid])
    );

    let mut want = data.clone();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got: Vec<BlockSeries> = block.series().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, (labels, samples)) in got.iter().zip(&want) {
        assert_eq!(&g.labels, labels);
        assert_eq!(
            decoded(g),
            samples.iter().map(|(t, v)| (*t, v.to_bits())).collect::<Vec<_>>()
        );
        assert_eq!(g.num_samples(), 300);
    }
    let report = block.verify().unwrap();
    assert_eq!(
        (report.num_series, report.num_chunks, report.num_samples),
        (50, 150, 15_000)
    );
    assert_eq!(report.index.num_label_indices, 4);

    let t = meta.thanos.as_ref().unwrap();
    assert_eq!(t.segment_files, vec!["000001"]);
    let rel: Vec<&str> = t.files.iter().map(|f| f.rel_path.as_str()).collect();
    assert_eq!(rel, ["chunks/000001", "index", "meta.json"]);
    assert_eq!(
        t.files[1].size_bytes,
        Some(fs::metadata(block_dir.join("index")).unwrap().len())
    );
    assert_eq!(t.files[2].size_bytes, None);
    assert_eq!(
        fs::read(block_dir.join("tombstones")).unwrap(),
        tombstones::empty_bytes()
    );
}

#[test]
fn series_are_sorted_and_postings_complete() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_series(40, 5);
    let meta = write_block(dir.path(), T0, T0 + 2 * HOUR, None, to_block_series(&data)).unwrap();
    assert!(meta.thanos.is_none());
    let index = IndexReader::open(&dir.path().join(meta.ulid.to_string()).join("index")).unwrap();
    let table = index.postings_table().unwrap();
    assert_eq!((table[0].name, table[0].value), ("", ""));
    let job_node = table.iter().find(|e| e.name == "job" && e.value == "node").unwrap();
    let refs = index.postings(job_node.offset).unwrap();
    assert_eq!(refs.len(), 20);
    assert!(refs.windows(2).all(|w| w[0] < w[1]));
    for r in refs {
        assert_eq!(index.series(r).unwrap().labels.get("job"), "node");
    }
    let all = index.all_series_refs().unwrap();
    let labels: Vec<Labels> = all.iter().map(|r| index.series(*r).unwrap().labels).collect();
    assert!(labels.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn rejects_bad_input_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let one = |labels: Labels, chunks: Vec<ChunkData>| BlockSeries { labels, chunks };
    let l = Labels::from_pairs([("__name__", "up")]);
    let ok_chunks = to_chunks(&samples(0, 10), 5);

    assert!(matches!(
        write_block(dir.path(), T0, T0 + HOUR, None, vec![]),
        Err(BlockError::Empty)
    ));
    assert!(matches!(
        write_block(dir.path(), T0, T0 + HOUR, None, vec![one(l.clone(), vec![])]),
        Err(BlockError::Empty)
    ));
    assert!(matches!(
        write_block(dir.path(), T0, T0, None, vec![one(l.clone(), ok_chunks.clone())]),
        Err(BlockError::InvalidRange { .. })
    ));
    let dup = vec![one(l.clone(), ok_chunks.clone()), one(l.clone(), ok_chunks.clone())];
    assert!(matches!(
        write_block(dir.path(), T0, T0 + HOUR, None, dup),
        Err(BlockError::InvalidSeries { .. })
    ));
    let swapped = vec![one(l.clone(), vec![ok_chunks[1].clone(), ok_chunks[0].clone()])];
    assert!(matches!(
        write_block(dir.path(), T0, T0 + HOUR, None, swapped),
        Err(BlockError::InvalidSeries { .. })
    ));
    let outside = vec![one(l.clone(), ok_chunks.clone())];
    assert!(matches!(
        write_block(dir.path(), T0 + 1000, T0 + HOUR, None, outside),
        Err(BlockError::InvalidSeries { .. })
    ));
    let end_excl = vec![one(l.clone(), ok_chunks.clone())];
    let last = ok_chunks[1].max_time;
    assert!(matches!(
        write_block(dir.path(), T0, last, None, end_excl),
        Err(BlockError::InvalidSeries { .. })
    ));
    let empty_chunk = vec![one(
        l.clone(),
        vec![ChunkData {
            min_time: T0,
            max_time: T0,
            data: vec![0, 0],
        }],
    )];
    assert!(matches!(
        write_block(dir.path(), T0, T0 + HOUR, None, empty_chunk),
        Err(BlockError::InvalidSeries { .. })
    ));
    assert!(matches!(
        write_block(dir.path(), T0, T0 + HOUR, None, vec![one(Labels::new(), ok_chunks)]),
        Err(BlockError::InvalidSeries { .. })
    ));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn open_and_verify(dir: &Path) -> Result<VerifyReport, BlockError> {
    BlockReader::open(dir)?.verify()
}

#[test]
fn hostile_blocks_error_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_series(6, 130);
    let meta = write_block(dir.path(), T0, T0 + 2 * HOUR, Some(thanos()), to_block_series(&data)).unwrap();
    let good = dir.path().join(meta.ulid.to_string());
    open_and_verify(&good).unwrap();

    // Each flipped byte and each truncation of index, chunks and tombstones is detected.
    for file in ["index", "chunks/000001", "tombstones"] {
        let bytes = fs::read(good.join(file)).unwrap();
        let work = dir.path().join("work");
        for i in 0..bytes.len() {
            let _ = fs::remove_dir_all(&work);
            copy_dir(&good, &work);
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            fs::write(work.join(file), &bad).unwrap();
            assert!(
                open_and_verify(&work).is_err(),
                "{file}: flip at byte {i} of {} not detected",
                bytes.len()
            );
        }
        for n in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            let _ = fs::remove_dir_all(&work);
            copy_dir(&good, &work);
            fs::write(work.join(file), &bytes[..n]).unwrap();
            assert!(
                open_and_verify(&work).is_err(),
                "{file}: truncation to {n} not detected"
            );
        }
        let _ = fs::remove_dir_all(&work);
    }

    // meta.json: truncated, wrong stats, missing.
    let work = dir.path().join("work");
    copy_dir(&good, &work);
    let meta_bytes = fs::read(good.join("meta.json")).unwrap();
    for n in (0..meta_bytes.len()).step_by(13) {
        fs::write(work.join("meta.json"), &meta_bytes[..n]).unwrap();
        assert!(open_and_verify(&work).is_err(), "meta.json truncated to {n}");
    }
    let mut m = meta.clone();
    m.stats.num_samples += 1;
    m.write(&work).unwrap();
    assert!(matches!(open_and_verify(&work), Err(BlockError::Inconsistent(_))));
    fs::remove_file(work.join("meta.json")).unwrap();
    assert!(matches!(open_and_verify(&work), Err(BlockError::Meta(_))));

    // Garbage in place of every file.
    meta.write(&work).unwrap();
    for file in ["index", "chunks/000001"] {
        let _ = fs::remove_dir_all(&work);
        copy_dir(&good, &work);
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        fs::write(work.join(file), junk).unwrap();
        assert!(open_and_verify(&work).is_err(), "{file} replaced by junk");
    }
    // A bucket copy without tombstones is still valid.
    let _ = fs::remove_dir_all(&work);
    copy_dir(&good, &work);
    fs::remove_file(work.join("tombstones")).unwrap();
    assert_eq!(open_and_verify(&work).unwrap().num_tombstones, 0);
}

// === real validation with promtool 2.42 ===

fn promtool() -> Option<&'static str> {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED: promtool not found; install Debian `prometheus` to run the real block checks.");
    }
    ok.then_some("promtool")
}

/// Runs `promtool tsdb analyze` and `promtool tsdb dump` on the block and checks that the dump
/// has exactly the expected samples (matched per series through the `id` label).
fn check_with_promtool(db: &Path, meta: &BlockMeta, data: &[(Labels, Vec<(i64, f64)>)]) {
    let Some(promtool) = promtool() else { return };
    let out = Command::new(promtool)
        .args(["tsdb", "analyze"])
        .arg(db)
        .arg(meta.ulid.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "analyze failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("Block ID: {}", meta.ulid)), "{stdout}");
    assert!(
        stdout.contains(&format!("\nSeries: {}\n", meta.stats.num_series)),
        "{stdout}"
    );

    // promtool 2.42 opens the directory as a read-only DB, which needs a WAL directory.
    fs::create_dir_all(db.join("wal")).unwrap();
    let out = Command::new(promtool)
        .args([
            "tsdb",
            "dump",
            &format!("--min-time={}", meta.min_time),
            &format!("--max-time={}", meta.max_time),
        ])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len() as u64, meta.stats.num_samples, "dump line count");

    let mut want: HashMap<String, Vec<(i64, u64)>> = data
        .iter()
        .map(|(l, s)| {
            (
                l.get("id").to_owned(),
                s.iter().map(|(t, v)| (*t, canonical(*v))).collect(),
            )
        })
        .collect();
    let mut got: HashMap<String, Vec<(i64, u64)>> = HashMap::new();
    for line in lines {
        // `{labels} value timestamp`
        let mut parts = line.rsplitn(3, ' ');
        let (ts, val, labels) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let id_at = labels.find("id=\"").unwrap_or_else(|| panic!("no id label in {line}")) + 4;
        let id: String = labels[id_at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        let v = match val {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => val.parse::<f64>().unwrap(),
        };
        got.entry(id).or_default().push((ts.parse().unwrap(), canonical(v)));
    }
    for v in got.values_mut().chain(want.values_mut()) {
        v.sort_unstable();
    }
    assert_eq!(got.len(), want.len());
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "series id={id}");
    }
}

/// Bits of a value as printed by promtool (`%g`): all NaNs print alike.
fn canonical(v: f64) -> u64 {
    if v.is_nan() { f64::NAN.to_bits() } else { v.to_bits() }
}

#[test]
fn promtool_reads_a_thousand_series_block() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_series(1000, 250);
    let meta = write_block(dir.path(), T0, T0 + 2 * HOUR, Some(thanos()), to_block_series(&data)).unwrap();
    assert_eq!(
        meta.stats,
        BlockStats {
            num_samples: 250_000,
            num_series: 1000,
            num_chunks: 3000
        }
    );
    let report = open_and_verify(&dir.path().join(meta.ulid.to_string())).unwrap();
    assert_eq!(report.num_samples, 250_000);
    check_with_promtool(dir.path(), &meta, &data);
}

#[test]
fn promtool_reads_a_block_with_several_segments() {
    let dir = tempfile::tempdir().unwrap();
    let data = make_series(30, 400);
    let opts = WriteOptions { segment_size: 8 * 1024 };
    let meta = write_block_with(
        dir.path(),
        opts,
        T0,
        T0 + 2 * HOUR,
        Some(thanos()),
        to_block_series(&data),
    )
    .unwrap();
    let t = meta.thanos.as_ref().unwrap();
    assert!(t.segment_files.len() >= 2, "{:?}", t.segment_files);
    let block = BlockReader::open(&dir.path().join(meta.ulid.to_string())).unwrap();
    let index = block.index();
    let last = index.all_series_refs().unwrap().pop().unwrap();
    let seg = split_chunk_ref(index.series(last).unwrap().chunks[0].chunk_ref).0;
    assert!(seg >= 1, "last series should live in a later segment");
    block.verify().unwrap();
    check_with_promtool(dir.path(), &meta, &data);
}

/// Prometheus writes the same bytes: let promtool build a block from OpenMetrics, then
/// re-encode each of its chunks' samples with [`XorChunk`] and compare.
#[test]
fn xor_chunks_are_byte_identical_to_prometheus() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.om");
    let mut text = String::from("# TYPE m gauge\n");
    let base_s = T0 / 1000;
    for k in 0..500i64 {
        // Jitter and a 10-minute gap every 50 samples exercise several delta-of-delta buckets.
        let t = base_s * 1000 + k * 15_000 + (k * k % 7) * 1000 + (k / 50) * 600_000;
        for s in 0..3 {
            let v = match (k + s) % 9 {
                0 => "NaN".to_owned(),
                1 => "+Inf".to_owned(),
                2 => format!("{}", (k as f64) * 1.5),
                3 => "0".to_owned(),
                _ => format!("{}", ((k * 7919 + s * 31) % 1000) as f64 / 7.0),
            };
            text.push_str(&format!("m{{s=\"{s}\"}} {v} {}.{:03}\n", t / 1000, t % 1000));
        }
    }
    text.push_str("# EOF\n");
    fs::write(&input, text).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut chunks_checked = 0;
    for e in fs::read_dir(&out_dir).unwrap() {
        let block = BlockReader::open(&e.unwrap().path()).unwrap();
        for s in block.series() {
            for c in s.unwrap().chunks {
                let mut mine = XorChunk::new();
                for sample in c.iter() {
                    let (t, v) = sample.unwrap();
                    mine.append(t, v);
                }
                assert_eq!(mine.bytes(), &c.data[..], "chunk at {}", c.min_time);
                chunks_checked += 1;
            }
        }
    }
    assert!(chunks_checked >= 12, "only {chunks_checked} chunks");
}
