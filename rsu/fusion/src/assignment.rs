//! Data association machinery: connected-component splitting of the gated (track, measurement)
//! pairs and an optimal assignment (Hungarian / shortest augmenting path with potentials) per
//! component. With gates of bounded size the components stay small, so the cost grows close to
//! linearly with the number of objects. The spatial pre-filter that finds the candidate pairs is
//! [`crate::spatial`].

use crate::union_find::UnionFind;

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

/// Working space of [`assign_into`], kept between calls so that an assignment allocates nothing
/// once the buffers have grown (a frame's assignment solves hundreds of small components).
#[derive(Clone, Debug, Default)]
pub struct AssignScratch {
    usable: Vec<Candidate>,
    components: UnionFind,
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
    let AssignScratch { usable, components, degree, meas_of_track, shared, comp, solved, component } = scratch;
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
    components.reset(n_tracks + n_meas);
    for c in usable.iter() {
        if alone(c) {
            meas_of_track[c.track] = c.meas;
            continue;
        }
        components.union_to_least(c.track, n_tracks + c.meas);
    }
    shared.clear();
    for c in usable.iter().filter(|c| !alone(c)) {
        let root = components.find(c.track);
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
        let mut components = UnionFind::new(n);
        for (k, _) in edges.iter().enumerate() {
            components.union_to_least(edge_track[k], n_tracks + edge_meas[k]);
        }
        // Group edges by component root, in root order (a stable sort keeps track, measurement
        // order within a component).
        let mut by_comp: Vec<(usize, Candidate)> =
            edges.iter().enumerate().map(|(k, e)| (components.find(edge_track[k]), *e)).collect();
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
}
