//! `rsu-lab bench live`: measures the live path end to end the way a test engineer would, with
//! one binary. It makes a development PKI in a temporary folder and starts, each as a child
//! process of its own (so each one's CPU time is visible): the RSU daemon (`rsu-lab serve`, the
//! `rsu serve` code, embedded site, metrics on a free loopback port), the roadside sensors of a
//! scenario without its connected cars (`bench sensors`), and the load generator (`bench load`:
//! N vehicles on one QUIC endpoint, each subscribing around itself and reporting at 10 Hz).
//! When the load is done it scrapes the daemon's `/metrics` and prints the clients' latency
//! histograms, every daemon histogram, the frame accounting of both sides and each process's CPU
//! time. Then, unless `--no-peer`, the same frames are fanned out by a Mosquitto broker to N MQTT
//! subscribers (after our phase, never at the same time, so the two do not share the CPU) and
//! the two latencies are compared.

mod peer;
mod process;
mod prom;
mod roles;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use v2x_link::pki::{default_server_names, write_dev_pki};
use vehicle_sim::swarm::{LatencySummary, SwarmReport, connect_spread_s};

use process::Proc;
use prom::HistogramQuantiles;

/// The bench RSU's id.
const RSU_ID: &str = "rsu-bench";
/// The peer relay's vehicle id: sorts after every `veh-NNNN`, so the load takes the first N.
const RELAY_ID: &str = "veh-relay";
/// Sensor warm-up before the vehicles connect [s]: the tracker has confirmed tracks by then.
const WARM_UP_S: f64 = 2.0;

/// `rsu-lab bench …`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Run the daemon, a scenario's roadside sensors and N vehicles (one load-generator process,
    /// one QUIC endpoint), then the same frames through a Mosquitto broker; print every latency
    /// histogram, the frame accounting and each process's CPU time.
    Live(LiveArgs),
    /// Role: the roadside sensors of a scenario (run by `bench live`).
    #[command(hide = true)]
    Sensors(roles::SensorsArgs),
    /// Role: the load generator (run by `bench live`).
    #[command(hide = true)]
    Load(roles::LoadArgs),
    /// Role: the peer's relay (run by `bench live`).
    #[command(hide = true)]
    MqttRelay(roles::RelayArgs),
    /// Role: the peer's subscribers (run by `bench live`).
    #[command(hide = true)]
    MqttSubscribers(roles::SubscribersArgs),
}

/// Arguments of `rsu-lab bench live`.
#[derive(clap::Args)]
pub struct LiveArgs {
    /// Connected vehicles (each a real QUIC session with its own certificate).
    #[arg(long, default_value_t = 100)]
    pub vehicles: usize,
    /// How long the vehicles stay connected [s] (and the peer relays).
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Scenario whose roadside sensors feed the daemon (its connected cars stay off).
    #[arg(long, default_value = "congested-intersection")]
    pub scenario: String,
    /// QUIC endpoints (UDP sockets) the load generator's vehicles share.
    #[arg(long, default_value_t = 1)]
    pub endpoints: usize,
    /// Skip the Mosquitto peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the work folder (PKI, configuration, every process's log) here instead of a
    /// temporary one that is removed.
    #[arg(long)]
    pub keep: Option<PathBuf>,
}

/// Runs a `bench` subcommand.
pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Live(args) => live(&args)?,
        BenchCommand::Sensors(args) => roles::sensors(&args)?,
        BenchCommand::Load(args) => roles::load(&args)?,
        BenchCommand::MqttRelay(args) => roles::relay(&args)?,
        BenchCommand::MqttSubscribers(args) => roles::subscribers(&args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One process's CPU use over a phase.
#[derive(Clone, Debug, Serialize)]
pub struct CpuUse {
    /// Which process.
    pub process: String,
    /// CPU time (user + system) [s].
    pub cpu_s: f64,
    /// Over this wall time [s].
    pub wall_s: f64,
}

impl CpuUse {
    fn percent_of_core(&self) -> f64 {
        100.0 * self.cpu_s / self.wall_s.max(1e-9)
    }
}

/// Frames by the daemon's counters and by the vehicles.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Accounting {
    /// `rsu_frames_sent_total`: handed to QUIC.
    pub sent: Option<f64>,
    /// `rsu_frames_delivered_total`: acknowledged by the vehicle.
    pub delivered: Option<f64>,
    /// `rsu_frames_undelivered_total{reason="superseded"}` (or the older
    /// `rsu_frames_superseded_total`): replaced before it was handed to QUIC.
    pub superseded: Option<f64>,
    /// `…{reason="expired"}`: reset after its delivery deadline.
    pub expired: Option<f64>,
    /// `…{reason="closed"}`: in flight when the connection ended.
    pub closed: Option<f64>,
    /// `…{reason="send_error"}`.
    pub send_error: Option<f64>,
    /// Frames the vehicles received complete.
    pub received: u64,
    /// Streams the vehicles saw reset.
    pub abandoned: u64,
}

