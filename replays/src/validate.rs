//! Validation of one log: replay it through the fusion core, score the fused objects against the
//! ground truth at every truth timestamp, evaluate the criteria, and gather what the reports need.

use std::cmp::Ordering;
use std::path::Path;

use nalgebra::Point3;
use rsu_fusion::spatial::SpatialGrid;
use rsu_fusion::{ObjectKinematics, SensorCalibration, SensorCoverage, SiteConfig};
use v2x_proto::domain::{GroundTruthFrame, GroundTruthObject};

use crate::criteria::{Check, Criteria, ScenarioFacts, evaluate, needs_truth};
use crate::ids::IdMap;
use crate::pipeline::{PipelineError, ReplayConfig, ReplayEvent, replay_with};
use crate::reader::{OpenOptions, ReadMode, ReplayBody, ReplayReader};
use crate::report::{Distribution, LogReport, PlotData, REPORT_VERSION};
use crate::scoring::distance::compare_hypot;
use crate::scoring::{Hypothesis, Scorer, TruthObject};

/// Most points kept per trajectory in the plots (older points are thinned).
const MAX_PLOT_POINTS: usize = 400;

/// Ground-truth objects of a frame as the scorer sees them: ground-plane centre, velocity from
/// speed and heading, and whether any sensor of `site` covers the object (every calibrated
/// sensor, heard or not: see [`Coverage`] for the rule the log tools apply).
pub fn truth_objects(truth: &GroundTruthFrame, site: &SiteConfig) -> Vec<TruthObject> {
    let mut out = Vec::new();
    fill_truth_objects(truth, &Coverage::all(site), &mut out);
    out
}

/// The ground the scorer counts as covered: each sensor's range and field of view (no occlusion
/// test) from its first frame in the log on. A sensor never heard from covers nothing: the
/// lidars of a camera-only night log are in the site's calibration but send nothing all run,
/// and no tracker can see what only they would have. One that goes silent later keeps its
/// coverage, so what only it saw counts as missed while it is out.
pub struct Coverage<'a> {
    sensors: Vec<(&'a str, SensorCoverage<'a>)>,
    heard: Vec<bool>,
}

impl<'a> Coverage<'a> {
    /// The sensors of `site`, none heard yet.
    pub fn new(site: &'a SiteConfig) -> Self {
        let sensors: Vec<_> = site.sensors.iter().map(|s| (s.id.as_str(), SensorCalibration::coverage(s))).collect();
        Coverage { heard: vec![false; sensors.len()], sensors }
    }

    /// Every sensor of `site`, as if heard (for scoring without the sensor stream).
    pub fn all(site: &'a SiteConfig) -> Self {
        let mut coverage = Coverage::new(site);
        coverage.heard.fill(true);
        coverage
    }

    /// Notes a frame from `sensor_id` (ids not in the site are ignored).
    pub fn heard(&mut self, sensor_id: &str) {
        if let Some(i) = self.sensors.iter().position(|(id, _)| *id == sensor_id) {
            self.heard[i] = true;
        }
    }

    /// Whether a site-frame point [m] is covered by a sensor heard so far.
    pub fn covers(&self, p: &Point3<f64>) -> bool {
        self.sensors.iter().zip(&self.heard).any(|((_, s), heard)| *heard && s.covers(p))
    }
}

/// [`truth_objects`] into `out` (cleared first), with `coverage` deciding what is scored.
pub(crate) fn fill_truth_objects(truth: &GroundTruthFrame, coverage: &Coverage<'_>, out: &mut Vec<TruthObject>) {
    out.clear();
    out.extend(truth.objects.iter().map(|o| truth_object(o, coverage.covers(&o.center_m))));
}

/// A ground-truth object as the scorer sees it: ground-plane centre, velocity from speed and
/// heading, and whether it is scored (`in_coverage`).
pub(crate) fn truth_object(o: &GroundTruthObject, in_coverage: bool) -> TruthObject {
    TruthObject {
        id: o.id,
        class: o.class,
        position_m: [o.center_m.x, o.center_m.y],
        velocity_mps: [o.speed_mps * o.yaw_rad.cos(), o.speed_mps * o.yaw_rad.sin()],
        yaw_rad: o.yaw_rad,
        in_coverage,
    }
}

