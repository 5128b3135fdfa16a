//! The session handshake over real QUIC on 127.0.0.1 with the development PKI, without the
//! daemon: a minimal server built from `v2x_link` accepts clients; its refusals carry the
//! documented close codes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use v2x_link::client::{ClientError, ClientSettings, SensorClient, VehicleClient};
use v2x_link::identity::Identity;
use v2x_link::pki::{DevPkiFiles, default_server_names, write_dev_pki};
use v2x_link::revocation::Revocations;
use v2x_link::session::{SessionError, accept_session, read_control};
use v2x_link::tls::{CertKey, TransportLimits, load_roots, quinn_server, server_tls};
use v2x_link::{CloseCode, PROTOCOL_VERSION};
use v2x_proto::domain::{ServerHello, Subscription};

fn pki(dir: &Path) -> DevPkiFiles {
    write_dev_pki(dir, "rsu-1", &default_server_names(), &["veh-1".to_owned()], &["lidar-1".to_owned()]).expect("pki")
}

fn server(files: &DevPkiFiles) -> quinn::Endpoint {
    let cert = CertKey::load(&files.server.cert, &files.server.key).expect("server cert");
    let tls = server_tls(&cert, load_roots(&files.ca_cert).expect("roots"), Revocations::none()).expect("tls");
    let config = quinn_server(tls, &TransportLimits::server_default()).expect("quic");
    quinn::Endpoint::server(config, SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind")
}

fn hello_of(identity: &Identity) -> ServerHello {
    ServerHello {
        version: PROTOCOL_VERSION,
        rsu_id: format!("rsu-for-{}", identity.id),
        site_origin: v2x_proto::sample::SAMPLE_ORIGIN,
        broadcast_rate_hz: 10.0,
        default_radius_m: 100,
    }
}

/// Accepts one connection and runs the server handshake with `timeout`.
async fn accept_one(endpoint: &quinn::Endpoint, timeout: Duration) -> Result<v2x_link::session::Session, SessionError> {
    let incoming = endpoint.accept().await.expect("incoming");
    let connection = incoming.await.expect("QUIC handshake");
    accept_session(connection, timeout, |identity, _| Ok(hello_of(identity))).await
}

fn settings(files: &DevPkiFiles, addr: SocketAddr, vehicle: bool) -> ClientSettings {
    let paths = if vehicle { &files.vehicles[0].1 } else { &files.sensors[0].1 };
    ClientSettings::from_files(addr, "localhost", &files.ca_cert, &paths.cert, &paths.key).expect("settings")
}

#[tokio::test]
async fn hellos_are_exchanged_and_subscriptions_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = pki(dir.path());
    let endpoint = server(&files);
    let addr = endpoint.local_addr().expect("addr");
    let server_side = tokio::spawn(async move {
        let mut session = accept_one(&endpoint, Duration::from_secs(5)).await.expect("session");
        assert_eq!(session.identity, Identity::vehicle("veh-1"));
        assert_eq!(session.hello.subscription, Some(Subscription::AroundMe { radius_m: 30 }));
        let change = read_control(&mut session.control_recv).await.expect("control").expect("a message");
        assert_eq!(change, Subscription::Everything);
        session.connection.closed().await;
    });
    let mut client =
        VehicleClient::connect(&settings(&files, addr, true), Some(Subscription::AroundMe { radius_m: 30 }))
            .await
            .expect("connects");
    assert_eq!(client.server_hello().rsu_id, "rsu-for-veh-1");
    assert_eq!(client.id(), "veh-1");
    client.subscribe(&Subscription::Everything).await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.close().await;
    server_side.await.expect("server side");
}

#[tokio::test]
async fn a_silent_client_gets_hello_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = pki(dir.path());
    let endpoint = server(&files);
    let addr = endpoint.local_addr().expect("addr");
    let server_side = tokio::spawn(async move { accept_one(&endpoint, Duration::from_millis(300)).await });
    // Connect at the QUIC level only and say nothing.
    let s = settings(&files, addr, false);
    let mut client = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("client");
    client.set_default_client_config(s.quic.clone());
    let connection = client.connect(addr, "localhost").expect("connect").await.expect("handshake");
    let err = server_side.await.expect("task").expect_err("no hello");
    assert_eq!(err.code, CloseCode::HelloTimeout);
    match connection.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), u64::from(CloseCode::HelloTimeout.code()));
        }
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test]
async fn a_refusal_reaches_the_client_with_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = pki(dir.path());
    let endpoint = server(&files);
    let addr = endpoint.local_addr().expect("addr");
    let server_side = tokio::spawn(async move {
        let incoming = endpoint.accept().await.expect("incoming");
        let connection = incoming.await.expect("handshake");
        let result = accept_session(connection, Duration::from_secs(5), |_, _| {
            Err((CloseCode::UnknownSensor, "not in this site".to_owned()))
        })
        .await;
        (result.expect_err("refused"), endpoint)
    });
    match SensorClient::connect(&settings(&files, addr, false)).await {
        Err(ClientError::Closed { code, reason }) => {
            assert_eq!(code, CloseCode::UnknownSensor);
            assert_eq!(reason, "not in this site");
        }
        Err(e) => panic!("expected a close code, got {e}"),
        Ok(_) => panic!("the refusal was ignored"),
    }
    let (err, _endpoint) = server_side.await.expect("task");
    assert_eq!(err.code, CloseCode::UnknownSensor);
    // A vehicle client refuses a sensor certificate before connecting.
    assert!(matches!(
        VehicleClient::connect(&settings(&files, addr, false), None).await,
        Err(ClientError::WrongRole { .. })
    ));
}

