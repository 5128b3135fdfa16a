//! The daemon in-process on 127.0.0.1 with real QUIC, real TLS and certificates from the
//! development PKI: frames flow from a sensor to vehicles filtered by region; bad certificates,
//! ALPNs, identities and messages are refused and counted while good traffic goes on; a stalled
//! vehicle does not slow the others; a lying vehicle is flagged in the recording and dropped from
//! the broadcast.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Fixture, LIDAR, Running, now, percentile, two_cars};
use prost::Message;
use rsu::serve::stats::{Reject, Stats};
use rsu_fusion::{RoadsideFrame, RoadsideView, SensorStatus, Timestamp};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use v2x_link::client::{ClientEndpoint, ClientError, SensorClient, VehicleClient};
use v2x_link::tls::{CertKey, TransportLimits, client_tls, load_roots, quinn_client};
use v2x_link::{ALPN, CloseCode};
use v2x_proto::domain::{ClientHello, Role, ServerHello, Subscription};
use v2x_proto::wire;

/// Generous bound for anything that should happen within a few cycles on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

fn start(fixture: &Fixture) -> Running {
    Running::start(fixture, None)
}

/// The lidar connected to `server` and fed with two-car frames until `stop` is cancelled.
struct Feed {
    sensor: Arc<SensorClient>,
    stop: CancellationToken,
    feeder: JoinHandle<u64>,
}

async fn feed_lidar(fixture: &Fixture, server: &Running) -> Feed {
    let sensor = Arc::new(SensorClient::connect(&fixture.sensor(server.addr, LIDAR)).await.expect("sensor connects"));
    let stop = CancellationToken::new();
    let feeder = feed_sensor(sensor.clone(), stop.clone());
    Feed { sensor, stop, feeder }
}

/// Sends two-car lidar frames at 10 Hz until cancelled.
fn feed_sensor(sensor: Arc<SensorClient>, stop: CancellationToken) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let mut sequence = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return sequence,
                _ = tick.tick() => {}
            }
            sequence += 1;
            if sensor.send_frame(&two_cars(sequence)).await.is_err() {
                return sequence;
            }
        }
    })
}

