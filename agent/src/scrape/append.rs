//! Turns one scrape body into samples to queue: parse each line, resolve its series through the
//! cache (on a miss: target labels, `honor_labels`, `metric_relabel_configs`, limits, remote-write
//! preparation), and apply `sample_limit`. As Prometheus `scrapeLoop.append` and
//! `mutateSampleLabels`.

use trawl_model::exposition::{self, Entry, Format, ParseError, Parser};
use trawl_model::labels::{self, Labels};
use trawl_model::relabel::{self, RelabelConfig};

use super::cache::{Lookup, SeriesCache};
use super::filter;
use crate::config::{ScrapeConfig, ScrapeStage};
use crate::plugin::{PluginSet, Stage, StagePlugins};
use crate::remote_write::{PreparedSeries, RemoteWrite, WriteBatch};

/// Prefix given to an exposed label that clashes with a target label (`honor_labels: false`).
pub const EXPORTED_PREFIX: &str = "exported_";

/// Why a scrape's samples were rejected as a whole.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AppendError {
    /// The body is not valid exposition.
    #[error("{0}")]
    Parse(#[from] ParseError),
    /// More samples than `sample_limit` survived metric relabeling.
    #[error("sample limit exceeded ({0})")]
    SampleLimit(usize),
    /// A series has more labels than `label_limit`.
    #[error("label_limit exceeded (metric: {metric}, number of labels: {count}, limit: {limit})")]
    LabelLimit {
        /// Metric name of the series.
        metric: String,
        /// Labels it has.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A label name is longer than `label_name_length_limit` bytes.
    #[error("label_name_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})")]
    LabelNameLength {
        /// Metric name of the series.
        metric: String,
        /// The offending label name.
        name: String,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// A label value is longer than `label_value_length_limit` bytes.
    #[error("label_value_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})")]
    LabelValueLength {
        /// Metric name of the series.
        metric: String,
        /// Name of the label whose value is too long.
        name: String,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// Metric relabeling or a plugin removed `__name__`.
    #[error("__name__ label is missing after metric relabeling")]
    NameLabelMissing,
    /// The plugin symbol table kept starting new generations during the scrape.
    #[error("plugin symbol table was reset during every pass of the scrape")]
    PluginSymbols,
}

/// The per-job settings [`Appender::append`] needs, taken once from the [`ScrapeConfig`].
#[derive(Debug, Clone)]
pub struct AppendOptions {
    /// Keep the exposed labels on conflict instead of renaming them `exported_*`.
    pub honor_labels: bool,
    /// Use timestamps from the exposition when present.
    pub honor_timestamps: bool,
    /// Rules applied to every new series.
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Max samples per scrape after relabeling; 0 = none.
    pub sample_limit: usize,
    /// Max labels per series; 0 = none.
    pub label_limit: usize,
    /// Max bytes of a label name; 0 = none.
    pub label_name_length_limit: usize,
    /// Max bytes of a label value; 0 = none.
    pub label_value_length_limit: usize,
    /// Plugins run on new series after `metric_relabel_configs`.
    pub relabel_plugins: StagePlugins,
    /// Plugins run on every scrape's samples.
    pub filter_plugins: StagePlugins,
}

impl AppendOptions {
    /// The settings of job `cfg`, its plugins taken from `plugins`.
    pub fn new(cfg: &ScrapeConfig, plugins: &PluginSet) -> Self {
        let stage = |want: ScrapeStage, stage: Stage| {
            let names = cfg.plugins.iter().filter(|p| p.stage == want).map(|p| p.name.as_str());
            plugins.stage(stage, names)
        };
        AppendOptions {
            honor_labels: cfg.honor_labels,
            honor_timestamps: cfg.honor_timestamps,
            metric_relabel_configs: cfg.metric_relabel_configs.clone(),
            sample_limit: cfg.sample_limit,
            label_limit: cfg.label_limit,
            label_name_length_limit: cfg.label_name_length_limit,
            label_value_length_limit: cfg.label_value_length_limit,
            relabel_plugins: stage(ScrapeStage::Relabel, Stage::Relabel),
            filter_plugins: stage(ScrapeStage::Filter, Stage::Filter),
        }
    }
}

/// Counts of one scrape, reported as the synthetic `scrape_*` series.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendCounts {
    /// Samples in the body (`scrape_samples_scraped`).
    pub scraped: usize,
    /// Samples left after metric relabeling and plugins (`scrape_samples_post_metric_relabeling`).
    pub post_relabel: usize,
    /// Series not in the cache before this scrape (`scrape_series_added`).
    pub series_added: usize,
    /// Repeated series lines in the body; only the first is kept.
    pub duplicates: usize,
}

/// Appends scrapes of one target: holds what stays the same from scrape to scrape, and buffers
/// reused by every scrape.
#[derive(Debug)]
pub struct Appender {
    /// Labels of the target, added to every series.
    pub target_labels: Labels,
    /// The job's settings.
    pub opts: AppendOptions,
    /// Where new series are prepared for.
    pub remote: RemoteWrite,
    /// Samples waiting for their series' preparation or for the filter plugins.
    deferred: Vec<Deferred>,
    /// The filter stage's buffers.
    filter: filter::Scratch,
}

/// A sample whose queueing waits for its series' preparation or for the filter plugins.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deferred {
    /// Position of the series in the cache.
    pub position: usize,
    /// Timestamp in ms since the epoch.
    pub timestamp_ms: i64,
    /// The value, possibly replaced by a filter plugin.
    pub value: f64,
    /// What filter plugins decided.
    pub fate: Fate,
}

/// What the filter plugins made of a deferred sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Queued with its cached series.
    Cached,
    /// Dropped.
    Dropped,
    /// Queued with the series at this index of the scrape's relabeled series.
    Relabeled(usize),
}

