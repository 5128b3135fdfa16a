//! The fused frame the RSU broadcasts (domain form of `v2x.v1.RoadsideFrame`): participants in
//! the site frame relative to the site origin, with the confidence summaries vehicles need.

use nalgebra::Point3;
use serde::{Deserialize, Serialize};

use crate::class::{BoxSize, ObjectClass, SourceSet};
use crate::geo::Wgs84;
use crate::time::Timestamp;

/// Most participants one roadside frame carries (T/CSAE 157 SSM allows 512; this leaves headroom
/// for the largest sites). One limit for both ends: the engine never puts more in a frame
/// ([`crate::Fusion::roadside_frame_from`]) and receivers refuse more (`v2x_proto`'s decoder).
pub const MAX_PARTICIPANTS: usize = 1024;

/// Most path-history points per participant: `FusionConfig::path_history_len` is at most this,
/// and receivers refuse more (`v2x_proto`'s decoder).
pub const MAX_PATH_POINTS: usize = 64;

/// One broadcast frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoadsideFrame {
    /// The RSU's id. Empty in a frame received without it (it goes with `sensors`;
    /// [`RoadsideView`] keeps the id in force).
    pub rsu_id: String,
    /// Frame counter (wraps).
    pub message_count: u32,
    /// Time all participants are predicted to.
    pub time: Timestamp,
    /// Reference point: the site origin.
    pub reference: Wgs84,
    /// Fused participants.
    pub participants: Vec<Participant>,
    /// Health of each sensor. Empty in a frame received without it (it is sent on change;
    /// [`RoadsideView`] keeps the health in force).
    pub sensors: Vec<SensorHealth>,
    /// Perceived ground area, polygons of (east, north) [m] relative to `reference`. Sent on
    /// change, like `sensors`.
    pub perception_regions: Vec<Vec<[f64; 2]>>,
    /// Capture time of the newest sensor frame taken in by the time of the frame (the newest
    /// of the sensors' `last_capture`): the freshness of its information, in every frame.
    #[serde(default)]
    pub newest_capture: Option<Timestamp>,
}

/// A fused traffic participant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    /// Stable track id.
    pub id: u32,
    /// Fused class.
    pub class: ObjectClass,
    /// Confidence in `class`, 0..1.
    pub class_confidence: f64,
    /// Source kinds that contributed.
    pub sources: SourceSet,
    /// Ground-contact centre in the site frame [m] (offset from `reference`).
    pub position_m: Point3<f64>,
    /// Radius of the 95% horizontal confidence circle [m].
    pub pos_confidence_95_m: f64,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Box size [m].
    pub size: BoxSize,
    /// Time tracked [s].
    pub age_s: f64,
    /// V2X id when the object is a connected vehicle that reports itself.
    pub v2x_id: Option<String>,
    /// Recent positions, newest first.
    pub path_history: Vec<PathPoint>,
}

/// A past position of a participant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathPoint {
    /// Offset from the participant's current position (east, north) [m].
    pub offset_m: [f64; 2],
    /// How long before the frame time [s].
    pub dt_s: f64,
}

/// Health of one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorHealth {
    /// Sensor id.
    pub sensor_id: String,
    /// Status.
    pub status: SensorStatus,
    /// Capture time of its newest frame.
    pub last_capture: Option<Timestamp>,
}

/// How a sensor is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorStatus {
    /// Never heard from.
    Unknown,
    /// Frames at the expected rate.
    Ok,
    /// Late frames or gaps.
    Degraded,
    /// Silent past the timeout.
    Silent,
}

impl SensorStatus {
    /// Whether the sensor is perceiving (its frames arrive, on time or not): its ground area is
    /// part of the perception regions.
    pub fn is_live(self) -> bool {
        matches!(self, SensorStatus::Ok | SensorStatus::Degraded)
    }
}

/// What a vehicle knows from the roadside frames it received: the newest frame (by time), and
/// the RSU's id, sensor health and perception regions in force. The RSU sends those only when
/// they change (and at least once a second, PROTOCOL.md §2.4), so a frame without them leaves
/// the last received in force; frames may complete out of order, so each is taken from the
/// newest frame that carried it, even one older than the newest frame.
#[derive(Clone, Debug, Default)]
pub struct RoadsideView {
    /// The newest frame received, its id, health and regions those in force.
    frame: Option<RoadsideFrame>,
    /// The RSU's id and sensor health in force, and the time of the frame that carried them.
    health: Option<(Timestamp, Health)>,
    /// The regions in force and the time of the frame that carried them.
    regions: Option<(Timestamp, Vec<Vec<[f64; 2]>>)>,
}

/// The RSU's id and its sensors' health, sent together.
#[derive(Clone, Debug, Default)]
struct Health {
    rsu_id: String,
    sensors: Vec<SensorHealth>,
}

