//! Import of DAIR-V2X / V2X-Seq infrastructure-side annotations into a replay log, and the
//! writer of annotated scenes ([`write_scene`]) that the OpenLABEL import shares.
//!
//! Input (facts of the published format): `data_info.json` is an array of frames, each naming its
//! `label_lidar_std_path` (a JSON array of objects with `type`, `3d_dimensions {h, w, l}`,
//! `3d_location {x, y, z}` (box centre, virtual-lidar frame), `rotation` (yaw about z [rad]) and,
//! in V2X-Seq, `track_id`), its `calib_virtuallidar_to_world_path` (`rotation` 3×3, `translation`
//! 3×1) and its `pointcloud_timestamp`. Numbers may be JSON numbers or strings.
//!
//! Calibration: DAIR-V2X-C re-estimates `virtuallidar_to_world` for every frame of the same lidar,
//! so the frames' calibrations differ by centimetres and about 0.1°. The log declares one
//! calibration per sensor: the mean of the frames' ([`mean_pose`]), each frame's calibration
//! must lie within [`DairOptions::calib_tolerance_m`] and [`DairOptions::calib_tolerance_deg`]
//! of it, and each frame's labels are placed in the world with that frame's own calibration,
//! then expressed in the sensor frame of the mean one (world positions are what the frame's
//! calibration says; the sensor frame is the log's).
//!
//! Identities: DAIR-V2X-C labels carry no track ids, V2X-Seq labels do (`track_id`). Without
//! them every frame's objects get ids of their own and the log says so
//! (`ReplayMeta::truth_ids_per_frame`), so scoring leaves out the identity metrics.
//!
//! Output: a log whose `/ground_truth` is the labels in the world frame (used as the site frame)
//! and whose `/sensors/dair-lidar` frames are the labels passed through a seeded noise model
//! (position and yaw noise, missed detections), so real annotated scenes can be replayed and
//! scored. Every rejection names the file and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Matrix3, Point3, Rotation3, Translation3, UnitQuaternion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rsu_fusion::calibration::{GroundModel, LidarNoise, heading_through};
use rsu_fusion::measurement::{Detections, LidarDetection, SensorFrame};
use rsu_fusion::{BoxSize, ObjectClass, SensorCalibration, SensorModel, SiteConfig, Timestamp, Wgs84};
use serde_json::Value;
use v2x_proto::domain::{GroundTruthFrame, GroundTruthObject, REPLAY_FORMAT_VERSION, ReplayMeta};

use crate::{ReplayError, ReplayWriter};

/// Id of the sensor the imported detections are attributed to.
pub const SENSOR_ID: &str = "dair-lidar";

/// Most frames imported from one dataset folder.
pub const MAX_FRAMES: usize = 100_000;

/// Import options.
#[derive(Clone, Debug)]
pub struct DairOptions {
    /// WGS84 origin of the dataset's world frame (the dataset does not publish one).
    pub origin: Wgs84,
    /// Seed of the noise model.
    pub seed: u64,
    /// Detection position noise, 1 sigma [m].
    pub position_sigma_m: f64,
    /// Detection yaw noise, 1 sigma [rad].
    pub yaw_sigma_rad: f64,
    /// Probability that a labelled object is not detected in a frame.
    pub miss_probability: f64,
    /// Scenario name written into the log.
    pub scenario: String,
    /// Longest gap in an object's labels bridged in the ground truth [s]: an object labelled
    /// before and after a gap this short was there, hidden, in between (annotators label what
    /// the lidar sees; a tracker keeps a hidden object, and scoring it against truth without the
    /// object would count that as a false positive). Objects with track ids are interpolated;
    /// without ids only static classes (traffic cones, obstacles), linked by position
    /// ([`STATIC_LINK_M`]). Bridged objects are ground truth only, never detections. 0: off.
    pub fill_gaps_s: f64,
    /// Largest distance of a frame's lidar position from the mean of all frames' [m].
    pub calib_tolerance_m: f64,
    /// Largest rotation of a frame's lidar orientation from the mean of all frames' [deg].
    pub calib_tolerance_deg: f64,
}

/// Default [`DairOptions::fill_gaps_s`] [s]: a car or a bus passing in front of a cone hides it
/// for a second or two.
pub const DEFAULT_FILL_GAPS_S: f64 = 3.0;

/// Two labels of a static class (cone, obstacle) in different frames closer than this are one
/// object [m]: above the frame-to-frame jitter of a label, below the spacing of a row of cones.
pub const STATIC_LINK_M: f64 = 0.5;

/// Margins added to the region the labels cover to get the sensor's declared coverage: range
/// [m] and angles [deg].
const COVERAGE_MARGIN_M: f64 = 2.0;
const COVERAGE_MARGIN_DEG: f64 = 2.0;

