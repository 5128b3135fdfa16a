//! Plane geometry in the site frame: polylines with arc length (lanes, routes, walkways),
//! oriented boxes (actor footprints) and prisms (occluders) with the 2.5D line-of-sight test the
//! sensor models and drivers use.

use nalgebra::{Point2, Point3, Vector2};

/// Wraps an angle into (-pi, pi] [rad].
pub fn wrap_angle(a_rad: f64) -> f64 {
    let mut a = a_rad.rem_euclid(std::f64::consts::TAU);
    if a > std::f64::consts::PI {
        a -= std::f64::consts::TAU;
    }
    a
}

/// A polyline in the site plane with cumulative arc length; optionally closed (a loop).
#[derive(Clone, Debug, PartialEq)]
pub struct Polyline {
    points: Vec<Point2<f64>>,
    /// Arc length at each point [m]; for a closed loop one extra entry for the closing segment.
    cumulative_m: Vec<f64>,
    closed: bool,
}

/// A position and direction on a polyline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PathPose {
    /// Position [m], site frame.
    pub position: Point2<f64>,
    /// Direction of travel, counter-clockwise from east [rad].
    pub heading_rad: f64,
}

impl Polyline {
    /// A polyline through `points` (at least two, consecutive points distinct). A closed polyline
    /// joins the last point back to the first. `None` when the points do not make a path.
    pub fn new(points: Vec<Point2<f64>>, closed: bool) -> Option<Self> {
        let mut pts: Vec<Point2<f64>> = Vec::with_capacity(points.len());
        for p in points {
            if !p.x.is_finite() || !p.y.is_finite() {
                return None;
            }
            if pts.last().is_none_or(|q| (p - q).norm() > 1e-6) {
                pts.push(p);
            }
        }
        if closed && pts.len() > 2 && (pts[0] - pts[pts.len() - 1]).norm() < 1e-3 {
            pts.pop();
        }
        if pts.len() < 2 {
            return None;
        }
        let mut cumulative_m = vec![0.0];
        let n_segments = if closed { pts.len() } else { pts.len() - 1 };
        for i in 0..n_segments {
            let d = (pts[(i + 1) % pts.len()] - pts[i]).norm();
            cumulative_m.push(cumulative_m[i] + d);
        }
        Some(Polyline { points: pts, cumulative_m, closed })
    }

    /// The vertices.
    pub fn points(&self) -> &[Point2<f64>] {
        &self.points
    }

    /// Whether the path is a loop.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Total length [m].
    pub fn length_m(&self) -> f64 {
        self.cumulative_m.last().copied().unwrap_or(0.0)
    }

    /// Arc length brought into range: wrapped on a loop, clamped otherwise [m].
    pub fn normalize_s(&self, s_m: f64) -> f64 {
        if self.closed { s_m.rem_euclid(self.length_m()) } else { s_m.clamp(0.0, self.length_m()) }
    }

    fn segment(&self, i: usize) -> (Point2<f64>, Point2<f64>) {
        (self.points[i], self.points[(i + 1) % self.points.len()])
    }

    fn segment_count(&self) -> usize {
        self.cumulative_m.len() - 1
    }

    fn segment_at(&self, s_m: f64) -> usize {
        let i = self.cumulative_m.partition_point(|&c| c <= s_m);
        i.saturating_sub(1).min(self.segment_count() - 1)
    }

    /// Position and heading at arc length `s_m` (wrapped or clamped).
    pub fn pose_at(&self, s_m: f64) -> PathPose {
        let s = self.normalize_s(s_m);
        let i = self.segment_at(s);
        let (a, b) = self.segment(i);
        let seg = b - a;
        let len = seg.norm().max(1e-9);
        let t = ((s - self.cumulative_m[i]) / len).clamp(0.0, 1.0);
        PathPose { position: a + seg * t, heading_rad: seg.y.atan2(seg.x) }
    }

