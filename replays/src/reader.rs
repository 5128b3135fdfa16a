//! [`ReplayReader`]: streams a replay log as typed messages in log-time order (or, on request,
//! in the order they were recorded).
//!
//! The file is read incrementally (memory grows with the largest chunk and the reorder window,
//! never with the file). By default messages are re-ordered by log time within a window, so logs
//! recorded live, where sensors deliver out of order, come out sorted; [`ReadOrder::File`] yields
//! them as written, which for a daemon's recording is the order the daemon handled them in. Every message is decoded and
//! validated through `v2x-proto`; its topic must agree with its content.
//!
//! Damage (truncation, corruption, invalid messages, a data or summary section that fails its
//! CRC, bytes after the end magic) is reported with the file, the byte offset, the last good
//! message and, where the record structure shows it, what is damaged and where. In [`ReadMode::Strict`] the damage is an error item; in
//! [`ReadMode::Recover`] the reader ends cleanly after yielding every intact message before the
//! damage, and [`ReplayReader::damage`] says what was found.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::borrow::Cow;

use mcap::read::ChannelAccumulator;
use mcap::sans_io::{LinearReader, LinearReaderOptions};
use rsu_fusion::{RoadsideFrame, SensorFrame, Timestamp, VehicleState};
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta, RsiEvent, SignalControllerState, Spat};
use v2x_proto::{DecodeError, decode};

use crate::ReplayError;
use crate::topics::Topic;
use crate::writer::SUBSCRIPTION_RADIUS_KEY;

/// Largest MCAP record or chunk the reader accepts [bytes]; protects against corrupt lengths.
/// Our writer's chunks hold about 512 KiB and a message at most 1 MiB
/// ([`v2x_proto::MAX_MESSAGE_BYTES`]), so 16 MiB leaves a wide margin while bounding what a
/// damaged length inside a chunk can make MCAP allocate.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// How the reader treats damage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Verify each chunk's CRC before yielding its messages; damage is an error.
    #[default]
    Strict,
    /// Yield every message that decodes before the damage (including those of a truncated last
    /// chunk), then end; see [`ReplayReader::damage`].
    Recover,
}

/// The order messages come out in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadOrder {
    /// By log time (the messages' own times), within the reorder window; ties in file order.
    #[default]
    LogTime,
    /// As written in the file (a recorder writes in the order it handled them).
    File,
}

/// Reader options.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Damage handling.
    pub mode: ReadMode,
    /// How far out of log-time order [ns] messages may be stored and still come out sorted
    /// (log-time order only).
    pub reorder_window_ns: u64,
    /// Which order messages come out in.
    pub order: ReadOrder,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { mode: ReadMode::Strict, reorder_window_ns: 2_000_000_000, order: ReadOrder::LogTime }
    }
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayMessage {
    /// Log time: the message's own time (capture time, frame time).
    pub log_time: Timestamp,
    /// Publish time: when the message reached whoever recorded it (the RSU's arrival time of a
    /// sensor frame or vehicle state, a vehicle's receipt time of a received frame; a roadside
    /// frame's own time); equal to `log_time` when the recorder did not know.
    pub publish_time: Timestamp,
    /// Its topic.
    pub topic: Topic,
    /// The content.
    pub body: ReplayBody,
}

/// The content of a message, by type.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayBody {
    /// Log metadata.
    Meta(Box<ReplayMeta>),
    /// A roadside sensor frame (shared: handing it to the fusion engine copies nothing).
    Sensor(Arc<SensorFrame>),
    /// Simulator ground truth.
    GroundTruth(GroundTruthFrame),
    /// A vehicle's self-report.
    Vehicle(VehicleState),
    /// A fused broadcast frame.
    Roadside(RoadsideFrame),
    /// A broadcast frame as one vehicle received it (its receipt time is the message's
    /// publish time).
    Received(Box<Received>),
    /// A signal controller's state (its arrival at the RSU is the publish time).
    Signal(SignalControllerState),
    /// The SPaT of an intersection as the RSU broadcast it.
    Spat(Spat),
    /// A road safety information event the RSU raised.
    Rsi(RsiEvent),
}

impl ReplayBody {
    /// The message's own time, its log time: capture time, frame time, the log's start for
    /// `/meta`.
    pub fn time(&self) -> Timestamp {
        match self {
            ReplayBody::Meta(m) => m.start_time,
            ReplayBody::Sensor(f) => f.capture_time,
            ReplayBody::GroundTruth(g) => g.time,
            ReplayBody::Vehicle(v) => v.time,
            ReplayBody::Roadside(r) => r.time,
            ReplayBody::Received(r) => r.frame.time,
            ReplayBody::Signal(s) => s.time,
            ReplayBody::Spat(s) => s.time,
            ReplayBody::Rsi(e) => e.time,
        }
    }

    /// The topic it belongs on.
    pub fn topic(&self) -> Topic {
        match self {
            ReplayBody::Meta(_) => Topic::Meta,
            ReplayBody::Sensor(f) => Topic::Sensor(f.sensor_id.clone()),
            ReplayBody::GroundTruth(_) => Topic::GroundTruth,
            ReplayBody::Vehicle(v) => Topic::Vehicle(v.vehicle_id.clone()),
            ReplayBody::Roadside(r) => Topic::Roadside(r.rsu_id.clone()),
            ReplayBody::Received(r) => Topic::Received(r.vehicle_id.clone()),
            ReplayBody::Signal(s) => Topic::Signal(s.controller_id.clone()),
            ReplayBody::Spat(s) => Topic::Spat(s.intersection_id.to_string()),
            ReplayBody::Rsi(_) => Topic::Rsi,
        }
    }
}

