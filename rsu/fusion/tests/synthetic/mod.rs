//! Test helpers: a small synthetic world (actors on piecewise constant-speed, constant-turn-rate
//! paths), simulated roadside lidars and cameras with seeded noise, misses and false positives,
//! and a loop that runs the fusion engine over them.
//!
//! The fusion crate's scenario and property tests use it, and so do the accuracy tests of
//! `replays/tests/fusion_accuracy.rs` (through `#[path]`), which score the engine with the
//! project's scorer (`v2x_replays::scoring`): the scorer lives in a crate that depends on this one.
#![allow(dead_code)]

use nalgebra::{Isometry3, Point2, Point3, Translation3, UnitQuaternion, Vector2, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rsu_fusion::calibration::{CameraIntrinsics, CameraModel, GroundModel, LidarNoise, SensorCalibration, SensorModel};
use rsu_fusion::camera::{CameraGeometry, box_corners, camera_pose};
use rsu_fusion::measurement::{
    AdasStatus, BrakeStatus, CameraDetection, CameraDetections, Detections, GnssStatus, LidarDetection,
    PositionAccuracy, SensorFrame, VehicleState,
};
use rsu_fusion::{BoxSize, FusedObject, Fusion, FusionConfig, ObjectClass, SiteConfig, Timestamp, Wgs84};

/// Start of every scenario (an arbitrary UTC time).
pub const T0_NS: i64 = 1_790_000_000_000_000_000;

pub fn ts(t_s: f64) -> Timestamp {
    Timestamp::from_nanos(T0_NS).add_secs(t_s)
}

/// One segment of a path: duration [s], speed [m/s], yaw rate [rad/s].
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub duration_s: f64,
    pub speed_mps: f64,
    pub yaw_rate_rps: f64,
}

#[derive(Clone, Debug)]
pub struct Actor {
    pub id: u32,
    pub class: ObjectClass,
    pub size: BoxSize,
    pub start_s: f64,
    pub start: Vector2<f64>,
    pub start_yaw: f64,
    pub segments: Vec<Segment>,
    /// Seen by lidars / cameras at all.
    pub lidar_visible: bool,
    pub camera_visible: bool,
    /// Intervals [s] in which no sensor sees it.
    pub hidden: Vec<(f64, f64)>,
}

/// Ground truth of an actor at one time.
#[derive(Clone, Copy, Debug)]
pub struct Truth {
    pub id: u32,
    pub class: ObjectClass,
    pub pos: Vector2<f64>,
    pub yaw: f64,
    pub speed: f64,
    pub yaw_rate: f64,
}

impl Actor {
    pub fn straight(id: u32, class: ObjectClass, start: (f64, f64), yaw: f64, speed: f64, duration: f64) -> Self {
        Actor {
            id,
            class,
            size: class.typical_size(),
            start_s: 0.0,
            start: Vector2::new(start.0, start.1),
            start_yaw: yaw,
            segments: vec![Segment { duration_s: duration, speed_mps: speed, yaw_rate_rps: 0.0 }],
            lidar_visible: true,
            camera_visible: true,
            hidden: Vec::new(),
        }
    }

    pub fn end_s(&self) -> f64 {
        self.start_s + self.segments.iter().map(|s| s.duration_s).sum::<f64>()
    }

    pub fn truth(&self, t: f64) -> Option<Truth> {
        if t < self.start_s || t > self.end_s() {
            return None;
        }
        let mut p = self.start;
        let mut yaw = self.start_yaw;
        let mut left = t - self.start_s;
        for seg in &self.segments {
            let dt = left.min(seg.duration_s);
            let (v, w) = (seg.speed_mps, seg.yaw_rate_rps);
            if w.abs() > 1e-9 {
                p += Vector2::new((yaw + w * dt).sin() - yaw.sin(), yaw.cos() - (yaw + w * dt).cos()) * (v / w);
            } else {
                p += Vector2::new(yaw.cos(), yaw.sin()) * v * dt;
            }
            yaw += w * dt;
            left -= dt;
            if left <= 0.0 {
                return Some(Truth { id: self.id, class: self.class, pos: p, yaw, speed: v, yaw_rate: w });
            }
        }
        let last =
            self.segments.last().copied().unwrap_or(Segment { duration_s: 0.0, speed_mps: 0.0, yaw_rate_rps: 0.0 });
        Some(Truth { id: self.id, class: self.class, pos: p, yaw, speed: last.speed_mps, yaw_rate: last.yaw_rate_rps })
    }

