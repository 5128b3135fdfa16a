//! One client connection: the QUIC/TLS handshake, the session handshake, then the role's loops.
//!
//! - Vehicles: VehicleState datagrams in (size limit, rate limit, decode, identity check), control
//!   stream (subscription changes), and the downlink writer (one stream per frame, filtered to the
//!   region, the previous undelivered stream reset when a newer frame is ready).
//! - Sensors: one unidirectional stream per SensorFrame (size limit, rate limit, decode, identity
//!   check), each read in its own task so a stalled stream delays nothing else.
//!
//! Accepted inputs go to the fusion loop with `try_send`: when its queue is full they are dropped
//! and counted, so no client can make the loop wait.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rsu_fusion::calibration::point_in_polygon;
use rsu_fusion::{RoadsideFrame, SensorFrame, VehicleState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use v2x_link::identity::{CertRole, Identity};
use v2x_link::session::{ControlError, Session, accept_session, read_control};
use v2x_link::{CloseCode, StreamCode};
use v2x_proto::domain::{Role, Subscription};

use super::stats::{Reject, Stats};
use super::{Broadcast, Event, Shared};
use crate::recorder::wall_now;

/// Decrements the active-connection count when the connection task ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one incoming connection to its end.
pub(super) async fn handle(incoming: quinn::Incoming, shared: Arc<Shared>, conn_id: u64) {
    let _guard = ActiveGuard(shared.clone());
    let remote = incoming.remote_address();
    let connection = match incoming.accept() {
        Ok(connecting) => connecting.await,
        Err(e) => Err(e),
    };
    let connection = match connection {
        Ok(c) => c,
        Err(e) => {
            shared.stats.reject(Reject::TlsHandshake, remote, e);
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
        Ok(shared.server_hello.clone())
    })
    .await;
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            shared.stats.reject(Reject::Handshake, remote, e);
            return;
        }
    };
    let role = session.hello.role;
    match role {
        Role::Vehicle => run_vehicle(session, &shared, conn_id).await,
        Role::Sensor => run_sensor(session, &shared, conn_id).await,
    }
    let _ = shared.events.send(Event::Left { conn_id }).await;
}

/// A token bucket: `rate` tokens per second, at most `rate` (one second of burst) stored.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        TokenBucket { rate, tokens: rate, last: Instant::now() }
    }

    fn take(&mut self) -> bool {
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
    /// Latest reported position (east, north) in the site frame [m].
    position_m: Option<[f64; 2]>,
}

async fn run_vehicle(session: Session, shared: &Arc<Shared>, conn_id: u64) {
    let Session { connection, identity, serial, hello, control_send: _control_send, mut control_recv } = session;
    let (tx, rx) = watch::channel(None);
    let joined = Event::Joined {
        conn_id,
        identity: identity.clone(),
        serial,
        connection: connection.clone(),
        downlink: Some(tx),
    };
    if shared.events.send(joined).await.is_err() {
        return;
    }
    let view = Mutex::new(VehicleView {
        subscription: hello.subscription.unwrap_or(Subscription::AroundMe { radius_m: 0 }),
        position_m: None,
    });
    tokio::select! {
        () = vehicle_uplink(&connection, shared, &identity, &view) => {}
        () = control_loop(&connection, &mut control_recv, shared, &identity, Some(&view)) => {}
        () = downlink(&connection, rx, shared, &view) => {}
        () = refuse_streams(&connection, shared, &identity) => {}
    }
}

async fn run_sensor(session: Session, shared: &Arc<Shared>, conn_id: u64) {
    let Session { connection, identity, serial, control_send: _control_send, mut control_recv, .. } = session;
    let joined =
        Event::Joined { conn_id, identity: identity.clone(), serial, connection: connection.clone(), downlink: None };
    if shared.events.send(joined).await.is_err() {
        return;
    }
    tokio::select! {
        () = sensor_uplink(&connection, shared, &identity) => {}
        () = control_loop(&connection, &mut control_recv, shared, &identity, None) => {}
        () = refuse_datagrams(&connection, shared, &identity) => {}
    }
}

/// Hands an input to the fusion loop, or drops and counts it when the loop's queue is full.
fn forward(shared: &Shared, event: Event, from: &Identity) {
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
        v2x_proto::DecodeError::Invalid(_) => Reject::Invalid,
    }
}

async fn vehicle_uplink(
    connection: &quinn::Connection,
    shared: &Shared,
    identity: &Identity,
    view: &Mutex<VehicleView>,
) {
    let stats = &shared.stats;
    let max = shared.limits.max_vehicle_state_bytes;
    let mut bucket = TokenBucket::new(shared.limits.max_vehicle_states_per_s);
    while let Ok(bytes) = connection.read_datagram().await {
        if !bucket.take() {
            stats.reject(Reject::RateLimited, identity, "VehicleState rate limit exceeded");
            continue;
        }
        let state = match v2x_proto::decode_limited::<VehicleState>(&bytes, max) {
            Ok(s) => s,
            Err(e) => {
                stats.reject(decode_reject(&e), identity, format_args!("VehicleState: {e}"));
                continue;
            }
        };
        if state.vehicle_id != identity.id {
            stats.reject(
                Reject::IdentityMismatch,
                identity,
                format_args!("VehicleState for {:?} from the certificate of {}", state.vehicle_id, identity.id),
            );
            continue;
        }
        let p = shared.enu.enu_from_wgs84(&state.position);
        view.lock().unwrap_or_else(std::sync::PoisonError::into_inner).position_m = Some([p.x, p.y]);
        forward(shared, Event::Vehicle { state, received: wall_now() }, identity);
    }
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
    forward(&shared, Event::Sensor { frame, received: wall_now() }, &identity);
}

