//! The roadside lidar's 3D box detector: coverage from the calibration (range, horizontal and
//! vertical field of view), occlusion by ray casting, a point count from the visible cross-section
//! and range that sets the detection probability and score, and then the errors of a real
//! detector (see [`super::effects`]): heavy-tailed position, size and yaw errors that grow with
//! range and occlusion, a partly hidden object's box pulled towards the sensor and shrunk to its
//! visible part, heading flips (often for pedestrians, whose heading a box fit barely sees),
//! misses in bursts, class confusion that sticks to some objects, close objects merged into one
//! box, long ones (buses, trucks) split in two, random clutter with scores that overlap the real
//! ones and persistent clutter at fixed places near buildings. Rain shortens the range, thins the
//! points and adds clutter.

use nalgebra::{Point2, Point3, Vector2, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rsu_fusion::class::MotionFamily;
use rsu_fusion::{BoxSize, LidarDetection, LidarNoise, ObjectClass, SensorCalibration};

use super::effects::{
    Ambiguity, BurstMisses, ClutterSite, DetectorMemory, PersistentClutter, SiteChain, SitePlace, clutter_score,
    heavy_tailed, merge_probability, reported_class,
};
use super::occlusion::OcclusionIndex;
use super::{Environment, maybe_confuse, poisson};
use crate::world::ActorTruth;
use rsu_site::geometry::{Prism, wrap_angle};

/// Lidar detector parameters (the position noise scale is the calibration's [`LidarNoise`]).
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
    /// Degrees of freedom of the Student-t position, size and yaw errors (lower: heavier tails).
    pub error_dof: f64,
    /// Position, size and yaw error scales grow by this factor times the hidden fraction.
    pub occlusion_error_gain: f64,
    /// A partly hidden object's box centre moves towards the sensor by this fraction of its
    /// half depth times the hidden fraction (the detector fits the faces it sees).
    pub near_face_bias: f64,
    /// A partly hidden object's box length and width shrink by this fraction times the hidden
    /// fraction.
    pub occlusion_shrink: f64,
    /// Relative size error scale at zero range.
    pub size_sigma_rel: f64,
    /// Added relative size error scale per metre of range.
    pub size_sigma_rel_per_m: f64,
    /// Vertical position error as a fraction of the horizontal.
    pub z_sigma_factor: f64,
    /// Yaw error scale at zero range [rad].
    pub yaw_sigma_rad: f64,
    /// Added yaw error scale per metre of range [rad/m].
    pub yaw_sigma_rad_per_m: f64,
    /// Probability that a vehicle's box heading comes out reversed.
    pub yaw_flip_prob: f64,
    /// Added heading reversal probability per metre of range.
    pub yaw_flip_prob_per_m: f64,
    /// Yaw error scale of pedestrians, whose boxes are nearly square [rad].
    pub pedestrian_yaw_sigma_rad: f64,
    /// Heading reversal probability of pedestrians.
    pub pedestrian_yaw_flip_prob: f64,
    /// Class confusion probability at zero range.
    pub confusion_prob: f64,
    /// Added confusion probability per metre of range.
    pub confusion_prob_per_m: f64,
    /// Objects this detector consistently confuses.
    pub ambiguity: Ambiguity,
    /// Missed detections in bursts.
    pub bursts: BurstMisses,
    /// Two detected objects this close (footprint gap) may come out as one box [m].
    pub merge_max_gap_m: f64,
    /// Probability of that when they touch.
    pub merge_max_prob: f64,
    /// Objects at least this long may come out as two boxes [m].
    pub split_min_length_m: f64,
    /// Probability of that at zero range.
    pub split_prob: f64,
    /// Added split probability per metre of range.
    pub split_prob_per_m: f64,
    /// Mean random false positives per frame (vegetation, reflections, ghosts).
    pub false_positives_per_frame: f64,
    /// Lowest score of a random false positive.
    pub clutter_score_min: f64,
    /// Highest score of a random false positive.
    pub clutter_score_max: f64,
    /// Persistent clutter near buildings.
    pub persistent: PersistentClutter,
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
            error_dof: 4.0,
            occlusion_error_gain: 1.5,
            near_face_bias: 0.5,
            occlusion_shrink: 0.4,
            size_sigma_rel: 0.03,
            size_sigma_rel_per_m: 0.0008,
            z_sigma_factor: 0.5,
            yaw_sigma_rad: 0.03,
            yaw_sigma_rad_per_m: 0.0008,
            yaw_flip_prob: 0.02,
            yaw_flip_prob_per_m: 0.0003,
            pedestrian_yaw_sigma_rad: 0.35,
            pedestrian_yaw_flip_prob: 0.15,
            confusion_prob: 0.02,
            confusion_prob_per_m: 0.0008,
            ambiguity: Ambiguity::default(),
            bursts: BurstMisses::default(),
            merge_max_gap_m: 0.5,
            merge_max_prob: 0.6,
            split_min_length_m: 7.0,
            split_prob: 0.08,
            split_prob_per_m: 0.001,
            false_positives_per_frame: 0.3,
            clutter_score_min: 0.1,
            clutter_score_max: 0.85,
            persistent: PersistentClutter { sites: 3, p_start: 0.05, p_stop: 0.2, score_min: 0.25, score_max: 0.7 },
            rain_range_factor: 0.75,
            rain_points_factor: 0.6,
            rain_false_positive_factor: 4.0,
        }
    }
}

