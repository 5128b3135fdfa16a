//! The fusion-cycle scenario shared by the `cycle` bench and the `cycle_profile` example: a large
//! synthetic site with two lidars and two cameras, `n` moving cars, an engine settled for 2 s, then
//! cycle after cycle (2 lidar frames + 2 camera frames, then one poll) on the same engine.

use nalgebra::{Isometry3, Point2, Point3, Vector2};
use rsu_fusion::calibration::{CameraIntrinsics, CameraModel, GroundModel, LidarNoise, SensorCalibration, SensorModel};
use rsu_fusion::camera::{CameraGeometry, box_corners, camera_pose};
use rsu_fusion::measurement::{CameraDetection, CameraDetections, Detections, LidarDetection, SensorFrame};
use rsu_fusion::{BoxSize, FusedObject, Fusion, FusionConfig, ObjectClass, SiteConfig, Timestamp, Wgs84};
use std::sync::Arc;

/// A large synthetic site: two 360° lidars and two cameras facing each other.
pub fn site() -> SiteConfig {
    let lidar = |id: &str, x: f64| SensorCalibration {
        id: id.into(),
        world_from_sensor: Isometry3::translation(x, 0.0, 6.0),
        max_range_m: 150.0,
        hfov_deg: 360.0,
        vfov_deg: 90.0,
        frame_period_s: 0.1,
        model: SensorModel::Lidar(LidarNoise { position_sigma_m: 0.1, position_sigma_per_m: 0.001 }),
    };
    let camera = |id: &str, x: f64, yaw: f64| SensorCalibration {
        id: id.into(),
        world_from_sensor: camera_pose((x, 0.0, 25.0), yaw, 20.0),
        max_range_m: 200.0,
        hfov_deg: 70.0,
        vfov_deg: 40.0,
        frame_period_s: 0.1,
        model: SensorModel::Camera(CameraModel {
            intrinsics: CameraIntrinsics {
                width_px: 1920,
                height_px: 1080,
                fx: 1000.0,
                fy: 1000.0,
                cx: 960.0,
                cy: 540.0,
                distortion: [-0.05, 0.01, 0.0, 0.0, 0.0],
            },
            pixel_sigma_px: 3.0,
        }),
    };
    SiteConfig {
        site_id: "bench".into(),
        name: String::new(),
        origin: Wgs84::new(33.35, 120.16, 2.0),
        representative: true,
        ground: GroundModel::flat(0.0),
        sensors: vec![
            lidar("lidar-a", -30.0),
            lidar("lidar-b", 30.0),
            camera("cam-a", -90.0, 0.0),
            camera("cam-b", 90.0, 180.0),
        ],
    }
}

/// `n` cars on a grid of lanes in 120 m × 120 m, moving east or west at 10 m/s, at time `t` [s].
fn objects(n: usize, t: f64) -> Vec<(Vector2<f64>, f64)> {
    (0..n)
        .map(|i| {
            let lane = (i % 40) as f64;
            let slot = (i / 40) as f64;
            let dir = if i % 2 == 0 { 1.0 } else { -1.0 };
            let y = -60.0 + lane * 3.0;
            let x = -60.0 + slot * 9.0 + dir * 10.0 * t;
            (Vector2::new(x, y), if dir > 0.0 { 0.0 } else { std::f64::consts::PI })
        })
        .collect()
}

/// The frames of every sensor of `site` capturing the `n` cars at time `t` [s] (every car
/// detected by every sensor that sees it), shared as the daemon hands them in.
pub fn frames(site: &SiteConfig, n: usize, t: f64, seq: u64) -> Vec<Arc<SensorFrame>> {
    let objs = objects(n, t);
    let size = ObjectClass::Car.typical_size();
    site.sensors
        .iter()
        .map(|s| {
            let detections = match &s.model {
                SensorModel::Lidar(_) => Detections::Lidar(
                    objs.iter()
                        .map(|(p, yaw)| LidarDetection {
                            center_in_sensor: s.world_from_sensor.inverse_transform_point(&Point3::new(p.x, p.y, 0.75)),
                            size,
                            yaw_rad: *yaw,
                            class: ObjectClass::Car,
                            score: 0.9,
                            point_count: None,
                        })
                        .collect(),
                ),
                SensorModel::Camera(cam) => {
                    let geo = CameraGeometry::new(cam.intrinsics.clone(), s.world_from_sensor, s.max_range_m);
                    let boxes = objs
                        .iter()
                        .filter_map(|(p, yaw)| {
                            let mut min = Point2::new(f64::INFINITY, f64::INFINITY);
                            let mut max = Point2::new(f64::NEG_INFINITY, f64::NEG_INFINITY);
                            for c in box_corners(p, 0.0, *yaw, &BoxSize::new(4.6, 1.85, 1.5)) {
                                let px = cam.intrinsics.project(&geo.camera_from_world().transform_point(&c))?;
                                min = Point2::new(min.x.min(px.x), min.y.min(px.y));
                                max = Point2::new(max.x.max(px.x), max.y.max(px.y));
                            }
                            (min.x > 0.0 && max.x < 1920.0 && min.y > 0.0 && max.y < 1080.0).then(|| CameraDetection {
                                min_px: min,
                                max_px: max,
                                class_scores: vec![(ObjectClass::Car, 0.8)],
                            })
                        })
                        .collect();
                    Detections::Camera(CameraDetections { image_width_px: 1920, image_height_px: 1080, boxes })
                }
            };
            Arc::new(SensorFrame { sensor_id: s.id.clone(), sequence: seq, capture_time: ts(t), detections })
        })
        .collect()
}

