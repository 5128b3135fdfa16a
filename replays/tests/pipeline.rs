//! What the replay pipeline relies on in the fusion engine: a ground-truth frame that falls on a
//! broadcast tick gets the objects polled for that tick when nothing reached the engine in
//! between, which is right only while polling again at the same instant gives the same objects and
//! leaves the engine as it was. Checked on a committed log with two engines side by side, one
//! polling once per truth frame and one twice.

use std::path::PathBuf;

use rsu_fusion::Fusion;
use v2x_replays::pipeline::{ReplayConfig, rsu_id_for, site_for};
use v2x_replays::{ReplayBody, ReplayReader};

#[test]
fn polling_again_at_the_same_instant_changes_nothing() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logs/bus-pedestrian.mcap");
    let reader = ReplayReader::open(&path).expect("opens");
    let meta = reader.meta().clone();
    let config = ReplayConfig::default();
    let mut fusion_config = config.fusion.clone();
    fusion_config.rsu_id = rsu_id_for(&meta, &config);
    let engine = || Fusion::new(site_for(&meta, &config).expect("site"), fusion_config.clone()).expect("engine");
    let (mut once, mut twice) = (engine(), engine());
    let mut polls = 0;
    for message in reader {
        let message = message.expect("decodes");
        let now = message.log_time;
        match &message.body {
            ReplayBody::Sensor(frame) => {
                assert_eq!(once.handle_sensor_frame(now, frame.clone()), twice.handle_sensor_frame(now, frame.clone()));
            }
            ReplayBody::Vehicle(state) => {
                assert_eq!(once.handle_vehicle_state(now, state), twice.handle_vehicle_state(now, state));
            }
            ReplayBody::GroundTruth(truth) => {
                // Compared as text: bit-exact for finite values, and NaN equals itself.
                let single = format!("{:?}", once.poll_objects(truth.time));
                let first = format!("{:?}", twice.poll_objects(truth.time));
                let again = format!("{:?}", twice.poll_objects(truth.time));
                assert_eq!(first, again, "polled again at {}", truth.time);
                assert_eq!(single, again, "after an earlier extra poll, at {}", truth.time);
                polls += 1;
            }
            ReplayBody::Meta(_)
            | ReplayBody::Roadside(_)
            | ReplayBody::Received(_)
            | ReplayBody::Signal(_)
            | ReplayBody::Spat(_)
            | ReplayBody::Rsi(_) => {}
        }
    }
    assert_eq!(once.stats(), twice.stats());
    assert!(polls > 100, "{polls} truth frames");
}
