//! The world: site, signal plan, actors, spawners and scripted events, advanced in fixed time
//! steps. Each planning tick every driver finds what it must react to (the nearest obstacle in
//! its corridor, a red stop line, a scripted stop) and every walker whether it may cross; between
//! ticks the actors integrate their own kinematics. Randomness comes from one seeded ChaCha
//! stream, so a run is a pure function of its scenario and seed.

use std::sync::Arc;

use nalgebra::{Point2, Point3, Vector2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};
use rsu_fusion::{BoxSize, ObjectClass, Timestamp};

use crate::actors::{Actor, Bicycle, Driver, DriverParams, Kinematics, Motion, Walker};
use crate::sensors::occlusion::line_blocked;
use rsu_site::geometry::{OrientedBox, Prism, wrap_angle};
use rsu_site::model::{Path, SiteModel, Turn};
use rsu_site::signals::{LightPhase, LightState};

/// Simulation time step [ns] (10 ms).
pub const STEP_NS: i64 = 10_000_000;
/// Planning period in steps (50 ms).
const PLAN_EVERY_STEPS: u64 = 5;
/// Where a permissive left turner waits, past its stop line [m].
const LEFT_TURN_YIELD_AFTER_STOP_M: f64 = 6.0;
/// Oncoming traffic closer than this (time to the conflict point) makes a left turner wait [s].
const LEFT_TURN_GAP_S: f64 = 4.5;
/// Oncoming vehicles nearer than this to the conflict point, even standing, make it wait [m].
const LEFT_TURN_CLEAR_M: f64 = 25.0;

/// One actor's true state at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct ActorTruth {
    /// Actor id.
    pub id: u32,
    /// True class.
    pub class: ObjectClass,
    /// Box centre [m], site frame.
    pub center: Point3<f64>,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Speed along the heading [m/s].
    pub speed_mps: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Front wheel angle [rad] (0 for walkers and parked vehicles).
    pub steer_rad: f64,
    /// Box size [m].
    pub size: BoxSize,
    /// V2X id of a connected vehicle.
    pub v2x_id: Option<String>,
}

impl ActorTruth {
    /// A standing actor of `class` (its typical size) at (`x`, `y`) [m] on flat ground, facing
    /// `yaw_rad`.
    pub fn standing(id: u32, class: ObjectClass, x: f64, y: f64, yaw_rad: f64) -> ActorTruth {
        let size = class.typical_size();
        ActorTruth {
            id,
            class,
            center: Point3::new(x, y, 0.5 * size.height_m),
            yaw_rad,
            speed_mps: 0.0,
            yaw_rate_rps: 0.0,
            accel_mps2: 0.0,
            steer_rad: 0.0,
            size,
            v2x_id: None,
        }
    }

    /// Ground footprint.
    pub fn footprint(&self) -> OrientedBox {
        OrientedBox {
            center: Point2::new(self.center.x, self.center.y),
            yaw_rad: self.yaw_rad,
            length_m: self.size.length_m,
            width_m: self.size.width_m,
        }
    }

    /// This state moved forward by `dt_s` at constant speed and yaw rate (used to sample the
    /// world between steps, at a sensor's exact capture instant).
    pub fn extrapolated(&self, dt_s: f64) -> ActorTruth {
        let yaw_mid = self.yaw_rad + 0.5 * self.yaw_rate_rps * dt_s;
        let d = self.speed_mps * dt_s;
        ActorTruth {
            center: Point3::new(self.center.x + d * yaw_mid.cos(), self.center.y + d * yaw_mid.sin(), self.center.z),
            yaw_rad: wrap_angle(self.yaw_rad + self.yaw_rate_rps * dt_s),
            ..self.clone()
        }
    }

    /// The actor as an occluding prism standing on the ground.
    pub fn prism(&self) -> Prism {
        let base = self.center.z - 0.5 * self.size.height_m;
        Prism::from_box(Some(self.id), &self.footprint(), base, base + self.size.height_m)
    }
}

