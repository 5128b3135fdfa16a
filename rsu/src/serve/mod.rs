//! `rsu serve`: the daemon. A thin async shell around the sans-IO fusion core.
//!
//! [`Server::bind`] loads certificates and binds the QUIC endpoint; [`Server::run`] is the one
//! event loop: a single `select!` over shutdown, the frame timer, new connections, the
//! revocation-list poll and the [`Event`]s that connection tasks send through one bounded queue.
//! The loop owns the [`Fusion`] engine and passes it the wall clock (UTC) as `now`; the core
//! never reads a clock.
//!
//! Frames are event-driven: the loop takes every input waiting in the queue, hands them to the
//! engine, and at once makes a frame (a fusion step: the engine fuses what arrived, out of
//! sequence where needed, and predicts its objects to now), unless the previous frame is less
//! than `1 / max_rate_hz` old, in which case the frame is made when that interval ends. With no
//! input, a heartbeat frame is made every `1 / rate_hz`. Every frame made is recorded, so a
//! recording replayed at its arrival and frame times reproduces the broadcast exactly.
//!
//! New connections are admitted against the handshake limits ([`admission`], PROTOCOL §1.3):
//! beyond a few handshakes in progress an address not yet validated gets a stateless QUIC Retry,
//! so a flood of Initials from spoofed addresses cannot hold the RSU's connection slots.
//!
//! Each connection runs in its own task ([`connection`]): handshake, uplink decoding and
//! validation (bound to the certificate identity), and for vehicles the downlink writer that
//! filters each frame to the vehicle's region and sends it on its own stream when it changed
//! what the vehicle sees. A slow vehicle only delays itself.
//!
//! Signal controllers' states (over QUIC, or NTCIP 1202 blobs over UDP, [`ntcip`]) go through
//! the same queue into the [`spat::SpatTable`]; a timer of its own (`signals.spat_rate_hz`) sends
//! every vehicle of protocol version 3 each intersection's SPaT as a QUIC datagram. SPaT does not
//! go through fusion and makes no frame.
//!
//! The MAP and road safety information ([`roadway`], protocol version 4): each vehicle session
//! writes the MAP on its control stream at its start and on each subscription change; every
//! fusion step's objects go through the RSI detector, whose events reach those sessions through
//! one broadcast channel.
//!
//! With `[northbound]` enabled, frames and SPaT are also handed (never waiting) to the
//! [`northbound`] publisher, which talks MQTT to the city's platform in a task of its own; what
//! the platform changes in the loop (the vehicle SPaT rate) and the road events to record come
//! back as [`northbound::Control`] messages.

mod admission;
mod connection;
pub mod flags;
pub mod northbound;
mod ntcip;
mod roadway;
pub mod spat;
pub mod stats;
pub mod uper;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rsu_fusion::{Fusion, Ingest, RoadsideFrame, SensorFrame, SensorStatus, Timestamp, VehicleState};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use v2x_link::identity::{CertRole, Identity};
use v2x_link::revocation::Revocations;
use v2x_link::tls::{CertKey, TransportLimits, bind_udp, load_certs, load_roots, quinn_server, server_tls};
use v2x_link::{CloseCode, PROTOCOL_VERSION};
use v2x_proto::domain::{RoadsideDatagram, ServerHello, SignalControllerState};
use v2x_proto::fanout::FrameParts;

use crate::config::{LimitsConfig, LoadedConfig};
#[cfg(feature = "live-view")]
pub use crate::live_view::{LiveView, RerunTarget as LiveTarget};
use crate::metrics::Health;
use crate::recorder::{Record, Recorder, wall_now};
#[cfg(not(feature = "live-view"))]
pub use no_live_view::{LiveTarget, LiveView};
use stats::{Reject, Stats};

/// A fused frame ready for the vehicles, shared by every downlink task.
#[derive(Debug)]
pub struct Broadcast {
    /// The frame with every participant (each vehicle task filters it).
    pub frame: Arc<RoadsideFrame>,
    /// Per participant (by index), the capture time of its newest measurement [ns].
    pub updated_ns: Vec<i64>,
    /// Per participant (by index), the time of its newest path-history point [ns], if it has
    /// one: computed once here rather than by every vehicle's downlink.
    pub newest_history_ns: Vec<Option<i64>>,
    /// The frame encoded in parts, made by the first vehicle task that sends it.
    parts: OnceLock<FrameParts>,
    /// Vehicle frames assembled from the parts, by what went into them: vehicles that get the
    /// same participants with the same history share one encoding (and one buffer), with how
    /// many of the participants asked for fit in it.
    assembled: Mutex<FxHashMap<Vec<u32>, (Bytes, usize)>>,
    /// Capture time of the newest measurement fused into any participant.
    pub newest_capture: Option<Timestamp>,
    /// When the newest input fused into this frame arrived at the RSU.
    pub newest_arrival: Option<Instant>,
    /// No input arrived since the previous frame: a heartbeat.
    pub heartbeat: bool,
}

