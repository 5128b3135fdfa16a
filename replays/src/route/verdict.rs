//! Verdicts: the route criteria applied to each segment's coverage and figures, and the route's
//! report.
//!
//! Each check of a segment is `pass`, `fail` or `insufficient` (not enough evidence either way):
//!
//! - **Coverage**: every sampled point of the corridor seen by at least `min_sensors` sensors,
//!   else fail (a blind spot). Decided from the site model, with or without logs.
//! - **Detection probability** (`detection_min`): judged on its 95 % Wilson interval, only once
//!   the group has `min_observations` observations there. Fail when the interval's upper bound
//!   is below the limit (demonstrably worse); pass when its lower bound meets the limit and at
//!   least `min_objects` distinct objects were observed (demonstrated with 95 % confidence, on
//!   more than one object); otherwise insufficient.
//! - **Error percentiles** (`position_p95_max_m`, `velocity_p95_max_mps`): insufficient below
//!   `min_error_samples` matches, else pass or fail on the 95th percentile (an upper bound
//!   within one histogram bin: 1 cm, 2 cm/s).
//! - **Time to track** (`time_to_track_max_s`): checked when some object entered the corridor
//!   in the segment; fail when one took longer to be tracked, or stayed longer untracked.
//! - **Broadcast age** (`broadcast_age_p95_max_s`): checked when the logs hold a recorded
//!   broadcast near the segment.
//!
//! A segment fails when any check fails, is insufficient when none fails and one is
//! insufficient (a required group never observed there included), and passes otherwise. The
//! route passes when every segment passes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::coverage::{BlindSpot, CoverageProfile, SegmentCoverage};
use super::criteria::{GROUPS, GroupCriteria, RouteCriteria};
use super::tally::{GroupTally, Histogram, LogContribution, RouteTally, SegmentTally, Z_95, wilson};
use super::{Route, Segment};

/// Version of the route report's layout.
pub const ROUTE_REPORT_VERSION: u32 = 1;

/// The outcome of a check or a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Meets the criteria.
    Pass,
    /// Not enough observations to say.
    Insufficient,
    /// Fails the criteria.
    Fail,
}

impl Verdict {
    /// `pass`, `insufficient` or `fail`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Insufficient => "insufficient",
            Verdict::Fail => "fail",
        }
    }
}

/// One evaluated check of a segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentCheck {
    /// What was checked, e.g. `vru.detection_min` or `coverage.min_sensors`.
    pub name: String,
    /// Its outcome.
    pub verdict: Verdict,
    /// A readable sentence with the figure, the limit and the evidence.
    pub message: String,
}

/// A detection probability with its 95 % Wilson interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Matched / observed.
    pub probability: f64,
    /// Lower bound of the 95 % Wilson interval.
    pub ci95_low: f64,
    /// Upper bound.
    pub ci95_high: f64,
}

/// The figures of one group in one segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupFigures {
    /// Observations (object × truth frame) near the route in the segment.
    pub observations: u64,
    /// Of those, matched to a track.
    pub matched: u64,
    /// Distinct objects (per log).
    pub objects: u64,
    /// Detection probability; `None` without observations.
    pub detection: Option<Detection>,
    /// Median position error of the matches [m].
    pub position_p50_m: Option<f64>,
    /// 95th percentile position error [m].
    pub position_p95_m: Option<f64>,
    /// 95th percentile velocity error [m/s].
    pub velocity_p95_mps: Option<f64>,
    /// Objects that entered the corridor in the segment.
    pub entries: u64,
    /// Of those, tracked before leaving it.
    pub tracked_entries: u64,
    /// Median time from entering to tracked, of those tracked [s].
    pub time_to_track_p50_s: Option<f64>,
    /// Longest time from entering to tracked [s].
    pub time_to_track_max_s: Option<f64>,
    /// The longest an entry stayed in the corridor never tracked [s].
    pub untracked_longest_s: Option<f64>,
}

/// Quantiles of the recorded broadcast's age in a segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgeFigures {
    /// Object ages counted.
    pub samples: u64,
    /// Median [s].
    pub p50_s: f64,
    /// 95th percentile [s].
    pub p95_s: f64,
}

