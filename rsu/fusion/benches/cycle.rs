//! One fusion cycle (2 lidar frames, 2 camera frames, one poll) with 50 to 1000 objects on a
//! large synthetic site, after the tracks have settled, in steady state: cycle after cycle on the
//! same engine, as in the daemon.
#![allow(missing_docs)] // criterion's macros generate undocumented items

mod scenario;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Cycles run one after another before the engine starts over from its settled state.
const CYCLES_BEFORE_RESTART: usize = 30;

fn bench_cycle(c: &mut Criterion) {
    let site = scenario::site();
    let mut group = c.benchmark_group("fusion_cycle_2lidar_2camera");
    for n in [50usize, 200, 500, 1000] {
        let mut steady = scenario::SteadyState::new(&site, n, CYCLES_BEFORE_RESTART);
        eprintln!(
            "n={n}: {} confirmed objects, {} detections per cycle",
            steady.objects_seen,
            steady.detections_per_cycle()
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            // Only the cycles are timed (with dropping their output), not the occasional
            // restart from the settled engine.
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (fusion, frames, t) = steady.next_cycle();
                    let start = Instant::now();
                    black_box(scenario::run_cycle(fusion, frames, t));
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