impl ReplayMessage {
    /// `body` as a message that reached its recorder at `publish_time` (`None`: not known, so
    /// its own time; see `replays/README.md`, "Times").
    pub fn new(body: ReplayBody, publish_time: Option<Timestamp>) -> Self {
        let log_time = body.time();
        ReplayMessage { log_time, publish_time: publish_time.unwrap_or(log_time), topic: body.topic(), body }
    }
}

/// A roadside frame as one vehicle received it (after the RSU's per-vehicle region filter).
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// The receiving vehicle's id.
    pub vehicle_id: String,
    /// The radius it subscribed to around itself [m], when it did (from the channel's
    /// metadata).
    pub subscription_radius_m: Option<u32>,
    /// The frame as decoded.
    pub frame: RoadsideFrame,
}

/// What the reader has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Messages read from the file (any topic).
    pub messages: u64,
    /// Messages on topics that are not ours, skipped.
    pub foreign_skipped: u64,
    /// Messages that arrived later than the reorder window allowed and were yielded out of order.
    pub out_of_order: u64,
}

/// Bytes read from the file at a time, at least (the MCAP reader asks for as little as a record
/// header): a few reads per chunk instead of one per record header and decoder block, and the
/// MCAP reader's buffer, which it zero-fills as it grows, soon stops growing. Memory stays
/// bounded: this, plus the largest record or chunk.
const READ_AHEAD_BYTES: usize = 256 * 1024;

/// Drives MCAP's sans-io record reader over the file and links messages to their channels, as
/// `mcap::io::MessageReader` does, but reading ahead straight into the reader's own buffer (no
/// `BufReader` to copy every byte from), counting the bytes read for error locations, and
/// checking every record's length fields before MCAP parses it: MCAP reserves a string's or byte
/// array's claimed length (up to 4 GiB) before reading it, so a few damaged bytes could make it
/// ask for gigabytes.
///
/// One difference from MCAP's reader: a data end record inside a chunk (which MCAP forbids)
/// ends the data section here, where MCAP's reader skips it.
struct McapFile {
    file: File,
    reader: LinearReader,
    /// Schemas and channels seen so far.
    channels: ChannelAccumulator<'static>,
    /// A data end record has been read: the summary follows.
    past_data_end: bool,
    /// Which record field ran past its record, when that ended reading.
    field_damage: Option<String>,
    /// Bytes read from the file.
    offset: u64,
    /// Sizes of the last two reads [bytes] (the newest last): the bytes the reader may not have
    /// consumed yet when it reports an error lie within them.
    recent_reads: [u64; 2],
    /// An I/O error or the end: nothing more is read.
    done: bool,
}

impl McapFile {
    /// A reader of `file` with MCAP's reader settings for `mode`.
    fn new(file: File, mode: ReadMode) -> McapFile {
        McapFile {
            file,
            reader: LinearReader::new_with_options(linear_options(mode).with_emit_chunks(false)),
            channels: ChannelAccumulator::default(),
            past_data_end: false,
            field_damage: None,
            offset: 0,
            recent_reads: [0; 2],
            done: false,
        }
    }

