//! Northbound MQTT: the RSU and the city's V2X platform (README, "Northbound MQTT"; PROTOCOL.md
//! §7). A task of its own, fed by the fusion loop through a bounded inbox the loop only ever
//! `try_send`s into (a full inbox drops and counts), so the broker can never block or slow the
//! vehicle path.
//!
//! Uplink: fused frames (RSM/UP, at `rsm_rate_hz`), SPaT (SPAT/UP, per intersection at
//! `spat_rate_hz`), heartbeats with counters (HB/UP) and the device information (INFO/UP,
//! retained, on every connection; the MQTT last will marks it offline). Messages wait in the
//! [`queue::OfflineQueue`] while the broker is away; when it is full the oldest is dropped and
//! counted. A message type is one [`Channel`] constant plus the call that hands its payload to
//! [`Northbound::publish`].
//!
//! Downlink: `ConfigChange` (CONFIG/DOWN) and `RoadEvent` (RSI/DOWN), checked by [`downlink`],
//! applied, and answered with a `DownlinkAck` (ok or the reason) on the ACK topic. Settings of
//! the loop (the vehicle SPaT rate) and the recording of road events go to the loop as
//! [`Control`] messages. Road events are kept until they end; the daemon has no road event
//! broadcast to vehicles yet, so they are stored, recorded and acknowledged.
//!
//! The MQTT connection is rumqttc's event loop, driven by a task of its own ([`client`]) that
//! reconnects with exponential backoff and jitter.

mod client;
pub mod downlink;
pub mod queue;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsu_fusion::{EnuFrame, RoadsideFrame, SensorModel, SensorStatus, Timestamp};
use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use v2x_proto::domain::Spat;
use v2x_proto::wire;

pub use self::client::client_tls;
use self::downlink::{EventRequest, Refusal, Rejected, RoadEvents};
use self::queue::{OfflineQueue, Outgoing};
use super::stats::{LogGate, Stats};
use crate::config::{LoadedConfig, TopicOverride};
use crate::recorder::wall_now;

/// One kind of northbound message: its configuration key, default topic (OpenV2X layout;
/// `{rsu_id}` is replaced), default QoS and whether the broker retains it.
#[derive(Debug, PartialEq, Eq)]
pub struct Channel {
    /// The key in `[northbound.topics]` and the metric label.
    pub key: &'static str,
    /// The default topic.
    pub topic: &'static str,
    /// The default QoS, 0..=2.
    pub qos: u8,
    /// Published with the retain flag.
    pub retain: bool,
}

/// Fused frames (`v2x.v1.RoadsideFrame`), RSU → platform.
pub const RSM: Channel = Channel { key: "rsm", topic: "V2X/RSU/{rsu_id}/RSM/UP", qos: 0, retain: false };
/// SPaT per intersection (`v2x.v1.Spat`), RSU → platform.
pub const SPAT: Channel = Channel { key: "spat", topic: "V2X/RSU/{rsu_id}/SPAT/UP", qos: 0, retain: false };
/// Heartbeats (`v2x.v1.RsuHeartbeat`), RSU → platform.
pub const HB: Channel = Channel { key: "hb", topic: "V2X/RSU/{rsu_id}/HB/UP", qos: 1, retain: false };
/// Device information (`v2x.v1.RsuInfo`), RSU → platform, retained.
pub const INFO: Channel = Channel { key: "info", topic: "V2X/RSU/{rsu_id}/INFO/UP", qos: 1, retain: true };
/// Road events (`v2x.v1.RoadEvent`), platform → RSU.
pub const RSI_DOWN: Channel = Channel { key: "rsi_down", topic: "V2X/RSU/{rsu_id}/RSI/DOWN", qos: 1, retain: false };
/// Answers to road events (`v2x.v1.DownlinkAck`), RSU → platform.
pub const RSI_ACK: Channel = Channel { key: "rsi_ack", topic: "V2X/RSU/{rsu_id}/RSI/DOWN/ACK", qos: 1, retain: false };
/// Runtime settings (`v2x.v1.ConfigChange`), platform → RSU.
pub const CONFIG_DOWN: Channel =
    Channel { key: "config_down", topic: "V2X/RSU/{rsu_id}/CONFIG/DOWN", qos: 1, retain: false };
