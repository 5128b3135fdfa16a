//! `replay_recorded` reproduces a daemon's broadcast from its recording. The recording here is
//! made the way the daemon makes one: a committed log's sensor frames and self-reports reach an
//! engine with delays (so they arrive out of capture order, some late), the engine is polled for
//! a frame every 100 ms of arrival time, and every input is recorded at its arrival time, every
//! frame as made, in the order handled. Replaying it gives back every frame, bit for bit; the
//! offline replay of the same log (inputs at their capture times) does not.

use std::path::PathBuf;
use std::sync::Arc;

use rsu_fusion::{Fusion, FusionConfig, Ingest, RoadsideFrame, Timestamp};
use v2x_replays::pipeline::{ReplayConfig, ReplayEvent, replay, replay_recorded};
use v2x_replays::{OpenOptions, ReadOrder, ReplayBody, ReplayMessage, ReplayReader, ReplayWriter};

/// Arrival delay of the `i`th input [ns]: 20 to 230 ms, scrambled so inputs overtake each other.
fn delay_ns(i: u64) -> i64 {
    20_000_000 + ((i.wrapping_mul(2_654_435_761) >> 7) % 211) as i64 * 1_000_000
}

#[test]
fn a_recording_replayed_at_its_arrival_times_reproduces_its_broadcast() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logs/bus-pedestrian.mcap");
    let reader = ReplayReader::open(&source).expect("opens");
    let mut meta = reader.meta().clone();
    meta.rsu_ids = vec!["rsu-rec".into()];
    let end = meta.start_time.add_secs(6.0);
    // The inputs with their arrival times, in arrival order (the daemon's order).
    let mut inputs: Vec<ReplayMessage> = reader
        .map(|m| m.expect("decodes"))
        .filter(|m| matches!(m.body, ReplayBody::Sensor(_) | ReplayBody::Vehicle(_)) && m.log_time < end)
        .enumerate()
        .map(|(i, m)| ReplayMessage::new(m.body, Some(m.log_time.add_nanos(delay_ns(i as u64)))))
        .collect();
    inputs.sort_by_key(|m| m.publish_time);

    // The "daemon": the engine fed at arrival, a frame every 100 ms, everything recorded.
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("recording.mcap");
    let config = FusionConfig { rsu_id: "rsu-rec".into(), ..FusionConfig::default() };
    let mut engine = Fusion::new(meta.site.clone(), config).expect("engine");
    let mut writer = ReplayWriter::create(&recording, &meta).expect("create");
    let mut sent: Vec<RoadsideFrame> = Vec::new();
    let mut late = 0;
    let mut tick = Timestamp::from_nanos((meta.start_time.as_nanos() / 100_000_000 + 1) * 100_000_000);
    for input in &inputs {
        while tick <= input.publish_time {
            let objects = engine.poll_objects(tick);
            let frame = engine.roadside_frame_from(tick, &objects);
            writer.write_roadside_frame(&frame).expect("frame");
            // As sent: on the wire's fixed-point grid.
            sent.push(v2x_proto::decode(&v2x_proto::encode(&frame)).expect("valid"));
            tick = tick.add_nanos(100_000_000);
        }
        let verdict = match &input.body {
            ReplayBody::Sensor(f) => engine.handle_sensor_frame(input.publish_time, Arc::clone(f)),
            ReplayBody::Vehicle(s) => engine.handle_vehicle_state(input.publish_time, s),
            _ => unreachable!("only inputs"),
        };
        late += usize::from(verdict != Ingest::Accepted);
        writer.write_message(input).expect("input");
    }
    writer.finish().expect("finish");
    assert!(sent.len() >= 55, "{} frames", sent.len());
    assert!(sent.iter().filter(|f| !f.participants.is_empty()).count() > 40, "frames carry objects");

    // Replayed in file order at the recorded times: every frame back, equal.
    let options = OpenOptions { order: ReadOrder::File, ..OpenOptions::default() };
    let mut reproduced = Vec::new();
    let summary = replay_recorded(
        ReplayReader::open_with(&recording, options).expect("opens"),
        &FusionConfig::default(),
        |recorded, again| -> Result<(), std::convert::Infallible> {
            reproduced.push((recorded.clone(), again.clone()));
            Ok(())
        },
    )
    .expect("replays");
    assert_eq!(summary.roadside_frames, sent.len() as u64);
    assert_eq!(summary.sensor_frames + summary.vehicle_states, inputs.len() as u64);
    for (i, ((recorded, again), original)) in reproduced.iter().zip(&sent).enumerate() {
        assert_eq!(recorded, original, "frame {i} read back");
        assert_eq!(again, recorded, "frame {i} reproduced");
    }
    assert_eq!(summary.identical_frames, sent.len() as u64);

    // The offline replay feeds the same inputs at their capture times: other frames. (So the
    // equality above depends on the recorded arrival times and order.)
    let mut offline: Vec<RoadsideFrame> = Vec::new();
    // (Compared on the wire's grid too.)
    let mut config = ReplayConfig::default();
    config.fusion.rsu_id = "rsu-rec".into();
    replay(ReplayReader::open(&recording).expect("opens"), &config, |e| -> Result<(), std::convert::Infallible> {
        if let ReplayEvent::Broadcast { frame, .. } = e {
            offline.push(v2x_proto::decode(&v2x_proto::encode(frame)).expect("valid"));
        }
        Ok(())
    })
    .expect("offline replay");
    let differing = sent
        .iter()
        .filter(|f| offline.iter().find(|o| o.time == f.time).is_none_or(|o| o.participants != f.participants))
        .count();
    assert!(differing > 10, "{differing} of {} frames differ offline ({late} inputs refused live)", sent.len());

    // A reader in log-time order is refused: the daemon's order matters.
    let refused = replay_recorded(
        ReplayReader::open(&recording).expect("opens"),
        &FusionConfig::default(),
        |_, _| -> Result<(), std::convert::Infallible> { Ok(()) },
    );
    assert!(refused.is_err());
}
