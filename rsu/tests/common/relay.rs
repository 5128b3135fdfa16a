//! A userspace UDP relay on 127.0.0.1 that applies a [`LinkModel`] (delay, jitter, loss,
//! reordering, duplication, blackouts) to every datagram between a client and the daemon, each
//! direction with its own model. `tc netem` is not available on this machine's kernel; the relay
//! needs no privileges.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

pub use super::link::{Impairment, LinkModel, LinkTally};

/// A UDP relay on 127.0.0.1 between one client (whoever sends to [`Relay::addr`]) and a server,
/// through a [`LinkModel`] each way. Stops when dropped.
pub struct Relay {
    /// Where the client sends.
    pub addr: SocketAddr,
    /// Client to server.
    pub up: Arc<Mutex<LinkModel>>,
    /// Server to client.
    pub down: Arc<Mutex<LinkModel>>,
    /// Datagrams the relay could not forward (socket errors).
    pub send_errors: Arc<AtomicU64>,
    started: Instant,
    stop: CancellationToken,
}

impl Relay {
    /// Starts relaying to `server` through `impairment` in both directions (seeds `seed` up,
    /// `seed + 1` down).
    pub async fn start(server: SocketAddr, impairment: Impairment, seed: u64) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("relay front"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("relay back"));
        back.connect(server).await.expect("relay connect");
        let relay = Relay {
            addr: front.local_addr().expect("relay addr"),
            up: Arc::new(Mutex::new(LinkModel::new(impairment, seed))),
            down: Arc::new(Mutex::new(LinkModel::new(impairment, seed.wrapping_add(1)))),
            send_errors: Arc::default(),
            started: Instant::now(),
            stop: CancellationToken::new(),
        };
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        // Client to server.
        let (up, errors, c, stop) = (relay.up.clone(), relay.send_errors.clone(), client.clone(), relay.stop.clone());
        let (f, b, started) = (front.clone(), back.clone(), relay.started);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let (n, from) = tokio::select! {
                    () = stop.cancelled() => return,
                    r = f.recv_from(&mut buf) => match r { Ok(r) => r, Err(_) => return },
                };
                *c.lock().expect("client") = Some(from);
                let delays = up.lock().expect("model").deliveries(started.elapsed().as_secs_f64());
                for delay in delays {
                    let (b, errors, datagram) = (b.clone(), errors.clone(), buf[..n].to_vec());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                        if b.send(&datagram).await.is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        });
        // Server to client.
        let (down, errors, stop) = (relay.down.clone(), relay.send_errors.clone(), relay.stop.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = tokio::select! {
                    () = stop.cancelled() => return,
                    r = back.recv(&mut buf) => match r { Ok(n) => n, Err(_) => return },
                };
                let Some(to) = *client.lock().expect("client") else { continue };
                let delays = down.lock().expect("model").deliveries(started.elapsed().as_secs_f64());
                for delay in delays {
                    let (f, errors, datagram) = (front.clone(), errors.clone(), buf[..n].to_vec());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                        if f.send_to(&datagram, to).await.is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        });
        relay
    }

    /// Drops every datagram, both ways, for `duration` from now.
    pub fn blackout(&self, duration: Duration) {
        let now = self.started.elapsed().as_secs_f64();
        for model in [&self.up, &self.down] {
            model.lock().expect("model").blackout(now, duration.as_secs_f64());
        }
    }

    /// What each direction did so far: (up, down).
    pub fn tally(&self) -> (LinkTally, LinkTally) {
        (self.up.lock().expect("model").tally, self.down.lock().expect("model").tally)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