    /// The next message in file order, an error (then `None` ever after) or `None` at the end.
    fn next(&mut self) -> Option<mcap::McapResult<mcap::Message<'static>>> {
        if self.done {
            return None;
        }
        let next = self.next_inner();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }

    /// The error for `cause`, which ended reading `path` after `context`, naming where the
    /// damage lies when the file shows it.
    fn container_error(&mut self, path: &Path, context: String, cause: mcap::McapError) -> ReplayError {
        let located = match self.field_damage.take() {
            Some(what) => Some((self.offset, what)),
            None => self.locate_tail_damage(&cause).or_else(|| self.locate_broken_structure()),
        };
        let (offset, context) = match located {
            Some((offset, what)) => (offset, format!("{context}; {what}")),
            None => (self.offset, context),
        };
        ReplayError::Container { path: path.to_owned(), offset, context, cause }
    }

    /// How many bytes to read when MCAP asks for `need`: at least [`READ_AHEAD_BYTES`], and no
    /// more than that or the bytes left in the file, whichever is larger. MCAP zero-fills its
    /// buffer to the size asked, so a damaged record length (up to [`MAX_RECORD_BYTES`]) would
    /// otherwise cost that much memory even in a file of a few bytes.
    fn read_size(&self, need: usize) -> usize {
        if need <= READ_AHEAD_BYTES {
            return READ_AHEAD_BYTES;
        }
        // The file's length now (a recording may still be growing).
        let left = self.file.metadata().map_or(u64::MAX, |m| m.len().saturating_sub(self.offset));
        need.min(usize::try_from(left).unwrap_or(usize::MAX).max(READ_AHEAD_BYTES))
    }

    /// [`Self::next`] before it marks the end: `mcap::sans_io::MessageReader`'s loop, with every
    /// record's length fields checked ([`check_field_lengths`]) before MCAP parses it.
    fn next_inner(&mut self) -> Option<mcap::McapResult<mcap::Message<'static>>> {
        use mcap::records::{Record, op};
        use mcap::sans_io::LinearReadEvent;
        loop {
            let need = match self.reader.next_event()? {
                Err(e) => return Some(Err(e)),
                Ok(LinearReadEvent::ReadRequest(need)) => need,
                // The summary repeats schemas and channels: read on to the end magic without
                // re-checking them.
                Ok(LinearReadEvent::Record { opcode: op::DATA_END, .. }) => {
                    self.past_data_end = true;
                    continue;
                }
                Ok(LinearReadEvent::Record { opcode, data }) => {
                    if let Err(problem) = check_field_lengths(opcode, data) {
                        self.field_damage = Some(format!("a {} record {problem}", record_name(opcode)));
                        return Some(Err(mcap::McapError::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "record field longer than its record",
                        ))));
                    }
                    let record = match mcap::parse_record(opcode, data) {
                        Ok(record) => record,
                        Err(e) => return Some(Err(e)),
                    };
                    if self.past_data_end {
                        continue;
                    }
                    match record {
                        Record::Schema { header, data } => {
                            if let Err(e) = self.channels.add_schema(header, Cow::Owned(data.into_owned())) {
                                return Some(Err(e));
                            }
                        }
                        Record::Channel(channel) => {
                            if let Err(e) = self.channels.add_channel(channel) {
                                return Some(Err(e));
                            }
                        }
                        Record::Message { header, data } => {
                            let Some(channel) = self.channels.get(header.channel_id) else {
                                return Some(Err(mcap::McapError::UnknownChannel(header.sequence, header.channel_id)));
                            };
                            return Some(Ok(mcap::Message {
                                channel,
                                sequence: header.sequence,
                                log_time: header.log_time,
                                publish_time: header.publish_time,
                                data: Cow::Owned(data.into_owned()),
                            }));
                        }
                        _ => {}
                    }
                    continue;
                }
            };
            let buffer = self.reader.insert(self.read_size(need));
            // `Read` asks for a retry on `Interrupted`; zero bytes read means the end.
            let read = loop {
                match self.file.read(buffer) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Some(Err(e.into())),
                }
            };
            self.offset += read as u64;
            self.recent_reads = [self.recent_reads[1], read as u64];
            self.reader.notify_read(read);
        }
    }

    /// Where damage found after the last message lies, for the causes that name a part of the
    /// file after the data: the byte it is at or before, and what is damaged. Reads at most the
    /// last two reads' bytes and the footer; `None` when the cause is another or the file does
    /// not show where.
    fn locate_tail_damage(&mut self, cause: &mcap::McapError) -> Option<(u64, String)> {
        use mcap::McapError;
        match cause {
            McapError::BytesAfterEndMagic => {
                // The end magic is within what the reader had not consumed: the last two reads
                // and the footer before them.
                let span = self.recent_reads[0] + self.recent_reads[1] + FOOTER_AND_MAGIC_BYTES;
                let start = self.offset.saturating_sub(span);
                let region = self.read_range(start, self.offset)?;
                let end = start + find_mcap_end(&region)?;
                let len = self.file.metadata().ok()?.len();
                Some((
                    end,
                    format!(
                        "{} bytes that are not MCAP follow the end of the MCAP file (its end magic ends at byte {end}): \
                         appended data",
                        len.saturating_sub(end)
                    ),
                ))
            }
            McapError::BadSummaryCrc { .. } => {
                let len = self.file.metadata().ok()?.len();
                let footer_at = len.checked_sub(FOOTER_AND_MAGIC_BYTES)?;
                let tail = self.read_range(footer_at, len)?;
                let summary_start = u64::from_le_bytes(tail.get(9..17)?.try_into().ok()?);
                Some((
                    footer_at,
                    format!(
                        "the summary section (bytes {summary_start}..{footer_at}: the schemas, channels, statistics \
                         and indexes written after the last message) does not match its CRC; the messages before \
                         it are intact"
                    ),
                ))
            }
            McapError::BadDataCrc { .. } => Some((
                self.offset,
                "the data section does not match its CRC (every chunk matched its own: the damage is between chunks)"
                    .into(),
            )),
            _ => None,
        }
    }

    /// Where the file's record structure breaks, found by walking its records from the start
    /// by their length fields (9-byte headers read, contents skipped): the byte the damage is at
    /// or before, and what it is. `None` when the structure is intact up to the footer (the
    /// damage is inside a record, which the MCAP reader's own error names) or cannot be read.
    fn locate_broken_structure(&mut self) -> Option<(u64, String)> {
        use mcap::records::op;
        let len = self.file.metadata().ok()?.len();
        let mut at = mcap::MAGIC.len() as u64;
        let mut after_data_end = false;
        loop {
            let section = if after_data_end { "summary section" } else { "data section" };
            if at == len {
                let missing = if after_data_end { "summary and footer" } else { "data end, summary and footer" };
                return Some((
                    at,
                    format!(
                        "the file ends at byte {at}, between two records of the {section}, without the {missing}: \
                         cut short (a crash, or a copy that did not finish)"
                    ),
                ));
            }
            let Some(header) = self.read_range(at, at.saturating_add(9)).filter(|h| h.len() == 9) else {
                return Some((len, format!("the file ends inside the header of the record at byte {at}: cut short")));
            };
            let opcode = header[0];
            let record_len = u64::from_le_bytes(header[1..9].try_into().ok()?);
            if opcode == op::FOOTER {
                return None;
            }
            if opcode == 0 || opcode > op::DATA_END {
                return Some((
                    at,
                    format!(
                        "the bytes at {at} in the {section} are no MCAP record (opcode 0x{opcode:02x}{}): corrupt",
                        if opcode == 0 { ", zeroed bytes?" } else { "" }
                    ),
                ));
            }
            if opcode == op::CHUNK && record_len == u64::MAX {
                // A writer streams a chunk to the file behind a placeholder length, written when
                // the chunk ends.
                return Some((
                    at,
                    format!(
                        "the chunk at byte {at} in the {section} was never finished (its length is still the \
                         writer's placeholder) and the file ends inside it: cut short (a crash)"
                    ),
                ));
            }
            let end = at.checked_add(9).and_then(|e| e.checked_add(record_len));
            match end {
                Some(end) if end <= len => {
                    after_data_end |= opcode == op::DATA_END;
                    at = end;
                }
                Some(end) if record_len <= MAX_RECORD_BYTES as u64 => {
                    return Some((
                        len,
                        format!(
                            "the file ends inside the {} record at byte {at} in the {section} ({} of its {} bytes \
                             missing): cut short (a crash, or a copy that did not finish)",
                            record_name(opcode),
                            end - len,
                            record_len + 9
                        ),
                    ));
                }
                _ => {
                    return Some((
                        at,
                        format!(
                            "the {} record at byte {at} in the {section} claims {record_len} bytes, more than the file \
                             holds: a corrupt length",
                            record_name(opcode)
                        ),
                    ));
                }
            }
        }
    }

    /// Bytes `start..end` of the file (reading is over: the position no longer matters).
    fn read_range(&mut self, start: u64, end: u64) -> Option<Vec<u8>> {
        use std::io::{Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(start)).ok()?;
        let mut out = Vec::new();
        (&mut self.file).take(end.checked_sub(start)?).read_to_end(&mut out).ok()?;
        Some(out)
    }
}

