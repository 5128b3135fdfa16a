//! Calibration check from a log: for each roadside sensor, the error of its declared extrinsic
//! calibration in the ground plane (dx, dy, dyaw), estimated from where its detections fall
//! against the fused tracks of the *other* sensors and the vehicles' V2X self-reports, with an
//! uncertainty, a drift verdict against thresholds, and the corrected calibration.
//!
//! Method, per sensor S:
//! 1. Replay the log through the fusion core with S excluded ([`ReplayConfig::exclude_sensors`]):
//!    the tracks are the other sensors' and the V2X self-reports' (a connected vehicle is a track
//!    fed by its own reports). At every broadcast tick the objects updated within
//!    [`MAX_REFERENCE_AGE_S`] are kept as references.
//! 2. Each frame of S is paired with the references at its capture time (linear interpolation of
//!    a track between the ticks around it, extrapolation by its velocity when it is in one only).
//! 3. Iteratively (ICP): map S's detections into the site frame with the current pose (at first
//!    the declared one), associate each to its nearest reference within a gate that shrinks from
//!    [`INITIAL_GATE_M`] to [`FINAL_GATE_M`] (mutual nearest, unambiguous), and solve the 2D rigid
//!    correction about the sensor's position by weighted Procrustes with Huber weights (IRLS).
//! 4. The covariance of (dx, dy, dyaw) is the sandwich estimate clustered by reference track
//!    (pairs of one track are correlated in time), or the plain least-squares one when that is
//!    larger; the ± reported is 2 sigma.
//!
//! Sign convention: the estimate is the error of the declared pose in the convention of
//! [`CalibrationOffset`]: the declared `world_from_sensor` equals the true one turned by `dyaw`
//! about the sensor's position and shifted by (dx, dy). So replaying a log with
//! `calibration_offsets.S = { translation_m = [dx, dy, 0], yaw_deg = dyaw }` makes this check
//! report (dx, dy, dyaw), and the corrected pose is the declared one with the inverse offset
//! applied. Height, roll and pitch are not estimated (the ground plane does not show them).
//!
//! Lidars compare their box centres with the references' centres. Cameras compare ground points:
//! the bottom-centre pixel of each detected box back-projected to the ground, against the same for
//! each reference's box projected into the camera (both with the current pose), so the camera's
//! view of an object (its near bottom edge, not its centre) is compared like with like. A yaw or
//! horizontal shift of the camera moves its ground points rigidly about its position, so the same
//! 2D solution applies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use nalgebra::{Isometry3, Matrix3, Point2, Point3, Rotation2, Vector2, Vector3};
use rsu_fusion::calibration::PoseConfig;
use rsu_fusion::camera::CameraGeometry;
use rsu_fusion::{BoxSize, CameraModel, Detections, FusedObject, GroundModel, SensorModel, SiteConfig, Timestamp};
use serde::Serialize;

use crate::pipeline::{CalibrationOffset, PipelineError, ReplayConfig, ReplayEvent, replay_with, site_for};
use crate::reader::{OpenOptions, ReadMode, ReplayBody, ReplayReader};

/// Gate of the first association [m]: the largest error (at the ranges where the pairs are) that
/// the check can find.
pub const INITIAL_GATE_M: f64 = 3.0;
/// Gate of the final associations [m].
pub const FINAL_GATE_M: f64 = 1.5;
/// A detection is paired only when the second-nearest reference is at least this much farther
/// than the nearest [m].
pub const AMBIGUITY_MARGIN_M: f64 = 1.0;
/// A reference object must have been updated (by a sensor or a self-report) this recently [s].
pub const MAX_REFERENCE_AGE_S: f64 = 0.3;
/// The largest gap between the broadcast ticks a reference is interpolated between, and the
/// farthest it is extrapolated [s].
pub const MAX_REFERENCE_GAP_S: f64 = 0.25;
/// Fewest pairs for an estimate.
pub const MIN_PAIRS: usize = 30;
/// Fewest distinct reference tracks for an estimate.
pub const MIN_TRACKS: usize = 4;
/// Smallest RMS spread of the pairs about their centroid [m]: below it the yaw is not observable.
pub const MIN_SPREAD_M: f64 = 3.0;
/// ICP iterations at most.
const MAX_ITERATIONS: usize = 40;
/// Uncertainties are reported as this many standard deviations.
pub const SIGMAS: f64 = 2.0;

/// Why a check could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    /// The log could not be read or replayed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// A requested sensor is not in the log's site.
    #[error("sensor {0:?} is not in the log's site (its sensors: {1})")]
    UnknownSensor(String, String),
    /// The thresholds are unusable.
    #[error("thresholds must be positive and finite (got {0} m, {1} deg)")]
    Thresholds(f64, f64),
}

