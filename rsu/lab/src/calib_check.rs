//! `rsu-lab replay calib-check`: estimates each sensor's extrinsic error from a log (see
//! `v2x_replays::calib`), prints it with its uncertainty and verdict (or JSON), and writes the
//! corrected calibration as a `site.toml`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rsu_fusion::SiteConfig;
use rsu_fusion::calibration::PoseConfig;
use v2x_replays::ReadMode;
use v2x_replays::calib::{CalibReport, CheckOptions, Verdict, check_log};

/// Arguments of `rsu-lab replay calib-check`.
#[derive(Args)]
pub struct CalibCheckArgs {
    /// The log.
    pub file: PathBuf,
    /// Check only this sensor (repeatable); default: every sensor with frames in the log.
    #[arg(long = "sensor")]
    pub sensors: Vec<String>,
    /// Translation drift threshold [m].
    #[arg(long, default_value_t = 0.2)]
    pub threshold_m: f64,
    /// Yaw drift threshold [deg].
    #[arg(long, default_value_t = 0.5)]
    pub threshold_deg: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the declared calibration with every drifting sensor corrected, as a `site.toml`.
    #[arg(long)]
    pub write_corrected: Option<PathBuf>,
    /// Check this calibration (a `site.toml`, such as one `--write-corrected` wrote) instead of
    /// the one the log declares: its sensors' poses replace the log's.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// Replay configuration (TOML: `[fusion]` tuning, `calibration_offsets` to perturb the
    /// declared calibration).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Read in recover mode: check what is intact before any damage.
    #[arg(long)]
    pub recover: bool,
}

/// Runs the check. Exit code 0 when no sensor drifts, 1 when one does, 2 (through the error)
/// when the log cannot be read.
pub fn run(args: &CalibCheckArgs, config: v2x_replays::pipeline::ReplayConfig) -> anyhow::Result<ExitCode> {
    let mut options = CheckOptions {
        replay: config,
        sensors: args.sensors.clone(),
        threshold_m: args.threshold_m,
        threshold_deg: args.threshold_deg,
        mode: if args.recover { ReadMode::Recover } else { ReadMode::Strict },
    };
    options.replay.poll_at_truth = false;
    if let Some(path) = &args.calibration {
        let site = load_site(path)?;
        for sensor in &site.sensors {
            options.replay.sensor_poses.insert(sensor.id.clone(), PoseConfig::from_isometry(&sensor.world_from_sensor));
        }
    }
    let report = check_log(&args.file, &options).with_context(|| format!("checking {}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialising the report")?);
    } else {
        print_report(&report);
    }
    if let Some(out) = &args.write_corrected {
        write_corrected(&report, out)?;
        if !args.json {
            println!("wrote the corrected calibration to {}", out.display());
        }
    }
    Ok(if report.any_drift() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn load_site(path: &Path) -> anyhow::Result<SiteConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let site: SiteConfig = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    site.validate().with_context(|| format!("checking {}", path.display()))?;
    Ok(site)
}

fn write_corrected(report: &CalibReport, out: &Path) -> anyhow::Result<()> {
    let corrected: Vec<&str> =
        report.sensors.iter().filter(|s| s.verdict == Verdict::Drift).map(|s| s.sensor_id.as_str()).collect();
    let body = toml::to_string(&report.corrected_site).context("serialising the corrected calibration")?;
    let text = format!(
        "# Calibration of site {} as declared in {}, with the poses of the drifting sensors ({}) corrected\n\
         # by `rsu-lab replay calib-check` (dx, dy, yaw only). Review before use.\n{body}",
        report.site_id,
        report.file,
        if corrected.is_empty() { "none".to_owned() } else { corrected.join(", ") },
    );
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))
}

fn print_report(report: &CalibReport) {
    println!(
        "calibration check of {} (site {}): thresholds {} m and {}°, ± is {} sigma",
        report.file, report.site_id, report.threshold_m, report.threshold_deg, report.sigmas
    );
    println!(
        "{:<14} {:<6} {:>6} {:>6} {:>17} {:>17} {:>17} {:>6}  verdict",
        "sensor", "kind", "pairs", "tracks", "dx [m]", "dy [m]", "dyaw [deg]", "rms"
    );
    for s in &report.sensors {
        match &s.estimate {
            Some(e) => println!(
                "{:<14} {:<6} {:>6} {:>6} {:>+8.3} ± {:<6.3} {:>+8.3} ± {:<6.3} {:>+8.3} ± {:<6.3} {:>6.2}  {}",
                s.sensor_id,
                s.kind,
                s.pairs,
                s.tracks,
                e.dx_m,
                e.dx_uncertainty_m,
                e.dy_m,
                e.dy_uncertainty_m,
                e.dyaw_deg,
                e.dyaw_uncertainty_deg,
                e.rms_residual_m,
                verdict_word(s.verdict)
            ),
            None => println!(
                "{:<14} {:<6} {:>6} {:>6} {:>17} {:>17} {:>17} {:>6}  {}",
                s.sensor_id,
                s.kind,
                s.pairs,
                s.tracks,
                "-",
                "-",
                "-",
                "-",
                verdict_word(s.verdict)
            ),
        }
        println!("    {}", s.reason);
    }
    if let Some(damage) = &report.damage {
        println!("recovered: checked what precedes the damage: {damage}");
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Drift => "DRIFT",
        Verdict::Insufficient => "insufficient data",
    }
}
