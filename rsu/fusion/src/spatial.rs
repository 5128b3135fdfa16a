//! Ground-plane neighbour queries: which points lie near a given point, or near each other,
//! without comparing every pair.
//!
//! [`SpatialGrid`] buckets points into square cells and answers two kinds of query:
//! [`SpatialGrid::for_each_near`] visits the items of the cells a disc touches, in a fixed order
//! (the tracker's gating, where the order is part of its determinism; a disc of many cells costs
//! a pass over the items instead of a lookup per cell), and [`SpatialGrid::for_each_within`]
//! visits a superset of the items within any distance, as `hypot` measures it (the scorer of the
//! replays, whose gates come from a config).
//! [`close_pairs`] enumerates the pairs of points in the same or adjacent cells.

/// Most cells a [`SpatialGrid::for_each_near`] query on a sparse grid looks up one row at a time
/// along an axis; a larger disc filters the sorted items in one pass instead (same items, same
/// order).
const MAX_QUERY_CELLS: i64 = 64;

/// Relative widening of a [`SpatialGrid::for_each_within`] disc: far wider than the few ulps by
/// which a coordinate difference and its cell bounds can be rounded.
const RIM_SLACK: f64 = 1e-9;

/// Points of the ground plane bucketed into square cells, for neighbourhood queries. Built by a
/// counting sort into a dense array of cells over the points' bounding box (or, when the points
/// are spread too thinly for that, into a sorted vector), so queries are deterministic and need
/// no hashing.
#[derive(Clone, Debug, Default)]
pub struct SpatialGrid {
    /// Cells per metre (the reciprocal of the cell size, so a lookup multiplies).
    cells_per_m: f64,
    /// Sparse layout: (cell x, cell y, item index), sorted.
    entries: Vec<(i64, i64, u32)>,
    /// Dense layout: the bounding box of occupied cells (first cell, extent in cells) and, per
    /// cell (x-major), the start of its items in `items`; empty `starts` when sparse.
    x0: i64,
    y0: i64,
    width: i64,
    height: i64,
    starts: Vec<u32>,
    items: Vec<u32>,
    /// Scratch for a rebuild: (cell x, cell y, item index).
    cells: Vec<(i64, i64, u32)>,
}

impl SpatialGrid {
    /// An empty grid with square cells of `cell_m` metres (at least 0.5 m).
    pub fn new(cell_m: f64) -> Self {
        let cell_m = if cell_m.is_finite() { cell_m.max(0.5) } else { 0.5 };
        SpatialGrid { cells_per_m: 1.0 / cell_m, ..SpatialGrid::default() }
    }

    fn cell_of(&self, v: f64) -> i64 {
        // Clamped so absurd coordinates still land in a (far away) cell (NaN, which callers
        // never pass, in the lowest). Same as `floor().clamp(..) as i64` without the libm call:
        // shifted to be positive, truncation is the floor, and the integer conversion of a value
        // known to be in range needs no saturation.
        const SHIFT: f64 = 2.0e9;
        #[allow(clippy::manual_clamp)] // unlike `clamp`, sends NaN to a bound (never NaN here)
        let q = (v * self.cells_per_m).max(-1.0e9).min(1.0e9) + SHIFT;
        q as u32 as i64 - SHIFT as i64
    }