/// Reads control messages: subscription changes for vehicles; anything from a sensor is a
/// protocol error. Returns when the connection ends or was closed for a protocol error.
async fn control_loop(
    connection: &quinn::Connection,
    recv: &mut quinn::RecvStream,
    shared: &Shared,
    identity: &Identity,
    view: Option<&Mutex<VehicleView>>,
) {
    loop {
        match read_control(recv).await {
            Ok(Some(subscription)) => match view {
                Some(view) => {
                    tracing::debug!(client = %identity, ?subscription, "subscription changed");
                    view.lock().unwrap_or_else(std::sync::PoisonError::into_inner).subscription = subscription;
                }
                None => {
                    shared.stats.reject(Reject::NotAllowed, identity, "a sensor sent a subscription");
                    CloseCode::ProtocolError.close(connection, "a sensor cannot subscribe");
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

/// Vehicles may not open unidirectional streams: each is stopped and counted.
async fn refuse_streams(connection: &quinn::Connection, shared: &Shared, identity: &Identity) {
    while let Ok(mut stream) = connection.accept_uni().await {
        let _ = stream.stop(StreamCode::NotAllowed.varint());
        shared.stats.reject(Reject::NotAllowed, identity, "a vehicle opened a unidirectional stream");
    }
}

/// Sensors may not send datagrams: each is dropped and counted.
async fn refuse_datagrams(connection: &quinn::Connection, shared: &Shared, identity: &Identity) {
    while connection.read_datagram().await.is_ok() {
        shared.stats.reject(Reject::NotAllowed, identity, "a sensor sent a datagram");
    }
}

/// The part of `frame` a vehicle subscribed to.
fn filter_frame(frame: &RoadsideFrame, view: &VehicleView, default_radius_m: u32) -> RoadsideFrame {
    let participants = match &view.subscription {
        Subscription::Everything => frame.participants.clone(),
        Subscription::AroundMe { radius_m } => {
            let r = f64::from(if *radius_m == 0 { default_radius_m } else { *radius_m });
            match view.position_m {
                // Until the vehicle reports where it is, "around me" is nowhere.
                None => Vec::new(),
                Some([x, y]) => frame
                    .participants
                    .iter()
                    .filter(|p| (p.position_m.x - x).hypot(p.position_m.y - y) <= r)
                    .cloned()
                    .collect(),
            }
        }
        Subscription::Polygon(polygon) => frame
            .participants
            .iter()
            .filter(|p| point_in_polygon(polygon, p.position_m.x, p.position_m.y))
            .cloned()
            .collect(),
    };
    RoadsideFrame {
        rsu_id: frame.rsu_id.clone(),
        message_count: frame.message_count,
        time: frame.time,
        reference: frame.reference,
        participants,
        sensors: frame.sensors.clone(),
        perception_regions: frame.perception_regions.clone(),
    }
}

/// Sends each new frame on its own stream; latest wins. Returns when the connection or the loop
/// ends.
async fn downlink(
    connection: &quinn::Connection,
    mut rx: watch::Receiver<Option<Arc<Broadcast>>>,
    shared: &Shared,
    view: &Mutex<VehicleView>,
) {
    let stats = &shared.stats;
    let superseded = || {
        Stats::bump(&stats.frames_superseded);
        metrics::counter!("rsu_frames_superseded_total").increment(1);
    };
    // The stream of the previous frame, kept until the next one is ready.
    let mut previous: Option<quinn::SendStream> = None;
    let mut last_count: Option<u32> = None;
    let mut ready = false;
    loop {
        if !ready && rx.changed().await.is_err() {
            return;
        }
        ready = false;
        let Some(broadcast) = rx.borrow_and_update().clone() else { continue };
        if let Some(last) = last_count {
            // Frames overwritten in the queue before this task took them.
            for _ in 1..broadcast.frame.message_count.wrapping_sub(last) {
                superseded();
            }
        }
        last_count = Some(broadcast.frame.message_count);
        if let Some(mut old) = previous.take()
            && old.reset(StreamCode::FrameSuperseded.varint()).is_ok()
        {
            // Still unacknowledged: abandoned in favour of this frame.
            superseded();
        }
        let bytes = {
            let view = view.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            v2x_proto::encode(&filter_frame(&broadcast.frame, &view, shared.default_radius_m))
        };
        let mut stream = tokio::select! {
            opened = connection.open_uni() => match opened {
                Ok(s) => s,
                Err(_) => return,
            },
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                // No stream credit before a newer frame was ready (the vehicle is not reading).
                superseded();
                ready = true;
                continue;
            }
        };
        let written = tokio::select! {
            written = stream.write_all(&bytes) => Some(written),
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                None
            }
        };
        match written {
            Some(Ok(())) => {
                let _ = stream.finish();
                previous = Some(stream);
                Stats::bump(&stats.frames_sent);
                metrics::counter!("rsu_frames_sent_total").increment(1);
                if let Some(capture) = broadcast.newest_capture {
                    metrics::histogram!("rsu_broadcast_latency_seconds").record(wall_now().secs_since(capture));
                }
            }
            // The vehicle stopped this stream: it does not want the frame.
            Some(Err(quinn::WriteError::Stopped(_))) => {}
            Some(Err(_)) => return,
            None => {
                // A newer frame is ready while this one is still being written.
                let _ = stream.reset(StreamCode::FrameSuperseded.varint());
                superseded();
                ready = true;
            }
        }
    }
}
