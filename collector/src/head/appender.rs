//! Appending one write request, as Prometheus `tsdb/head_append.go` `headAppender`: each sample is
//! checked against the head and its series (out of bounds, out of order, duplicate, exact
//! duplicate), accepted samples are buffered, and [`HeadAppender::commit`] logs new series and
//! samples to the WAL *before* applying them to memory, so an acknowledged request is in the WAL.

use std::sync::MutexGuard;

use trawl_tsdb::wal::record::{SampleRecord, encode_samples, encode_series};

use super::index::hash_labels;
use super::{Head, HeadError, HeadState, SeriesInput};

/// Scratch buffers above this many bytes are released after a commit, so one huge request does
/// not pin its size for the life of the process.
const MAX_KEPT_SCRATCH: usize = 16 * 1024 * 1024;

/// What happened to the samples of one request. A sample counts in exactly one field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Samples stored (logged and applied).
    pub appended: u64,
    /// Samples older than their series' newest sample, that one possibly from the same request
    /// (Prometheus `ErrOutOfOrderSample`).
    pub out_of_order: u64,
    /// Samples older than the head accepts: below the end of the last block written, or more than
    /// half a block duration before the newest sample of the head (Prometheus `ErrOutOfBounds`).
    pub out_of_bounds: u64,
    /// Samples with the timestamp of their series' newest sample but another value, NaNs compared
    /// bit for bit (Prometheus `ErrDuplicateSampleForTimestamp`).
    pub duplicate: u64,
    /// Samples equal in timestamp and value bits to their series' newest sample: accepted
    /// silently and not stored again, so retries are safe.
    pub exact_duplicate: u64,
    /// Series created by the request.
    pub series_created: u64,
}

impl AppendReport {
    /// Samples refused (out of order, out of bounds, duplicate with another value); the receiver
    /// answers 409 when this is not zero.
    pub fn rejected(&self) -> u64 {
        self.out_of_order + self.out_of_bounds + self.duplicate
    }
}

/// A series' newest sample before this request changed it, restored on rollback.
#[derive(Debug, Clone, Copy)]
struct Undo {
    slot: u32,
    last_t: i64,
    last_v: f64,
}

/// The appender's buffers, kept in the head between requests so the hot path does not allocate.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// Accepted samples with the ref of their series, in request order.
    samples: Vec<SampleRecord>,
    /// Slot of each accepted sample's series.
    slots: Vec<u32>,
    /// Slots of the series this request created.
    new_series: Vec<u32>,
    undo: Vec<Undo>,
    series_rec: Vec<u8>,
    samples_rec: Vec<u8>,
}

impl Scratch {
    fn clear(&mut self) {
        self.samples.clear();
        self.slots.clear();
        self.new_series.clear();
        self.undo.clear();
        if self.samples.capacity() * size_of::<SampleRecord>() > MAX_KEPT_SCRATCH {
            self.samples = Vec::new();
            self.slots = Vec::new();
        }
        for buf in [&mut self.series_rec, &mut self.samples_rec] {
            buf.clear();
            if buf.capacity() > MAX_KEPT_SCRATCH {
                *buf = Vec::new();
            }
        }
    }
}

/// Appends one request to a [`Head`] while holding its lock, as Prometheus `headAppender`:
/// [`append`](HeadAppender::append) checks and buffers, [`commit`](HeadAppender::commit) logs to
/// the WAL and then applies. Dropping it without committing rolls back: series it created are
/// removed again.
pub struct HeadAppender<'a> {
    head: &'a Head,
    state: MutexGuard<'a, HeadState>,
    /// No sample below this is accepted; `None` until the first sample of an empty head sets it.
    min_valid: Option<i64>,
    /// Oldest and newest accepted sample times.
    mint: i64,
    maxt: i64,
    report: AppendReport,
    done: bool,
}

impl std::fmt::Debug for HeadAppender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadAppender")
            .field("tenant", &self.head.tenant)
            .field("report", &self.report)
            .finish()
    }
}

/// The minimum valid time of appends (Prometheus `appendableMinValidTime`): samples may not fall
/// into a written block, nor into the range the next compaction may cut (the head's newest
/// sample minus half a block duration).
fn appendable_min_valid(min_valid_time: i64, head_max: i64, block_ms: i64) -> i64 {
    min_valid_time.max(head_max.saturating_sub(block_ms / 2))
}

impl<'a> HeadAppender<'a> {
    pub(super) fn new(head: &'a Head, state: MutexGuard<'a, HeadState>) -> Self {
        let block_ms = head.opts.block_duration_ms;
        let min_valid = state
            .max_time
            .map(|max| appendable_min_valid(state.min_valid_time, max, block_ms));
        HeadAppender {
            head,
            state,
            min_valid,
            mint: i64::MAX,
            maxt: i64::MIN,
            report: AppendReport::default(),
            done: false,
        }
    }

