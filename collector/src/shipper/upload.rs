//! Uploading one block: its files in Thanos's order (thanos-io/thanos `pkg/block/block.go`
//! `upload`: `chunks/…`, then `index`, then `meta.json`, so a reader never sees a `meta.json`
//! whose data is missing), each file retried with bounded exponential backoff, large files
//! streamed as multipart uploads instead of being read into memory.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;
use tracing::{debug, warn};
use trawl_tsdb::fs::FsError;
use ulid::Ulid;

use super::ShipperError;

/// Size of a multipart upload part, in bytes; files up to this size go in one `PUT`. S3 parts
/// must be at least 5 MiB (but the last), and 10 000 parts of 8 MiB allow 78 GiB per file.
pub const PART_SIZE: usize = 8 << 20;

/// Parts of one file uploaded concurrently; with the part being filled, bounds the memory of
/// an upload to about three parts.
const PARTS_IN_FLIGHT: usize = 2;

/// Bytes read from a file at a time while streaming it.
const READ_CHUNK: usize = 1 << 20;

/// Name of a block's index file. (Its `tombstones` file is not uploaded, as in Thanos;
/// Prometheus treats a missing one as empty.)
const INDEX_FILENAME: &str = "index";

/// Name of the chunk segment directory inside a block.
pub const CHUNKS_DIRNAME: &str = "chunks";

/// Retry policy of each file upload: up to `attempts` tries, waiting `initial`, then twice as
/// long each time, at most `max`, between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Tries per file, at least 1.
    pub attempts: u32,
    /// Wait after the first failure.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 attempts, waiting 0.5 s, 1 s, 2 s, 4 s in between (7.5 s in all, on top of the
    /// object store client's own retries of each request).
    fn default() -> Self {
        Backoff {
            attempts: 5,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Wait before retry number `retry` (1 = after the first failure).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// Runs `op` until it succeeds or the attempts are used up; on failure returns the attempts
    /// made and the last error.
    pub(super) async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, (u32, ShipperError)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ShipperError>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(error) if attempt >= attempts => return Err((attempt, error)),
                Err(error) => {
                    let delay = self.delay(attempt);
                    warn!(message = "Bucket operation failed; will retry.", object = what, attempt, ?delay, error = %error);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }
}

/// Files of the block in `dir`, relative and `/`-separated, in upload order: every regular file
/// of `chunks/` by name, `index`, `meta.json`. Errors when `chunks/` cannot be listed.
pub(super) fn block_files(dir: &Path) -> Result<Vec<String>, ShipperError> {
    let chunks_dir = dir.join(CHUNKS_DIRNAME);
    let mut chunks = Vec::new();
    for entry in std::fs::read_dir(&chunks_dir).map_err(FsError::at("list", &chunks_dir))? {
        let entry = entry.map_err(FsError::at("list", &chunks_dir))?;
        if !entry.file_type().map_err(FsError::at("list", &chunks_dir))?.is_file() {
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => chunks.push(name),
            Err(name) => {
                warn!(message = "Skipping chunk file with a non-UTF-8 name.", dir = %chunks_dir.display(), ?name)
            }
        }
    }
    chunks.sort();
    let mut files: Vec<String> = chunks
        .into_iter()
        .map(|name| format!("{CHUNKS_DIRNAME}/{name}"))
        .collect();
    files.push(INDEX_FILENAME.to_owned());
    files.push(trawl_tsdb::meta::META_FILENAME.to_owned());
    Ok(files)
}

/// Uploads the block in `dir` as `<ulid>/<file>` for each of [`block_files`], in that order,
/// each file with `backoff`. Returns the bytes uploaded. Errors: [`ShipperError::Block`] with
/// the last error of the file that could not be uploaded.
pub(super) async fn upload_block(
    bucket: &dyn ObjectStore,
    dir: &Path,
    ulid: Ulid,
    files: &[String],
    backoff: &Backoff,
) -> Result<u64, ShipperError> {
    let mut bytes = 0;
    for rel in files {
        let local: PathBuf = dir.join(rel);
        let object = format!("{ulid}/{rel}");
        let location = ObjectPath::from(object.as_str());
        let sent = backoff
            .retry(&object, || upload_file(bucket, &local, &location))
            .await
            .map_err(|(attempts, source)| ShipperError::Block {
                block: ulid,
                attempts,
                source: Box::new(source),
            })?;
        debug!(message = "Uploaded block file.", object = %object, bytes = sent);
        bytes += sent;
    }
    Ok(bytes)
}

/// Uploads one file to `location`: a single `PUT` up to [`PART_SIZE`] bytes, a multipart upload
/// of [`PART_SIZE`] parts above (aborted on error, so no parts linger). Returns the bytes sent.
async fn upload_file(bucket: &dyn ObjectStore, local: &Path, location: &ObjectPath) -> Result<u64, ShipperError> {
    let bucket_error = |source| ShipperError::Bucket {
        op: "upload",
        object: location.to_string(),
        source,
    };
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(FsError::at("read block file", local))?;
    let size = file
        .metadata()
        .await
        .map_err(FsError::at("read block file", local))?
        .len();
    if size <= PART_SIZE as u64 {
        let mut buf = Vec::with_capacity(size as usize);
        file.read_to_end(&mut buf)
            .await
            .map_err(FsError::at("read block file", local))?;
        let sent = buf.len() as u64;
        bucket
            .put(location, PutPayload::from(buf))
            .await
            .map_err(bucket_error)?;
        return Ok(sent);
    }
    let mut writer =
        WriteMultipart::new_with_chunk_size(bucket.put_multipart(location).await.map_err(bucket_error)?, PART_SIZE);
    match stream_file(&mut file, &mut writer, local, location).await {
        Ok(sent) => {
            writer.finish().await.map_err(bucket_error)?;
            Ok(sent)
        }
        Err(error) => {
            if let Err(abort_error) = writer.abort().await {
                debug!(message = "Aborting multipart upload failed.", object = %location, error = %abort_error);
            }
            Err(error)
        }
    }
}

/// Feeds `file` into `writer` in [`READ_CHUNK`] pieces, waiting while [`PARTS_IN_FLIGHT`] parts
/// are being uploaded. Returns the bytes read.
async fn stream_file(
    file: &mut tokio::fs::File,
    writer: &mut WriteMultipart,
    local: &Path,
    location: &ObjectPath,
) -> Result<u64, ShipperError> {
    let mut sent = 0u64;
    loop {
        writer
            .wait_for_capacity(PARTS_IN_FLIGHT)
            .await
            .map_err(|source| ShipperError::Bucket {
                op: "upload part of",
                object: location.to_string(),
                source,
            })?;
        let mut buf = Vec::with_capacity(READ_CHUNK);
        let read = (&mut *file)
            .take(READ_CHUNK as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(FsError::at("read block file", local))?;
        if read == 0 {
            return Ok(sent);
        }
        sent += read as u64;
        writer.put(buf.into());
    }
}
