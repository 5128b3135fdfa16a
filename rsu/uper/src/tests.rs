//! Tests of the bindings and conversions: round trips of every message type, the standard's
//! units, the RSM split, refusals of malformed input, and the cross-check of our UPER with
//! asn1tools compiling the same modules (`tools/cross_check.py`).

use std::io::Write;
use std::process::{Command, Stdio};

use rasn::types::{FixedOctetString, Ia5String, OctetString};
use rsu_fusion::{EnuFrame, ObjectClass, Timestamp};
use v2x_proto::domain::{MovementPhase, MovementState, Spat};
use v2x_proto::sample;

use crate::convert::{self, Clamps, time};
use crate::msg::*;
use crate::{MAX_PAYLOAD_BYTES, UperError, decode_msg_frame, encode_msg_frame, to_json};

fn enu() -> EnuFrame {
    EnuFrame::new(sample::intersection_frame(1, 1).reference)
}

fn round_trip(frame: &MessageFrame) -> Vec<u8> {
    let bytes = encode_msg_frame(frame).expect("encodes");
    let back = decode_msg_frame(&bytes).expect("decodes");
    assert_eq!(&back, frame, "the frame changed in a round trip");
    bytes
}

fn at(utc: &str) -> Timestamp {
    // "YYYY-MM-DDTHH:MM:SS.mmm", UTC.
    let num = |r: std::ops::Range<usize>| utc[r].parse::<i64>().expect("digits");
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    // Days from civil (Howard Hinnant's algorithm), for test instants only.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((num(11..13) * 60 + num(14..16)) * 60 + num(17..19)) * 1000 + num(20..23);
    Timestamp::from_nanos(days * 86_400_000_000_000 + ms * 1_000_000)
}

fn spat_sample(now: Timestamp, movements: usize) -> Spat {
    Spat {
        intersection_id: 11,
        revision: 3,
        time: now,
        controller_time: now.add_secs(-0.05),
        movements: (0..movements)
            .map(|i| MovementState {
                signal_group: u8::try_from(i + 1).expect("small"),
                phase: if i % 2 == 0 { MovementPhase::ProtectedMovementAllowed } else { MovementPhase::StopAndRemain },
                start: Some(now.add_secs(-4.0)),
                min_end: now.add_secs(5.0),
                max_end: Some(now.add_secs(30.0)),
                likely: Some(now.add_secs(12.34)),
            })
            .collect(),
    }
}

fn map_sample() -> MessageFrame {
    let point = |lon: i16, lat: i16| RoadPoint {
        pos_offset: PositionOffsetLLV {
            offset_ll: PositionOffsetLL::PositionLL3(PositionLL32B { lon: OffsetLLB16(lon), lat: OffsetLLB16(lat) }),
            offset_v: None,
        },
    };
    let node_ref = |id| NodeReferenceID { region: Some(RoadRegulatorID(10)), id: NodeID(id) };
    let lane = Lane {
        lane_id: LaneID(1),
        lane_width: Some(LaneWidth(350)),
        lane_attributes: Some(LaneAttributes {
            share_with: Some(LaneSharing(rasn::types::BitString::repeat(false, 10))),
            lane_type: LaneTypeAttributes::Vehicle(LaneAttributesVehicle(rasn::types::BitString::repeat(false, 8))),
        }),
        maneuvers: Some(AllowedManeuvers({
            let mut bits = rasn::types::BitString::repeat(false, 12);
            bits.set(AllowedManeuvers::MANEUVER_STRAIGHT_ALLOWED, true);
            bits
        })),
        connects_to: Some(ConnectsToList(vec![Connection {
            remote_intersection: node_ref(12),
            connecting_lane: Some(ConnectingLane { lane: LaneID(2), maneuver: None }),
            phase_id: Some(PhaseID(2)),
        }])),
        speed_limits: Some(SpeedLimitList(vec![RegulatorySpeedLimit {
            type_: SpeedLimitType::VehicleMaxSpeed,
            speed: Speed(833),
        }])),
        points: Some(PointList(vec![point(-300, 120), point(-20, 8)])),
    };
    MessageFrame::MapFrame(MapData {
        msg_cnt: MsgCount(7),
        time_stamp: Some(MinuteOfTheYear(1234)),
        nodes: NodeList(vec![Node {
            name: Some(DescriptiveName(Ia5String::try_from("Yancheng-Kaifang-Ave".to_owned()).expect("IA5"))),
            id: node_ref(11),
            ref_pos: Position3D {
                lat: Latitude(333_891_234),
                long: Longitude(1_201_345_678),
                elevation: Some(Elevation(45)),
            },
            in_links: Some(LinkList(vec![Link {
                name: None,
                upstream_node_id: node_ref(12),
                speed_limits: None,
                link_width: Some(LaneWidth(700)),
                points: None,
                movements: Some(MovementList(vec![Movement {
                    remote_intersection: node_ref(13),
                    phase_id: Some(PhaseID(4)),
                }])),
                lanes: LaneList(vec![lane]),
            }])),
        }]),
    })
}

