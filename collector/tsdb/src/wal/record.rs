//! WAL record payloads: series (ref + labels) and samples (ref, timestamp, value). Our own compact
//! format, following the ideas of Prometheus `tsdb/record/record.go` (a type byte, varints, deltas).
//!
//! ```text
//! series:  0x01 | u32 LE count | count × ( uvarint series_ref | uvarint label count |
//!                                          label count × ( uvarint len | name | uvarint len | value ) )
//! samples: 0x02 | u32 LE count | count × ( varint Δref | varint Δt_ms | u64 LE f64 bits )
//! ```
//!
//! Varints are LEB128 (at most 10 bytes); signed ones are zigzag-encoded. Each Δ is taken against
//! the previous sample of the record (the first against 0), with wrapping arithmetic, so samples of
//! one scrape (equal timestamps, nearby refs) cost about 10 bytes each. The count makes every
//! truncation a decode error, and bytes after the last entry are one too. Label strings decode as
//! `&str` borrowed from the record, after UTF-8 validation.

use std::str;

/// Type byte of a series record.
pub const SERIES: u8 = 1;
/// Type byte of a samples record.
pub const SAMPLES: u8 = 2;

/// Longest LEB128 encoding of a `u64`.
const MAX_VARINT: usize = 10;
/// Fewest bytes a series entry takes (ref and label count of one byte each).
const MIN_SERIES_BYTES: usize = 2;
/// Fewest bytes a label takes (two empty strings).
const MIN_LABEL_BYTES: usize = 2;
/// Fewest bytes a sample takes (two one-byte deltas and the value).
const MIN_SAMPLE_BYTES: usize = 10;
/// Bytes reserved per sample when encoding: one-byte ref delta, two-byte time delta, value.
const TYPICAL_SAMPLE_BYTES: usize = 11;
/// Type byte and count.
const RECORD_HEADER: usize = 5;

/// The kind of a record, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// [`SERIES`]: new series and their labels.
    Series,
    /// [`SAMPLES`]: float samples of known series.
    Samples,
}

/// A decoded record; label strings borrow from the record bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// Series definitions.
    Series(Vec<SeriesRecord<'a>>),
    /// Samples.
    Samples(Vec<SampleRecord>),
}

/// One series: the head's reference for it and its labels (name, value), in stored order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRecord<'a> {
    /// Head-assigned series reference.
    pub series_ref: u64,
    /// Label pairs as logged (the head logs them sorted by name).
    pub labels: Vec<(&'a str, &'a str)>,
}

/// One float sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRecord {
    /// Series reference from an earlier series record.
    pub series_ref: u64,
    /// Timestamp in milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// Sample value (any bit pattern, NaNs and stale markers included).
    pub value: f64,
}

/// Why a record could not be decoded; offsets are bytes from the start of the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record has no bytes at all.
    #[error("empty WAL record")]
    Empty,
    /// The type byte is neither [`SERIES`] nor [`SAMPLES`].
    #[error("unknown WAL record type {0}")]
    UnknownType(u8),
    /// A record of one type was given to a decoder of another.
    #[error("WAL record has type {found}, expected {expected:?}")]
    UnexpectedType {
        /// The type the decoder handles.
        expected: RecordType,
        /// The type byte found.
        found: u8,
    },
    /// The record ends inside an entry.
    #[error("WAL record truncated at byte {offset}: {what} missing")]
    Truncated {
        /// Where the missing part starts.
        offset: usize,
        /// What is missing.
        what: &'static str,
    },
    /// A varint is longer than 64 bits.
    #[error("varint at byte {offset} of a WAL record overflows 64 bits")]
    VarintOverflow {
        /// Where the varint starts.
        offset: usize,
    },
    /// A label name or value is not UTF-8.
    #[error("label {what} at byte {offset} of a WAL record is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
        /// "name" or "value".
        what: &'static str,
    },
    /// Bytes follow the last entry the count announced.
    #[error("{count} bytes after the last entry of a WAL record at byte {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many there are.
        count: usize,
    },
}

/// The type of `record` from its first byte.
pub fn record_type(record: &[u8]) -> Result<RecordType, RecordError> {
    match record.first() {
        None => Err(RecordError::Empty),
        Some(&SERIES) => Ok(RecordType::Series),
        Some(&SAMPLES) => Ok(RecordType::Samples),
        Some(&other) => Err(RecordError::UnknownType(other)),
    }
}

// === encoding ===

/// Appends one series record to `out`: each item is `(series_ref, labels)`, labels as (name,
/// value) pairs in the order they should be stored. Works from borrowed labels of any shape, e.g.
/// `labels.iter().map(|l| (&l.name, &l.value))`.
pub fn encode_series<L, N, V>(series: impl IntoIterator<Item = (u64, L)>, out: &mut Vec<u8>)
where
    L: IntoIterator<Item = (N, V)>,
    N: AsRef<str>,
    V: AsRef<str>,
{
    let count_at = start_record(SERIES, out);
    let mut count = 0u32;
    for (series_ref, labels) in series {
        put_uvarint(out, series_ref);
        // One byte is reserved for the label count; more than 127 labels move the labels once.
        let count_byte = out.len();
        out.push(0);
        let mut labels_count = 0u64;
        for (name, value) in labels {
            put_str(out, name.as_ref());
            put_str(out, value.as_ref());
            labels_count += 1;
        }
        let mut varint = [0; MAX_VARINT];
        let len = uvarint_into(&mut varint, labels_count);
        out[count_byte] = varint[0];
        if len > 1 {
            out.splice(count_byte + 1..count_byte + 1, varint[1..len].iter().copied());
        }
        count = count.wrapping_add(1);
    }
    finish_record(out, count_at, count);
}

