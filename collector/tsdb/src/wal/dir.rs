//! File names inside a WAL directory and listing them, as Prometheus `tsdb/wlog` (`%08d` segments,
//! `checkpoint.%08d`, `.tmp` suffix for unfinished checkpoints).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::WalError;
use crate::fs::FsError;

const CHECKPOINT_PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";

/// `00000042`: the file name of segment `index`.
pub(super) fn segment_name(index: u32) -> String {
    format!("{index:08}")
}

/// `checkpoint.00000042`: the file name of the checkpoint replacing segments up to `index`.
pub(super) fn checkpoint_name(index: u32) -> String {
    format!("{CHECKPOINT_PREFIX}{index:08}")
}

/// `checkpoint.00000042.tmp`: where that checkpoint is written before the rename.
pub(super) fn checkpoint_tmp_name(index: u32) -> String {
    format!("{CHECKPOINT_PREFIX}{index:08}{TMP_SUFFIX}")
}

/// Parses a canonical index name (at least 8 digits, no superfluous leading zeros), so two names
/// never map to one index.
fn parse_index(name: &str) -> Option<u32> {
    if name.len() < 8 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = name.parse::<u32>().ok()?;
    (segment_name(index) == name).then_some(index)
}

/// What a WAL directory holds; unknown names are ignored.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// Segment indices, ascending.
    pub segments: Vec<u32>,
    /// Finished checkpoint indices, ascending.
    pub checkpoints: Vec<u32>,
    /// Unfinished checkpoints (`checkpoint.*.tmp`), full paths.
    pub temporaries: Vec<PathBuf>,
}

/// Lists `dir`; a missing directory lists as empty.
pub(super) fn list(dir: &Path) -> Result<Listing, WalError> {
    let mut listing = Listing::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(listing),
        Err(e) => return Err(FsError::at("list WAL directory", dir)(e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(FsError::at("list WAL directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(index) = parse_index(name) {
            listing.segments.push(index);
        } else if let Some(rest) = name.strip_prefix(CHECKPOINT_PREFIX) {
            if rest.ends_with(TMP_SUFFIX) {
                listing.temporaries.push(entry.path());
            } else if let Some(index) = parse_index(rest) {
                listing.checkpoints.push(index);
            }
        }
    }
    listing.segments.sort_unstable();
    listing.checkpoints.sort_unstable();
    Ok(listing)
}

/// Removes a file or a directory tree; already gone counts as done.
pub(super) fn remove_path(path: &Path) -> Result<(), WalError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FsError::at("remove", path)(e).into()),
        _ => Ok(()),
    }
}

/// Makes creations, renames and deletions in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    crate::fs::sync_dir(dir).map_err(|e| FsError::at("sync WAL directory", dir)(e).into())
}

/// Size of a file in bytes.
pub(super) fn file_len(path: &Path) -> Result<u64, WalError> {
    Ok(fs::metadata(path).map_err(FsError::at("stat", path))?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_non_canonical_forms() {
        assert_eq!(segment_name(7), "00000007");
        assert_eq!(parse_index("00000007"), Some(7));
        assert_eq!(parse_index(&segment_name(u32::MAX)), Some(u32::MAX));
        assert_eq!(parse_index("000000007"), None, "superfluous zero");
        assert_eq!(parse_index("0000007"), None, "too short");
        assert_eq!(parse_index("0000000a"), None);
        assert_eq!(parse_index("99999999999"), None, "overflows u32");
        assert_eq!(checkpoint_name(3), "checkpoint.00000003");
        assert_eq!(checkpoint_tmp_name(3), "checkpoint.00000003.tmp");
    }

    #[test]
    fn listing_sorts_and_classifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "00000010",
            "00000002",
            "checkpoint.00000001",
            "checkpoint.00000005.tmp",
            "junk",
            "1",
        ] {
            fs::write(dir.path().join(name), b"").expect("write");
        }
        fs::create_dir(dir.path().join("checkpoint.00000007.tmp")).expect("mkdir");
        let listing = list(dir.path()).expect("list");
        assert_eq!(listing.segments, vec![2, 10]);
        assert_eq!(listing.checkpoints, vec![1]);
        assert_eq!(listing.temporaries.len(), 2);
        for tmp in &listing.temporaries {
            remove_path(tmp).expect("remove");
            assert!(!tmp.exists());
        }
        remove_path(&dir.path().join("absent")).expect("absent is fine");
    }

    #[test]
    fn missing_directory_lists_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listing = list(&dir.path().join("nope")).expect("list");
        assert!(listing.segments.is_empty() && listing.checkpoints.is_empty());
    }
}
