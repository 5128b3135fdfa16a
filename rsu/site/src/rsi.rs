//! Road safety information (RSI, PROTOCOL.md §2.10): hazards the RSU detects on its own from the
//! fused tracks of each fusion step and the site model's lanes, routes, crosswalks and
//! intersections. Sans-IO and deterministic: [`RsiDetector::step`] takes the step's time and
//! tracks and returns the events to send.
//!
//! Where: a *travel lane* is a model `lane` (not a `route`: shuttles and delivery vehicles stop on
//! their routes by design), as the corridor of its width around its centreline; the *roadway* is
//! every lane and route corridor. A track is in a corridor when its ground-contact centre is.
//!
//! - **Stopped vehicle**: a vehicle slower than `stopped_speed_mps` in a travel lane, outside every
//!   intersection area, not within `stop_line_zone_m` before its lane's stop line (waiting at the
//!   signal) and with no other slow vehicle within `queue_gap_m` ahead of it in the lane (queued
//!   behind something: only the head of a queue is reported), for `stopped_after_s`.
//! - **Pedestrian in the roadway**: a pedestrian in a lane or route corridor, in no crosswalk (grown
//!   by `crosswalk_margin_m`), for `pedestrian_after_s`.
//! - **Wrong-way vehicle**: a vehicle at `wrong_way_speed_mps` or more in a travel lane, outside
//!   intersection areas, whose direction of travel is more than `wrong_way_angle_deg` off the
//!   direction of every travel lane it is in, for `wrong_way_after_s`, having moved at least
//!   `wrong_way_min_travel_m` since (a track whose velocity estimate swings round in a dense queue
//!   has not), and with fewer than two other vehicles within 1.5 `queue_gap_m` in its lane that
//!   stand or go the lane's way (in a dense queue a track can hop from car to car backwards).
//! - **Congestion**: a lane segment (`congestion_segment_m` long, counted back from the lane's
//!   stop line, or from its start) holding `congestion_min_vehicles` vehicles or more whose mean
//!   speed is under `congestion_speed_mps`, for `congestion_after_s`. A vehicle counts in one
//!   lane: the corridor that fits its direction best (the nearest centreline when slow).
//!
//! Hysteresis: a condition must hold at every step for its onset time before its event starts
//! (`Start`); while it holds, an `Update` goes out every `update_interval_s` with the current
//! position, confidence and tracks; once it has not held for `end_after_s` the event ends (`End`).
//! Tracks whose existence confidence is under `min_existence` are ignored.

use std::collections::BTreeMap;

use nalgebra::{Point2, Vector2};
use rsu_fusion::{FusedObject, ObjectClass, Timestamp};
use serde::{Deserialize, Serialize};
use v2x_proto::convert::{MAX_EVENT_OFFSET_DM, MAX_EVENT_TRACKS};
use v2x_proto::domain::{RsiEvent, RsiEventPhase, RsiEventType};

use crate::geometry::{Polyline, point_segment_distance, wrap_angle};
use crate::model::{PathKind, SiteModel};

/// The detector's thresholds (`[rsi]` of the daemon's configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RsiConfig {
    /// Detect and send events at all.
    pub enabled: bool,
    /// A vehicle slower than this is stopped [m/s].
    pub stopped_speed_mps: f64,
    /// How long a vehicle must stand before it is reported [s].
    pub stopped_after_s: f64,
    /// A vehicle standing this close before its lane's stop line waits at the signal [m].
    pub stop_line_zone_m: f64,
    /// A stopped vehicle with a slow vehicle this close ahead is queued, not reported [m].
    pub queue_gap_m: f64,
    /// How long a pedestrian must be in the roadway before it is reported [s].
    pub pedestrian_after_s: f64,
    /// How far around a crosswalk a pedestrian still counts as on it [m].
    pub crosswalk_margin_m: f64,
    /// Slowest speed at which a vehicle's direction is trusted for wrong-way [m/s].
    pub wrong_way_speed_mps: f64,
    /// Angle off the lane's direction that counts as wrong way [deg].
    pub wrong_way_angle_deg: f64,
    /// How long a vehicle must drive the wrong way before it is reported [s].
    pub wrong_way_after_s: f64,
    /// How far it must have driven the wrong way before it is reported [m].
    pub wrong_way_min_travel_m: f64,
    /// Mean speed under which a lane segment is congested [m/s].
    pub congestion_speed_mps: f64,
    /// Fewest vehicles in a congested segment.
    pub congestion_min_vehicles: usize,
    /// Length of a lane segment [m].
    pub congestion_segment_m: f64,
    /// How long a segment must stay congested before it is reported [s].
    pub congestion_after_s: f64,
    /// An event ends once its condition has not held for this long [s].
    pub end_after_s: f64,
    /// An event still going on is sent again this often [s].
    pub update_interval_s: f64,
    /// Tracks less likely to exist than this are ignored (0..1).
    pub min_existence: f64,
}