/// One segment's coverage, figures and verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentReport {
    /// Position along the route, from 0.
    pub index: usize,
    /// Chainage where it starts [m].
    pub from_m: f64,
    /// Chainage where it ends [m].
    pub to_m: f64,
    /// The segment's verdict.
    pub verdict: Verdict,
    /// Sensor coverage of its corridor.
    pub coverage: SegmentCoverage,
    /// Figures by group (`vru`, `vehicle`, `static`), for the groups observed or required.
    pub groups: BTreeMap<String, GroupFigures>,
    /// Recorded broadcast age; absent when no log holds a recorded broadcast near it.
    pub broadcast_age: Option<AgeFigures>,
    /// Logs that observed an object in it.
    pub logs: u64,
    /// Every check, in order.
    pub checks: Vec<SegmentCheck>,
}

/// A log that could not be used.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedLog {
    /// The file.
    pub file: String,
    /// Why.
    pub error: String,
}

/// The route as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteInfo {
    /// Its id.
    pub id: String,
    /// Where it came from.
    pub source: String,
    /// Length [m].
    pub length_m: f64,
    /// Whether it is a loop.
    pub closed: bool,
    /// Segments.
    pub segments: usize,
}

/// Counts over the segments.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RouteSummary {
    /// Segments passing.
    pub pass: usize,
    /// Segments failing.
    pub fail: usize,
    /// Segments without enough evidence.
    pub insufficient: usize,
    /// Total chainage of the blind spots [m] (the sample spacing each).
    pub blind_m: f64,
    /// Observations over all segments and groups.
    pub observations: u64,
    /// Of those, matched.
    pub matched: u64,
}

/// The whole route report (the JSON document).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteReport {
    /// Layout version ([`ROUTE_REPORT_VERSION`]).
    pub report_version: u32,
    /// The route.
    pub route: RouteInfo,
    /// The site whose sensors and occluders gave the coverage.
    pub site_id: String,
    /// The criteria applied.
    pub criteria: RouteCriteria,
    /// Where they came from (a file or a built-in set).
    pub criteria_source: String,
    /// Every segment passes.
    pub passed: bool,
    /// Counts.
    pub summary: RouteSummary,
    /// Stretches of the corridor no sensor sees, by chainage.
    pub blind_spots: Vec<BlindSpot>,
    /// The segments, in chainage order.
    pub segments: Vec<SegmentReport>,
    /// The logs used.
    pub logs: Vec<LogContribution>,
    /// The logs that could not be used, and why.
    pub skipped: Vec<SkippedLog>,
}

fn group_figures(t: &GroupTally) -> GroupFigures {
    GroupFigures {
        observations: t.observations,
        matched: t.matched,
        objects: t.objects,
        detection: wilson(t.matched, t.observations, Z_95).map(|(lo, hi)| Detection {
            probability: t.matched as f64 / t.observations as f64,
            ci95_low: lo,
            ci95_high: hi,
        }),
        position_p50_m: t.position_m.quantile(0.5),
        position_p95_m: t.position_m.quantile(0.95),
        velocity_p95_mps: t.velocity_mps.quantile(0.95),
        entries: t.entries,
        tracked_entries: t.time_to_track_s.count(),
        time_to_track_p50_s: t.time_to_track_s.quantile(0.5),
        time_to_track_max_s: t.time_to_track_s.max(),
        untracked_longest_s: (t.untracked_entries > 0).then_some(t.untracked_longest_s),
    }
}

fn check(name: String, verdict: Verdict, message: String) -> SegmentCheck {
    SegmentCheck { name, verdict, message }
}

