//! Shared fixtures of the daemon tests: a development PKI in a temporary directory, a
//! configuration file for the sample site listening on 127.0.0.1:0, client settings, and sensor
//! frames of two parked cars seen by the sample lidar.

#![allow(dead_code)]

pub mod flood;
pub mod link;
pub mod mosquitto;
pub mod relay;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsu::config::ServeConfig;
use rsu::serve::stats::Stats;
use rsu::serve::{Outputs, RunSummary, Server};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use rsu_fusion::{Detections, SensorFrame};
use v2x_link::client::ClientSettings;
use v2x_link::pki::{DevPkiFiles, default_server_names, write_dev_pki_with_signals};

/// A temporary site: PKI, site file and configuration.
pub struct Fixture {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The PKI files.
    pub pki: DevPkiFiles,
    /// The configuration file.
    pub config: PathBuf,
}

/// Vehicles with certificates.
pub const VEHICLES: [&str; 4] = ["veh-0001", "veh-0002", "veh-0003", "veh-0004"];
/// Signal controllers with certificates.
pub const SIGNALS: [&str; 3] = ["tsc-1", "tsc-2", "tsc-x"];
/// The sample site's lidar.
pub const LIDAR: &str = "lidar-ne";

impl Fixture {
    /// A PKI and a configuration; `extra` is appended to the configuration (TOML tables).
    pub fn new(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let vehicles: Vec<String> = VEHICLES.iter().map(|v| (*v).to_owned()).collect();
        // "lidar-x" has a certificate but is not in the site.
        let sensors = vec![LIDAR.to_owned(), "cam-n".to_owned(), "lidar-x".to_owned()];
        // Signal controllers: none is configured unless a test's `extra` lists it.
        let signals = SIGNALS.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let pki = write_dev_pki_with_signals(
            &dir.path().join("pki"),
            "rsu-test",
            &default_server_names(),
            &vehicles,
            &sensors,
            &signals,
        )
        .expect("pki");
        let site = toml::to_string(&v2x_proto::sample::site()).expect("site toml");
        std::fs::write(dir.path().join("site.toml"), site).expect("site");
        let config = dir.path().join("rsu.toml");
        let text = format!(
            "listen = \"127.0.0.1:0\"\nrsu_id = \"rsu-test\"\nsite_file = \"site.toml\"\n\n\
             [tls]\nca = \"pki/ca.pem\"\ncert = \"pki/rsu.pem\"\nkey = \"pki/rsu.key\"\n\
             revocations = \"pki/revoked.txt\"\nrevocation_poll_s = 0.2\n\n\
             [broadcast]\nrate_hz = 20.0\ndefault_radius_m = 20\n\n\
             [limits]\nhello_timeout_s = 2.0\nmax_sensor_frame_bytes = 65536\n\n{extra}"
        );
        std::fs::write(&config, text).expect("config");
        Fixture { dir, pki, config }
    }

    /// Client settings for a vehicle.
    pub fn vehicle(&self, addr: SocketAddr, id: &str) -> ClientSettings {
        let (_, paths) = self.pki.vehicles.iter().find(|(v, _)| v == id).expect("vehicle certificate");
        ClientSettings::from_files(addr, "localhost", &self.pki.ca_cert, &paths.cert, &paths.key).expect("settings")
    }

    /// Client settings for a sensor.
    pub fn sensor(&self, addr: SocketAddr, id: &str) -> ClientSettings {
        let (_, paths) = self.pki.sensors.iter().find(|(s, _)| s == id).expect("sensor certificate");
        ClientSettings::from_files(addr, "localhost", &self.pki.ca_cert, &paths.cert, &paths.key).expect("settings")
    }

    /// Client settings for a signal controller.
    pub fn signal(&self, addr: SocketAddr, id: &str) -> ClientSettings {
        let (_, paths) = self.pki.signals.iter().find(|(s, _)| s == id).expect("signal certificate");
        ClientSettings::from_files(addr, "localhost", &self.pki.ca_cert, &paths.cert, &paths.key).expect("settings")
    }

    /// The certificate serial of `role/id` from `serials.txt`.
    pub fn serial(&self, role_id: &str) -> String {
        let serials = std::fs::read_to_string(&self.pki.serials).expect("serials");
        serials.lines().find_map(|l| l.strip_prefix(&format!("{role_id} ")).map(str::to_owned)).expect("serial listed")
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The wall clock.
pub use v2x_link::wall_now as now;

/// A lidar frame from the sample lidar with two parked cars about 35 m apart, captured now.
pub fn two_cars(sequence: u64) -> SensorFrame {
    let mut frame = v2x_proto::sample::lidar_frame();
    frame.sequence = sequence;
    frame.capture_time = now();
    if let Detections::Lidar(boxes) = &mut frame.detections {
        let mut far = boxes[0].clone();
        far.center_in_sensor.x = -25.0;
        far.center_in_sensor.y = 20.0;
        boxes.push(far);
    }
    frame
}

/// Sends [`two_cars`] frames from `sensor` at 10 Hz until `stop` is cancelled or the
/// connection ends: frames that keep changing, so the daemon keeps making new ones.
pub fn feed_two_cars(
    sensor: v2x_link::client::SensorClient,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
        for sequence in 1.. {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if sensor.send_frame(&two_cars(sequence)).await.is_err() {
                break;
            }
        }
    })
}

/// Percentile (0..=100) of `values` (sorted in place).
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (values.len().saturating_sub(1)) as f64).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

/// A daemon running in-process on the fixture's configuration.
pub struct Running {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<RunSummary>>,
}

impl Running {
    /// Starts the daemon of `fixture`, recording when `recorder_queue` is given (messages the
    /// recorder may hold), as `rsu serve` does. Must be called inside a tokio runtime.
    pub fn start(fixture: &Fixture, recorder_queue: Option<usize>) -> Running {
        let loaded = ServeConfig::load(&fixture.config).expect("config");
        let server = Server::bind(loaded.clone()).expect("bind");
        let addr = server.local_addr().expect("addr");
        let stats = server.stats();
        let recorder = recorder_queue.map(|queue| {
            let c = &loaded.config;
            rsu::recorder::Recorder::start(&c.recording, &loaded.site, &loaded.rsu_id, queue, stats.clone())
                .expect("recorder")
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(Outputs { recorder, ..Outputs::default() }, shutdown.clone()));
        Running { addr, stats, shutdown, task }
    }

    /// Stops the daemon and returns what its run did.
    pub async fn stop(self) -> RunSummary {
        self.shutdown.cancel();
        self.task.await.expect("server task").expect("server run")
    }
}