/// A site PKI made here with rcgen, for certificates the development PKI does not issue: the CA
/// (DER), the RSU's certificate, and a client certificate with the subjectAltNames `sans` (none
/// with a v2x identity, or one naming a role clients may not have).
fn custom_pki(sans: Vec<rcgen::SanType>) -> (rustls::pki_types::CertificateDer<'static>, CertKey, CertKey) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let certkey = |cert: &rcgen::Certificate, key: &KeyPair| CertKey {
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).expect("server cert");
    let client_key = KeyPair::generate().expect("client key");
    let mut client = CertificateParams::default();
    client.subject_alt_names = sans;
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).expect("client cert");
    (ca_cert.der().clone(), certkey(&server_cert, &server_key), certkey(&client_cert, &client_key))
}

#[tokio::test]
async fn a_certificate_without_a_usable_identity_gets_no_identity() {
    use v2x_link::tls::{client_tls, quinn_client};
    let dns = || rcgen::SanType::DnsName("veh-9.example".try_into().expect("dns"));
    let rsu_uri = || rcgen::SanType::URI("v2x://rsu/rsu-9".try_into().expect("uri"));
    let vehicle_uri = |id: &str| rcgen::SanType::URI(format!("v2x://vehicle/{id}").try_into().expect("uri"));
    let cases = [
        ("no v2x URI", vec![dns()]),
        ("an RSU identity", vec![rsu_uri()]),
        ("two identities", vec![vehicle_uri("veh-9"), vehicle_uri("veh-10")]),
    ];
    for (what, sans) in cases {
        let (ca, server_cert, client_cert) = custom_pki(sans);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).expect("root");
        let tls = server_tls(&server_cert, roots.clone(), Revocations::none()).expect("server tls");
        let config = quinn_server(tls, &TransportLimits::server_default()).expect("quic");
        let endpoint = quinn::Endpoint::server(config, SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = endpoint.local_addr().expect("addr");
        let server_side = tokio::spawn(async move { accept_one(&endpoint, Duration::from_secs(5)).await });
        let client_tls = client_tls(roots, Some(&client_cert), &[v2x_link::ALPN]).expect("client tls");
        let mut client = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("client");
        client.set_default_client_config(quinn_client(client_tls, &TransportLimits::client_default()).expect("quic"));
        // The TLS handshake succeeds (the chain is good); the session is refused with its reason.
        let connection = client.connect(addr, "localhost").expect("connect").await.expect("TLS handshake");
        match connection.closed().await {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code.into_inner(), u64::from(CloseCode::NoIdentity.code()), "{what}");
            }
            other => panic!("{what}: expected NO_IDENTITY, got {other}"),
        }
        let err = server_side.await.expect("task").expect_err("refused");
        assert_eq!(err.code, CloseCode::NoIdentity, "{what}: {err}");
    }
}

