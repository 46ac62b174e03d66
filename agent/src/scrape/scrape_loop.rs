//! The scrape loop of one target: scrapes at a fixed offset inside the interval, appends what
//! it parsed, reports the synthetic series, and writes staleness markers for series that vanish,
//! failed scrapes and removed targets. As Prometheus `scrapeLoop`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;
use tracing::debug;
use trawl_model::labels::{self, Labels};

use super::append::{AppendCounts, AppendError, Appender};
use super::cache::SeriesCache;
use super::metrics::ScrapeMetrics;
use super::scraper::Scraper;
use super::target::Target;
use crate::remote_write::PreparedSeries;

/// Value of a staleness marker: a NaN no exposition produces, as Prometheus `value.StaleNaN`.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// Names of the synthetic series every scrape reports, in [`Report`] order.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// How a scrape loop is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The target is gone: mark all its series stale.
    Removed,
    /// The agent is shutting down or the loop is replaced by an identical one: no markers, the
    /// series go on after the restart.
    Quiet,
}

/// When a new loop scrapes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstScrape {
    /// At the target's phase, as Prometheus: the pool's first targets, so a start does not
    /// scrape everything at once.
    AtPhase,
    /// Within [`PROMPT_SPREAD`] (spread by the target's hash), then at the phase: targets that
    /// appear while the pool runs (a new pod) are scraped without waiting up to an interval.
    Prompt,
}

/// The window prompt first scrapes are spread over (capped by the interval).
pub const PROMPT_SPREAD: Duration = Duration::from_secs(1);

/// An error that fails every scrape of a pool while set (e.g. `target_limit` exceeded).
pub type ForcedError = Arc<std::sync::RwLock<Option<String>>>;

/// A running scrape loop's handle, held by its scrape pool.
#[derive(Debug)]
pub struct LoopHandle {
    stop: oneshot::Sender<Stop>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopHandle {
    /// Tells the loop to stop and waits until it has queued its last samples.
    pub async fn stop(self, how: Stop) {
        let _ = self.stop.send(how);
        let _ = self.task.await;
    }
}

/// One target's scrape loop.
pub struct ScrapeLoop {
    target: Arc<Target>,
    scraper: Scraper,
    appender: Appender,
    metrics: ScrapeMetrics,
    forced_error: ForcedError,
    cache: SeriesCache,
    report: [PreparedSeries; 5],
    last_timestamp_ms: i64,
    /// Protobuf bytes of the last scrape's largest chunk, to size the next one's.
    last_chunk_bytes: usize,
}

impl ScrapeLoop {
    /// A loop for `target`; `appender.target_labels` must be the target's labels.
    pub fn new(
        target: Arc<Target>,
        scraper: Scraper,
        appender: Appender,
        metrics: ScrapeMetrics,
        forced_error: ForcedError,
    ) -> Self {
        let report = REPORT_SERIES.map(|name| {
            let mut lset: Labels = target.labels.clone();
            lset.set(labels::METRIC_NAME.to_owned(), name.to_owned());
            lset
        });
        let report = appender
            .remote
            .prepare_series(report.into(), &target.labels)
            .try_into()
            .expect("one prepared series per report series");
        ScrapeLoop {
            target,
            scraper,
            appender,
            metrics,
            forced_error,
            cache: SeriesCache::default(),
            report,
            last_timestamp_ms: 0,
            last_chunk_bytes: 0,
        }
    }

    /// Starts the loop on the current tokio runtime. `offset_seed` spreads the agent's
    /// scrapes (Prometheus derives it from the hostname and external labels). With `first`
    /// [`FirstScrape::Prompt`], the target is scraped within [`PROMPT_SPREAD`] before it
    /// settles on its phase.
    pub fn spawn(self, offset_seed: u64, first: FirstScrape) -> LoopHandle {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run(offset_seed, first, stopped));
        LoopHandle { stop, task }
    }

    async fn run(mut self, offset_seed: u64, first: FirstScrape, mut stopped: oneshot::Receiver<Stop>) {
        let Err(how) = self.scrape_on_schedule(offset_seed, first, &mut stopped).await;
        if how == Stop::Removed {
            self.end_of_run_staleness().await;
        }
    }

    /// Scrapes at the target's phase (after a prompt first scrape if asked) until told to stop.
    async fn scrape_on_schedule(
        &mut self,
        offset_seed: u64,
        first: FirstScrape,
        stopped: &mut oneshot::Receiver<Stop>,
    ) -> Result<Infallible, Stop> {
        let interval = self.target.interval;
        let hash = self.target.hash ^ offset_seed;
        let now = tokio::time::Instant::now();
        let mut phase = offset(interval, hash, SystemTime::now());
        if first == FirstScrape::Prompt {
            let delay = prompt_delay(interval, hash);
            self.scrape_after(stopped, tokio::time::sleep(delay)).await?;
            // A phase less than half an interval after the prompt scrape waits one more interval.
            if phase < delay + interval / 2 {
                phase += interval;
            }
        }
        let mut ticker = tokio::time::interval_at(now + phase, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            self.scrape_after(stopped, ticker.tick()).await?;
        }
    }

    /// Waits for `wake`, then scrapes; `Err` with how to stop when told so first.
    async fn scrape_after<T>(
        &mut self,
        stopped: &mut oneshot::Receiver<Stop>,
        wake: impl Future<Output = T>,
    ) -> Result<(), Stop> {
        tokio::select! {
            how = &mut *stopped => return Err(how.unwrap_or(Stop::Quiet)),
            _ = wake => {}
        }
        tokio::select! {
            how = &mut *stopped => Err(how.unwrap_or(Stop::Quiet)),
            () = self.scrape_and_report() => Ok(()),
        }
    }

