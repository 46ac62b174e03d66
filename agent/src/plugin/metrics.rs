//! `trawl_agent_plugin_*` metrics: families registered once per registry, and per plugin the
//! handles of its series, pre-initialised at load (every stage, reason and result at zero).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::Stage;
use super::failure::Failure;

/// Buckets of `call_duration_seconds`: 10 µs (a small batch) to 1 s (far past any sane timeout).
const CALL_DURATION_BUCKETS: [f64; 14] = [
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    plugin: String,
    stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    plugin: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    plugin: String,
    result: String,
}

fn new_call_duration_histogram() -> Histogram {
    Histogram::new(CALL_DURATION_BUCKETS)
}

/// The plugin metric families; cheap to clone (shared).
#[derive(Clone)]
pub(super) struct PluginFamilies {
    calls: Family<StageLabels, Counter>,
    series: Family<StageLabels, Counter>,
    dropped: Family<StageLabels, Counter>,
    modified: Family<StageLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    instantiations: Family<PluginLabels, Counter>,
    reloads: Family<ResultLabels, Counter>,
    breaker_open: Family<PluginLabels, Gauge>,
    log_lines_dropped: Family<PluginLabels, Counter>,
    call_duration: Family<StageLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for PluginFamilies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginFamilies").finish_non_exhaustive()
    }
}

impl PluginFamilies {
    /// Registers the families under `trawl_agent_plugin`: call once per registry.
    pub(super) fn register(registry: &mut Registry) -> PluginFamilies {
        let m = PluginFamilies {
            calls: Family::default(),
            series: Family::default(),
            dropped: Family::default(),
            modified: Family::default(),
            errors: Family::default(),
            instantiations: Family::default(),
            reloads: Family::default(),
            breaker_open: Family::default(),
            log_lines_dropped: Family::default(),
            call_duration: Family::new_with_constructor(new_call_duration_histogram),
        };
        let r = registry.sub_registry_with_prefix("trawl_agent_plugin");
        r.register(
            "calls",
            "Batches handed to the plugin, including skipped and failed calls.",
            m.calls.clone(),
        );
        r.register("series", "Series sent to the plugin.", m.series.clone());
        r.register(
            "series_dropped",
            "Series dropped by the plugin, or by its fail_closed policy.",
            m.dropped.clone(),
        );
        r.register(
            "series_modified",
            "Series whose labels or value the plugin changed.",
            m.modified.clone(),
        );
        r.register(
            "errors",
            "Failed calls by reason (timeout, memory, trap, invalid_output, plugin_error, breaker_open); \
             the plugin's on_error policy decided the batch.",
            m.errors.clone(),
        );
        r.register(
            "instantiations",
            "Instances created: at load, after a trap and after a reload.",
            m.instantiations.clone(),
        );
        r.register(
            "reloads",
            "Hot reloads of the plugin's file, by result.",
            m.reloads.clone(),
        );
        r.register(
            "breaker_open",
            "1 while the plugin's circuit breaker is open or half-open.",
            m.breaker_open.clone(),
        );
        r.register(
            "log_lines_dropped",
            "Log lines of the plugin dropped by the rate limit.",
            m.log_lines_dropped.clone(),
        );
        r.register_with_unit(
            "call_duration",
            "Duration of one call, including symbol sync and validation.",
            Unit::Seconds,
            m.call_duration.clone(),
        );
        m
    }

    /// The handles of plugin `name` (its config name), with every series created at zero.
    pub(super) fn plugin(&self, name: &str) -> PluginMetrics {
        let plugin = PluginLabels {
            plugin: name.to_owned(),
        };
        let stage = |s: Stage| StageLabels {
            plugin: name.to_owned(),
            stage: s.as_str().to_owned(),
        };
        let per_stage = |f: &Family<StageLabels, Counter>| Stage::ALL.map(|s| f.get_or_create_owned(&stage(s)));
        let reason = |r: &str| ReasonLabels {
            plugin: name.to_owned(),
            reason: r.to_owned(),
        };
        let result = |r: &str| ResultLabels {
            plugin: name.to_owned(),
            result: r.to_owned(),
        };
        PluginMetrics {
            calls: per_stage(&self.calls),
            series: per_stage(&self.series),
            dropped: per_stage(&self.dropped),
            modified: per_stage(&self.modified),
            errors: Failure::REASONS.map(|r| self.errors.get_or_create_owned(&reason(r))),
            instantiations: self.instantiations.get_or_create_owned(&plugin),
            reload_success: self.reloads.get_or_create_owned(&result("success")),
            reload_failure: self.reloads.get_or_create_owned(&result("failure")),
            breaker_open: self.breaker_open.get_or_create_owned(&plugin),
            log_lines_dropped: self.log_lines_dropped.get_or_create_owned(&plugin),
            call_duration: Stage::ALL.map(|s| self.call_duration.get_or_create_owned(&stage(s))),
        }
    }
}

/// One plugin's series; cheap to clone (every handle is shared).
#[derive(Clone, Debug)]
pub(super) struct PluginMetrics {
    pub(super) calls: [Counter; 3],
    pub(super) series: [Counter; 3],
    pub(super) dropped: [Counter; 3],
    pub(super) modified: [Counter; 3],
    errors: [Counter; 6],
    pub(super) instantiations: Counter,
    pub(super) reload_success: Counter,
    pub(super) reload_failure: Counter,
    pub(super) breaker_open: Gauge,
    pub(super) log_lines_dropped: Counter,
    pub(super) call_duration: [Histogram; 3],
}

impl PluginMetrics {
    /// Index of `stage` in the per-stage arrays.
    pub(super) fn stage(stage: Stage) -> usize {
        match stage {
            Stage::Relabel => 0,
            Stage::Filter => 1,
            Stage::Write => 2,
        }
    }

    /// Counts a failed call.
    pub(super) fn error(&self, failure: &Failure) {
        let reason = failure.reason();
        if let Some(i) = Failure::REASONS.iter().position(|r| *r == reason) {
            self.errors[i].inc();
        }
    }
}
