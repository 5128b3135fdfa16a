//! One client connection: the QUIC/TLS handshake, the session handshake, then the role's loops.
//!
//! - Vehicles: VehicleState datagrams in (size limit, rate limit, decode, identity check), control
//!   stream (subscription changes), and the downlink writer (one stream per frame, filtered to the
//!   region, sent when what the vehicle subscribed to changed, rate-capped, with a heartbeat, and
//!   given up only at its delivery deadline).
//! - Sensors: one unidirectional stream per SensorFrame (size limit, rate limit, decode, identity
//!   check), each read in its own task so a stalled stream delays nothing else.
//! - Signal controllers: SignalControllerState datagrams in (size limit, rate limit, decode with
//!   the consistency checks, identity check).
//!
//! Accepted inputs go to the fusion loop with `try_send`: when its queue is full they are dropped
//! and counted, so no client can make the loop wait.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsu_fusion::calibration::point_in_polygon;
use rsu_fusion::{PathPoint, RoadsideFrame, SensorFrame, Timestamp, VehicleState};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use v2x_link::identity::{CertRole, Identity};
use v2x_link::session::{ControlError, Session, accept_session, read_control};
use v2x_link::{CloseCode, StreamCode};
use v2x_proto::domain::SignalControllerState;
use v2x_proto::domain::{Role, Subscription};
use v2x_proto::fanout::Sections;

use super::stats::{Reject, Stats, Undelivered};
use super::{Broadcast, Event, Shared};
use crate::recorder::wall_now;

/// Decrements the active-connection count when the connection task ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends a handshake (from a validated IP address or not) in the handshakes-in-progress count
/// when dropped.
struct HandshakeGuard<'a>(&'a Shared, Option<std::net::IpAddr>);

impl Drop for HandshakeGuard<'_> {
    fn drop(&mut self) {
        let now = self.0.handshakes.end(self.1);
        metrics::gauge!("rsu_handshakes").set(now as f64);
    }
}

/// Runs one incoming connection, admitted and counted in `active` and `handshakes` (by address
/// when `validated`), to its end.
pub(super) async fn handle(incoming: quinn::Incoming, validated: bool, shared: Arc<Shared>, conn_id: u64) {
    let _guard = ActiveGuard(shared.clone());
    let remote = incoming.remote_address();
    let handshake = HandshakeGuard(&shared, validated.then_some(remote.ip()));
    let timeout = Duration::from_secs_f64(shared.limits.handshake_timeout_s);
    let connection = match incoming.accept() {
        // Dropping an unfinished handshake closes it and frees its state.
        Ok(connecting) => tokio::time::timeout(timeout, connecting).await,
        Err(e) => Ok(Err(e)),
    };
    drop(handshake);
    let connection = match connection {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            shared.stats.reject(Reject::TlsHandshake, remote, e);
            return;
        }
        Err(_) => {
            shared.stats.reject(Reject::HandshakeTimeout, remote, format_args!("no handshake within {timeout:?}"));
            return;
        }
    };
    if shared.active.load(Ordering::Relaxed) > shared.limits.max_connections {
        shared.stats.reject(Reject::ConnectionLimit, remote, "connection limit reached");
        CloseCode::ServerBusy.close(&connection, "connection limit reached");
        return;
    }
    let hello_timeout = std::time::Duration::from_secs_f64(shared.limits.hello_timeout_s);
    let session = accept_session(connection, hello_timeout, |identity, _hello| {
        if identity.role == CertRole::Sensor && !shared.sensor_ids.contains(&identity.id) {
            return Err((CloseCode::UnknownSensor, format!("sensor {} is not in the site configuration", identity.id)));
        }
        if identity.role == CertRole::Signal && !shared.controller_ids.contains(&identity.id) {
            return Err((
                CloseCode::UnknownController,
                format!("signal controller {} is not in the configuration", identity.id),
            ));
        }
        Ok(shared.server_hello.clone())
    })
    .await;
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            shared.stats.reject(Reject::of_close(e.code), remote, e);
            return;
        }
    };
    let role = session.hello.role;
    match role {
        Role::Vehicle => run_vehicle(session, &shared, conn_id).await,
        Role::Sensor | Role::SignalController => run_uplink(session, &shared, conn_id).await,
    }
    let _ = shared.events.send(Event::Left { conn_id }).await;
}

