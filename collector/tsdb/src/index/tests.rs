use std::time::Instant;

use trawl_model::labels::Labels;

use super::encoding::crc32c;
use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn s<'a>(labels: &'a Labels, chunks: &'a [ChunkMeta]) -> IndexSeries<'a> {
    IndexSeries { labels, chunks }
}

fn meta(min: i64, max: i64, r: u64) -> ChunkMeta {
    ChunkMeta {
        min_time: min,
        max_time: max,
        chunk_ref: r,
    }
}

#[test]
fn tiny_index_has_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let (a, b) = (
        labels(&[("__name__", "up"), ("job", "a")]),
        labels(&[("__name__", "up"), ("job", "b")]),
    );
    let (ca, cb) = ([meta(1000, 2000, 8), meta(3000, 4000, 40)], [meta(1500, 2500, 70)]);
    let stats = write_index(
        &path,
        &[
            IndexSeries {
                labels: &a,
                chunks: &ca,
            },
            IndexSeries {
                labels: &b,
                chunks: &cb,
            },
        ],
    )
    .unwrap();
    let data = std::fs::read(&path).unwrap();
    assert_eq!(stats.size_bytes, data.len() as u64);
    assert_eq!(&data[..5], &[0xBA, 0xAA, 0xD7, 0x00, 2]);

    // Symbols: "__name__", "a", "b", "job", "up" — sorted, uvarint-prefixed, CRC over count+entries.
    let body: &[u8] = b"\x00\x00\x00\x05\x08__name__\x01a\x01b\x03job\x02up";
    assert_eq!(&data[5..9], &(body.len() as u32).to_be_bytes());
    assert_eq!(&data[9..9 + body.len()], body);
    assert_eq!(&data[9 + body.len()..13 + body.len()], &crc32c(body).to_be_bytes());

    // Symbols end at 5 + 4 + 24 + 4 = 37; first series at offset 48 (16-aligned): 2 labels (0,4) (3,1), 2 chunks: 1000 (+1000) ref 8,
    // then 3000-2000, +1000, ref +32.
    let toc = stats.toc;
    assert_eq!(toc.series, 37);
    assert_eq!(&data[37..48], &[0; 11]);
    let series_body = [2, 0, 4, 3, 1, 2, 0xD0, 0x0F, 0xE8, 0x07, 8, 0xE8, 0x07, 0xE8, 0x07, 64];
    assert_eq!(data[48] as usize, series_body.len());
    assert_eq!(&data[49..49 + series_body.len()], &series_body);
    assert_eq!(&data[65..69], &crc32c(&series_body).to_be_bytes());
    assert_eq!(toc.symbols, 5);
    assert!(
        toc.label_indices < toc.postings
            && toc.postings < toc.label_indices_table
            && toc.label_indices_table < toc.postings_table
    );

    let r = IndexReader::from_bytes(data).unwrap();
    assert_eq!(r.all_series_refs().unwrap(), vec![3, 5]);
    assert_eq!(
        r.series(3).unwrap(),
        SeriesEntry {
            labels: a,
            chunks: ca.to_vec()
        }
    );
    assert_eq!(
        r.series(5).unwrap(),
        SeriesEntry {
            labels: b,
            chunks: cb.to_vec()
        }
    );
    let table = r.postings_table().unwrap();
    let keys: Vec<(&str, &str)> = table.iter().map(|e| (e.name, e.value)).collect();
    assert_eq!(keys, [("", ""), ("__name__", "up"), ("job", "a"), ("job", "b")]);
    assert!(table.iter().all(|e| e.offset % 4 == 0));
    assert_eq!(r.postings(table[1].offset).unwrap(), vec![3, 5]);
    assert_eq!(r.postings(table[3].offset).unwrap(), vec![5]);
    let summary = r.verify().unwrap();
    assert_eq!(
        summary,
        IndexSummary {
            num_series: 2,
            num_chunks: 3,
            num_symbols: 5,
            num_postings: 4,
            num_label_indices: 2
        }
    );
}

#[test]
fn writer_rejects_what_prometheus_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let (a, b) = (labels(&[("__name__", "a")]), labels(&[("__name__", "b")]));
    let c = [meta(0, 10, 8)];
    let unsorted = write_index(&path, &[s(&b, &c), s(&a, &c)]);
    assert!(matches!(unsorted, Err(IndexError::SeriesOutOfOrder { index: 1 })));
    assert!(matches!(
        write_index(&path, &[s(&a, &c), s(&a, &c)]),
        Err(IndexError::SeriesOutOfOrder { .. })
    ));
    let overlapping = [meta(0, 10, 8), meta(10, 20, 20)];
    assert!(matches!(
        write_index(&path, &[s(&a, &overlapping)]),
        Err(IndexError::ChunksOutOfOrder { index: 0, chunk: 1 })
    ));
    assert!(matches!(
        write_index(&path, &[s(&a, &[meta(5, 4, 8)])]),
        Err(IndexError::ChunksOutOfOrder { .. })
    ));
    let refs_back = write_index(&path, &[s(&a, &[meta(0, 1, 100)]), s(&b, &[meta(0, 1, 50)])]);
    assert!(matches!(refs_back, Err(IndexError::ChunkRefsOutOfOrder { index: 1 })));
    let empty_name = labels(&[("", "x")]);
    assert!(matches!(
        write_index(&path, &[s(&empty_name, &c)]),
        Err(IndexError::EmptyLabel { index: 0 })
    ));
}

