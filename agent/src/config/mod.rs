//! The agent config file (`--config.file`): Prometheus YAML keys verbatim, Prometheus 2.42
//! defaults and validation (`config/config.go`), read with serde-saphyr.
//!
//! Loading is one pass: read the file, expand `${VAR}` from the environment ([`env`]), parse
//! the YAML into raw structs that reject unknown and duplicate keys ([`raw`]), then fill defaults,
//! validate and resolve relative paths into the public types ([`types`]).
//!
//! Every error names the file, the line when known, and the key path, e.g.
//! `agent.yml:12: scrape_configs[0].scrape_timeout: 2m is greater than scrape_interval 1m`.

mod check;
mod env;
mod kubernetes;
mod plugins;
mod raw;
mod selector;
mod size;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use check::{Summary, check_config};
pub use kubernetes::{AttachMetadata, KubernetesSdConfig, NamespaceDiscovery, Role, SelectorConfig};
pub use size::{SizeError, parse_size};
pub use types::{
    Authorization, BasicAuth, Config, FileSdConfig, GlobalConfig, HttpClientConfig, OnError, PluginConfig, QueueConfig,
    RemoteWriteConfig, Scheme, ScrapeConfig, ScrapePlugin, ScrapeStage, StaticConfig, TlsConfig,
};

/// Largest config file accepted, in bytes; bigger inputs are rejected before parsing.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Why a config file could not be loaded. Display starts with `file:line:` when the line is
/// known, then the key path, then what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: read config file: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_BYTES`].
    #[error("{origin}: config file is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// File name used in messages.
        origin: String,
        /// Size of the input in bytes.
        size: u64,
        /// [`MAX_CONFIG_BYTES`].
        limit: u64,
    },
    /// `${NAME}` names an environment variable that is not set (or not valid UTF-8), or the
    /// `${…}` syntax itself is broken.
    #[error("{origin}:{line}: {message}")]
    Expand {
        /// File name used in messages.
        origin: String,
        /// 1-based line of the `${`.
        line: u64,
        /// What is wrong, naming the variable.
        message: String,
    },
    /// The YAML is malformed, a key is unknown or repeated, a value has the wrong type, or a
    /// rule of Prometheus's validation is broken.
    #[error("{}: {key}: {message}", at(origin, *line))]
    Invalid {
        /// File name used in messages.
        origin: String,
        /// 1-based line of the offending node, when known.
        line: Option<u64>,
        /// Key path such as `scrape_configs[0].scrape_timeout`; `.` for the whole document.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn at(origin: &str, line: Option<u64>) -> String {
    match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_owned(),
    }
}

impl Config {
    /// Reads and validates the config file at `path`: size check, `${VAR}` expansion, parse,
    /// defaults, validation. Relative paths inside (file_sd `files`, `ca_file`, `cert_file`,
    /// `key_file`, `password_file`, `credentials_file`, `bearer_token_file`, plugin `path`) are
    /// resolved against the directory of `path`, as Prometheus does; so is `kubernetes_sd_configs`
    /// `kubeconfig_file`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let origin = path.display().to_string();
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                origin,
                size,
                limit: MAX_CONFIG_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
            origin: origin.clone(),
            line: None,
            key: ".".to_owned(),
            message: format!("config file is not valid UTF-8: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, &origin, base)
    }

    /// Parses and validates config text; `origin` names the text in error messages. Relative
    /// paths stay relative (resolved against the current directory at use).
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Self::parse(text, origin, Path::new(""))
    }

    fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let size = text.len() as u64;
        if size > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                origin: origin.to_owned(),
                size,
                limit: MAX_CONFIG_BYTES,
            });
        }
        let expanded = env::expand(text, |name| std::env::var(name).ok()).map_err(|e| ConfigError::Expand {
            origin: origin.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        let raw = raw::parse(&expanded, origin)?;
        raw.validate(origin, base)
    }
}
