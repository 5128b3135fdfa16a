//! Runs a scenario and writes the replay: metadata (site, calibration, scenario, seed), every
//! sensor's frames (log time = capture time; written in arrival order, so latency shows as
//! out-of-order log times), ground truth at 20 Hz (or another rate that divides the 100 Hz step
//! rate, see [`RecordOptions`]) and connected vehicles' self-reports at 10 Hz. Everything is a
//! function of (site, scenario, seed, duration, options): the same arguments give the same bytes.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use rsu_fusion::{SensorFrame, Timestamp, VehicleState};
use v2x_proto::domain::{
    GroundTruthFrame, GroundTruthObject, REPLAY_FORMAT_VERSION, ReplayMeta, SignalPhase, SignalState,
};
use v2x_replays::{ReplayError, ReplayWriter};

use crate::gnss::SelfReporter;
use crate::scenario::{self, Scenario, ScenarioError, ScenarioOptions};
use crate::sensors::SensorSim;
use crate::world::{ActorTruth, STEP_NS, named_seed};
use rsu_site::model::{SiteError, SiteModel};
use rsu_site::signals::{LightPhase, LightState};

/// Simulation steps per second (a step is [`STEP_NS`], 10 ms).
pub const STEPS_PER_S: u64 = 1_000_000_000 / STEP_NS as u64;
/// Default ground-truth rate [Hz].
pub const DEFAULT_TRUTH_HZ: u32 = 20;
/// Ground truth every this many steps by default (50 ms, 20 Hz).
pub const GROUND_TRUTH_EVERY_STEPS: u64 = STEPS_PER_S / DEFAULT_TRUTH_HZ as u64;
/// Self-reports every this many steps (100 ms, 10 Hz).
pub const SELF_REPORT_EVERY_STEPS: u64 = 10;
/// Longest recording [s].
pub const MAX_DURATION_S: f64 = 3600.0;

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The site could not be loaded.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The scenario could not be built.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The replay could not be written.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Duration out of range.
    #[error("duration must be within (0, {MAX_DURATION_S}] s, not {0}")]
    Duration(f64),
    /// A ground-truth rate that is not a whole number of steps.
    #[error(
        "the ground-truth rate must divide the {STEPS_PER_S} Hz simulation step rate (e.g. 10 or 20 Hz), not {0} Hz"
    )]
    TruthRate(u32),
}

/// How to record, beyond scenario, seed and duration. The default records the scenario as
/// catalogued with ground truth at [`DEFAULT_TRUTH_HZ`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOptions {
    /// Ground-truth rate [Hz]; must divide [`STEPS_PER_S`] (1, 2, 4, 5, 10, 20, 25, 50 or 100).
    pub truth_hz: u32,
    /// Changes to the scenario.
    pub scenario: ScenarioOptions,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions { truth_hz: DEFAULT_TRUTH_HZ, scenario: ScenarioOptions::default() }
    }
}

/// Steps between ground-truth frames at `truth_hz` [Hz].
pub fn truth_every_steps(truth_hz: u32) -> Result<u64, RecordError> {
    let hz = u64::from(truth_hz);
    if hz == 0 || !STEPS_PER_S.is_multiple_of(hz) {
        return Err(RecordError::TruthRate(truth_hz));
    }
    Ok(STEPS_PER_S / hz)
}

/// One item of simulation output, in the order it would reach a recorder.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// A roadside sensor frame.
    Sensor(SensorFrame),
    /// The world's truth.
    Truth(GroundTruthFrame),
    /// A connected vehicle's self-report.
    Vehicle(VehicleState),
}

/// Counts of what a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Sensor frames.
    pub sensor_frames: u64,
    /// Ground-truth frames.
    pub truth_frames: u64,
    /// Self-reports.
    pub vehicle_states: u64,
    /// Most actors in one ground-truth frame.
    pub max_participants: usize,
    /// Fewest actors in one ground-truth frame (0 without any).
    pub min_participants: usize,
}

