//! The config file as written: serde structs that reject unknown keys, with every default still
//! open (`Option`), plus the YAML entry point that turns serde-saphyr errors into
//! [`ConfigError`]s naming file, line and key path. [`super::validate`] turns these into the
//! public types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use trawl_model::duration::serde_duration;
use trawl_model::labels::{Labels, is_valid_label_name};
use trawl_model::relabel::RelabelConfig;

use super::ConfigError;
use super::kubernetes::RawKubernetesSdConfig;
use super::types::{OnError, Scheme, ScrapeStage};

/// Alias replays allowed per document; bounds "billion laughs" inputs long before memory does.
const MAX_REPLAYED_ALIAS_EVENTS: usize = 200_000;

/// Fields wrapped in [`Spanned`] (besides list elements): serde_path_to_error reports an extra
/// `value` segment under them, which is dropped from key paths.
const SPANNED_FIELDS: [&str; 6] = ["job_name", "scrape_interval", "scrape_timeout", "name", "url", "urls"];

/// Parses expanded config text into the raw structs.
pub(super) fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    let mut options = serde_saphyr::Options::default();
    // Same as the default today; spelled out because duplicate keys must stay errors.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_ALIAS_EVENTS;
    options.with_snippet = false;
    let mut key = String::from(".");
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            key = key_path(e.path());
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let location = e.location();
        let line = location.map(|l| l.line()).filter(|l| *l > 0);
        // serde-saphyr's text names its own options; say it like the other errors, with the
        // repeated key at the end of the path (serde_path_to_error only knows its mapping).
        if let serde_saphyr::Error::DuplicateMappingKey { key: dup, .. } = e.without_snippet() {
            return ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                key: duplicate_key_path(&key, dup.as_deref()),
                message: "duplicate key".to_owned(),
            };
        }
        let mut message = e.without_snippet().to_string();
        // serde-saphyr appends the location; the line is already in our prefix.
        if let Some(loc) = location {
            let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        ConfigError::Invalid {
            origin: origin.to_owned(),
            line,
            key,
            message,
        }
    })
}

/// Renders a serde path as `scrape_configs[0].tls_config.ca_file`, without Spanned's `value`.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    let mut spanned_parent = false;
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push_str(&format!("[{index}]"));
                spanned_parent = true;
            }
            Segment::Map { key } if spanned_parent && key == "value" => spanned_parent = false,
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
                spanned_parent = SPANNED_FIELDS.contains(&key.as_str());
            }
            Segment::Unknown => {
                out.push_str(".?");
                spanned_parent = false;
            }
        }
    }
    if out.is_empty() { ".".to_owned() } else { out }
}

/// The path of a repeated key: `mapping` is the path of the mapping holding it, which ends in
/// an unknown segment (`global.?`, or `.?` at the top), replaced by the key when it is a scalar.
pub(super) fn duplicate_key_path(mapping: &str, key: Option<&str>) -> String {
    let parent = mapping.strip_suffix(".?").unwrap_or(mapping);
    match (parent, key) {
        ("" | ".", Some(key)) => key.to_owned(),
        ("", None) => ".".to_owned(),
        (parent, Some(key)) => format!("{parent}.{key}"),
        (parent, None) => parent.to_owned(),
    }
}

/// Accepts YAML `null` (an empty key) as the type's default, as Go's yaml.v2 does.
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A label set written as a YAML map; names must be valid label names, empty values are dropped.
fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
    let map: BTreeMap<String, String> = nullable(d)?;
    if let Some(bad) = map.keys().find(|name| !is_valid_label_name(name)) {
        return Err(serde::de::Error::custom(format!("{bad:?} is not a valid label name")));
    }
    Ok(Labels::from_pairs(map))
}

/// A byte size such as `10MB`; see [`super::parse_size`]. A bare `0` is accepted.
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct SizeVisitor;
    impl serde::de::Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte size such as 512B, 10MB or 1GiB")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            super::parse_size(v).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<u64, E> {
            Ok(0)
        }
    }
    d.deserialize_any(SizeVisitor)
}

