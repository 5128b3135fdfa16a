//! Pass/fail criteria of a replay (TOML): thresholds on the metrics, overall and per class, and
//! scenario assertions such as "object X tracked at least 3 s before the ego vehicle reaches the
//! conflict point". [`evaluate`] turns metrics into a list of checks, each with a readable reason.
//!
//! Which criteria judge a log is decided by [`resolve`]: a file named on the command line, else
//! `<log>.criteria.toml` beside the log, else the criteria of the log's scenario built into the
//! binary ([`embedded`]: the committed `replays/logs/*.criteria.toml`), else the generic
//! [`default_criteria`]. The answer says which ([`CriteriaSource`]), so a report never passes a
//! log on weaker limits than the user believes.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rsu_fusion::ObjectClass;
use serde::{Deserialize, Serialize};

use crate::scoring::{Metrics, ScoringConfig};

/// A criteria file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Criteria {
    /// Matching parameters.
    pub scoring: ScoringConfig,
    /// Thresholds over all classes.
    pub overall: Thresholds,
    /// Thresholds per ground-truth class (by class name, e.g. `pedestrian`).
    pub per_class: BTreeMap<ObjectClass, ClassThresholds>,
    /// Scenario assertions.
    pub assertions: Vec<Assertion>,
}

/// Limits on the overall metrics; absent limits are not checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest acceptable MOTA.
    pub mota_min: Option<f64>,
    /// Highest acceptable MOTP [m].
    pub motp_max_m: Option<f64>,
    /// Lowest acceptable IDF1.
    pub idf1_min: Option<f64>,
    /// Lowest acceptable HOTA.
    pub hota_min: Option<f64>,
    /// Most id switches per 100 s of tracked ground truth.
    pub switches_per_100_track_s_max: Option<f64>,
    /// Highest position RMSE [m].
    pub position_rmse_max_m: Option<f64>,
    /// Highest 95th percentile position error [m].
    pub position_p95_max_m: Option<f64>,
    /// Highest velocity RMSE [m/s].
    pub velocity_rmse_max_mps: Option<f64>,
    /// Highest heading RMSE of moving objects [deg].
    pub heading_rmse_max_deg: Option<f64>,
    /// Longest time from entering coverage to being tracked, any object [s]. An object never
    /// tracked counts with the time it was in coverage untracked (its time to track is at least
    /// that), so one in coverage longer than this limit fails it.
    pub time_to_track_max_s: Option<f64>,
    /// Most objects in coverage never tracked.
    pub never_tracked_max: Option<u64>,
    /// Most false tracks per minute.
    pub false_tracks_per_min_max: Option<f64>,
    /// Lowest coverage (fraction of travelled distance tracked).
    pub coverage_min: Option<f64>,
    /// Highest 99th percentile age of broadcast objects (frame time minus newest measurement) [s].
    pub broadcast_age_p99_max_s: Option<f64>,
}

/// Limits on one class's CLEAR MOT figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassThresholds {
    /// Lowest acceptable MOTA.
    pub mota_min: Option<f64>,
    /// Highest acceptable MOTP [m].
    pub motp_max_m: Option<f64>,
}

/// A scenario assertion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Assertion {
    /// Ground-truth object `object_id` is tracked at least `lead_s` before the connected vehicle
    /// `ego_v2x_id` first comes within `radius_m` of `conflict_point_m`.
    TrackedBeforeConflict {
        /// Free name shown in reports.
        name: String,
        /// Ground-truth id of the object that must be tracked.
        object_id: u32,
        /// V2X id of the ego vehicle (its ground-truth object carries it).
        ego_v2x_id: String,
        /// Conflict point (east, north) [m], site frame.
        conflict_point_m: [f64; 2],
        /// Radius around the conflict point [m].
        radius_m: f64,
        /// Required lead time [s].
        lead_s: f64,
    },
    /// Ground-truth object `object_id` is tracked within `within_s` of entering coverage.
    TrackedWithin {
        /// Free name shown in reports.
        name: String,
        /// Ground-truth id.
        object_id: u32,
        /// Longest acceptable delay [s].
        within_s: f64,
    },
}

