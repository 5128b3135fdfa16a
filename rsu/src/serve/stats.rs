//! Counters of the running daemon: every rejected input by reason (also exported as the
//! `rsu_rejected_total{reason}` metric), and warning logs about rejections that cannot flood the
//! log (the first of each reason at once, then at most one per reason every
//! [`LOG_INTERVAL`], saying how many were suppressed).

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Least time between two log lines about the same rejection reason.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why an input or connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Bytes that are not valid protobuf for the expected message.
    Malformed,
    /// Valid protobuf with missing or out-of-range content.
    Invalid,
    /// A message over its size limit.
    Oversized,
    /// A vehicle reporting another vehicle's id, or a sensor sending another sensor's frames.
    IdentityMismatch,
    /// A sensor frame from a sensor not in the site configuration.
    UnknownSensor,
    /// Lidar detections from a camera or the other way round.
    WrongKind,
    /// A signal controller not in the configuration (a session, a controller state or an
    /// NTCIP blob from an unexpected source).
    UnknownController,
    /// A controller state whose values contradict each other (a phase that ends before it
    /// starts, a signal group listed twice).
    Inconsistent,
    /// Captured too long ago to be fused.
    Late,
    /// Captured too far in the future.
    FromFuture,
    /// Over the client's message rate.
    RateLimited,
    /// The fusion loop's input queue was full.
    QueueFull,
    /// A stream or datagram the client's role may not send.
    NotAllowed,
    /// A session refused with `PROTOCOL_ERROR`: no control stream, a malformed or oversized
    /// `ClientHello`, a sensor subscribing.
    ProtocolError,
    /// A session refused with `HELLO_TIMEOUT`.
    HelloTimeout,
    /// A session refused with `UNSUPPORTED_VERSION`.
    UnsupportedVersion,
    /// A session refused with `NO_IDENTITY`: the certificate carries no vehicle or sensor
    /// identity.
    NoIdentity,
    /// A failed QUIC/TLS handshake (no or bad client certificate, revoked, wrong ALPN, or the
    /// client gave up).
    TlsHandshake,
    /// An Initial from an address not yet validated while many handshakes were in progress,
    /// answered with a stateless QUIC Retry instead of a handshake.
    Retry,
    /// An Initial dropped unanswered: the handshake limit was reached.
    HandshakeLimit,
    /// A handshake not finished within the handshake timeout, abandoned.
    HandshakeTimeout,
    /// Refused at the connection limit (`SERVER_BUSY`).
    ConnectionLimit,
}

impl Reject {
    /// Every reason.
    pub const ALL: [Reject; 22] = [
        Reject::Malformed,
        Reject::Invalid,
        Reject::Oversized,
        Reject::IdentityMismatch,
        Reject::UnknownSensor,
        Reject::WrongKind,
        Reject::UnknownController,
        Reject::Inconsistent,
        Reject::Late,
        Reject::FromFuture,
        Reject::RateLimited,
        Reject::QueueFull,
        Reject::NotAllowed,
        Reject::ProtocolError,
        Reject::HelloTimeout,
        Reject::UnsupportedVersion,
        Reject::NoIdentity,
        Reject::TlsHandshake,
        Reject::Retry,
        Reject::HandshakeLimit,
        Reject::HandshakeTimeout,
        Reject::ConnectionLimit,
    ];