/// What to check and how.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Fusion tuning and the calibration under test (`sensor_poses`, `calibration_offsets` applied
    /// to the log's declared one).
    pub replay: ReplayConfig,
    /// Sensors to check; empty: every sensor of the site with frames in the log.
    pub sensors: Vec<String>,
    /// Translation drift threshold [m].
    pub threshold_m: f64,
    /// Yaw drift threshold [deg].
    pub threshold_deg: f64,
    /// How the log is read (recover: check what precedes any damage).
    pub mode: ReadMode,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            replay: ReplayConfig { poll_at_truth: false, ..ReplayConfig::default() },
            sensors: Vec::new(),
            threshold_m: 0.2,
            threshold_deg: 0.5,
            mode: ReadMode::Strict,
        }
    }
}

/// The verdict on one sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Estimated, within the thresholds (or not beyond them by more than its uncertainty).
    Ok,
    /// Beyond a threshold by more than the estimate's uncertainty: recalibrate.
    Drift,
    /// Too few or too poorly spread pairs for an estimate.
    Insufficient,
}

/// The estimated error of one sensor's declared calibration (see the module's sign convention).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// East error of the declared position [m].
    pub dx_m: f64,
    /// North error of the declared position [m].
    pub dy_m: f64,
    /// Yaw error of the declared pose, counter-clockwise [deg].
    pub dyaw_deg: f64,
    /// Uncertainty of `dx_m` ([`SIGMAS`] sigma) [m].
    pub dx_uncertainty_m: f64,
    /// Uncertainty of `dy_m` [m].
    pub dy_uncertainty_m: f64,
    /// Uncertainty of `dyaw_deg` [deg].
    pub dyaw_uncertainty_deg: f64,
    /// |(dx, dy)| [m].
    pub offset_m: f64,
    /// Uncertainty of `offset_m` along the estimate's direction [m].
    pub offset_uncertainty_m: f64,
    /// Covariance of (dx [m], dy [m], dyaw [deg]) (units squared).
    pub covariance: [[f64; 3]; 3],
    /// RMS distance of the paired detections from their references after correction [m].
    pub rms_residual_m: f64,
    /// ICP iterations run.
    pub iterations: usize,
}

/// The check of one sensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SensorCheck {
    /// The sensor.
    pub sensor_id: String,
    /// `lidar` or `camera`.
    pub kind: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is what it is, in words.
    pub reason: String,
    /// Frames of the sensor read.
    pub frames: u64,
    /// Detections in them.
    pub detections: u64,
    /// Detection–reference pairs of the final association.
    pub pairs: usize,
    /// Of those, pairs whose reference carried a V2X self-report.
    pub pairs_v2x: usize,
    /// Distinct reference tracks in the pairs.
    pub tracks: usize,
    /// The estimate (absent when there were too few pairs).
    pub estimate: Option<Estimate>,
    /// The declared pose (the log's, with the replay configuration's changes).
    pub declared: PoseConfig,
    /// The declared pose corrected by the estimate.
    pub corrected: Option<PoseConfig>,
}

/// The check of a log.
#[derive(Clone, Debug, Serialize)]
pub struct CalibReport {
    /// The log.
    pub file: String,
    /// Its site.
    pub site_id: String,
    /// Translation threshold [m].
    pub threshold_m: f64,
    /// Yaw threshold [deg].
    pub threshold_deg: f64,
    /// How many sigmas the uncertainties are.
    pub sigmas: f64,
    /// One entry per checked sensor.
    pub sensors: Vec<SensorCheck>,
    /// Recover mode: the damage that ended the log early.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
    /// The declared site with the pose of every drifting sensor corrected, for writing as a
    /// `site.toml`.
    #[serde(skip)]
    pub corrected_site: SiteConfig,
}

impl CalibReport {
    /// Whether any sensor drifts.
    pub fn any_drift(&self) -> bool {
        self.sensors.iter().any(|s| s.verdict == Verdict::Drift)
    }
}

/// A reference object at one broadcast tick.
#[derive(Clone, Debug)]
struct RefObject {
    id: u32,
    /// Ground-contact centre [m].
    xy: Vector2<f64>,
    velocity: Vector2<f64>,
    v2x: bool,
    /// Ground height under it [m], heading [rad] and box: what a camera sees of it.
    ground_z_m: f64,
    yaw_rad: f64,
    size: BoxSize,
}

/// The reference objects at every broadcast tick, in time order.
struct References {
    ticks: Vec<(Timestamp, Vec<RefObject>)>,
}

