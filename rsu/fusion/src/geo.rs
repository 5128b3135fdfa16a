//! WGS84 positions and the site's local East-North-Up frame, with the exact ellipsoidal
//! conversion (geodetic ↔ ECEF ↔ ENU), valid far beyond the site, not a flat-earth approximation.

use nalgebra::{Matrix3, Point3, Vector3};
use serde::{Deserialize, Serialize};

/// WGS84 semi-major axis [m].
pub const WGS84_A_M: f64 = 6_378_137.0;
/// WGS84 flattening.
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;
/// WGS84 first eccentricity squared.
pub const WGS84_E2: f64 = WGS84_F * (2.0 - WGS84_F);
/// WGS84 semi-minor axis [m].
pub const WGS84_B_M: f64 = WGS84_A_M * (1.0 - WGS84_F);

/// A geodetic WGS84 position.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wgs84 {
    /// Latitude [deg], -90..90.
    pub lat_deg: f64,
    /// Longitude [deg], -180..180.
    pub lon_deg: f64,
    /// Height above the ellipsoid [m].
    pub alt_m: f64,
}

/// A WGS84 position outside the valid ranges.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid WGS84 position: {0}")]
pub struct InvalidWgs84(pub &'static str);

impl Wgs84 {
    /// A position from degrees and metres.
    pub const fn new(lat_deg: f64, lon_deg: f64, alt_m: f64) -> Self {
        Wgs84 { lat_deg, lon_deg, alt_m }
    }

    /// Checks ranges and finiteness.
    pub fn validate(&self) -> Result<(), InvalidWgs84> {
        if !self.lat_deg.is_finite() || !(-90.0..=90.0).contains(&self.lat_deg) {
            return Err(InvalidWgs84("latitude must be within -90..90 degrees"));
        }
        if !self.lon_deg.is_finite() || !(-180.0..=180.0).contains(&self.lon_deg) {
            return Err(InvalidWgs84("longitude must be within -180..180 degrees"));
        }
        if !self.alt_m.is_finite() || !(-12_000.0..=100_000.0).contains(&self.alt_m) {
            return Err(InvalidWgs84("altitude must be within -12 km..100 km"));
        }
        Ok(())
    }

    /// Earth-centred, earth-fixed coordinates [m].
    pub fn to_ecef(&self) -> Point3<f64> {
        let (lat, lon) = (self.lat_deg.to_radians(), self.lon_deg.to_radians());
        let (sin_lat, cos_lat) = lat.sin_cos();
        let (sin_lon, cos_lon) = lon.sin_cos();
        // Prime vertical radius of curvature.
        let n = WGS84_A_M / (1.0 - WGS84_E2 * sin_lat * sin_lat).sqrt();
        Point3::new(
            (n + self.alt_m) * cos_lat * cos_lon,
            (n + self.alt_m) * cos_lat * sin_lon,
            (n * (1.0 - WGS84_E2) + self.alt_m) * sin_lat,
        )
    }

    /// From earth-centred, earth-fixed coordinates [m] (Bowring's method refined by Newton steps;
    /// sub-millimetre everywhere near the earth's surface).
    pub fn from_ecef(p: &Point3<f64>) -> Self {
        let (x, y, z) = (p.x, p.y, p.z);
        let lon = y.atan2(x);
        let r = x.hypot(y);
        if r < 1e-9 {
            // On the polar axis.
            let lat = if z >= 0.0 { 90.0 } else { -90.0 };
            return Wgs84::new(lat, 0.0, z.abs() - WGS84_B_M);
        }
        let ep2 = WGS84_E2 / (1.0 - WGS84_E2);
        // Bowring's initial parametric latitude.
        let beta = (WGS84_A_M * z).atan2(WGS84_B_M * r);
        let (sb, cb) = beta.sin_cos();
        let mut lat = (z + ep2 * WGS84_B_M * sb.powi(3)).atan2(r - WGS84_E2 * WGS84_A_M * cb.powi(3));
        let mut alt = 0.0;
        for _ in 0..3 {
            let (sin_lat, cos_lat) = lat.sin_cos();
            let n = WGS84_A_M / (1.0 - WGS84_E2 * sin_lat * sin_lat).sqrt();
            alt = if cos_lat.abs() > 1e-10 { r / cos_lat - n } else { z.abs() / sin_lat.abs() - n * (1.0 - WGS84_E2) };
            lat = z.atan2(r * (1.0 - WGS84_E2 * n / (n + alt)));
        }
        Wgs84::new(lat.to_degrees(), lon.to_degrees(), alt)
    }
}

/// The site frame: local East-North-Up [m] anchored at a WGS84 origin.
#[derive(Clone, Debug, PartialEq)]
pub struct EnuFrame {
    origin: Wgs84,
    origin_ecef: Point3<f64>,
    /// Rotates ECEF vectors into ENU (rows: east, north, up).
    enu_from_ecef: Matrix3<f64>,
}

impl EnuFrame {
    /// The ENU frame at `origin`.
    pub fn new(origin: Wgs84) -> Self {
        let (lat, lon) = (origin.lat_deg.to_radians(), origin.lon_deg.to_radians());
        let (sin_lat, cos_lat) = lat.sin_cos();
        let (sin_lon, cos_lon) = lon.sin_cos();
        let enu_from_ecef = Matrix3::new(
            -sin_lon,
            cos_lon,
            0.0,
            -sin_lat * cos_lon,
            -sin_lat * sin_lon,
            cos_lat,
            cos_lat * cos_lon,
            cos_lat * sin_lon,
            sin_lat,
        );
        EnuFrame { origin, origin_ecef: origin.to_ecef(), enu_from_ecef }
    }

    /// The frame's origin.
    pub fn origin(&self) -> Wgs84 {
        self.origin
    }

    /// A WGS84 position in site coordinates [m].
    pub fn enu_from_wgs84(&self, p: &Wgs84) -> Point3<f64> {
        let d: Vector3<f64> = p.to_ecef() - self.origin_ecef;
        Point3::from(self.enu_from_ecef * d)
    }

    /// Site coordinates [m] as a WGS84 position.
    pub fn wgs84_from_enu(&self, p_in_site: &Point3<f64>) -> Wgs84 {
        let ecef = self.origin_ecef + self.enu_from_ecef.transpose() * p_in_site.coords;
        Wgs84::from_ecef(&ecef)
    }

    /// Rotation angle [rad] from grid north (the frame's +y) to true north at `p_in_site`:
    /// meridians converge away from the origin, so a heading measured against true north there
    /// differs from the site-frame heading by this much (counter-clockwise positive).
    pub fn true_north_rotation_rad(&self, p_in_site: &Point3<f64>) -> f64 {
        let here = self.wgs84_from_enu(p_in_site);
        let north = Wgs84::new(here.lat_deg + 1e-5, here.lon_deg, here.alt_m);
        let d = self.enu_from_wgs84(&north) - *p_in_site;
        // Angle of the local true-north direction, counter-clockwise from site +y.
        (-d.x).atan2(d.y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecef_of_known_points() {
        let equator = Wgs84::new(0.0, 0.0, 0.0).to_ecef();
        assert!((equator - Point3::new(WGS84_A_M, 0.0, 0.0)).norm() < 1e-6);
        let pole = Wgs84::new(90.0, 0.0, 0.0).to_ecef();
        assert!((pole - Point3::new(0.0, 0.0, WGS84_B_M)).norm() < 1e-6);
        let east = Wgs84::new(0.0, 90.0, 100.0).to_ecef();
        assert!((east - Point3::new(0.0, WGS84_A_M + 100.0, 0.0)).norm() < 1e-6);
        // The semi-minor axis of WGS84 is 6356752.314245 m (NIMA TR8350.2).
        assert!((WGS84_B_M - 6_356_752.314_245).abs() < 1e-6);
    }

    #[test]
    fn geodetic_round_trip_is_sub_millimetre() {
        for &(lat, lon, alt) in
            &[(33.2, 120.5, 5.0), (-45.0, -170.0, 1200.0), (89.9, 10.0, -30.0), (0.0, 180.0, 0.0), (60.0, 30.0, 9000.0)]
        {
            let p = Wgs84::new(lat, lon, alt);
            let back = Wgs84::from_ecef(&p.to_ecef());
            assert!((back.lat_deg - lat).abs() < 1e-9, "{back:?}");
            assert!((back.lon_deg - lon).abs() < 1e-9, "{back:?}");
            assert!((back.alt_m - alt).abs() < 1e-4, "{back:?}");
        }
    }

    #[test]
    fn enu_matches_meridian_and_parallel_arcs() {
        // Yancheng (Dafeng) latitude.
        let origin = Wgs84::new(33.2, 120.5, 3.0);
        let frame = EnuFrame::new(origin);
        let lat = origin.lat_deg.to_radians();
        let s2 = lat.sin().powi(2);
        // Meridian radius of curvature M and prime vertical N at the origin.
        let m = WGS84_A_M * (1.0 - WGS84_E2) / (1.0 - WGS84_E2 * s2).powf(1.5);
        let n = WGS84_A_M / (1.0 - WGS84_E2 * s2).sqrt();
        let d_deg = 0.001;
        let north = frame.enu_from_wgs84(&Wgs84::new(origin.lat_deg + d_deg, origin.lon_deg, origin.alt_m));
        let expected_north = m * d_deg.to_radians();
        assert!((north.y - expected_north).abs() < 0.01, "north {north:?} vs {expected_north}");
        assert!(north.x.abs() < 1e-6);
        let east = frame.enu_from_wgs84(&Wgs84::new(origin.lat_deg, origin.lon_deg + d_deg, origin.alt_m));
        let expected_east = (n + origin.alt_m) * lat.cos() * d_deg.to_radians();
        assert!((east.x - expected_east).abs() < 0.01, "east {east:?} vs {expected_east}");
        // The earth curves away: a point 1 km east at the same ellipsoidal height lies below the
        // tangent plane by about d^2 / (2R).
        let far = frame.enu_from_wgs84(&Wgs84::new(origin.lat_deg, origin.lon_deg + 0.0107, origin.alt_m));
        let drop = far.x * far.x / (2.0 * n);
        assert!((far.z + drop).abs() < 0.01, "z {} vs {}", far.z, -drop);
    }

    #[test]
    fn enu_round_trip_over_tens_of_kilometres() {
        let frame = EnuFrame::new(Wgs84::new(33.2, 120.5, 3.0));
        for p in [Point3::new(0.0, 0.0, 0.0), Point3::new(2100.0, -35.0, 1.5), Point3::new(-30_000.0, 40_000.0, 250.0)]
        {
            let back = frame.enu_from_wgs84(&frame.wgs84_from_enu(&p));
            assert!((back - p).norm() < 1e-4, "{p:?} -> {back:?}");
        }
    }

    #[test]
    fn validation_rejects_out_of_range() {
        assert!(Wgs84::new(91.0, 0.0, 0.0).validate().is_err());
        assert!(Wgs84::new(0.0, 181.0, 0.0).validate().is_err());
        assert!(Wgs84::new(f64::NAN, 0.0, 0.0).validate().is_err());
        assert!(Wgs84::new(33.2, 120.5, 3.0).validate().is_ok());
    }
}
