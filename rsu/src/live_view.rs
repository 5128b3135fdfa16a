//! The live rerun view of the daemon (`--rerun save FILE.rrd` or `--rerun connect URL`): the
//! site (origin, sensor positions, ground areas) once, then on the `capture` timeline (UTC) each
//! sensor's detections (lidar boxes in the site frame, camera boxes in pixels), the fused tracks
//! with their ids and classes, and the connected vehicles at their reported positions.
//!
//! Entity paths: `site/sensors`, `site/ground`, `detections/<sensor id>`,
//! `cameras/<sensor id>/detections`, `tracks`, `vehicles`. A [`LiveView::scoped`] view puts them
//! under a prefix and can log on a `scenario_time` timeline instead (the demo's two runs).
//! [`LiveView::log_map`] adds a site's lanes, walkways, crosswalks and buildings (`map/...`).
//! [`rrd_stats`] decodes a saved recording, to check it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nalgebra::Point3;
use rsu_fusion::{BoxSize, Detections, FusedObject, SensorCalibration, SensorFrame, SiteConfig, Timestamp};

use crate::config::RerunConfig;

/// Where the view goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RerunTarget {
    /// Save to an `.rrd` file.
    Save(PathBuf),
    /// Stream to a viewer's gRPC proxy, e.g. `rerun+http://127.0.0.1:9876/proxy`.
    Connect(String),
}

impl RerunTarget {
    /// The target in the configuration file, if any.
    pub fn from_config(config: &RerunConfig) -> Option<RerunTarget> {
        match (&config.save, &config.connect) {
            (Some(path), _) => Some(RerunTarget::Save(path.clone())),
            (None, Some(url)) => Some(RerunTarget::Connect(url.clone())),
            (None, None) => None,
        }
    }

    /// Parses the command line's `--rerun save FILE` / `--rerun connect ADDR` (an address
    /// `host:port` becomes `rerun+http://host:port/proxy`).
    pub fn parse(args: &[String]) -> anyhow::Result<RerunTarget> {
        match args {
            [mode, file] if mode == "save" => Ok(RerunTarget::Save(PathBuf::from(file))),
            [mode, addr] if mode == "connect" => Ok(RerunTarget::Connect(if addr.contains("://") {
                addr.clone()
            } else {
                format!("rerun+http://{addr}/proxy")
            })),
            _ => anyhow::bail!("--rerun takes `save FILE.rrd` or `connect ADDR`"),
        }
    }
}

/// Which timeline a view logs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// `capture`: UTC time stamps (the daemon).
    Capture,
    /// `scenario_time`: seconds since this instant (the demo, whose runs start at different
    /// wall times but play the same scenario).
    SinceStart(Timestamp),
}

/// A rerun recording stream fed by the fusion loop.
pub struct LiveView {
    rec: rerun::RecordingStream,
    /// Prepended to every entity path (empty, or ending in `/`).
    prefix: String,
    clock: Clock,
}

impl LiveView {
    /// Opens the view.
    pub fn start(target: &RerunTarget, site: &SiteConfig) -> anyhow::Result<LiveView> {
        let builder = rerun::RecordingStreamBuilder::new("rsu");
        let rec = match target {
            RerunTarget::Save(path) => {
                builder.save(path).with_context(|| format!("rerun: saving to {}", path.display()))?
            }
            RerunTarget::Connect(url) => {
                builder.connect_grpc_opts(url.clone()).with_context(|| format!("rerun: connecting to {url}"))?
            }
        };
        tracing::info!(?target, site = %site.site_id, "live view");
        Ok(LiveView { rec, prefix: String::new(), clock: Clock::Capture })
    }

    /// A view on `rec` whose entity paths start with `prefix` (e.g. `with_v2x`), on `clock`.
    pub fn scoped(rec: rerun::RecordingStream, prefix: &str, clock: Clock) -> LiveView {
        let prefix = if prefix.is_empty() { String::new() } else { format!("{}/", prefix.trim_end_matches('/')) };
        LiveView { rec, prefix, clock }
    }

