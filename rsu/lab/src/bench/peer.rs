//! The bench's peer: the same roadside frames fanned out by a Mosquitto broker instead of the
//! RSU's QUIC sessions, the way many deployments would do it. The broker runs on a free loopback
//! port from a temporary configuration (anonymous, no persistence). A relay (one more QUIC
//! vehicle of the daemon, subscribed to everything) publishes each frame it receives, the same
//! bytes behind an 8-byte send timestamp, at QoS 0; `N` subscribers (one MQTT connection each,
//! QoS 0) measure publish → receipt. Both roles run as child processes of the bench.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::{Deserialize, Serialize};
use v2x_link::client::VehicleClient;
use v2x_link::wall_now;
use v2x_proto::domain::Subscription;
use vehicle_sim::swarm::{LatencySummary, latency_histogram, record_latency};

use super::process::Proc;

/// The topic the relay publishes on and every subscriber subscribes to.
pub const TOPIC: &str = "rsu/frames";

/// Largest MQTT packet either side accepts [bytes]: room for the largest roadside frame.
const MAX_PACKET_BYTES: usize = v2x_link::MAX_ROADSIDE_FRAME_BYTES + 1024;

/// The Mosquitto executable the bench looks for first.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A free TCP port on 127.0.0.1 (bound and released: another process could take it in between,
/// which the broker's start then reports).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("free port")?.port())
}

/// The Mosquitto executable: `/usr/sbin/mosquitto` or `mosquitto` on the PATH.
pub fn mosquitto() -> anyhow::Result<PathBuf> {
    if Path::new(MOSQUITTO).exists() {
        return Ok(PathBuf::from(MOSQUITTO));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("mosquitto"))
        .find(|p| p.exists())
        .context("mosquitto not found (apt-get install mosquitto), or run the bench with --no-peer")
}

/// Starts Mosquitto on a free loopback port; returns it and its port once it accepts connections.
pub fn start_broker(dir: &Path, max_connections: usize) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let config = dir.join("mosquitto.conf");
    let text = format!(
        "# rsu-lab bench: the peer broker, loopback only.\n\
         listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
         max_connections {max_connections}\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let mut broker = Proc::start("mosquitto", &mosquitto()?, &[Path::new("-c"), &config], dir, false)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            broker.stop()?;
            bail!("mosquitto did not listen on {addr} within 10 s; see {}", broker.log().display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((broker, port))
}

fn options(id: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    options
}

/// What the relay did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RelayReport {
    /// Frames received from the RSU.
    pub frames_in: u64,
    /// Frames published to the broker.
    pub published: u64,
    /// Publishes that failed.
    pub publish_errors: u64,
}

/// The relay: receives the RSU's frames as the vehicle of `settings` (everything) and publishes
/// each to the broker on `port` for `duration_s`.
pub async fn relay(
    settings: v2x_link::client::ClientSettings,
    port: u16,
    duration_s: f64,
) -> anyhow::Result<RelayReport> {
    let vehicle = VehicleClient::connect(&settings, Some(Subscription::Everything)).await.context("relay connects")?;
    let (client, mut eventloop) = AsyncClient::new(options("relay", port), 1024);
    let connected = Arc::new(tokio::sync::Notify::new());
    let ready = connected.clone();
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => ready.notify_one(),
                Ok(_) => {}
                Err(e) => return format!("{e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), connected.notified())
        .await
        .context("relay connecting to mosquitto")?;
    println!("relay ready");
    let mut report = RelayReport::default();
    let mut frames = vehicle.frame_receiver();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(duration_s);
    loop {
        let bytes = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            b = frames.next_bytes() => b.context("relay's RSU session")?,
        };
        report.frames_in += 1;
        let mut payload = Vec::with_capacity(8 + bytes.len());
        payload.extend_from_slice(&wall_now().as_nanos().to_be_bytes());
        payload.extend_from_slice(&bytes);
        match client.publish(TOPIC, QoS::AtMostOnce, false, payload).await {
            Ok(()) => report.published += 1,
            Err(_) => report.publish_errors += 1,
        }
    }
    // Let the last publishes leave before disconnecting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    driver.abort();
    vehicle.close().await;
    Ok(report)
}

