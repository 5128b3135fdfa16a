//! What an object is: the object classes, the CSAE participant types they map to, per-class
//! defaults (typical size, motion model family) and the set of source kinds that saw an object.

use serde::{Deserialize, Serialize};

/// Object class, at the detail of the CSAE 53 / ETSI CPM classifications (same values as the
/// wire enum `v2x.v1.ObjectClass`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ObjectClass {
    /// Not known.
    #[default]
    Unknown = 0,
    /// Passenger car.
    Car = 1,
    /// Van or minibus.
    Van = 2,
    /// Truck or lorry.
    Truck = 3,
    /// Bus or coach.
    Bus = 4,
    /// Low-speed driverless shuttle.
    Shuttle = 5,
    /// Low-speed driverless delivery vehicle.
    Delivery = 6,
    /// Emergency vehicle.
    Emergency = 7,
    /// Motorcycle with rider.
    Motorcyclist = 8,
    /// Bicycle or e-bike with rider.
    Cyclist = 9,
    /// Tricycle with rider.
    Tricyclist = 10,
    /// Pedestrian.
    Pedestrian = 11,
    /// Person pushing a cart or barrow.
    Barrow = 12,
    /// Traffic cone.
    TrafficCone = 13,
    /// Other static obstacle.
    Obstacle = 14,
}

/// CSAE 53 participant type (ptcType), plus obstacles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantType {
    /// Not known.
    Unknown,
    /// Motor vehicle.
    Motor,
    /// Non-motor vehicle (bicycle, tricycle).
    NonMotor,
    /// Pedestrian.
    Pedestrian,
    /// Static obstacle.
    Obstacle,
}

/// Which motion model family a class moves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MotionFamily {
    /// Moves along its heading and turns smoothly (constant turn rate and velocity).
    Vehicle,
    /// Moves in any direction (constant velocity).
    Pedestrian,
    /// Does not move.
    Static,
}

impl ObjectClass {
    /// Every class, in wire order.
    pub const ALL: [ObjectClass; 15] = [
        ObjectClass::Unknown,
        ObjectClass::Car,
        ObjectClass::Van,
        ObjectClass::Truck,
        ObjectClass::Bus,
        ObjectClass::Shuttle,
        ObjectClass::Delivery,
        ObjectClass::Emergency,
        ObjectClass::Motorcyclist,
        ObjectClass::Cyclist,
        ObjectClass::Tricyclist,
        ObjectClass::Pedestrian,
        ObjectClass::Barrow,
        ObjectClass::TrafficCone,
        ObjectClass::Obstacle,
    ];

    /// Number of classes.
    pub const COUNT: usize = Self::ALL.len();

    /// The wire value.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The class of a wire value, if there is one.
    pub fn from_code(code: i32) -> Option<Self> {
        usize::try_from(code).ok().and_then(|i| Self::ALL.get(i).copied())
    }

    /// Index into per-class arrays (`0..COUNT`).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The CSAE participant type this class belongs to.
    pub const fn participant_type(self) -> ParticipantType {
        use ObjectClass::*;
        match self {
            Unknown => ParticipantType::Unknown,
            Car | Van | Truck | Bus | Shuttle | Delivery | Emergency | Motorcyclist => ParticipantType::Motor,
            Cyclist | Tricyclist => ParticipantType::NonMotor,
            Pedestrian | Barrow => ParticipantType::Pedestrian,
            TrafficCone | Obstacle => ParticipantType::Obstacle,
        }
    }

    /// How objects of this class move.
    pub const fn motion_family(self) -> MotionFamily {
        use ObjectClass::*;
        match self {
            Pedestrian | Barrow => MotionFamily::Pedestrian,
            TrafficCone | Obstacle => MotionFamily::Static,
            _ => MotionFamily::Vehicle,
        }
    }

    /// Vulnerable road user (pedestrians and riders).
    pub const fn is_vru(self) -> bool {
        matches!(
            self,
            ObjectClass::Pedestrian
                | ObjectClass::Barrow
                | ObjectClass::Cyclist
                | ObjectClass::Motorcyclist
                | ObjectClass::Tricyclist
        )
    }

    /// Typical box size of the class: length, width, height [m]. Used where a sensor gives no
    /// size (a camera box back-projected to the ground) and to initialise new tracks.
    pub const fn typical_size(self) -> BoxSize {
        use ObjectClass::*;
        let (l, w, h) = match self {
            Unknown => (2.0, 1.0, 1.5),
            Car => (4.6, 1.85, 1.5),
            Van => (5.2, 2.0, 2.1),
            Truck => (8.5, 2.5, 3.2),
            Bus => (12.0, 2.55, 3.2),
            Shuttle => (4.5, 2.0, 2.5),
            Delivery => (2.5, 1.2, 1.6),
            Emergency => (5.5, 2.1, 2.5),
            Motorcyclist => (2.1, 0.8, 1.6),
            Cyclist => (1.8, 0.6, 1.7),
            Tricyclist => (2.5, 1.2, 1.7),
            Pedestrian => (0.5, 0.5, 1.7),
            Barrow => (1.2, 0.7, 1.7),
            TrafficCone => (0.4, 0.4, 0.7),
            Obstacle => (1.0, 1.0, 0.5),
        };
        BoxSize { length_m: l, width_m: w, height_m: h }
    }

