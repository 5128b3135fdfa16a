//! `demo.mcap`: the replay log of the demo's V2X run, in the replay format. It holds what the
//! daemon recorded (every sensor frame and vehicle state it took in, every frame it broadcast)
//! and the simulator's ground truth, merged in time order under metadata naming the scenario,
//! so `rsu-lab replay validate demo.mcap` scores it like any other log.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rsu_fusion::Timestamp;
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta};
use v2x_replays::{ReplayBody, ReplayReader, ReplayWriter};

/// What went into the log.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LogCounts {
    /// Sensor frames.
    pub sensor_frames: u64,
    /// Vehicle states.
    pub vehicle_states: u64,
    /// Broadcast frames.
    pub roadside_frames: u64,
    /// Ground-truth frames.
    pub truth_frames: u64,
}

fn time_of(body: &ReplayBody) -> Option<Timestamp> {
    match body {
        ReplayBody::Meta(_) => None,
        ReplayBody::Sensor(f) => Some(f.capture_time),
        ReplayBody::GroundTruth(t) => Some(t.time),
        ReplayBody::Vehicle(v) => Some(v.time),
        ReplayBody::Roadside(r) => Some(r.time),
    }
}

/// Every message of the daemon's `recordings` (broadcast frames only when `with_broadcasts`).
pub fn read_recordings(recordings: &[PathBuf], with_broadcasts: bool) -> anyhow::Result<Vec<ReplayBody>> {
    let mut out = Vec::new();
    for file in recordings {
        let reader = ReplayReader::open(file).with_context(|| format!("opening {}", file.display()))?;
        for item in reader {
            let message = item.with_context(|| format!("reading {}", file.display()))?;
            match message.body {
                ReplayBody::Meta(_) => {}
                ReplayBody::Roadside(_) if !with_broadcasts => {}
                body => out.push(body),
            }
        }
    }
    Ok(out)
}

/// Writes `path` from the daemon's `recordings` and `truth` under `meta`.
pub fn write(
    path: &Path,
    meta: &ReplayMeta,
    recordings: &[PathBuf],
    truth: &[GroundTruthFrame],
) -> anyhow::Result<LogCounts> {
    let mut bodies = read_recordings(recordings, true)?;
    bodies.extend(truth.iter().cloned().map(ReplayBody::GroundTruth));
    // Stable: messages at the same time keep their recorded order.
    bodies.sort_by_key(time_of);
    let mut writer = ReplayWriter::create(path, meta).with_context(|| format!("creating {}", path.display()))?;
    let mut counts = LogCounts::default();
    for body in &bodies {
        let written = match body {
            ReplayBody::Meta(_) => continue,
            ReplayBody::Sensor(f) => {
                counts.sensor_frames += 1;
                writer.write_sensor_frame(f)
            }
            ReplayBody::GroundTruth(t) => {
                counts.truth_frames += 1;
                writer.write_ground_truth(t)
            }
            ReplayBody::Vehicle(v) => {
                counts.vehicle_states += 1;
                writer.write_vehicle_state(v)
            }
            ReplayBody::Roadside(r) => {
                counts.roadside_frames += 1;
                writer.write_roadside_frame(r)
            }
        };
        written.with_context(|| format!("writing {}", path.display()))?;
    }
    writer.finish().with_context(|| format!("finishing {}", path.display()))?;
    Ok(counts)
}