/// Answers to configuration changes (`v2x.v1.DownlinkAck`), RSU → platform.
pub const CONFIG_ACK: Channel =
    Channel { key: "config_ack", topic: "V2X/RSU/{rsu_id}/CONFIG/DOWN/ACK", qos: 1, retain: false };

/// Every channel.
pub const CHANNELS: [&Channel; 8] = [&RSM, &SPAT, &HB, &INFO, &RSI_DOWN, &RSI_ACK, &CONFIG_DOWN, &CONFIG_ACK];

/// The topics in use: each channel's topic name and QoS.
#[derive(Clone, Debug)]
pub struct Topics {
    by_key: BTreeMap<&'static str, (String, QoS)>,
}

impl Topics {
    /// The defaults of [`CHANNELS`] with `overrides`, `{rsu_id}` replaced by `rsu_id`. Unknown
    /// keys, QoS over 2, empty names and names with MQTT wildcards are refused.
    pub fn resolve(overrides: &BTreeMap<String, TopicOverride>, rsu_id: &str) -> Result<Topics, String> {
        if let Some(key) = overrides.keys().find(|k| !CHANNELS.iter().any(|c| c.key == k.as_str())) {
            let known: Vec<&str> = CHANNELS.iter().map(|c| c.key).collect();
            return Err(format!("{key:?} is not one of {}", known.join(", ")));
        }
        let mut by_key = BTreeMap::new();
        for channel in CHANNELS {
            let o = overrides.get(channel.key).cloned().unwrap_or_default();
            let name = o.topic.as_deref().unwrap_or(channel.topic).replace("{rsu_id}", rsu_id);
            if name.is_empty() || name.contains(['+', '#', '\0']) || name.len() > 1024 {
                return Err(format!("{}: topic {name:?} must be 1..=1024 bytes without + # or NUL", channel.key));
            }
            let qos = match o.qos.unwrap_or(channel.qos) {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                2 => QoS::ExactlyOnce,
                q => return Err(format!("{}: qos {q} is not 0, 1 or 2", channel.key)),
            };
            by_key.insert(channel.key, (name, qos));
        }
        Ok(Topics { by_key })
    }

    /// The topic and QoS of `channel`.
    pub fn of(&self, channel: &Channel) -> (&str, QoS) {
        self.by_key.get(channel.key).map_or((channel.topic, QoS::AtMostOnce), |(name, qos)| (name.as_str(), *qos))
    }

    /// The channel whose topic is `topic`, among `candidates`.
    fn channel_of(&self, topic: &str, candidates: &[&'static Channel]) -> Option<&'static Channel> {
        candidates.iter().copied().find(|c| self.of(c).0 == topic)
    }
}

/// The settings the platform may change at runtime (`v2x.v1.RuntimeSettings`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Fused frames published per second [Hz].
    pub rsm_rate_hz: f64,
    /// SPaT published per second and intersection [Hz].
    pub spat_rate_hz: f64,
    /// Seconds between heartbeats [s].
    pub heartbeat_interval_s: f64,
    /// SPaT datagrams per second to each vehicle [Hz].
    pub vehicle_spat_rate_hz: f64,
}

/// Checks every setting against its range; the error names the first one out of range.
pub fn check_settings(s: &Settings) -> Result<(), String> {
    for (field, v, lo, hi) in [
        ("rsm_rate_hz", s.rsm_rate_hz, 0.1, 20.0),
        ("spat_rate_hz", s.spat_rate_hz, 0.1, 10.0),
        ("heartbeat_interval_s", s.heartbeat_interval_s, 1.0, 3600.0),
        ("vehicle_spat_rate_hz", s.vehicle_spat_rate_hz, 1.0, 50.0),
    ] {
        if !(v.is_finite() && v >= lo && v <= hi) {
            return Err(format!("{field}: {v} is out of range {lo}..={hi}"));
        }
    }
    Ok(())
}

impl From<&Settings> for wire::RuntimeSettings {
    fn from(s: &Settings) -> Self {
        wire::RuntimeSettings {
            rsm_rate_hz: Some(s.rsm_rate_hz),
            spat_rate_hz: Some(s.spat_rate_hz),
            heartbeat_interval_s: Some(s.heartbeat_interval_s),
            vehicle_spat_rate_hz: Some(s.vehicle_spat_rate_hz),
        }
    }
}

/// Why a northbound message was dropped: the `reason` label of `rsu_northbound_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The offline queue was full: its oldest message made room.
    QueueFull,
    /// The publisher's inbox was full (the loop never waits for it).
    InboxFull,
}

