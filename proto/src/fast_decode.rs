//! The decoder of the high-volume messages (sensor frames and ground truth: thousands of boxes and
//! objects per second, live and in replays), from protobuf bytes straight into the domain types.
//! [`crate::decode`] uses it for [`SensorFrame`] and [`GroundTruthFrame`], in the daemon and in
//! the replay reader alike.
//!
//! It gives, for every input, what prost followed by [`crate::convert`] gives (the reference,
//! [`crate::decode_reference`], which the tests compare it with): the same domain value, or an
//! error of the same class. Protobuf that prost rejects (a bad varint, key or wire type, a length
//! past the end, invalid UTF-8, groups nested past prost's recursion limit) is
//! [`DecodeError::Malformed`], wherever it sits; otherwise content the conversion rejects is
//! [`DecodeError::Invalid`] with the conversion's own error, checked in the conversion's order.
//! It accepts all that prost accepts: fields in any order and repeated (the last value wins,
//! repeated messages append, a oneof's sub-message merges with a previous one of the same
//! variant and replaces one of the other), unknown fields (skipped, groups included) and keys of
//! any length.
//!
//! Nothing is built twice: no intermediate wire message for the frame, a box or an object is
//! converted as soon as it is read (through the conversions of [`crate::convert`], so the checks
//! are the same code), into vectors sized by a first pass over the keys. Each field's key is first
//! compared with the one expected next in tag order (the layout prost writes), and runs of fixed
//! width floats in that order are read after one length check.

use std::borrow::Cow;

use rsu_fusion::SensorFrame;
use rsu_fusion::measurement::{CameraDetection, CameraDetections, Detections, LidarDetection};

use crate::convert::{
    MAX_DETECTIONS_PER_FRAME, MAX_SIGNALS, MAX_TRUTH_OBJECTS, check_ground_truth_frame, check_image_size,
    ground_truth_object, sensor_frame_with, signal_state,
};
use crate::domain::{GroundTruthFrame, GroundTruthObject, SignalState};
use crate::{ConvertError, DecodeError, MalformedError, wire};

/// Wire type of varints (`int32`, `uint32`, `uint64`, enums).
const VARINT: u32 = 0;
/// Wire type of 8-byte values (`fixed64`, `double`).
const I64: u32 = 1;
/// Wire type of length-delimited values (strings, bytes, sub-messages).
const LEN: u32 = 2;
/// Wire type of the start of a group (a deprecated encoding, skipped as an unknown field).
const START_GROUP: u32 = 3;
/// Wire type of the end of a group.
const END_GROUP: u32 = 4;
/// Wire type of 4-byte values (`fixed32`, `float`).
const I32: u32 = 5;

/// How deep prost nests a message's decoding: the top-level message's fields are decoded with
/// this budget, a sub-message's with one less, and an unknown field is refused when the budget
/// of its message (or, inside a group, of its enclosing group) is spent.
const RECURSION_LIMIT: u32 = 100;

/// The key of field `tag` with `wire_type`; every field of these messages has a tag below 16, so
/// its key is one byte.
const fn key(tag: u32, wire_type: u32) -> u32 {
    tag << 3 | wire_type
}

/// Not valid protobuf for the message being decoded.
type Wire<T> = Result<T, MalformedError>;

#[cold]
#[inline(never)]
fn malformed(what: impl Into<Cow<'static, str>>) -> MalformedError {
    MalformedError::new(what)
}

