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

/// The protocol version a client lists in `ClientHello.versions` (`PROTOCOL_VERSION_V1`).
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest control-stream message (ClientHello, ClientControl, ServerHello) [bytes], without its
/// length prefix.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest `VehicleState` datagram the RSU accepts by default [bytes].
pub const MAX_VEHICLE_STATE_BYTES: usize = 1024;

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
