//! `rsu-lab route validate` end to end with the real binary on the committed shuttle-loop log:
//! the JSON and GeoJSON outputs are valid and agree; a stretch of the loop out of every sensor's
//! range is a blind spot and fails; the best-observed covered stretch near the shuttle-stop lidar
//! detects what is on it; a damaged log is reported and skipped while the good one still counts
//! (exit code 2), and never panics.

use std::path::Path;

use rsu_site::SiteModel;
use serde_json::Value;

mod common;
use common::{committed, lab, path, text};

fn read_json(p: &Path) -> Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// Runs the validation of the shuttle loop over `logs` into `dir`: exit code, stdout+stderr,
/// the JSON report and the GeoJSON.
fn validate(dir: &Path, logs: &[&Path]) -> (Option<i32>, String, Value, Value) {
    let (json, geojson, html) = (dir.join("route.json"), dir.join("route.geojson"), dir.join("route.html"));
    let mut args = vec!["route", "validate", "--route", "shuttle-loop", "--jobs", "2"];
    args.extend(logs.iter().map(|p| path(p)));
    args.extend(["--json", path(&json), "--geojson", path(&geojson), "--html", path(&html)]);
    let out = lab(&args);
    let page = std::fs::read_to_string(&html).unwrap_or_else(|e| panic!("no HTML ({e}): {}", text(&out)));
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    assert!(page.matches("<svg").count() >= 4, "the map and the plots are inline SVG");
    (out.status.code(), text(&out), read_json(&json), read_json(&geojson))
}

fn f64_at(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("{pointer} in {v}"))
}

