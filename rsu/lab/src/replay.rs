//! `rsu-lab replay`: run recorded logs through the fusion core (`run`), score them against ground
//! truth and pass or fail them (`validate`), write them as plain files for other trackers
//! (`export`), check the sensors' calibration (`calib-check`), list the road safety information
//! events the RSU would raise on them (`rsi`), and turn dataset annotations into logs (`import`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use rsu_site::SiteSource;
use v2x_replays::criteria::{self, Criteria, CriteriaSource};
use v2x_replays::pipeline::{ReplayConfig, ReplayEvent, replay, rsu_id_for};
use v2x_replays::report::{LogReport, PlotData, html_page, or_na};
use v2x_replays::validate::ValidateOptions;
use v2x_replays::{ReadMode, ReplayBody, ReplayReader, ReplayWriter};

use crate::import;

/// `rsu-lab replay …`
#[derive(Subcommand)]
pub enum ReplayCommand {
    /// Feed a log's sensor frames and vehicle states through the fusion core at their recorded
    /// times, as fast as the CPU allows, and write a log holding the input plus the fused
    /// `/rsu/<rsu_id>/frame` topic. Running it twice gives byte-identical output.
    Run {
        /// Input log.
        file: PathBuf,
        /// Output log.
        #[arg(long)]
        out: PathBuf,
        /// Replay configuration (TOML: `broadcast_rate_hz`, `[fusion]` tuning).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Read the input in recover mode: replay what is intact before any damage (a recording
        /// cut short by a crash) into a clean, complete log, and say where the input ended.
        #[arg(long)]
        recover: bool,
    },
    /// Replay logs, score them against their ground truth and pass or fail them. Exit code 0 when
    /// every log passes, 1 when any fails its criteria, 2 when a log cannot be read.
    Validate {
        /// A log, or a folder whose `*.mcap` files are validated in parallel.
        path: PathBuf,
        /// Criteria (TOML). Default: `<log>.criteria.toml` next to each log, else the built-in
        /// criteria of the log's scenario, else generic limits; the report says which.
        #[arg(long)]
        criteria: Option<PathBuf>,
        /// Write the machine-readable report here (JSON).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Write the human-readable report here (self-contained HTML).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Replay configuration (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write a rerun recording for visual review (single log only): sensors and their
        /// coverage, raw detections, fused tracks with ids, ground truth, position error over time.
        #[arg(long)]
        rrd: Option<PathBuf>,
        /// Site folder whose map (lanes, buildings) the `--rrd` review draws, in place of the
        /// embedded representative Yancheng site.
        #[arg(long)]
        site: Option<PathBuf>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Also score the recorded live broadcast: as sent (`/rsu/<id>/frame`) and as each
        /// vehicle received it (`/vehicles/<id>/received`), each object aged to the truth time
        /// by its own kinematics; the log then passes only when the broadcast as sent passes
        /// the criteria too. Printed next to the re-fused score and in the report's `live`.
        #[arg(long)]
        live: bool,
        /// Read each log in recover mode: validate what is intact before any damage (a
        /// recording cut short by a crash or power cut) and name the damage, instead of
        /// refusing the log as unreadable.
        #[arg(long)]
        recover: bool,
    },
    /// Play a log's sensor frames, vehicle states and signal controller states into a running
    /// RSU in real time (or at `--rate`), record what it broadcast to an observer subscribed to
    /// everything (and to each of the log's vehicles around itself), and score that against
    /// the log's ground truth: black-box validation of any RSU that speaks PROTOCOL.md. The
    /// RSU under test must run with the log's site and calibration. Exit code 0 when the
    /// broadcast as received passes the criteria, 1 when it fails, 2 on an error.
    Play(PlayArgs),
    /// Compare two campaign reports (`validate FOLDER --report R.json` before and after a
    /// software or calibration change): every log's change, and for the campaign, each scenario
    /// and each class the pooled MOTA change with a 95 % bootstrap interval over the logs. Exit
    /// code 0 when nothing regressed, 1 when a log now fails or lost more than `--min-effect`
    /// MOTA, or a group is significantly worse by more than that; 2 when a report is unreadable.
    Compare {
        /// The report before.
        before: PathBuf,
        /// The report after.
        after: PathBuf,
        /// Smallest MOTA drop that counts as a regression.
        #[arg(long, default_value_t = 0.01)]
        min_effect: f64,
        /// Write the comparison here (JSON).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Replay a log and write it as plain files for other trackers and scorers (no protobuf):
    /// `detections.jsonl` (every accepted lidar frame's detections in the site frame),
    /// `scoring.jsonl` (at every ground-truth time, the truths with their gate and whether the
    /// scorer counts them, and our tracks as the scorer sees them) and `summary.json` (counts
    /// and our metrics). Used by `replays/tools/peers/run_peers.py`.
    Export {
        /// Input log.
        file: PathBuf,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Criteria (TOML) whose `[scoring]` gates apply. Default: as `validate` chooses.
        #[arg(long)]
        criteria: Option<PathBuf>,
        /// Replay configuration (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check each sensor's extrinsic calibration (dx, dy, yaw) against the tracks of the other
    /// sensors and the V2X self-reports: the estimated error with its uncertainty, a drift verdict
    /// against the thresholds and the corrected calibration. Exit code 0 when no sensor drifts, 1
    /// when one does, 2 when the log cannot be read.
    CalibCheck(crate::calib_check::CalibCheckArgs),
    /// Run the road safety information detector (stopped vehicle, pedestrian in the roadway,
    /// wrong-way vehicle, congestion) over each log's re-fused tracks, as the daemon runs it, and
    /// list the events it raises.
    Rsi(crate::rsi_check::RsiArgs),
    /// Turn dataset annotations into a replay log.
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
}

/// Arguments of `rsu-lab replay play`.
#[derive(clap::Args, Debug)]
pub struct PlayArgs {
    /// The log to play.
    pub log: PathBuf,
    /// The RSU's UDP address.
    #[arg(long)]
    pub rsu: std::net::SocketAddr,
    /// The PKI folder (`rsu certs init`): `ca.pem`, `sensors/<id>.pem`, `vehicles/<id>.pem`,
    /// `signals/<id>.pem` with their keys. Every sensor of the log needs a certificate; the
    /// log's vehicles and signal controllers without one are not played.
    #[arg(long)]
    pub pki: PathBuf,
    /// The name the RSU's certificate is valid for.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// Played seconds per log second (1 = real time; 0.1 to 10). Times in the messages are
    /// scaled too, so at a rate other than 1 objects seem to move slower or faster than their
    /// reported speeds.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Where the played log goes (inputs as sent, ground truth, frames received).
    #[arg(long, default_value = "played.mcap")]
    pub out: PathBuf,
    /// The observer's vehicle id (default: the first vehicle certificate the log does not use).
    #[arg(long)]
    pub observer: Option<String>,
    /// Radius the log's vehicles subscribe to around themselves [m].
    #[arg(long, default_value_t = 150)]
    pub radius: u32,
    /// Criteria (TOML). Default: as `validate` chooses for the log played.
    #[arg(long)]
    pub criteria: Option<PathBuf>,
    /// Write the machine-readable report of the played log here (JSON).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Supported dataset formats.
#[derive(Subcommand)]
pub enum ImportFormat {
    /// DAIR-V2X / V2X-Seq infrastructure side: `data_info.json`, per-frame `label/virtuallidar`
    /// and `calib/virtuallidar_to_world` JSON files.
    DairV2x(import::DairArgs),
    /// ASAM OpenLABEL 3D boxes (TUMTraf / A9): one JSON file or a folder of them, with
    /// `frame_properties.timestamp` and `object_data.cuboid.val = [x,y,z,qx,qy,qz,qw,l,w,h]`.
    Openlabel(import::DairArgs),
    /// Autoware rosbag2 (MCAP, ROS 2 CDR): `autoware_perception_msgs` DetectedObjects topics
    /// as roadside lidars (poses from `--calibration` or `/tf_static`) and a TrackedObjects
    /// topic as ground truth.
    Autoware(import::AutowareArgs),
}

/// Runs a replay subcommand.
pub fn run(command: ReplayCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReplayCommand::Run { file, out, config, recover } => {
            let mode = if recover { ReadMode::Recover } else { ReadMode::Strict };
            run_log(&file, &out, &load_config(config.as_deref())?, mode)
        }
        ReplayCommand::Validate { path, criteria, report, html, config, rrd, site, jobs, live, recover } => {
            let config = load_config(config.as_deref())?;
            if let Some(rrd) = &rrd {
                if path.is_dir() {
                    bail!("--rrd reviews one log; give a log file, not the folder {}", path.display());
                }
                let (criteria, _) = criteria_for(&path, criteria.as_deref())?;
                write_review(&path, rrd, &SiteSource::from_option(site), &config, &criteria.scoring)?;
            }
            let outputs = Outputs { report: report.as_deref(), html: html.as_deref() };
            let mode = if recover { ReadMode::Recover } else { ReadMode::Strict };
            validate(&path, criteria.as_deref(), outputs, &config, jobs, ValidateOptions { live, mode })
        }
        ReplayCommand::Play(args) => play(&args),
        ReplayCommand::Compare { before, after, min_effect, json } => {
            compare(&before, &after, min_effect, json.as_deref())
        }
        ReplayCommand::Export { file, out, criteria, config } => {
            export(&file, &out, criteria.as_deref(), &load_config(config.as_deref())?)
        }
        ReplayCommand::CalibCheck(args) => {
            let config = load_config(args.config.as_deref())?;
            crate::calib_check::run(&args, config)
        }
        ReplayCommand::Rsi(args) => crate::rsi_check::run(&args),
        ReplayCommand::Import { format: ImportFormat::DairV2x(args) } => import::import(&args, import::Format::DairV2x),
        ReplayCommand::Import { format: ImportFormat::Autoware(args) } => import::import_autoware(&args),
        ReplayCommand::Import { format: ImportFormat::Openlabel(args) } => {
            import::import(&args, import::Format::OpenLabel)
        }
    }
}

/// `rsu-lab replay compare`.
fn compare(before: &Path, after: &Path, min_effect: f64, json: Option<&Path>) -> anyhow::Result<ExitCode> {
    use v2x_replays::compare::{Campaign, CompareOptions};
    let read = |path: &Path| -> anyhow::Result<Campaign> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("{} is not a validation report", path.display()))
    };
    let (b, a) = match (read(before), read(after)) {
        (Ok(b), Ok(a)) => (b, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if !(0.0..1.0).contains(&min_effect) {
        bail!("--min-effect must be within [0, 1), not {min_effect}");
    }
    let c = v2x_replays::compare::compare(&b, &a, &CompareOptions { min_effect, ..CompareOptions::default() });
    println!("{:<44} {:>7} {:>7} {:>8}  verdict", "log", "before", "after", "change");
    for l in &c.logs {
        let verdict = match (l.regression, l.improvement) {
            (true, _) if l.passed == (true, false) => format!("REGRESSION: now fails {}", l.newly_failing.join(", ")),
            (true, _) => "REGRESSION".to_owned(),
            (false, true) if l.passed == (false, true) => "better: now passes".to_owned(),
            (false, true) => "better".to_owned(),
            _ => String::new(),
        };
        println!("{:<44} {:>7.3} {:>7.3} {:>+8.3}  {verdict}", l.file, l.mota.0, l.mota.1, l.mota.1 - l.mota.0);
    }
    println!();
    println!(
        "{:<44} {:>4} {:>7} {:>7} {:>8}  95% interval      verdict",
        "group (pooled MOTA)", "logs", "before", "after", "change"
    );
    for g in &c.groups {
        let verdict = match (g.regression, g.significant, g.mota.1 >= g.mota.0) {
            _ if g.logs < v2x_replays::compare::MIN_LOGS_TO_TEST => "too few logs to test",
            (true, _, _) => "REGRESSION",
            (false, true, true) => "better",
            (false, true, false) => "worse (within the minimum effect)",
            (false, false, _) => "no significant change",
        };
        println!(
            "{:<44} {:>4} {:>7.3} {:>7.3} {:>+8.3}  [{:+.3}, {:+.3}]  {verdict}",
            g.group,
            g.logs,
            g.mota.0,
            g.mota.1,
            g.mota.1 - g.mota.0,
            g.delta_interval.0,
            g.delta_interval.1
        );
    }
    for name in &c.only_before {
        println!("only in {}: {name}", before.display());
    }
    for name in &c.only_after {
        println!("only in {}: {name}", after.display());
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&c).context("serialising the comparison")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", if c.regression { "regression" } else { "no regression" });
    Ok(if c.regression { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `rsu-lab replay play`: plays the log, then validates the played log with its live scores.
fn play(args: &PlayArgs) -> anyhow::Result<ExitCode> {
    use vehicle_sim::pki_dir::client_settings;
    // The criteria are resolved for the log played (its scenario, its `.criteria.toml`).
    let (_, source) = criteria_for(&args.log, args.criteria.as_deref())?;
    let settings = |role: &str, required: bool| -> anyhow::Result<_> {
        if !required && !args.pki.join(role).is_dir() {
            return Ok(Default::default());
        }
        client_settings(&args.pki, role, args.rsu, &args.server_name, None).context("reading the PKI folder")
    };
    let setup = vehicle_sim::play::PlaySetup {
        log: args.log.clone(),
        out: args.out.clone(),
        rate: args.rate,
        sensors: settings("sensors", true)?,
        vehicles: settings("vehicles", true)?,
        signals: settings("signals", false)?,
        observer: args.observer.clone(),
        subscription_radius_m: args.radius,
        mode: ReadMode::Strict,
    };
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} playing [{bar:30}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("async runtime")?;
    let summary = runtime
        .block_on(vehicle_sim::play::play(&setup, |done_s, total_s| {
            bar.set_position((1000.0 * done_s / total_s.max(1e-9)).round() as u64);
            bar.set_message(format!("{done_s:.1} of {total_s:.1} s of log"));
        }))
        .with_context(|| format!("playing {} into {}", args.log.display(), args.rsu))?;
    bar.finish_and_clear();
    let rsu_id = summary.hello.as_ref().map_or("?", |h| h.rsu_id.as_str());
    println!(
        "played {:.1} s of {} into RSU {rsu_id} at {}: {} sensor frames, {} vehicle states, {} signal states sent ({} failed), at most {:.0} ms behind",
        summary.log_s,
        args.log.display(),
        args.rsu,
        summary.sensor_frames,
        summary.vehicle_states,
        summary.signal_states,
        summary.send_errors,
        summary.max_behind_s * 1e3
    );
    for (what, n) in &summary.not_played {
        println!("  not played: {n} {what}");
    }
    for (vehicle, n) in &summary.received {
        let role = if *vehicle == summary.observer { " (observer, everything)" } else { "" };
        println!("  received by {vehicle}{role}: {n} frames");
    }
    println!(
        "  the observer got {} MAP message(s) and {} road safety information event message(s) (recorded on /rsi)",
        summary.maps, summary.rsi_events
    );
    for w in &summary.warnings {
        println!("  warning: {w}");
    }
    println!("  played log: {} (criteria: {source})", args.out.display());
    // A criteria file beside the log played is not beside the played log: it is named.
    let criteria = match source {
        CriteriaSource::File(p) => Some(p),
        CriteriaSource::Embedded(_) | CriteriaSource::Defaults => None,
    };
    let outputs = Outputs { report: args.report.as_deref(), html: None };
    let options = ValidateOptions { live: true, mode: ReadMode::Strict };
    validate(&args.out, criteria.as_deref(), outputs, &ReplayConfig::default(), Some(1), options)
}

/// The replay configuration at `path` (defaults without one), checked.
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<ReplayConfig> {
    let Some(path) = path else { return Ok(ReplayConfig::default()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config: ReplayConfig = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    config.fusion.validate().with_context(|| format!("checking {}", path.display()))?;
    Ok(config)
}

/// `rsu-lab replay run`: replays `input` into `out` (input messages plus fused frames).
pub fn run_log(input: &Path, out: &Path, config: &ReplayConfig, mode: ReadMode) -> anyhow::Result<ExitCode> {
    if input == out {
        bail!("--out must differ from the input log");
    }
    let options = v2x_replays::OpenOptions { mode, ..Default::default() };
    let reader = ReplayReader::open_with(input, options).with_context(|| format!("opening {}", input.display()))?;
    let mut meta = reader.meta().clone();
    let rsu_id = rsu_id_for(&meta, config);
    if !meta.rsu_ids.contains(&rsu_id) {
        meta.rsu_ids.push(rsu_id);
    }
    meta.software_version = format!("{} (rsu-lab replay run {})", meta.software_version, env!("CARGO_PKG_VERSION"));
    let mut writer = ReplayWriter::create(out, &meta).with_context(|| format!("creating {}", out.display()))?;
    let started = Instant::now();
    let summary = replay(reader, config, |event| -> Result<(), v2x_replays::ReplayError> {
        match event {
            ReplayEvent::Input { message, .. } => match &message.body {
                // Fused frames of an earlier run are replaced by this run's.
                ReplayBody::Roadside(_) | ReplayBody::Meta(_) => Ok(()),
                // Everything else as recorded, arrival and receipt times included.
                _ => writer.write_message(message),
            },
            ReplayEvent::Broadcast { frame, .. } => writer.write_roadside_frame(frame),
            ReplayEvent::Truth { .. } => Ok(()),
        }
    })
    .with_context(|| format!("replaying {}", input.display()))?;
    writer.finish().with_context(|| format!("finishing {}", out.display()))?;
    let wall = started.elapsed().as_secs_f64();
    let log_s = (summary.last_ns - summary.first_ns) as f64 * 1e-9;
    println!(
        "replayed {} messages ({:.1} s of log) in {:.2} s ({} real time): {} fused frames written to {}",
        summary.messages,
        log_s,
        wall,
        v2x_replays::report::times(log_s / wall.max(1e-9)),
        summary.broadcasts,
        out.display()
    );
    if !summary.refused.is_empty() {
        println!("inputs refused by the fusion core: {:?}", summary.refused);
    }
    if let Some(damage) = &summary.damage {
        println!("recovered: the input ends at damage, everything before it was replayed: {damage}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `rsu-lab replay export`: writes `file` as plain files into `out`.
fn export(file: &Path, out: &Path, criteria: Option<&Path>, config: &ReplayConfig) -> anyhow::Result<ExitCode> {
    let (criteria, _) = criteria_for(file, criteria)?;
    let started = Instant::now();
    let s = v2x_replays::export::export_log(file, &criteria.scoring, config, out)
        .with_context(|| format!("exporting {}", file.display()))?;
    println!(
        "exported {} in {:.2} s to {}: {} lidar frames ({} detections, {} refused), {} truth times \
         ({} truths scored, {} outside coverage; {} tracks kept, {} on uncounted truths); MOTA {:.4}, IDF1 {}",
        file.display(),
        started.elapsed().as_secs_f64(),
        out.display(),
        s.lidar_frames,
        s.detections,
        s.lidar_frames_refused,
        s.truth_frames,
        s.scored_truths,
        s.unscored_truths,
        s.kept_tracks,
        s.dropped_tracks,
        s.metrics.overall.mota,
        or_na(s.metrics.idf1, 4)
    );
    Ok(ExitCode::SUCCESS)
}

/// Replays `log` once more, writing what happened into a rerun recording at `rrd`.
fn write_review(
    log: &Path,
    rrd: &Path,
    map_source: &SiteSource,
    config: &ReplayConfig,
    scoring: &v2x_replays::scoring::ScoringConfig,
) -> anyhow::Result<()> {
    use rsu::live_view::{LiveView, RerunTarget};
    // The site model (lanes, buildings) to draw under the review, when it is the log's site.
    let reader = ReplayReader::open(log).with_context(|| format!("opening {}", log.display()))?;
    let site = v2x_replays::pipeline::site_for(reader.meta(), config).context("applying the replay configuration")?;
    let view = LiveView::start(&RerunTarget::Save(rrd.to_path_buf()), &site)?;
    view.log_site(&site);
    match map_source.load() {
        Ok(model) if model.config.site_id == site.site_id => view.log_map(&model, None),
        Ok(_) => {
            println!("no map of site {} in {map_source}: the review shows no lanes (give --site DIR)", site.site_id)
        }
        Err(e) => tracing::warn!("loading the map from {map_source}: {e}"),
    }
    let enu = site.frame();
    let mut vehicles = std::collections::BTreeMap::new();
    replay(reader, config, |event| -> Result<(), std::convert::Infallible> {
        match event {
            ReplayEvent::Input { message, .. } => match &message.body {
                ReplayBody::Sensor(frame) => {
                    if let Some(calib) = site.sensor(&frame.sensor_id) {
                        view.log_sensor_frame(frame, calib);
                    }
                }
                ReplayBody::Vehicle(state) => {
                    let p = enu.enu_from_wgs84(&state.position);
                    vehicles.insert(state.vehicle_id.clone(), [p.x, p.y, p.z]);
                }
                _ => {}
            },
            ReplayEvent::Broadcast { frame, objects } => {
                view.log_coverage(frame.time, &frame.perception_regions);
                view.log_cycle(frame.time, objects, &vehicles);
            }
            ReplayEvent::Truth { truth, objects } => {
                view.log_truth(truth);
                // Mean distance of each truth to its nearest fused object within the vehicle gate.
                let errors: Vec<f64> = truth
                    .objects
                    .iter()
                    .filter_map(|t| {
                        objects
                            .iter()
                            .map(|o| (o.position_m.xy() - t.center_m.xy()).norm())
                            .fold(None, |best: Option<f64>, d| Some(best.map_or(d, |b| b.min(d))))
                            .filter(|d| *d <= scoring.gate_vehicle_m)
                    })
                    .collect();
                if !errors.is_empty() {
                    view.log_scalar("errors/position_m", truth.time, errors.iter().sum::<f64>() / errors.len() as f64);
                }
                view.log_scalar("counts/truth", truth.time, truth.objects.len() as f64);
                view.log_scalar("counts/tracks", truth.time, objects.len() as f64);
            }
        }
        Ok(())
    })
    .with_context(|| format!("replaying {} for review", log.display()))?;
    view.finish();
    println!("wrote the review recording {}", rrd.display());
    Ok(())
}

/// The criteria that judge `log`: `explicit`, else the file beside the log, else the built-in
/// criteria of the log's scenario, else generic defaults (see `v2x_replays::criteria::resolve`).
fn criteria_for(log: &Path, explicit: Option<&Path>) -> anyhow::Result<(Criteria, CriteriaSource)> {
    // The log is opened for its scenario only when there is no criteria file; a log that cannot
    // be opened is reported by the validation itself, with its damage.
    let scenario = || ReplayReader::open(log).ok().map(|r| r.meta().scenario.clone());
    Ok(criteria::resolve(log, scenario, explicit)?)
}

enum Outcome {
    Scored(Box<(LogReport, PlotData)>),
    Unreadable(String),
}

/// Where `validate` writes its reports.
struct Outputs<'a> {
    report: Option<&'a Path>,
    html: Option<&'a Path>,
}

/// What was and was not judged in a log without ground truth, as one printed line.
fn no_truth_line(report: &LogReport) -> String {
    let (na, scored): (Vec<_>, Vec<_>) = report.checks.iter().partition(|c| c.is_not_applicable());
    let scored: Vec<String> = scored.iter().map(|c| format!("{} ({})", c.name, c.message)).collect();
    let na: Vec<&str> = na.iter().map(|c| c.name.as_str()).collect();
    let age = &report.broadcast_age_s;
    format!(
        "no ground truth: scored {}; broadcast age p50/p99 {:.0}/{:.0} ms over {} objects; not applicable (need truth): {}",
        if scored.is_empty() { "nothing".to_owned() } else { scored.join(", ") },
        age.p50 * 1e3,
        age.p99 * 1e3,
        age.count,
        if na.is_empty() { "none".to_owned() } else { na.join(", ") }
    )
}

/// The live scores of `report` as printed lines (none without `--live`): as sent and as
/// received per vehicle, each next to the re-fused (offline) score, or why it is missing.
pub fn live_lines(report: &LogReport) -> Vec<String> {
    let Some(live) = &report.live else { return Vec::new() };
    let offline = &report.metrics;
    let versus = |m: &v2x_replays::scoring::Metrics| {
        format!(
            "MOTA {:.3} ({:+.3} vs re-fused), IDF1 {}, HOTA {}, position RMSE {} m (re-fused {} m)",
            m.overall.mota,
            m.overall.mota - offline.overall.mota,
            or_na(m.idf1, 3),
            or_na(m.hota.hota, 3),
            or_na(m.position_rmse_m, 2),
            or_na(offline.position_rmse_m, 2)
        )
    };
    let mut lines = Vec::new();
    if let Some(sent) = &live.as_sent {
        lines.push(format!(
            "live, as sent ({} frames, frame age at truth p50/p99 {:.0}/{:.0} ms): {}, criteria {}",
            sent.frames,
            sent.frame_age_s.p50 * 1e3,
            sent.frame_age_s.p99 * 1e3,
            versus(&sent.metrics),
            if sent.passed { "PASS" } else { "FAIL" }
        ));
        for c in sent.checks.iter().filter(|c| !c.passed) {
            lines.push(format!("  failing {}: {}", c.name, c.message));
        }
    }
    for (vehicle, got) in &live.as_received {
        let region = got.subscription_radius_m.map_or_else(|| "everything".to_owned(), |r| format!("{r} m around it"));
        // A whole-scene receiver is judged by the criteria, as the broadcast as sent is.
        let verdict = match (got.checks.is_empty(), got.passed) {
            (true, _) => String::new(),
            (false, true) => ", criteria PASS".to_owned(),
            (false, false) => ", criteria FAIL".to_owned(),
        };
        lines.push(format!(
            "live, as received by {vehicle} ({region}; {} frames, frame age at truth p50/p99 {:.0}/{:.0} ms): {}{verdict}",
            got.frames,
            got.frame_age_s.p50 * 1e3,
            got.frame_age_s.p99 * 1e3,
            versus(&got.metrics)
        ));
        for c in got.checks.iter().filter(|c| !c.passed) {
            lines.push(format!("  failing {}: {}", c.name, c.message));
        }
    }
    lines.extend(live.notes.iter().map(|n| format!("live: {n}")));
    lines
}

/// The `*.mcap` files of folder `dir`, in name order.
pub(crate) fn mcap_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    found.sort();
    Ok(found)
}

fn validate(
    path: &Path,
    criteria: Option<&Path>,
    outputs: Outputs<'_>,
    config: &ReplayConfig,
    jobs: Option<usize>,
    options: ValidateOptions,
) -> anyhow::Result<ExitCode> {
    let (report_path, html_path) = (outputs.report, outputs.html);
    let logs: Vec<PathBuf> = if path.is_dir() { mcap_files(path)? } else { vec![path.to_path_buf()] };
    if logs.is_empty() {
        bail!("no .mcap logs in {}", path.display());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .build()
        .context("starting the worker threads")?;
    let bar = ProgressBar::new(logs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} validating [{bar:30}] {pos}/{len} logs {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let outcomes: Vec<(PathBuf, Outcome)> = pool.install(|| {
        logs.par_iter()
            .map(|log| {
                let outcome = match criteria_for(log, criteria) {
                    Err(e) => Outcome::Unreadable(format!("{e:#}")),
                    Ok((c, source)) => {
                        let started = Instant::now();
                        let validated = v2x_replays::validate::validate(log, &c, config, options);
                        match validated {
                            Ok((mut report, plot)) => {
                                report.criteria = Some(source);
                                report.wall_time_s = started.elapsed().as_secs_f64();
                                // The log's duration: of its truth, else (no truth) of its messages.
                                let duration_s = if report.replay.truth_frames > 0 {
                                    report.metrics.duration_s
                                } else {
                                    (report.replay.last_ns - report.replay.first_ns) as f64 * 1e-9
                                };
                                report.speedup = duration_s / report.wall_time_s.max(1e-9);
                                // Only the HTML page draws the plots: without it a campaign keeps
                                // each log's report alone, whatever the number of logs.
                                let plot = if html_path.is_some() { plot } else { PlotData::default() };
                                Outcome::Scored(Box::new((report, plot)))
                            }
                            Err(e) => Outcome::Unreadable(e.to_string()),
                        }
                    }
                };
                bar.inc(1);
                (log.clone(), outcome)
            })
            .collect()
    });
    bar.finish_and_clear();

    let mut scored = Vec::new();
    let mut unreadable = Vec::new();
    println!(
        "{:<44} {:<24} {:>6} {:>7} {:>7} {:>7} {:>8}  failing",
        "log", "scenario", "result", "MOTA", "IDF1", "HOTA", "speedup"
    );
    for (log, outcome) in outcomes {
        let name = log.file_name().map_or_else(|| log.display().to_string(), |n| n.to_string_lossy().into_owned());
        match outcome {
            Outcome::Scored(b) => {
                let (r, plot) = *b;
                let failing: Vec<&str> = r.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
                let truth = r.replay.truth_frames > 0;
                println!(
                    "{name:<44} {:<24} {:>6} {:>7} {:>7} {:>7} {:>8}  {}",
                    r.scenario,
                    if r.passed { "pass" } else { "FAIL" },
                    or_na(truth.then_some(r.metrics.overall.mota), 3),
                    or_na(r.metrics.idf1.filter(|_| truth), 3),
                    or_na(r.metrics.hota.hota.filter(|_| truth), 3),
                    v2x_replays::report::times(r.speedup),
                    failing.join(", ")
                );
                if let Some(damage) = &r.replay.damage {
                    println!("    recovered: validated what precedes the damage: {damage}");
                }
                if !truth {
                    println!("    {}", no_truth_line(&r));
                }
                if let Some(source @ (CriteriaSource::Defaults | CriteriaSource::Embedded(_))) = &r.criteria {
                    println!("    criteria: {source}");
                }
                for c in r.checks.iter().filter(|c| !c.passed) {
                    println!("    {}: {}", c.name, c.message);
                }
                for line in live_lines(&r) {
                    println!("    {line}");
                }
                scored.push((r, plot));
            }
            Outcome::Unreadable(e) => {
                println!("{name:<44} {:<24} {:>6}", "", "ERROR");
                println!("    {e}");
                unreadable.push((log.display().to_string(), e));
            }
        }
    }
    if let Some(p) = report_path {
        let doc = serde_json::json!({
            "report_version": v2x_replays::report::REPORT_VERSION,
            "passed": unreadable.is_empty() && scored.iter().all(|(r, _)| r.passed),
            "logs": scored.iter().map(|(r, _)| r).collect::<Vec<_>>(),
            "unreadable": unreadable.iter().map(|(f, e)| serde_json::json!({"file": f, "error": e})).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&doc).context("serialising the report")?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = html_path {
        // The embedded site's map under the logs made on it (a surveyed site: `--site` with --rrd).
        let site = SiteSource::Embedded.load().ok();
        std::fs::write(p, html_page(&scored, &unreadable, site.as_ref()))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let all_passed = scored.iter().all(|(r, _)| r.passed);
    println!(
        "{} of {} logs passed{}",
        scored.iter().filter(|(r, _)| r.passed).count(),
        logs.len(),
        if unreadable.is_empty() { String::new() } else { format!(", {} unreadable", unreadable.len()) }
    );
    Ok(if !unreadable.is_empty() {
        ExitCode::from(2)
    } else if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
