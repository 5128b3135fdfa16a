//! The scenario catalogue: named, described set-ups of the world drawn from the CSAE Day-1/Day-2
//! applications, each with the outcome a test engineer should expect. [`build`] turns a name and
//! a seed into a ready world plus the sensor conditions (light, weather, outages).

use std::sync::Arc;

use nalgebra::Point2;
use rand::Rng;
use rsu_fusion::{ObjectClass, Timestamp};

use crate::actors::{DriverParams, Motion};
use crate::gnss::Spoof;
use crate::sensors::{Environment, Outage};
use crate::world::{Action, Spawner, VehicleSpec, World};
use rsu_site::geometry::Polyline;
use rsu_site::model::{Path, PathKind, SiteModel};

/// A catalogue entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScenarioInfo {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line for listings.
    pub summary: &'static str,
    /// What happens.
    pub description: &'static str,
    /// What a correct RSU / vehicle stack should show.
    pub expected_outcome: &'static str,
    /// Suggested recording length [s].
    pub default_duration_s: f64,
}

/// Every scenario, the default demo (`bus-pedestrian`) first.
pub const CATALOGUE: [ScenarioInfo; 11] = [
    ScenarioInfo {
        name: "bus-pedestrian",
        summary: "VRU collision warning: a pedestrian steps out from behind a bus parked at the kerb",
        description: "A connected car (cv-bus-ped) drives east at 40 km/h in the outer lane towards the city-block \
            intersection. A bus stands at the kerb stop 45 m west of the intersection; a pedestrian walks out in front \
            of it across the avenue. The bus hides the pedestrian from the car until the pedestrian is in its lane; \
            the SW pole's lidar and camera see the pedestrian all the time.",
        expected_outcome: "The roadside lidar-sw and cam-sw see the pedestrian from the moment it starts \
            walking (3.6 s), about 2.7 s before the car's own line of sight opens (6.3 s, as it reaches the lane). \
            The car, reacting on its own, brakes hard and stops about 1.6 m short; a V2X-aided car could warn \
            (VRUCW) 2-3 s earlier.",
        default_duration_s: 15.0,
    },
    ScenarioInfo {
        name: "occluded-cross-traffic",
        summary: "Intersection collision warning: a red-light runner hidden by the corner building",
        description: "A connected car (cv-icw) drives north on green at 50 km/h. From the west a car runs the red \
            light at 50 km/h; the SW corner building hides each from the other until both are at the stop lines. \
            Queued cars wait at the red light in the other eastbound lane.",
        expected_outcome: "Both cars are tracked by lidar-ne/lidar-sw and the cameras at least 3 s before the \
            conflict point; ICW (and red-light violation) warnings are due 3 s ahead. Neither driver sees the other \
            in time: the runner crosses about 1 s in front of the connected car (a near miss in the ground truth).",
        default_duration_s: 15.0,
    },
    ScenarioInfo {
        name: "left-turn-oncoming",
        summary: "Left turn assist: oncoming car hidden behind a truck waiting to turn",
        description: "A connected car (cv-lta) turns left from the westbound avenue on a permissive green. An \
            oncoming truck waits in the inner eastbound lane to turn left and hides a car coming straight on in the \
            outer eastbound lane at 50 km/h.",
        expected_outcome: "The RSU tracks the through car hidden behind the truck all the way; a left-turn-assist \
            warning is due before the connected car starts its turn. The turning car, not seeing it, turns in front \
            of it and the through car has to brake (a near miss in the ground truth).",
        default_duration_s: 16.0,
    },
    ScenarioInfo {
        name: "stopped-vehicle",
        summary: "Forward collision warning: a stopped car beyond line of sight at the tunnel mouth",
        description: "On the multi-lane road a connected car (cv-fcw) follows a truck at 60 km/h towards the \
            tunnel. A broken-down car stands in their lane just inside the tunnel mouth. The truck swerves into the \
            next lane at the last moment, leaving the car facing the stopped vehicle.",
        expected_outcome: "lidar-portal and cam-portal report the stopped car for the whole run, long before the \
            connected car can see it; FCW is due as soon as the truck swerves (about 8.5 s). The car, following \
            at 0.8 s headway, brakes at up to 3.5 m/s² and stops a few metres short.",
        default_duration_s: 15.0,
    },
    ScenarioInfo {
        name: "emergency-vehicle",
        summary: "Emergency vehicle warning: an ambulance crosses the intersection on red",
        description: "An emergency vehicle comes from the east at 60 km/h and crosses the intersection on red. \
            North-south traffic, including a connected car (cv-evw), stops to let it through, then moves on.",
        expected_outcome: "The RSU tracks the emergency vehicle (class emergency) through the intersection; EVW is \
            due for cv-evw; no conflict in the ground truth because N-S traffic yields.",
        default_duration_s: 18.0,
    },
    ScenarioInfo {
        name: "shuttle-loop",
        summary: "Low-speed driverless shuttle and delivery vehicle on the 1.5 km loop among pedestrians and cyclists",
        description: "A driverless shuttle (shuttle-1) and a delivery vehicle (delivery-1), both connected, drive the \
            1.57 km loop at up to 20 km/h behind cyclists, past the shuttle stop pole (lidar-loop). Pedestrians walk \
            the sidewalks and some cross the loop road away from any crosswalk.",
        expected_outcome: "Shuttle and delivery vehicle slow behind cyclists and stop for crossing pedestrians; \
            lidar-loop tracks every participant near the stop; their self-reports match the RSU tracks to within \
            the RTK accuracy.",
        default_duration_s: 20.0,
    },
    ScenarioInfo {
        name: "congested-intersection",
        summary: "Stress: more than 300 participants at the city-block intersection",
        description: "Every approach of the intersection is queued back 200 m (cars, vans, buses, trucks, cyclists), \
            the crosswalks and sidewalks are crowded, and more traffic keeps arriving; the signal plan cycles \
            normally.",
        expected_outcome: "More than 300 ground-truth participants; the RSU must keep up in real time, and its \
            broadcast frame must stay within the sensor-sharing size budget (e.g. by region filtering).",
        default_duration_s: 10.0,
    },
    ScenarioInfo {
        name: "lidar-failure",
        summary: "Degradation: lidar-ne delivers nothing for 5 s in the middle of busy traffic",
        description: "Ordinary traffic at the intersection. From 5 s to 10 s lidar-ne sends no frames (power or \
            network failure); its frame counter jumps when it comes back.",
        expected_outcome: "Tracks in lidar-ne's exclusive coverage coast and then rely on the cameras and lidar-sw; \
            the sensor health report flags lidar-ne as silent within about 1 s and healthy again after recovery.",
        default_duration_s: 15.0,
    },
    ScenarioInfo {
        name: "camera-night",
        summary: "Degradation: camera-only perception at night",
        description: "Evening traffic and pedestrians at the intersection after dark; every lidar is out for the \
            whole run, so only the cameras (night mode: more pixel noise, more misses of small and distant objects, \
            more false positives) see the scene.",
        expected_outcome: "Objects are tracked from cameras alone with ground positions from the known ground plane; \
            position errors grow with range; distant pedestrians are missed more often than by day.",
        default_duration_s: 15.0,
    },
    ScenarioInfo {
        name: "tunnel-exit-gnss",
        summary: "Degraded GNSS: connected vehicles leave the 840 m tunnel on dead reckoning",
        description: "Three connected vehicles (cv-tunnel-1..3) drive west out of the tunnel onto the multi-lane \
            road at 55-65 km/h. Inside they dead-reckon; after the portal their receivers need 2.5 s for a fix, \
            then report standalone, then differential accuracy.",
        expected_outcome: "Self-reports carry GNSS status dead_reckoning then standalone with metres of error that \
            the reported accuracy reflects; lidar-portal and cam-portal see the vehicles exit, so the fused positions \
            are far better than the self-reports until RTK returns.",
        default_duration_s: 20.0,
    },
    ScenarioInfo {
        name: "v2x-spoofing",
        summary: "Misbehaviour: two connected cars lie about where they are, two honest ones do not",
        description: "On the avenue west of the city-block intersection, in lidar-sw's and lidar-ne's view, four \
            connected cars drive through. spoof-jump (eastbound, outer lane) reports honestly, then from 5 s on \
            reports itself 7 m north, in the westbound inner lane: its position jumps. spoof-drift (westbound, \
            outer lane) reports honestly, then from 4 s on slides its reported position south at 5 m/s to 7 m off, \
            a ghost crossing into the eastbound lanes. cv-honest-1 and cv-honest-2 report honestly throughout; \
            unconnected traffic and pedestrians share the road.",
        expected_outcome: "The RSU flags spoof-jump for a teleport on its first lying report and keeps it flagged \
            (lidar mismatch) while it lies; it flags spoof-drift for a lidar mismatch well within 1 s of its lie \
            exceeding 2.5 m; neither lie reaches the broadcast (reports that disagree with the lidar track are \
            withheld); the honest cars are never flagged.",
        default_duration_s: 12.0,
    },
];

