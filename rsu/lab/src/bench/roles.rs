//! The bench's hidden roles, each run by `rsu-lab bench live` as a child process of its own so
//! the CPU each costs is visible and none starves another's async runtime: the roadside sensors
//! of a scenario (no connected cars), the load generator (the swarm on one QUIC endpoint), and
//! the Mosquitto peer's relay and subscribers. Each writes what it measured as JSON to a file the
//! bench reads, and prints a line the bench waits for when it is ready.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rsu_site::SiteModel;
use serde::Serialize;
use vehicle_sim::connected::CarConfig;
use vehicle_sim::pki_dir::client_settings;

use super::peer;

/// The name the daemon's certificate is valid for in the bench's development PKI.
const SERVER_NAME: &str = "localhost";

/// A role's runtime: two workers, the machine's cores (the bench's reference machine has two).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("async runtime")
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising the report")?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The line prefix with which the sensors role reports its loop's lag [ms].
pub const SENSORS_BEHIND: &str = "sensors behind ";

/// How a role reaches the daemon.
#[derive(clap::Args, Debug)]
pub struct Rsu {
    /// The daemon's UDP address.
    #[arg(long)]
    pub rsu: SocketAddr,
    /// The development PKI folder.
    #[arg(long)]
    pub pki: PathBuf,
}

/// Arguments of the hidden `bench sensors` role.
#[derive(clap::Args, Debug)]
pub struct SensorsArgs {
    #[command(flatten)]
    rsu: Rsu,
    /// Scenario.
    #[arg(long)]
    scenario: String,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long to play [s].
    #[arg(long)]
    duration: f64,
}

/// The scenario's roadside sensors, live against the daemon; its cars do not connect. Prints
/// `sensors running` when the first frames go out, and `sensors behind <ms>` whenever the
/// simulation loop falls further behind the wall clock than before (its sensors' captures are
/// stamped by the simulation clock, so a late loop makes capture → receipt longer).
pub fn sensors(args: &SensorsArgs) -> anyhow::Result<()> {
    let site = Arc::new(SiteModel::embedded().context("the embedded site")?);
    let setup = vehicle_sim::live::LiveSetup {
        scenario: args.scenario.clone(),
        seed: args.seed,
        duration_s: args.duration,
        site,
        car: CarConfig { use_v2x: false, ..CarConfig::default() },
        sensors: client_settings(&args.rsu.pki, "sensors", args.rsu.rsu, SERVER_NAME, None)?,
        vehicles: Default::default(),
        subscription_radius_m: 300,
        signals: Default::default(),
    };
    let mut announced = false;
    let mut worst_ms = 0.0_f64;
    let outcome = runtime()?.block_on(vehicle_sim::live::run(setup, |status| {
        if !announced {
            announced = true;
            println!("sensors running");
        }
        let behind_ms = status.behind_s * 1e3;
        // Reported in 1 ms steps: enough for a latency budget, few lines.
        if behind_ms >= worst_ms + 1.0 {
            worst_ms = behind_ms;
            println!("{SENSORS_BEHIND}{behind_ms:.1}");
        }
    }))?;
    println!(
        "sensors done: {} frames sent, {} send errors, at most {:.0} ms behind real time",
        outcome.summary.sensor_frames,
        outcome.send_errors,
        outcome.max_behind_s * 1e3
    );
    Ok(())
}

/// Arguments of the hidden `bench load` role.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    rsu: Rsu,
    /// Vehicles (the first of the PKI's vehicle certificates in name order).
    #[arg(long)]
    vehicles: usize,
    /// How long each stays connected [s].
    #[arg(long)]
    duration: f64,
    /// QUIC endpoints they share.
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// Subscription radius [m].
    #[arg(long, default_value_t = 300)]
    radius: u32,
    /// Where to write the report.
    #[arg(long)]
    json: PathBuf,
}

/// The load generator: the swarm on shared QUIC endpoints.
pub fn load(args: &LoadArgs) -> anyhow::Result<()> {
    let vehicles: Vec<_> = client_settings(&args.rsu.pki, "vehicles", args.rsu.rsu, SERVER_NAME, Some(args.vehicles))?
        .into_values()
        .collect();
    anyhow::ensure!(
        vehicles.len() == args.vehicles,
        "{} vehicle certificates, {} needed",
        vehicles.len(),
        args.vehicles
    );
    let setup = vehicle_sim::swarm::SwarmSetup {
        vehicles,
        site: Arc::new(SiteModel::embedded().context("the embedded site")?),
        duration_s: args.duration,
        radius_m: args.radius,
        seed: 1,
        endpoints: args.endpoints,
        // The bench measures; it keeps no frames.
        record: false,
    };
    let report = runtime()?.block_on(vehicle_sim::swarm::run(setup)).context("swarm")?;
    print!("{}", vehicle_sim::swarm::render(&report));
    write_json(&args.json, &report)
}

/// Arguments of the hidden `bench mqtt-relay` role.
#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    #[command(flatten)]
    rsu: Rsu,
    /// The relay's vehicle id (its certificate in the PKI).
    #[arg(long)]
    id: String,
    /// The broker's port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// How long to relay [s].
    #[arg(long)]
    duration: f64,
    /// Where to write the report.
    #[arg(long)]
    json: PathBuf,
}

/// The peer's publisher: the RSU's frames (everything) republished to Mosquitto.
pub fn relay(args: &RelayArgs) -> anyhow::Result<()> {
    let cert = args.rsu.pki.join("vehicles").join(format!("{}.pem", args.id));
    let settings = v2x_link::client::ClientSettings::from_files(
        args.rsu.rsu,
        SERVER_NAME,
        &args.rsu.pki.join("ca.pem"),
        &cert,
        &cert.with_extension("key"),
    )
    .with_context(|| format!("loading {}", cert.display()))?;
    let report = runtime()?.block_on(peer::relay(settings, args.port, args.duration))?;
    write_json(&args.json, &report)
}

/// Arguments of the hidden `bench mqtt-subscribers` role.
#[derive(clap::Args, Debug)]
pub struct SubscribersArgs {
    /// Subscribers (one MQTT connection each).
    #[arg(long)]
    count: usize,
    /// The broker's port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Where to write the report.
    #[arg(long)]
    json: PathBuf,
}

/// The peer's subscribers, until stdin ends.
pub fn subscribers(args: &SubscribersArgs) -> anyhow::Result<()> {
    let report = runtime()?.block_on(peer::subscribers(args.count, args.port))?;
    write_json(&args.json, &report)
}
