//! Our messages as T/CSAE 53-2020 messages, in the standard's units:
//!
//! | quantity | ours | standard |
//! | --- | --- | --- |
//! | latitude, longitude | degrees (f64) | 1e-7 degree (`Latitude`, `Longitude`) |
//! | elevation | metres above the ellipsoid | 0.1 m, -4096 unknown (`Elevation`) |
//! | speed | m/s | 0.02 m/s, 8191 unavailable (`Speed`) |
//! | heading | radians counter-clockwise from east (site frame) | 0.0125 degree clockwise from true north (`Heading`) |
//! | time of a message | UTC nanoseconds | milliseconds in the minute (`DSecond`), minute of the year (`MinuteOfTheYear`) |
//! | signal times | UTC instants | tenths of a second from now (`TimeCountingDown`, 36000 for "an hour or more") |
//! | acceleration | m/s², longitudinal and left-positive lateral | 0.01 m/s², SAE J670 axes (x forward, y right, z down), 2001 unavailable |
//! | yaw rate | rad/s counter-clockwise | 0.01 degree/s clockwise (`YawRate`, J670) |
//! | steering wheel angle | rad counter-clockwise | 1.5 degree, right positive, 127 unavailable |
//! | size | metres | cm (width, length), 5 cm (height) |
//!
//! A value outside its ASN.1 range is clamped to the nearest end of the range (never sent as an
//! "unavailable" value) and counted in [`Clamps`] by field; a value we do not have (not finite,
//! or not measured) is sent as the standard's "unavailable" value where it has one.
//!
//! An RSM carries 1..=16 participants (`ParticipantList ::= SEQUENCE (SIZE(1..16))`); a frame with
//! more, or whose RSM would exceed the payload budget, becomes several RSMs ([`rsms`]).

use std::collections::BTreeMap;

use rasn::types::{BitString, FixedOctetString};
use rsu_fusion::class::ParticipantType as OurParticipantType;
use rsu_fusion::{
    BoxSize, EnuFrame, ObjectClass, Participant, RoadsideFrame, SourceSet, Timestamp, VehicleState, Wgs84,
};
use v2x_proto::convert::{SPEED_MAX, SPEED_STEPS_PER_MPS, heading_from_yaw};
use v2x_proto::domain::{MovementPhase, MovementState, Spat};

use crate::msg::*;
use crate::{UperError, encode_msg_frame};

/// Values clamped into their ASN.1 range, and participants left out, by field or reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Clamps {
    counts: BTreeMap<&'static str, u64>,
}

impl Clamps {
    /// Counts one clamp of `field`.
    pub fn note(&mut self, field: &'static str) {
        *self.counts.entry(field).or_default() += 1;
    }

    /// Every field clamped at least once, with how often.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.counts.iter().map(|(k, v)| (*k, *v))
    }

    /// How often `field` was clamped.
    pub fn count(&self, field: &str) -> u64 {
        self.counts.get(field).copied().unwrap_or(0)
    }

    /// No clamp at all.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Forgets every count (after they were exported).
    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

/// `value` rounded and clamped to `lo..=hi` (counted as a clamp of `field` when outside); `None`
/// when `value` is not finite.
fn scaled(value: f64, lo: i64, hi: i64, field: &'static str, clamps: &mut Clamps) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let v = value.round();
    if v < lo as f64 {
        clamps.note(field);
        Some(lo)
    } else if v > hi as f64 {
        clamps.note(field);
        Some(hi)
    } else {
        Some(v as i64)
    }
}

/// Narrows a value already clamped to a range that fits `T`.
fn narrow<T: TryFrom<i64> + Default>(v: i64) -> T {
    T::try_from(v).unwrap_or_default()
}

pub mod time {
    //! UTC instants as `DSecond`, `MinuteOfTheYear` and `TimeMark` (leap seconds ignored, as
    //! the Unix clock does).
    use rsu_fusion::Timestamp;
    use rsu_fusion::time::civil_from_days;

    use crate::msg::{DSecond, MinuteOfTheYear};

    const NS_PER_MS: i64 = 1_000_000;
    const NS_PER_MIN: i64 = 60_000_000_000;
    const NS_PER_DAY: i64 = 86_400_000_000_000;

