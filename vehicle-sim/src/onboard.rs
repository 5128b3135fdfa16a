//! A connected car's own forward perception: one forward-looking sensor behind the windscreen
//! (limited range and field of view), simulated with the roadside lidar detector model of
//! [`crate::sensors::lidar`] mounted on the moving car, so it is occluded by other actors and by
//! buildings exactly as the roadside sensors are. Its frames are delivered after a processing
//! latency and tracked by the same fusion core the RSU runs ([`tracker_site`] gives the core a
//! site whose only sensor is this one, with detections already in the site frame).

use nalgebra::{Isometry3, Point3, Translation3, UnitQuaternion, Vector3};
use rand_chacha::ChaCha8Rng;
use rsu_fusion::{Detections, LidarNoise, SensorCalibration, SensorFrame, SensorModel, SiteConfig, Timestamp};

use crate::sensors::effects::DetectorMemory;
use crate::sensors::lidar::{self, LidarParams};
use crate::sensors::occlusion::OcclusionIndex;
use crate::sensors::{Environment, gauss};
use crate::world::{ActorTruth, rng_stream};
use rsu_site::geometry::{Prism, wrap_angle};

/// The onboard sensor's id in the car's own tracker.
pub const ONBOARD_SENSOR_ID: &str = "onboard";

/// The forward sensor's mounting, coverage, timing and detector model.
#[derive(Clone, Debug, PartialEq)]
pub struct OnboardParams {
    /// Usable range [m].
    pub range_m: f64,
    /// Horizontal field of view, centred straight ahead [deg].
    pub hfov_deg: f64,
    /// Vertical field of view [deg].
    pub vfov_deg: f64,
    /// Mounting height above the ground [m].
    pub height_m: f64,
    /// Mounting point behind the front of the car [m].
    pub behind_front_m: f64,
    /// Frame period [s].
    pub frame_period_s: f64,
    /// Mean capture-to-tracker latency [s].
    pub latency_mean_s: f64,
    /// Latency jitter, 1 sigma [s].
    pub latency_jitter_s: f64,
    /// Position noise.
    pub noise: LidarNoise,
    /// Detector model (detection probability, size, yaw and class noise, clutter).
    pub detector: LidarParams,
}

impl Default for OnboardParams {
    /// A windscreen camera fused with a front radar, as on current L2+ cars: 80 m, 60°, 10 Hz,
    /// 80 ms to the tracker.
    fn default() -> Self {
        OnboardParams {
            range_m: 80.0,
            hfov_deg: 60.0,
            vfov_deg: 30.0,
            height_m: 1.3,
            behind_front_m: 1.8,
            frame_period_s: 0.1,
            latency_mean_s: 0.08,
            latency_jitter_s: 0.01,
            noise: LidarNoise { position_sigma_m: 0.1, position_sigma_per_m: 0.004 },
            detector: LidarParams { false_positives_per_frame: 0.05, ..LidarParams::default() }
                .without_detector_effects(),
        }
    }
}

/// A frame of the onboard sensor, in the site frame, and when it reaches the tracker.
#[derive(Clone, Debug, PartialEq)]
pub struct OnboardFrame {
    /// When the tracker gets it.
    pub delivered_at: Timestamp,
    /// The detections, already in the site frame (sensor id [`ONBOARD_SENSOR_ID`]).
    pub frame: SensorFrame,
    /// Where the sensor was at capture.
    pub world_from_sensor: Isometry3<f64>,
}

/// The car's forward sensor.
#[derive(Clone, Debug)]
pub struct OnboardSensor {
    /// Its parameters.
    pub params: OnboardParams,
    memory: DetectorMemory,
    rng: ChaCha8Rng,
    sequence: u64,
    phase_s: f64,
}

impl OnboardSensor {
    /// A sensor on random stream `stream` of `seed`.
    pub fn new(params: OnboardParams, seed: u64, stream: u64) -> Self {
        let phase_s = params.frame_period_s * ((stream as f64 * 0.61).fract());
        // No persistent clutter sites: they stand still in the world, and this sensor moves.
        OnboardSensor { params, memory: DetectorMemory::default(), rng: rng_stream(seed, stream), sequence: 0, phase_s }
    }

    /// When the next frame is captured [s after start].
    pub fn next_capture_s(&self) -> f64 {
        self.phase_s + self.sequence as f64 * self.params.frame_period_s
    }

    /// The sensor's calibration while mounted on `ego` (x forward, y left, z up).
    pub fn calibration_on(&self, ego: &ActorTruth) -> SensorCalibration {
        let ground_z = ego.center.z - 0.5 * ego.size.height_m;
        let forward = 0.5 * ego.size.length_m - self.params.behind_front_m;
        let (s, c) = ego.yaw_rad.sin_cos();
        let position =
            Point3::new(ego.center.x + forward * c, ego.center.y + forward * s, ground_z + self.params.height_m);
        SensorCalibration {
            id: ONBOARD_SENSOR_ID.to_owned(),
            world_from_sensor: Isometry3::from_parts(
                Translation3::from(position.coords),
                UnitQuaternion::from_axis_angle(&Vector3::z_axis(), ego.yaw_rad),
            ),
            max_range_m: self.params.range_m,
            hfov_deg: self.params.hfov_deg,
            vfov_deg: self.params.vfov_deg,
            frame_period_s: self.params.frame_period_s,
            model: SensorModel::Lidar(self.params.noise),
        }
    }

