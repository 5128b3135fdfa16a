//! What the engine gives out: fused objects predicted to a poll time, their kinematics alone (for
//! scoring), sensor health and the broadcast roadside frame. Kept apart from fusing: reading the
//! tracks predicts copies of them and never changes their state (beyond fusing what is due).

use nalgebra::{Matrix2, Point3, Vector2};
use serde::{Deserialize, Serialize};

use crate::broadcast::{MAX_PARTICIPANTS, Participant, PathPoint, RoadsideFrame, SensorHealth};
use crate::calibration::SensorMask;
use crate::class::{BoxSize, ObjectClass, SourceSet};
use crate::motion::{Matrix5, Vector5, wrap_angle};
use crate::time::Timestamp;
use crate::track::{PathHistory, Track, TrackStatus};

use super::{Fusion, SensorKind};

/// Chi-square quantile for 2 dof at 95% (for the confidence ellipse).
const CHI2_2DOF_95: f64 = 5.991;

/// 95% horizontal position confidence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceEllipse {
    /// Semi-major axis [m].
    pub semi_major_m: f64,
    /// Semi-minor axis [m].
    pub semi_minor_m: f64,
    /// Orientation of the semi-major axis, counter-clockwise from east [rad].
    pub orientation_rad: f64,
}

impl ConfidenceEllipse {
    /// The 95% ellipse of a 2×2 position covariance [m²], in closed form: the eigen decomposition
    /// of nalgebra's `symmetric_eigen` for 2×2 matrices (scaling by the largest entry, the
    /// eigenvalues `(a + c)/2 ± √(((a - c)/2)² + b²)` and its Givens rotation, so the major axis
    /// points the same way), without its generic tridiagonalisation.
    fn of_position_cov(cov: &Matrix2<f64>) -> Self {
        let (a, b, c) = (cov[(0, 0)], cov[(1, 0)], cov[(1, 1)]);
        let scale = a.abs().max(b.abs()).max(c.abs()).max(cov[(0, 1)].abs());
        let unscale = |v: f64| if scale == 0.0 { v } else { v / scale };
        let (a, b, c) = (unscale(a), unscale(b), unscale(c));
        // The tridiagonal form has the off-diagonal |b|, and its basis flips the second axis by
        // the sign of b.
        let (off, flip) = (b.abs(), if b < 0.0 { -1.0 } else { 1.0 });
        let (eig, axis) = if off <= f64::EPSILON * (c.abs() + a.abs()) {
            // Already diagonal: the axes are the site axes.
            let axis = if a >= c { (1.0, 0.0) } else { (0.0, flip) };
            ((a.max(c), a.min(c)), axis)
        } else {
            let half_diff = (a - c) * 0.5;
            let root = (off * off + half_diff * half_diff).sqrt();
            let half_trace = (a + c) * 0.5;
            let (major, minor) = (half_trace + root, half_trace - root);
            // The basis least likely to cancel, as a Givens rotation (cos ≥ 0).
            let (bx, by) = if (major - c).abs() > (major - a).abs() { (major - c, off) } else { (off, major - a) };
            // The orientation needs the axis's direction only, not its unit length (atan2 is
            // scale-free); (bx, by) is scaled to at most about 2, so the squares are safe.
            let axis = if bx * bx + by * by > f64::EPSILON * f64::EPSILON {
                (bx.abs(), flip * by * bx.signum())
            } else {
                (1.0, 0.0)
            };
            ((major, minor), axis)
        };
        let axis_m = |lambda: f64| (CHI2_2DOF_95 * (lambda * if scale == 0.0 { 1.0 } else { scale }).max(0.0)).sqrt();
        ConfidenceEllipse {
            semi_major_m: axis_m(eig.0),
            semi_minor_m: axis_m(eig.1),
            orientation_rad: wrap_angle(axis.1.atan2(axis.0)),
        }
    }
}

