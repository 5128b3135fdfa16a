//! `rsu`: the roadside-unit daemon, as installed on a roadside box.
//!
//! Subcommands: `serve` is the daemon; `certs` makes a development PKI; `schema` writes the
//! protocol's FileDescriptorSet; `log` inspects its recordings; `decode` prints a T/CSAE 53-2020
//! UPER message as JSON. The demo, replays and validation
//! are the test engineer's tools and live in `rsu-lab`, so the daemon links neither the simulator
//! nor (unless built with the `live-view` feature) rerun.

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
    /// Inspect replay logs and recordings.
    Log {
        #[command(subcommand)]
        command: rsu::log_info::LogCommand,
    },
    /// Run the daemon: QUIC (ALPN v2x/1, mutual TLS) for sensors and vehicles, fusion at the
    /// broadcast rate, recording, Prometheus metrics, live rerun view (with the `live-view`
    /// feature). Stops on SIGINT/SIGTERM.
    Serve(rsu::ServeArgs),
    /// Print a T/CSAE 53-2020 UPER MessageFrame (BSM, MAP, RSM, SPAT, RSI: what the `[uper]`
    /// gateway sends to a PC5 radio) as JSON.
    Decode {
        /// The message: a file of UPER bytes, or `-` for standard input.
        input: PathBuf,
        /// The input is hexadecimal text, not binary.
        #[arg(long)]
        hex: bool,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a development PKI: CA, RSU server certificate, vehicle, sensor and signal
    /// controller certificates.
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
        /// Signal controller ids, comma-separated (they must match `[[signals.controllers]]`).
        #[arg(long, value_delimiter = ',')]
        signals: Vec<String>,
        /// Extra DNS names or IP addresses for the RSU certificate.
        #[arg(long, value_delimiter = ',')]
        server_names: Vec<String>,
    },
}

fn main() -> ExitCode {
    rsu::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Schema { out } => write_schema(&out),
        Command::Log { command } => rsu::log_info::run(command),
        Command::Serve(args) => rsu::run_serve(&args).map(|()| ExitCode::SUCCESS),
        Command::Decode { input, hex } => rsu::uper_decode::run(&input, hex).map(|json| {
            println!("{json}");
            ExitCode::SUCCESS
        }),
        Command::Certs {
            command: CertsCommand::Init { out, rsu_id, vehicles, vehicle_ids, sensors, signals, server_names },
        } => rsu::certs::init(&out, &rsu_id, vehicles, &vehicle_ids, &sensors, &signals, &server_names)
            .map(|()| ExitCode::SUCCESS),
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
