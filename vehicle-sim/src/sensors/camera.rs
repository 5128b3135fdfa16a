//! The roadside camera's 2D box detector: the eight corners of each actor's 3D box projected
//! through the calibrated pinhole intrinsics with distortion, the enclosing box clipped to the
//! image (truncation), occlusion by ray casting, misses growing as the box shrinks with range,
//! and the errors of a real detector (see [`super::effects`]): heavy-tailed pixel errors on every
//! edge growing with occlusion, misses in bursts, class confusion that sticks to some objects,
//! objects overlapping in the image merged into one box, random clutter with scores that overlap
//! the real ones and persistent clutter at fixed places in the image. Night and rain degrade all
//! of it.

use nalgebra::{Point2, Point3, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rsu_fusion::{CameraDetection, CameraDetections, CameraModel, ObjectClass, SensorCalibration};

use super::effects::{
    Ambiguity, BurstMisses, ClutterSite, DetectorMemory, PersistentClutter, SiteChain, SitePlace, clutter_score,
    heavy_tailed, reported_class,
};
use super::occlusion::OcclusionIndex;
use super::{Environment, confusable, poisson};
use crate::world::ActorTruth;

/// Camera detector parameters (pixel noise is the calibration's `pixel_sigma_px`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraParams {
    /// Detection probability of a large, fully visible object [0..1].
    pub max_detection_prob: f64,
    /// Box height at which the detection probability reaches 63 % of its maximum [px].
    pub box_height_scale_px: f64,
    /// Objects with less of their sample points visible are not detected [0..1].
    pub min_visible_fraction: f64,
    /// Objects with more of their box outside the image are not detected [0..1].
    pub max_truncation: f64,
    /// Class confusion probability for large boxes.
    pub confusion_prob: f64,
    /// Added confusion probability: this many pixels divided by the box height.
    pub confusion_px: f64,
    /// Top class score for large boxes in daylight.
    pub score_base: f64,
    /// Degrees of freedom of the Student-t edge errors (lower: heavier tails).
    pub error_dof: f64,
    /// Edge errors grow by this factor times the hidden fraction.
    pub occlusion_error_gain: f64,
    /// Objects this detector consistently confuses.
    pub ambiguity: Ambiguity,
    /// Missed detections in bursts.
    pub bursts: BurstMisses,
    /// Two detected boxes overlapping by at least this IoU may come out as one box [0..1].
    pub merge_min_iou: f64,
    /// Probability of that.
    pub merge_prob: f64,
    /// Mean random false positives per frame.
    pub false_positives_per_frame: f64,
    /// Lowest score of a random false positive.
    pub clutter_score_min: f64,
    /// Highest score of a random false positive.
    pub clutter_score_max: f64,
    /// Persistent clutter at fixed places in the image (posters, poles, reflections).
    pub persistent: PersistentClutter,
    /// At night: factor on pixel noise, on the box height scale, on the detection probability,
    /// on the scores and on false positives.
    pub night_factors: DegradeFactors,
    /// In rain: the same factors.
    pub rain_factors: DegradeFactors,
}

/// How much a condition degrades the camera detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DegradeFactors {
    /// Factor on pixel noise.
    pub pixel_sigma: f64,
    /// Factor on the box height scale (larger: small objects missed more).
    pub height_scale: f64,
    /// Factor on the maximum detection probability.
    pub detection_prob: f64,
    /// Factor on the top score.
    pub score: f64,
    /// Factor on the false positives.
    pub false_positives: f64,
}

impl DegradeFactors {
    const NONE: DegradeFactors =
        DegradeFactors { pixel_sigma: 1.0, height_scale: 1.0, detection_prob: 1.0, score: 1.0, false_positives: 1.0 };

    fn combine(self, o: DegradeFactors) -> DegradeFactors {
        DegradeFactors {
            pixel_sigma: self.pixel_sigma * o.pixel_sigma,
            height_scale: self.height_scale * o.height_scale,
            detection_prob: self.detection_prob * o.detection_prob,
            score: self.score * o.score,
            false_positives: self.false_positives * o.false_positives,
        }
    }
}

