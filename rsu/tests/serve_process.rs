//! The real `rsu serve` binary: SIGKILL while recording leaves a log readable up to the last
//! fsync; SIGTERM closes sessions with SHUTDOWN, finishes the recording and exits 0; `/metrics`
//! and `/healthz` answer; a bad configuration fails at start naming the field; `rsu certs init`
//! writes a PKI the daemon accepts; `--rerun connect` streams the live view to a rerun gRPC
//! server (the `rerun` CLI of rerun-sdk 0.36.3: an ignored test that CI runs after installing it).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
#[cfg(feature = "live-view")]
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Fixture, LIDAR, two_cars};
use v2x_link::CloseCode;
use v2x_link::client::{ClientError, SensorClient, VehicleClient};
use v2x_proto::domain::Subscription;
use v2x_replays::criteria::default_criteria;
use v2x_replays::pipeline::ReplayConfig;
use v2x_replays::validate::{ValidateOptions, validate};
use v2x_replays::{OpenOptions, ReadMode, ReplayBody, ReplayReader};

struct Daemon {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    /// When the process was spawned.
    spawned: Instant,
    /// When it had printed its addresses.
    listening: Instant,
}

/// Starts `rsu serve` and waits for the addresses it prints.
fn spawn(config: &Path) -> Daemon {
    spawn_with(config, &[])
}

/// Starts `rsu serve` with `extra` arguments and waits for the addresses it prints.
fn spawn_with(config: &Path, extra: &[&str]) -> Daemon {
    let spawned = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rsu"))
        .args(["serve", "--config"])
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rsu serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut addr, mut metrics) = (None, None);
    while addr.is_none() || metrics.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the daemon prints its addresses");
        if let Some(a) = line.strip_prefix("rsu serve listening on ") {
            addr = Some(a.trim().parse().expect("address"));
        }
        if let Some(rest) = line.strip_prefix("rsu serve metrics on http://") {
            metrics = rest.split('/').next().map(|a| a.parse().expect("metrics address"));
        }
    }
    Daemon { child, addr: addr.expect("addr"), metrics: metrics.expect("metrics"), spawned, listening: Instant::now() }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

fn recording_config(fixture: &Fixture) -> PathBuf {
    let extra = format!(
        "[recording]\nenabled = true\ndir = \"rec\"\nfsync_interval_s = {FSYNC_INTERVAL_S}\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n"
    );
    let text = std::fs::read_to_string(&fixture.config).expect("config") + &extra;
    std::fs::write(&fixture.config, text).expect("config");
    fixture.config.clone()
}

fn recordings(dir: &Path) -> Vec<PathBuf> {
    rsu::recorder::recordings_in(dir).expect("recording dir")
}

/// Counts messages by kind in a log read in recover mode.
fn count(file: &Path, mode: ReadMode) -> (usize, usize) {
    let reader = ReplayReader::open_with(file, OpenOptions { mode, ..Default::default() }).expect("log opens");
    let (mut sensor, mut roadside) = (0, 0);
    for message in reader {
        match message {
            Ok(m) => match m.body {
                ReplayBody::Sensor(_) => sensor += 1,
                ReplayBody::Roadside(_) => roadside += 1,
                _ => {}
            },
            Err(e) => panic!("recover mode yields no errors: {e}"),
        }
    }
    (sensor, roadside)
}

