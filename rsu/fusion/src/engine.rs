//! The fusion engine: a sans-IO state machine fed with sensor frames and V2X self-reports (each
//! with the caller's `now`), fusing them in capture-time order through a reorder buffer, and
//! polled for objects predicted to a requested time. Pipeline per measurement frame: predict the
//! tracks within the frame's reach (the others keep their own time) → gate (chi-square on
//! Mahalanobis distance) → associate (grid pre-filter, components, optimal assignment) → update
//! (confirming tracks as their hits are recorded) → spawn; after every batch of inputs released
//! together, apply the covariance guard the batch's predictions and updates deferred, then merge
//! duplicate tracks; once per management interval of capture time and before every poll, delete
//! stale tracks.

use std::collections::BTreeMap;
use std::sync::Arc;

use nalgebra::{Matrix2, Point2, Point3, Vector2, Vector3};
use serde::{Deserialize, Serialize};

use crate::assignment::{AssignScratch, Candidate, SpatialGrid, assign_into, close_pairs};
use crate::broadcast::{Participant, PathPoint, RoadsideFrame, SensorHealth, SensorStatus};
use crate::calibration::{ConfigError, LidarNoise, SensorCalibration, SensorMask, SensorModel, SiteConfig};
use crate::camera::{CameraGeometry, ProjectedBox};
use crate::class::{BoxSize, MotionFamily, ObjectClass, SourceSet};
use crate::config::{FusionConfig, FusionConfigError};
use crate::geo::EnuFrame;
use crate::measurement::{CameraDetections, Detections, LidarDetection, SensorFrame, VehicleState};
use crate::motion::{
    Guard, Matrix5, MotionState, ProcessNoise, Vector5, innovation_distance, nearest_branch, wrap_angle,
};
use crate::time::Timestamp;
use crate::track::{ClassEvidence, PathHistory, Track, TrackStatus, V2xLink};

/// Chi-square quantile for 2 dof at 95% (for the confidence ellipse).
const CHI2_2DOF_95: f64 = 5.991;

/// Why the engine cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FusionError {
    /// The site or calibration is invalid.
    #[error(transparent)]
    Site(#[from] ConfigError),
    /// The tuning is invalid.
    #[error(transparent)]
    Config(#[from] FusionConfigError),
}

/// What happened to an input handed to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ingest {
    /// Buffered; it is fused in capture-time order.
    Accepted,
    /// Older than the lag (or than measurements already fused): dropped and counted.
    Late,
    /// Captured implausibly far in the future: dropped and counted.
    FromFuture,
    /// The sensor id is not in the site configuration.
    UnknownSensor,
    /// Lidar detections from a camera or the other way round.
    WrongKind,
    /// A V2X report with non-finite or out-of-range values.
    Invalid,
}

/// Counters of everything the engine did or refused, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FusionStats {
    /// Sensor frames handed in.
    pub frames_received: u64,
    /// Sensor frames fused.
    pub frames_fused: u64,
    /// Frames from sensors not in the site configuration.
    pub unknown_sensor: u64,
    /// Frames whose detection kind does not match the sensor.
    pub wrong_kind: u64,
    /// Frames and V2X reports dropped for arriving later than the lag allows.
    pub late_dropped: u64,
    /// Frames and V2X reports dropped for a capture time too far in the future.
    pub future_rejected: u64,
    /// Buffered inputs fused early because the reorder buffer was full.
    pub buffer_forced: u64,
    /// Sequence gaps seen (frames lost between sensor and core).
    pub sequence_gaps: u64,
    /// Detections assigned to a track.
    pub detections_associated: u64,
    /// Detections with non-finite or out-of-range values, ignored.
    pub detections_rejected: u64,
    /// Detections below the score threshold, ignored.
    pub detections_low_score: u64,
    /// V2X reports handed in.
    pub vehicle_states_received: u64,
    /// V2X reports with invalid values, ignored.
    pub vehicle_states_rejected: u64,
    /// Tracks spawned.
    pub tracks_created: u64,
    /// Tracks confirmed.
    pub tracks_confirmed: u64,
    /// Tracks deleted (timeout, uncertainty, numeric failure).
    pub tracks_deleted: u64,
    /// Duplicate tracks merged into an older one.
    pub tracks_merged: u64,
    /// Spawns refused because `max_tracks` was reached.
    pub spawn_refused: u64,
    /// Filter updates skipped because of a singular or non-finite innovation.
    pub numeric_failures: u64,
}

/// 95% horizontal position confidence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceEllipse {
    /// Semi-major axis [m].
    pub semi_major_m: f64,
    /// Semi-minor axis [m].
    pub semi_minor_m: f64,
    /// Orientation of the semi-major axis, counter-clockwise from east [rad].
    pub orientation_rad: f64,
}

impl ConfidenceEllipse {
    /// The 95% ellipse of a 2×2 position covariance [m²], in closed form: the eigen decomposition
    /// of nalgebra's `symmetric_eigen` for 2×2 matrices (scaling by the largest entry, the
    /// eigenvalues `(a + c)/2 ± √(((a - c)/2)² + b²)` and its Givens rotation, so the major axis
    /// points the same way), without its generic tridiagonalisation.
    fn of_position_cov(cov: &Matrix2<f64>) -> Self {
        let (a, b, c) = (cov[(0, 0)], cov[(1, 0)], cov[(1, 1)]);
        let scale = a.abs().max(b.abs()).max(c.abs()).max(cov[(0, 1)].abs());
        let unscale = |v: f64| if scale == 0.0 { v } else { v / scale };
        let (a, b, c) = (unscale(a), unscale(b), unscale(c));
        // The tridiagonal form has the off-diagonal |b|, and its basis flips the second axis by
        // the sign of b.
        let (off, flip) = (b.abs(), if b < 0.0 { -1.0 } else { 1.0 });
        let (eig, axis) = if off <= f64::EPSILON * (c.abs() + a.abs()) {
            // Already diagonal: the axes are the site axes.
            let axis = if a >= c { (1.0, 0.0) } else { (0.0, flip) };
            ((a.max(c), a.min(c)), axis)
        } else {
            let half_diff = (a - c) * 0.5;
            let root = (off * off + half_diff * half_diff).sqrt();
            let half_trace = (a + c) * 0.5;
            let (major, minor) = (half_trace + root, half_trace - root);
            // The basis least likely to cancel, as a Givens rotation (cos ≥ 0).
            let (bx, by) = if (major - c).abs() > (major - a).abs() { (major - c, off) } else { (off, major - a) };
            // The orientation needs the axis's direction only, not its unit length (atan2 is
            // scale-free); (bx, by) is scaled to at most about 2, so the squares are safe.
            let axis = if bx * bx + by * by > f64::EPSILON * f64::EPSILON {
                (bx.abs(), flip * by * bx.signum())
            } else {
                (1.0, 0.0)
            };
            ((major, minor), axis)
        };
        let axis_m = |lambda: f64| (CHI2_2DOF_95 * (lambda * if scale == 0.0 { 1.0 } else { scale }).max(0.0)).sqrt();
        ConfidenceEllipse {
            semi_major_m: axis_m(eig.0),
            semi_minor_m: axis_m(eig.1),
            orientation_rad: wrap_angle(axis.1.atan2(axis.0)),
        }
    }
}

/// A fused object, predicted to the poll time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusedObject {
    /// Stable unique track id.
    pub id: u32,
    /// Lifecycle status (only confirmed and coasting objects are reported).
    pub status: TrackStatus,
    /// Fused class.
    pub class: ObjectClass,
    /// Posterior probability of `class`, 0..1.
    pub class_confidence: f64,
    /// Confidence that the object exists, 0..1: lower for camera-only objects, decaying while
    /// coasting.
    pub existence_confidence: f64,
    /// Time the state is predicted to.
    pub time: Timestamp,
    /// Ground-contact centre in the site frame [m].
    pub position_m: Point3<f64>,
    /// Velocity over ground (east, north) [m/s].
    pub velocity_mps: Vector2<f64>,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Yaw rate [rad/s].
    pub yaw_rate_rps: f64,
    /// Smoothed longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// State `[x m, y m, yaw rad, speed m/s, yaw_rate rad/s]` (whatever the motion model).
    pub state: Vector5,
    /// Covariance of `state` (units squared of the entries).
    pub covariance: Matrix5,
    /// 95% horizontal position confidence ellipse.
    pub confidence_95: ConfidenceEllipse,
    /// Radius of the 95% horizontal confidence circle (the ellipse's semi-major axis) [m].
    pub pos_confidence_95_m: f64,
    /// Smoothed box size [m].
    pub size: BoxSize,
    /// Source kinds that updated the object within `sources_window_s`.
    pub sources: SourceSet,
    /// Time since the track was spawned [s].
    pub age_s: f64,
    /// V2X id when the object is a connected vehicle reporting itself.
    pub v2x_id: Option<String>,
    /// The sensors that updated the object within `seen_window_s`, as indices into the site's
    /// sensors ([`SiteConfig::sensor_ids`] gives their ids).
    pub seen_by: SensorMask,
    /// Capture time of the newest measurement fused into the object.
    pub last_update: Timestamp,
    /// Past positions (capture time, site-frame position), oldest first; shared with the track.
    /// [`FusedObject::path_history`] gives them relative to this object.
    pub path: PathHistory,
}

