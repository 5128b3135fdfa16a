//! Tuning of the fusion core: one documented, serde-loadable struct with the units of every field
//! in its name or doc comment, defaults chosen for roadside lidar and cameras at 10 Hz, and
//! [`FusionConfig::validate`] naming the first bad field.

use serde::{Deserialize, Serialize};

/// A tuning value that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid fusion configuration: {field}: {problem}")]
pub struct FusionConfigError {
    /// Name of the offending field, e.g. `gate_chi2`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Everything the tracker can be tuned by. Every field has a default ([`FusionConfig::default`]),
/// so a config file only needs the values it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FusionConfig {
    /// RSU id written into broadcast frames; empty means the site id.
    pub rsu_id: String,
    /// How late a measurement may arrive (capture time to arrival) and still be fused [s]. Every
    /// input is fused when it arrives; one older than inputs already fused is fused where it
    /// belongs in capture-time order (out-of-sequence fusion), as long as it is at most this
    /// old. Older inputs are dropped and counted in [`crate::FusionStats::late_dropped`]. The
    /// engine keeps the inputs of this span, with checkpoints of its state, to do that.
    pub max_lag_s: f64,
    /// Most inputs (sensor frames and V2X states) kept in the fusion window; beyond it the
    /// oldest are forgotten early (counted in [`crate::FusionStats::window_trimmed`]) and an
    /// input older than them is dropped as late. It bounds the window's memory when inputs
    /// arrive faster than `max_lag_s` was sized for.
    pub max_window_inputs: usize,
    /// A sensor with no frame for this many of its frame periods is reported silent.
    pub sensor_silent_after_periods: f64,
    /// A sensor whose newest frame is older than this many frame periods, or that skipped a
    /// sequence number in the last second, is reported degraded.
    pub sensor_degraded_after_periods: f64,

    /// Chi-square gate on the squared Mahalanobis distance of 2-dof innovations (9.21 = 99%).
    pub gate_chi2: f64,
    /// Largest distance between a track and a measurement that can ever be associated [m]; also
    /// the cell size of the spatial pre-filter grid. At most [`MAX_GATE_RADIUS_M`].
    pub max_gate_radius_m: f64,

    /// Updates ("hits") needed among the last `confirm_window` opportunities to confirm a track.
    pub confirm_hits: u32,
    /// Opportunities (sensor updates that cover the track) counted for confirmation, at most 32.
    pub confirm_window: u32,
    /// A tentative track is confirmed only when the mean detector score of its hits is at least
    /// this [0..1]: clutter that fires again and again at one place (a pole, a bush) scores lower
    /// than real objects, so it stays tentative and dies. V2X-spawned tracks are not scored.
    pub confirm_min_score: f64,

    /// A place where at least this many tracks died as clutter (tentative after two or more
    /// hits, or confirmed but gone within 2 s without moving) within `clutter_radius_m` in the
    /// last `clutter_memory_s` is a clutter place: a track born there needs one more hit than
    /// `confirm_hits` and a mean score of at least `clutter_confirm_min_score`. 0 turns it off.
    pub clutter_deaths: u32,
    /// Radius of a clutter place [m].
    pub clutter_radius_m: f64,
    /// How long clutter deaths are remembered [s].
    pub clutter_memory_s: f64,
    /// Mean detector score a track born in a clutter place needs to be confirmed [0..1].
    pub clutter_confirm_min_score: f64,
    /// A tentative track not updated for this long is deleted [s].
    pub tentative_timeout_s: f64,
    /// A confirmed track not updated for this long is reported coasting [s].
    pub coast_after_s: f64,
    /// A confirmed track not updated for this long is deleted [s].
    pub delete_after_s: f64,
    /// Longest coast of a confirmed track as a fraction of the time it was measured (first to
    /// last update), within [`coast_after_s`, `delete_after_s`]: an object tracked for seconds
    /// is carried through an occlusion, a track of a few frames that lost its object is not. A
    /// static track that traffic hides from every working sensor covering it coasts to
    /// `delete_after_s`.
    ///
    /// [`coast_after_s`]: FusionConfig::coast_after_s
    /// [`delete_after_s`]: FusionConfig::delete_after_s
    pub coast_fraction_of_life: f64,
    /// A track whose 1-sigma position uncertainty exceeds this is deleted [m].
    pub max_position_sigma_m: f64,
    /// Most tracks held at once; detections that would spawn beyond it are counted and ignored.
    pub max_tracks: usize,
    /// Confirmed tracks closer than this (centres) with similar velocity are merged [m].
    pub merge_distance_m: f64,
    /// A lidar detection no track took spawns a new track unless its centre lies within this
    /// margin of the box of a track that took another detection of the same frame (then it is a
    /// second detection of that object) [m].
    pub split_margin_m: f64,
    /// Largest velocity difference for merging two tracks [m/s].
    pub merge_speed_diff_mps: f64,
    /// Capture time between two passes that delete stale tracks [s]. Duplicate tracks are merged
    /// after every batch of fused inputs and stale tracks are also deleted before every poll, so
    /// this only spares the deletion pass to sensors that capture at different phases (each
    /// releases its own batch). 0 runs one after every batch.
    pub management_interval_s: f64,

