//! The network faults of `faults.rs`, deterministic: a vehicle's QUIC connection to the RSU runs
//! in one thread in virtual time, quinn's sans-IO state machine at both ends (the daemon's TLS
//! configuration from the test PKI and its transport settings, the vehicle's client settings),
//! every datagram passing through the seeded [`LinkModel`] of `common::link`. No socket, no
//! clock: the same seed gives the same run, so this always runs in CI and its figures are exact.
//!
//! The RSU side follows the daemon's downlink policy: a frame every 50 ms (the 20 Hz cap) on a
//! stream of its own, never cancelled for a newer one, reset when not acknowledged by its
//! delivery deadline, and skipped (superseded) when the vehicle has no stream credit left. The
//! vehicle reads every stream. What is measured: frames made, received, lost (reset at the
//! deadline, or superseded), latency from made to received, frames in flight, and how long
//! frames take to flow again after a blackout.

mod common;

use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::link::{Impairment, LinkModel, LinkTally};
use common::{Fixture, percentile};
use quinn_proto::{
    ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig, Event, ReadError, StreamEvent, StreamId,
};
use rsu::config::ServeConfig;

/// The radio-like link of issue 19 (as `faults.rs`).
const LINK: Impairment =
    Impairment { delay_ms: 50.0, jitter_ms: 20.0, loss: 0.1, reorder: 0.05, reorder_ms: 40.0, duplicate: 0.05 };

/// Frame interval of the RSU side [s] (the 20 Hz cap).
const FRAME_INTERVAL_S: f64 = 0.05;
/// Bytes of each frame (about 20 participants).
const FRAME_BYTES: usize = 1000;
/// `RESET_STREAM` code of a frame given up at its deadline (`FRAME_SUPERSEDED`, PROTOCOL §3).
const RESET_CODE: u32 = 16;

/// One end: an endpoint and its one connection.
struct End {
    endpoint: Endpoint,
    conn: Option<(ConnectionHandle, quinn_proto::Connection)>,
}

/// A datagram on the link, ordered by arrival (then by send order, so ties are deterministic).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    arrival: std::cmp::Reverse<(Duration, u64)>,
    to_server: bool,
    data: Vec<u8>,
}

/// What one run measured.
#[derive(Debug, Default, PartialEq)]
struct Run {
    made: u64,
    received: u64,
    /// Reset at their deadline.
    expired: u64,
    /// Not sent: no stream credit.
    superseded: u64,
    /// Made to received, per frame [ms], rounded to µs (exact across runs).
    latencies_ms: Vec<f64>,
    peak_in_flight: usize,
    /// Virtual time of each received frame [s].
    received_at_s: Vec<f64>,
    up: LinkTally,
    down: LinkTally,
    /// The connection was lost (why).
    lost: Option<String>,
}

