//! Our CLEAR MOT and IDF1 agree with py-motmetrics on the same matches, and our HOTA with
//! TrackEval's.
//!
//! `fixtures/motmetrics_fixture.json` (frames of ground truth and tracker output) and
//! `fixtures/motmetrics_expected.json` (py-motmetrics 1.4.0's results on it) were both written by
//! `fixtures/motmetrics_reference.py`, an independent implementation; see that script for how.
//! `fixtures/hota_expected.json` is TrackEval 1.3.0's HOTA of the same frames, written by
//! `fixtures/hota_reference.py`.

use rsu_fusion::{ObjectClass, Timestamp};
use serde_json::Value;
use v2x_replays::scoring::{Hypothesis, Scorer, ScoringConfig, TruthObject};

fn class(name: &str) -> ObjectClass {
    match name {
        "car" => ObjectClass::Car,
        "pedestrian" => ObjectClass::Pedestrian,
        other => panic!("fixture class {other}"),
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

/// The fixture's frames scored by our scorer.
fn score_fixture() -> v2x_replays::scoring::Metrics {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/motmetrics_fixture.json")).expect("fixture parses");
    let config = ScoringConfig {
        gate_vehicle_m: num(&fixture["gates_m"]["car"]),
        gate_vru_m: num(&fixture["gates_m"]["pedestrian"]),
        ..Default::default()
    };
    let mut scorer = Scorer::new(config);
    for frame in fixture["frames"].as_array().expect("frames") {
        let t = Timestamp::from_nanos(frame["t_ns"].as_i64().expect("time"));
        let truths: Vec<TruthObject> = frame["truths"]
            .as_array()
            .expect("truths")
            .iter()
            .map(|o| TruthObject {
                id: o["id"].as_u64().expect("id") as u32,
                class: class(o["class"].as_str().expect("class")),
                position_m: [num(&o["x"]), num(&o["y"])],
                velocity_mps: [0.0, 0.0],
                yaw_rad: 0.0,
                in_coverage: true,
            })
            .collect();
        let hyps: Vec<Hypothesis> = frame["hyps"]
            .as_array()
            .expect("hyps")
            .iter()
            .map(|h| Hypothesis {
                id: h["id"].as_u64().expect("id") as u32,
                class: class(h["class"].as_str().expect("class")),
                position_m: [num(&h["x"]), num(&h["y"])],
                velocity_mps: [0.0, 0.0],
                yaw_rad: 0.0,
            })
            .collect();
        scorer.add_frame(t, &truths, &hyps);
    }
    scorer.finish()
}

#[test]
fn clear_mot_and_idf1_match_py_motmetrics() {
    let expected: Value =
        serde_json::from_str(include_str!("fixtures/motmetrics_expected.json")).expect("expected parses");
    let m = score_fixture();
    let o = &m.overall;
    let (idf1, idtp) = (m.idf1.expect("persistent truth ids"), m.idtp.expect("persistent truth ids"));
    let switches = o.num_switches.expect("persistent truth ids");
    let fragmentations = o.num_fragmentations.expect("persistent truth ids");
    println!(
        "ours: MOTA {:.6} MOTP {:.6} IDF1 {:.6} switches {} fragmentations {} misses {} FP {}",
        o.mota, o.motp_m, idf1, switches, fragmentations, o.num_misses, o.num_false_positives
    );
    println!("py-motmetrics: {expected}");
    assert_eq!(o.num_truths as f64, num(&expected["num_objects"]));
    // py-motmetrics counts switches apart from matches.
    assert_eq!(o.num_matches as f64, num(&expected["num_matches"]) + num(&expected["num_switches"]));
    assert_eq!(o.num_misses as f64, num(&expected["num_misses"]));
    assert_eq!(o.num_false_positives as f64, num(&expected["num_false_positives"]));
    assert_eq!(switches as f64, num(&expected["num_switches"]));
    assert_eq!(fragmentations as f64, num(&expected["num_fragmentations"]));
    assert_eq!(idtp as f64, num(&expected["idtp"]));
    assert!((o.mota - num(&expected["mota"])).abs() < 1e-3, "MOTA {} vs {}", o.mota, expected["mota"]);
    assert!((o.motp_m - num(&expected["motp"])).abs() < 1e-3, "MOTP {} vs {}", o.motp_m, expected["motp"]);
    assert!((idf1 - num(&expected["idf1"])).abs() < 1e-3, "IDF1 {idf1} vs {}", expected["idf1"]);
}

#[test]
fn hota_matches_trackeval() {
    let expected: Value = serde_json::from_str(include_str!("fixtures/hota_expected.json")).expect("expected parses");
    let h = score_fixture().hota;
    println!("ours: {h:?}\nTrackEval: {expected}");
    let (hota, ass_a) = (h.hota.expect("persistent truth ids"), h.ass_a.expect("persistent truth ids"));
    for (ours, name) in [(hota, "hota"), (h.det_a, "det_a"), (ass_a, "ass_a"), (h.loc_a, "loc_a")] {
        assert!((ours - num(&expected[name])).abs() < 1e-6, "{name}: ours {ours}, TrackEval {}", expected[name]);
    }
}
