//! Driver-assistance functions of a simulated L2+ car, on the objects it perceives (its own
//! sensor's tracks merged with the RSU's participants), all in the ego frame: x forward, y left,
//! origin at the car's centre at the instant of the call.
//!
//! One threat model serves every warning: the car is moved along its route at its current speed
//! and every object along its velocity, both as boxes grown by a safety margin, over a horizon;
//! the first instant they overlap is the time to collision (TTC). What the threat is decides the
//! function that warns: a vulnerable road user gives a VRU collision warning (VRUCW), a vehicle
//! going our way a forward collision warning (FCW), any other vehicle (crossing, turning,
//! oncoming) an intersection collision warning (ICW). Then:
//!
//! - a warning starts when a threat's TTC falls below the function's threshold and ends when no
//!   threat has been below it for `warning_hold_s`;
//! - the driver, warned, brakes after the reaction time with the deceleration that stops the
//!   car `stop_margin_m` short of the collision point, and holds the brake while the threat lasts;
//! - automatic emergency braking (AEB) brakes at `aeb_decel_mps2` when a TTC falls below
//!   `aeb_ttc_s`, whoever has seen the object, and releases once the car stands and the threat
//!   has cleared;
//! - adaptive cruise (ACC) follows the nearest vehicle ahead on the route with a time gap.
//!
//! The output is an acceleration bound for the car and the events (start and end of each
//! warning and braking) with their time, TTC and cause: which object, seen by whom.

use std::fmt;

use nalgebra::{Point2, Vector2};
use rsu_fusion::ObjectClass;
use serde::{Deserialize, Serialize};

use crate::actors::{DriverParams, idm_accel};
use rsu_site::geometry::{OrientedBox, Polyline, wrap_angle};

/// A driver-assistance function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// Adaptive cruise control.
    Acc,
    /// Forward collision warning.
    Fcw,
    /// Vulnerable road user collision warning.
    Vrucw,
    /// Intersection collision warning.
    Icw,
    /// Automatic emergency braking.
    Aeb,
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Function::Acc => "ACC",
            Function::Fcw => "FCW",
            Function::Vrucw => "VRUCW",
            Function::Icw => "ICW",
            Function::Aeb => "AEB",
        })
    }
}

/// Who has perceived an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenBy {
    /// The car's own sensor.
    pub onboard: bool,
    /// The RSU (received over V2X).
    pub rsu: bool,
}

impl fmt::Display for SeenBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.onboard, self.rsu) {
            (true, true) => "onboard+rsu",
            (true, false) => "onboard",
            (false, true) => "rsu",
            (false, false) => "nobody",
        })
    }
}

/// An object the car perceives, in the ego frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perceived {
    /// The car's own track id, when its sensor has it.
    pub onboard_id: Option<u32>,
    /// The RSU's participant id, when the RSU reports it.
    pub rsu_id: Option<u32>,
    /// Class.
    pub class: ObjectClass,
    /// Centre [m], ego frame.
    pub position_m: Point2<f64>,
    /// Velocity over ground [m/s], ego frame axes.
    pub velocity_mps: Vector2<f64>,
    /// Heading relative to the car [rad].
    pub yaw_rad: f64,
    /// Length [m].
    pub length_m: f64,
    /// Width [m].
    pub width_m: f64,
    /// Who perceives it.
    pub seen_by: SeenBy,
    /// How long it has been tracked [s].
    pub age_s: f64,
}

impl Perceived {
    fn footprint_at(&self, t_s: f64, yaw_rad: f64, velocity_mps: Vector2<f64>) -> OrientedBox {
        OrientedBox {
            center: self.position_m + velocity_mps * t_s,
            yaw_rad,
            length_m: self.length_m,
            width_m: self.width_m,
        }
    }
}

