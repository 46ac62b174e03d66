use std::collections::BTreeMap;
use std::path::Path;

use prometheus_client::registry::Registry;
use trawl_tsdb::meta::ThanosMeta;

use super::index::{SeriesSet, Symbols, hash_labels};
use super::series::SAMPLES_PER_CHUNK;
use super::*;

const D: i64 = DEFAULT_BLOCK_DURATION_MS;
const UP: &[(&str, &str)] = &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")];
const DOWN: &[(&str, &str)] = &[("__name__", "down"), ("instance", "a:9100"), ("job", "node")];

fn opts() -> HeadOptions {
    HeadOptions {
        block_duration_ms: D,
        wal_segment_size: 1 << 20,
    }
}

fn open(dir: &Path) -> Head {
    Head::open(dir, "t", opts(), HeadMetrics::new(&mut Registry::default())).expect("open head")
}

fn append(head: &Head, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> AppendReport {
    let mut app = head.appender();
    app.append(SeriesInput { labels, samples });
    app.commit().expect("commit")
}

/// `(ref, samples)` of the series with `labels`, read from its chunks.
fn stored(head: &Head, labels: &[(&str, &str)]) -> Option<(u64, Vec<(i64, f64)>)> {
    let st = head.lock();
    let hash = hash_labels(labels.iter().copied());
    let s = st.series.get(st.series.find(hash, labels)?)?;
    Some((s.series_ref, s.samples()))
}

fn chunk_sizes(head: &Head, labels: &[(&str, &str)]) -> Vec<usize> {
    let st = head.lock();
    let hash = hash_labels(labels.iter().copied());
    let slot = st.series.find(hash, labels).expect("series");
    st.series.get(slot).expect("series").chunk_sizes()
}

/// A case of the append table: name, samples sent, expected report, expected stored samples.
type AppendCase<'a> = (&'a str, &'a [(i64, f64)], AppendReport, &'a [(i64, f64)]);

/// Labels and samples of one series read back from a block.
type ReadSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

fn report(appended: u64, out_of_order: u64, out_of_bounds: u64, duplicate: u64, exact_duplicate: u64) -> AppendReport {
    AppendReport {
        appended,
        out_of_order,
        out_of_bounds,
        duplicate,
        exact_duplicate,
        series_created: 0,
    }
}

fn thanos() -> ThanosMeta {
    ThanosMeta::receive(BTreeMap::from([("tenant_id".to_owned(), "t".to_owned())]))
}

#[test]
fn head_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Head>();
}

// === append semantics ===

#[test]
fn append_checks_each_sample_like_prometheus() {
    // The series holds (10_000, 1.0); the head's newest sample is 10_000, so the appendable
    // minimum is 10_000 - D/2.
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let cases: &[AppendCase<'_>] = &[
        (
            "in order",
            &[(11_000, 2.0)],
            report(1, 0, 0, 0, 0),
            &[(10_000, 1.0), (11_000, 2.0)],
        ),
        ("out of order", &[(9_000, 2.0)], report(0, 1, 0, 0, 0), &[(10_000, 1.0)]),
        (
            "duplicate with another value",
            &[(10_000, 2.0)],
            report(0, 0, 0, 1, 0),
            &[(10_000, 1.0)],
        ),
        (
            "exact duplicate",
            &[(10_000, 1.0)],
            report(0, 0, 0, 0, 1),
            &[(10_000, 1.0)],
        ),
        (
            "out of bounds",
            &[(10_000 - D / 2 - 1, 1.0)],
            report(0, 0, 1, 0, 0),
            &[(10_000, 1.0)],
        ),
        (
            "disorder within the request",
            &[
                (12_000, 2.0),
                (11_000, 3.0),
                (12_000, 2.0),
                (12_000, 4.0),
                (13_000, 5.0),
            ],
            report(2, 1, 0, 1, 1),
            &[(10_000, 1.0), (12_000, 2.0), (13_000, 5.0)],
        ),
        (
            "stale marker after a value",
            &[(11_000, stale)],
            report(1, 0, 0, 0, 0),
            &[(10_000, 1.0), (11_000, stale)],
        ),
    ];
    for (name, input, want, want_stored) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let head = open(dir.path());
        append(&head, UP, &[(10_000, 1.0)]);
        let got = append(&head, UP, input);
        assert_eq!(got, *want, "{name}");
        let (_, samples) = stored(&head, UP).expect("series");
        let bits = |s: &[(i64, f64)]| s.iter().map(|&(t, v)| (t, v.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&samples), bits(want_stored), "{name}");
    }
}