impl Default for RsiConfig {
    fn default() -> Self {
        RsiConfig {
            enabled: true,
            stopped_speed_mps: 0.5,
            stopped_after_s: 5.0,
            stop_line_zone_m: 25.0,
            queue_gap_m: 12.0,
            pedestrian_after_s: 1.0,
            crosswalk_margin_m: 1.0,
            wrong_way_speed_mps: 3.0,
            wrong_way_angle_deg: 135.0,
            wrong_way_after_s: 2.0,
            wrong_way_min_travel_m: 15.0,
            congestion_speed_mps: 2.0,
            congestion_min_vehicles: 8,
            congestion_segment_m: 100.0,
            congestion_after_s: 5.0,
            end_after_s: 2.0,
            update_interval_s: 1.0,
            min_existence: 0.5,
        }
    }
}

impl RsiConfig {
    /// Checks every threshold; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, f64, f64, f64); 16] = [
            ("stopped_speed_mps", self.stopped_speed_mps, 0.01, 5.0),
            ("stopped_after_s", self.stopped_after_s, 0.1, 3600.0),
            ("stop_line_zone_m", self.stop_line_zone_m, 0.0, 500.0),
            ("queue_gap_m", self.queue_gap_m, 0.0, 100.0),
            ("pedestrian_after_s", self.pedestrian_after_s, 0.0, 3600.0),
            ("crosswalk_margin_m", self.crosswalk_margin_m, 0.0, 20.0),
            ("wrong_way_speed_mps", self.wrong_way_speed_mps, 0.5, 70.0),
            ("wrong_way_angle_deg", self.wrong_way_angle_deg, 90.0, 180.0),
            ("wrong_way_after_s", self.wrong_way_after_s, 0.0, 3600.0),
            ("wrong_way_min_travel_m", self.wrong_way_min_travel_m, 0.0, 1000.0),
            ("congestion_speed_mps", self.congestion_speed_mps, 0.1, 30.0),
            ("congestion_segment_m", self.congestion_segment_m, 10.0, 2000.0),
            ("congestion_after_s", self.congestion_after_s, 0.0, 3600.0),
            ("end_after_s", self.end_after_s, 0.0, 600.0),
            ("update_interval_s", self.update_interval_s, 0.1, 600.0),
            ("min_existence", self.min_existence, 0.0, 1.0),
        ];
        for (name, v, lo, hi) in checks {
            if !(lo..=hi).contains(&v) {
                return Err(format!("rsi.{name} = {v} is outside {lo}..={hi}"));
            }
        }
        if !(1..=MAX_EVENT_TRACKS).contains(&self.congestion_min_vehicles) {
            return Err(format!("rsi.congestion_min_vehicles must be 1..={MAX_EVENT_TRACKS}"));
        }
        Ok(())
    }
}

/// What the detector needs of a fused track.
#[derive(Clone, Debug, PartialEq)]
pub struct RsiTrack {
    /// Track id (the participant id of the broadcast).
    pub id: u32,
    /// Fused class.
    pub class: ObjectClass,
    /// Confidence that it exists, 0..1.
    pub existence: f64,
    /// Ground-contact centre, site frame [m].
    pub position_m: Point2<f64>,
    /// Velocity over ground (east, north) [m/s].
    pub velocity_mps: Vector2<f64>,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
}

