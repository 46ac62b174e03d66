//! `add-labels`: adds static labels (cluster, region, …) and renames labels.
//!
//! Config (at least one of `labels` or `rename`):
//! ```json
//! {"labels": {"cluster": "eu1"}, "rename": {"pod_name": "pod"}, "keep_existing": false}
//! ```
//! Renames run first: a series with `pod_name` gets `pod` with its value (replacing any `pod`
//! it had) and loses `pod_name`. Then every static label is set, replacing the series' value
//! unless `keep_existing` is true. Best in the `relabel` or `write` stage, where the outcome is
//! cached per series.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use trawl_plugin_sdk::{Batch, Error, Plugin, is_valid_label_name, parse_config, register_plugin};

/// The plugin's config, as documented in the crate docs and README.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default)]
    keep_existing: bool,
}

/// The plugin: see the crate docs.
#[derive(Debug)]
pub struct AddLabels {
    labels: Vec<(String, String)>,
    rename: Vec<(String, String)>,
    keep_existing: bool,
}

impl Plugin for AddLabels {
    const NAME: &'static str = "add-labels";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: serde_json::Value) -> Result<Self, Error> {
        let config: Config = parse_config(config)?;
        if config.labels.is_empty() && config.rename.is_empty() {
            return Err(Error::config("nothing to add: set labels or rename"));
        }
        for (name, value) in &config.labels {
            check_name("labels", name)?;
            if value.is_empty() {
                return Err(Error::config(format!(
                    "labels.{name}: empty value (an empty value removes a label; use drop-labels)"
                )));
            }
        }
        let mut targets = BTreeSet::new();
        for (from, to) in &config.rename {
            check_name("rename", from)?;
            check_name(&format!("rename.{from}"), to)?;
            if from == to {
                return Err(Error::config(format!("rename.{from}: renames to itself")));
            }
            if config.rename.contains_key(to) {
                return Err(Error::config(format!(
                    "rename.{from}: target {to:?} is also renamed; chains are ambiguous"
                )));
            }
            if !targets.insert(to) {
                return Err(Error::config(format!("rename: several labels renamed to {to:?}")));
            }
            if config.labels.contains_key(to) {
                return Err(Error::config(format!(
                    "rename.{from}: target {to:?} is also a static label"
                )));
            }
        }
        Ok(AddLabels {
            labels: config.labels.into_iter().collect(),
            rename: config.rename.into_iter().collect(),
            keep_existing: config.keep_existing,
        })
    }

    fn process(&mut self, batch: &mut Batch<'_>) -> Result<(), Error> {
        for series in batch.series() {
            let index = series.index();
            for (from, to) in &self.rename {
                if let Some(value) = series.get(from) {
                    batch.set_label(index, to, value)?;
                    batch.remove_label(index, from)?;
                }
            }
            for (name, value) in &self.labels {
                if self.keep_existing && series.get(name).is_some() {
                    continue;
                }
                batch.set_label(index, name, value)?;
            }
        }
        Ok(())
    }
}

/// A label name this plugin may write: valid, and not `__name__` (renaming every metric is a
/// job for `metric_relabel_configs`).
fn check_name(key: &str, name: &str) -> Result<(), Error> {
    if name == "__name__" {
        return Err(Error::config(format!("{key}: __name__ cannot be set or renamed")));
    }
    if !is_valid_label_name(name) {
        return Err(Error::config(format!("{key}: invalid label name {name:?}")));
    }
    Ok(())
}

register_plugin!(AddLabels);

#[cfg(test)]
mod tests;
