//! Hand-written protobuf decoding of the high-volume messages (sensor frames and ground truth,
//! thousands of boxes and objects per second of a replay) straight into the domain types, for
//! [`decode_sensor_frame`] and [`decode_ground_truth_frame`].
//!
//! prost's generic field-by-field decoding costs about a hundred instructions per field, and the
//! wire message it builds is then converted and dropped; these decoders compare each field's
//! one-byte key with the one expected next in tag order (how prost writes them), match it among
//! the message's keys otherwise, load its value, and convert every box or object as soon as it is
//! read, through the same conversions as [`crate::convert`] (so the checks are the same code),
//! into vectors sized by a first pass over the keys. They handle the subset of protobuf our
//! writers produce: every field of the schema, in any order and repeated (the last value wins,
//! repeated messages append), with no unknown fields, groups, keys longer than a byte, or a second
//! copy of the `detections` oneof. For anything outside
//! that subset, anything prost would reject (bad varints, wrong wire types, lengths past the end,
//! invalid UTF-8) and anything the conversion rejects, they give up and the caller decodes the
//! bytes with prost and converts them instead. So for every input the domain value, and any error,
//! is the one `prost::Message::decode` and the conversion give.
//!
//! [`decode_sensor_frame`]: crate::decode_sensor_frame
//! [`decode_ground_truth_frame`]: crate::decode_ground_truth_frame

use rsu_fusion::SensorFrame;
use rsu_fusion::measurement::{CameraDetection, CameraDetections, Detections, LidarDetection};

use crate::convert::{
    MAX_DETECTIONS_PER_FRAME, MAX_SIGNALS, MAX_TRUTH_OBJECTS, check_ground_truth_frame, check_image_size,
    ground_truth_object, sensor_frame_with, signal_state,
};
use crate::domain::GroundTruthFrame;
use crate::wire;

/// Wire type of varints (`int32`, `uint32`, `uint64`, enums).
const VARINT: u8 = 0;
/// Wire type of 8-byte values (`fixed64`, `double`).
const I64: u8 = 1;
/// Wire type of length-delimited values (strings, bytes, sub-messages).
const LEN: u8 = 2;
/// Wire type of 4-byte values (`fixed32`, `float`).
const I32: u8 = 5;

/// The one-byte key of field `tag` (below 16) with `wire_type`, as [`Fields::key`] reads it; the
/// decoders match whole keys, so a field's tag and wire type are checked in one step.
const fn key(tag: u8, wire_type: u8) -> u8 {
    tag << 3 | wire_type
}

/// Reads the fields of one message. Every method returns `None` for input that prost would reject
/// or that these decoders leave to prost.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { rest: bytes }
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
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

    /// The next field's key (`tag << 3 | wire type`), when it is one byte: every field of these
    /// messages has a tag below 16, so a longer key is an unknown field (or a key written with
    /// needless continuation bytes) and left to prost. A key prost rejects (tag 0) or one of a
    /// group matches no decoder's keys, so it is left to prost too.
    #[inline]
    fn key(&mut self) -> Option<u8> {
        let (&key, tail) = self.rest.split_first()?;
        if key >= 0x80 {
            return None;
        }
        self.rest = tail;
        Some(key)
    }

    /// Whether the next field's key is `key`; if so, reads past it.
    #[inline]
    fn next_is(&mut self, key: u8) -> bool {
        match self.rest.split_first() {
            Some((&k, tail)) if k == key => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(*head)
    }

    /// A `float` value.
    #[inline]
    fn f32(&mut self) -> Option<f32> {
        self.fixed().map(f32::from_le_bytes)
    }

    /// A `double` value.
    #[inline]
    fn f64(&mut self) -> Option<f64> {
        self.fixed().map(f64::from_le_bytes)
    }

    /// A `fixed64` value.
    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.fixed().map(u64::from_le_bytes)
    }

    /// A `uint32` value: the varint truncated as prost does (`as u32`).
    #[inline]
    fn u32(&mut self) -> Option<u32> {
        self.varint().map(|v| v as u32)
    }

    /// An `int32` or enum value: the varint truncated as prost does (`as i32`).
    #[inline]
    fn i32(&mut self) -> Option<i32> {
        self.varint().map(|v| v as i32)
    }

    /// The bytes of a length-delimited value.
    #[inline]
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok().filter(|&len| len <= self.rest.len())?;
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Some(head)
    }

    /// A string value (valid UTF-8).
    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Skips the value of a field of `wire_type`.
    fn skip(&mut self, wire_type: u8) -> Option<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            I64 => self.fixed::<8>().map(drop),
            LEN => self.bytes().map(drop),
            I32 => self.fixed::<4>().map(drop),
            _ => None,
        }
    }
}

