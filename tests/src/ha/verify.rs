//! `trawl-collector tools bucket verify --series --output=json`: running it and reading its
//! report (`{"blocks": [..], "series": [..], "problems": N}`, see `collector/src/tools/`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::workspace_bin;

/// Labels of a series or a block, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One block of the bucket as the checker saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockReport {
    /// The block's ULID.
    pub ulid: String,
    /// Time range, ms since the epoch (`max_time` exclusive, as meta.json); `None` when the
    /// block's meta.json is unusable.
    pub min_time: Option<i64>,
    /// See `min_time`.
    pub max_time: Option<i64>,
    /// The block's external labels (meta.json `thanos.labels`).
    pub labels: Labels,
    /// Series in the block.
    pub series: u64,
    /// Samples in the block.
    pub samples: u64,
    /// What is wrong with the block; empty when it is sound.
    pub problems: Vec<String>,
}

/// One series identity across blocks and replicas (replica labels removed).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesReport {
    /// External labels + series labels, minus replica labels.
    pub labels: Labels,
    /// Distinct timestamps across replicas and blocks, stale markers excluded.
    pub samples: u64,
    /// Staleness markers.
    pub stale_markers: u64,
    /// Oldest and newest sample, ms since the epoch.
    pub min_time: i64,
    /// See `min_time`.
    pub max_time: i64,
}

/// The checker's JSON report.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Every block.
    pub blocks: Vec<BlockReport>,
    /// Every series identity (with `--series`).
    pub series: Vec<SeriesReport>,
    /// Number of problems found in all blocks.
    pub problems: u64,
}

fn labels(v: &Value, what: &str) -> Result<Labels> {
    v.as_object()
        .with_context(|| format!("{what}: labels not an object: {v}"))?
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().with_context(|| format!("{what}: label {k} not a string"))?;
            Ok((k.clone(), v.to_owned()))
        })
        .collect()
}

fn int(v: &Value, key: &str) -> Result<i64> {
    v.get(key)
        .and_then(Value::as_i64)
        .with_context(|| format!("`{key}` missing or not an integer in {v}"))
}

/// An integer or `null`.
fn optional_int(v: &Value, key: &str) -> Result<Option<i64>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(n) => n
            .as_i64()
            .map(Some)
            .with_context(|| format!("`{key}` not an integer in {v}")),
    }
}

fn count(v: &Value, key: &str) -> Result<u64> {
    v.get(key)
        .and_then(Value::as_u64)
        .with_context(|| format!("`{key}` missing or not a count in {v}"))
}