/// Checks that every length-prefixed string, map and byte array of the MCAP record `body` (of
/// type `opcode`) fits in the record; records of fixed layout, and those whose byte array runs
/// to the record's end, always pass. Layouts from the MCAP specification.
fn check_field_lengths(opcode: u8, body: &[u8]) -> Result<(), String> {
    use mcap::records::op;
    let mut fields = Fields { body, at: 0 };
    match opcode {
        op::HEADER => {
            fields.string("profile")?;
            fields.string("library")?;
        }
        op::SCHEMA => {
            fields.skip(2, "id")?;
            fields.string("name")?;
            fields.string("encoding")?;
            fields.prefixed(4, "data")?;
        }
        op::CHANNEL => {
            fields.skip(4, "ids")?;
            fields.string("topic")?;
            fields.string("message encoding")?;
            fields.string_map("metadata")?;
        }
        // A chunk record reaches the parser only where the record reader does not open it
        // itself (inside another chunk, or after the data end).
        op::CHUNK => {
            fields.skip(28, "times, size and CRC")?;
            fields.string("compression")?;
            fields.prefixed(8, "records")?;
        }
        op::CHUNK_INDEX => {
            fields.skip(32, "times and offsets")?;
            fields.prefixed(4, "message index offsets")?;
            fields.skip(8, "message index length")?;
            fields.string("compression")?;
        }
        op::ATTACHMENT => {
            fields.skip(16, "times")?;
            fields.string("name")?;
            fields.string("media type")?;
            fields.prefixed(8, "data")?;
        }
        op::ATTACHMENT_INDEX => {
            fields.skip(40, "offsets, times and size")?;
            fields.string("name")?;
            fields.string("media type")?;
        }
        op::METADATA => {
            fields.string("name")?;
            fields.string_map("metadata")?;
        }
        op::METADATA_INDEX => {
            fields.skip(16, "offset and length")?;
            fields.string("name")?;
        }
        _ => {}
    }
    Ok(())
}

/// A cursor over a record's fields for [`check_field_lengths`].
struct Fields<'a> {
    body: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn left(&self) -> usize {
        self.body.len().saturating_sub(self.at)
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), String> {
        if n > self.left() {
            return Err(format!("ends inside its {what} ({} bytes left)", self.left()));
        }
        self.at += n;
        Ok(())
    }

    /// A length of `width` bytes (little-endian), then that many bytes.
    fn prefixed(&mut self, width: usize, what: &str) -> Result<(), String> {
        let start = self.at;
        self.skip(width, what)?;
        let mut word = [0u8; 8];
        word[..width].copy_from_slice(&self.body[start..start + width]);
        let len = u64::from_le_bytes(word);
        match usize::try_from(len) {
            Ok(len) if len <= self.left() => {
                self.at += len;
                Ok(())
            }
            _ => Err(format!("claims {len} bytes for its {what}, {} are left in the record", self.left())),
        }
    }

    fn string(&mut self, what: &str) -> Result<(), String> {
        self.prefixed(4, what)
    }

    /// A map of strings to strings: its length in bytes, then key and value strings.
    fn string_map(&mut self, what: &str) -> Result<(), String> {
        let start = self.at;
        self.prefixed(4, what)?;
        let end = self.at;
        self.at = start + 4;
        while self.at < end {
            self.string(what)?;
            self.string(what)?;
        }
        Ok(())
    }
}

/// The MCAP specification's name of a record opcode.
fn record_name(opcode: u8) -> &'static str {
    use mcap::records::op;
    match opcode {
        op::HEADER => "header",
        op::FOOTER => "footer",
        op::SCHEMA => "schema",
        op::CHANNEL => "channel",
        op::MESSAGE => "message",
        op::CHUNK => "chunk",
        op::MESSAGE_INDEX => "message index",
        op::CHUNK_INDEX => "chunk index",
        op::ATTACHMENT => "attachment",
        op::ATTACHMENT_INDEX => "attachment index",
        op::STATISTICS => "statistics",
        op::METADATA => "metadata",
        op::METADATA_INDEX => "metadata index",
        op::SUMMARY_OFFSET => "summary offset",
        op::DATA_END => "data end",
        _ => "unknown",
    }
}

/// A footer record (opcode, length, 20 bytes) and the end magic [bytes].
const FOOTER_AND_MAGIC_BYTES: u64 = 1 + 8 + 20 + 8;

/// The end of the MCAP file in `region`: the end of the first footer record followed by the end
/// magic.
fn find_mcap_end(region: &[u8]) -> Option<u64> {
    let n = FOOTER_AND_MAGIC_BYTES as usize;
    region
        .windows(n)
        .position(|w| w[0] == mcap::records::op::FOOTER && w[1..9] == 20u64.to_le_bytes() && &w[29..] == mcap::MAGIC)
        .map(|i| (i + n) as u64)
}