/// Default [`DairOptions::calib_tolerance_m`] [m]: a few times the spread of the per-frame
/// re-estimates of one DAIR-V2X-C lidar (a few centimetres), far below the distance between two
/// installations (metres).
pub const DEFAULT_CALIB_TOLERANCE_M: f64 = 0.2;

/// Default [`DairOptions::calib_tolerance_deg`] [deg]: a few times the spread of the per-frame
/// re-estimates of one lidar (about 0.1°), far below the difference between two installations.
pub const DEFAULT_CALIB_TOLERANCE_DEG: f64 = 0.5;

impl Default for DairOptions {
    fn default() -> Self {
        DairOptions {
            origin: Wgs84::new(0.0, 0.0, 0.0),
            seed: 0,
            position_sigma_m: 0.15,
            yaw_sigma_rad: 0.05,
            miss_probability: 0.05,
            scenario: "dair-v2x-import".into(),
            fill_gaps_s: DEFAULT_FILL_GAPS_S,
            calib_tolerance_m: DEFAULT_CALIB_TOLERANCE_M,
            calib_tolerance_deg: DEFAULT_CALIB_TOLERANCE_DEG,
        }
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file is not valid JSON.
    #[error("{path}: invalid JSON: {cause}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: serde_json::Error,
    },
    /// A field is missing or malformed.
    #[error("{path}: {field}: {problem}")]
    Field {
        /// The file.
        path: PathBuf,
        /// The field (JSON path).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A frame's calibration is too far from the mean of all frames': another lidar or a broken
    /// re-estimate.
    #[error(
        "{path}: frame {frame} (pointcloud_timestamp {time}): virtuallidar_to_world is {translation_m:.3} m and \
         {rotation_deg:.3}° from the mean of all {frames} frames' (tolerance {tolerance_m} m, {tolerance_deg}°): \
         import one intersection (one lidar) at a time, or raise the tolerance"
    )]
    Calibration {
        /// The frame's calibration file.
        path: PathBuf,
        /// The frame's place in `data_info.json`.
        frame: usize,
        /// The frame's time.
        time: Timestamp,
        /// Frames imported.
        frames: usize,
        /// Distance of the frame's lidar position from the mean [m].
        translation_m: f64,
        /// Rotation of the frame's lidar orientation from the mean [deg].
        rotation_deg: f64,
        /// The tolerance [m].
        tolerance_m: f64,
        /// The tolerance [deg].
        tolerance_deg: f64,
    },
    /// The options are invalid.
    #[error("invalid import options: {0}")]
    Options(String),
    /// Writing the log failed.
    #[error(transparent)]
    Write(#[from] ReplayError),
}

pub(crate) fn read_json(path: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ImportError::Io { path: path.to_owned(), cause })?;
    serde_json::from_str(&text).map_err(|cause| ImportError::Json { path: path.to_owned(), cause })
}

pub(crate) fn field_err(path: &Path, field: impl Into<String>, problem: impl Into<String>) -> ImportError {
    ImportError::Field { path: path.to_owned(), field: field.into(), problem: problem.into() }
}

/// A number that may be written as a JSON number or a string.
pub(crate) fn number(path: &Path, v: &Value, field: &str) -> Result<f64, ImportError> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| field_err(path, field, format!("expected a number, found {v}")))?;
    if n.is_finite() { Ok(n) } else { Err(field_err(path, field, "not finite")) }
}

fn class_of(name: &str) -> ObjectClass {
    match name.to_ascii_lowercase().as_str() {
        "car" => ObjectClass::Car,
        // The dataset's own documentation spells the class "Trunk".
        "truck" | "trunk" => ObjectClass::Truck,
        "van" => ObjectClass::Van,
        "bus" => ObjectClass::Bus,
        "pedestrian" => ObjectClass::Pedestrian,
        "cyclist" => ObjectClass::Cyclist,
        "tricyclist" => ObjectClass::Tricyclist,
        "motorcyclist" => ObjectClass::Motorcyclist,
        "barrowlist" => ObjectClass::Barrow,
        "trafficcone" => ObjectClass::TrafficCone,
        _ => ObjectClass::Unknown,
    }
}

/// A timestamp of 10 (s), 13 (ms), 16 (µs) or 19 (ns) digits.
fn timestamp(path: &Path, v: &Value, field: &str) -> Result<Timestamp, ImportError> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err(field_err(path, field, "expected a timestamp")),
    };
    let digits = text.split('.').next().unwrap_or("");
    let value: f64 = text.parse().map_err(|_| field_err(path, field, format!("not a timestamp: {text}")))?;
    let scale = match digits.len() {
        10 => 1e9,
        13 => 1e6,
        16 => 1e3,
        19 => 1.0,
        n => return Err(field_err(path, field, format!("{n}-digit timestamp (expected s, ms, µs or ns)"))),
    };
    Ok(Timestamp::from_nanos((value * scale).round() as i64))
}

