//! `rsu-lab replay rsi`: runs the RSU's road safety information detector (`rsu_site::rsi`) over
//! the tracks re-fused from logs, at the broadcast ticks, exactly as the daemon runs it on each
//! fusion step, and lists the events it raises: type, start and end (seconds into the log), lane,
//! place, confidence and the tracks behind each, and (in logs with ground truth) the true object
//! nearest to where each event started. With `--json` the events are printed as JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rsu_fusion::{FusedObject, Timestamp};
use rsu_site::rsi::{RsiConfig, RsiDetector, RsiTrack};
use rsu_site::{SiteModel, SiteSource};
use serde::Serialize;
use v2x_proto::domain::{GroundTruthFrame, GroundTruthObject, RsiEvent, RsiEventPhase};
use v2x_replays::pipeline::{ReplayConfig, ReplayEvent, replay_with};
use v2x_replays::{ReplayBody, ReplayReader};

/// Arguments of `rsu-lab replay rsi`.
#[derive(Args)]
pub struct RsiArgs {
    /// Logs (or folders whose `*.mcap` files are read, in name order).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Site folder with the map (lanes, crosswalks, intersections); default the embedded site.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Detector thresholds (TOML, the `[rsi]` table of `rsu.toml` without its header).
    #[arg(long)]
    pub rsi: Option<PathBuf>,
    /// Print the events as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One event of a log, from its start to its end (or the log's end).
#[derive(Clone, Debug, Serialize)]
pub struct LoggedEvent {
    /// The detector's event id.
    pub event_id: u32,
    /// `stopped_vehicle`, `pedestrian_in_roadway`, `wrong_way_vehicle`, `congestion`.
    pub kind: &'static str,
    /// When the condition began, seconds into the log.
    pub condition_from_s: f64,
    /// When the event started, seconds into the log.
    pub start_s: f64,
    /// When it ended, seconds into the log (`None`: still going at the log's end).
    pub end_s: Option<f64>,
    /// The lane at its start.
    pub lane: String,
    /// Where it started, site frame [m].
    pub position_m: [f64; 2],
    /// Confidence at its start [%].
    pub confidence_pct: u8,
    /// Every track behind it over its life.
    pub track_ids: Vec<u32>,
    /// The ground-truth object nearest to where it started, at the newest truth time before its
    /// start: class, id, speed [m/s], heading [deg] and distance [m].
    pub nearest_truth: Option<String>,
}

/// The events of one log.
#[derive(Clone, Debug, Serialize)]
pub struct LogEvents {
    /// The log.
    pub log: String,
    /// Its length [s].
    pub duration_s: f64,
    /// Fusion steps the detector ran on.
    pub steps: u64,
    /// Its events in start order.
    pub events: Vec<LoggedEvent>,
}

/// Runs the detector over the re-fused tracks of one log.
pub fn log_events(path: &Path, site: &SiteModel, rsi: &RsiConfig) -> anyhow::Result<LogEvents> {
    let reader = ReplayReader::open(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = reader.meta().clone();
    let offset = site.frame.enu_from_wgs84(&meta.site.origin).coords.norm();
    if offset > 0.01 {
        bail!("{}: the log's site origin is {offset:.1} m from the map's; give its site with --site", path.display());
    }
    let mut detector = RsiDetector::new(site, rsi.clone());
    let config = ReplayConfig { poll_at_truth: false, ..ReplayConfig::default() };
    let mut raised: Vec<(RsiEvent, Option<String>)> = Vec::new();
    let mut truth: Option<GroundTruthFrame> = None;
    let mut steps = 0u64;
    let summary = replay_with(
        reader,
        &config,
        |_, at, _: &[FusedObject]| at,
        |event: ReplayEvent<'_, Timestamp, FusedObject>| {
            match event {
                ReplayEvent::Broadcast { frame: at, objects } => {
                    steps += 1;
                    let tracks: Vec<RsiTrack> = objects.iter().map(RsiTrack::from).collect();
                    for e in detector.step(*at, &tracks) {
                        let nearest = truth.as_ref().filter(|_| e.phase == RsiEventPhase::Start).and_then(|t| {
                            nearest_truth(t, [f64::from(e.position_dm[0]) / 10.0, f64::from(e.position_dm[1]) / 10.0])
                        });
                        raised.push((e, nearest));
                    }
                }
                ReplayEvent::Input { message, .. } => {
                    if let ReplayBody::GroundTruth(t) = &message.body {
                        truth = Some(t.clone());
                    }
                }
                ReplayEvent::Truth { .. } => {}
            }
            Ok::<(), std::convert::Infallible>(())
        },
    )
    .with_context(|| format!("replaying {}", path.display()))?;
    let first = Timestamp::from_nanos(summary.first_ns);
    let into = |t: Timestamp| (t.secs_since(first) * 10.0).round() / 10.0;
    let mut events: BTreeMap<u32, LoggedEvent> = BTreeMap::new();
    for (e, nearest) in raised {
        match e.phase {
            RsiEventPhase::Start => {
                events.insert(
                    e.event_id,
                    LoggedEvent {
                        event_id: e.event_id,
                        kind: e.event_type.name(),
                        condition_from_s: into(e.start_time),
                        start_s: into(e.time),
                        end_s: None,
                        lane: e.lane.clone(),
                        position_m: [f64::from(e.position_dm[0]) / 10.0, f64::from(e.position_dm[1]) / 10.0],
                        confidence_pct: e.confidence_pct,
                        track_ids: e.track_ids.clone(),
                        nearest_truth: nearest,
                    },
                );
            }
            RsiEventPhase::Update | RsiEventPhase::End => {
                if let Some(logged) = events.get_mut(&e.event_id) {
                    for id in &e.track_ids {
                        if !logged.track_ids.contains(id) {
                            logged.track_ids.push(*id);
                        }
                    }
                    if e.phase == RsiEventPhase::End {
                        logged.end_s = Some(into(e.time));
                    }
                }
            }
        }
    }
    Ok(LogEvents {
        log: path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()),
        duration_s: into(Timestamp::from_nanos(summary.last_ns)),
        steps,
        events: events.into_values().collect(),
    })
}