/// A scenario with its sensors and connected-vehicle reporters.
pub struct Simulation {
    /// The scenario (its world advances as the simulation runs).
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Whether connected vehicles' self-reports are produced here (a live run has its cars
    /// report themselves).
    pub self_reports: bool,
    /// Ground truth every this many steps (at least 1; [`GROUND_TRUTH_EVERY_STEPS`] unless
    /// changed).
    pub truth_every_steps: u64,
    sensors: Vec<SensorSim>,
    reporters: BTreeMap<String, SelfReporter>,
    /// Frames in flight: (arrival, capture order, frame).
    pending: Vec<(Timestamp, u64, SensorFrame)>,
    order: u64,
}

impl Simulation {
    /// Sets up sensors for every calibrated sensor of the site, with the scenario's outages.
    pub fn new(scenario: Scenario, seed: u64) -> Self {
        let site = scenario.world.site().clone();
        // Each scenario's sensors draw their own noise: two scenarios on the same site and seed
        // must not share detections (they would not be independent tests).
        let sensor_seed = named_seed(seed, scenario.info.name);
        let sensors = site
            .config
            .sensors
            .iter()
            .enumerate()
            .map(|(i, calibration)| {
                let mut sim = SensorSim::new(calibration.clone(), i, sensor_seed);
                sim.outages = scenario
                    .outages
                    .iter()
                    .filter(|o| o.sensor_id == calibration.id)
                    .map(|o| (o.from_s, o.to_s))
                    .collect();
                sim
            })
            .collect();
        Simulation {
            scenario,
            seed,
            self_reports: true,
            truth_every_steps: GROUND_TRUTH_EVERY_STEPS,
            sensors,
            reporters: BTreeMap::new(),
            pending: Vec::new(),
            order: 0,
        }
    }

    /// The sensors.
    pub fn sensors_mut(&mut self) -> &mut [SensorSim] {
        &mut self.sensors
    }

    /// Runs for `duration_s` and hands every output to `emit`, in arrival order.
    pub fn run<E>(&mut self, duration_s: f64, mut emit: impl FnMut(Output) -> Result<(), E>) -> Result<RunSummary, E> {
        let total_steps = (duration_s * 1e9 / STEP_NS as f64).round() as u64;
        let mut summary = RunSummary::default();
        for step in 0..=total_steps {
            let last = step == total_steps;
            self.emit_step(last, &mut summary, &mut emit)?;
            if !last {
                self.scenario.world.step();
            }
        }
        Ok(summary)
    }

    /// Hands `emit` what the world produces at its current step, without advancing it: ground
    /// truth every [`Simulation::truth_every_steps`], self-reports every [`SELF_REPORT_EVERY_STEPS`],
    /// the sensor frames captured by now and the ones that have arrived by now (with `flush`,
    /// every frame still in flight). Counts them into `summary`. Returns the world's truth at
    /// this step.
    pub fn emit_step<E>(
        &mut self,
        flush: bool,
        summary: &mut RunSummary,
        emit: &mut impl FnMut(Output) -> Result<(), E>,
    ) -> Result<Vec<ActorTruth>, E> {
        let half_step_s = 0.5 * STEP_NS as f64 * 1e-9;
        let world = &self.scenario.world;
        let site = world.site().clone();
        let start = world.start_time();
        let env = self.scenario.environment;
        let step = world.steps();
        let (now, elapsed_s) = (world.time(), world.elapsed_s());
        let truth = world.truth();
        if step.is_multiple_of(self.truth_every_steps.max(1)) {
            summary.truth_frames += 1;
            summary.max_participants = summary.max_participants.max(truth.len());
            summary.min_participants =
                if summary.truth_frames == 1 { truth.len() } else { summary.min_participants.min(truth.len()) };
            emit(Output::Truth(ground_truth_frame(now, &truth, &world.lights())))?;
        }
        if self.self_reports && step.is_multiple_of(SELF_REPORT_EVERY_STEPS) {
            for t in truth.iter().filter(|t| t.v2x_id.is_some()) {
                let id = t.v2x_id.clone().unwrap_or_default();
                let stream = 1000 + u64::from(t.id);
                let spoof = self.scenario.spoof_of(&id);
                let reporter = self.reporters.entry(id.clone()).or_insert_with(|| {
                    let mut reporter = SelfReporter::new(id, self.seed, stream);
                    reporter.spoof = spoof;
                    reporter
                });
                summary.vehicle_states += 1;
                emit(Output::Vehicle(reporter.report(&site, t, now, elapsed_s)))?;
            }
        }
        for sensor in &mut self.sensors {
            while sensor.next_trigger_s() < elapsed_s + half_step_s {
                if let Some(delivered) = sensor.capture(start, elapsed_s, &truth, &site.buildings, &env) {
                    self.pending.push((delivered.arrival, self.order, delivered.frame));
                    self.order += 1;
                }
            }
        }
        self.pending.sort_by_key(|(arrival, order, _)| (*arrival, *order));
        let due =
            if flush { self.pending.len() } else { self.pending.partition_point(|(arrival, _, _)| *arrival <= now) };
        for (_, _, frame) in self.pending.drain(..due) {
            summary.sensor_frames += 1;
            emit(Output::Sensor(frame))?;
        }
        Ok(truth)
    }
}

