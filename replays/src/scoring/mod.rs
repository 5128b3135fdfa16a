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
//!
//! - [`matching`]: a frame's scored truths, kept hypotheses and gated pairs.
//! - [`clear_mot`]: CLEAR MOT's per-frame matches and counts.
//! - [`idf1`]: identity overlaps and the best global id assignment.
//! - [`hota`]: HOTA, DetA, AssA and LocA as TrackEval computes them.
//! - [`lap`]: the scorer's own assignment solver; [`components`]: independent groups of pairs.
//! - [`distance`]: exact `hypot` gate decisions; [`stats`]: RMSE and percentiles.
//! - [`selection`]: which truths and hypotheses of a frame are counted, for tools outside the scorer.

use std::collections::BTreeMap;

use rsu_fusion::class::MotionFamily;
use rsu_fusion::spatial::SpatialGrid;
use rsu_fusion::{ObjectClass, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ids::IdSlots;

mod clear_mot;
mod components;
pub(crate) mod distance;
pub mod hota;
mod idf1;
mod lap;
mod matching;
mod selection;
mod stats;

pub use selection::{FrameSelection, frame_selection, gate_for, match_family_name};

use clear_mot::{ClassCounts, class_metrics};
use hota::{Hota, HotaScores};
use matching::FrameScratch;
use stats::{percentile, rmse_p95};

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
    hota: Hota,
    /// Buffers of [`Scorer::add_frame_indexed`], kept between frames.
    scratch: FrameScratch,
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

/// The slot of `id` in `histories` (indexed by `slots`), created on first sight.
fn slot_of<H: Default>(slots: &mut IdSlots, histories: &mut Vec<H>, id: u32) -> usize {
    let (slot, new) = slots.slot(id);
    if new {
        histories.push(H::default());
    }
    slot
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
    pub hota: HotaScores,
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
            hota: Hota::default(),
            scratch: FrameScratch::default(),
        }
    }

    /// Scores one timestamp: `truths` at `time`, `hyps` predicted to `time`. Truths outside
    /// coverage are ignored, and so are hypotheses within the gate of one (neither missed nor
    /// false).
    pub fn add_frame(&mut self, time: Timestamp, truths: &[TruthObject], hyps: &[Hypothesis]) {
        let mut grid = SpatialGrid::new(self.config.largest_gate_m());
        grid.rebuild(hyps.iter().map(|h| (h.position_m[0], h.position_m[1])));
        self.add_frame_indexed(time, truths, hyps, &grid, 0.0, |_, _| {});
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
        grid: &SpatialGrid,
        near_radius_m: f64,
        near: impl FnMut(usize, f64),
    ) {
        self.first_time.get_or_insert(time);
        self.last_time = Some(time);
        self.frames += 1;
        let frame = self.frames;
        // The buffers of earlier frames, emptied (their allocations are what is kept).
        let mut f = std::mem::take(&mut self.scratch);
        f.clear();
        f.gate(&self.config, truths, hyps, grid, near_radius_m, near);
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

        self.match_frame(&mut f, frame);
        self.count_frame(&f, time, truths, hyps, frame);
        idf1::record_overlaps(&mut self.truths, &f);
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
        let idtp = idf1::best_identity_overlap(&overlaps);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
