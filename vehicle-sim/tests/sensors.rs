//! Sensor model tests: occlusion, noise statistics against their configuration, range-dependent
//! misses, night degradation, latency and determinism.

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use rsu_fusion::{
    CameraDetections, CameraIntrinsics, CameraModel, Detections, LidarDetection, LidarNoise, ObjectClass,
    SensorCalibration, SensorModel, Timestamp,
};
use vehicle_sim::sensors::camera::{CameraParams, ProjectedBox, project_box};
use vehicle_sim::sensors::effects::PersistentClutter;
use vehicle_sim::sensors::lidar::LidarParams;
use vehicle_sim::sensors::{DetectorParams, Environment, SensorSim};
use vehicle_sim::world::ActorTruth;

const START: Timestamp = Timestamp::from_nanos(1_784_167_200_000_000_000);

fn lidar(height_m: f64, noise: LidarNoise) -> SensorCalibration {
    SensorCalibration {
        id: "lidar-test".into(),
        world_from_sensor: Isometry3::from_parts(Translation3::new(0.0, 0.0, height_m), UnitQuaternion::identity()),
        max_range_m: 150.0,
        hfov_deg: 360.0,
        vfov_deg: 40.0,
        frame_period_s: 0.1,
        model: SensorModel::Lidar(noise),
    }
}

/// A camera at `height_m` looking along +x, tilted `tilt_deg` down.
fn camera(height_m: f64, tilt_deg: f64, pixel_sigma_px: f64) -> SensorCalibration {
    let tilt = tilt_deg.to_radians();
    let z = Vector3::new(tilt.cos(), 0.0, -tilt.sin());
    let x = Vector3::new(0.0, -1.0, 0.0);
    let y = z.cross(&x);
    let rotation = UnitQuaternion::from_matrix(&nalgebra::Matrix3::from_columns(&[x, y, z]));
    SensorCalibration {
        id: "cam-test".into(),
        world_from_sensor: Isometry3::from_parts(Translation3::new(0.0, 0.0, height_m), rotation),
        max_range_m: 150.0,
        hfov_deg: 67.0,
        vfov_deg: 41.0,
        frame_period_s: 0.1,
        model: SensorModel::Camera(CameraModel {
            intrinsics: CameraIntrinsics {
                width_px: 1920,
                height_px: 1080,
                fx: 1450.0,
                fy: 1450.0,
                cx: 960.0,
                cy: 540.0,
                distortion: [-0.09, 0.03, 0.0004, -0.0003, 0.0],
            },
            pixel_sigma_px,
        }),
    }
}

fn actor(id: u32, class: ObjectClass, x: f64, y: f64, yaw_rad: f64) -> ActorTruth {
    ActorTruth::standing(id, class, x, y, yaw_rad)
}

/// A sensor without clutter (random or persistent) and without frame loss, so counts depend on
/// the model alone.
fn quiet(calibration: SensorCalibration, seed: u64) -> SensorSim {
    let mut sim = SensorSim::new(calibration, 0, seed);
    sim.timing.frame_loss_prob = 0.0;
    sim.params = match sim.params {
        DetectorParams::Lidar(p) => DetectorParams::Lidar(LidarParams {
            false_positives_per_frame: 0.0,
            persistent: PersistentClutter { sites: 0, ..p.persistent },
            ..p
        }),
        DetectorParams::Camera(p) => DetectorParams::Camera(CameraParams {
            false_positives_per_frame: 0.0,
            persistent: PersistentClutter { sites: 0, ..p.persistent },
            ..p
        }),
    };
    sim
}

/// The median of the absolute values of `v`.
fn median_abs(v: impl Iterator<Item = f64>) -> f64 {
    let mut abs: Vec<f64> = v.map(f64::abs).collect();
    abs.sort_by(f64::total_cmp);
    abs[abs.len() / 2]
}

/// Median |x| of a Student-t with 4 degrees of freedom and unit scale (N(0, 1): 0.674).
const T4_MEDIAN_ABS: f64 = 0.741;

