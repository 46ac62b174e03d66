//! `meta.json` of a block: Prometheus `tsdb/block.go` `BlockMeta` plus the Thanos section of
//! thanos-io/thanos `pkg/block/metadata/meta.go`.
//!
//! Written atomically (`meta.json.tmp`, fsync, rename, fsync of the directory). A block directory
//! without `meta.json` is unfinished, so it is the last file written.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::fs::sync_dir;

/// File name of the block meta inside a block directory.
pub const META_FILENAME: &str = "meta.json";
/// The only block (`version`) and Thanos section version we write and accept.
pub const META_VERSION: u32 = 1;
/// Thanos `source` of blocks written by a receiver.
pub const SOURCE_RECEIVE: &str = "receive";

/// Errors reading a `meta.json`.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The file could not be read.
    #[error("read {path}")]
    Io {
        /// Path of the file.
        path: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not valid meta JSON.
    #[error("parse {path}")]
    Json {
        /// Path of the file.
        path: String,
        /// Underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// `version` is not 1.
    #[error("unexpected meta file version {0}")]
    Version(u32),
}

/// Block meta, the JSON document `meta.json` (Prometheus `BlockMeta`, Thanos `metadata.Meta`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockMeta {
    /// Block id; also the name of the block directory. JSON: a 26-character ULID string.
    #[serde(serialize_with = "ser_ulid", deserialize_with = "de_ulid")]
    pub ulid: Ulid,
    /// Smallest sample timestamp in the block, ms since epoch (inclusive).
    #[serde(rename = "minTime")]
    pub min_time: i64,
    /// End of the block's range, ms since epoch (exclusive, as Prometheus).
    #[serde(rename = "maxTime")]
    pub max_time: i64,
    /// Sample, series and chunk counts.
    #[serde(default)]
    pub stats: BlockStats,
    /// Compaction level and source blocks.
    pub compaction: BlockCompaction,
    /// Block format version, always [`META_VERSION`].
    pub version: u32,
    /// Thanos section; absent in plain Prometheus blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
}

/// Counts in a block (Prometheus `BlockStats`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Number of samples in all chunks.
    #[serde(rename = "numSamples", default)]
    pub num_samples: u64,
    /// Number of series in the index.
    #[serde(rename = "numSeries", default)]
    pub num_series: u64,
    /// Number of chunks referenced by the index.
    #[serde(rename = "numChunks", default)]
    pub num_chunks: u64,
}

/// Compaction history (Prometheus `BlockMetaCompaction`); a fresh block from a head is level 1
/// with itself as only source.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockCompaction {
    /// 1 for blocks cut from a head.
    pub level: u32,
    /// ULIDs of the level-1 blocks this block was made from. JSON: ULID strings.
    #[serde(default, serialize_with = "ser_ulids", deserialize_with = "de_ulids")]
    pub sources: Vec<Ulid>,
}

/// The `thanos` section of `meta.json` (Thanos `metadata.Thanos`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ThanosMeta {
    /// External labels identifying the producer, plus `tenant_id` for receivers.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Downsampling resolution; 0 (raw) for our blocks.
    #[serde(default)]
    pub downsample: Downsample,
    /// Who wrote the block: [`SOURCE_RECEIVE`] for the collector.
    #[serde(default)]
    pub source: String,
    /// File names inside `chunks/`, sorted (deprecated by Thanos in favour of `files`, still written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    /// All files of the block sorted by relative path, with sizes (none for `meta.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ThanosFile>,
}

/// Downsampling information (Thanos `ThanosDownsample`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Downsample {
    /// Resolution in ms; 0 means raw data.
    pub resolution: i64,
}

/// One file of a block (Thanos `metadata.File`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ThanosFile {
    /// Path relative to the block directory, `/`-separated, e.g. `chunks/000001`.
    pub rel_path: String,
    /// Size in bytes; `None` for `meta.json` (whose size is not known while it is written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

// === impl ThanosMeta ===

impl ThanosMeta {
    /// Thanos section of a receiver's raw block with the given external labels (which should
    /// include `tenant_id`); `files` and `segment_files` are filled in by the block writer.
    pub fn receive(labels: BTreeMap<String, String>) -> Self {
        ThanosMeta {
            labels,
            downsample: Downsample::default(),
            source: SOURCE_RECEIVE.to_owned(),
            ..Default::default()
        }
    }
}

// === impl BlockMeta ===

impl BlockMeta {
    /// Meta of a new level-1 block whose only source is itself.
    pub fn new_level1(ulid: Ulid, min_time: i64, max_time: i64, stats: BlockStats, thanos: Option<ThanosMeta>) -> Self {
        BlockMeta {
            ulid,
            min_time,
            max_time,
            stats,
            compaction: BlockCompaction {
                level: 1,
                sources: vec![ulid],
            },
            version: META_VERSION,
            thanos,
        }
    }

    /// Reads and checks `<dir>/meta.json`. Errors: I/O, bad JSON, or a version other than 1.
    pub fn read(dir: &Path) -> Result<BlockMeta, MetaError> {
        let path = dir.join(META_FILENAME);
        let bytes = fs::read(&path).map_err(|source| MetaError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes).map_err(|e| match e {
            MetaError::Json { source, .. } => MetaError::Json {
                path: path.display().to_string(),
                source,
            },
            other => other,
        })
    }

