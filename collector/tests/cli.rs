//! The `trawl-collector` command line: `--help`, and broken or hostile flags and files (objstore
//! configs, replication flags, hashrings files), each of which must stop the collector at start
//! with exit code 1 or 2 and a message naming the problem.
//!
//! ```text
//! test ──spawn──► trawl-collector FLAGS ──► exit code, stderr
//! ```

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_trawl-collector");

/// Runs the collector with `args` on a free port and a temporary `--tsdb.path`; it must exit by
/// itself (every case here fails at start).
fn run(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let tsdb = format!("--tsdb.path={}", dir.path().join("tsdb").display());
    Command::new(BIN)
        .args(["--web.listen-address=127.0.0.1:0", &tsdb])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run trawl-collector")
}

/// Runs the collector with `args` and asserts it refused them, saying `says` on stderr.
fn assert_refused(args: &[&str], says: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} accepted");
    assert!(
        stderr.contains(says),
        "{args:?}: stderr does not say {says:?}:\n{stderr}"
    );
}

#[test]
fn help_lists_the_thanos_flags() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--web.listen-address",
        "--tsdb.path",
        "--tsdb.block-duration",
        "--tsdb.retention",
        "--objstore.config-file",
        "--label",
        "--receive.tenant-header",
        "--receive.default-tenant-id",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn bad_flags_are_refused_with_their_name() {
    for (args, says) in [
        (vec!["--label=replica"], "expected key=\"value\""),
        (vec!["--label=tenant_id=\"x\""], "set by the collector"),
        (vec!["--tsdb.block-duration=2 hours"], "--tsdb.block-duration"),
        (vec!["--receive.default-tenant-id=../etc"], "default-tenant-id"),
        (vec!["--receive.tenant-header=bad header"], "tenant-header"),
    ] {
        assert_refused(&args, says);
    }
}

#[test]
fn broken_objstore_configs_stop_the_collector() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (yaml, says) in [
        ("type: GCS\nconfig: {bucket: b}\n", "GCS"),
        ("type: S3\nconfig: {endpoint: 'localhost:9000'}\n", "bucket"),
        (
            "type: S3\nconfig: {bucket: b, endpoint: x, no_such_key: 1}\n",
            "no_such_key",
        ),
        ("type: FILESYSTEM\nconfig: {directory: /tmp, extra: 1}\n", "extra"),
        ("[not, a, mapping", "objstore"),
        ("a: &a [*a, *a]\n", "objstore"),
    ] {
        let file = dir.path().join("objstore.yml");
        std::fs::write(&file, yaml).expect("write");
        let out = run(&[&format!("--objstore.config-file={}", file.display())]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml:?} accepted:\n{stderr}");
        assert!(
            stderr.contains(says),
            "{yaml:?}: stderr does not say {says:?}:\n{stderr}"
        );
    }
    let out = run(&["--objstore.config-file=/nonexistent/objstore.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/objstore.yml"));
}

#[test]
fn help_lists_the_replication_flags() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--receive.hashrings-file",
        "--receive.hashrings-algorithm",
        "--receive.hashrings-file-refresh-interval",
        "--receive.local-endpoint",
        "--receive.replication-factor",
        "--receive-forward-timeout",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn incomplete_or_bad_replication_flags_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hashrings.json");
    std::fs::write(&file, r#"[{"endpoints": ["127.0.0.1:1"]}]"#).expect("write");
    let file_flag = format!("--receive.hashrings-file={}", file.display());
    for (args, says) in [
        (vec![file_flag.as_str()], "--receive.local-endpoint"),
        (vec!["--receive.replication-factor=3"], "--receive.hashrings-file"),
        (
            vec![
                file_flag.as_str(),
                "--receive.local-endpoint=a:1",
                "--receive.replication-factor=0",
            ],
            "--receive.replication-factor",
        ),
        (
            vec![
                file_flag.as_str(),
                "--receive.local-endpoint=a:1",
                "--receive.hashrings-algorithm=random",
            ],
            "--receive.hashrings-algorithm",
        ),
        (
            vec![
                file_flag.as_str(),
                "--receive.local-endpoint=a:1",
                "--receive-forward-timeout=0s",
            ],
            "must be above 0",
        ),
        // One endpoint cannot hold three replicas.
        (
            vec![
                file_flag.as_str(),
                "--receive.local-endpoint=a:1",
                "--receive.replication-factor=3",
            ],
            "1 endpoints cannot hold 3 replicas",
        ),
    ] {
        assert_refused(&args, says);
    }
}

#[test]
fn broken_hashrings_files_stop_the_collector() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (json, says) in [
        ("", "not a valid hashrings JSON"),
        ("[]", "empty"),
        (r#"[{"endpoints": ["a:1", "a:1"]}]"#, "listed twice"),
        (
            r#"[{"endpoints": ["a:1"], "algorithm": "maglev"}]"#,
            "unknown algorithm",
        ),
        (r#"[{"endpoints": [{"address": "a:1", "az": "x"}]}]"#, "AZ aware"),
    ] {
        let file = dir.path().join("hashrings.json");
        std::fs::write(&file, json).expect("write");
        let out = run(&[
            &format!("--receive.hashrings-file={}", file.display()),
            "--receive.local-endpoint=a:1",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{json:?} accepted");
        assert!(
            stderr.contains(says),
            "{json:?}: stderr does not say {says:?}:\n{stderr}"
        );
    }
    let missing = run(&[
        "--receive.hashrings-file=/nonexistent/hashrings.json",
        "--receive.local-endpoint=a:1",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/hashrings.json"));
}
