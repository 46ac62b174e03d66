//! XOR (Gorilla) chunk encoding, byte-identical to Prometheus `tsdb/chunkenc/xor.go` and
//! `bstream.go`.
//!
//! Layout: a 2-byte big-endian sample count, then a bit stream (most significant bit first):
//! - sample 0: varint timestamp (ms), then the 64 raw bits of the value;
//! - sample 1: uvarint timestamp delta, then the value XOR-encoded against sample 0;
//! - sample n ≥ 2: delta-of-delta of the timestamp in buckets `0` | `10`+14 bits | `110`+17 bits
//!   | `1110`+20 bits | `1111`+64 bits, then the value XOR-encoded against the previous value.
//!
//! A value is encoded as `0` (same bits as before) or `1` then either `0` + the meaningful bits in
//! the previous leading/trailing-zero window, or `1` + 5 bits of leading zeros (at most 31) + 6 bits
//! of meaningful-bit count (64 written as 0) + the meaningful bits.
//!
//! Prometheus's bit writer leaves one all-zero byte at the end whenever a whole-byte write ends on
//! a byte boundary; [`BitWriter`] reproduces that so the bytes match exactly.

/// Chunk encoding byte of XOR chunks in segment files (Prometheus `chunkenc.EncXOR`).
pub const ENCODING_XOR: u8 = 1;

/// Most samples one chunk can hold (the count header is 16 bits).
pub const MAX_SAMPLES: usize = u16::MAX as usize;

/// Marker for "no leading/trailing window yet" in the encoder.
const NO_WINDOW: u8 = 0xff;

/// Errors decoding a chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Fewer than the 2 header bytes.
    #[error("chunk shorter than its 2-byte header")]
    MissingHeader,
    /// The bit stream ended before the announced number of samples was read.
    #[error("chunk data ends after {read} of {total} samples")]
    Truncated {
        /// Samples decoded successfully.
        read: u16,
        /// Samples announced by the header.
        total: u16,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("varint overflows 64 bits in sample {0}")]
    VarintOverflow(u16),
    /// Leading zeros plus meaningful bits exceed 64.
    #[error("invalid XOR window (leading {leading}, meaningful {meaningful}) in sample {sample}")]
    BadWindow {
        /// Sample index.
        sample: u16,
        /// Leading zero bits read.
        leading: u8,
        /// Meaningful bits read.
        meaningful: u8,
    },
}

// === BitWriter ===

/// Bit stream writer with Prometheus `bstream` semantics: `count` is the number of free bits in the
/// last byte (8 = an empty trailing byte, left by whole-byte writes that end aligned).
#[derive(Clone, Debug)]
struct BitWriter {
    buf: Vec<u8>,
    count: u8,
}

impl BitWriter {
    /// Writes the `n` low bits of `u`, most significant first, bit by bit as `writeBit` does.
    fn write_raw(&mut self, u: u64, mut n: u32) {
        while n > 0 {
            if self.count == 0 {
                self.buf.push(0);
                self.count = 8;
            }
            let take = n.min(u32::from(self.count));
            let bits = (u >> (n - take)) & ((1u64 << take) - 1);
            let count = u32::from(self.count);
            if let Some(last) = self.buf.last_mut() {
                *last |= (bits << (count - take)) as u8;
            }
            self.count = (count - take) as u8;
            n -= take;
        }
    }

    fn write_bit(&mut self, bit: bool) {
        self.write_raw(u64::from(bit), 1);
    }

    /// `writeBits`: whole bytes first (each via `writeByte`), then single bits.
    fn write_bits(&mut self, u: u64, n: u32) {
        self.write_raw(u, n);
        // `writeByte` always appends a byte; when the last primitive write was a whole byte that
        // ended on a boundary, that byte stays empty with 8 free bits.
        if n >= 8 && n.is_multiple_of(8) && self.count == 0 {
            self.buf.push(0);
            self.count = 8;
        }
    }

    fn write_uvarint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.write_bits((x as u8 | 0x80).into(), 8);
            x >>= 7;
        }
        self.write_bits(x, 8);
    }

    fn write_varint(&mut self, x: i64) {
        // Zig-zag, as Go `binary.PutVarint`.
        self.write_uvarint(((x << 1) ^ (x >> 63)) as u64);
    }
}

// === XorChunk ===

