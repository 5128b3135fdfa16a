//! The site model: `site.toml` (a [`SiteConfig`] with the sensors' calibration), `signal_plan.toml`
//! and every `*.geojson` file of a site (lanes, routes, walkways, crosswalks, parked vehicles,
//! buildings, tunnels, signal heads in WGS84), turned into site-frame geometry.
//!
//! A site is read from a folder on disk ([`SiteModel::load`]) or from the copy built into every
//! binary ([`SiteModel::embedded`]); both go through the same parser, so a folder is a drop-in
//! override of the embedded site. GeoJSON features are told apart by their `kind` property (the
//! crate README lists the properties each kind takes). Errors name the file and the feature.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use nalgebra::Point2;
use rsu_fusion::{ConfigError, EnuFrame, ObjectClass, SiteConfig, Wgs84};
use serde_json::Value;

use crate::geometry::{OrientedBox, Polyline, Prism};
use crate::signals::SignalPlan;

/// Why a site folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A file could not be read. (The cause is part of the message, not a separate source, so
    /// it prints once.)
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A file is not valid TOML, JSON or does not have the expected fields.
    #[error("cannot parse {path}: {problem}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        problem: String,
    },
    /// `site.toml` parsed but a value is unusable.
    #[error("{path}: {cause}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The bad field.
        cause: ConfigError,
    },
    /// A GeoJSON feature is unusable.
    #[error("{path}: feature {feature}: {problem}")]
    Feature {
        /// The file.
        path: PathBuf,
        /// Index and id of the feature, e.g. `#3 (id "eb-1")`.
        feature: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// What a path is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// A vehicle lane centreline, including its connector through an intersection.
    Lane,
    /// A route for low-speed driverless vehicles (shuttle, delivery).
    Route,
    /// A pedestrian walkway (sidewalk and crosswalk).
    Walkway,
}

/// A place on a path where a signal controls passage.
#[derive(Clone, Debug, PartialEq)]
pub struct StopControl {
    /// The signal group.
    pub signal_id: String,
    /// Arc length of the stop line (or kerb for walkways) [m].
    pub stop_at_m: f64,
    /// Arc length where the controlled section ends (walkways: far kerb) [m].
    pub clear_at_m: Option<f64>,
}

/// A lane, route or walkway.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// Id from the GeoJSON `id` property.
    pub id: String,
    /// What it is for.
    pub kind: PathKind,
    /// Geometry [m], site frame.
    pub line: Polyline,
    /// Speed limit [m/s], when given.
    pub speed_limit_mps: Option<f64>,
    /// Signal control, when given.
    pub stop: Option<StopControl>,
    /// Which way a lane turns through an intersection, when it does.
    pub turn: Option<Turn>,
    /// Lane width [m] (GeoJSON `width_m`, default [`DEFAULT_LANE_WIDTH_M`]).
    pub width_m: f64,
}

/// The width of a lane or route whose GeoJSON gives no `width_m` [m].
pub const DEFAULT_LANE_WIDTH_M: f64 = 3.5;

/// Valid lane widths [m].
pub const LANE_WIDTH_RANGE_M: std::ops::RangeInclusive<f64> = 1.5..=10.0;

/// The turn a lane makes through an intersection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Turn {
    /// Left: across oncoming traffic (yields to it on a permissive green).
    Left,
    /// Right.
    Right,
    /// U-turn.
    UTurn,
}

impl Path {
    /// A path built in code (scenario-specific routes such as a jaywalker's line).
    pub fn ad_hoc(id: impl Into<String>, kind: PathKind, line: Polyline) -> Arc<Path> {
        Arc::new(Path {
            id: id.into(),
            kind,
            line,
            speed_limit_mps: None,
            stop: None,
            turn: None,
            width_m: DEFAULT_LANE_WIDTH_M,
        })
    }
}

/// A polygon area (crosswalk, tunnel).
#[derive(Clone, Debug, PartialEq)]
pub struct Area {
    /// Id from the GeoJSON `id` property.
    pub id: String,
    /// Vertices [m], site frame.
    pub polygon: Vec<Point2<f64>>,
    /// Signal group, for crosswalks.
    pub signal_id: Option<String>,
}

impl Area {
    /// Whether (x, y) lies inside.
    pub fn contains(&self, p: &Point2<f64>) -> bool {
        let poly: Vec<[f64; 2]> = self.polygon.iter().map(|q| [q.x, q.y]).collect();
        rsu_fusion::calibration::point_in_polygon(&poly, p.x, p.y)
    }
}

