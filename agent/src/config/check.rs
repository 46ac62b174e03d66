//! `trawl-agent check-config FILE`: load the config as the agent would, then check what promtool
//! `check config` checks on disk: TLS and credential files (and `kubeconfig_file`s) exist, and
//! every file_sd file that matches now holds valid target groups.

use std::fmt;
use std::path::Path;

use super::{Config, ConfigError, HttpClientConfig};
use crate::discovery::file::{expand_patterns, read_target_groups};

/// What a successful check found. Display gives the part after promtool's `SUCCESS: `, e.g.
/// `2 scrape configs, 1 remote_write, 3 file_sd files, 1 kubernetes_sd configs` (the file_sd
/// and kubernetes_sd parts only when non-zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Number of `scrape_configs`.
    pub scrape_configs: usize,
    /// Number of `remote_write` endpoints.
    pub remote_write: usize,
    /// Number of file_sd files that currently match and were read.
    pub file_sd_files: usize,
    /// Number of `kubernetes_sd_configs` entries over all jobs.
    pub kubernetes_sd_configs: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} scrape configs, {} remote_write",
            self.scrape_configs, self.remote_write
        )?;
        if self.file_sd_files > 0 {
            write!(f, ", {} file_sd files", self.file_sd_files)?;
        }
        if self.kubernetes_sd_configs > 0 {
            write!(f, ", {} kubernetes_sd configs", self.kubernetes_sd_configs)?;
        }
        Ok(())
    }
}

/// Loads and validates `path` like [`Config::load`], then checks referenced files: `ca_file`,
/// `cert_file`, `key_file`, `password_file` and `credentials_file` must be readable files, and
/// each file matched by a `file_sd_configs` pattern must parse as target groups.
///
/// Errors: the first problem found, as a [`ConfigError`] naming file and key.
pub fn check_config(path: &Path) -> Result<Summary, ConfigError> {
    let config = Config::load(path)?;
    let origin = path.display().to_string();
    let fail = |key: String, message: String| ConfigError::Invalid {
        origin: origin.clone(),
        line: None,
        key,
        message,
    };

    let http_configs = config
        .scrape_configs
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("scrape_configs[{i}]"), &s.http))
        .chain(
            config
                .remote_write
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("remote_write[{i}]"), &r.http)),
        )
        .chain(config.scrape_configs.iter().enumerate().flat_map(|(i, s)| {
            s.kubernetes_sd_configs
                .iter()
                .enumerate()
                .map(move |(j, k)| (format!("scrape_configs[{i}].kubernetes_sd_configs[{j}]"), &k.http))
        }));
    let mut files: Vec<(String, &Path)> = Vec::new();
    for (key, http) in http_configs {
        files.extend(
            referenced_files(http)
                .into_iter()
                .map(|(field, file)| (format!("{key}.{field}"), file)),
        );
    }
    for (i, job) in config.scrape_configs.iter().enumerate() {
        for (j, k) in job.kubernetes_sd_configs.iter().enumerate() {
            if let Some(file) = &k.kubeconfig_file {
                files.push((
                    format!("scrape_configs[{i}].kubernetes_sd_configs[{j}].kubeconfig_file"),
                    file,
                ));
            }
        }
    }
    for (key, file) in files {
        if let Err(e) = std::fs::File::open(file).and_then(|f| f.metadata()).and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err(std::io::Error::other("not a regular file"))
            }
        }) {
            return Err(fail(key, format!("cannot read {}: {e}", file.display())));
        }
    }

    let mut file_sd_files = 0;
    for (i, job) in config.scrape_configs.iter().enumerate() {
        for (j, sd) in job.file_sd_configs.iter().enumerate() {
            let key = format!("scrape_configs[{i}].file_sd_configs[{j}].files");
            let files = expand_patterns(&sd.files).map_err(|e| fail(key.clone(), e.to_string()))?;
            for file in files {
                read_target_groups(&file).map_err(|e| fail(key.clone(), e.to_string()))?;
                file_sd_files += 1;
            }
        }
    }

    Ok(Summary {
        scrape_configs: config.scrape_configs.len(),
        remote_write: config.remote_write.len(),
        file_sd_files,
        kubernetes_sd_configs: config
            .scrape_configs
            .iter()
            .map(|s| s.kubernetes_sd_configs.len())
            .sum(),
    })
}

/// Files an HTTP client config reads at runtime, with their key names.
fn referenced_files(http: &HttpClientConfig) -> Vec<(&'static str, &Path)> {
    let tls = &http.tls_config;
    let candidates = [
        ("tls_config.ca_file", tls.ca_file.as_deref()),
        ("tls_config.cert_file", tls.cert_file.as_deref()),
        ("tls_config.key_file", tls.key_file.as_deref()),
        (
            "basic_auth.password_file",
            http.basic_auth.as_ref().and_then(|b| b.password_file.as_deref()),
        ),
        (
            "authorization.credentials_file",
            http.authorization.as_ref().and_then(|a| a.credentials_file.as_deref()),
        ),
    ];
    candidates.into_iter().filter_map(|(k, p)| p.map(|p| (k, p))).collect()
}