/// A scripted change to one actor.
#[derive(Clone, Debug)]
pub enum Action {
    /// Start moving (vehicles and walkers created held).
    Release,
    /// New desired speed [m/s] (vehicles) or walking speed (walkers).
    SetSpeed(f64),
    /// Follow another path from the nearest point (lane change, reroute).
    SwitchPath(Arc<Path>),
    /// Stop at this arc length of the current path [m] and stay.
    StopAt(f64),
    /// Forget a scripted stop.
    ClearStop,
    /// Ignore lights from now on (red-light runner, emergency vehicle).
    IgnoreSignals,
    /// New driver parameters (a distracted or tailgating driver).
    SetDriver(DriverParams),
}

/// What to add: a vehicle on a path.
#[derive(Clone, Debug)]
pub struct VehicleSpec {
    /// Class.
    pub class: ObjectClass,
    /// Path.
    pub path: Arc<Path>,
    /// Start position along the path [m].
    pub s_m: f64,
    /// Initial speed [m/s].
    pub speed_mps: f64,
    /// Desired speed [m/s].
    pub desired_speed_mps: f64,
    /// V2X id, for connected vehicles.
    pub v2x_id: Option<String>,
    /// Stops at lights.
    pub obeys_signals: bool,
    /// Waits for a [`Action::Release`].
    pub held: bool,
}

impl VehicleSpec {
    /// A vehicle of `class` at `s_m` on `path`, at the path's speed limit (or 10 m/s).
    pub fn new(class: ObjectClass, path: Arc<Path>, s_m: f64) -> Self {
        let v = path.speed_limit_mps.unwrap_or(10.0);
        VehicleSpec {
            class,
            path,
            s_m,
            speed_mps: v,
            desired_speed_mps: v,
            v2x_id: None,
            obeys_signals: true,
            held: false,
        }
    }

    /// With initial and desired speed [m/s].
    pub fn speed(mut self, speed_mps: f64) -> Self {
        self.speed_mps = speed_mps;
        self.desired_speed_mps = speed_mps;
        self
    }

    /// As a connected vehicle with this V2X id.
    pub fn connected(mut self, v2x_id: impl Into<String>) -> Self {
        self.v2x_id = Some(v2x_id.into());
        self
    }

    /// Standing until released.
    pub fn held(mut self) -> Self {
        self.held = true;
        self.speed_mps = 0.0;
        self
    }
}

/// Keeps adding actors at a path's start while there is room.
#[derive(Clone, Debug)]
pub struct Spawner {
    /// Paths to choose from (uniformly).
    pub paths: Vec<Arc<Path>>,
    /// Classes with weights.
    pub classes: Vec<(ObjectClass, f64)>,
    /// Mean time between arrivals [s] (exponential).
    pub mean_interval_s: f64,
    /// Upper bound on live actors in the whole world.
    pub max_actors: usize,
    /// Next arrival [s after start].
    pub next_at_s: f64,
}

/// A scripted event.
#[derive(Clone, Debug)]
struct ScriptedEvent {
    at_step: u64,
    actor: u32,
    action: Action,
}

/// The simulated world.
#[derive(Clone, Debug)]
pub struct World {
    site: Arc<SiteModel>,
    start_time: Timestamp,
    steps: u64,
    /// Seconds into the signal cycle at the start of the run [s].
    signal_offset_s: f64,
    actors: Vec<Actor>,
    next_id: u32,
    events: Vec<ScriptedEvent>,
    next_event: usize,
    spawners: Vec<Spawner>,
    rng: ChaCha8Rng,
}

/// An actor id that is not in the world.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("no actor with id {0}")]
pub struct UnknownActor(pub u32);

