//! Hand-written protobuf decoding of the high-volume messages (sensor frames and ground truth,
//! thousands of boxes and objects per second of a replay), for [`decode_sensor_frame`] and
//! [`decode_ground_truth_frame`].
//!
//! prost's generic field-by-field decoding costs about a hundred instructions per field; these
//! decoders read each field with a match on (tag, wire type) and a direct load. They handle the
//! subset of protobuf our writers produce: every field of the schema, in any order and repeated
//! (the last value wins, repeated messages append), with no unknown fields, groups, or a second
//! copy of the `detections` oneof. For anything outside that subset, and for anything prost would
//! reject (bad varints, wrong wire types, lengths past the end, invalid UTF-8), they give up and
//! the caller decodes the bytes with prost instead. So for every input the wire message is the one
//! `prost::Message::decode` gives, and so are the domain value and any error.
//!
//! [`decode_sensor_frame`]: crate::decode_sensor_frame
//! [`decode_ground_truth_frame`]: crate::decode_ground_truth_frame

use crate::wire;

/// A protobuf wire value, by wire type.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (fixed64, sfixed64, double), as its bits.
    Fixed64(u64),
    /// Wire type 2: the bytes of a string, a bytes field or a sub-message.
    Len(&'a [u8]),
    /// Wire type 5 (fixed32, sfixed32, float), as its bits.
    Fixed32(u32),
}

/// Reads fields from the bytes of one message. Every method returns `None` for input that prost
/// would reject or that these decoders leave to prost.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { rest: bytes }
    }

    /// A varint as prost decodes it: at most 10 bytes, the tenth at most 1.
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        // One byte: keys, enums and small counts.
        if let Some((&byte, tail)) = self.rest.split_first()
            && byte < 0x80
        {
            self.rest = tail;
            return Some(u64::from(byte));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return None;
                }
                self.rest = &self.rest[i + 1..];
                return Some(value);
            }
        }
        None
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(*head)
    }

    #[inline]
    fn take(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok().filter(|&len| len <= self.rest.len())?;
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Some(head)
    }

    /// The next field's tag and value; `None` for input left to prost (see [`Fields`]). Inlined
    /// into each message's decoder, so the match on the wire type folds into the one on the field.
    #[inline(always)]
    fn next_field(&mut self) -> Option<(u32, Value<'a>)> {
        let key = self.varint()?;
        // prost's key checks: at most 32 bits and a tag of at least 1.
        let key = u32::try_from(key).ok()?;
        let tag = key >> 3;
        if tag == 0 {
            return None;
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.fixed()?)),
            2 => {
                let len = self.varint()?;
                Value::Len(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.fixed()?)),
            // Groups (3, 4) and invalid wire types.
            _ => return None,
        };
        Some((tag, value))
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }
}

/// Decodes every field of a message with `field`, which returns `None` for a field it does not
/// take; `None` when any field is not taken or the bytes end inside a field.
#[inline(always)]
fn each_field<'a>(bytes: &'a [u8], mut field: impl FnMut(u32, Value<'a>) -> Option<()>) -> Option<()> {
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        let (tag, value) = fields.next_field()?;
        field(tag, value)?;
    }
    Some(())
}

/// A string field as prost decodes it (valid UTF-8, replacing the previous value).
fn set_string(target: &mut String, bytes: &[u8]) -> Option<()> {
    let s = std::str::from_utf8(bytes).ok()?;
    target.clear();
    target.push_str(s);
    Some(())
}

/// A `uint32` field: the varint truncated as prost does (`as u32`).
fn uint32(v: u64) -> u32 {
    v as u32
}

/// An `int32` or enum field: the varint truncated as prost does (`as i32`).
fn int32(v: u64) -> i32 {
    v as i32
}

/// `wire::SensorFrame`, exactly as prost decodes `bytes`, or `None` (see the module docs).
pub(crate) fn sensor_frame(bytes: &[u8]) -> Option<wire::SensorFrame> {
    use wire::sensor_frame::Detections;
    let mut frame = wire::SensorFrame::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Len(b)) => set_string(&mut frame.sensor_id, b)?,
            (2, Value::Varint(v)) => frame.sequence = v,
            (3, Value::Fixed64(v)) => frame.capture_time_ns = v,
            // A second `detections` would merge into (or replace) the first: left to prost.
            (4, Value::Len(b)) if frame.detections.is_none() => {
                frame.detections = Some(Detections::Lidar(lidar_detections(b)?));
            }
            (5, Value::Len(b)) if frame.detections.is_none() => {
                frame.detections = Some(Detections::Camera(camera_detections(b)?));
            }
            _ => return None,
        }
        Some(())
    })?;
    Some(frame)
}

fn lidar_detections(bytes: &[u8]) -> Option<wire::LidarDetections> {
    let mut detections = wire::LidarDetections::default();
    each_field(bytes, |tag, value| match (tag, value) {
        (1, Value::Len(b)) => {
            detections.boxes.push(lidar_box(b)?);
            Some(())
        }
        _ => None,
    })?;
    Some(detections)
}

