use proptest::collection;
use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::remote::proto::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

/// Labels as owned pairs and samples with values as bits (so NaN payloads compare equal).
type Decoded = Vec<(Vec<(String, String)>, Vec<(i64, u64)>)>;

// The prost messages of `prompb` widened with fields the view must skip: Cortex's reserved
// WriteRequest field 2, native histograms (TimeSeries field 4, as opaque bytes here) and
// unknown fields of every skippable wire type, some with multi-byte keys.

#[derive(Clone, PartialEq, prost::Message)]
struct WideRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<WideSeries>,
    #[prost(bytes = "vec", tag = "2")]
    reserved: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    metadata: Vec<MetricMetadata>,
    #[prost(uint64, tag = "15")]
    unknown_varint: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WideSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<WideLabel>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<WideSample>,
    #[prost(message, repeated, tag = "3")]
    exemplars: Vec<Exemplar>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    histograms: Vec<Vec<u8>>,
    #[prost(fixed32, tag = "5")]
    unknown_fixed32: u32,
    #[prost(sint64, tag = "1000")]
    unknown_big_tag: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WideLabel {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
    #[prost(fixed64, tag = "3")]
    unknown_fixed64: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct WideSample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
    #[prost(string, tag = "7")]
    unknown_string: String,
}

fn view_decode(proto: &[u8]) -> Result<Decoded, ViewError> {
    let mut out = Vec::new();
    let (mut labels, mut samples) = (Vec::new(), Vec::new());
    for series in WriteRequestView::new(proto).timeseries() {
        labels.clear();
        samples.clear();
        series?.decode_into(&mut labels, &mut samples)?;
        out.push((
            labels.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())).collect(),
            samples.iter().map(|&(t, v)| (t, v.to_bits())).collect(),
        ));
    }
    Ok(out)
}

fn prost_decode(proto: &[u8]) -> Result<Decoded, prost::DecodeError> {
    Ok(WriteRequest::decode(proto)?
        .timeseries
        .into_iter()
        .map(|ts| {
            (
                ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                ts.samples.iter().map(|s| (s.timestamp, s.value.to_bits())).collect(),
            )
        })
        .collect())
}

/// Reads every series through the `labels()` and `samples()` iterators instead.
fn view_decode_by_iterators(proto: &[u8]) -> Result<Decoded, ViewError> {
    WriteRequestView::new(proto)
        .timeseries()
        .map(|series| {
            let series = series?;
            let labels = series
                .labels()
                .map(|l| l.map(|(n, v)| (n.to_owned(), v.to_owned())))
                .collect::<Result<_, _>>()?;
            let samples = series
                .samples()
                .map(|s| s.map(|(t, v)| (t, v.to_bits())))
                .collect::<Result<_, _>>()?;
            Ok((labels, samples))
        })
        .collect()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-zA-Z_][a-zA-Z0-9_]{0,20}", 1 => ".{0,40}", 1 => Just(String::new())]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(-0.0), Just(f64::NAN), Just(f64::INFINITY), any::<f64>()]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![Just(0i64), Just(-1i64), Just(i64::MIN), Just(i64::MAX), any::<i64>()]
}

fn wide_label() -> impl Strategy<Value = WideLabel> {
    (text(), text(), prop_oneof![3 => Just(0u64), 1 => any::<u64>()]).prop_map(|(name, value, unknown_fixed64)| {
        WideLabel {
            name,
            value,
            unknown_fixed64,
        }
    })
}

fn wide_sample() -> impl Strategy<Value = WideSample> {
    (value(), timestamp(), prop_oneof![3 => Just(String::new()), 1 => text()]).prop_map(
        |(value, timestamp, unknown_string)| WideSample {
            value,
            timestamp,
            unknown_string,
        },
    )
}

fn exemplar() -> impl Strategy<Value = Exemplar> {
    (text(), text(), value(), timestamp()).prop_map(|(name, value_text, value, timestamp)| Exemplar {
        labels: vec![Label {
            name,
            value: value_text,
        }],
        value,
        timestamp,
    })
}

fn wide_series() -> impl Strategy<Value = WideSeries> {
    (
        collection::vec(wide_label(), 0..8),
        collection::vec(wide_sample(), 0..5),
        collection::vec(exemplar(), 0..2),
        collection::vec(collection::vec(any::<u8>(), 0..20), 0..2),
        any::<u32>(),
        prop_oneof![Just(0i64), any::<i64>()],
    )
        .prop_map(
            |(labels, samples, exemplars, histograms, unknown_fixed32, unknown_big_tag)| WideSeries {
                labels,
                samples,
                exemplars,
                histograms,
                unknown_fixed32,
                unknown_big_tag,
            },
        )
}

fn wide_request() -> impl Strategy<Value = WideRequest> {
    (
        collection::vec(wide_series(), 0..6),
        collection::vec(any::<u8>(), 0..8),
        collection::vec((text(), text()), 0..2),
        any::<u64>(),
    )
        .prop_map(|(timeseries, reserved, metadata, unknown_varint)| WideRequest {
            timeseries,
            reserved,
            metadata: metadata
                .into_iter()
                .map(|(name, help)| MetricMetadata {
                    r#type: 1,
                    metric_family_name: name,
                    help,
                    unit: String::new(),
                })
                .collect(),
            unknown_varint,
        })
}

