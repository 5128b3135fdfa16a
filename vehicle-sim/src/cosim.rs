//! The closed loop of a run, without I/O: the world with its roadside sensors, and every
//! connected vehicle of the scenario as an L2+ car ([`ConnectedCar`]) whose driver-assistance
//! functions brake it in the world, so what it perceives changes what happens. Each
//! [`CoSim::step`] advances 10 ms: it hands out the sensor frames that arrive and the cars'
//! self-reports (for an RSU), takes the RSU frames the cars received, lets the cars sense and
//! decide, and keeps what a test engineer judges a run by (warnings, braking, closest approach
//! to the scenario's hazards, V2X lead time, link latency). [`crate::live`] runs it against a
//! real RSU over QUIC in real time; tests run it against an in-process fusion core.

use nalgebra::Point2;
use rsu_fusion::{ObjectClass, RoadsideFrame, SensorFrame, Timestamp, VehicleState};
use serde::Serialize;
use v2x_proto::domain::GroundTruthFrame;
use v2x_replays::Received;
use v2x_replays::report::Distribution;

use crate::adas::{AdasEvent, EventKind, Function};
use crate::connected::{CarConfig, ConnectedCar, SiteObject};
use crate::record::{Output, RunSummary, Simulation};
use crate::scenario::Scenario;
use crate::sensors::Environment;
use crate::world::STEP_NS;
use rsu_site::geometry::Prism;
use rsu_site::model::SiteModel;

/// Decisions every this many steps (50 ms).
pub const DECIDE_EVERY_STEPS: u64 = 5;
/// Self-reports every this many steps (100 ms).
pub const REPORT_EVERY_STEPS: u64 = 10;

/// A progress report, about every 100 ms.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Simulated time [s].
    pub elapsed_s: f64,
    /// Planned length [s].
    pub duration_s: f64,
    /// The first car's speed [m/s].
    pub speed_mps: f64,
    /// Warnings and braking events so far.
    pub events: usize,
    /// The latest event, as text.
    pub last_event: Option<String>,
    /// Roadside frames received by the cars.
    pub frames_received: u64,
    /// How far the loop is behind the wall clock [s].
    pub behind_s: f64,
}

/// What one car lived through.
#[derive(Clone, Debug, Serialize)]
pub struct CarOutcome {
    /// V2X id.
    pub v2x_id: String,
    /// Actor id in the world (and in the ground truth).
    pub actor_id: u32,
    /// Whether it used V2X.
    pub v2x: bool,
    /// Its warning and braking events.
    pub events: Vec<AdasEvent>,
    /// First warning [s after start].
    pub first_warning_s: Option<f64>,
    /// First braking [s after start].
    pub first_brake_s: Option<f64>,
    /// Hardest deceleration [m/s²].
    pub max_decel_mps2: f64,
    /// Whether its footprint touched another road user's.
    pub collided: bool,
    /// The scenario's hazards as this car met them.
    pub hazards: Vec<HazardOutcome>,
    /// The V2X link.
    pub link: LinkSummary,
}

/// One hazard of the scenario as a car met it.
#[derive(Clone, Debug, Serialize)]
pub struct HazardOutcome {
    /// Actor id.
    pub actor_id: u32,
    /// Class.
    pub class: ObjectClass,
    /// Closest approach while it was in the car's path (ahead of the car's rear, within half a
    /// metre of the car's width): smallest clear distance between the two footprints [m] (0:
    /// contact); `None` if it never was in the path.
    pub min_gap_m: Option<f64>,
    /// When [s after start].
    pub closest_at_s: Option<f64>,
    /// Smallest clear distance at any time, in the path or not [m].
    pub min_gap_anywhere_m: f64,
    /// Since when the car's own sensor had been tracking it at the closest approach [s after
    /// start] (the start of its unbroken run of sightings then).
    pub first_seen_onboard_s: Option<f64>,
    /// Since when the car had been receiving it from the RSU at the closest approach [s after
    /// start].
    pub first_seen_rsu_s: Option<f64>,
    /// The car's first warning caused by it [s after start].
    pub first_warning_s: Option<f64>,
    /// The car's first braking for it [s after start].
    pub first_brake_s: Option<f64>,
    /// How much earlier the RSU gave it than the car's own sensor (or than the closest approach,
    /// if the sensor never saw it) [s].
    pub v2x_lead_time_s: Option<f64>,
    /// Current unbroken runs of sightings: since when, by the onboard sensor and by the RSU.
    #[serde(skip)]
    streaks: [Option<f64>; 2],
}

