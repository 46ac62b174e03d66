//! Reading blocks out of the bucket: one listing groups the objects by block, then each block's
//! `meta.json`, `index` and `chunks/…` are downloaded into a scratch directory that
//! [`verify_block`](super::verify::verify_block) reads like a local block.
//!
//! Only top-level names that are ULIDs count as blocks (as Thanos; `debug/` and other
//! directories are skipped). Inside a block only `meta.json`, `index` and `chunks/<name>` are
//! fetched; other files (`tombstones`, `deletion-mark.json`, …) are not needed for the checks.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use trawl_tsdb::chunks::CHUNKS_DIR;
use trawl_tsdb::fs::FsError;
use trawl_tsdb::index::INDEX_FILENAME;
use trawl_tsdb::meta::META_FILENAME;
use ulid::Ulid;

use super::ToolsError;

/// One object of a block: its path relative to the block (`index`, `chunks/000001`) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockObject {
    /// Path inside the block directory, `/`-separated.
    pub rel_path: String,
    /// Size in bytes, from the listing.
    pub size: u64,
}

/// Lists the whole bucket once and groups the objects of every `<ULID>/…` prefix by block,
/// oldest ULID first. Errors: the listing fails ([`ToolsError::List`]).
pub async fn list_blocks(bucket: &dyn ObjectStore) -> Result<BTreeMap<Ulid, Vec<BlockObject>>, ToolsError> {
    let objects: Vec<_> = bucket
        .list(None)
        .try_collect()
        .await
        .map_err(|source| ToolsError::List { source })?;
    let mut blocks: BTreeMap<Ulid, Vec<BlockObject>> = BTreeMap::new();
    for object in objects {
        let location = object.location.to_string();
        let Some((top, rel)) = location.split_once('/') else {
            continue;
        };
        let Ok(id) = Ulid::from_string(top) else {
            continue;
        };
        blocks.entry(id).or_default().push(BlockObject {
            rel_path: rel.to_owned(),
            size: object.size,
        });
    }
    for objects in blocks.values_mut() {
        objects.sort_unstable_by(|a, b| a.rel_path.cmp(&b.rel_path));
    }
    Ok(blocks)
}

/// A scratch directory for one block, removed (with its contents) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<parent>/trawl-verify-<pid>-<id>`, emptying it first if a crashed run left it.
    pub fn create(parent: &Path, id: Ulid) -> Result<ScratchDir, ToolsError> {
        let path = parent.join(format!("trawl-verify-{}-{id}", std::process::id()));
        // Best effort: it normally does not exist.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(path.join(CHUNKS_DIR)).map_err(FsError::at("create", &path))?;
        Ok(ScratchDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover scratch directory is harmless and is emptied by the next run.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Whether `rel_path` is a file the checks read; these names are also safe to join to a
/// local directory (no `..`, no absolute paths).
fn wanted(rel_path: &str) -> bool {
    match rel_path.split_once('/') {
        None => rel_path == META_FILENAME || rel_path == INDEX_FILENAME,
        Some((dir, name)) => {
            dir == CHUNKS_DIR && !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    }
}

/// Downloads the block `id`'s `meta.json`, `index` and chunk segments into `dst`, streaming
/// each object to its file. Objects listed but gone by now are skipped (the checks then report
/// the file as missing). Errors: any other bucket error ([`ToolsError::Download`]) and local
/// I/O ([`ToolsError::Io`]).
pub async fn download_block(
    bucket: &dyn ObjectStore,
    id: Ulid,
    objects: &[BlockObject],
    dst: &Path,
) -> Result<(), ToolsError> {
    for object in objects.iter().filter(|o| wanted(&o.rel_path)) {
        let name = format!("{id}/{}", object.rel_path);
        let download_error = |source| ToolsError::Download {
            object: name.clone(),
            source,
        };
        let result = match bucket.get(&ObjectPath::from(name.as_str())).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(source) => return Err(download_error(source)),
        };
        let path = dst.join(&object.rel_path);
        let mut file = File::create(&path).map_err(FsError::at("create", &path))?;
        let mut stream = result.into_stream();
        while let Some(bytes) = stream.try_next().await.map_err(download_error)? {
            file.write_all(&bytes).map_err(FsError::at("write", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn only_block_files_with_safe_names_are_fetched() {
        for ok in ["meta.json", "index", "chunks/000001", "chunks/000123"] {
            assert!(wanted(ok), "{ok}");
        }
        for skipped in [
            "tombstones",
            "deletion-mark.json",
            "chunks/",
            "chunks/../index",
            "chunks/a/b",
            "../meta.json",
            "index/x",
            "/etc/passwd",
        ] {
            assert!(!wanted(skipped), "{skipped}");
        }
    }
}