proptest! {
    #[test]
    fn equals_prost_on_generated_requests(request in wide_request()) {
        let proto = request.encode_to_vec();
        let expected = prost_decode(&proto).unwrap();
        prop_assert_eq!(view_decode(&proto).unwrap(), expected.clone());
        prop_assert_eq!(view_decode_by_iterators(&proto).unwrap(), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_agree_with_prost(proto in collection::vec(any::<u8>(), 0..256)) {
        if let (Ok(ours), Ok(theirs)) = (view_decode(&proto), prost_decode(&proto)) {
            prop_assert_eq!(ours, theirs);
        }
        let _ = view_decode_by_iterators(&proto);
    }

    #[test]
    fn damaged_requests_never_panic_and_agree_with_prost(
        request in wide_request(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        truncate in any::<bool>(),
    ) {
        let mut proto = request.encode_to_vec();
        if proto.is_empty() {
            return Ok(());
        }
        let at = at.index(proto.len());
        if truncate {
            proto.truncate(at);
        } else {
            proto[at] = byte;
        }
        match (view_decode(&proto), prost_decode(&proto)) {
            (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs),
            (Err(e), _) => prop_assert!(error_offset(&e) <= proto.len(), "{e}"),
            (Ok(_), Err(_)) => {}
        }
    }
}

fn error_offset(e: &ViewError) -> usize {
    match *e {
        ViewError::Truncated { offset, .. }
        | ViewError::VarintOverflow { offset }
        | ViewError::InvalidKey { offset, .. }
        | ViewError::WireType { offset, .. }
        | ViewError::LengthPastEnd { offset, .. }
        | ViewError::Utf8 { offset, .. } => offset,
    }
}

/// A `TimeSeries` field 1 entry (`0a len body`) wrapping `body`, which must be under 128 bytes.
fn series(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x0a, body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn first_error(proto: &[u8]) -> ViewError {
    view_decode(proto).expect_err("must fail")
}

#[test]
fn empty_request_has_no_series() {
    assert_eq!(view_decode(&[]).unwrap(), Decoded::new());
}

#[test]
fn interleaved_fields_and_repeated_names_decode_as_prost() {
    #[rustfmt::skip]
    let body = [
        0x12, 0x02, 0x10, 0x05,                   // sample t=5, v=0
        0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'1', // label a="1"
        0x12, 0x04, 0x10, 0x06, 0x10, 0x07,       // sample with timestamp twice: t=7 wins
        // label whose name comes twice and value first: name "c" wins
        0x0a, 0x09, 0x12, 0x01, b'2', 0x0a, 0x01, b'b', 0x0a, 0x01, b'c',
    ];
    let proto = series(&body);
    let expected = prost_decode(&proto).unwrap();
    assert_eq!(
        expected,
        vec![(
            vec![("a".into(), "1".into()), ("c".into(), "2".into())],
            vec![(5, 0f64.to_bits()), (7, 0f64.to_bits())]
        )]
    );
    assert_eq!(view_decode(&proto).unwrap(), expected);
    assert_eq!(view_decode_by_iterators(&proto).unwrap(), expected);
}

#[test]
fn request_from_prompb_messages_decodes() {
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: "up".into(),
            }],
            samples: vec![Sample {
                value: 1.5,
                timestamp: -3,
            }],
            exemplars: Vec::new(),
        }],
        metadata: Vec::new(),
    };
    let proto = request.encode_to_vec();
    let view = WriteRequestView::new(&proto);
    let series = view.timeseries().next().unwrap().unwrap();
    let (mut labels, mut samples) = (vec![("keep", "me")], Vec::new());
    series.decode_into(&mut labels, &mut samples).unwrap();
    // decode_into appends: earlier entries stay.
    assert_eq!(labels, [("keep", "me"), ("__name__", "up")]);
    assert_eq!(samples, [(-3, 1.5)]);
}

#[test]
fn truncated_and_overlong_varints_are_rejected() {
    assert_eq!(
        first_error(&[0x0a, 0x80]),
        ViewError::Truncated {
            what: "varint",
            offset: 1
        }
    );
    // Eleven bytes of continuation.
    // Field 15 is unknown, so its varint is skipped.
    let mut overlong = vec![0x78];
    overlong.extend([0xff; 10]);
    overlong.push(0x01);
    assert_eq!(first_error(&overlong), ViewError::VarintOverflow { offset: 1 });
    // Ten bytes whose last carries more than bit 63.
    let mut above_64_bits = vec![0x78];
    above_64_bits.extend([0xff; 9]);
    above_64_bits.push(0x02);
    assert_eq!(first_error(&above_64_bits), ViewError::VarintOverflow { offset: 1 });
    assert!(prost_decode(&above_64_bits).is_err());
    // The same with a last byte of 1 is u64::MAX, valid.
    above_64_bits[10] = 0x01;
    assert!(view_decode(&above_64_bits).is_ok());
}

