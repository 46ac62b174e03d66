//! One queued chunk as stored on disk and kept in memory: a snappy block of `TimeSeries`
//! protobuf with its sample count and newest timestamp, framed by a length and a CRC32C.
//!
//! ```text
//! header  u32 payload length | u32 CRC32C (Castagnoli) of the payload      (8 bytes, LE)
//! payload u32 samples | i64 max timestamp (ms, i64::MIN if none) | snappy block
//! ```
//!
//! Snappy block elements refer only to bytes of their own block, so the element streams of
//! several blocks, behind one varint of their total decoded length, form one valid block that
//! decodes to the concatenated protobuf: batches are joined without recompressing
//! ([`join_blocks`]).

use bytes::Bytes;

/// Bytes of the record header (length and CRC).
pub(super) const HEADER_LEN: usize = 8;
/// Bytes of the payload before the snappy block (samples and max timestamp).
const META_LEN: usize = 12;
/// Largest payload accepted when reading, in bytes (64 MiB): a batch of `max_samples_per_send`
/// samples is far smaller, so a longer length can only come from corruption.
pub(super) const MAX_PAYLOAD_LEN: usize = 64 << 20;

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// The bytes end before the record does (a torn write).
    #[error("record truncated")]
    Truncated,
    /// The length field is too small for the metadata or above [`MAX_PAYLOAD_LEN`].
    #[error("record length {0} out of range")]
    Length(usize),
    /// The payload does not match its CRC32C.
    #[error("record checksum mismatch")]
    Checksum,
    /// The snappy block does not start with a valid length varint.
    #[error("record block header invalid")]
    Block,
}

/// A decoded record: the snappy block and what the sender needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The snappy block (its varint header included).
    block: Bytes,
    /// Offset of the first element in `block`, after the varint header.
    elements: usize,
    /// Length of the protobuf the block decodes to, in bytes.
    decoded_len: u64,
    /// Samples in the block.
    pub(crate) samples: usize,
    /// Newest sample timestamp (ms since the epoch), `i64::MIN` when unknown.
    pub(crate) max_timestamp_ms: i64,
}

impl Record {
    /// Frames a snappy `block` of `samples` samples for disk; the result is what
    /// [`Record::decode`] reads back.
    pub(crate) fn encode(samples: usize, max_timestamp_ms: i64, block: &[u8]) -> Vec<u8> {
        let payload_len = META_LEN + block.len();
        let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
        // A chunk holds at most max_samples_per_send samples, far below u32::MAX.
        let samples = u32::try_from(samples).unwrap_or(u32::MAX);
        out.extend_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&samples.to_le_bytes());
        out.extend_from_slice(&max_timestamp_ms.to_le_bytes());
        out.extend_from_slice(block);
        let crc = crc32c::crc32c(&out[HEADER_LEN..]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The payload length announced by a record header.
    ///
    /// # Errors
    /// [`RecordError::Length`] when it cannot be a record's.
    pub(super) fn payload_len(header: &[u8; HEADER_LEN]) -> Result<usize, RecordError> {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if !(META_LEN..=MAX_PAYLOAD_LEN).contains(&len) {
            return Err(RecordError::Length(len));
        }
        Ok(len)
    }

    /// The samples count of a payload whose CRC is not checked (counting what a dropped
    /// segment held); 0 when too short.
    pub(super) fn payload_samples(payload_head: &[u8]) -> usize {
        payload_head
            .first_chunk::<4>()
            .map_or(0, |b| u32::from_le_bytes(*b) as usize)
    }

    /// Decodes one whole record from `bytes` (header, then exactly the payload), sharing
    /// `bytes`' buffer.
    ///
    /// # Errors
    /// [`RecordError`] for anything but a complete record with a matching CRC.
    pub(crate) fn decode(bytes: Bytes) -> Result<Record, RecordError> {
        let header = bytes.first_chunk::<HEADER_LEN>().ok_or(RecordError::Truncated)?;
        let len = Record::payload_len(header)?;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let payload = bytes.get(HEADER_LEN..HEADER_LEN + len).ok_or(RecordError::Truncated)?;
        if crc32c::crc32c(payload) != crc {
            return Err(RecordError::Checksum);
        }
        let samples = Record::payload_samples(payload);
        let mut ts = [0; 8];
        ts.copy_from_slice(&payload[4..META_LEN]);
        let block = bytes.slice(HEADER_LEN + META_LEN..HEADER_LEN + len);
        let (decoded_len, elements) = read_varint(&block).ok_or(RecordError::Block)?;
        Ok(Record {
            block,
            elements,
            decoded_len,
            samples,
            max_timestamp_ms: i64::from_le_bytes(ts),
        })
    }

    /// A record this process just encoded ([`Record::encode`]): the CRC is not checked again.
    /// Falls back to an empty block for bytes that are not an encoded record.
    pub(crate) fn trusted(bytes: Bytes) -> Record {
        let len = bytes.len();
        let meta = bytes.get(HEADER_LEN..HEADER_LEN + META_LEN).unwrap_or(&[]);
        let samples = Record::payload_samples(meta);
        let max_timestamp_ms = meta
            .get(4..META_LEN)
            .and_then(|b| b.try_into().ok())
            .map_or(i64::MIN, i64::from_le_bytes);
        let block = bytes.slice((HEADER_LEN + META_LEN).min(len)..);
        let (decoded_len, elements) = read_varint(&block).unwrap_or((0, block.len()));
        Record {
            block,
            elements,
            decoded_len,
            samples,
            max_timestamp_ms,
        }
    }
}

/// One snappy block (an HTTP body) holding `records`' protobuf in order: the only block itself
/// when there is one, else their elements behind a new length varint.
pub(crate) fn join_blocks(records: &[Record]) -> Bytes {
    if let [only] = records {
        return only.block.clone();
    }
    let decoded: u64 = records.iter().map(|r| r.decoded_len).sum();
    let elements: usize = records.iter().map(|r| r.block.len() - r.elements).sum();
    let mut body = Vec::with_capacity(10 + elements);
    put_varint(&mut body, decoded);
    for r in records {
        body.extend_from_slice(&r.block[r.elements..]);
    }
    Bytes::from(body)
}

/// A little-endian base-128 varint at the start of `bytes` and the bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use trawl_model::labels::Labels;
    use trawl_model::remote::{Compressor, SeriesBuffer, decode_write_request, encode_labels};

