//! Plain versions of the filter's functions (nalgebra matrices, products and loops written the
//! obvious way), which the implementations in `predict`, `update` and `guard` must match bit for
//! bit. Test code only.

use nalgebra::{Matrix2, SMatrix, SVector, Vector2};

use crate::motion::guard::all_finite;
use crate::motion::update::{Leading, normalise_ctrv};
use crate::motion::{Kinematics, Matrix5, MotionState, ProcessNoise, Vector5, wrap_angle};

/// One CTRV step of the mean: the new position and (unwrapped) yaw, with the sines and
/// cosines of the old and new yaw that the Jacobian reuses.
pub struct CtrvStep {
    pub nx: f64,
    pub ny: f64,
    pub yaw1: f64,
    pub s0: f64,
    pub c0: f64,
    pub s1: f64,
    pub c1: f64,
}

/// The CTRV mean `x` moved by `dt_s` (turning when the yaw rate is above 1e-4 rad/s,
/// straight otherwise).
pub fn ctrv_step(x: &Vector5, dt_s: f64) -> CtrvStep {
    let (px, py, yaw, v, w) = (x[0], x[1], x[2], x[3], x[4]);
    let (s0, c0) = yaw.sin_cos();
    let yaw1 = yaw + w * dt_s;
    let (s1, c1) = yaw1.sin_cos();
    let (nx, ny) = if w.abs() > 1e-4 {
        let vw = v / w;
        (px + vw * (s1 - s0), py + vw * (c0 - c1))
    } else {
        (px + v * c0 * dt_s, py + v * s0 * dt_s)
    };
    CtrvStep { nx, ny, yaw1, s0, c0, s1, c1 }
}