/// What connection tasks tell the fusion loop.
#[derive(Debug)]
pub enum Event {
    /// A session was established.
    Joined {
        /// Connection number.
        conn_id: u64,
        /// Certificate identity.
        identity: Identity,
        /// Certificate serial number.
        serial: Vec<u8>,
        /// The connection (to close it on shutdown, revocation or replacement).
        connection: quinn::Connection,
        /// Vehicles: where to put each new frame (latest wins).
        downlink: Option<watch::Sender<Option<Arc<Broadcast>>>>,
        /// The protocol version of the session (SPaT datagrams from version 3).
        version: u32,
    },
    /// A session ended.
    Left {
        /// Connection number.
        conn_id: u64,
    },
    /// A decoded, identity-checked sensor frame.
    Sensor {
        /// The frame.
        frame: SensorFrame,
        /// Arrival time (wall clock): the engine's `now` for it.
        received: Timestamp,
        /// Arrival instant (monotonic), for the added-latency metric.
        arrived: Instant,
    },
    /// A decoded, identity-checked vehicle state.
    Vehicle {
        /// The state.
        state: VehicleState,
        /// Arrival time (wall clock): the engine's `now` for it.
        received: Timestamp,
        /// Arrival instant (monotonic), for the added-latency metric.
        arrived: Instant,
        /// The vehicle's position for "around me", moved if the engine accepts the state.
        position: Arc<connection::VehiclePosition>,
    },
    /// A decoded, consistent, identity-checked signal controller state (from a QUIC session or
    /// the NTCIP adapter).
    Signal {
        /// The state.
        state: SignalControllerState,
        /// Arrival time (wall clock).
        received: Timestamp,
    },
}

/// What connection tasks share.
pub(crate) struct Shared {
    pub(crate) stats: Arc<Stats>,
    pub(crate) limits: LimitsConfig,
    pub(crate) enu: rsu_fusion::EnuFrame,
    pub(crate) sensor_ids: Vec<String>,
    pub(crate) controller_ids: Vec<String>,
    pub(crate) max_signal_states_per_s: f64,
    pub(crate) server_hello: ServerHello,
    pub(crate) default_radius_m: u32,
    pub(crate) rate_hz: f64,
    pub(crate) max_rate_hz: f64,
    pub(crate) frame_deadline_s: f64,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) active: AtomicUsize,
    /// QUIC/TLS handshakes in progress (counted in `active` too), in total and by IP address.
    pub(crate) handshakes: admission::Handshakes,
    /// Vehicles whose rate interval is over, waiting for their next frame: while there are
    /// some, every fusion step makes a frame at once.
    pub(crate) ready: AtomicUsize,
    /// The MAP and the RSI channel, for vehicle sessions of protocol version 4.
    pub(crate) roadway: Arc<roadway::Downlink>,
}

/// Where the loop's output goes besides QUIC.
#[derive(Default)]
pub struct Outputs {
    /// The recorder, when recording.
    pub recorder: Option<Recorder>,
    /// The live rerun view.
    pub live: Option<LiveView>,
    /// Liveness for `/healthz`.
    pub health: Health,
    /// The standard encoding gateway (set by [`Server::run`] from `[uper]`).
    pub uper: Option<uper::Gateway>,
    /// The northbound MQTT publisher: started by [`Server::run`] when `[northbound]` is
    /// enabled.
    pub northbound: Option<northbound::Northbound>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Recording files written.
    pub recordings: Vec<PathBuf>,
    /// Frames made (fusion steps that were broadcast).
    pub cycles: u64,
}

/// A bound, not yet running daemon.
pub struct Server {
    endpoint: quinn::Endpoint,
    loaded: LoadedConfig,
    revocations: Revocations,
    stats: Arc<Stats>,
}

struct SessionEntry {
    identity: Identity,
    serial: Vec<u8>,
    connection: quinn::Connection,
    downlink: Option<watch::Sender<Option<Arc<Broadcast>>>>,
    version: u32,
}

/// The daemon's QUIC transport settings from its limits.
pub fn server_transport(limits: &LimitsConfig) -> TransportLimits {
    TransportLimits {
        idle_timeout_s: limits.idle_timeout_s,
        keep_alive_s: None,
        max_uni_streams: limits.max_sensor_streams,
        max_bi_streams: 1,
        datagram_receive_buffer_bytes: limits.datagram_buffer_bytes,
        stream_receive_window_bytes: u32::try_from(limits.max_sensor_frame_bytes.max(64 * 1024)).unwrap_or(u32::MAX),
    }
}