/// Latency and loss on a car's V2X link.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LinkSummary {
    /// Frames received.
    pub frames: u64,
    /// Frames lost (sequence gaps) or abandoned by the RSU for a newer one.
    pub lost: u64,
    /// Capture-to-receipt latency percentiles [ms].
    pub latency_ms: Distribution,
    /// Age of the newest RSU information when the car used it [ms].
    pub info_age_ms: Distribution,
}

/// What a car perceived and asked for at one decision.
#[derive(Clone, Debug)]
pub struct CarSample {
    /// When.
    pub time: Timestamp,
    /// Which car.
    pub v2x_id: String,
    /// Its speed [m/s].
    pub speed_mps: f64,
    /// Its acceleration bound [m/s²].
    pub accel_cmd_mps2: Option<f64>,
    /// What it perceived.
    pub objects: Vec<SiteObject>,
}

/// Everything a run produced.
pub struct RunOutcome {
    /// When it started.
    pub start: Timestamp,
    /// Length [s].
    pub duration_s: f64,
    /// The cars.
    pub cars: Vec<CarOutcome>,
    /// Ground truth at 20 Hz.
    pub truth: Vec<GroundTruthFrame>,
    /// The sensor frames sent to the RSU.
    pub sensor_frames: Vec<SensorFrame>,
    /// The cars' self-reports sent to the RSU.
    pub vehicle_states: Vec<VehicleState>,
    /// Every roadside frame a car using V2X received, with its receipt time, in the order the cars took them.
    pub received: Vec<Receipt>,
    /// The cars' decisions at 20 Hz.
    pub samples: Vec<CarSample>,
    /// Counts.
    pub summary: RunSummary,
    /// Sensor frames that could not be sent.
    pub send_errors: u64,
    /// Most the loop fell behind the wall clock [s].
    pub max_behind_s: f64,
}

/// A roadside frame a car received.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    /// When it arrived.
    pub receipt: Timestamp,
    /// The frame as the car decoded it, with the car's id (and subscription radius, when the
    /// caller knows it).
    pub received: Received,
}

struct CarRun {
    car: ConnectedCar,
    hazards: Vec<HazardOutcome>,
    collided: bool,
    max_decel_mps2: f64,
}

/// A run in progress.
pub struct CoSim {
    sim: Simulation,
    cars: Vec<CarRun>,
    start: Timestamp,
    total_steps: u64,
    buildings: Vec<Prism>,
    env: Environment,
    out: RunOutcome,
    status: Status,
}

impl CoSim {
    /// `scenario` with `seed` for `duration_s`, starting at `start`; every connected vehicle of
    /// the scenario is a car with `car` (fails when a car's tracker cannot be set up).
    pub fn new(
        mut scenario: Scenario,
        seed: u64,
        site: &SiteModel,
        car: &CarConfig,
        duration_s: f64,
        start: Timestamp,
    ) -> Result<CoSim, rsu_fusion::FusionError> {
        scenario.world.set_start_time(start);
        let mut cars = Vec::new();
        for truth in scenario.world.truth().iter().filter(|t| t.v2x_id.is_some()) {
            let id = truth.v2x_id.clone().unwrap_or_default();
            let hazards = scenario
                .hazards
                .iter()
                .filter_map(|h| scenario.world.actor(*h))
                .map(|a| HazardOutcome {
                    actor_id: a.id,
                    class: a.class,
                    min_gap_m: None,
                    closest_at_s: None,
                    min_gap_anywhere_m: f64::INFINITY,
                    first_seen_onboard_s: None,
                    first_seen_rsu_s: None,
                    first_warning_s: None,
                    first_brake_s: None,
                    v2x_lead_time_s: None,
                    streaks: [None, None],
                })
                .collect();
            let mut connected = ConnectedCar::new(&id, truth.id, site, seed, car.clone())?;
            connected.set_spoof(scenario.spoof_of(&id));
            cars.push(CarRun { car: connected, hazards, collided: false, max_decel_mps2: 0.0 });
        }
        let env = scenario.environment;
        let mut sim = Simulation::new(scenario, seed);
        sim.self_reports = false;
        let total_steps = (duration_s * 1e9 / STEP_NS as f64).round() as u64;
        Ok(CoSim {
            sim,
            cars,
            start,
            total_steps,
            buildings: site.buildings.clone(),
            env,
            out: RunOutcome {
                start,
                duration_s,
                cars: Vec::new(),
                truth: Vec::new(),
                sensor_frames: Vec::new(),
                vehicle_states: Vec::new(),
                received: Vec::new(),
                samples: Vec::new(),
                summary: RunSummary::default(),
                send_errors: 0,
                max_behind_s: 0.0,
            },
            status: Status { duration_s, ..Status::default() },
        })
    }

