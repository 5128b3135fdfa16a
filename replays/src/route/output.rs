//! The route report as files: JSON (the [`RouteReport`] itself) and GeoJSON (RFC 7946: WGS84
//! `[lon, lat]`), one LineString feature per segment with its figures as flat properties (so QGIS
//! shows them as attribute columns) and `stroke` colours by verdict (geojson.io's simplestyle),
//! plus one feature per blind spot.

use nalgebra::{Point2, Point3};
use rsu_fusion::EnuFrame;
use serde_json::{Map, Value, json};

use super::Route;
use super::verdict::{RouteReport, Verdict};

/// The colour of a verdict on maps and plots (`#rrggbb`).
pub fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "#1a9850",
        Verdict::Insufficient => "#f39c12",
        Verdict::Fail => "#d73027",
    }
}

/// The report as pretty JSON.
pub fn to_json(report: &RouteReport) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}

/// `[lon, lat]` of a site-frame point, to 1e-8 degree (about 1 mm).
fn lon_lat(frame: &EnuFrame, p: &Point2<f64>) -> Value {
    let w = frame.wgs84_from_enu(&Point3::new(p.x, p.y, 0.0));
    let round = |v: f64| (v * 1e8).round() / 1e8;
    json!([round(w.lon_deg), round(w.lat_deg)])
}

fn line(frame: &EnuFrame, points: &[Point2<f64>]) -> Value {
    json!({ "type": "LineString", "coordinates": points.iter().map(|p| lon_lat(frame, p)).collect::<Vec<_>>() })
}

/// The report's segments and blind spots as a GeoJSON FeatureCollection, positions in WGS84
/// through the site's `frame`.
pub fn to_geojson(report: &RouteReport, route: &Route, frame: &EnuFrame) -> Value {
    let mut features = Vec::new();
    for seg in &report.segments {
        let mut p = Map::new();
        p.insert("kind".into(), json!("segment"));
        p.insert("route".into(), json!(report.route.id));
        p.insert("index".into(), json!(seg.index));
        p.insert("from_m".into(), json!(seg.from_m));
        p.insert("to_m".into(), json!(seg.to_m));
        p.insert("verdict".into(), json!(seg.verdict.name()));
        p.insert("sensors_min".into(), json!(seg.coverage.sensors_min));
        p.insert("sensors_max".into(), json!(seg.coverage.sensors_max));
        p.insert("sensors".into(), json!(seg.coverage.sensors.join(",")));
        p.insert("covered_fraction".into(), json!(seg.coverage.covered_fraction));
        p.insert("logs".into(), json!(seg.logs));
        for (g, f) in &seg.groups {
            p.insert(format!("{g}_observations"), json!(f.observations));
            p.insert(format!("{g}_objects"), json!(f.objects));
            p.insert(format!("{g}_detection"), json!(f.detection.map(|d| d.probability)));
            p.insert(format!("{g}_ci95_low"), json!(f.detection.map(|d| d.ci95_low)));
            p.insert(format!("{g}_ci95_high"), json!(f.detection.map(|d| d.ci95_high)));
            p.insert(format!("{g}_position_p95_m"), json!(f.position_p95_m));
            p.insert(format!("{g}_velocity_p95_mps"), json!(f.velocity_p95_mps));
            p.insert(format!("{g}_entries"), json!(f.entries));
            p.insert(format!("{g}_time_to_track_max_s"), json!(f.time_to_track_max_s));
        }
        p.insert("broadcast_age_p95_s".into(), json!(seg.broadcast_age.as_ref().map(|a| a.p95_s)));
        let failing: Vec<&str> =
            seg.checks.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.name.as_str()).collect();
        p.insert("failing".into(), json!(failing.join(",")));
        let reasons: Vec<String> = seg
            .checks
            .iter()
            .filter(|c| c.verdict != Verdict::Pass)
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        p.insert("reasons".into(), json!(reasons.join("; ")));
        p.insert("stroke".into(), json!(verdict_colour(seg.verdict)));
        p.insert("stroke-width".into(), json!(4));
        let geometry = line(frame, &route.line.points_between(seg.from_m, seg.to_m));
        features.push(json!({ "type": "Feature", "properties": p, "geometry": geometry }));
    }
    let half_step = 0.5 * report.criteria.coverage_step_m;
    for b in &report.blind_spots {
        let (from, to) = ((b.from_m - half_step).max(0.0), (b.to_m + half_step).min(route.length_m()));
        let geometry = line(frame, &route.line.points_between(from, to));
        features.push(json!({
            "type": "Feature",
            "properties": {
                "kind": "blind_spot",
                "route": report.route.id,
                "from_m": b.from_m,
                "to_m": b.to_m,
                "on_the_line": b.on_the_line,
                "stroke": "#000000",
                "stroke-width": 8,
                "stroke-opacity": 0.5,
            },
            "geometry": geometry,
        }));
    }
    json!({ "type": "FeatureCollection", "features": features })
}