/// A token bucket: `rate` tokens per second, at most `rate` (one second of burst) stored.
pub(super) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: f64) -> Self {
        TokenBucket { rate, tokens: rate, last: Instant::now() }
    }

    pub(super) fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a vehicle asked for and where it is.
struct VehicleView {
    subscription: Subscription,
    /// Where "around me" is centred.
    position: Arc<VehiclePosition>,
}

/// Where a vehicle is for "around me": the position of its newest (by measurement time) state
/// that the fusion engine accepted (PROTOCOL §2.3). The fusion loop sets it once the engine took
/// the state in; a state it refused (late, from the future, invalid) moves nothing.
#[derive(Debug, Default)]
pub struct VehiclePosition(Mutex<Option<(Timestamp, [f64; 2])>>);

impl VehiclePosition {
    /// Notes the position (east, north) in the site frame [m] of a state measured at `time` that
    /// the engine accepted, unless a newer one was accepted before.
    pub(super) fn accept(&self, time: Timestamp, position_m: [f64; 2]) {
        let mut newest = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if newest.is_none_or(|(t, _)| time >= t) {
            *newest = Some((time, position_m));
        }
    }

    /// The position (east, north) in the site frame [m], if the vehicle has one.
    fn get(&self) -> Option<[f64; 2]> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map(|(_, p)| p)
    }
}