async fn send_frames(sensor: &SensorClient, n: u64) {
    for sequence in 1..=n {
        sensor.send_frame(&two_cars(sequence)).await.expect("frame");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_leaves_the_log_readable_up_to_the_last_fsync() {
    let fixture = Fixture::new("");
    let mut daemon = spawn(&recording_config(&fixture));
    let sensor = SensorClient::connect(&fixture.sensor(daemon.addr, LIDAR)).await.expect("sensor");
    send_frames(&sensor, 30).await;
    // Several fsync intervals pass with everything received.
    tokio::time::sleep(Duration::from_millis(800)).await;
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().expect("reaped");
    let files = recordings(&fixture.path().join("rec"));
    assert_eq!(files.len(), 1, "{files:?}");
    let strict = ReplayReader::open_with(&files[0], OpenOptions { mode: ReadMode::Strict, ..Default::default() })
        .map(|r| r.into_iter().all(|m| m.is_ok()))
        .unwrap_or(false);
    assert!(!strict, "a killed recording has no footer: strict reading must notice");
    let (sensor_frames, roadside_frames) = count(&files[0], ReadMode::Recover);
    assert_eq!(sensor_frames, 30, "every frame received more than one fsync interval before the kill");
    assert!(roadside_frames > 5, "broadcast frames recorded: {roadside_frames}");
}

/// The recording's fsync interval in [`recording_config`] [s].
const FSYNC_INTERVAL_S: f64 = 0.2;

/// Time from a frame's arrival at the daemon to its record reaching the recorder thread, allowed
/// on a busy machine [s]: a record is durable one fsync interval after it reaches the recorder.
const INGEST_TO_RECORDER_SLACK_S: f64 = 0.3;

/// Sensor frame sequence numbers in a recording read in recover mode, in file order.
fn recorded_sequences(file: &Path) -> Vec<u64> {
    let options = OpenOptions { mode: ReadMode::Recover, ..Default::default() };
    let reader = ReplayReader::open_with(file, options).expect("a crashed recording opens");
    reader
        .filter_map(|m| match m.expect("recover mode yields no errors").body {
            ReplayBody::Sensor(f) => Some(f.sequence),
            _ => None,
        })
        .collect()
}

/// `kill -9` while frames stream in: the recording, read in recover mode, holds every frame the
/// daemon had received up to about one fsync interval before the kill, validates with
/// `--recover` (scored without ground truth), and the daemon started again serves within 1 s
/// without touching the crashed file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_at_most_the_fsync_interval_and_a_restart_serves_at_once() {
    let fixture = Fixture::new("");
    let config = recording_config(&fixture);
    let rec_dir = fixture.path().join("rec");
    let mut daemon = spawn(&config);
    let sensor = SensorClient::connect(&fixture.sensor(daemon.addr, LIDAR)).await.expect("sensor");
    // Frames every 20 ms, each acknowledged (the daemon has all of it), for 1.5 s; then SIGKILL
    // right after the last acknowledgement, with no quiet time for the recorder.
    let mut acked: Vec<(u64, Instant)> = Vec::new();
    let streaming = Instant::now();
    let mut sequence = 0;
    while streaming.elapsed() < Duration::from_millis(1500) {
        sequence += 1;
        sensor.send_frame_acked(&two_cars(sequence)).await.expect("frame");
        acked.push((sequence, Instant::now()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.child.kill().expect("SIGKILL");
    let killed = Instant::now();
    daemon.child.wait().expect("reaped");
    drop(sensor);

    let files = recordings(&rec_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let crashed = files[0].clone();
    let crashed_bytes = std::fs::read(&crashed).expect("read");
    let recorded = recorded_sequences(&crashed);
    let kept = recorded.len() as u64;
    assert_eq!(recorded, (1..=kept).collect::<Vec<u64>>(), "a prefix of the frames, in order, no gaps");
    // The first frame lost: how long before the kill the daemon had it.
    let lost_window_s = acked
        .iter()
        .find(|(s, _)| *s == kept + 1)
        .map_or(0.0, |(_, at)| killed.saturating_duration_since(*at).as_secs_f64());
    eprintln!(
        "kill -9: {kept} of {} frames recorded; the first lost was acknowledged {:.0} ms before the kill \
         (fsync interval {:.0} ms)",
        acked.len(),
        lost_window_s * 1e3,
        FSYNC_INTERVAL_S * 1e3
    );
    assert!(kept > 0, "frames received more than an fsync interval before the kill are recorded");
    assert!(
        lost_window_s <= FSYNC_INTERVAL_S + INGEST_TO_RECORDER_SLACK_S,
        "lost frames the daemon had {lost_window_s:.3} s before the kill (fsync interval {FSYNC_INTERVAL_S} s)"
    );

    // Strict reading refuses the crashed file; recover-mode validation scores what is intact and
    // names the damage; the recording has no ground truth, so only what needs none is judged.
    assert!(validate(&crashed, &default_criteria(), &ReplayConfig::default(), ValidateOptions::default()).is_err());
    let recover = ValidateOptions { live: true, mode: ReadMode::Recover };
    let (report, _) =
        validate(&crashed, &default_criteria(), &ReplayConfig::default(), recover).expect("validates with --recover");
    let damage = report.replay.damage.as_deref().expect("the damage is named");
    assert!(damage.contains(&crashed.display().to_string()) && damage.contains("cut short"), "{damage}");
    assert_eq!(report.replay.sensor_frames, kept);
    assert!(report.passed, "{:#?}", report.checks);
    let inputs = report.checks.iter().find(|c| c.name == "log.inputs_accepted").expect("inputs judged");
    assert!(inputs.passed && inputs.value >= kept as f64 - 1.0, "{inputs:?}");
    for name in ["overall.mota_min", "overall.idf1_min", "overall.position_rmse_max_m"] {
        let check = report.checks.iter().find(|c| c.name == name).expect("listed");
        assert!(check.is_not_applicable(), "{check:?}");
    }
    assert!(report.broadcast_age_s.count > 0, "the broadcast age is measured without truth");
    let sent = report.live.as_ref().and_then(|l| l.as_sent.as_ref()).expect("the recorded broadcast");
    assert!(sent.frames > 0 && sent.passed, "{sent:?}");

    // `rsu log info --recover --json` on the crashed file: the intact messages and the damage.
    let out = Command::new(env!("CARGO_BIN_EXE_rsu"))
        .args(["log", "info", "--recover", "--json"])
        .arg(&crashed)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(info["topics"]["/sensors/lidar-ne"]["messages"].as_u64(), Some(kept));

    // Restart on the same configuration and recording directory: serving within 1 s.
    let mut daemon = spawn(&config);
    let mut vehicle = VehicleClient::connect(&fixture.vehicle(daemon.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle");
    let connected = Instant::now();
    vehicle.next_frame().await.expect("a frame");
    let first_frame = Instant::now();
    let since = |t: Instant| t.duration_since(daemon.spawned).as_secs_f64();
    eprintln!(
        "restart: listening {:.0} ms, first connection accepted {:.0} ms, first frame {:.0} ms after spawn",
        since(daemon.listening) * 1e3,
        since(connected) * 1e3,
        since(first_frame) * 1e3
    );
    // Serving within 1 s (a debug build measured 15-21 ms to the first accepted connection, 89-280
    // ms with three such tests at once on 2 cores); the first frame, which also waits for a fusion
    // step, within a more generous 2 s.
    assert!(since(connected) < 1.0, "accepting connections {:.3} s after the restart", since(connected));
    assert!(since(first_frame) < 2.0, "the first frame {:.3} s after the restart", since(first_frame));
    let files = recordings(&rec_dir);
    assert_eq!(files.len(), 2, "the restart records into a file of its own: {files:?}");
    assert_eq!(std::fs::read(&crashed).expect("read"), crashed_bytes, "the crashed recording is untouched");
    let status = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    assert!(daemon.child.wait().expect("exit").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sessions_finishes_the_recording_and_exits_0() {
    let fixture = Fixture::new("");
    let mut daemon = spawn(&recording_config(&fixture));
    let sensor = SensorClient::connect(&fixture.sensor(daemon.addr, LIDAR)).await.expect("sensor");
    let mut vehicle = VehicleClient::connect(&fixture.vehicle(daemon.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle");
    send_frames(&sensor, 10).await;
    vehicle.next_frame().await.expect("frames flow");

    let health = http_get(daemon.metrics, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(daemon.metrics, "/metrics");
    for name in [
        "rsu_sensor_frames_total{sensor=\"lidar-ne\"}",
        "rsu_fusion_step_seconds_bucket",
        "rsu_broadcast_latency_seconds_bucket",
        "rsu_added_latency_seconds_bucket",
        "rsu_frames_sent_total",
        "rsu_connected_vehicles 1",
        "rsu_connected_sensors 1",
        "rsu_sensor_status{sensor=\"lidar-ne\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }

    let status = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(e) = vehicle.next_frame().await {
                return e;
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(matches!(closed, ClientError::Closed { code: CloseCode::Shutdown, .. }), "{closed}");
    let exit = daemon.child.wait().expect("exit");
    assert!(exit.success(), "exit status {exit}");
    let files = recordings(&fixture.path().join("rec"));
    assert_eq!(files.len(), 1);
    let (sensor_frames, roadside_frames) = count(&files[0], ReadMode::Strict);
    assert_eq!(sensor_frames, 10);
    assert!(roadside_frames > 0);
    // The clean recording validates without ground truth: judged on what needs none, the rest
    // not applicable.
    let live = ValidateOptions { live: true, mode: ReadMode::Strict };
    let (report, _) = validate(&files[0], &default_criteria(), &ReplayConfig::default(), live).expect("validates");
    assert!(report.passed && report.replay.damage.is_none(), "{:#?}", report.checks);
    assert!(report.checks.iter().any(|c| c.name == "log.inputs_accepted" && c.passed && c.value >= 10.0));
    assert!(report.checks.iter().filter(|c| c.name.starts_with("overall.")).all(|c| c.is_not_applicable()));
}

#[test]
fn a_bad_configuration_fails_at_start_naming_the_field() {
    let fixture = Fixture::new("[broadcast]\nrate_hz = 80.0\n");
    // The fixture already has a [broadcast] table; a duplicate table is a TOML error naming it.
    let stderr = serve_fails(&fixture.config);
    assert!(stderr.contains("broadcast"), "{stderr}");

    let fixture = Fixture::new("");
    let text = std::fs::read_to_string(&fixture.config).expect("config").replace("rate_hz = 20.0", "rate_hz = 80.0");
    std::fs::write(&fixture.config, text).expect("config");
    let stderr = serve_fails(&fixture.config);
    assert!(stderr.contains("broadcast.rate_hz") && stderr.contains("80"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certs_init_writes_a_pki_the_daemon_accepts() {
    let fixture = Fixture::new("");
    let out = fixture.path().join("fresh");
    let output = Command::new(env!("CARGO_BIN_EXE_rsu"))
        .args(["certs", "init", "--out"])
        .arg(&out)
        .args(["--rsu-id", "rsu-test", "--vehicles", "2", "--sensors", "lidar-ne,cam-n"])
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for f in ["ca.pem", "rsu.pem", "rsu.key", "revoked.txt", "vehicles/veh-0002.pem", "sensors/cam-n.key"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // Point the daemon at the fresh PKI.
    let text = std::fs::read_to_string(&fixture.config).expect("config").replace("pki/", "fresh/")
        + "[metrics]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&fixture.config, text).expect("config");
    let mut daemon = spawn(&fixture.config);
    let settings = v2x_link::client::ClientSettings::from_files(
        daemon.addr,
        "localhost",
        &out.join("ca.pem"),
        &out.join("sensors/lidar-ne.pem"),
        &out.join("sensors/lidar-ne.key"),
    )
    .expect("settings");
    let sensor = SensorClient::connect(&settings).await.expect("the fresh sensor certificate is accepted");
    assert_eq!(sensor.server_hello().rsu_id, "rsu-test");
    daemon.child.kill().expect("kill");
    daemon.child.wait().expect("reaped");
}

#[test]
fn a_key_that_is_not_the_certificates_is_one_error_naming_both_files() {
    let fixture = Fixture::new("");
    // The RSU certificate with a vehicle's key: both are valid PEM, they just do not belong together.
    let text = std::fs::read_to_string(&fixture.config)
        .expect("config")
        .replace("key = \"pki/rsu.key\"", "key = \"pki/vehicles/veh-0001.key\"");
    std::fs::write(&fixture.config, text).expect("config");
    for extra in [&[][..], &["--check"][..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_rsu"))
            .args(["serve", "--config"])
            .arg(&fixture.config)
            .args(extra)
            .output()
            .expect("runs");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("veh-0001.key") && stderr.contains("rsu.pem") && stderr.contains("does not belong"),
            "{stderr}"
        );
        assert_eq!(stderr.matches("does not belong").count(), 1, "said once: {stderr}");
        assert!(!stderr.contains("KeyMismatch"), "{stderr}");
    }
}

/// Runs `rsu serve` with `config`, asserts it fails, and returns what it printed on stderr.
fn serve_fails(config: &std::path::Path) -> String {
    let output =
        Command::new(env!("CARGO_BIN_EXE_rsu")).args(["serve", "--config"]).arg(config).output().expect("runs");
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[cfg(feature = "live-view")]
/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Needs the `rerun` CLI, which is not part of the Rust toolchain: ignored by a plain
/// `cargo test`, and run by `.ci/run` (which installs it) as
/// `cargo test --workspace -- --ignored rerun_connect`. Without the CLI it fails, saying why.
#[cfg(feature = "live-view")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the rerun CLI (pip install rerun-sdk==0.36.3); .ci/run runs it"]
async fn rerun_connect_streams_the_live_view_to_a_rerun_server() {
    let rerun_cli = Command::new("rerun").arg("--version").output();
    assert!(
        rerun_cli.is_ok_and(|o| o.status.success()),
        "no `rerun` CLI on PATH: install it with `pip install rerun-sdk==0.36.3`"
    );
    let fixture = Fixture::new("");
    let rrd = fixture.path().join("received.rrd");
    let port = free_port();
    // In a process group of its own: `rerun` may be a wrapper around the real binary, and the
    // whole group is stopped at the end.
    let mut server = Command::new("rerun")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save"])
        .arg(&rrd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("rerun --save starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the rerun server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = recording_config(&fixture);
    let mut daemon = spawn_with(&config, &["--rerun", "connect", &format!("127.0.0.1:{port}")]);
    let sensor = SensorClient::connect(&fixture.sensor(daemon.addr, LIDAR)).await.expect("sensor");
    send_frames(&sensor, 20).await;
    let status = Command::new("kill").args(["-TERM", &daemon.child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    assert!(daemon.child.wait().expect("exit").success());
    // The server writes what it received; stop it and read the file.
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", server.id())]).status();
    let _ = server.wait();
    let stats = rsu::live_view::rrd_stats(&rrd).expect("the received recording decodes");
    for entity in ["/site/sensors", "/detections/lidar-ne", "/tracks"] {
        assert!(stats.entities.contains(entity), "{entity} in {:?}", stats.entities);
    }
}

/// The daemon's resident memory [KiB] (Linux `/proc`).
fn rss_kib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id())).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The `rsu serve` binary's resident memory [KiB] before and after each of three floods of 600
/// Initials in a second from addresses that never answer, with `limits` (keys of `[limits]`) in
/// the configuration; each flood is followed by the handshake timeout and a second.
async fn rss_over_floods(limits: &str) -> Vec<u64> {
    use common::flood::{Flood, FloodPlan};
    let fixture = Fixture::new(limits);
    let text = std::fs::read_to_string(&fixture.config).expect("config") + "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(&fixture.config, text).expect("config");
    let mut daemon = spawn(&fixture.config);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rss = vec![rss_kib(&daemon)];
    let plan = FloodPlan {
        burst: 600,
        burst_s: 1.0,
        trickle_per_s: 0.0,
        sources: 64,
        source_ip: [127, 0, 0, 1],
        answer_retries: false,
    };
    for _ in 0..3 {
        let flood = Flood::start(daemon.addr, fixture.vehicle(daemon.addr, "veh-0002").quic, plan);
        tokio::time::sleep(Duration::from_secs(1)).await;
        flood.stop();
        rss.push(rss_kib(&daemon));
        // Whatever the flood opened times out (the handshake timeout, or the idle timeout).
        tokio::time::sleep(Duration::from_secs(11)).await;
        rss.push(rss_kib(&daemon));
    }
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().expect("reaped");
    println!("RSS [KiB] at start, then after each flood and 11 s later: {rss:?}");
    rss
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_floods_do_not_grow_the_daemon() {
    let rss = rss_over_floods("").await;
    let (start, end) = (rss[0], rss[rss.len() - 1]);
    let peak = rss.iter().max().copied().unwrap_or(0);
    // Measured: about +1 MiB (the unprotected daemon: +20 MiB, kept).
    assert!(peak < start + 6 * 1024, "RSS {start} KiB grew to {peak} KiB under the floods: {rss:?}");
    assert!(end < start + 6 * 1024, "RSS {start} KiB ended at {end} KiB: {rss:?}");
}

/// The same floods with the handshake limits lifted (as before they existed): for the figures
/// in BENCHMARKS.md (`cargo test --workspace --test serve_process -- --ignored unprotected --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of the unprotected daemon"]
async fn unprotected_daemon_under_handshake_floods() {
    let limits = "max_handshakes = 100000\nmax_unvalidated_handshakes = 100000\nhandshake_timeout_s = 600.0\n";
    rss_over_floods(limits).await;
}
