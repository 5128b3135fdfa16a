//! The EKF measurement updates. Every measurement the engine makes (lidar position and heading,
//! a camera box's bottom centre through the projection's pixel Jacobian, a V2X self-report) has
//! the Jacobian `H = [A 0]` on the leading state entries, so one update, written out on plain
//! arrays for that shape, serves them all. Kept apart from the prediction and the guard it calls.

use nalgebra::{Matrix2, SMatrix, SVector, Vector2};
use std::f64::consts::PI;

use super::guard::{Guard, all_finite, guard_covariance};
use super::{MAX_SPEED_MPS, MAX_YAW_RATE_RPS, MotionState, Vector5, wrap_angle};

/// The measured block `A` of a Jacobian `H = [A 0]` (a measurement of the leading state entries).
#[derive(Clone, Copy)]
pub(super) enum Leading<'a, const M: usize> {
    /// `A = I`: the entries are measured directly (their products by 1 and 0 are skipped).
    Identity,
    /// Any `A`.
    Matrix(&'a SMatrix<f64, M, M>),
}

/// An EKF update with a measurement of the leading `M` state entries: Jacobian `H = [A 0]`,
/// residual `y = z - h(x)` and noise `r`. With `C = P Hᵀ`, the innovation covariance
/// `S = H C + R = L Lᵀ` (Cholesky) and `W = C L⁻ᵀ`, the optimal-gain update is
/// `x ← x + W L⁻¹ y` and `P ← P − W Wᵀ` (the same as `x + K y` and `P − K S Kᵀ` with
/// `K = C S⁻¹`, and, for this gain, as the Joseph form), computed as its upper triangle so it is
/// symmetric by construction; the covariance guard then keeps it positive definite against
/// rounding. Only the non-zero block of `H` is multiplied (nothing for an identity `A`). Returns
/// false (and leaves the state alone) when `S` is not positive definite or the correction is not
/// finite.
#[allow(clippy::needless_range_loop)] // index loops mirror the update's formulas
pub(super) fn ekf_update_leading<const N: usize, const M: usize>(
    x: &mut SVector<f64, N>,
    p: &mut SMatrix<f64, N, N>,
    y: &SVector<f64, M>,
    a: Leading<'_, M>,
    r: &SMatrix<f64, M, M>,
    guard: Guard,
) -> bool {
    // Everything N-long is kept by columns (`cols[m][i]` is entry (i, m)), so the loops over the
    // N rows run over adjacent values, which the compiler pairs into vector operations.
    let pc = &p.data.0;
    // C = P[:, ..M] Aᵀ (N×M) and the lower triangle of S = A C[..M, :] + R, the only part the
    // factorisation reads.
    let mut c = [[0.0f64; N]; M];
    let mut s = [[0.0f64; M]; M];
    match a {
        Leading::Identity => {
            c.copy_from_slice(&pc[..M]);
            for i in 0..M {
                for j in 0..=i {
                    s[i][j] = pc[j][i] + r[(i, j)];
                }
            }
        }
        Leading::Matrix(a) => {
            for m in 0..M {
                for i in 0..N {
                    let mut acc = 0.0;
                    for k in 0..M {
                        acc += pc[k][i] * a[(m, k)];
                    }
                    c[m][i] = acc;
                }
            }
            for i in 0..M {
                for j in 0..=i {
                    let mut acc = 0.0;
                    for k in 0..M {
                        acc += a[(i, k)] * c[j][k];
                    }
                    s[i][j] = acc + r[(i, j)];
                }
            }
        }
    }
    let Some((l, inv_diag)) = cholesky_lower(&s) else { return false };
    // v = L⁻¹ y; row i of W solves L wᵢᵀ = cᵢᵀ (forward substitution, all rows at once).
    let v = forward_substitute(&l, &inv_diag, &std::array::from_fn(|m| y[m]));
    let mut w = [[0.0f64; N]; M];
    for m in 0..M {
        for i in 0..N {
            let mut e = c[m][i];
            for k in 0..m {
                e -= l[m][k] * w[k][i];
            }
            w[m][i] = e * inv_diag[m];
        }
    }
    // dx = W v.
    let mut dx = [0.0f64; N];
    for i in 0..N {
        let mut acc = 0.0;
        for m in 0..M {
            acc += w[m][i] * v[m];
        }
        dx[i] = acc;
    }
    if !all_finite(&dx) {
        return false;
    }
    for (xi, dxi) in x.iter_mut().zip(dx) {
        *xi += dxi;
    }
    // Each entry of the upper triangle needs only its own old value: updated in place, a column
    // at a time.
    for j in 0..N {
        for i in 0..j {
            let mut ww = 0.0;
            for m in 0..M {
                ww += w[m][i] * w[m][j];
            }
            let v = p[(i, j)] - ww;
            p[(i, j)] = v;
            p[(j, i)] = v;
        }
        // The diagonal's sum starts from its first square instead of 0 + that square: a square
        // is +0, positive, +inf or a quiet NaN, to each of which adding +0 changes no bit.
        let mut ww = w[0][j] * w[0][j];
        for m in 1..M {
            ww += w[m][j] * w[m][j];
        }
        p[(j, j)] -= ww;
    }
    if guard == Guard::Now {
        guard_covariance(p);
    }
    true
}