/// The checks of group `name` with limits `c` on its tally `t`.
fn group_checks(name: &str, c: &GroupCriteria, t: &GroupTally, criteria: &RouteCriteria, out: &mut Vec<SegmentCheck>) {
    let f = group_figures(t);
    if let Some(limit) = c.detection_min {
        let n = format!("{name}.detection_min");
        let evidence = format!("{} of {} observations of {} objects", t.matched, t.observations, t.objects);
        match f.detection {
            Some(d) if t.observations >= criteria.min_observations => {
                let figure = format!(
                    "detection {:.3} (95 % CI {:.3}..{:.3}) from {evidence}",
                    d.probability, d.ci95_low, d.ci95_high
                );
                if d.ci95_high < limit {
                    out.push(check(n, Verdict::Fail, format!("{figure}: below {limit}")));
                } else if d.ci95_low >= limit && t.objects >= criteria.min_objects {
                    out.push(check(n, Verdict::Pass, format!("{figure}: at least {limit}")));
                } else if d.ci95_low >= limit {
                    out.push(check(
                        n,
                        Verdict::Insufficient,
                        format!("{figure}: fewer than {} distinct objects", criteria.min_objects),
                    ));
                } else {
                    out.push(check(n, Verdict::Insufficient, format!("{figure}: the interval includes {limit}")));
                }
            }
            _ => out.push(check(
                n,
                Verdict::Insufficient,
                format!("{evidence}; {} needed to judge {limit}", criteria.min_observations),
            )),
        }
    }
    for (field, limit, value, unit, histogram) in [
        ("position_p95_max_m", c.position_p95_max_m, f.position_p95_m, "m", &t.position_m),
        ("velocity_p95_max_mps", c.velocity_p95_max_mps, f.velocity_p95_mps, "m/s", &t.velocity_mps),
    ] {
        let Some(limit) = limit else { continue };
        let n = format!("{name}.{field}");
        let samples = histogram.count();
        match value {
            Some(v) if samples >= criteria.min_error_samples => {
                let verdict = if v <= limit { Verdict::Pass } else { Verdict::Fail };
                out.push(check(n, verdict, format!("p95 {v:.2} {unit} over {samples} matches (limit {limit} {unit})")));
            }
            _ => out.push(check(
                n,
                Verdict::Insufficient,
                format!("{samples} matches; {} needed to judge the p95", criteria.min_error_samples),
            )),
        }
    }
    if let Some(limit) = c.time_to_track_max_s
        && t.entries > 0
    {
        let n = format!("{name}.time_to_track_max_s");
        let slowest = f.time_to_track_max_s.unwrap_or(0.0);
        let untracked = f.untracked_longest_s.unwrap_or(0.0);
        let message = format!(
            "{} entries, {} tracked (slowest {slowest:.2} s), {} never tracked (longest untracked {untracked:.2} s); limit {limit} s",
            t.entries, f.tracked_entries, t.untracked_entries
        );
        let verdict = if slowest > limit || untracked > limit { Verdict::Fail } else { Verdict::Pass };
        out.push(check(n, verdict, message));
    }
}

fn age_figures(h: &Histogram) -> Option<AgeFigures> {
    Some(AgeFigures { samples: h.count(), p50_s: h.quantile(0.5)?, p95_s: h.quantile(0.95)? })
}

/// The report of one segment.
pub fn judge_segment(
    segment: &Segment,
    coverage: SegmentCoverage,
    tally: &SegmentTally,
    criteria: &RouteCriteria,
) -> SegmentReport {
    let mut checks = Vec::new();
    let verdict = if coverage.sensors_min >= criteria.min_sensors as usize { Verdict::Pass } else { Verdict::Fail };
    checks.push(check(
        "coverage.min_sensors".into(),
        verdict,
        format!(
            "{} to {} sensors see its corridor ({:.0} % of it seen; limit {} everywhere)",
            coverage.sensors_min,
            coverage.sensors_max,
            coverage.covered_fraction * 100.0,
            criteria.min_sensors
        ),
    ));
    let mut groups = BTreeMap::new();
    for (g, name) in GROUPS.iter().enumerate() {
        let t = &tally.groups[g];
        let required = criteria.group(g);
        if let Some(c) = required {
            group_checks(name, c, t, criteria, &mut checks);
        }
        if required.is_some() || t.observations > 0 {
            groups.insert((*name).to_owned(), group_figures(t));
        }
    }
    let broadcast_age = tally.broadcast_age_s.as_ref().and_then(age_figures);
    if let Some(age) = &broadcast_age {
        for (g, name) in GROUPS.iter().enumerate() {
            if let Some(limit) = criteria.group(g).and_then(|c| c.broadcast_age_p95_max_s) {
                let verdict = if age.p95_s <= limit { Verdict::Pass } else { Verdict::Fail };
                checks.push(check(
                    format!("{name}.broadcast_age_p95_max_s"),
                    verdict,
                    format!("p95 {:.3} s over {} broadcast objects (limit {limit} s)", age.p95_s, age.samples),
                ));
            }
        }
    }
    let verdict = checks.iter().map(|c| c.verdict).max().unwrap_or(Verdict::Pass);
    SegmentReport {
        index: segment.index,
        from_m: segment.from_m,
        to_m: segment.to_m,
        verdict,
        coverage,
        groups,
        broadcast_age,
        logs: tally.logs,
        checks,
    }
}

