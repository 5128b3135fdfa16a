//! `rsu-lab demo`: the cooperative-perception demo on embedded defaults (the site, the scenario
//! and its criteria are compiled in, so it runs from any folder). It plays a scenario of the
//! catalogue (default: a pedestrian stepping out from behind a parked bus in front of a connected
//! car) twice in real time against a real RSU daemon process on 127.0.0.1, with QUIC and mutual
//! TLS from a fresh development PKI: once with the car using the RSU's frames, once with the car
//! on its own sensor. The roadside sensors feed the daemon in both runs. Then it says what
//! happened in each (warnings, braking, closest approach, latency), writes the V2X run's replay
//! log, scores the log's fused output against the ground truth, and writes both runs to one rerun
//! recording.

mod daemon;
mod log;
mod view;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rsu_fusion::RoadsideFrame;
use rsu_site::SiteSource;
use serde::Serialize;
use v2x_link::client::ClientSettings;
use v2x_link::pki::{default_server_names, write_dev_pki};
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::report::{html_page, or_na};
use v2x_replays::validate::validate_live;
use v2x_replays::{ReplayBody, ReplayMessage};
use vehicle_sim::connected::CarConfig;
use vehicle_sim::live::{CarOutcome, LiveOutcome, LiveSetup, describe};

use daemon::Daemon;

/// The demo RSU's id.
const RSU_ID: &str = "rsu-demo";

/// Arguments of `rsu-lab demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Scenario of the catalogue (`cargo run -p vehicle-sim -- scenarios` lists them).
    #[arg(long, default_value = "bus-pedestrian")]
    pub scenario: String,
    /// Output folder.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of each run [s] (default: the scenario's).
    #[arg(long)]
    pub duration_s: Option<f64>,
    /// Site folder (site.toml, signal_plan.toml, *.geojson) in place of the embedded
    /// representative Yancheng site.
    #[arg(long)]
    pub site: Option<PathBuf>,
    /// Open the rerun viewer on demo.rrd at the end (when `rerun` is installed).
    #[arg(long)]
    pub viewer: bool,
}

/// One run as the summary reports it.
#[derive(Serialize)]
struct RunSummary {
    label: &'static str,
    v2x: bool,
    cars: Vec<CarOutcome>,
    sensor_frames_sent: u64,
    send_errors: u64,
    broadcast_frames: usize,
    max_behind_s: f64,
}

/// The two runs side by side for the scenario's first car and first hazard.
#[derive(Serialize)]
struct Comparison {
    car: String,
    hazard_id: Option<u32>,
    hazard_class: Option<String>,
    first_warning_s: [Option<f64>; 2],
    first_brake_s: [Option<f64>; 2],
    min_gap_m: [Option<f64>; 2],
    collided: [bool; 2],
    max_decel_mps2: [f64; 2],
    v2x_lead_time_s: Option<f64>,
    warning_gain_s: Option<f64>,
}

/// How the V2X run's log replays through the fusion core against the ground truth (`replay`),
/// and how its live broadcast scores as sent and as the car received it (`live`).
#[derive(Serialize)]
struct ReplayScore {
    /// Whether the re-fused replay passes the criteria.
    passed: bool,
    mota: f64,
    idf1: Option<f64>,
    hota: Option<f64>,
    /// `null` when nothing matched.
    position_rmse_m: Option<f64>,
    messages: log::LogCounts,
}

/// One live score in the summary.
#[derive(Serialize)]
struct LiveScoreLine {
    /// Whether it passes the criteria (as sent only).
    passed: Option<bool>,
    mota: f64,
    idf1: Option<f64>,
    hota: Option<f64>,
    /// `null` when nothing matched.
    position_rmse_m: Option<f64>,
    frames: u64,
}

