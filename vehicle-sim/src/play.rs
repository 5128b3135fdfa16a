//! Playing a recorded log into a running RSU in real time (`rsu-lab replay play`): black-box
//! validation of any RSU that speaks PROTOCOL.md, ours included.
//!
//! Every roadside sensor of the log becomes a QUIC client that sends the log's frames, every
//! connected vehicle with a certificate a client that sends its self-reports (and subscribes
//! around itself), every signal controller with a certificate a client that sends its states;
//! an observer vehicle subscribes to everything the RSU perceives. Each message goes out when
//! its publish time comes (its arrival at the RSU that recorded it; a simulated log carries
//! capture times there), on a clock that starts at the next whole second of the wall clock and
//! runs at `rate` times log time. All times in the messages (capture, measurement, truth,
//! signal phase ends) are moved onto that clock, so the RSU under test sees a live site.
//!
//! The played log holds what was sent (publish time = when it was sent), the ground truth on
//! the same clock, and every frame each vehicle and the observer received (publish time =
//! receipt): `rsu-lab replay validate --live` scores it, the observer against the whole truth.
//! The log's own recorded output (broadcast, receipts, SPaT) is not played. Both passes over
//! the log stream it: memory does not grow with its length.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rsu_fusion::{RoadsideFrame, Timestamp};
use tokio::sync::mpsc;
use v2x_link::client::{ClientError, ClientSettings, SensorClient, SignalControllerClient, VehicleClient};
use v2x_link::wall_now;
use v2x_proto::domain::{ServerHello, SignalControllerState, Subscription};
use v2x_replays::{
    OpenOptions, ReadMode, ReadOrder, Received, ReplayBody, ReplayError, ReplayMessage, ReplayReader, ReplayWriter,
};

/// How far out of publish-time order [s] the log's messages may be stored and still go out in
/// order (a recording is written in arrival order; a simulated log in arrival order with
/// capture times as publish times).
const REORDER_S: f64 = 1.0;

/// How long the observer and the vehicles keep listening after the last message [s]: the RSU's
/// last frames are still on their way.
const TAIL_S: f64 = 0.5;

/// Receipts in flight from the vehicles' receivers to the writer, at most.
const RECEIPT_QUEUE: usize = 4096;

/// Why a play failed.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The log cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        source: Box<ReplayError>,
    },
    /// The played log cannot be written.
    #[error("writing the played log: {0}")]
    Write(Box<ReplayError>),
    /// Sensors of the log have no certificate: their frames could not be played.
    #[error(
        "no sensor certificate for {0:?} in the PKI folder: make them with `rsu certs init --sensors ...` (the RSU under test must know these sensors)"
    )]
    MissingSensors(Vec<String>),
    /// No vehicle certificate is left for the observer.
    #[error(
        "no vehicle certificate left for the observer (every one is a vehicle of the log, or --observer names none): add one with `rsu certs init --vehicles 1`"
    )]
    NoObserver,
    /// A client could not connect.
    #[error("{who} could not connect to the RSU: {cause}")]
    Connect {
        /// The client.
        who: String,
        /// Why.
        cause: ClientError,
    },
    /// The rate is out of range.
    #[error("rate must be within [0.1, 10], not {0}")]
    Rate(f64),
    /// The log holds nothing to play.
    #[error("{0} holds no sensor frame, vehicle state or signal controller state to play")]
    Empty(PathBuf),
}

/// What to play.
#[derive(Clone)]
pub struct PlaySetup {
    /// The log.
    pub log: PathBuf,
    /// Where the played log goes.
    pub out: PathBuf,
    /// Played seconds per log second (1: real time).
    pub rate: f64,
    /// Client settings of the sensors, by sensor id: every sensor of the log needs one.
    pub sensors: BTreeMap<String, ClientSettings>,
    /// Client settings of the vehicles, by V2X id: the log's vehicles that have one send their
    /// self-reports; one of the others is the observer.
    pub vehicles: BTreeMap<String, ClientSettings>,
    /// Client settings of signal controllers, by controller id (controllers without are not
    /// played).
    pub signals: BTreeMap<String, ClientSettings>,
    /// The observer's vehicle id (default: the first vehicle certificate not used by the log).
    pub observer: Option<String>,
    /// Radius the log's vehicles subscribe to around themselves [m].
    pub subscription_radius_m: u32,
    /// How damage in the log is handled.
    pub mode: ReadMode,
}

