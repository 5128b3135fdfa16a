//! The site and its sensors as plain data: WGS84 origin, ground model, and per sensor its
//! `world_from_sensor` pose, field of view, noise model and (cameras) pinhole intrinsics with
//! distortion. Callers load it from config (serde); [`SiteConfig::validate`] checks it on load.

use std::cmp::Ordering;

use nalgebra::{Isometry3, Point2, Point3, Quaternion, Translation3, UnitQuaternion, Vector2, Vector3};
use serde::{Deserialize, Serialize};

use crate::geo::{EnuFrame, Wgs84};

/// A calibration or site value that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid site configuration: {field}: {problem}")]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `sensors[2].intrinsics.fx`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { field: field.into(), problem: problem.into() }
    }
}

/// The whole site: origin, ground and sensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Short machine id of the site, e.g. `yancheng-cityblock`.
    pub site_id: String,
    /// Human name of the site.
    #[serde(default)]
    pub name: String,
    /// Origin of the site ENU frame.
    pub origin: Wgs84,
    /// True when the geometry is representative rather than surveyed.
    #[serde(default)]
    pub representative: bool,
    /// Ground heights in the site frame.
    #[serde(default)]
    pub ground: GroundModel,
    /// Roadside sensors.
    #[serde(default)]
    pub sensors: Vec<SensorCalibration>,
}

impl SiteConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.site_id.trim().is_empty() {
            return Err(ConfigError::new("site_id", "must not be empty"));
        }
        self.origin.validate().map_err(|e| ConfigError::new("origin", e.0))?;
        self.ground.validate()?;
        if self.sensors.len() > SensorMask::CAPACITY {
            return Err(ConfigError::new(
                "sensors",
                format!("a site has at most {} sensors, not {}", SensorMask::CAPACITY, self.sensors.len()),
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, sensor) in self.sensors.iter().enumerate() {
            sensor.validate(&format!("sensors[{i}]"))?;
            if !ids.insert(sensor.id.as_str()) {
                return Err(ConfigError::new(
                    format!("sensors[{i}].id"),
                    format!("duplicate sensor id {:?}", sensor.id),
                ));
            }
        }
        Ok(())
    }

    /// The site's ENU frame.
    pub fn frame(&self) -> EnuFrame {
        EnuFrame::new(self.origin)
    }

    /// The sensor with this id.
    pub fn sensor(&self, id: &str) -> Option<&SensorCalibration> {
        self.sensors.iter().find(|s| s.id == id)
    }

    /// The ids of the sensors in `mask`, in the order of [`SiteConfig::sensors`].
    pub fn sensor_ids(&self, mask: SensorMask) -> impl Iterator<Item = &str> {
        mask.indices().filter_map(|i| self.sensors.get(i)).map(|s| s.id.as_str())
    }
}

/// A set of the site's sensors, by index into [`SiteConfig::sensors`] (a validated site has at
/// most [`SensorMask::CAPACITY`] sensors): a copyable bitmask, so fused objects carry the sensors
/// that saw them without allocating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SensorMask(u64);

impl SensorMask {
    /// The most sensors a mask (and so a site) can hold.
    pub const CAPACITY: usize = 64;
    /// No sensor.
    pub const NONE: SensorMask = SensorMask(0);

    /// This set and sensor `index` (an index at or past [`SensorMask::CAPACITY`] is ignored).
    #[must_use]
    pub fn with(self, index: usize) -> SensorMask {
        if index < Self::CAPACITY { SensorMask(self.0 | (1u64 << index)) } else { self }
    }

    /// Whether sensor `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < Self::CAPACITY && self.0 & (1u64 << index) != 0
    }

    /// The number of sensors in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// No sensor in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The sensor indices in the set, ascending.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                i
            })
        })
    }
}

/// Ground height over the site: a default plane height, overridden inside polygons.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundModel {
    /// Ground height where no area applies [m], site frame.
    #[serde(default)]
    pub default_height_m: f64,
    /// Areas with their own height; the first that contains a point wins.
    #[serde(default)]
    pub areas: Vec<GroundArea>,
}

/// A polygon of the site with its own ground height.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundArea {
    /// Vertices (east, north) [m], site frame, at least three.
    pub polygon_m: Vec<[f64; 2]>,
    /// Ground height inside [m].
    pub height_m: f64,
}

