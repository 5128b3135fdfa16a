//! Motion models and their extended Kalman filters, kept apart from the track lifecycle:
//! CTRV (constant turn rate and velocity) for vehicles, CV (constant velocity) for pedestrians and
//! a static model for cones and obstacles. All share the first two state entries (x, y) [m] in
//! the site frame, so position-like measurements work with any model.

use nalgebra::{Matrix2, SMatrix, SVector, Vector2};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

use crate::class::MotionFamily;

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

/// A generic EKF update with residual `y = z - h(x)`, Jacobian `h` and noise `r`, in Joseph form.
/// Returns false (and leaves the state alone) when the innovation covariance is singular.
fn ekf_update<const N: usize, const M: usize>(
    x: &mut SVector<f64, N>,
    p: &mut SMatrix<f64, N, N>,
    y: &SVector<f64, M>,
    h: &SMatrix<f64, M, N>,
    r: &SMatrix<f64, M, M>,
) -> bool {
    let ph_t = *p * h.transpose();
    let s = h * ph_t + r;
    let Some(s_inv) = s.try_inverse() else { return false };
    let k = ph_t * s_inv;
    let dx = k * y;
    if !dx.iter().all(|v| v.is_finite()) {
        return false;
    }
    *x += dx;
    let i_kh = SMatrix::<f64, N, N>::identity() - k * h;
    let new_p = i_kh * *p * i_kh.transpose() + k * r * k.transpose();
    *p = repair_covariance(new_p);
    true
}

/// Symmetrises a covariance and keeps it positive definite (floors the diagonal, falls back to
/// the diagonal when the Cholesky factorisation fails).
fn repair_covariance<const N: usize>(p: SMatrix<f64, N, N>) -> SMatrix<f64, N, N> {
    let mut s = (p + p.transpose()) * 0.5;
    for i in 0..N {
        let d = s[(i, i)];
        s[(i, i)] = if d.is_finite() { d.clamp(1e-9, 1e6) } else { 1e6 };
    }
    if all_finite(s.as_slice()) && is_positive_definite(&s) {
        return s;
    }
    SMatrix::<f64, N, N>::from_diagonal(&s.diagonal())
}

/// Whether every value is finite: no exponent field all ones (infinity or NaN), or-reduced over
/// the bits without an early exit, so it vectorises.
fn all_finite(values: &[f64]) -> bool {
    const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
    values.iter().fold(0u64, |acc, v| acc | u64::from(v.to_bits() & EXPONENT == EXPONENT)) == 0
}

