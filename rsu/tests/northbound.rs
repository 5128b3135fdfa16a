//! Northbound MQTT against a real Mosquitto broker (README, "Northbound MQTT"; PROTOCOL.md §7):
//! the daemon in-process with a sensor publishes INFO (retained), heartbeats and fused frames a
//! platform client decodes; configuration changes and road events from the platform are applied,
//! acknowledged and recorded, bad ones refused with their reason and counted while vehicles keep
//! getting frames; a broker killed and started again loses no more than the offline queue's
//! bound; TLS with a client certificate, and username and password, are required and work.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::mosquitto::Broker;
use common::{Fixture, LIDAR, Running, feed_two_cars, now};
use prost::Message as _;
use rsu::serve::northbound::downlink::Refusal;
use rsu::serve::stats::Stats;
use rsu_fusion::RoadsideFrame;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;
use v2x_link::client::{SensorClient, SignalControllerClient, VehicleClient};
use v2x_proto::domain::{MovementPhase, MovementState, SignalControllerState, Spat, Subscription};
use v2x_proto::wire;

/// Generous bound for anything that should happen within a few periods on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(15);

/// The platform: an MQTT client subscribed to everything of RSU `rsu-test`, keeping every
/// message it receives.
struct Platform {
    client: AsyncClient,
    received: Arc<Mutex<Vec<(String, Bytes)>>>,
    driver: tokio::task::JoinHandle<()>,
}