/// Reads the fields of a message from `fields` (a [`Fields`]) into their targets, each
/// `KEY => target = value` (`KEY` a constant [`key`]). First in the order given, each field at most
/// once: the layout prost writes (tag order, zero values left out), one comparison per field.
/// Then whatever is left, in any order and repeated (the last value wins, repeated fields append),
/// by a match on the key; any other key leaves the message to prost (`return None`). Both passes
/// read fields in file order, so the result is that of the second pass alone.
macro_rules! read_fields {
    ($fields:ident { $($key:ident => $read:expr,)* }) => {
        $(
            if $fields.next_is($key) {
                $read;
            }
        )*
        while !$fields.at_end() {
            match $fields.key()? {
                $($key => $read,)*
                _ => return None,
            }
        }
    };
}

/// The `W`-byte values of the `N` fields from `first_tag` on, and the bytes after them, when
/// `bytes` starts with those fields in tag order, each of `wire_type` (how prost writes a run of
/// `float`, `double` or `fixed64` fields when none of them is zero); `None` otherwise. One length
/// check covers all `N` fields, whose keys and values then sit at fixed offsets.
#[inline]
fn leading_fixed<const N: usize, const W: usize>(
    bytes: &[u8],
    first_tag: u8,
    wire_type: u8,
) -> Option<([[u8; W]; N], &[u8])> {
    let (head, rest) = bytes.split_at_checked((1 + W) * N)?;
    let mut values = [[0; W]; N];
    for (i, slot) in values.iter_mut().enumerate() {
        // Within `head` (`1 + W` bytes a field), so these always succeed: the optimizer, knowing
        // `head`'s length, drops the checks and unrolls the loop. Field `first_tag + i`'s key is
        // the first one's plus `i << 3` (the wire type sits in the low three bits).
        let (&field_key, value) = head.get(i * (1 + W)..)?.split_first()?;
        if usize::from(field_key) != usize::from(key(first_tag, wire_type)) + (i << 3) {
            return None;
        }
        *slot = *value.first_chunk()?;
    }
    Some((values, rest))
}

/// How many fields of `bytes` are `tag` with a length-delimited value (the entries of a repeated
/// sub-message), to size its vector before decoding; `None` when the bytes end inside a field or
/// hold a wire type these decoders leave to prost.
fn count_entries(bytes: &[u8], tag: u8) -> Option<usize> {
    let entry = key(tag, LEN);
    let mut fields = Fields::new(bytes);
    let mut count = 0;
    while !fields.at_end() {
        // Entries are nearly all there is: checked first, then any other field.
        if fields.next_is(entry) {
            fields.bytes()?;
            count += 1;
        } else {
            let k = fields.key()?;
            fields.skip(k & 7)?;
        }
    }
    Some(count)
}

/// A vector for the `tag` entries of `bytes`, with room for all of them; `None` when there are
/// more than `max` (the conversion refuses those) or the bytes are left to prost.
fn sized_for<T>(bytes: &[u8], tag: u8, max: usize) -> Option<Vec<T>> {
    let count = count_entries(bytes, tag)?;
    (count <= max).then(|| Vec::with_capacity(count))
}

/// The sensor frame of `bytes`, exactly as prost and the conversion give it, or `None` (see the
/// module docs).
pub(crate) fn sensor_frame(bytes: &[u8]) -> Option<SensorFrame> {
    let mut fields = Fields::new(bytes);
    let (mut sensor_id, mut sequence, mut capture_time_ns, mut detections) = ("", 0, 0, None);
    while !fields.at_end() {
        const SENSOR_ID: u8 = key(1, LEN);
        const SEQUENCE: u8 = key(2, VARINT);
        const CAPTURE_TIME: u8 = key(3, I64);
        const LIDAR: u8 = key(4, LEN);
        const CAMERA: u8 = key(5, LEN);
        match fields.key()? {
            SENSOR_ID => sensor_id = fields.str()?,
            SEQUENCE => sequence = fields.varint()?,
            CAPTURE_TIME => capture_time_ns = fields.u64()?,
            // A second `detections` would merge into (or replace) the first: left to prost.
            LIDAR if detections.is_none() => detections = Some(Detections::Lidar(lidar_detections(fields.bytes()?)?)),
            CAMERA if detections.is_none() => {
                detections = Some(Detections::Camera(camera_detections(fields.bytes()?)?));
            }
            _ => return None,
        }
    }
    sensor_frame_with(sensor_id, sequence, capture_time_ns, detections?).ok()
}