/// The report of `route` cut into `segments`, from its coverage and the tally of its logs (no
/// log skipped: the caller lists those in `skipped`).
pub fn judge(
    route: &Route,
    segments: &[Segment],
    coverage: &CoverageProfile,
    tally: &RouteTally,
    criteria: &RouteCriteria,
    criteria_source: &str,
    site_id: &str,
) -> RouteReport {
    let reports: Vec<SegmentReport> = segments
        .iter()
        .zip(&tally.segments)
        .map(|(seg, t)| judge_segment(seg, coverage.of_segment(seg), t, criteria))
        .collect();
    let blind_spots = coverage.blind_spots();
    let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
    let step = coverage.samples.get(1).map_or(0.0, |c| c.s_m) - coverage.samples.first().map_or(0.0, |c| c.s_m);
    let blind_samples = coverage.samples.iter().filter(|c| c.min_sensors() == 0).count();
    let summary = RouteSummary {
        pass: count(Verdict::Pass),
        fail: count(Verdict::Fail),
        insufficient: count(Verdict::Insufficient),
        blind_m: blind_samples as f64 * step,
        observations: tally.logs.iter().map(|l| l.observations).sum(),
        matched: tally.logs.iter().map(|l| l.matched).sum(),
    };
    RouteReport {
        report_version: ROUTE_REPORT_VERSION,
        route: RouteInfo {
            id: route.id.clone(),
            source: route.source.clone(),
            length_m: route.length_m(),
            closed: route.line.is_closed(),
            segments: segments.len(),
        },
        site_id: site_id.to_owned(),
        criteria: criteria.clone(),
        criteria_source: criteria_source.to_owned(),
        passed: summary.fail == 0 && summary.insufficient == 0 && !reports.is_empty(),
        summary,
        blind_spots,
        segments: reports,
        logs: tally.logs.clone(),
        skipped: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(sensors_min: usize) -> SegmentCoverage {
        SegmentCoverage {
            sensors_min,
            sensors_max: sensors_min,
            sensors: Vec::new(),
            covered_fraction: if sensors_min > 0 { 1.0 } else { 0.0 },
            samples: 11,
        }
    }

    /// A tally of VRUs: `matched` of `observations` over `objects` objects, each match 0.2 m off.
    fn vru_tally(observations: u64, matched: u64, objects: u64) -> SegmentTally {
        let mut t = SegmentTally::default();
        let g = &mut t.groups[0];
        g.observations = observations;
        g.matched = matched;
        g.objects = objects;
        for _ in 0..matched {
            g.position_m.add(0.2);
            g.velocity_mps.add(0.3);
        }
        t
    }

    fn only_vru() -> RouteCriteria {
        RouteCriteria::parse("[vru]\ndetection_min = 0.99\nposition_p95_max_m = 0.5\ntime_to_track_max_s = 1.0", "test")
            .expect("valid")
    }

    fn verdict_of(check: &str, report: &SegmentReport) -> Verdict {
        report.checks.iter().find(|c| c.name == check).map(|c| c.verdict).expect(check)
    }

    #[test]
    fn a_segment_seen_a_few_times_is_not_called_good() {
        let seg = Segment { index: 0, from_m: 0.0, to_m: 10.0 };
        let criteria = only_vru();
        // Two observations, both detected: 100 % but not evidence.
        let r = judge_segment(&seg, covered(2), &vru_tally(2, 2, 1), &criteria);
        assert_eq!(r.verdict, Verdict::Insufficient);
        assert_eq!(verdict_of("vru.detection_min", &r), Verdict::Insufficient);
        // 200 of 200 over 5 objects: the lower bound (0.981) is below 0.99: still not shown.
        let r = judge_segment(&seg, covered(2), &vru_tally(200, 200, 5), &criteria);
        assert_eq!(verdict_of("vru.detection_min", &r), Verdict::Insufficient, "{:?}", r.checks);
        // 400 of 400 over 5 objects: shown at 95 % confidence.
        let r = judge_segment(&seg, covered(2), &vru_tally(400, 400, 5), &criteria);
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.checks);
        let d = r.groups["vru"].detection.expect("observed");
        assert!(d.probability == 1.0 && d.ci95_low >= 0.99);
        // The same from a single object: frames of one object are not independent trials.
        let r = judge_segment(&seg, covered(2), &vru_tally(400, 400, 1), &criteria);
        assert_eq!(r.verdict, Verdict::Insufficient);
    }

    #[test]
    fn demonstrably_poor_detection_and_blind_spots_fail() {
        let seg = Segment { index: 3, from_m: 30.0, to_m: 40.0 };
        let criteria = only_vru();
        // 90 of 120: the upper bound (about 0.82) is far below 0.99.
        let r = judge_segment(&seg, covered(1), &vru_tally(120, 90, 4), &criteria);
        assert_eq!(verdict_of("vru.detection_min", &r), Verdict::Fail);
        assert_eq!(r.verdict, Verdict::Fail);
        // Perfect detection does not save a segment no sensor sees.
        let r = judge_segment(&seg, covered(0), &vru_tally(400, 400, 5), &criteria);
        assert_eq!(verdict_of("coverage.min_sensors", &r), Verdict::Fail);
        assert_eq!(r.verdict, Verdict::Fail);
        // Position p95 over the limit fails; too few matches is insufficient.
        let mut t = vru_tally(400, 400, 5);
        for _ in 0..100 {
            t.groups[0].position_m.add(0.9);
        }
        let r = judge_segment(&seg, covered(1), &t, &criteria);
        assert_eq!(verdict_of("vru.position_p95_max_m", &r), Verdict::Fail);
        let r = judge_segment(&seg, covered(1), &vru_tally(5, 5, 1), &criteria);
        assert_eq!(verdict_of("vru.position_p95_max_m", &r), Verdict::Insufficient);
        // A required group never observed: insufficient, with its (empty) figures reported.
        let r = judge_segment(&seg, covered(1), &SegmentTally::default(), &criteria);
        assert_eq!(r.verdict, Verdict::Insufficient);
        assert!(r.groups["vru"].detection.is_none() && !r.groups.contains_key("vehicle"));
    }

    #[test]
    fn slow_or_missing_tracks_of_entering_objects_fail() {
        let seg = Segment { index: 0, from_m: 0.0, to_m: 10.0 };
        let criteria = only_vru();
        let mut t = vru_tally(400, 400, 5);
        t.groups[0].entries = 2;
        t.groups[0].time_to_track_s.add(0.3);
        t.groups[0].time_to_track_s.add(0.5);
        let r = judge_segment(&seg, covered(1), &t, &criteria);
        assert_eq!(verdict_of("vru.time_to_track_max_s", &r), Verdict::Pass);
        t.groups[0].entries = 3;
        t.groups[0].untracked_entries = 1;
        t.groups[0].untracked_longest_s = 2.5;
        let r = judge_segment(&seg, covered(1), &t, &criteria);
        assert_eq!(verdict_of("vru.time_to_track_max_s", &r), Verdict::Fail, "2.5 s in the corridor untracked");
        // No entries: nothing to judge, no check.
        let r = judge_segment(&seg, covered(1), &vru_tally(400, 400, 5), &criteria);
        assert!(r.checks.iter().all(|c| c.name != "vru.time_to_track_max_s"));
    }
}
