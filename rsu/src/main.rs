//! `rsu`: the roadside-unit daemon and its tools.
//!
//! Subcommands: `demo` plays the cooperative-perception demo against a real daemon; `serve` is
//! the daemon; `certs` makes a development PKI; `schema` writes the protocol's FileDescriptorSet;
//! `log` inspects replay logs; `replay` runs, validates and imports logs.

mod dair;
mod demo;
mod log_info;
mod replay_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// The open V2X roadside-unit stack.
#[derive(Parser)]
#[command(name = "rsu", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the v2x.v1 protobuf schemas as a serialized FileDescriptorSet, so clients in any
    /// language (and tools like protoc --decode or Foxglove) can decode our messages.
    Schema {
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// The cooperative-perception demo: play a scenario twice against a real RSU daemon over
    /// QUIC (with and without V2X for the connected car) and say what happened.
    Demo(demo::DemoArgs),
    /// Replay recorded logs through the fusion core, validate them against ground truth, import
    /// datasets.
    Replay {
        #[command(subcommand)]
        command: replay_cmd::ReplayCommand,
    },
    /// Inspect replay logs.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Run the daemon: QUIC (ALPN v2x/1, mutual TLS) for sensors and vehicles, fusion at the
    /// broadcast rate, recording, Prometheus metrics, live rerun view. Stops on SIGINT/SIGTERM.
    Serve {
        /// The configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Live view: `save FILE.rrd` or `connect ADDR` (overrides the config's [rerun]).
        #[arg(long, num_args = 2, value_names = ["MODE", "TARGET"])]
        rerun: Option<Vec<String>>,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a development PKI: CA, RSU server certificate, vehicle and sensor certificates.
    Init {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The RSU's id (in its certificate).
        #[arg(long, default_value = "rsu-1")]
        rsu_id: String,
        /// Number of vehicle certificates (veh-0001, veh-0002, ...).
        #[arg(long, default_value_t = 4)]
        vehicles: usize,
        /// Further vehicle certificates with these ids, comma-separated (e.g. the connected
        /// vehicles of a scenario: cv-bus-ped).
        #[arg(long, value_delimiter = ',')]
        vehicle_ids: Vec<String>,
        /// Sensor ids, comma-separated (they must match the site's sensor ids).
        #[arg(long, value_delimiter = ',')]
        sensors: Vec<String>,
        /// Extra DNS names or IP addresses for the RSU certificate.
        #[arg(long, value_delimiter = ',')]
        server_names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Summarise a replay log: scenario, site, sensors, topics with message counts and time
    /// ranges, and any damage. Exit code 2 when the log is damaged.
    Info {
        /// The log.
        file: PathBuf,
        /// Read past damage and report what is intact instead of stopping at it.
        #[arg(long)]
        recover: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema { out } => write_schema(&out),
        Command::Demo(args) => demo::run(&args),
        Command::Replay { command } => replay_cmd::run(command),
        Command::Log { command: LogCommand::Info { file, recover, json } } => log_info::run(&file, recover, json),
        Command::Serve { config, rerun } => run_serve(&config, rerun),
        Command::Certs {
            command: CertsCommand::Init { out, rsu_id, vehicles, vehicle_ids, sensors, server_names },
        } => {
            rsu::certs::init(&out, &rsu_id, vehicles, &vehicle_ids, &sensors, &server_names).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn write_schema(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    std::fs::write(out, v2x_proto::FILE_DESCRIPTOR_SET)
        .with_context(|| format!("writing the descriptor set to {}", out.display()))?;
    println!(
        "wrote {} bytes of FileDescriptorSet (package {}) to {}",
        v2x_proto::FILE_DESCRIPTOR_SET.len(),
        v2x_proto::PACKAGE,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_serve(config: &std::path::Path, rerun: Option<Vec<String>>) -> anyhow::Result<ExitCode> {
    let loaded = rsu::config::ServeConfig::load(config)?;
    let rerun = rerun.map(|args| rsu::live_view::RerunTarget::parse(&args)).transpose()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(rsu::serve::serve(loaded, rerun))?;
    Ok(ExitCode::SUCCESS)
}
