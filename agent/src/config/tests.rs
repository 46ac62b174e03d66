use std::path::{Path, PathBuf};
use std::time::Duration;

use trawl_model::labels::Labels;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, "agent.yml")
}

/// Parses, expecting an error; returns its Display.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error for:\n{text}\ngot {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(text: &str, want_prefix: &str, want_part: &str) {
    let e = error(text);
    assert!(
        e.starts_with(want_prefix),
        "error {e:?} should start with {want_prefix:?}"
    );
    assert!(e.contains(want_part), "error {e:?} should contain {want_part:?}");
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn empty_file_gives_prometheus_defaults() {
    for text in [
        "",
        "\n",
        "# only a comment\n",
        "global:\n",
        "global: {}\nscrape_configs: []\n",
    ] {
        let c = parse(text).unwrap();
        assert_eq!(c.global.scrape_interval, secs(60));
        assert_eq!(c.global.scrape_timeout, secs(10));
        assert!(c.global.external_labels.is_empty());
        assert!(c.scrape_configs.is_empty() && c.remote_write.is_empty());
    }
}

#[test]
fn the_benchmark_config_parses() {
    let text = "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  external_labels: {agent: bench}
scrape_configs:
  - job_name: bench
    static_configs: [{targets: ['127.0.0.1:20000','127.0.0.1:20001','127.0.0.1:20002']}]
remote_write:
  - url: http://127.0.0.1:18428/api/v1/write
";
    let c = parse(text).unwrap();
    assert_eq!(c.global.scrape_interval, secs(1));
    assert_eq!(c.global.external_labels, Labels::from_pairs([("agent", "bench")]));
    let job = &c.scrape_configs[0];
    assert_eq!(job.job_name, "bench");
    assert_eq!((job.scrape_interval, job.scrape_timeout), (secs(1), secs(1)));
    assert_eq!(job.static_configs[0].targets.len(), 3);
    let rw = &c.remote_write[0];
    assert_eq!(rw.urls[0].as_str(), "http://127.0.0.1:18428/api/v1/write");
    assert_eq!(rw.name.len(), 6);
    assert_eq!(rw.queue_config, QueueConfig::default());
}

#[test]
fn scrape_config_defaults_match_prometheus() {
    let c = parse("scrape_configs:\n  - job_name: a\n").unwrap();
    let job = &c.scrape_configs[0];
    assert_eq!(job.scrape_interval, secs(60));
    assert_eq!(job.scrape_timeout, secs(10));
    assert_eq!(job.metrics_path, "/metrics");
    assert_eq!(job.scheme, Scheme::Http);
    assert_eq!(job.scheme.to_string(), "http");
    assert!(!job.honor_labels);
    assert!(job.honor_timestamps);
    assert!(job.enable_compression);
    assert_eq!(
        (job.sample_limit, job.label_limit, job.target_limit, job.body_size_limit),
        (0, 0, 0, 0)
    );
    assert_eq!(job.http, HttpClientConfig::default());
    assert!(job.http.follow_redirects);
}

#[test]
fn queue_defaults_are_current_prometheus() {
    // Prometheus `config.DefaultQueueConfig` since v2.43 (2.42 had 2500, 200, 1, 500).
    let q = QueueConfig::default();
    assert_eq!(
        (q.capacity, q.max_shards, q.min_shards, q.max_samples_per_send),
        (10_000, 50, 1, 2000)
    );
    assert_eq!(q.batch_send_deadline, secs(5));
    assert_eq!(q.min_backoff, Duration::from_millis(30));
    assert_eq!(q.max_backoff, secs(5));
    assert!(!q.retry_on_http_429);
    let c = parse("remote_write:\n  - url: http://x/\n    queue_config: {max_shards: 10}\n").unwrap();
    let rw = &c.remote_write[0];
    assert_eq!(rw.remote_timeout, secs(30));
    assert_eq!(rw.queue_config.max_shards, 10);
    assert_eq!(rw.queue_config.capacity, 10_000);
}