    /// Milliseconds within the UTC minute of `t` (0..=59999).
    pub fn dsecond(t: Timestamp) -> DSecond {
        DSecond(u16::try_from(t.as_nanos().div_euclid(NS_PER_MS).rem_euclid(60_000)).unwrap_or(0))
    }

    /// Minutes since the start of the UTC year of `t` (0..=527039).
    pub fn minute_of_year(t: Timestamp) -> MinuteOfTheYear {
        let ns = t.as_nanos();
        let days = ns.div_euclid(NS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        const CUMULATIVE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let month_index = usize::from(month.clamp(1, 12) - 1);
        let day_of_year = CUMULATIVE[month_index] + i64::from(day) - 1 + i64::from(leap && month > 2);
        let minute = day_of_year * 1440 + ns.rem_euclid(NS_PER_DAY) / NS_PER_MIN;
        MinuteOfTheYear(u32::try_from(minute).unwrap_or(MinuteOfTheYear::INVALID.0))
    }

    impl MinuteOfTheYear {
        /// The value the standard reserves for "invalid".
        pub const INVALID: MinuteOfTheYear = MinuteOfTheYear(527_040);
    }
}

/// The 8-byte temporary id the standard gives a vehicle (BSM `id`, RSM participant `id`) or an
/// RSU (RSM `id`), made from our string id: the FNV-1a 64-bit hash of its bytes, big-endian. The
/// same string always gives the same id, so an OBU can follow a vehicle from its BSMs to the RSM.
pub fn temporary_id(id: &str) -> FixedOctetString<8> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    FixedOctetString::from(hash.to_be_bytes())
}

/// `Latitude`, `Longitude` [1e-7 degree] of a position.
fn lat_lon(p: &Wgs84, clamps: &mut Clamps) -> (Latitude, Longitude) {
    let lat = scaled(p.lat_deg * 1e7, -900_000_000, 900_000_000, "latitude", clamps).unwrap_or(900_000_001);
    let lon = scaled(p.lon_deg * 1e7, -1_799_999_999, 1_800_000_000, "longitude", clamps).unwrap_or(1_800_000_001);
    (Latitude(narrow(lat)), Longitude(narrow(lon)))
}

/// `Elevation` [0.1 m] of a height above the ellipsoid, -4096 (unknown) when not finite.
fn elevation(alt_m: f64, clamps: &mut Clamps) -> Elevation {
    Elevation(narrow(scaled(alt_m * 10.0, -4095, 61439, "elevation", clamps).unwrap_or(-4096)))
}

/// `Position3D` of a position.
pub fn position3d(p: &Wgs84, clamps: &mut Clamps) -> Position3D {
    let (lat, long) = lat_lon(p, clamps);
    Position3D { lat, long, elevation: Some(elevation(p.alt_m, clamps)) }
}

/// `Speed` [0.02 m/s]; 8191 (unavailable) when not finite.
pub fn speed(speed_mps: f64, clamps: &mut Clamps) -> Speed {
    Speed(narrow(scaled(speed_mps * SPEED_STEPS_PER_MPS, 0, i64::from(SPEED_MAX), "speed", clamps).unwrap_or(8191)))
}

/// `Heading` [0.0125 degree, clockwise from true north] of a heading counter-clockwise from
/// east [rad] in a frame whose north is `north_rotation_rad` counter-clockwise of true north
/// ([`EnuFrame::true_north_rotation_rad`]). A heading that is not finite is sent as 0: the
/// standard has no "unavailable" heading.
pub fn heading(yaw_rad: f64, north_rotation_rad: f64, clamps: &mut Clamps) -> Heading {
    if !yaw_rad.is_finite() {
        clamps.note("heading");
        return Heading(0);
    }
    // Clockwise from true north = clockwise from the frame's north + the frame's rotation.
    Heading(narrow(i64::from(heading_from_yaw(yaw_rad - north_rotation_rad))))
}

/// `Acceleration` [0.01 m/s²]; 2001 (unavailable) when not finite.
fn acceleration(a_mps2: f64, field: &'static str, clamps: &mut Clamps) -> Acceleration {
    Acceleration(narrow(scaled(a_mps2 * 100.0, -2000, 2000, field, clamps).unwrap_or(2001)))
}