impl Dropped {
    /// The metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Dropped::QueueFull => "queue_full",
            Dropped::InboxFull => "inbox_full",
        }
    }
}

/// Counters of the northbound link (also exported as `rsu_northbound_*` metrics).
#[derive(Default)]
pub struct NorthboundStats {
    /// Messages handed to the MQTT client, every channel.
    pub published: AtomicU64,
    /// Fused frames put in the queue for RSM/UP (after the rate limit).
    pub rsm_queued: AtomicU64,
    /// Dropped because the offline queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Dropped because the publisher's inbox was full.
    pub dropped_inbox_full: AtomicU64,
    /// Downlink messages rejected, by [`Refusal`] (in the order of [`Refusal::ALL`]).
    rejected: [AtomicU64; Refusal::ALL.len()],
    gates: [std::sync::Mutex<LogGate>; Refusal::ALL.len()],
    /// Downlink messages applied (acknowledged with ok).
    pub applied: AtomicU64,
    /// Whether the broker connection is up.
    pub connected: AtomicBool,
    /// Connections made to the broker (the first and every reconnection).
    pub connections: AtomicU64,
    /// Road events in force.
    pub road_events: AtomicU64,
}

impl NorthboundStats {
    /// Counts a dropped message.
    pub fn dropped(&self, reason: Dropped, channel: &Channel) {
        let counter = match reason {
            Dropped::QueueFull => &self.dropped_queue_full,
            Dropped::InboxFull => &self.dropped_inbox_full,
        };
        Stats::bump(counter);
        metrics::counter!("rsu_northbound_dropped_total", "reason" => reason.name(), "topic" => channel.key)
            .increment(1);
    }

    /// Dropped messages, every reason.
    pub fn dropped_total(&self) -> u64 {
        Stats::get(&self.dropped_queue_full) + Stats::get(&self.dropped_inbox_full)
    }

