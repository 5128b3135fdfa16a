//! HOTA (Higher Order Tracking Accuracy; Luiten et al., IJCV 2020), as TrackEval computes it,
//! on the similarities the scorer gives each truth/hypothesis pair of a frame (1 - d / gate
//! within the class gate, else 0). Detection accuracy (DetA), association accuracy (AssA) and
//! localisation accuracy (LocA) are averaged over the 19 thresholds α = 0.05 .. 0.95, and
//! HOTA = mean over α of sqrt(DetA_α · AssA_α).
//!
//! Per frame the matching maximises the sum of similarity × global alignment score (how often
//! the pair is matched-compatible over the whole log), so identity-consistent pairs win; a matched
//! pair counts at threshold α when its similarity is at least α.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The thresholds α.
const ALPHAS: usize = 19;

fn alpha(i: usize) -> f64 {
    0.05 * (i + 1) as f64
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
    truths: Vec<u32>,
    hyps: Vec<u32>,
    /// (truth index, hypothesis index, similarity > 0).
    sims: Vec<(usize, usize, f64)>,
}

/// Collects the frames; [`Hota::finish`] scores them.
#[derive(Clone, Debug, Default)]
pub struct Hota {
    frames: Vec<Frame>,
}

impl Hota {
    /// Adds a frame: the truth and hypothesis ids present, and the positive similarities of
    /// pairs (indices into them).
    pub fn add_frame(&mut self, truths: Vec<u32>, hyps: Vec<u32>, sims: Vec<(usize, usize, f64)>) {
        self.frames.push(Frame { truths, hyps, sims });
    }

    /// The scores over every frame added.
    pub fn finish(&self) -> HotaScores {
        let mut gt_count: BTreeMap<u32, f64> = BTreeMap::new();
        let mut hyp_count: BTreeMap<u32, f64> = BTreeMap::new();
        let mut potential: HashMap<(u32, u32), f64> = HashMap::new();
        for f in &self.frames {
            for g in &f.truths {
                *gt_count.entry(*g).or_default() += 1.0;
            }
            for h in &f.hyps {
                *hyp_count.entry(*h).or_default() += 1.0;
            }
            let (mut row, mut col) = (vec![0.0; f.truths.len()], vec![0.0; f.hyps.len()]);
            for &(i, j, s) in &f.sims {
                row[i] += s;
                col[j] += s;
            }
            for &(i, j, s) in &f.sims {
                *potential.entry((f.truths[i], f.hyps[j])).or_default() += s / (row[i] + col[j] - s);
            }
        }
        let alignment = |g: u32, h: u32| {
            let p = potential.get(&(g, h)).copied().unwrap_or(0.0);
            let denominator = gt_count.get(&g).copied().unwrap_or(0.0) + hyp_count.get(&h).copied().unwrap_or(0.0) - p;
            if denominator > 0.0 { p / denominator } else { 0.0 }
        };

        let (mut tp, mut fn_, mut fp, mut loc) = ([0.0; ALPHAS], [0.0; ALPHAS], [0.0; ALPHAS], [0.0; ALPHAS]);
        let mut matches: Vec<HashMap<(u32, u32), f64>> = vec![HashMap::new(); ALPHAS];
        for f in &self.frames {
            let matched = best_matches(f, &alignment);
            for a in 0..ALPHAS {
                let kept: Vec<&(usize, usize, f64)> =
                    matched.iter().filter(|(_, _, s)| *s >= alpha(a) - f64::EPSILON).collect();
                let n = kept.len() as f64;
                tp[a] += n;
                fn_[a] += f.truths.len() as f64 - n;
                fp[a] += f.hyps.len() as f64 - n;
                for &&(i, j, s) in &kept {
                    loc[a] += s;
                    *matches[a].entry((f.truths[i], f.hyps[j])).or_default() += 1.0;
                }
            }
        }
        let mut sum = HotaScores::default();
        for a in 0..ALPHAS {
            let det_a = tp[a] / (tp[a] + fn_[a] + fp[a]).max(1.0);
            let ass: f64 = matches[a]
                .iter()
                .map(|(&(g, h), &m)| {
                    let denominator =
                        gt_count.get(&g).copied().unwrap_or(0.0) + hyp_count.get(&h).copied().unwrap_or(0.0) - m;
                    m * m / denominator.max(1.0)
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
/// similarity only; others never count at any threshold).
fn best_matches(f: &Frame, alignment: &dyn Fn(u32, u32) -> f64) -> Vec<(usize, usize, f64)> {
    let edges = &f.sims;
    let mut out = Vec::new();
    for (rows, cols) in crate::scoring::edge_components(f.truths.len(), f.hyps.len(), edges) {
        // Minimise the negated score; pairs without similarity cost nothing and count nothing.
        let mut cost = vec![0.0; rows.len() * cols.len()];
        let mut sim = vec![0.0; rows.len() * cols.len()];
        for &(i, j, s) in edges {
            if let (Ok(r), Ok(c)) = (rows.binary_search(&i), cols.binary_search(&j)) {
                cost[r * cols.len() + c] = -(s * alignment(f.truths[i], f.hyps[j]));
                sim[r * cols.len() + c] = s;
            }
        }
        for (r, c) in crate::scoring::assign_rectangular(rows.len(), cols.len(), &cost) {
            let s = sim[r * cols.len() + c];
            if s > 0.0 {
                out.push((rows[r], cols[c], s));
            }
        }
    }
    out
}