/// MCAP's reader settings for `mode`: records bounded by [`MAX_RECORD_BYTES`]; chunk CRCs
/// checked before any of a chunk's messages in strict mode, as they are read in recover mode.
/// The data section's and the summary's CRCs are checked, and bytes after the end magic are
/// damage, in both modes: they come after every message, so recover mode has yielded everything
/// by then and only reports them.
fn linear_options(mode: ReadMode) -> LinearReaderOptions {
    let options = LinearReaderOptions::default()
        .with_record_length_limit(MAX_RECORD_BYTES)
        .with_validate_data_section_crc(true)
        .with_validate_summary_section_crc(true)
        .with_check_finishes_after_end_magic(true);
    match mode {
        ReadMode::Strict => options.with_prevalidate_chunk_crcs(true),
        ReadMode::Recover => options.with_validate_chunk_crcs(true),
    }
}

/// Messages waiting in the reorder window, yielded earliest first (by log time, then file
/// order). The heap orders small keys naming slots where the messages wait: moving a message (a
/// few hundred bytes) at every step of a heap's sift would cost more than the ordering.
#[derive(Default)]
struct Pending {
    /// (log time [ns], file index, slot): unique, as file indices are.
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<Option<ReplayMessage>>,
    /// Slots free for reuse.
    free: Vec<usize>,
}

impl Pending {
    fn push(&mut self, key: (u64, u64), message: ReplayMessage) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(message);
                slot
            }
            None => {
                self.slots.push(Some(message));
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((key.0, key.1, slot)));
    }

    /// The log time of the earliest message.
    fn earliest_ns(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Takes the earliest message, with its log time.
    fn pop(&mut self) -> Option<(u64, ReplayMessage)> {
        let Reverse((t, _, slot)) = self.heap.pop()?;
        let message = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some((t, message))
    }
}

/// The file side: raw MCAP messages decoded into typed messages, in file order.
struct Source {
    path: PathBuf,
    mcap: McapFile,
    /// The last good message, for error context: its channel (whose topic name is what its
    /// [`Topic`] prints; sharing it costs less than copying the topic) and log time.
    last_good: Option<(Arc<mcap::Channel<'static>>, Timestamp)>,
    /// Messages of ours read so far.
    index: u64,
    stats: ReadStats,
}

/// Streams a replay log.
pub struct ReplayReader {
    source: Source,
    options: OpenOptions,
    meta: ReplayMeta,
    pending: Pending,
    /// Newest log time read from the file [ns].
    newest_ns: u64,
    /// Log time of the last message yielded [ns].
    last_yielded_ns: u64,
    damage: Option<ReplayError>,
    source_done: bool,
    error_pending: Option<ReplayError>,
}

impl ReplayReader {
    /// Opens a log in strict mode.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens a log; reads and checks its `/meta` message.
    pub fn open_with(path: &Path, options: OpenOptions) -> Result<Self, ReplayError> {
        let file = File::open(path).map_err(|cause| ReplayError::Io { path: path.to_owned(), cause })?;
        let mcap = McapFile::new(file, options.mode);
        let mut source = Source { path: path.to_owned(), mcap, last_good: None, index: 0, stats: ReadStats::default() };
        // The first message must be the metadata.
        let first = match source.read_one() {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(e),
            None => {
                return Err(ReplayError::NotAReplay {
                    path: path.to_owned(),
                    problem: "the log holds no message".into(),
                });
            }
        };
        match first.body {
            ReplayBody::Meta(meta) => {
                if meta.format_version != v2x_proto::domain::REPLAY_FORMAT_VERSION {
                    return Err(ReplayError::NotAReplay {
                        path: path.to_owned(),
                        problem: format!(
                            "replay format version {} is not supported (this build reads version {})",
                            meta.format_version,
                            v2x_proto::domain::REPLAY_FORMAT_VERSION
                        ),
                    });
                }
                Ok(ReplayReader {
                    source,
                    options,
                    meta: *meta,
                    pending: Pending::default(),
                    newest_ns: 0,
                    last_yielded_ns: 0,
                    damage: None,
                    source_done: false,
                    error_pending: None,
                })
            }
            _ => Err(ReplayError::NotAReplay {
                path: path.to_owned(),
                problem: format!("the first message is on {}, not /meta", first.topic),
            }),
        }
    }

    /// The log's metadata.
    pub fn meta(&self) -> &ReplayMeta {
        &self.meta
    }

    /// The options it was opened with.
    pub fn options(&self) -> OpenOptions {
        self.options
    }

    /// Counters so far.
    pub fn stats(&self) -> ReadStats {
        self.source.stats
    }

    /// In recover mode, the damage that ended reading early (once the iterator has ended).
    pub fn damage(&self) -> Option<&ReplayError> {
        self.damage.as_ref()
    }

    /// Pops the earliest pending message if it can no longer be preceded by one still unread.
    fn pop_ready(&mut self, flush: bool) -> Option<ReplayMessage> {
        let earliest_ns = self.pending.earliest_ns()?;
        let file_order = self.options.order == ReadOrder::File;
        let ready = flush || file_order || earliest_ns.saturating_add(self.options.reorder_window_ns) <= self.newest_ns;
        if !ready {
            return None;
        }
        let (t, message) = self.pending.pop()?;
        // In file order nothing is reordered, so nothing counts as yielded out of order.
        if t < self.last_yielded_ns && !file_order {
            self.source.stats.out_of_order += 1;
        }
        self.last_yielded_ns = self.last_yielded_ns.max(t);
        Some(message)
    }
}

/// Every message of any MCAP file, in file order, whatever its topics and encodings: for
/// importers of other tools' logs (rosbag2 with ROS 2 CDR, say). It reads as the replay reader
/// does: streaming, each record's length fields checked before it is parsed, and damage ending
/// it with an error that says where.
pub struct ForeignReader {
    path: PathBuf,
    mcap: McapFile,
    /// Messages read.
    read: u64,
}

impl ForeignReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let file = File::open(path).map_err(|cause| ReplayError::Io { path: path.to_owned(), cause })?;
        Ok(ForeignReader { path: path.to_owned(), mcap: McapFile::new(file, ReadMode::Strict), read: 0 })
    }
}

