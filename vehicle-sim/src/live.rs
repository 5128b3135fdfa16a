//! A scenario played live against a real RSU: the closed loop of [`CoSim`] advanced in real time
//! (10 ms steps paced by the wall clock, which is also the simulation's clock). Every roadside
//! sensor is a QUIC client that sends its frames when they arrive; every connected car is a QUIC
//! client (with V2X) that subscribes around itself, sends its state at 10 Hz and takes the RSU's
//! frames, or relies on its own sensor (without V2X). Every signal controller with a certificate
//! is a QUIC client that sends the site's signal plan state at 10 Hz (PROTOCOL.md §2.8).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rsu_fusion::{RoadsideFrame, Timestamp};
use tokio::sync::mpsc;
use v2x_link::client::{ClientError, ClientSettings, SensorClient, SignalControllerClient, VehicleClient};
use v2x_link::wall_now;
use v2x_proto::domain::{ReplayMeta, Subscription};
use v2x_replays::{ReplayBody, ReplayError, ReplayMessage, ReplayWriter};

use crate::connected::CarConfig;
use crate::cosim::CoSim;
pub use crate::cosim::{
    CarOutcome, CarSample, HazardOutcome, LinkSummary, Receipt, RunOutcome as LiveOutcome, Status, describe,
};
use crate::scenario::{self, ScenarioError};
use crate::world::STEP_NS;
use rsu_site::model::SiteModel;

/// Why a live run failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The scenario could not be built.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A sensor or vehicle could not connect.
    #[error("{who} could not connect to the RSU: {cause}")]
    Connect {
        /// The client.
        who: String,
        /// Why.
        cause: ClientError,
    },
    /// A car's tracker could not be set up.
    #[error("a car's tracker: {0}")]
    Tracker(#[from] rsu_fusion::FusionError),
    /// Duration out of range.
    #[error("duration must be within (0, 3600] s, not {0}")]
    Duration(f64),
}

/// What to run.
#[derive(Clone)]
pub struct LiveSetup {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Length [s].
    pub duration_s: f64,
    /// The site.
    pub site: Arc<SiteModel>,
    /// How the cars perceive and decide (`use_v2x` switches V2X for all of them).
    pub car: CarConfig,
    /// Client settings of the roadside sensors, by sensor id (sensors without are not fed).
    pub sensors: BTreeMap<String, ClientSettings>,
    /// Client settings of the connected vehicles, by V2X id (used with V2X only).
    pub vehicles: BTreeMap<String, ClientSettings>,
    /// Radius the cars subscribe to around themselves [m].
    pub subscription_radius_m: u32,
    /// Client settings of the signal controllers, by controller id: each sends the site's
    /// signal plan state at 10 Hz.
    pub signals: BTreeMap<String, ClientSettings>,
}

