//! Validation of one log: replay it through the fusion core, score the fused objects against the
//! ground truth at every truth timestamp, evaluate the criteria, and gather what the reports need.

use std::cmp::Ordering;
use std::path::Path;

use nalgebra::Point3;
use rsu_fusion::{ObjectKinematics, SensorCalibration, SensorModel, SiteConfig};
use v2x_proto::domain::GroundTruthFrame;

use crate::criteria::{Criteria, ScenarioFacts, evaluate};
use crate::ids::IdMap;
use crate::pipeline::{PipelineError, ReplayConfig, ReplayEvent, replay_with};
use crate::reader::{OpenOptions, ReplayReader};
use crate::report::{Distribution, LogReport, PlotData, REPORT_VERSION};
use crate::scoring::{Hypothesis, Scorer, TruthObject};
use crate::spatial::{GridIndex, compare_hypot};

/// Most points kept per trajectory in the plots (older points are thinned).
const MAX_PLOT_POINTS: usize = 400;

/// Relative margin of the range pre-check in [`truth_objects`]: far above the rounding by which
/// the sensor-frame range that `covers` measures can differ from the world distance.
const RANGE_CHECK_MARGIN: f64 = 1e-3;

/// The squared distance [m²] beyond which `sensor.covers` is certainly false. Its rotation is a
/// quaternion of norm s (1 up to the log reader's tolerance), which scales sensor-frame lengths
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

/// A sensor's coverage test with cheaper exact answers: certainly out of range from the world
/// distance, and for a lidar, most points from [`LidarCone`].
struct Coverage<'a> {
    sensor: &'a SensorCalibration,
    position_m: Point3<f64>,
    /// See [`certainly_out_of_range_m2`].
    out_of_range_m2: f64,
    cone: Option<LidarCone>,
}

impl<'a> Coverage<'a> {
    fn of(sensor: &'a SensorCalibration) -> Self {
        Coverage {
            sensor,
            position_m: sensor.position(),
            out_of_range_m2: certainly_out_of_range_m2(sensor),
            cone: LidarCone::of(sensor),
        }
    }

    /// Exactly `sensor.covers(p)` for a site-frame point `p` [m].
    fn covers(&self, p: &Point3<f64>) -> bool {
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

/// Ground-truth objects of a frame as the scorer sees them: ground-plane centre, velocity from
/// speed and heading, and whether any sensor covers the object.
pub fn truth_objects(truth: &GroundTruthFrame, site: &SiteConfig) -> Vec<TruthObject> {
    let sensors: Vec<Coverage<'_>> = site.sensors.iter().map(Coverage::of).collect();
    truth
        .objects
        .iter()
        .map(|o| {
            let p = Point3::new(o.center_m.x, o.center_m.y, o.center_m.z);
            TruthObject {
                id: o.id,
                class: o.class,
                position_m: [o.center_m.x, o.center_m.y],
                velocity_mps: [o.speed_mps * o.yaw_rad.cos(), o.speed_mps * o.yaw_rad.sin()],
                yaw_rad: o.yaw_rad,
                in_coverage: sensors.iter().any(|s| s.covers(&p)),
            }
        })
        .collect()
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

/// Keeps in `nearest_m` the distance [m] from `p` to `h` when that is at most `radius_m` and below
/// the distance kept: over every hypothesis within `radius_m`, in any order, the smallest `hypot`.
fn keep_nearer(nearest_m: &mut Option<f64>, h: &Hypothesis, p: [f64; 2], radius_m: f64) {
    let (dx, dy) = (h.position_m[0] - p[0], h.position_m[1] - p[1]);
    if compare_hypot(dx, dy, radius_m) != Some(Ordering::Greater) {
        let d = dx.hypot(dy);
        if d <= radius_m && nearest_m.is_none_or(|n| d < n) {
            *nearest_m = Some(d);
        }
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
    // By object id, for the plots and the facts (ordered maps once the replay is over).
    let mut first_in_coverage_ns: IdMap<Option<i64>> = IdMap::default();
    let mut truth_tracks: IdMap<Vec<[f64; 2]>> = IdMap::default();
    let mut fused_tracks: IdMap<Vec<[f64; 2]>> = IdMap::default();

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
                    let truths = truth_objects(truth, &site);
                    let hyps = hypotheses(objects);
                    // One grid of the hypotheses for the scorer and for the plots' nearest errors.
                    let index = GridIndex::new(hyps.iter().map(|h| h.position_m), criteria.scoring.largest_gate_m());
                    // The scorer's grid queries also find each scored truth's nearest hypothesis of any
                    // class within the vehicle gate, for the plots.
                    let gate_m = criteria.scoring.gate_vehicle_m;
                    let mut nearest_m: Vec<Option<f64>> = vec![None; truths.len()];
                    scorer.add_frame_indexed(truth.time, &truths, &hyps, &index, gate_m, |ti, hi| {
                        keep_nearer(&mut nearest_m[ti], &hyps[hi], truths[ti].position_m, gate_m);
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
                }
                ReplayEvent::Input { .. } => {}
            }
            Ok(())
        },
    )?;
    facts.first_in_coverage_ns =
        first_in_coverage_ns.into_sorted().filter_map(|(id, t_ns)| Some((id, t_ns?))).collect();
    plot.truth_tracks = truth_tracks.into_sorted().collect();
    plot.fused_tracks = fused_tracks.into_sorted().collect();

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

#[cfg(test)]
mod tests {
    use nalgebra::{Isometry3, Quaternion, Translation3, Unit, UnitQuaternion};
    use rsu_fusion::LidarNoise;

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
        let off_unit = Unit::new_unchecked(Quaternion::from(tilted.into_inner().coords * (1.0 + 3e-7)));
        let fovs = [(360.0, 40.0), (120.0, 30.0), (90.0, 180.0), (300.0, 10.0), (1.0, 1.0), (f64::NAN, 20.0)];
        let nudges = [0.0, 1e-13, -1e-13, 1e-9, -1e-9, 1e-6, -1e-6, 1e-3, -1e-3, 0.3, -0.3];
        let mut checked = 0;
        for rotation in [UnitQuaternion::identity(), tilted, off_unit] {
            for (hfov, vfov) in fovs {
                let sensor = lidar(hfov, vfov, rotation);
                let coverage = Coverage::of(&sensor);
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
}
