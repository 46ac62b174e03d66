//! `trawl-agent check-plugin`: runs one plugin on an exposition file and prints what it did, so
//! plugin authors and users see a plugin's effect without running an agent.
//!
//! Every sample of the file becomes one series of a single batch (a scrape's batch at the filter
//! stage, the new series of a scrape at the relabel and write stages). Kept series are printed
//! as exposition lines; dropped and modified ones are marked with comments.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use prometheus_client::registry::Registry;
use trawl_model::exposition::{self, Entry, Format, Parser};
use trawl_model::labels::{Labels, METRIC_NAME};

use crate::config::{OnError, PluginConfig};
use crate::plugin::{Batch, PluginError, PluginHost, Stage, Verdict, intern_pairs};

/// Largest input file accepted, in bytes.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct CheckPlugin {
    /// The `.wasm` component.
    pub wasm: PathBuf,
    /// The plugin's `config:` as JSON text.
    pub config_json: String,
    /// Exposition file (text format 0.0.4, or OpenMetrics when it ends with `# EOF`).
    pub input: PathBuf,
    /// The stage the batch is sent as.
    pub stage: Stage,
    /// The target's labels, for plugins that ask for them.
    pub target_labels: Labels,
    /// Per-call deadline.
    pub timeout: Duration,
    /// Linear memory cap of the instance, in bytes.
    pub memory_limit: u64,
}

/// Why the check could not run, or what the plugin did wrong.
#[derive(Debug, thiserror::Error)]
pub enum CheckPluginError {
    /// `--plugin.config` is not JSON.
    #[error("--plugin.config is not valid JSON: {0}")]
    Config(serde_json::Error),
    /// The input file could not be read or is too large.
    #[error("read {}: {message}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The input is not valid exposition.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The input file.
        path: PathBuf,
        /// The parse error.
        source: exposition::ParseError,
    },
    /// The plugin could not be loaded or initialised.
    #[error(transparent)]
    Load(#[from] PluginError),
    /// The call failed (trap, deadline, memory limit, plugin error, invalid outcome); the log
    /// has the details.
    #[error("the plugin call failed ({reasons}); see the log above")]
    Call {
        /// `reason=count` pairs from `trawl_agent_plugin_errors_total`.
        reasons: String,
    },
}

/// Counts of a check, for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckSummary {
    /// Series in the input.
    pub series: usize,
    /// Series the plugin dropped.
    pub dropped: usize,
    /// Series the plugin changed.
    pub modified: usize,
}

