//! Domain types that exist only at the edges of the stack: a replay log's metadata, the
//! simulator's ground truth, the QUIC session handshake, and traffic signals (a controller's
//! state, the SPaT broadcast). (Sensor frames, vehicle states and
//! the broadcast frame are the fusion core's own types, in `rsu_fusion`.)

use nalgebra::Point3;
use rsu_fusion::{BoxSize, ObjectClass, SiteConfig, Timestamp, Wgs84};
use serde::{Deserialize, Serialize};

/// The version of the replay format this crate writes.
pub const REPLAY_FORMAT_VERSION: u32 = 1;

/// Metadata of a replay log (topic `/meta`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayMeta {
    /// Replay format version ([`REPLAY_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Name and version of the writer, e.g. `vehicle-sim 0.1.0`.
    pub software_version: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Seed of every random generator of the run.
    pub seed: u64,
    /// Site, ground and sensor calibration.
    pub site: SiteConfig,
    /// RSUs whose fused output the log holds.
    pub rsu_ids: Vec<String>,
    /// First capture time in the log (`Timestamp::EPOCH` when unknown).
    pub start_time: Timestamp,
    /// Last capture time in the log (`Timestamp::EPOCH` when unknown).
    pub end_time: Timestamp,
    /// Ground-truth ids hold for one frame only (the source labels carry no track ids), so
    /// identity metrics (IDF1, HOTA's association, id switches) do not apply to the log. False
    /// when an id names one object for the whole log.
    pub truth_ids_per_frame: bool,
}

/// The simulator's truth at one instant (topic `/ground_truth`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthFrame {
    /// The instant.
    pub time: Timestamp,
    /// Every actor.
    pub objects: Vec<GroundTruthObject>,
    /// Every traffic signal.
    pub signals: Vec<SignalState>,
}

/// One actor's true state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthObject {
    /// Unique within the log.
    pub id: u32,
    /// True class.
    pub class: ObjectClass,
    /// Box centre in the site frame [m].
    pub center_m: Point3<f64>,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Speed along the heading [m/s].
    pub speed_mps: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Box size [m].
    pub size: BoxSize,
    /// V2X id of a connected vehicle.
    pub v2x_id: Option<String>,
}

/// A traffic signal's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalState {
    /// Signal (signal group) id.
    pub signal_id: String,
    /// Current phase.
    pub phase: SignalPhase,
    /// Time until the phase changes [s].
    pub remaining_s: f64,
}

/// Signal phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalPhase {
    /// Not known.
    Unknown,
    /// Stop.
    Red,
    /// Clear the intersection.
    Yellow,
    /// Go.
    Green,
    /// Off.
    Dark,
}

/// A client's role in a QUIC session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A connected vehicle.
    Vehicle,
    /// A roadside sensor.
    Sensor,
    /// A traffic signal controller (protocol version 3).
    SignalController,
}

/// What a vehicle wants to receive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Subscription {
    /// Everything within a radius of the vehicle's latest reported position [m]; 0 means the
    /// server's default radius.
    AroundMe {
        /// Radius [m].
        radius_m: u32,
    },
    /// Everything inside a polygon, vertices (east, north) [m] in the site frame.
    Polygon(Vec<[f64; 2]>),
    /// Everything the RSU perceives.
    Everything,
}

/// The client's first message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientHello {
    /// Protocol versions spoken, best first.
    pub versions: Vec<u32>,
    /// Claimed role.
    pub role: Role,
    /// Claimed id.
    pub id: String,
    /// Vehicles: region of interest (None: the server's default).
    pub subscription: Option<Subscription>,
}

/// The server's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerHello {
    /// Chosen protocol version.
    pub version: u32,
    /// The RSU's id.
    pub rsu_id: String,
    /// Site origin: reference of all frame offsets.
    pub site_origin: Wgs84,
    /// Broadcast rate [Hz].
    pub broadcast_rate_hz: f64,
    /// Radius of an "around me" subscription with radius 0 [m].
    pub default_radius_m: u32,
}

/// A later client message on the control stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientControl {
    /// Replaces the vehicle's subscription.
    Subscribe(Subscription),
}

