//! No false misbehaviour flags on honest vehicles: every committed log (`logs/*.mcap`, whose
//! connected vehicles all report honestly, GNSS trouble in the tunnel included) replayed through
//! the fusion core raises no flag.

use std::path::PathBuf;

use v2x_replays::ReplayReader;
use v2x_replays::pipeline::{ReplayConfig, replay};

#[test]
fn committed_logs_raise_no_misbehaviour_flag() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logs");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("logs directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 10, "{} logs", logs.len());
    let config = ReplayConfig { poll_at_truth: false, ..ReplayConfig::default() };
    let mut failures = Vec::new();
    let mut compared = 0;
    for path in &logs {
        let reader = ReplayReader::open(path).expect("opens");
        let summary = replay(reader, &config, |_| Ok::<(), String>(())).expect("replays");
        let m = &summary.fusion.misbehaviour;
        println!(
            "{}: {} vehicle states, {} compared with a lidar track, {} flags, {} reports withheld",
            path.display(),
            summary.vehicle_states,
            m.lidar_compared,
            m.total_flags(),
            m.reports_withheld
        );
        compared += m.lidar_compared;
        if m.total_flags() > 0 {
            failures.push(format!("{}: {m:?}", path.display()));
        }
    }
    assert!(failures.is_empty(), "false flags: {failures:#?}");
    // The lidar check ran on the honest cars (a test of nothing would pass too).
    assert!(compared > 500, "{compared} reports compared with a lidar track");
}