    /// Rebuilds the grid from item positions (x, y) [m]; an item's index is its position in the
    /// slice. Non-finite positions are left out.
    pub fn rebuild(&mut self, positions: impl Iterator<Item = (f64, f64)>) {
        let mut cells = std::mem::take(&mut self.cells);
        cells.clear();
        for (i, (x, y)) in positions.enumerate() {
            if x.is_finite() && y.is_finite() {
                cells.push((self.cell_of(x), self.cell_of(y), i as u32));
            }
        }
        self.entries.clear();
        self.starts.clear();
        self.items.clear();
        let (mut x0, mut x1, mut y0, mut y1) = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
        for &(cx, cy, _) in &cells {
            x0 = x0.min(cx);
            x1 = x1.max(cx);
            y0 = y0.min(cy);
            y1 = y1.max(cy);
        }
        let n = cells.len() as u128;
        let extent = if cells.is_empty() { 0 } else { (x1 - x0 + 1) as u128 * (y1 - y0 + 1) as u128 };
        if !cells.is_empty() && extent <= 16 * n + 4096 {
            // Dense: counting sort by cell; items keep ascending index order within a cell.
            let (width, height) = (x1 - x0 + 1, y1 - y0 + 1);
            (self.x0, self.y0, self.width, self.height) = (x0, y0, width, height);
            let n_cells = (width * height) as usize;
            // Counts per cell, turned into the end of each cell's run, then filled backwards so
            // each entry ends at the start of its run.
            self.starts.resize(n_cells + 1, 0);
            for &(cx, cy, _) in &cells {
                self.starts[((cx - x0) * height + (cy - y0)) as usize] += 1;
            }
            for c in 1..n_cells {
                self.starts[c] += self.starts[c - 1];
            }
            self.starts[n_cells] = cells.len() as u32;
            self.items.resize(cells.len(), 0);
            for &(cx, cy, i) in cells.iter().rev() {
                let c = ((cx - x0) * height + (cy - y0)) as usize;
                self.starts[c] -= 1;
                self.items[self.starts[c] as usize] = i;
            }
        } else {
            // Sparse: the scratch cells, sorted, become the entries (the old entries' buffer is
            // the next rebuild's scratch).
            cells.sort_unstable();
            std::mem::swap(&mut self.entries, &mut cells);
        }
        self.cells = cells;
    }

    /// Appends to `out` the items in every cell that a disc of `radius_m` around (x, y) touches
    /// (a superset of the items within the disc), in ascending index order per cell.
    pub fn query(&self, x: f64, y: f64, radius_m: f64, out: &mut Vec<usize>) {
        self.for_each_near(x, y, radius_m, |i| out.push(i));
    }

    /// Calls `visit` with the items [`SpatialGrid::query`] would return, in the same order,
    /// without collecting them. Any finite radius (nothing for a non-finite point or radius).
    #[inline]
    pub fn for_each_near(&self, x: f64, y: f64, radius_m: f64, mut visit: impl FnMut(usize)) {
        if !(x.is_finite() && y.is_finite() && radius_m.is_finite()) {
            return;
        }
        let r = radius_m.max(0.0);
        let (x0, x1) = (self.cell_of(x - r), self.cell_of(x + r));
        let (y0, y1) = (self.cell_of(y - r), self.cell_of(y + r));
        if self.starts.is_empty() && ((x1 - x0) > MAX_QUERY_CELLS || (y1 - y0) > MAX_QUERY_CELLS) {
            // Too many cells to look up one row at a time: one pass over the sorted entries
            // visits the same items in the same (cell, index) order.
            for e in self.entries.iter().filter(|e| (x0..=x1).contains(&e.0) && (y0..=y1).contains(&e.1)) {
                visit(e.2 as usize);
            }
            return;
        }
        if !self.starts.is_empty() {
            // Dense: the loops below run over the grid's cells only, whatever the disc.
            let (gx1, gy1) = (self.x0 + self.width - 1, self.y0 + self.height - 1);
            let (y_lo, y_hi) = (y0.max(self.y0), y1.min(gy1));
            if y_lo > y_hi {
                return;
            }
            for cx in x0.max(self.x0)..=x1.min(gx1) {
                // The cells (cx, y_lo..=y_hi) are adjacent, so their items form one run.
                let row = (cx - self.x0) * self.height - self.y0;
                let (a, b) =
                    (self.starts[(row + y_lo) as usize] as usize, self.starts[(row + y_hi) as usize + 1] as usize);
                for &i in &self.items[a..b] {
                    visit(i as usize);
                }
            }
            return;
        }
        // Row by row: the cells (cx, y0..=y1) are adjacent in the sorted entries.
        for cx in x0..=x1 {
            let start = self.entries.partition_point(|e| (e.0, e.1) < (cx, y0));
            for e in self.entries[start..].iter().take_while(|e| e.0 == cx && e.1 <= y1) {
                visit(e.2 as usize);
            }
        }
    }