/// What the subscribers measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SubscribersReport {
    /// Subscribers asked for.
    pub subscribers: usize,
    /// Subscribers whose subscription the broker acknowledged.
    pub subscribed: usize,
    /// Messages received, all subscribers.
    pub messages: u64,
    /// Fewest messages one subscriber received.
    pub min_per_subscriber: u64,
    /// Messages too short to carry the timestamp.
    pub malformed: u64,
    /// Connection errors.
    pub errors: Vec<String>,
    /// Publish → receipt.
    pub publish_to_receipt: LatencySummary,
}

/// `n` subscribers on the broker at `port`: prints `subscribed <n>` once all are, and measures
/// until stdin ends (the bench closes it when the relay is done).
pub async fn subscribers(n: usize, port: u16) -> anyhow::Result<SubscribersReport> {
    let subscribed = Arc::new(AtomicUsize::new(0));
    let all_subscribed = Arc::new(tokio::sync::Notify::new());
    // Every subscriber task watches it to stop.
    let stop = Arc::new(tokio::sync::watch::Sender::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (subscribed, all, stop) = (subscribed.clone(), all_subscribed.clone(), stop.clone());
        tasks.spawn(async move {
            let (client, mut eventloop) = AsyncClient::new(options(&format!("sub-{i:04}"), port), 16);
            let mut h = latency_histogram().map_err(|e| e.to_string())?;
            let (mut messages, mut malformed) = (0u64, 0u64);
            client.subscribe(TOPIC, QoS::AtMostOnce).await.map_err(|e| e.to_string())?;
            let mut stopped = stop.subscribe();
            loop {
                let event = tokio::select! {
                    _ = stopped.changed() => break,
                    e = eventloop.poll() => e.map_err(|e| format!("subscriber {i}: {e}"))?,
                };
                match event {
                    // Counts every acknowledgement; the last one wakes the announcement.
                    Event::Incoming(Packet::SubAck(_)) if subscribed.fetch_add(1, Ordering::SeqCst) + 1 == n => {
                        all.notify_one();
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let now = wall_now();
                        match p.payload.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                            Some(stamp) => {
                                messages += 1;
                                let sent = rsu_fusion::Timestamp::from_nanos(i64::from_be_bytes(stamp));
                                record_latency(&mut h, now.secs_since(sent));
                            }
                            None => malformed += 1,
                        }
                    }
                    _ => {}
                }
            }
            let _ = client.disconnect().await;
            Ok::<_, String>((messages, malformed, h))
        });
    }
    tokio::select! {
        _ = all_subscribed.notified() => println!("subscribed {n}"),
        _ = tokio::time::sleep(Duration::from_secs(60)) => bail!(
            "only {} of {n} MQTT subscribers subscribed within 60 s",
            subscribed.load(Ordering::SeqCst)
        ),
    }
    // Until the bench closes stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    let _ = stop.send(true);
    let mut all = latency_histogram()?;
    let mut report = SubscribersReport {
        subscribers: n,
        subscribed: subscribed.load(Ordering::SeqCst),
        min_per_subscriber: u64::MAX,
        ..SubscribersReport::default()
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((messages, malformed, h))) => {
                report.messages += messages;
                report.malformed += malformed;
                report.min_per_subscriber = report.min_per_subscriber.min(messages);
                let _ = all.add(&h);
            }
            Ok(Err(e)) => report.errors.push(e),
            Err(e) => report.errors.push(format!("task: {e}")),
        }
    }
    if report.min_per_subscriber == u64::MAX {
        report.min_per_subscriber = 0;
    }
    report.publish_to_receipt = LatencySummary::of(&all);
    Ok(report)
}
