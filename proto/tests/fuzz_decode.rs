//! Property tests of decoding untrusted bytes: no decoder panics on anything, valid domain values
//! survive a round trip through the wire, and the hand-written decoder of sensor frames and
//! ground truth (what [`decode`] uses for them, in the daemon and the replay reader) agrees with
//! prost and the conversion ([`decode_reference`]) on every input: the same value, or an error of
//! the same class (with the same conversion error for invalid content). The inputs: wire messages
//! with valid and invalid content, those damaged, cut short or with random fields inserted,
//! random protobuf (fields of any tag and wire type, nested messages and groups), random bytes.

use nalgebra::Point3;
use proptest::prelude::*;
use prost::Message;
use rsu_fusion::measurement::{Detections, LidarDetection, SensorFrame};
use rsu_fusion::{BoxSize, ObjectClass, Participant, RoadsideFrame, SourceSet, Timestamp, VehicleState};
use v2x_proto::domain::{ClientHello, GroundTruthFrame, GroundTruthObject, ReplayMeta, SignalPhase, SignalState};
use v2x_proto::{decode, decode_outcome, decode_reference, encode, wire};

/// Both decoders of sensor frames give the same outcome for `bytes`.
fn sensor_frames_agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let fast = decode::<SensorFrame>(bytes);
    let reference = decode_reference::<wire::SensorFrame, SensorFrame>(bytes);
    prop_assert_eq!(decode_outcome(&fast), decode_outcome(&reference), "bytes {:?}", bytes);
    Ok(())
}

/// Both decoders of ground-truth frames give the same outcome for `bytes`.
fn truth_frames_agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let fast = decode::<GroundTruthFrame>(bytes);
    let reference = decode_reference::<wire::GroundTruthFrame, GroundTruthFrame>(bytes);
    prop_assert_eq!(decode_outcome(&fast), decode_outcome(&reference), "bytes {:?}", bytes);
    Ok(())
}

/// Both pairs of decoders agree on `bytes` (read as either message).
fn decoders_agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    sensor_frames_agree(bytes)?;
    truth_frames_agree(bytes)
}

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

/// A float field: mostly within `lo..hi`, sometimes zero (left out of the encoding) or anything
/// (out of range, infinite, NaN).
fn float32(lo: f32, hi: f32) -> impl Strategy<Value = f32> {
    prop_oneof![8 => lo..hi, 1 => Just(0.0f32), 1 => any::<f32>()]
}

/// [`float32`] for `double` fields.
fn float64(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![8 => lo..hi, 1 => Just(0.0f64), 1 => any::<f64>()]
}

/// An enum field: mostly a known value, sometimes anything.
fn enum_value(known: std::ops::Range<i32>) -> impl Strategy<Value = i32> {
    prop_oneof![9 => known, 1 => any::<i32>()]
}

/// An id field: mostly valid, sometimes empty, too long or with a control character.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[a-z0-9-]{1,12}", 1 => Just(String::new()), 1 => "[a-z\n]{0,70}"]
}

/// A time field: mostly a plausible capture time, sometimes past `i64::MAX` ns.
fn time_ns() -> impl Strategy<Value = u64> {
    prop_oneof![9 => 1_700_000_000_000_000_000u64..1_800_000_000_000_000_000, 1 => any::<u64>()]
}

fn lidar_box() -> impl Strategy<Value = wire::LidarBox> {
    (
        (float32(-2000.0, 2000.0), float32(-2000.0, 2000.0), float32(-50.0, 50.0)),
        (float32(0.01, 50.0), float32(0.01, 20.0), float32(0.01, 20.0)),
        (float32(-12.0, 12.0), enum_value(0..15), float32(0.0, 1.0), proptest::option::of(any::<u32>())),
    )
        .prop_map(
            |((x_m, y_m, z_m), (length_m, width_m, height_m), (yaw_rad, object_class, score, point_count))| {
                wire::LidarBox { x_m, y_m, z_m, length_m, width_m, height_m, yaw_rad, object_class, score, point_count }
            },
        )
}

