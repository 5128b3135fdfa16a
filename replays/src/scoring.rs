//! Tracking metrics against ground truth: CLEAR MOT (MOTA, MOTP, id switches, fragmentations),
//! IDF1, state errors (position, velocity, heading), time to a confirmed track, false tracks per
//! minute and coverage, overall and per class.
//!
//! Definitions follow py-motmetrics (CLEAR MOT: Bernardin & Stiefelhagen 2008; IDF1: Ristani et
//! al. 2016); `METRICS.md` at the repository root states each one. Matching is on ground-plane
//! centre distance with a class-aware gate: a ground-truth object and a hypothesis may match only
//! when they are of the same class family (vehicle, vulnerable road user, static) and closer than
//! that family's gate.
//!
//! Usage: build a [`Scorer`], call [`Scorer::add_frame`] once per ground-truth timestamp with the
//! hypotheses predicted to that time, then [`Scorer::finish`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rsu_fusion::assignment::hungarian;
use rsu_fusion::class::MotionFamily;
use rsu_fusion::{ObjectClass, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ids::IdSlots;
use crate::spatial::{GridIndex, compare_hypot, hypot_within};

/// Scoring parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// Match gate for vehicles [m] (ground-plane centre distance).
    pub gate_vehicle_m: f64,
    /// Match gate for pedestrians and riders [m].
    pub gate_vru_m: f64,
    /// Match gate for static obstacles [m].
    pub gate_static_m: f64,
    /// Length of the trajectory pieces over which coverage is judged [m].
    pub coverage_step_m: f64,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig { gate_vehicle_m: 2.0, gate_vru_m: 1.0, gate_static_m: 1.0, coverage_step_m: 1.0 }
    }
}

impl ScoringConfig {
    /// The largest match gate [m]: the cell size of the hypothesis grid.
    pub(crate) fn largest_gate_m(&self) -> f64 {
        self.gate_vehicle_m.max(self.gate_vru_m).max(self.gate_static_m)
    }

    fn gate(&self, family: MotionFamily) -> f64 {
        match family {
            MotionFamily::Vehicle => self.gate_vehicle_m,
            MotionFamily::Pedestrian => self.gate_vru_m,
            MotionFamily::Static => self.gate_static_m,
        }
    }
}

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
fn match_family(class: ObjectClass) -> MotionFamily {
    if class.is_vru() { MotionFamily::Pedestrian } else { class.motion_family() }
}

/// The absolute difference of two headings [rad], wrapped to at most π.
fn heading_error_rad(a_rad: f64, b_rad: f64) -> f64 {
    use std::f64::consts::{PI, TAU};
    ((a_rad - b_rad + PI).rem_euclid(TAU) - PI).abs()
}

/// A ground-truth object at one timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct TruthObject {
    /// Unique id in the log.
    pub id: u32,
    /// True class.
    pub class: ObjectClass,
    /// Ground-plane centre (east, north) [m].
    pub position_m: [f64; 2],
    /// Velocity (east, north) [m/s].
    pub velocity_mps: [f64; 2],
    /// Heading [rad], counter-clockwise from east.
    pub yaw_rad: f64,
    /// Whether any sensor could see it (in range and field of view). Objects outside every
    /// sensor's coverage are not scored.
    pub in_coverage: bool,
}

/// A tracker output (hypothesis) at one timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// Track id.
    pub id: u32,
    /// Fused class.
    pub class: ObjectClass,
    /// Ground-plane centre (east, north) [m].
    pub position_m: [f64; 2],
    /// Velocity (east, north) [m/s].
    pub velocity_mps: [f64; 2],
    /// Heading [rad].
    pub yaw_rad: f64,
}

/// Accumulates matches frame by frame.
#[derive(Clone, Debug)]
pub struct Scorer {
    config: ScoringConfig,
    first_time: Option<Timestamp>,
    last_time: Option<Timestamp>,
    /// Frames added so far; during [`Scorer::add_frame`], the number of the frame being added.
    frames: u64,
    /// Truth id → its slot in `truths`.
    truth_slots: IdSlots,
    truths: Vec<TruthHistory>,
    /// Hypothesis id → its slot in `hyps`.
    hyp_slots: IdSlots,
    hyps: Vec<HypHistory>,
    /// Per class counters, at [`ObjectClass::index`] (so in class order); `None` for classes
    /// never seen.
    classes: [Option<ClassCounts>; ObjectClass::COUNT],
    position_errors_m: Vec<f64>,
    velocity_errors_mps: Vec<f64>,
    heading_errors_rad: Vec<f64>,
    distance_total_m: f64,
    distance_tracked_m: f64,
    hota: crate::hota::Hota,
    /// Buffers of [`Scorer::add_frame_indexed`], kept between frames.
    scratch: FrameScratch,
}

