//! The shipper against a real S3 API: a `moto_server` child on 127.0.0.1.
//!
//! ```text
//! tenant dir ──► Shipper ──► object_store S3 client (path-style, http) ──► moto_server ◄── test reads back
//! ```

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use prometheus_client::registry::Registry;
use trawl_tsdb::meta::BlockMeta;

use super::{FakeBlock, HOUR_MS, fast_backoff, now_ms};
use crate::shipper::upload::PART_SIZE;
use crate::shipper::{ObjstoreConfig, Shipper, ShipperMetrics};

/// A `moto_server` child process, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` and waits until it answers.
    async fn start() -> Moto {
        let program = which("moto_server").expect("moto_server not found: pip install 'moto[server]'");
        // A free port: bind, read it, release it for moto.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, port };
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client.get(moto.url("/")).send().await.is_err() {
            assert!(Instant::now() < deadline, "moto_server did not answer on port {port}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        moto
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Creates a bucket: object_store cannot, and moto accepts an unsigned `PUT /<bucket>`.
    async fn create_bucket(&self, name: &str) {
        let response = http_client().put(self.url(&format!("/{name}"))).send().await.unwrap();
        assert!(response.status().is_success(), "create bucket: {}", response.status());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

fn http_client() -> reqwest::Client {
    crate::shipper::objstore::install_rustls_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ships_blocks_to_moto_and_reads_them_back() {
    let moto = Moto::start().await;
    moto.create_bucket("trawl").await;
    let tmp = tempfile::tempdir().unwrap();
    let tenant = tmp.path().join("tenant");
    let now = now_ms();
    let older = FakeBlock::new(now - 4 * HOUR_MS, now - 2 * HOUR_MS).write(&tenant);
    // A chunk file above the part size goes up as a multipart upload.
    let newer = FakeBlock::new(now - 2 * HOUR_MS, now)
        .chunks(&[PART_SIZE + 4321, 99])
        .write(&tenant);
    let config = format!(
        "type: S3\nprefix: cluster-a\nconfig:\n  bucket: trawl\n  endpoint: 127.0.0.1:{}\n  insecure: true\n  \
         access_key: testing\n  secret_key: testing\n",
        moto.port
    );
    let bucket = ObjstoreConfig::parse(&config, "objstore.yml").unwrap().open().unwrap();
    let mut registry = Registry::default();
    let metrics = ShipperMetrics::new(&mut registry);
    let shipper = Shipper::new(bucket.clone(), tenant.clone(), Duration::from_secs(6 * 3600), metrics)
        .with_backoff(fast_backoff(3));

    let report = shipper.sync().await.unwrap();
    assert_eq!(report.uploaded, vec![older, newer]);
    assert_eq!(shipper.sync().await.unwrap(), Default::default(), "idempotent");

    // Every object is where Thanos puts it, under the prefix, byte for byte.
    let listed: Vec<String> = bucket
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let mut expected = Vec::new();
    for id in [older, newer] {
        for rel in ["chunks/000001", "chunks/000002", "index", "meta.json"] {
            expected.push(format!("{id}/{rel}"));
        }
    }
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    for object in &expected {
        let got = bucket
            .get(&ObjectPath::from(object.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            got.as_ref(),
            std::fs::read(tenant.join(object)).unwrap().as_slice(),
            "{object}"
        );
    }
    let meta_json = bucket
        .get(&ObjectPath::from(format!("{newer}/meta.json")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(BlockMeta::from_json(&meta_json).unwrap().ulid, newer);

    // The raw S3 API shows the prefix: path-style `GET /trawl?list-type=2&prefix=cluster-a/`.
    let raw = http_client()
        .get(moto.url("/trawl?list-type=2&prefix=cluster-a/"))
        .send()
        .await
        .unwrap();
    let xml = raw.text().await.unwrap();
    assert!(xml.contains(&format!("<Key>cluster-a/{older}/index</Key>")), "{xml}");

    // Lost shipper.json: found in the bucket, not uploaded again.
    std::fs::remove_file(tenant.join("thanos.shipper.json")).unwrap();
    let report = shipper.sync().await.unwrap();
    assert_eq!(report.found_in_bucket, vec![older, newer]);
    assert!(report.uploaded.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_the_sync_and_a_later_sync_succeeds() {
    let moto = Moto::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let tenant = tmp.path().join("tenant");
    let now = now_ms();
    let id = FakeBlock::new(now - 2 * HOUR_MS, now).write(&tenant);
    let config = format!(
        "type: s3\nconfig:\n  bucket: later\n  endpoint: 127.0.0.1:{}\n  insecure: true\n  bucket_lookup_type: path\n  \
         access_key: testing\n  secret_key: testing\n",
        moto.port
    );
    let bucket = ObjstoreConfig::parse(&config, "objstore.yml").unwrap().open().unwrap();
    let metrics = ShipperMetrics::new(&mut Registry::default());
    let shipper = Shipper::new(bucket, tenant, Duration::from_secs(6 * 3600), metrics).with_backoff(fast_backoff(2));

    let error = shipper.sync().await.unwrap_err();
    assert!(error.is_recoverable(), "{error}");

    moto.create_bucket("later").await;
    assert_eq!(shipper.sync().await.unwrap().uploaded, vec![id]);
}
