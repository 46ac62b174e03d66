//! The validated agent configuration: Prometheus `config/config.go` keys and defaults (v2.42).
//! These types are produced only by [`super::Config::from_yaml`] / [`super::Config::load`], which
//! fill every default and check every rule, so consumers never see a half-valid value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use trawl_model::labels::Labels;
use trawl_model::relabel::RelabelConfig;

use super::kubernetes::KubernetesSdConfig;

/// The whole agent config file (`--config.file`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `global:` section; its values are already copied into each scrape config.
    pub global: GlobalConfig,
    /// `scrape_configs:`, one per job, `job_name`s unique.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// `remote_write:`, one per endpoint, `name`s unique.
    pub remote_write: Vec<RemoteWriteConfig>,
    /// `plugins:` (Trawl's addition): Wasm plugins, loaded once, referenced by name from jobs and
    /// endpoints; `name`s unique, every reference resolves.
    pub plugins: Vec<PluginConfig>,
}

/// The `global:` section, as Prometheus `GlobalConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    /// Default interval between scrapes of a target; default 1m.
    pub scrape_interval: Duration,
    /// Default scrape timeout; default 10s, never above `scrape_interval`.
    pub scrape_timeout: Duration,
    /// Labels added to every series sent by remote write (names validated; empty values dropped).
    pub external_labels: Labels,
}

/// Target scheme, `scheme:` in a scrape config: `http` (default) or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The scheme as written in URLs and in the `__scheme__` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `scrape_configs:` entry (a job), as Prometheus `ScrapeConfig`, with defaults resolved.
/// Compared with `==` on reload to keep the scrape loops of unchanged jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    /// `job_name`: required, unique; the default `job` label of its targets.
    pub job_name: String,
    /// Interval between scrapes; defaults to `global.scrape_interval`.
    pub scrape_interval: Duration,
    /// Per-scrape timeout; defaults to `min(global.scrape_timeout, scrape_interval)`; never above
    /// `scrape_interval`.
    pub scrape_timeout: Duration,
    /// HTTP path of the metrics endpoint; default `/metrics`.
    pub metrics_path: String,
    /// Scheme of the targets; default `http`.
    pub scheme: Scheme,
    /// URL query parameters sent with each scrape (`params: {module: [if_mib]}`).
    pub params: BTreeMap<String, Vec<String>>,
    /// When true, labels scraped from the target win over target labels on conflict; default false.
    pub honor_labels: bool,
    /// When true, timestamps exposed by the target are kept; default true.
    pub honor_timestamps: bool,
    /// `static_configs:` target groups.
    pub static_configs: Vec<StaticConfig>,
    /// `file_sd_configs:` providers.
    pub file_sd_configs: Vec<FileSdConfig>,
    /// `kubernetes_sd_configs:` providers.
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Target relabeling, applied to discovered targets before scraping.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Metric relabeling, applied to each scraped series.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Maximum samples per scrape after metric relabeling; 0 = no limit (default).
    pub sample_limit: usize,
    /// Maximum labels per series; 0 = no limit (default).
    pub label_limit: usize,
    /// Maximum length in bytes of a label name; 0 = no limit (default).
    pub label_name_length_limit: usize,
    /// Maximum length in bytes of a label value; 0 = no limit (default).
    pub label_value_length_limit: usize,
    /// Maximum uncompressed scrape body size in bytes; 0 = no limit (default). Written as a
    /// Prometheus byte size (`10MB`, `512KiB`; powers of 1024).
    pub body_size_limit: u64,
    /// Maximum targets after target relabeling; 0 = no limit (default).
    pub target_limit: usize,
    /// Whether to ask targets for gzip (`Accept-Encoding: gzip`); default true.
    pub enable_compression: bool,
    /// HTTP client settings (auth, TLS, redirects), from keys inlined in the job.
    pub http: HttpClientConfig,
    /// Plugins run on this job's series, in order (Trawl's addition).
    pub plugins: Vec<ScrapePlugin>,
}

/// A `static_configs:` entry: fixed targets sharing labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StaticConfig {
    /// `host:port` addresses, each becomes a target's `__address__`.
    pub targets: Vec<String>,
    /// Labels added to every target of the group (names validated).
    pub labels: Labels,
}

/// A `file_sd_configs:` entry, as Prometheus `discovery/file`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSdConfig {
    /// Files (`.json`, `.yml`, `.yaml`) to read target groups from; the last path element may be
    /// a glob (`*`, `?`, `[…]`). Relative paths are already resolved against the config file's
    /// directory.
    pub files: Vec<PathBuf>,
    /// Interval at which all files are re-read even without a change event; default 5m.
    pub refresh_interval: Duration,
}

/// HTTP client settings shared by scrape and remote write configs, as prometheus/common
/// `config.HTTPClientConfig`. `bearer_token` / `bearer_token_file` are folded into
/// [`Authorization`] with type `Bearer`. At most one of basic auth and authorization is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpClientConfig {
    /// `basic_auth:`.
    pub basic_auth: Option<BasicAuth>,
    /// `authorization:` (or the legacy `bearer_token*` keys).
    pub authorization: Option<Authorization>,
    /// `tls_config:`.
    pub tls_config: TlsConfig,
    /// Whether to follow HTTP 3xx redirects; default true.
    pub follow_redirects: bool,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            tls_config: TlsConfig::default(),
            follow_redirects: true,
        }
    }
}