/// `YawRate` [0.01 degree/s, clockwise] of a counter-clockwise yaw rate [rad/s]; 0 when not
/// finite (the standard has no "unavailable" yaw rate).
fn yaw_rate(rate_rps: f64, clamps: &mut Clamps) -> YawRate {
    YawRate(narrow(scaled(-rate_rps.to_degrees() * 100.0, -32767, 32767, "yaw_rate", clamps).unwrap_or(0)))
}

/// `VehicleSize` of a box: width and length [cm], height [5 cm].
fn vehicle_size(size: &BoxSize, clamps: &mut Clamps) -> VehicleSize {
    let width = scaled(size.width_m * 100.0, 0, 1023, "vehicle_width", clamps).unwrap_or(0);
    let length = scaled(size.length_m * 100.0, 0, 4095, "vehicle_length", clamps).unwrap_or(0);
    let height = scaled(size.height_m * 20.0, 0, 127, "vehicle_height", clamps);
    VehicleSize {
        width: VehicleWidth(narrow(width)),
        length: VehicleLength(narrow(length)),
        height: height.map(|h| VehicleHeight(narrow(h))),
    }
}

/// The `BasicVehicleClass` of a class.
pub fn basic_vehicle_class(class: ObjectClass) -> BasicVehicleClass {
    use ObjectClass::*;
    match class {
        Car => BasicVehicleClass::PASSENGER_VEHICLE_TYPE_UNKNOWN,
        Van => BasicVehicleClass::LIGHT_TRUCK_VEHICLE_TYPE_UNKNOWN,
        Truck => BasicVehicleClass::TRUCK_VEHICLE_TYPE_UNKNOWN,
        Bus => BasicVehicleClass::TRANSIT_TYPE_UNKNOWN,
        Shuttle => BasicVehicleClass::TRANSIT_TYPE_OTHER,
        Delivery => BasicVehicleClass::SPECIAL_VEHICLE_CLASS,
        Emergency => BasicVehicleClass::EMERGENCY_TYPE_UNKNOWN,
        Motorcyclist => BasicVehicleClass::MOTORCYCLE_TYPE_UNKNOWN,
        Cyclist | Tricyclist => BasicVehicleClass::OTHER_TRAVELER_BICYCLE,
        Pedestrian | Barrow => BasicVehicleClass::OTHER_TRAVELER_PEDESTRIAN,
        Unknown | TrafficCone | Obstacle => BasicVehicleClass::UNKNOWN_VEHICLE_CLASS,
    }
}

/// The `PositionConfidence` bucket of a 95% horizontal radius [m]: the smallest bucket at least
/// as large; `unavailable` beyond 500 m or when not finite.
fn position_confidence(radius_95_m: f64) -> PositionConfidence {
    use PositionConfidence::*;
    const BUCKETS: [(f64, PositionConfidence); 15] = [
        (0.01, A1cm),
        (0.02, A2cm),
        (0.05, A5cm),
        (0.10, A10cm),
        (0.20, A20cm),
        (0.50, A50cm),
        (1.0, A1m),
        (2.0, A2m),
        (5.0, A5m),
        (10.0, A10m),
        (20.0, A20m),
        (50.0, A50m),
        (100.0, A100m),
        (200.0, A200m),
        (500.0, A500m),
    ];
    if !radius_95_m.is_finite() || radius_95_m < 0.0 {
        return Unavailable;
    }
    BUCKETS.iter().find(|(limit, _)| radius_95_m <= *limit).map_or(Unavailable, |(_, c)| *c)
}