/// `{"rotation": 3x3, "translation": 3x1}` as `world_from_lidar`.
fn calibration(path: &Path) -> Result<Isometry3<f64>, ImportError> {
    let v = read_json(path)?;
    let mut r = Matrix3::zeros();
    for i in 0..3 {
        for j in 0..3 {
            r[(i, j)] = number(path, &v["rotation"][i][j], &format!("rotation[{i}][{j}]"))?;
        }
    }
    let t: Vec<f64> = (0..3)
        .map(|i| {
            // Either [[x],[y],[z]] or [x, y, z].
            let e = &v["translation"][i];
            number(path, if e.is_array() { &e[0] } else { e }, &format!("translation[{i}]"))
        })
        .collect::<Result<_, _>>()?;
    if (r.determinant() - 1.0).abs() > 1e-3 || (r * r.transpose() - Matrix3::identity()).norm() > 1e-3 {
        return Err(field_err(path, "rotation", "not a rotation matrix"));
    }
    let rotation = UnitQuaternion::from_rotation_matrix(&Rotation3::from_matrix_unchecked(r));
    Ok(Isometry3::from_parts(Translation3::new(t[0], t[1], t[2]), rotation))
}

/// One labelled object.
#[derive(Clone, Debug)]
pub struct Label {
    /// Track id across frames, when the dataset has one.
    pub track: Option<String>,
    /// Class.
    pub class: ObjectClass,
    /// Box centre in the sensor frame [m].
    pub center_in_lidar: Point3<f64>,
    /// Box size [m].
    pub size: BoxSize,
    /// Yaw about the sensor's z axis [rad].
    pub yaw_rad: f64,
    /// Not labelled in this frame but labelled before and after (see
    /// [`DairOptions::fill_gaps_s`]): ground truth, not detected.
    pub hidden: bool,
}

fn labels(path: &Path) -> Result<Vec<Label>, ImportError> {
    let v = read_json(path)?;
    let items = v.as_array().ok_or_else(|| field_err(path, "$", "expected an array of objects"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let f = |k: &str| format!("[{i}].{k}");
            let size = BoxSize::new(
                number(path, &o["3d_dimensions"]["l"], &f("3d_dimensions.l"))?,
                number(path, &o["3d_dimensions"]["w"], &f("3d_dimensions.w"))?,
                number(path, &o["3d_dimensions"]["h"], &f("3d_dimensions.h"))?,
            );
            if !size.is_valid() || size.length_m > 50.0 {
                return Err(field_err(path, f("3d_dimensions"), "sizes must be positive and below 50 m"));
            }
            Ok(Label {
                track: match &o["track_id"] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                },
                class: class_of(o["type"].as_str().ok_or_else(|| field_err(path, f("type"), "missing"))?),
                center_in_lidar: Point3::new(
                    number(path, &o["3d_location"]["x"], &f("3d_location.x"))?,
                    number(path, &o["3d_location"]["y"], &f("3d_location.y"))?,
                    number(path, &o["3d_location"]["z"], &f("3d_location.z"))?,
                ),
                size,
                yaw_rad: number(path, &o["rotation"], &f("rotation"))?,
                hidden: false,
            })
        })
        .collect()
}

fn check_options(options: &DairOptions) -> Result<(), ImportError> {
    if !(0.0..1.0).contains(&options.miss_probability)
        || !(0.0..10.0).contains(&options.position_sigma_m)
        || !(0.0..3.0).contains(&options.yaw_sigma_rad)
    {
        return Err(ImportError::Options(
            "noise must be within 0 <= miss < 1, 0 <= sigma < 10 m, 0 <= yaw < 3 rad".into(),
        ));
    }
    if !(0.0..=60.0).contains(&options.fill_gaps_s) {
        return Err(ImportError::Options("fill_gaps_s must be within 0..=60 s".into()));
    }
    if !(0.0..=100.0).contains(&options.calib_tolerance_m) || !(0.0..=180.0).contains(&options.calib_tolerance_deg) {
        return Err(ImportError::Options("calibration tolerances must be within 0..=100 m and 0..=180 deg".into()));
    }
    options.origin.validate().map_err(|e| ImportError::Options(e.to_string()))?;
    Ok(())
}