#[test]
fn nans_are_compared_bit_for_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    append(&head, UP, &[(1_000, stale)]);
    assert_eq!(append(&head, UP, &[(1_000, stale)]), report(0, 0, 0, 0, 1));
    assert_eq!(append(&head, UP, &[(1_000, f64::NAN)]), report(0, 0, 0, 1, 0));
    assert_eq!(append(&head, UP, &[(2_000, f64::NAN)]), report(1, 0, 0, 0, 0));
    assert_eq!(append(&head, UP, &[(2_000, f64::NAN)]), report(0, 0, 0, 0, 1));
}

#[test]
fn appendable_window_follows_the_newest_sample_of_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let t0 = 100 * D;
    // An empty head takes its window from the first sample of the request.
    let mut app = head.appender();
    app.append(SeriesInput {
        labels: UP,
        samples: &[(t0, 1.0)],
    });
    app.append(SeriesInput {
        labels: DOWN,
        samples: &[(t0 - D / 2, 1.0)],
    });
    let other: &[(&str, &str)] = &[("__name__", "other")];
    app.append(SeriesInput {
        labels: other,
        samples: &[(t0 - D / 2 - 1, 1.0)],
    });
    let r = app.commit().expect("commit");
    assert_eq!((r.appended, r.out_of_bounds, r.series_created), (2, 1, 2));
    assert_eq!(
        head.num_series(),
        2,
        "a series whose samples are all refused is not created"
    );
    assert_eq!((head.min_time(), head.max_time()), (Some(t0 - D / 2), Some(t0)));
    // A new series is bounded by the head's newest sample too.
    assert_eq!(
        append(&head, other, &[(t0 - D / 2 - 1, 1.0), (t0 - D / 2, 2.0)]),
        AppendReport {
            series_created: 1,
            ..report(1, 0, 1, 0, 0)
        }
    );
}

#[test]
fn the_same_series_twice_in_one_request_is_checked_against_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let mut app = head.appender();
    app.append(SeriesInput {
        labels: UP,
        samples: &[(5_000, 1.0)],
    });
    app.append(SeriesInput {
        labels: UP,
        samples: &[(4_000, 1.0), (5_000, 1.0), (6_000, 2.0)],
    });
    let r = app.commit().expect("commit");
    assert_eq!(
        r,
        AppendReport {
            series_created: 1,
            ..report(2, 1, 0, 0, 1)
        }
    );
    assert_eq!(stored(&head, UP).expect("series").1, vec![(5_000, 1.0), (6_000, 2.0)]);
}

#[test]
fn dropping_an_appender_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    append(&head, UP, &[(1_000, 1.0)]);
    {
        let mut app = head.appender();
        app.append(SeriesInput {
            labels: UP,
            samples: &[(2_000, 2.0)],
        });
        app.append(SeriesInput {
            labels: DOWN,
            samples: &[(2_000, 2.0)],
        });
        assert_eq!(app.report().appended, 2);
    }
    assert_eq!(head.num_series(), 1);
    assert_eq!(head.max_time(), Some(1_000));
    // The series' newest sample is the committed one again: 1_500 is in order.
    assert_eq!(append(&head, UP, &[(1_500, 1.5)]), report(1, 0, 0, 0, 0));
    assert_eq!(stored(&head, UP).expect("series").1, vec![(1_000, 1.0), (1_500, 1.5)]);
    let (down_ref, _) = append_and_ref(&head, DOWN);
    assert!(
        down_ref > stored(&head, UP).expect("series").0,
        "refs of rolled back series are not reused"
    );
}