/// The true object of `truth` nearest to `at` [m], described.
fn nearest_truth(truth: &GroundTruthFrame, at: [f64; 2]) -> Option<String> {
    let distance = |o: &GroundTruthObject| (o.center_m.x - at[0]).hypot(o.center_m.y - at[1]);
    let o = truth.objects.iter().min_by(|a, b| distance(a).total_cmp(&distance(b)))?;
    Some(format!(
        "{} #{} {:.1} m/s heading {:.0} deg, {:.1} m away",
        o.class.name(),
        o.id,
        o.speed_mps,
        o.yaw_rad.to_degrees(),
        distance(o)
    ))
}

/// The logs named: files as given, folders' `*.mcap` files in name order.
fn logs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "mcap"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Runs `rsu-lab replay rsi`.
pub fn run(args: &RsiArgs) -> anyhow::Result<ExitCode> {
    let site = SiteSource::from_option(args.site.clone()).load().context("the site")?;
    let rsi: RsiConfig = match &args.rsi {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => RsiConfig::default(),
    };
    rsi.validate().map_err(|e| anyhow::anyhow!(e))?;
    let mut all = Vec::new();
    for path in logs(&args.paths)? {
        let report = log_events(&path, &site, &rsi)?;
        if !args.json {
            println!(
                "{}: {:.1} s, {} steps, {} events",
                report.log,
                report.duration_s,
                report.steps,
                report.events.len()
            );
            for e in &report.events {
                let end = e.end_s.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
                println!(
                    "  #{:<3} {:<22} from {:>5.1} s  start {:>5.1} s  end {:>5} s  lane {:<10} at ({:.1}, {:.1})  {:>3} %  tracks {:?}",
                    e.event_id,
                    e.kind,
                    e.condition_from_s,
                    e.start_s,
                    end,
                    e.lane,
                    e.position_m[0],
                    e.position_m[1],
                    e.confidence_pct,
                    e.track_ids
                );
                if let Some(truth) = &e.nearest_truth {
                    println!("        nearest true object: {truth}");
                }
            }
        }
        all.push(report);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all).context("JSON")?);
    }
    Ok(ExitCode::SUCCESS)
}
