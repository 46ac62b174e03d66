//! `value-filter`: filters and rescales sample values (filter stage only: values cross there).
//!
//! Config (every key optional, at least one rule required):
//! ```json
//! {
//!   "drop_nan": true,
//!   "drop_negative_counters": true,
//!   "counter_suffixes": ["_total"],
//!   "ranges": [{"metric": "node_hwmon_temp_celsius", "min": -50, "max": 150}],
//!   "scale": [{"metric": "(.*)_milliseconds", "factor": 0.001, "rename": "${1}_seconds"}]
//! }
//! ```
//! Per sample, in order: Prometheus staleness markers pass untouched; NaN is dropped with
//! `drop_nan` and otherwise kept as is; a negative value of a counter (a name ending in one of
//! `counter_suffixes`) is dropped with `drop_negative_counters`; a value outside any matching
//! `ranges` entry (`min`/`max` inclusive, either optional) is dropped; then the first matching
//! `scale` entry multiplies the value by `factor` and, with `rename`, renames the metric using
//! the regex's groups (`$1`, `${name}`). Metric regexes are anchored like Prometheus's.

use serde::Deserialize;
use trawl_plugin_sdk::regex::{Regex, anchored};
use trawl_plugin_sdk::{
    Batch, Error, Needs, Plugin, Stage, SymbolMemo, is_stale_marker, log, parse_config, register_plugin,
};

/// The plugin's config, as documented in the crate docs and README.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    drop_nan: bool,
    #[serde(default)]
    drop_negative_counters: bool,
    #[serde(default = "default_counter_suffixes")]
    counter_suffixes: Vec<String>,
    #[serde(default)]
    ranges: Vec<RangeConfig>,
    #[serde(default)]
    scale: Vec<ScaleConfig>,
}

