//! The MAP and road safety information end to end, the daemon in-process on 127.0.0.1 serving
//! the representative Yancheng site (PROTOCOL §2.9, §2.10): a vehicle of protocol version 4 gets
//! the MAP on its control stream when it connects and again when it changes its subscription,
//! with the intersection's lanes and connections on the signal groups its controller's SPaT
//! carries; when the lidar sees a car standing in a travel lane, the vehicle gets a stopped-vehicle
//! RSI event naming the car's track, and the recording holds it. A version 3 vehicle gets nothing
//! on its control stream.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Fixture, LIDAR, Running, now};
use nalgebra::Point3;
use rsu_fusion::{Detections, SensorFrame};
use v2x_link::client::{SensorClient, SignalControllerClient, VehicleClient};
use v2x_proto::domain::{
    ClientHello, LaneDirection, Maneuver, MapData, Role, RsiEvent, RsiEventPhase, RsiEventType, ServerControl,
    Subscription,
};
use v2x_replays::{ReplayBody, ReplayReader};

/// Generous bound for what should happen within a few seconds on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Where the test's car stands: in wb-1 (westbound, y = +1.75 m), 40 m west of the intersection's
/// centre, past it: no stop line near [m, site frame].
const CAR: [f64; 2] = [-40.0, 1.75];

/// A daemon configuration on the embedded site's files with its map, a fast stopped-vehicle
/// onset, the intersection's controller and a recording in `rec`.
fn fixture(rec: &std::path::Path) -> Fixture {
    let site_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("site/yancheng");
    let fixture = Fixture::new(&format!(
        "[map]\nsite_dir = {:?}\n\n[rsi]\nstopped_after_s = 1.0\n\n\
         [recording]\nenabled = true\ndir = {:?}\nfsync_interval_s = 0.1\n\n\
         [[signals.controllers]]\nid = \"tsc-1\"\nintersection_id = 1201\n",
        site_dir.display().to_string(),
        rec.display().to_string()
    ));
    // The daemon serves the site the map is drawn on.
    std::fs::write(fixture.path().join("site.toml"), rsu_site::embedded::SITE_TOML).expect("site");
    fixture
}

/// A frame of lidar-ne seeing a car standing at [`CAR`], captured now.
fn standing_car(sequence: u64) -> SensorFrame {
    let site = rsu_site::embedded_site_config().expect("site");
    let lidar = site.sensor(LIDAR).expect("lidar-ne");
    let in_sensor = lidar.world_from_sensor.inverse() * Point3::new(CAR[0], CAR[1], 0.75);
    let mut frame = v2x_proto::sample::lidar_frame();
    frame.sequence = sequence;
    frame.capture_time = now();
    if let Detections::Lidar(boxes) = &mut frame.detections {
        boxes[0].center_in_sensor = in_sensor;
        boxes[0].yaw_rad = std::f64::consts::PI - lidar.world_from_sensor.rotation.euler_angles().2;
    }
    frame
}

/// The next control message of `vehicle` that `pick` takes.
async fn next_where<T>(vehicle: &mut VehicleClient, mut pick: impl FnMut(ServerControl) -> Option<T>) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(t) = pick(vehicle.next_control().await.expect("a control message")) {
                return t;
            }
        }
    })
    .await
    .expect("the control message in time")
}