async fn run_vehicle(session: Session, shared: &Arc<Shared>, conn_id: u64) {
    let Session { connection, identity, serial, hello, version, control_send, mut control_recv } = session;
    let (tx, rx) = watch::channel(None);
    let joined = Event::Joined {
        conn_id,
        identity: identity.clone(),
        serial,
        connection: connection.clone(),
        downlink: Some(tx),
        version,
    };
    if shared.events.send(joined).await.is_err() {
        return;
    }
    let view = Mutex::new(VehicleView {
        subscription: hello.subscription.unwrap_or(Subscription::AroundMe { radius_m: 0 }),
        position: Arc::default(),
    });
    // Version 4: the MAP and RSI events on the control stream (PROTOCOL §2.9, §2.10).
    let resubscribed = Arc::new(tokio::sync::Notify::new());
    let control_downlink = async {
        if version >= v2x_link::MAP_VERSION {
            let roadway = shared.roadway.clone();
            super::roadway::control_downlink(control_send, roadway, resubscribed.clone(), identity.clone()).await;
        } else {
            // Nothing is written to an older client; its control stream stays open.
            let _open = control_send;
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = vehicle_uplink(&connection, shared, &identity, &view) => {}
        () = control_loop(&connection, &mut control_recv, shared, &identity, Some((&view, &resubscribed))) => {}
        () = downlink(&connection, rx, shared, &view, version) => {}
        () = refuse_streams(&connection, shared, &identity) => {}
        () = control_downlink => {}
    }
}

/// A sensor's or signal controller's session: its uplink (sensor frames on streams, controller
/// states in datagrams), the control stream, and refusal of what the role may not send.
async fn run_uplink(session: Session, shared: &Arc<Shared>, conn_id: u64) {
    let Session { connection, identity, serial, version, control_send: _control_send, mut control_recv, .. } = session;
    let joined = Event::Joined {
        conn_id,
        identity: identity.clone(),
        serial,
        connection: connection.clone(),
        downlink: None,
        version,
    };
    if shared.events.send(joined).await.is_err() {
        return;
    }
    let control = control_loop(&connection, &mut control_recv, shared, &identity, None);
    if identity.role == CertRole::Signal {
        tokio::select! {
            () = signal_uplink(&connection, shared, &identity) => {}
            () = control => {}
            () = refuse_streams(&connection, shared, &identity) => {}
        }
    } else {
        tokio::select! {
            () = sensor_uplink(&connection, shared, &identity) => {}
            () = control => {}
            () = refuse_datagrams(&connection, shared, &identity) => {}
        }
    }
}

/// Hands an input to the fusion loop, or drops and counts it when the loop's queue is full.
pub(super) fn forward(shared: &Shared, event: Event, from: &(impl std::fmt::Display + ?Sized)) {
    match shared.events.try_send(event) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics::counter!("rsu_ingest_dropped_total").increment(1);
            shared.stats.reject(Reject::QueueFull, from, "the fusion loop's input queue is full");
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// Classifies a decode failure.
fn decode_reject(e: &v2x_proto::DecodeError) -> Reject {
    match e {
        v2x_proto::DecodeError::TooLarge { .. } => Reject::Oversized,
        v2x_proto::DecodeError::Malformed(_) => Reject::Malformed,
        v2x_proto::DecodeError::Invalid(v2x_proto::ConvertError::Inconsistent { .. }) => Reject::Inconsistent,
        v2x_proto::DecodeError::Invalid(_) => Reject::Invalid,
    }
}

/// A client's uplink datagrams, each a `name` message: within the rate limit `per_s`, decoded
/// within `max_bytes` (with the message's own checks) and sent by the certificate's identity
/// (`claimed` names the sender the message gives); every rejection counted and logged, what
/// passes handed to `take`.
async fn datagram_uplink<M: v2x_proto::WireMessage>(
    connection: &quinn::Connection,
    shared: &Shared,
    identity: &Identity,
    (name, max_bytes, per_s): (&str, usize, f64),
    claimed: impl Fn(&M) -> &str,
    mut take: impl FnMut(M),
) {
    let stats = &shared.stats;
    let mut bucket = TokenBucket::new(per_s);
    while let Ok(bytes) = connection.read_datagram().await {
        if !bucket.take() {
            stats.reject(Reject::RateLimited, identity, format_args!("{name} rate limit exceeded"));
            continue;
        }
        let message = match v2x_proto::decode_limited::<M>(&bytes, max_bytes) {
            Ok(m) => m,
            Err(e) => {
                stats.reject(decode_reject(&e), identity, format_args!("{name}: {e}"));
                continue;
            }
        };
        if claimed(&message) != identity.id {
            stats.reject(
                Reject::IdentityMismatch,
                identity,
                format_args!("{name} of {:?} from the certificate of {}", claimed(&message), identity.id),
            );
            continue;
        }
        take(message);
    }
}

/// A signal controller's states, one per datagram; the fusion loop checks age and takes them in.
async fn signal_uplink(connection: &quinn::Connection, shared: &Shared, identity: &Identity) {
    let limits = ("SignalControllerState", shared.limits.max_signal_state_bytes, shared.max_signal_states_per_s);
    datagram_uplink(
        connection,
        shared,
        identity,
        limits,
        |s: &SignalControllerState| &s.controller_id,
        |state| {
            forward(shared, Event::Signal { state, received: wall_now() }, identity);
        },
    )
    .await;
}

/// A vehicle's states, one per datagram, to the fusion loop with the vehicle's position for
/// "around me" (moved once the engine accepted the state).
async fn vehicle_uplink(
    connection: &quinn::Connection,
    shared: &Shared,
    identity: &Identity,
    view: &Mutex<VehicleView>,
) {
    let limits = ("VehicleState", shared.limits.max_vehicle_state_bytes, shared.limits.max_vehicle_states_per_s);
    datagram_uplink(
        connection,
        shared,
        identity,
        limits,
        |s: &VehicleState| &s.vehicle_id,
        |state| {
            let position = view.lock().unwrap_or_else(std::sync::PoisonError::into_inner).position.clone();
            forward(
                shared,
                Event::Vehicle { state, received: wall_now(), arrived: Instant::now(), position },
                identity,
            );
        },
    )
    .await;
}

async fn sensor_uplink(connection: &quinn::Connection, shared: &Arc<Shared>, identity: &Identity) {
    let mut bucket = TokenBucket::new(shared.limits.max_sensor_frames_per_s);
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            stream = connection.accept_uni() => {
                let Ok(mut stream) = stream else { return };
                if !bucket.take() {
                    let _ = stream.stop(StreamCode::NotAllowed.varint());
                    shared.stats.reject(Reject::RateLimited, identity, "SensorFrame rate limit exceeded");
                    continue;
                }
                readers.spawn(read_sensor_frame(stream, shared.clone(), identity.clone()));
            }
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
}

async fn read_sensor_frame(mut stream: quinn::RecvStream, shared: Arc<Shared>, identity: Identity) {
    let stats = &shared.stats;
    let max = shared.limits.max_sensor_frame_bytes;
    let bytes = match stream.read_to_end(max).await {
        Ok(bytes) => bytes,
        Err(quinn::ReadToEndError::TooLong) => {
            let _ = stream.stop(StreamCode::MessageTooLarge.varint());
            stats.reject(Reject::Oversized, &identity, format_args!("SensorFrame over {max} bytes"));
            return;
        }
        // Reset by the sensor or connection lost: nothing to count.
        Err(_) => return,
    };
    let frame = match v2x_proto::decode_limited::<SensorFrame>(&bytes, max) {
        Ok(f) => f,
        Err(e) => {
            stats.reject(decode_reject(&e), &identity, format_args!("SensorFrame: {e}"));
            return;
        }
    };
    if frame.sensor_id != identity.id {
        stats.reject(
            Reject::IdentityMismatch,
            &identity,
            format_args!("SensorFrame of {:?} from the certificate of {}", frame.sensor_id, identity.id),
        );
        return;
    }
    forward(&shared, Event::Sensor { frame, received: wall_now(), arrived: Instant::now() }, &identity);
}

/// Reads control messages: subscription changes for vehicles; anything from a sensor or signal
/// controller is a protocol error. Returns when the connection ends or was closed for a protocol error.
async fn control_loop(
    connection: &quinn::Connection,
    recv: &mut quinn::RecvStream,
    shared: &Shared,
    identity: &Identity,
    view: Option<(&Mutex<VehicleView>, &tokio::sync::Notify)>,
) {
    loop {
        match read_control(recv).await {
            Ok(Some(subscription)) => match view {
                Some((view, resubscribed)) => {
                    tracing::debug!(client = %identity, ?subscription, "subscription changed");
                    view.lock().unwrap_or_else(std::sync::PoisonError::into_inner).subscription = subscription;
                    // The MAP again, "on subscription" (a version 4 session).
                    resubscribed.notify_one();
                }
                None => {
                    shared.stats.reject(Reject::NotAllowed, identity, "a sensor or controller sent a subscription");
                    CloseCode::ProtocolError.close(connection, "only a vehicle can subscribe");
                    return;
                }
            },
            // The client finished its control stream: nothing more to read, the session goes on.
            Ok(None) => std::future::pending::<()>().await,
            Err(e) => {
                if connection.close_reason().is_none() {
                    let reason = match &e {
                        ControlError::Frame(v2x_link::framing::FrameError::TooLarge { .. }) => Reject::Oversized,
                        _ => Reject::Malformed,
                    };
                    shared.stats.reject(reason, identity, format_args!("control stream: {e}"));
                    CloseCode::ProtocolError.close(connection, &format!("control stream: {e}"));
                }
                return;
            }
        }
    }
}

/// Vehicles and signal controllers may not open unidirectional streams: each is stopped and
/// counted.
async fn refuse_streams(connection: &quinn::Connection, shared: &Shared, identity: &Identity) {
    while let Ok(mut stream) = connection.accept_uni().await {
        let _ = stream.stop(StreamCode::NotAllowed.varint());
        shared.stats.reject(Reject::NotAllowed, identity, "a vehicle or controller opened a unidirectional stream");
    }
}

/// Sensors may not send datagrams: each is dropped and counted.
async fn refuse_datagrams(connection: &quinn::Connection, shared: &Shared, identity: &Identity) {
    while connection.read_datagram().await.is_ok() {
        shared.stats.reject(Reject::NotAllowed, identity, "a sensor sent a datagram");
    }
}

/// The participants of `frame` a vehicle subscribed to, by index, into `out`.
fn select(frame: &RoadsideFrame, view: &VehicleView, default_radius_m: u32, out: &mut Vec<usize>) {
    out.clear();
    let all = frame.participants.iter().enumerate();
    match &view.subscription {
        Subscription::Everything => out.extend(0..frame.participants.len()),
        Subscription::AroundMe { radius_m } => {
            let r = f64::from(if *radius_m == 0 { default_radius_m } else { *radius_m });
            // Until the vehicle reports where it is, "around me" is nowhere.
            if let Some([x, y]) = view.position.get() {
                let within = |p: &rsu_fusion::Participant| {
                    let (dx, dy) = (p.position_m.x - x, p.position_m.y - y);
                    dx * dx + dy * dy <= r * r
                };
                out.extend(all.filter(|(_, p)| within(p)).map(|(i, _)| i));
            }
        }
        Subscription::Polygon(polygon) => {
            out.extend(all.filter(|(_, p)| point_in_polygon(polygon, p.position_m.x, p.position_m.y)).map(|(i, _)| i));
        }
    }
}

/// What a vehicle's previous frames told it, to send only what changed.
#[derive(Default)]
struct Sent {
    /// Digest of the previous frame's content (see [`digest`]).
    digest: Option<u64>,
    /// The previous frame's time.
    frame_time: Option<Timestamp>,
    /// Per participant id, the time of the newest path-history point sent [ns].
    history: FxHashMap<u32, i64>,
    /// The sensor health last sent: every sensor's status.
    sensors: OnChange,
    /// The perception regions last sent: which sensors were live (their regions are the
    /// perception regions).
    regions: OnChange,
}

/// Sensor health and perception regions go to a vehicle again at least this often [s],
/// unchanged or not (PROTOCOL §2.4).
const REPEAT_S: f64 = 1.0;

/// A part of the frame sent to a vehicle only when it changed, in its first frame, and at
/// least every [`REPEAT_S`]: its content's key and the time of the frame that last carried it.
#[derive(Default)]
struct OnChange(Option<(u64, Timestamp)>);

impl OnChange {
    /// Whether the part, now `key`, goes into the frame at `time`.
    fn due(&self, key: u64, time: Timestamp) -> bool {
        self.0.is_none_or(|(k, t)| k != key || time.secs_since(t) >= REPEAT_S)
    }

    /// Notes the part, now `key`, as sent in the frame at `time`.
    fn sent(&mut self, key: u64, time: Timestamp) {
        self.0 = Some((key, time));
    }
}

/// The sensors whose regions a frame's perception regions are (those live), as bits by sensor
/// index: the regions change exactly when this does.
fn live_sensors(frame: &RoadsideFrame) -> u64 {
    frame
        .sensors
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status.is_live())
        .fold(0, |bits, (i, _)| bits | (1u64 << (i % 64)))
}

/// Every sensor's status in a frame, as a key: the health changes when this does (the
/// sensors' capture times change in every frame and go in `newest_capture`).
fn sensor_states(frame: &RoadsideFrame) -> u64 {
    frame.sensors.iter().fold(frame.sensors.len() as u64, |h, s| mix(h, s.status as u64))
}

/// A digest of what a vehicle's frame says that a fusion step can change: which participants
/// it holds and the time of each one's newest measurement, and the sensors' states. Equal
/// digests: nothing new for this vehicle.
fn digest(broadcast: &Broadcast, selected: &[usize]) -> u64 {
    // A collision only delays a frame to the heartbeat.
    let mut h = selected.len() as u64;
    for &i in selected {
        h = mix(h, u64::from(broadcast.frame.participants[i].id));
        h = mix(h, broadcast.updated_ns.get(i).copied().unwrap_or(0) as u64);
    }
    mix(mix(h, sensor_states(&broadcast.frame)), broadcast.frame.perception_regions.len() as u64)
}

/// The time of path-history point `pt` of `frame` [ns].
pub(super) fn history_time_ns(frame: &RoadsideFrame, pt: &PathPoint) -> i64 {
    frame.time.add_secs(-pt.dt_s).as_nanos()
}

/// How many of participant `i`'s path-history points (newest first, as in the frame) the vehicle
/// was not sent yet. Path history goes out as deltas: a receiver appends them to what it kept
/// for that id (PROTOCOL §2.4). Usually none: the newest point was sent already.
fn history_delta(broadcast: &Broadcast, i: usize, sent: &FxHashMap<u32, i64>) -> usize {
    let (frame, p) = (&broadcast.frame, &broadcast.frame.participants[i]);
    let Some(newest_ns) = broadcast.newest_history_ns.get(i).copied().flatten() else { return 0 };
    match sent.get(&p.id).copied() {
        Some(sent_ns) if newest_ns <= sent_ns => 0,
        Some(sent_ns) => p.path_history.iter().take_while(|pt| history_time_ns(frame, pt) > sent_ns).count(),
        None => p.path_history.len(),
    }
}

/// A multiply-rotate mix of `v` into the digest `h`: this runs over every participant for every
/// vehicle and frame, so it must cost a few instructions per value.
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

/// Counts a vehicle in [`Shared::ready`] while it lives.
struct Ready<'a>(&'a AtomicUsize);