/// Receives frames until one has at least `n` participants.
async fn frame_with(vehicle: &mut VehicleClient, n: usize) -> RoadsideFrame {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = vehicle.next_frame().await.expect("frame");
            if frame.participants.len() >= n {
                return frame;
            }
        }
    })
    .await
    .expect("a frame with enough participants in time")
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state_of(id: &str, position: rsu_fusion::Wgs84) -> rsu_fusion::VehicleState {
    let mut state = v2x_proto::sample::vehicle_state();
    state.vehicle_id = id.to_owned();
    state.time = now();
    state.position = position;
    state.speed_mps = 0.0;
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_frames_reach_vehicles_filtered_by_region() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let Feed { sensor, stop, feeder } = feed_lidar(&fixture, &server).await;
    assert_eq!(sensor.server_hello().rsu_id, "rsu-test");
    assert_eq!(sensor.server_hello().broadcast_rate_hz, 20.0);

    let mut all = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects");
    let first = all.next_frame().await.expect("a first frame");
    assert_eq!(first.rsu_id, "rsu-test", "a vehicle's first frame carries the RSU's id and sensor health");
    let frame = frame_with(&mut all, 2).await;
    assert_eq!(frame.participants.len(), 2, "two cars: {:?}", frame.participants);
    let near = frame.participants[0].position_m;
    let far = frame.participants[1].position_m;
    assert!((near.x - far.x).hypot(near.y - far.y) > 20.0, "the cars are apart");

    // A square of 10 m around the first car.
    let square = vec![
        [near.x - 5.0, near.y - 5.0],
        [near.x + 5.0, near.y - 5.0],
        [near.x + 5.0, near.y + 5.0],
        [near.x - 5.0, near.y + 5.0],
    ];
    let mut boxed =
        VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0002"), Some(Subscription::Polygon(square)))
            .await
            .expect("vehicle connects");
    let frame = frame_with(&mut boxed, 1).await;
    assert_eq!(frame.participants.len(), 1);
    assert!((frame.participants[0].position_m - near).norm() < 1.0);

    // Around me (the default radius, 20 m) near the far car, reported by a self-report 2 m away
    // from it; then everything, changed on the control stream.
    let mut around = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0003"), None).await.expect("connects");
    assert_eq!(around.server_hello().default_radius_m, 20);
    let before = around.next_frame().await.expect("frame");
    assert!(before.participants.is_empty(), "no position reported yet: {:?}", before.participants);
    let site = v2x_proto::sample::site().frame();
    let mut me = far;
    me.x += 2.0;
    let position = site.wgs84_from_enu(&me);
    // A state the engine refuses (measured 3 s ago, beyond the fusion lag) places nothing:
    // "around me" is where the last accepted state was.
    let mut stale = state_of("veh-0003", position);
    stale.time = stale.time.add_secs(-3.0);
    around.send_state(&stale).expect("datagram");
    wait_for("the stale state refused", || server.stats.rejected(Reject::Late) >= 1).await;
    let after = Instant::now();
    while after.elapsed() < Duration::from_millis(500) {
        let frame = around.next_frame().await.expect("frame");
        assert!(frame.participants.is_empty(), "placed by a refused state: {:?}", frame.participants);
    }
    around.send_state(&state_of("veh-0003", position)).expect("datagram");
    let frame = tokio::time::timeout(PATIENCE, async {
        loop {
            around.send_state(&state_of("veh-0003", position)).expect("datagram");
            let frame = around.next_frame().await.expect("frame");
            if !frame.participants.is_empty() {
                return frame;
            }
        }
    })
    .await
    .expect("participants around me");
    for p in &frame.participants {
        assert!((p.position_m.x - me.x).hypot(p.position_m.y - me.y) <= 20.0, "outside the region: {p:?}");
    }
    assert!(frame.participants.iter().all(|p| (p.position_m - near).norm() > 1.0), "the near car is 42 m away");
    around.subscribe(&Subscription::Everything).await.expect("subscribe");
    let frame = tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = around.next_frame().await.expect("frame");
            if frame.participants.iter().any(|p| (p.position_m - near).norm() < 1.0) {
                return frame;
            }
        }
    })
    .await
    .expect("the new subscription applies");
    assert!(frame.participants.len() >= 2);

    stop.cancel();
    let sent = feeder.await.expect("feeder");
    assert!(sent > 0);
    assert!(Stats::get(&server.stats.sensor_frames_in) > 0);
    assert!(Stats::get(&server.stats.vehicle_states_in) > 0);
    assert_eq!(server.stats.rejected(Reject::IdentityMismatch), 0);
    let summary = server.stop().await;
    assert!(summary.cycles > 0);
    // After shutdown the vehicles learn why (after any frames already delivered).
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Err(e) = all.next_frame().await {
                return e;
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(
        matches!(closed, ClientError::Closed { code: CloseCode::Shutdown, .. }),
        "expected a SHUTDOWN close, got {closed}"
    );
}

/// Receives frames for `window`, each with the view after it.
async fn frames_for(vehicle: &mut VehicleClient, view: &mut RoadsideView, window: Duration) -> Vec<RoadsideFrame> {
    let mut frames = Vec::new();
    let end = tokio::time::Instant::now() + window;
    while let Ok(frame) = tokio::time::timeout_at(end, vehicle.next_frame()).await {
        let frame = frame.expect("frame");
        view.receive(frame.clone());
        frames.push(frame);
    }
    frames
}