    /// Vehicle model (CTRV): white-noise longitudinal acceleration, 1 sigma [m/s²].
    pub vehicle_accel_sigma_mps2: f64,
    /// Vehicle model: white-noise yaw acceleration, 1 sigma [rad/s²].
    pub vehicle_yaw_accel_sigma_rps2: f64,
    /// Pedestrian model (CV): white-noise acceleration per axis, 1 sigma [m/s²].
    pub pedestrian_accel_sigma_mps2: f64,
    /// Static model: position random walk, 1 sigma per sqrt(s) [m/√s].
    pub static_position_walk_mps: f64,
    /// Initial speed uncertainty of a new vehicle track, 1 sigma [m/s].
    pub init_vehicle_speed_sigma_mps: f64,
    /// Initial speed uncertainty of a new pedestrian track per axis, 1 sigma [m/s].
    pub init_pedestrian_speed_sigma_mps: f64,
    /// Initial yaw rate uncertainty of a new vehicle track, 1 sigma [rad/s].
    pub init_yaw_rate_sigma_rps: f64,

    /// Lidar yaw measurement noise, 1 sigma [rad] (after resolving the pi ambiguity).
    pub lidar_yaw_sigma_rad: f64,
    /// Factor on a lidar's calibrated position sigma: real detectors' errors have heavier tails
    /// than the calibration's Gaussian core.
    pub lidar_sigma_factor: f64,
    /// Box-fit error of a lidar detection's centre, as a fraction of its half length: a box
    /// fitted to a partly seen object moves by up to half its depth.
    pub lidar_extent_sigma_frac: f64,
    /// Lidar detections with a score below this are ignored.
    pub lidar_min_score: f64,
    /// Camera detections whose best class score is below this are ignored.
    pub camera_min_score: f64,
    /// Extra camera bottom-centre error from box-model mismatch, as a fraction of box height.
    pub camera_model_sigma_frac: f64,
    /// Camera boxes whose bottom edge is within this many pixels of the image border are
    /// truncated: used to update tracks but never to spawn them [px].
    pub camera_border_margin_px: f64,
    /// Whether camera boxes no track claims spawn (lower-confidence) tracks.
    pub camera_spawns_tracks: bool,
    /// Weight of each confirmed track's innovation in the running estimate of a camera's pixel
    /// noise, which replaces the calibration's `pixel_sigma_px` when larger (night, rain) [0..1];
    /// 0 keeps the calibration's.
    pub camera_noise_learn_weight: f64,
    /// V2X speed noise, 1 sigma [m/s].
    pub v2x_speed_sigma_mps: f64,
    /// V2X heading noise, 1 sigma [rad].
    pub v2x_yaw_sigma_rad: f64,
    /// Smallest V2X position noise used whatever the vehicle claims, 1 sigma [m].
    pub v2x_min_position_sigma_m: f64,
    /// A V2X report older than this (relative to the poll time) no longer names a track [s].
    pub v2x_timeout_s: f64,

