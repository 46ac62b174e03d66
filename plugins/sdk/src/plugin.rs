//! The trait a plugin implements, and the small types around it.

use crate::batch::Batch;
use std::fmt;

/// A Trawl plugin: built once from its JSON config, then called once per batch.
///
/// Register the type with [`register_plugin!`](crate::register_plugin). The agent runs one
/// instance per `plugins:` entry and calls it from one thread at a time, so `process` takes
/// `&mut self` and may keep caches.
pub trait Plugin: Sized + 'static {
    /// The plugin's name, for the agent's logs and metrics (e.g. `drop-labels`).
    const NAME: &'static str;
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// Builds the plugin from the `config:` of its `plugins:` entry (`{}` when absent). An `Err`
    /// makes the agent refuse to load the plugin and print the message; name the key and why.
    fn new(config: serde_json::Value) -> Result<Self, Error>;

    /// Optional columns this plugin needs in every batch; asked once, after [`Plugin::new`].
    /// Columns not asked for arrive empty, which is cheaper for the agent.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// Decides about one batch: call [`Batch::drop`], [`Batch::set_label`],
    /// [`Batch::remove_label`] or [`Batch::set_value`] on the series to change, leave the rest.
    /// An `Err` fails the whole call; the agent then applies the plugin's `on_error` policy
    /// (keep or drop the whole batch) and counts the failure.
    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error>;
}

/// Optional batch columns, as the WIT `needs` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Sample values ([`Batch::value`]); sent in the `filter` stage only.
    pub values: bool,
    /// Sample timestamps in ms since the Unix epoch ([`Batch::timestamp_ms`]); sent in the
    /// `filter` stage only.
    pub timestamps: bool,
    /// The target's labels ([`Batch::target`]); sent in every stage.
    pub target_labels: bool,
}

/// Where in the agent's pipeline a batch comes from (the WIT `stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Series new to a target's series cache, after `metric_relabel_configs`. Labels only; the
    /// outcome is cached per series, so it runs once per new series.
    Relabel,
    /// Every series of one scrape, with values when asked for. Runs on every scrape.
    Filter,
    /// Series new to a `remote_write` endpoint, after its `write_relabel_configs`. Labels only;
    /// the outcome is cached per series and endpoint.
    Write,
}

impl Stage {
    /// The stage's name in the agent's config (`relabel`, `filter`, `write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Relabel => "relabel",
            Stage::Filter => "filter",
            Stage::Write => "write",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can go wrong in a plugin. Errors from [`Plugin::new`] reach the agent as
/// `invalid-config`, errors from [`Plugin::process`] as `failed`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The plugin's config is wrong: which key and why.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// An edit named a series index outside the batch.
    #[error("series {index} is out of range for a batch of {len}")]
    NoSuchSeries {
        /// The index given.
        index: usize,
        /// The batch's length.
        len: usize,
    },
    /// A label name that Prometheus would reject (`[a-zA-Z_][a-zA-Z0-9_]*`).
    #[error("invalid label name {0:?}")]
    InvalidLabelName(String),
    /// An edit would remove `__name__` or set it empty.
    #[error("__name__ cannot be removed or set empty")]
    MetricNameRemoved,
    /// [`Batch::set_value`] outside the `filter` stage, where values are cached per series.
    #[error("set_value is only allowed in the filter stage, not in {0}")]
    ValueOutsideFilter(Stage),
    /// Any other failure of the plugin, with a message for the agent's log.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// An [`Error::InvalidConfig`] from any message, e.g. a `serde_json` error.
    pub fn config(message: impl fmt::Display) -> Self {
        Error::InvalidConfig(message.to_string())
    }

    /// An [`Error::Failed`] from any message.
    pub fn failed(message: impl fmt::Display) -> Self {
        Error::Failed(message.to_string())
    }
}

/// Parses a plugin's JSON config, which must be an object, into `T` (usually a
/// `#[serde(deny_unknown_fields)]` struct), turning serde's error (which names the key) into
/// [`Error::InvalidConfig`]. The object check matters: serde would read a struct from an array.
pub fn parse_config<T: serde::de::DeserializeOwned>(config: serde_json::Value) -> Result<T, Error> {
    if !config.is_object() {
        return Err(Error::config(format!(
            "the config must be a JSON object (a YAML mapping), not {config}"
        )));
    }
    serde_json::from_value(config).map_err(Error::config)
}

/// Whether `name` is a valid Prometheus label name, `[a-zA-Z_][a-zA-Z0-9_]*`, as
/// `model.LabelName.IsValid` in prometheus/common (legacy validation).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Bit pattern of Prometheus's staleness marker, a NaN the agent writes when a series
/// disappears (`value.StaleNaN` in Prometheus `model/value`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `value` is Prometheus's staleness marker. Plugins that drop or rewrite NaN values
/// should leave these alone, or queries see a vanished series for five more minutes.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_follow_prometheus() {
        for ok in ["a", "_", "__name__", "A9_b", "z"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a.b", "a\0"] {
            assert!(!is_valid_label_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn stale_marker_is_one_nan_not_all() {
        assert!(is_stale_marker(f64::from_bits(STALE_NAN_BITS)));
        assert!(!is_stale_marker(f64::NAN));
        assert!(!is_stale_marker(0.0));
    }

    #[test]
    fn parse_config_names_the_bad_key() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Config {
            #[serde(rename = "labels")]
            _labels: Vec<String>,
        }
        let err = parse_config::<Config>(serde_json::json!({"label": []})).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("label")), "{err}");
        let err = parse_config::<Config>(serde_json::json!({"labels": 3})).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
        for not_object in [serde_json::json!([[]]), serde_json::json!(null), serde_json::json!("x")] {
            let err = parse_config::<Config>(not_object).unwrap_err();
            assert!(err.to_string().contains("must be a JSON object"), "{err}");
        }
        assert!(parse_config::<Config>(serde_json::json!({"labels": ["a"]})).is_ok());
    }

    #[test]
    fn stages_display_their_config_names() {
        assert_eq!(Stage::Relabel.to_string(), "relabel");
        assert_eq!(Stage::Filter.to_string(), "filter");
        assert_eq!(Stage::Write.to_string(), "write");
    }
}