/// Per-frame buffers of [`Scorer::add_frame_indexed`]; their contents do not outlive a call. In
/// a frame, truths are numbered among the scored ones and hypotheses among the kept ones.
#[derive(Clone, Debug, Default)]
struct FrameScratch {
    /// Index into the frame's truths of each scored truth.
    scored_at: Vec<usize>,
    /// By index into the frame's hypotheses: whether it is kept, and its index among the kept.
    kept: Vec<bool>,
    kept_at: Vec<usize>,
    /// Index into the frame's hypotheses of each kept one.
    kept_hyps: Vec<usize>,
    /// The hypotheses the grid yields near one truth.
    candidates: Vec<usize>,
    /// (truth, hypothesis, distance [m]) of the gated pairs, by truth; those of truth `ti` start
    /// at `pair_starts[ti]` (one more start ends the last truth's).
    pairs: Vec<(usize, usize, f64)>,
    pair_starts: Vec<usize>,
    /// HOTA's (truth, hypothesis, similarity).
    sims: Vec<(usize, usize, f64)>,
    truth_ids: Vec<u32>,
    hyp_ids: Vec<u32>,
    /// Slot of each truth in [`Scorer::truths`] and of each hypothesis in [`Scorer::hyps`].
    truth_slots: Vec<usize>,
    hyp_slots: Vec<usize>,
    /// CLEAR MOT's matches (truth, hypothesis, distance [m]) and who is matched.
    matches: Vec<(usize, usize, f64)>,
    truth_used: Vec<bool>,
    hyp_used: Vec<bool>,
    /// The truths and hypotheses left for the assignment, the column of each hypothesis among
    /// them, their gated pairs (row, column, distance [m]) and one group's cost matrix.
    free_t: Vec<usize>,
    free_h: Vec<usize>,
    column_of: Vec<usize>,
    edges: Vec<(usize, usize, f64)>,
    cost: Vec<f64>,
}

impl FrameScratch {
    /// Empties every buffer.
    fn clear(&mut self) {
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
    }
}

/// What the scorer remembers of one ground-truth object across frames.
#[derive(Clone, Debug, Default)]
struct TruthHistory {
    /// The last hypothesis ever matched to it (id switches) and the number of the frame of that
    /// match (a match of the previous frame is kept while still valid).
    last_match: Option<(u32, u64)>,
    /// Whether it was tracked in its previous scored frame (fragmentations).
    was_tracked: Option<bool>,
    /// Frames it was scored in (IDF1).
    frames: u64,
    /// First time in coverage, and first time matched after that frame.
    first_seen: Option<(Timestamp, Option<Timestamp>)>,
    /// Position in its previous scored frame (coverage).
    last_position_m: Option<[f64; 2]>,
    /// (hypothesis id, frames in which both were present and within the gate) for IDF1.
    overlaps: Vec<(u32, u64)>,
}

/// What the scorer remembers of one hypothesis across frames.
#[derive(Clone, Debug, Default)]
struct HypHistory {
    /// Frames it was scored in (IDF1).
    frames: u64,
    /// Whether it was ever matched (false tracks).
    matched: bool,
    /// The last frame it was present in (its number) and its first index among that frame's
    /// kept hypotheses.
    present: Option<(u64, usize)>,
}

/// The counters of `class` in `classes` (see [`Scorer`]), created on first sight.
fn class_counts(classes: &mut [Option<ClassCounts>; ObjectClass::COUNT], class: ObjectClass) -> &mut ClassCounts {
    classes[class.index()].get_or_insert_with(ClassCounts::default)
}

/// The slot of `id` in `histories` (indexed by `slots`), created on first sight.
fn slot_of<H: Default>(slots: &mut IdSlots, histories: &mut Vec<H>, id: u32) -> usize {
    let (slot, new) = slots.slot(id);
    if new {
        histories.push(H::default());
    }
    slot
}

#[derive(Clone, Debug, Default)]
struct ClassCounts {
    truths: u64,
    matches: u64,
    misses: u64,
    false_positives: u64,
    switches: u64,
    fragmentations: u64,
    distance_sum_m: f64,
}

/// Metrics of one class (or of all).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Ground-truth object instances scored (objects × frames).
    pub num_truths: u64,
    /// Matched instances.
    pub num_matches: u64,
    /// Missed instances (false negatives).
    pub num_misses: u64,
    /// Hypothesis instances matched to nothing.
    pub num_false_positives: u64,
    /// Id switches.
    pub num_switches: u64,
    /// Fragmentations: a tracked object becoming untracked and later tracked again.
    pub num_fragmentations: u64,
    /// 1 - (misses + false positives + switches) / truths.
    pub mota: f64,
    /// Mean distance of matches [m].
    pub motp_m: f64,
}