    /// Calls `visit` with every item whose distance to (x, y), as `f64::hypot` computes it from
    /// the coordinate differences, is at most `radius_m`, and with some farther ones (callers
    /// check the distance); any radius, each item once, in no particular order. Nothing for a
    /// non-finite point or a negative or NaN radius.
    ///
    /// The disc is widened by a hair so that rounding in the coordinate differences cannot hide
    /// an item on its rim; a disc too large for [`SpatialGrid::for_each_near`] visits every item.
    pub fn for_each_within(&self, x: f64, y: f64, radius_m: f64, mut visit: impl FnMut(usize)) {
        if !(x.is_finite() && y.is_finite() && radius_m >= 0.0) {
            return;
        }
        let reach_m = radius_m + RIM_SLACK * (1.0 + radius_m + x.abs() + y.abs());
        let span = |v: f64| self.cell_of(v + reach_m) - self.cell_of(v - reach_m);
        if reach_m.is_finite() && span(x) <= MAX_QUERY_CELLS && span(y) <= MAX_QUERY_CELLS {
            self.for_each_near(x, y, reach_m, visit);
        } else if self.starts.is_empty() {
            self.entries.iter().for_each(|e| visit(e.2 as usize));
        } else {
            self.items.iter().for_each(|&i| visit(i as usize));
        }
    }
}

