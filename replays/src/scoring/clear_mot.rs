//! CLEAR MOT (Bernardin & Stiefelhagen 2008) as py-motmetrics 1.4's `MOTAccumulator` computes it:
//! each frame first keeps every truth's last match ever (however many frames ago) when that
//! hypothesis is present, not yet taken and within the gate, assigns the rest optimally (least
//! total distance, as many matches as possible), then counts matches, misses, false positives, id
//! switches, transfers and fragmentations per class, and the state errors of the matches.

use std::cmp::Ordering;

use rsu_fusion::{ObjectClass, Timestamp};

use super::components::edge_components;
use super::distance::compare_hypot;
use super::lap::assign_rectangular;
use super::matching::FrameScratch;
use super::{ClassMetrics, Hypothesis, Scorer, TruthObject};

/// CLEAR MOT counters of one class.
#[derive(Clone, Debug, Default)]
pub(super) struct ClassCounts {
    pub(super) truths: u64,
    pub(super) matches: u64,
    pub(super) misses: u64,
    pub(super) false_positives: u64,
    pub(super) switches: u64,
    pub(super) transfers: u64,
    pub(super) fragmentations: u64,
    pub(super) distance_sum_m: f64,
}

/// The counters of `class` in `classes` (see [`Scorer`]), created on first sight.
pub(super) fn class_counts(
    classes: &mut [Option<ClassCounts>; ObjectClass::COUNT],
    class: ObjectClass,
) -> &mut ClassCounts {
    classes[class.index()].get_or_insert_with(ClassCounts::default)
}

/// The CLEAR MOT metrics of one class's counters (or of all classes' summed).
pub(super) fn class_metrics(c: &ClassCounts) -> ClassMetrics {
    ClassMetrics {
        num_truths: c.truths,
        num_matches: c.matches,
        num_misses: c.misses,
        num_false_positives: c.false_positives,
        num_switches: Some(c.switches),
        num_transfers: c.transfers,
        num_fragmentations: Some(c.fragmentations),
        mota: if c.truths == 0 {
            if c.false_positives == 0 { 1.0 } else { f64::NEG_INFINITY }
        } else {
            1.0 - (c.misses + c.false_positives + c.switches) as f64 / c.truths as f64
        },
        motp_m: (c.matches > 0).then(|| c.distance_sum_m / c.matches as f64),
    }
}

/// The absolute difference of two headings [rad], wrapped to at most π.
fn heading_error_rad(a_rad: f64, b_rad: f64) -> f64 {
    use std::f64::consts::{PI, TAU};
    ((a_rad - b_rad + PI).rem_euclid(TAU) - PI).abs()
}

impl Scorer {
    /// CLEAR MOT's matches of frame number `frame` into `f.matches`, `f.truth_used` and
    /// `f.hyp_used`, from the gated pairs that [`FrameScratch::gate`] found.
    pub(super) fn match_frame(&self, f: &mut FrameScratch, frame: u64) {
        // 1. Keep each truth's last match ever, as py-motmetrics 1.4 does: in the frame's truth
        //    order, the first hypothesis of that id not yet taken, if within the gate. A gap (the
        //    truth absent or missed) does not end the match, and neither does the hypothesis having
        //    been matched to another truth since.
        let (n_truths, n_hyps) = (f.scored_at.len(), f.kept_hyps.len());
        f.truth_used.resize(n_truths, false);
        f.hyp_used.resize(n_hyps, false);
        for ti in 0..n_truths {
            let Some(hid) = self.truths[f.truth_slots[ti]].last_match.map(|(hid, _)| hid) else { continue };
            let Some((present_in, first)) = self.hyp_slots.get(hid).and_then(|slot| self.hyps[slot].present) else {
                continue;
            };
            if present_in != frame {
                continue;
            }
            // Hypothesis ids are unique in a frame but for broken input; then the next of that id.
            let Some(hi) = (first..n_hyps).find(|&hi| f.hyp_ids[hi] == hid && !f.hyp_used[hi]) else { continue };
            // Still within the gate: the pair is among the truth's gated pairs.
            if let Some(&(_, _, d)) = f.pairs[f.pair_starts[ti]..f.pair_starts[ti + 1]].iter().find(|p| p.1 == hi) {
                f.matches.push((ti, hi, d));
                f.truth_used[ti] = true;
                f.hyp_used[hi] = true;
            }
        }
        f.kept_matches = f.matches.len();
        // 2. Optimal assignment of the rest, minimising total distance within the gates.
        f.free_t.extend((0..n_truths).filter(|&i| !f.truth_used[i]));
        f.free_h.extend((0..n_hyps).filter(|&i| !f.hyp_used[i]));
        f.column_of.resize(n_hyps, usize::MAX);
        for (c, &hi) in f.free_h.iter().enumerate() {
            f.column_of[hi] = c;
        }
        // Gated pairs split the problem into independent groups (connected components), so a
        // crowded frame costs many small assignments instead of one cubic one. Edges by row, then
        // by column.
        for (r, &ti) in f.free_t.iter().enumerate() {
            let row_start = f.edges.len();
            for &(_, hi, d) in &f.pairs[f.pair_starts[ti]..f.pair_starts[ti + 1]] {
                if f.column_of[hi] != usize::MAX {
                    f.edges.push((r, f.column_of[hi], d));
                }
            }
            f.edges[row_start..].sort_by_key(|&(_, c, _)| c);
        }
        for group in edge_components(f.free_t.len(), f.free_h.len(), &f.edges).iter() {
            const FORBIDDEN: f64 = 1e9;
            let (rows, cols) = (group.rows, group.cols);
            f.cost.clear();
            f.cost.resize(rows.len() * cols.len(), FORBIDDEN);
            for &(r, c, d) in group.edges.iter().map(|&e| &f.edges[e]) {
                if let (Ok(i), Ok(j)) = (rows.binary_search(&r), cols.binary_search(&c)) {
                    f.cost[i * cols.len() + j] = d;
                }
            }
            for (i, j) in assign_rectangular(rows.len(), cols.len(), &f.cost) {
                let d = f.cost[i * cols.len() + j];
                if d < FORBIDDEN {
                    let (ti, hi) = (f.free_t[rows[i]], f.free_h[cols[j]]);
                    f.matches.push((ti, hi, d));
                    f.truth_used[ti] = true;
                    f.hyp_used[hi] = true;
                }
            }
        }
    }

