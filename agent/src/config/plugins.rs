//! `plugins:` entries and the references to them from jobs and remote_write endpoints (Trawl's
//! addition to the Prometheus config): defaults, limits, and that every reference resolves.

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::Spanned;
use trawl_model::duration::format_duration;

use super::ConfigError;
use super::raw::RawPlugin;
use super::types::{Config, PluginConfig};
use super::validate::{Ctx, line};

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest `timeout` accepted: a call holds its scrape loop, so seconds are already too long.
const MAX_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MEMORY_LIMIT: u64 = 64 << 20;
/// Smallest `memory_limit` accepted: a Rust guest needs a few 64 KiB pages to start.
const MIN_MEMORY_LIMIT: u64 = 1 << 20;
/// Largest `memory_limit` accepted: a 32-bit linear memory cannot grow past 4 GiB.
const MAX_MEMORY_LIMIT: u64 = 4 << 30;

impl Ctx<'_> {
    /// Validates the `plugins:` list: names unique and non-empty, `sha256` 64 hex digits,
    /// `timeout` in (0, 10s], `memory_limit` in [1 MiB, 4 GiB].
    pub(super) fn plugins(&self, raw: Vec<Spanned<RawPlugin>>) -> Result<Vec<PluginConfig>, ConfigError> {
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut plugins = Vec::with_capacity(raw.len());
        for (i, raw) in raw.into_iter().enumerate() {
            let key = format!("plugins[{i}]");
            let at = line(&raw);
            let raw = raw.value;
            let name_at = line(&raw.name).or(at);
            let name = raw.name.value;
            if name.is_empty() {
                return Err(self.err(name_at, format!("{key}.name"), "plugin name is empty"));
            }
            if let Some(first) = names.insert(name.clone(), i) {
                return Err(self.err(
                    name_at,
                    format!("{key}.name"),
                    format!("found multiple plugins with name {name:?} (first at plugins[{first}])"),
                ));
            }
            let Some(path) = self.path(Some(raw.path)) else {
                return Err(self.err(at, format!("{key}.path"), "plugin path is empty"));
            };
            let sha256 = match raw.sha256 {
                Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Some(hex.to_ascii_lowercase())
                }
                Some(hex) => {
                    return Err(self.err(
                        at,
                        format!("{key}.sha256"),
                        format!("{hex:?} is not a SHA-256 digest (64 hex digits)"),
                    ));
                }
                None => None,
            };
            let timeout = raw.timeout.unwrap_or(DEFAULT_TIMEOUT);
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err(self.err(
                    at,
                    format!("{key}.timeout"),
                    format!(
                        "timeout {} must be greater than 0 and at most {}",
                        format_duration(timeout),
                        format_duration(MAX_TIMEOUT)
                    ),
                ));
            }
            let memory_limit = raw.memory_limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
            if !(MIN_MEMORY_LIMIT..=MAX_MEMORY_LIMIT).contains(&memory_limit) {
                return Err(self.err(
                    at,
                    format!("{key}.memory_limit"),
                    format!("memory_limit {memory_limit} bytes must be between 1MiB and 4GiB"),
                ));
            }
            plugins.push(PluginConfig {
                name,
                path,
                sha256,
                config: raw
                    .config
                    .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
                on_error: raw.on_error.unwrap_or_default(),
                timeout,
                memory_limit,
            });
        }
        Ok(plugins)
    }

    /// Checks that every plugin a job or endpoint names is defined under `plugins:`.
    pub(super) fn plugin_references(&self, config: &Config) -> Result<(), ConfigError> {
        let defined = |name: &str| config.plugins.iter().any(|p| p.name == name);
        let jobs = config.scrape_configs.iter().enumerate().flat_map(|(i, job)| {
            job.plugins
                .iter()
                .enumerate()
                .map(move |(j, p)| (format!("scrape_configs[{i}].plugins[{j}].name"), &p.name))
        });
        let endpoints = config.remote_write.iter().enumerate().flat_map(|(i, rw)| {
            rw.plugins
                .iter()
                .enumerate()
                .map(move |(j, name)| (format!("remote_write[{i}].plugins[{j}]"), name))
        });
        match jobs.chain(endpoints).find(|(_, name)| !defined(name)) {
            Some((key, name)) => Err(self.err(None, key, format!("no plugin named {name:?} under plugins:"))),
            None => Ok(()),
        }
    }
}