pub(super) fn yes() -> bool {
    true
}

/// A Prometheus duration, for use inside [`Spanned`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_duration::deserialize(d).map(Dur)
    }
}

/// Declares a raw struct with the HTTP client keys of prometheus/common `HTTPClientConfig`
/// inlined at its level (serde's `flatten` does not work with `deny_unknown_fields`), and a
/// `take_http` method that moves them out.
macro_rules! with_http_client_keys {
    ($(#[$meta:meta])* pub(super) struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub(super) struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            #[serde(default)]
            pub basic_auth: Option<RawBasicAuth>,
            #[serde(default)]
            pub authorization: Option<RawAuthorization>,
            #[serde(default)]
            pub bearer_token: Option<String>,
            #[serde(default)]
            pub bearer_token_file: Option<PathBuf>,
            #[serde(default, deserialize_with = "nullable")]
            pub tls_config: RawTls,
            #[serde(default = "yes")]
            pub follow_redirects: bool,
            /// Accepted for compatibility with configs Prometheus prints; HTTP/2 is negotiated.
            #[serde(default, rename = "enable_http2")]
            pub _enable_http2: Option<bool>,
        }

        impl $name {
            pub(super) fn take_http(&mut self) -> RawHttp {
                RawHttp {
                    basic_auth: self.basic_auth.take(),
                    authorization: self.authorization.take(),
                    bearer_token: self.bearer_token.take(),
                    bearer_token_file: self.bearer_token_file.take(),
                    tls_config: std::mem::take(&mut self.tls_config),
                    follow_redirects: self.follow_redirects,
                }
            }
        }
    };
}

// Used by `super::kubernetes` for `kubernetes_sd_configs`, which take the HTTP client keys too.
pub(super) use with_http_client_keys;

/// The top level of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub global: RawGlobal,
    #[serde(default, deserialize_with = "nullable")]
    pub scrape_configs: Vec<Spanned<RawScrapeConfig>>,
    #[serde(default, deserialize_with = "nullable")]
    pub remote_write: Vec<Spanned<RawRemoteWrite>>,
    #[serde(default, deserialize_with = "nullable")]
    pub plugins: Vec<Spanned<RawPlugin>>,
}

/// `global:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGlobal {
    #[serde(default)]
    pub scrape_interval: Option<Spanned<Dur>>,
    #[serde(default)]
    pub scrape_timeout: Option<Spanned<Dur>>,
    /// Accepted so Prometheus server configs load; an agent evaluates no rules.
    #[serde(default, rename = "evaluation_interval")]
    pub _evaluation_interval: Option<Dur>,
    #[serde(default, deserialize_with = "labels")]
    pub external_labels: Labels,
}

with_http_client_keys! {
    /// One `scrape_configs:` entry.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawScrapeConfig {
        pub job_name: Spanned<String>,
        #[serde(default)]
        pub scrape_interval: Option<Spanned<Dur>>,
        #[serde(default)]
        pub scrape_timeout: Option<Spanned<Dur>>,
        #[serde(default)]
        pub metrics_path: Option<String>,
        #[serde(default)]
        pub scheme: Option<Scheme>,
        #[serde(default, deserialize_with = "nullable")]
        pub params: BTreeMap<String, Vec<String>>,
        #[serde(default)]
        pub honor_labels: bool,
        #[serde(default = "yes")]
        pub honor_timestamps: bool,
        #[serde(default, deserialize_with = "nullable")]
        pub static_configs: Vec<RawStaticConfig>,
        #[serde(default, deserialize_with = "nullable")]
        pub file_sd_configs: Vec<RawFileSdConfig>,
        #[serde(default, deserialize_with = "nullable")]
        pub kubernetes_sd_configs: Vec<Spanned<RawKubernetesSdConfig>>,
        #[serde(default, deserialize_with = "nullable")]
        pub relabel_configs: Vec<RelabelConfig>,
        #[serde(default, deserialize_with = "nullable")]
        pub metric_relabel_configs: Vec<RelabelConfig>,
        #[serde(default)]
        pub sample_limit: usize,
        #[serde(default)]
        pub label_limit: usize,
        #[serde(default)]
        pub label_name_length_limit: usize,
        #[serde(default)]
        pub label_value_length_limit: usize,
        #[serde(default, deserialize_with = "byte_size")]
        pub body_size_limit: u64,
        #[serde(default)]
        pub target_limit: usize,
        #[serde(default = "yes")]
        pub enable_compression: bool,
        #[serde(default, deserialize_with = "nullable")]
        pub plugins: Vec<RawScrapePlugin>,
    }
}