    /// The arc length of the point of the path nearest to `p`, searching only segments that
    /// overlap `[s_from_m, s_to_m]` (unwrapped on a loop). Returns (s [m], signed lateral offset
    /// [m], left positive).
    pub fn project_within(&self, p: &Point2<f64>, s_from_m: f64, s_to_m: f64) -> (f64, f64) {
        let total = self.length_m();
        let mut best = (f64::INFINITY, 0.0, 0.0);
        let n = self.segment_count();
        let mut visit = |i: usize, base_m: f64| {
            let (a, b) = self.segment(i);
            let seg = b - a;
            let len2 = seg.norm_squared().max(1e-12);
            let t = ((p - a).dot(&seg) / len2).clamp(0.0, 1.0);
            let q = a + seg * t;
            let d2 = (p - q).norm_squared();
            if d2 < best.0 {
                let cross = seg.x * (p.y - a.y) - seg.y * (p.x - a.x);
                let lateral = d2.sqrt() * if cross >= 0.0 { 1.0 } else { -1.0 };
                best = (d2, base_m + self.cumulative_m[i] + t * len2.sqrt(), lateral);
            }
        };
        if self.closed {
            let laps = [-total, 0.0, total];
            for base in laps {
                for i in 0..n {
                    let (s0, s1) = (base + self.cumulative_m[i], base + self.cumulative_m[i + 1]);
                    if s1 >= s_from_m && s0 <= s_to_m {
                        visit(i, base);
                    }
                }
            }
        } else {
            for i in 0..n {
                if self.cumulative_m[i + 1] >= s_from_m && self.cumulative_m[i] <= s_to_m {
                    visit(i, 0.0);
                }
            }
        }
        (best.1, best.2)
    }

    /// Nearest point over the whole path: (s [m], lateral offset [m]).
    pub fn project(&self, p: &Point2<f64>) -> (f64, f64) {
        self.project_within(p, 0.0, self.length_m())
    }

    /// The piece of the path from arc length `s_from_m` to `s_to_m` (`s_from_m <= s_to_m`, both
    /// within `0..=length`): its end points and every vertex strictly between them, in order.
    /// On a loop the piece may not cross the seam (s = 0); split it there.
    pub fn points_between(&self, s_from_m: f64, s_to_m: f64) -> Vec<Point2<f64>> {
        let (a, b) = (s_from_m.clamp(0.0, self.length_m()), s_to_m.clamp(0.0, self.length_m()));
        let (a, b) = (a.min(b), a.max(b));
        let mut out = vec![self.pose_at_unwrapped(a)];
        for (i, &c) in self.cumulative_m.iter().enumerate() {
            if c > a + 1e-9 && c < b - 1e-9 {
                out.push(self.points[i % self.points.len()]);
            }
        }
        out.push(self.pose_at_unwrapped(b));
        out
    }

    /// The position at arc length `s_m` within `0..=length`, where the end of a loop is its end
    /// (not wrapped back to the start, which is the same point).
    fn pose_at_unwrapped(&self, s_m: f64) -> Point2<f64> {
        let i = self.segment_at(s_m);
        let (a, b) = self.segment(i);
        let seg = b - a;
        let t = ((s_m - self.cumulative_m[i]) / seg.norm().max(1e-9)).clamp(0.0, 1.0);
        a + seg * t
    }

    /// Path curvature near `s_m` [1/m]: the heading change across the vertex closest to `s_m`
    /// divided by the mean length of its two segments (0 on straight parts and at open ends).
    pub fn curvature_at(&self, s_m: f64) -> f64 {
        let s = self.normalize_s(s_m);
        let i = self.segment_at(s);
        // The vertex nearer to s: the start or the end of segment i.
        let v = if s - self.cumulative_m[i] < self.cumulative_m[i + 1] - s { i } else { i + 1 };
        let n = self.points.len();
        if !self.closed && (v == 0 || v >= n - 1) {
            return 0.0;
        }
        let v = v % n;
        let prev = self.points[(v + n - 1) % n];
        let here = self.points[v];
        let next = self.points[(v + 1) % n];
        let (d0, d1) = (here - prev, next - here);
        let turn = wrap_angle(d1.y.atan2(d1.x) - d0.y.atan2(d0.x));
        turn.abs() / (0.5 * (d0.norm() + d1.norm())).max(1e-6)
    }