/// The smallest `PositionOffsetLL` that holds an offset [1e-7 degree], or the absolute position
/// when no offset form does.
fn offset_ll(d_lon: i64, d_lat: i64, lon: Longitude, lat: Latitude) -> PositionOffsetLL {
    let fits = |bits: u32| {
        let half = 1i64 << (bits - 1);
        (-half..half).contains(&d_lon) && (-half..half).contains(&d_lat)
    };
    if fits(12) {
        PositionOffsetLL::PositionLL1(PositionLL24B {
            lon: OffsetLLB12(narrow(d_lon)),
            lat: OffsetLLB12(narrow(d_lat)),
        })
    } else if fits(14) {
        PositionOffsetLL::PositionLL2(PositionLL28B {
            lon: OffsetLLB14(narrow(d_lon)),
            lat: OffsetLLB14(narrow(d_lat)),
        })
    } else if fits(16) {
        PositionOffsetLL::PositionLL3(PositionLL32B {
            lon: OffsetLLB16(narrow(d_lon)),
            lat: OffsetLLB16(narrow(d_lat)),
        })
    } else if fits(18) {
        PositionOffsetLL::PositionLL4(PositionLL36B {
            lon: OffsetLLB18(narrow(d_lon)),
            lat: OffsetLLB18(narrow(d_lat)),
        })
    } else if fits(22) {
        PositionOffsetLL::PositionLL5(PositionLL44B {
            lon: OffsetLLB22(narrow(d_lon)),
            lat: OffsetLLB22(narrow(d_lat)),
        })
    } else if fits(24) {
        PositionOffsetLL::PositionLL6(PositionLL48B {
            lon: OffsetLLB24(narrow(d_lon)),
            lat: OffsetLLB24(narrow(d_lat)),
        })
    } else {
        PositionOffsetLL::PositionLatLon(PositionLLmD64b { lon, lat })
    }
}

/// The smallest `VerticalOffset` that holds a height difference [0.1 m], or the absolute
/// elevation. The offset forms reserve their lowest value for "unavailable", so it is not used.
fn vertical_offset(d: i64, absolute: Elevation) -> VerticalOffset {
    let fits = |bits: u32| {
        let half = 1i64 << (bits - 1);
        (-half + 1..half).contains(&d)
    };
    if fits(7) {
        VerticalOffset::Offset1(VertOffsetB07(narrow(d)))
    } else if fits(8) {
        VerticalOffset::Offset2(VertOffsetB08(narrow(d)))
    } else if fits(9) {
        VerticalOffset::Offset3(VertOffsetB09(narrow(d)))
    } else if fits(10) {
        VerticalOffset::Offset4(VertOffsetB10(narrow(d)))
    } else if fits(11) {
        VerticalOffset::Offset5(VertOffsetB11(narrow(d)))
    } else if fits(12) {
        VerticalOffset::Offset6(VertOffsetB12(narrow(d)))
    } else {
        VerticalOffset::Elevation(absolute)
    }
}

/// `PositionOffsetLLV` of `p` relative to `reference` (both converted to the standard's units
/// first, so the offset is exact in them).
pub fn offset_llv(p: &Wgs84, reference: &Position3D, clamps: &mut Clamps) -> PositionOffsetLLV {
    let here = position3d(p, clamps);
    let d_lon = i64::from(here.long.0) - i64::from(reference.long.0);
    let d_lat = i64::from(here.lat.0) - i64::from(reference.lat.0);
    let offset_v = match (here.elevation, reference.elevation) {
        (Some(h), Some(r)) if h.0 != -4096 && r.0 != -4096 => Some(vertical_offset(i64::from(h.0 - r.0), h)),
        (Some(h), _) if h.0 != -4096 => Some(VerticalOffset::Elevation(h)),
        _ => None,
    };
    PositionOffsetLLV { offset_ll: offset_ll(d_lon, d_lat, here.long, here.lat), offset_v }
}

/// The `SourceType` of a participant: `v2x` when it reports itself, `integrated` when several
/// roadside sensor kinds see it, else the one kind.
fn source_type(sources: SourceSet, self_reported: bool) -> SourceType {
    if self_reported || sources == SourceSet::V2X {
        return SourceType::V2x;
    }
    let kinds = [
        (SourceSet::LIDAR, SourceType::Lidar),
        (SourceSet::CAMERA, SourceType::Video),
        (SourceSet::RADAR, SourceType::MicrowaveRadar),
    ];
    let seen: Vec<SourceType> = kinds.iter().filter(|(s, _)| sources.contains(*s)).map(|(_, t)| *t).collect();
    match seen.as_slice() {
        [] => SourceType::Unknown,
        [one] => *one,
        _ => SourceType::Integrated,
    }
}

/// `ptcId` of a track id: ids 1..=65535 as they are, others wrapped into 1..=65535 (0 is the
/// RSU itself).
pub fn ptc_id(id: u32) -> u16 {
    match u16::try_from(id) {
        Ok(v) if v > 0 => v,
        _ => u16::try_from(id % 65_535 + 1).unwrap_or(u16::MAX),
    }
}