#[test]
fn invalid_keys_are_rejected() {
    assert_eq!(first_error(&[0x00]), ViewError::InvalidKey { key: 0, offset: 0 });
    // Field number 2^29 (one above the maximum), wire type 0.
    let key = [0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
    assert!(matches!(first_error(&key), ViewError::InvalidKey { offset: 0, .. }));
    assert!(prost_decode(&key).is_err());
}

#[test]
fn groups_undefined_and_wrong_wire_types_are_rejected() {
    for wire_type in [3u8, 4, 6, 7] {
        let proto = [(9 << 3) | wire_type, 0x00];
        assert_eq!(
            first_error(&proto),
            ViewError::WireType {
                message: "WriteRequest",
                field: 9,
                wire_type,
                offset: 0
            }
        );
    }
    // timeseries as a varint.
    assert!(matches!(
        first_error(&[0x08, 0x01]),
        ViewError::WireType { field: 1, .. }
    ));
    // metadata as a varint.
    assert!(matches!(
        first_error(&[0x18, 0x01]),
        ViewError::WireType { field: 3, .. }
    ));
    // TimeSeries.labels as fixed32, TimeSeries.exemplars as a varint.
    for body in [[0x0d, 0, 0, 0, 0].as_slice(), &[0x18, 0x01]] {
        assert!(matches!(
            first_error(&series(body)),
            ViewError::WireType {
                message: "TimeSeries",
                offset: 2,
                ..
            }
        ));
    }
    // Sample.value as a varint and Sample.timestamp as fixed64.
    for sample in [
        [0x12, 0x02, 0x08, 0x01].as_slice(),
        &[0x12, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0, 0],
    ] {
        let proto = series(sample);
        assert!(prost_decode(&proto).is_err());
        assert!(matches!(
            first_error(&proto),
            ViewError::WireType {
                message: "Sample",
                offset: 4,
                ..
            }
        ));
    }
    // Label.name as a varint.
    assert!(matches!(
        first_error(&series(&[0x0a, 0x02, 0x08, 0x01])),
        ViewError::WireType { message: "Label", .. }
    ));
}

#[test]
fn lengths_past_the_end_are_rejected() {
    assert_eq!(
        first_error(&[0x0a, 0x7f, 0x00]),
        ViewError::LengthPastEnd {
            len: 127,
            remaining: 1,
            offset: 1
        }
    );
    // A label longer than its series, though shorter than the request.
    let mut proto = series(&[0x0a, 0x05, 0x0a, 0x01]);
    proto.extend([0; 8]);
    assert!(matches!(
        first_error(&proto),
        ViewError::LengthPastEnd {
            len: 5,
            remaining: 2,
            offset: 3
        }
    ));
    // A length varint of 2^64 - 1.
    let mut huge = vec![0x0a];
    huge.extend([0xff; 9]);
    huge.push(0x01);
    assert!(matches!(
        first_error(&huge),
        ViewError::LengthPastEnd { len: u64::MAX, .. }
    ));
}

#[test]
fn truncated_fixed_values_are_rejected() {
    assert_eq!(
        first_error(&series(&[0x12, 0x05, 0x09, 1, 2, 3, 4])),
        ViewError::Truncated {
            what: "fixed64",
            offset: 5
        }
    );
    assert_eq!(
        first_error(&[0x15, 1, 2]),
        ViewError::Truncated {
            what: "fixed32",
            offset: 1
        }
    );
}

#[test]
fn invalid_utf8_is_rejected_in_names_and_values() {
    let bad_name = series(&[0x0a, 0x03, 0x0a, 0x01, 0xff]);
    assert_eq!(
        first_error(&bad_name),
        ViewError::Utf8 {
            part: "name",
            offset: 6
        }
    );
    let bad_value = series(&[0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, 0xc3]);
    assert_eq!(
        first_error(&bad_value),
        ViewError::Utf8 {
            part: "value",
            offset: 9
        }
    );
    assert!(prost_decode(&bad_value).is_err());
}

#[test]
fn iterators_stop_after_the_first_error() {
    // A good series, then a series with a bad label, then another good series.
    let good = series(&[0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b']);
    let mut proto = good.clone();
    proto.extend(series(&[0x0a, 0x01, 0x08]));
    proto.extend(&good);
    let all: Vec<_> = WriteRequestView::new(&proto).timeseries().collect();
    // The framing of all three is fine; the error is inside the second.
    assert_eq!(all.len(), 3);
    let second = all[1].as_ref().unwrap();
    let labels: Vec<_> = second.labels().collect();
    assert_eq!(labels.len(), 1);
    assert!(labels[0].is_err());
    // Samples only check the framing of labels, which is fine.
    assert!(second.samples().next().is_none());

    // A framing error ends the series iterator.
    let mut proto = good.clone();
    proto.extend([0x0a, 0x50]);
    proto.extend(&good);
    let items: Vec<_> = WriteRequestView::new(&proto).timeseries().collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok() && items[1].is_err());
}
