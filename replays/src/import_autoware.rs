//! Importing Autoware logs: a rosbag2 recording in MCAP, its messages in ROS 2 CDR, becomes a
//! replay log that runs through the same validation as ours.
//!
//! - Each `autoware_perception_msgs/msg/DetectedObjects` topic is one roadside lidar: its
//!   objects become that sensor's lidar detections (box centre, size, yaw in the message's
//!   `header.frame_id`, class of the most probable classification, score =
//!   `existence_probability`), captured at `header.stamp` and arriving at the bag's log time.
//! - An `autoware_perception_msgs/msg/TrackedObjects` topic, when named, is the ground truth:
//!   one id per `object_id` UUID for the whole log, positions, yaw, speed and yaw rate from the
//!   twist, and the shape's dimensions.
//! - A sensor's pose (`world_from_sensor`) comes from a given calibration (a `site.toml` with a
//!   sensor of the frame's name), else from the bag's `/tf_static` (the chain from the frame
//!   up to the world frame, `map` by default), else it is the world frame itself. Its range and
//!   field of view, when not calibrated, are the region its detections cover.
//!
//! The bag is read twice, streaming (poses, frames and time range first), so memory does not
//! grow with its length. A message that does not decode is counted and skipped, never fatal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Point3, Quaternion, Translation3, UnitQuaternion};
use re_cdr::{BigEndian, ByteOrder, LittleEndian};
use rsu_fusion::calibration::GroundModel;
use rsu_fusion::measurement::{Detections, LidarDetection, SensorFrame};
use rsu_fusion::{BoxSize, ObjectClass, SiteConfig, Timestamp, Wgs84};
use serde::de::DeserializeOwned;
use v2x_proto::domain::{GroundTruthFrame, GroundTruthObject, REPLAY_FORMAT_VERSION, ReplayMeta};

use crate::import_dair::{covering_region, imported_lidar};
use crate::{ForeignReader, ReplayError, ReplayWriter};

/// The ROS 2 messages read, as serde types laid out field for field as their `.msg`
/// definitions (ROS 2 Humble and later; `autoware_perception_msgs` 1.x).
pub mod ros {
    use serde::{Deserialize, Serialize};

    /// Schema name of `DetectedObjects`.
    pub const DETECTED_OBJECTS: &str = "autoware_perception_msgs/msg/DetectedObjects";
    /// Schema name of `TrackedObjects`.
    pub const TRACKED_OBJECTS: &str = "autoware_perception_msgs/msg/TrackedObjects";
    /// Schema name of `TFMessage`.
    pub const TF_MESSAGE: &str = "tf2_msgs/msg/TFMessage";

    /// The `ros2msg` definitions of the messages above, as rosbag2 stores them in an MCAP
    /// schema (the message, then each type it uses after a separator line): for writing bags
    /// that ROS 2 tools (and `mcap-ros2-support`) decode with these types.
    pub mod definitions {
        const SEPARATOR: &str = "================================================================================";

        /// The definition text of `root` followed by `dependencies` (`(type name, text)`).
        pub fn concatenated(root: &str, dependencies: &[(&str, &str)]) -> String {
            let mut text = root.trim_end().to_owned();
            for (name, body) in dependencies {
                text.push_str(&format!("\n{SEPARATOR}\nMSG: {name}\n{}", body.trim_end()));
            }
            text.push('\n');
            text
        }

        /// `std_msgs/Header`.
        pub const HEADER: (&str, &str) = ("std_msgs/Header", "builtin_interfaces/Time stamp\nstring frame_id");
        /// `builtin_interfaces/Time`.
        pub const TIME: (&str, &str) = ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec");
        /// `geometry_msgs/*` used here.
        pub const GEOMETRY: [(&str, &str); 10] = [
            ("geometry_msgs/PoseWithCovariance", "Pose pose\nfloat64[36] covariance"),
            ("geometry_msgs/Pose", "Point position\nQuaternion orientation"),
            ("geometry_msgs/Point", "float64 x\nfloat64 y\nfloat64 z"),
            ("geometry_msgs/Quaternion", "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1"),
            ("geometry_msgs/TwistWithCovariance", "Twist twist\nfloat64[36] covariance"),
            ("geometry_msgs/Twist", "Vector3 linear\nVector3 angular"),
            ("geometry_msgs/Vector3", "float64 x\nfloat64 y\nfloat64 z"),
            ("geometry_msgs/AccelWithCovariance", "Accel accel\nfloat64[36] covariance"),
            ("geometry_msgs/Accel", "Vector3 linear\nVector3 angular"),
            ("geometry_msgs/Polygon", "Point32[] points"),
        ];
        /// `geometry_msgs/Point32`.
        pub const POINT32: (&str, &str) = ("geometry_msgs/Point32", "float32 x\nfloat32 y\nfloat32 z");
        /// `autoware_perception_msgs/ObjectClassification`.
        pub const CLASSIFICATION: (&str, &str) = (
            "autoware_perception_msgs/ObjectClassification",
            "uint8 UNKNOWN = 0\nuint8 CAR = 1\nuint8 TRUCK = 2\nuint8 BUS = 3\nuint8 TRAILER = 4\nuint8 MOTORCYCLE = 5\nuint8 BICYCLE = 6\nuint8 PEDESTRIAN = 7\nuint8 label\nfloat32 probability",
        );
        /// `autoware_perception_msgs/Shape`.
        pub const SHAPE: (&str, &str) = (
            "autoware_perception_msgs/Shape",
            "uint8 BOUNDING_BOX = 0\nuint8 CYLINDER = 1\nuint8 POLYGON = 2\nuint8 type\ngeometry_msgs/Polygon footprint\ngeometry_msgs/Vector3 dimensions",
        );

