//! The scorer's own linear assignment solver, used by CLEAR MOT, IDF1 and HOTA.
//!
//! It is deliberately not the tracker's solver (`rsu_fusion::assignment`): the judge must not
//! share the code it judges, or one bug would hide in both. It is the shortest augmenting path
//! algorithm for rectangular problems as D. F. Crouse describes it ("On implementing 2D
//! rectangular assignment algorithms", IEEE Trans. Aerospace and Electronic Systems 52(4), 2016),
//! the formulation behind SciPy's `linear_sum_assignment`, which py-motmetrics and TrackEval call:
//! rows are added one at a time, each by a Dijkstra search over the columns on reduced costs
//! (costs less row and column potentials), then the potentials are updated so that every reduced
//! cost stays non-negative and the matched ones zero.
//!
//! Ties between columns equally near are broken by a fixed rule (a free column ends the search at
//! once; the columns are scanned in a fixed order), so the result depends on the matrix only.

/// Minimum-cost assignment of an `nr × nc` row-major cost matrix of any shape (finite costs):
/// (row, column) pairs, `min(nr, nc)` of them, by row when `nr <= nc`, else by column.
pub(crate) fn assign_rectangular(nr: usize, nc: usize, cost: &[f64]) -> Vec<(usize, usize)> {
    debug_assert_eq!(cost.len(), nr * nc);
    if nr == 0 || nc == 0 {
        return Vec::new();
    }
    if nr.min(nc) == 1 {
        // One row or one column: its cheapest cell, the first of equals (as the search picks
        // it), and the first cell when no cost is below infinity.
        let mut best = (f64::INFINITY, 0);
        for (k, &c) in cost.iter().enumerate() {
            if c < best.0 {
                best = (c, k);
            }
        }
        return vec![if nr == 1 { (0, best.1) } else { (best.1, 0) }];
    }
    if nr <= nc {
        if let Some(cols) = row_minima_if_distinct(nr, nc, |r, c| cost[r * nc + c]) {
            return cols.into_iter().enumerate().collect();
        }
        shortest_augmenting_paths(nr, nc, |r, c| cost[r * nc + c]).into_iter().enumerate().collect()
    } else {
        // More rows than columns: the columns are assigned rows (the transposed problem).
        if let Some(rows) = row_minima_if_distinct(nc, nr, |c, r| cost[r * nc + c]) {
            return rows.into_iter().enumerate().map(|(c, r)| (r, c)).collect();
        }
        shortest_augmenting_paths(nc, nr, |c, r| cost[r * nc + c])
            .into_iter()
            .enumerate()
            .map(|(c, r)| (r, c))
            .collect()
    }
}

/// The column of each row's cheapest cell (the first of equals) when those columns are all
/// distinct and every row has a cell below infinity, else `None`; `cost(row, column)` for
/// `nr <= nc`, at most 64 columns. This is exactly what [`shortest_augmenting_paths`] returns
/// then: while every row so far took a free column at once, the column potentials stay zero, so
/// each new row's search starts on its plain costs and ends at once in the first of its cheapest
/// columns, which is free. Most of HOTA's small groups end here.
fn row_minima_if_distinct(nr: usize, nc: usize, cost: impl Fn(usize, usize) -> f64) -> Option<Vec<usize>> {
    if nc > 64 {
        return None;
    }
    let mut taken = 0u64;
    let mut cols = Vec::with_capacity(nr);
    for r in 0..nr {
        let mut best = (f64::INFINITY, None);
        for c in 0..nc {
            let v = cost(r, c);
            if v < best.0 {
                best = (v, Some(c));
            }
        }
        let c = best.1?;
        if taken & (1 << c) != 0 {
            return None;
        }
        taken |= 1 << c;
        cols.push(c);
    }
    Some(cols)
}

/// Marks an unmatched row or column.
const NONE: usize = usize::MAX;