/// Why a scenario could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    /// Not in the catalogue.
    #[error("unknown scenario {0:?} (run `vehicle-sim scenarios` for the list)")]
    Unknown(String),
    /// The site lacks a path the scenario needs.
    #[error("the site has no path {0:?} needed by this scenario")]
    MissingPath(String),
}

/// A scenario ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Its catalogue entry.
    pub info: ScenarioInfo,
    /// The world at the start.
    pub world: World,
    /// Light and weather.
    pub environment: Environment,
    /// Sensor outages.
    pub outages: Vec<Outage>,
    /// The actors the scenario is about: the hidden road users its connected vehicles must be
    /// warned of (the pedestrian behind the bus, the red-light runner, ...). Empty for traffic
    /// and stress scenarios.
    pub hazards: Vec<u32>,
    /// Connected vehicles that lie in their self-reports (their ids start with `spoof-`).
    pub spoofs: Vec<Spoof>,
}

impl Scenario {
    /// The lie vehicle `vehicle_id` tells, if it spoofs.
    pub fn spoof_of(&self, vehicle_id: &str) -> Option<Spoof> {
        self.spoofs.iter().find(|s| s.vehicle_id == vehicle_id).cloned()
    }
}

/// Start of daytime runs: 2026-07-16 10:00 Beijing time (02:00 UTC).
pub const DAY_START: Timestamp = Timestamp::from_nanos(1_784_167_200_000_000_000);
/// Start of night runs: 2026-11-20 20:30 Beijing time.
pub const NIGHT_START: Timestamp = Timestamp::from_nanos(1_795_177_800_000_000_000);

