//! Conversions between the generated wire types and the domain types.
//!
//! Wire → domain (`TryFrom`) is where untrusted bytes become trusted values: every missing field,
//! unknown enum value, non-finite float, out-of-range fixed-point value and oversized list is
//! rejected with a [`ConvertError`] naming the field. Domain → wire (`From`) quantises to the
//! fixed-point units of the standards, rounding to the nearest step and saturating at the wire's
//! range.

use std::f64::consts::PI;

use nalgebra::{Isometry3, Point2, Point3, Quaternion, Translation3, UnitQuaternion};
use rsu_fusion::calibration::{CameraIntrinsics, CameraModel, GroundArea, GroundModel, LidarNoise, SensorModel};
use rsu_fusion::measurement::{
    ActiveWarning, AdasStatus, BrakeStatus, CameraDetection, CameraDetections, Detections, GnssStatus, LidarDetection,
    PositionAccuracy, SensorFrame, VehicleState, WarningKind,
};
use rsu_fusion::{
    BoxSize, ObjectClass, Participant, PathPoint, RoadsideFrame, SensorCalibration, SensorHealth, SensorStatus,
    SiteConfig, SourceSet, Timestamp, Wgs84,
};

use crate::domain::{
    ClientHello, GroundTruthFrame, GroundTruthObject, ReplayMeta, Role, ServerHello, SignalPhase, SignalState,
    Subscription,
};
use crate::wire;

/// Most detections one sensor frame may carry.
pub const MAX_DETECTIONS_PER_FRAME: usize = 4096;
/// Most participants one roadside frame may carry (T/CSAE 157 SSM allows 512; we allow headroom).
pub const MAX_PARTICIPANTS: usize = 1024;
/// Most class scores per camera box.
pub const MAX_CLASS_SCORES: usize = 16;
/// Most path-history points per participant.
pub const MAX_PATH_POINTS: usize = 64;
/// Most vertices of a polygon.
pub const MAX_POLYGON_VERTICES: usize = 256;
/// Most ground-truth objects per frame.
pub const MAX_TRUTH_OBJECTS: usize = 8192;
/// Most traffic signals per ground-truth frame.
pub const MAX_SIGNALS: usize = 1024;
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

fn out_of_range(field: &'static str, value: impl std::fmt::Display, expected: &'static str) -> ConvertError {
    ConvertError::OutOfRange { field, value: value.to_string(), expected }
}

/// A finite float within `[lo, hi]` (finite bounds). Inlined, so a valid value costs two
/// comparisons; the error is built out of line.
#[inline]
fn bounded(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<f64> {
    // With finite bounds, being within them implies finite (NaN compares false).
    if lo <= v && v <= hi { Ok(v) } else { Err(not_in_range(field, v)) }
}

#[cold]
#[inline(never)]
fn not_in_range(field: &'static str, v: f64) -> ConvertError {
    out_of_range(field, v, "a finite value in range")
}

fn id_string(field: &'static str, s: &str) -> Result<String> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(out_of_range(field, format!("{s:?}"), "1..64 bytes without control characters"));
    }
    Ok(s.to_owned())
}

fn limit<T>(field: &'static str, v: &[T], max: usize) -> Result<()> {
    limit_len(field, v.len(), max)
}

/// [`limit`] on a count of entries.
pub(crate) fn limit_len(field: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max { Err(ConvertError::TooMany { field, len, max }) } else { Ok(()) }
}

/// `items.iter().map(convert).collect::<Result<Vec<_>>>()`, with the vector sized once: such a
/// `collect` has no length hint and grows the vector step by step, copying it each time.
fn convert_all<'a, W, D>(items: &'a [W], convert: impl FnMut(&'a W) -> Result<D>) -> Result<Vec<D>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter().map(convert) {
        out.push(item?);
    }
    Ok(out)
}

fn timestamp(field: &'static str, ns: u64) -> Result<Timestamp> {
    i64::try_from(ns).map(Timestamp::from_nanos).map_err(|_| out_of_range(field, ns, "at most i64::MAX ns"))
}

fn wire_time(t: Timestamp) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(0)
}

fn class(field: &'static str, code: i32) -> Result<ObjectClass> {
    ObjectClass::from_code(code).ok_or(ConvertError::UnknownEnum { field, value: code })
}

/// Rounds `v / unit` to the nearest integer, saturating at the i32 range (NaN gives 0).
fn q_i32(v: f64, unit: f64) -> i32 {
    (v / unit).round() as i32
}

/// Rounds `v / unit` to the nearest integer within `0..=max` (NaN gives 0).
fn q_u32(v: f64, unit: f64, max: u32) -> u32 {
    ((v / unit).round() as u32).min(max)
}

/// Site yaw (counter-clockwise from east) [rad] → wire heading (clockwise from north) [0.0125°].
pub fn heading_from_yaw(yaw_rad: f64) -> u32 {
    let deg = (90.0 - yaw_rad.to_degrees()).rem_euclid(360.0);
    let h = (deg / HEADING_UNIT_DEG).round() as u32;
    if h > HEADING_MAX { 0 } else { h }
}

/// Wire heading [0.0125°] → site yaw [rad] in (-π, π].
pub fn yaw_from_heading(heading: u32) -> f64 {
    let yaw = (90.0 - f64::from(heading) * HEADING_UNIT_DEG).to_radians();
    let wrapped = (yaw + PI).rem_euclid(2.0 * PI) - PI;
    if wrapped <= -PI { wrapped + 2.0 * PI } else { wrapped }
}

