//! The checks of one block directory, collecting every problem instead of stopping at the
//! first (unlike [`trawl_tsdb::block::BlockReader::verify`]), so one report shows all that is
//! wrong with a bucket.
//!
//! In order: `meta.json` parses and names this block; the files `meta.json`'s Thanos section
//! lists have their sizes; the index header, TOC and symbols (CRC, strictly sorted), then
//! [`IndexReader::verify`] (postings table and lists sorted, series sorted and aligned, every
//! CRC); each series' chunk references resolve and their CRCs match; samples decode, increase
//! strictly inside a series (across its chunks too), and each chunk's first and last timestamps
//! equal its index entry and lie in the block's range; finally the counts equal `meta.json`'s
//! `stats` (only when nothing else was wrong, since any other problem skews the counts).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use serde::Serialize;
use trawl_model::labels::Labels;
use trawl_tsdb::chunkenc::{ENCODING_XOR, iter_xor};
use trawl_tsdb::chunks::{CHUNKS_DIR, ChunkReader};
use trawl_tsdb::index::{ChunkMeta, INDEX_FILENAME, IndexReader};
use trawl_tsdb::meta::{BlockMeta, BlockStats, META_FILENAME, MetaError};
use ulid::Ulid;

use trawl_process::error_chain;

/// Problems listed per block; past it only their number is added, so a badly damaged block
/// does not flood the report.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// What the checks found in one block; one entry of the JSON `blocks` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockReport {
    /// The block's ULID (its directory name).
    pub ulid: String,
    /// `minTime` of `meta.json`, ms since epoch; `None` when `meta.json` is unusable.
    pub min_time: Option<i64>,
    /// `maxTime` of `meta.json`, ms since epoch (exclusive); `None` when `meta.json` is unusable.
    pub max_time: Option<i64>,
    /// External labels of `meta.json`'s Thanos section (empty for plain Prometheus blocks).
    pub labels: BTreeMap<String, String>,
    /// Series read from the index.
    pub series: u64,
    /// Samples decoded from the chunks, stale markers included (comparable to `meta.json`'s
    /// `stats.numSamples`).
    pub samples: u64,
    /// What is wrong, one sentence each; at most [`MAX_LISTED_PROBLEMS`] plus a line giving
    /// the number not listed. Empty for a sound block.
    pub problems: Vec<String>,
    /// Every problem found, listed or not.
    #[serde(skip)]
    pub problem_count: u64,
}

// === impl BlockReport ===

impl BlockReport {
    fn new(id: Ulid) -> BlockReport {
        BlockReport {
            ulid: id.to_string(),
            min_time: None,
            max_time: None,
            labels: BTreeMap::new(),
            series: 0,
            samples: 0,
            problems: Vec::new(),
            problem_count: 0,
        }
    }

    fn problem(&mut self, message: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(message);
        }
    }

    /// Adds the line counting the problems past the listing limit.
    fn finish(mut self) -> BlockReport {
        let unlisted = self.problem_count - self.problems.len() as u64;
        if unlisted > 0 {
            self.problems.push(format!("{unlisted} more problems not listed"));
        }
        self
    }
}

/// A sink for every series read: the block's external labels, the series' labels and its
/// decoded samples `(timestamp ms, value)` in file order (only the chunks that decoded).
pub type OnSeries<'a> = dyn FnMut(&BTreeMap<String, String>, &Labels, &[(i64, f64)]) + 'a;

/// Checks the block `id` in directory `dir` (laid out as in the bucket: `meta.json`, `index`,
/// `chunks/…`), hands each series to `on_series` and reports what it found. Never fails and
/// never panics: unreadable parts become problems.
pub fn verify_block(dir: &Path, id: Ulid, on_series: &mut OnSeries<'_>) -> BlockReport {
    let mut report = BlockReport::new(id);
    let Some(meta) = read_meta(dir, id, &mut report) else {
        return report.finish();
    };
    check_file_sizes(dir, &meta, &mut report);
    let index_path = dir.join(INDEX_FILENAME);
    if !index_path.exists() {
        report.problem("index missing".to_owned());
        return report.finish();
    }
    let index = match IndexReader::open(&index_path) {
        Ok(index) => index,
        Err(e) => {
            report.problem(format!("index unreadable: {}", error_chain(&e)));
            return report.finish();
        }
    };
    // A broken index section does not stop the series checks: the series may still be readable.
    if let Err(e) = index.verify() {
        report.problem(format!("index: {}", error_chain(&e)));
    }
    let chunks = match ChunkReader::open(&dir.join(CHUNKS_DIR)) {
        Ok(chunks) => chunks,
        Err(e) => {
            report.problem(format!("chunks unreadable: {}", error_chain(&e)));
            return report.finish();
        }
    };
    let refs = match index.all_series_refs() {
        Ok(refs) => refs,
        Err(e) => {
            report.problem(format!("index: series list unreadable: {}", error_chain(&e)));
            return report.finish();
        }
    };
    let external = report.labels.clone();
    let mut series = SeriesChecker {
        meta: &meta,
        chunks: &chunks,
        report: &mut report,
        samples: Vec::new(),
        data: Vec::new(),
        num_chunks: 0,
    };
    for r in refs {
        match index.series(r) {
            Ok(entry) => {
                series.check(&entry.labels, &entry.chunks);
                on_series(&external, &entry.labels, &series.samples);
            }
            Err(e) => series.report.problem(format!("index: series {r}: {}", error_chain(&e))),
        }
    }
    let num_chunks = series.num_chunks;
    let found = BlockStats {
        num_samples: report.samples,
        num_series: report.series,
        num_chunks,
    };
    if report.problem_count == 0 && found != meta.stats {
        report.problem(format!(
            "meta.json stats say {} samples, {} series, {} chunks; the block has {}, {}, {}",
            meta.stats.num_samples,
            meta.stats.num_series,
            meta.stats.num_chunks,
            found.num_samples,
            found.num_series,
            found.num_chunks
        ));
    }
    report.finish()
}

