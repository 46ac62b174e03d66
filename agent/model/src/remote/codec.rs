//! Hand-rolled remote write encoding for the hot path, byte for byte what prost produces for the
//! messages in [`super::proto`], plus snappy (block format, as the remote write 1.0 spec requires)
//! and a size-limited decoder.
//!
//! A series' labels are encoded once ([`encode_labels`]) and cached by the scrape loop; each sample
//! then only copies those bytes and writes its value and timestamp ([`SeriesBuffer`]).

use prost::Message;

use super::proto::{Sample, WriteRequest};
use crate::labels::Labels;

/// Decoded size limit of [`decode_write_request`], in bytes (32 MiB): far above any sane batch
/// (Prometheus sends at most a few thousand samples per request) and low enough that a hostile
/// body cannot make a receiver allocate gigabytes.
pub const MAX_DECODED_BYTES: usize = 32 << 20;

/// Wire key of field 1 with wire type 2 (length-delimited): `WriteRequest.timeseries`,
/// `TimeSeries.labels`, `Label.name`.
const KEY_FIELD1_LEN: u8 = 0x0a;
/// Wire key of field 2 with wire type 2: `Label.value`, `TimeSeries.samples`.
const KEY_FIELD2_LEN: u8 = 0x12;
/// Wire key of `Sample.value`: field 1, wire type 1 (64-bit).
const KEY_SAMPLE_VALUE: u8 = 0x09;
/// Wire key of `Sample.timestamp`: field 2, wire type 0 (varint).
const KEY_SAMPLE_TIMESTAMP: u8 = 0x10;

/// Failure to compress or decode a remote write body.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Snappy refused to compress (the protobuf exceeds snappy's ~4 GiB block limit).
    #[error("snappy-compress write request of {len} bytes")]
    Compress {
        /// Protobuf size in bytes.
        len: usize,
        /// Snappy's reason.
        #[source]
        source: snap::Error,
    },
    /// The body is not a valid snappy block (a framed stream, truncated or corrupt data).
    #[error("snappy-decompress write request body")]
    Decompress(#[source] snap::Error),
    /// The body's snappy header announces more than the allowed decoded size.
    #[error("decoded write request would be {len} bytes, above the limit of {limit} bytes")]
    TooLarge {
        /// Decoded size announced by the snappy header, in bytes.
        len: usize,
        /// The limit in force, in bytes.
        limit: usize,
    },
    /// The decompressed bytes are not a valid `prometheus.WriteRequest`.
    #[error("decode write request protobuf")]
    Decode(#[from] prost::DecodeError),
}

/// Encodes `labels` as the repeated `labels` field (field 1) of a `prometheus.TimeSeries`:
/// the exact bytes prost writes for `TimeSeries { labels, .. }` before the samples. `Labels` is
/// sorted by name, which the remote write spec requires. Empty names or values are omitted as
/// proto3 (and prost) omit default strings.
pub fn encode_labels(labels: &Labels) -> Vec<u8> {
    let total: usize = labels
        .iter()
        .map(|l| length_delimited_len(label_len(&l.name, &l.value)))
        .sum();
    let mut buf = Vec::with_capacity(total);
    for label in labels {
        buf.push(KEY_FIELD1_LEN);
        put_varint(&mut buf, label_len(&label.name, &label.value) as u64);
        put_string(&mut buf, KEY_FIELD1_LEN, &label.name);
        put_string(&mut buf, KEY_FIELD2_LEN, &label.value);
    }
    buf
}

/// Encoded `prometheus.TimeSeries` entries (the repeated field 1 of a `WriteRequest`) built from
/// pre-encoded labels. Because a `WriteRequest` is nothing but those entries, a buffer's bytes
/// and any concatenation of buffers ([`SeriesBuffer::append`]) are a valid `WriteRequest`: the
/// scrape loops encode their samples into buffers, the remote-write shards join and compress them.
///
/// ```
/// use trawl_model::labels::Labels;
/// use trawl_model::remote::{decode_write_request, encode_labels, Compressor, SeriesBuffer};
///
/// let labels = encode_labels(&Labels::from_pairs([("__name__", "up"), ("job", "node")]));
/// let mut buffer = SeriesBuffer::default();
/// buffer.push_sample(&labels, 1_700_000_000_000, 1.0);
/// let body = Compressor::default().compress(buffer.proto()).unwrap().to_vec();
/// let request = decode_write_request(&body).unwrap();
/// assert_eq!(request.timeseries[0].samples[0].value, 1.0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesBuffer {
    proto: Vec<u8>,
    series: usize,
    samples: usize,
    max_timestamp_ms: Option<i64>,
}

