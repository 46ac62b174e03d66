//! Raw structs → public types: defaults, validation and relative-path resolution, as Prometheus
//! 2.42 `config/config.go` (`GlobalConfig.UnmarshalYAML`, `ScrapeConfig.Validate`,
//! `RemoteWriteConfig.UnmarshalYAML`, `SetDirectory`), prometheus/common
//! `HTTPClientConfig.Validate` and `discovery/file` `SDConfig.UnmarshalYAML`; the
//! `kubernetes_sd_configs` rules live in [`super::kubernetes`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};
use trawl_model::duration::format_duration;

use super::ConfigError;
use super::raw::{
    RawConfig, RawFileSdConfig, RawGlobal, RawHttp, RawQueueConfig, RawRemoteWrite, RawScrapeConfig, UrlList,
};
use super::types::{
    Authorization, BasicAuth, Config, FileSdConfig, GlobalConfig, HttpClientConfig, QueueConfig, RemoteWriteConfig,
    ScrapeConfig, ScrapePlugin, StaticConfig, TlsConfig,
};

const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);

/// Headers Prometheus refuses in `remote_write.headers` (lower case); `authorization` has its
/// own message.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Error context: the file name for messages and the directory relative paths resolve against.
pub(super) struct Ctx<'a> {
    origin: &'a str,
    base: &'a Path,
}

fn line_of(location: &Location) -> Option<u64> {
    Some(location.line()).filter(|l| *l > 0)
}

pub(super) fn line<T>(spanned: &Spanned<T>) -> Option<u64> {
    line_of(&spanned.referenced)
}

/// A duration that was written and is not zero (Prometheus treats `0` as "use the default").
fn explicit(d: &Option<Spanned<super::raw::Dur>>) -> Option<(Duration, Option<u64>)> {
    d.as_ref()
        .filter(|s| !s.value.0.is_zero())
        .map(|s| (s.value.0, line(s)))
}

impl RawConfig {
    /// Fills defaults and checks every rule; `base` is the config file's directory.
    pub(super) fn validate(self, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx { origin, base };
        let global = cx.global(self.global)?;

        let mut jobs: HashMap<String, usize> = HashMap::new();
        let mut scrape_configs = Vec::with_capacity(self.scrape_configs.len());
        for (i, raw) in self.scrape_configs.into_iter().enumerate() {
            let name_line = line(&raw.value.job_name);
            let job = cx.scrape(i, raw, &global)?;
            if let Some(first) = jobs.insert(job.job_name.clone(), i) {
                return Err(cx.err(
                    name_line,
                    format!("scrape_configs[{i}].job_name"),
                    format!(
                        "found multiple scrape configs with job name {:?} (first at scrape_configs[{first}])",
                        job.job_name
                    ),
                ));
            }
            scrape_configs.push(job);
        }

        let mut names: HashMap<String, usize> = HashMap::new();
        let mut remote_write = Vec::with_capacity(self.remote_write.len());
        for (i, raw) in self.remote_write.into_iter().enumerate() {
            let at = line(&raw);
            let named = raw.value.name.as_ref().is_some_and(|n| !n.value.is_empty());
            let rw = cx.remote_write(i, raw)?;
            if let Some(first) = names.insert(rw.name.clone(), i) {
                let message = if named {
                    format!(
                        "found multiple remote write configs with name {:?} (first at remote_write[{first}])",
                        rw.name
                    )
                } else {
                    format!(
                        "duplicate remote write configs are not allowed, found duplicate for URL {} (first at remote_write[{first}]); give them distinct `name`s",
                        DisplayUrls(&rw.urls)
                    )
                };
                return Err(cx.err(at, format!("remote_write[{i}].name"), message));
            }
            remote_write.push(rw);
        }

        let plugins = cx.plugins(self.plugins)?;
        let config = Config {
            global,
            scrape_configs,
            remote_write,
            plugins,
        };
        cx.plugin_references(&config)?;
        Ok(config)
    }
}