/// The catalogue entry called `name`.
pub fn find(name: &str) -> Option<&'static ScenarioInfo> {
    CATALOGUE.iter().find(|s| s.name == name)
}

/// Changes to a catalogued scenario for one run (`vehicle-sim record --max-participants`). The
/// default changes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScenarioOptions {
    /// At most this many participants (ground-truth actors, the site's parked vehicles included)
    /// at once: the scenario's initial actors are thinned at random, keeping parked and static
    /// vehicles, connected vehicles and the scenario's hazards, and its spawners stop at this
    /// count. A run holds more only when the kept actors alone do.
    pub max_participants: Option<usize>,
}

/// Builds scenario `name` on `site` with `seed`, as catalogued.
pub fn build(name: &str, site: Arc<SiteModel>, seed: u64) -> Result<Scenario, ScenarioError> {
    build_with(name, site, seed, &ScenarioOptions::default())
}

/// Builds scenario `name` on `site` with `seed`, changed by `options`.
pub fn build_with(
    name: &str,
    site: Arc<SiteModel>,
    seed: u64,
    options: &ScenarioOptions,
) -> Result<Scenario, ScenarioError> {
    let mut scenario = build_catalogued(name, site, seed)?;
    if let Some(max_participants) = options.max_participants {
        let hazards = &scenario.hazards;
        scenario.world.limit_actors(max_participants, |a| {
            matches!(a.motion, Motion::Parked) || a.v2x_id.is_some() || hazards.contains(&a.id)
        });
    }
    Ok(scenario)
}

