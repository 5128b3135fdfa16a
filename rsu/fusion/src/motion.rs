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

/// The measured block `A` of a Jacobian `H = [A 0]` (a measurement of the leading state entries).
#[derive(Clone, Copy)]
enum Leading<'a, const M: usize> {
    /// `A = I`: the entries are measured directly (their products by 1 and 0 are skipped).
    Identity,
    /// Any `A`.
    Matrix(&'a SMatrix<f64, M, M>),
}

/// When a prediction or update applies the covariance guard (diagonal floor and ceiling,
/// positive-definiteness check, diagonal fallback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Before returning: the state is ready for any use.
    Now,
    /// Left to the caller, who applies [`MotionState::guard`] once after a run of operations on
    /// the state (the fusion engine does so at the end of every batch of inputs) and before
    /// anything else reads it. Each update still refuses a non-positive-definite innovation
    /// covariance, so the state stays finite in between.
    Deferred,
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
fn ekf_update_leading<const N: usize, const M: usize>(
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

/// `P ← F P Fᵀ` for the CTRV Jacobian `F`: the identity except for the x and y rows, whose yaw,
/// speed and yaw rate columns are `fxy`, and `F[yaw][yaw_rate] = dt_s`. Only those entries are
/// multiplied (the same sums as the dense product without its terms in 0 and 1), in place: rows
/// x and y read rows yaw..yaw_rate before row yaw changes, and likewise for the columns. The
/// second product is taken on the upper triangle only and mirrored, so a symmetric `P` stays
/// symmetric by construction, with no averaging of mirrored entries afterwards.
#[allow(clippy::needless_range_loop)] // index loops mirror the product's formulas
fn ctrv_propagate(p: &mut Matrix5, fxy: &[[f64; 3]; 2], dt_s: f64) {
    // The columns of P (column-major storage): rows x and y of a column are adjacent, and so are
    // the rows of one column, which lets the compiler pair the lanes.
    let cols = &mut p.data.0;
    // F P: rows x and y gain a combination of rows yaw..yaw_rate, row yaw gains dt·row yaw_rate.
    for col in cols.iter_mut() {
        for (r, f) in fxy.iter().enumerate() {
            col[r] += f[0] * col[2] + f[1] * col[3] + f[2] * col[4];
        }
        col[2] += dt_s * col[4];
    }
    // (F P) Fᵀ on the upper triangle (row ≤ column): columns speed and yaw rate are those of
    // F P; columns x and y gain their combination of columns yaw..yaw_rate, read before column
    // yaw gains dt·column yaw_rate.
    {
        let [c0, c1, c2, c3, c4] = &mut *cols;
        for (c, f, rows) in [(c0, &fxy[0], 1), (c1, &fxy[1], 2)] {
            for i in 0..rows {
                c[i] += f[0] * c2[i] + f[1] * c3[i] + f[2] * c4[i];
            }
        }
        for i in 0..3 {
            c2[i] += dt_s * c4[i];
        }
    }
    for j in 0..5 {
        for i in j + 1..5 {
            cols[j][i] = cols[i][j];
        }
    }
}

/// Adds the process noise `var · g gᵀ` of one noise input with the non-zero entries `g`
/// ((state index, gain)) of its column, the same value to both entries of a mirrored pair.
#[inline(always)]
fn add_noise_term<const N: usize>(p: &mut SMatrix<f64, N, N>, g: &[(usize, f64)], var: f64) {
    for (a, &(i, gi)) in g.iter().enumerate() {
        let giv = gi * var;
        p[(i, i)] += giv * gi;
        for &(j, gj) in &g[a + 1..] {
            let q = giv * gj;
            p[(i, j)] += q;
            p[(j, i)] += q;
        }
    }
}

/// One CTRV step of the mean: the new position and (unwrapped) yaw, with the sine and cosine of
/// the old yaw, and those of the new yaw when turning (the straight-line step and its Jacobian
/// do not use them, so they are not computed there).
struct CtrvStep {
    nx: f64,
    ny: f64,
    yaw1: f64,
    s0: f64,
    c0: f64,
    /// `yaw1.sin_cos()` when turning, `None` on the straight line.
    turn: Option<(f64, f64)>,
}

/// The CTRV mean `x` moved by `dt_s` (turning when the yaw rate is above 1e-4 rad/s, straight
/// otherwise).
fn ctrv_step(x: &Vector5, dt_s: f64) -> CtrvStep {
    let (px, py, yaw, v, w) = (x[0], x[1], x[2], x[3], x[4]);
    let (s0, c0) = yaw.sin_cos();
    let yaw1 = yaw + w * dt_s;
    if w.abs() > 1e-4 {
        let (s1, c1) = yaw1.sin_cos();
        let vw = v / w;
        CtrvStep { nx: px + vw * (s1 - s0), ny: py + vw * (c0 - c1), yaw1, s0, c0, turn: Some((s1, c1)) }
    } else {
        CtrvStep { nx: px + v * c0 * dt_s, ny: py + v * s0 * dt_s, yaw1, s0, c0, turn: None }
    }
}

/// Below this speed a constant-velocity track's velocity gives no heading [m/s].
const CV_HEADING_MIN_SPEED_MPS: f64 = 0.3;

/// The heading of a constant-velocity track moving at (`vx`, `vy`) [m/s] with speed `speed_mps`
/// (their norm) [rad]: the velocity's direction, or the wrapped `yaw_hint_rad` when too slow.
fn cv_heading_rad(vx: f64, vy: f64, speed_mps: f64, yaw_hint_rad: f64) -> f64 {
    if speed_mps > CV_HEADING_MIN_SPEED_MPS { vy.atan2(vx) } else { wrap_angle(yaw_hint_rad) }
}

/// Where a motion state's mean is after a prediction: position [m], velocity [m/s] and heading
/// [rad], each computed as [`MotionState::predict`] followed by [`MotionState::position`],
/// [`MotionState::velocity`] and the yaw of [`MotionState::as_ctrv`] compute it (bit for bit),
/// without the covariance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kinematics {
    /// Position [m].
    pub position_m: Vector2<f64>,
    /// Velocity [m/s].
    pub velocity_mps: Vector2<f64>,
    /// Heading [rad].
    pub yaw_rad: f64,
}

