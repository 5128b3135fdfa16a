//! The T/CSAE 53-2020 application-layer messages in ASN.1 UPER, as roadside PC5 radios take them
//! and Chinese OBUs decode them: one `MessageFrame` (`bsmFrame`, `mapFrame`, `rsmFrame`,
//! `spatFrame`, `rsiFrame`) per datagram.
//!
//! - [`msg`]: the rasn bindings, generated from the transcribed ASN.1 modules in `asn1/` by
//!   `tools/gen_rasn.py` (one Rust type per ASN.1 type, the standard's identifiers kept).
//! - [`convert`]: our messages in the standard's units: the fused frame as RSMs (split to the
//!   payload budget), the SPaT as SPAT, a vehicle's state as BSM; values outside an ASN.1 range
//!   are clamped and counted ([`convert::Clamps`]).
//! - [`encode_msg_frame`], [`decode_msg_frame`], [`to_json`]: the codec (rasn's UPER, and its
//!   JSON encoding rules for `rsu decode`).
//!
//! MAP and RSI have bindings (and decode) but no conversion yet: the stack's own MAP/RSI
//! messages are not in this crate's inputs.

pub mod convert;
mod generated;
#[cfg(test)]
mod tests;

/// The ASN.1 codec crate the bindings are made with (for its string and bit types).
pub use rasn;

/// The rasn bindings of the T/CSAE 53-2020 modules (see the crate docs).
pub mod msg {
    pub use crate::generated::*;
}

use msg::MessageFrame;

/// The payload budget of one PC5 datagram as roadside radios accept it [bytes].
pub const MAX_PAYLOAD_BYTES: usize = 1400;

/// Longest input [`decode_msg_frame`] looks at [bytes]: a UPER `MessageFrame` on PC5 is at most
/// one datagram; anything longer is refused before decoding.
pub const MAX_DECODE_BYTES: usize = 64 * 1024;

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum UperError {
    /// The value breaks a constraint of the modules (a size or a range).
    #[error("UPER encoding failed: {0}")]
    Encode(String),
    /// One item alone encodes to more than the payload budget.
    #[error("{bytes} bytes, over the payload budget of {budget} bytes")]
    TooLarge {
        /// The encoded size [bytes].
        bytes: usize,
        /// The budget [bytes].
        budget: usize,
    },
    /// The bytes are not a UPER `MessageFrame` of these modules.
    #[error("not a T/CSAE 53-2020 UPER MessageFrame: {0}")]
    Decode(String),
    /// Whole bytes are left after the `MessageFrame` (UPER pads only the last byte).
    #[error("{0} bytes left after the MessageFrame")]
    Trailing(usize),
    /// The input is longer than [`MAX_DECODE_BYTES`].
    #[error("input of {0} bytes is longer than the {MAX_DECODE_BYTES} bytes a MessageFrame may take")]
    TooLong(usize),
    /// The JSON rendering failed.
    #[error("JSON rendering failed: {0}")]
    Json(String),
}

/// `frame` in UPER (X.691 unaligned), padded to whole bytes.
pub fn encode_msg_frame(frame: &MessageFrame) -> Result<Vec<u8>, UperError> {
    rasn::uper::encode(frame).map_err(|e| UperError::Encode(e.to_string()))
}

/// The `MessageFrame` in `bytes` (UPER). Refuses inputs longer than [`MAX_DECODE_BYTES`] and
/// inputs with whole bytes after the message.
pub fn decode_msg_frame(bytes: &[u8]) -> Result<MessageFrame, UperError> {
    if bytes.len() > MAX_DECODE_BYTES {
        return Err(UperError::TooLong(bytes.len()));
    }
    let (frame, rest) =
        rasn::uper::decode_with_remainder::<MessageFrame>(bytes).map_err(|e| UperError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(UperError::Trailing(rest.len()));
    }
    Ok(frame)
}

/// `frame` as JSON (ITU-T X.697 JSON encoding rules), with the standard's identifiers.
pub fn to_json(frame: &MessageFrame) -> Result<String, UperError> {
    rasn::jer::encode(frame).map_err(|e| UperError::Json(e.to_string()))
}

/// The type of a frame's message, for counters and logs: `bsm`, `map`, `rsm`, `spat`, `rsi`.
pub fn frame_type(frame: &MessageFrame) -> &'static str {
    match frame {
        MessageFrame::BsmFrame(_) => "bsm",
        MessageFrame::MapFrame(_) => "map",
        MessageFrame::RsmFrame(_) => "rsm",
        MessageFrame::SpatFrame(_) => "spat",
        MessageFrame::RsiFrame(_) => "rsi",
    }
}
