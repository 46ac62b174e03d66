//! The YAML as written: Thanos's config structs with every key, rejecting unknown ones, and
//! [`validate_s3`], which turns the S3 one into an [`S3Config`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{BucketLookup, S3Config, StaticCredentials};
use crate::shipper::ShipperError;

/// First pass: the envelope, to learn `type` (Thanos `BucketConfig`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Envelope {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default, rename = "config")]
    _config: IgnoredAny,
    #[serde(default)]
    pub(super) prefix: Option<String>,
}

/// Second pass: the whole document with `config` typed by `type`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Typed<C> {
    #[serde(rename = "type")]
    _kind: IgnoredAny,
    pub(super) config: C,
    #[serde(default, rename = "prefix")]
    _prefix: IgnoredAny,
}

/// Thanos `filesystem.Config`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Filesystem {
    #[serde(default)]
    pub(super) directory: String,
}

/// Thanos `s3.Config`, every key; ignored ones are typed loosely so any value passes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct S3 {
    #[serde(default)]
    bucket: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    access_key: String,
    #[serde(default)]
    secret_key: String,
    #[serde(default)]
    session_token: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    bucket_lookup_type: BucketLookup,
    #[serde(default)]
    aws_sdk_auth: bool,
    #[serde(default)]
    sts_endpoint: String,
    #[serde(default)]
    http_config: HttpConfig,
    #[serde(default)]
    signature_version2: bool,
    #[serde(default)]
    disable_multipart: bool,
    #[serde(default)]
    put_user_metadata: BTreeMap<String, String>,
    #[serde(default)]
    sse_config: SseConfig,
    #[serde(default)]
    list_objects_version: String,
    // Accepted, ignored: see the module table.
    #[serde(default, rename = "part_size")]
    _part_size: IgnoredAny,
    #[serde(default, rename = "send_content_md5")]
    _send_content_md5: IgnoredAny,
    #[serde(default, rename = "disable_dualstack")]
    _disable_dualstack: IgnoredAny,
    #[serde(default, rename = "trace")]
    _trace: IgnoredAny,
}

/// Thanos `exthttp.HTTPConfig`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpConfig {
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    tls_config: TlsConfig,
    // Go transport tuning: accepted, ignored.
    #[serde(default, rename = "idle_conn_timeout")]
    _idle_conn_timeout: IgnoredAny,
    #[serde(default, rename = "response_header_timeout")]
    _response_header_timeout: IgnoredAny,
    #[serde(default, rename = "tls_handshake_timeout")]
    _tls_handshake_timeout: IgnoredAny,
    #[serde(default, rename = "expect_continue_timeout")]
    _expect_continue_timeout: IgnoredAny,
    #[serde(default, rename = "max_idle_conns")]
    _max_idle_conns: IgnoredAny,
    #[serde(default, rename = "max_idle_conns_per_host")]
    _max_idle_conns_per_host: IgnoredAny,
    #[serde(default, rename = "max_conns_per_host")]
    _max_conns_per_host: IgnoredAny,
    #[serde(default, rename = "force_attempt_http2")]
    _force_attempt_http2: IgnoredAny,
    #[serde(default, rename = "disable_compression")]
    _disable_compression: IgnoredAny,
}

/// Thanos `exthttp.TLSConfig`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    #[serde(default)]
    ca_file: String,
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    server_name: String,
    #[serde(default)]
    insecure_skip_verify: bool,
}

/// Thanos `s3.SSEConfig`; only its `type` matters to us (any type is refused).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SseConfig {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default, rename = "kms_key_id")]
    _kms_key_id: IgnoredAny,
    #[serde(default, rename = "kms_encryption_context")]
    _kms_encryption_context: IgnoredAny,
    #[serde(default, rename = "encryption_key")]
    _encryption_key: IgnoredAny,
}

/// Checks an S3 config like Thanos `validate` and refuses the features of the module table;
/// `invalid` builds the error for a key.
pub(super) fn validate_s3(raw: S3, invalid: &impl Fn(&str, String) -> ShipperError) -> Result<S3Config, ShipperError> {
    let require = |ok: bool, key: &str, message: &str| {
        if ok {
            Ok(())
        } else {
            Err(invalid(key, message.to_owned()))
        }
    };
    // Required values and consistent credentials, as Thanos `validate`.
    require(!raw.bucket.is_empty(), "config.bucket", "missing bucket name")?;
    require(
        !raw.endpoint.is_empty(),
        "config.endpoint",
        "no s3 endpoint in config file",
    )?;
    let bare_host = !raw.endpoint.contains("://") && !raw.endpoint.contains(['/', ' ', '\t', '\n']);
    let message = "must be host[:port] without scheme or path (`insecure: true` selects http)";
    require(bare_host, "config.endpoint", message)?;
    let (has_key, has_secret) = (!raw.access_key.is_empty(), !raw.secret_key.is_empty());
    require(
        has_key || !has_secret,
        "config.access_key",
        "missing while secret_key is set",
    )?;
    require(
        has_secret || !has_key,
        "config.secret_key",
        "missing while access_key is set",
    )?;
    let message = "aws_sdk_auth and access_key are mutually exclusive";
    require(!(raw.aws_sdk_auth && has_key), "config.aws_sdk_auth", message)?;
    // Features that would change what is stored or how it is signed: refused rather than ignored.
    require(
        !raw.signature_version2,
        "config.signature_version2",
        "only signature version 4 is supported",
    )?;
    let message = "large block files are always streamed in parts";
    require(!raw.disable_multipart, "config.disable_multipart", message)?;
    let message = "object metadata is not supported";
    require(raw.put_user_metadata.is_empty(), "config.put_user_metadata", message)?;
    let message = "server-side encryption is not supported";
    require(raw.sse_config.kind.is_empty(), "config.sse_config.type", message)?;
    let tls = &raw.http_config.tls_config;
    let message = "client certificates are not supported";
    require(
        tls.cert_file.is_empty(),
        "config.http_config.tls_config.cert_file",
        message,
    )?;
    require(
        tls.key_file.is_empty(),
        "config.http_config.tls_config.key_file",
        message,
    )?;
    let message = "a TLS server name override is not supported";
    require(
        tls.server_name.is_empty(),
        "config.http_config.tls_config.server_name",
        message,
    )?;
    let known_version = matches!(raw.list_objects_version.as_str(), "" | "v1" | "v2");
    require(
        known_version,
        "config.list_objects_version",
        "supported values are v1, v2",
    )?;

    let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
    let http = raw.http_config;
    Ok(S3Config {
        bucket: raw.bucket,
        endpoint: raw.endpoint,
        region: non_empty(raw.region),
        credentials: has_key.then(|| StaticCredentials {
            access_key: raw.access_key,
            secret_key: raw.secret_key,
            session_token: non_empty(raw.session_token),
        }),
        insecure: raw.insecure,
        bucket_lookup: raw.bucket_lookup_type,
        sts_endpoint: non_empty(raw.sts_endpoint),
        insecure_skip_verify: http.insecure_skip_verify || http.tls_config.insecure_skip_verify,
        ca_file: non_empty(http.tls_config.ca_file).map(PathBuf::from),
    })
}
