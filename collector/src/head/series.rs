//! One series in memory (Prometheus `tsdb/head.go` `memSeries`): its interned labels, the open
//! XOR chunk being appended to and the closed chunks before it, all in memory until they are
//! written to a block.

use trawl_tsdb::block::ChunkData;
use trawl_tsdb::chunkenc::XorChunk;

/// Samples after which a chunk is closed and a new one started (Prometheus `samplesPerChunk`).
pub(super) const SAMPLES_PER_CHUNK: usize = 120;

/// The end (exclusive, ms) of the block range of `block_ms` that holds `t`: the next multiple of
/// `block_ms` above `t` (Prometheus `rangeForTimestamp`). Saturates at the ends of `i64`.
pub(super) fn range_end(t: i64, block_ms: i64) -> i64 {
    t.div_euclid(block_ms).saturating_add(1).saturating_mul(block_ms)
}

/// The start (inclusive, ms) of the block range of `block_ms` that holds `t`.
pub(super) fn range_start(t: i64, block_ms: i64) -> i64 {
    t.div_euclid(block_ms).saturating_mul(block_ms)
}

/// A chunk that takes no more samples, shrunk to its exact bytes.
#[derive(Debug)]
pub(super) struct ClosedChunk {
    /// Time of its first sample (ms).
    pub(super) min_t: i64,
    /// Time of its last sample (ms, inclusive).
    pub(super) max_t: i64,
    /// XOR chunk bytes (2-byte count + bit stream).
    pub(super) data: Box<[u8]>,
}

/// A series in the head.
#[derive(Debug)]
pub(super) struct MemSeries {
    /// WAL reference, unique in the head and stable across replay.
    pub(super) series_ref: u64,
    /// [`hash_labels`](super::index::hash_labels) of the labels.
    pub(super) hash: u64,
    /// Symbol ids: name, value, name, value, … sorted by name.
    pub(super) labels: Box<[u32]>,
    /// Time of the newest sample (ms); every live series has at least one.
    pub(super) last_t: i64,
    /// Value of the newest sample, compared bit for bit to tell exact duplicates.
    pub(super) last_v: f64,
    /// The chunk being appended to.
    head: Option<XorChunk>,
    /// Older chunks, oldest first; a boxed slice without spare capacity (a new chunk is closed
    /// every 120 samples, so reallocating then costs little).
    closed: Box<[ClosedChunk]>,
}

impl MemSeries {
    /// A series without samples yet.
    pub(super) fn new(series_ref: u64, hash: u64, labels: Box<[u32]>) -> Self {
        MemSeries {
            series_ref,
            hash,
            labels,
            last_t: i64::MIN,
            last_v: 0.0,
            head: None,
            closed: Box::default(),
        }
    }

    /// Appends a sample newer than every sample held (the appender checked it), cutting a new
    /// chunk after [`SAMPLES_PER_CHUNK`] samples or when `t` reaches the end of the block range
    /// (multiple of `block_ms`) of the open chunk. Returns how many chunks were added (0 or 1).
    pub(super) fn append(&mut self, t: i64, v: f64, block_ms: i64) -> usize {
        let mut created = 0;
        let full = match &self.head {
            Some(c) => {
                c.num_samples() >= SAMPLES_PER_CHUNK || c.min_time().is_some_and(|min| t >= range_end(min, block_ms))
            }
            None => true,
        };
        if full {
            self.close_head();
            created = 1;
        }
        let chunk = self.head.get_or_insert_with(XorChunk::new);
        chunk.append(t, v);
        self.last_t = t;
        self.last_v = v;
        created
    }

    /// Moves the open chunk, if any, to the closed ones.
    pub(super) fn close_head(&mut self) {
        if let Some(c) = self.head.take()
            && let (Some(min_t), Some(max_t)) = (c.min_time(), c.max_time())
        {
            let mut closed = std::mem::take(&mut self.closed).into_vec();
            closed.push(ClosedChunk {
                min_t,
                max_t,
                data: c.bytes().into(),
            });
            self.closed = closed.into_boxed_slice();
        }
    }

    /// Number of chunks held, open one included.
    pub(super) fn num_chunks(&self) -> usize {
        self.closed.len() + usize::from(self.head.is_some())
    }

    /// Whether the series holds no samples any more.
    pub(super) fn is_empty(&self) -> bool {
        self.num_chunks() == 0
    }

    /// Time of the oldest sample held, if any.
    pub(super) fn min_time(&self) -> Option<i64> {
        match self.closed.first() {
            Some(c) => Some(c.min_t),
            None => self.head.as_ref()?.min_time(),
        }
    }

    /// Copies of the chunks whose samples lie in `[mint, maxt)`. A chunk never crosses a block
    /// range boundary, so for a `[mint, maxt)` range aligned to the block duration a chunk lies
    /// either wholly inside or outside; chunks straddling an unaligned `maxt` (only during a
    /// flush, which closes the open chunks first) are left out.
    pub(super) fn chunks_in(&self, mint: i64, maxt: i64) -> Vec<ChunkData> {
        let open = self
            .head
            .iter()
            .filter_map(|c| Some((c.min_time()?, c.max_time()?, c.bytes())));
        self.closed
            .iter()
            .map(|c| (c.min_t, c.max_t, &c.data[..]))
            .chain(open)
            .filter(|&(min_t, max_t, _)| min_t >= mint && max_t < maxt)
            .map(|(min_time, max_time, data)| ChunkData {
                min_time,
                max_time,
                data: data.to_vec(),
            })
            .collect()
    }

    /// Drops the chunks whose last sample is before `maxt`; returns how many.
    pub(super) fn drop_chunks_before(&mut self, maxt: i64) -> usize {
        let before = self.num_chunks();
        if self.closed.iter().any(|c| c.max_t < maxt) {
            let mut closed = std::mem::take(&mut self.closed).into_vec();
            closed.retain(|c| c.max_t >= maxt);
            self.closed = closed.into_boxed_slice();
        }
        if self
            .head
            .as_ref()
            .and_then(XorChunk::max_time)
            .is_some_and(|t| t < maxt)
        {
            self.head = None;
        }
        before - self.num_chunks()
    }

    /// Heap bytes owned by this series as `(chunk bytes, other)`: the encoded chunk bytes, and
    /// the label ids plus the closed-chunk list (allocator overhead not included).
    pub(super) fn heap_bytes(&self) -> (usize, usize) {
        let chunk_bytes =
            self.closed.iter().map(|c| c.data.len()).sum::<usize>() + self.head.as_ref().map_or(0, |c| c.bytes().len());
        let other = self.labels.len() * size_of::<u32>() + self.closed.len() * size_of::<ClosedChunk>();
        (chunk_bytes, other)
    }

    /// The samples held, oldest first (tests and checks; decodes every chunk).
    #[cfg(test)]
    pub(super) fn samples(&self) -> Vec<(i64, f64)> {
        let open = self.head.iter().map(|c| c.bytes());
        self.closed
            .iter()
            .map(|c| &c.data[..])
            .chain(open)
            .flat_map(trawl_tsdb::chunkenc::iter_xor)
            .filter_map(Result::ok)
            .collect()
    }

    /// Sample counts of the chunks held, oldest first (tests).
    #[cfg(test)]
    pub(super) fn chunk_sizes(&self) -> Vec<usize> {
        let open = self.head.iter().map(|c| c.bytes());
        self.closed
            .iter()
            .map(|c| &c.data[..])
            .chain(open)
            .map(|d| trawl_tsdb::chunkenc::iter_xor(d).count())
            .collect()
    }
}
