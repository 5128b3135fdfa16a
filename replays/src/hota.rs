//! HOTA (Higher Order Tracking Accuracy; Luiten et al., IJCV 2020), as TrackEval computes it,
//! on the similarities the scorer gives each truth/hypothesis pair of a frame (1 - d / gate
//! within the class gate, else 0). Detection accuracy (DetA), association accuracy (AssA) and
//! localisation accuracy (LocA) are averaged over the 19 thresholds α = 0.05 .. 0.95, and
//! HOTA = mean over α of sqrt(DetA_α · AssA_α).
//!
//! Per frame the matching maximises the sum of similarity × global alignment score (how often
//! the pair is matched-compatible over the whole log), so identity-consistent pairs win; a matched
//! pair counts at threshold α when its similarity is at least α.

use serde::{Deserialize, Serialize};

use crate::ids::IdSlots;
use crate::scoring::{assign_rectangular, edge_components};

/// The thresholds α.
const ALPHAS: usize = 19;

fn alpha(i: usize) -> f64 {
    0.05 * (i + 1) as f64
}

/// How many thresholds a matched pair of similarity `s` counts at: those with `s ≥ α - ε`, which
/// are the first ones since the thresholds ascend.
fn thresholds_met(s: f64) -> usize {
    (0..ALPHAS).take_while(|&a| s >= alpha(a) - f64::EPSILON).count()
}

/// HOTA and its parts, each averaged over the thresholds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HotaScores {
    /// HOTA.
    pub hota: f64,
    /// Detection accuracy.
    pub det_a: f64,
    /// Association accuracy.
    pub ass_a: f64,
    /// Localisation accuracy.
    pub loc_a: f64,
}

#[derive(Clone, Debug)]
struct Frame {
    /// Truths present.
    truths: usize,
    /// Hypotheses present.
    hyps: usize,
    /// (truth index, hypothesis index, similarity > 0) in the frame.
    sims: Vec<(usize, usize, f64)>,
    /// The pair (index into [`Hota::pairs`]) of each similarity.
    pairs: Vec<usize>,
}

/// Collects the frames; [`Hota::finish`] scores them.
#[derive(Clone, Debug, Default)]
pub struct Hota {
    frames: Vec<Frame>,
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
    pub fn add_frame(&mut self, truths: &[u32], hyps: &[u32], sims: Vec<(usize, usize, f64)>) {
        let truth_at: Vec<usize> =
            truths.iter().map(|&g| count_frame(&mut self.truth_index, &mut self.truth_frames, g)).collect();
        self.truth_pairs.resize_with(self.truth_frames.len(), Vec::new);
        let hyp_at: Vec<usize> =
            hyps.iter().map(|&h| count_frame(&mut self.hyp_index, &mut self.hyp_frames, h)).collect();
        let (mut row, mut col) = (vec![0.0; truths.len()], vec![0.0; hyps.len()]);
        for &(i, j, s) in &sims {
            row[i] += s;
            col[j] += s;
        }
        let mut pairs = Vec::with_capacity(sims.len());
        for &(i, j, s) in &sims {
            let (truth, hyp) = (truth_at[i], hyp_at[j]);
            let known = self.truth_pairs[truth].iter().find(|(h, _)| *h == hyp).map(|&(_, p)| p);
            let p = known.unwrap_or_else(|| {
                self.pairs.push(Pair { ids: (truths[i], hyps[j]), truth, hyp, potential: 0.0 });
                self.truth_pairs[truth].push((hyp, self.pairs.len() - 1));
                self.pairs.len() - 1
            });
            self.pairs[p].potential += s / (row[i] + col[j] - s);
            pairs.push(p);
        }
        self.frames.push(Frame { truths: truths.len(), hyps: hyps.len(), sims, pairs });
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

        let (mut tp, mut fn_, mut fp, mut loc) = ([0.0; ALPHAS], [0.0; ALPHAS], [0.0; ALPHAS], [0.0; ALPHAS]);
        // Frames in which each pair is matched, per threshold.
        let mut matches = vec![[0u64; ALPHAS]; self.pairs.len()];
        for f in &self.frames {
            let mut kept = [0u64; ALPHAS];
            for (k, s) in best_matches(f, &alignment) {
                let pair_matches = &mut matches[f.pairs[k]];
                for a in 0..thresholds_met(s) {
                    kept[a] += 1;
                    loc[a] += s;
                    pair_matches[a] += 1;
                }
            }
            for a in 0..ALPHAS {
                let n = kept[a] as f64;
                tp[a] += n;
                fn_[a] += f.truths as f64 - n;
                fp[a] += f.hyps as f64 - n;
            }
        }
        // Association sums over pairs in (truth id, hypothesis id) order, so they are reproducible.
        let mut by_ids: Vec<usize> = (0..self.pairs.len()).collect();
        by_ids.sort_by_key(|&p| self.pairs[p].ids);
        let mut sum = HotaScores::default();
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
            sum.hota += (det_a * ass_a).sqrt();
            sum.det_a += det_a;
            sum.ass_a += ass_a;
            sum.loc_a += loc[a].max(1e-10) / tp[a].max(1e-10);
        }
        let n = ALPHAS as f64;
        HotaScores { hota: sum.hota / n, det_a: sum.det_a / n, ass_a: sum.ass_a / n, loc_a: sum.loc_a / n }
    }
}

/// The frame's matching that maximises the sum of similarity × alignment (pairs with a positive
/// similarity only; others never count at any threshold): (index into the frame's similarities,
/// similarity) of each matched pair.
fn best_matches(f: &Frame, alignment: &[f64]) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    // Per component: the cost of each cell and the similarity it stands for.
    let (mut cost, mut sim) = (Vec::new(), Vec::new());
    for group in edge_components(f.truths, f.hyps, &f.sims).iter() {
        if let &[k] = group.edges {
            // One pair alone: the assignment takes it (its similarity is positive).
            out.push((k, f.sims[k].2));
            continue;
        }
        let (rows, cols) = (group.rows, group.cols);
        // Minimise the negated score; pairs without similarity cost nothing and count nothing.
        cost.clear();
        cost.resize(rows.len() * cols.len(), 0.0);
        sim.clear();
        sim.resize(rows.len() * cols.len(), None);
        for &k in group.edges {
            let (i, j, s) = f.sims[k];
            if let (Ok(r), Ok(c)) = (rows.binary_search(&i), cols.binary_search(&j)) {
                cost[r * cols.len() + c] = -(s * alignment[f.pairs[k]]);
                sim[r * cols.len() + c] = Some((k, s));
            }
        }
        for (r, c) in assign_rectangular(rows.len(), cols.len(), &cost) {
            if let Some((k, s)) = sim[r * cols.len() + c]
                && s > 0.0
            {
                out.push((k, s));
            }
        }
    }
    out
}