impl Iterator for ForeignReader {
    type Item = Result<mcap::Message<'static>, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.mcap.next()? {
            Ok(message) => {
                self.read += 1;
                Some(Ok(message))
            }
            Err(cause) => {
                let context = format!("after {} messages", self.read);
                Some(Err(self.mcap.container_error(&self.path, context, cause)))
            }
        }
    }
}

impl Source {
    fn context(&self) -> String {
        match &self.last_good {
            Some((channel, t)) => {
                format!("after {} good messages, the last on {} at {t}", self.index, channel.topic)
            }
            None => "before any good message".into(),
        }
    }

    /// Reads and decodes the next message of ours in file order.
    fn read_one(&mut self) -> Option<Result<ReplayMessage, ReplayError>> {
        loop {
            let raw = match self.mcap.next()? {
                Ok(raw) => raw,
                Err(cause) => {
                    let context = self.context();
                    return Some(Err(self.mcap.container_error(&self.path, context, cause)));
                }
            };
            self.stats.messages += 1;
            let Some(topic) = Topic::parse(&raw.channel.topic) else {
                self.stats.foreign_skipped += 1;
                continue;
            };
            let index = self.index;
            self.index += 1;
            let time = |ns: u64, what: &str| match i64::try_from(ns) {
                Ok(ns) => Ok(Timestamp::from_nanos(ns)),
                Err(_) => Err(ReplayError::Inconsistent {
                    path: self.path.clone(),
                    index,
                    topic: topic.to_string(),
                    problem: format!("{what} {ns} is beyond the year 2262"),
                }),
            };
            let (log_time, publish_time) =
                match time(raw.log_time, "log time").and_then(|l| Ok((l, time(raw.publish_time, "publish time")?))) {
                    Ok(times) => times,
                    Err(e) => return Some(Err(e)),
                };
            let schema_ok = raw.channel.schema.as_ref().is_some_and(|s| s.name == topic.schema_name())
                && raw.channel.message_encoding == "protobuf";
            if !schema_ok {
                return Some(Err(ReplayError::Inconsistent {
                    path: self.path.clone(),
                    index,
                    topic: topic.to_string(),
                    problem: format!("channel must carry protobuf {}", topic.schema_name()),
                }));
            }
            let message = match self.decode(&topic, &raw.channel, &raw.data) {
                Ok(body) => ReplayMessage { log_time, publish_time, topic, body },
                Err(cause) => {
                    return Some(Err(ReplayError::Message {
                        path: self.path.clone(),
                        index,
                        topic: topic.to_string(),
                        log_time,
                        cause,
                    }));
                }
            };
            if let Some(problem) = inconsistency(&message) {
                return Some(Err(ReplayError::Inconsistent {
                    path: self.path.clone(),
                    index,
                    topic: message.topic.to_string(),
                    problem,
                }));
            }
            self.last_good = Some((raw.channel, log_time));
            return Some(Ok(message));
        }
    }

    fn decode(&self, topic: &Topic, channel: &mcap::Channel<'_>, data: &[u8]) -> Result<ReplayBody, DecodeError> {
        Ok(match topic {
            Topic::Meta => ReplayBody::Meta(Box::new(decode::<ReplayMeta>(data)?)),
            Topic::Sensor(_) => ReplayBody::Sensor(Arc::new(decode::<SensorFrame>(data)?)),
            Topic::GroundTruth => ReplayBody::GroundTruth(decode::<GroundTruthFrame>(data)?),
            Topic::Vehicle(_) => ReplayBody::Vehicle(decode::<VehicleState>(data)?),
            Topic::Roadside(_) => ReplayBody::Roadside(decode::<RoadsideFrame>(data)?),
            Topic::Received(vehicle_id) => ReplayBody::Received(Box::new(Received {
                vehicle_id: vehicle_id.clone(),
                // A radius that does not parse is as good as none: the frames are still intact.
                subscription_radius_m: channel.metadata.get(SUBSCRIPTION_RADIUS_KEY).and_then(|r| r.parse().ok()),
                frame: decode::<RoadsideFrame>(data)?,
            })),
            Topic::Signal(_) => ReplayBody::Signal(decode::<SignalControllerState>(data)?),
            Topic::Spat(_) => ReplayBody::Spat(decode::<Spat>(data)?),
            Topic::Rsi => ReplayBody::Rsi(decode::<RsiEvent>(data)?),
        })
    }
}

