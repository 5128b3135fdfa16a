//! Route validation: is a driverless vehicle's route covered by the roadside sensors, and are the
//! objects on and near it detected, early, accurately and fresh enough, stretch by stretch?
//!
//! The route (a WGS84 LineString, or a named path of the site model such as `shuttle-loop`) is
//! cut into segments of fixed chainage (arc length along the route, default 10 m). For each
//! segment:
//!
//! - [`coverage`]: which sensors see its corridor (the route ± `near_m`), from each sensor's
//!   calibrated pose, field of view and range and the site's occluders (buildings, parked
//!   vehicles); stretches no sensor sees are the blind spots, listed with their chainage.
//! - [`tally`]: over every log, each ground-truth object within `near_m` of the route is
//!   projected to its chainage and counted in that segment: detected or not (matched by the
//!   project's scorer to a track re-fused from the log), its position and velocity error, how
//!   long an object entering the corridor there took to be tracked, and the age of the recorded
//!   broadcast; with the number of observations behind each figure.
//! - [`verdict`]: the route criteria ([`criteria`], TOML) turn the figures into pass, fail or
//!   insufficient data per segment, with a 95 % Wilson interval on every detection probability.
//! - [`output`]: the report as JSON and as GeoJSON (segments as WGS84 LineStrings with their
//!   figures as properties). The HTML page (the route on the site map coloured by verdict, plots
//!   along the chainage) is drawn by `rsu-lab`, which links the charting library.
//!
//! `METRICS.md` at the repository root defines every figure.

pub mod coverage;
pub mod criteria;
pub mod output;
pub mod tally;
pub mod verdict;

use std::collections::HashMap;
use std::path::Path;

use nalgebra::{Point2, Vector2};
use rsu_fusion::{EnuFrame, Wgs84};
use rsu_site::SiteModel;
use rsu_site::geometry::Polyline;
use serde_json::Value;

/// Largest route file read [bytes].
const MAX_ROUTE_FILE_BYTES: u64 = 16 << 20;
/// Most vertices a route may have.
const MAX_ROUTE_VERTICES: usize = 100_000;
/// Longest route [m].
pub const MAX_ROUTE_LENGTH_M: f64 = 100_000.0;
/// Most segments a route may be cut into.
pub const MAX_SEGMENTS: usize = 20_000;

/// Why a route cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The route file could not be read.
    #[error("cannot read the route {path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The route file is not a usable GeoJSON LineString.
    #[error("route {source_name}: {problem}")]
    Invalid {
        /// The file or route name.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// The name is neither a file nor a path of the site.
    #[error("no route {name:?}: not a file, and the site has no path of that id (its routes: {known})")]
    Unknown {
        /// The name given.
        name: String,
        /// The site's route ids.
        known: String,
    },
}

/// A route in the site frame, with an index to find the chainage of points near it.
#[derive(Clone, Debug)]
pub struct Route {
    /// Its id: the site path's id or the GeoJSON feature's `id` (else the file name).
    pub id: String,
    /// Where it came from, for reports (`site path shuttle-loop`, a file name).
    pub source: String,
    /// Geometry [m], site frame; a loop when closed.
    pub line: Polyline,
    index: RouteIndex,
}

/// A stretch of the route between two chainages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Position along the route, from 0.
    pub index: usize,
    /// Chainage where it starts [m].
    pub from_m: f64,
    /// Chainage where it ends [m].
    pub to_m: f64,
}

impl Segment {
    /// Its length [m].
    pub fn length_m(&self) -> f64 {
        self.to_m - self.from_m
    }
}

impl Route {
    /// A route through `line`.
    pub fn new(id: impl Into<String>, source: impl Into<String>, line: Polyline) -> Result<Route, RouteError> {
        let id = id.into();
        if line.length_m() > MAX_ROUTE_LENGTH_M {
            return Err(RouteError::Invalid {
                source_name: id,
                problem: format!("{:.0} m long; at most {MAX_ROUTE_LENGTH_M:.0} m", line.length_m()),
            });
        }
        let index = RouteIndex::new(&line);
        Ok(Route { id, source: source.into(), line, index })
    }

