//! Shipper tests: [`sync`] against filesystem buckets (through a [`TestStore`] that records and
//! fails writes), [`objstore`] config parsing, and [`s3`] against a real `moto_server`.

mod objstore;
mod s3;
mod sync;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use trawl_tsdb::meta::{BlockMeta, BlockStats, ThanosMeta};
use ulid::Ulid;

use super::Backoff;

/// One hour in ms.
const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Retries without real waiting.
fn fast_backoff(attempts: u32) -> Backoff {
    Backoff {
        attempts,
        initial: Duration::from_millis(1),
        max: Duration::from_millis(2),
    }
}

/// A fake finished block: `meta.json` (via [`BlockMeta`]), `index` and the given chunk files,
/// with arbitrary bytes. `created_ms` is the ULID's time.
struct FakeBlock {
    id: Ulid,
    min_time: i64,
    max_time: i64,
    created_ms: i64,
    samples: u64,
    chunk_sizes: Vec<usize>,
}

impl FakeBlock {
    /// A block of `[min_time, max_time)` created at `max_time`, with two small chunk files.
    fn new(min_time: i64, max_time: i64) -> FakeBlock {
        FakeBlock {
            id: Ulid::from_parts(max_time as u64, rand_part(min_time)),
            min_time,
            max_time,
            created_ms: max_time,
            samples: 10,
            chunk_sizes: vec![100, 37],
        }
    }

    fn created(mut self, created_ms: i64) -> FakeBlock {
        self.created_ms = created_ms;
        self.id = Ulid::from_parts(created_ms as u64, rand_part(self.min_time));
        self
    }

    fn samples(mut self, samples: u64) -> FakeBlock {
        self.samples = samples;
        self
    }

    fn chunks(mut self, sizes: &[usize]) -> FakeBlock {
        self.chunk_sizes = sizes.to_vec();
        self
    }

    /// Writes `<parent>/<ULID>/` and returns the ULID.
    fn write(&self, parent: &Path) -> Ulid {
        let dir = parent.join(self.id.to_string());
        std::fs::create_dir_all(dir.join("chunks")).unwrap();
        for (i, size) in self.chunk_sizes.iter().enumerate() {
            std::fs::write(
                dir.join(format!("chunks/{:06}", i + 1)),
                file_bytes(self.id, i as u8, *size),
            )
            .unwrap();
        }
        std::fs::write(dir.join("index"), file_bytes(self.id, 0xff, 64)).unwrap();
        std::fs::write(dir.join("tombstones"), b"\x00\x00\x00\x00").unwrap();
        let labels = BTreeMap::from([("tenant_id".to_owned(), "t1".to_owned())]);
        let stats = BlockStats {
            num_samples: self.samples,
            num_series: 1,
            num_chunks: 1,
        };
        let meta = BlockMeta::new_level1(
            self.id,
            self.min_time,
            self.max_time,
            stats,
            Some(ThanosMeta::receive(labels)),
        );
        meta.write(&dir).unwrap();
        self.id
    }
}

/// Distinct random bits per block, derived from something unique in the test.
fn rand_part(seed: i64) -> u128 {
    (seed as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15) & ((1u128 << 80) - 1)
}

/// Deterministic content of a block file, different per block and file.
fn file_bytes(id: Ulid, file: u8, size: usize) -> Vec<u8> {
    let seed = id.0 as u8 ^ file;
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A filesystem bucket in `dir` behind a [`TestStore`].
fn fs_bucket(dir: &Path) -> Arc<TestStore> {
    std::fs::create_dir_all(dir).unwrap();
    Arc::new(TestStore::new(Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap())))
}

/// Wraps a store: logs every write and `HEAD` (`put <path>`, `multipart <path>`, `head <path>`)
/// in call order, and fails writes on demand.
#[derive(Debug)]
struct TestStore {
    inner: Arc<dyn ObjectStore>,
    log: Mutex<Vec<String>>,
    /// The next this-many writes fail.
    fail_next: AtomicUsize,
    /// Writes of objects whose name contains this fail.
    fail_matching: Mutex<Option<String>>,
}

impl TestStore {
    fn new(inner: Arc<dyn ObjectStore>) -> TestStore {
        TestStore {
            inner,
            log: Mutex::default(),
            fail_next: AtomicUsize::new(0),
            fail_matching: Mutex::default(),
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Logged writes (`put` and `multipart`), as object names.
    fn writes(&self) -> Vec<String> {
        self.log()
            .iter()
            .filter_map(|l| l.split_once(' '))
            .filter(|(op, _)| *op != "head")
            .map(|(_, p)| p.to_owned())
            .collect()
    }

    fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }

    fn fail_next_writes(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    fn fail_writes_matching(&self, pattern: Option<&str>) {
        *self.fail_matching.lock().unwrap() = pattern.map(str::to_owned);
    }

    /// Logs a write and decides whether it fails.
    fn write(&self, op: &str, location: &ObjectPath) -> object_store::Result<()> {
        self.log.lock().unwrap().push(format!("{op} {location}"));
        let matching = self
            .fail_matching
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|p| location.as_ref().contains(p.as_str()));
        let counted = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if matching || counted {
            return Err(object_store::Error::Generic {
                store: "test",
                source: format!("injected failure of {location}").into(),
            });
        }
        Ok(())
    }

    /// Bytes of an object of the inner store.
    async fn bytes(&self, name: &str) -> Vec<u8> {
        self.inner
            .get(&ObjectPath::from(name))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    async fn exists(&self, name: &str) -> bool {
        self.inner.head(&ObjectPath::from(name)).await.is_ok()
    }
}

impl fmt::Display for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestStore({})", self.inner)
    }
}

// The trait is declared with `#[async_trait]`; these are its desugared signatures.
impl ObjectStore for TestStore {
    fn put_opts<'a, 'b, 'async_trait>(
        &'a self,
        location: &'b ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFuture<'async_trait, object_store::Result<PutResult>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.write("put", location)?;
            self.inner.put_opts(location, payload, opts).await
        })
    }

    fn put_multipart_opts<'a, 'b, 'async_trait>(
        &'a self,
        location: &'b ObjectPath,
        opts: PutMultipartOptions,
    ) -> BoxFuture<'async_trait, object_store::Result<Box<dyn MultipartUpload>>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.write("multipart", location)?;
            self.inner.put_multipart_opts(location, opts).await
        })
    }

    fn get_opts<'a, 'b, 'async_trait>(
        &'a self,
        location: &'b ObjectPath,
        options: GetOptions,
    ) -> BoxFuture<'async_trait, object_store::Result<GetResult>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            if options.head {
                self.log.lock().unwrap().push(format!("head {location}"));
            }
            self.inner.get_opts(location, options).await
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'a, 'b, 'async_trait>(
        &'a self,
        prefix: Option<&'b ObjectPath>,
    ) -> BoxFuture<'async_trait, object_store::Result<ListResult>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.list_with_delimiter(prefix).await })
    }

    fn copy_opts<'a, 'b, 'c, 'async_trait>(
        &'a self,
        from: &'b ObjectPath,
        to: &'c ObjectPath,
        options: CopyOptions,
    ) -> BoxFuture<'async_trait, object_store::Result<()>>
    where
        'a: 'async_trait,
        'b: 'async_trait,
        'c: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.inner.copy_opts(from, to, options).await })
    }
}