impl Appender {
    /// An appender for the target with `target_labels`, of a job with `opts`, queueing into
    /// `remote`.
    pub fn new(target_labels: Labels, opts: AppendOptions, remote: RemoteWrite) -> Appender {
        Appender {
            target_labels,
            opts,
            remote,
            deferred: Vec::new(),
            filter: filter::Scratch::default(),
        }
    }

    /// Parses `body` and encodes the samples to queue into `batch`, timestamped `timestamp_ms`
    /// (ms since the epoch) unless the exposition carries its own and `honor_timestamps` is set.
    /// On error the caller discards `batch` and fails the scrape; `counts` still holds what was
    /// counted, for the report.
    pub fn append(
        &mut self,
        body: &[u8],
        format: Format,
        timestamp_ms: i64,
        cache: &mut SeriesCache,
        batch: &mut WriteBatch,
        counts: &mut AppendCounts,
    ) -> Result<(), AppendError> {
        // Outcomes cached under other plugin versions (or symbol ids of an older generation)
        // are outdated: start from an empty cache. A generation that ends during the scrape
        // makes the filter stage ask for one more pass.
        for _ in 0..MAX_PASSES {
            let (version, generation) = self.plugin_version();
            cache.sync_version(version);
            *counts = AppendCounts::default();
            match self.append_pass(body, format, timestamp_ms, generation, cache, batch, counts) {
                // The cached symbol ids are of an older generation: prepare every series again.
                Err(Pass::Stale) => cache.truncate(0),
                Err(Pass::Failed(error)) => return Err(error),
                Ok(()) => return Ok(()),
            }
        }
        Err(AppendError::PluginSymbols)
    }

    /// A value that changes when any plugin whose outcome the cache holds is hot-reloaded, and
    /// with filter plugins, the symbol generation the cached ids belong to.
    fn plugin_version(&self) -> (u64, u32) {
        let opts = &self.opts;
        let generation = match opts.filter_plugins.host() {
            Some(host) => host.symbols().lock().generation(),
            None => 0,
        };
        let version = [
            opts.relabel_plugins.version(),
            opts.filter_plugins.version(),
            self.remote.plugins_version(),
            u64::from(generation),
        ]
        .iter()
        .fold(0u64, |acc, v| acc.wrapping_mul(1_000_003).wrapping_add(*v));
        (version, generation)
    }

