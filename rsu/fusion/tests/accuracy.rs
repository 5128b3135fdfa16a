//! Accuracy of the tracker on a busy synthetic crossing seen by 2 lidars and 2 cameras, with
//! lidar noise 0.2 m, camera noise 4 px, 10% missed detections and 2% false positives. Prints
//! MOTA, IDF1, vehicle position RMSE and id switches per 100 track-seconds, and asserts the
//! targets of issue 3.

mod common;

use common::*;
use rsu_fusion::ObjectClass;

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
    let s = score(&site, &actors, &polls, 2.0, 0.1);
    println!(
        "accuracy (2 lidar σ=0.2 m, 2 camera σ=4 px, 10% miss, 2% FP, {} actors, {} s):\n  \
         GT={} TP={} FP={} FN={} IDSW={}\n  MOTA={:.3} IDF1={:.3} vehicle RMSE={:.3} m \
         switches/100 track-s={:.2} ({:.0} track-s)",
        actors.len(),
        sim.duration_s,
        s.gt,
        s.tp,
        s.fp,
        s.fn_,
        s.idsw,
        s.mota,
        s.idf1,
        s.vehicle_rmse_m,
        s.switches_per_100s,
        s.track_seconds
    );
    println!("  stats: {:?}", fusion.stats());
    assert!(s.gt > 1000, "the scenario must be busy enough to mean something");
    assert!(s.mota >= 0.90, "MOTA {:.3}", s.mota);
    assert!(s.idf1 >= 0.90, "IDF1 {:.3}", s.idf1);
    assert!(s.vehicle_rmse_m <= 0.35, "RMSE {:.3}", s.vehicle_rmse_m);
    assert!(s.switches_per_100s <= 1.0, "switches {:.2}", s.switches_per_100s);
}