#[test]
fn reader_rejects_damaged_files() {
    assert!(matches!(
        IndexReader::from_bytes(vec![]),
        Err(IndexError::BadHeader { .. })
    ));
    assert!(matches!(
        IndexReader::from_bytes(vec![0; 100]),
        Err(IndexError::BadHeader { magic: 0, .. })
    ));
    let mut v3 = vec![0xBA, 0xAA, 0xD7, 0x00, 3];
    v3.resize(100, 0);
    assert!(matches!(
        IndexReader::from_bytes(v3),
        Err(IndexError::BadHeader { version: 3, .. })
    ));
    // A TOC with a valid CRC but offsets pointing past the file.
    let mut bad_toc = vec![0xBA, 0xAA, 0xD7, 0x00, 2];
    let toc: Vec<u8> = [5u64, 6, 7, 8, 9, u64::MAX]
        .iter()
        .flat_map(|o| o.to_be_bytes())
        .collect();
    bad_toc.extend_from_slice(&toc);
    bad_toc.extend_from_slice(&crc32c(&toc).to_be_bytes());
    assert!(matches!(IndexReader::from_bytes(bad_toc), Err(IndexError::Corrupt(_))));
}

/// 100k series with 2 chunks each: must stay far from quadratic (seconds in a debug build).
#[test]
fn writes_and_verifies_100k_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let n = 100_000u64;
    let all: Vec<Labels> = (0..n)
        .map(|i| {
            Labels::from_pairs([
                ("__name__", format!("m{}", i % 100)),
                ("instance", format!("host-{:05}:9100", i / 100)),
                ("job", "node".to_owned()),
            ])
        })
        .collect();
    let mut sorted: Vec<&Labels> = all.iter().collect();
    sorted.sort_unstable();
    let chunks: Vec<[ChunkMeta; 2]> = (0..n)
        .map(|i| [meta(0, 100, 8 + i * 64), meta(200, 300, 8 + i * 64 + 32)])
        .collect();
    let series: Vec<IndexSeries<'_>> = sorted
        .iter()
        .zip(&chunks)
        .map(|(l, c)| IndexSeries { labels: l, chunks: c })
        .collect();
    let started = Instant::now();
    let stats = write_index(&path, &series).unwrap();
    let written = started.elapsed();
    let summary = IndexReader::open(&path).unwrap().verify().unwrap();
    println!(
        "100k series: write {written:?}, write+verify {:?}, {} bytes",
        started.elapsed(),
        stats.size_bytes
    );
    assert_eq!(summary.num_series, n);
    assert_eq!(summary.num_chunks, 2 * n);
    assert_eq!(summary.num_postings, 1 + 100 + 1000 + 1);
    assert!(written.as_secs() < 30, "index writing took {written:?}");
}

/// Swaps the first two references of the postings list at `offset` and fixes its CRC, so only
/// the order is wrong.
fn swap_first_postings(data: &mut [u8], offset: u64) {
    let at = offset as usize;
    let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let body = at + 4..at + 4 + len;
    let refs = body.start + 4;
    let (first, second) = (data[refs..refs + 4].to_vec(), data[refs + 4..refs + 8].to_vec());
    data[refs..refs + 4].copy_from_slice(&second);
    data[refs + 4..refs + 8].copy_from_slice(&first);
    let crc = crc32c(&data[body.clone()]);
    data[body.end..body.end + 4].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn verify_rejects_unsorted_postings_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let all: Vec<Labels> = ["a", "b", "c"]
        .iter()
        .map(|i| labels(&[("__name__", "up"), ("instance", i)]))
        .collect();
    let chunks = [meta(0, 10, 8)];
    let series: Vec<IndexSeries<'_>> = all.iter().map(|l| s(l, &chunks)).collect();
    write_index(&path, &series).unwrap();
    let good = std::fs::read(&path).unwrap();
    let reader = IndexReader::from_bytes(good.clone()).unwrap();
    assert_eq!(reader.verify().unwrap().num_series, 3);
    let table: Vec<(String, String, u64)> = reader
        .postings_table()
        .unwrap()
        .iter()
        .map(|e| (e.name.to_owned(), e.value.to_owned(), e.offset))
        .collect();

    // The `__name__="up"` list and the all-series list, each with two entries swapped.
    for (name, value) in [("__name__", "up"), ("", "")] {
        let (_, _, offset) = table.iter().find(|e| e.0 == name && e.1 == value).unwrap();
        let mut bad = good.clone();
        swap_first_postings(&mut bad, *offset);
        let reader = IndexReader::from_bytes(bad).unwrap();
        let err = reader.verify().unwrap_err().to_string();
        assert!(
            err.contains("not strictly increasing at entry 1"),
            "{name}={value}: {err}"
        );
        assert!(err.contains(&format!("{name}={value:?}")), "{err}");
    }
}
