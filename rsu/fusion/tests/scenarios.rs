//! Deterministic scenario tests with known ground truth: straight and turning vehicles, crossing
//! pedestrians, pedestrians walking side by side, two vehicles passing close, an occlusion gap, camera-only objects, lidar dropout,
//! out-of-order and late frames, connected cars (V2X) seen and unseen by sensors, sensors far
//! apart whose frames interleave, kinematic polls equal to full ones, and bit-for-bit
//! determinism.

mod synthetic;

use nalgebra::Vector2;
use rsu_fusion::{
    FusedObject, FusionConfig, FusionStats, Ingest, ObjectClass, SensorStatus, SiteConfig, SourceSet, TrackStatus,
};
use std::f64::consts::PI;
use synthetic::*;

/// The object nearest to `p` within `gate_m`.
fn nearest(objs: &[FusedObject], p: Vector2<f64>, gate_m: f64) -> Option<&FusedObject> {
    objs.iter()
        .map(|o| ((Vector2::new(o.position_m.x, o.position_m.y) - p).norm(), o))
        .filter(|(d, _)| *d <= gate_m)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, o)| o)
}

/// Per poll after `warmup_s`: the id of the object nearest to the actor (None when missing).
fn ids_for(actor: &Actor, polls: &[(f64, Vec<FusedObject>)], warmup_s: f64, gate_m: f64) -> Vec<Option<u32>> {
    polls
        .iter()
        .filter(|(t, _)| *t >= actor.start_s + warmup_s && *t <= actor.end_s())
        .map(|(t, objs)| actor.truth(*t).and_then(|tr| nearest(objs, tr.pos, gate_m)).map(|o| o.id))
        .collect()
}

fn quiet_sim(seed: u64, duration_s: f64) -> SimConfig {
    let mut sim = SimConfig::new(seed, duration_s);
    sim.lidar_sigma_m = 0.15;
    sim.pixel_sigma_px = 3.0;
    sim
}

#[test]
fn straight_vehicle_is_tracked_with_one_id_and_accurate_state() {
    let site = site_2l2c(0.15, 3.0);
    let car = Actor::straight(1, ObjectClass::Car, (-40.0, -1.75), 0.0, 13.0, 6.0);
    let sim = quiet_sim(1, 6.0);
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, std::slice::from_ref(&car), &sim), 6.0, 0.1);
    let ids = ids_for(&car, &polls, 0.5, 2.0);
    assert!(ids.iter().all(|i| *i == ids[0] && i.is_some()), "one id throughout: {ids:?}");
    let (t, objs) = &polls[45];
    let tr = car.truth(*t).expect("alive");
    let o = nearest(objs, tr.pos, 2.0).expect("tracked");
    assert!((Vector2::new(o.position_m.x, o.position_m.y) - tr.pos).norm() < 0.4, "{o:?}");
    assert!((o.speed_mps - 13.0).abs() < 0.6, "speed {}", o.speed_mps);
    assert!(o.yaw_rad.abs() < 0.05, "yaw {}", o.yaw_rad);
    assert_eq!(o.class, ObjectClass::Car);
    assert!(o.class_confidence > 0.8);
    assert!(o.sources.contains(SourceSet::LIDAR) && o.sources.contains(SourceSet::CAMERA));
    let seen_by: Vec<&str> = site.sensor_ids(o.seen_by).collect();
    assert!(!seen_by.is_empty() && seen_by.iter().all(|id| site.sensor(id).is_some()), "{seen_by:?}");
    assert!(o.pos_confidence_95_m > 0.0 && o.pos_confidence_95_m < 1.0);
    let path: Vec<_> = o.path_history().collect();
    assert!(path.len() >= 3 && path.windows(2).all(|w| w[0].dt_s < w[1].dt_s), "{path:?}");
    // Relative to the object: the newest point is where the object was at its last update.
    let newest = o.path.newest().expect("a path");
    assert_eq!(path[0].dt_s, o.time.secs_since(newest.0));
    assert_eq!(path[0].offset_m, [newest.1[0] - o.position_m.x, newest.1[1] - o.position_m.y]);
    // The size converges to the lidar's, not the class default alone.
    assert!((o.size.length_m - 4.6).abs() < 0.3);
}

