//! The `trawl-agent` command line: `check-config FILE` on valid, broken and hostile files,
//! `--help`, and what an invalid `--config.file` does at startup.
//!
//! ```text
//! test ──spawn──► trawl-agent check-config FILE ──► exit code, stdout, stderr
//! test ──spawn──► trawl-agent --config.file=BAD ──► exits non-zero with the error on stderr
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::BIN;

/// What a finished run of the binary left.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args` and `env`, output to files so nothing can block on a full pipe;
/// kills it and fails the test when it runs longer than 10 s.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        // NO_COLOR would hide colour codes and make the no-ANSI check below pass regardless.
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start trawl-agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "trawl-agent {args:?} still running after 10 s; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: std::fs::read_to_string(&out).expect("read stdout"),
        stderr: std::fs::read_to_string(&err).expect("read stderr"),
    }
}

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent.yml")
}

const EXAMPLE_ENV: [(&str, &str); 4] = [
    ("TRAWL_AGENT_NAME", "agent-1"),
    ("NODE_EXPORTER_PORT", "9100"),
    ("TRAWL_AGENT_PORT", "9480"),
    ("TRAWL_COLLECTOR_PORT", "19291"),
];

#[test]
fn check_config_accepts_the_example() {
    let path = example_config();
    let r = run(&["check-config", path.to_str().expect("UTF-8 path")], &EXAMPLE_ENV);
    assert_eq!(r.code, Some(0), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("SUCCESS: 2 scrape configs, 1 remote_write"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("agent.yml"), "names the file: {}", r.stdout);
    assert_eq!(r.stderr, "");
}

#[test]
fn check_config_names_an_unset_variable_of_the_example() {
    let path = example_config();
    let env: Vec<_> = EXAMPLE_ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "TRAWL_AGENT_NAME")
        .collect();
    let r = run(&["check-config", path.to_str().expect("UTF-8 path")], &env);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(!r.stdout.contains("SUCCESS"), "{}", r.stdout);
    assert!(r.stderr.contains("FAILED"), "{}", r.stderr);
    // `agent: ${TRAWL_AGENT_NAME}` is on line 7 of the example.
    assert!(r.stderr.contains("agent.yml:7:"), "{}", r.stderr);
    assert!(r.stderr.contains("TRAWL_AGENT_NAME is not set"), "{}", r.stderr);
}

/// One broken config: its text and what the error must say.
struct Broken {
    name: &'static str,
    yaml: &'static [u8],
    /// `FILE:LINE: KEY` prefix after the file name, e.g. `:5: scrape_configs[0].x`.
    at: &'static str,
    /// A fragment of the message.
    says: &'static str,
}

const BROKEN: &[Broken] = &[
    Broken {
        name: "unknown-key",
        yaml: b"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n",
        at: ":5: scrape_configs[0].scrape_intervall:",
        says: "unknown field `scrape_intervall`",
    },
    Broken {
        name: "duplicate-key",
        yaml: b"global:\n  scrape_interval: 1s\n  scrape_interval: 2s\n",
        at: ":3: global.scrape_interval: duplicate key\n",
        says: "global.scrape_interval: duplicate key",
    },
    Broken {
        name: "bad-duration",
        yaml: b"scrape_configs:\n  - job_name: a\n    scrape_interval: 5 seconds\n",
        at: ":3: scrape_configs[0].scrape_interval:",
        says: "not a valid duration string: \"5 seconds\"",
    },
    Broken {
        name: "bad-relabel-regex",
        yaml: b"scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n        regex: 'a(b'\n",
        at: ":5: scrape_configs[0].relabel_configs[0].regex:",
        says: "invalid regex \"a(b\"",
    },
    Broken {
        name: "unset-env-var",
        yaml: b"global:\n  external_labels:\n    node: ${TRAWL_CLI_TEST_SURELY_UNSET}\n",
        at: ":3:",
        says: "environment variable TRAWL_CLI_TEST_SURELY_UNSET is not set",
    },
    Broken {
        name: "not-utf8",
        yaml: b"global:\n  scrape_interval: \xff\xfe\n",
        at: ": .:",
        says: "not valid UTF-8",
    },
    Broken {
        name: "not-yaml-mapping",
        yaml: b"- just\n- a list\n",
        at: ":1: .:",
        says: "expected mapping",
    },
];

#[test]
fn check_config_rejects_broken_files_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for case in BROKEN {
        let path = dir.path().join(format!("{}.yml", case.name));
        std::fs::write(&path, case.yaml).expect("write config");
        let path = path.to_str().expect("UTF-8 path");
        let r = run(&["check-config", path], &[]);
        assert_eq!(
            r.code,
            Some(1),
            "{}: stdout {} stderr {}",
            case.name,
            r.stdout,
            r.stderr
        );
        assert!(!r.stdout.contains("SUCCESS"), "{}: {}", case.name, r.stdout);
        assert!(r.stderr.contains("FAILED"), "{}: {}", case.name, r.stderr);
        let at = format!("{path}{}", case.at);
        assert!(
            r.stderr.contains(&at),
            "{}: expected {at:?} in\n{}",
            case.name,
            r.stderr
        );
        assert!(
            r.stderr.contains(case.says),
            "{}: expected {:?} in\n{}",
            case.name,
            case.says,
            r.stderr
        );
    }
}

