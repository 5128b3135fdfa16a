//! The tracker against the errors of real detectors, with handcrafted lidar frames: a bus the
//! detector sometimes cuts in two stays one object, two pedestrians merged into one box do not
//! become a third, clutter that keeps firing at one place with middling scores is never
//! confirmed, a place where clutter died asks more of the next track born there, and a track
//! coasts through a gap in its detections only as long as its history warrants, or as long as
//! traffic hides it; and, with simulated camera boxes, cameras whose boxes scatter more than
//! their calibration says (night) still give one track per object.

mod synthetic;

use std::f64::consts::FRAC_PI_2;

use nalgebra::{Point3, Vector2};
use rsu_fusion::measurement::{Detections, LidarDetection, SensorFrame};
use rsu_fusion::{BoxSize, FusedObject, Fusion, FusionConfig, ObjectClass, SiteConfig, TrackStatus};
use synthetic::*;

/// One lidar site: a 360° lidar at the origin, 5 m up, 5 cm noise.
fn one_lidar() -> SiteConfig {
    let mut site = site_2l2c(0.05, 2.0);
    site.sensors = vec![lidar("lidar-a", (0.0, 0.0, 5.0), 0.0, 0.05)];
    site
}

/// A box on the ground in the site frame: centre (x, y), heading, size, class, score.
#[derive(Clone, Copy)]
struct GroundBox {
    x: f64,
    y: f64,
    yaw_rad: f64,
    size: BoxSize,
    class: ObjectClass,
    score: f64,
}

/// The lidar frame `seq` captured at `t_s` with `boxes`.
fn frame(site: &SiteConfig, seq: u64, t_s: f64, boxes: &[GroundBox]) -> SensorFrame {
    let calib = &site.sensors[0];
    let detections = boxes
        .iter()
        .map(|b| LidarDetection {
            center_in_sensor: calib.world_from_sensor.inverse_transform_point(&Point3::new(
                b.x,
                b.y,
                0.5 * b.size.height_m,
            )),
            size: b.size,
            yaw_rad: b.yaw_rad,
            class: b.class,
            score: b.score,
            point_count: Some(50),
        })
        .collect();
    SensorFrame {
        sensor_id: calib.id.clone(),
        sequence: seq,
        capture_time: ts(t_s),
        detections: Detections::Lidar(detections),
    }
}

/// Feeds 10 Hz frames made by `boxes_at(seq, t_s)` for `duration_s` and polls after each.
fn run_frames(
    site: &SiteConfig,
    duration_s: f64,
    boxes_at: impl Fn(u64, f64) -> Vec<GroundBox>,
) -> Vec<(f64, Vec<FusedObject>)> {
    let mut fusion: Fusion = new_fusion(site);
    let mut polls = Vec::new();
    let frames = (duration_s / 0.1).round() as u64;
    for seq in 0..frames {
        let t_s = 0.05 + seq as f64 * 0.1;
        fusion.handle_sensor_frame(ts(t_s + 0.03), frame(site, seq, t_s, &boxes_at(seq, t_s)));
        polls.push((t_s + 0.04, fusion.poll_objects(ts(t_s + 0.04))));
    }
    polls
}

fn near(objs: &[FusedObject], x: f64, y: f64, radius_m: f64) -> usize {
    objs.iter()
        .filter(|o| (Vector2::new(o.position_m.x, o.position_m.y) - Vector2::new(x, y)).norm() <= radius_m)
        .count()
}

#[test]
fn a_bus_cut_in_two_now_and_then_stays_one_object() {
    let site = one_lidar();
    let bus = BoxSize::new(12.0, 2.5, 3.2);
    // Driving east at 6 m/s 20 m north of the lidar; every third frame the detector reports a
    // front and a rear part instead of the whole bus.
    let at = |t_s: f64| -30.0 + 6.0 * t_s;
    let polls = run_frames(&site, 10.0, |seq, t_s| {
        let x = at(t_s);
        let whole = GroundBox { x, y: 20.0, yaw_rad: 0.0, size: bus, class: ObjectClass::Bus, score: 0.9 };
        if seq % 3 == 2 {
            let part = |dx: f64, len: f64| GroundBox { x: x + dx, size: BoxSize::new(len, 2.5, 3.2), ..whole };
            vec![part(3.5, 5.0), part(-2.5, 7.0)]
        } else {
            vec![whole]
        }
    });
    let settled: Vec<&(f64, Vec<FusedObject>)> = polls.iter().filter(|(t, _)| *t > 1.0).collect();
    let one = settled.iter().filter(|(t, objs)| objs.len() == 1 && near(objs, at(*t), 20.0, 1.5) == 1).count();
    assert!(one == settled.len(), "one bus object in {one} of {} polls", settled.len());
}