/// The kinematic part of a [`FusedObject`]: what scoring a track against ground truth needs.
/// [`Fusion::poll_kinematics`] computes it with the same arithmetic as [`Fusion::poll_objects`]
/// (so its fields equal those of the full objects polled at the same time, bit for bit) without
/// predicting covariances or building the rest of the object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectKinematics {
    /// Track id.
    pub id: u32,
    /// Most likely class.
    pub class: ObjectClass,
    /// Poll time.
    pub time: Timestamp,
    /// Centre of the box's ground footprint (z = ground height), site frame [m].
    pub position_m: Point3<f64>,
    /// Ground velocity, site frame [m/s].
    pub velocity_mps: Vector2<f64>,
    /// Speed over ground [m/s].
    pub speed_mps: f64,
    /// Heading [rad].
    pub yaw_rad: f64,
    /// Capture time of the newest measurement fused into the object.
    pub last_update: Timestamp,
    /// The V2X id of a connected vehicle, while its reports are fresh.
    pub v2x_id: Option<String>,
}

impl From<&FusedObject> for ObjectKinematics {
    fn from(o: &FusedObject) -> Self {
        ObjectKinematics {
            id: o.id,
            class: o.class,
            time: o.time,
            position_m: o.position_m,
            velocity_mps: o.velocity_mps,
            speed_mps: o.speed_mps,
            yaw_rad: o.yaw_rad,
            last_update: o.last_update,
            v2x_id: o.v2x_id.clone(),
        }
    }
}

impl FusedObject {
    /// Past positions, newest first, relative to `position_m` and `time`.
    pub fn path_history(&self) -> impl Iterator<Item = PathPoint> + '_ {
        self.path.relative_to(self.time, [self.position_m.x, self.position_m.y])
    }

    /// The broadcast form of this object.
    pub fn to_participant(&self) -> Participant {
        Participant {
            id: self.id,
            class: self.class,
            class_confidence: self.class_confidence,
            sources: self.sources,
            position_m: self.position_m,
            pos_confidence_95_m: self.pos_confidence_95_m,
            speed_mps: self.speed_mps,
            yaw_rad: self.yaw_rad,
            yaw_rate_rps: self.yaw_rate_rps,
            accel_mps2: self.accel_mps2,
            size: self.size,
            age_s: self.age_s,
            v2x_id: self.v2x_id.clone(),
            path_history: self.path_history().collect(),
        }
    }
}

#[derive(Clone, Debug)]
enum SensorKind {
    Lidar(LidarNoise),
    Camera { geometry: Box<CameraGeometry>, pixel_sigma_px: f64 },
}

#[derive(Clone, Debug)]
struct SensorState {
    calib: SensorCalibration,
    kind: SensorKind,
    last_capture: Option<Timestamp>,
    last_sequence: Option<u64>,
    last_gap: Option<Timestamp>,
    region: Vec<[f64; 2]>,
}

#[derive(Clone, Debug)]
enum Pending {
    /// A sensor frame, shared with the caller (buffering it copies nothing).
    Frame {
        sensor: usize,
        frame: Arc<SensorFrame>,
    },
    Vehicle(Box<VehicleState>),
}

/// Slack added to the reach of an input when choosing the tracks to predict for it [m]: far
/// above the rounding of a track's travel bound.
const REACH_MARGIN_M: f64 = 1.0;

/// Slack added to a track's travel bound in the duplicate search [m]: far above the rounding of
/// the bound.
const TRAVEL_ROUNDING_M: f64 = 1e-3;

/// Cell size of the grid of lidar measurements [m]: a little above the gate radius of a settled
/// track (a search touches one to four cells), coarse enough for the grid's dense layout over a
/// site. Measured with 3, 4 and 5 m: 6.51, 6.49 and 6.48 M instructions per bench cycle, 302.8,
/// 300.1 and 298.7 M per dense-200 validation. (No result depends on it: pairs are found in any
/// order and assigned by their indices.)
const MEAS_GRID_CELL_M: f64 = 5.0;

/// A lidar detection in the site frame.
#[derive(Clone, Debug)]
struct LidarMeas {
    pos: Vector2<f64>,
    r: Matrix2<f64>,
    z_ground_m: f64,
    yaw_rad: f64,
    size: BoxSize,
    class: ObjectClass,
    score: f64,
}

/// A valid camera box.
struct CameraMeas<'a> {
    bottom_px: Point2<f64>,
    r: Matrix2<f64>,
    scores: &'a [(ObjectClass, f64)],
    truncated: bool,
}

/// Working space of the frame updates, kept between frames so that fusing a frame allocates and
/// clears nothing per track. Nothing in it outlives one update.
#[derive(Clone, Debug)]
struct Scratch {
    /// The tracks the input can reach, ascending.
    relevant: Vec<usize>,
    /// Gated (track, measurement) pairs.
    candidates: Vec<Candidate>,
    /// Per measurement: whether some track gated it.
    gated: Vec<bool>,
    /// Per track index: whether a measurement was assigned to it. Only the entries of the
    /// `relevant` tracks are written and read.
    matched: Vec<bool>,
    /// Per track index: its box in the camera's image. Only the entries of the `relevant` tracks
    /// are written and read.
    projections: Vec<Option<ProjectedBox>>,
    /// The lidar frame's detections in the site frame.
    lidar_meas: Vec<LidarMeas>,
    /// The camera frame's boxes by bottom-centre pixel.
    pixel_grid: SpatialGrid,
    /// The assignment's working space.
    assign: AssignScratch,
    /// Assigned (track, measurement) pairs.
    pairs: Vec<(usize, usize)>,
}

/// Working space of the duplicate search.
#[derive(Clone, Debug, Default)]
struct MergeScratch {
    /// Position of each track (NaN for tentative ones, which the search leaves out) [m].
    points: Vec<(f64, f64)>,
    /// How far each track can have moved since its own time [m].
    travels_m: Vec<f64>,
    /// Sort keys of [`close_pairs`].
    keys: Vec<u64>,
    /// The candidate pairs found.
    pairs: Vec<(usize, usize)>,
}

/// The farthest a camera box can lie from a track's projected bottom centre and still be
/// associated with it [px].
const MAX_CAMERA_GATE_PX: f64 = 400.0;

/// Cell size of the grid of camera boxes [px]: 6.44 M instructions per bench cycle against 6.49 M
/// with 64 px cells. (No result depends on it, as for [`MEAS_GRID_CELL_M`].)
const PIXEL_GRID_CELL_PX: f64 = 32.0;

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    fn new() -> Self {
        Self {
            relevant: Vec::new(),
            candidates: Vec::new(),
            gated: Vec::new(),
            matched: Vec::new(),
            projections: Vec::new(),
            lidar_meas: Vec::new(),
            pixel_grid: SpatialGrid::new(PIXEL_GRID_CELL_PX),
            assign: AssignScratch::default(),
            pairs: Vec::new(),
        }
    }
}

/// The fusion engine. Build it with [`Fusion::new`], feed it with [`Fusion::handle_sensor_frame`]
/// and [`Fusion::handle_vehicle_state`], read it with [`Fusion::poll_objects`] or
/// [`Fusion::roadside_frame`]. It never reads a clock and iterates only in sorted orders, so the
/// same calls give the same results bit for bit.
#[derive(Clone, Debug)]
pub struct Fusion {
    config: FusionConfig,
    site: SiteConfig,
    enu: EnuFrame,
    noise: ProcessNoise,
    sensors: Vec<SensorState>,
    tracks: Vec<Track>,
    next_id: u32,
    buffer: BTreeMap<(Timestamp, u64), Pending>,
    arrivals: u64,
    fused_until: Option<Timestamp>,
    first_now: Option<Timestamp>,
    latest_now: Option<Timestamp>,
    v2x_links: BTreeMap<String, u32>,
    stats: FusionStats,
    message_count: u32,
    grid: SpatialGrid,
    /// Lidar measurements of the frame being fused, for the tracks' gate searches.
    meas_grid: SpatialGrid,
    /// Time of the last pruning pass: another pass at the same time would change nothing (merges
    /// since cannot make a track due for deletion), so it is skipped.
    pruned_at: Option<Timestamp>,
    /// Time of the last full management pass (with merging).
    managed_at: Option<Timestamp>,
    /// Working space of the duplicate search, kept between passes.
    merge_scratch: MergeScratch,
    /// Working space of the frame updates.
    scratch: Scratch,
}

impl Fusion {
    /// An engine for `site` tuned by `config`; both are validated.
    pub fn new(site: SiteConfig, config: FusionConfig) -> Result<Self, FusionError> {
        site.validate()?;
        config.validate()?;
        let mut sensors: Vec<SensorState> = site
            .sensors
            .iter()
            .map(|calib| {
                let kind = match &calib.model {
                    SensorModel::Lidar(n) => SensorKind::Lidar(*n),
                    SensorModel::Camera(cam) => SensorKind::Camera {
                        geometry: Box::new(CameraGeometry::new(
                            cam.intrinsics.clone(),
                            calib.world_from_sensor,
                            calib.max_range_m,
                        )),
                        pixel_sigma_px: cam.pixel_sigma_px,
                    },
                };
                SensorState {
                    region: coverage_polygon(calib),
                    calib: calib.clone(),
                    kind,
                    last_capture: None,
                    last_sequence: None,
                    last_gap: None,
                }
            })
            .collect();
        sensors.sort_by(|a, b| a.calib.id.cmp(&b.calib.id));
        let noise = ProcessNoise {
            vehicle_accel_sigma_mps2: config.vehicle_accel_sigma_mps2,
            vehicle_yaw_accel_sigma_rps2: config.vehicle_yaw_accel_sigma_rps2,
            pedestrian_accel_sigma_mps2: config.pedestrian_accel_sigma_mps2,
            static_position_walk_mps: config.static_position_walk_mps,
        };
        Ok(Fusion {
            grid: SpatialGrid::new(config.max_gate_radius_m),
            meas_grid: SpatialGrid::new(MEAS_GRID_CELL_M),
            enu: site.frame(),
            site,
            config,
            noise,
            sensors,
            tracks: Vec::new(),
            next_id: 1,
            buffer: BTreeMap::new(),
            arrivals: 0,
            fused_until: None,
            first_now: None,
            latest_now: None,
            v2x_links: BTreeMap::new(),
            stats: FusionStats::default(),
            message_count: 0,
            pruned_at: None,
            managed_at: None,
            merge_scratch: MergeScratch::default(),
            scratch: Scratch::new(),
        })
    }

