//! The topic layout of a replay log and the message type each topic carries.
//!
//! | topic | message |
//! |---|---|
//! | `/meta` | `v2x.v1.ReplayMeta` |
//! | `/sensors/<sensor_id>` | `v2x.v1.SensorFrame` |
//! | `/ground_truth` | `v2x.v1.GroundTruthFrame` |
//! | `/vehicles/<vehicle_id>/state` | `v2x.v1.VehicleState` |
//! | `/rsu/<rsu_id>/frame` | `v2x.v1.RoadsideFrame` |
//! | `/vehicles/<vehicle_id>/received` | `v2x.v1.RoadsideFrame` (as that vehicle received it) |
//! | `/signals/<controller_id>/state` | `v2x.v1.SignalControllerState` |
//! | `/intersections/<intersection_id>/spat` | `v2x.v1.Spat` (as the RSU broadcast it) |
//! | `/rsi` | `v2x.v1.RsiEvent` (the road safety information events the RSU raised) |

/// A parsed topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `/meta`.
    Meta,
    /// `/sensors/<sensor_id>`.
    Sensor(String),
    /// `/ground_truth`.
    GroundTruth,
    /// `/vehicles/<vehicle_id>/state`.
    Vehicle(String),
    /// `/rsu/<rsu_id>/frame`.
    Roadside(String),
    /// `/vehicles/<vehicle_id>/received`: the roadside frames a vehicle received.
    Received(String),
    /// `/signals/<controller_id>/state`: a signal controller's states.
    Signal(String),
    /// `/intersections/<intersection_id>/spat`: the SPaT broadcast for an intersection (its
    /// id in decimal).
    Spat(String),
    /// `/rsi`: the road safety information events the RSU raised (start, updates, end).
    Rsi,
}

impl Topic {
    /// Parses a topic name; `None` for topics that are not ours.
    pub fn parse(name: &str) -> Option<Topic> {
        let valid_id = |id: &str| !id.is_empty() && !id.contains('/') && id.len() <= 64;
        if name == "/meta" {
            return Some(Topic::Meta);
        }
        if name == "/ground_truth" {
            return Some(Topic::GroundTruth);
        }
        if name == "/rsi" {
            return Some(Topic::Rsi);
        }
        if let Some(id) = name.strip_prefix("/sensors/") {
            return valid_id(id).then(|| Topic::Sensor(id.to_owned()));
        }
        if let Some(rest) = name.strip_prefix("/vehicles/") {
            if let Some(id) = rest.strip_suffix("/state") {
                return valid_id(id).then(|| Topic::Vehicle(id.to_owned()));
            }
            if let Some(id) = rest.strip_suffix("/received") {
                return valid_id(id).then(|| Topic::Received(id.to_owned()));
            }
        }
        if let Some(id) = name.strip_prefix("/rsu/").and_then(|rest| rest.strip_suffix("/frame")) {
            return valid_id(id).then(|| Topic::Roadside(id.to_owned()));
        }
        if let Some(id) = name.strip_prefix("/signals/").and_then(|rest| rest.strip_suffix("/state")) {
            return valid_id(id).then(|| Topic::Signal(id.to_owned()));
        }
        if let Some(id) = name.strip_prefix("/intersections/").and_then(|rest| rest.strip_suffix("/spat")) {
            return valid_id(id).then(|| Topic::Spat(id.to_owned()));
        }
        None
    }

    /// The protobuf message type this topic carries.
    pub fn schema_name(&self) -> &'static str {
        match self {
            Topic::Meta => "v2x.v1.ReplayMeta",
            Topic::Sensor(_) => "v2x.v1.SensorFrame",
            Topic::GroundTruth => "v2x.v1.GroundTruthFrame",
            Topic::Vehicle(_) => "v2x.v1.VehicleState",
            Topic::Roadside(_) | Topic::Received(_) => "v2x.v1.RoadsideFrame",
            Topic::Signal(_) => "v2x.v1.SignalControllerState",
            Topic::Spat(_) => "v2x.v1.Spat",
            Topic::Rsi => "v2x.v1.RsiEvent",
        }
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::Meta => f.write_str("/meta"),
            Topic::Sensor(id) => write!(f, "/sensors/{id}"),
            Topic::GroundTruth => f.write_str("/ground_truth"),
            Topic::Vehicle(id) => write!(f, "/vehicles/{id}/state"),
            Topic::Roadside(id) => write!(f, "/rsu/{id}/frame"),
            Topic::Received(id) => write!(f, "/vehicles/{id}/received"),
            Topic::Signal(id) => write!(f, "/signals/{id}/state"),
            Topic::Spat(id) => write!(f, "/intersections/{id}/spat"),
            Topic::Rsi => f.write_str("/rsi"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_through_their_names() {
        for t in [
            Topic::Meta,
            Topic::Sensor("lidar-ne".into()),
            Topic::GroundTruth,
            Topic::Vehicle("veh-7".into()),
            Topic::Roadside("rsu-1".into()),
            Topic::Received("veh-7".into()),
            Topic::Signal("tsc-1201".into()),
            Topic::Spat("1201".into()),
            Topic::Rsi,
        ] {
            assert_eq!(Topic::parse(&t.to_string()), Some(t));
        }
        assert_eq!(Topic::parse("/sensors/"), None);
        assert_eq!(Topic::parse("/sensors/a/b"), None);
        assert_eq!(Topic::parse("/tf"), None);
        assert_eq!(Topic::parse("/vehicles//received"), None);
        assert_eq!(Topic::parse("/vehicles/a/other"), None);
    }
}