/// The column of each of `nr` rows in a minimum-cost assignment to distinct columns, `nr <= nc`,
/// `cost(row, column)` finite.
fn shortest_augmenting_paths(nr: usize, nc: usize, cost: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    debug_assert!(nr <= nc);
    // Potentials: reduced cost = cost(i, j) - row[i] - col[j] >= 0, zero on matched pairs.
    let (mut row_potential, mut col_potential) = (vec![0.0; nr], vec![0.0; nc]);
    let (mut col_of_row, mut row_of_col) = (vec![NONE; nr], vec![NONE; nc]);
    // One search's state: the length of the shortest alternating path found to each column, the
    // row it was reached from, the rows and columns scanned, and the columns not yet scanned.
    let mut distance = vec![f64::INFINITY; nc];
    let mut reached_from = vec![NONE; nc];
    let (mut row_scanned, mut col_scanned) = (vec![false; nr], vec![false; nc]);
    let mut unscanned: Vec<usize> = Vec::with_capacity(nc);
    for new_row in 0..nr {
        distance.fill(f64::INFINITY);
        row_scanned.fill(false);
        col_scanned.fill(false);
        unscanned.clear();
        unscanned.extend((0..nc).rev());
        // Dijkstra from `new_row` until a free column is the nearest one.
        let mut nearest = 0.0;
        let mut row = new_row;
        let free_col = loop {
            row_scanned[row] = true;
            let mut pick = (f64::INFINITY, 0);
            for (k, &j) in unscanned.iter().enumerate() {
                let through_row = nearest + cost(row, j) - row_potential[row] - col_potential[j];
                if through_row < distance[j] {
                    distance[j] = through_row;
                    reached_from[j] = row;
                }
                if distance[j] < pick.0 || (distance[j] == pick.0 && row_of_col[j] == NONE) {
                    pick = (distance[j], k);
                }
            }
            nearest = pick.0;
            let j = unscanned.swap_remove(pick.1);
            col_scanned[j] = true;
            match row_of_col[j] {
                NONE => break j,
                next => row = next,
            }
        };
        // Potentials: the scanned rows and columns move by how much nearer than the free column
        // they were reached.
        row_potential[new_row] += nearest;
        for i in (0..nr).filter(|&i| row_scanned[i] && i != new_row) {
            row_potential[i] += nearest - distance[col_of_row[i]];
        }
        for j in (0..nc).filter(|&j| col_scanned[j]) {
            col_potential[j] -= nearest - distance[j];
        }
        // Augment: flip the alternating path back from the free column to the new row.
        let mut col = free_col;
        loop {
            let i = reached_from[col];
            row_of_col[col] = i;
            std::mem::swap(&mut col_of_row[i], &mut col);
            if i == new_row {
                break;
            }
        }
    }
    col_of_row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small linear congruential generator: reproducible pseudo-random values.
    fn generator(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        }
    }

    /// The least total cost of assigning every row of an `nr × nc` matrix (`nr <= nc`), by trying
    /// every assignment.
    fn brute_force(nr: usize, nc: usize, cost: &[f64]) -> f64 {
        fn rec(r: usize, nr: usize, nc: usize, cost: &[f64], used: &mut [bool]) -> f64 {
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

    /// Optimal on small matrices of every shape, with many ties (integer costs): each row or
    /// column used once, and the least total.
    #[test]
    fn assignments_are_optimal() {
        let mut next = generator(0x0123_4567_89ab_cdef);
        for _ in 0..5_000 {
            let (nr, nc) = (1 + next() as usize % 5, 1 + next() as usize % 5);
            let integers = next().is_multiple_of(2);
            let cost: Vec<f64> = (0..nr * nc)
                .map(|_| if integers { (next() % 5) as f64 } else { next() as f64 / (1u64 << 31) as f64 - 0.5 })
                .collect();
            let pairs = assign_rectangular(nr, nc, &cost);
            assert_eq!(pairs.len(), nr.min(nc));
            let mut rows: Vec<usize> = pairs.iter().map(|p| p.0).collect();
            let mut cols: Vec<usize> = pairs.iter().map(|p| p.1).collect();
            rows.sort_unstable();
            rows.dedup();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!((rows.len(), cols.len()), (pairs.len(), pairs.len()), "{nr}×{nc} {cost:?}");
            let total: f64 = pairs.iter().map(|&(r, c)| cost[r * nc + c]).sum();
            let best = if nr <= nc {
                brute_force(nr, nc, &cost)
            } else {
                let cost = &cost;
                let transposed: Vec<f64> = (0..nc).flat_map(|c| (0..nr).map(move |r| cost[r * nc + c])).collect();
                brute_force(nc, nr, &transposed)
            };
            assert!((total - best).abs() < 1e-9, "{nr}×{nc} {cost:?}: {total} against {best}");
        }
    }

    /// Where the optimum is unique (random real costs, some pairs forbidden by a large cost as
    /// CLEAR MOT forbids them), the tracker's solver finds the same pairs: a cross-check of two
    /// independent implementations.
    #[test]
    fn unique_optima_agree_with_the_trackers_solver() {
        let mut next = generator(0xfeed_beef_0bad_cafe);
        for _ in 0..3_000 {
            let nr = 1 + next() as usize % 7;
            let nc = nr + next() as usize % 4;
            let forbidden = next().is_multiple_of(3);
            let cost: Vec<f64> = (0..nr * nc)
                .map(|_| {
                    let v = next() as f64 / (1u64 << 31) as f64 * 2.0;
                    if forbidden && v > 1.2 { 1e9 } else { v }
                })
                .collect();
            // The pairs that are not forbidden (which forbidden cells fill the rest is a tie).
            let real = |cols: Vec<usize>| -> Vec<(usize, usize)> {
                cols.into_iter().enumerate().filter(|&(r, c)| cost[r * nc + c] < 1e9).collect()
            };
            let ours = real(assign_rectangular(nr, nc, &cost).into_iter().map(|p| p.1).collect());
            assert_eq!(ours, real(rsu_fusion::assignment::hungarian(nr, nc, &cost)), "{nr}×{nc} {cost:?}");
        }
    }

    #[test]
    fn one_row_or_column_takes_the_first_cheapest_cell() {
        let rows: [(&[f64], usize); 6] = [
            (&[3.0], 0),
            (&[2.0, 1.0, 1.0, 4.0], 1),
            (&[f64::INFINITY, f64::INFINITY], 0),
            (&[f64::NAN, 2.0, f64::NAN], 1),
            (&[-0.0, 0.0, -1e-300], 2),
            (&[1e9, 1e9, 0.5, 0.5], 2),
        ];
        for (row, cheapest) in rows {
            let n = row.len();
            assert_eq!(assign_rectangular(1, n, row), vec![(0, cheapest)], "row {row:?}");
            assert_eq!(assign_rectangular(n, 1, row), vec![(cheapest, 0)], "column {row:?}");
            // The search agrees where it is defined (finite costs).
            if row.iter().all(|c| c.is_finite()) {
                assert_eq!(shortest_augmenting_paths(1, n, |_, c| row[c]), vec![cheapest], "{row:?}");
            }
        }
        assert!(assign_rectangular(0, 3, &[]).is_empty() && assign_rectangular(3, 0, &[]).is_empty());
    }

    /// Small matrices of every shape with many ties: the distinct-minima shortcut, where it
    /// applies, returns what the search does.
    #[test]
    fn distinct_row_minima_are_what_the_search_finds() {
        let mut next = generator(0x9e37_79b9_7f4a_7c15);
        let values = [0.0, -0.0, 1.0, 2.0, -3.5, 0.25, 1e300, -1e-300, 1e9];
        let mut shortcuts = 0;
        for _ in 0..20_000 {
            let (nr, nc) = (2 + next() as usize % 4, 2 + next() as usize % 4);
            let special = next().is_multiple_of(4);
            let cost: Vec<f64> = (0..nr * nc)
                .map(|_| {
                    let k = next() as usize;
                    if special { values[k % values.len()] } else { (k % 7) as f64 - 3.0 }
                })
                .collect();
            let (rows, cols) = if nr <= nc { (nr, nc) } else { (nc, nr) };
            let by_row = |r: usize, c: usize| if nr <= nc { cost[r * nc + c] } else { cost[c * nc + r] };
            if let Some(shortcut) = row_minima_if_distinct(rows, cols, by_row) {
                shortcuts += 1;
                assert_eq!(shortcut, shortest_augmenting_paths(rows, cols, by_row), "{nr}×{nc} {cost:?}");
            }
        }
        assert!(shortcuts > 1000, "{shortcuts} shortcuts");
    }
}
