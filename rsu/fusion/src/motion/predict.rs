//! The models' predictions: the CTRV, CV and static means moved by a time step, their
//! covariances propagated through the models' Jacobians (only the non-zero entries multiplied)
//! plus process noise, and the mean alone for polls that need no covariance. Kept apart from the
//! updates: this is the only place where time enters the filter.

use nalgebra::{Matrix2, SMatrix, Vector2};

use super::guard::{Guard, guard_covariance, symmetrise};
use super::{Matrix5, MotionState, ProcessNoise, Vector5, cv_heading_rad, wrap_angle};

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

impl MotionState {
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
}
