//! Gating: the squared Mahalanobis distance of a position-like residual under its innovation
//! covariance, with the determinant the assignment's costs need. Kept apart from the updates:
//! gating reads the state and never changes it.

use nalgebra::{Matrix2, Vector2};

use super::MotionState;

impl MotionState {
    /// Squared Mahalanobis distance of a position measurement with residual `y` [m] and noise
    /// `r` [m²]; with the innovation covariance's determinant. `None` when the innovation
    /// covariance is singular.
    pub fn position_distance(&self, y: &Vector2<f64>, r: &Matrix2<f64>) -> Option<(f64, f64)> {
        innovation_distance(&(self.position_cov() + r), y, f64::INFINITY)
    }

    /// [`MotionState::position_distance`] restricted to the gate: `None` as well when the
    /// squared distance exceeds `gate_chi2`.
    pub fn position_gate(&self, y: &Vector2<f64>, r: &Matrix2<f64>, gate_chi2: f64) -> Option<(f64, f64)> {
        innovation_distance(&(self.position_cov() + r), y, gate_chi2)
    }
}

/// Squared Mahalanobis distance of residual `y` under innovation covariance `s`, with the
/// determinant of `s` (positive); `None` when `s` is singular, the distance is not finite or it
/// exceeds `gate_chi2` (pass infinity for no gate).
pub fn innovation_distance(s: &Matrix2<f64>, y: &Vector2<f64>, gate_chi2: f64) -> Option<(f64, f64)> {
    let det = s.determinant();
    if !(det.is_finite() && det > 0.0) {
        return None;
    }
    let s_inv = s.try_inverse()?;
    let d2 = (y.transpose() * s_inv * y)[(0, 0)];
    (d2.is_finite() && d2 <= gate_chi2).then_some((d2, det))
}