/// An intersection: the area between its stop lines, where lanes cross (GeoJSON kind
/// `intersection`). The MAP splits each lane crossing it into the ingress part before it and the
/// egress part after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Intersection {
    /// Id from the GeoJSON `id` property.
    pub id: String,
    /// J2735 `IntersectionReferenceID.id` (GeoJSON `intersection_id`): the id its signal
    /// controller's SPaT carries.
    pub intersection_id: u16,
    /// The area [m], site frame; its vertex mean is the MAP's reference point.
    pub polygon: Vec<Point2<f64>>,
}

/// A vehicle parked for the whole run (also an occluder).
#[derive(Clone, Debug, PartialEq)]
pub struct ParkedVehicle {
    /// Id from the GeoJSON `id` property.
    pub id: String,
    /// Its class.
    pub class: ObjectClass,
    /// Footprint [m], site frame.
    pub footprint: OrientedBox,
    /// Height [m].
    pub height_m: f64,
}

/// A signal head position.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalHead {
    /// The group it shows.
    pub signal_id: String,
    /// Position [m], site frame.
    pub position: Point2<f64>,
}

/// A whole site in the site frame.
#[derive(Clone, Debug)]
pub struct SiteModel {
    /// Sensors, origin and ground.
    pub config: SiteConfig,
    /// The site ENU frame.
    pub frame: EnuFrame,
    /// Lanes, routes and walkways by id.
    pub paths: BTreeMap<String, Arc<Path>>,
    /// Crosswalks.
    pub crosswalks: Vec<Area>,
    /// GNSS-denied areas.
    pub tunnels: Vec<Area>,
    /// Parked vehicles.
    pub parked: Vec<ParkedVehicle>,
    /// Buildings as occluders (actor id `None`).
    pub buildings: Vec<Prism>,
    /// Signal heads.
    pub signal_heads: Vec<SignalHead>,
    /// Intersections (for the MAP).
    pub intersections: Vec<Intersection>,
    /// The signal plan.
    pub signal_plan: SignalPlan,
}

/// The feature kinds a site GeoJSON may hold.
pub const KINDS: [&str; 11] = [
    "lane",
    "route",
    "walkway",
    "crosswalk",
    "tunnel",
    "road_area",
    "building",
    "parked_vehicle",
    "signal_head",
    "stop",
    "intersection",
];

fn read(path: &FsPath) -> Result<String, SiteError> {
    std::fs::read_to_string(path).map_err(|cause| SiteError::Io { path: path.to_owned(), cause })
}

/// One file of a site: its name (for error messages) and its text.
struct SiteText<'a> {
    path: PathBuf,
    text: std::borrow::Cow<'a, str>,
}