/// What a play did.
#[derive(Clone, Debug, Default)]
pub struct PlaySummary {
    /// The RSU's hello, as the observer got it.
    pub hello: Option<ServerHello>,
    /// The observer's vehicle id.
    pub observer: String,
    /// Log time played [s].
    pub log_s: f64,
    /// Sensor frames sent.
    pub sensor_frames: u64,
    /// Vehicle self-reports sent.
    pub vehicle_states: u64,
    /// Signal controller states sent.
    pub signal_states: u64,
    /// Ground-truth frames carried over.
    pub truth_frames: u64,
    /// Messages of the log not played, by reason.
    pub not_played: BTreeMap<String, u64>,
    /// Sends that failed (logged one by one).
    pub send_errors: u64,
    /// Frames received, by receiving vehicle (the observer among them).
    pub received: BTreeMap<String, u64>,
    /// Latest a message went out after it was due [s].
    pub max_behind_s: f64,
    /// What the user should know (a site that differs from the RSU's, say).
    pub warnings: Vec<String>,
}

/// Log time to played time: `start + (t − t0) / rate`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    t0: Timestamp,
    start: Timestamp,
    rate: f64,
}

impl Clock {
    fn at(&self, t: Timestamp) -> Timestamp {
        self.start.add_secs(t.secs_since(self.t0) / self.rate)
    }
}