/// Calls `visit(i, j)` (i < j) for every pair of points that may lie within `cell_m` of each
/// other: each pair in the same or in adjacent square cells of `cell_m` (a superset of the pairs
/// within `cell_m`; the caller tests the distance), each pair once. Non-finite points, points
/// more than 2²⁰ cells from the origin and points from index 2²² on are left out. `keys` is
/// scratch space.
///
/// The points are sorted by cell (one integer key each: column, row, index); a point then looks
/// at the rest of its own cell, the cell above it in its column, and three cells of the next
/// column: runs of the sorted keys, found by a pointer that only moves forward. Cheaper than
/// building a [`SpatialGrid`] when the points are few or spread over a large area, and the order
/// of the calls depends only on the points.
// Kept out of line: it is one self-contained pass per cycle, and inlining it into the duplicate
// search only grows that loop's code.
#[inline(never)]
pub fn close_pairs(points: &[(f64, f64)], cell_m: f64, keys: &mut Vec<u64>, mut visit: impl FnMut(usize, usize)) {
    keys.clear();
    if !(cell_m.is_finite() && cell_m > 0.0) {
        return;
    }
    let per_m = 1.0 / cell_m;
    // Key bits: column (21), row (21), index (22); cells offset by 2²⁰ to sort as unsigned.
    const INDEX_BITS: u32 = 22;
    const CELL_BITS: u32 = 21;
    const OFFSET: i64 = 1 << (CELL_BITS - 1);
    let cell = |v: f64| {
        let q = v * per_m;
        // floor() without the libm call (the range test also drops NaN).
        (q.abs() < OFFSET as f64).then(|| {
            let t = q as i64;
            ((if (t as f64) > q { t - 1 } else { t }) + OFFSET) as u64
        })
    };
    for (i, &(x, y)) in points.iter().enumerate().take(1 << INDEX_BITS) {
        if let (Some(cx), Some(cy)) = (cell(x), cell(y)) {
            keys.push((((cx << CELL_BITS) | cy) << INDEX_BITS) | i as u64);
        }
    }
    keys.sort_unstable();
    let cell_key = |cx: u64, cy: u64| ((cx << CELL_BITS) | cy) << INDEX_BITS;
    let index = |k: u64| (k & ((1 << INDEX_BITS) - 1)) as usize;
    // Keys grow with the point looked from, and so does the start of its run in the next column:
    // `next` only moves forward.
    let mut next = 0;
    for (a, &key) in keys.iter().enumerate() {
        let (cx, cy, i) = (key >> (CELL_BITS + INDEX_BITS), (key >> INDEX_BITS) & ((1 << CELL_BITS) - 1), index(key));
        let mut pair = |b: usize| {
            let j = index(keys[b]);
            visit(i.min(j), i.max(j));
        };
        // The rest of its own cell and the cell above: the keys right after it (a row past the
        // last one is never occupied).
        let up_end = cell_key(cx, cy + 2);
        for b in (a + 1..keys.len()).take_while(|&b| keys[b] < up_end) {
            pair(b);
        }
        // The next column, rows cy - 1 ..= cy + 1.
        let (lo, end) = (cell_key(cx + 1, cy.saturating_sub(1)), cell_key(cx + 1, cy + 2));
        next = next.max(a + 1);
        while next < keys.len() && keys[next] < lo {
            next += 1;
        }
        for b in (next..keys.len()).take_while(|&b| keys[b] < end) {
            pair(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn close_pairs_finds_every_close_pair_once(
            pts in proptest::collection::vec((-40.0f64..40.0, -40.0f64..40.0), 0..80),
            cell_m in 0.5f64..12.0,
        ) {
            let mut keys = Vec::new();
            let mut got = Vec::new();
            close_pairs(&pts, cell_m, &mut keys, |i, j| got.push((i, j)));
            let n_found = got.len();
            got.sort_unstable();
            got.dedup();
            prop_assert_eq!(got.len(), n_found, "a pair was visited twice");
            prop_assert!(got.iter().all(|&(i, j)| i < j));
            for i in 0..pts.len() {
                for j in i + 1..pts.len() {
                    let d = ((pts[i].0 - pts[j].0).powi(2) + (pts[i].1 - pts[j].1).powi(2)).sqrt();
                    if d <= cell_m {
                        prop_assert!(got.binary_search(&(i, j)).is_ok(), "missed ({i}, {j}) at {d} m");
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn dense_and_sparse_grids_answer_alike(
            pts in proptest::collection::vec((-60.0f64..60.0, -60.0f64..60.0), 0..60),
            far in proptest::option::of((-1.0e12f64..1.0e12, -1.0e12f64..1.0e12)),
            q in (-70.0f64..70.0, -70.0f64..70.0, 0.0f64..20.0),
        ) {
            let mut all = pts.clone();
            all.extend(far);
            let mut g = SpatialGrid::new(6.0);
            g.rebuild(all.iter().copied());
            let mut got = Vec::new();
            g.query(q.0, q.1, q.2, &mut got);
            // Reference: the original sorted-vector lookup, cell by cell.
            let floor_cell = |v: f64| (v * (1.0 / 6.0)).floor().clamp(-1.0e9, 1.0e9) as i64;
            let mut want = Vec::new();
            let (x0, x1) = (floor_cell(q.0 - q.2), floor_cell(q.0 + q.2));
            let (y0, y1) = (floor_cell(q.1 - q.2), floor_cell(q.1 + q.2));
            for cx in x0..=x1 {
                for cy in y0..=y1 {
                    want.extend(all.iter().enumerate().filter(|(_, p)| floor_cell(p.0) == cx && floor_cell(p.1) == cy).map(|(i, _)| i));
                }
            }
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #[test]
        fn discs_of_many_cells_find_everything_in_their_cells(
            pts in proptest::collection::vec((-2000.0f64..2000.0, -2000.0f64..2000.0), 0..60),
            far in proptest::option::of((-1.0e12f64..1.0e12, -1.0e12f64..1.0e12)),
            q in (-2000.0f64..2000.0, -2000.0f64..2000.0, 0.0f64..3000.0),
        ) {
            // Cells of 5 m (the tracker's measurement grid): these discs span up to 1200 cells,
            // far over the row-by-row lookup's limit, on dense and (with a far point) sparse grids.
            let mut all = pts.clone();
            all.extend(far);
            let mut g = SpatialGrid::new(5.0);
            g.rebuild(all.iter().copied());
            let mut got = Vec::new();
            g.query(q.0, q.1, q.2, &mut got);
            let cell = |v: f64| (v * (1.0 / 5.0)).floor().clamp(-1.0e9, 1.0e9) as i64;
            let (x0, x1, y0, y1) = (cell(q.0 - q.2), cell(q.0 + q.2), cell(q.1 - q.2), cell(q.1 + q.2));
            let mut want: Vec<(i64, i64, usize)> = all
                .iter()
                .enumerate()
                .map(|(i, p)| (cell(p.0), cell(p.1), i))
                .filter(|&(cx, cy, _)| (x0..=x1).contains(&cx) && (y0..=y1).contains(&cy))
                .collect();
            want.sort_unstable();
            prop_assert_eq!(got, want.into_iter().map(|w| w.2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn grid_finds_neighbours_only() {
        let mut g = SpatialGrid::new(5.0);
        let pts = [(0.0, 0.0), (4.0, 0.0), (30.0, 30.0), (-3.0, -2.0), (f64::NAN, 0.0)];
        g.rebuild(pts.iter().copied());
        let mut out = Vec::new();
        g.query(1.0, 0.0, 4.0, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![0, 1, 3]);
        out.clear();
        g.query(29.0, 29.0, 2.0, &mut out);
        assert_eq!(out, vec![2]);
    }

    /// Indices within `radius` of `q` (as `hypot` measures it) that [`SpatialGrid::for_each_within`]
    /// finds, ascending, and whether it visited any index twice.
    fn within(grid: &SpatialGrid, points: &[(f64, f64)], q: (f64, f64), radius: f64) -> (Vec<usize>, bool) {
        let mut visited = Vec::new();
        grid.for_each_within(q.0, q.1, radius, |i| visited.push(i));
        let n = visited.len();
        visited.sort_unstable();
        visited.dedup();
        let twice = visited.len() != n;
        visited.retain(|&i| (points[i].0 - q.0).hypot(points[i].1 - q.1) <= radius);
        (visited, twice)
    }

    /// The points a scan finds within `radius` of `q`.
    fn scan(points: &[(f64, f64)], q: (f64, f64), radius: f64) -> Vec<usize> {
        (0..points.len()).filter(|&i| (points[i].0 - q.0).hypot(points[i].1 - q.1) <= radius).collect()
    }

    /// Within-queries against a scan of every point: any cell size, any radius (zero, huge,
    /// infinite), points on the rim, far outliers, huge and saturating coordinates, NaN.
    #[test]
    fn within_finds_what_a_scan_finds() {
        // A small linear congruential generator: reproducible pseudo-random values in [0, 1).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for layout in 0..7 {
            let mut points: Vec<(f64, f64)> = (0..150)
                .map(|i| {
                    let (x, y) = (random() * 300.0 - 150.0, random() * 300.0 - 150.0);
                    match layout {
                        0 => (x, y),
                        1 => (7.25, y),
                        2 if i % 10 == 0 => (x * 1e7, y),
                        3 => (x * 1e17, y * 1e17),
                        4 => (x * 1e25 + 1e20, y),
                        5 => ((x * 0.02).round(), (y * 0.02).round()),
                        // On the rim of a 2 m disc around the origin, as `hypot` rounds it.
                        _ => {
                            let a = i as f64 * 0.0419;
                            (2.0 * a.cos(), 2.0 * a.sin())
                        }
                    }
                })
                .collect();
            points.push((f64::NAN, 0.0));
            for cell in [2.0, 0.3, 50.0, 0.0, f64::NAN] {
                let mut grid = SpatialGrid::new(cell);
                grid.rebuild(points.iter().copied());
                let queries =
                    points.iter().copied().chain((0..40).map(|_| (random() * 400.0 - 200.0, random() * 400.0 - 200.0)));
                for q in queries.chain([(0.0, 0.0)]).filter(|q| q.0.is_finite()) {
                    for radius in [2.0, 0.0, 25.0, 1e18, f64::INFINITY] {
                        let (found, twice) = within(&grid, &points, q, radius);
                        assert!(!twice, "layout {layout} cell {cell} radius {radius} at {q:?}");
                        assert_eq!(
                            found,
                            scan(&points, q, radius),
                            "layout {layout} cell {cell} radius {radius} at {q:?}"
                        );
                    }
                }
                assert!(within(&grid, &points, (f64::NAN, 0.0), 2.0).0.is_empty());
                assert!(within(&grid, &points, (0.0, 0.0), -1.0).0.is_empty());
                assert!(within(&grid, &points, (0.0, 0.0), f64::NAN).0.is_empty());
            }
        }
        let mut grid = SpatialGrid::new(2.0);
        grid.rebuild(std::iter::empty());
        assert!(within(&grid, &[], (0.0, 0.0), 1e9).0.is_empty());
    }
}
