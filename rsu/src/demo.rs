//! `rsu demo`: the cooperative-perception demo on embedded defaults. It simulates a scenario of
//! the catalogue (default: a pedestrian stepping out from behind a parked bus in front of a
//! connected car), records it, replays the recording through the fusion core, validates the fused
//! output against the ground truth, and says what the RSU saw and how early.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use v2x_replays::criteria::Criteria;
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::report::html_page;
use v2x_replays::validate::validate_log;
use v2x_replays::{ReplayBody, ReplayReader};

/// Arguments of `rsu demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Scenario of the catalogue.
    #[arg(long, default_value = "bus-pedestrian")]
    pub scenario: String,
    /// Output folder.
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated duration [s] (default: the scenario's).
    #[arg(long)]
    pub duration_s: Option<f64>,
}

/// A connected vehicle's closest approach to a vulnerable road user, and when the RSU had it.
#[derive(Serialize)]
struct Encounter {
    vehicle_v2x_id: String,
    vru_id: u32,
    vru_class: String,
    min_distance_m: f64,
    closest_at_s: f64,
    rsu_first_tracked_at_s: Option<f64>,
    lead_time_s: Option<f64>,
}

#[derive(Serialize)]
struct Summary {
    scenario: String,
    seed: u64,
    duration_s: f64,
    passed: bool,
    mota: f64,
    idf1: f64,
    position_rmse_m: f64,
    broadcast_age_p99_s: f64,
    encounters: Vec<Encounter>,
    files: BTreeMap<String, String>,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let info = vehicle_sim::scenario::find(&args.scenario).with_context(|| {
        format!("unknown scenario {:?}; `cargo run -p vehicle-sim -- scenarios` lists them", args.scenario)
    })?;
    let duration_s = args.duration_s.unwrap_or(info.default_duration_s);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let raw = args.out.join("demo-input.mcap");
    let log = args.out.join("demo.mcap");
    println!("▶ {}: {}", info.name, info.summary);

    let started = Instant::now();
    let site_dir = vehicle_sim::site::default_site_dir();
    let site = Arc::new(
        vehicle_sim::site::SiteModel::load(&site_dir)
            .with_context(|| format!("loading the site {}", site_dir.display()))?,
    );
    let recorded = vehicle_sim::record::record(site, info.name, args.seed, duration_s, &raw)
        .with_context(|| format!("simulating {}", info.name))?;
    println!(
        "  simulated {duration_s:.0} s: {} sensor frames, {} ground-truth frames, {} V2X self-reports, up to {} participants ({:.1} s)",
        recorded.sensor_frames,
        recorded.truth_frames,
        recorded.vehicle_states,
        recorded.max_participants,
        started.elapsed().as_secs_f64()
    );

    let config = ReplayConfig::default();
    crate::replay_cmd::run_log(&raw, &log, &config)?;
    std::fs::remove_file(&raw).with_context(|| format!("removing {}", raw.display()))?;

    let criteria = criteria_for(info.name)?;
    let (mut report, plot) = validate_log(&log, &criteria, &config).context("validating the replay")?;
    report.wall_time_s = started.elapsed().as_secs_f64();
    report.speedup = report.metrics.duration_s / report.wall_time_s.max(1e-9);
    let html = args.out.join("report.html");
    std::fs::write(&html, html_page(&[(report.clone(), plot)], &[]))
        .with_context(|| format!("writing {}", html.display()))?;

