use proptest::prelude::*;

use super::*;

fn series_bytes(series: &[SeriesRecord<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_series(
        series.iter().map(|s| (s.series_ref, s.labels.iter().copied())),
        &mut out,
    );
    out
}

fn samples_bytes(samples: &[SampleRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_samples(samples.iter().copied(), &mut out);
    out
}

fn sample(series_ref: u64, t_ms: i64, value: f64) -> SampleRecord {
    SampleRecord {
        series_ref,
        t_ms,
        value,
    }
}

/// Compares samples bit for bit (NaN payloads included).
fn same_samples(a: &[SampleRecord], b: &[SampleRecord]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.series_ref, x.t_ms, x.value.to_bits()) == (y.series_ref, y.t_ms, y.value.to_bits()))
}

fn valid_records() -> Vec<Vec<u8>> {
    let series = [
        SeriesRecord {
            series_ref: 1,
            labels: vec![("__name__", "up"), ("job", "node")],
        },
        SeriesRecord {
            series_ref: 300,
            labels: vec![("__name__", "ü"), ("", "")],
        },
    ];
    let samples = [
        sample(1, 1_700_000_000_000, 1.0),
        sample(300, 1_700_000_000_000, f64::NAN),
        sample(2, -5, -0.0),
    ];
    vec![
        series_bytes(&series),
        samples_bytes(&samples),
        series_bytes(&[]),
        samples_bytes(&[]),
    ]
}

#[test]
fn series_round_trip_borrows_labels_from_the_record() {
    let series = vec![
        SeriesRecord {
            series_ref: 0,
            labels: vec![],
        },
        SeriesRecord {
            series_ref: u64::MAX,
            labels: vec![("__name__", "a_b"), ("le", "+Inf"), ("x", "日本")],
        },
    ];
    let bytes = series_bytes(&series);
    assert_eq!(bytes[0], SERIES);
    assert_eq!(&bytes[1..5], &2u32.to_le_bytes());
    let Record::Series(decoded) = decode(&bytes).expect("decode") else {
        panic!("not series")
    };
    assert_eq!(decoded, series);
    let name = decoded[1].labels[2].1;
    assert!(
        bytes.as_ptr_range().contains(&name.as_ptr()),
        "label string is borrowed, not copied"
    );
}

#[test]
fn more_than_127_labels_use_a_multi_byte_count() {
    let names: Vec<String> = (0..300).map(|i| format!("l{i:03}")).collect();
    let labels: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let series = vec![
        SeriesRecord {
            series_ref: 7,
            labels: labels.clone(),
        },
        SeriesRecord {
            series_ref: 8,
            labels: labels[..5].to_vec(),
        },
    ];
    let bytes = series_bytes(&series);
    let Record::Series(decoded) = decode(&bytes).expect("decode") else {
        panic!("not series")
    };
    assert_eq!(decoded, series);
}

#[test]
fn encoders_append_to_existing_bytes() {
    let mut out = b"prefix".to_vec();
    encode_samples([sample(1, 2, 3.0)], &mut out);
    let start = out.len();
    encode_series([(5u64, [("a", "b")])], &mut out);
    assert_eq!(&out[..6], b"prefix");
    let Record::Samples(samples) = decode(&out[6..start]).expect("samples") else {
        panic!("not samples")
    };
    assert!(same_samples(&samples, &[sample(1, 2, 3.0)]));
    let Record::Series(series) = decode(&out[start..]).expect("series") else {
        panic!("not series")
    };
    assert_eq!(
        series,
        vec![SeriesRecord {
            series_ref: 5,
            labels: vec![("a", "b")]
        }]
    );
}

#[test]
fn a_scrape_batch_costs_ten_bytes_per_sample() {
    let t = 1_700_000_000_000;
    let batch: Vec<SampleRecord> = (1000..3000).map(|r| sample(r, t, r as f64)).collect();
    let bytes = samples_bytes(&batch);
    // First sample: 2-byte ref, 6-byte timestamp; the rest: 1-byte deltas and the value.
    assert_eq!(bytes.len(), RECORD_HEADER + (2 + 6 + 8) + 1999 * 10);
    let mut decoded = Vec::new();
    decode_samples_into(&bytes, &mut decoded).expect("decode");
    assert!(same_samples(&decoded, &batch));
}

#[test]
fn decode_samples_into_reuses_and_clears_on_error() {
    let mut out = vec![sample(9, 9, 9.0); 3];
    decode_samples_into(&samples_bytes(&[sample(1, 1, 1.0)]), &mut out).expect("decode");
    assert!(same_samples(&out, &[sample(1, 1, 1.0)]));
    let err = decode_samples_into(&series_bytes(&[]), &mut out).expect_err("wrong type");
    assert_eq!(
        err,
        RecordError::UnexpectedType {
            expected: RecordType::Samples,
            found: SERIES
        }
    );
    assert!(out.is_empty());
}

