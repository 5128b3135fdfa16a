//! `vehicle-sim`: lists the scenario catalogue and records scenarios into replay logs.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vehicle_sim::record::record;
use vehicle_sim::scenario::CATALOGUE;
use vehicle_sim::site::{SiteModel, default_site_dir};

/// Simulated Yancheng test field: traffic, roadside sensors, connected vehicles.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenario catalogue (name and one-line description).
    Scenarios {
        /// Also print the full description and the expected outcome.
        #[arg(long)]
        verbose: bool,
    },
    /// Run a scenario and write it as a replay log (MCAP).
    Record {
        /// Scenario name (see `vehicle-sim scenarios`).
        #[arg(long, default_value = "bus-pedestrian")]
        scenario: String,
        /// Seed of every random generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Length of the recording [s]; defaults to the scenario's suggested length.
        #[arg(long)]
        duration: Option<f64>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Site folder (site.toml, signal_plan.toml, *.geojson).
        #[arg(long)]
        site: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Scenarios { verbose } => {
            for s in &CATALOGUE {
                println!("{:<24} {}", s.name, s.summary);
                if verbose {
                    println!("{:<24} {}\n{:<24} expected: {}\n", "", s.description, "", s.expected_outcome);
                }
            }
        }
        Command::Record { scenario, seed, duration, out, site } => {
            let dir = site.unwrap_or_else(default_site_dir);
            let site = Arc::new(SiteModel::load(&dir).with_context(|| format!("loading site {}", dir.display()))?);
            let duration_s = match duration {
                Some(d) => d,
                None => vehicle_sim::scenario::find(&scenario).map_or(15.0, |s| s.default_duration_s),
            };
            let summary = record(site, &scenario, seed, duration_s, &out)
                .with_context(|| format!("recording {scenario} into {}", out.display()))?;
            tracing::info!(?summary, "recorded");
            println!(
                "{}: {scenario} seed {seed}, {duration_s} s: {} sensor frames, {} ground-truth frames, {} self-reports, up to {} participants",
                out.display(),
                summary.sensor_frames,
                summary.truth_frames,
                summary.vehicle_states,
                summary.max_participants
            );
        }
    }
    Ok(())
}