/// Fused objects as the scorer sees them.
pub fn hypotheses(objects: &[ObjectKinematics]) -> Vec<Hypothesis> {
    objects
        .iter()
        .map(|o| Hypothesis {
            id: o.id,
            class: o.class,
            position_m: [o.position_m.x, o.position_m.y],
            velocity_mps: [o.velocity_mps.x, o.velocity_mps.y],
            yaw_rad: o.yaw_rad,
        })
        .collect()
}

/// Distance under which a new plot point is dropped as a repeat of the last one [m].
const PLOT_STEP_M: f64 = 0.5;

fn push_thinned(points: &mut Vec<[f64; 2]>, p: [f64; 2]) {
    if let Some(last) = points.last()
        && compare_hypot(last[0] - p[0], last[1] - p[1], PLOT_STEP_M) == Some(Ordering::Less)
    {
        return;
    }
    points.push(p);
    if points.len() > MAX_PLOT_POINTS {
        // Keep every other point: the shape survives, memory stays bounded.
        let kept: Vec<[f64; 2]> = points.iter().step_by(2).copied().collect();
        *points = kept;
    }
}

/// How a log is validated.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidateOptions {
    /// Also score the recorded live broadcast ([`validate_live`]).
    pub live: bool,
    /// [`ReadMode::Recover`]: validate what is intact before any damage (a crashed recording),
    /// and name the damage in the report (`replay.damage`) instead of failing to read the log.
    pub mode: ReadMode,
}

/// Replays and scores one log. `wall_time_s` and `speedup` of the report are left at 0 for the
/// caller, which owns the clock.
pub fn validate_log(
    path: &Path,
    criteria: &Criteria,
    config: &ReplayConfig,
) -> Result<(LogReport, PlotData), PipelineError> {
    validate(path, criteria, config, ValidateOptions::default())
}

/// [`validate_log`] and then the live scores of the log ([`crate::live`]): the report's `live`
/// section, and its verdict also requires the broadcast as sent to pass, when the log holds one.
pub fn validate_live(
    path: &Path,
    criteria: &Criteria,
    config: &ReplayConfig,
) -> Result<(LogReport, PlotData), PipelineError> {
    validate(path, criteria, config, ValidateOptions { live: true, ..Default::default() })
}

/// [`validate_log`] or [`validate_live`] as `options` say, reading the log in their mode.
///
/// A log without ground truth (a daemon's own recording) is scored on what needs none: the
/// broadcast age limit, when the criteria set one, and `log.inputs_accepted` (the fusion core
/// accepted some of its inputs); every other check is not applicable, passed as not checked
/// and saying so ([`Check::without_truth`]).
pub fn validate(
    path: &Path,
    criteria: &Criteria,
    config: &ReplayConfig,
    options: ValidateOptions,
) -> Result<(LogReport, PlotData), PipelineError> {
    let (mut report, plot, facts) = validate_log_facts(path, criteria, config, options.mode)?;
    if options.live {
        let mut live = crate::live::score_live_with(path, criteria, &facts, options.mode)?;
        // Judged: the broadcast as sent, and as received by whoever subscribed to everything.
        let judged = live.as_sent.iter_mut().chain(live.as_received.values_mut().filter(|r| !r.checks.is_empty()));
        for score in judged {
            if report.replay.truth_frames == 0 {
                score.checks =
                    score.checks.drain(..).map(|c| if needs_truth(&c.name) { c.without_truth() } else { c }).collect();
                score.passed = score.checks.iter().all(|c| c.passed);
            }
            report.passed &= score.passed;
        }
        report.live = Some(live);
    }
    Ok((report, plot))
}

/// The check of a log without ground truth that its inputs were taken: at least one sensor
/// frame or vehicle state accepted by the fusion core.
fn inputs_check(summary: &crate::pipeline::ReplaySummary) -> Check {
    let inputs = summary.sensor_frames + summary.vehicle_states;
    let refused: u64 = summary.refused.values().sum();
    let accepted = inputs.saturating_sub(refused);
    let reasons = if summary.refused.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = summary.refused.iter().map(|(r, n)| format!("{r} {n}")).collect();
        format!(" (refused: {})", list.join(", "))
    };
    Check {
        name: "log.inputs_accepted".into(),
        passed: accepted > 0,
        value: accepted as f64,
        limit: 1.0,
        message: format!(
            "{accepted} of {inputs} inputs (sensor frames and vehicle states) accepted by the fusion core{reasons}"
        ),
    }
}

