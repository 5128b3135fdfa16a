//! Line-of-sight tests for one sensor position against every occluder (actors, parked vehicles,
//! buildings), with an azimuth-binned index so a crowded intersection stays cheap.

use std::f64::consts::{PI, TAU};

use nalgebra::{Point2, Point3, Vector2};

use crate::world::ActorTruth;
use rsu_site::geometry::Prism;

/// Azimuth bins of the index.
const BINS: usize = 720;

/// Occluders seen from one sensor position, binned by azimuth.
pub struct OcclusionIndex<'a> {
    eye: Point3<f64>,
    occluders: &'a [Prism],
    /// The observing actor (a driver's own vehicle), never its own occluder.
    observer: Option<u32>,
    /// Per bin: (occluder index, nearest horizontal distance from the eye [m]).
    bins: Vec<Vec<(usize, f64)>>,
}

fn bin_of(azimuth_rad: f64) -> usize {
    (((azimuth_rad + PI) / TAU * BINS as f64).floor() as usize).min(BINS - 1)
}

impl<'a> OcclusionIndex<'a> {
    /// Indexes `occluders` as seen from `eye` [m], site frame.
    pub fn new(eye: Point3<f64>, occluders: &'a [Prism]) -> Self {
        let mut bins = vec![Vec::new(); BINS];
        let eye2 = Point2::new(eye.x, eye.y);
        for (i, o) in occluders.iter().enumerate() {
            let centre = o.polygon.iter().fold(Vector2::zeros(), |acc, p| acc + p.coords) / o.polygon.len() as f64;
            let to_centre = centre - eye2.coords;
            let az_c = to_centre.y.atan2(to_centre.x);
            let (mut lo, mut hi, mut near) = (0.0_f64, 0.0_f64, f64::INFINITY);
            for p in &o.polygon {
                let v = p - eye2;
                let d = rsu_site::geometry::wrap_angle(v.y.atan2(v.x) - az_c);
                lo = lo.min(d);
                hi = hi.max(d);
                near = near.min(v.norm());
            }
            let inside = rsu_site::model::Area { id: String::new(), polygon: o.polygon.clone(), signal_id: None }
                .contains(&eye2);
            if inside || hi - lo >= PI {
                bins.iter_mut().for_each(|b| b.push((i, 0.0)));
                continue;
            }
            let (first, last) =
                (bin_of(rsu_site::geometry::wrap_angle(az_c + lo)), bin_of(rsu_site::geometry::wrap_angle(az_c + hi)));
            let mut b = first;
            loop {
                bins[b].push((i, near));
                if b == last {
                    break;
                }
                b = (b + 1) % BINS;
            }
        }
        OcclusionIndex { eye, occluders, observer: None, bins }
    }

    /// The same index seen from inside actor `observer`, whose own box never blocks.
    pub fn from_actor(mut self, observer: u32) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Whether the line of sight to `target` is blocked by an occluder other than actor `skip`.
    pub fn blocked(&self, target: &Point3<f64>, skip: Option<u32>) -> bool {
        let v = Vector2::new(target.x - self.eye.x, target.y - self.eye.y);
        let dist = v.norm();
        self.bins[bin_of(v.y.atan2(v.x))].iter().any(|&(i, near)| {
            let o = &self.occluders[i];
            near < dist
                && (o.actor_id.is_none() || (o.actor_id != skip && o.actor_id != self.observer))
                && o.blocks(&self.eye, target)
        })
    }

    /// Fraction of an actor's sample points (box centre, the four footprint corners pulled in by
    /// 10 %, at mid height, and the roof centre) in line of sight, 0..1.
    pub fn visible_fraction(&self, actor: &ActorTruth) -> f64 {
        let samples = sample_points(actor);
        let visible = samples.iter().filter(|p| !self.blocked(p, Some(actor.id))).count();
        visible as f64 / samples.len() as f64
    }
}

/// Whether the line of sight from `eye` to `target` is blocked by any occluder except those of
/// actors `skip` (the observer and the target). Checks every occluder (each with a quick bounding
/// box reject): cheaper than building an [`OcclusionIndex`] for a handful of rays.
pub fn line_blocked(eye: &Point3<f64>, target: &Point3<f64>, occluders: &[Prism], skip: [Option<u32>; 2]) -> bool {
    occluders.iter().any(|o| (o.actor_id.is_none() || !skip.contains(&o.actor_id)) && o.blocks(eye, target))
}

/// The points of an actor whose visibility is tested.
pub fn sample_points(actor: &ActorTruth) -> [Point3<f64>; 6] {
    let mut fp = actor.footprint();
    fp.length_m *= 0.8;
    fp.width_m *= 0.8;
    let c = fp.corners();
    let z = actor.center.z;
    let top = actor.center.z + 0.45 * actor.size.height_m;
    [
        actor.center,
        Point3::new(c[0].x, c[0].y, z),
        Point3::new(c[1].x, c[1].y, z),
        Point3::new(c[2].x, c[2].y, z),
        Point3::new(c[3].x, c[3].y, z),
        Point3::new(actor.center.x, actor.center.y, top),
    ]
}
