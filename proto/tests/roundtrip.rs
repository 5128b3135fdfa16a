//! Round trips between domain values and wire bytes, rejection of invalid wire content, and the
//! wire-size budget of the broadcast frame.

use nalgebra::Point3;
use prost::Message;
use rsu_fusion::measurement::*;
use rsu_fusion::*;
use v2x_proto::domain::*;
use v2x_proto::{ConvertError, DecodeError, decode, encode, sample, wire};

#[test]
fn sensor_frames_round_trip_exactly() {
    for frame in [sample::lidar_frame(), sample::camera_frame()] {
        let bytes = encode(&frame);
        let back: SensorFrame = decode::<SensorFrame>(&bytes).expect("decodes");
        assert_eq!(back, frame);
    }
}

#[test]
fn vehicle_state_round_trips_within_one_unit() {
    let state = sample::vehicle_state();
    let back: VehicleState = decode::<VehicleState>(&encode(&state)).expect("decodes");
    assert_eq!(back.vehicle_id, state.vehicle_id);
    assert_eq!(back.time, state.time);
    assert!((back.position.lat_deg - state.position.lat_deg).abs() <= 0.5e-7);
    assert!((back.position.lon_deg - state.position.lon_deg).abs() <= 0.5e-7);
    assert!((back.position.alt_m - state.position.alt_m).abs() <= 0.005);
    assert!((back.speed_mps - state.speed_mps).abs() <= 0.01);
    assert!((back.yaw_rad - state.yaw_rad).abs() < 1e-12);
    assert!((back.accel_long_mps2 - state.accel_long_mps2).abs() <= 0.005);
    assert_eq!(back.brakes, state.brakes);
    assert_eq!(back.adas, state.adas);
    assert_eq!(back.warnings.len(), 1);
    assert!((back.warnings[0].ttc_s.expect("ttc") - 2.4).abs() < 1e-9);
    assert_eq!(back.gnss, GnssStatus::RtkFixed);
    // Encoding the decoded value again gives the same bytes: the fixed-point grid is stable.
    assert_eq!(encode(&back), encode(&state));
}

#[test]
fn roadside_frame_round_trip_is_stable_on_the_grid() {
    let frame = sample::intersection_frame(50, 1);
    let bytes = encode(&frame);
    let back: RoadsideFrame = decode::<RoadsideFrame>(&bytes).expect("decodes");
    assert_eq!(back.participants.len(), 50);
    for (a, b) in frame.participants.iter().zip(&back.participants) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.class, b.class);
        assert!((a.position_m - b.position_m).norm() <= 0.09, "{:?} vs {:?}", a.position_m, b.position_m);
        assert!((a.speed_mps - b.speed_mps).abs() <= 0.01);
        let dyaw = (a.yaw_rad - b.yaw_rad + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI)
            - std::f64::consts::PI;
        assert!(dyaw.abs() <= (0.0125_f64 / 2.0).to_radians() + 1e-12);
        assert!(b.age_s <= 12.7 + 1e-9);
    }
    assert_eq!(encode(&back), bytes);
    assert_eq!((back.sensors.clone(), back.newest_capture), (frame.sensors.clone(), frame.newest_capture));
}

