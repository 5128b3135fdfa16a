//! The roadside frame (`RoadsideFrame`): the RSU's fused broadcast, its participants (CSAE 53 RSM
//! / T/CSAE 157 SSM style, in the standards' fixed-point units), sensor health and perception
//! regions.

use nalgebra::Point3;
use rsu_fusion::{BoxSize, ObjectClass, Participant, PathPoint, RoadsideFrame, SensorHealth, SensorStatus, SourceSet};
use rsu_fusion::{Timestamp, Wgs84};

use super::common::{
    checked_heading, checked_speed, class, convert_all, heading_from_yaw, id_string, limit, out_of_range,
    polygon_from_wire, polygon_to_wire, q_i32, q_u32, required, timestamp, wire_time,
};
use super::{AGE_MAX_DS, MAX_PARTICIPANTS, MAX_PATH_POINTS, Result, SPEED_MAX, SPEED_UNIT_MPS};
use crate::ConvertError;
use crate::wire;

enum_mapping!(
    sensor_status_to_wire,
    sensor_status_from_wire,
    SensorStatus,
    SensorStatus,
    "sensors.status",
    [Unknown, Ok, Degraded, Silent]
);

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
            newest_capture_age_us: f.newest_capture.map(|t| (f.time.as_nanos() - t.as_nanos()).div_euclid(1000)),
        }
    }
}

impl TryFrom<&wire::RoadsideFrame> for RoadsideFrame {
    type Error = ConvertError;
    fn try_from(f: &wire::RoadsideFrame) -> Result<Self> {
        limit("participants", &f.participants, MAX_PARTICIPANTS)?;
        limit("sensors", &f.sensors, 256)?;
        limit("perception_regions", &f.perception_regions, 64)?;
        let sensors: Vec<SensorHealth> = f
            .sensors
            .iter()
            .map(|s| {
                Ok(SensorHealth {
                    sensor_id: id_string("sensors.sensor_id", &s.sensor_id)?,
                    status: sensor_status_from_wire(s.status)?,
                    last_capture: optional_time("sensors.last_capture_ns", s.last_capture_ns)?,
                })
            })
            .collect::<Result<_>>()?;
        // A frame of a version 1 RSU has no `newest_capture_age_us`, but the health of every
        // sensor.
        let time = timestamp("timestamp_ns", f.timestamp_ns)?;
        let newest_capture = match f.newest_capture_age_us {
            Some(age_us) => Some(
                age_us
                    .checked_mul(1000)
                    .and_then(|age_ns| time.as_nanos().checked_sub(age_ns))
                    .filter(|ns| *ns >= 0)
                    .map(Timestamp::from_nanos)
                    .ok_or_else(|| out_of_range("newest_capture_age_us", age_us, "at most timestamp_ns"))?,
            ),
            None => sensors.iter().filter_map(|s| s.last_capture).max(),
        };
        Ok(RoadsideFrame {
            // Since version 2 only in the frames that carry the health.
            rsu_id: if f.rsu_id.is_empty() { String::new() } else { id_string("rsu_id", &f.rsu_id)? },
            message_count: f.message_count,
            time,
            reference: Wgs84::try_from(required("reference", &f.reference)?)?,
            participants: convert_all(&f.participants, Participant::try_from)?,
            sensors,
            perception_regions: f
                .perception_regions
                .iter()
                .map(|p| polygon_from_wire("perception_regions", p))
                .collect::<Result<_>>()?,
            newest_capture,
        })
    }
}

/// A time field where 0 means none.
fn optional_time(field: &'static str, ns: u64) -> Result<Option<rsu_fusion::Timestamp>> {
    if ns == 0 { Ok(None) } else { timestamp(field, ns).map(Some) }
}