/// A frame whose stream is complete is handed out at once, even while an earlier frame's stream
/// is still incomplete (its last packet lost, say): frames are read concurrently, never one
/// stream behind another (PROTOCOL §2.4). The earlier stream, reset later, counts as abandoned.
#[tokio::test]
async fn a_complete_frame_is_not_held_behind_an_incomplete_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = pki(dir.path());
    let endpoint = server(&files);
    let addr = endpoint.local_addr().expect("addr");
    let frame = |count: u32| {
        v2x_proto::encode(&rsu_fusion::RoadsideFrame {
            rsu_id: "rsu-for-veh-1".to_owned(),
            message_count: count,
            time: rsu_fusion::Timestamp::from_nanos(1_795_940_530_000_000_000 + i64::from(count) * 50_000_000),
            reference: v2x_proto::sample::SAMPLE_ORIGIN,
            participants: Vec::new(),
            sensors: Vec::new(),
            perception_regions: Vec::new(),
            newest_capture: None,
        })
    };
    let (reset_now, reset) = tokio::sync::oneshot::channel::<()>();
    let (first, second) = (frame(1), frame(2));
    let server_side = tokio::spawn(async move {
        let session = accept_one(&endpoint, Duration::from_secs(5)).await.expect("session");
        // Frame 1: all but its last byte, and no FIN.
        let mut stalled = session.connection.open_uni().await.expect("stream 1");
        stalled.write_all(&first[..first.len() - 1]).await.expect("write 1");
        // Frame 2: complete.
        let mut complete = session.connection.open_uni().await.expect("stream 2");
        complete.write_all(&second).await.expect("write 2");
        complete.finish().expect("finish 2");
        reset.await.expect("the client had frame 2");
        stalled.reset(v2x_link::StreamCode::FrameSuperseded.varint()).expect("reset 1");
        session.connection.closed().await;
    });
    let client = VehicleClient::connect(&settings(&files, addr, true), None).await.expect("connects");
    let mut frames = client.frame_receiver();
    let got = tokio::time::timeout(Duration::from_secs(3), frames.next())
        .await
        .expect("frame 2 arrives while frame 1 is still incomplete")
        .expect("a frame");
    assert_eq!(got.message_count, 2);
    reset_now.send(()).expect("server waits");
    // The reset stream is skipped: nothing else comes, and it is counted.
    let more = tokio::time::timeout(Duration::from_millis(500), frames.next()).await;
    assert!(more.is_err(), "no other frame: {more:?}");
    assert_eq!(frames.abandoned(), 1);
    client.close().await;
    server_side.await.expect("server side");
}

/// A MAP of one intersection: ingress lane 1 (straight to egress lane 2 on signal group 1).
fn small_map() -> v2x_proto::domain::MapData {
    use v2x_proto::domain::{IntersectionMap, LaneConnection, LaneDirection, LaneNode, Maneuver, MapData, MapLane};
    let lane = |lane_id, direction, nodes: [(i32, i32); 2]| MapLane {
        lane_id,
        name: format!("lane-{lane_id}"),
        direction,
        width_cm: 350,
        nodes: nodes.iter().map(|&(x_cm, y_cm)| LaneNode { x_cm, y_cm }).collect(),
        maneuvers: Vec::new(),
        connections: Vec::new(),
    };
    let mut ingress = lane(1, LaneDirection::Ingress, [(-1350, -175), (-20000, -175)]);
    ingress.maneuvers = vec![Maneuver::Straight];
    ingress.connections =
        vec![LaneConnection { egress_lane_id: 2, maneuver: Maneuver::Straight, signal_group: Some(1) }];
    MapData {
        revision: 0,
        time: v2x_link::wall_now(),
        intersections: vec![IntersectionMap {
            intersection_id: 1201,
            name: "x".into(),
            reference: v2x_proto::sample::SAMPLE_ORIGIN,
            reference_site_cm: [0, 0],
            lanes: vec![ingress, lane(2, LaneDirection::Egress, [(1350, -175), (20000, -175)])],
        }],
    }
}

#[tokio::test]
async fn a_vehicle_refuses_and_counts_bad_maps_and_takes_the_good_one() {
    use v2x_proto::domain::ServerControl;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = pki(dir.path());
    let endpoint = server(&files);
    let addr = endpoint.local_addr().expect("addr");
    let server_side = tokio::spawn(async move {
        let mut session = accept_one(&endpoint, Duration::from_secs(5)).await.expect("session");
        let mut no_nodes = small_map();
        no_nodes.intersections[0].lanes[1].nodes.truncate(1);
        let mut narrow = small_map();
        narrow.intersections[0].lanes[0].width_cm = 90;
        let mut unknown_lane = small_map();
        unknown_lane.intersections[0].lanes[0].connections[0].egress_lane_id = 7;
        let mut bytes = Vec::new();
        for bad in [no_nodes, narrow, unknown_lane] {
            bytes.extend(v2x_proto::encode_length_delimited(&ServerControl::Map(bad)));
        }
        // Not protobuf at all: a length of 3, then a field tag with a truncated varint.
        bytes.extend([3, 0x0a, 0xff, 0xff]);
        bytes.extend(v2x_proto::encode_length_delimited(&ServerControl::Map(small_map())));
        session.control_send.write_all(&bytes).await.expect("written");
        session.connection.closed().await;
    });
    let mut client = VehicleClient::connect(&settings(&files, addr, true), None).await.expect("connects");
    let control = tokio::time::timeout(Duration::from_secs(10), client.next_control()).await.expect("in time");
    let Ok(ServerControl::Map(map)) = control else { panic!("the good MAP: {control:?}") };
    assert_eq!(map.intersections[0].lanes.len(), 2);
    let rejected: Vec<(&str, u64)> = client.control_rejected().iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(rejected, [("inconsistent", 2), ("invalid", 1), ("malformed", 1)]);
    client.close().await;
    server_side.await.expect("server side");
}
