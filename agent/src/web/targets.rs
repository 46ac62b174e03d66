//! `GET /api/v1/targets` in Prometheus's JSON shape (`web/api/v1/api.go`, `targets`), with the
//! `state` (`active`, `dropped`, `any`) and `scrapePool` query parameters.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use trawl_model::duration::format_duration;
use trawl_model::labels::Labels;

use crate::scrape::SharedTargets;
use crate::scrape::target::Target;

/// Query parameters of the targets API.
#[derive(Debug, Default, Deserialize)]
pub struct TargetsQuery {
    /// `active`, `dropped` or `any` (default, also when empty); any other value selects
    /// neither list.
    pub state: Option<String>,
    /// Only this job's targets.
    #[serde(rename = "scrapePool")]
    pub scrape_pool: Option<String>,
}

/// The API's envelope: `{"status": "success", "data": …}`.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    /// Always `success` here.
    pub status: &'static str,
    /// The payload.
    pub data: T,
}

/// `data` of the targets API.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsData {
    /// Targets with a scrape loop.
    pub active_targets: Vec<ActiveTarget>,
    /// Targets dropped by relabeling or invalid.
    pub dropped_targets: Vec<DroppedTarget>,
}

/// One active target, as Prometheus shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTarget {
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
    /// Labels of every series of the target.
    pub labels: BTreeMap<String, String>,
    /// The job.
    pub scrape_pool: String,
    /// What is scraped.
    pub scrape_url: String,
    /// The URL as seen from outside (here the same).
    pub global_url: String,
    /// Error of the last scrape, empty when it succeeded.
    pub last_error: String,
    /// Start of the last scrape, RFC 3339; `0001-01-01T00:00:00Z` before the first.
    pub last_scrape: String,
    /// Wall time of the last scrape, in seconds.
    pub last_scrape_duration: f64,
    /// `up`, `down` or `unknown`.
    pub health: &'static str,
    /// Scrape interval, Prometheus duration.
    pub scrape_interval: String,
    /// Scrape timeout, Prometheus duration.
    pub scrape_timeout: String,
}

/// One dropped target.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedTarget {
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
}

/// Builds the targets API answer from the pools' shared state.
pub fn targets(shared: &SharedTargets, query: &TargetsQuery) -> Envelope<TargetsData> {
    let state = query.state.as_deref().unwrap_or("").to_ascii_lowercase();
    // As Prometheus: an unknown state shows neither list (empty arrays), not both.
    let (want_active, want_dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        _ => (false, false),
    };
    let mut data = TargetsData {
        active_targets: Vec::new(),
        dropped_targets: Vec::new(),
    };
    let pools = shared.read().unwrap_or_else(|e| e.into_inner());
    for (job, pool) in pools.iter() {
        if query.scrape_pool.as_ref().is_some_and(|p| p != job) {
            continue;
        }
        let pool = pool.read().unwrap_or_else(|e| e.into_inner());
        if want_active {
            data.active_targets.extend(pool.active.iter().map(|t| active(job, t)));
        }
        if want_dropped {
            data.dropped_targets
                .extend(pool.dropped().iter().map(|l| DroppedTarget {
                    discovered_labels: label_map(l),
                }));
        }
    }
    Envelope {
        status: "success",
        data,
    }
}

fn active(job: &str, target: &Target) -> ActiveTarget {
    let status = target.status();
    let last_scrape = match status.last_scrape {
        Some(t) if t > UNIX_EPOCH => humantime::format_rfc3339_millis(t).to_string(),
        _ => "0001-01-01T00:00:00Z".to_owned(),
    };
    ActiveTarget {
        discovered_labels: label_map(&target.discovered_labels()),
        labels: label_map(&target.labels),
        scrape_pool: job.to_owned(),
        scrape_url: target.url.to_string(),
        global_url: target.url.to_string(),
        last_error: status.last_error,
        last_scrape,
        last_scrape_duration: status.last_duration_seconds,
        health: status.health.as_str(),
        scrape_interval: format_duration(target.interval),
        scrape_timeout: format_duration(target.timeout),
    }
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::pool::PoolTargets;
    use std::sync::{Arc, RwLock};

    fn shared() -> SharedTargets {
        let cfg = crate::config::Config::from_yaml(
            "scrape_configs:\n  - job_name: a\n    relabel_configs: [{action: drop, source_labels: [__address__], regex: 'h:1'}]\n",
            "t.yml",
        )
        .unwrap();
        let group = crate::discovery::TargetGroup {
            source: "0".into(),
            targets: vec![Labels::from_pairs([("__address__", "h:1")])],
            labels: Labels::new(),
        };
        let pool = PoolTargets::new(
            Vec::new(),
            Arc::new(cfg.scrape_configs[0].clone()),
            vec![Arc::new(group)],
        );
        let shared = SharedTargets::default();
        shared
            .write()
            .unwrap()
            .insert("a".to_owned(), Arc::new(RwLock::new(pool)));
        shared
    }

    fn dropped_count(state: Option<&str>, scrape_pool: Option<&str>) -> usize {
        let query = TargetsQuery {
            state: state.map(str::to_owned),
            scrape_pool: scrape_pool.map(str::to_owned),
        };
        targets(&shared(), &query).data.dropped_targets.len()
    }

    #[test]
    fn state_selects_the_lists_as_prometheus() {
        for state in [
            None,
            Some(""),
            Some("any"),
            Some("ANY"),
            Some("dropped"),
            Some("Dropped"),
        ] {
            assert_eq!(dropped_count(state, None), 1, "{state:?}");
        }
        for state in [Some("active"), Some("bogus"), Some(" dropped")] {
            assert_eq!(dropped_count(state, None), 0, "{state:?}");
        }
    }

    #[test]
    fn scrape_pool_filters_dropped_targets_too() {
        assert_eq!(dropped_count(None, Some("a")), 1);
        assert_eq!(dropped_count(None, Some("b")), 0);
        let json = serde_json::to_value(targets(&shared(), &TargetsQuery::default())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "success", "data": {
                "activeTargets": [],
                "droppedTargets": [{"discoveredLabels": {
                    "__address__": "h:1", "__metrics_path__": "/metrics", "__scheme__": "http",
                    "__scrape_interval__": "1m", "__scrape_timeout__": "10s", "job": "a",
                }}],
            }})
        );
    }
}
