//! Track management: spawning tracks, bookkeeping after every update, confirmation, switching a
//! track's motion model with its class, deleting stale tracks and merging duplicates. Kept apart
//! from the measurement paths, which call into it: these rules decide a track's lifecycle
//! whatever the source of its measurements.

use nalgebra::{Point3, Vector2};

use crate::broadcast::SensorStatus;
use crate::class::{BoxSize, MotionFamily, ObjectClass, SourceSet};
use crate::config::FusionConfig;
use crate::motion::{MotionState, ProcessNoise};
use crate::spatial::close_pairs;
use crate::time::Timestamp;
use crate::track::{ClassEvidence, PathHistory, Track};

use super::clutter::ClutterMap;
use super::window::predict_track;
use super::{Fusion, SensorState};

/// Slack added to a track's travel bound in the duplicate search [m]: far above the rounding of
/// the bound.
const TRAVEL_ROUNDING_M: f64 = 1e-3;

/// Working space of the duplicate search.
#[derive(Clone, Debug, Default)]
pub(super) struct MergeScratch {
    /// Position of each track (NaN for tentative ones, which the search leaves out) [m].
    points: Vec<(f64, f64)>,
    /// How far each track can have moved since its own time [m].
    travels_m: Vec<f64>,
    /// Sort keys of [`close_pairs`].
    keys: Vec<u64>,
    /// The candidate pairs found.
    pairs: Vec<(usize, usize)>,
}

impl Fusion {
    pub(super) fn init_speed_sigma(&self, family: MotionFamily) -> f64 {
        match family {
            MotionFamily::Vehicle => self.config.init_vehicle_speed_sigma_mps,
            MotionFamily::Pedestrian => self.config.init_pedestrian_speed_sigma_mps,
            MotionFamily::Static => 0.1,
        }
    }

    /// Switches the motion model when the fused class belongs to another family.
    pub(super) fn refresh_family(&mut self, ti: usize, yaw_hint_rad: f64) {
        let Some(class) = self.tracks[ti].class_evidence.best_if_confident() else { return };
        let family = class.motion_family();
        if family != self.tracks[ti].motion.family() {
            let speed_sigma = self.init_speed_sigma(family);
            let track = &mut self.tracks[ti];
            track.motion =
                track.motion.converted(family, yaw_hint_rad, speed_sigma, self.config.init_yaw_rate_sigma_rps);
        }
    }

