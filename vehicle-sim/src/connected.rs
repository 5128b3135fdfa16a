//! A simulated connected L2+ car, without I/O: its forward sensor and its own tracker (the fusion
//! core), the RSU's latest frame (when it uses V2X), the merge of both into one object list in
//! the car's frame, the driver-assistance functions on that list, its self-report, and what a
//! vehicle engineer measures on the link: capture-to-receipt latency, age of the newest RSU
//! information when used, and lost frames. [`crate::live`] drives it with real QUIC.

use std::sync::Arc;

use nalgebra::{Point2, Rotation2, Vector2};
use rsu_fusion::measurement::{ActiveWarning, WarningKind};
use rsu_fusion::{
    FusedObject, Fusion, FusionConfig, FusionError, RoadsideFrame, RoadsideView, Timestamp, VehicleState,
};

use crate::adas::{Adas, AdasConfig, AdasEvent, AdasOutput, Ego, Function, Perceived, SeenBy};
use crate::gnss::SelfReporter;
use crate::onboard::{OnboardFrame, OnboardParams, OnboardSensor, tracker_site};
use crate::sensors::Environment;
use crate::world::ActorTruth;
use rsu_site::geometry::{Polyline, Prism, wrap_angle};
use rsu_site::model::{Path, SiteModel};

/// How a car perceives and decides.
#[derive(Clone, Debug, PartialEq)]
pub struct CarConfig {
    /// Whether it uses the RSU's frames.
    pub use_v2x: bool,
    /// Its forward sensor.
    pub onboard: OnboardParams,
    /// Its driver-assistance functions.
    pub adas: AdasConfig,
    /// RSU frames whose newest sensor capture is older than this are not used [s].
    pub stale_after_s: f64,
    /// A vehicle seen by the RSU and by the car's own sensor closer than this is one object [m].
    pub match_gate_m: f64,
    /// The same for pedestrians, cyclists and other vulnerable road users [m].
    pub match_gate_vru_m: f64,
    /// How far along its route the car looks [m].
    pub route_lookahead_m: f64,
}

impl Default for CarConfig {
    fn default() -> Self {
        CarConfig {
            use_v2x: true,
            onboard: OnboardParams::default(),
            adas: AdasConfig::default(),
            stale_after_s: 1.0,
            match_gate_m: 2.5,
            match_gate_vru_m: 1.2,
            route_lookahead_m: 120.0,
        }
    }
}

/// What the car measured on its V2X link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkStats {
    /// Roadside frames received.
    pub frames: u64,
    /// Frames missing from the sequence (message counter gaps).
    pub lost: u64,
    /// Per frame: receipt minus the newest sensor capture it carries [s].
    pub capture_to_receipt_s: Vec<f64>,
    /// Per frame: receipt minus the frame's time [s].
    pub frame_to_receipt_s: Vec<f64>,
    /// Per decision while RSU information was in use: age of its newest capture [s].
    pub info_age_s: Vec<f64>,
    last_count: Option<u32>,
}

/// An object the car perceives, in the site frame (for displays and first-seen bookkeeping).
#[derive(Clone, Debug, PartialEq)]
pub struct SiteObject {
    /// Centre [m], site frame.
    pub position_m: Point2<f64>,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// The object in the car's frame.
    pub perceived: Perceived,
}

/// The simulated car.
pub struct ConnectedCar {
    /// Its V2X id.
    pub v2x_id: String,
    /// Its actor in the world.
    pub actor_id: u32,
    /// Configuration.
    pub config: CarConfig,
    sensor: OnboardSensor,
    tracker: Fusion,
    pending: Vec<OnboardFrame>,
    reporter: SelfReporter,
    /// The RSU as its frames told it: the newest frame, the sensor health and regions in force.
    rsu: RoadsideView,
    adas: Adas,
    /// Link measurements.
    pub link: LinkStats,
    /// Every warning and braking event so far.
    pub events: Vec<AdasEvent>,
    /// What it perceived at its last decision.
    pub perceived: Vec<SiteObject>,
    last_warnings: Vec<ActiveWarning>,
}

