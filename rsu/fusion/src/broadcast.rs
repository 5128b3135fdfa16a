//! The fused frame the RSU broadcasts (domain form of `v2x.v1.RoadsideFrame`): participants in
//! the site frame relative to the site origin, with the confidence summaries vehicles need.

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::class::{BoxSize, ObjectClass, SourceSet};
use crate::geo::Wgs84;
use crate::time::Timestamp;

/// Most participants one roadside frame carries (T/CSAE 157 SSM allows 512; this leaves headroom
/// for the largest sites). One limit for both ends: the engine never puts more in a frame
/// ([`crate::Fusion::roadside_frame_from`]) and receivers refuse more (`v2x_proto`'s decoder).
pub const MAX_PARTICIPANTS: usize = 1024;

/// Most path-history points per participant: `FusionConfig::path_history_len` is at most this,
/// and receivers refuse more (`v2x_proto`'s decoder).
pub const MAX_PATH_POINTS: usize = 64;

/// One broadcast frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoadsideFrame {
    /// The RSU's id.
    pub rsu_id: String,
    /// Frame counter (wraps).
    pub message_count: u32,
    /// Time all participants are predicted to.
    pub time: Timestamp,
    /// Reference point: the site origin.
    pub reference: Wgs84,
    /// Fused participants.
    pub participants: Vec<Participant>,
    /// Health of each sensor.
    pub sensors: Vec<SensorHealth>,
    /// Perceived ground area, polygons of (east, north) [m] relative to `reference`.
    pub perception_regions: Vec<Vec<[f64; 2]>>,
}

/// A fused traffic participant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Stable track id.
    pub id: u32,
    /// Fused class.
    pub class: ObjectClass,
    /// Confidence in `class`, 0..1.
    pub class_confidence: f64,
    /// Source kinds that contributed.
    pub sources: SourceSet,
    /// Ground-contact centre in the site frame [m] (offset from `reference`).
    pub position_m: Point3<f64>,
    /// Radius of the 95% horizontal confidence circle [m].
    pub pos_confidence_95_m: f64,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Box size [m].
    pub size: BoxSize,
    /// Time tracked [s].
    pub age_s: f64,
    /// V2X id when the object is a connected vehicle that reports itself.
    pub v2x_id: Option<String>,
    /// Recent positions, newest first.
    pub path_history: Vec<PathPoint>,
}

/// A past position of a participant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    /// Offset from the participant's current position (east, north) [m].
    pub offset_m: [f64; 2],
    /// How long before the frame time [s].
    pub dt_s: f64,
}

/// Health of one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorHealth {
    /// Sensor id.
    pub sensor_id: String,
    /// Status.
    pub status: SensorStatus,
    /// Capture time of its newest frame.
    pub last_capture: Option<Timestamp>,
}

/// How a sensor is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorStatus {
    /// Never heard from.
    Unknown,
    /// Frames at the expected rate.
    Ok,
    /// Late frames or gaps.
    Degraded,
    /// Silent past the timeout.
    Silent,
}