/// Scenario facts the assertions need, gathered during the replay.
#[derive(Clone, Debug, Default)]
pub struct ScenarioFacts {
    /// Per V2X id: the ground-truth track of that vehicle, (time [UTC ns], east, north).
    pub ego_tracks: BTreeMap<String, Vec<(i64, f64, f64)>>,
    /// 99th percentile age of broadcast objects [s].
    pub broadcast_age_p99_s: Option<f64>,
    /// Per ground-truth id: first time in coverage [UTC ns].
    pub first_in_coverage_ns: BTreeMap<u32, i64>,
}

/// One evaluated check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, e.g. `overall.mota_min`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The measured value (NaN when it could not be measured).
    pub value: f64,
    /// The limit.
    pub limit: f64,
    /// A readable sentence.
    pub message: String,
}

/// A check that fails because `what` is undefined (`None`): nothing to measure it on.
fn undefined(name: String, limit: f64, what: &str, bound: &str) -> Check {
    Check {
        message: format!("{what} is n/a (nothing to measure it on), so the {bound} {limit:.3} is not met"),
        name,
        passed: false,
        value: f64::NAN,
        limit,
    }
}

/// `value ≥ limit`; an undefined value fails.
fn at_least(name: String, value: Option<f64>, limit: f64, what: &str) -> Check {
    let Some(value) = value else { return undefined(name, limit, what, "minimum") };
    let passed = value >= limit;
    let verb = if passed { "meets" } else { "is below" };
    Check { message: format!("{what} {value:.3} {verb} the minimum {limit:.3}"), name, passed, value, limit }
}

/// `value ≤ limit`; an undefined value fails.
fn at_most(name: String, value: Option<f64>, limit: f64, what: &str) -> Check {
    let Some(value) = value else { return undefined(name, limit, what, "maximum") };
    let passed = value <= limit;
    let verb = if passed { "is within" } else { "exceeds" };
    Check { message: format!("{what} {value:.3} {verb} the maximum {limit:.3}"), name, passed, value, limit }
}

/// The longest time to track against `limit` [s], counting each object never tracked at the time
/// it was in coverage (its time to track is at least that); fails when no object was in coverage.
fn time_to_track_check(metrics: &Metrics, limit: f64) -> Check {
    let name = "overall.time_to_track_max_s".to_owned();
    let what = "longest time to track [s]";
    let untracked = metrics.never_tracked_in_coverage_s.iter().max_by(|a, b| a.1.total_cmp(b.1));
    match (metrics.time_to_track_max_s, untracked) {
        (None, None) => undefined(name, limit, what, "maximum"),
        (tracked, Some((&id, &in_coverage_s)))
            if tracked.is_none_or(|t| in_coverage_s >= t) && in_coverage_s > limit =>
        {
            Check {
                message: format!(
                    "object {id} was in coverage {in_coverage_s:.3} s and never tracked: its time to track exceeds the maximum {limit:.3}"
                ),
                name,
                passed: false,
                value: in_coverage_s,
                limit,
            }
        }
        (tracked, untracked) => {
            let value = tracked.into_iter().chain(untracked.map(|(_, &s)| s)).fold(f64::NEG_INFINITY, f64::max);
            let mut check = at_most(name, Some(value), limit, what);
            if let Some((_, &longest_s)) = untracked {
                let n = metrics.never_tracked_in_coverage_s.len();
                let _ = write!(
                    check.message,
                    " ({n} object(s) never tracked, each in coverage at most {longest_s:.3} s; never_tracked_max limits them)"
                );
            }
            check
        }
    }
}

