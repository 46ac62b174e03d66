//! From HTTP body to a batch of validated series, reusing buffers from one request to the next:
//! the body is read under a size limit, snappy-decompressed once under a decoded-size limit,
//! and read in one pass by the zero-copy [`WriteRequestView`]; labels stay `&str` slices of the
//! decompressed bytes.

use std::mem;
use std::sync::Mutex;

use axum::body::Body;
use futures::StreamExt;
use trawl_model::remote::WriteRequestView;

use super::config::RequestLimits;
use super::error::{ReceiveError, Rejections};
use super::validate::{LabelSet, drop_empty_values, validate_labels};
use crate::head::SeriesInput;

/// Buffers kept for reuse at most; about the number of requests decoded at once.
const MAX_POOLED: usize = 8;
/// Buffers holding more than this many bytes in total go back to the allocator instead of the
/// pool, so one huge (or hostile) request does not pin its memory: 32 MiB, room for several of
/// vmagent's 10 000-sample requests.
const MAX_POOLED_BYTES: usize = 32 << 20;

/// The reusable memory of one request. Label slices borrow `proto` only inside
/// [`Buffers::with_batch`]; between requests the label buffer is kept empty, with its capacity.
#[derive(Default)]
pub(crate) struct Buffers {
    compressed: Vec<u8>,
    proto: Vec<u8>,
    labels: Vec<(&'static str, &'static str)>,
    samples: Vec<(i64, f64)>,
    series: Vec<SeriesEnd>,
}

/// Where one series ends in a [`Batch`]'s label and sample buffers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesEnd {
    labels: usize,
    samples: usize,
}

impl Buffers {
    fn capacity_bytes(&self) -> usize {
        self.compressed.capacity()
            + self.proto.capacity()
            + self.labels.capacity() * mem::size_of::<(&str, &str)>()
            + self.samples.capacity() * mem::size_of::<(i64, f64)>()
            + self.series.capacity() * mem::size_of::<SeriesEnd>()
    }

    /// Reads `body` into the compressed buffer, refusing more than `limit` bytes. `size_hint`
    /// (the Content-Length) only pre-sizes the buffer.
    pub(crate) async fn read_body(
        &mut self,
        body: Body,
        size_hint: Option<u64>,
        limit: usize,
    ) -> Result<(), ReceiveError> {
        let too_large = ReceiveError::BodyTooLarge { limit };
        if size_hint.is_some_and(|len| len > limit as u64) {
            return Err(too_large);
        }
        self.compressed.clear();
        self.compressed.reserve(size_hint.map_or(0, |len| len as usize));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(ReceiveError::ReadBody)?;
            if self.compressed.len() + chunk.len() > limit {
                return Err(too_large);
            }
            self.compressed.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// Decompresses the body (snappy block format) into the proto buffer, checking the size the
    /// snappy header announces against `limit` before allocating.
    pub(crate) fn decompress(&mut self, limit: usize) -> Result<(), ReceiveError> {
        let len = snap::raw::decompress_len(&self.compressed).map_err(ReceiveError::Decompress)?;
        if len > limit {
            return Err(ReceiveError::DecodedTooLarge { len, limit });
        }
        // Grow only: the decoder overwrites all `len` bytes, so old content needs no zeroing.
        if self.proto.len() < len {
            self.proto.resize(len, 0);
        } else {
            self.proto.truncate(len);
        }
        snap::raw::Decoder::new()
            .decompress(&self.compressed, &mut self.proto)
            .map_err(ReceiveError::Decompress)?;
        Ok(())
    }

    /// Runs `f` on the decompressed request with an empty [`Batch`] built on the reused buffers.
    pub(crate) fn with_batch<R>(&mut self, f: impl for<'a> FnOnce(&'a [u8], &mut Batch<'a>) -> R) -> R {
        let mut batch = Batch {
            labels: reborrow(mem::take(&mut self.labels)),
            samples: mem::take(&mut self.samples),
            series: mem::take(&mut self.series),
            received_series: 0,
            received_samples: 0,
            rejections: Rejections::default(),
        };
        batch.samples.clear();
        batch.series.clear();
        let result = f(&self.proto, &mut batch);
        self.labels = reborrow(batch.labels);
        self.samples = batch.samples;
        self.series = batch.series;
        result
    }
}

/// Empties a label buffer and gives it another lifetime, keeping its allocation (the in-place
/// `collect` of an empty `vec::IntoIter` into a same-layout `Vec` reuses the buffer).
fn reborrow<'b>(mut labels: Vec<(&str, &str)>) -> Vec<(&'b str, &'b str)> {
    labels.clear();
    labels.into_iter().map(|_| ("", "")).collect()
}