/// Checks that a message's content agrees with its topic.
fn inconsistency(m: &ReplayMessage) -> Option<String> {
    let (claimed, actual, time) = match (&m.topic, &m.body) {
        (Topic::Sensor(id), ReplayBody::Sensor(f)) => (id, &f.sensor_id, f.capture_time),
        (Topic::Vehicle(id), ReplayBody::Vehicle(s)) => (id, &s.vehicle_id, s.time),
        (Topic::Roadside(id), ReplayBody::Roadside(f)) => (id, &f.rsu_id, f.time),
        (Topic::Signal(id), ReplayBody::Signal(s)) => (id, &s.controller_id, s.time),
        (Topic::Spat(id), ReplayBody::Spat(s)) => {
            if *id != s.intersection_id.to_string() {
                return Some(format!("the topic names {id:?} but the SPaT is of intersection {}", s.intersection_id));
            }
            return (s.time != m.log_time)
                .then(|| format!("log time {} differs from the SPaT's time {}", m.log_time, s.time));
        }
        (Topic::GroundTruth, ReplayBody::GroundTruth(g)) => {
            return (g.time != m.log_time)
                .then(|| format!("log time {} differs from the frame's time {}", m.log_time, g.time));
        }
        (Topic::Rsi, ReplayBody::Rsi(e)) => {
            return (e.time != m.log_time)
                .then(|| format!("log time {} differs from the event's time {}", m.log_time, e.time));
        }
        (Topic::Received(_), ReplayBody::Received(r)) => {
            return (r.frame.time != m.log_time)
                .then(|| format!("log time {} differs from the received frame's time {}", m.log_time, r.frame.time));
        }
        _ => return None,
    };
    if claimed != actual {
        return Some(format!("the topic names {claimed:?} but the message is from {actual:?}"));
    }
    (time != m.log_time).then(|| format!("log time {} differs from the message's capture time {time}", m.log_time))
}

