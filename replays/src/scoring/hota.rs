//! HOTA (Higher Order Tracking Accuracy; Luiten et al., IJCV 2020), as TrackEval computes it,
//! on the similarities the scorer gives each truth/hypothesis pair of a frame (1 - d / gate
//! within the class gate, else 0). Detection accuracy (DetA), association accuracy (AssA) and
//! localisation accuracy (LocA) are averaged over the 19 thresholds α = 0.05 .. 0.95, and
//! HOTA = mean over α of sqrt(DetA_α · AssA_α).
//!
//! Per frame the matching maximises the sum of similarity × global alignment score (how often
//! the pair is matched-compatible over the whole log), so identity-consistent pairs win; a matched
//! pair counts at threshold α when its similarity is at least α.
//!
//! The alignment scores are known only once every frame is in, but the frames' groups of pairs
//! (connected components) are not: [`Hota::add_frame`] splits each frame into them once, and
//! [`Hota::finish`] solves only the groups of more than one pair (a pair alone is matched
//! whatever its alignment).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use rsu_fusion::union_find::UnionFind;

use super::lap::assign_rectangular;
use crate::ids::IdSlots;

/// The thresholds α.
const ALPHAS: usize = 19;

fn alpha(i: usize) -> f64 {
    0.05 * (i + 1) as f64
}

/// The smallest similarity that counts at each threshold: α - ε, ascending.
fn threshold_limits() -> [f64; ALPHAS] {
    std::array::from_fn(|a| alpha(a) - f64::EPSILON)
}

/// How many thresholds a matched pair of similarity `s` counts at: those whose limit (see
/// [`threshold_limits`]) `s` reaches, which are the first ones since the limits ascend. Starts
/// from the estimate ⌊20 s⌋ and steps to the exact count.
fn thresholds_met(s: f64, limits: &[f64; ALPHAS]) -> usize {
    // A saturating cast: NaN gives 0, large values ALPHAS.
    let mut n = ((s * 20.0) as usize).min(ALPHAS);
    while n < ALPHAS && s >= limits[n] {
        n += 1;
    }
    // NaN starts and stays at 0, so below `s` is a number.
    while n > 0 && s < limits[n - 1] {
        n -= 1;
    }
    n
}

/// HOTA and its parts, each averaged over the thresholds. HOTA and AssA are `None` (not
/// applicable) for a log whose ground-truth ids hold for one frame only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HotaScores {
    /// HOTA.
    pub hota: Option<f64>,
    /// Detection accuracy.
    pub det_a: f64,
    /// Association accuracy.
    pub ass_a: Option<f64>,
    /// Localisation accuracy.
    pub loc_a: f64,
}

#[derive(Clone, Debug)]
struct Frame {
    /// Truths present.
    truths: usize,
    /// Hypotheses present.
    hyps: usize,
    /// Its groups, in [`Hota::groups`].
    groups: Range<usize>,
}

/// A connected component of a frame's pairs with a positive similarity.
#[derive(Clone, Debug)]
enum Group {
    /// One pair alone (index into [`Hota::pairs`]), with its similarity.
    Alone { pair: usize, sim: f64 },
    /// Several pairs: `rows` truths × `cols` hypotheses, its pairs in [`Hota::cells`].
    Several { rows: usize, cols: usize, cells: Range<usize> },
}

/// A pair of a [`Group::Several`]: its truth's and hypothesis's places in the group (ascending by
/// index in the frame), the pair (index into [`Hota::pairs`]) and its similarity.
#[derive(Clone, Copy, Debug)]
struct Cell {
    row: usize,
    col: usize,
    pair: usize,
    sim: f64,
}

/// Collects the frames; [`Hota::finish`] scores them.
#[derive(Clone, Debug, Default)]
pub struct Hota {
    frames: Vec<Frame>,
    /// The groups of every frame, frame after frame; in a frame, in the order their sums have
    /// always been taken (see [`Hota::add_groups`]).
    groups: Vec<Group>,
    /// The pairs of every [`Group::Several`].
    cells: Vec<Cell>,
    /// Truth id → index into `truth_frames` and `truth_pairs`.
    truth_index: IdSlots,
    /// Frames each truth is present in.
    truth_frames: Vec<u64>,
    /// (hypothesis index, index into `pairs`) of each truth's pairs.
    truth_pairs: Vec<Vec<(usize, usize)>>,
    /// Hypothesis id → index into `hyp_frames`.
    hyp_index: IdSlots,
    /// Frames each hypothesis is present in.
    hyp_frames: Vec<u64>,
    /// Every pair that ever had a positive similarity: (truth id, hypothesis id), truth index,
    /// hypothesis index.
    pairs: Vec<Pair>,
    /// Buffers of [`Hota::add_frame`], kept between frames.
    scratch: Scratch,
}