    /// Moves the start to `start` (before the first step only: later it does nothing).
    pub fn restart_at(&mut self, start: Timestamp) {
        if self.steps() == 0 {
            self.sim.scenario.world.set_start_time(start);
            self.start = start;
            self.out.start = start;
        }
    }

    /// The cars' V2X ids, in the order [`CoSim::step`] indexes them.
    pub fn car_ids(&self) -> Vec<String> {
        self.cars.iter().map(|c| c.car.v2x_id.clone()).collect()
    }

    /// The current step (0 at the start).
    pub fn steps(&self) -> u64 {
        self.sim.scenario.world.steps()
    }

    /// The current simulated time.
    pub fn now(&self) -> Timestamp {
        self.sim.scenario.world.time()
    }

    /// The site's signal controller state now, as controller `controller_id` sends it
    /// ([`crate::signals::controller_state`]).
    pub fn signal_state(&self, controller_id: &str) -> v2x_proto::domain::SignalControllerState {
        let world = &self.sim.scenario.world;
        crate::signals::controller_state(&world.site().signal_plan, world.cycle_time_s(), world.time(), controller_id)
    }

    /// Whether the last step has been taken.
    pub fn finished(&self) -> bool {
        self.steps() > self.total_steps
    }

    /// The latest status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Notes how far behind the wall clock the loop is [s].
    pub fn note_behind(&mut self, behind_s: f64) {
        self.out.max_behind_s = self.out.max_behind_s.max(behind_s);
        self.status.behind_s = behind_s;
    }

    /// Takes a roadside frame that car `index` received at `receipt` (a car without V2X takes
    /// none).
    pub fn receive(&mut self, index: usize, frame: RoadsideFrame, receipt: Timestamp) {
        if let Some(c) = self.cars.get_mut(index).filter(|c| c.car.config.use_v2x) {
            let vehicle_id = c.car.v2x_id.clone();
            self.out.received.push(Receipt {
                receipt,
                received: Received { vehicle_id, subscription_radius_m: None, frame: frame.clone() },
            });
            c.car.on_roadside_frame(frame, receipt);
            self.status.frames_received += 1;
        }
    }