    fn hidden_at(&self, t: f64) -> bool {
        self.hidden.iter().any(|&(a, b)| t >= a && t <= b)
    }
}

pub fn lidar(id: &str, pos: (f64, f64, f64), yaw_deg: f64, sigma_m: f64) -> SensorCalibration {
    SensorCalibration {
        id: id.into(),
        world_from_sensor: Isometry3::from_parts(
            Translation3::new(pos.0, pos.1, pos.2),
            UnitQuaternion::from_euler_angles(0.0, 0.0, yaw_deg.to_radians()),
        ),
        max_range_m: 70.0,
        hfov_deg: 360.0,
        vfov_deg: 90.0,
        frame_period_s: 0.1,
        model: SensorModel::Lidar(LidarNoise { position_sigma_m: sigma_m, position_sigma_per_m: 0.0 }),
    }
}

pub fn camera(id: &str, pos: (f64, f64, f64), yaw_deg: f64, pitch_deg: f64, sigma_px: f64) -> SensorCalibration {
    SensorCalibration {
        id: id.into(),
        world_from_sensor: camera_pose(pos, yaw_deg, pitch_deg),
        max_range_m: 110.0,
        hfov_deg: 70.0,
        vfov_deg: 40.0,
        frame_period_s: 0.1,
        model: SensorModel::Camera(CameraModel {
            intrinsics: CameraIntrinsics {
                width_px: 1920,
                height_px: 1080,
                fx: 1400.0,
                fy: 1400.0,
                cx: 960.0,
                cy: 540.0,
                distortion: [-0.08, 0.02, 0.0005, -0.0003, 0.0],
            },
            pixel_sigma_px: sigma_px,
        }),
    }
}

/// An intersection at the origin with two lidars and two cameras.
pub fn site_2l2c(lidar_sigma_m: f64, pixel_sigma_px: f64) -> SiteConfig {
    SiteConfig {
        site_id: "test-crossing".into(),
        name: "synthetic crossing".into(),
        origin: Wgs84::new(33.35, 120.16, 2.0),
        representative: true,
        ground: GroundModel::flat(0.0),
        sensors: vec![
            lidar("lidar-a", (-12.0, -12.0, 5.0), 30.0, lidar_sigma_m),
            lidar("lidar-b", (12.0, 12.0, 5.0), -150.0, lidar_sigma_m),
            camera("cam-a", (-55.0, -9.0, 9.0), 5.0, 9.0, pixel_sigma_px),
            camera("cam-b", (55.0, 9.0, 9.0), 185.0, 9.0, pixel_sigma_px),
        ],
    }
}

/// Sensor simulation settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub duration_s: f64,
    pub miss_prob: f64,
    pub false_pos_prob: f64,
    pub lidar_sigma_m: f64,
    pub pixel_sigma_px: f64,
    /// Sensor id → capture phase within the period [s].
    pub phase_s: Vec<(String, f64)>,
    /// Arrival latency range [s].
    pub latency_s: (f64, f64),
    /// Sensor id → time after which it sends nothing.
    pub dropout: Vec<(String, f64)>,
}

impl SimConfig {
    pub fn new(seed: u64, duration_s: f64) -> Self {
        SimConfig {
            seed,
            duration_s,
            miss_prob: 0.0,
            false_pos_prob: 0.0,
            lidar_sigma_m: 0.1,
            pixel_sigma_px: 2.0,
            phase_s: Vec::new(),
            latency_s: (0.03, 0.06),
            dropout: Vec::new(),
        }
    }
}

/// A frame with its arrival time.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub arrive_s: f64,
    pub frame: SensorFrame,
}

/// Simulates every sensor of `site` over the scenario; frames sorted by arrival.
pub fn simulate(site: &SiteConfig, actors: &[Actor], sim: &SimConfig) -> Vec<Arrival> {
    let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
    let mut out = Vec::new();
    for (k, sensor) in site.sensors.iter().enumerate() {
        let phase = sim.phase_s.iter().find(|p| p.0 == sensor.id).map_or(0.025 * k as f64, |p| p.1);
        let stop = sim.dropout.iter().find(|p| p.0 == sensor.id).map_or(f64::INFINITY, |p| p.1);
        let mut seq = 0u64;
        let mut t = phase;
        while t <= sim.duration_s {
            seq += 1;
            if t < stop {
                let detections = match &sensor.model {
                    SensorModel::Lidar(_) => Detections::Lidar(sim_lidar(sensor, actors, t, sim, &mut rng)),
                    SensorModel::Camera(cam) => {
                        Detections::Camera(sim_camera(sensor, &cam.intrinsics, actors, t, sim, &mut rng))
                    }
                };
                let latency = rng.random_range(sim.latency_s.0..=sim.latency_s.1);
                out.push(Arrival {
                    arrive_s: t + latency,
                    frame: SensorFrame { sensor_id: sensor.id.clone(), sequence: seq, capture_time: ts(t), detections },
                });
            }
            t += sensor.frame_period_s;
        }
    }
    out.sort_by(|a, b| a.arrive_s.total_cmp(&b.arrive_s).then(a.frame.sensor_id.cmp(&b.frame.sensor_id)));
    // Keep each sensor's frames in capture order (a sensor link is FIFO).
    out
}

