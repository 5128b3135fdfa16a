//! Misbehaviour detection: plausibility checks of V2X self-reports (the IEEE 1609.2 / SCMS idea
//! of local misbehaviour detection, done by an RSU that can see). A report is implausible when
//! - its vehicle **teleports**: it moved further since its previous report than its speeds, the
//!   acceleration limit, a margin and 3 sigma of both reports' claimed accuracy explain;
//! - it claims a **speed**, **acceleration** (reported, or implied by two consecutive reports'
//!   speeds) or **yaw rate** (or lateral acceleration, speed × yaw rate) beyond what its class can
//!   do;
//! - it **disagrees with the lidars**: the lidar track the vehicle's reports were last fused into
//!   is still measured by a lidar, and the report lies outside that track's gate (`gate_chi2`)
//!   and more than `misbehaviour_lidar_mismatch_m` from it, for
//!   `misbehaviour_lidar_mismatch_reports` reports in a row. A report outside the gate is
//!   withheld even before its vehicle is flagged (however close): fused, it would drag the track
//!   off the car the lidar sees (a slow drift would take it along), or spawn a V2X twin of that
//!   car where the vehicle claims to be.
//!
//! An implausible report flags its vehicle: its reports are checked but not fused (and the
//! tracks it named lose the link) until `misbehaviour_hold_s` has passed since its last
//! implausible report. A vehicle that keeps lying where a lidar sees it therefore stays
//! flagged; one that stops is fused again after the hold. The RSU can only contradict a vehicle
//! it saw honestly first: one that lies from its first report, or only where no lidar sees it,
//! is caught by the physical checks alone.
//!
//! The per-vehicle state is part of the fused state (checkpointed and rolled back with the
//! tracks, like the clutter map), so out-of-sequence fusion stays exact; the checks see a
//! vehicle's reports in capture-time order, never in arrival order.

use std::collections::BTreeMap;

use nalgebra::{Matrix2, Vector2};
use serde::{Deserialize, Serialize};

use crate::class::MotionFamily;
use crate::measurement::VehicleState;
use crate::time::Timestamp;

use super::management::family_of;
use super::window::predict_track;
use super::{Fusion, SensorKind};

/// Most vehicles remembered; beyond it the one heard from longest ago is forgotten.
const CAPACITY: usize = 4096;

/// Longest gap between two reports of a vehicle over which a jump is judged [s]: after a longer
/// silence (out of range, a tunnel) it may be anywhere its speed allows, and the margin would
/// be meaningless.
const MAX_JUMP_GAP_S: f64 = 2.0;

/// Shortest gap between two reports over which an acceleration is implied from their speeds
/// [s]: speed noise over a shorter gap would look like a jolt.
const MIN_ACCEL_GAP_S: f64 = 0.05;

/// Why a vehicle was flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisbehaviourReason {
    /// It moved further between two reports than it physically could.
    Teleport,
    /// It claimed a speed beyond its class.
    Speed,
    /// It claimed (or its speeds implied) an acceleration beyond any road user.
    Acceleration,
    /// It claimed a yaw rate or lateral acceleration beyond any road user.
    YawRate,
    /// It reported itself away from where the RSU's lidars see it.
    LidarMismatch,
}

impl MisbehaviourReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [MisbehaviourReason; 5] = [
        MisbehaviourReason::Teleport,
        MisbehaviourReason::Speed,
        MisbehaviourReason::Acceleration,
        MisbehaviourReason::YawRate,
        MisbehaviourReason::LidarMismatch,
    ];

    /// The name used in metrics labels, logs and recordings.
    pub const fn name(self) -> &'static str {
        match self {
            MisbehaviourReason::Teleport => "teleport",
            MisbehaviourReason::Speed => "speed",
            MisbehaviourReason::Acceleration => "acceleration",
            MisbehaviourReason::YawRate => "yaw_rate",
            MisbehaviourReason::LidarMismatch => "lidar_mismatch",
        }
    }

    /// The unit of the measured value and the limit of this reason.
    pub const fn unit(self) -> &'static str {
        match self {
            MisbehaviourReason::Teleport | MisbehaviourReason::LidarMismatch => "m",
            MisbehaviourReason::Speed => "m/s",
            MisbehaviourReason::Acceleration => "m/s²",
            MisbehaviourReason::YawRate => "rad/s or m/s² lateral",
        }
    }
}

