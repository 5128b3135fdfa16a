//! `vehicle-sim`: lists the scenario catalogue, records scenarios into replay logs, plays a
//! scenario live against a real RSU (`live`), and loads an RSU with many connected vehicles
//! (`swarm`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rsu_site::{SiteModel, SiteSource};
use v2x_link::client::ClientSettings;
use v2x_proto::domain::ReplayMeta;
use vehicle_sim::connected::CarConfig;
use vehicle_sim::record::{DEFAULT_TRUTH_HZ, RecordOptions, record_with};
use vehicle_sim::scenario::{CATALOGUE, ScenarioOptions};

/// Which scenario to play.
#[derive(clap::Args)]
struct ScenarioArgs {
    /// Scenario name (see `vehicle-sim scenarios`).
    #[arg(long, default_value = "bus-pedestrian")]
    scenario: String,
    /// Seed of every random generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Length [s]; defaults to the scenario's suggested length.
    #[arg(long)]
    duration: Option<f64>,
}

impl ScenarioArgs {
    /// The length to play [s]: the one given, else the scenario's (an unknown scenario is an
    /// error).
    fn duration_s(&self) -> anyhow::Result<f64> {
        let info = vehicle_sim::scenario::find(&self.scenario)
            .with_context(|| format!("unknown scenario {:?}; `vehicle-sim scenarios` lists them", self.scenario))?;
        Ok(self.duration.unwrap_or(info.default_duration_s))
    }
}

/// How to reach a running RSU.
#[derive(clap::Args)]
struct RsuArgs {
    /// The RSU's UDP address.
    #[arg(long)]
    rsu: SocketAddr,
    /// PKI folder made by `rsu certs init` (ca.pem, sensors/<id>.pem, vehicles/<id>.pem and,
    /// optionally, signals/<id>.pem).
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    /// Name the RSU's certificate is valid for.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

impl RsuArgs {
    /// Client settings for every certificate in `<pki>/<sub>/`, by id; at most `limit`.
    fn clients(&self, sub: &str, limit: Option<usize>) -> anyhow::Result<BTreeMap<String, ClientSettings>> {
        Ok(vehicle_sim::pki_dir::client_settings(&self.pki, sub, self.rsu, &self.server_name, limit)?)
    }

