//! Validation of one log: replay it through the fusion core, score the fused objects against the
//! ground truth at every truth timestamp, evaluate the criteria, and gather what the reports need.

use std::path::Path;

use nalgebra::Point3;
use rsu_fusion::{FusedObject, SiteConfig};
use v2x_proto::domain::GroundTruthFrame;

use crate::criteria::{Criteria, ScenarioFacts, evaluate};
use crate::pipeline::{PipelineError, ReplayConfig, ReplayEvent, replay};
use crate::reader::{OpenOptions, ReplayReader};
use crate::report::{Distribution, LogReport, PlotData, REPORT_VERSION};
use crate::scoring::{Hypothesis, Scorer, TruthObject};

/// Most points kept per trajectory in the plots (older points are thinned).
const MAX_PLOT_POINTS: usize = 400;

/// Ground-truth objects of a frame as the scorer sees them: ground-plane centre, velocity from
/// speed and heading, and whether any sensor covers the object.
pub fn truth_objects(truth: &GroundTruthFrame, site: &SiteConfig) -> Vec<TruthObject> {
    truth
        .objects
        .iter()
        .map(|o| TruthObject {
            id: o.id,
            class: o.class,
            position_m: [o.center_m.x, o.center_m.y],
            velocity_mps: [o.speed_mps * o.yaw_rad.cos(), o.speed_mps * o.yaw_rad.sin()],
            yaw_rad: o.yaw_rad,
            in_coverage: site.sensors.iter().any(|s| s.covers(&Point3::new(o.center_m.x, o.center_m.y, o.center_m.z))),
        })
        .collect()
}

/// Fused objects as the scorer sees them.
pub fn hypotheses(objects: &[FusedObject]) -> Vec<Hypothesis> {
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

fn push_thinned(points: &mut Vec<[f64; 2]>, p: [f64; 2]) {
    if let Some(last) = points.last()
        && (last[0] - p[0]).hypot(last[1] - p[1]) < 0.5
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

/// Replays and scores one log. `wall_time_s` and `speedup` of the report are left at 0 for the
/// caller, which owns the clock.
pub fn validate_log(
    path: &Path,
    criteria: &Criteria,
    config: &ReplayConfig,
) -> Result<(LogReport, PlotData), PipelineError> {
    let reader = ReplayReader::open_with(path, OpenOptions::default())?;
    let meta = reader.meta().clone();
    let site = meta.site.clone();
    let mut scorer = Scorer::new(criteria.scoring.clone());
    let mut plot = PlotData {
        sensors: site.sensors.iter().map(|s| (s.id.clone(), [s.position().x, s.position().y])).collect(),
        ..Default::default()
    };
    let mut facts = ScenarioFacts::default();
    let mut first_truth_ns: Option<i64> = None;

    let summary = replay(reader, config, |event| -> Result<(), std::convert::Infallible> {
        match event {
            ReplayEvent::Truth { truth, objects } => {
                let t_ns = truth.time.as_nanos();
                let start = *first_truth_ns.get_or_insert(t_ns);
                let truths = truth_objects(truth, &site);
                let hyps = hypotheses(objects);
                scorer.add_frame(truth.time, &truths, &hyps);
                // Plot data and scenario facts.
                let mut err_sum = 0.0;
                let mut err_n = 0usize;
                for t in &truths {
                    if t.in_coverage {
                        facts.first_in_coverage_ns.entry(t.id).or_insert(t_ns);
                        push_thinned(plot.truth_tracks.entry(t.id).or_default(), t.position_m);
                        if let Some(h) = hyps.iter().min_by(|a, b| {
                            let da = (a.position_m[0] - t.position_m[0]).hypot(a.position_m[1] - t.position_m[1]);
                            let db = (b.position_m[0] - t.position_m[0]).hypot(b.position_m[1] - t.position_m[1]);
                            da.total_cmp(&db)
                        }) {
                            let d = (h.position_m[0] - t.position_m[0]).hypot(h.position_m[1] - t.position_m[1]);
                            if d <= criteria.scoring.gate_vehicle_m {
                                err_sum += d;
                                err_n += 1;
                            }
                        }
                    }
                }
                for o in &truth.objects {
                    if let Some(v2x) = &o.v2x_id {
                        facts.ego_tracks.entry(v2x.clone()).or_default().push((t_ns, o.center_m.x, o.center_m.y));
                    }
                }
                if err_n > 0 {
                    plot.error_over_time.push(((t_ns - start) as f64 * 1e-9, err_sum / err_n as f64));
                }
                for h in &hyps {
                    push_thinned(plot.fused_tracks.entry(h.id).or_default(), h.position_m);
                }
            }
            ReplayEvent::Broadcast { frame, objects } => {
                for o in objects {
                    plot.ages_s.push(frame.time.secs_since(o.last_update).max(0.0));
                }
            }
            ReplayEvent::Input { .. } => {}
        }
        Ok(())
    })?;

    let ages = Distribution::of(&plot.ages_s);
    facts.broadcast_age_p99_s = (ages.count > 0).then_some(ages.p99);
    let metrics = scorer.finish();
    let checks = evaluate(criteria, &metrics, &facts);
    let passed = checks.iter().all(|c| c.passed) && summary.truth_frames > 0;
    let mut checks = checks;
    if summary.truth_frames == 0 {
        checks.push(crate::criteria::Check {
            name: "log.ground_truth".into(),
            passed: false,
            value: 0.0,
            limit: 1.0,
            message: "the log has no /ground_truth messages, so nothing can be scored".into(),
        });
    }
    let report = LogReport {
        report_version: REPORT_VERSION,
        file: path.display().to_string(),
        scenario: meta.scenario,
        seed: meta.seed,
        passed,
        checks,
        metrics,
        broadcast_age_s: ages,
        replay: summary,
        wall_time_s: 0.0,
        speedup: 0.0,
    };
    Ok((report, plot))
}
