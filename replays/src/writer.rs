//! [`ReplayWriter`]: writes typed messages into an MCAP log with protobuf schemas.
//!
//! Each message type gets one schema record (encoding `protobuf`, data = the v2x.v1
//! FileDescriptorSet), each topic one channel. Log time is the message's own time (capture time,
//! frame time); publish time is when the message reached whoever recorded it (the RSU's arrival
//! time, a vehicle's receipt time), or the log time when the writer is not told (see
//! `replays/README.md`, "Times"). Chunks are LZ4-compressed single-threaded, so the same calls
//! produce the same bytes on every machine.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use mcap::records::MessageHeader;
use rsu_fusion::{RoadsideFrame, SensorFrame, Timestamp, VehicleState};
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta, RsiEvent, SignalControllerState, Spat};
use v2x_proto::{FILE_DESCRIPTOR_SET, WireMessage};

use crate::ReplayError;
use crate::reader::{Received, ReplayBody, ReplayMessage};
use crate::topics::Topic;

/// Channel metadata key of a `/vehicles/<id>/received` channel: the radius [m] the vehicle
/// subscribed to around itself (absent when it subscribed otherwise or it is unknown).
pub const SUBSCRIPTION_RADIUS_KEY: &str = "subscription_radius_m";

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
    /// The subscription radius each `/vehicles/<id>/received` channel was created with.
    radii: BTreeMap<String, Option<u32>>,
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
        let mut writer = ReplayWriter {
            mcap,
            path: path.to_owned(),
            schemas: BTreeMap::new(),
            channels: BTreeMap::new(),
            radii: BTreeMap::new(),
        };
        writer.write(Topic::Meta, meta.start_time, meta.start_time, meta)?;
        // The metadata gets a chunk of its own, so a log cut short anywhere later still opens.
        writer.flush()?;
        Ok(writer)
    }

    /// Writes a sensor frame on `/sensors/<sensor_id>` at its capture time, with no known
    /// arrival time (publish time = capture time).
    pub fn write_sensor_frame(&mut self, frame: &SensorFrame) -> Result<(), ReplayError> {
        self.write_sensor_frame_at(frame, frame.capture_time)
    }

    /// Writes a sensor frame that reached the recorder (the RSU) at `arrival`: log time = its
    /// capture time, publish time = `arrival`.
    pub fn write_sensor_frame_at(&mut self, frame: &SensorFrame, arrival: Timestamp) -> Result<(), ReplayError> {
        let topic = Topic::Sensor(checked_id("sensor frame", &frame.sensor_id)?);
        self.write(topic, frame.capture_time, arrival, frame)
    }

    /// Writes a ground-truth frame on `/ground_truth`.
    pub fn write_ground_truth(&mut self, frame: &GroundTruthFrame) -> Result<(), ReplayError> {
        self.write(Topic::GroundTruth, frame.time, frame.time, frame)
    }

    /// Writes a vehicle's self-report on `/vehicles/<vehicle_id>/state` with no known arrival
    /// time (publish time = its time).
    pub fn write_vehicle_state(&mut self, state: &VehicleState) -> Result<(), ReplayError> {
        self.write_vehicle_state_at(state, state.time)
    }

    /// Writes a vehicle's self-report that reached the recorder (the RSU) at `arrival`: log time
    /// = its time, publish time = `arrival`.
    pub fn write_vehicle_state_at(&mut self, state: &VehicleState, arrival: Timestamp) -> Result<(), ReplayError> {
        let topic = Topic::Vehicle(checked_id("vehicle state", &state.vehicle_id)?);
        self.write(topic, state.time, arrival, state)
    }

    /// Writes a fused broadcast frame on `/rsu/<rsu_id>/frame`; it was produced at its own time,
    /// so log time = publish time = `frame.time`.
    pub fn write_roadside_frame(&mut self, frame: &RoadsideFrame) -> Result<(), ReplayError> {
        let topic = Topic::Roadside(checked_id("roadside frame", &frame.rsu_id)?);
        self.write(topic, frame.time, frame.time, frame)
    }

    /// Writes a signal controller's state that reached the RSU at `arrival` on
    /// `/signals/<controller_id>/state`: log time = its time, publish time = `arrival`.
    pub fn write_signal_state_at(
        &mut self,
        state: &SignalControllerState,
        arrival: Timestamp,
    ) -> Result<(), ReplayError> {
        let topic = Topic::Signal(checked_id("signal controller state", &state.controller_id)?);
        self.write(topic, state.time, arrival, state)
    }

    /// Writes the SPaT the RSU broadcast on `/intersections/<intersection_id>/spat`; log time =
    /// publish time = its time.
    pub fn write_spat(&mut self, spat: &Spat) -> Result<(), ReplayError> {
        self.write(Topic::Spat(spat.intersection_id.to_string()), spat.time, spat.time, spat)
    }

    /// Writes a road safety information event the RSU raised on `/rsi`; log time = publish
    /// time = its time.
    pub fn write_rsi(&mut self, event: &RsiEvent) -> Result<(), ReplayError> {
        self.write(Topic::Rsi, event.time, event.time, event)
    }

    /// Writes a roadside frame as a vehicle received it, on `/vehicles/<vehicle_id>/received`:
    /// log time = the frame's time, publish time = `receipt`. The first frame of a vehicle
    /// creates its channel with the subscription radius as channel metadata; a later frame with
    /// another radius is an error (the radius is the channel's, not the frame's).
    pub fn write_received_frame(&mut self, received: &Received, receipt: Timestamp) -> Result<(), ReplayError> {
        let id = checked_id("received frame", &received.vehicle_id)?;
        match self.radii.get(&id) {
            Some(radius) if *radius != received.subscription_radius_m => {
                return Err(ReplayError::Write {
                    what: format!("a frame received by {id}"),
                    problem: format!(
                        "subscription radius {:?} m differs from the {:?} m its channel was created with",
                        received.subscription_radius_m, radius
                    ),
                });
            }
            Some(_) => {}
            None => {
                self.radii.insert(id.clone(), received.subscription_radius_m);
            }
        }
        self.write(Topic::Received(id), received.frame.time, receipt, &received.frame)
    }

    /// Writes an event for the operator (e.g. a vehicle flagged for misbehaviour) as an MCAP
    /// metadata record named `name` with `fields`: readers of the replay format skip it, MCAP
    /// tools list it (`mcap info`, `mcap get metadata`). It ends the current chunk, so it suits
    /// rare events only.
    pub fn write_event(&mut self, name: &str, fields: BTreeMap<String, String>) -> Result<(), ReplayError> {
        let metadata = mcap::records::Metadata { name: name.to_owned(), metadata: fields };
        self.mcap.write_metadata(&metadata).map_err(|cause| ReplayError::McapWrite { path: self.path.clone(), cause })
    }

    /// Writes a message as read from a log, with its log and publish times (`/meta` is written
    /// by [`ReplayWriter::new`] and skipped here).
    pub fn write_message(&mut self, message: &ReplayMessage) -> Result<(), ReplayError> {
        let at = message.publish_time;
        match &message.body {
            ReplayBody::Meta(_) => Ok(()),
            ReplayBody::Sensor(f) => self.write_sensor_frame_at(f, at),
            ReplayBody::GroundTruth(g) => self.write_ground_truth(g),
            ReplayBody::Vehicle(v) => self.write_vehicle_state_at(v, at),
            ReplayBody::Roadside(r) => self.write_roadside_frame(r),
            ReplayBody::Received(r) => self.write_received_frame(r, at),
            ReplayBody::Signal(s) => self.write_signal_state_at(s, at),
            ReplayBody::Spat(s) => self.write_spat(s),
            ReplayBody::Rsi(e) => self.write_rsi(e),
        }
    }

    /// Writes several streams of messages as one, by publish time: each stream keeps its own
    /// order (a recording stays in the order it was recorded in, even where its publish times
    /// are not monotonic), and among the streams' next messages the earliest publish time goes
    /// first (ties: the earlier stream).
    pub fn write_merged(&mut self, streams: &[&[ReplayMessage]]) -> Result<(), ReplayError> {
        let mut next = vec![0usize; streams.len()];
        loop {
            let earliest = streams
                .iter()
                .zip(&next)
                .enumerate()
                .filter_map(|(s, (stream, &i))| Some((stream.get(i)?.publish_time, s)))
                .min();
            let Some((_, s)) = earliest else { return Ok(()) };
            self.write_message(&streams[s][next[s]])?;
            next[s] += 1;
        }
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

    fn write(
        &mut self,
        topic: Topic,
        time: Timestamp,
        publish: Timestamp,
        message: &impl WireMessage,
    ) -> Result<(), ReplayError> {
        let nanos = |t: Timestamp, what: &str| {
            u64::try_from(t.as_nanos())
                .map_err(|_| ReplayError::Write { what: topic.to_string(), problem: format!("negative {what} {t}") })
        };
        let log_time = nanos(time, "capture time")?;
        let publish_time = nanos(publish, "arrival time")?;
        let bytes = v2x_proto::encode(message);
        if bytes.len() > v2x_proto::MAX_MESSAGE_BYTES {
            // The reader would refuse it (and every reader of the protocol's messages).
            return Err(ReplayError::Write {
                what: topic.to_string(),
                problem: format!("{} bytes, over the limit of {} bytes", bytes.len(), v2x_proto::MAX_MESSAGE_BYTES),
            });
        }
        let (channel_id, sequence) = self.channel(&topic)?;
        let header = MessageHeader { channel_id, sequence, log_time, publish_time };
        self.mcap
            .write_to_known_channel(&header, &bytes)
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
        let mut metadata = BTreeMap::new();
        if let Topic::Received(vehicle) = topic
            && let Some(Some(radius_m)) = self.radii.get(vehicle)
        {
            metadata.insert(SUBSCRIPTION_RADIUS_KEY.to_owned(), radius_m.to_string());
        }
        let id = self.mcap.add_channel(schema_id, &topic.to_string(), "protobuf", &metadata).map_err(map_err)?;
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
