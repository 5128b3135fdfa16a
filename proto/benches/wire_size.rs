//! Encoded size and encode/decode speed of the broadcast frame.
//!
//! Prints the mean encoded bytes per participant for 50/200/500-participant intersection frames
//! (no path history), then times encoding and decoding the 200-participant frame.
//! Run: `cargo bench -p v2x-proto --bench wire_size`.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message;
use rsu_fusion::RoadsideFrame;
use v2x_proto::{decode, sample, wire};

fn sizes() {
    for n in [50usize, 200, 500] {
        // Average over several seeds: the sample's class mix and geometry vary with the seed.
        let seeds = 20u64;
        let total: usize =
            (0..seeds).map(|seed| wire::RoadsideFrame::from(&sample::intersection_frame(n, seed)).encoded_len()).sum();
        let mean = total as f64 / seeds as f64;
        println!("RoadsideFrame n={n}: mean {mean:.0} bytes, {:.2} bytes per participant", mean / n as f64);
    }
}

fn bench(c: &mut Criterion) {
    sizes();
    let frame = sample::intersection_frame(200, 7);
    let bytes = wire::RoadsideFrame::from(&frame).encode_to_vec();
    c.bench_function("encode RoadsideFrame n=200", |b| b.iter(|| wire::RoadsideFrame::from(&frame).encode_to_vec()));
    c.bench_function("decode+validate RoadsideFrame n=200", |b| {
        b.iter(|| decode::<RoadsideFrame>(&bytes).map(|f| f.participants.len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