    /// One 10 ms step: `sensor_out` gets the sensor frames arriving now (sent on to the RSU),
    /// `state_out` the cars' self-reports (car index, state); then the cars sense and decide
    /// and the world advances. Does nothing once [`CoSim::finished`].
    pub fn step(&mut self, mut sensor_out: impl FnMut(&SensorFrame), mut state_out: impl FnMut(usize, &VehicleState)) {
        if self.finished() {
            return;
        }
        let step = self.steps();
        let last = step == self.total_steps;
        let out = &mut self.out;
        let emitted = self.sim.emit_step(last, &mut out.summary, &mut |output| {
            match output {
                Output::Sensor(frame) => {
                    sensor_out(&frame);
                    out.sensor_frames.push(frame);
                }
                Output::Truth(t) => out.truth.push(t),
                Output::Vehicle(_) => {}
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let truth = match emitted {
            Ok(truth) => truth,
            Err(never) => match never {},
        };
        let world = &mut self.sim.scenario.world;
        let (now, elapsed_s) = (world.time(), world.elapsed_s());
        for (index, c) in self.cars.iter_mut().enumerate() {
            let Some(ego) = truth.iter().find(|t| t.id == c.car.actor_id) else { continue };
            c.car.sense(self.start, elapsed_s, ego, &truth, &self.buildings, &self.env);
            c.max_decel_mps2 = c.max_decel_mps2.max(-ego.accel_mps2);
            let ego_from_site = nalgebra::Rotation2::new(-ego.yaw_rad);
            for h in &mut c.hazards {
                let Some(ht) = truth.iter().find(|t| t.id == h.actor_id) else { continue };
                let gap = ego.footprint().gap_m(&ht.footprint());
                h.min_gap_anywhere_m = h.min_gap_anywhere_m.min(gap);
                let rel = ego_from_site * (ht.center - ego.center).xy();
                let half_extent = 0.5 * ht.size.length_m.max(ht.size.width_m);
                let in_path =
                    rel.x > -0.5 * ego.size.length_m && rel.y.abs() < 0.5 * ego.size.width_m + half_extent + 0.5;
                if in_path && h.min_gap_m.is_none_or(|g| gap < g) {
                    h.min_gap_m = Some(gap);
                    h.closest_at_s = Some(elapsed_s);
                    h.first_seen_onboard_s = h.streaks[0];
                    h.first_seen_rsu_s = h.streaks[1];
                }
            }
            if step.is_multiple_of(DECIDE_EVERY_STEPS) {
                let decision = c.car.decide(now, elapsed_s, ego, world.route(c.car.actor_id));
                let _ = world.set_assist(c.car.actor_id, decision.accel_mps2);
                for e in &decision.events {
                    self.status.last_event = Some(describe(&c.car.v2x_id, e));
                }
                for h in &mut c.hazards {
                    let Some(ht) = truth.iter().find(|t| t.id == h.actor_id) else { continue };
                    // The same kind of road user, close to where it really is.
                    let centre = ht.footprint().center;
                    let gate = 1.5 + 0.5 * ht.size.length_m;
                    let near = |class: ObjectClass, at: Point2<f64>| {
                        class.is_vru() == ht.class.is_vru() && (at - centre).norm() <= gate
                    };
                    let seen = |onboard: bool| {
                        c.car.perceived.iter().any(|o| {
                            let by = if onboard { o.perceived.seen_by.onboard } else { o.perceived.seen_by.rsu };
                            by && near(o.perceived.class, o.position_m)
                        })
                    };
                    for (streak, onboard) in h.streaks.iter_mut().zip([true, false]) {
                        *streak = if seen(onboard) { Some(streak.unwrap_or(elapsed_s)) } else { None };
                    }
                    let (sin, cos) = ego.yaw_rad.sin_cos();
                    for e in &decision.events {
                        let Some(cause) = &e.cause else { continue };
                        let [x, y] = cause.position_m;
                        let at = Point2::new(ego.center.x + x * cos - y * sin, ego.center.y + x * sin + y * cos);
                        if !near(cause.class, at) {
                            continue;
                        }
                        match e.kind {
                            EventKind::Warning => {
                                h.first_warning_s.get_or_insert(e.time_s);
                            }
                            EventKind::BrakeStart => {
                                h.first_brake_s.get_or_insert(e.time_s);
                            }
                            _ => {}
                        }
                    }
                }
                self.out.samples.push(CarSample {
                    time: now,
                    v2x_id: c.car.v2x_id.clone(),
                    speed_mps: ego.speed_mps,
                    accel_cmd_mps2: decision.accel_mps2,
                    objects: c.car.perceived.clone(),
                });
            }
            if step.is_multiple_of(REPORT_EVERY_STEPS) {
                let state = c.car.report(world.site(), ego, now, elapsed_s);
                state_out(index, &state);
                self.out.vehicle_states.push(state);
            }
        }
        if step.is_multiple_of(DECIDE_EVERY_STEPS) {
            for (a, b) in world.contacts() {
                for c in self.cars.iter_mut().filter(|c| c.car.actor_id == a || c.car.actor_id == b) {
                    c.collided = true;
                }
            }
        }
        self.status.elapsed_s = elapsed_s;
        self.status.events = self.cars.iter().map(|c| c.car.events.len()).sum();
        self.status.speed_mps =
            self.cars.first().and_then(|c| truth.iter().find(|t| t.id == c.car.actor_id)).map_or(0.0, |t| t.speed_mps);
        // After the last step the world is one step past the end: `finished` from then on.
        world.step();
    }

    /// The outcome; `abandoned` gives, per car index, the frames the RSU abandoned for newer
    /// ones (counted as lost), and `send_errors` the sensor frames that could not be sent.
    pub fn finish(mut self, abandoned: impl Fn(usize) -> u64, send_errors: u64) -> RunOutcome {
        self.out.send_errors = send_errors;
        for (i, c) in self.cars.into_iter().enumerate() {
            self.out.cars.push(car_outcome(c, abandoned(i)));
        }
        self.out
    }
}

/// Broadcast-to-receipt delay of the in-process link of [`run_offline`] [s].
pub const OFFLINE_LINK_S: f64 = 0.03;

/// Runs scenario `name` without a network: the roadside sensors feed an in-process fusion core
/// (the RSU's, with its default configuration) that broadcasts at 10 Hz, and every frame reaches
/// every car [`OFFLINE_LINK_S`] later. Deterministic: the same arguments give the same outcome.
pub fn run_offline(
    site: &std::sync::Arc<SiteModel>,
    name: &str,
    seed: u64,
    duration_s: f64,
    car: &CarConfig,
) -> Result<RunOutcome, OfflineError> {
    run_offline_observed(site, name, seed, duration_s, car, |_, _| {})
}

/// [`run_offline`], showing `observe` the RSU's fusion core with every roadside frame it makes
/// (before the frame goes out), for tests that judge the RSU itself.
pub fn run_offline_observed(
    site: &std::sync::Arc<SiteModel>,
    name: &str,
    seed: u64,
    duration_s: f64,
    car: &CarConfig,
    mut observe: impl FnMut(&rsu_fusion::Fusion, &RoadsideFrame),
) -> Result<RunOutcome, OfflineError> {
    let scenario = crate::scenario::build(name, site.clone(), seed)?;
    let start = scenario.world.start_time();
    let mut cosim = CoSim::new(scenario, seed, site, car, duration_s, start)?;
    let mut rsu = rsu_fusion::Fusion::new(site.config.clone(), rsu_fusion::FusionConfig::default())?;
    let mut link: std::collections::VecDeque<(Timestamp, RoadsideFrame)> = std::collections::VecDeque::new();
    let cars = cosim.car_ids().len();
    while !cosim.finished() {
        let now = cosim.now();
        while link.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, frame)) = link.pop_front() {
                for index in 0..cars {
                    cosim.receive(index, frame.clone(), now);
                }
            }
        }
        let (mut frames, mut states) = (Vec::new(), Vec::new());
        cosim.step(|f| frames.push(f.clone()), |_, s| states.push(s.clone()));
        for f in frames {
            rsu.handle_sensor_frame(now, f);
        }
        for s in &states {
            rsu.handle_vehicle_state(now, s);
        }
        if cosim.steps().is_multiple_of(10) {
            let frame = rsu.roadside_frame(now);
            observe(&rsu, &frame);
            link.push_back((now.add_secs(OFFLINE_LINK_S), frame));
        }
    }
    Ok(cosim.finish(|_| 0, 0))
}

