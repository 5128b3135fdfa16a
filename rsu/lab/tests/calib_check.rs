//! `rsu-lab replay calib-check` end to end with the real binary on committed logs: no drift is
//! found where there is none; a lidar or camera whose declared calibration is offset (the replay's
//! `calibration_offsets`, the log's detections untouched) is flagged with the offset recovered,
//! sign included; the corrected calibration it writes brings the pose back and passes; a damaged
//! log is an error with exit code 2, never a panic.

use std::path::{Path, PathBuf};

mod common;
use common::{committed, lab, path, text};

/// The JSON report of a check, with its exit code.
fn check(log: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["replay", "calib-check", path(log), "--json"];
    args.extend_from_slice(extra);
    let out = lab(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), report)
}

/// The estimate of `sensor` in a report: (dx m, dy m, dyaw deg, verdict).
fn estimate(report: &serde_json::Value, sensor: &str) -> (f64, f64, f64, String) {
    let s = report["sensors"]
        .as_array()
        .expect("sensors")
        .iter()
        .find(|s| s["sensor_id"] == sensor)
        .unwrap_or_else(|| panic!("{sensor} in {report}"));
    let e = &s["estimate"];
    let f = |k: &str| e[k].as_f64().unwrap_or_else(|| panic!("{k} of {sensor} in {s}"));
    (f("dx_m"), f("dy_m"), f("dyaw_deg"), s["verdict"].as_str().expect("verdict").to_owned())
}

fn write_offset(dir: &Path, sensor: &str, dx: f64, dy: f64, dyaw: f64) -> PathBuf {
    let config = dir.join(format!("offset-{sensor}.toml"));
    std::fs::write(
        &config,
        format!("[calibration_offsets.{sensor}]\ntranslation_m = [{dx}, {dy}, 0.0]\nyaw_deg = {dyaw}\n"),
    )
    .expect("config");
    config
}

#[test]
fn committed_logs_show_no_drift() {
    let all = ["lidar-ne", "lidar-sw", "cam-ne", "cam-sw"];
    for name in ["congested-intersection.mcap", "bus-pedestrian.mcap"] {
        let args: Vec<&str> = all.iter().flat_map(|s| ["--sensor", s]).collect();
        let (code, report) = check(&committed(name), &args);
        for sensor in all {
            let (dx, dy, dyaw, verdict) = estimate(&report, sensor);
            println!("{name} {sensor}: dx {dx:+.3} m, dy {dy:+.3} m, dyaw {dyaw:+.3} deg: {verdict}");
            assert_eq!(verdict, "ok", "{report}");
            assert!(dx.hypot(dy) < 0.2 && dyaw.abs() < 0.5, "{name} {sensor}: {report}");
        }
        assert_eq!(code, Some(0), "{report}");
    }
}

#[test]
fn an_offset_lidar_is_flagged_recovered_and_corrected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let congested = committed("congested-intersection.mcap");
    let (dx, dy, dyaw) = (0.5, 0.4, 1.5);
    let config = write_offset(tmp.path(), "lidar-sw", dx, dy, dyaw);
    let corrected = tmp.path().join("corrected-site.toml");
    let (code, report) =
        check(&congested, &["--sensor", "lidar-sw", "--config", path(&config), "--write-corrected", path(&corrected)]);
    let (ex, ey, eyaw, verdict) = estimate(&report, "lidar-sw");
    println!("applied ({dx}, {dy}, {dyaw}), recovered ({ex:+.3}, {ey:+.3}, {eyaw:+.3})");
    assert_eq!((code, verdict.as_str()), (Some(1), "drift"), "{report}");
    assert!((ex - dx).hypot(ey - dy) < 0.2, "translation recovered within 0.2 m: {report}");
    assert!((eyaw - dyaw).abs() < 0.5, "yaw recovered within 0.5 deg: {report}");

    // The corrected calibration is a site.toml whose lidar-sw is back where the log has it.
    let site: rsu_fusion::SiteConfig =
        toml::from_str(&std::fs::read_to_string(&corrected).expect("written")).expect("a site.toml");
    site.validate().expect("valid");
    let reader = v2x_replays::ReplayReader::open(&congested).expect("log");
    let original = reader.meta().site.sensor("lidar-sw").expect("lidar-sw").world_from_sensor;
    let fixed = site.sensor("lidar-sw").expect("lidar-sw").world_from_sensor;
    let moved_m = (fixed.translation.vector - original.translation.vector).norm();
    let turned_deg = fixed.rotation.angle_to(&original.rotation).to_degrees();
    println!("corrected pose vs the log's: {moved_m:.3} m, {turned_deg:.3} deg");
    assert!(moved_m < 0.2 && turned_deg < 0.5, "{moved_m} m, {turned_deg} deg");
    // The other sensors are as declared.
    assert_eq!(site.sensor("lidar-ne"), reader.meta().site.sensor("lidar-ne"));

    // Checked with the corrected calibration (and no offset), nothing drifts.
    let (code, report) = check(&congested, &["--sensor", "lidar-sw", "--calibration", path(&corrected)]);
    let (ex, ey, eyaw, verdict) = estimate(&report, "lidar-sw");
    assert_eq!((code, verdict.as_str()), (Some(0), "ok"), "{report}");
    assert!(ex.hypot(ey) < 0.2 && eyaw.abs() < 0.5, "{report}");
}