fn lidar_box(bytes: &[u8]) -> Option<wire::LidarBox> {
    let mut b = wire::LidarBox::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Fixed32(v)) => b.x_m = f32::from_bits(v),
            (2, Value::Fixed32(v)) => b.y_m = f32::from_bits(v),
            (3, Value::Fixed32(v)) => b.z_m = f32::from_bits(v),
            (4, Value::Fixed32(v)) => b.length_m = f32::from_bits(v),
            (5, Value::Fixed32(v)) => b.width_m = f32::from_bits(v),
            (6, Value::Fixed32(v)) => b.height_m = f32::from_bits(v),
            (7, Value::Fixed32(v)) => b.yaw_rad = f32::from_bits(v),
            (8, Value::Varint(v)) => b.object_class = int32(v),
            (9, Value::Fixed32(v)) => b.score = f32::from_bits(v),
            (10, Value::Varint(v)) => b.point_count = Some(uint32(v)),
            _ => return None,
        }
        Some(())
    })?;
    Some(b)
}

fn camera_detections(bytes: &[u8]) -> Option<wire::CameraDetections> {
    let mut detections = wire::CameraDetections::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Varint(v)) => detections.image_width_px = uint32(v),
            (2, Value::Varint(v)) => detections.image_height_px = uint32(v),
            (3, Value::Len(b)) => detections.boxes.push(camera_box(b)?),
            _ => return None,
        }
        Some(())
    })?;
    Some(detections)
}

fn camera_box(bytes: &[u8]) -> Option<wire::CameraBox> {
    let mut b = wire::CameraBox::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Fixed32(v)) => b.u_min_px = f32::from_bits(v),
            (2, Value::Fixed32(v)) => b.v_min_px = f32::from_bits(v),
            (3, Value::Fixed32(v)) => b.u_max_px = f32::from_bits(v),
            (4, Value::Fixed32(v)) => b.v_max_px = f32::from_bits(v),
            (5, Value::Len(s)) => b.class_scores.push(class_score(s)?),
            _ => return None,
        }
        Some(())
    })?;
    Some(b)
}

fn class_score(bytes: &[u8]) -> Option<wire::ClassScore> {
    let mut s = wire::ClassScore::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Varint(v)) => s.object_class = int32(v),
            (2, Value::Fixed32(v)) => s.score = f32::from_bits(v),
            _ => return None,
        }
        Some(())
    })?;
    Some(s)
}

/// `wire::GroundTruthFrame`, exactly as prost decodes `bytes`, or `None` (see the module docs).
pub(crate) fn ground_truth_frame(bytes: &[u8]) -> Option<wire::GroundTruthFrame> {
    let mut frame = wire::GroundTruthFrame::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Fixed64(v)) => frame.timestamp_ns = v,
            (2, Value::Len(b)) => frame.objects.push(ground_truth_object(b)?),
            (3, Value::Len(b)) => frame.signals.push(signal_state(b)?),
            _ => return None,
        }
        Some(())
    })?;
    Some(frame)
}

fn ground_truth_object(bytes: &[u8]) -> Option<wire::GroundTruthObject> {
    let mut o = wire::GroundTruthObject::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Varint(v)) => o.id = uint32(v),
            (2, Value::Varint(v)) => o.object_class = int32(v),
            (3, Value::Fixed64(v)) => o.x_m = f64::from_bits(v),
            (4, Value::Fixed64(v)) => o.y_m = f64::from_bits(v),
            (5, Value::Fixed64(v)) => o.z_m = f64::from_bits(v),
            (6, Value::Fixed64(v)) => o.yaw_rad = f64::from_bits(v),
            (7, Value::Fixed64(v)) => o.speed_mps = f64::from_bits(v),
            (8, Value::Fixed64(v)) => o.yaw_rate_rps = f64::from_bits(v),
            (9, Value::Fixed64(v)) => o.accel_mps2 = f64::from_bits(v),
            (10, Value::Fixed64(v)) => o.length_m = f64::from_bits(v),
            (11, Value::Fixed64(v)) => o.width_m = f64::from_bits(v),
            (12, Value::Fixed64(v)) => o.height_m = f64::from_bits(v),
            (13, Value::Len(b)) => set_string(&mut o.v2x_id, b)?,
            _ => return None,
        }
        Some(())
    })?;
    Some(o)
}

