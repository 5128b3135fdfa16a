//! Per-frame matching: which truths are scored and which hypotheses kept, and the gated pairs of
//! a frame (truth, hypothesis, distance) that CLEAR MOT, IDF1 and HOTA all start from.
//!
//! A truth and a hypothesis may match only when they are of the same class family (vehicle,
//! vulnerable road user, static; an unknown hypothesis matches any) and their ground-plane centres
//! are within that family's gate.

use std::cmp::Ordering;

use rsu_fusion::ObjectClass;
use rsu_fusion::class::MotionFamily;
use rsu_fusion::spatial::SpatialGrid;

use super::distance::{compare_hypot, hypot_within};
use super::{Hypothesis, ScoringConfig, TruthObject};

/// Sorts one truth's (truth, index into `kept`, distance) pairs by the east coordinate of the
/// hypothesis (then its index), `kept` giving each one's index into `hyps`: the order in which
/// the HOTA sums have always been taken, kept so that they stay the same to the last bit.
fn sort_by_east(pairs: &mut [(usize, usize, f64)], hyps: &[Hypothesis], kept: &[usize]) {
    let east = |pair: &(usize, usize, f64)| hyps[kept[pair.1]].position_m[0];
    pairs.sort_unstable_by(|a, b| east(a).total_cmp(&east(b)).then(a.1.cmp(&b.1)));
}

/// Whether a truth matched within `family` may match a hypothesis of class `hyp`.
fn families_match(family: MotionFamily, hyp: ObjectClass) -> bool {
    match_family(hyp) == family || hyp == ObjectClass::Unknown
}

/// The family a class is matched within: riders move like vehicles but are gated as VRUs.
pub(super) fn match_family(class: ObjectClass) -> MotionFamily {
    if class.is_vru() { MotionFamily::Pedestrian } else { class.motion_family() }
}

/// Whether `t` and `h` may match under `config`, and their distance [m].
fn distance(config: &ScoringConfig, t: &TruthObject, h: &Hypothesis) -> Option<f64> {
    let family = match_family(t.class);
    let d = hypot_within(t.position_m[0] - h.position_m[0], t.position_m[1] - h.position_m[1], config.gate(family))?;
    families_match(family, h.class).then_some(d)
}

/// Per-frame buffers of [`super::Scorer::add_frame_indexed`]; their contents do not outlive a call. In
/// a frame, truths are numbered among the scored ones and hypotheses among the kept ones.
#[derive(Clone, Debug, Default)]
pub(super) struct FrameScratch {
    /// Index into the frame's truths of each scored truth.
    pub(super) scored_at: Vec<usize>,
    /// By index into the frame's hypotheses: whether it is kept, and its index among the kept.
    pub(super) kept: Vec<bool>,
    pub(super) kept_at: Vec<usize>,
    /// Index into the frame's hypotheses of each kept one.
    pub(super) kept_hyps: Vec<usize>,
    /// The hypotheses the grid yields near one truth.
    pub(super) candidates: Vec<usize>,
    /// (truth, hypothesis, distance [m]) of the gated pairs, by truth; those of truth `ti` start
    /// at `pair_starts[ti]` (one more start ends the last truth's).
    pub(super) pairs: Vec<(usize, usize, f64)>,
    pub(super) pair_starts: Vec<usize>,
    /// HOTA's (truth, hypothesis, similarity).
    pub(super) sims: Vec<(usize, usize, f64)>,
    pub(super) truth_ids: Vec<u32>,
    pub(super) hyp_ids: Vec<u32>,
    /// Slot of each truth in [`super::Scorer::truths`] and of each hypothesis in [`super::Scorer::hyps`].
    pub(super) truth_slots: Vec<usize>,
    pub(super) hyp_slots: Vec<usize>,
    /// CLEAR MOT's matches (truth, hypothesis, distance [m]) and who is matched.
    pub(super) matches: Vec<(usize, usize, f64)>,
    /// How many of `matches` (the first ones) are earlier matches kept, not assigned afresh.
    pub(super) kept_matches: usize,
    pub(super) truth_used: Vec<bool>,
    pub(super) hyp_used: Vec<bool>,
    /// The truths and hypotheses left for the assignment, the column of each hypothesis among
    /// them, their gated pairs (row, column, distance [m]) and one group's cost matrix.
    pub(super) free_t: Vec<usize>,
    pub(super) free_h: Vec<usize>,
    pub(super) column_of: Vec<usize>,
    pub(super) edges: Vec<(usize, usize, f64)>,
    pub(super) cost: Vec<f64>,
}