/// The server's TLS configuration from the configured files, and the revocation list it checks
/// (kept to poll the file for changes). Errors name the field whose file is at fault.
pub fn server_crypto(tls: &crate::config::TlsConfig) -> anyhow::Result<(rustls::ServerConfig, Revocations)> {
    let roots = load_roots(&tls.ca).context("tls.ca")?;
    // A CRL must be signed by the CA the client certificates chain to.
    let ca = load_certs(&tls.ca, "CA certificate").context("tls.ca")?;
    let revocations = match &tls.revocations {
        Some(path) => Revocations::load(path, &ca).context("tls.revocations")?,
        None => Revocations::none(),
    };
    let cert = CertKey::load(&tls.cert, &tls.key).context("tls.cert / tls.key")?;
    let rustls = server_tls(&cert, roots, revocations.clone()).context("tls")?;
    Ok((rustls, revocations))
}

impl Server {
    /// Loads the certificates and revocation list and binds the QUIC endpoint on
    /// `config.listen`. Must be called inside a tokio runtime.
    pub fn bind(loaded: LoadedConfig) -> anyhow::Result<Server> {
        let (rustls, revocations) = server_crypto(&loaded.config.tls)?;
        let limits = &loaded.config.limits;
        let server_config = quinn_server(rustls, &server_transport(limits)).context("tls")?;
        let listen = loaded.config.listen;
        let (socket, granted) =
            bind_udp(listen, limits.udp_recv_buffer_bytes).with_context(|| format!("listen: binding UDP {listen}"))?;
        if granted.is_some_and(|g| g < limits.udp_recv_buffer_bytes) {
            tracing::warn!(
                asked = limits.udp_recv_buffer_bytes,
                granted,
                "the kernel granted a smaller UDP receive buffer (raise net.core.rmem_max)"
            );
        }
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .with_context(|| format!("listen: UDP {listen}"))?;
        Ok(Server { endpoint, loaded, revocations, stats: Arc::new(Stats::default()) })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.endpoint.local_addr().context("local address")
    }