/// A check of a metric that does not apply to the log (an identity metric of ground truth whose
/// ids hold for one frame only): passed, not measured (NaN), saying so.
fn not_applicable(name: String, limit: f64, what: &str) -> Check {
    let message = format!("{what} not applicable: the ground truth has no persistent ids (not checked)");
    Check { message, name, passed: true, value: f64::NAN, limit }
}

/// Whether the check named `name` needs ground truth to be measured: every check but the
/// broadcast age (the replay's own output) and the `log.` checks of a log without truth.
pub fn needs_truth(name: &str) -> bool {
    !(name == "overall.broadcast_age_p99_max_s" || name.starts_with("log."))
}

impl Check {
    /// This check, not applicable to a log without ground truth: passed as not checked (value
    /// NaN), saying so. The figure it would judge needs truth to be measured at all.
    pub fn without_truth(self) -> Check {
        Check {
            message: format!(
                "not applicable: the log has no ground truth to measure it on (not checked; {})",
                self.name
            ),
            passed: true,
            value: f64::NAN,
            ..self
        }
    }

    /// Whether the check was not applicable to the log, so not checked (see [`Check::without_truth`] and the
    /// identity metrics of truth without persistent ids).
    pub fn is_not_applicable(&self) -> bool {
        self.passed && self.value.is_nan() && self.message.contains("not applicable")
    }
}

/// Evaluates `criteria` against `metrics`.
pub fn evaluate(criteria: &Criteria, metrics: &Metrics, facts: &ScenarioFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    let o = &criteria.overall;
    // `None` values are metrics that do not apply to the log.
    let min_checks: [(&str, Option<f64>, Option<f64>, &str); 4] = [
        ("mota_min", o.mota_min, Some(metrics.overall.mota), "MOTA"),
        ("idf1_min", o.idf1_min, metrics.idf1, "IDF1"),
        ("hota_min", o.hota_min, metrics.hota.hota, "HOTA"),
        ("coverage_min", o.coverage_min, Some(metrics.coverage), "coverage"),
    ];
    for (key, limit, value, what) in min_checks {
        if let Some(limit) = limit {
            checks.push(match value {
                Some(value) => at_least(format!("overall.{key}"), Some(value), limit, what),
                None => not_applicable(format!("overall.{key}"), limit, what),
            });
        }
    }
    if let (Some(limit), None) = (o.switches_per_100_track_s_max, metrics.switches_per_100_track_s) {
        checks.push(not_applicable(
            "overall.switches_per_100_track_s_max".into(),
            limit,
            "id switches per 100 track-s",
        ));
    }
    let max_checks: [(&str, Option<f64>, Option<f64>, &str); 8] = [
        ("motp_max_m", o.motp_max_m, metrics.overall.motp_m, "MOTP [m]"),
        (
            "switches_per_100_track_s_max",
            o.switches_per_100_track_s_max.filter(|_| metrics.switches_per_100_track_s.is_some()),
            metrics.switches_per_100_track_s,
            "id switches per 100 track-s",
        ),
        ("position_rmse_max_m", o.position_rmse_max_m, metrics.position_rmse_m, "position RMSE [m]"),
        ("position_p95_max_m", o.position_p95_max_m, metrics.position_p95_m, "position p95 [m]"),
        ("velocity_rmse_max_mps", o.velocity_rmse_max_mps, metrics.velocity_rmse_mps, "velocity RMSE [m/s]"),
        ("heading_rmse_max_deg", o.heading_rmse_max_deg, metrics.heading_rmse_deg, "heading RMSE [deg]"),
        (
            "false_tracks_per_min_max",
            o.false_tracks_per_min_max,
            Some(metrics.false_tracks_per_min),
            "false tracks per minute",
        ),
        (
            "broadcast_age_p99_max_s",
            o.broadcast_age_p99_max_s,
            facts.broadcast_age_p99_s,
            "broadcast object age p99 [s]",
        ),
    ];
    for (key, limit, value, what) in max_checks {
        if let Some(limit) = limit {
            checks.push(at_most(format!("overall.{key}"), value, limit, what));
        }
    }
    if let Some(limit) = o.time_to_track_max_s {
        checks.push(time_to_track_check(metrics, limit));
    }
    if let Some(limit) = o.never_tracked_max {
        checks.push(at_most(
            "overall.never_tracked_max".into(),
            Some(metrics.never_tracked as f64),
            limit as f64,
            "objects never tracked",
        ));
    }
    for (class, limits) in &criteria.per_class {
        let Some(m) = metrics.per_class.get(class) else {
            checks.push(Check {
                name: format!("per_class.{class}"),
                passed: false,
                value: f64::NAN,
                limit: f64::NAN,
                message: format!("no {class} appears in the ground truth, so its criteria cannot be checked"),
            });
            continue;
        };
        if let Some(limit) = limits.mota_min {
            checks.push(at_least(format!("per_class.{class}.mota_min"), Some(m.mota), limit, &format!("{class} MOTA")));
        }
        if let Some(limit) = limits.motp_max_m {
            checks.push(at_most(
                format!("per_class.{class}.motp_max_m"),
                m.motp_m,
                limit,
                &format!("{class} MOTP [m]"),
            ));
        }
    }
    for assertion in &criteria.assertions {
        checks.push(evaluate_assertion(assertion, metrics, facts));
    }
    checks
}