        fn common() -> Vec<(&'static str, &'static str)> {
            let mut v = vec![HEADER, TIME, CLASSIFICATION, SHAPE, POINT32];
            v.extend(GEOMETRY);
            v
        }

        /// `autoware_perception_msgs/msg/DetectedObjects`.
        pub fn detected_objects() -> String {
            let mut deps = vec![
                (
                    "autoware_perception_msgs/DetectedObject",
                    "float32 existence_probability\nObjectClassification[] classification\nDetectedObjectKinematics kinematics\nShape shape",
                ),
                (
                    "autoware_perception_msgs/DetectedObjectKinematics",
                    "uint8 UNAVAILABLE = 0\nuint8 SIGN_UNKNOWN = 1\nuint8 AVAILABLE = 2\ngeometry_msgs/PoseWithCovariance pose_with_covariance\nbool has_position_covariance\nuint8 orientation_availability\ngeometry_msgs/TwistWithCovariance twist_with_covariance\nbool has_twist\nbool has_twist_covariance",
                ),
            ];
            deps.extend(common());
            concatenated("std_msgs/Header header\nDetectedObject[] objects", &deps)
        }

        /// `autoware_perception_msgs/msg/TrackedObjects`.
        pub fn tracked_objects() -> String {
            let mut deps = vec![
                (
                    "autoware_perception_msgs/TrackedObject",
                    "unique_identifier_msgs/UUID object_id\nfloat32 existence_probability\nObjectClassification[] classification\nTrackedObjectKinematics kinematics\nShape shape",
                ),
                ("unique_identifier_msgs/UUID", "uint8[16] uuid"),
                (
                    "autoware_perception_msgs/TrackedObjectKinematics",
                    "uint8 UNAVAILABLE = 0\nuint8 SIGN_UNKNOWN = 1\nuint8 AVAILABLE = 2\ngeometry_msgs/PoseWithCovariance pose_with_covariance\nuint8 orientation_availability\ngeometry_msgs/TwistWithCovariance twist_with_covariance\ngeometry_msgs/AccelWithCovariance acceleration_with_covariance\nbool is_stationary",
                ),
            ];
            deps.extend(common());
            concatenated("std_msgs/Header header\nTrackedObject[] objects", &deps)
        }

        /// `tf2_msgs/msg/TFMessage`.
        pub fn tf_message() -> String {
            let deps = [
                (
                    "geometry_msgs/TransformStamped",
                    "std_msgs/Header header\nstring child_frame_id\nTransform transform",
                ),
                ("geometry_msgs/Transform", "Vector3 translation\nQuaternion rotation"),
                HEADER,
                TIME,
                ("geometry_msgs/Vector3", "float64 x\nfloat64 y\nfloat64 z"),
                ("geometry_msgs/Quaternion", "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1"),
            ];
            concatenated("geometry_msgs/TransformStamped[] transforms", &deps)
        }
    }

