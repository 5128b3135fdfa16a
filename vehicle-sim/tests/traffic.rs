//! Traffic tests on the shipped site: vehicles stop at red lights and go on green, keep their
//! IDM gap in a lane, follow turning paths with the bicycle model, and pedestrians wait at the
//! kerb for their light.

use std::sync::Arc;

use rsu_fusion::ObjectClass;
use rsu_site::SiteModel;
use rsu_site::signals::LightPhase;
use vehicle_sim::actors::{DriverParams, Motion};
use vehicle_sim::scenario::DAY_START;
use vehicle_sim::world::{VehicleSpec, World};

fn world(seed: u64) -> World {
    World::new(Arc::new(SiteModel::embedded().expect("site loads")), DAY_START, seed)
}

fn run(world: &mut World, seconds: f64) {
    let steps = (seconds * 100.0).round() as u64;
    for _ in 0..steps {
        world.step();
    }
}

fn s_of(world: &World, id: u32) -> f64 {
    match &world.actor(id).expect("alive").motion {
        Motion::Vehicle(d) => d.s_m,
        Motion::Walker(w) => w.s_m,
        Motion::Parked => f64::NAN,
    }
}

#[test]
fn vehicles_stop_at_red_and_go_on_green() {
    let mut w = world(1);
    // E-W is red from 30 s to 60 s into the cycle: start at 30 s.
    w.set_signal_offset(30.0);
    let lane = w.site().path("eb-1").expect("eb-1");
    let stop = lane.stop.as_ref().expect("signalled").stop_at_m;
    let car = w.add_vehicle(VehicleSpec::new(ObjectClass::Car, lane.clone(), stop - 90.0).speed(13.9));
    let half = 0.5 * ObjectClass::Car.typical_size().length_m;
    let mut max_front = f64::NEG_INFINITY;
    while w.elapsed_s() < 29.0 {
        assert_eq!(w.light_phase("sig-ew"), LightPhase::Red);
        w.step();
        max_front = max_front.max(s_of(&w, car) + half);
    }
    let a = w.actor(car).expect("alive");
    assert!(max_front <= stop + 0.05, "crossed the stop line: front {max_front} stop {stop}");
    assert!(stop - max_front < 4.0, "stops close to the line: {}", stop - max_front);
    assert!(a.state.speed_mps < 0.05);
    run(&mut w, 6.0);
    assert_eq!(w.light_phase("sig-ew"), LightPhase::Green);
    assert!(s_of(&w, car) > stop + 5.0, "drives on at green");
}

#[test]
fn followers_keep_the_idm_gap() {
    let mut w = world(2);
    let lane = w.site().path("mlr-eb-2").expect("road lane");
    let leader = w.add_vehicle(VehicleSpec::new(ObjectClass::Car, lane.clone(), 300.0).speed(12.0));
    let follower = w.add_vehicle(VehicleSpec::new(ObjectClass::Car, lane.clone(), 200.0).speed(20.0));
    let length = ObjectClass::Car.typical_size().length_m;
    let mut min_gap = f64::INFINITY;
    for _ in 0..4000 {
        w.step();
        min_gap = min_gap.min(s_of(&w, leader) - s_of(&w, follower) - length);
    }
    let p = DriverParams::for_class(ObjectClass::Car);
    let v = w.actor(leader).expect("alive").state.speed_mps;
    let gap = s_of(&w, leader) - s_of(&w, follower) - length;
    let expected = (p.min_gap_m + v * p.headway_s) / (1.0 - (v / 20.0).powi(4)).sqrt();
    assert!((w.actor(follower).expect("alive").state.speed_mps - v).abs() < 0.1);
    assert!((gap - expected).abs() < 1.0, "gap {gap:.2} vs IDM equilibrium {expected:.2}");
    assert!(min_gap > p.min_gap_m, "never closer than the standstill gap: {min_gap}");
}

#[test]
fn turning_vehicles_follow_their_path_with_bounded_steering() {
    let mut w = world(3);
    // N-S green from the start.
    w.set_signal_offset(32.0);
    let path = w.site().path("nb-1-right").expect("right turn");
    let id = w.add_vehicle(VehicleSpec::new(ObjectClass::Car, path.clone(), 150.0).speed(10.0));
    let mut max_lateral = 0.0_f64;
    let mut max_yaw_rate = 0.0_f64;
    for _ in 0..2500 {
        w.step();
        let Some(a) = w.actor(id) else { break };
        let (_, lateral) = path.line.project(&a.state.position);
        max_lateral = max_lateral.max(lateral.abs());
        max_yaw_rate = max_yaw_rate.max(a.state.yaw_rate_rps.abs());
        if let Motion::Vehicle(d) = &a.motion {
            assert!(a.state.steer_rad.abs() <= d.bicycle.max_steer_rad + 1e-9);
            // Kinematic bicycle: yaw rate = v tan(steer) / wheelbase.
            let expected = a.state.speed_mps * a.state.steer_rad.tan() / d.bicycle.wheelbase_m;
            assert!((a.state.yaw_rate_rps - expected).abs() < 0.02 + 0.1 * expected.abs());
        }
    }
    assert!(max_yaw_rate > 0.2, "it turned");
    assert!(max_lateral < 0.8, "a car tracks a 5.25 m radius turn within {max_lateral:.2} m");
}

#[test]
fn pedestrians_wait_for_their_light() {
    let mut w = world(4);
    // N-S (the avenue crossings) is red for the first 32 s.
    w.set_signal_offset(0.0);
    let walk = w.site().path("walk-west-nb").expect("walkway");
    let kerb = walk.stop.as_ref().expect("signalled").stop_at_m;
    let ped = w.add_walker(walk.clone(), kerb - 6.0, 1.4, true, false);
    let jay = w.add_walker(walk.clone(), kerb - 6.0, 1.4, false, false);
    run(&mut w, 20.0);
    assert!(s_of(&w, ped) <= kerb && s_of(&w, ped) > kerb - 1.0, "waits at the kerb: {}", s_of(&w, ped));
    assert!(s_of(&w, jay) > kerb + 10.0, "the jaywalker crossed");
    run(&mut w, 16.0);
    assert!(s_of(&w, ped) > kerb + 3.0, "crosses on green");
}