/// Reads the fields of one message.
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
    fn varint(&mut self) -> Wire<u64> {
        // One byte: keys, enums and small counts.
        if let Some((&byte, tail)) = self.rest.split_first()
            && byte < 0x80
        {
            self.rest = tail;
            return Ok(u64::from(byte));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Wire<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    break;
                }
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(malformed("invalid varint"))
    }

    /// The next field's key (`tag << 3 | wire type`), checked as prost checks it: at most
    /// `u32::MAX`, a known wire type, a tag of at least 1.
    #[inline]
    fn key(&mut self) -> Wire<u32> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| malformed(format!("invalid key value: {key}")))?;
        if key & 7 > I32 {
            return Err(malformed(format!("invalid wire type value: {}", key & 7)));
        }
        if key >> 3 == 0 {
            return Err(malformed("invalid tag value: 0"));
        }
        Ok(key)
    }

    /// Whether the next field's key is the one-byte `key`; if so, reads past it.
    #[inline]
    fn next_is(&mut self, key: u32) -> bool {
        match self.rest.split_first() {
            Some((&k, tail)) if u32::from(k) == key => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Wire<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>().ok_or_else(|| malformed("buffer underflow"))?;
        self.rest = tail;
        Ok(*head)
    }

    /// A `float` value.
    #[inline]
    fn f32(&mut self) -> Wire<f32> {
        self.fixed().map(f32::from_le_bytes)
    }

    /// A `double` value.
    #[inline]
    fn f64(&mut self) -> Wire<f64> {
        self.fixed().map(f64::from_le_bytes)
    }

    /// A `fixed64` value.
    #[inline]
    fn u64(&mut self) -> Wire<u64> {
        self.fixed().map(u64::from_le_bytes)
    }

    /// A `uint32` value: the varint truncated as prost does (`as u32`).
    #[inline]
    fn u32(&mut self) -> Wire<u32> {
        self.varint().map(|v| v as u32)
    }

    /// An `int32` or enum value: the varint truncated as prost does (`as i32`).
    #[inline]
    fn i32(&mut self) -> Wire<i32> {
        self.varint().map(|v| v as i32)
    }

    /// The bytes of a length-delimited value.
    #[inline]
    fn bytes(&mut self) -> Wire<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).ok().filter(|&len| len <= self.rest.len());
        let (head, tail) = self.rest.split_at(len.ok_or_else(|| malformed("buffer underflow"))?);
        self.rest = tail;
        Ok(head)
    }

    /// A string value (valid UTF-8).
    fn str(&mut self) -> Wire<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| malformed("invalid string value: data is not UTF-8 encoded"))
    }

    /// Reads past the value of a field with `key` that is not one of `known_tags` (its
    /// message's fields); a known tag with another wire type is an error. `budget` is the
    /// recursion budget of the field's message ([`RECURSION_LIMIT`]).
    fn other(&mut self, key: u32, known_tags: &[u32], budget: u32) -> Wire<()> {
        if known_tags.contains(&(key >> 3)) {
            return Err(malformed(format!("invalid wire type {} for field {}", key & 7, key >> 3)));
        }
        self.skip(key, budget)
    }

    /// Reads past the value of an unknown field with `key`, as prost skips it.
    fn skip(&mut self, key: u32, budget: u32) -> Wire<()> {
        if budget == 0 {
            return Err(malformed("recursion limit reached"));
        }
        match key & 7 {
            VARINT => self.varint().map(drop),
            I64 => self.fixed::<8>().map(drop),
            LEN => self.bytes().map(drop),
            I32 => self.fixed::<4>().map(drop),
            START_GROUP => loop {
                let inner = self.key()?;
                if inner & 7 == END_GROUP {
                    if inner >> 3 != key >> 3 {
                        return Err(malformed("unexpected end group tag"));
                    }
                    return Ok(());
                }
                self.skip(inner, budget - 1)?;
            },
            _ => Err(malformed("unexpected end group tag")),
        }
    }
}