impl RsiTrack {
    fn speed_mps(&self) -> f64 {
        self.velocity_mps.norm()
    }
}

impl From<&FusedObject> for RsiTrack {
    fn from(o: &FusedObject) -> Self {
        RsiTrack {
            id: o.id,
            class: o.class,
            existence: o.existence_confidence,
            position_m: Point2::new(o.position_m.x, o.position_m.y),
            velocity_mps: o.velocity_mps,
            yaw_rad: o.yaw_rad,
        }
    }
}

/// A lane or route corridor.
struct Corridor {
    id: String,
    line: Polyline,
    half_width_m: f64,
    /// A travel lane (not a route).
    travel: bool,
    /// A lane with no turn.
    straight: bool,
    stop_at_m: Option<f64>,
}

/// What identifies a condition over time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A per-track event.
    Track(RsiEventType, u32),
    /// Congestion of a lane segment.
    Segment(String, i64),
}

/// A condition seen at one step.
struct Observation {
    key: Key,
    event_type: RsiEventType,
    position_m: Point2<f64>,
    confidence: f64,
    track_ids: Vec<u32>,
    lane: String,
}

struct Active {
    event: RsiEvent,
    last_held: Timestamp,
    last_sent: Timestamp,
}

/// The RSI detector of one site.
pub struct RsiDetector {
    config: RsiConfig,
    corridors: Vec<Corridor>,
    crosswalks: Vec<Vec<Point2<f64>>>,
    intersections: Vec<Vec<Point2<f64>>>,
    /// When and where each condition not yet an event began to hold.
    pending: BTreeMap<Key, (Timestamp, Point2<f64>)>,
    active: BTreeMap<Key, Active>,
    next_id: u32,
}

fn is_vehicle(class: ObjectClass) -> bool {
    matches!(
        class,
        ObjectClass::Car
            | ObjectClass::Van
            | ObjectClass::Truck
            | ObjectClass::Bus
            | ObjectClass::Shuttle
            | ObjectClass::Delivery
            | ObjectClass::Emergency
            | ObjectClass::Motorcyclist
    )
}

fn inside(polygon: &[Point2<f64>], p: &Point2<f64>) -> bool {
    let poly: Vec<[f64; 2]> = polygon.iter().map(|q| [q.x, q.y]).collect();
    rsu_fusion::calibration::point_in_polygon(&poly, p.x, p.y)
}

fn near_polygon(polygon: &[Point2<f64>], p: &Point2<f64>, margin_m: f64) -> bool {
    inside(polygon, p)
        || (0..polygon.len())
            .any(|i| point_segment_distance(p, &polygon[i], &polygon[(i + 1) % polygon.len()]) <= margin_m)
}

/// Where a track lies on one corridor.
struct OnLane<'a> {
    corridor: &'a Corridor,
    s_m: f64,
    lateral_m: f64,
    /// Its direction of travel against the lane's [rad], 0..=π.
    angle_rad: f64,
}

