//! Time and the fusion window: every input is fused as soon as it arrives, and one that arrives
//! out of sequence (captured before inputs already fused) is fused where it belongs.
//!
//! The engine keeps the inputs of the last `max_lag_s` in capture-time order, with checkpoints
//! of its fused state before some of them (one per [`CHECKPOINT_SPACING_S`] of capture time, and
//! at least every [`CHECKPOINT_EVERY`] inputs). An input that sorts after everything fused is simply fused. One that
//! sorts before fused inputs (a lidar frame overtaken by a camera frame, a V2X state whose
//! measurement time is 200 ms old) sends the engine back to the newest checkpoint before it,
//! and the inputs from there are fused again in order with it in place. Fusing is lazy: inputs
//! wait until objects are read (or the window holds [`MAX_UNFUSED`] unfused ones), so a burst of
//! late inputs costs one rollback.
//!
//! Everything done per input depends only on the inputs (the management after each input
//! below included), so the state after any arrival order is the state after fusing the same
//! inputs in capture-time order: out-of-sequence fusion is exact, not an approximation, and
//! live and replay are one code path. Inputs of one capture time (synchronised sensors) are one
//! batch, ordered by source, not by arrival. Track ids survive a rollback: an input that spawns
//! tracks again when fused again gives them the ids it gave them the first time (vehicles saw
//! them), so ids, and only ids, may differ from those of an in-order run.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use nalgebra::Vector2;

use crate::broadcast::SensorStatus;
use crate::measurement::{Detections, SensorFrame, VehicleState};
use crate::motion::{Guard, ProcessNoise};
use crate::time::Timestamp;
use crate::track::Track;

use super::{Fusion, FusionStats, Ingest};

/// An input kept in the window.
#[derive(Clone, Debug)]
pub(super) enum Pending {
    /// A sensor frame, shared with the caller (keeping it copies nothing).
    Frame { sensor: usize, frame: Arc<SensorFrame> },
    /// A V2X self-report.
    Vehicle(Box<VehicleState>),
}

/// Capture time between two checkpoints [s]: a checkpoint copies every track, so there is one
/// per few sensor frames rather than one per frame; a rollback re-fuses at most this much
/// before it reaches the late input.
const CHECKPOINT_SPACING_S: f64 = 0.05;

/// Inputs between two checkpoints at most: bounds what a rollback re-fuses when V2X states come
/// in fast.
const CHECKPOINT_EVERY: usize = 64;

/// Unfused inputs at most before they are fused without waiting for a read.
const MAX_UNFUSED: usize = 256;

/// Slack added to the reach of an input when choosing the tracks to predict for it [m]: far
/// above the rounding of a track's travel bound.
const REACH_MARGIN_M: f64 = 1.0;

/// The fused state of the engine before an input: everything a rollback restores. The sensors'
/// ingest bookkeeping (newest capture, sequence numbers), the ingest counters and the
/// broadcast's message counter are not in it: they describe arrivals, which a rollback does not
/// undo.
#[derive(Clone, Debug)]
pub(super) struct Checkpoint {
    tracks: Vec<Track>,
    v2x_links: BTreeMap<String, u32>,
    clutter: super::clutter::ClutterMap,
    pixel_noise: super::pixel_noise::PixelNoise,
    misbehaviour: super::misbehaviour::Monitor,
    stats: FusionStats,
    fused_until: Option<Timestamp>,
    pruned_at: Option<Timestamp>,
    managed_at: Option<Timestamp>,
}

/// One input in the window.
#[derive(Clone, Debug)]
struct Entry {
    /// Capture time, source and arrival number: the fusion order. Inputs of one capture time are
    /// ordered by their source, not by when they arrived, so that the order never depends on
    /// arrival (the arrival number only separates two inputs of one source and time).
    key: (Timestamp, u64, u64),
    input: Pending,
    /// The fused state before this input, when one was kept.
    checkpoint: Option<Box<Checkpoint>>,
    /// Ids of the tracks this input spawned, by spawn tag (see [`SpawnIds`]).
    spawned: Vec<(u32, u32)>,
}