/// Loads the plugin, sends the input's samples as one batch and writes the result to `out`:
/// the plugin's name, version and needs, then each series as an exposition line (`# dropped:`
/// and `# modified:` comments before the ones the plugin changed), then a summary comment.
///
/// # Errors
/// [`CheckPluginError`]; a failed call is an error even though the agent would apply the
/// plugin's `on_error` policy.
pub fn check_plugin(check: &CheckPlugin, out: &mut String) -> Result<CheckSummary, CheckPluginError> {
    let config = serde_json::from_str(&check.config_json).map_err(CheckPluginError::Config)?;
    let body = read_input(&check.input)?;
    let format = if body.trim_ascii_end().ends_with(b"# EOF") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let parse_error = |source| CheckPluginError::Parse {
        path: check.input.clone(),
        source,
    };
    let mut samples: Vec<(Labels, f64, Option<i64>)> = Vec::new();
    for entry in Parser::new(&body, format) {
        let Entry::Sample(sample) = entry.map_err(parse_error)? else {
            continue;
        };
        let labels = exposition::parse_series(sample.series, format).map_err(parse_error)?;
        samples.push((labels, sample.value, sample.timestamp_ms));
    }

    let mut registry = Registry::default();
    let host = PluginHost::new(None, &mut registry)?;
    let name = check
        .wasm
        .file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
    let plugin = host.load(&PluginConfig {
        name,
        path: check.wasm.clone(),
        sha256: None,
        config,
        on_error: OnError::FailOpen,
        timeout: check.timeout,
        memory_limit: check.memory_limit,
    })?;
    let info = plugin.info();
    let _ = writeln!(
        out,
        "# plugin {} {} at stage {}; needs values={} timestamps={} target_labels={}",
        info.name,
        info.version,
        check.stage.as_str(),
        info.needs.values,
        info.needs.timestamps,
        info.needs.target_labels
    );

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut symbols = host.symbols().lock();
    let mut batch = Batch::new(check.stage, symbols.generation());
    let mut pairs = Vec::new();
    for (labels, value, timestamp_ms) in &samples {
        intern_pairs(&mut symbols, labels, &mut pairs);
        match check.stage {
            Stage::Filter => batch.push_sample(&pairs, *value, timestamp_ms.unwrap_or(now_ms)),
            Stage::Relabel | Stage::Write => batch.push_series(&pairs),
        }
    }
    intern_pairs(&mut symbols, &check.target_labels, &mut batch.target_labels);
    drop(symbols);
    // Nothing else interns, so the batch cannot go stale; say so if it ever does.
    let outcome = plugin.process(&batch).map_err(|_| CheckPluginError::Call {
        reasons: "stale symbols".to_owned(),
    })?;
    let reasons = failure_reasons(&registry);
    if !reasons.is_empty() {
        return Err(CheckPluginError::Call { reasons });
    }

    let symbols = host.symbols().lock();
    for (i, (labels, value, timestamp_ms)) in samples.iter().enumerate() {
        match outcome.verdict(i) {
            Verdict::Keep => write_sample(out, labels, *value, *timestamp_ms),
            Verdict::Drop => {
                out.push_str("# dropped: ");
                write_sample(out, labels, *value, *timestamp_ms);
            }
            Verdict::Modified => {
                out.push_str("# modified: ");
                write_sample(out, labels, *value, *timestamp_ms);
                let value = outcome.value(i).unwrap_or(*value);
                write_sample(out, &outcome.labels(i, &batch, &symbols), value, *timestamp_ms);
            }
        }
    }
    let summary = CheckSummary {
        series: samples.len(),
        dropped: outcome.dropped(),
        modified: outcome.modified(),
    };
    let _ = writeln!(
        out,
        "# {} series: {} kept unchanged, {} modified, {} dropped",
        summary.series,
        summary.series - summary.dropped - summary.modified,
        summary.modified,
        summary.dropped
    );
    Ok(summary)
}

fn read_input(path: &std::path::Path) -> Result<Vec<u8>, CheckPluginError> {
    let input_error = |message: String| CheckPluginError::Input {
        path: path.to_owned(),
        message,
    };
    let size = std::fs::metadata(path).map_err(|e| input_error(e.to_string()))?.len();
    if size > MAX_INPUT_BYTES {
        return Err(input_error(format!(
            "{size} bytes, more than the limit of {MAX_INPUT_BYTES}"
        )));
    }
    std::fs::read(path).map_err(|e| input_error(e.to_string()))
}

/// `reason=count` of every non-zero `trawl_agent_plugin_errors_total` series, comma-separated.
fn failure_reasons(registry: &Registry) -> String {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        return String::new();
    }
    text.lines()
        .filter(|l| l.starts_with("trawl_agent_plugin_errors_total{"))
        .filter_map(|l| {
            let (series, count) = l.rsplit_once(' ')?;
            let reason = series.split("reason=\"").nth(1)?.split('"').next()?;
            (count != "0").then(|| format!("{reason}={count}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `name{labels} value [timestamp]` as the text format does.
fn write_sample(out: &mut String, labels: &Labels, value: f64, timestamp_ms: Option<i64>) {
    out.push_str(labels.metric_name());
    let mut rest = labels.iter().filter(|l| l.name != METRIC_NAME).peekable();
    if rest.peek().is_some() {
        out.push('{');
        for (i, l) in rest.enumerate() {
            if i > 0 {
                out.push(',');
            }
            let value = l.value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = write!(out, "{}=\"{value}\"", l.name);
        }
        out.push('}');
    }
    let _ = match timestamp_ms {
        Some(ts) => writeln!(out, " {} {ts}", format_value(value)),
        None => writeln!(out, " {}", format_value(value)),
    };
}

/// Go's formatting of special floats, as exposition uses them.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}