#[test]
fn the_shuttle_loop_log_finds_blind_spots_and_detections() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = committed("shuttle-loop.mcap");
    let (code, out, report, geojson) = validate(tmp.path(), &[&log]);
    println!("{out}");
    // The loop is not certified: parts of it are out of every sensor's range.
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(report["passed"], false);
    let segments = report["segments"].as_array().expect("segments");
    let length_m = f64_at(&report, "/route/length_m");
    assert!(segments.len() >= 150 && length_m > 1500.0, "{}", segments.len());
    assert_eq!(report["logs"].as_array().map(Vec::len), Some(1));
    assert!(report["skipped"].as_array().is_some_and(Vec::is_empty));

    // Each segment far from every sensor (its middle farther than the sensor's range plus the
    // half segment and the corridor) is seen by none, lies in a listed blind spot, and fails.
    let site = SiteModel::embedded().expect("site");
    let route = site.path("shuttle-loop").expect("the loop");
    let blind: Vec<(f64, f64)> = report["blind_spots"]
        .as_array()
        .expect("blind spots")
        .iter()
        .map(|b| (f64_at(b, "/from_m"), f64_at(b, "/to_m")))
        .collect();
    assert!(!blind.is_empty());
    let mut out_of_range = 0;
    for seg in segments {
        let (from, to) = (f64_at(seg, "/from_m"), f64_at(seg, "/to_m"));
        let middle = route.line.pose_at(0.5 * (from + to)).position;
        let far = site.config.sensors.iter().all(|s| {
            let p = s.position();
            (middle.x - p.x).hypot(middle.y - p.y) > s.max_range_m + 0.5 * (to - from) + 3.5
        });
        if far {
            out_of_range += 1;
            assert_eq!(seg["coverage"]["sensors_max"], 0, "{seg}");
            assert_eq!(seg["verdict"], "fail", "{seg}");
            assert!(blind.iter().any(|&(a, b)| a <= from + 1.0 && b >= to - 1.0), "{from}..{to} not in {blind:?}");
            let check = seg["checks"].as_array().expect("checks").iter().find(|c| c["name"] == "coverage.min_sensors");
            assert_eq!(check.map(|c| &c["verdict"]), Some(&Value::from("fail")), "{seg}");
        }
    }
    assert!(out_of_range > 20, "{out_of_range} segments out of every sensor's range");

    // The best-observed segment seen by a sensor: what is on it is detected.
    let covered_best = segments
        .iter()
        .filter(|s| s["coverage"]["sensors_min"].as_u64().unwrap_or(0) >= 1)
        .flat_map(|s| s["groups"].as_object().into_iter().flatten().map(move |(g, f)| (s, g, f)))
        .max_by_key(|(_, _, f)| f["observations"].as_u64().unwrap_or(0))
        .expect("an observed covered segment");
    let (seg, group, figures) = covered_best;
    let observations = figures["observations"].as_u64().unwrap_or(0);
    let detection = f64_at(figures, "/detection/probability");
    let (lo, hi) = (f64_at(figures, "/detection/ci95_low"), f64_at(figures, "/detection/ci95_high"));
    println!(
        "best observed: {group} at {}..{} m: {detection:.3} [{lo:.3}, {hi:.3}] of {observations}",
        seg["from_m"], seg["to_m"]
    );
    assert!(observations >= 50, "{figures}");
    assert!(detection >= 0.8 && lo <= detection && detection <= hi, "{figures}");
    // Where the map says no sensor sees the corridor, the log confirms it: a pedestrian or rider
    // observed there is not detected (vehicles may be: the connected ones report themselves).
    let confirmed: Vec<&Value> = segments
        .iter()
        .filter(|s| s["coverage"]["covered_fraction"].as_f64() == Some(0.0))
        .filter(|s| s.pointer("/groups/vru/observations").and_then(Value::as_u64).unwrap_or(0) >= 20)
        .collect();
    assert!(!confirmed.is_empty(), "VRUs were observed in a blind spot of the committed log");
    for seg in confirmed {
        assert!(f64_at(seg, "/groups/vru/detection/probability") <= 0.2, "{seg}");
    }
    // Totals agree with the segments.
    let total: u64 = segments
        .iter()
        .flat_map(|s| {
            s["groups"].as_object().into_iter().flatten().map(|(_, f)| f["observations"].as_u64().unwrap_or(0))
        })
        .sum();
    assert_eq!(Some(total), report["summary"]["observations"].as_u64());
    assert!(total > 0);

    // GeoJSON: one LineString per segment in WGS84 (lon, lat near the site), then the blind spots.
    assert_eq!(geojson["type"], "FeatureCollection");
    let features = geojson["features"].as_array().expect("features");
    let seg_features: Vec<&Value> = features.iter().filter(|f| f["properties"]["kind"] == "segment").collect();
    assert_eq!(seg_features.len(), segments.len());
    assert_eq!(features.len(), segments.len() + blind.len());
    for (f, seg) in seg_features.iter().zip(segments) {
        assert_eq!(f["geometry"]["type"], "LineString");
        assert_eq!(f["properties"]["verdict"], seg["verdict"]);
        assert_eq!(f["properties"]["from_m"], seg["from_m"]);
        let coords = f["geometry"]["coordinates"].as_array().expect("coordinates");
        assert!(coords.len() >= 2);
        for c in coords {
            let (lon, lat) = (c[0].as_f64().expect("lon"), c[1].as_f64().expect("lat"));
            assert!((lon - 120.49).abs() < 0.05 && (lat - 33.2).abs() < 0.05, "{c}");
        }
    }
    assert!(out.contains("blind spots") && out.contains("NOT CERTIFIED"), "{out}");
}

#[test]
fn a_damaged_log_is_reported_and_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let good = committed("shuttle-loop.mcap");
    let bytes = std::fs::read(&good).expect("log");
    let truncated = tmp.path().join("truncated.mcap");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let garbage = tmp.path().join("garbage.mcap");
    std::fs::write(&garbage, b"not an mcap file at all").expect("write");
    let alone = tmp.path().join("alone");
    let mixed = tmp.path().join("mixed");
    std::fs::create_dir_all(&alone).expect("dir");
    std::fs::create_dir_all(&mixed).expect("dir");
    let (_, _, good_only, _) = validate(&alone, &[&good]);
    let (code, out, report, _) = validate(&mixed, &[&truncated, &good, &garbage]);
    assert_eq!(code, Some(2), "unreadable input: {out}");
    assert!(!out.contains("panicked"), "{out}");
    let skipped = report["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 2, "{report}");
    for (entry, name) in skipped.iter().zip(["garbage.mcap", "truncated.mcap"]) {
        assert!(entry["file"].as_str().is_some_and(|f| f.ends_with(name)), "{entry}");
        assert!(entry["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert!(out.lines().any(|l| l.starts_with("skipped ") && l.contains(name)), "{out}");
    }
    // The good log counted exactly as alone: same segments, same figures.
    assert_eq!(report["logs"], good_only["logs"]);
    assert_eq!(report["segments"], good_only["segments"]);
    assert_eq!(report["summary"], good_only["summary"]);
}