/// Runs `frames` captures of a static scene and returns the detections of every delivered frame.
fn frames(sim: &mut SensorSim, scene: &[ActorTruth], frames: usize, env: Environment) -> Vec<Detections> {
    (0..frames)
        .filter_map(|_| {
            let t = sim.next_trigger_s();
            sim.capture(START, t, scene, &[], &env).map(|f| f.frame.detections)
        })
        .collect()
}

fn lidar_dets(d: &Detections) -> &[LidarDetection] {
    match d {
        Detections::Lidar(v) => v,
        Detections::Camera(_) => panic!("a lidar frame"),
    }
}

fn camera_dets(d: &Detections) -> &CameraDetections {
    match d {
        Detections::Camera(c) => c,
        Detections::Lidar(_) => panic!("a camera frame"),
    }
}

const NOISE: LidarNoise = LidarNoise { position_sigma_m: 0.08, position_sigma_per_m: 0.004 };

#[test]
fn an_occluded_pedestrian_is_not_detected_by_the_occluded_lidar() {
    // A bus broadside 15 m from a low lidar, a pedestrian right behind it.
    let bus = actor(1, ObjectClass::Bus, 15.0, 0.0, std::f64::consts::FRAC_PI_2);
    let ped = actor(2, ObjectClass::Pedestrian, 18.0, 0.5, 0.0);
    let near_ped = |d: &LidarDetection, height: f64| {
        let p = d.center_in_sensor + Vector3::new(0.0, 0.0, height);
        (p.x - 18.0).hypot(p.y - 0.5) < 1.5
    };
    let mut sim = quiet(lidar(2.0, NOISE), 7);
    let hidden = frames(&mut sim, &[bus.clone(), ped.clone()], 300, Environment::default());
    assert!(hidden.iter().all(|f| !lidar_dets(f).iter().any(|d| near_ped(d, 2.0))), "seen through the bus");
    assert!(
        hidden
            .iter()
            .filter(|f| lidar_dets(f).iter().any(|d| d.class == ObjectClass::Bus || d.class == ObjectClass::Truck))
            .count()
            > 250
    );
    // Without the bus the same lidar sees the pedestrian nearly always.
    let open = frames(&mut sim, std::slice::from_ref(&ped), 300, Environment::default());
    assert!(open.iter().filter(|f| lidar_dets(f).iter().any(|d| near_ped(d, 2.0))).count() > 270);
    // Mounted high on a pole, the lidar looks over the bus roof at a pedestrian 10 m behind it.
    let mut high = quiet(lidar(8.0, NOISE), 7);
    let further = actor(2, ObjectClass::Pedestrian, 25.0, 0.5, 0.0);
    let over = frames(&mut high, &[bus, further], 300, Environment::default());
    let near_further = |d: &LidarDetection| (d.center_in_sensor.x - 25.0).hypot(d.center_in_sensor.y - 0.5) < 1.5;
    assert!(over.iter().filter(|f| lidar_dets(f).iter().any(near_further)).count() > 250);
}

#[test]
fn an_occluded_pedestrian_is_not_detected_by_the_occluded_camera() {
    // A camera at eye level, a van broadside 20 m ahead, a pedestrian right behind it.
    let calibration = camera(1.5, 0.0, 2.0);
    let SensorModel::Camera(cam) = &calibration.model else { panic!("camera") };
    let van = actor(1, ObjectClass::Van, 20.0, 0.0, std::f64::consts::FRAC_PI_2);
    let ped = actor(2, ObjectClass::Pedestrian, 22.0, 0.0, 0.0);
    let ped_box = project_box(&calibration, cam, &ped).expect("in view");
    let is_ped = |d: &rsu_fusion::CameraDetection| {
        (d.min_px.x - ped_box.min_px.x).abs() < 10.0 && (d.max_px.x - ped_box.max_px.x).abs() < 10.0
    };
    let mut sim = quiet(calibration.clone(), 3);
    let hidden = frames(&mut sim, &[van.clone(), ped.clone()], 200, Environment::default());
    assert!(hidden.iter().all(|f| !camera_dets(f).boxes.iter().any(is_ped)), "seen through the van");
    // Seen in most frames: misses come in bursts of a few frames.
    assert!(hidden.iter().filter(|f| !camera_dets(f).boxes.is_empty()).count() > 160, "the van is seen");
    let open = frames(&mut sim, &[ped], 200, Environment::default());
    assert!(open.iter().filter(|f| camera_dets(f).boxes.iter().any(is_ped)).count() > 160);
}

