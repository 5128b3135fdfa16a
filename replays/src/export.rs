//! Plain-file export of a replayed log, so that other trackers and other scorers (py-motmetrics)
//! can be run on exactly what ours sees and scored exactly as ours is, with no protobuf:
//!
//! - `detections.jsonl`: one line per lidar frame the fusion core accepted, in replay order, with
//!   its detections mapped into the site frame by the sensor's calibrated `world_from_sensor`
//!   (the transform the fusion applies, calibration offsets of the replay configuration included).
//! - `scoring.jsonl`: one line per ground-truth timestamp: every truth object with its class
//!   family, match gate and whether the scorer counts it (the coverage filter), and our fused
//!   tracks predicted to that time, as the scorer sees them, each with whether the scorer keeps it
//!   (a track within the gate of an uncounted truth is neither right nor wrong).
//! - `summary.json`: the log, the scoring rules, the counts and our own metrics from the same run.
//!
//! The selection comes from [`crate::scoring::frame_selection`] and the metrics from the
//! [`Scorer`] fed with the same frames, so the files hold what `rsu-lab replay validate` scores.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nalgebra::Isometry3;
use rsu_fusion::calibration::heading_through;
use rsu_fusion::{Detections, Ingest, LidarDetection, ObjectClass, ObjectKinematics, SiteConfig};
use serde::Serialize;

use crate::pipeline::{PipelineError, ReplayConfig, ReplayEvent, replay_with, site_for};
use crate::reader::{OpenOptions, ReplayBody, ReplayReader};
use crate::scoring::{Metrics, Scorer, ScoringConfig, frame_selection, gate_for, match_family_name};
use crate::validate::{Coverage, fill_truth_objects, hypotheses};

/// Version of the exported files' layout.
pub const EXPORT_VERSION: u32 = 1;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The log could not be replayed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// An output file could not be written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// A lidar detection in the site frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteDetection {
    /// Box centre east, north, up [m].
    pub x_m: f64,
    /// North [m].
    pub y_m: f64,
    /// Up [m].
    pub z_m: f64,
    /// Heading, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Box length [m].
    pub length_m: f64,
    /// Box width [m].
    pub width_m: f64,
    /// Box height [m].
    pub height_m: f64,
    /// Detected class.
    pub class: ObjectClass,
    /// The family it is matched within (`vehicle`, `vru`, `static`).
    pub family: &'static str,
    /// Detector confidence, 0..1.
    pub score: f64,
}

/// `d` mapped into the site frame by `world_from_lidar`: the centre transformed, the heading
/// turned by the rotation (the direction of the box's x axis in the site frame).
pub fn site_detection(world_from_lidar: &Isometry3<f64>, d: &LidarDetection) -> SiteDetection {
    let c = world_from_lidar * d.center_in_sensor;
    SiteDetection {
        x_m: c.x,
        y_m: c.y,
        z_m: c.z,
        yaw_rad: heading_through(&world_from_lidar.rotation, d.yaw_rad),
        length_m: d.size.length_m,
        width_m: d.size.width_m,
        height_m: d.size.height_m,
        class: d.class,
        family: match_family_name(d.class),
        score: d.score,
    }
}

/// One line of `detections.jsonl`.
#[derive(Serialize)]
struct DetectionLine<'a> {
    /// Capture time [UTC ns].
    t_ns: i64,
    sensor: &'a str,
    sequence: u64,
    detections: Vec<SiteDetection>,
}

/// A truth object of `scoring.jsonl`.
#[derive(Serialize)]
struct TruthLine {
    id: u32,
    class: ObjectClass,
    family: &'static str,
    /// [m]
    x_m: f64,
    /// [m]
    y_m: f64,
    /// The match gate of its family [m].
    gate_m: f64,
    /// Counted by the scorer (in coverage).
    scored: bool,
}

/// A fused track of `scoring.jsonl`.
#[derive(Serialize)]
struct TrackLine {
    id: u32,
    class: ObjectClass,
    family: &'static str,
    /// [m]
    x_m: f64,
    /// [m]
    y_m: f64,
    /// Counted by the scorer (not within the gate of an uncounted truth).
    kept: bool,
}