    /// The tuning in use.
    pub fn config(&self) -> &FusionConfig {
        &self.config
    }

    /// The site in use.
    pub fn site(&self) -> &SiteConfig {
        &self.site
    }

    /// Counters so far.
    pub fn stats(&self) -> &FusionStats {
        &self.stats
    }

    /// Number of tracks held (tentative ones included).
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// Inputs waiting in the reorder buffer.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Takes in one sensor frame at time `now`. It is buffered and fused in capture-time order
    /// once no older input can still arrive (see [`FusionConfig::max_lag_s`] and
    /// [`FusionConfig::early_release`]).
    ///
    /// The engine keeps the frame while it waits in the buffer: pass an `Arc` to share it with
    /// the caller (nothing is copied), or the frame itself to hand it over.
    pub fn handle_sensor_frame(&mut self, now: Timestamp, frame: impl Into<Arc<SensorFrame>>) -> Ingest {
        let frame = frame.into();
        self.stats.frames_received += 1;
        self.note_now(now);
        let Some(si) = self.sensor_index(&frame.sensor_id) else {
            self.stats.unknown_sensor += 1;
            return Ingest::UnknownSensor;
        };
        let kind_ok = matches!(
            (&self.sensors[si].kind, &frame.detections),
            (SensorKind::Lidar(_), Detections::Lidar(_)) | (SensorKind::Camera { .. }, Detections::Camera(_))
        );
        if !kind_ok {
            self.stats.wrong_kind += 1;
            return Ingest::WrongKind;
        }
        let t = frame.capture_time;
        if let Some(verdict) = self.check_time(now, t) {
            return verdict;
        }
        let sensor = &mut self.sensors[si];
        if let Some(last) = sensor.last_sequence
            && frame.sequence > last.saturating_add(1)
        {
            sensor.last_gap = Some(t);
            self.stats.sequence_gaps += 1;
        }
        sensor.last_sequence = Some(sensor.last_sequence.map_or(frame.sequence, |s| s.max(frame.sequence)));
        sensor.last_capture = Some(sensor.last_capture.map_or(t, |c| c.max(t)));
        self.arrivals += 1;
        self.buffer.insert((t, self.arrivals), Pending::Frame { sensor: si, frame });
        self.advance(now);
        Ingest::Accepted
    }

    /// Takes in a lidar frame (same as [`Fusion::handle_sensor_frame`]).
    pub fn handle_lidar(&mut self, now: Timestamp, frame: impl Into<Arc<SensorFrame>>) -> Ingest {
        self.handle_sensor_frame(now, frame)
    }

    /// Takes in a camera frame (same as [`Fusion::handle_sensor_frame`]).
    pub fn handle_camera(&mut self, now: Timestamp, frame: impl Into<Arc<SensorFrame>>) -> Ingest {
        self.handle_sensor_frame(now, frame)
    }

