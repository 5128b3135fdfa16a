//! Motion models and their extended Kalman filters, kept apart from the track lifecycle:
//! CTRV (constant turn rate and velocity) for vehicles, CV (constant velocity) for pedestrians and
//! a static model for cones and obstacles. All share the first two state entries (x, y) [m] in
//! the site frame, so position-like measurements work with any model.
//!
//! - this file: the state of each model, its accessors and the conversions between models;
//! - `predict`: the models' predictions (mean, Jacobian propagation, process noise);
//! - `update`: the EKF measurement updates;
//! - `guard`: the covariance guard that keeps every covariance symmetric positive definite;
//! - `gate`: Mahalanobis distances for gating.

use nalgebra::{Matrix2, SMatrix, SVector, Vector2};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

use crate::class::MotionFamily;

mod gate;
mod guard;
mod predict;
mod update;

pub use gate::innovation_distance;
pub use guard::Guard;
pub use predict::Kinematics;

use guard::{all_finite, repair_covariance};

#[cfg(test)]
mod tests;

/// 5-vector `[x m, y m, yaw rad, speed m/s, yaw_rate rad/s]`.
pub type Vector5 = SVector<f64, 5>;

/// 5×5 matrix over `[x, y, yaw, speed, yaw_rate]`.
pub type Matrix5 = SMatrix<f64, 5, 5>;

/// Process noise of the three models.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessNoise {
    /// CTRV longitudinal acceleration, 1 sigma [m/s²].
    pub vehicle_accel_sigma_mps2: f64,
    /// CTRV yaw acceleration, 1 sigma [rad/s²].
    pub vehicle_yaw_accel_sigma_rps2: f64,
    /// CV acceleration per axis, 1 sigma [m/s²].
    pub pedestrian_accel_sigma_mps2: f64,
    /// Static position random walk [m/√s].
    pub static_position_walk_mps: f64,
}

/// Fastest speed a track may hold [m/s].
pub const MAX_SPEED_MPS: f64 = 70.0;

/// Fastest yaw rate a track may hold [rad/s].
pub const MAX_YAW_RATE_RPS: f64 = 1.5;

/// The state and covariance of one track under its motion model.
#[derive(Clone, Debug, PartialEq)]
pub enum MotionState {
    /// CTRV: `[x m, y m, yaw rad, speed m/s, yaw_rate rad/s]`.
    Ctrv {
        /// State.
        x: Vector5,
        /// Covariance.
        p: Matrix5,
    },
    /// CV: `[x m, y m, vx m/s, vy m/s]`.
    Cv {
        /// State.
        x: SVector<f64, 4>,
        /// Covariance.
        p: SMatrix<f64, 4, 4>,
    },
    /// Static: `[x m, y m]`.
    Static {
        /// State.
        x: Vector2<f64>,
        /// Covariance.
        p: Matrix2<f64>,
    },
}

/// Wraps an angle into (-pi, pi] [rad].
pub fn wrap_angle(a: f64) -> f64 {
    if a > -PI && a <= PI {
        // Already in range (most calls): no remainder to take.
        return a;
    }
    if !a.is_finite() {
        return 0.0;
    }
    let mut r = a.rem_euclid(2.0 * PI);
    if r > PI {
        r -= 2.0 * PI;
    }
    r
}

/// The branch of an angle ambiguous by pi (`measured + k·pi`) nearest to `reference` [rad].
pub fn nearest_branch(measured: f64, reference: f64) -> f64 {
    let d = wrap_angle(measured - reference);
    let d = if d > PI / 2.0 {
        d - PI
    } else if d < -PI / 2.0 {
        d + PI
    } else {
        d
    };
    wrap_angle(reference + d)
}

/// Below this speed a constant-velocity track's velocity gives no heading [m/s].
const CV_HEADING_MIN_SPEED_MPS: f64 = 0.3;

/// The heading of a constant-velocity track moving at (`vx`, `vy`) [m/s] with speed `speed_mps`
/// (their norm) [rad]: the velocity's direction, or the wrapped `yaw_hint_rad` when too slow.
fn cv_heading_rad(vx: f64, vy: f64, speed_mps: f64, yaw_hint_rad: f64) -> f64 {
    if speed_mps > CV_HEADING_MIN_SPEED_MPS { vy.atan2(vx) } else { wrap_angle(yaw_hint_rad) }
}