    /// The run's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The revocation list in force.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// Runs the event loop until `shutdown` is cancelled, then closes every connection with
    /// [`CloseCode::Shutdown`], finishes the recording and returns.
    pub async fn run(self, mut outputs: Outputs, shutdown: CancellationToken) -> anyhow::Result<RunSummary> {
        let Server { endpoint, loaded, revocations, stats } = self;
        let config = &loaded.config;
        let mut fusion = Fusion::new(loaded.site.clone(), config.fusion.clone()).context("fusion")?;
        let (events_tx, mut events) = mpsc::channel(config.limits.ingest_queue);
        let (roadway_downlink, mut roadway) = roadway::start(&loaded, &config.rsi, wall_now())?;
        let shared = Arc::new(Shared {
            stats: stats.clone(),
            limits: config.limits.clone(),
            enu: loaded.site.frame(),
            sensor_ids: loaded.site.sensors.iter().map(|s| s.id.clone()).collect(),
            controller_ids: config.signals.controllers.iter().map(|c| c.id.clone()).collect(),
            max_signal_states_per_s: config.signals.max_states_per_s,
            server_hello: ServerHello {
                version: PROTOCOL_VERSION,
                rsu_id: loaded.rsu_id.clone(),
                site_origin: loaded.site.origin,
                broadcast_rate_hz: config.broadcast.rate_hz,
                default_radius_m: config.broadcast.default_radius_m,
            },
            default_radius_m: config.broadcast.default_radius_m,
            rate_hz: config.broadcast.rate_hz,
            max_rate_hz: config.broadcast.max_rate_hz,
            frame_deadline_s: config.broadcast.frame_deadline_s,
            events: events_tx,
            active: AtomicUsize::new(0),
            handshakes: admission::Handshakes::default(),
            ready: AtomicUsize::new(0),
            roadway: Arc::new(roadway_downlink),
        });
        if let Some(live) = &outputs.live {
            live.log_site(&loaded.site);
        }
        let (mut controls, northbound_task) = if config.northbound.enabled {
            let (handle, controls, task) = northbound::start(&loaded, stats.clone(), shutdown.clone())?;
            outputs.northbound = Some(handle);
            tracing::info!(
                broker = %format_args!("{}:{}", config.northbound.host, config.northbound.port),
                tls = config.northbound.tls.is_some(),
                "northbound MQTT on"
            );
            (Some(controls), Some(task))
        } else {
            (None, None)
        };
        let heartbeat = Duration::from_secs_f64(1.0 / config.broadcast.rate_hz);
        let mut step = Step::new();
        let mut flag_watch = flags::FlagWatch::default();
        let mut revocation_poll = tokio::time::interval(Duration::from_secs_f64(config.tls.revocation_poll_s));
        revocation_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut tasks = JoinSet::new();
        let mut sessions: BTreeMap<u64, SessionEntry> = BTreeMap::new();
        let mut vehicles_seen: BTreeMap<String, [f64; 3]> = BTreeMap::new();
        let next_conn = AtomicU64::new(1);
        let mut revocation_error_logged = false;
        let mut cycles = 0u64;
        let mut spat_table = spat::SpatTable::new(&config.signals, config.fusion.max_future_s);
        let mut spat_tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.signals.spat_rate_hz));
        spat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        for controller in config.signals.controllers.iter().filter(|c| c.ntcip_listen.is_some()) {
            let listener = ntcip::Listener::bind(controller, shared.clone())
                .await
                .with_context(|| format!("signals.controllers {:?}: ntcip_listen", controller.id))?;
            tasks.spawn(listener.run(shutdown.clone()));
        }
        if config.uper.enabled {
            let (gateway, task) =
                uper::Gateway::start(&config.uper, loaded.site.frame(), &loaded.rsu_id, shutdown.clone()).await?;
            tasks.spawn(task);
            outputs.uper = Some(gateway);
        }
        tracing::info!(
            addr = %endpoint.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            rsu_id = %loaded.rsu_id,
            rate_hz = config.broadcast.rate_hz,
            "serving"
        );
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                () = tokio::time::sleep_until((step.last_frame + heartbeat).into()) => {
                    cycles += 1;
                    make_frame(&mut fusion, &mut step, &mut flag_watch, &mut roadway, &sessions, &vehicles_seen, &outputs, &stats);
                }
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    let Some((incoming, validated)) = admit(incoming, &shared) else { continue };
                    let conn_id = next_conn.fetch_add(1, Ordering::Relaxed);
                    tasks.spawn(connection::handle(incoming, validated, shared.clone(), conn_id));
                }
                _ = revocation_poll.tick() => {
                    match revocations.reload_if_changed() {
                        Ok(Some(count)) => {
                            revocation_error_logged = false;
                            tracing::info!(revoked = count, "revocation list reloaded");
                            metrics::gauge!("rsu_revocations").set(count as f64);
                            for s in sessions.values().filter(|s| revocations.is_revoked(&s.serial)) {
                                tracing::warn!(client = %s.identity, "closing a session whose certificate was revoked");
                                CloseCode::Revoked.close(&s.connection, "certificate revoked");
                            }
                        }
                        Ok(None) => {}
                        Err(e) if !revocation_error_logged => {
                            revocation_error_logged = true;
                            tracing::error!("{e}; the previous revocation list stays in force");
                        }
                        Err(_) => {}
                    }
                }
                _ = spat_tick.tick() => send_spat(&spat_table, &sessions, &outputs, &stats),
                Some(control) = async {
                    match controls.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match control {
                    northbound::Control::VehicleSpatRate(hz) => {
                        tracing::info!(spat_rate_hz = hz, "vehicle SPaT rate changed by the platform");
                        spat_tick = tokio::time::interval(Duration::from_secs_f64(1.0 / hz));
                        spat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    }
                    northbound::Control::Event(name, fields) => {
                        if let Some(recorder) = &outputs.recorder {
                            recorder.record(Record::Event(name, fields));
                        }
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                Some(event) = events.recv() => {
                    let mut state = LoopState {
                        fusion: &mut fusion,
                        step: &mut step,
                        sessions: &mut sessions,
                        vehicles_seen: &mut vehicles_seen,
                        spat: &mut spat_table,
                    };
                    handle_event(event, &mut state, &outputs, &shared);
                    // Everything else already queued joins this fusion step.
                    for _ in 1..MAX_STEP_INPUTS {
                        let Ok(event) = events.try_recv() else { break };
                        handle_event(event, &mut state, &outputs, &shared);
                    }
                    // A frame now if some vehicle can take one (its rate interval is over);
                    // otherwise the inputs wait for the next step or the heartbeat.
                    if step.inputs > 0 && shared.ready.load(Ordering::Relaxed) > 0 {
                        cycles += 1;
                        make_frame(&mut fusion, &mut step, &mut flag_watch, &mut roadway, &sessions, &vehicles_seen, &outputs, &stats);
                    }
                }
            }
        }
        tracing::info!(sessions = sessions.len(), "shutting down");
        endpoint.set_server_config(None);
        for s in sessions.values() {
            CloseCode::Shutdown.close(&s.connection, "rsu shutting down");
        }
        endpoint.close(CloseCode::Shutdown.varint(), b"rsu shutting down");
        sessions.clear();
        drop(events);
        if tokio::time::timeout(Duration::from_secs(2), async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        let recordings = match outputs.recorder.take() {
            Some(recorder) => recorder.finish().context("finishing the recording")?,
            None => Vec::new(),
        };
        if let Some(live) = outputs.live.take() {
            live.finish();
        }
        if let Some(task) = northbound_task {
            // The publisher saw the cancellation too and says goodbye to the broker.
            drop(outputs.northbound.take());
            if tokio::time::timeout(Duration::from_secs(3), task).await.is_err() {
                tracing::warn!("northbound: the publisher did not stop in time");
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
        tracing::info!(cycles, files = recordings.len(), "stopped");
        Ok(RunSummary { recordings, cycles })
    }
}

/// Admits a new connection attempt against the limits (PROTOCOL §1.3): the attempt to start a
/// handshake for (and whether its address was validated), counted in [`Shared::active`] and
/// [`Shared::handshakes`], or `None` when it was answered with a Retry, refused or ignored (and
/// counted).
fn admit(incoming: quinn::Incoming, shared: &Shared) -> Option<(quinn::Incoming, bool)> {
    let stats = &shared.stats;
    let remote = incoming.remote_address();
    let (handshakes, from_ip) = shared.handshakes.count(remote.ip());
    let active = shared.active.load(Ordering::Relaxed);
    let validated = incoming.remote_address_validated();
    match admission::admit(validated, handshakes, from_ip, active, &shared.limits) {
        admission::Admission::Accept => {
            shared.active.fetch_add(1, Ordering::Relaxed);
            let now = shared.handshakes.begin(validated.then_some(remote.ip()));
            stats.handshakes_peak.fetch_max(now as u64, Ordering::Relaxed);
            metrics::gauge!("rsu_handshakes").set(now as f64);
            return Some((incoming, validated));
        }
        admission::Admission::Retry => match incoming.retry() {
            Ok(()) => {
                stats.reject(Reject::Retry, remote, format_args!("{handshakes} handshakes in progress: sent a Retry"))
            }
            // Only an Initial that already carries a token cannot be retried; it is validated.
            Err(e) => {
                stats.reject(Reject::HandshakeLimit, remote, "cannot send a Retry: ignored");
                e.into_incoming().ignore();
            }
        },
        admission::Admission::Refuse => {
            stats.reject(Reject::ConnectionLimit, remote, "refused before the handshake");
            incoming.refuse();
        }
        admission::Admission::Ignore => {
            stats.reject(
                Reject::HandshakeLimit,
                remote,
                format_args!("{handshakes} handshakes in progress, {from_ip} from this address: ignored"),
            );
            incoming.ignore();
        }
    }
    None
}

/// Inputs taken from the queue into one fusion step at most (the rest wait for the next).
const MAX_STEP_INPUTS: usize = 1024;

/// The inputs handed to the engine since the last frame.
struct Step {
    /// How many.
    inputs: u64,
    /// When the newest of them arrived.
    newest_arrival: Option<Instant>,
    /// Time spent handing them to the engine [s].
    ingest_s: f64,
    /// When the last frame was made.
    last_frame: Instant,
}

impl Broadcast {
    /// The frame encoded once, in parts each vehicle's frame is assembled from.
    pub fn parts(&self) -> &FrameParts {
        self.parts.get_or_init(|| FrameParts::new(&self.frame))
    }

    /// The vehicle frame named `key` (exactly what `assemble` puts in it) and the number of
    /// participants that went in, assembled by `assemble` the first time it is asked for.
    pub(crate) fn assembled(
        &self,
        key: Vec<u32>,
        assemble: impl FnOnce(&FrameParts) -> (Vec<u8>, usize),
    ) -> (Bytes, usize) {
        if let Some(done) = self.assembled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return done.clone();
        }
        let (bytes, taken) = assemble(self.parts());
        let done = (Bytes::from(bytes), taken);
        self.assembled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, done.clone());
        done
    }
}