    use super::*;

    fn chunk(name: &str, timestamps: std::ops::Range<i64>) -> SeriesBuffer {
        let labels = encode_labels(&Labels::from_pairs([("__name__", name), ("job", "node")]));
        let mut buffer = SeriesBuffer::default();
        for t in timestamps {
            buffer.push_sample(&labels, t, t as f64 * 1.5);
        }
        buffer
    }

    fn record(buffer: &SeriesBuffer) -> Vec<u8> {
        let block = Compressor::default().compress(buffer.proto()).unwrap().to_vec();
        Record::encode(buffer.samples(), buffer.max_timestamp_ms().unwrap_or(i64::MIN), &block)
    }

    #[test]
    fn records_round_trip() {
        let buffer = chunk("up", 0..50);
        let bytes = record(&buffer);
        let decoded = Record::decode(Bytes::from(bytes.clone())).unwrap();
        assert_eq!((decoded.samples, decoded.max_timestamp_ms), (50, 49));
        assert_eq!(decoded.decoded_len, buffer.proto().len() as u64);
        let body = join_blocks(std::slice::from_ref(&decoded));
        let request = decode_write_request(&body).unwrap();
        assert_eq!(request.timeseries.len(), 50);
        assert_eq!(request.timeseries[49].samples[0].timestamp, 49);
        assert_eq!(
            Record::payload_len(bytes.first_chunk().unwrap()),
            Ok(bytes.len() - HEADER_LEN)
        );
    }

    #[test]
    fn joined_blocks_decode_to_the_concatenated_protobuf() {
        // Repetitive buffers, so the blocks are full of back-references.
        let parts = [chunk("a", 0..300), chunk("b", 0..1), chunk("a", 300..900)];
        let records: Vec<Record> = parts
            .iter()
            .map(|p| Record::decode(Bytes::from(record(p))).unwrap())
            .collect();
        let mut joined = SeriesBuffer::default();
        parts.iter().for_each(|p| joined.append(p));
        let body = join_blocks(&records);
        let want = decode_write_request(Compressor::default().compress(joined.proto()).unwrap()).unwrap();
        let got = decode_write_request(&body).unwrap();
        assert_eq!(got.timeseries.len(), 901);
        assert_eq!(got, want);
        assert_eq!(leading_len(&body), joined.proto().len() as u64);
    }

    fn leading_len(body: &[u8]) -> u64 {
        read_varint(body).unwrap().0
    }

    #[test]
    fn every_truncation_and_flipped_byte_is_detected() {
        let bytes = record(&chunk("up", 0..20));
        for end in 0..bytes.len() {
            let cut = Bytes::copy_from_slice(&bytes[..end]);
            assert!(Record::decode(cut).is_err(), "truncated at {end}");
        }
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut broken = bytes.clone();
                broken[i] ^= bit;
                assert!(Record::decode(Bytes::from(broken)).is_err(), "flipped byte {i}");
            }
        }
    }

    #[test]
    fn hostile_lengths_are_rejected() {
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Record::payload_len(&header),
            Err(RecordError::Length(u32::MAX as usize))
        );
        header[..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(Record::payload_len(&header), Err(RecordError::Length(3)));
        // A valid CRC over a block without a varint end.
        let bytes = Record::encode(1, 0, &[0xff; 12]);
        assert_eq!(Record::decode(Bytes::from(bytes)), Err(RecordError::Block));
        assert_eq!(Record::payload_samples(&[1, 0]), 0);
    }
}
