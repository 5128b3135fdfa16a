//! The plain-file export (`v2x_replays::export`) of a committed log: its truth and track counts are
//! the scorer's counts and its metrics those of `validate_log`, every accepted lidar detection is
//! written once, and the detections land on the ground truth in the site frame (which the
//! sensor-frame coordinates do not: the check can tell a missing transform).

use std::path::{Path, PathBuf};

use rsu_fusion::Detections;
use serde_json::Value;
use v2x_replays::criteria;
use v2x_replays::export::export_log;
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::validate::validate_log;
use v2x_replays::{ReplayBody, ReplayReader};

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("reads")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty());
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn export_matches_the_scorer_and_the_site_frame() {
    let log = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logs/bus-pedestrian.mcap");
    let (criteria, _) = criteria::resolve(&log, || None, None).expect("criteria");
    let config = ReplayConfig::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = export_log(&log, &criteria.scoring, &config, dir.path()).expect("exports");
    let (report, _) = validate_log(&log, &criteria, &config).expect("validates");

    // The same run as the validation: same metrics, and the counts are the scorer's.
    let m = &report.metrics;
    assert_eq!(summary.metrics, *m);
    assert!(m.overall.num_truths > 100, "{}", m.overall.num_truths);
    assert_eq!(summary.scored_truths, m.overall.num_truths);
    assert_eq!(summary.kept_tracks, m.overall.num_matches + m.overall.num_false_positives);
    assert_eq!(summary.truth_frames, m.num_frames);

    // The files hold what the summary counts.
    let scoring = lines(&dir.path().join("scoring.jsonl"));
    assert_eq!(scoring.len() as u64, summary.truth_frames);
    let count = |key: &str, flag: &str, want: bool| -> u64 {
        scoring
            .iter()
            .flat_map(|l| l[key].as_array().expect("an array").iter())
            .filter(|o| o[flag].as_bool() == Some(want))
            .count() as u64
    };
    assert_eq!(count("truths", "scored", true), summary.scored_truths);
    assert_eq!(count("truths", "scored", false), summary.unscored_truths);
    assert_eq!(count("tracks", "kept", true), summary.kept_tracks);
    assert_eq!(count("tracks", "kept", false), summary.dropped_tracks);

    // Every lidar frame of the log, every detection once.
    let mut frames = 0u64;
    let mut detections = 0u64;
    for message in ReplayReader::open(&log).expect("opens") {
        if let ReplayBody::Sensor(frame) = &message.expect("decodes").body
            && let Detections::Lidar(d) = &frame.detections
        {
            frames += 1;
            detections += d.len() as u64;
        }
    }
    assert!(frames > 50, "{frames}");
    assert_eq!(summary.lidar_frames + summary.lidar_frames_refused, frames);
    let exported = lines(&dir.path().join("detections.jsonl"));
    assert_eq!(exported.len() as u64, summary.lidar_frames);
    let written: u64 = exported.iter().map(|l| l["detections"].as_array().expect("an array").len() as u64).sum();
    assert_eq!(written, summary.detections);
    assert_eq!(summary.lidar_frames_refused, 0, "the committed log's frames are all accepted");
    assert_eq!(written, detections);

    // In the site frame the confident detections lie on truth objects (the nearest truth at the
    // nearest truth time, ≤ 50 ms away); their sensor-frame coordinates would not.
    let reader = ReplayReader::open(&log).expect("opens");
    let site = reader.meta().site.clone();
    let truth_at = |t_ns: i64| -> &Value {
        scoring.iter().min_by_key(|l| (l["t_ns"].as_i64().expect("t_ns") - t_ns).abs()).expect("truth frames")
    };
    let mut in_site = Vec::new();
    let mut in_sensor = Vec::new();
    for line in &exported {
        let t_ns = line["t_ns"].as_i64().expect("t_ns");
        let truth = truth_at(t_ns);
        if (truth["t_ns"].as_i64().expect("t_ns") - t_ns).abs() > 50_000_000 {
            continue;
        }
        let calib = site.sensor(line["sensor"].as_str().expect("sensor")).expect("a calibrated sensor");
        for d in line["detections"].as_array().expect("an array").iter().filter(|d| f(&d["score"]) >= 0.5) {
            let nearest = |x: f64, y: f64| {
                truth["truths"]
                    .as_array()
                    .expect("an array")
                    .iter()
                    .map(|t| (f(&t["x_m"]) - x).hypot(f(&t["y_m"]) - y))
                    .fold(f64::INFINITY, f64::min)
            };
            let (x, y) = (f(&d["x_m"]), f(&d["y_m"]));
            in_site.push(nearest(x, y));
            let p = calib.world_from_sensor.inverse_transform_point(&nalgebra::Point3::new(x, y, f(&d["z_m"])));
            in_sensor.push(nearest(p.x, p.y));
        }
    }
    assert!(in_site.len() > 100, "{}", in_site.len());
    let (site_m, sensor_m) = (median(in_site), median(in_sensor));
    assert!(site_m < 0.5, "median distance of a site-frame detection to the truth {site_m} m");
    assert!(sensor_m > 3.0, "median distance of a sensor-frame detection to the truth {sensor_m} m");
}