/// What a signal group shows: SAE J2735 `MovementPhaseState` (same names, same numbers on the
/// wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovementPhase {
    /// Not known.
    Unavailable,
    /// The signal head is off.
    Dark,
    /// Flashing red: stop, then proceed when safe.
    StopThenProceed,
    /// Red.
    StopAndRemain,
    /// Red and yellow before green.
    PreMovement,
    /// Green, yielding to conflicting traffic.
    PermissiveMovementAllowed,
    /// Green, no conflicting traffic.
    ProtectedMovementAllowed,
    /// Yellow after a permissive green.
    PermissiveClearance,
    /// Yellow after a protected green.
    ProtectedClearance,
    /// Flashing yellow.
    CautionConflictingTraffic,
}

/// One signal group's phase and when it ends (J2735 `MovementState` with its first
/// `MovementEvent`), as absolute instants (UTC). Valid values satisfy `start <= min_end <=
/// likely <= max_end` for those given ([`MovementState::check_order`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovementState {
    /// J2735 `SignalGroupID`, 1..=255.
    pub signal_group: u8,
    /// What it shows.
    pub phase: MovementPhase,
    /// When the phase started, if known.
    pub start: Option<Timestamp>,
    /// The earliest the phase may end.
    pub min_end: Timestamp,
    /// The latest the phase may end, if known.
    pub max_end: Option<Timestamp>,
    /// When the phase most likely ends, if known.
    pub likely: Option<Timestamp>,
}

impl MovementState {
    /// Checks `start <= min_end <= likely <= max_end` (for the times given); the error says
    /// which pair is out of order.
    pub fn check_order(&self) -> Result<(), &'static str> {
        if self.start.is_some_and(|s| s > self.min_end) {
            return Err("the phase ends (min_end_time) before it starts (start_time)");
        }
        if self.max_end.is_some_and(|m| m < self.min_end) {
            return Err("max_end_time is before min_end_time");
        }
        if self.likely.is_some_and(|l| l < self.min_end || self.max_end.is_some_and(|m| l > m)) {
            return Err("likely_time is outside min_end_time..=max_end_time");
        }
        Ok(())
    }
}

/// A signal controller's state at one instant (uplink).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalControllerState {
    /// The controller's id (its certificate's).
    pub controller_id: String,
    /// When the controller took this state.
    pub time: Timestamp,
    /// Every signal group, each once, 1..=[`crate::convert::MAX_MOVEMENTS`].
    pub movements: Vec<MovementState>,
}

/// The signal phase and timing of one intersection (downlink, J2735 / CSAE 53 SPAT with one
/// `IntersectionState`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spat {
    /// J2735 `IntersectionReferenceID.id`.
    pub intersection_id: u16,
    /// Increments (modulo 128) whenever the movements change.
    pub revision: u8,
    /// When the RSU made this message.
    pub time: Timestamp,
    /// The time of the controller state it comes from.
    pub controller_time: Timestamp,
    /// Every signal group, each once.
    pub movements: Vec<MovementState>,
}

/// A datagram from the RSU to a vehicle (protocol version 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoadsideDatagram {
    /// One intersection's signal phase and timing.
    Spat(Spat),
}

/// A manoeuvre a lane allows (J2735 `AllowedManeuvers`, the four movements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Maneuver {
    /// Straight on.
    Straight,
    /// Left turn.
    Left,
    /// Right turn.
    Right,
    /// U-turn.
    UTurn,
}

impl Maneuver {
    /// The name used in logs, reports and the site GeoJSON (`straight`, `left`, `right`,
    /// `u_turn`).
    pub fn name(self) -> &'static str {
        match self {
            Maneuver::Straight => "straight",
            Maneuver::Left => "left",
            Maneuver::Right => "right",
            Maneuver::UTurn => "u_turn",
        }
    }
}

/// Which way traffic flows on a lane relative to its intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneDirection {
    /// Towards the intersection; the lane ends at a stop line.
    Ingress,
    /// Away from the intersection.
    Egress,
}