    /// How long a vehicle flagged for misbehaviour stays flagged after its last implausible
    /// report [s]: its reports are checked but not fused meanwhile (see `engine::misbehaviour`).
    pub misbehaviour_hold_s: f64,
    /// Jump between two consecutive reports of a vehicle allowed on top of the travel its
    /// speeds and [`FusionConfig::misbehaviour_max_accel_mps2`] explain and 3 sigma of both
    /// reports' claimed accuracy [m]; a longer jump is a teleport.
    pub misbehaviour_jump_margin_m: f64,
    /// Highest plausible speed of a vehicle (cars, trucks, riders) [m/s].
    pub misbehaviour_max_vehicle_speed_mps: f64,
    /// Highest plausible speed of a pedestrian [m/s].
    pub misbehaviour_max_pedestrian_speed_mps: f64,
    /// Highest plausible longitudinal acceleration or deceleration, reported or implied by two
    /// consecutive reports' speeds [m/s²].
    pub misbehaviour_max_accel_mps2: f64,
    /// Highest plausible yaw rate [rad/s].
    pub misbehaviour_max_yaw_rate_rps: f64,
    /// Highest plausible lateral acceleration, speed times yaw rate [m/s²].
    pub misbehaviour_max_lateral_accel_mps2: f64,
    /// A report outside the gate ([`FusionConfig::gate_chi2`]) of the lidar track its vehicle
    /// was last fused with is withheld; it counts towards a flag when it also lies further than
    /// this from that track [m].
    pub misbehaviour_lidar_mismatch_m: f64,
    /// Consecutive reports disagreeing with the lidar track that flag the vehicle.
    pub misbehaviour_lidar_mismatch_reports: u32,
    /// A track counts as seen by lidar when a lidar updated it at most this long before the
    /// report [s].
    pub misbehaviour_lidar_recent_s: f64,

    /// Weight of a lidar detection's class evidence (log-likelihood multiplier).
    pub lidar_class_weight: f64,
    /// Weight of a camera detection's class evidence.
    pub camera_class_weight: f64,
    /// Weight of a V2X self-report's class evidence.
    pub v2x_class_weight: f64,
    /// Fraction of accumulated class evidence kept per update (forgetting, 0..1].
    pub class_evidence_decay: f64,
    /// Smoothing factor of box size updates from lidar (0..1], 1 = take the measurement.
    pub size_alpha: f64,
    /// Widest box a road vehicle's track takes from lidar [m]. Vehicles are at most 2.55 m wide
    /// (GB 1589-2016); a wider box is the vehicle merged with something beside it, and would
    /// widen the track into the next lane.
    pub vehicle_max_width_m: f64,
    /// Existence confidence reported for tracks only cameras have seen, 0..1.
    pub camera_only_confidence: f64,

    /// A sensor counts as having seen an object "this cycle" when it updated the track within
    /// this window before the poll time [s].
    pub seen_window_s: f64,
    /// A source kind counts among an object's sources when it updated the object within this
    /// window before the poll time [s].
    pub sources_window_s: f64,
    /// Frames whose capture time lies further ahead of `now` than this are rejected [s].
    pub max_future_s: f64,
    /// Spacing of path-history points [s].
    pub path_history_interval_s: f64,
    /// Most path-history points per participant.
    pub path_history_len: usize,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            rsu_id: String::new(),
            max_lag_s: 0.5,
            max_window_inputs: 16384,
            sensor_silent_after_periods: 10.0,
            sensor_degraded_after_periods: 3.0,
            gate_chi2: 13.8,
            max_gate_radius_m: 6.0,
            confirm_hits: 3,
            confirm_window: 6,
            confirm_min_score: 0.55,
            clutter_deaths: 1,
            clutter_radius_m: 1.5,
            clutter_memory_s: 60.0,
            clutter_confirm_min_score: 0.7,
            tentative_timeout_s: 0.45,
            coast_after_s: 0.35,
            delete_after_s: 2.0,
            coast_fraction_of_life: 1.0,
            max_position_sigma_m: 4.0,
            max_tracks: 4096,
            merge_distance_m: 1.0,
            split_margin_m: 0.3,
            merge_speed_diff_mps: 1.5,
            management_interval_s: 0.1,
            vehicle_accel_sigma_mps2: 2.0,
            vehicle_yaw_accel_sigma_rps2: 0.6,
            pedestrian_accel_sigma_mps2: 1.2,
            static_position_walk_mps: 0.02,
            init_vehicle_speed_sigma_mps: 8.0,
            init_pedestrian_speed_sigma_mps: 1.5,
            init_yaw_rate_sigma_rps: 0.3,
            lidar_yaw_sigma_rad: 0.08,
            lidar_sigma_factor: 2.5,
            lidar_extent_sigma_frac: 0.2,
            lidar_min_score: 0.2,
            camera_min_score: 0.2,
            camera_model_sigma_frac: 0.03,
            camera_border_margin_px: 4.0,
            camera_spawns_tracks: true,
            camera_noise_learn_weight: 0.01,
            v2x_speed_sigma_mps: 0.3,
            v2x_yaw_sigma_rad: 0.05,
            v2x_min_position_sigma_m: 0.3,
            v2x_timeout_s: 1.0,
            misbehaviour_hold_s: 10.0,
            misbehaviour_jump_margin_m: 3.0,
            misbehaviour_max_vehicle_speed_mps: 70.0,
            misbehaviour_max_pedestrian_speed_mps: 12.0,
            misbehaviour_max_accel_mps2: 15.0,
            misbehaviour_max_yaw_rate_rps: 2.5,
            misbehaviour_max_lateral_accel_mps2: 12.0,
            misbehaviour_lidar_mismatch_m: 2.5,
            misbehaviour_lidar_mismatch_reports: 3,
            misbehaviour_lidar_recent_s: 1.0,
            lidar_class_weight: 1.0,
            camera_class_weight: 0.8,
            v2x_class_weight: 4.0,
            class_evidence_decay: 0.97,
            size_alpha: 0.15,
            vehicle_max_width_m: 2.6,
            camera_only_confidence: 0.6,
            seen_window_s: 0.15,
            sources_window_s: 1.0,
            max_future_s: 0.5,
            path_history_interval_s: 0.5,
            path_history_len: 10,
        }
    }
}