fn append_and_ref(head: &Head, labels: &[(&str, &str)]) -> (u64, AppendReport) {
    let r = append(head, labels, &[(3_000, 1.0)]);
    (stored(head, labels).expect("series").0, r)
}

#[test]
fn empty_inputs_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    assert_eq!(append(&head, UP, &[]), AppendReport::default());
    assert_eq!(head.appender().commit().expect("commit"), AppendReport::default());
    assert_eq!((head.num_series(), head.min_time()), (0, None));
}

#[test]
fn extreme_timestamps_do_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let r = append(&head, UP, &[(i64::MIN, 1.0), (i64::MIN + 1, 2.0), (-1, 3.0), (0, 4.0)]);
    assert_eq!(r.appended + r.out_of_bounds, 4);
    let r = append(&head, DOWN, &[(i64::MAX - 1, 1.0), (i64::MAX, 2.0)]);
    assert_eq!(r.appended, 2);
    assert_eq!(append(&head, UP, &[(0, 5.0)]).out_of_bounds, 1);
    head.compact(thanos()).ok();
    head.flush(thanos()).ok();
}

// === chunks ===

#[test]
fn chunks_are_cut_at_120_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let samples: Vec<(i64, f64)> = (0..250).map(|i| (i * 1_000, i as f64)).collect();
    append(&head, UP, &samples);
    assert_eq!(chunk_sizes(&head, UP), vec![SAMPLES_PER_CHUNK, SAMPLES_PER_CHUNK, 10]);
    assert_eq!(stored(&head, UP).expect("series").1, samples);
    assert_eq!(head.memory().chunks, 3);
}

#[test]
fn chunks_are_cut_at_block_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    // 5 samples before 2h, 6 from 2h on: two chunks although far below 120 samples.
    let samples: Vec<(i64, f64)> = (-5..=5).map(|i| (D + i * 1_000, 1.0)).collect();
    append(&head, UP, &samples);
    assert_eq!(chunk_sizes(&head, UP), vec![5, 6]);
    // Negative times align the same way (floor division).
    let samples: Vec<(i64, f64)> = (-2..=2).map(|i| (-D + i, 1.0)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    append(&head, DOWN, &samples);
    assert_eq!(chunk_sizes(&head, DOWN), vec![2, 3]);
}

// === WAL replay ===

#[test]
fn replay_restores_series_refs_and_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let many: Vec<Vec<(String, String)>> = (0..50)
        .map(|i| vec![("__name__".into(), "m".into()), ("i".into(), i.to_string())])
        .collect();
    let mut want = Vec::new();
    {
        let head = open(dir.path());
        for round in 0..300i64 {
            let mut app = head.appender();
            for (i, labels) in many.iter().enumerate() {
                if (round + i as i64) % 7 == 0 {
                    continue;
                }
                let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let v = (round * 31 + i as i64) as f64 / 3.0;
                app.append(SeriesInput {
                    labels: &pairs,
                    samples: &[(round * 15_000, v), (round * 15_000, v)],
                });
            }
            app.commit().expect("commit");
        }
        append(&head, UP, &[(4_500_000, f64::NAN)]);
        for labels in &many {
            let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            want.push(stored(&head, &pairs).expect("series"));
        }
        want.push(stored(&head, UP).expect("series"));
        assert_eq!(head.num_series(), 51);
    }
    let head = open(dir.path());
    assert_eq!(head.num_series(), 51);
    for (labels, want) in many.iter().zip(&want) {
        let pairs: Vec<(&str, &str)> = labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(stored(&head, &pairs).as_ref(), Some(want));
    }
    let (up_ref, up) = stored(&head, UP).expect("series");
    assert_eq!((up_ref, up.len(), up[0].1.is_nan()), (want[50].0, 1, true));
    assert_eq!(head.memory().chunks, 50 * 3 + 1);
    // New series get refs above every replayed one; old ones keep theirs.
    let max_ref = want.iter().map(|w| w.0).max().expect("refs");
    assert_eq!(append(&head, DOWN, &[(300 * 15_000, 1.0)]).appended, 1);
    assert!(stored(&head, DOWN).expect("series").0 > max_ref);
    // And the replayed state checks appends like before.
    assert_eq!(append(&head, UP, &[(4_500_000, 0.0)]).duplicate, 1);
}