impl References {
    /// The references at `t`: interpolated between the ticks around it, else extrapolated from
    /// the nearest within [`MAX_REFERENCE_GAP_S`].
    fn at(&self, t: Timestamp) -> Vec<RefObject> {
        let after = self.ticks.partition_point(|(at, _)| *at < t);
        let before = after.checked_sub(1).map(|i| &self.ticks[i]);
        let next = self.ticks.get(after);
        let within = |tick: &Timestamp| (t.as_nanos() - tick.as_nanos()).unsigned_abs() as f64 * 1e-9;
        let extrapolate = |(at, objects): &(Timestamp, Vec<RefObject>)| -> Vec<RefObject> {
            let dt_s = (t.as_nanos() - at.as_nanos()) as f64 * 1e-9;
            objects.iter().map(|o| RefObject { xy: o.xy + o.velocity * dt_s, ..o.clone() }).collect()
        };
        match (before, next) {
            (Some(b), Some(n)) if (n.0.as_nanos() - b.0.as_nanos()) as f64 * 1e-9 <= MAX_REFERENCE_GAP_S => {
                let span = (n.0.as_nanos() - b.0.as_nanos()).max(1) as f64;
                let f = (t.as_nanos() - b.0.as_nanos()) as f64 / span;
                let next_by_id: BTreeMap<u32, &RefObject> = n.1.iter().map(|o| (o.id, o)).collect();
                let mut out: Vec<RefObject> =
                    b.1.iter()
                        .map(|o| match next_by_id.get(&o.id) {
                            Some(m) => RefObject { xy: o.xy + (m.xy - o.xy) * f, ..o.clone() },
                            None => RefObject { xy: o.xy + o.velocity * (f * span * 1e-9), ..o.clone() },
                        })
                        .collect();
                let seen: BTreeSet<u32> = b.1.iter().map(|o| o.id).collect();
                let back_s = (t.as_nanos() - n.0.as_nanos()) as f64 * 1e-9;
                out.extend(
                    n.1.iter()
                        .filter(|o| !seen.contains(&o.id))
                        .map(|o| RefObject { xy: o.xy + o.velocity * back_s, ..o.clone() }),
                );
                out
            }
            (Some(b), _) if within(&b.0) <= MAX_REFERENCE_GAP_S => extrapolate(b),
            (_, Some(n)) if within(&n.0) <= MAX_REFERENCE_GAP_S => extrapolate(n),
            _ => Vec::new(),
        }
    }
}

/// One frame of the sensor under test with the references at its capture time.
struct FrameSample {
    detections: SampleDetections,
    references: Vec<RefObject>,
}

/// What of a frame's detections the check uses.
enum SampleDetections {
    /// Lidar box centres in the sensor frame [m].
    Lidar(Vec<Point3<f64>>),
    /// Camera boxes' bottom-centre pixels (where the object meets the ground) [px].
    Camera(Vec<Point2<f64>>),
}

/// How a sensor's detections and the references compare in the ground plane for a candidate pose.
enum SensorView<'a> {
    /// Detections mapped by the pose; references as they are.
    Lidar,
    /// Detections back-projected to the ground by the camera at the pose; each reference's box
    /// projected by the same camera and its bottom-centre pixel back-projected likewise, so both
    /// name the ground point under the box's bottom edge in the image (not the object's centre,
    /// which a camera does not see).
    Camera { model: &'a CameraModel, max_range_m: f64, ground: &'a GroundModel },
}

/// A frame's detections and references in the ground plane [m] (references with their index
/// into the frame's).
type GroundPoints = (Vec<Vector2<f64>>, Vec<(usize, Vector2<f64>)>);

impl SensorView<'_> {
    /// Ground positions [m] of the frame's detections and of its references (with their indices
    /// into `frame.references`) for the pose `world_from_sensor`; what does not map is left out.
    fn map(&self, world_from_sensor: &Isometry3<f64>, frame: &FrameSample) -> GroundPoints {
        match (self, &frame.detections) {
            (SensorView::Lidar, SampleDetections::Lidar(points)) => (
                points.iter().map(|p| (world_from_sensor * p).coords.xy()).collect(),
                frame.references.iter().enumerate().map(|(j, r)| (j, r.xy)).collect(),
            ),
            (SensorView::Camera { model, max_range_m, ground }, SampleDetections::Camera(pixels)) => {
                let camera = CameraGeometry::new(model.intrinsics.clone(), *world_from_sensor, *max_range_m);
                let detections =
                    pixels.iter().filter_map(|px| camera.ground_point(px, ground)).map(|p| p.coords.xy()).collect();
                let references = frame
                    .references
                    .iter()
                    .enumerate()
                    .filter_map(|(j, r)| {
                        let projected = camera.project_box(&r.xy, r.ground_z_m, r.yaw_rad, &r.size)?;
                        let px = projected.bottom_center_px;
                        if !camera.intrinsics().contains(&px) {
                            return None;
                        }
                        Some((j, camera.ground_point(&px, ground)?.coords.xy()))
                    })
                    .collect();
                (detections, references)
            }
            _ => (Vec::new(), Vec::new()),
        }
    }
}

