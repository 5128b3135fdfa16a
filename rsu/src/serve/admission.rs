//! Who gets a QUIC handshake. A handshake costs the RSU a connection's state and a TLS signature
//! until it finishes or times out, so Initials are admitted against two bounds (PROTOCOL §1.3):
//! one from an address not yet validated only while few handshakes are in progress (beyond
//! that it gets a stateless QUIC Retry, RFC 9000 §8.1: a real client comes straight back with
//! the token, a sender with a spoofed address never does), and none at all beyond the
//! handshake limit, in total or from one validated IP address (the Initial is ignored; the
//! client's retransmission tries again). The per-address limit is what keeps a sender that does
//! receive at its address, and so passes the Retry, from holding every slot; it counts validated
//! handshakes only, so a spoofer cannot use it to shut out the address it spoofs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

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
/// (`from_ip` of them validated ones from the same IP address) and `active` connection tasks
/// (handshaking or in session).
pub(crate) fn admit(
    validated: bool,
    handshakes: usize,
    from_ip: usize,
    active: usize,
    limits: &LimitsConfig,
) -> Admission {
    if active >= 2 * limits.max_connections {
        // Far over the limit: refuse before spending a TLS handshake.
        Admission::Refuse
    } else if !validated && handshakes >= limits.max_unvalidated_handshakes {
        Admission::Retry
    } else if handshakes >= limits.max_handshakes || (validated && from_ip >= limits.max_handshakes_per_ip) {
        Admission::Ignore
    } else {
        Admission::Accept
    }
}

/// Handshakes in progress, in total and by validated client IP address.
#[derive(Debug, Default)]
pub(crate) struct Handshakes(Mutex<Count>);

#[derive(Debug, Default)]
struct Count {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl Handshakes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Count> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Handshakes in progress: in total, and from `ip` validated.
    pub(crate) fn count(&self, ip: IpAddr) -> (usize, usize) {
        let count = self.lock();
        (count.total, count.by_ip.get(&ip).copied().unwrap_or(0))
    }

    /// A handshake begins, from `validated_ip` if its address was validated; returns how many
    /// are in progress now.
    pub(crate) fn begin(&self, validated_ip: Option<IpAddr>) -> usize {
        let mut count = self.lock();
        count.total += 1;
        if let Some(ip) = validated_ip {
            *count.by_ip.entry(ip).or_default() += 1;
        }
        count.total
    }

    /// A handshake begun with `validated_ip` ended; returns how many are in progress now.
    pub(crate) fn end(&self, validated_ip: Option<IpAddr>) -> usize {
        let mut count = self.lock();
        count.total = count.total.saturating_sub(1);
        if let Some(ip) = validated_ip
            && let Some(n) = count.by_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                count.by_ip.remove(&ip);
            }
        }
        count.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unvalidated_addresses_get_a_retry_beyond_their_share() {
        let limits = LimitsConfig {
            max_handshakes: 8,
            max_unvalidated_handshakes: 2,
            max_handshakes_per_ip: 4,
            ..LimitsConfig::default()
        };
        assert_eq!(admit(false, 0, 0, 0, &limits), Admission::Accept);
        assert_eq!(admit(false, 1, 1, 5, &limits), Admission::Accept);
        assert_eq!(admit(false, 2, 0, 5, &limits), Admission::Retry);
        // A validated client (it echoed a Retry token) gets a handshake up to the limits.
        assert_eq!(admit(true, 2, 0, 5, &limits), Admission::Accept);
        assert_eq!(admit(true, 7, 3, 5, &limits), Admission::Accept);
        assert_eq!(admit(true, 8, 0, 5, &limits), Admission::Ignore);
        assert_eq!(admit(true, 5, 4, 5, &limits), Admission::Ignore, "four from this address already");
        // Unvalidated ones are not held to the address's share (its address may be spoofed).
        assert_eq!(admit(false, 1, 4, 5, &limits), Admission::Accept);
        // Unvalidated over the handshake limit: still a Retry (stateless), never a slot.
        assert_eq!(admit(false, 8, 0, 5, &limits), Admission::Retry);
        // Far over the connection limit nothing is admitted.
        let over = 2 * limits.max_connections;
        assert_eq!(admit(true, 0, 0, over, &limits), Admission::Refuse);
        assert_eq!(admit(false, 0, 0, over, &limits), Admission::Refuse);
    }

    #[test]
    fn zero_unvalidated_handshakes_means_always_retry() {
        let limits = LimitsConfig { max_unvalidated_handshakes: 0, ..LimitsConfig::default() };
        assert_eq!(admit(false, 0, 0, 0, &limits), Admission::Retry);
        assert_eq!(admit(true, 0, 0, 0, &limits), Admission::Accept);
    }

    #[test]
    fn handshakes_are_counted_by_address() {
        let handshakes = Handshakes::default();
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        assert_eq!(handshakes.begin(Some(a)), 1);
        assert_eq!(handshakes.begin(Some(a)), 2);
        assert_eq!(handshakes.begin(Some(b)), 3);
        assert_eq!(handshakes.begin(None), 4, "an unvalidated one counts in the total only");
        assert_eq!(handshakes.count(a), (4, 2));
        assert_eq!(handshakes.end(Some(a)), 3);
        assert_eq!(handshakes.end(Some(a)), 2);
        assert_eq!(handshakes.count(a), (2, 0));
        assert!(handshakes.lock().by_ip.len() == 1, "an address with none left is forgotten");
        assert_eq!(handshakes.end(None), 1);
        assert_eq!(handshakes.end(Some(b)), 0);
    }
}