#[test]
fn two_pedestrians_merged_into_one_box_do_not_become_a_third_object() {
    let site = one_lidar();
    let ped = BoxSize::new(0.5, 0.6, 1.7);
    // Two people walking east 0.9 m apart; in every other frame the detector merges them.
    let polls = run_frames(&site, 10.0, |seq, t_s| {
        let x = -8.0 + 1.3 * t_s;
        let a = GroundBox { x, y: 10.0, yaw_rad: 0.0, size: ped, class: ObjectClass::Pedestrian, score: 0.85 };
        let b = GroundBox { y: 10.9, ..a };
        if seq % 2 == 1 && seq > 10 {
            vec![GroundBox { y: 10.45, size: BoxSize::new(0.6, 1.5, 1.7), ..a }]
        } else {
            vec![a, b]
        }
    });
    let settled: Vec<&(f64, Vec<FusedObject>)> = polls.iter().filter(|(t, _)| *t > 1.5).collect();
    let two = settled.iter().filter(|(_, objs)| objs.len() == 2).count();
    let counts: Vec<usize> = settled.iter().map(|(_, o)| o.len()).collect();
    assert!(two == settled.len(), "two objects in {two} of {} polls: {counts:?}", settled.len());
}

/// Clutter at (15, -6) firing in bursts of 5 frames every 15 frames with `score`.
fn clutter(seq: u64, score: f64) -> Vec<GroundBox> {
    let size = BoxSize::new(0.5, 0.5, 1.2);
    if seq % 15 < 5 {
        vec![GroundBox { x: 15.0, y: -6.0, yaw_rad: 0.4, size, class: ObjectClass::Pedestrian, score }]
    } else {
        Vec::new()
    }
}

#[test]
fn clutter_with_middling_scores_is_never_confirmed() {
    let site = one_lidar();
    let polls = run_frames(&site, 20.0, |seq, _| clutter(seq, 0.45));
    assert!(polls.iter().all(|(_, objs)| objs.is_empty()), "clutter reported");
    // The same detections scored like a real object are.
    let polls = run_frames(&site, 3.0, |seq, _| clutter(seq, 0.8));
    assert!(polls.iter().any(|(_, objs)| near(objs, 15.0, -6.0, 1.0) == 1));
}

#[test]
fn where_clutter_died_a_new_track_needs_more_evidence() {
    let site = one_lidar();
    // A first burst at a low score dies tentative; later bursts score 0.6, enough anywhere else
    // (alone they are confirmed, as the second run shows) but not where clutter died.
    let polls = run_frames(&site, 6.0, |seq, _| clutter(seq, if seq < 15 { 0.45 } else { 0.6 }));
    assert!(polls.iter().all(|(_, objs)| objs.is_empty()), "confirmed where clutter died");
    let polls = run_frames(&site, 6.0, |seq, _| if seq < 15 { Vec::new() } else { clutter(seq, 0.6) });
    assert!(polls.iter().any(|(_, objs)| near(objs, 15.0, -6.0, 1.0) == 1), "a fresh place confirms it");
}

/// A car driving east at 8 m/s along y = 5, seen when `seen(t_s)`.
fn car(t_s: f64, seen: bool) -> Vec<GroundBox> {
    let size = BoxSize::new(4.5, 1.8, 1.5);
    let b = GroundBox { x: -20.0 + 8.0 * t_s, y: 5.0, yaw_rad: 0.0, size, class: ObjectClass::Car, score: 0.9 };
    if seen { vec![b] } else { Vec::new() }
}

#[test]
fn a_track_of_a_few_frames_is_not_carried_on_but_a_long_one_coasts_through_an_occlusion() {
    let site = one_lidar();
    // Seen for 0.6 s, then never again (a chance track, or an object that left): gone within
    // the coasting delay, not carried on for 2 s at the speed it guessed.
    let polls = run_frames(&site, 3.0, |_, t_s| car(t_s, t_s < 0.6));
    assert!(polls.iter().any(|(t, objs)| *t < 0.7 && objs.len() == 1), "the car is tracked");
    let late: Vec<f64> = polls.iter().filter(|(t, objs)| *t > 1.1 && !objs.is_empty()).map(|(t, _)| *t).collect();
    assert!(late.is_empty(), "a 0.6 s track still reported at {late:?}");
    // Seen for 4 s, hidden for 1.5 s, seen again: reported all along, under one id.
    let polls = run_frames(&site, 7.0, |_, t_s| car(t_s, !(4.0..5.5).contains(&t_s)));
    let settled: Vec<&(f64, Vec<FusedObject>)> = polls.iter().filter(|(t, _)| *t > 1.0).collect();
    let ids: Vec<Option<u32>> = settled.iter().map(|(_, objs)| objs.first().map(|o| o.id)).collect();
    assert!(ids.iter().all(|id| *id == ids[0] && id.is_some()), "ids over time: {ids:?}");
    assert!(settled.iter().all(|(_, objs)| objs.len() == 1));
}

