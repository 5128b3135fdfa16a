//! The roadside lidar's 3D box detector: coverage from the calibration (range, horizontal and
//! vertical field of view), occlusion by ray casting, a point count from the visible cross-section
//! and range that sets the detection probability and score, position noise from the calibrated
//! [`LidarNoise`] (growing with range), size and yaw noise, class confusion and false positives.
//! Rain shortens the range, thins the points and adds clutter.

use nalgebra::{Point3, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rsu_fusion::{BoxSize, LidarDetection, LidarNoise, ObjectClass, SensorCalibration};

use super::occlusion::OcclusionIndex;
use super::{Environment, gauss, maybe_confuse, poisson};
use crate::world::ActorTruth;
use rsu_site::geometry::wrap_angle;

/// Lidar detector parameters (the position noise is the calibration's [`LidarNoise`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LidarParams {
    /// Detection probability of a well-sampled object [0..1].
    pub max_detection_prob: f64,
    /// Returns per m² of visible cross-section at 10 m range (falls with range²).
    pub points_per_m2_at_10m: f64,
    /// Point count at which the detection probability reaches 63 % of its maximum.
    pub points_scale: f64,
    /// Objects with less of their sample points visible are not detected [0..1].
    pub min_visible_fraction: f64,
    /// Relative size noise at zero range, 1 sigma.
    pub size_sigma_rel: f64,
    /// Added relative size noise per metre of range.
    pub size_sigma_rel_per_m: f64,
    /// Vertical position noise as a fraction of the horizontal noise.
    pub z_sigma_factor: f64,
    /// Yaw noise at zero range, 1 sigma [rad].
    pub yaw_sigma_rad: f64,
    /// Added yaw noise per metre of range [rad/m].
    pub yaw_sigma_rad_per_m: f64,
    /// Probability that the box heading comes out reversed.
    pub yaw_flip_prob: f64,
    /// Class confusion probability at zero range.
    pub confusion_prob: f64,
    /// Added confusion probability per metre of range.
    pub confusion_prob_per_m: f64,
    /// Mean false positives per frame (clutter, vegetation, reflections).
    pub false_positives_per_frame: f64,
    /// In rain: factor on the usable range.
    pub rain_range_factor: f64,
    /// In rain: factor on the returns.
    pub rain_points_factor: f64,
    /// In rain: factor on the false positives.
    pub rain_false_positive_factor: f64,
}

impl Default for LidarParams {
    fn default() -> Self {
        LidarParams {
            max_detection_prob: 0.98,
            points_per_m2_at_10m: 1200.0,
            points_scale: 8.0,
            min_visible_fraction: 0.15,
            size_sigma_rel: 0.03,
            size_sigma_rel_per_m: 0.0008,
            z_sigma_factor: 0.5,
            yaw_sigma_rad: 0.03,
            yaw_sigma_rad_per_m: 0.0008,
            yaw_flip_prob: 0.02,
            confusion_prob: 0.02,
            confusion_prob_per_m: 0.0008,
            false_positives_per_frame: 0.3,
            rain_range_factor: 0.75,
            rain_points_factor: 0.6,
            rain_false_positive_factor: 4.0,
        }
    }
}

/// Expected lidar returns on `actor` from `eye` given its visible fraction.
pub fn expected_points(params: &LidarParams, eye: &Point3<f64>, actor: &ActorTruth, visible_fraction: f64) -> f64 {
    let d = actor.center - eye;
    let horizontal = d.x.hypot(d.y).max(0.5);
    let range = d.norm().max(0.5);
    let rel = actor.yaw_rad - d.y.atan2(d.x);
    let s = actor.size;
    let side = (s.length_m * rel.sin().abs() + s.width_m * rel.cos().abs()) * s.height_m;
    let elevation = (-d.z).atan2(horizontal);
    let area = side * elevation.cos() + s.length_m * s.width_m * elevation.sin().abs();
    params.points_per_m2_at_10m * area * visible_fraction * (10.0 / range).powi(2)
}

