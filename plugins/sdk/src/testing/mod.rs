//! Native test harness: run a [`Plugin`] on series written as text, in ordinary `#[test]`s,
//! without Wasm.
//!
//! The harness plays the agent's part of `wit/plugin.wit` — interns strings, sends the guest
//! the symbols it lacks, checks the outcome the way the agent validates it and applies it — and
//! calls the same runtime the Wasm glue calls, so a test exercises the plugin and the SDK's
//! symbol and outcome code together.
//!
//! ```
//! use trawl_plugin_sdk::testing::{Harness, HarnessError};
//! use trawl_plugin_sdk::{Batch, Error, Plugin, Stage, serde_json};
//!
//! /// Removes the `email` label.
//! struct NoEmail;
//!
//! impl Plugin for NoEmail {
//!     const NAME: &'static str = "no-email";
//!     const VERSION: &'static str = "0.1.0";
//!     fn new(_config: serde_json::Value) -> Result<Self, Error> {
//!         Ok(NoEmail)
//!     }
//!     fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
//!         for series in batch.series() {
//!             batch.remove_label(series.index(), "email")?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let mut harness = Harness::<NoEmail>::new(serde_json::json!({}))?;
//! assert_eq!(
//!     harness.kept(Stage::Filter, "up{email=\"a@b\",job=\"x\"} 1\nup{job=\"y\"} 1")?,
//!     ["up{job=\"x\"} 1", "up{job=\"y\"} 1"]
//! );
//! # Ok::<(), HarnessError>(())
//! ```

mod host;
#[cfg(test)]
pub(crate) mod scripted;
mod text;

pub use text::parse;

use crate::log::{Level, capture};
use crate::plugin::{Needs, Plugin, Stage};
use crate::runtime::Runtime;
use crate::wire;
use host::{Host, normalize};
use std::fmt;

/// Why a harness run failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HarnessError {
    /// A line of the text input does not parse.
    #[error("input line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A series or the target has labels the agent would never send (duplicate or invalid
    /// names, no `__name__`).
    #[error("{what}: {reason}")]
    Input {
        /// `series N` or `target`.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// `init` rejected the config (the plugin's message).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// `process` answered `symbol-gap`: the harness and the guest disagree about the table.
    #[error("symbol gap: the guest has {0} symbols")]
    SymbolGap(u32),
    /// `process` failed (the plugin's error, or a malformed batch).
    #[error("plugin failed: {0}")]
    Failed(String),
    /// The outcome breaks a rule the agent enforces; the agent would count the call as failed.
    #[error("invalid outcome: {0}")]
    InvalidOutcome(String),
}

/// One input series: labels (with `__name__`), a value and an optional timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label pairs in any order; empty values count as absent, as in Prometheus.
    pub labels: Vec<(String, String)>,
    /// The sample value.
    pub value: f64,
    /// The sample timestamp in ms since the Unix epoch, if any.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// A sample from label pairs (include `("__name__", …)`) and a value.
    pub fn new(labels: &[(&str, &str)], value: f64) -> Self {
        Sample {
            labels: labels.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            value,
            timestamp_ms: None,
        }
    }
}

/// What the plugin decided about a series, as the agent reads the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Kept as it was: no edits.
    Keep,
    /// Dropped.
    Drop,
    /// Kept with edits (possibly ones that change nothing in the end).
    Modified,
}

/// One series after the plugin ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The plugin's verdict.
    pub verdict: Verdict,
    /// Final labels sorted by name (the input labels when kept or dropped).
    pub labels: Vec<(String, String)>,
    /// Final value (the input value unless the plugin set one).
    pub value: f64,
    /// The input timestamp.
    pub timestamp_ms: Option<i64>,
}

impl Output {
    /// Whether the series was dropped.
    pub fn is_dropped(&self) -> bool {
        self.verdict == Verdict::Drop
    }

    /// The final value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The series as an exposition line, `name{a="1"} 3.5 [timestamp_ms]`.
impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::render(f, &self.labels, self.value, self.timestamp_ms)
    }
}

/// A plugin instance driven like the agent drives it.
pub struct Harness<P> {
    runtime: Runtime<P>,
    info: wire::PluginInfo,
    host: Host,
    target: Vec<(String, String)>,
}

impl<P: Plugin> Harness<P> {
    /// Builds the plugin from `config`, as `init` does when the agent loads it.
    ///
    /// Errors: [`HarnessError::InvalidConfig`] with the plugin's message.
    pub fn new(config: serde_json::Value) -> Result<Self, HarnessError> {
        Self::from_json(&config.to_string())
    }