#[test]
fn replay_survives_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let head = open(dir.path());
        append(&head, UP, &[(1_000, 1.0), (2_000, 2.0)]);
        append(&head, UP, &[(3_000, 3.0)]);
    }
    let wal_dir = dir.path().join(WAL_DIR);
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment with data");
    let len = std::fs::metadata(last).expect("meta").len();
    // Cut the last record in half: its samples are lost, the earlier ones are not.
    let file = std::fs::OpenOptions::new().write(true).open(last).expect("open");
    file.set_len(len - 5).expect("truncate");
    drop(file);
    let head = open(dir.path());
    assert_eq!(stored(&head, UP).expect("series").1, vec![(1_000, 1.0), (2_000, 2.0)]);
}

#[test]
fn replay_refuses_a_corrupt_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let head = open(dir.path());
        append(&head, UP, &[(1_000, 1.0)]);
        // A record that frames fine but is not ours.
        head.lock().wal.log(&[&[9, 9, 9]]).expect("log");
        append(&head, UP, &[(2_000, 1.0)]);
    }
    let err = Head::open(dir.path(), "t", opts(), HeadMetrics::new(&mut Registry::default())).expect_err("corrupt");
    assert!(matches!(err, HeadError::Record { .. }), "{err:?}");
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [
        HeadOptions {
            block_duration_ms: 0,
            ..opts()
        },
        HeadOptions {
            block_duration_ms: -7_200_000,
            ..opts()
        },
        HeadOptions {
            wal_segment_size: 0,
            ..opts()
        },
    ] {
        let err = Head::open(dir.path(), "t", bad, HeadMetrics::default()).expect_err("invalid");
        assert!(matches!(err, HeadError::InvalidOptions(_)));
    }
}

// === index ===

#[test]
fn hash_collisions_are_told_apart_by_labels() {
    let mut set = SeriesSet::default();
    let a = set.insert(42, UP.iter().copied(), 1);
    let b = set.insert(42, DOWN.iter().copied(), 2);
    assert_ne!(a, b);
    assert_eq!(set.find(42, UP), Some(a));
    assert_eq!(set.find(42, DOWN), Some(b));
    assert_eq!(set.find(42, &[("__name__", "up")]), None);
    assert_eq!(set.find(43, UP), None);
    set.remove(a);
    assert_eq!(set.find(42, UP), None);
    assert_eq!(set.find(42, DOWN), Some(b));
    let labels: Vec<_> = set.labels(set.get(b).expect("series")).collect();
    assert_eq!(labels, DOWN);
}

#[test]
fn label_hash_separates_names_from_values() {
    let a = hash_labels([("a", "bc")].into_iter());
    let b = hash_labels([("ab", "c")].into_iter());
    let c = hash_labels([("a", "b"), ("c", "")].into_iter());
    assert!(a != b && a != c && b != c);
}

#[test]
fn symbols_are_counted_reused_and_compacted() {
    let mut s = Symbols::default();
    let a = s.intern("alpha");
    let b = s.intern("beta");
    assert_eq!(s.intern("alpha"), a);
    assert_eq!(s.len(), 2);
    s.release(a);
    assert_eq!(s.get(a), "alpha", "one user left");
    s.release(a);
    assert_eq!(s.len(), 1);
    let c = s.intern("gamma-gamma-gamma");
    assert_eq!(c, a, "freed ids are reused");
    s.release(c);
    s.compact();
    assert_eq!(s.get(b), "beta");
    assert_eq!(s.intern("beta"), b);
    assert_eq!(s.intern(""), s.intern(""));
}

// === metrics ===

