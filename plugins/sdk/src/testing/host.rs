//! The host's half of the protocol, as the agent does it: intern strings, send the guest the
//! symbols it lacks, then check the outcome and apply it. Stricter than it needs to be where
//! that catches SDK bugs (e.g. removing a label the series does not have).

use super::{HarnessError, Output, Sample, Verdict};
use crate::plugin::{Stage, is_valid_label_name};
use crate::symbols::METRIC_NAME;
use crate::wire;
use std::collections::{BTreeMap, HashMap};

/// Host symbol table: the guest's table is always its prefix of `sent` strings.
#[derive(Debug, Default)]
pub(super) struct Host {
    strings: Vec<String>,
    ids: HashMap<String, u32>,
    sent: usize,
}

impl Host {
    /// Number of symbols the guest has.
    pub(super) fn sent(&self) -> usize {
        self.sent
    }

    /// A new generation, as the agent starts when its table grows too big: both tables empty,
    /// ids assigned afresh in the order later batches use strings.
    pub(super) fn reset(&mut self) {
        self.strings.clear();
        self.ids.clear();
        self.sent = 0;
    }

    fn intern(&mut self, string: &str) -> u32 {
        if let Some(&id) = self.ids.get(string) {
            return id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        self.strings.push(string.to_owned());
        self.ids.insert(string.to_owned(), id);
        id
    }

    /// The WIT batch for `samples` (normalized: sorted, valid, with `__name__`), with the
    /// columns `needs` asks for. Marks the delta as sent.
    pub(super) fn encode(
        &mut self,
        stage: Stage,
        needs: wire::Needs,
        samples: &[Sample],
        target: &[(String, String)],
    ) -> wire::Batch {
        let mut labels = Vec::new();
        let mut offsets = vec![0];
        for sample in samples {
            for (name, value) in &sample.labels {
                labels.push(self.intern(name));
                labels.push(self.intern(value));
            }
            offsets.push(u32::try_from(labels.len()).unwrap_or(u32::MAX));
        }
        let filter = stage == Stage::Filter;
        let values = if filter && needs.contains(wire::Needs::VALUES) {
            samples.iter().map(|s| s.value).collect()
        } else {
            Vec::new()
        };
        let timestamps_ms = if filter && needs.contains(wire::Needs::TIMESTAMPS) {
            samples.iter().map(|s| s.timestamp_ms.unwrap_or(0)).collect()
        } else {
            Vec::new()
        };
        let mut target_labels = Vec::new();
        if needs.contains(wire::Needs::TARGET_LABELS) {
            for (name, value) in target {
                target_labels.push(self.intern(name));
                target_labels.push(self.intern(value));
            }
        }
        let symbol_base = u32::try_from(self.sent).unwrap_or(u32::MAX);
        let new_symbols = self.strings[self.sent..].to_vec();
        self.sent = self.strings.len();
        wire::Batch {
            stage: match stage {
                Stage::Relabel => wire::Stage::Relabel,
                Stage::Filter => wire::Stage::Filter,
                Stage::Write => wire::Stage::Write,
            },
            symbol_base,
            new_symbols,
            labels,
            offsets,
            values,
            timestamps_ms,
            target_labels,
        }
    }

    /// Checks `outcome` against the batch of normalized `samples` and applies it.
    ///
    /// Errors: [`HarnessError::InvalidOutcome`] saying which rule of `wit/plugin.wit` the
    /// outcome breaks.
    pub(super) fn apply(
        &mut self,
        stage: Stage,
        samples: &[Sample],
        outcome: wire::Outcome,
    ) -> Result<Vec<Output>, HarnessError> {
        let invalid = HarnessError::InvalidOutcome;
        if outcome.verdicts.len() != samples.len() {
            return Err(invalid(format!(
                "{} verdicts for {} series",
                outcome.verdicts.len(),
                samples.len()
            )));
        }
        let verdicts = outcome
            .verdicts
            .iter()
            .enumerate()
            .map(|(index, verdict)| match verdict {
                0 => Ok(Verdict::Keep),
                1 => Ok(Verdict::Drop),
                2 => Ok(Verdict::Modified),
                other => Err(invalid(format!("verdict {other} for series {index}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let modified = |series: u32| -> Result<usize, HarnessError> {
            let index = series as usize;
            match verdicts.get(index) {
                Some(Verdict::Modified) => Ok(index),
                Some(other) => Err(invalid(format!("edit of series {index}, whose verdict is {other:?}"))),
                None => Err(invalid(format!(
                    "edit of series {index} in a batch of {}",
                    verdicts.len()
                ))),
            }
        };
        let mut labels: Vec<BTreeMap<String, String>> =
            samples.iter().map(|s| s.labels.iter().cloned().collect()).collect();
        let mut values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        for edit in &outcome.remove_labels {
            let index = modified(edit.series)?;
            let name = self.resolve(edit.name)?;
            if name == METRIC_NAME {
                return Err(invalid(format!("series {index}: __name__ removed")));
            }
            if labels[index].remove(name).is_none() {
                return Err(invalid(format!(
                    "series {index}: removes {name:?}, which it does not have"
                )));
            }
        }
        for edit in &outcome.set_labels {
            let index = modified(edit.series)?;
            let name = self.text(&edit.name)?;
            let value = self.text(&edit.value)?;
            if !is_valid_label_name(&name) {
                return Err(invalid(format!("series {index}: invalid label name {name:?}")));
            }
            if name == METRIC_NAME && value.is_empty() {
                return Err(invalid(format!("series {index}: __name__ set empty")));
            }
            if value.is_empty() {
                labels[index].remove(&name);
            } else {
                labels[index].insert(name, value);
            }
        }
        for edit in &outcome.set_values {
            let index = modified(edit.series)?;
            if stage != Stage::Filter {
                return Err(invalid(format!("series {index}: set-value in the {stage} stage")));
            }
            values[index] = edit.value;
        }
        Ok(samples
            .iter()
            .zip(verdicts)
            .zip(labels.into_iter().zip(values))
            .map(|((sample, verdict), (labels, value))| Output {
                verdict,
                labels: labels.into_iter().collect(),
                value,
                timestamp_ms: sample.timestamp_ms,
            })
            .collect())
    }

    /// A symbol the guest has; created strings are interned like the agent does.
    fn resolve(&self, id: u32) -> Result<&str, HarnessError> {
        match self.strings.get(id as usize) {
            Some(string) if (id as usize) < self.sent => Ok(string),
            _ => Err(HarnessError::InvalidOutcome(format!(
                "symbol {id} is not among the {} the guest has",
                self.sent
            ))),
        }
    }

    fn text(&mut self, text: &wire::Text) -> Result<String, HarnessError> {
        match text {
            wire::Text::Symbol(id) => self.resolve(*id).map(str::to_owned),
            wire::Text::New(string) => {
                self.intern(string);
                Ok(string.clone())
            }
        }
    }
}

/// `pairs` as the agent sends labels: sorted by name, empty values left out (Prometheus treats
/// them as absent). Errors on a duplicate or invalid name.
pub(super) fn normalize(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut sorted = BTreeMap::new();
    for (name, value) in pairs {
        if !is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if sorted.insert(name, value).is_some() {
            return Err(format!("label {name} given twice"));
        }
    }
    Ok(sorted
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect())
}
