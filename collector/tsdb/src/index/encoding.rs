//! Byte-level encoding shared by the block files, as Prometheus `tsdb/encoding`: Go-compatible
//! varints, big-endian integers, length-prefixed strings, and a bounds-checked decoder that
//! returns errors instead of panicking on hostile input.

/// Errors of [`Decbuf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes left than the value needs.
    #[error("unexpected end of data")]
    Eof,
    /// A varint longer than 10 bytes or overflowing 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
}

/// Appends `x` as an unsigned LEB128 varint (Go `binary.PutUvarint`).
pub fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends `x` as a zig-zag varint (Go `binary.PutVarint`).
pub fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

/// Appends a uvarint length and the bytes of `s`.
pub fn put_uvarint_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Number of bytes [`put_uvarint`] writes for `x`.
pub fn uvarint_len(x: u64) -> usize {
    (64 - (x | 1).leading_zeros() as usize).div_ceil(7)
}

/// CRC32 Castagnoli of `data`, as every checksum in a block.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Bounds-checked reader over a byte slice.
#[derive(Clone, Copy, Debug)]
pub struct Decbuf<'a> {
    b: &'a [u8],
}

impl<'a> Decbuf<'a> {
    /// Reads from the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Decbuf { b }
    }

    /// Bytes left.
    pub fn len(&self) -> usize {
        self.b.len()
    }

    /// Whether no bytes are left.
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// The bytes left.
    pub fn rest(&self) -> &'a [u8] {
        self.b
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.b.len() {
            return Err(DecodeError::Eof);
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.bytes(n).map(|_| ())
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// Big-endian u32.
    pub fn be32(&mut self) -> Result<u32, DecodeError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Big-endian u64.
    pub fn be64(&mut self) -> Result<u64, DecodeError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Unsigned varint (Go `binary.Uvarint` rules: at most 10 bytes, no overflow).
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let mut x = 0u64;
        for i in 0..10 {
            let Some(&b) = self.b.get(i) else {
                return Err(DecodeError::Eof);
            };
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(DecodeError::VarintOverflow);
                }
                self.b = &self.b[i + 1..];
                return Ok(x | u64::from(b) << (7 * i));
            }
            x |= u64::from(b & 0x7f) << (7 * i);
        }
        Err(DecodeError::VarintOverflow)
    }

    /// Zig-zag varint.
    pub fn varint(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Uvarint that must fit a u32.
    pub fn uvarint32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.uvarint()?).map_err(|_| DecodeError::VarintOverflow)
    }

    /// Uvarint length followed by that many bytes.
    pub fn uvarint_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.uvarint()?;
        self.bytes(usize::try_from(n).map_err(|_| DecodeError::Eof)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_match_go_lengths() {
        for x in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, x);
            assert_eq!(b.len(), uvarint_len(x), "{x}");
            assert_eq!(Decbuf::new(&b).uvarint(), Ok(x));
        }
        for x in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, x);
            assert_eq!(Decbuf::new(&b).varint(), Ok(x));
        }
        let mut b = Vec::new();
        put_varint(&mut b, -1);
        assert_eq!(b, [1]);
    }

    #[test]
    fn hostile_input_errors() {
        assert_eq!(Decbuf::new(&[0x80]).uvarint(), Err(DecodeError::Eof));
        assert_eq!(Decbuf::new(&[0xff; 11]).uvarint(), Err(DecodeError::VarintOverflow));
        assert_eq!(
            Decbuf::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).uvarint(),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(Decbuf::new(&[1, 2, 3]).be32(), Err(DecodeError::Eof));
        assert_eq!(Decbuf::new(&[5, b'a']).uvarint_bytes(), Err(DecodeError::Eof));
        assert_eq!(
            Decbuf::new(&[0x80, 0x80, 0x80, 0x80, 0x10]).uvarint32(),
            Err(DecodeError::VarintOverflow)
        );
    }
}
