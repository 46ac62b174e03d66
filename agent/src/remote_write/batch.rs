//! One scrape's samples, encoded where they are produced: for every endpoint and shard, protobuf
//! `TimeSeries` entries cut into chunks of at most `max_samples_per_send` samples. The shards only
//! join chunks and compress them, so no per-sample handle crosses threads. Chunk buffers are
//! reused: [`recycle`] takes them back once compressed.

use std::cell::RefCell;

use trawl_model::remote::SeriesBuffer;

use super::PreparedSeries;
use crate::spare::Spares;

/// Largest up-front reservation per chunk buffer, so one huge scrape does not pin memory.
const MAX_RESERVED_BYTES: usize = 16 << 20;

/// Idle chunk buffers kept per thread: at most this many, and past the first only while their
/// capacity stays under [`POOLED_CHUNK_BYTES`] (see [`crate::spare`]). Enough for a scrape of
/// 10k series (five 2,000-sample chunks of ~0.5 MB) to allocate none.
const POOLED_CHUNKS: usize = 8;

/// Capacity of the idle chunk buffers kept beyond the first, per thread, in bytes.
const POOLED_CHUNK_BYTES: usize = 4 << 20;

thread_local! {
    /// Chunk buffers of the batches built on this thread, back from [`recycle`].
    static SPARE_CHUNKS: RefCell<Spares<SeriesBuffer>> =
        const { RefCell::new(Spares::new(POOLED_CHUNKS, POOLED_CHUNK_BYTES)) };
}

/// An empty chunk buffer, a recycled one if any, with room for `bytes` of protobuf and an eighth
/// more: the next chunk is about as long as the last, give or take its series' labels, and
/// should not double to fit.
fn chunk_buffer(bytes: usize) -> SeriesBuffer {
    let mut chunk = SPARE_CHUNKS.with_borrow_mut(Spares::take);
    chunk.reserve_exact((bytes + bytes / 8).min(MAX_RESERVED_BYTES));
    chunk
}

/// Takes back a chunk buffer whose content was queued, for the next batch built on this thread.
pub(super) fn recycle(chunk: SeriesBuffer) {
    SPARE_CHUNKS.with_borrow_mut(|spares| spares.put(chunk));
}

/// Samples to queue for every endpoint, from [`super::RemoteWrite::batch`].
#[derive(Debug)]
pub struct WriteBatch {
    pub(super) endpoints: Vec<EndpointBatch>,
}

/// One endpoint's part of a [`WriteBatch`].
#[derive(Debug)]
pub(super) struct EndpointBatch {
    /// The chunk being filled, per shard.
    open: Vec<SeriesBuffer>,
    /// Full chunks with their shard, in the order they filled up.
    sealed: Vec<(usize, SeriesBuffer)>,
    max_samples: usize,
    /// Samples of series this endpoint's write relabeling dropped.
    pub(super) dropped: usize,
}

impl WriteBatch {
    /// An empty batch for endpoints with these shard counts and `max_samples_per_send`, each
    /// shard's first chunk sized for `chunk_hint` bytes of protobuf (see
    /// [`WriteBatch::chunk_bytes`]).
    pub(super) fn new(endpoints: impl IntoIterator<Item = (usize, usize)>, chunk_hint: usize) -> WriteBatch {
        let endpoints = endpoints
            .into_iter()
            .map(|(shards, max_samples)| {
                let shards = shards.max(1);
                EndpointBatch {
                    open: (0..shards).map(|_| chunk_buffer(chunk_hint)).collect(),
                    sealed: Vec::new(),
                    max_samples: max_samples.max(1),
                    dropped: 0,
                }
            })
            .collect();
        WriteBatch { endpoints }
    }

    /// Protobuf bytes of the first endpoint's largest chunk: the size hint for the next
    /// scrape's chunks. A chunk, not the whole batch: a scrape cut into several chunks would
    /// otherwise reserve all of them in the first.
    pub fn chunk_bytes(&self) -> usize {
        self.endpoints
            .first()
            .and_then(|e| e.chunks().map(|c| c.proto().len()).max())
            .unwrap_or(0)
    }

    /// Adds one sample (`timestamp_ms` in ms since the epoch) of `series`, prepared by the same
    /// [`super::RemoteWrite`], for every endpoint that keeps the series.
    pub fn push(&mut self, series: &PreparedSeries, timestamp_ms: i64, value: f64) {
        for (endpoint, labels) in self.endpoints.iter_mut().zip(series.endpoints()) {
            match labels {
                Some(labels) => endpoint.push(series.hash(), labels, timestamp_ms, value),
                None => endpoint.dropped += 1,
            }
        }
    }