#[test]
fn scrape_timeout_resolution() {
    // The job's timeout defaults to min(global timeout, job interval).
    let c =
        parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n  - job_name: b\n    scrape_interval: 30s\n")
            .unwrap();
    assert_eq!(c.scrape_configs[0].scrape_timeout, secs(5));
    assert_eq!(c.scrape_configs[1].scrape_timeout, secs(10));
    // A global interval below the default timeout lowers the global timeout.
    let c = parse("global: {scrape_interval: 2s}\nscrape_configs: [{job_name: a}]\n").unwrap();
    assert_eq!(c.global.scrape_timeout, secs(2));
    assert_eq!(c.scrape_configs[0].scrape_timeout, secs(2));
    // Explicit 0 means "default", as in Prometheus.
    let c = parse("global: {scrape_interval: 0, scrape_timeout: 0s}\n").unwrap();
    assert_eq!(
        (c.global.scrape_interval, c.global.scrape_timeout),
        (secs(60), secs(10))
    );
}

#[test]
fn timeout_above_interval_names_file_line_and_key() {
    let text = "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 1m\n    scrape_timeout: 2m\n";
    assert_error(
        text,
        "agent.yml:6: scrape_configs[0].scrape_timeout: ",
        "scrape timeout 2m greater than scrape interval 1m",
    );
    assert_error(
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 6s\n",
        "agent.yml:3: global.scrape_timeout: ",
        "global scrape timeout 6s greater than scrape interval 5s",
    );
}

#[test]
fn unknown_keys_are_rejected_with_line_and_path() {
    assert_error(
        "global:\n  scrape_intervall: 1m\n",
        "agent.yml:2: global.scrape_intervall: ",
        "unknown field",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n    tls_config:\n      ca_fille: x\n",
        "agent.yml:4: scrape_configs[0].tls_config.ca_fille: ",
        "unknown field `ca_fille`",
    );
    assert_error("rule_files: [a.yml]\n", "agent.yml:1: rule_files: ", "unknown field");
    assert_error(
        "remote_write:\n  - url: http://x/\n    queue_config:\n      max_shard: 3\n",
        "agent.yml:4: remote_write[0].queue_config.max_shard",
        "unknown field",
    );
}

#[test]
fn compat_keys_prometheus_prints_are_accepted() {
    let c = parse(
        "global:\n  evaluation_interval: 1m\nscrape_configs:\n  - job_name: a\n    enable_http2: true\nremote_write:\n  - url: http://x/\n    enable_http2: false\n",
    )
    .unwrap();
    assert_eq!(c.scrape_configs.len(), 1);
}