    /// `arg` as a route: a GeoJSON file when such a file exists, else the id of a path of `site`.
    pub fn load(arg: &str, site: &SiteModel) -> Result<Route, RouteError> {
        let path = Path::new(arg);
        if path.is_file() {
            let io = |cause| RouteError::Io { path: arg.to_owned(), cause };
            let size = std::fs::metadata(path).map_err(io)?.len();
            if size > MAX_ROUTE_FILE_BYTES {
                return Err(RouteError::Invalid {
                    source_name: arg.to_owned(),
                    problem: format!("{size} bytes; a route file is at most {MAX_ROUTE_FILE_BYTES} bytes"),
                });
            }
            let text = std::fs::read_to_string(path).map_err(io)?;
            let stem = path.file_stem().map_or_else(|| arg.to_owned(), |s| s.to_string_lossy().into_owned());
            return Route::from_geojson(&text, arg, &stem, &site.frame);
        }
        match site.path(arg) {
            Some(p) => Route::new(p.id.clone(), format!("site path {}", p.id), p.line.clone()),
            None => {
                let known: Vec<&str> = site
                    .paths
                    .values()
                    .filter(|p| p.kind == rsu_site::model::PathKind::Route)
                    .map(|p| p.id.as_str())
                    .collect();
                Err(RouteError::Unknown { name: arg.to_owned(), known: known.join(", ") })
            }
        }
    }

    /// A route from GeoJSON text: a `LineString` geometry, a `Feature` holding one, or a
    /// `FeatureCollection` with exactly one `LineString` feature; positions `[lon, lat(, alt)]` in
    /// degrees (WGS84), turned into the site frame by `frame`. The route is a loop when its last
    /// position repeats its first or the feature's `closed` property is true. Its id is the
    /// feature's `id` property, else `default_id`.
    pub fn from_geojson(
        text: &str,
        source_name: &str,
        default_id: &str,
        frame: &EnuFrame,
    ) -> Result<Route, RouteError> {
        let invalid = |problem: String| RouteError::Invalid { source_name: source_name.to_owned(), problem };
        let root: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let feature = match root.get("type").and_then(Value::as_str) {
            Some("FeatureCollection") => {
                let features = root
                    .get("features")
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid("a FeatureCollection without a `features` array".into()))?;
                let lines: Vec<&Value> = features
                    .iter()
                    .filter(|f| f.pointer("/geometry/type").and_then(Value::as_str) == Some("LineString"))
                    .collect();
                match lines.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(invalid("no LineString feature".into())),
                    more => return Err(invalid(format!("{} LineString features; give one route", more.len()))),
                }
            }
            Some("Feature") => root,
            Some("LineString") => serde_json::json!({ "type": "Feature", "geometry": root }),
            other => {
                return Err(invalid(format!("expected a LineString, Feature or FeatureCollection, not {other:?}")));
            }
        };
        let geometry = feature.get("geometry").ok_or_else(|| invalid("the feature has no geometry".into()))?;
        if geometry.get("type").and_then(Value::as_str) != Some("LineString") {
            return Err(invalid("the geometry is not a LineString".into()));
        }
        let coords = geometry
            .get("coordinates")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("the LineString has no `coordinates` array".into()))?;
        if coords.len() > MAX_ROUTE_VERTICES {
            return Err(invalid(format!("{} positions; at most {MAX_ROUTE_VERTICES}", coords.len())));
        }
        let mut points = Vec::with_capacity(coords.len());
        for (i, c) in coords.iter().enumerate() {
            let pair = c.as_array().and_then(|a| match a.as_slice() {
                [lon, lat] | [lon, lat, _] => Some((lon.as_f64()?, lat.as_f64()?)),
                _ => None,
            });
            let (lon, lat) = pair.ok_or_else(|| invalid(format!("position #{i} {c} is not [lon, lat] in degrees")))?;
            let wgs = Wgs84::new(lat, lon, frame.origin().alt_m);
            wgs.validate().map_err(|e| invalid(format!("position #{i} {c}: {e}")))?;
            let p = frame.enu_from_wgs84(&wgs);
            if p.x.hypot(p.y) > 50_000.0 {
                return Err(invalid(format!("position #{i} {c} is more than 50 km from the site origin")));
            }
            points.push(Point2::new(p.x, p.y));
        }
        let properties = feature.get("properties");
        let closed_flag = properties.and_then(|p| p.get("closed")).and_then(Value::as_bool).unwrap_or(false);
        let repeats_start =
            points.len() > 2 && points.first().zip(points.last()).is_some_and(|(a, b)| (a - b).norm() < 1e-3);
        let line = Polyline::new(points, closed_flag || repeats_start)
            .ok_or_else(|| invalid("needs at least two distinct positions".into()))?;
        let id = properties.and_then(|p| p.get("id")).and_then(Value::as_str).unwrap_or(default_id);
        Route::new(id, source_name, line)
    }

    /// Length [m].
    pub fn length_m(&self) -> f64 {
        self.line.length_m()
    }

    /// The route cut into segments of `length_m`, from chainage 0; the remainder at the end
    /// becomes a segment of its own, unless shorter than a quarter of `length_m`, when it is
    /// added to the last segment.
    pub fn segments(&self, length_m: f64) -> Vec<Segment> {
        segments_of(self.length_m(), length_m)
    }

    /// The chainage [m] and signed lateral offset [m] (left of the direction of travel positive)
    /// of `p` when it lies within `near_m` of the route (at most the `near_m` the route was
    /// indexed for, [`Route::indexed_near_m`]); `None` farther away.
    pub fn locate(&self, p: &Point2<f64>, near_m: f64) -> Option<(f64, f64)> {
        self.index.locate(p, near_m.min(self.index.reach_m))
    }

    /// The route re-indexed so that [`Route::locate`] finds points up to `near_m` from it.
    #[must_use]
    pub fn indexed_for(mut self, near_m: f64) -> Route {
        if near_m > self.index.reach_m {
            self.index = RouteIndex::with_reach(&self.line, near_m);
        }
        self
    }

    /// How far from the route [`Route::locate`] can find points [m].
    pub fn indexed_near_m(&self) -> f64 {
        self.index.reach_m
    }

    /// The site-frame point at chainage `s_m` shifted sideways by `lateral_m` (left positive).
    pub fn point_at(&self, s_m: f64, lateral_m: f64) -> Point2<f64> {
        let pose = self.line.pose_at(s_m);
        let left = Vector2::new(-pose.heading_rad.sin(), pose.heading_rad.cos());
        pose.position + left * lateral_m
    }

    /// The segment's geometry [m], site frame.
    pub fn segment_points(&self, segment: &Segment) -> Vec<Point2<f64>> {
        self.line.points_between(segment.from_m, segment.to_m)
    }
}

