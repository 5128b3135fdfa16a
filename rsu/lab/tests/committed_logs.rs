//! Every committed scenario replay validates and passes its default criteria, and a camera
//! extrinsic off by 2 m makes the bus-pedestrian scenario fail with a readable reason.

use std::path::PathBuf;
use std::process::Command;

fn logs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../replays/logs")
}

#[test]
fn committed_logs_pass_their_criteria() {
    let out = Command::new(env!("CARGO_BIN_EXE_rsu-lab"))
        .args(["replay", "validate"])
        .arg(logs_dir())
        .output()
        .expect("rsu runs");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("10 of 10 logs passed"), "{text}");
}

#[test]
fn a_camera_extrinsic_off_by_two_metres_fails_with_the_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("broken.toml");
    std::fs::write(&config, "[calibration_offsets.cam-sw]\ntranslation_m = [2.0, 0.0, 0.0]\n").expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_rsu-lab"))
        .args(["replay", "validate"])
        .arg(logs_dir().join("bus-pedestrian.mcap"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("rsu runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // The camera's detections land 2 m off: the fused positions drift towards them.
    assert!(
        text.contains("FAIL") && text.contains("position RMSE [m]") && text.contains("exceeds the maximum"),
        "{text}"
    );
}

/// The road safety information detector over the re-fused tracks of three committed logs: the
/// broken-down car of stopped-vehicle is reported as a stopped vehicle in its lane, and it is a
/// car standing there in the truth; congested-intersection's queues are congestion; ordinary
/// traffic at the intersection (lidar-failure) raises nothing.
#[test]
fn rsi_events_of_committed_logs() {
    let out = Command::new(env!("CARGO_BIN_EXE_rsu-lab"))
        .args(["replay", "rsi", "--json"])
        .arg(logs_dir().join("stopped-vehicle.mcap"))
        .arg(logs_dir().join("congested-intersection.mcap"))
        .arg(logs_dir().join("lidar-failure.mcap"))
        .output()
        .expect("rsu-lab runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let logs: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let events = |i: usize| logs[i]["events"].as_array().cloned().expect("events");
    let kinds = |i: usize| events(i).iter().map(|e| e["kind"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();

    let stopped = events(0);
    assert_eq!(kinds(0), ["stopped_vehicle"], "{text}");
    assert_eq!(stopped[0]["lane"], "mlr-eb-2");
    let truth = stopped[0]["nearest_truth"].as_str().expect("truth");
    assert!(truth.starts_with("car ") && truth.contains(" 0.0 m/s"), "{truth}");
    assert!(stopped[0]["start_s"].as_f64().expect("start") < 8.0, "{text}");

    assert!(!kinds(1).is_empty() && kinds(1).iter().all(|k| k == "congestion"), "{text}");
    assert!(kinds(2).is_empty(), "{text}");
}
