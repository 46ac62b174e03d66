//! `trawl-collector tools bucket verify` as a user runs it: the built binary on a filesystem
//! bucket (exit codes 0, 1 and 2, JSON on stdout) and on an S3 bucket served by `moto_server`.
//!
//! ```text
//! write_block ──► bucket dir ─────────────────────────┐
//!            └──► upload ──► moto_server (S3, 127.0.0.1)┤
//! test ──spawn──► trawl-collector tools bucket verify ◄─┘──► exit code, stdout JSON
//! ```

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use trawl_collector::shipper::ObjstoreConfig;
use trawl_model::labels::Labels;
use trawl_tsdb::block::{BlockSeries, ChunkData, write_block};
use trawl_tsdb::chunkenc::XorChunk;
use trawl_tsdb::meta::ThanosMeta;
use ulid::Ulid;

const BIN: &str = env!("CARGO_BIN_EXE_trawl-collector");
const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);

/// Writes a block with one series `up{job="a"}` of `n` samples 15 s apart under `parent`.
fn write_one_block(parent: &Path, replica: &str, n: i64) -> Ulid {
    let mut chunk = XorChunk::new();
    for k in 0..n {
        chunk.append(T0 + k * 15_000, k as f64);
    }
    let external = BTreeMap::from([
        ("tenant_id".to_owned(), "t1".to_owned()),
        ("replica".to_owned(), replica.to_owned()),
    ]);
    let series = vec![BlockSeries {
        labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        chunks: vec![ChunkData::from_xor(&chunk).unwrap()],
    }];
    write_block(parent, T0, T0 + 2 * HOUR, Some(ThanosMeta::receive(external)), series)
        .unwrap()
        .ulid
}

fn verify(config: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["tools", "bucket", "verify"])
        .arg(format!("--objstore.config-file={}", config.display()))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run trawl-collector")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn fs_config(dir: &Path, bucket: &Path) -> PathBuf {
    let file = dir.join("objstore.yml");
    std::fs::write(
        &file,
        format!("type: FILESYSTEM\nconfig:\n  directory: {}\n", bucket.display()),
    )
    .unwrap();
    file
}

#[test]
fn filesystem_bucket_exit_codes_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let a = write_one_block(&bucket, "a", 10);
    write_one_block(&bucket, "b", 12);
    let config = fs_config(tmp.path(), &bucket);

    // Sound: exit 0; the two replicas are one series of 12 distinct timestamps.
    let out = verify(
        &config,
        &["--output=json", "--series", "--deduplication.replica-label=replica"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["problems"], 0);
    assert_eq!(doc["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(doc["series"].as_array().unwrap().len(), 1);
    assert_eq!(doc["series"][0]["samples"], 12);
    assert_eq!(doc["series"][0]["labels"]["job"], "a");
    assert!(doc["series"][0]["labels"].get("replica").is_none());

    // Text output by default, without series.
    let out = verify(&config, &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("2 blocks, 0 problems\n"), "{text}");
    assert!(!text.contains("\nseries "), "{text}");

    // A flipped chunk byte: exit 1, the problem is in the JSON.
    let segment = bucket.join(a.to_string()).join("chunks/000001");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 6;
    bytes[last] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let out = verify(&config, &["--output=json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc = json(&out);
    assert_eq!(doc["problems"], 1);
    assert!(doc.get("series").is_none());
    let problems = doc["blocks"][0]["problems"].to_string();
    assert!(problems.contains("checksum mismatch"), "{problems}");
}

#[test]
fn an_unreadable_bucket_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing_dir = fs_config(tmp.path(), &tmp.path().join("no-such-dir"));
    let out = verify(&missing_dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(
        !tmp.path().join("no-such-dir").exists(),
        "verify must not create the bucket"
    );

    let out = verify(&tmp.path().join("no-such-file.yml"), &[]);
    assert_eq!(out.status.code(), Some(2));

    let bad = tmp.path().join("bad.yml");
    std::fs::write(&bad, "type: GCS\nconfig: {bucket: b}\n").unwrap();
    let out = verify(&bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GCS"));

    // No config flag at all: a usage error, also 2.
    let out = Command::new(BIN).args(["tools", "bucket", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--objstore.config-file"));

    // S3 that does not answer: listing fails.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s3 = tmp.path().join("s3.yml");
    std::fs::write(&s3, s3_config(port)).unwrap();
    let started = Instant::now();
    let out = verify(&s3, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("list the bucket"));
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn help_lists_the_tools_subcommand() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tools"));
    let out = Command::new(BIN)
        .args(["tools", "bucket", "verify", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--objstore.config-file",
        "--deduplication.replica-label",
        "--output",
        "--series",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

fn s3_config(port: u16) -> String {
    format!(
        "type: S3\nprefix: cluster-a\nconfig:\n  bucket: trawl\n  endpoint: 127.0.0.1:{port}\n  insecure: true\n  \
         access_key: testing\n  secret_key: testing\n"
    )
}

/// A `moto_server` child process, killed on drop.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_on_moto() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spawned = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = spawned else {
        eprintln!("moto_server not installed (pip install 'moto[server]'); skipped");
        return;
    };
    let _moto = Moto(child);
    trawl_collector::shipper::objstore::install_rustls_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.put(format!("http://127.0.0.1:{port}/trawl")).send().await.is_err() {
        assert!(Instant::now() < deadline, "moto_server did not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Two replica blocks uploaded as the shipper lays them out, under the prefix.
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("blocks");
    let ids = [write_one_block(&local, "a", 10), write_one_block(&local, "b", 12)];
    let config = tmp.path().join("objstore.yml");
    std::fs::write(&config, s3_config(port)).unwrap();
    let bucket = ObjstoreConfig::load(&config).unwrap().open().unwrap();
    for id in ids {
        for rel in ["chunks/000001", "index", "meta.json"] {
            let bytes = std::fs::read(local.join(id.to_string()).join(rel)).unwrap();
            bucket
                .put(&ObjectPath::from(format!("{id}/{rel}")), bytes.into())
                .await
                .unwrap();
        }
    }

    let out = tokio::task::spawn_blocking(move || {
        verify(
            &config,
            &["--output=json", "--series", "--deduplication.replica-label=replica"],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(doc["blocks"][0]["samples"], 10);
    assert_eq!(doc["series"][0]["samples"], 12);
}