impl std::fmt::Display for MisbehaviourReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Vehicles flagged, by reason of the flag (counted when a vehicle is flagged, not per report),
/// and the reports withheld from fusion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MisbehaviourCounts {
    /// Flags for a teleport.
    pub teleport: u64,
    /// Flags for an impossible speed.
    pub speed: u64,
    /// Flags for an impossible acceleration.
    pub acceleration: u64,
    /// Flags for an impossible yaw rate or lateral acceleration.
    pub yaw_rate: u64,
    /// Flags for disagreeing with the lidars.
    pub lidar_mismatch: u64,
    /// Reports not fused: from a flagged vehicle, or disagreeing with the lidars.
    pub reports_withheld: u64,
    /// Reports compared with a lidar track (the checks that need a lidar could run).
    pub lidar_compared: u64,
}

impl MisbehaviourCounts {
    /// Flags raised for `reason`.
    pub fn flags(&self, reason: MisbehaviourReason) -> u64 {
        match reason {
            MisbehaviourReason::Teleport => self.teleport,
            MisbehaviourReason::Speed => self.speed,
            MisbehaviourReason::Acceleration => self.acceleration,
            MisbehaviourReason::YawRate => self.yaw_rate,
            MisbehaviourReason::LidarMismatch => self.lidar_mismatch,
        }
    }

    /// Flags raised, all reasons.
    pub fn total_flags(&self) -> u64 {
        MisbehaviourReason::ALL.iter().map(|r| self.flags(*r)).sum()
    }

    fn bump(&mut self, reason: MisbehaviourReason) {
        let n = match reason {
            MisbehaviourReason::Teleport => &mut self.teleport,
            MisbehaviourReason::Speed => &mut self.speed,
            MisbehaviourReason::Acceleration => &mut self.acceleration,
            MisbehaviourReason::YawRate => &mut self.yaw_rate,
            MisbehaviourReason::LidarMismatch => &mut self.lidar_mismatch,
        };
        *n += 1;
    }
}

/// A flagged vehicle, as the operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MisbehaviourFlag {
    /// The vehicle's V2X id.
    pub vehicle_id: String,
    /// Why it was flagged (the first implausible report of the flag).
    pub reason: MisbehaviourReason,
    /// What that report showed, in the reason's unit ([`MisbehaviourReason::unit`]).
    pub measured: f64,
    /// The limit it exceeded, same unit.
    pub limit: f64,
    /// Measurement time of the report that flagged it.
    pub since: Timestamp,
    /// Measurement time of its newest implausible report.
    pub last_evidence: Timestamp,
    /// When the flag lapses unless another implausible report comes.
    pub until: Timestamp,
}

impl std::fmt::Display for MisbehaviourFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:.2} beyond the limit {:.2} [{}]", self.reason, self.measured, self.limit, self.reason.unit())
    }
}

/// What one implausible report showed.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Finding {
    reason: MisbehaviourReason,
    measured: f64,
    limit: f64,
}

/// A vehicle's previous report, as the checks need it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LastReport {
    time: Timestamp,
    /// Site-frame position [m].
    position_m: Vector2<f64>,
    speed_mps: f64,
    /// Claimed position accuracy, semi-major axis (at least the configured minimum) [m].
    sigma_m: f64,
}

/// An active flag.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Flag {
    first: Finding,
    since: Timestamp,
    last_evidence: Timestamp,
}

/// What the RSU knows of one vehicle.
#[derive(Clone, Debug, Default, PartialEq)]
struct VehicleRecord {
    last: Option<LastReport>,
    /// The lidar-measured track its reports were last fused into.
    anchor: Option<u32>,
    /// Reports in a row that disagreed with the anchor.
    mismatches: u32,
    flag: Option<Flag>,
}

/// The per-vehicle state of the checks (part of the fused state).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Monitor {
    vehicles: BTreeMap<String, VehicleRecord>,
}

impl Monitor {
    /// Forgets vehicles not heard from for `keep_s` before `t` (their flags have lapsed when
    /// `keep_s` is at least the hold).
    pub(super) fn forget_before(&mut self, t: Timestamp, keep_s: f64) {
        self.vehicles.retain(|_, v| v.last.is_some_and(|l| t.secs_since(l.time) <= keep_s));
    }

    /// Takes the record of `vehicle_id` out (a fresh one for a vehicle not known, forgetting the
    /// one heard from longest ago when full), with its key: give it back with [`Monitor::put`].
    fn take(&mut self, vehicle_id: &str) -> (String, VehicleRecord) {
        if let Some(entry) = self.vehicles.remove_entry(vehicle_id) {
            return entry;
        }
        if self.vehicles.len() >= CAPACITY {
            let oldest = self.vehicles.iter().min_by_key(|(_, v)| v.last.map(|l| l.time)).map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                self.vehicles.remove(&id);
            }
        }
        (vehicle_id.to_owned(), VehicleRecord::default())
    }

    fn put(&mut self, key: String, record: VehicleRecord) {
        self.vehicles.insert(key, record);
    }
}