impl Iterator for ReplayReader {
    type Item = Result<ReplayMessage, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(m) = self.pop_ready(self.source_done) {
                return Some(Ok(m));
            }
            if self.source_done {
                // Everything before the damage is out: now report it (strict) or end (recover).
                return self.error_pending.take().map(Err);
            }
            match self.source.read_one() {
                Some(Ok(message)) => {
                    let t = u64::try_from(message.log_time.as_nanos()).unwrap_or(0);
                    self.newest_ns = self.newest_ns.max(t);
                    let key = (t, self.source.index);
                    self.pending.push(key, message);
                }
                Some(Err(e)) => {
                    self.source_done = true;
                    match self.options.mode {
                        ReadMode::Strict => self.error_pending = Some(e),
                        ReadMode::Recover => self.damage = Some(e),
                    }
                }
                None => self.source_done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Cursor;

    use super::*;

    /// An MCAP file of zstd chunks of at most 64 KiB, on two channels, with varied payloads.
    fn chunked_mcap() -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut writer = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .chunk_size(Some(64 * 1024))
            .create(&mut out)
            .expect("writer");
        let schema = writer.add_schema("s", "protobuf", b"schema").expect("schema");
        let channels = [
            writer.add_channel(schema, "/a", "protobuf", &BTreeMap::new()).expect("channel"),
            writer.add_channel(schema, "/b", "protobuf", &BTreeMap::new()).expect("channel"),
        ];
        let mut x = 12_345u64;
        for sequence in 0..1500u32 {
            let payload: Vec<u8> = (0..200)
                .map(|i| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    if i % 3 == 0 { (x >> 59) as u8 } else { i as u8 }
                })
                .collect();
            let header = mcap::records::MessageHeader {
                channel_id: channels[sequence as usize % 2],
                sequence,
                log_time: u64::from(sequence) * 1000,
                publish_time: u64::from(sequence) * 1000,
            };
            writer.write_to_known_channel(&header, &payload).expect("message");
        }
        writer.finish().expect("finish");
        drop(writer);
        out.into_inner()
    }

    /// Messages as (topic, log time, data), or the error that ended reading.
    type Messages = Vec<Result<(String, u64, Vec<u8>), String>>;

    fn collect(mut next: impl FnMut() -> Option<mcap::McapResult<mcap::Message<'static>>>) -> Messages {
        std::iter::from_fn(|| {
            next().map(|m| {
                m.map(|m| (m.channel.topic.clone(), m.log_time, m.data.into_owned())).map_err(|e| e.to_string())
            })
        })
        .collect()
    }

    /// [`McapFile`] reads what `mcap::io::MessageReader` reads, with the same error, from intact,
    /// cut and corrupted files, in both modes.
    #[test]
    fn mcap_file_reads_as_the_mcap_crate_reader_does() {
        let intact = chunked_mcap();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.mcap");
        let mut variants: Vec<Vec<u8>> = vec![intact.clone()];
        variants.extend((1..40).map(|i| intact[..intact.len() * i / 40].to_vec()));
        for i in 1..12 {
            let mut corrupt = intact.clone();
            let at = intact.len() * i / 12;
            corrupt[at..at + 8].iter_mut().for_each(|b| *b ^= 0x5a);
            variants.push(corrupt);
        }
        for mode in [ReadMode::Strict, ReadMode::Recover] {
            let options = linear_options(mode);
            let mut damaged = 0;
            for (i, bytes) in variants.iter().enumerate() {
                std::fs::write(&path, bytes).expect("write");
                let mut ours = McapFile::new(File::open(&path).expect("open"), mode);
                let ours = collect(|| ours.next());
                let mut theirs =
                    mcap::io::MessageReader::new_with_options(File::open(&path).expect("open"), options.clone());
                let theirs = collect(|| theirs.next());
                assert_eq!(ours, theirs, "{mode:?}, variant {i}");
                if i == 0 {
                    assert_eq!(ours.len(), 1500);
                    assert!(ours.iter().all(Result::is_ok));
                }
                damaged += usize::from(ours.last().is_some_and(Result::is_err));
            }
            // Every cut and most corruptions are found.
            assert!(damaged > 45, "{mode:?}: {damaged} damaged");
        }
    }

    /// A record claiming [`MAX_RECORD_BYTES`] in a file of a few hundred bytes is read with a
    /// buffer of the file's size, not the claim (found by `fuzz/`: 250 MB zero-filled).
    #[test]
    fn a_record_longer_than_the_file_costs_no_more_than_the_file() {
        let mut bytes = chunked_mcap();
        bytes.truncate(8 + 9 + 600);
        // The header record claims the limit.
        bytes[9..17].copy_from_slice(&(MAX_RECORD_BYTES as u64).to_le_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.mcap");
        std::fs::write(&path, &bytes).expect("write");
        let file = McapFile::new(File::open(&path).expect("open"), ReadMode::Strict);
        assert_eq!(file.read_size(MAX_RECORD_BYTES + 9), READ_AHEAD_BYTES);
        assert_eq!(file.read_size(10), READ_AHEAD_BYTES);
        let mut file = file;
        assert!(matches!(file.next(), Some(Err(mcap::McapError::UnexpectedEof))), "cut short");
    }

    /// A record whose string claims more bytes than the record holds is damage, found before
    /// MCAP reserves the claimed length (4 GiB here; found by `fuzz/`, target
    /// `replay_log_strict`).
    #[test]
    fn a_field_longer_than_its_record_is_damage_not_an_allocation() {
        let mut bytes = chunked_mcap();
        // The header record follows the magic: opcode, length, then the profile string.
        assert_eq!(bytes[8], mcap::records::op::HEADER);
        bytes[17..21].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.mcap");
        std::fs::write(&path, &bytes).expect("write");
        for mode in [ReadMode::Strict, ReadMode::Recover] {
            let mut file = McapFile::new(File::open(&path).expect("open"), mode);
            assert!(matches!(file.next(), Some(Err(_))), "{mode:?}");
            assert!(file.next().is_none());
            let what = file.field_damage.as_deref().expect("the field is named");
            assert!(what.starts_with("a header record claims 4294967280 bytes for its profile"), "{what}");
            let Err(e) = ReplayReader::open_with(&path, OpenOptions { mode, ..OpenOptions::default() }) else {
                panic!("{mode:?}: opened")
            };
            assert!(e.to_string().contains("profile"), "{e}");
        }
    }

    #[test]
    fn record_fields_are_checked_against_the_record() {
        use mcap::records::op;
        let string = |s: &str| [&(s.len() as u32).to_le_bytes()[..], s.as_bytes()].concat();
        let channel = |map: Vec<u8>| [&[1, 0, 1, 0][..], &string("/a"), &string("protobuf"), &map].concat();
        let pair = [string("k"), string("v")].concat();
        let map = [&(pair.len() as u32).to_le_bytes()[..], &pair].concat();
        assert_eq!(check_field_lengths(op::CHANNEL, &channel(map.clone())), Ok(()));
        // A map whose byte length covers more than the record, or whose last value overruns.
        let mut long_map = map.clone();
        long_map[0] += 1;
        assert!(check_field_lengths(op::CHANNEL, &channel(long_map)).is_err());
        let mut overrun = map;
        let last = overrun.len() - 5;
        overrun[last] = 200;
        assert!(check_field_lengths(op::CHANNEL, &channel(overrun)).is_err());
        // A cut schema, an attachment claiming 2^64 - 1 bytes; messages and chunks pass.
        let schema = [&[1, 0][..], &string("s"), &string("protobuf"), &3u32.to_le_bytes(), b"abc"].concat();
        assert_eq!(check_field_lengths(op::SCHEMA, &schema), Ok(()));
        assert!(check_field_lengths(op::SCHEMA, &schema[..schema.len() - 1]).is_err());
        let attachment = [&[0; 16][..], &string("n"), &string("t"), &u64::MAX.to_le_bytes()].concat();
        assert!(check_field_lengths(op::ATTACHMENT, &attachment).is_err());
        assert_eq!(check_field_lengths(op::MESSAGE, &[0xff; 30]), Ok(()));
        // A chunk whose compression name claims 303 MB (found by `fuzz/`, `replay_log_recover`).
        let chunk = [&[0; 28][..], &string("lz4"), &2u64.to_le_bytes(), b"xy"].concat();
        assert_eq!(check_field_lengths(op::CHUNK, &chunk), Ok(()));
        let mut long_name = chunk;
        long_name[28..32].copy_from_slice(&303_612_578u32.to_le_bytes());
        assert!(check_field_lengths(op::CHUNK, &long_name).is_err());
    }

    /// A message at `ns` whose topic names its file `index`.
    fn message(ns: u64, index: u64) -> ReplayMessage {
        let time = Timestamp::from_nanos(ns as i64);
        ReplayMessage {
            log_time: time,
            publish_time: time,
            topic: Topic::Sensor(index.to_string()),
            body: ReplayBody::GroundTruth(GroundTruthFrame { time, objects: Vec::new(), signals: Vec::new() }),
        }
    }

    /// The pending messages come out as a sorted list of all of them would give them: by log time,
    /// then file index; with pushes and pops interleaved, so slots are reused.
    #[test]
    fn pending_messages_come_out_by_log_time_then_file_order() {
        let times = [50u64, 10, 30, 10, 70, 20, 30, 5, 90, 60, 10, 40];
        let mut pending = Pending::default();
        let mut model: Vec<(u64, u64)> = Vec::new();
        let check_next = |pending: &mut Pending, model: &mut Vec<(u64, u64)>| {
            model.sort_unstable();
            let (t, index) = model.remove(0);
            assert_eq!(pending.earliest_ns(), Some(t));
            let (popped_t, m) = pending.pop().expect("a message");
            assert_eq!((popped_t, m.topic), (t, Topic::Sensor(index.to_string())));
        };
        for (index, &t) in (0u64..).zip(&times) {
            pending.push((t, index), message(t, index));
            model.push((t, index));
            if index % 3 == 2 {
                check_next(&mut pending, &mut model);
            }
        }
        while !model.is_empty() {
            check_next(&mut pending, &mut model);
        }
        assert_eq!(pending.earliest_ns(), None);
        assert!(pending.pop().is_none());
    }
}
