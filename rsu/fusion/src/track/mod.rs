//! One track's lifecycle and attributes, apart from its motion model: tentative → confirmed
//! after M hits in the last N opportunities → coasting when not updated → deleted after a timeout;
//! class evidence fused across sources, smoothed box size, V2X link and path history.
//!
//! The class evidence, a model of its own, is in `evidence`.

use std::collections::VecDeque;
use std::sync::Arc;

use nalgebra::Vector2;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::broadcast::PathPoint;
use crate::class::{BoxSize, SourceSet};
use crate::motion::MotionState;
use crate::time::Timestamp;

mod evidence;

pub use evidence::ClassEvidence;

/// Where a track is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackStatus {
    /// Seen, not yet confirmed (not reported).
    Tentative,
    /// Confirmed and recently updated.
    Confirmed,
    /// Confirmed but not updated for a while: predicted only, uncertainty growing.
    Coasting,
}

/// A V2X self-report linked to a track.
#[derive(Clone, Debug, PartialEq)]
pub struct V2xLink {
    /// The vehicle's V2X id.
    pub vehicle_id: String,
    /// Time of its newest report.
    pub last_report: Timestamp,
}

/// One tracked object.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// Stable unique id.
    pub id: u32,
    /// Motion model state at `time`.
    pub motion: MotionState,
    /// Time the motion state refers to.
    pub time: Timestamp,
    /// Whether the motion state's covariance awaits its guard: predictions and updates within a
    /// batch of inputs defer it ([`crate::motion::Guard::Deferred`]), the batch's end applies it.
    pub guard_due: bool,
    /// When the track was spawned.
    pub created: Timestamp,
    /// Newest measurement fused.
    pub last_update: Timestamp,
    /// Confirmed (ever).
    pub confirmed: bool,
    /// Hit history of the last opportunities, newest in bit 0.
    pub hit_bits: u32,
    /// Opportunities recorded so far (saturating at 32).
    pub opportunities: u32,
    /// Sum of the detector scores of its hits while tentative.
    pub tentative_score_sum: f64,
    /// Hits counted in `tentative_score_sum`.
    pub tentative_scored_hits: u32,
    /// Class evidence.
    pub class_evidence: ClassEvidence,
    /// Smoothed box size [m].
    pub size: BoxSize,
    /// Whether `size` came from a measurement (lidar or V2X) rather than a class default.
    pub size_measured: bool,
    /// Ground height under the box [m].
    pub z_ground_m: f64,
    /// Last known heading, used where the motion model has none [rad].
    pub yaw_hint_rad: f64,
    /// Source kinds that ever updated the track.
    pub sources_ever: SourceSet,
    /// Per sensor index, the capture time of its newest update of this track (sorted by index).
    pub seen: Vec<(usize, Timestamp)>,
    /// Per sensor index, the capture time of its update before the newest (sorted by index).
    pub seen_before: Vec<(usize, Timestamp)>,
    /// The V2X self-report linked to this track.
    pub v2x: Option<V2xLink>,
    /// Smoothed longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Speed [m/s] at the update before, with its time, for the acceleration estimate.
    pub speed_ref: Option<(Timestamp, f64)>,
    /// Recent positions.
    pub path: PathHistory,
}

/// A track's recent positions: (capture time, site-frame position (x, y) [m]), oldest first,
/// shared by the track and the objects polled from it. A poll hands out a reference, not a copy
/// (no allocation per object and poll); the track appends in place once those objects are
/// dropped, and copies the few points otherwise.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathHistory(Arc<VecDeque<(Timestamp, [f64; 2])>>);

impl PathHistory {
    /// An empty history with room for `len` points.
    pub fn with_capacity(len: usize) -> Self {
        PathHistory(Arc::new(VecDeque::with_capacity(len)))
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The points (time, (x, y) [m]), oldest first.
    pub fn samples(&self) -> impl DoubleEndedIterator<Item = &(Timestamp, [f64; 2])> + ExactSizeIterator {
        self.0.iter()
    }

    /// The newest point.
    pub fn newest(&self) -> Option<&(Timestamp, [f64; 2])> {
        self.0.back()
    }

    /// Appends a point, dropping the oldest ones beyond `max_len`.
    pub fn push(&mut self, t: Timestamp, position_m: [f64; 2], max_len: usize) {
        let path = Arc::make_mut(&mut self.0);
        // Room first, so the history never grows past its length (no reallocation).
        while !path.is_empty() && path.len() >= max_len {
            path.pop_front();
        }
        path.push_back((t, position_m));
        while path.len() > max_len {
            path.pop_front();
        }
    }

    /// The points newest first, relative to a position (x, y) [m] at time `at`.
    pub fn relative_to(&self, at: Timestamp, position_m: [f64; 2]) -> impl Iterator<Item = PathPoint> + '_ {
        self.0.iter().rev().map(move |(t, p)| PathPoint {
            offset_m: [p[0] - position_m[0], p[1] - position_m[1]],
            dt_s: at.secs_since(*t),
        })
    }
}