impl ConnectedCar {
    /// Car `v2x_id` driving actor `actor_id` on `site`, on random streams of `seed`.
    pub fn new(
        v2x_id: &str,
        actor_id: u32,
        site: &SiteModel,
        seed: u64,
        config: CarConfig,
    ) -> Result<ConnectedCar, FusionError> {
        let tracker = Fusion::new(tracker_site(&site.config, &config.onboard), FusionConfig::default())?;
        Ok(ConnectedCar {
            v2x_id: v2x_id.to_owned(),
            actor_id,
            sensor: OnboardSensor::new(config.onboard.clone(), seed, 2000 + u64::from(actor_id)),
            tracker,
            pending: Vec::new(),
            reporter: SelfReporter::new(v2x_id, seed, 1000 + u64::from(actor_id)),
            rsu: RoadsideView::default(),
            adas: Adas::new(config.adas.clone()),
            link: LinkStats::default(),
            events: Vec::new(),
            perceived: Vec::new(),
            last_warnings: Vec::new(),
            config,
        })
    }

    /// Makes its self-reports lie as `spoof` says (`None`: honest).
    pub fn set_spoof(&mut self, spoof: Option<crate::gnss::Spoof>) {
        self.reporter.spoof = spoof;
    }

    /// Takes a roadside frame received at `receipt`.
    pub fn on_roadside_frame(&mut self, frame: RoadsideFrame, receipt: Timestamp) {
        let link = &mut self.link;
        link.frames += 1;
        if let Some(last) = link.last_count {
            let gap = frame.message_count.wrapping_sub(last);
            // A restarted RSU or reordering shows as a huge gap: not counted as loss.
            if (2..1000).contains(&gap) {
                link.lost += u64::from(gap - 1);
            }
        }
        link.last_count = Some(frame.message_count);
        if let Some(newest) = frame.newest_capture {
            link.capture_to_receipt_s.push(receipt.secs_since(newest));
        }
        link.frame_to_receipt_s.push(receipt.secs_since(frame.time));
        self.rsu.receive(frame);
    }

    /// The RSU as the frames received told it: the newest frame, with the sensor health and
    /// perception regions in force (sent only when they change).
    pub fn rsu_view(&self) -> &RoadsideView {
        &self.rsu
    }

    /// Captures an onboard frame if one is due by `elapsed_s` [s after `start`].
    pub fn sense(
        &mut self,
        start: Timestamp,
        elapsed_s: f64,
        ego: &ActorTruth,
        scene: &[ActorTruth],
        buildings: &[Prism],
        env: &Environment,
    ) {
        while self.sensor.next_capture_s() <= elapsed_s {
            let frame = self.sensor.capture(start, elapsed_s, ego, scene, buildings, env);
            self.pending.push(frame);
        }
    }

    /// Its self-report (GNSS position, motion, brakes, the warnings it shows).
    pub fn report(&mut self, site: &SiteModel, ego: &ActorTruth, now: Timestamp, elapsed_s: f64) -> VehicleState {
        let mut state = self.reporter.report(site, ego, now, elapsed_s);
        state.brakes.aeb_active = self.last_warnings.iter().any(|w| w.kind == WarningKind::Aeb);
        state.adas.acc_active = true;
        state.adas.v2x_active = self.config.use_v2x;
        state.warnings = self.last_warnings.clone();
        state
    }

