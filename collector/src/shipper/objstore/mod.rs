//! `--objstore.config-file`: Thanos's `objstore.yml` (thanos-io/objstore `client/factory.go`,
//! `providers/s3/s3.go`, `providers/filesystem/filesystem.go`) parsed into an [`ObjstoreConfig`],
//! and [`open_bucket`], which turns it into an `object_store` bucket.
//!
//! ```yaml
//! type: S3                 # or FILESYSTEM; any case, as Thanos
//! prefix: cluster-a        # optional: every object name is put under it
//! config:
//!   bucket: trawl
//!   endpoint: minio:9000   # host[:port], no scheme
//!   insecure: true         # http instead of https
//!   region: us-east-1
//!   access_key: …          # with secret_key; without both, AWS_* environment / instance credentials
//!   secret_key: …
//! ```
//!
//! Every key of Thanos's S3 config is known; the ones we do not implement are refused when they
//! would change what lands in the bucket, and accepted when they only tune Go's HTTP client:
//!
//! | key | handling |
//! |---|---|
//! | `bucket`, `endpoint` | required (Thanos: "no s3 endpoint in config file") |
//! | `region` | default: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1` |
//! | `access_key`, `secret_key`, `session_token` | static credentials; key and secret both or neither. Without them: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), ECS/EKS container credentials, then EC2 instance metadata (`~/.aws/credentials` is not read) |
//! | `insecure` | `http://` and plain-HTTP allowed |
//! | `bucket_lookup_type` | `auto` (default: virtual-hosted for `*.amazonaws.com` with a dot-free bucket name, path-style otherwise, as minio-go), `path`, `virtual-hosted` |
//! | `aws_sdk_auth` | accepted: the environment chain above is used; with `access_key` it is an error (as Thanos) |
//! | `sts_endpoint` | STS endpoint of the web-identity credentials |
//! | `http_config.insecure_skip_verify`, `http_config.tls_config.{ca_file, insecure_skip_verify}` | supported |
//! | `http_config.tls_config.{cert_file, key_file, server_name}` | refused when set (no client certificates) |
//! | other `http_config` keys (`idle_conn_timeout`, `response_header_timeout`, `tls_handshake_timeout`, `expect_continue_timeout`, `max_idle_conns`, `max_idle_conns_per_host`, `max_conns_per_host`, `force_attempt_http2`, `disable_compression`) | accepted, ignored (Go transport tuning) |
//! | `part_size`, `send_content_md5`, `disable_dualstack`, `trace`, `list_objects_version` (`v1`/`v2`) | accepted, ignored (uploads use fixed parts of [`upload::PART_SIZE`](super::upload::PART_SIZE) bytes and SigV4 payload hashes) |
//! | `disable_multipart: true`, `signature_version2: true`, non-empty `put_user_metadata`, `sse_config` with a `type` | refused (large files stream as multipart uploads; SigV4 only; no metadata or SSE headers) |
//! | any other key, anywhere | refused, naming the key |
//!
//! `FILESYSTEM` takes `directory` (required; relative paths are relative to the working
//! directory; created if missing). Without a config file the bucket is a directory too,
//! `<tsdb.path>/bucket`.

mod raw;
mod s3;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use serde::Deserialize;

use super::ShipperError;
pub use s3::install_rustls_provider;
pub(crate) use s3::s3_builder;

/// Largest config file we read, in bytes; a real one is a few hundred bytes.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Alias replays allowed in the config; bounds "billion laughs" documents long before memory.
const MAX_REPLAYED_ALIAS_EVENTS: usize = 10_000;

/// A parsed, validated `objstore.yml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjstoreConfig {
    /// Which store and its settings (`type` + `config`).
    pub backend: Backend,
    /// Top-level `prefix`: objects go under `<prefix>/` (slashes at both ends trimmed, as
    /// Thanos); `None` when absent or empty.
    pub prefix: Option<String>,
}

/// The `type` of a bucket with its `config`.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// `type: S3` — AWS S3 or a compatible server (MinIO, moto, Ceph RGW).
    S3(S3Config),
    /// `type: FILESYSTEM` — a local directory.
    Filesystem(FilesystemConfig),
}

/// `config` of `type: FILESYSTEM`.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesystemConfig {
    /// Root directory of the bucket; created if missing.
    pub directory: PathBuf,
}

/// `config` of `type: S3`, validated; see the module table for the keys.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// `host[:port]` of the S3 API, e.g. `s3.eu-west-1.amazonaws.com` or `127.0.0.1:9000`.
    pub endpoint: String,
    /// Signing region; `None` → `AWS_REGION`/`AWS_DEFAULT_REGION` → `us-east-1`.
    pub region: Option<String>,
    /// Static credentials from the file; `None` → the environment chain.
    pub credentials: Option<StaticCredentials>,
    /// `http://` instead of `https://`.
    pub insecure: bool,
    /// How the bucket is addressed.
    pub bucket_lookup: BucketLookup,
    /// STS endpoint for web-identity credentials.
    pub sts_endpoint: Option<String>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
    /// PEM file with extra CA certificates trusted for the endpoint.
    pub ca_file: Option<PathBuf>,
}

/// `access_key`, `secret_key` and `session_token`; `Debug` shows the key id only.
#[derive(Clone, PartialEq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// `bucket_lookup_type` (Thanos `BucketLookupType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum BucketLookup {
    /// `auto`: virtual-hosted for AWS endpoints, path-style for everything else (MinIO, moto).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// `virtual-hosted`: `https://<bucket>.<endpoint>/<object>`.
    #[serde(rename = "virtual-hosted")]
    VirtualHosted,
    /// `path`: `https://<endpoint>/<bucket>/<object>`.
    #[serde(rename = "path")]
    Path,
}