/// Below this speed an object counts as standing [m/s].
const STANDING_MPS: f64 = 1.0;
/// A vehicle crossing our route is grown along its track by the distance it covers in this time
/// [s], so one that would pass just in front of (or just behind) us is a threat too: ICW warns of
/// near misses, not only of exact hits.
const CROSSING_BUFFER_S: f64 = 1.0;
/// A vehicle heading within this angle of its lane's direction (taken as our route's direction
/// where it is) is predicted to follow the lane [rad] (10°): headings and lateral velocities of
/// tracks are noisy (a few degrees on a 12 m bus at the kerb put its corner in our lane), and
/// vehicles beside us keep to their lanes.
const ALIGN_RAD: f64 = 0.175;

/// The car itself.
#[derive(Clone, Debug)]
pub struct Ego {
    /// Speed [m/s].
    pub speed_mps: f64,
    /// Length [m].
    pub length_m: f64,
    /// Width [m].
    pub width_m: f64,
    /// The route ahead in the ego frame, starting at the car's centre (straight ahead when
    /// `None`).
    pub route: Option<Polyline>,
    /// The driver's set speed [m/s].
    pub set_speed_mps: f64,
}

impl Ego {
    /// The car's footprint after `travel_m` along its route, grown by the margins.
    fn footprint_after(&self, travel_m: f64, long_margin_m: f64, lat_margin_m: f64) -> OrientedBox {
        let (center, yaw_rad) = match &self.route {
            Some(route) => {
                let pose = route.pose_at(travel_m.min(route.length_m()));
                let beyond = (travel_m - route.length_m()).max(0.0);
                (
                    pose.position + Vector2::new(pose.heading_rad.cos(), pose.heading_rad.sin()) * beyond,
                    pose.heading_rad,
                )
            }
            None => (Point2::new(travel_m, 0.0), 0.0),
        };
        OrientedBox {
            center,
            yaw_rad,
            length_m: self.length_m + 2.0 * long_margin_m,
            width_m: self.width_m + 2.0 * lat_margin_m,
        }
    }
}

/// Thresholds and dynamics of the functions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdasConfig {
    /// How far ahead threats are predicted [s].
    pub horizon_s: f64,
    /// Prediction step [s].
    pub step_s: f64,
    /// Margin added ahead of and behind the car [m].
    pub longitudinal_margin_m: f64,
    /// Margin added on each side of the car [m].
    pub lateral_margin_m: f64,
    /// FCW threshold [s] (NHTSA's FCW test criteria ask for 2.1-2.4 s in its scenarios).
    pub fcw_ttc_s: f64,
    /// VRUCW threshold [s].
    pub vrucw_ttc_s: f64,
    /// ICW threshold [s].
    pub icw_ttc_s: f64,
    /// AEB threshold [s].
    pub aeb_ttc_s: f64,
    /// AEB deceleration [m/s²].
    pub aeb_decel_mps2: f64,
    /// Warnings end after this long without a threat below their threshold [s].
    pub warning_hold_s: f64,
    /// No new warning below this speed [m/s].
    pub min_warning_speed_mps: f64,
    /// Time from a warning to the driver's braking [s].
    pub driver_reaction_s: f64,
    /// Where the warned driver aims to stop, short of the collision point [m].
    pub stop_margin_m: f64,
    /// Deceleration a warning must leave the driver enough time for, after the reaction time
    /// [m/s²]: warnings come at the TTC that a stop at this deceleration, `stop_margin_m` short,
    /// needs (and never later than the function's threshold).
    pub warning_comfort_decel_mps2: f64,
    /// AEB acts only on objects tracked at least this long [s] (false-braking guard).
    pub aeb_min_track_age_s: f64,
    /// The warned driver brakes at least this hard [m/s²].
    pub driver_min_decel_mps2: f64,
    /// ... and at most this hard [m/s²].
    pub driver_max_decel_mps2: f64,
    /// Speed at which a standing car checks whether it may move off again [m/s].
    pub creep_speed_mps: f64,
    /// ACC time gap [s].
    pub acc_time_gap_s: f64,
}