    /// Logs `what` at entity `path` (under the view's prefix) at the current time.
    pub fn log(&self, path: &str, what: &impl rerun::AsComponents) {
        if let Err(e) = self.rec.log(format!("{}{path}", self.prefix), what) {
            tracing::debug!("rerun: {e}");
        }
    }

    /// Logs `what` at entity `path` (under the view's prefix) as static.
    pub fn log_static(&self, path: &str, what: &impl rerun::AsComponents) {
        if let Err(e) = self.rec.log_static(format!("{}{path}", self.prefix), what) {
            tracing::debug!("rerun: {e}");
        }
    }

    /// Logs the static site: origin and sensor positions with their ids, ground areas.
    pub fn log_site(&self, site: &SiteConfig) {
        let positions: Vec<[f32; 3]> = site
            .sensors
            .iter()
            .map(|s| {
                let t = s.world_from_sensor.translation.vector;
                [t.x as f32, t.y as f32, t.z as f32]
            })
            .collect();
        let labels: Vec<String> = site.sensors.iter().map(|s| s.id.clone()).collect();
        let sensors = rerun::Points3D::new(positions).with_labels(labels).with_radii([0.5f32]);
        self.log_static("site/sensors", &sensors);
        let origin = rerun::Points3D::new([[0.0f32, 0.0, 0.0]]).with_labels([site.site_id.clone()]);
        self.log_static("site/origin", &origin);
        let strips: Vec<Vec<[f32; 3]>> = site
            .ground
            .areas
            .iter()
            .map(|a| {
                let mut strip: Vec<[f32; 3]> =
                    a.polygon_m.iter().map(|p| [p[0] as f32, p[1] as f32, a.height_m as f32]).collect();
                if let Some(first) = strip.first().copied() {
                    strip.push(first);
                }
                strip
            })
            .collect();
        if !strips.is_empty() {
            self.log_static("site/ground", &rerun::LineStrips3D::new(strips));
        }
    }

    /// Logs the site's map as static line strips: lanes and routes (`map/lanes`), walkways,
    /// crosswalks and building outlines (base and roof); with `within` (min, max corners [m]),
    /// only what lies inside that rectangle, so a view of one scenario frames its area.
    pub fn log_map(&self, site: &rsu_site::model::SiteModel, within: Option<([f64; 2], [f64; 2])>) {
        use rsu_site::model::PathKind;
        let clip = |points: Vec<[f64; 2]>, z: f64| -> Vec<Vec<[f32; 3]>> {
            clip_polyline(&points, within)
                .into_iter()
                .map(|piece| strip(piece.into_iter().map(|p| (p[0], p[1])), z))
                .collect()
        };
        let lines = |kinds: &[PathKind]| -> Vec<Vec<[f32; 3]>> {
            site.paths
                .values()
                .filter(|p| kinds.contains(&p.kind))
                .flat_map(|p| {
                    let mut pts: Vec<[f64; 2]> = p.line.points().iter().map(|q| [q.x, q.y]).collect();
                    if p.line.is_closed()
                        && let Some(first) = pts.first().copied()
                    {
                        pts.push(first);
                    }
                    clip(pts, 0.02)
                })
                .collect()
        };
        let closed = |polygon: &[nalgebra::Point2<f64>], z: f64| {
            let mut pts: Vec<[f64; 2]> = polygon.iter().map(|q| [q.x, q.y]).collect();
            if let Some(first) = pts.first().copied() {
                pts.push(first);
            }
            clip(pts, z)
        };
        let layers = [
            ("map/lanes", lines(&[PathKind::Lane, PathKind::Route]), rerun::Color::from_rgb(90, 90, 100)),
            ("map/walkways", lines(&[PathKind::Walkway]), rerun::Color::from_rgb(70, 120, 70)),
            (
                "map/crosswalks",
                site.crosswalks.iter().flat_map(|a| closed(&a.polygon, 0.03)).collect(),
                rerun::Color::from_rgb(220, 220, 220),
            ),
            (
                "map/buildings",
                site.buildings
                    .iter()
                    .flat_map(|b| [closed(&b.polygon, b.base_z_m), closed(&b.polygon, b.top_z_m)])
                    .flatten()
                    .collect(),
                rerun::Color::from_rgb(140, 110, 90),
            ),
        ];
        for (path, strips, colour) in layers {
            if !strips.is_empty() {
                self.log_static(path, &rerun::LineStrips3D::new(strips).with_colors([colour]));
            }
        }
    }