/// One participant of a frame as `ParticipantData`, or `None` for a static obstacle (T/CSAE
/// 53-2020 RSM carries traffic participants only).
pub fn participant(
    p: &Participant,
    frame_time: Timestamp,
    enu: &EnuFrame,
    reference: &Position3D,
    clamps: &mut Clamps,
) -> Option<ParticipantData> {
    let ptc_type = match p.class.participant_type() {
        OurParticipantType::Obstacle => return None,
        OurParticipantType::Unknown => ParticipantType::Unknown,
        OurParticipantType::Motor => ParticipantType::Motor,
        OurParticipantType::NonMotor => ParticipantType::NonMotor,
        OurParticipantType::Pedestrian => ParticipantType::Pedestrian,
    };
    let wgs84 = enu.wgs84_from_enu(&p.position_m);
    let north = enu.true_north_rotation_rad(&p.position_m);
    Some(ParticipantData {
        ptc_type,
        ptc_id: ptc_id(p.id),
        source: source_type(p.sources, p.v2x_id.is_some()),
        id: p.v2x_id.as_deref().map(temporary_id),
        sec_mark: time::dsecond(frame_time),
        pos: offset_llv(&wgs84, reference, clamps),
        pos_confidence: PositionConfidenceSet { pos: position_confidence(p.pos_confidence_95_m), elevation: None },
        transmission: None,
        speed: speed(p.speed_mps, clamps),
        heading: heading(p.yaw_rad, north, clamps),
        angle: None,
        motion_cfd: None,
        accel_set: Some(AccelerationSet4Way {
            long: acceleration(p.accel_mps2, "acceleration_long", clamps),
            lat: Acceleration(2001),
            vert: VerticalAcceleration(-127),
            yaw: yaw_rate(p.yaw_rate_rps, clamps),
        }),
        size: vehicle_size(&p.size, clamps),
        vehicle_class: Some(VehicleClassification { classification: basic_vehicle_class(p.class), fuel_type: None }),
    })
}

/// Packs `items` into as few encoded `MessageFrame`s as `max_per_message` and `budget_bytes`
/// allow, in order: `build` makes the frame of a run of items with a message count. A run that
/// does not fit is halved until it does; one item that alone exceeds the budget is an error.
/// The message counts are consecutive from `msg_cnt`, which is advanced. Returns each frame's
/// bytes with how many items it holds.
pub fn pack<T>(
    items: &[T],
    max_per_message: usize,
    budget_bytes: usize,
    msg_cnt: &mut u8,
    build: impl Fn(&[T], MsgCount) -> MessageFrame,
) -> Result<Vec<(Vec<u8>, usize)>, UperError> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let mut n = rest.len().min(max_per_message.max(1));
        loop {
            let bytes = encode_msg_frame(&build(&rest[..n], MsgCount(*msg_cnt)))?;
            if bytes.len() <= budget_bytes {
                out.push((bytes, n));
                break;
            }
            if n == 1 {
                return Err(UperError::TooLarge { bytes: bytes.len(), budget: budget_bytes });
            }
            n = n.div_ceil(2);
        }
        *msg_cnt = (*msg_cnt + 1) % 128;
        rest = &rest[n..];
    }
    Ok(out)
}

/// The RSMs of a frame: every participant (obstacles left out, counted as `obstacle_left_out`)
/// in as few RSMs as the standard and `budget_bytes` allow: at most 16 participants each
/// (`ParticipantList ::= SEQUENCE (SIZE(1..16))`), each encoded `MessageFrame` at most
/// `budget_bytes` ([`pack`]). No RSM for a frame without participants.
pub fn rsms(
    frame: &RoadsideFrame,
    enu: &EnuFrame,
    station_id: &FixedOctetString<8>,
    msg_cnt: &mut u8,
    budget_bytes: usize,
    clamps: &mut Clamps,
) -> Result<Vec<(Vec<u8>, usize)>, UperError> {
    let reference = position3d(&frame.reference, clamps);
    let mut all = Vec::with_capacity(frame.participants.len());
    for p in &frame.participants {
        match participant(p, frame.time, enu, &reference, clamps) {
            Some(data) => all.push(data),
            None => clamps.note("obstacle_left_out"),
        }
    }
    pack(&all, 16, budget_bytes, msg_cnt, |run, msg_cnt| {
        MessageFrame::RsmFrame(RoadsideSafetyMessage {
            msg_cnt,
            id: *station_id,
            ref_pos: reference.clone(),
            participants: ParticipantList(run.to_vec()),
        })
    })
}

