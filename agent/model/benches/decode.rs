//! Remote write decoding cost on the receiving side: one request of 2000 series (10 labels and
//! one sample each, as Prometheus and Trawl send them), already snappy-decompressed, read by
//! prost into owned messages versus by the zero-copy [`WriteRequestView`] into reused buffers.
//! divan reports the time per request and series/s; ns/series = time / 2000.
//!
//! Run: `cargo bench -p trawl-model --bench decode`.

use divan::Bencher;
use divan::counter::ItemsCount;
use prost::Message;
use trawl_model::remote::{SeriesBuffer, WriteRequest, WriteRequestView, encode_labels};

mod common;
use common::series;

const SERIES: usize = 2000;

fn main() {
    divan::main();
}

/// One request of [`SERIES`] series from [`series`], one sample each, as protobuf.
fn request() -> Vec<u8> {
    let mut buffer = SeriesBuffer::default();
    for i in 0..SERIES {
        buffer.push_sample(&encode_labels(&series(i)), 1_700_000_000_000 + i as i64, i as f64 * 1.5);
    }
    buffer.proto().to_vec()
}

#[divan::bench]
fn prost_2000_series(bencher: Bencher) {
    let proto = request();
    bencher.counter(ItemsCount::new(SERIES)).bench(|| {
        WriteRequest::decode(divan::black_box(proto.as_slice()))
            .map(|r| r.timeseries.len())
            .unwrap_or(0)
    });
}

#[divan::bench]
fn view_2000_series(bencher: Bencher) {
    let proto = request();
    let (mut labels, mut samples) = (Vec::new(), Vec::new());
    bencher.counter(ItemsCount::new(SERIES)).bench_local(|| {
        samples.clear();
        let mut total = 0;
        for series in WriteRequestView::new(divan::black_box(&proto)).timeseries() {
            labels.clear();
            if series.and_then(|s| s.decode_into(&mut labels, &mut samples)).is_ok() {
                total += labels.len();
            }
        }
        total
    });
}