/// The mean after a prediction by `dt_s`, as `kinematics_after` computed it.
pub fn kinematics_after(this: &MotionState, dt_s: f64, yaw_hint_rad: f64) -> Kinematics {
    let moves = dt_s != 0.0 && dt_s.is_finite();
    match this {
        MotionState::Ctrv { x, .. } => {
            let (position_m, yaw_rad) = if moves {
                let step = ctrv_step(x, dt_s);
                (Vector2::new(step.nx, step.ny), wrap_angle(step.yaw1))
            } else {
                (Vector2::new(x[0], x[1]), x[2])
            };
            let velocity_mps = Vector2::new(x[3] * yaw_rad.cos(), x[3] * yaw_rad.sin());
            Kinematics { position_m, velocity_mps, yaw_rad }
        }
        _ => this.kinematics_after(dt_s, yaw_hint_rad),
    }
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
pub fn ekf_update_leading<const N: usize, const M: usize>(
    x: &mut SVector<f64, N>,
    p: &mut SMatrix<f64, N, N>,
    y: &SVector<f64, M>,
    a: Leading<'_, M>,
    r: &SMatrix<f64, M, M>,
) -> bool {
    // C = P[:, ..M] Aᵀ (N×M) and S = A C[..M, :] + R.
    let p_left = p.fixed_columns::<M>(0).into_owned();
    let (c, s) = match a {
        Leading::Identity => (p_left, p_left.fixed_rows::<M>(0) + r),
        Leading::Matrix(a) => {
            let c = mul(&p_left, &a.transpose());
            (c, mul(a, &c.fixed_rows::<M>(0).into_owned()) + r)
        }
    };
    let Some((l, inv_diag)) = cholesky_lower(&s) else { return false };
    // v = L⁻¹ y; row i of W solves L wᵢᵀ = cᵢᵀ (forward substitution).
    let v = forward_substitute(&l, &inv_diag, |m| y[m]);
    let mut w = SMatrix::<f64, N, M>::zeros();
    for i in 0..N {
        let wi = forward_substitute(&l, &inv_diag, |m| c[(i, m)]);
        for m in 0..M {
            w[(i, m)] = wi[m];
        }
    }
    let dx = mul(&w, &SMatrix::<f64, M, 1>::from_column_slice(&v));
    if !all_finite(dx.as_slice()) {
        return false;
    }
    *x += dx;
    // Each entry of the upper triangle needs only its own old value: updated in place.
    for j in 0..N {
        for i in 0..=j {
            let mut ww = 0.0;
            for m in 0..M {
                ww += w[(i, m)] * w[(j, m)];
            }
            let v = p[(i, j)] - ww;
            p[(i, j)] = v;
            p[(j, i)] = v;
        }
    }
    guard_covariance(p);
    true
}

/// The lower Cholesky factor `L` of a small symmetric matrix (read from its lower triangle) and
/// the reciprocals of its diagonal; `None` when the matrix is not positive definite (or not
/// finite).
pub fn cholesky_lower<const M: usize>(s: &SMatrix<f64, M, M>) -> Option<(SMatrix<f64, M, M>, [f64; M])> {
    let mut l = SMatrix::<f64, M, M>::zeros();
    let mut inv_diag = [0.0; M];
    for j in 0..M {
        let mut d = s[(j, j)];
        for k in 0..j {
            d -= l[(j, k)] * l[(j, k)];
        }
        // Also false for NaN; an infinite pivot gives a zero reciprocal, caught below as a
        // non-finite entry.
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let ljj = d.sqrt();
        l[(j, j)] = ljj;
        inv_diag[j] = 1.0 / ljj;
        for i in j + 1..M {
            let mut e = s[(i, j)];
            for k in 0..j {
                e -= l[(i, k)] * l[(j, k)];
            }
            l[(i, j)] = e * inv_diag[j];
        }
    }
    Some((l, inv_diag))
}

/// Solves `L z = b` for lower-triangular `L` (with the reciprocals of its diagonal), `b` given
/// entry by entry.
#[inline(always)]
pub fn forward_substitute<const M: usize>(
    l: &SMatrix<f64, M, M>,
    inv_diag: &[f64; M],
    b: impl Fn(usize) -> f64,
) -> [f64; M] {
    let mut z = [0.0; M];
    for i in 0..M {
        let mut e = b(i);
        for k in 0..i {
            e -= l[(i, k)] * z[k];
        }
        z[i] = e * inv_diag[i];
    }
    z
}

/// `a · b` for small fixed-size matrices, as plain loops (fully unrolled by the compiler, unlike
/// nalgebra's generic product).
#[inline(always)]
pub fn mul<const R: usize, const K: usize, const C: usize>(
    a: &SMatrix<f64, R, K>,
    b: &SMatrix<f64, K, C>,
) -> SMatrix<f64, R, C> {
    let mut out = SMatrix::<f64, R, C>::zeros();
    for j in 0..C {
        for i in 0..R {
            let mut acc = 0.0;
            for m in 0..K {
                acc += a[(i, m)] * b[(m, j)];
            }
            out[(i, j)] = acc;
        }
    }
    out
}

/// `P ← F P Fᵀ` for the CTRV Jacobian `F`: the identity except for the x and y rows, whose yaw,
/// speed and yaw rate columns are `fxy`, and `F[yaw][yaw_rate] = dt_s`. Only those entries are
/// multiplied (the same sums as the dense product without its terms in 0 and 1), in place: rows
/// x and y read rows yaw..yaw_rate before row yaw changes, and likewise for the columns.
pub fn ctrv_propagate(p: &mut Matrix5, fxy: &[[f64; 3]; 2], dt_s: f64) {
    // F P: rows x and y gain a combination of rows yaw..yaw_rate, row yaw gains dt·row yaw_rate.
    for j in 0..5 {
        for (r, f) in fxy.iter().enumerate() {
            p[(r, j)] += f[0] * p[(2, j)] + f[1] * p[(3, j)] + f[2] * p[(4, j)];
        }
        p[(2, j)] += dt_s * p[(4, j)];
    }
    // (F P) Fᵀ: the same on the columns.
    for i in 0..5 {
        for (c, f) in fxy.iter().enumerate() {
            p[(i, c)] += f[0] * p[(i, 2)] + f[1] * p[(i, 3)] + f[2] * p[(i, 4)];
        }
        p[(i, 2)] += dt_s * p[(i, 4)];
    }
}

/// Symmetrises a covariance and keeps it positive definite (see [`guard_covariance`]).
pub fn repair_covariance<const N: usize>(mut p: SMatrix<f64, N, N>) -> SMatrix<f64, N, N> {
    repair_in_place(&mut p);
    p
}

/// [`repair_covariance`] in place.
pub fn repair_in_place<const N: usize>(p: &mut SMatrix<f64, N, N>) {
    // (P + Pᵀ) / 2, one sum per pair of mirrored entries.
    for j in 0..N {
        for i in 0..j {
            let v = (p[(i, j)] + p[(j, i)]) * 0.5;
            p[(i, j)] = v;
            p[(j, i)] = v;
        }
    }
    guard_covariance(p);
}

/// Keeps a symmetric covariance positive definite: floors the diagonal, falls back to the
/// diagonal when the Cholesky factorisation fails.
pub fn guard_covariance<const N: usize>(s: &mut SMatrix<f64, N, N>) {
    for i in 0..N {
        let d = s[(i, i)];
        s[(i, i)] = if d.is_finite() { d.clamp(1e-9, 1e6) } else { 1e6 };
    }
    // With the diagonal finite, the Cholesky check also rejects any non-finite entry (an infinite
    // or NaN entry of row i reaches the pivot of row i as NaN or -inf), so no separate finiteness
    // check is needed.
    if !is_positive_definite(s) {
        *s = SMatrix::<f64, N, N>::from_diagonal(&s.diagonal());
    }
}

/// Whether the symmetric `m` (read from its lower triangle) is positive definite up to rounding:
/// every pivot of its `L D Lᵀ` factorisation is positive. The same test as a Cholesky
/// factorisation without its square roots (whose latency is most of what a 5×5 check costs) and
/// without keeping the factor.
#[allow(clippy::needless_range_loop)] // index loops mirror the factorisation's formulas
pub fn is_positive_definite<const N: usize>(m: &SMatrix<f64, N, N>) -> bool {
    // `w[i][k] = L[i][k] · d[k]` below the diagonal (column k done), `l[i][k] = L[i][k]`.
    let mut l = [[0.0f64; N]; N];
    let mut w = [[0.0f64; N]; N];
    for j in 0..N {
        let mut pivot = m[(j, j)];
        for k in 0..j {
            pivot -= l[j][k] * w[j][k];
        }
        // Refuses a zero or negative pivot and a NaN one (a non-finite entry ends up as one).
        if pivot.is_nan() || pivot <= 0.0 {
            return false;
        }
        let inv_pivot = 1.0 / pivot;
        for i in j + 1..N {
            let mut e = m[(i, j)];
            for k in 0..j {
                e -= l[i][k] * w[j][k];
            }
            w[i][j] = e;
            l[i][j] = e * inv_pivot;
        }
    }
    true
}

/// Predicts by `dt_s` (may be negative for a look back; the noise uses |dt|).
pub fn predict(this: &mut MotionState, dt_s: f64, q: &ProcessNoise) {
    if dt_s == 0.0 || !dt_s.is_finite() {
        return;
    }
    let adt = dt_s.abs();
    match this {
        MotionState::Ctrv { x, p } => {
            let (v, w) = (x[3], x[4]);
            let CtrvStep { nx, ny, yaw1, s0, c0, s1, c1 } = ctrv_step(x, dt_s);
            // The Jacobian F is the identity except for rows x and y (columns yaw, speed,
            // yaw rate: `fxy`) and F[yaw][yaw_rate] = dt.
            let fxy = if w.abs() > 1e-4 {
                let vw = v / w;
                [
                    [vw * (c1 - c0), (s1 - s0) / w, -vw / w * (s1 - s0) + vw * c1 * dt_s],
                    [vw * (s1 - s0), (c0 - c1) / w, -vw / w * (c0 - c1) + vw * s1 * dt_s],
                ]
            } else {
                [
                    [-v * s0 * dt_s, c0 * dt_s, -0.5 * v * s0 * dt_s * dt_s],
                    [v * c0 * dt_s, s0 * dt_s, 0.5 * v * c0 * dt_s * dt_s],
                ]
            };
            x[0] = nx;
            x[1] = ny;
            x[2] = wrap_angle(yaw1);
            // Process noise G Qd Gᵀ with G = [g_accel g_yaw_accel]: the longitudinal
            // acceleration drives x, y and speed, the yaw acceleration drives yaw and yaw
            // rate (the other products are zero).
            let g_accel = [(0, 0.5 * adt * adt * c0), (1, 0.5 * adt * adt * s0), (3, adt)];
            let g_yaw_accel = [(2, 0.5 * adt * adt), (4, adt)];
            ctrv_propagate(p, &fxy, dt_s);
            // The upper triangle, mirrored; the noise once per mirrored pair.
            for j in 0..5 {
                for i in j + 1..5 {
                    p[(i, j)] = p[(j, i)];
                }
            }
            for (g, var) in [
                (&g_accel[..], q.vehicle_accel_sigma_mps2.powi(2)),
                (&g_yaw_accel[..], q.vehicle_yaw_accel_sigma_rps2.powi(2)),
            ] {
                for (a, &(i, gi)) in g.iter().enumerate() {
                    for &(j, gj) in &g[a..] {
                        let v = gi * var * gj;
                        p[(i, j)] += v;
                        if i != j {
                            p[(j, i)] += v;
                        }
                    }
                }
            }
            guard_covariance(p);
        }
        MotionState::Cv { x, p } => {
            // F = I with F[x][vx] = F[y][vy] = dt: F P Fᵀ without the multiplications by 0 and 1.
            x[0] += dt_s * x[2];
            x[1] += dt_s * x[3];
            // In place: rows (then columns) x and y read rows vx and vy, which do not change.
            for j in 0..4 {
                p[(0, j)] += dt_s * p[(2, j)];
                p[(1, j)] += dt_s * p[(3, j)];
            }
            for i in 0..4 {
                p[(i, 0)] += dt_s * p[(i, 2)];
                p[(i, 1)] += dt_s * p[(i, 3)];
            }
            let s2 = q.pedestrian_accel_sigma_mps2.powi(2);
            let (a, b, c) = (adt.powi(4) / 4.0 * s2, adt.powi(3) / 2.0 * s2, adt * adt * s2);
            let qm = SMatrix::<f64, 4, 4>::new(a, 0.0, b, 0.0, 0.0, a, 0.0, b, b, 0.0, c, 0.0, 0.0, b, 0.0, c);
            *p += qm;
            repair_in_place(p);
        }
        MotionState::Static { p, .. } => {
            *p = repair_covariance(*p + Matrix2::identity() * (q.static_position_walk_mps.powi(2) * adt));
        }
    }
}

/// Updates with a measurement depending on position only: residual `y`, Jacobian `hxy` by
/// (x, y), noise `r`.
pub fn update_position_like(this: &mut MotionState, y: &Vector2<f64>, hxy: &Matrix2<f64>, r: &Matrix2<f64>) -> bool {
    match this {
        MotionState::Ctrv { x, p } => {
            let ok = ekf_update_leading(x, p, y, Leading::Matrix(hxy), r);
            normalise_ctrv(x);
            ok
        }
        MotionState::Cv { x, p } => ekf_update_leading(x, p, y, Leading::Matrix(hxy), r),
        MotionState::Static { x, p } => ekf_update_leading(x, p, y, Leading::Matrix(hxy), r),
    }
}

/// Updates with a direct position measurement `z` [m] and, for CTRV, a heading `yaw_rad`
/// (already on the branch nearest the track) with variance `yaw_var_rad2`.
pub fn update_position_yaw(
    this: &mut MotionState,
    z: &Vector2<f64>,
    r: &Matrix2<f64>,
    yaw_rad: f64,
    yaw_var_rad2: f64,
) -> bool {
    match this {
        MotionState::Ctrv { x, p } => {
            let y = SVector::<f64, 3>::new(z.x - x[0], z.y - x[1], wrap_angle(yaw_rad - x[2]));
            let mut rr = SMatrix::<f64, 3, 3>::zeros();
            rr.fixed_view_mut::<2, 2>(0, 0).copy_from(r);
            rr[(2, 2)] = yaw_var_rad2;
            let ok = ekf_update_leading(x, p, &y, Leading::Identity, &rr);
            normalise_ctrv(x);
            ok
        }
        _ => {
            let y = z - this.position();
            update_position_like(this, &y, &Matrix2::identity(), r)
        }
    }
}