/// How far the frames' calibrations lie from the log's one (their mean).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CalibrationSpread {
    /// Largest distance of a frame's lidar position from the mean [m].
    pub max_translation_m: f64,
    /// Largest rotation of a frame's lidar orientation from the mean [deg].
    pub max_rotation_deg: f64,
}

/// What an import wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportSummary {
    /// Frames written.
    pub frames: usize,
    /// Labels (ground-truth object instances) written, bridged ones included.
    pub labels: usize,
    /// Ground-truth instances added across gaps in an object's labels (see
    /// [`DairOptions::fill_gaps_s`]).
    pub bridged: usize,
    /// The labels carry no track ids: each frame's objects got ids of their own.
    pub truth_ids_per_frame: bool,
    /// The spread of per-frame calibrations (DAIR-V2X; `None` for a source with one).
    pub calibration_spread: Option<CalibrationSpread>,
}

/// The mean of poses of one sensor that differ a little (per-frame re-estimates): the mean
/// position, and the normalised sum of the orientations' quaternions, each taken on the
/// hemisphere of the first (for spreads of a degree the chordal mean this is equals the
/// geodesic one to far below a micro-radian).
pub fn mean_pose(poses: &[Isometry3<f64>]) -> Option<Isometry3<f64>> {
    let first = poses.first()?;
    let n = poses.len() as f64;
    let translation = poses.iter().map(|p| p.translation.vector).sum::<nalgebra::Vector3<f64>>() / n;
    let reference = first.rotation.coords;
    let sum: nalgebra::Vector4<f64> = poses
        .iter()
        .map(|p| if p.rotation.coords.dot(&reference) < 0.0 { -p.rotation.coords } else { p.rotation.coords })
        .sum();
    let rotation = UnitQuaternion::try_new(nalgebra::Quaternion::from(sum), 1e-9)?;
    Some(Isometry3::from_parts(Translation3::from(translation), rotation))
}

/// `relative` under `dir`, if it is a relative path that stays inside it (no root, drive or
/// `..`): `data_info.json` is untrusted input and must not make the importer read other files.
fn inside(dir: &Path, relative: &str) -> Option<PathBuf> {
    use std::path::Component;
    let path = Path::new(relative);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    (plain && path.components().next().is_some()).then(|| dir.join(path))
}

/// Imports the dataset folder `dir` into the log `out`.
pub fn import_dair(dir: &Path, out: &Path, options: &DairOptions) -> Result<ImportSummary, ImportError> {
    check_options(options)?;
    let info_path = dir.join("data_info.json");
    let info = read_json(&info_path)?;
    let entries = info.as_array().ok_or_else(|| field_err(&info_path, "$", "expected an array of frames"))?;
    if entries.is_empty() || entries.len() > MAX_FRAMES {
        return Err(field_err(&info_path, "$", format!("expected 1..={MAX_FRAMES} frames, found {}", entries.len())));
    }
    // Frames in time order (ties in `data_info.json` order), with their place in it.
    let mut frames = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let t = timestamp(&info_path, &e["pointcloud_timestamp"], &format!("[{i}].pointcloud_timestamp"))?;
        let rel = |k: &str| -> Result<PathBuf, ImportError> {
            let field = || format!("[{i}].{k}");
            let p = e[k].as_str().ok_or_else(|| field_err(&info_path, field(), "missing"))?;
            inside(dir, p)
                .ok_or_else(|| field_err(&info_path, field(), format!("{p:?} is not a path inside the dataset folder")))
        };
        frames.push((t, rel("label_lidar_std_path")?, rel("calib_virtuallidar_to_world_path")?, i));
    }
    frames.sort_by_key(|f| f.0);
    let calibs: Vec<Isometry3<f64>> = frames.iter().map(|f| calibration(&f.2)).collect::<Result<_, _>>()?;
    let world_from_lidar = mean_pose(&calibs)
        .ok_or_else(|| field_err(&frames[0].2, "rotation", "the frames' orientations cancel out: no mean"))?;
    let mut spread = CalibrationSpread::default();
    for ((time, _, calib_path, frame), calib) in frames.iter().zip(&calibs) {
        let translation_m = (calib.translation.vector - world_from_lidar.translation.vector).norm();
        let rotation_deg = calib.rotation.angle_to(&world_from_lidar.rotation).to_degrees();
        // Written so that NaN fails too.
        if !(translation_m <= options.calib_tolerance_m && rotation_deg <= options.calib_tolerance_deg) {
            return Err(ImportError::Calibration {
                path: calib_path.clone(),
                frame: *frame,
                time: *time,
                frames: frames.len(),
                translation_m,
                rotation_deg,
                tolerance_m: options.calib_tolerance_m,
                tolerance_deg: options.calib_tolerance_deg,
            });
        }
        spread.max_translation_m = spread.max_translation_m.max(translation_m);
        spread.max_rotation_deg = spread.max_rotation_deg.max(rotation_deg);
    }
    // Each frame's labels into the world with its own calibration, then into the log's sensor
    // frame.
    let lidar_from_world = world_from_lidar.inverse();
    let mut scene = Vec::with_capacity(frames.len());
    // The first label with a track id and the first without one (file, index).
    let (mut with_id, mut without_id) = (None, None);
    for ((time, label_path, _, _), calib) in frames.iter().zip(&calibs) {
        let lidar_from_frame = lidar_from_world * calib;
        let mut frame_labels = labels(label_path)?;
        for (i, label) in frame_labels.iter_mut().enumerate() {
            let first = if label.track.is_some() { &mut with_id } else { &mut without_id };
            first.get_or_insert_with(|| (label_path.clone(), i));
            label.center_in_lidar = lidar_from_frame.transform_point(&label.center_in_lidar);
            label.yaw_rad = heading_through(&lidar_from_frame.rotation, label.yaw_rad);
        }
        scene.push(LabelledFrame { time: *time, labels: frame_labels });
    }
    if let (Some((with_path, with_i)), Some((path, i))) = (&with_id, &without_id) {
        return Err(field_err(
            path,
            format!("[{i}].track_id"),
            format!(
                "missing, while {}[{with_i}] has one: every label needs a track id (V2X-Seq) or none does (DAIR-V2X-C)",
                with_path.display()
            ),
        ));
    }
    let source = Scene {
        site_id: "dair-v2x",
        name: format!("DAIR-V2X import of {}", dir.display()),
        software: concat!("v2x-replays ", env!("CARGO_PKG_VERSION"), " (DAIR-V2X import)"),
        source: dir.display().to_string(),
        world_from_sensor: world_from_lidar,
        sensor_id: SENSOR_ID,
        notes: format!(
            " The lidar's calibration is the mean of the {} frames' virtuallidar_to_world; they lie within {:.3} m and {:.3}° of it, and each frame's labels are placed with its own.",
            frames.len(),
            spread.max_translation_m,
            spread.max_rotation_deg
        ),
    };
    let summary = write_scene(out, &source, &scene, options)?;
    Ok(ImportSummary { calibration_spread: Some(spread), ..summary })
}