/// Per-frame buffers of [`Hota::add_frame`]; their contents do not outlive a call.
#[derive(Clone, Debug, Default)]
struct Scratch {
    /// Index into `truth_frames` of each truth of the frame, then of each hypothesis into
    /// `hyp_frames`.
    truth_at: Vec<usize>,
    hyp_at: Vec<usize>,
    /// Similarity sums of each truth and each hypothesis.
    row_sum: Vec<f64>,
    col_sum: Vec<f64>,
    /// The pair of each similarity.
    sim_pair: Vec<usize>,
    /// Similarities of each truth, then of each hypothesis (vertex = truth index, or truths +
    /// hypothesis index).
    degree: Vec<u32>,
    /// The vertices' sets.
    sets: UnionFind,
    /// (root vertex, similarity index) of the similarities in groups of several.
    several: Vec<(usize, usize)>,
    /// By vertex: the group rooted there, if any.
    rooted: Vec<Rooted>,
    rows: Vec<usize>,
    cols: Vec<usize>,
}

/// What is rooted at a vertex of a frame's graph.
#[derive(Clone, Copy, Debug)]
enum Rooted {
    Nothing,
    /// A pair alone: the index of its similarity.
    Alone(usize),
    /// A group of several: its run in [`Scratch::several`].
    Several(usize, usize),
}

/// A truth/hypothesis pair that had a positive similarity in some frame.
#[derive(Clone, Debug)]
struct Pair {
    ids: (u32, u32),
    truth: usize,
    hyp: usize,
    /// Sum over frames of the pair's share of its truth's and hypothesis's similarity (TrackEval's
    /// potential matches).
    potential: f64,
}

/// The index of `id` in `index`, counting one more frame for it in `frames`.
fn count_frame(index: &mut IdSlots, frames: &mut Vec<u64>, id: u32) -> usize {
    let (i, new) = index.slot(id);
    if new {
        frames.push(0);
    }
    frames[i] += 1;
    i
}

impl Hota {
    /// Adds a frame: the truth and hypothesis ids present, and the positive similarities of
    /// pairs (indices into them).
    pub fn add_frame(&mut self, truths: &[u32], hyps: &[u32], sims: &[(usize, usize, f64)]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.truth_at.clear();
        scratch.truth_at.extend(truths.iter().map(|&g| count_frame(&mut self.truth_index, &mut self.truth_frames, g)));
        self.truth_pairs.resize_with(self.truth_frames.len(), Vec::new);
        scratch.hyp_at.clear();
        scratch.hyp_at.extend(hyps.iter().map(|&h| count_frame(&mut self.hyp_index, &mut self.hyp_frames, h)));
        let (row, col) = (&mut scratch.row_sum, &mut scratch.col_sum);
        row.clear();
        row.resize(truths.len(), 0.0);
        col.clear();
        col.resize(hyps.len(), 0.0);
        // Similarity sums, and the similarities of each vertex for `add_groups` (vertex = truth
        // index, or truths + hypothesis index).
        let degree = &mut scratch.degree;
        degree.clear();
        degree.resize(truths.len() + hyps.len(), 0);
        for &(i, j, s) in sims {
            row[i] += s;
            col[j] += s;
            degree[i] += 1;
            degree[truths.len() + j] += 1;
        }
        scratch.sim_pair.clear();
        for &(i, j, s) in sims {
            let (truth, hyp) = (scratch.truth_at[i], scratch.hyp_at[j]);
            let known = self.truth_pairs[truth].iter().find(|(h, _)| *h == hyp).map(|&(_, p)| p);
            let p = known.unwrap_or_else(|| {
                self.pairs.push(Pair { ids: (truths[i], hyps[j]), truth, hyp, potential: 0.0 });
                self.truth_pairs[truth].push((hyp, self.pairs.len() - 1));
                self.pairs.len() - 1
            });
            self.pairs[p].potential += s / (row[i] + col[j] - s);
            scratch.sim_pair.push(p);
        }
        let start = self.groups.len();
        self.add_groups(truths.len(), hyps.len(), sims, &mut scratch);
        self.frames.push(Frame { truths: truths.len(), hyps: hyps.len(), groups: start..self.groups.len() });
        self.scratch = scratch;
    }