/// Frames predict only the tracks within their reach: a lidar 2 km away, capturing at another
/// phase, fuses its frames between those of the main sensors. Each area's car keeps one id and
/// an accurate state, and the result does not depend on how often stale tracks are deleted.
#[test]
fn sensors_far_apart_track_their_own_objects_with_frames_interleaved() {
    let mut site = site_2l2c(0.15, 3.0);
    site.sensors.push(lidar("lidar-far", (2000.0, 0.0, 6.0), 0.0, 0.15));
    let near_car = Actor::straight(1, ObjectClass::Car, (-40.0, -1.75), 0.0, 13.0, 6.0);
    let far_car = Actor::straight(2, ObjectClass::Car, (1960.0, 20.0), 0.0, 13.0, 6.0);
    let mut sim = quiet_sim(3, 6.0);
    sim.phase_s.push(("lidar-far".into(), 0.06));
    let arrivals = simulate(&site, &[near_car.clone(), far_car.clone()], &sim);
    let mut polls_by_interval = Vec::new();
    for management_interval_s in [0.1, 0.0] {
        let config = rsu_fusion::FusionConfig { management_interval_s, ..Default::default() };
        let mut fusion = rsu_fusion::Fusion::new(site.clone(), config).expect("valid site");
        polls_by_interval.push(run(&mut fusion, &arrivals, 6.0, 0.1));
    }
    let polls = &polls_by_interval[0];
    for car in [&near_car, &far_car] {
        let ids = ids_for(car, polls, 0.5, 2.0);
        assert!(ids.iter().all(|i| *i == ids[0] && i.is_some()), "car {}: one id throughout: {ids:?}", car.id);
        let (t, objs) = &polls[45];
        let tr = car.truth(*t).expect("alive");
        let o = nearest(objs, tr.pos, 2.0).expect("tracked");
        assert!((Vector2::new(o.position_m.x, o.position_m.y) - tr.pos).norm() < 0.4, "car {}: {o:?}", car.id);
        assert!((o.speed_mps - 13.0).abs() < 0.6, "car {}: speed {}", car.id, o.speed_mps);
    }
    assert_eq!(polls.len(), polls_by_interval[1].len());
    for ((t, a), (_, b)) in polls.iter().zip(&polls_by_interval[1]) {
        let key = |objs: &[FusedObject]| objs.iter().map(|o| (o.id, o.position_m)).collect::<Vec<_>>();
        assert_eq!(key(a), key(b), "deleting stale tracks after every batch changes nothing here (t = {t})");
    }
}

/// `poll_kinematics` gives exactly the kinematic fields of `poll_objects` (same engine state,
/// same time) for vehicles (CTRV), pedestrians (CV) and a stopped car, at frame times and
/// between them.
#[test]
fn kinematic_polls_equal_the_full_objects() {
    let site = site_2l2c(0.15, 3.0);
    let mut turning = Actor::straight(3, ObjectClass::Car, (-30.0, -6.0), 0.0, 8.0, 3.0);
    turning.segments.push(Segment { duration_s: 4.0, speed_mps: 8.0, yaw_rate_rps: 0.25 });
    let actors = vec![
        Actor::straight(1, ObjectClass::Pedestrian, (-15.0, -8.0), PI / 2.0, 1.4, 8.0),
        Actor::straight(2, ObjectClass::Car, (-40.0, -1.75), 0.0, 10.0, 8.0),
        turning,
        Actor::straight(4, ObjectClass::Car, (10.0, 5.0), PI, 0.0, 8.0),
    ];
    let sim = quiet_sim(5, 8.0);
    let arrivals = simulate(&site, &actors, &sim);
    let mut fusion = new_fusion(&site);
    let (mut i, mut compared) = (0, 0);
    for k in 1..=160 {
        let at_s = k as f64 * 0.05;
        while i < arrivals.len() && arrivals[i].arrive_s <= at_s {
            fusion.handle_sensor_frame(ts(arrivals[i].arrive_s), arrivals[i].frame.clone());
            i += 1;
        }
        // Both from the same state: each poll may fuse what is due and prune.
        let kinematics = fusion.clone().poll_kinematics(ts(at_s));
        let full: Vec<rsu_fusion::ObjectKinematics> = fusion.poll_objects(ts(at_s)).iter().map(Into::into).collect();
        assert_eq!(kinematics, full, "at {at_s} s");
        compared += full.len();
    }
    assert!(compared > 300, "objects compared: {compared}");
}

