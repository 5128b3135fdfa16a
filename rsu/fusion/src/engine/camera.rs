//! The camera frame update: boxes gated in the image against the tracks' projected boxes (each
//! track searching a grid of box bottom centres), assignment, EKF updates through the projection's
//! pixel Jacobian, confirmation bookkeeping and spawning from boxes back-projected onto the
//! ground. Kept apart from the lidar path: the gate lives in pixels, not metres, and spawning
//! needs the ground model.

use nalgebra::{Matrix2, Point2, Vector2};

use crate::assignment::{Candidate, assign_into};
use crate::class::{ObjectClass, SourceSet};
use crate::measurement::{CameraDetections, best_score};
use crate::motion::{Guard, MotionState, innovation_distance};
use crate::time::Timestamp;
use crate::track::ClassEvidence;

use super::management::{family_of, record_opportunity};
use super::{Fusion, Scratch, SensorKind, unmatched};

/// A valid camera box.
struct CameraMeas<'a> {
    bottom_px: Point2<f64>,
    /// Box-model part of `r` (per axis) [px²].
    model_var_px2: f64,
    r: Matrix2<f64>,
    scores: &'a [(ObjectClass, f64)],
    truncated: bool,
}

/// The farthest a camera box can lie from a track's projected bottom centre and still be
/// associated with it [px].
const MAX_CAMERA_GATE_PX: f64 = 400.0;

/// Cell size of the grid of camera boxes [px]: a track's search reads few cells and visits few
/// boxes outside its gate (16 to 64 px cells did more work). No result depends on it: the search
/// radius covers the whole gate, see [`MAX_CAMERA_GATE_PX`], and pairs are assigned by their
/// indices.
pub(super) const PIXEL_GRID_CELL_PX: f64 = 32.0;

impl Fusion {
    pub(super) fn update_camera(&mut self, si: usize, t: Timestamp, dets: &CameraDetections, sc: &mut Scratch) {
        let SensorKind::Camera { geometry, pixel_sigma_px } = &self.sensors[si].kind else { return };
        let geometry = geometry.as_ref().clone();
        let pixel_sigma_px = *pixel_sigma_px;
        let (w, h) = (f64::from(geometry.intrinsics().width_px), f64::from(geometry.intrinsics().height_px));
        let margin = self.config.camera_border_margin_px;
        let pixel_var_px2 = self.pixel_noise.variance_px2(si, pixel_sigma_px);
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
                model_var_px2: model_sigma.powi(2),
                r: Matrix2::identity() * (pixel_var_px2 + model_sigma.powi(2)),
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
            if track.confirmed {
                let jpj = proj.jacobian_px_per_m * track.motion.position_cov() * proj.jacobian_px_per_m.transpose();
                self.pixel_noise.observe(si, pixel_sigma_px, &y, &jpj, m.model_var_px2, cfg.camera_noise_learn_weight);
            }
            track.note_hit_score(m.scores.iter().map(|c| c.1).fold(0.0, f64::max));
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
                self.stats.tracks_confirmed +=
                    u64::from(record_opportunity(track, matched[ti], &self.config, &self.clutter, t));
            }
        }
        if !self.config.camera_spawns_tracks {
            return;
        }
        let ground = self.site.ground.clone();
        // The grid of tracks is built for the first box that may spawn (often none does), before
        // any spawn; tracks spawned by this frame are checked apart.
        let mut grid_built = false;
        // Ids of the tracks this frame spawned (a spawn may re-sort the track vector).
        let mut spawned: Vec<u32> = Vec::new();
        for (j, m) in meas.iter().enumerate() {
            if gated[j] || m.truncated {
                continue;
            }
            let Some((ground_pt, cov)) = geometry.back_project(&m.bottom_px, &ground, pixel_var_px2.sqrt()) else {
                continue;
            };
            let class = best_score(m.scores).0;
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
            let spawned_indices = spawned.iter().filter_map(|id| self.tracks.binary_search_by_key(id, |t| t.id).ok());
            let taken = near.iter().copied().chain(spawned_indices).any(|ti| {
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
            let tag = u32::try_from(j).unwrap_or(u32::MAX);
            if let Some(ti) = self.spawn(t, motion, evidence, size, false, ground_pt.z, yaw, SourceSet::CAMERA, tag) {
                self.tracks[ti].mark_seen(si, t);
                self.tracks[ti].note_hit_score(m.scores.iter().map(|c| c.1).fold(0.0, f64::max));
                if ti + 1 != self.tracks.len() {
                    // The vector was re-sorted (an id wrap, or a respawn after a rollback under
                    // an older id): the grid's indices are stale.
                    grid_built = false;
                }
                spawned.push(self.tracks[ti].id);
            }
        }
    }
}
