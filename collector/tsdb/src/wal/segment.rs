//! Frames inside segment and checkpoint files: `u32 LE length | u32 LE CRC32C(length ‖ payload) |
//! payload`, and a reader that tells intact frames from damaged ones without trusting any byte.

use std::fmt;
use std::io::{self, BufReader, Read};

use super::WalError;

/// Bytes of a frame header: length and checksum.
pub(super) const HEADER_LEN: usize = 8;

/// Read buffer per file during replay.
const READ_BUFFER: usize = 256 * 1024;

/// The 8-byte header framing `payload`; errors if the payload exceeds `u32::MAX` bytes.
pub(super) fn frame_header(payload: &[u8]) -> Result<[u8; HEADER_LEN], WalError> {
    let len = u32::try_from(payload.len()).map_err(|_| WalError::RecordTooLarge { len: payload.len() })?;
    let len_bytes = len.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    let mut header = [0; HEADER_LEN];
    header[..4].copy_from_slice(&len_bytes);
    header[4..].copy_from_slice(&crc.to_le_bytes());
    Ok(header)
}

/// What is wrong with a frame: a torn write (truncated) or damaged bytes (checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Fewer than 8 bytes are left, too few for a frame header.
    TruncatedHeader {
        /// Bytes left in the file.
        available: u64,
    },
    /// The header announces more payload than the file holds.
    TruncatedPayload {
        /// Announced payload length in bytes.
        len: u32,
        /// Payload bytes left in the file.
        available: u64,
    },
    /// The CRC32C does not match the length and payload.
    ChecksumMismatch,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::TruncatedHeader { available } => {
                write!(f, "truncated frame header ({available} of {HEADER_LEN} bytes)")
            }
            Damage::TruncatedPayload { len, available } => {
                write!(f, "truncated record ({available} of {len} bytes)")
            }
            Damage::ChecksumMismatch => f.write_str("CRC32C mismatch"),
        }
    }
}

/// One step of a [`FrameReader`].
pub(super) enum Frame<'a> {
    /// An intact record payload.
    Record(&'a [u8]),
    /// The frame at [`FrameReader::offset`] is damaged; nothing after it can be trusted.
    Damaged(Damage),
    /// Clean end of the file.
    End,
}

/// Reads frames from a file of known length, reusing one payload buffer.
pub(super) struct FrameReader<R> {
    reader: BufReader<R>,
    len: u64,
    offset: u64,
    payload: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// Reads `inner`, which holds exactly `len` bytes.
    pub fn new(inner: R, len: u64) -> Self {
        FrameReader {
            reader: BufReader::with_capacity(READ_BUFFER, inner),
            len,
            offset: 0,
            payload: Vec::new(),
        }
    }

    /// Offset of the next frame: after a record, the end of that record; after damage, its start.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next frame. The length is checked against the file before any allocation, so
    /// hostile headers cannot make it allocate more than the file size.
    pub fn next_frame(&mut self) -> io::Result<Frame<'_>> {
        let left = self.len - self.offset;
        if left == 0 {
            return Ok(Frame::End);
        }
        if left < HEADER_LEN as u64 {
            return Ok(Frame::Damaged(Damage::TruncatedHeader { available: left }));
        }
        let mut header = [0; HEADER_LEN];
        self.reader.read_exact(&mut header)?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let available = left - HEADER_LEN as u64;
        if u64::from(len) > available {
            return Ok(Frame::Damaged(Damage::TruncatedPayload { len, available }));
        }
        // Fits in usize: it is at most the file length left, which was just compared.
        self.payload.resize(len as usize, 0);
        self.reader.read_exact(&mut self.payload)?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(&[l0, l1, l2, l3]), &self.payload);
        if crc != u32::from_le_bytes([c0, c1, c2, c3]) {
            return Ok(Frame::Damaged(Damage::ChecksumMismatch));
        }
        self.offset += HEADER_LEN as u64 + u64::from(len);
        Ok(Frame::Record(&self.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            out.extend_from_slice(&frame_header(r).expect("header"));
            out.extend_from_slice(r);
        }
        out
    }

    /// Reads all frames; returns the records and how it ended (`None` = clean) at which offset.
    fn read_all(bytes: &[u8]) -> (Vec<Vec<u8>>, Option<Damage>, u64) {
        let mut reader = FrameReader::new(bytes, bytes.len() as u64);
        let mut records = Vec::new();
        loop {
            match reader.next_frame().expect("in-memory read") {
                Frame::Record(r) => records.push(r.to_vec()),
                Frame::Damaged(d) => return (records, Some(d), reader.offset()),
                Frame::End => return (records, None, reader.offset()),
            }
        }
    }

    #[test]
    fn frames_round_trip_including_empty_records() {
        let bytes = framed(&[b"one", b"", b"three"]);
        assert_eq!(bytes.len(), 3 * HEADER_LEN + 8);
        let (records, damage, offset) = read_all(&bytes);
        assert_eq!(records, vec![b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!((damage, offset), (None, bytes.len() as u64));
    }

    #[test]
    fn header_layout_is_length_then_crc_of_length_and_payload() {
        let header = frame_header(b"abc").expect("header");
        assert_eq!(&header[..4], &3u32.to_le_bytes());
        let mut covered = 3u32.to_le_bytes().to_vec();
        covered.extend_from_slice(b"abc");
        assert_eq!(&header[4..], &crc32c::crc32c(&covered).to_le_bytes());
    }

    #[test]
    fn zero_filled_tail_is_damage_not_an_empty_record() {
        let mut bytes = framed(&[b"ok"]);
        let good = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 64]);
        let (records, damage, offset) = read_all(&bytes);
        assert_eq!(records, vec![b"ok".to_vec()]);
        assert_eq!(damage, Some(Damage::ChecksumMismatch));
        assert_eq!(offset, good);
    }

    #[test]
    fn every_truncation_point_is_detected_at_the_last_whole_record() {
        let bytes = framed(&[b"first record", b"second record"]);
        let first_end = (HEADER_LEN + 12) as u64;
        for cut in 0..bytes.len() {
            let (records, damage, offset) = read_all(&bytes[..cut]);
            let expect_first = cut as u64 >= first_end;
            assert_eq!(records.len(), usize::from(expect_first), "cut at {cut}");
            let clean = cut == 0 || cut as u64 == first_end;
            assert_eq!(damage.is_none(), clean, "cut at {cut}: {damage:?}");
            assert_eq!(offset, if expect_first { first_end } else { 0 });
        }
    }

    #[test]
    fn huge_announced_length_is_truncation_without_allocation() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 12]);
        let (_, damage, _) = read_all(&bytes);
        assert_eq!(
            damage,
            Some(Damage::TruncatedPayload {
                len: u32::MAX,
                available: 8
            })
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = framed(&[b"payload"]);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let (records, damage, _) = read_all(&damaged);
            assert!(records.is_empty() && damage.is_some(), "bit {bit}");
        }
    }
}