impl World {
    /// An empty world over `site` starting at `start_time`, with the site's parked vehicles.
    pub fn new(site: Arc<SiteModel>, start_time: Timestamp, seed: u64) -> Self {
        let mut world = World {
            site,
            start_time,
            steps: 0,
            signal_offset_s: 0.0,
            actors: Vec::new(),
            next_id: 1,
            events: Vec::new(),
            next_event: 0,
            spawners: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        };
        let parked: Vec<_> = world.site.parked.clone();
        for p in parked {
            let class = p.class;
            let size = BoxSize::new(p.footprint.length_m, p.footprint.width_m, p.height_m);
            world.push(class, size, None, Kinematics::at(p.footprint.center, p.footprint.yaw_rad), Motion::Parked);
        }
        world
    }

    /// The site.
    pub fn site(&self) -> &Arc<SiteModel> {
        &self.site
    }

    /// The world's random generator (for scenario set-up).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// Current time.
    pub fn time(&self) -> Timestamp {
        self.start_time.add_nanos(self.steps as i64 * STEP_NS)
    }

    /// Start time.
    pub fn start_time(&self) -> Timestamp {
        self.start_time
    }

    /// Moves the whole run to start at `start_time` (a live run starts at the wall clock).
    pub fn set_start_time(&mut self, start_time: Timestamp) {
        self.start_time = start_time;
    }

    /// Sets (or with `None` clears) the acceleration bound a driver-assistance system puts on
    /// vehicle `actor` [m/s²].
    pub fn set_assist(&mut self, actor: u32, accel_mps2: Option<f64>) -> Result<(), UnknownActor> {
        let a = self.actors.iter_mut().find(|a| a.id == actor).ok_or(UnknownActor(actor))?;
        if let Some(d) = a.driver_mut() {
            d.assist_accel_mps2 = accel_mps2.filter(|a| a.is_finite());
        }
        Ok(())
    }

    /// The path a vehicle follows, its progress along it [m] (its route, as its navigation knows
    /// it) and its driver's desired speed [m/s]; `None` for walkers, parked vehicles and unknown
    /// ids.
    pub fn route(&self, actor: u32) -> Option<(Arc<Path>, f64, f64)> {
        match &self.actor(actor)?.motion {
            Motion::Vehicle(d) => Some((d.path.clone(), d.s_m, d.desired_speed_mps)),
            _ => None,
        }
    }

    /// Seconds since the start [s].
    pub fn elapsed_s(&self) -> f64 {
        self.steps as f64 * STEP_NS as f64 * 1e-9
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets where in the signal cycle the run starts [s].
    pub fn set_signal_offset(&mut self, offset_s: f64) {
        self.signal_offset_s = offset_s;
    }

    /// The actors alive now.
    pub fn actors(&self) -> &[Actor] {
        &self.actors
    }

    /// The actor with this id.
    pub fn actor(&self, id: u32) -> Option<&Actor> {
        self.actors.iter().find(|a| a.id == id)
    }

    /// Signal states now.
    pub fn lights(&self) -> Vec<LightState> {
        self.site.signal_plan.states(self.cycle_time_s())
    }

    /// Where in the signal cycle the run is now [s] (not wrapped at the cycle length).
    pub fn cycle_time_s(&self) -> f64 {
        self.elapsed_s() + self.signal_offset_s
    }

    /// The phase of one signal group now (`Green` for unknown groups).
    pub fn light_phase(&self, signal_id: &str) -> LightPhase {
        self.site
            .signal_plan
            .state(signal_id, self.elapsed_s() + self.signal_offset_s)
            .map_or(LightPhase::Green, |s| s.phase)
    }

    fn push(
        &mut self,
        class: ObjectClass,
        size: BoxSize,
        v2x_id: Option<String>,
        state: Kinematics,
        motion: Motion,
    ) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.actors.push(Actor { id, class, size, v2x_id, state, motion });
        id
    }