/// Parses the checker's JSON document.
pub fn parse_report(json: &str) -> Result<VerifyReport> {
    let doc: Value = serde_json::from_str(json).context("bucket verify output is not JSON")?;
    let blocks = doc
        .get("blocks")
        .and_then(Value::as_array)
        .context("`blocks` missing or not a list")?
        .iter()
        .map(|b| {
            Ok(BlockReport {
                ulid: b
                    .get("ulid")
                    .and_then(Value::as_str)
                    .context("block `ulid`")?
                    .to_owned(),
                min_time: optional_int(b, "min_time")?,
                max_time: optional_int(b, "max_time")?,
                labels: labels(b.get("labels").unwrap_or(&Value::Null), "block")?,
                series: count(b, "series")?,
                samples: count(b, "samples")?,
                problems: b
                    .get("problems")
                    .and_then(Value::as_array)
                    .context("block `problems`")?
                    .iter()
                    .map(|p| p.as_str().map(str::to_owned).unwrap_or_else(|| p.to_string()))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let series = match doc.get("series") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => list
            .as_array()
            .context("`series` not a list")?
            .iter()
            .map(|s| {
                Ok(SeriesReport {
                    labels: labels(s.get("labels").unwrap_or(&Value::Null), "series")?,
                    samples: count(s, "samples")?,
                    stale_markers: count(s, "stale_markers")?,
                    min_time: int(s, "min_time")?,
                    max_time: int(s, "max_time")?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    Ok(VerifyReport {
        blocks,
        series,
        problems: count(&doc, "problems")?,
    })
}

/// Runs `trawl-collector tools bucket verify --objstore.config-file=<objstore> --series
/// --output=json --deduplication.replica-label=<each of replica_labels>` and parses its report.
/// Exit 0 and 1 (problems found) both return the report; the caller asserts on `problems`.
pub fn bucket_verify(objstore: &Path, replica_labels: &[&str]) -> Result<VerifyReport> {
    let mut args = vec![
        "tools".to_owned(),
        "bucket".to_owned(),
        "verify".to_owned(),
        format!("--objstore.config-file={}", objstore.display()),
        "--series".to_owned(),
        "--output=json".to_owned(),
    ];
    args.extend(
        replica_labels
            .iter()
            .map(|l| format!("--deduplication.replica-label={l}")),
    );
    let out = Command::new(workspace_bin("trawl-collector")).args(&args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0 | 1) => parse_report(&stdout).with_context(|| {
            format!(
                "bucket verify output:\n{}\nstderr:\n{}",
                stdout.chars().take(2000).collect::<String>(),
                String::from_utf8_lossy(&out.stderr)
            )
        }),
        _ => bail!(
            "trawl-collector {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

impl VerifyReport {
    /// The series whose labels include every `(name, value)` of `matchers`.
    pub fn matching<'a>(&'a self, matchers: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a SeriesReport> + 'a {
        self.series.iter().filter(move |s| {
            matchers
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Samples in the blocks (replicas counted separately).
    pub fn block_samples(&self) -> u64 {
        self.blocks.iter().map(|b| b.samples).sum()
    }

    /// Every problem, prefixed with its block.
    pub fn problem_list(&self) -> Vec<String> {
        self.blocks
            .iter()
            .flat_map(|b| b.problems.iter().map(move |p| format!("{}: {p}", b.ulid)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
      "blocks": [
        {"ulid": "01J0000000000000000000000A", "min_time": 1000, "max_time": 2000,
         "labels": {"replica": "c0", "tenant_id": "default-tenant"}, "series": 2, "samples": 7, "problems": []},
        {"ulid": "01J0000000000000000000000B", "min_time": 1000, "max_time": 2000,
         "labels": {"replica": "c1"}, "series": 1, "samples": 3, "problems": ["chunk 8: CRC mismatch"]},
        {"ulid": "01J0000000000000000000000C", "min_time": null, "max_time": null,
         "labels": {}, "series": 0, "samples": 0, "problems": ["meta.json: not JSON"]}
      ],
      "series": [
        {"labels": {"__name__": "up", "job": "node"}, "samples": 4, "stale_markers": 1, "min_time": 1000, "max_time": 1999},
        {"labels": {"__name__": "up", "job": "synthetic"}, "samples": 3, "stale_markers": 0, "min_time": 1000, "max_time": 1500}
      ],
      "problems": 1
    }"#;

    #[test]
    fn report_parses() -> Result<()> {
        let r = parse_report(REPORT)?;
        assert_eq!(r.blocks.len(), 3);
        assert_eq!((r.blocks[0].min_time, r.blocks[2].max_time), (Some(1000), None));
        assert_eq!(r.blocks[0].labels["replica"], "c0");
        assert_eq!(r.block_samples(), 10);
        assert_eq!(r.problems, 1);
        assert_eq!(
            r.problem_list(),
            vec![
                "01J0000000000000000000000B: chunk 8: CRC mismatch".to_owned(),
                "01J0000000000000000000000C: meta.json: not JSON".to_owned()
            ]
        );
        let node: Vec<_> = r.matching(&[("__name__", "up"), ("job", "node")]).collect();
        assert_eq!(node.len(), 1);
        assert_eq!((node[0].samples, node[0].stale_markers, node[0].max_time), (4, 1, 1999));
        assert_eq!(r.matching(&[("__name__", "up")]).count(), 2);
        assert_eq!(r.matching(&[("job", "absent")]).count(), 0);
        Ok(())
    }

    #[test]
    fn series_list_is_optional() -> Result<()> {
        let r = parse_report(r#"{"blocks": [], "problems": 0}"#)?;
        assert!(r.series.is_empty() && r.blocks.is_empty());
        Ok(())
    }

    #[test]
    fn broken_reports_are_errors() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"problems": 0}"#,
            r#"{"blocks": {}, "problems": 0}"#,
            r#"{"blocks": [], "problems": -1}"#,
            r#"{"blocks": [], "problems": "0"}"#,
            r#"{"blocks": [{"ulid": 1, "min_time": 0, "max_time": 0, "labels": {}, "series": 0, "samples": 0, "problems": []}], "problems": 0}"#,
            r#"{"blocks": [{"ulid": "x", "min_time": 0, "max_time": 0, "labels": {"a": 1}, "series": 0, "samples": 0, "problems": []}], "problems": 0}"#,
            r#"{"blocks": [], "series": [{"labels": {}, "samples": -3, "stale_markers": 0, "min_time": 0, "max_time": 0}], "problems": 0}"#,
            r#"{"blocks": [], "series": {}, "problems": 0}"#,
            r#"{"blocks": [{"ulid": "x", "min_time": "0", "max_time": 0, "labels": {}, "series": 0, "samples": 0, "problems": []}], "problems": 0}"#,
        ] {
            assert!(parse_report(bad).is_err(), "{bad}");
        }
    }
}