impl GroundModel {
    /// A flat ground at `height_m`.
    pub fn flat(height_m: f64) -> Self {
        GroundModel { default_height_m: height_m, areas: Vec::new() }
    }

    /// Ground height at (x, y) [m].
    pub fn height_at(&self, x_m: f64, y_m: f64) -> f64 {
        self.areas
            .iter()
            .find(|a| point_in_polygon(&a.polygon_m, x_m, y_m))
            .map_or(self.default_height_m, |a| a.height_m)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.default_height_m.is_finite() {
            return Err(ConfigError::new("ground.default_height_m", "must be finite"));
        }
        for (i, area) in self.areas.iter().enumerate() {
            if area.polygon_m.len() < 3 {
                return Err(ConfigError::new(format!("ground.areas[{i}].polygon_m"), "needs at least 3 vertices"));
            }
            if !area.height_m.is_finite() || area.polygon_m.iter().flatten().any(|v| !v.is_finite()) {
                return Err(ConfigError::new(format!("ground.areas[{i}]"), "values must be finite"));
            }
        }
        Ok(())
    }
}

/// A heading `yaw_rad` about one frame's z axis, seen from another frame `rotation` away: the
/// heading vector turned by the rotation, projected on the new x-y plane [rad]. (The lidar update
/// does the same with the rotation as a matrix, once per frame.)
pub fn heading_through(rotation: &UnitQuaternion<f64>, yaw_rad: f64) -> f64 {
    let (sin_yaw, cos_yaw) = yaw_rad.sin_cos();
    let h = rotation * Vector3::new(cos_yaw, sin_yaw, 0.0);
    h.y.atan2(h.x)
}

/// Even-odd point-in-polygon test.
pub fn point_in_polygon(polygon: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    let n = polygon.len();
    for i in 0..n {
        let [xi, yi] = polygon[i];
        let [xj, yj] = polygon[(i + n - 1) % n];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

/// One roadside sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorCalibration {
    /// The sensor's id, as in its frames and its certificate.
    pub id: String,
    /// Maps sensor coordinates into the site frame. Lidar frame: x forward, y left, z up.
    /// Camera frame (OpenCV): x right, y down, z forward along the optical axis.
    #[serde(with = "pose_serde")]
    pub world_from_sensor: Isometry3<f64>,
    /// Usable range [m].
    pub max_range_m: f64,
    /// Horizontal field of view [deg], centred on the sensor's forward axis; 360 for a spinning lidar.
    pub hfov_deg: f64,
    /// Vertical field of view [deg].
    pub vfov_deg: f64,
    /// Nominal frame period [s] (0.1 for 10 Hz).
    #[serde(default = "default_frame_period_s")]
    pub frame_period_s: f64,
    /// Kind-specific model.
    pub model: SensorModel,
}

fn default_frame_period_s() -> f64 {
    0.1
}

/// Kind-specific calibration and noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SensorModel {
    /// A lidar with a 3D box detector.
    Lidar(LidarNoise),
    /// A camera with a 2D box detector.
    Camera(CameraModel),
}

/// Lidar box noise, 1 sigma: grows linearly with range.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LidarNoise {
    /// Position noise at zero range [m].
    pub position_sigma_m: f64,
    /// Added position noise per metre of range [m/m].
    pub position_sigma_per_m: f64,
}

impl LidarNoise {
    /// Position noise (1 sigma, per horizontal axis) at `range_m` [m].
    pub fn position_sigma_at(&self, range_m: f64) -> f64 {
        self.position_sigma_m + self.position_sigma_per_m * range_m.max(0.0)
    }
}

/// A camera: intrinsics and detector pixel noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraModel {
    /// Pinhole intrinsics with distortion.
    pub intrinsics: CameraIntrinsics,
    /// Box edge noise, 1 sigma [px].
    pub pixel_sigma_px: f64,
}

/// Pinhole intrinsics with Brown-Conrady distortion (OpenCV k1, k2, p1, p2, k3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraIntrinsics {
    /// Image width [px].
    pub width_px: u32,
    /// Image height [px].
    pub height_px: u32,
    /// Focal lengths [px].
    pub fx: f64,
    /// Focal length, vertical [px].
    pub fy: f64,
    /// Principal point [px].
    pub cx: f64,
    /// Principal point, vertical [px].
    pub cy: f64,
    /// k1, k2, p1, p2, k3.
    #[serde(default)]
    pub distortion: [f64; 5],
}