impl Accounting {
    fn from_scrape(scrape: &prom::Scrape, load: &SwarmReport) -> Accounting {
        let reason = |r: &str| scrape.labelled("rsu_frames_undelivered_total", "reason", r);
        Accounting {
            sent: scrape.total("rsu_frames_sent_total"),
            delivered: scrape.total("rsu_frames_delivered_total"),
            superseded: reason("superseded").or_else(|| scrape.total("rsu_frames_superseded_total")),
            expired: reason("expired"),
            closed: reason("closed"),
            send_error: reason("send_error"),
            received: load.frames,
            abandoned: load.abandoned,
        }
    }

    /// `sent − (received + expired + closed + send_error)`, the frames nobody accounts for.
    fn difference(&self) -> Option<f64> {
        let accounted = self.received as f64
            + self.expired.unwrap_or(0.0)
            + self.closed.unwrap_or(0.0)
            + self.send_error.unwrap_or(0.0);
        self.sent.map(|s| s - accounted)
    }

    fn lines(&self) -> Vec<String> {
        let v = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.0}"));
        let mut out = vec![format!(
            "sent {} = received {} + expired {} + closed {} + send_error {}; difference {}",
            v(self.sent),
            self.received,
            v(self.expired),
            v(self.closed),
            v(self.send_error),
            v(self.difference()),
        )];
        out.push(format!(
            "delivered (acknowledged, daemon) {} vs received (vehicles) {}; superseded before sending {}; streams the vehicles saw reset {}",
            v(self.delivered),
            self.received,
            v(self.superseded),
            self.abandoned
        ));
        if [self.delivered, self.expired, self.closed, self.send_error].iter().any(Option::is_none) {
            out.push(
                "(n/a: this daemon does not export the counter; the difference then counts those frames too)"
                    .to_owned(),
            );
        }
        out
    }
}

/// The Mosquitto peer's results.
#[derive(Clone, Debug, Serialize)]
pub struct PeerResult {
    /// The relay.
    pub relay: peer::RelayReport,
    /// The subscribers.
    pub subscribers: peer::SubscribersReport,
    /// CPU over the peer phase.
    pub cpu: Vec<CpuUse>,
}

/// Everything `bench live` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Vehicles.
    pub vehicles: usize,
    /// Vehicles' connected time [s].
    pub duration_s: f64,
    /// Scenario of the sensors.
    pub scenario: String,
    /// `release` or `debug`.
    pub build: &'static str,
    /// Cores of the machine.
    pub cores: usize,
    /// The load generator's report.
    pub load: SwarmReport,
    /// Every `rsu_*_seconds` histogram of the daemon at the end of our phase.
    pub daemon_histograms: Vec<HistogramQuantiles>,
    /// Frames by both sides.
    pub accounting: Accounting,
    /// Most the sensors' simulation loop fell behind the wall clock by the end of our phase [ms]
    /// (part of capture → receipt).
    pub sensors_behind_ms: f64,
    /// UDP datagrams the kernel dropped for a full socket buffer during our phase (all sockets
    /// of the machine).
    pub udp_receive_buffer_drops: Option<u64>,
    /// Of them, on the daemon's socket (its count since it opened).
    pub daemon_socket_drops: Option<u64>,
    /// CPU over our phase.
    pub cpu: Vec<CpuUse>,
    /// The peer, unless skipped.
    pub peer: Option<PeerResult>,
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (`/proc/net/snmp`,
/// `Udp: … RcvbufErrors`).
fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Datagrams the kernel dropped on the UDP socket bound to `port` (`/proc/net/udp` and
/// `/proc/net/udp6`, last column), summed over the sockets on that port.
fn udp_socket_drops(port: u16) -> Option<u64> {
    let mut found = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port =
                fields.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port)
                && let Some(drops) = fields.last().and_then(|d| d.parse::<u64>().ok())
            {
                *found.get_or_insert(0) += drops;
            }
        }
    }
    found
}

