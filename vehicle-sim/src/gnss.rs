//! Connected vehicles' self-reports (BSM-like [`VehicleState`] at 10 Hz): the true state plus a
//! positioning error whose size follows the fix quality. Open sky gives RTK; in a tunnel there is
//! no fix and the vehicle dead-reckons with an error growing with the distance driven; after the
//! tunnel exit the receiver needs a while without fix, then reports standalone, differential and
//! finally RTK again, each with a first-order Gauss-Markov error of its own size (a change of fix
//! kind starts a fresh error). A spoofing vehicle ([`Spoof`]) adds a lie of its own to the
//! position it reports, claiming its usual accuracy.

use nalgebra::{Point2, Point3, Vector2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rsu_fusion::measurement::{AdasStatus, BrakeStatus, GnssStatus, PositionAccuracy};
use rsu_fusion::{Timestamp, VehicleState};

use crate::sensors::gauss;
use crate::world::{ActorTruth, rng_stream};
use rsu_site::geometry::wrap_angle;
use rsu_site::model::SiteModel;

/// GNSS and self-report noise parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GnssParams {
    /// RTK fixed position error, 1 sigma per axis [m].
    pub rtk_sigma_m: f64,
    /// Differential (RTK float, DGNSS) error [m].
    pub differential_sigma_m: f64,
    /// Standalone GNSS error [m].
    pub standalone_sigma_m: f64,
    /// Correlation time of the position error [s].
    pub correlation_s: f64,
    /// Dead-reckoning drift per metre driven [m/m].
    pub dead_reckoning_drift_per_m: f64,
    /// After leaving a tunnel: time without a fix [s].
    pub reacquire_s: f64,
    /// Then standalone for this long [s].
    pub standalone_s: f64,
    /// Then differential for this long [s], then RTK.
    pub differential_s: f64,
    /// Speed noise, 1 sigma [m/s].
    pub speed_sigma_mps: f64,
    /// Heading noise, 1 sigma [rad].
    pub yaw_sigma_rad: f64,
    /// Steering wheel angle per road wheel angle.
    pub steering_ratio: f64,
}

impl Default for GnssParams {
    fn default() -> Self {
        GnssParams {
            rtk_sigma_m: 0.03,
            differential_sigma_m: 0.5,
            standalone_sigma_m: 2.0,
            correlation_s: 4.0,
            dead_reckoning_drift_per_m: 0.02,
            reacquire_s: 2.5,
            standalone_s: 6.0,
            differential_s: 8.0,
            speed_sigma_mps: 0.05,
            yaw_sigma_rad: 0.01,
            steering_ratio: 15.0,
        }
    }
}

/// A lie a spoofing vehicle tells in its self-reports: from `from_s` on, it reports itself
/// `offset_m` away from where it is (the whole offset at once when `ramp_s` is 0, or growing
/// linearly to it over `ramp_s`), claiming its usual accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Spoof {
    /// The lying vehicle's V2X id.
    pub vehicle_id: String,
    /// When the lie starts [s after start].
    pub from_s: f64,
    /// The offset of the reported position from the true one, (east, north) [m].
    pub offset_m: [f64; 2],
    /// Time over which the offset grows to its full size [s]; 0 for a jump.
    pub ramp_s: f64,
}

impl Spoof {
    /// The offset at `elapsed_s` [m].
    pub fn offset_at(&self, elapsed_s: f64) -> Vector2<f64> {
        let since = elapsed_s - self.from_s;
        if since < 0.0 {
            return Vector2::zeros();
        }
        let share = if self.ramp_s > 0.0 { (since / self.ramp_s).min(1.0) } else { 1.0 };
        Vector2::new(self.offset_m[0], self.offset_m[1]) * share
    }
}

/// Produces one connected vehicle's self-reports.
#[derive(Clone, Debug)]
pub struct SelfReporter {
    /// The vehicle's V2X id.
    pub vehicle_id: String,
    /// Noise parameters.
    pub params: GnssParams,
    /// The lie it tells, if it spoofs.
    pub spoof: Option<Spoof>,
    rng: ChaCha8Rng,
    message_count: u32,
    error_m: Vector2<f64>,
    in_tunnel: bool,
    /// When the vehicle last left a tunnel [s after start].
    left_tunnel_s: Option<f64>,
    drift_angle_rad: f64,
    last: Option<(f64, Point2<f64>)>,
    last_status: GnssStatus,
}

impl SelfReporter {
    /// A reporter for `vehicle_id` on random stream `stream` of `seed`.
    pub fn new(vehicle_id: impl Into<String>, seed: u64, stream: u64) -> Self {
        SelfReporter {
            vehicle_id: vehicle_id.into(),
            params: GnssParams::default(),
            spoof: None,
            rng: rng_stream(seed, stream),
            message_count: 0,
            error_m: Vector2::zeros(),
            in_tunnel: false,
            left_tunnel_s: None,
            drift_angle_rad: 0.0,
            last: None,
            last_status: GnssStatus::Unknown,
        }
    }

