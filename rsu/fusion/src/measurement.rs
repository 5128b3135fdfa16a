//! What the core takes in: roadside sensor frames (lidar 3D boxes, camera 2D boxes) and vehicles'
//! V2X self-reports, already validated and converted from the wire.

use nalgebra::{Point2, Point3};
use serde::{Deserialize, Serialize};

use crate::class::{BoxSize, ObjectClass};
use crate::geo::Wgs84;
use crate::time::Timestamp;

/// All detections of one capture of one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorFrame {
    /// The sensor's id (as calibrated).
    pub sensor_id: String,
    /// Per-sensor frame counter; gaps mean lost frames.
    pub sequence: u64,
    /// When the scene was captured.
    pub capture_time: Timestamp,
    /// What was detected.
    pub detections: Detections,
}

/// The detections of a frame, by sensor kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Detections {
    /// Lidar 3D boxes in the sensor frame.
    Lidar(Vec<LidarDetection>),
    /// Camera 2D boxes.
    Camera(CameraDetections),
}

impl Detections {
    /// Number of detections.
    pub fn len(&self) -> usize {
        match self {
            Detections::Lidar(v) => v.len(),
            Detections::Camera(c) => c.boxes.len(),
        }
    }

    /// No detection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A 3D box from a lidar detector, in the lidar frame (x forward, y left, z up).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LidarDetection {
    /// Box centre [m], lidar frame.
    pub center_in_sensor: Point3<f64>,
    /// Box extent [m].
    pub size: BoxSize,
    /// Yaw about the lidar z axis, counter-clockwise from x [rad].
    pub yaw_rad: f64,
    /// Detected class.
    pub class: ObjectClass,
    /// Detector confidence, 0..1.
    pub score: f64,
    /// Lidar points in the box, when reported.
    pub point_count: Option<u32>,
}

/// The 2D boxes of one camera image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraDetections {
    /// Image width the boxes refer to [px].
    pub image_width_px: u32,
    /// Image height [px].
    pub image_height_px: u32,
    /// Detected boxes.
    pub boxes: Vec<CameraDetection>,
}

/// An axis-aligned box in the raw (distorted) image with class scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraDetection {
    /// Top-left corner [px].
    pub min_px: Point2<f64>,
    /// Bottom-right corner [px].
    pub max_px: Point2<f64>,
    /// Class scores (each 0..1, sum at most 1), in any order (detectors usually put the best
    /// first; nothing relies on it, see [`CameraDetection::best_class`]).
    pub class_scores: Vec<(ObjectClass, f64)>,
}

impl CameraDetection {
    /// The best class and its score: the highest score, whatever the order of the list (the
    /// first of equal scores); `(Unknown, 0)` without scores.
    pub fn best_class(&self) -> (ObjectClass, f64) {
        best_score(&self.class_scores)
    }

    /// Bottom-centre pixel: where the object touches the ground.
    pub fn bottom_center_px(&self) -> Point2<f64> {
        Point2::new(0.5 * (self.min_px.x + self.max_px.x), self.max_px.y)
    }
}

/// The highest of `scores` (the first of equal ones), `(Unknown, 0)` for none. A sensor that
/// does not sort its scores must not have its best class, or a low-scoring box, mistaken.
pub fn best_score(scores: &[(ObjectClass, f64)]) -> (ObjectClass, f64) {
    scores.iter().copied().fold((ObjectClass::Unknown, 0.0), |best, s| if s.1 > best.1 { s } else { best })
}

/// A connected vehicle's own state report (BSM-like).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VehicleState {
    /// The vehicle's V2X id.
    pub vehicle_id: String,
    /// Per-vehicle message counter.
    pub message_count: u32,
    /// When the state was measured.
    pub time: Timestamp,
    /// Reference point position (centre of the vehicle at ground level).
    pub position: Wgs84,
    /// Position accuracy, 1 sigma.
    pub accuracy: PositionAccuracy,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading, counter-clockwise from east (site convention) [rad].
    pub yaw_rad: f64,
    /// Steering wheel angle, counter-clockwise positive [rad].
    pub steering_rad: f64,
    /// Yaw rate, counter-clockwise positive [rad/s].
    pub yaw_rate_rps: f64,
    /// Longitudinal acceleration [m/s²].
    pub accel_long_mps2: f64,
    /// Lateral acceleration, left positive [m/s²].
    pub accel_lat_mps2: f64,
    /// Brakes.
    pub brakes: BrakeStatus,
    /// Vehicle dimensions [m].
    pub size: BoxSize,
    /// Vehicle class.
    pub class: ObjectClass,
    /// Driver-assistance functions on.
    pub adas: AdasStatus,
    /// Warnings active now.
    pub warnings: Vec<ActiveWarning>,
    /// Positioning quality.
    pub gnss: GnssStatus,
}

/// Position uncertainty ellipse, 1 sigma.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PositionAccuracy {
    /// Semi-major axis [m].
    pub semi_major_m: f64,
    /// Semi-minor axis [m].
    pub semi_minor_m: f64,
    /// Orientation of the semi-major axis, counter-clockwise from east [rad].
    pub orientation_rad: f64,
}

/// Brake state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BrakeStatus {
    /// Driver is pressing the brake pedal.
    pub pedal_pressed: bool,
    /// ABS is active.
    pub abs_active: bool,
    /// Automatic emergency braking is braking.
    pub aeb_active: bool,
    /// Brake demand, 0..1.
    pub demand: f64,
}

/// Driver-assistance functions switched on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdasStatus {
    /// Adaptive cruise control active.
    pub acc_active: bool,
    /// Forward collision warning enabled.
    pub fcw_enabled: bool,
    /// Automatic emergency braking enabled.
    pub aeb_enabled: bool,
    /// Vulnerable road user warning enabled.
    pub vru_warning_enabled: bool,
    /// Intersection collision warning enabled.
    pub icw_enabled: bool,
    /// The vehicle uses RSU frames.
    pub v2x_active: bool,
}

/// A warning the vehicle shows now.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActiveWarning {
    /// Which warning.
    pub kind: WarningKind,
    /// RSU participant id of the target, 0 when onboard-only.
    pub target_id: u32,
    /// Time to collision [s], `None` when not applicable.
    pub ttc_s: Option<f64>,
}

/// Kinds of driver-assistance warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// Forward collision warning.
    Fcw,
    /// Automatic emergency braking engaged.
    Aeb,
    /// Vulnerable road user collision warning.
    Vrucw,
    /// Intersection collision warning.
    Icw,
    /// Emergency vehicle warning.
    Evw,
}

/// Positioning quality of a self-report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GnssStatus {
    /// Not reported.
    #[default]
    Unknown,
    /// No fix: dead reckoning (in the tunnel).
    DeadReckoning,
    /// Standalone GNSS.
    Standalone,
    /// Differential or RTK float.
    Differential,
    /// RTK fixed.
    RtkFixed,
}
