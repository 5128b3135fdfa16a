//! Our CLEAR MOT and IDF1 agree with py-motmetrics on the same matches, and our HOTA with
//! TrackEval's.
//!
//! `fixtures/motmetrics_fixture.json` (frames of ground truth and tracker output) and
//! `fixtures/motmetrics_expected.json` (py-motmetrics 1.4.0's results on it) were both written by
//! `fixtures/motmetrics_reference.py`, an independent implementation; see that script for how.
//! `fixtures/hota_expected.json` is TrackEval 1.3.0's HOTA of the same frames, written by
//! `fixtures/hota_reference.py`.
//!
//! `fixtures/scoring_fixture.json` is a small hand-made fixture of the cases where CLEAR MOT
//! implementations part ways (truths absent or missed for a while and back beside a closer
//! track, a track passed on to another truth and taken back, a crossing with swapped ids, a
//! truth never tracked, frames with nothing matched or nothing at all); its `cases` say which
//! frames hold what. Its expected figures below are py-motmetrics 1.4.0's, printed by
//! `python3 replays/tools/score_with_motmetrics.py` (which makes its own venv with motmetrics).

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

/// The frames of a fixture (JSON: `gates_m` per class, `frames` of `t_ns`, `truths` and `hyps`)
/// scored by our scorer.
fn score(fixture_json: &str) -> v2x_replays::scoring::Metrics {
    let fixture: Value = serde_json::from_str(fixture_json).expect("fixture parses");
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

/// The random fixture of `fixtures/motmetrics_reference.py` scored by our scorer.
fn score_fixture() -> v2x_replays::scoring::Metrics {
    score(include_str!("fixtures/motmetrics_fixture.json"))
}

#[test]
fn handmade_fixture_scores_exactly_as_py_motmetrics() {
    // py-motmetrics 1.4.0 (`MOTAccumulator`, SciPy assignment) on fixtures/scoring_fixture.json,
    // as printed by `python3 replays/tools/score_with_motmetrics.py`. To regenerate after editing
    // the fixture, run it and copy the figures here.
    const NUM_OBJECTS: u64 = 105;
    const NUM_MATCHES: u64 = 87; // excluding switches
    const NUM_SWITCHES: u64 = 3;
    const NUM_TRANSFER: u64 = 3;
    const NUM_FALSE_POSITIVES: u64 = 28;
    const NUM_MISSES: u64 = 15;
    const NUM_FRAGMENTATIONS: u64 = 7;
    const MOTA: f64 = 0.5619047619047619;
    const MOTP: f64 = 0.3465252775901131;
    const IDTP: u64 = 77;
    const IDF1: f64 = 0.6905829596412556;

    let m = score(include_str!("fixtures/scoring_fixture.json"));
    let o = &m.overall;
    println!("ours: {o:?}, IDTP {:?}, IDF1 {:?}", m.idtp, m.idf1);
    assert_eq!(o.num_truths, NUM_OBJECTS);
    // We count a switch as a match too; py-motmetrics counts it apart.
    assert_eq!(o.num_matches, NUM_MATCHES + NUM_SWITCHES);
    assert_eq!(o.num_switches, Some(NUM_SWITCHES));
    assert_eq!(o.num_transfers, NUM_TRANSFER);
    assert_eq!(o.num_false_positives, NUM_FALSE_POSITIVES);
    assert_eq!(o.num_misses, NUM_MISSES);
    assert_eq!(o.num_fragmentations, Some(NUM_FRAGMENTATIONS));
    // Both compute 1 - (misses + switches + FP) / objects and 2 IDTP / (objects + predictions)
    // from the same integers: the same double.
    assert_eq!(o.mota, MOTA);
    assert_eq!(m.idtp, Some(IDTP));
    assert_eq!(m.idf1, Some(IDF1));
    // A sum of distances, added in another order.
    let motp = o.motp_m.expect("matches");
    assert!((motp - MOTP).abs() < 1e-12, "MOTP {motp} vs {MOTP}");
    // Truth 3 is in coverage from frame 2 to 8 and never tracked.
    assert_eq!(m.never_tracked, 1);
    assert_eq!(m.never_tracked_in_coverage_s.keys().collect::<Vec<_>>(), [&3]);
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
        "ours: MOTA {:.6} MOTP {:.6?} IDF1 {:.6} switches {} fragmentations {} misses {} FP {}",
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
    let motp = o.motp_m.expect("matches");
    assert!((motp - num(&expected["motp"])).abs() < 1e-3, "MOTP {motp} vs {}", expected["motp"]);
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