    /// Appends the connected components of the frame's graph (truths 0..nr and hypotheses
    /// 0..nc, joined by `sims`) to `groups`, in the order of their union-find roots when the
    /// similarities are joined in order (the root of the first end in the second's): the order in
    /// which their sums have always been taken. A pair alone in its component is rooted at its
    /// hypothesis; the other components are found by the same joins among their own pairs only
    /// (joins in disjoint trees do not affect each other), so they have the same roots.
    /// `scratch.degree` holds the number of similarities of each vertex.
    fn add_groups(&mut self, nr: usize, nc: usize, sims: &[(usize, usize, f64)], scratch: &mut Scratch) {
        let degree = &scratch.degree;
        // One pass over the similarities: a pair alone is rooted at its hypothesis at once; the
        // others are joined (in order) and set aside for their roots.
        let sets = &mut scratch.sets;
        sets.reset(nr + nc);
        let rooted = &mut scratch.rooted;
        rooted.clear();
        rooted.resize(nr + nc, Rooted::Nothing);
        scratch.several.clear();
        for (k, &(r, c, _)) in sims.iter().enumerate() {
            if degree[r] == 1 && degree[nr + c] == 1 {
                rooted[nr + c] = Rooted::Alone(k);
            } else {
                sets.union(r, nr + c);
                // The root is filled in below, once every join is done.
                scratch.several.push((r, k));
            }
        }
        // The similarities of the groups of several, by root (in a group, their order does not
        // matter: each is a cell of its own).
        for member in &mut scratch.several {
            member.0 = sets.find(member.0);
        }
        scratch.several.sort_unstable_by_key(|&(root, _)| root);
        let mut run = 0;
        while let Some(&(root, _)) = scratch.several.get(run) {
            let end = run + scratch.several[run..].iter().take_while(|&&(v, _)| v == root).count();
            rooted[root] = Rooted::Several(run, end);
            run = end;
        }
        // Truth vertices root only groups of several (a pair alone is rooted at its hypothesis):
        // without such a group, the groups are all rooted at hypotheses.
        let first_root = if scratch.several.first().is_some_and(|&(root, _)| root < nr) { 0 } else { nr };
        for v in first_root..nr + nc {
            let group = match scratch.rooted[v] {
                Rooted::Nothing => continue,
                Rooted::Alone(k) => Group::Alone { pair: scratch.sim_pair[k], sim: sims[k].2 },
                Rooted::Several(from, to) => {
                    let members = &scratch.several[from..to];
                    let (rows, cols) = (&mut scratch.rows, &mut scratch.cols);
                    rows.clear();
                    rows.extend(members.iter().map(|&(_, k)| sims[k].0));
                    rows.sort_unstable();
                    rows.dedup();
                    cols.clear();
                    cols.extend(members.iter().map(|&(_, k)| sims[k].1));
                    cols.sort_unstable();
                    cols.dedup();
                    let first = self.cells.len();
                    for &(_, k) in members {
                        let (i, j, sim) = sims[k];
                        if let (Ok(row), Ok(col)) = (rows.binary_search(&i), cols.binary_search(&j)) {
                            self.cells.push(Cell { row, col, pair: scratch.sim_pair[k], sim });
                        }
                    }
                    Group::Several { rows: rows.len(), cols: cols.len(), cells: first..self.cells.len() }
                }
            };
            self.groups.push(group);
        }
    }