    /// `builtin_interfaces/Time`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Time {
        /// Seconds.
        pub sec: i32,
        /// Nanoseconds, 0..1e9.
        pub nanosec: u32,
    }

    /// `std_msgs/Header`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Header {
        /// Time of the data.
        pub stamp: Time,
        /// Frame of the data.
        pub frame_id: String,
    }

    /// `geometry_msgs/Vector3` and `geometry_msgs/Point` (same layout).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Vector3 {
        /// x.
        pub x: f64,
        /// y.
        pub y: f64,
        /// z.
        pub z: f64,
    }

    /// `geometry_msgs/Quaternion`.
    #[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Quaternion {
        /// x.
        pub x: f64,
        /// y.
        pub y: f64,
        /// z.
        pub z: f64,
        /// w.
        pub w: f64,
    }

    impl Default for Quaternion {
        fn default() -> Self {
            Quaternion { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
        }
    }

    /// `geometry_msgs/Pose`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Pose {
        /// Position.
        pub position: Vector3,
        /// Orientation.
        pub orientation: Quaternion,
    }

    /// A `float64[36]` covariance (row-major 6x6). Serde derives arrays up to 32 elements, so it
    /// is two arrays back to back: CDR writes a fixed array's elements with no length, so the
    /// bytes are those of `float64[36]`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Covariance6(pub [f64; 32], pub [f64; 4]);

    /// `geometry_msgs/PoseWithCovariance`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct PoseWithCovariance {
        /// Pose.
        pub pose: Pose,
        /// Covariance.
        pub covariance: Covariance6,
    }

    /// `geometry_msgs/Twist` (and `Accel`: same layout).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Twist {
        /// Linear [m/s] (object frame in Autoware).
        pub linear: Vector3,
        /// Angular [rad/s].
        pub angular: Vector3,
    }

    /// `geometry_msgs/TwistWithCovariance` (and `AccelWithCovariance`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TwistWithCovariance {
        /// Twist.
        pub twist: Twist,
        /// Covariance.
        pub covariance: Covariance6,
    }

    /// `geometry_msgs/Point32`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Point32 {
        /// x.
        pub x: f32,
        /// y.
        pub y: f32,
        /// z.
        pub z: f32,
    }

    /// `autoware_perception_msgs/ObjectClassification`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct ObjectClassification {
        /// UNKNOWN 0, CAR 1, TRUCK 2, BUS 3, TRAILER 4, MOTORCYCLE 5, BICYCLE 6, PEDESTRIAN 7.
        pub label: u8,
        /// Probability.
        pub probability: f32,
    }

    /// `autoware_perception_msgs/Shape`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Shape {
        /// BOUNDING_BOX 0, CYLINDER 1, POLYGON 2.
        #[serde(rename = "type")]
        pub kind: u8,
        /// `geometry_msgs/Polygon` footprint.
        pub footprint: Vec<Point32>,
        /// Length (x), width (y), height (z) [m].
        pub dimensions: Vector3,
    }

    /// `autoware_perception_msgs/DetectedObjectKinematics`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct DetectedObjectKinematics {
        /// Pose in the header's frame.
        pub pose_with_covariance: PoseWithCovariance,
        /// Whether the covariance is set.
        pub has_position_covariance: bool,
        /// UNAVAILABLE 0, SIGN_UNKNOWN 1, AVAILABLE 2.
        pub orientation_availability: u8,
        /// Twist.
        pub twist_with_covariance: TwistWithCovariance,
        /// Whether the twist is set.
        pub has_twist: bool,
        /// Whether its covariance is set.
        pub has_twist_covariance: bool,
    }

    /// `autoware_perception_msgs/DetectedObject`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct DetectedObject {
        /// Existence probability.
        pub existence_probability: f32,
        /// Classifications.
        pub classification: Vec<ObjectClassification>,
        /// Kinematics.
        pub kinematics: DetectedObjectKinematics,
        /// Shape.
        pub shape: Shape,
    }

    /// `autoware_perception_msgs/DetectedObjects`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct DetectedObjects {
        /// Header.
        pub header: Header,
        /// Objects.
        pub objects: Vec<DetectedObject>,
    }

    /// `autoware_perception_msgs/TrackedObjectKinematics`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TrackedObjectKinematics {
        /// Pose in the header's frame.
        pub pose_with_covariance: PoseWithCovariance,
        /// UNAVAILABLE 0, SIGN_UNKNOWN 1, AVAILABLE 2.
        pub orientation_availability: u8,
        /// Twist.
        pub twist_with_covariance: TwistWithCovariance,
        /// Acceleration (`geometry_msgs/AccelWithCovariance`).
        pub acceleration_with_covariance: TwistWithCovariance,
        /// Whether the object stands still.
        pub is_stationary: bool,
    }

    /// `autoware_perception_msgs/TrackedObject`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TrackedObject {
        /// `unique_identifier_msgs/UUID`.
        pub object_id: [u8; 16],
        /// Existence probability.
        pub existence_probability: f32,
        /// Classifications.
        pub classification: Vec<ObjectClassification>,
        /// Kinematics.
        pub kinematics: TrackedObjectKinematics,
        /// Shape.
        pub shape: Shape,
    }

    /// `autoware_perception_msgs/TrackedObjects`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TrackedObjects {
        /// Header.
        pub header: Header,
        /// Objects.
        pub objects: Vec<TrackedObject>,
    }

    /// `geometry_msgs/Transform`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct Transform {
        /// Translation.
        pub translation: Vector3,
        /// Rotation.
        pub rotation: Quaternion,
    }

    /// `geometry_msgs/TransformStamped`: `child_frame_id` in `header.frame_id`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TransformStamped {
        /// Header (the parent frame).
        pub header: Header,
        /// The child frame.
        pub child_frame_id: String,
        /// Parent from child.
        pub transform: Transform,
    }

    /// `tf2_msgs/TFMessage`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    pub struct TfMessage {
        /// Transforms.
        pub transforms: Vec<TransformStamped>,
    }
}