#[test]
fn metrics_count_appended_samples_per_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry = Registry::default();
    let head = Head::open(dir.path(), "team-a", opts(), HeadMetrics::new(&mut registry)).expect("open");
    append(&head, UP, &[(1_000, 1.0), (2_000, 1.0), (2_000, 1.0)]);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    for line in [
        "trawl_collector_head_samples_appended_total{tenant=\"team-a\"} 2",
        "trawl_collector_head_series{tenant=\"team-a\"} 1",
        "trawl_collector_head_series_created_total{tenant=\"team-a\"} 1",
        "trawl_collector_head_chunks{tenant=\"team-a\"} 1",
        "trawl_collector_blocks_written_total{tenant=\"team-a\"} 0",
        "trawl_collector_compaction_failures_total{tenant=\"team-a\"} 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains("trawl_collector_wal_size_bytes{tenant=\"team-a\"}"),
        "{text}"
    );
    assert!(
        text.contains("trawl_collector_wal_replay_duration_seconds{tenant=\"team-a\"}"),
        "{text}"
    );
}

// === memory ===

/// Resident set size of this process in bytes (Linux), for a rough cross-check.
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn memory_per_series_stays_small() {
    const SERIES: usize = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let rss_before = rss_bytes();
    // node_exporter-like series: shared names and values plus one unique value each.
    let ids: Vec<String> = (0..SERIES).map(|i| format!("{i:06}")).collect();
    for round in 0..2i64 {
        for batch in ids.chunks(2_000) {
            let mut app = head.appender();
            for id in batch {
                let labels = [
                    ("__name__", "node_cpu_seconds_total"),
                    ("cpu", id.as_str()),
                    ("instance", "host-1.example.com:9100"),
                    ("job", "node"),
                    ("mode", "idle"),
                ];
                app.append(SeriesInput {
                    labels: &labels,
                    samples: &[(round * 15_000, round as f64 * 1.5)],
                });
            }
            app.commit().expect("commit");
        }
    }
    let m = head.memory();
    let rss_after = rss_bytes();
    assert_eq!(m.series, SERIES);
    let per_series = m.overhead_bytes as f64 / SERIES as f64;
    let chunk_per_series = m.chunk_bytes as f64 / SERIES as f64;
    println!(
        "head memory: {SERIES} series, {} symbols: {per_series:.0} bytes/series bookkeeping (series structs, \
         label ids, index, symbols) + {chunk_per_series:.0} chunk bytes/series (2 samples; the open chunk \
         reserves 128 bytes); RSS grew {:.0} bytes/series (debug build, other tests running)",
        m.symbols,
        rss_before
            .zip(rss_after)
            .map_or(f64::NAN, |(b, a)| a.saturating_sub(b) as f64 / SERIES as f64),
    );
    assert!(per_series < 300.0, "{per_series} bytes of bookkeeping per series");
}

// === compaction ===

const A: &[(&str, &str)] = &[("__name__", "a"), ("job", "x")];
const B: &[(&str, &str)] = &[("__name__", "b"), ("job", "x")];
const C: &[(&str, &str)] = &[("__name__", "c"), ("job", "x")];

/// Samples of `labels` every minute in `[from, to)`, value = minute number.
fn minutes(from: i64, to: i64) -> Vec<(i64, f64)> {
    (from / 60_000..=to / 60_000)
        .map(|m| (m * 60_000, m as f64))
        .filter(|&(t, _)| t >= from && t < to)
        .collect()
}

/// Appends A over `[5m, 3h10m)`, B over `[5m, 1h)` and C over `[2h10m, 3h10m)`, in 30-minute
/// requests in time order (as scrapes arrive), and returns what was sent per series.
fn fill(head: &Head) -> [Vec<(i64, f64)>; 3] {
    let (a, b, c) = (
        minutes(300_000, 11_400_000),
        minutes(300_000, 3_600_000),
        minutes(7_800_000, 11_400_000),
    );
    for start in (0..11_400_000).step_by(1_800_000) {
        let window = |s: &[(i64, f64)]| {
            s.iter()
                .copied()
                .filter(|&(t, _)| t >= start && t < start + 1_800_000)
                .collect::<Vec<_>>()
        };
        let mut app = head.appender();
        for (labels, samples) in [(A, window(&a)), (B, window(&b)), (C, window(&c))] {
            app.append(SeriesInput {
                labels,
                samples: &samples,
            });
        }
        let r = app.commit().expect("commit");
        assert_eq!(r.rejected(), 0);
    }
    [a, b, c]
}