impl<'a> Ready<'a> {
    fn new(ready: &'a AtomicUsize) -> Self {
        ready.fetch_add(1, Ordering::Relaxed);
        Ready(ready)
    }
}

impl Drop for Ready<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a frame handed to QUIC ended.
fn outcome(stopped: Result<Option<quinn::VarInt>, quinn::StoppedError>) -> Option<Undelivered> {
    match stopped {
        Ok(None) => None,
        Ok(Some(_)) => Some(Undelivered::Stopped),
        Err(quinn::StoppedError::ConnectionLost(_)) => Some(Undelivered::Closed),
        Err(_) => Some(Undelivered::SendError),
    }
}

/// Sends the vehicle a frame whenever a fusion step changed what it subscribed to, at most
/// `max_rate_hz` and at least `rate_hz` (a heartbeat), each on its own stream. A frame in flight
/// is never cancelled by a newer one: it is reset only when its delivery deadline passes. Every
/// frame is accounted for (see [`Undelivered`]). The session's protocol `version` decides whether
/// the sensor health goes in every frame (1) or on change (2). Returns when the connection or the
/// loop ends.
async fn downlink(
    connection: &quinn::Connection,
    mut rx: watch::Receiver<Option<Arc<Broadcast>>>,
    shared: &Shared,
    view: &Mutex<VehicleView>,
    version: u32,
) {
    let health_every_frame = version < 2;
    let stats = &shared.stats;
    let min_interval = Duration::from_secs_f64(1.0 / shared.max_rate_hz);
    let heartbeat_s = 1.0 / shared.rate_hz;
    let deadline_s = shared.frame_deadline_s;
    let mut sent = Sent::default();
    let mut in_flight = InFlight { set: JoinSet::new(), stats };
    // Working space kept between frames: the participants the vehicle gets, and its frame.
    let mut selected: Vec<usize> = Vec::new();
    let mut deltas: Vec<usize> = Vec::new();
    // The time of the last frame the vehicle looked at (sent or found unchanged).
    let mut checked: Option<rsu_fusion::Timestamp> = None;
    loop {
        // The vehicle's rate cap, on a grid of `1 / max_rate_hz` of the wall clock: after looking
        // at a frame, nothing is taken before the next grid line. Every vehicle is ready again at
        // the same instant, so one fusion step serves them all (counted from each vehicle's own
        // frame, the vehicles would drift apart and keep the daemon making a frame for a few of
        // them at every input). Frames are made just after a grid line, so the rate stays at
        // most `max_rate_hz` on average.
        // The grid line this vehicle waits for (none before its first frame).
        let mut line: Option<Timestamp> = None;
        if let Some(t) = checked {
            let slot_ns = min_interval.as_nanos().max(1) as i64;
            let now = wall_now();
            // The line after the frame's time; if the vehicle is late past it (a loaded RSU),
            // the line after now: a late vehicle joins the others rather than asking for a
            // frame of its own (which would load the RSU more and make it later still).
            let line_after = |ns: i64| (ns.div_euclid(slot_ns) + 1) * slot_ns;
            let next_line_ns = match line_after(t.as_nanos()) {
                line if line >= now.as_nanos() => line,
                _ => line_after(now.as_nanos()),
            };
            line = Some(Timestamp::from_nanos(next_line_ns));
            let wait_s = Timestamp::from_nanos(next_line_ns).secs_since(now).max(0.0);
            let ready_at = tokio::time::Instant::now() + Duration::from_secs_f64(wait_s);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(ready_at) => break,
                    Some(done) = in_flight.set.join_next(), if !in_flight.set.is_empty() => in_flight.settle(done),
                }
            }
        }
        // Ready: the first frame made after the grid line goes out if it changes what the
        // vehicle sees (or a heartbeat is due). If one was made since the line (the other
        // vehicles asked for it), it is that one; a frame made before the line is old, and the
        // next fusion step (made at once now that a vehicle is ready) carries what it had and
        // the latest arrivals too.
        let current = rx.borrow_and_update().clone();
        let next = match current.filter(|b| line.is_some_and(|l| b.frame.time >= l)) {
            Some(made_since_the_line) => Some(made_since_the_line),
            None => {
                let _ready = Ready::new(&shared.ready);
                loop {
                    tokio::select! {
                        changed = rx.changed() => if changed.is_err() { break None },
                        Some(done) = in_flight.set.join_next(), if !in_flight.set.is_empty() => {
                            in_flight.settle(done);
                            continue;
                        }
                    }
                    if let Some(broadcast) = rx.borrow_and_update().clone() {
                        break Some(broadcast);
                    }
                }
            }
        };
        let Some(broadcast) = next else { break };
        checked = Some(broadcast.frame.time);
        {
            let view = view.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            select(&broadcast.frame, &view, shared.default_radius_m, &mut selected);
        }
        // Frame times come from one clock, so the heartbeat is kept to the frame.
        let heartbeat_due = sent.frame_time.is_none_or(|t| broadcast.frame.time.secs_since(t) >= heartbeat_s - 1e-3);
        let d = digest(&broadcast, &selected);
        if sent.digest == Some(d) && !heartbeat_due {
            continue;
        }
        let frame = &broadcast.frame;
        // The RSU's id and sensor health, and the regions, when they changed or are due again
        // (a version 1 vehicle gets the id and health in every frame).
        let (states, live) = (sensor_states(frame), live_sensors(frame));
        let sections = Sections {
            health: health_every_frame || sent.sensors.due(states, frame.time),
            regions: sent.regions.due(live, frame.time),
        };
        // What goes into this vehicle's frame: its participants, the new history points of
        // each, and the health and regions or not. Vehicles that had the same frames before get
        // the same bytes: the frame is assembled once for all of them.
        deltas.clear();
        deltas.extend(selected.iter().map(|&i| history_delta(&broadcast, i, &sent.history)));
        // The key is exact (no digest): a collision would send a vehicle another's frame.
        let mut key = Vec::with_capacity(1 + 2 * selected.len());
        key.push(u32::from(sections.health) | u32::from(sections.regions) << 1);
        for (&i, &n) in selected.iter().zip(&deltas) {
            key.extend([u32::try_from(i).unwrap_or(u32::MAX), u32::try_from(n).unwrap_or(u32::MAX)]);
        }
        let (bytes, taken) = broadcast.assembled(key, |parts| {
            let mut out = Vec::with_capacity(64 + 48 * selected.len());
            let history = |i: usize, n: usize| &frame.participants[i].path_history[..n];
            let taken = parts.assemble(
                frame,
                selected.iter().zip(&deltas).map(|(&i, &n)| (i, history(i, n))),
                sections,
                v2x_link::MAX_ROADSIDE_FRAME_BYTES,
                &mut out,
            );
            (out, taken)
        });
        if taken < selected.len() {
            // Over the frame size limit (PROTOCOL §2.4): the participants that did not fit are
            // left out of this frame, and their history is sent whole when they next fit.
            let left_out = selected.len() - taken;
            metrics::counter!("rsu_participants_left_out_total", "reason" => "frame_bytes").increment(left_out as u64);
            for &i in &selected[taken..] {
                sent.history.remove(&frame.participants[i].id);
            }
            selected.truncate(taken);
        }
        if sent.history.len() > 2 * selected.len() + 64 {
            // Forget the ids the vehicle no longer gets (now and then: it is a full pass).
            let ids: std::collections::HashSet<u32> = selected.iter().map(|&i| frame.participants[i].id).collect();
            sent.history.retain(|id, _| ids.contains(id));
        }
        let mut stream = tokio::select! {
            opened = connection.open_uni() => match opened {
                Ok(s) => s,
                Err(_) => {
                    stats.undelivered(Undelivered::SendError, 1);
                    break;
                }
            },
            changed = rx.changed() => {
                // No stream credit before a newer frame was ready (the vehicle is not reading).
                stats.undelivered(Undelivered::Superseded, 1);
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let written = tokio::select! {
            written = stream.write_chunk(bytes.clone()) => written.map_err(|e| match e {
                quinn::WriteError::Stopped(_) => Undelivered::Stopped,
                _ => Undelivered::SendError,
            }),
            // The vehicle's flow control holds the frame back and a newer one is ready.
            _ = rx.changed() => Err(Undelivered::Superseded),
        };
        if let Err(reason) = written.and_then(|()| stream.finish().map_err(|_| Undelivered::SendError)) {
            let _ = stream.reset(StreamCode::FrameSuperseded.varint());
            stats.undelivered(reason, 1);
            continue;
        }
        let handed = Instant::now();
        Stats::bump(&stats.frames_sent);
        metrics::counter!("rsu_frames_sent_total").increment(1);
        // Noted as sent only now that the frame is handed to QUIC: a frame given up before
        // (superseded, refused) leaves them due for the next one.
        sent.digest = Some(d);
        sent.frame_time = Some(frame.time);
        if sections.health {
            sent.sensors.sent(states, frame.time);
        }
        if sections.regions {
            sent.regions.sent(live, frame.time);
        }
        // Only points not sent before move the mark (with none new it already holds the newest).
        for (&i, _) in selected.iter().zip(&deltas).filter(|(_, n)| **n > 0) {
            if let Some(newest_ns) = broadcast.newest_history_ns.get(i).copied().flatten() {
                sent.history.insert(frame.participants[i].id, newest_ns);
            }
        }
        if let Some(arrived) = broadcast.newest_arrival.filter(|_| !broadcast.heartbeat) {
            metrics::histogram!("rsu_added_latency_seconds").record(handed.duration_since(arrived).as_secs_f64());
        }
        if let Some(capture) = broadcast.newest_capture {
            metrics::histogram!("rsu_broadcast_latency_seconds").record(wall_now().secs_since(capture));
        }
        if !selected.is_empty() {
            let per_participant = bytes.len() as f64 / selected.len() as f64;
            metrics::histogram!("rsu_frame_participant_bytes").record(per_participant);
        }
        // Its delivery deadline counts from the frame's own time.
        let due = deadline_s - wall_now().secs_since(frame.time);
        let stopped = stream.stopped();
        in_flight.set.spawn(async move {
            tokio::select! {
                result = stopped => outcome(result),
                () = tokio::time::sleep(Duration::from_secs_f64(due.max(0.0))) => {
                    // Reset fails only when the stream already ended (acknowledged or stopped).
                    match stream.reset(StreamCode::FrameSuperseded.varint()) {
                        Ok(()) => Some(Undelivered::Expired),
                        Err(_) => None,
                    }
                }
            }
        });
    }
}