/// Appends one samples record to `out`, without allocating per sample (at most one `reserve`,
/// sized from the iterator's lower size hint).
pub fn encode_samples(samples: impl IntoIterator<Item = SampleRecord>, out: &mut Vec<u8>) {
    let samples = samples.into_iter();
    out.reserve(RECORD_HEADER + samples.size_hint().0 * TYPICAL_SAMPLE_BYTES);
    let count_at = start_record(SAMPLES, out);
    let (mut prev_ref, mut prev_t, mut count) = (0u64, 0i64, 0u32);
    for sample in samples {
        let mut entry = [0; 2 * MAX_VARINT + 8];
        let mut len = uvarint_into(&mut entry, zigzag(sample.series_ref.wrapping_sub(prev_ref) as i64));
        len += uvarint_into(&mut entry[len..], zigzag(sample.t_ms.wrapping_sub(prev_t)));
        entry[len..len + 8].copy_from_slice(&sample.value.to_bits().to_le_bytes());
        out.extend_from_slice(&entry[..len + 8]);
        (prev_ref, prev_t) = (sample.series_ref, sample.t_ms);
        count = count.wrapping_add(1);
    }
    finish_record(out, count_at, count);
}

/// Pushes the type byte and a count placeholder; returns where the count goes.
fn start_record(kind: u8, out: &mut Vec<u8>) -> usize {
    out.push(kind);
    out.extend_from_slice(&[0; 4]);
    out.len() - 4
}

fn finish_record(out: &mut [u8], count_at: usize, count: u32) {
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_uvarint(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0; MAX_VARINT];
    let len = uvarint_into(&mut buf, v);
    out.extend_from_slice(&buf[..len]);
}

/// Writes `v` as LEB128 into the front of `buf` (at least 10 bytes); returns its length.
fn uvarint_into(buf: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    i + 1
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

// === decoding ===

/// Decodes a whole record. Label strings borrow from `record`.
pub fn decode(record: &[u8]) -> Result<Record<'_>, RecordError> {
    match record_type(record)? {
        RecordType::Series => decode_series(record).map(Record::Series),
        RecordType::Samples => {
            let mut samples = Vec::new();
            decode_samples_into(record, &mut samples)?;
            Ok(Record::Samples(samples))
        }
    }
}

/// Decodes a samples record into `out`, replacing its contents and reusing its allocation (for
/// replay loops). On error `out` is left empty.
pub fn decode_samples_into(record: &[u8], out: &mut Vec<SampleRecord>) -> Result<(), RecordError> {
    out.clear();
    let result = read_samples(record, out);
    if result.is_err() {
        out.clear();
    }
    result
}

fn read_samples(record: &[u8], out: &mut Vec<SampleRecord>) -> Result<(), RecordError> {
    let mut r = Reader::new(record, RecordType::Samples)?;
    let count = r.count()?;
    out.reserve(count.min(r.remaining() / MIN_SAMPLE_BYTES));
    let (mut series_ref, mut t_ms) = (0u64, 0i64);
    for _ in 0..count {
        series_ref = series_ref.wrapping_add(unzigzag(r.uvarint("series ref delta")?) as u64);
        t_ms = t_ms.wrapping_add(unzigzag(r.uvarint("timestamp delta")?));
        let value = f64::from_bits(r.u64_le("value")?);
        out.push(SampleRecord {
            series_ref,
            t_ms,
            value,
        });
    }
    r.finish()
}

fn decode_series(record: &[u8]) -> Result<Vec<SeriesRecord<'_>>, RecordError> {
    let mut r = Reader::new(record, RecordType::Series)?;
    let count = r.count()?;
    let mut series = Vec::with_capacity(count.min(r.remaining() / MIN_SERIES_BYTES));
    for _ in 0..count {
        let series_ref = r.uvarint("series ref")?;
        let labels_count = r.uvarint("label count")?;
        let capacity = usize::try_from(labels_count)
            .unwrap_or(usize::MAX)
            .min(r.remaining() / MIN_LABEL_BYTES);
        let mut labels = Vec::with_capacity(capacity);
        for _ in 0..labels_count {
            labels.push((r.str("name")?, r.str("value")?));
        }
        series.push(SeriesRecord { series_ref, labels });
    }
    r.finish()?;
    Ok(series)
}

/// A cursor over one record that never reads out of bounds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the type byte and positions after it.
    fn new(record: &'a [u8], expected: RecordType) -> Result<Self, RecordError> {
        let found = record_type(record)?;
        if found != expected {
            return Err(RecordError::UnexpectedType {
                expected,
                found: record[0],
            });
        }
        Ok(Reader { buf: record, pos: 1 })
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], RecordError> {
        let truncated = RecordError::Truncated { offset: self.pos, what };
        let len = usize::try_from(len).map_err(|_| truncated.clone())?;
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.get(..len))
            .ok_or(truncated)?;
        self.pos += len;
        Ok(bytes)
    }

    fn count(&mut self) -> Result<usize, RecordError> {
        let bytes = self.take(4, "entry count")?;
        let count = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    fn u64_le(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let bytes = self.take(8, what)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    fn uvarint(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..MAX_VARINT {
            let Some(&byte) = self.buf.get(start + i) else {
                return Err(RecordError::Truncated {
                    offset: start + i,
                    what,
                });
            };
            // The tenth byte holds bit 63 only.
            if i == MAX_VARINT - 1 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.pos = start + i + 1;
                return Ok(value);
            }
        }
        Err(RecordError::VarintOverflow { offset: start })
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, RecordError> {
        let len = self.uvarint(what)?;
        let offset = self.pos;
        let bytes = self.take(len, what)?;
        str::from_utf8(bytes).map_err(|_| RecordError::InvalidUtf8 { offset, what })
    }

    fn finish(self) -> Result<(), RecordError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(RecordError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
