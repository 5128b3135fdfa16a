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

use std::collections::{BTreeMap, BTreeSet};

use rsu_fusion::assignment::hungarian;
use rsu_fusion::class::MotionFamily;
use rsu_fusion::{ObjectClass, Timestamp};
use serde::{Deserialize, Serialize};

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
    fn gate(&self, family: MotionFamily) -> f64 {
        match family {
            MotionFamily::Vehicle => self.gate_vehicle_m,
            MotionFamily::Pedestrian => self.gate_vru_m,
            MotionFamily::Static => self.gate_static_m,
        }
    }
}

/// The family a class is matched within: riders move like vehicles but are gated as VRUs.
fn match_family(class: ObjectClass) -> MotionFamily {
    if class.is_vru() { MotionFamily::Pedestrian } else { class.motion_family() }
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
    frames: u64,
    /// Current (previous frame) matches: truth id → hyp id.
    active: BTreeMap<u32, u32>,
    /// Last hypothesis ever matched to each truth, for id switches.
    last_match: BTreeMap<u32, u32>,
    /// Whether each truth was tracked in its previous scored frame, for fragmentations.
    was_tracked: BTreeMap<u32, bool>,
    /// Per class counters.
    classes: BTreeMap<ObjectClass, ClassCounts>,
    /// Frames in which truth g and hypothesis h were both present and within the gate.
    overlap: BTreeMap<(u32, u32), u64>,
    truth_frames: BTreeMap<u32, u64>,
    hyp_frames: BTreeMap<u32, u64>,
    hyp_matched: BTreeSet<u32>,
    /// Truth id → (first time in coverage, first time matched).
    first_seen: BTreeMap<u32, (Timestamp, ObjectClass, Option<Timestamp>)>,
    position_errors_m: Vec<f64>,
    velocity_errors_mps: Vec<f64>,
    heading_errors_rad: Vec<f64>,
    /// Truth id → (last position, whether tracked there).
    last_position: BTreeMap<u32, [f64; 2]>,
    distance_total_m: f64,
    distance_tracked_m: f64,
    hota: crate::hota::Hota,
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
            active: BTreeMap::new(),
            last_match: BTreeMap::new(),
            was_tracked: BTreeMap::new(),
            classes: BTreeMap::new(),
            overlap: BTreeMap::new(),
            truth_frames: BTreeMap::new(),
            hyp_frames: BTreeMap::new(),
            hyp_matched: BTreeSet::new(),
            first_seen: BTreeMap::new(),
            position_errors_m: Vec::new(),
            velocity_errors_mps: Vec::new(),
            heading_errors_rad: Vec::new(),
            last_position: BTreeMap::new(),
            distance_total_m: 0.0,
            distance_tracked_m: 0.0,
            hota: crate::hota::Hota::default(),
        }
    }

    /// Whether `t` and `h` may match, and their distance [m].
    fn distance(&self, t: &TruthObject, h: &Hypothesis) -> Option<f64> {
        let family = match_family(t.class);
        if match_family(h.class) != family && h.class != ObjectClass::Unknown {
            return None;
        }
        let d = (t.position_m[0] - h.position_m[0]).hypot(t.position_m[1] - h.position_m[1]);
        (d <= self.config.gate(family)).then_some(d)
    }

    /// Scores one timestamp: `truths` at `time`, `hyps` predicted to `time`. Truths outside
    /// coverage are ignored, and so are hypotheses within the gate of one (neither missed nor
    /// false).
    pub fn add_frame(&mut self, time: Timestamp, truths: &[TruthObject], hyps: &[Hypothesis]) {
        self.first_time.get_or_insert(time);
        self.last_time = Some(time);
        self.frames += 1;
        let (scored, ignored): (Vec<&TruthObject>, Vec<&TruthObject>) = truths.iter().partition(|t| t.in_coverage);
        // Hypotheses on objects outside coverage are neither right nor wrong.
        let hyps: Vec<&Hypothesis> =
            hyps.iter().filter(|h| !ignored.iter().any(|t| self.distance(t, h).is_some())).collect();

        // HOTA's similarities: 1 - d / gate within the class gate. Hypotheses sorted by east
        // coordinate, so each truth looks only at those within its gate of it.
        let mut by_x: Vec<(f64, usize)> = hyps.iter().enumerate().map(|(i, h)| (h.position_m[0], i)).collect();
        by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut sims = Vec::new();
        for (ti, t) in scored.iter().enumerate() {
            let gate = self.config.gate(match_family(t.class));
            let x = t.position_m[0];
            let from = by_x.partition_point(|(hx, _)| *hx < x - gate);
            for &(_, hi) in by_x[from..].iter().take_while(|(hx, _)| *hx <= x + gate) {
                let h = hyps[hi];
                if let Some(d) = self.distance(t, h) {
                    let s = 1.0 - d / gate;
                    if s > 0.0 {
                        sims.push((ti, hi, s));
                    }
                }
            }
        }
        self.hota.add_frame(scored.iter().map(|t| t.id).collect(), hyps.iter().map(|h| h.id).collect(), sims);

        // 1. Keep last frame's matches that are still valid (py-motmetrics' behaviour).
        let mut matches: Vec<(usize, usize, f64)> = Vec::new();
        let mut truth_used = vec![false; scored.len()];
        let mut hyp_used = vec![false; hyps.len()];
        for (ti, t) in scored.iter().enumerate() {
            if let Some(&hid) = self.active.get(&t.id)
                && let Some(hi) = hyps.iter().position(|h| h.id == hid)
                && !hyp_used[hi]
                && let Some(d) = self.distance(t, hyps[hi])
            {
                matches.push((ti, hi, d));
                truth_used[ti] = true;
                hyp_used[hi] = true;
            }
        }
        // 2. Optimal assignment of the rest, minimising total distance within the gates.
        let free_t: Vec<usize> = (0..scored.len()).filter(|&i| !truth_used[i]).collect();
        let free_h: Vec<usize> = (0..hyps.len()).filter(|&i| !hyp_used[i]).collect();
        // Gated pairs split the problem into independent groups (connected components), so a
        // crowded frame costs many small assignments instead of one cubic one.
        let mut edges: Vec<(usize, usize, f64)> = Vec::new();
        for (r, &ti) in free_t.iter().enumerate() {
            for (c, &hi) in free_h.iter().enumerate() {
                if let Some(d) = self.distance(scored[ti], hyps[hi]) {
                    edges.push((r, c, d));
                }
            }
        }
        for (rows, cols) in edge_components(free_t.len(), free_h.len(), &edges) {
            const FORBIDDEN: f64 = 1e9;
            let mut cost = vec![FORBIDDEN; rows.len() * cols.len()];
            for &(r, c, d) in &edges {
                if let (Ok(i), Ok(j)) = (rows.binary_search(&r), cols.binary_search(&c)) {
                    cost[i * cols.len() + j] = d;
                }
            }
            for (i, j) in assign_rectangular(rows.len(), cols.len(), &cost) {
                let d = cost[i * cols.len() + j];
                if d < FORBIDDEN {
                    let (ti, hi) = (free_t[rows[i]], free_h[cols[j]]);
                    matches.push((ti, hi, d));
                    truth_used[ti] = true;
                    hyp_used[hi] = true;
                }
            }
        }

        // 3. Count.
        let mut active = BTreeMap::new();
        let mut matched_now = BTreeSet::new();
        for &(ti, hi, d) in &matches {
            let (t, h) = (scored[ti], hyps[hi]);
            let counts = self.classes.entry(t.class).or_default();
            counts.matches += 1;
            counts.distance_sum_m += d;
            if let Some(&prev) = self.last_match.get(&t.id)
                && prev != h.id
            {
                counts.switches += 1;
            }
            if self.was_tracked.get(&t.id) == Some(&false) && self.last_match.contains_key(&t.id) {
                counts.fragmentations += 1;
            }
            self.last_match.insert(t.id, h.id);
            active.insert(t.id, h.id);
            matched_now.insert(t.id);
            self.hyp_matched.insert(h.id);
            self.position_errors_m.push(d);
            let dv = (t.velocity_mps[0] - h.velocity_mps[0]).hypot(t.velocity_mps[1] - h.velocity_mps[1]);
            self.velocity_errors_mps.push(dv);
            if t.velocity_mps[0].hypot(t.velocity_mps[1]) >= 1.0 {
                let dyaw = (t.yaw_rad - h.yaw_rad + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI)
                    - std::f64::consts::PI;
                self.heading_errors_rad.push(dyaw.abs());
            }
            if let Some(entry) = self.first_seen.get_mut(&t.id) {
                entry.2.get_or_insert(time);
            }
        }
        // IDF1 counts every pair within the gate in each frame, matched by CLEAR MOT or not.
        for t in &scored {
            for h in &hyps {
                if self.distance(t, h).is_some() {
                    *self.overlap.entry((t.id, h.id)).or_default() += 1;
                }
            }
        }
        for (ti, t) in scored.iter().enumerate() {
            self.classes.entry(t.class).or_default().truths += 1;
            *self.truth_frames.entry(t.id).or_default() += 1;
            self.first_seen.entry(t.id).or_insert((time, t.class, None));
            if !truth_used[ti] {
                self.classes.entry(t.class).or_default().misses += 1;
            }
            let tracked = matched_now.contains(&t.id);
            if let Some(prev) = self.last_position.insert(t.id, t.position_m) {
                let step = (t.position_m[0] - prev[0]).hypot(t.position_m[1] - prev[1]);
                self.distance_total_m += step;
                if tracked {
                    self.distance_tracked_m += step;
                }
            }
            self.was_tracked.insert(t.id, tracked);
        }
        for (hi, h) in hyps.iter().enumerate() {
            *self.hyp_frames.entry(h.id).or_default() += 1;
            if !hyp_used[hi] {
                self.classes.entry(h.class).or_default().false_positives += 1;
            }
        }
        self.active = active;
    }

    /// The metrics of everything added.
    pub fn finish(self) -> Metrics {
        let per_class: BTreeMap<ObjectClass, ClassMetrics> =
            self.classes.iter().map(|(c, counts)| (*c, class_metrics(counts))).collect();
        let mut total = ClassCounts::default();
        for c in self.classes.values() {
            total.truths += c.truths;
            total.matches += c.matches;
            total.misses += c.misses;
            total.false_positives += c.false_positives;
            total.switches += c.switches;
            total.fragmentations += c.fragmentations;
            total.distance_sum_m += c.distance_sum_m;
        }
        let idtp = best_identity_overlap(&self.overlap);
        let truth_instances: u64 = self.truth_frames.values().sum();
        let hyp_instances: u64 = self.hyp_frames.values().sum();
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
        for (id, (seen, _class, matched)) in &self.first_seen {
            match matched {
                Some(m) => {
                    time_to_track_s.push(m.secs_since(*seen));
                    first_matched_ns.insert(*id, m.as_nanos());
                }
                None => never_tracked += 1,
            }
        }
        let false_tracks = self.hyp_frames.keys().filter(|h| !self.hyp_matched.contains(h)).count();
        let minutes = duration_s / 60.0;
        let (position_rmse_m, position_p95_m) = rmse_p95(&self.position_errors_m);
        let (velocity_rmse_mps, velocity_p95_mps) = rmse_p95(&self.velocity_errors_mps);
        let (heading_rmse, heading_p95) = rmse_p95(&self.heading_errors_rad);
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

/// The largest total overlap of a one-to-one assignment of truths to hypotheses (IDTP).
fn best_identity_overlap(overlap: &BTreeMap<(u32, u32), u64>) -> u64 {
    let truths: Vec<u32> = overlap.keys().map(|k| k.0).collect::<BTreeSet<_>>().into_iter().collect();
    let hyps: Vec<u32> = overlap.keys().map(|k| k.1).collect::<BTreeSet<_>>().into_iter().collect();
    if truths.is_empty() {
        return 0;
    }
    // Independent groups (connected components) keep each assignment small.
    let mut total = 0;
    for (group_t, group_h) in components(overlap, &truths, &hyps) {
        let max = group_t
            .iter()
            .flat_map(|t| group_h.iter().map(move |h| (*t, *h)))
            .filter_map(|k| overlap.get(&k))
            .max()
            .copied()
            .unwrap_or(0) as f64;
        let cost: Vec<f64> = group_t
            .iter()
            .flat_map(|t| group_h.iter().map(move |h| (*t, *h)))
            .map(|k| max - overlap.get(&k).copied().unwrap_or(0) as f64)
            .collect();
        for (r, c) in assign_rectangular(group_t.len(), group_h.len(), &cost) {
            total += overlap.get(&(group_t[r], group_h[c])).copied().unwrap_or(0);
        }
    }
    total
}

/// Splits the bipartite overlap graph into connected components.
fn components(overlap: &BTreeMap<(u32, u32), u64>, truths: &[u32], hyps: &[u32]) -> Vec<(Vec<u32>, Vec<u32>)> {
    let index_t: BTreeMap<u32, usize> = truths.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let index_h: BTreeMap<u32, usize> = hyps.iter().enumerate().map(|(i, h)| (*h, truths.len() + i)).collect();
    let n = truths.len() + hyps.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (t, h) in overlap.keys() {
        let (a, b) = (find(&mut parent, index_t[t]), find(&mut parent, index_h[h]));
        if a != b {
            parent[a] = b;
        }
    }
    let mut groups: BTreeMap<usize, (Vec<u32>, Vec<u32>)> = BTreeMap::new();
    for t in truths {
        let root = find(&mut parent, index_t[t]);
        groups.entry(root).or_default().0.push(*t);
    }
    for h in hyps {
        let root = find(&mut parent, index_h[h]);
        groups.entry(root).or_default().1.push(*h);
    }
    groups.into_values().filter(|(t, h)| !t.is_empty() && !h.is_empty()).collect()
}

/// Connected components of a bipartite graph of `nr` rows and `nc` columns given by `edges`:
/// (sorted rows, sorted columns) of each component that has at least one edge.
pub(crate) fn edge_components(nr: usize, nc: usize, edges: &[(usize, usize, f64)]) -> Vec<(Vec<usize>, Vec<usize>)> {
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut parent: Vec<usize> = (0..nr + nc).collect();
    for &(r, c, _) in edges {
        let (a, b) = (find(&mut parent, r), find(&mut parent, nr + c));
        if a != b {
            parent[a] = b;
        }
    }
    let mut groups: BTreeMap<usize, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    let mut seen = vec![false; nr + nc];
    for &(r, c, _) in edges {
        seen[r] = true;
        seen[nr + c] = true;
    }
    for r in (0..nr).filter(|&r| seen[r]) {
        let root = find(&mut parent, r);
        groups.entry(root).or_default().0.push(r);
    }
    for c in (0..nc).filter(|&c| seen[nr + c]) {
        let root = find(&mut parent, nr + c);
        groups.entry(root).or_default().1.push(c);
    }
    groups.into_values().collect()
}

/// Minimum-cost assignment of an `nr × nc` row-major cost matrix of any shape: (row, column)
/// pairs, `min(nr, nc)` of them.
pub(crate) fn assign_rectangular(nr: usize, nc: usize, cost: &[f64]) -> Vec<(usize, usize)> {
    if nr <= nc {
        hungarian(nr, nc, cost).into_iter().enumerate().filter(|&(_, c)| c < nc).collect()
    } else {
        let transposed: Vec<f64> = (0..nc).flat_map(|c| (0..nr).map(move |r| cost[r * nc + c])).collect();
        hungarian(nc, nr, &transposed).into_iter().enumerate().filter(|&(_, r)| r < nr).map(|(c, r)| (r, c)).collect()
    }
}

fn rmse_p95(errors: &[f64]) -> (f64, f64) {
    if errors.is_empty() {
        return (0.0, 0.0);
    }
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    let mut sorted = errors.to_vec();
    sorted.sort_by(f64::total_cmp);
    (rmse, percentile(&sorted, 0.95))
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