fn map_of(control: ServerControl) -> Option<MapData> {
    match control {
        ServerControl::Map(map) => Some(map),
        ServerControl::Rsi(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_vehicle_gets_the_map_and_a_stopped_vehicle_event() {
    let rec = tempfile::tempdir().expect("tempdir");
    let fixture = fixture(rec.path());
    let running = Running::start(&fixture, Some(4096));
    let addr = running.addr;

    let mut vehicle = VehicleClient::connect(&fixture.vehicle(addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle connects");
    assert_eq!(vehicle.server_hello().version, 4);
    let map = next_where(&mut vehicle, map_of).await;
    let [intersection] = &map.intersections[..] else { panic!("one intersection: {map:?}") };
    assert_eq!(intersection.intersection_id, 1201);
    let lane = |name: &str| intersection.lanes.iter().find(|l| l.name == name).expect("lane");
    let eb1 = lane("eb-1/in");
    assert_eq!(eb1.direction, LaneDirection::Ingress);
    assert_eq!(eb1.maneuvers, [Maneuver::Straight, Maneuver::Left]);
    assert_eq!(eb1.width_cm, 350);
    let mapped_groups: BTreeSet<u8> =
        intersection.lanes.iter().flat_map(|l| l.connections.iter().filter_map(|c| c.signal_group)).collect();

    // The site's controller runs its plan; the SPaT of 1201 carries exactly the MAP's groups.
    let plan = rsu_site::SiteModel::embedded().expect("site").signal_plan;
    let controller = SignalControllerClient::connect(&fixture.signal(addr, "tsc-1")).await.expect("controller");
    let spat = tokio::time::timeout(PATIENCE, async {
        loop {
            let state = vehicle_sim::signals::controller_state(&plan, 3.0, now(), "tsc-1");
            controller.send_state(&state).expect("state sent");
            if let Ok(Ok(spat)) = tokio::time::timeout(Duration::from_millis(300), vehicle.next_spat()).await
                && spat.intersection_id == 1201
            {
                return spat;
            }
        }
    })
    .await
    .expect("a SPaT of 1201");
    let spat_groups: BTreeSet<u8> = spat.movements.iter().map(|m| m.signal_group).collect();
    assert_eq!(mapped_groups, spat_groups);
    assert_eq!(mapped_groups, BTreeSet::from([1, 2]));

    // The lidar sees a car standing in wb-1: after the onset (1 s here) a stopped-vehicle event.
    let sensor = SensorClient::connect(&fixture.sensor(addr, LIDAR)).await.expect("sensor connects");
    let stop = tokio_util::sync::CancellationToken::new();
    let feeding = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for sequence in 1.. {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if sensor.send_frame(&standing_car(sequence)).await.is_err() {
                    break;
                }
            }
            sensor.close().await;
        })
    };
    let pick_start = |control: ServerControl| match control {
        ServerControl::Rsi(e) if e.phase == RsiEventPhase::Start => Some(e),
        _ => None,
    };
    let event: RsiEvent = next_where(&mut vehicle, pick_start).await;
    assert_eq!(event.event_type, RsiEventType::StoppedVehicle, "{event:?}");
    assert_eq!(event.lane, "wb-1");
    let [x_m, y_m] = event.position_dm.map(|v| f64::from(v) / 10.0);
    assert!((x_m - CAR[0]).abs() < 1.0 && (y_m - CAR[1]).abs() < 1.0, "{event:?}");
    assert_eq!(event.track_ids.len(), 1);
    assert!(event.start_time < event.time);
    // The car is a participant of the broadcast under the event's track id.
    let frame = tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = vehicle.next_frame().await.expect("frame");
            if !frame.participants.is_empty() {
                return frame;
            }
        }
    })
    .await
    .expect("a frame with the car");
    assert!(frame.participants.iter().any(|p| p.id == event.track_ids[0]), "{:?}", frame.participants);

    // A subscription change brings the MAP again.
    vehicle.subscribe(&Subscription::AroundMe { radius_m: 300 }).await.expect("subscribe");
    let again = next_where(&mut vehicle, map_of).await;
    assert_eq!(again.intersections, map.intersections);
    assert!(vehicle.control_rejected().is_empty(), "{:?}", vehicle.control_rejected());

    // A version 3 vehicle gets no control message (nor a MAP) at all.
    let settings = fixture.vehicle(addr, "veh-0002");
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    let connection = endpoint
        .connect_with(settings.quic.clone(), settings.server_addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = connection.open_bi().await.expect("control stream");
    let hello = ClientHello {
        versions: vec![3, 2, 1],
        role: Role::Vehicle,
        id: settings.identity.id.clone(),
        subscription: Some(Subscription::Everything),
    };
    v2x_link::framing::write_message(&mut send, &hello).await.expect("hello");
    let server_hello = v2x_link::framing::read_message(&mut recv, 65536).await.expect("read").expect("ServerHello");
    let server_hello: v2x_proto::domain::ServerHello = v2x_proto::decode(&server_hello).expect("decodes");
    assert_eq!(server_hello.version, 3);
    let more = tokio::time::timeout(Duration::from_secs(2), v2x_link::framing::read_message(&mut recv, 65536)).await;
    assert!(more.is_err(), "a version 3 vehicle got a control message: {more:?}");
    connection.close(0u32.into(), b"bye");

    stop.cancel();
    feeding.await.expect("feeder");
    controller.close().await;
    vehicle.close().await;
    let summary = running.stop().await;
    // The recording holds the event.
    let mut recorded = Vec::new();
    for file in &summary.recordings {
        for item in ReplayReader::open(file).expect("recording opens") {
            if let ReplayBody::Rsi(e) = item.expect("decodes").body {
                recorded.push(e);
            }
        }
    }
    assert!(recorded.iter().any(|e| e.event_id == event.event_id && e.phase == RsiEventPhase::Start), "{recorded:?}");
}