/// PROTOCOL §2.4, version 2: the sensor health goes to a vehicle in its first frame, when a
/// sensor's status changes (in the very frame that shows it) and once a second; every frame
/// carries its freshness (`newest_capture`). A version 1 client gets the health in every frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_health_goes_on_change_to_every_vehicle_and_late_joiners_learn_it_at_once() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let Feed { sensor: _sensor, stop, feeder } = feed_lidar(&fixture, &server).await;
    let site = v2x_proto::sample::site();
    let sensors = site.sensors.len();
    let lidar_period_s = site.sensor(LIDAR).expect("the lidar").frame_period_s;
    let silent_after_s = rsu_fusion::FusionConfig::default().sensor_silent_after_periods * lidar_period_s;

    let mut first = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects");
    assert_eq!(first.server_hello().version, v2x_link::PROTOCOL_VERSION);
    frame_with(&mut first, 2).await;
    let mut view = RoadsideView::default();
    let frames = frames_for(&mut first, &mut view, Duration::from_millis(2500)).await;
    // A late joiner (the first vehicle's frames do not carry the health now) learns it at once.
    let mut late = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0002"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects");
    let joined = late.next_frame().await.expect("a first frame");
    assert_eq!(joined.sensors.len(), sensors, "a vehicle's first frame carries every sensor's health: {joined:?}");

    assert!(frames.len() >= 20, "heartbeats at 20 Hz: {}", frames.len());
    assert!(frames.iter().all(|f| f.newest_capture.is_some()), "every frame says how fresh it is");
    let with_health: Vec<&RoadsideFrame> = frames.iter().filter(|f| !f.sensors.is_empty()).collect();
    assert!(
        with_health.len() * 3 <= frames.len(),
        "the health goes on change and once a second, not in every frame: {} of {}",
        with_health.len(),
        frames.len()
    );
    assert!(!with_health.is_empty(), "once a second even when nothing changed");
    for pair in with_health.windows(2) {
        let gap_s = pair[1].time.secs_since(pair[0].time);
        let changed = pair[0].sensors.iter().zip(&pair[1].sensors).any(|(a, b)| a.status != b.status);
        assert!(changed || (0.95..1.3).contains(&gap_s), "unchanged health repeats once a second, not {gap_s:.3} s");
    }
    let lidar = |view: &RoadsideView| view.sensors().iter().find(|s| s.sensor_id == LIDAR).map(|s| s.status);
    assert!(lidar(&view).is_some_and(SensorStatus::is_live), "{:?}", view.sensors());
    assert!(!view.regions().is_empty(), "the lidar's region is in force");

    // A v1 client (it does not know the health is sent on change) gets it in every frame.
    let roots = load_roots(&fixture.pki.ca_cert).expect("roots");
    let (_, paths) = fixture.pki.vehicles.iter().find(|(v, _)| v == "veh-0003").expect("certificate");
    let cert = CertKey::load(&paths.cert, &paths.key).expect("certificate");
    let v1 = raw_endpoint(client_tls(roots, Some(&cert), &[ALPN]).expect("tls"));
    let mut hello = vehicle_hello("veh-0003");
    hello.subscription = Some(Subscription::Everything);
    let v1 = raw_session(&v1, server.addr, &hello).await.expect("a version 1 client is served");
    assert_eq!(v1.server_hello.version, 1);
    for _ in 0..10 {
        let mut stream =
            tokio::time::timeout(PATIENCE, v1.connection.accept_uni()).await.expect("a frame").expect("stream");
        let Ok(bytes) = stream.read_to_end(1 << 20).await else { continue };
        let frame: RoadsideFrame = v2x_proto::decode(&bytes).expect("decodes");
        assert_eq!(frame.sensors.len(), sensors, "version 1: the health in every frame");
    }
    v1.connection.close(0u32.into(), b"done");

    // The lidar stops: the frame that first finds it silent (its newest capture older than the
    // silence timeout) carries the change, and its region leaves with it.
    stop.cancel();
    feeder.await.expect("feeder");
    let silent = tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = first.next_frame().await.expect("frame");
            let stale_s = frame.time.secs_since(frame.newest_capture.unwrap_or(Timestamp::from_nanos(0)));
            view.receive(frame.clone());
            if stale_s > silent_after_s + 1e-6 {
                return frame;
            }
            assert!(lidar(&view).is_some_and(SensorStatus::is_live), "not silent yet at {stale_s:.3} s");
        }
    })
    .await
    .expect("the lidar goes silent");
    assert!(!silent.sensors.is_empty(), "the change goes in the frame that shows it: {silent:?}");
    assert_eq!(lidar(&view), Some(SensorStatus::Silent));
    assert!(view.regions().is_empty(), "no sensor live, no region: {:?}", view.regions());
    server.stop().await;
}

/// A quinn client endpoint with an arbitrary TLS configuration.
fn raw_endpoint(tls: rustls::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("endpoint");
    endpoint.set_default_client_config(quinn_client(tls, &TransportLimits::client_default()).expect("quic config"));
    endpoint
}

/// Why a raw session failed: the application close code when the RSU closed with one.
#[derive(Debug)]
struct Refusal {
    code: Option<u64>,
    #[expect(dead_code, reason = "read through Debug in assertion messages")]
    text: String,
}

