//! Live scoring on a log written here: three road users moving at constant speed and turn rate,
//! a recorded broadcast at 10 Hz carrying them exactly as they were at each frame's time, and
//! two vehicles' receipts (one subscribed to 50 m around itself, one to everything with 250 ms
//! of delay). Aged by their own kinematics the frames score perfectly; the receipt times decide
//! which frame each vehicle had; the region keeps far objects out of a vehicle's score.

use std::path::Path;

use nalgebra::Point3;
use rsu_fusion::{BoxSize, ObjectClass, Participant, RoadsideFrame, SensorHealth, SensorStatus, SourceSet, Timestamp};
use v2x_proto::domain::{GroundTruthFrame, GroundTruthObject, REPLAY_FORMAT_VERSION, ReplayMeta};
use v2x_replays::criteria::{Criteria, ScenarioFacts};
use v2x_replays::live::{LiveSection, score_live};
use v2x_replays::validate::truth_objects;
use v2x_replays::{Received, ReplayWriter};

const T0: i64 = 1_795_000_000_000_000_000;

/// (id, class, start position, yaw, speed, yaw rate, V2X id)
type Actor = (u32, ObjectClass, [f64; 2], f64, f64, f64, Option<&'static str>);

const ACTORS: [Actor; 3] = [
    (1, ObjectClass::Car, [40.0, 14.0], 0.0, 10.0, 0.0, Some("veh-a")),
    (2, ObjectClass::Car, [35.0, 40.0], 1.2, 6.0, 0.3, Some("veh-b")),
    (3, ObjectClass::Car, [-60.0, 14.0], 3.1, 4.0, 0.0, None),
];

fn at(ms: i64) -> Timestamp {
    Timestamp::from_nanos(T0 + ms * 1_000_000)
}

/// Where actor `a` is `s` seconds after the start: (position, yaw).
fn pose(a: &Actor, s: f64) -> ([f64; 2], f64) {
    v2x_replays::live::ctrv(a.2, a.3, a.4, a.5, s)
}

fn truth(ms: i64) -> GroundTruthFrame {
    let objects = ACTORS
        .iter()
        .map(|a| {
            let ([x, y], yaw) = pose(a, ms as f64 * 1e-3);
            GroundTruthObject {
                id: a.0,
                class: a.1,
                center_m: Point3::new(x, y, 0.75),
                yaw_rad: yaw,
                speed_mps: a.4,
                yaw_rate_rps: a.5,
                accel_mps2: 0.0,
                size: BoxSize::new(4.5, 1.8, 1.5),
                v2x_id: a.6.map(str::to_owned),
            }
        })
        .collect();
    GroundTruthFrame { time: at(ms), objects, signals: Vec::new() }
}

fn frame(ms: i64) -> RoadsideFrame {
    let participants = ACTORS
        .iter()
        .map(|a| {
            let ([x, y], yaw) = pose(a, ms as f64 * 1e-3);
            Participant {
                id: 100 + a.0,
                class: a.1,
                class_confidence: 0.9,
                sources: SourceSet::LIDAR,
                position_m: Point3::new(x, y, 0.0),
                pos_confidence_95_m: 0.3,
                speed_mps: a.4,
                yaw_rad: yaw,
                yaw_rate_rps: a.5,
                accel_mps2: 0.0,
                size: BoxSize::new(4.5, 1.8, 1.5),
                age_s: 1.0,
                v2x_id: None,
                path_history: Vec::new(),
            }
        })
        .collect();
    RoadsideFrame {
        rsu_id: "rsu-1".into(),
        message_count: (ms / 100) as u32,
        time: at(ms),
        reference: v2x_proto::sample::site().origin,
        participants,
        sensors: vec![SensorHealth {
            sensor_id: "lidar-ne".into(),
            status: SensorStatus::Ok,
            last_capture: Some(at(ms - 40)),
        }],
        perception_regions: Vec::new(),
        newest_capture: Some(at(ms - 40)),
    }
}

fn meta() -> ReplayMeta {
    ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: "live-test".into(),
        scenario: "live".into(),
        description: String::new(),
        seed: 1,
        site: v2x_proto::sample::site(),
        rsu_ids: vec!["rsu-1".into()],
        start_time: at(0),
        end_time: at(3000),
        truth_ids_per_frame: false,
    }
}

/// Writes the log: truth at 20 Hz, broadcast at 10 Hz, receipts of both vehicles (when asked).
fn write(path: &Path, broadcast: bool, receipts: bool) {
    let mut w = ReplayWriter::create(path, &meta()).expect("create");
    for ms in (0..=3000).step_by(50) {
        w.write_ground_truth(&truth(ms)).expect("truth");
        if ms % 100 != 0 {
            continue;
        }
        let f = frame(ms);
        if broadcast {
            w.write_roadside_frame(&f).expect("frame");
        }
        if receipts {
            // veh-a subscribed to 50 m around itself: the RSU filtered around where it was.
            let (here, _) = pose(&ACTORS[0], ms as f64 * 1e-3);
            let near = RoadsideFrame {
                participants: f
                    .participants
                    .iter()
                    .filter(|p| (p.position_m.x - here[0]).hypot(p.position_m.y - here[1]) <= 50.0)
                    .cloned()
                    .collect(),
                ..f.clone()
            };
            let a = Received { vehicle_id: "veh-a".into(), subscription_radius_m: Some(50), frame: near };
            w.write_received_frame(&a, f.time.add_nanos(30_000_000)).expect("received");
            let b = Received { vehicle_id: "veh-b".into(), subscription_radius_m: None, frame: f.clone() };
            w.write_received_frame(&b, f.time.add_nanos(250_000_000)).expect("received");
        }
    }
    w.finish().expect("finish");
}

