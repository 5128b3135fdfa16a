//! Actors and their kinematics: vehicles follow a path with pure-pursuit steering on a kinematic
//! bicycle model and the Intelligent Driver Model (IDM) for speed; walkers follow walkways at
//! walking pace; parked vehicles stand still. The world decides *what* each one reacts to (leaders,
//! lights); this module decides *how* it moves.

use std::sync::Arc;

use nalgebra::{Point2, Point3, Vector2};
use rsu_fusion::{BoxSize, ObjectClass};

use rsu_site::geometry::{OrientedBox, wrap_angle};
use rsu_site::model::Path;

/// Longitudinal (IDM) and lateral comfort parameters of a driver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriverParams {
    /// Maximum acceleration [m/s²].
    pub accel_max_mps2: f64,
    /// Comfortable deceleration [m/s²].
    pub decel_comfort_mps2: f64,
    /// Hardest braking [m/s²].
    pub decel_max_mps2: f64,
    /// Desired time headway [s].
    pub headway_s: f64,
    /// Standstill gap [m].
    pub min_gap_m: f64,
    /// Lateral acceleration accepted in curves [m/s²].
    pub lateral_accel_max_mps2: f64,
    /// Time a newly appearing obstacle takes to be noticed [s].
    pub reaction_s: f64,
    /// Farthest obstacle the driver pays attention to [m] (infinite for an attentive driver).
    pub sight_m: f64,
}

impl DriverParams {
    /// Typical parameters for a class.
    pub fn for_class(class: ObjectClass) -> Self {
        let base = DriverParams {
            accel_max_mps2: 1.5,
            decel_comfort_mps2: 2.5,
            decel_max_mps2: 8.0,
            headway_s: 1.4,
            min_gap_m: 2.0,
            lateral_accel_max_mps2: 2.5,
            reaction_s: 0.6,
            sight_m: f64::INFINITY,
        };
        match class {
            ObjectClass::Bus | ObjectClass::Truck => {
                DriverParams { accel_max_mps2: 0.9, decel_max_mps2: 6.0, headway_s: 1.8, ..base }
            }
            ObjectClass::Shuttle | ObjectClass::Delivery => {
                DriverParams { accel_max_mps2: 0.8, decel_comfort_mps2: 1.5, headway_s: 2.0, reaction_s: 0.2, ..base }
            }
            ObjectClass::Cyclist | ObjectClass::Tricyclist => {
                DriverParams { accel_max_mps2: 0.8, decel_max_mps2: 4.0, min_gap_m: 1.0, ..base }
            }
            ObjectClass::Emergency => DriverParams { accel_max_mps2: 2.5, headway_s: 1.0, ..base },
            _ => base,
        }
    }
}

/// The IDM acceleration [m/s²] at speed `speed_mps` with desired speed `desired_mps` and an
/// optional leader (gap [m] bumper to bumper, leader speed [m/s]), clamped to the driver's limits.
pub fn idm_accel(p: &DriverParams, speed_mps: f64, desired_mps: f64, leader: Option<(f64, f64)>) -> f64 {
    let v = speed_mps.max(0.0);
    let free = if desired_mps > 0.1 { 1.0 - (v / desired_mps).powi(4) } else { -1.0 };
    let interaction = leader.map_or(0.0, |(gap_m, leader_mps)| {
        let dv = v - leader_mps;
        let s_star = p.min_gap_m
            + (v * p.headway_s + v * dv / (2.0 * (p.accel_max_mps2 * p.decel_comfort_mps2).sqrt())).max(0.0);
        (s_star / gap_m.max(0.05)).powi(2)
    });
    (p.accel_max_mps2 * (free - interaction)).clamp(-p.decel_max_mps2, p.accel_max_mps2)
}

/// Kinematic state of an actor's box centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kinematics {
    /// Box centre on the ground [m], site frame.
    pub position: Point2<f64>,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Speed along the heading [m/s].
    pub speed_mps: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Front wheel angle, counter-clockwise positive [rad].
    pub steer_rad: f64,
}

impl Kinematics {
    /// At rest at `position` facing `yaw_rad`.
    pub fn at(position: Point2<f64>, yaw_rad: f64) -> Self {
        Kinematics { position, yaw_rad, speed_mps: 0.0, yaw_rate_rps: 0.0, accel_mps2: 0.0, steer_rad: 0.0 }
    }

    /// Unit heading vector.
    pub fn heading(&self) -> Vector2<f64> {
        Vector2::new(self.yaw_rad.cos(), self.yaw_rad.sin())
    }
}