impl Step {
    fn new() -> Self {
        Step { inputs: 0, newest_arrival: None, ingest_s: 0.0, last_frame: Instant::now() }
    }

    /// Notes an input that arrived at `arrived`, handed to the engine from `started` to now.
    fn took(&mut self, arrived: Instant, started: Instant) {
        self.inputs += 1;
        self.newest_arrival = Some(self.newest_arrival.map_or(arrived, |a| a.max(arrived)));
        self.ingest_s += started.elapsed().as_secs_f64();
    }
}

/// One fusion step: the core fuses what arrived (out of sequence where needed) and predicts its
/// objects to the wall clock; the frame goes to every vehicle (each decides whether it changed
/// what it sees), to the recording and to the live view; the objects go through RSI detection;
/// health is exported.
#[allow(clippy::too_many_arguments)]
fn make_frame(
    fusion: &mut Fusion,
    step: &mut Step,
    flag_watch: &mut flags::FlagWatch,
    roadway: &mut roadway::Roadway,
    sessions: &BTreeMap<u64, SessionEntry>,
    vehicles_seen: &BTreeMap<String, [f64; 3]>,
    outputs: &Outputs,
    stats: &Stats,
) {
    let started = Instant::now();
    let now = wall_now();
    let objects = fusion.poll_objects(now);
    let frame = Arc::new(fusion.roadside_frame_from(now, &objects));
    if frame.participants.len() < objects.len() {
        // More confirmed objects than a frame carries (PROTOCOL §2.4): the newest are left out.
        let left_out = (objects.len() - frame.participants.len()) as u64;
        metrics::counter!("rsu_participants_left_out_total", "reason" => "participant_limit").increment(left_out);
    }
    let newest_capture = objects.iter().map(|o| o.last_update).max();
    metrics::histogram!("rsu_fusion_step_seconds").record(step.ingest_s + started.elapsed().as_secs_f64());
    let broadcast = Arc::new(Broadcast {
        frame: frame.clone(),
        updated_ns: objects.iter().map(|o| o.last_update.as_nanos()).collect(),
        newest_history_ns: frame
            .participants
            .iter()
            .map(|p| p.path_history.first().map(|pt| connection::history_time_ns(&frame, pt)))
            .collect(),
        parts: OnceLock::new(),
        assembled: Mutex::default(),
        newest_capture,
        newest_arrival: step.newest_arrival,
        heartbeat: step.inputs == 0,
    });
    *step = Step { last_frame: started, ..Step::new() };
    for s in sessions.values() {
        if let Some(tx) = &s.downlink {
            tx.send_replace(Some(broadcast.clone()));
        }
    }
    Stats::bump(&stats.cycles);
    if let Some(recorder) = &outputs.recorder {
        recorder.record(Record::Roadside(frame.clone()));
    }
    if let Some(gateway) = &outputs.uper {
        gateway.frame(&frame);
    }
    roadway.step(now, &objects, outputs.recorder.as_ref());
    if let Some(northbound) = &outputs.northbound {
        northbound.offer(northbound::Uplink::Frame(frame.clone()));
    }
    if let Some(live) = &outputs.live {
        live.log_cycle(now, &objects, vehicles_seen);
    }
    metrics::gauge!("rsu_tracks").set(fusion.track_count() as f64);
    flag_watch.update(fusion, now, outputs.recorder.as_ref());
    for h in &frame.sensors {
        let status = match h.status {
            SensorStatus::Unknown => 0.0,
            SensorStatus::Ok => 1.0,
            SensorStatus::Degraded => 2.0,
            SensorStatus::Silent => 3.0,
        };
        metrics::gauge!("rsu_sensor_status", "sensor" => h.sensor_id.clone()).set(status);
        if let Some(last) = h.last_capture {
            metrics::gauge!("rsu_sensor_last_capture_age_seconds", "sensor" => h.sensor_id.clone())
                .set(now.secs_since(last));
        }
    }
    outputs.health.beat();
}