/// An XOR chunk being appended to; the encoder state lives beside the bytes.
#[derive(Clone, Debug)]
pub struct XorChunk {
    w: BitWriter,
    num: u16,
    first_t: i64,
    t: i64,
    t_delta: u64,
    v: f64,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk (2 header bytes, count 0).
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0, 0]);
        XorChunk {
            w: BitWriter { buf, count: 0 },
            num: 0,
            first_t: 0,
            t: 0,
            t_delta: 0,
            v: 0.0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Appends a sample (`t_ms` in ms since epoch). The caller guarantees `t_ms` is strictly
    /// greater than the previous one. Returns false, appending nothing, once the chunk holds
    /// [`MAX_SAMPLES`]; callers cut chunks long before (Prometheus: about 120 samples).
    pub fn append(&mut self, t_ms: i64, v: f64) -> bool {
        let w = &mut self.w;
        match self.num {
            u16::MAX => return false,
            0 => {
                w.write_varint(t_ms);
                w.write_bits(v.to_bits(), 64);
                self.first_t = t_ms;
            }
            1 => {
                let t_delta = t_ms.wrapping_sub(self.t) as u64;
                w.write_uvarint(t_delta);
                self.t_delta = t_delta;
                self.write_value(v);
            }
            _ => {
                let t_delta = t_ms.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                match dod {
                    0 => w.write_bit(false),
                    _ if fits_bits(dod, 14) => {
                        w.write_bits(0b10, 2);
                        w.write_bits(dod as u64, 14);
                    }
                    _ if fits_bits(dod, 17) => {
                        w.write_bits(0b110, 3);
                        w.write_bits(dod as u64, 17);
                    }
                    _ if fits_bits(dod, 20) => {
                        w.write_bits(0b1110, 4);
                        w.write_bits(dod as u64, 20);
                    }
                    _ => {
                        w.write_bits(0b1111, 4);
                        w.write_bits(dod as u64, 64);
                    }
                }
                self.t_delta = t_delta;
                self.write_value(v);
            }
        }
        self.t = t_ms;
        self.v = v;
        self.num += 1;
        self.w.buf[..2].copy_from_slice(&self.num.to_be_bytes());
        true
    }

    /// XOR-encodes `v` against the previous value (Prometheus `xorWrite`).
    fn write_value(&mut self, v: f64) {
        let delta = v.to_bits() ^ self.v.to_bits();
        let w = &mut self.w;
        if delta == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        // Leading zeros are stored in 5 bits, so at most 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != NO_WINDOW && leading >= self.leading && trailing >= self.trailing {
            w.write_bit(false);
            w.write_bits(
                delta >> self.trailing,
                64 - u32::from(self.leading) - u32::from(self.trailing),
            );
        } else {
            self.leading = leading;
            self.trailing = trailing;
            w.write_bit(true);
            w.write_bits(leading.into(), 5);
            let sigbits = 64 - u32::from(leading) - u32::from(trailing);
            // 64 meaningful bits do not fit in 6 bits; written as 0 and read back as 64.
            w.write_bits(u64::from(sigbits), 6);
            w.write_bits(delta >> trailing, sigbits);
        }
    }

    /// Number of samples appended.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// The chunk bytes (header + bit stream); a complete, valid chunk at any time.
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    /// Timestamp of the first sample (ms), if any.
    pub fn min_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.first_t)
    }

    /// Timestamp of the last sample (ms), if any.
    pub fn max_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.t)
    }

    /// Value of the last sample, if any (for duplicate checks).
    pub fn last_value(&self) -> Option<f64> {
        (self.num > 0).then_some(self.v)
    }

    /// Releases spare capacity once the chunk is closed.
    pub fn shrink_to_fit(&mut self) {
        self.w.buf.shrink_to_fit();
    }

    /// Decodes the samples appended so far.
    pub fn iter(&self) -> XorIter<'_> {
        iter_xor(self.bytes())
    }
}

/// Whether `x` fits the `nbits` bucket: `-(2^(n-1) - 1) ..= 2^(n-1)` (Prometheus `bitRange`).
fn fits_bits(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

// === XorIter ===

/// Decodes a chunk's bytes; yields `(t_ms, value)` and stops after the first error.
pub fn iter_xor(bytes: &[u8]) -> XorIter<'_> {
    XorIter {
        r: BitReader { data: bytes, pos: 16 },
        total: None,
        read: 0,
        t: 0,
        t_delta: 0,
        v: 0,
        leading: 0,
        trailing: 0,
    }
}