/// A kinematic bicycle: the rear axle moves along the heading, the heading turns at
/// `v tan(steer) / wheelbase`. The tracked point is the box centre, half a wheelbase ahead of the
/// rear axle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bicycle {
    /// Wheelbase [m].
    pub wheelbase_m: f64,
    /// Steering limit [rad].
    pub max_steer_rad: f64,
    /// Steering rate limit [rad/s].
    pub max_steer_rate_rps: f64,
}

impl Bicycle {
    /// A plausible bicycle model for a vehicle of this size.
    pub fn for_size(size: &BoxSize) -> Self {
        Bicycle { wheelbase_m: (0.6 * size.length_m).max(0.9), max_steer_rad: 0.6, max_steer_rate_rps: 0.8 }
    }

    /// Turning radius of the rear axle at steering angle `steer_rad` [m].
    pub fn turning_radius_m(&self, steer_rad: f64) -> f64 {
        self.wheelbase_m / steer_rad.tan().abs()
    }

    /// Advances `k` by `dt_s` with commanded acceleration and steering (both limited).
    pub fn step(&self, k: &mut Kinematics, accel_mps2: f64, steer_cmd_rad: f64, dt_s: f64) {
        let steer_cmd = steer_cmd_rad.clamp(-self.max_steer_rad, self.max_steer_rad);
        let max_delta = self.max_steer_rate_rps * dt_s;
        k.steer_rad += (steer_cmd - k.steer_rad).clamp(-max_delta, max_delta);
        let new_speed = (k.speed_mps + accel_mps2 * dt_s).max(0.0);
        k.accel_mps2 = (new_speed - k.speed_mps) / dt_s;
        let v = 0.5 * (k.speed_mps + new_speed);
        let rear = k.position - k.heading() * (0.5 * self.wheelbase_m);
        k.yaw_rate_rps = v * k.steer_rad.tan() / self.wheelbase_m;
        let yaw_mid = k.yaw_rad + 0.5 * k.yaw_rate_rps * dt_s;
        let rear = rear + Vector2::new(yaw_mid.cos(), yaw_mid.sin()) * (v * dt_s);
        k.yaw_rad = wrap_angle(k.yaw_rad + k.yaw_rate_rps * dt_s);
        k.position = rear + k.heading() * (0.5 * self.wheelbase_m);
        k.speed_mps = new_speed;
    }

    /// Pure-pursuit steering towards `target` [rad].
    pub fn pursue(&self, k: &Kinematics, target: &Point2<f64>) -> f64 {
        let rear = k.position - k.heading() * (0.5 * self.wheelbase_m);
        let to = target - rear;
        let dist = to.norm().max(0.5);
        let alpha = wrap_angle(to.y.atan2(to.x) - k.yaw_rad);
        (2.0 * self.wheelbase_m * alpha.sin() / dist).atan()
    }
}

/// How fast braking requested by a driver-assistance system builds up [m/s³]: hydraulic brake
/// build-up reaches a full 9 m/s² in about 0.2 s.
pub const BRAKE_JERK_MPS3: f64 = 40.0;

/// A vehicle's driving task.
#[derive(Clone, Debug)]
pub struct Driver {
    /// The path it follows.
    pub path: Arc<Path>,
    /// Progress of the box centre along the path [m] (unwrapped on loops).
    pub s_m: f64,
    /// Speed it wants on a free road [m/s].
    pub desired_speed_mps: f64,
    /// IDM and comfort parameters.
    pub params: DriverParams,
    /// Vehicle dynamics.
    pub bicycle: Bicycle,
    /// Stops at red and (when it can) yellow lights.
    pub obeys_signals: bool,
    /// Waits where it is until released by a scripted event.
    pub held: bool,
    /// A scripted stop point on the path [m].
    pub stop_at_m: Option<f64>,
    /// The obstacle it reacts to and its speed: (gap [m], speed [m/s]); set by the world.
    pub leader: Option<(f64, f64)>,
    /// Speed allowed by curves and the limit ahead [m/s]; set by the world.
    pub allowed_speed_mps: f64,
    /// Obstacles noticed so far: (actor id, first seen at [s]).
    pub noticed: Vec<(u32, f64)>,
    /// Upper bound on the acceleration from a driver-assistance system (braking after a
    /// warning, automatic emergency braking, adaptive cruise) [m/s²]; `None` when it asks for
    /// nothing. It can brake harder than the driver's own `decel_max_mps2`.
    pub assist_accel_mps2: Option<f64>,
}