#[test]
fn check_config_rejects_a_missing_file_and_a_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.yml");
    let missing = missing.to_str().expect("UTF-8 path");
    let r = run(&["check-config", missing], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!("{missing}: read config file:")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);

    let r = run(&["check-config", dir.path().to_str().expect("UTF-8 path")], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(r.stderr.contains("FAILED"), "{}", r.stderr);
    assert!(!r.stdout.contains("SUCCESS"), "{}", r.stdout);
}

#[test]
fn check_config_without_a_file_is_a_usage_error() {
    let r = run(&["check-config"], &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("<FILE>"), "{}", r.stderr);
}

#[test]
fn help_lists_the_flags_and_subcommands() {
    let r = run(&["--help"], &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for flag in [
        "--config.file <FILE>",
        "--web.listen-address <ADDR>",
        "--storage.path <DIR>",
        "--log.level <LEVEL>",
        "--log.format <FORMAT>",
        "--runtime.worker-threads <N>",
        "check-config",
        "[default: 0.0.0.0:9480]",
    ] {
        assert!(r.stdout.contains(flag), "--help lacks {flag:?}:\n{}", r.stdout);
    }
}

#[test]
fn unknown_flag_and_bad_flag_values_are_usage_errors() {
    for args in [
        &["--config.fil=x.yml"][..],
        &["--log.level=loud"],
        &["--log.format=xml"],
        &["--web.listen-address=nowhere"],
    ] {
        let r = run(args, &[]);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("error:"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn invalid_config_at_startup_exits_with_the_error_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agent.yml");
    std::fs::write(
        &path,
        "scrape_configs:\n  - job_name: a\n    scrape_timeout: 2 minutes\n",
    )
    .expect("write config");
    let config = format!("--config.file={}", path.display());
    let storage = format!("--storage.path={}", dir.path().join("data").display());
    let r = run(&[&config, "--web.listen-address=127.0.0.1:0", &storage], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let at = format!("{}:3: scrape_configs[0].scrape_timeout:", path.display());
    assert!(r.stderr.contains(&at), "expected {at:?} in\n{}", r.stderr);
    // Logs to a file or pipe carry no terminal colour codes.
    assert!(
        !r.stderr.contains('\u{1b}'),
        "ANSI escapes in a non-terminal log:\n{:?}",
        r.stderr
    );
    // The default format is logfmt; the error, holding spaces and quotes, is one quoted value.
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("msg=\"Agent failed.\""))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        line.starts_with("ts=") && line.contains(" level=error caller=lib.rs:"),
        "{line}"
    );
    assert!(line.contains(&format!(" error=\"{at} ")), "{line}");
    assert!(
        !dir.path().join("data").exists(),
        "storage created for an invalid config"
    );

    let missing = format!("--config.file={}", dir.path().join("missing.yml").display());
    let r = run(&[&missing, "--web.listen-address=127.0.0.1:0", &storage], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("missing.yml: read config file:"), "{}", r.stderr);
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agent.yml");
    std::fs::write(&path, "global:\n  bogus: 1\n").expect("write config");
    let config = format!("--config.file={}", path.display());
    let r = run(&[&config, "--web.listen-address=127.0.0.1:0", "--log.format=json"], &[]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(!lines.is_empty(), "no log line");
    for line in lines {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(json["level"], "ERROR", "{line}");
        let error = json["fields"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("global.bogus"), "{line}");
    }
}

/// ```text
/// test ──spawn──► trawl-agent (default --log.format) ──► stderr: the "Agent started." line
/// ```
#[tokio::test]
async fn default_log_format_is_logfmt() {
    let agent = common::Agent::start("scrape_configs: []\n").await;
    let log = agent.log();
    let line = log
        .lines()
        .find(|l| l.contains("Agent started."))
        .unwrap_or_else(|| panic!("no startup line:\n{log}"));
    let (ts, rest) = line
        .strip_prefix("ts=")
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        ts.ends_with('Z') && ts.len() == "2026-11-21T13:22:39.399Z".len(),
        "{line}"
    );
    assert!(rest.starts_with("level=info caller=agent.rs:"), "{line}");
    assert!(rest.contains(" msg=\"Agent started.\" "), "{line}");
    assert!(rest.contains(" jobs=0 remote_write=0"), "{line}");
    assert!(
        log.lines().all(|l| l.starts_with("ts=")),
        "a line not in logfmt:\n{log}"
    );
}