/// `basic_auth:`; at most one of `password` and `password_file` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Inline password.
    pub password: Option<String>,
    /// File holding the password (re-read on every request; trailing newline trimmed).
    pub password_file: Option<PathBuf>,
}

/// `authorization:`; sends `Authorization: <type> <credentials>`. At most one of `credentials`
/// and `credentials_file` is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authorization {
    /// Scheme word; default `Bearer`. `Basic` is rejected (use `basic_auth`).
    pub r#type: String,
    /// Inline credentials.
    pub credentials: Option<String>,
    /// File holding the credentials (re-read on every request; trailing newline trimmed).
    pub credentials_file: Option<PathBuf>,
}

/// `tls_config:`, as prometheus/common `config.TLSConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsConfig {
    /// PEM file of CA certificates trusted in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain); set together with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate; set together with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Name used for SNI and to verify the server certificate instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

/// One `remote_write:` endpoint, as Prometheus `RemoteWriteConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    /// Receive endpoints, `http` or `https`, e.g. `http://collector:19291/api/v1/receive`: never
    /// empty, in file order, no duplicates. Several URLs (`url: [..]` or `urls: [..]`, Trawl's
    /// addition) are equivalent collectors: each batch goes to one healthy collector. A host that
    /// resolves to several addresses also counts as several collectors.
    pub urls: Vec<url::Url>,
    /// Unique name used in metrics and logs; when absent in the file, the first 6 hex digits of
    /// an xxh64 hash of the URL (Prometheus hashes the whole config with MD5 instead; only
    /// uniqueness and stability matter).
    pub name: String,
    /// Timeout of one send request; default 30s.
    pub remote_timeout: Duration,
    /// Extra HTTP headers on every request; Prometheus's reserved headers are rejected.
    pub headers: BTreeMap<String, String>,
    /// Relabeling applied to each series before it is queued.
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Queue sizing and retry behaviour.
    pub queue_config: QueueConfig,
    /// HTTP client settings (auth, TLS, redirects), from keys inlined in the endpoint.
    pub http: HttpClientConfig,
    /// Names of the plugins run on each new series of this endpoint after
    /// `write_relabel_configs`, in order (the `write` stage; Trawl's addition).
    pub plugins: Vec<String>,
}

/// `queue_config:`; defaults are current Prometheus `config.DefaultQueueConfig` (v2.43 on and 3.x;
/// 2.42 used capacity 2500, max_shards 200, max_samples_per_send 500). Fewer, larger requests
/// cost the agent and the receiver less per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Samples buffered per shard waiting to be sent; default 10000.
    pub capacity: usize,
    /// Shards at start and lower bound of resharding; default 1.
    pub min_shards: usize,
    /// Upper bound of resharding; default 50.
    pub max_shards: usize,
    /// Samples per request; default 2000.
    pub max_samples_per_send: usize,
    /// Longest a sample waits in a shard before a partial batch is sent; default 5s.
    pub batch_send_deadline: Duration,
    /// First retry delay, doubled on each retry; default 30ms.
    pub min_backoff: Duration,
    /// Largest retry delay; default 5s.
    pub max_backoff: Duration,
    /// Whether HTTP 429 is retried like a 5xx; default false.
    pub retry_on_http_429: bool,
    /// Trawl's: disk budget of the endpoint's on-disk queue, in bytes; past it the oldest
    /// queued data is dropped and counted. Default 1 GiB, at least 1 MiB.
    pub max_disk_usage: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            min_shards: 1,
            max_shards: 50,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            max_disk_usage: 1 << 30,
        }
    }
}

/// One `plugins:` entry (Trawl's addition): a Wasm component and how to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Unique name that jobs and remote_write endpoints reference.
    pub name: String,
    /// The `.wasm` component; relative paths are resolved against the config file's directory.
    pub path: PathBuf,
    /// Expected SHA-256 of the file as 64 lowercase hex digits; loading refuses a mismatch.
    pub sha256: Option<String>,
    /// The plugin's own settings, handed to its `init` as JSON; `{}` when absent.
    pub config: serde_json::Value,
    /// What a failed call does to its batch; default `fail_open`.
    pub on_error: OnError,
    /// Longest a call may run; default 50ms.
    pub timeout: Duration,
    /// Most linear memory one instance may use, in bytes; default 64 MiB.
    pub memory_limit: u64,
}

/// `on_error:` of a plugin: what happens to a batch when its call fails (trap, timeout, memory
/// limit, invalid outcome, open circuit breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Keep the batch as if the plugin had kept everything (default: lose no data).
    #[default]
    FailOpen,
    /// Drop the batch (for plugins that must never let data through unprocessed, e.g. redaction).
    FailClosed,
}

/// An entry of a job's `plugins:` list: `{name: redact, stage: filter}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapePlugin {
    /// Name of a `plugins:` entry.
    pub name: String,
    /// Where in the scrape the plugin runs.
    pub stage: ScrapeStage,
}

/// The stages of a scrape a plugin can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScrapeStage {
    /// Once per series new to the target's series cache, after `metric_relabel_configs`; the
    /// outcome is cached with the series.
    Relabel,
    /// Once per scrape, on every series with its value.
    Filter,
}