fn rsi_sample() -> MessageFrame {
    let offset = |lon, lat| PositionOffsetLLV {
        offset_ll: PositionOffsetLL::PositionLL1(PositionLL24B { lon: OffsetLLB12(lon), lat: OffsetLLB12(lat) }),
        offset_v: Some(VerticalOffset::Offset1(VertOffsetB07(-3))),
    };
    MessageFrame::RsiFrame(RoadSideInformation {
        msg_cnt: MsgCount(100),
        moy: Some(MinuteOfTheYear(527_039)),
        id: convert::temporary_id("rsu-1"),
        ref_pos: Position3D { lat: Latitude(333_891_234), long: Longitude(1_201_345_678), elevation: None },
        rtes: Some(RTEList(vec![RTEData {
            rte_id: 1,
            event_type: EventType(401),
            event_source: EventSource::Detection,
            event_pos: Some(offset(120, -40)),
            event_radius: Some(Radius(150)),
            description: Some(Description::TextGB2312(OctetString::from(vec![0xb5, 0xc0, 0xc2, 0xb7]))),
            time_details: Some(RSITimeDetails {
                start_time: Some(MinuteOfTheYear(1000)),
                end_time: None,
                end_time_confidence: Some(TimeConfidence::Time000_010),
            }),
            priority: Some(RSIPriority(FixedOctetString::from([0xe0]))),
            reference_paths: Some(ReferencePathList(vec![ReferencePath {
                active_path: PathPointList(vec![offset(0, 0), offset(200, 30)]),
                path_radius: Radius(50),
            }])),
            reference_links: None,
            event_confidence: Some(Confidence(180)),
        }])),
        rtss: Some(RTSList(vec![RTSData {
            rts_id: 2,
            sign_type: SignType(38),
            sign_pos: None,
            description: Some(Description::TextString(Ia5String::try_from("road works".to_owned()).expect("IA5"))),
            time_details: None,
            priority: None,
            reference_paths: None,
            reference_links: Some(ReferenceLinkList(vec![ReferenceLink {
                upstream_node_id: NodeReferenceID { region: None, id: NodeID(12) },
                downstream_node_id: NodeReferenceID { region: None, id: NodeID(11) },
                reference_lanes: Some(ReferenceLanes(rasn::types::BitString::repeat(true, 16))),
            }])),
        }])),
    })
}

/// One sample of each message type, encoded.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut clamps = Clamps::default();
    let frame = sample::intersection_frame(20, 7);
    let mut cnt = 0;
    let rsm = convert::rsms(&frame, &enu(), &convert::temporary_id("rsu-1"), &mut cnt, MAX_PAYLOAD_BYTES, &mut clamps)
        .expect("RSM");
    let now = frame.time;
    let spat = convert::spats(&[spat_sample(now, 4)], now, &mut cnt, MAX_PAYLOAD_BYTES, &mut clamps).expect("SPAT");
    let bsm = MessageFrame::BsmFrame(convert::bsm(&sample::vehicle_state(), &enu(), &mut clamps));
    vec![
        ("rsm", rsm[0].0.clone()),
        ("spat", spat[0].0.clone()),
        ("bsm", encode_msg_frame(&bsm).expect("BSM")),
        ("map", encode_msg_frame(&map_sample()).expect("MAP")),
        ("rsi", encode_msg_frame(&rsi_sample()).expect("RSI")),
    ]
}