/// The detections of one lidar frame.
pub fn detect(
    calibration: &SensorCalibration,
    noise: &LidarNoise,
    params: &LidarParams,
    env: &Environment,
    scene: &[ActorTruth],
    occlusion: &OcclusionIndex<'_>,
    rng: &mut ChaCha8Rng,
) -> Vec<LidarDetection> {
    let world_from_sensor = &calibration.world_from_sensor;
    let eye = Point3::from(world_from_sensor.translation.vector);
    let forward = world_from_sensor.rotation * Vector3::x();
    let sensor_yaw = forward.y.atan2(forward.x);
    let max_range = if env.rain { calibration.max_range_m * params.rain_range_factor } else { calibration.max_range_m };
    let mut out = Vec::new();
    for actor in scene {
        if !calibration.covers(&actor.center) {
            continue;
        }
        let p = world_from_sensor.inverse_transform_point(&actor.center);
        let range = p.coords.norm();
        if range > max_range {
            continue;
        }
        let visible = occlusion.visible_fraction(actor);
        if visible < params.min_visible_fraction {
            continue;
        }
        let mut points = expected_points(params, &eye, actor, visible);
        if env.rain {
            points *= params.rain_points_factor;
        }
        let p_detect = params.max_detection_prob * (1.0 - (-points / params.points_scale).exp());
        if !rng.random_bool(p_detect.clamp(0.0, 1.0)) {
            continue;
        }
        let sigma = noise.position_sigma_at(range);
        let center_in_sensor =
            p + Vector3::new(gauss(rng, sigma), gauss(rng, sigma), gauss(rng, sigma * params.z_sigma_factor));
        let size_sigma = params.size_sigma_rel + params.size_sigma_rel_per_m * range;
        let mut scale = || (1.0 + gauss(rng, size_sigma)).max(0.3);
        let size =
            BoxSize::new(actor.size.length_m * scale(), actor.size.width_m * scale(), actor.size.height_m * scale());
        let flip = if rng.random_bool(params.yaw_flip_prob) { std::f64::consts::PI } else { 0.0 };
        let yaw_sigma = params.yaw_sigma_rad + params.yaw_sigma_rad_per_m * range;
        let yaw_rad = wrap_angle(actor.yaw_rad - sensor_yaw + gauss(rng, yaw_sigma) + flip);
        let class = maybe_confuse(rng, actor.class, params.confusion_prob + params.confusion_prob_per_m * range);
        let score =
            (0.3 + 0.65 * (1.0 - (-points / (4.0 * params.points_scale)).exp()) + gauss(rng, 0.04)).clamp(0.05, 0.99);
        out.push(LidarDetection {
            center_in_sensor,
            size,
            yaw_rad,
            class,
            score,
            point_count: Some(points.round().clamp(1.0, 1e6) as u32),
        });
    }
    let fp_mean = params.false_positives_per_frame * if env.rain { params.rain_false_positive_factor } else { 1.0 };
    for _ in 0..poisson(rng, fp_mean) {
        out.push(false_positive(calibration, rng, max_range));
    }
    out
}

/// A clutter detection somewhere in the field of view, on the ground.
fn false_positive(calibration: &SensorCalibration, rng: &mut ChaCha8Rng, max_range_m: f64) -> LidarDetection {
    const CLUTTER: [ObjectClass; 4] =
        [ObjectClass::Unknown, ObjectClass::Pedestrian, ObjectClass::Obstacle, ObjectClass::Cyclist];
    let half_fov = (calibration.hfov_deg.min(360.0) / 2.0).to_radians();
    let azimuth = rng.random_range(-half_fov..=half_fov);
    let range = rng.random_range(3.0..(0.6 * max_range_m).max(3.5));
    let class = CLUTTER[rng.random_range(0..CLUTTER.len())];
    let typical = class.typical_size();
    let scale = rng.random_range(0.5..1.2);
    let size = BoxSize::new(typical.length_m * scale, typical.width_m * scale, typical.height_m * scale);
    // Put the box on the ground below the sensor's horizontal ray.
    let ground_point =
        calibration.world_from_sensor.transform_point(&Point3::new(range * azimuth.cos(), range * azimuth.sin(), 0.0));
    let on_ground = Point3::new(ground_point.x, ground_point.y, 0.5 * size.height_m);
    LidarDetection {
        center_in_sensor: calibration.world_from_sensor.inverse_transform_point(&on_ground),
        size,
        yaw_rad: rng.random_range(-std::f64::consts::PI..std::f64::consts::PI),
        class,
        score: rng.random_range(0.1..0.45),
        point_count: Some(rng.random_range(3..15)),
    }
}