/// A fused object, predicted to the poll time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusedObject {
    /// Stable unique track id.
    pub id: u32,
    /// Lifecycle status (only confirmed and coasting objects are reported).
    pub status: TrackStatus,
    /// Fused class.
    pub class: ObjectClass,
    /// Posterior probability of `class`, 0..1.
    pub class_confidence: f64,
    /// Confidence that the object exists, 0..1: lower for camera-only objects, decaying while
    /// coasting.
    pub existence_confidence: f64,
    /// Time the state is predicted to.
    pub time: Timestamp,
    /// Ground-contact centre in the site frame [m].
    pub position_m: Point3<f64>,
    /// Velocity over ground (east, north) [m/s].
    pub velocity_mps: Vector2<f64>,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Smoothed longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// State `[x m, y m, yaw rad, speed m/s, yaw_rate rad/s]` (whatever the motion model).
    pub state: Vector5,
    /// Covariance of `state` (units squared of the entries).
    pub covariance: Matrix5,
    /// 95% horizontal position confidence ellipse.
    pub confidence_95: ConfidenceEllipse,
    /// Radius of the 95% horizontal confidence circle (the ellipse's semi-major axis) [m].
    pub pos_confidence_95_m: f64,
    /// Smoothed box size [m].
    pub size: BoxSize,
    /// Source kinds that updated the object within `sources_window_s`.
    pub sources: SourceSet,
    /// Time since the track was spawned [s].
    pub age_s: f64,
    /// V2X id when the object is a connected vehicle reporting itself.
    pub v2x_id: Option<String>,
    /// The sensors that updated the object within `seen_window_s`, as indices into the site's
    /// sensors ([`SiteConfig::sensor_ids`](crate::SiteConfig::sensor_ids) gives their ids).
    pub seen_by: SensorMask,
    /// Capture time of the newest measurement fused into the object.
    pub last_update: Timestamp,
    /// Past positions (capture time, site-frame position), oldest first; shared with the track.
    /// [`FusedObject::path_history`] gives them relative to this object.
    pub path: PathHistory,
}

/// The kinematic part of a [`FusedObject`]: what scoring a track against ground truth needs.
/// [`Fusion::poll_kinematics`] computes it with the same arithmetic as [`Fusion::poll_objects`]
/// (so its fields equal those of the full objects polled at the same time, bit for bit) without
/// predicting covariances or building the rest of the object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectKinematics {
    /// Track id.
    pub id: u32,
    /// Most likely class.
    pub class: ObjectClass,
    /// Poll time.
    pub time: Timestamp,
    /// Centre of the box's ground footprint (z = ground height), site frame [m].
    pub position_m: Point3<f64>,
    /// Ground velocity, site frame [m/s].
    pub velocity_mps: Vector2<f64>,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading [rad].
    pub yaw_rad: f64,
    /// Capture time of the newest measurement fused into the object.
    pub last_update: Timestamp,
    /// The V2X id of a connected vehicle, while its reports are fresh.
    pub v2x_id: Option<String>,
}

impl From<&FusedObject> for ObjectKinematics {
    fn from(o: &FusedObject) -> Self {
        ObjectKinematics {
            id: o.id,
            class: o.class,
            time: o.time,
            position_m: o.position_m,
            velocity_mps: o.velocity_mps,
            speed_mps: o.speed_mps,
            yaw_rad: o.yaw_rad,
            last_update: o.last_update,
            v2x_id: o.v2x_id.clone(),
        }
    }
}

impl FusedObject {
    /// Past positions, newest first, relative to `position_m` and `time`.
    pub fn path_history(&self) -> impl Iterator<Item = PathPoint> + '_ {
        self.path.relative_to(self.time, [self.position_m.x, self.position_m.y])
    }

    /// The broadcast form of this object.
    pub fn to_participant(&self) -> Participant {
        Participant {
            id: self.id,
            class: self.class,
            class_confidence: self.class_confidence,
            sources: self.sources,
            position_m: self.position_m,
            pos_confidence_95_m: self.pos_confidence_95_m,
            speed_mps: self.speed_mps,
            yaw_rad: self.yaw_rad,
            yaw_rate_rps: self.yaw_rate_rps,
            accel_mps2: self.accel_mps2,
            size: self.size,
            age_s: self.age_s,
            v2x_id: self.v2x_id.clone(),
            path_history: self.path_history().collect(),
        }
    }
}

impl Fusion {
    /// Confirmed objects predicted to `at` (fusing first whatever is due by `at`), sorted by id.
    pub fn poll_objects(&mut self, at: Timestamp) -> Vec<FusedObject> {
        self.note_now(at);
        self.settle(at);
        // Sized up front: a `filter` gives no length hint, and growing a vector of objects this
        // large copies them over and over.
        let mut objects = Vec::with_capacity(self.tracks.iter().filter(|t| t.confirmed).count());
        objects.extend(self.tracks.iter().filter(|t| t.confirmed).map(|t| self.fused_object(t, at)));
        objects
    }