fn evaluate_assertion(assertion: &Assertion, metrics: &Metrics, facts: &ScenarioFacts) -> Check {
    match assertion {
        Assertion::TrackedBeforeConflict { name, object_id, ego_v2x_id, conflict_point_m, radius_m, lead_s } => {
            let reach_ns = facts.ego_tracks.get(ego_v2x_id).and_then(|track| {
                track
                    .iter()
                    .find(|(_, x, y)| (x - conflict_point_m[0]).hypot(y - conflict_point_m[1]) <= *radius_m)
                    .map(|(t, _, _)| *t)
            });
            let tracked_ns = metrics.first_matched_ns.get(object_id).copied();
            let name = format!("assertion.{name}");
            let fail =
                |message: String| Check { name: name.clone(), passed: false, value: f64::NAN, limit: *lead_s, message };
            // The assertion applies only if the ego vehicle reaches the conflict point: otherwise
            // it fails as not applicable, so a scenario that did not play out is never passed.
            match (tracked_ns, reach_ns) {
                _ if !facts.ego_tracks.contains_key(ego_v2x_id) => fail(format!(
                    "not applicable: no ground-truth object carries V2X id {ego_v2x_id}, so the conflict cannot be timed"
                )),
                (_, None) => fail(format!(
                    "not applicable: {ego_v2x_id} never came within {radius_m} m of the conflict point, so object {object_id}'s lead cannot be measured"
                )),
                (None, Some(_)) => fail(format!("object {object_id} was never tracked")),
                (Some(tracked), Some(reach)) => {
                    let lead = (reach - tracked) as f64 * 1e-9;
                    let passed = lead >= *lead_s;
                    Check {
                        name,
                        passed,
                        value: lead,
                        limit: *lead_s,
                        message: format!(
                            "object {object_id} was tracked {lead:.2} s before {ego_v2x_id} reached the conflict point ({} {lead_s:.2} s)",
                            if passed { "≥" } else { "< required" }
                        ),
                    }
                }
            }
        }
        Assertion::TrackedWithin { name, object_id, within_s } => {
            let name = format!("assertion.{name}");
            let seen = facts.first_in_coverage_ns.get(object_id);
            let tracked = metrics.first_matched_ns.get(object_id);
            match (seen, tracked) {
                (Some(seen), Some(tracked)) => {
                    let delay = (tracked - seen) as f64 * 1e-9;
                    let passed = delay <= *within_s;
                    Check {
                        name,
                        passed,
                        value: delay,
                        limit: *within_s,
                        message: format!(
                            "object {object_id} was tracked {delay:.2} s after entering coverage (limit {within_s:.2} s)"
                        ),
                    }
                }
                _ => Check {
                    name,
                    passed: false,
                    value: f64::NAN,
                    limit: *within_s,
                    message: format!("object {object_id} was never in coverage or never tracked"),
                },
            }
        }
    }
}