impl Serialize for PathHistory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PathHistory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        VecDeque::deserialize(deserializer).map(|v| PathHistory(Arc::new(v)))
    }
}

/// Tracks at least this long (buses, trucks) may be seen in parts: a detector cuts them in two [m].
pub const LONG_OBJECT_MIN_LENGTH_M: f64 = 7.0;
/// A box shorter than this fraction of a long track's length is a part of it, not the whole.
pub const PART_MAX_LENGTH_FRACTION: f64 = 0.7;

impl Track {
    /// Whether this (confirmed or not) is a long object whose parts a detector may report:
    /// measured at [`LONG_OBJECT_MIN_LENGTH_M`] or more.
    pub fn is_long(&self) -> bool {
        self.size.length_m >= LONG_OBJECT_MIN_LENGTH_M
    }

    /// Whether a box `length_m` long is short enough to be only a part of this track.
    pub fn part_length(&self, length_m: f64) -> bool {
        length_m < PART_MAX_LENGTH_FRACTION * self.size.length_m
    }

    /// Records an opportunity (a sensor update that covered the track): hit or miss.
    pub fn record(&mut self, hit: bool) {
        self.hit_bits = (self.hit_bits << 1) | u32::from(hit);
        self.opportunities = (self.opportunities + 1).min(32);
    }

    /// Notes the detector score of a hit; only a tentative track's count (for confirmation).
    pub fn note_hit_score(&mut self, score: f64) {
        if !self.confirmed {
            self.tentative_score_sum += score;
            self.tentative_scored_hits += 1;
        }
    }

    /// The mean detector score of its hits while tentative (1 when none was scored: a track
    /// spawned and fed by V2X self-reports).
    pub fn mean_tentative_score(&self) -> f64 {
        if self.tentative_scored_hits == 0 {
            1.0
        } else {
            self.tentative_score_sum / f64::from(self.tentative_scored_hits)
        }
    }

    /// Hits among the last `window` opportunities.
    pub fn hits_in(&self, window: u32) -> u32 {
        let mask = if window >= 32 { u32::MAX } else { (1u32 << window) - 1 };
        (self.hit_bits & mask).count_ones()
    }

    /// Whether the ground point `p` lies on the track's box footprint (at the track's own time),
    /// widened on every side by `margin_m` [m].
    pub fn box_holds(&self, p: &Vector2<f64>, margin_m: f64) -> bool {
        let (sin_yaw, cos_yaw) = self.motion.yaw(self.yaw_hint_rad).sin_cos();
        let d = p - self.motion.position();
        let along_m = d.x * cos_yaw + d.y * sin_yaw;
        let across_m = -d.x * sin_yaw + d.y * cos_yaw;
        along_m.abs() <= 0.5 * self.size.length_m + margin_m && across_m.abs() <= 0.5 * self.size.width_m + margin_m
    }

    /// Whether one sensor updated both tracks from the same frame in either of the last two
    /// updates of each: two detections of one frame, so two objects (a sensor reports an object
    /// once). Two updates, not one: a detector that merges two objects into one box every other
    /// frame updates only one of them from that frame.
    pub fn co_seen(&self, other: &Track) -> bool {
        let times = |track: &Track, sensor: usize| {
            let find = |v: &[(usize, Timestamp)]| v.binary_search_by_key(&sensor, |e| e.0).ok().map(|i| v[i].1);
            [find(&track.seen), find(&track.seen_before)]
        };
        self.seen.iter().any(|&(sensor, _)| {
            let (mine, theirs) = (times(self, sensor), times(other, sensor));
            mine.iter().flatten().any(|t| theirs.iter().flatten().any(|u| u == t))
        })
    }

    /// Notes that sensor `sensor` updated the track with a measurement captured at `t`.
    pub fn mark_seen(&mut self, sensor: usize, t: Timestamp) {
        match self.seen.binary_search_by_key(&sensor, |e| e.0) {
            Ok(i) if t > self.seen[i].1 => {
                let before = std::mem::replace(&mut self.seen[i].1, t);
                match self.seen_before.binary_search_by_key(&sensor, |e| e.0) {
                    Ok(j) => self.seen_before[j].1 = before,
                    Err(j) => self.seen_before.insert(j, (sensor, before)),
                }
            }
            Ok(_) => {}
            Err(i) => self.seen.insert(i, (sensor, t)),
        }
    }

    /// Lifecycle status at `at`.
    pub fn status(&self, at: Timestamp, coast_after_s: f64) -> TrackStatus {
        if !self.confirmed {
            TrackStatus::Tentative
        } else if at.secs_since(self.last_update) > coast_after_s {
            TrackStatus::Coasting
        } else {
            TrackStatus::Confirmed
        }
    }

