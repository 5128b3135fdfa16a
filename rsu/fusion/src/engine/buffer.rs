//! Time and the reorder buffer: which inputs are fused when, and bringing tracks to an input's
//! time. Inputs arrive out of capture-time order; they wait here until no older input can still
//! come (the lag, or with early release the slowest live sensor's watermark), are fused oldest
//! first, and end each released batch with the deferred covariance guard and track management.
//! Kept apart from the per-sensor updates so the ordering rules, which decide what the engine's
//! results are, can be read in one place.

use std::sync::Arc;

use nalgebra::Vector2;

use crate::broadcast::SensorStatus;
use crate::measurement::{Detections, SensorFrame, VehicleState};
use crate::motion::{Guard, ProcessNoise};
use crate::time::Timestamp;
use crate::track::Track;

use super::{Fusion, Ingest};

/// An input waiting in the reorder buffer.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    /// A sensor frame, shared with the caller (buffering it copies nothing).
    Frame { sensor: usize, frame: Arc<SensorFrame> },
    /// A V2X self-report.
    Vehicle(Box<VehicleState>),
}

/// Slack added to the reach of an input when choosing the tracks to predict for it [m]: far
/// above the rounding of a track's travel bound.
const REACH_MARGIN_M: f64 = 1.0;

impl Fusion {
    /// Notes a caller's `now`: the first one starts the sensors' start-up grace period.
    pub(super) fn note_now(&mut self, now: Timestamp) {
        self.first_now = Some(self.first_now.map_or(now, |n| n.min(now)));
        self.latest_now = Some(self.latest_now.map_or(now, |n| n.max(now)));
    }

    /// The index of the sensor with id `id` (the sensors are sorted by id).
    pub(super) fn sensor_index(&self, id: &str) -> Option<usize> {
        self.sensors.binary_search_by(|s| s.calib.id.as_str().cmp(id)).ok()
    }

    /// `Some(verdict)` when an input captured at `t` must be dropped.
    pub(super) fn check_time(&mut self, now: Timestamp, t: Timestamp) -> Option<Ingest> {
        if t.secs_since(now) > self.config.max_future_s {
            self.stats.future_rejected += 1;
            return Some(Ingest::FromFuture);
        }
        let too_old = now.secs_since(t) > self.config.max_lag_s;
        if too_old || self.fused_until.is_some_and(|f| t < f) {
            self.stats.late_dropped += 1;
            return Some(Ingest::Late);
        }
        None
    }

    pub(super) fn sensor_status(&self, i: usize, now: Timestamp) -> SensorStatus {
        let s = &self.sensors[i];
        let Some(last) = s.last_capture else { return SensorStatus::Unknown };
        let age_s = now.secs_since(last);
        let period = s.calib.frame_period_s;
        if age_s > self.config.sensor_silent_after_periods * period {
            SensorStatus::Silent
        } else if age_s > self.config.sensor_degraded_after_periods * period
            || s.last_gap.is_some_and(|g| now.secs_since(g) < 1.0)
        {
            SensorStatus::Degraded
        } else {
            SensorStatus::Ok
        }
    }

    /// Fuses every buffered input that is due at `now`, then manages tracks when due and prunes
    /// them.
    pub(super) fn advance(&mut self, now: Timestamp) {
        self.advance_with(now, false);
    }