#[test]
fn an_offset_camera_is_flagged_and_recovered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dx, dy, dyaw) = (0.5, 0.4, 1.5);
    let config = write_offset(tmp.path(), "cam-sw", dx, dy, dyaw);
    let (code, report) =
        check(&committed("congested-intersection.mcap"), &["--sensor", "cam-sw", "--config", path(&config)]);
    let (ex, ey, eyaw, verdict) = estimate(&report, "cam-sw");
    println!("cam-sw: applied ({dx}, {dy}, {dyaw}), recovered ({ex:+.3}, {ey:+.3}, {eyaw:+.3})");
    assert_eq!((code, verdict.as_str()), (Some(1), "drift"), "{report}");
    assert!((ex - dx).hypot(ey - dy) < 0.2 && (eyaw - dyaw).abs() < 0.5, "{report}");
}

#[test]
fn the_sign_holds_for_another_lidar_and_the_text_report_names_the_drift() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dx, dy, dyaw) = (-0.4, 0.3, -1.2);
    let config = write_offset(tmp.path(), "lidar-ne", dx, dy, dyaw);
    let bus = committed("bus-pedestrian.mcap");
    let (code, report) = check(&bus, &["--sensor", "lidar-ne", "--config", path(&config)]);
    let (ex, ey, eyaw, verdict) = estimate(&report, "lidar-ne");
    println!("applied ({dx}, {dy}, {dyaw}), recovered ({ex:+.3}, {ey:+.3}, {eyaw:+.3})");
    assert_eq!((code, verdict.as_str()), (Some(1), "drift"), "{report}");
    assert!((ex - dx).hypot(ey - dy) < 0.2 && (eyaw - dyaw).abs() < 0.5, "{report}");

    let out = lab(&["replay", "calib-check", path(&bus), "--sensor", "lidar-ne", "--config", path(&config)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("DRIFT") && t.contains("exceeds 0.2 m") && t.contains("lidar-ne"), "{t}");
}

#[test]
fn damaged_logs_and_bad_arguments_are_errors_not_panics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(committed("bus-pedestrian.mcap")).expect("log");
    let cut = tmp.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("cut");
    let garbage = tmp.path().join("garbage.mcap");
    std::fs::write(&garbage, b"not an mcap file at all").expect("garbage");
    for (file, expect) in [(&cut, "cut.mcap"), (&garbage, "garbage.mcap")] {
        let out = lab(&["replay", "calib-check", path(file), "--sensor", "lidar-ne"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains("error:") && t.contains(expect) && !t.contains("panicked"), "{t}");
    }
    // In recover mode the intact part is checked and the damage named.
    let out = lab(&["replay", "calib-check", path(&cut), "--sensor", "lidar-ne", "--recover"]);
    let t = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)) && t.contains("recovered:"), "{t}");

    let whole = committed("bus-pedestrian.mcap");
    let out = lab(&["replay", "calib-check", path(&whole), "--sensor", "no-such-lidar"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no-such-lidar") && text(&out).contains("lidar-ne"), "{}", text(&out));
    let out = lab(&["replay", "calib-check", path(&whole), "--threshold-m", "-1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let bad_site = tmp.path().join("bad-site.toml");
    std::fs::write(&bad_site, "site_id = \"x\"\n[[sensors]]\nid = 3\n").expect("bad site");
    let out = lab(&["replay", "calib-check", path(&whole), "--calibration", path(&bad_site)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad-site.toml"), "{}", text(&out));
}