    /// Adds a vehicle; returns its id.
    pub fn add_vehicle(&mut self, spec: VehicleSpec) -> u32 {
        let size = spec.class.typical_size();
        let pose = spec.path.line.pose_at(spec.s_m);
        let mut state = Kinematics::at(pose.position, pose.heading_rad);
        state.speed_mps = spec.speed_mps;
        let driver = Driver {
            s_m: spec.s_m,
            desired_speed_mps: spec.desired_speed_mps,
            params: DriverParams::for_class(spec.class),
            bicycle: Bicycle::for_size(&size),
            obeys_signals: spec.obeys_signals,
            held: spec.held,
            stop_at_m: None,
            leader: None,
            allowed_speed_mps: f64::INFINITY,
            noticed: Vec::new(),
            assist_accel_mps2: None,
            path: spec.path,
        };
        self.push(spec.class, size, spec.v2x_id, state, Motion::Vehicle(Box::new(driver)))
    }

    /// Adds a pedestrian on `path` at `s_m` walking at `speed_mps`; returns its id.
    pub fn add_walker(&mut self, path: Arc<Path>, s_m: f64, speed_mps: f64, obeys_signals: bool, held: bool) -> u32 {
        let offset_m = self.rng.random_range(-0.6..0.6);
        let pose = path.line.pose_at(s_m);
        let walker = Walker {
            path,
            s_m,
            walk_speed_mps: speed_mps,
            offset_m,
            obeys_signals,
            held,
            may_cross: false,
            blocked: false,
        };
        let size = BoxSize::new(0.5, 0.5, self.rng.random_range(1.55..1.85));
        self.push(
            ObjectClass::Pedestrian,
            size,
            None,
            Kinematics::at(pose.position, pose.heading_rad),
            Motion::Walker(walker),
        )
    }

    /// Adds a static object (obstacle, broken-down vehicle) at `position` facing `yaw_rad`.
    pub fn add_static(&mut self, class: ObjectClass, position: Point2<f64>, yaw_rad: f64) -> u32 {
        self.push(class, class.typical_size(), None, Kinematics::at(position, yaw_rad), Motion::Parked)
    }

    /// Schedules `action` for `actor` at `at_s` seconds after the start.
    pub fn schedule(&mut self, at_s: f64, actor: u32, action: Action) {
        let at_step = (at_s * 1e9 / STEP_NS as f64).round().max(0.0) as u64;
        let index = self.events.partition_point(|e| e.at_step <= at_step);
        self.events.insert(index.max(self.next_event), ScriptedEvent { at_step, actor, action });
    }

    /// Adds a spawner.
    pub fn add_spawner(&mut self, spawner: Spawner) {
        self.spawners.push(spawner);
    }

    /// Caps the world at `max_actors` live actors: removes actors for which `keep` is false,
    /// chosen at random (from the world's random stream), until at most `max_actors` remain (or
    /// only kept ones do), and stops every spawner at `max_actors`. Scripted events for removed
    /// actors become moot.
    pub fn limit_actors(&mut self, max_actors: usize, keep: impl Fn(&Actor) -> bool) {
        let mut removable: Vec<usize> = (0..self.actors.len()).filter(|&i| !keep(&self.actors[i])).collect();
        let excess = self.actors.len().saturating_sub(max_actors).min(removable.len());
        let (chosen, _) = removable.partial_shuffle(&mut self.rng, excess);
        let mut removed = vec![false; self.actors.len()];
        for &i in chosen.iter() {
            removed[i] = true;
        }
        // `retain` visits the actors in order.
        let mut removed = removed.into_iter();
        self.actors.retain(|_| !removed.next().unwrap_or(false));
        for spawner in &mut self.spawners {
            spawner.max_actors = spawner.max_actors.min(max_actors);
        }
    }