impl Fusion {
    /// Checks a report of `state` at `t` (its site-frame position `position_m`, position noise
    /// `r` [m²] and claimed accuracy `sigma_m`, its semi-major axis) and updates the vehicle's
    /// record; whether the report may be fused.
    pub(super) fn check_plausible(
        &mut self,
        t: Timestamp,
        state: &VehicleState,
        position_m: Vector2<f64>,
        r: &Matrix2<f64>,
        sigma_m: f64,
    ) -> bool {
        let cfg = &self.config;
        let mut finding = physical_finding(cfg, state);
        let (key, mut record) = self.misbehaviour.take(&state.vehicle_id);
        if let Some(last) = record.last {
            let dt = t.secs_since(last.time);
            if finding.is_none() && dt > 0.0 && dt <= MAX_JUMP_GAP_S {
                let jump_m = (position_m - last.position_m).norm();
                let allowed_m = last.speed_mps.abs().max(state.speed_mps.abs()) * dt
                    + 0.5 * cfg.misbehaviour_max_accel_mps2 * dt * dt
                    + cfg.misbehaviour_jump_margin_m
                    + 3.0 * (last.sigma_m + sigma_m);
                if jump_m > allowed_m {
                    finding =
                        Some(Finding { reason: MisbehaviourReason::Teleport, measured: jump_m, limit: allowed_m });
                }
            }
            if finding.is_none() && (MIN_ACCEL_GAP_S..=MAX_JUMP_GAP_S).contains(&dt) {
                let accel = (state.speed_mps - last.speed_mps).abs() / dt;
                if accel > cfg.misbehaviour_max_accel_mps2 {
                    finding = Some(Finding {
                        reason: MisbehaviourReason::Acceleration,
                        measured: accel,
                        limit: cfg.misbehaviour_max_accel_mps2,
                    });
                }
            }
        }
        // Only a newer report moves the reference (a report of the same time adds nothing).
        if record.last.is_none_or(|l| t > l.time) {
            record.last = Some(LastReport { time: t, position_m, speed_mps: state.speed_mps, sigma_m });
        }
        let mut mismatch = false;
        match record.anchor.and_then(|id| self.anchor_residual(id, t, position_m, r)) {
            Some((off_m, d2)) => {
                self.stats.misbehaviour.lidar_compared += 1;
                mismatch = d2 > self.config.gate_chi2;
                if !mismatch {
                    record.mismatches = 0;
                } else if off_m > self.config.misbehaviour_lidar_mismatch_m {
                    record.mismatches = record.mismatches.saturating_add(1);
                    if finding.is_none() && record.mismatches >= self.config.misbehaviour_lidar_mismatch_reports {
                        finding = Some(Finding {
                            reason: MisbehaviourReason::LidarMismatch,
                            measured: off_m,
                            limit: self.config.misbehaviour_lidar_mismatch_m,
                        });
                    }
                }
            }
            None => {
                record.anchor = None;
                record.mismatches = 0;
            }
        }
        if record.flag.is_some_and(|f| t.secs_since(f.last_evidence) > self.config.misbehaviour_hold_s) {
            record.flag = None;
        }
        match (finding, &mut record.flag) {
            (Some(_), Some(flag)) => flag.last_evidence = flag.last_evidence.max(t),
            (Some(finding), None) => {
                record.flag = Some(Flag { first: finding, since: t, last_evidence: t });
                self.stats.misbehaviour.bump(finding.reason);
                self.unlink_vehicle(&state.vehicle_id);
            }
            (None, _) => {}
        }
        let fuse = record.flag.is_none() && !mismatch;
        self.misbehaviour.put(key, record);
        if !fuse {
            self.stats.misbehaviour.reports_withheld += 1;
        }
        fuse
    }

    /// Notes that a report of `vehicle_id` was fused into the track at `ti` at `t`: the track
    /// becomes the vehicle's anchor when a lidar measures it.
    pub(super) fn note_fused_report(&mut self, vehicle_id: &str, ti: usize, t: Timestamp) {
        let id = self.tracks[ti].id;
        let live = self.lidar_measured(ti, t);
        let Some(record) = self.misbehaviour.vehicles.get_mut(vehicle_id) else { return };
        if live {
            record.anchor = Some(id);
            record.mismatches = 0;
        } else if record.anchor == Some(id) {
            record.anchor = None;
        }
    }

