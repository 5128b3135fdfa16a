//! The MAP of a site (J2735 `MapData`, PROTOCOL.md §2.9), derived from its model: every lane that
//! crosses an intersection's area is cut into the ingress part before the area (ending at its stop
//! line) and the egress part after it. Lanes of the model that share their approach (a through
//! lane and the turn lanes leaving it) become one ingress lane with several manoeuvres; lanes that
//! leave the area at the same place and end together become one egress lane. Each ingress lane
//! connects to the egress lane of every model lane that starts on it, with that lane's manoeuvre
//! (its `turn`, straight when it has none) and the signal group of its stop control.
//!
//! Names: an ingress lane is called `<lane id>/in` and an egress lane `<lane id>/out`, after the
//! first (by id) model lane of its group that goes straight, or else the first. Lane ids (J2735
//! `LaneID`) number the ingress lanes 1.. in name order, then the egress lanes. Signal groups are
//! numbered as [`SignalPlan::signal_group`](crate::signals::SignalPlan::signal_group) numbers
//! them (the plan's order), which is what the site's controller sends in its SPaT.

use nalgebra::{Point2, Point3};
use rsu_fusion::{Timestamp, Wgs84};
use v2x_proto::convert::{MAX_LANE_NODES, MAX_LANES};
use v2x_proto::domain::{IntersectionMap, LaneConnection, LaneDirection, LaneNode, Maneuver, MapData, MapLane};

use crate::geometry::Polyline;
use crate::model::{Intersection, Path, PathKind, SiteModel, Turn};

/// Why a site's MAP cannot be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MapError {
    /// An intersection that no lane crosses.
    #[error("intersection {0:?}: no lane crosses it")]
    NoLanes(String),
    /// More lanes than a MAP intersection holds.
    #[error("intersection {id:?}: {lanes} lanes (a MAP intersection holds at most 255)")]
    TooManyLanes {
        /// The intersection.
        id: String,
        /// How many lanes it would have.
        lanes: usize,
    },
}

/// How close the start and stop-line points (ingress) or the exit and end points (egress) of two
/// model lanes must be for them to be one MAP lane [m].
const SAME_LANE_M: f64 = 1.0;

/// How far a stop line may lie from where the lane enters the intersection area and still be
/// taken as its stop line [m]; further, the lane's ingress ends at the area's edge.
const STOP_LINE_SNAP_M: f64 = 5.0;

/// One model lane cut at an intersection.
struct Cut<'a> {
    path: &'a Path,
    /// Where it enters the area [m of arc length]; its stop line when that is near.
    stop_m: f64,
    /// Where it leaves the area [m of arc length].
    exit_m: f64,
}

/// The MAP of `site`: one intersection per `intersection` feature, made at `time` with
/// `revision`. A site with no intersection has an empty map.
pub fn map_data(site: &SiteModel, revision: u8, time: Timestamp) -> Result<MapData, MapError> {
    let intersections =
        site.intersections.iter().map(|i| intersection_map(site, i)).collect::<Result<Vec<_>, MapError>>()?;
    Ok(MapData { revision: revision % 128, time, intersections })
}

/// The reference point of an intersection: the mean of its area's vertices (site frame) [m].
pub fn reference_point(intersection: &Intersection) -> Point2<f64> {
    let n = intersection.polygon.len().max(1) as f64;
    let sum = intersection.polygon.iter().fold(nalgebra::Vector2::zeros(), |acc, p| acc + p.coords);
    Point2::from(sum / n)
}

