//! Live and replay are one code path: the daemon (in-process, real QUIC and TLS) records every
//! input with its arrival time and every frame it makes; replaying that recording at its
//! recorded arrival and frame times through a fresh engine reproduces every broadcast frame
//! exactly. The vehicle's self-reports are stamped 0 to 250 ms before they are sent (as a real
//! OBU's measurement times are), so they arrive out of sequence and the engine fuses them in
//! their place; the replay must reproduce that too.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, LIDAR, now, two_cars};
use rsu::config::ServeConfig;
use rsu::recorder::Recorder;
use rsu::serve::{Outputs, Server};
use tokio_util::sync::CancellationToken;
use v2x_link::client::{SensorClient, VehicleClient};
use v2x_proto::domain::Subscription;
use v2x_replays::pipeline::replay_recorded;
use v2x_replays::reader::{OpenOptions, ReplayReader};
use v2x_replays::{ReadOrder, ReplayBody};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replayed_at_its_arrival_times_reproduces_the_live_broadcast() {
    let fixture = Fixture::new("[recording]\nenabled = true\ndir = \"rec\"\nfsync_interval_s = 0.2\n");
    let loaded = ServeConfig::load(&fixture.config).expect("config");
    let fusion = loaded.config.fusion.clone();
    let server = Server::bind(loaded.clone()).expect("bind");
    let addr = server.local_addr().expect("addr");
    let recorder = Recorder::start(&loaded.config.recording, &loaded.site, &loaded.rsu_id, 4096, server.stats())
        .expect("recorder");
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(server.run(Outputs { recorder: Some(recorder), ..Outputs::default() }, shutdown.clone()));

    let sensor = Arc::new(SensorClient::connect(&fixture.sensor(addr, LIDAR)).await.expect("sensor"));
    let vehicle = VehicleClient::connect(&fixture.vehicle(addr, "veh-0001"), Some(Subscription::Everything))
        .await
        .expect("vehicle");
    let mut frames = vehicle.frame_receiver();
    let reading = tokio::spawn(async move {
        let mut n = 0u64;
        while frames.next().await.is_ok() {
            n += 1;
        }
        n
    });
    // 3 s: lidar frames at 10 Hz, and the vehicle's state at 10 Hz, each measured 0 to 250 ms
    // before it is sent.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for k in 1..=30u64 {
        tick.tick().await;
        sensor.send_frame(&two_cars(k)).await.expect("frame sent");
        let mut state = v2x_proto::sample::vehicle_state();
        state.vehicle_id = "veh-0001".into();
        state.time = now().add_secs(-0.025 * (k % 11) as f64);
        state.speed_mps = 0.0;
        vehicle.send_state(&state).expect("state sent");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    let summary = daemon.await.expect("daemon task").expect("daemon run");
    let received = reading.await.expect("reader");
    assert!(received > 10, "the vehicle received frames: {received}");
    assert_eq!(summary.recordings.len(), 1, "{:?}", summary.recordings);

    let path = &summary.recordings[0];
    let options = OpenOptions { order: ReadOrder::File, ..OpenOptions::default() };
    // The recording holds arrival times that differ from capture times.
    let late = ReplayReader::open_with(path, options)
        .expect("recording opens")
        .filter_map(|m| m.ok())
        .filter(|m| matches!(m.body, ReplayBody::Vehicle(_)) && m.publish_time.secs_since(m.log_time) > 0.1)
        .count();
    assert!(late > 5, "states arrived late: {late}");
    let reader = ReplayReader::open_with(path, options).expect("recording opens");
    let mut first_difference = None;
    let replay = replay_recorded(reader, &fusion, |recorded, reproduced| -> Result<(), std::convert::Infallible> {
        if recorded != reproduced && first_difference.is_none() {
            first_difference = Some(format!("recorded {recorded:?}\nreproduced {reproduced:?}"));
        }
        Ok(())
    })
    .expect("replay");
    println!("{replay:?}");
    assert!(replay.roadside_frames > 20 && replay.vehicle_states >= 25 && replay.sensor_frames >= 25, "{replay:?}");
    assert_eq!(first_difference, None);
    assert_eq!(replay.identical_frames, replay.roadside_frames);
}