/// The catalogued set-up of scenario `name`.
fn build_catalogued(name: &str, site: Arc<SiteModel>, seed: u64) -> Result<Scenario, ScenarioError> {
    let info = *find(name).ok_or_else(|| ScenarioError::Unknown(name.to_owned()))?;
    let night = name == "camera-night";
    let mut b = Builder {
        world: World::new(site, if night { NIGHT_START } else { DAY_START }, seed),
        hazards: Vec::new(),
        spoofs: Vec::new(),
    };
    let mut outages = Vec::new();
    match name {
        "bus-pedestrian" => b.bus_pedestrian()?,
        "occluded-cross-traffic" => b.occluded_cross_traffic()?,
        "left-turn-oncoming" => b.left_turn_oncoming()?,
        "stopped-vehicle" => b.stopped_vehicle()?,
        "emergency-vehicle" => b.emergency_vehicle()?,
        "shuttle-loop" => b.shuttle_loop()?,
        "congested-intersection" => b.congested()?,
        "lidar-failure" => {
            b.intersection_traffic(6, 24, 14.0)?;
            outages.push(Outage { sensor_id: "lidar-ne".into(), from_s: 5.0, to_s: 10.0 });
        }
        "camera-night" => {
            b.intersection_traffic(5, 20, 14.0)?;
            for s in &b.world.site().config.sensors {
                if matches!(s.model, rsu_fusion::SensorModel::Lidar(_)) {
                    outages.push(Outage { sensor_id: s.id.clone(), from_s: 0.0, to_s: f64::INFINITY });
                }
            }
        }
        "tunnel-exit-gnss" => b.tunnel_exit()?,
        "v2x-spoofing" => b.spoofing()?,
        _ => return Err(ScenarioError::Unknown(name.to_owned())),
    }
    Ok(Scenario {
        info,
        world: b.world,
        environment: Environment { night, rain: false },
        outages,
        hazards: b.hazards,
        spoofs: b.spoofs,
    })
}

/// Scenario set-up helpers over a world.
struct Builder {
    world: World,
    hazards: Vec<u32>,
    spoofs: Vec<Spoof>,
}

/// Arc length on `path` nearest to (x, y).
fn s_at(path: &Path, x: f64, y: f64) -> f64 {
    path.line.project(&Point2::new(x, y)).0
}

impl Builder {
    fn path(&self, id: &str) -> Result<Arc<Path>, ScenarioError> {
        self.world.site().path(id).ok_or_else(|| ScenarioError::MissingPath(id.to_owned()))
    }

    /// A straight ad-hoc walking line (a jaywalker's).
    fn line(&self, id: &str, from: (f64, f64), to: (f64, f64)) -> Result<Arc<Path>, ScenarioError> {
        let line = Polyline::new(vec![Point2::new(from.0, from.1), Point2::new(to.0, to.1)], false)
            .ok_or_else(|| ScenarioError::MissingPath(id.to_owned()))?;
        Ok(Path::ad_hoc(id, PathKind::Walkway, line))
    }

    /// A random vehicle class for background traffic.
    fn traffic_class(&mut self) -> ObjectClass {
        let r: f64 = self.world.rng().random();
        match r {
            r if r < 0.62 => ObjectClass::Car,
            r if r < 0.74 => ObjectClass::Van,
            r if r < 0.82 => ObjectClass::Truck,
            r if r < 0.87 => ObjectClass::Bus,
            r if r < 0.94 => ObjectClass::Cyclist,
            _ => ObjectClass::Motorcyclist,
        }
    }