    /// Checks each sample of `series` and buffers the accepted ones; the series is created (and
    /// logged at commit) once one of its samples is accepted. The outcome of every sample goes to
    /// the [`AppendReport`]. No allocation when the series exists.
    pub fn append(&mut self, series: SeriesInput<'_>) {
        let Some(&(first_t, _)) = series.samples.first() else {
            return;
        };
        let block_ms = self.head.opts.block_duration_ms;
        let st = &mut *self.state;
        // An empty head takes its time window from the first sample (Prometheus `initAppender`).
        let min_valid = *self
            .min_valid
            .get_or_insert_with(|| appendable_min_valid(st.min_valid_time, first_t, block_ms));
        let HeadState {
            series: set,
            scratch,
            next_ref,
            ..
        } = st;
        let hash = hash_labels(series.labels.iter().copied());
        let mut slot = set.find(hash, series.labels);
        let mut touched = false;
        let r = &mut self.report;
        for &(t, v) in series.samples {
            if t < min_valid {
                r.out_of_bounds += 1;
                continue;
            }
            let idx = match slot {
                Some(idx) => {
                    let Some(s) = set.get(idx) else { return };
                    if t < s.last_t {
                        r.out_of_order += 1;
                        continue;
                    }
                    if t == s.last_t {
                        match v.to_bits() == s.last_v.to_bits() {
                            true => r.exact_duplicate += 1,
                            false => r.duplicate += 1,
                        }
                        continue;
                    }
                    if !touched {
                        scratch.undo.push(Undo {
                            slot: idx,
                            last_t: s.last_t,
                            last_v: s.last_v,
                        });
                        touched = true;
                    }
                    idx
                }
                None => {
                    // A new series starts with this sample; nothing to check it against, and
                    // rollback removes it instead of undoing.
                    let idx = set.insert(hash, series.labels.iter().copied(), *next_ref);
                    *next_ref += 1;
                    slot = Some(idx);
                    touched = true;
                    scratch.new_series.push(idx);
                    r.series_created += 1;
                    idx
                }
            };
            let Some(s) = set.get_mut(idx) else { return };
            s.last_t = t;
            s.last_v = v;
            scratch.samples.push(SampleRecord {
                series_ref: s.series_ref,
                t_ms: t,
                value: v,
            });
            scratch.slots.push(idx);
            r.appended += 1;
            (self.mint, self.maxt) = (self.mint.min(t), self.maxt.max(t));
        }
    }

    /// The outcome of the samples appended so far.
    pub fn report(&self) -> &AppendReport {
        &self.report
    }

    /// Logs the new series (one series record) and the accepted samples (one samples record) to
    /// the WAL with one write, then appends the samples to their chunks. On a WAL error nothing
    /// is applied, the request's series are removed again, and the error is returned (the
    /// receiver answers 5xx so the sender retries).
    pub fn commit(mut self) -> Result<AppendReport, HeadError> {
        self.done = true;
        let block_ms = self.head.opts.block_duration_ms;
        let st = &mut *self.state;
        if st.scratch.samples.is_empty() {
            st.scratch.clear();
            return Ok(self.report);
        }

        // Log first: series before the samples that reference them, both in one write.
        let HeadState {
            series, wal, scratch, ..
        } = st;
        scratch.series_rec.clear();
        scratch.samples_rec.clear();
        if !scratch.new_series.is_empty() {
            let created = scratch.new_series.iter().filter_map(|&i| series.get(i));
            encode_series(
                created.map(|s| (s.series_ref, series.labels(s))),
                &mut scratch.series_rec,
            );
        }
        encode_samples(scratch.samples.iter().copied(), &mut scratch.samples_rec);
        let logged = match scratch.series_rec.is_empty() {
            true => wal.log(&[&scratch.samples_rec]),
            false => wal.log(&[&scratch.series_rec, &scratch.samples_rec]),
        };
        if let Err(e) = logged {
            rollback(st);
            return Err(e.into());
        }
        st.note_logged(self.maxt);

        // Then apply, in request order (per series, increasing time).
        let HeadState { series, scratch, .. } = st;
        let mut chunks_created = 0;
        for (sample, &slot) in scratch.samples.iter().zip(&scratch.slots) {
            if let Some(s) = series.get_mut(slot) {
                chunks_created += s.append(sample.t_ms, sample.value, block_ms);
            }
        }
        st.num_chunks += chunks_created;
        st.min_time = Some(st.min_time.map_or(self.mint, |m| m.min(self.mint)));
        st.max_time = Some(st.max_time.map_or(self.maxt, |m| m.max(self.maxt)));
        st.scratch.clear();

        let m = &self.head.metrics;
        m.samples_appended.inc_by(self.report.appended);
        m.series_created.inc_by(self.report.series_created);
        m.series.set(st.series.len() as i64);
        m.chunks.set(st.num_chunks as i64);
        m.wal_size.set(st.wal.size_bytes() as i64);
        Ok(self.report)
    }
}

impl Drop for HeadAppender<'_> {
    fn drop(&mut self) {
        if !self.done {
            rollback(&mut self.state);
        }
    }
}

/// Undoes an appender's changes: restores the newest samples of touched series, removes the
/// series it created (their refs are not reused) and clears the buffers.
fn rollback(st: &mut HeadState) {
    let HeadState { series, scratch, .. } = st;
    for u in scratch.undo.iter().rev() {
        if let Some(s) = series.get_mut(u.slot) {
            s.last_t = u.last_t;
            s.last_v = u.last_v;
        }
    }
    for &slot in &scratch.new_series {
        series.remove(slot);
    }
    scratch.clear();
}