impl Driver {
    /// Advances the vehicle by `dt_s`: IDM towards the leader, pure pursuit along the path.
    pub fn step(&mut self, k: &mut Kinematics, dt_s: f64) {
        let accel = if self.held {
            -self.params.decel_max_mps2
        } else {
            idm_accel(&self.params, k.speed_mps, self.desired_speed_mps.min(self.allowed_speed_mps), self.leader)
        };
        // Assisted braking builds up at a limited rate from the deceleration the car has now.
        let accel = self.assist_accel_mps2.map_or(accel, |cap| {
            let now = k.accel_mps2.min(0.0);
            accel.min(cap.max(now - BRAKE_JERK_MPS3 * dt_s))
        });
        let lookahead_m = (1.5 + 0.5 * k.speed_mps).max(self.bicycle.wheelbase_m * 1.2);
        let target = self.path.line.pose_at(self.s_m + lookahead_m).position;
        let steer = self.bicycle.pursue(k, &target);
        self.bicycle.step(k, accel, steer, dt_s);
        // Keep the leader gap current between planning ticks.
        if let Some((gap, v_lead)) = &mut self.leader {
            *gap -= (k.speed_mps - *v_lead) * dt_s;
        }
        let (s, _) = self.path.line.project_within(&k.position, self.s_m - 2.0, self.s_m + 5.0);
        self.s_m = s;
    }

    /// Whether an open path has been driven to its end.
    pub fn finished(&self) -> bool {
        !self.path.line.is_closed() && self.s_m >= self.path.line.length_m() - 0.5
    }
}

/// A pedestrian's walking task.
#[derive(Clone, Debug)]
pub struct Walker {
    /// The walkway (or ad-hoc line) it follows.
    pub path: Arc<Path>,
    /// Progress along it [m].
    pub s_m: f64,
    /// Walking speed [m/s].
    pub walk_speed_mps: f64,
    /// Sideways offset from the walkway centre [m], left positive.
    pub offset_m: f64,
    /// Waits at the kerb for a green light.
    pub obeys_signals: bool,
    /// Waits where it is until released by a scripted event.
    pub held: bool,
    /// Whether the light allows crossing now; set by the world.
    pub may_cross: bool,
    /// A vehicle stands or moves right in front; set by the world.
    pub blocked: bool,
}

/// Fastest a walker turns towards its path's heading [rad/s] (about a half turn per second).
pub const WALKER_MAX_TURN_RATE_RPS: f64 = 3.0;
/// Fastest change of a walker's speed [m/s²]: walking pace within a few steps, and no instant stops.
pub const WALKER_MAX_ACCEL_MPS2: f64 = 10.0;

impl Walker {
    /// Advances the walker by `dt_s`.
    pub fn step(&mut self, k: &mut Kinematics, dt_s: f64) {
        let mut target = if self.held || self.blocked { 0.0 } else { self.walk_speed_mps };
        if let Some(stop) = &self.path.stop
            && self.obeys_signals
            && !self.may_cross
            && self.s_m <= stop.stop_at_m
        {
            // Slow down in time to wait at the kerb.
            let room_m = (stop.stop_at_m - 0.3 - self.s_m).max(0.0);
            target = target.min((2.0 * WALKER_MAX_ACCEL_MPS2 * room_m).sqrt());
        }
        // People speed up and slow down within WALKER_MAX_ACCEL_MPS2.
        let max_dv = WALKER_MAX_ACCEL_MPS2 * dt_s;
        let mut speed = target.clamp(k.speed_mps - max_dv, k.speed_mps + max_dv).max(0.0);
        let mut next_s = self.s_m + speed * dt_s;
        if let Some(stop) = &self.path.stop
            && self.obeys_signals
            && !self.may_cross
            && self.s_m <= stop.stop_at_m
            && next_s > stop.stop_at_m - 0.3
        {
            next_s = self.s_m.max(stop.stop_at_m - 0.3);
            speed = (next_s - self.s_m) / dt_s;
        }
        let pose = self.path.line.pose_at(next_s);
        let left = Vector2::new(-pose.heading_rad.sin(), pose.heading_rad.cos());
        let old_yaw = k.yaw_rad;
        k.accel_mps2 = (speed - k.speed_mps) / dt_s;
        k.speed_mps = speed;
        k.position = pose.position + left * self.offset_m;
        if speed > 0.0 {
            // People turn quickly but not instantly: at most WALKER_MAX_TURN_RATE_RPS.
            let max_turn = WALKER_MAX_TURN_RATE_RPS * dt_s;
            k.yaw_rad = wrap_angle(old_yaw + wrap_angle(pose.heading_rad - old_yaw).clamp(-max_turn, max_turn));
        }
        k.yaw_rate_rps = wrap_angle(k.yaw_rad - old_yaw) / dt_s;
        self.s_m = next_s;
    }

