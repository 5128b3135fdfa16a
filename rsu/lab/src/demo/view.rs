//! `demo.rrd`: both runs of the demo in one rerun recording, side by side on one `scenario_time`
//! timeline (seconds since each run's start), so the viewer plays them in step. A layout
//! (blueprint) puts the two runs' 3D views side by side over the speed and acceleration plots and
//! the event log; the views show the scenario's area (the cars' paths and hazards, 35 m around).
//!
//! - `map/...` (static): lanes, walkways, crosswalks, building outlines; `site/...`: sensors.
//! - `<run>/site/coverage`: the sensors' fields of view on the ground, as the RSU broadcasts them.
//! - `<run>/ground_truth`, `<run>/detections/<sensor>`, `<run>/cameras/<sensor>/detections`.
//! - `<run>/rsu/tracks`: what the RSU broadcast.
//! - `<run>/cars/ego`: the connected cars (true boxes, white).
//! - `<run>/cars/<id>/perceived`: what the car perceived, coloured by source (blue: its own
//!   sensor, orange: the RSU only, green: both); `<run>/cars/<id>/events`: warnings and braking
//!   as text events; `<run>/cars/<id>/speed_mps` and `accel_cmd_mps2` as plots.

use std::path::Path;

use anyhow::Context;
use nalgebra::Point3;
use rsu_fusion::{BoxSize, RoadsideFrame, SiteConfig, Timestamp};
use rsu_site::SiteModel;
use vehicle_sim::adas::{EventKind, Function};
use vehicle_sim::live::{LiveOutcome, describe};

use rsu::live_view::{Clock, LiveView, clip_polyline, oriented_boxes};

/// One run to show.
pub struct RunView<'a> {
    /// Entity path prefix (`with_v2x`, `without_v2x`).
    pub label: &'a str,
    /// What the run produced.
    pub outcome: &'a LiveOutcome,
    /// What the RSU broadcast during it.
    pub broadcasts: &'a [RoadsideFrame],
}

/// The area a view shows: the connected cars' paths and the scenario's hazards, with a margin.
#[derive(Clone, Copy, Debug)]
struct Region {
    min: [f64; 2],
    max: [f64; 2],
}

impl Region {
    /// Margin around the cars and hazards [m].
    const MARGIN_M: f64 = 35.0;

