//! Conversions shared by every message family: the checks that turn untrusted wire values into
//! domain values (finite and bounded floats, ids, list limits, capture times, object classes),
//! the fixed-point quantisation of the standards (heading, speed), WGS84 positions and polygons.

use std::f64::consts::PI;

use rsu_fusion::{ObjectClass, Timestamp, Wgs84};

use super::{ConvertError, MAX_ID_LEN, MAX_POLYGON_VERTICES, Result};
use super::{HEADING_MAX, HEADING_UNIT_DEG, SPEED_MAX, SPEED_STEPS_PER_MPS};
use crate::wire;

pub(super) fn out_of_range(field: &'static str, value: impl std::fmt::Display, expected: &'static str) -> ConvertError {
    ConvertError::OutOfRange { field, value: value.to_string(), expected }
}

/// A finite float within `[lo, hi]` (finite bounds). Inlined, so a valid value costs two
/// comparisons; the error is built out of line.
#[inline]
pub(super) fn bounded(field: &'static str, v: f64, lo: f64, hi: f64) -> Result<f64> {
    // With finite bounds, being within them implies finite (NaN compares false).
    if lo <= v && v <= hi { Ok(v) } else { Err(not_in_range(field, v)) }
}

#[cold]
#[inline(never)]
fn not_in_range(field: &'static str, v: f64) -> ConvertError {
    out_of_range(field, v, "a finite value in range")
}

pub(super) fn id_string(field: &'static str, s: &str) -> Result<String> {
    if s.is_empty() || s.len() > MAX_ID_LEN || s.chars().any(char::is_control) {
        return Err(out_of_range(field, format!("{s:?}"), "1..64 bytes without control characters"));
    }
    Ok(s.to_owned())
}

pub(super) fn limit<T>(field: &'static str, v: &[T], max: usize) -> Result<()> {
    limit_len(field, v.len(), max)
}

/// [`limit`] on a count of entries.
pub(crate) fn limit_len(field: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max { Err(ConvertError::TooMany { field, len, max }) } else { Ok(()) }
}

/// `items.iter().map(convert).collect::<Result<Vec<_>>>()`, with the vector sized once: such a
/// `collect` has no length hint and grows the vector step by step, copying it each time.
pub(super) fn convert_all<'a, W, D>(items: &'a [W], convert: impl FnMut(&'a W) -> Result<D>) -> Result<Vec<D>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter().map(convert) {
        out.push(item?);
    }
    Ok(out)
}

pub(super) fn timestamp(field: &'static str, ns: u64) -> Result<Timestamp> {
    i64::try_from(ns).map(Timestamp::from_nanos).map_err(|_| out_of_range(field, ns, "at most i64::MAX ns"))
}

pub(super) fn wire_time(t: Timestamp) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(0)
}

pub(super) fn class(field: &'static str, code: i32) -> Result<ObjectClass> {
    ObjectClass::from_code(code).ok_or(ConvertError::UnknownEnum { field, value: code })
}

/// Rounds `v / unit` to the nearest integer, saturating at the i32 range (NaN gives 0).
pub(super) fn q_i32(v: f64, unit: f64) -> i32 {
    (v / unit).round() as i32
}

/// Rounds `v / unit` to the nearest integer within `0..=max` (NaN gives 0).
pub(super) fn q_u32(v: f64, unit: f64, max: u32) -> u32 {
    ((v / unit).round() as u32).min(max)
}

/// Site yaw (counter-clockwise from east) [rad] → wire heading (clockwise from north) [0.0125°].
pub fn heading_from_yaw(yaw_rad: f64) -> u32 {
    let deg = (90.0 - yaw_rad.to_degrees()).rem_euclid(360.0);
    let h = (deg / HEADING_UNIT_DEG).round() as u32;
    if h > HEADING_MAX { 0 } else { h }
}

/// Wire heading [0.0125°] → site yaw [rad] in (-π, π].
pub fn yaw_from_heading(heading: u32) -> f64 {
    let yaw = (90.0 - f64::from(heading) * HEADING_UNIT_DEG).to_radians();
    let wrapped = (yaw + PI).rem_euclid(2.0 * PI) - PI;
    if wrapped <= -PI { wrapped + 2.0 * PI } else { wrapped }
}

pub(super) fn checked_heading(field: &'static str, heading: u32) -> Result<f64> {
    if heading > HEADING_MAX {
        return Err(out_of_range(field, heading, "0..=28799 [0.0125 deg]"));
    }
    Ok(yaw_from_heading(heading))
}

pub(super) fn checked_speed(field: &'static str, speed: u32) -> Result<f64> {
    if speed > SPEED_MAX {
        return Err(out_of_range(field, speed, "0..=8190 [0.02 m/s]"));
    }
    Ok(f64::from(speed) / SPEED_STEPS_PER_MPS)
}

pub(super) fn required<'a, T>(field: &'static str, v: &'a Option<T>) -> Result<&'a T> {
    v.as_ref().ok_or(ConvertError::Missing { field })
}

impl From<&Wgs84> for wire::Wgs84Position {
    fn from(p: &Wgs84) -> Self {
        wire::Wgs84Position {
            lat_1e7deg: q_i32(p.lat_deg, 1e-7),
            lon_1e7deg: q_i32(p.lon_deg, 1e-7),
            elevation_cm: q_i32(p.alt_m, 0.01),
        }
    }
}

impl TryFrom<&wire::Wgs84Position> for Wgs84 {
    type Error = ConvertError;
    fn try_from(p: &wire::Wgs84Position) -> Result<Self> {
        if !(-900_000_000..=900_000_000).contains(&p.lat_1e7deg) {
            return Err(out_of_range("lat_1e7deg", p.lat_1e7deg, "-900000000..=900000000"));
        }
        if !(-1_800_000_000..=1_800_000_000).contains(&p.lon_1e7deg) {
            return Err(out_of_range("lon_1e7deg", p.lon_1e7deg, "-1800000000..=1800000000"));
        }
        if !(-1_200_000..=10_000_000).contains(&p.elevation_cm) {
            return Err(out_of_range("elevation_cm", p.elevation_cm, "-12 km..=100 km"));
        }
        Ok(Wgs84::new(f64::from(p.lat_1e7deg) / 1e7, f64::from(p.lon_1e7deg) / 1e7, f64::from(p.elevation_cm) / 100.0))
    }
}

pub(super) fn polygon_to_wire(polygon: &[[f64; 2]]) -> wire::Polygon {
    wire::Polygon {
        x_dm: polygon.iter().map(|p| q_i32(p[0], 0.1)).collect(),
        y_dm: polygon.iter().map(|p| q_i32(p[1], 0.1)).collect(),
    }
}

pub(super) fn polygon_from_wire(field: &'static str, p: &wire::Polygon) -> Result<Vec<[f64; 2]>> {
    limit(field, &p.x_dm, MAX_POLYGON_VERTICES)?;
    if p.x_dm.len() != p.y_dm.len() || p.x_dm.len() < 3 {
        return Err(out_of_range(field, p.x_dm.len(), "at least 3 vertices with as many x as y"));
    }
    Ok(p.x_dm.iter().zip(&p.y_dm).map(|(x, y)| [f64::from(*x) / 10.0, f64::from(*y) / 10.0]).collect())
}
