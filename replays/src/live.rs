//! Scoring a recorded live run: what the RSU actually broadcast, and what each vehicle actually
//! received, against the ground truth. The offline score ([`crate::validate`]) re-fuses the
//! log's inputs at their capture times; this scores the recorded output itself.
//!
//! - **As sent**: for each ground-truth frame at time `t`, the newest recorded broadcast frame
//!   (`/rsu/<id>/frame`) made at or before `t`.
//! - **As received**, per vehicle: the newest frame (by frame time, as the cars keep it) that
//!   vehicle had received by `t` (receipt time = the message's publish time ≤ `t`), from
//!   `/vehicles/<id>/received`. The truth is restricted to the region the vehicle subscribed to:
//!   the circle of its subscription radius (the channel's `subscription_radius_m`) around the
//!   vehicle's own true position at `t`. Truth outside it counts as outside coverage (not
//!   scored, and an object received for it near the edge is neither missed nor false); a truth
//!   frame without the vehicle in it is not scored for it. A receiver without a recorded radius
//!   subscribed to everything the RSU perceives (the observer of `rsu-lab replay play`, which
//!   need not be in the truth at all): it is scored against the whole truth and, like the
//!   broadcast as sent, judged by the criteria.
//!
//! Each participant of the frame used is aged from the frame's time to `t` by its own
//! kinematics (constant speed and yaw rate: [`ctrv`]), then scored with the same scorer as
//! offline. Truth frames before the first frame are scored too (everything missed), so a late
//! first frame costs what it costs a vehicle.

use std::collections::BTreeMap;
use std::path::Path;

use rsu_fusion::motion::wrap_angle;
use rsu_fusion::{Participant, RoadsideFrame, Timestamp};
use serde::{Deserialize, Serialize};
use v2x_proto::domain::GroundTruthFrame;

use crate::criteria::{Check, Criteria, ScenarioFacts, evaluate};
use crate::pipeline::PipelineError;
use crate::reader::{OpenOptions, ReadMode, ReplayBody, ReplayReader};
use crate::report::Distribution;
use crate::scoring::{Hypothesis, Metrics, Scorer, TruthObject};
use crate::validate::{Coverage, fill_truth_objects};

/// The live scores of a log (the `live` section of its report).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveSection {
    /// The broadcast as sent; absent when the log holds no recorded broadcast.
    pub as_sent: Option<LiveScore>,
    /// The broadcast as each vehicle received it, by vehicle id; empty when the log holds no
    /// receipts.
    pub as_received: BTreeMap<String, LiveScore>,
    /// What could not be scored and why.
    pub notes: Vec<String>,
}

/// One live score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveScore {
    /// The metrics, as offline.
    pub metrics: Metrics,
    /// The criteria evaluated on them: as sent, and as received by a receiver subscribed to
    /// everything; empty as received by a vehicle with a region, where whole-scene criteria do
    /// not apply.
    pub checks: Vec<Check>,
    /// Whether every check passed.
    pub passed: bool,
    /// Broadcast frames recorded (as sent) or received (as received).
    pub frames: u64,
    /// Ground-truth frames scored.
    pub truth_frames: u64,
    /// Of those, the ones before any frame was sent or received (scored with no objects).
    pub truth_frames_without_frame: u64,
    /// Age of the frame used at each truth time: truth time − frame time [s].
    pub frame_age_s: Distribution,
    /// Age of the broadcast objects as sent (or received), one value per object of each frame:
    /// see [`object_age_s`] [s].
    pub object_age_s: Distribution,
    /// The vehicle's subscription radius [m] (as received).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_radius_m: Option<u32>,
}

/// `position_m` and `yaw_rad` moved `dt_s` ahead at constant `speed_mps` and `yaw_rate_rps`
/// (straight below 1 mrad/s): the motion every receiver assumes between frames.
pub fn ctrv(position_m: [f64; 2], yaw_rad: f64, speed_mps: f64, yaw_rate_rps: f64, dt_s: f64) -> ([f64; 2], f64) {
    let yaw_end = yaw_rad + yaw_rate_rps * dt_s;
    let [x, y] = position_m;
    let moved = if yaw_rate_rps.abs() < 1e-3 {
        [yaw_rad.cos() * speed_mps * dt_s, yaw_rad.sin() * speed_mps * dt_s]
    } else {
        let r = speed_mps / yaw_rate_rps;
        [r * (yaw_end.sin() - yaw_rad.sin()), r * (yaw_rad.cos() - yaw_end.cos())]
    };
    ([x + moved[0], y + moved[1]], wrap_angle(yaw_end))
}

/// The participants of `frame` aged to `at` by their own kinematics, as the scorer sees them.
pub fn aged_hypotheses(frame: &RoadsideFrame, at: Timestamp) -> Vec<Hypothesis> {
    let dt_s = at.secs_since(frame.time);
    frame.participants.iter().map(|p| aged(p, dt_s)).collect()
}