impl CameraIntrinsics {
    /// Distorts normalised image coordinates (x/z, y/z).
    pub fn distort(&self, n: Vector2<f64>) -> Vector2<f64> {
        let [k1, k2, p1, p2, k3] = self.distortion;
        let (x, y) = (n.x, n.y);
        let r2 = x * x + y * y;
        let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
        Vector2::new(
            x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
            y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y,
        )
    }

    /// Inverts [`Self::distort`] by fixed-point iteration (converges for the mild distortion of
    /// traffic cameras; 20 iterations give well below 0.01 px).
    pub fn undistort(&self, d: Vector2<f64>) -> Vector2<f64> {
        let mut n = d;
        for _ in 0..20 {
            let err = self.distort(n) - d;
            n -= err;
        }
        n
    }

    /// Projects a point in the camera frame to pixels; `None` behind the camera.
    pub fn project(&self, p_in_camera: &Point3<f64>) -> Option<Point2<f64>> {
        if p_in_camera.z <= 1e-6 {
            return None;
        }
        let inv_z = 1.0 / p_in_camera.z;
        let d = self.distort(Vector2::new(p_in_camera.x * inv_z, p_in_camera.y * inv_z));
        Some(Point2::new(self.fx * d.x + self.cx, self.fy * d.y + self.cy))
    }

    /// The unit ray (camera frame) through a pixel.
    pub fn ray(&self, pixel: &Point2<f64>) -> Vector3<f64> {
        let d = Vector2::new((pixel.x - self.cx) / self.fx, (pixel.y - self.cy) / self.fy);
        let n = self.undistort(d);
        Vector3::new(n.x, n.y, 1.0).normalize()
    }

    /// Whether a pixel lies inside the image.
    pub fn contains(&self, pixel: &Point2<f64>) -> bool {
        (0.0..=f64::from(self.width_px)).contains(&pixel.x) && (0.0..=f64::from(self.height_px)).contains(&pixel.y)
    }

    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.width_px == 0 || self.height_px == 0 || self.width_px > 16_384 || self.height_px > 16_384 {
            return Err(ConfigError::new(format!("{at}.width_px/height_px"), "must be within 1..16384"));
        }
        for (name, v) in [("fx", self.fx), ("fy", self.fy)] {
            if !v.is_finite() || v <= 0.0 {
                return Err(ConfigError::new(format!("{at}.{name}"), "focal length must be positive"));
            }
        }
        for (name, v) in [("cx", self.cx), ("cy", self.cy)] {
            if !v.is_finite() {
                return Err(ConfigError::new(format!("{at}.{name}"), "must be finite"));
            }
        }
        if self.distortion.iter().any(|v| !v.is_finite() || v.abs() > 10.0) {
            return Err(ConfigError::new(format!("{at}.distortion"), "coefficients must be finite and within ±10"));
        }
        Ok(())
    }
}

impl SensorCalibration {
    /// The sensor position in the site frame [m].
    pub fn position(&self) -> Point3<f64> {
        Point3::from(self.world_from_sensor.translation.vector)
    }