/// Runs a vehicle's downlink for `seconds` of virtual time through `link` (both ways, seeds
/// `seed` up and `seed + 1` down), with a blackout of both directions `(from_s, duration_s)`.
fn run(seconds: f64, link: Impairment, seed: u64, blackout: Option<(f64, f64)>) -> Run {
    let fixture = Fixture::new("");
    let loaded = ServeConfig::load(&fixture.config).expect("config");
    let deadline_s = loaded.config.broadcast.frame_deadline_s;
    let (tls, _) = rsu::serve::server_crypto(&loaded.config.tls).expect("server TLS");
    let transport = rsu::serve::server_transport(&loaded.config.limits);
    let server_config = v2x_link::tls::quinn_server(tls, &transport).expect("server QUIC");
    let server_addr: SocketAddr = "127.0.0.1:4433".parse().expect("addr");
    let client_addr: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
    let client_config = fixture.vehicle(server_addr, "veh-0001").quic;

    let mut rng_seed = [0u8; 32];
    rng_seed[..8].copy_from_slice(&seed.to_le_bytes());
    let endpoint_config = Arc::new(EndpointConfig::default());
    let mut server = End {
        endpoint: Endpoint::new(endpoint_config.clone(), Some(Arc::new(server_config)), true, Some(rng_seed)),
        conn: None,
    };
    rng_seed[8] = 1;
    let mut client = End { endpoint: Endpoint::new(endpoint_config, None, true, Some(rng_seed)), conn: None };
    let mut up = LinkModel::new(link, seed);
    let mut down = LinkModel::new(link, seed.wrapping_add(1));
    if let Some((from, duration)) = blackout {
        up.blackout(from, duration);
        down.blackout(from, duration);
    }

    let base = Instant::now();
    let mut now = base;
    let connected = client.endpoint.connect(now, client_config, server_addr, "localhost").expect("connect");
    client.conn = Some(connected);
    let mut wire: BinaryHeap<InFlight> = BinaryHeap::new();
    let mut sent_datagrams = 0u64;
    let mut out = Run::default();
    // RSU side: frames in flight by stream, (sequence, made at).
    let mut frames_in_flight: BTreeMap<StreamId, (u64, Instant)> = BTreeMap::new();
    let mut server_ready = false;
    let mut next_frame = base;
    // Vehicle side: bytes read so far per stream.
    let mut reading: BTreeMap<StreamId, Vec<u8>> = BTreeMap::new();
    let end = base + Duration::from_secs_f64(seconds);
    let mut buf = Vec::with_capacity(2048);

    loop {
        // Each end: endpoint events, application events, then whatever it has to send.
        for (is_server, side) in [(true, &mut server), (false, &mut client)] {
            let Some((handle, conn)) = side.conn.as_mut() else { continue };
            while let Some(event) = conn.poll_endpoint_events() {
                if let Some(reply) = side.endpoint.handle_event(*handle, event) {
                    conn.handle_event(reply);
                }
            }
            while let Some(event) = conn.poll() {
                match event {
                    Event::Connected if is_server => server_ready = true,
                    Event::ConnectionLost { reason } => out.lost = Some(reason.to_string()),
                    Event::Stream(StreamEvent::Finished { id }) if is_server => {
                        frames_in_flight.remove(&id);
                    }
                    Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) if !is_server => {
                        while let Some(id) = conn.streams().accept(Dir::Uni) {
                            reading.insert(id, Vec::new());
                        }
                    }
                    _ => {}
                }
            }
            if !is_server {
                // The vehicle reads every open stream as far as it can.
                let ids: Vec<StreamId> = reading.keys().copied().collect();
                for id in ids {
                    let mut recv = conn.recv_stream(id);
                    let Ok(mut chunks) = recv.read(true) else {
                        reading.remove(&id);
                        continue;
                    };
                    let mut done = false;
                    loop {
                        match chunks.next(usize::MAX) {
                            Ok(Some(chunk)) => reading.entry(id).or_default().extend_from_slice(&chunk.bytes),
                            Ok(None) => {
                                done = true;
                                let bytes = reading.remove(&id).unwrap_or_default();
                                let made_ns = u64::from_le_bytes(bytes[8..16].try_into().expect("frame header"));
                                let latency = now.duration_since(base).as_nanos() as u64 - made_ns;
                                out.received += 1;
                                out.latencies_ms.push((latency as f64 / 1e3).round() / 1e3);
                                out.received_at_s.push(now.duration_since(base).as_secs_f64());
                                break;
                            }
                            Err(ReadError::Blocked) => break,
                            Err(ReadError::Reset(_)) => {
                                done = true;
                                reading.remove(&id);
                                break;
                            }
                        }
                    }
                    let _ = chunks.finalize();
                    if done {
                        reading.remove(&id);
                    }
                }
            }
            loop {
                buf.clear();
                let Some(transmit) = conn.poll_transmit(now, 1, &mut buf) else { break };
                let at = now.duration_since(base).as_secs_f64();
                let model = if is_server { &mut down } else { &mut up };
                for delay in model.deliveries(at) {
                    sent_datagrams += 1;
                    let arrival = now.duration_since(base) + Duration::from_secs_f64(delay);
                    wire.push(InFlight {
                        arrival: std::cmp::Reverse((arrival, sent_datagrams)),
                        to_server: !is_server,
                        data: buf[..transmit.size].to_vec(),
                    });
                }
            }
        }
        out.peak_in_flight = out.peak_in_flight.max(frames_in_flight.len());

        // The next thing to happen.
        let mut next = end;
        if let Some(d) = wire.peek() {
            next = next.min(base + d.arrival.0.0);
        }
        for side in [&mut server, &mut client] {
            if let Some(t) = side.conn.as_mut().and_then(|(_, c)| c.poll_timeout()) {
                next = next.min(t);
            }
        }
        if server_ready {
            next = next.min(next_frame);
            if let Some((_, made)) = frames_in_flight.values().next() {
                next = next.min(*made + Duration::from_secs_f64(deadline_s));
            }
        }
        now = now.max(next);
        if now >= end {
            break;
        }

        // Datagrams that arrived.
        while wire.peek().is_some_and(|d| base + d.arrival.0.0 <= now) {
            let Some(datagram) = wire.pop() else { break };
            let (to, from) = if datagram.to_server { (&mut server, client_addr) } else { (&mut client, server_addr) };
            buf.clear();
            match to.endpoint.handle(now, from, None, None, BytesMut::from(&datagram.data[..]), &mut buf) {
                Some(DatagramEvent::ConnectionEvent(_, event)) => {
                    if let Some((_, conn)) = to.conn.as_mut() {
                        conn.handle_event(event);
                    }
                }
                Some(DatagramEvent::NewConnection(incoming)) => {
                    match to.endpoint.accept(incoming, now, &mut buf, None) {
                        Ok(accepted) => to.conn = Some(accepted),
                        Err(e) => panic!("the RSU refused the vehicle: {:?}", e.cause),
                    }
                }
                Some(DatagramEvent::Response(transmit)) => {
                    // A stateless answer (none expected here): onto the wire like any other.
                    let model = if datagram.to_server { &mut down } else { &mut up };
                    for delay in model.deliveries(now.duration_since(base).as_secs_f64()) {
                        sent_datagrams += 1;
                        wire.push(InFlight {
                            arrival: std::cmp::Reverse((
                                now.duration_since(base) + Duration::from_secs_f64(delay),
                                sent_datagrams,
                            )),
                            to_server: !datagram.to_server,
                            data: buf[..transmit.size].to_vec(),
                        });
                    }
                }
                None => {}
            }
        }
        // Timers.
        for side in [&mut server, &mut client] {
            if let Some((_, conn)) = side.conn.as_mut()
                && conn.poll_timeout().is_some_and(|t| t <= now)
            {
                conn.handle_timeout(now);
            }
        }
        // The RSU side: frames past their deadline are reset; a new frame when one is due.
        if let Some((_, conn)) = server.conn.as_mut().filter(|_| server_ready) {
            let expired: Vec<StreamId> = frames_in_flight
                .iter()
                .filter(|(_, (_, made))| now.duration_since(*made).as_secs_f64() >= deadline_s)
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                frames_in_flight.remove(&id);
                if conn.send_stream(id).reset(RESET_CODE.into()).is_ok() {
                    out.expired += 1;
                }
            }
            if now >= next_frame {
                next_frame += Duration::from_secs_f64(FRAME_INTERVAL_S);
                out.made += 1;
                match conn.streams().open(Dir::Uni) {
                    Some(id) => {
                        let mut frame = vec![0u8; FRAME_BYTES];
                        frame[..8].copy_from_slice(&out.made.to_le_bytes());
                        let made_ns = now.duration_since(base).as_nanos() as u64;
                        frame[8..16].copy_from_slice(&made_ns.to_le_bytes());
                        let mut send = conn.send_stream(id);
                        let written = send.write(&frame).expect("a new stream takes a frame");
                        assert_eq!(written, frame.len(), "the stream window holds a frame");
                        send.finish().expect("finish");
                        frames_in_flight.insert(id, (out.made, now));
                    }
                    None => out.superseded += 1,
                }
            }
        }
    }
    out.up = up.tally;
    out.down = down.tally;
    out
}

