//! A handshake flood: QUIC Initial packets, each a complete ClientHello made by quinn's sans-IO
//! client, sent raw over UDP from sockets that never read an answer, as a sender with spoofed
//! source addresses does. Every Initial asks the RSU for a new handshake that can never finish.
//! A flood that answers Retries ([`FloodPlan::answer_retries`]) is a sender at a real address:
//! it sends each Initial again with the RSU's token, then goes silent.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
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
    /// Source addresses (UDP sockets on `source_ip`) the Initials are spread over.
    pub sources: usize,
    /// The IP address the sockets bind (any of 127.0.0.0/8).
    pub source_ip: [u8; 4],
    /// Answer each Retry with the Initial again, carrying the token (then say nothing more).
    pub answer_retries: bool,
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
        let ip = IpAddr::from(plan.source_ip);
        let sockets: Vec<UdpSocket> = (0..plan.sources.max(1))
            .map(|_| {
                let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("flood socket");
                socket.set_nonblocking(true).expect("non-blocking");
                socket
            })
            .collect();
        let (count, halt) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut endpoint = quinn_proto::Endpoint::new(Arc::default(), None, false, None);
            let started = Instant::now();
            let mut buf = Vec::with_capacity(1500);
            // Connections waiting for a Retry, and the socket each sends from.
            let mut waiting: HashMap<quinn_proto::ConnectionHandle, (quinn_proto::Connection, usize)> = HashMap::new();
            let mut datagram = [0u8; 1500];
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
                let due = started + Duration::from_secs_f64(due_s);
                loop {
                    if plan.answer_retries {
                        answer_retries(&sockets, server, &mut endpoint, &mut waiting, &mut datagram, &mut buf, &count);
                    }
                    let wait = due.saturating_duration_since(Instant::now());
                    if wait.is_zero() {
                        break;
                    }
                    std::thread::sleep(wait.min(Duration::from_millis(1)));
                }
                let now = Instant::now();
                let Ok((handle, mut connection)) = endpoint.connect(now, client.clone(), server, "localhost") else {
                    break;
                };
                buf.clear();
                let Some(transmit) = connection.poll_transmit(now, 1, &mut buf) else { continue };
                let socket = i % sockets.len();
                if sockets[socket].send_to(&buf[..transmit.size], server).is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                if plan.answer_retries {
                    waiting.insert(handle, (connection, socket));
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

/// Reads what the RSU sent the flood's sockets: each Retry goes to its connection, which sends
/// its Initial again with the token from the same socket; then the connection is forgotten (it
/// never answers again). Everything else is dropped.
fn answer_retries(
    sockets: &[UdpSocket],
    server: SocketAddr,
    endpoint: &mut quinn_proto::Endpoint,
    waiting: &mut HashMap<quinn_proto::ConnectionHandle, (quinn_proto::Connection, usize)>,
    datagram: &mut [u8],
    buf: &mut Vec<u8>,
    count: &AtomicU64,
) {
    for socket in sockets {
        while let Ok(n) = socket.recv(datagram) {
            // A long-header Retry packet (QUIC v1: form, fixed bit, type 3).
            if n == 0 || datagram[0] & 0xF0 != 0xF0 {
                continue;
            }
            let now = Instant::now();
            buf.clear();
            let event = endpoint.handle(now, server, None, None, bytes::BytesMut::from(&datagram[..n]), buf);
            let Some(quinn_proto::DatagramEvent::ConnectionEvent(handle, event)) = event else { continue };
            let Some((mut connection, from)) = waiting.remove(&handle) else { continue };
            connection.handle_event(event);
            buf.clear();
            if let Some(transmit) = connection.poll_transmit(now, 1, buf)
                && sockets[from].send_to(&buf[..transmit.size], server).is_ok()
            {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
