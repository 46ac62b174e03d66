//! `objstore.yml` parsing (good, broken and hostile files) and the buckets it opens.

use std::path::PathBuf;

use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3ConfigKey;
use object_store::path::Path as ObjectPath;

use crate::shipper::objstore::{Backend, BucketLookup, FilesystemConfig, ObjstoreConfig, S3Config, s3_builder};
use crate::shipper::{ShipperError, open_bucket};

fn parse(text: &str) -> Result<ObjstoreConfig, ShipperError> {
    ObjstoreConfig::parse(text, "objstore.yml")
}

fn s3(text: &str) -> S3Config {
    match parse(text).unwrap().backend {
        Backend::S3(s3) => s3,
        other => panic!("not S3: {other:?}"),
    }
}

/// The key an `InvalidConfig` names, or the message of a `ParseConfig`.
fn error_text(text: &str) -> String {
    match parse(text) {
        Ok(cfg) => panic!("accepted {text:?} as {cfg:?}"),
        Err(ShipperError::InvalidConfig { origin, key, message }) => {
            assert_eq!(origin, "objstore.yml");
            format!("{key}: {message}")
        }
        Err(ShipperError::ParseConfig { origin, message }) => {
            assert_eq!(origin, "objstore.yml");
            message
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

const MINIMAL_S3: &str = "type: S3\nconfig:\n  bucket: trawl\n  endpoint: 127.0.0.1:9000\n";

#[test]
fn parses_a_thanos_s3_config() {
    let cfg = parse(
        "type: s3\nprefix: /cluster-a/collectors/\nconfig:\n  bucket: trawl\n  endpoint: minio.local:9000\n  \
         region: eu-west-1\n  access_key: AKID\n  secret_key: s3cr3t\n  session_token: tok\n  insecure: true\n  \
         bucket_lookup_type: path\n  sts_endpoint: https://sts.local\n",
    )
    .unwrap();
    assert_eq!(cfg.prefix.as_deref(), Some("cluster-a/collectors"));
    let Backend::S3(s3) = cfg.backend else { panic!("not S3") };
    assert_eq!(s3.bucket, "trawl");
    assert_eq!(s3.endpoint, "minio.local:9000");
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    let creds = s3.credentials.clone().unwrap();
    assert_eq!(
        (creds.access_key.as_str(), creds.secret_key.as_str()),
        ("AKID", "s3cr3t")
    );
    assert_eq!(creds.session_token.as_deref(), Some("tok"));
    assert!(s3.insecure);
    assert_eq!(s3.bucket_lookup, BucketLookup::Path);
    assert_eq!(s3.sts_endpoint.as_deref(), Some("https://sts.local"));
    let debug = format!("{s3:?}");
    assert!(
        debug.contains("AKID") && !debug.contains("s3cr3t") && !debug.contains("tok\""),
        "{debug}"
    );
}

#[test]
fn defaults_and_case_insensitive_types() {
    let s3 = s3(MINIMAL_S3);
    assert_eq!((s3.region, s3.credentials, s3.insecure), (None, None, false));
    assert_eq!(s3.bucket_lookup, BucketLookup::Auto);
    for kind in ["S3", "s3", "S3 "] {
        let text = MINIMAL_S3.replace("type: S3", &format!("type: \"{kind}\""));
        if kind.trim() == kind {
            assert!(matches!(parse(&text).unwrap().backend, Backend::S3(_)), "{kind}");
        } else {
            assert!(error_text(&text).starts_with("type:"), "{kind:?} is not a type");
        }
    }
    for kind in ["FILESYSTEM", "filesystem", "FileSystem"] {
        let cfg = parse(&format!("type: {kind}\nconfig:\n  directory: ./data/bucket\n")).unwrap();
        let dir = FilesystemConfig {
            directory: PathBuf::from("./data/bucket"),
        };
        assert_eq!(
            cfg,
            ObjstoreConfig {
                backend: Backend::Filesystem(dir),
                prefix: None
            }
        );
    }
    assert_eq!(parse(&format!("{MINIMAL_S3}prefix: \"\"\n")).unwrap().prefix, None);
    assert_eq!(parse(&format!("{MINIMAL_S3}prefix: \"/\"\n")).unwrap().prefix, None);
}

#[test]
fn accepts_and_ignores_thanos_tuning_keys() {
    let cfg = s3(&format!(
        "{MINIMAL_S3}  part_size: 134217728\n  send_content_md5: false\n  disable_dualstack: true\n  \
         list_objects_version: v1\n  trace:\n    enable: true\n  aws_sdk_auth: true\n  signature_version2: false\n  \
         disable_multipart: false\n  put_user_metadata: {{}}\n  sse_config:\n    type: \"\"\n  http_config:\n    \
         idle_conn_timeout: 1m30s\n    response_header_timeout: 2m\n    max_idle_conns: 100\n    \
         insecure_skip_verify: true\n    tls_config:\n      ca_file: /etc/ssl/ca.pem\n"
    ));
    assert!(cfg.insecure_skip_verify);
    assert_eq!(cfg.ca_file, Some(PathBuf::from("/etc/ssl/ca.pem")));
}

#[test]
fn missing_and_invalid_values_name_their_key() {
    let cases = [
        ("type: S3\nconfig:\n  endpoint: h:1\n", "config.bucket:"),
        ("type: S3\nconfig:\n  bucket: b\n", "config.endpoint: no s3 endpoint"),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: http://h:9000\n",
            "config.endpoint: must be host[:port]",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: h:9000/path\n",
            "config.endpoint:",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: \"h 1\"\n",
            "config.endpoint:",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  secret_key: x\n",
            "config.access_key:",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  access_key: x\n",
            "config.secret_key:",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  access_key: x\n  secret_key: y\n  aws_sdk_auth: true\n",
            "config.aws_sdk_auth:",
        ),
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  list_objects_version: v3\n",
            "config.list_objects_version:",
        ),
        ("type: FILESYSTEM\nconfig: {}\n", "config.directory:"),
        ("type: FILESYSTEM\nconfig:\n  directory: \"\"\n", "config.directory:"),
        (
            "type: GCS\nconfig:\n  bucket: b\n",
            "type: bucket type \"GCS\" is not supported",
        ),
        ("type: \"\"\nconfig: {}\n", "type:"),
        (
            "type: S3\nprefix: ../escape\nconfig:\n  bucket: b\n  endpoint: h\n",
            "prefix:",
        ),
        (
            "type: S3\nprefix: a//b\nconfig:\n  bucket: b\n  endpoint: h\n",
            "prefix:",
        ),
        (
            "type: S3\nprefix: a/./b\nconfig:\n  bucket: b\n  endpoint: h\n",
            "prefix:",
        ),
    ];
    for (text, want) in cases {
        let got = error_text(text);
        assert!(got.starts_with(want), "{text:?}: got {got:?}, want {want:?}");
    }
}

#[test]
fn refused_thanos_features_name_their_key() {
    let cases = [
        ("signature_version2: true", "config.signature_version2"),
        ("disable_multipart: true", "config.disable_multipart"),
        (
            "put_user_metadata: {X-Amz-Storage-Class: STANDARD_IA}",
            "config.put_user_metadata",
        ),
        ("sse_config: {type: SSE-KMS, kms_key_id: k}", "config.sse_config.type"),
        (
            "http_config: {tls_config: {cert_file: /c.pem}}",
            "config.http_config.tls_config.cert_file",
        ),
        (
            "http_config: {tls_config: {key_file: /k.pem}}",
            "config.http_config.tls_config.key_file",
        ),
        (
            "http_config: {tls_config: {server_name: s}}",
            "config.http_config.tls_config.server_name",
        ),
    ];
    for (line, key) in cases {
        let got = error_text(&format!("{MINIMAL_S3}  {line}\n"));
        assert!(got.starts_with(&format!("{key}:")), "{line}: got {got:?}");
    }
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let cases = [
        (format!("{MINIMAL_S3}bukkit: x\n"), "bukkit"),
        (format!("{MINIMAL_S3}  bukkit: x\n"), "bukkit"),
        (
            format!("{MINIMAL_S3}  http_config:\n    proxy_url: http://p\n"),
            "proxy_url",
        ),
        (
            format!("{MINIMAL_S3}  http_config:\n    tls_config:\n      ca: x\n"),
            "ca",
        ),
        (format!("{MINIMAL_S3}  sse_config:\n    kind: x\n"), "kind"),
        (
            "type: FILESYSTEM\nconfig:\n  directory: d\n  bucket: b\n".to_owned(),
            "bucket",
        ),
        // A key of another provider's config.
        (
            "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  container: c\n".to_owned(),
            "container",
        ),
    ];
    for (text, key) in cases {
        let got = error_text(&text);
        assert!(got.contains(&format!("`{key}`")), "{text:?}: {got:?}");
        assert!(got.contains("line"), "names the line: {got:?}");
    }
}

#[test]
fn broken_and_hostile_yaml_is_rejected() {
    // Anchors inside a key whose value is ignored, so only the alias limit can stop them.
    let billion_laughs = "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  trace:\n    \
        a: &a [x, x, x, x, x, x, x, x, x, x]\n    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n    \
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n    \
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    let started = std::time::Instant::now();
    let got = error_text(billion_laughs);
    assert!(got.to_lowercase().contains("alias"), "{got}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let duplicate = error_text("type: S3\nconfig:\n  bucket: b\n  bucket: c\n  endpoint: h\n");
    assert!(duplicate.starts_with("duplicate key `bucket` at line 4"), "{duplicate}");
    let cases = [
        "",
        "---\n",
        "type: [",
        "type: S3\nconfig:\n\tbucket: b\n",
        "just a string",
        "- type: S3\n",
        "type: S3\nconfig: 5\n",
        "type: S3\nconfig: null\n",
        "type: S3\n",
        "type: {a: b}\nconfig: {}\n",
        "type: S3\ntype: FILESYSTEM\nconfig: {directory: d}\n",
        "type: S3\nconfig:\n  bucket: b\n  bucket: c\n  endpoint: h\n",
        "type: S3\nconfig:\n  bucket: [b]\n  endpoint: h\n",
        "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  insecure: maybe\n",
        "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  bucket_lookup_type: dns\n",
        "\u{feff}\u{0}type: S3",
    ];
    for text in cases {
        assert!(parse(text).is_err(), "accepted {text:?}");
    }
}

#[test]
fn load_names_the_file_and_refuses_huge_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yml");
    match ObjstoreConfig::load(&missing) {
        Err(ShipperError::ReadConfig { path, .. }) => assert_eq!(path, missing.display().to_string()),
        other => panic!("unexpected {other:?}"),
    }
    let huge = dir.path().join("huge.yml");
    std::fs::write(&huge, format!("{MINIMAL_S3}# {}\n", "x".repeat(2 << 20))).unwrap();
    assert!(matches!(
        ObjstoreConfig::load(&huge),
        Err(ShipperError::ReadConfig { .. })
    ));
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "type: S3\nconfig:\n  bucket: b\n  endpoint: h\n  nope: 1\n").unwrap();
    let error = ObjstoreConfig::load(&bad).unwrap_err();
    assert!(!error.is_recoverable());
    let text = error.to_string();
    assert!(text.contains("bad.yml") && text.contains("nope"), "{text}");
}