/// Iterator over the samples of an XOR chunk (Prometheus `xorIterator`).
#[derive(Clone, Debug)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    /// Sample count from the header; `None` until read, `Some(read)` after an error.
    total: Option<u16>,
    read: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl XorIter<'_> {
    /// Sample count announced by the header (0 if the header is missing).
    pub fn num_samples(&self) -> u16 {
        match self.r.data {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        }
    }

    fn truncated(&self) -> ChunkError {
        ChunkError::Truncated {
            read: self.read,
            total: self.num_samples(),
        }
    }

    fn next_sample(&mut self) -> Result<(i64, f64), ChunkError> {
        match self.read {
            0 => {
                self.t = self.read_uvarint().map(unzigzag)?;
                self.v = self.r.read_bits(64).ok_or_else(|| self.truncated())?;
            }
            1 => {
                self.t_delta = self.read_uvarint()?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_value()?;
            }
        }
        self.read += 1;
        Ok((self.t, f64::from_bits(self.v)))
    }

    fn read_bits(&mut self, n: u32) -> Result<u64, ChunkError> {
        self.r.read_bits(n).ok_or_else(|| self.truncated())
    }

    fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut x = 0u64;
        for i in 0..10 {
            let b = self.read_bits(8)?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                return Ok(x | (b << (7 * i)));
            }
            x |= (b & 0x7f) << (7 * i);
        }
        Err(ChunkError::VarintOverflow(self.read))
    }

    fn read_dod(&mut self) -> Result<i64, ChunkError> {
        let mut prefix = 0u8;
        for _ in 0..4 {
            let bit = self.read_bits(1)?;
            prefix = (prefix << 1) | bit as u8;
            if bit == 0 {
                break;
            }
        }
        let size = match prefix {
            0b0 => return Ok(0),
            0b10 => 14,
            0b110 => 17,
            0b1110 => 20,
            _ => return Ok(self.read_bits(64)? as i64),
        };
        let bits = self.read_bits(size)?;
        // Negative values come back as large unsigned ones.
        if bits > 1 << (size - 1) {
            Ok(bits as i64 - (1i64 << size))
        } else {
            Ok(bits as i64)
        }
    }

    fn read_value(&mut self) -> Result<(), ChunkError> {
        if self.read_bits(1)? == 0 {
            return Ok(());
        }
        if self.read_bits(1)? == 1 {
            let leading = self.read_bits(5)? as u8;
            let meaningful = match self.read_bits(6)? as u8 {
                0 => 64,
                m => m,
            };
            if u32::from(leading) + u32::from(meaningful) > 64 {
                return Err(ChunkError::BadWindow {
                    sample: self.read,
                    leading,
                    meaningful,
                });
            }
            self.leading = leading;
            self.trailing = 64 - leading - meaningful;
        }
        let meaningful = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let bits = self.read_bits(meaningful)?;
        self.v ^= bits << self.trailing;
        Ok(())
    }
}

impl Iterator for XorIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        let total = match self.total {
            Some(total) => total,
            None if self.r.data.len() < 2 => {
                self.total = Some(0);
                return Some(Err(ChunkError::MissingHeader));
            }
            None => *self.total.insert(self.num_samples()),
        };
        if self.read >= total {
            return None;
        }
        let sample = self.next_sample();
        if sample.is_err() {
            // Stop after the first error.
            self.total = Some(self.read);
        }
        Some(sample)
    }
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

// === BitReader ===

/// Reads bits most significant first from a byte slice; `pos` is in bits.
#[derive(Clone, Debug)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    /// Reads `n` (0..=64) bits; `None` past the end.
    fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        let end = self.pos.checked_add(n as usize)?;
        if end > self.data.len().checked_mul(8)? {
            return None;
        }
        let byte = self.pos >> 3;
        let off = (self.pos & 7) as u32;
        let mut v = load_be_u64(self.data, byte) << off;
        if off + n > 64 {
            v |= u64::from(self.data.get(byte + 8).copied().unwrap_or(0)) >> (8 - off);
        }
        self.pos = end;
        Some(v >> (64 - n))
    }
}

/// Big-endian u64 from `data[at..at + 8]`, zero-padded past the end.
fn load_be_u64(data: &[u8], at: usize) -> u64 {
    match data.get(at..at + 8) {
        Some(s) => u64::from_be_bytes(s.try_into().unwrap_or([0; 8])),
        None => {
            let mut b = [0u8; 8];
            let rest = data.get(at..).unwrap_or(&[]);
            b[..rest.len()].copy_from_slice(rest);
            u64::from_be_bytes(b)
        }
    }
}

#[cfg(test)]
mod tests;