/// Everything [`Scorer::finish`] measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Scored timestamps.
    pub num_frames: u64,
    /// Time from the first to the last scored timestamp [s].
    pub duration_s: f64,
    /// CLEAR MOT over all classes.
    pub overall: ClassMetrics,
    /// CLEAR MOT per ground-truth class (false positives per hypothesis class).
    pub per_class: BTreeMap<ObjectClass, ClassMetrics>,
    /// IDF1: 2 IDTP / (truth instances + hypothesis instances).
    pub idf1: f64,
    /// Identity true positives of the best global truth↔track assignment.
    pub idtp: u64,
    /// Id switches per 100 s of tracked ground truth (matches × frame interval).
    pub switches_per_100_track_s: f64,
    /// Position error of matches: RMSE and 95th percentile [m].
    pub position_rmse_m: f64,
    /// 95th percentile position error [m].
    pub position_p95_m: f64,
    /// Velocity error of matches: RMSE [m/s].
    pub velocity_rmse_mps: f64,
    /// 95th percentile velocity error [m/s].
    pub velocity_p95_mps: f64,
    /// Heading error of moving matches (speed ≥ 1 m/s): RMSE [deg].
    pub heading_rmse_deg: f64,
    /// 95th percentile heading error [deg].
    pub heading_p95_deg: f64,
    /// Per truth object: time from first being in coverage to first matched [s]; objects never
    /// matched are counted in `never_tracked`.
    pub time_to_track_s: Vec<f64>,
    /// Median of `time_to_track_s` [s].
    pub time_to_track_median_s: f64,
    /// Max of `time_to_track_s` [s].
    pub time_to_track_max_s: f64,
    /// Truth objects in coverage that were never matched.
    pub never_tracked: u64,
    /// Hypothesis ids never matched to any truth, per minute of scored time.
    pub false_tracks_per_min: f64,
    /// Fraction of the distance travelled by in-coverage truth objects during which they were
    /// tracked.
    pub coverage: f64,
    /// Per truth id: first time matched [UTC ns] (absent when never matched).
    pub first_matched_ns: BTreeMap<u32, i64>,
    /// HOTA, DetA, AssA and LocA (similarity 1 - d / gate within the class gate).
    #[serde(default)]
    pub hota: crate::hota::HotaScores,
}

impl Scorer {
    /// A scorer with `config`.
    pub fn new(config: ScoringConfig) -> Self {
        Scorer {
            config,
            first_time: None,
            last_time: None,
            frames: 0,
            truth_slots: IdSlots::default(),
            truths: Vec::new(),
            hyp_slots: IdSlots::default(),
            hyps: Vec::new(),
            classes: std::array::from_fn(|_| None),
            position_errors_m: Vec::new(),
            velocity_errors_mps: Vec::new(),
            heading_errors_rad: Vec::new(),
            distance_total_m: 0.0,
            distance_tracked_m: 0.0,
            hota: crate::hota::Hota::default(),
            scratch: FrameScratch::default(),
        }
    }

    /// Whether `t` and `h` may match, and their distance [m].
    fn distance(&self, t: &TruthObject, h: &Hypothesis) -> Option<f64> {
        let family = match_family(t.class);
        let d = hypot_within(
            t.position_m[0] - h.position_m[0],
            t.position_m[1] - h.position_m[1],
            self.config.gate(family),
        )?;
        families_match(family, h.class).then_some(d)
    }

    /// Scores one timestamp: `truths` at `time`, `hyps` predicted to `time`. Truths outside
    /// coverage are ignored, and so are hypotheses within the gate of one (neither missed nor
    /// false).
    pub fn add_frame(&mut self, time: Timestamp, truths: &[TruthObject], hyps: &[Hypothesis]) {
        let index = GridIndex::new(hyps.iter().map(|h| h.position_m), self.config.largest_gate_m());
        self.add_frame_indexed(time, truths, hyps, &index, 0.0, |_, _| {});
    }

