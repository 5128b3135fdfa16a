//! The standard encoding gateway end to end, the daemon in-process on 127.0.0.1: with `[uper]`
//! enabled, a lidar's two cars, a signal controller's state and a connected vehicle's state
//! (itself a participant of the RSM too) reach a UDP socket standing in for the PC5 radio as T/CSAE 53-2020 UPER RSM, SPAT and BSM,
//! one message per datagram within 1400 bytes, at about the configured rates, with the values
//! that were sent.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Fixture, LIDAR, Running, feed_two_cars, now};
use tokio_util::sync::CancellationToken;
use v2x_link::client::{SensorClient, SignalControllerClient, VehicleClient};
use v2x_proto::domain::{MovementPhase, MovementState, SignalControllerState};
use v2x_uper::msg::{LightState, MessageFrame, ParticipantType, SourceType, TimeChangeDetails};

/// Generous bound for anything that should happen within a few periods on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_sends_rsm_spat_and_bsm_as_uper_datagrams() {
    let radio = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("radio socket");
    let radio_addr = radio.local_addr().expect("addr");
    let fixture = Fixture::new(&format!(
        "[signals]\nspat_rate_hz = 10.0\n[[signals.controllers]]\nid = \"tsc-1\"\nintersection_id = 1201\n\n\
         [uper]\nenabled = true\ndestination = \"{radio_addr}\"\nrsm_rate_hz = 10.0\nspat_rate_hz = 10.0\n"
    ));
    let running = Running::start(&fixture, None);
    let addr = running.addr;

    let sensor = SensorClient::connect(&fixture.sensor(addr, LIDAR)).await.expect("sensor connects");
    let stop = CancellationToken::new();
    let feeder = feed_two_cars(sensor, stop.clone());
    let controller = SignalControllerClient::connect(&fixture.signal(addr, "tsc-1")).await.expect("controller");
    let vehicle = VehicleClient::connect(&fixture.vehicle(addr, "veh-0001"), None).await.expect("vehicle");
    let origin = v2x_proto::sample::site().origin;
    let t0 = now();
    let movement = MovementState {
        signal_group: 2,
        phase: MovementPhase::ProtectedMovementAllowed,
        start: Some(t0.add_secs(-3.0)),
        min_end: t0.add_secs(20.0),
        max_end: Some(t0.add_secs(40.0)),
        likely: None,
    };
    let inputs = {
        let stop = stop.clone();
        let movement = movement.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let mut count = 0u32;
            while !stop.is_cancelled() {
                tick.tick().await;
                let signal = SignalControllerState {
                    controller_id: "tsc-1".into(),
                    time: now(),
                    movements: vec![movement.clone()],
                };
                let _ = controller.send_state(&signal);
                let mut state = v2x_proto::sample::vehicle_state();
                state.vehicle_id = "veh-0001".into();
                state.time = now();
                state.position = origin;
                state.speed_mps = 0.0;
                state.message_count = count;
                count += 1;
                let _ = vehicle.send_state(&state);
            }
            (controller, vehicle)
        })
    };

    // Datagrams until each type has been seen for two seconds.
    let mut buf = vec![0u8; 65536];
    let mut first_seen: BTreeMap<&'static str, Instant> = BTreeMap::new();
    let mut counts: BTreeMap<&'static str, u32> = BTreeMap::new();
    let (mut rsm_ok, mut spat_ok, mut bsm_ok) = (false, false, false);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all_long_enough = ["rsm", "spat", "bsm"]
            .iter()
            .all(|k| first_seen.get(k).is_some_and(|t| t.elapsed() >= Duration::from_secs(2)));
        if all_long_enough {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "not every type arrived in time: {counts:?}");
        let Ok(received) = tokio::time::timeout(left, radio.recv_from(&mut buf)).await else { continue };
        let (len, _) = received.expect("recv");
        assert!(len <= 1400, "a datagram of {len} bytes");
        let frame = v2x_uper::decode_msg_frame(&buf[..len]).expect("every datagram is one UPER MessageFrame");
        let kind = v2x_uper::frame_type(&frame);
        first_seen.entry(kind).or_insert_with(Instant::now);
        *counts.entry(kind).or_default() += 1;
        match frame {
            MessageFrame::RsmFrame(rsm) => {
                assert_eq!(rsm.id, v2x_uper::convert::temporary_id("rsu-test"));
                assert!((1..=16).contains(&rsm.participants.0.len()));
                // The lidar's two cars, and the connected vehicle by its own report with the
                // same 8-byte id as in its BSMs.
                let lidar_cars = rsm
                    .participants
                    .0
                    .iter()
                    .filter(|p| p.ptc_type == ParticipantType::Motor && p.source == SourceType::Lidar)
                    .count();
                let vehicle_id = v2x_uper::convert::temporary_id("veh-0001");
                let connected = rsm
                    .participants
                    .0
                    .iter()
                    .any(|p| p.source == SourceType::V2x && p.id.as_ref() == Some(&vehicle_id));
                rsm_ok |= lidar_cars == 2 && connected;
            }
            MessageFrame::SpatFrame(spat) => {
                let state = &spat.intersections.0[0];
                assert_eq!(state.intersection_id.id.0, 1201);
                let phase = &state.phases.0[0];
                assert_eq!(phase.id.0, 2);
                assert_eq!(phase.phase_states.0[0].light, LightState::ProtectedGreen);
                let Some(TimeChangeDetails::Counting(t)) = &phase.phase_states.0[0].timing else {
                    panic!("a counting-down timing")
                };
                // The phase ends at the earliest 20 s after t0: counted down from when it was sent.
                let left_s = f64::from(t.min_end_time.expect("min end").0) / 10.0;
                let since_t0_s = now().secs_since(t0);
                assert!(
                    left_s <= 20.05 && left_s >= 20.0 - since_t0_s - 0.2,
                    "{left_s} s left {since_t0_s} s after t0"
                );
                spat_ok = true;
            }
            MessageFrame::BsmFrame(bsm) => {
                assert_eq!(bsm.id, v2x_uper::convert::temporary_id("veh-0001"));
                assert_eq!(bsm.pos.lat.0, (origin.lat_deg * 1e7).round() as i32);
                assert_eq!(bsm.pos.long.0, (origin.lon_deg * 1e7).round() as i32);
                bsm_ok = true;
            }
            other => panic!("the gateway sent {}", v2x_uper::frame_type(&other)),
        }
    }
    assert!(rsm_ok, "no RSM with the two cars and the connected vehicle");
    assert!(spat_ok && bsm_ok);
    // Rates: at most one RSM per frame at 10 Hz and SPAT at 10 Hz, counted over the run (at
    // least the two seconds since each type's first message, at most the patience).
    let elapsed = |k: &str| first_seen[k].elapsed().as_secs_f64();
    for kind in ["rsm", "spat"] {
        let per_s = f64::from(counts[kind]) / elapsed(kind);
        assert!(per_s <= 13.0, "{kind}: {per_s:.1} per second at 10 Hz");
        assert!(per_s >= 3.0, "{kind}: {per_s:.1} per second at 10 Hz");
    }
    // A BSM per vehicle state: states go at 10 Hz.
    assert!(f64::from(counts["bsm"]) / elapsed("bsm") >= 3.0, "{counts:?}");

    stop.cancel();
    let _ = feeder.await;
    let _ = inputs.await;
    running.stop().await;
}
