//! Remote write decoding cost on the receiving side: one request of 2000 series (10 labels and
//! one sample each, as Prometheus and Trawl send them), already snappy-decompressed, read by
//! prost into owned messages versus by the zero-copy [`WriteRequestView`] into reused buffers.
//! divan reports the time per request and series/s; ns/series = time / 2000.
//!
//! Run: `cargo bench -p trawl-model --bench decode`.

use divan::Bencher;
use divan::counter::ItemsCount;
use prost::Message;
use trawl_model::labels::Labels;
use trawl_model::remote::{SeriesBuffer, WriteRequest, WriteRequestView, encode_labels};

const SERIES: usize = 2000;

fn main() {
    divan::main();
}

/// The same node_exporter / kube shaped series as the `encode` bench.
fn series(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("http_requests_total_{}", i % 50)),
        ("job", "kubernetes-pods".to_owned()),
        ("instance", format!("10.1.{}.{}:8080", i / 250, i % 250)),
        ("namespace", "monitoring".to_owned()),
        ("pod", format!("api-7d9f8b6c5-{i:05}")),
        ("container", "api".to_owned()),
        ("node", "node-a1.example.internal".to_owned()),
        ("method", ["GET", "POST", "PUT"][i % 3].to_owned()),
        ("code", ["200", "404", "500", "503"][i % 4].to_owned()),
        ("handler", format!("/api/v1/items/{}", i % 17)),
    ])
}

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