/// One line of `scoring.jsonl`.
#[derive(Serialize)]
struct ScoringLine {
    /// Ground-truth time [UTC ns].
    t_ns: i64,
    truths: Vec<TruthLine>,
    tracks: Vec<TrackLine>,
}

/// Counts of an export, and our metrics from the same run (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportSummary {
    /// Layout version.
    pub export_version: u32,
    /// The log.
    pub log: String,
    /// Its scenario.
    pub scenario: String,
    /// The scoring rules (gates).
    pub scoring: ScoringConfig,
    /// Lidar detections below this score are ignored by our fusion.
    pub lidar_min_score: f64,
    /// Lidar frames written (accepted by the fusion core).
    pub lidar_frames: u64,
    /// Lidar frames the fusion core refused (not written).
    pub lidar_frames_refused: u64,
    /// Detections written.
    pub detections: u64,
    /// Ground-truth timestamps written.
    pub truth_frames: u64,
    /// Truth instances counted by the scorer.
    pub scored_truths: u64,
    /// Truth instances outside coverage.
    pub unscored_truths: u64,
    /// Track instances counted by the scorer.
    pub kept_tracks: u64,
    /// Track instances within the gate of an uncounted truth.
    pub dropped_tracks: u64,
    /// Distinct lidar capture times written (the peers' update ticks).
    pub lidar_ticks: u64,
    /// Wall time of the replay itself: reading and decoding the log, our fusion and its polls at
    /// broadcast ticks and truth times, without this export's own work (writing, scoring) [s].
    /// The only clock-dependent figure here.
    pub replay_wall_s: f64,
    /// Our metrics, scored from the same frames.
    pub metrics: Metrics,
}

fn create(path: PathBuf) -> Result<(BufWriter<File>, PathBuf), ExportError> {
    match File::create(&path) {
        Ok(f) => Ok((BufWriter::new(f), path)),
        Err(cause) => Err(ExportError::Io { path, cause }),
    }
}

fn write_json<T: Serialize>(out: &mut BufWriter<File>, path: &Path, value: &T) -> Result<(), ExportError> {
    let io = |cause: std::io::Error| ExportError::Io { path: path.to_path_buf(), cause };
    serde_json::to_writer(&mut *out, value).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)
}