/// Idle [`Buffers`], shared by all requests.
#[derive(Default)]
pub(crate) struct BufferPool {
    idle: Mutex<Vec<Buffers>>,
}

impl BufferPool {
    /// An idle set of buffers, or a new empty one.
    pub(crate) fn take(&self) -> Buffers {
        self.idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_default()
    }

    /// Returns buffers for reuse, unless the pool is full or they grew too large.
    pub(crate) fn give(&self, buffers: Buffers) {
        if buffers.capacity_bytes() > MAX_POOLED_BYTES {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_POOLED
        {
            idle.push(buffers);
        }
    }
}

/// The series of one request: valid series (labels with empty values dropped) in shared label
/// and sample buffers, plus what was refused.
pub(crate) struct Batch<'a> {
    labels: Vec<(&'a str, &'a str)>,
    samples: Vec<(i64, f64)>,
    series: Vec<SeriesEnd>,
    /// Series in the request, valid or not.
    pub(crate) received_series: usize,
    /// Samples in the request, valid or not.
    pub(crate) received_samples: usize,
    /// Invalid series found so far (sample conflicts are added by the caller).
    pub(crate) rejections: Rejections,
}

impl<'a> Batch<'a> {
    /// Decodes and validates every series of `proto`. Invalid series are counted in
    /// [`Batch::rejections`] and left out; series without samples are left out silently (they
    /// hold nothing to store: exemplar- or histogram-only series).
    ///
    /// # Errors
    /// [`ReceiveError::Protobuf`] for malformed bytes, [`ReceiveError::TooManySamples`] above
    /// `limits` (the request is then only counted, not kept).
    pub(crate) fn decode(&mut self, proto: &'a [u8], limits: &RequestLimits) -> Result<(), ReceiveError> {
        let mut series_iter = WriteRequestView::new(proto).timeseries();
        for series in series_iter.by_ref() {
            let series = series?;
            let (label_start, sample_start) = (self.labels.len(), self.samples.len());
            series.decode_into(&mut self.labels, &mut self.samples)?;
            let samples = self.samples.len() - sample_start;
            self.received_series += 1;
            self.received_samples += samples;
            if limits.exceeded(self.received_series, self.received_samples) {
                break;
            }
            drop_empty_values(&mut self.labels, label_start);
            let labels = &self.labels[label_start..];
            let verdict = if samples == 0 {
                None
            } else {
                Some(validate_labels(labels))
            };
            match verdict {
                Some(Ok(())) => self.series.push(SeriesEnd {
                    labels: self.labels.len(),
                    samples: self.samples.len(),
                }),
                Some(Err(error)) => {
                    let r = &mut self.rejections;
                    if r.first_invalid.is_none() {
                        r.first_invalid = Some(format!("{error} in {}", LabelSet(labels)));
                    }
                    r.invalid_series += 1;
                    r.invalid_samples += samples as u64;
                    self.labels.truncate(label_start);
                    self.samples.truncate(sample_start);
                }
                None => {
                    self.labels.truncate(label_start);
                    self.samples.truncate(sample_start);
                }
            }
        }
        if !limits.exceeded(self.received_series, self.received_samples) {
            return Ok(());
        }
        // Over a limit: count the rest for the answer and the metrics, keeping nothing.
        self.labels.clear();
        self.samples.clear();
        self.series.clear();
        for series in series_iter {
            self.received_series += 1;
            for sample in series?.samples() {
                sample?;
                self.received_samples += 1;
            }
        }
        Err(ReceiveError::TooManySamples {
            series: self.received_series,
            samples: self.received_samples,
            series_limit: limits.series_limit,
            samples_limit: limits.samples_limit,
        })
    }