impl Default for AdasConfig {
    fn default() -> Self {
        AdasConfig {
            horizon_s: 5.0,
            step_s: 0.05,
            longitudinal_margin_m: 0.5,
            lateral_margin_m: 0.3,
            fcw_ttc_s: 2.4,
            vrucw_ttc_s: 3.0,
            icw_ttc_s: 3.5,
            aeb_ttc_s: 1.0,
            aeb_decel_mps2: 9.0,
            warning_hold_s: 1.0,
            min_warning_speed_mps: 1.5,
            driver_reaction_s: 1.0,
            stop_margin_m: 4.0,
            warning_comfort_decel_mps2: 3.0,
            aeb_min_track_age_s: 0.5,
            driver_min_decel_mps2: 2.5,
            driver_max_decel_mps2: 8.0,
            creep_speed_mps: 2.0,
            acc_time_gap_s: 1.8,
        }
    }
}

/// A predicted collision with one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Threat {
    /// Index of the object in the list given to [`Adas::step`].
    pub index: usize,
    /// The function it concerns.
    pub function: Function,
    /// Time to collision [s].
    pub ttc_s: f64,
    /// How far the car travels until the collision [m].
    pub travel_m: f64,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A warning came on.
    Warning,
    /// A warning went off.
    WarningEnd,
    /// Braking started (by the warned driver, or by AEB).
    BrakeStart,
    /// Braking ended.
    BrakeEnd,
    /// ACC started following a vehicle.
    AccFollow,
}

/// The object behind an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// The car's own track id.
    pub onboard_id: Option<u32>,
    /// The RSU's participant id.
    pub rsu_id: Option<u32>,
    /// Class.
    pub class: ObjectClass,
    /// Who perceived it.
    pub seen_by: SeenBy,
    /// Where it was, ego frame [m].
    pub position_m: [f64; 2],
}

impl Cause {
    fn of(o: &Perceived) -> Cause {
        Cause {
            onboard_id: o.onboard_id,
            rsu_id: o.rsu_id,
            class: o.class,
            seen_by: o.seen_by,
            position_m: [o.position_m.x, o.position_m.y],
        }
    }
}

/// A warning or braking event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdasEvent {
    /// When [s after the start of the run].
    pub time_s: f64,
    /// What.
    pub kind: EventKind,
    /// Which function.
    pub function: Function,
    /// Time to collision at the event [s].
    pub ttc_s: Option<f64>,
    /// The car's speed [m/s].
    pub speed_mps: f64,
    /// Deceleration asked for, for braking [m/s²].
    pub decel_mps2: Option<f64>,
    /// The object.
    pub cause: Option<Cause>,
}

/// What the functions ask of the car now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdasOutput {
    /// Bound on the car's acceleration [m/s²] (`None`: no request).
    pub accel_mps2: Option<f64>,
    /// Events of this step.
    pub events: Vec<AdasEvent>,
    /// The threats found.
    pub threats: Vec<Threat>,
}

#[derive(Clone, Debug)]
struct Braking {
    function: Function,
    /// When the braking takes effect [s].
    from_s: f64,
    started: bool,
    decel_mps2: f64,
    last_threat_s: f64,
}

/// The functions' state.
#[derive(Clone, Debug)]
pub struct Adas {
    /// Configuration.
    pub config: AdasConfig,
    /// Active warnings: function → last time a threat was below its threshold [s].
    warnings: Vec<(Function, f64)>,
    driver: Option<Braking>,
    aeb: Option<Braking>,
    acc_target: Option<(Option<u32>, Option<u32>)>,
}

impl Adas {
    /// Functions with `config`.
    pub fn new(config: AdasConfig) -> Self {
        Adas { config, warnings: Vec::new(), driver: None, aeb: None, acc_target: None }
    }

