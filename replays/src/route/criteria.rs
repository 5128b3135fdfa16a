//! Route criteria (TOML): how the route is cut and what counts as near it, how much evidence a
//! verdict needs, and the limits per object group (`vru`, `vehicle`, `static`, as the scorer's
//! class families). A group given in the file is required on every segment: a segment where it
//! was never observed enough is not certified for it (insufficient data).
//!
//! The built-in criteria of the shuttle loop are `replays/routes/shuttle-loop.criteria.toml`;
//! other routes get [`RouteCriteria::default`] unless a file is given.

use serde::{Deserialize, Serialize};

use crate::scoring::ScoringConfig;

/// The object groups figures are kept for, in report order: the scorer's class families.
pub const GROUPS: [&str; 3] = ["vru", "vehicle", "static"];

/// Route criteria.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteCriteria {
    /// Segment length [m].
    pub segment_length_m: f64,
    /// An object counts for the route when its centre is within this distance of the route's
    /// line; the corridor whose coverage is checked is as wide on each side [m].
    pub near_m: f64,
    /// Spacing of the points along the route where sensor coverage is computed [m].
    pub coverage_step_m: f64,
    /// Height above the ground of the points whose coverage is computed: an object's centre [m].
    pub target_height_m: f64,
    /// Fewest sensors that must see every point of a segment's corridor; below it the segment
    /// fails (0 allows blind spots).
    pub min_sensors: u32,
    /// Fewest ground-truth observations (object × truth frame) of a group in a segment before its
    /// detection probability is judged.
    pub min_observations: u64,
    /// Fewest distinct objects (per log) of a group in a segment before it may pass: frames of
    /// one object are not independent trials.
    pub min_objects: u64,
    /// Fewest matched observations before the error percentiles are judged.
    pub min_error_samples: u64,
    /// Ground-truth objects with these V2X ids are not counted (the vehicle being certified
    /// is not an obstacle on its own route).
    pub ignore_v2x_ids: Vec<String>,
    /// Matching gates (as `replay validate`).
    pub scoring: ScoringConfig,
    /// Limits for pedestrians and riders; absent from a file: not required.
    #[serde(default)]
    pub vru: Option<GroupCriteria>,
    /// Limits for vehicles.
    #[serde(default)]
    pub vehicle: Option<GroupCriteria>,
    /// Limits for static obstacles.
    #[serde(default, rename = "static")]
    pub static_obstacles: Option<GroupCriteria>,
}

/// Limits of one object group; absent limits are not checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupCriteria {
    /// Lowest detection probability (matched / observed), judged on its 95 % Wilson interval.
    pub detection_min: Option<f64>,
    /// Highest 95th percentile position error of matches [m].
    pub position_p95_max_m: Option<f64>,
    /// Highest 95th percentile velocity error of matches [m/s].
    pub velocity_p95_max_mps: Option<f64>,
    /// Longest time from entering the corridor to being tracked, any entry [s]; an entry never
    /// tracked counts with the time it stayed untracked.
    pub time_to_track_max_s: Option<f64>,
    /// Highest 95th percentile age of the recorded broadcast [s] (logs of live runs only).
    pub broadcast_age_p95_max_s: Option<f64>,
}

impl Default for RouteCriteria {
    fn default() -> Self {
        RouteCriteria {
            segment_length_m: 10.0,
            near_m: 3.0,
            coverage_step_m: 1.0,
            target_height_m: 0.9,
            min_sensors: 1,
            min_observations: 100,
            min_objects: 3,
            min_error_samples: 20,
            ignore_v2x_ids: Vec::new(),
            scoring: ScoringConfig::default(),
            vru: Some(GroupCriteria {
                detection_min: Some(0.99),
                position_p95_max_m: Some(0.5),
                velocity_p95_max_mps: Some(1.0),
                time_to_track_max_s: Some(1.0),
                broadcast_age_p95_max_s: Some(0.3),
            }),
            vehicle: Some(GroupCriteria {
                detection_min: Some(0.95),
                position_p95_max_m: Some(1.0),
                velocity_p95_max_mps: Some(1.5),
                time_to_track_max_s: Some(1.5),
                broadcast_age_p95_max_s: Some(0.3),
            }),
            static_obstacles: None,
        }
    }
}

/// Why route criteria are unusable.
#[derive(Debug, thiserror::Error)]
#[error("route criteria {source_name}: {problem}")]
pub struct RouteCriteriaError {
    /// The file (or `<built-in …>`).
    pub source_name: String,
    /// What is wrong.
    pub problem: String,
}