/// A `static_configs:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStaticConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub targets: Vec<String>,
    #[serde(default, deserialize_with = "labels")]
    pub labels: Labels,
}

/// A `file_sd_configs:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileSdConfig {
    #[serde(default, deserialize_with = "nullable")]
    pub files: Vec<String>,
    #[serde(default, with = "serde_duration::option")]
    pub refresh_interval: Option<Duration>,
}

/// The HTTP client keys of one scrape or remote write config, moved out of it.
#[derive(Debug)]
pub(super) struct RawHttp {
    pub basic_auth: Option<RawBasicAuth>,
    pub authorization: Option<RawAuthorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls_config: RawTls,
    pub follow_redirects: bool,
}

/// `basic_auth:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `authorization:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuthorization {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

/// `tls_config:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

with_http_client_keys! {
    /// One `remote_write:` entry.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawRemoteWrite {
        /// One URL or a list (several equivalent collectors).
        #[serde(default)]
        pub url: Option<Spanned<UrlList>>,
        /// Trawl's spelling of a list of `url`s; exclusive with `url`.
        #[serde(default)]
        pub urls: Option<Spanned<UrlList>>,
        #[serde(default)]
        pub name: Option<Spanned<String>>,
        #[serde(default, with = "serde_duration::option")]
        pub remote_timeout: Option<Duration>,
        #[serde(default, deserialize_with = "nullable")]
        pub headers: BTreeMap<String, String>,
        #[serde(default, deserialize_with = "nullable")]
        pub write_relabel_configs: Vec<RelabelConfig>,
        #[serde(default, deserialize_with = "nullable")]
        pub queue_config: RawQueueConfig,
        #[serde(default, deserialize_with = "nullable")]
        pub plugins: Vec<String>,
    }
}

/// `queue_config:`; absent keys take [`super::QueueConfig::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueueConfig {
    #[serde(default)]
    pub capacity: Option<usize>,
    #[serde(default)]
    pub min_shards: Option<usize>,
    #[serde(default)]
    pub max_shards: Option<usize>,
    #[serde(default)]
    pub max_samples_per_send: Option<usize>,
    #[serde(default, with = "serde_duration::option")]
    pub batch_send_deadline: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    pub min_backoff: Option<Duration>,
    #[serde(default, with = "serde_duration::option")]
    pub max_backoff: Option<Duration>,
    #[serde(default)]
    pub retry_on_http_429: Option<bool>,
    #[serde(default, deserialize_with = "optional_byte_size")]
    pub max_disk_usage: Option<u64>,
}

/// `url:` / `urls:` of a remote_write entry: one string or a list of strings.
#[derive(Debug, Default)]
pub(super) struct UrlList(pub Vec<String>);

impl<'de> Deserialize<'de> for UrlList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UrlListVisitor;
        impl<'de> serde::de::Visitor<'de> for UrlListVisitor {
            type Value = UrlList;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL or a list of URLs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UrlList, E> {
                Ok(UrlList(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UrlList, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                }
                Ok(UrlList(urls))
            }
        }
        d.deserialize_any(UrlListVisitor)
    }
}

/// One `plugins:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub name: Spanned<String>,
    pub path: PathBuf,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub on_error: Option<OnError>,
    #[serde(default, with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "optional_byte_size")]
    pub memory_limit: Option<u64>,
}

/// An entry of a job's `plugins:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScrapePlugin {
    pub name: String,
    pub stage: ScrapeStage,
}

fn optional_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    byte_size(d).map(Some)
}