    /// [`Scorer::add_frame`] with the hypotheses already in a grid (of any cell size), which the
    /// caller may query too at no extra search: `near(truth, distance_m)` (an index into `truths`
    /// and the `hypot` distance) is called for every hypothesis within `near_radius_m` of a
    /// scored truth.
    pub(crate) fn add_frame_indexed(
        &mut self,
        time: Timestamp,
        truths: &[TruthObject],
        hyps: &[Hypothesis],
        all_index: &GridIndex,
        near_radius_m: f64,
        mut near: impl FnMut(usize, f64),
    ) {
        self.first_time.get_or_insert(time);
        self.last_time = Some(time);
        self.frames += 1;
        let frame = self.frames;
        // The buffers of earlier frames, emptied (their allocations are what is kept).
        let mut f = std::mem::take(&mut self.scratch);
        f.clear();
        // Truths in coverage (scored), by index in `truths`. Hypotheses on objects outside
        // coverage are neither right nor wrong: they are not kept.
        f.kept.resize(hyps.len(), true);
        for (i, t) in truths.iter().enumerate() {
            if t.in_coverage {
                f.scored_at.push(i);
            } else {
                all_index.for_each_near(t.position_m, self.config.gate(match_family(t.class)), |hi| {
                    if self.distance(t, &hyps[hi]).is_some() {
                        f.kept[hi] = false;
                    }
                });
            }
        }
        // The kept hypotheses (by index in `hyps`), and the index of each among them.
        f.kept_at.resize(hyps.len(), usize::MAX);
        for hi in (0..hyps.len()).filter(|&hi| f.kept[hi]) {
            f.kept_at[hi] = f.kept_hyps.len();
            f.kept_hyps.push(hi);
        }
        let scored = |ti: usize| &truths[f.scored_at[ti]];
        let kept = |hi: usize| &hyps[f.kept_hyps[hi]];
        // Pairs of scored truths and kept hypotheses within the gate: by truth, then as
        // `sort_by_east` orders them; the pairs of truth `ti` start at `pair_starts[ti]`. The same
        // grid queries serve `near`, and one `hypot` serves both.
        for (ti, &i) in f.scored_at.iter().enumerate() {
            let t = &truths[i];
            let family = match_family(t.class);
            let gate_m = self.config.gate(family);
            let reach_m = gate_m.max(near_radius_m);
            f.pair_starts.push(f.pairs.len());
            // The candidates first, then the checks: a grid visitor that captures only the buffer
            // is cheaper to set up per truth than one capturing all the checks need.
            f.candidates.clear();
            all_index.for_each_near(t.position_m, reach_m, |hi| f.candidates.push(hi));
            for &hi in &f.candidates {
                let h = &hyps[hi];
                let (dx, dy) = (t.position_m[0] - h.position_m[0], t.position_m[1] - h.position_m[1]);
                if compare_hypot(dx, dy, reach_m) == Some(Ordering::Greater) {
                    continue;
                }
                let d = dx.hypot(dy);
                if d <= near_radius_m {
                    near(i, d);
                }
                // As `Scorer::distance` decides, from the same `hypot`.
                if f.kept[hi] && d <= gate_m && families_match(family, h.class) {
                    f.pairs.push((ti, f.kept_at[hi], d));
                }
            }
            let first = f.pair_starts[ti];
            sort_by_east(&mut f.pairs[first..], hyps, &f.kept_hyps);
            // HOTA's similarities, in the same order: 1 - d / gate within the class gate.
            let similarities = f.pairs[first..].iter().map(|&(ti, hi, d)| (ti, hi, 1.0 - d / gate_m));
            f.sims.extend(similarities.filter(|&(_, _, s)| s > 0.0));
        }
        f.pair_starts.push(f.pairs.len());
        f.truth_ids.extend(f.scored_at.iter().map(|&i| truths[i].id));
        f.hyp_ids.extend(f.kept_hyps.iter().map(|&hi| hyps[hi].id));
        self.hota.add_frame(&f.truth_ids, &f.hyp_ids, &f.sims);

        f.truth_slots.extend(f.truth_ids.iter().map(|&id| slot_of(&mut self.truth_slots, &mut self.truths, id)));
        f.hyp_slots.extend(f.hyp_ids.iter().map(|&id| slot_of(&mut self.hyp_slots, &mut self.hyps, id)));
        // The first kept hypothesis of each id in this frame, for keeping last frame's matches.
        for (hi, &slot) in f.hyp_slots.iter().enumerate() {
            let history = &mut self.hyps[slot];
            if history.present.is_none_or(|(seen_in, _)| seen_in != frame) {
                history.present = Some((frame, hi));
            }
        }

        // 1. Keep last frame's matches that are still valid (py-motmetrics' behaviour).
        let (n_truths, n_hyps) = (f.scored_at.len(), f.kept_hyps.len());
        f.truth_used.resize(n_truths, false);
        f.hyp_used.resize(n_hyps, false);
        for ti in 0..n_truths {
            if let Some((hid, matched_in)) = self.truths[f.truth_slots[ti]].last_match
                && matched_in + 1 == frame
                && let Some(slot) = self.hyp_slots.get(hid)
                && let Some((present_in, hi)) = self.hyps[slot].present
                && present_in == frame
                && !f.hyp_used[hi]
                // Still within the gate: the pair is among the truth's gated pairs.
                && let Some(&(_, _, d)) = f.pairs[f.pair_starts[ti]..f.pair_starts[ti + 1]].iter().find(|p| p.1 == hi)
            {
                f.matches.push((ti, hi, d));
                f.truth_used[ti] = true;
                f.hyp_used[hi] = true;
            }
        }
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

        // 3. Count.
        for &(ti, hi, d) in &f.matches {
            let (t, h) = (scored(ti), kept(hi));
            let counts = class_counts(&mut self.classes, t.class);
            counts.matches += 1;
            counts.distance_sum_m += d;
            let history = &mut self.truths[f.truth_slots[ti]];
            if let Some((prev, _)) = history.last_match
                && prev != h.id
            {
                counts.switches += 1;
            }
            if history.was_tracked == Some(false) && history.last_match.is_some() {
                counts.fragmentations += 1;
            }
            history.last_match = Some((h.id, frame));
            self.hyps[f.hyp_slots[hi]].matched = true;
            self.position_errors_m.push(d);
            let dv = (t.velocity_mps[0] - h.velocity_mps[0]).hypot(t.velocity_mps[1] - h.velocity_mps[1]);
            self.velocity_errors_mps.push(dv);
            if compare_hypot(t.velocity_mps[0], t.velocity_mps[1], 1.0).is_some_and(|o| o != Ordering::Less) {
                self.heading_errors_rad.push(heading_error_rad(t.yaw_rad, h.yaw_rad));
            }
        }
        // IDF1 counts every pair within the gate in each frame, matched by CLEAR MOT or not.
        for &(ti, hi, _) in &f.pairs {
            let overlaps = &mut self.truths[f.truth_slots[ti]].overlaps;
            match overlaps.iter_mut().find(|(h, _)| *h == f.hyp_ids[hi]) {
                Some((_, frames)) => *frames += 1,
                None => overlaps.push((f.hyp_ids[hi], 1)),
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
        self.scratch = f;
    }

    /// The metrics of everything added.
    pub fn finish(self) -> Metrics {
        // In class order, as the per-class sums have always been taken.
        let classes =
            || ObjectClass::ALL.iter().zip(&self.classes).filter_map(|(c, counts)| Some((*c, counts.as_ref()?)));
        let per_class: BTreeMap<ObjectClass, ClassMetrics> =
            classes().map(|(c, counts)| (c, class_metrics(counts))).collect();
        let mut total = ClassCounts::default();
        for (_, c) in classes() {
            total.truths += c.truths;
            total.matches += c.matches;
            total.misses += c.misses;
            total.false_positives += c.false_positives;
            total.switches += c.switches;
            total.fragmentations += c.fragmentations;
            total.distance_sum_m += c.distance_sum_m;
        }
        let by_truth_id: Vec<(u32, usize)> = self.truth_slots.by_id().collect();
        let overlaps: Vec<(u32, u32, u64)> = by_truth_id
            .iter()
            .flat_map(|&(id, slot)| self.truths[slot].overlaps.iter().map(move |&(h, frames)| (id, h, frames)))
            .collect();
        let idtp = best_identity_overlap(&overlaps);
        let truth_instances: u64 = self.truths.iter().map(|t| t.frames).sum();
        let hyp_instances: u64 = self.hyps.iter().map(|h| h.frames).sum();
        let idf1 = if truth_instances + hyp_instances == 0 {
            1.0
        } else {
            2.0 * idtp as f64 / (truth_instances + hyp_instances) as f64
        };
        let duration_s = match (self.first_time, self.last_time) {
            (Some(a), Some(b)) => b.secs_since(a),
            _ => 0.0,
        };
        let frame_interval_s = if self.frames > 1 { duration_s / (self.frames - 1) as f64 } else { 0.0 };
        let track_s = total.matches as f64 * frame_interval_s;
        let mut time_to_track_s = Vec::new();
        let mut never_tracked = 0;
        let mut first_matched_ns = BTreeMap::new();
        let first_seen = by_truth_id.iter().filter_map(|&(id, slot)| Some((id, self.truths[slot].first_seen?)));
        for (id, (seen, matched)) in first_seen {
            match matched {
                Some(m) => {
                    time_to_track_s.push(m.secs_since(seen));
                    first_matched_ns.insert(id, m.as_nanos());
                }
                None => never_tracked += 1,
            }
        }
        let false_tracks = self.hyps.iter().filter(|h| !h.matched).count();
        let minutes = duration_s / 60.0;
        let (position_rmse_m, position_p95_m) = rmse_p95(self.position_errors_m);
        let (velocity_rmse_mps, velocity_p95_mps) = rmse_p95(self.velocity_errors_mps);
        let (heading_rmse, heading_p95) = rmse_p95(self.heading_errors_rad);
        let mut sorted_ttt = time_to_track_s.clone();
        sorted_ttt.sort_by(f64::total_cmp);
        Metrics {
            num_frames: self.frames,
            duration_s,
            overall: class_metrics(&total),
            per_class,
            idf1,
            idtp,
            switches_per_100_track_s: if track_s > 0.0 { total.switches as f64 * 100.0 / track_s } else { 0.0 },
            position_rmse_m,
            position_p95_m,
            velocity_rmse_mps,
            velocity_p95_mps,
            heading_rmse_deg: heading_rmse.to_degrees(),
            heading_p95_deg: heading_p95.to_degrees(),
            time_to_track_median_s: percentile(&sorted_ttt, 0.5),
            time_to_track_max_s: sorted_ttt.last().copied().unwrap_or(0.0),
            time_to_track_s,
            never_tracked,
            false_tracks_per_min: if minutes > 0.0 { false_tracks as f64 / minutes } else { 0.0 },
            coverage: if self.distance_total_m > 0.0 { self.distance_tracked_m / self.distance_total_m } else { 1.0 },
            first_matched_ns,
            hota: self.hota.finish(),
        }
    }
}

fn class_metrics(c: &ClassCounts) -> ClassMetrics {
    ClassMetrics {
        num_truths: c.truths,
        num_matches: c.matches,
        num_misses: c.misses,
        num_false_positives: c.false_positives,
        num_switches: c.switches,
        num_fragmentations: c.fragmentations,
        mota: if c.truths == 0 {
            if c.false_positives == 0 { 1.0 } else { f64::NEG_INFINITY }
        } else {
            1.0 - (c.misses + c.false_positives + c.switches) as f64 / c.truths as f64
        },
        motp_m: if c.matches == 0 { 0.0 } else { c.distance_sum_m / c.matches as f64 },
    }
}

/// The largest total overlap of a one-to-one assignment of truths to hypotheses (IDTP), from the
/// (truth id, hypothesis id, frames within the gate) of every pair that overlapped, each once.
fn best_identity_overlap(overlaps: &[(u32, u32, u64)]) -> u64 {
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

/// Connected components of a bipartite graph, each with its rows, columns and edges (see
/// [`edge_components`]), stored flat.
#[derive(Clone, Debug, Default)]
pub(crate) struct Components {
    rows: Vec<usize>,
    cols: Vec<usize>,
    edges: Vec<usize>,
    /// End of each component's rows, columns and edges in the vectors above.
    ends: Vec<[usize; 3]>,
}

/// One connected component.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Component<'a> {
    /// Its rows, ascending.
    pub rows: &'a [usize],
    /// Its columns, ascending.
    pub cols: &'a [usize],
    /// Indices of its edges, ascending.
    pub edges: &'a [usize],
}

impl Components {
    /// The components, in the order of their union-find roots.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Component<'_>> {
        let starts = std::iter::once([0; 3]).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, end)| Component {
            rows: &self.rows[start[0]..end[0]],
            cols: &self.cols[start[1]..end[1]],
            edges: &self.edges[start[2]..end[2]],
        })
    }
}

