//! Validation speed: replaying a log through the fusion core and scoring it, on one thread,
//! compared with the log's duration.
//!
//! Logs: two committed scenario logs (`logs/`) and `benches/data/dense-200.mcap`, the shape of the
//! speed goal (about 200 participants, ground truth at 10 Hz; see `benches/data/README.md`).
//!
//! Run: `cargo bench -p v2x-replays --bench validate`. Prints, per log, the log duration, the
//! median wall time of a few validations and the speed-up over real time, then criterion's timing.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use v2x_replays::criteria::Criteria;
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::validate::validate_log;

/// The measured logs, relative to this crate.
const LOGS: [&str; 3] = ["logs/congested-intersection.mcap", "logs/bus-pedestrian.mcap", "benches/data/dense-200.mcap"];

/// Validations timed for the printed median (after one untimed warm-up).
const TIMED_RUNS: usize = 5;

fn bench(c: &mut Criterion) {
    let config = ReplayConfig::default();
    let criteria = Criteria::default();
    let mut group = c.benchmark_group("validate");
    group.sample_size(10);
    for relative in LOGS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
        let name = path.file_name().map_or_else(|| relative.to_owned(), |n| n.to_string_lossy().into_owned());
        let validate = || match validate_log(&path, &criteria, &config) {
            Ok((report, _)) => report,
            Err(e) => panic!("{name}: {e}"),
        };
        let report = validate();
        let mut walls_s: Vec<f64> = (0..TIMED_RUNS)
            .map(|_| {
                let started = Instant::now();
                validate();
                started.elapsed().as_secs_f64()
            })
            .collect();
        walls_s.sort_by(f64::total_cmp);
        let wall_s = walls_s[TIMED_RUNS / 2];
        println!(
            "{name}: {:.1} s of log, {} truth frames, {} sensor frames, {} tracks created: validated in {wall_s:.3} s \
             (median of {TIMED_RUNS}, {:.3}-{:.3} s) = {:.0}x real time",
            report.metrics.duration_s,
            report.replay.truth_frames,
            report.replay.sensor_frames,
            report.replay.fusion.tracks_created,
            walls_s[0],
            walls_s[TIMED_RUNS - 1],
            report.metrics.duration_s / wall_s
        );
        group.bench_function(name.as_str(), |b| b.iter(|| validate_log(&path, &criteria, &config).map(|r| r.0.passed)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
