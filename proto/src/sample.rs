//! Deterministic, realistic sample messages for tests, benchmarks and documentation: a busy
//! intersection frame with a plausible mix of vehicles, riders and pedestrians.

use nalgebra::{Isometry3, Point2, Point3, Translation3, UnitQuaternion};
use rsu_fusion::calibration::{CameraIntrinsics, CameraModel, GroundArea, GroundModel, LidarNoise};
use rsu_fusion::measurement::{
    ActiveWarning, AdasStatus, BrakeStatus, CameraDetection, CameraDetections, Detections, GnssStatus, LidarDetection,
    PositionAccuracy, WarningKind,
};
use rsu_fusion::{
    BoxSize, ObjectClass, Participant, RoadsideFrame, SensorCalibration, SensorFrame, SensorHealth, SensorModel,
    SensorStatus, SiteConfig, SourceSet, Timestamp, VehicleState, Wgs84,
};

/// A small deterministic generator (SplitMix64), so samples and tests need no RNG dependency.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The Yancheng representative site origin used by samples.
pub const SAMPLE_ORIGIN: Wgs84 = Wgs84::new(33.2012, 120.5032, 3.0);

/// A roadside frame of `n` participants spread over a 160 m × 160 m intersection area around the
/// reference point: 60% cars/vans/trucks/buses (moving, some turning), 15% riders, 25%
/// pedestrians, tracks of all ages, no path history.
pub fn intersection_frame(n: usize, seed: u64) -> RoadsideFrame {
    let mut rng = SplitMix(seed);
    let participants = (0..n)
        .map(|i| {
            let pick = rng.range(0.0, 1.0);
            let class = if pick < 0.45 {
                ObjectClass::Car
            } else if pick < 0.52 {
                ObjectClass::Van
            } else if pick < 0.56 {
                ObjectClass::Truck
            } else if pick < 0.60 {
                ObjectClass::Bus
            } else if pick < 0.75 {
                ObjectClass::Cyclist
            } else {
                ObjectClass::Pedestrian
            };
            let typical = class.typical_size();
            let vru = class.is_vru();
            let speed_mps = if vru { rng.range(0.0, 5.0) } else { rng.range(0.0, 16.0) };
            let turning = !vru && rng.range(0.0, 1.0) < 0.2;
            let sources =
                if rng.range(0.0, 1.0) < 0.7 { SourceSet::LIDAR | SourceSet::CAMERA } else { SourceSet::LIDAR };
            Participant {
                id: 1000 + i as u32 * 7,
                class,
                class_confidence: rng.range(0.6, 1.0),
                sources,
                position_m: Point3::new(rng.range(-80.0, 80.0), rng.range(-80.0, 80.0), rng.range(-0.2, 0.2)),
                pos_confidence_95_m: rng.range(0.1, 0.8),
                speed_mps,
                yaw_rad: rng.range(-std::f64::consts::PI, std::f64::consts::PI),
                yaw_rate_rps: if turning { rng.range(-0.4, 0.4) } else { 0.0 },
                accel_mps2: if vru { 0.0 } else { rng.range(-1.5, 1.5) },
                size: BoxSize::new(
                    typical.length_m * rng.range(0.9, 1.1),
                    typical.width_m * rng.range(0.9, 1.1),
                    typical.height_m * rng.range(0.9, 1.1),
                ),
                age_s: rng.range(0.0, 60.0),
                v2x_id: None,
                path_history: Vec::new(),
            }
        })
        .collect();
    RoadsideFrame {
        rsu_id: "rsu-cityblock-1".into(),
        message_count: 4242,
        time: Timestamp::from_nanos(1_795_000_000_000_000_000),
        reference: SAMPLE_ORIGIN,
        participants,
        sensors: ["lidar-ne", "lidar-sw", "cam-n", "cam-s"]
            .iter()
            .map(|id| SensorHealth {
                sensor_id: (*id).into(),
                status: SensorStatus::Ok,
                last_capture: Some(Timestamp::from_nanos(1_794_999_999_950_000_000)),
            })
            .collect(),
        perception_regions: vec![vec![[-80.0, -80.0], [80.0, -80.0], [80.0, 80.0], [-80.0, 80.0]]],
        newest_capture: Some(Timestamp::from_nanos(1_794_999_999_950_000_000)),
    }
}

