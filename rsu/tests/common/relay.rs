//! A radio-like link for tests: a seeded, sans-IO fault model ([`LinkModel`]: delay, jitter,
//! loss, reordering, duplication, blackouts) and a userspace UDP relay on 127.0.0.1 that applies
//! it to every datagram between a client and the daemon ([`Relay`]), each direction with its own
//! model. `tc netem` is not available on this machine's kernel; the relay needs no privileges.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use v2x_proto::sample::SplitMix;

/// What the link does to every datagram of one direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Impairment {
    /// One-way delay [ms].
    pub delay_ms: f64,
    /// Uniform jitter on the delay, ± [ms] (reorders datagrams closer than twice this).
    pub jitter_ms: f64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is held back `reorder_ms` more, so the next ones overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered datagram [ms].
    pub reorder_ms: f64,
    /// Probability that a datagram arrives twice (the copy with a delay of its own).
    pub duplicate: f64,
}

/// What happened to the datagrams given to a [`LinkModel`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkTally {
    /// Datagrams offered to the link.
    pub offered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped in a blackout.
    pub blacked_out: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Delivered twice.
    pub duplicated: u64,
}

/// The fault model of one direction of a link: seeded, so the same seed and the same sequence of
/// send times give the same fates; it never reads a clock (times are arguments, [s] from any
/// origin the caller keeps).
pub struct LinkModel {
    impairment: Impairment,
    rng: SplitMix,
    /// Datagrams sent in `[from, to)` [s] are dropped.
    blackouts: Vec<(f64, f64)>,
    /// What happened so far.
    pub tally: LinkTally,
}

impl LinkModel {
    /// A model of `impairment` drawing from `seed`.
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        LinkModel { impairment, rng: SplitMix(seed), blackouts: Vec::new(), tally: LinkTally::default() }
    }

    /// Drops every datagram sent from `from_s` for `duration_s` [s].
    pub fn blackout(&mut self, from_s: f64, duration_s: f64) {
        self.blackouts.push((from_s, from_s + duration_s));
    }

    /// The delays [s] after which a datagram sent at `now_s` arrives: none when it is lost, two
    /// when it is duplicated.
    pub fn deliveries(&mut self, now_s: f64) -> Vec<f64> {
        let imp = self.impairment;
        self.tally.offered += 1;
        // Every draw is made whatever the outcome, so one fate does not shift the next ones.
        let (lost, reorder, duplicate) = (self.rng.range(0.0, 1.0), self.rng.range(0.0, 1.0), self.rng.range(0.0, 1.0));
        let (jitter, copy_jitter) =
            (self.rng.range(-imp.jitter_ms, imp.jitter_ms), self.rng.range(-imp.jitter_ms, imp.jitter_ms));
        if self.blackouts.iter().any(|&(from, to)| (from..to).contains(&now_s)) {
            self.tally.blacked_out += 1;
            return Vec::new();
        }
        if lost < imp.loss {
            self.tally.lost += 1;
            return Vec::new();
        }
        let mut delay_ms = imp.delay_ms + jitter;
        if reorder < imp.reorder {
            self.tally.reordered += 1;
            delay_ms += imp.reorder_ms;
        }
        let mut out = vec![delay_ms.max(0.0) / 1e3];
        if duplicate < imp.duplicate {
            self.tally.duplicated += 1;
            out.push((imp.delay_ms + copy_jitter).max(0.0) / 1e3);
        }
        out
    }
}

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
