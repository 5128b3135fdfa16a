//! The hand-written decoder of sensor frames and ground truth (what `v2x_proto::decode` uses for
//! them, in the daemon and the replay reader) gives exactly what prost and the conversion give
//! (`v2x_proto::decode_reference`) on every message of every committed log: the logs the scenario
//! criteria validate and the benchmark log.

use std::path::{Path, PathBuf};

use rsu_fusion::SensorFrame;
use v2x_proto::domain::GroundTruthFrame;
use v2x_proto::{decode, decode_outcome, decode_reference, wire};

/// Every committed log.
fn committed_logs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(root.join("logs"))
        .expect("replays/logs")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "mcap"))
        .collect();
    logs.sort();
    logs.push(root.join("benches/data/dense-200.mcap"));
    logs
}

#[test]
fn the_decoders_give_the_same_values_on_every_committed_log() {
    let logs = committed_logs();
    assert!(logs.len() >= 11, "{logs:?}");
    for log in logs {
        let bytes = std::fs::read(&log).expect("read");
        let (mut sensor, mut truth) = (0, 0);
        for message in mcap::MessageStream::new(&bytes).expect("an MCAP file") {
            let message = message.expect("an intact message");
            let topic = &message.channel.topic;
            let data = &message.data[..];
            let (fast, reference) = if topic.starts_with("/sensors/") {
                sensor += 1;
                (
                    decode_outcome(&decode::<SensorFrame>(data)),
                    decode_outcome(&decode_reference::<wire::SensorFrame, SensorFrame>(data)),
                )
            } else if topic == "/ground_truth" {
                truth += 1;
                (
                    decode_outcome(&decode::<GroundTruthFrame>(data)),
                    decode_outcome(&decode_reference::<wire::GroundTruthFrame, GroundTruthFrame>(data)),
                )
            } else {
                continue;
            };
            assert!(fast.starts_with("Ok("), "{}: {topic} #{}: {fast}", log.display(), message.sequence);
            assert_eq!(fast, reference, "{}: {topic} #{}", log.display(), message.sequence);
        }
        assert!(sensor > 0 && truth > 0, "{}: {sensor} sensor frames, {truth} ground-truth frames", log.display());
    }
}