    /// Samples queued for the first endpoint (all endpoints get the same samples before their
    /// own write relabeling); 0 without endpoints.
    pub fn samples(&self) -> usize {
        self.endpoints.first().map_or(0, |e| e.samples() + e.dropped)
    }
}

#[cfg(test)]
impl WriteBatch {
    /// The first endpoint's samples as one `WriteRequest` protobuf, shard after shard.
    pub(crate) fn into_proto(mut self) -> SeriesBuffer {
        let mut proto = SeriesBuffer::default();
        for (_, chunk) in self.endpoints.remove(0).into_chunks() {
            proto.append(&chunk);
        }
        proto
    }
}

impl EndpointBatch {
    fn push(&mut self, hash: u64, labels: &[u8], timestamp_ms: i64, value: f64) {
        let shard = (hash % self.open.len() as u64) as usize;
        let chunk = &mut self.open[shard];
        chunk.push_sample(labels, timestamp_ms, value);
        if chunk.samples() >= self.max_samples {
            // The next chunk of this shard will likely fill up as this one did.
            let full = std::mem::replace(chunk, chunk_buffer(chunk.proto().len()));
            self.sealed.push((shard, full));
        }
    }

    /// Samples in the chunks.
    pub(super) fn samples(&self) -> usize {
        self.chunks().map(SeriesBuffer::samples).sum()
    }

    fn chunks(&self) -> impl Iterator<Item = &SeriesBuffer> {
        self.open.iter().chain(self.sealed.iter().map(|(_, c)| c))
    }

    /// The chunks with their shard, in an order that keeps each shard's samples in push order.
    pub(super) fn into_chunks(self) -> impl Iterator<Item = (usize, SeriesBuffer)> {
        let open = self.open.into_iter().enumerate();
        self.sealed
            .into_iter()
            .chain(open)
            .filter(|(_, chunk)| chunk.samples() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(hash: u64, endpoints: &[Option<&[u8]>]) -> PreparedSeries {
        PreparedSeries::new(hash, endpoints.iter().copied())
    }

    #[test]
    fn chunks_are_cut_at_max_samples_and_keep_shard_order() {
        let mut batch = WriteBatch::new([(2, 3), (1, 100)], 0);
        let kept = series(0, &[Some(b"a"), Some(b"a")]);
        let odd = series(1, &[Some(b"b"), None]);
        for t in 0..7 {
            batch.push(&kept, t, 1.0);
            batch.push(&odd, t, 1.0);
        }
        assert_eq!(batch.samples(), 14);
        let sizes: Vec<usize> = batch.endpoints[0].chunks().map(|c| c.proto().len()).collect();
        assert_eq!(sizes.len(), 6);
        assert_eq!(
            batch.chunk_bytes(),
            *sizes.iter().max().unwrap(),
            "the largest chunk, not the sum"
        );
        let mut endpoints = batch.endpoints.into_iter();
        let first: Vec<(usize, usize, Option<i64>)> = endpoints
            .next()
            .unwrap()
            .into_chunks()
            .map(|(s, c)| (s, c.samples(), c.max_timestamp_ms()))
            .collect();
        assert_eq!(
            first,
            [
                (0, 3, Some(2)),
                (1, 3, Some(2)),
                (0, 3, Some(5)),
                (1, 3, Some(5)),
                (0, 1, Some(6)),
                (1, 1, Some(6))
            ]
        );
        let second = endpoints.next().unwrap();
        assert_eq!(second.dropped, 7);
        let chunks: Vec<_> = second.into_chunks().map(|(s, c)| (s, c.samples())).collect();
        assert_eq!(chunks, [(0, 7)]);
    }

    #[test]
    fn chunk_buffers_are_sized_from_the_last_chunk_and_reused_once_recycled() {
        let labels = [b'x'; 40];
        let kept = series(0, &[Some(&labels[..])]);
        let mut batch = WriteBatch::new([(1, 10)], 0);
        for t in 0..25 {
            batch.push(&kept, t, 1.0);
        }
        let chunks: Vec<SeriesBuffer> = batch.endpoints.remove(0).into_chunks().map(|(_, c)| c).collect();
        assert_eq!(chunks.len(), 3);
        let full = chunks[0].proto().len();
        assert!(
            chunks[1].capacity() >= full + full / 8,
            "a chunk after a full one has room for it and an eighth more, so it does not double"
        );
        let capacities: Vec<usize> = chunks.iter().map(SeriesBuffer::capacity).collect();
        for chunk in chunks {
            recycle(chunk);
        }
        // The next batch on this thread takes the last buffer given back, emptied.
        let again = WriteBatch::new([(1, 10)], 0);
        let reused = &again.endpoints[0].open[0];
        assert_eq!((reused.samples(), reused.proto().len()), (0, 0));
        assert_eq!(reused.capacity(), capacities[2]);
    }
}