    /// Decides at `now` ([s after start] `elapsed_s`): tracks the onboard frames delivered by
    /// now, merges them with the RSU's participants aged to now, and runs the functions. `ego`
    /// is the car's own pose (taken as exact: RTK and odometry), `route` its path, progress and
    /// set speed.
    pub fn decide(
        &mut self,
        now: Timestamp,
        elapsed_s: f64,
        ego: &ActorTruth,
        route: Option<(Arc<Path>, f64, f64)>,
    ) -> AdasOutput {
        self.pending.sort_by_key(|f| f.delivered_at);
        let due = self.pending.partition_point(|f| f.delivered_at <= now);
        for f in self.pending.drain(..due) {
            self.tracker.handle_sensor_frame(now, f.frame);
        }
        let onboard = self.tracker.poll_objects(now);
        let rsu = if self.config.use_v2x { self.rsu_objects(now, ego) } else { Vec::new() };
        self.perceived = merge(&onboard, &rsu, ego, [self.config.match_gate_m, self.config.match_gate_vru_m]);
        let perceived: Vec<Perceived> = self.perceived.iter().map(|o| o.perceived.clone()).collect();
        let car = Ego {
            speed_mps: ego.speed_mps,
            length_m: ego.size.length_m,
            width_m: ego.size.width_m,
            set_speed_mps: route.as_ref().map_or(ego.speed_mps, |r| r.2),
            route: route.and_then(|(path, s, _)| route_ahead(&path, s, ego, self.config.route_lookahead_m)),
        };
        let out = self.adas.step(elapsed_s, &car, &perceived);
        self.events.extend(out.events.iter().cloned());
        self.last_warnings = [Function::Fcw, Function::Vrucw, Function::Icw, Function::Aeb]
            .into_iter()
            .filter(|f| if *f == Function::Aeb { self.adas.braking() } else { self.adas.warning_active(*f) })
            .map(|f| {
                let threat = out.threats.iter().find(|t| t.function == f || f == Function::Aeb);
                ActiveWarning {
                    kind: match f {
                        Function::Fcw => WarningKind::Fcw,
                        Function::Vrucw => WarningKind::Vrucw,
                        Function::Icw => WarningKind::Icw,
                        _ => WarningKind::Aeb,
                    },
                    target_id: threat.and_then(|t| perceived.get(t.index)).and_then(|o| o.rsu_id).unwrap_or(0),
                    ttc_s: threat.map(|t| t.ttc_s),
                }
            })
            .collect();
        out
    }

    /// The RSU's participants aged to `now`, without the car itself.
    fn rsu_objects(&mut self, now: Timestamp, ego: &ActorTruth) -> Vec<FusedLike> {
        let Some(frame) = self.rsu.frame() else { return Vec::new() };
        let Some(newest) = frame.newest_capture else { return Vec::new() };
        let age_s = now.secs_since(newest);
        if age_s > self.config.stale_after_s {
            return Vec::new();
        }
        self.link.info_age_s.push(age_s);
        let dt = now.secs_since(frame.time);
        let here = Point2::new(ego.center.x, ego.center.y);
        frame
            .participants
            .iter()
            .filter(|p| p.v2x_id.as_deref() != Some(self.v2x_id.as_str()))
            .filter_map(|p| {
                // Aged to now on a constant turn rate and speed.
                let (position_m, yaw_rad) =
                    ctrv(Point2::new(p.position_m.x, p.position_m.y), p.yaw_rad, p.speed_mps, p.yaw_rate_rps, dt);
                // A track of the car itself the RSU has not tied to its self-report.
                let me = (position_m - here).norm() < 0.5 * ego.size.length_m + 2.5
                    && wrap_angle(yaw_rad - ego.yaw_rad).cos() > 0.7;
                (!me).then_some((p, position_m, yaw_rad))
            })
            .map(|(p, position_m, yaw_rad)| {
                let velocity = Vector2::new(yaw_rad.cos(), yaw_rad.sin()) * p.speed_mps;
                FusedLike {
                    id: p.id,
                    class: p.class,
                    position_m,
                    velocity_mps: velocity,
                    yaw_rad,
                    length_m: p.size.length_m,
                    width_m: p.size.width_m,
                    age_s: p.age_s + dt,
                }
            })
            .collect()
    }
}

/// An object of either source in the site frame.
#[derive(Clone, Debug)]
struct FusedLike {
    id: u32,
    class: rsu_fusion::ObjectClass,
    position_m: Point2<f64>,
    velocity_mps: Vector2<f64>,
    yaw_rad: f64,
    length_m: f64,
    width_m: f64,
    age_s: f64,
}