#[test]
fn turning_vehicle_keeps_its_id_and_estimates_yaw_rate() {
    let site = site_2l2c(0.15, 3.0);
    let mut car = Actor::straight(1, ObjectClass::Car, (1.75, -40.0), PI / 2.0, 8.0, 0.0);
    let w = 8.0 / 12.0;
    car.segments = vec![
        Segment { duration_s: 3.0, speed_mps: 8.0, yaw_rate_rps: 0.0 },
        Segment { duration_s: (PI / 2.0) / w, speed_mps: 8.0, yaw_rate_rps: w },
        Segment { duration_s: 3.0, speed_mps: 8.0, yaw_rate_rps: 0.0 },
    ];
    let sim = quiet_sim(2, car.end_s());
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, std::slice::from_ref(&car), &sim), sim.duration_s, 0.1);
    let ids = ids_for(&car, &polls, 0.5, 2.0);
    assert!(ids.iter().all(|i| *i == ids[0] && i.is_some()), "one id: {ids:?}");
    // Late in the turn the yaw rate and heading are tracked.
    let t_mid = 3.0 + 0.8 * (PI / 2.0) / w;
    let (t, objs) = polls.iter().min_by(|a, b| (a.0 - t_mid).abs().total_cmp(&(b.0 - t_mid).abs())).expect("polls");
    let tr = car.truth(*t).expect("alive");
    let o = nearest(objs, tr.pos, 2.0).expect("tracked");
    assert!((o.yaw_rate_rps - w).abs() < 0.2, "yaw rate {} vs {w}", o.yaw_rate_rps);
    let yaw_err = (o.yaw_rad - tr.yaw + PI).rem_euclid(2.0 * PI) - PI;
    assert!(yaw_err.abs() < 0.15, "yaw err {yaw_err}");
    assert!((Vector2::new(o.position_m.x, o.position_m.y) - tr.pos).norm() < 0.6);
}

#[test]
fn crossing_pedestrians_and_close_passing_cars_keep_their_ids() {
    let site = site_2l2c(0.15, 3.0);
    let actors = vec![
        Actor::straight(1, ObjectClass::Pedestrian, (-15.0, -8.0), PI / 2.0, 1.4, 11.0),
        Actor::straight(2, ObjectClass::Pedestrian, (-14.3, 8.0), -PI / 2.0, 1.4, 11.0),
        // Two cars in adjacent lanes passing each other 3.5 m apart.
        Actor::straight(3, ObjectClass::Car, (-40.0, -1.75), 0.0, 10.0, 8.0),
        Actor::straight(4, ObjectClass::Car, (40.0, 1.75), PI, 10.0, 8.0),
    ];
    let sim = quiet_sim(3, 11.0);
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, &actors, &sim), sim.duration_s, 0.1);
    let mut all = Vec::new();
    for a in &actors {
        let ids = ids_for(a, &polls, 0.5, 1.5);
        let first = ids[0].expect("tracked after warm-up");
        let kept = ids.iter().filter(|i| **i == Some(first)).count();
        assert!(kept as f64 >= 0.97 * ids.len() as f64, "actor {} ids {ids:?}", a.id);
        all.push(first);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 4, "four distinct ids");
}