/// The lower Cholesky factor `L` (by rows) of a small symmetric matrix (read from its lower
/// triangle, by rows) and the reciprocals of its diagonal; `None` when the matrix is not positive
/// definite (or not finite).
#[allow(clippy::needless_range_loop)] // index loops mirror the factorisation's formulas
fn cholesky_lower<const M: usize>(s: &[[f64; M]; M]) -> Option<([[f64; M]; M], [f64; M])> {
    let mut l = [[0.0f64; M]; M];
    let mut inv_diag = [0.0; M];
    for j in 0..M {
        let mut d = s[j][j];
        for k in 0..j {
            d -= l[j][k] * l[j][k];
        }
        let ljj = d.sqrt();
        let inv = 1.0 / ljj;
        // `d` positive and finite (false for NaN too): for a positive `d`, the reciprocal of its
        // root is positive exactly when `d` is finite (it is at least 1/√f64::MAX otherwise, and
        // zero for an infinite `d`). Two plain comparisons, which the compiler cannot merge into
        // the long integer classification it makes of a range test on `d` alone.
        if !(d > 0.0 && inv > 0.0) {
            return None;
        }
        l[j][j] = ljj;
        inv_diag[j] = inv;
        for i in j + 1..M {
            let mut e = s[i][j];
            for k in 0..j {
                e -= l[i][k] * l[j][k];
            }
            l[i][j] = e * inv_diag[j];
        }
    }
    Some((l, inv_diag))
}

/// Solves `L z = b` for lower-triangular `L` (by rows, with the reciprocals of its diagonal).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // index loops mirror the substitution's formulas
fn forward_substitute<const M: usize>(l: &[[f64; M]; M], inv_diag: &[f64; M], b: &[f64; M]) -> [f64; M] {
    let mut z = [0.0; M];
    for i in 0..M {
        let mut e = b[i];
        for k in 0..i {
            e -= l[i][k] * z[k];
        }
        z[i] = e * inv_diag[i];
    }
    z
}

/// Keeps a CTRV state canonical: a confidently negative speed means the heading is reversed
/// (flip yaw by pi, negate speed), speed and yaw rate within physical bounds.
pub(super) fn normalise_ctrv(x: &mut Vector5) {
    if x[3] < -0.5 {
        x[2] = wrap_angle(x[2] + PI);
        x[3] = -x[3];
    }
    x[2] = wrap_angle(x[2]);
    x[3] = x[3].clamp(-MAX_SPEED_MPS, MAX_SPEED_MPS);
    x[4] = x[4].clamp(-MAX_YAW_RATE_RPS, MAX_YAW_RATE_RPS);
}

