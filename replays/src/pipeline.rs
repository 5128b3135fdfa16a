//! Replaying a log through the fusion core: the same `rsu_fusion::Fusion` the daemon runs, fed
//! with the recorded frames and self-reports at their recorded times, as fast as the CPU allows.
//!
//! The replay clock is the log time: before each message, every broadcast tick at or before its
//! log time is emitted (a `RoadsideFrame` computed at the tick), then the message is handed to
//! the engine with `now` = its log time. Ground-truth frames are handed to the caller with the
//! fused objects predicted to the truth's time. Nothing here reads a clock or a random source, so
//! a replay run twice gives identical events.
//!
//! A truth frame that falls on a broadcast tick (10 Hz truth on 10 Hz ticks) gets the objects
//! polled for that tick when nothing was handed to the engine in between: polling the engine again
//! at the same instant with no input since gives the same objects and changes nothing in it
//! (`tests/pipeline.rs` checks this on a log), and a poll is the costliest call after fusing a
//! frame.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rsu_fusion::calibration::PoseConfig;
use rsu_fusion::{
    FusedObject, Fusion, FusionConfig, FusionError, Ingest, ObjectKinematics, RoadsideFrame, SiteConfig, Timestamp,
};
use serde::{Deserialize, Serialize};
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta};

use crate::ReplayError;
use crate::reader::{ReplayBody, ReplayMessage, ReplayReader};

/// How to replay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Fusion tuning.
    pub fusion: FusionConfig,
    /// Broadcast rate [Hz]; ticks fall on multiples of the period since the Unix epoch.
    pub broadcast_rate_hz: f64,
    /// Recompute fused objects for every ground-truth frame (needed for scoring).
    pub poll_at_truth: bool,
    /// Perturbations of the log's calibration by sensor id, for sensitivity studies and to check
    /// that validation catches a bad calibration.
    pub calibration_offsets: BTreeMap<String, CalibrationOffset>,
    /// Replacement `world_from_sensor` poses by sensor id, applied before `calibration_offsets`:
    /// a corrected calibration (such as the one `rsu-lab replay calib-check` proposes) to replay
    /// the log with instead of the one it declares.
    pub sensor_poses: BTreeMap<String, PoseConfig>,
    /// Sensors whose frames are read but not handed to the engine (the handler still sees them,
    /// with no verdict): the fusion of the other sensors and the V2X self-reports alone, which is
    /// what a sensor's calibration is checked against.
    pub exclude_sensors: BTreeSet<String>,
}

/// A change applied to one sensor's `world_from_sensor` before replaying: its yaw turned about
/// its own position, then its position shifted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalibrationOffset {
    /// Added to the sensor's position (east, north, up) [m].
    pub translation_m: [f64; 3],
    /// Added to the sensor's yaw about the site's up axis [deg].
    pub yaw_deg: f64,
}

impl CalibrationOffset {
    /// `world_from_sensor` with this offset applied: turned by `yaw_deg` about the sensor's own
    /// position (the site's up axis through it), then shifted by `translation_m`.
    pub fn apply(&self, world_from_sensor: &Isometry3<f64>) -> Isometry3<f64> {
        let [x, y, z] = self.translation_m;
        let yaw = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), self.yaw_deg.to_radians());
        let position = world_from_sensor.translation.vector;
        let to_origin = Isometry3::from_parts(Translation3::from(-position), UnitQuaternion::identity());
        let back = Isometry3::from_parts(Translation3::from(position + Vector3::new(x, y, z)), yaw);
        back * to_origin * world_from_sensor
    }

    /// The offset that undoes this one: `inverse().apply(&self.apply(p)) == p` (up to rounding).
    pub fn inverse(&self) -> CalibrationOffset {
        let [x, y, z] = self.translation_m;
        CalibrationOffset { translation_m: [-x, -y, -z], yaw_deg: -self.yaw_deg }
    }
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            fusion: FusionConfig::default(),
            broadcast_rate_hz: 10.0,
            poll_at_truth: true,
            calibration_offsets: BTreeMap::new(),
            sensor_poses: BTreeMap::new(),
            exclude_sensors: BTreeSet::new(),
        }
    }
}

