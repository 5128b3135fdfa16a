//! The v2x.v1 wire protocol of the RSU stack.
//!
//! - [`wire`]: the prost types generated from `proto/v2x/v1/*.proto` (package `v2x.v1`).
//! - [`convert`]: typed conversions between wire and domain types; untrusted input is rejected
//!   here with a [`ConvertError`] naming the field.
//! - [`domain`]: domain types that live only at the edges (replay metadata, ground truth, session).
//! - [`FILE_DESCRIPTOR_SET`]: the serialized schemas, embedded in every replay log and written by
//!   `rsu schema`, so other languages and generic tools can decode our messages.
//! - [`decode`] / [`encode`]: bytes ↔ domain values in one call, with a size limit;
//!   [`decode_sensor_frame`] and [`decode_ground_truth_frame`]: the same results for the
//!   high-volume messages of a replay, with a hand-written decoder straight into the domain types
//!   that costs a fraction as much.

pub mod convert;
pub mod domain;
mod fast_decode;
pub mod sample;

pub use convert::ConvertError;
use domain::GroundTruthFrame;
use rsu_fusion::SensorFrame;

/// Generated protobuf types of package `v2x.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/v2x.v1.rs"));
}

/// The serialized `google.protobuf.FileDescriptorSet` of every v2x.v1 schema (with source info).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/v2x_v1_descriptor.bin"));

/// Protobuf package of this protocol version.
pub const PACKAGE: &str = "v2x.v1";

/// Largest encoded message [bytes] [`decode`] accepts by default (a 1024-participant frame with
/// path history stays well below).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why bytes could not become a domain value.
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
    Protobuf(#[from] prost::DecodeError),
    /// Valid protobuf with invalid content.
    #[error("invalid content: {0}")]
    Invalid(#[from] ConvertError),
}

/// Decodes `bytes` as wire message `W` and converts it to domain type `D`, refusing more than
/// `max_bytes`.
pub fn decode_limited<W, D>(bytes: &[u8], max_bytes: usize) -> Result<D, DecodeError>
where
    W: prost::Message + Default,
    D: for<'a> TryFrom<&'a W, Error = ConvertError>,
{
    if bytes.len() > max_bytes {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: max_bytes });
    }
    let wire = W::decode(bytes)?;
    Ok(D::try_from(&wire)?)
}

/// [`decode_limited`] with [`MAX_MESSAGE_BYTES`].
pub fn decode<W, D>(bytes: &[u8]) -> Result<D, DecodeError>
where
    W: prost::Message + Default,
    D: for<'a> TryFrom<&'a W, Error = ConvertError>,
{
    decode_limited::<W, D>(bytes, MAX_MESSAGE_BYTES)
}

/// [`decode`] with a first attempt by `fast`, which gives the domain value that prost and the
/// conversion would give, or `None` (then they decode it, and give the value or the error).
fn decode_fast<W, D>(bytes: &[u8], fast: fn(&[u8]) -> Option<D>) -> Result<D, DecodeError>
where
    W: prost::Message + Default,
    D: for<'a> TryFrom<&'a W, Error = ConvertError>,
{
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    match fast(bytes) {
        Some(value) => Ok(value),
        None => decode::<W, D>(bytes),
    }
}

/// `decode::<wire::SensorFrame, SensorFrame>`: the same value or error, through a hand-written
/// decoder for the fields our writers produce (see the `fast_decode` module).
pub fn decode_sensor_frame(bytes: &[u8]) -> Result<SensorFrame, DecodeError> {
    decode_fast::<wire::SensorFrame, _>(bytes, fast_decode::sensor_frame)
}

/// `decode::<wire::GroundTruthFrame, GroundTruthFrame>`: the same value or error, through a
/// hand-written decoder for the fields our writers produce (see the `fast_decode` module).
pub fn decode_ground_truth_frame(bytes: &[u8]) -> Result<GroundTruthFrame, DecodeError> {
    decode_fast::<wire::GroundTruthFrame, _>(bytes, fast_decode::ground_truth_frame)
}

/// Encodes domain value `d` as wire message `W`.
pub fn encode<W, D>(d: &D) -> Vec<u8>
where
    W: prost::Message + for<'a> From<&'a D>,
{
    W::from(d).encode_to_vec()
}