fn summary(name: &str, run: &Run) -> (f64, f64) {
    let mut latencies = run.latencies_ms.clone();
    let (p50, p99) = (percentile(&mut latencies, 50.0), percentile(&mut latencies, 99.0));
    println!(
        "{name}: made {}, received {} ({:.1} % lost: {} reset at the deadline, {} superseded), latency p50 {p50:.1} ms, \
         p99 {p99:.1} ms, max {:.1} ms, peak in flight {}; link up {:?}, down {:?}",
        run.made,
        run.received,
        100.0 * (1.0 - run.received as f64 / run.made as f64),
        run.expired,
        run.superseded,
        percentile(&mut latencies, 100.0),
        run.peak_in_flight,
        run.up,
        run.down,
    );
    (p50, p99)
}

#[test]
fn the_downlink_through_loss_jitter_reordering_and_duplication() {
    let first = run(30.0, LINK, 7, None);
    let (p50, p99) = summary("impaired link, 30 s", &first);
    assert_eq!(first.lost, None, "the connection survives");
    assert!(first.down.lost > 0 && first.down.reordered > 0 && first.down.duplicated > 0, "{:?}", first.down);
    // About 600 frames; QUIC retransmits what the link loses within the 0.5 s deadline.
    assert!(first.made >= 590, "{first:?}");
    assert!(first.received as f64 >= 0.97 * first.made as f64, "{} of {} frames", first.received, first.made);
    assert!(p50 < 100.0 && p99 < 500.0, "latency p50 {p50} ms, p99 {p99} ms");
    // Bounded: no more than the deadline's worth of frames in flight.
    assert!(first.peak_in_flight <= 11, "{} frames in flight", first.peak_in_flight);
    // Deterministic: the same seed, the same run to the frame and the microsecond.
    let again = run(30.0, LINK, 7, None);
    let differs = first.latencies_ms.iter().zip(&again.latencies_ms).position(|(a, b)| a != b);
    assert_eq!(differs, None, "frame latencies differ between two runs of one seed");
    assert_eq!(first, again, "a seeded run repeats exactly");
}