fn checked_heading(field: &'static str, heading: u32) -> Result<f64> {
    if heading > HEADING_MAX {
        return Err(out_of_range(field, heading, "0..=28799 [0.0125 deg]"));
    }
    Ok(yaw_from_heading(heading))
}

fn checked_speed(field: &'static str, speed: u32) -> Result<f64> {
    if speed > SPEED_MAX {
        return Err(out_of_range(field, speed, "0..=8190 [0.02 m/s]"));
    }
    Ok(f64::from(speed) / SPEED_STEPS_PER_MPS)
}

// ---------------------------------------------------------------------------------------------
// Common

impl From<&Wgs84> for wire::Wgs84Position {
    fn from(p: &Wgs84) -> Self {
        wire::Wgs84Position {
            lat_1e7deg: q_i32(p.lat_deg, 1e-7),
            lon_1e7deg: q_i32(p.lon_deg, 1e-7),
            elevation_cm: q_i32(p.alt_m, 0.01),
        }
    }
}

impl TryFrom<&wire::Wgs84Position> for Wgs84 {
    type Error = ConvertError;
    fn try_from(p: &wire::Wgs84Position) -> Result<Self> {
        if !(-900_000_000..=900_000_000).contains(&p.lat_1e7deg) {
            return Err(out_of_range("lat_1e7deg", p.lat_1e7deg, "-900000000..=900000000"));
        }
        if !(-1_800_000_000..=1_800_000_000).contains(&p.lon_1e7deg) {
            return Err(out_of_range("lon_1e7deg", p.lon_1e7deg, "-1800000000..=1800000000"));
        }
        if !(-1_200_000..=10_000_000).contains(&p.elevation_cm) {
            return Err(out_of_range("elevation_cm", p.elevation_cm, "-12 km..=100 km"));
        }
        Ok(Wgs84::new(f64::from(p.lat_1e7deg) / 1e7, f64::from(p.lon_1e7deg) / 1e7, f64::from(p.elevation_cm) / 100.0))
    }
}

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

enum_mapping!(
    warning_kind_to_wire,
    warning_kind_from_wire,
    WarningKind,
    WarningKind,
    "warnings.kind",
    [Fcw, Aeb, Vrucw, Icw, Evw]
);
enum_mapping!(
    gnss_to_wire,
    gnss_from_wire,
    GnssStatus,
    GnssStatus,
    "gnss",
    [Unknown, DeadReckoning, Standalone, Differential, RtkFixed]
);
enum_mapping!(
    sensor_status_to_wire,
    sensor_status_from_wire,
    SensorStatus,
    SensorStatus,
    "sensors.status",
    [Unknown, Ok, Degraded, Silent]
);
enum_mapping!(
    signal_phase_to_wire,
    signal_phase_from_wire,
    SignalPhase,
    SignalPhase,
    "signals.phase",
    [Unknown, Red, Yellow, Green, Dark]
);
enum_mapping!(role_to_wire, role_from_wire, Role, Role, "role", [Vehicle, Sensor]);

fn required<'a, T>(field: &'static str, v: &'a Option<T>) -> Result<&'a T> {
    v.as_ref().ok_or(ConvertError::Missing { field })
}

fn polygon_to_wire(polygon: &[[f64; 2]]) -> wire::Polygon {
    wire::Polygon {
        x_dm: polygon.iter().map(|p| q_i32(p[0], 0.1)).collect(),
        y_dm: polygon.iter().map(|p| q_i32(p[1], 0.1)).collect(),
    }
}

fn polygon_from_wire(field: &'static str, p: &wire::Polygon) -> Result<Vec<[f64; 2]>> {
    limit(field, &p.x_dm, MAX_POLYGON_VERTICES)?;
    if p.x_dm.len() != p.y_dm.len() || p.x_dm.len() < 3 {
        return Err(out_of_range(field, p.x_dm.len(), "at least 3 vertices with as many x as y"));
    }
    Ok(p.x_dm.iter().zip(&p.y_dm).map(|(x, y)| [f64::from(*x) / 10.0, f64::from(*y) / 10.0]).collect())
}

// ---------------------------------------------------------------------------------------------
// Sensor frames

impl From<&SensorFrame> for wire::SensorFrame {
    fn from(f: &SensorFrame) -> Self {
        let detections = match &f.detections {
            Detections::Lidar(boxes) => wire::sensor_frame::Detections::Lidar(wire::LidarDetections {
                boxes: boxes.iter().map(wire::LidarBox::from).collect(),
            }),
            Detections::Camera(cam) => wire::sensor_frame::Detections::Camera(wire::CameraDetections {
                image_width_px: cam.image_width_px,
                image_height_px: cam.image_height_px,
                boxes: cam.boxes.iter().map(wire::CameraBox::from).collect(),
            }),
        };
        wire::SensorFrame {
            sensor_id: f.sensor_id.clone(),
            sequence: f.sequence,
            capture_time_ns: wire_time(f.capture_time),
            detections: Some(detections),
        }
    }
}

impl From<&LidarDetection> for wire::LidarBox {
    fn from(d: &LidarDetection) -> Self {
        wire::LidarBox {
            x_m: d.center_in_sensor.x as f32,
            y_m: d.center_in_sensor.y as f32,
            z_m: d.center_in_sensor.z as f32,
            length_m: d.size.length_m as f32,
            width_m: d.size.width_m as f32,
            height_m: d.size.height_m as f32,
            yaw_rad: d.yaw_rad as f32,
            object_class: i32::from(d.class.code()),
            score: d.score as f32,
            point_count: d.point_count,
        }
    }
}