    /// [`SensorCalibration::covers`] prepared for many points: the same answers, most of them
    /// without the rotation and arctangents.
    pub fn coverage(&self) -> SensorCoverage<'_> {
        SensorCoverage {
            sensor: self,
            position_m: self.position(),
            out_of_range_m2: certainly_out_of_range_m2(self),
            cone: LidarCone::of(self),
        }
    }

    /// Whether a site-frame point lies within range and field of view (no occlusion test).
    pub fn covers(&self, p_in_world: &Point3<f64>) -> bool {
        let p = self.world_from_sensor.inverse_transform_point(p_in_world);
        match &self.model {
            SensorModel::Lidar(_) => {
                // Cheapest test first; the angles only for points in range (a 360° lidar needs
                // no azimuth: |atan2| is at most 180°).
                let range = p.coords.norm();
                range <= self.max_range_m
                    && (self.hfov_deg >= 360.0 || p.y.atan2(p.x).to_degrees().abs() <= self.hfov_deg / 2.0)
                    && p.z.atan2(p.x.hypot(p.y)).to_degrees().abs() <= self.vfov_deg / 2.0
            }
            SensorModel::Camera(cam) => {
                let range = p.coords.norm();
                range <= self.max_range_m && cam.intrinsics.project(&p).is_some_and(|px| cam.intrinsics.contains(&px))
            }
        }
    }

    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.id.trim().is_empty() || self.id.len() > 64 {
            return Err(ConfigError::new(format!("{at}.id"), "must be 1..64 characters"));
        }
        if !self.world_from_sensor.translation.vector.iter().all(|v| v.is_finite())
            || !self.world_from_sensor.rotation.coords.iter().all(|v| v.is_finite())
        {
            return Err(ConfigError::new(format!("{at}.world_from_sensor"), "must be finite"));
        }
        if !self.max_range_m.is_finite() || self.max_range_m <= 0.0 || self.max_range_m > 2000.0 {
            return Err(ConfigError::new(format!("{at}.max_range_m"), "must be within (0, 2000] m"));
        }
        if !(self.hfov_deg > 0.0 && self.hfov_deg <= 360.0) {
            return Err(ConfigError::new(format!("{at}.hfov_deg"), "must be within (0, 360] degrees"));
        }
        if !(self.vfov_deg > 0.0 && self.vfov_deg <= 180.0) {
            return Err(ConfigError::new(format!("{at}.vfov_deg"), "must be within (0, 180] degrees"));
        }
        if !(self.frame_period_s > 0.0 && self.frame_period_s <= 10.0) {
            return Err(ConfigError::new(format!("{at}.frame_period_s"), "must be within (0, 10] s"));
        }
        match &self.model {
            SensorModel::Lidar(noise) => {
                if !(noise.position_sigma_m > 0.0 && noise.position_sigma_m < 10.0) {
                    return Err(ConfigError::new(format!("{at}.model.position_sigma_m"), "must be within (0, 10) m"));
                }
                if !(noise.position_sigma_per_m >= 0.0 && noise.position_sigma_per_m < 1.0) {
                    return Err(ConfigError::new(format!("{at}.model.position_sigma_per_m"), "must be within [0, 1)"));
                }
            }
            SensorModel::Camera(cam) => {
                cam.intrinsics.validate(&format!("{at}.model.intrinsics"))?;
                if !(cam.pixel_sigma_px > 0.0 && cam.pixel_sigma_px < 100.0) {
                    return Err(ConfigError::new(format!("{at}.model.pixel_sigma_px"), "must be within (0, 100) px"));
                }
            }
        }
        Ok(())
    }
}

/// A pose written as translation plus rotation. In config either `rpy_deg` (roll, pitch, yaw about
/// x, y, z, applied as yaw·pitch·roll) or `quaternion_wxyz` may be given; it is written back as
/// the quaternion so a round trip is exact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoseConfig {
    /// Translation (east, north, up) [m].
    pub translation_m: [f64; 3],
    /// Roll, pitch, yaw [deg].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpy_deg: Option<[f64; 3]>,
    /// Unit quaternion (w, x, y, z).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quaternion_wxyz: Option<[f64; 4]>,
}

impl PoseConfig {
    /// The isometry this describes.
    pub fn to_isometry(&self) -> Result<Isometry3<f64>, String> {
        let [x, y, z] = self.translation_m;
        let rotation = match (self.rpy_deg, self.quaternion_wxyz) {
            (Some(_), Some(_)) => return Err("give either rpy_deg or quaternion_wxyz, not both".into()),
            (Some([r, p, yaw]), None) => {
                UnitQuaternion::from_euler_angles(r.to_radians(), p.to_radians(), yaw.to_radians())
            }
            (None, Some([w, qx, qy, qz])) => {
                let q = Quaternion::new(w, qx, qy, qz);
                let norm = q.norm();
                if !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
                    return Err(format!("quaternion must have unit norm (has {norm})"));
                }
                UnitQuaternion::from_quaternion(q)
            }
            (None, None) => UnitQuaternion::identity(),
        };
        Ok(Isometry3::from_parts(Translation3::new(x, y, z), rotation))
    }

    /// The config form of an isometry (quaternion).
    pub fn from_isometry(iso: &Isometry3<f64>) -> Self {
        let q = iso.rotation.quaternion();
        let t = iso.translation.vector;
        PoseConfig { translation_m: [t.x, t.y, t.z], rpy_deg: None, quaternion_wxyz: Some([q.w, q.i, q.j, q.k]) }
    }
}