    /// The warning threshold of `function` at speed `speed_mps` [s]: the function's fixed
    /// threshold, or the TTC a warned driver needs to stop at the comfortable deceleration
    /// `stop_margin_m` short (reaction time + v / 2a + margin / v), whichever is longer.
    pub fn threshold_s(&self, function: Function, speed_mps: f64) -> f64 {
        let c = &self.config;
        let fixed = match function {
            Function::Fcw => c.fcw_ttc_s,
            Function::Vrucw => c.vrucw_ttc_s,
            Function::Icw => c.icw_ttc_s,
            Function::Aeb => return c.aeb_ttc_s,
            Function::Acc => return 0.0,
        };
        let v = speed_mps.max(0.1);
        let needed = c.driver_reaction_s + v / (2.0 * c.warning_comfort_decel_mps2) + c.stop_margin_m / v;
        fixed.max(needed.min(c.horizon_s))
    }

    /// Whether a warning of `function` is on.
    pub fn warning_active(&self, function: Function) -> bool {
        self.warnings.iter().any(|(f, _)| *f == function)
    }

    /// Whether the car is braking for a warning or by AEB.
    pub fn braking(&self) -> bool {
        self.driver.as_ref().is_some_and(|b| b.started) || self.aeb.is_some()
    }

    /// Threats from `objects` for a car moving at `speed_mps` along its route.
    pub fn threats(&self, ego: &Ego, speed_mps: f64, objects: &[Perceived]) -> Vec<Threat> {
        let c = &self.config;
        let mut out = Vec::new();
        if speed_mps <= 0.05 {
            return out;
        }
        let steps = (c.horizon_s / c.step_s).ceil() as usize;
        let reach_m = speed_mps * c.horizon_s + ego.length_m + 5.0;
        for (index, o) in objects.iter().enumerate() {
            // Braking does not avoid what is behind the car's centre (it would be hit from
            // behind, or it is the car's own lagging track).
            if o.position_m.x < 0.0
                || o.position_m.coords.norm() > reach_m + o.velocity_mps.norm() * c.horizon_s + o.length_m
            {
                continue;
            }
            let (yaw, velocity) = predicted_motion(ego, o);
            let crossing = !o.class.is_vru() && wrap_angle(yaw).cos().abs() < 0.8;
            let grow_m = if crossing { velocity.norm() * CROSSING_BUFFER_S } else { 0.0 };
            let hit = (0..=steps).map(|k| k as f64 * c.step_s).find(|&t| {
                let mut theirs = o.footprint_at(t, yaw, velocity);
                theirs.length_m += grow_m;
                ego.footprint_after(speed_mps * t, c.longitudinal_margin_m, c.lateral_margin_m).overlaps(&theirs)
            });
            if let Some(t) = hit {
                out.push(Threat { index, function: function_of(ego, o), ttc_s: t, travel_m: speed_mps * t });
            }
        }
        out.sort_by(|a, b| a.ttc_s.total_cmp(&b.ttc_s));
        out
    }