fn sim_lidar(
    sensor: &SensorCalibration,
    actors: &[Actor],
    t: f64,
    sim: &SimConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<LidarDetection> {
    let n = Normal::new(0.0, sim.lidar_sigma_m).expect("sigma");
    let yaw_n = Normal::new(0.0, 0.04).expect("sigma");
    let sensor_yaw = {
        let f = sensor.world_from_sensor.rotation * Vector3::x();
        f.y.atan2(f.x)
    };
    let mut dets = Vec::new();
    for a in actors {
        let Some(tr) = a.truth(t) else { continue };
        let centre = Point3::new(tr.pos.x, tr.pos.y, 0.5 * a.size.height_m);
        if !a.lidar_visible || a.hidden_at(t) || !sensor.covers(&centre) {
            continue;
        }
        if rng.random_bool(sim.miss_prob) {
            continue;
        }
        let noisy = Point3::new(centre.x + n.sample(rng), centre.y + n.sample(rng), centre.z + 0.3 * n.sample(rng));
        let flip = if rng.random_bool(0.3) { std::f64::consts::PI } else { 0.0 };
        dets.push(LidarDetection {
            center_in_sensor: sensor.world_from_sensor.inverse_transform_point(&noisy),
            size: BoxSize::new(a.size.length_m * (1.0 + yaw_n.sample(rng)), a.size.width_m, a.size.height_m),
            yaw_rad: tr.yaw - sensor_yaw + yaw_n.sample(rng) + flip,
            class: a.class,
            score: 0.85,
            point_count: Some(100),
        });
        if rng.random_bool(sim.false_pos_prob) {
            dets.push(random_lidar_fp(sensor, rng));
        }
    }
    if dets.is_empty() && rng.random_bool(sim.false_pos_prob) {
        dets.push(random_lidar_fp(sensor, rng));
    }
    dets
}

fn random_lidar_fp(sensor: &SensorCalibration, rng: &mut ChaCha8Rng) -> LidarDetection {
    let r = rng.random_range(5.0..60.0);
    let a = rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
    let ground_z = -sensor.world_from_sensor.translation.vector.z;
    LidarDetection {
        center_in_sensor: Point3::new(r * a.cos(), r * a.sin(), ground_z + 0.8),
        size: BoxSize::new(1.0, 0.8, 1.6),
        yaw_rad: rng.random_range(-3.0..3.0),
        class: if rng.random_bool(0.5) { ObjectClass::Pedestrian } else { ObjectClass::Car },
        score: 0.5,
        point_count: Some(12),
    }
}

fn sim_camera(
    sensor: &SensorCalibration,
    intr: &CameraIntrinsics,
    actors: &[Actor],
    t: f64,
    sim: &SimConfig,
    rng: &mut ChaCha8Rng,
) -> CameraDetections {
    let geo = CameraGeometry::new(intr.clone(), sensor.world_from_sensor, sensor.max_range_m);
    let n = Normal::new(0.0, sim.pixel_sigma_px).expect("sigma");
    let mut boxes = Vec::new();
    for a in actors {
        let Some(tr) = a.truth(t) else { continue };
        if !a.camera_visible || a.hidden_at(t) {
            continue;
        }
        // Project the true box with the real (distorting) camera: all eight corners.
        let mut min = Point2::new(f64::INFINITY, f64::INFINITY);
        let mut max = Point2::new(f64::NEG_INFINITY, f64::NEG_INFINITY);
        let mut ok = true;
        for c in box_corners(&tr.pos, 0.0, tr.yaw, &a.size) {
            let p = geo.camera_from_world().transform_point(&c);
            match intr.project(&p).filter(|_| p.z > 0.5 && p.coords.norm() < sensor.max_range_m) {
                Some(px) => {
                    min = Point2::new(min.x.min(px.x), min.y.min(px.y));
                    max = Point2::new(max.x.max(px.x), max.y.max(px.y));
                }
                None => ok = false,
            }
        }
        let inside = min.x >= 0.0 && max.x <= 1920.0 && max.y <= 1080.0 && min.y >= 0.0;
        if !ok || !inside || rng.random_bool(sim.miss_prob) {
            continue;
        }
        boxes.push(CameraDetection {
            min_px: Point2::new(min.x + n.sample(rng), min.y + n.sample(rng)),
            max_px: Point2::new(max.x + n.sample(rng), max.y + n.sample(rng)),
            class_scores: vec![(a.class, 0.75), (confusable(a.class), 0.15)],
        });
        if rng.random_bool(sim.false_pos_prob) {
            boxes.push(random_camera_fp(rng));
        }
    }
    if boxes.is_empty() && rng.random_bool(sim.false_pos_prob) {
        boxes.push(random_camera_fp(rng));
    }
    CameraDetections { image_width_px: 1920, image_height_px: 1080, boxes }
}

fn random_camera_fp(rng: &mut ChaCha8Rng) -> CameraDetection {
    let x = rng.random_range(100.0..1800.0);
    let y = rng.random_range(600.0..1000.0);
    CameraDetection {
        min_px: Point2::new(x, y - 60.0),
        max_px: Point2::new(x + 40.0, y),
        class_scores: vec![(ObjectClass::Pedestrian, 0.5)],
    }
}

fn confusable(c: ObjectClass) -> ObjectClass {
    match c {
        ObjectClass::Car => ObjectClass::Van,
        ObjectClass::Pedestrian => ObjectClass::Cyclist,
        _ => ObjectClass::Car,
    }
}

/// Whether some sensor of the site can see the actor at `t` (for scoring).
pub fn observable(site: &SiteConfig, a: &Actor, t: f64) -> bool {
    let Some(tr) = a.truth(t) else { return false };
    let c = Point3::new(tr.pos.x, tr.pos.y, 0.5 * a.size.height_m);
    site.sensors.iter().any(|s| match s.model {
        SensorModel::Lidar(_) => a.lidar_visible && s.covers(&c),
        SensorModel::Camera(_) => a.camera_visible && s.covers(&c),
    })
}

/// Runs the engine over arrivals, polling every `poll_period_s`; returns (poll time, objects).
pub fn run(
    fusion: &mut Fusion,
    arrivals: &[Arrival],
    duration_s: f64,
    poll_period_s: f64,
) -> Vec<(f64, Vec<FusedObject>)> {
    let mut polls = Vec::new();
    let mut next_poll = poll_period_s;
    let mut i = 0;
    while next_poll <= duration_s + 1e-9 {
        while i < arrivals.len() && arrivals[i].arrive_s <= next_poll {
            let a = &arrivals[i];
            fusion.handle_sensor_frame(ts(a.arrive_s), a.frame.clone());
            i += 1;
        }
        polls.push((next_poll, fusion.poll_objects(ts(next_poll))));
        next_poll += poll_period_s;
    }
    polls
}

pub fn new_fusion(site: &SiteConfig) -> Fusion {
    Fusion::new(site.clone(), FusionConfig::default()).expect("valid site and config")
}

/// Seeded RNG for tests that need one directly.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A connected car's honest self-report: at (`pos`) [m], heading `yaw` [rad], `speed` [m/s],
/// 0.5 m accuracy, at `t` [s].
pub fn vehicle_state(
    site: &rsu_fusion::SiteConfig,
    id: &str,
    t: f64,
    pos: Vector2<f64>,
    yaw: f64,
    speed: f64,
) -> VehicleState {
    VehicleState {
        vehicle_id: id.into(),
        message_count: (t * 10.0) as u32,
        time: ts(t),
        position: site.frame().wgs84_from_enu(&Point3::new(pos.x, pos.y, 0.0)),
        accuracy: PositionAccuracy { semi_major_m: 0.5, semi_minor_m: 0.5, orientation_rad: 0.0 },
        speed_mps: speed,
        yaw_rad: yaw,
        steering_rad: 0.0,
        yaw_rate_rps: 0.0,
        accel_long_mps2: 0.0,
        accel_lat_mps2: 0.0,
        brakes: BrakeStatus::default(),
        size: ObjectClass::Car.typical_size(),
        class: ObjectClass::Car,
        adas: AdasStatus::default(),
        warnings: Vec::new(),
        gnss: GnssStatus::RtkFixed,
    }
}