/// Where an annotated scene comes from and where its labels' frame sits.
pub struct Scene<'a> {
    /// Site id written into the log.
    pub site_id: &'a str,
    /// Site name.
    pub name: String,
    /// Software version string.
    pub software: &'a str,
    /// The dataset (for the description).
    pub source: String,
    /// The labels' (sensor) frame in the site frame.
    pub world_from_sensor: Isometry3<f64>,
    /// The id of the sensor the detections come from.
    pub sensor_id: &'a str,
    /// Appended to the log's description (a sentence with a leading space, or empty).
    pub notes: String,
}

/// One annotated frame: its time and its labels in the sensor frame.
#[derive(Clone, Debug)]
pub struct LabelledFrame {
    /// Capture time.
    pub time: Timestamp,
    /// The labels.
    pub labels: Vec<Label>,
}

/// The region the labels of `frames` cover, seen from the sensor, with a margin: (range [m],
/// horizontal and vertical field of view [deg], each symmetric about the sensor's x axis as
/// [`SensorCalibration::covers`] takes them). Detections are made from the labels, so this is
/// where the imported sensor sees; beyond it nothing is labelled, and a track that leaves it is
/// not kept as if still watched.
fn labelled_region(frames: &[LabelledFrame]) -> (f64, f64, f64) {
    covering_region(frames.iter().flat_map(|f| &f.labels).map(|l| l.center_in_lidar))
}

/// The calibration of an imported lidar `id` at `world_from_sensor` that sees `region` (range
/// [m], horizontal and vertical field of view [deg]) at 10 Hz with position noise
/// `position_sigma_m` (at least 1 cm).
pub(crate) fn imported_lidar(
    id: &str,
    world_from_sensor: Isometry3<f64>,
    (max_range_m, hfov_deg, vfov_deg): (f64, f64, f64),
    position_sigma_m: f64,
) -> SensorCalibration {
    SensorCalibration {
        id: id.into(),
        world_from_sensor,
        max_range_m,
        hfov_deg,
        vfov_deg,
        frame_period_s: 0.1,
        model: SensorModel::Lidar(LidarNoise {
            position_sigma_m: position_sigma_m.max(0.01),
            position_sigma_per_m: 0.0,
        }),
    }
}