/// [`Route::segments`] of a route `route_m` long.
pub fn segments_of(route_m: f64, length_m: f64) -> Vec<Segment> {
    if !(route_m > 0.0 && length_m > 0.0) {
        return Vec::new();
    }
    let full = (route_m / length_m).floor() as usize;
    let remainder_m = route_m - full as f64 * length_m;
    let mut count = full;
    if remainder_m > 1e-9 && (remainder_m >= 0.25 * length_m || full == 0) {
        count += 1;
    }
    (0..count)
        .map(|i| {
            let from_m = i as f64 * length_m;
            let to_m = if i + 1 == count { route_m } else { (i + 1) as f64 * length_m };
            Segment { index: i, from_m, to_m }
        })
        .collect()
}

/// The index of the segment holding chainage `s_m` among `segments` (ordered, contiguous).
pub fn segment_at(segments: &[Segment], s_m: f64) -> Option<usize> {
    let i = segments.partition_point(|seg| seg.to_m <= s_m);
    match segments.get(i) {
        Some(seg) if s_m >= seg.from_m => Some(i),
        // The route's end belongs to the last segment.
        None => segments.last().filter(|seg| (s_m - seg.to_m).abs() < 1e-9).map(|seg| seg.index),
        Some(_) => None,
    }
}

/// The route's edges in a grid of square cells, each cell listing the edges within reach of
/// it, so a point is located from one cell's edges.
#[derive(Clone, Debug)]
struct RouteIndex {
    /// (start, end, chainage of the start [m]) of each edge.
    edges: Vec<(Point2<f64>, Point2<f64>, f64)>,
    cells: HashMap<(i64, i64), Vec<u32>>,
    cell_m: f64,
    /// The farthest a located point may be from the route [m].
    reach_m: f64,
}

/// The reach the route is indexed for unless asked for more [m].
const DEFAULT_REACH_M: f64 = 10.0;

impl RouteIndex {
    fn new(line: &Polyline) -> Self {
        RouteIndex::with_reach(line, DEFAULT_REACH_M)
    }

