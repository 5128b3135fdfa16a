//! Vehicle states (`VehicleState`): a connected vehicle's BSM-like self-report, with its GNSS
//! fix, motion, brakes, ADAS status and active warnings.

use rsu_fusion::BoxSize;
use rsu_fusion::Wgs84;
use rsu_fusion::measurement::{
    ActiveWarning, AdasStatus, BrakeStatus, GnssStatus, PositionAccuracy, VehicleState, WarningKind,
};

use super::common::{
    bounded, checked_heading, checked_speed, class, heading_from_yaw, id_string, limit, out_of_range, q_i32, q_u32,
    required, timestamp, wire_time,
};
use super::{Result, SPEED_MAX, SPEED_UNIT_MPS};
use crate::ConvertError;
use crate::wire;

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
