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
