//! The per-segment figures of a route over logs, gathered one log at a time in memory that does
//! not grow with the logs (fixed-bin histograms), and merged across logs.
//!
//! Each log is re-fused through the fusion core ([`crate::pipeline::replay_with`]) and scored
//! by the project's [`Scorer`] at every ground-truth time, with one change of selection: the
//! truths scored are those within `near_m` of the route (not those in some sensor's coverage),
//! so an object in a blind spot counts as missed, and tracks near objects away from the route
//! are neither right nor wrong. Each scored truth is counted in the segment of its chainage,
//! matched or not by the scorer's own matches ([`Scorer::last_frame_matches`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use nalgebra::Point2;
use rsu_fusion::{ObjectKinematics, Timestamp};
use serde::Serialize;

use super::criteria::{GROUPS, RouteCriteria};
use super::{Route, Segment, segment_at};
use crate::pipeline::{PipelineError, ReplayConfig, ReplayEvent, replay_with};
use crate::reader::{OpenOptions, ReadMode, ReplayBody, ReplayReader};
use crate::scoring::{Scorer, match_family_name};
use crate::validate::{hypotheses, truth_object};

/// z for a two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `successes` out of `trials` at normal quantile `z`:
/// (lower, upper). `None` without trials.
pub fn wilson(successes: u64, trials: u64, z: f64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Counts of non-negative values in bins of fixed width, and the exact maximum: quantiles to
/// within one bin in constant memory. The counts are allocated on the first value.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    bin: f64,
    bins: usize,
    counts: Vec<u64>,
    overflow: u64,
    n: u64,
    max: f64,
}

impl Histogram {
    /// Bins of `bin` wide from 0 to `bin * bins`; values above go to an overflow count.
    pub fn new(bin: f64, bins: usize) -> Self {
        Histogram { bin, bins, counts: Vec::new(), overflow: 0, n: 0, max: 0.0 }
    }