fn camera_box() -> impl Strategy<Value = wire::CameraBox> {
    let score = (enum_value(0..15), float32(0.0, 0.5))
        .prop_map(|(object_class, score)| wire::ClassScore { object_class, score });
    (float32(0.0, 1000.0), float32(0.0, 1000.0), float32(1000.0, 2000.0), float32(1000.0, 2000.0), {
        proptest::collection::vec(score, 0..4)
    })
        .prop_map(|(u_min_px, v_min_px, u_max_px, v_max_px, class_scores)| wire::CameraBox {
            u_min_px,
            v_min_px,
            u_max_px,
            v_max_px,
            class_scores,
        })
}

/// Wire sensor frames, mostly valid, some with invalid content.
fn sensor_frame() -> impl Strategy<Value = wire::SensorFrame> {
    use wire::sensor_frame::Detections;
    let image_size = prop_oneof![9 => 1u32..16_384, 1 => any::<u32>()];
    let detections = prop_oneof![
        1 => Just(None),
        5 => proptest::collection::vec(lidar_box(), 0..12)
            .prop_map(|boxes| Some(Detections::Lidar(wire::LidarDetections { boxes }))),
        5 => (image_size.clone(), image_size, proptest::collection::vec(camera_box(), 0..8)).prop_map(
            |(image_width_px, image_height_px, boxes)| {
                Some(Detections::Camera(wire::CameraDetections { image_width_px, image_height_px, boxes }))
            }
        ),
    ];
    (id(), any::<u64>(), time_ns(), detections).prop_map(|(sensor_id, sequence, capture_time_ns, detections)| {
        wire::SensorFrame { sensor_id, sequence, capture_time_ns, detections }
    })
}

fn truth_object() -> impl Strategy<Value = wire::GroundTruthObject> {
    (
        (any::<u32>(), enum_value(0..15), float64(-1e6, 1e6), float64(-1e6, 1e6), float64(-100.0, 100.0)),
        (float64(-12.0, 12.0), float64(-100.0, 100.0), float64(-20.0, 20.0), float64(-50.0, 50.0)),
        (float64(0.01, 50.0), float64(0.01, 20.0), float64(0.01, 20.0)),
        prop_oneof![3 => Just(String::new()), 1 => id()],
    )
        .prop_map(
            |(
                (id, object_class, x_m, y_m, z_m),
                (yaw_rad, speed_mps, yaw_rate_rps, accel_mps2),
                (length_m, width_m, height_m),
                v2x_id,
            )| wire::GroundTruthObject {
                id,
                object_class,
                x_m,
                y_m,
                z_m,
                yaw_rad,
                speed_mps,
                yaw_rate_rps,
                accel_mps2,
                length_m,
                width_m,
                height_m,
                v2x_id,
            },
        )
}

/// Wire ground-truth frames, mostly valid, some with invalid content.
fn truth_frame_wire() -> impl Strategy<Value = wire::GroundTruthFrame> {
    let signal = (id(), enum_value(0..5), any::<u32>())
        .prop_map(|(signal_id, phase, remaining_ms)| wire::SignalState { signal_id, phase, remaining_ms });
    (time_ns(), proptest::collection::vec(truth_object(), 0..10), proptest::collection::vec(signal, 0..4))
        .prop_map(|(timestamp_ns, objects, signals)| wire::GroundTruthFrame { timestamp_ns, objects, signals })
}

/// One protobuf field of random content.
#[derive(Clone, Debug)]
enum Field {
    Varint(u32, u64),
    Fixed64(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Message(u32, Vec<Field>),
    Group(u32, Vec<Field>),
    /// A raw key of any wire type (6 and 7 included) and no value.
    RawKey(u64),
}

/// Random protobuf: fields of tags 1 to 15 (those of the messages, and unknown ones) and larger,
/// with any wire type, nested messages and groups, and raw keys (tag 0, wire types 6 and 7).
fn fields() -> impl Strategy<Value = Vec<Field>> {
    let tag = prop_oneof![9 => 1u32..16, 1 => 1u32..(1 << 29)];
    let leaf = prop_oneof![
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Varint(t, v)),
        (tag.clone(), any::<u64>()).prop_map(|(t, v)| Field::Fixed64(t, v)),
        (tag.clone(), any::<u32>()).prop_map(|(t, v)| Field::Fixed32(t, v)),
        (tag.clone(), proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(t, v)| Field::Bytes(t, v)),
        any::<u64>().prop_map(Field::RawKey),
    ];
    let field = leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            (tag.clone(), proptest::collection::vec(inner.clone(), 0..6)).prop_map(|(t, v)| Field::Message(t, v)),
            (tag.clone(), proptest::collection::vec(inner, 0..4)).prop_map(|(t, v)| Field::Group(t, v)),
        ]
    });
    proptest::collection::vec(field, 0..10)
}