fn default_counter_suffixes() -> Vec<String> {
    vec!["_total".to_owned()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeConfig {
    #[serde(default = "any_metric")]
    metric: String,
    min: Option<f64>,
    max: Option<f64>,
}

fn any_metric() -> String {
    ".*".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleConfig {
    metric: String,
    factor: f64,
    rename: Option<String>,
}

#[derive(Debug)]
struct Range {
    metric: Regex,
    min: f64,
    max: f64,
}

#[derive(Debug)]
struct Scale {
    metric: Regex,
    factor: f64,
    rename: Option<String>,
}

/// What applies to one metric name, worked out once per name (regexes are not free).
#[derive(Debug)]
struct Plan {
    counter: bool,
    min: f64,
    max: f64,
    scale: Option<(f64, Option<String>)>,
}

/// The per-metric rules, from the config.
#[derive(Debug)]
struct Rules {
    drop_negative_counters: bool,
    counter_suffixes: Vec<String>,
    ranges: Vec<Range>,
    scale: Vec<Scale>,
}

/// The plugin: see the crate docs.
#[derive(Debug)]
pub struct ValueFilter {
    drop_nan: bool,
    rules: Rules,
    /// The plan of each metric name seen; `None` when no rule applies to it.
    plans: SymbolMemo<Option<Box<Plan>>>,
}

impl Plugin for ValueFilter {
    const NAME: &'static str = "value-filter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, Error> {
        let config: Config = parse_config(config)?;
        if !config.drop_nan && !config.drop_negative_counters && config.ranges.is_empty() && config.scale.is_empty() {
            return Err(Error::config(
                "nothing to do: set drop_nan, drop_negative_counters, ranges or scale",
            ));
        }
        if config.drop_negative_counters && config.counter_suffixes.iter().all(String::is_empty) {
            return Err(Error::config(
                "counter_suffixes: needs a non-empty suffix with drop_negative_counters",
            ));
        }
        let ranges = config
            .ranges
            .into_iter()
            .enumerate()
            .map(|(i, r)| range(i, r))
            .collect::<Result<_, _>>()?;
        let scale = config
            .scale
            .into_iter()
            .enumerate()
            .map(|(i, s)| scale(i, s))
            .collect::<Result<_, _>>()?;
        Ok(ValueFilter {
            drop_nan: config.drop_nan,
            rules: Rules {
                drop_negative_counters: config.drop_negative_counters,
                counter_suffixes: config.counter_suffixes,
                ranges,
                scale,
            },
            plans: SymbolMemo::new(),
        })
    }

    fn needs(&self) -> Needs {
        Needs {
            values: true,
            ..Needs::default()
        }
    }

    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
        if batch.stage() != Stage::Filter {
            return Err(Error::failed(format!(
                "value-filter works in the filter stage only (values are not sent in {})",
                batch.stage()
            )));
        }
        for series in batch.series() {
            let index = series.index();
            let Some(value) = series.value() else {
                continue;
            };
            if is_stale_marker(value) {
                continue;
            }
            if value.is_nan() {
                if self.drop_nan {
                    batch.drop(index)?;
                }
                continue;
            }
            let computed;
            let plan = match series.metric_name_symbol() {
                Some(name) => self.plans.get_or_insert_with(batch, name, |name| self.rules.plan(name)),
                None => {
                    computed = self.rules.plan("");
                    &computed
                }
            };
            let Some(plan) = plan.as_deref() else {
                continue;
            };
            if (plan.counter && value < 0.0) || value < plan.min || value > plan.max {
                batch.drop(index)?;
                continue;
            }
            if let Some((factor, rename)) = &plan.scale {
                batch.set_value(index, value * factor)?;
                if let Some(name) = rename {
                    batch.set_label(index, "__name__", name)?;
                }
            }
        }
        Ok(())
    }
}

impl Rules {
    /// What applies to metric `name`; `None` when nothing does.
    fn plan(&self, name: &str) -> Option<Box<Plan>> {
        let counter = self.drop_negative_counters
            && self
                .counter_suffixes
                .iter()
                .any(|suffix| !suffix.is_empty() && name.ends_with(suffix.as_str()));
        let (mut min, mut max) = (f64::NEG_INFINITY, f64::INFINITY);
        for range in self.ranges.iter().filter(|r| r.metric.is_match(name)) {
            min = min.max(range.min);
            max = max.min(range.max);
        }
        let scale = self
            .scale
            .iter()
            .find(|s| s.metric.is_match(name))
            .map(|s| (s.factor, s.rename.as_ref().and_then(|t| rename(&s.metric, name, t))));
        if !counter && min == f64::NEG_INFINITY && max == f64::INFINITY && scale.is_none() {
            return None;
        }
        Some(Box::new(Plan {
            counter,
            min,
            max,
            scale,
        }))
    }
}

/// `template` expanded with `metric`'s groups in `name`; `None` (and a warning) when that is not
/// a valid metric name.
fn rename(metric: &Regex, name: &str, template: &str) -> Option<String> {
    let renamed = metric.replace(name, template).into_owned();
    if is_valid_metric_name(&renamed) {
        Some(renamed)
    } else {
        log::warn(&format!(
            "Rename of {name:?} gives {renamed:?}, not a valid metric name; keeping the name."
        ));
        None
    }
}

/// Validates `ranges[index]`.
fn range(index: usize, config: RangeConfig) -> Result<Range, Error> {
    let key = format!("ranges[{index}]");
    if config.min.is_none() && config.max.is_none() {
        return Err(Error::config(format!("{key}: set min, max or both")));
    }
    let min = config.min.unwrap_or(f64::NEG_INFINITY);
    let max = config.max.unwrap_or(f64::INFINITY);
    if min > max {
        return Err(Error::config(format!("{key}: min {min} is above max {max}")));
    }
    Ok(Range {
        metric: anchored(&format!("{key}.metric"), &config.metric)?,
        min,
        max,
    })
}

/// Validates `scale[index]`.
fn scale(index: usize, config: ScaleConfig) -> Result<Scale, Error> {
    let key = format!("scale[{index}]");
    if !config.factor.is_finite() || config.factor == 0.0 {
        return Err(Error::config(format!(
            "{key}.factor: {} is not a finite, non-zero number",
            config.factor
        )));
    }
    if config.rename.as_deref() == Some("") {
        return Err(Error::config(format!("{key}.rename: empty")));
    }
    Ok(Scale {
        metric: anchored(&format!("{key}.metric"), &config.metric)?,
        factor: config.factor,
        rename: config.rename,
    })
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, Prometheus's legacy metric-name rule.
fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

register_plugin!(ValueFilter);

#[cfg(test)]
mod tests;