/// The region `points` (in a sensor's frame) cover, seen from the sensor, with a margin: (range
/// [m], horizontal and vertical field of view [deg]), as [`labelled_region`].
pub(crate) fn covering_region(points: impl Iterator<Item = Point3<f64>>) -> (f64, f64, f64) {
    let (mut range_m, mut azimuth_deg, mut elevation_deg) = (0.0f64, 0.0f64, 0.0f64);
    for p in points {
        range_m = range_m.max(p.coords.norm());
        azimuth_deg = azimuth_deg.max(p.y.atan2(p.x).to_degrees().abs());
        elevation_deg = elevation_deg.max(p.z.atan2(p.x.hypot(p.y)).to_degrees().abs());
    }
    (
        (range_m + COVERAGE_MARGIN_M).min(2000.0),
        (2.0 * (azimuth_deg + COVERAGE_MARGIN_DEG)).min(360.0),
        (2.0 * (elevation_deg + COVERAGE_MARGIN_DEG)).min(180.0),
    )
}

/// `frames` (in time order) with the gaps of at most `max_gap_s` in each object's labels
/// bridged by hidden labels (see [`DairOptions::fill_gaps_s`]); with the number added.
fn with_gaps_filled(frames: &[LabelledFrame], max_gap_s: f64) -> (Vec<LabelledFrame>, usize) {
    let mut out = frames.to_vec();
    if max_gap_s <= 0.0 {
        return (out, 0);
    }
    let mut added = 0;
    // The frames strictly between `k1` and `k2` get `a` moved towards `b` by their share of the
    // time between.
    let mut bridge = |out: &mut Vec<LabelledFrame>, k1: usize, k2: usize, a: &Label, b: &Label| {
        let span_s = frames[k2].time.secs_since(frames[k1].time);
        if k2 <= k1 + 1 || !(span_s > 0.0 && span_s <= max_gap_s) {
            return;
        }
        for frame in out.iter_mut().take(k2).skip(k1 + 1) {
            let s = frame.time.secs_since(frames[k1].time) / span_s;
            let turn =
                (b.yaw_rad - a.yaw_rad + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
            frame.labels.push(Label {
                center_in_lidar: a.center_in_lidar + (b.center_in_lidar - a.center_in_lidar) * s,
                yaw_rad: a.yaw_rad + s * turn,
                hidden: true,
                ..a.clone()
            });
            added += 1;
        }
    };
    // Tracked objects: consecutive labels of each track id.
    let mut last: BTreeMap<&str, (usize, &Label)> = BTreeMap::new();
    for (k, frame) in frames.iter().enumerate() {
        for label in &frame.labels {
            if let Some(track) = &label.track
                && let Some((k1, a)) = last.insert(track, (k, label))
            {
                bridge(&mut out, k1, k, a, label);
            }
        }
    }
    // Static objects without ids: the next label of the same class within the link distance.
    let is_static = |l: &Label| l.track.is_none() && l.class.motion_family() == rsu_fusion::class::MotionFamily::Static;
    for (k1, frame) in frames.iter().enumerate() {
        for a in frame.labels.iter().filter(|l| is_static(l)) {
            let next = frames
                .iter()
                .enumerate()
                .skip(k1 + 1)
                .take_while(|(_, f)| f.time.secs_since(frame.time) <= max_gap_s)
                .find_map(|(k2, f)| {
                    f.labels
                        .iter()
                        .find(|b| {
                            is_static(b)
                                && b.class == a.class
                                && (b.center_in_lidar - a.center_in_lidar).xy().norm() <= STATIC_LINK_M
                        })
                        .map(|b| (k2, b))
                });
            if let Some((k2, b)) = next {
                bridge(&mut out, k1, k2, a, b);
            }
        }
    }
    (out, added)
}

/// Writes an annotated scene (`frames` in time order) as a replay: the labels as ground truth,
/// and as the sensor's detections after the noise model of `options`. Labels without a track id
/// get an id for their frame only, and the log then says its truth ids hold for one frame
/// (`ReplayMeta::truth_ids_per_frame`).
pub fn write_scene(
    out: &Path,
    scene: &Scene<'_>,
    frames: &[LabelledFrame],
    options: &DairOptions,
) -> Result<ImportSummary, ImportError> {
    check_options(options)?;
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
        return Err(ImportError::Options("the scene has no frames".into()));
    };
    let world_from_lidar = scene.world_from_sensor;
    let truth_ids_per_frame = frames.iter().flat_map(|f| &f.labels).any(|l| l.track.is_none());
    let (max_range_m, hfov_deg, vfov_deg) = labelled_region(frames);
    let (frames, bridged) = with_gaps_filled(frames, options.fill_gaps_s);
    let frames = &frames[..];
    let site = SiteConfig {
        site_id: scene.site_id.into(),
        name: scene.name.clone(),
        origin: options.origin,
        representative: false,
        ground: GroundModel::flat(0.0),
        sensors: vec![imported_lidar(
            scene.sensor_id,
            world_from_lidar,
            (max_range_m, hfov_deg, vfov_deg),
            options.position_sigma_m,
        )],
    };
    let meta = ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: scene.software.into(),
        scenario: options.scenario.clone(),
        description: format!(
            "Labels of {} as ground truth; detections are the labels with {} m position noise, {} rad yaw noise and {:.0}% misses.{} {bridged} truth instances bridge gaps of at most {} s in an object's labels (hidden, not detected).{}",
            scene.source,
            options.position_sigma_m,
            options.yaw_sigma_rad,
            options.miss_probability * 100.0,
            scene.notes,
            options.fill_gaps_s,
            if truth_ids_per_frame {
                " The labels carry no track ids: truth ids hold for one frame, identity metrics do not apply."
            } else {
                ""
            }
        ),
        seed: options.seed,
        site,
        rsu_ids: vec![],
        start_time: first.time,
        end_time: last.time,
        truth_ids_per_frame,
    };
    let mut writer = ReplayWriter::create(out, &meta)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let pos_noise = Normal::new(0.0, options.position_sigma_m).map_err(|e| ImportError::Options(e.to_string()))?;
    let yaw_noise = Normal::new(0.0, options.yaw_sigma_rad).map_err(|e| ImportError::Options(e.to_string()))?;
    let mut track_ids: BTreeMap<String, u32> = BTreeMap::new();
    // Last labelled position of each tracked object, for speeds.
    let mut last_seen: BTreeMap<u32, (Timestamp, Point3<f64>)> = BTreeMap::new();
    let mut next_id = 1u32;
    for (k, frame) in frames.iter().enumerate() {
        let (time, labels) = (&frame.time, &frame.labels);
        let mut objects = Vec::with_capacity(labels.len());
        let mut detections = Vec::with_capacity(labels.len());
        for label in labels {
            let id = match &label.track {
                Some(track) => *track_ids.entry(track.clone()).or_insert_with(|| {
                    next_id += 1;
                    next_id - 1
                }),
                None => {
                    next_id += 1;
                    next_id - 1
                }
            };
            let center_world = world_from_lidar.transform_point(&label.center_in_lidar);
            let yaw_world = label.yaw_rad + world_from_lidar.rotation.euler_angles().2;
            let speed_mps = match last_seen.insert(id, (*time, center_world)) {
                Some((t0, p0)) if label.track.is_some() && time.secs_since(t0) > 0.0 => {
                    (center_world - p0).xy().norm() / time.secs_since(t0)
                }
                _ => 0.0,
            };
            objects.push(GroundTruthObject {
                id,
                class: label.class,
                center_m: center_world,
                yaw_rad: yaw_world,
                speed_mps,
                yaw_rate_rps: 0.0,
                accel_mps2: 0.0,
                size: label.size,
                v2x_id: None,
            });
            if label.hidden || rng.random::<f64>() < options.miss_probability {
                continue;
            }
            let mut c = label.center_in_lidar;
            c.x += pos_noise.sample(&mut rng);
            c.y += pos_noise.sample(&mut rng);
            detections.push(LidarDetection {
                center_in_sensor: c,
                size: label.size,
                yaw_rad: label.yaw_rad + yaw_noise.sample(&mut rng),
                class: label.class,
                score: 0.9,
                point_count: None,
            });
        }
        writer.write_ground_truth(&GroundTruthFrame { time: *time, objects, signals: vec![] })?;
        writer.write_sensor_frame(&SensorFrame {
            sensor_id: scene.sensor_id.into(),
            sequence: k as u64,
            capture_time: *time,
            detections: Detections::Lidar(detections),
        })?;
    }
    writer.finish()?;
    Ok(ImportSummary {
        frames: frames.len(),
        labels: frames.iter().map(|f| f.labels.len()).sum(),
        bridged,
        truth_ids_per_frame,
        calibration_spread: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(track: Option<&str>, class: ObjectClass, x: f64) -> Label {
        Label {
            track: track.map(str::to_owned),
            class,
            center_in_lidar: Point3::new(x, 2.0, -5.0),
            size: BoxSize::new(4.5, 1.9, 1.5),
            yaw_rad: 0.0,
            hidden: false,
        }
    }

    fn frames(labels: Vec<Vec<Label>>) -> Vec<LabelledFrame> {
        labels
            .into_iter()
            .enumerate()
            .map(|(k, labels)| LabelledFrame { time: Timestamp::from_nanos(k as i64 * 100_000_000), labels })
            .collect()
    }

    #[test]
    fn dataset_paths_stay_inside_the_dataset_folder() {
        let dir = Path::new("/data/dair");
        assert_eq!(inside(dir, "label/virtuallidar/000001.json"), Some(dir.join("label/virtuallidar/000001.json")));
        assert_eq!(inside(dir, "./calib/000001.json"), Some(dir.join("./calib/000001.json")));
        for escaping in ["../secret.json", "label/../../x.json", "/etc/passwd", ""] {
            assert_eq!(inside(dir, escaping), None, "{escaping:?}");
        }
        // And the importer says which entry is at fault, reading nothing outside.
        let tmp = tempfile::tempdir().expect("tempdir");
        let info = r#"[{"pointcloud_timestamp": "1626155123881356",
            "label_lidar_std_path": "../../etc/passwd",
            "calib_virtuallidar_to_world_path": "calib/1.json"}]"#;
        std::fs::write(tmp.path().join("data_info.json"), info).expect("write");
        let err = import_dair(tmp.path(), &tmp.path().join("out.mcap"), &DairOptions::default()).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("[0].label_lidar_std_path") && text.contains("not a path inside"), "{text}");
    }

    #[test]
    fn the_mean_pose_is_the_middle_whatever_the_quaternion_signs() {
        let yaw = |deg: f64| UnitQuaternion::from_axis_angle(&nalgebra::Vector3::z_axis(), deg.to_radians());
        let a = Isometry3::from_parts(Translation3::new(10.0, 0.0, 5.0), yaw(30.0));
        // The same kind of rotation with the opposite quaternion sign.
        let flipped = UnitQuaternion::new_unchecked(-yaw(30.2).into_inner());
        let b = Isometry3::from_parts(Translation3::new(10.2, 0.0, 5.0), flipped);
        let mean = mean_pose(&[a, b]).expect("mean");
        assert!((mean.translation.vector.x - 10.1).abs() < 1e-12);
        assert!((mean.rotation.angle_to(&yaw(30.1))).to_degrees() < 1e-6, "{mean:?}");
        assert!(mean_pose(&[]).is_none());
    }

    #[test]
    fn gaps_are_bridged_by_track_id_and_for_static_objects_by_position() {
        let car = |x| label(Some("7"), ObjectClass::Car, x);
        let cone = |x| label(None, ObjectClass::TrafficCone, x);
        let loose_car = |x| label(None, ObjectClass::Car, x);
        // Frames 1-2 lose the tracked car, the cone and a car without id; frame 4 sees the
        // cone 0.6 m away (another cone).
        let input = frames(vec![
            vec![car(0.0), cone(20.0), loose_car(40.0)],
            vec![],
            vec![],
            vec![car(3.0), cone(20.1), loose_car(40.0)],
            vec![cone(20.7)],
        ]);
        let (out, added) = with_gaps_filled(&input, 3.0);
        assert_eq!(added, 4);
        for k in [1, 2] {
            let hidden: Vec<&Label> = out[k].labels.iter().filter(|l| l.hidden).collect();
            assert_eq!(hidden.len(), 2, "frame {k}: {hidden:?}");
            let car = hidden.iter().find(|l| l.class == ObjectClass::Car).expect("car");
            assert!((car.center_in_lidar.x - k as f64).abs() < 1e-9, "interpolated: {car:?}");
            assert!(hidden.iter().any(|l| l.class == ObjectClass::TrafficCone));
        }
        assert_eq!(out[4].labels.len(), 1, "the cone 0.6 m off is not linked to frame 3's");
        // Too long a gap, or off: nothing added.
        assert_eq!(with_gaps_filled(&input, 0.25).1, 0);
        assert_eq!(with_gaps_filled(&input, 0.0).1, 0);
    }

    #[test]
    fn the_labelled_region_bounds_the_coverage() {
        let input = frames(vec![vec![
            label(None, ObjectClass::Car, 50.0),
            Label { center_in_lidar: Point3::new(10.0, 10.0, -5.0), ..label(None, ObjectClass::Car, 0.0) },
        ]]);
        let (range_m, hfov_deg, vfov_deg) = labelled_region(&input);
        assert!((range_m - (50.0f64.hypot(2.0).hypot(5.0) + 2.0)).abs() < 1e-9, "{range_m}");
        assert!((hfov_deg - 2.0 * (45.0 + 2.0)).abs() < 1e-9, "{hfov_deg}");
        let elevation_deg = 5.0f64.atan2(200f64.sqrt()).to_degrees();
        assert!((vfov_deg - 2.0 * (elevation_deg + 2.0)).abs() < 1e-9, "{vfov_deg}");
    }
}