    /// Takes in a connected vehicle's self-report at time `now`: a measurement of the track of
    /// that vehicle (or a new track when no sensor sees it).
    pub fn handle_vehicle_state(&mut self, now: Timestamp, state: &VehicleState) -> Ingest {
        self.stats.vehicle_states_received += 1;
        self.note_now(now);
        let finite = [
            state.speed_mps,
            state.yaw_rad,
            state.yaw_rate_rps,
            state.accuracy.semi_major_m,
            state.accuracy.semi_minor_m,
            state.accuracy.orientation_rad,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite || state.position.validate().is_err() || state.vehicle_id.is_empty() || state.speed_mps.abs() > 100.0
        {
            self.stats.vehicle_states_rejected += 1;
            return Ingest::Invalid;
        }
        if let Some(verdict) = self.check_time(now, state.time) {
            return verdict;
        }
        self.arrivals += 1;
        self.buffer.insert((state.time, self.arrivals), Pending::Vehicle(Box::new(state.clone())));
        self.advance(now);
        Ingest::Accepted
    }

    /// Confirmed objects predicted to `at` (fusing first whatever is due by `at`), sorted by id.
    pub fn poll_objects(&mut self, at: Timestamp) -> Vec<FusedObject> {
        self.note_now(at);
        self.advance_with(at, true);
        // Sized up front: a `filter` gives no length hint, and growing a vector of objects this
        // large copies them over and over.
        let mut objects = Vec::with_capacity(self.tracks.iter().filter(|t| t.confirmed).count());
        objects.extend(self.tracks.iter().filter(|t| t.confirmed).map(|t| self.fused_object(t, at)));
        objects
    }

    /// The kinematics of the objects [`Fusion::poll_objects`] would return at `at` (fusing first
    /// whatever is due by `at`), sorted by id: the same values, for a fraction of the work.
    pub fn poll_kinematics(&mut self, at: Timestamp) -> Vec<ObjectKinematics> {
        self.note_now(at);
        self.advance_with(at, true);
        let v2x_timeout_s = self.config.v2x_timeout_s;
        let mut objects = Vec::with_capacity(self.tracks.iter().filter(|t| t.confirmed).count());
        objects.extend(self.tracks.iter().filter(|t| t.confirmed).map(|track| {
            let k = track.motion.kinematics_after(at.secs_since(track.time), track.yaw_hint_rad);
            ObjectKinematics {
                id: track.id,
                class: track.class_evidence.best().0,
                time: at,
                position_m: Point3::new(k.position_m.x, k.position_m.y, track.z_ground_m),
                velocity_mps: k.velocity_mps,
                speed_mps: k.velocity_mps.norm(),
                yaw_rad: k.yaw_rad,
                last_update: track.last_update,
                v2x_id: track
                    .v2x
                    .as_ref()
                    .filter(|l| at.secs_since(l.last_report) <= v2x_timeout_s)
                    .map(|l| l.vehicle_id.clone()),
            }
        }));
        objects
    }

    /// Health of every configured sensor at `now`, sorted by sensor id.
    pub fn sensor_health(&self, now: Timestamp) -> Vec<SensorHealth> {
        (0..self.sensors.len())
            .map(|i| SensorHealth {
                sensor_id: self.sensors[i].calib.id.clone(),
                status: self.sensor_status(i, now),
                last_capture: self.sensors[i].last_capture,
            })
            .collect()
    }

    /// The broadcast frame at `at`: objects predicted to `at`, sensor health and the ground
    /// regions covered by sensors that are not silent. Counts `message_count` up.
    pub fn roadside_frame(&mut self, at: Timestamp) -> RoadsideFrame {
        let objects = self.poll_objects(at);
        self.roadside_frame_from(at, &objects)
    }

    /// The broadcast frame at `at` for objects already polled at `at`.
    pub fn roadside_frame_from(&mut self, at: Timestamp, objects: &[FusedObject]) -> RoadsideFrame {
        let message_count = self.message_count;
        self.message_count = self.message_count.wrapping_add(1);
        let sensors = self.sensor_health(at);
        let perception_regions = sensors
            .iter()
            .zip(&self.sensors)
            .filter(|(h, _)| matches!(h.status, SensorStatus::Ok | SensorStatus::Degraded))
            .map(|(_, s)| s.region.clone())
            .collect();
        RoadsideFrame {
            rsu_id: if self.config.rsu_id.is_empty() { self.site.site_id.clone() } else { self.config.rsu_id.clone() },
            message_count,
            time: at,
            reference: self.site.origin,
            participants: objects.iter().map(FusedObject::to_participant).collect(),
            sensors,
            perception_regions,
        }
    }

    // ----- time and buffering -----

    fn note_now(&mut self, now: Timestamp) {
        self.first_now = Some(self.first_now.map_or(now, |n| n.min(now)));
        self.latest_now = Some(self.latest_now.map_or(now, |n| n.max(now)));
    }

    fn sensor_index(&self, id: &str) -> Option<usize> {
        self.sensors.binary_search_by(|s| s.calib.id.as_str().cmp(id)).ok()
    }

    /// `Some(verdict)` when an input captured at `t` must be dropped.
    fn check_time(&mut self, now: Timestamp, t: Timestamp) -> Option<Ingest> {
        if t.secs_since(now) > self.config.max_future_s {
            self.stats.future_rejected += 1;
            return Some(Ingest::FromFuture);
        }
        let too_old = now.secs_since(t) > self.config.max_lag_s;
        if too_old || self.fused_until.is_some_and(|f| t < f) {
            self.stats.late_dropped += 1;
            return Some(Ingest::Late);
        }
        None
    }

    fn sensor_status(&self, i: usize, now: Timestamp) -> SensorStatus {
        let s = &self.sensors[i];
        let Some(last) = s.last_capture else { return SensorStatus::Unknown };
        let age_s = now.secs_since(last);
        let period = s.calib.frame_period_s;
        if age_s > self.config.sensor_silent_after_periods * period {
            SensorStatus::Silent
        } else if age_s > self.config.sensor_degraded_after_periods * period
            || s.last_gap.is_some_and(|g| now.secs_since(g) < 1.0)
        {
            SensorStatus::Degraded
        } else {
            SensorStatus::Ok
        }
    }

    /// Fuses every buffered input that is due at `now`, then manages tracks when due and prunes
    /// them.
    fn advance(&mut self, now: Timestamp) {
        self.advance_with(now, false);
    }

    /// [`Fusion::advance`]; with `settle` (before objects are read) tracks are pruned whenever the
    /// pruning time moved.
    fn advance_with(&mut self, now: Timestamp, settle: bool) {
        let horizon = now.add_secs(-self.config.max_lag_s);
        let mut release = horizon;
        if self.config.early_release {
            // Sensors not heard from yet hold the watermark back during a start-up grace period
            // (their first frames may still be on the way); after it they are ignored.
            let mut watermark: Option<Timestamp> = None;
            let up_s = self.first_now.map_or(0.0, |f| now.secs_since(f));
            for i in 0..self.sensors.len() {
                let Some(last) = self.sensors[i].last_capture else {
                    let grace_s = self.config.sensor_silent_after_periods * self.sensors[i].calib.frame_period_s;
                    if up_s <= grace_s {
                        watermark = Some(Timestamp::from_nanos(i64::MIN));
                    }
                    continue;
                };
                if self.sensor_status(i, now) == SensorStatus::Silent {
                    continue;
                }
                watermark = Some(watermark.map_or(last, |w| w.min(last)));
            }
            if let Some(w) = watermark {
                release = release.max(w);
            }
        }
        let mut last_fused = None;
        while let Some((&(t, _), _)) = self.buffer.first_key_value() {
            let forced = self.buffer.len() > self.config.max_buffered_frames;
            if t > release && !forced {
                break;
            }
            if forced {
                self.stats.buffer_forced += 1;
            }
            let Some((_, pending)) = self.buffer.pop_first() else { break };
            self.fused_until = Some(self.fused_until.map_or(t, |f| f.max(t)));
            self.process(t, pending);
            last_fused = Some(t);
        }
        // The batch's predictions and frame updates deferred their covariance guard: one guard
        // per track instead of one per operation, before anything else reads the tracks.
        for track in self.tracks.iter_mut().filter(|t| t.guard_due) {
            track.motion.guard();
            track.guard_due = false;
        }
        // Track management: duplicates merge after every batch of released inputs (the search
        // predicts only the tracks of close pairs); tracks are deleted once per management
        // interval of capture time rather than after every batch (sensors capturing at different
        // phases each release their own batch), and before objects are read.
        if let Some(t) = last_fused {
            if self.managed_at.is_none_or(|m| t.secs_since(m) >= self.config.management_interval_s) {
                self.maintain(t, true);
                self.managed_at = Some(t);
                // That pass pruned at `t`. Merging after it cannot make a track due for deletion
                // (the kept track's newest update and covariance can only improve), so neither
                // does a merge below call for an extra pruning pass.
                self.pruned_at = Some(t);
            } else {
                self.merge_duplicates(t);
            }
        }
        let prune_at = self.fused_until.map_or(horizon, |f| f.max(horizon));
        // Pruning is idempotent: repeated at the same time (as when several frames of one capture
        // time are buffered one by one, or right after the pass above) it changes nothing.
        // Between polls it runs at most once per management interval.
        let prune_due =
            |p: Timestamp| p != prune_at && (settle || prune_at.secs_since(p) >= self.config.management_interval_s);
        if self.pruned_at.is_none_or(prune_due) {
            self.maintain(prune_at, false);
            self.pruned_at = Some(prune_at);
        }
    }

    fn process(&mut self, t: Timestamp, pending: Pending) {
        match pending {
            Pending::Frame { sensor, frame } => self.fuse_frame(sensor, t, &frame),
            Pending::Vehicle(state) => self.update_v2x(t, &state),
        }
    }

    fn fuse_frame(&mut self, sensor: usize, t: Timestamp, frame: &SensorFrame) {
        self.stats.frames_fused += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        match &frame.detections {
            Detections::Lidar(dets) => self.update_lidar(sensor, t, dets, &mut scratch),
            Detections::Camera(dets) => self.update_camera(sensor, t, dets, &mut scratch),
        }
        self.scratch = scratch;
    }

    /// Predicts to `t` every track that may lie within `reach_m` of `centre` there, and returns
    /// their indices, ascending: all the tracks an input at `t` whose effects stay within that
    /// disc can touch. The others keep their older state until an input reaches them (one
    /// longer prediction later instead of one per input now). A track can move at most its
    /// speed times the time step (the arc of a turn is longer than its chord), so the test needs
    /// no prediction; [`REACH_MARGIN_M`] covers rounding.
    fn predict_near(&mut self, t: Timestamp, centre: Vector2<f64>, reach_m: f64, near: &mut Vec<usize>) {
        near.clear();
        for (ti, track) in self.tracks.iter_mut().enumerate() {
            let travel_m = track.motion.speed() * t.secs_since(track.time).max(0.0);
            let bound_m = reach_m + travel_m + REACH_MARGIN_M;
            if (track.motion.position() - centre).norm_squared() <= bound_m * bound_m {
                predict_track_with(track, t, &self.noise, Guard::Deferred);
                near.push(ti);
            }
        }
    }

    // ----- lidar -----

    fn update_lidar(&mut self, si: usize, t: Timestamp, dets: &[LidarDetection], sc: &mut Scratch) {
        let SensorKind::Lidar(noise) = self.sensors[si].kind else { return };
        let world_from_sensor = self.sensors[si].calib.world_from_sensor;
        // The rotation as a matrix: 9 products per point instead of the quaternion's ~30.
        let rot = world_from_sensor.rotation.to_rotation_matrix().into_inner();
        let translation = world_from_sensor.translation.vector;
        // A level lidar (rotated about the vertical only) turns headings by its own yaw: no
        // sine, cosine and arctangent per detection.
        let level_yaw_rad =
            (rot[(2, 0)].abs() < 1e-12 && rot[(2, 1)].abs() < 1e-12).then(|| rot[(1, 0)].atan2(rot[(0, 0)]));
        let meas = &mut sc.lidar_meas;
        meas.clear();
        for d in dets {
            // `0 · v` is 0 for a finite v and NaN otherwise: one comparison tests all four.
            let c = &d.center_in_sensor;
            let finite = 0.0 * c.x + 0.0 * c.y + 0.0 * c.z + 0.0 * d.yaw_rad == 0.0;
            if !finite || !d.size.is_valid() || !(0.0..=1.0).contains(&d.score) || d.size.length_m > 40.0 {
                self.stats.detections_rejected += 1;
                continue;
            }
            if d.score < self.config.lidar_min_score {
                self.stats.detections_low_score += 1;
                continue;
            }
            let c = rot * d.center_in_sensor.coords + translation;
            let yaw_rad = match level_yaw_rad {
                Some(sensor_yaw_rad) => wrap_angle(d.yaw_rad + sensor_yaw_rad),
                None => {
                    let (sin_yaw, cos_yaw) = d.yaw_rad.sin_cos();
                    let heading = rot.column(0) * cos_yaw + rot.column(1) * sin_yaw;
                    heading.y.atan2(heading.x)
                }
            };
            let sigma = noise.position_sigma_at(d.center_in_sensor.coords.norm());
            meas.push(LidarMeas {
                pos: Vector2::new(c.x, c.y),
                r: Matrix2::new(sigma * sigma, 0.0, 0.0, sigma * sigma),
                z_ground_m: c.z - 0.5 * d.size.height_m,
                yaw_rad,
                size: d.size,
                class: d.class,
                score: d.score,
            });
        }
        // Each track looks for measurements within the radius its gate can reach: the pre-check
        // below with the frame's largest measurement noise, at most `max_gate_radius_m` (so it
        // finds the same pairs as a search around every measurement, among far fewer neighbours
        // when tracks are certain).
        self.meas_grid.rebuild(meas.iter().map(|m| (m.pos.x, m.pos.y)));
        let max_trace_r = meas.iter().map(|m| m.r.trace()).fold(0.0, f64::max);
        let max_radius2 = self.config.max_gate_radius_m.powi(2);
        // The frame touches tracks it covers (within its range) or gates with (within the gate
        // radius of a detection, which may lie beyond the range).
        let sensor_xy = translation.xy();
        // The farthest detection's distance: one square root of the largest squared distance
        // (the root is monotone and correctly rounded, so the same value).
        let farthest_m = meas.iter().map(|m| (m.pos - sensor_xy).norm_squared()).fold(0.0, f64::max).sqrt();
        let reach_m = farthest_m.max(self.sensors[si].calib.max_range_m) + self.config.max_gate_radius_m;
        self.predict_near(t, sensor_xy, reach_m, &mut sc.relevant);
        let (relevant, candidates) = (&sc.relevant, &mut sc.candidates);
        candidates.clear();
        sc.gated.clear();
        sc.gated.resize(meas.len(), false);
        let gated = &mut sc.gated;
        for &ti in relevant {
            let motion = &self.tracks[ti].motion;
            let (p, trace_p) = (motion.position(), motion.position_cov().trace());
            let radius2 = (self.config.gate_chi2 * (trace_p + max_trace_r)).min(max_radius2);
            let gate_chi2 = self.config.gate_chi2;
            self.meas_grid.for_each_near(p.x, p.y, radius2.sqrt(), |j| {
                let m = &meas[j];
                let y = m.pos - p;
                // d² ≥ |y|² / λmax(S) ≥ |y|² / trace(S): a cheap exact pre-check of the gate.
                let trace_s = trace_p + m.r.trace();
                if y.norm_squared() > max_radius2 || y.norm_squared() > gate_chi2 * trace_s {
                    return;
                }
                if let Some((d2, det)) = motion.position_gate(&y, &m.r, gate_chi2) {
                    gated[j] = true;
                    candidates.push(Candidate { track: ti, meas: j, cost: d2, log_arg: det });
                }
            });
        }
        assign_into(candidates, self.tracks.len(), meas.len(), &mut sc.assign, &mut sc.pairs);
        let pairs = &sc.pairs[..];
        let matched = unmatched(&mut sc.matched, relevant, self.tracks.len());
        for &(ti, j) in pairs {
            matched[ti] = true;
            self.stats.detections_associated += 1;
            let m = &meas[j];
            let cfg = &self.config;
            let track = &mut self.tracks[ti];
            track.class_evidence.add(&[(m.class, m.score)], cfg.lidar_class_weight, cfg.class_evidence_decay);
            self.refresh_family(ti, m.yaw_rad);
            let track = &mut self.tracks[ti];
            let yaw = nearest_branch(m.yaw_rad, track.motion.yaw(track.yaw_hint_rad));
            let yaw_var_rad2 = self.config.lidar_yaw_sigma_rad.powi(2);
            if !track.motion.update_position_yaw_with(&m.pos, &m.r, yaw, yaw_var_rad2, Guard::Deferred) {
                self.stats.numeric_failures += 1;
            }
            track.guard_due = true;
            let track = &mut self.tracks[ti];
            track.yaw_hint_rad = yaw;
            track.smooth_size(&m.size, self.config.size_alpha);
            track.z_ground_m += 0.3 * (m.z_ground_m - track.z_ground_m);
            track.sources_ever |= SourceSet::LIDAR;
            track.mark_seen(si, t);
            self.after_update(ti, t);
        }
        let coverage = self.sensors[si].calib.coverage();
        for &ti in relevant {
            let track = &mut self.tracks[ti];
            let p = track.motion.position();
            if matched[ti] || coverage.covers(&Point3::new(p.x, p.y, track.z_ground_m + 0.5 * track.size.height_m)) {
                self.stats.tracks_confirmed += u64::from(record_opportunity(track, matched[ti], &self.config));
            }
        }
        for (j, m) in meas.iter().enumerate() {
            if gated[j] {
                continue;
            }
            let family = family_of(m.class);
            let motion = MotionState::new(
                family,
                m.pos,
                m.r,
                m.yaw_rad,
                self.init_speed_sigma(family),
                self.config.init_yaw_rate_sigma_rps,
            );
            let mut evidence = ClassEvidence::default();
            evidence.add(&[(m.class, m.score)], self.config.lidar_class_weight, self.config.class_evidence_decay);
            if let Some(ti) = self.spawn(t, motion, evidence, m.size, true, m.z_ground_m, m.yaw_rad, SourceSet::LIDAR) {
                self.tracks[ti].mark_seen(si, t);
            }
        }
    }

    // ----- camera -----

    fn update_camera(&mut self, si: usize, t: Timestamp, dets: &CameraDetections, sc: &mut Scratch) {
        let SensorKind::Camera { geometry, pixel_sigma_px } = &self.sensors[si].kind else { return };
        let geometry = geometry.as_ref().clone();
        let pixel_sigma_px = *pixel_sigma_px;
        let (w, h) = (f64::from(geometry.intrinsics().width_px), f64::from(geometry.intrinsics().height_px));
        let margin = self.config.camera_border_margin_px;
        let mut meas = Vec::with_capacity(dets.boxes.len());
        for d in &dets.boxes {
            let finite = [d.min_px.x, d.min_px.y, d.max_px.x, d.max_px.y].iter().all(|v| v.is_finite())
                && d.class_scores.iter().all(|(_, s)| s.is_finite() && (0.0..=1.0).contains(s));
            if !finite || d.max_px.x <= d.min_px.x || d.max_px.y <= d.min_px.y {
                self.stats.detections_rejected += 1;
                continue;
            }
            if d.best_class().1 < self.config.camera_min_score {
                self.stats.detections_low_score += 1;
                continue;
            }
            let model_sigma = self.config.camera_model_sigma_frac * (d.max_px.y - d.min_px.y);
            meas.push(CameraMeas {
                bottom_px: d.bottom_center_px(),
                r: Matrix2::identity() * (pixel_sigma_px.powi(2) + model_sigma.powi(2)),
                scores: &d.class_scores,
                truncated: d.min_px.x < margin || d.max_px.x > w - margin || d.max_px.y > h - margin,
            });
        }
        // Project every track near the camera. The frame touches tracks within that reach, and
        // tracks within the gate radius of the ground points its unclaimed boxes may spawn at
        // (within the camera's range, moved by less than the reach's slack).
        let cam_pos = geometry.world_from_camera().translation.vector;
        let reach_m = geometry.max_range_m() + 10.0;
        self.predict_near(t, cam_pos.xy(), reach_m + self.config.max_gate_radius_m, &mut sc.relevant);
        let relevant = &sc.relevant;
        let projections = &mut sc.projections;
        projections.resize(self.tracks.len(), None);
        for &ti in relevant {
            let tr = &self.tracks[ti];
            let p = tr.motion.position();
            projections[ti] = if (p.x - cam_pos.x).powi(2) + (p.y - cam_pos.y).powi(2) <= reach_m * reach_m {
                geometry.project_box(&p, tr.z_ground_m, tr.motion.yaw(tr.yaw_hint_rad), &tr.size)
            } else {
                None
            };
        }
        let pixel_grid = &mut sc.pixel_grid;
        pixel_grid.rebuild(meas.iter().map(|m| (m.bottom_px.x, m.bottom_px.y)));
        let candidates = &mut sc.candidates;
        candidates.clear();
        sc.gated.clear();
        sc.gated.resize(meas.len(), false);
        let gated = &mut sc.gated;
        let mut near = Vec::new();
        let gate_chi2 = self.config.gate_chi2;
        let max_trace_r = meas.iter().map(|m| m.r.trace()).fold(0.0, f64::max);
        for &ti in relevant {
            let Some(proj) = &projections[ti] else { continue };
            let motion = &self.tracks[ti].motion;
            // J P Jᵀ once per track (the innovation covariance of each box adds its noise to it).
            let jpj = proj.jacobian_px_per_m * motion.position_cov() * proj.jacobian_px_per_m.transpose();
            // Every box the pre-check below lets through lies within the gate's reach for the
            // frame's noisiest box (at most MAX_CAMERA_GATE_PX): the search finds the same pairs
            // whatever the grid's cell size.
            let radius2 = (gate_chi2 * (jpj.trace() + max_trace_r) * (1.0 + 1e-9)).min(MAX_CAMERA_GATE_PX.powi(2));
            pixel_grid.for_each_near(proj.bottom_center_px.x, proj.bottom_center_px.y, radius2.sqrt() + 1e-6, |j| {
                let m = &meas[j];
                let y = m.bottom_px - proj.bottom_center_px;
                let s = jpj + m.r;
                // d² ≥ |y|² / λmax(S) ≥ |y|² / trace(S) (S is positive definite): pairs clearly
                // outside the gate are skipped before inverting S.
                let y2 = y.norm_squared();
                if y2 > radius2 || y2 > gate_chi2 * s.trace() * (1.0 + 1e-9) {
                    return;
                }
                if let Some((d2, det)) = innovation_distance(&s, &y, gate_chi2) {
                    gated[j] = true;
                    candidates.push(Candidate { track: ti, meas: j, cost: d2, log_arg: det });
                }
            });
        }
        assign_into(candidates, self.tracks.len(), meas.len(), &mut sc.assign, &mut sc.pairs);
        let pairs = &sc.pairs[..];
        let matched = unmatched(&mut sc.matched, relevant, self.tracks.len());
        for &(ti, j) in pairs {
            let Some(proj) = &projections[ti] else { continue };
            matched[ti] = true;
            self.stats.detections_associated += 1;
            let m = &meas[j];
            let y = m.bottom_px - proj.bottom_center_px;
            let cfg = &self.config;
            let track = &mut self.tracks[ti];
            track.class_evidence.add(m.scores, cfg.camera_class_weight, cfg.class_evidence_decay);
            if !track.motion.update_position_like_with(&y, &proj.jacobian_px_per_m, &m.r, Guard::Deferred) {
                self.stats.numeric_failures += 1;
            }
            track.guard_due = true;
            track.sources_ever |= SourceSet::CAMERA;
            track.mark_seen(si, t);
            let hint = track.yaw_hint_rad;
            self.refresh_family(ti, hint);
            self.after_update(ti, t);
        }
        for &ti in relevant {
            let in_view = projections[ti].is_some_and(|p| geometry.intrinsics().contains(&p.bottom_center_px));
            if matched[ti] || in_view {
                let track = &mut self.tracks[ti];
                self.stats.tracks_confirmed += u64::from(record_opportunity(track, matched[ti], &self.config));
            }
        }
        if !self.config.camera_spawns_tracks {
            return;
        }
        let ground = self.site.ground.clone();
        // The grid of tracks is built for the first box that may spawn (often none does), before
        // any spawn; tracks spawned by this frame are checked apart.
        let mut grid_built = false;
        let mut spawned: Vec<usize> = Vec::new();
        for (j, m) in meas.iter().enumerate() {
            if gated[j] || m.truncated {
                continue;
            }
            let Some((ground_pt, cov)) = geometry.back_project(&m.bottom_px, &ground, pixel_sigma_px) else { continue };
            let class = m.scores.first().map_or(ObjectClass::Unknown, |s| s.0);
            let size = class.typical_size();
            // The bottom centre of the box is the near edge of the object: move the centre away
            // from the camera by a typical half extent, and widen the covariance for it.
            let dir = Vector2::new(ground_pt.x - cam_pos.x, ground_pt.y - cam_pos.y);
            let dir = if dir.norm() > 1e-6 { dir.normalize() } else { Vector2::x() };
            let pos = Vector2::new(ground_pt.x, ground_pt.y) + dir * (size.length_m + size.width_m) * 0.25;
            let extent_sigma = (size.length_m - size.width_m).abs() * 0.25 + 0.1;
            let cov = cov + Matrix2::identity() * extent_sigma.powi(2);
            if cov.trace().sqrt() > self.config.max_position_sigma_m {
                continue;
            }
            if !grid_built {
                // Tracks not predicted to `t` lie beyond the reach of this frame.
                self.grid.rebuild(self.tracks.iter().map(|tr| {
                    let p = tr.motion.position();
                    if tr.time == t { (p.x, p.y) } else { (f64::NAN, f64::NAN) }
                }));
                grid_built = true;
            }
            near.clear();
            self.grid.query(pos.x, pos.y, self.config.max_gate_radius_m, &mut near);
            let taken = near.iter().chain(spawned.iter()).any(|&ti| {
                let y = pos - self.tracks[ti].motion.position();
                self.tracks[ti].motion.position_gate(&y, &cov, self.config.gate_chi2).is_some()
            });
            if taken {
                continue;
            }
            let family = family_of(class);
            let yaw = dir.y.atan2(dir.x);
            let motion = MotionState::new(
                family,
                pos,
                cov,
                yaw,
                self.init_speed_sigma(family),
                self.config.init_yaw_rate_sigma_rps,
            );
            let mut evidence = ClassEvidence::default();
            evidence.add(m.scores, self.config.camera_class_weight, self.config.class_evidence_decay);
            let before = self.tracks.len();
            if let Some(ti) = self.spawn(t, motion, evidence, size, false, ground_pt.z, yaw, SourceSet::CAMERA) {
                self.tracks[ti].mark_seen(si, t);
                if ti + 1 != self.tracks.len() || before + 1 != self.tracks.len() {
                    // The vector was re-sorted (id wrap): indices in the grid are stale.
                    return;
                }
                spawned.push(ti);
            }
        }
    }

    // ----- V2X -----

    fn update_v2x(&mut self, t: Timestamp, state: &VehicleState) {
        let p3 = self.enu.enu_from_wgs84(&state.position);
        let yaw = wrap_angle(state.yaw_rad + self.enu.true_north_rotation_rad(&p3));
        let pos = Vector2::new(p3.x, p3.y);
        let min_s = self.config.v2x_min_position_sigma_m;
        let (a, b) = (state.accuracy.semi_major_m.max(min_s), state.accuracy.semi_minor_m.max(min_s));
        let (s, c) = state.accuracy.orientation_rad.sin_cos();
        let rot = Matrix2::new(c, -s, s, c);
        let r = rot * Matrix2::new(a * a, 0.0, 0.0, b * b) * rot.transpose();
        if !pos.iter().all(|v| v.is_finite()) || !r.iter().all(|v| v.is_finite()) {
            self.stats.vehicle_states_rejected += 1;
            return;
        }
        // The track this vehicle already names, if it still agrees.
        let mut target = self
            .v2x_links
            .get(&state.vehicle_id)
            .and_then(|id| self.tracks.binary_search_by_key(id, |t| t.id).ok())
            .filter(|&ti| self.tracks[ti].v2x.as_ref().is_some_and(|l| l.vehicle_id == state.vehicle_id));
        if let Some(ti) = target {
            predict_track(&mut self.tracks[ti], t, &self.noise);
            let y = pos - self.tracks[ti].motion.position();
            let agrees = self.tracks[ti]
                .motion
                .position_distance(&y, &r)
                .is_some_and(|(d2, _)| d2 <= 4.0 * self.config.gate_chi2);
            if !agrees {
                self.tracks[ti].v2x = None;
                self.v2x_links.remove(&state.vehicle_id);
                target = None;
            }
        }
        if target.is_none() {
            let mut best: Option<(f64, usize)> = None;
            let mut near = std::mem::take(&mut self.scratch.relevant);
            self.predict_near(t, pos, self.config.max_gate_radius_m, &mut near);
            for &ti in &near {
                let track = &self.tracks[ti];
                let linked =
                    track.v2x.as_ref().is_some_and(|l| t.secs_since(l.last_report) < self.config.v2x_timeout_s);
                if linked || track.motion.family() == MotionFamily::Static {
                    continue;
                }
                let y = pos - track.motion.position();
                if y.norm_squared() > self.config.max_gate_radius_m.powi(2) {
                    continue;
                }
                if let Some((d2, det)) = track.motion.position_distance(&y, &r) {
                    let cost = d2 + det.ln();
                    if d2 <= self.config.gate_chi2 && best.is_none_or(|(c, _)| cost < c) {
                        best = Some((cost, ti));
                    }
                }
            }
            self.scratch.relevant = near;
            target = best.map(|b| b.1);
            if let Some(ti) = target {
                if let Some(old) = self.tracks[ti].v2x.take() {
                    self.v2x_links.remove(&old.vehicle_id);
                }
                self.v2x_links.insert(state.vehicle_id.clone(), self.tracks[ti].id);
            }
        }
        let ti = match target {
            Some(ti) => ti,
            None => {
                let family = family_of(state.class);
                let motion = MotionState::new(
                    family,
                    pos,
                    r,
                    yaw,
                    self.init_speed_sigma(family),
                    self.config.init_yaw_rate_sigma_rps,
                );
                let size = if state.size.is_valid() { state.size } else { state.class.typical_size() };
                let z = self.site.ground.height_at(pos.x, pos.y);
                let Some(ti) = self.spawn(
                    t,
                    motion,
                    ClassEvidence::default(),
                    size,
                    state.size.is_valid(),
                    z,
                    yaw,
                    SourceSet::V2X,
                ) else {
                    return;
                };
                self.v2x_links.insert(state.vehicle_id.clone(), self.tracks[ti].id);
                ti
            }
        };
        let cfg = &self.config;
        let track = &mut self.tracks[ti];
        if state.class != ObjectClass::Unknown {
            track.class_evidence.add(&[(state.class, 0.95)], cfg.v2x_class_weight, cfg.class_evidence_decay);
        }
        self.refresh_family(ti, yaw);
        let track = &mut self.tracks[ti];
        let ok = track.motion.update_kinematic(
            &pos,
            &r,
            yaw,
            self.config.v2x_yaw_sigma_rad.powi(2),
            state.speed_mps,
            self.config.v2x_speed_sigma_mps.powi(2),
        );
        if !ok {
            self.stats.numeric_failures += 1;
        }
        let track = &mut self.tracks[ti];
        if state.size.is_valid() {
            track.size = state.size;
            track.size_measured = true;
        }
        track.yaw_hint_rad = yaw;
        track.sources_ever |= SourceSet::V2X;
        track.v2x = Some(V2xLink { vehicle_id: state.vehicle_id.clone(), last_report: t });
        if !track.confirmed {
            track.confirmed = true;
            self.stats.tracks_confirmed += 1;
        }
        self.after_update(ti, t);
    }

    // ----- track management -----

    fn init_speed_sigma(&self, family: MotionFamily) -> f64 {
        match family {
            MotionFamily::Vehicle => self.config.init_vehicle_speed_sigma_mps,
            MotionFamily::Pedestrian => self.config.init_pedestrian_speed_sigma_mps,
            MotionFamily::Static => 0.1,
        }
    }

    /// Switches the motion model when the fused class belongs to another family.
    fn refresh_family(&mut self, ti: usize, yaw_hint_rad: f64) {
        let Some(class) = self.tracks[ti].class_evidence.best_if_confident() else { return };
        let family = class.motion_family();
        if family != self.tracks[ti].motion.family() {
            let speed_sigma = self.init_speed_sigma(family);
            let track = &mut self.tracks[ti];
            track.motion =
                track.motion.converted(family, yaw_hint_rad, speed_sigma, self.config.init_yaw_rate_sigma_rps);
        }
    }

    /// Bookkeeping after any update at `t`: times, acceleration estimate, path history.
    fn after_update(&mut self, ti: usize, t: Timestamp) {
        let cfg = &self.config;
        let track = &mut self.tracks[ti];
        track.last_update = track.last_update.max(t);
        let speed = track.motion.speed();
        match track.speed_ref {
            Some((t0, v0)) if t.secs_since(t0) >= 0.09 => {
                let a = ((speed - v0) / t.secs_since(t0)).clamp(-15.0, 15.0);
                track.accel_mps2 += 0.3 * (a - track.accel_mps2);
                track.speed_ref = Some((t, speed));
            }
            None => track.speed_ref = Some((t, speed)),
            _ => {}
        }
        let p = track.motion.position();
        if track.path.newest().is_none_or(|(t0, _)| t.secs_since(*t0) >= cfg.path_history_interval_s) {
            track.path.push(t, [p.x, p.y], cfg.path_history_len);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &mut self,
        t: Timestamp,
        motion: MotionState,
        class_evidence: ClassEvidence,
        size: BoxSize,
        size_measured: bool,
        z_ground_m: f64,
        yaw_hint_rad: f64,
        source: SourceSet,
    ) -> Option<usize> {
        if self.tracks.len() >= self.config.max_tracks {
            self.stats.spawn_refused += 1;
            return None;
        }
        if !motion.is_finite() {
            self.stats.numeric_failures += 1;
            return None;
        }
        // Ids grow monotonically (wrapping past u32::MAX, skipping 0 and ids in use), so the
        // track vector stays sorted by id except right after a wrap, when it is re-sorted.
        let mut id = self.next_id.max(1);
        while self.tracks.binary_search_by_key(&id, |t| t.id).is_ok() {
            id = id.wrapping_add(1).max(1);
        }
        self.next_id = id.wrapping_add(1).max(1);
        self.tracks.push(Track {
            id,
            motion,
            time: t,
            guard_due: false,
            created: t,
            last_update: t,
            confirmed: self.config.confirm_hits <= 1,
            hit_bits: 1,
            opportunities: 1,
            class_evidence,
            size,
            size_measured,
            z_ground_m,
            yaw_hint_rad,
            sources_ever: source,
            seen: Vec::new(),
            v2x: None,
            accel_mps2: 0.0,
            speed_ref: None,
            // Full length from the start: the history never reallocates.
            path: PathHistory::with_capacity(self.config.path_history_len),
        });
        if self.tracks.len() > 1 && self.tracks[self.tracks.len() - 2].id > id {
            self.tracks.sort_by_key(|t| t.id);
        }
        self.stats.tracks_created += 1;
        let ti = self.tracks.binary_search_by_key(&id, |t| t.id).ok()?;
        self.after_update(ti, t);
        Some(ti)
    }

    /// Deletes and (with `merge`) merges duplicate tracks at time `t`. (Tracks are confirmed as
    /// their hits are recorded.)
    fn maintain(&mut self, t: Timestamp, merge: bool) {
        let cfg = &self.config;
        let (sensors, noise) = (&self.sensors, &self.noise);
        let mut removed_link = false;
        let mut deleted = 0;
        self.tracks.retain_mut(|track| {
            let idle_s = t.secs_since(track.last_update);
            let cov = track.motion.position_cov();
            let keep = track.motion.is_finite()
                && cov.trace().sqrt() <= cfg.max_position_sigma_m
                && if track.confirmed {
                    // A coasting track that left every sensor's field of view is gone.
                    idle_s <= cfg.delete_after_s && (idle_s <= cfg.coast_after_s || covered(sensors, track, t, noise))
                } else {
                    idle_s <= cfg.tentative_timeout_s
                        && !(track.opportunities >= cfg.confirm_window
                            && track.hits_in(cfg.confirm_window) + 1 < cfg.confirm_hits)
                };
            if !keep {
                deleted += 1;
                removed_link |= track.v2x.is_some();
            }
            keep
        });
        self.stats.tracks_deleted += deleted;
        if removed_link {
            self.drop_stale_links();
        }
        if merge {
            self.merge_duplicates(t);
        }
    }

    /// Forgets V2X links whose track is gone or no longer names that vehicle.
    fn drop_stale_links(&mut self) {
        let tracks = &self.tracks;
        self.v2x_links.retain(|vid, id| {
            tracks
                .binary_search_by_key(id, |t| t.id)
                .is_ok_and(|i| tracks[i].v2x.as_ref().is_some_and(|l| &l.vehicle_id == vid))
        });
    }

    /// Merges confirmed tracks that describe the same object at `t` into the older one.
    ///
    /// Tracks need not have been predicted to `t`: pairs are found among the positions at the
    /// tracks' own times (a search widened by how far each track can have moved since), and
    /// only the tracks of a candidate pair are predicted to `t` for the test.
    fn merge_duplicates(&mut self, t: Timestamp) {
        let mut scratch = std::mem::take(&mut self.merge_scratch);
        self.close_track_pairs(t, &mut scratch);
        if !scratch.pairs.is_empty() {
            self.merge_pairs(t, &scratch.pairs);
        }
        self.merge_scratch = scratch;
    }

    /// Every pair of confirmed tracks that may be close enough to merge at `t`, each once, in
    /// index order (the older track first), into `scratch.pairs`.
    fn close_track_pairs(&mut self, t: Timestamp, scratch: &mut MergeScratch) {
        let cfg = &self.config;
        // A pair with a V2X-linked track is matched beyond the merge distance (a V2X-only track
        // can be matched with the perceived track of the same car).
        let reach_of = |linked: bool| if linked { cfg.max_gate_radius_m } else { cfg.merge_distance_m };
        // Position (NaN for tentative tracks, which the search leaves out) and travel bound of
        // each track.
        let MergeScratch { points, travels_m, keys, pairs } = scratch;
        points.clear();
        points.resize(self.tracks.len(), (f64::NAN, f64::NAN));
        travels_m.clear();
        travels_m.resize(self.tracks.len(), 0.0);
        let (mut max_travel_m, mut any_linked) = (0.0f64, false);
        for ((tr, point), travel) in self.tracks.iter_mut().zip(points.iter_mut()).zip(travels_m.iter_mut()) {
            if !tr.confirmed {
                continue;
            }
            let mut travel_m = tr.motion.speed() * t.secs_since(tr.time).max(0.0);
            // Tracks that may have moved further than a gate radius (long out of every sensor's
            // reach) are predicted, so the cells stay small.
            if travel_m > cfg.max_gate_radius_m {
                predict_track(tr, t, &self.noise);
                travel_m = 0.0;
            }
            if travel_m > 0.0 {
                travel_m += TRAVEL_ROUNDING_M;
            }
            max_travel_m = max_travel_m.max(travel_m);
            any_linked |= tr.v2x.is_some();
            let p = tr.motion.position();
            *point = (p.x, p.y);
            *travel = travel_m;
        }
        let tracks = &self.tracks;
        pairs.clear();
        close_pairs(points, reach_of(any_linked) + 2.0 * max_travel_m, keys, |i, j| {
            let linked = tracks[i].v2x.is_some() || tracks[j].v2x.is_some();
            let bound_m = reach_of(linked) + travels_m[i] + travels_m[j];
            let (dx, dy) = (points[j].0 - points[i].0, points[j].1 - points[i].1);
            if dx * dx + dy * dy <= bound_m * bound_m {
                pairs.push((i, j));
            }
        });
        pairs.sort_unstable();
    }

    /// Merges the pairs of `pairs` (from [`Fusion::close_track_pairs`]) that describe the same
    /// object at `t`.
    fn merge_pairs(&mut self, t: Timestamp, pairs: &[(usize, usize)]) {
        let cfg = &self.config;
        let mut remove = vec![false; self.tracks.len()];
        let mut merges = Vec::new();
        for &(i, j) in pairs {
            if remove[i] || remove[j] {
                continue;
            }
            predict_track(&mut self.tracks[i], t, &self.noise);
            predict_track(&mut self.tracks[j], t, &self.noise);
            let (a, b) = (&self.tracks[i], &self.tracks[j]);
            let d = b.motion.position() - a.motion.position();
            // Distance first: it is cheaper than the velocity (a sine and a cosine).
            if (a.v2x.is_none() && b.v2x.is_none() && d.norm() >= cfg.merge_distance_m)
                || (b.motion.velocity() - a.motion.velocity()).norm() > cfg.merge_speed_diff_mps
            {
                continue;
            }
            let close = d.norm() < cfg.merge_distance_m;
            let v2x_pair = a.v2x.is_some() != b.v2x.is_some()
                && d.norm() < cfg.max_gate_radius_m
                && (a.motion.position_cov() + b.motion.position_cov())
                    .try_inverse()
                    .is_some_and(|s| (d.transpose() * s * d)[(0, 0)] <= cfg.gate_chi2);
            if close || v2x_pair {
                remove[j] = true;
                merges.push((i, j));
            }
        }
        if merges.is_empty() {
            return;
        }
        for &(i, j) in &merges {
            let other = self.tracks[j].clone();
            let keep = &mut self.tracks[i];
            if other.motion.position_cov().trace() < keep.motion.position_cov().trace() && keep.v2x.is_none() {
                keep.motion = other.motion.clone();
            }
            if keep.v2x.is_none() {
                keep.v2x = other.v2x.clone();
            }
            keep.class_evidence.merge(&other.class_evidence);
            if !keep.size_measured && other.size_measured {
                keep.size = other.size;
                keep.size_measured = true;
            }
            keep.sources_ever |= other.sources_ever;
            for (s, ts) in other.seen {
                keep.mark_seen(s, ts);
            }
            keep.created = keep.created.min(other.created);
            keep.last_update = keep.last_update.max(other.last_update);
        }
        let mut lost_link = false;
        let mut k = 0;
        self.tracks.retain(|t| {
            let r = remove[k];
            k += 1;
            lost_link |= r && t.v2x.is_some();
            !r
        });
        for t in &self.tracks {
            if let Some(l) = &t.v2x {
                self.v2x_links.insert(l.vehicle_id.clone(), t.id);
            }
        }
        if lost_link {
            self.drop_stale_links();
        }
        self.stats.tracks_merged += merges.len() as u64;
    }

    // ----- output -----

    fn fused_object(&self, track: &Track, at: Timestamp) -> FusedObject {
        let cfg = &self.config;
        let mut motion = track.motion.clone();
        motion.predict(at.secs_since(track.time), &self.noise);
        let (state, covariance) = motion.as_ctrv(track.yaw_hint_rad, cfg.init_yaw_rate_sigma_rps);
        let confidence_95 = ConfidenceEllipse::of_position_cov(&motion.position_cov());
        let semi_major_m = confidence_95.semi_major_m;
        let mut sources = SourceSet::NONE;
        let mut seen_by = SensorMask::NONE;
        for &(si, ts) in &track.seen {
            let age_s = at.secs_since(ts);
            let sensor = &self.sensors[si];
            if age_s <= cfg.sources_window_s {
                sources |= match sensor.kind {
                    SensorKind::Lidar(_) => SourceSet::LIDAR,
                    SensorKind::Camera { .. } => SourceSet::CAMERA,
                };
            }
            if age_s <= cfg.seen_window_s {
                seen_by = seen_by.with(si);
            }
        }
        let v2x_fresh = track.v2x.as_ref().filter(|l| at.secs_since(l.last_report) <= cfg.v2x_timeout_s);
        if v2x_fresh.is_some() {
            sources |= SourceSet::V2X;
        }
        if sources.is_empty() {
            sources = track.sources_ever;
        }
        let (class, class_confidence) = track.class_evidence.best();
        let camera_only =
            !track.sources_ever.contains(SourceSet::LIDAR) && !track.sources_ever.contains(SourceSet::V2X);
        let base = if camera_only { cfg.camera_only_confidence } else { 1.0 };
        let idle_s = at.secs_since(track.last_update).max(0.0);
        let existence_confidence = base * (1.0 - idle_s / cfg.delete_after_s).clamp(0.0, 1.0);
        let pos = motion.position();
        let velocity_mps = motion.velocity();
        FusedObject {
            id: track.id,
            status: track.status(at, cfg.coast_after_s),
            class,
            class_confidence,
            existence_confidence,
            time: at,
            position_m: Point3::new(pos.x, pos.y, track.z_ground_m),
            velocity_mps,
            speed_mps: velocity_mps.norm(),
            yaw_rad: state[2],
            yaw_rate_rps: state[4],
            accel_mps2: track.accel_mps2,
            state,
            covariance,
            confidence_95,
            pos_confidence_95_m: semi_major_m,
            size: track.size,
            sources,
            age_s: at.secs_since(track.created).max(0.0),
            v2x_id: v2x_fresh.map(|l| l.vehicle_id.clone()),
            seen_by,
            last_update: track.last_update,
            path: track.path.clone(),
        }
    }
}

/// `matched` sized for `n_tracks` tracks with the `relevant` ones unmatched (the only entries a
/// frame update writes and reads).
fn unmatched<'a>(matched: &'a mut Vec<bool>, relevant: &[usize], n_tracks: usize) -> &'a mut [bool] {
    matched.resize(n_tracks, false);
    for &ti in relevant {
        matched[ti] = false;
    }
    matched
}