    /// The metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::Invalid => "invalid",
            Reject::Oversized => "oversized",
            Reject::IdentityMismatch => "identity_mismatch",
            Reject::UnknownSensor => "unknown_sensor",
            Reject::WrongKind => "wrong_kind",
            Reject::UnknownController => "unknown_controller",
            Reject::Inconsistent => "inconsistent",
            Reject::Late => "late",
            Reject::FromFuture => "from_future",
            Reject::RateLimited => "rate_limited",
            Reject::QueueFull => "queue_full",
            Reject::NotAllowed => "not_allowed",
            Reject::ProtocolError => "protocol_error",
            Reject::HelloTimeout => "hello_timeout",
            Reject::UnsupportedVersion => "unsupported_version",
            Reject::NoIdentity => "no_identity",
            Reject::TlsHandshake => "tls_handshake",
            Reject::Retry => "retry",
            Reject::HandshakeLimit => "handshake_limit",
            Reject::HandshakeTimeout => "handshake_timeout",
            Reject::ConnectionLimit => "connection_limit",
        }
    }

    /// The reason a session refused with `code` is counted under.
    pub fn of_close(code: v2x_link::CloseCode) -> Reject {
        use v2x_link::CloseCode as C;
        match code {
            C::HelloTimeout => Reject::HelloTimeout,
            C::UnsupportedVersion => Reject::UnsupportedVersion,
            C::IdentityMismatch => Reject::IdentityMismatch,
            C::NoIdentity => Reject::NoIdentity,
            C::UnknownSensor => Reject::UnknownSensor,
            C::UnknownController => Reject::UnknownController,
            C::ServerBusy => Reject::ConnectionLimit,
            // The handshake refuses with no other code; anything else would be a protocol fault.
            _ => Reject::ProtocolError,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Rate limit of log lines about one kind of rejection.
#[derive(Default)]
pub(crate) struct LogGate {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogGate {
    /// Whether to log a rejection at `now`: the number of rejections not logged since the last
    /// line, or `None` (and one more suppressed) within [`LOG_INTERVAL`] of it.
    pub(crate) fn open(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.duration_since(last) < LOG_INTERVAL) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Shared counters of one server run. Cheap to update from any task.
pub struct Stats {
    rejected: [AtomicU64; Reject::ALL.len()],
    gates: [Mutex<LogGate>; Reject::ALL.len()],
    /// Sensor frames handed to the fusion core.
    pub sensor_frames_in: AtomicU64,
    /// Vehicle states handed to the fusion core.
    pub vehicle_states_in: AtomicU64,
    /// Signal controller states taken in.
    pub signal_states_in: AtomicU64,
    /// SPaT datagrams handed to QUIC (all vehicles).
    pub spat_sent: AtomicU64,
    /// Fusion cycles run.
    pub cycles: AtomicU64,
    /// Roadside frames completely handed to QUIC (all vehicles).
    pub frames_sent: AtomicU64,
    /// Sent frames the vehicle acknowledged completely.
    pub frames_delivered: AtomicU64,
    /// Frames not delivered, by reason (see [`Undelivered`]).
    undelivered: [AtomicU64; Undelivered::ALL.len()],
    /// Records the recorder dropped (queue full or write error).
    pub records_dropped: AtomicU64,
    /// Sessions established.
    pub sessions: AtomicU64,
    /// The most QUIC/TLS handshakes in progress at once so far.
    pub handshakes_peak: AtomicU64,
    /// Vehicles with a session now.
    pub connected_vehicles: AtomicU64,
    /// Sensors with a session now.
    pub connected_sensors: AtomicU64,
    /// Signal controllers with a session now.
    pub connected_signal_controllers: AtomicU64,
    /// The northbound MQTT link.
    pub northbound: super::northbound::NorthboundStats,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            gates: std::array::from_fn(|_| Mutex::new(LogGate::default())),
            sensor_frames_in: AtomicU64::new(0),
            vehicle_states_in: AtomicU64::new(0),
            signal_states_in: AtomicU64::new(0),
            spat_sent: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_delivered: AtomicU64::new(0),
            undelivered: std::array::from_fn(|_| AtomicU64::new(0)),
            records_dropped: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            handshakes_peak: AtomicU64::new(0),
            connected_vehicles: AtomicU64::new(0),
            connected_sensors: AtomicU64::new(0),
            connected_signal_controllers: AtomicU64::new(0),
            northbound: super::northbound::NorthboundStats::default(),
        }
    }
}

/// Why a frame meant for a vehicle did not reach it. A frame is either superseded before it is
/// handed to QUIC, or sent; a sent frame is delivered (acknowledged) or undelivered for one of
/// the other reasons, so `sent = delivered + expired + stopped + closed + send_error` (plus the
/// frames still in flight), which a client can check from the outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Undelivered {
    /// Replaced by a newer frame before it was handed to QUIC (waiting for the vehicle's rate
    /// cap or for stream credit from a vehicle that does not read).
    Superseded,
    /// Handed to QUIC, still not acknowledged at its delivery deadline: the stream was reset.
    Expired,
    /// Handed to QUIC; the vehicle stopped the stream (it did not want the frame).
    Stopped,
    /// Handed to QUIC; the connection ended before it was acknowledged.
    Closed,
    /// Could not be handed to QUIC (the connection failed while writing).
    SendError,
}

impl Undelivered {
    /// Every reason.
    pub const ALL: [Undelivered; 5] = [
        Undelivered::Superseded,
        Undelivered::Expired,
        Undelivered::Stopped,
        Undelivered::Closed,
        Undelivered::SendError,
    ];

    /// The metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Undelivered::Superseded => "superseded",
            Undelivered::Expired => "expired",
            Undelivered::Stopped => "stopped",
            Undelivered::Closed => "closed",
            Undelivered::SendError => "send_error",
        }
    }
}