/// The committed scenarios' criteria (`replays/logs/<scenario>.criteria.toml`), compiled in.
const EMBEDDED: [(&str, &str); 10] = [
    ("bus-pedestrian", include_str!("../logs/bus-pedestrian.criteria.toml")),
    ("camera-night", include_str!("../logs/camera-night.criteria.toml")),
    ("congested-intersection", include_str!("../logs/congested-intersection.criteria.toml")),
    ("emergency-vehicle", include_str!("../logs/emergency-vehicle.criteria.toml")),
    ("left-turn-oncoming", include_str!("../logs/left-turn-oncoming.criteria.toml")),
    ("lidar-failure", include_str!("../logs/lidar-failure.criteria.toml")),
    ("occluded-cross-traffic", include_str!("../logs/occluded-cross-traffic.criteria.toml")),
    ("shuttle-loop", include_str!("../logs/shuttle-loop.criteria.toml")),
    ("stopped-vehicle", include_str!("../logs/stopped-vehicle.criteria.toml")),
    ("tunnel-exit-gnss", include_str!("../logs/tunnel-exit-gnss.criteria.toml")),
];

/// The built-in criteria text (TOML) of a catalogued scenario.
pub fn embedded(scenario: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(name, _)| *name == scenario).map(|(_, text)| *text)
}

/// The scenarios that have built-in criteria.
pub fn embedded_scenarios() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(name, _)| *name)
}

/// Generic limits for a log of no known scenario and without a criteria file.
pub fn default_criteria() -> Criteria {
    let mut c = Criteria::default();
    c.overall.mota_min = Some(0.6);
    c.overall.idf1_min = Some(0.6);
    c.overall.position_rmse_max_m = Some(1.0);
    c
}

/// Where the criteria of a validation came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum CriteriaSource {
    /// A criteria file (named on the command line or beside the log).
    File(PathBuf),
    /// The built-in criteria of this scenario.
    Embedded(String),
    /// [`default_criteria`]: neither a file nor a known scenario.
    Defaults,
}

impl fmt::Display for CriteriaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CriteriaSource::File(path) => write!(f, "{}", path.display()),
            CriteriaSource::Embedded(scenario) => write!(f, "built-in criteria of scenario {scenario}"),
            CriteriaSource::Defaults => write!(f, "generic defaults (no criteria file, scenario unknown)"),
        }
    }
}

/// Why criteria could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CriteriaError {
    /// The file could not be read.
    #[error("reading criteria {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The text is not valid criteria.
    #[error("parsing criteria {source_name}: {problem}")]
    Parse {
        /// The file or built-in scenario.
        source_name: String,
        /// What the parser said.
        problem: String,
    },
}

/// Parses criteria TOML; `source_name` names it in errors.
pub fn parse(text: &str, source_name: &str) -> Result<Criteria, CriteriaError> {
    toml::from_str(text)
        .map_err(|e| CriteriaError::Parse { source_name: source_name.to_owned(), problem: e.to_string() })
}