    /// Sets the view's timeline to `t`.
    pub fn set_time(&self, t: Timestamp) {
        match self.clock {
            Clock::Capture => {
                self.rec.set_time("capture", rerun::TimeCell::from_timestamp_nanos_since_epoch(t.as_nanos()))
            }
            // Frames captured just before the start (trigger jitter) are shown at the start.
            Clock::SinceStart(start) => self.rec.set_duration_secs("scenario_time", t.secs_since(start).max(0.0)),
        }
    }

    /// Logs one sensor frame's detections at its capture time.
    pub fn log_sensor_frame(&self, frame: &SensorFrame, calib: &SensorCalibration) {
        self.set_time(frame.capture_time);
        match &frame.detections {
            Detections::Lidar(boxes) => {
                let mount_yaw = calib.world_from_sensor.rotation.euler_angles().2;
                let view = oriented_boxes(
                    boxes.iter().map(|d| (calib.world_from_sensor * d.center_in_sensor, d.size, mount_yaw + d.yaw_rad)),
                    boxes.iter().map(|d| format!("{:?} {:.2}", d.class, d.score)),
                );
                self.log(&format!("detections/{}", frame.sensor_id), &view);
            }
            Detections::Camera(camera) => {
                let mins: Vec<[f32; 2]> = camera.boxes.iter().map(|b| [b.min_px.x as f32, b.min_px.y as f32]).collect();
                let sizes: Vec<[f32; 2]> = camera
                    .boxes
                    .iter()
                    .map(|b| [(b.max_px.x - b.min_px.x) as f32, (b.max_px.y - b.min_px.y) as f32])
                    .collect();
                let labels: Vec<String> = camera
                    .boxes
                    .iter()
                    .map(|b| {
                        let (class, score) = b.best_class();
                        format!("{class:?} {score:.2}")
                    })
                    .collect();
                let view = rerun::Boxes2D::from_mins_and_sizes(mins, sizes).with_labels(labels);
                self.log(&format!("cameras/{}/detections", frame.sensor_id), &view);
            }
        }
    }