/// The log's site with `config`'s replacement poses, then its calibration offsets, applied.
pub fn site_for(meta: &ReplayMeta, config: &ReplayConfig) -> Result<SiteConfig, PipelineError> {
    let mut site = meta.site.clone();
    let unknown = |what: &str, id: &str| PipelineError::Config(format!("{what} names unknown sensor {id:?}"));
    for (id, pose) in &config.sensor_poses {
        let sensor = site.sensors.iter_mut().find(|s| &s.id == id).ok_or_else(|| unknown("sensor_poses", id))?;
        sensor.world_from_sensor =
            pose.to_isometry().map_err(|e| PipelineError::Config(format!("sensor_poses.{id}: {e}")))?;
    }
    for (id, offset) in &config.calibration_offsets {
        let sensor = site.sensors.iter_mut().find(|s| &s.id == id).ok_or_else(|| unknown("calibration_offsets", id))?;
        sensor.world_from_sensor = offset.apply(&sensor.world_from_sensor);
    }
    if let Some(id) = config.exclude_sensors.iter().find(|id| site.sensor(id).is_none()) {
        return Err(unknown("exclude_sensors", id));
    }
    Ok(site)
}

/// What a replay polls from the engine at broadcast ticks and ground-truth times: the full
/// [`FusedObject`]s, or only their [`ObjectKinematics`] (all that scoring needs, the same values
/// for a fraction of the work).
pub trait PolledObject: Sized {
    /// The engine's objects at `at` (fusing first whatever is due by `at`).
    fn poll(fusion: &mut Fusion, at: Timestamp) -> Vec<Self>;
}

impl PolledObject for FusedObject {
    fn poll(fusion: &mut Fusion, at: Timestamp) -> Vec<Self> {
        fusion.poll_objects(at)
    }
}

impl PolledObject for ObjectKinematics {
    fn poll(fusion: &mut Fusion, at: Timestamp) -> Vec<Self> {
        fusion.poll_kinematics(at)
    }
}

/// What the replay hands to its caller, in time order. `B` is what a broadcast tick hands over:
/// the [`RoadsideFrame`] for [`replay`], or what the caller of [`replay_with`] makes of the tick;
/// `O` is what is polled from the engine (see [`PolledObject`]).
pub enum ReplayEvent<'a, B = RoadsideFrame, O = FusedObject> {
    /// A message read from the log (after it was handed to the engine), and what the engine did.
    Input {
        /// The message.
        message: &'a ReplayMessage,
        /// The engine's verdict for sensor frames and vehicle states.
        ingest: Option<Ingest>,
    },
    /// A broadcast frame computed at a tick, with the objects it was made from.
    Broadcast {
        /// The frame.
        frame: &'a B,
        /// The fused objects.
        objects: &'a [O],
    },
    /// A ground-truth frame with the fused objects predicted to its time.
    Truth {
        /// The truth.
        truth: &'a GroundTruthFrame,
        /// Fused objects at `truth.time`.
        objects: &'a [O],
    },
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The log could not be read.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The log's site or the fusion tuning is invalid.
    #[error("cannot build the fusion engine from the log's site: {0}")]
    Fusion(#[from] FusionError),
    /// The replay configuration is invalid.
    #[error("invalid replay configuration: {0}")]
    Config(String),
    /// The caller's handler failed.
    #[error("{0}")]
    Handler(String),
    /// A reproduced broadcast frame does not survive its own wire format.
    #[error("the frame reproduced at {time} does not decode from its own encoding: {cause}")]
    Reproduce {
        /// The frame's time.
        time: Timestamp,
        /// Why.
        cause: v2x_proto::DecodeError,
    },
}

/// Counters of a finished replay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplaySummary {
    /// Messages read (excluding `/meta`).
    pub messages: u64,
    /// Sensor frames handed to the engine.
    pub sensor_frames: u64,
    /// Vehicle states handed to the engine.
    pub vehicle_states: u64,
    /// Inputs the engine refused, by reason.
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Broadcast frames computed.
    pub broadcasts: u64,
    /// Ground-truth frames seen.
    pub truth_frames: u64,
    /// First and last log time [UTC ns].
    pub first_ns: i64,
    /// Last log time [UTC ns].
    pub last_ns: i64,
    /// The engine's counters at the end.
    pub fusion: rsu_fusion::FusionStats,
    /// Read in recover mode: the damage that ended the log early (everything before it was
    /// replayed). Absent when the log was read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
}