    /// One step at `time_s` [s after start]: updates warnings, braking and ACC from `objects`.
    pub fn step(&mut self, time_s: f64, ego: &Ego, objects: &[Perceived]) -> AdasOutput {
        let c = self.config.clone();
        let v = ego.speed_mps;
        let mut out = AdasOutput::default();
        // A car standing (or nearly) because it braked checks whether it could move off.
        let holding = self.braking() && v < c.creep_speed_mps;
        let threats = self.threats(ego, if holding { c.creep_speed_mps } else { v }, objects);
        let event = |kind, function, threat: Option<&Threat>, decel| AdasEvent {
            time_s,
            kind,
            function,
            ttc_s: threat.map(|t| t.ttc_s),
            speed_mps: v,
            decel_mps2: decel,
            cause: threat.and_then(|t| objects.get(t.index)).map(Cause::of),
        };

        // Warnings.
        for function in [Function::Fcw, Function::Vrucw, Function::Icw] {
            let threshold = self.threshold_s(function, v);
            let worst = threats.iter().find(|t| t.function == function && t.ttc_s <= threshold);
            let active = self.warnings.iter().position(|(f, _)| *f == function);
            match (worst, active) {
                (Some(_), Some(i)) => self.warnings[i].1 = time_s,
                (Some(t), None) if v >= c.min_warning_speed_mps || holding => {
                    self.warnings.push((function, time_s));
                    out.events.push(event(EventKind::Warning, function, Some(t), None));
                    if self.driver.is_none() {
                        self.driver = Some(Braking {
                            function,
                            from_s: time_s + c.driver_reaction_s,
                            started: false,
                            decel_mps2: 0.0,
                            last_threat_s: time_s,
                        });
                    }
                }
                (None, Some(i)) if time_s - self.warnings[i].1 >= c.warning_hold_s => {
                    self.warnings.remove(i);
                    out.events.push(event(EventKind::WarningEnd, function, None, None));
                }
                _ => {}
            }
        }

        // The warned driver.
        let worst_warned =
            threats.iter().find(|t| t.function != Function::Acc && t.ttc_s <= self.threshold_s(t.function, v));
        let mut accel: Option<f64> = None;
        if let Some(b) = &mut self.driver {
            if let Some(t) = worst_warned {
                b.last_threat_s = time_s;
                let room_m = (t.travel_m - c.stop_margin_m).max(0.3);
                b.decel_mps2 = (v * v / (2.0 * room_m)).clamp(c.driver_min_decel_mps2, c.driver_max_decel_mps2);
            }
            let clear = time_s - b.last_threat_s >= c.warning_hold_s;
            if clear {
                let (function, was_braking) = (b.function, b.started);
                self.driver = None;
                if was_braking {
                    out.events.push(event(EventKind::BrakeEnd, function, None, None));
                }
            } else if time_s >= b.from_s {
                if !b.started {
                    b.started = true;
                    if b.decel_mps2 <= 0.0 {
                        b.decel_mps2 = c.driver_min_decel_mps2;
                    }
                    let (function, decel) = (b.function, b.decel_mps2);
                    out.events.push(event(EventKind::BrakeStart, function, worst_warned, Some(decel)));
                }
                accel = Some(-self.driver.as_ref().map_or(0.0, |b| b.decel_mps2));
            }
        }

        // AEB.
        let critical = threats
            .iter()
            .find(|t| t.ttc_s <= c.aeb_ttc_s && objects.get(t.index).is_some_and(|o| o.age_s >= c.aeb_min_track_age_s));
        if let Some(b) = &mut self.aeb {
            if critical.is_some() {
                b.last_threat_s = time_s;
            } else if v < 0.1 && time_s - b.last_threat_s >= c.warning_hold_s {
                self.aeb = None;
                out.events.push(event(EventKind::BrakeEnd, Function::Aeb, None, None));
            }
        } else if let Some(t) = critical.filter(|_| !holding) {
            self.aeb = Some(Braking {
                function: Function::Aeb,
                from_s: time_s,
                started: true,
                decel_mps2: c.aeb_decel_mps2,
                last_threat_s: time_s,
            });
            out.events.push(event(EventKind::BrakeStart, Function::Aeb, Some(t), Some(c.aeb_decel_mps2)));
        }
        if self.aeb.is_some() {
            accel = Some(-c.aeb_decel_mps2);
        }

        // ACC: follow the nearest vehicle ahead going our way.
        let lead = objects
            .iter()
            .filter(|o| !o.class.is_vru() && o.position_m.x > 0.0 && wrap_angle(o.yaw_rad).cos() > 0.8)
            .filter_map(|o| {
                let (s, lateral) = match &ego.route {
                    Some(route) => route.project(&o.position_m),
                    None => (o.position_m.x, o.position_m.y),
                };
                (lateral.abs() < 0.5 * (ego.width_m + o.width_m) && s > 0.0).then_some((s, o))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let target = lead.map(|(_, o)| (o.onboard_id, o.rsu_id));
        if target.is_some() && self.acc_target.is_none() {
            out.events.push(AdasEvent {
                cause: lead.map(|(_, o)| Cause::of(o)),
                ..event(EventKind::AccFollow, Function::Acc, None, None)
            });
        }
        self.acc_target = target;
        if let Some((s, o)) = lead {
            let params = DriverParams { headway_s: c.acc_time_gap_s, ..DriverParams::for_class(ObjectClass::Car) };
            let gap_m = s - 0.5 * (ego.length_m + o.length_m);
            let acc = idm_accel(&params, v, ego.set_speed_mps, Some((gap_m.max(0.0), o.velocity_mps.x.max(0.0))));
            accel = Some(accel.map_or(acc, |a| a.min(acc)));
        }
        out.accel_mps2 = accel;
        out.threats = threats;
        out
    }
}

/// How `o` is predicted to move: (heading [rad], velocity [m/s]), ego frame. Vulnerable road
/// users keep their velocity; a vehicle nearly parallel to the route where it is follows its lane
/// (exactly parallel, along its heading, no lateral drift); any other vehicle keeps its velocity.
fn predicted_motion(ego: &Ego, o: &Perceived) -> (f64, Vector2<f64>) {
    if o.class.is_vru() {
        return (o.yaw_rad, o.velocity_mps);
    }
    let lane_heading = match &ego.route {
        Some(route) => {
            let (s, _) = route.project(&o.position_m);
            route.pose_at(s).heading_rad
        }
        None => 0.0,
    };
    let off = wrap_angle(o.yaw_rad - lane_heading);
    let heading = if off.abs() <= ALIGN_RAD {
        lane_heading
    } else if std::f64::consts::PI - off.abs() <= ALIGN_RAD {
        wrap_angle(lane_heading + std::f64::consts::PI)
    } else {
        return (o.yaw_rad, o.velocity_mps);
    };
    let along = Vector2::new(heading.cos(), heading.sin());
    (heading, along * o.velocity_mps.dot(&along).max(0.0))
}

/// The function a threat from `o` concerns: VRUCW for vulnerable road users; FCW for a vehicle
/// standing, or going our way; ICW for any other (crossing, turning, oncoming).
pub fn function_of(ego: &Ego, o: &Perceived) -> Function {
    if o.class.is_vru() {
        return Function::Vrucw;
    }
    let (heading, velocity) = predicted_motion(ego, o);
    if velocity.norm() < STANDING_MPS || wrap_angle(heading).cos() > 0.8 { Function::Fcw } else { Function::Icw }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ego(speed_mps: f64) -> Ego {
        Ego { speed_mps, length_m: 4.6, width_m: 1.9, route: None, set_speed_mps: 11.1 }
    }

    fn pedestrian(x: f64, y: f64, vy: f64) -> Perceived {
        Perceived {
            onboard_id: None,
            rsu_id: Some(7),
            class: ObjectClass::Pedestrian,
            position_m: Point2::new(x, y),
            velocity_mps: Vector2::new(0.0, vy),
            yaw_rad: std::f64::consts::FRAC_PI_2,
            length_m: 0.5,
            width_m: 0.5,
            seen_by: SeenBy { onboard: false, rsu: true },
            age_s: 1.0,
        }
    }

    #[test]
    fn a_crossing_pedestrian_is_a_threat_with_the_right_ttc_and_one_walking_away_is_not() {
        let adas = Adas::new(AdasConfig::default());
        // The car at 10 m/s; a pedestrian 30 m ahead, 4 m to the right, walking left at 1.5 m/s.
        let threats = adas.threats(&ego(10.0), 10.0, &[pedestrian(30.0, -4.0, 1.5), pedestrian(30.0, -4.0, -1.5)]);
        assert_eq!(threats.len(), 1, "{threats:?}");
        let t = &threats[0];
        assert_eq!((t.index, t.function), (0, Function::Vrucw));
        // The grown car front (x + 2.3 + 0.5) reaches the pedestrian's near side (29.75) at
        // about 2.7 s; the pedestrian is in the grown corridor (|y| < 1.25 + 0.25) from 1.67 s.
        assert!((t.ttc_s - 2.7).abs() < 0.1, "{}", t.ttc_s);
    }

    #[test]
    fn warning_then_driver_braking_after_the_reaction_time_then_release() {
        let mut adas = Adas::new(AdasConfig::default());
        let ped = pedestrian(30.0, -4.0, 1.5);
        // 3.7 s out: beyond the 3.07 s a warned driver needs at 10 m/s.
        let out = adas.step(0.0, &ego(10.0), &[pedestrian(40.0, -6.0, 1.5)]);
        assert!(out.events.is_empty() && out.accel_mps2.is_none(), "{out:?}");
        let out = adas.step(0.1, &ego(10.0), std::slice::from_ref(&ped));
        assert_eq!(out.events.len(), 1);
        assert_eq!((out.events[0].kind, out.events[0].function), (EventKind::Warning, Function::Vrucw));
        assert_eq!(out.events[0].cause.as_ref().and_then(|c| c.rsu_id), Some(7));
        assert!(out.accel_mps2.is_none(), "the driver has not reacted yet");
        let out = adas.step(1.1, &ego(10.0), std::slice::from_ref(&ped));
        let brake = out.events.iter().find(|e| e.kind == EventKind::BrakeStart).expect("brake");
        let decel = brake.decel_mps2.expect("decel");
        // Stop 4 m short of the collision point 27 m away: 100 / (2 * 23) ≈ 2.2, at least 2.5.
        assert!((decel - 2.5).abs() < 1e-9, "{decel}");
        assert_eq!(out.accel_mps2, Some(-decel));
        // Stopped, the pedestrian gone: the brake is released after the hold time.
        let out = adas.step(5.0, &ego(0.0), &[]);
        assert!(out.events.iter().any(|e| e.kind == EventKind::BrakeEnd), "{:?}", out.events);
        assert!(!adas.braking());
    }

    #[test]
    fn nothing_behind_the_car_is_a_threat() {
        let adas = Adas::new(AdasConfig::default());
        let mut behind = pedestrian(-2.0, 0.0, 0.0);
        behind.class = ObjectClass::Car;
        behind.velocity_mps = Vector2::new(12.0, 0.0);
        assert!(adas.threats(&ego(5.0), 5.0, &[behind]).is_empty(), "braking cannot avoid a car from behind");
    }

    #[test]
    fn aeb_brakes_at_once_when_the_ttc_is_short() {
        let mut adas = Adas::new(AdasConfig::default());
        let out = adas.step(0.0, &ego(11.0), &[pedestrian(12.0, -1.0, 1.4)]);
        let aeb = out.events.iter().find(|e| e.function == Function::Aeb).expect("AEB");
        assert_eq!(aeb.kind, EventKind::BrakeStart);
        assert_eq!(out.accel_mps2, Some(-9.0));
        assert!(out.events.iter().any(|e| e.kind == EventKind::Warning));
    }

    #[test]
    fn acc_follows_a_slower_car_and_fcw_fires_for_a_stopped_one() {
        let mut adas = Adas::new(AdasConfig::default());
        let mut lead = pedestrian(40.0, 0.0, 0.0);
        lead.class = ObjectClass::Car;
        lead.yaw_rad = 0.0;
        lead.length_m = 4.6;
        lead.width_m = 1.9;
        lead.velocity_mps = Vector2::new(8.0, 0.0);
        let out = adas.step(0.0, &ego(11.0), std::slice::from_ref(&lead));
        assert!(out.events.iter().any(|e| e.kind == EventKind::AccFollow));
        assert!(out.accel_mps2.is_some_and(|a| a < 0.0), "closing in: slow down {:?}", out.accel_mps2);
        lead.velocity_mps = Vector2::zeros();
        lead.position_m.x = 25.0;
        let out = adas.step(0.1, &ego(11.0), std::slice::from_ref(&lead));
        assert!(out.events.iter().any(|e| e.kind == EventKind::Warning && e.function == Function::Fcw), "{out:?}");
    }
}