/// The ground-truth message for one instant.
pub fn ground_truth_frame(time: Timestamp, truth: &[ActorTruth], lights: &[LightState]) -> GroundTruthFrame {
    GroundTruthFrame {
        time,
        objects: truth
            .iter()
            .map(|t| GroundTruthObject {
                id: t.id,
                class: t.class,
                center_m: t.center,
                yaw_rad: t.yaw_rad,
                speed_mps: t.speed_mps,
                yaw_rate_rps: t.yaw_rate_rps,
                accel_mps2: t.accel_mps2,
                size: t.size,
                v2x_id: t.v2x_id.clone(),
            })
            .collect(),
        signals: lights
            .iter()
            .map(|l| SignalState {
                signal_id: l.signal_id.clone(),
                phase: match l.phase {
                    LightPhase::Red => SignalPhase::Red,
                    LightPhase::Yellow => SignalPhase::Yellow,
                    LightPhase::Green => SignalPhase::Green,
                },
                remaining_s: l.remaining_s,
            })
            .collect(),
    }
}

/// The replay metadata of a run.
pub fn replay_meta(scenario: &Scenario, seed: u64, duration_s: f64) -> ReplayMeta {
    let start = scenario.world.start_time();
    ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: concat!("vehicle-sim ", env!("CARGO_PKG_VERSION")).to_owned(),
        scenario: scenario.info.name.to_owned(),
        description: scenario.info.description.to_owned(),
        seed,
        site: scenario.world.site().config.clone(),
        rsu_ids: Vec::new(),
        start_time: start,
        end_time: start.add_secs(duration_s),
        truth_ids_per_frame: false,
    }
}

/// Records scenario `name` on `site` with `seed` for `duration_s` into `out`, as catalogued with
/// the default options.
pub fn record(
    site: Arc<SiteModel>,
    name: &str,
    seed: u64,
    duration_s: f64,
    out: &FsPath,
) -> Result<RunSummary, RecordError> {
    record_with(site, name, seed, duration_s, out, &RecordOptions::default())
}

/// Records scenario `name` on `site` with `seed` for `duration_s` into `out`, with `options`. The
/// log's description says what the options changed.
pub fn record_with(
    site: Arc<SiteModel>,
    name: &str,
    seed: u64,
    duration_s: f64,
    out: &FsPath,
    options: &RecordOptions,
) -> Result<RunSummary, RecordError> {
    if !(duration_s > 0.0 && duration_s <= MAX_DURATION_S) {
        return Err(RecordError::Duration(duration_s));
    }
    let truth_every_steps = truth_every_steps(options.truth_hz)?;
    let scenario = scenario::build_with(name, site, seed, &options.scenario)?;
    let mut meta = replay_meta(&scenario, seed, duration_s);
    if let Some(max) = options.scenario.max_participants {
        meta.description.push_str(&format!(" Recorded with at most {max} participants at once."));
    }
    if options.truth_hz != DEFAULT_TRUTH_HZ {
        meta.description.push_str(&format!(" Ground truth at {} Hz.", options.truth_hz));
    }
    let mut writer = ReplayWriter::create(out, &meta)?;
    let mut sim = Simulation::new(scenario, seed);
    sim.truth_every_steps = truth_every_steps;
    let summary = sim.run(duration_s, |output| match output {
        Output::Sensor(frame) => writer.write_sensor_frame(&frame),
        Output::Truth(frame) => writer.write_ground_truth(&frame),
        Output::Vehicle(state) => writer.write_vehicle_state(&state),
    })?;
    writer.finish()?;
    Ok(summary)
}
