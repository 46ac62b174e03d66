//! `drop-labels`: cardinality control. Drops whole series by metric name or label value, and
//! drops labels by name or regex, with regexes anchored like Prometheus's.
//!
//! Config (every key optional, at least one rule required):
//! ```json
//! {
//!   "drop_metrics": ["go_gc_.*", "process_.*"],
//!   "drop_series": [{"label": "env", "value": "dev"}, {"label": "path", "regex": "/debug/.*"}],
//!   "drop_labels": ["pod_template_hash"],
//!   "drop_labels_regex": ["tmp_.*"]
//! }
//! ```
//! A series without a label matches it as `""`, as in Prometheus. `__name__` is never dropped
//! as a label. Best in the `relabel` or `write` stage, where the outcome is cached per series.

use serde::Deserialize;
use std::collections::HashSet;
use trawl_plugin_sdk::regex::{Regex, anchored, anchored_any};
use trawl_plugin_sdk::{Batch, Error, Plugin, Series, SymbolMemo, is_valid_label_name, parse_config, register_plugin};

/// The plugin's config, as documented in the crate docs and README.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    drop_metrics: Vec<String>,
    #[serde(default)]
    drop_series: Vec<MatcherConfig>,
    #[serde(default)]
    drop_labels: Vec<String>,
    #[serde(default)]
    drop_labels_regex: Vec<String>,
}

/// One `drop_series` entry: a label and exactly one of `value` or `regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherConfig {
    label: String,
    value: Option<String>,
    regex: Option<String>,
}

/// A series matches when its `label` (or `""` if absent) matches `value`.
#[derive(Debug)]
struct Matcher {
    label: String,
    value: ValueMatch,
    /// Whether a series without the label matches.
    matches_absent: bool,
}

#[derive(Debug)]
enum ValueMatch {
    Equal(String),
    /// The regex, and its answer per label value.
    Regex(Regex, SymbolMemo<bool>),
}

/// The plugin: see the crate docs. Regex answers are remembered per distinct string (metric
/// name, label name, label value), so a regex runs once per string, not once per series.
#[derive(Debug)]
pub struct DropLabels {
    metrics: Option<Regex>,
    drop_metric: SymbolMemo<bool>,
    series: Vec<Matcher>,
    label_names: HashSet<String>,
    label_regex: Option<Regex>,
    drop_label: SymbolMemo<bool>,
}

impl Plugin for DropLabels {
    const NAME: &'static str = "drop-labels";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, Error> {
        let config: Config = parse_config(config)?;
        if config.drop_metrics.is_empty()
            && config.drop_series.is_empty()
            && config.drop_labels.is_empty()
            && config.drop_labels_regex.is_empty()
        {
            return Err(Error::config(
                "nothing to drop: set drop_metrics, drop_series, drop_labels or drop_labels_regex",
            ));
        }
        let series = config
            .drop_series
            .into_iter()
            .enumerate()
            .map(|(i, m)| matcher(i, m))
            .collect::<Result<_, _>>()?;
        for name in &config.drop_labels {
            if name == "__name__" {
                return Err(Error::config("drop_labels: __name__ cannot be dropped"));
            }
            if !is_valid_label_name(name) {
                return Err(Error::config(format!("drop_labels: invalid label name {name:?}")));
            }
        }
        Ok(DropLabels {
            metrics: anchored_any("drop_metrics", &config.drop_metrics)?,
            drop_metric: SymbolMemo::new(),
            series,
            label_names: config.drop_labels.into_iter().collect(),
            label_regex: anchored_any("drop_labels_regex", &config.drop_labels_regex)?,
            drop_label: SymbolMemo::new(),
        })
    }

    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
        let drops_labels = !self.label_names.is_empty() || self.label_regex.is_some();
        for series in batch.series() {
            let index = series.index();
            if self.drops_series(batch, &series) {
                batch.drop(index)?;
                continue;
            }
            if drops_labels {
                for (name, _) in series.labels().symbols() {
                    let drop = *self.drop_label.get_or_insert_with(batch, name, |name| {
                        name != "__name__"
                            && (self.label_names.contains(name)
                                || self.label_regex.as_ref().is_some_and(|re| re.is_match(name)))
                    });
                    if drop {
                        batch.remove_label(index, batch.resolve(name))?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl DropLabels {
    /// Whether a `drop_metrics` or `drop_series` rule matches `series`.
    fn drops_series(&mut self, batch: &Batch<'_>, series: &Series<'_>) -> bool {
        if let Some(re) = &self.metrics {
            let drop = match series.metric_name_symbol() {
                Some(name) => *self
                    .drop_metric
                    .get_or_insert_with(batch, name, |name| re.is_match(name)),
                None => re.is_match(""),
            };
            if drop {
                return true;
            }
        }
        self.series.iter_mut().any(|matcher| {
            let Some(value) = series.labels().get_symbol(&matcher.label) else {
                return matcher.matches_absent;
            };
            match &mut matcher.value {
                ValueMatch::Equal(expected) => batch.resolve(value) == expected,
                ValueMatch::Regex(re, memo) => *memo.get_or_insert_with(batch, value, |value| re.is_match(value)),
            }
        })
    }
}

/// Validates `drop_series[index]`.
fn matcher(index: usize, config: MatcherConfig) -> Result<Matcher, Error> {
    let key = format!("drop_series[{index}]");
    if !is_valid_label_name(&config.label) {
        return Err(Error::config(format!(
            "{key}.label: invalid label name {:?}",
            config.label
        )));
    }
    let (value, matches_absent) = match (config.value, config.regex) {
        (Some(value), None) => {
            let empty = value.is_empty();
            (ValueMatch::Equal(value), empty)
        }
        (None, Some(regex)) => {
            let re = anchored(&format!("{key}.regex"), &regex)?;
            let empty = re.is_match("");
            (ValueMatch::Regex(re, SymbolMemo::new()), empty)
        }
        _ => {
            return Err(Error::config(format!("{key}: set exactly one of value or regex")));
        }
    };
    Ok(Matcher {
        label: config.label,
        value,
        matches_absent,
    })
}

register_plugin!(DropLabels);

#[cfg(test)]
mod tests;
