//! Ground-plane distances decided exactly as `f64::hypot` decides them, but cheaply:
//! [`compare_hypot`] decides `dx.hypot(dy)` against a limit from the squared distance and calls
//! `hypot` only when the two are too close to tell apart, so every gate decision and every
//! distance kept is bit-for-bit the one a plain `hypot` gives.

use std::cmp::Ordering;

/// Relative slack when deciding a distance from its square: far wider than the few ulps by which
/// `dx * dx + dy * dy` and `hypot(dx, dy)²` can differ.
const SQUARED_SLACK: f64 = 1e-9;

/// How `dx.hypot(dy)` compares with `limit_m` (`None` when either is NaN), exactly as
/// `dx.hypot(dy).partial_cmp(&limit_m)` would; `hypot` itself runs only near the boundary.
pub(crate) fn compare_hypot(dx_m: f64, dy_m: f64, limit_m: f64) -> Option<Ordering> {
    // Squares of limits outside this range may underflow or overflow: decide those with hypot.
    if limit_m > 1e-100 && limit_m < 1e100 {
        let squared_m2 = dx_m * dx_m + dy_m * dy_m;
        let limit_m2 = limit_m * limit_m;
        if squared_m2 < limit_m2 * (1.0 - SQUARED_SLACK) {
            return Some(Ordering::Less);
        }
        if squared_m2 > limit_m2 * (1.0 + SQUARED_SLACK) {
            return Some(Ordering::Greater);
        }
    }
    dx_m.hypot(dy_m).partial_cmp(&limit_m)
}

/// `dx.hypot(dy)` when it is at most `limit_m`, else `None`: the same as
/// `Some(dx.hypot(dy)).filter(|d| *d <= limit_m)`, without `hypot` for points clearly outside.
pub(crate) fn hypot_within(dx_m: f64, dy_m: f64, limit_m: f64) -> Option<f64> {
    if compare_hypot(dx_m, dy_m, limit_m) == Some(Ordering::Greater) {
        return None;
    }
    let d_m = dx_m.hypot(dy_m);
    (d_m <= limit_m).then_some(d_m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_hypot_agrees_with_hypot_at_the_boundary() {
        let limit = 2.0_f64;
        // Points on, just inside and just outside the circle, and far away.
        for k in 0..2000 {
            let angle = k as f64 * 0.0031;
            for scale in [1.0 - 1e-15, 1.0 - 2e-16, 1.0, 1.0 + 2e-16, 1.0 + 1e-15, 0.5, 3.0] {
                let (dx, dy) = (limit * scale * angle.cos(), limit * scale * angle.sin());
                assert_eq!(compare_hypot(dx, dy, limit), dx.hypot(dy).partial_cmp(&limit), "{dx} {dy}");
                assert_eq!(hypot_within(dx, dy, limit), Some(dx.hypot(dy)).filter(|d| *d <= limit));
            }
        }
        assert_eq!(compare_hypot(f64::NAN, 0.0, 1.0), None);
        assert_eq!(compare_hypot(f64::INFINITY, 0.0, 1.0), Some(Ordering::Greater));
        assert_eq!(compare_hypot(1e-300, 0.0, 0.0), Some(Ordering::Greater));
        assert_eq!(compare_hypot(0.0, 0.0, -1.0), Some(Ordering::Greater));
        assert_eq!(hypot_within(3.0, 4.0, 5.0), Some(5.0));
    }
}