impl MotionState {
    /// Updates with a measurement depending on position only: residual `y`, Jacobian `hxy` by
    /// (x, y), noise `r`.
    pub fn update_position_like(&mut self, y: &Vector2<f64>, hxy: &Matrix2<f64>, r: &Matrix2<f64>) -> bool {
        self.update_position_like_with(y, hxy, r, Guard::Now)
    }

    /// [`MotionState::update_position_like`], guarding the covariance as `guard` says.
    pub fn update_position_like_with(
        &mut self,
        y: &Vector2<f64>,
        hxy: &Matrix2<f64>,
        r: &Matrix2<f64>,
        guard: Guard,
    ) -> bool {
        match self {
            MotionState::Ctrv { x, p } => {
                let ok = ekf_update_leading(x, p, y, Leading::Matrix(hxy), r, guard);
                normalise_ctrv(x);
                ok
            }
            MotionState::Cv { x, p } => ekf_update_leading(x, p, y, Leading::Matrix(hxy), r, guard),
            MotionState::Static { x, p } => ekf_update_leading(x, p, y, Leading::Matrix(hxy), r, guard),
        }
    }

    /// Updates with a direct position measurement `z` [m] and, for CTRV, a heading `yaw_rad`
    /// (already on the branch nearest the track) with variance `yaw_var_rad2`.
    pub fn update_position_yaw(&mut self, z: &Vector2<f64>, r: &Matrix2<f64>, yaw_rad: f64, yaw_var_rad2: f64) -> bool {
        self.update_position_yaw_with(z, r, yaw_rad, yaw_var_rad2, Guard::Now)
    }

    /// [`MotionState::update_position_yaw`], guarding the covariance as `guard` says.
    pub fn update_position_yaw_with(
        &mut self,
        z: &Vector2<f64>,
        r: &Matrix2<f64>,
        yaw_rad: f64,
        yaw_var_rad2: f64,
        guard: Guard,
    ) -> bool {
        match self {
            MotionState::Ctrv { x, p } => {
                let y = SVector::<f64, 3>::new(z.x - x[0], z.y - x[1], wrap_angle(yaw_rad - x[2]));
                let mut rr = SMatrix::<f64, 3, 3>::zeros();
                rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
                rr[(2, 2)] = yaw_var_rad2;
                let ok = ekf_update_leading(x, p, &y, Leading::Identity, &rr, guard);
                normalise_ctrv(x);
                ok
            }
            _ => {
                let y = z - self.position();
                self.update_position_like_with(&y, &Matrix2::identity(), r, guard)
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
                let mut rr = SMatrix::<f64, 4, 4>::zeros();
                rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
                rr[(2, 2)] = yaw_var_rad2;
                rr[(3, 3)] = speed_var_mps2;
                let ok = ekf_update_leading(x, p, &y, Leading::Identity, &rr, Guard::Now);
                normalise_ctrv(x);
                ok
            }
            MotionState::Cv { x, p } => {
                let (s, c) = yaw_rad.sin_cos();
                let y = SVector::<f64, 4>::new(z.x - x[0], z.y - x[1], speed_mps * c - x[2], speed_mps * s - x[3]);
                let mut rr = SMatrix::<f64, 4, 4>::zeros();
                rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
                let vel_var = speed_var_mps2 + speed_mps * speed_mps * yaw_var_rad2;
                rr[(2, 2)] = vel_var;
                rr[(3, 3)] = vel_var;
                ekf_update_leading(x, p, &y, Leading::Identity, &rr, Guard::Now)
            }
            MotionState::Static { .. } => {
                let y = z - self.position();
                self.update_position_like(&y, &Matrix2::identity(), r)
            }
        }
    }
}