#[test]
fn lidar_position_errors_have_the_calibrated_core_and_heavy_tails() {
    let mut sim = quiet(lidar(5.0, NOISE), 11);
    let car = actor(1, ObjectClass::Car, 40.0, 0.0, 0.3);
    let truth_in_sensor = Point3::new(40.0, 0.0, car.center.z - 5.0);
    let range = truth_in_sensor.coords.norm();
    let sigma = NOISE.position_sigma_at(range);
    let errors: Vec<Vector3<f64>> = frames(&mut sim, &[car], 3000, Environment::default())
        .iter()
        .flat_map(|f| lidar_dets(f).iter().map(|d| d.center_in_sensor - truth_in_sensor).collect::<Vec<_>>())
        .collect();
    // Misses come in bursts (about 8 % of frames here), never more.
    assert!(errors.len() > 2600, "{} detections", errors.len());
    let n = errors.len() as f64;
    for axis in 0..2 {
        let mean = errors.iter().map(|e| e[axis]).sum::<f64>() / n;
        assert!(mean.abs() < 0.1 * sigma, "axis {axis}: mean {mean}");
        // The core is the calibration's sigma (Student-t scale)...
        let core = median_abs(errors.iter().map(|e| e[axis])) / T4_MEDIAN_ABS;
        assert!((core / sigma - 1.0).abs() < 0.08, "axis {axis}: core {core} vs configured {sigma}");
        // ... but about 1.6 % of the errors lie beyond 4 sigma, where a Gaussian has 0.006 %.
        let beyond = errors.iter().filter(|e| e[axis].abs() > 4.0 * sigma).count() as f64 / n;
        assert!(beyond > 0.008 && beyond < 0.03, "axis {axis}: {beyond} beyond 4 sigma");
    }
    // Noise grows with range: the same object at 100 m scatters more.
    let mut far = quiet(lidar(5.0, NOISE), 11);
    let far_car = actor(1, ObjectClass::Car, 100.0, 0.0, 0.3);
    let far_err: Vec<f64> = frames(&mut far, &[far_car], 1000, Environment::default())
        .iter()
        .flat_map(|f| lidar_dets(f).iter().map(|d| d.center_in_sensor.x - 100.0).collect::<Vec<_>>())
        .collect();
    let far_core = median_abs(far_err.iter().copied()) / T4_MEDIAN_ABS;
    assert!((far_core / NOISE.position_sigma_at(100.1) - 1.0).abs() < 0.12, "{far_core}");
}

#[test]
fn camera_pixel_errors_have_the_calibrated_core_and_heavy_tails() {
    let sigma_px = 3.0;
    let calibration = camera(6.0, 8.0, sigma_px);
    let SensorModel::Camera(cam) = &calibration.model else { panic!("camera") };
    let car = actor(1, ObjectClass::Car, 30.0, 2.0, 0.4);
    let truth = project_box(&calibration, cam, &car).expect("in view");
    assert_eq!(truth.truncation, 0.0);
    let mut sim = quiet(calibration, 5);
    let boxes: Vec<rsu_fusion::CameraDetection> = frames(&mut sim, &[car], 3000, Environment::default())
        .iter()
        .flat_map(|f| camera_dets(f).boxes.clone())
        .collect();
    assert!(boxes.len() > 2500, "{}", boxes.len());
    let n = boxes.len() as f64;
    type EdgeError = fn(&rsu_fusion::CameraDetection, &ProjectedBox) -> f64;
    let edges: [(&str, EdgeError); 4] = [
        ("left", |d, t| d.min_px.x - t.min_px.x),
        ("top", |d, t| d.min_px.y - t.min_px.y),
        ("right", |d, t| d.max_px.x - t.max_px.x),
        ("bottom", |d, t| d.max_px.y - t.max_px.y),
    ];
    for (name, err) in edges {
        let mean = boxes.iter().map(|d| err(d, &truth)).sum::<f64>() / n;
        assert!(mean.abs() < 0.25, "{name}: mean {mean}");
        let core = median_abs(boxes.iter().map(|d| err(d, &truth))) / T4_MEDIAN_ABS;
        assert!((core / sigma_px - 1.0).abs() < 0.08, "{name}: core {core} vs {sigma_px}");
        let beyond = boxes.iter().filter(|d| err(d, &truth).abs() > 4.0 * sigma_px).count() as f64 / n;
        assert!(beyond > 0.008, "{name}: {beyond} beyond 4 sigma");
    }
    assert!(boxes.iter().all(|d| d.class_scores.iter().map(|c| c.1).sum::<f64>() <= 1.0));
}

