//! Targets: the labels a discovered target ends up with after target relabeling, its scrape URL,
//! and the health its scrape loop reports. As Prometheus `scrape/target.go` (`PopulateLabels`).

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use trawl_model::duration::{format_duration, parse_duration};
use trawl_model::labels::{self, Labels};
use trawl_model::relabel;
use url::Url;

use crate::config::ScrapeConfig;

/// Why a discovered target could not become a target.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    /// Relabeling left no `__address__`.
    #[error("no address")]
    NoAddress,
    /// `__address__` contains a `/` or is otherwise not `host[:port]`.
    #[error("{0:?} is not a valid hostname")]
    InvalidAddress(String),
    /// `__scheme__` is neither `http` nor `https`.
    #[error("invalid scheme: {0:?}")]
    InvalidScheme(String),
    /// `__scrape_interval__` or `__scrape_timeout__` does not parse or is out of range.
    #[error("{label}: {message}")]
    InvalidDuration {
        /// The offending label.
        label: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The URL built from the labels is not valid.
    #[error("invalid scrape URL: {0}")]
    InvalidUrl(String),
}

/// Health of a target, as in the targets API: `up`, `down` or `unknown` (not scraped yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not scraped yet.
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl Health {
    /// The targets API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the scrape loop last reported about its target.
#[derive(Debug, Clone)]
pub struct ScrapeStatus {
    /// Outcome of the last scrape.
    pub health: Health,
    /// The last scrape's error, empty when it succeeded.
    pub last_error: String,
    /// Start of the last scrape.
    pub last_scrape: Option<SystemTime>,
    /// Wall time of the last scrape, in seconds.
    pub last_duration_seconds: f64,
}

/// A target: what to scrape, with which labels, how often.
#[derive(Debug)]
pub struct Target {
    /// Labels as discovered, before target relabeling (including `__meta_*`); refreshed when
    /// discovery changes only labels relabeling drops (see [`Target::discovered_labels`]).
    discovered_labels: Mutex<Labels>,
    /// Labels every series of this target gets (no `__`-prefixed labels).
    pub labels: Labels,
    /// The URL to scrape.
    pub url: Url,
    /// Scrape interval (from `__scrape_interval__`).
    pub interval: Duration,
    /// Scrape timeout (from `__scrape_timeout__`).
    pub timeout: Duration,
    /// Identity of the target: hash of its labels and URL, as Prometheus `Target.hash`.
    pub hash: u64,
    status: Mutex<ScrapeStatus>,
}

impl Target {
    /// Builds the target for one discovered label set that already carries the job's scrape
    /// labels ([`with_scrape_labels`]): applies `relabel_configs`, fills in the port and
    /// `instance`, and drops the `__` labels. `Ok(None)` means relabeling dropped it.
    pub(super) fn populate(discovered: Labels, cfg: &ScrapeConfig) -> Result<Option<Target>, TargetError> {
        let mut lset = discovered.clone();
        if !relabel::process(&cfg.relabel_configs, &mut lset) {
            return Ok(None);
        }
        let address = lset.get(labels::ADDRESS).to_owned();
        if address.is_empty() {
            return Err(TargetError::NoAddress);
        }
        let scheme = lset.get(labels::SCHEME).to_owned();
        let default_port = match scheme.as_str() {
            "http" | "" => 80,
            "https" => 443,
            _ => return Err(TargetError::InvalidScheme(scheme)),
        };
        if address.contains('/') {
            return Err(TargetError::InvalidAddress(address));
        }
        let address = if has_port(&address) {
            address
        } else {
            format!("{address}:{default_port}")
        };
        lset.set(labels::ADDRESS.to_owned(), address.clone());

        let interval = label_duration(&lset, labels::SCRAPE_INTERVAL)?;
        let timeout = label_duration(&lset, labels::SCRAPE_TIMEOUT)?;
        if timeout > interval {
            return Err(TargetError::InvalidDuration {
                label: labels::SCRAPE_TIMEOUT,
                message: format!(
                    "scrape timeout {} greater than scrape interval {}",
                    format_duration(timeout),
                    format_duration(interval)
                ),
            });
        }

        let url = scrape_url(&lset, &address, cfg)?;
        if lset.get(labels::INSTANCE).is_empty() {
            lset.set(labels::INSTANCE.to_owned(), address);
        }
        lset.retain(|l| !l.name.starts_with(labels::RESERVED_PREFIX));
        let hash = target_hash(&lset, url.as_str());
        Ok(Some(Target {
            discovered_labels: Mutex::new(discovered),
            labels: lset,
            url,
            interval,
            timeout,
            hash,
            status: Mutex::new(ScrapeStatus {
                health: Health::Unknown,
                last_error: String::new(),
                last_scrape: None,
                last_duration_seconds: 0.0,
            }),
        }))
    }

    /// Labels as discovered, before target relabeling (including `__meta_*`).
    pub fn discovered_labels(&self) -> Labels {
        self.discovered_labels.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the discovered labels of `newer`, the same target found again (equal hash) with
    /// other `__meta_*` labels, as Prometheus `scrapePool.sync` does; the loop keeps running.
    pub(super) fn refresh_discovered_labels(&self, newer: Target) {
        let labels = newer.discovered_labels.into_inner().unwrap_or_else(|e| e.into_inner());
        *self.discovered_labels.lock().unwrap_or_else(|e| e.into_inner()) = labels;
    }

    /// The last reported scrape status.
    pub fn status(&self) -> ScrapeStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the outcome of a scrape.
    pub fn report(&self, start: SystemTime, duration: Duration, error: Option<String>) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.health = if error.is_some() { Health::Down } else { Health::Up };
        status.last_error = error.unwrap_or_default();
        status.last_scrape = Some(start);
        status.last_duration_seconds = duration.as_secs_f64();
    }
}

/// Adds the labels Prometheus sets on every discovered target unless the group set them:
/// `job`, `__scheme__`, `__metrics_path__`, the interval and timeout, and `__param_<name>` for
/// the first value of each configured param. The result is what the targets API shows as
/// `discoveredLabels`, for active and dropped targets alike (as Prometheus `PopulateLabels`).
pub(super) fn with_scrape_labels(mut lset: Labels, cfg: &ScrapeConfig) -> Labels {
    let mut defaults = vec![
        (labels::JOB.to_owned(), cfg.job_name.clone()),
        (labels::SCHEME.to_owned(), cfg.scheme.to_string()),
        (labels::METRICS_PATH.to_owned(), cfg.metrics_path.clone()),
        (labels::SCRAPE_INTERVAL.to_owned(), format_duration(cfg.scrape_interval)),
        (labels::SCRAPE_TIMEOUT.to_owned(), format_duration(cfg.scrape_timeout)),
    ];
    for (name, values) in &cfg.params {
        if let Some(first) = values.first() {
            defaults.push((format!("{}{name}", labels::PARAM_PREFIX), first.clone()));
        }
    }
    for (name, value) in defaults {
        if !lset.contains(&name) {
            lset.set(name, value);
        }
    }
    lset
}

/// Whether `host[:port]` already names a port (`[::1]:80` yes, `::1` and `[::1]` no).
fn has_port(address: &str) -> bool {
    match address.rsplit_once(':') {
        None => false,
        Some((host, port)) => {
            let bracketed = host.starts_with('[') && host.ends_with(']');
            let plain = !host.contains(':');
            (bracketed || plain) && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

fn label_duration(lset: &Labels, label: &'static str) -> Result<Duration, TargetError> {
    let d = parse_duration(lset.get(label)).map_err(|e| TargetError::InvalidDuration {
        label,
        message: e.to_string(),
    })?;
    if d.is_zero() {
        return Err(TargetError::InvalidDuration {
            label,
            message: "must not be zero".into(),
        });
    }
    Ok(d)
}

/// `scheme://address/metrics_path?params`, where `__param_<name>` labels replace the first value
/// of the configured param (as Prometheus `Target.URL`).
fn scrape_url(lset: &Labels, address: &str, cfg: &ScrapeConfig) -> Result<Url, TargetError> {
    let scheme = match lset.get(labels::SCHEME) {
        "" => "http",
        s => s,
    };
    let text = format!("{scheme}://{address}{}", lset.get(labels::METRICS_PATH));
    let mut url = Url::parse(&text).map_err(|e| TargetError::InvalidUrl(format!("{text}: {e}")))?;
    let mut params: Vec<(String, Vec<String>)> = cfg.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for l in lset.iter() {
        if let Some(name) = l.name.strip_prefix(labels::PARAM_PREFIX) {
            match params.iter_mut().find(|(k, _)| k == name) {
                Some((_, values)) if !values.is_empty() => values[0] = l.value.clone(),
                Some((_, values)) => values.push(l.value.clone()),
                None => params.push((name.to_owned(), vec![l.value.clone()])),
            }
        }
    }
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for value in values {
                query.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

fn target_hash(lset: &Labels, url: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for l in lset {
        h.update(l.name.as_bytes());
        h.update(&[0xff]);
        h.update(l.value.as_bytes());
        h.update(&[0xff]);
    }
    h.update(url.as_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn job(yaml_extra: &str) -> ScrapeConfig {
        let text = format!("scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n{yaml_extra}");
        Config::from_yaml(&text, "test.yml")
            .expect("config")
            .scrape_configs
            .remove(0)
    }

    fn addr(a: &str) -> Labels {
        Labels::from_pairs([(labels::ADDRESS, a)])
    }

    /// What the pool does with each discovered label set.
    fn populate(discovered: Labels, cfg: &ScrapeConfig) -> Result<Option<Target>, TargetError> {
        Target::populate(with_scrape_labels(discovered, cfg), cfg)
    }

    #[test]
    fn scrape_labels_fill_in_only_what_the_group_lacks() {
        let cfg = job("    metrics_path: /m
    params:
      module: [a, b]
");
        let mut l = addr("h:1");
        l.set("job".into(), "from-group".into());
        let l = with_scrape_labels(l, &cfg);
        assert_eq!(
            l.to_string(),
            r#"{__address__="h:1", __metrics_path__="/m", __param_module="a", __scheme__="http", __scrape_interval__="15s", __scrape_timeout__="10s", job="from-group"}"#
        );
    }

    #[test]
    fn default_labels_port_and_instance_follow_prometheus() {
        let t = populate(addr("host"), &job("")).unwrap().unwrap();
        assert_eq!(t.labels.to_string(), r#"{instance="host:80", job="node"}"#);
        assert_eq!(t.url.as_str(), "http://host/metrics", "the URL drops the default port");
        assert_eq!(t.interval, Duration::from_secs(15));
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(t.discovered_labels().get(labels::SCRAPE_INTERVAL), "15s");
        assert_eq!(t.status().health, Health::Unknown);
    }

    #[test]
    fn https_and_ipv6_ports() {
        let cfg = job("    scheme: https\n");
        let t = populate(addr("[::1]"), &cfg).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "https://[::1]/metrics");
        assert_eq!(t.labels.get("instance"), "[::1]:443");
        let t = populate(addr("[::1]:9100"), &cfg).unwrap().unwrap();
        assert_eq!(t.labels.get("instance"), "[::1]:9100");
    }

    #[test]
    fn params_from_config_and_labels() {
        let cfg = job("    params:\n      module: [http_2xx, tcp]\n      target: [a]\n");
        let mut l = addr("h:1");
        l.set("__param_target".into(), "b".into());
        let t = populate(l, &cfg).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "http://h:1/metrics?module=http_2xx&module=tcp&target=b");
    }

    #[test]
    fn relabeling_can_drop_rewrite_or_break_a_target() {
        let cfg = job(
            "    relabel_configs:\n      - {source_labels: [__address__], regex: 'drop.*', action: drop}\n      - {source_labels: [__meta_x], target_label: __address__}\n",
        );
        assert!(populate(addr("drop-me:1"), &cfg).unwrap().is_none());
        let mut l = addr("a:1");
        l.set("__meta_x".into(), "b:2".into());
        let t = populate(l, &cfg).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "http://b:2/metrics");
        assert!(!t.labels.iter().any(|l| l.name.starts_with("__")));
        assert_eq!(t.discovered_labels().get("__meta_x"), "b:2");

        let cfg = job("    relabel_configs:\n      - {action: labeldrop, regex: __address__}\n");
        assert_eq!(populate(addr("a:1"), &cfg).unwrap_err(), TargetError::NoAddress);
    }

    #[test]
    fn hostile_addresses_and_durations_are_errors() {
        let cfg = job("");
        assert!(matches!(
            populate(addr("a/b:1"), &cfg).unwrap_err(),
            TargetError::InvalidAddress(_)
        ));
        let mut l = addr("a:1");
        l.set("__scheme__".into(), "ftp".into());
        assert_eq!(populate(l, &cfg).unwrap_err(), TargetError::InvalidScheme("ftp".into()));
        for (label, value) in [
            ("__scrape_interval__", "0s"),
            ("__scrape_interval__", "soon"),
            ("__scrape_timeout__", "1h"),
        ] {
            let mut l = addr("a:1");
            l.set(label.into(), value.into());
            assert!(
                matches!(populate(l, &cfg).unwrap_err(), TargetError::InvalidDuration { .. }),
                "{label}={value}"
            );
        }
    }

    #[test]
    fn hash_depends_on_labels_and_url_only() {
        let cfg = job("");
        let a = populate(addr("a:1"), &cfg).unwrap().unwrap();
        let b = populate(addr("a:1"), &cfg).unwrap().unwrap();
        let c = populate(addr("a:2"), &cfg).unwrap().unwrap();
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        a.report(SystemTime::now(), Duration::from_millis(5), Some("boom".into()));
        assert_eq!(a.status().health, Health::Down);
        assert_eq!(a.status().last_error, "boom");
    }
}