    /// Queues up to `per_lane` vehicles (gaps up to `max_spacing_m`) back from the stop line of every approach (choosing through,
    /// left and right variants at random) and puts `pedestrians` on the crosswalk walkways.
    fn intersection_traffic(
        &mut self,
        per_lane: usize,
        pedestrians: usize,
        max_spacing_m: f64,
    ) -> Result<(), ScenarioError> {
        let approaches: [&[&str]; 6] = [
            &["eb-1", "eb-1-left"],
            &["eb-2", "eb-2-right"],
            &["wb-1", "wb-1-left"],
            &["wb-2", "wb-2-right"],
            &["nb-1", "nb-1-left", "nb-1-right"],
            &["sb-1", "sb-1-left", "sb-1-right"],
        ];
        for variants in approaches {
            let mut s_front = None;
            for _ in 0..per_lane {
                let class = self.traffic_class();
                // Buses and trucks cannot make the tight corners: they go straight on.
                let heavy = matches!(class, ObjectClass::Bus | ObjectClass::Truck);
                let pick = if heavy { 0 } else { self.world.rng().random_range(0..variants.len()) };
                let path = self.path(variants[pick])?;
                let stop = path.stop.as_ref().map_or(path.line.length_m() * 0.5, |s| s.stop_at_m);
                let len = class.typical_size().length_m;
                let spacing = self.world.rng().random_range(2.5..max_spacing_m);
                let s = match s_front {
                    None => stop - 0.5 * len - self.world.rng().random_range(1.0..30.0),
                    Some(front) => front - spacing - 0.5 * len,
                };
                if s < 5.0 {
                    break;
                }
                s_front = Some(s - 0.5 * len);
                let speed = if class == ObjectClass::Cyclist { 4.5 } else { path.speed_limit_mps.unwrap_or(13.9) };
                // Never faster than it can stop behind the vehicle in front.
                let v0 = self.world.rng().random_range(0.0..speed).min((4.0 * spacing).sqrt());
                let mut spec = VehicleSpec::new(class, path, s).speed(speed);
                spec.speed_mps = v0;
                self.world.add_vehicle(spec);
            }
        }
        self.walkers(
            &[
                "walk-west-nb",
                "walk-west-sb",
                "walk-east-nb",
                "walk-east-sb",
                "walk-north-eb",
                "walk-north-wb",
                "walk-south-eb",
                "walk-south-wb",
                "walk-avenue-south",
            ],
            pedestrians,
        )
    }

    /// Spreads `count` pedestrians over the walkways `ids`.
    fn walkers(&mut self, ids: &[&str], count: usize) -> Result<(), ScenarioError> {
        for i in 0..count {
            let path = self.path(ids[i % ids.len()])?;
            // Start on the sidewalk, not in the middle of a signalled crossing.
            let mut s = self.world.rng().random_range(0.0..path.line.length_m() * 0.9);
            if let Some(stop) = &path.stop
                && s > stop.stop_at_m - 1.0
                && s < stop.clear_at_m.unwrap_or(stop.stop_at_m) + 1.0
            {
                s = self.world.rng().random_range(0.0..(stop.stop_at_m - 1.0).max(0.5));
            }
            let speed = self.world.walking_speed();
            let jaywalker = self.world.rng().random_bool(0.08);
            self.world.add_walker(path, s, speed, !jaywalker, false);
        }
        Ok(())
    }

