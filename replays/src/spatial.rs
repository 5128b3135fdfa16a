//! Ground-plane neighbour queries for scoring: which points lie near a given point, without
//! comparing every pair.
//!
//! [`GridIndex`] buckets points in square cells once; a query then looks only at the cells its
//! disc touches (a few binary searches, then a short scan).
//! [`compare_hypot`] decides `dx.hypot(dy)` against a limit from the squared distance and calls
//! `hypot` only when the two are too close to tell apart, so every decision and every distance
//! kept is bit-for-bit the one a plain `hypot` gives.

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

/// Points of the ground plane bucketed in square cells, for "which points lie within r of p"
/// queries that look at the few cells around p instead of at every point.
#[derive(Clone, Debug)]
pub(crate) struct GridIndex {
    /// Cell side [m]; infinite puts every point in one cell.
    cell_m: f64,
    /// (cell column, cell row, index of the point in the caller's slice), ascending.
    cells: Vec<(i64, i64, usize)>,
    /// (cell column, start in `cells`) of each column that holds points, ascending.
    columns: Vec<(i64, usize)>,
}

impl GridIndex {
    /// Indexes `points` (east, north) [m] in cells of `cell_m` (best about the usual query
    /// radius; any value is correct). Points with a non-finite coordinate are left out: they are
    /// within no finite distance of anything.
    pub(crate) fn new(points: impl IntoIterator<Item = [f64; 2]>, cell_m: f64) -> Self {
        let cell_m = if cell_m > 0.0 && cell_m.is_finite() { cell_m } else { f64::INFINITY };
        let mut cells: Vec<(i64, i64, usize)> = points
            .into_iter()
            .enumerate()
            .filter(|(_, p)| p[0].is_finite() && p[1].is_finite())
            .map(|(i, p)| (cell_of(p[0], cell_m), cell_of(p[1], cell_m), i))
            .collect();
        cells.sort_unstable();
        Self::from_cells(cell_m, cells)
    }

    fn from_cells(cell_m: f64, cells: Vec<(i64, i64, usize)>) -> Self {
        let mut columns: Vec<(i64, usize)> = Vec::new();
        for (start, cell) in cells.iter().enumerate() {
            if columns.last().is_none_or(|&(x, _)| x != cell.0) {
                columns.push((cell.0, start));
            }
        }
        GridIndex { cell_m, cells, columns }
    }

    /// Calls `visit` with the index of every point in the cells that the disc of `radius_m`
    /// around `p` touches (widened by a hair), so with every point whose distance to `p` (as
    /// `hypot` computes it) is at most `radius_m`, and some farther ones: callers check the
    /// distance. No particular order.
    pub(crate) fn for_each_near(&self, p: [f64; 2], radius_m: f64, mut visit: impl FnMut(usize)) {
        if !(p[0].is_finite() && p[1].is_finite() && radius_m >= 0.0) {
            return;
        }
        let reach_m = radius_m + SQUARED_SLACK * (1.0 + radius_m + p[0].abs() + p[1].abs());
        let (x0, x1) = (cell_of(p[0] - reach_m, self.cell_m), cell_of(p[0] + reach_m, self.cell_m));
        let (y0, y1) = (cell_of(p[1] - reach_m, self.cell_m), cell_of(p[1] + reach_m, self.cell_m));
        // Column by column (only the columns that hold points), the rows within reach.
        let first = self.columns.partition_point(|&(x, _)| x < x0);
        for (c, &(x, start)) in self.columns.iter().enumerate().skip(first) {
            if x > x1 {
                break;
            }
            let end = self.columns.get(c + 1).map_or(self.cells.len(), |&(_, next)| next);
            let column = &self.cells[start..end];
            let from = column.partition_point(|cell| cell.1 < y0);
            column[from..].iter().take_while(|cell| cell.1 <= y1).for_each(|cell| visit(cell.2));
        }
    }
}

/// The cell of coordinate `v_m`. Only monotonicity matters (a range of coordinates maps to a
/// range of cells), so truncation does: the cells next to 0 are merely twice as wide, far-out
/// ones saturate, and an infinite cell side makes one cell.
fn cell_of(v_m: f64, cell_m: f64) -> i64 {
    (v_m / cell_m) as i64
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

    /// Indices within `radius` of `q` found through the index, ascending.
    fn near(index: &GridIndex, points: &[[f64; 2]], q: [f64; 2], radius: f64) -> Vec<usize> {
        let mut found = Vec::new();
        index.for_each_near(q, radius, |i| {
            if hypot_within(points[i][0] - q[0], points[i][1] - q[1], radius).is_some() {
                found.push(i);
            }
        });
        found.sort_unstable();
        found
    }

    #[test]
    fn every_point_within_the_radius_is_found() {
        let points: Vec<[f64; 2]> =
            (0..400).map(|i| [(i as f64 * 7.31).sin() * 20.0, (i as f64 * 3.7).cos() * 20.0]).collect();
        let mut with_nan = points.clone();
        with_nan.push([f64::NAN, 0.0]);
        for cell in [2.0, 0.3, 50.0, 0.0, f64::NAN] {
            let index = GridIndex::new(with_nan.clone(), cell);
            for q in points.iter().chain(&[[-2.0, -2.0], [1e6, 0.0], [0.0, -1e6]]) {
                for radius in [2.0, 1.0, 0.0, 7.5, 1e9, f64::INFINITY] {
                    let expected: Vec<usize> = (0..points.len())
                        .filter(|&i| (points[i][0] - q[0]).hypot(points[i][1] - q[1]) <= radius)
                        .collect();
                    assert_eq!(near(&index, &points, *q, radius), expected, "cell {cell} radius {radius} at {q:?}");
                }
            }
            assert!(near(&index, &points, [f64::NAN, 0.0], 2.0).is_empty());
        }
    }
}