/// What the event loop's inputs change.
struct LoopState<'a> {
    fusion: &'a mut Fusion,
    step: &'a mut Step,
    sessions: &'a mut BTreeMap<u64, SessionEntry>,
    vehicles_seen: &'a mut BTreeMap<String, [f64; 3]>,
    spat: &'a mut spat::SpatTable,
}

/// Sends every vehicle of protocol version 3 the SPaT of each intersection with a fresh
/// controller state, one QUIC datagram per intersection, and records each SPaT once.
fn send_spat(table: &spat::SpatTable, sessions: &BTreeMap<u64, SessionEntry>, outputs: &Outputs, stats: &Stats) {
    let spats = table.spats(wall_now());
    if let Some(gateway) = &outputs.uper {
        gateway.spats(spats.clone());
    }
    if let Some(northbound) = outputs.northbound.as_ref().filter(|_| !spats.is_empty()) {
        northbound.offer(northbound::Uplink::Spat(spats.clone()));
    }
    for spat in spats {
        let bytes = Bytes::from(v2x_proto::encode(&RoadsideDatagram::Spat(spat.clone())));
        let vehicles =
            sessions.values().filter(|s| s.identity.role == CertRole::Vehicle && s.version >= v2x_link::SPAT_VERSION);
        for s in vehicles {
            match s.connection.send_datagram(bytes.clone()) {
                Ok(()) => {
                    Stats::bump(&stats.spat_sent);
                    metrics::counter!("rsu_spat_sent_total").increment(1);
                }
                // The session is ending: nothing to count.
                Err(quinn::SendDatagramError::ConnectionLost(_)) => {}
                Err(e) => {
                    let reason = match e {
                        quinn::SendDatagramError::TooLarge => "too_large",
                        _ => "unsupported",
                    };
                    metrics::counter!("rsu_spat_unsent_total", "reason" => reason).increment(1);
                    tracing::debug!(client = %s.identity, "SPaT not sent: {e}");
                }
            }
        }
        if let Some(recorder) = &outputs.recorder {
            recorder.record(Record::Spat(spat));
        }
    }
}