fn intersection_map(site: &SiteModel, intersection: &Intersection) -> Result<IntersectionMap, MapError> {
    let cuts: Vec<Cut<'_>> = site
        .paths
        .values()
        .filter(|p| p.kind == PathKind::Lane)
        .filter_map(|path| cut(path, &intersection.polygon))
        .collect();
    if cuts.is_empty() {
        return Err(MapError::NoLanes(intersection.id.clone()));
    }
    let mut ingress = group(&cuts, |c| (c.path.line.pose_at(0.0).position, c.path.line.pose_at(c.stop_m).position));
    let mut egress = group(&cuts, |c| {
        let line = &c.path.line;
        (line.pose_at(c.exit_m).position, line.pose_at(line.length_m()).position)
    });
    ingress.sort_by(|a, b| group_name(&cuts, a).cmp(group_name(&cuts, b)));
    egress.sort_by(|a, b| group_name(&cuts, a).cmp(group_name(&cuts, b)));
    let lanes = ingress.len() + egress.len();
    if lanes > MAX_LANES {
        return Err(MapError::TooManyLanes { id: intersection.id.clone(), lanes });
    }
    let reference = reference_point(intersection);
    let node = |p: Point2<f64>| LaneNode {
        x_cm: ((p.x - reference.x) * 100.0).round() as i32,
        y_cm: ((p.y - reference.y) * 100.0).round() as i32,
    };
    // Lane ids: ingress groups 1.., then egress groups (both already in name order).
    let egress_id = |cut_index: usize| {
        let g = egress.iter().position(|g| g.contains(&cut_index)).unwrap_or(0);
        (ingress.len() + g + 1) as u8
    };
    let mut out = Vec::with_capacity(lanes);
    for (g, members) in ingress.iter().enumerate() {
        let first = &cuts[members[0]];
        let mut points = sub_points(&first.path.line, 0.0, first.stop_m);
        points.reverse();
        let mut connections: Vec<LaneConnection> = members
            .iter()
            .map(|&i| LaneConnection {
                egress_lane_id: egress_id(i),
                maneuver: maneuver(cuts[i].path.turn),
                signal_group: cuts[i].path.stop.as_ref().and_then(|s| site.signal_plan.signal_group(&s.signal_id)),
            })
            .collect();
        connections.sort_by_key(|c| (c.maneuver, c.egress_lane_id));
        connections.dedup();
        let mut maneuvers: Vec<Maneuver> = connections.iter().map(|c| c.maneuver).collect();
        maneuvers.dedup();
        out.push(MapLane {
            lane_id: (g + 1) as u8,
            name: format!("{}/in", group_name(&cuts, members)),
            direction: LaneDirection::Ingress,
            width_cm: width_cm(first.path),
            nodes: decimate(points).into_iter().map(node).collect(),
            maneuvers,
            connections,
        });
    }
    for (g, members) in egress.iter().enumerate() {
        let first = &cuts[members[0]];
        let points = sub_points(&first.path.line, first.exit_m, first.path.line.length_m());
        out.push(MapLane {
            lane_id: (ingress.len() + g + 1) as u8,
            name: format!("{}/out", group_name(&cuts, members)),
            direction: LaneDirection::Egress,
            width_cm: width_cm(first.path),
            nodes: decimate(points).into_iter().map(node).collect(),
            maneuvers: Vec::new(),
            connections: Vec::new(),
        });
    }
    // As the wire carries it (1e-7 degree, centimetre), so the MAP survives its encoding exactly.
    let exact = site.frame.wgs84_from_enu(&Point3::new(reference.x, reference.y, 0.0));
    let quantised = |v: f64, per_unit: f64| f64::from((v * per_unit).round() as i32) / per_unit;
    let reference_wgs84 =
        Wgs84::new(quantised(exact.lat_deg, 1e7), quantised(exact.lon_deg, 1e7), quantised(exact.alt_m, 100.0));
    Ok(IntersectionMap {
        intersection_id: intersection.intersection_id,
        name: intersection.id.clone(),
        reference: reference_wgs84,
        reference_site_cm: [(reference.x * 100.0).round() as i32, (reference.y * 100.0).round() as i32],
        lanes: out,
    })
}

fn maneuver(turn: Option<Turn>) -> Maneuver {
    match turn {
        None => Maneuver::Straight,
        Some(Turn::Left) => Maneuver::Left,
        Some(Turn::Right) => Maneuver::Right,
        Some(Turn::UTurn) => Maneuver::UTurn,
    }
}