    /// Whether an open path has been walked to its end.
    pub fn finished(&self) -> bool {
        !self.path.line.is_closed() && self.s_m >= self.path.line.length_m() - 0.05
    }
}

/// How an actor moves.
#[derive(Clone, Debug)]
pub enum Motion {
    /// Does not move (parked vehicles, obstacles).
    Parked,
    /// Drives along a path.
    Vehicle(Box<Driver>),
    /// Walks along a path.
    Walker(Walker),
}

/// A participant of the world.
#[derive(Clone, Debug)]
pub struct Actor {
    /// Unique id within a run (also the ground-truth id).
    pub id: u32,
    /// Its class.
    pub class: ObjectClass,
    /// Box size [m].
    pub size: BoxSize,
    /// V2X id when the actor is a connected vehicle sending self-reports.
    pub v2x_id: Option<String>,
    /// Kinematic state.
    pub state: Kinematics,
    /// How it moves.
    pub motion: Motion,
}

impl Actor {
    /// The ground footprint.
    pub fn footprint(&self) -> OrientedBox {
        OrientedBox {
            center: self.state.position,
            yaw_rad: self.state.yaw_rad,
            length_m: self.size.length_m,
            width_m: self.size.width_m,
        }
    }

    /// Box centre in 3D over ground height `ground_z_m` [m].
    pub fn center(&self, ground_z_m: f64) -> Point3<f64> {
        Point3::new(self.state.position.x, self.state.position.y, ground_z_m + 0.5 * self.size.height_m)
    }

    /// The driver, for vehicles.
    pub fn driver_mut(&mut self) -> Option<&mut Driver> {
        match &mut self.motion {
            Motion::Vehicle(d) => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_steering_drives_the_bicycle_turning_radius() {
        let bike = Bicycle { wheelbase_m: 2.8, max_steer_rad: 0.6, max_steer_rate_rps: 100.0 };
        let steer = 0.2_f64;
        let mut k = Kinematics::at(Point2::new(0.0, 0.0), 0.0);
        k.speed_mps = 5.0;
        k.steer_rad = steer;
        let mut rear_points = Vec::new();
        for _ in 0..2000 {
            bike.step(&mut k, 0.0, steer, 0.01);
            rear_points.push(k.position - k.heading() * 1.4);
        }
        // The rear axle stays on a circle of radius L / tan(steer) around a fixed centre.
        let expected = bike.turning_radius_m(steer);
        let centre = Point2::new(-1.4, expected);
        for p in &rear_points {
            assert!(((p - centre).norm() - expected).abs() < 0.05, "radius {} vs {expected}", (p - centre).norm());
        }
        assert!((k.yaw_rate_rps - 5.0 * steer.tan() / 2.8).abs() < 1e-9);
    }

    #[test]
    fn idm_keeps_distance_and_stops_before_a_standing_obstacle() {
        let p = DriverParams::for_class(ObjectClass::Car);
        // Free road: accelerate towards the desired speed, none beyond it.
        assert!(idm_accel(&p, 5.0, 14.0, None) > 1.0);
        assert!(idm_accel(&p, 14.0, 14.0, None).abs() < 1e-9);
        // Follow a leader at 10 m/s: the steady gap is near s0 + v T.
        let (mut x, mut v, mut lead_x) = (0.0_f64, 10.0_f64, 40.0_f64);
        for _ in 0..6000 {
            let a = idm_accel(&p, v, 14.0, Some((lead_x - x - 4.6, 10.0)));
            v = (v + a * 0.01).max(0.0);
            x += v * 0.01;
            lead_x += 10.0 * 0.01;
        }
        let gap = lead_x - x - 4.6;
        let expected = (p.min_gap_m + 10.0 * p.headway_s) / (1.0 - (10.0_f64 / 14.0).powi(4)).sqrt();
        assert!((gap - expected).abs() < 0.5, "gap {gap} vs {expected}");
        // A standing obstacle 60 m ahead: stop short of it, never touching.
        let (mut x, mut v) = (0.0_f64, 12.0_f64);
        let mut min_gap = f64::INFINITY;
        for _ in 0..3000 {
            let gap = 60.0 - x;
            min_gap = min_gap.min(gap);
            v = (v + idm_accel(&p, v, 14.0, Some((gap, 0.0))) * 0.01).max(0.0);
            x += v * 0.01;
        }
        assert!(v < 0.05 && min_gap > 0.5 && min_gap < p.min_gap_m + 0.5, "v {v} gap {min_gap}");
    }
}
