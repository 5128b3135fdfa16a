//! Signals end to end, the daemon in-process on 127.0.0.1 (PROTOCOL §2.8): a signal controller
//! sends its state over QUIC and another pushes NTCIP 1202 SPaT blobs over UDP; a vehicle of
//! protocol version 3 receives each intersection's SPaT as datagrams about ten times a second
//! with exactly the phases and end times sent; malformed, inconsistent and unknown-controller
//! inputs are dropped and counted by reason while the rest keeps working; the recording holds
//! the controllers' states and the SPaT.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Fixture, Running, now};
use rsu::ntcip::{BlobBuilder, Colour};
use rsu::serve::stats::{Reject, Stats};
use rsu_fusion::Timestamp;
use tokio_util::sync::CancellationToken;
use v2x_link::CloseCode;
use v2x_link::client::ClientSettings;
use v2x_link::client::{ClientError, SignalControllerClient, VehicleClient};
use v2x_proto::domain::{
    ClientHello, MovementPhase, MovementState, Role, ServerHello, SignalControllerState, Spat, Subscription,
};
use v2x_replays::{ReplayBody, ReplayReader};

/// Generous bound for anything that should happen within a few SPaT periods on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Signal group 2 green since 3 s before `t0`, ending 5..=30 s after it (likely 12 s); group 4
/// red, ending 5.5..=30.5 s after `t0`.
fn movements(t0: Timestamp) -> Vec<MovementState> {
    vec![
        MovementState {
            signal_group: 2,
            phase: MovementPhase::ProtectedMovementAllowed,
            start: Some(t0.add_secs(-3.0)),
            min_end: t0.add_secs(5.0),
            max_end: Some(t0.add_secs(30.0)),
            likely: Some(t0.add_secs(12.0)),
        },
        MovementState {
            signal_group: 4,
            phase: MovementPhase::StopAndRemain,
            start: None,
            min_end: t0.add_secs(5.5),
            max_end: Some(t0.add_secs(30.5)),
            likely: None,
        },
    ]
}

/// The next SPaT of `intersection` the vehicle receives.
async fn next_spat_of(vehicle: &VehicleClient, intersection: u16) -> Spat {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let spat = vehicle.next_spat().await.expect("a SPaT datagram");
            if spat.intersection_id == intersection {
                return spat;
            }
        }
    })
    .await
    .expect("a SPaT of the intersection")
}

/// A session opened by hand with `versions` in its hello (our clients always offer every
/// version): the connection with its control stream and the server's hello, or the close code
/// the RSU refused it with.
async fn session_speaking(
    settings: &ClientSettings,
    role: Role,
    versions: Vec<u32>,
) -> Result<(quinn::Connection, (quinn::SendStream, quinn::RecvStream), ServerHello), Option<u64>> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let connecting = endpoint.connect_with(settings.quic.clone(), settings.server_addr, "localhost").expect("connect");
    let connection = connecting.await.expect("handshake");
    let code = |c: &quinn::Connection| match c.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
        _ => None,
    };
    let (mut send, mut recv) = connection.open_bi().await.expect("control stream");
    let hello = ClientHello { versions, role, id: settings.identity.id.clone(), subscription: None };
    v2x_link::framing::write_message(&mut send, &hello).await.expect("hello");
    match v2x_link::framing::read_message(&mut recv, 65536).await {
        Ok(Some(bytes)) => Ok((connection, (send, recv), v2x_proto::decode(&bytes).expect("ServerHello"))),
        _ => {
            // Wait for the close to arrive.
            let _ = connection.closed().await;
            Err(code(&connection))
        }
    }
}