#[test]
fn pedestrians_walking_side_by_side_are_two_tracks() {
    // Two people 0.8 m apart walking abreast: each falls in the other's gate, and they move
    // alike, but the lidar reports both in almost every frame, so they are two objects.
    let site = site_2l2c(0.15, 3.0);
    let actors = vec![
        Actor::straight(1, ObjectClass::Pedestrian, (-12.0, -4.4), 0.0, 1.3, 10.0),
        Actor::straight(2, ObjectClass::Pedestrian, (-12.0, -3.6), 0.0, 1.3, 10.0),
    ];
    let sim = quiet_sim(5, 10.0);
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, &actors, &sim), sim.duration_s, 0.1);
    let (a, b) = (ids_for(&actors[0], &polls, 1.0, 0.4), ids_for(&actors[1], &polls, 1.0, 0.4));
    let apart = a.iter().zip(&b).filter(|(x, y)| x.is_some() && y.is_some() && x != y).count();
    assert!(apart as f64 >= 0.9 * a.len() as f64, "{apart} of {} polls with two tracks: {a:?} {b:?}", a.len());
}

#[test]
fn occlusion_gap_coasts_and_keeps_the_id() {
    let site = site_2l2c(0.15, 3.0);
    let mut car = Actor::straight(1, ObjectClass::Car, (-40.0, -1.75), 0.0, 10.0, 7.0);
    car.hidden = vec![(3.0, 4.0)];
    let sim = quiet_sim(4, 7.0);
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, std::slice::from_ref(&car), &sim), 7.0, 0.1);
    let before = ids_for(&car, &polls, 0.5, 2.0)[20].expect("tracked before");
    let (_, during) = polls.iter().find(|(t, _)| (*t - 3.8).abs() < 1e-6).expect("poll");
    let coasting = during.iter().find(|o| o.id == before).expect("still reported while hidden");
    assert_eq!(coasting.status, TrackStatus::Coasting);
    let (_, at_start) = polls.iter().find(|(t, _)| (*t - 3.0).abs() < 1e-6).expect("poll");
    let seen = at_start.iter().find(|o| o.id == before).expect("tracked");
    assert!(coasting.pos_confidence_95_m > seen.pos_confidence_95_m, "uncertainty grows while coasting");
    let tr = car.truth(3.8).expect("alive");
    assert!((Vector2::new(coasting.position_m.x, coasting.position_m.y) - tr.pos).norm() < 1.0);
    let (_, after) = polls.iter().find(|(t, _)| (*t - 5.0).abs() < 1e-6).expect("poll");
    let o = nearest(after, car.truth(5.0).expect("alive").pos, 1.0).expect("tracked after");
    assert_eq!(o.id, before, "same id after the gap");
    assert_eq!(o.status, TrackStatus::Confirmed);
}

#[test]
fn camera_only_objects_become_lower_confidence_tracks() {
    let site = site_2l2c(0.15, 3.0);
    let mut ped = Actor::straight(1, ObjectClass::Pedestrian, (-25.0, 4.0), 0.0, 1.2, 6.0);
    ped.lidar_visible = false;
    let mut car = Actor::straight(2, ObjectClass::Car, (-30.0, -1.75), 0.0, 8.0, 6.0);
    car.lidar_visible = false;
    let actors = vec![ped.clone(), car.clone()];
    let sim = quiet_sim(5, 6.0);
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, &actors, &sim), 6.0, 0.1);
    for a in [&ped, &car] {
        let ids = ids_for(a, &polls, 1.0, 2.5);
        assert!(ids.iter().all(|i| i.is_some() && *i == ids[0]), "actor {} ids {ids:?}", a.id);
        let (t, objs) = &polls[50];
        let tr = a.truth(*t).expect("alive");
        let o = nearest(objs, tr.pos, 2.5).expect("tracked");
        assert_eq!(o.sources, SourceSet::CAMERA);
        assert_eq!(o.class, a.class);
        assert!(o.existence_confidence < 0.9 && o.existence_confidence > 0.3);
        let err = (Vector2::new(o.position_m.x, o.position_m.y) - tr.pos).norm();
        assert!(err < 1.5, "actor {} camera-only error {err}", a.id);
    }
}

