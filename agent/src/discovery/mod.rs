//! Target discovery: turns `static_configs`, `file_sd_configs` and `kubernetes_sd_configs` into
//! target groups, as Prometheus `discovery/`. A provider sends whole groups under a stable
//! `source`; a group that disappears is sent again with the same source and no targets, so its
//! targets go stale.
//!
//! - [`static_groups`]: the fixed groups of a job, sources `"0"`, `"1"`, … as Prometheus's static
//!   provider.
//! - [`file`]: file_sd, JSON or YAML files watched with notify and re-read periodically.
//! - [`kubernetes`]: kubernetes_sd, list + watch of the API server, one discoverer per distinct
//!   config shared by every job that uses it.

pub mod file;
pub(crate) mod glob;
pub mod kubernetes;

pub use file::FileDiscovery;
pub use kubernetes::KubernetesRegistry;

use trawl_model::labels::{ADDRESS, Labels};

use crate::config::ScrapeConfig;

/// A set of targets sharing labels, as Prometheus `targetgroup.Group`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its provider; stable across updates (`"0"` for the first
    /// static config, `"/etc/sd/a.json:2"` for the third group of a file).
    pub source: String,
    /// One label set per target; each has `__address__` (`host:port`).
    pub targets: Vec<Labels>,
    /// Labels common to all targets of the group (target labels win on conflict).
    pub labels: Labels,
}

/// The label set of a target given only its address: `{__address__="<address>"}`.
pub fn address_labels(address: &str) -> Labels {
    Labels::from_pairs([(ADDRESS, address)])
}

/// The target groups of a job's `static_configs`, in order, sources `"{index}"`.
pub fn static_groups(job: &ScrapeConfig) -> Vec<TargetGroup> {
    job.static_configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            source: i.to_string(),
            targets: sc.targets.iter().map(|t| address_labels(t)).collect(),
            labels: sc.labels.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn static_groups_keep_order_sources_and_labels() {
        let config = Config::from_yaml(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['h1:9100', 'h2:9100']\n        labels: {env: prod}\n      - targets: ['h3:80']\n",
            "test.yml",
        )
        .unwrap();
        let groups = static_groups(&config.scrape_configs[0]);
        assert_eq!(
            groups,
            vec![
                TargetGroup {
                    source: "0".into(),
                    targets: vec![address_labels("h1:9100"), address_labels("h2:9100")],
                    labels: Labels::from_pairs([("env", "prod")]),
                },
                TargetGroup {
                    source: "1".into(),
                    targets: vec![address_labels("h3:80")],
                    labels: Labels::new(),
                },
            ]
        );
        assert_eq!(groups[0].targets[0].get(ADDRESS), "h1:9100");
    }
}