/// The timestamp `t` seconds into the scenario.
pub fn ts(t: f64) -> Timestamp {
    Timestamp::from_nanos(1_790_000_000_000_000_000).add_secs(t)
}

/// An engine settled on `n` cars for 2 s (20 cycles) and polled at the end, the number of objects
/// that poll reported and the time `t` [s] of the next cycle.
pub fn settled(site: &SiteConfig, n: usize) -> (Fusion, usize, f64) {
    let mut fusion = Fusion::new(site.clone(), FusionConfig::default()).expect("the bench site is valid");
    let mut t = 0.0;
    for k in 0..SETTLE_CYCLES {
        run_cycle(&mut fusion, &frames(site, n, t, k), t);
        t += CYCLE_S;
    }
    let objects_seen = fusion.poll_objects(ts(t)).len();
    (fusion, objects_seen, t)
}

/// Cycles the engine is settled for before the measured ones.
const SETTLE_CYCLES: u64 = 20;
/// The sensors' frame period [s].
const CYCLE_S: f64 = 0.1;

/// One fusion cycle at time `t` [s]: the frames handed in 10 ms after capture, a poll 10 ms later.
pub fn run_cycle(fusion: &mut Fusion, cycle: &[Arc<SensorFrame>], t: f64) -> Vec<FusedObject> {
    for frame in cycle {
        fusion.handle_sensor_frame(ts(t + 0.01), Arc::clone(frame));
    }
    fusion.poll_objects(ts(t + 0.02))
}

/// The steady state of the scenario: one engine running cycle after cycle, as in the daemon (its
/// buffers, path histories and scratch space warm), over `cycles` pre-generated cycles after the
/// settling ones; when they run out it starts over from a copy of the settled engine.
pub struct SteadyState {
    settled: Fusion,
    fusion: Fusion,
    start_t: f64,
    cycles: Vec<Vec<Arc<SensorFrame>>>,
    next: usize,
    /// Objects the settled engine reported.
    pub objects_seen: usize,
}

impl SteadyState {
    /// `n` cars, `cycles` (at least two: the first of them is the untimed warm-up) pre-generated
    /// cycles before starting over.
    pub fn new(site: &SiteConfig, n: usize, cycles: usize) -> Self {
        let (settled, objects_seen, start_t) = settled(site, n);
        let cycles: Vec<Vec<Arc<SensorFrame>>> = (0..cycles.max(2) as u64)
            .map(|k| frames(site, n, start_t + k as f64 * CYCLE_S, SETTLE_CYCLES + k))
            .collect();
        // Starts as if every cycle had run, so the first call starts over (with its warm-up).
        let next = cycles.len();
        SteadyState { fusion: settled.clone(), settled, start_t, cycles, next, objects_seen }
    }

    /// Detections in the first measured cycle.
    pub fn detections_per_cycle(&self) -> usize {
        self.cycles[0].iter().map(|f| f.detections.len()).sum()
    }

    /// Starts over from the settled engine when every pre-generated cycle has run (call it
    /// outside the timing); returns the engine, the next cycle's frames and its time [s]. A
    /// fresh copy first runs one cycle untimed, so the copy's first touches of its memory (page
    /// faults, growing its scratch space) are not counted: the daemon never starts over.
    pub fn next_cycle(&mut self) -> (&mut Fusion, &[Arc<SensorFrame>], f64) {
        if self.next == self.cycles.len() {
            self.fusion = self.settled.clone();
            run_cycle(&mut self.fusion, &self.cycles[0], self.start_t);
            self.next = 1;
        }
        let k = self.next;
        self.next += 1;
        (&mut self.fusion, &self.cycles[k], self.start_t + k as f64 * CYCLE_S)
    }
}