/// Upper bound of [`FusionConfig::max_gate_radius_m`] [m]: far beyond any position error worth
/// associating (the default is 6 m), and a gate that wide would make every track a candidate for
/// every detection of a frame.
pub const MAX_GATE_RADIUS_M: f64 = 100.0;

impl FusionConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), FusionConfigError> {
        let positive = [
            ("max_lag_s", self.max_lag_s),
            ("sensor_silent_after_periods", self.sensor_silent_after_periods),
            ("sensor_degraded_after_periods", self.sensor_degraded_after_periods),
            ("gate_chi2", self.gate_chi2),
            ("max_gate_radius_m", self.max_gate_radius_m),
            ("tentative_timeout_s", self.tentative_timeout_s),
            ("coast_after_s", self.coast_after_s),
            ("delete_after_s", self.delete_after_s),
            ("max_position_sigma_m", self.max_position_sigma_m),
            ("vehicle_accel_sigma_mps2", self.vehicle_accel_sigma_mps2),
            ("vehicle_yaw_accel_sigma_rps2", self.vehicle_yaw_accel_sigma_rps2),
            ("pedestrian_accel_sigma_mps2", self.pedestrian_accel_sigma_mps2),
            ("static_position_walk_mps", self.static_position_walk_mps),
            ("init_vehicle_speed_sigma_mps", self.init_vehicle_speed_sigma_mps),
            ("init_pedestrian_speed_sigma_mps", self.init_pedestrian_speed_sigma_mps),
            ("init_yaw_rate_sigma_rps", self.init_yaw_rate_sigma_rps),
            ("lidar_yaw_sigma_rad", self.lidar_yaw_sigma_rad),
            ("lidar_sigma_factor", self.lidar_sigma_factor),
            ("v2x_speed_sigma_mps", self.v2x_speed_sigma_mps),
            ("v2x_yaw_sigma_rad", self.v2x_yaw_sigma_rad),
            ("v2x_min_position_sigma_m", self.v2x_min_position_sigma_m),
            ("v2x_timeout_s", self.v2x_timeout_s),
            ("seen_window_s", self.seen_window_s),
            ("sources_window_s", self.sources_window_s),
            ("max_future_s", self.max_future_s),
            ("path_history_interval_s", self.path_history_interval_s),
            ("vehicle_max_width_m", self.vehicle_max_width_m),
            ("coast_fraction_of_life", self.coast_fraction_of_life),
            ("misbehaviour_hold_s", self.misbehaviour_hold_s),
            ("misbehaviour_max_vehicle_speed_mps", self.misbehaviour_max_vehicle_speed_mps),
            ("misbehaviour_max_pedestrian_speed_mps", self.misbehaviour_max_pedestrian_speed_mps),
            ("misbehaviour_max_accel_mps2", self.misbehaviour_max_accel_mps2),
            ("misbehaviour_max_yaw_rate_rps", self.misbehaviour_max_yaw_rate_rps),
            ("misbehaviour_max_lateral_accel_mps2", self.misbehaviour_max_lateral_accel_mps2),
            ("misbehaviour_lidar_recent_s", self.misbehaviour_lidar_recent_s),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(err(field, "must be finite and positive"));
            }
        }
        let non_negative = [
            ("merge_distance_m", self.merge_distance_m),
            ("split_margin_m", self.split_margin_m),
            ("lidar_extent_sigma_frac", self.lidar_extent_sigma_frac),
            ("clutter_radius_m", self.clutter_radius_m),
            ("clutter_memory_s", self.clutter_memory_s),
            ("merge_speed_diff_mps", self.merge_speed_diff_mps),
            ("management_interval_s", self.management_interval_s),
            ("camera_model_sigma_frac", self.camera_model_sigma_frac),
            ("camera_border_margin_px", self.camera_border_margin_px),
            ("lidar_class_weight", self.lidar_class_weight),
            ("camera_class_weight", self.camera_class_weight),
            ("v2x_class_weight", self.v2x_class_weight),
            ("misbehaviour_jump_margin_m", self.misbehaviour_jump_margin_m),
            ("misbehaviour_lidar_mismatch_m", self.misbehaviour_lidar_mismatch_m),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(err(field, "must be finite and not negative"));
            }
        }
        let unit = [
            ("lidar_min_score", self.lidar_min_score),
            ("camera_min_score", self.camera_min_score),
            ("confirm_min_score", self.confirm_min_score),
            ("clutter_confirm_min_score", self.clutter_confirm_min_score),
            ("camera_only_confidence", self.camera_only_confidence),
            ("camera_noise_learn_weight", self.camera_noise_learn_weight),
        ];
        for (field, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return Err(err(field, "must be within [0, 1]"));
            }
        }
        for (field, v) in [("class_evidence_decay", self.class_evidence_decay), ("size_alpha", self.size_alpha)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(err(field, "must be within (0, 1]"));
            }
        }
        if self.max_gate_radius_m > MAX_GATE_RADIUS_M {
            return Err(err("max_gate_radius_m", "must be at most 100 m"));
        }
        if self.confirm_window == 0 || self.confirm_window > 32 {
            return Err(err("confirm_window", "must be within 1..=32"));
        }
        if self.confirm_hits == 0 || self.confirm_hits > self.confirm_window {
            return Err(err("confirm_hits", "must be within 1..=confirm_window"));
        }
        if self.delete_after_s < self.coast_after_s {
            return Err(err("delete_after_s", "must not be shorter than coast_after_s"));
        }
        if self.misbehaviour_lidar_mismatch_reports == 0 {
            return Err(err("misbehaviour_lidar_mismatch_reports", "must be at least 1"));
        }
        if self.max_window_inputs == 0 {
            return Err(err("max_window_inputs", "must be at least 1"));
        }
        if self.max_tracks == 0 || self.max_tracks > 1_000_000 {
            return Err(err("max_tracks", "must be within 1..=1000000"));
        }
        if self.path_history_len > crate::broadcast::MAX_PATH_POINTS {
            return Err(err("path_history_len", "must be at most 64"));
        }
        Ok(())
    }
}