    /// Applies an action now.
    pub fn apply(&mut self, actor: u32, action: Action) -> Result<(), UnknownActor> {
        let a = self.actors.iter_mut().find(|a| a.id == actor).ok_or(UnknownActor(actor))?;
        match (&mut a.motion, action) {
            (Motion::Vehicle(d), Action::Release) => d.held = false,
            (Motion::Walker(w), Action::Release) => w.held = false,
            (Motion::Vehicle(d), Action::SetSpeed(v)) => d.desired_speed_mps = v,
            (Motion::Walker(w), Action::SetSpeed(v)) => w.walk_speed_mps = v,
            (Motion::Vehicle(d), Action::SwitchPath(path)) => {
                let (s, _) = path.line.project(&a.state.position);
                d.s_m = s;
                d.path = path;
                d.stop_at_m = None;
            }
            (Motion::Walker(w), Action::SwitchPath(path)) => {
                let (s, _) = path.line.project(&a.state.position);
                w.s_m = s;
                w.path = path;
            }
            (Motion::Vehicle(d), Action::StopAt(s)) => d.stop_at_m = Some(s),
            (Motion::Vehicle(d), Action::ClearStop) => d.stop_at_m = None,
            (Motion::Vehicle(d), Action::IgnoreSignals) => d.obeys_signals = false,
            (Motion::Walker(w), Action::IgnoreSignals) => w.obeys_signals = false,
            (Motion::Vehicle(d), Action::SetDriver(p)) => d.params = p,
            _ => {}
        }
        Ok(())
    }

    /// Advances the world by one step ([`STEP_NS`]).
    pub fn step(&mut self) {
        while let Some(e) = self.events.get(self.next_event).filter(|e| e.at_step <= self.steps).cloned() {
            self.next_event += 1;
            // Events for actors that already left are moot.
            let _ = self.apply(e.actor, e.action);
        }
        self.run_spawners();
        if self.steps.is_multiple_of(PLAN_EVERY_STEPS) {
            self.plan();
        }
        let dt_s = STEP_NS as f64 * 1e-9;
        for a in &mut self.actors {
            match &mut a.motion {
                Motion::Parked => {}
                Motion::Vehicle(d) => d.step(&mut a.state, dt_s),
                Motion::Walker(w) => w.step(&mut a.state, dt_s),
            }
        }
        self.actors.retain(|a| match &a.motion {
            Motion::Parked => true,
            Motion::Vehicle(d) => !d.finished(),
            Motion::Walker(w) => !w.finished(),
        });
        self.steps += 1;
    }

    fn run_spawners(&mut self) {
        let now_s = self.elapsed_s();
        for i in 0..self.spawners.len() {
            if self.spawners[i].next_at_s > now_s || self.actors.len() >= self.spawners[i].max_actors {
                continue;
            }
            let sp = &self.spawners[i];
            let path = sp.paths[self.rng.random_range(0..sp.paths.len())].clone();
            let total: f64 = sp.classes.iter().map(|c| c.1).sum();
            let mut pick = self.rng.random_range(0.0..total);
            let mut class = sp.classes[0].0;
            for &(c, w) in &sp.classes {
                if pick < w {
                    class = c;
                    break;
                }
                pick -= w;
            }
            let start = path.line.pose_at(0.0).position;
            let room_m = self.actors.iter().map(|a| (a.state.position - start).norm()).fold(f64::INFINITY, f64::min);
            if room_m < 12.0 {
                continue;
            }
            let mean = sp.mean_interval_s.max(0.05);
            let gap_s = Exp::new(1.0 / mean).map_or(mean, |e| e.sample(&mut self.rng));
            self.spawners[i].next_at_s += gap_s;
            if class == ObjectClass::Pedestrian {
                let speed = self.walking_speed();
                let jaywalker = self.rng.random_bool(0.1);
                self.add_walker(path, 0.0, speed, !jaywalker, false);
            } else {
                let factor = Normal::new(1.0_f64, 0.08).map_or(1.0, |n| n.sample(&mut self.rng)).clamp(0.8, 1.2);
                let limit = path.speed_limit_mps.unwrap_or(10.0);
                let v = match class {
                    ObjectClass::Cyclist => 4.5 * factor,
                    _ => limit * factor,
                };
                // Enter no faster than allows stopping behind whoever is near the entry.
                let mut spec = VehicleSpec::new(class, path, 0.0).speed(v);
                spec.speed_mps = v.min((4.0 * (room_m - 10.0)).max(0.0).sqrt());
                self.add_vehicle(spec);
            }
        }
    }

