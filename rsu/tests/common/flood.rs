//! A handshake flood: QUIC Initial packets, each a complete ClientHello made by quinn's sans-IO
//! client, sent raw over UDP from sockets that never read an answer, as a sender with spoofed
//! source addresses does. Every Initial asks the RSU for a new handshake that can never finish.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many Initials, how fast, from how many source addresses.
#[derive(Clone, Copy, Debug)]
pub struct FloodPlan {
    /// Initials sent first, evenly over `burst_s`.
    pub burst: usize,
    /// How long the burst takes [s].
    pub burst_s: f64,
    /// After the burst, Initials per second until stopped (0: none).
    pub trickle_per_s: f64,
    /// Source addresses (UDP sockets on 127.0.0.1) the Initials are spread over.
    pub sources: usize,
}

/// A running flood; [`Flood::stop`] ends it.
pub struct Flood {
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    /// Starts flooding `server` with Initials made from `client` (any client configuration: the
    /// handshake never gets as far as the certificates) on a thread of its own.
    pub fn start(server: SocketAddr, client: quinn::ClientConfig, plan: FloodPlan) -> Flood {
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Vec<UdpSocket> =
            (0..plan.sources.max(1)).map(|_| UdpSocket::bind("127.0.0.1:0").expect("flood socket")).collect();
        let (count, halt) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut endpoint = quinn_proto::Endpoint::new(Arc::default(), None, false, None);
            let started = Instant::now();
            let mut buf = Vec::with_capacity(1500);
            for i in 0usize.. {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                // When Initial `i` is due.
                let due_s = if i < plan.burst {
                    i as f64 * plan.burst_s / plan.burst as f64
                } else if plan.trickle_per_s > 0.0 {
                    plan.burst_s + (i - plan.burst) as f64 / plan.trickle_per_s
                } else {
                    break;
                };
                let wait = Duration::from_secs_f64(due_s).saturating_sub(started.elapsed());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                let now = Instant::now();
                let Ok((_, mut connection)) = endpoint.connect(now, client.clone(), server, "localhost") else {
                    break;
                };
                buf.clear();
                let Some(transmit) = connection.poll_transmit(now, 1, &mut buf) else { continue };
                if sockets[i % sockets.len()].send_to(&buf[..transmit.size], server).is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Flood { sent, stop, thread: Some(thread) }
    }

    /// Initials sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops the flood and returns how many Initials it sent.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.sent()
    }
}