    fn bus_pedestrian(&mut self) -> Result<(), ScenarioError> {
        self.world.set_signal_offset(0.0);
        let eb2 = self.path("eb-2")?;
        let s0 = s_at(&eb2, -130.0, -5.25);
        self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, eb2, s0).speed(11.1).connected("cv-bus-ped"));
        let crossing = self.line("jaywalk-bus", (-38.0, -11.0), (-38.0, 12.0))?;
        let ped = self.world.add_walker(crossing, 0.0, 1.4, false, true);
        self.world.schedule(3.6, ped, Action::Release);
        self.hazards.push(ped);
        // Life around it: westbound traffic, a cyclist behind the car, people on the sidewalks.
        let wb2 = self.path("wb-2")?;
        for x in [-20.0, 40.0, 95.0] {
            let s = s_at(&wb2, x, 5.25);
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, wb2.clone(), s).speed(11.0));
        }
        let eb1 = self.path("eb-1")?;
        let s_cyclist = s_at(&eb1, -160.0, -1.75);
        self.world.add_vehicle(VehicleSpec::new(ObjectClass::Cyclist, eb1, s_cyclist).speed(4.5));
        self.walkers(&["walk-avenue-south", "walk-south-eb", "walk-west-nb"], 8)
    }

    fn occluded_cross_traffic(&mut self) -> Result<(), ScenarioError> {
        // N-S green from the start for 23 s; E-W red.
        self.world.set_signal_offset(32.0);
        let nb = self.path("nb-1")?;
        let s = s_at(&nb, 1.75, -150.0);
        self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, nb, s).speed(13.9).connected("cv-icw"));
        let eb1 = self.path("eb-1")?;
        let runner = self
            .world
            .add_vehicle(VehicleSpec::new(ObjectClass::Car, eb1.clone(), s_at(&eb1, -136.0, -1.75)).speed(13.9));
        self.world.apply(runner, Action::IgnoreSignals).ok();
        self.hazards.push(runner);
        let eb2 = self.path("eb-2")?;
        for x in [-22.0, -30.0, -39.5] {
            let spec = VehicleSpec::new(ObjectClass::Car, eb2.clone(), s_at(&eb2, x, -5.25)).speed(11.0);
            self.world.add_vehicle(VehicleSpec { speed_mps: 0.0, ..spec });
        }
        self.walkers(&["walk-north-eb", "walk-east-nb", "walk-south-wb"], 8)
    }

    fn left_turn_oncoming(&mut self) -> Result<(), ScenarioError> {
        self.world.set_signal_offset(0.0);
        let turn = self.path("wb-1-left")?;
        let s = s_at(&turn, 60.0, 1.75);
        self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, turn, s).speed(9.0).connected("cv-lta"));
        let truck_path = self.path("eb-1-left")?;
        let stop = truck_path.stop.as_ref().map_or(236.5, |st| st.stop_at_m);
        let truck =
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Truck, truck_path.clone(), stop - 8.0).speed(3.0));
        self.world.apply(truck, Action::StopAt(stop + 9.0)).ok();
        self.world.schedule(13.0, truck, Action::ClearStop);
        let eb2 = self.path("eb-2")?;
        let through = self
            .world
            .add_vehicle(VehicleSpec::new(ObjectClass::Car, eb2.clone(), s_at(&eb2, -135.0, -5.25)).speed(13.9));
        self.hazards.push(through);
        self.world.add_vehicle(VehicleSpec::new(ObjectClass::Van, eb2.clone(), s_at(&eb2, -190.0, -5.25)).speed(13.0));
        self.walkers(&["walk-north-wb", "walk-west-sb"], 6)
    }

    fn stopped_vehicle(&mut self) -> Result<(), ScenarioError> {
        let eb2 = self.path("mlr-eb-2")?;
        let eb1 = self.path("mlr-eb-1")?;
        let y2 = eb2.line.pose_at(s_at(&eb2, 780.0, 394.0)).position.y;
        let stopped = self.world.add_static(ObjectClass::Car, Point2::new(780.0, y2), 0.0);
        self.hazards.push(stopped);
        let truck = self
            .world
            .add_vehicle(VehicleSpec::new(ObjectClass::Truck, eb2.clone(), s_at(&eb2, 600.0, y2)).speed(16.7));
        // The truck driver notices the stopped car late and swerves at the last moment.
        let late = DriverParams { sight_m: 35.0, ..DriverParams::for_class(ObjectClass::Truck) };
        self.world.apply(truck, Action::SetDriver(late)).ok();
        self.world.schedule(8.4, truck, Action::SwitchPath(eb1.clone()));
        // The connected car follows closely (0.8 s headway) and cannot see past the truck.
        let cv = self.world.add_vehicle(
            VehicleSpec::new(ObjectClass::Car, eb2.clone(), s_at(&eb2, 585.0, y2)).speed(16.7).connected("cv-fcw"),
        );
        let tailgating = DriverParams { headway_s: 0.8, ..DriverParams::for_class(ObjectClass::Car) };
        self.world.apply(cv, Action::SetDriver(tailgating)).ok();
        self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, eb1.clone(), s_at(&eb1, 520.0, 398.0)).speed(18.0));
        for (id, x) in [("mlr-wb-1", 820.0), ("mlr-wb-2", 760.0), ("mlr-wb-1", 900.0)] {
            let p = self.path(id)?;
            let s = s_at(&p, x, 402.0);
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, p, s).speed(17.0));
        }
        Ok(())
    }

    fn emergency_vehicle(&mut self) -> Result<(), ScenarioError> {
        // N-S green for the first 23 s: the ambulance crosses on red.
        self.world.set_signal_offset(32.0);
        let wb1 = self.path("wb-1")?;
        let ev = self
            .world
            .add_vehicle(VehicleSpec::new(ObjectClass::Emergency, wb1.clone(), s_at(&wb1, 170.0, 1.75)).speed(16.7));
        self.world.apply(ev, Action::IgnoreSignals).ok();
        self.hazards.push(ev);
        let sb = self.path("sb-1")?;
        let nb = self.path("nb-1")?;
        let cv = self.world.add_vehicle(
            VehicleSpec::new(ObjectClass::Car, sb.clone(), s_at(&sb, -1.75, 90.0)).speed(12.5).connected("cv-evw"),
        );
        let others = [
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, sb.clone(), s_at(&sb, -1.75, 130.0)).speed(12.5)),
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Van, nb.clone(), s_at(&nb, 1.75, -70.0)).speed(12.5)),
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, nb.clone(), s_at(&nb, 1.75, -110.0)).speed(12.5)),
        ];
        // N-S traffic yields: stop before the intersection from 2 s, go again at 13 s.
        for (id, path) in [(cv, &sb), (others[0], &sb), (others[1], &nb), (others[2], &nb)] {
            let stop = path.stop.as_ref().map_or(186.5, |s| s.stop_at_m);
            self.world.schedule(2.0, id, Action::StopAt(stop));
            self.world.schedule(13.0, id, Action::ClearStop);
        }
        let wb2 = self.path("wb-2")?;
        for x in [30.0, 38.0] {
            let spec = VehicleSpec::new(ObjectClass::Car, wb2.clone(), s_at(&wb2, x, 5.25)).speed(11.0);
            self.world.add_vehicle(VehicleSpec { speed_mps: 0.0, ..spec });
        }
        self.walkers(&["walk-west-nb", "walk-east-sb", "walk-avenue-south"], 8)
    }

    fn shuttle_loop(&mut self) -> Result<(), ScenarioError> {
        let route = self.path("shuttle-loop")?;
        let s_shuttle = s_at(&route, 420.0, -120.0);
        self.world.add_vehicle(
            VehicleSpec::new(ObjectClass::Shuttle, route.clone(), s_shuttle).speed(5.5).connected("shuttle-1"),
        );
        self.world.add_vehicle(
            VehicleSpec::new(ObjectClass::Delivery, route.clone(), s_shuttle - 25.0).speed(4.5).connected("delivery-1"),
        );
        for ds in [35.0, 80.0] {
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Cyclist, route.clone(), s_shuttle + ds).speed(3.8));
        }
        self.walkers(&["loop-sidewalk-outer", "loop-sidewalk-inner"], 40)?;
        // People crossing the loop road near the stop, away from any crosswalk.
        for (i, (x, at_s)) in [(335.0, 2.0), (290.0, 9.0), (250.0, 14.0)].into_iter().enumerate() {
            let line = self.line(&format!("loop-crossing-{i}"), (x, -106.0), (x, -134.0))?;
            let ped = self.world.add_walker(line, 0.0, 1.3, false, true);
            self.world.schedule(at_s, ped, Action::Release);
        }
        Ok(())
    }

    fn congested(&mut self) -> Result<(), ScenarioError> {
        self.world.set_signal_offset(20.0);
        self.intersection_traffic(40, 175, 5.0)?;
        let entries: Vec<Arc<Path>> = ["eb-1", "eb-2", "wb-1", "wb-2", "nb-1", "sb-1"]
            .iter()
            .map(|id| self.path(id))
            .collect::<Result<_, _>>()?;
        self.world.add_spawner(Spawner {
            paths: entries,
            classes: vec![
                (ObjectClass::Car, 6.0),
                (ObjectClass::Van, 1.0),
                (ObjectClass::Bus, 0.5),
                (ObjectClass::Cyclist, 1.0),
            ],
            mean_interval_s: 0.8,
            max_actors: 420,
            next_at_s: 0.0,
        });
        let walks: Vec<Arc<Path>> = ["walk-west-nb", "walk-east-sb", "walk-north-eb", "walk-south-wb"]
            .iter()
            .map(|id| self.path(id))
            .collect::<Result<_, _>>()?;
        self.world.add_spawner(Spawner {
            paths: walks,
            classes: vec![(ObjectClass::Pedestrian, 1.0)],
            mean_interval_s: 0.7,
            max_actors: 420,
            next_at_s: 0.0,
        });
        Ok(())
    }

    fn tunnel_exit(&mut self) -> Result<(), ScenarioError> {
        let wb1 = self.path("mlr-wb-1")?;
        let wb2 = self.path("mlr-wb-2")?;
        for (i, (path, x, v)) in [(&wb1, 860.0, 16.7), (&wb2, 900.0, 18.0), (&wb1, 960.0, 15.5)].into_iter().enumerate()
        {
            let s = s_at(path, x, 402.0);
            self.world.add_vehicle(
                VehicleSpec::new(ObjectClass::Car, path.clone(), s).speed(v).connected(format!("cv-tunnel-{}", i + 1)),
            );
        }
        for (path, x) in [(&wb2, 820.0), (&wb1, 1040.0)] {
            let s = s_at(path, x, 402.0);
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Truck, path.clone(), s).speed(15.0));
        }
        let eb = self.path("mlr-eb-1")?;
        for x in [560.0, 620.0] {
            let s = s_at(&eb, x, 398.0);
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, eb.clone(), s).speed(16.7));
        }
        Ok(())
    }

    fn spoofing(&mut self) -> Result<(), ScenarioError> {
        self.world.set_signal_offset(0.0);
        let (eb1, eb2, wb1, wb2) = (self.path("eb-1")?, self.path("eb-2")?, self.path("wb-1")?, self.path("wb-2")?);
        let connected = [
            (&eb2, -110.0, -5.25, 11.1, "spoof-jump"),
            (&wb2, 40.0, 5.25, 11.0, "spoof-drift"),
            (&eb1, -95.0, -1.75, 12.0, "cv-honest-1"),
            (&wb1, 60.0, 1.75, 12.5, "cv-honest-2"),
        ];
        for (path, x, y, v, id) in connected {
            let s = s_at(path, x, y);
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, path.clone(), s).speed(v).connected(id));
        }
        self.spoofs.push(Spoof { vehicle_id: "spoof-jump".into(), from_s: 5.0, offset_m: [0.0, 7.0], ramp_s: 0.0 });
        self.spoofs.push(Spoof { vehicle_id: "spoof-drift".into(), from_s: 4.0, offset_m: [0.0, -7.0], ramp_s: 1.4 });
        for (path, x, y) in [(&eb1, -140.0, -1.75), (&wb2, 110.0, 5.25)] {
            let s = s_at(path, x, y);
            self.world.add_vehicle(VehicleSpec::new(ObjectClass::Car, path.clone(), s).speed(11.0));
        }
        self.walkers(&["walk-avenue-south", "walk-south-eb", "walk-west-nb"], 6)
    }
}
