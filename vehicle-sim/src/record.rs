//! Runs a scenario and writes the replay: metadata (site, calibration, scenario, seed), every
//! sensor's frames (log time = capture time; written in arrival order, so latency shows as
//! out-of-order log times), ground truth at 20 Hz and connected vehicles' self-reports at 10 Hz.
//! Everything is a function of (site, scenario, seed, duration): the same arguments give the same
//! bytes.

use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::sync::Arc;

use rsu_fusion::{SensorFrame, Timestamp, VehicleState};
use v2x_proto::domain::{
    GroundTruthFrame, GroundTruthObject, REPLAY_FORMAT_VERSION, ReplayMeta, SignalPhase, SignalState,
};
use v2x_replays::{ReplayError, ReplayWriter};

use crate::gnss::SelfReporter;
use crate::scenario::{self, Scenario, ScenarioError};
use crate::sensors::SensorSim;
use crate::signals::{LightPhase, LightState};
use crate::site::{SiteError, SiteModel};
use crate::world::{ActorTruth, STEP_NS};

/// Ground truth every this many steps (50 ms, 20 Hz).
pub const GROUND_TRUTH_EVERY_STEPS: u64 = 5;
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
        let sensors = site
            .config
            .sensors
            .iter()
            .enumerate()
            .map(|(i, calibration)| {
                let mut sim = SensorSim::new(calibration.clone(), i, seed);
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
    /// truth every [`GROUND_TRUTH_EVERY_STEPS`], self-reports every [`SELF_REPORT_EVERY_STEPS`],
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
        if step.is_multiple_of(GROUND_TRUTH_EVERY_STEPS) {
            summary.truth_frames += 1;
            summary.max_participants = summary.max_participants.max(truth.len());
            emit(Output::Truth(ground_truth_frame(now, &truth, &world.lights())))?;
        }
        if self.self_reports && step.is_multiple_of(SELF_REPORT_EVERY_STEPS) {
            for t in truth.iter().filter(|t| t.v2x_id.is_some()) {
                let id = t.v2x_id.clone().unwrap_or_default();
                let stream = 1000 + u64::from(t.id);
                let reporter =
                    self.reporters.entry(id.clone()).or_insert_with(|| SelfReporter::new(id, self.seed, stream));
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
    }
}

/// Records scenario `name` on `site` with `seed` for `duration_s` into `out`.
pub fn record(
    site: Arc<SiteModel>,
    name: &str,
    seed: u64,
    duration_s: f64,
    out: &FsPath,
) -> Result<RunSummary, RecordError> {
    if !(duration_s > 0.0 && duration_s <= MAX_DURATION_S) {
        return Err(RecordError::Duration(duration_s));
    }
    let scenario = scenario::build(name, site, seed)?;
    let meta = replay_meta(&scenario, seed, duration_s);
    let mut writer = ReplayWriter::create(out, &meta)?;
    let mut sim = Simulation::new(scenario, seed);
    let summary = sim.run(duration_s, |output| match output {
        Output::Sensor(frame) => writer.write_sensor_frame(&frame),
        Output::Truth(frame) => writer.write_ground_truth(&frame),
        Output::Vehicle(state) => writer.write_vehicle_state(&state),
    })?;
    writer.finish()?;
    Ok(summary)
}
