//! The NTCIP 1202 SPaT adapter of the daemon: one UDP socket per controller configured with
//! `ntcip_listen`, whose blobs ([`crate::ntcip`]) become that controller's states in the event
//! loop, as if it had sent them over QUIC. A blob from another address than `ntcip_source`
//! (`unknown_controller`), one that does not parse (`malformed`) or contradicts itself
//! (`inconsistent`), one with no signal group in use or more than the protocol's 24 (`invalid`), or one over `signals.max_states_per_s` (`rate_limited`) is dropped, counted
//! and logged; the socket keeps listening.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::connection::{TokenBucket, forward};
use super::stats::Reject;
use super::{Event, Shared};
use crate::config::ControllerConfig;
use crate::ntcip::{BLOB_BYTES, NtcipError, parse};
use crate::recorder::wall_now;
use v2x_proto::convert::MAX_MOVEMENTS;

/// A bound NTCIP socket of one controller.
pub(super) struct Listener {
    socket: UdpSocket,
    controller: ControllerConfig,
    shared: Arc<Shared>,
}

impl Listener {
    /// Binds `controller.ntcip_listen` (the caller only asks for controllers that have one).
    pub(super) async fn bind(controller: &ControllerConfig, shared: Arc<Shared>) -> anyhow::Result<Listener> {
        let addr = controller.ntcip_listen.context("no ntcip_listen address")?;
        let socket = UdpSocket::bind(addr).await.with_context(|| format!("binding UDP {addr}"))?;
        let local = socket.local_addr().context("local address")?;
        // The address line is for people and for tests that bind port 0.
        println!("rsu serve NTCIP SPaT for {} on {local}", controller.id);
        Ok(Listener { socket, controller: controller.clone(), shared })
    }

    /// Receives blobs until `shutdown`.
    pub(super) async fn run(self, shutdown: CancellationToken) {
        let Listener { socket, controller, shared } = self;
        let stats = &shared.stats;
        let from_controller = format!("ntcip/{}", controller.id);
        let mut bucket = TokenBucket::new(shared.max_signal_states_per_s);
        // One byte more than a blob: a longer datagram is seen as too long, not cut to fit.
        let mut buf = [0u8; BLOB_BYTES + 1];
        loop {
            let (len, source): (usize, SocketAddr) = tokio::select! {
                () = shutdown.cancelled() => return,
                received = socket.recv_from(&mut buf) => match received {
                    Ok(r) => r,
                    Err(e) => {
                        // ICMP errors and the like: the socket is still usable.
                        tracing::debug!(controller = %controller.id, "NTCIP socket: {e}");
                        continue;
                    }
                },
            };
            if controller.ntcip_source.is_some_and(|ip| ip != source.ip()) {
                stats.reject(
                    Reject::UnknownController,
                    source,
                    format_args!("NTCIP blob for {} from an address that is not its controller's", controller.id),
                );
                continue;
            }
            if !bucket.take() {
                stats.reject(Reject::RateLimited, &from_controller, "NTCIP blob rate limit exceeded");
                continue;
            }
            let arrival = wall_now();
            let bytes = buf.get(..len).unwrap_or_default();
            match parse(bytes, arrival) {
                Ok(blob) if blob.movements.is_empty() || blob.movements.len() > MAX_MOVEMENTS => {
                    stats.reject(
                        Reject::Invalid,
                        &from_controller,
                        format_args!(
                            "NTCIP blob with {} signal groups in use (1..={MAX_MOVEMENTS})",
                            blob.movements.len()
                        ),
                    );
                }
                Ok(blob) => {
                    let state = blob.into_state(&controller.id, arrival);
                    forward(&shared, Event::Signal { state, received: arrival }, &from_controller);
                }
                Err(e @ NtcipError::Malformed(_)) => stats.reject(Reject::Malformed, &from_controller, e),
                Err(e @ NtcipError::Inconsistent(_)) => stats.reject(Reject::Inconsistent, &from_controller, e),
            }
        }
    }
}
