//! Sensor frames (`SensorFrame`): lidar boxes in the sensor frame and camera boxes in pixels with
//! class scores, as roadside sensors send them.

use std::f64::consts::PI;

use nalgebra::{Point2, Point3};
use rsu_fusion::BoxSize;
use rsu_fusion::measurement::{CameraDetection, CameraDetections, Detections, LidarDetection, SensorFrame};

use super::common::{bounded, class, convert_all, id_string, limit, out_of_range, required, timestamp, wire_time};
use super::{MAX_CLASS_SCORES, MAX_DETECTIONS_PER_FRAME, Result};
use crate::ConvertError;
use crate::wire;

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
