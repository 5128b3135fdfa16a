//! Scenario-level tests: every catalogued scenario runs, the headline scenarios show the
//! situation they promise, and the stress scenario is big enough.

use std::sync::Arc;

use nalgebra::Point3;
use rsu_fusion::{Detections, ObjectClass};
use rsu_site::SiteModel;
use rsu_site::geometry::Prism;
use vehicle_sim::record::{Output, Simulation};
use vehicle_sim::scenario::{CATALOGUE, build};
use vehicle_sim::sensors::occlusion::OcclusionIndex;

fn site() -> Arc<SiteModel> {
    Arc::new(SiteModel::embedded().expect("site loads"))
}

#[test]
fn every_scenario_runs_and_produces_every_kind_of_output() {
    let site = site();
    for info in CATALOGUE {
        let scenario = build(info.name, site.clone(), 3).expect("builds");
        let mut sim = Simulation::new(scenario, 3);
        let mut sensor_ids = std::collections::BTreeSet::new();
        let summary = sim
            .run(1.0, |o| {
                if let Output::Sensor(f) = o {
                    sensor_ids.insert(f.sensor_id);
                }
                Ok::<(), ()>(())
            })
            .expect("runs");
        assert_eq!(summary.truth_frames, 21, "{}", info.name);
        assert!(summary.sensor_frames > 0, "{}", info.name);
        assert!(!info.description.is_empty() && !info.expected_outcome.is_empty());
        if info.name != "camera-night" && info.name != "lidar-failure" {
            assert_eq!(sensor_ids.len(), site.config.sensors.len(), "{}: {sensor_ids:?}", info.name);
        }
        if !["congested-intersection", "lidar-failure", "camera-night"].contains(&info.name) {
            assert!(summary.vehicle_states >= 10, "{} has connected vehicles", info.name);
        }
    }
    assert!(CATALOGUE.len() >= 8);
}

#[test]
fn bus_pedestrian_is_seen_by_the_roadside_before_the_car() {
    let site = site();
    let scenario = build("bus-pedestrian", site.clone(), 1).expect("builds");
    let mut world = scenario.world;
    let car_id = world.actors().iter().find(|a| a.v2x_id.is_some()).map(|a| a.id).expect("connected car");
    let ped_id = world
        .actors()
        .iter()
        .find(|a| a.class == ObjectClass::Pedestrian && a.state.position.x > -39.0 && a.state.position.x < -37.0)
        .map(|a| a.id)
        .expect("the pedestrian");
    let lidar = site.config.sensor("lidar-sw").expect("lidar-sw");
    let lidar_eye = Point3::from(lidar.world_from_sensor.translation.vector);
    let (mut car_sees, mut rsu_sees, mut min_gap, mut ped_moving) = (None, None, f64::INFINITY, None);
    while world.elapsed_s() < 13.0 {
        world.step();
        let truth = world.truth();
        let car = truth.iter().find(|t| t.id == car_id).expect("car");
        let ped = truth.iter().find(|t| t.id == ped_id).expect("pedestrian");
        let mut occluders: Vec<Prism> = site.buildings.clone();
        // Everything but the observing car itself occludes.
        occluders.extend(truth.iter().filter(|t| t.id != car_id).map(|t| t.prism()));
        let driver_eye = Point3::new(car.center.x, car.center.y, 1.2);
        let t = world.elapsed_s();
        if ped.speed_mps > 0.0 && ped_moving.is_none() {
            ped_moving = Some(t);
        }
        if ped_moving.is_some() {
            if car_sees.is_none() && OcclusionIndex::new(driver_eye, &occluders).visible_fraction(ped) > 0.5 {
                car_sees = Some(t);
            }
            if rsu_sees.is_none() && OcclusionIndex::new(lidar_eye, &occluders).visible_fraction(ped) > 0.5 {
                rsu_sees = Some(t);
            }
        }
        if (ped.center.y - car.center.y).abs() < 1.5 {
            min_gap = min_gap.min(ped.center.x - car.center.x - 0.5 * car.size.length_m);
        }
    }
    let (car_sees, rsu_sees) = (car_sees.expect("the car sees it eventually"), rsu_sees.expect("the RSU sees it"));
    assert!(car_sees - rsu_sees >= 1.5, "RSU at {rsu_sees:.2} s, car at {car_sees:.2} s");
    assert!(min_gap > 0.2 && min_gap < 4.0, "the car stops just short: {min_gap:.2} m");
}

#[test]
fn headline_scenarios_have_near_misses_not_collisions() {
    let site = site();
    for name in
        ["bus-pedestrian", "occluded-cross-traffic", "left-turn-oncoming", "stopped-vehicle", "emergency-vehicle"]
    {
        let scenario = build(name, site.clone(), 1).expect("builds");
        let mut world = scenario.world;
        while world.elapsed_s() < scenario.info.default_duration_s {
            world.step();
            if world.steps().is_multiple_of(10) {
                assert_eq!(world.contacts(), vec![], "{name} at {:.1} s", world.elapsed_s());
            }
        }
    }
}

#[test]
fn congested_intersection_has_more_than_300_participants() {
    let scenario = build("congested-intersection", site(), 1).expect("builds");
    let mut world = scenario.world;
    assert!(world.actors().len() > 300, "{}", world.actors().len());
    for _ in 0..200 {
        world.step();
    }
    assert!(world.truth().len() > 300);
}

#[test]
fn lidar_outage_silences_the_sensor_for_five_seconds() {
    let scenario = build("lidar-failure", site(), 2).expect("builds");
    let mut sim = Simulation::new(scenario, 2);
    let mut times = Vec::new();
    sim.run(12.0, |o| {
        if let Output::Sensor(f) = o
            && f.sensor_id == "lidar-ne"
        {
            assert!(matches!(f.detections, Detections::Lidar(_)));
            times.push(f.capture_time.secs_since(vehicle_sim::scenario::DAY_START));
        }
        Ok::<(), ()>(())
    })
    .expect("runs");
    assert!(times.iter().all(|t| !(5.0..10.0).contains(t)));
    assert!(times.iter().any(|t| *t < 5.0) && times.iter().any(|t| *t >= 10.0));
}
