//! The lidar frame update: detections into the site frame, gating against the tracks in reach
//! (each track searching a grid of the frame's detections), assignment, EKF position-and-heading
//! updates, confirmation bookkeeping and spawning from unclaimed detections. One of the three
//! measurement paths, each in its own file: they share the pipeline's shape but not its geometry.

use nalgebra::{Matrix2, Point3, Vector2};

use crate::assignment::{Candidate, assign_into};
use crate::class::{BoxSize, MotionFamily, ObjectClass, SourceSet};
use crate::measurement::LidarDetection;
use crate::motion::{Guard, MotionState, nearest_branch, wrap_angle};
use crate::time::Timestamp;
use crate::track::{ClassEvidence, Track};

use super::management::{family_of, record_opportunity};
use super::{Fusion, Scratch, SensorKind, unmatched};

/// Cell size of the grid of lidar measurements [m]: a little above the gate radius of a settled
/// track, so a track's search touches one to four cells, and coarse enough for the grid's dense
/// layout over a whole site (3 and 4 m cells did slightly more work). No result depends on it:
/// pairs are found in any order and assigned by their indices.
pub(super) const MEAS_GRID_CELL_M: f64 = 5.0;

/// A lidar detection in the site frame.
#[derive(Clone, Debug)]
pub(super) struct LidarMeas {
    pos: Vector2<f64>,
    r: Matrix2<f64>,
    z_ground_m: f64,
    yaw_rad: f64,
    size: BoxSize,
    class: ObjectClass,
    score: f64,
}

impl LidarMeas {
    /// Whether the ground point `p` lies on the detection's box footprint.
    fn holds(&self, p: &Vector2<f64>) -> bool {
        let (sin_yaw, cos_yaw) = self.yaw_rad.sin_cos();
        let d = p - self.pos;
        let along_m = d.x * cos_yaw + d.y * sin_yaw;
        let across_m = -d.x * sin_yaw + d.y * cos_yaw;
        along_m.abs() <= 0.5 * self.size.length_m && across_m.abs() <= 0.5 * self.size.width_m
    }
}

impl Fusion {
    /// Whether an unclaimed detection shows part of objects already tracked rather than a new
    /// one: it lies on the box of a larger confirmed track (a bus or truck the detector cut in
    /// two), or its box holds the centres of two confirmed tracks (two objects it merged into one
    /// box). Such a detection spawns nothing; the tracks coast through it.
    fn part_of_tracked(&self, relevant: &[usize], m: &LidarMeas) -> bool {
        let mut centres_held = 0;
        for &ti in relevant {
            let track = &self.tracks[ti];
            if !track.confirmed {
                continue;
            }
            let p = track.motion.position();
            let d = p - m.pos;
            if d.norm_squared() > 400.0 {
                continue;
            }
            if track.size.length_m > m.size.length_m && track.box_holds(&m.pos, 0.0) {
                return true;
            }
            if m.holds(&p) {
                centres_held += 1;
                if centres_held >= 2 {
                    return true;
                }
            }
        }
        false
    }

    pub(super) fn update_lidar(&mut self, si: usize, t: Timestamp, dets: &[LidarDetection], sc: &mut Scratch) {
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
            let sigma_m = noise.position_sigma_at(d.center_in_sensor.coords.norm()) * self.config.lidar_sigma_factor;
            let fit_sigma_m = self.config.lidar_extent_sigma_frac * 0.5 * d.size.length_m.max(d.size.width_m);
            let var_m2 = sigma_m * sigma_m + fit_sigma_m * fit_sigma_m;
            meas.push(LidarMeas {
                pos: Vector2::new(c.x, c.y),
                r: Matrix2::new(var_m2, 0.0, 0.0, var_m2),
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
            track.note_hit_score(m.score);
            track.class_evidence.add(&[(m.class, m.score)], cfg.lidar_class_weight, cfg.class_evidence_decay);
            self.refresh_family(ti, m.yaw_rad);
            let track = &mut self.tracks[ti];
            let yaw = nearest_branch(m.yaw_rad, track.motion.yaw(track.yaw_hint_rad));
            let yaw_var_rad2 = self.config.lidar_yaw_sigma_rad.powi(2);
            let part = partial_view_offset(track, j, meas);
            let pos = m.pos - part.unwrap_or_else(Vector2::zeros);
            if !track.motion.update_position_yaw_with(&pos, &m.r, yaw, yaw_var_rad2, Guard::Deferred) {
                self.stats.numeric_failures += 1;
            }
            track.guard_due = true;
            let track = &mut self.tracks[ti];
            track.yaw_hint_rad = yaw;
            if part.is_none() {
                let max_width_m = match track.motion.family() {
                    MotionFamily::Vehicle => self.config.vehicle_max_width_m,
                    _ => f64::INFINITY,
                };
                track.smooth_size(&m.size, self.config.size_alpha, max_width_m);
            }
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
                self.stats.tracks_confirmed +=
                    u64::from(record_opportunity(track, matched[ti], &self.config, &self.clutter, t));
            }
        }
        // A detection no track took spawns a track unless it lies on the box of a track that took
        // another detection of this frame: then it is a second return of that object (a split
        // detection), not a new one. Merely lying in a track's gate is no reason: two
        // pedestrians side by side fall in each other's gates. Nor does one that shows part of
        // tracked objects (`part_of_tracked`).
        let margin_m = self.config.split_margin_m;
        gated.fill(false);
        for &(_, j) in pairs {
            gated[j] = true;
        }
        for c in candidates.iter() {
            if !gated[c.meas] && matched[c.track] && self.tracks[c.track].box_holds(&meas[c.meas].pos, margin_m) {
                gated[c.meas] = true;
            }
        }
        for (j, m) in meas.iter().enumerate() {
            if gated[j] || self.part_of_tracked(relevant, m) {
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
            let tag = u32::try_from(j).unwrap_or(u32::MAX);
            if let Some(ti) =
                self.spawn(t, motion, evidence, m.size, true, m.z_ground_m, m.yaw_rad, SourceSet::LIDAR, tag)
            {
                self.tracks[ti].mark_seen(si, t);
                self.tracks[ti].note_hit_score(m.score);
            }
        }
    }
}

/// When detection `j` of `meas` shows only part of a long tracked object (a bus or truck the
/// detector cut in two: a box under 70 % of the track's measured length of 7 m or more, with
/// another detection of the frame on the track's box), the offset from the object's centre to the
/// part's centre along its heading [m]: the part lies at the end of the box nearest to it. `None`
/// for a whole view, and for a box merely shortened because something hides part of the object
/// (no second part in the frame: where the hidden part is, is not known).
fn partial_view_offset(track: &Track, j: usize, meas: &[LidarMeas]) -> Option<Vector2<f64>> {
    let (m, length_m) = (&meas[j], track.size.length_m);
    if !track.size_measured || !track.is_long() || !track.part_length(m.size.length_m) {
        return None;
    }
    if !meas.iter().enumerate().any(|(k, other)| k != j && track.box_holds(&other.pos, 0.0)) {
        return None;
    }
    let (sin_yaw, cos_yaw) = track.motion.yaw(track.yaw_hint_rad).sin_cos();
    let heading = Vector2::new(cos_yaw, sin_yaw);
    let along_m = (m.pos - track.motion.position()).dot(&heading);
    Some(heading * (0.5 * (length_m - m.size.length_m)).copysign(along_m))
}
