//! The threads that drive QUIC for the daemon. quinn's endpoint and connection drivers (packet
//! I/O, encryption, acknowledgments, loss recovery, timers) run on a runtime of their own, apart
//! from the fusion loop and the per-vehicle downlink tasks. A frame for 100 vehicles is 100
//! streams to packetise and encrypt: on one shared runtime the downlink tasks of the last
//! vehicles would queue behind the drivers sending the first vehicles' packets, and the time from
//! a frame's newest input to its hand-over to QUIC (`rsu_added_latency_seconds`) would grow with
//! the number of vehicles.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// The QUIC driver runtime (`limits.quic_threads` threads), or none (0: the caller's runtime).
pub(crate) struct QuicThreads {
    runtime: Option<tokio::runtime::Runtime>,
}

impl QuicThreads {
    /// Starts `threads` worker threads for QUIC (none for 0).
    pub(crate) fn start(threads: usize) -> io::Result<Self> {
        let runtime = match threads {
            0 => None,
            n => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("rsu-quic")
                    .enable_all()
                    .build()?,
            ),
        };
        Ok(QuicThreads { runtime })
    }

    /// The quinn runtime to build the endpoint with: drivers on the QUIC threads, or on the
    /// current tokio runtime.
    pub(crate) fn quinn_runtime(&self) -> Arc<dyn quinn::Runtime> {
        match &self.runtime {
            Some(runtime) => Arc::new(OnQuicThreads(runtime.handle().clone())),
            None => Arc::new(quinn::TokioRuntime),
        }
    }
}

impl Drop for QuicThreads {
    /// Stops the threads without waiting (the daemon closed its connections before).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// quinn's tokio runtime with every driver spawned, and every timer and socket registered, on
/// the QUIC threads' runtime.
#[derive(Debug)]
struct OnQuicThreads(tokio::runtime::Handle);

impl quinn::Runtime for OnQuicThreads {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        let _on = self.0.enter();
        quinn::TokioRuntime.new_timer(at)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.0.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        let _on = self.0.enter();
        quinn::TokioRuntime.wrap_udp_socket(socket)
    }

    fn now(&self) -> Instant {
        quinn::TokioRuntime.now()
    }
}
