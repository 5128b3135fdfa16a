//! [`ReplayWriter`]: writes typed messages into an MCAP log with protobuf schemas.
//!
//! Each message type gets one schema record (encoding `protobuf`, data = the v2x.v1
//! FileDescriptorSet), each topic one channel. Log time and publish time are the message's
//! capture time. Chunks are LZ4-compressed single-threaded, so the same calls produce the same
//! bytes on every machine.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use mcap::records::MessageHeader;
use rsu_fusion::{RoadsideFrame, SensorFrame, Timestamp, VehicleState};
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta};
use v2x_proto::{FILE_DESCRIPTOR_SET, WireMessage};

use crate::ReplayError;
use crate::topics::Topic;

/// Uncompressed chunk size [bytes]: small enough that a crash loses little, large enough to
/// compress well.
pub const CHUNK_SIZE_BYTES: u64 = 512 * 1024;

/// LZ4 level of the chunks: the lowest of LZ4's high-compression levels. Higher levels cost
/// compression time for under 1% smaller files; the fast mode (level 0) writes files about 25%
/// larger. Decompression runs at the same speed for all of them.
pub const LZ4_LEVEL: u32 = 3;

/// Writes one replay log.
pub struct ReplayWriter<W: Write + Seek = BufWriter<File>> {
    mcap: mcap::Writer<W>,
    path: PathBuf,
    schemas: BTreeMap<&'static str, u16>,
    channels: BTreeMap<Topic, (u16, u32)>,
}

impl ReplayWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes `meta` as the first message.
    pub fn create(path: &Path, meta: &ReplayMeta) -> Result<Self, ReplayError> {
        let file = File::create(path).map_err(|cause| ReplayError::Io { path: path.to_owned(), cause })?;
        Self::new(BufWriter::new(file), path, meta)
    }
}

impl<W: Write + Seek> ReplayWriter<W> {
    /// Writes into `sink` (named `path` in errors) and writes `meta` as the first message.
    pub fn new(sink: W, path: &Path, meta: &ReplayMeta) -> Result<Self, ReplayError> {
        let options = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Lz4))
            .compression_level(LZ4_LEVEL)
            .compression_threads(0)
            .chunk_size(Some(CHUNK_SIZE_BYTES))
            .library(concat!("v2x-replays ", env!("CARGO_PKG_VERSION")))
            .profile("");
        let mcap = options.create(sink).map_err(|cause| ReplayError::McapWrite { path: path.to_owned(), cause })?;
        let mut writer =
            ReplayWriter { mcap, path: path.to_owned(), schemas: BTreeMap::new(), channels: BTreeMap::new() };
        writer.write(Topic::Meta, meta.start_time, meta)?;
        // The metadata gets a chunk of its own, so a log cut short anywhere later still opens.
        writer.flush()?;
        Ok(writer)
    }

    /// Writes a sensor frame on `/sensors/<sensor_id>` at its capture time.
    pub fn write_sensor_frame(&mut self, frame: &SensorFrame) -> Result<(), ReplayError> {
        let topic = Topic::Sensor(checked_id("sensor frame", &frame.sensor_id)?);
        self.write(topic, frame.capture_time, frame)
    }

    /// Writes a ground-truth frame on `/ground_truth`.
    pub fn write_ground_truth(&mut self, frame: &GroundTruthFrame) -> Result<(), ReplayError> {
        self.write(Topic::GroundTruth, frame.time, frame)
    }

    /// Writes a vehicle's self-report on `/vehicles/<vehicle_id>/state`.
    pub fn write_vehicle_state(&mut self, state: &VehicleState) -> Result<(), ReplayError> {
        let topic = Topic::Vehicle(checked_id("vehicle state", &state.vehicle_id)?);
        self.write(topic, state.time, state)
    }

    /// Writes a fused broadcast frame on `/rsu/<rsu_id>/frame`.
    pub fn write_roadside_frame(&mut self, frame: &RoadsideFrame) -> Result<(), ReplayError> {
        let topic = Topic::Roadside(checked_id("roadside frame", &frame.rsu_id)?);
        self.write(topic, frame.time, frame)
    }

    /// Ends the current chunk and flushes it to the sink, so a crash after this loses nothing
    /// written before. (Callers that need durability also sync the file.)
    pub fn flush(&mut self) -> Result<(), ReplayError> {
        self.mcap.flush().map_err(|cause| ReplayError::McapWrite { path: self.path.clone(), cause })
    }

    /// Writes the summary and footer and returns the sink.
    pub fn finish(mut self) -> Result<W, ReplayError> {
        self.mcap.finish().map_err(|cause| ReplayError::McapWrite { path: self.path.clone(), cause })?;
        Ok(self.mcap.into_inner())
    }

    fn write(&mut self, topic: Topic, time: Timestamp, message: &impl WireMessage) -> Result<(), ReplayError> {
        let log_time = u64::try_from(time.as_nanos()).map_err(|_| ReplayError::Write {
            what: topic.to_string(),
            problem: format!("negative capture time {time}"),
        })?;
        let (channel_id, sequence) = self.channel(&topic)?;
        let header = MessageHeader { channel_id, sequence, log_time, publish_time: log_time };
        self.mcap
            .write_to_known_channel(&header, &v2x_proto::encode(message))
            .map_err(|cause| ReplayError::McapWrite { path: self.path.clone(), cause })
    }

    /// The channel of `topic` (created on first use) and the message's sequence number on it.
    fn channel(&mut self, topic: &Topic) -> Result<(u16, u32), ReplayError> {
        if let Some((id, seq)) = self.channels.get_mut(topic) {
            *seq = seq.wrapping_add(1);
            return Ok((*id, *seq));
        }
        let map_err = |cause| ReplayError::McapWrite { path: self.path.clone(), cause };
        let schema_name = topic.schema_name();
        let schema_id = match self.schemas.get(schema_name) {
            Some(id) => *id,
            None => {
                let id = self.mcap.add_schema(schema_name, "protobuf", FILE_DESCRIPTOR_SET).map_err(map_err)?;
                self.schemas.insert(schema_name, id);
                id
            }
        };
        let id = self.mcap.add_channel(schema_id, &topic.to_string(), "protobuf", &BTreeMap::new()).map_err(map_err)?;
        self.channels.insert(topic.clone(), (id, 0));
        Ok((id, 0))
    }
}

fn checked_id(what: &str, id: &str) -> Result<String, ReplayError> {
    if id.is_empty() || id.contains('/') || id.len() > 64 {
        return Err(ReplayError::Write { what: what.into(), problem: format!("id {id:?} cannot name a topic") });
    }
    Ok(id.to_owned())
}
