//! Ground-plane neighbour queries for scoring: which points lie near a given point, without
//! comparing every pair.
//!
//! [`GridIndex`] sorts points into columns once; a query then looks only at the columns its disc
//! touches (a table look-up each, then a short scan, or a binary search in a long column).
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

/// Most columns per point (plus a few) that a [`GridIndex`] keeps: a wider spread of points gets
/// wider columns, so the column table stays about as small as the points.
const COLUMNS_PER_POINT: usize = 2;

/// Most points of a column that is scanned whole by queries rather than sorted for a binary
/// search: sorting short columns costs more than scanning them.
const SCANNED_COLUMN: usize = 8;

/// Points of the ground plane in columns (vertical strips) of twice the cell width, for "which
/// points lie within r of p" queries that look only at the few columns around p and, in each, at
/// the points whose north coordinate is within r (a short column is scanned, a long one is sorted
/// by north coordinate and binary-searched).
///
/// The columns are a dense table indexed from the westmost one (no search to find a column), and
/// building it is a counting sort of the points by column; the table is kept between
/// [`GridIndex::rebuild`]s, so a grid per frame allocates nothing once warm.
#[derive(Clone, Debug, Default)]
pub(crate) struct GridIndex {
    /// Column width [m]; infinite puts every point in one column.
    column_m: f64,
    /// Column of the westmost point.
    first_column: i64,
    /// Start in `entries` of each column from `first_column` on, then the end of the last.
    column_starts: Vec<usize>,
    /// (north [m], index of the point in the caller's slice) of every finite point, by column;
    /// within a column in point order, or, in a column of more than [`SCANNED_COLUMN`] points,
    /// ascending by north coordinate, then index.
    entries: Vec<(f64, usize)>,
    /// Column of each entry while building (kept for its allocation).
    columns: Vec<i64>,
    /// (east, north) [m] and index of each finite point while building (kept for its allocation).
    points: Vec<([f64; 2], usize)>,
}

impl GridIndex {
    /// Indexes `points` (east, north) [m] for queries of radius about `cell_m` (any value is
    /// correct). Points with a non-finite coordinate are left out: they are within no finite
    /// distance of anything.
    pub(crate) fn new(points: impl IntoIterator<Item = [f64; 2]>, cell_m: f64) -> Self {
        let mut index = GridIndex::default();
        index.rebuild(points, cell_m);
        index
    }