impl Default for CameraParams {
    fn default() -> Self {
        CameraParams {
            max_detection_prob: 0.97,
            box_height_scale_px: 16.0,
            min_visible_fraction: 0.3,
            max_truncation: 0.6,
            confusion_prob: 0.03,
            confusion_px: 1.5,
            score_base: 0.9,
            error_dof: 4.0,
            occlusion_error_gain: 1.0,
            ambiguity: Ambiguity::default(),
            bursts: BurstMisses::default(),
            merge_min_iou: 0.3,
            merge_prob: 0.5,
            false_positives_per_frame: 0.2,
            clutter_score_min: 0.1,
            clutter_score_max: 0.8,
            persistent: PersistentClutter { sites: 2, p_start: 0.04, p_stop: 0.2, score_min: 0.3, score_max: 0.65 },
            night_factors: DegradeFactors {
                pixel_sigma: 2.0,
                height_scale: 2.2,
                detection_prob: 0.85,
                score: 0.8,
                false_positives: 2.5,
            },
            rain_factors: DegradeFactors {
                pixel_sigma: 1.5,
                height_scale: 1.4,
                detection_prob: 0.92,
                score: 0.9,
                false_positives: 1.5,
            },
        }
    }
}

impl CameraParams {
    /// The combined degradation in `env`.
    pub fn degradation(&self, env: &Environment) -> DegradeFactors {
        let mut f = DegradeFactors::NONE;
        if env.night {
            f = f.combine(self.night_factors);
        }
        if env.rain {
            f = f.combine(self.rain_factors);
        }
        f
    }
}

/// An actor's projected box: the enclosing box of its 3D corners in the distorted image, before
/// and after clipping to the image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProjectedBox {
    /// Unclipped top-left [px].
    pub min_px: Point2<f64>,
    /// Unclipped bottom-right [px].
    pub max_px: Point2<f64>,
    /// Clipped top-left [px].
    pub clipped_min_px: Point2<f64>,
    /// Clipped bottom-right [px].
    pub clipped_max_px: Point2<f64>,
    /// Fraction of the box area outside the image [0..1].
    pub truncation: f64,
}

/// Projects `actor`'s 3D box; `None` when part of it is behind (or within 0.5 m of) the camera
/// or nothing of it is in the image.
pub fn project_box(calibration: &SensorCalibration, camera: &CameraModel, actor: &ActorTruth) -> Option<ProjectedBox> {
    let fp = actor.footprint().corners();
    let (z0, z1) = (actor.center.z - 0.5 * actor.size.height_m, actor.center.z + 0.5 * actor.size.height_m);
    let mut min = Point2::new(f64::INFINITY, f64::INFINITY);
    let mut max = Point2::new(f64::NEG_INFINITY, f64::NEG_INFINITY);
    for c in fp {
        for z in [z0, z1] {
            let p = calibration.world_from_sensor.inverse_transform_point(&Point3::new(c.x, c.y, z));
            if p.z < 0.5 {
                return None;
            }
            let px = camera.intrinsics.project(&p)?;
            min = Point2::new(min.x.min(px.x), min.y.min(px.y));
            max = Point2::new(max.x.max(px.x), max.y.max(px.y));
        }
    }
    let (w, h) = (f64::from(camera.intrinsics.width_px), f64::from(camera.intrinsics.height_px));
    let cmin = Point2::new(min.x.clamp(0.0, w), min.y.clamp(0.0, h));
    let cmax = Point2::new(max.x.clamp(0.0, w), max.y.clamp(0.0, h));
    let full = (max.x - min.x) * (max.y - min.y);
    let clipped = (cmax.x - cmin.x) * (cmax.y - cmin.y);
    if clipped <= 1.0 || full <= 0.0 {
        return None;
    }
    Some(ProjectedBox {
        min_px: min,
        max_px: max,
        clipped_min_px: cmin,
        clipped_max_px: cmax,
        truncation: 1.0 - clipped / full,
    })
}