    /// Logs the fused tracks and connected vehicles of one cycle at `time`.
    pub fn log_cycle(&self, time: Timestamp, objects: &[FusedObject], vehicles: &BTreeMap<String, [f64; 3]>) {
        self.set_time(time);
        let labels = objects.iter().map(|o| match &o.v2x_id {
            Some(v) => format!("#{} {:?} {:.1} m/s ({v})", o.id, o.class, o.speed_mps),
            None => format!("#{} {:?} {:.1} m/s", o.id, o.class, o.speed_mps),
        });
        // Fused positions are ground-contact points; boxes are drawn around their centres.
        let tracks = oriented_boxes(
            objects.iter().map(|o| {
                (Point3::new(o.position_m.x, o.position_m.y, o.position_m.z + o.size.height_m / 2.0), o.size, o.yaw_rad)
            }),
            labels,
        )
        .with_class_ids(objects.iter().map(|o| o.class as u16).collect::<Vec<_>>());
        self.log("tracks", &tracks);
        let positions: Vec<[f32; 3]> = vehicles.values().map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]).collect();
        let ids: Vec<String> = vehicles.keys().cloned().collect();
        self.log("vehicles", &rerun::Points3D::new(positions).with_labels(ids).with_radii([0.8f32]));
    }

    /// Logs the ground truth of a replay at its time: boxes with ids and classes (`ground_truth`).
    pub fn log_truth(&self, truth: &v2x_proto::domain::GroundTruthFrame) {
        self.set_time(truth.time);
        let o = &truth.objects;
        let view = oriented_boxes(
            o.iter().map(|g| (g.center_m, g.size, g.yaw_rad)),
            o.iter().map(|g| format!("truth {} {:?}", g.id, g.class)),
        )
        .with_colors([rerun::Color::from_rgb(150, 150, 150)]);
        self.log("ground_truth", &view);
    }

    /// Logs the ground area the sensors cover at `time` (`site/coverage`), as closed polygons.
    pub fn log_coverage(&self, time: Timestamp, regions: &[Vec<[f64; 2]>]) {
        self.set_time(time);
        let strips: Vec<Vec<[f32; 3]>> = regions
            .iter()
            .map(|r| r.iter().chain(r.first()).map(|p| [p[0] as f32, p[1] as f32, 0.0]).collect())
            .collect();
        self.log("site/coverage", &rerun::LineStrips3D::new(strips));
    }

    /// Logs a scalar time series (e.g. `errors/position_m`) at `time`.
    pub fn log_scalar(&self, path: &str, time: Timestamp, value: f64) {
        self.set_time(time);
        self.log(path, &rerun::Scalars::new([value]));
    }

    /// Flushes what is buffered.
    pub fn finish(self) {
        if let Err(e) = self.rec.flush_blocking() {
            tracing::warn!("rerun: flushing the live view: {e}");
        }
    }
}

/// The pieces of the polyline `points` inside the rectangle `within` (min, max corners [m]),
/// each segment clipped (Liang-Barsky); the whole polyline when `within` is `None`.
pub fn clip_polyline(points: &[[f64; 2]], within: Option<([f64; 2], [f64; 2])>) -> Vec<Vec<[f64; 2]>> {
    let Some((lo, hi)) = within else { return vec![points.to_vec()] };
    let mut pieces: Vec<Vec<[f64; 2]>> = Vec::new();
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let d = [b[0] - a[0], b[1] - a[1]];
        let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
        let mut inside = true;
        for axis in 0..2 {
            for (p, q) in [(-d[axis], a[axis] - lo[axis]), (d[axis], hi[axis] - a[axis])] {
                if p == 0.0 {
                    inside &= q >= 0.0;
                } else if p < 0.0 {
                    t0 = t0.max(q / p);
                } else {
                    t1 = t1.min(q / p);
                }
            }
        }
        if !inside || t0 > t1 {
            continue;
        }
        let at = |t: f64| [a[0] + t * d[0], a[1] + t * d[1]];
        let (start, end) = (at(t0), at(t1));
        match pieces.last_mut() {
            Some(piece) if piece.last() == Some(&start) => piece.push(end),
            _ => pieces.push(vec![start, end]),
        }
    }
    pieces
}

/// Points (x, y) at height `z` [m] as rerun positions.
fn strip(points: impl Iterator<Item = (f64, f64)>, z: f64) -> Vec<[f32; 3]> {
    points.map(|(x, y)| [x as f32, y as f32, z as f32]).collect()
}

/// Boxes from (centre [m], size, yaw about up [rad]) with labels.
pub fn oriented_boxes(
    boxes: impl Iterator<Item = (Point3<f64>, BoxSize, f64)>,
    labels: impl Iterator<Item = String>,
) -> rerun::Boxes3D {
    let (mut centers, mut half, mut rotations) = (Vec::new(), Vec::new(), Vec::new());
    for (c, size, yaw_rad) in boxes {
        centers.push([c.x as f32, c.y as f32, c.z as f32]);
        half.push([size.length_m as f32 / 2.0, size.width_m as f32 / 2.0, size.height_m as f32 / 2.0]);
        rotations.push(rerun::RotationAxisAngle::new([0.0, 0.0, 1.0], rerun::Angle::from_radians(yaw_rad as f32)));
    }
    rerun::Boxes3D::from_centers_and_half_sizes(centers, half)
        .with_rotation_axis_angles(rotations)
        .with_labels(labels.collect::<Vec<_>>())
}

