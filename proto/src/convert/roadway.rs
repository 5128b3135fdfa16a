//! The road map and road safety information (`MapData`, `RsiEvent`, `ServerControl`, protocol
//! version 4). Wire → domain checks every limit of `roadway.proto`: lane ids (1..=255, each once),
//! 2..=[`MAX_LANE_NODES`] nodes per lane within [`MAX_NODE_OFFSET_CM`], widths within
//! [`LANE_WIDTH_CM`], manoeuvres and connections only on ingress lanes, and every connection to an
//! egress lane of the same intersection ([`ConvertError::Inconsistent`] otherwise); an event's
//! position, confidence, track ids and times.

use std::collections::BTreeSet;

use rsu_fusion::Wgs84;

use super::common::{convert_all, id_string, limit, out_of_range, required, timestamp, wire_time};
use super::{MAX_ID_LEN, Result};
use crate::ConvertError;
use crate::domain::{
    IntersectionMap, LaneConnection, LaneDirection, LaneNode, Maneuver, MapData, MapLane, RsiEvent, RsiEventPhase,
    RsiEventType, ServerControl,
};
use crate::wire;

/// Most intersections of one map.
pub const MAX_INTERSECTIONS: usize = 32;
/// Most lanes of one intersection (J2735 `LaneList`).
pub const MAX_LANES: usize = 255;
/// Most nodes of one lane (J2735 `NodeSetXY`).
pub const MAX_LANE_NODES: usize = 63;
/// Most connections of one ingress lane (J2735 `ConnectsToList`).
pub const MAX_CONNECTIONS: usize = 16;
/// Largest east or north offset of a lane node from its reference point [cm] (3 km).
pub const MAX_NODE_OFFSET_CM: i32 = 300_000;
/// Valid lane widths [cm].
pub const LANE_WIDTH_CM: std::ops::RangeInclusive<u32> = 150..=1000;
/// Largest east or north offset of an event from the site origin [dm] (10 km).
pub const MAX_EVENT_OFFSET_DM: i32 = 100_000;
/// Most track ids behind one event.
pub const MAX_EVENT_TRACKS: usize = 64;
/// Largest distance of an event's start before its time [s] (a day).
pub const MAX_EVENT_AGE_S: i64 = 86_400;

enum_mapping!(maneuver_to_wire, maneuver_from_wire, Maneuver, Maneuver, "maneuver", [Straight, Left, Right, UTurn]);
enum_mapping!(
    direction_to_wire,
    direction_from_wire,
    LaneDirection,
    LaneDirection,
    "lanes.direction",
    [Ingress, Egress]
);
enum_mapping!(
    event_type_to_wire,
    event_type_from_wire,
    RsiEventType,
    RsiEventType,
    "type",
    [StoppedVehicle, PedestrianInRoadway, WrongWayVehicle, Congestion]
);
enum_mapping!(phase_to_wire, phase_from_wire, RsiEventPhase, RsiEventPhase, "phase", [Start, Update, End]);

impl From<&MapLane> for wire::Lane {
    fn from(l: &MapLane) -> Self {
        wire::Lane {
            lane_id: u32::from(l.lane_id),
            name: l.name.clone(),
            direction: direction_to_wire(l.direction) as i32,
            width_cm: u32::from(l.width_cm),
            nodes: l.nodes.iter().map(|n| wire::LaneNode { x_cm: n.x_cm, y_cm: n.y_cm }).collect(),
            maneuvers: l.maneuvers.iter().map(|m| maneuver_to_wire(*m) as i32).collect(),
            connections: l
                .connections
                .iter()
                .map(|c| wire::LaneConnection {
                    egress_lane_id: u32::from(c.egress_lane_id),
                    maneuver: maneuver_to_wire(c.maneuver) as i32,
                    signal_group: c.signal_group.map(u32::from),
                })
                .collect(),
        }
    }
}

