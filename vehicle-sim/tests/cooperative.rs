//! The closed loop without a network ([`run_offline`]): the scenario's roadside sensors feed an
//! in-process fusion core (the RSU's), its frames reach the connected car 30 ms later, and the
//! car's driver-assistance functions brake it in the world. The same seed with and without V2X must
//! show the cooperative benefit, and runs must be deterministic.

use std::sync::Arc;

use rsu_site::SiteModel;
use vehicle_sim::adas::{EventKind, Function};
use vehicle_sim::connected::CarConfig;
use vehicle_sim::cosim::{RunOutcome, run_offline};

fn run(name: &str, v2x: bool, seed: u64, duration_s: f64) -> RunOutcome {
    let site = Arc::new(SiteModel::embedded().expect("site"));
    let config = CarConfig { use_v2x: v2x, ..CarConfig::default() };
    run_offline(&site, name, seed, duration_s, &config).expect("offline run")
}

#[test]
fn v2x_warns_the_car_of_the_hidden_pedestrian_earlier_and_it_stops_further_away() {
    for seed in [1, 2, 4] {
        hidden_pedestrian(seed);
    }
}

fn hidden_pedestrian(seed: u64) {
    eprintln!("seed {seed}");
    let with = run("bus-pedestrian", true, seed, 12.0);
    let without = run("bus-pedestrian", false, seed, 12.0);
    let (a, b) = (&with.cars[0], &without.cars[0]);
    assert_eq!(a.v2x_id, "cv-bus-ped");
    let (ha, hb) = (&a.hazards[0], &b.hazards[0]);
    for (label, car) in [("with V2X", a), ("without V2X", b)] {
        eprintln!("{label}: {:?}", car.hazards);
        for e in &car.events {
            eprintln!("  {}", vehicle_sim::cosim::describe(&car.v2x_id, e));
        }
    }
    assert_eq!(ha.class, rsu_fusion::ObjectClass::Pedestrian);
    // The RSU has the pedestrian long before the car's own sensor does.
    let lead = ha.v2x_lead_time_s.expect("the RSU saw the pedestrian");
    assert!(lead > 1.0, "lead time {lead}");
    assert!(hb.first_seen_rsu_s.is_none(), "without V2X the car has nothing from the RSU");
    // Earlier warning, braking in time, more room.
    let (wa, wb) = (ha.first_warning_s.expect("warned with V2X"), hb.first_warning_s.expect("warned without"));
    assert!(wb - wa > 1.0, "warned at {wa} s with V2X, {wb} s without");
    let (ga, gb) = (ha.min_gap_m.expect("in the path"), hb.min_gap_m.expect("in the path"));
    assert!(ga > gb, "closest {ga} m with V2X, {gb} m without");
    assert!(!a.collided, "with V2X the car stops in time");
    // Without V2X only emergency braking for the pedestrian was left; with V2X the driver's
    // braking was enough for it.
    let aeb_for_pedestrian = |run: &vehicle_sim::cosim::CarOutcome| {
        run.events.iter().any(|e| {
            e.kind == EventKind::BrakeStart
                && e.function == Function::Aeb
                && e.cause.as_ref().is_some_and(|c| c.class == rsu_fusion::ObjectClass::Pedestrian)
        })
    };
    assert!(aeb_for_pedestrian(b), "without V2X, emergency braking for the pedestrian");
    assert!(!aeb_for_pedestrian(a), "with V2X, no emergency braking for the pedestrian");
    // And the RSU's objects bring no phantom: with V2X every warning and every braking is for
    // the pedestrian (not for the parked bus the car passes, nor for a ghost of it).
    for e in a.events.iter().filter(|e| matches!(e.kind, EventKind::Warning | EventKind::BrakeStart)) {
        let class = e.cause.as_ref().map(|c| c.class);
        assert_eq!(class, Some(rsu_fusion::ObjectClass::Pedestrian), "with V2X: {e:?}");
    }
}

#[test]
fn a_closed_loop_run_is_deterministic() {
    let one = run("bus-pedestrian", true, 3, 8.0);
    let two = run("bus-pedestrian", true, 3, 8.0);
    let json = |o: &RunOutcome| serde_json::to_string(&o.cars).expect("json");
    assert_eq!(json(&one), json(&two));
    assert_eq!(one.sensor_frames, two.sensor_frames);
}

#[test]
fn v2x_warns_of_the_red_light_runner_hidden_by_the_corner_building_earlier() {
    let with = run("occluded-cross-traffic", true, 1, 12.0);
    let without = run("occluded-cross-traffic", false, 1, 12.0);
    let (ha, hb) = (&with.cars[0].hazards[0], &without.cars[0].hazards[0]);
    let (wa, wb) = (ha.first_warning_s.expect("ICW with V2X"), hb.first_warning_s.expect("ICW without"));
    assert!(wb - wa > 1.0, "warned at {wa} s with V2X, {wb} s without");
    assert!(ha.min_gap_m.unwrap_or(f64::INFINITY) > hb.min_gap_m.unwrap_or(f64::INFINITY));
    assert!(!with.cars[0].collided);
}