#[test]
fn camera_scores_count_in_any_order() {
    // Camera-only objects whose boxes list the confusable class (0.15, below `camera_min_score`)
    // before the true one (0.75): the best class is the highest score, not the first entry, so
    // the fused objects are those of the sorted lists, class for class.
    let site = site_2l2c(0.15, 3.0);
    let mut ped = Actor::straight(1, ObjectClass::Pedestrian, (-25.0, 4.0), 0.0, 1.2, 6.0);
    ped.lidar_visible = false;
    let mut car = Actor::straight(2, ObjectClass::Car, (-30.0, -1.75), 0.0, 8.0, 6.0);
    car.lidar_visible = false;
    let sorted = simulate(&site, &[ped, car], &quiet_sim(5, 6.0));
    let mut reversed = sorted.clone();
    let mut boxes = 0;
    for a in &mut reversed {
        if let rsu_fusion::measurement::Detections::Camera(c) = &mut a.frame.detections {
            for b in &mut c.boxes {
                b.class_scores.reverse();
                assert!(b.class_scores[0].1 < FusionConfig::default().camera_min_score, "{:?}", b.class_scores);
                boxes += 1;
            }
        }
    }
    assert!(boxes > 50, "{boxes} camera boxes");
    let (want, want_stats) = final_state(&site, &sorted, Some(0.1));
    let (got, got_stats) = final_state(&site, &reversed, Some(0.1));
    assert_eq!(got_stats.detections_low_score, 0, "no box is below the minimum score");
    assert_eq!(got_stats.detections_low_score, want_stats.detections_low_score);
    assert!(want.contains("Pedestrian") && want.contains("Car"), "{want}");
    assert_eq!(got, want);
}

#[test]
fn lidar_dropout_is_reported_and_its_tracks_coast() {
    // Only one lidar covers the car; it stops sending at t = 3 s.
    let mut site = site_2l2c(0.15, 3.0);
    site.sensors.retain(|s| s.id == "lidar-a" || s.id == "lidar-b");
    let car = Actor::straight(1, ObjectClass::Car, (-30.0, -1.75), 0.0, 8.0, 6.0);
    let mut sim = quiet_sim(6, 6.0);
    sim.dropout = vec![("lidar-a".into(), 3.0), ("lidar-b".into(), 3.0)];
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &simulate(&site, std::slice::from_ref(&car), &sim), 6.0, 0.1);
    let id = ids_for(&car, &polls, 0.5, 1.0)[10].expect("tracked");
    let sigma_at = |t: f64| {
        polls
            .iter()
            .find(|(pt, _)| (*pt - t).abs() < 1e-6)
            .and_then(|(_, objs)| objs.iter().find(|o| o.id == id))
            .map(|o| o.pos_confidence_95_m)
    };
    let (s3, s4, s45) = (sigma_at(3.0).expect("t3"), sigma_at(4.0).expect("t4"), sigma_at(4.5).expect("t4.5"));
    assert!(s3 < s4 && s4 < s45, "growing uncertainty {s3} {s4} {s45}");
    let health = fusion.sensor_health(ts(4.5));
    assert!(health.iter().all(|h| h.status == SensorStatus::Silent), "{health:?}");
    let ok = fusion.sensor_health(ts(3.05));
    assert!(ok.iter().all(|h| h.status == SensorStatus::Ok), "{ok:?}");
    // Deleted after the timeout; the broadcast frame then has no participant and no region.
    let frame = fusion.roadside_frame(ts(6.0));
    assert!(frame.participants.is_empty());
    assert!(frame.perception_regions.is_empty());
    assert_eq!(frame.sensors.len(), 2);
}

/// The final objects after handing `arrivals` in, read every `poll_s` of arrival time (each read
/// fuses what has arrived, so later frames that are older arrive out of sequence) or only at the
/// end, with the engine's counters.
fn final_state(site: &SiteConfig, arrivals: &[Arrival], poll_s: Option<f64>) -> (String, FusionStats) {
    let mut f = new_fusion(site);
    let mut next_poll = poll_s.unwrap_or(f64::INFINITY);
    for a in arrivals {
        while a.arrive_s > next_poll {
            f.poll_objects(ts(next_poll));
            next_poll += poll_s.unwrap_or(f64::INFINITY);
        }
        assert_eq!(f.handle_sensor_frame(ts(a.arrive_s), a.frame.clone()), Ingest::Accepted);
    }
    let objs = f.poll_objects(ts(5.5));
    (format!("{objs:?}"), f.stats().clone())
}