/// Protocol version 2 (PROTOCOL.md §2.4): the RSU's id and sensor health only on change, the
/// frame's freshness as `newest_capture_age_us`; a version 1 frame's freshness is its newest
/// sensor capture.
#[test]
fn roadside_frame_freshness_with_and_without_the_sensor_health() {
    let full = sample::intersection_frame(5, 3);
    let newest = full.newest_capture.expect("the sample carries its freshness");
    // Without the id and health (as most version 2 frames go): the freshness stays, to the µs.
    let bare =
        RoadsideFrame { rsu_id: String::new(), sensors: Vec::new(), perception_regions: Vec::new(), ..full.clone() };
    let back: RoadsideFrame = decode(&encode(&bare)).expect("decodes");
    assert!(back.sensors.is_empty() && back.rsu_id.is_empty());
    assert_eq!(back.newest_capture, Some(newest));
    assert_eq!(back.participants.len(), 5);
    assert!(encode(&bare).len() + 100 < encode(&full).len(), "the health is the bulk of the header");
    let mut w = wire::RoadsideFrame::from(&bare);
    assert_eq!(w.newest_capture_age_us, Some(50_000), "50 ms before the frame");
    // Rounded down to the µs: never older than it was.
    let odd = RoadsideFrame { newest_capture: Some(Timestamp::from_nanos(newest.as_nanos() - 999)), ..bare.clone() };
    let back: RoadsideFrame = decode(&encode(&odd)).expect("decodes");
    assert_eq!(back.newest_capture, Some(newest));
    // A sensor clock ahead of the RSU's: a negative age.
    let ahead = RoadsideFrame { newest_capture: Some(full.time.add_secs(0.002)), ..bare.clone() };
    assert_eq!(decode::<RoadsideFrame>(&encode(&ahead)).expect("decodes").newest_capture, ahead.newest_capture);
    // Present even when the age is 0 (proto3 `optional`).
    let now = RoadsideFrame { newest_capture: Some(full.time), ..bare.clone() };
    assert_eq!(decode::<RoadsideFrame>(&encode(&now)).expect("decodes").newest_capture, Some(full.time));

    // A version 1 RSU's frame: no `newest_capture_age_us`, the id and the health of every
    // sensor in every frame; the freshness is the newest sensor capture.
    let mut v1 = wire::RoadsideFrame::from(&full);
    v1.newest_capture_age_us = None;
    let older = v1.sensors[0].last_capture_ns - 30_000_000;
    v1.sensors[1].last_capture_ns = older;
    let back = RoadsideFrame::try_from(&v1).expect("a version 1 frame decodes");
    assert_eq!(back.newest_capture, Some(newest));
    v1.sensors.iter_mut().for_each(|s| s.last_capture_ns = 0);
    assert_eq!(RoadsideFrame::try_from(&v1).expect("decodes").newest_capture, None, "no capture yet");

    // An age that puts the capture before 1970 is refused, with the field named.
    w.newest_capture_age_us = Some(i64::MAX);
    assert!(matches!(
        RoadsideFrame::try_from(&w),
        Err(ConvertError::OutOfRange { field: "newest_capture_age_us", .. })
    ));
}

#[test]
fn replay_meta_and_ground_truth_round_trip_exactly() {
    let meta = ReplayMeta {
        format_version: v2x_proto::domain::REPLAY_FORMAT_VERSION,
        software_version: "vehicle-sim 0.1.0".into(),
        scenario: "bus-pedestrian".into(),
        description: "A pedestrian steps out from behind a parked bus.".into(),
        seed: 42,
        site: sample::site(),
        rsu_ids: vec!["rsu-cityblock-1".into()],
        start_time: Timestamp::from_nanos(1_795_000_000_000_000_000),
        end_time: Timestamp::from_nanos(1_795_000_020_000_000_000),
        // Set, so the round trip covers the field.
        truth_ids_per_frame: true,
    };
    let back: ReplayMeta = decode::<ReplayMeta>(&encode(&meta)).expect("decodes");
    // Origin goes through 1e-7 degree fixed point; everything else is exact.
    assert!((back.site.origin.lat_deg - meta.site.origin.lat_deg).abs() < 1e-7);
    let mut expected = meta.clone();
    expected.site.origin = back.site.origin;
    assert_eq!(back, expected);

    let truth = GroundTruthFrame {
        time: Timestamp::from_nanos(1_795_000_000_100_000_000),
        objects: vec![GroundTruthObject {
            id: 3,
            class: ObjectClass::Bus,
            center_m: Point3::new(12.25, -40.125, 1.6),
            yaw_rad: 1.5,
            speed_mps: 0.0,
            yaw_rate_rps: 0.0,
            accel_mps2: 0.0,
            size: BoxSize::new(12.0, 2.55, 3.2),
            v2x_id: None,
        }],
        signals: vec![SignalState { signal_id: "sig-n".into(), phase: SignalPhase::Red, remaining_s: 12.5 }],
    };
    let back: GroundTruthFrame = decode::<GroundTruthFrame>(&encode(&truth)).expect("decodes");
    assert_eq!(back, truth);
}