fn encode_fields(fields: &[Field], out: &mut Vec<u8>) {
    use prost::encoding::{WireType, encode_key, encode_varint};
    for field in fields {
        match field {
            Field::Varint(tag, v) => {
                encode_key(*tag, WireType::Varint, out);
                encode_varint(*v, out);
            }
            Field::Fixed64(tag, v) => {
                encode_key(*tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Fixed32(tag, v) => {
                encode_key(*tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Bytes(tag, v) => {
                encode_key(*tag, WireType::LengthDelimited, out);
                encode_varint(v.len() as u64, out);
                out.extend_from_slice(v);
            }
            Field::Message(tag, inner) => {
                let mut body = Vec::new();
                encode_fields(inner, &mut body);
                encode_key(*tag, WireType::LengthDelimited, out);
                encode_varint(body.len() as u64, out);
                out.extend_from_slice(&body);
            }
            Field::Group(tag, inner) => {
                encode_key(*tag, WireType::StartGroup, out);
                encode_fields(inner, out);
                encode_key(*tag, WireType::EndGroup, out);
            }
            Field::RawKey(key) => encode_varint(*key, out),
        }
    }
}

/// Damage to a message's bytes.
#[derive(Clone, Debug)]
enum Damage {
    /// Byte `at` (modulo the length) becomes `value`.
    Set(usize, u8),
    /// The bytes end at `at` (modulo the length).
    Cut(usize),
    /// Random protobuf inserted at `at` (modulo the length).
    Insert(usize, Vec<Field>),
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        6 => (any::<usize>(), any::<u8>()).prop_map(|(at, v)| Damage::Set(at, v)),
        1 => any::<usize>().prop_map(Damage::Cut),
        3 => (any::<usize>(), fields()).prop_map(|(at, f)| Damage::Insert(at, f)),
    ];
    proptest::collection::vec(one, 1..5)
}

fn damaged(mut bytes: Vec<u8>, damage: &[Damage]) -> Vec<u8> {
    for d in damage {
        let at = |i: usize| if bytes.is_empty() { 0 } else { i % bytes.len() };
        match d {
            Damage::Set(i, v) => {
                if !bytes.is_empty() {
                    let i = at(*i);
                    bytes[i] = *v;
                }
            }
            Damage::Cut(i) => bytes.truncate(at(*i)),
            Damage::Insert(i, fields) => {
                let mut inserted = Vec::new();
                encode_fields(fields, &mut inserted);
                let i = at(*i);
                bytes.splice(i..i, inserted);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<SensorFrame>(&bytes);
        let _ = decode::<VehicleState>(&bytes);
        let _ = decode::<RoadsideFrame>(&bytes);
        let _ = decode::<ClientHello>(&bytes);
        let _ = decode::<GroundTruthFrame>(&bytes);
        let _ = decode::<ReplayMeta>(&bytes);
    }

    #[test]
    fn the_decoders_agree_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decoders_agree(&bytes)?;
    }

    #[test]
    fn the_decoders_agree_on_random_protobuf(fields in fields()) {
        let mut bytes = Vec::new();
        encode_fields(&fields, &mut bytes);
        decoders_agree(&bytes)?;
    }

    #[test]
    fn the_decoders_agree_on_sensor_frames(frame in sensor_frame()) {
        sensor_frames_agree(&frame.encode_to_vec())?;
    }

    #[test]
    fn the_decoders_agree_on_damaged_sensor_frames(frame in sensor_frame(), damage in damage()) {
        sensor_frames_agree(&damaged(frame.encode_to_vec(), &damage))?;
    }

    #[test]
    fn the_decoders_agree_on_truth_frames(frame in truth_frame_wire()) {
        truth_frames_agree(&frame.encode_to_vec())?;
    }

    #[test]
    fn the_decoders_agree_on_damaged_truth_frames(frame in truth_frame_wire(), damage in damage()) {
        truth_frames_agree(&damaged(frame.encode_to_vec(), &damage))?;
    }

    #[test]
    fn the_decoders_agree_on_damaged_samples(damage in damage(), which in 0..3u8) {
        let bytes = match which {
            0 => encode(&v2x_proto::sample::lidar_frame()),
            1 => encode(&v2x_proto::sample::camera_frame()),
            _ => encode(&truth_frame()),
        };
        decoders_agree(&damaged(bytes, &damage))?;
    }

    #[test]
    fn the_decoders_agree_on_concatenated_frames(a in sensor_frame(), b in sensor_frame()) {
        // prost merges a second copy of a message into the first: the oneof's sub-messages merge
        // (same variant) or replace (other variant), scalars take the last value.
        let mut bytes = a.encode_to_vec();
        bytes.extend_from_slice(&b.encode_to_vec());
        sensor_frames_agree(&bytes)?;
    }

    #[test]
    fn mutated_valid_frames_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&v2x_proto::sample::intersection_frame(8, 3));
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        let _ = decode::<RoadsideFrame>(&bytes);
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
        let bytes = encode(&frame);
        let back: SensorFrame = decode(&bytes).expect("decodes");
        prop_assert_eq!(decode_reference::<wire::SensorFrame, SensorFrame>(&bytes).expect("decodes"), back.clone());
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

/// Groups (skipped as unknown fields) nested `depth` deep.
fn nested_groups(tag: u32, depth: usize) -> Vec<u8> {
    let mut group = Vec::new();
    for _ in 0..depth {
        group = [vec![(tag << 3 | 3) as u8], group, vec![(tag << 3 | 4) as u8]].concat();
    }
    group
}

#[test]
fn the_decoders_agree_on_groups_around_the_recursion_limit() {
    let frame = wire::SensorFrame::from(&v2x_proto::sample::lidar_frame());
    let Some(wire::sensor_frame::Detections::Lidar(lidar)) = &frame.detections else { panic!("a lidar frame") };
    for depth in 94..=101 {
        // At the top level.
        let mut top = frame.encode_to_vec();
        top.extend_from_slice(&nested_groups(15, depth));
        sensor_frames_agree(&top).expect("agree at the top level");
        let mut truth = encode(&truth_frame());
        truth.extend_from_slice(&nested_groups(15, depth));
        truth_frames_agree(&truth).expect("agree at the top level of ground truth");
        // Inside a box (two levels down).
        let mut lidar_box = lidar.boxes[0].encode_to_vec();
        lidar_box.extend_from_slice(&nested_groups(15, depth));
        let mut detections = vec![1 << 3 | 2];
        prost::encoding::encode_varint(lidar_box.len() as u64, &mut detections);
        detections.extend_from_slice(&lidar_box);
        let mut bytes = wire::SensorFrame { detections: None, ..frame.clone() }.encode_to_vec();
        bytes.push(4 << 3 | 2);
        prost::encoding::encode_varint(detections.len() as u64, &mut bytes);
        bytes.extend_from_slice(&detections);
        sensor_frames_agree(&bytes).expect("agree inside a box");
    }
}

#[test]
fn the_hand_written_decoder_gives_the_conversions_error() {
    let mut truth = wire::GroundTruthFrame::from(&truth_frame());
    truth.objects[1].speed_mps = f64::NAN;
    truth.objects[3].width_m = -1.0;
    let bytes = truth.encode_to_vec();
    assert!(matches!(decode::<GroundTruthFrame>(&bytes), Err(v2x_proto::DecodeError::Invalid(_))));
    truth_frames_agree(&bytes).expect("agree");
    // Invalid content then a malformed field: malformed, as prost decodes all before converting.
    let mut bytes = bytes;
    bytes.extend_from_slice(&[0x0a, 0x05, 0x01]);
    assert!(matches!(decode::<GroundTruthFrame>(&bytes), Err(v2x_proto::DecodeError::Malformed(_))));
    truth_frames_agree(&bytes).expect("agree");
}