/// Waits until `stats` counts at least `n` rejections for `reason`.
async fn counted(stats: &Stats, reason: Reject, n: u64) {
    tokio::time::timeout(PATIENCE, async {
        while stats.rejected(reason) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} rejections counted: {}", reason.name(), stats.rejected(reason)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_state_reaches_vehicles_as_spat_and_bad_input_is_counted() {
    let rec = tempfile::tempdir().expect("tempdir");
    // A free UDP port for the NTCIP adapter (the daemon binds it once this socket is gone).
    let ntcip_port = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp").local_addr().expect("addr").port();
    let fixture = Fixture::new(&format!(
        "[recording]\nenabled = true\ndir = {:?}\nfsync_interval_s = 0.1\n\n\
         [signals]\nspat_rate_hz = 10.0\n\
         [[signals.controllers]]\nid = \"tsc-1\"\nintersection_id = 1201\n\
         [[signals.controllers]]\nid = \"tsc-2\"\nintersection_id = 1202\n\
         ntcip_listen = \"127.0.0.1:{ntcip_port}\"\nntcip_source = \"127.0.0.1\"\n",
        rec.path().display().to_string()
    ));
    let running = Running::start(&fixture, Some(1024));
    let (addr, stats) = (running.addr, running.stats.clone());

    let vehicle = VehicleClient::connect(&fixture.vehicle(addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects");
    assert_eq!(vehicle.server_hello().version, v2x_link::PROTOCOL_VERSION);
    let controller =
        SignalControllerClient::connect(&fixture.signal(addr, "tsc-1")).await.expect("controller connects");
    assert_eq!(controller.server_hello().version, v2x_link::PROTOCOL_VERSION);
    // A vehicle that speaks only version 2 is served as before, without SPaT; a controller
    // needs version 3.
    let (old_vehicle, _control, old_hello) =
        session_speaking(&fixture.vehicle(addr, "veh-0002"), Role::Vehicle, vec![2, 1]).await.expect("served");
    assert_eq!(old_hello.version, 2);
    let refused = session_speaking(&fixture.signal(addr, "tsc-2"), Role::SignalController, vec![2]).await;
    assert_eq!(refused.err(), Some(Some(u64::from(CloseCode::UnsupportedVersion.code()))));

    // The controller sends its state at 10 Hz; the end times stay put (absolute instants).
    let t0 = now();
    let stop = CancellationToken::new();
    let sender = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.is_cancelled() {
                tick.tick().await;
                let state =
                    SignalControllerState { controller_id: "tsc-1".into(), time: now(), movements: movements(t0) };
                controller.send_state(&state).expect("state sent");
            }
            controller
        })
    };

    // The vehicle gets the intersection's SPaT with exactly the phases and times sent.
    let first = next_spat_of(&vehicle, 1201).await;
    assert_eq!(first.movements, movements(t0));
    assert!(first.time >= first.controller_time, "made after the state it carries");
    assert!(now().secs_since(first.controller_time) < 1.0, "from a fresh state");
    // About ten a second (counted over 2 s, on a loaded machine).
    let started = now();
    let mut n = 0u32;
    let mut revisions = std::collections::BTreeSet::new();
    while now().secs_since(started) < 2.0 {
        let spat = next_spat_of(&vehicle, 1201).await;
        revisions.insert(spat.revision);
        n += 1;
    }
    assert!((12..=26).contains(&n), "{n} SPaT in 2 s at 10 Hz");
    // The version 2 vehicle got none of them (received datagrams would be waiting).
    let none = tokio::time::timeout(Duration::from_millis(50), old_vehicle.read_datagram()).await;
    assert!(none.is_err(), "a version 2 vehicle got a datagram: {none:?}");
    assert_eq!(revisions.len(), 1, "the movements did not change, nor did the revision: {revisions:?}");

    // Bad input from the controller: not protobuf, and a phase that ends before it starts, on a
    // new session of the same controller (it replaces the first).
    stop.cancel();
    let first_session = sender.await.expect("sender");
    let bad = SignalControllerClient::connect(&fixture.signal(addr, "tsc-1")).await.expect("controller reconnects");
    drop(first_session);
    bad.send_bytes(&[0xff, 0xff, 0xff]).expect("sent");
    counted(&stats, Reject::Malformed, 1).await;
    let mut backwards = movements(t0);
    backwards[0].start = Some(t0.add_secs(6.0));
    let inconsistent = SignalControllerState { controller_id: "tsc-1".into(), time: now(), movements: backwards };
    bad.send_state(&inconsistent).expect("sent");
    counted(&stats, Reject::Inconsistent, 1).await;
    // A controller with a certificate but not in the configuration is refused.
    match SignalControllerClient::connect(&fixture.signal(addr, "tsc-x")).await {
        Err(ClientError::Closed { code, .. }) => assert_eq!(code, CloseCode::UnknownController),
        Ok(_) => panic!("an unknown controller was admitted"),
        Err(e) => panic!("unexpected refusal: {e}"),
    }
    counted(&stats, Reject::UnknownController, 1).await;

    // The rest keeps working: the good states of the same session still reach the vehicle
    // unchanged.
    for _ in 0..5 {
        let state = SignalControllerState { controller_id: "tsc-1".into(), time: now(), movements: movements(t0) };
        bad.send_state(&state).expect("sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = next_spat_of(&vehicle, 1201).await;
    assert_eq!(after.movements, movements(t0));
    assert!(now().secs_since(after.controller_time) < 1.0);

    // The NTCIP adapter: a good blob from the controller's address becomes intersection 1202's
    // SPaT; a short blob, one with a phase both red and green, and one from another address are
    // dropped and counted.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let target = ("127.0.0.1", ntcip_port);
    let blob =
        BlobBuilder::default().phase(2, false, Colour::Green, 50, 300).phase(4, false, Colour::Red, 80, 330).build();
    let malformed_before = stats.rejected(Reject::Malformed);
    let inconsistent_before = stats.rejected(Reject::Inconsistent);
    let sent_at = now();
    udp.send_to(&blob, target).await.expect("blob sent");
    let spat = next_spat_of(&vehicle, 1202).await;
    let groups: Vec<(u8, MovementPhase)> = spat.movements.iter().map(|m| (m.signal_group, m.phase)).collect();
    assert_eq!(groups, vec![(2, MovementPhase::ProtectedMovementAllowed), (4, MovementPhase::StopAndRemain)]);
    // Times to change count from the blob's arrival: 5 s and 30 s after it was sent.
    let min_end_s = spat.movements[0].min_end.secs_since(sent_at);
    let max_end_s = spat.movements[0].max_end.expect("max end").secs_since(sent_at);
    assert!((5.0..5.5).contains(&min_end_s) && (30.0..30.5).contains(&max_end_s), "{min_end_s} {max_end_s}");
    udp.send_to(&blob[..100], target).await.expect("sent");
    counted(&stats, Reject::Malformed, malformed_before + 1).await;
    let mut two_colours = blob;
    two_colours[211] |= 0x02; // phase 2 red as well as green
    udp.send_to(&two_colours, target).await.expect("sent");
    counted(&stats, Reject::Inconsistent, inconsistent_before + 1).await;
    let unknown_before = stats.rejected(Reject::UnknownController);
    let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.expect("udp on 127.0.0.2");
    stranger.send_to(&blob, target).await.expect("sent");
    counted(&stats, Reject::UnknownController, unknown_before + 1).await;
    udp.send_to(&blob, target).await.expect("blob sent");
    let again = next_spat_of(&vehicle, 1202).await;
    assert_eq!(again.movements.len(), 2, "the adapter keeps working");

    assert!(stats.signal_states_in.load(Ordering::Relaxed) >= 10);
    assert!(stats.spat_sent.load(Ordering::Relaxed) >= 12);
    vehicle.close().await;
    bad.close().await;
    let summary = running.stop().await;

    // The recording holds both controllers' states and the SPaT of both intersections.
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for file in &summary.recordings {
        for item in ReplayReader::open(file).expect("recording opens") {
            let message = item.expect("decodes");
            if matches!(message.body, ReplayBody::Signal(_) | ReplayBody::Spat(_)) {
                *counts.entry(message.topic.to_string()).or_default() += 1;
            }
            if let ReplayBody::Spat(spat) = &message.body
                && spat.intersection_id == 1201
            {
                assert_eq!(spat.movements, movements(t0));
            }
        }
    }
    let count = |topic: &str| counts.get(topic).copied().unwrap_or(0);
    assert!(count("/signals/tsc-1/state") >= 15, "{counts:?}");
    assert!(count("/signals/tsc-2/state") >= 2, "{counts:?}");
    assert!(count("/intersections/1201/spat") >= 12, "{counts:?}");
    assert!(count("/intersections/1202/spat") >= 1, "{counts:?}");
}

/// `vehicle-sim live` with a signal controller certificate: the site's fixed-time plan reaches a
/// vehicle as SPaT, one signal group per plan group, each phase between its start and its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_controller_sends_the_signal_plan() {
    let fixture = Fixture::new("[[signals.controllers]]\nid = \"tsc-1\"\nintersection_id = 7\n");
    let running = Running::start(&fixture, None);
    let addr = running.addr;
    let vehicle = VehicleClient::connect(&fixture.vehicle(addr, "veh-0001"), None).await.expect("vehicle connects");

    let site = std::sync::Arc::new(rsu_site::SiteModel::embedded().expect("site"));
    let plan = site.signal_plan.clone();
    assert!(!plan.groups.is_empty(), "the embedded site has a signal plan");
    let setup = vehicle_sim::live::LiveSetup {
        scenario: "bus-pedestrian".into(),
        seed: 1,
        duration_s: 3.0,
        site,
        car: vehicle_sim::connected::CarConfig { use_v2x: false, ..Default::default() },
        sensors: Default::default(),
        vehicles: Default::default(),
        subscription_radius_m: 300,
        signals: [("tsc-1".to_owned(), fixture.signal(addr, "tsc-1"))].into(),
    };
    let live = tokio::spawn(vehicle_sim::live::run(setup, |_| {}));
    let spat = next_spat_of(&vehicle, 7).await;
    let groups: Vec<u8> = spat.movements.iter().map(|m| m.signal_group).collect();
    assert_eq!(groups, (1..=plan.groups.len() as u8).collect::<Vec<_>>());
    for (m, group) in spat.movements.iter().zip(&plan.groups) {
        let start = m.start.expect("a fixed-time plan knows when the phase started");
        assert!(start <= spat.controller_time && spat.controller_time <= m.min_end, "{m:?}");
        assert_eq!((m.max_end, m.likely), (Some(m.min_end), Some(m.min_end)), "fixed time: one end");
        let length_s = m.min_end.secs_since(start);
        let expected = match m.phase {
            MovementPhase::ProtectedMovementAllowed => group.green_s,
            MovementPhase::ProtectedClearance => group.yellow_s,
            MovementPhase::StopAndRemain => plan.cycle_s - group.green_s - group.yellow_s,
            other => panic!("a fixed-time plan shows no {other:?}"),
        };
        assert!((length_s - expected).abs() < 1e-6, "{}: {length_s} s, plan {expected} s", group.signal_id);
    }
    live.await.expect("live task").expect("live run");
    vehicle.close().await;
    running.stop().await;
}
