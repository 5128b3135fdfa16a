//! Pass/fail criteria of a replay (TOML): thresholds on the metrics, overall and per class, and
//! scenario assertions such as "object X tracked at least 3 s before the ego vehicle reaches the
//! conflict point". [`evaluate`] turns metrics into a list of checks, each with a readable reason.

use std::collections::BTreeMap;

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
    /// Longest time from entering coverage to being tracked, any object [s].
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

fn at_least(name: String, value: f64, limit: f64, what: &str) -> Check {
    let passed = value >= limit;
    let verb = if passed { "meets" } else { "is below" };
    Check { message: format!("{what} {value:.3} {verb} the minimum {limit:.3}"), name, passed, value, limit }
}

fn at_most(name: String, value: f64, limit: f64, what: &str) -> Check {
    let passed = value <= limit;
    let verb = if passed { "is within" } else { "exceeds" };
    Check { message: format!("{what} {value:.3} {verb} the maximum {limit:.3}"), name, passed, value, limit }
}

/// Evaluates `criteria` against `metrics`.
pub fn evaluate(criteria: &Criteria, metrics: &Metrics, facts: &ScenarioFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    let o = &criteria.overall;
    let min_checks: [(&str, Option<f64>, f64, &str); 4] = [
        ("mota_min", o.mota_min, metrics.overall.mota, "MOTA"),
        ("idf1_min", o.idf1_min, metrics.idf1, "IDF1"),
        ("hota_min", o.hota_min, metrics.hota.hota, "HOTA"),
        ("coverage_min", o.coverage_min, metrics.coverage, "coverage"),
    ];
    for (key, limit, value, what) in min_checks {
        if let Some(limit) = limit {
            checks.push(at_least(format!("overall.{key}"), value, limit, what));
        }
    }
    let max_checks: [(&str, Option<f64>, f64, &str); 9] = [
        ("motp_max_m", o.motp_max_m, metrics.overall.motp_m, "MOTP [m]"),
        (
            "switches_per_100_track_s_max",
            o.switches_per_100_track_s_max,
            metrics.switches_per_100_track_s,
            "id switches per 100 track-s",
        ),
        ("position_rmse_max_m", o.position_rmse_max_m, metrics.position_rmse_m, "position RMSE [m]"),
        ("position_p95_max_m", o.position_p95_max_m, metrics.position_p95_m, "position p95 [m]"),
        ("velocity_rmse_max_mps", o.velocity_rmse_max_mps, metrics.velocity_rmse_mps, "velocity RMSE [m/s]"),
        ("heading_rmse_max_deg", o.heading_rmse_max_deg, metrics.heading_rmse_deg, "heading RMSE [deg]"),
        ("time_to_track_max_s", o.time_to_track_max_s, metrics.time_to_track_max_s, "longest time to track [s]"),
        (
            "false_tracks_per_min_max",
            o.false_tracks_per_min_max,
            metrics.false_tracks_per_min,
            "false tracks per minute",
        ),
        (
            "broadcast_age_p99_max_s",
            o.broadcast_age_p99_max_s,
            facts.broadcast_age_p99_s.unwrap_or(f64::NAN),
            "broadcast object age p99 [s]",
        ),
    ];
    for (key, limit, value, what) in max_checks {
        if let Some(limit) = limit {
            checks.push(at_most(format!("overall.{key}"), value, limit, what));
        }
    }
    if let Some(limit) = o.never_tracked_max {
        checks.push(at_most(
            "overall.never_tracked_max".into(),
            metrics.never_tracked as f64,
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
            checks.push(at_least(format!("per_class.{class}.mota_min"), m.mota, limit, &format!("{class} MOTA")));
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
            match (tracked_ns, reach_ns) {
                (None, _) => Check {
                    name,
                    passed: false,
                    value: f64::NAN,
                    limit: *lead_s,
                    message: format!("object {object_id} was never tracked"),
                },
                (Some(_), None) => Check {
                    name,
                    passed: true,
                    value: f64::INFINITY,
                    limit: *lead_s,
                    message: format!(
                        "object {object_id} was tracked and {ego_v2x_id} never came within {radius_m} m of the conflict point"
                    ),
                },
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
}