/// A centreline point: east and north offsets from the intersection's reference point [cm].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LaneNode {
    /// East [cm].
    pub x_cm: i32,
    /// North [cm].
    pub y_cm: i32,
}

/// Where an ingress lane leads (J2735 `Connection`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneConnection {
    /// The egress lane it leads to.
    pub egress_lane_id: u8,
    /// The manoeuvre.
    pub maneuver: Maneuver,
    /// The signal group controlling it (as in the intersection's SPaT), if signalled.
    pub signal_group: Option<u8>,
}

/// One lane of an intersection (J2735 `GenericLane`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapLane {
    /// J2735 `LaneID`, 1..=255, unique within the intersection.
    pub lane_id: u8,
    /// The lane's id in the site model.
    pub name: String,
    /// Ingress or egress.
    pub direction: LaneDirection,
    /// Width [cm].
    pub width_cm: u16,
    /// Centreline from the intersection outwards: an ingress lane's first node is its stop line.
    pub nodes: Vec<LaneNode>,
    /// Ingress: the manoeuvres allowed.
    pub maneuvers: Vec<Maneuver>,
    /// Ingress: where it leads.
    pub connections: Vec<LaneConnection>,
}

/// One intersection (J2735 `IntersectionGeometry`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntersectionMap {
    /// J2735 `IntersectionReferenceID.id`: its SPaT's `intersection_id`.
    pub intersection_id: u16,
    /// Its id in the site model.
    pub name: String,
    /// The reference point (quantised to the wire's 1e-7 degree and centimetre).
    pub reference: Wgs84,
    /// The reference point in the site frame: east, north [cm].
    pub reference_site_cm: [i32; 2],
    /// Its lanes.
    pub lanes: Vec<MapLane>,
}

/// The road map of an RSU (J2735 `MapData`), sent to vehicles of protocol version 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapData {
    /// Increments (modulo 128) whenever the map changes.
    pub revision: u8,
    /// When it was made.
    pub time: Timestamp,
    /// Its intersections.
    pub intersections: Vec<IntersectionMap>,
}

/// What kind of hazard an RSI event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RsiEventType {
    /// A vehicle stopped in a travel lane, away from stop lines and queues.
    StoppedVehicle,
    /// A pedestrian in a travel lane outside every crosswalk.
    PedestrianInRoadway,
    /// A vehicle driving against its lane's direction.
    WrongWayVehicle,
    /// A lane segment whose vehicles' mean speed stays low.
    Congestion,
}

impl RsiEventType {
    /// Every type.
    pub const ALL: [RsiEventType; 4] = [
        RsiEventType::StoppedVehicle,
        RsiEventType::PedestrianInRoadway,
        RsiEventType::WrongWayVehicle,
        RsiEventType::Congestion,
    ];

    /// The name used in metrics, logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            RsiEventType::StoppedVehicle => "stopped_vehicle",
            RsiEventType::PedestrianInRoadway => "pedestrian_in_roadway",
            RsiEventType::WrongWayVehicle => "wrong_way_vehicle",
            RsiEventType::Congestion => "congestion",
        }
    }
}

/// Where an RSI event is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RsiEventPhase {
    /// First message.
    Start,
    /// Still going on.
    Update,
    /// Over.
    End,
}

/// One road safety information event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsiEvent {
    /// Unique among the RSU's events, the same over the event's life.
    pub event_id: u32,
    /// What it is.
    pub event_type: RsiEventType,
    /// Start, update or end.
    pub phase: RsiEventPhase,
    /// When this state was observed.
    pub time: Timestamp,
    /// When the condition began.
    pub start_time: Timestamp,
    /// Where: east, north of the site origin [dm].
    pub position_dm: [i32; 2],
    /// Confidence, 1..=100 [%].
    pub confidence_pct: u8,
    /// The participants behind it.
    pub track_ids: Vec<u32>,
    /// The site lane it is on, empty when none.
    pub lane: String,
}

/// A message from the RSU on a vehicle's control stream after `ServerHello` (protocol
/// version 4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerControl {
    /// The road map.
    Map(MapData),
    /// A road safety information event.
    Rsi(RsiEvent),
}