impl MotionState {
    /// A new state for `family` at `position` [m] with covariance `position_cov` [m²], heading
    /// `yaw_rad` (vehicles) and speed/yaw-rate priors (1 sigma).
    pub fn new(
        family: MotionFamily,
        position: Vector2<f64>,
        position_cov: Matrix2<f64>,
        yaw_rad: f64,
        speed_sigma_mps: f64,
        yaw_rate_sigma_rps: f64,
    ) -> Self {
        match family {
            MotionFamily::Vehicle => {
                let x = Vector5::new(position.x, position.y, wrap_angle(yaw_rad), 0.0, 0.0);
                let mut p = Matrix5::zeros();
                p.fixed_view_mut::<2, 2>(0, 0).copy_from(&position_cov);
                p[(2, 2)] = 0.3f64.powi(2);
                p[(3, 3)] = speed_sigma_mps.powi(2);
                p[(4, 4)] = yaw_rate_sigma_rps.powi(2);
                MotionState::Ctrv { x, p: repair_covariance(p) }
            }
            MotionFamily::Pedestrian => {
                let x = SVector::<f64, 4>::new(position.x, position.y, 0.0, 0.0);
                let mut p = SMatrix::<f64, 4, 4>::zeros();
                p.fixed_view_mut::<2, 2>(0, 0).copy_from(&position_cov);
                p[(2, 2)] = speed_sigma_mps.powi(2);
                p[(3, 3)] = speed_sigma_mps.powi(2);
                MotionState::Cv { x, p: repair_covariance(p) }
            }
            MotionFamily::Static => MotionState::Static { x: position, p: repair_covariance(position_cov) },
        }
    }

    /// The model family.
    pub fn family(&self) -> MotionFamily {
        match self {
            MotionState::Ctrv { .. } => MotionFamily::Vehicle,
            MotionState::Cv { .. } => MotionFamily::Pedestrian,
            MotionState::Static { .. } => MotionFamily::Static,
        }
    }

    /// Position (x, y) [m].
    pub fn position(&self) -> Vector2<f64> {
        match self {
            MotionState::Ctrv { x, .. } => Vector2::new(x[0], x[1]),
            MotionState::Cv { x, .. } => Vector2::new(x[0], x[1]),
            MotionState::Static { x, .. } => *x,
        }
    }

    /// Position covariance [m²].
    pub fn position_cov(&self) -> Matrix2<f64> {
        match self {
            MotionState::Ctrv { p, .. } => p.fixed_view::<2, 2>(0, 0).into_owned(),
            MotionState::Cv { p, .. } => p.fixed_view::<2, 2>(0, 0).into_owned(),
            MotionState::Static { p, .. } => *p,
        }
    }

    /// Velocity (vx, vy) [m/s].
    pub fn velocity(&self) -> Vector2<f64> {
        match self {
            MotionState::Ctrv { x, .. } => Vector2::new(x[3] * x[2].cos(), x[3] * x[2].sin()),
            MotionState::Cv { x, .. } => Vector2::new(x[2], x[3]),
            MotionState::Static { .. } => Vector2::zeros(),
        }
    }

    /// Speed over ground [m/s]: the norm of [`MotionState::velocity`], without its sine and
    /// cosine for CTRV (|speed|).
    pub fn speed(&self) -> f64 {
        match self {
            MotionState::Ctrv { x, .. } => x[3].abs(),
            MotionState::Cv { x, .. } => Vector2::new(x[2], x[3]).norm(),
            MotionState::Static { .. } => 0.0,
        }
    }

    /// Heading [rad]: the model's yaw (CTRV), the velocity direction (CV, when moving) or
    /// `fallback_rad`.
    pub fn yaw(&self, fallback_rad: f64) -> f64 {
        match self {
            MotionState::Ctrv { x, .. } => x[2],
            MotionState::Cv { x, .. } if x[2].hypot(x[3]) > CV_HEADING_MIN_SPEED_MPS => x[3].atan2(x[2]),
            _ => fallback_rad,
        }
    }

    /// Yaw rate [rad/s] (zero outside CTRV).
    pub fn yaw_rate(&self) -> f64 {
        match self {
            MotionState::Ctrv { x, .. } => x[4],
            _ => 0.0,
        }
    }