/// Reads `meta.json` and fills the report's meta fields; `None` (with a problem) when it is
/// missing, unparsable, or belongs to another block.
fn read_meta(dir: &Path, id: Ulid, report: &mut BlockReport) -> Option<BlockMeta> {
    let bytes = match fs::read(dir.join(META_FILENAME)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            report.problem("meta.json missing (partial upload, or a block being deleted)".to_owned());
            return None;
        }
        Err(e) => {
            report.problem(format!("meta.json unreadable: {e}"));
            return None;
        }
    };
    let meta = match BlockMeta::from_json(&bytes) {
        Ok(meta) => meta,
        Err(MetaError::Json { source, .. }) => {
            report.problem(format!("meta.json is not valid block meta JSON: {source}"));
            return None;
        }
        Err(e) => {
            report.problem(format!("meta.json: {}", error_chain(&e)));
            return None;
        }
    };
    report.min_time = Some(meta.min_time);
    report.max_time = Some(meta.max_time);
    report.labels = meta.thanos.as_ref().map(|t| t.labels.clone()).unwrap_or_default();
    if meta.ulid != id {
        report.problem(format!("meta.json names block {}, not {id}", meta.ulid));
        return None;
    }
    if meta.min_time >= meta.max_time {
        report.problem(format!(
            "meta.json time range [{}, {}) is empty",
            meta.min_time, meta.max_time
        ));
    }
    Some(meta)
}

/// The files `meta.json`'s Thanos section lists with a size must exist with that size.
fn check_file_sizes(dir: &Path, meta: &BlockMeta, report: &mut BlockReport) {
    let Some(thanos) = &meta.thanos else {
        return;
    };
    for file in &thanos.files {
        let Some(want) = file.size_bytes else {
            continue;
        };
        match fs::metadata(dir.join(&file.rel_path)) {
            Ok(m) if m.len() == want => {}
            Ok(m) => report.problem(format!("{} is {} bytes, meta.json says {want}", file.rel_path, m.len())),
            Err(_) => report.problem(format!("{} listed in meta.json is missing", file.rel_path)),
        }
    }
}

/// Reads and checks one series at a time, reusing its buffers.
struct SeriesChecker<'a> {
    meta: &'a BlockMeta,
    chunks: &'a ChunkReader,
    report: &'a mut BlockReport,
    /// Samples of the current series that decoded.
    samples: Vec<(i64, f64)>,
    /// Bytes of the current chunk.
    data: Vec<u8>,
    /// Chunks read in the block.
    num_chunks: u64,
}

impl SeriesChecker<'_> {
    /// Reads every chunk of a series into `self.samples`, reporting what is wrong.
    fn check(&mut self, labels: &Labels, metas: &[ChunkMeta]) {
        self.report.series += 1;
        self.samples.clear();
        // One out-of-order problem per series is enough to point at it.
        let mut order_reported = false;
        for m in metas {
            self.num_chunks += 1;
            let encoding = match self.chunks.read_into(m.chunk_ref, &mut self.data) {
                Ok(encoding) => encoding,
                Err(e) => {
                    self.report.problem(format!("series {labels}: {}", error_chain(&e)));
                    continue;
                }
            };
            if encoding != ENCODING_XOR {
                self.report.problem(format!(
                    "series {labels}: chunk {:#x} has encoding {encoding}, not XOR (1)",
                    m.chunk_ref
                ));
                continue;
            }
            let start = self.samples.len();
            let mut complete = true;
            for sample in iter_xor(&self.data) {
                match sample {
                    Ok((t, v)) => {
                        if let Some(&(last, _)) = self.samples.last()
                            && t <= last
                            && !order_reported
                        {
                            order_reported = true;
                            self.report
                                .problem(format!("series {labels}: sample at {t} does not come after {last}"));
                        }
                        self.samples.push((t, v));
                    }
                    Err(e) => {
                        self.report.problem(format!(
                            "series {labels}: chunk {:#x} does not decode: {e}",
                            m.chunk_ref
                        ));
                        complete = false;
                        break;
                    }
                }
            }
            let decoded = &self.samples[start..];
            self.report.samples += decoded.len() as u64;
            // A chunk that stopped decoding has already been reported; its span says nothing.
            let span = complete.then(|| decoded.first().zip(decoded.last()).map(|(f, l)| (f.0, l.0)));
            self.check_range(labels, m, span);
        }
    }

    /// The chunk's samples must span exactly its index entry, inside the block's range. `span`
    /// is its first and last timestamp (`Some(None)`: no samples; `None`: decoding stopped).
    fn check_range(&mut self, labels: &Labels, m: &ChunkMeta, span: Option<Option<(i64, i64)>>) {
        match span {
            None => {}
            Some(None) => self
                .report
                .problem(format!("series {labels}: chunk {:#x} holds no samples", m.chunk_ref)),
            Some(Some((first, last))) if (first, last) != (m.min_time, m.max_time) => {
                self.report.problem(format!(
                    "series {labels}: chunk {:#x} holds samples {first}..{last}, the index says {}..{}",
                    m.chunk_ref, m.min_time, m.max_time
                ));
            }
            Some(_) => {}
        }
        if m.min_time < self.meta.min_time || m.max_time >= self.meta.max_time {
            self.report.problem(format!(
                "series {labels}: chunk {:#x} ({}..{}) outside the block's range [{}, {})",
                m.chunk_ref, m.min_time, m.max_time, self.meta.min_time, self.meta.max_time
            ));
        }
    }
}
