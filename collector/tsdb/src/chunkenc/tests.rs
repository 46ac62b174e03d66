use proptest::prelude::*;

use super::*;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn decode(bytes: &[u8]) -> Vec<(i64, u64)> {
    iter_xor(bytes)
        .map(|s| s.map(|(t, v)| (t, v.to_bits())))
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn empty_chunk_is_just_the_header() {
    let c = XorChunk::new();
    assert_eq!(c.bytes(), &[0, 0]);
    assert_eq!(c.num_samples(), 0);
    assert_eq!(c.min_time(), None);
    assert_eq!(c.iter().count(), 0);
}

// Derived by hand from xor.go/bstream.go: varint(1000) = D0 0F; 1.0 = 3FF0..; bstream leaves an
// empty byte after aligned whole-byte writes, so a one-sample chunk ends in 00.
#[test]
fn one_sample_matches_prometheus_bytes() {
    let mut c = XorChunk::new();
    c.append(1000, 1.0);
    assert_eq!(c.bytes(), &[0x00, 0x01, 0xD0, 0x0F, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x00]);
}

// Sample 1: uvarint(1000) = E8 07, same value = bit 0. Sample 2: dod 0 = bit 0, value 2.0 XOR 1.0 =
// 0x7FF0.. → 1 1 00001 001011 11111111111 (leading 1, 11 meaningful bits).
#[test]
fn three_samples_match_prometheus_bytes() {
    let mut c = XorChunk::new();
    c.append(1000, 1.0);
    c.append(2000, 1.0);
    c.append(3000, 2.0);
    let want = [
        0x00, 0x03, 0xD0, 0x0F, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0xE8, 0x07, 0x30, 0x97, 0xFF, 0xC0,
    ];
    assert_eq!(c.bytes(), &want);
    assert_eq!(
        decode(&want),
        vec![
            (1000, 1.0f64.to_bits()),
            (2000, 1.0f64.to_bits()),
            (3000, 2.0f64.to_bits())
        ]
    );
    assert_eq!((c.min_time(), c.max_time()), (Some(1000), Some(3000)));
}

#[test]
fn dod_bucket_edges_round_trip() {
    // Each delta-of-delta lands on a bucket edge: ±2^13, 2^13+1, ±2^16, ±2^19, beyond.
    let dods: [i64; 12] = [
        0,
        8192,
        -8191,
        8193,
        -8192,
        65536,
        -65535,
        65537,
        524_288,
        -524_287,
        524_289,
        -1 << 40,
    ];
    let mut c = XorChunk::new();
    let (mut t, mut delta) = (0i64, 1i64 << 41);
    let mut want = Vec::new();
    for (i, dod) in dods.iter().enumerate() {
        delta += dod;
        t += delta;
        c.append(t, i as f64);
        want.push((t, (i as f64).to_bits()));
    }
    assert_eq!(decode(c.bytes()), want);
}

#[test]
fn special_values_round_trip_bit_exact() {
    let values = [
        STALE_NAN,
        f64::NAN.to_bits(),
        0x7ff8_0000_0000_0001,
        f64::INFINITY.to_bits(),
        f64::NEG_INFINITY.to_bits(),
        (-0.0f64).to_bits(),
        0,
        1,
        u64::MAX,
        STALE_NAN,
        0x8000_0000_0000_0001,
    ];
    let mut c = XorChunk::new();
    for (i, v) in values.iter().enumerate() {
        c.append(i as i64 * 15_000 - 30_000, f64::from_bits(*v));
    }
    let got: Vec<u64> = decode(c.bytes()).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, values);
}

#[test]
fn full_chunk_refuses_more_samples() {
    let mut c = XorChunk::new();
    for t in 0..MAX_SAMPLES as i64 {
        assert!(c.append(t, 1.0));
    }
    assert!(!c.append(1 << 40, 1.0));
    assert_eq!(c.num_samples(), MAX_SAMPLES);
    assert_eq!(c.iter().count(), MAX_SAMPLES);
}

#[test]
fn hostile_chunks_error_without_panic() {
    assert_eq!(iter_xor(&[]).next(), Some(Err(ChunkError::MissingHeader)));
    assert_eq!(iter_xor(&[7]).collect::<Vec<_>>(), vec![Err(ChunkError::MissingHeader)]);
    // Header announces samples that are not there.
    assert!(matches!(
        iter_xor(&[0, 5]).next(),
        Some(Err(ChunkError::Truncated { read: 0, total: 5 }))
    ));
    // Varint of 11 continuation bytes.
    let mut long = vec![0, 1];
    long.extend([0xff; 11]);
    assert!(matches!(
        iter_xor(&long).next(),
        Some(Err(ChunkError::VarintOverflow(0)))
    ));
    // Window: leading 31, meaningful 63 → 94 bits.
    let mut c = XorChunk::new();
    c.append(0, 1.0);
    let mut bad = c.bytes()[..c.bytes().len() - 1].to_vec();
    bad[1] = 2;
    bad.extend([0x01, 0b1111_1111, 0b1111_1000, 0, 0, 0, 0, 0, 0, 0, 0]);
    let r: Vec<_> = iter_xor(&bad).collect();
    assert!(
        matches!(
            r[1],
            Err(ChunkError::BadWindow {
                leading: 31,
                meaningful: 63,
                ..
            })
        ),
        "{r:?}"
    );
}

fn timestamps() -> impl Strategy<Value = Vec<i64>> {
    let delta = prop_oneof![
        3 => Just(15_000i64),
        3 => 14_990i64..15_010,
        2 => 1i64..100,
        1 => 1i64..(1 << 40),
    ];
    (-(1i64 << 50)..(1i64 << 50), prop::collection::vec(delta, 0..300)).prop_map(|(start, deltas)| {
        let mut t = start;
        let mut out = vec![start];
        for d in deltas {
            t += d;
            out.push(t);
        }
        out
    })
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        3 => (-1000i32..1000).prop_map(|x| f64::from(x).to_bits()),
        1 => Just(STALE_NAN),
        1 => Just(f64::NAN.to_bits()),
        1 => Just(f64::INFINITY.to_bits()),
        1 => Just(f64::NEG_INFINITY.to_bits()),
        1 => Just((-0.0f64).to_bits()),
        1 => 0x7ff0_0000_0000_0001u64..0x7fff_ffff_ffff_ffff,
    ]
}

proptest! {
    #[test]
    fn round_trip(ts in timestamps(), vals in prop::collection::vec(value(), 301)) {
        let mut c = XorChunk::new();
        let want: Vec<(i64, u64)> = ts.iter().zip(&vals).map(|(t, v)| (*t, *v)).collect();
        for (t, v) in &want {
            prop_assert!(c.append(*t, f64::from_bits(*v)));
            // The chunk must be valid after every append.
            prop_assert_eq!(c.iter().last().map(|s| s.map(|(t, v)| (t, v.to_bits()))), Some(Ok((*t, *v))));
        }
        prop_assert_eq!(decode(c.bytes()), want);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let n = iter_xor(&bytes).take(70_000).count();
        prop_assert!(n <= usize::from(u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)])) + 1);
    }
}