/// Debug text of objects with their ids blanked.
fn without_ids(objects: &str) -> String {
    objects
        .split("id: ")
        .enumerate()
        .map(
            |(i, part)| {
                if i == 0 { part.to_owned() } else { part.trim_start_matches(|c: char| c.is_ascii_digit()).to_owned() }
            },
        )
        .collect::<Vec<_>>()
        .join("id: _")
}

#[test]
fn out_of_sequence_frames_fuse_exactly_like_in_order_and_late_ones_are_dropped() {
    let site = site_2l2c(0.15, 3.0);
    let actors = vec![
        Actor::straight(1, ObjectClass::Car, (-30.0, -1.75), 0.0, 10.0, 5.0),
        Actor::straight(2, ObjectClass::Pedestrian, (-15.0, -8.0), PI / 2.0, 1.4, 5.0),
    ];
    let mut sim = quiet_sim(7, 5.0);
    sim.latency_s = (0.0, 0.0);
    // Sensors at their own phases, and synchronised (each capture time a batch of four frames).
    let synchronised = site.sensors.iter().map(|s| (s.id.clone(), 0.0)).collect();
    for phases in [Vec::new(), synchronised] {
        sim.phase_s = phases;
        let in_order = simulate(&site, &actors, &sim);
        // Same frames, delivered with very different latencies per sensor (cameras 150-200 ms
        // late, so they arrive after newer lidar frames).
        let mut shuffled = in_order.clone();
        for (k, a) in shuffled.iter_mut().enumerate() {
            if a.frame.sensor_id.starts_with("cam") {
                a.arrive_s += 0.15 + 0.05 * ((k * 7) % 3) as f64 / 2.0;
            }
        }
        shuffled.sort_by(|a, b| a.arrive_s.total_cmp(&b.arrive_s).then(a.frame.sensor_id.cmp(&b.frame.sensor_id)));
        let (a, stats_a) = final_state(&site, &in_order, None);
        let (b, stats_b) = final_state(&site, &shuffled, None);
        let (c, stats_c) = final_state(&site, &shuffled, Some(0.1));
        let (d, _) = final_state(&site, &in_order, Some(0.1));
        assert_eq!((stats_a.late_dropped, stats_b.late_dropped, stats_c.late_dropped), (0, 0, 0));
        assert_eq!(stats_a.out_of_sequence, 0);
        assert!(stats_c.out_of_sequence > 0 && stats_c.rollbacks > 0, "{stats_c:?}");
        assert_eq!(a, b, "capture-time order fusion makes arrival order irrelevant");
        // A track keeps the id it was first given when a rollback fuses its input again (the
        // vehicles saw it), so ids may differ from an in-order run: everything else is equal.
        assert_eq!(
            without_ids(&a),
            without_ids(&c),
            "out-of-sequence fusion gives the result of fusing in capture-time order"
        );
        assert_eq!(a, d, "reading the engine in between changes nothing");
    }

    let in_order = simulate(&site, &actors, &sim);
    // A frame older than the lag is dropped and counted.
    let mut f = new_fusion(&site);
    for a in in_order.iter().filter(|a| a.arrive_s < 2.0) {
        f.handle_sensor_frame(ts(a.arrive_s), a.frame.clone());
    }
    let mut old = in_order[0].frame.clone();
    old.capture_time = ts(1.0);
    assert_eq!(f.handle_sensor_frame(ts(2.0), old.clone()), Ingest::Late);
    assert_eq!(f.stats().late_dropped, 1);
    let mut future = in_order[0].frame.clone();
    future.capture_time = ts(10.0);
    assert_eq!(f.handle_sensor_frame(ts(2.0), future.clone()), Ingest::FromFuture);
    let mut unknown = in_order[0].frame.clone();
    unknown.sensor_id = "nobody".into();
    assert_eq!(f.handle_sensor_frame(ts(2.0), unknown.clone()), Ingest::UnknownSensor);
}

