//! `rsu replay` end to end with the real binary: import a DAIR-V2X-format fixture, validate it
//! (pass), validate it with a lidar extrinsic off by 2 m (fail, with the reason), a truncated
//! log (exit 2), and `replay run` twice (byte-identical).

use std::path::Path;

mod common;
use common::{lab, text};

/// Writes a DAIR-V2X (V2X-Seq style, with track ids) infrastructure fixture: 80 frames at 10 Hz of
/// four tracked objects seen by one virtual lidar, as the published format lays them out.
fn write_fixture(dir: &Path) {
    std::fs::create_dir_all(dir.join("label/virtuallidar")).expect("mkdir");
    std::fs::create_dir_all(dir.join("calib/virtuallidar_to_world")).expect("mkdir");
    let yaw = 30f64.to_radians();
    let calib = format!(
        r#"{{"rotation": [[{c}, {ms}, 0.0], [{s}, {c}, 0.0], [0.0, 0.0, 1.0]], "translation": [[100.0], [50.0], [5.5]]}}"#,
        c = yaw.cos(),
        s = yaw.sin(),
        ms = -yaw.sin()
    );
    let mut info = Vec::new();
    for k in 0..80 {
        let t = k as f64 * 0.1;
        let objects = [
            ("Car", "track-car", 10.0 + 8.0 * t, -3.5, -4.8, 4.6, 1.9, 1.5, 0.0),
            ("Pedestrian", "track-ped", 20.0, -8.0 + 1.4 * t, -5.0, 0.5, 0.5, 1.7, std::f64::consts::FRAC_PI_2),
            ("Truck", "track-truck", 45.0 - 6.0 * t, 3.5, -4.0, 8.5, 2.5, 3.2, std::f64::consts::PI),
            ("Cyclist", "track-bike", 15.0 + 4.0 * t, 6.0, -4.9, 1.8, 0.6, 1.7, 0.0),
        ];
        let labels: Vec<String> = objects
            .iter()
            .map(|(ty, id, x, y, z, l, w, h, r)| {
                // Numbers may be strings in the published files.
                format!(
                    r#"{{"type": "{ty}", "track_id": "{id}", "3d_dimensions": {{"h": "{h}", "w": {w}, "l": {l}}}, "3d_location": {{"x": {x}, "y": "{y}", "z": {z}}}, "rotation": {r}}}"#
                )
            })
            .collect();
        let name = format!("{k:06}");
        std::fs::write(dir.join(format!("label/virtuallidar/{name}.json")), format!("[{}]", labels.join(",")))
            .expect("label");
        std::fs::write(dir.join(format!("calib/virtuallidar_to_world/{name}.json")), &calib).expect("calib");
        info.push(format!(
            r#"{{"frame_id": "{name}", "pointcloud_timestamp": "{}", "label_lidar_std_path": "label/virtuallidar/{name}.json", "calib_virtuallidar_to_world_path": "calib/virtuallidar_to_world/{name}.json"}}"#,
            1_626_155_123_940u64 + k * 100
        ));
    }
    std::fs::write(dir.join("data_info.json"), format!("[{}]", info.join(","))).expect("info");
}

