//! The QUIC protocol of the RSU (ALPN `v2x/1`), shared by the daemon and its clients.
//!
//! The protocol is specified in `PROTOCOL.md` at the repository root; this crate is its Rust
//! implementation for both ends:
//!
//! - [`identity`]: where a certificate carries its holder's role and id (a SAN URI
//!   `v2x://<role>/<id>`) and how to read it.
//! - [`pki`]: a development PKI (CA, RSU server certificate, vehicle and sensor certificates)
//!   generated with rcgen, so the stack runs without outside tools.
//! - [`revocation`]: the revocation list (serial numbers or a CRL), reloadable while running.
//! - [`tls`]: rustls (TLS 1.3 only, ring provider) and quinn configurations from PEM files, with
//!   mandatory client certificates checked against the site CA and the revocation list.
//! - [`framing`]: varint length-delimited protobuf messages on the control stream.
//! - [`session`]: the server side of the handshake (ClientHello → ServerHello or a close code).
//! - [`client`]: async clients: [`client::VehicleClient`] and [`client::SensorClient`].
//!
//! Error codes are in [`codes`]; protocol limits in the `MAX_*` constants.

pub mod client;
pub mod codes;
pub mod framing;
pub mod identity;
pub mod pki;
pub mod revocation;
pub mod session;
pub mod tls;

pub use codes::{CloseCode, StreamCode};
pub use identity::{Identity, IdentityError};

/// The ALPN protocol id of this protocol version.
pub const ALPN: &[u8] = b"v2x/1";

/// The newest protocol version (`PROTOCOL_VERSION_V4`: the MAP and RSI events on a vehicle's
/// control stream, on top of version 3's signal controllers and SPaT datagrams and version 2's
/// sensor health on change; PROTOCOL.md §5).
pub const PROTOCOL_VERSION: u32 = 4;

/// The first protocol version with signal controllers and SPaT datagrams to vehicles.
pub const SPAT_VERSION: u32 = 3;

/// The protocol versions this implementation speaks, best first: what our clients list in
/// `ClientHello.versions`, and what the RSU accepts.
pub const PROTOCOL_VERSIONS: [u32; 4] = [PROTOCOL_VERSION, 3, 2, 1];

/// The first protocol version whose vehicles get `ServerControl` messages (the MAP, RSI events)
/// on their control stream after `ServerHello`.
pub const MAP_VERSION: u32 = 4;

/// The version a session runs: the first of the client's `offered` (best first) that this
/// implementation speaks; `None` when it speaks none of them.
pub fn negotiate(offered: &[u32]) -> Option<u32> {
    offered.iter().copied().find(|v| PROTOCOL_VERSIONS.contains(v))
}

/// Largest control-stream message (ClientHello, ClientControl, ServerHello) [bytes], without its
/// length prefix.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest `VehicleState` datagram the RSU accepts by default [bytes].
pub const MAX_VEHICLE_STATE_BYTES: usize = 1024;

/// Largest `SignalControllerState` datagram the RSU accepts by default [bytes].
pub const MAX_SIGNAL_STATE_BYTES: usize = v2x_proto::MAX_DATAGRAM_BYTES;

/// Largest `SensorFrame` stream the RSU accepts by default [bytes].
pub const MAX_SENSOR_FRAME_BYTES: usize = 1 << 20;

/// Largest `RoadsideFrame` stream a client accepts by default [bytes] (the protocol's message
/// limit).
pub const MAX_ROADSIDE_FRAME_BYTES: usize = v2x_proto::MAX_MESSAGE_BYTES;

/// The wall clock as a timestamp (UTC): the time base both ends of the protocol stamp messages
/// with (the fusion core itself never reads a clock).
pub fn wall_now() -> rsu_fusion::Timestamp {
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    rsu_fusion::Timestamp::from_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_best_version_spoken_is_chosen() {
        assert_eq!(negotiate(&PROTOCOL_VERSIONS), Some(PROTOCOL_VERSION));
        assert_eq!(negotiate(&[1]), Some(1), "a version 1 client is still served");
        assert_eq!(negotiate(&[1, 2]), Some(1), "the client's order decides");
        assert_eq!(negotiate(&[7, 2, 1]), Some(2), "a version 2 client is still served");
        assert_eq!(negotiate(&[7, 3]), Some(3));
        assert_eq!(negotiate(&[4, 3]), Some(4));
        assert_eq!(negotiate(&[7]), None);
        assert_eq!(negotiate(&[]), None);
    }
}