    /// The same motion under another model family (state and covariance carried over by the
    /// Jacobian of the change of variables). `yaw_hint_rad` is used when the old model has no
    /// heading; the priors (1 sigma) fill what the old model does not know.
    pub fn converted(
        &self,
        family: MotionFamily,
        yaw_hint_rad: f64,
        speed_sigma_mps: f64,
        yaw_rate_sigma_rps: f64,
    ) -> Self {
        if self.family() == family {
            return self.clone();
        }
        let (x5, p5) = self.as_ctrv(yaw_hint_rad, yaw_rate_sigma_rps);
        match family {
            MotionFamily::Vehicle => {
                let mut p = p5;
                if matches!(self, MotionState::Static { .. }) {
                    p[(3, 3)] = speed_sigma_mps.powi(2);
                }
                MotionState::Ctrv { x: x5, p: repair_covariance(p) }
            }
            MotionFamily::Pedestrian => {
                let (s, c) = x5[2].sin_cos();
                let v = x5[3];
                let x = SVector::<f64, 4>::new(x5[0], x5[1], v * c, v * s);
                let mut j = SMatrix::<f64, 4, 5>::zeros();
                j[(0, 0)] = 1.0;
                j[(1, 1)] = 1.0;
                j[(2, 2)] = -v * s;
                j[(2, 3)] = c;
                j[(3, 2)] = v * c;
                j[(3, 3)] = s;
                let mut p = j * p5 * j.transpose();
                let floor = 0.1f64.powi(2);
                p[(2, 2)] = p[(2, 2)].max(floor);
                p[(3, 3)] = p[(3, 3)].max(floor);
                if matches!(self, MotionState::Static { .. }) {
                    p[(2, 2)] = speed_sigma_mps.powi(2);
                    p[(3, 3)] = speed_sigma_mps.powi(2);
                }
                MotionState::Cv { x, p: repair_covariance(p) }
            }
            MotionFamily::Static => MotionState::Static { x: self.position(), p: self.position_cov() },
        }
    }

    /// The state as `[x, y, yaw, speed, yaw_rate]` with covariance, whatever the model.
    /// `yaw_hint_rad` is the heading used where the model has none (slow CV, static).
    pub fn as_ctrv(&self, yaw_hint_rad: f64, yaw_rate_sigma_rps: f64) -> (Vector5, Matrix5) {
        match self {
            MotionState::Ctrv { x, p } => (*x, *p),
            MotionState::Cv { x, p } => {
                let (vx, vy) = (x[2], x[3]);
                let v = vx.hypot(vy);
                let mut p5 = Matrix5::zeros();
                let x5 = Vector5::new(x[0], x[1], cv_heading_rad(vx, vy, v, yaw_hint_rad), v, 0.0);
                if v > CV_HEADING_MIN_SPEED_MPS {
                    let mut j = SMatrix::<f64, 5, 4>::zeros();
                    j[(0, 0)] = 1.0;
                    j[(1, 1)] = 1.0;
                    j[(2, 2)] = -vy / (v * v);
                    j[(2, 3)] = vx / (v * v);
                    j[(3, 2)] = vx / v;
                    j[(3, 3)] = vy / v;
                    p5 = j * p * j.transpose();
                } else {
                    p5.fixed_view_mut::<2, 2>(0, 0).copy_from(&p.fixed_view::<2, 2>(0, 0));
                    p5[(2, 2)] = (PI / 2.0).powi(2);
                    p5[(3, 3)] = p[(2, 2)] + p[(3, 3)];
                }
                p5[(4, 4)] = yaw_rate_sigma_rps.powi(2);
                (x5, repair_covariance(p5))
            }
            MotionState::Static { x, p } => {
                let x5 = Vector5::new(x[0], x[1], wrap_angle(yaw_hint_rad), 0.0, 0.0);
                let mut p5 = Matrix5::zeros();
                p5.fixed_view_mut::<2, 2>(0, 0).copy_from(p);
                p5[(2, 2)] = (PI / 2.0).powi(2);
                p5[(3, 3)] = 0.05f64.powi(2);
                p5[(4, 4)] = 0.01f64.powi(2);
                (x5, repair_covariance(p5))
            }
        }
    }

    /// Whether every state and covariance entry is finite.
    pub fn is_finite(&self) -> bool {
        match self {
            MotionState::Ctrv { x, p } => all_finite(x.as_slice()) & all_finite(p.as_slice()),
            MotionState::Cv { x, p } => all_finite(x.as_slice()) & all_finite(p.as_slice()),
            MotionState::Static { x, p } => all_finite(x.as_slice()) & all_finite(p.as_slice()),
        }
    }
}