/// A vehicle's frames handed to QUIC and not yet acknowledged, each a task waiting for its
/// outcome (acknowledged, stopped, connection lost, or reset at its deadline).
struct InFlight<'a> {
    set: JoinSet<Option<Undelivered>>,
    stats: &'a Stats,
}

impl InFlight<'_> {
    /// Counts a frame's outcome.
    fn settle(&self, result: Result<Option<Undelivered>, tokio::task::JoinError>) {
        match result {
            Ok(None) => {
                Stats::bump(&self.stats.frames_delivered);
                metrics::counter!("rsu_frames_delivered_total").increment(1);
            }
            Ok(Some(reason)) => self.stats.undelivered(reason, 1),
            Err(_) => self.stats.undelivered(Undelivered::Closed, 1),
        }
    }
}

impl Drop for InFlight<'_> {
    /// The session ended: the outcomes known are counted, the frames still in flight were lost
    /// with the connection (the vehicle may have read some whose acknowledgment did not return).
    fn drop(&mut self) {
        while let Some(done) = self.set.try_join_next() {
            self.settle(done);
        }
        self.stats.undelivered(Undelivered::Closed, self.set.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsu_fusion::{SensorHealth, SensorStatus};

    fn frame_with(statuses: &[SensorStatus]) -> RoadsideFrame {
        let mut frame = v2x_proto::sample::intersection_frame(1, 1);
        frame.sensors = statuses
            .iter()
            .enumerate()
            .map(|(i, &status)| SensorHealth { sensor_id: format!("s{i}"), status, last_capture: None })
            .collect();
        frame
    }

    #[test]
    fn health_is_due_first_on_a_status_change_and_once_a_second() {
        use SensorStatus::{Degraded, Ok, Silent};
        let at = |ms: i64| Timestamp::from_nanos(1_000_000_000_000 + ms * 1_000_000);
        let mut health = OnChange::default();
        let key = sensor_states(&frame_with(&[Ok, Ok]));
        assert!(health.due(key, at(0)), "a vehicle's first frame");
        health.sent(key, at(0));
        assert!(!health.due(key, at(50)) && !health.due(key, at(999)), "unchanged within a second");
        assert!(health.due(key, at(1000)), "repeated once a second");
        // Any status change, live or not, is due at once; capture times are not a change.
        for change in [[Ok, Degraded], [Ok, Silent], [Silent, Ok]] {
            assert!(health.due(sensor_states(&frame_with(&change)), at(50)), "{change:?}");
        }
        let mut later = frame_with(&[Ok, Ok]);
        later.sensors[0].last_capture = Some(at(40));
        assert_eq!(sensor_states(&later), key);
        // Not noted as sent (the frame was given up before QUIC took it): still due.
        let changed = sensor_states(&frame_with(&[Ok, Silent]));
        assert!(health.due(changed, at(60)) && health.due(changed, at(70)));
    }

    #[test]
    fn regions_change_with_the_live_sensors_only() {
        use SensorStatus::{Degraded, Ok, Silent, Unknown};
        let live = |s: &[SensorStatus]| live_sensors(&frame_with(s));
        assert_eq!(live(&[Ok, Degraded]), live(&[Degraded, Ok]), "degraded sensors still perceive");
        assert_ne!(live(&[Ok, Ok]), live(&[Ok, Silent]));
        assert_eq!(live(&[Silent, Unknown]), 0);
    }
}