/// A detection paired with a reference, both relative to the sensor's current position [m].
#[derive(Clone, Copy, Debug)]
struct Pair {
    /// Detection, mapped with the current pose.
    a: Vector2<f64>,
    /// Reference.
    b: Vector2<f64>,
    track: u32,
    v2x: bool,
}

/// Pairs each detection (mapped by `view` with `world_from_sensor`) with its nearest reference
/// within `gate_m`: mutual nearest, and the second-nearest reference at least
/// [`AMBIGUITY_MARGIN_M`] farther.
fn associate(
    view: &SensorView<'_>,
    world_from_sensor: &Isometry3<f64>,
    frames: &[FrameSample],
    gate_m: f64,
) -> Vec<Pair> {
    let c = world_from_sensor.translation.vector.xy();
    let mut pairs = Vec::new();
    for frame in frames {
        let (mapped, references) = view.map(world_from_sensor, frame);
        // For each reference, its nearest detection.
        let nearest_detection: Vec<Option<usize>> = references
            .iter()
            .map(|(_, r)| {
                mapped
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (i, (d - r).norm_squared()))
                    .min_by(|x, y| x.1.total_cmp(&y.1))
                    .map(|(i, _)| i)
            })
            .collect();
        for (i, d) in mapped.iter().enumerate() {
            let mut best: Option<(usize, f64)> = None;
            let mut second = f64::INFINITY;
            for (k, (_, r)) in references.iter().enumerate() {
                let dist = (d - r).norm();
                match best {
                    Some((_, b)) if dist >= b => second = second.min(dist),
                    _ => {
                        if let Some((_, b)) = best {
                            second = second.min(b);
                        }
                        best = Some((k, dist));
                    }
                }
            }
            let Some((k, dist)) = best else { continue };
            if dist <= gate_m && second >= dist + AMBIGUITY_MARGIN_M && nearest_detection[k] == Some(i) {
                let (j, r) = references[k];
                let object = &frame.references[j];
                pairs.push(Pair { a: d - c, b: r - c, track: object.id, v2x: object.v2x });
            }
        }
    }
    pairs
}

/// Huber weights for the pairs' residual lengths, with the threshold at 1.5 times their median.
fn huber_weights(pairs: &[Pair]) -> Vec<f64> {
    let mut lengths: Vec<f64> = pairs.iter().map(|p| (p.b - p.a).norm()).collect();
    let residuals = lengths.clone();
    lengths.sort_by(f64::total_cmp);
    let median = lengths.get(lengths.len() / 2).copied().unwrap_or(0.0);
    let delta = (1.5 * median).max(0.05);
    residuals.iter().map(|r| if *r <= delta { 1.0 } else { delta / r }).collect()
}

/// The weighted 2D rigid motion (rotation θ about the origin, then translation u) that best maps
/// each `a` onto its `b`: (u [m], θ [rad]).
fn procrustes(pairs: &[Pair], weights: &[f64]) -> (Vector2<f64>, f64) {
    let total: f64 = weights.iter().sum();
    let mean = |f: &dyn Fn(&Pair) -> Vector2<f64>| {
        pairs.iter().zip(weights).map(|(p, w)| f(p) * *w).sum::<Vector2<f64>>() / total
    };
    let (a_bar, b_bar) = (mean(&|p| p.a), mean(&|p| p.b));
    let (mut s_cos, mut s_sin) = (0.0, 0.0);
    for (p, w) in pairs.iter().zip(weights) {
        let (a, b) = (p.a - a_bar, p.b - b_bar);
        s_cos += w * a.dot(&b);
        s_sin += w * (a.x * b.y - a.y * b.x);
    }
    let theta = s_sin.atan2(s_cos);
    (b_bar - Rotation2::new(theta) * a_bar, theta)
}

