//! The v2x.v1 wire protocol of the RSU stack.
//!
//! Other crates handle domain values and bytes only; the generated prost types stay inside this
//! crate (ARCHITECTURE.md: "wire types stay at the edge").
//!
//! - [`encode`] / [`encode_length_delimited`] and [`decode`] / [`decode_limited`]: domain value ↔
//!   bytes in one call, for every domain type with a wire message ([`WireMessage`]). Sensor frames
//!   and ground truth, the high-volume messages, are decoded by a hand-written decoder straight
//!   into the domain types; the others through prost and [`convert`].
//! - [`convert`]: typed conversions between wire and domain types; untrusted input is rejected
//!   here with a [`ConvertError`] naming the field.
//! - [`domain`]: domain types that live only at the edges (replay metadata, ground truth, session).
//! - [`wire`]: the prost types generated from `proto/v2x/v1/*.proto` (package `v2x.v1`), for this
//!   crate's conversions and for tests that craft wire messages, malformed ones included.
//! - [`decode_reference`]: prost then the conversion, for any message: the reference the
//!   hand-written decoder is tested against.
//! - [`FILE_DESCRIPTOR_SET`]: the serialized schemas, embedded in every replay log and written by
//!   `rsu schema`, so other languages and generic tools can decode our messages.

pub mod convert;
pub mod domain;
pub mod fanout;
mod fast_decode;
pub mod sample;

use std::borrow::Cow;

pub use convert::ConvertError;
use domain::{
    ClientControl, ClientHello, GroundTruthFrame, ReplayMeta, RoadsideDatagram, ServerHello, SignalControllerState,
};
use prost::Message as _;
use rsu_fusion::{RoadsideFrame, SensorFrame, VehicleState};

/// Generated protobuf types of package `v2x.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/v2x.v1.rs"));
}

/// The serialized `google.protobuf.FileDescriptorSet` of every v2x.v1 schema (with source info).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/v2x_v1_descriptor.bin"));

/// Protobuf package of this protocol version.
pub const PACKAGE: &str = "v2x.v1";

/// Largest encoded message [bytes] [`decode`] accepts (a 1024-participant frame with path history
/// stays well below).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Largest message sent as one QUIC datagram [bytes] (`SignalControllerState` uplink,
/// `RoadsideDatagram` downlink): what a QUIC datagram carries on a path of the minimum IPv6 MTU
/// (1280 bytes) with room for the packet's headers and AEAD tag.
pub const MAX_DATAGRAM_BYTES: usize = 1150;