    /// One scrape: fetch, append, report, staleness. Queues everything in one append so the
    /// remote-write shards see a scrape as a unit.
    async fn scrape_and_report(&mut self) {
        let start_wall = SystemTime::now();
        let start = Instant::now();
        let timestamp_ms = millis(start_wall).max(self.last_timestamp_ms + 1);
        self.last_timestamp_ms = timestamp_ms;

        // Fetch the body, then parse it against the cache into a batch for remote write. The
        // batch is made after the fetch: scrapes waiting on slow targets hold no chunk buffers.
        // The fetch's state (connect, TLS, HTTP exchange) is boxed for its duration only, so
        // the task of a loop between scrapes stays small.
        let forced = self.forced_error.read().unwrap_or_else(|e| e.into_inner()).clone();
        let fetched = match forced {
            Some(error) => Err(error),
            None => Box::pin(self.scraper.scrape(&self.target.url, self.target.timeout))
                .await
                .map_err(|e| e.to_string()),
        };
        let mut batch = self.appender.remote.batch(self.last_chunk_bytes);
        self.cache.begin();
        let mut counts = AppendCounts::default();
        let error = match fetched {
            Err(error) => Some(error),
            Ok((format, body)) => {
                let result =
                    self.appender
                        .append(&body, format, timestamp_ms, &mut self.cache, &mut batch, &mut counts);
                if matches!(result, Err(AppendError::SampleLimit(_))) {
                    self.metrics.sample_limit_exceeded();
                }
                result.err().map(|e| e.to_string())
            }
        };
        // A failed scrape delivers nothing and marks every series of the last one stale.
        if error.is_some() {
            batch = self.appender.remote.batch(0);
            self.cache.fail(|series| batch.push(series, timestamp_ms, STALE_NAN));
        } else {
            self.cache.commit(|series| batch.push(series, timestamp_ms, STALE_NAN));
        }

        let duration = start.elapsed();
        let up = if error.is_some() { 0.0 } else { 1.0 };
        let values = [
            up,
            duration.as_secs_f64(),
            counts.scraped as f64,
            counts.post_relabel as f64,
            counts.series_added as f64,
        ];
        for (series, value) in self.report.iter().zip(values) {
            batch.push(series, timestamp_ms, value);
        }

        self.metrics.observe(&counts, error.is_some(), duration);
        if let Some(error) = &error {
            debug!(message = "Scrape failed.", target = %self.target.url, %error);
        }
        self.target.report(start_wall, duration, error);
        self.last_chunk_bytes = batch.chunk_bytes();
        self.appender.remote.append(batch).await;
    }

    /// The target is gone: every live series and the report series get a staleness marker.
    async fn end_of_run_staleness(&mut self) {
        let timestamp_ms = millis(SystemTime::now()).max(self.last_timestamp_ms + 1);
        let mut batch = self.appender.remote.batch(0);
        self.cache.begin();
        self.cache.fail(|series| batch.push(series, timestamp_ms, STALE_NAN));
        for series in &self.report {
            batch.push(series, timestamp_ms, STALE_NAN);
        }
        self.appender.remote.append(batch).await;
    }
}

/// Delay before the first scrape, so a target is scraped at the same phase of every interval,
/// as Prometheus `Target.offset`: `(hash mod interval)` past the last interval boundary.
fn offset(interval: Duration, hash: u64, now: SystemTime) -> Duration {
    let interval_ns = interval.as_nanos().max(1);
    let now_ns = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let base = interval_ns - now_ns % interval_ns;
    let mut next = base + (hash as u128 % interval_ns);
    if next > interval_ns {
        next -= interval_ns;
    }
    Duration::from_nanos(next as u64)
}

/// Delay of a prompt first scrape: `hash mod min(interval, PROMPT_SPREAD)`.
fn prompt_delay(interval: Duration, hash: u64) -> Duration {
    let window = interval.min(PROMPT_SPREAD).as_nanos().max(1);
    Duration::from_nanos((hash as u128 % window) as u64)
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_puts_every_scrape_at_the_same_phase() {
        let interval = Duration::from_secs(10);
        for now_s in [0u64, 3, 17, 1_700_000_001] {
            for hash in [0u64, 4_000_000_000, u64::MAX] {
                let now = UNIX_EPOCH + Duration::from_secs(now_s);
                let d = offset(interval, hash, now);
                assert!(d > Duration::ZERO && d <= interval);
                let phase = (now + d).duration_since(UNIX_EPOCH).unwrap().as_nanos() % interval.as_nanos();
                assert_eq!(phase, hash as u128 % interval.as_nanos());
            }
        }
    }

    #[test]
    fn prompt_delay_stays_inside_the_spread_and_the_interval() {
        for hash in [0u64, 999_999_999, 1_000_000_001, u64::MAX] {
            assert!(prompt_delay(Duration::from_secs(15), hash) < PROMPT_SPREAD);
            assert!(prompt_delay(Duration::from_millis(200), hash) < Duration::from_millis(200));
        }
        assert_eq!(
            prompt_delay(Duration::from_secs(15), 1_000_000_001),
            Duration::from_nanos(1)
        );
    }

    #[test]
    fn stale_nan_is_not_a_parsed_nan() {
        assert!(STALE_NAN.is_nan());
        assert_ne!(STALE_NAN.to_bits(), f64::NAN.to_bits());
        assert_ne!(STALE_NAN.to_bits(), 0x7ff8_0000_0000_0001);
    }
}