/// The RSU id a replay of `meta` broadcasts under.
pub fn rsu_id_for(meta: &ReplayMeta, config: &ReplayConfig) -> String {
    if !config.fusion.rsu_id.is_empty() {
        config.fusion.rsu_id.clone()
    } else if let Some(id) = meta.rsu_ids.first() {
        id.clone()
    } else {
        format!("rsu-{}", meta.site.site_id)
    }
}

/// Replays `reader` through a fresh engine built from the log's site, calling `handler` for every
/// event in time order.
pub fn replay<E: std::fmt::Display>(
    reader: ReplayReader,
    config: &ReplayConfig,
    handler: impl FnMut(ReplayEvent<'_>) -> Result<(), E>,
) -> Result<ReplaySummary, PipelineError> {
    replay_with(reader, config, |fusion, at, objects| fusion.roadside_frame_from(at, objects), handler)
}

/// [`replay`] with the broadcast of each tick made by `broadcast` from the engine, the tick and the
/// objects polled at it, for callers that need less than the whole [`RoadsideFrame`] (building
/// one costs about as much as scoring a frame), and with the objects polled as `O`.
pub fn replay_with<B, O: PolledObject, E: std::fmt::Display>(
    mut reader: ReplayReader,
    config: &ReplayConfig,
    mut broadcast: impl FnMut(&mut Fusion, Timestamp, &[O]) -> B,
    mut handler: impl FnMut(ReplayEvent<'_, B, O>) -> Result<(), E>,
) -> Result<ReplaySummary, PipelineError> {
    if !(config.broadcast_rate_hz > 0.0 && config.broadcast_rate_hz <= 50.0) {
        return Err(PipelineError::Config(format!(
            "broadcast_rate_hz must be within (0, 50], got {}",
            config.broadcast_rate_hz
        )));
    }
    let meta = reader.meta().clone();
    let mut fusion_config = config.fusion.clone();
    fusion_config.rsu_id = rsu_id_for(&meta, config);
    let mut fusion = Fusion::new(site_for(&meta, config)?, fusion_config)?;
    let period_ns = (1e9 / config.broadcast_rate_hz).round() as i64;
    let mut next_tick: Option<i64> = None;
    // The objects of the last tick, while nothing has been handed to the engine since.
    let mut tick_objects: Option<(Timestamp, Vec<O>)> = None;
    let mut summary = ReplaySummary::default();
    let fail = |e: E| PipelineError::Handler(e.to_string());

    for item in reader.by_ref() {
        let message = item?;
        let t = message.log_time.as_nanos();
        if summary.messages == 0 {
            summary.first_ns = t;
        }
        summary.messages += 1;
        summary.last_ns = summary.last_ns.max(t);
        // Broadcast every tick that is due before this message.
        let tick = next_tick.get_or_insert_with(|| t.div_euclid(period_ns) * period_ns + period_ns);
        while *tick <= t {
            let at = Timestamp::from_nanos(*tick);
            let objects = O::poll(&mut fusion, at);
            let frame = broadcast(&mut fusion, at, &objects);
            summary.broadcasts += 1;
            handler(ReplayEvent::Broadcast { frame: &frame, objects: &objects }).map_err(fail)?;
            tick_objects = Some((at, objects));
            *tick += period_ns;
        }
        let now = message.log_time;
        let ingest = match &message.body {
            ReplayBody::Sensor(frame) if config.exclude_sensors.contains(&frame.sensor_id) => None,
            ReplayBody::Sensor(frame) => {
                summary.sensor_frames += 1;
                Some(fusion.handle_sensor_frame(now, Arc::clone(frame)))
            }
            ReplayBody::Vehicle(state) => {
                summary.vehicle_states += 1;
                Some(fusion.handle_vehicle_state(now, state))
            }
            _ => None,
        };
        if ingest.is_some() {
            tick_objects = None;
        }
        if let Some(verdict) = ingest.filter(|i| *i != Ingest::Accepted) {
            *summary.refused.entry(format!("{verdict:?}")).or_default() += 1;
        }
        handler(ReplayEvent::Input { message: &message, ingest }).map_err(fail)?;
        if let ReplayBody::GroundTruth(truth) = &message.body {
            summary.truth_frames += 1;
            if config.poll_at_truth {
                let objects = match tick_objects.take() {
                    Some((at, objects)) if at == truth.time => objects,
                    _ => O::poll(&mut fusion, truth.time),
                };
                handler(ReplayEvent::Truth { truth, objects: &objects }).map_err(fail)?;
            }
        }
    }
    summary.fusion = fusion.stats().clone();
    summary.damage = reader.damage().map(ToString::to_string);
    Ok(summary)
}

/// Counters of [`replay_recorded`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedSummary {
    /// Sensor frames handed to the engine.
    pub sensor_frames: u64,
    /// Vehicle states handed to the engine.
    pub vehicle_states: u64,
    /// Recorded broadcast frames reproduced.
    pub roadside_frames: u64,
    /// Of those, the ones whose reproduction equals the recorded frame.
    pub identical_frames: u64,
}

/// Reproduces a daemon's broadcast from its recording: every input is handed to a fresh engine
/// at the time it reached the daemon (the message's publish time, see `replays/README.md`), in
/// the order the daemon handled them (the reader must read in [`ReadOrder::File`]), and at
/// every recorded roadside frame `f` the engine makes the frame the daemon made at `f.time`.
/// `handler` gets (the recorded frame, the reproduced one) for each, the reproduced one as it
/// goes on the wire (encoded and decoded: values on the protocol's fixed-point grid, as the
/// recording holds them), so a faithful reproduction compares equal. The engine runs with
/// `fusion` (its `rsu_id`, when empty, the recording's first RSU id), on the recording's site.
///
/// This is the daemon's own sequence of calls, so a recording replayed this way gives back the
/// live broadcast exactly: what "live and replay are one code path" means.
///
/// [`ReadOrder::File`]: crate::ReadOrder::File
pub fn replay_recorded<E: std::fmt::Display>(
    reader: ReplayReader,
    fusion: &FusionConfig,
    mut handler: impl FnMut(&RoadsideFrame, &RoadsideFrame) -> Result<(), E>,
) -> Result<RecordedSummary, PipelineError> {
    if reader.options().order != crate::ReadOrder::File {
        return Err(PipelineError::Config(
            "replaying a recording needs its messages in file order (OpenOptions::order = ReadOrder::File)".into(),
        ));
    }
    let meta = reader.meta().clone();
    let mut config = fusion.clone();
    if config.rsu_id.is_empty() {
        config.rsu_id = meta.rsu_ids.first().cloned().unwrap_or_else(|| format!("rsu-{}", meta.site.site_id));
    }
    let mut engine = Fusion::new(meta.site.clone(), config)?;
    let mut summary = RecordedSummary::default();
    for item in reader {
        let message = item?;
        let now = message.publish_time;
        match &message.body {
            ReplayBody::Sensor(frame) => {
                summary.sensor_frames += 1;
                engine.handle_sensor_frame(now, Arc::clone(frame));
            }
            ReplayBody::Vehicle(state) => {
                summary.vehicle_states += 1;
                engine.handle_vehicle_state(now, state);
            }
            ReplayBody::Roadside(recorded) => {
                let objects = engine.poll_objects(recorded.time);
                let made = engine.roadside_frame_from(recorded.time, &objects);
                let reproduced = v2x_proto::decode::<RoadsideFrame>(&v2x_proto::encode(&made))
                    .map_err(|cause| PipelineError::Reproduce { time: recorded.time, cause })?;
                summary.roadside_frames += 1;
                summary.identical_frames += u64::from(reproduced == *recorded);
                handler(recorded, &reproduced).map_err(|e| PipelineError::Handler(e.to_string()))?;
            }
            // SPaT does not go through fusion.
            ReplayBody::Meta(_)
            | ReplayBody::GroundTruth(_)
            | ReplayBody::Received(_)
            | ReplayBody::Signal(_)
            | ReplayBody::Spat(_)
            | ReplayBody::Rsi(_) => {}
        }
    }
    Ok(summary)
}