/// Covariance of the correction (u_x [m], u_y [m], θ [rad]) at a converged solution: the larger
/// (by trace) of the sandwich estimate clustered by track and the plain least-squares one.
fn covariance(pairs: &[Pair], weights: &[f64]) -> Option<Matrix3<f64>> {
    let jacobian = |p: &Pair| nalgebra::Matrix2x3::new(1.0, 0.0, -p.a.y, 0.0, 1.0, p.a.x);
    let mut h = Matrix3::zeros();
    let mut by_track: BTreeMap<u32, Vector3<f64>> = BTreeMap::new();
    let mut sum_sq = 0.0;
    for (p, w) in pairs.iter().zip(weights) {
        let j = jacobian(p);
        let e = p.b - p.a;
        h += j.transpose() * j * *w;
        *by_track.entry(p.track).or_insert_with(Vector3::zeros) += j.transpose() * e * *w;
        sum_sq += w * e.norm_squared();
    }
    let h_inv = h.try_inverse()?;
    let clusters = by_track.len() as f64;
    let meat: Matrix3<f64> = by_track.values().map(|g| g * g.transpose()).sum::<Matrix3<f64>>();
    let sandwich = h_inv * meat * h_inv * (clusters / (clusters - 1.0).max(1.0));
    let dof = (2 * pairs.len()).saturating_sub(3).max(1) as f64;
    let plain = h_inv * (sum_sq / dof);
    let cov = if sandwich.trace() >= plain.trace() { sandwich } else { plain };
    cov.iter().all(|v| v.is_finite()).then_some(cov)
}

/// The outcome of the ICP for one sensor.
struct Solution {
    /// The corrected `world_from_sensor`.
    corrected: Isometry3<f64>,
    pairs: Vec<Pair>,
    estimate: Option<Estimate>,
    reason: String,
}

/// Runs the ICP from `declared` and estimates the declared pose's error.
fn solve(view: &SensorView<'_>, declared: &Isometry3<f64>, frames: &[FrameSample]) -> Solution {
    let mut pose = *declared;
    let mut gate_m = INITIAL_GATE_M;
    let mut iterations = 0;
    let insufficient =
        |pairs: Vec<Pair>, why: String| Solution { corrected: *declared, pairs, estimate: None, reason: why };
    loop {
        iterations += 1;
        let pairs = associate(view, &pose, frames, gate_m);
        let tracks = pairs.iter().map(|p| p.track).collect::<BTreeSet<_>>().len();
        if pairs.len() < MIN_PAIRS || tracks < MIN_TRACKS {
            return insufficient(
                pairs,
                format!(
                    "too few pairs with the other sensors' tracks and V2X self-reports (need {MIN_PAIRS} pairs on \
                     {MIN_TRACKS} tracks)"
                ),
            );
        }
        let weights = huber_weights(&pairs);
        let (u, theta) = procrustes(&pairs, &weights);
        let step = CalibrationOffset { translation_m: [u.x, u.y, 0.0], yaw_deg: theta.to_degrees() };
        pose = step.apply(&pose);
        let small = u.norm() < 1e-4 && theta.abs() < 1e-6;
        if (gate_m <= FINAL_GATE_M && small) || iterations >= MAX_ITERATIONS {
            break;
        }
        gate_m = (gate_m * 0.8).max(FINAL_GATE_M);
    }
    // The final association and its statistics, at the converged pose.
    let pairs = associate(view, &pose, frames, FINAL_GATE_M);
    let weights = huber_weights(&pairs);
    let total_w: f64 = weights.iter().sum();
    let centroid = pairs.iter().zip(&weights).map(|(p, w)| p.a * *w).sum::<Vector2<f64>>() / total_w.max(1e-12);
    let spread_m = (pairs.iter().zip(&weights).map(|(p, w)| w * (p.a - centroid).norm_squared()).sum::<f64>()
        / total_w.max(1e-12))
    .sqrt();
    if pairs.len() < MIN_PAIRS || spread_m < MIN_SPREAD_M {
        return insufficient(
            pairs,
            format!(
                "the pairs are too few or too close together (spread {spread_m:.1} m, need {MIN_SPREAD_M} m) for the yaw"
            ),
        );
    }
    let Some(cov) = covariance(&pairs, &weights) else {
        return insufficient(pairs, "the pairs do not determine the pose (singular normal equations)".into());
    };
    // The whole correction about the declared position: the position moved by u, the yaw by θ.
    let u = (pose.translation.vector - declared.translation.vector).xy();
    let theta = (pose.rotation * declared.rotation.inverse()).euler_angles().2;
    // The declared pose's error is the inverse correction (module docs).
    let (dx, dy, dyaw_deg) = (-u.x, -u.y, -theta.to_degrees());
    let deg = 180.0 / std::f64::consts::PI;
    let scale = Matrix3::from_diagonal(&Vector3::new(1.0, 1.0, deg));
    let cov_deg = scale * cov * scale;
    let offset_m = dx.hypot(dy);
    let direction = if offset_m > 1e-9 { Vector2::new(dx, dy) / offset_m } else { Vector2::new(1.0, 0.0) };
    let cov_xy = cov_deg.fixed_view::<2, 2>(0, 0);
    let along_var = if offset_m > 1e-9 {
        (direction.transpose() * cov_xy * direction)[(0, 0)]
    } else {
        cov_xy.symmetric_eigenvalues().max()
    };
    let rms_residual_m = (pairs.iter().map(|p| (p.b - p.a).norm_squared()).sum::<f64>() / pairs.len() as f64).sqrt();
    let estimate = Estimate {
        dx_m: dx,
        dy_m: dy,
        dyaw_deg,
        dx_uncertainty_m: SIGMAS * cov_deg[(0, 0)].max(0.0).sqrt(),
        dy_uncertainty_m: SIGMAS * cov_deg[(1, 1)].max(0.0).sqrt(),
        dyaw_uncertainty_deg: SIGMAS * cov_deg[(2, 2)].max(0.0).sqrt(),
        offset_m,
        offset_uncertainty_m: SIGMAS * along_var.max(0.0).sqrt(),
        covariance: std::array::from_fn(|r| std::array::from_fn(|c| cov_deg[(r, c)])),
        rms_residual_m,
        iterations,
    };
    Solution { corrected: pose, pairs, estimate: Some(estimate), reason: String::new() }
}

