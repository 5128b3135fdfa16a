//! Accuracy of the tracker on a busy synthetic crossing seen by 2 lidars and 2 cameras, with
//! lidar noise 0.2 m, camera noise 4 px, 10% missed detections and 2% false positives, scored by
//! the project's scorer ([`v2x_replays::scoring`], the one the replay reports use). Prints MOTA,
//! IDF1, HOTA, vehicle position error and id switches per 100 tracked seconds, and asserts the
//! targets of issue 3.
//!
//! The synthetic world is the fusion crate's test world, shared by path: this test lives here
//! because the scorer's crate depends on the fusion crate, so the fusion crate's own tests cannot
//! use it without a second copy of the fusion types.

#[path = "../../rsu/fusion/tests/synthetic/mod.rs"]
mod synthetic;

use rsu_fusion::{FusedObject, ObjectClass, ObjectKinematics, SiteConfig};
use synthetic::*;
use v2x_replays::scoring::{Metrics, Scorer, ScoringConfig, TruthObject};
use v2x_replays::validate::hypotheses;

/// The polls scored against the actors' ground truth as a replay's validation scores a log: every
/// live actor is a truth, scored where some sensor can see it (elsewhere the tracks near it are
/// neither right nor wrong), and the polled objects are the hypotheses.
fn score(site: &SiteConfig, actors: &[Actor], polls: &[(f64, Vec<FusedObject>)], config: ScoringConfig) -> Metrics {
    let mut scorer = Scorer::new(config);
    for (t, objects) in polls {
        let truths: Vec<TruthObject> = actors
            .iter()
            .filter_map(|a| {
                let truth = a.truth(*t)?;
                Some(TruthObject {
                    id: a.id,
                    class: a.class,
                    position_m: [truth.pos.x, truth.pos.y],
                    velocity_mps: [truth.speed * truth.yaw.cos(), truth.speed * truth.yaw.sin()],
                    yaw_rad: truth.yaw,
                    in_coverage: observable(site, a, *t),
                })
            })
            .collect();
        let kinematics: Vec<ObjectKinematics> = objects.iter().map(Into::into).collect();
        scorer.add_frame(ts(*t), &truths, &hypotheses(&kinematics));
    }
    scorer.finish()
}

fn crossing_actors() -> Vec<Actor> {
    use std::f64::consts::PI;
    let mut v = vec![
        Actor::straight(1, ObjectClass::Car, (-80.0, -1.75), 0.0, 12.0, 13.5),
        Actor::straight(2, ObjectClass::Car, (80.0, 1.75), PI, 10.0, 16.5),
        Actor::straight(3, ObjectClass::Car, (-80.0, -5.25), 0.0, 14.0, 11.5),
        Actor::straight(4, ObjectClass::Truck, (80.0, 5.25), PI, 8.0, 14.0),
        Actor::straight(5, ObjectClass::Bus, (-1.75, 75.0), -PI / 2.0, 8.0, 12.0),
        Actor::straight(6, ObjectClass::Cyclist, (-60.0, -8.5), 0.0, 5.0, 19.0),
        Actor::straight(7, ObjectClass::TrafficCone, (20.0, -3.5), 0.0, 0.0, 20.0),
        Actor::straight(8, ObjectClass::Pedestrian, (-30.0, -10.5), 0.0, 1.5, 20.0),
    ];
    v[1].start_s = 1.0;
    v[2].start_s = 4.0;
    v[3].start_s = 5.0;
    v[4].start_s = 3.0;
    v[5].start_s = 0.5;
    // A car turning left at the crossing (northbound, then westbound).
    let mut turn = Actor::straight(9, ObjectClass::Car, (1.75, -75.0), PI / 2.0, 9.0, 0.0);
    turn.start_s = 2.0;
    turn.segments = vec![
        Segment { duration_s: 8.0, speed_mps: 9.0, yaw_rate_rps: 0.0 },
        Segment { duration_s: (PI / 2.0) / (9.0 / 10.0), speed_mps: 9.0, yaw_rate_rps: 9.0 / 10.0 },
        Segment { duration_s: 8.0, speed_mps: 9.0, yaw_rate_rps: 0.0 },
    ];
    v.push(turn);
    // Pedestrians crossing each other on the west crosswalk, walking the whole run.
    let mut p1 = Actor::straight(10, ObjectClass::Pedestrian, (-15.0, -12.0), PI / 2.0, 1.4, 0.0);
    p1.segments = vec![
        Segment { duration_s: 16.0, speed_mps: 1.4, yaw_rate_rps: 0.0 },
        Segment { duration_s: 4.0, speed_mps: 0.0, yaw_rate_rps: 0.0 },
    ];
    let mut p2 = Actor::straight(11, ObjectClass::Pedestrian, (-14.2, 12.0), -PI / 2.0, 1.3, 0.0);
    p2.segments = vec![Segment { duration_s: 20.0, speed_mps: 1.3, yaw_rate_rps: 0.0 }];
    let mut p3 = Actor::straight(12, ObjectClass::Pedestrian, (14.0, 11.0), -PI / 2.0, 1.2, 0.0);
    p3.segments = vec![Segment { duration_s: 20.0, speed_mps: 1.2, yaw_rate_rps: 0.0 }];
    v.extend([p1, p2, p3]);
    v
}

