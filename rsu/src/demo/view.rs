//! `demo.rrd`: both runs of the demo in one rerun recording, side by side on one `scenario_time`
//! timeline (seconds since each run's start), so the viewer plays them in step.
//!
//! - `map/...` (static): lanes, walkways, crosswalks, building outlines; `site/...`: sensors.
//! - `<run>/site/coverage`: the sensors' fields of view on the ground, as the RSU broadcasts them.
//! - `<run>/ground_truth`, `<run>/detections/<sensor>`, `<run>/cameras/<sensor>/detections`.
//! - `<run>/rsu/tracks`: what the RSU broadcast.
//! - `<run>/cars/<id>/perceived`: what the car perceived, coloured by source (blue: its own
//!   sensor, orange: the RSU only, green: both); `<run>/cars/<id>/events`: warnings and braking
//!   as text events; `<run>/cars/<id>/speed_mps` and `accel_cmd_mps2` as plots.

use std::path::Path;

use anyhow::Context;
use nalgebra::Point3;
use rsu_fusion::{BoxSize, RoadsideFrame, Timestamp};
use vehicle_sim::adas::{EventKind, Function};
use vehicle_sim::live::{LiveOutcome, describe};
use vehicle_sim::site::SiteModel;

use rsu::live_view::{Clock, LiveView, oriented_boxes};

/// One run to show.
pub struct RunView<'a> {
    /// Entity path prefix (`with_v2x`, `without_v2x`).
    pub label: &'a str,
    /// What the run produced.
    pub outcome: &'a LiveOutcome,
    /// What the RSU broadcast during it.
    pub broadcasts: &'a [RoadsideFrame],
}

/// Writes `path` with the map and every run.
pub fn write(path: &Path, site: &SiteModel, runs: &[RunView<'_>]) -> anyhow::Result<()> {
    let rec = rerun::RecordingStreamBuilder::new("rsu-demo")
        .save(path)
        .with_context(|| format!("rerun: saving to {}", path.display()))?;
    let base = LiveView::scoped(rec.clone(), "", Clock::SinceStart(Timestamp::EPOCH));
    base.log_static("/", &rerun::ViewCoordinates::RIGHT_HAND_Z_UP());
    base.log_site(&site.config);
    base.log_map(site);
    for run in runs {
        let view = LiveView::scoped(rec.clone(), run.label, Clock::SinceStart(run.outcome.start));
        log_run(&view, site, run);
    }
    rec.flush_blocking().context("rerun: flushing demo.rrd")?;
    Ok(())
}

fn log_run(view: &LiveView, site: &SiteModel, run: &RunView<'_>) {
    let outcome = run.outcome;
    if let Some(first) = run.broadcasts.iter().find(|b| !b.perception_regions.is_empty()) {
        view.log_coverage(outcome.start, &first.perception_regions);
    }
    for truth in &outcome.truth {
        view.log_truth(truth);
    }
    for frame in &outcome.sensor_frames {
        if let Some(calib) = site.config.sensor(&frame.sensor_id) {
            view.log_sensor_frame(frame, calib);
        }
    }
    let mut broadcasts: Vec<&RoadsideFrame> = run.broadcasts.iter().collect();
    broadcasts.sort_by_key(|b| b.time);
    for b in broadcasts {
        view.set_time(b.time);
        let p = &b.participants;
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