impl From<&CameraDetection> for wire::CameraBox {
    fn from(d: &CameraDetection) -> Self {
        wire::CameraBox {
            u_min_px: d.min_px.x as f32,
            v_min_px: d.min_px.y as f32,
            u_max_px: d.max_px.x as f32,
            v_max_px: d.max_px.y as f32,
            class_scores: d
                .class_scores
                .iter()
                .map(|(c, s)| wire::ClassScore { object_class: i32::from(c.code()), score: *s as f32 })
                .collect(),
        }
    }
}

impl TryFrom<&wire::SensorFrame> for SensorFrame {
    type Error = ConvertError;
    fn try_from(f: &wire::SensorFrame) -> Result<Self> {
        let detections = match required("detections", &f.detections)? {
            wire::sensor_frame::Detections::Lidar(l) => {
                limit("lidar.boxes", &l.boxes, MAX_DETECTIONS_PER_FRAME)?;
                Detections::Lidar(convert_all(&l.boxes, LidarDetection::try_from)?)
            }
            wire::sensor_frame::Detections::Camera(c) => {
                limit("camera.boxes", &c.boxes, MAX_DETECTIONS_PER_FRAME)?;
                check_image_size(c.image_width_px, c.image_height_px)?;
                Detections::Camera(CameraDetections {
                    image_width_px: c.image_width_px,
                    image_height_px: c.image_height_px,
                    boxes: convert_all(&c.boxes, CameraDetection::try_from)?,
                })
            }
        };
        sensor_frame_with(&f.sensor_id, f.sequence, f.capture_time_ns, detections)
    }
}

/// The image size of camera detections: 1..=16384 px each way.
pub(crate) fn check_image_size(width_px: u32, height_px: u32) -> Result<()> {
    if !(1..=16_384).contains(&width_px) || !(1..=16_384).contains(&height_px) {
        return Err(out_of_range("camera.image_size", width_px, "1..=16384 px"));
    }
    Ok(())
}

/// A sensor frame of converted `detections` and the frame's other wire fields.
pub(crate) fn sensor_frame_with(
    sensor_id: &str,
    sequence: u64,
    capture_time_ns: u64,
    detections: Detections,
) -> Result<SensorFrame> {
    Ok(SensorFrame {
        sensor_id: id_string("sensor_id", sensor_id)?,
        sequence,
        capture_time: timestamp("capture_time_ns", capture_time_ns)?,
        detections,
    })
}

impl TryFrom<&wire::LidarBox> for LidarDetection {
    type Error = ConvertError;
    #[inline]
    fn try_from(b: &wire::LidarBox) -> Result<Self> {
        const R: f64 = 2000.0;
        let size = BoxSize::new(
            bounded("lidar.length_m", f64::from(b.length_m), 0.01, 50.0)?,
            bounded("lidar.width_m", f64::from(b.width_m), 0.01, 20.0)?,
            bounded("lidar.height_m", f64::from(b.height_m), 0.01, 20.0)?,
        );
        Ok(LidarDetection {
            center_in_sensor: Point3::new(
                bounded("lidar.x_m", f64::from(b.x_m), -R, R)?,
                bounded("lidar.y_m", f64::from(b.y_m), -R, R)?,
                bounded("lidar.z_m", f64::from(b.z_m), -R, R)?,
            ),
            size,
            yaw_rad: bounded("lidar.yaw_rad", f64::from(b.yaw_rad), -4.0 * PI, 4.0 * PI)?,
            class: class("lidar.object_class", b.object_class)?,
            score: bounded("lidar.score", f64::from(b.score), 0.0, 1.0)?,
            point_count: b.point_count,
        })
    }
}

impl TryFrom<&wire::CameraBox> for CameraDetection {
    type Error = ConvertError;
    #[inline]
    fn try_from(b: &wire::CameraBox) -> Result<Self> {
        const P: f64 = 100_000.0;
        let min_px = Point2::new(
            bounded("camera.u_min_px", f64::from(b.u_min_px), -P, P)?,
            bounded("camera.v_min_px", f64::from(b.v_min_px), -P, P)?,
        );
        let max_px = Point2::new(
            bounded("camera.u_max_px", f64::from(b.u_max_px), -P, P)?,
            bounded("camera.v_max_px", f64::from(b.v_max_px), -P, P)?,
        );
        if max_px.x <= min_px.x || max_px.y <= min_px.y {
            return Err(out_of_range("camera.box", format!("{min_px:?}..{max_px:?}"), "min corner above-left of max"));
        }
        limit("camera.class_scores", &b.class_scores, MAX_CLASS_SCORES)?;
        let class_scores = convert_all(&b.class_scores, |s| {
            Ok((
                class("camera.class_scores.object_class", s.object_class)?,
                bounded("camera.class_scores.score", f64::from(s.score), 0.0, 1.0)?,
            ))
        })?;
        if class_scores.iter().map(|(_, s)| s).sum::<f64>() > 1.0 + 1e-3 {
            return Err(out_of_range("camera.class_scores", "sum > 1", "scores summing to at most 1"));
        }
        Ok(CameraDetection { min_px, max_px, class_scores })
    }
}

// ---------------------------------------------------------------------------------------------
// Vehicle state

