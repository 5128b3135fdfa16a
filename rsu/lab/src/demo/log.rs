//! `demo.mcap`: the replay log of the demo's V2X run, in the replay format. It holds what the
//! daemon recorded (every sensor frame and vehicle state it took in, with its arrival time, and
//! every frame it broadcast), every frame the car received (with its receipt time) and the
//! simulator's ground truth, under metadata naming the scenario, so `rsu-lab replay validate
//! [--live] demo.mcap` scores it like any other log.
//!
//! The daemon's messages keep the order it recorded them in (the order it handled them), so
//! the log still reproduces its broadcast (`v2x_replays::pipeline::replay_recorded`); the
//! truth and the receipts are merged in by publish time.

use std::path::{Path, PathBuf};

use anyhow::Context;
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta};
use v2x_replays::{OpenOptions, ReadOrder, ReplayBody, ReplayMessage, ReplayReader, ReplayWriter};
use vehicle_sim::live::Receipt;

/// What went into the log.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LogCounts {
    /// Sensor frames.
    pub sensor_frames: u64,
    /// Vehicle states.
    pub vehicle_states: u64,
    /// Broadcast frames.
    pub roadside_frames: u64,
    /// Frames the car received.
    pub received_frames: u64,
    /// Ground-truth frames.
    pub truth_frames: u64,
}

/// Every message of the daemon's `recordings` but their metadata, in the order recorded.
pub fn read_recordings(recordings: &[PathBuf]) -> anyhow::Result<Vec<ReplayMessage>> {
    let mut out = Vec::new();
    for file in recordings {
        let options = OpenOptions { order: ReadOrder::File, ..OpenOptions::default() };
        let reader = ReplayReader::open_with(file, options).with_context(|| format!("opening {}", file.display()))?;
        for item in reader {
            let message = item.with_context(|| format!("reading {}", file.display()))?;
            if !matches!(message.body, ReplayBody::Meta(_)) {
                out.push(message);
            }
        }
    }
    Ok(out)
}

/// Writes `path` under `meta` from the daemon's `recorded` messages, the car's `received` frames
/// and the `truth`.
pub fn write(
    path: &Path,
    meta: &ReplayMeta,
    recorded: &[ReplayMessage],
    received: &[Receipt],
    truth: &[GroundTruthFrame],
) -> anyhow::Result<LogCounts> {
    let mut receipts: Vec<ReplayMessage> = received
        .iter()
        .map(|r| ReplayMessage::new(ReplayBody::Received(Box::new(r.received.clone())), Some(r.receipt)))
        .collect();
    receipts.sort_by_key(|m| m.publish_time);
    let truth: Vec<ReplayMessage> =
        truth.iter().map(|t| ReplayMessage::new(ReplayBody::GroundTruth(t.clone()), None)).collect();
    let mut counts = LogCounts::default();
    for m in recorded.iter().chain(&receipts).chain(&truth) {
        let counter = match m.body {
            // The demo runs no signal controller.
            ReplayBody::Meta(_) | ReplayBody::Signal(_) | ReplayBody::Spat(_) | ReplayBody::Rsi(_) => continue,
            ReplayBody::Sensor(_) => &mut counts.sensor_frames,
            ReplayBody::GroundTruth(_) => &mut counts.truth_frames,
            ReplayBody::Vehicle(_) => &mut counts.vehicle_states,
            ReplayBody::Roadside(_) => &mut counts.roadside_frames,
            ReplayBody::Received(_) => &mut counts.received_frames,
        };
        *counter += 1;
    }
    let mut writer = ReplayWriter::create(path, meta).with_context(|| format!("creating {}", path.display()))?;
    writer.write_merged(&[recorded, &receipts, &truth]).with_context(|| format!("writing {}", path.display()))?;
    writer.finish().with_context(|| format!("finishing {}", path.display()))?;
    Ok(counts)
}