    /// Short lowercase name (the serde name).
    pub const fn name(self) -> &'static str {
        use ObjectClass::*;
        match self {
            Unknown => "unknown",
            Car => "car",
            Van => "van",
            Truck => "truck",
            Bus => "bus",
            Shuttle => "shuttle",
            Delivery => "delivery",
            Emergency => "emergency",
            Motorcyclist => "motorcyclist",
            Cyclist => "cyclist",
            Tricyclist => "tricyclist",
            Pedestrian => "pedestrian",
            Barrow => "barrow",
            TrafficCone => "traffic_cone",
            Obstacle => "obstacle",
        }
    }
}

impl std::fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Extent of an oriented box [m].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxSize {
    /// Along the object's heading [m].
    pub length_m: f64,
    /// Across the heading [m].
    pub width_m: f64,
    /// Vertical [m].
    pub height_m: f64,
}

impl BoxSize {
    /// A size from length, width, height [m].
    pub const fn new(length_m: f64, width_m: f64, height_m: f64) -> Self {
        BoxSize { length_m, width_m, height_m }
    }

    /// All three extents finite and positive.
    pub fn is_valid(&self) -> bool {
        let ok = |v: f64| v > 0.0 && v < f64::INFINITY;
        ok(self.length_m) & ok(self.width_m) & ok(self.height_m)
    }
}

/// The kinds of source that contributed to an object (wire: `v2x.v1.SourceBit` bitmask).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceSet(u8);

impl SourceSet {
    /// No source.
    pub const NONE: SourceSet = SourceSet(0);
    /// Roadside lidar.
    pub const LIDAR: SourceSet = SourceSet(1);
    /// Roadside camera.
    pub const CAMERA: SourceSet = SourceSet(2);
    /// Radar.
    pub const RADAR: SourceSet = SourceSet(4);
    /// The object's own V2X self-report.
    pub const V2X: SourceSet = SourceSet(8);
    /// Every bit this version knows.
    pub const ALL_BITS: u8 = 0b1111;

    /// From wire bits; `None` when an unknown bit is set.
    pub fn from_bits(bits: u32) -> Option<Self> {
        u8::try_from(bits).ok().filter(|b| b & !Self::ALL_BITS == 0).map(SourceSet)
    }

    /// The wire bits.
    pub const fn bits(self) -> u32 {
        self.0 as u32
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: SourceSet) -> SourceSet {
        SourceSet(self.0 | other.0)
    }

    /// Whether every bit of `other` is in `self`.
    pub const fn contains(self, other: SourceSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// No bit set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for SourceSet {
    type Output = SourceSet;
    fn bitor(self, rhs: SourceSet) -> SourceSet {
        self.union(rhs)
    }
}

impl std::ops::BitOrAssign for SourceSet {
    fn bitor_assign(&mut self, rhs: SourceSet) {
        *self = self.union(rhs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_reject_unknown() {
        for class in ObjectClass::ALL {
            assert_eq!(ObjectClass::from_code(i32::from(class.code())), Some(class));
            assert_eq!(ObjectClass::ALL[class.index()], class);
        }
        assert_eq!(ObjectClass::from_code(15), None);
        assert_eq!(ObjectClass::from_code(-1), None);
    }

    #[test]
    fn participant_types_follow_csae() {
        assert_eq!(ObjectClass::Bus.participant_type(), ParticipantType::Motor);
        assert_eq!(ObjectClass::Cyclist.participant_type(), ParticipantType::NonMotor);
        assert_eq!(ObjectClass::Pedestrian.participant_type(), ParticipantType::Pedestrian);
        assert_eq!(ObjectClass::TrafficCone.participant_type(), ParticipantType::Obstacle);
        assert!(ObjectClass::ALL.iter().all(|c| c.typical_size().is_valid()));
    }

    #[test]
    fn source_bits() {
        let s = SourceSet::LIDAR | SourceSet::V2X;
        assert!(s.contains(SourceSet::LIDAR) && !s.contains(SourceSet::CAMERA));
        assert_eq!(SourceSet::from_bits(s.bits()), Some(s));
        assert_eq!(SourceSet::from_bits(16), None);
    }
}