#[test]
fn the_downlink_after_a_5_s_blackout() {
    let (before_s, blackout_s) = (3.0, 5.0);
    let run = run(16.0, LINK, 19, Some((before_s, blackout_s)));
    summary("impaired link with a 5 s blackout, 16 s", &run);
    assert_eq!(run.lost, None, "the connection survives the blackout");
    let end_s = before_s + blackout_s;
    let during = run.received_at_s.iter().filter(|t| (before_s + 0.5..end_s).contains(*t)).count();
    assert_eq!(during, 0, "nothing crosses a blackout");
    let first_after = run.received_at_s.iter().find(|t| **t >= end_s).map(|t| t - end_s);
    println!("first frame {first_after:?} s after the blackout");
    let first_after = first_after.expect("frames flow after the blackout");
    assert!(first_after < 6.0, "frames flow again {first_after:.2} s after the blackout");
    // Latest wins: no frame made during the blackout arrives after it (each was reset at its
    // deadline), so every frame received is at most about the deadline old.
    let max_latency_ms = run.latencies_ms.iter().copied().fold(0.0, f64::max);
    assert!(max_latency_ms < 600.0, "a frame arrived {max_latency_ms} ms after it was made");
    assert!(run.peak_in_flight <= 11, "{} frames in flight", run.peak_in_flight);
}