// === impl ObjstoreConfig ===

impl ObjstoreConfig {
    /// Reads and parses an `objstore.yml`. Errors: unreadable or larger than
    /// [`MAX_CONFIG_BYTES`] ([`ShipperError::ReadConfig`]), then as [`ObjstoreConfig::parse`].
    pub fn load(path: &Path) -> Result<ObjstoreConfig, ShipperError> {
        use std::io::Read;
        let read_error = |source| ShipperError::ReadConfig {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            let message = format!("larger than {MAX_CONFIG_BYTES} bytes");
            return Err(read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                message,
            )));
        }
        ObjstoreConfig::parse(&text, &path.display().to_string())
    }

    /// Parses `objstore.yml` text; `origin` (the file name) prefixes every error. Errors:
    /// [`ShipperError::ParseConfig`] for YAML and shape errors (unknown keys included),
    /// [`ShipperError::InvalidConfig`] for unsupported types, missing values and refused features.
    pub fn parse(text: &str, origin: &str) -> Result<ObjstoreConfig, ShipperError> {
        let envelope: raw::Envelope = from_yaml(text, origin)?;
        let invalid = |key: &str, message: String| ShipperError::InvalidConfig {
            origin: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let backend = match envelope.kind.to_ascii_uppercase().as_str() {
            "S3" => Backend::S3(raw::validate_s3(
                from_yaml::<raw::Typed<raw::S3>>(text, origin)?.config,
                &invalid,
            )?),
            "FILESYSTEM" => {
                let fs = from_yaml::<raw::Typed<raw::Filesystem>>(text, origin)?.config;
                if fs.directory.is_empty() {
                    return Err(invalid(
                        "config.directory",
                        "missing directory for filesystem bucket".to_owned(),
                    ));
                }
                Backend::Filesystem(FilesystemConfig {
                    directory: PathBuf::from(fs.directory),
                })
            }
            _ => {
                let message = format!(
                    "bucket type {:?} is not supported (supported: S3, FILESYSTEM)",
                    envelope.kind
                );
                return Err(invalid("type", message));
            }
        };
        let prefix = match envelope.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => None,
            Some(p) => {
                object_store::path::Path::parse(p).map_err(|e| invalid("prefix", e.to_string()))?;
                Some(p.to_owned())
            }
        };
        Ok(ObjstoreConfig { backend, prefix })
    }

    /// Opens the bucket: an `AmazonS3` client (credentials from the process environment when
    /// the file has none) or a `LocalFileSystem` rooted at `directory` (created), wrapped in a
    /// `PrefixStore` when `prefix` is set. Nothing is sent over the network yet. Errors:
    /// [`ShipperError::OpenBucket`].
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, ShipperError> {
        let store: Arc<dyn ObjectStore> = match &self.backend {
            Backend::Filesystem(fs) => open_filesystem(&fs.directory)?,
            Backend::S3(s3) => {
                let open_error =
                    |source: Box<dyn std::error::Error + Send + Sync>| ShipperError::OpenBucket { kind: "S3", source };
                install_rustls_provider();
                let builder = s3_builder(s3, std::env::vars()).map_err(open_error)?;
                Arc::new(builder.build().map_err(|e| open_error(e.into()))?)
            }
        };
        Ok(match &self.prefix {
            Some(prefix) => Arc::new(PrefixStore::new(store, prefix.as_str())),
            None => store,
        })
    }
}

/// The bucket the shipper writes to: the one `config_file` describes, or without a file the
/// embedded default, a filesystem bucket at `default_dir` (created; `<tsdb.path>/bucket`).
/// Errors: as [`ObjstoreConfig::load`] and [`ObjstoreConfig::open`].
pub fn open_bucket(config_file: Option<&Path>, default_dir: &Path) -> Result<Arc<dyn ObjectStore>, ShipperError> {
    match config_file {
        Some(path) => ObjstoreConfig::load(path)?.open(),
        None => open_filesystem(default_dir),
    }
}

fn open_filesystem(dir: &Path) -> Result<Arc<dyn ObjectStore>, ShipperError> {
    let open_error = |source: Box<dyn std::error::Error + Send + Sync>| ShipperError::OpenBucket {
        kind: "FILESYSTEM",
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| open_error(format!("create {}: {e}", dir.display()).into()))?;
    Ok(Arc::new(
        LocalFileSystem::new_with_prefix(dir).map_err(|e| open_error(e.into()))?,
    ))
}

/// Parses with serde-saphyr: duplicate keys are errors, aliases are bounded, messages carry the
/// line and column instead of a snippet.
fn from_yaml<T: for<'de> Deserialize<'de>>(text: &str, origin: &str) -> Result<T, ShipperError> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_ALIAS_EVENTS;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let message = match e.without_snippet() {
            // serde-saphyr's own text names its Options; say it plainly.
            serde_saphyr::Error::DuplicateMappingKey {
                key: Some(key),
                location,
            } => {
                format!(
                    "duplicate key `{key}` at line {}, column {}",
                    location.line(),
                    location.column()
                )
            }
            other => other.to_string(),
        };
        ShipperError::ParseConfig {
            origin: origin.to_owned(),
            message,
        }
    })
}