/// The detections of one camera frame. `memory` carries the detector's per-object state and its
/// persistent clutter sites from frame to frame (place the sites with [`place_clutter_sites`]
/// first; without them there is no persistent clutter).
#[allow(clippy::too_many_arguments)]
pub fn detect(
    calibration: &SensorCalibration,
    camera: &CameraModel,
    params: &CameraParams,
    env: &Environment,
    scene: &[ActorTruth],
    occlusion: &OcclusionIndex<'_>,
    memory: &mut DetectorMemory,
    rng: &mut ChaCha8Rng,
) -> CameraDetections {
    let f = params.degradation(env);
    let eye = Point3::from(calibration.world_from_sensor.translation.vector);
    let (w, h) = (f64::from(camera.intrinsics.width_px), f64::from(camera.intrinsics.height_px));
    let sigma_px = camera.pixel_sigma_px * f.pixel_sigma;
    memory.objects.begin_frame();
    let mut boxes = Vec::new();
    for actor in scene {
        if (actor.center - eye).norm() > calibration.max_range_m {
            continue;
        }
        let Some(projected) = project_box(calibration, camera, actor) else { continue };
        if projected.truncation > params.max_truncation {
            continue;
        }
        let visible = occlusion.visible_fraction(actor);
        if visible < params.min_visible_fraction {
            continue;
        }
        let draw = memory.objects.draw(rng, actor.id, &params.bursts, &params.ambiguity);
        let height_px = projected.clipped_max_px.y - projected.clipped_min_px.y;
        let size_term = 1.0 - (-(height_px / (params.box_height_scale_px * f.height_scale)).powi(2)).exp();
        let p_detect =
            draw.detection_factor * params.max_detection_prob * f.detection_prob * size_term * (0.6 + 0.4 * visible);
        if !rng.random_bool(p_detect.clamp(0.0, 1.0)) {
            continue;
        }
        let edge_sigma = sigma_px * (1.0 + params.occlusion_error_gain * (1.0 - visible));
        let mut edge = |px: f64| px + heavy_tailed(rng, edge_sigma, params.error_dof);
        let mut edges = [
            edge(projected.clipped_min_px.x),
            edge(projected.clipped_min_px.y),
            edge(projected.clipped_max_px.x),
            edge(projected.clipped_max_px.y),
        ];
        if edges[2] - edges[0] < 1.0 {
            edges[2] = edges[0] + 1.0;
        }
        if edges[3] - edges[1] < 1.0 {
            edges[3] = edges[1] + 1.0;
        }
        let min_px = Point2::new(edges[0].clamp(0.0, w - 1.0), edges[1].clamp(0.0, h - 1.0));
        let max_px = Point2::new(edges[2].clamp(min_px.x + 1.0, w), edges[3].clamp(min_px.y + 1.0, h));
        let p_confuse = params.confusion_prob + params.confusion_px / height_px.max(1.0);
        let top = reported_class(rng, actor.class, &draw, &params.ambiguity, p_confuse);
        let top_score =
            (params.score_base * f.score - 4.0 / height_px.max(1.0) + heavy_tailed(rng, 0.04, 4.0)).clamp(0.3, 0.99);
        let second = if top == actor.class { confusable(actor.class)[0] } else { actor.class };
        let second_score = ((1.0 - top_score) * rng.random_range(0.3..0.9)).min(top_score);
        boxes.push(CameraDetection { min_px, max_px, class_scores: vec![(top, top_score), (second, second_score)] });
    }
    let mut boxes = merge_overlapping(params, boxes, rng);
    for _ in 0..poisson(rng, params.false_positives_per_frame * f.false_positives) {
        boxes.push(false_positive(params, rng, w, h));
    }
    if let Some(sites) = memory.sites.as_mut() {
        for site in sites.iter_mut() {
            if !site.chain.step(rng, &params.persistent) {
                continue;
            }
            let SitePlace::Image { min_px, max_px } = site.place else { continue };
            let mut jitter =
                |px: f64, limit: f64| (px + heavy_tailed(rng, sigma_px, params.error_dof)).clamp(0.0, limit);
            let min_px = Point2::new(jitter(min_px.x, w - 1.0), jitter(min_px.y, h - 1.0));
            let max_px = Point2::new(jitter(max_px.x, w).max(min_px.x + 1.0), jitter(max_px.y, h).max(min_px.y + 1.0));
            let score = rng.random_range(params.persistent.score_min..=params.persistent.score_max) * f.score;
            boxes.push(CameraDetection {
                min_px,
                max_px,
                class_scores: vec![(site.class, score), (ObjectClass::Unknown, (1.0 - score) * 0.5)],
            });
        }
    }
    CameraDetections { image_width_px: camera.intrinsics.width_px, image_height_px: camera.intrinsics.height_px, boxes }
}