/// Symmetrises a covariance and keeps it positive definite (see [`guard_covariance`]).
fn repair_covariance<const N: usize>(mut p: SMatrix<f64, N, N>) -> SMatrix<f64, N, N> {
    symmetrise(&mut p, Guard::Now);
    p
}

/// (P + Pᵀ) / 2 in place, one sum per pair of mirrored entries, then the covariance guard as
/// `guard` says.
fn symmetrise<const N: usize>(p: &mut SMatrix<f64, N, N>, guard: Guard) {
    for j in 0..N {
        for i in 0..j {
            let v = (p[(i, j)] + p[(j, i)]) * 0.5;
            p[(i, j)] = v;
            p[(j, i)] = v;
        }
    }
    if guard == Guard::Now {
        guard_covariance(p);
    }
}

/// Keeps a symmetric covariance positive definite: floors the diagonal, falls back to the
/// diagonal when the Cholesky factorisation fails.
fn guard_covariance<const N: usize>(s: &mut SMatrix<f64, N, N>) {
    for i in 0..N {
        let d = s[(i, i)];
        // Finite: clamped into [1e-9, 1e6]; infinite or NaN: 1e6. Tested in the order of the usual
        // case (at least the floor, where `min` also maps +inf to 1e6).
        s[(i, i)] = if d >= 1e-9 {
            d.min(1e6)
        } else if d >= f64::MIN {
            1e-9
        } else {
            1e6
        };
    }
    // With the diagonal finite, the Cholesky check also rejects any non-finite entry (an infinite
    // or NaN entry of row i reaches the pivot of row i as NaN or -inf), so no separate finiteness
    // check is needed.
    if !is_positive_definite(s) {
        *s = SMatrix::<f64, N, N>::from_diagonal(&s.diagonal());
    }
}

/// Whether every value is finite: no exponent field all ones (infinity or NaN), or-reduced over
/// the bits without an early exit, so it vectorises.
fn all_finite(values: &[f64]) -> bool {
    const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
    values.iter().fold(0u64, |acc, v| acc | u64::from(v.to_bits() & EXPONENT == EXPONENT)) == 0
}