/// Predicts the track to `t` when its state is older.
fn predict_track(track: &mut Track, t: Timestamp, noise: &ProcessNoise) {
    predict_track_with(track, t, noise, Guard::Now);
}

/// [`predict_track`], guarding the covariance as `guard` says (and noting a deferred guard).
fn predict_track_with(track: &mut Track, t: Timestamp, noise: &ProcessNoise, guard: Guard) {
    let dt = t.secs_since(track.time);
    if dt > 0.0 {
        track.motion.predict_with(dt, noise, guard);
        track.time = t;
        track.guard_due |= guard == Guard::Deferred;
    }
}

/// Records a sensor's opportunity to see the track (`hit` when it did) and confirms a tentative
/// track once it has enough hits at a plausible speed. Returns whether it was confirmed now.
fn record_opportunity(track: &mut Track, hit: bool, cfg: &FusionConfig) -> bool {
    track.record(hit);
    let confirm =
        hit && !track.confirmed && track.hits_in(cfg.confirm_window) >= cfg.confirm_hits && plausible_speed(track);
    track.confirmed |= confirm;
    confirm
}

/// Whether the track's speed suits its motion family (clutter that hops between chance
/// detections looks like a pedestrian running at car speed; it is not confirmed).
fn plausible_speed(track: &Track) -> bool {
    let speed_mps = track.motion.speed();
    match track.motion.family() {
        MotionFamily::Vehicle => true,
        MotionFamily::Pedestrian => speed_mps <= 4.0,
        MotionFamily::Static => speed_mps <= 1.0,
    }
}