    /// Blends a measured size in with factor `alpha` (the first measured size is taken whole).
    /// A width over `max_width_m` [m] is no view of one object (a box the detector merged with
    /// something beside it, or a bad fit): it leaves the width as it is, and a first such box
    /// gives the width `max_width_m`. Length and height are blended as usual.
    pub fn smooth_size(&mut self, measured: &BoxSize, alpha: f64, max_width_m: f64) {
        if !measured.is_valid() {
            return;
        }
        let too_wide = measured.width_m > max_width_m;
        if !self.size_measured {
            self.size = BoxSize::new(measured.length_m, measured.width_m.min(max_width_m), measured.height_m);
            self.size_measured = true;
            return;
        }
        let mix = |a: f64, b: f64| a + alpha * (b - a);
        self.size = BoxSize::new(
            mix(self.size.length_m, measured.length_m),
            if too_wide { self.size.width_m } else { mix(self.size.width_m, measured.width_m) },
            mix(self.size.height_m, measured.height_m),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_history_keeps_its_newest_points_and_polled_copies_stay_put() {
        let t0 = Timestamp::from_nanos(1_000_000_000);
        let mut path = PathHistory::with_capacity(3);
        for k in 0..5 {
            path.push(t0.add_secs(f64::from(k)), [f64::from(k), 0.0], 3);
        }
        let xs: Vec<f64> = path.samples().map(|(_, p)| p[0]).collect();
        assert_eq!(xs, [2.0, 3.0, 4.0]);
        // An object holding the history keeps it as it was when polled.
        let polled = path.clone();
        path.push(t0.add_secs(5.0), [5.0, 0.0], 3);
        assert_eq!(polled.samples().map(|(_, p)| p[0]).collect::<Vec<_>>(), [2.0, 3.0, 4.0]);
        assert_eq!(path.samples().map(|(_, p)| p[0]).collect::<Vec<_>>(), [3.0, 4.0, 5.0]);
        // Relative to a position and time: newest first.
        let rel: Vec<PathPoint> = polled.relative_to(t0.add_secs(4.5), [4.0, 1.0]).collect();
        assert_eq!(rel[0], PathPoint { offset_m: [0.0, -1.0], dt_s: 0.5 });
        assert_eq!(rel[2], PathPoint { offset_m: [-2.0, -1.0], dt_s: 2.5 });
        // Serialised as its points, and back.
        let json = serde_json::to_string(&polled).expect("serialises");
        assert_eq!(serde_json::from_str::<PathHistory>(&json).expect("parses"), polled);
    }

    /// A tentative static track at the origin, never measured.
    fn blank_track() -> Track {
        Track {
            id: 1,
            motion: MotionState::Static { x: nalgebra::Vector2::zeros(), p: nalgebra::Matrix2::identity() },
            time: Timestamp::EPOCH,
            guard_due: false,
            created: Timestamp::EPOCH,
            last_update: Timestamp::EPOCH,
            confirmed: false,
            hit_bits: 0,
            opportunities: 0,
            tentative_score_sum: 0.0,
            tentative_scored_hits: 0,
            class_evidence: ClassEvidence::default(),
            size: BoxSize::new(1.0, 1.0, 1.0),
            size_measured: false,
            z_ground_m: 0.0,
            yaw_hint_rad: 0.0,
            sources_ever: SourceSet::NONE,
            seen: Vec::new(),
            seen_before: Vec::new(),
            v2x: None,
            accel_mps2: 0.0,
            speed_ref: None,
            path: PathHistory::default(),
        }
    }

    #[test]
    fn hit_window_counts() {
        let mut t = blank_track();
        for hit in [true, false, true, true, false] {
            t.record(hit);
        }
        assert_eq!(t.hits_in(5), 3);
        assert_eq!(t.hits_in(2), 1);
        t.mark_seen(3, Timestamp::from_nanos(5));
        t.mark_seen(1, Timestamp::from_nanos(7));
        t.mark_seen(3, Timestamp::from_nanos(9));
        assert_eq!(t.seen, vec![(1, Timestamp::from_nanos(7)), (3, Timestamp::from_nanos(9))]);
        assert_eq!(t.seen_before, vec![(3, Timestamp::from_nanos(5))]);
        t.smooth_size(&BoxSize::new(4.0, 2.0, 1.5), 0.5, f64::INFINITY);
        t.smooth_size(&BoxSize::new(6.0, 2.0, 1.5), 0.5, f64::INFINITY);
        assert!((t.size.length_m - 5.0).abs() < 1e-12);
    }

    #[test]
    fn a_box_wider_than_any_vehicle_leaves_the_width_alone() {
        let mut t = blank_track();
        t.smooth_size(&BoxSize::new(12.0, 4.6, 3.2), 0.5, 2.6);
        assert_eq!((t.size.length_m, t.size.width_m), (12.0, 2.6), "a first merged box is cut to the limit");
        t.smooth_size(&BoxSize::new(12.0, 2.4, 3.2), 0.5, 2.6);
        assert!((t.size.width_m - 2.5).abs() < 1e-12);
        t.smooth_size(&BoxSize::new(13.0, 4.2, 3.2), 0.5, 2.6);
        assert!((t.size.width_m - 2.5).abs() < 1e-12, "width {}", t.size.width_m);
        assert!((t.size.length_m - 12.5).abs() < 1e-12, "the length is still measured");
    }
}