/// Runs `setup` in real time; `progress` hears about it every 100 ms.
pub async fn run(setup: LiveSetup, mut progress: impl FnMut(&Status)) -> Result<LiveOutcome, LiveError> {
    if !(setup.duration_s > 0.0 && setup.duration_s <= 3600.0) {
        return Err(LiveError::Duration(setup.duration_s));
    }
    let scenario = scenario::build(&setup.scenario, setup.site.clone(), setup.seed)?;
    let mut sensors = BTreeMap::new();
    for (id, settings) in &setup.sensors {
        let client = SensorClient::connect(settings)
            .await
            .map_err(|cause| LiveError::Connect { who: format!("sensor {id}"), cause })?;
        sensors.insert(id.clone(), Arc::new(client));
    }
    let mut controllers = Vec::new();
    for (id, settings) in &setup.signals {
        let client = SignalControllerClient::connect(settings)
            .await
            .map_err(|cause| LiveError::Connect { who: format!("signal controller {id}"), cause })?;
        controllers.push(client);
    }
    let mut cosim = CoSim::new(scenario, setup.seed, &setup.site, &setup.car, setup.duration_s, wall_now())?;
    let (frames_tx, mut frames_rx) = mpsc::channel::<(usize, RoadsideFrame, Timestamp)>(1024);
    let mut clients: Vec<Option<VehicleClient>> = Vec::new();
    let mut abandoned: Vec<Arc<AtomicU64>> = Vec::new();
    for (index, id) in cosim.car_ids().into_iter().enumerate() {
        let counter = Arc::new(AtomicU64::new(0));
        abandoned.push(counter.clone());
        let settings = setup.vehicles.get(&id).filter(|_| setup.car.use_v2x);
        let Some(settings) = settings else {
            clients.push(None);
            continue;
        };
        let subscription = Subscription::AroundMe { radius_m: setup.subscription_radius_m };
        let client = VehicleClient::connect(settings, Some(subscription))
            .await
            .map_err(|cause| LiveError::Connect { who: format!("vehicle {id}"), cause })?;
        let mut receiver = client.frame_receiver();
        let tx = frames_tx.clone();
        tokio::spawn(async move {
            while let Ok(frame) = receiver.next().await {
                counter.store(receiver.abandoned(), Ordering::Relaxed);
                if tx.send((index, frame, wall_now())).await.is_err() {
                    break;
                }
            }
        });
        clients.push(Some(client));
    }
    drop(frames_tx);
    // Connecting took time: the world starts at the next whole second of the wall clock (as
    // recorded scenarios do, so a replay of this run ticks in the same phase as theirs).
    let now = wall_now();
    let start = Timestamp::from_nanos((now.as_nanos() / 1_000_000_000 + 1) * 1_000_000_000);
    tokio::time::sleep(Duration::from_secs_f64(start.secs_since(now).max(0.0))).await;
    cosim.restart_at(start);
    let started = Instant::now();
    let send_errors = Arc::new(AtomicU64::new(0));
    let mut in_flight = tokio::task::JoinSet::new();
    while !cosim.finished() {
        let step = cosim.steps();
        let due = started + Duration::from_nanos(step * STEP_NS as u64);
        tokio::time::sleep_until(due.into()).await;
        cosim.note_behind(started.elapsed().as_secs_f64() - step as f64 * STEP_NS as f64 * 1e-9);
        while let Ok((index, frame, receipt)) = frames_rx.try_recv() {
            cosim.receive(index, frame, receipt);
        }
        cosim.step(
            |frame| {
                if let Some(client) = sensors.get(&frame.sensor_id) {
                    send_frame(&mut in_flight, client, frame.clone(), &send_errors);
                }
            },
            |index, state| {
                if let Some(Some(client)) = clients.get(index)
                    && let Err(e) = client.send_state(state)
                {
                    tracing::warn!(vehicle = %state.vehicle_id, "sending the state failed: {e}");
                }
            },
        );
        while in_flight.try_join_next().is_some() {}
        if step.is_multiple_of(10) {
            for controller in &controllers {
                if let Err(e) = controller.send_state(&cosim.signal_state(controller.id())) {
                    tracing::warn!(controller = %controller.id(), "sending the signal state failed: {e}");
                }
            }
        }
        if step.is_multiple_of(10) || cosim.finished() {
            progress(cosim.status());
        }
    }
    while in_flight.join_next().await.is_some() {}
    for client in clients.into_iter().flatten() {
        client.close().await;
    }
    for controller in controllers {
        controller.close().await;
    }
    for s in sensors.into_values() {
        if let Ok(client) = Arc::try_unwrap(s) {
            client.close().await;
        }
    }
    let errors = send_errors.load(Ordering::Relaxed);
    let mut outcome = cosim.finish(|i| abandoned.get(i).map_or(0, |a| a.load(Ordering::Relaxed)), errors);
    for r in &mut outcome.received {
        r.received.subscription_radius_m = Some(setup.subscription_radius_m);
    }
    Ok(outcome)
}

/// Sends `frame` with `client` in a task of `in_flight` (a frame is a stream of its own, so the
/// caller's loop never waits for one); a failure is counted in `errors` and logged.
pub(crate) fn send_frame(
    in_flight: &mut tokio::task::JoinSet<()>,
    client: &Arc<SensorClient>,
    frame: rsu_fusion::SensorFrame,
    errors: &Arc<AtomicU64>,
) {
    let (client, errors) = (client.clone(), errors.clone());
    in_flight.spawn(async move {
        if let Err(e) = client.send_frame(&frame).await {
            errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sensor = %frame.sensor_id, "sending a frame failed: {e}");
        }
    });
}

/// Writes what the run's side saw into the replay log `path` under `meta`: the ground truth, the
/// sensor frames and self-reports it sent (publish time = log time: their arrival at the RSU is
/// the RSU's to record) and every frame a car received (publish time = its receipt time). It has
/// no broadcast as sent (`/rsu/<id>/frame`): that is in the RSU's own recording.
pub fn write_log(path: &std::path::Path, meta: &ReplayMeta, outcome: &LiveOutcome) -> Result<(), ReplayError> {
    let mut sent: Vec<ReplayMessage> = outcome
        .sensor_frames
        .iter()
        .map(|f| ReplayBody::Sensor(Arc::new(f.clone())))
        .chain(outcome.vehicle_states.iter().cloned().map(ReplayBody::Vehicle))
        .chain(outcome.truth.iter().cloned().map(ReplayBody::GroundTruth))
        .map(|body| ReplayMessage::new(body, None))
        .collect();
    // Stable: what shares a time keeps the order it was produced in.
    sent.sort_by_key(|m| m.publish_time);
    let received = receipt_messages(&outcome.received);
    let mut writer = ReplayWriter::create(path, meta)?;
    writer.write_merged(&[&sent, &received])?;
    writer.finish()?;
    Ok(())
}

/// The frames vehicles received as replay messages (publish time = receipt time), in receipt
/// order: each vehicle stamps its own receipts; across vehicles they reach the caller in about
/// that order.
pub(crate) fn receipt_messages(received: &[Receipt]) -> Vec<ReplayMessage> {
    let mut messages: Vec<ReplayMessage> = received
        .iter()
        .map(|r| ReplayMessage::new(ReplayBody::Received(Box::new(r.received.clone())), Some(r.receipt)))
        .collect();
    // Stable: one vehicle's receipts of the same time keep their order.
    messages.sort_by_key(|m| m.publish_time);
    messages
}
