//! The verify report: per-block results, the deduplicated per-series counts, and their JSON and
//! text renderings.
//!
//! Deduplication follows Thanos Query's `--query.replica-label`: a series' identity is its
//! block's external labels (`meta.json` `thanos.labels`) plus its own labels (the external ones
//! win on a name clash, as Thanos Store adds them), minus the replica labels. Replicas and
//! overlapping blocks then hold the same samples under one identity, and each timestamp counts
//! once.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;
use trawl_model::labels::Labels;

use super::verify::BlockReport;

/// Bit pattern of Prometheus's staleness marker (`value.StaleNaN`), a NaN no sample has.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker (compares bits: every NaN is unequal to itself).
pub fn is_stale_marker(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One deduplicated series; one entry of the JSON `series` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesReport {
    /// Identity labels: external plus series labels, without the replica labels.
    pub labels: BTreeMap<String, String>,
    /// Distinct timestamps with a value that is not a staleness marker, over all replicas and
    /// blocks.
    pub samples: u64,
    /// Distinct timestamps holding only staleness markers.
    pub stale_markers: u64,
    /// First timestamp (samples and staleness markers alike), ms since epoch.
    pub min_time: i64,
    /// Last timestamp (samples and staleness markers alike), ms since epoch.
    pub max_time: i64,
}

/// Collects the timestamps of every series identity across blocks.
#[derive(Debug, Default)]
pub struct SeriesTally {
    replica_labels: Vec<String>,
    /// Per identity: `(timestamp ms, is a staleness marker)`, unsorted, with duplicates.
    series: HashMap<Labels, Vec<(i64, bool)>>,
}

impl SeriesTally {
    /// A tally dropping the label names `replica_labels` from identities.
    pub fn new(replica_labels: Vec<String>) -> SeriesTally {
        SeriesTally {
            replica_labels,
            series: HashMap::new(),
        }
    }

    /// Adds one series of a block with external labels `external`.
    pub fn add(&mut self, external: &BTreeMap<String, String>, labels: &Labels, samples: &[(i64, f64)]) {
        let mut identity = labels.clone();
        for (name, value) in external {
            identity.set(name.clone(), value.clone());
        }
        identity.retain(|l| !self.replica_labels.contains(&l.name));
        self.series
            .entry(identity)
            .or_default()
            .extend(samples.iter().map(|&(t, v)| (t, is_stale_marker(v))));
    }

    /// The per-identity counts, sorted by labels. A timestamp where any replica has a real
    /// value counts as a sample, otherwise as a staleness marker.
    pub fn finish(self) -> Vec<SeriesReport> {
        let mut out: Vec<(Labels, SeriesReport)> = self
            .series
            .into_iter()
            .filter_map(|(labels, mut points)| {
                // `false` (a value) sorts first, so dedup keeps it over a marker at the same time.
                points.sort_unstable();
                points.dedup_by_key(|p| p.0);
                let (min_time, max_time) = (points.first()?.0, points.last()?.0);
                let stale_markers = points.iter().filter(|p| p.1).count() as u64;
                let report = SeriesReport {
                    labels: labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                    samples: points.len() as u64 - stale_markers,
                    stale_markers,
                    min_time,
                    max_time,
                };
                Some((labels, report))
            })
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, r)| r).collect()
    }
}

/// The whole result of `tools bucket verify`: the JSON document of `--output=json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every block of the bucket, oldest ULID first.
    pub blocks: Vec<BlockReport>,
    /// Deduplicated series (only with `--series`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<SeriesReport>>,
    /// Problems found in all blocks, listed or not.
    pub problems: u64,
}

impl Report {
    /// Builds the report, summing the blocks' problems.
    pub fn new(blocks: Vec<BlockReport>, series: Option<Vec<SeriesReport>>) -> Report {
        let problems = blocks.iter().map(|b| b.problem_count).sum();
        Report {
            blocks,
            series,
            problems,
        }
    }

    /// The JSON document, one line.
    pub fn to_json(&self) -> String {
        // Plain strings, integers and maps: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A human-readable listing: one line per block with its problems indented below it, the
    /// series (when collected), and a summary line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for b in &self.blocks {
            let range = match (b.min_time, b.max_time) {
                (Some(min), Some(max)) => format!("[{min}, {max})"),
                _ => "[?, ?)".to_owned(),
            };
            let verdict = if b.problems.is_empty() { "ok" } else { "PROBLEMS" };
            let _ = writeln!(
                out,
                "block {} {range} {} series={} samples={} {verdict}",
                b.ulid,
                format_labels(&b.labels),
                b.series,
                b.samples
            );
            for p in &b.problems {
                let _ = writeln!(out, "  - {p}");
            }
        }
        for s in self.series.iter().flatten() {
            let _ = writeln!(
                out,
                "series {} samples={} stale_markers={} min_time={} max_time={}",
                format_labels(&s.labels),
                s.samples,
                s.stale_markers,
                s.min_time,
                s.max_time
            );
        }
        let _ = writeln!(out, "{} blocks, {} problems", self.blocks.len(), self.problems);
        out
    }
}

/// `{a="b", c="d"}` with Go-style escaping of the values.
fn format_labels(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}
