//! Conversions between the generated wire types and the domain types, one module per message
//! family.
//!
//! Wire → domain (`TryFrom`) is where untrusted bytes become trusted values: every missing field,
//! unknown enum value, non-finite float, out-of-range fixed-point value and oversized list is
//! rejected with a [`ConvertError`] naming the field. Domain → wire (`From`) quantises to the
//! fixed-point units of the standards, rounding to the nearest step and saturating at the wire's
//! range.
//!
//! - `common`: checks and quantisation shared by every family, WGS84 positions, polygons;
//! - `sensor`: `SensorFrame` (lidar and camera detections);
//! - `vehicle`: `VehicleState`;
//! - `roadside`: `RoadsideFrame` and its participants;
//! - `replay`: `ReplayMeta` (site, calibration) and `GroundTruthFrame`;
//! - `session`: `ClientHello`, `ServerHello`, `ClientControl`, subscriptions;
//! - `signal`: `SignalControllerState`, `Spat`, `RoadsideDatagram` (traffic signals);
//! - `roadway`: `MapData`, `RsiEvent`, `ServerControl` (the map and road safety information).

/// Maps a domain enum onto its wire enum variant by variant (same variant names), both ways: `$to`
/// converts domain → wire; `$from` converts a wire value → domain and rejects values the domain
/// does not have (unknown numbers, and wire-only variants such as `UNSPECIFIED`) naming `$field`.
macro_rules! enum_mapping {
    ($to:ident, $from:ident, $domain:ident, $wire:ident, $field:literal, [$($v:ident),+ $(,)?]) => {
        fn $to(d: $domain) -> wire::$wire {
            match d {
                $($domain::$v => wire::$wire::$v,)+
            }
        }

        fn $from(v: i32) -> Result<$domain> {
            match wire::$wire::try_from(v) {
                $(Ok(wire::$wire::$v) => Ok($domain::$v),)+
                #[allow(unreachable_patterns)]
                _ => Err(ConvertError::UnknownEnum { field: $field, value: v }),
            }
        }
    };
}

mod common;
mod replay;
mod roadside;
mod roadway;
mod sensor;
mod session;
mod signal;
mod vehicle;

pub(crate) use common::limit_len;
pub use common::{heading_from_yaw, yaw_from_heading};
pub(crate) use replay::{check_ground_truth_frame, ground_truth_object, signal_state};
pub use roadway::{
    LANE_WIDTH_CM, MAX_CONNECTIONS, MAX_EVENT_OFFSET_DM, MAX_EVENT_TRACKS, MAX_INTERSECTIONS, MAX_LANE_NODES,
    MAX_LANES, MAX_NODE_OFFSET_CM,
};
pub(crate) use sensor::{check_image_size, sensor_frame_with};

/// Most detections one sensor frame may carry.
pub const MAX_DETECTIONS_PER_FRAME: usize = 4096;
/// Most participants one roadside frame may carry, and most path-history points per participant:
/// the fusion engine's limits, so that what it makes always decodes.
pub use rsu_fusion::broadcast::{MAX_PARTICIPANTS, MAX_PATH_POINTS};
/// Most class scores per camera box.
pub const MAX_CLASS_SCORES: usize = 16;
/// Most vertices of a polygon.
pub const MAX_POLYGON_VERTICES: usize = 256;
/// Most ground-truth objects per frame.
pub const MAX_TRUTH_OBJECTS: usize = 8192;
/// Most traffic signals per ground-truth frame.
pub const MAX_SIGNALS: usize = 1024;
/// Most signal groups (movements) one controller state or SPaT message may carry: a SPaT of
/// this many fits one QUIC datagram (PROTOCOL.md §2.8).
pub const MAX_MOVEMENTS: usize = 24;
/// Largest distance of a signal time from its message's time [s] (J2735's TimeMark spans one
/// hour).
pub const MAX_SIGNAL_HORIZON_S: i64 = 3600;
/// Longest id string (sensor, vehicle, RSU, signal) [bytes].
pub const MAX_ID_LEN: usize = 64;

/// Heading unit of CSAE 53 / J2735 [deg].
pub const HEADING_UNIT_DEG: f64 = 0.0125;
/// Speed unit of CSAE 53 / J2735 [m/s].
pub const SPEED_UNIT_MPS: f64 = 0.02;
/// Speed steps per m/s (the inverse of [`SPEED_UNIT_MPS`]).
pub const SPEED_STEPS_PER_MPS: f64 = 50.0;
/// Largest valid speed value (8191 means "unavailable" in J2735) [0.02 m/s].
pub const SPEED_MAX: u32 = 8190;
/// Largest valid heading value [0.0125 deg].
pub const HEADING_MAX: u32 = 28_799;
/// Saturation of `Participant.age_ds` [0.1 s].
pub const AGE_MAX_DS: u32 = 127;

/// Why a wire message was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    /// A required field was absent.
    #[error("missing field `{field}`")]
    Missing {
        /// Dotted field path.
        field: &'static str,
    },
    /// A value outside its valid range.
    #[error("field `{field}` out of range: {value} (expected {expected})")]
    OutOfRange {
        /// Dotted field path.
        field: &'static str,
        /// The value received.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// An enum value this version does not know.
    #[error("field `{field}` has unknown enum value {value}")]
    UnknownEnum {
        /// Dotted field path.
        field: &'static str,
        /// The value received.
        value: i32,
    },
    /// Values that are each in range but contradict each other (a phase that ends before it
    /// starts, a signal group listed twice).
    #[error("field `{field}` is inconsistent: {problem}")]
    Inconsistent {
        /// Dotted field path.
        field: &'static str,
        /// What contradicts what.
        problem: String,
    },
    /// A list longer than its limit.
    #[error("field `{field}` has {len} entries (at most {max})")]
    TooMany {
        /// Dotted field path.
        field: &'static str,
        /// Entries received.
        len: usize,
        /// Limit.
        max: usize,
    },
}

type Result<T> = std::result::Result<T, ConvertError>;
