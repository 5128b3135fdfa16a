//! `rsu-lab`: the test engineer's tools around the RSU daemon.
//!
//! `demo` plays the cooperative-perception demo against a real daemon process; `replay` runs,
//! validates and imports logs; `route validate` certifies a driverless route segment by segment;
//! `log` inspects them; `bench live` measures the live path (daemon,
//! sensors, N vehicles, and a Mosquitto peer) and prints every histogram. Everything they need at run time (the site
//! model, the scenarios, their criteria) is compiled in, so the binary works from any folder.
//! The roadside daemon itself is the separate `rsu` binary, which links none of this.

mod bench;
mod calib_check;
mod demo;
mod import;
mod replay;
mod route;
mod route_html;
mod rsi_check;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tools of the open V2X roadside-unit stack: the demo, replays, validation, dataset import.
#[derive(Parser)]
#[command(name = "rsu-lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The cooperative-perception demo: play a scenario twice against a real RSU daemon over
    /// QUIC (with and without V2X for the connected car) and say what happened.
    Demo(demo::DemoArgs),
    /// Replay recorded logs through the fusion core, validate them against ground truth, import
    /// datasets.
    Replay {
        #[command(subcommand)]
        command: replay::ReplayCommand,
    },
    /// Route validation: sensor coverage, detection, errors, time to track and broadcast age per
    /// segment of a driverless vehicle's route, over many logs.
    Route {
        #[command(subcommand)]
        command: route::RouteCommand,
    },
    /// Benchmarks of the live path.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Inspect replay logs and recordings.
    Log {
        #[command(subcommand)]
        command: rsu::log_info::LogCommand,
    },
    /// The RSU daemon (`rsu serve`), run by `demo` as its child process.
    #[command(hide = true)]
    Serve(rsu::ServeArgs),
}

fn main() -> ExitCode {
    rsu::init_logging();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(&args),
        Command::Replay { command } => replay::run(command),
        Command::Route { command } => route::run(command),
        Command::Log { command } => rsu::log_info::run(command),
        Command::Bench { command } => bench::run(command),
        Command::Serve(args) => rsu::run_serve(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