impl FrameScratch {
    /// Empties every buffer.
    pub(super) fn clear(&mut self) {
        let FrameScratch {
            scored_at,
            kept,
            kept_at,
            kept_hyps,
            candidates,
            pairs,
            pair_starts,
            sims,
            truth_ids,
            hyp_ids,
            truth_slots,
            hyp_slots,
            matches,
            kept_matches,
            truth_used,
            hyp_used,
            free_t,
            free_h,
            column_of,
            edges,
            cost,
        } = self;
        for v in
            [scored_at, kept_at, kept_hyps, candidates, pair_starts, truth_slots, hyp_slots, free_t, free_h, column_of]
        {
            v.clear();
        }
        for v in [pairs, sims, matches, edges] {
            v.clear();
        }
        for v in [kept, truth_used, hyp_used] {
            v.clear();
        }
        truth_ids.clear();
        hyp_ids.clear();
        cost.clear();
        *kept_matches = 0;
    }
}

impl FrameScratch {
    /// Fills the frame's truths in coverage (scored), the hypotheses kept (those within the gate
    /// of a truth outside coverage are neither right nor wrong), their ids, the gated pairs and
    /// HOTA's similarities; `grid` holds the positions of `hyps`. `near(truth, distance_m)` (an
    /// index into `truths` and the `hypot` distance) is called for every hypothesis within
    /// `near_radius_m` of a scored truth, from the same grid queries.
    pub(super) fn gate(
        &mut self,
        config: &ScoringConfig,
        truths: &[TruthObject],
        hyps: &[Hypothesis],
        grid: &SpatialGrid,
        near_radius_m: f64,
        mut near: impl FnMut(usize, f64),
    ) {
        // Truths in coverage (scored), by index in `truths`. Hypotheses on objects outside
        // coverage are neither right nor wrong: they are not kept.
        self.kept.resize(hyps.len(), true);
        for (i, t) in truths.iter().enumerate() {
            if t.in_coverage {
                self.scored_at.push(i);
            } else {
                let [x, y] = t.position_m;
                grid.for_each_within(x, y, config.gate(match_family(t.class)), |hi| {
                    if distance(config, t, &hyps[hi]).is_some() {
                        self.kept[hi] = false;
                    }
                });
            }
        }
        // The kept hypotheses (by index in `hyps`), and the index of each among them.
        self.kept_at.resize(hyps.len(), usize::MAX);
        for hi in (0..hyps.len()).filter(|&hi| self.kept[hi]) {
            self.kept_at[hi] = self.kept_hyps.len();
            self.kept_hyps.push(hi);
        }
        // Pairs of scored truths and kept hypotheses within the gate: by truth, then as
        // `sort_by_east` orders them; the pairs of truth `ti` start at `pair_starts[ti]`. The same
        // grid queries serve `near`, and one `hypot` serves both.
        for (ti, &i) in self.scored_at.iter().enumerate() {
            let t = &truths[i];
            let family = match_family(t.class);
            let gate_m = config.gate(family);
            let reach_m = gate_m.max(near_radius_m);
            self.pair_starts.push(self.pairs.len());
            // The candidates first, then the checks: a grid visitor that captures only the buffer
            // is cheaper to set up per truth than one capturing all the checks need.
            self.candidates.clear();
            let [x, y] = t.position_m;
            grid.for_each_within(x, y, reach_m, |hi| self.candidates.push(hi));
            for &hi in &self.candidates {
                let h = &hyps[hi];
                let (dx, dy) = (t.position_m[0] - h.position_m[0], t.position_m[1] - h.position_m[1]);
                if compare_hypot(dx, dy, reach_m) == Some(Ordering::Greater) {
                    continue;
                }
                let d = dx.hypot(dy);
                if d <= near_radius_m {
                    near(i, d);
                }
                // As `distance` decides, from the same `hypot`.
                if self.kept[hi] && d <= gate_m && families_match(family, h.class) {
                    self.pairs.push((ti, self.kept_at[hi], d));
                }
            }
            let first = self.pair_starts[ti];
            sort_by_east(&mut self.pairs[first..], hyps, &self.kept_hyps);
            // HOTA's similarities, in the same order: 1 - d / gate within the class gate.
            let similarities = self.pairs[first..].iter().map(|&(ti, hi, d)| (ti, hi, 1.0 - d / gate_m));
            self.sims.extend(similarities.filter(|&(_, _, s)| s > 0.0));
        }
        self.pair_starts.push(self.pairs.len());
        self.truth_ids.extend(self.scored_at.iter().map(|&i| truths[i].id));
        self.hyp_ids.extend(self.kept_hyps.iter().map(|&hi| hyps[hi].id));
    }
}