/// The series of the block in `dir`, as (labels, samples), after a full verification.
fn read_block(dir: &Path) -> Vec<ReadSeries> {
    let reader = trawl_tsdb::block::BlockReader::open(dir).expect("open block");
    reader.verify().expect("verify block");
    reader
        .series()
        .map(|s| {
            let s = s.expect("series");
            let labels = s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            let samples = s
                .chunks
                .iter()
                .flat_map(|c| c.iter().map(|r| r.expect("sample")))
                .collect();
            (labels, samples)
        })
        .collect()
}

fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()
}

fn below(samples: &[(i64, f64)], t: i64) -> Vec<(i64, f64)> {
    samples.iter().copied().filter(|s| s.0 < t).collect()
}

fn from(samples: &[(i64, f64)], t: i64) -> Vec<(i64, f64)> {
    samples.iter().copied().filter(|s| s.0 >= t).collect()
}

#[test]
fn compaction_writes_the_oldest_range_and_truncates_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    assert_eq!(head.compact(thanos()).expect("compact"), None, "empty head");
    let [a, b, c] = fill(&head);
    let refs = [A, C].map(|l| stored(&head, l).expect("series").0);

    let meta = head.compact(thanos()).expect("compact").expect("a block");
    assert_eq!((meta.min_time, meta.max_time), (300_000, D));
    assert_eq!(meta.stats.num_series, 2);
    assert_eq!(meta.stats.num_samples, (below(&a, D).len() + b.len()) as u64);
    assert_eq!(meta.thanos.as_ref().map(|t| t.labels["tenant_id"].as_str()), Some("t"));
    let block = read_block(&dir.path().join(meta.ulid.to_string()));
    assert_eq!(block, vec![(owned(A), below(&a, D)), (owned(B), b.clone())]);

    // The head keeps the rest, under the same refs; B is gone, C untouched.
    assert_eq!(head.num_series(), 2);
    assert_eq!(stored(&head, A), Some((refs[0], from(&a, D))));
    assert_eq!(stored(&head, C), Some((refs[1], c.clone())));
    assert_eq!(stored(&head, B), None);
    assert_eq!((head.min_time(), head.min_valid_time()), (Some(D), D));
    assert_eq!(head.memory().chunks, 2, "A: 70 samples from 2h, C: 60, one chunk each");
    // Not compactable again until the head spans 1.5 ranges once more.
    assert_eq!(head.compact(thanos()).expect("compact"), None);
    // A recreated B is a new series with a new ref.
    assert_eq!(append(&head, B, &[(11_400_000, 1.0)]).series_created, 1);
    assert!(stored(&head, B).expect("series").0 > refs[1]);
}

#[test]
fn compaction_checkpoints_the_wal_and_replay_restores_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments, so the oldest ones hold only samples that end up in the block.
    let small = HeadOptions {
        wal_segment_size: 2_048,
        ..opts()
    };
    let head = Head::open(dir.path(), "t", small.clone(), HeadMetrics::default()).expect("open");
    let [a, _, c] = fill(&head);
    let refs = [A, C].map(|l| stored(&head, l).expect("series").0);
    let segments_before = head.lock().wal.segment_range();
    let meta = head.compact(thanos()).expect("compact").expect("a block");
    let (first, _) = head.lock().wal.segment_range();
    assert!(
        first > segments_before.0,
        "old segments deleted: {segments_before:?} → {first}"
    );
    let wal_files: Vec<String> = std::fs::read_dir(dir.path().join(WAL_DIR))
        .expect("wal dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        wal_files.contains(&format!("checkpoint.{:08}", first - 1)),
        "{wal_files:?}"
    );
    drop(head);

    let head = Head::open(dir.path(), "t", small, HeadMetrics::default()).expect("reopen");
    assert_eq!(head.min_valid_time(), meta.max_time, "from the block's meta.json");
    assert_eq!(head.num_series(), 2);
    assert_eq!(stored(&head, A), Some((refs[0], from(&a, D))));
    assert_eq!(stored(&head, C), Some((refs[1], c)));
    // Replayed samples of the block's range stay out.
    assert_eq!(append(&head, A, &[(D - 60_000, 1.0)]).out_of_bounds, 1);
}

