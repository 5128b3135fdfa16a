//! A log with every topic written and read back equal; determinism; time ordering; damaged
//! files rejected with the place named and recovered up to the damage.

use std::path::Path;

use rsu_fusion::measurement::Detections;
use rsu_fusion::{RoadsideFrame, SensorFrame, Timestamp, VehicleState};
use v2x_proto::domain::{
    GroundTruthFrame, GroundTruthObject, REPLAY_FORMAT_VERSION, ReplayMeta, SignalPhase, SignalState,
};
use v2x_proto::sample;
use v2x_replays::{OpenOptions, ReadMode, ReplayBody, ReplayError, ReplayMessage, ReplayReader, ReplayWriter, Topic};

const T0: i64 = 1_795_000_000_000_000_000;
const STEP: i64 = 100_000_000;

fn meta() -> ReplayMeta {
    ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: "replay-test".into(),
        scenario: "unit".into(),
        description: "every topic".into(),
        seed: 9,
        site: sample::site(),
        rsu_ids: vec!["rsu-cityblock-1".into()],
        start_time: Timestamp::from_nanos(T0),
        end_time: Timestamp::from_nanos(T0 + 200 * STEP),
        truth_ids_per_frame: false,
    }
}

/// Every kind of message over `steps` cycles, in the order a live recorder could see them.
fn messages(steps: i64) -> Vec<ReplayBody> {
    let mut out = Vec::new();
    for k in 0..steps {
        let t = Timestamp::from_nanos(T0 + k * STEP);
        let mut lidar = sample::lidar_frame();
        lidar.capture_time = t;
        lidar.sequence = k as u64;
        if let Detections::Lidar(boxes) = &mut lidar.detections {
            boxes[0].center_in_sensor.x += k as f64 * 0.25;
        }
        let mut camera: SensorFrame = sample::camera_frame();
        camera.capture_time = t.add_nanos(-30_000_000);
        camera.sequence = k as u64;
        let mut state: VehicleState = sample::vehicle_state();
        state.time = t.add_nanos(5_000_000);
        state.message_count = k as u32;
        let truth = GroundTruthFrame {
            time: t,
            objects: vec![GroundTruthObject {
                id: 1,
                class: rsu_fusion::ObjectClass::Car,
                center_m: nalgebra::Point3::new(k as f64, 2.0, 0.75),
                yaw_rad: 0.0,
                speed_mps: 10.0,
                yaw_rate_rps: 0.0,
                accel_mps2: 0.0,
                size: rsu_fusion::BoxSize::new(4.5, 1.8, 1.5),
                v2x_id: Some("veh-0007".into()),
            }],
            signals: vec![SignalState { signal_id: "sig-n".into(), phase: SignalPhase::Green, remaining_s: 3.0 }],
        };
        let mut frame: RoadsideFrame = sample::intersection_frame(20, k as u64);
        frame.time = t.add_nanos(10_000_000);
        frame.message_count = k as u32;
        out.push(ReplayBody::GroundTruth(truth));
        out.push(ReplayBody::Sensor(lidar.into()));
        // The camera frame arrives after the lidar frame although it was captured before it.
        out.push(ReplayBody::Sensor(camera.into()));
        out.push(ReplayBody::Vehicle(state));
        let received = v2x_replays::Received {
            vehicle_id: "veh-0007".into(),
            subscription_radius_m: Some(300),
            frame: frame.clone(),
        };
        out.push(ReplayBody::Roadside(frame));
        out.push(ReplayBody::Received(Box::new(received)));
    }
    // Put every value on the wire's fixed-point grid, as a decoded log holds it.
    out.into_iter().map(on_grid).collect()
}

fn on_grid(body: ReplayBody) -> ReplayBody {
    use v2x_proto::{decode, encode};
    match body {
        ReplayBody::Vehicle(s) => ReplayBody::Vehicle(decode::<VehicleState>(&encode(&s)).expect("valid")),
        ReplayBody::Roadside(f) => ReplayBody::Roadside(decode::<RoadsideFrame>(&encode(&f)).expect("valid")),
        ReplayBody::Received(mut r) => {
            r.frame = decode::<RoadsideFrame>(&encode(&r.frame)).expect("valid");
            ReplayBody::Received(r)
        }
        other => other,
    }
}