fn lidar_detections(bytes: &[u8]) -> Option<Vec<LidarDetection>> {
    let mut boxes = sized_for(bytes, 1, MAX_DETECTIONS_PER_FRAME)?;
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        const BOX: u8 = key(1, LEN);
        match fields.key()? {
            BOX => boxes.push(lidar_box(fields.bytes()?)?),
            _ => return None,
        }
    }
    Some(boxes)
}

fn lidar_box(bytes: &[u8]) -> Option<LidarDetection> {
    const X: u8 = key(1, I32);
    const Y: u8 = key(2, I32);
    const Z: u8 = key(3, I32);
    const LENGTH: u8 = key(4, I32);
    const WIDTH: u8 = key(5, I32);
    const HEIGHT: u8 = key(6, I32);
    const YAW: u8 = key(7, I32);
    const CLASS: u8 = key(8, VARINT);
    const SCORE: u8 = key(9, I32);
    const POINT_COUNT: u8 = key(10, VARINT);
    let mut b = wire::LidarBox::default();
    let mut fields = Fields::new(bytes);
    // The position, size and yaw as prost writes them (unless one is zero): read in one step, then
    // the rest as usual (still in file order, so a repeated field's last value wins).
    if let Some((values, rest)) = leading_fixed::<7, 4>(bytes, 1, I32) {
        [b.x_m, b.y_m, b.z_m, b.length_m, b.width_m, b.height_m, b.yaw_rad] = values.map(f32::from_le_bytes);
        fields = Fields::new(rest);
    }
    read_fields!(fields {
        X => b.x_m = fields.f32()?,
        Y => b.y_m = fields.f32()?,
        Z => b.z_m = fields.f32()?,
        LENGTH => b.length_m = fields.f32()?,
        WIDTH => b.width_m = fields.f32()?,
        HEIGHT => b.height_m = fields.f32()?,
        YAW => b.yaw_rad = fields.f32()?,
        CLASS => b.object_class = fields.i32()?,
        SCORE => b.score = fields.f32()?,
        POINT_COUNT => b.point_count = Some(fields.u32()?),
    });
    LidarDetection::try_from(&b).ok()
}

fn camera_detections(bytes: &[u8]) -> Option<CameraDetections> {
    let mut boxes = sized_for(bytes, 3, MAX_DETECTIONS_PER_FRAME)?;
    let (mut image_width_px, mut image_height_px) = (0, 0);
    // One wire box for every box read, so its class scores are not allocated again each time.
    let mut scratch = wire::CameraBox::default();
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        const WIDTH: u8 = key(1, VARINT);
        const HEIGHT: u8 = key(2, VARINT);
        const BOX: u8 = key(3, LEN);
        match fields.key()? {
            WIDTH => image_width_px = fields.u32()?,
            HEIGHT => image_height_px = fields.u32()?,
            BOX => boxes.push(camera_box(fields.bytes()?, &mut scratch)?),
            _ => return None,
        }
    }
    check_image_size(image_width_px, image_height_px).ok()?;
    Some(CameraDetections { image_width_px, image_height_px, boxes })
}

/// The camera box of `bytes`, read into `b` (whatever it held before) and converted.
fn camera_box(bytes: &[u8], b: &mut wire::CameraBox) -> Option<CameraDetection> {
    let mut scores = std::mem::take(&mut b.class_scores);
    scores.clear();
    *b = wire::CameraBox { class_scores: scores, ..wire::CameraBox::default() };
    const U_MIN: u8 = key(1, I32);
    const V_MIN: u8 = key(2, I32);
    const U_MAX: u8 = key(3, I32);
    const V_MAX: u8 = key(4, I32);
    const CLASS_SCORE: u8 = key(5, LEN);
    let mut fields = Fields::new(bytes);
    // The corners as prost writes them (unless one is zero): as for lidar boxes.
    if let Some((values, rest)) = leading_fixed::<4, 4>(bytes, 1, I32) {
        [b.u_min_px, b.v_min_px, b.u_max_px, b.v_max_px] = values.map(f32::from_le_bytes);
        fields = Fields::new(rest);
    }
    read_fields!(fields {
        U_MIN => b.u_min_px = fields.f32()?,
        V_MIN => b.v_min_px = fields.f32()?,
        U_MAX => b.u_max_px = fields.f32()?,
        V_MAX => b.v_max_px = fields.f32()?,
        CLASS_SCORE => b.class_scores.push(class_score(fields.bytes()?)?),
    });
    CameraDetection::try_from(&*b).ok()
}