#[test]
fn flush_writes_everything_range_by_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    assert!(head.flush(thanos()).expect("flush").is_empty(), "empty head");
    // Two ranges, 1.25h in total: not compactable, but flushed.
    let a = minutes(D - 3_600_000, D + 900_000);
    append(&head, A, &a);
    let max = a.last().expect("samples").0;
    let metas = head.flush(thanos()).expect("flush");
    let ranges: Vec<_> = metas.iter().map(|m| (m.min_time, m.max_time)).collect();
    assert_eq!(ranges, vec![(D - 3_600_000, D), (D, max + 1)]);
    assert_eq!(
        read_block(&dir.path().join(metas[0].ulid.to_string())),
        vec![(owned(A), below(&a, D))]
    );
    assert_eq!(
        read_block(&dir.path().join(metas[1].ulid.to_string())),
        vec![(owned(A), from(&a, D))]
    );
    assert_eq!((head.num_series(), head.min_time(), head.max_time()), (0, None, None));
    assert_eq!(append(&head, A, &[(max, 1.0)]).out_of_bounds, 1);
    drop(head);

    let head = open(dir.path());
    assert_eq!((head.num_series(), head.min_valid_time()), (0, max + 1));
    assert_eq!(append(&head, A, &[(max, 1.0)]).out_of_bounds, 1);
    assert_eq!(append(&head, A, &[(max + 1, 1.0)]).appended, 1);
    drop(head);

    // The shipper deleted the blocks (retention): the head still knows where they ended.
    for m in &metas {
        std::fs::remove_dir_all(dir.path().join(m.ulid.to_string())).expect("remove block");
    }
    let head = open(dir.path());
    assert_eq!(head.min_valid_time(), max + 1);
    assert_eq!(stored(&head, A).expect("series").1, vec![(max + 1, 1.0)]);
    drop(head);
    std::fs::write(dir.path().join(HEAD_STATE_FILE), b"{\"min_valid_time\": \"x\"}").expect("write");
    let err = Head::open(dir.path(), "t", opts(), HeadMetrics::default()).expect_err("corrupt state file");
    assert!(matches!(err, HeadError::Io(FsError { op: "parse", .. })), "{err:?}");
}

#[test]
fn open_removes_unfinished_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unfinished = dir
        .path()
        .join(format!("{}{}", ulid::Ulid::new(), trawl_tsdb::block::TMP_SUFFIX));
    std::fs::create_dir_all(unfinished.join("chunks")).expect("mkdir");
    let _head = open(dir.path());
    assert!(!unfinished.exists());
}

#[test]
fn appends_continue_while_a_block_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let head = open(dir.path());
    let [a, b, c] = fill(&head);
    let sent = a.len() + b.len() + c.len();
    let late = minutes(11_400_000, 11_400_000 + 600_000);
    let meta = std::thread::scope(|s| {
        let compaction = s.spawn(|| head.compact(thanos()));
        for sample in &late {
            assert_eq!(append(&head, C, &[*sample]).appended, 1);
        }
        compaction.join().expect("join")
    });
    let meta = meta.expect("compact").expect("a block");
    let in_head: usize = [A, C].iter().map(|l| stored(&head, l).expect("series").1.len()).sum();
    assert_eq!(meta.stats.num_samples as usize + in_head, sent + late.len());
}

// === model check ===

mod model {
    use proptest::prelude::*;