    /// The kinematics of the objects [`Fusion::poll_objects`] would return at `at` (fusing first
    /// whatever is due by `at`), sorted by id: the same values, for a fraction of the work.
    pub fn poll_kinematics(&mut self, at: Timestamp) -> Vec<ObjectKinematics> {
        self.note_now(at);
        self.settle(at);
        let v2x_timeout_s = self.config.v2x_timeout_s;
        let mut objects = Vec::with_capacity(self.tracks.iter().filter(|t| t.confirmed).count());
        objects.extend(self.tracks.iter().filter(|t| t.confirmed).map(|track| {
            let k = track.motion.kinematics_after(at.secs_since(track.time), track.yaw_hint_rad);
            ObjectKinematics {
                id: track.id,
                class: track.class_evidence.best().0,
                time: at,
                position_m: Point3::new(k.position_m.x, k.position_m.y, track.z_ground_m),
                velocity_mps: k.velocity_mps,
                speed_mps: k.velocity_mps.norm(),
                yaw_rad: k.yaw_rad,
                last_update: track.last_update,
                v2x_id: track
                    .v2x
                    .as_ref()
                    .filter(|l| at.secs_since(l.last_report) <= v2x_timeout_s)
                    .map(|l| l.vehicle_id.clone()),
            }
        }));
        objects
    }

    /// Health of every configured sensor at `now`, sorted by sensor id.
    pub fn sensor_health(&self, now: Timestamp) -> Vec<SensorHealth> {
        (0..self.sensors.len())
            .map(|i| SensorHealth {
                sensor_id: self.sensors[i].calib.id.clone(),
                status: self.sensor_status(i, now),
                last_capture: self.sensors[i].last_capture,
            })
            .collect()
    }

    /// The broadcast frame at `at`: objects predicted to `at`, sensor health and the ground
    /// regions covered by sensors that are not silent. Counts `message_count` up.
    pub fn roadside_frame(&mut self, at: Timestamp) -> RoadsideFrame {
        let objects = self.poll_objects(at);
        self.roadside_frame_from(at, &objects)
    }

    /// The broadcast frame at `at` for objects already polled at `at` (sorted by id, as
    /// [`Fusion::poll_objects`] returns them). A frame carries at most [`MAX_PARTICIPANTS`]: the
    /// oldest tracks (lowest ids), so participant `i` is object `i`; those left out are counted
    /// ([`FusionStats::participants_left_out`](super::FusionStats)).
    pub fn roadside_frame_from(&mut self, at: Timestamp, objects: &[FusedObject]) -> RoadsideFrame {
        let message_count = self.message_count;
        self.message_count = self.message_count.wrapping_add(1);
        self.stats.participants_left_out += objects.len().saturating_sub(MAX_PARTICIPANTS) as u64;
        let sensors = self.sensor_health(at);
        let perception_regions = sensors
            .iter()
            .zip(&self.sensors)
            .filter(|(h, _)| h.status.is_live())
            .map(|(_, s)| s.region.clone())
            .collect();
        let newest_capture = sensors.iter().filter_map(|s| s.last_capture).max();
        RoadsideFrame {
            rsu_id: if self.config.rsu_id.is_empty() { self.site.site_id.clone() } else { self.config.rsu_id.clone() },
            message_count,
            time: at,
            reference: self.site.origin,
            participants: objects.iter().take(MAX_PARTICIPANTS).map(FusedObject::to_participant).collect(),
            sensors,
            perception_regions,
            newest_capture,
        }
    }