fn checked_lane_id(field: &'static str, id: u32) -> Result<u8> {
    u8::try_from(id).ok().filter(|id| *id >= 1).ok_or_else(|| out_of_range(field, id, "1..=255"))
}

fn lane(l: &wire::Lane) -> Result<MapLane> {
    let lane_id = checked_lane_id("lanes.lane_id", l.lane_id)?;
    let name = id_string("lanes.name", &l.name)?;
    let direction = direction_from_wire(l.direction)?;
    let width_cm = u16::try_from(l.width_cm)
        .ok()
        .filter(|w| LANE_WIDTH_CM.contains(&u32::from(*w)))
        .ok_or_else(|| out_of_range("lanes.width_cm", l.width_cm, "150..=1000"))?;
    limit("lanes.nodes", &l.nodes, MAX_LANE_NODES)?;
    if l.nodes.len() < 2 {
        return Err(ConvertError::Inconsistent {
            field: "lanes.nodes",
            problem: format!("lane {lane_id} has {} nodes (a lane needs at least 2)", l.nodes.len()),
        });
    }
    let nodes = convert_all(&l.nodes, |n| {
        for v in [n.x_cm, n.y_cm] {
            if !(-MAX_NODE_OFFSET_CM..=MAX_NODE_OFFSET_CM).contains(&v) {
                return Err(out_of_range("lanes.nodes", v, "-300000..=300000 cm"));
            }
        }
        Ok(LaneNode { x_cm: n.x_cm, y_cm: n.y_cm })
    })?;
    limit("lanes.maneuvers", &l.maneuvers, 4)?;
    let maneuvers = convert_all(&l.maneuvers, |m| maneuver_from_wire(*m))?;
    if maneuvers.iter().collect::<BTreeSet<_>>().len() != maneuvers.len() {
        return Err(ConvertError::Inconsistent {
            field: "lanes.maneuvers",
            problem: format!("lane {lane_id} lists a manoeuvre twice"),
        });
    }
    limit("lanes.connections", &l.connections, MAX_CONNECTIONS)?;
    let connections = convert_all(&l.connections, |c| {
        Ok(LaneConnection {
            egress_lane_id: checked_lane_id("lanes.connections.egress_lane_id", c.egress_lane_id)?,
            maneuver: maneuver_from_wire(c.maneuver)?,
            signal_group: c
                .signal_group
                .map(|g| {
                    u8::try_from(g).ok().filter(|g| *g >= 1).ok_or_else(|| out_of_range("signal_group", g, "1..=255"))
                })
                .transpose()?,
        })
    })?;
    match direction {
        LaneDirection::Ingress if maneuvers.is_empty() || connections.is_empty() => Err(ConvertError::Inconsistent {
            field: "lanes",
            problem: format!("ingress lane {lane_id} has no manoeuvre or no connection"),
        }),
        LaneDirection::Egress if !maneuvers.is_empty() || !connections.is_empty() => Err(ConvertError::Inconsistent {
            field: "lanes",
            problem: format!("egress lane {lane_id} has manoeuvres or connections"),
        }),
        _ => Ok(MapLane { lane_id, name, direction, width_cm, nodes, maneuvers, connections }),
    }
}

impl From<&IntersectionMap> for wire::IntersectionGeometry {
    fn from(i: &IntersectionMap) -> Self {
        wire::IntersectionGeometry {
            intersection_id: u32::from(i.intersection_id),
            name: i.name.clone(),
            reference: Some((&i.reference).into()),
            reference_x_cm: i.reference_site_cm[0],
            reference_y_cm: i.reference_site_cm[1],
            lanes: i.lanes.iter().map(Into::into).collect(),
        }
    }
}

