//! Validation speed: replaying a committed log through the fusion core and scoring it, on one
//! thread, compared with the log's duration.
//!
//! Run: `cargo bench -p v2x-replays --bench validate`. Prints, per log, the log duration, the
//! wall time of one validation and the speed-up over real time, then criterion's timing.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use v2x_replays::criteria::Criteria;
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::validate::validate_log;

fn log(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logs").join(name)
}

fn bench(c: &mut Criterion) {
    let config = ReplayConfig::default();
    let criteria = Criteria::default();
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for name in ["congested-intersection.mcap", "bus-pedestrian.mcap"] {
        let path = log(name);
        let started = Instant::now();
        let (report, _) = match validate_log(&path, &criteria, &config) {
            Ok(r) => r,
            Err(e) => panic!("{name}: {e}"),
        };
        let wall = started.elapsed().as_secs_f64();
        let most = report.replay.fusion.tracks_created;
        println!(
            "{name}: {:.1} s of log, {} truth frames, {} sensor frames, {most} tracks created: validated in {wall:.3} s = {:.0}x real time",
            report.metrics.duration_s,
            report.replay.truth_frames,
            report.replay.sensor_frames,
            report.metrics.duration_s / wall
        );
        group.bench_function(name, |b| b.iter(|| validate_log(&path, &criteria, &config).map(|r| r.0.passed)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