fn score(broadcast: bool, receipts: bool) -> LiveSection {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("live.mcap");
    write(&path, broadcast, receipts);
    let mut criteria = Criteria::default();
    criteria.overall.mota_min = Some(0.99);
    criteria.overall.broadcast_age_p99_max_s = Some(0.1);
    score_live(&path, &criteria, &ScenarioFacts::default()).expect("scores")
}

#[test]
fn the_recorded_broadcast_aged_by_its_kinematics_scores_as_the_truth() {
    // Every actor is in the sample site's coverage, so each is scored.
    assert!(truth_objects(&truth(1500), &meta().site).iter().all(|t| t.in_coverage));
    let live = score(true, true);
    assert!(live.notes.is_empty(), "{:?}", live.notes);

    let sent = live.as_sent.expect("a broadcast");
    assert_eq!((sent.frames, sent.truth_frames, sent.truth_frames_without_frame), (31, 61, 0));
    assert_eq!(sent.metrics.overall.num_truths, 61 * 3);
    assert!(sent.metrics.overall.mota > 0.999, "{:?}", sent.metrics.overall);
    // Frames are up to 50 ms old at a truth time: unaged, the 10 m/s car would be 0.5 m off.
    assert!((sent.frame_age_s.max - 0.05).abs() < 1e-9, "{:?}", sent.frame_age_s);
    // (Values on the wire's fixed-point grid are off by a few centimetres.)
    assert!(sent.metrics.position_rmse_m.is_some_and(|e| e < 0.05), "{:?}", sent.metrics.position_rmse_m);
    assert!(sent.metrics.heading_rmse_deg.is_some_and(|e| e < 0.5), "{:?}", sent.metrics.heading_rmse_deg);
    assert!((sent.object_age_s.p99 - 0.04).abs() < 1e-6, "{:?}", sent.object_age_s);
    assert!(sent.passed && sent.checks.len() == 2, "{:?}", sent.checks);

    // veh-a: 30 ms after each frame; before the first receipt nothing; actor 3 out of its 50 m.
    let a = &live.as_received["veh-a"];
    assert_eq!(a.subscription_radius_m, Some(50));
    assert_eq!(a.truth_frames_without_frame, 1, "the truth at 0 ms precedes the first receipt");
    let within_50_m: u64 = (0..=3000)
        .step_by(50)
        .map(|ms| {
            let s = ms as f64 * 1e-3;
            let (here, _) = pose(&ACTORS[0], s);
            ACTORS.iter().filter(|a| (pose(a, s).0[0] - here[0]).hypot(pose(a, s).0[1] - here[1]) <= 50.0).count()
                as u64
        })
        .sum();
    // Actor 2 drives off and leaves the region on the way; actor 3 is never in it.
    assert!(within_50_m > 61 && within_50_m < 61 * 2, "{within_50_m}");
    assert_eq!(a.metrics.overall.num_truths, within_50_m, "the actors within 50 m of veh-a");
    assert_eq!(a.metrics.overall.num_misses, 2, "both missed before the first receipt");
    assert_eq!(a.metrics.overall.num_false_positives, 0);
    assert!(a.metrics.position_rmse_m.is_some_and(|e| e < 0.05), "{:?}", a.metrics.position_rmse_m);
    // A frame received 30 ms after its time is in use from 30 ms on: at 50 ms it is 50 ms old,
    // at 100 ms still the previous one, 100 ms old.
    assert!((a.frame_age_s.max - 0.1).abs() < 1e-9 && (a.frame_age_s.p50 - 0.05).abs() < 1e-9, "{:?}", a.frame_age_s);

    // veh-b: 250 ms late, subscribed to everything: older frames, still right once aged.
    let b = &live.as_received["veh-b"];
    assert_eq!(b.subscription_radius_m, None);
    assert_eq!(b.metrics.overall.num_truths, 61 * 3);
    assert_eq!(b.truth_frames_without_frame, 5, "truths at 0..200 ms precede the first receipt");
    assert!(b.frame_age_s.p50 >= 0.25 - 1e-9, "{:?}", b.frame_age_s);
    // Aged 250-350 ms on a turning car: CTRV keeps it right.
    assert!(b.metrics.position_rmse_m.is_some_and(|e| e < 0.1), "{:?}", b.metrics.position_rmse_m);
}

#[test]
fn a_log_without_broadcast_or_receipts_says_so() {
    let live = score(false, false);
    assert!(live.as_sent.is_none() && live.as_received.is_empty());
    assert_eq!(live.notes.len(), 2, "{:?}", live.notes);
    assert!(live.notes[0].contains("no recorded broadcast") && live.notes[1].contains("no received frames"));
    let only_receipts = score(false, true);
    assert!(only_receipts.as_sent.is_none() && only_receipts.as_received.len() == 2);
    assert_eq!(only_receipts.notes.len(), 1);
}