/// What the first pass learns about the log.
#[derive(Default)]
struct Inventory {
    sensors: BTreeSet<String>,
    vehicles: BTreeSet<String>,
    controllers: BTreeSet<String>,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

fn open(path: &Path, mode: ReadMode) -> Result<ReplayReader, PlayError> {
    ReplayReader::open_with(path, OpenOptions { mode, order: ReadOrder::File, ..Default::default() })
        .map_err(|source| PlayError::Read { path: path.to_owned(), source: Box::new(source) })
}

fn inventory(path: &Path, mode: ReadMode) -> Result<Inventory, PlayError> {
    let mut inv = Inventory::default();
    for item in open(path, mode)? {
        let message = item.map_err(|source| PlayError::Read { path: path.to_owned(), source: Box::new(source) })?;
        match &message.body {
            ReplayBody::Sensor(f) => {
                inv.sensors.insert(f.sensor_id.clone());
            }
            ReplayBody::Vehicle(v) => {
                inv.vehicles.insert(v.vehicle_id.clone());
            }
            ReplayBody::Signal(s) => {
                inv.controllers.insert(s.controller_id.clone());
            }
            ReplayBody::GroundTruth(_) => {}
            _ => continue,
        }
        let t = message.publish_time;
        inv.first = Some(inv.first.map_or(t, |f| f.min(t)));
        inv.last = Some(inv.last.map_or(t, |l| l.max(t)));
    }
    Ok(inv)
}

/// A frame a vehicle received: who, its subscription radius, the frame, when.
type Receipt = (String, Option<u32>, RoadsideFrame, Timestamp);

/// Starts a task that hands every frame `client` receives to `tx`.
fn listen(client: &VehicleClient, radius_m: Option<u32>, tx: mpsc::Sender<Receipt>) {
    let mut receiver = client.frame_receiver();
    let id = client.id().to_owned();
    tokio::spawn(async move {
        while let Ok(frame) = receiver.next().await {
            if tx.send((id.clone(), radius_m, frame, wall_now())).await.is_err() {
                break;
            }
        }
    });
}

/// Plays `setup.log` into the RSU the client settings point at, writes the played log to
/// `setup.out`; `progress` hears the log seconds played so far and the total.
pub async fn play(setup: &PlaySetup, mut progress: impl FnMut(f64, f64)) -> Result<PlaySummary, PlayError> {
    if !(0.1..=10.0).contains(&setup.rate) {
        return Err(PlayError::Rate(setup.rate));
    }
    let inv = inventory(&setup.log, setup.mode)?;
    let (Some(t0), Some(t_end)) = (inv.first, inv.last) else { return Err(PlayError::Empty(setup.log.clone())) };
    if inv.sensors.is_empty() && inv.vehicles.is_empty() && inv.controllers.is_empty() {
        return Err(PlayError::Empty(setup.log.clone()));
    }
    let missing: Vec<String> = inv.sensors.iter().filter(|s| !setup.sensors.contains_key(*s)).cloned().collect();
    if !missing.is_empty() {
        return Err(PlayError::MissingSensors(missing));
    }
    let observer = match &setup.observer {
        Some(id) if setup.vehicles.contains_key(id) && !inv.vehicles.contains(id) => id.clone(),
        Some(_) => return Err(PlayError::NoObserver),
        None => setup.vehicles.keys().find(|id| !inv.vehicles.contains(*id)).cloned().ok_or(PlayError::NoObserver)?,
    };
    let mut summary = PlaySummary { observer: observer.clone(), ..Default::default() };
    let connect_err = |who: String| move |cause| PlayError::Connect { who, cause };

    let (receipts_tx, mut receipts) = mpsc::channel::<Receipt>(RECEIPT_QUEUE);
    let observer_settings = setup.vehicles.get(&observer).ok_or(PlayError::NoObserver)?;
    let observer_client = VehicleClient::connect(observer_settings, Some(Subscription::Everything))
        .await
        .map_err(connect_err(format!("observer {observer}")))?;
    listen(&observer_client, None, receipts_tx.clone());
    let hello = observer_client.server_hello().clone();
    let reader = open(&setup.log, setup.mode)?;
    let mut meta = reader.meta().clone();
    let origin_error_m = meta.site.frame().enu_from_wgs84(&hello.site_origin).coords.norm();
    if origin_error_m > 1.0 {
        summary.warnings.push(format!(
            "the RSU's site origin is {origin_error_m:.1} m from the log's: the RSU under test must run with the log's site and calibration"
        ));
    }
    summary.hello = Some(hello.clone());

    let mut sensors = BTreeMap::new();
    for id in &inv.sensors {
        let settings = &setup.sensors[id];
        let client = SensorClient::connect(settings).await.map_err(connect_err(format!("sensor {id}")))?;
        sensors.insert(id.clone(), Arc::new(client));
    }
    let mut vehicles = BTreeMap::new();
    for id in inv.vehicles.iter().filter(|id| setup.vehicles.contains_key(*id)) {
        let subscription = Subscription::AroundMe { radius_m: setup.subscription_radius_m };
        let client = VehicleClient::connect(&setup.vehicles[id], Some(subscription))
            .await
            .map_err(connect_err(format!("vehicle {id}")))?;
        listen(&client, Some(setup.subscription_radius_m), receipts_tx.clone());
        vehicles.insert(id.clone(), client);
    }
    drop(receipts_tx);
    let mut controllers = BTreeMap::new();
    for id in inv.controllers.iter().filter(|id| setup.signals.contains_key(*id)) {
        let client = SignalControllerClient::connect(&setup.signals[id])
            .await
            .map_err(connect_err(format!("signal controller {id}")))?;
        controllers.insert(id.clone(), client);
    }

    // Connecting took time: the clock starts at the next whole second.
    let now = wall_now();
    let start = Timestamp::from_nanos((now.as_nanos() / 1_000_000_000 + 1) * 1_000_000_000);
    let clock = Clock { t0, start, rate: setup.rate };
    meta.start_time = clock.at(meta.start_time.max(t0));
    meta.end_time = clock.at(meta.end_time.max(t0));
    meta.rsu_ids = vec![hello.rsu_id.clone()];
    meta.description = format!("{} (played into RSU {} at {}x)", meta.description, hello.rsu_id, setup.rate);
    let mut writer = ReplayWriter::create(&setup.out, &meta).map_err(write_error)?;
    let total_s = t_end.secs_since(t0);

    let send_errors = Arc::new(AtomicU64::new(0));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut pending: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut messages = reader.into_iter();
    let mut exhausted = false;
    let mut newest_read: Option<Timestamp> = None;
    loop {
        // Read ahead until the earliest message held is certainly the next one due.
        while !exhausted
            && pending.peek().is_none_or(|Reverse(d)| newest_read.is_none_or(|n| n.secs_since(d.publish) < REORDER_S))
        {
            match messages.next() {
                None => exhausted = true,
                Some(item) => {
                    let message =
                        item.map_err(|source| PlayError::Read { path: setup.log.clone(), source: Box::new(source) })?;
                    order += 1;
                    newest_read = newest_read.max(Some(message.publish_time));
                    pending.push(Reverse(Due { publish: message.publish_time, order, message }));
                }
            }
        }
        let Some(Reverse(due)) = pending.pop() else { break };
        let message = due.message;
        if !matches!(
            message.body,
            ReplayBody::Sensor(_) | ReplayBody::Vehicle(_) | ReplayBody::Signal(_) | ReplayBody::GroundTruth(_)
        ) {
            let what = match &message.body {
                ReplayBody::Meta(_) => continue,
                ReplayBody::Roadside(_) => "the recorded broadcast",
                ReplayBody::Received(_) => "recorded receipts",
                _ => "recorded SPaT",
            };
            *summary.not_played.entry(what.to_owned()).or_default() += 1;
            continue;
        }
        let at = clock.at(message.publish_time);
        let wait_s = at.secs_since(wall_now());
        if wait_s > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait_s)).await;
        }
        let sent_at = wall_now();
        summary.max_behind_s = summary.max_behind_s.max(sent_at.secs_since(at));
        while let Ok(receipt) = receipts.try_recv() {
            write_receipt(&mut writer, receipt, &mut summary)?;
        }
        match message.body {
            ReplayBody::Sensor(frame) => {
                let mut frame = (*frame).clone();
                frame.capture_time = clock.at(frame.capture_time);
                if let Some(client) = sensors.get(&frame.sensor_id) {
                    crate::live::send_frame(&mut in_flight, client, frame.clone(), &send_errors);
                    summary.sensor_frames += 1;
                }
                writer.write_sensor_frame_at(&frame, sent_at).map_err(write_error)?;
            }
            ReplayBody::Vehicle(mut state) => {
                state.time = clock.at(state.time);
                match vehicles.get(&state.vehicle_id) {
                    Some(client) => {
                        if let Err(e) = client.send_state(&state) {
                            send_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(vehicle = %state.vehicle_id, "sending the state failed: {e}");
                        }
                        summary.vehicle_states += 1;
                        writer.write_vehicle_state_at(&state, sent_at).map_err(write_error)?;
                    }
                    None => *summary.not_played.entry("vehicle states without a certificate".into()).or_default() += 1,
                }
            }
            ReplayBody::Signal(state) => {
                let state = shifted_signal(state, &clock);
                match controllers.get(&state.controller_id) {
                    Some(client) => {
                        if let Err(e) = client.send_state(&state) {
                            send_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(controller = %state.controller_id, "sending the state failed: {e}");
                        }
                        summary.signal_states += 1;
                        writer.write_signal_state_at(&state, sent_at).map_err(write_error)?;
                    }
                    None => {
                        *summary.not_played.entry("signal states without a certificate".into()).or_default() += 1;
                    }
                }
            }
            ReplayBody::GroundTruth(mut truth) => {
                truth.time = clock.at(truth.time);
                summary.truth_frames += 1;
                writer.write_ground_truth(&truth).map_err(write_error)?;
            }
            _ => {}
        }
        while in_flight.try_join_next().is_some() {}
        summary.log_s = message.publish_time.secs_since(t0).max(summary.log_s);
        progress(summary.log_s, total_s);
    }
    while in_flight.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs_f64(TAIL_S)).await;
    for client in vehicles.into_values() {
        client.close().await;
    }
    observer_client.close().await;
    for client in controllers.into_values() {
        client.close().await;
    }
    for client in sensors.into_values() {
        if let Ok(client) = Arc::try_unwrap(client) {
            client.close().await;
        }
    }
    // The receivers end with their connections: what they still held arrives now.
    while let Some(receipt) = receipts.recv().await {
        write_receipt(&mut writer, receipt, &mut summary)?;
    }
    writer.finish().map_err(write_error)?;
    summary.send_errors = send_errors.load(Ordering::Relaxed);
    Ok(summary)
}