fn intersection(i: &wire::IntersectionGeometry) -> Result<IntersectionMap> {
    let intersection_id = u16::try_from(i.intersection_id)
        .map_err(|_| out_of_range("intersections.intersection_id", i.intersection_id, "0..=65535"))?;
    limit("intersections.lanes", &i.lanes, MAX_LANES)?;
    if i.lanes.is_empty() {
        return Err(ConvertError::Missing { field: "intersections.lanes" });
    }
    let lanes = convert_all(&i.lanes, lane)?;
    let mut ids = BTreeSet::new();
    for l in &lanes {
        if !ids.insert(l.lane_id) {
            return Err(ConvertError::Inconsistent {
                field: "intersections.lanes",
                problem: format!("intersection {intersection_id}: lane id {} is used twice", l.lane_id),
            });
        }
    }
    for l in &lanes {
        for c in &l.connections {
            let target = lanes.iter().find(|t| t.lane_id == c.egress_lane_id);
            if !target.is_some_and(|t| t.direction == LaneDirection::Egress) {
                return Err(ConvertError::Inconsistent {
                    field: "lanes.connections",
                    problem: format!(
                        "intersection {intersection_id}: lane {} connects to lane {}, which is not an egress lane of it",
                        l.lane_id, c.egress_lane_id
                    ),
                });
            }
        }
    }
    Ok(IntersectionMap {
        intersection_id,
        name: id_string("intersections.name", &i.name)?,
        reference: Wgs84::try_from(required("intersections.reference", &i.reference)?)?,
        reference_site_cm: [i.reference_x_cm, i.reference_y_cm],
        lanes,
    })
}