    /// Counts a rejected downlink message and logs it (at most one line per reason every
    /// [`super::stats::LOG_INTERVAL`]).
    pub fn reject(&self, rejected: &Rejected, topic: &str) {
        let i = Refusal::ALL.iter().position(|r| *r == rejected.reason).unwrap_or(0);
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rsu_northbound_rejected_total", "reason" => rejected.reason.name()).increment(1);
        let mut gate = self.gates[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(suppressed) = gate.open(Instant::now()) {
            drop(gate);
            tracing::warn!(reason = rejected.reason.name(), topic, suppressed, request_id = %rejected.request_id,
                "northbound downlink rejected: {}", rejected.detail);
        }
    }

    /// Rejections so far for `reason`.
    pub fn rejected(&self, reason: Refusal) -> u64 {
        Refusal::ALL.iter().position(|r| *r == reason).map_or(0, |i| self.rejected[i].load(Ordering::Relaxed))
    }

    /// Rejections so far, every reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// What the fusion loop hands the publisher.
#[derive(Debug)]
pub enum Uplink {
    /// A fused frame (published at `rsm_rate_hz`).
    Frame(Arc<RoadsideFrame>),
    /// The SPaT of every intersection with a fresh controller state (each published at
    /// `spat_rate_hz`).
    Spat(Vec<Spat>),
    /// An encoded message for `channel`, published as it comes (e.g. on change).
    Message(&'static Channel, Bytes),
}

/// What the publisher asks of the fusion loop.
#[derive(Debug)]
pub enum Control {
    /// Send vehicles SPaT at this rate [Hz].
    VehicleSpatRate(f64),
    /// Record an event (MCAP metadata record) with these fields.
    Event(&'static str, BTreeMap<String, String>),
}

/// The loop's handle on the publisher.
#[derive(Clone)]
pub struct Northbound {
    inbox: mpsc::Sender<Uplink>,
    stats: Arc<Stats>,
}

/// Messages the publisher's inbox holds (the loop drops and counts beyond).
const INBOX: usize = 256;
/// Control messages waiting for the loop (a downlink message beyond is refused as `busy`).
const CONTROL_QUEUE: usize = 64;

impl Northbound {
    /// Hands `uplink` to the publisher without waiting; drops and counts it when the inbox is
    /// full.
    pub fn offer(&self, uplink: Uplink) {
        if let Err(mpsc::error::TrySendError::Full(up) | mpsc::error::TrySendError::Closed(up)) =
            self.inbox.try_send(uplink)
        {
            let channel = match up {
                Uplink::Frame(_) => &RSM,
                Uplink::Spat(_) => &SPAT,
                Uplink::Message(channel, _) => channel,
            };
            self.stats.northbound.dropped(Dropped::InboxFull, channel);
        }
    }

    /// Publishes `payload` on `channel` (one line per new message type at its source).
    pub fn publish(&self, channel: &'static Channel, payload: Bytes) {
        self.offer(Uplink::Message(channel, payload));
    }
}

/// Starts the publisher and its MQTT connection for `loaded` (whose `[northbound]` is enabled):
/// the handle the loop publishes through, the control messages the loop must apply, and the
/// task (it ends after `shutdown`, having marked the RSU offline).
pub fn start(
    loaded: &LoadedConfig,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) -> anyhow::Result<(Northbound, mpsc::Receiver<Control>, tokio::task::JoinHandle<()>)> {
    let config = &loaded.config.northbound;
    let topics =
        Topics::resolve(&config.topics, &loaded.rsu_id).map_err(|e| anyhow::anyhow!("northbound.topics: {e}"))?;
    let settings = Settings {
        rsm_rate_hz: config.rsm_rate_hz,
        spat_rate_hz: config.spat_rate_hz,
        heartbeat_interval_s: config.heartbeat_interval_s,
        vehicle_spat_rate_hz: loaded.config.signals.spat_rate_hz,
    };
    let started = wall_now();
    let mut info = info_message(loaded, &settings, started);
    info.online = false;
    let (info_topic, info_qos) = topics.of(&INFO);
    let will = rumqttc::LastWill::new(info_topic, v2x_proto::encode_wire(&info), info_qos, true);
    let (client, driver_events, driver) = client::connect(config, &loaded.rsu_id, will)?;
    info.online = true;
    let (inbox_tx, inbox) = mpsc::channel(INBOX);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let publisher = Publisher {
        rsu_id: loaded.rsu_id.clone(),
        site: loaded.site.frame(),
        topics,
        settings,
        info,
        queue: OfflineQueue::new(config.queue_messages),
        road_events: RoadEvents::new(config.max_road_events),
        max_downlink_bytes: config.max_downlink_bytes,
        client,
        control: control_tx,
        stats: stats.clone(),
        started_at: Instant::now(),
        last_rsm: None,
        last_spat: BTreeMap::new(),
        sensors: Vec::new(),
        connected: false,
    };
    let task = tokio::spawn(publisher.run(inbox, driver_events, driver, shutdown));
    Ok((Northbound { inbox: inbox_tx, stats }, control_rx, task))
}

/// The INFO message of the RSU of `loaded` with `settings` in force.
fn info_message(loaded: &LoadedConfig, settings: &Settings, started: Timestamp) -> wire::RsuInfo {
    wire::RsuInfo {
        rsu_id: loaded.rsu_id.clone(),
        online: true,
        software_version: concat!("rsu ", env!("CARGO_PKG_VERSION")).into(),
        protocol_version: v2x_link::PROTOCOL_VERSION,
        site_id: loaded.site.site_id.clone(),
        site_origin: Some(wire::Wgs84Position::from(&loaded.site.origin)),
        representative_site: loaded.site.representative,
        sensors: loaded
            .site
            .sensors
            .iter()
            .map(|s| wire::SensorInfo {
                sensor_id: s.id.clone(),
                kind: match s.model {
                    SensorModel::Lidar(_) => "lidar",
                    SensorModel::Camera(_) => "camera",
                }
                .into(),
                max_range_m: s.max_range_m,
            })
            .collect(),
        intersection_ids: loaded.config.signals.controllers.iter().map(|c| u32::from(c.intersection_id)).collect(),
        started_ns: u64::try_from(started.as_nanos()).unwrap_or(0),
        settings: Some(wire::RuntimeSettings::from(settings)),
    }
}

/// What the MQTT driver reports.
#[derive(Debug)]
pub(crate) enum Link {
    /// Connected (CONNACK accepted).
    Connected,
    /// The connection failed or ended; the driver retries after its backoff.
    Disconnected(String),
    /// A message arrived on a subscribed topic.
    Message(String, Bytes),
}

/// The publisher task's state.
struct Publisher {
    rsu_id: String,
    site: EnuFrame,
    topics: Topics,
    settings: Settings,
    info: wire::RsuInfo,
    queue: OfflineQueue,
    road_events: RoadEvents,
    max_downlink_bytes: usize,
    client: rumqttc::AsyncClient,
    control: mpsc::Sender<Control>,
    stats: Arc<Stats>,
    started_at: Instant,
    last_rsm: Option<Instant>,
    last_spat: BTreeMap<u16, Instant>,
    /// The sensors' health in the newest frame.
    sensors: Vec<wire::SensorHealth>,
    connected: bool,
}

/// How often the queue is offered to the MQTT client again while its request channel is full
/// and road events are checked for their end.
const RETRY_INTERVAL: Duration = Duration::from_millis(20);
/// How long the publisher waits at shutdown for its goodbye to reach the broker.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

impl Publisher {
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Uplink>,
        mut link: mpsc::Receiver<Link>,
        mut driver: tokio::task::JoinHandle<()>,
        shutdown: CancellationToken,
    ) {
        let mut heartbeat = self.heartbeat_timer();
        let mut retry = tokio::time::interval(RETRY_INTERVAL);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        metrics::gauge!("rsu_northbound_connected").set(0.0);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(event) = link.recv() => match event {
                    Link::Connected => self.on_connected(),
                    Link::Disconnected(why) => self.on_disconnected(&why),
                    Link::Message(topic, payload) => {
                        if self.downlink(&topic, &payload) {
                            heartbeat = self.heartbeat_timer();
                        }
                    }
                },
                Some(uplink) = inbox.recv() => self.uplink(uplink),
                _ = heartbeat.tick() => self.heartbeat(),
                _ = expiry.tick() => self.expire(wall_now()),
                _ = retry.tick(), if self.connected && !self.queue.is_empty() => {}
            }
            if self.connected {
                self.flush();
            }
        }
        // Say goodbye: the retained INFO goes offline, then the session ends.
        self.info.online = false;
        self.enqueue(&INFO, Bytes::from(v2x_proto::encode_wire(&self.info)));
        if self.connected {
            self.flush();
        }
        let _ = self.client.try_disconnect();
        // The driver sends what is left and the DISCONNECT, then ends; a broker that is away
        // gets no goodbye (its last will says offline).
        let deadline = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut driver => break,
                () = &mut deadline => {
                    driver.abort();
                    break;
                }
                event = link.recv() => if event.is_none() {
                    break;
                },
            }
        }
        tracing::info!(published = Stats::get(&self.stats.northbound.published), "northbound: stopped");
    }

    fn heartbeat_timer(&self) -> tokio::time::Interval {
        let period = Duration::from_secs_f64(self.settings.heartbeat_interval_s);
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        timer
    }

    fn on_connected(&mut self) {
        let nb = &self.stats.northbound;
        nb.connected.store(true, Ordering::Relaxed);
        Stats::bump(&nb.connections);
        metrics::gauge!("rsu_northbound_connected").set(1.0);
        metrics::counter!("rsu_northbound_connections_total").increment(1);
        self.connected = true;
        tracing::info!(rsu_id = %self.rsu_id, "northbound: connected to the broker");
        for channel in [&RSI_DOWN, &CONFIG_DOWN] {
            let (topic, qos) = self.topics.of(channel);
            if let Err(e) = self.client.try_subscribe(topic, qos) {
                tracing::warn!(topic, "northbound: cannot subscribe: {e}");
            }
        }
        // INFO first on every connection (retained, so a platform that starts later sees it).
        let info = Outgoing { channel: &INFO, payload: Bytes::from(v2x_proto::encode_wire(&self.info)) };
        if !self.publish_now(&info) {
            self.enqueue(info.channel, info.payload);
        }
    }

    fn on_disconnected(&mut self, why: &str) {
        if self.connected {
            tracing::warn!("northbound: broker connection lost ({why}); keeping up to {} messages", self.queue.bound());
        } else {
            tracing::debug!("northbound: cannot connect: {why}");
        }
        self.connected = false;
        self.stats.northbound.connected.store(false, Ordering::Relaxed);
        metrics::gauge!("rsu_northbound_connected").set(0.0);
    }

    /// Puts a message in the offline queue, dropping (and counting) the oldest when full.
    fn enqueue(&mut self, channel: &'static Channel, payload: Bytes) {
        if let Some(old) = self.queue.push(Outgoing { channel, payload }) {
            self.stats.northbound.dropped(Dropped::QueueFull, old.channel);
        }
        metrics::gauge!("rsu_northbound_queued").set(self.queue.len() as f64);
    }

    /// Hands queued messages to the MQTT client until its request channel is full.
    fn flush(&mut self) {
        while let Some(message) = self.queue.front() {
            if !self.publish_now(&message.clone()) {
                break;
            }
            self.queue.pop();
        }
        metrics::gauge!("rsu_northbound_queued").set(self.queue.len() as f64);
    }

    /// Hands one message to the client; false when its request channel is full.
    fn publish_now(&self, message: &Outgoing) -> bool {
        let (topic, qos) = self.topics.of(message.channel);
        match self.client.try_publish(topic, qos, message.channel.retain, message.payload.to_vec()) {
            Ok(()) => {
                Stats::bump(&self.stats.northbound.published);
                metrics::counter!("rsu_northbound_published_total", "topic" => message.channel.key).increment(1);
                true
            }
            Err(_) => false,
        }
    }

    fn uplink(&mut self, uplink: Uplink) {
        match uplink {
            Uplink::Frame(frame) => {
                self.sensors = frame.sensors.iter().map(sensor_health).collect();
                let interval = Duration::from_secs_f64(1.0 / self.settings.rsm_rate_hz);
                if self.last_rsm.is_some_and(|last| last.elapsed() < interval) {
                    return;
                }
                self.last_rsm = Some(Instant::now());
                Stats::bump(&self.stats.northbound.rsm_queued);
                self.enqueue(&RSM, Bytes::from(v2x_proto::encode(&*frame)));
            }
            Uplink::Spat(spats) => {
                let interval = Duration::from_secs_f64(1.0 / self.settings.spat_rate_hz);
                for spat in spats {
                    let last = self.last_spat.get(&spat.intersection_id);
                    if last.is_some_and(|last| last.elapsed() < interval) {
                        continue;
                    }
                    self.last_spat.insert(spat.intersection_id, Instant::now());
                    self.enqueue(&SPAT, Bytes::from(v2x_proto::encode(&spat)));
                }
            }
            Uplink::Message(channel, payload) => self.enqueue(channel, payload),
        }
    }

    fn heartbeat(&mut self) {
        let stats = &self.stats;
        let nb = &stats.northbound;
        let now = wall_now();
        let hb = wire::RsuHeartbeat {
            rsu_id: self.rsu_id.clone(),
            timestamp_ns: u64::try_from(now.as_nanos()).unwrap_or(0),
            uptime_s: self.started_at.elapsed().as_secs_f64(),
            connected_vehicles: count(&stats.connected_vehicles),
            connected_sensors: count(&stats.connected_sensors),
            connected_signal_controllers: count(&stats.connected_signal_controllers),
            frames_made: Stats::get(&stats.cycles),
            sensor_frames_in: Stats::get(&stats.sensor_frames_in),
            vehicle_states_in: Stats::get(&stats.vehicle_states_in),
            signal_states_in: Stats::get(&stats.signal_states_in),
            rejected_inputs: stats.rejections().iter().map(|(_, n)| n).sum(),
            northbound_published: Stats::get(&nb.published),
            northbound_dropped: nb.dropped_total(),
            northbound_rejected: nb.rejected_total(),
            active_road_events: u32::try_from(self.road_events.len()).unwrap_or(u32::MAX),
            sensors: self.sensors.clone(),
        };
        self.enqueue(&HB, Bytes::from(v2x_proto::encode_wire(&hb)));
    }

    fn expire(&mut self, now: Timestamp) {
        for ended in self.road_events.expire(now) {
            tracing::info!(event_id = %ended.event.event_id, "northbound: road event ended");
            self.record(ended.fields("expired"));
        }
        self.stats.northbound.road_events.store(self.road_events.len() as u64, Ordering::Relaxed);
        metrics::gauge!("rsu_northbound_road_events").set(self.road_events.len() as f64);
    }

    fn record(&self, fields: BTreeMap<String, String>) {
        // The recording is best effort: a full control queue loses the record, not the event.
        if self.control.try_send(Control::Event(ROAD_EVENT_RECORD, fields)).is_err() {
            metrics::counter!("rsu_recorder_dropped_total").increment(1);
        }
    }

    /// Handles a downlink message; true when the heartbeat interval changed.
    fn downlink(&mut self, topic: &str, payload: &[u8]) -> bool {
        let Some(channel) = self.topics.channel_of(topic, &[&CONFIG_DOWN, &RSI_DOWN]) else {
            tracing::debug!(topic, "northbound: a message on a topic the RSU did not subscribe to, ignored");
            return false;
        };
        // The context is copied out of `self`, which the handlers change.
        let (rsu_id, site) = (self.rsu_id.clone(), self.site.clone());
        let ctx =
            downlink::Context { rsu_id: &rsu_id, site: &site, max_bytes: self.max_downlink_bytes, now: wall_now() };
        let (ack_channel, result) = if *channel == CONFIG_DOWN {
            (&CONFIG_ACK, self.config_change(payload, &ctx))
        } else {
            (&RSI_ACK, self.road_event(payload, &ctx))
        };
        let before = self.settings.heartbeat_interval_s;
        let ack = match result {
            Ok((request_id, detail)) => {
                Stats::bump(&self.stats.northbound.applied);
                metrics::counter!("rsu_northbound_applied_total", "topic" => channel.key).increment(1);
                self.ack(request_id, true, "", detail)
            }
            Err(rejected) => {
                self.stats.northbound.reject(&rejected, topic);
                self.ack(rejected.request_id, false, rejected.reason.name(), rejected.detail)
            }
        };
        self.enqueue(ack_channel, Bytes::from(v2x_proto::encode_wire(&ack)));
        self.settings.heartbeat_interval_s != before
    }

    fn ack(&self, request_id: String, ok: bool, reason: &str, detail: String) -> wire::DownlinkAck {
        wire::DownlinkAck {
            request_id,
            rsu_id: self.rsu_id.clone(),
            ok,
            reason: reason.to_owned(),
            detail,
            timestamp_ns: u64::try_from(wall_now().as_nanos()).unwrap_or(0),
        }
    }

    fn config_change(&mut self, payload: &[u8], ctx: &downlink::Context<'_>) -> Result<(String, String), Rejected> {
        let (request_id, next) = downlink::config_change(payload, &self.settings, ctx)?;
        if next.vehicle_spat_rate_hz != self.settings.vehicle_spat_rate_hz
            && self.control.try_send(Control::VehicleSpatRate(next.vehicle_spat_rate_hz)).is_err()
        {
            return Err(Rejected { request_id, reason: Refusal::Busy, detail: "the daemon is busy: try again".into() });
        }
        tracing::info!(%request_id, ?next, "northbound: settings changed by the platform");
        let mut fields: BTreeMap<String, String> = BTreeMap::from([("request_id".to_owned(), request_id.clone())]);
        for (key, value) in [
            ("rsm_rate_hz", next.rsm_rate_hz),
            ("spat_rate_hz", next.spat_rate_hz),
            ("heartbeat_interval_s", next.heartbeat_interval_s),
            ("vehicle_spat_rate_hz", next.vehicle_spat_rate_hz),
        ] {
            fields.insert(key.to_owned(), format!("{value}"));
        }
        if self.control.try_send(Control::Event(CONFIG_RECORD, fields)).is_err() {
            metrics::counter!("rsu_recorder_dropped_total").increment(1);
        }
        self.settings = next;
        self.info.settings = Some(wire::RuntimeSettings::from(&next));
        // The retained INFO follows the settings in force.
        self.enqueue(&INFO, Bytes::from(v2x_proto::encode_wire(&self.info)));
        Ok((request_id, "applied".into()))
    }

    fn road_event(&mut self, payload: &[u8], ctx: &downlink::Context<'_>) -> Result<(String, String), Rejected> {
        let outcome = match downlink::road_event(payload, ctx)? {
            EventRequest::Cancel(id) => {
                let detail = match self.road_events.cancel(&id) {
                    Some(event) => {
                        self.record(event.fields("cancelled"));
                        "cancelled"
                    }
                    None => "was not in force",
                };
                tracing::info!(event_id = %id, detail, "northbound: road event cancelled by the platform");
                (id, detail.to_owned())
            }
            EventRequest::Store(event) => {
                let id = event.event.event_id.clone();
                let fields = event.fields("stored");
                self.road_events.store(event)?;
                tracing::info!(event_id = %id, "northbound: road event stored (recorded; no vehicle broadcast yet)");
                self.record(fields);
                (id, "stored".to_owned())
            }
        };
        self.stats.northbound.road_events.store(self.road_events.len() as u64, Ordering::Relaxed);
        metrics::gauge!("rsu_northbound_road_events").set(self.road_events.len() as f64);
        Ok(outcome)
    }
}

