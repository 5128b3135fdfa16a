//! A handshake flood: hundreds of QUIC Initials from addresses that never answer (spoofed, as far
//! as the RSU can tell), and an honest vehicle connecting at the same time.

mod common;

use std::time::{Duration, Instant};

use common::Fixture;
use common::flood::{Flood, FloodPlan};
use rsu::config::ServeConfig;
use rsu::serve::stats::{Reject, Stats};
use rsu::serve::{Outputs, Server};
use tokio_util::sync::CancellationToken;
use v2x_link::client::VehicleClient;

/// 600 Initials in a second, then 100 a second: the flood of issue 19.
const PLAN: FloodPlan = FloodPlan { burst: 600, burst_s: 1.0, trickle_per_s: 100.0, sources: 64 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_vehicle_gets_in_during_a_handshake_flood() {
    let fixture = Fixture::new("");
    let server = Server::bind(ServeConfig::load(&fixture.config).expect("config")).expect("bind");
    let addr = server.local_addr().expect("addr");
    let stats = server.stats();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(server.run(Outputs::default(), shutdown.clone()));

    let flood = Flood::start(addr, fixture.vehicle(addr, "veh-0002").quic, PLAN);
    tokio::time::sleep(Duration::from_secs_f64(PLAN.burst_s + 0.2)).await;
    // The honest vehicle tries again at once whenever it is refused, as long as it takes.
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
    let took = started.elapsed();
    // The flood goes on past the handshake timeout: the handshakes it held are abandoned, and
    // another vehicle still gets in at once.
    let limits = rsu::config::LimitsConfig::default();
    tokio::time::sleep(Duration::from_secs_f64(limits.handshake_timeout_s + 0.5)).await;
    let later = Instant::now();
    let second = VehicleClient::connect(&fixture.vehicle(addr, "veh-0003"), None).await;
    let later = later.elapsed();
    let sent = flood.stop();
    println!(
        "flood of {sent} Initials: the honest vehicle got in after {:.3} s, refused {} times {:?}",
        took.as_secs_f64(),
        refusals.len(),
        &refusals[..refusals.len().min(3)]
    );
    println!(
        "rejections: {:?}; a second vehicle {:.1} s later got in after {:.3} s",
        stats.rejections(),
        limits.handshake_timeout_s + 0.5,
        later.as_secs_f64()
    );
    let vehicle = vehicle.expect("the honest vehicle got in");
    assert!(
        took < Duration::from_secs(3),
        "the honest vehicle waited {took:?}: {:?}",
        &refusals[..refusals.len().min(3)]
    );
    assert_eq!(Stats::get(&stats.sessions), 2, "the two vehicles, and no flood Initial, became sessions");
    // The flood's spoofed addresses never held more than their share of handshakes (the honest
    // vehicle's may come on top).
    let peak = Stats::get(&stats.handshakes_peak);
    assert!(peak <= limits.max_unvalidated_handshakes as u64 + 1, "{peak} handshakes at once");
    assert!(stats.rejected(Reject::Retry) > sent / 2, "most of the flood was answered with a Retry");
    assert!(stats.rejected(Reject::HandshakeTimeout) >= 1, "the flood's handshakes were abandoned");
    let second = second.expect("a vehicle gets in after the flood's handshakes timed out");
    assert!(later < Duration::from_secs(3), "the second vehicle waited {later:?}");
    second.close().await;
    vehicle.close().await;
    shutdown.cancel();
    daemon.await.expect("daemon task").expect("daemon run");
}