    /// [`RsuArgs::clients`] for a folder that may be absent (none then).
    fn optional_clients(&self, sub: &str) -> anyhow::Result<BTreeMap<String, ClientSettings>> {
        if !self.pki.join(sub).is_dir() {
            return Ok(BTreeMap::new());
        }
        self.clients(sub, None)
    }
}

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
        #[command(flatten)]
        play: ScenarioArgs,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Site folder (site.toml, signal_plan.toml, *.geojson) in place of the embedded
        /// representative Yancheng site.
        #[arg(long)]
        site: Option<PathBuf>,
        /// Ground-truth rate [Hz]; must divide the 100 Hz simulation step rate.
        #[arg(long, default_value_t = DEFAULT_TRUTH_HZ)]
        truth_hz: u32,
        /// At most this many participants at once: thins the scenario's initial actors at random
        /// (keeping parked vehicles, connected vehicles and hazards) and stops its spawners there.
        #[arg(long)]
        max_participants: Option<usize>,
    },
    /// Play a scenario in real time against a running RSU: the roadside sensors and the
    /// scenario's connected L2+ cars are QUIC clients; prints the cars' warnings and braking.
    Live {
        #[command(flatten)]
        rsu: RsuArgs,
        #[command(flatten)]
        play: ScenarioArgs,
        /// Cars rely on their own sensor only (they do not connect).
        #[arg(long)]
        no_v2x: bool,
        /// Write the outcome as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write this side of the run as a replay log (MCAP): ground truth, the sensor frames
        /// and self-reports sent, and every frame each car received with its receipt time
        /// (`/vehicles/<id>/received`), for `rsu-lab replay validate --live`.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Play a scenario with and without V2X offline (an in-process RSU fusion core instead of a
    /// daemon, deterministic, faster than real time) and print what the cars did.
    Compare {
        #[command(flatten)]
        play: ScenarioArgs,
    },
    /// Load generator: connect many lightweight vehicles (sharing one QUIC endpoint) to a running
    /// RSU, each subscribing around itself and reporting at 10 Hz; print frame counts and latency
    /// histograms.
    Swarm {
        #[command(flatten)]
        rsu: RsuArgs,
        /// Number of vehicles.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// How long each stays connected [s].
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Subscription radius [m].
        #[arg(long, default_value_t = 300)]
        radius: u32,
        /// QUIC endpoints (UDP sockets) the vehicles share; 1 keeps the generator light.
        #[arg(long, default_value_t = 1)]
        endpoints: usize,
        /// Also write the report (counts per vehicle, latency quantiles) as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write every frame each vehicle received, with its receipt time, into this replay
        /// log (MCAP); kept in memory until the end.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let site_model = |dir: Option<PathBuf>| -> anyhow::Result<Arc<SiteModel>> {
        let source = SiteSource::from_option(dir);
        Ok(Arc::new(source.load().with_context(|| format!("loading {source}"))?))
    };
    match Cli::parse().command {
        Command::Scenarios { verbose } => {
            for s in &CATALOGUE {
                println!("{:<24} {}", s.name, s.summary);
                if verbose {
                    println!("{:<24} {}\n{:<24} expected: {}\n", "", s.description, "", s.expected_outcome);
                }
            }
        }
        Command::Record { play, out, site, truth_hz, max_participants } => {
            let site = site_model(site)?;
            let duration_s = play.duration_s()?;
            let ScenarioArgs { scenario, seed, .. } = play;
            let options = RecordOptions { truth_hz, scenario: ScenarioOptions { max_participants } };
            let summary = record_with(site, &scenario, seed, duration_s, &out, &options)
                .with_context(|| format!("recording {scenario} into {}", out.display()))?;
            tracing::info!(?summary, "recorded");
            println!(
                "{}: {scenario} seed {seed}, {duration_s} s: {} sensor frames, {} ground-truth frames ({truth_hz} Hz), {} self-reports, {}-{} participants",
                out.display(),
                summary.sensor_frames,
                summary.truth_frames,
                summary.vehicle_states,
                summary.min_participants,
                summary.max_participants
            );
        }
        Command::Live { rsu, play, no_v2x, out, log } => {
            let site = site_model(None)?;
            let duration_s = play.duration_s()?;
            // The log's metadata describes the scenario as built, before it runs.
            let meta = vehicle_sim::scenario::build(&play.scenario, site.clone(), play.seed)
                .map(|s| vehicle_sim::record::replay_meta(&s, play.seed, duration_s))
                .with_context(|| format!("building {}", play.scenario))?;
            let setup = vehicle_sim::live::LiveSetup {
                duration_s,
                scenario: play.scenario,
                seed: play.seed,
                site,
                car: CarConfig { use_v2x: !no_v2x, ..CarConfig::default() },
                sensors: rsu.clients("sensors", None)?,
                vehicles: rsu.clients("vehicles", None)?,
                subscription_radius_m: 300,
                signals: rsu.optional_clients("signals")?,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let outcome = runtime
                .block_on(vehicle_sim::live::run(setup, |s| {
                    eprint!(
                        "\r  t={:>5.1}/{:.0} s  events {:>3}  frames {:>5}  ",
                        s.elapsed_s, s.duration_s, s.events, s.frames_received
                    );
                }))
                .context("live run")?;
            eprintln!();
            print_cars(&outcome.cars);
            if let Some(path) = out {
                let text = serde_json::to_string_pretty(&outcome.cars).context("serialising the outcome")?;
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = log {
                let meta = ReplayMeta {
                    start_time: outcome.start,
                    end_time: outcome.start.add_secs(outcome.duration_s),
                    truth_ids_per_frame: false,
                    ..meta
                };
                vehicle_sim::live::write_log(&path, &meta, &outcome)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "wrote {}: {} received frames of {} car(s)",
                    path.display(),
                    outcome.received.len(),
                    outcome.cars.len()
                );
            }
        }
        Command::Compare { play } => {
            let site = site_model(None)?;
            let duration_s = play.duration_s()?;
            for v2x in [true, false] {
                let config = CarConfig { use_v2x: v2x, ..CarConfig::default() };
                let outcome = vehicle_sim::cosim::run_offline(&site, &play.scenario, play.seed, duration_s, &config)
                    .with_context(|| format!("running {}", play.scenario))?;
                println!("{}", if v2x { "with V2X" } else { "without V2X" });
                print_cars(&outcome.cars);
            }
        }
        Command::Swarm { rsu, count, duration, radius, endpoints, json, log } => {
            let vehicles: Vec<ClientSettings> = rsu.clients("vehicles", Some(count))?.into_values().collect();
            if vehicles.len() < count {
                anyhow::bail!(
                    "{} has {} vehicle certificates, {count} needed (`rsu certs init --vehicles {count}`)",
                    rsu.pki.join("vehicles").display(),
                    vehicles.len()
                );
            }
            let site = site_model(None)?;
            let setup = vehicle_sim::swarm::SwarmSetup {
                vehicles,
                site: site.clone(),
                duration_s: duration,
                radius_m: radius,
                seed: 1,
                endpoints,
                record: log.is_some(),
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let report = runtime.block_on(vehicle_sim::swarm::run(setup)).context("swarm")?;
            print!("{}", vehicle_sim::swarm::render(&report));
            if let Some(path) = log {
                vehicle_sim::swarm::write_log(&path, &site, 1, &report)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}: {} received frames", path.display(), report.received.len());
            }
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report).context("serialising the report")?;
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            }
            if report.connected == 0 {
                anyhow::bail!("no vehicle could connect");
            }
        }
    }
    Ok(())
}

/// Prints each car's events, its closest approach to each hazard and its link figures.
fn print_cars(cars: &[vehicle_sim::cosim::CarOutcome]) {
    for car in cars {
        for e in &car.events {
            println!("  {}", vehicle_sim::cosim::describe(&car.v2x_id, e));
        }
        for h in &car.hazards {
            println!(
                "  {} and {} #{}: closest in its path {}, V2X lead time {}, collided: {}",
                car.v2x_id,
                h.class,
                h.actor_id,
                h.min_gap_m.map_or("never in its path".to_owned(), |g| format!("{g:.2} m")),
                h.v2x_lead_time_s.map_or("none".to_owned(), |l| format!("{l:.1} s")),
                car.collided
            );
        }
        if car.link.frames > 0 {
            println!(
                "  {}: {} RSU frames, {} lost, capture-to-receipt latency p50 {:.0} ms, p99 {:.0} ms",
                car.v2x_id, car.link.frames, car.link.lost, car.link.latency_ms.p50, car.link.latency_ms.p99
            );
        }
    }
}