#[test]
fn every_message_type_round_trips() {
    for (name, bytes) in samples() {
        let frame = decode_msg_frame(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(crate::frame_type(&frame), name);
        let again = encode_msg_frame(&frame).expect("re-encodes");
        assert_eq!(again, bytes, "{name}: decoding and encoding again changed the bytes");
        assert!(bytes.len() <= MAX_PAYLOAD_BYTES, "{name}: {} bytes", bytes.len());
        eprintln!("{name}: {} bytes", bytes.len());
        let json = to_json(&frame).expect("JSON");
        assert!(json.contains(&format!("\"{name}Frame\"")), "{name}: {json}");
    }
    round_trip(&map_sample());
    round_trip(&rsi_sample());
}

#[test]
fn bsm_carries_the_vehicle_state_in_the_standards_units() {
    let state = sample::vehicle_state();
    let mut clamps = Clamps::default();
    let bsm = convert::bsm(&state, &enu(), &mut clamps);
    assert!(clamps.is_empty(), "{clamps:?}");
    assert_eq!(bsm.msg_cnt, MsgCount(12));
    assert_eq!(bsm.id, convert::temporary_id("veh-0007"));
    assert_eq!(bsm.pos.lat, Latitude(332_012_345));
    assert_eq!(bsm.pos.long, Longitude(1_205_034_567));
    assert_eq!(bsm.pos.elevation, Some(Elevation(46)));
    assert_eq!(bsm.speed, Speed(555), "11.1 m/s in 0.02 m/s");
    // The sample's yaw is heading 9000 (112.5 degrees from north) in the site frame; true north
    // turns by the meridian convergence at the vehicle, a few hundredths of a degree at most.
    let heading = i32::from(bsm.heading.0);
    assert!((heading - 9000).abs() <= 3, "heading {heading}");
    assert_eq!(bsm.sec_mark, time::dsecond(state.time));
    assert_eq!(bsm.accel_set.long, Acceleration(-125));
    assert_eq!(bsm.accel_set.lat, Acceleration(-30), "left-positive 0.3 m/s² is -30 on J670's right-positive axis");
    assert_eq!(bsm.accel_set.yaw, YawRate(-250), "2.5 deg/s counter-clockwise");
    assert_eq!(bsm.angle, Some(SteeringWheelAngle(-2)), "3.5 degrees to the left in 1.5 degree steps");
    assert_eq!(
        bsm.size,
        VehicleSize { width: VehicleWidth(185), length: VehicleLength(460), height: Some(VehicleHeight(30)) }
    );
    assert_eq!(bsm.brakes.brake_padel, Some(BrakePedalStatus::On));
    assert_eq!(bsm.vehicle_class.classification, BasicVehicleClass::PASSENGER_VEHICLE_TYPE_UNKNOWN);
    let accuracy = bsm.pos_accuracy.expect("accuracy");
    assert_eq!((accuracy.semi_major.0, accuracy.semi_minor.0), (7, 4), "0.35 m and 0.2 m in 0.05 m");
}

#[test]
fn values_outside_the_ranges_are_clamped_and_counted_unknown_ones_are_unavailable() {
    let mut state = sample::vehicle_state();
    state.speed_mps = 250.0;
    state.accel_long_mps2 = -40.0;
    state.size.length_m = 60.0;
    state.steering_rad = f64::NAN;
    let mut clamps = Clamps::default();
    let bsm = convert::bsm(&state, &enu(), &mut clamps);
    assert_eq!(bsm.speed, Speed(8190));
    assert_eq!(bsm.accel_set.long, Acceleration(-2000));
    assert_eq!(bsm.size.length, VehicleLength(4095));
    assert_eq!(bsm.angle, Some(SteeringWheelAngle(127)), "unavailable");
    assert_eq!((clamps.count("speed"), clamps.count("acceleration_long"), clamps.count("vehicle_length")), (1, 1, 1));
    state.speed_mps = f64::NAN;
    assert_eq!(convert::bsm(&state, &enu(), &mut clamps).speed, Speed(8191), "unavailable");
    round_trip(&MessageFrame::BsmFrame(bsm));
}

#[test]
fn message_times_are_milliseconds_in_the_minute_and_minutes_of_the_year() {
    let t = at("2026-03-01T12:34:56.789");
    assert_eq!(time::dsecond(t), DSecond(56_789));
    // 2026 is not a leap year: January and February are 59 days.
    assert_eq!(time::minute_of_year(t), MinuteOfTheYear(59 * 1440 + 12 * 60 + 34));
    assert_eq!(time::minute_of_year(at("2024-12-31T23:59:00.000")), MinuteOfTheYear(365 * 1440 + 23 * 60 + 59));
    assert_eq!(time::minute_of_year(at("2025-01-01T00:00:00.000")), MinuteOfTheYear(0));
}

#[test]
fn headings_are_clockwise_from_north() {
    let mut clamps = Clamps::default();
    assert_eq!(convert::heading(0.0, 0.0, &mut clamps), Heading(7200), "east");
    assert_eq!(convert::heading(std::f64::consts::FRAC_PI_2, 0.0, &mut clamps), Heading(0), "north");
    assert_eq!(convert::heading(std::f64::consts::PI, 0.0, &mut clamps), Heading(21_600), "west");
    // A frame whose north is 1 degree counter-clockwise of true north: east in it is 89 degrees.
    assert_eq!(convert::heading(0.0, -(1.0f64).to_radians(), &mut clamps), Heading(7120));
    assert!(clamps.is_empty());
}

#[test]
fn rsm_positions_are_offsets_from_the_reference_in_tenth_microdegrees() {
    let frame = sample::intersection_frame(16, 3);
    let enu = enu();
    let mut clamps = Clamps::default();
    let reference = convert::position3d(&frame.reference, &mut clamps);
    for p in &frame.participants {
        let data = convert::participant(p, frame.time, &enu, &reference, &mut clamps).expect("a participant");
        let wgs84 = enu.wgs84_from_enu(&p.position_m);
        let (d_lon, d_lat) = match data.pos.offset_ll {
            PositionOffsetLL::PositionLL1(o) => (i64::from(o.lon.0), i64::from(o.lat.0)),
            PositionOffsetLL::PositionLL2(o) => (i64::from(o.lon.0), i64::from(o.lat.0)),
            PositionOffsetLL::PositionLL3(o) => (i64::from(o.lon.0), i64::from(o.lat.0)),
            other => panic!("an intersection-sized offset needs at most 16 bits: {other:?}"),
        };
        let lon = (reference.long.0 as i64 + d_lon) as f64 * 1e-7;
        let lat = (reference.lat.0 as i64 + d_lat) as f64 * 1e-7;
        assert!((lon - wgs84.lon_deg).abs() < 1e-7 && (lat - wgs84.lat_deg).abs() < 1e-7);
        assert_eq!(data.ptc_id, u16::try_from(p.id).expect("sample ids are small"));
        assert_eq!(data.sec_mark, time::dsecond(frame.time));
    }
}

#[test]
fn rsm_is_split_to_sixteen_participants_and_the_payload_budget() {
    let mut frame = sample::intersection_frame(45, 11);
    frame.participants[3].class = ObjectClass::TrafficCone;
    let enu = enu();
    let station = convert::temporary_id("rsu-1");
    for budget in [MAX_PAYLOAD_BYTES, 300] {
        let mut clamps = Clamps::default();
        let mut cnt = 126;
        let rsms = convert::rsms(&frame, &enu, &station, &mut cnt, budget, &mut clamps).expect("RSMs");
        let mut ids = Vec::new();
        let mut counts = Vec::new();
        for (bytes, n) in &rsms {
            assert!(bytes.len() <= budget, "{} bytes over {budget}", bytes.len());
            let MessageFrame::RsmFrame(rsm) = decode_msg_frame(bytes).expect("decodes") else { panic!("not an RSM") };
            assert!((1..=16).contains(&rsm.participants.0.len()));
            assert_eq!(rsm.participants.0.len(), *n);
            counts.push(rsm.msg_cnt.0);
            ids.extend(rsm.participants.0.iter().map(|p| p.ptc_id));
        }
        let expected: Vec<u16> = frame
            .participants
            .iter()
            .filter(|p| p.class != ObjectClass::TrafficCone)
            .map(|p| convert::ptc_id(p.id))
            .collect();
        assert_eq!(ids, expected, "every participant once, in order (the cone left out)");
        assert_eq!(clamps.count("obstacle_left_out"), 1);
        // Message counts continue from 126 and wrap at 128.
        let want: Vec<u8> = (0..rsms.len()).map(|i| ((126 + i) % 128) as u8).collect();
        assert_eq!(counts, want);
        let sizes: Vec<(usize, usize)> = rsms.iter().map(|(b, n)| (*n, b.len())).collect();
        eprintln!("budget {budget}: (participants, bytes) per RSM {sizes:?}");
        if budget == MAX_PAYLOAD_BYTES {
            assert_eq!(rsms.len(), 3, "44 participants fit in three RSMs of at most 16");
        } else {
            assert!(rsms.len() > 3, "a 300-byte budget needs more RSMs than the 16-participant limit");
        }
    }
    let mut empty = frame.clone();
    empty.participants.clear();
    let mut cnt = 0;
    assert!(convert::rsms(&empty, &enu, &station, &mut cnt, 1400, &mut Clamps::default()).expect("none").is_empty());
    assert_eq!(cnt, 0);
}

#[test]
fn spat_counts_down_from_now_in_tenths_and_keeps_sixteen_phases() {
    let now = at("2026-05-04T08:00:00.250");
    let mut clamps = Clamps::default();
    let mut cnt = 5;
    let out = convert::spats(&[spat_sample(now, 18)], now, &mut cnt, MAX_PAYLOAD_BYTES, &mut clamps).expect("SPAT");
    assert_eq!((out.len(), cnt), (1, 6));
    let MessageFrame::SpatFrame(spat) = decode_msg_frame(&out[0].0).expect("decodes") else { panic!("not a SPAT") };
    assert_eq!(spat.msg_cnt, MsgCount(5));
    assert_eq!(spat.time_stamp, Some(DSecond(250)));
    let state = &spat.intersections.0[0];
    assert_eq!(state.intersection_id.id, NodeID(11));
    assert_eq!(state.phases.0.len(), 16);
    assert_eq!(clamps.count("phase_left_out"), 2);
    let phase = &state.phases.0[0];
    assert_eq!(phase.id, PhaseID(1));
    assert_eq!(phase.phase_states.0[0].light, LightState::ProtectedGreen);
    assert_eq!(state.phases.0[1].phase_states.0[0].light, LightState::Red);
    let Some(TimeChangeDetails::Counting(t)) = &phase.phase_states.0[0].timing else { panic!("counting down") };
    assert_eq!(t.start_time, TimeMark(0), "started 4 s ago");
    assert_eq!(t.min_end_time, Some(TimeMark(50)));
    assert_eq!(t.max_end_time, Some(TimeMark(300)));
    assert_eq!(t.likely_end_time, TimeMark(123));
    // Many intersections: split to the budget, every intersection once.
    let many: Vec<Spat> = (0..40).map(|i| Spat { intersection_id: i, ..spat_sample(now, 16) }).collect();
    let out = convert::spats(&many, now, &mut cnt, MAX_PAYLOAD_BYTES, &mut clamps).expect("SPATs");
    let mut ids = Vec::new();
    for (bytes, _) in &out {
        assert!(bytes.len() <= MAX_PAYLOAD_BYTES);
        let MessageFrame::SpatFrame(spat) = decode_msg_frame(bytes).expect("decodes") else { panic!("not a SPAT") };
        ids.extend(spat.intersections.0.iter().map(|s| s.intersection_id.id.0));
    }
    assert_eq!(ids, (0..40).collect::<Vec<u16>>());
}

#[test]
fn malformed_input_is_refused_without_panic() {
    assert!(matches!(decode_msg_frame(&[]), Err(UperError::Decode(_))));
    assert!(matches!(decode_msg_frame(&[0xff; 3]), Err(UperError::Decode(_))));
    let mut bytes = samples().remove(0).1;
    bytes.extend_from_slice(&[0, 0]);
    assert!(matches!(decode_msg_frame(&bytes), Err(UperError::Trailing(2))));
    assert!(matches!(decode_msg_frame(&vec![0; crate::MAX_DECODE_BYTES + 1]), Err(UperError::TooLong(_))));
    // Every truncation of every sample fails cleanly (or decodes to something shorter).
    for (_, bytes) in samples() {
        for len in 0..bytes.len() {
            let _ = decode_msg_frame(&bytes[..len]);
        }
    }
}

/// Runs a Python tool of this crate; `None` (with a note) when Python or asn1tools is missing
/// outside CI. In CI (`CI=true`) a missing asn1tools fails the test.
fn python_tool(tool: &str, args: &[&str], stdin: &str) -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let has_asn1tools =
        Command::new("python3").args(["-c", "import asn1tools"]).output().is_ok_and(|o| o.status.success());
    if !has_asn1tools {
        assert!(!ci, "CI must have Python asn1tools (pip install asn1tools) for the cross-check");
        eprintln!("note: python3 with asn1tools not found; {tool} skipped (pip install asn1tools)");
        return None;
    }
    let path = format!("{}/tools/{tool}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("writes");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).expect("UTF-8"))
}

/// JSON made comparable across the two X.697 renderings: bit strings as hex text (rasn writes a
/// variable-size one as `{"value", "length"}`, the tool as `{"bits", "length"}`), hex in lower
/// case.
fn normalise(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            if keys.len() == 2 && keys.contains(&"length") && (keys.contains(&"value") || keys.contains(&"bits")) {
                let hex = map.get("value").or_else(|| map.get("bits")).cloned().unwrap_or(Value::Null);
                return normalise(hex);
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        Value::String(s) => Value::String(s.to_lowercase()),
        other => other,
    }
}

#[test]
fn asn1tools_decodes_our_uper_to_the_same_values() {
    let samples = samples();
    let input: String =
        samples.iter().map(|(_, b)| b.iter().map(|x| format!("{x:02x}")).collect::<String>() + "\n").collect();
    let Some(output) = python_tool("cross_check.py", &[], &input) else { return };
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), samples.len(), "{output}");
    for ((name, bytes), line) in samples.iter().zip(lines) {
        let theirs: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert!(theirs.get("error").is_none(), "{name}: asn1tools could not decode our UPER: {line}");
        assert_eq!(
            theirs["reencoded_equal"],
            serde_json::Value::Bool(true),
            "{name}: asn1tools re-encodes other bytes"
        );
        let ours: serde_json::Value =
            serde_json::from_str(&to_json(&decode_msg_frame(bytes).expect("decodes")).expect("JSON")).expect("JSON");
        assert_eq!(normalise(theirs["value"].clone()), normalise(ours), "{name}: the decoders disagree");
    }
}

#[test]
fn generated_bindings_are_current() {
    let Some(out) = python_tool("gen_rasn.py", &["--check"], "") else { return };
    assert!(out.contains("is current"), "{out}");
}