    /// Captures the next frame from `ego` with the world `scene` at `world_time_s` [s after
    /// start] moved to the exact capture instant.
    pub fn capture(
        &mut self,
        start: Timestamp,
        world_time_s: f64,
        ego: &ActorTruth,
        scene: &[ActorTruth],
        buildings: &[Prism],
        env: &Environment,
    ) -> OnboardFrame {
        let sequence = self.sequence;
        let capture_s = self.next_capture_s();
        self.sequence += 1;
        let dt = capture_s - world_time_s;
        let ego_then = ego.extrapolated(dt);
        let others: Vec<ActorTruth> = scene.iter().filter(|t| t.id != ego.id).map(|t| t.extrapolated(dt)).collect();
        let mut occluders: Vec<Prism> = buildings.to_vec();
        occluders.extend(others.iter().map(ActorTruth::prism));
        let calibration = self.calibration_on(&ego_then);
        let world_from_sensor = calibration.world_from_sensor;
        let eye = Point3::from(world_from_sensor.translation.vector);
        let index = OcclusionIndex::new(eye, &occluders).from_actor(ego.id);
        let p = &self.params;
        let mut detections =
            lidar::detect(&calibration, &p.noise, &p.detector, env, &others, &index, &mut self.memory, &mut self.rng);
        for d in &mut detections {
            d.center_in_sensor = world_from_sensor.transform_point(&d.center_in_sensor);
            d.yaw_rad = wrap_angle(d.yaw_rad + ego_then.yaw_rad);
        }
        let latency_s = (p.latency_mean_s + gauss(&mut self.rng, p.latency_jitter_s)).max(0.005);
        let capture_time = start.add_secs(capture_s);
        OnboardFrame {
            delivered_at: capture_time.add_secs(latency_s),
            frame: SensorFrame {
                sensor_id: ONBOARD_SENSOR_ID.to_owned(),
                sequence,
                capture_time,
                detections: Detections::Lidar(detections),
            },
            world_from_sensor,
        }
    }
}

/// The site the car's own tracker runs on: the RSU site's origin and ground, and one sensor
/// ([`ONBOARD_SENSOR_ID`]) at the site origin with an identity pose, since the onboard frames
/// arrive already in the site frame.
pub fn tracker_site(site: &SiteConfig, params: &OnboardParams) -> SiteConfig {
    SiteConfig {
        site_id: format!("{}-onboard", site.site_id),
        sensors: vec![SensorCalibration {
            id: ONBOARD_SENSOR_ID.to_owned(),
            world_from_sensor: Isometry3::identity(),
            max_range_m: 2000.0,
            hfov_deg: 360.0,
            vfov_deg: 180.0,
            frame_period_s: params.frame_period_s,
            // Range-independent: the tracker cannot know the range from the moving car.
            model: SensorModel::Lidar(LidarNoise {
                position_sigma_m: params.noise.position_sigma_m
                    + params.noise.position_sigma_per_m * 0.5 * params.range_m,
                position_sigma_per_m: 0.0,
            }),
        }],
        ..site.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsu_fusion::ObjectClass;

    fn actor(id: u32, class: ObjectClass, x: f64, y: f64, yaw_rad: f64) -> ActorTruth {
        ActorTruth::standing(id, class, x, y, yaw_rad)
    }

    fn detected_near(frame: &OnboardFrame, x: f64, y: f64) -> bool {
        let Detections::Lidar(boxes) = &frame.frame.detections else { return false };
        boxes.iter().any(|b| (b.center_in_sensor.x - x).hypot(b.center_in_sensor.y - y) < 1.5)
    }

    #[test]
    fn sees_ahead_in_the_site_frame_but_not_behind_beside_or_through_a_bus() {
        let ego = actor(1, ObjectClass::Car, 0.0, 0.0, 0.5);
        let (s, c) = 0.5_f64.sin_cos();
        let ahead = |d: f64, left: f64| (d * c - left * s, d * s + left * c);
        let (ax, ay) = ahead(30.0, 0.0);
        let (bx, by) = ahead(-20.0, 0.0);
        let (px, py) = ahead(8.0, 25.0);
        let (hx, hy) = ahead(45.0, 1.0);
        let (busx, busy) = ahead(35.0, 1.0);
        let scene = vec![
            ego.clone(),
            actor(2, ObjectClass::Car, ax, ay, 0.5),
            actor(3, ObjectClass::Car, bx, by, 0.5),
            actor(4, ObjectClass::Pedestrian, px, py, 0.0),
            actor(5, ObjectClass::Pedestrian, hx, hy, 0.0),
            actor(6, ObjectClass::Bus, busx, busy, 0.5),
        ];
        let mut sensor = OnboardSensor::new(OnboardParams::default(), 7, 900);
        let (mut car, mut behind, mut beside, mut hidden) = (0, 0, 0, 0);
        for _ in 0..50 {
            let frame = sensor.capture(
                Timestamp::from_nanos(0),
                sensor.next_capture_s(),
                &ego,
                &scene,
                &[],
                &Environment::default(),
            );
            car += usize::from(detected_near(&frame, ax, ay));
            behind += usize::from(detected_near(&frame, bx, by));
            beside += usize::from(detected_near(&frame, px, py));
            hidden += usize::from(detected_near(&frame, hx, hy));
            assert!(frame.delivered_at > frame.frame.capture_time);
        }
        assert!(car >= 45, "the car 30 m ahead: {car}/50");
        assert_eq!((behind, beside, hidden), (0, 0, 0), "behind, outside the field of view, behind the bus");
        // The tracker site accepts the frames' frame of reference.
        let site = v2x_proto::sample::site();
        let tracker = tracker_site(&site, &sensor.params);
        assert!(tracker.validate().is_ok());
    }
}
