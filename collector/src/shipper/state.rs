//! `thanos.shipper.json`: the blocks of a tenant directory already in the bucket, as Thanos
//! `pkg/shipper/shipper.go` (`Meta`, `WriteMetaFile`, `ReadMetaFile`):
//! `{"version": 1, "uploaded": ["<ULID>", …]}`.
//!
//! It only saves bucket lookups: losing it costs one `HEAD <ULID>/meta.json` per local block,
//! never a duplicate upload, so an unreadable file is logged and replaced.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use trawl_tsdb::fs::{FsError, sync_dir};
use ulid::Ulid;

use super::ShipperError;

/// File name inside the tenant directory (Thanos `MetaFilename`).
pub const SHIPPER_FILENAME: &str = "thanos.shipper.json";
/// The only version written and accepted (Thanos `MetaVersion1`).
pub const SHIPPER_VERSION: u32 = 1;

/// Contents of `thanos.shipper.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipperState {
    /// Always [`SHIPPER_VERSION`].
    pub version: u32,
    /// Blocks uploaded and still present locally, oldest first. JSON: ULID strings.
    #[serde(default, with = "ulid_strings")]
    pub uploaded: Vec<Ulid>,
}

impl ShipperState {
    /// Empty state: nothing uploaded.
    pub fn new() -> Self {
        ShipperState {
            version: SHIPPER_VERSION,
            uploaded: Vec::new(),
        }
    }

    /// Reads `<dir>/thanos.shipper.json`. `Ok(None)` when the file does not exist; errors for an
    /// unreadable file, bad JSON or another version (the caller logs and starts empty).
    pub fn read(dir: &Path) -> Result<Option<ShipperState>, ShipperError> {
        let path = dir.join(SHIPPER_FILENAME);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(FsError::at("read", &path)(source).into()),
        };
        let invalid =
            |message: String| FsError::at("parse", &path)(io::Error::new(io::ErrorKind::InvalidData, message));
        let state: ShipperState = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if state.version != SHIPPER_VERSION {
            return Err(invalid(format!("unexpected version {}", state.version)).into());
        }
        Ok(Some(state))
    }

    /// Writes `<dir>/thanos.shipper.json` atomically: `thanos.shipper.json.tmp`, fsync, rename,
    /// fsync of `dir`; a crash leaves the old or the new file, never a torn one.
    pub fn write(&self, dir: &Path) -> Result<(), ShipperError> {
        let path = dir.join(SHIPPER_FILENAME);
        let tmp = dir.join(format!("{SHIPPER_FILENAME}.tmp"));
        // Tab-indented with a trailing newline, like Go's json.Encoder with SetIndent("", "\t").
        let mut json = Vec::with_capacity(64 + 32 * self.uploaded.len());
        let mut ser =
            serde_json::Serializer::with_formatter(&mut json, serde_json::ser::PrettyFormatter::with_indent(b"\t"));
        self.serialize(&mut ser)
            .map_err(|e| FsError::at("encode", &tmp)(e.into()))?;
        json.push(b'\n');
        let write_tmp = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()
        };
        write_tmp().map_err(FsError::at("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(FsError::at("rename", &tmp))?;
        sync_dir(dir).map_err(FsError::at("sync directory", dir))?;
        Ok(())
    }
}

impl Default for ShipperState {
    fn default() -> Self {
        ShipperState::new()
    }
}

/// `Vec<Ulid>` as a JSON array of ULID strings.
mod ulid_strings {
    use serde::{Deserialize, Deserializer, Serializer};
    use ulid::Ulid;

    pub fn serialize<S: Serializer>(ids: &[Ulid], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(Ulid::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ulid>, D::Error> {
        // Thanos writes `null` for an empty list (a nil Go slice).
        let ids = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
        ids.iter()
            .map(|id| Ulid::from_string(id).map_err(serde::de::Error::custom))
            .collect()
    }
}
