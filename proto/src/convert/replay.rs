//! Replay metadata (`ReplayMeta`: scenario, seed, site and sensor calibration) and the
//! simulator's ground truth (`GroundTruthFrame`: every actor and traffic signal).

use std::f64::consts::PI;

use nalgebra::{Isometry3, Point3, Quaternion, Translation3, UnitQuaternion};
use rsu_fusion::calibration::{CameraIntrinsics, CameraModel, GroundArea, GroundModel, LidarNoise, SensorModel};
use rsu_fusion::{BoxSize, SensorCalibration, SiteConfig, Timestamp, Wgs84};

use super::common::{
    bounded, class, convert_all, id_string, limit, limit_len, out_of_range, q_u32, required, timestamp, wire_time,
};
use super::{MAX_POLYGON_VERTICES, MAX_SIGNALS, MAX_TRUTH_OBJECTS, Result};
use crate::ConvertError;
use crate::domain::{GroundTruthFrame, GroundTruthObject, ReplayMeta, SignalPhase, SignalState};
use crate::wire;

enum_mapping!(
    signal_phase_to_wire,
    signal_phase_from_wire,
    SignalPhase,
    SignalPhase,
    "signals.phase",
    [Unknown, Red, Yellow, Green, Dark]
);

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
            truth_ids_per_frame: m.truth_ids_per_frame,
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
            truth_ids_per_frame: m.truth_ids_per_frame,
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