#[test]
fn duplicate_keys_are_errors() {
    let cases = [
        (
            "global:\n  scrape_interval: 1m\n  scrape_interval: 2m\n",
            "agent.yml:3: global.scrape_interval: duplicate key",
        ),
        (
            "scrape_configs: []\nscrape_configs: []\n",
            "agent.yml:2: scrape_configs: duplicate key",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [x]\n        labels: {a: 1, a: 2}\n",
            "agent.yml:5: scrape_configs[0].static_configs[0].labels.a: duplicate key",
        ),
        (
            "remote_write:\n  - url: http://a/\n    queue_config:\n      capacity: 1\n      capacity: 2\n",
            "agent.yml:5: remote_write[0].queue_config.capacity: duplicate key",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(error(text), want, "{text}");
    }
}

/// A non-scalar key cannot be named; the path stops at its mapping.
#[test]
fn duplicate_key_paths() {
    assert_eq!(raw::duplicate_key_path(".?", Some("a")), "a");
    assert_eq!(raw::duplicate_key_path(".?", None), ".");
    assert_eq!(raw::duplicate_key_path("global.?", Some("a")), "global.a");
    assert_eq!(raw::duplicate_key_path("global.?", None), "global");
    assert_eq!(raw::duplicate_key_path("x[0].?", Some("a b")), "x[0].a b");
}

#[test]
fn bad_values_say_what_and_where() {
    assert_error(
        "scrape_configs:\n  - job_name: a\n    scrape_interval: 15 s\n",
        "agent.yml:3: scrape_configs[0].scrape_interval: ",
        "not a valid duration",
    );
    assert_error(
        "global:\n  scrape_interval: -1s\n",
        "agent.yml:2: global.scrape_interval: ",
        "not a valid duration",
    );
    assert_error(
        "global:\n  scrape_interval: 1.5s\n",
        "agent.yml:2: ",
        "not a valid duration",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
        "agent.yml:3: scrape_configs[0].scheme: ",
        "ftp",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n    honor_labels: maybe\n",
        "agent.yml:3: ",
        "boolean",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n    sample_limit: -1\n",
        "agent.yml:3: scrape_configs[0].sample_limit",
        "",
    );
    assert_error(
        "scrape_configs:\n  - job_name: [a]\n",
        "agent.yml:2: scrape_configs[0].job_name: ",
        "",
    );
    assert_error("scrape_configs: 3\n", "agent.yml:1: scrape_configs: ", "");
    assert_error(
        "scrape_configs:\n  - honor_labels: true\n",
        "agent.yml:2: ",
        "missing field `job_name`",
    );
    assert_error("scrape_configs:\n  -\n", "agent.yml:", "scrape_configs[0]");
}

#[test]
fn job_names_must_be_present_and_unique() {
    assert_error(
        "scrape_configs:\n  - job_name: ''\n",
        "agent.yml:2: scrape_configs[0].job_name: ",
        "job_name is empty",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n  - job_name: b\n  - job_name: a\n",
        "agent.yml:4: scrape_configs[2].job_name: ",
        "found multiple scrape configs with job name \"a\"",
    );
}

#[test]
fn scheme_accepts_only_http_and_https() {
    let c = parse("scrape_configs:\n  - job_name: a\n    scheme: https\n").unwrap();
    assert_eq!(c.scrape_configs[0].scheme, Scheme::Https);
    assert_eq!(Scheme::Https.to_string(), "https");
    assert_error(
        "scrape_configs:\n  - job_name: a\n    scheme: HTTP\n",
        "agent.yml:3: ",
        "unknown variant",
    );
}

#[test]
fn labels_are_validated() {
    assert_error(
        "global:\n  external_labels:\n    bad-name: x\n",
        "agent.yml:",
        "\"bad-name\" is not a valid label name",
    );
    assert_error(
        "global:\n  external_labels: {1a: x}\n",
        "agent.yml:",
        "is not a valid label name",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [x]\n        labels: {'a.b': c}\n",
        "agent.yml:",
        "\"a.b\" is not a valid label name",
    );
    let c = parse("global:\n  external_labels: {a: '1', b: '', c: 3}\n").unwrap();
    assert_eq!(c.global.external_labels, Labels::from_pairs([("a", "1"), ("c", "3")]));
}

#[test]
fn static_targets_must_be_addresses_unless_relabeled() {
    assert_error(
        "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['http://x:1/metrics']}]\n",
        "agent.yml:2: scrape_configs[0].static_configs[0].targets: ",
        "is not a valid hostname",
    );
    assert_error(
        "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['']}]\n",
        "agent.yml:2: ",
        "empty target",
    );
}

#[test]
fn http_client_keys_and_conflicts() {
    let c = parse(
        "scrape_configs:\n  - job_name: a\n    bearer_token_file: token\n    tls_config:\n      ca_file: ca.pem\n      server_name: example\n      insecure_skip_verify: true\n    follow_redirects: false\n",
    )
    .unwrap();
    let http = &c.scrape_configs[0].http;
    assert_eq!(
        http.authorization,
        Some(Authorization {
            r#type: "Bearer".into(),
            credentials: None,
            credentials_file: Some("token".into())
        })
    );
    assert_eq!(http.tls_config.ca_file.as_deref(), Some(Path::new("ca.pem")));
    assert_eq!(http.tls_config.server_name.as_deref(), Some("example"));
    assert!(http.tls_config.insecure_skip_verify);
    assert!(!http.follow_redirects);

    let c = parse("remote_write:\n  - url: http://x/\n    bearer_token: s3cret\n").unwrap();
    assert_eq!(
        c.remote_write[0]
            .http
            .authorization
            .as_ref()
            .unwrap()
            .credentials
            .as_deref(),
        Some("s3cret")
    );

    let c = parse("scrape_configs:\n  - job_name: a\n    authorization: {type: Token, credentials: x}\n").unwrap();
    assert_eq!(c.scrape_configs[0].http.authorization.as_ref().unwrap().r#type, "Token");

    let c = parse("scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n").unwrap();
    assert_eq!(
        c.scrape_configs[0].http.basic_auth,
        Some(BasicAuth {
            username: "u".into(),
            password: Some("p".into()),
            password_file: None
        })
    );

    let job = "scrape_configs:\n  - job_name: a\n";
    for (keys, want) in [
        (
            "    bearer_token: a\n    bearer_token_file: b\n",
            "at most one of bearer_token & bearer_token_file",
        ),
        (
            "    basic_auth: {username: u}\n    bearer_token: a\n",
            "at most one of basic_auth, bearer_token",
        ),
        (
            "    basic_auth: {username: u}\n    authorization: {credentials: a}\n",
            "at most one of basic_auth & authorization",
        ),
        (
            "    authorization: {credentials: a}\n    bearer_token: b\n",
            "authorization is not compatible with bearer_token",
        ),
        (
            "    authorization: {credentials: a, credentials_file: b}\n",
            "at most one of authorization credentials & credentials_file",
        ),
        (
            "    authorization: {type: basic, credentials: a}\n",
            "use \"basic_auth\" instead",
        ),
        (
            "    basic_auth: {username: u, password: p, password_file: f}\n",
            "at most one of basic_auth password & password_file",
        ),
        (
            "    tls_config: {cert_file: c.pem}\n",
            "specified without client key file",
        ),
        (
            "    tls_config: {key_file: k.pem}\n",
            "specified without client cert file",
        ),
    ] {
        assert_error(&format!("{job}{keys}"), "agent.yml:2: scrape_configs[0]", want);
    }
}

#[test]
fn remote_write_collector_lists_and_disk_budget() {
    let c = parse(
        "remote_write:\n  - url: [http://c0:19291/api/v1/receive, http://c1:19291/api/v1/receive]\n    queue_config: {max_disk_usage: 512MiB}\n  - urls: [http://d/]\n  - url: http://e/\n",
    )
    .unwrap();
    let hosts = |i: usize| -> Vec<String> {
        c.remote_write[i]
            .urls
            .iter()
            .map(|u| u.host_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(hosts(0), ["c0", "c1"]);
    assert_eq!(hosts(1), ["d"]);
    assert_eq!(hosts(2), ["e"]);
    assert_eq!(c.remote_write[0].queue_config.max_disk_usage, 512 << 20);
    assert_eq!(c.remote_write[1].queue_config.max_disk_usage, 1 << 30);
}

#[test]
fn remote_write_validation() {
    assert_error("remote_write:\n  - name: a\n", "agent.yml:2: ", "missing field `url`");
    assert_error(
        "remote_write:\n  - url: not a url\n",
        "agent.yml:2: remote_write[0].url: ",
        "invalid URL",
    );
    assert_error(
        "remote_write:\n  - url: ftp://x/\n",
        "agent.yml:2: remote_write[0].url: ",
        "must be 'http' or 'https'",
    );
    assert_error(
        "remote_write:\n  - url: http://a/\n    name: x\n  - url: http://b/\n    name: x\n",
        "agent.yml:4: remote_write[1].name: ",
        "found multiple remote write configs with name \"x\"",
    );
    assert_error(
        "remote_write:\n  - url: http://a/\n  - url: http://a/\n",
        "agent.yml:3: remote_write[1].name: ",
        "found duplicate for URL http://a/",
    );
    assert_error(
        "remote_write:\n  - url: []\n",
        "agent.yml:2: remote_write[0].url: ",
        "at least one URL is required",
    );
    assert_error(
        "remote_write:\n  - urls: [http://a/, 'http://a/']\n",
        "agent.yml:2: remote_write[0].urls: ",
        "URL http://a/ is listed twice",
    );
    assert_error(
        "remote_write:\n  - url: http://a/\n    urls: [http://b/]\n",
        "agent.yml:3: remote_write[0].urls: ",
        "use either `url` or `urls`, not both",
    );
    assert_error(
        "remote_write:\n  - url: [http://a/, gopher://b/]\n",
        "agent.yml:2: remote_write[0].url: ",
        "must be 'http' or 'https'",
    );
    assert_error(
        "remote_write:\n  - url: {host: a}\n",
        "agent.yml:2: remote_write[0].url",
        "a URL or a list of URLs",
    );
    assert_error(
        "remote_write:\n  - url: http://a/\n    queue_config: {max_disk_usage: 1KiB}\n",
        "agent.yml:2: remote_write[0].queue_config.max_disk_usage: ",
        "less than 1MiB",
    );
    assert_error(
        "remote_write:\n  - url: http://a/\n    queue_config: {max_disk_usage: lots}\n",
        "agent.yml:3: remote_write[0].queue_config.max_disk_usage",
        "",
    );
    let c = parse("remote_write:\n  - url: http://a/\n  - url: http://a/\n    name: second\n").unwrap();
    assert_eq!(c.remote_write[1].name, "second");
    assert_ne!(c.remote_write[0].name, "second");

    let base = "remote_write:\n  - url: http://a/\n";
    for (keys, want) in [
        ("    headers: {Content-Type: x}\n", "Content-Type is a reserved header"),
        (
            "    headers: {authorization: x}\n",
            "authorization header must be changed via",
        ),
        ("    headers: {'bad header': x}\n", "not a valid HTTP header name"),
        ("    headers: {X-Ok: \"a\\nb\"}\n", "not a valid HTTP header value"),
        ("    remote_timeout: 0s\n", "remote_timeout must be greater than 0"),
        ("    queue_config: {min_shards: 0}\n", "min_shards must be at least 1"),
        (
            "    queue_config: {min_shards: 5, max_shards: 2}\n",
            "max_shards 2 is less than min_shards 5",
        ),
        (
            "    queue_config: {min_backoff: 10s}\n",
            "max_backoff 5s is less than min_backoff 10s",
        ),
        ("    queue_config: {capacity: 0}\n", "capacity must be at least 1"),
        (
            "    queue_config: {max_samples_per_send: 0}\n",
            "max_samples_per_send must be at least 1",
        ),
        (
            "    queue_config: {batch_send_deadline: 0s}\n",
            "batch_send_deadline must be greater than 0",
        ),
    ] {
        assert_error(&format!("{base}{keys}"), "agent.yml:2: remote_write[0]", want);
    }
    let c = parse(&format!(
        "{base}    headers: {{X-Scope-OrgID: tenant}}\n    queue_config: {{retry_on_http_429: true}}\n"
    ))
    .unwrap();
    assert_eq!(
        c.remote_write[0].headers.get("X-Scope-OrgID").map(String::as_str),
        Some("tenant")
    );
    assert!(c.remote_write[0].queue_config.retry_on_http_429);
}

#[test]
fn body_size_limit_uses_base2_units() {
    let limit = |v: &str| {
        parse(&format!("scrape_configs:\n  - job_name: a\n    body_size_limit: {v}\n"))
            .map(|c| c.scrape_configs[0].body_size_limit)
    };
    assert_eq!(limit("10MB").unwrap(), 10 << 20);
    assert_eq!(limit("1KiB").unwrap(), 1024);
    assert_eq!(limit("512B").unwrap(), 512);
    assert_eq!(limit("0").unwrap(), 0);
    let e = limit("10").unwrap_err().to_string();
    assert!(e.starts_with("agent.yml:3: scrape_configs[0].body_size_limit: "), "{e}");
    assert!(limit("10kb").is_err());
    assert!(limit("-1MB").is_err());
}

#[test]
fn file_sd_configs_are_checked() {
    let c =
        parse("scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['sd/*.json', '/abs/t.yml']\n")
            .unwrap();
    let sd = &c.scrape_configs[0].file_sd_configs[0];
    assert_eq!(sd.files, vec![PathBuf::from("sd/*.json"), PathBuf::from("/abs/t.yml")]);
    assert_eq!(sd.refresh_interval, secs(300));
    let job = "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n";
    assert_error(
        &format!("{job}      - files: []\n"),
        "agent.yml:2: ",
        "must contain at least one path name",
    );
    assert_error(
        &format!("{job}      - files: [a.txt]\n"),
        "agent.yml:2: ",
        "is not valid for file discovery",
    );
    assert_error(
        &format!("{job}      - files: ['*/a.json']\n"),
        "agent.yml:2: ",
        "is not valid for file discovery",
    );
    assert_error(
        &format!("{job}      - files: ['[a.json']\n"),
        "agent.yml:2: ",
        "syntax error in pattern",
    );
    assert_error(
        &format!("{job}      - files: [a.json]\n        refresh_interval: 0s\n"),
        "agent.yml:2: ",
        "refresh_interval must be greater than 0",
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password_file: pw}\n    tls_config: {ca_file: certs/ca.pem, cert_file: /abs/c.pem, key_file: k.pem}\n    file_sd_configs: [{files: ['sd/*.yml']}]\nremote_write:\n  - url: http://x/\n    authorization: {credentials_file: ../token}\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    let job = &c.scrape_configs[0];
    let d = dir.path();
    assert_eq!(
        job.http.basic_auth.as_ref().unwrap().password_file.as_deref(),
        Some(&*d.join("pw"))
    );
    assert_eq!(job.http.tls_config.ca_file.as_deref(), Some(&*d.join("certs/ca.pem")));
    assert_eq!(job.http.tls_config.cert_file.as_deref(), Some(Path::new("/abs/c.pem")));
    assert_eq!(job.http.tls_config.key_file.as_deref(), Some(&*d.join("k.pem")));
    assert_eq!(job.file_sd_configs[0].files, vec![d.join("sd/*.yml")]);
    assert_eq!(
        c.remote_write[0]
            .http
            .authorization
            .as_ref()
            .unwrap()
            .credentials_file
            .as_deref(),
        Some(&*d.join("../token"))
    );
}

#[test]
fn load_reports_the_path_and_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.yml"), "{e}");
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "global:\n  bogus: 1\n").unwrap();
    let e = Config::load(&bad).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: global.bogus: ", bad.display())), "{e}");
    let binary = dir.path().join("bin.yml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert!(
        Config::load(&binary)
            .unwrap_err()
            .to_string()
            .contains("not valid UTF-8")
    );
}

#[test]
fn env_vars_are_expanded_and_unset_ones_fail() {
    // A variable name nothing sets.
    let name = "TRAWL_CONFIG_TEST_NODE";
    let text = format!("global:\n  external_labels:\n    node: ${{{name}}}\n");
    let e = error(&text);
    assert!(e.starts_with("agent.yml:3: "), "{e}");
    assert!(e.contains(&format!("{name} is not set")), "{e}");
    let expanded = env::expand(&text, |n| (n == name).then(|| "node-7".to_owned())).unwrap();
    let c = parse(&expanded).unwrap();
    assert_eq!(c.global.external_labels.get("node"), "node-7");
}

#[test]
fn relabel_replacement_references_survive_expansion() {
    let text = "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: '(.*):.*'\n        target_label: host\n        replacement: '${1}-$1'\n";
    let c = parse(text).unwrap();
    assert_eq!(c.scrape_configs[0].relabel_configs.len(), 1);
}

#[test]
fn bad_relabel_regex_is_an_error_with_line() {
    let text = "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [a]\n        regex: '(unclosed'\n        target_label: b\n";
    assert_error(
        text,
        "agent.yml:5: scrape_configs[0].relabel_configs[0].regex: ",
        "invalid regex \"(unclosed\"",
    );
}

#[test]
fn tabs_and_malformed_yaml_are_errors() {
    assert_error(
        "scrape_configs:\n  - job_name: a\n\thonor_labels: true\n",
        "agent.yml:2: ",
        "tab",
    );
    assert_error("global: [unclosed\n", "agent.yml:", "");
    assert_error("global:\n  scrape_interval: 1m\n ext: 1\n", "agent.yml:", "");
    assert_error("--- \nglobal: {}\n---\nglobal: {}\n", "agent.yml:", "");
    assert_error("global: !!binary aGVsbG8=\n", "agent.yml:1: global: ", "");
}

#[test]
fn alias_bombs_are_refused_quickly() {
    let mut text =
        String::from("scrape_configs:\n  - job_name: a\n    params:\n      a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = i - 1;
        text.push_str(&format!("      a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let start = std::time::Instant::now();
    let e = error(&text);
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(e.starts_with("agent.yml:"), "{e}");
}

#[test]
fn small_anchors_and_merge_keys_work() {
    let text = "x_common: &tls\n  insecure_skip_verify: true\n";
    // Unknown top-level keys stay errors even when they only hold anchors.
    assert_error(text, "agent.yml:1: x_common: ", "unknown field");
    let text = "scrape_configs:\n  - job_name: a\n    tls_config: &tls\n      insecure_skip_verify: true\n  - job_name: b\n    tls_config: *tls\n  - job_name: c\n    tls_config:\n      <<: *tls\n      server_name: s\n";
    let c = parse(text).unwrap();
    assert!(c.scrape_configs.iter().all(|j| j.http.tls_config.insecure_skip_verify));
    assert_eq!(c.scrape_configs[2].http.tls_config.server_name.as_deref(), Some("s"));
}

#[test]
fn huge_inputs_are_rejected_or_bounded() {
    let huge = "#".repeat(MAX_CONFIG_BYTES as usize + 1);
    assert!(matches!(parse(&huge), Err(ConfigError::TooLarge { .. })));
    // Deep nesting hits the parser's depth budget instead of the stack.
    let deep = format!("global: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse(&deep).is_err());
    // Many targets are fine.
    let targets: Vec<String> = (0..20_000).map(|i| format!("'h{i}:1'")).collect();
    let text = format!(
        "scrape_configs:\n  - job_name: a\n    static_configs: [{{targets: [{}]}}]\n",
        targets.join(",")
    );
    assert_eq!(
        parse(&text).unwrap().scrape_configs[0].static_configs[0].targets.len(),
        20_000
    );
}

#[test]
fn reload_comparison_sees_per_job_changes() {
    let a = parse("scrape_configs:\n  - job_name: a\n  - job_name: b\n").unwrap();
    let b = parse("scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 5s\n").unwrap();
    assert_eq!(a.scrape_configs[0], b.scrape_configs[0]);
    assert_ne!(a.scrape_configs[1], b.scrape_configs[1]);
}

#[test]
fn check_config_summarises_and_checks_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    std::fs::create_dir(dir.path().join("sd")).unwrap();
    std::fs::write(dir.path().join("sd/a.json"), r#"[{"targets": ["h:1"]}]"#).unwrap();
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: ['sd/*.json']}]\n  - job_name: b\nremote_write:\n  - url: http://x/\n",
    )
    .unwrap();
    let summary = check_config(&path).unwrap();
    assert_eq!(
        summary,
        Summary {
            scrape_configs: 2,
            remote_write: 1,
            file_sd_files: 1,
            kubernetes_sd_configs: 0,
        }
    );
    assert_eq!(summary.to_string(), "2 scrape configs, 1 remote_write, 1 file_sd files");

    std::fs::write(
        dir.path().join("sd/b.json"),
        r#"[{"targets": ["h:1"], "labels": {"a-b": "c"}}]"#,
    )
    .unwrap();
    let e = check_config(&path).unwrap_err().to_string();
    assert!(
        e.contains("scrape_configs[0].file_sd_configs[0].files") && e.contains("not a valid label name"),
        "{e}"
    );
    std::fs::remove_file(dir.path().join("sd/b.json")).unwrap();

    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: a\n    tls_config: {ca_file: missing.pem}\n",
    )
    .unwrap();
    let e = check_config(&path).unwrap_err().to_string();
    assert!(
        e.contains("scrape_configs[0].tls_config.ca_file") && e.contains("missing.pem"),
        "{e}"
    );
}

// === plugins (Trawl's addition) ===

const PLUGINS: &str = "plugins:
  - name: redact
    path: plugins/redact.wasm
    sha256: 9F2C000000000000000000000000000000000000000000000000000000000000
    config: {labels: [email, user_id], salt: s, depth: 2}
    on_error: fail_closed
    timeout: 20ms
    memory_limit: 16MiB
  - name: keep
    path: /abs/keep.wasm
scrape_configs:
  - job_name: app
    static_configs: [{targets: ['a:1']}]
    plugins: [{name: keep, stage: relabel}, {name: redact, stage: filter}]
remote_write:
  - url: http://c:19291/api/v1/receive
    plugins: [redact]
";

#[test]
fn plugins_parse_with_defaults_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yml");
    std::fs::write(&path, PLUGINS).unwrap();
    let c = Config::load(&path).unwrap();
    let redact = &c.plugins[0];
    assert_eq!(redact.path, dir.path().join("plugins/redact.wasm"));
    assert_eq!(redact.sha256.as_deref(), Some(&*format!("9f2c{}", "0".repeat(60))));
    assert_eq!(
        redact.config,
        serde_json::json!({"labels": ["email", "user_id"], "salt": "s", "depth": 2})
    );
    assert_eq!(
        (redact.on_error, redact.timeout, redact.memory_limit),
        (OnError::FailClosed, Duration::from_millis(20), 16 << 20)
    );
    let keep = &c.plugins[1];
    assert_eq!(
        (
            &keep.config,
            keep.on_error,
            keep.timeout,
            keep.memory_limit,
            &keep.sha256
        ),
        (
            &serde_json::json!({}),
            OnError::FailOpen,
            Duration::from_millis(50),
            64 << 20,
            &None
        )
    );
    assert_eq!(
        c.scrape_configs[0].plugins,
        [
            ScrapePlugin {
                name: "keep".into(),
                stage: ScrapeStage::Relabel
            },
            ScrapePlugin {
                name: "redact".into(),
                stage: ScrapeStage::Filter
            }
        ]
    );
    assert_eq!(c.remote_write[0].plugins, ["redact"]);
}

#[test]
fn broken_plugin_entries_are_errors() {
    let entry = |extra: &str| format!("plugins:\n  - name: p\n    path: p.wasm\n{extra}");
    assert_error(
        &entry("    sha: x\n"),
        "agent.yml:4: plugins[0].sha: ",
        "unknown field `sha`",
    );
    assert_error(
        &entry("    sha256: abc\n"),
        "agent.yml:",
        "plugins[0].sha256: \"abc\" is not a SHA-256",
    );
    assert_error(
        &entry(&format!("    sha256: {}\n", "z".repeat(64))),
        "agent.yml:",
        "is not a SHA-256",
    );
    assert_error(
        &entry("    timeout: 0s\n"),
        "agent.yml:",
        "plugins[0].timeout: timeout 0s must be greater than 0",
    );
    assert_error(&entry("    timeout: 1m\n"), "agent.yml:", "at most 10s");
    assert_error(
        &entry("    memory_limit: 64KiB\n"),
        "agent.yml:",
        "plugins[0].memory_limit",
    );
    assert_error(
        &entry("    memory_limit: 8GiB\n"),
        "agent.yml:",
        "between 1MiB and 4GiB",
    );
    assert_error(
        &entry("    memory_limit: lots\n"),
        "agent.yml:",
        "plugins[0].memory_limit",
    );
    assert_error(&entry("    on_error: ignore\n"), "agent.yml:", "plugins[0].on_error");
    assert_error("plugins:\n  - path: p.wasm\n", "agent.yml:", "missing field `name`");
    assert_error("plugins:\n  - name: p\n", "agent.yml:", "missing field `path`");
    assert_error(
        "plugins:\n  - name: ''\n    path: p.wasm\n",
        "agent.yml:2: plugins[0].name",
        "empty",
    );
    assert_error(
        "plugins:\n  - {name: p, path: a.wasm}\n  - {name: p, path: b.wasm}\n",
        "agent.yml:3: plugins[1].name",
        "multiple plugins with name \"p\" (first at plugins[0])",
    );
}

#[test]
fn plugin_references_must_resolve_and_stages_fit() {
    let job = |plugins: &str| {
        format!("plugins: [{{name: p, path: p.wasm}}]\nscrape_configs:\n  - job_name: j\n    plugins: {plugins}\n")
    };
    assert!(parse(&job("[{name: p, stage: filter}]")).is_ok());
    assert_error(
        &job("[{name: q, stage: filter}]"),
        "agent.yml: scrape_configs[0].plugins[0].name",
        "no plugin named \"q\"",
    );
    assert_error(
        &job("[{name: p, stage: write}]"),
        "agent.yml:",
        "unknown variant `write`",
    );
    assert_error(&job("[{name: p}]"), "agent.yml:", "missing field `stage`");
    assert_error(&job("[p]"), "agent.yml:", "scrape_configs[0].plugins[0]");
    assert_error(
        "remote_write:\n  - url: http://c/w\n    plugins: [nope]\n",
        "agent.yml: remote_write[0].plugins[0]",
        "no plugin named \"nope\"",
    );
}
