//! The V2X update: a connected vehicle's self-report (WGS84 position, heading, speed, accuracy
//! ellipse) as a measurement of the track it names, or of the nearest free track it gates with,
//! or as a new track. Kept apart from the sensor frames: a report is one identified object, so it
//! is linked to a track by the vehicle's id instead of being assigned. A report that fails the
//! plausibility checks (`misbehaviour`) is not fused.

use nalgebra::{Matrix2, Vector2};

use crate::class::{MotionFamily, ObjectClass, SourceSet};
use crate::measurement::VehicleState;
use crate::motion::{MotionState, wrap_angle};
use crate::time::Timestamp;
use crate::track::{ClassEvidence, V2xLink};

use super::Fusion;
use super::management::family_of;
use super::window::predict_track;

impl Fusion {
    pub(super) fn update_v2x(&mut self, t: Timestamp, state: &VehicleState) {
        let p3 = self.enu.enu_from_wgs84(&state.position);
        let yaw = wrap_angle(state.yaw_rad + self.enu.true_north_rotation_rad(&p3));
        let pos = Vector2::new(p3.x, p3.y);
        let min_s = self.config.v2x_min_position_sigma_m;
        let (a, b) = (state.accuracy.semi_major_m.max(min_s), state.accuracy.semi_minor_m.max(min_s));
        let (s, c) = state.accuracy.orientation_rad.sin_cos();
        let rot = Matrix2::new(c, -s, s, c);
        let r = rot * Matrix2::new(a * a, 0.0, 0.0, b * b) * rot.transpose();
        if !pos.iter().all(|v| v.is_finite()) || !r.iter().all(|v| v.is_finite()) {
            self.stats.numeric_failures += 1;
            return;
        }
        if !self.check_plausible(t, state, pos, &r, a) {
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
                    0,
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
        self.note_fused_report(&state.vehicle_id, ti, t);
    }
}