    /// The same path shifted sideways by `offset_m` (left positive), vertex by vertex along the
    /// mean of the adjacent segment normals.
    pub fn offset(&self, offset_m: f64) -> Option<Polyline> {
        let n = self.points.len();
        let normal = |a: Point2<f64>, b: Point2<f64>| {
            let d = (b - a).normalize();
            Vector2::new(-d.y, d.x)
        };
        let shifted = (0..n)
            .map(|i| {
                let here = self.points[i];
                let before = (i > 0 || self.closed).then(|| normal(self.points[(i + n - 1) % n], here));
                let after = (i + 1 < n || self.closed).then(|| normal(here, self.points[(i + 1) % n]));
                let m = match (before, after) {
                    (Some(a), Some(b)) => {
                        let m = (a + b).normalize();
                        m / m.dot(&a).max(0.5)
                    }
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => Vector2::zeros(),
                };
                here + m * offset_m
            })
            .collect();
        Polyline::new(shifted, self.closed)
    }
}

/// A box footprint: centre, heading and extent in the plane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrientedBox {
    /// Centre [m], site frame.
    pub center: Point2<f64>,
    /// Heading of the length axis, counter-clockwise from east [rad].
    pub yaw_rad: f64,
    /// Along the heading [m].
    pub length_m: f64,
    /// Across the heading [m].
    pub width_m: f64,
}

impl OrientedBox {
    /// The four corners, counter-clockwise starting front-left.
    pub fn corners(&self) -> [Point2<f64>; 4] {
        let (s, c) = self.yaw_rad.sin_cos();
        let fwd = Vector2::new(c, s) * (0.5 * self.length_m);
        let left = Vector2::new(-s, c) * (0.5 * self.width_m);
        [self.center + fwd + left, self.center - fwd + left, self.center - fwd - left, self.center + fwd - left]
    }

    /// Whether `p` lies inside the footprint.
    pub fn contains(&self, p: &Point2<f64>) -> bool {
        let (s, c) = self.yaw_rad.sin_cos();
        let d = p - self.center;
        let along = d.x * c + d.y * s;
        let across = -d.x * s + d.y * c;
        along.abs() <= 0.5 * self.length_m && across.abs() <= 0.5 * self.width_m
    }
}

impl OrientedBox {
    /// Whether two footprints overlap (separating axis test).
    pub fn overlaps(&self, other: &OrientedBox) -> bool {
        let (a, b) = (self.corners(), other.corners());
        let separated_on = |axis: Vector2<f64>| {
            let span = |c: &[Point2<f64>; 4]| {
                c.iter()
                    .map(|p| p.coords.dot(&axis))
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
            };
            let ((a0, a1), (b0, b1)) = (span(&a), span(&b));
            a1 < b0 || b1 < a0
        };
        let axes = [a[0] - a[1], a[1] - a[2], b[0] - b[1], b[1] - b[2]];
        !axes.iter().any(|e| separated_on(Vector2::new(-e.y, e.x)))
    }

    /// Clear distance between two footprints [m]: 0 when they touch or overlap.
    pub fn gap_m(&self, other: &OrientedBox) -> f64 {
        if self.overlaps(other) {
            return 0.0;
        }
        let (a, b) = (self.corners(), other.corners());
        let mut gap = f64::INFINITY;
        for (from, to) in [(&a, &b), (&b, &a)] {
            for p in from {
                for i in 0..4 {
                    gap = gap.min(point_segment_distance(p, &to[i], &to[(i + 1) % 4]));
                }
            }
        }
        gap
    }
}

/// Distance from `p` to the segment `a`-`b` [m].
pub fn point_segment_distance(p: &Point2<f64>, a: &Point2<f64>, b: &Point2<f64>) -> f64 {
    let ab = b - a;
    let len2 = ab.norm_squared();
    let t = if len2 > 0.0 { ((p - a).dot(&ab) / len2).clamp(0.0, 1.0) } else { 0.0 };
    (p - (a + ab * t)).norm()
}