/// Intersection over union of two image boxes.
fn iou(a: &CameraDetection, b: &CameraDetection) -> f64 {
    let ix = (a.max_px.x.min(b.max_px.x) - a.min_px.x.max(b.min_px.x)).max(0.0);
    let iy = (a.max_px.y.min(b.max_px.y) - a.min_px.y.max(b.min_px.y)).max(0.0);
    let inter = ix * iy;
    let area = |d: &CameraDetection| (d.max_px.x - d.min_px.x) * (d.max_px.y - d.min_px.y);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Boxes that overlap in the image (a group of pedestrians, a car behind another) sometimes come
/// out as one box enclosing both, with the larger one's class scores: non-maximum suppression
/// cannot tell one object from two.
fn merge_overlapping(params: &CameraParams, boxes: Vec<CameraDetection>, rng: &mut ChaCha8Rng) -> Vec<CameraDetection> {
    let mut pairs = Vec::new();
    for i in 0..boxes.len() {
        for j in (i + 1)..boxes.len() {
            let overlap = iou(&boxes[i], &boxes[j]);
            if overlap >= params.merge_min_iou {
                pairs.push((overlap, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut taken = vec![false; boxes.len()];
    let mut merged = Vec::new();
    for (_, i, j) in pairs {
        if taken[i] || taken[j] || !rng.random_bool(params.merge_prob.clamp(0.0, 1.0)) {
            continue;
        }
        taken[i] = true;
        taken[j] = true;
        let (a, b) = (&boxes[i], &boxes[j]);
        let area = |d: &CameraDetection| (d.max_px.x - d.min_px.x) * (d.max_px.y - d.min_px.y);
        let big = if area(a) >= area(b) { a } else { b };
        merged.push(CameraDetection {
            min_px: Point2::new(a.min_px.x.min(b.min_px.x), a.min_px.y.min(b.min_px.y)),
            max_px: Point2::new(a.max_px.x.max(b.max_px.x), a.max_px.y.max(b.max_px.y)),
            class_scores: big.class_scores.clone(),
        });
    }
    boxes.into_iter().zip(taken).filter(|(_, t)| !t).map(|(b, _)| b).chain(merged).collect()
}

/// Persistent clutter sites: fixed boxes in the lower part of the image, up to
/// `params.persistent.sites`.
pub fn place_clutter_sites(camera: &CameraModel, params: &CameraParams, rng: &mut ChaCha8Rng) -> Vec<ClutterSite> {
    let (w, h) = (f64::from(camera.intrinsics.width_px), f64::from(camera.intrinsics.height_px));
    (0..params.persistent.sites)
        .map(|_| {
            let b = false_positive(params, rng, w, h);
            ClutterSite {
                place: SitePlace::Image { min_px: b.min_px, max_px: b.max_px },
                class: b.class_scores[0].0,
                chain: SiteChain::default(),
            }
        })
        .collect()
}

/// A random spurious box in the lower part of the image (shadows, reflections, poles).
fn false_positive(params: &CameraParams, rng: &mut ChaCha8Rng, w: f64, h: f64) -> CameraDetection {
    const CLUTTER: [ObjectClass; 3] = [ObjectClass::Pedestrian, ObjectClass::Car, ObjectClass::Unknown];
    let bw = rng.random_range(15.0..80.0);
    let bh = bw * rng.random_range(0.6..2.5);
    let x = rng.random_range(0.0..(w - bw).max(1.0));
    let y = rng.random_range((0.4 * h)..(h - bh).max(0.4 * h + 1.0));
    let class = CLUTTER[rng.random_range(0..CLUTTER.len())];
    let score = clutter_score(rng, params.clutter_score_min, params.clutter_score_max);
    CameraDetection {
        min_px: Point2::new(x, y),
        max_px: Point2::new(x + bw, (y + bh).min(h)),
        class_scores: vec![(class, score), (ObjectClass::Unknown, (1.0 - score) * 0.5)],
    }
}

/// Direction of the optical axis in the site frame (for tests and tools).
pub fn optical_axis(calibration: &SensorCalibration) -> Vector3<f64> {
    calibration.world_from_sensor.rotation * Vector3::z()
}