impl RsiDetector {
    /// A detector for `site` with `config`.
    pub fn new(site: &SiteModel, config: RsiConfig) -> RsiDetector {
        let corridors = site
            .paths
            .values()
            .filter(|p| matches!(p.kind, PathKind::Lane | PathKind::Route))
            .map(|p| Corridor {
                id: p.id.clone(),
                line: p.line.clone(),
                half_width_m: p.width_m / 2.0,
                travel: p.kind == PathKind::Lane,
                straight: p.turn.is_none(),
                stop_at_m: p.stop.as_ref().map(|s| s.stop_at_m),
            })
            .collect();
        RsiDetector {
            config,
            corridors,
            crosswalks: site.crosswalks.iter().map(|c| c.polygon.clone()).collect(),
            intersections: site.intersections.iter().map(|i| i.polygon.clone()).collect(),
            pending: BTreeMap::new(),
            active: BTreeMap::new(),
            next_id: 1,
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &RsiConfig {
        &self.config
    }

    /// Events going on now.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    fn lanes_of<'a>(&'a self, p: &Point2<f64>, heading_rad: f64) -> Vec<OnLane<'a>> {
        self.corridors
            .iter()
            .filter_map(|c| {
                let (s_m, lateral_m) = c.line.project(p);
                if lateral_m.abs() > c.half_width_m {
                    return None;
                }
                let lane_heading = c.line.pose_at(s_m).heading_rad;
                Some(OnLane { corridor: c, s_m, lateral_m, angle_rad: wrap_angle(heading_rad - lane_heading).abs() })
            })
            .collect()
    }

    fn in_intersection(&self, p: &Point2<f64>) -> bool {
        self.intersections.iter().any(|poly| inside(poly, p))
    }

    /// One fusion step at `now` with its `tracks`: the events that start, go on (when an update
    /// is due) or end.
    pub fn step(&mut self, now: Timestamp, tracks: &[RsiTrack]) -> Vec<RsiEvent> {
        if !self.config.enabled {
            return Vec::new();
        }
        let observations = self.observe(tracks);
        let mut out = Vec::new();
        let mut held: Vec<Key> = Vec::with_capacity(observations.len());
        for o in observations {
            held.push(o.key.clone());
            let onset_s = match o.event_type {
                RsiEventType::StoppedVehicle => self.config.stopped_after_s,
                RsiEventType::PedestrianInRoadway => self.config.pedestrian_after_s,
                RsiEventType::WrongWayVehicle => self.config.wrong_way_after_s,
                RsiEventType::Congestion => self.config.congestion_after_s,
            };
            let (since, from) = *self.pending.entry(o.key.clone()).or_insert((now, o.position_m));
            // A wrong-way vehicle must also have covered some ground: a track whose velocity
            // estimate swings round in a dense queue has not.
            let far_enough = o.event_type != RsiEventType::WrongWayVehicle
                || (o.position_m - from).norm() >= self.config.wrong_way_min_travel_m;
            let fields = |event: &mut RsiEvent| {
                event.position_dm = [dm(o.position_m.x), dm(o.position_m.y)];
                event.confidence_pct = (o.confidence * 100.0).round().clamp(1.0, 100.0) as u8;
                event.track_ids = o.track_ids.clone();
                event.lane = o.lane.clone();
                event.time = now;
            };
            match self.active.get_mut(&o.key) {
                Some(active) => {
                    active.last_held = now;
                    fields(&mut active.event);
                    if now.secs_since(active.last_sent) >= self.config.update_interval_s {
                        active.event.phase = RsiEventPhase::Update;
                        active.last_sent = now;
                        out.push(active.event.clone());
                    }
                }
                None if now.secs_since(since) >= onset_s && far_enough => {
                    let mut event = RsiEvent {
                        event_id: self.next_id,
                        event_type: o.event_type,
                        phase: RsiEventPhase::Start,
                        time: now,
                        start_time: since,
                        position_dm: [0, 0],
                        confidence_pct: 1,
                        track_ids: Vec::new(),
                        lane: String::new(),
                    };
                    self.next_id = self.next_id.checked_add(1).unwrap_or(1);
                    fields(&mut event);
                    out.push(event.clone());
                    self.active.insert(o.key.clone(), Active { event, last_held: now, last_sent: now });
                }
                None => {}
            }
        }
        held.sort();
        // A condition that did not hold at this step starts its onset over.
        self.pending.retain(|k, _| held.binary_search(k).is_ok());
        let end_after_s = self.config.end_after_s;
        let ended: Vec<Key> = self
            .active
            .iter()
            .filter(|(k, a)| held.binary_search(k).is_err() && now.secs_since(a.last_held) >= end_after_s)
            .map(|(k, _)| k.clone())
            .collect();
        for k in ended {
            if let Some(mut a) = self.active.remove(&k) {
                a.event.phase = RsiEventPhase::End;
                a.event.time = now;
                out.push(a.event);
            }
        }
        out
    }

    /// Every condition that holds among `tracks`.
    fn observe(&self, tracks: &[RsiTrack]) -> Vec<Observation> {
        let c = &self.config;
        let tracks: Vec<&RsiTrack> = tracks.iter().filter(|t| t.existence >= c.min_existence).collect();
        let mut out = Vec::new();
        // Per lane segment: (ids, speeds, positions, confidences) of the vehicles in it.
        let mut segments: BTreeMap<(String, i64), Vec<&RsiTrack>> = BTreeMap::new();
        for t in &tracks {
            let p = t.position_m;
            let moving = t.speed_mps() >= c.wrong_way_speed_mps;
            let heading = if moving { t.velocity_mps.y.atan2(t.velocity_mps.x) } else { t.yaw_rad };
            let lanes = self.lanes_of(&p, heading);
            if t.class == ObjectClass::Pedestrian {
                let in_crosswalk = self.crosswalks.iter().any(|cw| near_polygon(cw, &p, c.crosswalk_margin_m));
                if let Some(lane) = lanes.first().filter(|_| !in_crosswalk) {
                    out.push(Observation {
                        key: Key::Track(RsiEventType::PedestrianInRoadway, t.id),
                        event_type: RsiEventType::PedestrianInRoadway,
                        position_m: p,
                        confidence: t.existence,
                        track_ids: vec![t.id],
                        lane: lane.corridor.id.clone(),
                    });
                }
                continue;
            }
            if !is_vehicle(t.class) {
                continue;
            }
            let travel: Vec<&OnLane<'_>> = lanes.iter().filter(|l| l.corridor.travel).collect();
            // The lane it drives in: the best-fitting direction when moving, else the nearest
            // centreline. Among lanes within a tolerance of the best (a through lane and the turn
            // lanes that share its approach or its exit) the first straight one by id, else the
            // first by id: one physical lane is one lane here.
            let fit = |l: &OnLane<'_>| if moving { l.angle_rad } else { l.lateral_m.abs() };
            let tolerance = if moving { 0.05 } else { 0.1 };
            let best_fit = travel.iter().map(|l| fit(l)).fold(f64::INFINITY, f64::min);
            let fitting = || travel.iter().filter(|l| fit(l) <= best_fit + tolerance);
            let Some(best) = fitting().find(|l| l.corridor.straight).or_else(|| fitting().next()) else { continue };
            let in_box = self.in_intersection(&p);
            let segment_m = c.congestion_segment_m;
            let segment = match best.corridor.stop_at_m {
                Some(stop) => ((stop - best.s_m) / segment_m).floor() as i64,
                None => (best.s_m / segment_m).floor() as i64,
            };
            segments.entry((best.corridor.id.clone(), segment)).or_default().push(t);
            if in_box {
                continue;
            }
            let wrong_way_rad = c.wrong_way_angle_deg.to_radians();
            // In a dense queue a track can hop from one car to the next one back and seem to
            // drive the wrong way: not while other vehicles in its lane close by go the lane's
            // way or stand.
            let in_queue = || {
                let lane_heading = best.corridor.line.pose_at(best.s_m).heading_rad;
                let others = tracks.iter().filter(|o| {
                    o.id != t.id
                        && is_vehicle(o.class)
                        && (o.position_m - p).norm() <= c.queue_gap_m * 1.5
                        && best.corridor.line.project(&o.position_m).1.abs() <= best.corridor.half_width_m
                        && (o.speed_mps() < c.wrong_way_speed_mps
                            || wrong_way_rad
                                > wrap_angle(o.velocity_mps.y.atan2(o.velocity_mps.x) - lane_heading).abs())
                });
                others.count() >= 2
            };
            if moving && travel.iter().all(|l| l.angle_rad > wrong_way_rad) && !in_queue() {
                out.push(Observation {
                    key: Key::Track(RsiEventType::WrongWayVehicle, t.id),
                    event_type: RsiEventType::WrongWayVehicle,
                    position_m: p,
                    confidence: t.existence,
                    track_ids: vec![t.id],
                    lane: best.corridor.id.clone(),
                });
            }
            if t.speed_mps() < c.stopped_speed_mps {
                let at_stop_line =
                    best.corridor.stop_at_m.is_some_and(|stop| (0.0..=c.stop_line_zone_m).contains(&(stop - best.s_m)));
                let queued = tracks.iter().any(|o| {
                    if o.id == t.id || !is_vehicle(o.class) || o.speed_mps() >= c.wrong_way_speed_mps {
                        return false;
                    }
                    let (s_o, lateral_o) = best.corridor.line.project(&o.position_m);
                    lateral_o.abs() <= best.corridor.half_width_m
                        && (0.0..=c.queue_gap_m).contains(&(s_o - best.s_m))
                        && s_o > best.s_m
                });
                if !at_stop_line && !queued {
                    out.push(Observation {
                        key: Key::Track(RsiEventType::StoppedVehicle, t.id),
                        event_type: RsiEventType::StoppedVehicle,
                        position_m: p,
                        confidence: t.existence,
                        track_ids: vec![t.id],
                        lane: best.corridor.id.clone(),
                    });
                }
            }
        }
        for ((lane, index), members) in segments {
            if members.len() < c.congestion_min_vehicles {
                continue;
            }
            let n = members.len() as f64;
            let mean_speed = members.iter().map(|t| t.speed_mps()).sum::<f64>() / n;
            if mean_speed >= c.congestion_speed_mps {
                continue;
            }
            let centre = members.iter().fold(Vector2::zeros(), |acc, t| acc + t.position_m.coords) / n;
            let mut track_ids: Vec<u32> = members.iter().map(|t| t.id).collect();
            track_ids.sort_unstable();
            track_ids.truncate(MAX_EVENT_TRACKS);
            out.push(Observation {
                key: Key::Segment(lane.clone(), index),
                event_type: RsiEventType::Congestion,
                position_m: Point2::from(centre),
                confidence: members.iter().map(|t| t.existence).sum::<f64>() / n,
                track_ids,
                lane,
            });
        }
        out
    }
}

/// A site-frame coordinate [m] as the wire's decimetres, within its range.
fn dm(v_m: f64) -> i32 {
    let limit = f64::from(MAX_EVENT_OFFSET_DM);
    (v_m * 10.0).round().clamp(-limit, limit) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000_000_000_000;

    fn at(s: f64) -> Timestamp {
        Timestamp::from_nanos(T0).add_secs(s)
    }

    fn track(id: u32, class: ObjectClass, x: f64, y: f64, vx: f64, vy: f64) -> RsiTrack {
        RsiTrack {
            id,
            class,
            existence: 0.9,
            position_m: Point2::new(x, y),
            velocity_mps: Vector2::new(vx, vy),
            yaw_rad: if vx.hypot(vy) > 0.1 { vy.atan2(vx) } else { 0.0 },
        }
    }

    fn detector() -> RsiDetector {
        RsiDetector::new(&SiteModel::embedded().expect("site"), RsiConfig::default())
    }

    /// Runs `frames` (tracks at each 0.1 s step) and returns every event.
    fn run(d: &mut RsiDetector, steps: usize, tracks: impl Fn(f64) -> Vec<RsiTrack>) -> Vec<RsiEvent> {
        (0..steps)
            .flat_map(|k| {
                let t = k as f64 * 0.1;
                d.step(at(t), &tracks(t))
            })
            .collect()
    }

    fn of(events: &[RsiEvent], ty: RsiEventType, phase: RsiEventPhase) -> Vec<&RsiEvent> {
        events.iter().filter(|e| e.event_type == ty && e.phase == phase).collect()
    }

    #[test]
    fn a_car_stopped_in_a_lane_is_reported_after_its_onset_with_updates_and_an_end() {
        let mut d = detector();
        // A car standing in eb-2 80 m before the stop line (x = -93.5), from 0 to 12 s, then gone.
        let events =
            run(
                &mut d,
                160,
                |t| {
                    if t < 12.0 { vec![track(7, ObjectClass::Car, -93.5, -5.25, 0.05, 0.0)] } else { vec![] }
                },
            );
        let starts = of(&events, RsiEventType::StoppedVehicle, RsiEventPhase::Start);
        assert_eq!(starts.len(), 1, "{events:?}");
        let start = starts[0];
        assert_eq!(start.track_ids, [7]);
        assert_eq!(start.lane, "eb-2");
        assert_eq!(start.position_dm, [-935, -53]);
        assert_eq!(start.start_time, at(0.0));
        assert!((start.time.secs_since(at(5.0))).abs() < 0.11, "onset 5 s: {:?}", start.time);
        assert_eq!(start.confidence_pct, 90);
        let updates = of(&events, RsiEventType::StoppedVehicle, RsiEventPhase::Update);
        assert!((6..=7).contains(&updates.len()), "about one a second: {}", updates.len());
        let ends = of(&events, RsiEventType::StoppedVehicle, RsiEventPhase::End);
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].event_id, start.event_id);
        assert!(ends[0].time >= at(13.85) && ends[0].time <= at(14.05), "ends 2 s after the car was last seen");
        assert_eq!(events.len(), 2 + updates.len());
    }

    #[test]
    fn waiting_at_a_stop_line_in_a_queue_or_moving_is_not_a_stopped_vehicle() {
        let mut d = detector();
        let events = run(&mut d, 150, |t| {
            vec![
                // The head of a queue 3 m before eb-2's stop line (x = -13.5), two behind it.
                track(1, ObjectClass::Car, -16.5, -5.25, 0.0, 0.0),
                track(2, ObjectClass::Car, -24.0, -5.25, 0.0, 0.0),
                track(3, ObjectClass::Van, -31.5, -5.25, 0.0, 0.0),
                // A car standing behind a broken-down one: only the broken-down one is reported.
                track(4, ObjectClass::Car, -120.0, -1.75, 0.0, 0.0),
                track(5, ObjectClass::Car, -128.0, -1.75, 0.0, 0.0),
                // Cars moving on, a parked bus at the kerb, a car waiting in the box to turn.
                track(6, ObjectClass::Car, -200.0 + 12.0 * t, -5.25, 12.0, 0.0),
                track(8, ObjectClass::Bus, -57.0, -8.4, 0.0, 0.0),
                track(9, ObjectClass::Car, 1.0, -1.0, 0.0, 0.0),
            ]
        });
        let starts = of(&events, RsiEventType::StoppedVehicle, RsiEventPhase::Start);
        assert_eq!(starts.len(), 1, "{starts:?}");
        assert_eq!(starts[0].track_ids, [4]);
        assert!(of(&events, RsiEventType::WrongWayVehicle, RsiEventPhase::Start).is_empty());
        assert!(of(&events, RsiEventType::Congestion, RsiEventPhase::Start).is_empty());
    }

    #[test]
    fn a_pedestrian_in_a_lane_outside_a_crosswalk_is_reported_not_on_the_crosswalk_or_sidewalk() {
        let mut d = detector();
        let events = run(&mut d, 40, |t| {
            vec![
                // Jaywalking across the avenue 60 m west of the intersection.
                track(11, ObjectClass::Pedestrian, -60.0, -6.0 + 1.3 * t, 0.0, 1.3),
                // On the west crosswalk (x -12..-8) and on the south sidewalk.
                track(12, ObjectClass::Pedestrian, -10.0, -4.0 + 1.3 * t, 0.0, 1.3),
                track(13, ObjectClass::Pedestrian, -40.0 + 1.3 * t, -12.3, 1.3, 0.0),
            ]
        });
        let starts = of(&events, RsiEventType::PedestrianInRoadway, RsiEventPhase::Start);
        assert_eq!(starts.len(), 1, "{starts:?}");
        assert_eq!(starts[0].track_ids, [11]);
        assert!(starts[0].time.secs_since(at(1.0)).abs() < 0.11);
    }

    #[test]
    fn a_vehicle_against_its_lane_is_a_wrong_way_vehicle_and_one_with_it_is_not() {
        let mut d = detector();
        let events = run(&mut d, 40, |t| {
            let queue =
                (0..12).map(|k| track(80 + k, ObjectClass::Car, -200.0 + 7.0 * f64::from(k) + t, -5.25, 1.0, 0.0));
            queue
                .chain([
                    // Westbound in eb-1 (eastbound) at 10 m/s.
                    track(21, ObjectClass::Car, -50.0 - 10.0 * t, -1.75, -10.0, 0.0),
                    // Westbound in wb-1, eastbound in eb-2, northbound in nb-1: all right.
                    track(22, ObjectClass::Car, 100.0 - 10.0 * t, 1.75, -10.0, 0.0),
                    track(23, ObjectClass::Car, -150.0 + 10.0 * t, -5.25, 10.0, 0.0),
                    track(24, ObjectClass::Truck, 1.75, -150.0 + 10.0 * t, 0.0, 10.0),
                    // A queued car whose velocity estimate points backwards but which goes nowhere.
                    track(25, ObjectClass::Car, -100.0, -5.25 + 0.1 * (t * 7.0).sin(), -4.0, 0.0),
                    // A track hopping backwards along a queue creeping east in eb-2 (x -200..-120).
                    track(26, ObjectClass::Car, -125.0 - 7.0 * t, -5.25, -7.0, 0.0),
                ])
                .collect()
        });
        let starts = of(&events, RsiEventType::WrongWayVehicle, RsiEventPhase::Start);
        assert_eq!(starts.len(), 1, "{events:?}");
        assert_eq!((starts[0].track_ids.as_slice(), starts[0].lane.as_str()), ([21].as_slice(), "eb-1"));
        assert!(events.iter().all(|e| e.event_type == RsiEventType::WrongWayVehicle));
    }

    #[test]
    fn a_long_slow_queue_is_congestion_and_a_short_or_moving_one_is_not() {
        let mut d = detector();
        // Eight cars creeping at 1 m/s 20..76 m before nb-1's stop line (y = -13.5); three cars
        // waiting at sb-1's stop line (too few); eight moving at 10 m/s in wb-2.
        let events = run(&mut d, 80, |t| {
            let mut v: Vec<RsiTrack> = (0..8)
                .map(|k| track(30 + k, ObjectClass::Car, 1.75, -90.0 + 8.0 * f64::from(k) + t, 0.0, 1.0))
                .collect();
            v.extend((0..3).map(|k| track(40 + k, ObjectClass::Car, -1.75, 20.0 + 8.0 * f64::from(k), 0.0, 0.0)));
            v.extend(
                (0..8)
                    .map(|k| track(50 + k, ObjectClass::Car, 150.0 + 8.0 * f64::from(k) - 10.0 * t, 5.25, -10.0, 0.0)),
            );
            v
        });
        let starts = of(&events, RsiEventType::Congestion, RsiEventPhase::Start);
        assert!(!starts.is_empty(), "{events:?}");
        assert!(
            starts.iter().all(|e| e.lane == "nb-1" && e.track_ids.iter().all(|id| (30..38).contains(id))),
            "{starts:?}"
        );
        assert!(starts[0].time.secs_since(at(5.0)).abs() < 0.11);
        assert!(events.iter().all(|e| e.event_type == RsiEventType::Congestion), "{events:?}");
    }

    #[test]
    fn normal_traffic_raises_nothing() {
        let mut d = detector();
        // Through traffic on every approach at 8..12 m/s, pedestrians on sidewalks and crosswalks,
        // a bus at its stop, cars waiting at the stop lines for 20 s.
        let events = run(&mut d, 300, |t| {
            let mut v = vec![
                track(60, ObjectClass::Bus, -57.0, -8.4, 0.0, 0.0),
                track(61, ObjectClass::Car, -15.0, -1.75, 0.0, 0.0),
                track(62, ObjectClass::Car, 1.75, -16.0, 0.0, 0.0),
                track(63, ObjectClass::Pedestrian, -40.0 + 1.2 * t, -12.3, 1.2, 0.0),
                track(64, ObjectClass::Pedestrian, 10.0, -6.0 + 0.4 * t, 0.0, 0.4),
            ];
            for (k, (x, y, vx, vy)) in
                [(-200.0, -5.25, 11.0, 0.0), (200.0, 1.75, -12.0, 0.0), (-1.75, 180.0, 0.0, -9.0)]
                    .into_iter()
                    .enumerate()
            {
                v.push(track(70 + k as u32, ObjectClass::Car, x + vx * t, y + vy * t, vx, vy));
            }
            v
        });
        assert!(events.is_empty(), "{events:?}");
    }
}