/// The inputs of the last `max_lag_s`, in fusion order.
#[derive(Clone, Debug, Default)]
pub(super) struct Window {
    entries: VecDeque<Entry>,
    /// How many entries, from the front, the engine's state reflects (the rest wait).
    applied: usize,
    /// The lowest index an input was inserted at below `applied`: the state must go back to
    /// before it.
    rewind_to: Option<usize>,
    /// Capture time of the newest input forgotten: older ones can no longer be placed.
    floor: Option<Timestamp>,
}

impl Window {
    /// Inputs taken in and not yet fused.
    pub(super) fn unfused(&self) -> usize {
        self.entries.len() - self.applied + usize::from(self.rewind_to.is_some())
    }

    /// Inputs held.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Track ids by spawn, so that fusing an input again spawns its tracks under the same ids. A
/// spawn is named by its input and a tag the update gives it (the detection's index in its
/// frame; 0 for a V2X state).
#[derive(Clone, Debug, Default)]
pub(super) struct SpawnIds {
    /// What the input being fused spawned the last time it was fused.
    previous: Vec<(u32, u32)>,
    /// What it spawned this time.
    given: Vec<(u32, u32)>,
}

impl SpawnIds {
    /// The id the spawn `tag` of the current input had before, if any.
    pub(super) fn previous(&self, tag: u32) -> Option<u32> {
        self.previous.iter().find(|(t, _)| *t == tag).map(|(_, id)| *id)
    }

