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
//! Ground truth whose ids hold for one frame only (labels without track ids, see
//! [`Scorer::with_truth_ids_per_frame`]) is scored at the detection level: MOTA (which then has
//! no id switches), precision and recall through the counts, position errors; the identity
//! metrics (IDF1, HOTA and its AssA, id switches, fragmentations) are `None`, not applicable.
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
    /// Ground-truth ids hold for one frame only: identity metrics are not applicable.
    truth_ids_per_frame: bool,
    /// Buffers of [`Scorer::add_frame_indexed`], kept between frames.
    scratch: FrameScratch,
}

/// What the scorer remembers of one ground-truth object across frames.
#[derive(Clone, Debug, Default)]
struct TruthHistory {
    /// The last hypothesis ever matched to it and the number of the frame of that match: a
    /// match to another is an id switch, and each frame keeps it while still valid (however many
    /// frames ago it was made).
    last_match: Option<(u32, u64)>,
    /// Whether it was tracked in its previous scored frame (fragmentations).
    was_tracked: Option<bool>,
    /// Frames it was scored in (IDF1).
    frames: u64,
    /// First time in coverage, and first time matched after that frame.
    first_seen: Option<(Timestamp, Option<Timestamp>)>,
    /// Last time in coverage (scored).
    last_seen: Option<Timestamp>,
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
    /// The truth id it was last given to by the assignment (transfers; py-motmetrics' record,
    /// which kept matches do not update).
    last_assigned: Option<u32>,
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
    /// Id switches: matches to a track other than the truth's last match ever (`None` when
    /// ground-truth ids hold for one frame only).
    pub num_switches: Option<u64>,
    /// Transfers (py-motmetrics' `num_transfer`): a track assigned to a truth other than the one
    /// it was last assigned to.
    #[serde(default)]
    pub num_transfers: u64,
    /// Fragmentations: a tracked object becoming untracked and later tracked again (`None` when
    /// ground-truth ids hold for one frame only).
    pub num_fragmentations: Option<u64>,
    /// 1 - (misses + false positives + switches) / truths.
    pub mota: f64,
    /// Mean distance of matches [m]; `None` (undefined) without matches.
    pub motp_m: Option<f64>,
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
    /// The ground truth's ids hold for one frame only, so the identity metrics are `None`.
    #[serde(default)]
    pub truth_ids_per_frame: bool,
    /// IDF1: 2 IDTP / (truth instances + hypothesis instances).
    pub idf1: Option<f64>,
    /// Identity true positives of the best global truth↔track assignment.
    pub idtp: Option<u64>,
    /// Id switches per 100 s of tracked ground truth (matches × frame interval).
    pub switches_per_100_track_s: Option<f64>,
    /// Position error of matches: RMSE [m]. The state errors are `None` (undefined) when there is
    /// no match to measure them on.
    pub position_rmse_m: Option<f64>,
    /// 95th percentile position error [m].
    pub position_p95_m: Option<f64>,
    /// Velocity error of matches: RMSE [m/s].
    pub velocity_rmse_mps: Option<f64>,
    /// 95th percentile velocity error [m/s].
    pub velocity_p95_mps: Option<f64>,
    /// Heading error of moving matches (speed ≥ 1 m/s): RMSE [deg].
    pub heading_rmse_deg: Option<f64>,
    /// 95th percentile heading error [deg].
    pub heading_p95_deg: Option<f64>,
    /// Per truth object ever matched: time from first being in coverage to first matched [s];
    /// objects never matched are in `never_tracked_in_coverage_s`.
    pub time_to_track_s: Vec<f64>,
    /// Median of `time_to_track_s` [s]; `None` when no object was tracked.
    pub time_to_track_median_s: Option<f64>,
    /// Max of `time_to_track_s` [s]; `None` when no object was tracked. The criterion
    /// `time_to_track_max_s` also counts the objects never tracked.
    pub time_to_track_max_s: Option<f64>,
    /// Truth objects in coverage that were never matched.
    pub never_tracked: u64,
    /// Per truth id never matched: the time from its first to its last scored timestamp [s], a
    /// lower bound of its time to track.
    #[serde(default)]
    pub never_tracked_in_coverage_s: BTreeMap<u32, f64>,
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
            truth_ids_per_frame: false,
            scratch: FrameScratch::default(),
        }
    }

    /// This scorer for ground truth whose ids hold for one frame only (`per_frame`, e.g. labels
    /// without track ids: a log whose `truth_ids_per_frame` is set): the identity metrics
    /// are then `None` instead of figures that only measure the missing ids.
    pub fn with_truth_ids_per_frame(mut self, per_frame: bool) -> Self {
        self.truth_ids_per_frame = per_frame;
        self
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

    /// The matches of the frame added last, as CLEAR MOT made them: (index into that frame's
    /// truths, index into its hypotheses, distance [m]). Tools that score parts of a frame (a
    /// route's segments) read them here instead of matching again.
    pub fn last_frame_matches(&self) -> impl Iterator<Item = (usize, usize, f64)> + '_ {
        let f = &self.scratch;
        f.matches.iter().map(|&(ti, hi, d)| (f.scored_at[ti], f.kept_hyps[hi], d))
    }

    /// The metrics of everything added.
    pub fn finish(self) -> Metrics {
        // In class order, as the per-class sums have always been taken.
        let classes =
            || ObjectClass::ALL.iter().zip(&self.classes).filter_map(|(c, counts)| Some((*c, counts.as_ref()?)));
        // Identity metrics do not apply to ids that hold for one frame.
        let identity = |m: ClassMetrics| {
            if self.truth_ids_per_frame {
                ClassMetrics { num_switches: None, num_fragmentations: None, ..m }
            } else {
                m
            }
        };
        let applicable = !self.truth_ids_per_frame;
        let per_class: BTreeMap<ObjectClass, ClassMetrics> =
            classes().map(|(c, counts)| (c, identity(class_metrics(counts)))).collect();
        let mut total = ClassCounts::default();
        for (_, c) in classes() {
            total.truths += c.truths;
            total.matches += c.matches;
            total.misses += c.misses;
            total.false_positives += c.false_positives;
            total.switches += c.switches;
            total.transfers += c.transfers;
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
        let mut never_tracked_in_coverage_s = BTreeMap::new();
        let mut first_matched_ns = BTreeMap::new();
        let seen = by_truth_id.iter().filter_map(|&(id, slot)| {
            let t = &self.truths[slot];
            Some((id, t.first_seen?, t.last_seen?))
        });
        for (id, (first, matched), last) in seen {
            match matched {
                Some(m) => {
                    time_to_track_s.push(m.secs_since(first));
                    first_matched_ns.insert(id, m.as_nanos());
                }
                None => {
                    never_tracked_in_coverage_s.insert(id, last.secs_since(first));
                }
            }
        }
        let false_tracks = self.hyps.iter().filter(|h| !h.matched).count();
        let minutes = duration_s / 60.0;
        let position = rmse_p95(self.position_errors_m);
        let velocity = rmse_p95(self.velocity_errors_mps);
        let heading_deg = rmse_p95(self.heading_errors_rad).map(|(rmse, p95)| (rmse.to_degrees(), p95.to_degrees()));
        let mut sorted_ttt = time_to_track_s.clone();
        sorted_ttt.sort_by(f64::total_cmp);
        Metrics {
            num_frames: self.frames,
            duration_s,
            overall: identity(class_metrics(&total)),
            per_class,
            truth_ids_per_frame: self.truth_ids_per_frame,
            idf1: applicable.then_some(idf1),
            idtp: applicable.then_some(idtp),
            switches_per_100_track_s: applicable.then_some(if track_s > 0.0 {
                total.switches as f64 * 100.0 / track_s
            } else {
                0.0
            }),
            position_rmse_m: position.map(|(rmse, _)| rmse),
            position_p95_m: position.map(|(_, p95)| p95),
            velocity_rmse_mps: velocity.map(|(rmse, _)| rmse),
            velocity_p95_mps: velocity.map(|(_, p95)| p95),
            heading_rmse_deg: heading_deg.map(|(rmse, _)| rmse),
            heading_p95_deg: heading_deg.map(|(_, p95)| p95),
            time_to_track_median_s: percentile(&sorted_ttt, 0.5),
            time_to_track_max_s: sorted_ttt.last().copied(),
            time_to_track_s,
            never_tracked: never_tracked_in_coverage_s.len() as u64,
            never_tracked_in_coverage_s,
            false_tracks_per_min: if minutes > 0.0 { false_tracks as f64 / minutes } else { 0.0 },
            coverage: if self.distance_total_m > 0.0 { self.distance_tracked_m / self.distance_total_m } else { 1.0 },
            first_matched_ns,
            hota: {
                let hota = self.hota.finish();
                HotaScores { hota: hota.hota.filter(|_| applicable), ass_a: hota.ass_a.filter(|_| applicable), ..hota }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(id: u32, x: f64) -> TruthObject {
        TruthObject {
            id,
            class: ObjectClass::Car,
            position_m: [x, 0.0],
            velocity_mps: [0.0, 0.0],
            yaw_rad: 0.0,
            in_coverage: true,
        }
    }

    fn hyp(id: u32, x: f64) -> Hypothesis {
        Hypothesis { id, class: ObjectClass::Car, position_m: [x, 0.3], velocity_mps: [0.0, 0.0], yaw_rad: 0.0 }
    }

    fn at(s: f64) -> Timestamp {
        Timestamp::from_nanos((s * 1e9) as i64)
    }

    #[test]
    fn time_to_track_counts_from_first_visibility() {
        let mut scorer = Scorer::new(ScoringConfig::default());
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
        assert_eq!(m.time_to_track_max_s, Some(ttt[1]));
        assert_eq!(m.never_tracked, 1);
        // Truth 3 was in coverage 0.2 s untracked: its time to track is at least that.
        let untracked: Vec<(u32, f64)> = m.never_tracked_in_coverage_s.into_iter().collect();
        assert!(untracked.len() == 1 && untracked[0].0 == 3 && (untracked[0].1 - 0.2).abs() < 1e-9, "{untracked:?}");
        assert_eq!(m.first_matched_ns.get(&1), Some(&0));
    }

    #[test]
    fn the_last_frame_matches_index_the_frame_as_given() {
        let mut scorer = Scorer::new(ScoringConfig::default());
        // Truth 2 is outside coverage (not scored), so frame indices and scored indices differ.
        let mut hidden = truth(2, 20.0);
        hidden.in_coverage = false;
        scorer.add_frame(at(0.0), &[hidden, truth(1, 0.0), truth(3, 50.0)], &[hyp(30, 80.0), hyp(10, 0.5)]);
        let matches: Vec<(usize, usize, f64)> = scorer.last_frame_matches().collect();
        assert_eq!(matches.len(), 1, "{matches:?}");
        let (ti, hi, d) = matches[0];
        assert_eq!((ti, hi), (1, 1));
        assert!((d - 0.5f64.hypot(0.3)).abs() < 1e-12, "{d}");
        scorer.add_frame(at(0.1), &[truth(1, 1.0)], &[]);
        assert_eq!(scorer.last_frame_matches().count(), 0, "a frame without hypotheses has no match");
    }

    #[test]
    fn a_truth_keeps_its_last_match_across_a_gap() {
        // py-motmetrics' MOTAccumulator: truth 1, matched to 10, is absent for a frame, then
        // missed for one; when back, 10 is still its match although 11 is closer (not a switch;
        // 11 is a false positive).
        let mut scorer = Scorer::new(ScoringConfig::default());
        scorer.add_frame(at(0.0), &[truth(1, 0.0)], &[hyp(10, 0.0)]);
        scorer.add_frame(at(0.1), &[], &[]);
        scorer.add_frame(at(0.2), &[truth(1, 2.0)], &[]);
        scorer.add_frame(at(0.3), &[truth(1, 3.0)], &[hyp(10, 4.5), hyp(11, 3.0)]);
        let o = scorer.finish().overall;
        assert_eq!((o.num_matches, o.num_switches, o.num_false_positives, o.num_misses), (2, Some(0), 1, 1), "{o:?}");
        assert_eq!(o.num_fragmentations, Some(1));
    }

    #[test]
    fn errors_are_undefined_when_nothing_matched() {
        // Truth and track 10 m apart: no match, so no error to average (not an error of 0).
        let mut scorer = Scorer::new(ScoringConfig::default());
        scorer.add_frame(at(0.0), &[truth(1, 0.0)], &[hyp(10, 10.0)]);
        let m = scorer.finish();
        assert_eq!(m.overall.num_matches, 0);
        assert_eq!(m.overall.motp_m, None);
        assert_eq!((m.position_rmse_m, m.position_p95_m), (None, None));
        assert_eq!((m.velocity_rmse_mps, m.heading_rmse_deg), (None, None));
        assert_eq!((m.time_to_track_median_s, m.time_to_track_max_s), (None, None));
        // Undefined is `null` in the JSON report.
        let json = serde_json::to_value(&m).expect("serialises");
        assert!(json["position_rmse_m"].is_null() && json["overall"]["motp_m"].is_null(), "{json}");
    }
}