/// [`validate_log`] with the scenario facts gathered from the truth.
fn validate_log_facts(
    path: &Path,
    criteria: &Criteria,
    config: &ReplayConfig,
    mode: ReadMode,
) -> Result<(LogReport, PlotData, ScenarioFacts), PipelineError> {
    let reader = ReplayReader::open_with(path, OpenOptions { mode, ..Default::default() })?;
    let meta = reader.meta().clone();
    let site = meta.site.clone();
    let mut scorer = Scorer::new(criteria.scoring.clone()).with_truth_ids_per_frame(meta.truth_ids_per_frame);
    let mut plot = PlotData {
        sensors: site.sensors.iter().map(|s| (s.id.clone(), [s.position().x, s.position().y])).collect(),
        ..Default::default()
    };
    let mut facts = ScenarioFacts::default();
    let mut first_truth_ns: Option<i64> = None;
    // By object id, for the plots and the facts (ordered maps once the replay is over).
    let mut first_in_coverage_ns: IdMap<Option<i64>> = IdMap::default();
    let mut truth_tracks: IdMap<Vec<[f64; 2]>> = IdMap::default();
    let mut fused_tracks: IdMap<Vec<[f64; 2]>> = IdMap::default();
    // The grid of each frame's hypotheses, rebuilt in place frame after frame.
    let mut grid = SpatialGrid::new(criteria.scoring.largest_gate_m());
    // Per truth of a frame, the distance [m] to the nearest hypothesis within the vehicle gate.
    let mut nearest_m: Vec<Option<f64>> = Vec::new();
    // Each frame's truths as the scorer sees them, filled in place.
    let mut coverage = Coverage::new(&site);
    let mut truths: Vec<TruthObject> = Vec::new();
    // Per broadcast tick, its time [ns] and how many ages had been collected after it; and the
    // newest input's time [ns]. Ticks after the last input are the replay running on past the
    // recording's inputs (a live recording goes on until its daemon stops), where every track
    // coasts: not the system's broadcast, so not counted.
    let mut tick_ends: Vec<(i64, usize)> = Vec::new();
    let mut last_input_ns = i64::MIN;

    // Of each broadcast only its time is needed: no roadside frame is built. Only the objects'
    // kinematics are polled.
    let summary = replay_with::<_, ObjectKinematics, _>(
        reader,
        config,
        |_, at, _| at,
        |event| -> Result<(), std::convert::Infallible> {
            match event {
                ReplayEvent::Truth { truth, objects } => {
                    let t_ns = truth.time.as_nanos();
                    let start = *first_truth_ns.get_or_insert(t_ns);
                    fill_truth_objects(truth, &coverage, &mut truths);
                    let hyps = hypotheses(objects);
                    // One grid of the hypotheses for the scorer and for the plots' nearest errors.
                    grid.rebuild(hyps.iter().map(|h| (h.position_m[0], h.position_m[1])));
                    // The scorer's grid queries also find each scored truth's nearest hypothesis of any
                    // class within the vehicle gate, for the plots.
                    let gate_m = criteria.scoring.gate_vehicle_m;
                    // Over every hypothesis within the gate, in any order, the smallest distance.
                    nearest_m.clear();
                    nearest_m.resize(truths.len(), None);
                    scorer.add_frame_indexed(truth.time, &truths, &hyps, &grid, gate_m, |ti, d| {
                        if nearest_m[ti].is_none_or(|n| d < n) {
                            nearest_m[ti] = Some(d);
                        }
                    });
                    // Plot data and scenario facts.
                    let mut err_sum = 0.0;
                    let mut err_n = 0usize;
                    for (t, nearest_m) in truths.iter().zip(&nearest_m) {
                        if t.in_coverage {
                            first_in_coverage_ns.entry(t.id).get_or_insert(t_ns);
                            push_thinned(truth_tracks.entry(t.id), t.position_m);
                            // Error of the nearest hypothesis of any class, when within the vehicle gate.
                            if let Some(d) = nearest_m {
                                err_sum += d;
                                err_n += 1;
                            }
                        }
                    }
                    for o in &truth.objects {
                        if let Some(v2x) = &o.v2x_id {
                            let point = (t_ns, o.center_m.x, o.center_m.y);
                            match facts.ego_tracks.get_mut(v2x) {
                                Some(track) => track.push(point),
                                None => {
                                    facts.ego_tracks.insert(v2x.clone(), vec![point]);
                                }
                            }
                        }
                    }
                    if err_n > 0 {
                        plot.error_over_time.push(((t_ns - start) as f64 * 1e-9, err_sum / err_n as f64));
                    }
                    for h in &hyps {
                        push_thinned(fused_tracks.entry(h.id), h.position_m);
                    }
                }
                ReplayEvent::Broadcast { frame: at, objects } => {
                    for o in objects {
                        plot.ages_s.push(at.secs_since(o.last_update).max(0.0));
                    }
                    tick_ends.push((at.as_nanos(), plot.ages_s.len()));
                }
                ReplayEvent::Input { message, ingest } => {
                    if let ReplayBody::Sensor(frame) = &message.body {
                        coverage.heard(&frame.sensor_id);
                    }
                    if ingest.is_some() {
                        last_input_ns = last_input_ns.max(message.log_time.as_nanos());
                    }
                }
            }
            Ok(())
        },
    )?;
    facts.first_in_coverage_ns =
        first_in_coverage_ns.into_sorted().filter_map(|(id, t_ns)| Some((id, t_ns?))).collect();
    plot.truth_tracks = truth_tracks.into_sorted().collect();
    plot.fused_tracks = fused_tracks.into_sorted().collect();

    let counted = tick_ends.iter().take_while(|(t, _)| *t <= last_input_ns).last().map_or(0, |(_, end)| *end);
    plot.ages_s.truncate(counted);
    let ages = Distribution::of(&plot.ages_s);
    facts.broadcast_age_p99_s = (ages.count > 0).then_some(ages.p99);
    let metrics = scorer.finish();
    let mut checks = evaluate(criteria, &metrics, &facts);
    if summary.truth_frames == 0 {
        checks = checks.into_iter().map(|c| if needs_truth(&c.name) { c.without_truth() } else { c }).collect();
        checks.push(inputs_check(&summary));
    }
    let passed = checks.iter().all(|c| c.passed);
    let report = LogReport {
        report_version: REPORT_VERSION,
        file: path.display().to_string(),
        scenario: meta.scenario,
        seed: meta.seed,
        passed,
        criteria: None,
        checks,
        metrics,
        broadcast_age_s: ages,
        live: None,
        replay: summary,
        wall_time_s: 0.0,
        speedup: 0.0,
    };
    Ok((report, plot, facts))
}

