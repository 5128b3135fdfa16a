//! `rsu-lab route validate`: certify a driverless vehicle's route from the site's sensor
//! geometry and from logs: per segment of chainage, the sensor coverage, detection probability
//! with its confidence interval, errors, time to track and broadcast age, and a verdict; the
//! blind spots and failing segments with their chainage. Writes JSON, GeoJSON and HTML.
//!
//! Logs are re-fused one at a time per worker thread (memory does not grow with their number);
//! a log that cannot be read is reported and skipped, and the others still count.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use rsu_site::SiteSource;
use v2x_replays::pipeline::{PipelineError, ReplayConfig};
use v2x_replays::route::criteria::RouteCriteria;
use v2x_replays::route::tally::{RouteTally, tally_log};
use v2x_replays::route::verdict::{SkippedLog, Verdict, judge};
use v2x_replays::route::{MAX_SEGMENTS, Route, coverage, output};

use crate::route_html;

/// `rsu-lab route …`
#[derive(Subcommand)]
pub enum RouteCommand {
    /// Validate a route segment by segment: sensor coverage from the site's calibration and
    /// occluders, and over the logs, detection probability (95 % Wilson interval), position and
    /// velocity error, time to track and broadcast age of the objects on and near it. Exit code
    /// 0 when every segment passes, 1 when a segment fails or lacks evidence, 2 when an input
    /// cannot be read (unreadable logs are reported and skipped; the others still count).
    Validate(ValidateArgs),
}

/// Arguments of `rsu-lab route validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The route: a GeoJSON file with one LineString in WGS84, or the id of a route of the site
    /// (e.g. `shuttle-loop`).
    #[arg(long)]
    route: String,
    /// Logs (MCAP), or folders whose `*.mcap` files are all used. None: coverage only.
    logs: Vec<PathBuf>,
    /// Route criteria (TOML). Default: the route's built-in criteria (`shuttle-loop`), else
    /// generic defaults; the report says which.
    #[arg(long)]
    criteria: Option<PathBuf>,
    /// Site folder (sensors, calibration, map, occluders) in place of the embedded
    /// representative Yancheng site.
    #[arg(long)]
    site: Option<PathBuf>,
    /// Write the report here (JSON).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the segments and blind spots here (GeoJSON, WGS84; opens in QGIS and geojson.io).
    #[arg(long)]
    geojson: Option<PathBuf>,
    /// Write the report page here (self-contained HTML with the map and the plots).
    #[arg(long)]
    html: Option<PathBuf>,
    /// Replay configuration (TOML), as `replay validate` takes it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
}

/// Runs a route subcommand.
pub fn run(command: RouteCommand) -> anyhow::Result<ExitCode> {
    match command {
        RouteCommand::Validate(args) => validate(&args),
    }
}

/// The logs named: files as given, folders as their `*.mcap` files in name order.
fn expand_logs(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut logs = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = crate::replay::mcap_files(path)?;
            if found.is_empty() {
                bail!("no .mcap logs in {}", path.display());
            }
            logs.extend(found);
        } else {
            logs.push(path.clone());
        }
    }
    Ok(logs)
}

fn load_criteria(path: Option<&Path>, route_id: &str) -> anyhow::Result<(RouteCriteria, String)> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Ok((RouteCriteria::parse(&text, &p.display().to_string())?, p.display().to_string()))
        }
        None => Ok(RouteCriteria::built_in(route_id)),
    }
}

fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let source = SiteSource::from_option(args.site.clone());
    let site = source.load().with_context(|| format!("loading {source}"))?;
    let route = Route::load(&args.route, &site)?;
    let (criteria, criteria_source) = load_criteria(args.criteria.as_deref(), &route.id)?;
    let config = crate::replay::load_config(args.config.as_deref())?;
    let route = route.indexed_for(criteria.near_m);
    let segments = route.segments(criteria.segment_length_m);
    if segments.is_empty() || segments.len() > MAX_SEGMENTS {
        bail!(
            "the route ({:.0} m) cut into {} m segments makes {} segments; 1 to {MAX_SEGMENTS} allowed",
            route.length_m(),
            criteria.segment_length_m,
            segments.len()
        );
    }
    let profile = coverage::profile(&route, &site, criteria.coverage_step_m, criteria.near_m, criteria.target_height_m);
    let logs = expand_logs(&args.logs)?;
    println!(
        "route {} ({}): {:.0} m{}, {} segments of {} m; criteria {criteria_source}; {} log(s)",
        route.id,
        route.source,
        route.length_m(),
        if route.line.is_closed() { ", a loop" } else { "" },
        segments.len(),
        criteria.segment_length_m,
        logs.len()
    );

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .context("starting the worker threads")?;
    let bar = ProgressBar::new(logs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} re-fusing [{bar:30}] {pos}/{len} logs {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let site_id = site.config.site_id.clone();
    let (mut tally, mut skipped) = pool.install(|| {
        logs.par_iter()
            .fold(
                || (RouteTally::new(segments.len()), Vec::new()),
                |(mut tally, mut skipped): (RouteTally, Vec<SkippedLog>), log| {
                    match tally_site_log(log, &site_id, &route, &segments, &criteria, &config) {
                        Ok(t) => tally.merge(t),
                        Err(e) => {
                            // Said at once (the bar is suspended so the line stays whole), and again in the summary.
                            bar.suspend(|| eprintln!("skipped {}: {e}", log.display()));
                            skipped.push(SkippedLog { file: log.display().to_string(), error: e.to_string() });
                        }
                    }
                    bar.inc(1);
                    (tally, skipped)
                },
            )
            .reduce(
                || (RouteTally::new(segments.len()), Vec::new()),
                |(mut a, mut sa), (b, sb)| {
                    a.merge(b);
                    sa.extend(sb);
                    (a, sa)
                },
            )
    });
    bar.finish_and_clear();
    tally.logs.sort_by(|a, b| a.file.cmp(&b.file));
    skipped.sort_by(|a, b| a.file.cmp(&b.file));

    let mut report = judge(&route, &segments, &profile, &tally, &criteria, &criteria_source, &site_id);
    report.skipped = skipped;
    print_summary(&report);

    if let Some(p) = &args.json {
        let text = output::to_json(&report).context("serialising the report")?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &args.geojson {
        let doc = output::to_geojson(&report, &route, &site.frame);
        let text = serde_json::to_string_pretty(&doc).context("serialising the GeoJSON")?;
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &args.html {
        let page = route_html::html_page(&report, &route, &site)?;
        std::fs::write(p, page).with_context(|| format!("writing {}", p.display()))?;
    }
    println!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(if !report.skipped.is_empty() {
        ExitCode::from(2)
    } else if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// [`tally_log`] of a log recorded on the route's site (`site_id`); a log of another site is
/// refused, naming both.
fn tally_site_log(
    log: &Path,
    site_id: &str,
    route: &Route,
    segments: &[v2x_replays::route::Segment],
    criteria: &RouteCriteria,
    config: &ReplayConfig,
) -> Result<RouteTally, PipelineError> {
    let reader = v2x_replays::ReplayReader::open(log)?;
    let recorded_on = &reader.meta().site.site_id;
    if recorded_on != site_id {
        return Err(PipelineError::Handler(format!(
            "recorded on site {recorded_on:?}, but the route is on site {site_id:?} (give its --site)"
        )));
    }
    drop(reader);
    tally_log(log, route, segments, criteria, config)
}

fn print_summary(report: &v2x_replays::route::verdict::RouteReport) {
    let s = &report.summary;
    println!(
        "{} observations near the route, {} matched, from {} log(s){}",
        s.observations,
        s.matched,
        report.logs.len(),
        if report.skipped.is_empty() { String::new() } else { format!("; {} log(s) skipped", report.skipped.len()) }
    );
    for k in &report.skipped {
        println!("skipped {}: {}", k.file, k.error);
    }
    if report.blind_spots.is_empty() {
        println!("blind spots: none");
    } else {
        println!("blind spots ({:.0} m of corridor no sensor sees), by chainage:", s.blind_m);
        for b in &report.blind_spots {
            println!(
                "  {:>7.0} .. {:>7.0} m{}",
                b.from_m,
                b.to_m,
                if b.on_the_line { "" } else { "  (corridor edge only)" }
            );
        }
    }
    // Failing segments, consecutive ones failing the same checks as one line.
    let mut runs: Vec<(f64, f64, usize, String)> = Vec::new();
    for seg in report.segments.iter().filter(|seg| seg.verdict == Verdict::Fail) {
        let names: Vec<&str> =
            seg.checks.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.name.as_str()).collect();
        let names = names.join(", ");
        match runs.last_mut() {
            Some((_, to_m, count, last)) if *last == names && (*to_m - seg.from_m).abs() < 1e-9 => {
                *to_m = seg.to_m;
                *count += 1;
            }
            _ => runs.push((seg.from_m, seg.to_m, 1, names)),
        }
    }
    if !runs.is_empty() {
        println!("failing segments, by chainage:");
        for (from_m, to_m, count, names) in runs {
            println!("  {from_m:>7.0} .. {to_m:>7.0} m  {count:>3} segment(s)  {names}");
        }
    }
    let observed: Vec<_> =
        report.segments.iter().filter(|seg| seg.groups.values().any(|g| g.observations > 0)).collect();
    if !observed.is_empty() {
        println!("segments with observations:");
        println!(
            "  {:>17}  {:<12} {:>7}  {:<9} {:>6} {:>7}  {:<23} {:>8}",
            "chainage [m]", "verdict", "sensors", "group", "obs", "objects", "detection [95 % CI]", "pos p95"
        );
        for seg in observed {
            for (g, f) in seg.groups.iter().filter(|(_, f)| f.observations > 0) {
                println!(
                    "  {:>7.0} .. {:>7.0}  {:<12} {:>7}  {:<9} {:>6} {:>7}  {:<23} {:>8}",
                    seg.from_m,
                    seg.to_m,
                    seg.verdict.name(),
                    seg.coverage.sensors_min,
                    g,
                    f.observations,
                    f.objects,
                    f.detection.map_or_else(
                        || "-".to_owned(),
                        |d| format!("{:.3} [{:.3}, {:.3}]", d.probability, d.ci95_low, d.ci95_high)
                    ),
                    f.position_p95_m.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} m"))
                );
            }
        }
    }
    println!(
        "route {}: {} pass, {} fail, {} insufficient data of {} segments",
        if report.passed { "PASS" } else { "NOT CERTIFIED" },
        s.pass,
        s.fail,
        s.insufficient,
        report.segments.len()
    );
}