impl SeriesBuffer {
    /// An empty buffer with room for `bytes` of protobuf.
    pub fn with_capacity(bytes: usize) -> Self {
        SeriesBuffer {
            proto: Vec::with_capacity(bytes),
            ..SeriesBuffer::default()
        }
    }

    /// Bytes of protobuf it holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.proto.capacity()
    }

    /// Makes room for at least `bytes` more bytes of protobuf, exactly (no doubling).
    pub fn reserve_exact(&mut self, bytes: usize) {
        self.proto.reserve_exact(bytes);
    }

    /// Forgets the content, keeping the capacity.
    pub fn clear(&mut self) {
        self.proto.clear();
        self.series = 0;
        self.samples = 0;
        self.max_timestamp_ms = None;
    }

    /// Appends one `TimeSeries` with `labels` (bytes from [`encode_labels`]) and `samples`
    /// (which should be in timestamp order, as the spec requires).
    pub fn push_series(&mut self, labels: &[u8], samples: &[Sample]) {
        let samples_len: usize = samples
            .iter()
            .map(|s| length_delimited_len(sample_len(s.value, s.timestamp)))
            .sum();
        self.put_series_header(labels, labels.len() + samples_len);
        for s in samples {
            self.put_sample(s.value, s.timestamp);
        }
        self.samples += samples.len();
    }

    /// Appends one `TimeSeries` with `labels` (bytes from [`encode_labels`]) and a single sample
    /// (`timestamp_ms` in milliseconds since the epoch), as Prometheus sends them.
    pub fn push_sample(&mut self, labels: &[u8], timestamp_ms: i64, value: f64) {
        let sample = length_delimited_len(sample_len(value, timestamp_ms));
        self.put_series_header(labels, labels.len() + sample);
        self.put_sample(value, timestamp_ms);
        self.samples += 1;
    }

    /// Appends the entries of `other` after this buffer's.
    pub fn append(&mut self, other: &SeriesBuffer) {
        self.proto.extend_from_slice(&other.proto);
        self.series += other.series;
        self.samples += other.samples;
        self.max_timestamp_ms = self.max_timestamp_ms.max(other.max_timestamp_ms);
    }

    /// Number of series appended since the last [`clear`](Self::clear).
    pub fn series(&self) -> usize {
        self.series
    }

    /// Number of samples appended since the last [`clear`](Self::clear).
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The newest sample timestamp in the buffer (ms since the epoch), if any.
    pub fn max_timestamp_ms(&self) -> Option<i64> {
        self.max_timestamp_ms
    }

    /// The uncompressed `prometheus.WriteRequest` protobuf built so far.
    pub fn proto(&self) -> &[u8] {
        &self.proto
    }

    fn put_series_header(&mut self, labels: &[u8], series_len: usize) {
        self.proto.reserve(length_delimited_len(series_len));
        self.proto.push(KEY_FIELD1_LEN);
        put_varint(&mut self.proto, series_len as u64);
        self.proto.extend_from_slice(labels);
        self.series += 1;
    }

    fn put_sample(&mut self, value: f64, timestamp_ms: i64) {
        self.max_timestamp_ms = self.max_timestamp_ms.max(Some(timestamp_ms));
        self.proto.push(KEY_FIELD2_LEN);
        // A sample is at most 9 + 11 = 20 bytes, so its length is a one-byte varint.
        self.proto.push(sample_len(value, timestamp_ms) as u8);
        // proto3 omits default values; prost compares with `!= 0.0`, so -0.0 is omitted too.
        if value != 0.0 {
            self.proto.push(KEY_SAMPLE_VALUE);
            self.proto.extend_from_slice(&value.to_le_bytes());
        }
        if timestamp_ms != 0 {
            self.proto.push(KEY_SAMPLE_TIMESTAMP);
            put_varint(&mut self.proto, timestamp_ms as u64);
        }
    }
}