impl Ctx<'_> {
    pub(super) fn err(&self, line: Option<u64>, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }

    /// Joins a relative path onto the config directory; empty paths mean "not set".
    pub(super) fn path(&self, p: Option<PathBuf>) -> Option<PathBuf> {
        let p = p.filter(|p| !p.as_os_str().is_empty())?;
        Some(if p.is_absolute() { p } else { self.base.join(p) })
    }

    fn global(&self, raw: RawGlobal) -> Result<GlobalConfig, ConfigError> {
        let scrape_interval = explicit(&raw.scrape_interval).map_or(DEFAULT_SCRAPE_INTERVAL, |(d, _)| d);
        let scrape_timeout = match explicit(&raw.scrape_timeout) {
            Some((timeout, at)) if timeout > scrape_interval => {
                return Err(self.err(
                    at,
                    "global.scrape_timeout",
                    format!(
                        "global scrape timeout {} greater than scrape interval {}",
                        format_duration(timeout),
                        format_duration(scrape_interval)
                    ),
                ));
            }
            Some((timeout, _)) => timeout,
            None => DEFAULT_SCRAPE_TIMEOUT.min(scrape_interval),
        };
        Ok(GlobalConfig {
            scrape_interval,
            scrape_timeout,
            external_labels: raw.external_labels,
        })
    }

    fn scrape(
        &self,
        i: usize,
        raw: Spanned<RawScrapeConfig>,
        global: &GlobalConfig,
    ) -> Result<ScrapeConfig, ConfigError> {
        let key = format!("scrape_configs[{i}]");
        let at = line(&raw);
        let mut raw = raw.value;
        let job_name = raw.job_name.value.clone();
        if job_name.is_empty() {
            return Err(self.err(line(&raw.job_name), format!("{key}.job_name"), "job_name is empty"));
        }

        // First the interval, then check the timeout (explicit or inferred) against it.
        let scrape_interval = explicit(&raw.scrape_interval).map_or(global.scrape_interval, |(d, _)| d);
        let scrape_timeout = match explicit(&raw.scrape_timeout) {
            Some((timeout, timeout_at)) if timeout > scrape_interval => {
                return Err(self.err(
                    timeout_at,
                    format!("{key}.scrape_timeout"),
                    format!(
                        "scrape timeout {} greater than scrape interval {} for scrape config with job name {job_name:?}",
                        format_duration(timeout),
                        format_duration(scrape_interval)
                    ),
                ));
            }
            Some((timeout, _)) => timeout,
            None => global.scrape_timeout.min(scrape_interval),
        };

        // Like Prometheus, catch URLs put in place of host:port unless relabeling may fix them.
        let check_addresses = raw.relabel_configs.is_empty();
        let mut static_configs = Vec::with_capacity(raw.static_configs.len());
        for (j, sc) in std::mem::take(&mut raw.static_configs).into_iter().enumerate() {
            for target in &sc.targets {
                let bad = if target.is_empty() {
                    Some("empty target address".to_owned())
                } else if check_addresses && target.contains('/') {
                    Some(format!("{target:?} is not a valid hostname"))
                } else {
                    None
                };
                if let Some(message) = bad {
                    return Err(self.err(at, format!("{key}.static_configs[{j}].targets"), message));
                }
            }
            static_configs.push(StaticConfig {
                targets: sc.targets,
                labels: sc.labels,
            });
        }

        let file_sd_configs = std::mem::take(&mut raw.file_sd_configs)
            .into_iter()
            .enumerate()
            .map(|(j, f)| self.file_sd(f, at, &format!("{key}.file_sd_configs[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let kubernetes_sd_configs = std::mem::take(&mut raw.kubernetes_sd_configs)
            .into_iter()
            .enumerate()
            .map(|(j, k)| self.kubernetes_sd(k, &format!("{key}.kubernetes_sd_configs[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;

        let http = self.http(raw.take_http(), at, &key)?;
        Ok(ScrapeConfig {
            job_name,
            scrape_interval,
            scrape_timeout,
            metrics_path: raw.metrics_path.unwrap_or_else(|| "/metrics".to_owned()),
            scheme: raw.scheme.unwrap_or_default(),
            params: raw.params,
            honor_labels: raw.honor_labels,
            honor_timestamps: raw.honor_timestamps,
            static_configs,
            file_sd_configs,
            kubernetes_sd_configs,
            relabel_configs: raw.relabel_configs,
            metric_relabel_configs: raw.metric_relabel_configs,
            sample_limit: raw.sample_limit,
            label_limit: raw.label_limit,
            label_name_length_limit: raw.label_name_length_limit,
            label_value_length_limit: raw.label_value_length_limit,
            body_size_limit: raw.body_size_limit,
            target_limit: raw.target_limit,
            enable_compression: raw.enable_compression,
            http,
            plugins: raw
                .plugins
                .into_iter()
                .map(|p| ScrapePlugin {
                    name: p.name,
                    stage: p.stage,
                })
                .collect(),
        })
    }

    /// As `discovery/file` `SDConfig.UnmarshalYAML`: at least one file, each ending in
    /// `.json`, `.yml` or `.yaml`, wildcards only in the last path element.
    fn file_sd(&self, raw: RawFileSdConfig, at: Option<u64>, key: &str) -> Result<FileSdConfig, ConfigError> {
        if raw.files.is_empty() {
            return Err(self.err(
                at,
                format!("{key}.files"),
                "file service discovery config must contain at least one path name",
            ));
        }
        let mut files = Vec::with_capacity(raw.files.len());
        for name in raw.files {
            if !is_valid_sd_file_name(&name) {
                return Err(self.err(
                    at,
                    format!("{key}.files"),
                    format!(
                        "path name {name:?} is not valid for file discovery: it must end in .json, .yml or .yaml, with wildcards (*, ?, [...]) only in the last path element"
                    ),
                ));
            }
            if let Err(e) = crate::discovery::glob::check_pattern(&name) {
                return Err(self.err(at, format!("{key}.files"), e.to_string()));
            }
            files.extend(self.path(Some(PathBuf::from(name))));
        }
        let refresh_interval = raw.refresh_interval.unwrap_or(DEFAULT_FILE_SD_REFRESH);
        if refresh_interval.is_zero() {
            return Err(self.err(
                at,
                format!("{key}.refresh_interval"),
                "refresh_interval must be greater than 0",
            ));
        }
        Ok(FileSdConfig {
            files,
            refresh_interval,
        })
    }

    /// As prometheus/common `HTTPClientConfig.Validate`, then `bearer_token*` folded into
    /// `authorization` and relative files resolved.
    pub(super) fn http(&self, raw: RawHttp, at: Option<u64>, key: &str) -> Result<HttpClientConfig, ConfigError> {
        let fail = |field: &str, message: &str| self.err(at, format!("{key}{field}"), message.to_owned());
        let bearer_token = raw.bearer_token.filter(|t| !t.is_empty());
        let bearer_token_file = self.path(raw.bearer_token_file);
        let has_bearer = bearer_token.is_some() || bearer_token_file.is_some();
        if bearer_token.is_some() && bearer_token_file.is_some() {
            return Err(fail(
                ".bearer_token",
                "at most one of bearer_token & bearer_token_file must be configured",
            ));
        }
        if raw.basic_auth.is_some() && has_bearer {
            return Err(fail(
                ".basic_auth",
                "at most one of basic_auth, bearer_token & bearer_token_file must be configured",
            ));
        }
        if raw.basic_auth.is_some() && raw.authorization.is_some() {
            return Err(fail(
                ".authorization",
                "at most one of basic_auth & authorization must be configured",
            ));
        }

        let basic_auth = match raw.basic_auth {
            None => None,
            Some(b) => {
                let password = b.password.filter(|p| !p.is_empty());
                let password_file = self.path(b.password_file);
                if password.is_some() && password_file.is_some() {
                    return Err(fail(
                        ".basic_auth",
                        "at most one of basic_auth password & password_file must be configured",
                    ));
                }
                Some(BasicAuth {
                    username: b.username,
                    password,
                    password_file,
                })
            }
        };

        let authorization = match raw.authorization {
            Some(a) => {
                if has_bearer {
                    return Err(fail(
                        ".authorization",
                        "authorization is not compatible with bearer_token & bearer_token_file",
                    ));
                }
                let credentials = a.credentials.filter(|c| !c.is_empty());
                let credentials_file = self.path(a.credentials_file);
                if credentials.is_some() && credentials_file.is_some() {
                    return Err(fail(
                        ".authorization",
                        "at most one of authorization credentials & credentials_file must be configured",
                    ));
                }
                let kind = a
                    .kind
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .unwrap_or("Bearer");
                if kind.eq_ignore_ascii_case("basic") {
                    return Err(fail(
                        ".authorization.type",
                        r#"authorization type cannot be set to "basic", use "basic_auth" instead"#,
                    ));
                }
                if !kind.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(fail(".authorization.type", "authorization type must be a single token"));
                }
                Some(Authorization {
                    r#type: kind.to_owned(),
                    credentials,
                    credentials_file,
                })
            }
            None if has_bearer => Some(Authorization {
                r#type: "Bearer".to_owned(),
                credentials: bearer_token,
                credentials_file: bearer_token_file,
            }),
            None => None,
        };

        let tls = raw.tls_config;
        let tls_config = TlsConfig {
            ca_file: self.path(tls.ca_file),
            cert_file: self.path(tls.cert_file),
            key_file: self.path(tls.key_file),
            server_name: tls.server_name.filter(|s| !s.is_empty()),
            insecure_skip_verify: tls.insecure_skip_verify,
        };
        match (&tls_config.cert_file, &tls_config.key_file) {
            (Some(cert), None) => {
                return Err(fail(
                    ".tls_config.key_file",
                    &format!(
                        "client cert file {:?} specified without client key file",
                        cert.display().to_string()
                    ),
                ));
            }
            (None, Some(key_file)) => {
                return Err(fail(
                    ".tls_config.cert_file",
                    &format!(
                        "client key file {:?} specified without client cert file",
                        key_file.display().to_string()
                    ),
                ));
            }
            _ => {}
        }

        Ok(HttpClientConfig {
            basic_auth,
            authorization,
            tls_config,
            follow_redirects: raw.follow_redirects,
        })
    }

    fn remote_write(&self, i: usize, raw: Spanned<RawRemoteWrite>) -> Result<RemoteWriteConfig, ConfigError> {
        let key = format!("remote_write[{i}]");
        let at = line(&raw);
        let mut raw = raw.value;
        let (urls_key, list) = match (raw.url.take(), raw.urls.take()) {
            (Some(list), None) => (format!("{key}.url"), list),
            (None, Some(list)) => (format!("{key}.urls"), list),
            (None, None) => return Err(self.err(at, format!("{key}.url"), "missing field `url`")),
            (Some(_), Some(list)) => {
                return Err(self.err(
                    line(&list),
                    format!("{key}.urls"),
                    "use either `url` or `urls`, not both",
                ));
            }
        };
        let urls = self.urls(&list, &urls_key)?;
        let name = match raw.name.take().filter(|n| !n.value.is_empty()) {
            Some(n) => n.value,
            None => url_name(&urls),
        };

        let remote_timeout = raw.remote_timeout.unwrap_or(DEFAULT_REMOTE_TIMEOUT);
        if remote_timeout.is_zero() {
            return Err(self.err(
                at,
                format!("{key}.remote_timeout"),
                "remote_timeout must be greater than 0",
            ));
        }

        for (name, value) in &raw.headers {
            let lower = name.to_ascii_lowercase();
            let message = if lower == "authorization" {
                Some("authorization header must be changed via the basic_auth or authorization parameter".to_owned())
            } else if RESERVED_HEADERS.contains(&lower.as_str()) {
                Some(format!("{name} is a reserved header. It must not be changed"))
            } else if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                Some(format!("{name:?} is not a valid HTTP header name"))
            } else if reqwest::header::HeaderValue::from_str(value).is_err() {
                Some(format!("value of header {name} is not a valid HTTP header value"))
            } else {
                None
            };
            if let Some(message) = message {
                return Err(self.err(at, format!("{key}.headers.{name}"), message));
            }
        }

        let queue_config = self.queue(
            std::mem::take(&mut raw.queue_config),
            at,
            &format!("{key}.queue_config"),
        )?;
        let http = self.http(raw.take_http(), at, &key)?;
        Ok(RemoteWriteConfig {
            urls,
            name,
            remote_timeout,
            headers: raw.headers,
            write_relabel_configs: raw.write_relabel_configs,
            queue_config,
            http,
            plugins: raw.plugins,
        })
    }

    /// The endpoint's URLs: at least one, each `http(s)` with a host, no duplicates.
    fn urls(&self, list: &Spanned<UrlList>, key: &str) -> Result<Vec<url::Url>, ConfigError> {
        let at = line(list);
        if list.value.0.is_empty() {
            return Err(self.err(at, key.to_owned(), "at least one URL is required"));
        }
        let mut urls: Vec<url::Url> = Vec::with_capacity(list.value.0.len());
        for text in &list.value.0 {
            let url = url::Url::parse(text)
                .map_err(|e| self.err(at, key.to_owned(), format!("invalid URL {text:?}: {e}")))?;
            let problem = if !matches!(url.scheme(), "http" | "https") {
                Some(format!("URL scheme must be 'http' or 'https', got {:?}", url.scheme()))
            } else if url.host_str().is_none_or(str::is_empty) {
                Some("URL has no host".to_owned())
            } else if urls.contains(&url) {
                Some(format!("URL {url} is listed twice"))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(self.err(at, key.to_owned(), message));
            }
            urls.push(url);
        }
        Ok(urls)
    }

    /// Prometheus's defaults for absent keys, plus sanity checks Prometheus leaves to runtime.
    fn queue(&self, raw: RawQueueConfig, at: Option<u64>, key: &str) -> Result<QueueConfig, ConfigError> {
        let d = QueueConfig::default();
        let q = QueueConfig {
            capacity: raw.capacity.unwrap_or(d.capacity),
            min_shards: raw.min_shards.unwrap_or(d.min_shards),
            max_shards: raw.max_shards.unwrap_or(d.max_shards),
            max_samples_per_send: raw.max_samples_per_send.unwrap_or(d.max_samples_per_send),
            batch_send_deadline: raw.batch_send_deadline.unwrap_or(d.batch_send_deadline),
            min_backoff: raw.min_backoff.unwrap_or(d.min_backoff),
            max_backoff: raw.max_backoff.unwrap_or(d.max_backoff),
            retry_on_http_429: raw.retry_on_http_429.unwrap_or(d.retry_on_http_429),
            max_disk_usage: raw.max_disk_usage.unwrap_or(d.max_disk_usage),
        };
        let problem = if q.capacity == 0 {
            Some(("capacity", "capacity must be at least 1".to_owned()))
        } else if q.min_shards == 0 {
            Some(("min_shards", "min_shards must be at least 1".to_owned()))
        } else if q.max_shards < q.min_shards {
            Some((
                "max_shards",
                format!("max_shards {} is less than min_shards {}", q.max_shards, q.min_shards),
            ))
        } else if q.max_samples_per_send == 0 {
            Some((
                "max_samples_per_send",
                "max_samples_per_send must be at least 1".to_owned(),
            ))
        } else if q.batch_send_deadline.is_zero() {
            Some((
                "batch_send_deadline",
                "batch_send_deadline must be greater than 0".to_owned(),
            ))
        } else if q.max_disk_usage < MIN_DISK_USAGE {
            Some((
                "max_disk_usage",
                format!("max_disk_usage {} bytes is less than 1MiB", q.max_disk_usage),
            ))
        } else if q.max_backoff < q.min_backoff {
            Some((
                "max_backoff",
                format!(
                    "max_backoff {} is less than min_backoff {}",
                    format_duration(q.max_backoff),
                    format_duration(q.min_backoff)
                ),
            ))
        } else {
            None
        };
        match problem {
            Some((field, message)) => Err(self.err(at, format!("{key}.{field}"), message)),
            None => Ok(q),
        }
    }
}

/// Smallest `queue_config.max_disk_usage`: a few segments.
const MIN_DISK_USAGE: u64 = 1 << 20;

/// The default `name` of a remote write endpoint: 6 hex digits of the xxh64 of its URLs joined
/// by commas (of the URL alone when there is one, as before lists existed).
fn url_name(urls: &[url::Url]) -> String {
    let joined: Vec<&str> = urls.iter().map(url::Url::as_str).collect();
    let hash = xxhash_rust::xxh64::xxh64(joined.join(",").as_bytes(), 0);
    format!("{:06x}", hash >> 40)
}

/// URLs for messages: `a` or `[a, b]`.
struct DisplayUrls<'a>(&'a [url::Url]);

impl std::fmt::Display for DisplayUrls<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                let list: Vec<&str> = many.iter().map(url::Url::as_str).collect();
                write!(f, "[{}]", list.join(", "))
            }
        }
    }
}