fn handle_event(event: Event, state: &mut LoopState<'_>, outputs: &Outputs, shared: &Shared) {
    let stats = &shared.stats;
    let LoopState { fusion, step, sessions, vehicles_seen, spat } = state;
    match event {
        Event::Signal { state, received } => {
            if let Some(recorder) = &outputs.recorder {
                recorder.record(Record::Signal(state.clone(), received));
            }
            let controller = state.controller_id.clone();
            match spat.ingest(received, state) {
                Ok(()) => {
                    Stats::bump(&stats.signal_states_in);
                    metrics::counter!("rsu_signal_states_total", "controller" => controller).increment(1);
                }
                Err(refused) => stats.reject(refused.reason, controller, refused.detail),
            }
        }
        Event::Joined { conn_id, identity, serial, connection, downlink, version } => {
            let replaced: Vec<u64> =
                sessions.iter().filter(|(_, s)| s.identity == identity).map(|(id, _)| *id).collect();
            for id in replaced {
                if let Some(old) = sessions.remove(&id) {
                    tracing::info!(client = %identity, "a new session replaces an older one");
                    CloseCode::Replaced.close(&old.connection, "replaced by a newer connection");
                }
            }
            tracing::info!(client = %identity, remote = %connection.remote_address(), "session established");
            Stats::bump(&stats.sessions);
            metrics::counter!("rsu_sessions_total").increment(1);
            sessions.insert(conn_id, SessionEntry { identity, serial, connection, downlink, version });
            export_connected(sessions, stats);
        }
        Event::Left { conn_id } => {
            if let Some(s) = sessions.remove(&conn_id) {
                if s.identity.role == CertRole::Vehicle {
                    vehicles_seen.remove(&s.identity.id);
                }
                tracing::info!(client = %s.identity, "session ended");
                export_connected(sessions, stats);
            }
        }
        Event::Sensor { frame, received, arrived } => {
            let frame = std::sync::Arc::new(frame);
            let started = Instant::now();
            let verdict = fusion.handle_sensor_frame(received, std::sync::Arc::clone(&frame));
            step.took(arrived, started);
            if let Some(recorder) = &outputs.recorder {
                recorder.record(Record::Sensor(std::sync::Arc::clone(&frame), received));
            }
            if verdict == Ingest::Accepted {
                Stats::bump(&stats.sensor_frames_in);
                metrics::counter!("rsu_sensor_frames_total", "sensor" => frame.sensor_id.clone()).increment(1);
                if let (Some(live), Some(calib)) = (&outputs.live, fusion.site().sensor(&frame.sensor_id)) {
                    live.log_sensor_frame(&frame, calib);
                }
            } else {
                reject_ingest(stats, verdict, &frame.sensor_id, frame.capture_time, received);
            }
        }
        Event::Vehicle { state, received, arrived, position } => {
            let started = Instant::now();
            let verdict = fusion.handle_vehicle_state(received, &state);
            step.took(arrived, started);
            if let Some(recorder) = &outputs.recorder {
                recorder.record(Record::Vehicle(state.clone(), received));
            }
            if verdict == Ingest::Accepted {
                Stats::bump(&stats.vehicle_states_in);
                metrics::counter!("rsu_vehicle_states_total").increment(1);
                let p = shared.enu.enu_from_wgs84(&state.position);
                position.accept(state.time, [p.x, p.y]);
                vehicles_seen.insert(state.vehicle_id.clone(), [p.x, p.y, p.z]);
                if let Some(gateway) = &outputs.uper {
                    gateway.vehicle(&state);
                }
            } else {
                reject_ingest(stats, verdict, &state.vehicle_id, state.time, received);
            }
        }
    }
}

fn reject_ingest(stats: &Stats, verdict: Ingest, from: &str, captured: Timestamp, received: Timestamp) {
    let reason = match verdict {
        Ingest::Accepted => return,
        Ingest::Late => Reject::Late,
        Ingest::FromFuture => Reject::FromFuture,
        Ingest::UnknownSensor => Reject::UnknownSensor,
        Ingest::WrongKind => Reject::WrongKind,
        Ingest::Invalid => Reject::Invalid,
    };
    stats.reject(reason, from, format_args!("captured {:.3} s before arrival", received.secs_since(captured)));
}