#[test]
fn session_messages_round_trip() {
    let hello = ClientHello {
        versions: vec![1],
        role: Role::Vehicle,
        id: "veh-0007".into(),
        subscription: Some(Subscription::AroundMe { radius_m: 150 }),
    };
    let back: ClientHello = decode::<ClientHello>(&encode(&hello)).expect("decodes");
    assert_eq!(back, hello);
    let server = ServerHello {
        version: 1,
        rsu_id: "rsu-cityblock-1".into(),
        site_origin: Wgs84::new(33.2, 120.5, 3.0),
        broadcast_rate_hz: 10.0,
        default_radius_m: 200,
    };
    let back: ServerHello = decode::<ServerHello>(&encode(&server)).expect("decodes");
    assert_eq!(back, server);
}

#[test]
fn invalid_content_is_rejected_with_the_field_named() {
    let mut w = wire::SensorFrame::from(&sample::lidar_frame());
    w.detections = None;
    assert_eq!(SensorFrame::try_from(&w), Err(ConvertError::Missing { field: "detections" }));

    let mut w = wire::SensorFrame::from(&sample::lidar_frame());
    if let Some(wire::sensor_frame::Detections::Lidar(l)) = &mut w.detections {
        l.boxes[0].x_m = f32::NAN;
    }
    assert!(matches!(SensorFrame::try_from(&w), Err(ConvertError::OutOfRange { field: "lidar.x_m", .. })));

    let mut w = wire::SensorFrame::from(&sample::lidar_frame());
    if let Some(wire::sensor_frame::Detections::Lidar(l)) = &mut w.detections {
        l.boxes[0].object_class = 99;
    }
    assert_eq!(SensorFrame::try_from(&w), Err(ConvertError::UnknownEnum { field: "lidar.object_class", value: 99 }));

    let mut w = wire::VehicleState::from(&sample::vehicle_state());
    w.heading = 28_800;
    assert!(matches!(VehicleState::try_from(&w), Err(ConvertError::OutOfRange { field: "heading", .. })));

    let mut w = wire::VehicleState::from(&sample::vehicle_state());
    w.vehicle_id = String::new();
    assert!(matches!(VehicleState::try_from(&w), Err(ConvertError::OutOfRange { field: "vehicle_id", .. })));

    let mut w = wire::RoadsideFrame::from(&sample::intersection_frame(3, 2));
    w.participants[1].sources = 0x100;
    assert!(matches!(RoadsideFrame::try_from(&w), Err(ConvertError::OutOfRange { field: "participants.sources", .. })));

    let mut w = wire::RoadsideFrame::from(&sample::intersection_frame(3, 2));
    w.participants = vec![w.participants[0].clone(); v2x_proto::convert::MAX_PARTICIPANTS + 1];
    assert!(matches!(RoadsideFrame::try_from(&w), Err(ConvertError::TooMany { field: "participants", .. })));

    let big = vec![0u8; v2x_proto::MAX_MESSAGE_BYTES + 1];
    assert!(matches!(decode::<SensorFrame>(&big), Err(DecodeError::TooLarge { .. })));
    assert!(matches!(decode::<SensorFrame>(&[0xff, 0xff]), Err(DecodeError::Malformed(_))));
}

#[test]
fn heading_conversion_follows_the_standards() {
    use v2x_proto::convert::{heading_from_yaw, yaw_from_heading};
    // Facing north: yaw 90 degrees (counter-clockwise from east), heading 0.
    assert_eq!(heading_from_yaw(std::f64::consts::FRAC_PI_2), 0);
    // Facing east: heading 90 degrees = 7200 units.
    assert_eq!(heading_from_yaw(0.0), 7200);
    // Facing west: heading 270 degrees.
    assert_eq!(heading_from_yaw(std::f64::consts::PI), 21_600);
    assert!((yaw_from_heading(14_400) + std::f64::consts::FRAC_PI_2).abs() < 1e-12, "south");
    // Just west of north wraps to the top of the range, never to 28800.
    assert_eq!(heading_from_yaw(std::f64::consts::FRAC_PI_2 + 1e-9), 0);
    assert_eq!(heading_from_yaw(std::f64::consts::FRAC_PI_2 + 0.02_f64.to_radians()), 28_798);
}