    /// Makes this the index of `points`, as [`GridIndex::new`] does, reusing its buffers.
    pub(crate) fn rebuild(&mut self, points: impl IntoIterator<Item = [f64; 2]>, cell_m: f64) {
        // The finite points and their spread from west to east, in one pass.
        self.points.clear();
        let (mut west_m, mut east_m) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, p) in points.into_iter().enumerate() {
            if p[0].is_finite() && p[1].is_finite() {
                west_m = if p[0] < west_m { p[0] } else { west_m };
                east_m = if p[0] > east_m { p[0] } else { east_m };
                self.points.push((p, i));
            }
        }
        // Columns twice the cell: a query of about that radius then mostly spans two columns, not
        // three (each column costs a look-up and a scan; the visits stay as few, since north
        // coordinates are compared exactly).
        let mut column_m = if cell_m > 0.0 && cell_m.is_finite() { 2.0 * cell_m } else { f64::INFINITY };
        // Widen the columns when the points spread over many more of them than there are points
        // (an infinite spread gives one column).
        let most = COLUMNS_PER_POINT * self.points.len() + 8;
        if (east_m - west_m) / column_m > most as f64 {
            column_m = (east_m - west_m) / most as f64;
        }
        self.column_m = column_m;
        self.columns.clear();
        self.columns.extend(self.points.iter().map(|(p, _)| cell_of(p[0], column_m)));
        // The westmost and eastmost points' columns (`cell_of` is monotonic).
        let (first, last) = (cell_of(west_m, column_m), cell_of(east_m, column_m));
        self.first_column = first;
        // The spread is about `most` columns at most (more only by the rounding of the coordinates
        // divided by the width, a few thousand at worst near the saturation limit; the truncation
        // only merges columns), so the difference is small; no point, no column.
        let count = if self.points.is_empty() { 0 } else { last.abs_diff(first) as usize + 1 };
        // Counting sort by column: count, then starts, then place in point order.
        self.column_starts.clear();
        self.column_starts.resize(count + 1, 0);
        for &c in &self.columns {
            self.column_starts[(c - first) as usize + 1] += 1;
        }
        for k in 1..=count {
            self.column_starts[k] += self.column_starts[k - 1];
        }
        // Every slot is written below: only slots beyond the last frame's need a value first.
        self.entries.truncate(self.points.len());
        self.entries.resize(self.points.len(), (0.0, 0));
        for (&c, &(p, i)) in self.columns.iter().zip(&self.points) {
            // Filling moves each column's start to the next column's; shifted back below.
            let slot = &mut self.column_starts[(c - first) as usize];
            self.entries[*slot] = (p[1], i);
            *slot += 1;
        }
        self.column_starts.copy_within(0..count, 1);
        if let Some(start) = self.column_starts.first_mut() {
            *start = 0;
        }
        // Long columns are sorted by north coordinate (then index, for a total order) for a binary
        // search; short ones, the usual, stay in point order and are scanned whole.
        for k in 0..count {
            let column = &mut self.entries[self.column_starts[k]..self.column_starts[k + 1]];
            if column.len() > SCANNED_COLUMN {
                column.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            }
        }
    }

    /// Calls `visit` with the index of every point in the columns that the disc of `radius_m`
    /// around `p` touches (widened by a hair) whose north coordinate is within that widened
    /// radius of `p`'s, so with every point whose distance to `p` (as `hypot` computes it) is at
    /// most `radius_m`, and some farther ones: callers check the distance. No particular order.
    pub(crate) fn for_each_near(&self, p: [f64; 2], radius_m: f64, mut visit: impl FnMut(usize)) {
        if !(p[0].is_finite() && p[1].is_finite() && radius_m >= 0.0) || self.column_starts.len() < 2 {
            return;
        }
        let reach_m = radius_m + SQUARED_SLACK * (1.0 + radius_m + p[0].abs() + p[1].abs());
        let last = self.first_column + (self.column_starts.len() - 2) as i64;
        let x0 = cell_of(p[0] - reach_m, self.column_m).max(self.first_column);
        let x1 = cell_of(p[0] + reach_m, self.column_m).min(last);
        let (south_m, north_m) = (p[1] - reach_m, p[1] + reach_m);
        for x in x0..=x1 {
            let k = (x - self.first_column) as usize;
            let column = &self.entries[self.column_starts[k]..self.column_starts[k + 1]];
            if column.len() > SCANNED_COLUMN {
                let from = column.partition_point(|e| e.0 < south_m);
                column[from..].iter().take_while(|e| e.0 <= north_m).for_each(|e| visit(e.1));
            } else {
                column.iter().filter(|e| e.0 >= south_m && e.0 <= north_m).for_each(|e| visit(e.1));
            }
        }
    }
}

/// The cell (column) of coordinate `v_m`. Only monotonicity matters (a range of coordinates maps
/// to a range of cells), so truncation does: the cells next to 0 are merely twice as wide, far-out
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

    /// The columns against a scan of every point, on layouts that exercise the column table: one
    /// column, widened columns (far outliers, huge or saturating coordinates), a rebuilt index.
    #[test]
    fn columns_find_what_a_scan_finds() {
        // A small linear congruential generator: reproducible pseudo-random values in [0, 1).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut index = GridIndex::default();
        for layout in 0..6 {
            let points: Vec<[f64; 2]> = (0..150)
                .map(|i| {
                    let (x, y) = (random() * 300.0 - 150.0, random() * 300.0 - 150.0);
                    match layout {
                        0 => [x, y],
                        1 => [7.25, y],
                        2 if i % 10 == 0 => [x * 1e7, y],
                        3 => [x * 1e17, y * 1e17],
                        4 => [x * 1e25 + 1e20, y],
                        _ => [(x * 0.02).round(), (y * 0.02).round()],
                    }
                })
                .collect();
            for cell in [2.0, 0.5, 30.0] {
                index.rebuild(points.iter().copied(), cell);
                let queries =
                    points.iter().copied().chain((0..40).map(|_| [random() * 400.0 - 200.0, random() * 400.0 - 200.0]));
                for q in queries {
                    for radius in [2.0, 0.0, 25.0, 1e18] {
                        let expected: Vec<usize> = (0..points.len())
                            .filter(|&i| (points[i][0] - q[0]).hypot(points[i][1] - q[1]) <= radius)
                            .collect();
                        assert_eq!(
                            near(&index, &points, q, radius),
                            expected,
                            "layout {layout} cell {cell} radius {radius} at {q:?}"
                        );
                    }
                }
            }
        }
        index.rebuild(std::iter::empty(), 2.0);
        assert!(near(&index, &[], [0.0, 0.0], 1e9).is_empty());
    }
}
