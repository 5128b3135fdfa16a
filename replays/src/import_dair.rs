//! Import of DAIR-V2X / V2X-Seq infrastructure-side annotations into a replay log, and the
//! writer of annotated scenes ([`write_scene`]) that the OpenLABEL import shares.
//!
//! Input (facts of the published format): `data_info.json` is an array of frames, each naming its
//! `label_lidar_std_path` (a JSON array of objects with `type`, `3d_dimensions {h, w, l}`,
//! `3d_location {x, y, z}` (box centre, virtual-lidar frame), `rotation` (yaw about z [rad]) and,
//! in V2X-Seq, `track_id`), its `calib_virtuallidar_to_world_path` (`rotation` 3×3, `translation`
//! 3×1) and its `pointcloud_timestamp`. Numbers may be JSON numbers or strings.
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
use rsu_fusion::calibration::{GroundModel, LidarNoise};
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
}

impl Default for DairOptions {
    fn default() -> Self {
        DairOptions {
            origin: Wgs84::new(0.0, 0.0, 0.0),
            seed: 0,
            position_sigma_m: 0.15,
            yaw_sigma_rad: 0.05,
            miss_probability: 0.05,
            scenario: "dair-v2x-import".into(),
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
        "truck" => ObjectClass::Truck,
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
    options.origin.validate().map_err(|e| ImportError::Options(e.to_string()))?;
    Ok(())
}

/// Imports the dataset folder `dir` into the log `out`. Returns the number of frames written.
pub fn import_dair(dir: &Path, out: &Path, options: &DairOptions) -> Result<usize, ImportError> {
    check_options(options)?;
    let info_path = dir.join("data_info.json");
    let info = read_json(&info_path)?;
    let entries = info.as_array().ok_or_else(|| field_err(&info_path, "$", "expected an array of frames"))?;
    if entries.is_empty() || entries.len() > MAX_FRAMES {
        return Err(field_err(&info_path, "$", format!("expected 1..={MAX_FRAMES} frames, found {}", entries.len())));
    }
    // Frames in time order.
    let mut frames = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let t = timestamp(&info_path, &e["pointcloud_timestamp"], &format!("[{i}].pointcloud_timestamp"))?;
        let rel = |k: &str| -> Result<PathBuf, ImportError> {
            e[k].as_str().map(|p| dir.join(p)).ok_or_else(|| field_err(&info_path, format!("[{i}].{k}"), "missing"))
        };
        frames.push((t, rel("label_lidar_std_path")?, rel("calib_virtuallidar_to_world_path")?));
    }
    frames.sort_by_key(|f| f.0);
    let world_from_lidar = calibration(&frames[0].2)?;
    let mut scene = Vec::with_capacity(frames.len());
    for (time, label_path, calib_path) in &frames {
        let calib = calibration(calib_path)?;
        if (calib.translation.vector - world_from_lidar.translation.vector).norm() > 0.05
            || calib.rotation.angle_to(&world_from_lidar.rotation) > 1e-3
        {
            return Err(field_err(
                calib_path,
                "rotation/translation",
                "calibration differs from the first frame's: import one intersection (one lidar pose) at a time",
            ));
        }
        scene.push(LabelledFrame { time: *time, labels: labels(label_path)? });
    }
    let source = Scene {
        site_id: "dair-v2x",
        name: format!("DAIR-V2X import of {}", dir.display()),
        software: concat!("v2x-replays ", env!("CARGO_PKG_VERSION"), " (DAIR-V2X import)"),
        source: dir.display().to_string(),
        world_from_sensor: world_from_lidar,
        sensor_id: SENSOR_ID,
    };
    write_scene(out, &source, &scene, options)
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
}

/// One annotated frame: its time and its labels in the sensor frame.
pub struct LabelledFrame {
    /// Capture time.
    pub time: Timestamp,
    /// The labels.
    pub labels: Vec<Label>,
}

/// Writes an annotated scene (`frames` in time order) as a replay: the labels as ground truth,
/// and as the sensor's detections after the noise model of `options`. Returns the frames written.
pub fn write_scene(
    out: &Path,
    scene: &Scene<'_>,
    frames: &[LabelledFrame],
    options: &DairOptions,
) -> Result<usize, ImportError> {
    check_options(options)?;
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
        return Err(ImportError::Options("the scene has no frames".into()));
    };
    let world_from_lidar = scene.world_from_sensor;
    let site = SiteConfig {
        site_id: scene.site_id.into(),
        name: scene.name.clone(),
        origin: options.origin,
        representative: false,
        ground: GroundModel::flat(0.0),
        sensors: vec![SensorCalibration {
            id: scene.sensor_id.into(),
            world_from_sensor: world_from_lidar,
            max_range_m: 200.0,
            hfov_deg: 360.0,
            vfov_deg: 40.0,
            frame_period_s: 0.1,
            model: SensorModel::Lidar(LidarNoise {
                position_sigma_m: options.position_sigma_m.max(0.01),
                position_sigma_per_m: 0.0,
            }),
        }],
    };
    let meta = ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: scene.software.into(),
        scenario: options.scenario.clone(),
        description: format!(
            "Labels of {} as ground truth; detections are the labels with {} m position noise, {} rad yaw noise and {:.0}% misses.",
            scene.source,
            options.position_sigma_m,
            options.yaw_sigma_rad,
            options.miss_probability * 100.0
        ),
        seed: options.seed,
        site,
        rsu_ids: vec![],
        start_time: first.time,
        end_time: last.time,
        truth_ids_per_frame: false,
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
            if rng.random::<f64>() < options.miss_probability {
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
    Ok(frames.len())
}