impl LidarParams {
    /// These parameters with the real-detector effects of [`super::effects`] turned off:
    /// near-Gaussian errors that do not grow with occlusion, independent misses, no ambiguous
    /// objects, no merged or split boxes, no persistent clutter, clutter scoring below 0.45. The
    /// connected cars' own sensor uses it: the closed loop measures what V2X adds to a car, not
    /// how the car's detector fails.
    pub fn without_detector_effects(self) -> Self {
        LidarParams {
            error_dof: 1e6,
            occlusion_error_gain: 0.0,
            near_face_bias: 0.0,
            occlusion_shrink: 0.0,
            yaw_flip_prob_per_m: 0.0,
            pedestrian_yaw_sigma_rad: self.yaw_sigma_rad,
            pedestrian_yaw_flip_prob: self.yaw_flip_prob,
            ambiguity: Ambiguity { prob: 0.0, ..self.ambiguity },
            bursts: BurstMisses { p_enter: 0.0, ..self.bursts },
            merge_max_prob: 0.0,
            split_prob: 0.0,
            split_prob_per_m: 0.0,
            clutter_score_max: 0.45,
            persistent: PersistentClutter { sites: 0, ..self.persistent },
            ..self
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

/// A detection before merging and splitting, with the truth it came from.
struct Candidate {
    detection: LidarDetection,
    /// The true footprint in the sensor's horizontal plane.
    truth_center: Point2<f64>,
    truth_yaw_rad: f64,
    truth_size: BoxSize,
}

/// The detections of one lidar frame. `memory` carries the detector's per-object state and its
/// persistent clutter sites from frame to frame (place the sites with [`place_clutter_sites`]
/// first; without them there is no persistent clutter).
#[allow(clippy::too_many_arguments)]
pub fn detect(
    calibration: &SensorCalibration,
    noise: &LidarNoise,
    params: &LidarParams,
    env: &Environment,
    scene: &[ActorTruth],
    occlusion: &OcclusionIndex<'_>,
    memory: &mut DetectorMemory,
    rng: &mut ChaCha8Rng,
) -> Vec<LidarDetection> {
    let world_from_sensor = &calibration.world_from_sensor;
    let eye = Point3::from(world_from_sensor.translation.vector);
    let forward = world_from_sensor.rotation * Vector3::x();
    let sensor_yaw = forward.y.atan2(forward.x);
    let max_range = if env.rain { calibration.max_range_m * params.rain_range_factor } else { calibration.max_range_m };
    memory.objects.begin_frame();
    let mut candidates = Vec::new();
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
        let draw = memory.objects.draw(rng, actor.id, &params.bursts, &params.ambiguity);
        let mut points = expected_points(params, &eye, actor, visible);
        if env.rain {
            points *= params.rain_points_factor;
        }
        let p_detect =
            draw.detection_factor * params.max_detection_prob * (1.0 - (-points / params.points_scale).exp());
        if !rng.random_bool(p_detect.clamp(0.0, 1.0)) {
            continue;
        }
        let hidden = 1.0 - visible;
        let error_gain = 1.0 + params.occlusion_error_gain * hidden;
        let dof = params.error_dof;
        let yaw_in_sensor = actor.yaw_rad - sensor_yaw;
        // The faces the sensor sees pull the fitted centre towards it.
        let towards_sensor = Vector2::new(-p.x, -p.y).try_normalize(1e-9).unwrap_or_else(Vector2::zeros);
        let depth = half_extent_along(&actor.size, yaw_in_sensor, &towards_sensor);
        let bias = towards_sensor * (params.near_face_bias * hidden * depth);
        let sigma = noise.position_sigma_at(range) * error_gain;
        let center_in_sensor = p + Vector3::new(
            bias.x + heavy_tailed(rng, sigma, dof),
            bias.y + heavy_tailed(rng, sigma, dof),
            heavy_tailed(rng, sigma * params.z_sigma_factor, dof),
        );
        let size_sigma = (params.size_sigma_rel + params.size_sigma_rel_per_m * range) * error_gain;
        let shrink = 1.0 - params.occlusion_shrink * hidden;
        let mut scale = || (1.0 + heavy_tailed(rng, size_sigma, dof)).clamp(0.3, 2.0);
        let size = BoxSize::new(
            actor.size.length_m * shrink * scale(),
            actor.size.width_m * shrink * scale(),
            actor.size.height_m * scale(),
        );
        let pedestrian = actor.class.motion_family() == MotionFamily::Pedestrian;
        let (yaw_sigma, flip_prob) = if pedestrian {
            (params.pedestrian_yaw_sigma_rad, params.pedestrian_yaw_flip_prob)
        } else {
            (
                (params.yaw_sigma_rad + params.yaw_sigma_rad_per_m * range) * error_gain,
                params.yaw_flip_prob + params.yaw_flip_prob_per_m * range,
            )
        };
        let flip = if rng.random_bool(flip_prob.clamp(0.0, 1.0)) { std::f64::consts::PI } else { 0.0 };
        let yaw_rad = wrap_angle(yaw_in_sensor + heavy_tailed(rng, yaw_sigma, dof) + flip);
        let p_confuse = params.confusion_prob + params.confusion_prob_per_m * range;
        let class = reported_class(rng, actor.class, &draw, &params.ambiguity, p_confuse);
        let score = (0.3 + 0.65 * (1.0 - (-points / (4.0 * params.points_scale)).exp()) + heavy_tailed(rng, 0.04, dof))
            .clamp(0.05, 0.99);
        candidates.push(Candidate {
            detection: LidarDetection {
                center_in_sensor,
                size,
                yaw_rad,
                class,
                score,
                point_count: Some(points.round().clamp(1.0, 1e6) as u32),
            },
            truth_center: Point2::new(p.x, p.y),
            truth_yaw_rad: yaw_in_sensor,
            truth_size: actor.size,
        });
    }
    let mut out = merge_close(params, candidates, rng);
    out = split_long(params, out, rng);
    let fp_mean = params.false_positives_per_frame * if env.rain { params.rain_false_positive_factor } else { 1.0 };
    for _ in 0..poisson(rng, fp_mean) {
        out.push(false_positive(calibration, params, rng, max_range));
    }
    if let Some(sites) = memory.sites.as_mut() {
        for site in sites.iter_mut() {
            if !site.chain.step(rng, &params.persistent) {
                continue;
            }
            let SitePlace::Ground { center_in_sensor, size, yaw_rad } = site.place else { continue };
            let jitter = noise.position_sigma_at(center_in_sensor.coords.norm());
            out.push(LidarDetection {
                center_in_sensor: center_in_sensor
                    + Vector3::new(heavy_tailed(rng, jitter, 4.0), heavy_tailed(rng, jitter, 4.0), 0.0),
                size,
                yaw_rad: wrap_angle(yaw_rad + heavy_tailed(rng, 0.2, 4.0)),
                class: site.class,
                score: rng.random_range(params.persistent.score_min..=params.persistent.score_max),
                point_count: Some(rng.random_range(5..40)),
            });
        }
    }
    out
}

/// Half the extent of a box of `size` and heading `yaw_rad` along the unit direction `dir` [m].
fn half_extent_along(size: &BoxSize, yaw_rad: f64, dir: &Vector2<f64>) -> f64 {
    let rel = dir.y.atan2(dir.x) - yaw_rad;
    0.5 * (size.length_m * rel.cos().abs() + size.width_m * rel.sin().abs())
}

/// The gap between two true footprints along the line joining their centres [m] (negative when
/// they overlap).
fn footprint_gap(a: &Candidate, b: &Candidate) -> f64 {
    let d = b.truth_center - a.truth_center;
    let distance = d.norm();
    let Some(dir) = d.try_normalize(1e-9) else { return -1.0 };
    distance
        - half_extent_along(&a.truth_size, a.truth_yaw_rad, &dir)
        - half_extent_along(&b.truth_size, b.truth_yaw_rad, &dir)
}

/// Close objects come out as one box, with a probability falling with their footprint gap: the
/// segmentation cannot cut one point cluster in two. The box encloses both, in the larger one's
/// heading, with its class.
fn merge_close(params: &LidarParams, candidates: Vec<Candidate>, rng: &mut ChaCha8Rng) -> Vec<LidarDetection> {
    let mut pairs = Vec::new();
    for i in 0..candidates.len() {
        for j in (i + 1)..candidates.len() {
            let (a, b) = (&candidates[i], &candidates[j]);
            // A cheap reject before the exact gap: no two objects here are over 20 m across.
            if (a.truth_center - b.truth_center).norm_squared() > 400.0 {
                continue;
            }
            let gap = footprint_gap(a, b);
            if gap < params.merge_max_gap_m {
                pairs.push((gap, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut taken = vec![false; candidates.len()];
    let mut merged = Vec::new();
    for (gap, i, j) in pairs {
        if taken[i] || taken[j] {
            continue;
        }
        if rng.random_bool(merge_probability(gap, params.merge_max_gap_m, params.merge_max_prob).clamp(0.0, 1.0)) {
            taken[i] = true;
            taken[j] = true;
            merged.push(enclosing(&candidates[i].detection, &candidates[j].detection));
        }
    }
    candidates.into_iter().zip(taken).filter(|(_, t)| !t).map(|(c, _)| c.detection).chain(merged).collect()
}

/// One box enclosing `a` and `b`, in the heading and class of the larger.
fn enclosing(a: &LidarDetection, b: &LidarDetection) -> LidarDetection {
    let area = |d: &LidarDetection| d.size.length_m * d.size.width_m;
    let (big, small) = if area(a) >= area(b) { (a, b) } else { (b, a) };
    let (s, c) = big.yaw_rad.sin_cos();
    let (along, across) = (Vector2::new(c, s), Vector2::new(-s, c));
    let mut lo = Vector2::new(f64::INFINITY, f64::INFINITY);
    let mut hi = Vector2::new(f64::NEG_INFINITY, f64::NEG_INFINITY);
    for d in [big, small] {
        let (ds, dc) = d.yaw_rad.sin_cos();
        let fwd = Vector2::new(dc, ds) * (0.5 * d.size.length_m);
        let left = Vector2::new(-ds, dc) * (0.5 * d.size.width_m);
        let center = Vector2::new(d.center_in_sensor.x, d.center_in_sensor.y);
        for corner in [center + fwd + left, center + fwd - left, center - fwd + left, center - fwd - left] {
            let q = Vector2::new(corner.dot(&along), corner.dot(&across));
            lo = lo.inf(&q);
            hi = hi.sup(&q);
        }
    }
    let mid = 0.5 * (lo + hi);
    let center = along * mid.x + across * mid.y;
    let z_lo =
        (big.center_in_sensor.z - 0.5 * big.size.height_m).min(small.center_in_sensor.z - 0.5 * small.size.height_m);
    let z_hi =
        (big.center_in_sensor.z + 0.5 * big.size.height_m).max(small.center_in_sensor.z + 0.5 * small.size.height_m);
    LidarDetection {
        center_in_sensor: Point3::new(center.x, center.y, 0.5 * (z_lo + z_hi)),
        size: BoxSize::new(hi.x - lo.x, hi.y - lo.y, z_hi - z_lo),
        yaw_rad: big.yaw_rad,
        class: big.class,
        score: big.score.max(small.score),
        point_count: match (big.point_count, small.point_count) {
            (Some(x), Some(y)) => Some(x.saturating_add(y)),
            (x, y) => x.or(y),
        },
    }
}

/// Long objects sometimes come out as two boxes, cut across their length at a random point: the
/// gap between a bus's body and its rear, or a truck's cab and trailer.
fn split_long(params: &LidarParams, detections: Vec<LidarDetection>, rng: &mut ChaCha8Rng) -> Vec<LidarDetection> {
    let mut out = Vec::with_capacity(detections.len());
    for d in detections {
        let range = d.center_in_sensor.coords.norm();
        let p_split = params.split_prob + params.split_prob_per_m * range;
        if d.size.length_m < params.split_min_length_m || !rng.random_bool(p_split.clamp(0.0, 1.0)) {
            out.push(d);
            continue;
        }
        let front = rng.random_range(0.35..0.65);
        let (s, c) = d.yaw_rad.sin_cos();
        let along = Vector3::new(c, s, 0.0);
        let length = d.size.length_m;
        // The front part's centre is half its length behind the front face, the rear's likewise.
        let front_center = d.center_in_sensor + along * (0.5 * length - 0.5 * front * length);
        let rear_center = d.center_in_sensor - along * (0.5 * length - 0.5 * (1.0 - front) * length);
        for (center, part) in [(front_center, front), (rear_center, 1.0 - front)] {
            out.push(LidarDetection {
                center_in_sensor: center,
                size: BoxSize::new(length * part, d.size.width_m, d.size.height_m),
                yaw_rad: d.yaw_rad,
                class: maybe_confuse(rng, d.class, 0.5),
                score: d.score * rng.random_range(0.6..0.95),
                point_count: d.point_count.map(|n| (f64::from(n) * part).round() as u32),
            });
        }
    }
    out
}

/// Persistent clutter sites: near building corners in the sensor's coverage where there are some
/// (poles, bushes, reflective glass), elsewhere on the ground at random, up to
/// `params.persistent.sites`.
pub fn place_clutter_sites(
    calibration: &SensorCalibration,
    params: &LidarParams,
    buildings: &[Prism],
    rng: &mut ChaCha8Rng,
) -> Vec<ClutterSite> {
    const CLASSES: [ObjectClass; 4] =
        [ObjectClass::Pedestrian, ObjectClass::Obstacle, ObjectClass::Unknown, ObjectClass::Cyclist];
    let max_range = 0.7 * calibration.max_range_m;
    let mut corners: Vec<Point3<f64>> = Vec::new();
    for b in buildings {
        let n = b.polygon.len().max(1) as f64;
        let centroid = b.polygon.iter().fold(Vector2::zeros(), |acc, p| acc + p.coords) / n;
        for v in &b.polygon {
            // A metre out from the corner, away from the building.
            let out = (v.coords - centroid).try_normalize(1e-9).unwrap_or_else(Vector2::zeros);
            let p = v.coords + out;
            let on_ground = Point3::new(p.x, p.y, 0.8);
            let in_sensor = calibration.world_from_sensor.inverse_transform_point(&on_ground);
            let range = in_sensor.coords.norm();
            if range > 5.0 && range < max_range && calibration.covers(&on_ground) {
                corners.push(on_ground);
            }
        }
    }
    let mut sites = Vec::new();
    for _ in 0..params.persistent.sites {
        let on_ground = if corners.is_empty() {
            let half_fov = (calibration.hfov_deg.min(360.0) / 2.0).to_radians();
            let azimuth = rng.random_range(-half_fov..=half_fov);
            let range = rng.random_range(5.0..max_range.max(5.5));
            let g = calibration.world_from_sensor.transform_point(&Point3::new(
                range * azimuth.cos(),
                range * azimuth.sin(),
                0.0,
            ));
            Point3::new(g.x, g.y, 0.8)
        } else {
            corners.swap_remove(rng.random_range(0..corners.len()))
        };
        let class = CLASSES[rng.random_range(0..CLASSES.len())];
        let typical = class.typical_size();
        sites.push(ClutterSite {
            place: SitePlace::Ground {
                center_in_sensor: calibration.world_from_sensor.inverse_transform_point(&on_ground),
                size: BoxSize::new(typical.length_m, typical.width_m, typical.height_m.min(1.6)),
                yaw_rad: rng.random_range(-std::f64::consts::PI..std::f64::consts::PI),
            },
            class,
            chain: SiteChain::default(),
        });
    }
    sites
}

/// A random clutter detection somewhere in the field of view, on the ground.
fn false_positive(
    calibration: &SensorCalibration,
    params: &LidarParams,
    rng: &mut ChaCha8Rng,
    max_range_m: f64,
) -> LidarDetection {
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
        score: clutter_score(rng, params.clutter_score_min, params.clutter_score_max),
        point_count: Some(rng.random_range(3..15)),
    }
}