fn width_cm(path: &Path) -> u16 {
    (path.width_m * 100.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
}

/// The name of a group: its first straight lane's id, else its first lane's.
fn group_name<'a>(cuts: &'a [Cut<'_>], members: &[usize]) -> &'a str {
    let straight = members.iter().find(|&&i| cuts[i].path.turn.is_none());
    &cuts[*straight.unwrap_or(&members[0])].path.id
}

/// Groups the cuts whose two `ends` points each lie within [`SAME_LANE_M`], each group's members
/// in model lane id order.
fn group(cuts: &[Cut<'_>], ends: impl Fn(&Cut<'_>) -> (Point2<f64>, Point2<f64>)) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, c) in cuts.iter().enumerate() {
        let (a, b) = ends(c);
        let same = |j: &usize| {
            let (p, q) = ends(&cuts[*j]);
            (p - a).norm() <= SAME_LANE_M && (q - b).norm() <= SAME_LANE_M
        };
        match groups.iter_mut().find(|g| same(&g[0])) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
}

/// Where `path` enters and leaves `polygon`, when it starts and ends outside it and crosses it.
fn cut<'a>(path: &'a Path, polygon: &[Point2<f64>]) -> Option<Cut<'a>> {
    let line = &path.line;
    let points = line.points();
    let inside = |p: &Point2<f64>| {
        let poly: Vec<[f64; 2]> = polygon.iter().map(|q| [q.x, q.y]).collect();
        rsu_fusion::calibration::point_in_polygon(&poly, p.x, p.y)
    };
    if line.is_closed() || inside(&points[0]) || inside(&points[points.len() - 1]) {
        return None;
    }
    let mut crossings = Vec::new();
    let mut s0 = 0.0;
    for w in points.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = (b - a).norm();
        for k in 0..polygon.len() {
            let (c, d) = (polygon[k], polygon[(k + 1) % polygon.len()]);
            if let Some(t) = segment_crossing(a, b, c, d) {
                crossings.push(s0 + t * len);
            }
        }
        s0 += len;
    }
    let entry_m = crossings.iter().copied().fold(f64::INFINITY, f64::min);
    let exit_m = crossings.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !(entry_m.is_finite() && exit_m > entry_m) {
        return None;
    }
    let stop_m = path.stop.as_ref().map(|s| s.stop_at_m).filter(|s| (s - entry_m).abs() <= STOP_LINE_SNAP_M);
    Some(Cut { path, stop_m: stop_m.unwrap_or(entry_m), exit_m })
}

/// The parameter along a→b where it crosses c→d, if it does.
fn segment_crossing(a: Point2<f64>, b: Point2<f64>, c: Point2<f64>, d: Point2<f64>) -> Option<f64> {
    let r = b - a;
    let s = d - c;
    let denom = r.x * s.y - r.y * s.x;
    if denom.abs() < 1e-12 {
        return None;
    }
    let ac = c - a;
    let t = (ac.x * s.y - ac.y * s.x) / denom;
    let u = (ac.x * r.y - ac.y * r.x) / denom;
    ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u)).then_some(t)
}

/// The points of `line` from arc length `from_m` to `to_m`: both ends and the vertices between.
fn sub_points(line: &Polyline, from_m: f64, to_m: f64) -> Vec<Point2<f64>> {
    let mut out = vec![line.pose_at(from_m).position];
    let mut s = 0.0;
    let points = line.points();
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            s += (p - points[i - 1]).norm();
        }
        if s > from_m + 1e-6 && s < to_m - 1e-6 {
            out.push(*p);
        }
    }
    out.push(line.pose_at(to_m).position);
    out
}