impl From<&MapData> for wire::MapData {
    fn from(m: &MapData) -> Self {
        wire::MapData {
            revision: u32::from(m.revision),
            timestamp_ns: wire_time(m.time),
            intersections: m.intersections.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<&wire::MapData> for MapData {
    type Error = ConvertError;
    fn try_from(m: &wire::MapData) -> Result<Self> {
        let revision = u8::try_from(m.revision)
            .ok()
            .filter(|r| *r < 128)
            .ok_or_else(|| out_of_range("revision", m.revision, "0..=127"))?;
        if m.timestamp_ns == 0 {
            return Err(ConvertError::Missing { field: "timestamp_ns" });
        }
        limit("intersections", &m.intersections, MAX_INTERSECTIONS)?;
        if m.intersections.is_empty() {
            return Err(ConvertError::Missing { field: "intersections" });
        }
        let intersections = convert_all(&m.intersections, intersection)?;
        let ids: BTreeSet<u16> = intersections.iter().map(|i| i.intersection_id).collect();
        if ids.len() != intersections.len() {
            return Err(ConvertError::Inconsistent {
                field: "intersections",
                problem: "an intersection_id is listed twice".into(),
            });
        }
        Ok(MapData { revision, time: timestamp("timestamp_ns", m.timestamp_ns)?, intersections })
    }
}

impl From<&RsiEvent> for wire::RsiEvent {
    fn from(e: &RsiEvent) -> Self {
        wire::RsiEvent {
            event_id: e.event_id,
            r#type: event_type_to_wire(e.event_type) as i32,
            phase: phase_to_wire(e.phase) as i32,
            timestamp_ns: wire_time(e.time),
            start_time_ns: wire_time(e.start_time),
            x_dm: e.position_dm[0],
            y_dm: e.position_dm[1],
            confidence_pct: u32::from(e.confidence_pct),
            track_ids: e.track_ids.clone(),
            lane: e.lane.clone(),
        }
    }
}

impl TryFrom<&wire::RsiEvent> for RsiEvent {
    type Error = ConvertError;
    fn try_from(e: &wire::RsiEvent) -> Result<Self> {
        if e.event_id == 0 {
            return Err(ConvertError::Missing { field: "event_id" });
        }
        if e.timestamp_ns == 0 {
            return Err(ConvertError::Missing { field: "timestamp_ns" });
        }
        let time = timestamp("timestamp_ns", e.timestamp_ns)?;
        let start_time = timestamp("start_time_ns", e.start_time_ns)?;
        if start_time > time || time.secs_since(start_time) > MAX_EVENT_AGE_S as f64 {
            return Err(ConvertError::Inconsistent {
                field: "start_time_ns",
                problem: "the event starts after its timestamp_ns or more than a day before it".into(),
            });
        }
        for v in [e.x_dm, e.y_dm] {
            if !(-MAX_EVENT_OFFSET_DM..=MAX_EVENT_OFFSET_DM).contains(&v) {
                return Err(out_of_range("x_dm / y_dm", v, "-100000..=100000 dm"));
            }
        }
        let confidence_pct = u8::try_from(e.confidence_pct)
            .ok()
            .filter(|c| (1..=100).contains(c))
            .ok_or_else(|| out_of_range("confidence_pct", e.confidence_pct, "1..=100"))?;
        limit("track_ids", &e.track_ids, MAX_EVENT_TRACKS)?;
        if e.track_ids.is_empty() {
            return Err(ConvertError::Missing { field: "track_ids" });
        }
        if e.track_ids.iter().collect::<BTreeSet<_>>().len() != e.track_ids.len() {
            return Err(ConvertError::Inconsistent {
                field: "track_ids",
                problem: "a track id is listed twice".into(),
            });
        }
        if e.lane.len() > MAX_ID_LEN || e.lane.chars().any(char::is_control) {
            return Err(out_of_range("lane", format!("{:?}", e.lane), "0..64 bytes without control characters"));
        }
        Ok(RsiEvent {
            event_id: e.event_id,
            event_type: event_type_from_wire(e.r#type)?,
            phase: phase_from_wire(e.phase)?,
            time,
            start_time,
            position_dm: [e.x_dm, e.y_dm],
            confidence_pct,
            track_ids: e.track_ids.clone(),
            lane: e.lane.clone(),
        })
    }
}

impl From<&ServerControl> for wire::ServerControl {
    fn from(c: &ServerControl) -> Self {
        let body = match c {
            ServerControl::Map(m) => wire::server_control::Body::Map(m.into()),
            ServerControl::Rsi(e) => wire::server_control::Body::Rsi(e.into()),
        };
        wire::ServerControl { body: Some(body) }
    }
}

impl TryFrom<&wire::ServerControl> for ServerControl {
    type Error = ConvertError;
    fn try_from(c: &wire::ServerControl) -> Result<Self> {
        Ok(match required("body", &c.body)? {
            wire::server_control::Body::Map(m) => ServerControl::Map(MapData::try_from(m)?),
            wire::server_control::Body::Rsi(e) => ServerControl::Rsi(RsiEvent::try_from(e)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use rsu_fusion::Timestamp;

    use super::*;
    use crate::{DecodeError, decode, encode};

    const T0: i64 = 1_795_000_000_000_000_000;

    fn node(x_cm: i32, y_cm: i32) -> LaneNode {
        LaneNode { x_cm, y_cm }
    }

    fn map() -> MapData {
        let ingress = MapLane {
            lane_id: 1,
            name: "eb-1".into(),
            direction: LaneDirection::Ingress,
            width_cm: 350,
            nodes: vec![node(-1350, -175), node(-25000, -175)],
            maneuvers: vec![Maneuver::Straight, Maneuver::Left],
            connections: vec![
                LaneConnection { egress_lane_id: 2, maneuver: Maneuver::Straight, signal_group: Some(1) },
                LaneConnection { egress_lane_id: 3, maneuver: Maneuver::Left, signal_group: None },
            ],
        };
        let egress = |lane_id, name: &str| MapLane {
            lane_id,
            name: name.into(),
            direction: LaneDirection::Egress,
            width_cm: 350,
            nodes: vec![node(1350, -175), node(25000, -175)],
            maneuvers: vec![],
            connections: vec![],
        };
        MapData {
            revision: 3,
            time: Timestamp::from_nanos(T0),
            intersections: vec![IntersectionMap {
                intersection_id: 1201,
                name: "city-block".into(),
                reference: Wgs84::new(33.1995, 120.4862, 4.0),
                reference_site_cm: [0, 0],
                lanes: vec![ingress, egress(2, "eb-1/out"), egress(3, "nb-1/out")],
            }],
        }
    }

    fn event() -> RsiEvent {
        RsiEvent {
            event_id: 7,
            event_type: RsiEventType::StoppedVehicle,
            phase: RsiEventPhase::Start,
            time: Timestamp::from_nanos(T0),
            start_time: Timestamp::from_nanos(T0).add_secs(-12.0),
            position_dm: [-600, -52],
            confidence_pct: 93,
            track_ids: vec![4],
            lane: "eb-2".into(),
        }
    }

    fn rejected(control: &ServerControl) -> ConvertError {
        match decode::<ServerControl>(&encode(control)) {
            Err(DecodeError::Invalid(e)) => e,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn map_and_events_round_trip_exactly() {
        for control in [ServerControl::Map(map()), ServerControl::Rsi(event())] {
            assert_eq!(decode::<ServerControl>(&encode(&control)).expect("decodes"), control);
        }
    }

    #[test]
    fn lanes_without_nodes_bad_widths_and_unknown_connections_are_rejected() {
        let mut no_nodes = map();
        no_nodes.intersections[0].lanes[1].nodes.truncate(1);
        assert!(matches!(rejected(&ServerControl::Map(no_nodes)), ConvertError::Inconsistent { .. }));
        let mut narrow = map();
        narrow.intersections[0].lanes[0].width_cm = 100;
        assert!(matches!(
            rejected(&ServerControl::Map(narrow)),
            ConvertError::OutOfRange { field: "lanes.width_cm", .. }
        ));
        let mut wide = map();
        wide.intersections[0].lanes[0].width_cm = 1200;
        assert!(matches!(rejected(&ServerControl::Map(wide)), ConvertError::OutOfRange { .. }));
        let mut unknown = map();
        unknown.intersections[0].lanes[0].connections[0].egress_lane_id = 9;
        let e = rejected(&ServerControl::Map(unknown));
        assert!(matches!(&e, ConvertError::Inconsistent { problem, .. } if problem.contains("lane 9")), "{e}");
        let mut to_ingress = map();
        to_ingress.intersections[0].lanes[0].connections[0].egress_lane_id = 1;
        assert!(matches!(rejected(&ServerControl::Map(to_ingress)), ConvertError::Inconsistent { .. }));
        let mut twice = map();
        twice.intersections[0].lanes[2].lane_id = 2;
        assert!(matches!(rejected(&ServerControl::Map(twice)), ConvertError::Inconsistent { .. }));
        let mut far = map();
        far.intersections[0].lanes[0].nodes[1].x_cm = 400_000;
        assert!(matches!(rejected(&ServerControl::Map(far)), ConvertError::OutOfRange { .. }));
        let mut empty = map();
        empty.intersections.clear();
        assert!(matches!(rejected(&ServerControl::Map(empty)), ConvertError::Missing { .. }));
    }

    #[test]
    fn inconsistent_or_out_of_range_events_are_rejected() {
        let cases = [
            RsiEvent { start_time: Timestamp::from_nanos(T0).add_secs(1.0), ..event() },
            RsiEvent { confidence_pct: 0, ..event() },
            RsiEvent { track_ids: vec![], ..event() },
            RsiEvent { track_ids: vec![3, 3], ..event() },
            RsiEvent { position_dm: [200_000, 0], ..event() },
            RsiEvent { event_id: 0, ..event() },
        ];
        for e in cases {
            rejected(&ServerControl::Rsi(e));
        }
        let mut wire = wire::RsiEvent::from(&event());
        wire.r#type = 9;
        assert!(matches!(RsiEvent::try_from(&wire), Err(ConvertError::UnknownEnum { .. })));
    }
}