/// What an `.rrd` file holds: messages decoded, how many carry data, and the entity paths.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RrdStats {
    /// Messages.
    pub messages: usize,
    /// Data (Arrow) messages.
    pub data_messages: usize,
    /// Entity paths with data, sorted.
    pub entities: std::collections::BTreeSet<String>,
}

/// Decodes every message of `path` (an error names the first undecodable one).
pub fn rrd_stats(path: &Path) -> anyhow::Result<RrdStats> {
    use rerun::external::re_log_encoding::DecoderApp;
    use rerun::log::{Chunk, LogMsg};
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let decoder = DecoderApp::decode_eager(std::io::BufReader::new(file))
        .with_context(|| format!("decoding {}", path.display()))?;
    let mut stats = RrdStats::default();
    for msg in decoder {
        let msg = msg.with_context(|| format!("decoding {} after {} messages", path.display(), stats.messages))?;
        stats.messages += 1;
        if let LogMsg::ArrowMsg(_, arrow) = &msg {
            stats.data_messages += 1;
            let chunk = Chunk::from_arrow_msg(arrow)
                .with_context(|| format!("decoding a chunk of {} after {} messages", path.display(), stats.messages))?;
            stats.entities.insert(chunk.entity_path().to_string());
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polylines_are_clipped_to_the_rectangle() {
        let line = [[-10.0, 0.0], [0.0, 0.0], [10.0, 0.0], [10.0, 20.0]];
        assert_eq!(clip_polyline(&line, None), vec![line.to_vec()]);
        let pieces = clip_polyline(&line, Some(([-5.0, -1.0], [20.0, 5.0])));
        assert_eq!(pieces, vec![vec![[-5.0, 0.0], [0.0, 0.0], [10.0, 0.0], [10.0, 5.0]]]);
        assert!(clip_polyline(&line, Some(([30.0, 30.0], [40.0, 40.0]))).is_empty());
    }

    #[test]
    fn targets_parse() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(RerunTarget::parse(&args(&["save", "x.rrd"])).expect("save"), RerunTarget::Save("x.rrd".into()));
        assert_eq!(
            RerunTarget::parse(&args(&["connect", "127.0.0.1:9876"])).expect("connect"),
            RerunTarget::Connect("rerun+http://127.0.0.1:9876/proxy".into())
        );
        assert!(RerunTarget::parse(&args(&["show"])).is_err());
    }

    #[test]
    fn a_saved_view_has_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.rrd");
        let site = v2x_proto::sample::site();
        let view = LiveView::start(&RerunTarget::Save(path.clone()), &site).expect("start");
        view.log_site(&site);
        let lidar = v2x_proto::sample::lidar_frame();
        view.log_sensor_frame(&lidar, site.sensor(&lidar.sensor_id).expect("calibrated"));
        let camera = v2x_proto::sample::camera_frame();
        view.log_sensor_frame(&camera, site.sensor(&camera.sensor_id).expect("calibrated"));
        let vehicles = BTreeMap::from([("veh-1".to_owned(), [1.0, 2.0, 0.0])]);
        view.log_cycle(lidar.capture_time, &[], &vehicles);
        view.finish();
        let size = std::fs::metadata(&path).expect("rrd written").len();
        assert!(size > 1000, "rrd has {size} bytes");
        let stats = rrd_stats(&path).expect("decodes");
        assert!(stats.data_messages >= 5, "{stats:?}");
        assert!(stats.entities.contains("/site/sensors") && stats.entities.contains("/vehicles"), "{stats:?}");
        std::fs::write(&path, b"RRF2 but not really").expect("overwrite");
        assert!(rrd_stats(&path).is_err(), "garbage is not an rrd");
    }
}