impl From<&VehicleState> for wire::VehicleState {
    fn from(s: &VehicleState) -> Self {
        let accuracy = wire::PositionAccuracy {
            semi_major_cm: q_u32(s.accuracy.semi_major_m, 0.01, u32::MAX),
            semi_minor_cm: q_u32(s.accuracy.semi_minor_m, 0.01, u32::MAX),
            orientation: heading_from_yaw(s.accuracy.orientation_rad),
        };
        wire::VehicleState {
            vehicle_id: s.vehicle_id.clone(),
            message_count: s.message_count,
            timestamp_ns: wire_time(s.time),
            position: Some((&s.position).into()),
            accuracy: Some(accuracy),
            speed: q_u32(s.speed_mps, SPEED_UNIT_MPS, SPEED_MAX),
            heading: heading_from_yaw(s.yaw_rad),
            steering_ddeg: q_i32(s.steering_rad.to_degrees(), 0.1),
            yaw_rate_cdeg_s: q_i32(s.yaw_rate_rps.to_degrees(), 0.01),
            accel_long_cm_s2: q_i32(s.accel_long_mps2, 0.01),
            accel_lat_cm_s2: q_i32(s.accel_lat_mps2, 0.01),
            brakes: Some(wire::BrakeStatus {
                pedal_pressed: s.brakes.pedal_pressed,
                abs_active: s.brakes.abs_active,
                aeb_active: s.brakes.aeb_active,
                demand_pct: q_u32(s.brakes.demand, 0.01, 100),
            }),
            length_cm: q_u32(s.size.length_m, 0.01, u32::MAX),
            width_cm: q_u32(s.size.width_m, 0.01, u32::MAX),
            height_cm: q_u32(s.size.height_m, 0.01, u32::MAX),
            vehicle_class: i32::from(s.class.code()),
            adas: Some(wire::AdasStatus {
                acc_active: s.adas.acc_active,
                fcw_enabled: s.adas.fcw_enabled,
                aeb_enabled: s.adas.aeb_enabled,
                vru_warning_enabled: s.adas.vru_warning_enabled,
                icw_enabled: s.adas.icw_enabled,
                v2x_active: s.adas.v2x_active,
            }),
            warnings: s
                .warnings
                .iter()
                .map(|w| wire::ActiveWarning {
                    kind: warning_kind_to_wire(w.kind) as i32,
                    target_id: w.target_id,
                    ttc_ms: w.ttc_s.map_or(0, |t| q_u32(t, 0.001, u32::MAX).max(1)),
                })
                .collect(),
            gnss: gnss_to_wire(s.gnss) as i32,
        }
    }
}

