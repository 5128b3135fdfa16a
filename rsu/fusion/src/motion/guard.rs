//! The covariance guard: symmetrisation, a floor and ceiling on the diagonal, a
//! positive-definiteness check and a diagonal fallback, so that no rounding in a prediction or
//! update leaves a covariance the next update cannot factorise. Kept apart because both the
//! predictions and the updates use it, either at once or deferred to the end of a batch
//! ([`Guard`]).

use nalgebra::SMatrix;

use super::MotionState;

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

/// Symmetrises a covariance and keeps it positive definite (see [`guard_covariance`]).
pub(super) fn repair_covariance<const N: usize>(mut p: SMatrix<f64, N, N>) -> SMatrix<f64, N, N> {
    symmetrise(&mut p, Guard::Now);
    p
}

/// (P + Pᵀ) / 2 in place, one sum per pair of mirrored entries, then the covariance guard as
/// `guard` says.
pub(super) fn symmetrise<const N: usize>(p: &mut SMatrix<f64, N, N>, guard: Guard) {
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
pub(super) fn guard_covariance<const N: usize>(s: &mut SMatrix<f64, N, N>) {
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
pub(super) fn all_finite(values: &[f64]) -> bool {
    const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
    values.iter().fold(0u64, |acc, v| acc | u64::from(v.to_bits() & EXPONENT == EXPONENT)) == 0
}

/// Whether the symmetric `m` (read from its lower triangle) is positive definite up to rounding:
/// every pivot of its `L D Lᵀ` factorisation is positive. The same test as a Cholesky
/// factorisation without its square roots (whose latency is most of what a 5×5 check costs) and
/// without keeping the factor.
#[allow(clippy::needless_range_loop)] // index loops mirror the factorisation's formulas
pub(super) fn is_positive_definite<const N: usize>(m: &SMatrix<f64, N, N>) -> bool {
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
    /// Applies the covariance guard (after operations with [`Guard::Deferred`]).
    pub fn guard(&mut self) {
        match self {
            MotionState::Ctrv { p, .. } => guard_covariance(p),
            MotionState::Cv { p, .. } => guard_covariance(p),
            MotionState::Static { p, .. } => guard_covariance(p),
        }
    }
}
