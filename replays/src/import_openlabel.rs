//! Import of ASAM OpenLABEL 3D box annotations (as TUMTraf / A9 publish them) into a replay log.
//!
//! Input: one OpenLABEL JSON file, or a folder of them (every `*.json`, in name order; TUMTraf
//! writes one file per frame). Each file holds `openlabel.frames.{f}` with
//! `frame_properties.timestamp` (seconds since the Unix epoch, a number or a string) and
//! `objects.{uuid}.object_data` with `type` (or the type in `openlabel.objects.{uuid}`) and
//! `cuboid.val = [x, y, z, qx, qy, qz, qw, l, w, h]` (box centre [m] and orientation in the
//! labels' coordinate system, size [m]). The object uuid is the track id across frames.
//!
//! Output: as for DAIR-V2X ([`crate::import_dair::write_scene`]): the labels as ground truth and,
//! through the seeded noise model, as the detections of one lidar (`openlabel-lidar`) at the origin
//! of the labels' coordinate system, which becomes the site frame. Every rejection names the file
//! and the field.

use std::path::{Path, PathBuf};

use nalgebra::{Isometry3, Point3, Quaternion, UnitQuaternion};
use rsu_fusion::{BoxSize, ObjectClass, Timestamp};

use crate::import_dair::{
    DairOptions, ImportError, ImportSummary, Label, LabelledFrame, MAX_FRAMES, Scene, field_err, number, read_json,
    write_scene,
};

/// The class of an OpenLABEL (TUMTraf) object type.
fn class_of(name: &str) -> ObjectClass {
    match name.to_ascii_uppercase().as_str() {
        "CAR" => ObjectClass::Car,
        "TRUCK" | "TRAILER" => ObjectClass::Truck,
        "VAN" => ObjectClass::Van,
        "BUS" => ObjectClass::Bus,
        "MOTORCYCLE" | "MOTORCYCLIST" => ObjectClass::Motorcyclist,
        "BICYCLE" | "CYCLIST" => ObjectClass::Cyclist,
        "PEDESTRIAN" => ObjectClass::Pedestrian,
        "EMERGENCY_VEHICLE" => ObjectClass::Emergency,
        _ => ObjectClass::Unknown,
    }
}

/// The frames of one OpenLABEL file.
fn frames_of(path: &Path) -> Result<Vec<LabelledFrame>, ImportError> {
    let v = read_json(path)?;
    let root = &v["openlabel"];
    let frames = root["frames"].as_object().ok_or_else(|| field_err(path, "openlabel.frames", "missing"))?;
    let mut out = Vec::with_capacity(frames.len());
    for (key, frame) in frames {
        let at = |k: &str| format!("openlabel.frames.{key}.{k}");
        let seconds = number(path, &frame["frame_properties"]["timestamp"], &at("frame_properties.timestamp"))?;
        if !(0.0..4.0e9).contains(&seconds) {
            return Err(field_err(path, at("frame_properties.timestamp"), "must be seconds since 1970"));
        }
        let mut labels = Vec::new();
        if let Some(objects) = frame["objects"].as_object() {
            for (uuid, object) in objects {
                let data = &object["object_data"];
                let field = |k: &str| at(&format!("objects.{uuid}.object_data.{k}"));
                let val = data["cuboid"]["val"]
                    .as_array()
                    .filter(|a| a.len() == 10)
                    .ok_or_else(|| field_err(path, field("cuboid.val"), "expected [x,y,z,qx,qy,qz,qw,l,w,h]"))?;
                let n = |i: usize| number(path, &val[i], &field(&format!("cuboid.val[{i}]")));
                let q = UnitQuaternion::from_quaternion(Quaternion::new(n(6)?, n(3)?, n(4)?, n(5)?));
                if !q.coords.iter().all(|c| c.is_finite()) {
                    return Err(field_err(path, field("cuboid.val[3..7]"), "not a rotation"));
                }
                let size = BoxSize::new(n(7)?, n(8)?, n(9)?);
                if !size.is_valid() || size.length_m > 50.0 {
                    return Err(field_err(path, field("cuboid.val[7..10]"), "sizes must be positive and below 50 m"));
                }
                let type_name = data["type"].as_str().or_else(|| root["objects"][uuid.as_str()]["type"].as_str());
                labels.push(Label {
                    track: Some(uuid.clone()),
                    class: class_of(type_name.ok_or_else(|| field_err(path, field("type"), "missing"))?),
                    center_in_lidar: Point3::new(n(0)?, n(1)?, n(2)?),
                    size,
                    yaw_rad: q.euler_angles().2,
                    hidden: false,
                });
            }
        }
        out.push(LabelledFrame { time: Timestamp::from_secs_f64(seconds), labels });
    }
    Ok(out)
}