/// Connected components of a bipartite graph of `nr` rows and `nc` columns given by `edges`
/// (row, column, weight): each component that has at least one edge, with its edges.
pub(crate) fn edge_components(nr: usize, nc: usize, edges: &[(usize, usize, f64)]) -> Components {
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut parent: Vec<usize> = (0..nr + nc).collect();
    let mut seen = vec![false; nr + nc];
    for &(r, c, _) in edges {
        seen[r] = true;
        seen[nr + c] = true;
        let (a, b) = (find(&mut parent, r), find(&mut parent, nr + c));
        if a != b {
            parent[a] = b;
        }
    }
    // Components in the order of their roots (every vertex of a component with an edge, its root
    // included, is the end of an edge). `component[v]`: the component of vertex v.
    const NONE: usize = usize::MAX;
    let mut component = vec![NONE; nr + nc];
    let mut count = 0;
    for v in 0..nr + nc {
        if seen[v] && find(&mut parent, v) == v {
            component[v] = count;
            count += 1;
        }
    }
    for v in 0..nr + nc {
        if seen[v] {
            component[v] = component[find(&mut parent, v)];
        }
    }
    // Counting sort of rows, columns and edges by component, each ascending within it.
    let mut ends = vec![[0usize; 3]; count];
    for v in (0..nr + nc).filter(|&v| seen[v]) {
        ends[component[v]][usize::from(v >= nr)] += 1;
    }
    for &(r, _, _) in edges {
        ends[component[r]][2] += 1;
    }
    let mut next = [0usize; 3];
    for end in &mut ends {
        for k in 0..3 {
            next[k] += end[k];
            end[k] = next[k] - end[k];
        }
    }
    // `ends` holds each component's starts for now; filling moves them to its ends.
    let mut out = Components { rows: vec![0; next[0]], cols: vec![0; next[1]], edges: vec![0; next[2]], ends };
    for v in (0..nr + nc).filter(|&v| seen[v]) {
        let slot = &mut out.ends[component[v]];
        if v < nr {
            out.rows[slot[0]] = v;
            slot[0] += 1;
        } else {
            out.cols[slot[1]] = v - nr;
            slot[1] += 1;
        }
    }
    for (e, &(r, _, _)) in edges.iter().enumerate() {
        let slot = &mut out.ends[component[r]];
        out.edges[slot[2]] = e;
        slot[2] += 1;
    }
    out
}