/// The built-in criteria of the shuttle loop.
pub const SHUTTLE_LOOP: &str = include_str!("../../routes/shuttle-loop.criteria.toml");

impl RouteCriteria {
    /// Parses and checks criteria; `source_name` names them in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<RouteCriteria, RouteCriteriaError> {
        let fail = |problem: String| RouteCriteriaError { source_name: source_name.to_owned(), problem };
        let criteria: RouteCriteria = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        criteria.validate().map_err(fail)?;
        Ok(criteria)
    }

    /// The built-in criteria of route `route_id` (the shuttle loop's file), else the defaults,
    /// with the name of their source.
    pub fn built_in(route_id: &str) -> (RouteCriteria, String) {
        if route_id == "shuttle-loop" {
            let name = "<built-in shuttle-loop.criteria.toml>";
            // The file is compiled in and checked by a test; should it not parse, the defaults.
            if let Ok(c) = RouteCriteria::parse(SHUTTLE_LOOP, name) {
                return (c, name.to_owned());
            }
        }
        (RouteCriteria::default(), "<built-in defaults>".to_owned())
    }

    /// The limits of group `g` (an index into [`GROUPS`]).
    pub fn group(&self, g: usize) -> Option<&GroupCriteria> {
        match g {
            0 => self.vru.as_ref(),
            1 => self.vehicle.as_ref(),
            2 => self.static_obstacles.as_ref(),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let within = |name: &str, v: f64, lo: f64, hi: f64| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(format!("{name} = {v} must be within [{lo}, {hi}]"))
            }
        };
        within("segment_length_m", self.segment_length_m, 0.5, 10_000.0)?;
        within("near_m", self.near_m, 0.1, 50.0)?;
        within("coverage_step_m", self.coverage_step_m, 0.1, 100.0)?;
        within("target_height_m", self.target_height_m, 0.0, 10.0)?;
        for (name, v) in [
            ("scoring.gate_vehicle_m", self.scoring.gate_vehicle_m),
            ("scoring.gate_vru_m", self.scoring.gate_vru_m),
            ("scoring.gate_static_m", self.scoring.gate_static_m),
        ] {
            within(name, v, 0.01, 50.0)?;
        }
        for (g, name) in GROUPS.iter().enumerate() {
            let Some(c) = self.group(g) else { continue };
            if let Some(p) = c.detection_min {
                within(&format!("{name}.detection_min"), p, 0.0, 1.0)?;
            }
            for (field, v) in [
                ("position_p95_max_m", c.position_p95_max_m),
                ("velocity_p95_max_mps", c.velocity_p95_max_mps),
                ("time_to_track_max_s", c.time_to_track_max_s),
                ("broadcast_age_p95_max_s", c.broadcast_age_p95_max_s),
            ] {
                if let Some(v) = v {
                    within(&format!("{name}.{field}"), v, 0.0, 1e6)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_criteria_parse() {
        let parsed = RouteCriteria::parse(SHUTTLE_LOOP, "shuttle-loop").expect("parses");
        assert_eq!(parsed.ignore_v2x_ids, vec!["shuttle-1".to_owned()]);
        assert_eq!(parsed.vru.as_ref().and_then(|g| g.detection_min), Some(0.99));
        assert_eq!(parsed.vru.as_ref().and_then(|g| g.position_p95_max_m), Some(0.5));
        assert_eq!(RouteCriteria::built_in("shuttle-loop").0, parsed);
        assert_eq!(RouteCriteria::built_in("other").0, RouteCriteria::default());
        RouteCriteria::default().validate().expect("the defaults are valid");
    }

    #[test]
    fn bad_criteria_are_named() {
        let err = RouteCriteria::parse("near_m = -1.0", "c.toml").expect_err("negative").to_string();
        assert!(err.contains("c.toml") && err.contains("near_m"), "{err}");
        let err = RouteCriteria::parse("[vru]\ndetection_min = 1.5", "c.toml").expect_err("above 1").to_string();
        assert!(err.contains("vru.detection_min"), "{err}");
        let err = RouteCriteria::parse("segment_lenght_m = 5.0", "c.toml").expect_err("typo").to_string();
        assert!(err.contains("segment_lenght_m"), "{err}");
        // A file that names only VRUs requires only VRUs.
        let only_vru = RouteCriteria::parse("[vru]\ndetection_min = 0.9", "c.toml").expect("valid");
        assert!(only_vru.vru.is_some() && only_vru.vehicle.is_none() && only_vru.static_obstacles.is_none());
        assert_eq!(only_vru.near_m, 3.0, "unset fields keep their defaults");
    }
}