impl TryFrom<&wire::VehicleState> for VehicleState {
    type Error = ConvertError;
    fn try_from(s: &wire::VehicleState) -> Result<Self> {
        let accuracy = required("accuracy", &s.accuracy)?;
        if accuracy.semi_major_cm > 100_000 || accuracy.semi_minor_cm > accuracy.semi_major_cm {
            return Err(out_of_range("accuracy", accuracy.semi_major_cm, "semi_minor <= semi_major <= 1 km"));
        }
        let brakes = s.brakes.unwrap_or_default();
        if brakes.demand_pct > 100 {
            return Err(out_of_range("brakes.demand_pct", brakes.demand_pct, "0..=100"));
        }
        let adas = s.adas.unwrap_or_default();
        let size_cm = |field: &'static str, v: u32| -> Result<f64> {
            if (1..=5000).contains(&v) { Ok(f64::from(v) / 100.0) } else { Err(out_of_range(field, v, "1..=5000 cm")) }
        };
        limit("warnings", &s.warnings, 16)?;
        Ok(VehicleState {
            vehicle_id: id_string("vehicle_id", &s.vehicle_id)?,
            message_count: s.message_count,
            time: timestamp("timestamp_ns", s.timestamp_ns)?,
            position: Wgs84::try_from(required("position", &s.position)?)?,
            accuracy: PositionAccuracy {
                semi_major_m: f64::from(accuracy.semi_major_cm) / 100.0,
                semi_minor_m: f64::from(accuracy.semi_minor_cm) / 100.0,
                orientation_rad: checked_heading("accuracy.orientation", accuracy.orientation)?,
            },
            speed_mps: checked_speed("speed", s.speed)?,
            yaw_rad: checked_heading("heading", s.heading)?,
            steering_rad: (bounded("steering_ddeg", f64::from(s.steering_ddeg), -12_600.0, 12_600.0)? / 10.0)
                .to_radians(),
            yaw_rate_rps: (bounded("yaw_rate_cdeg_s", f64::from(s.yaw_rate_cdeg_s), -32_767.0, 32_767.0)? / 100.0)
                .to_radians(),
            accel_long_mps2: bounded("accel_long_cm_s2", f64::from(s.accel_long_cm_s2), -2_000.0, 2_000.0)? / 100.0,
            accel_lat_mps2: bounded("accel_lat_cm_s2", f64::from(s.accel_lat_cm_s2), -2_000.0, 2_000.0)? / 100.0,
            brakes: BrakeStatus {
                pedal_pressed: brakes.pedal_pressed,
                abs_active: brakes.abs_active,
                aeb_active: brakes.aeb_active,
                demand: f64::from(brakes.demand_pct) / 100.0,
            },
            size: BoxSize::new(
                size_cm("length_cm", s.length_cm)?,
                size_cm("width_cm", s.width_cm)?,
                size_cm("height_cm", s.height_cm)?,
            ),
            class: class("vehicle_class", s.vehicle_class)?,
            adas: AdasStatus {
                acc_active: adas.acc_active,
                fcw_enabled: adas.fcw_enabled,
                aeb_enabled: adas.aeb_enabled,
                vru_warning_enabled: adas.vru_warning_enabled,
                icw_enabled: adas.icw_enabled,
                v2x_active: adas.v2x_active,
            },
            warnings: s
                .warnings
                .iter()
                .map(|w| {
                    Ok(ActiveWarning {
                        kind: warning_kind_from_wire(w.kind)?,
                        target_id: w.target_id,
                        ttc_s: (w.ttc_ms > 0).then(|| f64::from(w.ttc_ms) / 1000.0),
                    })
                })
                .collect::<Result<_>>()?,
            gnss: gnss_from_wire(s.gnss)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Roadside frame

fn participant_type_to_wire(class: ObjectClass) -> wire::ParticipantType {
    use rsu_fusion::ParticipantType as P;
    match class.participant_type() {
        P::Unknown => wire::ParticipantType::Unknown,
        P::Motor => wire::ParticipantType::Motor,
        P::NonMotor => wire::ParticipantType::NonMotor,
        P::Pedestrian => wire::ParticipantType::Pedestrian,
        P::Obstacle => wire::ParticipantType::Obstacle,
    }
}

impl From<&Participant> for wire::Participant {
    fn from(p: &Participant) -> Self {
        let size_dm = |v: f64| q_u32(v, 0.1, u32::MAX).max(1);
        wire::Participant {
            id: p.id,
            ptc_type: participant_type_to_wire(p.class) as i32,
            object_class: i32::from(p.class.code()),
            class_confidence_pct: q_u32(p.class_confidence, 0.01, 100),
            sources: p.sources.bits(),
            x_dm: q_i32(p.position_m.x, 0.1),
            y_dm: q_i32(p.position_m.y, 0.1),
            speed: q_u32(p.speed_mps, SPEED_UNIT_MPS, SPEED_MAX),
            heading: heading_from_yaw(p.yaw_rad),
            length_dm: size_dm(p.size.length_m),
            width_dm: size_dm(p.size.width_m),
            height_dm: size_dm(p.size.height_m),
            pos_confidence_cm: q_u32(p.pos_confidence_95_m, 0.01, u32::MAX),
            age_ds: q_u32(p.age_s, 0.1, AGE_MAX_DS),
            yaw_rate_ddeg_s: q_i32(p.yaw_rate_rps.to_degrees(), 0.1),
            accel_dm_s2: q_i32(p.accel_mps2, 0.1),
            z_dm: q_i32(p.position_m.z, 0.1),
            v2x_id: p.v2x_id.clone().unwrap_or_default(),
            path_history: p
                .path_history
                .iter()
                .map(|h| wire::PathPoint {
                    dx_dm: q_i32(h.offset_m[0], 0.1),
                    dy_dm: q_i32(h.offset_m[1], 0.1),
                    dt_ds: q_u32(h.dt_s, 0.1, u32::MAX),
                })
                .collect(),
        }
    }
}

impl TryFrom<&wire::Participant> for Participant {
    type Error = ConvertError;
    fn try_from(p: &wire::Participant) -> Result<Self> {
        let class = class("participants.object_class", p.object_class)?;
        if wire::ParticipantType::try_from(p.ptc_type).is_err() {
            return Err(ConvertError::UnknownEnum { field: "participants.ptc_type", value: p.ptc_type });
        }
        if p.class_confidence_pct > 100 {
            return Err(out_of_range("participants.class_confidence_pct", p.class_confidence_pct, "0..=100"));
        }
        let sources = SourceSet::from_bits(p.sources)
            .ok_or_else(|| out_of_range("participants.sources", p.sources, "known SourceBit bits"))?;
        let size_dm = |field: &'static str, v: u32| -> Result<f64> {
            if (1..=500).contains(&v) { Ok(f64::from(v) / 10.0) } else { Err(out_of_range(field, v, "1..=500 dm")) }
        };
        if p.age_ds > AGE_MAX_DS {
            return Err(out_of_range("participants.age_ds", p.age_ds, "0..=127"));
        }
        limit("participants.path_history", &p.path_history, MAX_PATH_POINTS)?;
        Ok(Participant {
            id: p.id,
            class,
            class_confidence: f64::from(p.class_confidence_pct) / 100.0,
            sources,
            position_m: Point3::new(f64::from(p.x_dm) / 10.0, f64::from(p.y_dm) / 10.0, f64::from(p.z_dm) / 10.0),
            pos_confidence_95_m: f64::from(p.pos_confidence_cm) / 100.0,
            speed_mps: checked_speed("participants.speed", p.speed)?,
            yaw_rad: checked_heading("participants.heading", p.heading)?,
            yaw_rate_rps: (f64::from(p.yaw_rate_ddeg_s) / 10.0).to_radians(),
            accel_mps2: f64::from(p.accel_dm_s2) / 10.0,
            size: BoxSize::new(
                size_dm("participants.length_dm", p.length_dm)?,
                size_dm("participants.width_dm", p.width_dm)?,
                size_dm("participants.height_dm", p.height_dm)?,
            ),
            age_s: f64::from(p.age_ds) / 10.0,
            v2x_id: if p.v2x_id.is_empty() { None } else { Some(id_string("participants.v2x_id", &p.v2x_id)?) },
            path_history: p
                .path_history
                .iter()
                .map(|h| PathPoint {
                    offset_m: [f64::from(h.dx_dm) / 10.0, f64::from(h.dy_dm) / 10.0],
                    dt_s: f64::from(h.dt_ds) / 10.0,
                })
                .collect(),
        })
    }
}

impl From<&RoadsideFrame> for wire::RoadsideFrame {
    fn from(f: &RoadsideFrame) -> Self {
        wire::RoadsideFrame {
            rsu_id: f.rsu_id.clone(),
            message_count: f.message_count,
            timestamp_ns: wire_time(f.time),
            reference: Some((&f.reference).into()),
            participants: f.participants.iter().map(wire::Participant::from).collect(),
            sensors: f
                .sensors
                .iter()
                .map(|s| wire::SensorHealth {
                    sensor_id: s.sensor_id.clone(),
                    status: sensor_status_to_wire(s.status) as i32,
                    last_capture_ns: s.last_capture.map_or(0, wire_time),
                })
                .collect(),
            perception_regions: f.perception_regions.iter().map(|p| polygon_to_wire(p)).collect(),
        }
    }
}

impl TryFrom<&wire::RoadsideFrame> for RoadsideFrame {
    type Error = ConvertError;
    fn try_from(f: &wire::RoadsideFrame) -> Result<Self> {
        limit("participants", &f.participants, MAX_PARTICIPANTS)?;
        limit("sensors", &f.sensors, 256)?;
        limit("perception_regions", &f.perception_regions, 64)?;
        Ok(RoadsideFrame {
            rsu_id: id_string("rsu_id", &f.rsu_id)?,
            message_count: f.message_count,
            time: timestamp("timestamp_ns", f.timestamp_ns)?,
            reference: Wgs84::try_from(required("reference", &f.reference)?)?,
            participants: convert_all(&f.participants, Participant::try_from)?,
            sensors: f
                .sensors
                .iter()
                .map(|s| {
                    Ok(SensorHealth {
                        sensor_id: id_string("sensors.sensor_id", &s.sensor_id)?,
                        status: sensor_status_from_wire(s.status)?,
                        last_capture: if s.last_capture_ns == 0 {
                            None
                        } else {
                            Some(timestamp("sensors.last_capture_ns", s.last_capture_ns)?)
                        },
                    })
                })
                .collect::<Result<_>>()?,
            perception_regions: f
                .perception_regions
                .iter()
                .map(|p| polygon_from_wire("perception_regions", p))
                .collect::<Result<_>>()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Replay metadata and ground truth

fn pose_to_wire(iso: &Isometry3<f64>) -> wire::Pose {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    wire::Pose { x_m: t.x, y_m: t.y, z_m: t.z, qw: q.w, qx: q.i, qy: q.j, qz: q.k }
}

fn pose_from_wire(p: &wire::Pose) -> Result<Isometry3<f64>> {
    let all = [p.x_m, p.y_m, p.z_m, p.qw, p.qx, p.qy, p.qz];
    if all.iter().any(|v| !v.is_finite()) {
        return Err(out_of_range("world_from_sensor", "non-finite", "finite values"));
    }
    let q = Quaternion::new(p.qw, p.qx, p.qy, p.qz);
    if (q.norm() - 1.0).abs() > 1e-6 {
        return Err(out_of_range("world_from_sensor.q", q.norm(), "a unit quaternion"));
    }
    // The quaternion is stored as is (not renormalised) so a round trip is bit-exact.
    Ok(Isometry3::from_parts(Translation3::new(p.x_m, p.y_m, p.z_m), UnitQuaternion::new_unchecked(q)))
}

impl From<&SensorCalibration> for wire::SensorCalibration {
    fn from(s: &SensorCalibration) -> Self {
        let mut out = wire::SensorCalibration {
            sensor_id: s.id.clone(),
            world_from_sensor: Some(pose_to_wire(&s.world_from_sensor)),
            max_range_m: s.max_range_m,
            hfov_deg: s.hfov_deg,
            vfov_deg: s.vfov_deg,
            frame_period_s: s.frame_period_s,
            ..Default::default()
        };
        match &s.model {
            SensorModel::Lidar(noise) => {
                out.kind = wire::SensorKind::Lidar as i32;
                out.position_sigma_m = noise.position_sigma_m;
                out.position_sigma_per_m = noise.position_sigma_per_m;
            }
            SensorModel::Camera(cam) => {
                out.kind = wire::SensorKind::Camera as i32;
                out.pixel_sigma_px = cam.pixel_sigma_px;
                let k = &cam.intrinsics;
                out.intrinsics = Some(wire::CameraIntrinsics {
                    width_px: k.width_px,
                    height_px: k.height_px,
                    fx: k.fx,
                    fy: k.fy,
                    cx: k.cx,
                    cy: k.cy,
                    distortion: k.distortion.to_vec(),
                });
            }
        }
        out
    }
}

impl TryFrom<&wire::SensorCalibration> for SensorCalibration {
    type Error = ConvertError;
    fn try_from(s: &wire::SensorCalibration) -> Result<Self> {
        let model = match wire::SensorKind::try_from(s.kind) {
            Ok(wire::SensorKind::Lidar) => SensorModel::Lidar(LidarNoise {
                position_sigma_m: s.position_sigma_m,
                position_sigma_per_m: s.position_sigma_per_m,
            }),
            Ok(wire::SensorKind::Camera) => {
                let k = required("sensors.intrinsics", &s.intrinsics)?;
                let distortion = match k.distortion.as_slice() {
                    [] => [0.0; 5],
                    [k1, k2, p1, p2, k3] => [*k1, *k2, *p1, *p2, *k3],
                    other => return Err(out_of_range("sensors.intrinsics.distortion", other.len(), "0 or 5 values")),
                };
                SensorModel::Camera(CameraModel {
                    intrinsics: CameraIntrinsics {
                        width_px: k.width_px,
                        height_px: k.height_px,
                        fx: k.fx,
                        fy: k.fy,
                        cx: k.cx,
                        cy: k.cy,
                        distortion,
                    },
                    pixel_sigma_px: s.pixel_sigma_px,
                })
            }
            _ => return Err(ConvertError::UnknownEnum { field: "sensors.kind", value: s.kind }),
        };
        Ok(SensorCalibration {
            id: id_string("sensors.sensor_id", &s.sensor_id)?,
            world_from_sensor: pose_from_wire(required("sensors.world_from_sensor", &s.world_from_sensor)?)?,
            max_range_m: s.max_range_m,
            hfov_deg: s.hfov_deg,
            vfov_deg: s.vfov_deg,
            frame_period_s: s.frame_period_s,
            model,
        })
    }
}

impl From<&ReplayMeta> for wire::ReplayMeta {
    fn from(m: &ReplayMeta) -> Self {
        let site = &m.site;
        wire::ReplayMeta {
            format_version: m.format_version,
            software_version: m.software_version.clone(),
            scenario: m.scenario.clone(),
            description: m.description.clone(),
            seed: m.seed,
            site: Some(wire::SiteInfo {
                site_id: site.site_id.clone(),
                name: site.name.clone(),
                origin: Some((&site.origin).into()),
                representative: site.representative,
                ground_height_m: site.ground.default_height_m,
                ground_areas: site
                    .ground
                    .areas
                    .iter()
                    .map(|a| wire::GroundArea {
                        x_m: a.polygon_m.iter().map(|p| p[0]).collect(),
                        y_m: a.polygon_m.iter().map(|p| p[1]).collect(),
                        height_m: a.height_m,
                    })
                    .collect(),
            }),
            sensors: site.sensors.iter().map(wire::SensorCalibration::from).collect(),
            rsu_ids: m.rsu_ids.clone(),
            start_time_ns: wire_time(m.start_time),
            end_time_ns: wire_time(m.end_time),
        }
    }
}

impl TryFrom<&wire::ReplayMeta> for ReplayMeta {
    type Error = ConvertError;
    fn try_from(m: &wire::ReplayMeta) -> Result<Self> {
        let s = required("site", &m.site)?;
        limit("sensors", &m.sensors, 256)?;
        limit("site.ground_areas", &s.ground_areas, 1024)?;
        let areas = s
            .ground_areas
            .iter()
            .map(|a| {
                limit("site.ground_areas.x_m", &a.x_m, MAX_POLYGON_VERTICES)?;
                if a.x_m.len() != a.y_m.len() {
                    return Err(out_of_range("site.ground_areas", a.y_m.len(), "as many y_m as x_m"));
                }
                Ok(GroundArea {
                    polygon_m: a.x_m.iter().zip(&a.y_m).map(|(x, y)| [*x, *y]).collect(),
                    height_m: a.height_m,
                })
            })
            .collect::<Result<_>>()?;
        let site = SiteConfig {
            site_id: s.site_id.clone(),
            name: s.name.clone(),
            origin: Wgs84::try_from(required("site.origin", &s.origin)?)?,
            representative: s.representative,
            ground: GroundModel { default_height_m: s.ground_height_m, areas },
            sensors: m.sensors.iter().map(SensorCalibration::try_from).collect::<Result<_>>()?,
        };
        // The site must be as valid as one loaded from config.
        site.validate().map_err(|e| ConvertError::OutOfRange {
            field: "site",
            value: format!("{}: {}", e.field, e.problem),
            expected: "a valid site configuration",
        })?;
        limit("rsu_ids", &m.rsu_ids, 64)?;
        Ok(ReplayMeta {
            format_version: m.format_version,
            software_version: m.software_version.clone(),
            scenario: m.scenario.clone(),
            description: m.description.clone(),
            seed: m.seed,
            site,
            rsu_ids: m.rsu_ids.iter().map(|id| id_string("rsu_ids", id)).collect::<Result<_>>()?,
            start_time: timestamp("start_time_ns", m.start_time_ns)?,
            end_time: timestamp("end_time_ns", m.end_time_ns)?,
        })
    }
}

impl From<&GroundTruthFrame> for wire::GroundTruthFrame {
    fn from(g: &GroundTruthFrame) -> Self {
        wire::GroundTruthFrame {
            timestamp_ns: wire_time(g.time),
            objects: g
                .objects
                .iter()
                .map(|o| wire::GroundTruthObject {
                    id: o.id,
                    object_class: i32::from(o.class.code()),
                    x_m: o.center_m.x,
                    y_m: o.center_m.y,
                    z_m: o.center_m.z,
                    yaw_rad: o.yaw_rad,
                    speed_mps: o.speed_mps,
                    yaw_rate_rps: o.yaw_rate_rps,
                    accel_mps2: o.accel_mps2,
                    length_m: o.size.length_m,
                    width_m: o.size.width_m,
                    height_m: o.size.height_m,
                    v2x_id: o.v2x_id.clone().unwrap_or_default(),
                })
                .collect(),
            signals: g
                .signals
                .iter()
                .map(|s| wire::SignalState {
                    signal_id: s.signal_id.clone(),
                    phase: signal_phase_to_wire(s.phase) as i32,
                    remaining_ms: q_u32(s.remaining_s, 0.001, u32::MAX),
                })
                .collect(),
        }
    }
}

impl TryFrom<&wire::GroundTruthFrame> for GroundTruthFrame {
    type Error = ConvertError;
    fn try_from(g: &wire::GroundTruthFrame) -> Result<Self> {
        Ok(GroundTruthFrame {
            time: check_ground_truth_frame(g.timestamp_ns, g.objects.len(), g.signals.len())?,
            objects: convert_all(&g.objects, |o| ground_truth_object(o, &o.v2x_id))?,
            signals: convert_all(&g.signals, signal_state)?,
        })
    }
}

/// The checks of a ground-truth frame before its objects and signals: their counts
/// ([`MAX_TRUTH_OBJECTS`], [`MAX_SIGNALS`]) and its time.
pub(crate) fn check_ground_truth_frame(timestamp_ns: u64, objects: usize, signals: usize) -> Result<Timestamp> {
    limit_len("objects", objects, MAX_TRUTH_OBJECTS)?;
    limit_len("signals", signals, MAX_SIGNALS)?;
    timestamp("timestamp_ns", timestamp_ns)
}

/// A ground-truth object from its wire fields, with `v2x_id` in place of `o.v2x_id` (so a decoder
/// can pass the bytes it read without building a `String` first).
#[inline]
pub(crate) fn ground_truth_object(o: &wire::GroundTruthObject, v2x_id: &str) -> Result<GroundTruthObject> {
    const R: f64 = 1.0e6;
    Ok(GroundTruthObject {
        id: o.id,
        class: class("objects.object_class", o.object_class)?,
        center_m: Point3::new(
            bounded("objects.x_m", o.x_m, -R, R)?,
            bounded("objects.y_m", o.y_m, -R, R)?,
            bounded("objects.z_m", o.z_m, -R, R)?,
        ),
        yaw_rad: bounded("objects.yaw_rad", o.yaw_rad, -4.0 * PI, 4.0 * PI)?,
        speed_mps: bounded("objects.speed_mps", o.speed_mps, -100.0, 100.0)?,
        yaw_rate_rps: bounded("objects.yaw_rate_rps", o.yaw_rate_rps, -20.0, 20.0)?,
        accel_mps2: bounded("objects.accel_mps2", o.accel_mps2, -50.0, 50.0)?,
        size: BoxSize::new(
            bounded("objects.length_m", o.length_m, 0.01, 50.0)?,
            bounded("objects.width_m", o.width_m, 0.01, 20.0)?,
            bounded("objects.height_m", o.height_m, 0.01, 20.0)?,
        ),
        v2x_id: if v2x_id.is_empty() { None } else { Some(id_string("objects.v2x_id", v2x_id)?) },
    })
}

/// A traffic signal's state from its wire fields.
pub(crate) fn signal_state(s: &wire::SignalState) -> Result<SignalState> {
    Ok(SignalState {
        signal_id: id_string("signals.signal_id", &s.signal_id)?,
        phase: signal_phase_from_wire(s.phase)?,
        remaining_s: f64::from(s.remaining_ms) / 1000.0,
    })
}

// ---------------------------------------------------------------------------------------------
// Session

impl From<&Subscription> for wire::Subscription {
    fn from(s: &Subscription) -> Self {
        use wire::subscription::Region;
        let region = match s {
            Subscription::AroundMe { radius_m } => Region::AroundMe(wire::AroundMe { radius_m: *radius_m }),
            Subscription::Polygon(p) => Region::Polygon(polygon_to_wire(p)),
            Subscription::Everything => Region::Everything(true),
        };
        wire::Subscription { region: Some(region) }
    }
}

impl TryFrom<&wire::Subscription> for Subscription {
    type Error = ConvertError;
    fn try_from(s: &wire::Subscription) -> Result<Self> {
        use wire::subscription::Region;
        Ok(match required("subscription.region", &s.region)? {
            Region::AroundMe(a) => {
                if a.radius_m > 10_000 {
                    return Err(out_of_range("subscription.around_me.radius_m", a.radius_m, "0..=10000 m"));
                }
                Subscription::AroundMe { radius_m: a.radius_m }
            }
            Region::Polygon(p) => Subscription::Polygon(polygon_from_wire("subscription.polygon", p)?),
            Region::Everything(_) => Subscription::Everything,
        })
    }
}

impl From<&ClientHello> for wire::ClientHello {
    fn from(h: &ClientHello) -> Self {
        wire::ClientHello {
            versions: h.versions.iter().map(|v| i32::try_from(*v).unwrap_or(i32::MAX)).collect(),
            role: role_to_wire(h.role) as i32,
            id: h.id.clone(),
            subscription: h.subscription.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<&wire::ClientHello> for ClientHello {
    type Error = ConvertError;
    fn try_from(h: &wire::ClientHello) -> Result<Self> {
        limit("versions", &h.versions, 16)?;
        let role = role_from_wire(h.role)?;
        Ok(ClientHello {
            versions: h.versions.iter().filter_map(|v| u32::try_from(*v).ok()).collect(),
            role,
            id: id_string("id", &h.id)?,
            subscription: h.subscription.as_ref().map(Subscription::try_from).transpose()?,
        })
    }
}

impl From<&ServerHello> for wire::ServerHello {
    fn from(h: &ServerHello) -> Self {
        wire::ServerHello {
            version: i32::try_from(h.version).unwrap_or(0),
            rsu_id: h.rsu_id.clone(),
            site_origin: Some((&h.site_origin).into()),
            broadcast_rate_mhz: q_u32(h.broadcast_rate_hz, 0.001, u32::MAX),
            default_radius_m: h.default_radius_m,
        }
    }
}

impl TryFrom<&wire::ServerHello> for ServerHello {
    type Error = ConvertError;
    fn try_from(h: &wire::ServerHello) -> Result<Self> {
        if !(1..=1_000_000).contains(&h.broadcast_rate_mhz) {
            return Err(out_of_range("broadcast_rate_mhz", h.broadcast_rate_mhz, "1..=1000000 mHz"));
        }
        Ok(ServerHello {
            version: u32::try_from(h.version).map_err(|_| out_of_range("version", h.version, "a known version"))?,
            rsu_id: id_string("rsu_id", &h.rsu_id)?,
            site_origin: Wgs84::try_from(required("site_origin", &h.site_origin)?)?,
            broadcast_rate_hz: f64::from(h.broadcast_rate_mhz) / 1000.0,
            default_radius_m: h.default_radius_m,
        })
    }
}