/// Minimum-cost assignment of an `nr × nc` row-major cost matrix of any shape: (row, column)
/// pairs, `min(nr, nc)` of them.
pub(crate) fn assign_rectangular(nr: usize, nc: usize, cost: &[f64]) -> Vec<(usize, usize)> {
    if nr.min(nc) == 1 {
        // One row or one column: its cheapest cell, the first of equals, as `hungarian` picks it
        // (and the first cell when no cost is below infinity).
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
        hungarian(nr, nc, cost).into_iter().enumerate().filter(|&(_, c)| c < nc).collect()
    } else {
        if let Some(rows) = row_minima_if_distinct(nc, nr, |c, r| cost[r * nc + c]) {
            return rows.into_iter().enumerate().map(|(c, r)| (r, c)).collect();
        }
        let transposed: Vec<f64> = (0..nc).flat_map(|c| (0..nr).map(move |r| cost[r * nc + c])).collect();
        hungarian(nc, nr, &transposed).into_iter().enumerate().filter(|&(_, r)| r < nr).map(|(c, r)| (r, c)).collect()
    }
}

/// The column of each row's cheapest cell (the first of equals) when those columns are all
/// distinct and every row has a cell below infinity, else `None`; `cost(row, column)` for
/// `nr <= nc`, at most 64 columns. This is exactly what `hungarian` returns then: it takes the
/// rows in order, and while every row so far got a column of its own, the column potentials are
/// still all zero, so a row's reduced costs are its costs less its own potential of zero, and it
/// takes the first of its cheapest cells directly when that column is free. HOTA's small groups
/// mostly end here, without `hungarian`'s allocations.
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