    /// Counts frame number `frame` at `time` once [`Scorer::match_frame`] has matched it.
    pub(super) fn count_frame(
        &mut self,
        f: &FrameScratch,
        time: Timestamp,
        truths: &[TruthObject],
        hyps: &[Hypothesis],
        frame: u64,
    ) {
        let scored = |ti: usize| &truths[f.scored_at[ti]];
        let kept = |hi: usize| &hyps[f.kept_hyps[hi]];
        let (n_truths, n_hyps) = (f.scored_at.len(), f.kept_hyps.len());
        // 3. Count.
        for (k, &(ti, hi, d)) in f.matches.iter().enumerate() {
            let (t, h) = (scored(ti), kept(hi));
            let counts = class_counts(&mut self.classes, t.class);
            counts.matches += 1;
            counts.distance_sum_m += d;
            let history = &mut self.truths[f.truth_slots[ti]];
            // A switch: the truth's last match ever was another hypothesis (never so for a kept
            // match).
            if let Some((prev, _)) = history.last_match
                && prev != h.id
            {
                counts.switches += 1;
            }
            if history.was_tracked == Some(false) && history.last_match.is_some() {
                counts.fragmentations += 1;
            }
            history.last_match = Some((h.id, frame));
            let hyp = &mut self.hyps[f.hyp_slots[hi]];
            hyp.matched = true;
            // A transfer: the hypothesis was last given to another truth. As py-motmetrics 1.4
            // does, only the assignment (step 2) records whom a hypothesis was given to: a kept
            // match (step 1) neither counts nor records one.
            if k >= f.kept_matches {
                if hyp.last_assigned.is_some_and(|prev| prev != t.id) {
                    counts.transfers += 1;
                }
                hyp.last_assigned = Some(t.id);
            }
            self.position_errors_m.push(d);
            let dv = (t.velocity_mps[0] - h.velocity_mps[0]).hypot(t.velocity_mps[1] - h.velocity_mps[1]);
            self.velocity_errors_mps.push(dv);
            if compare_hypot(t.velocity_mps[0], t.velocity_mps[1], 1.0).is_some_and(|o| o != Ordering::Less) {
                self.heading_errors_rad.push(heading_error_rad(t.yaw_rad, h.yaw_rad));
            }
        }
        for ti in 0..n_truths {
            let t = scored(ti);
            let counts = class_counts(&mut self.classes, t.class);
            counts.truths += 1;
            if !f.truth_used[ti] {
                counts.misses += 1;
            }
            let history = &mut self.truths[f.truth_slots[ti]];
            history.frames += 1;
            // Tracked when any object of this id was matched in this frame.
            let tracked = history.last_match.is_some_and(|(_, matched_in)| matched_in == frame);
            // First seen and first tracked (a truth matched in the frame it first appears in is
            // tracked at once).
            let (_, first_tracked) = history.first_seen.get_or_insert((time, None));
            history.last_seen = Some(time);
            if tracked {
                first_tracked.get_or_insert(time);
            }
            if let Some(prev) = history.last_position_m.replace(t.position_m) {
                let step = (t.position_m[0] - prev[0]).hypot(t.position_m[1] - prev[1]);
                self.distance_total_m += step;
                if tracked {
                    self.distance_tracked_m += step;
                }
            }
            history.was_tracked = Some(tracked);
        }
        for hi in 0..n_hyps {
            self.hyps[f.hyp_slots[hi]].frames += 1;
            if !f.hyp_used[hi] {
                class_counts(&mut self.classes, kept(hi).class).false_positives += 1;
            }
        }
    }
}