/// Whether the symmetric `m` (read from its lower triangle) is positive definite up to rounding:
/// every pivot of its `L D Lᵀ` factorisation is positive. The same test as a Cholesky
/// factorisation without its square roots (whose latency is most of what a 5×5 check costs) and
/// without keeping the factor.
#[allow(clippy::needless_range_loop)] // index loops mirror the factorisation's formulas
fn is_positive_definite<const N: usize>(m: &SMatrix<f64, N, N>) -> bool {
    // `w[i][k] = L[i][k] · d[k]` below the diagonal (column k done), `l[i][k] = L[i][k]`.
    let mut l = [[0.0f64; N]; N];
    let mut w = [[0.0f64; N]; N];
    for j in 0..N {
        let mut pivot = m[(j, j)];
        for k in 0..j {
            pivot -= l[j][k] * w[j][k];
        }
        // Refuses a zero or negative pivot and a NaN one (a non-finite entry ends up as one): one
        // comparison.
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // the negation is what rejects NaN
        if !(pivot > 0.0) {
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

    /// Predicts by `dt_s` (may be negative for a look back; the noise uses |dt|).
    pub fn predict(&mut self, dt_s: f64, q: &ProcessNoise) {
        self.predict_with(dt_s, q, Guard::Now);
    }

    /// [`MotionState::predict`], guarding the covariance as `guard` says.
    pub fn predict_with(&mut self, dt_s: f64, q: &ProcessNoise, guard: Guard) {
        if dt_s == 0.0 || !dt_s.is_finite() {
            return;
        }
        let adt = dt_s.abs();
        match self {
            MotionState::Ctrv { x, p } => {
                let (v, w) = (x[3], x[4]);
                let CtrvStep { nx, ny, yaw1, s0, c0, turn } = ctrv_step(x, dt_s);
                // The Jacobian F is the identity except for rows x and y (columns yaw, speed,
                // yaw rate: `fxy`) and F[yaw][yaw_rate] = dt.
                let fxy = if let Some((s1, c1)) = turn {
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
                add_noise_term(p, &g_accel, q.vehicle_accel_sigma_mps2.powi(2));
                add_noise_term(p, &g_yaw_accel, q.vehicle_yaw_accel_sigma_rps2.powi(2));
                if guard == Guard::Now {
                    guard_covariance(p);
                }
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
                symmetrise(p, guard);
            }
            MotionState::Static { p, .. } => {
                *p += Matrix2::identity() * (q.static_position_walk_mps.powi(2) * adt);
                symmetrise(p, guard);
            }
        }
    }

    /// The mean after a prediction by `dt_s` (see [`Kinematics`]); `yaw_hint_rad` is the heading
    /// of a model without one, as in [`MotionState::as_ctrv`].
    pub fn kinematics_after(&self, dt_s: f64, yaw_hint_rad: f64) -> Kinematics {
        let moves = dt_s != 0.0 && dt_s.is_finite();
        match self {
            MotionState::Ctrv { x, .. } => {
                let (position_m, yaw_rad, (sin, cos)) = if moves {
                    let step = ctrv_step(x, dt_s);
                    let yaw_rad = wrap_angle(step.yaw1);
                    // A turning step already has the sine and cosine of its new yaw: they are
                    // those of `yaw_rad` when the wrap left it alone (`sin_cos` is `(sin, cos)`).
                    let sin_cos = match step.turn {
                        Some(sc) if yaw_rad.to_bits() == step.yaw1.to_bits() => sc,
                        _ => yaw_rad.sin_cos(),
                    };
                    (Vector2::new(step.nx, step.ny), yaw_rad, sin_cos)
                } else {
                    (Vector2::new(x[0], x[1]), x[2], x[2].sin_cos())
                };
                let velocity_mps = Vector2::new(x[3] * cos, x[3] * sin);
                Kinematics { position_m, velocity_mps, yaw_rad }
            }
            MotionState::Cv { x, .. } => {
                let (mut px, mut py) = (x[0], x[1]);
                if moves {
                    px += dt_s * x[2];
                    py += dt_s * x[3];
                }
                let (vx, vy) = (x[2], x[3]);
                let yaw_rad = cv_heading_rad(vx, vy, vx.hypot(vy), yaw_hint_rad);
                Kinematics { position_m: Vector2::new(px, py), velocity_mps: Vector2::new(vx, vy), yaw_rad }
            }
            MotionState::Static { x, .. } => {
                Kinematics { position_m: *x, velocity_mps: Vector2::zeros(), yaw_rad: wrap_angle(yaw_hint_rad) }
            }
        }
    }

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

    /// Applies the covariance guard (after operations with [`Guard::Deferred`]).
    pub fn guard(&mut self) {
        match self {
            MotionState::Ctrv { p, .. } => guard_covariance(p),
            MotionState::Cv { p, .. } => guard_covariance(p),
            MotionState::Static { p, .. } => guard_covariance(p),
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

    /// The EKF functions as they were before their rewrite for fewer instructions, kept verbatim
    /// as the references the rewrite must match bit for bit.
    mod reference {
        use super::super::{Kinematics, Matrix5, Vector5, all_finite};
        use super::super::{Leading, MotionState, ProcessNoise, normalise_ctrv, wrap_angle};
        use nalgebra::{Matrix2, SMatrix, SVector, Vector2};

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
        pub fn update_position_like(
            this: &mut MotionState,
            y: &Vector2<f64>,
            hxy: &Matrix2<f64>,
            r: &Matrix2<f64>,
        ) -> bool {
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
    }

    /// Whether two matrices are equal bit for bit.
    fn same_bits<const R: usize, const C: usize>(a: &SMatrix<f64, R, C>, b: &SMatrix<f64, R, C>) -> bool {
        a.iter().zip(b.iter()).all(|(u, v)| u.to_bits() == v.to_bits())
    }

    /// Whether two motion states are equal bit for bit.
    fn same_state(a: &MotionState, b: &MotionState) -> bool {
        match (a, b) {
            (MotionState::Ctrv { x, p }, MotionState::Ctrv { x: x2, p: p2 }) => same_bits(x, x2) && same_bits(p, p2),
            (MotionState::Cv { x, p }, MotionState::Cv { x: x2, p: p2 }) => same_bits(x, x2) && same_bits(p, p2),
            (MotionState::Static { x, p }, MotionState::Static { x: x2, p: p2 }) => {
                same_bits(x, x2) && same_bits(p, p2)
            }
            _ => false,
        }
    }

    /// A random covariance for the equality tests: well conditioned, near singular, indefinite,
    /// badly scaled or (rarely) with a non-finite or huge entry, so the guard takes every branch.
    fn awkward_cov<const N: usize>(rng: &mut impl rand::Rng, k: usize) -> SMatrix<f64, N, N> {
        let scale = 10f64.powi(rng.random_range(-6..5));
        let mut m = random_spd::<N>(rng) * scale;
        match k % 9 {
            1 => {
                // Rank deficient: a zero column in the factor.
                let mut a = SMatrix::<f64, N, N>::from_fn(|_, _| rng.random_range(-1.0..1.0));
                a.set_column(rng.random_range(0..N), &SVector::<f64, N>::zeros());
                m = a * a.transpose() * scale;
            }
            2 => m = SMatrix::<f64, N, N>::from_fn(|_, _| rng.random_range(-1.0..1.0)) * scale,
            3 => {
                let (i, j) = (rng.random_range(0..N), rng.random_range(0..N));
                let bad = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e300, -0.0][rng.random_range(0..5)];
                m[(i, j)] = bad;
                if rng.random_bool(0.5) {
                    m[(j, i)] = bad;
                }
            }
            4 => m[(rng.random_range(0..N), rng.random_range(0..N))] = rng.random_range(-1e-10..1e-10),
            5 => m = SMatrix::<f64, N, N>::from_diagonal(&m.diagonal()),
            _ => {}
        }
        m
    }

    /// A random motion state of any family for the equality tests.
    fn awkward_state(rng: &mut impl rand::Rng, k: usize) -> MotionState {
        match k % 5 {
            0..=2 => {
                let w = match k % 4 {
                    0 => 0.0,
                    1 => rng.random_range(-2e-4..2e-4),
                    _ => rng.random_range(-1.5..1.5),
                };
                let x = Vector5::new(
                    rng.random_range(-100.0..100.0),
                    rng.random_range(-100.0..100.0),
                    rng.random_range(-4.0..4.0),
                    rng.random_range(-30.0..30.0),
                    w,
                );
                MotionState::Ctrv { x, p: awkward_cov::<5>(rng, k / 5) }
            }
            3 => {
                let x = SVector::<f64, 4>::from_fn(|_, _| rng.random_range(-50.0..50.0));
                MotionState::Cv { x, p: awkward_cov::<4>(rng, k / 5) }
            }
            _ => {
                let x = Vector2::from_fn(|_, _| rng.random_range(-50.0..50.0));
                MotionState::Static { x, p: awkward_cov::<2>(rng, k / 5) }
            }
        }
    }

    #[test]
    fn guard_matches_the_reference_bit_for_bit() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        for k in 0..20_000 {
            let m5 = awkward_cov::<5>(&mut rng, k);
            let (mut a, mut b) = (m5, m5);
            symmetrise(&mut a, Guard::Now);
            reference::repair_in_place(&mut b);
            assert!(same_bits(&a, &b), "{m5}");
            let (mut a, mut b) = (m5, m5);
            guard_covariance(&mut a);
            reference::guard_covariance(&mut b);
            assert!(same_bits(&a, &b), "{m5}");
            assert_eq!(is_positive_definite(&m5), reference::is_positive_definite(&m5), "{m5}");
            let m4 = awkward_cov::<4>(&mut rng, k);
            let (mut a, mut b) = (m4, m4);
            symmetrise(&mut a, Guard::Now);
            reference::repair_in_place(&mut b);
            assert!(same_bits(&a, &b), "{m4}");
        }
    }

    #[test]
    fn predict_and_updates_match_the_reference_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(29);
        let mut checked = 0;
        for k in 0..20_000 {
            let mut s = awkward_state(&mut rng, k);
            let mut s_ref = s.clone();
            // A few steps on the same state, so later steps start from updated covariances.
            for step in 0..4 {
                let dt = match (k + step) % 11 {
                    0 => 0.0,
                    1 => -rng.random_range(0.0..0.5),
                    2 => f64::NAN,
                    _ => rng.random_range(1e-4..1.0),
                };
                let q = ProcessNoise {
                    vehicle_accel_sigma_mps2: rng.random_range(0.0..4.0),
                    vehicle_yaw_accel_sigma_rps2: rng.random_range(0.0..1.0),
                    pedestrian_accel_sigma_mps2: rng.random_range(0.0..2.0),
                    static_position_walk_mps: rng.random_range(0.0..0.1),
                };
                let hint = rng.random_range(-4.0..4.0);
                let kinematics_bits = |m: &Kinematics| {
                    [m.position_m.x, m.position_m.y, m.velocity_mps.x, m.velocity_mps.y, m.yaw_rad].map(f64::to_bits)
                };
                assert_eq!(
                    kinematics_bits(&s.kinematics_after(dt, hint)),
                    kinematics_bits(&reference::kinematics_after(&s_ref, dt, hint)),
                    "kinematics {k}/{step}: {s:?}"
                );
                s.predict(dt, &q);
                reference::predict(&mut s_ref, dt, &q);
                assert!(same_state(&s, &s_ref), "predict {k}/{step}: {s:?} vs {s_ref:?}");
                let r = awkward_cov::<2>(&mut rng, k + step);
                let z = Vector2::from_fn(|_, _| rng.random_range(-100.0..100.0));
                let yaw = rng.random_range(-4.0..4.0);
                let yaw_var = [rng.random_range(1e-6..1.0), 0.0, -1.0, f64::NAN][rng.random_range(0..4)];
                let ok = s.update_position_yaw(&z, &r, yaw, yaw_var);
                let ok_ref = reference::update_position_yaw(&mut s_ref, &z, &r, yaw, yaw_var);
                assert_eq!(ok, ok_ref);
                assert!(same_state(&s, &s_ref), "lidar {k}/{step}: {s:?} vs {s_ref:?}");
                let y = Vector2::from_fn(|_, _| rng.random_range(-20.0..20.0));
                let h = Matrix2::from_fn(|_, _| rng.random_range(-50.0..50.0));
                let r = awkward_cov::<2>(&mut rng, k + 2 * step);
                let ok = s.update_position_like(&y, &h, &r);
                let ok_ref = reference::update_position_like(&mut s_ref, &y, &h, &r);
                assert_eq!(ok, ok_ref);
                assert!(same_state(&s, &s_ref), "camera {k}/{step}: {s:?} vs {s_ref:?}");
                checked += usize::from(ok);
            }
        }
        // Most updates go through (the awkward cases are a minority).
        assert!(checked > 20_000, "{checked}");
    }

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

    /// The CTRV Jacobian by central differences of the state prediction.
    fn numeric_ctrv_jacobian(x0: Vector5, dt: f64) -> Matrix5 {
        let f_of = |x: Vector5| {
            let mut s = MotionState::Ctrv { x, p: Matrix5::identity() };
            s.predict(dt, &noise());
            match s {
                MotionState::Ctrv { x, .. } => x,
                _ => unreachable!("stays ctrv"),
            }
        };
        let mut f_num = Matrix5::zeros();
        for j in 0..5 {
            let mut d = Vector5::zeros();
            d[j] = 1e-6;
            f_num.set_column(j, &((f_of(x0 + d) - f_of(x0 - d)) / 2e-6));
        }
        f_num
    }

    #[test]
    fn ctrv_jacobian_matches_finite_differences() {
        let x0 = Vector5::new(1.0, 2.0, 0.7, 8.0, 0.3);
        let dt = 0.1;
        // Without process noise an identity covariance propagates to F Fᵀ; compare with numeric F.
        let mut s = MotionState::Ctrv { x: x0, p: Matrix5::identity() };
        let q0 = ProcessNoise { vehicle_accel_sigma_mps2: 0.0, vehicle_yaw_accel_sigma_rps2: 0.0, ..noise() };
        s.predict(dt, &q0);
        let MotionState::Ctrv { p, .. } = s else { unreachable!("ctrv") };
        let f_num = numeric_ctrv_jacobian(x0, dt);
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
    fn positive_definite_check_rejects_non_finite_entries() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for k in 0..20_000 {
            let mut m = random_spd::<5>(&mut rng);
            // Off the diagonal: `repair_covariance` clamps the diagonal before the check.
            let i = rng.random_range(0..5);
            let j = (i + rng.random_range(1..5)) % 5;
            let bad = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN][k % 3];
            m[(i, j)] = bad;
            m[(j, i)] = bad;
            assert!(!is_positive_definite(&m), "{m}");
            // What `repair_covariance` makes of it is finite.
            assert!(all_finite(repair_covariance(m).as_slice()), "{m}");
        }
    }

    /// The dense EKF update the structured one replaced (the reference).
    fn dense_update<const N: usize, const M: usize>(
        x: &mut SVector<f64, N>,
        p: &mut SMatrix<f64, N, N>,
        y: &SVector<f64, M>,
        h: &SMatrix<f64, M, N>,
        r: &SMatrix<f64, M, M>,
    ) {
        let ph_t = *p * h.transpose();
        let s_inv = (h * ph_t + r).try_inverse().expect("invertible");
        let k = ph_t * s_inv;
        *x += k * y;
        let i_kh = SMatrix::<f64, N, N>::identity() - k * h;
        *p = repair_covariance(i_kh * *p * i_kh.transpose() + k * r * k.transpose());
    }

    fn random_spd<const N: usize>(rng: &mut impl rand::Rng) -> SMatrix<f64, N, N> {
        let a = SMatrix::<f64, N, N>::from_fn(|_, _| rng.random_range(-1.0..1.0));
        a * a.transpose() + SMatrix::<f64, N, N>::identity() * 0.01
    }

    #[test]
    fn ekf_update_matches_the_dense_joseph_form() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..2_000 {
            let (x0, p0) = (Vector5::from_fn(|_, _| rng.random_range(-5.0..5.0)), random_spd::<5>(&mut rng));
            // A 2×2 Jacobian block (camera) and the identity on three entries (lidar).
            let a = Matrix2::from_fn(|_, _| rng.random_range(-50.0..50.0));
            let (y2, r2) = (Vector2::from_fn(|_, _| rng.random_range(-3.0..3.0)), random_spd::<2>(&mut rng));
            let mut h2 = SMatrix::<f64, 2, 5>::zeros();
            h2.fixed_view_mut::<2, 2>(0, 0).copy_from(&a);
            let (y3, r3) = (SVector::<f64, 3>::from_fn(|_, _| rng.random_range(-3.0..3.0)), random_spd::<3>(&mut rng));
            let h3 = SMatrix::<f64, 3, 5>::identity();
            let (mut x, mut p, mut x_ref, mut p_ref) = (x0, p0, x0, p0);
            assert!(ekf_update_leading(&mut x, &mut p, &y2, Leading::Matrix(&a), &r2, Guard::Now));
            dense_update(&mut x_ref, &mut p_ref, &y2, &h2, &r2);
            assert!(ekf_update_leading(&mut x, &mut p, &y3, Leading::Identity, &r3, Guard::Now));
            dense_update(&mut x_ref, &mut p_ref, &y3, &h3, &r3);
            assert!((x - x_ref).norm() <= 1e-9 * (1.0 + x_ref.norm()), "{x} vs {x_ref}");
            assert!((p - p_ref).norm() <= 1e-9 * (1.0 + p_ref.norm()), "{p} vs {p_ref}");
        }
    }

    #[test]
    fn a_deferred_guard_gives_the_guarded_result_when_the_guard_has_nothing_to_mend() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
        let q = noise();
        for k in 0..3_000 {
            // Settled states of every family (the guard is a no-op on them), then a batch: a
            // prediction, a lidar-like and a camera-like update.
            let family = [MotionFamily::Vehicle, MotionFamily::Pedestrian, MotionFamily::Static][k % 3];
            let pos = Vector2::from_fn(|_, _| rng.random_range(-50.0..50.0));
            let mut s =
                MotionState::new(family, pos, Matrix2::identity() * 0.04, rng.random_range(-3.0..3.0), 2.0, 0.3);
            for _ in 0..5 {
                s.predict(0.1, &q);
                let z = s.position() + Vector2::from_fn(|_, _| rng.random_range(-0.2..0.2));
                s.update_position_yaw(&z, &(Matrix2::identity() * 0.01), s.yaw(0.0), 0.01);
            }
            let (mut now, mut deferred) = (s.clone(), s);
            let dt = rng.random_range(0.01..0.2);
            let z = now.position() + Vector2::from_fn(|_, _| rng.random_range(-0.3..0.3));
            let (yaw, r) = (now.yaw(0.0) + rng.random_range(-0.1..0.1), Matrix2::identity() * 0.02);
            let y = Vector2::from_fn(|_, _| rng.random_range(-5.0..5.0));
            let hxy = Matrix2::from_fn(|_, _| rng.random_range(-40.0..40.0));
            let r_px = Matrix2::identity() * 9.0;
            now.predict(dt, &q);
            assert!(now.update_position_yaw(&z, &r, yaw, 0.01));
            assert!(now.update_position_like(&y, &hxy, &r_px));
            deferred.predict_with(dt, &q, Guard::Deferred);
            assert!(deferred.update_position_yaw_with(&z, &r, yaw, 0.01, Guard::Deferred));
            assert!(deferred.update_position_like_with(&y, &hxy, &r_px, Guard::Deferred));
            deferred.guard();
            assert!(same_state(&now, &deferred), "{now:?} vs {deferred:?}");
        }
    }

    #[test]
    fn ctrv_covariance_propagation_matches_the_dense_product() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let q0 = ProcessNoise { vehicle_accel_sigma_mps2: 0.0, vehicle_yaw_accel_sigma_rps2: 0.0, ..noise() };
        for k in 0..200 {
            // Turning either way (the straight branch only fills the Jacobian differently: its
            // yaw-rate column is the turning model's limit, not the derivative of its own
            // prediction), away from the wrap of the heading, where the numeric Jacobian jumps.
            let w = if k % 2 == 0 { rng.random_range(0.05..0.5) } else { -rng.random_range(0.05..0.5) };
            let x0 = Vector5::new(1.0, -2.0, rng.random_range(-2.5..2.5), rng.random_range(0.0..20.0), w);
            let p0 = random_spd::<5>(&mut rng);
            let dt = rng.random_range(0.01..0.3);
            let f = numeric_ctrv_jacobian(x0, dt);
            let mut s = MotionState::Ctrv { x: x0, p: p0 };
            s.predict(dt, &q0);
            let MotionState::Ctrv { p, .. } = s else { unreachable!("ctrv") };
            let expected = repair_covariance(f * p0 * f.transpose());
            assert!((p - expected).norm() <= 1e-6 * (1.0 + expected.norm()), "{p} vs {expected}");
        }
    }

    #[test]
    fn cv_covariance_propagation_matches_the_dense_product() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let q0 = ProcessNoise { pedestrian_accel_sigma_mps2: 0.0, ..noise() };
        let p0 = random_spd::<4>(&mut rng);
        let mut s = MotionState::Cv { x: SVector::<f64, 4>::new(1.0, 2.0, 0.5, -1.5), p: p0 };
        s.predict(0.2, &q0);
        let mut f = SMatrix::<f64, 4, 4>::identity();
        f[(0, 2)] = 0.2;
        f[(1, 3)] = 0.2;
        let MotionState::Cv { x, p } = s else { unreachable!("cv") };
        assert!((x - SVector::<f64, 4>::new(1.1, 1.7, 0.5, -1.5)).norm() < 1e-12);
        let expected = repair_covariance(f * p0 * f.transpose());
        assert!((p - expected).norm() <= 1e-12 * (1.0 + expected.norm()), "{p} vs {expected}");
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