    fn of(runs: &[RunView<'_>]) -> Option<Region> {
        let mut focus = std::collections::BTreeSet::new();
        for run in runs {
            for car in &run.outcome.cars {
                focus.insert(car.actor_id);
                focus.extend(car.hazards.iter().map(|h| h.actor_id));
            }
        }
        let mut region: Option<Region> = None;
        for truth in runs.iter().flat_map(|r| &r.outcome.truth) {
            for o in truth.objects.iter().filter(|o| focus.contains(&o.id)) {
                let r = region
                    .get_or_insert(Region { min: [o.center_m.x, o.center_m.y], max: [o.center_m.x, o.center_m.y] });
                r.min = [r.min[0].min(o.center_m.x), r.min[1].min(o.center_m.y)];
                r.max = [r.max[0].max(o.center_m.x), r.max[1].max(o.center_m.y)];
            }
        }
        region.map(|r| Region {
            min: [r.min[0] - Self::MARGIN_M, r.min[1] - Self::MARGIN_M],
            max: [r.max[0] + Self::MARGIN_M, r.max[1] + Self::MARGIN_M],
        })
    }

    fn contains(&self, x: f64, y: f64) -> bool {
        (self.min[0]..=self.max[0]).contains(&x) && (self.min[1]..=self.max[1]).contains(&y)
    }
}

/// Writes `path` with the map and every run, and a layout: the runs' 3D views side by side,
/// speed and acceleration plots and the event log below.
pub fn write(path: &Path, site: &SiteModel, runs: &[RunView<'_>]) -> anyhow::Result<()> {
    let rec = rerun::RecordingStreamBuilder::new("rsu-demo")
        .save(path)
        .with_context(|| format!("rerun: saving to {}", path.display()))?;
    layout(runs)
        .send(&rec, rerun::blueprint::BlueprintActivation { make_active: true, make_default: true })
        .context("rerun: the demo layout")?;
    let region = Region::of(runs);
    let base = LiveView::scoped(rec.clone(), "", Clock::SinceStart(Timestamp::EPOCH));
    base.log_static("/", &rerun::ViewCoordinates::RIGHT_HAND_Z_UP());
    let mut shown = site.config.clone();
    shown.sensors.retain(|s| {
        let t = s.world_from_sensor.translation.vector;
        region.is_none_or(|r| r.contains(t.x, t.y))
    });
    base.log_site(&shown);
    base.log_map(site, region.map(|r| (r.min, r.max)));
    for run in runs {
        let view = LiveView::scoped(rec.clone(), run.label, Clock::SinceStart(run.outcome.start));
        log_run(&view, &shown, region, run);
    }
    rec.flush_blocking().context("rerun: flushing demo.rrd")?;
    Ok(())
}

/// The demo's viewer layout.
fn layout(runs: &[RunView<'_>]) -> rerun::blueprint::Blueprint {
    use rerun::blueprint::{
        Blueprint, ContainerLike, Horizontal, Spatial3DView, TextLogView, TimeSeriesView, Vertical,
    };
    let title = |label: &str| if label == "with_v2x" { "with V2X".to_owned() } else { "without V2X".to_owned() };
    let scenes: Vec<ContainerLike> = runs
        .iter()
        .map(|r| {
            Spatial3DView::new(title(r.label))
                .with_contents([
                    "/map/**".to_owned(),
                    "/site/**".to_owned(),
                    format!("/{}/**", r.label),
                    format!("- /{}/cameras/**", r.label),
                ])
                .into()
        })
        .collect();
    let plots: Vec<ContainerLike> = vec![
        TimeSeriesView::new("speed [m/s]").with_contents(["/**/speed_mps"]).into(),
        TimeSeriesView::new("acceleration request [m/s²]").with_contents(["/**/accel_cmd_mps2"]).into(),
        TextLogView::new("warnings and braking").with_contents(["/**/events"]).into(),
    ];
    Blueprint::new(
        Vertical::new([Horizontal::new(scenes).into(), Horizontal::new(plots).into()]).with_row_shares([3.0, 1.0]),
    )
}

fn log_run(view: &LiveView, site: &SiteConfig, region: Option<Region>, run: &RunView<'_>) {
    let outcome = run.outcome;
    let inside = |x: f64, y: f64| region.is_none_or(|r| r.contains(x, y));
    if let Some(first) = run.broadcasts.iter().find(|b| !b.perception_regions.is_empty()) {
        // The fields of view, clipped to the area shown.
        let strips: Vec<Vec<[f32; 3]>> = first
            .perception_regions
            .iter()
            .flat_map(|poly| {
                let closed: Vec<[f64; 2]> = poly.iter().chain(poly.first()).copied().collect();
                clip_polyline(&closed, region.map(|r| (r.min, r.max)))
            })
            .map(|piece| piece.iter().map(|p| [p[0] as f32, p[1] as f32, 0.05]).collect())
            .collect();
        view.set_time(outcome.start);
        view.log(
            "site/coverage",
            &rerun::LineStrips3D::new(strips).with_colors([rerun::Color::from_rgb(80, 160, 200)]),
        );
    }
    let cars: Vec<u32> = outcome.cars.iter().map(|c| c.actor_id).collect();
    for truth in &outcome.truth {
        let mut shown = truth.clone();
        shown.objects.retain(|o| inside(o.center_m.x, o.center_m.y));
        view.log_truth(&shown);
        let egos: Vec<_> = truth.objects.iter().filter(|o| cars.contains(&o.id)).collect();
        let boxes = oriented_boxes(
            egos.iter().map(|o| (o.center_m, o.size, o.yaw_rad)),
            egos.iter().map(|o| o.v2x_id.clone().unwrap_or_default()),
        )
        .with_colors([rerun::Color::from_rgb(240, 240, 255)]);
        view.log("cars/ego", &boxes);
    }
    for frame in &outcome.sensor_frames {
        if let Some(calib) = site.sensor(&frame.sensor_id) {
            view.log_sensor_frame(frame, calib);
        }
    }
    let mut broadcasts: Vec<&RoadsideFrame> = run.broadcasts.iter().collect();
    broadcasts.sort_by_key(|b| b.time);
    for b in broadcasts {
        view.set_time(b.time);
        let p: Vec<_> = b.participants.iter().filter(|o| inside(o.position_m.x, o.position_m.y)).collect();
        let tracks = oriented_boxes(
            p.iter().map(|o| {
                (Point3::new(o.position_m.x, o.position_m.y, o.position_m.z + o.size.height_m / 2.0), o.size, o.yaw_rad)
            }),
            p.iter().map(|o| format!("#{} {}", o.id, o.class)),
        )
        .with_colors([rerun::Color::from_rgb(255, 170, 40)]);
        view.log("rsu/tracks", &tracks);
    }
    for s in &outcome.samples {
        view.set_time(s.time);
        let base = format!("cars/{}", s.v2x_id);
        let colour =
            |o: &vehicle_sim::connected::SiteObject| match (o.perceived.seen_by.onboard, o.perceived.seen_by.rsu) {
                (true, true) => rerun::Color::from_rgb(60, 200, 90),
                (true, false) => rerun::Color::from_rgb(60, 140, 255),
                _ => rerun::Color::from_rgb(255, 150, 30),
            };
        let boxes = oriented_boxes(
            s.objects.iter().map(|o| {
                let typical = o.perceived.class.typical_size();
                let size = BoxSize::new(o.perceived.length_m, o.perceived.width_m, typical.height_m);
                (Point3::new(o.position_m.x, o.position_m.y, size.height_m / 2.0), size, o.yaw_rad)
            }),
            s.objects.iter().map(|o| format!("{} ({})", o.perceived.class, o.perceived.seen_by)),
        )
        .with_colors(s.objects.iter().map(colour).collect::<Vec<_>>());
        view.log(&format!("{base}/perceived"), &boxes);
        view.log(&format!("{base}/speed_mps"), &rerun::Scalars::new([s.speed_mps]));
        view.log(&format!("{base}/accel_cmd_mps2"), &rerun::Scalars::new([s.accel_cmd_mps2.unwrap_or(0.0)]));
    }
    for car in &outcome.cars {
        for e in &car.events {
            view.set_time(outcome.start.add_secs(e.time_s));
            let level = match (e.kind, e.function) {
                (EventKind::BrakeStart, Function::Aeb) => rerun::TextLogLevel::ERROR,
                (EventKind::Warning | EventKind::BrakeStart, _) => rerun::TextLogLevel::WARN,
                _ => rerun::TextLogLevel::INFO,
            };
            let text = rerun::TextLog::new(describe(&car.v2x_id, e)).with_level(level);
            view.log(&format!("cars/{}/events", car.v2x_id), &text);
        }
    }
}