#[test]
fn descriptor_set_holds_every_message() {
    let fds = prost_types::FileDescriptorSet::decode(v2x_proto::FILE_DESCRIPTOR_SET).expect("valid descriptor set");
    let names: Vec<String> = fds
        .file
        .iter()
        .flat_map(|f| f.message_type.iter().map(move |m| format!("{}.{}", f.package(), m.name())))
        .collect();
    for needed in [
        "v2x.v1.SensorFrame",
        "v2x.v1.RoadsideFrame",
        "v2x.v1.VehicleState",
        "v2x.v1.ClientHello",
        "v2x.v1.ServerHello",
        "v2x.v1.GroundTruthFrame",
        "v2x.v1.ReplayMeta",
        "v2x.v1.RsuInfo",
        "v2x.v1.RsuHeartbeat",
        "v2x.v1.ConfigChange",
        "v2x.v1.RoadEvent",
        "v2x.v1.DownlinkAck",
        "v2x.v1.MapData",
        "v2x.v1.RsiEvent",
        "v2x.v1.ServerControl",
    ] {
        assert!(names.iter().any(|n| n == needed), "{needed} missing from {names:?}");
    }
}

/// The per-participant budget of issue 2: a 200-participant frame without path history must
/// average at most 40 bytes per participant (frame overhead included).
#[test]
fn broadcast_frame_fits_the_size_budget() {
    let frame = sample::intersection_frame(200, 7);
    let bytes = wire::RoadsideFrame::from(&frame).encoded_len();
    let per = bytes as f64 / 200.0;
    println!("200-participant RoadsideFrame: {bytes} bytes, {per:.1} bytes per participant");
    assert!(per <= 40.0, "{per:.1} bytes per participant");
}

#[test]
fn the_fullest_frame_the_engine_makes_decodes() {
    // More objects than a frame carries: 40 × 30 parked cars 4.5 m apart around the lidar, seen
    // in five frames (confirmed after three).
    let mut fusion = Fusion::new(sample::site(), FusionConfig::default()).expect("engine");
    let cars: Vec<LidarDetection> = (0..40)
        .flat_map(|i| {
            (0..30).map(move |j| LidarDetection {
                center_in_sensor: Point3::new(-87.75 + 4.5 * f64::from(i), -65.25 + 4.5 * f64::from(j), -5.0),
                size: BoxSize::new(4.0, 1.8, 1.5),
                yaw_rad: 0.0,
                class: ObjectClass::Car,
                score: 0.9,
                point_count: Some(100),
            })
        })
        .collect();
    let t0 = sample::lidar_frame().capture_time;
    for k in 0..5u32 {
        let capture = t0.add_secs(0.1 * f64::from(k));
        let frame = SensorFrame {
            sensor_id: "lidar-ne".into(),
            sequence: u64::from(k),
            capture_time: capture,
            detections: Detections::Lidar(cars.clone()),
        };
        assert_eq!(fusion.handle_sensor_frame(capture.add_secs(0.01), frame), Ingest::Accepted);
    }
    let at = t0.add_secs(0.45);
    let objects = fusion.poll_objects(at);
    let max = v2x_proto::convert::MAX_PARTICIPANTS;
    assert!(objects.len() > max, "{} objects", objects.len());
    let frame = fusion.roadside_frame_from(at, &objects);
    assert_eq!(frame.participants.len(), max);
    assert!(frame.participants.iter().zip(&objects).all(|(p, o)| p.id == o.id), "the oldest tracks, in order");
    assert_eq!(fusion.stats().participants_left_out, (objects.len() - max) as u64);
    let bytes = encode(&frame);
    assert!(bytes.len() <= v2x_proto::MAX_MESSAGE_BYTES, "{} bytes", bytes.len());
    let decoded: RoadsideFrame = decode(&bytes).expect("a receiver accepts the fullest frame");
    assert_eq!(decoded.participants.len(), max);
}
