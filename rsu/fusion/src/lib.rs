//! The sans-IO fusion core of the RSU stack.
//!
//! Everything here is plain data and pure computation: no sockets, files, async runtime, clock or
//! visualisation. Every entry point takes the time as an argument, so the same inputs give the same
//! outputs bit for bit, live or in replay.
//!
//! - [`time`]: timestamps (UTC ns) passed in by callers.
//! - [`geo`]: WGS84 and the site's ENU frame (ellipsoidal conversion).
//! - [`class`]: object classes, participant types, source sets.
//! - [`calibration`]: the site, its ground and its sensors' calibration, loaded from config.
//! - [`measurement`]: what comes in (sensor frames, vehicle self-reports).
//! - [`broadcast`]: what goes out (the fused roadside frame).
//! - [`config`]: the tracker's tuning ([`FusionConfig`]).
//! - [`engine`]: the fusion engine ([`Fusion`]): `handle_*` in, `poll_objects` / `roadside_frame` out.
//! - [`motion`]: motion models (CTRV, CV, static) and their EKFs.
//! - [`track`]: track lifecycle, class evidence, size smoothing.
//! - [`camera`]: box projection and ground back-projection.
//! - [`assignment`]: components and optimal assignment of gated pairs.
//! - [`spatial`]: the ground-plane grid for neighbour queries (gating, scoring).
//! - [`union_find`]: disjoint sets, for splitting gated pairs into components.

pub mod assignment;
pub mod broadcast;
pub mod calibration;
pub mod camera;
pub mod class;
pub mod config;
pub mod engine;
pub mod geo;
pub mod measurement;
pub mod motion;
pub mod spatial;
pub mod time;
pub mod track;
pub mod union_find;

pub use broadcast::{Participant, PathPoint, RoadsideFrame, RoadsideView, SensorHealth, SensorStatus};
pub use calibration::{
    CameraIntrinsics, CameraModel, ConfigError, GroundModel, LidarNoise, SensorCalibration, SensorCoverage, SensorMask,
    SensorModel, SiteConfig,
};
pub use class::{BoxSize, ObjectClass, ParticipantType, SourceSet};
pub use config::{FusionConfig, FusionConfigError};
pub use engine::{
    ConfidenceEllipse, FusedObject, Fusion, FusionError, FusionStats, Ingest, MisbehaviourCounts, MisbehaviourFlag,
    MisbehaviourReason, ObjectKinematics,
};
pub use geo::{EnuFrame, Wgs84};
pub use measurement::{CameraDetection, CameraDetections, Detections, LidarDetection, SensorFrame, VehicleState};
pub use time::Timestamp;
pub use track::{PathHistory, TrackStatus};
