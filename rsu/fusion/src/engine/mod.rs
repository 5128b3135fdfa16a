//! The fusion engine: a sans-IO state machine fed with sensor frames and V2X self-reports (each
//! with the caller's `now`), fusing each as it arrives (one that arrives out of sequence is fused
//! where it belongs in capture-time order, see `window`), and polled for objects predicted to a
//! requested time. Pipeline per measurement frame: predict the tracks within the frame's reach
//! (the others keep their own time) → gate (chi-square on Mahalanobis distance) → associate (grid
//! pre-filter, components, optimal assignment) → update (confirming tracks as their hits are
//! recorded) → spawn; after every input, apply the covariance guard its predictions and updates
//! deferred, and after every sensor frame merge duplicate tracks; once per management interval
//! of capture time and before every poll, delete stale tracks.
//!
//! The engine is one [`Fusion`] struct with its methods spread over the submodules by stage:
//! - this file: the struct, its construction and configuration, and the inputs (`handle_*`);
//! - `window`: time and the fusion window (what is fused when, out-of-sequence inputs, the
//!   management after each input, predicting tracks to an input);
//! - `lidar`, `camera`, `v2x`: the three measurement updates;
//! - `misbehaviour`: plausibility checks of V2X self-reports, flagging vehicles that lie;
//! - `management`: spawning, confirmation, deletion and merging of tracks;
//! - `output`: [`FusedObject`], [`ObjectKinematics`], sensor health and the roadside frame.

use std::collections::BTreeMap;
use std::sync::Arc;

use nalgebra::Vector3;
use serde::{Deserialize, Serialize};

use crate::assignment::{AssignScratch, Candidate};
use crate::calibration::{ConfigError, LidarNoise, SensorCalibration, SensorModel, SiteConfig};
use crate::camera::{CameraGeometry, ProjectedBox};
use crate::config::{FusionConfig, FusionConfigError};
use crate::geo::EnuFrame;
use crate::measurement::{Detections, SensorFrame, VehicleState};
use crate::motion::ProcessNoise;
use crate::spatial::SpatialGrid;
use crate::time::Timestamp;
use crate::track::Track;

mod camera;
mod clutter;
mod lidar;
mod management;
mod misbehaviour;
mod output;
mod pixel_noise;
mod v2x;
mod window;

pub use misbehaviour::{MisbehaviourCounts, MisbehaviourFlag, MisbehaviourReason};
pub use output::{ConfidenceEllipse, FusedObject, ObjectKinematics};

use camera::PIXEL_GRID_CELL_PX;
use lidar::{LidarMeas, MEAS_GRID_CELL_M};
use management::MergeScratch;
use window::{Pending, SpawnIds, Window};

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
    /// Taken in; it is fused in capture-time order (out of sequence if it arrived late).
    Accepted,
    /// Older than the lag allows: dropped and counted.
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
    /// Inputs that arrived out of sequence (captured before inputs already fused) and were
    /// fused in their place.
    pub out_of_sequence: u64,
    /// Times the engine went back to a checkpoint to fuse inputs that arrived out of sequence.
    pub rollbacks: u64,
    /// Inputs fused again after a rollback.
    pub inputs_refused: u64,
    /// Frames and V2X reports dropped for a capture time too far in the future.
    pub future_rejected: u64,
    /// Inputs forgotten before `max_lag_s` because the window held `max_window_inputs`.
    pub window_trimmed: u64,
    /// Sequence gaps seen (frames lost between sensor and core).
    pub sequence_gaps: u64,
    /// Detections assigned to a track.
    pub detections_associated: u64,
    /// Detections with non-finite or out-of-range values, ignored.
    pub detections_rejected: u64,
    /// Detections below the score threshold, ignored.
    pub detections_low_score: u64,
    /// Confirmed objects left out of broadcast frames over
    /// [`MAX_PARTICIPANTS`](crate::broadcast::MAX_PARTICIPANTS) (counted per frame made).
    #[serde(default)]
    pub participants_left_out: u64,
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
    /// Filter updates skipped because of a singular or non-finite innovation (or a V2X state
    /// whose position cannot be placed in the site frame).
    pub numeric_failures: u64,
    /// Vehicles flagged for misbehaviour by reason, and their reports withheld (see
    /// [`Fusion::misbehaving_vehicles`]).
    #[serde(default)]
    pub misbehaviour: MisbehaviourCounts,
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
    /// The next fresh track id: ids are never reused, a rollback included.
    next_id: u32,
    /// Ids of the tracks the input being fused spawns, kept across rollbacks.
    spawn_ids: SpawnIds,
    /// The inputs of the last `max_lag_s` with checkpoints.
    window: Window,
    /// Inputs accepted so far (the arrival number of the newest).
    arrivals: u64,
    /// Newest capture time fused.
    fused_until: Option<Timestamp>,
    /// Newest `now` a caller passed.
    latest_now: Option<Timestamp>,
    v2x_links: BTreeMap<String, u32>,
    /// Where tracks keep dying as clutter.
    clutter: clutter::ClutterMap,
    /// Each camera's pixel noise as its boxes show it.
    pixel_noise: pixel_noise::PixelNoise,
    /// What the plausibility checks know of each vehicle.
    misbehaviour: misbehaviour::Monitor,
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
        let pixel_noise = pixel_noise::PixelNoise::new(sensors.iter().map(|s| match &s.kind {
            SensorKind::Camera { pixel_sigma_px, .. } => *pixel_sigma_px,
            SensorKind::Lidar(_) => 0.0,
        }));
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
            spawn_ids: SpawnIds::default(),
            window: Window::default(),
            arrivals: 0,
            fused_until: None,
            latest_now: None,
            v2x_links: BTreeMap::new(),
            clutter: clutter::ClutterMap::default(),
            pixel_noise,
            misbehaviour: misbehaviour::Monitor::default(),
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

    /// Inputs taken in and not yet fused (they are fused when objects are next read).
    pub fn unfused(&self) -> usize {
        self.window.unfused()
    }

    /// Inputs held in the fusion window (the last [`FusionConfig::max_lag_s`] of them).
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Takes in one sensor frame at time `now` (its arrival). It is fused in capture-time order:
    /// at once, or, when it was captured before inputs already fused, in their place (see
    /// [`FusionConfig::max_lag_s`]). Fusing waits for the next read of objects, so that inputs
    /// taken in together are fused together.
    ///
    /// The engine keeps the frame for `max_lag_s`: pass an `Arc` to share it with the caller
    /// (nothing is copied), or the frame itself to hand it over.
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
        self.admit(t, Pending::Frame { sensor: si, frame });
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

    /// Takes in a connected vehicle's self-report at time `now` (its arrival): a measurement of
    /// the track of that vehicle (or a new track when no sensor sees it), fused at its own
    /// measurement time like a sensor frame, however late it arrives within `max_lag_s`.
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
        self.admit(state.time, Pending::Vehicle(Box::new(state.clone())));
        Ingest::Accepted
    }
}

/// frame update writes and reads).
fn unmatched<'a>(matched: &'a mut Vec<bool>, relevant: &[usize], n_tracks: usize) -> &'a mut [bool] {
    matched.resize(n_tracks, false);
    for &ti in relevant {
        matched[ti] = false;
    }
    matched
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