fn write_log(path: &Path, bodies: &[ReplayBody]) {
    let mut w = ReplayWriter::create(path, &meta()).expect("create");
    for body in bodies {
        match body {
            ReplayBody::Sensor(f) => w.write_sensor_frame(f),
            ReplayBody::GroundTruth(g) => w.write_ground_truth(g),
            ReplayBody::Vehicle(s) => w.write_vehicle_state(s),
            ReplayBody::Roadside(f) => w.write_roadside_frame(f),
            // Received 20 ms after it was made.
            ReplayBody::Received(r) => w.write_received_frame(r, r.frame.time.add_nanos(20_000_000)),
            ReplayBody::Signal(s) => w.write_signal_state_at(s, s.time),
            ReplayBody::Spat(s) => w.write_spat(s),
            ReplayBody::Rsi(e) => w.write_rsi(e),
            ReplayBody::Meta(_) => unreachable!("meta is written by create"),
        }
        .expect("write");
    }
    w.finish().expect("finish");
}

fn time_of(body: &ReplayBody) -> Timestamp {
    body.time()
}

fn read_all(path: &Path, mode: ReadMode) -> (Vec<ReplayMessage>, Option<String>) {
    let reader = ReplayReader::open_with(path, OpenOptions { mode, ..Default::default() }).expect("open");
    let mut out = Vec::new();
    let mut reader = reader;
    let mut error = None;
    for item in reader.by_ref() {
        match item {
            Ok(m) => out.push(m),
            Err(e) => error = Some(e.to_string()),
        }
    }
    if let Some(d) = reader.damage() {
        error = Some(d.to_string());
    }
    (out, error)
}

#[test]
fn every_topic_reads_back_equal_and_in_time_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.mcap");
    let bodies = messages(30);
    write_log(&path, &bodies);

    let reader = ReplayReader::open(&path).expect("open");
    assert_eq!(reader.meta(), &meta());
    let read: Vec<ReplayMessage> = reader.map(|m| m.expect("intact")).collect();
    assert_eq!(read.len(), bodies.len());

    // Sorted by log time; equal times keep file order.
    assert!(read.windows(2).all(|w| w[0].log_time <= w[1].log_time));
    let mut expected = bodies.clone();
    expected.sort_by_key(time_of);
    for (m, b) in read.iter().zip(&expected) {
        assert_eq!(&m.body, b);
        assert_eq!(m.log_time, time_of(b));
    }
    let topics: std::collections::BTreeSet<Topic> = read.iter().map(|m| m.topic.clone()).collect();
    assert!(topics.contains(&Topic::GroundTruth));
    assert!(topics.contains(&Topic::Sensor("lidar-ne".into())));
    assert!(topics.contains(&Topic::Sensor("cam-n".into())));
    assert!(topics.contains(&Topic::Vehicle("veh-0007".into())));
    assert!(topics.contains(&Topic::Roadside("rsu-cityblock-1".into())));
    assert!(topics.contains(&Topic::Received("veh-0007".into())));
    // Publish times: the receipt of received frames, the log time of everything written without
    // an arrival time.
    for m in &read {
        let expected = match &m.body {
            ReplayBody::Received(_) => m.log_time.add_nanos(20_000_000),
            _ => m.log_time,
        };
        assert_eq!(m.publish_time, expected, "{}", m.topic);
    }
}