impl RoadsideView {
    /// Takes a frame as received. Returns whether it is the newest frame now (an older frame
    /// completing late only updates the id, health or regions it carries, when they are newer).
    pub fn receive(&mut self, frame: RoadsideFrame) -> bool {
        fn newer<T>(held: &Option<(Timestamp, T)>, time: Timestamp) -> bool {
            held.as_ref().is_none_or(|(t, _)| time >= *t)
        }
        let carries_health = !frame.rsu_id.is_empty() || !frame.sensors.is_empty();
        let with_health = carries_health && newer(&self.health, frame.time);
        if with_health {
            let health = Health { rsu_id: frame.rsu_id.clone(), sensors: frame.sensors.clone() };
            self.health = Some((frame.time, health));
        }
        let with_regions = !frame.perception_regions.is_empty() && newer(&self.regions, frame.time);
        if with_regions {
            self.regions = Some((frame.time, frame.perception_regions.clone()));
        }
        let newest = self.frame.as_ref().is_none_or(|f| frame.time >= f.time);
        if newest {
            self.frame = Some(frame);
        }
        if newest || with_health || with_regions {
            let health = self.health.as_ref().map(|(_, h)| h.clone()).unwrap_or_default();
            let regions = self.regions().to_vec();
            if let Some(f) = self.frame.as_mut() {
                f.rsu_id = health.rsu_id;
                f.sensors = health.sensors;
                f.perception_regions = regions;
            }
        }
        newest
    }

    /// The newest frame received, with the id, health and regions in force.
    pub fn frame(&self) -> Option<&RoadsideFrame> {
        self.frame.as_ref()
    }

    /// The RSU's id, as last received (empty before any).
    pub fn rsu_id(&self) -> &str {
        self.health.as_ref().map_or("", |(_, h)| h.rsu_id.as_str())
    }

    /// The health of every sensor, as last received (empty before any).
    pub fn sensors(&self) -> &[SensorHealth] {
        self.health.as_ref().map_or(&[], |(_, h)| h.sensors.as_slice())
    }

    /// The perception regions in force: the last received, unless the health in force says no
    /// sensor is live (the frame saying so has no regions to carry); empty before any.
    pub fn regions(&self) -> &[Vec<[f64; 2]>] {
        let sensors = self.sensors();
        if !sensors.is_empty() && !sensors.iter().any(|s| s.status.is_live()) {
            return &[];
        }
        self.regions.as_ref().map_or(&[], |(_, r)| r.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ms: i64, sensors: &[SensorStatus], regions: usize) -> RoadsideFrame {
        RoadsideFrame {
            // The id goes with the health.
            rsu_id: if sensors.is_empty() { String::new() } else { "rsu-1".into() },
            message_count: ms as u32,
            time: Timestamp::from_nanos(ms * 1_000_000),
            reference: Wgs84 { lat_deg: 33.4, lon_deg: 120.2, alt_m: 0.0 },
            participants: Vec::new(),
            sensors: sensors
                .iter()
                .enumerate()
                .map(|(i, &status)| SensorHealth { sensor_id: format!("s{i}"), status, last_capture: None })
                .collect(),
            perception_regions: vec![vec![[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]; regions],
            newest_capture: Some(Timestamp::from_nanos((ms - 40) * 1_000_000)),
        }
    }

    #[test]
    fn health_and_regions_stay_in_force_until_a_frame_carries_new_ones() {
        use SensorStatus::{Ok, Silent};
        let mut view = RoadsideView::default();
        assert!(view.frame().is_none() && view.sensors().is_empty());
        assert!(view.receive(frame(100, &[Ok, Ok], 2)));
        assert!(view.receive(frame(150, &[], 0)), "a frame without health is still the newest");
        let f = view.frame().expect("a frame");
        assert_eq!(f.time, Timestamp::from_nanos(150_000_000));
        assert_eq!(f.sensors.len(), 2, "the health of the first frame stays in force");
        assert_eq!((f.rsu_id.as_str(), view.rsu_id()), ("rsu-1", "rsu-1"));
        assert_eq!(f.perception_regions.len(), 2);
        // The health alone (a sensor degraded, or the health's repeat): the regions stay.
        assert!(view.receive(frame(170, &[Ok, SensorStatus::Degraded], 0)));
        assert_eq!((view.sensors()[1].status, view.regions().len()), (SensorStatus::Degraded, 2));
        // A sensor goes silent: its region leaves.
        assert!(view.receive(frame(200, &[Ok, Silent], 1)));
        assert_eq!(view.sensors()[1].status, Silent);
        assert_eq!(view.regions().len(), 1);
        // Every sensor silent: no regions, which the health carried with it says.
        assert!(view.receive(frame(250, &[Silent, Silent], 0)));
        assert!(view.regions().is_empty() && view.frame().is_some_and(|f| f.perception_regions.is_empty()));
        // One comes back: its region with it.
        assert!(view.receive(frame(300, &[Ok, Silent], 1)));
        assert_eq!(view.regions().len(), 1);
    }

    #[test]
    fn an_older_frame_completing_late_updates_only_what_is_newer() {
        use SensorStatus::{Degraded, Ok, Silent};
        let mut view = RoadsideView::default();
        view.receive(frame(100, &[Ok, Ok], 2));
        // 200 (no health) completes before 150 (with a change): 150 is not the newest frame,
        // but its health is newer than the health in force, so it applies, to the newest frame too.
        assert!(view.receive(frame(200, &[], 0)));
        assert!(!view.receive(frame(150, &[Ok, Degraded], 2)));
        assert_eq!(view.frame().map(|f| f.time), Some(Timestamp::from_nanos(200_000_000)));
        assert_eq!(view.frame().map(|f| f.sensors[1].status), Some(Degraded));
        // An even older frame's health does not undo it.
        assert!(!view.receive(frame(120, &[Silent, Silent], 0)));
        assert_eq!(view.sensors()[1].status, Degraded);
        assert_eq!(view.regions().len(), 2);
    }
}
