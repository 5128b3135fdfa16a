//! The bench's fusion cycle for instruction counting: settles an engine on `n` cars (default 500),
//! then runs `cycles` cycles (default 3) one after another on it, as the daemon does, each inside
//! `timed_cycle` (which also drops the cycle's output). Count only that function with callgrind:
//!
//! ```text
//! cargo build --release -p rsu-fusion --example cycle_profile
//! valgrind --tool=callgrind --toggle-collect='cycle_profile::timed_cycle' \
//!     target/release/examples/cycle_profile 500 3
//! ```
//!
//! and divide the collected instructions by `cycles`. With a third argument `time` it prints the
//! fastest and the median wall-clock time of the cycles instead (on a busy machine the fastest is
//! the better estimate of an idle one).

#[path = "../benches/scenario/mod.rs"]
mod scenario;

use rsu_fusion::Fusion;
use rsu_fusion::measurement::SensorFrame;
use std::hint::black_box;
use std::sync::Arc;

/// Cycles run one after another before the engine starts over from its settled state.
const CYCLES_BEFORE_RESTART: usize = 30;

/// One cycle on `fusion`, dropping its output; returns the number of objects polled.
#[inline(never)]
fn timed_cycle(fusion: &mut Fusion, cycle: &[Arc<SensorFrame>], t: f64) -> usize {
    black_box(scenario::run_cycle(fusion, cycle, t)).len()
}

/// The positional argument `index` as a count, `default` when absent.
fn count_arg(index: usize, default: usize) -> Result<usize, String> {
    std::env::args().nth(index).map_or(Ok(default), |a| a.parse().map_err(|e| format!("argument {index} ({a}): {e}")))
}

fn main() -> Result<(), String> {
    let (n, cycles) = (count_arg(1, 500)?, count_arg(2, 3)?.max(1));
    let timing = std::env::args().nth(3).is_some_and(|a| a == "time");
    let site = scenario::site();
    let mut steady = scenario::SteadyState::new(&site, n, CYCLES_BEFORE_RESTART);
    let mut times_us = Vec::with_capacity(cycles);
    let mut objects = 0;
    for _ in 0..cycles {
        let (fusion, frames, t) = steady.next_cycle();
        let start = std::time::Instant::now();
        objects += timed_cycle(fusion, frames, t);
        times_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    println!(
        "n={n}: {} objects settled, {} detections per cycle; {cycles} cycles, {objects} objects polled in all",
        steady.objects_seen,
        steady.detections_per_cycle()
    );
    if timing {
        times_us.sort_by(f64::total_cmp);
        println!("per cycle: fastest {:.0} µs, median {:.0} µs", times_us[0], times_us[cycles / 2]);
    }
    Ok(())
}