impl LiveScoreLine {
    fn of(score: &v2x_replays::live::LiveScore, judged: bool) -> Self {
        let m = &score.metrics;
        LiveScoreLine {
            passed: judged.then_some(score.passed),
            mota: m.overall.mota,
            idf1: m.idf1,
            hota: m.hota.hota,
            position_rmse_m: m.position_rmse_m,
            frames: score.frames,
        }
    }
}

/// The live broadcast's scores.
#[derive(Serialize)]
struct LiveScores {
    as_sent: Option<LiveScoreLine>,
    as_received: BTreeMap<String, LiveScoreLine>,
}

#[derive(Serialize)]
struct Summary {
    scenario: String,
    seed: u64,
    duration_s: f64,
    runs: Vec<RunSummary>,
    comparison: Option<Comparison>,
    replay: ReplayScore,
    live: LiveScores,
    wire: WireBytes,
    rrd: rsu::live_view::RrdStats,
    files: BTreeMap<String, String>,
}

/// Bytes per participant of the frames the car received (its region only, path history on
/// change), as they were on the wire.
#[derive(Clone, Debug, Default, Serialize)]
struct WireBytes {
    /// Frames with at least one participant.
    frames: usize,
    median_per_participant: f64,
    p90_per_participant: f64,
    max_per_participant: f64,
}