impl Platform {
    /// Connects as `id` (a persistent session when `persistent`), subscribed at QoS 1.
    fn connect(options: MqttOptions) -> Platform {
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let subscriber = client.clone();
        let driver = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = subscriber.try_subscribe("V2X/RSU/rsu-test/#", QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock().expect("lock").push((p.topic.clone(), p.payload.clone()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Platform { client, received, driver }
    }

    /// Plain options for the broker on `port`.
    fn options(id: &str, port: u16, persistent: bool) -> MqttOptions {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(!persistent);
        options.set_max_packet_size(2 << 20, 2 << 20);
        options
    }

    /// Every message received so far on topics ending with `suffix`.
    fn on(&self, suffix: &str) -> Vec<Bytes> {
        let received = self.received.lock().expect("lock");
        received.iter().filter(|(t, _)| t.ends_with(suffix)).map(|(_, p)| p.clone()).collect()
    }

    /// Waits until `check` holds for the messages on `suffix`, and returns what it found.
    async fn wait_for<T>(&self, suffix: &str, what: &str, check: impl Fn(&[Bytes]) -> Option<T>) -> T {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(found) = check(&self.on(suffix)) {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: not on {suffix} within {PATIENCE:?}"))
    }

    /// Publishes `payload` to the RSU's `topic` (under V2X/RSU/rsu-test/) and waits for the
    /// ACK of `request_id` on `topic`/ACK.
    async fn request(&self, topic: &str, request_id: &str, payload: Vec<u8>) -> wire::DownlinkAck {
        let before = self.on(&format!("{topic}/ACK")).len();
        self.client
            .publish(format!("V2X/RSU/rsu-test/{topic}"), QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
        self.wait_for(&format!("{topic}/ACK"), "the ACK", |acks| {
            acks[before.min(acks.len())..]
                .iter()
                .filter_map(|p| wire::DownlinkAck::decode(p.as_ref()).ok())
                .find(|a| a.request_id == request_id)
        })
        .await
    }

    fn stop(self) {
        self.driver.abort();
    }
}

fn northbound_config(port: u16, extra: &str) -> String {
    format!(
        "[northbound]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_min_s = 0.1\n\
         reconnect_max_s = 1.0\n{extra}\n"
    )
}

/// Waits until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: not within {PATIENCE:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_gets_info_heartbeats_and_frames_and_drives_settings_and_road_events() {
    let broker_dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(broker_dir.path(), "allow_anonymous true");
    let fixture = Fixture::new(&format!(
        "{}\n[recording]\nenabled = true\ndir = \"rec\"\nfsync_interval_s = 0.1\n\n\
         [[signals.controllers]]\nid = \"tsc-1\"\nintersection_id = 1201\n",
        northbound_config(broker.port, "rsm_rate_hz = 5.0\nspat_rate_hz = 2.0\nheartbeat_interval_s = 1.0\n")
    ));
    let platform = Platform::connect(Platform::options("platform", broker.port, false));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = Running::start(&fixture, Some(4096));
    let sensor = SensorClient::connect(&fixture.sensor(server.addr, LIDAR)).await.expect("sensor connects");
    let stop_feed = CancellationToken::new();
    let feed = feed_two_cars(sensor, stop_feed.clone());
    let controller =
        SignalControllerClient::connect(&fixture.signal(server.addr, "tsc-1")).await.expect("controller connects");
    let stop_signals = stop_feed.clone();
    let signals = tokio::spawn(async move {
        while !stop_signals.is_cancelled() {
            let t = now();
            let green = MovementState {
                signal_group: 2,
                phase: MovementPhase::ProtectedMovementAllowed,
                start: Some(t.add_secs(-3.0)),
                min_end: t.add_secs(5.0),
                max_end: None,
                likely: None,
            };
            let state = SignalControllerState { controller_id: "tsc-1".into(), time: t, movements: vec![green] };
            controller.send_state(&state).expect("state sent");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // INFO (retained), heartbeats with counters, fused frames with the two cars.
    let info =
        platform.wait_for("/INFO/UP", "INFO", |m| m.iter().find_map(|p| wire::RsuInfo::decode(p.as_ref()).ok())).await;
    assert_eq!((info.rsu_id.as_str(), info.online), ("rsu-test", true));
    assert!(info.software_version.starts_with("rsu "), "{info:?}");
    assert!(info.sensors.iter().any(|s| s.sensor_id == LIDAR && s.kind == "lidar"), "{info:?}");
    assert_eq!(info.settings.as_ref().and_then(|s| s.rsm_rate_hz), Some(5.0));
    assert_eq!(info.intersection_ids, vec![1201]);
    let frame: RoadsideFrame = platform
        .wait_for("/RSM/UP", "a frame with both cars", |m| {
            m.iter().filter_map(|p| v2x_proto::decode::<RoadsideFrame>(p).ok()).find(|f| f.participants.len() == 2)
        })
        .await;
    assert_eq!(frame.rsu_id, "rsu-test");
    let hb = platform
        .wait_for("/HB/UP", "a heartbeat after the sensor joined", |m| {
            m.iter()
                .filter_map(|p| wire::RsuHeartbeat::decode(p.as_ref()).ok())
                .find(|h| h.connected_sensors == 1 && h.sensor_frames_in > 0)
        })
        .await;
    assert!(hb.frames_made > 0 && hb.northbound_published > 0, "{hb:?}");
    assert!(hb.sensors.iter().any(|s| s.sensor_id == LIDAR), "{hb:?}");
    // SPaT of the intersection, at its own rate (2 Hz, not the vehicles' 10 Hz).
    let spat: Spat = platform
        .wait_for("/SPAT/UP", "SPaT of intersection 1201", |m| m.iter().find_map(|p| v2x_proto::decode::<Spat>(p).ok()))
        .await;
    assert_eq!(spat.intersection_id, 1201);
    assert_eq!(spat.movements[0].phase, MovementPhase::ProtectedMovementAllowed);
    let before = platform.on("/SPAT/UP").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spat_in_2_s = platform.on("/SPAT/UP").len() - before;
    assert!((2..=6).contains(&spat_in_2_s), "{spat_in_2_s} SPaT in 2 s at spat_rate_hz 2");

    // RSM at about 5 Hz, not the broadcast rate (20 Hz): over 2 s, 6..=14 frames.
    let before = platform.on("/RSM/UP").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rsm_in_2_s = platform.on("/RSM/UP").len() - before;
    assert!((6..=14).contains(&rsm_in_2_s), "{rsm_in_2_s} frames in 2 s at rsm_rate_hz 5");

    // A configuration change: applied, acknowledged, the retained INFO follows.
    let change = |id: &str, rsu: &str, settings: wire::RuntimeSettings| {
        wire::ConfigChange { request_id: id.into(), rsu_id: rsu.into(), settings: Some(settings) }.encode_to_vec()
    };
    let ack = platform
        .request(
            "CONFIG/DOWN",
            "c-1",
            change(
                "c-1",
                "rsu-test",
                wire::RuntimeSettings { rsm_rate_hz: Some(1.0), vehicle_spat_rate_hz: Some(5.0), ..Default::default() },
            ),
        )
        .await;
    assert!(ack.ok, "{ack:?}");
    platform
        .wait_for("/INFO/UP", "INFO with the new settings", |m| {
            m.iter()
                .filter_map(|p| wire::RsuInfo::decode(p.as_ref()).ok())
                .find(|i| i.settings.as_ref().and_then(|s| s.rsm_rate_hz) == Some(1.0))
        })
        .await;
    let before = platform.on("/RSM/UP").len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rsm_in_3_s = platform.on("/RSM/UP").len() - before;
    assert!((1..=5).contains(&rsm_in_3_s), "{rsm_in_3_s} frames in 3 s at rsm_rate_hz 1");

    // Bad configuration: refused with the reason, counted, nothing changed.
    let nb = &server.stats.northbound;
    let out_of_range = wire::RuntimeSettings { rsm_rate_hz: Some(500.0), ..Default::default() };
    let ack = platform.request("CONFIG/DOWN", "c-2", change("c-2", "rsu-test", out_of_range)).await;
    assert_eq!((ack.ok, ack.reason.as_str()), (false, "out_of_range"), "{ack:?}");
    assert!(ack.detail.contains("rsm_rate_hz"), "{ack:?}");
    let ack =
        platform.request("CONFIG/DOWN", "c-3", change("c-3", "rsu-other", wire::RuntimeSettings::default())).await;
    assert_eq!((ack.ok, ack.reason.as_str()), (false, "wrong_rsu"), "{ack:?}");
    let ack = platform.request("CONFIG/DOWN", "", vec![0x0a, 0xff, 0xff, 0xff]).await;
    assert_eq!((ack.ok, ack.reason.as_str()), (false, "malformed"), "{ack:?}");
    let ack = platform.request("CONFIG/DOWN", "", vec![0u8; 70_000]).await;
    assert_eq!((ack.ok, ack.reason.as_str()), (false, "oversized"), "{ack:?}");
    assert_eq!(nb.rejected(Refusal::Oversized), 1);
    assert_eq!(nb.rejected(Refusal::OutOfRange), 1);
    assert_eq!(nb.rejected(Refusal::WrongRsu), 1);
    assert_eq!(nb.rejected(Refusal::Malformed), 1);

    // Road events: stored, refused when out of range, expired at their end.
    let site = v2x_proto::sample::site();
    let near = site.frame().wgs84_from_enu(&nalgebra::Point3::new(40.0, 10.0, 0.0));
    let event = |id: &str, radius_m: f64, lasting_s: f64| wire::RoadEvent {
        event_id: id.into(),
        rsu_id: "rsu-test".into(),
        event_type: 401,
        position: Some(wire::Wgs84Position::from(&near)),
        radius_m,
        start_time_ns: 0,
        end_time_ns: now().add_secs(lasting_s).as_nanos() as u64,
        description: "road works".into(),
        priority: 2,
        cancel: false,
    };
    let ack = platform.request("RSI/DOWN", "works-1", event("works-1", 30.0, 600.0).encode_to_vec()).await;
    assert!(ack.ok, "{ack:?}");
    let ack = platform.request("RSI/DOWN", "short-2", event("short-2", 20.0, 1.5).encode_to_vec()).await;
    assert!(ack.ok, "{ack:?}");
    assert_eq!(nb.road_events.load(Ordering::Relaxed), 2);
    let ack = platform.request("RSI/DOWN", "huge-3", event("huge-3", 90_000.0, 600.0).encode_to_vec()).await;
    assert_eq!((ack.ok, ack.reason.as_str()), (false, "out_of_range"), "{ack:?}");
    until("the short road event expires", || nb.road_events.load(Ordering::Relaxed) == 1).await;
    assert_eq!(nb.rejected(Refusal::OutOfRange), 2);

    // Through all of it the vehicles' service went on.
    let mut vehicle = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects");
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = vehicle.next_frame().await.expect("frame");
            if frame.participants.len() == 2 {
                return frame;
            }
        }
    })
    .await
    .expect("the vehicle gets both cars");
    assert_eq!(seen.rsu_id, "rsu-test");
    vehicle.close().await;

    stop_feed.cancel();
    feed.await.expect("feed");
    signals.await.expect("signals");
    let stats = server.stats.clone();
    let summary = server.stop().await;
    // The goodbye: the retained INFO says offline.
    let last_info = platform
        .wait_for("/INFO/UP", "INFO offline", |m| {
            m.last().and_then(|p| wire::RsuInfo::decode(p.as_ref()).ok()).filter(|i| !i.online)
        })
        .await;
    assert_eq!(last_info.rsu_id, "rsu-test");
    assert_eq!(Stats::get(&stats.northbound.applied), 3, "one change and two road events applied");
    assert_eq!(stats.northbound.dropped_total(), 0);

    // The recording holds the platform's change and the road events' lives.
    let mut events: Vec<(String, String, String)> = Vec::new();
    for file in &summary.recordings {
        let bytes = std::fs::read(file).expect("read recording");
        for record in mcap::read::LinearReader::new(&bytes).expect("mcap") {
            if let mcap::records::Record::Metadata(m) = record.expect("record") {
                let key = m.metadata.get("event_id").or(m.metadata.get("request_id")).cloned().unwrap_or_default();
                events.push((m.name.clone(), key, m.metadata.get("action").cloned().unwrap_or_default()));
            }
        }
    }
    let expected = [
        ("northbound_config", "c-1", ""),
        ("road_event", "works-1", "stored"),
        ("road_event", "short-2", "stored"),
        ("road_event", "short-2", "expired"),
    ];
    for (name, key, action) in expected {
        assert!(
            events.iter().any(|(n, k, a)| n == name && k == key && a == action),
            "{name} {key} {action} not recorded: {events:?}"
        );
    }
    platform.stop();
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_dies_and_comes_back_loses_nothing_beyond_the_queue_bound() {
    const QUEUE: u64 = 15;
    let broker_dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start(broker_dir.path(), "allow_anonymous true");
    let fixture = Fixture::new(&northbound_config(
        broker.port,
        &format!(
            "queue_messages = {QUEUE}\nrsm_rate_hz = 10.0\nheartbeat_interval_s = 3600.0\n\
             [northbound.topics]\nrsm = {{ qos = 1 }}\n"
        ),
    ));
    // The platform keeps its session (and the broker its subscription) across the crash.
    let platform = Platform::connect(Platform::options("platform", broker.port, true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = Running::start(&fixture, None);
    let sensor = SensorClient::connect(&fixture.sensor(server.addr, LIDAR)).await.expect("sensor connects");
    let stop_feed = CancellationToken::new();
    let feed = feed_two_cars(sensor, stop_feed.clone());
    let nb = &server.stats.northbound;
    platform.wait_for("/RSM/UP", "frames before the crash", |m| (m.len() >= 10).then_some(())).await;
    // Past the broker's autosave (1 s), so the sessions survive the crash.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    broker.kill();
    let killed = now();
    until("the RSU sees the broker gone", || !nb.connected.load(Ordering::Relaxed)).await;
    // 4 s at 10 Hz: about 40 frames for a queue of 15.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dropped_while_away = nb.dropped_total();
    broker.restart();
    until("the RSU reconnects", || nb.connected.load(Ordering::Relaxed)).await;
    let reconnected = now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_feed.cancel();
    feed.await.expect("feed");
    let stats = server.stats.clone();
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let nb = &stats.northbound;
    let times: std::collections::BTreeSet<i64> = platform
        .on("/RSM/UP")
        .iter()
        .filter_map(|p| v2x_proto::decode::<RoadsideFrame>(p).ok())
        .map(|f| f.time.as_nanos())
        .collect();
    let queued = Stats::get(&nb.rsm_queued);
    let dropped = Stats::get(&nb.dropped_queue_full);
    let missing = queued.saturating_sub(times.len() as u64);
    let kept_from_outage =
        times.iter().filter(|t| **t > killed.add_secs(1.0).as_nanos() && **t < reconnected.as_nanos()).count() as u64;
    println!(
        "queued {queued} frames, received {}, missing {missing}, dropped by the full queue {dropped} \
         (while away {dropped_while_away}), received from the outage {kept_from_outage}, reconnections {}",
        times.len(),
        Stats::get(&nb.connections)
    );
    assert!(dropped_while_away >= 10, "the outage overflowed the queue: {dropped_while_away} dropped");
    // What the queue held when the broker came back arrived: the newest frames of the outage.
    assert!(kept_from_outage >= QUEUE - 3, "{kept_from_outage} frames of the outage arrived, queue {QUEUE}");
    // Lost: what the full queue dropped, and at most a few in flight at the crash.
    assert!(missing <= dropped + 5, "{missing} frames missing, {dropped} dropped by the queue");
    assert!(Stats::get(&nb.connections) >= 2);
    platform.stop();
}

/// Client certificate options for the platform over TLS.
fn tls_options(fixture: &Fixture, port: u16, cert: Option<(&std::path::Path, &std::path::Path)>) -> MqttOptions {
    let tls = rsu::config::NorthboundTlsConfig {
        ca: fixture.pki.ca_cert.clone(),
        cert: cert.map(|(c, _)| c.to_owned()),
        key: cert.map(|(_, k)| k.to_owned()),
    };
    let rustls = rsu::serve::northbound::client_tls(&tls).expect("platform TLS");
    let mut options = MqttOptions::new("platform-tls", "localhost", port);
    options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(rustls))));
    options.set_max_packet_size(2 << 20, 2 << 20);
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_is_required_and_works() {
    let fixture = Fixture::new("");
    let pki = &fixture.pki;
    let broker_dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start(
        broker_dir.path(),
        &format!(
            "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            pki.ca_cert.display(),
            pki.server.cert.display(),
            pki.server.key.display()
        ),
    );
    let (_, client) = pki.sensors.iter().find(|(id, _)| id == "lidar-x").expect("a client certificate");
    let with_cert = |cert: bool| {
        let mut text = northbound_config(broker.port, "heartbeat_interval_s = 1.0\n").replace("127.0.0.1", "localhost");
        text += &format!("[northbound.tls]\nca = \"{}\"\n", pki.ca_cert.display());
        if cert {
            text += &format!("cert = \"{}\"\nkey = \"{}\"\n", client.cert.display(), client.key.display());
        }
        text
    };
    let platform = Platform::connect(tls_options(&fixture, broker.port, Some((&client.cert, &client.key))));

    // Without a client certificate the broker refuses the RSU.
    let refused = Fixture::new(&with_cert(false));
    let server = Running::start(&refused, None);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(Stats::get(&server.stats.northbound.connections), 0, "connected without a client certificate");
    server.stop().await;

    let accepted = Fixture::new(&with_cert(true));
    let server = Running::start(&accepted, None);
    until("the RSU connects over TLS", || server.stats.northbound.connected.load(Ordering::Relaxed)).await;
    let hb = platform
        .wait_for("/HB/UP", "a heartbeat over TLS", |m| {
            m.iter().find_map(|p| wire::RsuHeartbeat::decode(p.as_ref()).ok())
        })
        .await;
    assert_eq!(hb.rsu_id, "rsu-test");
    let ack = platform
        .request(
            "CONFIG/DOWN",
            "tls-1",
            wire::ConfigChange {
                request_id: "tls-1".into(),
                rsu_id: "rsu-test".into(),
                settings: Some(wire::RuntimeSettings { heartbeat_interval_s: Some(2.0), ..Default::default() }),
            }
            .encode_to_vec(),
        )
        .await;
    assert!(ack.ok, "{ack:?}");
    server.stop().await;
    platform.stop();
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_are_required_and_work() {
    let broker_dir = tempfile::tempdir().expect("tempdir");
    let passwords = broker_dir.path().join("passwd");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["rsu-test", "s3cret-pass"])
        .status()
        .expect("mosquitto_passwd (package mosquitto)");
    assert!(status.success());
    let broker =
        Broker::start(broker_dir.path(), &format!("allow_anonymous false\npassword_file {}\n", passwords.display()));
    let with_password = |password: &str| {
        let fixture = Fixture::new(&northbound_config(
            broker.port,
            "username = \"rsu-test\"\npassword_file = \"mqtt-password\"\nheartbeat_interval_s = 1.0\n",
        ));
        std::fs::write(fixture.path().join("mqtt-password"), format!("{password}\n")).expect("password file");
        fixture
    };
    let wrong = with_password("guess");
    let server = Running::start(&wrong, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(Stats::get(&server.stats.northbound.connections), 0, "connected with a wrong password");
    server.stop().await;

    let right = with_password("s3cret-pass");
    let server = Running::start(&right, None);
    until("the RSU connects with its password", || server.stats.northbound.connected.load(Ordering::Relaxed)).await;
    until("a heartbeat is published", || Stats::get(&server.stats.northbound.published) >= 2).await;
    server.stop().await;
}