#[test]
fn import_validate_break_and_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("dair");
    write_fixture(&data);
    let log = tmp.path().join("dair.mcap");
    let log_s = log.to_str().expect("utf-8 path");
    let out = lab(&["replay", "import", "dair-v2x", data.to_str().expect("path"), "--out", log_s, "--seed", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    // One calibration for every frame: no spread; track ids: identities hold.
    let t = text(&out);
    assert!(t.contains("calibration: the mean of the frames' virtuallidar_to_world; frames within 0.000 m"), "{t}");
    assert!(!t.contains("identities:"), "{t}");

    // Validates and passes the built-in criteria, with both reports written.
    let report = tmp.path().join("report.json");
    let html = tmp.path().join("report.html");
    let out = lab(&[
        "replay",
        "validate",
        log_s,
        "--report",
        report.to_str().expect("path"),
        "--html",
        html.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(json["passed"], true);
    let mota = json["logs"][0]["metrics"]["overall"]["mota"].as_f64().expect("mota");
    assert!(mota > 0.8, "MOTA {mota}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("PASS") && page.contains("<svg"), "html report has verdict and plots");

    // A rerun review recording of the same replay.
    let rrd = tmp.path().join("review.rrd");
    let out = lab(&["replay", "validate", log_s, "--rrd", rrd.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bytes = std::fs::read(&rrd).expect("rrd written");
    assert!(bytes.len() > 10_000 && bytes.starts_with(b"RRF2"), "an rrd of {} bytes", bytes.len());
    let stats = rsu::live_view::rrd_stats(&rrd).expect("the review decodes");
    for entity in ["/site/sensors", "/site/coverage", "/detections/dair-lidar", "/ground_truth", "/tracks"] {
        assert!(stats.entities.contains(entity), "{entity} in {:?}", stats.entities);
    }
    assert!(!stats.entities.contains("/map/lanes"), "no map for a site we have no map of");
    // A log of the Yancheng site gets its map too.
    let yancheng = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../replays/logs/bus-pedestrian.mcap");
    let rrd = tmp.path().join("yancheng.rrd");
    let out = lab(&["replay", "validate", yancheng.to_str().expect("path"), "--rrd", rrd.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = rsu::live_view::rrd_stats(&rrd).expect("the review decodes");
    for entity in ["/map/lanes", "/map/walkways", "/map/crosswalks", "/map/buildings", "/tracks"] {
        assert!(stats.entities.contains(entity), "{entity} in {:?}", stats.entities);
    }

    // The same log with the lidar extrinsic off by 2 m fails, and says why.
    let config = tmp.path().join("broken.toml");
    std::fs::write(&config, "[calibration_offsets.dair-lidar]\ntranslation_m = [2.0, 0.0, 0.0]\n").expect("config");
    let out = lab(&["replay", "validate", log_s, "--config", config.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("FAIL") && (t.contains("is below the minimum") || t.contains("exceeds the maximum")), "{t}");

    // A truncated log cannot be read: exit 2 with the file named.
    let bytes = std::fs::read(&log).expect("log");
    let cut = tmp.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("cut");
    let out = lab(&["replay", "validate", cut.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cut.mcap"), "{}", text(&out));

    // `replay run` twice gives identical bytes, and the output holds fused frames.
    let a = tmp.path().join("a.mcap");
    let b = tmp.path().join("b.mcap");
    for o in [&a, &b] {
        let out = lab(&["replay", "run", log_s, "--out", o.to_str().expect("path")]);
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    let out = lab(&["log", "info", "--json", a.to_str().expect("path")]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let frames = info["topics"]["/rsu/rsu-dair-v2x/frame"]["messages"].as_u64().expect("fused frames");
    assert!(frames >= 70, "{frames} fused frames");
}

/// An OpenLABEL scene, one file per frame as TUMTraf publishes it: 60 frames at 10 Hz of a car
/// driving east at 8 m/s and a pedestrian walking north, in the labels' coordinate system.
fn write_openlabel_fixture(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let half = std::f64::consts::FRAC_1_SQRT_2;
    for f in 0..60 {
        let t = 1_646_667_310.0 + f as f64 * 0.1;
        let (car_x, ped_y) = (-20.0 + 0.8 * f as f64, -8.0 + 0.14 * f as f64);
        let doc = serde_json::json!({"openlabel": {
            "metadata": {"schema_version": "1.0.0"},
            "frames": {f.to_string(): {
                "frame_properties": {"timestamp": t.to_string()},
                "objects": {
                    "1d2c-car": {"object_data": {"type": "CAR", "cuboid": {"name": "shape3D",
                        "val": [car_x, 3.0, 0.75, 0.0, 0.0, 0.0, 1.0, 4.6, 1.9, 1.5]}}},
                    "77aa-ped": {"object_data": {"type": "PEDESTRIAN", "cuboid": {"name": "shape3D",
                        "val": [6.0, ped_y, 0.85, 0.0, 0.0, half, half, 0.6, 0.6, 1.7]}}}
                }
            }}
        }});
        std::fs::write(dir.join(format!("{f:06}.json")), doc.to_string()).expect("frame");
    }
}

#[test]
fn openlabel_import_validates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scene = tmp.path().join("tumtraf");
    write_openlabel_fixture(&scene);
    let log = tmp.path().join("openlabel.mcap");
    let out =
        lab(&["replay", "import", "openlabel", scene.to_str().expect("path"), "--out", log.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("imported 60 frames"), "{}", text(&out));
    let out = lab(&["replay", "validate", log.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = lab(&["log", "info", log.to_str().expect("path")]);
    assert!(text(&out).contains("/sensors/openlabel-lidar"), "{}", text(&out));
}

/// A committed log with its ground truth left out, as a daemon's own recording is: every other
/// message as recorded, arrival times included.
fn without_truth(from: &Path, to: &Path) {
    use v2x_replays::{ReplayBody, ReplayReader, ReplayWriter};
    let reader = ReplayReader::open(from).expect("committed log");
    let mut writer = ReplayWriter::create(to, reader.meta()).expect("create");
    for message in reader {
        let message = message.expect("intact");
        if !matches!(message.body, ReplayBody::GroundTruth(_) | ReplayBody::Meta(_)) {
            writer.write_message(&message).expect("write");
        }
    }
    writer.finish().expect("finish");
}

#[test]
fn a_log_without_truth_is_scored_on_what_needs_none_and_a_cut_one_with_recover() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../replays/logs/stopped-vehicle.mcap");
    let log = tmp.path().join("live.mcap");
    without_truth(&committed, &log);
    let log_s = log.to_str().expect("path");

    // Passes on what needs no truth (its scenario's broadcast age limit, inputs accepted) and
    // lists the rest as not applicable.
    let report = tmp.path().join("report.json");
    let out = lab(&["replay", "validate", log_s, "--report", report.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no ground truth: scored overall.broadcast_age_p99_max_s"), "{t}");
    assert!(t.contains("not applicable (need truth): overall.mota_min, overall.idf1_min"), "{t}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let checks = json["logs"][0]["checks"].as_array().expect("checks");
    let check = |name: &str| checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name} listed"));
    assert!(check("overall.mota_min")["message"].as_str().is_some_and(|m| m.starts_with("not applicable")));
    assert!(check("overall.mota_min")["value"].is_null());
    let age = check("overall.broadcast_age_p99_max_s");
    assert!(age["passed"] == true && age["value"].as_f64().is_some_and(|v| v > 0.0), "{age}");
    let inputs = check("log.inputs_accepted");
    assert!(inputs["passed"] == true && inputs["value"].as_f64().is_some_and(|v| v > 1000.0), "{inputs}");

    // What needs no truth can still fail.
    let strict = tmp.path().join("strict.toml");
    std::fs::write(&strict, "[overall]\nmota_min = 0.9\nbroadcast_age_p99_max_s = 0.001\n").expect("criteria");
    let out = lab(&["replay", "validate", log_s, "--criteria", strict.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("broadcast object age p99 [s]") && text(&out).contains("exceeds"), "{}", text(&out));

    // Cut short as by a crash: unreadable as it is; validated up to the damage with --recover,
    // which names it; `replay run --recover` makes a complete log of what is intact.
    let bytes = std::fs::read(&log).expect("log");
    let cut = tmp.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 5]).expect("cut");
    let cut_s = cut.to_str().expect("path");
    let out = lab(&["replay", "validate", cut_s]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = tmp.path().join("recovered.json");
    let out = lab(&["replay", "validate", "--recover", cut_s, "--report", report.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("recovered: validated what precedes the damage") && t.contains("cut short"), "{t}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert!(json["logs"][0]["replay"]["damage"].as_str().is_some_and(|d| d.contains("cut.mcap")));
    let recovered_inputs = json["logs"][0]["replay"]["sensor_frames"].as_u64().expect("count");
    assert!(recovered_inputs > 100, "{recovered_inputs} sensor frames recovered");

    let fixed = tmp.path().join("fixed.mcap");
    let out = lab(&["replay", "run", "--recover", cut_s, "--out", fixed.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("recovered: the input ends at damage"), "{}", text(&out));
    let out = lab(&["log", "info", "--json", fixed.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sensor_frames: u64 = info["topics"]
        .as_object()
        .expect("topics")
        .iter()
        .filter(|(topic, _)| topic.starts_with("/sensors/"))
        .filter_map(|(_, t)| t["messages"].as_u64())
        .sum();
    assert_eq!(sensor_frames, recovered_inputs, "every recovered frame in the complete log");
}

/// `replay compare`: two committed logs validated before and after a 1.5 m error in one lidar's
/// extrinsic (the "after" campaign): the logs that lost MOTA are regressions and the command
/// exits 1; a campaign compared with itself has no regression and exits 0.
#[test]
fn compare_finds_the_regression_of_a_broken_calibration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../replays/logs");
    for name in ["bus-pedestrian", "stopped-vehicle"] {
        for ext in ["mcap", "criteria.toml"] {
            std::fs::copy(committed.join(format!("{name}.{ext}")), logs.join(format!("{name}.{ext}"))).expect("copy");
        }
    }
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[calibration_offsets.lidar-ne]\ntranslation_m = [1.5, 0.0, 0.0]\nyaw_deg = 0.0\n")
        .expect("config");
    let (before, after) = (dir.path().join("before.json"), dir.path().join("after.json"));
    let logs_arg = logs.to_str().expect("path");
    lab(&["replay", "validate", logs_arg, "--report", before.to_str().expect("path")]);
    lab(&[
        "replay",
        "validate",
        logs_arg,
        "--report",
        after.to_str().expect("path"),
        "--config",
        broken.to_str().expect("path"),
    ]);
    let json = dir.path().join("comparison.json");
    let out = lab(&[
        "replay",
        "compare",
        before.to_str().expect("path"),
        after.to_str().expect("path"),
        "--json",
        json.to_str().expect("path"),
    ]);
    println!("{}", text(&out));
    assert_eq!(out.status.code(), Some(1), "a broken calibration is a regression");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("json");
    let regressed: Vec<&str> = doc["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter(|l| l["regression"] == true)
        .map(|l| l["file"].as_str().expect("file"))
        .collect();
    assert!(!regressed.is_empty(), "some log regressed");
    for l in doc["logs"].as_array().expect("logs") {
        let (b, a) = (l["mota"][0].as_f64().expect("mota"), l["mota"][1].as_f64().expect("mota"));
        assert_eq!(l["regression"] == true, a - b < -0.01 || (l["passed"][0] == true && l["passed"][1] == false));
    }
    assert_eq!(doc["groups"][0]["group"], "all");
    assert!(doc["groups"][0]["mota"][1].as_f64() < doc["groups"][0]["mota"][0].as_f64());
    // Two logs are too few to say the change holds beyond them.
    assert_eq!(doc["groups"][0]["significant"], false);

    let same = lab(&["replay", "compare", before.to_str().expect("path"), before.to_str().expect("path")]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("no regression"));
    let missing = lab(&["replay", "compare", before.to_str().expect("path"), "/nonexistent.json"]);
    assert_eq!(missing.status.code(), Some(2));
}