/// The daemon's configuration: loopback, the embedded site, metrics on a free port, room for
/// every client.
fn daemon_config(dir: &Path, pki: &v2x_link::pki::DevPkiFiles, max_connections: usize) -> anyhow::Result<PathBuf> {
    let path_text = |p: &Path| p.to_str().map(str::to_owned).with_context(|| format!("{} is not UTF-8", p.display()));
    let mut tls = toml::Table::new();
    tls.insert("ca".into(), path_text(&pki.ca_cert)?.into());
    tls.insert("cert".into(), path_text(&pki.server.cert)?.into());
    tls.insert("key".into(), path_text(&pki.server.key)?.into());
    let mut limits = toml::Table::new();
    limits.insert("max_connections".into(), i64::try_from(max_connections).context("max connections")?.into());
    // Every vehicle of the load generator connects from 127.0.0.1: the per-address handshake
    // limit, which keeps one host from holding the RSU's handshake slots, would make them queue
    // (and, on a loaded daemon, time out) as no real fleet does.
    limits.insert("max_handshakes_per_ip".into(), 64.into());
    let mut metrics = toml::Table::new();
    metrics.insert("enabled".into(), true.into());
    metrics.insert("listen".into(), "127.0.0.1:0".into());
    let mut config = toml::Table::new();
    config.insert("listen".into(), "127.0.0.1:0".into());
    config.insert("rsu_id".into(), RSU_ID.into());
    config.insert("tls".into(), tls.into());
    config.insert("limits".into(), limits.into());
    config.insert("metrics".into(), metrics.into());
    let path = dir.join("rsu.toml");
    std::fs::write(&path, toml::to_string(&config).context("serialising the daemon configuration")?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The processes of a phase and their CPU time at its start.
struct Phase {
    started: Instant,
    at_start: Vec<(String, f64)>,
}

impl Phase {
    fn start(procs: &mut [&mut Proc]) -> Phase {
        let mut at_start: Vec<(String, f64)> = procs.iter_mut().map(|p| (p.name.clone(), p.cpu_s())).collect();
        at_start.push(("bench".to_owned(), self_cpu_s()));
        Phase { started: Instant::now(), at_start }
    }

    /// CPU over the phase of the processes there at its start (`procs`) and of those started
    /// during it (`whole`, counted from their start).
    fn end(&self, procs: &mut [&mut Proc], whole: &mut [&mut Proc]) -> Vec<CpuUse> {
        let wall_s = self.started.elapsed().as_secs_f64();
        let mut out = Vec::new();
        for p in procs.iter_mut() {
            let before = self.at_start.iter().find(|(n, _)| *n == p.name).map_or(0.0, |(_, c)| *c);
            out.push(CpuUse { process: p.name.clone(), cpu_s: p.cpu_s() - before, wall_s });
        }
        for p in whole.iter_mut() {
            out.push(CpuUse { process: p.name.clone(), cpu_s: p.cpu_s(), wall_s });
        }
        let bench_before = self.at_start.iter().find(|(n, _)| n == "bench").map_or(0.0, |(_, c)| *c);
        out.push(CpuUse { process: "bench".to_owned(), cpu_s: self_cpu_s() - bench_before, wall_s });
        out
    }
}

fn self_cpu_s() -> f64 {
    process::cpu_time_s(std::process::id()).map_or(0.0, |(c, _)| c)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `bench live`.
fn live(args: &LiveArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=9999).contains(&args.vehicles), "--vehicles must be within 1..=9999");
    anyhow::ensure!(args.duration > 0.0 && args.duration <= 3600.0, "--duration must be within (0, 3600] s");
    vehicle_sim::scenario::find(&args.scenario).with_context(|| format!("unknown scenario {:?}", args.scenario))?;
    if !args.no_peer {
        peer::mosquitto()?;
    }
    let work = match &args.keep {
        Some(dir) => std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?,
        None => std::env::temp_dir().join(format!("rsu-lab-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = measure(args, &work);
    if args.keep.is_none() {
        if result.is_ok() {
            let _ = std::fs::remove_dir_all(&work);
        } else {
            eprintln!("the processes' logs are in {}", work.display());
        }
    }
    let result = result?;
    print(&result);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result).context("serialising the results")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn measure(args: &LiveArgs, work: &Path) -> anyhow::Result<BenchResult> {
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let site = rsu_site::SiteModel::embedded().context("the embedded site")?;
    let sensor_ids: Vec<String> = site.config.sensors.iter().map(|s| s.id.clone()).collect();
    let mut vehicle_ids: Vec<String> = (1..=args.vehicles).map(|i| format!("veh-{i:04}")).collect();
    vehicle_ids.push(RELAY_ID.to_owned());
    let pki_dir = work.join("pki");
    let pki = write_dev_pki(&pki_dir, RSU_ID, &default_server_names(), &vehicle_ids, &sensor_ids)
        .context("creating the development PKI")?;
    println!(
        "bench live: {} vehicles for {:.0} s, sensors of {} ({} of them, no connected cars), {build} build, {cores} cores",
        args.vehicles,
        args.duration,
        args.scenario,
        sensor_ids.len()
    );
    let config = daemon_config(work, &pki, args.vehicles + sensor_ids.len() + 16)?;
    let mut daemon = Proc::start_lab("rsu", &["serve", "--config", &arg(&config)], work, false)?;
    let lines =
        daemon.wait_lines(&["rsu serve listening on ", "rsu serve metrics on http://"], Duration::from_secs(30))?;
    let rsu: SocketAddr = lines[0].parse().with_context(|| format!("daemon address {:?}", lines[0]))?;
    let metrics_text = lines[1].split('/').next().unwrap_or_default();
    let metrics: SocketAddr = metrics_text.parse().with_context(|| format!("metrics address {metrics_text:?}"))?;

    // The sensors play through both phases with room to spare; they are stopped at the end.
    let spread = connect_spread_s(args.vehicles);
    let ours_s = WARM_UP_S + spread + args.duration + 10.0;
    let peer_s = if args.no_peer { 0.0 } else { args.duration + 30.0 };
    let rsu_text = rsu.to_string();
    let pki_text = arg(&pki_dir);
    let sensors_duration = format!("{}", (ours_s + peer_s).ceil());
    let mut sensors = Proc::start_lab(
        "sensors",
        &[
            "bench",
            "sensors",
            "--rsu",
            &rsu_text,
            "--pki",
            &pki_text,
            "--scenario",
            &args.scenario,
            "--duration",
            &sensors_duration,
        ],
        work,
        false,
    )?;
    sensors.wait_line("sensors running", Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs_f64(WARM_UP_S));

    // Our phase.
    println!(
        "our phase: {} vehicles on {} QUIC endpoint(s) in one load-generator process …",
        args.vehicles, args.endpoints
    );
    let drops_before = udp_rcvbuf_errors();
    let phase = Phase::start(&mut [&mut daemon, &mut sensors]);
    let load_json = work.join("load.json");
    let mut load = Proc::start_lab(
        "load",
        &[
            "bench",
            "load",
            "--rsu",
            &rsu_text,
            "--pki",
            &pki_text,
            "--vehicles",
            &args.vehicles.to_string(),
            "--duration",
            &args.duration.to_string(),
            "--endpoints",
            &args.endpoints.to_string(),
            "--json",
            &arg(&load_json),
        ],
        work,
        false,
    )?;
    load.wait_exit(Duration::from_secs_f64(args.duration + spread + 60.0))?;
    // The load waited for its closes to drain; the daemon counts a closed session's frames.
    std::thread::sleep(Duration::from_millis(500));
    let scrape = prom::parse(&prom::fetch(metrics).context("scraping the daemon's metrics")?);
    let cpu = phase.end(&mut [&mut daemon, &mut sensors], &mut [&mut load]);
    let drops = drops_before.zip(udp_rcvbuf_errors()).map(|(a, b)| b.saturating_sub(a));
    let daemon_socket_drops = udp_socket_drops(rsu.port());
    let report: SwarmReport = read_json(&load_json)?;
    let accounting = Accounting::from_scrape(&scrape, &report);
    let sensors_behind_ms =
        sensors.take_lines(roles::SENSORS_BEHIND).iter().filter_map(|l| l.parse::<f64>().ok()).fold(0.0, f64::max);
    let daemon_histograms = scrape.histograms(|n| n.starts_with("rsu_") && n.ends_with("_seconds"));

    let peer = if args.no_peer {
        None
    } else {
        println!(
            "peer phase (after ours, not concurrent): the same frames through Mosquitto to {} MQTT subscribers …",
            args.vehicles
        );
        Some(peer_phase(args, work, &rsu_text, &pki_text, &mut daemon, &mut sensors)?)
    };
    sensors.stop()?;
    daemon.stop()?;
    Ok(BenchResult {
        vehicles: args.vehicles,
        duration_s: args.duration,
        scenario: args.scenario.clone(),
        build,
        cores,
        load: report,
        daemon_histograms,
        accounting,
        sensors_behind_ms,
        udp_receive_buffer_drops: drops,
        daemon_socket_drops,
        cpu,
        peer,
    })
}

fn peer_phase(
    args: &LiveArgs,
    work: &Path,
    rsu: &str,
    pki: &str,
    daemon: &mut Proc,
    sensors: &mut Proc,
) -> anyhow::Result<PeerResult> {
    let (mut broker, port) = peer::start_broker(work, args.vehicles + 16)?;
    let port_text = port.to_string();
    let subs_json = work.join("mqtt-subscribers.json");
    let relay_json = work.join("mqtt-relay.json");
    let phase = Phase::start(&mut [&mut *daemon, &mut *sensors, &mut broker]);
    let mut subscribers = Proc::start_lab(
        "mqtt-subscribers",
        &[
            "bench",
            "mqtt-subscribers",
            "--count",
            &args.vehicles.to_string(),
            "--port",
            &port_text,
            "--json",
            &arg(&subs_json),
        ],
        work,
        true,
    )?;
    subscribers.wait_line("subscribed ", Duration::from_secs(90))?;
    let mut relay = Proc::start_lab(
        "mqtt-relay",
        &[
            "bench",
            "mqtt-relay",
            "--rsu",
            rsu,
            "--pki",
            pki,
            "--id",
            RELAY_ID,
            "--port",
            &port_text,
            "--duration",
            &args.duration.to_string(),
            "--json",
            &arg(&relay_json),
        ],
        work,
        false,
    )?;
    relay.wait_exit(Duration::from_secs_f64(args.duration + 30.0))?;
    // The last messages reach the subscribers, then they finish.
    std::thread::sleep(Duration::from_millis(500));
    subscribers.close_stdin();
    subscribers.wait_exit(Duration::from_secs(30))?;
    let cpu = phase.end(&mut [&mut *daemon, &mut *sensors, &mut broker], &mut [&mut subscribers, &mut relay]);
    broker.stop()?;
    Ok(PeerResult { relay: read_json(&relay_json)?, subscribers: read_json(&subs_json)?, cpu })
}

fn print_cpu(cpu: &[CpuUse], cores: usize) {
    let total: f64 = cpu.iter().map(|c| c.cpu_s).sum();
    let wall = cpu.first().map_or(0.0, |c| c.wall_s);
    let parts: Vec<String> =
        cpu.iter().map(|c| format!("{} {:.1} s ({:.0} %)", c.process, c.cpu_s, c.percent_of_core())).collect();
    println!("  CPU over {wall:.1} s (% of one core): {}", parts.join(", "));
    let machine = 100.0 * total / (wall.max(1e-9) * cores as f64);
    println!("  all together {machine:.0} % of the machine's {cores} cores");
    if machine >= 90.0 {
        println!("  ! the machine was CPU-bound: latencies include waiting for a core");
    }
}

fn print(r: &BenchResult) {
    println!();
    println!("OURS: RSU daemon → {} vehicles over QUIC ({} load-generator endpoint(s))", r.vehicles, r.load.endpoints);
    let l = &r.load;
    println!(
        "  vehicles: {} connected, {} failed; {} frames received, {} skipped by the RSU (message_count gaps), {} reset by the RSU; {} states sent ({} failed)",
        l.connected,
        l.failures.len(),
        l.frames,
        l.skipped_by_rsu,
        l.abandoned,
        l.states_sent,
        l.state_errors
    );
    for f in l.failures.iter().take(5) {
        println!("    failure: {f}");
    }
    println!("  {}", l.capture_to_receipt.line("capture→receipt"));
    println!(
        "    (the sensors' simulation loop fell at most {:.1} ms behind the wall clock; captures carry the sensor model's own latency)",
        r.sensors_behind_ms
    );
    println!("  {}", l.frame_to_receipt.line("frame→receipt"));
    println!("  daemon histograms (bucket quantiles, /metrics at the end of the phase):");
    if r.daemon_histograms.is_empty() {
        println!("    none exported");
    }
    for h in &r.daemon_histograms {
        println!("    {}", h.line());
    }
    println!("  frame accounting (daemon counters vs what the vehicles received):");
    for line in r.accounting.lines() {
        println!("    {line}");
    }
    if let Some(d) = r.udp_receive_buffer_drops {
        println!(
            "  UDP datagrams the kernel dropped for a full socket buffer during the phase: {d} on the whole machine, {} of them on the daemon's socket (the load's endpoint socket: receive buffer {} KiB as the kernel reports it)",
            r.daemon_socket_drops.map_or_else(|| "?".to_owned(), |d| d.to_string()),
            r.load.endpoint_recv_buffer_bytes.map_or_else(|| "?".to_owned(), |b| (b / 1024).to_string())
        );
    }
    print_cpu(&r.cpu, r.cores);
    if let Some(load) = r.cpu.iter().find(|c| c.process == "load")
        && load.percent_of_core() >= 90.0
    {
        println!(
            "  ! the load generator used {:.0} % of a core: it may be CPU-bound, and its latencies then include its own queueing",
            load.percent_of_core()
        );
    }
    if let Some(p) = &r.peer {
        println!();
        println!(
            "PEER: the same frames relayed through Mosquitto (QoS 0, one MQTT connection per subscriber), run after ours"
        );
        let s = &p.subscribers;
        println!(
            "  relay: {} frames from the RSU, {} published ({} failed); {} of {} subscribers subscribed, {} messages received (expected {}), fewest per subscriber {}",
            p.relay.frames_in,
            p.relay.published,
            p.relay.publish_errors,
            s.subscribed,
            s.subscribers,
            s.messages,
            p.relay.published * s.subscribers as u64,
            s.min_per_subscriber
        );
        for e in s.errors.iter().take(5) {
            println!("    error: {e}");
        }
        println!("  {}", s.publish_to_receipt.line("publish→receipt"));
        print_cpu(&p.cpu, r.cores);
        println!();
        compare(&r.load.frame_to_receipt, &s.publish_to_receipt);
    }
}

/// Ours (frame time → receipt) against the peer (publish → receipt) at p50 and p99.
fn compare(ours: &LatencySummary, peer: &LatencySummary) {
    if ours.count == 0 || peer.count == 0 {
        println!("COMPARISON: not enough samples on one side");
        return;
    }
    let verdict = if ours.p99_ms < peer.p99_ms { "ours lower" } else { "ours NOT lower" };
    println!(
        "COMPARISON p99: ours (RSU frame time → vehicle receipt) {:.2} ms vs Mosquitto (publish → subscriber receipt) {:.2} ms: {verdict}; p50 {:.2} vs {:.2} ms",
        ours.p99_ms, peer.p99_ms, ours.p50_ms, peer.p50_ms
    );
}