#[tokio::test]
async fn default_bucket_is_a_created_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data/bucket");
    let bucket = open_bucket(None, &root).unwrap();
    bucket
        .put(&ObjectPath::from("01X/meta.json"), "{}".into())
        .await
        .unwrap();
    assert_eq!(std::fs::read(root.join("01X/meta.json")).unwrap(), b"{}");
}

#[tokio::test]
async fn filesystem_config_with_prefix_writes_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs-bucket");
    let file = dir.path().join("objstore.yml");
    let text = format!(
        "type: FILESYSTEM\nprefix: /tenant-a/\nconfig:\n  directory: {}\n",
        root.display()
    );
    std::fs::write(&file, text).unwrap();
    let bucket = open_bucket(Some(&file), &dir.path().join("unused")).unwrap();
    bucket.put(&ObjectPath::from("01X/index"), "idx".into()).await.unwrap();
    assert_eq!(std::fs::read(root.join("tenant-a/01X/index")).unwrap(), b"idx");
    assert!(!dir.path().join("unused").exists());
}

#[test]
fn opening_a_filesystem_bucket_over_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    assert!(matches!(
        open_bucket(None, &file),
        Err(ShipperError::OpenBucket { kind: "FILESYSTEM", .. })
    ));
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn value(builder: &object_store::aws::AmazonS3Builder, key: AmazonS3ConfigKey) -> Option<String> {
    builder.get_config_value(&key)
}