    fn fused_object(&self, track: &Track, at: Timestamp) -> FusedObject {
        let cfg = &self.config;
        let mut motion = track.motion.clone();
        motion.predict(at.secs_since(track.time), &self.noise);
        let (state, covariance) = motion.as_ctrv(track.yaw_hint_rad, cfg.init_yaw_rate_sigma_rps);
        let confidence_95 = ConfidenceEllipse::of_position_cov(&motion.position_cov());
        let semi_major_m = confidence_95.semi_major_m;
        let mut sources = SourceSet::NONE;
        let mut seen_by = SensorMask::NONE;
        for &(si, ts) in &track.seen {
            let age_s = at.secs_since(ts);
            let sensor = &self.sensors[si];
            if age_s <= cfg.sources_window_s {
                sources |= match sensor.kind {
                    SensorKind::Lidar(_) => SourceSet::LIDAR,
                    SensorKind::Camera { .. } => SourceSet::CAMERA,
                };
            }
            if age_s <= cfg.seen_window_s {
                seen_by = seen_by.with(si);
            }
        }
        let v2x_fresh = track.v2x.as_ref().filter(|l| at.secs_since(l.last_report) <= cfg.v2x_timeout_s);
        if v2x_fresh.is_some() {
            sources |= SourceSet::V2X;
        }
        if sources.is_empty() {
            sources = track.sources_ever;
        }
        let (class, class_confidence) = track.class_evidence.best();
        let camera_only =
            !track.sources_ever.contains(SourceSet::LIDAR) && !track.sources_ever.contains(SourceSet::V2X);
        let base = if camera_only { cfg.camera_only_confidence } else { 1.0 };
        let idle_s = at.secs_since(track.last_update).max(0.0);
        let existence_confidence = base * (1.0 - idle_s / cfg.delete_after_s).clamp(0.0, 1.0);
        let pos = motion.position();
        let velocity_mps = motion.velocity();
        FusedObject {
            id: track.id,
            status: track.status(at, cfg.coast_after_s),
            class,
            class_confidence,
            existence_confidence,
            time: at,
            position_m: Point3::new(pos.x, pos.y, track.z_ground_m),
            velocity_mps,
            speed_mps: velocity_mps.norm(),
            yaw_rad: state[2],
            yaw_rate_rps: state[4],
            accel_mps2: track.accel_mps2,
            state,
            covariance,
            confidence_95,
            pos_confidence_95_m: semi_major_m,
            size: track.size,
            sources,
            age_s: at.secs_since(track.created).max(0.0),
            v2x_id: v2x_fresh.map(|l| l.vehicle_id.clone()),
            seen_by,
            last_update: track.last_update,
            path: track.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ellipse through nalgebra's generic symmetric eigen decomposition (the reference).
    fn ellipse_by_nalgebra(cov: &Matrix2<f64>) -> ConfidenceEllipse {
        let eig = cov.symmetric_eigen();
        let (i_max, i_min) = if eig.eigenvalues[0] >= eig.eigenvalues[1] { (0, 1) } else { (1, 0) };
        let axis = eig.eigenvectors.column(i_max);
        ConfidenceEllipse {
            semi_major_m: (CHI2_2DOF_95 * eig.eigenvalues[i_max].max(0.0)).sqrt(),
            semi_minor_m: (CHI2_2DOF_95 * eig.eigenvalues[i_min].max(0.0)).sqrt(),
            orientation_rad: wrap_angle(axis[1].atan2(axis[0])),
        }
    }

    #[test]
    fn closed_form_ellipse_agrees_with_nalgebra() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut cases = vec![
            Matrix2::zeros(),
            Matrix2::new(1.0, 0.0, 0.0, 1.0),
            Matrix2::new(2.0, 0.0, 0.0, 1.0),
            Matrix2::new(1.0, 0.0, 0.0, 2.0),
            Matrix2::new(1.0, 0.5, 0.5, 1.0),
            Matrix2::new(1.0, -0.5, -0.5, 1.0),
            Matrix2::new(1.0, 1e-300, 1e-300, 2.0),
            Matrix2::new(3.0, -1e-17, -1e-17, 1.0),
        ];
        for k in 0..50_000 {
            let scale = 10f64.powi(rng.random_range(-6..4));
            let (x, y, z) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            let mut m = Matrix2::new(x, y, z, rng.random_range(-1.0..1.0));
            m = m * m.transpose() * scale;
            match k % 5 {
                0 => m[(1, 1)] = m[(0, 0)],
                1 => {
                    m[(0, 1)] = 0.0;
                    m[(1, 0)] = 0.0;
                }
                _ => {}
            }
            cases.push(m);
        }
        for m in cases {
            let (ours, reference) = (ConfidenceEllipse::of_position_cov(&m), ellipse_by_nalgebra(&m));
            let tol = 1e-9 * reference.semi_major_m.max(1e-300);
            assert!((ours.semi_major_m - reference.semi_major_m).abs() <= tol, "{m} {ours:?} {reference:?}");
            assert!((ours.semi_minor_m - reference.semi_minor_m).abs() <= tol, "{m} {ours:?} {reference:?}");
            // Orientation matters only for an elongated ellipse; the same branch, not its opposite.
            if reference.semi_major_m - reference.semi_minor_m > 1e-6 * reference.semi_major_m {
                let d = wrap_angle(ours.orientation_rad - reference.orientation_rad);
                assert!(d.abs() < 1e-6, "{m} {ours:?} {reference:?}");
            }
        }
    }
}