    /// Fix quality and its error size [m] at `elapsed_s`.
    fn mode(&self, elapsed_s: f64) -> (GnssStatus, f64) {
        let p = &self.params;
        if self.in_tunnel {
            return (GnssStatus::DeadReckoning, f64::NAN);
        }
        match self.left_tunnel_s.map(|t| elapsed_s - t) {
            Some(dt) if dt < p.reacquire_s => (GnssStatus::DeadReckoning, f64::NAN),
            Some(dt) if dt < p.reacquire_s + p.standalone_s => (GnssStatus::Standalone, p.standalone_sigma_m),
            Some(dt) if dt < p.reacquire_s + p.standalone_s + p.differential_s => {
                (GnssStatus::Differential, p.differential_sigma_m)
            }
            _ => (GnssStatus::RtkFixed, p.rtk_sigma_m),
        }
    }

    /// The self-report for `truth` at `time` (`elapsed_s` after the start).
    pub fn report(&mut self, site: &SiteModel, truth: &ActorTruth, time: Timestamp, elapsed_s: f64) -> VehicleState {
        let here = Point2::new(truth.center.x, truth.center.y);
        let tunnel_now = site.in_tunnel(&here);
        if tunnel_now && !self.in_tunnel {
            // Entering: the inertial drift takes a direction of its own this time.
            self.drift_angle_rad = self.rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
        }
        if !tunnel_now && self.in_tunnel {
            self.left_tunnel_s = Some(elapsed_s);
        }
        self.in_tunnel = tunnel_now;
        let dt = self.last.map_or(0.1, |(t, _)| (elapsed_s - t).max(1e-3));
        let travelled = self.last.map_or(0.0, |(_, p)| (here - p).norm());
        self.last = Some((elapsed_s, here));
        let (gnss, sigma) = self.mode(elapsed_s);
        let accuracy_m = if sigma.is_nan() {
            // Dead reckoning: drift grows with distance along a slowly wandering direction.
            self.drift_angle_rad += gauss(&mut self.rng, 0.02);
            let dir = Vector2::new(
                (truth.yaw_rad + self.drift_angle_rad).cos(),
                (truth.yaw_rad + self.drift_angle_rad).sin(),
            );
            self.error_m += dir * (travelled * self.params.dead_reckoning_drift_per_m);
            0.3 + 1.5 * self.error_m.norm()
        } else if gnss != self.last_status {
            // A new kind of fix: a fresh solution with its own error.
            self.error_m = Vector2::new(gauss(&mut self.rng, sigma), gauss(&mut self.rng, sigma));
            sigma
        } else {
            let a = (-dt / self.params.correlation_s).exp();
            let k = sigma * (1.0 - a * a).sqrt();
            self.error_m = self.error_m * a + Vector2::new(gauss(&mut self.rng, k), gauss(&mut self.rng, k));
            sigma.max(self.error_m.norm() * 0.5)
        };
        self.last_status = gnss;
        let ground = truth.center.z - 0.5 * truth.size.height_m;
        let lie = self.spoof.as_ref().map_or_else(Vector2::zeros, |s| s.offset_at(elapsed_s));
        let reported = Point3::new(here.x + self.error_m.x + lie.x, here.y + self.error_m.y + lie.y, ground);
        let accel = truth.accel_mps2;
        let message_count = self.message_count;
        self.message_count = (self.message_count + 1) % 128;
        VehicleState {
            vehicle_id: self.vehicle_id.clone(),
            message_count,
            time,
            position: site.frame.wgs84_from_enu(&reported),
            accuracy: PositionAccuracy { semi_major_m: accuracy_m, semi_minor_m: accuracy_m, orientation_rad: 0.0 },
            speed_mps: (truth.speed_mps + gauss(&mut self.rng, self.params.speed_sigma_mps)).max(0.0),
            yaw_rad: wrap_angle(truth.yaw_rad + gauss(&mut self.rng, self.params.yaw_sigma_rad)),
            steering_rad: (truth.steer_rad * self.params.steering_ratio).clamp(-21.0, 21.0),
            yaw_rate_rps: truth.yaw_rate_rps,
            accel_long_mps2: accel,
            accel_lat_mps2: truth.speed_mps * truth.yaw_rate_rps,
            brakes: BrakeStatus {
                pedal_pressed: accel < -0.3,
                abs_active: accel < -7.0,
                aeb_active: false,
                demand: (-accel / 8.0).clamp(0.0, 1.0),
            },
            size: truth.size,
            class: truth.class,
            adas: AdasStatus {
                acc_active: false,
                fcw_enabled: true,
                aeb_enabled: true,
                vru_warning_enabled: true,
                icw_enabled: true,
                v2x_active: true,
            },
            warnings: Vec::new(),
            gnss,
        }
    }
}