impl Stats {
    /// Counts a frame not delivered for `reason` (also as `rsu_frames_undelivered_total`).
    pub fn undelivered(&self, reason: Undelivered, n: u64) {
        if n > 0 {
            self.undelivered[reason as usize].fetch_add(n, Ordering::Relaxed);
            metrics::counter!("rsu_frames_undelivered_total", "reason" => reason.name()).increment(n);
        }
    }

    /// Frames not delivered for `reason` so far.
    pub fn undelivered_count(&self, reason: Undelivered) -> u64 {
        self.undelivered[reason as usize].load(Ordering::Relaxed)
    }

    /// Counts a rejection and logs it unless a line about the same reason was logged within
    /// [`LOG_INTERVAL`].
    pub fn reject(&self, reason: Reject, from: impl Display, detail: impl Display) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("rsu_rejected_total", "reason" => reason.name()).increment(1);
        let mut gate = self.gates[reason.index()].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(suppressed) = gate.open(Instant::now()) else { return };
        drop(gate);
        tracing::warn!(reason = reason.name(), %from, suppressed, "rejected: {detail}");
    }

    /// Rejections so far for `reason`.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.rejected[reason.index()].load(Ordering::Relaxed)
    }

    /// Every reason with a non-zero count.
    pub fn rejections(&self) -> Vec<(Reject, u64)> {
        Reject::ALL.iter().map(|r| (*r, self.rejected(*r))).filter(|(_, n)| *n > 0).collect()
    }

    /// Reads a plain counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds one to a plain counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_counted_by_reason() {
        let stats = Stats::default();
        for _ in 0..1000 {
            stats.reject(Reject::Malformed, "veh-1", "bad bytes");
        }
        stats.reject(Reject::Late, "lidar-ne", "0.9 s late");
        assert_eq!(stats.rejected(Reject::Malformed), 1000);
        assert_eq!(stats.rejected(Reject::Late), 1);
        assert_eq!(stats.rejected(Reject::Oversized), 0);
        assert_eq!(stats.rejections(), vec![(Reject::Malformed, 1000), (Reject::Late, 1)]);
        let gate = stats.gates[Reject::Malformed.index()].lock().expect("lock");
        assert_eq!(gate.suppressed, 999, "only the first of a burst is logged");
    }

    /// PROTOCOL.md, the contract these counters are documented in.
    const PROTOCOL: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../PROTOCOL.md"));

    /// The text of the section whose heading starts with `heading`, up to the next heading.
    fn section(heading: &str) -> &'static str {
        let start = PROTOCOL.find(heading).unwrap_or_else(|| panic!("PROTOCOL.md has no {heading:?}"));
        let body = &PROTOCOL[start + heading.len()..];
        &body[..body.find("\n#").unwrap_or(body.len())]
    }

    #[test]
    fn the_protocol_lists_every_rejection_reason_and_no_other() {
        // The first column of the table of §2.7, in order.
        let documented: Vec<&str> = section("### 2.7")
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let counted: Vec<&str> = Reject::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(documented, counted, "PROTOCOL.md §2.7 and `Reject` disagree");
    }

    #[test]
    fn the_protocol_lists_every_undelivered_reason() {
        let accounting = section("### 2.4");
        let accounting = &accounting[accounting.find("**Accounting.**").expect("accounting paragraph")..];
        for reason in Undelivered::ALL {
            assert!(accounting.contains(&format!("`{}`", reason.name())), "§2.4 does not name {}", reason.name());
        }
    }

    #[test]
    fn session_refusals_are_counted_under_their_close_code() {
        use v2x_link::CloseCode;
        for (code, reason) in [
            (CloseCode::ProtocolError, Reject::ProtocolError),
            (CloseCode::HelloTimeout, Reject::HelloTimeout),
            (CloseCode::UnsupportedVersion, Reject::UnsupportedVersion),
            (CloseCode::IdentityMismatch, Reject::IdentityMismatch),
            (CloseCode::NoIdentity, Reject::NoIdentity),
            (CloseCode::UnknownSensor, Reject::UnknownSensor),
            (CloseCode::ServerBusy, Reject::ConnectionLimit),
        ] {
            assert_eq!(Reject::of_close(code), reason, "{code}");
            assert_eq!(code.name().replace("server_busy", "connection_limit"), reason.name());
        }
    }

    #[test]
    fn names_are_unique() {
        let names: std::collections::BTreeSet<_> = Reject::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Reject::ALL.len());
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