    /// Adds a value (negative ones count as 0; NaN is ignored).
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        let v = v.max(0.0);
        if self.counts.is_empty() {
            self.counts = vec![0; self.bins];
        }
        match ((v / self.bin).floor() as usize).min(self.bins) {
            i if i < self.bins => self.counts[i] += 1,
            _ => self.overflow += 1,
        }
        self.n += 1;
        self.max = self.max.max(v);
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The largest value, `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }

    /// An upper bound of the nearest-rank `q` quantile, at most one bin above it: the upper edge
    /// of the bin holding it (never above the maximum). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(((i + 1) as f64 * self.bin).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Adds the values of `other` (same bins).
    pub fn merge(&mut self, other: &Histogram) {
        if other.n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; self.bins];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.overflow += other.overflow;
        self.n += other.n;
        self.max = self.max.max(other.max);
    }
}

/// The figures of one object group in one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupTally {
    /// Ground-truth observations (object × truth frame) near the route here.
    pub observations: u64,
    /// Of those, matched to a track.
    pub matched: u64,
    /// Distinct objects observed here, counted once per log.
    pub objects: u64,
    /// Position error of the matches [m] (1 cm bins).
    pub position_m: Histogram,
    /// Velocity error of the matches [m/s] (2 cm/s bins).
    pub velocity_mps: Histogram,
    /// Objects that entered the corridor here (not there when their log began).
    pub entries: u64,
    /// Time from entering to first matched, of the entries tracked while in the corridor [s]
    /// (20 ms bins).
    pub time_to_track_s: Histogram,
    /// Entries that left the corridor (or the log ended) without being tracked.
    pub untracked_entries: u64,
    /// The longest time such an entry stayed in the corridor untracked [s].
    pub untracked_longest_s: f64,
}

impl Default for GroupTally {
    fn default() -> Self {
        GroupTally {
            observations: 0,
            matched: 0,
            objects: 0,
            position_m: Histogram::new(0.01, 1000),
            velocity_mps: Histogram::new(0.02, 1000),
            entries: 0,
            time_to_track_s: Histogram::new(0.02, 1500),
            untracked_entries: 0,
            untracked_longest_s: 0.0,
        }
    }
}

impl GroupTally {
    fn merge(&mut self, o: &GroupTally) {
        self.observations += o.observations;
        self.matched += o.matched;
        self.objects += o.objects;
        self.position_m.merge(&o.position_m);
        self.velocity_mps.merge(&o.velocity_mps);
        self.entries += o.entries;
        self.time_to_track_s.merge(&o.time_to_track_s);
        self.untracked_entries += o.untracked_entries;
        self.untracked_longest_s = self.untracked_longest_s.max(o.untracked_longest_s);
    }
}

/// The figures of one segment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentTally {
    /// By group, in the order of [`GROUPS`].
    pub groups: [GroupTally; 3],
    /// Age of the recorded broadcast's objects near the route here [s] (5 ms bins): frame time
    /// minus the newest capture in the frame ([`crate::live::object_age_s`]).
    pub broadcast_age_s: Option<Histogram>,
    /// Logs that observed an object here.
    pub logs: u64,
}

impl SegmentTally {
    fn merge(&mut self, o: &SegmentTally) {
        for (a, b) in self.groups.iter_mut().zip(&o.groups) {
            a.merge(b);
        }
        if let Some(b) = &o.broadcast_age_s {
            self.broadcast_age_s.get_or_insert_with(age_histogram).merge(b);
        }
        self.logs += o.logs;
    }
}

fn age_histogram() -> Histogram {
    Histogram::new(0.005, 2000)
}

/// What one log contributed, for the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LogContribution {
    /// The log file.
    pub file: String,
    /// Its scenario.
    pub scenario: String,
    /// Ground-truth frames.
    pub truth_frames: u64,
    /// Observations of objects near the route.
    pub observations: u64,
    /// Of those, matched.
    pub matched: u64,
    /// Recorded broadcast frames.
    pub broadcast_frames: u64,
    /// Time from its first to its last message [s].
    pub duration_s: f64,
}

/// The figures of a route's segments over the logs added so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTally {
    /// By segment, in chainage order.
    pub segments: Vec<SegmentTally>,
    /// Logs added, in the order added.
    pub logs: Vec<LogContribution>,
}

impl RouteTally {
    /// An empty tally of `segments` segments.
    pub fn new(segments: usize) -> Self {
        RouteTally { segments: vec![SegmentTally::default(); segments], logs: Vec::new() }
    }

    /// Adds another tally of the same route and segments.
    pub fn merge(&mut self, other: RouteTally) {
        if self.segments.is_empty() {
            self.segments = other.segments;
        } else {
            for (a, b) in self.segments.iter_mut().zip(&other.segments) {
                a.merge(b);
            }
        }
        self.logs.extend(other.logs);
    }
}

/// A visit of one object to the corridor: consecutive truth frames within `near_m`.
struct Visit {
    segment: usize,
    group: usize,
    entered: Timestamp,
    last_seen: Timestamp,
    /// The number of the last truth frame it was near the route in.
    last_frame: u64,
    tracked: bool,
    /// Counted as an entry: it was not already there in the log's first truth frame.
    counts: bool,
}

impl Visit {
    /// Books the end of the visit: an entry never tracked, with how long it stayed so.
    fn close(self, segments: &mut [SegmentTally]) {
        if self.counts && !self.tracked {
            let g = &mut segments[self.segment].groups[self.group];
            g.untracked_entries += 1;
            g.untracked_longest_s = g.untracked_longest_s.max(self.last_seen.secs_since(self.entered));
        }
    }
}

/// A truth of a frame near the route, as the segments count it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Observation {
    /// Truth id.
    id: u32,
    /// Index into [`GROUPS`].
    group: usize,
    /// The segment of its chainage.
    segment: usize,
    /// Matched to a track in this frame.
    matched: bool,
}

/// One log's bookkeeping across its truth frames: observations, distinct objects, visits to the
/// corridor and their times to track.
struct LogBook {
    visits: HashMap<u32, Visit>,
    seen_here: HashSet<(u32, usize)>,
    /// Truth frames so far; during [`LogBook::add_frame`], the number of the frame being added.
    frame_no: u64,
    segments_seen: Vec<bool>,
    observations: u64,
    matched: u64,
}

impl LogBook {
    fn new(segments: usize) -> Self {
        LogBook {
            visits: HashMap::new(),
            seen_here: HashSet::new(),
            frame_no: 0,
            segments_seen: vec![false; segments],
            observations: 0,
            matched: 0,
        }
    }

    /// Counts one truth frame at `time` (every truth frame, also those with nothing near the
    /// route: an object absent from a frame has left the corridor).
    fn add_frame(&mut self, time: Timestamp, observed: &[Observation], segments: &mut [SegmentTally]) {
        self.frame_no += 1;
        let frame_no = self.frame_no;
        for o in observed {
            let k = o.segment;
            self.segments_seen[k] = true;
            let g = &mut segments[k].groups[o.group];
            g.observations += 1;
            self.observations += 1;
            if o.matched {
                g.matched += 1;
                self.matched += 1;
            }
            if self.seen_here.insert((o.id, k)) {
                g.objects += 1;
            }
            // The visit it is on, or a new one (it just came near the route).
            let visit = match self.visits.remove(&o.id) {
                Some(v) if v.last_frame + 1 == frame_no => v,
                ended => {
                    if let Some(v) = ended {
                        v.close(segments);
                    }
                    // Objects already near the route in the log's first frame did not enter it.
                    let counts = frame_no > 1;
                    if counts {
                        segments[k].groups[o.group].entries += 1;
                    }
                    Visit {
                        segment: k,
                        group: o.group,
                        entered: time,
                        last_seen: time,
                        last_frame: frame_no,
                        tracked: false,
                        counts,
                    }
                }
            };
            let mut visit = Visit { last_frame: frame_no, last_seen: time, ..visit };
            if o.matched && !visit.tracked {
                visit.tracked = true;
                if visit.counts {
                    segments[visit.segment].groups[visit.group].time_to_track_s.add(time.secs_since(visit.entered));
                }
            }
            self.visits.insert(o.id, visit);
        }
        // Visits that ended: the object is no longer near the route.
        let ended: Vec<u32> = self.visits.iter().filter(|(_, v)| v.last_frame != frame_no).map(|(id, _)| *id).collect();
        for id in ended {
            if let Some(v) = self.visits.remove(&id) {
                v.close(segments);
            }
        }
    }

    /// Closes the visits still open (the log ended) and notes which segments the log observed:
    /// (observations, matched) of the log.
    fn finish(mut self, segments: &mut [SegmentTally]) -> (u64, u64) {
        for (_, v) in self.visits.drain() {
            v.close(segments);
        }
        for (seg, seen) in segments.iter_mut().zip(&self.segments_seen) {
            seg.logs += u64::from(*seen);
        }
        (self.observations, self.matched)
    }
}

/// The index of a class's group in [`GROUPS`].
fn group_of(class: rsu_fusion::ObjectClass) -> usize {
    let name = match_family_name(class);
    GROUPS.iter().position(|g| *g == name).unwrap_or(0)
}

/// Re-fuses and scores the log at `path` along `route` cut into `segments`: the log's tally
/// (one entry in `logs`). A log that cannot be read, wholly, is an error; nothing of it counts.
pub fn tally_log(
    path: &Path,
    route: &Route,
    segments: &[Segment],
    criteria: &RouteCriteria,
    config: &ReplayConfig,
) -> Result<RouteTally, PipelineError> {
    let reader = ReplayReader::open_with(path, OpenOptions { mode: ReadMode::Strict, ..Default::default() })?;
    let meta = reader.meta().clone();
    let mut tally = RouteTally::new(segments.len());
    let mut scorer = Scorer::new(criteria.scoring.clone()).with_truth_ids_per_frame(meta.truth_ids_per_frame);
    let mut contribution =
        LogContribution { file: path.display().to_string(), scenario: meta.scenario.clone(), ..Default::default() };
    let near_m = criteria.near_m;
    let mut truths = Vec::new();
    // Per truth of a frame: its segment, when near the route.
    let mut at_segment: Vec<Option<usize>> = Vec::new();
    let mut matched: Vec<bool> = Vec::new();
    let mut book = LogBook::new(segments.len());
    let mut observed: Vec<Observation> = Vec::new();

    let summary = replay_with::<_, ObjectKinematics, _>(
        reader,
        config,
        |_, _, _| (),
        |event| -> Result<(), std::convert::Infallible> {
            match event {
                ReplayEvent::Truth { truth, objects } => {
                    truths.clear();
                    at_segment.clear();
                    for o in &truth.objects {
                        let ignored = o.v2x_id.as_ref().is_some_and(|id| criteria.ignore_v2x_ids.contains(id));
                        let segment = if ignored {
                            None
                        } else {
                            route
                                .locate(&Point2::new(o.center_m.x, o.center_m.y), near_m)
                                .and_then(|(s, _)| segment_at(segments, s))
                        };
                        at_segment.push(segment);
                        truths.push(truth_object(o, segment.is_some()));
                    }
                    let hyps = hypotheses(objects);
                    scorer.add_frame(truth.time, &truths, &hyps);
                    matched.clear();
                    matched.resize(truths.len(), false);
                    for (ti, hi, distance_m) in scorer.last_frame_matches() {
                        let (t, h) = (&truths[ti], &hyps[hi]);
                        matched[ti] = true;
                        let Some(k) = at_segment[ti] else { continue };
                        let g = &mut tally.segments[k].groups[group_of(t.class)];
                        // The errors as the scorer takes them: the match distance, the velocity difference.
                        g.position_m.add(distance_m);
                        g.velocity_mps
                            .add((t.velocity_mps[0] - h.velocity_mps[0]).hypot(t.velocity_mps[1] - h.velocity_mps[1]));
                    }
                    observed.clear();
                    observed.extend(truths.iter().enumerate().filter_map(|(ti, t)| {
                        Some(Observation {
                            id: t.id,
                            group: group_of(t.class),
                            segment: at_segment[ti]?,
                            matched: matched[ti],
                        })
                    }));
                    book.add_frame(truth.time, &observed, &mut tally.segments);
                }
                ReplayEvent::Input { message, .. } => {
                    if let ReplayBody::Roadside(frame) = &message.body {
                        contribution.broadcast_frames += 1;
                        if let Some(age) = crate::live::object_age_s(frame) {
                            for p in &frame.participants {
                                let at = Point2::new(p.position_m.x, p.position_m.y);
                                if let Some(k) = route.locate(&at, near_m).and_then(|(s, _)| segment_at(segments, s)) {
                                    tally.segments[k].broadcast_age_s.get_or_insert_with(age_histogram).add(age);
                                }
                            }
                        }
                    }
                }
                ReplayEvent::Broadcast { .. } => {}
            }
            Ok(())
        },
    )?;
    let (observations, matched) = book.finish(&mut tally.segments);
    contribution.observations = observations;
    contribution.matched = matched;
    contribution.truth_frames = summary.truth_frames;
    contribution.duration_s = (summary.last_ns - summary.first_ns).max(0) as f64 * 1e-9;
    tally.logs.push(contribution);
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_match_the_textbook() {
        // 95 % Wilson interval of 8 of 10: 0.4902 .. 0.9433 (Wilson 1927; Newcombe 1998, table I).
        let (lo, hi) = wilson(8, 10, Z_95).expect("trials");
        assert!((lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4, "{lo} {hi}");
        // Two of two is not good evidence: the lower bound is about 0.34.
        let (lo, hi) = wilson(2, 2, Z_95).expect("trials");
        assert!((lo - 0.3424).abs() < 1e-3 && hi == 1.0, "{lo} {hi}");
        // All detected: the lower bound is n / (n + z²), so 0.99 needs 381 observations.
        let (lo, _) = wilson(381, 381, Z_95).expect("trials");
        assert!(lo >= 0.99 && wilson(380, 380, Z_95).expect("trials").0 < 0.99, "{lo}");
        let (lo, hi) = wilson(0, 50, Z_95).expect("trials");
        assert!(lo == 0.0 && (hi - 0.0714).abs() < 1e-3, "{hi}");
        assert_eq!(wilson(0, 0, Z_95), None);
    }

    #[test]
    fn entries_time_to_track_and_untracked_visits() {
        let at = |frame: i64| Timestamp::from_nanos(frame * 50_000_000);
        let o = |id, segment, matched| Observation { id, group: 0, segment, matched };
        let mut segments = vec![SegmentTally::default(); 3];
        let mut book = LogBook::new(3);
        // Frame 0: object 1 already there (not an entry). Object 2 enters segment 1 at frame 1,
        // tracked at frame 3 (0.1 s later); object 3 enters segment 2 at frame 1, never tracked,
        // leaves after frame 4 (0.15 s in the corridor); object 2 leaves after frame 4 and
        // comes back at frame 6 in segment 0, tracked at once.
        book.add_frame(at(0), &[o(1, 0, false)], &mut segments);
        book.add_frame(at(1), &[o(1, 0, true), o(2, 1, false), o(3, 2, false)], &mut segments);
        book.add_frame(at(2), &[o(2, 1, false), o(3, 2, false)], &mut segments);
        book.add_frame(at(3), &[o(2, 1, true), o(3, 2, false)], &mut segments);
        book.add_frame(at(4), &[o(2, 2, true), o(3, 2, false)], &mut segments);
        book.add_frame(at(5), &[], &mut segments);
        book.add_frame(at(6), &[o(2, 0, true)], &mut segments);
        let (observations, matched) = book.finish(&mut segments);
        assert_eq!((observations, matched), (11, 4));
        let [s0, s1, s2] = [&segments[0].groups[0], &segments[1].groups[0], &segments[2].groups[0]];
        assert_eq!((s0.observations, s0.matched, s0.objects), (3, 2, 2));
        assert_eq!((s1.observations, s1.objects, s2.objects), (3, 1, 2), "object 2 counts in both segments");
        // Object 1 was there from the start; object 2's return is an entry tracked at once.
        assert_eq!((s0.entries, s0.time_to_track_s.count(), s0.time_to_track_s.max()), (1, 1, Some(0.0)));
        let ttt = s1.time_to_track_s.max().expect("tracked");
        assert!(s1.entries == 1 && (ttt - 0.1).abs() < 1e-9, "{ttt}");
        assert_eq!((s2.entries, s2.untracked_entries, s2.time_to_track_s.count()), (1, 1, 0));
        assert!((s2.untracked_longest_s - 0.15).abs() < 1e-9, "{}", s2.untracked_longest_s);
        assert_eq!(segments.iter().map(|s| s.logs).collect::<Vec<_>>(), vec![1, 1, 1]);
    }

    #[test]
    fn histogram_quantiles_are_upper_bounds_within_a_bin() {
        let mut h = Histogram::new(0.01, 100);
        assert_eq!((h.quantile(0.5), h.max()), (None, None));
        for i in 1..=100 {
            h.add(f64::from(i) * 0.0123);
        }
        h.add(f64::NAN);
        assert_eq!(h.count(), 100);
        // Exact nearest-rank p95 is 95 × 0.0123 = 1.1685 m: past the last bin, so the maximum.
        assert_eq!(h.quantile(0.95), Some(1.23));
        // The median, 50 × 0.0123 = 0.615, lies in the bin [0.61, 0.62).
        let p50 = h.quantile(0.5).expect("some");
        assert!((p50 - 0.62).abs() < 1e-12, "{p50}");
        let mut other = Histogram::new(0.01, 100);
        other.add(0.001);
        h.merge(&other);
        assert_eq!(h.count(), 101);
        assert_eq!(h.quantile(0.0), Some(0.01), "the smallest value's bin edge");
        let mut one = Histogram::new(0.01, 100);
        one.add(0.003);
        assert_eq!(one.quantile(0.95), Some(0.003), "never above the maximum");
    }
}