/// Snappy block compression (not the framed stream format, as the remote write spec requires)
/// reusing its output buffer and hash table from one request to the next.
pub struct Compressor {
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("capacity", &self.compressed.len())
            .finish()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor {
            compressed: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }
}

impl Compressor {
    /// Compresses `proto` into an HTTP body, valid until the next call.
    ///
    /// # Errors
    /// [`CodecError::Compress`] when `proto` exceeds snappy's block size limit (~4 GiB).
    pub fn compress(&mut self, proto: &[u8]) -> Result<&[u8], CodecError> {
        let max = snap::raw::max_compress_len(proto.len());
        // Grow only: `resize` would re-zero the whole buffer on every batch otherwise.
        if self.compressed.len() < max {
            self.compressed.resize(max, 0);
        }
        let n = self
            .snappy
            .compress(proto, &mut self.compressed)
            .map_err(|source| CodecError::Compress {
                len: proto.len(),
                source,
            })?;
        Ok(&self.compressed[..n])
    }
}

/// Decodes a remote write HTTP body (snappy block format, then protobuf) whose decoded size is at
/// most [`MAX_DECODED_BYTES`].
///
/// # Errors
/// [`CodecError::Decompress`] for bodies that are not a snappy block, [`CodecError::TooLarge`]
/// above the limit, [`CodecError::Decode`] for invalid protobuf.
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, CodecError> {
    decode_write_request_limited(body, MAX_DECODED_BYTES)
}

/// [`decode_write_request`] with a decoded size limit of `max_decoded_bytes` bytes, checked
/// against the snappy header before anything is allocated.
///
/// # Errors
/// As [`decode_write_request`].
pub fn decode_write_request_limited(body: &[u8], max_decoded_bytes: usize) -> Result<WriteRequest, CodecError> {
    let len = snap::raw::decompress_len(body).map_err(CodecError::Decompress)?;
    if len > max_decoded_bytes {
        return Err(CodecError::TooLarge {
            len,
            limit: max_decoded_bytes,
        });
    }
    let proto = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(CodecError::Decompress)?;
    Ok(WriteRequest::decode(proto.as_slice())?)
}

/// Size of a `Label` message body.
fn label_len(name: &str, value: &str) -> usize {
    string_field_len(name) + string_field_len(value)
}

/// Size of a `Sample` message body; at most 20 bytes.
fn sample_len(value: f64, timestamp_ms: i64) -> usize {
    let value_len = if value != 0.0 { 9 } else { 0 };
    let timestamp_len = if timestamp_ms != 0 {
        1 + varint_len(timestamp_ms as u64)
    } else {
        0
    };
    value_len + timestamp_len
}

/// Size of a one-byte-key string field; 0 when the string is empty (proto3 default).
fn string_field_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { length_delimited_len(s.len()) }
}

/// Size of a one-byte key, the length varint and `len` bytes of payload.
fn length_delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn varint_len(v: u64) -> usize {
    // Bits needed (at least 1), 7 per byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_string(buf: &mut Vec<u8>, key: u8, s: &str) {
    if s.is_empty() {
        return;
    }
    buf.push(key);
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}