    /// Vehicles flagged for misbehaviour at `now`, by id, as of the inputs fused so far (read
    /// them after [`Fusion::poll_objects`], which fuses what waits).
    pub fn misbehaving_vehicles(&self, now: Timestamp) -> Vec<MisbehaviourFlag> {
        let hold_s = self.config.misbehaviour_hold_s;
        self.misbehaviour
            .vehicles
            .iter()
            .filter_map(|(id, v)| {
                let f = v.flag?;
                (now.secs_since(f.last_evidence) <= hold_s).then(|| MisbehaviourFlag {
                    vehicle_id: id.clone(),
                    reason: f.first.reason,
                    measured: f.first.measured,
                    limit: f.first.limit,
                    since: f.since,
                    last_evidence: f.last_evidence,
                    until: f.last_evidence.add_secs(hold_s),
                })
            })
            .collect()
    }

    /// Whether a lidar updated the track at `ti` within `misbehaviour_lidar_recent_s` of `t`.
    fn lidar_measured(&self, ti: usize, t: Timestamp) -> bool {
        let recent_s = self.config.misbehaviour_lidar_recent_s;
        self.tracks[ti].seen.iter().any(|&(si, seen)| {
            matches!(self.sensors.get(si).map(|s| &s.kind), Some(SensorKind::Lidar(_)))
                && t.secs_since(seen).abs() <= recent_s
        })
    }

    /// How far a report at `position_m` with noise `r` [m²] at `t` lies from the track `id`, when
    /// a lidar measures that track: the distance [m] and the squared Mahalanobis distance.
    fn anchor_residual(
        &mut self,
        id: u32,
        t: Timestamp,
        position_m: Vector2<f64>,
        r: &Matrix2<f64>,
    ) -> Option<(f64, f64)> {
        let ti = self.tracks.binary_search_by_key(&id, |t| t.id).ok()?;
        if !self.lidar_measured(ti, t) {
            return None;
        }
        predict_track(&mut self.tracks[ti], t, &self.noise);
        let motion = &self.tracks[ti].motion;
        let y = position_m - motion.position();
        let (d2, _) = motion.position_distance(&y, r)?;
        Some((y.norm(), d2))
    }

    /// Takes the vehicle's links off every track (its reports no longer name a track).
    fn unlink_vehicle(&mut self, vehicle_id: &str) {
        self.v2x_links.remove(vehicle_id);
        for track in &mut self.tracks {
            if track.v2x.as_ref().is_some_and(|l| l.vehicle_id == vehicle_id) {
                track.v2x = None;
            }
        }
    }
}

/// The first physical limit the report alone exceeds, if any.
fn physical_finding(cfg: &crate::config::FusionConfig, state: &VehicleState) -> Option<Finding> {
    let max_speed = match family_of(state.class) {
        MotionFamily::Pedestrian => cfg.misbehaviour_max_pedestrian_speed_mps,
        MotionFamily::Vehicle | MotionFamily::Static => cfg.misbehaviour_max_vehicle_speed_mps,
    };
    let lateral = (state.speed_mps * state.yaw_rate_rps).abs();
    let checks = [
        (MisbehaviourReason::Speed, state.speed_mps.abs(), max_speed),
        (MisbehaviourReason::Acceleration, state.accel_long_mps2.abs(), cfg.misbehaviour_max_accel_mps2),
        (MisbehaviourReason::YawRate, state.yaw_rate_rps.abs(), cfg.misbehaviour_max_yaw_rate_rps),
        (MisbehaviourReason::YawRate, lateral, cfg.misbehaviour_max_lateral_accel_mps2),
    ];
    // A non-finite acceleration is not a claim (the ingest check lets it through): it is skipped.
    checks
        .into_iter()
        .find(|(_, measured, limit)| measured.is_finite() && measured > limit)
        .map(|(reason, measured, limit)| Finding { reason, measured, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_at_most_its_capacity_forgetting_the_longest_silent() {
        let mut monitor = Monitor::default();
        let t0 = Timestamp::from_nanos(1_000_000_000_000);
        for i in 0..(CAPACITY + 10) {
            let (key, mut record) = monitor.take(&format!("veh-{i}"));
            let time = t0.add_secs(i as f64 * 0.001);
            record.last = Some(LastReport { time, position_m: Vector2::zeros(), speed_mps: 0.0, sigma_m: 0.3 });
            monitor.put(key, record);
        }
        assert_eq!(monitor.vehicles.len(), CAPACITY);
        assert!(!monitor.vehicles.contains_key("veh-0") && monitor.vehicles.contains_key("veh-10"));
        monitor.forget_before(t0.add_secs((CAPACITY + 10) as f64 * 0.001), 1.0);
        assert!(monitor.vehicles.len() < CAPACITY);
    }
}