/// The name of the recording's event record for a road event (stored, cancelled, expired).
pub const ROAD_EVENT_RECORD: &str = "road_event";
/// The name of the recording's event record for a configuration change from the platform.
pub const CONFIG_RECORD: &str = "northbound_config";

fn count(counter: &AtomicU64) -> u32 {
    u32::try_from(Stats::get(counter)).unwrap_or(u32::MAX)
}

fn sensor_health(h: &rsu_fusion::SensorHealth) -> wire::SensorHealth {
    let status = match h.status {
        SensorStatus::Unknown => wire::SensorStatus::Unknown,
        SensorStatus::Ok => wire::SensorStatus::Ok,
        SensorStatus::Degraded => wire::SensorStatus::Degraded,
        SensorStatus::Silent => wire::SensorStatus::Silent,
    };
    wire::SensorHealth {
        sensor_id: h.sensor_id.clone(),
        status: status as i32,
        last_capture_ns: h.last_capture.map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topics_follow_the_openv2x_layout_and_overrides_apply() {
        let topics = Topics::resolve(&BTreeMap::new(), "rsu-7").expect("defaults");
        assert_eq!(topics.of(&RSM), ("V2X/RSU/rsu-7/RSM/UP", QoS::AtMostOnce));
        assert_eq!(topics.of(&CONFIG_ACK), ("V2X/RSU/rsu-7/CONFIG/DOWN/ACK", QoS::AtLeastOnce));
        let overrides = BTreeMap::from([(
            "rsm".to_owned(),
            TopicOverride { topic: Some("city/{rsu_id}/rsm".into()), qos: Some(1) },
        )]);
        let topics = Topics::resolve(&overrides, "rsu-7").expect("override");
        assert_eq!(topics.of(&RSM), ("city/rsu-7/rsm", QoS::AtLeastOnce));
        assert_eq!(topics.channel_of("V2X/RSU/rsu-7/RSI/DOWN", &[&CONFIG_DOWN, &RSI_DOWN]), Some(&RSI_DOWN));
        for (key, o) in [
            ("nope", TopicOverride::default()),
            ("hb", TopicOverride { topic: Some("a/+/b".into()), qos: None }),
            ("hb", TopicOverride { topic: None, qos: Some(3) }),
        ] {
            assert!(Topics::resolve(&BTreeMap::from([(key.to_owned(), o)]), "r").is_err(), "{key}");
        }
    }
}