impl SiteModel {
    /// Loads `site.toml`, `signal_plan.toml` (optional) and every `*.geojson` in `dir` (in name
    /// order).
    pub fn load(dir: &FsPath) -> Result<SiteModel, SiteError> {
        let site_path = dir.join("site.toml");
        let site = SiteText { text: read(&site_path)?.into(), path: site_path };
        let plan_path = dir.join("signal_plan.toml");
        let plan =
            if plan_path.exists() { Some(SiteText { text: read(&plan_path)?.into(), path: plan_path }) } else { None };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|cause| SiteError::Io { path: dir.to_owned(), cause })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "geojson"))
            .collect();
        files.sort();
        let geojson = files
            .into_iter()
            .map(|path| Ok(SiteText { text: read(&path)?.into(), path }))
            .collect::<Result<Vec<_>, SiteError>>()?;
        Self::parse(site, plan, geojson)
    }

    /// The representative Yancheng site built into every binary (the files of
    /// `rsu/site/yancheng/`); errors name the files as `<embedded>/yancheng/...`.
    pub fn embedded() -> Result<SiteModel, SiteError> {
        let named = |name: &str, text: &'static str| SiteText {
            path: FsPath::new(crate::embedded::PATH_PREFIX).join(name),
            text: text.into(),
        };
        Self::parse(
            named("site.toml", crate::embedded::SITE_TOML),
            Some(named("signal_plan.toml", crate::embedded::SIGNAL_PLAN_TOML)),
            crate::embedded::GEOJSON.iter().map(|(name, text)| named(name, text)).collect(),
        )
    }

    fn parse(
        site: SiteText<'_>,
        plan: Option<SiteText<'_>>,
        geojson: Vec<SiteText<'_>>,
    ) -> Result<SiteModel, SiteError> {
        let config: SiteConfig = toml::from_str(&site.text)
            .map_err(|e| SiteError::Parse { path: site.path.clone(), problem: e.to_string() })?;
        config.validate().map_err(|cause| SiteError::Config { path: site.path.clone(), cause })?;
        let signal_plan = match plan {
            Some(plan) => {
                let parsed: SignalPlan = toml::from_str(&plan.text)
                    .map_err(|e| SiteError::Parse { path: plan.path.clone(), problem: e.to_string() })?;
                parsed.validate().map_err(|problem| SiteError::Parse { path: plan.path.clone(), problem })?;
                parsed
            }
            None => SignalPlan { cycle_s: 60.0, groups: Vec::new() },
        };
        let mut model = SiteModel {
            frame: config.frame(),
            config,
            paths: BTreeMap::new(),
            crosswalks: Vec::new(),
            tunnels: Vec::new(),
            parked: Vec::new(),
            buildings: Vec::new(),
            signal_heads: Vec::new(),
            intersections: Vec::new(),
            signal_plan,
        };
        for file in geojson {
            model.add_geojson(&file.path, &file.text)?;
        }
        Ok(model)
    }

    /// Adds the features of one GeoJSON FeatureCollection (`path` only names it in errors).
    pub fn add_geojson(&mut self, path: &FsPath, text: &str) -> Result<(), SiteError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| SiteError::Parse { path: path.to_owned(), problem: e.to_string() })?;
        let features = root.get("features").and_then(Value::as_array).ok_or_else(|| SiteError::Parse {
            path: path.to_owned(),
            problem: "not a GeoJSON FeatureCollection (no `features` array)".into(),
        })?;
        for (index, feature) in features.iter().enumerate() {
            let props = feature.get("properties").cloned().unwrap_or(Value::Null);
            let id = props.get("id").and_then(Value::as_str).map(str::to_owned);
            let fail = |problem: String| SiteError::Feature {
                path: path.to_owned(),
                feature: match &id {
                    Some(id) => format!("#{index} (id {id:?})"),
                    None => format!("#{index}"),
                },
                problem,
            };
            self.add_feature(feature, &props, id.clone()).map_err(fail)?;
        }
        Ok(())
    }

    fn add_feature(&mut self, feature: &Value, props: &Value, id: Option<String>) -> Result<(), String> {
        let kind = props.get("kind").and_then(Value::as_str).ok_or("missing string property `kind`")?;
        if !KINDS.contains(&kind) {
            return Err(format!("unknown kind {kind:?} (known: {})", KINDS.join(", ")));
        }
        let geometry = feature.get("geometry").ok_or("missing geometry")?;
        let geom_type = geometry.get("type").and_then(Value::as_str).ok_or("geometry has no `type`")?;
        let coords = geometry.get("coordinates").ok_or("geometry has no `coordinates`")?;
        let need_id = || id.clone().ok_or_else(|| format!("a {kind} needs a string property `id`"));
        let number = |key: &str| props.get(key).and_then(Value::as_f64);
        let string = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_owned);
        let expect = |wanted: &str| {
            if geom_type == wanted { Ok(()) } else { Err(format!("a {kind} must be a {wanted}, not a {geom_type}")) }
        };
        match kind {
            "lane" | "route" | "walkway" => {
                expect("LineString")?;
                let id = need_id()?;
                let closed = props.get("closed").and_then(Value::as_bool).unwrap_or(false);
                let points = self.ring(coords)?;
                let line = Polyline::new(points, closed).ok_or("needs at least two distinct points")?;
                let stop_key = if kind == "walkway" { "wait_at_m" } else { "stop_line_m" };
                let stop = match (string("signal_id"), number(stop_key)) {
                    (Some(signal_id), Some(stop_at_m)) => {
                        if !(0.0..=line.length_m()).contains(&stop_at_m) {
                            return Err(format!(
                                "{stop_key} = {stop_at_m} lies outside the path (0..{:.1} m)",
                                line.length_m()
                            ));
                        }
                        Some(StopControl { signal_id, stop_at_m, clear_at_m: number("cross_end_m") })
                    }
                    (Some(_), None) => return Err(format!("signal_id given without {stop_key}")),
                    _ => None,
                };
                if let Some(stop) = &stop
                    && !self.signal_plan.groups.iter().any(|g| g.signal_id == stop.signal_id)
                {
                    return Err(format!("signal_id {:?} is not in the signal plan", stop.signal_id));
                }
                let speed_limit_mps = number("speed_limit_mps");
                if speed_limit_mps.is_some_and(|v| !(v > 0.0 && v < 70.0)) {
                    return Err("speed_limit_mps must be within (0, 70)".into());
                }
                let kind = match kind {
                    "lane" => PathKind::Lane,
                    "route" => PathKind::Route,
                    _ => PathKind::Walkway,
                };
                let turn = match string("turn").as_deref() {
                    None => None,
                    Some("left") => Some(Turn::Left),
                    Some("right") => Some(Turn::Right),
                    Some("u_turn") => Some(Turn::UTurn),
                    Some(other) => {
                        return Err(format!("turn must be \"left\", \"right\" or \"u_turn\", not {other:?}"));
                    }
                };
                let width_m = number("width_m").unwrap_or(DEFAULT_LANE_WIDTH_M);
                if !LANE_WIDTH_RANGE_M.contains(&width_m) {
                    return Err(format!("width_m = {width_m} is outside 1.5..=10 m"));
                }
                if self.paths.contains_key(&id) {
                    return Err("duplicate path id".into());
                }
                self.paths.insert(id.clone(), Arc::new(Path { id, kind, line, speed_limit_mps, stop, turn, width_m }));
            }
            "crosswalk" | "tunnel" | "road_area" => {
                expect("Polygon")?;
                let area = Area { id: need_id()?, polygon: self.polygon(coords)?, signal_id: string("signal_id") };
                match kind {
                    "crosswalk" => self.crosswalks.push(area),
                    "tunnel" => self.tunnels.push(area),
                    _ => {}
                }
            }
            "building" => {
                expect("Polygon")?;
                let height_m = number("height_m").filter(|h| *h > 0.0).ok_or("needs a positive `height_m`")?;
                let polygon = self.polygon(coords)?;
                self.buildings.push(Prism::new(None, polygon, -1.0, height_m));
            }
            "parked_vehicle" => {
                expect("Polygon")?;
                let id = need_id()?;
                let class_name = string("class").unwrap_or_else(|| "car".into());
                let class = ObjectClass::ALL
                    .into_iter()
                    .find(|c| c.name() == class_name)
                    .ok_or_else(|| format!("unknown class {class_name:?}"))?;
                let polygon = self.polygon(coords)?;
                let footprint = box_from_polygon(&polygon).ok_or("a parked vehicle must be a 4-corner box")?;
                let height_m = number("height_m").unwrap_or(class.typical_size().height_m);
                self.parked.push(ParkedVehicle { id, class, footprint, height_m });
            }
            "signal_head" => {
                expect("Point")?;
                let signal_id = string("signal_id").ok_or("a signal_head needs `signal_id`")?;
                let position = self.point(coords)?;
                self.signal_heads.push(SignalHead { signal_id, position });
            }
            "stop" => {
                expect("Point")?;
                self.point(coords)?;
            }
            "intersection" => {
                expect("Polygon")?;
                let id = need_id()?;
                let intersection_id = number("intersection_id")
                    .filter(|v| v.fract() == 0.0 && (0.0..=65535.0).contains(v))
                    .ok_or("an intersection needs `intersection_id`, an integer 0..=65535")?
                    as u16;
                if self.intersections.iter().any(|i| i.id == id || i.intersection_id == intersection_id) {
                    return Err("duplicate intersection id or intersection_id".into());
                }
                let polygon = self.polygon(coords)?;
                self.intersections.push(Intersection { id, intersection_id, polygon });
            }
            other => return Err(format!("unknown kind {other:?}")),
        }
        Ok(())
    }

    fn point(&self, c: &Value) -> Result<Point2<f64>, String> {
        let arr = c.as_array().ok_or("a position must be an array [lon, lat(, alt)]")?;
        let (lon, lat) = match arr.as_slice() {
            [lon, lat] | [lon, lat, _] => (lon.as_f64(), lat.as_f64()),
            _ => (None, None),
        };
        let (Some(lon), Some(lat)) = (lon, lat) else {
            return Err(format!("bad position {c}: expected [lon, lat] in degrees"));
        };
        let wgs = Wgs84::new(lat, lon, self.frame.origin().alt_m);
        wgs.validate().map_err(|e| format!("bad position {c}: {e}"))?;
        let p = self.frame.enu_from_wgs84(&wgs);
        if p.x.hypot(p.y) > 50_000.0 {
            return Err(format!("position {c} is more than 50 km from the site origin"));
        }
        Ok(Point2::new(p.x, p.y))
    }

    fn ring(&self, c: &Value) -> Result<Vec<Point2<f64>>, String> {
        c.as_array().ok_or("coordinates must be an array of positions")?.iter().map(|p| self.point(p)).collect()
    }

    fn polygon(&self, c: &Value) -> Result<Vec<Point2<f64>>, String> {
        let outer = c.as_array().and_then(|rings| rings.first()).ok_or("a Polygon needs an outer ring")?;
        let mut ring = self.ring(outer)?;
        if ring.len() > 1 && (ring[0] - ring[ring.len() - 1]).norm() < 1e-6 {
            ring.pop();
        }
        if ring.len() < 3 {
            return Err("a Polygon needs at least 3 distinct vertices".into());
        }
        Ok(ring)
    }

    /// The path with this id.
    pub fn path(&self, id: &str) -> Option<Arc<Path>> {
        self.paths.get(id).cloned()
    }

    /// Whether a site position lies in a tunnel (no GNSS).
    pub fn in_tunnel(&self, p: &Point2<f64>) -> bool {
        self.tunnels.iter().any(|t| t.contains(p))
    }
}