    /// [`Fusion::advance`]; with `settle` (before objects are read) tracks are pruned whenever the
    /// pruning time moved.
    pub(super) fn advance_with(&mut self, now: Timestamp, settle: bool) {
        let horizon = now.add_secs(-self.config.max_lag_s);
        let mut release = horizon;
        if self.config.early_release {
            // Sensors not heard from yet hold the watermark back during a start-up grace period
            // (their first frames may still be on the way); after it they are ignored.
            let mut watermark: Option<Timestamp> = None;
            let up_s = self.first_now.map_or(0.0, |f| now.secs_since(f));
            for i in 0..self.sensors.len() {
                let Some(last) = self.sensors[i].last_capture else {
                    let grace_s = self.config.sensor_silent_after_periods * self.sensors[i].calib.frame_period_s;
                    if up_s <= grace_s {
                        watermark = Some(Timestamp::from_nanos(i64::MIN));
                    }
                    continue;
                };
                if self.sensor_status(i, now) == SensorStatus::Silent {
                    continue;
                }
                watermark = Some(watermark.map_or(last, |w| w.min(last)));
            }
            if let Some(w) = watermark {
                release = release.max(w);
            }
        }
        let mut last_fused = None;
        while let Some((&(t, _), _)) = self.buffer.first_key_value() {
            let forced = self.buffer.len() > self.config.max_buffered_frames;
            if t > release && !forced {
                break;
            }
            if forced {
                self.stats.buffer_forced += 1;
            }
            let Some((_, pending)) = self.buffer.pop_first() else { break };
            self.fused_until = Some(self.fused_until.map_or(t, |f| f.max(t)));
            self.process(t, pending);
            last_fused = Some(t);
        }
        // The batch's predictions and frame updates deferred their covariance guard: one guard
        // per track instead of one per operation, before anything else reads the tracks.
        for track in self.tracks.iter_mut().filter(|t| t.guard_due) {
            track.motion.guard();
            track.guard_due = false;
        }
        // Track management: duplicates merge after every batch of released inputs (the search
        // predicts only the tracks of close pairs); tracks are deleted once per management
        // interval of capture time rather than after every batch (sensors capturing at different
        // phases each release their own batch), and before objects are read.
        if let Some(t) = last_fused {
            if self.managed_at.is_none_or(|m| t.secs_since(m) >= self.config.management_interval_s) {
                self.maintain(t, true);
                self.managed_at = Some(t);
                // That pass pruned at `t`. Merging after it cannot make a track due for deletion
                // (the kept track's newest update and covariance can only improve), so neither
                // does a merge below call for an extra pruning pass.
                self.pruned_at = Some(t);
            } else {
                self.merge_duplicates(t);
            }
        }
        let prune_at = self.fused_until.map_or(horizon, |f| f.max(horizon));
        // Pruning is idempotent: repeated at the same time (as when several frames of one capture
        // time are buffered one by one, or right after the pass above) it changes nothing.
        // Between polls it runs at most once per management interval.
        let prune_due =
            |p: Timestamp| p != prune_at && (settle || prune_at.secs_since(p) >= self.config.management_interval_s);
        if self.pruned_at.is_none_or(prune_due) {
            self.maintain(prune_at, false);
            self.pruned_at = Some(prune_at);
        }
    }

    fn process(&mut self, t: Timestamp, pending: Pending) {
        match pending {
            Pending::Frame { sensor, frame } => self.fuse_frame(sensor, t, &frame),
            Pending::Vehicle(state) => self.update_v2x(t, &state),
        }
    }

    fn fuse_frame(&mut self, sensor: usize, t: Timestamp, frame: &SensorFrame) {
        self.stats.frames_fused += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        match &frame.detections {
            Detections::Lidar(dets) => self.update_lidar(sensor, t, dets, &mut scratch),
            Detections::Camera(dets) => self.update_camera(sensor, t, dets, &mut scratch),
        }
        self.scratch = scratch;
    }

    /// Predicts to `t` every track that may lie within `reach_m` of `centre` there, and returns
    /// their indices, ascending: all the tracks an input at `t` whose effects stay within that
    /// disc can touch. The others keep their older state until an input reaches them (one
    /// longer prediction later instead of one per input now). A track can move at most its
    /// speed times the time step (the arc of a turn is longer than its chord), so the test needs
    /// no prediction; [`REACH_MARGIN_M`] covers rounding.
    pub(super) fn predict_near(&mut self, t: Timestamp, centre: Vector2<f64>, reach_m: f64, near: &mut Vec<usize>) {
        near.clear();
        for (ti, track) in self.tracks.iter_mut().enumerate() {
            let travel_m = track.motion.speed() * t.secs_since(track.time).max(0.0);
            let bound_m = reach_m + travel_m + REACH_MARGIN_M;
            if (track.motion.position() - centre).norm_squared() <= bound_m * bound_m {
                predict_track_with(track, t, &self.noise, Guard::Deferred);
                near.push(ti);
            }
        }
    }
}

pub(super) fn predict_track(track: &mut Track, t: Timestamp, noise: &ProcessNoise) {
    predict_track_with(track, t, noise, Guard::Now);
}

/// [`predict_track`], guarding the covariance as `guard` says (and noting a deferred guard).
fn predict_track_with(track: &mut Track, t: Timestamp, noise: &ProcessNoise, guard: Guard) {
    let dt = t.secs_since(track.time);
    if dt > 0.0 {
        track.motion.predict_with(dt, noise, guard);
        track.time = t;
        track.guard_due |= guard == Guard::Deferred;
    }
}
