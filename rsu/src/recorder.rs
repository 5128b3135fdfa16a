//! The recorder: everything the daemon takes in (sensor frames, vehicle states, signal
//! controller states) and sends out (roadside frames, SPaT), and events for the operator (misbehaviour flags, as MCAP metadata
//! records), goes to MCAP replay logs in the replay format, on a thread of its own fed
//! by a bounded queue (a full queue drops and counts, never blocks the fusion loop).
//!
//! Files are named `<rsu_id>-<UTC start yyyymmddThhmmssZ>-<n>.mcap` and rotated by size or
//! age. A file is only ever created, never opened for writing if it exists: `<n>` is the first
//! number from the next one this recorder would use that names no file yet, so a daemon started
//! again within the same second (or two daemons sharing the directory) never overwrites an
//! earlier recording. Every `fsync_interval_s` the current chunk is ended, written out and the
//! file fsynced, so a crash (`kill -9`, power cut) loses at most that interval of records (plus
//! what waits in the queue) and the file before it stays readable in recover mode.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rsu_fusion::{RoadsideFrame, SensorFrame, SiteConfig, Timestamp, VehicleState};
use v2x_proto::domain::{REPLAY_FORMAT_VERSION, ReplayMeta, RsiEvent, SignalControllerState, Spat};
use v2x_replays::ReplayWriter;

use crate::config::RecordingConfig;
use crate::serve::stats::Stats;