    #[allow(clippy::too_many_arguments)]
    fn append_pass(
        &mut self,
        body: &[u8],
        format: Format,
        timestamp_ms: i64,
        generation: u32,
        cache: &mut SeriesCache,
        batch: &mut WriteBatch,
        counts: &mut AppendCounts,
    ) -> Result<(), Pass> {
        let filtering = !self.opts.filter_plugins.is_empty();
        let first_new = cache.len();
        let mut pending: Vec<(usize, Labels)> = Vec::new();
        let mut deferred = std::mem::take(&mut self.deferred);
        deferred.clear();
        if cache.is_empty() {
            // Every series is new: room for all of them at once rather than copies at every
            // doubling. Sample lines only: node_exporter has as many `# HELP`/`# TYPE` lines as
            // samples, which would double the reservation (`commit` gives back what the
            // series relabeling dropped took).
            let samples = sample_lines(body).min(MAX_RESERVED_SERIES);
            cache.reserve(samples);
            deferred.reserve(samples);
        }
        let this = &*self;
        let opts = &this.opts;
        let mut queue = Queue::new(opts.sample_limit);
        let parsed = (|| {
            for entry in Parser::new(body, format) {
                let Entry::Sample(sample) = entry? else { continue };
                counts.scraped += 1;
                let explicit = opts.honor_timestamps && sample.timestamp_ms.is_some();
                let timestamp_ms = match sample.timestamp_ms {
                    Some(ts) if explicit => ts,
                    _ => timestamp_ms,
                };
                let position = match cache.lookup(sample.series) {
                    Lookup::Duplicate => {
                        counts.duplicates += 1;
                        continue;
                    }
                    Lookup::Hit(position) => {
                        cache.entry_mut(position).set_explicit_timestamp(explicit);
                        position
                    }
                    Lookup::Miss(key) => {
                        let lset = this.relabel(sample.series, format)?;
                        let position = cache.insert(key, None, explicit);
                        let Some(lset) = lset else { continue };
                        pending.push((position, lset));
                        deferred.push(Deferred::new(position, timestamp_ms, sample.value));
                        if pending.len() == PREPARE_CHUNK {
                            this.prepare(&mut pending, filtering, cache, counts)?;
                        }
                        continue;
                    }
                };
                if filtering {
                    deferred.push(Deferred::new(position, timestamp_ms, sample.value));
                } else if let Some(series) = &cache.entry(position).series {
                    queue.push(batch, series, timestamp_ms, sample.value);
                }
            }
            // The last new series: relabel plugins, limits, remote-write preparation.
            this.prepare(&mut pending, filtering, cache, counts)
        })();
        let result = match parsed {
            Err(error) => {
                // Series inserted but never prepared must not stay cached as dropped.
                cache.truncate(first_new);
                Err(Pass::Failed(error))
            }
            Ok(()) => self.queue_deferred(&mut deferred, generation, cache, batch, queue, counts),
        };
        // With filter plugins every scrape defers all its samples: keep the buffer. Without,
        // only new series wait, rarely after the first scrape: free it.
        if filtering {
            self.deferred = deferred;
        }
        result
    }

    /// Runs the filter plugins (if any) on the deferred samples, then queues the survivors;
    /// fails when the scrape is over `sample_limit`.
    fn queue_deferred(
        &mut self,
        deferred: &mut [Deferred],
        generation: u32,
        cache: &SeriesCache,
        batch: &mut WriteBatch,
        mut queue: Queue,
        counts: &mut AppendCounts,
    ) -> Result<(), Pass> {
        // Filter plugins see every sample of the scrape, then the survivors are queued.
        let relabeled = self.filter.run(
            &self.opts.filter_plugins,
            generation,
            deferred,
            cache,
            &self.target_labels,
        )?;
        let relabeled = self.remote.prepare_series(relabeled, &self.target_labels);
        for d in deferred.iter() {
            let series = match d.fate {
                Fate::Cached => cache.entry(d.position).series.as_ref(),
                Fate::Dropped => None,
                Fate::Relabeled(i) => relabeled.get(i),
            };
            if let Some(series) = series {
                queue.push(batch, series, d.timestamp_ms, d.value);
            }
        }
        counts.post_relabel = queue.pushed;
        if queue.over_limit() {
            return Err(Pass::Failed(AppendError::SampleLimit(self.opts.sample_limit)));
        }
        Ok(())
    }

    /// A new series' labels after target labels and `metric_relabel_configs`; `None` = dropped.
    fn relabel(&self, series: &[u8], format: Format) -> Result<Option<Labels>, AppendError> {
        let exposed = exposition::parse_series(series, format)?;
        let mut lset = merge_target_labels(exposed, &self.target_labels, self.opts.honor_labels);
        let kept = relabel::process(&self.opts.metric_relabel_configs, &mut lset) && !lset.is_empty();
        Ok(kept.then_some(lset))
    }

    /// Prepares (and takes out of `pending`) new series: cache positions with their labels
    /// after metric relabeling. Runs the relabel-stage plugins, the checks Prometheus makes after
    /// relabeling, remote-write preparation, and symbol ids for filter plugins.
    fn prepare(
        &self,
        pending: &mut Vec<(usize, Labels)>,
        filtering: bool,
        cache: &mut SeriesCache,
        counts: &mut AppendCounts,
    ) -> Result<(), AppendError> {
        if pending.is_empty() {
            return Ok(());
        }
        let (positions, mut sets): (Vec<usize>, Vec<Option<Labels>>) =
            pending.drain(..).map(|(p, l)| (p, Some(l))).unzip();
        // Relabel plugins see the series after metric_relabel_configs, as a user's own rules.
        self.opts.relabel_plugins.apply(&mut sets, &self.target_labels);
        for lset in sets.iter().flatten() {
            if !lset.contains(labels::METRIC_NAME) {
                return Err(AppendError::NameLabelMissing);
            }
            check_label_limits(lset, &self.opts)?;
        }
        let (positions, kept): (Vec<usize>, Vec<Labels>) = positions
            .into_iter()
            .zip(sets)
            .filter_map(|(position, lset)| Some((position, lset?)))
            .unzip();
        counts.series_added += kept.len();
        let symbols = match self.opts.filter_plugins.host() {
            Some(host) if filtering => filter::intern(host, &kept),
            _ => Vec::new(),
        };
        let mut symbols = symbols.into_iter();
        let prepared = self.remote.prepare_series(kept, &self.target_labels);
        for (position, series) in positions.into_iter().zip(prepared) {
            let entry = cache.entry_mut(position);
            entry.series = Some(series);
            entry.symbols = symbols.next().map(Box::new);
        }
        Ok(())
    }
}