fn class_score(bytes: &[u8]) -> Option<wire::ClassScore> {
    const CLASS: u8 = key(1, VARINT);
    const SCORE: u8 = key(2, I32);
    let mut s = wire::ClassScore::default();
    let mut fields = Fields::new(bytes);
    read_fields!(fields {
        CLASS => s.object_class = fields.i32()?,
        SCORE => s.score = fields.f32()?,
    });
    Some(s)
}

/// The ground-truth frame of `bytes`, exactly as prost and the conversion give it, or `None` (see
/// the module docs).
pub(crate) fn ground_truth_frame(bytes: &[u8]) -> Option<GroundTruthFrame> {
    let mut objects = sized_for(bytes, 2, MAX_TRUTH_OBJECTS)?;
    let mut signals = Vec::new();
    let mut timestamp_ns = 0;
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        const TIMESTAMP: u8 = key(1, I64);
        const OBJECT: u8 = key(2, LEN);
        const SIGNAL: u8 = key(3, LEN);
        match fields.key()? {
            TIMESTAMP => timestamp_ns = fields.u64()?,
            OBJECT => objects.push(ground_truth_object_of(fields.bytes()?)?),
            // More signals than the conversion accepts: left to it, before they take memory.
            SIGNAL if signals.len() < MAX_SIGNALS => {
                signals.push(signal_state(&signal_state_wire(fields.bytes()?)?).ok()?)
            }
            _ => return None,
        }
    }
    let time = check_ground_truth_frame(timestamp_ns, objects.len(), signals.len()).ok()?;
    Some(GroundTruthFrame { time, objects, signals })
}

fn ground_truth_object_of(bytes: &[u8]) -> Option<crate::domain::GroundTruthObject> {
    const ID: u8 = key(1, VARINT);
    const CLASS: u8 = key(2, VARINT);
    const X: u8 = key(3, I64);
    const Y: u8 = key(4, I64);
    const Z: u8 = key(5, I64);
    const YAW: u8 = key(6, I64);
    const SPEED: u8 = key(7, I64);
    const YAW_RATE: u8 = key(8, I64);
    const ACCEL: u8 = key(9, I64);
    const LENGTH: u8 = key(10, I64);
    const WIDTH: u8 = key(11, I64);
    const HEIGHT: u8 = key(12, I64);
    const V2X_ID: u8 = key(13, LEN);
    // `v2x_id` stays empty here (no `String` built): the conversion takes the bytes read.
    let mut o = wire::GroundTruthObject::default();
    let mut v2x_id = "";
    let mut fields = Fields::new(bytes);
    // The id and class, then the ten doubles as prost writes them (unless one is zero) in one
    // step, then the rest as usual (still in file order, so a repeated field's last value wins).
    if fields.next_is(ID) {
        o.id = fields.u32()?;
    }
    if fields.next_is(CLASS) {
        o.object_class = fields.i32()?;
    }
    if let Some((values, rest)) = leading_fixed::<10, 8>(fields.rest, 3, I64) {
        [
            o.x_m,
            o.y_m,
            o.z_m,
            o.yaw_rad,
            o.speed_mps,
            o.yaw_rate_rps,
            o.accel_mps2,
            o.length_m,
            o.width_m,
            o.height_m,
        ] = values.map(f64::from_le_bytes);
        fields = Fields::new(rest);
    }
    read_fields!(fields {
        ID => o.id = fields.u32()?,
        CLASS => o.object_class = fields.i32()?,
        X => o.x_m = fields.f64()?,
        Y => o.y_m = fields.f64()?,
        Z => o.z_m = fields.f64()?,
        YAW => o.yaw_rad = fields.f64()?,
        SPEED => o.speed_mps = fields.f64()?,
        YAW_RATE => o.yaw_rate_rps = fields.f64()?,
        ACCEL => o.accel_mps2 = fields.f64()?,
        LENGTH => o.length_m = fields.f64()?,
        WIDTH => o.width_m = fields.f64()?,
        HEIGHT => o.height_m = fields.f64()?,
        V2X_ID => v2x_id = fields.str()?,
    });
    ground_truth_object(&o, v2x_id).ok()
}