impl From<&FusedObject> for FusedLike {
    fn from(o: &FusedObject) -> Self {
        FusedLike {
            id: o.id,
            class: o.class,
            position_m: Point2::new(o.position_m.x, o.position_m.y),
            velocity_mps: o.velocity_mps,
            yaw_rad: o.yaw_rad,
            length_m: o.size.length_m,
            width_m: o.size.width_m,
            age_s: o.age_s,
        }
    }
}

/// `position` and `yaw_rad` moved `dt_s` ahead at `speed_mps` and `yaw_rate_rps`: the same
/// ageing the live scoring applies to what the car received.
fn ctrv(position: Point2<f64>, yaw_rad: f64, speed_mps: f64, yaw_rate_rps: f64, dt_s: f64) -> (Point2<f64>, f64) {
    let ([x, y], yaw) = v2x_replays::live::ctrv([position.x, position.y], yaw_rad, speed_mps, yaw_rate_rps, dt_s);
    (Point2::new(x, y), yaw)
}

/// Onboard tracks and RSU objects as one list in the car's frame: an RSU object of the same kind
/// (vulnerable road user or vehicle) within the kind's gate (`gates_m`: vehicles, VRUs) of an
/// onboard track is the same object, seen by both.
fn merge(onboard: &[FusedObject], rsu: &[FusedLike], ego: &ActorTruth, gates_m: [f64; 2]) -> Vec<SiteObject> {
    let ego_from_site = Rotation2::new(-ego.yaw_rad);
    let origin = Point2::new(ego.center.x, ego.center.y);
    let to_ego = |o: &FusedLike, onboard_id: Option<u32>, rsu: Option<&FusedLike>| SiteObject {
        position_m: o.position_m,
        yaw_rad: o.yaw_rad,
        perceived: Perceived {
            onboard_id,
            rsu_id: rsu.map(|r| r.id),
            class: o.class,
            position_m: Point2::from(ego_from_site * (o.position_m - origin)),
            velocity_mps: ego_from_site * o.velocity_mps,
            yaw_rad: wrap_angle(o.yaw_rad - ego.yaw_rad),
            length_m: o.length_m,
            width_m: o.width_m,
            seen_by: SeenBy { onboard: onboard_id.is_some(), rsu: rsu.is_some() },
            age_s: rsu.map_or(o.age_s, |r| r.age_s.max(o.age_s)),
        },
    };
    let mut used = vec![false; rsu.len()];
    let mut out = Vec::with_capacity(onboard.len() + rsu.len());
    for o in onboard.iter().map(FusedLike::from) {
        let gate_m = if o.class.is_vru() { gates_m[1] } else { gates_m[0] };
        let best = rsu
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                !used[*i] && r.class.is_vru() == o.class.is_vru() && (r.position_m - o.position_m).norm() <= gate_m
            })
            .min_by(|a, b| (a.1.position_m - o.position_m).norm().total_cmp(&(b.1.position_m - o.position_m).norm()));
        let matched = best.map(|(i, r)| {
            used[i] = true;
            r
        });
        // Seen by both: the older track's kinematics (its velocity and heading have had longer
        // to settle), the onboard track's id.
        let kinematics = match matched {
            Some(r) if r.age_s > o.age_s => FusedLike { id: o.id, ..r.clone() },
            _ => o.clone(),
        };
        out.push(to_ego(&kinematics, Some(o.id), matched));
    }
    for (r, _) in rsu.iter().zip(&used).filter(|(_, u)| !**u) {
        out.push(to_ego(r, None, Some(r)));
    }
    out
}

/// The car's route from its position over `lookahead_m`, in its own frame.
fn route_ahead(path: &Path, s_m: f64, ego: &ActorTruth, lookahead_m: f64) -> Option<Polyline> {
    let ego_from_site = Rotation2::new(-ego.yaw_rad);
    let origin = Point2::new(ego.center.x, ego.center.y);
    let end = if path.line.is_closed() { s_m + lookahead_m } else { (s_m + lookahead_m).min(path.line.length_m()) };
    let mut points = vec![Point2::origin()];
    let mut s = s_m + 2.0;
    while s <= end {
        points.push(Point2::from(ego_from_site * (path.line.pose_at(s).position - origin)));
        s += 2.0;
    }
    Polyline::new(points, false)
}