impl WireBytes {
    fn of(receipts: &[vehicle_sim::live::Receipt]) -> WireBytes {
        let mut per: Vec<f64> = receipts
            .iter()
            .map(|r| &r.received.frame)
            .filter(|f| !f.participants.is_empty())
            .map(|f| v2x_proto::encode(f).len() as f64 / f.participants.len() as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        let at = |q: f64| per.get(((per.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
        WireBytes {
            frames: per.len(),
            median_per_participant: at(0.5),
            p90_per_participant: at(0.9),
            max_per_participant: at(1.0),
        }
    }
}

struct Run {
    label: &'static str,
    outcome: LiveOutcome,
    /// What the daemon recorded, in its order.
    recorded: Vec<ReplayMessage>,
    broadcasts: Vec<RoadsideFrame>,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let info = vehicle_sim::scenario::find(&args.scenario).with_context(|| {
        format!("unknown scenario {:?}; `cargo run -p vehicle-sim -- scenarios` lists them", args.scenario)
    })?;
    let duration_s = args.duration_s.unwrap_or(info.default_duration_s);
    anyhow::ensure!(duration_s > 0.0 && duration_s <= 600.0, "--duration-s must be within (0, 600] s");
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    // The daemon's configuration names files by absolute path.
    let work =
        std::path::absolute(&args.out).with_context(|| format!("resolving {}", args.out.display()))?.join(".work");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    println!("▶ {}: {}", info.name, info.summary);
    let started = Instant::now();
    let site_source = SiteSource::from_option(args.site.clone());
    let site = Arc::new(site_source.load().with_context(|| format!("loading {site_source}"))?);
    let scenario = vehicle_sim::scenario::build(info.name, site.clone(), args.seed)?;
    let vehicle_ids: Vec<String> = scenario.world.truth().into_iter().filter_map(|t| t.v2x_id).collect();
    let sensor_ids: Vec<String> = site.config.sensors.iter().map(|s| s.id.clone()).collect();
    let pki = write_dev_pki(&work.join("pki"), RSU_ID, &default_server_names(), &vehicle_ids, &sensor_ids)
        .context("creating the demo PKI")?;
    let site_file = work.join("site.toml");
    std::fs::write(&site_file, toml::to_string(&site.config).context("serialising the site")?)
        .with_context(|| format!("writing {}", site_file.display()))?;
    println!(
        "  {} roadside sensors and {} connected vehicle(s) with certificates from a fresh CA; RSU daemon on 127.0.0.1 (QUIC, mutual TLS)",
        sensor_ids.len(),
        vehicle_ids.len()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut runs = Vec::new();
    for (label, v2x) in [("with_v2x", true), ("without_v2x", false)] {
        let daemon = Daemon::start(&work.join(label), &site_file, &pki, RSU_ID)?;
        let settings = |ids: &[String], certs: &[(String, v2x_link::pki::CertKeyPaths)]| {
            ids.iter()
                .filter_map(|id| certs.iter().find(|(c, _)| c == id))
                .map(|(id, paths)| {
                    ClientSettings::from_files(daemon.addr, "localhost", &pki.ca_cert, &paths.cert, &paths.key)
                        .map(|s| (id.clone(), s))
                        .with_context(|| format!("client certificate of {id}"))
                })
                .collect::<anyhow::Result<BTreeMap<_, _>>>()
        };
        let setup = LiveSetup {
            scenario: info.name.to_owned(),
            seed: args.seed,
            duration_s,
            site: site.clone(),
            car: CarConfig { use_v2x: v2x, ..CarConfig::default() },
            sensors: settings(&sensor_ids, &pki.sensors)?,
            vehicles: settings(&vehicle_ids, &pki.vehicles)?,
            subscription_radius_m: 300,
            // The demo's daemon configures no signal controller.
            signals: Default::default(),
        };
        let bar = ProgressBar::new((duration_s * 10.0).round() as u64);
        bar.set_style(
            ProgressStyle::with_template("  {prefix:<12} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(if v2x { "with V2X" } else { "without V2X" });
        let outcome = runtime
            .block_on(vehicle_sim::live::run(setup, |s| {
                bar.set_position((s.elapsed_s * 10.0).round() as u64);
                bar.set_message(format!(
                    "t={:>4.1} s  {:>4.1} m/s  {}",
                    s.elapsed_s,
                    s.speed_mps,
                    s.last_event.as_deref().unwrap_or("")
                ));
            }))
            .with_context(|| format!("running {label}; the daemon's log is {}", daemon.log().display()))?;
        bar.finish_and_clear();
        let recorded = log::read_recordings(&daemon.stop()?)?;
        let broadcasts = recorded
            .iter()
            .filter_map(|m| match &m.body {
                ReplayBody::Roadside(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        print_run(label, &outcome);
        runs.push(Run { label, outcome, recorded, broadcasts });
    }

    // The V2X run's replay log, scored.
    let demo_log = args.out.join("demo.mcap");
    let with = &runs[0];
    let mut meta = vehicle_sim::record::replay_meta(&scenario, args.seed, duration_s);
    meta.software_version = concat!("rsu-lab demo ", env!("CARGO_PKG_VERSION")).to_owned();
    meta.rsu_ids = vec![RSU_ID.to_owned()];
    meta.start_time = with.outcome.start;
    meta.end_time = with.outcome.start.add_secs(duration_s);
    let counts = log::write(&demo_log, &meta, &with.recorded, &with.outcome.received, &with.outcome.truth)?;
    let (criteria, criteria_source) = v2x_replays::criteria::resolve(&demo_log, || Some(info.name.to_owned()), None)?;
    let config = ReplayConfig::default();
    let (mut report, plot) = validate_live(&demo_log, &criteria, &config).context("validating demo.mcap")?;
    report.wall_time_s = started.elapsed().as_secs_f64();
    report.criteria = Some(criteria_source.clone());
    let html = args.out.join("report.html");
    std::fs::write(&html, html_page(&[(report.clone(), plot)], &[], Some(&site)))
        .with_context(|| format!("writing {}", html.display()))?;

    let rrd = args.out.join("demo.rrd");
    let views: Vec<view::RunView<'_>> =
        runs.iter().map(|r| view::RunView { label: r.label, outcome: &r.outcome, broadcasts: &r.broadcasts }).collect();
    view::write(&rrd, &site, &views)?;
    let rrd_stats = rsu::live_view::rrd_stats(&rrd)?;

    let comparison = compare(&runs[0].outcome, &runs[1].outcome);
    let summary_path = args.out.join("summary.json");
    let files = BTreeMap::from([
        ("rerun".to_owned(), rrd.display().to_string()),
        ("log".to_owned(), demo_log.display().to_string()),
        ("report".to_owned(), html.display().to_string()),
        ("summary".to_owned(), summary_path.display().to_string()),
    ]);
    let summary = Summary {
        scenario: info.name.to_owned(),
        seed: args.seed,
        duration_s,
        runs: runs
            .iter()
            .map(|r| RunSummary {
                label: r.label,
                v2x: r.label == "with_v2x",
                cars: r.outcome.cars.clone(),
                sensor_frames_sent: r.outcome.summary.sensor_frames,
                send_errors: r.outcome.send_errors,
                broadcast_frames: r.broadcasts.len(),
                max_behind_s: r.outcome.max_behind_s,
            })
            .collect(),
        comparison,
        live: LiveScores {
            as_sent: report.live.as_ref().and_then(|l| l.as_sent.as_ref()).map(|s| LiveScoreLine::of(s, true)),
            as_received: report
                .live
                .iter()
                .flat_map(|l| &l.as_received)
                .map(|(id, s)| (id.clone(), LiveScoreLine::of(s, false)))
                .collect(),
        },
        replay: ReplayScore {
            passed: report.checks.iter().all(|c| c.passed),
            mota: report.metrics.overall.mota,
            idf1: report.metrics.idf1,
            hota: report.metrics.hota.hota,
            position_rmse_m: report.metrics.position_rmse_m,
            messages: counts,
        },
        wire: WireBytes::of(&with.outcome.received),
        rrd: rrd_stats.clone(),
        files,
    };
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary).context("serialising the summary")?)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;

    print_summary(&summary);
    println!(
        "  demo.mcap re-fused (its inputs replayed through the fusion core at their capture times): MOTA {:.3}, IDF1 {}, HOTA {}, position RMSE {} m, criteria {}",
        summary.replay.mota,
        or_na(summary.replay.idf1, 3),
        or_na(summary.replay.hota, 3),
        or_na(summary.replay.position_rmse_m, 2),
        if summary.replay.passed { "PASS" } else { "FAIL" }
    );
    for check in report.checks.iter().filter(|c| !c.passed) {
        println!("    failing {}: {}", check.name, check.message);
    }
    // The live broadcast is what the car got: it is what the criteria line judges.
    for line in crate::replay::live_lines(&report) {
        println!("  {line}");
    }
    println!(
        "  on the wire, as the car received them: median {:.1} bytes per participant (p90 {:.1}, max {:.1}) over {} frames",
        summary.wire.median_per_participant,
        summary.wire.p90_per_participant,
        summary.wire.max_per_participant,
        summary.wire.frames
    );
    println!("  criteria: {criteria_source}");
    println!(
        "  wrote {} ({} messages), {}, {} and {} in {:.0} s",
        rrd.display(),
        rrd_stats.messages,
        demo_log.display(),
        summary_path.display(),
        html.display(),
        started.elapsed().as_secs_f64()
    );
    if args.viewer {
        open_viewer(&rrd);
    } else {
        println!("  watch it: rerun {}", rrd.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_run(label: &str, outcome: &LiveOutcome) {
    let name = if label == "with_v2x" { "with V2X" } else { "without V2X" };
    println!(
        "  {name}: {:.0} s played, {} sensor frames sent, the loop at most {:.0} ms behind real time",
        outcome.duration_s,
        outcome.summary.sensor_frames,
        outcome.max_behind_s * 1e3
    );
    for car in &outcome.cars {
        for e in car.events.iter().filter(|e| e.kind != vehicle_sim::adas::EventKind::AccFollow) {
            println!("    {}", describe(&car.v2x_id, e));
        }
    }
}

/// The first car and its first hazard in both runs (warnings and braking caused by the hazard).
fn compare(with: &LiveOutcome, without: &LiveOutcome) -> Option<Comparison> {
    let a = with.cars.first()?;
    let b = without.cars.iter().find(|c| c.v2x_id == a.v2x_id)?;
    let ha = a.hazards.first();
    let hb = b.hazards.first();
    Some(Comparison {
        car: a.v2x_id.clone(),
        hazard_id: ha.map(|h| h.actor_id),
        hazard_class: ha.map(|h| h.class.to_string()),
        first_warning_s: [ha.and_then(|h| h.first_warning_s), hb.and_then(|h| h.first_warning_s)],
        first_brake_s: [ha.and_then(|h| h.first_brake_s), hb.and_then(|h| h.first_brake_s)],
        min_gap_m: [ha.and_then(|h| h.min_gap_m), hb.and_then(|h| h.min_gap_m)],
        collided: [a.collided, b.collided],
        max_decel_mps2: [a.max_decel_mps2, b.max_decel_mps2],
        v2x_lead_time_s: ha.and_then(|h| h.v2x_lead_time_s),
        warning_gain_s: match (ha.and_then(|h| h.first_warning_s), hb.and_then(|h| h.first_warning_s)) {
            (Some(x), Some(y)) => Some(y - x),
            _ => None,
        },
    })
}

fn print_summary(summary: &Summary) {
    let Some(c) = &summary.comparison else {
        println!("  (this scenario has no connected car to compare)");
        return;
    };
    let at = |t: Option<f64>| t.map_or_else(|| "none".to_owned(), |t| format!("t={t:.1} s"));
    let latency = |i: usize| {
        let l = summary.runs.get(i).and_then(|r| r.cars.first()).map(|car| &car.link.latency_ms);
        match l {
            Some(p) if p.count > 0 => format!("{:.0} / {:.0} ms", p.p50, p.p99),
            _ => "—".to_owned(),
        }
    };
    let hazard =
        c.hazard_class.as_deref().map_or("—".to_owned(), |class| format!("{class} #{}", c.hazard_id.unwrap_or(0)));
    println!();
    println!("  {:<34} {:>16} {:>16}", format!("{} / {hazard}", c.car), "with V2X", "without V2X");
    println!("  {:<34} {:>16} {:>16}", "first warning", at(c.first_warning_s[0]), at(c.first_warning_s[1]));
    println!("  {:<34} {:>16} {:>16}", "braking from", at(c.first_brake_s[0]), at(c.first_brake_s[1]));
    println!(
        "  {:<34} {:>14.1} m {:>14.1} m",
        "closest approach (clear distance)",
        c.min_gap_m[0].unwrap_or(f64::NAN),
        c.min_gap_m[1].unwrap_or(f64::NAN)
    );
    println!("  {:<34} {:>10.1} m/s² {:>10.1} m/s²", "hardest braking", c.max_decel_mps2[0], c.max_decel_mps2[1]);
    println!(
        "  {:<34} {:>16} {:>16}",
        "collision",
        if c.collided[0] { "YES" } else { "no" },
        if c.collided[1] { "YES" } else { "no" }
    );
    println!("  {:<34} {:>16} {:>16}", "V2X latency p50 / p99", latency(0), latency(1));
    if let Some(lead) = c.v2x_lead_time_s {
        println!("  The RSU gave {} the {hazard} {lead:.1} s before its own sensor had it.", c.car);
    }
    if let Some(gain) = c.warning_gain_s {
        println!("  With V2X the car warned {gain:.1} s earlier.");
    }
    println!();
}

/// Opens the rerun viewer on `rrd` when it is installed.
fn open_viewer(rrd: &Path) {
    match std::process::Command::new("rerun").arg(rrd).spawn() {
        Ok(_) => println!("  opened the rerun viewer on {}", rrd.display()),
        Err(e) => println!(
            "  could not start the rerun viewer ({e}); install it with `pip install rerun-sdk==0.36.3` or `cargo install rerun-cli@0.36.3`, then run `rerun {}`",
            rrd.display()
        ),
    }
}