/// A cone at (20, 0), first seen at 1 s; a bus crossing the line of sight from the lidar at 8 m/s
/// along x = 10 hides it from 1.75 s to 3.25 s (when `bus`; without it the cone's detections
/// stop all the same).
fn cone_behind_bus(t_s: f64, bus: bool) -> Vec<GroundBox> {
    let bus_y = -20.0 + 8.0 * t_s;
    let hidden = bus && bus_y.abs() < 6.0 || !bus && (1.75..3.25).contains(&t_s);
    let mut boxes = Vec::new();
    if t_s >= 1.0 && !hidden {
        let size = BoxSize::new(0.4, 0.4, 0.7);
        boxes.push(GroundBox { x: 20.0, y: 0.0, yaw_rad: 0.0, size, class: ObjectClass::TrafficCone, score: 0.8 });
    }
    if bus {
        let size = BoxSize::new(12.0, 2.5, 3.2);
        let b = GroundBox { x: 10.0, y: bus_y, yaw_rad: FRAC_PI_2, size, class: ObjectClass::Bus, score: 0.9 };
        boxes.push(b);
    }
    boxes
}

#[test]
fn a_cone_hidden_by_a_passing_bus_coasts_but_one_merely_missed_does_not() {
    let site = one_lidar();
    let cone_ids = |polls: &[(f64, Vec<FusedObject>)]| -> Vec<Option<u32>> {
        let near_cone = |o: &&FusedObject| (o.position_m.x - 20.0).abs() < 1.0 && o.position_m.y.abs() < 1.0;
        polls
            .iter()
            .filter(|(t, _)| (1.5..4.0).contains(t))
            .map(|(_, objs)| objs.iter().find(near_cone).map(|o| o.id))
            .collect()
    };
    // Hidden behind the bus (every working sensor's line of sight to it crosses the bus's box):
    // carried through the 1.5 s, longer than the 0.75 s it had been seen, under one id.
    let ids = cone_ids(&run_frames(&site, 4.5, |_, t_s| cone_behind_bus(t_s, true)));
    assert!(ids.iter().all(|id| id.is_some() && *id == ids[0]), "cone ids, hidden: {ids:?}");
    // The same gap with nothing in the way: the lidar looks at the cone and sees nothing, so the
    // track of 0.75 s is not carried on for 1.5 s.
    let ids = cone_ids(&run_frames(&site, 4.5, |_, t_s| cone_behind_bus(t_s, false)));
    assert!(ids.iter().any(Option::is_none), "cone ids, missed in the open: {ids:?}");
}

/// Camera-only objects seen by cameras whose boxes scatter `pixel_sigma_px` per edge while
/// their calibration says 2 px (night): per actor, the id of the confirmed object nearest to it
/// (within a gate) at each poll after a 1.5 s warm-up.
fn night_cameras(pixel_sigma_px: f64, config: FusionConfig) -> Vec<Vec<Option<u32>>> {
    let mut site = site_2l2c(0.1, 2.0);
    site.sensors.retain(|s| s.id.starts_with("cam"));
    let mut actors = vec![
        Actor::straight(1, ObjectClass::Car, (-30.0, -1.75), 0.0, 8.0, 8.0),
        Actor::straight(2, ObjectClass::Car, (25.0, 1.75), std::f64::consts::PI, 6.0, 8.0),
        Actor::straight(3, ObjectClass::Pedestrian, (-10.0, 6.0), 0.0, 1.3, 8.0),
    ];
    for a in &mut actors {
        a.lidar_visible = false;
    }
    let mut sim = SimConfig::new(7, 8.0);
    sim.pixel_sigma_px = pixel_sigma_px;
    let mut fusion = Fusion::new(site.clone(), config).expect("valid config");
    let polls = run(&mut fusion, &simulate(&site, &actors, &sim), 8.0, 0.1);
    actors
        .iter()
        .map(|a| {
            let gate_m = if a.class == ObjectClass::Pedestrian { 1.5 } else { 3.0 };
            polls
                .iter()
                .filter(|(t, _)| *t >= 1.5 && *t <= a.end_s())
                .filter_map(|(t, objs)| {
                    let tr = a.truth(*t)?;
                    let dist = |o: &FusedObject| (Vector2::new(o.position_m.x, o.position_m.y) - tr.pos).norm();
                    Some(
                        objs.iter()
                            .filter(|o| o.status == TrackStatus::Confirmed && dist(o) <= gate_m)
                            .min_by(|a, b| dist(a).total_cmp(&dist(b)))
                            .map(|o| o.id),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn cameras_noisier_than_their_calibration_keep_their_tracks() {
    // The boxes scatter 4 times the calibration's pixel noise, as at night. Trusting the
    // calibration, the tracker lost the objects between its gates and replaced their tracks
    // again and again (3 to 9 ids per object, gaps); learning each camera's noise from the
    // innovations of its confirmed tracks, it keeps them. (A second confirmed track beside an
    // object still happens at times: at most 2 ids, not 1, are asked for.)
    for (k, ids) in night_cameras(8.0, FusionConfig::default()).iter().enumerate() {
        let tracked = ids.iter().filter(|i| i.is_some()).count();
        assert!(tracked * 100 >= ids.len() * 95, "actor {k}: tracked in {tracked} of {} polls", ids.len());
        let distinct: std::collections::BTreeSet<u32> = ids.iter().flatten().copied().collect();
        assert!(distinct.len() <= 2, "actor {k}: ids {ids:?}");
    }
}