/// Whether any sensor's field of view holds the track's box centre at `t`.
fn covered(sensors: &[SensorState], track: &Track, t: Timestamp, noise: &ProcessNoise) -> bool {
    let mut motion = track.motion.clone();
    motion.predict(t.secs_since(track.time).max(0.0), noise);
    let p = motion.position();
    let c = Point3::new(p.x, p.y, track.z_ground_m + 0.5 * track.size.height_m);
    sensors.iter().any(|s| s.calib.covers(&c))
}

/// The motion family for a detected class (unknown objects move like vehicles).
fn family_of(class: ObjectClass) -> MotionFamily {
    if class == ObjectClass::Unknown { MotionFamily::Vehicle } else { class.motion_family() }
}

/// The ground footprint of a sensor's field of view: a sector (or disc) of its range around its
/// position, oriented along its forward axis (lidar x, camera z), as (east, north) [m].
fn coverage_polygon(calib: &SensorCalibration) -> Vec<[f64; 2]> {
    let forward_in_sensor = match calib.model {
        SensorModel::Lidar(_) => Vector3::x(),
        SensorModel::Camera(_) => Vector3::z(),
    };
    let f = calib.world_from_sensor.rotation * forward_in_sensor;
    let yaw0 = f.y.atan2(f.x);
    let o = calib.position();
    let r = calib.max_range_m;
    if calib.hfov_deg >= 359.9 {
        return (0..24)
            .map(|k| {
                let a = f64::from(k) * std::f64::consts::TAU / 24.0;
                [o.x + r * a.cos(), o.y + r * a.sin()]
            })
            .collect();
    }
    let half = calib.hfov_deg.to_radians() / 2.0;
    let mut poly = vec![[o.x, o.y]];
    for k in 0..=12 {
        let a = yaw0 - half + 2.0 * half * f64::from(k) / 12.0;
        poly.push([o.x + r * a.cos(), o.y + r * a.sin()]);
    }
    poly
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ellipse through nalgebra's generic symmetric eigen decomposition (the reference).
    fn ellipse_by_nalgebra(cov: &Matrix2<f64>) -> ConfidenceEllipse {
        let eig = cov.symmetric_eigen();
        let (i_max, i_min) = if eig.eigenvalues[0] >= eig.eigenvalues[1] { (0, 1) } else { (1, 0) };
        let axis = eig.eigenvectors.column(i_max);
        ConfidenceEllipse {
            semi_major_m: (CHI2_2DOF_95 * eig.eigenvalues[i_max].max(0.0)).sqrt(),
            semi_minor_m: (CHI2_2DOF_95 * eig.eigenvalues[i_min].max(0.0)).sqrt(),
            orientation_rad: wrap_angle(axis[1].atan2(axis[0])),
        }
    }

    #[test]
    fn closed_form_ellipse_agrees_with_nalgebra() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut cases = vec![
            Matrix2::zeros(),
            Matrix2::new(1.0, 0.0, 0.0, 1.0),
            Matrix2::new(2.0, 0.0, 0.0, 1.0),
            Matrix2::new(1.0, 0.0, 0.0, 2.0),
            Matrix2::new(1.0, 0.5, 0.5, 1.0),
            Matrix2::new(1.0, -0.5, -0.5, 1.0),
            Matrix2::new(1.0, 1e-300, 1e-300, 2.0),
            Matrix2::new(3.0, -1e-17, -1e-17, 1.0),
        ];
        for k in 0..50_000 {
            let scale = 10f64.powi(rng.random_range(-6..4));
            let (x, y, z) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            let mut m = Matrix2::new(x, y, z, rng.random_range(-1.0..1.0));
            m = m * m.transpose() * scale;
            match k % 5 {
                0 => m[(1, 1)] = m[(0, 0)],
                1 => {
                    m[(0, 1)] = 0.0;
                    m[(1, 0)] = 0.0;
                }
                _ => {}
            }
            cases.push(m);
        }
        for m in cases {
            let (ours, reference) = (ConfidenceEllipse::of_position_cov(&m), ellipse_by_nalgebra(&m));
            let tol = 1e-9 * reference.semi_major_m.max(1e-300);
            assert!((ours.semi_major_m - reference.semi_major_m).abs() <= tol, "{m} {ours:?} {reference:?}");
            assert!((ours.semi_minor_m - reference.semi_minor_m).abs() <= tol, "{m} {ours:?} {reference:?}");
            // Orientation matters only for an elongated ellipse; the same branch, not its opposite.
            if reference.semi_major_m - reference.semi_minor_m > 1e-6 * reference.semi_major_m {
                let d = wrap_angle(ours.orientation_rad - reference.orientation_rad);
                assert!(d.abs() < 1e-6, "{m} {ours:?} {reference:?}");
            }
        }
    }
}