fn export_connected(sessions: &BTreeMap<u64, SessionEntry>, stats: &Stats) {
    let vehicles = sessions.values().filter(|s| s.identity.role == CertRole::Vehicle).count();
    let sensors = sessions.values().filter(|s| s.identity.role == CertRole::Sensor).count();
    let controllers = sessions.values().filter(|s| s.identity.role == CertRole::Signal).count();
    metrics::gauge!("rsu_connected_vehicles").set(vehicles as f64);
    metrics::gauge!("rsu_connected_sensors").set(sensors as f64);
    metrics::gauge!("rsu_connected_signal_controllers").set(controllers as f64);
    stats.connected_vehicles.store(vehicles as u64, Ordering::Relaxed);
    stats.connected_sensors.store(sensors as u64, Ordering::Relaxed);
    stats.connected_signal_controllers.store(controllers as u64, Ordering::Relaxed);
}

/// Binds and runs the daemon from a loaded configuration, with the recorder, metrics endpoint and
/// live view it asks for, until SIGINT or SIGTERM. `rerun` overrides the config's live view.
pub async fn serve(loaded: LoadedConfig, rerun: Option<LiveTarget>) -> anyhow::Result<RunSummary> {
    let shutdown = CancellationToken::new();
    let server = Server::bind(loaded.clone())?;
    let stats = server.stats();
    let health = Health::default();
    if loaded.config.metrics.enabled {
        let addr = loaded.config.metrics.listen;
        let handle = crate::metrics::install_recorder()?;
        let listener = crate::metrics::bind_http(addr).await?;
        let local = listener.local_addr().context("metrics address")?;
        println!("rsu serve metrics on http://{local}/metrics and /healthz");
        tokio::spawn(crate::metrics::serve_http(listener, handle, health.clone(), shutdown.clone()));
    }
    let recorder = if loaded.config.recording.enabled {
        Some(Recorder::start(
            &loaded.config.recording,
            &loaded.site,
            &loaded.rsu_id,
            loaded.config.limits.recorder_queue,
            stats.clone(),
        )?)
    } else {
        None
    };
    let target = rerun.or_else(|| LiveTarget::from_config(&loaded.config.rerun));
    let live = target.map(|t| LiveView::start(&t, &loaded.site)).transpose()?;
    if loaded.site_source.is_embedded() {
        tracing::warn!(
            "no site configured: serving the embedded representative Yancheng site (not surveyed); set site_file for a real installation"
        );
    }
    tokio::spawn(signal_shutdown(shutdown.clone()));
    // The address line is for people and for tests that bind port 0.
    println!("rsu serve listening on {}", server.local_addr()?);
    server.run(Outputs { recorder, live, health, uper: None, northbound: None }, shutdown).await
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn signal_shutdown(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

/// The daemon built without the `live-view` feature: there is no live view to start, so the
/// view type is uninhabited and every call on it is statically dead. Asking for a view is an
/// error that says how to get one.
#[cfg(not(feature = "live-view"))]
mod no_live_view {
    use std::collections::BTreeMap;

    use rsu_fusion::{FusedObject, SensorCalibration, SensorFrame, SiteConfig, Timestamp};

    use crate::config::RerunConfig;

    const NOT_BUILT: &str = "this rsu was built without the live view; rebuild it with `--features live-view`";

    /// A live-view target; none can exist in this build.
    #[derive(Debug)]
    pub enum LiveTarget {}

    impl LiveTarget {
        /// Refuses `--rerun`: there is no live view in this build.
        pub fn parse(_args: &[String]) -> anyhow::Result<LiveTarget> {
            anyhow::bail!("--rerun: {NOT_BUILT}")
        }

        /// The configuration's `[rerun]` was refused when it was loaded, so there is none here.
        pub fn from_config(_config: &RerunConfig) -> Option<LiveTarget> {
            None
        }
    }

    /// The live view; none can exist in this build.
    pub enum LiveView {}

    impl LiveView {
        pub(crate) fn start(target: &LiveTarget, _site: &SiteConfig) -> anyhow::Result<LiveView> {
            match *target {}
        }
        pub(crate) fn log_site(&self, _site: &SiteConfig) {
            match *self {}
        }
        pub(crate) fn log_cycle(
            &self,
            _time: Timestamp,
            _objects: &[FusedObject],
            _vehicles: &BTreeMap<String, [f64; 3]>,
        ) {
            match *self {}
        }
        pub(crate) fn log_sensor_frame(&self, _frame: &SensorFrame, _calib: &SensorCalibration) {
            match *self {}
        }
        pub(crate) fn finish(self) {
            match self {}
        }
    }

    /// Why a configuration with `[rerun]` is refused by this build.
    pub(crate) fn refuse_config(config: &RerunConfig) -> anyhow::Result<()> {
        if config.save.is_some() || config.connect.is_some() {
            anyhow::bail!("rerun: {NOT_BUILT}");
        }
        Ok(())
    }
}

#[cfg(not(feature = "live-view"))]
pub(crate) use no_live_view::refuse_config as refuse_live_view_config;
