//! Configuration files of a fault scenario: the collectors' hashrings.json (Thanos Receive's
//! shape), the shared filesystem bucket's objstore.yml (Thanos objstore's shape) and the agent's
//! YAML.

use std::path::Path;

use serde_json::json;

/// One hashring with every endpoint (`host:port`, the collectors' HTTP addresses) and no tenant
/// list (the default ring), as Thanos's `hashrings.json`: `[{"hashring": "default",
/// "endpoints": [..], "algorithm": ..}]`. `algorithm` is `hashmod` or `ketama`; `None` leaves
/// the field out (the collector's flag decides).
pub fn hashrings_json(endpoints: &[String], algorithm: Option<&str>) -> String {
    let mut ring = json!({"hashring": "default", "endpoints": endpoints});
    if let Some(algorithm) = algorithm {
        ring["algorithm"] = json!(algorithm);
    }
    json!([ring]).to_string()
}

/// A filesystem bucket in `directory`, as Thanos objstore's `type: FILESYSTEM`.
pub fn objstore_yml(directory: &Path) -> String {
    // JSON strings are valid YAML scalars: any path is quoted safely.
    format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        json!(directory.display().to_string())
    )
}

/// One scrape job of the agent.
#[derive(Debug, Clone)]
pub struct Job {
    /// `job_name`.
    pub name: String,
    /// `host:port` targets, scraped at `/metrics`.
    pub targets: Vec<String>,
    /// Scrape interval and timeout, in seconds.
    pub interval_s: u64,
}

/// The agent's config: `jobs` scraped, everything remote-written to `urls` (one endpoint whose
/// `url:` lists several collectors), a batch at least every second, and `max_disk_usage` bytes of
/// on-disk queue.
pub fn agent_yml(jobs: &[Job], urls: &[String], max_disk_usage: u64) -> String {
    let mut out = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n");
    // No jobs: an agent that only sends what its queue holds.
    out.push_str(if jobs.is_empty() {
        "scrape_configs: []\n"
    } else {
        "scrape_configs:\n"
    });
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| json!(t).to_string()).collect();
        out.push_str(&format!(
            "  - job_name: {}\n    scrape_interval: {i}s\n    scrape_timeout: {i}s\n    static_configs:\n      - targets: [{}]\n",
            json!(job.name),
            targets.join(", "),
            i = job.interval_s,
        ));
    }
    let urls: Vec<String> = urls.iter().map(|u| json!(u).to_string()).collect();
    out.push_str(&format!(
        "remote_write:\n  - name: collectors\n    url: [{}]\n    queue_config:\n      batch_send_deadline: 1s\n      max_disk_usage: {}\n",
        urls.join(", "),
        byte_size(max_disk_usage),
    ));
    out
}

/// `bytes` as the agent's byte sizes are written: `256MiB`, or `1000B` when not whole MiB.
fn byte_size(bytes: u64) -> String {
    if bytes > 0 && bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn hashrings_have_thanos_shape() {
        let eps = vec!["10.0.0.2:19291".to_owned(), "10.0.0.3:19291".to_owned()];
        let parsed: Value = serde_json::from_str(&hashrings_json(&eps, Some("ketama"))).expect("json");
        assert_eq!(
            parsed,
            json!([{"hashring": "default", "endpoints": ["10.0.0.2:19291", "10.0.0.3:19291"], "algorithm": "ketama"}])
        );
        let parsed: Value = serde_json::from_str(&hashrings_json(&eps, None)).expect("json");
        assert!(parsed[0].get("algorithm").is_none());
        assert!(parsed[0].get("tenants").is_none(), "the default ring has no tenants");
    }

    #[test]
    fn objstore_quotes_hostile_paths() {
        let yml = objstore_yml(Path::new("/tmp/a b: \"c\"\n#d"));
        assert!(yml.starts_with("type: FILESYSTEM\nconfig:\n  directory: \""), "{yml}");
        assert_eq!(yml.lines().count(), 3, "newline in the path escaped: {yml}");
        assert!(yml.contains(r#"/tmp/a b: \"c\"\n#d"#), "{yml}");
    }

    #[test]
    fn agent_config_lists_jobs_and_every_collector() {
        let jobs = [
            Job {
                name: "synthetic".into(),
                targets: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
                interval_s: 1,
            },
            Job {
                name: "node".into(),
                targets: vec!["127.0.0.1:3".into()],
                interval_s: 2,
            },
        ];
        let urls = [
            "http://10.0.0.2:19291/api/v1/receive".to_owned(),
            "http://10.0.0.3:19291/api/v1/receive".to_owned(),
        ];
        let yml = agent_yml(&jobs, &urls, 64 << 20);
        assert!(
            yml.contains("  - job_name: \"synthetic\"\n    scrape_interval: 1s\n"),
            "{yml}"
        );
        assert!(yml.contains("targets: [\"127.0.0.1:1\", \"127.0.0.1:2\"]"), "{yml}");
        assert!(
            yml.contains("  - job_name: \"node\"\n    scrape_interval: 2s\n    scrape_timeout: 2s\n"),
            "{yml}"
        );
        assert!(
            yml.contains("url: [\"http://10.0.0.2:19291/api/v1/receive\", \"http://10.0.0.3:19291/api/v1/receive\"]"),
            "{yml}"
        );
        assert!(yml.contains("max_disk_usage: 64MiB\n"), "{yml}");
        assert!(agent_yml(&jobs, &urls, 1000).contains("max_disk_usage: 1000B\n"));
        assert!(agent_yml(&jobs, &urls, 0).contains("max_disk_usage: 0B\n"));
        let idle = agent_yml(&[], &urls, 1 << 20);
        assert!(idle.contains("scrape_configs: []\nremote_write:\n"), "{idle}");
    }
}