/// At most [`MAX_LANE_NODES`] of `points`, evenly picked, both ends kept.
fn decimate(points: Vec<Point2<f64>>) -> Vec<Point2<f64>> {
    if points.len() <= MAX_LANE_NODES {
        return points;
    }
    let last = points.len() - 1;
    (0..MAX_LANE_NODES).map(|k| points[k * last / (MAX_LANE_NODES - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane<'a>(i: &'a IntersectionMap, name: &str) -> &'a MapLane {
        i.lanes.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("lane {name}: {:?}", i.lanes))
    }

    #[test]
    fn the_embedded_intersection_has_its_lanes_manoeuvres_and_signal_groups() {
        let site = SiteModel::embedded().expect("site");
        let map = map_data(&site, 1, Timestamp::from_nanos(1_795_000_000_000_000_000)).expect("map");
        let [i] = &map.intersections[..] else { panic!("one intersection: {map:?}") };
        assert_eq!((i.intersection_id, i.name.as_str()), (1201, "city-block"));
        assert!(i.reference_site_cm[0].abs() <= 2 && i.reference_site_cm[1].abs() <= 2, "{:?}", i.reference_site_cm);
        let names: Vec<&str> = i.lanes.iter().map(|l| l.name.as_str()).collect();
        // Six approaches (eb-1, eb-2, wb-1, wb-2, nb-1, sb-1), six exits.
        assert_eq!(
            names,
            [
                "eb-1/in", "eb-2/in", "nb-1/in", "sb-1/in", "wb-1/in", "wb-2/in", "eb-1/out", "eb-2/out", "nb-1/out",
                "sb-1/out", "wb-1/out", "wb-2/out"
            ]
        );
        for (k, l) in i.lanes.iter().enumerate() {
            assert_eq!(usize::from(l.lane_id), k + 1);
            assert_eq!(l.width_cm, 350);
        }
        // eb-1: straight to eb-1/out and left into nb-1/out, both on sig-ew (group 1); its first
        // node is the middle of its stop line, 13.5 m west of the centre, 1.75 m south.
        let eb1 = lane(i, "eb-1/in");
        assert_eq!(eb1.maneuvers, [Maneuver::Straight, Maneuver::Left]);
        let to = |name: &str| lane(i, name).lane_id;
        assert_eq!(
            eb1.connections,
            [
                LaneConnection { egress_lane_id: to("eb-1/out"), maneuver: Maneuver::Straight, signal_group: Some(1) },
                LaneConnection { egress_lane_id: to("nb-1/out"), maneuver: Maneuver::Left, signal_group: Some(1) },
            ]
        );
        let stop = eb1.nodes[0];
        assert!((stop.x_cm + 1350).abs() <= 5 && (stop.y_cm + 175).abs() <= 5, "{stop:?}");
        assert!(eb1.nodes[1].x_cm < -24_000, "the approach runs west from the stop line: {:?}", eb1.nodes);
        // nb-1 and sb-1 are on sig-ns (group 2), with left and right turns.
        let nb1 = lane(i, "nb-1/in");
        assert_eq!(nb1.maneuvers, [Maneuver::Straight, Maneuver::Left, Maneuver::Right]);
        assert!(nb1.connections.iter().all(|c| c.signal_group == Some(2)));
        assert_eq!(lane(i, "eb-2/in").maneuvers, [Maneuver::Straight, Maneuver::Right]);
        // Egress lanes start at the area's edge and go away from it.
        let out = lane(i, "eb-1/out");
        assert!((out.nodes[0].x_cm - 1350).abs() <= 5 && out.nodes[1].x_cm > 24_000, "{:?}", out.nodes);
        // It passes the wire checks.
        let control = v2x_proto::domain::ServerControl::Map(map.clone());
        let back: v2x_proto::domain::ServerControl =
            v2x_proto::decode(&v2x_proto::encode(&control)).expect("valid on the wire");
        assert_eq!(back, control);
    }

    #[test]
    fn a_site_without_intersections_has_an_empty_map_and_an_empty_intersection_is_an_error() {
        let mut site = SiteModel::embedded().expect("site");
        site.intersections.clear();
        assert!(map_data(&site, 0, Timestamp::EPOCH).expect("map").intersections.is_empty());
        site.intersections.push(Intersection {
            id: "nowhere".into(),
            intersection_id: 9,
            polygon: vec![Point2::new(5000.0, 5000.0), Point2::new(5010.0, 5000.0), Point2::new(5010.0, 5010.0)],
        });
        assert_eq!(map_data(&site, 0, Timestamp::EPOCH), Err(MapError::NoLanes("nowhere".into())));
    }
}