    use super::*;

    /// A tiny block duration so requests hit the bounds and the block boundaries.
    const SMALL_D: i64 = 1_000;
    const SERIES: [&[(&str, &str)]; 3] = [UP, DOWN, A];

    /// One request: `(series index, samples)` inputs, and whether it is committed.
    type Request = (Vec<(usize, Vec<(i64, f64)>)>, bool);

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(1.0),
            Just(-2.5),
            Just(f64::NAN),
            Just(f64::from_bits(0x7ff0_0000_0000_0002))
        ]
    }

    fn request() -> impl Strategy<Value = Request> {
        // Timestamps on a 100 ms grid, so equal timestamps (duplicates) are common.
        let t = (0..60i64).prop_map(|x| x * 100);
        let input = (0..SERIES.len(), prop::collection::vec((t, value()), 0..8));
        (prop::collection::vec(input, 0..5), prop::bool::weighted(0.85))
    }

    /// The rules of the append table, written out plainly.
    #[derive(Default)]
    struct Model {
        stored: [Vec<(i64, u64)>; 3],
        max_t: Option<i64>,
    }

    impl Model {
        fn apply(&mut self, (inputs, commit): &Request) -> AppendReport {
            let mut r = AppendReport::default();
            let first = inputs.iter().find_map(|(_, s)| s.first()).map(|s| s.0);
            let Some(first) = first else { return r };
            let min_valid = self.max_t.unwrap_or(first) - SMALL_D / 2;
            let mut pending = self.stored.clone();
            for (i, samples) in inputs {
                for &(t, v) in samples {
                    let last = pending[*i].last().copied();
                    match last {
                        _ if t < min_valid => r.out_of_bounds += 1,
                        Some((lt, _)) if t < lt => r.out_of_order += 1,
                        Some((lt, lv)) if t == lt && lv == v.to_bits() => r.exact_duplicate += 1,
                        Some((lt, _)) if t == lt => r.duplicate += 1,
                        _ => {
                            r.series_created += u64::from(last.is_none());
                            r.appended += 1;
                            pending[*i].push((t, v.to_bits()));
                        }
                    }
                }
            }
            if *commit {
                let newest = pending.iter().filter_map(|s| s.last()).map(|s| s.0).max();
                self.max_t = self.max_t.max(newest);
                self.stored = pending;
            }
            r
        }
    }

    fn check_head(head: &Head, model: &Model) -> Result<(), TestCaseError> {
        for (i, labels) in SERIES.iter().enumerate() {
            let got = stored(head, labels).map(|(_, s)| s).unwrap_or_default();
            let got: Vec<(i64, u64)> = got.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(&got, &model.stored[i]);
            if got.is_empty() {
                continue;
            }
            // Chunks hold at most 120 samples and never cross a block boundary.
            let mut rest = &got[..];
            for size in chunk_sizes(head, labels) {
                prop_assert!(size <= SAMPLES_PER_CHUNK);
                let (chunk, tail) = rest.split_at(size);
                prop_assert_eq!(chunk[0].0.div_euclid(SMALL_D), chunk[size - 1].0.div_euclid(SMALL_D));
                rest = tail;
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn head_matches_the_model_and_replays_to_it(requests in prop::collection::vec(request(), 1..12)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let opts = HeadOptions { block_duration_ms: SMALL_D, wal_segment_size: 4_096 };
            let head = Head::open(dir.path(), "t", opts.clone(), HeadMetrics::default()).expect("open");
            let mut model = Model::default();
            for req in &requests {
                let want = model.apply(req);
                let mut app = head.appender();
                for (i, samples) in &req.0 {
                    app.append(SeriesInput { labels: SERIES[*i], samples });
                }
                let got = if req.1 { app.commit().expect("commit") } else { *app.report() };
                prop_assert_eq!(got, want);
            }
            check_head(&head, &model)?;
            drop(head);
            let head = Head::open(dir.path(), "t", opts, HeadMetrics::default()).expect("reopen");
            check_head(&head, &model)?;
        }
    }
}