fn aged(p: &Participant, dt_s: f64) -> Hypothesis {
    let (position_m, yaw_rad) = ctrv([p.position_m.x, p.position_m.y], p.yaw_rad, p.speed_mps, p.yaw_rate_rps, dt_s);
    Hypothesis {
        id: p.id,
        class: p.class,
        position_m,
        velocity_mps: [p.speed_mps * yaw_rad.cos(), p.speed_mps * yaw_rad.sin()],
        yaw_rad,
    }
}

/// Age of a frame's objects as the frame carries them [s]: the frame time minus the newest
/// sensor capture it reports (`newest_capture`). A frame does not carry each object's own last
/// measurement, so this is the age of the freshest information in it, a lower bound of each
/// object's age (the offline `broadcast_age_s` measures each object's own).
pub fn object_age_s(frame: &RoadsideFrame) -> Option<f64> {
    let newest = frame.newest_capture?;
    Some(frame.time.secs_since(newest).max(0.0))
}

/// One live score being accumulated.
struct Accumulator {
    scorer: Scorer,
    /// The frame in use: the newest sent or received by now.
    current: Option<RoadsideFrame>,
    /// Received frames not yet due (receipt after the truth times scored so far), with receipts.
    pending: Vec<(Timestamp, RoadsideFrame)>,
    frames: u64,
    truth_frames: u64,
    without_frame: u64,
    frame_ages_s: Vec<f64>,
    /// (frame time, age [s]) per object of each frame.
    object_ages_s: Vec<(Timestamp, f64)>,
    radius_m: Option<u32>,
}

impl Accumulator {
    fn new(criteria: &Criteria, truth_ids_per_frame: bool) -> Self {
        Accumulator {
            scorer: Scorer::new(criteria.scoring.clone()).with_truth_ids_per_frame(truth_ids_per_frame),
            current: None,
            pending: Vec::new(),
            frames: 0,
            truth_frames: 0,
            without_frame: 0,
            frame_ages_s: Vec::new(),
            object_ages_s: Vec::new(),
            radius_m: None,
        }
    }

    /// Takes frame `frame`, in use from `at` on.
    fn take(&mut self, at: Timestamp, frame: RoadsideFrame) {
        self.frames += 1;
        self.pending.push((at, frame));
    }

    /// Makes every frame due by `t` current (the newest by frame time wins).
    fn advance(&mut self, t: Timestamp) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 <= t {
                let (_, frame) = self.pending.swap_remove(i);
                if self.current.as_ref().is_none_or(|c| c.time <= frame.time) {
                    self.current = Some(frame);
                }
            } else {
                i += 1;
            }
        }
    }

    fn score(&mut self, t: Timestamp, truths: &[TruthObject]) {
        self.advance(t);
        self.truth_frames += 1;
        let hyps = match &self.current {
            Some(frame) => {
                self.frame_ages_s.push(t.secs_since(frame.time));
                aged_hypotheses(frame, t)
            }
            None => {
                self.without_frame += 1;
                Vec::new()
            }
        };
        self.scorer.add_frame(t, truths, &hyps);
    }

    /// The score; object ages count up to `last_input` (when known).
    fn finish(self, judge: Option<(&Criteria, &ScenarioFacts)>, last_input: Option<Timestamp>) -> LiveScore {
        let metrics = self.scorer.finish();
        let ages: Vec<f64> =
            self.object_ages_s.iter().filter(|(t, _)| last_input.is_none_or(|l| *t <= l)).map(|(_, a)| *a).collect();
        let object_age_s = Distribution::of(&ages);
        let checks = match judge {
            Some((criteria, facts)) => {
                let facts = ScenarioFacts {
                    broadcast_age_p99_s: (object_age_s.count > 0).then_some(object_age_s.p99),
                    ..facts.clone()
                };
                evaluate(criteria, &metrics, &facts)
            }
            None => Vec::new(),
        };
        LiveScore {
            passed: checks.iter().all(|c| c.passed) && self.truth_frames > self.without_frame,
            metrics,
            checks,
            frames: self.frames,
            truth_frames: self.truth_frames,
            truth_frames_without_frame: self.without_frame,
            frame_age_s: Distribution::of(&self.frame_ages_s),
            object_age_s,
            subscription_radius_m: self.radius_m,
        }
    }
}

/// Scores the recorded broadcast of the log at `path` as sent and as received (see the module
/// documentation). `facts` are the log's scenario facts from the offline validation (the ego
/// tracks and first times in coverage, which depend on the truth only); the criteria judge the
/// broadcast as sent.
pub fn score_live(path: &Path, criteria: &Criteria, facts: &ScenarioFacts) -> Result<LiveSection, PipelineError> {
    score_live_with(path, criteria, facts, ReadMode::Strict)
}