    /// A random walking speed [m/s].
    pub fn walking_speed(&mut self) -> f64 {
        Normal::new(1.35_f64, 0.18).map_or(1.35, |n| n.sample(&mut self.rng)).clamp(0.8, 2.0)
    }

    /// Finds leaders, lights and speed limits for everyone.
    fn plan(&mut self) {
        let now_s = self.elapsed_s();
        let snapshot: Vec<Other> = self
            .actors
            .iter()
            .map(|a| Other {
                id: a.id,
                footprint: a.footprint(),
                speed_mps: a.state.speed_mps,
                yaw_rad: a.state.yaw_rad,
                parked: matches!(a.motion, Motion::Parked),
                vehicle: matches!(a.motion, Motion::Vehicle(_)),
                turning_left: matches!(&a.motion, Motion::Vehicle(d) if d.path.turn == Some(Turn::Left)),
            })
            .collect();
        let mut occluders: Vec<Prism> = self.site.buildings.clone();
        occluders.extend(self.actors.iter().map(|a| {
            let ground = self.site.config.ground.height_at(a.state.position.x, a.state.position.y);
            Prism::from_box(Some(a.id), &a.footprint(), ground, ground + a.size.height_m)
        }));
        let lights: Vec<LightState> = self.lights();
        let phase = |id: &str| lights.iter().find(|l| l.signal_id == id).map_or(LightPhase::Green, |l| l.phase);
        for a in &mut self.actors {
            let (id, state, size) = (a.id, a.state, a.size);
            match &mut a.motion {
                Motion::Parked => {}
                Motion::Walker(w) => {
                    w.may_cross = w.path.stop.as_ref().is_none_or(|s| phase(&s.signal_id) == LightPhase::Green);
                    // Pedestrians do not walk into a vehicle: wait while one is just ahead.
                    let step = Vector2::new(state.yaw_rad.cos(), state.yaw_rad.sin()) * WALKER_CLEARANCE_M;
                    let ahead = state.position + step;
                    w.blocked = snapshot.iter().any(|o| {
                        o.vehicle && (o.footprint.center - ahead).norm() < 8.0 && {
                            let mut grown = o.footprint;
                            grown.length_m += 1.0;
                            grown.width_m += 1.0;
                            grown.contains(&ahead)
                        }
                    });
                }
                Motion::Vehicle(d) => plan_driver(d, id, &state, &size, &snapshot, &occluders, now_s, &phase),
            }
        }
    }

    /// Pairs of actors whose footprints overlap now (a collision in the ground truth), ignoring
    /// pedestrians among themselves and parked vehicles among themselves.
    pub fn contacts(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (i, a) in self.actors.iter().enumerate() {
            for b in &self.actors[i + 1..] {
                let both = |f: fn(&Motion) -> bool| f(&a.motion) && f(&b.motion);
                if both(|m| matches!(m, Motion::Walker(_)))
                    || both(|m| matches!(m, Motion::Parked))
                    || (a.state.position - b.state.position).norm() > 16.0
                {
                    continue;
                }
                if a.footprint().overlaps(&b.footprint()) {
                    out.push((a.id, b.id));
                }
            }
        }
        out
    }

    /// Ground truth now.
    pub fn truth(&self) -> Vec<ActorTruth> {
        self.actors
            .iter()
            .map(|a| {
                let ground = self.site.config.ground.height_at(a.state.position.x, a.state.position.y);
                ActorTruth {
                    id: a.id,
                    class: a.class,
                    center: a.center(ground),
                    yaw_rad: a.state.yaw_rad,
                    speed_mps: a.state.speed_mps,
                    yaw_rate_rps: a.state.yaw_rate_rps,
                    accel_mps2: a.state.accel_mps2,
                    steer_rad: a.state.steer_rad,
                    size: a.size,
                    v2x_id: a.v2x_id.clone(),
                }
            })
            .collect()
    }
}

/// What a driver knows of another actor.
struct Other {
    id: u32,
    footprint: OrientedBox,
    speed_mps: f64,
    yaw_rad: f64,
    parked: bool,
    vehicle: bool,
    /// On a left-turn path: opposing left turners pass each other and do not wait for each other.
    turning_left: bool,
}