/// Prometheus's `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`, extended to `?` and `[`:
/// wildcards may only appear in the last path element.
fn is_valid_sd_file_name(name: &str) -> bool {
    let has_extension = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext));
    let dir = name.rfind('/').map_or("", |i| &name[..i]);
    has_extension && !dir.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_file_names_follow_prometheus() {
        for ok in [
            "a.json",
            "dir/*.yml",
            "/etc/sd/*-targets.yaml",
            "x/a?[0-9].YAML",
            "rel/t.JSON",
        ] {
            assert!(is_valid_sd_file_name(ok), "{ok}");
        }
        for bad in ["a.txt", "*/a.json", "d*r/x.yml", "a.json/b", ".json", "dir/", "a.jsonx"] {
            assert!(!is_valid_sd_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn url_names_are_stable_six_hex_digits() {
        let a = url::Url::parse("http://a:1/api/v1/write").unwrap();
        let b = url::Url::parse("http://b:1/api/v1/write").unwrap();
        let one = url_name(std::slice::from_ref(&a));
        assert_eq!(one.len(), 6);
        assert_eq!(one, url_name(std::slice::from_ref(&a)));
        assert_ne!(one, url_name(std::slice::from_ref(&b)));
        assert_ne!(url_name(&[a.clone(), b.clone()]), url_name(&[b, a]));
    }
}
