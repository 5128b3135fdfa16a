//! Replay logs of the RSU stack: MCAP files whose messages are v2x.v1 protobufs with the schemas
//! (FileDescriptorSet) embedded, so any MCAP tool can open them.
//!
//! - [`topics`]: the topic layout and which message each topic carries.
//! - [`writer`]: [`ReplayWriter`], a typed writer (LZ4 chunks, log time = capture time, publish
//!   time = arrival or receipt time, deterministic bytes).
//! - [`pipeline`]: replaying a log through the fusion core, event by event.
//! - [`calib`]: checking each sensor's extrinsic calibration against the others' tracks and
//!   the V2X self-reports, with the corrected calibration.
//! - [`criteria`], [`validate`], [`report`]: pass/fail validation of logs and its reports.
//! - [`compare`]: two campaign reports compared (better, worse, significance, regressions).
//! - [`export`]: a replayed log as plain files (site-frame lidar detections, scored truths, our
//!   tracks) for other trackers and scorers.
//! - [`import_dair`]: DAIR-V2X / V2X-Seq annotations into replay logs.
//! - [`import_openlabel`]: ASAM OpenLABEL (TUMTraf / A9) 3D box annotations into replay logs.
//! - [`import_autoware`]: Autoware rosbag2 logs (MCAP, ROS 2 CDR) of detected and tracked
//!   objects into replay logs.
//! - [`scoring`]: tracking metrics against ground truth (CLEAR MOT, IDF1, HOTA, state errors).
//! - [`reader`]: [`ReplayReader`], a streaming typed reader that yields messages in log-time
//!   order (or file order), names the place of any damage, and can recover every intact message
//!   before it.
//! - [`live`]: scoring a recorded live run as it was broadcast and as each vehicle received it.
//! - [`route`]: route validation: sensor coverage, detection, errors, time to track and
//!   broadcast age per segment of a driverless vehicle's route, over many logs.
//!
//! The format is documented in `replays/README.md`.

pub mod calib;
pub mod compare;
pub mod criteria;
pub mod export;
mod ids;
pub mod import_autoware;
pub mod import_dair;
pub mod import_openlabel;
pub mod live;
pub mod pipeline;
pub mod reader;
pub mod report;
pub mod route;
pub mod scoring;
pub mod topics;
pub mod validate;
pub mod writer;

pub use reader::{
    ForeignReader, OpenOptions, ReadMode, ReadOrder, ReadStats, Received, ReplayBody, ReplayMessage, ReplayReader,
};
pub use topics::Topic;
pub use writer::ReplayWriter;

use std::path::PathBuf;

use rsu_fusion::Timestamp;

/// Everything that can go wrong reading or writing a replay. Each message is complete on its own
/// (the cause is part of it, not a separate `source`), so it is printed once.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be opened, created, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The MCAP container is damaged or not MCAP at all.
    #[error("{path}: damaged MCAP at or before byte {offset} ({context}): {cause}")]
    Container {
        /// The file.
        path: PathBuf,
        /// Bytes consumed from the file when the damage was found.
        offset: u64,
        /// What had been read until then.
        context: String,
        /// The cause.
        cause: mcap::McapError,
    },
    /// A message's bytes are not a valid message of its schema.
    #[error("{path}: message #{index} on {topic} at log time {log_time}: {cause}")]
    Message {
        /// The file.
        path: PathBuf,
        /// Index of the message in file order (0-based).
        index: u64,
        /// Its topic.
        topic: String,
        /// Its log time.
        log_time: Timestamp,
        /// The cause.
        cause: v2x_proto::DecodeError,
    },
    /// A message disagrees with its topic (e.g. `/sensors/a` carrying a frame of sensor `b`).
    #[error("{path}: message #{index} on {topic}: {problem}")]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// Index of the message in file order.
        index: u64,
        /// Its topic.
        topic: String,
        /// What disagrees.
        problem: String,
    },
    /// The log does not start with a `/meta` message.
    #[error("{path}: not a v2x replay: {problem}")]
    NotAReplay {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: String,
    },
    /// The writer was given something it cannot write.
    #[error("cannot write {what}: {problem}")]
    Write {
        /// What was being written.
        what: String,
        /// Why not.
        problem: String,
    },
    /// The MCAP writer failed.
    #[error("{path}: writing MCAP: {cause}")]
    McapWrite {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: mcap::McapError,
    },
}