/// Import options.
#[derive(Clone, Debug)]
pub struct AutowareOptions {
    /// `DetectedObjects` topics to import as sensors (empty: every one in the bag).
    pub detections: Vec<String>,
    /// The `TrackedObjects` topic that is the ground truth, if any.
    pub truth: Option<String>,
    /// A calibration whose sensors (by frame name) give poses, coverage and noise, and whose
    /// origin is the site's.
    pub calibration: Option<SiteConfig>,
    /// WGS84 origin of the world frame, without a calibration.
    pub origin: Wgs84,
    /// The world (site) frame of the bag's tf tree.
    pub world_frame: String,
    /// Scenario name written into the log.
    pub scenario: String,
    /// Position noise the imported lidars declare, 1 sigma [m] (without a calibration).
    pub position_sigma_m: f64,
}

impl Default for AutowareOptions {
    fn default() -> Self {
        AutowareOptions {
            detections: Vec::new(),
            truth: None,
            calibration: None,
            origin: Wgs84::new(0.0, 0.0, 0.0),
            world_frame: "map".into(),
            scenario: "autoware-import".into(),
            position_sigma_m: 0.2,
        }
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum AutowareError {
    /// The bag cannot be read.
    #[error(transparent)]
    Read(#[from] Box<ReplayError>),
    /// The log cannot be written.
    #[error("writing the log: {0}")]
    Write(Box<ReplayError>),
    /// A named topic is missing or carries another message type.
    #[error("{topic}: {problem}")]
    Topic {
        /// The topic.
        topic: String,
        /// What is wrong.
        problem: String,
    },
    /// A sensor frame has no pose.
    #[error(
        "no pose for frame {frame:?} (topic {topic}): give a calibration with a sensor of that id, or record /tf_static from it to {world:?}"
    )]
    NoPose {
        /// The frame.
        frame: String,
        /// Its topic.
        topic: String,
        /// The world frame.
        world: String,
    },
    /// The bag holds nothing to import.
    #[error("{0} holds no decodable autoware_perception_msgs/msg/DetectedObjects message")]
    Empty(PathBuf),
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct AutowareSummary {
    /// Sensors (id, topic), with where each pose came from.
    pub sensors: Vec<(String, String, &'static str)>,
    /// Sensor frames written.
    pub frames: u64,
    /// Detections written.
    pub detections: u64,
    /// Ground-truth frames written.
    pub truth_frames: u64,
    /// Messages skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
}

/// Decodes a ROS 2 CDR message: the 4-byte encapsulation header (`00 01` little-endian, `00 00`
/// big-endian, then two option bytes) and the body.
pub fn decode_cdr<T: DeserializeOwned>(data: &[u8]) -> Result<T, String> {
    let (header, body) = data.split_at_checked(4).ok_or("shorter than the CDR encapsulation header")?;
    let result = match header[..2] {
        [0x00, 0x01] => re_cdr::from_bytes::<T, LittleEndian>(body),
        [0x00, 0x00] => re_cdr::from_bytes::<T, BigEndian>(body),
        _ => return Err(format!("encapsulation {:02x}{:02x} is not plain CDR", header[0], header[1])),
    };
    result.map(|(value, _)| value).map_err(|e| e.to_string())
}

/// Encodes a ROS 2 CDR message, little-endian with its encapsulation header (as rosbag2
/// records them): for tests and tools that write bags.
pub fn encode_cdr<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    encode_cdr_as::<T, LittleEndian>(value, [0x00, 0x01])
}

fn encode_cdr_as<T: serde::Serialize, B: ByteOrder>(value: &T, header: [u8; 2]) -> Result<Vec<u8>, String> {
    let body = re_cdr::to_vec::<T, B>(value).map_err(|e| e.to_string())?;
    Ok([&header[..], &[0, 0], &body].concat())
}

fn time_of(t: ros::Time) -> Timestamp {
    Timestamp::from_nanos(i64::from(t.sec) * 1_000_000_000 + i64::from(t.nanosec.min(999_999_999)))
}

fn isometry(translation: ros::Vector3, rotation: ros::Quaternion) -> Option<Isometry3<f64>> {
    let q = Quaternion::new(rotation.w, rotation.x, rotation.y, rotation.z);
    let finite = [translation.x, translation.y, translation.z, q.w, q.i, q.j, q.k].iter().all(|v| v.is_finite());
    if !finite || q.norm() < 1e-6 {
        return None;
    }
    Some(Isometry3::from_parts(
        Translation3::new(translation.x, translation.y, translation.z),
        UnitQuaternion::from_quaternion(q),
    ))
}

/// Our class for an Autoware label.
fn class_of(label: u8) -> ObjectClass {
    match label {
        1 => ObjectClass::Car,
        2 | 4 => ObjectClass::Truck,
        3 => ObjectClass::Bus,
        5 => ObjectClass::Motorcyclist,
        6 => ObjectClass::Cyclist,
        7 => ObjectClass::Pedestrian,
        _ => ObjectClass::Unknown,
    }
}

/// The most probable classification's class.
fn best_class(classes: &[ros::ObjectClassification]) -> ObjectClass {
    classes
        .iter()
        .filter(|c| c.probability.is_finite())
        .max_by(|a, b| a.probability.total_cmp(&b.probability))
        .map_or(ObjectClass::Unknown, |c| class_of(c.label))
}

/// A box: centre, yaw and size in some frame, when every number is usable.
fn box_of(pose: &ros::Pose, dimensions: ros::Vector3) -> Option<(Point3<f64>, f64, BoxSize)> {
    let p = pose.position;
    let q = pose.orientation;
    let yaw_rad = (2.0 * (q.w * q.z + q.x * q.y)).atan2(1.0 - 2.0 * (q.y * q.y + q.z * q.z));
    let size = BoxSize { length_m: dimensions.x, width_m: dimensions.y, height_m: dimensions.z };
    let usable = [p.x, p.y, p.z, yaw_rad].iter().all(|v| v.is_finite())
        && [size.length_m, size.width_m, size.height_m].iter().all(|v| v.is_finite() && *v >= 0.0 && *v < 100.0);
    usable.then(|| (Point3::new(p.x, p.y, p.z), yaw_rad, size))
}

/// The world-frame pose of `frame` through the tf tree `parents` (child → (parent, parent from
/// child)), at most 16 hops.
fn world_from(
    frame: &str,
    world: &str,
    parents: &BTreeMap<String, (String, Isometry3<f64>)>,
) -> Option<Isometry3<f64>> {
    let mut pose = Isometry3::identity();
    let mut at = frame;
    for _ in 0..16 {
        if at == world {
            return Some(pose);
        }
        let (parent, parent_from_child) = parents.get(at)?;
        pose = parent_from_child * pose;
        at = parent;
    }
    None
}

/// A frame name as a sensor id (it names a topic of ours: no `/`, at most 64 bytes).
fn sensor_id(frame: &str) -> String {
    let id: String =
        frame.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let id = id.trim_matches('-');
    if id.is_empty() { "autoware-lidar".into() } else { id.chars().take(64).collect() }
}

/// What the first pass learns.
#[derive(Default)]
struct Survey {
    /// Detection topic → frame id of its first decodable message.
    frames: BTreeMap<String, String>,
    /// Detection topic → its objects' centres (in its frame), for the coverage.
    centres: BTreeMap<String, Vec<Point3<f64>>>,
    /// Child → (parent, parent from child), from `/tf_static`.
    parents: BTreeMap<String, (String, Isometry3<f64>)>,
    /// Frame of the truth topic.
    truth_frame: Option<String>,
    /// Schema of each topic.
    schemas: BTreeMap<String, String>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

/// Most object centres kept per sensor for its coverage (a sample: enough for the extent).
const MAX_COVERAGE_POINTS: usize = 20_000;

fn schema_name<'a>(message: &'a mcap::Message<'_>) -> &'a str {
    message.channel.schema.as_ref().map_or("", |s| s.name.as_str())
}

fn count(summary: &mut AutowareSummary, reason: &str) {
    *summary.skipped.entry(reason.to_owned()).or_default() += 1;
}

fn survey(path: &Path, options: &AutowareOptions, summary: &mut AutowareSummary) -> Result<Survey, AutowareError> {
    let mut s = Survey::default();
    for message in ForeignReader::open(path).map_err(Box::new)? {
        let message = message.map_err(Box::new)?;
        let topic = message.channel.topic.clone();
        let schema = schema_name(&message).to_owned();
        s.schemas.entry(topic.clone()).or_insert_with(|| schema.clone());
        let wanted = options.detections.is_empty() || options.detections.contains(&topic);
        if schema == ros::DETECTED_OBJECTS && wanted {
            let Ok(m) = decode_cdr::<ros::DetectedObjects>(&message.data) else { continue };
            s.frames.entry(topic.clone()).or_insert_with(|| m.header.frame_id.clone());
            let centres = s.centres.entry(topic).or_default();
            for o in &m.objects {
                let p = o.kinematics.pose_with_covariance.pose.position;
                if centres.len() < MAX_COVERAGE_POINTS && [p.x, p.y, p.z].iter().all(|v| v.is_finite()) {
                    centres.push(Point3::new(p.x, p.y, p.z));
                }
            }
            let t = time_of(m.header.stamp);
            s.first = Some(s.first.map_or(t, |f| f.min(t)));
            s.last = Some(s.last.map_or(t, |l| l.max(t)));
        } else if schema == ros::TRACKED_OBJECTS && options.truth.as_deref() == Some(topic.as_str()) {
            if let Ok(m) = decode_cdr::<ros::TrackedObjects>(&message.data) {
                s.truth_frame.get_or_insert(m.header.frame_id);
            }
        } else if schema == ros::TF_MESSAGE && topic == "/tf_static" {
            let Ok(m) = decode_cdr::<ros::TfMessage>(&message.data) else {
                count(summary, "undecodable /tf_static");
                continue;
            };
            for t in m.transforms {
                if let Some(pose) = isometry(t.transform.translation, t.transform.rotation) {
                    s.parents.insert(t.child_frame_id, (t.header.frame_id, pose));
                }
            }
        }
    }
    Ok(s)
}

/// Imports the rosbag2 MCAP `bag` into the replay log `out`.
pub fn import_autoware(bag: &Path, out: &Path, options: &AutowareOptions) -> Result<AutowareSummary, AutowareError> {
    let mut summary = AutowareSummary::default();
    let survey = survey(bag, options, &mut summary)?;
    for topic in options.detections.iter().chain(&options.truth) {
        let want = if options.truth.as_ref() == Some(topic) { ros::TRACKED_OBJECTS } else { ros::DETECTED_OBJECTS };
        match survey.schemas.get(topic) {
            None => return Err(AutowareError::Topic { topic: topic.clone(), problem: "not in the bag".into() }),
            Some(s) if s != want => {
                return Err(AutowareError::Topic { topic: topic.clone(), problem: format!("carries {s}, not {want}") });
            }
            Some(_) => {}
        }
    }
    let (Some(first), Some(last)) = (survey.first, survey.last) else {
        return Err(AutowareError::Empty(bag.to_owned()));
    };

    // One sensor per detection topic, with its pose.
    let calibrated = |id: &str| options.calibration.as_ref().and_then(|c| c.sensors.iter().find(|s| s.id == id));
    let mut sensors = Vec::new();
    let mut topic_sensor: BTreeMap<String, (String, Isometry3<f64>)> = BTreeMap::new();
    for (topic, frame) in &survey.frames {
        let id = sensor_id(frame);
        if topic_sensor.values().any(|(other, _)| *other == id) {
            return Err(AutowareError::Topic {
                topic: topic.clone(),
                problem: format!("a second detection topic in frame {frame:?}: import one of them (--detections)"),
            });
        }
        let (calibration, source) = match calibrated(&id) {
            Some(c) => (c.clone(), "calibration"),
            None => {
                let (pose, source) = match world_from(frame, &options.world_frame, &survey.parents) {
                    Some(pose) if frame == &options.world_frame => (pose, "world frame"),
                    Some(pose) => (pose, "/tf_static"),
                    None => {
                        return Err(AutowareError::NoPose {
                            frame: frame.clone(),
                            topic: topic.clone(),
                            world: options.world_frame.clone(),
                        });
                    }
                };
                let centres = survey.centres.get(topic).map_or(&[][..], |c| &c[..]);
                let region = covering_region(centres.iter().copied());
                (imported_lidar(&id, pose, region, options.position_sigma_m), source)
            }
        };
        summary.sensors.push((id.clone(), topic.clone(), source));
        topic_sensor.insert(topic.clone(), (id, calibration.world_from_sensor));
        sensors.push(calibration);
    }
    let world_from_truth = match &survey.truth_frame {
        Some(frame) => match world_from(frame, &options.world_frame, &survey.parents) {
            Some(pose) => Some(pose),
            None => {
                return Err(AutowareError::NoPose {
                    frame: frame.clone(),
                    topic: options.truth.clone().unwrap_or_default(),
                    world: options.world_frame.clone(),
                });
            }
        },
        None => None,
    };
    let site = SiteConfig {
        site_id: "autoware-import".into(),
        name: format!("imported from {}", bag.display()),
        origin: options.calibration.as_ref().map_or(options.origin, |c| c.origin),
        representative: false,
        ground: options.calibration.as_ref().map_or_else(|| GroundModel::flat(0.0), |c| c.ground.clone()),
        sensors,
    };
    let meta = ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: concat!("v2x-replays ", env!("CARGO_PKG_VERSION")).into(),
        scenario: options.scenario.clone(),
        description: format!(
            "Imported from the Autoware rosbag2 {}: detections of {} as roadside lidars{}.",
            bag.display(),
            survey.frames.keys().cloned().collect::<Vec<_>>().join(", "),
            options.truth.as_ref().map_or_else(|| ", no ground truth".to_owned(), |t| format!(", {t} as ground truth"))
        ),
        seed: 0,
        site,
        rsu_ids: vec![],
        start_time: first,
        end_time: last,
        truth_ids_per_frame: false,
    };

    let mut writer = ReplayWriter::create(out, &meta).map_err(|e| AutowareError::Write(Box::new(e)))?;
    let mut sequences: BTreeMap<String, u64> = BTreeMap::new();
    let mut truth_ids: BTreeMap<[u8; 16], u32> = BTreeMap::new();
    for message in ForeignReader::open(bag).map_err(Box::new)? {
        let message = message.map_err(Box::new)?;
        let topic = message.channel.topic.as_str();
        let arrival = Timestamp::from_nanos(i64::try_from(message.log_time).unwrap_or(i64::MAX));
        if let Some((id, _)) = topic_sensor.get(topic) {
            let Ok(m) = decode_cdr::<ros::DetectedObjects>(&message.data) else {
                count(&mut summary, "undecodable DetectedObjects");
                continue;
            };
            let mut detections = Vec::with_capacity(m.objects.len().min(rsu_fusion::broadcast::MAX_PARTICIPANTS));
            for o in m.objects.iter().take(rsu_fusion::broadcast::MAX_PARTICIPANTS) {
                let Some((center_in_sensor, yaw_rad, size)) =
                    box_of(&o.kinematics.pose_with_covariance.pose, o.shape.dimensions)
                else {
                    count(&mut summary, "detected object with unusable numbers");
                    continue;
                };
                let score = f64::from(o.existence_probability);
                detections.push(LidarDetection {
                    center_in_sensor,
                    size,
                    yaw_rad,
                    class: best_class(&o.classification),
                    score: if score.is_finite() { score.clamp(0.0, 1.0) } else { 0.0 },
                    point_count: None,
                });
            }
            let sequence = sequences.entry(id.clone()).or_default();
            *sequence += 1;
            summary.frames += 1;
            summary.detections += detections.len() as u64;
            let frame = SensorFrame {
                sensor_id: id.clone(),
                sequence: *sequence,
                capture_time: time_of(m.header.stamp),
                detections: Detections::Lidar(detections),
            };
            // The bag's log time is when the message reached the recorder: its arrival.
            writer
                .write_sensor_frame_at(&frame, arrival.max(frame.capture_time))
                .map_err(|e| AutowareError::Write(Box::new(e)))?;
        } else if options.truth.as_deref() == Some(topic) {
            let Some(world_from_truth) = world_from_truth else { continue };
            let Ok(m) = decode_cdr::<ros::TrackedObjects>(&message.data) else {
                count(&mut summary, "undecodable TrackedObjects");
                continue;
            };
            let yaw_offset_rad = world_from_truth.rotation.euler_angles().2;
            let mut objects = Vec::with_capacity(m.objects.len().min(rsu_fusion::broadcast::MAX_PARTICIPANTS));
            for o in m.objects.iter().take(rsu_fusion::broadcast::MAX_PARTICIPANTS) {
                let kinematics = &o.kinematics;
                let Some((centre, yaw_rad, size)) = box_of(&kinematics.pose_with_covariance.pose, o.shape.dimensions)
                else {
                    count(&mut summary, "tracked object with unusable numbers");
                    continue;
                };
                let next = truth_ids.len() as u32 + 1;
                let id = *truth_ids.entry(o.object_id).or_insert(next);
                let twist = kinematics.twist_with_covariance.twist;
                let speed_mps = twist.linear.x.hypot(twist.linear.y);
                objects.push(GroundTruthObject {
                    id,
                    class: best_class(&o.classification),
                    center_m: world_from_truth.transform_point(&centre),
                    yaw_rad: yaw_rad + yaw_offset_rad,
                    speed_mps: if speed_mps.is_finite() { speed_mps } else { 0.0 },
                    yaw_rate_rps: if twist.angular.z.is_finite() { twist.angular.z } else { 0.0 },
                    accel_mps2: 0.0,
                    size,
                    v2x_id: None,
                });
            }
            summary.truth_frames += 1;
            let truth = GroundTruthFrame { time: time_of(m.header.stamp), objects, signals: Vec::new() };
            writer.write_ground_truth(&truth).map_err(|e| AutowareError::Write(Box::new(e)))?;
        }
    }
    writer.finish().map_err(|e| AutowareError::Write(Box::new(e)))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_through_cdr_in_both_byte_orders() {
        let m = ros::DetectedObjects {
            header: ros::Header { stamp: ros::Time { sec: 17, nanosec: 5 }, frame_id: "lidar_ne".into() },
            objects: vec![ros::DetectedObject {
                existence_probability: 0.8,
                classification: vec![ros::ObjectClassification { label: 7, probability: 0.9 }],
                ..Default::default()
            }],
        };
        let le = encode_cdr(&m).expect("encode");
        assert_eq!(le[..4], [0, 1, 0, 0]);
        assert_eq!(decode_cdr::<ros::DetectedObjects>(&le), Ok(m.clone()));
        let be = encode_cdr_as::<_, BigEndian>(&m, [0, 0]).expect("encode");
        assert_ne!(be, le);
        assert_eq!(decode_cdr::<ros::DetectedObjects>(&be), Ok(m));
        assert!(decode_cdr::<ros::DetectedObjects>(&le[..le.len() - 3]).is_err());
        assert!(decode_cdr::<ros::DetectedObjects>(&[0, 1]).is_err());
        assert!(decode_cdr::<ros::DetectedObjects>(&[0, 7, 0, 0, 1, 2, 3, 4]).is_err());
    }

    #[test]
    fn a_frame_is_placed_through_the_tf_chain() {
        let mut parents = BTreeMap::new();
        let yaw90 =
            ros::Quaternion { x: 0.0, y: 0.0, z: std::f64::consts::FRAC_1_SQRT_2, w: std::f64::consts::FRAC_1_SQRT_2 };
        let pole = isometry(ros::Vector3 { x: 10.0, y: 0.0, z: 0.0 }, yaw90).expect("pose");
        let lidar = isometry(ros::Vector3 { x: 0.0, y: 0.0, z: 5.0 }, ros::Quaternion::default()).expect("pose");
        parents.insert("pole".to_owned(), ("map".to_owned(), pole));
        parents.insert("lidar".to_owned(), ("pole".to_owned(), lidar));
        let world_from_lidar = world_from("lidar", "map", &parents).expect("chain");
        let p = world_from_lidar.transform_point(&Point3::new(1.0, 0.0, 0.0));
        assert!((p - Point3::new(10.0, 1.0, 5.0)).norm() < 1e-9, "{p}");
        assert!(world_from("camera", "map", &parents).is_none());
        // A loop ends.
        parents.insert("map".to_owned(), ("lidar".to_owned(), lidar));
        assert!(world_from("pole", "nowhere", &parents).is_none());
    }

    #[test]
    fn classes_and_boxes_are_read_with_their_limits() {
        let c = |label, probability| ros::ObjectClassification { label, probability };
        assert_eq!(best_class(&[c(1, 0.3), c(7, 0.6), c(3, f32::NAN)]), ObjectClass::Pedestrian);
        assert_eq!(best_class(&[]), ObjectClass::Unknown);
        let yaw90 =
            ros::Quaternion { x: 0.0, y: 0.0, z: std::f64::consts::FRAC_1_SQRT_2, w: std::f64::consts::FRAC_1_SQRT_2 };
        let pose = ros::Pose { position: ros::Vector3 { x: 1.0, y: 2.0, z: 0.5 }, orientation: yaw90 };
        let (centre, yaw, size) = box_of(&pose, ros::Vector3 { x: 4.5, y: 1.8, z: 1.5 }).expect("box");
        assert_eq!(centre, Point3::new(1.0, 2.0, 0.5));
        assert!((yaw - std::f64::consts::FRAC_PI_2).abs() < 1e-9);
        assert_eq!(size.length_m, 4.5);
        assert!(box_of(&pose, ros::Vector3 { x: f64::NAN, y: 1.0, z: 1.0 }).is_none());
        assert!(box_of(&pose, ros::Vector3 { x: -1.0, y: 1.0, z: 1.0 }).is_none());
        assert_eq!(sensor_id("lidar/ne front"), "lidar-ne-front");
        assert_eq!(sensor_id("//"), "autoware-lidar");
    }
}