/// Whether the Cholesky factorisation of `m` succeeds: the same left-looking column algorithm
/// and the same floating-point operations as nalgebra's `Cholesky::new` (so it accepts and
/// rejects exactly the same matrices), without its generic overhead and without keeping the
/// factor.
fn is_positive_definite<const N: usize>(m: &SMatrix<f64, N, N>) -> bool {
    let mut l = *m;
    for j in 0..N {
        for k in 0..j {
            let factor = -l[(j, k)];
            for i in j..N {
                l[(i, j)] += factor * l[(i, k)]; // a·x + y, the same sum as nalgebra's axpy
            }
        }
        let diag = l[(j, j)];
        // nalgebra refuses a zero pivot and one whose square root cannot be taken (negative, NaN).
        if diag.is_nan() || diag <= 0.0 {
            return false;
        }
        let denom = diag.sqrt();
        l[(j, j)] = denom;
        for i in j + 1..N {
            l[(i, j)] /= denom;
        }
    }
    true
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

    /// Heading [rad]: the model's yaw (CTRV), the velocity direction (CV, when moving) or
    /// `fallback_rad`.
    pub fn yaw(&self, fallback_rad: f64) -> f64 {
        match self {
            MotionState::Ctrv { x, .. } => x[2],
            MotionState::Cv { x, .. } if x[2].hypot(x[3]) > 0.3 => x[3].atan2(x[2]),
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

    /// Predicts by `dt_s` (may be negative for a look back; the noise uses |dt|).
    pub fn predict(&mut self, dt_s: f64, q: &ProcessNoise) {
        if dt_s == 0.0 || !dt_s.is_finite() {
            return;
        }
        let adt = dt_s.abs();
        match self {
            MotionState::Ctrv { x, p } => {
                let (px, py, yaw, v, w) = (x[0], x[1], x[2], x[3], x[4]);
                let (s0, c0) = yaw.sin_cos();
                let yaw1 = yaw + w * dt_s;
                let (s1, c1) = yaw1.sin_cos();
                let mut f = Matrix5::identity();
                let (nx, ny);
                if w.abs() > 1e-4 {
                    let vw = v / w;
                    nx = px + vw * (s1 - s0);
                    ny = py + vw * (c0 - c1);
                    f[(0, 2)] = vw * (c1 - c0);
                    f[(0, 3)] = (s1 - s0) / w;
                    f[(0, 4)] = -vw / w * (s1 - s0) + vw * c1 * dt_s;
                    f[(1, 2)] = vw * (s1 - s0);
                    f[(1, 3)] = (c0 - c1) / w;
                    f[(1, 4)] = -vw / w * (c0 - c1) + vw * s1 * dt_s;
                } else {
                    nx = px + v * c0 * dt_s;
                    ny = py + v * s0 * dt_s;
                    f[(0, 2)] = -v * s0 * dt_s;
                    f[(0, 3)] = c0 * dt_s;
                    f[(0, 4)] = -0.5 * v * s0 * dt_s * dt_s;
                    f[(1, 2)] = v * c0 * dt_s;
                    f[(1, 3)] = s0 * dt_s;
                    f[(1, 4)] = 0.5 * v * c0 * dt_s * dt_s;
                }
                f[(2, 4)] = dt_s;
                x[0] = nx;
                x[1] = ny;
                x[2] = wrap_angle(yaw1);
                let mut g = SMatrix::<f64, 5, 2>::zeros();
                g[(0, 0)] = 0.5 * adt * adt * c0;
                g[(1, 0)] = 0.5 * adt * adt * s0;
                g[(2, 1)] = 0.5 * adt * adt;
                g[(3, 0)] = adt;
                g[(4, 1)] = adt;
                let qd =
                    Matrix2::new(q.vehicle_accel_sigma_mps2.powi(2), 0.0, 0.0, q.vehicle_yaw_accel_sigma_rps2.powi(2));
                *p = repair_covariance(f * *p * f.transpose() + g * qd * g.transpose());
            }
            MotionState::Cv { x, p } => {
                let mut f = SMatrix::<f64, 4, 4>::identity();
                f[(0, 2)] = dt_s;
                f[(1, 3)] = dt_s;
                *x = f * *x;
                let s2 = q.pedestrian_accel_sigma_mps2.powi(2);
                let (a, b, c) = (adt.powi(4) / 4.0 * s2, adt.powi(3) / 2.0 * s2, adt * adt * s2);
                let qm = SMatrix::<f64, 4, 4>::new(a, 0.0, b, 0.0, 0.0, a, 0.0, b, b, 0.0, c, 0.0, 0.0, b, 0.0, c);
                *p = repair_covariance(f * *p * f.transpose() + qm);
            }
            MotionState::Static { p, .. } => {
                *p = repair_covariance(*p + Matrix2::identity() * (q.static_position_walk_mps.powi(2) * adt));
            }
        }
    }

    /// Squared Mahalanobis distance of a position measurement with residual `y` [m], Jacobian
    /// `hxy` of the measurement by (x, y) and noise `r`; with the innovation covariance's log
    /// determinant. `None` when the innovation covariance is singular.
    pub fn position_like_distance(&self, y: &Vector2<f64>, hxy: &Matrix2<f64>, r: &Matrix2<f64>) -> Option<(f64, f64)> {
        let s = hxy * self.position_cov() * hxy.transpose() + r;
        innovation_distance(&s, y, f64::INFINITY)
    }

    /// [`MotionState::position_like_distance`] restricted to the gate: `None` as well when the
    /// squared distance exceeds `gate_chi2` (the log determinant is then not computed).
    pub fn position_like_gate(
        &self,
        y: &Vector2<f64>,
        hxy: &Matrix2<f64>,
        r: &Matrix2<f64>,
        gate_chi2: f64,
    ) -> Option<(f64, f64)> {
        let s = hxy * self.position_cov() * hxy.transpose() + r;
        innovation_distance(&s, y, gate_chi2)
    }

    /// Updates with a measurement depending on position only: residual `y`, Jacobian `hxy` by
    /// (x, y), noise `r`.
    pub fn update_position_like(&mut self, y: &Vector2<f64>, hxy: &Matrix2<f64>, r: &Matrix2<f64>) -> bool {
        match self {
            MotionState::Ctrv { x, p } => {
                let mut h = SMatrix::<f64, 2, 5>::zeros();
                h.fixed_view_mut::<2, 2>(0, 0).copy_from(hxy);
                let ok = ekf_update(x, p, y, &h, r);
                normalise_ctrv(x);
                ok
            }
            MotionState::Cv { x, p } => {
                let mut h = SMatrix::<f64, 2, 4>::zeros();
                h.fixed_view_mut::<2, 2>(0, 0).copy_from(hxy);
                ekf_update(x, p, y, &h, r)
            }
            MotionState::Static { x, p } => ekf_update(x, p, y, hxy, r),
        }
    }

    /// Updates with a direct position measurement `z` [m] and, for CTRV, a heading `yaw_rad`
    /// (already on the branch nearest the track) with variance `yaw_var_rad2`.
    pub fn update_position_yaw(&mut self, z: &Vector2<f64>, r: &Matrix2<f64>, yaw_rad: f64, yaw_var_rad2: f64) -> bool {
        match self {
            MotionState::Ctrv { x, p } => {
                let y = SVector::<f64, 3>::new(z.x - x[0], z.y - x[1], wrap_angle(yaw_rad - x[2]));
                let mut h = SMatrix::<f64, 3, 5>::zeros();
                h[(0, 0)] = 1.0;
                h[(1, 1)] = 1.0;
                h[(2, 2)] = 1.0;
                let mut rr = SMatrix::<f64, 3, 3>::zeros();
                rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
                rr[(2, 2)] = yaw_var_rad2;
                let ok = ekf_update(x, p, &y, &h, &rr);
                normalise_ctrv(x);
                ok
            }
            _ => {
                let y = z - self.position();
                self.update_position_like(&y, &Matrix2::identity(), r)
            }
        }
    }

    /// Updates with a full kinematic self-report: position `z` [m] (noise `r`), heading
    /// [rad] and speed [m/s] with their variances.
    pub fn update_kinematic(
        &mut self,
        z: &Vector2<f64>,
        r: &Matrix2<f64>,
        yaw_rad: f64,
        yaw_var_rad2: f64,
        speed_mps: f64,
        speed_var_mps2: f64,
    ) -> bool {
        match self {
            MotionState::Ctrv { x, p } => {
                let y = SVector::<f64, 4>::new(z.x - x[0], z.y - x[1], wrap_angle(yaw_rad - x[2]), speed_mps - x[3]);
                let mut h = SMatrix::<f64, 4, 5>::zeros();
                for i in 0..4 {
                    h[(i, i)] = 1.0;
                }
                let mut rr = SMatrix::<f64, 4, 4>::zeros();
                rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
                rr[(2, 2)] = yaw_var_rad2;
                rr[(3, 3)] = speed_var_mps2;
                let ok = ekf_update(x, p, &y, &h, &rr);
                normalise_ctrv(x);
                ok
            }
            MotionState::Cv { x, p } => {
                let (s, c) = yaw_rad.sin_cos();
                let y = SVector::<f64, 4>::new(z.x - x[0], z.y - x[1], speed_mps * c - x[2], speed_mps * s - x[3]);
                let h = SMatrix::<f64, 4, 4>::identity();
                let mut rr = SMatrix::<f64, 4, 4>::zeros();
                rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
                let vel_var = speed_var_mps2 + speed_mps * speed_mps * yaw_var_rad2;
                rr[(2, 2)] = vel_var;
                rr[(3, 3)] = vel_var;
                ekf_update(x, p, &y, &h, &rr)
            }
            MotionState::Static { .. } => {
                let y = z - self.position();
                self.update_position_like(&y, &Matrix2::identity(), r)
            }
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
                let mut x5 = Vector5::new(x[0], x[1], wrap_angle(yaw_hint_rad), v, 0.0);
                if v > 0.3 {
                    x5[2] = vy.atan2(vx);
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

/// Squared Mahalanobis distance of residual `y` under innovation covariance `s`, with the log
/// determinant of `s`; `None` when `s` is singular, the distance is not finite or it exceeds
/// `gate_chi2` (pass infinity for no gate).
pub fn innovation_distance(s: &Matrix2<f64>, y: &Vector2<f64>, gate_chi2: f64) -> Option<(f64, f64)> {
    let det = s.determinant();
    if !(det.is_finite() && det > 0.0) {
        return None;
    }
    let s_inv = s.try_inverse()?;
    let d2 = (y.transpose() * s_inv * y)[(0, 0)];
    (d2.is_finite() && d2 <= gate_chi2).then(|| (d2, det.ln()))
}

/// Keeps a CTRV state canonical: a confidently negative speed means the heading is reversed
/// (flip yaw by pi, negate speed), speed and yaw rate within physical bounds.
fn normalise_ctrv(x: &mut Vector5) {
    if x[3] < -0.5 {
        x[2] = wrap_angle(x[2] + PI);
        x[3] = -x[3];
    }
    x[2] = wrap_angle(x[2]);
    x[3] = x[3].clamp(-MAX_SPEED_MPS, MAX_SPEED_MPS);
    x[4] = x[4].clamp(-MAX_YAW_RATE_RPS, MAX_YAW_RATE_RPS);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise() -> ProcessNoise {
        ProcessNoise {
            vehicle_accel_sigma_mps2: 2.0,
            vehicle_yaw_accel_sigma_rps2: 0.5,
            pedestrian_accel_sigma_mps2: 1.0,
            static_position_walk_mps: 0.02,
        }
    }

    #[test]
    fn angles_wrap_and_pick_the_nearest_branch() {
        assert!((wrap_angle(3.0 * PI) - PI).abs() < 1e-12);
        assert!((wrap_angle(-0.5) + 0.5).abs() < 1e-12);
        assert!((nearest_branch(PI + 0.1, 0.0) - 0.1).abs() < 1e-12);
        assert!((nearest_branch(0.1, PI) - wrap_angle(PI + 0.1)).abs() < 1e-12);
        assert!((nearest_branch(0.2, 0.0) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn ctrv_turns_a_quarter_circle() {
        let r = 20.0;
        let v = 10.0;
        let w = v / r;
        let mut s = MotionState::Ctrv { x: Vector5::new(0.0, 0.0, 0.0, v, w), p: Matrix5::identity() * 0.01 };
        let quarter = (PI / 2.0) / w;
        for _ in 0..100 {
            s.predict(quarter / 100.0, &noise());
        }
        let pos = s.position();
        assert!((pos - Vector2::new(r, r)).norm() < 1e-9, "{pos:?}");
        assert!((s.yaw(0.0) - PI / 2.0).abs() < 1e-9);
    }

    #[test]
    fn ctrv_jacobian_matches_finite_differences() {
        let x0 = Vector5::new(1.0, 2.0, 0.7, 8.0, 0.3);
        let dt = 0.1;
        let f_of = |x: Vector5| {
            let mut s = MotionState::Ctrv { x, p: Matrix5::identity() };
            s.predict(dt, &noise());
            match s {
                MotionState::Ctrv { x, .. } => x,
                _ => unreachable!("stays ctrv"),
            }
        };
        // Without process noise an identity covariance propagates to F Fᵀ; compare with numeric F.
        let mut s = MotionState::Ctrv { x: x0, p: Matrix5::identity() };
        let q0 = ProcessNoise { vehicle_accel_sigma_mps2: 0.0, vehicle_yaw_accel_sigma_rps2: 0.0, ..noise() };
        s.predict(dt, &q0);
        let MotionState::Ctrv { p, .. } = s else { unreachable!("ctrv") };
        let mut f_num = Matrix5::zeros();
        for j in 0..5 {
            let mut d = Vector5::zeros();
            d[j] = 1e-6;
            let col = (f_of(x0 + d) - f_of(x0 - d)) / 2e-6;
            f_num.set_column(j, &col);
        }
        let expected = f_num * f_num.transpose();
        assert!((p - expected).norm() < 1e-6, "{p} vs {expected}");
    }

    #[test]
    fn position_updates_shrink_uncertainty_and_converge() {
        let mut s = MotionState::new(MotionFamily::Pedestrian, Vector2::zeros(), Matrix2::identity(), 0.0, 2.0, 0.3);
        for k in 1..=30 {
            s.predict(0.1, &noise());
            let z = Vector2::new(1.5 * 0.1 * f64::from(k), 0.0);
            let y = z - s.position();
            assert!(s.update_position_like(&y, &Matrix2::identity(), &(Matrix2::identity() * 0.01)));
        }
        assert!((s.velocity() - Vector2::new(1.5, 0.0)).norm() < 0.2, "{:?}", s.velocity());
        assert!(s.position_cov()[(0, 0)] < 0.01);
    }

    #[test]
    fn reversed_heading_is_flipped_not_driven_backwards() {
        let mut s = MotionState::new(MotionFamily::Vehicle, Vector2::zeros(), Matrix2::identity() * 0.04, PI, 8.0, 0.3);
        for k in 1..=20 {
            s.predict(0.1, &noise());
            let z = Vector2::new(10.0 * 0.1 * f64::from(k), 0.0);
            let yaw = nearest_branch(0.0, s.yaw(0.0));
            s.update_position_yaw(&z, &(Matrix2::identity() * 0.04), yaw, 0.01);
        }
        let (x, _) = s.as_ctrv(0.0, 0.3);
        assert!(x[3] > 8.0, "speed {}", x[3]);
        assert!(wrap_angle(x[2]).abs() < 0.2, "yaw {}", x[2]);
    }

    #[test]
    fn positive_definite_check_agrees_with_nalgebra() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for k in 0..20_000 {
            let a = Matrix5::from_fn(|_, _| rng.random_range(-1.0..1.0));
            let mut m = a * a.transpose();
            // Some near-singular and indefinite matrices too.
            m[(k % 5, k % 5)] += rng.random_range(-0.5..0.5) * f64::from(k % 3 == 0);
            if k % 7 == 0 {
                m = Matrix5::from_fn(|i, j| if i == j { 0.0 } else { m[(i, j)] });
            }
            assert_eq!(is_positive_definite(&m), m.cholesky().is_some(), "{m}");
        }
        assert!(!is_positive_definite(&Matrix2::new(f64::NAN, 0.0, 0.0, 1.0)));
        assert!(!is_positive_definite(&Matrix2::new(0.0, 0.0, 0.0, 1.0)));
    }

    #[test]
    fn conversions_keep_the_motion() {
        let s = MotionState::Ctrv { x: Vector5::new(1.0, 2.0, 0.5, 3.0, 0.0), p: Matrix5::identity() * 0.1 };
        let cv = s.converted(MotionFamily::Pedestrian, 0.0, 1.0, 0.3);
        assert!((cv.velocity() - s.velocity()).norm() < 1e-12);
        let back = cv.converted(MotionFamily::Vehicle, 0.0, 1.0, 0.3);
        assert!((back.velocity() - s.velocity()).norm() < 1e-12);
        let (_, p) = back.as_ctrv(0.0, 0.3);
        assert!(p.cholesky().is_some());
    }
}