mod pose_serde {
    use super::PoseConfig;
    use nalgebra::Isometry3;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(iso: &Isometry3<f64>, s: S) -> Result<S::Ok, S::Error> {
        PoseConfig::from_isometry(iso).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Isometry3<f64>, D::Error> {
        PoseConfig::deserialize(d)?.to_isometry().map_err(serde::de::Error::custom)
    }
}

/// Relative margin of [`SensorCoverage`]'s range pre-check: far above the rounding by which the
/// sensor-frame range that `covers` measures can differ from the world distance.
const RANGE_CHECK_MARGIN: f64 = 1e-3;

/// The squared distance [m²] beyond which `sensor.covers` is certainly false. Its rotation is a
/// quaternion of norm s (1 up to a log reader's tolerance), which scales sensor-frame lengths
/// by a factor of at least 1 − 2δ, δ = |s² − 1|; for δ ≤ 1/4, 1 / (1 − 2δ) ≤ 1 + 4δ.
fn certainly_out_of_range_m2(sensor: &SensorCalibration) -> f64 {
    let delta = (sensor.world_from_sensor.rotation.quaternion().norm_squared() - 1.0).abs();
    if delta.is_nan() || delta > 0.25 {
        return f64::INFINITY;
    }
    let reach_m = sensor.max_range_m * (1.0 + RANGE_CHECK_MARGIN + 4.0 * delta);
    reach_m * reach_m
}

/// Relative margin [rad, and m per m of range] within which [`LidarCone::decide`] leaves a point
/// to `covers`: far above the rounding of its own tests and of `covers`' arctangents.
const CONE_MARGIN: f64 = 1e-6;

/// A lidar's field of view as cones around its axes, for deciding most points without the
/// arctangents of `covers`.
#[derive(Clone, Copy, Debug)]
struct LidarCone {
    /// Cosine of half the horizontal field of view; `None` for a 360° lidar.
    cos_half_h: Option<f64>,
    /// Sine and cosine of half the vertical field of view.
    sin_half_v: f64,
    cos_half_v: f64,
}

impl LidarCone {
    fn of(sensor: &SensorCalibration) -> Option<Self> {
        // Fields of view outside their valid ranges are left to `covers`.
        let valid = sensor.hfov_deg > 0.0 && sensor.vfov_deg > 0.0 && sensor.vfov_deg <= 180.0;
        if !(valid && matches!(sensor.model, SensorModel::Lidar(_))) {
            return None;
        }
        let half_v_rad = (sensor.vfov_deg / 2.0).to_radians();
        Some(LidarCone {
            cos_half_h: (sensor.hfov_deg < 360.0).then(|| (sensor.hfov_deg / 2.0).to_radians().cos()),
            sin_half_v: half_v_rad.sin(),
            cos_half_v: half_v_rad.cos(),
        })
    }

    /// `sensor.covers` of a point `p` in the sensor frame (as `covers` computes it) when that is
    /// certain, else `None`. A margin m = x − cos θ · r_xy = r_xy (cos φ − cos θ) of at least
    /// ε (range + 1) puts the azimuth φ at least ε inside the half field of view θ (cosine is
    /// 1-Lipschitz), and r_xy sin β − |z| cos β = range · sin(β − |elevation|) does the same for the
    /// elevation; at most −ε (range + 1) puts it as far outside.
    fn decide(&self, p: &Point3<f64>, max_range_m: f64) -> Option<bool> {
        // The range test exactly as `covers` makes it (out when either is NaN).
        let range_m = p.coords.norm();
        if !matches!(range_m.partial_cmp(&max_range_m), Some(Ordering::Less | Ordering::Equal)) {
            return Some(false);
        }
        let margin_m = CONE_MARGIN * (range_m + 1.0);
        let r_xy_m = (p.x * p.x + p.y * p.y).sqrt();
        let vertical_m = r_xy_m * self.sin_half_v - p.z.abs() * self.cos_half_v;
        let horizontal_m = self.cos_half_h.map_or(f64::INFINITY, |c| p.x - c * r_xy_m);
        if vertical_m <= -margin_m || horizontal_m <= -margin_m {
            Some(false)
        } else if vertical_m >= margin_m && horizontal_m >= margin_m {
            Some(true)
        } else {
            None
        }
    }
}

/// A sensor's coverage test with cheaper exact answers ([`SensorCalibration::coverage`]):
/// certainly out of range from the world distance, and for a lidar, most points from its
/// field-of-view cones.
#[derive(Clone, Copy, Debug)]
pub struct SensorCoverage<'a> {
    sensor: &'a SensorCalibration,
    position_m: Point3<f64>,
    /// See [`certainly_out_of_range_m2`].
    out_of_range_m2: f64,
    cone: Option<LidarCone>,
}