    /// Whether no series is valid.
    pub(crate) fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The valid series in request order, as the head takes them.
    pub(crate) fn iter(&self) -> impl Iterator<Item = SeriesInput<'_>> {
        let mut start = SeriesEnd { labels: 0, samples: 0 };
        self.series.iter().map(move |&end| {
            let series = SeriesInput {
                labels: &self.labels[start.labels..end.labels],
                samples: &self.samples[start.samples..end.samples],
            };
            start = end;
            series
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::tests::proto;

    fn decoded(proto: &[u8], limits: RequestLimits) -> (Result<(), ReceiveError>, Vec<String>, usize, Rejections) {
        let mut buffers = Buffers {
            proto: proto.to_vec(),
            ..Buffers::default()
        };
        buffers.with_batch(|proto, batch| {
            let result = batch.decode(proto, &limits);
            let series = batch
                .iter()
                .map(|s| format!("{} {:?}", LabelSet(s.labels), s.samples))
                .collect();
            (result, series, batch.received_samples, batch.rejections.clone())
        })
    }

    #[test]
    fn valid_series_are_kept_and_invalid_ones_counted() {
        let proto = proto(&[
            (&[("__name__", "up"), ("job", "a")], &[(1, 1.0), (2, 2.0)]),
            (&[("job", "b"), ("__name__", "up")], &[(1, 1.0)]),
            (&[("__name__", "up"), ("empty", ""), ("job", "c")], &[(3, 3.0)]),
            (&[("__name__", "no_samples")], &[]),
        ]);
        let (result, series, received, rejections) = decoded(&proto, RequestLimits::default());
        assert!(result.is_ok());
        assert_eq!(
            series,
            [
                r#"{__name__="up", job="a"} [(1, 1.0), (2, 2.0)]"#,
                r#"{__name__="up", job="c"} [(3, 3.0)]"#
            ]
        );
        assert_eq!(received, 4);
        assert_eq!(rejections.invalid_series, 1);
        assert_eq!(rejections.invalid_samples, 1);
        assert_eq!(
            rejections.first_invalid.as_deref(),
            Some(r#"labels not sorted by name: "__name__" after "job" in {job="b", __name__="up"}"#)
        );
    }

    #[test]
    fn limits_refuse_the_whole_request_with_exact_counts() {
        let one: &[(&str, &str)] = &[("__name__", "up")];
        let proto = proto(&[(one, &[(1, 1.0)]), (one, &[(2, 2.0), (3, 3.0)]), (one, &[(4, 4.0)])]);
        let samples_limit = RequestLimits {
            samples_limit: 2,
            ..RequestLimits::default()
        };
        let (result, series, received, _) = decoded(&proto, samples_limit);
        assert!(matches!(
            result,
            Err(ReceiveError::TooManySamples {
                series: 3,
                samples: 4,
                ..
            })
        ));
        assert!(series.is_empty());
        assert_eq!(received, 4);
        let series_limit = RequestLimits {
            series_limit: 3,
            ..RequestLimits::default()
        };
        assert!(decoded(&proto, series_limit).0.is_ok());
    }

    #[test]
    fn buffers_are_reused_across_requests() {
        let pool = BufferPool::default();
        let mut buffers = pool.take();
        buffers.proto = proto(&[(&[("__name__", "up")], &[(1, 1.0)])]);
        buffers.with_batch(|proto, batch| batch.decode(proto, &RequestLimits::default()).unwrap());
        let capacity = buffers.labels.capacity();
        assert!(capacity > 0);
        assert!(buffers.labels.is_empty());
        pool.give(buffers);
        let again = pool.take();
        assert_eq!(again.labels.capacity(), capacity);
        // Oversized buffers are not pooled.
        let huge = Buffers {
            proto: vec![0; MAX_POOLED_BYTES + 1],
            ..Buffers::default()
        };
        pool.give(huge);
        assert_eq!(pool.take().proto.capacity(), 0);
    }

    #[test]
    fn snappy_bombs_are_refused_before_allocating() {
        let mut buffers = Buffers {
            // Header announcing 4 GiB - 1, no data.
            compressed: vec![0xff, 0xff, 0xff, 0xff, 0x0f],
            ..Buffers::default()
        };
        assert!(matches!(
            buffers.decompress(1 << 20),
            Err(ReceiveError::DecodedTooLarge { len: 0xffff_ffff, .. })
        ));
        assert_eq!(buffers.proto.capacity(), 0);
        buffers.compressed = b"not snappy at all".to_vec();
        assert!(matches!(buffers.decompress(1 << 20), Err(ReceiveError::Decompress(_))));
    }

    #[test]
    fn shorter_requests_after_longer_ones_decompress_exactly() {
        let mut buffers = Buffers::default();
        for len in [1000usize, 10, 500] {
            let data = vec![0x5a; len];
            buffers.compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
            buffers.decompress(1 << 20).unwrap();
            assert_eq!(buffers.proto, data);
        }
    }
}