fn write_error(e: ReplayError) -> PlayError {
    PlayError::Write(Box::new(e))
}

/// A message of the log waiting for its publish time.
struct Due {
    publish: Timestamp,
    order: u64,
    message: ReplayMessage,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.publish, self.order) == (other.publish, other.order)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.publish, self.order).cmp(&(other.publish, other.order))
    }
}

/// `state` with every time moved onto `clock`.
fn shifted_signal(mut state: SignalControllerState, clock: &Clock) -> SignalControllerState {
    state.time = clock.at(state.time);
    for m in &mut state.movements {
        m.start = m.start.map(|t| clock.at(t));
        m.min_end = clock.at(m.min_end);
        m.max_end = m.max_end.map(|t| clock.at(t));
        m.likely = m.likely.map(|t| clock.at(t));
    }
    state
}

fn write_receipt(
    writer: &mut ReplayWriter<std::io::BufWriter<std::fs::File>>,
    (vehicle_id, subscription_radius_m, frame, receipt): Receipt,
    summary: &mut PlaySummary,
) -> Result<(), PlayError> {
    *summary.received.entry(vehicle_id.clone()).or_default() += 1;
    let received = Received { vehicle_id, subscription_radius_m, frame };
    writer.write_received_frame(&received, receipt).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_maps_log_time_onto_the_played_time_at_the_rate() {
        let t0 = Timestamp::from_nanos(1_000_000_000_000);
        let start = Timestamp::from_nanos(2_000_000_000_000);
        let clock = Clock { t0, start, rate: 2.0 };
        assert_eq!(clock.at(t0), start);
        assert_eq!(clock.at(t0.add_secs(3.0)), start.add_secs(1.5));
        assert_eq!(clock.at(t0.add_secs(-0.2)), start.add_secs(-0.1));
    }
}