#[test]
fn accuracy_meets_the_targets() {
    let site = site_2l2c(0.2, 4.0);
    let actors = crossing_actors();
    let mut sim = SimConfig::new(7, 20.0);
    sim.lidar_sigma_m = 0.2;
    sim.pixel_sigma_px = 4.0;
    sim.miss_prob = 0.10;
    sim.false_pos_prob = 0.02;
    let arrivals = simulate(&site, &actors, &sim);
    let mut fusion = new_fusion(&site);
    let polls = run(&mut fusion, &arrivals, sim.duration_s, 0.1);
    let m = score(&site, &actors, &polls, ScoringConfig::default());
    let o = &m.overall;
    let (idf1, switches) = (m.idf1.expect("persistent truth ids"), o.num_switches.expect("persistent truth ids"));
    let switches_per_100_track_s = m.switches_per_100_track_s.expect("persistent truth ids");
    // Vehicles' mean position error: the matched distance of the vehicle classes.
    let vehicles = [ObjectClass::Car, ObjectClass::Truck, ObjectClass::Bus];
    let (vehicle_matches, vehicle_distance_m) = vehicles
        .iter()
        .filter_map(|c| m.per_class.get(c))
        .fold((0, 0.0), |(n, sum), c| (n + c.num_matches, sum + c.motp_m.unwrap_or(0.0) * c.num_matches as f64));
    let vehicle_motp_m = vehicle_distance_m / vehicle_matches.max(1) as f64;
    println!(
        "accuracy (2 lidar σ=0.2 m, 2 camera σ=4 px, 10% miss, 2% FP, {} actors, {} s):\n  \
         truths={} matches={} FP={} misses={} switches={}\n  MOTA={:.3} IDF1={:.3} HOTA={:.3} \
         position RMSE={:.3?} m vehicle MOTP={:.3} m switches/100 tracked s={:.2}",
        actors.len(),
        sim.duration_s,
        o.num_truths,
        o.num_matches,
        o.num_false_positives,
        o.num_misses,
        switches,
        o.mota,
        idf1,
        m.hota.hota.unwrap_or(f64::NAN),
        m.position_rmse_m,
        vehicle_motp_m,
        switches_per_100_track_s,
    );
    println!("  stats: {:?}", fusion.stats());
    assert!(o.num_truths > 1000, "the scenario must be busy enough to mean something");
    assert!(o.mota >= 0.90, "MOTA {:.3}", o.mota);
    assert!(idf1 >= 0.90, "IDF1 {idf1:.3}");
    // The project scorer has no per-class RMSE: the RMSE of every match (pedestrians and the
    // cyclist gated at 1 m, vehicles at 2 m) keeps the old vehicle-RMSE target, and the vehicles'
    // mean error (at most their RMSE) a tighter one.
    assert!(m.position_rmse_m.is_some_and(|e| e <= 0.35), "position RMSE {:.3?} m", m.position_rmse_m);
    assert!(vehicle_motp_m <= 0.25, "vehicle MOTP {vehicle_motp_m:.3} m");
    assert!(switches_per_100_track_s <= 1.0, "switches {switches_per_100_track_s:.2}");
}