fn refusal(connection: Option<&quinn::Connection>, text: impl ToString) -> Refusal {
    let reason = connection.and_then(quinn::Connection::close_reason);
    let code = match &reason {
        Some(quinn::ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
        _ => None,
    };
    Refusal { code, text: reason.map_or_else(|| text.to_string(), |r| r.to_string()) }
}

/// A session a raw client established.
#[derive(Debug)]
struct RawSession {
    connection: quinn::Connection,
    server_hello: ServerHello,
    /// The control stream, open for the session's life.
    _control: (quinn::SendStream, quinn::RecvStream),
}

/// Connects and exchanges hellos with a raw client; Err when refused at any point.
async fn raw_session(endpoint: &quinn::Endpoint, addr: SocketAddr, hello: &ClientHello) -> Result<RawSession, Refusal> {
    let connecting = endpoint.connect(addr, "localhost").map_err(|e| refusal(None, e))?;
    let connection = connecting.await.map_err(|e| refusal(None, e))?;
    let (mut send, mut recv) = connection.open_bi().await.map_err(|e| refusal(Some(&connection), e))?;
    v2x_link::framing::write_message(&mut send, hello).await.map_err(|e| refusal(Some(&connection), e))?;
    let reply = tokio::time::timeout(PATIENCE, v2x_link::framing::read_message(&mut recv, 65536))
        .await
        .map_err(|e| refusal(Some(&connection), e))?;
    match reply {
        Ok(Some(bytes)) => {
            let server_hello = v2x_proto::decode(&bytes).map_err(|e| refusal(Some(&connection), e))?;
            Ok(RawSession { connection, server_hello, _control: (send, recv) })
        }
        Ok(None) => Err(refusal(Some(&connection), "no ServerHello")),
        Err(e) => Err(refusal(Some(&connection), e)),
    }
}

fn vehicle_hello(id: &str) -> ClientHello {
    ClientHello { versions: vec![1], role: Role::Vehicle, id: id.into(), subscription: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_alpns_and_hellos_are_refused() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let roots = || load_roots(&fixture.pki.ca_cert).expect("roots");
    let (_, veh1) = &fixture.pki.vehicles[0];
    let veh1 = CertKey::load(&veh1.cert, &veh1.key).expect("cert");

    // The good case works with the raw client.
    let good = raw_endpoint(client_tls(roots(), Some(&veh1), &[ALPN]).expect("tls"));
    raw_session(&good, server.addr, &vehicle_hello("veh-0001")).await.expect("a good client is accepted");

    // No client certificate.
    let anonymous = raw_endpoint(client_tls(roots(), None, &[ALPN]).expect("tls"));
    let err = raw_session(&anonymous, server.addr, &vehicle_hello("veh-0001")).await.expect_err("no certificate");
    assert_eq!(err.code, None, "refused in the TLS handshake: {err:?}");

    // A certificate from another CA (the client trusts the real RSU).
    let other = tempfile::tempdir().expect("tempdir");
    let other_pki = v2x_link::pki::write_dev_pki(
        other.path(),
        "rsu-test",
        &v2x_link::pki::default_server_names(),
        &["veh-0001".to_owned()],
        &[],
    )
    .expect("other pki");
    let foreign = CertKey::load(&other_pki.vehicles[0].1.cert, &other_pki.vehicles[0].1.key).expect("cert");
    let foreign_client = raw_endpoint(client_tls(roots(), Some(&foreign), &[ALPN]).expect("tls"));
    let err = raw_session(&foreign_client, server.addr, &vehicle_hello("veh-0001")).await.expect_err("foreign CA");
    assert_eq!(err.code, None, "refused in the TLS handshake: {err:?}");

    // Wrong ALPN.
    let wrong_alpn = raw_endpoint(client_tls(roots(), Some(&veh1), &[b"v2x/0", b"h3"]).expect("tls"));
    let err = raw_session(&wrong_alpn, server.addr, &vehicle_hello("veh-0001")).await.expect_err("wrong ALPN");
    assert_eq!(err.code, None, "refused in the TLS handshake: {err:?}");

    // A hello claiming another vehicle's id, an unknown version, a sensor not in the site.
    let err = raw_session(&good, server.addr, &vehicle_hello("veh-0002")).await.expect_err("identity mismatch");
    assert_eq!(err.code, Some(u64::from(CloseCode::IdentityMismatch.code())), "{err:?}");
    let mut old = vehicle_hello("veh-0001");
    old.versions = vec![7];
    let err = raw_session(&good, server.addr, &old).await.expect_err("unsupported version");
    assert_eq!(err.code, Some(u64::from(CloseCode::UnsupportedVersion.code())), "{err:?}");
    match SensorClient::connect(&fixture.sensor(server.addr, "lidar-x")).await {
        Err(ClientError::Closed { code: CloseCode::UnknownSensor, .. }) => {}
        Err(e) => panic!("expected UNKNOWN_SENSOR, got {e}"),
        Ok(_) => panic!("a sensor outside the site was accepted"),
    }

    // Revocation: a connected vehicle is closed once its certificate is revoked, and cannot
    // come back.
    let settings = fixture.vehicle(server.addr, "veh-0003");
    let mut victim = VehicleClient::connect(&settings, Some(Subscription::Everything)).await.expect("connects");
    victim.next_frame().await.expect("frames flow before revocation");
    let serial = fixture.serial("vehicle/veh-0003");
    std::fs::write(&fixture.pki.revocations, format!("# revoked by the test\n{serial}\n")).expect("revoke");
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Err(e) = victim.next_frame().await {
                return e;
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(matches!(closed, ClientError::Closed { code: CloseCode::Revoked, .. }), "{closed}");
    assert!(VehicleClient::connect(&settings, None).await.is_err(), "a revoked certificate is refused");

    let tls_refusals = server.stats.rejected(Reject::TlsHandshake);
    assert!(tls_refusals >= 3, "no certificate, foreign CA, wrong ALPN, revoked: {tls_refusals}");
    // Each session refusal under the reason PROTOCOL.md lists for its close code.
    assert_eq!(server.stats.rejected(Reject::IdentityMismatch), 1, "the hello claiming veh-0002");
    assert_eq!(server.stats.rejected(Reject::UnsupportedVersion), 1);
    assert_eq!(server.stats.rejected(Reject::UnknownSensor), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_counted_and_ignored_while_good_traffic_continues() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let Feed { sensor, stop, feeder } = feed_lidar(&fixture, &server).await;
    let mut vehicle = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle");
    frame_with(&mut vehicle, 2).await;
    let stats = &server.stats;
    let position = v2x_proto::sample::site().origin;

    // A vehicle reporting another vehicle's id.
    for _ in 0..5 {
        vehicle.send_state(&state_of("veh-0002", position)).expect("datagram");
    }
    wait_for("identity mismatches", || stats.rejected(Reject::IdentityMismatch) >= 5).await;

    // Malformed, oversized and absurd datagrams.
    let connection = vehicle.connection().clone();
    connection.send_datagram(vec![0xff; 40].into()).expect("datagram");
    connection.send_datagram(vec![0x08; 1100].into()).expect("datagram");
    let mut absurd = wire::VehicleState::from(&state_of("veh-0001", position));
    absurd.position.as_mut().expect("position").lat_1e7deg = 1_800_000_000; // 180 degrees
    connection.send_datagram(absurd.encode_to_vec().into()).expect("datagram");
    let mut too_fast = wire::VehicleState::from(&state_of("veh-0001", position));
    too_fast.speed = 9000;
    connection.send_datagram(too_fast.encode_to_vec().into()).expect("datagram");
    wait_for("malformed", || stats.rejected(Reject::Malformed) >= 1).await;
    wait_for("oversized", || stats.rejected(Reject::Oversized) >= 1).await;
    wait_for("invalid", || stats.rejected(Reject::Invalid) >= 2).await;

    // A state from far in the future and one from long ago.
    let mut future = state_of("veh-0001", position);
    future.time = now().add_secs(60.0);
    vehicle.send_state(&future).expect("datagram");
    let mut old = state_of("veh-0001", position);
    old.time = now().add_secs(-60.0);
    vehicle.send_state(&old).expect("datagram");
    wait_for("from the future", || stats.rejected(Reject::FromFuture) >= 1).await;
    wait_for("late", || stats.rejected(Reject::Late) >= 1).await;

    // A vehicle may not open streams.
    let mut stream = connection.open_uni().await.expect("stream");
    stream.write_all(b"hello").await.expect("write");
    let _ = stream.finish();
    wait_for("not allowed", || stats.rejected(Reject::NotAllowed) >= 1).await;

    // The sensor: malformed bytes, an oversized frame, another sensor's frame.
    let malformed_before = stats.rejected(Reject::Malformed);
    sensor.send_bytes(&[0x0a, 0xff, 0xff, 0xff]).await.expect("stream");
    wait_for("malformed frame", || stats.rejected(Reject::Malformed) > malformed_before).await;
    let oversized_before = stats.rejected(Reject::Oversized);
    // Not waiting for the write: the RSU stops the stream once the limit is passed.
    let _ = sensor.send_bytes(&vec![0u8; 100_000]).await;
    wait_for("oversized frame", || stats.rejected(Reject::Oversized) > oversized_before).await;
    let mut impostor = two_cars(1);
    impostor.sensor_id = "cam-n".into();
    let mismatches_before = stats.rejected(Reject::IdentityMismatch);
    sensor.send_frame(&impostor).await.expect("stream");
    wait_for("sensor identity mismatch", || stats.rejected(Reject::IdentityMismatch) > mismatches_before).await;

    // Good traffic went on all along and still does.
    let frames_in = Stats::get(&stats.sensor_frames_in);
    let mut fresh = 0;
    let deadline = Instant::now() + PATIENCE;
    while fresh < 5 && Instant::now() < deadline {
        let frame = vehicle.next_frame().await.expect("frames keep coming");
        if frame.participants.len() == 2 {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 5, "frames with both cars keep coming");
    wait_for("more sensor frames", || Stats::get(&stats.sensor_frames_in) > frames_in).await;
    stop.cancel();
    feeder.await.expect("feeder");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_vehicle_does_not_slow_the_others() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let Feed { sensor: _, stop, feeder } = feed_lidar(&fixture, &server).await;
    let mut reader = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle");
    frame_with(&mut reader, 2).await;

    // Frame rate and latency (frame time to reception) over a window.
    async fn measure(vehicle: &mut VehicleClient, window: Duration) -> (f64, Vec<f64>) {
        let start = Instant::now();
        let mut latencies = Vec::new();
        while start.elapsed() < window {
            let frame = vehicle.next_frame().await.expect("frame");
            latencies.push(now().secs_since(frame.time));
        }
        (latencies.len() as f64 / start.elapsed().as_secs_f64(), latencies)
    }
    let (rate_alone, mut lat_alone) = measure(&mut reader, Duration::from_secs(2)).await;

    // A vehicle that never reads a frame (its stream credit and windows fill up).
    let stalled = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0002"), Some(Subscription::Everything))
        .await
        .expect("stalled vehicle");
    let (rate_with, mut lat_with) = measure(&mut reader, Duration::from_secs(3)).await;
    let superseded = server.stats.undelivered_count(rsu::serve::stats::Undelivered::Superseded);

    let (p50_alone, p99_alone) = (percentile(&mut lat_alone, 50.0), percentile(&mut lat_alone, 99.0));
    let (p50_with, p99_with) = (percentile(&mut lat_with, 50.0), percentile(&mut lat_with, 99.0));
    println!(
        "alone: {rate_alone:.1} Hz, latency p50 {:.1} ms p99 {:.1} ms; with a stalled vehicle: {rate_with:.1} Hz, \
         p50 {:.1} ms p99 {:.1} ms; frames superseded {superseded}",
        p50_alone * 1e3,
        p99_alone * 1e3,
        p50_with * 1e3,
        p99_with * 1e3
    );
    assert!(rate_alone > 12.0, "20 Hz configured, got {rate_alone:.1} Hz alone");
    assert!(rate_with > 0.8 * rate_alone, "rate with a stalled vehicle {rate_with:.1} Hz vs {rate_alone:.1} Hz");
    assert!(p50_with < p50_alone + 0.05, "p50 {p50_with:.3} s vs {p50_alone:.3} s alone");
    assert!(p99_with < 0.5, "p99 {p99_with:.3} s");
    assert!(superseded > 0, "the stalled vehicle's frames are abandoned");
    drop(stalled);
    stop.cancel();
    feeder.await.expect("feeder");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_as_busy() {
    let fixture = Fixture::new("");
    let text = std::fs::read_to_string(&fixture.config).expect("config");
    std::fs::write(&fixture.config, text.replace("[limits]\n", "[limits]\nmax_connections = 2\n")).expect("config");
    let server = start(&fixture);
    let mut first = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("first vehicle");
    let _second = VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0002"), Some(Subscription::Everything))
        .await
        .expect("second vehicle");
    match VehicleClient::connect(&fixture.vehicle(server.addr, "veh-0003"), None).await {
        Err(ClientError::Closed { code: CloseCode::ServerBusy, .. }) => {}
        Err(other) => panic!("expected SERVER_BUSY, got {other}"),
        Ok(_) => panic!("a third connection was accepted over the limit of 2"),
    }
    assert!(server.stats.rejected(Reject::ConnectionLimit) >= 1);
    // The connected vehicles keep being served.
    frame_with(&mut first, 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vehicles_sharing_one_endpoint_each_get_their_own_session_and_frames() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let Feed { sensor: _, stop, feeder } = feed_lidar(&fixture, &server).await;
    let endpoint = ClientEndpoint::for_server(server.addr).expect("endpoint");
    let mut vehicles = Vec::new();
    for id in common::VEHICLES {
        let settings = fixture.vehicle(server.addr, id);
        let vehicle = VehicleClient::connect_on(&endpoint, &settings, Some(Subscription::Everything))
            .await
            .unwrap_or_else(|e| panic!("{id} connects on the shared endpoint: {e}"));
        assert_eq!(vehicle.id(), id, "each session is the vehicle of its own certificate");
        vehicles.push(vehicle);
    }
    // One UDP socket carries four distinct connections.
    assert_ne!(endpoint.local_addr().expect("local addr").port(), 0);
    assert_eq!(endpoint.open_connections(), common::VEHICLES.len());
    let ids: std::collections::BTreeSet<usize> = vehicles.iter().map(|v| v.connection().stable_id()).collect();
    assert_eq!(ids.len(), common::VEHICLES.len());
    wait_for("the RSU to count four sessions", || {
        server.stats.sessions.load(std::sync::atomic::Ordering::Relaxed) >= 4
    })
    .await;
    for vehicle in &mut vehicles {
        frame_with(vehicle, 2).await;
    }
    // Sessions are independent: closing one leaves the others served.
    let closed = vehicles.remove(0);
    closed.close().await;
    for vehicle in &mut vehicles {
        frame_with(vehicle, 2).await;
    }
    // A vehicle's state sent on the shared socket reaches the RSU as that vehicle's.
    let before = server.stats.vehicle_states_in.load(std::sync::atomic::Ordering::Relaxed);
    let position = v2x_proto::sample::vehicle_state().position;
    for vehicle in &vehicles {
        vehicle.send_state(&state_of(vehicle.id(), position)).expect("state");
    }
    wait_for("the RSU to take the states in", || {
        server.stats.vehicle_states_in.load(std::sync::atomic::Ordering::Relaxed) >= before + 3
    })
    .await;
    for vehicle in vehicles {
        vehicle.close().await;
    }
    endpoint.wait_idle(PATIENCE).await;
    assert_eq!(endpoint.open_connections(), 0, "every close drained");
    stop.cancel();
    feeder.await.expect("feeder");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_of_vehicles_is_served_and_measures_latency() {
    let fixture = Fixture::new("");
    let server = start(&fixture);
    let Feed { sensor: _, stop, feeder } = feed_lidar(&fixture, &server).await;
    let site = Arc::new(rsu_site::SiteModel::embedded().expect("site"));
    let setup = vehicle_sim::swarm::SwarmSetup {
        vehicles: common::VEHICLES.iter().map(|v| fixture.vehicle(server.addr, v)).collect(),
        site: site.clone(),
        duration_s: 3.0,
        radius_m: 300,
        seed: 1,
        endpoints: 1,
        record: true,
    };
    let report = vehicle_sim::swarm::run(setup).await.expect("swarm");
    stop.cancel();
    feeder.await.expect("feeder");
    let text = vehicle_sim::swarm::render(&report);
    assert_eq!(report.connected, 4, "{text}");
    assert!(report.failures.is_empty(), "{text}");
    assert_eq!(report.endpoints, 1, "all four on one endpoint: {text}");
    // About 3 s each at the broadcast rate (the first second spreads the connections).
    assert!(report.frames >= 4 * 20, "{text}");
    assert_eq!(report.vehicles.len(), 4, "{text}");
    assert!(report.vehicles.iter().all(|v| v.frames >= 10), "every vehicle got its own frames: {text}");
    assert_eq!(report.vehicles.iter().map(|v| v.frames).sum::<u64>(), report.frames);
    assert!(report.states_sent >= 4 * 20 && report.state_errors == 0, "{text}");
    let capture = &report.capture_to_receipt;
    assert!(capture.count >= 80, "frames carry the lidar's capture time: {text}");
    assert_eq!(report.without_health, 0, "every vehicle learns the sensor health in its first frame: {text}");

    // What the vehicles received, recorded: every frame, by vehicle, with its receipt time.
    let log = fixture.path().join("swarm.mcap");
    vehicle_sim::swarm::write_log(&log, &site, 1, &report).expect("the swarm's log");
    let reader = v2x_replays::ReplayReader::open(&log).expect("the log opens");
    assert_eq!(reader.meta().scenario, "swarm");
    let mut per_vehicle = std::collections::BTreeMap::<String, u64>::new();
    for item in reader {
        let message = item.expect("every message decodes");
        let v2x_replays::ReplayBody::Received(r) = message.body else { continue };
        assert_eq!(r.subscription_radius_m, Some(300));
        assert!(message.publish_time >= r.frame.time, "received after it was made");
        *per_vehicle.entry(r.vehicle_id).or_default() += 1;
    }
    let counted: std::collections::BTreeMap<String, u64> =
        report.vehicles.iter().map(|v| (v.id.clone(), v.frames)).collect();
    assert_eq!(per_vehicle, counted, "every frame each vehicle received is in the log");
    assert!(capture.p50_ms > 0.0 && capture.p99_ms < 1000.0, "{text}");
    assert!(text.contains("capture→receipt") && text.contains("p99.9"), "{text}");
    let taken = server.stats.vehicle_states_in.load(std::sync::atomic::Ordering::Relaxed);
    assert!(taken >= 4 * 20, "the RSU took the swarm's states in: {taken}");
    // Every frame the RSU handed to QUIC for the swarm was received, reset (abandoned) or is
    // counted superseded by the daemon; none vanish on loopback.
    let sent = server.stats.frames_sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(report.frames <= sent, "received {} of {sent} sent: {text}", report.frames);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_time_out_and_live_ones_stay() {
    let fixture = Fixture::new("idle_timeout_s = 1.0\n");
    let server = start(&fixture);
    let with_keep_alive = |id: &str, keep_alive_s: Option<f64>| {
        let (_, paths) = fixture.pki.sensors.iter().find(|(s, _)| s == id).expect("sensor certificate");
        let mut settings = fixture.sensor(server.addr, id);
        let cert = CertKey::load(&paths.cert, &paths.key).expect("cert");
        let tls = client_tls(load_roots(&fixture.pki.ca_cert).expect("roots"), Some(&cert), &[ALPN]).expect("tls");
        let limits = TransportLimits { idle_timeout_s: 60.0, keep_alive_s, ..TransportLimits::client_default() };
        settings.quic = quinn_client(tls, &limits).expect("quinn");
        settings
    };
    let silent = SensorClient::connect(&with_keep_alive(LIDAR, None)).await.expect("silent sensor connects");
    let alive = SensorClient::connect(&with_keep_alive("cam-n", Some(0.3))).await.expect("live sensor connects");
    let started = Instant::now();
    let reason = tokio::time::timeout(PATIENCE, silent.connection().closed()).await.expect("closed in time");
    assert!(matches!(reason, quinn::ConnectionError::TimedOut), "{reason:?}");
    let after_s = started.elapsed().as_secs_f64();
    assert!((0.5..5.0).contains(&after_s), "closed {after_s} s after the handshake (idle timeout 1 s)");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(alive.connection().close_reason().is_none(), "a client sending keep-alives is not idle");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_vehicle_is_flagged_in_the_recording_and_its_reports_not_fused() {
    let rec = tempfile::tempdir().expect("tempdir");
    let fixture = Fixture::new(&format!(
        "[recording]\nenabled = true\ndir = {:?}\nfsync_interval_s = 0.1\n",
        rec.path().display().to_string()
    ));
    let running = Running::start(&fixture, Some(256));
    let addr = running.addr;
    let mut vehicle = VehicleClient::connect(&fixture.vehicle(addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("connects");
    let position = v2x_proto::sample::vehicle_state().position;
    let named = |f: &RoadsideFrame| f.participants.iter().any(|p| p.v2x_id.as_deref() == Some("veh-0001"));
    // Standing still for 1 s: fused, the vehicle is named in the broadcast.
    for _ in 0..10 {
        vehicle.send_state(&state_of("veh-0001", position)).expect("state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::timeout(PATIENCE, async { while !named(&vehicle.next_frame().await.expect("frame")) {} })
        .await
        .expect("the honest vehicle is named");
    // One report claiming 255 km/h (over the 70 m/s limit), then standing still again.
    for k in 0..10 {
        let mut state = state_of("veh-0001", position);
        if k == 0 {
            state.speed_mps = 71.0;
        }
        vehicle.send_state(&state).expect("state");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The frames after the lie no longer name the vehicle (it is flagged for 10 s).
    let frame = tokio::time::timeout(PATIENCE, async {
        loop {
            let f = vehicle.next_frame().await.expect("frame");
            if f.time > now().add_secs(-0.05) {
                return f;
            }
        }
    })
    .await
    .expect("a fresh frame");
    assert!(!named(&frame), "the flagged vehicle is not fused: {frame:?}");
    vehicle.close().await;
    let summary = running.stop().await;
    let mut events = Vec::new();
    for file in &summary.recordings {
        let bytes = std::fs::read(file).expect("recording");
        for record in mcap::read::LinearReader::new(&bytes).expect("mcap") {
            if let mcap::records::Record::Metadata(m) = record.expect("record") {
                events.push(m);
            }
        }
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].name, rsu::serve::flags::EVENT_NAME);
    assert_eq!(events[0].metadata["vehicle_id"], "veh-0001");
    assert_eq!(events[0].metadata["reason"], "speed");
}