    let encounters = encounters(&log, &report.metrics.first_matched_ns)?;
    let mut files = BTreeMap::new();
    files.insert("log".into(), log.display().to_string());
    files.insert("report".into(), html.display().to_string());
    let summary_path = args.out.join("summary.json");
    files.insert("summary".into(), summary_path.display().to_string());
    let summary = Summary {
        scenario: info.name.into(),
        seed: args.seed,
        duration_s,
        passed: report.passed,
        mota: report.metrics.overall.mota,
        idf1: report.metrics.idf1,
        position_rmse_m: report.metrics.position_rmse_m,
        broadcast_age_p99_s: report.broadcast_age_s.p99,
        encounters,
        files,
    };
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary).context("serialising the summary")?)
        .with_context(|| format!("writing {}", summary_path.display()))?;

    println!(
        "  fused and scored: MOTA {:.3}, IDF1 {:.3}, position RMSE {:.2} m, broadcast age p99 {:.0} ms — {}",
        summary.mota,
        summary.idf1,
        summary.position_rmse_m,
        summary.broadcast_age_p99_s * 1e3,
        if summary.passed { "criteria PASS" } else { "criteria FAIL" }
    );
    for c in report.checks.iter().filter(|c| !c.passed) {
        println!("    failing {}: {}", c.name, c.message);
    }
    for e in &summary.encounters {
        match (e.rsu_first_tracked_at_s, e.lead_time_s) {
            (Some(t), Some(lead)) => println!(
                "  {} came within {:.1} m of {} #{} at t={:.1} s; the RSU was tracking it from t={:.1} s, {:.1} s before",
                e.vehicle_v2x_id, e.min_distance_m, e.vru_class, e.vru_id, e.closest_at_s, t, lead
            ),
            _ => println!(
                "  {} came within {:.1} m of {} #{} at t={:.1} s; the RSU never tracked it",
                e.vehicle_v2x_id, e.min_distance_m, e.vru_class, e.vru_id, e.closest_at_s
            ),
        }
    }
    println!("  wrote {}, {} and {}", log.display(), html.display(), summary_path.display());
    Ok(ExitCode::SUCCESS)
}

/// The scenario's shipped criteria (`replays/logs/<scenario>.criteria.toml`), else defaults.
fn criteria_for(scenario: &str) -> anyhow::Result<Criteria> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../replays/logs/{scenario}.criteria.toml"));
    if !path.exists() {
        return Ok(crate::replay_cmd::default_criteria());
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// For every connected vehicle and vulnerable road user within 10 m of each other at some point:
/// the closest approach, and how long before it the RSU first tracked the road user.
fn encounters(log: &Path, first_matched_ns: &BTreeMap<u32, i64>) -> anyhow::Result<Vec<Encounter>> {
    let reader = ReplayReader::open(log).with_context(|| format!("opening {}", log.display()))?;
    let start_ns = reader.meta().start_time.as_nanos();
    // (vehicle, vru) -> (min distance, time, class)
    let mut closest: BTreeMap<(String, u32), (f64, i64, String)> = BTreeMap::new();
    for item in reader {
        let message = item.with_context(|| format!("reading {}", log.display()))?;
        let ReplayBody::GroundTruth(truth) = message.body else { continue };
        for v in truth.objects.iter().filter(|o| o.v2x_id.is_some()) {
            for p in truth.objects.iter().filter(|o| o.class.is_vru()) {
                let d = (v.center_m - p.center_m).xy().norm();
                let key = (v.v2x_id.clone().unwrap_or_default(), p.id);
                let entry = closest.entry(key).or_insert((f64::INFINITY, 0, p.class.to_string()));
                if d < entry.0 {
                    *entry = (d, truth.time.as_nanos(), p.class.to_string());
                }
            }
        }
    }
    let mut close: Vec<_> = closest.into_iter().filter(|(_, (d, _, _))| *d <= 10.0).collect();
    // Closest encounters first.
    close.sort_by(|a, b| a.1.0.total_cmp(&b.1.0));
    Ok(close
        .into_iter()
        .map(|((vehicle, vru), (d, t, class))| {
            let tracked = first_matched_ns.get(&vru).copied();
            Encounter {
                vehicle_v2x_id: vehicle,
                vru_id: vru,
                vru_class: class,
                min_distance_m: d,
                closest_at_s: (t - start_ns) as f64 * 1e-9,
                rsu_first_tracked_at_s: tracked.map(|f| (f - start_ns) as f64 * 1e-9),
                lead_time_s: tracked.map(|f| (t - f) as f64 * 1e-9),
            }
        })
        .collect())
}