/// A vertical prism that blocks lines of sight: a footprint polygon between two heights.
#[derive(Clone, Debug, PartialEq)]
pub struct Prism {
    /// Who this is: the actor id for actors, `None` for buildings.
    pub actor_id: Option<u32>,
    /// Footprint vertices [m], site frame (any simple polygon).
    pub polygon: Vec<Point2<f64>>,
    /// Bottom height [m], site frame.
    pub base_z_m: f64,
    /// Top height [m], site frame.
    pub top_z_m: f64,
    /// Axis-aligned bounds of the footprint: min corner [m].
    pub min: Point2<f64>,
    /// Axis-aligned bounds of the footprint: max corner [m].
    pub max: Point2<f64>,
}

impl Prism {
    /// A prism over `polygon` from `base_z_m` to `top_z_m`.
    pub fn new(actor_id: Option<u32>, polygon: Vec<Point2<f64>>, base_z_m: f64, top_z_m: f64) -> Self {
        let mut min = Point2::new(f64::INFINITY, f64::INFINITY);
        let mut max = Point2::new(f64::NEG_INFINITY, f64::NEG_INFINITY);
        for p in &polygon {
            min = Point2::new(min.x.min(p.x), min.y.min(p.y));
            max = Point2::new(max.x.max(p.x), max.y.max(p.y));
        }
        Prism { actor_id, polygon, base_z_m, top_z_m, min, max }
    }

    /// A prism over a box footprint.
    pub fn from_box(actor_id: Option<u32>, footprint: &OrientedBox, base_z_m: f64, top_z_m: f64) -> Self {
        Prism::new(actor_id, footprint.corners().to_vec(), base_z_m, top_z_m)
    }