/// The `LightState` of a J2735 movement phase. CSAE 53 has no red-amber: `pre-movement` is sent
/// as `red` (vehicles still stop); both clearances are `yellow`.
pub fn light_state(phase: MovementPhase) -> LightState {
    match phase {
        MovementPhase::Unavailable => LightState::Unavailable,
        MovementPhase::Dark => LightState::Dark,
        MovementPhase::StopThenProceed => LightState::FlashingRed,
        MovementPhase::StopAndRemain | MovementPhase::PreMovement => LightState::Red,
        MovementPhase::PermissiveMovementAllowed => LightState::PermissiveGreen,
        MovementPhase::ProtectedMovementAllowed => LightState::ProtectedGreen,
        MovementPhase::PermissiveClearance | MovementPhase::ProtectedClearance => LightState::Yellow,
        MovementPhase::CautionConflictingTraffic => LightState::FlashingYellow,
    }
}

/// `TimeMark` [0.1 s] from `now` to `t`: 0 for the past, 36000 for an hour or more.
fn tenths_until(t: Timestamp, now: Timestamp, clamps: &mut Clamps) -> TimeMark {
    let tenths = (t.secs_since(now) * 10.0).round();
    if tenths >= 36_000.0 {
        clamps.note("time_mark");
        return TimeMark(36_000);
    }
    TimeMark(narrow(tenths.max(0.0) as i64))
}

/// One movement as a `Phase` with its current `PhaseState`, timed by counting down from `now`:
/// the start (0 once started), the end bounds, and the likely end (the minimum end when the
/// controller gives no likely time).
pub fn phase(m: &MovementState, now: Timestamp, clamps: &mut Clamps) -> Phase {
    let timing = TimeCountingDown {
        start_time: m.start.map_or(TimeMark(0), |s| tenths_until(s, now, clamps)),
        min_end_time: Some(tenths_until(m.min_end, now, clamps)),
        max_end_time: m.max_end.map(|t| tenths_until(t, now, clamps)),
        likely_end_time: tenths_until(m.likely.unwrap_or(m.min_end), now, clamps),
        time_confidence: None,
        next_start_time: None,
        next_duration: None,
    };
    Phase {
        id: PhaseID(m.signal_group),
        phase_states: PhaseStateList(vec![PhaseState {
            light: light_state(m.phase),
            timing: Some(TimeChangeDetails::Counting(timing)),
        }]),
    }
}

/// One intersection's SPaT as an `IntersectionState` timed from `now`, with up to 16 phases
/// (`PhaseList ::= SEQUENCE (SIZE(1..16))`; movements beyond the 16th are left out and counted
/// as `phase_left_out`). `None` for a SPaT without movements.
pub fn intersection_state(s: &Spat, now: Timestamp, clamps: &mut Clamps) -> Option<IntersectionState> {
    if s.movements.is_empty() {
        return None;
    }
    for _ in 16..s.movements.len() {
        clamps.note("phase_left_out");
    }
    Some(IntersectionState {
        intersection_id: NodeReferenceID { region: None, id: NodeID(s.intersection_id) },
        status: IntersectionStatusObject(BitString::repeat(false, 16)),
        moy: Some(time::minute_of_year(s.time)),
        time_stamp: Some(time::dsecond(s.time)),
        time_confidence: None,
        phases: PhaseList(s.movements.iter().take(16).map(|m| phase(m, now, clamps)).collect()),
    })
}