/// A small site: one lidar, one camera, a ground area.
pub fn site() -> SiteConfig {
    SiteConfig {
        site_id: "yancheng-cityblock".into(),
        name: "Representative city block".into(),
        origin: SAMPLE_ORIGIN,
        representative: true,
        ground: GroundModel {
            default_height_m: 0.25,
            areas: vec![GroundArea { polygon_m: vec![[0.0, 0.0], [5.0, 0.0], [5.0, 5.0]], height_m: 1.5 }],
        },
        sensors: vec![
            SensorCalibration {
                id: "lidar-ne".into(),
                world_from_sensor: Isometry3::from_parts(
                    Translation3::new(12.5, 14.0, 6.2),
                    UnitQuaternion::from_euler_angles(0.01, -0.02, 2.3),
                ),
                max_range_m: 120.0,
                hfov_deg: 360.0,
                vfov_deg: 40.0,
                frame_period_s: 0.1,
                model: SensorModel::Lidar(LidarNoise { position_sigma_m: 0.05, position_sigma_per_m: 0.002 }),
            },
            SensorCalibration {
                id: "cam-n".into(),
                world_from_sensor: Isometry3::from_parts(
                    Translation3::new(-3.0, 20.0, 7.0),
                    UnitQuaternion::from_euler_angles(-1.9, 0.0, 3.1),
                ),
                max_range_m: 150.0,
                hfov_deg: 70.0,
                vfov_deg: 42.0,
                frame_period_s: 1.0 / 15.0,
                model: SensorModel::Camera(CameraModel {
                    intrinsics: CameraIntrinsics {
                        width_px: 1920,
                        height_px: 1080,
                        fx: 1380.5,
                        fy: 1381.25,
                        cx: 958.0,
                        cy: 541.5,
                        distortion: [-0.11, 0.025, 0.0005, -0.0003, 0.0],
                    },
                    pixel_sigma_px: 4.0,
                }),
            },
        ],
    }
}

/// A lidar frame of one car.
pub fn lidar_frame() -> SensorFrame {
    SensorFrame {
        sensor_id: "lidar-ne".into(),
        sequence: 77,
        capture_time: Timestamp::from_nanos(1_795_000_000_123_456_789),
        detections: Detections::Lidar(vec![LidarDetection {
            center_in_sensor: Point3::new(10.5, -3.25, -5.0),
            size: BoxSize::new(4.5, 1.75, 1.5),
            yaw_rad: 0.5,
            class: ObjectClass::Car,
            score: 0.875,
            point_count: Some(312),
        }]),
    }
}

/// A camera frame of one pedestrian.
pub fn camera_frame() -> SensorFrame {
    SensorFrame {
        sensor_id: "cam-n".into(),
        sequence: 3,
        capture_time: Timestamp::from_nanos(1_795_000_000_200_000_000),
        detections: Detections::Camera(CameraDetections {
            image_width_px: 1920,
            image_height_px: 1080,
            boxes: vec![CameraDetection {
                min_px: Point2::new(100.5, 200.25),
                max_px: Point2::new(180.0, 400.0),
                class_scores: vec![(ObjectClass::Pedestrian, 0.75), (ObjectClass::Cyclist, 0.125)],
            }],
        }),
    }
}

/// A connected car braking for a pedestrian.
pub fn vehicle_state() -> VehicleState {
    VehicleState {
        vehicle_id: "veh-0007".into(),
        message_count: 12,
        time: Timestamp::from_nanos(1_795_000_000_300_000_000),
        position: Wgs84::new(33.201_234_5, 120.503_456_7, 4.56),
        accuracy: PositionAccuracy { semi_major_m: 0.35, semi_minor_m: 0.2, orientation_rad: grid_yaw(1000) },
        speed_mps: 11.1,
        yaw_rad: grid_yaw(9000),
        steering_rad: (35.0_f64 / 10.0).to_radians(),
        yaw_rate_rps: (250.0_f64 / 100.0).to_radians(),
        accel_long_mps2: -1.25,
        accel_lat_mps2: 0.3,
        brakes: BrakeStatus { pedal_pressed: true, abs_active: false, aeb_active: true, demand: 0.6 },
        size: BoxSize::new(4.6, 1.85, 1.5),
        class: ObjectClass::Car,
        adas: AdasStatus {
            acc_active: true,
            fcw_enabled: true,
            aeb_enabled: true,
            v2x_active: true,
            ..Default::default()
        },
        warnings: vec![ActiveWarning { kind: WarningKind::Vrucw, target_id: 1021, ttc_s: Some(2.4) }],
        gnss: GnssStatus::RtkFixed,
    }
}

/// A yaw exactly on the wire's heading grid.
fn grid_yaw(heading: u32) -> f64 {
    crate::convert::yaw_from_heading(heading)
}