    /// Whether the straight segment `from → to` passes through the prism. The segment's height
    /// changes linearly, so within the footprint it is lowest (or highest) where it crosses the
    /// footprint's boundary: the segment is blocked when such a crossing lies between the prism's
    /// base and top. The end point itself is not tested (it is the target).
    pub fn blocks(&self, from: &Point3<f64>, to: &Point3<f64>) -> bool {
        // Quick reject on the bounding box.
        if from.x.max(to.x) < self.min.x
            || from.x.min(to.x) > self.max.x
            || from.y.max(to.y) < self.min.y
            || from.y.min(to.y) > self.max.y
        {
            return false;
        }
        let d = Vector2::new(to.x - from.x, to.y - from.y);
        let n = self.polygon.len();
        for i in 0..n {
            let a = self.polygon[i];
            let b = self.polygon[(i + 1) % n];
            let e = b - a;
            let denom = d.x * e.y - d.y * e.x;
            if denom.abs() < 1e-12 {
                continue;
            }
            let w = Vector2::new(a.x - from.x, a.y - from.y);
            let t = (w.x * e.y - w.y * e.x) / denom;
            let u = (w.x * d.y - w.y * d.x) / denom;
            if (1e-6..1.0 - 1e-6).contains(&t) && (0.0..=1.0).contains(&u) {
                let z = from.z + t * (to.z - from.z);
                if z >= self.base_z_m && z <= self.top_z_m {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pose_and_projection_on_an_open_path() {
        let line = Polyline::new(vec![Point2::new(0.0, 0.0), Point2::new(10.0, 0.0), Point2::new(10.0, 10.0)], false)
            .expect("valid");
        assert!((line.length_m() - 20.0).abs() < 1e-12);
        let pose = line.pose_at(15.0);
        assert!((pose.position - Point2::new(10.0, 5.0)).norm() < 1e-12);
        assert!((pose.heading_rad - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
        let (s, lateral) = line.project(&Point2::new(4.0, 1.0));
        assert!((s - 4.0).abs() < 1e-12 && (lateral - 1.0).abs() < 1e-12);
        let (s, lateral) = line.project(&Point2::new(11.0, 3.0));
        assert!((s - 13.0).abs() < 1e-12 && (lateral + 1.0).abs() < 1e-12, "right of the path is negative");
        assert!(line.curvature_at(10.0) > 0.1 && line.curvature_at(2.0) == 0.0);
    }

    #[test]
    fn loops_wrap_and_project_across_the_seam() {
        let square = Polyline::new(
            vec![Point2::new(0.0, 0.0), Point2::new(10.0, 0.0), Point2::new(10.0, 10.0), Point2::new(0.0, 10.0)],
            true,
        )
        .expect("valid");
        assert!((square.length_m() - 40.0).abs() < 1e-12);
        assert!((square.pose_at(41.0).position - Point2::new(1.0, 0.0)).norm() < 1e-12);
        let (s, _) = square.project_within(&Point2::new(0.0, 1.0), 35.0, 45.0);
        assert!((s - 39.0).abs() < 1e-9, "{s}");
        let outer = square.offset(-1.0).expect("offset");
        assert!((outer.points()[0] - Point2::new(-1.0, -1.0)).norm() < 1e-9, "{:?}", outer.points()[0]);
    }

    #[test]
    fn pieces_of_a_path_keep_its_vertices() {
        let square = Polyline::new(
            vec![Point2::new(0.0, 0.0), Point2::new(10.0, 0.0), Point2::new(10.0, 10.0), Point2::new(0.0, 10.0)],
            true,
        )
        .expect("valid");
        let piece = square.points_between(5.0, 25.0);
        let want = [(5.0, 0.0), (10.0, 0.0), (10.0, 10.0), (5.0, 10.0)];
        assert_eq!(piece.len(), want.len(), "{piece:?}");
        for (p, (x, y)) in piece.iter().zip(want) {
            assert!((p - Point2::new(x, y)).norm() < 1e-12, "{piece:?}");
        }
        // The last piece of a loop ends at its start point, through the closing edge.
        let last = square.points_between(35.0, 40.0);
        assert!((last[0] - Point2::new(0.0, 5.0)).norm() < 1e-12 && (last[1] - Point2::new(0.0, 0.0)).norm() < 1e-12);
        assert_eq!(last.len(), 2, "{last:?}");
    }

    #[test]
    fn prisms_block_low_rays_and_let_high_rays_pass() {
        let bus = OrientedBox { center: Point2::new(0.0, 0.0), yaw_rad: 0.3, length_m: 12.0, width_m: 2.5 };
        let prism = Prism::from_box(Some(1), &bus, 0.0, 3.2);
        assert!(bus.contains(&Point2::new(5.0, 1.5)));
        let beside = OrientedBox { center: Point2::new(0.0, 3.0), ..bus };
        let touching = OrientedBox { center: Point2::new(6.5, 1.0), yaw_rad: 1.2, length_m: 4.0, width_m: 2.0 };
        assert!(!bus.overlaps(&beside) && bus.overlaps(&touching) && touching.overlaps(&bus));
        let low_from = Point3::new(0.0, -10.0, 1.0);
        let low_to = Point3::new(0.0, 10.0, 1.0);
        assert!(prism.blocks(&low_from, &low_to));
        assert!(!prism.blocks(&Point3::new(0.0, -10.0, 6.0), &Point3::new(0.0, 10.0, 6.0)), "over the roof");
        assert!(!prism.blocks(&Point3::new(20.0, -10.0, 1.0), &Point3::new(20.0, 10.0, 1.0)), "beside it");
    }

    #[test]
    fn gap_between_boxes_is_the_clear_distance() {
        let a = OrientedBox { center: Point2::new(0.0, 0.0), yaw_rad: 0.0, length_m: 4.0, width_m: 2.0 };
        let ahead = OrientedBox { center: Point2::new(7.0, 0.0), ..a };
        assert!((a.gap_m(&ahead) - 3.0).abs() < 1e-12);
        let beside = OrientedBox { center: Point2::new(0.0, 3.5), yaw_rad: std::f64::consts::FRAC_PI_2, ..a };
        assert!((a.gap_m(&beside) - 0.5).abs() < 1e-12, "{}", a.gap_m(&beside));
        let overlapping = OrientedBox { center: Point2::new(1.0, 0.5), ..a };
        assert_eq!(a.gap_m(&overlapping), 0.0);
    }
}