/// The oriented box of a 4-corner footprint: the longer edge gives length and heading.
fn box_from_polygon(polygon: &[Point2<f64>]) -> Option<OrientedBox> {
    if polygon.len() != 4 {
        return None;
    }
    let center = Point2::from((polygon[0].coords + polygon[1].coords + polygon[2].coords + polygon[3].coords) / 4.0);
    let e0 = polygon[1] - polygon[0];
    let e1 = polygon[2] - polygon[1];
    let (long, short) = if e0.norm() >= e1.norm() { (e0, e1) } else { (e1, e0) };
    Some(OrientedBox { center, yaw_rad: long.y.atan2(long.x), length_m: long.norm(), width_m: short.norm() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_site_loads() {
        let site = SiteModel::embedded().expect("site loads");
        assert!(site.config.representative);
        let lidars = site.config.sensors.iter().filter(|s| matches!(s.model, rsu_fusion::SensorModel::Lidar(_)));
        assert!(lidars.count() >= 2);
        let eb = site.path("eb-2").expect("eb-2");
        assert!((eb.line.length_m() - 500.0).abs() < 0.5, "{}", eb.line.length_m());
        assert!(eb.stop.is_some());
        let shuttle = site.path("shuttle-loop").expect("loop");
        assert!(shuttle.line.is_closed() && shuttle.line.length_m() >= 1500.0);
        let bus = site.parked.iter().find(|p| p.class == ObjectClass::Bus).expect("parked bus");
        assert!((bus.footprint.length_m - 12.0).abs() < 0.05 && (bus.footprint.center.x + 45.0).abs() < 0.05);
        assert!(site.in_tunnel(&Point2::new(800.0, 400.0)) && !site.in_tunnel(&Point2::new(0.0, 0.0)));
    }

    #[test]
    fn bad_features_are_named() {
        let mut site = SiteModel::embedded().expect("site loads");
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"kind":"lane","id":"ok"},"geometry":{"type":"LineString","coordinates":[[120.4862,33.1995],[120.4863,33.1995]]}},
            {"type":"Feature","properties":{"kind":"lane","id":"broken"},"geometry":{"type":"LineString","coordinates":[[120.4862,"x"]]}}]}"#;
        let err = site.add_geojson(FsPath::new("bad.geojson"), text).expect_err("rejected").to_string();
        assert!(err.contains("bad.geojson") && err.contains("#1") && err.contains("broken"), "{err}");
        let err = site
            .add_geojson(FsPath::new("kind.geojson"), r#"{"features":[{"properties":{"kind":"volcano"}}]}"#)
            .expect_err("rejected")
            .to_string();
        assert!(err.contains("kind.geojson") && err.contains("volcano"), "{err}");
    }
}