    /// The scores over every frame added.
    pub fn finish(&self) -> HotaScores {
        let present = |p: &Pair| (self.truth_frames[p.truth] + self.hyp_frames[p.hyp]) as f64;
        // Global alignment score of each pair.
        let alignment: Vec<f64> = self
            .pairs
            .iter()
            .map(|p| {
                let denominator = present(p) - p.potential;
                if denominator > 0.0 { p.potential / denominator } else { 0.0 }
            })
            .collect();

        let limits = threshold_limits();
        let (mut tp, mut fn_, mut fp, mut loc) = ([0.0; ALPHAS], [0.0; ALPHAS], [0.0; ALPHAS], [0.0; ALPHAS]);
        // Frames in which each pair is matched at exactly n thresholds (n = 0..=ALPHAS).
        let mut matched_at = vec![[0u64; ALPHAS + 1]; self.pairs.len()];
        // Per group of several: the cost of each cell and the pair and similarity it stands for.
        let (mut cost, mut sim) = (Vec::new(), Vec::new());
        for f in &self.frames {
            // Matches of the frame at exactly n thresholds.
            let mut met = [0u64; ALPHAS + 1];
            let mut count = |pair: usize, s: f64| {
                let n = thresholds_met(s, &limits);
                met[n] += 1;
                matched_at[pair][n] += 1;
                for l in &mut loc[..n] {
                    *l += s;
                }
            };
            for group in &self.groups[f.groups.clone()] {
                match *group {
                    // The assignment takes a pair alone (its similarity is positive).
                    Group::Alone { pair, sim } => count(pair, sim),
                    Group::Several { rows, cols, ref cells } => {
                        // Minimise the negated score; pairs without similarity cost nothing and
                        // count nothing.
                        cost.clear();
                        cost.resize(rows * cols, 0.0);
                        sim.clear();
                        sim.resize(rows * cols, None);
                        for cell in &self.cells[cells.clone()] {
                            cost[cell.row * cols + cell.col] = -(cell.sim * alignment[cell.pair]);
                            sim[cell.row * cols + cell.col] = Some((cell.pair, cell.sim));
                        }
                        for (r, c) in assign_rectangular(rows, cols, &cost) {
                            if let Some((pair, s)) = sim[r * cols + c]
                                && s > 0.0
                            {
                                count(pair, s);
                            }
                        }
                    }
                }
            }
            // Matches at threshold a: those at more than a thresholds.
            let mut kept = 0u64;
            for a in (0..ALPHAS).rev() {
                kept += met[a + 1];
                let n = kept as f64;
                tp[a] += n;
                fn_[a] += f.truths as f64 - n;
                fp[a] += f.hyps as f64 - n;
            }
        }
        // Frames in which each pair is matched at threshold a, likewise.
        let matches: Vec<[u64; ALPHAS]> = matched_at
            .iter()
            .map(|at| {
                let mut by_alpha = [0u64; ALPHAS];
                let mut kept = 0;
                for a in (0..ALPHAS).rev() {
                    kept += at[a + 1];
                    by_alpha[a] = kept;
                }
                by_alpha
            })
            .collect();
        // Association sums over pairs in (truth id, hypothesis id) order, so they are reproducible.
        let mut by_ids: Vec<usize> = (0..self.pairs.len()).collect();
        by_ids.sort_by_key(|&p| self.pairs[p].ids);
        let (mut hota, mut det_a_sum, mut ass_a_sum, mut loc_a_sum) = (0.0, 0.0, 0.0, 0.0);
        for a in 0..ALPHAS {
            let det_a = tp[a] / (tp[a] + fn_[a] + fp[a]).max(1.0);
            let ass: f64 = by_ids
                .iter()
                .filter(|&&p| matches[p][a] > 0)
                .map(|&p| {
                    let m = matches[p][a] as f64;
                    m * m / (present(&self.pairs[p]) - m).max(1.0)
                })
                .sum();
            let ass_a = ass / tp[a].max(1.0);
            hota += (det_a * ass_a).sqrt();
            det_a_sum += det_a;
            ass_a_sum += ass_a;
            loc_a_sum += loc[a].max(1e-10) / tp[a].max(1e-10);
        }
        let n = ALPHAS as f64;
        HotaScores { hota: Some(hota / n), det_a: det_a_sum / n, ass_a: Some(ass_a_sum / n), loc_a: loc_a_sum / n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_met_counts_the_limits_reached() {
        let limits = threshold_limits();
        let by_scan = |s: f64| (0..ALPHAS).take_while(|&a| s >= alpha(a) - f64::EPSILON).count();
        let mut values = vec![0.0, -0.0, 1.0, 2.0, -1.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE];
        for (a, &limit) in limits.iter().enumerate() {
            values.extend([limit, limit.next_up(), limit.next_down(), alpha(a), alpha(a).next_down()]);
        }
        values.extend((0..=20_000).map(|k| k as f64 * 5e-5));
        for s in values {
            assert_eq!(thresholds_met(s, &limits), by_scan(s), "similarity {s}");
        }
    }
}
