//! Remote write encoding cost: one batch of 2000 samples, one sample per series (as Trawl and
//! Prometheus send them), series of 10 labels, protobuf plus snappy. divan reports the time per
//! batch and the throughput in samples/s; ns/sample = time / 2000.

use divan::counter::ItemsCount;
use trawl_model::labels::Labels;
use trawl_model::remote::{Compressor, SeriesBuffer, encode_labels};

mod common;
use common::series;

const BATCH: usize = 2000;

fn main() {
    divan::main();
}

#[divan::bench]
fn encode_labels_per_series(bencher: divan::Bencher) {
    let labels: Vec<Labels> = (0..BATCH).map(series).collect();
    bencher.counter(ItemsCount::new(BATCH)).bench(|| {
        labels
            .iter()
            .map(|l| encode_labels(divan::black_box(l)).len())
            .sum::<usize>()
    });
}

#[divan::bench]
fn batch_2000_samples_with_snappy(bencher: divan::Bencher) {
    let labels: Vec<Vec<u8>> = (0..BATCH).map(|i| encode_labels(&series(i))).collect();
    let mut encoder = SeriesBuffer::default();
    let mut compressor = Compressor::default();
    let mut t = 1_700_000_000_000i64;
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        encoder.clear();
        t += 15_000;
        for (i, l) in labels.iter().enumerate() {
            encoder.push_sample(l, t, (i as f64) * 1.5 + (t as f64) * 1e-6);
        }
        compressor.compress(encoder.proto()).map(|body| body.len()).unwrap_or(0)
    });
}

#[divan::bench]
fn batch_2000_samples_protobuf_only(bencher: divan::Bencher) {
    let labels: Vec<Vec<u8>> = (0..BATCH).map(|i| encode_labels(&series(i))).collect();
    let mut encoder = SeriesBuffer::default();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        encoder.clear();
        for (i, l) in labels.iter().enumerate() {
            encoder.push_sample(l, 1_700_000_000_000 + i as i64, i as f64);
        }
        encoder.proto().len()
    });
}