    /// Bookkeeping after any update at `t`: times, acceleration estimate, path history.
    pub(super) fn after_update(&mut self, ti: usize, t: Timestamp) {
        let cfg = &self.config;
        let track = &mut self.tracks[ti];
        track.last_update = track.last_update.max(t);
        let speed = track.motion.speed();
        match track.speed_ref {
            Some((t0, v0)) if t.secs_since(t0) >= 0.09 => {
                let a = ((speed - v0) / t.secs_since(t0)).clamp(-15.0, 15.0);
                track.accel_mps2 += 0.3 * (a - track.accel_mps2);
                track.speed_ref = Some((t, speed));
            }
            None => track.speed_ref = Some((t, speed)),
            _ => {}
        }
        let p = track.motion.position();
        if track.path.newest().is_none_or(|(t0, _)| t.secs_since(*t0) >= cfg.path_history_interval_s) {
            track.path.push(t, [p.x, p.y], cfg.path_history_len);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn(
        &mut self,
        t: Timestamp,
        motion: MotionState,
        class_evidence: ClassEvidence,
        size: BoxSize,
        size_measured: bool,
        z_ground_m: f64,
        yaw_hint_rad: f64,
        source: SourceSet,
        tag: u32,
    ) -> Option<usize> {
        if self.tracks.len() >= self.config.max_tracks {
            self.stats.spawn_refused += 1;
            return None;
        }
        if !motion.is_finite() {
            self.stats.numeric_failures += 1;
            return None;
        }
        // A spawn fused again after a rollback keeps the id it had. Fresh ids grow monotonically
        // (wrapping past u32::MAX, skipping 0 and ids in use), so the track vector stays sorted
        // by id except after a wrap or a respawn under an older id, when it is re-sorted.
        let in_use = |tracks: &[Track], id: u32| tracks.binary_search_by_key(&id, |t| t.id).is_ok();
        let id = match self.spawn_ids.previous(tag).filter(|&id| !in_use(&self.tracks, id)) {
            Some(id) => id,
            None => {
                let mut id = self.next_id.max(1);
                while in_use(&self.tracks, id) {
                    id = id.wrapping_add(1).max(1);
                }
                self.next_id = id.wrapping_add(1).max(1);
                id
            }
        };
        self.spawn_ids.give(tag, id);
        self.tracks.push(Track {
            id,
            motion,
            time: t,
            guard_due: false,
            created: t,
            last_update: t,
            confirmed: self.config.confirm_hits <= 1,
            hit_bits: 1,
            opportunities: 1,
            tentative_score_sum: 0.0,
            tentative_scored_hits: 0,
            class_evidence,
            size,
            size_measured,
            z_ground_m,
            yaw_hint_rad,
            sources_ever: source,
            seen: Vec::new(),
            seen_before: Vec::new(),
            v2x: None,
            accel_mps2: 0.0,
            speed_ref: None,
            // Full length from the start: the history never reallocates.
            path: PathHistory::with_capacity(self.config.path_history_len),
        });
        if self.tracks.len() > 1 && self.tracks[self.tracks.len() - 2].id > id {
            self.tracks.sort_by_key(|t| t.id);
        }
        self.stats.tracks_created += 1;
        let ti = self.tracks.binary_search_by_key(&id, |t| t.id).ok()?;
        self.after_update(ti, t);
        Some(ti)
    }

    /// Deletes and (with `merge`) merges duplicate tracks at time `t`. (Tracks are confirmed as
    /// their hits are recorded.)
    pub(super) fn maintain(&mut self, t: Timestamp, merge: bool) {
        let hidden = self.hidden_static_tracks(t);
        let cfg = &self.config;
        let (sensors, noise) = (&self.sensors, &self.noise);
        let mut removed_link = false;
        let mut deleted = 0;
        let clutter = &mut self.clutter;
        clutter.forget_before(t, cfg.clutter_memory_s);
        self.tracks.retain_mut(|track| {
            let idle_s = t.secs_since(track.last_update);
            let cov = track.motion.position_cov();
            let keep = track.motion.is_finite()
                && cov.trace().sqrt() <= cfg.max_position_sigma_m
                && if track.confirmed {
                    // A coasting track that left every sensor's field of view is gone. A track
                    // coasts at most a fraction of the time it was measured: one of a few
                    // frames that lost its object (a chance association, a part of a long
                    // object, clutter) is not carried on for seconds, at a speed it guessed
                    // into a lane where cars would brake for it. A static one (a cone, a
                    // barrier: it cannot drift) that traffic hides from every working sensor
                    // that covers it coasts to the limit.
                    let measured_s = track.last_update.secs_since(track.created);
                    let coast_s = if hidden.binary_search(&track.id).is_ok() {
                        cfg.delete_after_s
                    } else {
                        (cfg.coast_fraction_of_life * measured_s).max(cfg.coast_after_s)
                    };
                    idle_s <= cfg.delete_after_s.min(coast_s)
                        && (idle_s <= cfg.coast_after_s || covered(sensors, track, t, noise))
                } else {
                    idle_s <= cfg.tentative_timeout_s
                        && !(track.opportunities >= cfg.confirm_window
                            && track.hits_in(cfg.confirm_window) + 1 < cfg.confirm_hits)
                };
            if !keep {
                deleted += 1;
                removed_link |= track.v2x.is_some();
                if died_as_clutter(track) {
                    clutter.note(t, track.motion.position());
                }
            }
            keep
        });
        self.stats.tracks_deleted += deleted;
        if removed_link {
            self.drop_stale_links();
        }
        if merge {
            self.merge_duplicates(t);
        }
    }

    /// Ids (ascending) of the confirmed static tracks coasting at `t` that every working sensor
    /// covering them sees only through a confirmed vehicle track's box: hidden by traffic, not
    /// missed by a sensor that could see them.
    fn hidden_static_tracks(&self, t: Timestamp) -> Vec<u32> {
        let cfg = &self.config;
        let mut hidden = Vec::new();
        for track in &self.tracks {
            if !track.confirmed
                || track.motion.family() != MotionFamily::Static
                || t.secs_since(track.last_update) <= cfg.coast_after_s
            {
                continue;
            }
            let p = track.motion.position();
            let at = Point3::new(p.x, p.y, track.z_ground_m + 0.5 * track.size.height_m);
            let mut watching = (0..self.sensors.len())
                .filter(|&i| {
                    self.sensors[i].calib.covers(&at)
                        && matches!(self.sensor_status(i, t), SensorStatus::Ok | SensorStatus::Degraded)
                })
                .peekable();
            if watching.peek().is_none() {
                continue;
            }
            let blocked = watching.all(|i| {
                let from = self.sensors[i].calib.position().xy().coords;
                self.tracks
                    .iter()
                    .any(|o| o.confirmed && o.motion.family() == MotionFamily::Vehicle && blocks_line(o, &from, &p))
            });
            if blocked {
                hidden.push(track.id);
            }
        }
        hidden
    }

    /// Forgets V2X links whose track is gone or no longer names that vehicle.
    fn drop_stale_links(&mut self) {
        let tracks = &self.tracks;
        self.v2x_links.retain(|vid, id| {
            tracks
                .binary_search_by_key(id, |t| t.id)
                .is_ok_and(|i| tracks[i].v2x.as_ref().is_some_and(|l| &l.vehicle_id == vid))
        });
    }

    /// Merges confirmed tracks that describe the same object at `t` into the older one.
    ///
    /// Tracks need not have been predicted to `t`: pairs are found among the positions at the
    /// tracks' own times (a search widened by how far each track can have moved since), and
    /// only the tracks of a candidate pair are predicted to `t` for the test.
    pub(super) fn merge_duplicates(&mut self, t: Timestamp) {
        let mut scratch = std::mem::take(&mut self.merge_scratch);
        self.close_track_pairs(t, &mut scratch);
        if !scratch.pairs.is_empty() {
            self.merge_pairs(t, &scratch.pairs);
        }
        self.merge_scratch = scratch;
        self.absorb_parts(t);
    }

    /// Removes confirmed tracks that are a part of a long tracked object (a bus's front or rear
    /// the detector cut off and tracked on its own): shorter than 70 % of it, centre on its box,
    /// moving with it, no V2X link. Unlike the merging of close tracks, being updated from one
    /// frame does not keep them apart: a split detection gives both an update.
    fn absorb_parts(&mut self, t: Timestamp) {
        let long: Vec<usize> =
            (0..self.tracks.len()).filter(|&i| self.tracks[i].confirmed && self.tracks[i].is_long()).collect();
        if long.is_empty() {
            return;
        }
        let mut remove = vec![false; self.tracks.len()];
        for &i in &long {
            if remove[i] {
                continue;
            }
            predict_track(&mut self.tracks[i], t, &self.noise);
            let a = &self.tracks[i];
            let near: Vec<usize> = (0..self.tracks.len())
                .filter(|&j| {
                    let b = &self.tracks[j];
                    j != i
                        && !remove[j]
                        && b.confirmed
                        && b.v2x.is_none()
                        && a.part_length(b.size.length_m)
                        && (b.motion.position() - a.motion.position()).norm() <= 0.5 * a.size.length_m + 2.0
                })
                .collect();
            for j in near {
                predict_track(&mut self.tracks[j], t, &self.noise);
                let (a, b) = (&self.tracks[i], &self.tracks[j]);
                if a.box_holds(&b.motion.position(), 0.0)
                    && (b.motion.velocity() - a.motion.velocity()).norm() <= self.config.merge_speed_diff_mps
                {
                    remove[j] = true;
                }
            }
        }
        let absorbed = remove.iter().filter(|r| **r).count();
        if absorbed == 0 {
            return;
        }
        let mut k = 0;
        self.tracks.retain(|_| {
            k += 1;
            !remove[k - 1]
        });
        self.stats.tracks_merged += absorbed as u64;
    }

    /// Every pair of confirmed tracks that may be close enough to merge at `t`, each once, in
    /// index order (the older track first), into `scratch.pairs`.
    fn close_track_pairs(&mut self, t: Timestamp, scratch: &mut MergeScratch) {
        let cfg = &self.config;
        // A pair with a V2X-linked track is matched beyond the merge distance (a V2X-only track
        // can be matched with the perceived track of the same car).
        let reach_of = |linked: bool| if linked { cfg.max_gate_radius_m } else { cfg.merge_distance_m };
        // Position (NaN for tentative tracks, which the search leaves out) and travel bound of
        // each track.
        let MergeScratch { points, travels_m, keys, pairs } = scratch;
        points.clear();
        points.resize(self.tracks.len(), (f64::NAN, f64::NAN));
        travels_m.clear();
        travels_m.resize(self.tracks.len(), 0.0);
        let (mut max_travel_m, mut any_linked) = (0.0f64, false);
        for ((tr, point), travel) in self.tracks.iter_mut().zip(points.iter_mut()).zip(travels_m.iter_mut()) {
            if !tr.confirmed {
                continue;
            }
            let mut travel_m = tr.motion.speed() * t.secs_since(tr.time).max(0.0);
            // Tracks that may have moved further than a gate radius (long out of every sensor's
            // reach) are predicted, so the cells stay small.
            if travel_m > cfg.max_gate_radius_m {
                predict_track(tr, t, &self.noise);
                travel_m = 0.0;
            }
            if travel_m > 0.0 {
                travel_m += TRAVEL_ROUNDING_M;
            }
            max_travel_m = max_travel_m.max(travel_m);
            any_linked |= tr.v2x.is_some();
            let p = tr.motion.position();
            *point = (p.x, p.y);
            *travel = travel_m;
        }
        let tracks = &self.tracks;
        pairs.clear();
        close_pairs(points, reach_of(any_linked) + 2.0 * max_travel_m, keys, |i, j| {
            let linked = tracks[i].v2x.is_some() || tracks[j].v2x.is_some();
            let bound_m = reach_of(linked) + travels_m[i] + travels_m[j];
            let (dx, dy) = (points[j].0 - points[i].0, points[j].1 - points[i].1);
            if dx * dx + dy * dy <= bound_m * bound_m {
                pairs.push((i, j));
            }
        });
        pairs.sort_unstable();
    }

    /// Merges the pairs of `pairs` (from [`Fusion::close_track_pairs`]) that describe the same
    /// object at `t`.
    fn merge_pairs(&mut self, t: Timestamp, pairs: &[(usize, usize)]) {
        let cfg = &self.config;
        let mut remove = vec![false; self.tracks.len()];
        let mut merges = Vec::new();
        for &(i, j) in pairs {
            if remove[i] || remove[j] {
                continue;
            }
            predict_track(&mut self.tracks[i], t, &self.noise);
            predict_track(&mut self.tracks[j], t, &self.noise);
            let (a, b) = (&self.tracks[i], &self.tracks[j]);
            let d = b.motion.position() - a.motion.position();
            // Distance first: it is cheaper than the velocity (a sine and a cosine).
            if (a.v2x.is_none() && b.v2x.is_none() && d.norm() >= cfg.merge_distance_m)
                || (b.motion.velocity() - a.motion.velocity()).norm() > cfg.merge_speed_diff_mps
            {
                continue;
            }
            let close = d.norm() < cfg.merge_distance_m;
            let v2x_pair = a.v2x.is_some() != b.v2x.is_some()
                && d.norm() < cfg.max_gate_radius_m
                && (a.motion.position_cov() + b.motion.position_cov())
                    .try_inverse()
                    .is_some_and(|s| (d.transpose() * s * d)[(0, 0)] <= cfg.gate_chi2);
            // Two tracks one sensor updated from the same frame are two objects, however close
            // (pedestrians side by side).
            if (close || v2x_pair) && !a.co_seen(b) {
                remove[j] = true;
                merges.push((i, j));
            }
        }
        if merges.is_empty() {
            return;
        }
        for &(i, j) in &merges {
            let other = self.tracks[j].clone();
            let keep = &mut self.tracks[i];
            if other.motion.position_cov().trace() < keep.motion.position_cov().trace() && keep.v2x.is_none() {
                keep.motion = other.motion.clone();
            }
            if keep.v2x.is_none() {
                keep.v2x = other.v2x.clone();
            }
            keep.class_evidence.merge(&other.class_evidence);
            if !keep.size_measured && other.size_measured {
                keep.size = other.size;
                keep.size_measured = true;
            }
            keep.sources_ever |= other.sources_ever;
            for (s, ts) in other.seen {
                keep.mark_seen(s, ts);
            }
            keep.created = keep.created.min(other.created);
            keep.last_update = keep.last_update.max(other.last_update);
        }
        let mut lost_link = false;
        let mut k = 0;
        self.tracks.retain(|t| {
            let r = remove[k];
            k += 1;
            lost_link |= r && t.v2x.is_some();
            !r
        });
        for t in &self.tracks {
            if let Some(l) = &t.v2x {
                self.v2x_links.insert(l.vehicle_id.clone(), t.id);
            }
        }
        if lost_link {
            self.drop_stale_links();
        }
        self.stats.tracks_merged += merges.len() as u64;
    }
}

/// Records a sensor's opportunity at `t` to see the track (`hit` when it did) and confirms a
/// tentative track once it has enough hits, scored high enough on average, at a plausible speed; in a clutter place of `clutter` it needs one hit more and a higher
/// mean score. Returns whether it was confirmed now.
pub(super) fn record_opportunity(
    track: &mut Track,
    hit: bool,
    cfg: &FusionConfig,
    clutter: &ClutterMap,
    t: Timestamp,
) -> bool {
    track.record(hit);
    if !hit || track.confirmed || !plausible_speed(track) {
        return false;
    }
    let (hits, score) = (track.hits_in(cfg.confirm_window), track.mean_tentative_score());
    let mut confirm = hits >= cfg.confirm_hits && score >= cfg.confirm_min_score;
    if confirm && cfg.clutter_deaths > 0 {
        let deaths = clutter.count_near(t, &track.motion.position(), cfg.clutter_radius_m, cfg.clutter_memory_s);
        if deaths >= cfg.clutter_deaths as usize {
            confirm = hits > cfg.confirm_hits.min(cfg.confirm_window - 1) && score >= cfg.clutter_confirm_min_score;
        }
    }
    track.confirmed |= confirm;
    confirm
}

/// Whether a deleted track looks like clutter: tentative after at least two hits (a burst, not a
/// stray detection), or confirmed but gone within 2 s of its birth without moving; never a track
/// a V2X self-report fed.
fn died_as_clutter(track: &Track) -> bool {
    if track.sources_ever.bits() & SourceSet::V2X.bits() != 0 {
        return false;
    }
    if track.confirmed {
        track.last_update.secs_since(track.created) < 2.0 && track.motion.speed() < 0.5
    } else {
        track.hits_in(32) >= 2
    }
}

/// Whether the track's speed suits its motion family (clutter that hops between chance
/// detections looks like a pedestrian running at car speed; it is not confirmed).
fn plausible_speed(track: &Track) -> bool {
    let speed_mps = track.motion.speed();
    match track.motion.family() {
        MotionFamily::Vehicle => true,
        MotionFamily::Pedestrian => speed_mps <= 4.0,
        MotionFamily::Static => speed_mps <= 1.0,
    }
}

/// Whether any sensor's field of view holds the track's box centre at `t`.
fn covered(sensors: &[SensorState], track: &Track, t: Timestamp, noise: &ProcessNoise) -> bool {
    let mut motion = track.motion.clone();
    motion.predict(t.secs_since(track.time).max(0.0), noise);
    let p = motion.position();
    let c = Point3::new(p.x, p.y, track.z_ground_m + 0.5 * track.size.height_m);
    sensors.iter().any(|s| s.calib.covers(&c))
}

/// Whether `track`'s box (grown by 0.2 m) lies across the line of sight from `from` to `to`
/// (site frame [m]), short of the last 0.5 m before `to`.
fn blocks_line(track: &Track, from: &Vector2<f64>, to: &Vector2<f64>) -> bool {
    let (sin, cos) = track.motion.yaw(track.yaw_hint_rad).sin_cos();
    let centre = track.motion.position();
    // Both ends in the box's frame (x along its heading).
    let local = |p: &Vector2<f64>| {
        let d = p - centre;
        Vector2::new(cos * d.x + sin * d.y, -sin * d.x + cos * d.y)
    };
    let (a, b) = (local(from), local(to));
    let length_m = (b - a).norm();
    if length_m <= 0.5 {
        return false;
    }
    let half = [0.5 * track.size.length_m + 0.2, 0.5 * track.size.width_m + 0.2];
    // Slab test of the segment a + s (b - a), s in [0, 1 - 0.5 / length], against the box.
    let (mut lo, mut hi) = (0.0_f64, 1.0 - 0.5 / length_m);
    for axis in 0..2 {
        let (start, step) = (a[axis], b[axis] - a[axis]);
        if step.abs() < 1e-12 {
            if start.abs() > half[axis] {
                return false;
            }
        } else {
            let (s0, s1) = ((-half[axis] - start) / step, (half[axis] - start) / step);
            lo = lo.max(s0.min(s1));
            hi = hi.min(s0.max(s1));
        }
    }
    lo <= hi
}

/// The motion family for a detected class (unknown objects move like vehicles).
pub(super) fn family_of(class: ObjectClass) -> MotionFamily {
    if class == ObjectClass::Unknown { MotionFamily::Vehicle } else { class.motion_family() }
}