/// The criteria for `log`: `explicit`, else `<log>.criteria.toml`, else the built-in criteria of
/// the log's scenario, else the defaults. `scenario` names the log's scenario (from its metadata,
/// when known); it is asked only when there is no criteria file, so a caller that must open the
/// log to learn it does so only then.
pub fn resolve(
    log: &Path,
    scenario: impl FnOnce() -> Option<String>,
    explicit: Option<&Path>,
) -> Result<(Criteria, CriteriaSource), CriteriaError> {
    let beside = log.with_extension("criteria.toml");
    let file = explicit.map(Path::to_path_buf).or_else(|| beside.exists().then_some(beside));
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|cause| CriteriaError::Io { path: path.clone(), cause })?;
        let criteria = parse(&text, &path.display().to_string())?;
        return Ok((criteria, CriteriaSource::File(path)));
    }
    if let Some((name, text)) = scenario().and_then(|s| embedded(&s).map(|text| (s, text))) {
        return Ok((parse(text, &name)?, CriteriaSource::Embedded(name)));
    }
    Ok((default_criteria(), CriteriaSource::Defaults))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criteria_files_parse_with_classes_and_assertions() {
        let text = r#"
            [overall]
            mota_min = 0.8
            position_rmse_max_m = 0.5
            [per_class.pedestrian]
            mota_min = 0.7
            [[assertions]]
            kind = "tracked_before_conflict"
            name = "pedestrian seen early"
            object_id = 3
            ego_v2x_id = "veh-1"
            conflict_point_m = [10.0, 2.0]
            radius_m = 3.0
            lead_s = 3.0
        "#;
        let c: Criteria = toml::from_str(text).expect("parses");
        assert_eq!(c.overall.mota_min, Some(0.8));
        assert!(c.per_class.contains_key(&ObjectClass::Pedestrian));
        assert_eq!(c.assertions.len(), 1);
        assert!(toml::from_str::<Criteria>("[overall]\nmota = 1").is_err(), "unknown keys are refused");
    }

    /// The metrics of a log with no frame, to set fields on.
    fn empty_metrics() -> Metrics {
        crate::scoring::Scorer::new(ScoringConfig::default()).finish()
    }

    fn only_check(criteria: &Criteria, metrics: &Metrics, facts: &ScenarioFacts) -> Check {
        let mut checks = evaluate(criteria, metrics, facts);
        assert_eq!(checks.len(), 1, "{checks:?}");
        checks.remove(0)
    }

    #[test]
    fn undefined_errors_fail_their_limits() {
        let mut c = Criteria::default();
        c.overall.position_rmse_max_m = Some(0.3);
        // Nothing matched: no RMSE, and the limit is not met (it used to pass as 0).
        let mut m = empty_metrics();
        let check = only_check(&c, &m, &ScenarioFacts::default());
        assert!(!check.passed && check.value.is_nan() && check.message.contains("n/a"), "{check:?}");
        m.position_rmse_m = Some(0.2);
        assert!(only_check(&c, &m, &ScenarioFacts::default()).passed);
    }

    #[test]
    fn time_to_track_counts_objects_never_tracked() {
        let mut c = Criteria::default();
        c.overall.time_to_track_max_s = Some(1.5);
        let facts = ScenarioFacts::default();
        let mut m = empty_metrics();
        // No object in coverage: nothing measured, fails.
        assert!(!only_check(&c, &m, &facts).passed);
        // Tracked ones within the limit, and object 7 in coverage 4 s untracked: fails on it.
        m.time_to_track_max_s = Some(0.8);
        m.never_tracked_in_coverage_s.insert(7, 4.0);
        let check = only_check(&c, &m, &facts);
        assert!(!check.passed && check.value == 4.0 && check.message.contains("object 7"), "{check:?}");
        // Never tracked but in coverage only 0.3 s: the 1.5 s are not yet exceeded (that it was
        // never tracked is `never_tracked_max`'s to judge); the message says so.
        m.never_tracked_in_coverage_s.insert(7, 0.3);
        let check = only_check(&c, &m, &facts);
        assert!(check.passed && check.value == 0.8 && check.message.contains("1 object(s) never tracked"), "{check:?}");
        // A tracked object too slow fails as before.
        m.time_to_track_max_s = Some(2.0);
        let check = only_check(&c, &m, &facts);
        assert!(!check.passed && check.value == 2.0, "{check:?}");
    }

    #[test]
    fn tracked_before_conflict_fails_when_the_conflict_never_happens() {
        let c = Criteria {
            assertions: vec![Assertion::TrackedBeforeConflict {
                name: "ped".into(),
                object_id: 3,
                ego_v2x_id: "veh-1".into(),
                conflict_point_m: [10.0, 0.0],
                radius_m: 2.0,
                lead_s: 3.0,
            }],
            ..Criteria::default()
        };
        let mut m = empty_metrics();
        m.first_matched_ns.insert(3, 1_000_000_000);
        let s = 1_000_000_000;
        // The ego vehicle stops 5 m short: the assertion does not apply, and fails saying so
        // (it used to pass with an infinite lead).
        let mut facts = ScenarioFacts::default();
        facts.ego_tracks.insert("veh-1".into(), vec![(0, 0.0, 0.0), (5 * s, 5.0, 0.0)]);
        let check = only_check(&c, &m, &facts);
        assert!(!check.passed && check.value.is_nan() && check.message.starts_with("not applicable"), "{check:?}");
        // No vehicle of that V2X id: likewise.
        let check = only_check(&c, &m, &ScenarioFacts::default());
        assert!(!check.passed && check.message.contains("no ground-truth object carries"), "{check:?}");
        // Reaching it 4 s after the object was tracked: a 4 s lead, passes.
        facts.ego_tracks.insert("veh-1".into(), vec![(0, 0.0, 0.0), (5 * s, 9.0, 0.0)]);
        let check = only_check(&c, &m, &facts);
        assert!(check.passed && (check.value - 4.0).abs() < 1e-9, "{check:?}");
    }

    #[test]
    fn every_committed_criteria_file_is_built_in_verbatim() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("logs");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("logs folder")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter_map(|n| n.strip_suffix(".criteria.toml").map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut built_in: Vec<&str> = embedded_scenarios().collect();
        built_in.sort_unstable();
        assert_eq!(on_disk, built_in);
        for name in built_in {
            let file = std::fs::read_to_string(dir.join(format!("{name}.criteria.toml"))).expect("read");
            assert_eq!(embedded(name), Some(file.as_str()), "{name}");
            parse(&file, name).expect("parses");
        }
    }

    #[test]
    fn criteria_resolve_file_then_beside_then_scenario_then_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("run.mcap");
        // No file, known scenario: its built-in criteria, said so.
        let (c, source) = resolve(&log, || Some("bus-pedestrian".into()), None).expect("built in");
        assert_eq!(source, CriteriaSource::Embedded("bus-pedestrian".into()));
        assert_eq!(c, parse(embedded("bus-pedestrian").expect("known"), "x").expect("parses"));
        // Unknown scenario: the generic defaults, said so.
        let (c, source) = resolve(&log, || Some("my-own-drive".into()), None).expect("defaults");
        assert_eq!((c, source), (default_criteria(), CriteriaSource::Defaults));
        // A file beside the log wins over the scenario.
        std::fs::write(dir.path().join("run.criteria.toml"), "[overall]\nmota_min = 0.5\n").expect("write");
        let (c, source) = resolve(&log, || Some("bus-pedestrian".into()), None).expect("beside");
        assert_eq!(c.overall.mota_min, Some(0.5));
        assert_eq!(source, CriteriaSource::File(dir.path().join("run.criteria.toml")));
        // An explicit file wins over everything; a bad one is an error naming it.
        let explicit = dir.path().join("strict.toml");
        std::fs::write(&explicit, "[overall]\nmota_min = 0.99\n").expect("write");
        let (c, _) = resolve(&log, || Some("bus-pedestrian".into()), Some(&explicit)).expect("explicit");
        assert_eq!(c.overall.mota_min, Some(0.99));
        std::fs::write(&explicit, "[overall]\nmota_minimum = 1\n").expect("write");
        let err = resolve(&log, || None, Some(&explicit)).expect_err("unknown field").to_string();
        assert!(err.contains("strict.toml") && err.contains("mota_minimum"), "{err}");
    }
}