/// RMSE and 95th percentile of `errors`, which it reorders (no copy).
fn rmse_p95(mut errors: Vec<f64>) -> (f64, f64) {
    if errors.is_empty() {
        return (0.0, 0.0);
    }
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    // The one order statistic needed, without sorting everything (values equal under
    // `total_cmp` are the same bits, so any algorithm picks the same value).
    let p95_rank = rank(errors.len(), 0.95);
    let (_, p95, _) = errors.select_nth_unstable_by(p95_rank - 1, f64::total_cmp);
    (rmse, *p95)
}

/// The 1-based nearest rank of quantile `q` among `n > 0` values.
fn rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[rank(sorted.len(), q) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `assign_rectangular` through `hungarian` alone, as before its one-row shortcut.
    fn by_hungarian(nr: usize, nc: usize, cost: &[f64]) -> Vec<(usize, usize)> {
        if nr <= nc {
            hungarian(nr, nc, cost).into_iter().enumerate().collect()
        } else {
            let transposed: Vec<f64> = (0..nc).flat_map(|c| (0..nr).map(move |r| cost[r * nc + c])).collect();
            hungarian(nc, nr, &transposed).into_iter().enumerate().map(|(c, r)| (r, c)).collect()
        }
    }

    #[test]
    fn time_to_track_counts_from_first_visibility() {
        let truth = |id: u32, x: f64| TruthObject {
            id,
            class: ObjectClass::Car,
            position_m: [x, 0.0],
            velocity_mps: [0.0, 0.0],
            yaw_rad: 0.0,
            in_coverage: true,
        };
        let hyp = |id: u32, x: f64| Hypothesis {
            id,
            class: ObjectClass::Car,
            position_m: [x, 0.3],
            velocity_mps: [0.0, 0.0],
            yaw_rad: 0.0,
        };
        let mut scorer = Scorer::new(ScoringConfig::default());
        let at = |s: f64| Timestamp::from_nanos((s * 1e9) as i64);
        // Truth 1 is tracked from its first frame on; truth 2 from its third frame (0.2 s); truth
        // 3 never.
        scorer.add_frame(at(0.0), &[truth(1, 0.0), truth(2, 50.0), truth(3, 100.0)], &[hyp(10, 0.0)]);
        scorer.add_frame(at(0.1), &[truth(1, 1.0), truth(2, 51.0), truth(3, 100.0)], &[hyp(10, 1.0)]);
        scorer.add_frame(at(0.2), &[truth(1, 2.0), truth(2, 52.0), truth(3, 100.0)], &[hyp(10, 2.0), hyp(20, 52.0)]);
        let m = scorer.finish();
        let mut ttt = m.time_to_track_s.clone();
        ttt.sort_by(f64::total_cmp);
        assert_eq!(ttt.len(), 2, "{ttt:?}");
        assert!(ttt[0].abs() < 1e-9 && (ttt[1] - 0.2).abs() < 1e-9, "{ttt:?}");
        assert_eq!(m.never_tracked, 1);
        assert_eq!(m.first_matched_ns.get(&1), Some(&0));
    }

    #[test]
    fn one_row_or_column_assigns_as_hungarian_does() {
        let rows: [&[f64]; 6] = [
            &[3.0],
            &[2.0, 1.0, 1.0, 4.0],
            &[f64::INFINITY, f64::INFINITY],
            &[f64::NAN, 2.0, f64::NAN],
            &[-0.0, 0.0, -1e-300],
            &[1e9, 1e9, 0.5, 0.5],
        ];
        for row in rows {
            let n = row.len();
            assert_eq!(assign_rectangular(1, n, row), by_hungarian(1, n, row), "row {row:?}");
            assert_eq!(assign_rectangular(n, 1, row), by_hungarian(n, 1, row), "column {row:?}");
        }
    }

    /// Small matrices of every shape with many ties, infinities and NaNs: the distinct-minima
    /// shortcut, where it applies, returns what `hungarian` does.
    #[test]
    fn distinct_row_minima_assign_as_hungarian_does() {
        // A small linear congruential generator: reproducible pseudo-random values.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let values = [0.0, -0.0, 1.0, 2.0, -3.5, 0.25, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e300, -1e-300];
        let mut shortcuts = 0;
        for _ in 0..20_000 {
            let (nr, nc) = (2 + next() as usize % 4, 2 + next() as usize % 4);
            let special = next() % 4 == 0;
            let cost: Vec<f64> = (0..nr * nc)
                .map(|_| {
                    let k = next() as usize;
                    if special { values[k % values.len()] } else { (k % 7) as f64 - 3.0 }
                })
                .collect();
            let (rows, cols) = if nr <= nc { (nr, nc) } else { (nc, nr) };
            let by_row = |r: usize, c: usize| if nr <= nc { cost[r * nc + c] } else { cost[c * nc + r] };
            shortcuts += usize::from(row_minima_if_distinct(rows, cols, by_row).is_some());
            assert_eq!(assign_rectangular(nr, nc, &cost), by_hungarian(nr, nc, &cost), "{nr}×{nc} {cost:?}");
        }
        assert!(shortcuts > 1000, "{shortcuts} shortcuts");
    }

    #[test]
    fn identity_overlap_is_the_best_assignment_of_each_group() {
        // Truths 1 and 2 compete for hypotheses 10 and 11 (best: 1-11 and 2-10, 3 + 4 frames);
        // truth 3 and hypothesis 12 are a group of their own.
        let overlaps = [(2, 10, 4), (1, 10, 5), (3, 12, 7), (1, 11, 3)];
        assert_eq!(best_identity_overlap(&overlaps), 14);
        assert_eq!(best_identity_overlap(&[]), 0);
    }

    #[test]
    fn components_split_a_bipartite_graph_with_their_edges() {
        // Rows 0 and 2 share column 1; row 1 is alone with column 0; row 3 and column 2 have no edge.
        let edges = [(0, 1, 0.5), (1, 0, 0.1), (2, 1, 0.2), (0, 3, 0.3)];
        let components = edge_components(4, 4, &edges);
        let mut found: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> =
            components.iter().map(|c| (c.rows.to_vec(), c.cols.to_vec(), c.edges.to_vec())).collect();
        found.sort();
        assert_eq!(found, vec![(vec![0, 2], vec![1, 3], vec![0, 2, 3]), (vec![1], vec![0], vec![1])]);
        assert_eq!(edge_components(3, 2, &[]).iter().count(), 0);
    }
}
