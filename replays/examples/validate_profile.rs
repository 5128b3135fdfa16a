//! One log's validation for instruction counting and profiling: validates `LOG` (default
//! `benches/data/dense-200.mcap`) `runs` times (default 1), each inside `timed_validation`. Count
//! only that function with callgrind:
//!
//! ```text
//! cargo build --release -p v2x-replays --example validate_profile
//! valgrind --tool=callgrind --toggle-collect='validate_profile::timed_validation' \
//!     target/release/examples/validate_profile replays/benches/data/dense-200.mcap 1
//! ```
//!
//! With a third argument `time` it prints the fastest and the median wall-clock time of the runs
//! and the speed-up over the log's duration.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use v2x_replays::criteria::Criteria;
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::report::LogReport;
use v2x_replays::validate::validate_log;

/// One validation of `path`.
#[inline(never)]
fn timed_validation(path: &Path, criteria: &Criteria, config: &ReplayConfig) -> Result<LogReport, String> {
    black_box(validate_log(path, criteria, config).map(|(report, _)| report).map_err(|e| e.to_string()))
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/data/dense-200.mcap"), PathBuf::from);
    let runs: usize = args.next().map_or(Ok(1), |a| a.parse().map_err(|e| format!("runs ({a}): {e}")))?;
    let timing = args.next().is_some_and(|a| a == "time");
    let (criteria, config) = (Criteria::default(), ReplayConfig::default());
    let mut walls_s = Vec::with_capacity(runs.max(1));
    let mut duration_s = 0.0;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let report = timed_validation(&path, &criteria, &config)?;
        walls_s.push(started.elapsed().as_secs_f64());
        duration_s = report.metrics.duration_s;
    }
    if timing {
        walls_s.sort_by(f64::total_cmp);
        let (fastest, median) = (walls_s[0], walls_s[walls_s.len() / 2]);
        println!(
            "{}: {duration_s:.1} s of log; fastest {:.1} ms ({:.0}x), median {:.1} ms ({:.0}x)",
            path.display(),
            fastest * 1e3,
            duration_s / fastest,
            median * 1e3,
            duration_s / median
        );
    }
    Ok(())
}