/// New series prepared together: enough to amortise a plugin call, few enough that a first
/// scrape holds at most this many label sets at once, however many series the target has.
pub(super) const PREPARE_CHUNK: usize = 256;

/// Most series reserved for a first scrape from its sample lines, so a body of a billion `a 1`
/// lines cannot make the agent reserve gigabytes; a larger target grows as it is read.
const MAX_RESERVED_SERIES: usize = 1 << 20;

/// Lines of an exposition that can hold a sample: neither empty nor a `#` comment, `# HELP`,
/// `# TYPE` or `# EOF` line.
fn sample_lines(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .filter(|line| line.first().is_some_and(|&b| b != b'#'))
        .count()
}

/// Passes of [`Appender::append`] before giving up on a symbol table that keeps starting new
/// generations (only a flood of new strings from other targets can cause it).
const MAX_PASSES: usize = 3;

/// Why one pass of [`Appender::append`] ended early.
pub(super) enum Pass {
    /// The scrape fails.
    Failed(AppendError),
    /// The plugin symbol table started a new generation: the pass runs again on an empty cache.
    Stale,
}

impl From<AppendError> for Pass {
    fn from(error: AppendError) -> Self {
        Pass::Failed(error)
    }
}

impl Deferred {
    fn new(position: usize, timestamp_ms: i64, value: f64) -> Deferred {
        Deferred {
            position,
            timestamp_ms,
            value,
            fate: Fate::Cached,
        }
    }
}

/// Queues samples and counts them against `sample_limit`; past it, samples are counted (as
/// Prometheus does, so the report shows the real size) but not queued.
struct Queue {
    limit: usize,
    pushed: usize,
}

impl Queue {
    fn new(limit: usize) -> Queue {
        Queue { limit, pushed: 0 }
    }

    fn push(&mut self, batch: &mut WriteBatch, series: &PreparedSeries, timestamp_ms: i64, value: f64) {
        self.pushed += 1;
        if !self.over_limit() {
            batch.push(series, timestamp_ms, value);
        }
    }

    fn over_limit(&self) -> bool {
        self.limit > 0 && self.pushed > self.limit
    }
}

/// Adds the target's labels to an exposed series, as Prometheus `mutateSampleLabels`: with
/// `honor_labels` exposed labels win; otherwise target labels win and each clashing exposed
/// label is kept as `exported_<name>` (prefix repeated until free, shortest names first).
pub fn merge_target_labels(exposed: Labels, target: &Labels, honor_labels: bool) -> Labels {
    let mut lset = exposed.clone();
    if honor_labels {
        for l in target {
            if !exposed.contains(&l.name) {
                lset.set(l.name.clone(), l.value.clone());
            }
        }
        return lset;
    }
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for l in target {
        let existing = exposed.get(&l.name);
        if !existing.is_empty() {
            conflicts.push((l.name.clone(), existing.to_owned()));
        }
        lset.set(l.name.clone(), l.value.clone());
    }
    conflicts.sort_by_key(|(name, _)| name.len());
    for i in 0..conflicts.len() {
        let mut name = conflicts[i].0.clone();
        loop {
            name = format!("{EXPORTED_PREFIX}{name}");
            let taken =
                exposed.contains(&name) || target.contains(&name) || conflicts[..i].iter().any(|(n, _)| *n == name);
            if !taken {
                break;
            }
        }
        conflicts[i].0 = name;
    }
    for (name, value) in conflicts {
        lset.set(name, value);
    }
    lset
}

fn check_label_limits(lset: &Labels, opts: &AppendOptions) -> Result<(), AppendError> {
    let metric = || lset.metric_name().to_owned();
    if opts.label_limit > 0 && lset.len() > opts.label_limit {
        return Err(AppendError::LabelLimit {
            metric: metric(),
            count: lset.len(),
            limit: opts.label_limit,
        });
    }
    for l in lset {
        if opts.label_name_length_limit > 0 && l.name.len() > opts.label_name_length_limit {
            return Err(AppendError::LabelNameLength {
                metric: metric(),
                name: l.name.clone(),
                limit: opts.label_name_length_limit,
            });
        }
        if opts.label_value_length_limit > 0 && l.value.len() > opts.label_value_length_limit {
            return Err(AppendError::LabelValueLength {
                metric: metric(),
                name: l.name.clone(),
                limit: opts.label_value_length_limit,
            });
        }
    }
    Ok(())
}