#[test]
fn connected_car_seen_by_lidar_appears_once_and_unseen_one_still_appears() {
    let site = site_2l2c(0.15, 3.0);
    let car = Actor::straight(1, ObjectClass::Car, (-30.0, -1.75), 0.0, 10.0, 5.0);
    // A connected car far outside every sensor's view.
    let ghost = Actor::straight(2, ObjectClass::Car, (300.0, 200.0), PI / 2.0, 5.0, 5.0);
    let sim = quiet_sim(8, 5.0);
    let arrivals = simulate(&site, std::slice::from_ref(&car), &sim);
    let mut rng = rng(99);
    let n = rand_distr::Normal::new(0.0, 0.4).expect("sigma");
    let mut fusion = new_fusion(&site);
    let mut i = 0;
    let mut polls = Vec::new();
    for k in 1..=50 {
        let now = 0.1 * f64::from(k);
        while i < arrivals.len() && arrivals[i].arrive_s <= now {
            fusion.handle_sensor_frame(ts(arrivals[i].arrive_s), arrivals[i].frame.clone());
            i += 1;
        }
        // BSMs from 1 s on, captured 20 ms ago, with GNSS noise.
        if now >= 1.0 {
            for (a, id) in [(&car, "veh-A"), (&ghost, "veh-B")] {
                let tr = a.truth(now - 0.02).expect("alive");
                let noisy = tr.pos + Vector2::new(rand_distr::Distribution::sample(&n, &mut rng), 0.0);
                let st = vehicle_state(&site, id, now - 0.02, noisy, tr.yaw, tr.speed);
                assert_eq!(fusion.handle_vehicle_state(ts(now), &st), Ingest::Accepted);
            }
        }
        polls.push((now, fusion.poll_objects(ts(now))));
    }
    let (t, objs) = polls.last().expect("polls");
    let tr = car.truth(*t).expect("alive");
    let near: Vec<_> =
        objs.iter().filter(|o| (Vector2::new(o.position_m.x, o.position_m.y) - tr.pos).norm() < 5.0).collect();
    assert_eq!(near.len(), 1, "not duplicated: {near:?}");
    assert_eq!(near[0].v2x_id.as_deref(), Some("veh-A"));
    assert!(near[0].sources.contains(SourceSet::V2X | SourceSet::LIDAR));
    // The id is the perception track's id from before the first BSM.
    let early = nearest(&polls[8].1, car.truth(polls[8].0).expect("alive").pos, 2.0).expect("tracked").id;
    assert_eq!(near[0].id, early);
    let g = objs.iter().find(|o| o.v2x_id.as_deref() == Some("veh-B")).expect("unseen connected car appears");
    assert_eq!(g.sources, SourceSet::V2X);
    assert!((Vector2::new(g.position_m.x, g.position_m.y) - ghost.truth(*t).expect("alive").pos).norm() < 1.5);
    assert_eq!(objs.len(), 2);
}

#[test]
fn same_inputs_give_bit_identical_outputs() {
    let site = site_2l2c(0.2, 4.0);
    let actors = vec![
        Actor::straight(1, ObjectClass::Car, (-40.0, -1.75), 0.0, 12.0, 4.0),
        Actor::straight(2, ObjectClass::Pedestrian, (-15.0, -8.0), PI / 2.0, 1.4, 4.0),
        Actor::straight(3, ObjectClass::Truck, (40.0, 5.25), PI, 9.0, 4.0),
    ];
    let mut sim = SimConfig::new(11, 4.0);
    sim.miss_prob = 0.1;
    sim.false_pos_prob = 0.05;
    let arrivals = simulate(&site, &actors, &sim);
    let once = || {
        let mut f = new_fusion(&site);
        let polls = run(&mut f, &arrivals, 4.0, 0.1);
        let frame = f.roadside_frame(ts(4.0));
        let bits: Vec<u64> = polls
            .iter()
            .flat_map(|(_, objs)| {
                objs.iter().flat_map(|o| o.state.iter().chain(o.covariance.iter()).map(|v| v.to_bits()))
            })
            .collect();
        (format!("{polls:?}{frame:?}{:?}", f.stats()), bits)
    };
    let (a, bits_a) = once();
    let (b, bits_b) = once();
    assert!(!bits_a.is_empty());
    assert_eq!(bits_a, bits_b);
    assert_eq!(a, b);
}