#[cfg(test)]
mod coverage_tests {
    use std::path::Path;

    use nalgebra::Point3;
    use rsu_fusion::SensorModel;

    use super::Coverage;
    use crate::reader::ReplayReader;

    /// Ground points over the site's sensors' reach, every 5 m.
    fn grid() -> Vec<Point3<f64>> {
        let steps = -40..=40;
        steps
            .clone()
            .flat_map(|i| steps.clone().map(move |j| Point3::new(5.0 * f64::from(i), 5.0 * f64::from(j), 0.0)))
            .collect()
    }

    #[test]
    fn only_sensors_heard_from_count_as_coverage() {
        let log = Path::new(env!("CARGO_MANIFEST_DIR")).join("logs/camera-night.mcap");
        let site = ReplayReader::open(&log).expect("log").meta().site.clone();
        let points = grid();
        let all = Coverage::all(&site);
        let mut coverage = Coverage::new(&site);
        assert!(points.iter().all(|p| !coverage.covers(p)), "nothing is covered before any frame");
        coverage.heard("no-such-sensor");
        assert!(points.iter().all(|p| !coverage.covers(p)), "an unknown sensor covers nothing");
        let cameras: Vec<_> = site.sensors.iter().filter(|s| matches!(s.model, SensorModel::Camera(_))).collect();
        assert!(!cameras.is_empty() && cameras.len() < site.sensors.len());
        for camera in &cameras {
            coverage.heard(&camera.id);
        }
        // With only the cameras heard, exactly the cameras' ground is covered, and the lidars'
        // own ground (covered when every sensor counts) is not.
        for p in &points {
            assert_eq!(coverage.covers(p), cameras.iter().any(|c| c.covers(p)), "{p}");
        }
        let lidar_only = points.iter().filter(|p| all.covers(p) && !coverage.covers(p)).count();
        assert!(lidar_only > 100, "{lidar_only} points only the lidars cover");
        for sensor in &site.sensors {
            coverage.heard(&sensor.id);
        }
        assert!(points.iter().all(|p| coverage.covers(p) == all.covers(p)), "every sensor heard: all of it");
    }
}
