//! A plugin for the SDK's own tests, driven by its config: a list of edits applied to every
//! batch, and a `describe` op that logs what the views show.

use crate::{Batch, Error, Needs, Plugin, parse_config};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    ops: Vec<Op>,
    #[serde(default)]
    needs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Drop { series: usize },
    Set { series: usize, name: String, value: String },
    Remove { series: usize, name: String },
    Value { series: usize, value: f64 },
    Fail { message: String },
    Describe,
    DescribeSymbols,
}

/// Applies its `ops` in order to every batch.
pub(crate) struct Scripted {
    ops: Vec<Op>,
    needs: Needs,
}

impl Plugin for Scripted {
    const NAME: &'static str = "scripted";
    const VERSION: &'static str = "9.9.9";

    fn new(config: serde_json::Value) -> Result<Self, Error> {
        let config: Config = parse_config(config)?;
        let mut needs = Needs::default();
        for need in &config.needs {
            match need.as_str() {
                "values" => needs.values = true,
                "timestamps" => needs.timestamps = true,
                "target" => needs.target_labels = true,
                other => return Err(Error::config(format!("needs: unknown {other:?}"))),
            }
        }
        Ok(Scripted { ops: config.ops, needs })
    }

    fn needs(&self) -> Needs {
        self.needs
    }

    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
        for op in &self.ops {
            match op {
                Op::Drop { series } => batch.drop(*series)?,
                Op::Set { series, name, value } => batch.set_label(*series, name, value)?,
                Op::Remove { series, name } => batch.remove_label(*series, name)?,
                Op::Value { series, value } => batch.set_value(*series, *value)?,
                Op::Fail { message } => return Err(Error::failed(message)),
                Op::Describe => describe(batch),
                Op::DescribeSymbols => describe_symbols(batch),
            }
        }
        Ok(())
    }
}

/// Logs the stage, the target and each series as the views show them.
fn describe(batch: &Batch<'_>) {
    crate::log::info(&format!(
        "{} n={} target={:?}",
        batch.stage(),
        batch.len(),
        batch.target()
    ));
    for series in batch.series() {
        crate::log::info(&format!(
            "{} {} {:?} {:?} {:?}",
            series.index(),
            series.metric_name(),
            series.labels(),
            series.value(),
            series.timestamp_ms()
        ));
    }
}

/// Logs each series as its symbols show it, resolved back to text.
fn describe_symbols(batch: &Batch<'_>) {
    for series in batch.series() {
        let pairs: Vec<String> = series
            .labels()
            .symbols()
            .map(|(n, v)| format!("{}={}", batch.resolve(n), batch.resolve(v)))
            .collect();
        crate::log::info(&format!(
            "{} name={:?} job={:?} {}",
            series.index(),
            series.metric_name_symbol().map(|s| batch.resolve(s)),
            series.labels().get_symbol("job").map(|s| batch.resolve(s)),
            pairs.join(",")
        ));
    }
}