/// One thing to record.
#[derive(Debug)]
pub enum Record {
    /// A sensor frame taken in (shared with the fusion engine) and its arrival time: the `now`
    /// the engine was given with it, written as the message's publish time.
    Sensor(Arc<SensorFrame>, Timestamp),
    /// A vehicle state taken in and its arrival time (as for sensor frames).
    Vehicle(VehicleState, Timestamp),
    /// A roadside frame sent out (before the per-vehicle region filter).
    Roadside(Arc<RoadsideFrame>),
    /// A signal controller's state taken in (checked for consistency, not yet for age) and its
    /// arrival time.
    Signal(SignalControllerState, Timestamp),
    /// A SPaT sent out.
    Spat(Spat),
    /// A road safety information event raised (start, update or end).
    Rsi(RsiEvent),
    /// An event for the operator (a vehicle flagged for misbehaviour), written as an MCAP
    /// metadata record: its name and fields.
    Event(&'static str, BTreeMap<String, String>),
}

/// The handle the fusion loop records through.
pub struct Recorder {
    tx: Option<SyncSender<Record>>,
    thread: Option<JoinHandle<anyhow::Result<Vec<PathBuf>>>>,
    stats: Arc<Stats>,
}

impl Recorder {
    /// Starts the recorder thread, creating `config.dir` and the first file now so a bad
    /// directory fails at start.
    pub fn start(
        config: &RecordingConfig,
        site: &SiteConfig,
        rsu_id: &str,
        queue: usize,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Recorder> {
        std::fs::create_dir_all(&config.dir)
            .with_context(|| format!("recording.dir: creating {}", config.dir.display()))?;
        let mut worker = Worker {
            config: config.clone(),
            site: site.clone(),
            rsu_id: rsu_id.to_owned(),
            current: None,
            files: Vec::new(),
            sequence: 0,
            stats: stats.clone(),
            last_failure: None,
        };
        worker.open().context("recording: creating the first file")?;
        let (tx, rx) = sync_channel(queue);
        let thread = std::thread::Builder::new()
            .name("rsu-recorder".into())
            .spawn(move || worker.run(rx))
            .context("starting the recorder thread")?;
        Ok(Recorder { tx: Some(tx), thread: Some(thread), stats })
    }

    /// Queues `record`; drops and counts it when the queue is full.
    pub fn record(&self, record: Record) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Stats::bump(&self.stats.records_dropped);
                metrics::counter!("rsu_recorder_dropped_total").increment(1);
            }
        }
    }

    /// Writes what is queued, closes the current file properly and returns every file written.
    pub fn finish(mut self) -> anyhow::Result<Vec<PathBuf>> {
        self.tx = None;
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| anyhow::anyhow!("the recorder thread panicked"))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Names tried for one file before giving up (each taken name was created by someone else
/// within the same second).
const MAX_NAME_ATTEMPTS: u32 = 10_000;

struct OpenFile {
    writer: ReplayWriter<BufWriter<File>>,
    sync: File,
    path: PathBuf,
    opened: Instant,
}

struct Worker {
    config: RecordingConfig,
    site: SiteConfig,
    rsu_id: String,
    current: Option<OpenFile>,
    files: Vec<PathBuf>,
    sequence: u32,
    stats: Arc<Stats>,
    last_failure: Option<Instant>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Record>) -> anyhow::Result<Vec<PathBuf>> {
        let interval = Duration::from_secs_f64(self.config.fsync_interval_s);
        let mut next_sync = Instant::now() + interval;
        loop {
            let wait = next_sync.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(record) => self.write(&record),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_sync {
                self.sync_and_rotate();
                next_sync = Instant::now() + interval;
            }
        }
        self.close_current()?;
        Ok(self.files)
    }

    fn open(&mut self) -> anyhow::Result<()> {
        let now = wall_now();
        let (file, path) = self.create_new(&now.utc_stamp())?;
        let sync = file.try_clone().with_context(|| format!("cloning the handle of {}", path.display()))?;
        let meta = ReplayMeta {
            format_version: REPLAY_FORMAT_VERSION,
            software_version: concat!("rsu ", env!("CARGO_PKG_VERSION")).into(),
            scenario: "live".into(),
            description: format!("live recording of rsu serve ({})", self.rsu_id),
            seed: 0,
            site: self.site.clone(),
            rsu_ids: vec![self.rsu_id.clone()],
            start_time: now,
            end_time: Timestamp::EPOCH,
            truth_ids_per_frame: false,
        };
        let writer = ReplayWriter::new(BufWriter::new(file), &path, &meta)?;
        sync.sync_data().with_context(|| format!("fsync {}", path.display()))?;
        // The new name too, so a power cut cannot lose the file the data was synced into.
        File::open(&self.config.dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("fsync the directory {}", self.config.dir.display()))?;
        tracing::info!(file = %path.display(), "recording");
        self.files.push(path.clone());
        self.current = Some(OpenFile { writer, sync, path, opened: Instant::now() });
        Ok(())
    }

    /// Creates the next file of stamp `stamp` exclusively (`create_new`): the first sequence
    /// number after the last one used whose name is free.
    fn create_new(&mut self, stamp: &str) -> anyhow::Result<(File, PathBuf)> {
        for _ in 0..MAX_NAME_ATTEMPTS {
            self.sequence += 1;
            let path = self.config.dir.join(format!("{}-{stamp}-{}.mcap", self.rsu_id, self.sequence));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((file, path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    tracing::debug!(file = %path.display(), "exists, not overwritten: trying the next number");
                }
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        anyhow::bail!(
            "creating a recording in {}: {MAX_NAME_ATTEMPTS} names {}-{stamp}-<n>.mcap in a row exist",
            self.config.dir.display(),
            self.rsu_id
        )
    }

    fn write(&mut self, record: &Record) {
        if self.current.is_none() {
            // A previous failure closed the file; retry at most every 5 s.
            if self.last_failure.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
                Stats::bump(&self.stats.records_dropped);
                return;
            }
            if let Err(e) = self.open() {
                self.fail(&e);
                return;
            }
        }
        let Some(file) = &mut self.current else { return };
        let result = match record {
            Record::Sensor(f, arrival) => file.writer.write_sensor_frame_at(f, *arrival),
            Record::Vehicle(s, arrival) => file.writer.write_vehicle_state_at(s, *arrival),
            Record::Roadside(f) => file.writer.write_roadside_frame(f),
            Record::Signal(s, arrival) => file.writer.write_signal_state_at(s, *arrival),
            Record::Spat(s) => file.writer.write_spat(s),
            Record::Rsi(e) => file.writer.write_rsi(e),
            Record::Event(name, fields) => file.writer.write_event(name, fields.clone()),
        };
        if let Err(e) = result {
            // A message the format refuses (e.g. an id that cannot name a topic) is dropped.
            Stats::bump(&self.stats.records_dropped);
            tracing::debug!("record dropped: {e}");
        }
        metrics::counter!("rsu_recorded_total").increment(1);
    }

    fn sync_and_rotate(&mut self) {
        let Some(file) = &mut self.current else { return };
        let synced = file
            .writer
            .flush()
            .map_err(anyhow::Error::from)
            .and_then(|()| file.sync.sync_data().map_err(anyhow::Error::from))
            .with_context(|| format!("flushing {}", file.path.display()));
        if let Err(e) = synced {
            self.current = None;
            self.fail(&e);
            return;
        }
        let size = file.sync.metadata().map(|m| m.len()).unwrap_or(0);
        let age_s = file.opened.elapsed().as_secs_f64();
        if size >= self.config.rotate_bytes || age_s >= self.config.rotate_s {
            if let Err(e) = self.close_current() {
                self.fail(&e);
            }
            if let Err(e) = self.open() {
                self.fail(&e);
            }
        }
    }

    fn close_current(&mut self) -> anyhow::Result<()> {
        let Some(file) = self.current.take() else { return Ok(()) };
        let path = file.path.clone();
        let mut sink = file.writer.finish().with_context(|| format!("closing {}", path.display()))?;
        std::io::Write::flush(&mut sink).with_context(|| format!("flushing {}", path.display()))?;
        file.sync.sync_all().with_context(|| format!("fsync {}", path.display()))?;
        tracing::info!(file = %path.display(), "recording closed");
        Ok(())
    }

    fn fail(&mut self, e: &anyhow::Error) {
        self.last_failure = Some(Instant::now());
        metrics::counter!("rsu_recorder_errors_total").increment(1);
        tracing::error!("recording: {e:#}");
    }
}

pub use v2x_link::wall_now;

/// The files of a recording directory, oldest first: by their `<rsu_id>-<UTC start>` and then
/// by sequence number as a number (`-10` after `-9`, for ten or more files started in one
/// second).
pub fn recordings_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "mcap"))
        .collect();
    files.sort_by_cached_key(|p| {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match stem.rsplit_once('-').map(|(start, n)| (start.to_owned(), n.parse::<u64>())) {
            Some((start, Ok(n))) => (start, Some(n), stem),
            _ => (stem.clone(), None, stem),
        }
    });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use v2x_replays::{OpenOptions, ReadMode, ReplayBody, ReplayReader};

    /// Recording on into `dir`, rotating at `rotate_bytes` or `rotate_s` [s], synced every
    /// `fsync_interval_s` [s].
    fn recording_in(dir: &std::path::Path, rotate_bytes: u64, rotate_s: f64, fsync_interval_s: f64) -> RecordingConfig {
        RecordingConfig { enabled: true, dir: dir.to_owned(), rotate_bytes, rotate_s, fsync_interval_s }
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(Timestamp::from_nanos(0).utc_stamp(), "19700101T000000Z");
        assert_eq!(Timestamp::from_nanos(1_795_950_245_000_000_000).utc_stamp(), "20261129T110405Z");
    }

    #[test]
    fn recordings_are_listed_by_start_and_then_by_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = [
            "rsu-1-20261207T170000Z-2.mcap",
            "rsu-1-20261207T170000Z-10.mcap",
            "rsu-1-20261207T165959Z-1.mcap",
            "rsu-1-20261207T170000Z-9.mcap",
            "rsu-1-20261207T170001Z-11.mcap",
            "notes.txt",
        ];
        for name in names {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        let listed: Vec<String> = recordings_in(dir.path())
            .expect("list")
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            listed,
            [
                "rsu-1-20261207T165959Z-1.mcap",
                "rsu-1-20261207T170000Z-2.mcap",
                "rsu-1-20261207T170000Z-9.mcap",
                "rsu-1-20261207T170000Z-10.mcap",
                "rsu-1-20261207T170001Z-11.mcap",
            ]
        );
    }

    #[test]
    fn records_are_written_rotated_and_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = recording_in(dir.path(), 1 << 20, 0.3, 0.1);
        let stats = Arc::new(Stats::default());
        let recorder = Recorder::start(&config, &v2x_proto::sample::site(), "rsu-1", 64, stats).expect("start");
        let lidar = v2x_proto::sample::lidar_frame();
        let arrival = lidar.capture_time.add_secs(0.045);
        recorder.record(Record::Sensor(Arc::new(lidar), arrival));
        recorder.record(Record::Vehicle(v2x_proto::sample::vehicle_state(), arrival));
        std::thread::sleep(Duration::from_millis(500));
        let mut frame = v2x_proto::sample::intersection_frame(5, 1);
        frame.rsu_id = "rsu-1".into();
        recorder.record(Record::Roadside(Arc::new(frame)));
        let files = recorder.finish().expect("finish");
        assert!(files.len() >= 2, "rotated by age: {files:?}");
        assert_eq!(recordings_in(dir.path()).expect("list"), files);
        let kinds: Vec<&str> = read_all(&files)
            .iter()
            .filter_map(|body| match body {
                ReplayBody::Sensor(_) => Some("sensor"),
                ReplayBody::Vehicle(_) => Some("vehicle"),
                ReplayBody::Roadside(_) => Some("roadside"),
                _ => None,
            })
            .collect();
        assert_eq!(kinds, vec!["sensor", "vehicle", "roadside"]);
    }

    #[test]
    fn events_are_recorded_as_metadata_and_the_log_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = recording_in(dir.path(), 1 << 20, 3600.0, 0.1);
        let stats = Arc::new(Stats::default());
        let recorder = Recorder::start(&config, &v2x_proto::sample::site(), "rsu-1", 64, stats).expect("start");
        let state = v2x_proto::sample::vehicle_state();
        recorder.record(Record::Vehicle(state.clone(), state.time));
        let flag = rsu_fusion::MisbehaviourFlag {
            vehicle_id: state.vehicle_id.clone(),
            reason: rsu_fusion::MisbehaviourReason::Teleport,
            measured: 12.5,
            limit: 4.25,
            since: state.time,
            last_evidence: state.time,
            until: state.time.add_secs(10.0),
        };
        let fields = crate::serve::flags::event_fields(&flag);
        recorder.record(Record::Event(crate::serve::flags::EVENT_NAME, fields.clone()));
        recorder.record(Record::Vehicle(state.clone(), state.time.add_secs(0.1)));
        let files = recorder.finish().expect("finish");
        assert_eq!(files.len(), 1);
        // Readers of the replay format skip the event.
        assert_eq!(read_all(&files).iter().filter(|b| matches!(b, ReplayBody::Vehicle(_))).count(), 2);
        let bytes = std::fs::read(&files[0]).expect("read");
        let events: Vec<mcap::records::Metadata> = mcap::read::LinearReader::new(&bytes)
            .expect("mcap")
            .filter_map(|r| match r.expect("record") {
                mcap::records::Record::Metadata(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].name, "misbehaviour");
        assert_eq!(events[0].metadata, fields);
        assert_eq!(events[0].metadata["reason"], "teleport");
        assert_eq!(events[0].metadata["measured"], "12.500");
    }

    #[test]
    fn recordings_rotate_by_size_and_lose_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = recording_in(dir.path(), 16 * 1024, 3600.0, 0.05);
        let stats = Arc::new(Stats::default());
        let recorder = Recorder::start(&config, &v2x_proto::sample::site(), "rsu-1", 1024, stats).expect("start");
        for count in 0..120u32 {
            let mut frame = v2x_proto::sample::intersection_frame(40, u64::from(count));
            frame.rsu_id = "rsu-1".into();
            frame.message_count = count;
            recorder.record(Record::Roadside(Arc::new(frame)));
            if count % 10 == 9 {
                // Let the fsync schedule (and with it the size check) run.
                std::thread::sleep(Duration::from_millis(80));
            }
        }
        let files = recorder.finish().expect("finish");
        assert!(files.len() >= 3, "rotated by size: {files:?}");
        for file in &files[..files.len() - 1] {
            let size = std::fs::metadata(file).expect("metadata").len();
            assert!(size >= 16 * 1024, "{} rotated at {size} bytes", file.display());
        }
        let counts: Vec<u32> = read_all(&files)
            .iter()
            .filter_map(|body| match body {
                ReplayBody::Roadside(f) => Some(f.message_count),
                _ => None,
            })
            .collect();
        assert_eq!(counts, (0..120).collect::<Vec<u32>>(), "every frame once, in order, across the files");
    }

    /// Two recorders started on one directory within the same second (a daemon restarted at once)
    /// each create files of their own: the earlier recording is never overwritten.
    #[test]
    fn a_restart_in_the_same_second_never_overwrites_a_recording() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = recording_in(dir.path(), 1 << 30, 3600.0, 0.05);
        let frame = |count: u32| {
            let mut frame = v2x_proto::sample::intersection_frame(3, u64::from(count));
            frame.rsu_id = "rsu-1".into();
            frame.message_count = count;
            Record::Roadside(Arc::new(frame))
        };
        let mut runs = Vec::new();
        let started = std::time::SystemTime::now();
        for run in 0..3u32 {
            let stats = Arc::new(Stats::default());
            let recorder = Recorder::start(&config, &v2x_proto::sample::site(), "rsu-1", 64, stats).expect("start");
            recorder.record(frame(run));
            runs.push(recorder.finish().expect("finish"));
        }
        let same_second = started.elapsed().map(|e| e.as_secs_f64() < 1.0).unwrap_or(false);
        let all: Vec<&PathBuf> = runs.iter().flatten().collect();
        assert_eq!(all.len(), 3, "{runs:?}");
        let unique: std::collections::BTreeSet<&PathBuf> = all.iter().copied().collect();
        assert_eq!(unique.len(), 3, "one file per run: {runs:?}");
        for (run, files) in (0u32..).zip(&runs) {
            let counts: Vec<u32> = read_all(files)
                .iter()
                .filter_map(|b| match b {
                    ReplayBody::Roadside(f) => Some(f.message_count),
                    _ => None,
                })
                .collect();
            assert_eq!(counts, vec![run], "run {run}'s file holds its own frame: {files:?}");
        }
        if same_second {
            // The name clashes were real: all three share a stamp.
            let stamps: std::collections::BTreeSet<String> = all
                .iter()
                .filter_map(|p| p.file_name()?.to_str()?.rsplit_once('-').map(|(head, _)| head.to_owned()))
                .collect();
            assert!(stamps.len() <= 2, "{stamps:?}");
        }
    }

    /// A file that exists under the next name is left alone; creation moves on to a free name.
    #[test]
    fn an_existing_file_is_never_opened_for_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = recording_in(dir.path(), 1 << 30, 3600.0, 0.05);
        let mut worker = Worker {
            config,
            site: v2x_proto::sample::site(),
            rsu_id: "rsu-1".into(),
            current: None,
            files: Vec::new(),
            sequence: 0,
            stats: Arc::new(Stats::default()),
            last_failure: None,
        };
        for n in 1..=3 {
            std::fs::write(dir.path().join(format!("rsu-1-20261207T170000Z-{n}.mcap")), b"earlier").expect("write");
        }
        let (_, path) = worker.create_new("20261207T170000Z").expect("a free name");
        assert_eq!(path, dir.path().join("rsu-1-20261207T170000Z-4.mcap"));
        for n in 1..=3 {
            let earlier = std::fs::read(dir.path().join(format!("rsu-1-20261207T170000Z-{n}.mcap"))).expect("read");
            assert_eq!(earlier, b"earlier");
        }
    }

    /// Every message of `files`, read strictly, in order.
    fn read_all(files: &[PathBuf]) -> Vec<ReplayBody> {
        let mut out = Vec::new();
        for file in files {
            let reader = ReplayReader::open_with(file, OpenOptions { mode: ReadMode::Strict, ..Default::default() })
                .expect("open");
            out.extend(reader.map(|m| m.expect("message").body));
        }
        out
    }
}