/// Reads the fields of a message from `fields` (a [`Fields`]) into their targets, each
/// `KEY => target = value` (`KEY` a constant [`key`]); `budget` is the message's recursion budget.
/// First in the order given, each field at most once: the layout prost writes (tag order, zero
/// values left out), one comparison per field. Then whatever is left, in any order and repeated
/// (the last value wins, repeated fields append), by a match on the key; other keys are unknown
/// fields, skipped. Both passes read fields in file order, so the result is that of the second
/// pass alone.
macro_rules! read_fields {
    ($fields:ident, $budget:expr, { $($key:ident => $read:expr,)* }) => {
        $(
            if $fields.next_is($key) {
                $read;
            }
        )*
        while !$fields.at_end() {
            match $fields.key()? {
                $($key => $read,)*
                other => $fields.other(other, &[$($key >> 3),*], $budget)?,
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
    first_tag: u32,
    wire_type: u32,
) -> Option<([[u8; W]; N], &[u8])> {
    let (head, rest) = bytes.split_at_checked((1 + W) * N)?;
    let mut values = [[0; W]; N];
    for (i, slot) in values.iter_mut().enumerate() {
        // Within `head` (`1 + W` bytes a field), so these always succeed: the optimizer, knowing
        // `head`'s length, drops the checks and unrolls the loop. Field `first_tag + i`'s key is
        // the first one's plus `i << 3` (the wire type sits in the low three bits).
        let (&field_key, value) = head.get(i * (1 + W)..)?.split_first()?;
        if usize::from(field_key) != key(first_tag, wire_type) as usize + (i << 3) {
            return None;
        }
        *slot = *value.first_chunk()?;
    }
    Some((values, rest))
}

/// How many fields of `bytes` have the one-byte `key` (the entries of a repeated sub-message), to
/// size its vector before decoding; a guess (what was counted so far) when the bytes are not
/// valid, which the decoding then reports.
fn count_entries(bytes: &[u8], key: u32) -> usize {
    let mut fields = Fields::new(bytes);
    let mut count = 0;
    while !fields.at_end() {
        // Entries are nearly all there is: checked first, then any other field.
        let read = if fields.next_is(key) {
            count += 1;
            fields.bytes().map(drop)
        } else {
            fields.key().and_then(|k| fields.skip(k, RECURSION_LIMIT))
        };
        if read.is_err() {
            break;
        }
    }
    count
}

/// The entries of a repeated field as the conversion sees them: all counted, converted in order
/// up to the first that fails (its error kept) and no further than the conversion's limit (it
/// refuses more, so those are only counted).
struct Converted<T> {
    items: Vec<T>,
    count: usize,
    max: usize,
    error: Option<ConvertError>,
}

impl<T> Converted<T> {
    fn new(max: usize) -> Self {
        Converted { items: Vec::new(), count: 0, max, error: None }
    }

    /// Makes room for `n` more entries (within the limit).
    fn reserve(&mut self, n: usize) {
        self.items.reserve(n.min(self.max.saturating_sub(self.items.len())));
    }

    /// Counts an entry and, while none has failed and the limit is not passed, converts it.
    #[inline]
    fn push(&mut self, convert: impl FnOnce() -> Result<T, ConvertError>) {
        self.count += 1;
        if self.error.is_none() && self.count <= self.max {
            match convert() {
                Ok(item) => self.items.push(item),
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// The converted entries, or the first conversion error (the caller checks the count first,
    /// as the conversion does).
    fn into_items(self) -> Result<Vec<T>, ConvertError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.items),
        }
    }
}

/// The `detections` oneof of a sensor frame as read so far.
enum DetectionsRead {
    Lidar(Converted<LidarDetection>),
    Camera { image_width_px: u32, image_height_px: u32, boxes: Converted<CameraDetection> },
}

impl DetectionsRead {
    /// The detections, checked as [`SensorFrame`]'s conversion checks them: the number of boxes,
    /// the image size, then each box.
    fn finish(self) -> Result<Detections, ConvertError> {
        Ok(match self {
            DetectionsRead::Lidar(boxes) => {
                crate::convert::limit_len("lidar.boxes", boxes.count, MAX_DETECTIONS_PER_FRAME)?;
                Detections::Lidar(boxes.into_items()?)
            }
            DetectionsRead::Camera { image_width_px, image_height_px, boxes } => {
                crate::convert::limit_len("camera.boxes", boxes.count, MAX_DETECTIONS_PER_FRAME)?;
                check_image_size(image_width_px, image_height_px)?;
                Detections::Camera(CameraDetections { image_width_px, image_height_px, boxes: boxes.into_items()? })
            }
        })
    }
}

/// The sensor frame of `bytes`, as [`crate::decode_reference`] gives it (see the module docs).
pub(crate) fn sensor_frame(bytes: &[u8]) -> Result<SensorFrame, DecodeError> {
    const SENSOR_ID: u32 = key(1, LEN);
    const SEQUENCE: u32 = key(2, VARINT);
    const CAPTURE_TIME: u32 = key(3, I64);
    const LIDAR: u32 = key(4, LEN);
    const CAMERA: u32 = key(5, LEN);
    const BUDGET: u32 = RECURSION_LIMIT;
    let mut fields = Fields::new(bytes);
    let (mut sensor_id, mut sequence, mut capture_time_ns) = ("", 0, 0);
    let mut detections = None;
    while !fields.at_end() {
        match fields.key()? {
            SENSOR_ID => sensor_id = fields.str()?,
            SEQUENCE => sequence = fields.varint()?,
            CAPTURE_TIME => capture_time_ns = fields.u64()?,
            // A sub-message of the variant already read merges into it (its boxes append, its
            // scalars replace); one of the other variant replaces it.
            LIDAR => {
                let bytes = fields.bytes()?;
                if !matches!(detections, Some(DetectionsRead::Lidar(_))) {
                    detections = Some(DetectionsRead::Lidar(Converted::new(MAX_DETECTIONS_PER_FRAME)));
                }
                if let Some(DetectionsRead::Lidar(boxes)) = &mut detections {
                    lidar_detections(bytes, boxes, BUDGET - 1)?;
                }
            }
            CAMERA => {
                let bytes = fields.bytes()?;
                if !matches!(detections, Some(DetectionsRead::Camera { .. })) {
                    detections = Some(DetectionsRead::Camera {
                        image_width_px: 0,
                        image_height_px: 0,
                        boxes: Converted::new(MAX_DETECTIONS_PER_FRAME),
                    });
                }
                if let Some(DetectionsRead::Camera { image_width_px, image_height_px, boxes }) = &mut detections {
                    camera_detections(bytes, (image_width_px, image_height_px), boxes, BUDGET - 1)?;
                }
            }
            other => fields.other(other, &[1, 2, 3, 4, 5], BUDGET)?,
        }
    }
    // The conversion's checks, in its order: the detections, then the frame's own fields.
    let detections = detections.ok_or(ConvertError::Missing { field: "detections" })?.finish()?;
    Ok(sensor_frame_with(sensor_id, sequence, capture_time_ns, detections)?)
}

/// Reads the boxes of a `LidarDetections` (recursion budget `budget`) into `boxes`.
fn lidar_detections(bytes: &[u8], boxes: &mut Converted<LidarDetection>, budget: u32) -> Wire<()> {
    const BOX: u32 = key(1, LEN);
    boxes.reserve(count_entries(bytes, BOX));
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        match fields.key()? {
            BOX => {
                let b = lidar_box(fields.bytes()?, budget - 1)?;
                boxes.push(|| LidarDetection::try_from(&b));
            }
            other => fields.other(other, &[1], budget)?,
        }
    }
    Ok(())
}

fn lidar_box(bytes: &[u8], budget: u32) -> Wire<wire::LidarBox> {
    const X: u32 = key(1, I32);
    const Y: u32 = key(2, I32);
    const Z: u32 = key(3, I32);
    const LENGTH: u32 = key(4, I32);
    const WIDTH: u32 = key(5, I32);
    const HEIGHT: u32 = key(6, I32);
    const YAW: u32 = key(7, I32);
    const CLASS: u32 = key(8, VARINT);
    const SCORE: u32 = key(9, I32);
    const POINT_COUNT: u32 = key(10, VARINT);
    let mut b = wire::LidarBox::default();
    let mut fields = Fields::new(bytes);
    // The position, size and yaw as prost writes them (unless one is zero): read in one step, then
    // the rest as usual (still in file order, so a repeated field's last value wins).
    if let Some((values, rest)) = leading_fixed::<7, 4>(bytes, 1, I32) {
        [b.x_m, b.y_m, b.z_m, b.length_m, b.width_m, b.height_m, b.yaw_rad] = values.map(f32::from_le_bytes);
        fields = Fields::new(rest);
    }
    read_fields!(fields, budget, {
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
    Ok(b)
}

/// Reads a `CameraDetections` (recursion budget `budget`): its image size into `size` (width,
/// height), its boxes into `boxes`.
fn camera_detections(
    bytes: &[u8],
    size: (&mut u32, &mut u32),
    boxes: &mut Converted<CameraDetection>,
    budget: u32,
) -> Wire<()> {
    const WIDTH: u32 = key(1, VARINT);
    const HEIGHT: u32 = key(2, VARINT);
    const BOX: u32 = key(3, LEN);
    boxes.reserve(count_entries(bytes, BOX));
    // One wire box for every box read, so its class scores are not allocated again each time.
    let mut scratch = wire::CameraBox::default();
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        match fields.key()? {
            WIDTH => *size.0 = fields.u32()?,
            HEIGHT => *size.1 = fields.u32()?,
            BOX => {
                camera_box(fields.bytes()?, &mut scratch, budget - 1)?;
                boxes.push(|| CameraDetection::try_from(&scratch));
            }
            other => fields.other(other, &[1, 2, 3], budget)?,
        }
    }
    Ok(())
}

/// Reads the camera box of `bytes` into `b` (whatever it held before).
fn camera_box(bytes: &[u8], b: &mut wire::CameraBox, budget: u32) -> Wire<()> {
    const U_MIN: u32 = key(1, I32);
    const V_MIN: u32 = key(2, I32);
    const U_MAX: u32 = key(3, I32);
    const V_MAX: u32 = key(4, I32);
    const CLASS_SCORE: u32 = key(5, LEN);
    let mut scores = std::mem::take(&mut b.class_scores);
    scores.clear();
    *b = wire::CameraBox { class_scores: scores, ..wire::CameraBox::default() };
    let mut fields = Fields::new(bytes);
    // The corners as prost writes them (unless one is zero): as for lidar boxes.
    if let Some((values, rest)) = leading_fixed::<4, 4>(bytes, 1, I32) {
        [b.u_min_px, b.v_min_px, b.u_max_px, b.v_max_px] = values.map(f32::from_le_bytes);
        fields = Fields::new(rest);
    }
    read_fields!(fields, budget, {
        U_MIN => b.u_min_px = fields.f32()?,
        V_MIN => b.v_min_px = fields.f32()?,
        U_MAX => b.u_max_px = fields.f32()?,
        V_MAX => b.v_max_px = fields.f32()?,
        CLASS_SCORE => b.class_scores.push(class_score(fields.bytes()?, budget - 1)?),
    });
    Ok(())
}

fn class_score(bytes: &[u8], budget: u32) -> Wire<wire::ClassScore> {
    const CLASS: u32 = key(1, VARINT);
    const SCORE: u32 = key(2, I32);
    let mut s = wire::ClassScore::default();
    let mut fields = Fields::new(bytes);
    read_fields!(fields, budget, {
        CLASS => s.object_class = fields.i32()?,
        SCORE => s.score = fields.f32()?,
    });
    Ok(s)
}

/// The ground-truth frame of `bytes`, as [`crate::decode_reference`] gives it (see the module
/// docs).
pub(crate) fn ground_truth_frame(bytes: &[u8]) -> Result<GroundTruthFrame, DecodeError> {
    const TIMESTAMP: u32 = key(1, I64);
    const OBJECT: u32 = key(2, LEN);
    const SIGNAL: u32 = key(3, LEN);
    const BUDGET: u32 = RECURSION_LIMIT;
    let mut objects = Converted::new(MAX_TRUTH_OBJECTS);
    objects.reserve(count_entries(bytes, OBJECT));
    let mut signals = Converted::new(MAX_SIGNALS);
    let mut timestamp_ns = 0;
    let mut fields = Fields::new(bytes);
    while !fields.at_end() {
        match fields.key()? {
            TIMESTAMP => timestamp_ns = fields.u64()?,
            OBJECT => {
                let (o, v2x_id) = ground_truth_object_wire(fields.bytes()?, BUDGET - 1)?;
                objects.push(|| ground_truth_object(&o, v2x_id));
            }
            SIGNAL => {
                let s = signal_state_wire(fields.bytes()?, BUDGET - 1)?;
                signals.push(|| signal_state(&s));
            }
            other => fields.other(other, &[1, 2, 3], BUDGET)?,
        }
    }
    // The conversion's checks, in its order: the counts and time, then each object and signal.
    let time = check_ground_truth_frame(timestamp_ns, objects.count, signals.count)?;
    let objects: Vec<GroundTruthObject> = objects.into_items()?;
    let signals: Vec<SignalState> = signals.into_items()?;
    Ok(GroundTruthFrame { time, objects, signals })
}

/// A ground-truth object's wire fields and its `v2x_id` (apart, so no `String` is built: the
/// conversion takes the bytes read).
fn ground_truth_object_wire(bytes: &[u8], budget: u32) -> Wire<(wire::GroundTruthObject, &str)> {
    const ID: u32 = key(1, VARINT);
    const CLASS: u32 = key(2, VARINT);
    const X: u32 = key(3, I64);
    const Y: u32 = key(4, I64);
    const Z: u32 = key(5, I64);
    const YAW: u32 = key(6, I64);
    const SPEED: u32 = key(7, I64);
    const YAW_RATE: u32 = key(8, I64);
    const ACCEL: u32 = key(9, I64);
    const LENGTH: u32 = key(10, I64);
    const WIDTH: u32 = key(11, I64);
    const HEIGHT: u32 = key(12, I64);
    const V2X_ID: u32 = key(13, LEN);
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
    read_fields!(fields, budget, {
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
    Ok((o, v2x_id))
}

fn signal_state_wire(bytes: &[u8], budget: u32) -> Wire<wire::SignalState> {
    const SIGNAL_ID: u32 = key(1, LEN);
    const PHASE: u32 = key(2, VARINT);
    const REMAINING: u32 = key(3, VARINT);
    let mut s = wire::SignalState::default();
    let mut fields = Fields::new(bytes);
    read_fields!(fields, budget, {
        SIGNAL_ID => fields.str()?.clone_into(&mut s.signal_id),
        PHASE => s.phase = fields.i32()?,
        REMAINING => s.remaining_ms = fields.u32()?,
    });
    Ok(s)
}

#[cfg(test)]
mod tests {
    use nalgebra::Point3;
    use prost::Message;
    use rsu_fusion::{BoxSize, ObjectClass, Timestamp};

    use super::*;
    use crate::domain::SignalPhase;
    use crate::{decode_outcome, decode_reference};

    /// Asserts that both decoders of sensor frames give the same outcome on `bytes`.
    fn sensor_frames_agree(bytes: &[u8], what: &str) {
        let reference = decode_reference::<wire::SensorFrame, SensorFrame>(bytes);
        assert_eq!(decode_outcome(&sensor_frame(bytes)), decode_outcome(&reference), "{what}");
    }

    /// Asserts that both decoders of ground-truth frames give the same outcome on `bytes`.
    fn truth_frames_agree(bytes: &[u8], what: &str) {
        let reference = decode_reference::<wire::GroundTruthFrame, GroundTruthFrame>(bytes);
        assert_eq!(decode_outcome(&ground_truth_frame(bytes)), decode_outcome(&reference), "{what}");
    }

    /// Checks `agree` on `bytes` cut short anywhere and with any byte changed to a few telling
    /// values (keys of every wire type, varint continuations, lengths).
    fn damage_agrees(agree: fn(&[u8], &str), bytes: &[u8]) {
        for len in 0..bytes.len() {
            agree(&bytes[..len], &format!("cut at {len}"));
        }
        for i in 0..bytes.len() {
            for value in [0x00, 0x01, 0x02, 0x05, 0x08, 0x0a, 0x0b, 0x0c, 0x0d, 0x12, 0x7f, 0x80, 0xff] {
                let mut changed = bytes.to_vec();
                changed[i] = value;
                agree(&changed, &format!("byte {i} = {value:#x}"));
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
            assert_eq!(Fields::new(bytes).varint().ok(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn written_messages_decode_as_prost_and_the_conversion_decode_them() {
        for bytes in sensor_frames_bytes() {
            assert!(sensor_frame(&bytes).is_ok());
            sensor_frames_agree(&bytes, "as written");
        }
        let bytes = wire::GroundTruthFrame::from(&truth_frame()).encode_to_vec();
        assert_eq!(ground_truth_frame(&bytes).ok(), Some(truth_frame()));
        truth_frames_agree(&bytes, "as written");
    }

    #[test]
    fn unusual_protobuf_decodes_as_prost_decodes_it() {
        let bytes = &sensor_frames_bytes()[0];
        // An unknown field (tag 15, varint), and one with a two-byte key (tag 100, fixed32).
        let mut unknown = bytes.clone();
        unknown.extend_from_slice(&[15 << 3, 1, 0xa5, 0x06, 1, 2, 3, 4]);
        assert!(sensor_frame(&unknown).is_ok());
        sensor_frames_agree(&unknown, "unknown fields");
        // A key written in two bytes (the first field's, with a needless continuation byte).
        let mut long_key = vec![bytes[0] | 0x80, 0x00];
        long_key.extend_from_slice(&bytes[1..]);
        assert!(sensor_frame(&long_key).is_ok());
        sensor_frames_agree(&long_key, "a long key");
        // A second copy of the frame: the boxes of the second `lidar` append to the first's.
        let mut twice = bytes.clone();
        twice.extend_from_slice(bytes);
        assert!(sensor_frame(&twice).is_ok());
        sensor_frames_agree(&twice, "twice");
        // A lidar frame then a camera frame: the camera detections replace the lidar ones.
        let mut both = bytes.clone();
        both.extend_from_slice(&sensor_frames_bytes()[1]);
        assert!(matches!(sensor_frame(&both).map(|f| f.detections), Ok(Detections::Camera(_))));
        sensor_frames_agree(&both, "lidar then camera");
        // A known field with another wire type.
        let mut wrong_type = bytes.clone();
        wrong_type.extend_from_slice(&[key(2, I64) as u8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(sensor_frame(&wrong_type), Err(DecodeError::Malformed(_))));
        sensor_frames_agree(&wrong_type, "a wrong wire type");
    }

    /// The fields of one message's `bytes`, each as its key and value bytes.
    fn field_slices(bytes: &[u8]) -> Vec<&[u8]> {
        let mut fields = Fields::new(bytes);
        let mut slices = Vec::new();
        while !fields.at_end() {
            let start = fields.rest;
            let key = fields.key().expect("a key");
            fields.skip(key, RECURSION_LIMIT).expect("whole field");
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
        frame.push(key(2, LEN) as u8);
        prost::encoding::encode_varint(object.len() as u64, &mut frame);
        frame.extend_from_slice(&object);
        let fast = ground_truth_frame(&frame).expect("decodes");
        truth_frames_agree(&frame, "reordered");
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
        twice_x.extend_from_slice(&[key(1, I32) as u8, 0, 0, 0x80, 0x3f]);
        for lidar_box in [all, zero_z, twice_x] {
            let len = u8::try_from(lidar_box.len()).expect("a short box");
            let mut bytes = wire::SensorFrame { detections: None, ..frame.clone() }.encode_to_vec();
            bytes.extend_from_slice(&[key(4, LEN) as u8, len + 2, key(1, LEN) as u8, len]);
            bytes.extend_from_slice(&lidar_box);
            assert!(sensor_frame(&bytes).is_ok());
            sensor_frames_agree(&bytes, "leading floats");
        }
    }

    #[test]
    fn invalid_content_gives_the_conversions_error() {
        let mut truth = wire::GroundTruthFrame::from(&truth_frame());
        truth.objects[1].speed_mps = f64::NAN;
        let bytes = truth.encode_to_vec();
        assert!(matches!(ground_truth_frame(&bytes), Err(DecodeError::Invalid(_))));
        truth_frames_agree(&bytes, "a NaN speed");
        let mut frame = wire::SensorFrame::from(&crate::sample::camera_frame());
        if let Some(wire::sensor_frame::Detections::Camera(c)) = &mut frame.detections {
            c.image_width_px = 0;
            c.boxes[0].u_min_px = f32::INFINITY;
        }
        let bytes = frame.encode_to_vec();
        assert!(matches!(sensor_frame(&bytes), Err(DecodeError::Invalid(_))));
        sensor_frames_agree(&bytes, "a zero image width and an infinite corner");
    }

    #[test]
    fn damaged_messages_decode_as_prost_and_the_conversion_decode_them() {
        for bytes in sensor_frames_bytes() {
            damage_agrees(sensor_frames_agree, &bytes);
        }
        let truth = wire::GroundTruthFrame::from(&truth_frame()).encode_to_vec();
        damage_agrees(truth_frames_agree, &truth);
    }
}