/// The verdict on an estimate and why.
fn judge(e: &Estimate, threshold_m: f64, threshold_deg: f64) -> (Verdict, String) {
    let translation = e.offset_m - e.offset_uncertainty_m > threshold_m;
    let yaw = e.dyaw_deg.abs() - e.dyaw_uncertainty_deg > threshold_deg;
    let mut why = Vec::new();
    if translation {
        why.push(format!("offset {:.2} ± {:.2} m exceeds {threshold_m} m", e.offset_m, e.offset_uncertainty_m));
    }
    if yaw {
        why.push(format!("yaw error {:+.2} ± {:.2}° exceeds {threshold_deg}°", e.dyaw_deg, e.dyaw_uncertainty_deg));
    }
    if why.is_empty() {
        (
            Verdict::Ok,
            format!("within {threshold_m} m and {threshold_deg}° (or not beyond by more than the uncertainty)"),
        )
    } else {
        (Verdict::Drift, why.join("; "))
    }
}

/// Checks the calibration of the sensors of the log at `path` (see the module docs).
pub fn check_log(path: &Path, options: &CheckOptions) -> Result<CalibReport, CalibError> {
    let usable = |v: f64| v > 0.0 && v.is_finite();
    if !usable(options.threshold_m) || !usable(options.threshold_deg) {
        return Err(CalibError::Thresholds(options.threshold_m, options.threshold_deg));
    }
    let open = || ReplayReader::open_with(path, OpenOptions { mode: options.mode, ..OpenOptions::default() });
    let reader = open().map_err(PipelineError::from)?;
    let site = site_for(reader.meta(), &options.replay)?;
    let all_ids = || site.sensors.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ");
    if let Some(id) = options.sensors.iter().find(|id| site.sensor(id).is_none()) {
        return Err(CalibError::UnknownSensor(id.clone(), all_ids()));
    }
    drop(reader);
    let mut corrected_site = site.clone();
    let mut checks = Vec::new();
    let mut damage = None;
    for sensor in &site.sensors {
        if !options.sensors.is_empty() && !options.sensors.contains(&sensor.id) {
            continue;
        }
        let declared = PoseConfig::from_isometry(&sensor.world_from_sensor);
        let mut check = SensorCheck {
            sensor_id: sensor.id.clone(),
            kind: match sensor.model {
                SensorModel::Lidar(_) => "lidar".into(),
                SensorModel::Camera(_) => "camera".into(),
            },
            verdict: Verdict::Insufficient,
            reason: String::new(),
            frames: 0,
            detections: 0,
            pairs: 0,
            pairs_v2x: 0,
            tracks: 0,
            estimate: None,
            declared,
            corrected: None,
        };
        // Replay without this sensor, keeping its frames and the others' objects.
        let mut config = options.replay.clone();
        config.poll_at_truth = false;
        config.exclude_sensors.insert(sensor.id.clone());
        let mut frames: Vec<(Timestamp, SampleDetections)> = Vec::new();
        let mut ticks = Vec::new();
        let summary = replay_with(
            open().map_err(PipelineError::from)?,
            &config,
            |_, at, _: &[FusedObject]| at,
            |event| -> Result<(), std::convert::Infallible> {
                match event {
                    ReplayEvent::Input { message, .. } => {
                        if let ReplayBody::Sensor(frame) = &message.body
                            && frame.sensor_id == sensor.id
                        {
                            check.frames += 1;
                            check.detections += frame.detections.len() as u64;
                            let detections = match &frame.detections {
                                Detections::Lidar(boxes) => {
                                    SampleDetections::Lidar(boxes.iter().map(|b| b.center_in_sensor).collect())
                                }
                                Detections::Camera(c) => {
                                    SampleDetections::Camera(c.boxes.iter().map(|b| b.bottom_center_px()).collect())
                                }
                            };
                            frames.push((frame.capture_time, detections));
                        }
                    }
                    ReplayEvent::Broadcast { frame: at, objects } => {
                        let fresh = objects
                            .iter()
                            .filter(|o| (at.as_nanos() - o.last_update.as_nanos()) as f64 * 1e-9 <= MAX_REFERENCE_AGE_S)
                            .map(|o| RefObject {
                                id: o.id,
                                xy: o.position_m.coords.xy(),
                                velocity: o.velocity_mps,
                                v2x: o.v2x_id.is_some(),
                                ground_z_m: o.position_m.z,
                                yaw_rad: o.yaw_rad,
                                size: o.size,
                            })
                            .collect();
                        ticks.push((*at, fresh));
                    }
                    ReplayEvent::Truth { .. } => {}
                }
                Ok(())
            },
        )?;
        damage = damage.or(summary.damage);
        if check.frames == 0 {
            check.reason = "no frames of this sensor in the log".into();
            checks.push(check);
            continue;
        }
        let references = References { ticks };
        let samples: Vec<FrameSample> = frames
            .into_iter()
            .map(|(t, detections)| FrameSample { detections, references: references.at(t) })
            .collect();
        let view = match &sensor.model {
            SensorModel::Lidar(_) => SensorView::Lidar,
            SensorModel::Camera(model) => {
                SensorView::Camera { model, max_range_m: sensor.max_range_m, ground: &site.ground }
            }
        };
        let solution = solve(&view, &sensor.world_from_sensor, &samples);
        check.pairs = solution.pairs.len();
        check.pairs_v2x = solution.pairs.iter().filter(|p| p.v2x).count();
        check.tracks = solution.pairs.iter().map(|p| p.track).collect::<BTreeSet<_>>().len();
        match &solution.estimate {
            Some(e) => {
                let (verdict, reason) = judge(e, options.threshold_m, options.threshold_deg);
                check.verdict = verdict;
                check.reason = reason;
                check.corrected = Some(PoseConfig::from_isometry(&solution.corrected));
                if verdict == Verdict::Drift
                    && let Some(s) = corrected_site.sensors.iter_mut().find(|s| s.id == sensor.id)
                {
                    s.world_from_sensor = solution.corrected;
                }
            }
            None => check.reason = solution.reason,
        }
        check.estimate = solution.estimate;
        checks.push(check);
    }
    Ok(CalibReport {
        file: path.display().to_string(),
        site_id: site.site_id.clone(),
        threshold_m: options.threshold_m,
        threshold_deg: options.threshold_deg,
        sigmas: SIGMAS,
        sensors: checks,
        damage,
        corrected_site,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Translation3, UnitQuaternion};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A lidar 6 m up at (-9.5, -9.5) looking west, pitched down a little.
    fn true_pose() -> Isometry3<f64> {
        Isometry3::from_parts(
            Translation3::new(-9.5, -9.5, 6.0),
            UnitQuaternion::from_euler_angles(0.0, 5f64.to_radians(), 180f64.to_radians()),
        )
    }

    /// Frames of objects scattered around the sensor, each seen by the true sensor with noise
    /// (detections in its frame) and known to the reference exactly.
    fn frames(rng: &mut ChaCha8Rng) -> Vec<FrameSample> {
        let truth = true_pose();
        (0..40)
            .map(|f| {
                let references: Vec<RefObject> = (0..12)
                    .map(|i| RefObject {
                        id: i,
                        xy: Vector2::new(
                            -9.5 - 5.0 - 4.0 * f64::from(i) - 0.3 * f64::from(f),
                            -9.5 + 7.0 * f64::from(i % 4) - 10.0,
                        ),
                        velocity: Vector2::zeros(),
                        v2x: i == 0,
                        ground_z_m: 0.0,
                        yaw_rad: 0.0,
                        size: BoxSize { length_m: 4.5, width_m: 1.8, height_m: 1.5 },
                    })
                    .collect();
                let detections = references
                    .iter()
                    .map(|r| {
                        let noise = Vector3::new(rng.random_range(-0.1..0.1), rng.random_range(-0.1..0.1), 0.0);
                        truth.inverse_transform_point(&Point3::new(r.xy.x, r.xy.y, 0.8)) + noise
                    })
                    .collect();
                FrameSample { detections: SampleDetections::Lidar(detections), references }
            })
            .collect()
    }

    #[test]
    fn an_offset_declared_pose_gives_the_offset_back_with_its_sign() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let samples = frames(&mut rng);
        for (dx, dy, dyaw) in [(0.5, 0.4, 1.5), (-0.8, 0.3, -2.0), (0.0, 0.0, 0.0), (1.2, -1.0, 0.7)] {
            let offset = CalibrationOffset { translation_m: [dx, dy, 0.0], yaw_deg: dyaw };
            let declared = offset.apply(&true_pose());
            let solution = solve(&SensorView::Lidar, &declared, &samples);
            let e = solution.estimate.expect("an estimate");
            assert!((e.dx_m - dx).abs() < 0.03 && (e.dy_m - dy).abs() < 0.03, "{dx} {dy}: {e:?}");
            assert!((e.dyaw_deg - dyaw).abs() < 0.05, "{dyaw}: {e:?}");
            // The uncertainty covers the error, and is small for 480 clean pairs.
            assert!(e.dx_uncertainty_m < 0.05 && e.dyaw_uncertainty_deg < 0.1, "{e:?}");
            // The corrected pose is the true one; roll and pitch are kept.
            let back = solution.corrected;
            assert!((back.translation.vector - true_pose().translation.vector).norm() < 0.03, "{back:?}");
            assert!(back.rotation.angle_to(&true_pose().rotation).to_degrees() < 0.05);
            // Undoing the estimated offset is the correction.
            let undo = CalibrationOffset { translation_m: [e.dx_m, e.dy_m, 0.0], yaw_deg: e.dyaw_deg }.inverse();
            assert!((undo.apply(&declared).translation.vector - back.translation.vector).norm() < 1e-9);
        }
    }

    #[test]
    fn offsets_apply_about_the_sensor_and_invert() {
        let offset = CalibrationOffset { translation_m: [0.5, -0.2, 0.1], yaw_deg: 90.0 };
        let pose = true_pose();
        let moved = offset.apply(&pose);
        // The position moves by the translation only: the turn is about the sensor itself.
        let shift = moved.translation.vector - pose.translation.vector;
        assert!((shift - Vector3::new(0.5, -0.2, 0.1)).norm() < 1e-12);
        // The yaw turns counter-clockwise: what was ahead (west) is now south.
        let ahead = moved.rotation * Vector3::new(1.0, 0.0, 0.0);
        assert!(ahead.y < -0.99, "{ahead:?}");
        let back = offset.inverse().apply(&moved);
        assert!((back.to_homogeneous() - pose.to_homogeneous()).norm() < 1e-12);
    }

    #[test]
    fn too_few_or_clustered_pairs_give_no_estimate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let few: Vec<FrameSample> = frames(&mut rng).into_iter().take(2).collect();
        assert!(solve(&SensorView::Lidar, &true_pose(), &few).estimate.is_none());
        // Every object at one spot: the yaw is not observable.
        let mut one_spot = frames(&mut rng);
        for f in &mut one_spot {
            f.references.truncate(1);
            if let SampleDetections::Lidar(d) = &mut f.detections {
                d.truncate(1);
            }
        }
        let solution = solve(&SensorView::Lidar, &true_pose(), &one_spot);
        assert!(solution.estimate.is_none(), "{}", solution.reason);
    }

    #[test]
    fn references_interpolate_between_ticks_and_extrapolate_at_the_ends() {
        let object = |id, x: f64| RefObject {
            id,
            xy: Vector2::new(x, 0.0),
            velocity: Vector2::new(10.0, 0.0),
            v2x: false,
            ground_z_m: 0.0,
            yaw_rad: 0.0,
            size: BoxSize { length_m: 1.0, width_m: 1.0, height_m: 1.0 },
        };
        let t = |ms: i64| Timestamp::from_nanos(ms * 1_000_000);
        let refs =
            References { ticks: vec![(t(0), vec![object(1, 0.0), object(2, 5.0)]), (t(100), vec![object(1, 2.0)])] };
        let at = refs.at(t(25));
        assert_eq!(at.len(), 2);
        assert!((at[0].xy.x - 0.5).abs() < 1e-12, "interpolated between the ticks: {:?}", at[0]);
        assert!((at[1].xy.x - 5.25).abs() < 1e-12, "extrapolated by its velocity: {:?}", at[1]);
        assert!((refs.at(t(150))[0].xy.x - 2.5).abs() < 1e-12, "after the last tick");
        assert!(refs.at(t(1000)).is_empty(), "too far from any tick");
    }
}