/// Look-ahead for crossing actors that are about to enter a driver's path [s].
const ANTICIPATION_S: f64 = 2.5;
/// How far ahead a pedestrian checks for vehicles in the way [m].
const WALKER_CLEARANCE_M: f64 = 1.0;
/// How far back along the path from a vehicle's front an obstacle still counts as ahead [m].
const FRONT_OVERLAP_M: f64 = 1.5;
/// Driver's eye height [m].
const EYE_HEIGHT_M: f64 = 1.2;

/// Where `footprint` lies relative to a driver's path: (first arc length, lateral extent).
fn footprint_on_path(d: &Driver, footprint: &OrientedBox, range_m: f64) -> (f64, (f64, f64)) {
    let mut s_min = f64::INFINITY;
    let mut lat = (f64::INFINITY, f64::NEG_INFINITY);
    for c in footprint.corners() {
        let (s, l) = d.path.line.project_within(&c, d.s_m - 1.0, d.s_m + range_m + 8.0);
        s_min = s_min.min(s);
        lat = (lat.0.min(l), lat.1.max(l));
    }
    (s_min, lat)
}

/// Sets a driver's leader and allowed speed from everyone's footprints and the lights.
#[allow(clippy::too_many_arguments)]
fn plan_driver(
    d: &mut Driver,
    id: u32,
    state: &Kinematics,
    size: &BoxSize,
    others: &[Other],
    occluders: &[Prism],
    now_s: f64,
    phase: &dyn Fn(&str) -> LightPhase,
) {
    let front_s = d.s_m + 0.5 * size.length_m;
    let range_m = (15.0 + 4.0 * state.speed_mps).min(90.0).min(d.params.sight_m);
    let corridor_m = 0.5 * size.width_m + 0.35;
    let mut leader: Option<(f64, f64)> = None;
    let consider = |gap: f64, v: f64, leader: &mut Option<(f64, f64)>| {
        if leader.is_none_or(|(g, _)| gap < g) {
            *leader = Some((gap, v));
        }
    };
    let eye = Point3::new(state.position.x, state.position.y, EYE_HEIGHT_M);
    let sees = |o: &Other| {
        let target = Point3::new(o.footprint.center.x, o.footprint.center.y, 0.8);
        !line_blocked(&eye, &target, occluders, [Some(id), Some(o.id)])
    };
    let heading = state.heading();
    let mut seen_now = Vec::new();
    for o in others {
        let to = o.footprint.center - state.position;
        let reach = 0.5 * o.footprint.length_m.max(o.footprint.width_m);
        if o.id == id || to.norm() > range_m + 8.0 || to.dot(&heading) < -(size.length_m + reach) {
            continue;
        }
        let inside = |(s, lat): (f64, (f64, f64))| {
            let gap = s - front_s;
            // Something at our front corners (a turn sweeping towards it) counts as right ahead.
            (lat.0 < corridor_m && lat.1 > -corridor_m && gap >= -FRONT_OVERLAP_M && gap <= range_m).then_some(gap)
        };
        let (s_now, lat_now) = footprint_on_path(d, &o.footprint, range_m);
        let mut gap = inside((s_now, lat_now));
        if gap.is_none() && !o.parked && o.speed_mps > 0.3 && s_now > front_s - FRONT_OVERLAP_M {
            // Ahead and about to cross into the path: anticipated (if seen, below).
            let mut ahead = o.footprint;
            ahead.center += Vector2::new(o.yaw_rad.cos(), o.yaw_rad.sin()) * (o.speed_mps * ANTICIPATION_S);
            gap = inside(footprint_on_path(d, &ahead, range_m));
        }
        // Drivers react only to what they can see from their seat.
        if gap.is_some() && !sees(o) {
            continue;
        }
        let Some(gap) = gap else { continue };
        let heading = d.path.line.pose_at(front_s + gap.max(0.0)).heading_rad;
        let along = o.speed_mps * (o.yaw_rad - heading).cos();
        // Traffic ahead moving our way and parked cars are anticipated; anything else (a
        // pedestrian stepping out, crossing traffic) is reacted to after the reaction time.
        let predictable = o.parked || (o.yaw_rad - heading).cos() > 0.7;
        let first_seen = d.noticed.iter().find(|(n, _)| *n == o.id).map_or(now_s, |n| n.1);
        seen_now.push((o.id, first_seen));
        if predictable || now_s - first_seen >= d.params.reaction_s {
            consider(gap.max(0.0), along.max(0.0), &mut leader);
        }
    }
    d.noticed = seen_now;
    if let (Some(Turn::Left), Some(stop)) = (d.path.turn, &d.path.stop) {
        // Permissive left turn: wait before the turn while oncoming traffic is close.
        let yield_s = stop.stop_at_m + LEFT_TURN_YIELD_AFTER_STOP_M;
        // At the end of green a waiting left turner clears the intersection (oncoming traffic
        // has red too).
        if front_s < yield_s + 0.5 && phase(&stop.signal_id) == LightPhase::Green {
            let my_heading = d.path.line.pose_at(yield_s).heading_rad;
            let conflict = d.path.line.pose_at(yield_s + 8.0).position;
            let oncoming = others.iter().any(|o| {
                let to = conflict - o.footprint.center;
                let dist = to.norm();
                o.vehicle
                    && !o.turning_left
                    && o.id != id
                    && (o.yaw_rad - my_heading).cos() < -0.7
                    && to.dot(&Vector2::new(o.yaw_rad.cos(), o.yaw_rad.sin())) > 0.0
                    && (dist < LEFT_TURN_CLEAR_M || (o.speed_mps > 1.0 && dist / o.speed_mps < LEFT_TURN_GAP_S))
                    && sees(o)
            });
            // Too close to stop: committed to the turn.
            let can_stop = yield_s - front_s > state.speed_mps.powi(2) / (2.0 * d.params.decel_max_mps2);
            if oncoming && can_stop {
                consider((yield_s - front_s).max(0.0), 0.0, &mut leader);
            }
        }
    }
    if let Some(stop) = &d.path.stop
        && d.obeys_signals
        && front_s < stop.stop_at_m + 0.5
    {
        let gap = stop.stop_at_m - front_s;
        let stop_needed = match phase(&stop.signal_id) {
            LightPhase::Red => true,
            LightPhase::Yellow => {
                gap > 0.0 && state.speed_mps.powi(2) / (2.0 * gap) <= 1.3 * d.params.decel_comfort_mps2
            }
            LightPhase::Green => false,
        };
        if stop_needed {
            consider(gap.max(0.0), 0.0, &mut leader);
        }
    }
    if let Some(stop_at) = d.stop_at_m {
        consider((stop_at - front_s).max(0.0), 0.0, &mut leader);
    }
    d.leader = leader;
    // Speed profile: curves ahead taken at the accepted lateral acceleration (the limit is in the
    // desired speed, which scripted vehicles such as emergency vehicles may set above it).
    let mut allowed = f64::INFINITY;
    let mut ahead = 0.0;
    while ahead <= 60.0 {
        let k = d.path.line.curvature_at(d.s_m + ahead);
        if k > 1e-4 {
            let v_curve = (d.params.lateral_accel_max_mps2 / k).sqrt();
            allowed = allowed.min((v_curve * v_curve + 2.0 * d.params.decel_comfort_mps2 * ahead).sqrt());
        }
        ahead += 3.0;
    }
    d.allowed_speed_mps = allowed.max(1.0);
}

/// The same-seed random source the sensor models and GNSS use: ChaCha8 on its own stream.
pub fn rng_stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// `seed` mixed with `name` (FNV-1a over its bytes): streams keyed by it differ between names
/// recorded with the same seed, e.g. the roadside sensors of two scenarios on one site.
pub fn named_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