/// Why an offline run could not start.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The scenario could not be built.
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A tracker (a car's or the RSU's) could not be set up.
    #[error(transparent)]
    Fusion(#[from] rsu_fusion::FusionError),
}

fn car_outcome(c: CarRun, abandoned: u64) -> CarOutcome {
    let events = c.car.events.clone();
    let first = |pred: &dyn Fn(&AdasEvent) -> bool| events.iter().find(|e| pred(e)).map(|e| e.time_s);
    let link = &c.car.link;
    let hazards = c
        .hazards
        .into_iter()
        .map(|mut h| {
            h.v2x_lead_time_s =
                h.first_seen_rsu_s.and_then(|r| h.first_seen_onboard_s.or(h.closest_at_s).map(|until| until - r));
            h
        })
        .collect();
    CarOutcome {
        v2x_id: c.car.v2x_id.clone(),
        actor_id: c.car.actor_id,
        v2x: c.car.config.use_v2x,
        first_warning_s: first(&|e| e.kind == EventKind::Warning),
        first_brake_s: first(&|e| e.kind == EventKind::BrakeStart),
        max_decel_mps2: c.max_decel_mps2,
        collided: c.collided,
        hazards,
        link: LinkSummary {
            frames: link.frames,
            lost: link.lost + abandoned,
            latency_ms: Distribution::of(&link.capture_to_receipt_s.iter().map(|s| s * 1e3).collect::<Vec<_>>()),
            info_age_ms: Distribution::of(&link.info_age_s.iter().map(|s| s * 1e3).collect::<Vec<_>>()),
        },
        events,
    }
}

/// One line for an event.
pub fn describe(v2x_id: &str, e: &AdasEvent) -> String {
    let what = match (e.kind, e.function) {
        (EventKind::Warning, f) => format!("{f} warning"),
        (EventKind::WarningEnd, f) => format!("{f} warning off"),
        (EventKind::BrakeStart, Function::Aeb) => "AEB braking".to_owned(),
        (EventKind::BrakeStart, f) => format!("driver brakes ({f})"),
        (EventKind::BrakeEnd, Function::Aeb) => "AEB released".to_owned(),
        (EventKind::BrakeEnd, _) => "driver releases the brake".to_owned(),
        (EventKind::AccFollow, _) => "ACC following".to_owned(),
    };
    let mut line = format!("t={:.1} s {v2x_id}: {what}", e.time_s);
    if let Some(c) = &e.cause {
        line.push_str(&format!(" for a {} seen by {}", c.class, c.seen_by));
    }
    if let Some(ttc) = e.ttc_s {
        line.push_str(&format!(", TTC {ttc:.1} s"));
    }
    if let Some(d) = e.decel_mps2 {
        line.push_str(&format!(", {d:.1} m/s²"));
    }
    line
}