fn signal_state(bytes: &[u8]) -> Option<wire::SignalState> {
    let mut s = wire::SignalState::default();
    each_field(bytes, |tag, value| {
        match (tag, value) {
            (1, Value::Len(b)) => set_string(&mut s.signal_id, b)?,
            (2, Value::Varint(v)) => s.phase = int32(v),
            (3, Value::Varint(v)) => s.remaining_ms = uint32(v),
            _ => return None,
        }
        Some(())
    })?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use nalgebra::Point3;
    use prost::Message;
    use rsu_fusion::{BoxSize, ObjectClass, Timestamp};

    use super::*;
    use crate::domain::{GroundTruthFrame, GroundTruthObject, SignalPhase, SignalState};

    /// Whether a decoder agrees with prost on `bytes`: when it decodes, prost decodes the same
    /// (compared by their text, which tells -0.0 from 0.0, and by their encoding, which keeps NaN
    /// payloads: NaN is not equal to itself).
    fn agrees<W: Message + Default + std::fmt::Debug>(fast: fn(&[u8]) -> Option<W>, bytes: &[u8]) -> bool {
        match fast(bytes) {
            Some(w) => W::decode(bytes)
                .is_ok_and(|p| format!("{p:?}") == format!("{w:?}") && p.encode_to_vec() == w.encode_to_vec()),
            None => true,
        }
    }

    /// Checks `fast` against prost on `bytes` cut short anywhere and with any byte changed to a
    /// few telling values (keys of every wire type, varint continuations, lengths).
    fn damage_agrees<W: Message + Default + std::fmt::Debug>(fast: fn(&[u8]) -> Option<W>, bytes: &[u8]) {
        for len in 0..bytes.len() {
            assert!(agrees(fast, &bytes[..len]), "cut at {len}");
        }
        for i in 0..bytes.len() {
            for value in [0x00, 0x01, 0x02, 0x05, 0x08, 0x0a, 0x0b, 0x0c, 0x0d, 0x12, 0x7f, 0x80, 0xff] {
                let mut changed = bytes.to_vec();
                changed[i] = value;
                assert!(agrees(fast, &changed), "byte {i} = {value:#x}");
            }
        }
    }

    fn truth_frame() -> GroundTruthFrame {
        let object = |id: u32, class, v2x_id: Option<&str>| GroundTruthObject {
            id,
            class,
            center_m: Point3::new(-12.25, 340.5, 0.8),
            yaw_rad: -2.5,
            speed_mps: 13.9,
            yaw_rate_rps: 0.1,
            accel_mps2: -1.5,
            size: BoxSize::new(4.6, 1.9, 1.5),
            v2x_id: v2x_id.map(str::to_owned),
        };
        GroundTruthFrame {
            time: Timestamp::from_nanos(1_795_000_000_100_000_000),
            objects: vec![object(3, ObjectClass::Car, Some("cv-1")), object(200_000, ObjectClass::Pedestrian, None)],
            signals: vec![SignalState { signal_id: "sig-n".into(), phase: SignalPhase::Red, remaining_s: 12.5 }],
        }
    }

    fn sensor_frames_bytes() -> Vec<Vec<u8>> {
        [crate::sample::lidar_frame(), crate::sample::camera_frame()]
            .iter()
            .map(|f| wire::SensorFrame::from(f).encode_to_vec())
            .collect()
    }

    #[test]
    fn varints_follow_prost() {
        let cases: [(&[u8], Option<u64>); 6] = [
            (&[0x05], Some(5)),
            (&[0x96, 0x01], Some(150)),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], Some(u64::MAX)),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], None),
            (&[0x80, 0x80], None),
            (&[], None),
        ];
        for (bytes, expected) in cases {
            let mut slice = bytes;
            assert_eq!(prost::encoding::decode_varint(&mut slice).ok(), expected, "prost, {bytes:?}");
            assert_eq!(Fields::new(bytes).varint(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn written_messages_decode_as_prost_decodes_them() {
        for bytes in sensor_frames_bytes() {
            assert_eq!(sensor_frame(&bytes), Some(wire::SensorFrame::decode(bytes.as_slice()).expect("decodes")));
        }
        let bytes = wire::GroundTruthFrame::from(&truth_frame()).encode_to_vec();
        assert_eq!(
            ground_truth_frame(&bytes),
            Some(wire::GroundTruthFrame::decode(bytes.as_slice()).expect("decodes"))
        );
    }

    #[test]
    fn unusual_input_is_left_to_prost() {
        let bytes = &sensor_frames_bytes()[0];
        // An unknown field (tag 15, varint): prost skips it, the fast path declines.
        let mut unknown = bytes.clone();
        unknown.extend_from_slice(&[15 << 3, 1]);
        assert!(wire::SensorFrame::decode(unknown.as_slice()).is_ok());
        assert_eq!(sensor_frame(&unknown), None);
        // A second copy of the detections: prost merges them, the fast path declines.
        let mut twice = bytes.clone();
        twice.extend_from_slice(bytes);
        assert!(wire::SensorFrame::decode(twice.as_slice()).is_ok());
        assert_eq!(sensor_frame(&twice), None);
    }

    #[test]
    fn damaged_messages_decode_as_prost_decodes_them_or_are_left_to_it() {
        for bytes in sensor_frames_bytes() {
            damage_agrees(sensor_frame, &bytes);
        }
        damage_agrees(ground_truth_frame, &wire::GroundTruthFrame::from(&truth_frame()).encode_to_vec());
    }
}