#[test]
fn misses_grow_with_range_and_at_night() {
    let rate = |sim: &mut SensorSim, x: f64, env: Environment| {
        let ped = actor(1, ObjectClass::Pedestrian, x, 1.0, 0.0);
        frames(sim, &[ped], 400, env).iter().filter(|f| !f.is_empty()).count() as f64 / 400.0
    };
    let mut l = quiet(lidar(5.0, NOISE), 1);
    let (near, far) = (rate(&mut l, 20.0, Environment::default()), rate(&mut l, 120.0, Environment::default()));
    // Near, misses are the bursts only (about 8 % of frames on average, more or less over 400).
    assert!(near > 0.8 && far < near - 0.2, "lidar near {near} far {far}");
    let mut c = quiet(camera(6.0, 8.0, 2.0), 1);
    let day_far = rate(&mut c, 110.0, Environment::default());
    let night_far = rate(&mut c, 110.0, Environment { night: true, rain: false });
    let day_near = rate(&mut c, 25.0, Environment::default());
    assert!(day_near > 0.85 && day_far < day_near && night_far < day_far - 0.2, "{day_near} {day_far} {night_far}");
}

#[test]
fn frames_carry_capture_time_and_arrive_after_the_latency() {
    let mut sim = SensorSim::new(lidar(5.0, NOISE), 2, 9);
    let mut latencies = Vec::new();
    let mut last_sequence = None;
    for _ in 0..500 {
        let t = sim.next_trigger_s();
        if let Some(f) = sim.capture(START, t, &[], &[], &Environment::default()) {
            let capture_s = f.frame.capture_time.secs_since(START);
            assert!((capture_s - t).abs() < 0.01, "capture near its trigger");
            latencies.push(f.arrival.secs_since(f.frame.capture_time));
            assert!(last_sequence.is_none_or(|s| f.frame.sequence > s));
            last_sequence = Some(f.frame.sequence);
        }
    }
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    assert!((mean - sim.timing.latency_mean_s).abs() < 0.003, "{mean}");
    assert!(latencies.iter().all(|l| *l >= 0.005));
    assert!(latencies.len() < 500 && latencies.len() > 480, "about 0.5 % of frames are lost: {}", latencies.len());
}