/// Why bytes could not become a domain value. The variants are the classes the daemon counts
/// rejections by (oversized, malformed, invalid), whichever decoder ran.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// More bytes than allowed.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not valid protobuf for the expected message.
    #[error("malformed protobuf: {0}")]
    Malformed(#[from] MalformedError),
    /// Valid protobuf with invalid content.
    #[error("invalid content: {0}")]
    Invalid(#[from] ConvertError),
}

/// What makes bytes not valid protobuf for the expected message (a bad varint, key or wire type,
/// a length past the end, invalid UTF-8 in a string...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedError(Cow<'static, str>);

impl MalformedError {
    /// An error described by `what`.
    pub(crate) fn new(what: impl Into<Cow<'static, str>>) -> Self {
        MalformedError(what.into())
    }
}

impl From<prost::DecodeError> for DecodeError {
    fn from(e: prost::DecodeError) -> Self {
        DecodeError::Malformed(MalformedError(e.to_string().into()))
    }
}

mod sealed {
    /// Only this crate's domain types have wire messages.
    pub trait Sealed {}
}

/// A domain type with a message of the v2x.v1 protocol: what [`encode`] and [`decode`] take.
pub trait WireMessage: Sized + sealed::Sealed {
    /// Full name of the protobuf message, e.g. `v2x.v1.SensorFrame`.
    const MESSAGE_NAME: &'static str;

    /// The protobuf encoding, length-delimited (preceded by its length as a varint) or not.
    #[doc(hidden)]
    fn to_bytes(&self, length_delimited: bool) -> Vec<u8>;

    /// The value of `bytes` (of any length: [`decode_limited`] checks it).
    #[doc(hidden)]
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// Implements [`WireMessage`] for domain type `$domain` with wire message `$wire`, decoded by
/// `$decode` (a `fn(&[u8]) -> Result<$domain, DecodeError>`).
macro_rules! wire_message {
    ($domain:ty, $wire:ident, $decode:expr) => {
        impl sealed::Sealed for $domain {}

        impl WireMessage for $domain {
            const MESSAGE_NAME: &'static str = concat!("v2x.v1.", stringify!($wire));

            fn to_bytes(&self, length_delimited: bool) -> Vec<u8> {
                let message = wire::$wire::from(self);
                if length_delimited { message.encode_length_delimited_to_vec() } else { message.encode_to_vec() }
            }

            fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
                $decode(bytes)
            }
        }
    };
}

wire_message!(SensorFrame, SensorFrame, fast_decode::sensor_frame);
wire_message!(GroundTruthFrame, GroundTruthFrame, fast_decode::ground_truth_frame);
wire_message!(VehicleState, VehicleState, decode_reference::<wire::VehicleState, _>);
wire_message!(RoadsideFrame, RoadsideFrame, decode_reference::<wire::RoadsideFrame, _>);
wire_message!(ReplayMeta, ReplayMeta, decode_reference::<wire::ReplayMeta, _>);
wire_message!(ClientHello, ClientHello, decode_reference::<wire::ClientHello, _>);
wire_message!(ServerHello, ServerHello, decode_reference::<wire::ServerHello, _>);
wire_message!(ClientControl, ClientControl, decode_reference::<wire::ClientControl, _>);
wire_message!(SignalControllerState, SignalControllerState, decode_reference::<wire::SignalControllerState, _>);
wire_message!(RoadsideDatagram, RoadsideDatagram, decode_reference::<wire::RoadsideDatagram, _>);
wire_message!(domain::Spat, Spat, decode_reference::<wire::Spat, _>);
wire_message!(domain::ServerControl, ServerControl, decode_reference::<wire::ServerControl, _>);
wire_message!(domain::MapData, MapData, decode_reference::<wire::MapData, _>);
wire_message!(domain::RsiEvent, RsiEvent, decode_reference::<wire::RsiEvent, _>);

/// The protobuf encoding of `value`.
pub fn encode<D: WireMessage>(value: &D) -> Vec<u8> {
    value.to_bytes(false)
}

/// The protobuf encoding of `value` preceded by its length as a varint (what the control stream
/// carries).
pub fn encode_length_delimited<D: WireMessage>(value: &D) -> Vec<u8> {
    value.to_bytes(true)
}

/// The domain value of `bytes`, refusing more than `max_bytes`.
pub fn decode_limited<D: WireMessage>(bytes: &[u8], max_bytes: usize) -> Result<D, DecodeError> {
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: max_bytes });
    }
    D::from_bytes(bytes)
}

/// [`decode_limited`] with [`MAX_MESSAGE_BYTES`].
pub fn decode<D: WireMessage>(bytes: &[u8]) -> Result<D, DecodeError> {
    decode_limited(bytes, MAX_MESSAGE_BYTES)
}

/// A generated message (`wire::…`) used as is, with no domain type: the northbound MQTT
/// messages, whose users build and read the generated types directly. Other crates name this
/// bound rather than prost's traits (only this crate depends on prost).
pub trait WireOnly: prost::Message + prost::Name + Default {}

impl<W: prost::Message + prost::Name + Default> WireOnly for W {}

/// The protobuf bytes of generated message `message`.
pub fn encode_wire<W: WireOnly>(message: &W) -> Vec<u8> {
    message.encode_to_vec()
}

/// Generated message `W` from `bytes` (no size limit: the caller bounds what it reads).
pub fn decode_wire<W: WireOnly>(bytes: &[u8]) -> Result<W, DecodeError> {
    Ok(W::decode(bytes)?)
}

/// The full protobuf name of generated message `W` (`v2x.v1.RoadEvent`).
pub fn wire_name<W: WireOnly>() -> String {
    W::full_name()
}

/// Decodes `bytes` as wire message `W` with prost, then converts it to domain type `D`: how
/// [`decode`] decodes the messages without a hand-written decoder, and the reference those
/// decoders are tested against (same value, same error class). No size limit.
pub fn decode_reference<W, D>(bytes: &[u8]) -> Result<D, DecodeError>
where
    W: prost::Message + Default,
    D: for<'a> TryFrom<&'a W, Error = ConvertError>,
{
    let wire = W::decode(bytes)?;
    Ok(D::try_from(&wire)?)
}

/// What a decoding gave, as text: the value's `Debug` (which, unlike `==`, tells -0.0 from 0.0),
/// or the error's class, with the conversion's error for invalid content. Two decoders agree on
/// some bytes when these texts are equal: how the tests compare the hand-written decoder with
/// [`decode_reference`].
pub fn decode_outcome<D: std::fmt::Debug>(result: &Result<D, DecodeError>) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(DecodeError::TooLarge { .. }) => "too large".to_owned(),
        Err(DecodeError::Malformed(_)) => "malformed".to_owned(),
        Err(DecodeError::Invalid(e)) => format!("invalid: {e:?}"),
    }
}