/// The OpenLABEL files at `path`: the file itself, or every `*.json` of the folder in name order.
fn files(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|cause| ImportError::Io { path: path.to_owned(), cause })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(field_err(path, "*.json", "no OpenLABEL files in this folder"));
    }
    Ok(files)
}

/// Imports the OpenLABEL file or folder `path` into the log `out`.
pub fn import_openlabel(path: &Path, out: &Path, options: &DairOptions) -> Result<ImportSummary, ImportError> {
    let mut frames = Vec::new();
    for file in files(path)? {
        frames.extend(frames_of(&file)?);
        if frames.len() > MAX_FRAMES {
            return Err(field_err(&file, "openlabel.frames", format!("more than {MAX_FRAMES} frames in all")));
        }
    }
    frames.sort_by_key(|f| f.time);
    let scene = Scene {
        site_id: "openlabel",
        name: format!("OpenLABEL import of {}", path.display()),
        software: concat!("v2x-replays ", env!("CARGO_PKG_VERSION"), " (OpenLABEL import)"),
        source: path.display().to_string(),
        world_from_sensor: Isometry3::identity(),
        sensor_id: SENSOR_ID,
        notes: String::new(),
    };
    write_scene(out, &scene, &frames, options)
}

/// Id of the sensor the imported detections are attributed to.
pub const SENSOR_ID: &str = "openlabel-lidar";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReplayBody, ReplayReader};

    /// Two frames of a car driving east and a pedestrian, in the documented layout.
    fn fixture(dir: &Path) -> PathBuf {
        let half = std::f64::consts::FRAC_1_SQRT_2;
        let frame = |t: f64, x: f64| {
            serde_json::json!({
                "frame_properties": {"timestamp": t},
                "objects": {
                    "7f1c": {"object_data": {"name": "CAR_1", "type": "CAR",
                        "cuboid": {"name": "shape3D", "val": [x, 2.0, -6.0, 0.0, 0.0, 0.0, 1.0, 4.5, 1.9, 1.5]}}},
                    "a2b9": {"object_data": {"name": "PEDESTRIAN_1",
                        "cuboid": {"name": "shape3D", "val": [10.0, -3.0, -6.5, 0.0, 0.0, half, half, 0.6, 0.6, 1.7]}}}
                }
            })
        };
        let doc = serde_json::json!({"openlabel": {
            "metadata": {"schema_version": "1.0.0"},
            "objects": {"a2b9": {"name": "PEDESTRIAN_1", "type": "PEDESTRIAN"}},
            "frames": {"0": frame(1_646_667_310.0, 0.0), "1": frame(1_646_667_310.1, 1.0)}
        }});
        let path = dir.join("scene.json");
        std::fs::write(&path, doc.to_string()).expect("fixture");
        path
    }

    #[test]
    fn an_openlabel_scene_becomes_a_replay_with_truth_and_detections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = fixture(dir.path());
        let out = dir.path().join("scene.mcap");
        let options = DairOptions { miss_probability: 0.0, ..DairOptions::default() };
        assert_eq!(import_openlabel(dir.path(), &out, &options).expect("import").frames, 2);
        let reader = ReplayReader::open(&out).expect("open");
        assert_eq!(reader.meta().site.sensors[0].id, SENSOR_ID);
        let (mut truths, mut detections) = (Vec::new(), 0);
        for m in reader {
            match m.expect("message").body {
                ReplayBody::GroundTruth(t) => truths.push(t),
                ReplayBody::Sensor(f) => {
                    if let rsu_fusion::Detections::Lidar(d) = &f.detections {
                        detections += d.len();
                    }
                }
                _ => {}
            }
        }
        assert_eq!((truths.len(), detections), (2, 4));
        let car = truths[1].objects.iter().find(|o| o.class == ObjectClass::Car).expect("car");
        let ped = truths[1]
            .objects
            .iter()
            .find(|o| o.class == ObjectClass::Pedestrian)
            .expect("pedestrian (type from openlabel.objects)");
        assert!((car.center_m.x - 1.0).abs() < 1e-9 && (car.speed_mps - 10.0).abs() < 1e-6, "{car:?}");
        assert!((ped.yaw_rad - std::f64::consts::FRAC_PI_2).abs() < 1e-6, "{ped:?}");
        // One track per uuid across frames.
        assert_eq!(truths[0].objects.iter().find(|o| o.class == ObjectClass::Car).map(|o| o.id), Some(car.id));

        // Broken input names the file and the field.
        let text = std::fs::read_to_string(&input)
            .expect("read")
            .replace("\"timestamp\":1646667310.1", "\"timestamp\":\"soon\"");
        std::fs::write(&input, text).expect("write");
        let e = import_openlabel(&input, &out, &options).expect_err("bad timestamp").to_string();
        assert!(e.contains("scene.json") && e.contains("frame_properties.timestamp"), "{e}");
    }
}