#[test]
fn record_type_reads_the_first_byte() {
    assert_eq!(record_type(&[SERIES]), Ok(RecordType::Series));
    assert_eq!(record_type(&[SAMPLES, 9]), Ok(RecordType::Samples));
    assert_eq!(record_type(&[]), Err(RecordError::Empty));
    assert_eq!(record_type(&[0]), Err(RecordError::UnknownType(0)));
}

#[test]
fn malformed_records_are_errors() {
    assert_eq!(decode(&[]), Err(RecordError::Empty));
    assert_eq!(decode(&[77, 0, 0, 0, 0]), Err(RecordError::UnknownType(77)));
    assert_eq!(
        decode(&[SAMPLES, 0, 0]),
        Err(RecordError::Truncated {
            offset: 1,
            what: "entry count"
        })
    );

    // Eleven continuation bytes, and a tenth byte carrying more than bit 63.
    let mut overflow = vec![SERIES, 1, 0, 0, 0];
    overflow.extend_from_slice(&[0xff; 11]);
    assert_eq!(decode(&overflow), Err(RecordError::VarintOverflow { offset: 5 }));
    let mut tenth = vec![SAMPLES, 1, 0, 0, 0];
    tenth.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]);
    assert_eq!(decode(&tenth), Err(RecordError::VarintOverflow { offset: 5 }));
    // u64::MAX itself (tenth byte = 1) is fine.
    assert!(same_samples(&[sample(u64::MAX, 0, 0.0)], &{
        let Ok(Record::Samples(s)) = decode(&samples_bytes(&[sample(u64::MAX, 0, 0.0)])) else {
            panic!("decode")
        };
        s
    }));

    // Label value with invalid UTF-8: ref 1, one label, name "a", value [0xff].
    let bad_utf8 = [SERIES, 1, 0, 0, 0, 1, 1, 1, b'a', 1, 0xff];
    assert_eq!(
        decode(&bad_utf8),
        Err(RecordError::InvalidUtf8 {
            offset: 10,
            what: "value"
        })
    );

    // A huge count with no entries is truncation, and allocates nothing large.
    assert_eq!(
        decode(&[SAMPLES, 0xff, 0xff, 0xff, 0xff]),
        Err(RecordError::Truncated {
            offset: 5,
            what: "series ref delta"
        })
    );
    // A huge label count and a huge string length.
    let huge_labels = [SERIES, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(
        decode(&huge_labels),
        Err(RecordError::Truncated { what: "name", .. })
    ));
    let huge_len = [
        SERIES, 1, 0, 0, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    assert!(matches!(
        decode(&huge_len),
        Err(RecordError::Truncated {
            offset: 17,
            what: "name"
        })
    ));
}

#[test]
fn every_proper_prefix_and_any_trailing_byte_is_an_error() {
    for record in valid_records() {
        assert!(decode(&record).is_ok());
        for cut in 0..record.len() {
            assert!(decode(&record[..cut]).is_err(), "prefix of {} bytes of {record:?}", cut);
        }
        let mut longer = record.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer),
            Err(RecordError::TrailingBytes {
                offset: record.len(),
                count: 1
            })
        );
    }
}

fn arb_labels() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((".{0,12}", ".{0,20}"), 0..12)
}

proptest! {
    #[test]
    fn series_round_trip(series in prop::collection::vec((any::<u64>(), arb_labels()), 0..20)) {
        let records: Vec<SeriesRecord<'_>> = series
            .iter()
            .map(|(r, labels)| SeriesRecord {
                series_ref: *r,
                labels: labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
            })
            .collect();
        let bytes = series_bytes(&records);
        prop_assert_eq!(decode(&bytes), Ok(Record::Series(records)));
    }

    #[test]
    fn samples_round_trip(raw in prop::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..200)) {
        let samples: Vec<SampleRecord> = raw.iter().map(|&(r, t, v)| sample(r, t, f64::from_bits(v))).collect();
        let Ok(Record::Samples(decoded)) = decode(&samples_bytes(&samples)) else {
            return Err(TestCaseError::fail("samples did not decode"));
        };
        prop_assert!(same_samples(&decoded, &samples));
    }

    #[test]
    fn hostile_bytes_never_panic(kind in 0u8..4, body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut record = vec![kind];
        record.extend_from_slice(&body);
        let _ = decode(&record);
        let _ = decode(&body);
        let mut samples = Vec::new();
        let _ = decode_samples_into(&record, &mut samples);
    }

    #[test]
    fn flipped_bytes_of_valid_records_never_panic(which in 0usize..4, at in any::<prop::sample::Index>(), bits in 1u8..=255) {
        let mut record = valid_records().swap_remove(which);
        let i = at.index(record.len());
        record[i] ^= bits;
        let _ = decode(&record);
    }
}