    /// Parses and checks meta JSON bytes (e.g. downloaded from a bucket).
    pub fn from_json(bytes: &[u8]) -> Result<BlockMeta, MetaError> {
        let meta: BlockMeta = serde_json::from_slice(bytes).map_err(|source| MetaError::Json {
            path: String::new(),
            source,
        })?;
        if meta.version != META_VERSION {
            return Err(MetaError::Version(meta.version));
        }
        Ok(meta)
    }

    /// The JSON document, tab-indented like Thanos writes it, with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Serializing plain structs, strings and integers into a Vec cannot fail.
        if self.serialize(&mut ser).is_ok() {
            out.push(b'\n');
        }
        out
    }

    /// Writes `<dir>/meta.json` atomically: `meta.json.tmp`, fsync, rename, fsync `dir`.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(format!("{META_FILENAME}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&self.to_json())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, dir.join(META_FILENAME))?;
        sync_dir(dir)
    }
}

fn ser_ulid<S: Serializer>(u: &Ulid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&u.to_string())
}

fn de_ulid<'de, D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
    let s = String::deserialize(d)?;
    Ulid::from_string(&s).map_err(serde::de::Error::custom)
}

fn ser_ulids<S: Serializer>(us: &[Ulid], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(us.iter().map(|u| u.to_string()))
}

fn de_ulids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter()
        .map(|s| Ulid::from_string(s).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_meta() -> BlockMeta {
        let id = Ulid::from_string("01BKGV7JC0RY8A6MACW02A2PJD").unwrap();
        let mut labels = BTreeMap::new();
        labels.insert("tenant_id".to_owned(), "default-tenant".to_owned());
        let mut thanos = ThanosMeta::receive(labels);
        thanos.segment_files = vec!["000001".to_owned()];
        thanos.files = vec![
            ThanosFile {
                rel_path: "chunks/000001".to_owned(),
                size_bytes: Some(10),
            },
            ThanosFile {
                rel_path: "index".to_owned(),
                size_bytes: Some(20),
            },
            ThanosFile {
                rel_path: "meta.json".to_owned(),
                size_bytes: None,
            },
        ];
        let stats = BlockStats {
            num_samples: 5,
            num_series: 2,
            num_chunks: 3,
        };
        BlockMeta::new_level1(id, 1000, 7_201_000, stats, Some(thanos))
    }

    #[test]
    fn json_has_prometheus_and_thanos_field_names() {
        let json: serde_json::Value = serde_json::from_slice(&sample_meta().to_json()).unwrap();
        assert_eq!(json["ulid"], "01BKGV7JC0RY8A6MACW02A2PJD");
        assert_eq!(json["minTime"], 1000);
        assert_eq!(json["maxTime"], 7_201_000);
        assert_eq!(json["stats"]["numSamples"], 5);
        assert_eq!(json["stats"]["numSeries"], 2);
        assert_eq!(json["stats"]["numChunks"], 3);
        assert_eq!(json["compaction"]["level"], 1);
        assert_eq!(json["compaction"]["sources"][0], "01BKGV7JC0RY8A6MACW02A2PJD");
        assert_eq!(json["version"], 1);
        assert_eq!(json["thanos"]["labels"]["tenant_id"], "default-tenant");
        assert_eq!(json["thanos"]["downsample"]["resolution"], 0);
        assert_eq!(json["thanos"]["source"], "receive");
        assert_eq!(json["thanos"]["segment_files"][0], "000001");
        assert_eq!(json["thanos"]["files"][0]["size_bytes"], 10);
        assert!(json["thanos"]["files"][2].get("size_bytes").is_none());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample_meta();
        meta.write(dir.path()).unwrap();
        assert_eq!(BlockMeta::read(dir.path()).unwrap(), meta);
        assert!(!dir.path().join("meta.json.tmp").exists());
    }

    #[test]
    fn reads_a_prometheus_meta_without_thanos() {
        let json = br#"{"ulid":"01BKGV7JC0RY8A6MACW02A2PJD","minTime":0,"maxTime":10,
            "stats":{"numSamples":1,"numSeries":1,"numChunks":1,"numTombstones":0},
            "compaction":{"level":2,"sources":["01BKGV7JC0RY8A6MACW02A2PJD"],"parents":[]},"version":1}"#;
        let meta = BlockMeta::from_json(json).unwrap();
        assert_eq!(meta.compaction.level, 2);
        assert!(meta.thanos.is_none());
    }

    #[test]
    fn rejects_bad_meta() {
        let v2 =
            br#"{"ulid":"01BKGV7JC0RY8A6MACW02A2PJD","minTime":0,"maxTime":1,"compaction":{"level":1},"version":2}"#;
        assert!(matches!(BlockMeta::from_json(v2), Err(MetaError::Version(2))));
        let bad_ulid = br#"{"ulid":"nope","minTime":0,"maxTime":1,"compaction":{"level":1},"version":1}"#;
        assert!(matches!(BlockMeta::from_json(bad_ulid), Err(MetaError::Json { .. })));
        assert!(BlockMeta::from_json(b"{").is_err());
        assert!(BlockMeta::from_json(b"").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(BlockMeta::read(dir.path()), Err(MetaError::Io { .. })));
    }
}