fn signal_state_wire(bytes: &[u8]) -> Option<wire::SignalState> {
    const SIGNAL_ID: u8 = key(1, LEN);
    const PHASE: u8 = key(2, VARINT);
    const REMAINING: u8 = key(3, VARINT);
    let mut s = wire::SignalState::default();
    let mut fields = Fields::new(bytes);
    read_fields!(fields {
        SIGNAL_ID => fields.str()?.clone_into(&mut s.signal_id),
        PHASE => s.phase = fields.i32()?,
        REMAINING => s.remaining_ms = fields.u32()?,
    });
    Some(s)
}

#[cfg(test)]
mod tests {
    use nalgebra::Point3;
    use prost::Message;
    use rsu_fusion::{BoxSize, ObjectClass, Timestamp};

    use super::*;
    use crate::domain::{GroundTruthObject, SignalPhase, SignalState};
    use crate::{DecodeError, decode};

    /// Whether a decoder agrees with prost and the conversion on `bytes`: when it decodes, they
    /// decode the same (compared by their text, which tells -0.0 from 0.0).
    fn agrees<D: std::fmt::Debug>(
        fast: fn(&[u8]) -> Option<D>,
        slow: fn(&[u8]) -> Result<D, DecodeError>,
        bytes: &[u8],
    ) -> bool {
        match fast(bytes) {
            Some(d) => slow(bytes).is_ok_and(|s| format!("{s:?}") == format!("{d:?}")),
            None => true,
        }
    }

    /// Checks `fast` against `slow` on `bytes` cut short anywhere and with any byte changed to a
    /// few telling values (keys of every wire type, varint continuations, lengths).
    fn damage_agrees<D: std::fmt::Debug>(
        fast: fn(&[u8]) -> Option<D>,
        slow: fn(&[u8]) -> Result<D, DecodeError>,
        bytes: &[u8],
    ) {
        for len in 0..bytes.len() {
            assert!(agrees(fast, slow, &bytes[..len]), "cut at {len}");
        }
        for i in 0..bytes.len() {
            for value in [0x00, 0x01, 0x02, 0x05, 0x08, 0x0a, 0x0b, 0x0c, 0x0d, 0x12, 0x7f, 0x80, 0xff] {
                let mut changed = bytes.to_vec();
                changed[i] = value;
                assert!(agrees(fast, slow, &changed), "byte {i} = {value:#x}");
            }
        }
    }

    fn slow_sensor_frame(bytes: &[u8]) -> Result<SensorFrame, DecodeError> {
        decode::<wire::SensorFrame, SensorFrame>(bytes)
    }

