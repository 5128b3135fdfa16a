//! Data association machinery: a spatial grid pre-filter that finds candidate (track,
//! measurement) pairs, connected-component splitting of the gated pairs, and an optimal
//! assignment (Hungarian / shortest augmenting path with potentials) per component. With gates
//! of bounded size the components stay small, so the cost grows close to linearly with the number
//! of objects.

/// A gated candidate pair with its cost (lower is better): `cost + ln(log_arg)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Track index.
    pub track: usize,
    /// Measurement index.
    pub meas: usize,
    /// Assignment cost without its logarithmic part (finite).
    pub cost: f64,
    /// The argument of the cost's logarithmic part (positive and finite; 1 for none), such as
    /// the determinant of an innovation covariance. The logarithm is taken only where the
    /// assignment compares costs: a pair alone in its component needs none.
    pub log_arg: f64,
}

impl Candidate {
    /// A pair whose cost has no logarithmic part.
    pub fn new(track: usize, meas: usize, cost: f64) -> Self {
        Candidate { track, meas, cost, log_arg: 1.0 }
    }

    /// The full cost, `cost + ln(log_arg)`.
    pub fn full_cost(&self) -> f64 {
        self.cost + self.log_arg.ln()
    }

    /// Whether the full cost is finite (without taking the logarithm).
    fn cost_is_finite(&self) -> bool {
        self.cost.is_finite() && self.log_arg > 0.0 && self.log_arg < f64::INFINITY
    }
}

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
    /// without collecting them.
    #[inline]
    pub fn for_each_near(&self, x: f64, y: f64, radius_m: f64, mut visit: impl FnMut(usize)) {
        if !(x.is_finite() && y.is_finite() && radius_m.is_finite()) {
            return;
        }
        let r = radius_m.max(0.0);
        let (x0, x1) = (self.cell_of(x - r), self.cell_of(x + r));
        let (y0, y1) = (self.cell_of(y - r), self.cell_of(y + r));
        if (x1 - x0) > 64 || (y1 - y0) > 64 {
            return;
        }
        if !self.starts.is_empty() {
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
// Not inlined: inlined into the duplicate search it costs more (dense-200 replay validation
// 260.6 M instructions inlined, 259.6 M not; the fusion bench cycle 6.441 M against 6.435 M).
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

/// Working space of [`assign_into`], kept between calls so that an assignment allocates nothing
/// once the buffers have grown (a frame's assignment solves hundreds of small components).
#[derive(Clone, Debug, Default)]
pub struct AssignScratch {
    usable: Vec<Candidate>,
    parent: Vec<u32>,
    degree: Vec<u32>,
    meas_of_track: Vec<usize>,
    shared: Vec<(usize, Candidate)>,
    comp: Vec<Candidate>,
    solved: Vec<(usize, usize)>,
    component: ComponentScratch,
}

/// Working space of one component's solution.
#[derive(Clone, Debug, Default)]
struct ComponentScratch {
    rows: Vec<usize>,
    cols: Vec<usize>,
    cost: Vec<f64>,
    hungarian: HungarianScratch,
}

/// Solves the assignment over gated candidate pairs of `n_tracks` tracks and `n_meas`
/// measurements: splits them into connected components and solves each optimally (most pairs
/// first, then least total cost). Pairs with a non-finite full cost or an index out of range are
/// ignored. Returns (track, measurement) pairs sorted by track.
pub fn assign(candidates: &[Candidate], n_tracks: usize, n_meas: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    assign_into(candidates, n_tracks, n_meas, &mut AssignScratch::default(), &mut out);
    out
}

/// [`assign`] into `out` (cleared first), with reusable working space.
pub fn assign_into(
    candidates: &[Candidate],
    n_tracks: usize,
    n_meas: usize,
    scratch: &mut AssignScratch,
    out: &mut Vec<(usize, usize)>,
) {
    out.clear();
    let AssignScratch { usable, parent, degree, meas_of_track, shared, comp, solved, component } = scratch;
    // The usable pairs, checked once.
    usable.clear();
    usable.extend(candidates.iter().filter(|c| c.cost_is_finite() && c.track < n_tracks && c.meas < n_meas));
    // Pairs per node: tracks, then measurements. A pair whose track and measurement are in no
    // other pair is a component of one edge, its own answer (most pairs, when objects are
    // apart): only the others go through the union-find.
    degree.clear();
    degree.resize(n_tracks + n_meas, 0);
    for c in usable.iter() {
        degree[c.track] += 1;
        degree[n_tracks + c.meas] += 1;
    }
    meas_of_track.clear();
    meas_of_track.resize(n_tracks, usize::MAX);
    let alone = |c: &Candidate| degree[c.track] == 1 && degree[n_tracks + c.meas] == 1;
    // Union-find over the nodes of the other pairs; a component's root is its least node.
    parent.clear();
    parent.extend(0..(n_tracks + n_meas) as u32);
    fn find(parent: &mut [u32], mut a: usize) -> usize {
        while parent[a] as usize != a {
            parent[a] = parent[parent[a] as usize];
            a = parent[a] as usize;
        }
        a
    }
    for c in usable.iter() {
        if alone(c) {
            meas_of_track[c.track] = c.meas;
            continue;
        }
        let a = find(parent, c.track);
        let b = find(parent, n_tracks + c.meas);
        if a != b {
            parent[a.max(b)] = a.min(b) as u32;
        }
    }
    shared.clear();
    for c in usable.iter().filter(|c| !alone(c)) {
        let root = find(parent, c.track);
        shared.push((root, *c));
    }
    // The rest component by component, in root order, each with its edges by track and
    // measurement (a stable sort keeps the candidates' order otherwise).
    shared.sort_by_key(|(root, c)| (*root, c.track, c.meas));
    for run in shared.chunk_by(|a, b| a.0 == b.0) {
        comp.clear();
        // With their full costs (the logarithms are taken here, for pairs that compete).
        comp.extend(run.iter().map(|(_, c)| Candidate::new(c.track, c.meas, c.full_cost())));
        solved.clear();
        solve_component(comp, solved, component);
        for &(track, meas) in solved.iter() {
            meas_of_track[track] = meas;
        }
    }
    out.extend(meas_of_track.iter().enumerate().filter(|(_, m)| **m != usize::MAX).map(|(t, m)| (t, *m)));
}

/// Cost standing for "no edge" in the dense component matrix.
const NO_EDGE: f64 = 1.0e9;

fn solve_component(comp: &[Candidate], out: &mut Vec<(usize, usize)>, scratch: &mut ComponentScratch) {
    let ComponentScratch { rows, cols, cost, hungarian } = scratch;
    if comp.len() == 1 {
        out.push((comp[0].track, comp[0].meas));
        return;
    }
    rows.clear();
    rows.extend(comp.iter().map(|c| c.track));
    rows.sort_unstable();
    rows.dedup();
    cols.clear();
    cols.extend(comp.iter().map(|c| c.meas));
    cols.sort_unstable();
    cols.dedup();
    let transpose = rows.len() > cols.len();
    let (nr, nc) = if transpose { (cols.len(), rows.len()) } else { (rows.len(), cols.len()) };
    cost.clear();
    cost.resize(nr * nc, NO_EDGE);
    // Costs are shifted to be non-negative and bounded so NO_EDGE dominates any real sum.
    let min_cost = comp.iter().map(|c| c.cost).fold(f64::INFINITY, f64::min);
    for c in comp {
        let r = rows.binary_search(&c.track).unwrap_or(0);
        let k = cols.binary_search(&c.meas).unwrap_or(0);
        let v = (c.cost - min_cost).min(1.0e6);
        if transpose {
            cost[k * nc + r] = v;
        } else {
            cost[r * nc + k] = v;
        }
    }
    for (r, &k) in hungarian_into(nr, nc, cost, hungarian).iter().enumerate() {
        if cost[r * nc + k] >= NO_EDGE {
            continue;
        }
        if transpose {
            out.push((rows[k], cols[r]));
        } else {
            out.push((rows[r], cols[k]));
        }
    }
}

/// Working space of [`hungarian_into`].
#[derive(Clone, Debug, Default)]
pub struct HungarianScratch {
    u: Vec<f64>,
    v: Vec<f64>,
    col_row: Vec<usize>,
    way: Vec<usize>,
    minv: Vec<f64>,
    used: Vec<bool>,
    row_col: Vec<usize>,
}

/// Minimum-cost assignment of `nr` rows to distinct columns of an `nr × nc` row-major cost matrix
/// (`nr <= nc`), by shortest augmenting paths with row and column potentials (O(nr²·nc)).
/// Returns the column of each row.
pub fn hungarian(nr: usize, nc: usize, cost: &[f64]) -> Vec<usize> {
    hungarian_into(nr, nc, cost, &mut HungarianScratch::default()).to_vec()
}

/// [`hungarian`] with reusable working space; the columns are in the scratch space.
pub fn hungarian_into<'a>(nr: usize, nc: usize, cost: &[f64], scratch: &'a mut HungarianScratch) -> &'a [usize] {
    debug_assert!(nr <= nc && cost.len() == nr * nc);
    let HungarianScratch { u, v, col_row, way, minv, used, row_col } = scratch;
    // 1-based arrays with a virtual column 0, as in the textbook formulation.
    for (buf, len) in [(&mut *u, nr + 1), (&mut *v, nc + 1), (&mut *minv, nc + 1)] {
        buf.clear();
        buf.resize(len, 0.0);
    }
    for (buf, len) in [(&mut *col_row, nc + 1), (&mut *way, nc + 1)] {
        // col_row: the row matched to each column (0 = none).
        buf.clear();
        buf.resize(len, 0);
    }
    used.clear();
    used.resize(nc + 1, false);
    for i in 1..=nr {
        col_row[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|m| *m = f64::INFINITY);
        used.iter_mut().for_each(|b| *b = false);
        loop {
            used[j0] = true;
            let i0 = col_row[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=nc {
                if used[j] {
                    continue;
                }
                let cur = cost[(i0 - 1) * nc + (j - 1)] - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            if j1 == 0 {
                break; // cannot happen with finite costs; guards against NaN
            }
            for j in 0..=nc {
                if used[j] {
                    u[col_row[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if col_row[j0] == 0 {
                break;
            }
        }
        // Augment along the alternating path.
        while j0 != 0 {
            let j1 = way[j0];
            col_row[j0] = col_row[j1];
            j0 = j1;
        }
    }
    row_col.clear();
    row_col.resize(nr, 0);
    for j in 1..=nc {
        if col_row[j] != 0 {
            row_col[col_row[j] - 1] = j - 1;
        }
    }
    row_col
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_force(nr: usize, nc: usize, cost: &[f64]) -> f64 {
        fn rec(r: usize, nr: usize, nc: usize, cost: &[f64], used: &mut Vec<bool>) -> f64 {
            if r == nr {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..nc {
                if !used[c] {
                    used[c] = true;
                    best = best.min(cost[r * nc + c] + rec(r + 1, nr, nc, cost, used));
                    used[c] = false;
                }
            }
            best
        }
        rec(0, nr, nc, cost, &mut vec![false; nc])
    }

    /// The assignment as first written (compacting the indices that appear, sorting the edges by
    /// component), kept as the reference for [`assign`].
    fn reference_assign(candidates: &[Candidate]) -> Vec<(usize, usize)> {
        let mut edges: Vec<Candidate> = candidates.iter().filter(|c| c.full_cost().is_finite()).copied().collect();
        if edges.is_empty() {
            return Vec::new();
        }
        edges.sort_by_key(|a| (a.track, a.meas));
        // Union-find over nodes: tracks then measurements, compacted to the ones that appear (in
        // ascending order). Edges are sorted by track, so a track's compact index is its run number.
        let mut edge_track = Vec::with_capacity(edges.len());
        let mut n_tracks = 0usize;
        for (k, e) in edges.iter().enumerate() {
            if k > 0 && e.track != edges[k - 1].track {
                n_tracks += 1;
            }
            edge_track.push(n_tracks);
        }
        n_tracks += 1;
        let max_meas = edges.iter().map(|c| c.meas).max().unwrap_or(0);
        let edge_meas: Vec<usize> = if max_meas < 4 * edges.len() + 1024 {
            // Dense rank table over measurement indices.
            let mut rank = vec![usize::MAX; max_meas + 1];
            for e in &edges {
                rank[e.meas] = 0;
            }
            for (next, r) in rank.iter_mut().filter(|r| **r == 0).enumerate() {
                *r = next;
            }
            edges.iter().map(|e| rank[e.meas]).collect()
        } else {
            let mut meas: Vec<usize> = edges.iter().map(|c| c.meas).collect();
            meas.sort_unstable();
            meas.dedup();
            edges.iter().map(|e| meas.binary_search(&e.meas).unwrap_or(0)).collect()
        };
        let n = n_tracks + edge_meas.iter().max().map_or(0, |m| m + 1);
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(parent: &mut [usize], mut a: usize) -> usize {
            while parent[a] != a {
                parent[a] = parent[parent[a]];
                a = parent[a];
            }
            a
        }
        for (k, _) in edges.iter().enumerate() {
            let a = find(&mut parent, edge_track[k]);
            let b = find(&mut parent, n_tracks + edge_meas[k]);
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
        // Group edges by component root, in root order (a stable sort keeps track, measurement
        // order within a component).
        let mut by_comp: Vec<(usize, Candidate)> =
            edges.iter().enumerate().map(|(k, e)| (find(&mut parent, edge_track[k]), *e)).collect();
        by_comp.sort_by_key(|a| a.0);
        edges.clear();
        edges.extend(by_comp.iter().map(|e| e.1));
        let mut out = Vec::new();
        let mut start = 0;
        while start < by_comp.len() {
            let root = by_comp[start].0;
            let end = start + by_comp[start..].iter().take_while(|e| e.0 == root).count();
            solve_component(&edges[start..end], &mut out, &mut ComponentScratch::default());
            start = end;
        }
        out.sort_unstable();
        out
    }

    proptest! {
        #[test]
        fn assignment_agrees_with_the_reference(
            edges in proptest::collection::vec((0usize..40, 0usize..40, 0.0f64..30.0), 0..120),
        ) {
            let candidates: Vec<Candidate> = edges.iter().map(|&(track, meas, cost)| Candidate::new(track, meas, cost)).collect();
            // One candidate per pair, as the engine makes them.
            let mut seen = std::collections::BTreeSet::new();
            let candidates: Vec<Candidate> = candidates.into_iter().filter(|c| seen.insert((c.track, c.meas))).collect();
            let expected = reference_assign(&candidates);
            prop_assert_eq!(&assign(&candidates, 40, 40), &expected);
            // Reused working space, left dirty by another problem first, gives the same answer.
            let (mut scratch, mut out) = (AssignScratch::default(), Vec::new());
            assign_into(&candidates[candidates.len() / 2..], 40, 40, &mut scratch, &mut out);
            assign_into(&candidates, 40, 40, &mut scratch, &mut out);
            prop_assert_eq!(&out, &expected);
        }

        #[test]
        fn hungarian_is_optimal(nr in 1usize..5, extra in 0usize..3, seed in proptest::collection::vec(0.0f64..100.0, 40)) {
            let nc = nr + extra;
            let cost: Vec<f64> = seed.iter().take(nr * nc).copied().collect();
            let a = hungarian(nr, nc, &cost);
            let mut seen = std::collections::BTreeSet::new();
            prop_assert!(a.iter().all(|c| seen.insert(*c)), "columns distinct");
            let total: f64 = a.iter().enumerate().map(|(r, c)| cost[r * nc + c]).sum();
            prop_assert!((total - brute_force(nr, nc, &cost)).abs() < 1e-9);
        }
    }

    #[test]
    fn components_are_solved_independently_and_gating_is_respected() {
        // Component A: tracks 0,1 compete for measurement 0; track 1 also gates measurement 1.
        // Component B: track 5 with measurement 7 only.
        let c = [
            Candidate::new(0, 0, 1.0),
            Candidate::new(1, 0, 0.5),
            Candidate::new(1, 1, 2.0),
            Candidate::new(5, 7, 3.0),
        ];
        assert_eq!(assign(&c, 6, 8), vec![(0, 0), (1, 1), (5, 7)]);
        // Track 3 gates nothing: never assigned; more measurements than tracks.
        let c = [Candidate::new(2, 4, 5.0), Candidate::new(2, 3, 1.0)];
        assert_eq!(assign(&c, 3, 5), vec![(2, 3)]);
        // Out-of-range indices and non-finite costs are ignored.
        let c = [
            Candidate::new(9, 0, 1.0),
            Candidate::new(0, 9, 1.0),
            Candidate::new(1, 1, f64::NAN),
            Candidate::new(2, 2, 1.0),
        ];
        assert_eq!(assign(&c, 3, 3), vec![(2, 2)]);
        assert!(assign(&[], 0, 0).is_empty() && assign(&[], 4, 4).is_empty());
        // The logarithmic part counts where costs are compared: track 0 costs 1 + ln(e²) = 3 for
        // measurement 0, track 1 costs 2, so track 1 takes it.
        let c = [Candidate { track: 0, meas: 0, cost: 1.0, log_arg: 2.0f64.exp() }, Candidate::new(1, 0, 2.0)];
        assert_eq!(assign(&c, 2, 1), vec![(1, 0)]);
        // A pair whose logarithmic part is not finite is ignored, alone or not.
        for bad in [0.0, -1.0, f64::INFINITY, f64::NAN] {
            let c = [Candidate { track: 0, meas: 0, cost: 0.0, log_arg: bad }, Candidate::new(1, 0, 2.0)];
            assert_eq!(assign(&c, 2, 1), vec![(1, 0)], "{bad}");
            assert!(assign(&c[..1], 2, 1).is_empty(), "{bad}");
        }
    }

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
}
