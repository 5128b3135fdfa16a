//! Who gets a QUIC handshake. A handshake costs the RSU a connection's state and a TLS signature
//! until it finishes or times out, so Initials are admitted against two bounds (PROTOCOL §3.1):
//! one from an address not yet validated only while few handshakes are in progress (beyond
//! that it gets a stateless QUIC Retry, RFC 9000 §8.1: a real client comes straight back with
//! the token, a sender with a spoofed address never does), and none at all beyond the
//! handshake limit (the Initial is ignored; the client's retransmission tries again).

use crate::config::LimitsConfig;

/// What to do with a new connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Start the handshake.
    Accept,
    /// Answer with a stateless Retry: the client must prove it receives at its address.
    Retry,
    /// Refuse outright (QUIC `CONNECTION_REFUSED`): far over the connection limit.
    Refuse,
    /// Drop the Initial without an answer: too many handshakes in progress.
    Ignore,
}

/// The decision for an Initial from an address validated or not, with `handshakes` in progress
/// and `active` connection tasks (handshaking or in session).
pub(crate) fn admit(validated: bool, handshakes: usize, active: usize, limits: &LimitsConfig) -> Admission {
    if active >= 2 * limits.max_connections {
        // Far over the limit: refuse before spending a TLS handshake.
        Admission::Refuse
    } else if !validated && handshakes >= limits.max_unvalidated_handshakes {
        Admission::Retry
    } else if handshakes >= limits.max_handshakes {
        Admission::Ignore
    } else {
        Admission::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unvalidated_addresses_get_a_retry_beyond_their_share() {
        let limits = LimitsConfig { max_handshakes: 8, max_unvalidated_handshakes: 2, ..LimitsConfig::default() };
        assert_eq!(admit(false, 0, 0, &limits), Admission::Accept);
        assert_eq!(admit(false, 1, 5, &limits), Admission::Accept);
        assert_eq!(admit(false, 2, 5, &limits), Admission::Retry);
        // A validated client (it echoed a Retry token) gets a handshake up to the limit.
        assert_eq!(admit(true, 2, 5, &limits), Admission::Accept);
        assert_eq!(admit(true, 7, 5, &limits), Admission::Accept);
        assert_eq!(admit(true, 8, 5, &limits), Admission::Ignore);
        // Unvalidated over the handshake limit: still a Retry (stateless), never a slot.
        assert_eq!(admit(false, 8, 5, &limits), Admission::Retry);
        // Far over the connection limit nothing is admitted.
        let over = 2 * limits.max_connections;
        assert_eq!(admit(true, 0, over, &limits), Admission::Refuse);
        assert_eq!(admit(false, 0, over, &limits), Admission::Refuse);
    }

    #[test]
    fn zero_unvalidated_handshakes_means_always_retry() {
        let limits = LimitsConfig { max_unvalidated_handshakes: 0, ..LimitsConfig::default() };
        assert_eq!(admit(false, 0, 0, &limits), Admission::Retry);
        assert_eq!(admit(true, 0, 0, &limits), Admission::Accept);
    }
}