/// Arrival and receipt times are written as publish times and read back; file order yields the
/// messages as written, log-time order sorted; a vehicle's subscription radius is its channel's.
#[test]
fn arrival_times_and_file_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("arrivals.mcap");
    let t = |ms: i64| Timestamp::from_nanos(T0 + ms * 1_000_000);
    let mut lidar = sample::lidar_frame();
    lidar.capture_time = t(0);
    let mut camera = sample::camera_frame();
    camera.capture_time = t(-40);
    let mut state = sample::vehicle_state();
    state.time = t(-120);
    let mut frame = sample::intersection_frame(3, 1);
    frame.rsu_id = "rsu-cityblock-1".into();
    frame.time = t(60);
    let frame = v2x_proto::decode::<RoadsideFrame>(&v2x_proto::encode(&frame)).expect("valid");
    let received =
        v2x_replays::Received { vehicle_id: "veh-0007".into(), subscription_radius_m: Some(250), frame: frame.clone() };
    let mut w = ReplayWriter::create(&path, &meta()).expect("create");
    w.write_sensor_frame_at(&lidar, t(45)).expect("lidar");
    w.write_sensor_frame_at(&camera, t(50)).expect("camera");
    w.write_vehicle_state_at(&state, t(55)).expect("state");
    w.write_roadside_frame(&frame).expect("frame");
    w.write_received_frame(&received, t(62)).expect("received");
    let other_radius = v2x_replays::Received { subscription_radius_m: Some(100), ..received.clone() };
    let refused = w.write_received_frame(&other_radius, t(70)).expect_err("a radius is the channel's");
    assert!(refused.to_string().contains("subscription radius"), "{refused}");
    w.finish().expect("finish");

    let in_order = |order| {
        let options = OpenOptions { order, ..OpenOptions::default() };
        let reader = ReplayReader::open_with(&path, options).expect("open");
        reader
            .map(|m| m.expect("intact"))
            .map(|m| (m.topic.to_string(), m.log_time, m.publish_time))
            .collect::<Vec<_>>()
    };
    let file = in_order(v2x_replays::ReadOrder::File);
    assert_eq!(
        file,
        vec![
            ("/sensors/lidar-ne".to_owned(), t(0), t(45)),
            ("/sensors/cam-n".to_owned(), t(-40), t(50)),
            ("/vehicles/veh-0007/state".to_owned(), t(-120), t(55)),
            ("/rsu/rsu-cityblock-1/frame".to_owned(), t(60), t(60)),
            ("/vehicles/veh-0007/received".to_owned(), t(60), t(62)),
        ]
    );
    let mut sorted = file.clone();
    sorted.sort_by_key(|(_, log, _)| *log);
    assert_eq!(in_order(v2x_replays::ReadOrder::LogTime), sorted);
    let body = ReplayReader::open(&path).expect("open").map(|m| m.expect("intact").body).last();
    assert_eq!(body, Some(ReplayBody::Received(Box::new(received))));
}

#[test]
fn the_writer_refuses_a_message_the_reader_would_refuse() {
    // The most participants a frame may carry, each with the longest path history: within the
    // participant limit, and still over the byte limit every reader of the protocol applies.
    let mut big = sample::intersection_frame(v2x_proto::convert::MAX_PARTICIPANTS, 2);
    big.rsu_id = "rsu-cityblock-1".into();
    big.time = Timestamp::from_nanos(T0);
    for p in &mut big.participants {
        p.path_history = (0..v2x_proto::convert::MAX_PATH_POINTS)
            .map(|j| rsu_fusion::PathPoint { offset_m: [-1.0e6 - j as f64, 1.0e6], dt_s: 3.0e5 + j as f64 })
            .collect();
    }
    assert!(v2x_proto::encode(&big).len() > v2x_proto::MAX_MESSAGE_BYTES);
    // Half of them fit.
    let mut fits = big.clone();
    fits.participants.truncate(big.participants.len() / 2);
    fits.time = Timestamp::from_nanos(T0 + 100_000_000);
    assert!(v2x_proto::encode(&fits).len() <= v2x_proto::MAX_MESSAGE_BYTES);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.mcap");
    let mut w = ReplayWriter::create(&path, &meta()).expect("create");
    let refused = w.write_roadside_frame(&big).expect_err("over the limit");
    assert!(refused.to_string().contains("over the limit"), "{refused}");
    w.write_roadside_frame(&fits).expect("within the limit");
    w.finish().expect("finish");
    let (read, error) = read_all(&path, ReadMode::Strict);
    assert_eq!(error, None);
    assert_eq!(read.iter().filter(|m| matches!(m.body, ReplayBody::Roadside(_))).count(), 1);
}