fn err(field: &str, problem: &str) -> FusionConfigError {
    FusionConfigError { field: field.into(), problem: problem.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_errors_name_the_field() {
        FusionConfig::default().validate().expect("defaults are valid");
        let bad = FusionConfig { gate_chi2: f64::NAN, ..FusionConfig::default() };
        assert_eq!(bad.validate().expect_err("nan gate").field, "gate_chi2");
        let bad = FusionConfig { confirm_hits: 9, confirm_window: 5, ..FusionConfig::default() };
        assert_eq!(bad.validate().expect_err("hits > window").field, "confirm_hits");
        let bad = FusionConfig { size_alpha: 0.0, ..FusionConfig::default() };
        assert_eq!(bad.validate().expect_err("alpha 0").field, "size_alpha");
        FusionConfig { max_gate_radius_m: MAX_GATE_RADIUS_M, ..FusionConfig::default() }
            .validate()
            .expect("at the bound");
        let bad = FusionConfig { misbehaviour_lidar_mismatch_reports: 0, ..FusionConfig::default() };
        assert_eq!(bad.validate().expect_err("no reports").field, "misbehaviour_lidar_mismatch_reports");
        let bad = FusionConfig { misbehaviour_hold_s: -1.0, ..FusionConfig::default() };
        assert_eq!(bad.validate().expect_err("negative hold").field, "misbehaviour_hold_s");
        let bad = FusionConfig { max_gate_radius_m: 1.0e6, ..FusionConfig::default() };
        assert_eq!(bad.validate().expect_err("gate of 1000 km").field, "max_gate_radius_m");
    }

    #[test]
    fn loads_partial_toml() {
        let cfg: FusionConfig = toml::from_str("max_lag_s = 0.5\nconfirm_hits = 2\n").expect("parses");
        assert_eq!(cfg.max_lag_s, 0.5);
        assert_eq!(cfg.confirm_hits, 2);
        assert_eq!(cfg.gate_chi2, FusionConfig::default().gate_chi2);
        assert!(toml::from_str::<FusionConfig>("no_such_field = 1").is_err());
    }
}
