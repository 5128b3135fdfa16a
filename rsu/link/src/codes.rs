//! QUIC application error codes of the protocol: connection close codes and stream reset/stop
//! codes. The values are those of the `v2x.v1.CloseCode` enum in `session.proto`.

use quinn::VarInt;

/// Why a connection was closed (the QUIC application error code of CONNECTION_CLOSE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// Normal close, nothing wrong.
    NoError,
    /// The RSU is shutting down.
    Shutdown,
    /// The peer broke the protocol (control stream misuse, malformed control message).
    ProtocolError,
    /// No ClientHello within the hello timeout.
    HelloTimeout,
    /// No common protocol version.
    UnsupportedVersion,
    /// ClientHello's role or id differs from the certificate.
    IdentityMismatch,
    /// The certificate carries no usable identity.
    NoIdentity,
    /// A sensor the site configuration does not know.
    UnknownSensor,
    /// The certificate was revoked while connected.
    Revoked,
    /// A newer connection with the same identity replaced this one.
    Replaced,
    /// The RSU's connection limit is reached.
    ServerBusy,
    /// A signal controller the RSU's configuration does not know.
    UnknownController,
}

impl CloseCode {
    /// Every close code, in wire order.
    pub const ALL: [CloseCode; 12] = [
        CloseCode::NoError,
        CloseCode::Shutdown,
        CloseCode::ProtocolError,
        CloseCode::HelloTimeout,
        CloseCode::UnsupportedVersion,
        CloseCode::IdentityMismatch,
        CloseCode::NoIdentity,
        CloseCode::UnknownSensor,
        CloseCode::Revoked,
        CloseCode::Replaced,
        CloseCode::ServerBusy,
        CloseCode::UnknownController,
    ];

    /// The wire value.
    pub const fn code(self) -> u32 {
        match self {
            CloseCode::NoError => 0,
            CloseCode::Shutdown => 1,
            CloseCode::ProtocolError => 2,
            CloseCode::HelloTimeout => 3,
            CloseCode::UnsupportedVersion => 4,
            CloseCode::IdentityMismatch => 5,
            CloseCode::NoIdentity => 6,
            CloseCode::UnknownSensor => 7,
            CloseCode::Revoked => 8,
            CloseCode::Replaced => 9,
            CloseCode::ServerBusy => 10,
            CloseCode::UnknownController => 11,
        }
    }

    /// The code for a wire value, if it is one.
    pub fn from_code(code: u64) -> Option<CloseCode> {
        CloseCode::ALL.into_iter().find(|c| u64::from(c.code()) == code)
    }

    /// The code as a QUIC varint.
    pub fn varint(self) -> VarInt {
        VarInt::from_u32(self.code())
    }

    /// A short snake_case name, for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            CloseCode::NoError => "no_error",
            CloseCode::Shutdown => "shutdown",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::HelloTimeout => "hello_timeout",
            CloseCode::UnsupportedVersion => "unsupported_version",
            CloseCode::IdentityMismatch => "identity_mismatch",
            CloseCode::NoIdentity => "no_identity",
            CloseCode::UnknownSensor => "unknown_sensor",
            CloseCode::Revoked => "revoked",
            CloseCode::Replaced => "replaced",
            CloseCode::ServerBusy => "server_busy",
            CloseCode::UnknownController => "unknown_controller",
        }
    }

    /// Closes `connection` with this code and `reason` (truncated to 256 bytes at a character
    /// boundary).
    pub fn close(self, connection: &quinn::Connection, reason: &str) {
        connection.close(self.varint(), truncate(reason, 256).as_bytes());
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

/// Stream reset (RESET_STREAM) and stop (STOP_SENDING) codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamCode {
    /// Downlink: a newer RoadsideFrame was ready before this one was delivered.
    FrameSuperseded,
    /// Uplink: the message exceeded its size limit and was discarded.
    MessageTooLarge,
    /// Uplink: the client may not open this kind of stream; its content is discarded.
    NotAllowed,
}

impl StreamCode {
    /// The wire value.
    pub const fn code(self) -> u32 {
        match self {
            StreamCode::FrameSuperseded => 16,
            StreamCode::MessageTooLarge => 17,
            StreamCode::NotAllowed => 18,
        }
    }

    /// The code as a QUIC varint.
    pub fn varint(self) -> VarInt {
        VarInt::from_u32(self.code())
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use v2x_proto::wire::CloseCode as Wire;

    #[test]
    fn codes_match_the_schema() {
        let pairs = [
            (CloseCode::NoError, Wire::NoError),
            (CloseCode::Shutdown, Wire::Shutdown),
            (CloseCode::ProtocolError, Wire::ProtocolError),
            (CloseCode::HelloTimeout, Wire::HelloTimeout),
            (CloseCode::UnsupportedVersion, Wire::UnsupportedVersion),
            (CloseCode::IdentityMismatch, Wire::IdentityMismatch),
            (CloseCode::NoIdentity, Wire::NoIdentity),
            (CloseCode::UnknownSensor, Wire::UnknownSensor),
            (CloseCode::Revoked, Wire::Revoked),
            (CloseCode::Replaced, Wire::Replaced),
            (CloseCode::ServerBusy, Wire::ServerBusy),
            (CloseCode::UnknownController, Wire::UnknownController),
        ];
        assert_eq!(pairs.len(), CloseCode::ALL.len());
        for (ours, wire) in pairs {
            assert_eq!(i64::from(ours.code()), i64::from(wire as i32), "{ours:?}");
            assert_eq!(CloseCode::from_code(u64::from(ours.code())), Some(ours));
        }
        assert_eq!(StreamCode::FrameSuperseded.code() as i32, Wire::StreamCodeFrameSuperseded as i32);
        assert_eq!(StreamCode::MessageTooLarge.code() as i32, Wire::StreamCodeMessageTooLarge as i32);
        assert_eq!(StreamCode::NotAllowed.code() as i32, Wire::StreamCodeNotAllowed as i32);
        assert_eq!(CloseCode::from_code(99), None);
    }

    #[test]
    fn the_protocol_documents_every_close_code() {
        let protocol = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../PROTOCOL.md"));
        let table = &protocol[protocol.find("## 3. Error codes").expect("§3")..];
        for code in CloseCode::ALL {
            let row = format!("| {} | `{}` |", code.code(), code.name().to_uppercase());
            assert!(table.contains(&row), "PROTOCOL.md §3 has no row {row:?}");
        }
    }

    #[test]
    fn reasons_are_truncated_at_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("äää", 3), "ä");
    }
}
