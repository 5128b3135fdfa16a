//! The downlink through a radio-like link: a UDP relay on 127.0.0.1 between one vehicle and the
//! daemon (in-process, real QUIC and TLS) delays every datagram by 50 ms (one way), with jitter
//! and loss in the harder cases. The RSU's frames must still arrive: a frame in flight is given
//! up only at its delivery deadline, never because a newer frame is ready (a round trip of
//! 100 ms is as long as the frame interval). And every frame is accounted for: the daemon's
//! `sent` equals `delivered` plus each reason a frame was not delivered, and the vehicle
//! received what was delivered.

mod common;

use std::time::Duration;

use common::relay::{Impairment, Relay};
use common::{Fixture, LIDAR};
use rsu::config::ServeConfig;
use rsu::serve::stats::{Stats, Undelivered};
use rsu::serve::{Outputs, Server};
use tokio_util::sync::CancellationToken;
use v2x_link::client::{SensorClient, VehicleClient};
use v2x_proto::domain::Subscription;

/// What one run through the relay counted, on both ends.
#[derive(Debug)]
struct Tally {
    received: u64,
    sent: u64,
    delivered: u64,
    undelivered: Vec<(Undelivered, u64)>,
}

/// Serves one vehicle through `link` for `seconds` while a lidar (connected directly) sends
/// frames at 10 Hz, then closes the vehicle and the daemon and returns the counts.
async fn through(link: Impairment, seconds: f64) -> Tally {
    let fixture = Fixture::new("");
    let loaded = ServeConfig::load(&fixture.config).expect("config");
    let server = Server::bind(loaded).expect("bind");
    let addr = server.local_addr().expect("addr");
    let stats = server.stats();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(server.run(Outputs::default(), shutdown.clone()));

    let stop = CancellationToken::new();
    let relay = Relay::start(addr, link, 7).await;
    let sensor = SensorClient::connect(&fixture.sensor(addr, LIDAR)).await.expect("sensor");
    let feeding = common::feed_two_cars(sensor, stop.clone());
    let mut vehicle = VehicleClient::connect(&fixture.vehicle(relay.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects through the relay");
    let mut received = 0u64;
    let _ = tokio::time::timeout(Duration::from_secs_f64(seconds), async {
        while vehicle.next_frame().await.is_ok() {
            received += 1;
        }
    })
    .await;
    // Stop making frames, let the last ones in flight arrive, then read them.
    stop.cancel();
    feeding.await.expect("feeder");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while vehicle.next_frame().await.is_ok() {
            received += 1;
        }
    })
    .await;
    daemon.await.expect("daemon task").expect("daemon run");
    Tally {
        received,
        sent: Stats::get(&stats.frames_sent),
        delivered: Stats::get(&stats.frames_delivered),
        undelivered: Undelivered::ALL.iter().map(|r| (*r, stats.undelivered_count(*r))).collect(),
    }
}

fn check(name: &str, link: Impairment, tally: &Tally, min_delivered: f64) {
    let undelivered_sent: u64 =
        tally.undelivered.iter().filter(|(r, _)| *r != Undelivered::Superseded).map(|(_, n)| n).sum();
    println!(
        "{name} ({link:?}): sent {}, delivered {}, received by the vehicle {}, not delivered {:?}",
        tally.sent, tally.delivered, tally.received, tally.undelivered
    );
    assert!(tally.sent > 20, "frames flow through the relay: {tally:?}");
    assert_eq!(tally.sent, tally.delivered + undelivered_sent, "every frame sent is accounted for: {tally:?}");
    assert!(tally.received <= tally.sent, "{tally:?}");
    let share = tally.received as f64 / tally.sent as f64;
    assert!(share >= min_delivered, "{name}: only {:.1} % of the frames sent arrived: {tally:?}", 100.0 * share);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_survive_a_link_whose_round_trip_is_the_frame_interval() {
    let link = Impairment { delay_ms: 50.0, ..Impairment::default() };
    let tally = through(link, 3.0).await;
    check("50 ms", link, &tally, 0.97);
    let expired = tally.undelivered.iter().find(|(r, _)| *r == Undelivered::Expired).map_or(0, |(_, n)| *n);
    assert_eq!(expired, 0, "no frame waits half a second on a 100 ms round trip: {tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_survive_jitter_and_loss() {
    let link = Impairment { delay_ms: 50.0, jitter_ms: 20.0, ..Impairment::default() };
    check("50 ± 20 ms", link, &through(link, 3.0).await, 0.95);
    let link = Impairment { delay_ms: 50.0, jitter_ms: 20.0, loss: 0.1, ..Impairment::default() };
    check("50 ± 20 ms, 10 % loss", link, &through(link, 3.0).await, 0.85);
}