    fn with_reach(line: &Polyline, reach_m: f64) -> Self {
        let reach_m = reach_m.clamp(0.1, 1000.0);
        let cell_m = (2.0 * reach_m).max(10.0);
        let points = line.points();
        let n = points.len();
        let edge_count = if line.is_closed() { n } else { n - 1 };
        let mut edges = Vec::with_capacity(edge_count);
        let mut s = 0.0;
        for i in 0..edge_count {
            let (a, b) = (points[i], points[(i + 1) % n]);
            edges.push((a, b, s));
            s += (b - a).norm();
        }
        let mut cells: HashMap<(i64, i64), Vec<u32>> = HashMap::new();
        let cell_of = |p: Point2<f64>| ((p.x / cell_m).floor() as i64, (p.y / cell_m).floor() as i64);
        for (e, &(a, b, _)) in edges.iter().enumerate() {
            // Samples at most half a cell apart; a point within reach of the edge is within a
            // cell of a sample's cell (cells are at least twice the reach wide).
            let steps = ((b - a).norm() / (0.5 * cell_m)).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let (cx, cy) = cell_of(a + (b - a) * (k as f64 / steps as f64));
                for dx in -1..=1 {
                    for dy in -1..=1 {
                        let list = cells.entry((cx + dx, cy + dy)).or_default();
                        if list.last() != Some(&(e as u32)) {
                            list.push(e as u32);
                        }
                    }
                }
            }
        }
        for list in cells.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        RouteIndex { edges, cells, cell_m, reach_m }
    }

    fn locate(&self, p: &Point2<f64>, near_m: f64) -> Option<(f64, f64)> {
        if !(p.x.is_finite() && p.y.is_finite()) {
            return None;
        }
        let key = ((p.x / self.cell_m).floor() as i64, (p.y / self.cell_m).floor() as i64);
        let mut best: Option<(f64, f64, f64)> = None;
        for &e in self.cells.get(&key)? {
            let (a, b, s0) = self.edges[e as usize];
            let ab = b - a;
            let len2 = ab.norm_squared();
            let t = if len2 > 0.0 { ((p - a).dot(&ab) / len2).clamp(0.0, 1.0) } else { 0.0 };
            let d2 = (p - (a + ab * t)).norm_squared();
            if d2 <= near_m * near_m && best.is_none_or(|(bd2, _, _)| d2 < bd2) {
                let cross = ab.x * (p.y - a.y) - ab.y * (p.x - a.x);
                best = Some((d2, s0 + t * len2.sqrt(), cross));
            }
        }
        best.map(|(d2, s, cross)| (s, if cross >= 0.0 { d2.sqrt() } else { -d2.sqrt() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An L: 100 m east, then 50 m north.
    fn l_route() -> Route {
        let line = Polyline::new(vec![Point2::new(0.0, 0.0), Point2::new(100.0, 0.0), Point2::new(100.0, 50.0)], false)
            .expect("valid");
        Route::new("l", "test", line).expect("route")
    }

    #[test]
    fn segments_cover_the_route_and_absorb_a_short_remainder() {
        let segs = segments_of(152.0, 10.0);
        assert_eq!(segs.len(), 15, "2 m left over joins the last segment");
        assert_eq!((segs[14].from_m, segs[14].to_m), (140.0, 152.0));
        let segs = segments_of(155.0, 10.0);
        assert_eq!(segs.len(), 16, "5 m left over is a segment of its own");
        assert_eq!((segs[15].from_m, segs[15].to_m), (150.0, 155.0));
        assert!(segs.windows(2).all(|w| w[0].to_m == w[1].from_m && w[1].index == w[0].index + 1));
        assert_eq!(segments_of(4.0, 10.0).len(), 1, "a route shorter than a segment is one segment");
        assert!(segments_of(0.0, 10.0).is_empty() && segments_of(10.0, 0.0).is_empty());
        assert_eq!(segment_at(&segs, 0.0), Some(0));
        assert_eq!(segment_at(&segs, 9.999), Some(0));
        assert_eq!(segment_at(&segs, 10.0), Some(1));
        assert_eq!(segment_at(&segs, 155.0), Some(15), "the end belongs to the last segment");
        assert_eq!(segment_at(&segs, 155.1), None);
        assert_eq!(segment_at(&segs, -0.1), None);
    }

    #[test]
    fn points_near_the_route_get_their_chainage() {
        let route = l_route();
        // 2 m left of the first leg at 30 m, 1.5 m right of the second leg at 100 + 20 m.
        let (s, lateral) = route.locate(&Point2::new(30.0, 2.0), 3.0).expect("near");
        assert!((s - 30.0).abs() < 1e-9 && (lateral - 2.0).abs() < 1e-9, "{s} {lateral}");
        let (s, lateral) = route.locate(&Point2::new(101.5, 20.0), 3.0).expect("near");
        assert!((s - 120.0).abs() < 1e-9 && (lateral + 1.5).abs() < 1e-9, "{s} {lateral}");
        assert_eq!(route.locate(&Point2::new(30.0, 3.5), 3.0), None, "3.5 m away is not near");
        assert_eq!(route.locate(&Point2::new(500.0, 500.0), 3.0), None);
        assert_eq!(route.locate(&Point2::new(f64::NAN, 0.0), 3.0), None);
        // Every point of a dense grid agrees with the polyline's own projection.
        for i in -20..=220 {
            for j in -20..=120 {
                let p = Point2::new(0.5 * f64::from(i), 0.5 * f64::from(j));
                let (s_ref, lat_ref) = route.line.project(&p);
                match route.locate(&p, 3.0) {
                    Some((s, lat)) => assert!((s - s_ref).abs() < 1e-9 && (lat - lat_ref).abs() < 1e-9, "{p}"),
                    None => assert!(lat_ref.abs() > 3.0, "{p} is {lat_ref} m from the route but not found"),
                }
            }
        }
        let seg = Segment { index: 9, from_m: 90.0, to_m: 110.0 };
        let pts = route.segment_points(&seg);
        assert_eq!(pts, vec![Point2::new(90.0, 0.0), Point2::new(100.0, 0.0), Point2::new(100.0, 10.0)]);
        assert!((route.point_at(50.0, 2.0) - Point2::new(50.0, 2.0)).norm() < 1e-12);
    }

    #[test]
    fn geojson_routes_in_wgs84() {
        let frame = EnuFrame::new(Wgs84::new(33.1995, 120.4862, 4.0));
        // About 93 m east then 111 m north of the origin, closed back to the start.
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"id":"pilot-a"},"geometry":{"type":"LineString",
             "coordinates":[[120.4862,33.1995],[120.4872,33.1995],[120.4872,33.2005],[120.4862,33.1995]]}},
            {"type":"Feature","properties":{"kind":"stop"},"geometry":{"type":"Point","coordinates":[120.4862,33.1995]}}]}"#;
        let route = Route::from_geojson(text, "pilot.geojson", "pilot", &frame).expect("route");
        assert_eq!(route.id, "pilot-a");
        assert!(route.line.is_closed(), "last position repeats the first: a loop");
        let east_m = route.line.points()[1].x;
        assert!((east_m - 93.2).abs() < 0.5, "{east_m}");
        let bare = r#"{"type":"LineString","coordinates":[[120.4862,33.1995],[120.4863,33.1995]]}"#;
        let route = Route::from_geojson(bare, "bare.geojson", "bare", &frame).expect("bare geometry");
        assert_eq!(route.id, "bare");
        assert!(!route.line.is_closed());
        for (bad, says) in [
            ("[1,2", "not JSON"),
            (r#"{"type":"Point","coordinates":[0,0]}"#, "expected a LineString"),
            (r#"{"type":"LineString","coordinates":[[120.4862,"x"]]}"#, "position #0"),
            (r#"{"type":"LineString","coordinates":[[120.4862,33.1995]]}"#, "two distinct"),
            (r#"{"type":"LineString","coordinates":[[121.9,33.1995],[121.95,33.1995]]}"#, "50 km"),
            (r#"{"type":"LineString","coordinates":[[120.4862,95.0],[120.4863,33.1995]]}"#, "position #0"),
        ] {
            let err = Route::from_geojson(bad, "bad.geojson", "bad", &frame).expect_err(bad).to_string();
            assert!(err.contains("bad.geojson") && err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn named_routes_come_from_the_site() {
        let site = SiteModel::embedded().expect("site");
        let route = Route::load("shuttle-loop", &site).expect("the shuttle loop");
        assert!(route.line.is_closed() && route.length_m() > 1500.0);
        let err = Route::load("no-such-route", &site).expect_err("unknown").to_string();
        assert!(err.contains("no-such-route") && err.contains("shuttle-loop"), "{err}");
    }
}