    /// Like [`Harness::new`] from raw JSON text, to test configs that are not JSON at all.
    pub fn from_json(config_json: &str) -> Result<Self, HarnessError> {
        let mut runtime = Runtime::new();
        let info = runtime.init(config_json).map_err(|error| match error {
            wire::PluginError::InvalidConfig(message) => HarnessError::InvalidConfig(message),
            wire::PluginError::SymbolGap(have) => HarnessError::SymbolGap(have),
            wire::PluginError::Failed(message) => HarnessError::Failed(message),
        })?;
        Ok(Harness {
            runtime,
            info,
            host: Host::default(),
            target: Vec::new(),
        })
    }

    /// The name `init` reported.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The version `init` reported.
    pub fn version(&self) -> &str {
        &self.info.version
    }

    /// The columns `init` asked for.
    pub fn needs(&self) -> Needs {
        Needs {
            values: self.info.needs.contains(wire::Needs::VALUES),
            timestamps: self.info.needs.contains(wire::Needs::TIMESTAMPS),
            target_labels: self.info.needs.contains(wire::Needs::TARGET_LABELS),
        }
    }

    /// Sets the target labels of later batches (sent only if the plugin needs them).
    ///
    /// Errors: [`HarnessError::Input`] for a duplicate or invalid name.
    pub fn set_target(&mut self, labels: &[(&str, &str)]) -> Result<(), HarnessError> {
        let pairs: Vec<(String, String)> = labels.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect();
        self.target = normalize(&pairs).map_err(|reason| HarnessError::Input {
            what: "target".to_owned(),
            reason,
        })?;
        Ok(())
    }

    /// Runs one batch of series given as exposition text (see [`parse`]).
    pub fn run(&mut self, stage: Stage, text: &str) -> Result<Vec<Output>, HarnessError> {
        let samples = parse(text)?;
        self.run_samples(stage, &samples)
    }

    /// Runs one batch and renders the series kept, in order, as exposition lines.
    pub fn kept(&mut self, stage: Stage, text: &str) -> Result<Vec<String>, HarnessError> {
        Ok(self
            .run(stage, text)?
            .iter()
            .filter(|output| !output.is_dropped())
            .map(Output::to_string)
            .collect())
    }

    /// Runs one batch of `samples`: encode, `process`, validate, apply.
    ///
    /// Errors: bad input labels, the plugin's failure, a symbol gap, or an invalid outcome.
    pub fn run_samples(&mut self, stage: Stage, samples: &[Sample]) -> Result<Vec<Output>, HarnessError> {
        let samples = samples
            .iter()
            .enumerate()
            .map(|(index, sample)| {
                let labels = normalize(&sample.labels)
                    .and_then(|labels| {
                        if labels.iter().any(|(n, _)| n == "__name__") {
                            Ok(labels)
                        } else {
                            Err("no __name__ label".to_owned())
                        }
                    })
                    .map_err(|reason| HarnessError::Input {
                        what: format!("series {index}"),
                        reason,
                    })?;
                Ok(Sample {
                    labels,
                    ..sample.clone()
                })
            })
            .collect::<Result<Vec<_>, HarnessError>>()?;
        let batch = self.host.encode(stage, self.info.needs, &samples, &self.target);
        let outcome = self.runtime.process(batch).map_err(|error| match error {
            wire::PluginError::SymbolGap(have) => HarnessError::SymbolGap(have),
            wire::PluginError::Failed(message) | wire::PluginError::InvalidConfig(message) => {
                HarnessError::Failed(message)
            }
        })?;
        self.host.apply(stage, &samples, outcome)
    }

    /// Starts a new symbol generation and calls `reset-symbols`, as the agent does when its
    /// symbol table grows past its cap: the next batch resends every string it uses, and ids
    /// are assigned afresh, so the same id may name another string than before.
    pub fn reset_symbols(&mut self) {
        self.runtime.reset_symbols();
        self.host.reset();
    }

    /// Number of symbols the guest holds.
    pub fn symbols_sent(&self) -> usize {
        self.host.sent()
    }

    /// Lines the plugin logged on this thread since the last call.
    pub fn take_logs(&mut self) -> Vec<(Level, String)> {
        capture::take()
    }
}

#[cfg(test)]
mod tests;
