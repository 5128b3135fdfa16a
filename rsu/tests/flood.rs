//! Handshake floods: hundreds of QUIC Initials a second, from addresses that never answer
//! (spoofed, as far as the RSU can tell) or from one that answers each Retry and then goes
//! silent, and honest vehicles connecting at the same time (PROTOCOL §1.3).

mod common;

use std::time::{Duration, Instant};

use common::Fixture;
use common::flood::{Flood, FloodPlan};
use rsu::config::{LimitsConfig, ServeConfig};
use rsu::serve::stats::{Reject, Stats};
use rsu::serve::{Outputs, Server};
use tokio_util::sync::CancellationToken;
use v2x_link::client::VehicleClient;

/// 600 Initials in a second, then 100 a second, from 64 ports of 127.0.0.1, never answering: the
/// flood of issue 19.
const SPOOFED: FloodPlan = FloodPlan {
    burst: 600,
    burst_s: 1.0,
    trickle_per_s: 100.0,
    sources: 64,
    source_ip: [127, 0, 0, 1],
    answer_retries: false,
};

/// The same from 127.0.0.2, answering every Retry with the token (then silent).
const ANSWERING: FloodPlan = FloodPlan { source_ip: [127, 0, 0, 2], answer_retries: true, ..SPOOFED };

/// What an honest vehicle saw during a flood.
struct Outcome {
    /// Connecting 0.2 s after the burst: how long it took (`None`: not within 20 s), and the
    /// refusals on the way.
    took: Option<Duration>,
    refusals: Vec<String>,
    /// Another vehicle connecting after the flood's first handshakes timed out.
    later: Option<Duration>,
    sent: u64,
    stats: std::sync::Arc<Stats>,
}

/// Floods a daemon (its configuration's `[limits]` with `limits` added) with `plan` while a
/// vehicle connects, trying again at once whenever it is refused, for up to 20 s; then, past the
/// handshake timeout, another vehicle connects once.
async fn flood_while_connecting(plan: FloodPlan, limits: &str) -> Outcome {
    let fixture = Fixture::new(limits);
    let loaded = ServeConfig::load(&fixture.config).expect("config");
    let handshake_timeout_s = loaded.config.limits.handshake_timeout_s;
    let server = Server::bind(loaded).expect("bind");
    let addr = server.local_addr().expect("addr");
    let stats = server.stats();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(server.run(Outputs::default(), shutdown.clone()));

    let flood = Flood::start(addr, fixture.vehicle(addr, "veh-0002").quic, plan);
    tokio::time::sleep(Duration::from_secs_f64(plan.burst_s + 0.2)).await;
    let settings = fixture.vehicle(addr, "veh-0001");
    let started = Instant::now();
    let mut refusals = Vec::new();
    let vehicle = loop {
        match VehicleClient::connect(&settings, None).await {
            Ok(v) => break Some(v),
            Err(e) => refusals.push(format!("{:.1} s: {e}", started.elapsed().as_secs_f64())),
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = vehicle.as_ref().map(|_| started.elapsed());
    // The flood goes on past the handshake timeout: the handshakes it held are abandoned.
    tokio::time::sleep(Duration::from_secs_f64(handshake_timeout_s + 0.5)).await;
    let second = Instant::now();
    let later =
        VehicleClient::connect(&fixture.vehicle(addr, "veh-0003"), None).await.ok().map(|v| (v, second.elapsed()));
    let sent = flood.stop();
    let outcome = Outcome { took, refusals, later: later.as_ref().map(|(_, t)| *t), sent, stats: stats.clone() };
    println!(
        "flood of {sent} Initials ({plan:?}): the honest vehicle got in after {:?} (None: not in 20 s), refused {} \
         times {:?}; another {:.1} s later after {:?}; rejections {:?}, at most {} handshakes at once",
        took,
        outcome.refusals.len(),
        &outcome.refusals[..outcome.refusals.len().min(3)],
        handshake_timeout_s + 0.5,
        outcome.later,
        stats.rejections(),
        Stats::get(&stats.handshakes_peak),
    );
    if let Some((v, _)) = later {
        v.close().await;
    }
    if let Some(v) = vehicle {
        v.close().await;
    }
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon run");
    outcome
}

/// The honest vehicle got in during the flood, a second one after the flood's handshakes timed
/// out, each within 3 s, and no flood Initial became a session.
fn both_vehicles_got_in(out: &Outcome) {
    let took = out.took.expect("the honest vehicle got in");
    assert!(took < Duration::from_secs(3), "the honest vehicle waited {took:?}: {:?}", out.refusals);
    let later = out.later.expect("a vehicle gets in after the flood's handshakes timed out");
    assert!(later < Duration::from_secs(3), "the second vehicle waited {later:?}");
    assert_eq!(Stats::get(&out.stats.sessions), 2, "the two vehicles, and no flood Initial, became sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_vehicle_gets_in_during_a_spoofed_handshake_flood() {
    let out = flood_while_connecting(SPOOFED, "").await;
    let stats = &out.stats;
    both_vehicles_got_in(&out);
    // The flood never held more than the unvalidated share of handshakes (the honest vehicle's
    // may come on top).
    let limits = LimitsConfig::default();
    let peak = Stats::get(&stats.handshakes_peak);
    assert!(peak <= limits.max_unvalidated_handshakes as u64 + 1, "{peak} handshakes at once");
    assert!(stats.rejected(Reject::Retry) > out.sent / 2, "most of the flood was answered with a Retry");
    assert!(stats.rejected(Reject::HandshakeTimeout) >= 1, "the flood's handshakes were abandoned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_vehicle_gets_in_during_a_flood_that_answers_retries() {
    let out = flood_while_connecting(ANSWERING, "").await;
    let stats = &out.stats;
    both_vehicles_got_in(&out);
    // The flood's validated address held its share, the unvalidated ones theirs.
    let limits = LimitsConfig::default();
    let peak = Stats::get(&stats.handshakes_peak);
    let bound = (limits.max_unvalidated_handshakes + limits.max_handshakes_per_ip + 2) as u64;
    assert!(peak <= bound, "{peak} handshakes at once (bound {bound})");
    assert!(stats.rejected(Reject::HandshakeLimit) > 0, "the flood's address was held to its share");
}

/// The flood that answers Retries without the per-address limit: it fills every handshake slot
/// (for the figures in BENCHMARKS.md: `cargo test --workspace --test flood -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of the daemon without the per-address limit"]
async fn a_flood_that_answers_retries_without_the_per_address_limit() {
    flood_while_connecting(ANSWERING, "max_handshakes_per_ip = 64\n").await;
}