    fn slow_ground_truth_frame(bytes: &[u8]) -> Result<GroundTruthFrame, DecodeError> {
        decode::<wire::GroundTruthFrame, GroundTruthFrame>(bytes)
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
    fn written_messages_decode_as_prost_and_the_conversion_decode_them() {
        for bytes in sensor_frames_bytes() {
            assert_eq!(sensor_frame(&bytes), Some(slow_sensor_frame(&bytes).expect("decodes")));
        }
        let bytes = wire::GroundTruthFrame::from(&truth_frame()).encode_to_vec();
        assert_eq!(ground_truth_frame(&bytes), Some(truth_frame()));
        assert_eq!(ground_truth_frame(&bytes), Some(slow_ground_truth_frame(&bytes).expect("decodes")));
    }

    #[test]
    fn unusual_input_is_left_to_prost() {
        let bytes = &sensor_frames_bytes()[0];
        // An unknown field (tag 15, varint): prost skips it, the fast path declines.
        let mut unknown = bytes.clone();
        unknown.extend_from_slice(&[15 << 3, 1]);
        assert!(slow_sensor_frame(&unknown).is_ok());
        assert_eq!(sensor_frame(&unknown), None);
        // A key written in two bytes (the first field's, with a needless continuation byte):
        // prost reads it, the fast path declines.
        let mut long_key = vec![bytes[0] | 0x80, 0x00];
        long_key.extend_from_slice(&bytes[1..]);
        assert_eq!(slow_sensor_frame(&long_key).ok(), slow_sensor_frame(bytes).ok());
        assert_eq!(sensor_frame(&long_key), None);
        // A second copy of the detections: prost merges them, the fast path declines.
        let mut twice = bytes.clone();
        twice.extend_from_slice(bytes);
        assert!(slow_sensor_frame(&twice).is_ok());
        assert_eq!(sensor_frame(&twice), None);
    }

    /// The fields of one message's `bytes`, each as its key and value bytes.
    fn field_slices(bytes: &[u8]) -> Vec<&[u8]> {
        let mut fields = Fields::new(bytes);
        let mut slices = Vec::new();
        while !fields.at_end() {
            let start = fields.rest;
            let key = fields.key().expect("one-byte key");
            fields.skip(key & 7).expect("whole field");
            slices.push(&start[..start.len() - fields.rest.len()]);
        }
        slices
    }

    #[test]
    fn fields_in_any_order_and_repeated_decode_as_prost_decodes_them() {
        let objects = wire::GroundTruthFrame::from(&truth_frame()).objects;
        let (first, second) = (objects[0].encode_to_vec(), objects[1].encode_to_vec());
        // The first object's fields in reverse tag order, then the second's first two again (the
        // last value wins).
        let mut object: Vec<u8> = field_slices(&first).into_iter().rev().flatten().copied().collect();
        object.extend(field_slices(&second)[..2].iter().copied().flatten());
        let mut frame = wire::GroundTruthFrame { timestamp_ns: 5, ..Default::default() }.encode_to_vec();
        frame.push(key(2, LEN));
        prost::encoding::encode_varint(object.len() as u64, &mut frame);
        frame.extend_from_slice(&object);
        let fast = ground_truth_frame(&frame).expect("decodes");
        assert_eq!(Some(fast.clone()), slow_ground_truth_frame(&frame).ok());
        assert_eq!(fast.objects[0].id, objects[1].id);
        assert_eq!(fast.objects[0].center_m, Point3::new(objects[0].x_m, objects[0].y_m, objects[0].z_m));
    }

    #[test]
    fn boxes_with_and_without_their_leading_floats_in_order_decode_as_prost_decodes_them() {
        let frame = wire::SensorFrame::from(&crate::sample::lidar_frame());
        let Some(wire::sensor_frame::Detections::Lidar(lidar)) = &frame.detections else { panic!("a lidar frame") };
        let all = lidar.boxes[0].encode_to_vec();
        // A zero float (left out), so the leading floats are not all there.
        let zero_z = wire::LidarBox { z_m: 0.0, ..lidar.boxes[0] }.encode_to_vec();
        // All of them, then `x_m` again (the last value wins).
        let mut twice_x = all.clone();
        twice_x.extend_from_slice(&[key(1, I32), 0, 0, 0x80, 0x3f]);
        for lidar_box in [all, zero_z, twice_x] {
            let len = u8::try_from(lidar_box.len()).expect("a short box");
            let mut bytes = wire::SensorFrame { detections: None, ..frame.clone() }.encode_to_vec();
            bytes.extend_from_slice(&[key(4, LEN), len + 2, key(1, LEN), len]);
            bytes.extend_from_slice(&lidar_box);
            let fast = sensor_frame(&bytes).expect("decodes");
            assert_eq!(Some(&fast), slow_sensor_frame(&bytes).ok().as_ref());
        }
    }

    #[test]
    fn invalid_content_is_left_to_the_conversion() {
        let mut truth = wire::GroundTruthFrame::from(&truth_frame());
        truth.objects[1].speed_mps = f64::NAN;
        let bytes = truth.encode_to_vec();
        assert_eq!(ground_truth_frame(&bytes), None);
        assert!(matches!(slow_ground_truth_frame(&bytes), Err(DecodeError::Invalid(_))));
        let mut frame = wire::SensorFrame::from(&crate::sample::camera_frame());
        if let Some(wire::sensor_frame::Detections::Camera(c)) = &mut frame.detections {
            c.image_width_px = 0;
        }
        let bytes = frame.encode_to_vec();
        assert_eq!(sensor_frame(&bytes), None);
        assert!(matches!(slow_sensor_frame(&bytes), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn damaged_messages_decode_as_prost_and_the_conversion_decode_them_or_are_left_to_them() {
        for bytes in sensor_frames_bytes() {
            damage_agrees(sensor_frame, slow_sensor_frame, &bytes);
        }
        let truth = wire::GroundTruthFrame::from(&truth_frame()).encode_to_vec();
        damage_agrees(ground_truth_frame, slow_ground_truth_frame, &truth);
    }
}
