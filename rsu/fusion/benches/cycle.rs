//! One fusion cycle (2 lidar frames, 2 camera frames, one poll) with 50 to 1000 objects on a
//! large synthetic site, after the tracks have settled.
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod scenario;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn bench_cycle(c: &mut Criterion) {
    let site = scenario::site();
    let mut group = c.benchmark_group("fusion_cycle_2lidar_2camera");
    for n in [50usize, 200, 500, 1000] {
        // Settle the tracks over 2 s, then time one more cycle repeatedly (each iteration
        // replays the same cycle on a clone of the settled engine).
        let (fusion, objects_seen, t, cycle) = scenario::settled(&site, n);
        let dets: usize = cycle.iter().map(|f| f.detections.len()).sum();
        eprintln!("n={n}: {objects_seen} confirmed objects, {dets} detections per cycle");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || fusion.clone(),
                |mut f| black_box(scenario::run_cycle(&mut f, &cycle, t)),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