    /// Notes that spawn `tag` of the current input got `id`.
    pub(super) fn give(&mut self, tag: u32, id: u32) {
        self.given.push((tag, id));
    }
}

impl FusionStats {
    /// Copies the counters of arrivals (what was handed in, dropped at the door, and the
    /// window's own work) from `from`: a rollback restores the counters of fusion outcomes only.
    fn keep_arrivals_from(&mut self, from: &FusionStats) {
        self.frames_received = from.frames_received;
        self.unknown_sensor = from.unknown_sensor;
        self.wrong_kind = from.wrong_kind;
        self.late_dropped = from.late_dropped;
        self.future_rejected = from.future_rejected;
        self.window_trimmed = from.window_trimmed;
        self.sequence_gaps = from.sequence_gaps;
        self.vehicle_states_received = from.vehicle_states_received;
        self.vehicle_states_rejected = from.vehicle_states_rejected;
        self.out_of_sequence = from.out_of_sequence;
        self.rollbacks = from.rollbacks;
        self.inputs_refused = from.inputs_refused;
    }
}

impl Fusion {
    /// Notes a caller's `now`.
    pub(super) fn note_now(&mut self, now: Timestamp) {
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
        if too_old || self.window.floor.is_some_and(|f| t < f) {
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

    /// Puts an accepted input captured at `t` into the window, in fusion order.
    pub(super) fn admit(&mut self, t: Timestamp, input: Pending) {
        self.arrivals += 1;
        let source = match &input {
            Pending::Frame { sensor, .. } => *sensor as u64,
            // After every sensor, in an order fixed by the vehicle's id.
            Pending::Vehicle(state) => (1 << 63) | fnv1a(state.vehicle_id.as_bytes()),
        };
        let key = (t, source, self.arrivals);
        let window = &mut self.window;
        let at = window.entries.partition_point(|e| e.key < key);
        let mut entry = Entry { key, input, checkpoint: None, spawned: Vec::new() };
        // Inputs of one capture time are fused as one batch (see `fuse_input`): one that joins a
        // batch already fused takes the state back to before the batch.
        let joins_fused_batch = at == window.applied && at > 0 && window.entries[at - 1].key.0 == t;
        if joins_fused_batch {
            let first = window.entries.iter().take(at).rposition(|e| e.key.0 != t).map_or(0, |i| i + 1);
            window.rewind_to = Some(window.rewind_to.map_or(first, |r| r.min(first)));
        } else if at < window.applied {
            // Out of sequence: the state before the entry displaced is the state before this
            // input, so its checkpoint moves here; the state must go back to it.
            entry.checkpoint = window.entries[at].checkpoint.take();
            window.rewind_to = Some(window.rewind_to.map_or(at, |r| r.min(at)));
            window.applied += 1;
            self.stats.out_of_sequence += 1;
        }
        window.entries.insert(at, entry);
        if window.unfused() >= MAX_UNFUSED || window.len() > self.config.max_window_inputs {
            self.fuse_window();
        }
    }

    /// Fuses every input of the window not yet reflected in the state (going back to a
    /// checkpoint first when inputs arrived out of sequence), then forgets inputs too old to
    /// matter.
    pub(super) fn fuse_window(&mut self) {
        let mut window = std::mem::take(&mut self.window);
        let previously_applied = window.applied;
        let start = match window.rewind_to.take() {
            Some(rewind) => {
                // The newest checkpoint at or before the first input out of place. The front
                // entry always has one, so there is one.
                let from = (0..=rewind).rev().find(|&i| window.entries[i].checkpoint.is_some()).unwrap_or(0);
                if let Some(checkpoint) = window.entries[from].checkpoint.as_deref() {
                    self.restore(checkpoint);
                }
                // Checkpoints after the first input out of place were taken without it.
                for entry in window.entries.iter_mut().skip(rewind + 1) {
                    entry.checkpoint = None;
                }
                self.stats.rollbacks += 1;
                from
            }
            None => window.applied,
        };
        // Inputs since the last checkpoint before `start`, and its capture time.
        let mut since_checkpoint =
            window.entries.iter().take(start).rev().take_while(|e| e.checkpoint.is_none()).count();
        let mut checkpoint_t = start.checked_sub(since_checkpoint + 1).map(|i| window.entries[i].key.0);
        let mut batch_has_frame = false;
        for i in start..window.entries.len() {
            let entry = &mut window.entries[i];
            let spaced = checkpoint_t.is_none_or(|c| entry.key.0.secs_since(c) >= CHECKPOINT_SPACING_S);
            if entry.checkpoint.is_none() && (i == 0 || spaced || since_checkpoint >= CHECKPOINT_EVERY) {
                entry.checkpoint = Some(Box::new(self.checkpoint()));
            }
            if entry.checkpoint.is_some() {
                since_checkpoint = 0;
                checkpoint_t = Some(entry.key.0);
            }
            since_checkpoint += 1;
            if i < previously_applied {
                self.stats.inputs_refused += 1;
            }
            self.spawn_ids.previous = std::mem::take(&mut entry.spawned);
            let t = entry.key.0;
            self.fuse_input(t, &entry.input);
            entry.spawned = std::mem::take(&mut self.spawn_ids.given);
            batch_has_frame |= matches!(entry.input, Pending::Frame { .. });
            if window.entries.get(i + 1).is_none_or(|next| next.key.0 != t) {
                self.end_batch(t, batch_has_frame);
                batch_has_frame = false;
            }
        }
        window.applied = window.entries.len();
        self.window = window;
        self.trim_window();
    }

    /// Forgets the inputs before the newest checkpoint at or before `max_lag_s` before the
    /// latest `now` (no input that old can still be accepted), and beyond `max_window_inputs`
    /// the oldest. The front entry keeps a checkpoint. Only fused inputs are forgotten.
    fn trim_window(&mut self) {
        let Some(latest) = self.latest_now else { return };
        let horizon = latest.add_secs(-self.config.max_lag_s);
        let window = &mut self.window;
        let applied = window.applied;
        let mut cut = window
            .entries
            .iter()
            .take(applied)
            .rposition(|e| e.checkpoint.is_some() && e.key.0 <= horizon)
            .unwrap_or(0);
        let excess = window.entries.len().saturating_sub(self.config.max_window_inputs);
        if excess > cut {
            // Too many inputs: the first checkpoint at or after the excess becomes the front.
            if let Some(k) = (excess..applied).find(|&i| window.entries[i].checkpoint.is_some()) {
                self.stats.window_trimmed += (k - cut) as u64;
                cut = k;
            }
        }
        if cut == 0 {
            return;
        }
        window.floor = Some(window.entries[cut - 1].key.0);
        window.entries.drain(..cut);
        window.applied -= cut;
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            tracks: self.tracks.clone(),
            v2x_links: self.v2x_links.clone(),
            clutter: self.clutter.clone(),
            pixel_noise: self.pixel_noise.clone(),
            misbehaviour: self.misbehaviour.clone(),
            stats: self.stats.clone(),
            fused_until: self.fused_until,
            pruned_at: self.pruned_at,
            managed_at: self.managed_at,
        }
    }

    fn restore(&mut self, checkpoint: &Checkpoint) {
        self.tracks.clone_from(&checkpoint.tracks);
        self.v2x_links.clone_from(&checkpoint.v2x_links);
        self.clutter.clone_from(&checkpoint.clutter);
        self.pixel_noise.clone_from(&checkpoint.pixel_noise);
        self.misbehaviour.clone_from(&checkpoint.misbehaviour);
        let arrivals = std::mem::replace(&mut self.stats, checkpoint.stats.clone());
        self.stats.keep_arrivals_from(&arrivals);
        self.fused_until = checkpoint.fused_until;
        self.pruned_at = checkpoint.pruned_at;
        self.managed_at = checkpoint.managed_at;
    }

    /// Fuses one input captured at `t`.
    fn fuse_input(&mut self, t: Timestamp, input: &Pending) {
        self.fused_until = Some(self.fused_until.map_or(t, |f| f.max(t)));
        match input {
            Pending::Frame { sensor, frame } => self.fuse_frame(*sensor, t, frame),
            Pending::Vehicle(state) => self.update_v2x(t, state),
        }
    }

    /// The track management due after a batch of inputs (those of one capture time, as
    /// synchronised sensors deliver): the covariance guard the batch's predictions and updates
    /// deferred; duplicates merge after every batch with a sensor frame; tracks are deleted (and
    /// duplicates merged) once per management interval of capture time. All of it depends on the
    /// inputs only, never on when they arrived or were fused.
    fn end_batch(&mut self, t: Timestamp, has_frame: bool) {
        for track in self.tracks.iter_mut().filter(|t| t.guard_due) {
            track.motion.guard();
            track.guard_due = false;
        }
        if self.managed_at.is_none_or(|m| t.secs_since(m) >= self.config.management_interval_s) {
            self.maintain(t, true);
            // A vehicle silent for longer than its flag could last is forgotten.
            self.misbehaviour.forget_before(t, self.config.misbehaviour_hold_s + 2.0);
            self.managed_at = Some(t);
            self.pruned_at = Some(t);
        } else if has_frame {
            self.merge_duplicates(t);
        }
    }

    /// Fuses what is waiting and deletes the tracks stale at `now` (or at the newest capture
    /// fused, if later): before objects are read.
    pub(super) fn settle(&mut self, now: Timestamp) {
        self.fuse_window();
        let horizon = now.add_secs(-self.config.max_lag_s);
        let prune_at = self.fused_until.map_or(horizon, |f| f.max(horizon));
        // Pruning is idempotent: repeated at the same time it changes nothing.
        if self.pruned_at != Some(prune_at) {
            self.maintain(prune_at, false);
            self.pruned_at = Some(prune_at);
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

/// FNV-1a hash (63 bits) of `bytes`: a fixed order among vehicles, the same in every run.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)) >> 1
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