/// The SPATs of the intersections' SPaTs, made at `now`: up to 32 intersections per SPAT
/// (`IntersectionStateList ::= SEQUENCE (SIZE(1..32))`), each encoded `MessageFrame` at most
/// `budget_bytes` ([`pack`]). None for no SPaT.
pub fn spats(
    spats: &[Spat],
    now: Timestamp,
    msg_cnt: &mut u8,
    budget_bytes: usize,
    clamps: &mut Clamps,
) -> Result<Vec<(Vec<u8>, usize)>, UperError> {
    let states: Vec<IntersectionState> = spats.iter().filter_map(|s| intersection_state(s, now, clamps)).collect();
    pack(&states, 32, budget_bytes, msg_cnt, |run, msg_cnt| {
        MessageFrame::SpatFrame(SPAT {
            msg_cnt,
            moy: Some(time::minute_of_year(now)),
            time_stamp: Some(time::dsecond(now)),
            name: None,
            intersections: IntersectionStateList(run.to_vec()),
        })
    })
}

/// `PositionalAccuracy` of a 1-sigma ellipse: axes [0.05 m, 254 for 12.7 m or more, 255
/// unavailable], orientation [360/65535 degree clockwise from north, 65535 unavailable].
fn positional_accuracy(a: &rsu_fusion::measurement::PositionAccuracy, clamps: &mut Clamps) -> PositionalAccuracy {
    let axis = |m: f64, field, clamps: &mut Clamps| -> u8 {
        if !m.is_finite() || m < 0.0 {
            return 255;
        }
        narrow(scaled(m / 0.05, 0, 254, field, clamps).unwrap_or(255))
    };
    let orientation = if a.orientation_rad.is_finite() {
        let deg = (90.0 - a.orientation_rad.to_degrees()).rem_euclid(360.0);
        narrow::<u16>(((deg / (360.0 / 65535.0)).round() as i64).clamp(0, 65534))
    } else {
        65535
    };
    PositionalAccuracy {
        semi_major: SemiMajorAxisAccuracy(axis(a.semi_major_m, "semi_major", clamps)),
        semi_minor: SemiMinorAxisAccuracy(axis(a.semi_minor_m, "semi_minor", clamps)),
        orientation: SemiMajorAxisOrientation(orientation),
    }
}

/// A vehicle's state as a BSM, heading measured against true north at its position in `enu`.
pub fn bsm(state: &VehicleState, enu: &EnuFrame, clamps: &mut Clamps) -> BasicSafetyMessage {
    let p = enu.enu_from_wgs84(&state.position);
    let north = if p.coords.iter().all(|c| c.is_finite()) { enu.true_north_rotation_rad(&p) } else { 0.0 };
    let steering_deg = -state.steering_rad.to_degrees();
    let angle = if state.steering_rad.is_finite() {
        SteeringWheelAngle(narrow(scaled(steering_deg / 1.5, -126, 126, "steering_wheel_angle", clamps).unwrap_or(127)))
    } else {
        SteeringWheelAngle(127)
    };
    BasicSafetyMessage {
        msg_cnt: MsgCount(narrow(i64::from(state.message_count % 128))),
        id: temporary_id(&state.vehicle_id),
        sec_mark: time::dsecond(state.time),
        time_confidence: None,
        pos: position3d(&state.position, clamps),
        pos_accuracy: Some(positional_accuracy(&state.accuracy, clamps)),
        pos_confidence: None,
        transmission: TransmissionState::Unavailable,
        speed: speed(state.speed_mps, clamps),
        heading: heading(state.yaw_rad, north, clamps),
        angle: Some(angle),
        motion_cfd: None,
        accel_set: AccelerationSet4Way {
            long: acceleration(state.accel_long_mps2, "acceleration_long", clamps),
            // Ours is left-positive; J670's y axis points right.
            lat: acceleration(-state.accel_lat_mps2, "acceleration_lat", clamps),
            vert: VerticalAcceleration(-127),
            yaw: yaw_rate(state.yaw_rate_rps, clamps),
        },
        brakes: BrakeSystemStatus {
            brake_padel: Some(if state.brakes.pedal_pressed { BrakePedalStatus::On } else { BrakePedalStatus::Off }),
            wheel_brakes: None,
            traction: None,
            abs: state.brakes.abs_active.then_some(AntiLockBrakeStatus::Engaged),
            scs: None,
            brake_boost: None,
            aux_brakes: None,
        },
        size: vehicle_size(&state.size, clamps),
        vehicle_class: VehicleClassification { classification: basic_vehicle_class(state.class), fuel_type: None },
        safety_ext: None,
        emergency_ext: None,
    }
}