/// Whether the log holds any sensor frame (read until the first one).
fn has_sensor_frames(path: &Path, mode: ReadMode) -> Result<bool, PipelineError> {
    for item in ReplayReader::open_with(path, OpenOptions { mode, ..Default::default() })? {
        if matches!(item?.body, ReplayBody::Sensor(_)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`score_live`] reading the log in `mode` ([`ReadMode::Recover`]: what is intact before any
/// damage).
pub fn score_live_with(
    path: &Path,
    criteria: &Criteria,
    facts: &ScenarioFacts,
    mode: ReadMode,
) -> Result<LiveSection, PipelineError> {
    let reader = ReplayReader::open_with(path, OpenOptions { mode, ..Default::default() })?;
    let site = reader.meta().site.clone();
    let truth_ids_per_frame = reader.meta().truth_ids_per_frame;
    let mut sent: Option<Accumulator> = None;
    let mut received: BTreeMap<String, Accumulator> = BTreeMap::new();
    // Truth frames wait until every message at their time has been read (ties in log time).
    let mut waiting: Vec<GroundTruthFrame> = Vec::new();
    let mut last_input: Option<Timestamp> = None;
    // Scored as the re-fused replay is: coverage from each sensor's first frame on; a recording
    // of the broadcast alone (no sensor stream: another RSU tested as a black box) counts every
    // calibrated sensor, since which of them worked cannot be seen.
    let mut coverage = if has_sensor_frames(path, mode)? { Coverage::new(&site) } else { Coverage::all(&site) };
    let mut truths: Vec<TruthObject> = Vec::new();
    let mut score_waiting = |waiting: &mut Vec<GroundTruthFrame>,
                             sent: &mut Option<Accumulator>,
                             received: &mut BTreeMap<String, Accumulator>,
                             coverage: &Coverage<'_>| {
        for truth in waiting.drain(..) {
            fill_truth_objects(&truth, coverage, &mut truths);
            if let Some(acc) = sent.as_mut() {
                acc.score(truth.time, &truths);
            }
            for (vehicle, acc) in received.iter_mut() {
                let Some(r) = acc.radius_m else {
                    // Subscribed to everything: the whole truth.
                    acc.score(truth.time, &truths);
                    continue;
                };
                let Some(own) = truth.objects.iter().find(|o| o.v2x_id.as_deref() == Some(vehicle.as_str())) else {
                    continue;
                };
                // Outside the region a truth is treated as outside coverage: not scored, and an
                // object received for it (near the edge, the RSU filtered by where the vehicle
                // said it was, at the frame's time) is neither a miss nor a false positive.
                let mut region = truths.clone();
                for t in &mut region {
                    let d = (t.position_m[0] - own.center_m.x).hypot(t.position_m[1] - own.center_m.y);
                    t.in_coverage &= d <= f64::from(r);
                }
                acc.score(truth.time, &region);
            }
        }
    };
    for item in reader {
        let message = item?;
        if waiting.first().is_some_and(|w| w.time < message.log_time) {
            score_waiting(&mut waiting, &mut sent, &mut received, &coverage);
        }
        match message.body {
            ReplayBody::Roadside(frame) => {
                let acc = sent.get_or_insert_with(|| Accumulator::new(criteria, truth_ids_per_frame));
                if let Some(age) = object_age_s(&frame) {
                    acc.object_ages_s.extend(std::iter::repeat_n((frame.time, age), frame.participants.len()));
                }
                acc.take(frame.time, frame);
            }
            ReplayBody::Received(r) => {
                let acc = received
                    .entry(r.vehicle_id.clone())
                    .or_insert_with(|| Accumulator::new(criteria, truth_ids_per_frame));
                acc.radius_m = r.subscription_radius_m;
                if let Some(age) = object_age_s(&r.frame) {
                    acc.object_ages_s.extend(std::iter::repeat_n((r.frame.time, age), r.frame.participants.len()));
                }
                acc.take(message.publish_time, r.frame);
            }
            ReplayBody::GroundTruth(truth) => waiting.push(truth),
            ReplayBody::Sensor(frame) => {
                coverage.heard(&frame.sensor_id);
                last_input = last_input.max(Some(message.publish_time));
            }
            ReplayBody::Vehicle(_) => {
                last_input = last_input.max(Some(message.publish_time));
            }
            // Signals are not scored against the truth (yet).
            ReplayBody::Meta(_) | ReplayBody::Signal(_) | ReplayBody::Spat(_) | ReplayBody::Rsi(_) => {}
        }
    }
    score_waiting(&mut waiting, &mut sent, &mut received, &coverage);
    let mut notes = Vec::new();
    if sent.is_none() {
        notes.push(
            "no recorded broadcast (/rsu/<id>/frame): the live broadcast as sent cannot be scored; merge in the RSU's recording"
                .to_owned(),
        );
    }
    if received.is_empty() {
        notes.push(
            "no received frames (/vehicles/<id>/received): the broadcast as received cannot be scored; record the vehicles' receipts (vehicle-sim live --log)"
                .to_owned(),
        );
    }
    Ok(LiveSection {
        as_sent: sent.map(|acc| acc.finish(Some((criteria, facts)), last_input)),
        as_received: received
            .into_iter()
            .map(|(id, acc)| {
                // A whole-scene receiver is judged like the broadcast as sent; a region is not.
                let judge = acc.radius_m.is_none().then_some((criteria, facts));
                (id, acc.finish(judge, last_input))
            })
            .collect(),
        notes,
    })
}