/// Replays `log` with `config` and writes `detections.jsonl`, `scoring.jsonl` and `summary.json`
/// into `out_dir` (created if missing), scoring under `scoring`.
pub fn export_log(
    log: &Path,
    scoring: &ScoringConfig,
    config: &ReplayConfig,
    out_dir: &Path,
) -> Result<ExportSummary, ExportError> {
    std::fs::create_dir_all(out_dir).map_err(|cause| ExportError::Io { path: out_dir.to_path_buf(), cause })?;
    let reader = ReplayReader::open_with(log, OpenOptions::default()).map_err(PipelineError::from)?;
    let meta = reader.meta().clone();
    // Detections are mapped as the fusion maps them (the replay's calibration); coverage is
    // judged on the log's site, as the validation judges it.
    let fused_site: SiteConfig = site_for(&meta, config)?;
    let coverage_site = meta.site.clone();
    let mut coverage = Coverage::new(&coverage_site);
    let mut truths = Vec::new();
    let (mut detections_out, detections_path) = create(out_dir.join("detections.jsonl"))?;
    let (mut scoring_out, scoring_path) = create(out_dir.join("scoring.jsonl"))?;
    let mut scorer = Scorer::new(scoring.clone());
    let mut summary = ExportSummary {
        export_version: EXPORT_VERSION,
        log: log.display().to_string(),
        scenario: meta.scenario.clone(),
        scoring: scoring.clone(),
        lidar_min_score: config.fusion.lidar_min_score,
        lidar_frames: 0,
        lidar_frames_refused: 0,
        detections: 0,
        truth_frames: 0,
        scored_truths: 0,
        unscored_truths: 0,
        kept_tracks: 0,
        dropped_tracks: 0,
        lidar_ticks: 0,
        replay_wall_s: 0.0,
        metrics: Scorer::new(scoring.clone()).finish(),
    };
    let mut last_capture_ns: Option<i64> = None;
    let started = Instant::now();
    let mut own_work = Duration::ZERO;
    let mut handle = |event: ReplayEvent<'_, (), ObjectKinematics>| -> Result<(), ExportError> {
        match event {
            ReplayEvent::Input { message, ingest } => {
                let ReplayBody::Sensor(frame) = &message.body else { return Ok(()) };
                coverage.heard(&frame.sensor_id);
                let Detections::Lidar(dets) = &frame.detections else { return Ok(()) };
                let calib = fused_site.sensor(&frame.sensor_id);
                let (Some(Ingest::Accepted), Some(calib)) = (ingest, calib) else {
                    summary.lidar_frames_refused += 1;
                    return Ok(());
                };
                let line = DetectionLine {
                    t_ns: frame.capture_time.as_nanos(),
                    sensor: &frame.sensor_id,
                    sequence: frame.sequence,
                    detections: dets.iter().map(|d| site_detection(&calib.world_from_sensor, d)).collect(),
                };
                summary.lidar_frames += 1;
                if last_capture_ns != Some(line.t_ns) {
                    summary.lidar_ticks += 1;
                    last_capture_ns = Some(line.t_ns);
                }
                summary.detections += line.detections.len() as u64;
                write_json(&mut detections_out, &detections_path, &line)
            }
            ReplayEvent::Truth { truth, objects } => {
                fill_truth_objects(truth, &coverage, &mut truths);
                let hyps = hypotheses(objects);
                let selection = frame_selection(scoring, &truths, &hyps);
                scorer.add_frame(truth.time, &truths, &hyps);
                let line = ScoringLine {
                    t_ns: truth.time.as_nanos(),
                    truths: truths
                        .iter()
                        .zip(&selection.scored)
                        .map(|(t, &scored)| TruthLine {
                            id: t.id,
                            class: t.class,
                            family: match_family_name(t.class),
                            x_m: t.position_m[0],
                            y_m: t.position_m[1],
                            gate_m: gate_for(scoring, t.class),
                            scored,
                        })
                        .collect(),
                    tracks: hyps
                        .iter()
                        .zip(&selection.kept)
                        .map(|(h, &kept)| TrackLine {
                            id: h.id,
                            class: h.class,
                            family: match_family_name(h.class),
                            x_m: h.position_m[0],
                            y_m: h.position_m[1],
                            kept,
                        })
                        .collect(),
                };
                summary.truth_frames += 1;
                let scored = selection.scored.iter().filter(|s| **s).count() as u64;
                summary.scored_truths += scored;
                summary.unscored_truths += truths.len() as u64 - scored;
                let kept = selection.kept.iter().filter(|k| **k).count() as u64;
                summary.kept_tracks += kept;
                summary.dropped_tracks += hyps.len() as u64 - kept;
                write_json(&mut scoring_out, &scoring_path, &line)
            }
            ReplayEvent::Broadcast { .. } => Ok(()),
        }
    };
    replay_with::<_, ObjectKinematics, _>(
        reader,
        config,
        |_, _, _| (),
        |event| {
            let handler_started = Instant::now();
            let result = handle(event);
            own_work += handler_started.elapsed();
            result
        },
    )?;
    summary.replay_wall_s = started.elapsed().saturating_sub(own_work).as_secs_f64();
    for (out, path) in [(&mut detections_out, &detections_path), (&mut scoring_out, &scoring_path)] {
        out.flush().map_err(|cause| ExportError::Io { path: path.clone(), cause })?;
    }
    summary.metrics = scorer.finish();
    let summary_path = out_dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| ExportError::Io { path: summary_path.clone(), cause: e.into() })?;
    std::fs::write(&summary_path, text).map_err(|cause| ExportError::Io { path: summary_path, cause })?;
    Ok(summary)
}