impl SensorCoverage<'_> {
    /// Exactly `sensor.covers(p)` for a site-frame point `p` [m].
    pub fn covers(&self, p: &Point3<f64>) -> bool {
        if (p - self.position_m).norm_squared() > self.out_of_range_m2 {
            return false;
        }
        let decided = self.cone.and_then(|cone| {
            // The sensor-frame point exactly as `covers` computes it.
            let in_sensor = self.sensor.world_from_sensor.inverse_transform_point(p);
            cone.decide(&in_sensor, self.sensor.max_range_m)
        });
        decided.unwrap_or_else(|| self.sensor.covers(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lidar(hfov_deg: f64, vfov_deg: f64, rotation: UnitQuaternion<f64>) -> SensorCalibration {
        SensorCalibration {
            id: "lidar".into(),
            world_from_sensor: Isometry3::from_parts(Translation3::new(120.0, -45.5, 6.0), rotation),
            max_range_m: 80.0,
            hfov_deg,
            vfov_deg,
            frame_period_s: 0.1,
            model: SensorModel::Lidar(LidarNoise { position_sigma_m: 0.1, position_sigma_per_m: 0.0 }),
        }
    }

    #[test]
    fn coverage_answers_as_covers_does() {
        let tilted = UnitQuaternion::from_euler_angles(0.05, -0.2, 2.1);
        // A quaternion a little off unit length, as a log may hold one.
        let off_unit = nalgebra::Unit::new_unchecked(Quaternion::from(tilted.into_inner().coords * (1.0 + 3e-7)));
        let fovs = [(360.0, 40.0), (120.0, 30.0), (90.0, 180.0), (300.0, 10.0), (1.0, 1.0), (f64::NAN, 20.0)];
        let nudges = [0.0, 1e-13, -1e-13, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3, 0.3, -0.3];
        let mut checked = 0;
        for rotation in [UnitQuaternion::identity(), tilted, off_unit] {
            for (hfov, vfov) in fovs {
                let sensor = lidar(hfov, vfov, rotation);
                let coverage = sensor.coverage();
                let (half_h, half_v) = ((hfov / 2.0_f64).to_radians(), (vfov / 2.0_f64).to_radians());
                for range in [0.0, 1e-9, 0.5, 30.0, 80.0 - 1e-9, 80.0, 80.0 + 1e-9, 95.0] {
                    for (&dh, &dv) in nudges.iter().flat_map(|h| nudges.iter().map(move |v| (h, v))) {
                        for (azimuth, elevation) in [(half_h + dh, half_v + dv), (-half_h - dh, -half_v + dv), (dh, dv)]
                        {
                            let in_sensor = Point3::new(
                                range * elevation.cos() * azimuth.cos(),
                                range * elevation.cos() * azimuth.sin(),
                                range * elevation.sin(),
                            );
                            let p = sensor.world_from_sensor * in_sensor;
                            assert_eq!(coverage.covers(&p), sensor.covers(&p), "{hfov} {vfov} at {in_sensor:?}");
                            checked += 1;
                        }
                    }
                }
                for p in [Point3::new(f64::NAN, 0.0, 0.0), Point3::new(f64::INFINITY, 1.0, 0.0), sensor.position()] {
                    assert_eq!(coverage.covers(&p), sensor.covers(&p), "{hfov} {vfov} at {p:?}");
                }
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn sensor_masks_hold_indices_and_name_sensors() {
        let mask = SensorMask::NONE.with(0).with(3).with(63).with(3).with(64);
        assert_eq!(mask.indices().collect::<Vec<_>>(), vec![0, 3, 63]);
        assert_eq!(mask.len(), 3);
        assert!(mask.contains(63) && !mask.contains(1) && !mask.contains(64));
        assert!(SensorMask::NONE.is_empty() && SensorMask::NONE.indices().next().is_none());
        let lidar = |id: &str| SensorCalibration {
            id: id.into(),
            world_from_sensor: Isometry3::identity(),
            max_range_m: 100.0,
            hfov_deg: 360.0,
            vfov_deg: 40.0,
            frame_period_s: 0.1,
            model: SensorModel::Lidar(LidarNoise { position_sigma_m: 0.1, position_sigma_per_m: 0.0 }),
        };
        let mut site = SiteConfig {
            site_id: "s".into(),
            name: String::new(),
            origin: Wgs84::new(33.35, 120.16, 2.0),
            representative: false,
            ground: GroundModel::flat(0.0),
            sensors: vec![lidar("a"), lidar("b"), lidar("c")],
        };
        assert_eq!(site.sensor_ids(SensorMask::NONE.with(2).with(0).with(9)).collect::<Vec<_>>(), vec!["a", "c"]);
        site.validate().expect("three sensors are fine");
        site.sensors = (0..65).map(|i| lidar(&format!("l{i}"))).collect();
        let err = site.validate().expect_err("65 sensors do not fit a mask");
        assert!(err.to_string().contains("at most 64"), "{err}");
    }

    fn camera() -> CameraIntrinsics {
        CameraIntrinsics {
            width_px: 1920,
            height_px: 1080,
            fx: 1400.0,
            fy: 1400.0,
            cx: 960.0,
            cy: 540.0,
            distortion: [-0.12, 0.03, 0.001, -0.0005, 0.0],
        }
    }

    #[test]
    fn projection_and_ray_are_inverse() {
        let cam = camera();
        for p in [Point3::new(0.0, 0.0, 10.0), Point3::new(3.0, 1.5, 20.0), Point3::new(-6.0, 2.0, 15.0)] {
            let px = cam.project(&p).expect("in front");
            let ray = cam.ray(&px);
            let back = ray * (p.z / ray.z);
            assert!((back - p.coords).norm() < 1e-6, "{p:?} -> {back:?}");
        }
        assert!(cam.project(&Point3::new(0.0, 0.0, -1.0)).is_none());
    }

    #[test]
    fn site_config_loads_from_toml_and_validates() {
        let text = r#"
            site_id = "test"
            origin = { lat_deg = 33.2, lon_deg = 120.5, alt_m = 3.0 }
            [ground]
            default_height_m = 0.0
            [[sensors]]
            id = "lidar-1"
            world_from_sensor = { translation_m = [0.0, 0.0, 5.0], rpy_deg = [0.0, 0.0, 90.0] }
            max_range_m = 120.0
            hfov_deg = 360.0
            vfov_deg = 40.0
            model = { kind = "lidar", position_sigma_m = 0.05, position_sigma_per_m = 0.002 }
            [[sensors]]
            id = "cam-1"
            world_from_sensor = { translation_m = [10.0, 0.0, 6.0], quaternion_wxyz = [1.0, 0.0, 0.0, 0.0] }
            max_range_m = 150.0
            hfov_deg = 70.0
            vfov_deg = 40.0
            model = { kind = "camera", pixel_sigma_px = 4.0, intrinsics = { width_px = 1920, height_px = 1080, fx = 1400.0, fy = 1400.0, cx = 960.0, cy = 540.0 } }
        "#;
        let site: SiteConfig = toml::from_str(text).expect("parses");
        site.validate().expect("valid");
        let lidar = site.sensor("lidar-1").expect("present");
        let p = lidar.world_from_sensor.transform_point(&Point3::new(1.0, 0.0, 0.0));
        assert!((p - Point3::new(0.0, 1.0, 5.0)).norm() < 1e-12, "yaw 90 deg turns x into north");
        // Serialising writes the quaternion; reading it back gives the same isometry bit for bit.
        let again: SiteConfig = toml::from_str(&toml::to_string(&site).expect("serialises")).expect("parses");
        assert_eq!(again, site);

        let mut bad = site.clone();
        bad.sensors[1].id = "lidar-1".into();
        assert_eq!(bad.validate().expect_err("duplicate").field, "sensors[1].id");
        let mut bad = site.clone();
        bad.sensors[0].max_range_m = -1.0;
        assert_eq!(bad.validate().expect_err("negative range").field, "sensors[0].max_range_m");
    }

    #[test]
    fn ground_areas_override_the_default_height() {
        let ground = GroundModel {
            default_height_m: 0.5,
            areas: vec![GroundArea {
                polygon_m: vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]],
                height_m: 2.0,
            }],
        };
        assert_eq!(ground.height_at(5.0, 5.0), 2.0);
        assert_eq!(ground.height_at(15.0, 5.0), 0.5);
    }
}
