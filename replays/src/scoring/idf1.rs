//! IDF1's identity true positives (Ristani et al. 2016): the largest number of frames that a
//! one-to-one assignment of truth ids to hypothesis ids keeps within the gate, over the whole log.

use super::TruthHistory;
use super::components::edge_components;
use super::lap::assign_rectangular;
use super::matching::FrameScratch;

/// The largest total overlap of a one-to-one assignment of truths to hypotheses (IDTP), from the
/// (truth id, hypothesis id, frames within the gate) of every pair that overlapped, each once.
pub(super) fn best_identity_overlap(overlaps: &[(u32, u32, u64)]) -> u64 {
    // Truths and hypotheses numbered in ascending id order, so each group's rows and columns are
    // in id order.
    let sorted_ids = |id: fn(&(u32, u32, u64)) -> u32| {
        let mut ids: Vec<u32> = overlaps.iter().map(id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let (truths, hyps) = (sorted_ids(|o| o.0), sorted_ids(|o| o.1));
    /// The place of `x` in `sorted` (ascending, holding `x`).
    fn place<T: Ord>(sorted: &[T], x: T) -> usize {
        sorted.partition_point(|y| *y < x)
    }
    let edges: Vec<(usize, usize, f64)> =
        overlaps.iter().map(|&(t, h, frames)| (place(&truths, t), place(&hyps, h), frames as f64)).collect();
    // Independent groups (connected components) keep each assignment small.
    let mut total = 0;
    let (mut frames, mut cost) = (Vec::new(), Vec::new());
    for group in edge_components(truths.len(), hyps.len(), &edges).iter() {
        let (rows, cols) = (group.rows, group.cols);
        // The overlap of each cell (0 for a pair that never overlapped), and as its cost the
        // group's largest overlap less it.
        frames.clear();
        frames.resize(rows.len() * cols.len(), 0);
        for &e in group.edges {
            let (r, c, _) = edges[e];
            frames[place(rows, r) * cols.len() + place(cols, c)] = overlaps[e].2;
        }
        let max = frames.iter().copied().max().unwrap_or(0) as f64;
        cost.clear();
        cost.extend(frames.iter().map(|&n| max - n as f64));
        for (i, j) in assign_rectangular(rows.len(), cols.len(), &cost) {
            total += frames[i * cols.len() + j];
        }
    }
    total
}

/// Counts every gated pair of a frame, matched by CLEAR MOT or not, as one frame in which its
/// truth (at its slot in `truths`) and its hypothesis overlapped.
pub(super) fn record_overlaps(truths: &mut [TruthHistory], f: &FrameScratch) {
    for &(ti, hi, _) in &f.pairs {
        let overlaps = &mut truths[f.truth_slots[ti]].overlaps;
        match overlaps.iter_mut().find(|(h, _)| *h == f.hyp_ids[hi]) {
            Some((_, frames)) => *frames += 1,
            None => overlaps.push((f.hyp_ids[hi], 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_overlap_is_the_best_assignment_of_each_group() {
        // Truths 1 and 2 compete for hypotheses 10 and 11 (best: 1-11 and 2-10, 3 + 4 frames);
        // truth 3 and hypothesis 12 are a group of their own.
        let overlaps = [(2, 10, 4), (1, 10, 5), (3, 12, 7), (1, 11, 3)];
        assert_eq!(best_identity_overlap(&overlaps), 14);
        assert_eq!(best_identity_overlap(&[]), 0);
    }
}