#[test]
fn the_same_seed_gives_the_same_detections() {
    let scene = [actor(1, ObjectClass::Car, 30.0, 3.0, 0.2), actor(2, ObjectClass::Pedestrian, 60.0, -4.0, 1.0)];
    let run = |seed: u64| {
        let mut sim = SensorSim::new(lidar(5.0, NOISE), 0, seed);
        let mut cam = SensorSim::new(camera(6.0, 8.0, 2.0), 1, seed);
        (frames(&mut sim, &scene, 50, Environment::default()), frames(&mut cam, &scene, 50, Environment::default()))
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn misses_come_in_bursts() {
    // A car in plain view at 30 m: the detector misses it a few percent of the time, and a miss
    // is followed by another far more often than chance.
    let mut sim = quiet(lidar(5.0, NOISE), 21);
    let car = actor(1, ObjectClass::Car, 30.0, 0.0, 0.0);
    let seen: Vec<bool> =
        frames(&mut sim, &[car], 4000, Environment::default()).iter().map(|f| !f.is_empty()).collect();
    let miss_rate = seen.iter().filter(|s| !**s).count() as f64 / seen.len() as f64;
    let after_miss: Vec<bool> = seen.windows(2).filter(|w| !w[0]).map(|w| !w[1]).collect();
    let repeat_rate = after_miss.iter().filter(|m| **m).count() as f64 / after_miss.len() as f64;
    assert!(miss_rate > 0.03 && miss_rate < 0.15, "miss rate {miss_rate}");
    assert!(repeat_rate > 3.0 * miss_rate, "a miss after a miss: {repeat_rate} vs {miss_rate}");
}

#[test]
fn pedestrians_close_together_often_come_out_as_one_box() {
    let mut sim = quiet(lidar(5.0, NOISE), 3);
    // Two pedestrians shoulder to shoulder (0.6 m between centres), and two 3 m apart.
    let close = [actor(1, ObjectClass::Pedestrian, 20.0, 0.0, 0.0), actor(2, ObjectClass::Pedestrian, 20.0, 0.6, 0.0)];
    let apart = [actor(1, ObjectClass::Pedestrian, 20.0, 0.0, 0.0), actor(2, ObjectClass::Pedestrian, 20.0, 3.0, 0.0)];
    let one_box = |scene: &[ActorTruth], sim: &mut SensorSim| {
        let f = frames(sim, scene, 1000, Environment::default());
        f.iter().filter(|d| lidar_dets(d).len() == 1).count() as f64 / f.len() as f64
    };
    let merged = one_box(&close, &mut sim);
    let separate = one_box(&apart, &mut sim);
    assert!(merged > 0.3, "merged in {merged} of frames");
    assert!(separate < 0.2, "far apart, one box in {separate} of frames (misses only)");
    // A merged box spans both.
    let f = frames(&mut sim, &close, 200, Environment::default());
    let wide =
        f.iter().flat_map(|d| lidar_dets(d).iter()).filter(|d| d.size.length_m.max(d.size.width_m) > 0.9).count();
    assert!(wide > 40, "{wide} wide boxes");
}

#[test]
fn a_bus_sometimes_comes_out_as_two_boxes() {
    let mut sim = quiet(lidar(5.0, NOISE), 4);
    let bus = actor(1, ObjectClass::Bus, 25.0, 0.0, std::f64::consts::FRAC_PI_2 + 0.3);
    let f = frames(&mut sim, std::slice::from_ref(&bus), 1000, Environment::default());
    let two = f.iter().filter(|d| lidar_dets(d).len() == 2).count() as f64 / f.len() as f64;
    assert!(two > 0.05 && two < 0.25, "split in {two} of frames");
    // The parts together span the bus: each shorter than it, both within its length of its centre.
    for d in f.iter().filter(|d| lidar_dets(d).len() == 2) {
        for part in lidar_dets(d) {
            assert!(part.size.length_m < bus.size.length_m, "{:?}", part.size);
            let c = part.center_in_sensor;
            assert!((c.x - 25.0).hypot(c.y) < 0.5 * bus.size.length_m + 1.0, "{c:?}");
        }
    }
    // A car is never split.
    let car = actor(1, ObjectClass::Car, 25.0, 0.0, 0.3);
    assert!(frames(&mut sim, &[car], 500, Environment::default()).iter().all(|d| lidar_dets(d).len() <= 1));
}

#[test]
fn clutter_scores_overlap_the_real_ones_and_some_clutter_persists() {
    // An empty scene: whatever the lidar reports is clutter.
    let mut sim = SensorSim::new(lidar(5.0, NOISE), 0, 17);
    sim.timing.frame_loss_prob = 0.0;
    let f = frames(&mut sim, &[], 2000, Environment::default());
    let clutter: Vec<&LidarDetection> = f.iter().flat_map(|d| lidar_dets(d).iter()).collect();
    let high = clutter.iter().filter(|d| d.score > 0.5).count();
    assert!(high * 10 > clutter.len(), "{high} of {} clutter detections score above 0.5", clutter.len());
    // Persistent clutter: some 1 m cell holds clutter in many frames, where random clutter
    // spread over the field of view would put a few.
    let mut cells = std::collections::BTreeMap::<(i64, i64), usize>::new();
    for d in &clutter {
        *cells.entry(((d.center_in_sensor.x).round() as i64, (d.center_in_sensor.y).round() as i64)).or_default() += 1;
    }
    let busiest = cells.values().copied().max().unwrap_or(0);
    assert!(busiest > 100, "busiest cell: {busiest} of 2000 frames");
}
