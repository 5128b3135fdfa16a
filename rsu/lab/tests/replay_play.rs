//! `rsu-lab replay play` end to end, as a test engineer runs it: the site is taken from a
//! committed log (`rsu-lab log site`), a real RSU daemon (`rsu-lab serve`, QUIC with mutual TLS
//! on 127.0.0.1) runs with it, the log is played into the daemon in real time, and what the
//! daemon broadcast to the observer (subscribed to everything) is scored against the log's
//! ground truth with the log's criteria.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rsu::config::{MetricsConfig, RecordingConfig, ServeConfig, TlsConfig};
use v2x_link::pki::{default_server_names, write_dev_pki};
use v2x_replays::{ReplayBody, ReplayReader};

mod common;
use common::committed;

const EXE: &str = env!("CARGO_BIN_EXE_rsu-lab");

/// The daemon child, killed if the test ends early.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rsu-lab serve --config config` and returns it with its address.
fn serve(config: &Path, stderr: &Path) -> (Daemon, SocketAddr) {
    let mut child = Command::new(EXE)
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).expect("daemon log"))
        .spawn()
        .expect("start rsu-lab serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("rsu serve listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let daemon = Daemon(child);
    let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| {
        panic!("the daemon did not listen ({e}): {}", std::fs::read_to_string(stderr).unwrap_or_default())
    });
    (daemon, addr.parse().expect("address"))
}

#[test]
fn a_log_played_into_a_daemon_is_scored_as_the_observer_received_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = committed("bus-pedestrian.mcap");
    let site_file = dir.path().join("site.toml");
    let status =
        Command::new(EXE).args(["log", "site"]).arg(&log).arg("--out").arg(&site_file).status().expect("log site");
    assert!(status.success(), "rsu-lab log site failed");

    let reader = ReplayReader::open(&log).expect("open the log");
    let sensors: Vec<String> = reader.meta().site.sensors.iter().map(|s| s.id.clone()).collect();
    let mut truth_frames = 0u64;
    let mut inputs = 0u64;
    for m in reader {
        match m.expect("message").body {
            ReplayBody::GroundTruth(_) => truth_frames += 1,
            ReplayBody::Sensor(_) | ReplayBody::Vehicle(_) => inputs += 1,
            _ => {}
        }
    }
    // The log's connected car and one vehicle certificate for the observer.
    let vehicles = ["cv-bus-ped".to_owned(), "veh-0001".to_owned()];
    let pki = write_dev_pki(&dir.path().join("pki"), "rsu-1", &default_server_names(), &vehicles, &sensors)
        .expect("development PKI");
    let config = ServeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        rsu_id: Some("rsu-1".into()),
        site_file: Some(site_file),
        site: None,
        fusion: Default::default(),
        tls: TlsConfig {
            ca: pki.ca_cert.clone(),
            cert: pki.server.cert.clone(),
            key: pki.server.key.clone(),
            revocations: None,
            revocation_poll_s: 2.0,
        },
        broadcast: Default::default(),
        limits: Default::default(),
        recording: RecordingConfig { enabled: false, ..RecordingConfig::default() },
        metrics: MetricsConfig { enabled: false, ..MetricsConfig::default() },
        rerun: Default::default(),
        signals: Default::default(),
        uper: Default::default(),
        northbound: Default::default(),
        // The embedded site's map (the log's site is that site, written to a file).
        map: rsu::config::MapConfig { site_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../site/yancheng")) },
        rsi: Default::default(),
    };
    let config_path = dir.path().join("rsu.toml");
    std::fs::write(&config_path, toml::to_string(&config).expect("config")).expect("write config");
    let (daemon, addr) = serve(&config_path, &dir.path().join("rsu.log"));

    let played = dir.path().join("played.mcap");
    let report = dir.path().join("report.json");
    let output = Command::new(EXE)
        .args(["replay", "play"])
        .arg(&log)
        .arg("--rsu")
        .arg(addr.to_string())
        .arg("--pki")
        .arg(dir.path().join("pki"))
        .arg("--out")
        .arg(&played)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("rsu-lab replay play");
    drop(daemon);
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("received by veh-0001 (observer, everything)"), "the observer is veh-0001");

    // The played log holds the truth and every input, on the played clock.
    let mut rsi = Vec::new();
    let mut played_truth = 0u64;
    let mut played_inputs = 0u64;
    let mut first_truth = None;
    for m in ReplayReader::open(&played).expect("open the played log") {
        match m.expect("message").body {
            ReplayBody::GroundTruth(t) => {
                played_truth += 1;
                first_truth.get_or_insert(t.time);
            }
            ReplayBody::Sensor(_) | ReplayBody::Vehicle(_) => played_inputs += 1,
            ReplayBody::Rsi(event) => rsi.push(event),
            _ => {}
        }
    }
    assert_eq!(played_truth, truth_frames);
    // The RSU's map and its road safety information reached the observer: the pedestrian who
    // steps out from behind the bus is in the roadway outside a crosswalk.
    assert!(stdout.contains("the observer got 1 MAP message(s)"), "one MAP after the handshake");
    assert!(!rsi.is_empty(), "the observer recorded the RSU's road safety information events");
    assert_eq!(played_inputs, inputs);
    let age_s = v2x_link::wall_now().secs_since(first_truth.expect("truth"));
    assert!((10.0..600.0).contains(&age_s), "the truth is moved onto the played clock ({age_s:.0} s ago)");

    // The observer's broadcast as received is scored against the whole truth and judged.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    let observer = &doc["logs"][0]["live"]["as_received"]["veh-0001"];
    let frames = observer["frames"].as_u64().expect("frames");
    let mota = observer["metrics"]["overall"]["mota"].as_f64().expect("mota");
    assert!(frames > 100, "the observer received {frames} frames");
    assert!(!observer["checks"].as_array().expect("checks").is_empty(), "the observer is judged by the criteria");
    assert!(mota > 0.85, "the observer's broadcast scores MOTA {mota:.3}");
    // The car of the log, subscribed around itself, received frames too.
    assert!(doc["logs"][0]["live"]["as_received"]["cv-bus-ped"]["frames"].as_u64().unwrap_or(0) > 50);
    assert_eq!(output.status.code(), Some(0), "the broadcast as received passes the log's criteria");
}