#[test]
fn s3_client_uses_path_style_for_custom_endpoints() {
    let b = s3_builder(&s3(&format!("{MINIMAL_S3}  insecure: true\n")), env(&[])).unwrap();
    assert_eq!(
        value(&b, AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("http://127.0.0.1:9000")
    );
    assert_eq!(
        value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
        Some("false")
    );
    assert_eq!(value(&b, AmazonS3ConfigKey::Bucket).as_deref(), Some("trawl"));
    assert_eq!(value(&b, AmazonS3ConfigKey::Region).as_deref(), Some("us-east-1"));

    let secure = s3_builder(&s3(MINIMAL_S3), env(&[])).unwrap();
    assert_eq!(
        value(&secure, AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("https://127.0.0.1:9000")
    );
}

#[test]
fn s3_client_addresses_aws_virtual_hosted_in_auto_mode() {
    let aws = "type: S3\nconfig:\n  bucket: trawl\n  endpoint: s3.eu-west-1.amazonaws.com\n  region: eu-west-1\n";
    let b = s3_builder(&s3(aws), env(&[])).unwrap();
    assert_eq!(
        value(&b, AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("https://trawl.s3.eu-west-1.amazonaws.com")
    );
    assert_eq!(
        value(&b, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
        Some("true")
    );
    assert_eq!(value(&b, AmazonS3ConfigKey::Region).as_deref(), Some("eu-west-1"));

    let dotted = s3_builder(&s3(&aws.replace("bucket: trawl", "bucket: my.bucket")), env(&[])).unwrap();
    assert_eq!(
        value(&dotted, AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
        Some("false")
    );
    let forced = s3_builder(&s3(&format!("{aws}  bucket_lookup_type: path\n")), env(&[])).unwrap();
    assert_eq!(
        value(&forced, AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("https://s3.eu-west-1.amazonaws.com")
    );
    let vhost = s3_builder(
        &s3(&format!("{MINIMAL_S3}  bucket_lookup_type: virtual-hosted\n")),
        env(&[]),
    )
    .unwrap();
    assert_eq!(
        value(&vhost, AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("https://trawl.127.0.0.1:9000")
    );
}

#[test]
fn s3_credentials_come_from_the_file_or_else_the_environment() {
    let aws_env = env(&[
        ("AWS_ACCESS_KEY_ID", "ENVKEY"),
        ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ("AWS_SESSION_TOKEN", "envtoken"),
        ("AWS_REGION", "ap-south-1"),
        ("AWS_DEFAULT_REGION", "sa-east-1"),
        ("AWS_ENDPOINT", "http://elsewhere:1"),
        ("AWS_SKIP_SIGNATURE", "true"),
        ("HOME", "/root"),
    ]);
    let from_env = s3_builder(&s3(MINIMAL_S3), aws_env.clone()).unwrap();
    assert_eq!(
        value(&from_env, AmazonS3ConfigKey::AccessKeyId).as_deref(),
        Some("ENVKEY")
    );
    assert_eq!(
        value(&from_env, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
        Some("envsecret")
    );
    assert_eq!(value(&from_env, AmazonS3ConfigKey::Token).as_deref(), Some("envtoken"));
    assert_eq!(
        value(&from_env, AmazonS3ConfigKey::Region).as_deref(),
        Some("ap-south-1")
    );
    assert_eq!(
        value(&from_env, AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("https://127.0.0.1:9000"),
        "file wins"
    );
    assert_eq!(
        value(&from_env, AmazonS3ConfigKey::SkipSignature).as_deref(),
        Some("false"),
        "addressing/signing env ignored"
    );

    let default_region = s3_builder(&s3(MINIMAL_S3), env(&[("AWS_DEFAULT_REGION", "sa-east-1")])).unwrap();
    assert_eq!(
        value(&default_region, AmazonS3ConfigKey::Region).as_deref(),
        Some("sa-east-1")
    );

    let with_keys = format!("{MINIMAL_S3}  access_key: FILEKEY\n  secret_key: filesecret\n  region: eu-north-1\n");
    let from_file = s3_builder(&s3(&with_keys), aws_env).unwrap();
    assert_eq!(
        value(&from_file, AmazonS3ConfigKey::AccessKeyId).as_deref(),
        Some("FILEKEY")
    );
    assert_eq!(
        value(&from_file, AmazonS3ConfigKey::SecretAccessKey).as_deref(),
        Some("filesecret")
    );
    assert_eq!(
        value(&from_file, AmazonS3ConfigKey::Token),
        None,
        "no session token mixed in from the environment"
    );
    assert_eq!(
        value(&from_file, AmazonS3ConfigKey::Region).as_deref(),
        Some("eu-north-1")
    );
}

#[test]
fn s3_ca_file_must_be_readable_pem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!(
        "{MINIMAL_S3}  http_config:\n    tls_config:\n      ca_file: {}\n",
        dir.path().join("no.pem").display()
    );
    assert!(s3_builder(&s3(&missing), env(&[])).is_err());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = format!(
        "{MINIMAL_S3}  http_config:\n    tls_config:\n      ca_file: {}\n",
        garbage.display()
    );
    assert!(s3_builder(&s3(&text), env(&[])).is_err());
}

#[test]
fn open_builds_an_s3_client_without_network_access() {
    // Building the reqwest client needs the rustls provider that `open` installs.
    let cfg = parse(&format!("{MINIMAL_S3}  access_key: a\n  secret_key: b\n")).unwrap();
    let bucket = cfg.open().unwrap();
    assert!(bucket.to_string().contains("trawl"), "{bucket}");
    let https =
        parse("type: S3\nconfig:\n  bucket: b\n  endpoint: s3.amazonaws.com\n  access_key: a\n  secret_key: b\n")
            .unwrap();
    assert!(https.open().is_ok());
}