#[test]
fn writing_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("a.mcap"), dir.path().join("b.mcap"));
    let bodies = messages(20);
    write_log(&a, &bodies);
    write_log(&b, &bodies);
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
}

#[test]
fn truncated_log_is_rejected_with_the_place_named_and_recovered_up_to_the_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("full.mcap");
    // Enough messages for several chunks.
    let bodies = messages(400);
    write_log(&path, &bodies);
    let full = std::fs::read(&path).expect("read");
    println!("log of {} messages: {} bytes", bodies.len(), full.len());
    let (all, none) = read_all(&path, ReadMode::Strict);
    assert!(none.is_none());

    let mut last_recovered = 0;
    for fraction in [0.15, 0.3, 0.45] {
        let cut = (full.len() as f64 * fraction) as usize;
        let truncated = dir.path().join(format!("cut-{cut}.mcap"));
        std::fs::write(&truncated, &full[..cut]).expect("write");

        let (strict, error) = read_all(&truncated, ReadMode::Strict);
        let error = error.expect("strict mode reports the damage");
        assert!(error.contains(&truncated.display().to_string()), "names the file: {error}");
        assert!(error.contains("byte"), "names the offset: {error}");
        assert!(error.contains("good messages"), "names the last good message: {error}");

        let (recovered, damage) = read_all(&truncated, ReadMode::Recover);
        println!("cut {cut}: strict {} recovered {} of {} ({damage:?})", strict.len(), recovered.len(), all.len());
        assert!(damage.is_some(), "recover mode records the damage");
        // Recovery yields a prefix of the intact log, more the later the cut, and at least what
        // the strict reader could verify.
        assert!(recovered.len() >= strict.len());
        assert!(recovered.len() > last_recovered, "cut at {fraction}: {} messages", recovered.len());
        assert!(recovered.len() < all.len());
        // Every recovered message is one of the original log's, unchanged.
        for m in &recovered {
            assert!(all.contains(m), "recovered a message that is not in the original");
        }
        last_recovered = recovered.len();
    }
}

#[test]
fn corrupted_chunk_is_detected_and_nothing_corrupt_is_yielded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("full.mcap");
    write_log(&path, &messages(400));
    let (all, _) = read_all(&path, ReadMode::Strict);
    let mut bytes = std::fs::read(&path).expect("read");
    // In the middle of the message data: between the end of the data section's first chunk
    // and the start of the summary (whose schema records, the whole descriptor set each, grow
    // with the schemas and are not message data).
    let summary_start = mcap::Summary::read(&bytes)
        .ok()
        .flatten()
        .and_then(|s| s.chunk_indexes.last().map(|c| (c.chunk_start_offset + c.chunk_length) as usize))
        .expect("a chunked log with a summary");
    let at = summary_start / 2;
    for b in &mut bytes[at..at + 16] {
        *b ^= 0x5a;
    }
    let corrupt = dir.path().join("corrupt.mcap");
    std::fs::write(&corrupt, &bytes).expect("write");
    for mode in [ReadMode::Strict, ReadMode::Recover] {
        let (read, error) = read_all(&corrupt, mode);
        let error = error.expect("damage reported");
        assert!(error.contains("corrupt.mcap"), "{error}");
        assert!(read.len() < all.len());
        for m in &read {
            assert!(all.contains(m), "{mode:?} yielded a message that is not in the original");
        }
    }
}

#[test]
fn not_a_replay_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.mcap");
    std::fs::write(&junk, b"this is not an mcap file at all").expect("write");
    match ReplayReader::open(&junk) {
        Err(e @ ReplayError::Container { .. }) => assert!(e.to_string().contains("junk.mcap"), "{e}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("junk opened"),
    }
    let missing = dir.path().join("missing.mcap");
    assert!(matches!(ReplayReader::open(&missing), Err(ReplayError::Io { .. })));
}
