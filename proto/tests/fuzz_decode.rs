//! Property tests: arbitrary bytes never panic a decoder, and valid domain values survive a round
//! trip through the wire.

use nalgebra::Point3;
use proptest::prelude::*;
use rsu_fusion::measurement::{Detections, LidarDetection, SensorFrame};
use rsu_fusion::{BoxSize, ObjectClass, Participant, RoadsideFrame, SourceSet, Timestamp, VehicleState};
use v2x_proto::domain::{ClientHello, GroundTruthFrame, GroundTruthObject, ReplayMeta, SignalPhase, SignalState};
use v2x_proto::{decode, decode_ground_truth_frame, decode_sensor_frame, encode, wire};

/// A ground-truth frame of a few objects of several classes (one of them connected) and a signal.
fn truth_frame() -> GroundTruthFrame {
    let objects = (0..6u32)
        .map(|i| GroundTruthObject {
            id: 10 + i,
            class: ObjectClass::from_code(i as i32 % 8).expect("valid code"),
            center_m: Point3::new(-40.0 + 13.5 * f64::from(i), 21.25 - 3.0 * f64::from(i), 0.5),
            yaw_rad: -3.0 + f64::from(i),
            speed_mps: 2.5 * f64::from(i),
            yaw_rate_rps: 0.05 * f64::from(i),
            accel_mps2: -0.5,
            size: BoxSize::new(4.5, 1.8, 1.5),
            v2x_id: (i == 2).then(|| "cv-7".to_owned()),
        })
        .collect();
    GroundTruthFrame {
        time: Timestamp::from_nanos(1_795_000_000_100_000_000),
        objects,
        signals: vec![SignalState { signal_id: "sig-e".into(), phase: SignalPhase::Green, remaining_s: 4.5 }],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<wire::SensorFrame, SensorFrame>(&bytes);
        let _ = decode::<wire::VehicleState, VehicleState>(&bytes);
        let _ = decode::<wire::RoadsideFrame, RoadsideFrame>(&bytes);
        let _ = decode::<wire::ClientHello, ClientHello>(&bytes);
        let _ = decode::<wire::GroundTruthFrame, GroundTruthFrame>(&bytes);
        let _ = decode::<wire::ReplayMeta, ReplayMeta>(&bytes);
    }

    #[test]
    fn fast_decoders_give_what_decode_gives(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert_eq!(
            format!("{:?}", decode_sensor_frame(&bytes)),
            format!("{:?}", decode::<wire::SensorFrame, SensorFrame>(&bytes))
        );
        prop_assert_eq!(
            format!("{:?}", decode_ground_truth_frame(&bytes)),
            format!("{:?}", decode::<wire::GroundTruthFrame, GroundTruthFrame>(&bytes))
        );
    }

    #[test]
    fn fast_decoders_give_what_decode_gives_on_damaged_frames(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        camera in any::<bool>(),
    ) {
        let frame = if camera { v2x_proto::sample::camera_frame() } else { v2x_proto::sample::lidar_frame() };
        let mut bytes = encode::<wire::SensorFrame, _>(&frame);
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        prop_assert_eq!(
            format!("{:?}", decode_sensor_frame(&bytes)),
            format!("{:?}", decode::<wire::SensorFrame, SensorFrame>(&bytes))
        );
    }

    #[test]
    fn fast_decoders_give_what_decode_gives_on_damaged_truth_frames(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode::<wire::GroundTruthFrame, _>(&truth_frame());
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        prop_assert_eq!(
            format!("{:?}", decode_ground_truth_frame(&bytes)),
            format!("{:?}", decode::<wire::GroundTruthFrame, GroundTruthFrame>(&bytes))
        );
    }

    #[test]
    fn mutated_valid_frames_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode::<wire::RoadsideFrame, _>(&v2x_proto::sample::intersection_frame(8, 3));
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        let _ = decode::<wire::RoadsideFrame, RoadsideFrame>(&bytes);
    }

    #[test]
    fn lidar_detections_round_trip(
        x in -1000.0f32..1000.0, y in -1000.0f32..1000.0, z in -50.0f32..50.0,
        l in 0.1f32..30.0, w in 0.1f32..10.0, h in 0.1f32..10.0,
        yaw in -3.0f32..3.0, score in 0.0f32..1.0, class in 0i32..15, points in proptest::option::of(any::<u32>()),
        seq in any::<u64>(), t in 0i64..i64::MAX,
    ) {
        // Values representable in the wire's f32 fields round-trip exactly.
        let frame = SensorFrame {
            sensor_id: "lidar-1".into(),
            sequence: seq,
            capture_time: Timestamp::from_nanos(t),
            detections: Detections::Lidar(vec![LidarDetection {
                center_in_sensor: Point3::new(f64::from(x), f64::from(y), f64::from(z)),
                size: BoxSize::new(f64::from(l), f64::from(w), f64::from(h)),
                yaw_rad: f64::from(yaw),
                class: ObjectClass::from_code(class).expect("valid code"),
                score: f64::from(score),
                point_count: points,
            }]),
        };
        let bytes = encode::<wire::SensorFrame, _>(&frame);
        let back: SensorFrame = decode::<wire::SensorFrame, _>(&bytes).expect("decodes");
        prop_assert_eq!(decode_sensor_frame(&bytes).expect("decodes"), back.clone());
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn participants_on_the_grid_round_trip_exactly(
        id in any::<u32>(), class in 0i32..15, conf in 0u32..=100, sources in 0u32..16,
        x in -20_000i32..20_000, y in -20_000i32..20_000, z in -100i32..100,
        speed in 0u32..=8190, heading in 0u32..=28_799, yaw_rate in -900i32..900, accel in -100i32..100,
        l in 1u32..=500, w in 1u32..=500, h in 1u32..=500, age in 0u32..=127,
    ) {
        let p = Participant {
            id,
            class: ObjectClass::from_code(class).expect("valid code"),
            class_confidence: f64::from(conf) * 0.01,
            sources: SourceSet::from_bits(sources).expect("valid bits"),
            position_m: Point3::new(f64::from(x) * 0.1, f64::from(y) * 0.1, f64::from(z) * 0.1),
            pos_confidence_95_m: 0.25,
            speed_mps: f64::from(speed) * 0.02,
            yaw_rad: v2x_proto::convert::yaw_from_heading(heading),
            yaw_rate_rps: (f64::from(yaw_rate) * 0.1).to_radians(),
            accel_mps2: f64::from(accel) * 0.1,
            size: BoxSize::new(f64::from(l) * 0.1, f64::from(w) * 0.1, f64::from(h) * 0.1),
            age_s: f64::from(age) * 0.1,
            v2x_id: None,
            path_history: vec![],
        };
        let w1 = wire::Participant::from(&p);
        let back = Participant::try_from(&w1).expect("valid");
        // Decoding then encoding reproduces the wire values exactly.
        prop_assert_eq!(wire::Participant::from(&back), w1);
        prop_assert!((back.position_m - p.position_m).norm() < 1e-9);
        prop_assert!((back.speed_mps - p.speed_mps).abs() < 1e-9);
    }
}
