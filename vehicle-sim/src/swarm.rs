//! Load: many lightweight connected vehicles in one process, the RSU's load generator. Each is a
//! real vehicle session (its own QUIC connection and certificate) that subscribes around itself,
//! drives a circle around the site (so the RSU fuses its self-reports), sends its state at 10 Hz
//! and receives the RSU's frames. All vehicles share one QUIC endpoint (one UDP socket, one
//! endpoint driver) unless told to spread over more, so the generator costs little CPU next to
//! the daemon it measures.
//!
//! Per vehicle it counts frames received, streams the RSU reset before they were complete
//! ([`FrameReceiver::abandoned`]) and gaps in the frames' `message_count`. The RSU sends a
//! vehicle a frame only when what it subscribed to changed (plus a heartbeat), so a gap is a
//! frame the RSU *skipped* for this vehicle, not a loss: losses are judged against the daemon's
//! own counters (`rsu-lab bench live` does). Every frame's latency goes into one histogram per
//! measure: capture to receipt (the newest sensor capture the frame carries,
//! `newest_capture`; needs sensors feeding the RSU) and frame time (when the RSU produced it) to
//! receipt. Each vehicle keeps the RSU's sensor health as its frames tell it (sent only on
//! change, [`RoadsideView`]) and counts the frames it received before it knew it. Asked to
//! ([`SwarmSetup::record`]), every vehicle keeps each frame it received with its receipt time,
//! and [`write_log`] writes them all into a replay log, as `vehicle-sim live` and the demo do
//! for their cars.
//!
//! [`FrameReceiver::abandoned`]: v2x_link::client::FrameReceiver::abandoned

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nalgebra::Point3;
use rsu_fusion::{BoxSize, ObjectClass, RoadsideFrame, RoadsideView, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use v2x_link::client::{ClientEndpoint, ClientError, ClientSettings, VehicleClient};
use v2x_link::wall_now;
use v2x_proto::domain::{REPLAY_FORMAT_VERSION, ReplayMeta, Subscription};
use v2x_replays::{Received, ReplayError, ReplayWriter};

use crate::cosim::Receipt;
use crate::gnss::SelfReporter;
use crate::world::ActorTruth;
use rsu_site::model::SiteModel;

/// Why a swarm could not run.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// No vehicles.
    #[error("no vehicle certificates given")]
    Empty,
    /// Histogram set-up.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// A shared endpoint could not be bound.
    #[error("binding a client endpoint: {0}")]
    Endpoint(#[from] ClientError),
}

/// What to run.
#[derive(Clone)]
pub struct SwarmSetup {
    /// One client per vehicle.
    pub vehicles: Vec<ClientSettings>,
    /// The site (for positions).
    pub site: Arc<SiteModel>,
    /// How long every vehicle stays connected [s].
    pub duration_s: f64,
    /// Subscription radius [m].
    pub radius_m: u32,
    /// Seed of the self-report noise.
    pub seed: u64,
    /// QUIC endpoints (UDP sockets) the vehicles share, round robin; at least 1.
    pub endpoints: usize,
    /// Whether every vehicle keeps each frame it received (decoded, with its receipt time) for
    /// [`write_log`]; memory grows with vehicles × frames.
    pub record: bool,
}

/// Latency quantiles of one histogram [ms].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Median [ms].
    pub p50_ms: f64,
    /// 90th percentile [ms].
    pub p90_ms: f64,
    /// 99th percentile [ms].
    pub p99_ms: f64,
    /// 99.9th percentile [ms].
    pub p999_ms: f64,
    /// Largest [ms].
    pub max_ms: f64,
}

impl LatencySummary {
    /// The quantiles of a histogram of microseconds (as [`latency_histogram`] makes).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
        LatencySummary {
            count: h.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1e3,
        }
    }

    /// One line: `name n=… p50 … p90 … p99 … p99.9 … max …` (or `no samples`).
    pub fn line(&self, name: &str) -> String {
        if self.count == 0 {
            return format!("{name:<24} no samples");
        }
        format!(
            "{name:<24} n={:<7} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  max {:>7.2} ms",
            self.count, self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// A latency histogram of microseconds, 1 µs to 60 s with 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
}

/// Records `seconds` in a histogram of [`latency_histogram`] (clamped to its range: a negative
/// latency, from clocks a few µs apart, counts as 1 µs).
pub fn record_latency(h: &mut Histogram<u64>, seconds: f64) {
    h.saturating_record((seconds * 1e6).clamp(1.0, 60e6) as u64);
}

/// One vehicle's counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VehicleCounts {
    /// V2X id.
    pub id: String,
    /// Frames received complete.
    pub frames: u64,
    /// Frame streams the RSU reset before this vehicle had them complete.
    pub abandoned: u64,
    /// Gaps in `message_count`: frames the RSU did not send this vehicle (nothing it subscribed
    /// to changed, or a newer frame replaced it before it was sent).
    pub skipped_by_rsu: u64,
    /// States sent.
    pub states_sent: u64,
    /// States that could not be sent.
    pub state_errors: u64,
    /// Frames received before the vehicle knew the RSU's sensor health (the RSU sends it in a
    /// vehicle's first frame, so this is 0 unless it is faulty).
    #[serde(default)]
    pub without_health: u64,
}

/// What the swarm measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SwarmReport {
    /// Vehicles that connected.
    pub connected: usize,
    /// Vehicles that failed to connect or whose session ended early (with the reason).
    pub failures: Vec<String>,
    /// QUIC endpoints (UDP sockets) the vehicles shared.
    pub endpoints: usize,
    /// The receive buffer the kernel granted each endpoint's socket [bytes], if it said.
    pub endpoint_recv_buffer_bytes: Option<usize>,
    /// Frames received by all vehicles.
    pub frames: u64,
    /// Frame streams the RSU reset before they were complete, all vehicles.
    pub abandoned: u64,
    /// `message_count` gaps, all vehicles.
    pub skipped_by_rsu: u64,
    /// States sent.
    pub states_sent: u64,
    /// States that could not be sent.
    pub state_errors: u64,
    /// Frames received before their vehicle knew the RSU's sensor health, all vehicles.
    #[serde(default)]
    pub without_health: u64,
    /// Capture-to-receipt latency.
    pub capture_to_receipt: LatencySummary,
    /// Frame-time-to-receipt latency.
    pub frame_to_receipt: LatencySummary,
    /// Per vehicle.
    pub vehicles: Vec<VehicleCounts>,
    /// Wall time [s].
    pub wall_s: f64,
    /// Every frame each vehicle received, as it decoded it, with its receipt time, in receipt
    /// order (only with [`SwarmSetup::record`]).
    #[serde(skip)]
    pub received: Vec<Receipt>,
    /// When the first vehicle started and the last one ended (UTC).
    #[serde(skip)]
    pub span: Option<(Timestamp, Timestamp)>,
}

/// Over how long `n` vehicles connect [s]: 50 per second, at least one second (TLS handshakes
/// cost CPU on both ends).
pub fn connect_spread_s(n: usize) -> f64 {
    (n as f64 / 50.0).max(1.0)
}

/// One vehicle's run: its counts and histograms.
struct Tally {
    counts: VehicleCounts,
    capture_us: Histogram<u64>,
    frame_us: Histogram<u64>,
    last_count: Option<u32>,
    /// The RSU as the vehicle's frames told it.
    rsu: RoadsideView,
    /// Every frame received with its receipt time, when recording: the radius subscribed.
    received: Option<(u32, Vec<Receipt>)>,
}

impl Tally {
    /// The tally of vehicle `id`, keeping every frame it receives when `record` (its
    /// subscription radius [m]).
    fn new(id: String, record: Option<u32>) -> Result<Tally, hdrhistogram::CreationError> {
        Ok(Tally {
            counts: VehicleCounts { id, ..VehicleCounts::default() },
            capture_us: latency_histogram()?,
            frame_us: latency_histogram()?,
            last_count: None,
            rsu: RoadsideView::default(),
            received: record.map(|radius_m| (radius_m, Vec::new())),
        })
    }

    fn on_frame(&mut self, frame: RoadsideFrame, receipt: Timestamp) {
        self.counts.frames += 1;
        if let Some(last) = self.last_count {
            let gap = frame.message_count.wrapping_sub(last);
            // A backwards or huge jump is a restarted counter, not skipped frames.
            if (2..1_000_000).contains(&gap) {
                self.counts.skipped_by_rsu += u64::from(gap - 1);
            }
        }
        self.last_count = Some(frame.message_count);
        if let Some(c) = frame.newest_capture {
            record_latency(&mut self.capture_us, receipt.secs_since(c));
        }
        record_latency(&mut self.frame_us, receipt.secs_since(frame.time));
        if let Some((radius_m, received)) = &mut self.received {
            let vehicle_id = self.counts.id.clone();
            let frame = frame.clone();
            received.push(Receipt {
                receipt,
                received: Received { vehicle_id, subscription_radius_m: Some(*radius_m), frame },
            });
        }
        self.rsu.receive(frame);
        if self.rsu.sensors().is_empty() {
            self.counts.without_health += 1;
        }
    }
}

/// The truth of swarm vehicle `i` at `elapsed_s`: a circle of its own around the intersection at
/// 8 m/s.
fn circling(i: usize, id: &str, elapsed_s: f64) -> ActorTruth {
    let radius = 20.0 + 4.0 * (i % 25) as f64;
    let speed = 8.0;
    let angle = i as f64 * 2.399 + speed * elapsed_s / radius;
    ActorTruth {
        id: 100_000 + i as u32,
        class: ObjectClass::Car,
        center: Point3::new(radius * angle.cos(), radius * angle.sin(), 0.75),
        yaw_rad: angle + std::f64::consts::FRAC_PI_2,
        speed_mps: speed,
        yaw_rate_rps: speed / radius,
        accel_mps2: 0.0,
        steer_rad: 0.0,
        size: BoxSize::new(4.6, 1.9, 1.5),
        v2x_id: Some(id.to_owned()),
    }
}

/// What every vehicle of a swarm shares.
#[derive(Clone)]
struct Common {
    site: Arc<SiteModel>,
    /// [s]
    duration_s: f64,
    /// [m]
    radius_m: u32,
    seed: u64,
    record: bool,
}

/// Vehicle `i` of `n`: connects through `endpoint` after its share of the connect spread, runs
/// for `duration_s`, and returns its tally (with the reason when its session ended early).
async fn drive(
    i: usize,
    n: usize,
    endpoint: ClientEndpoint,
    settings: ClientSettings,
    common: Common,
) -> Result<(Tally, Option<String>), String> {
    let Common { site, duration_s, radius_m, seed, record } = common;
    tokio::time::sleep(Duration::from_secs_f64(i as f64 / n as f64 * connect_spread_s(n))).await;
    let id = settings.identity.id.clone();
    let client = VehicleClient::connect_on(&endpoint, &settings, Some(Subscription::AroundMe { radius_m }))
        .await
        .map_err(|e| format!("{id}: {e}"))?;
    let mut receiver = client.frame_receiver();
    let mut reporter = SelfReporter::new(id.clone(), seed, 5000 + i as u64);
    let mut tally = Tally::new(id.clone(), record.then_some(radius_m)).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let t0 = Instant::now();
    let mut ended = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let elapsed = t0.elapsed().as_secs_f64();
                if elapsed >= duration_s {
                    break;
                }
                let state = reporter.report(&site, &circling(i, &id, elapsed), wall_now(), elapsed);
                match client.send_state(&state) {
                    Ok(()) => tally.counts.states_sent += 1,
                    Err(_) => tally.counts.state_errors += 1,
                }
            }
            // Receipt is when the frame's bytes are complete, before decoding (as the MQTT
            // peer's subscribers stamp theirs), so the vehicles' own decoding is not counted.
            received = receiver.next_bytes() => match received.and_then(|bytes| {
                let receipt = wall_now();
                let frame = v2x_proto::decode_limited::<rsu_fusion::RoadsideFrame>(&bytes, v2x_link::MAX_ROADSIDE_FRAME_BYTES)
                    .map_err(|e| ClientError::Protocol(format!("roadside frame: {e}")))?;
                Ok((frame, receipt))
            }) {
                Ok((frame, receipt)) => tally.on_frame(frame, receipt),
                Err(e) => {
                    ended = Some(format!("{id}: session ended after {:.1} s: {e}", t0.elapsed().as_secs_f64()));
                    break;
                }
            },
        }
    }
    tally.counts.abandoned = receiver.abandoned();
    client.close().await;
    Ok((tally, ended))
}

/// Runs the swarm.
pub async fn run(setup: SwarmSetup) -> Result<SwarmReport, SwarmError> {
    let Some(first) = setup.vehicles.first() else {
        return Err(SwarmError::Empty);
    };
    let started = Instant::now();
    let n = setup.vehicles.len();
    let endpoints = (0..setup.endpoints.clamp(1, n))
        .map(|_| ClientEndpoint::for_server(first.server_addr))
        .collect::<Result<Vec<_>, _>>()?;
    let common = Common {
        site: setup.site.clone(),
        duration_s: setup.duration_s,
        radius_m: setup.radius_m,
        seed: setup.seed,
        record: setup.record,
    };
    let start = wall_now();
    let mut tasks = JoinSet::new();
    for (i, settings) in setup.vehicles.iter().cloned().enumerate() {
        let endpoint = endpoints[i % endpoints.len()].clone();
        tasks.spawn(drive(i, n, endpoint, settings, common.clone()));
    }
    let mut capture = latency_histogram()?;
    let mut frame = latency_histogram()?;
    let mut report = SwarmReport {
        connected: 0,
        failures: Vec::new(),
        endpoints: endpoints.len(),
        endpoint_recv_buffer_bytes: endpoints[0].recv_buffer_bytes(),
        frames: 0,
        abandoned: 0,
        skipped_by_rsu: 0,
        states_sent: 0,
        state_errors: 0,
        without_health: 0,
        capture_to_receipt: LatencySummary::default(),
        frame_to_receipt: LatencySummary::default(),
        vehicles: Vec::with_capacity(n),
        wall_s: 0.0,
        received: Vec::new(),
        span: None,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((t, ended))) => {
                report.connected += 1;
                report.failures.extend(ended);
                report.frames += t.counts.frames;
                report.abandoned += t.counts.abandoned;
                report.skipped_by_rsu += t.counts.skipped_by_rsu;
                report.states_sent += t.counts.states_sent;
                report.state_errors += t.counts.state_errors;
                report.without_health += t.counts.without_health;
                // Same bounds everywhere: adding cannot fail.
                let _ = capture.add(&t.capture_us);
                let _ = frame.add(&t.frame_us);
                report.received.extend(t.received.into_iter().flat_map(|(_, r)| r));
                report.vehicles.push(t.counts);
            }
            Ok(Err(reason)) => report.failures.push(reason),
            Err(e) => report.failures.push(format!("task: {e}")),
        }
    }
    // The sessions' closes reach the RSU before the report is out, so the daemon's counters are
    // final when whoever reads them reads them.
    for endpoint in &endpoints {
        endpoint.wait_idle(Duration::from_secs(2)).await;
    }
    report.vehicles.sort_by(|a, b| a.id.cmp(&b.id));
    report.capture_to_receipt = LatencySummary::of(&capture);
    report.frame_to_receipt = LatencySummary::of(&frame);
    report.wall_s = started.elapsed().as_secs_f64();
    // Stable: one vehicle's receipts keep their order.
    report.received.sort_by_key(|r| r.receipt);
    report.span = Some((start, wall_now()));
    Ok(report)
}

/// Writes every frame the swarm's vehicles received (publish time = receipt time; run with
/// [`SwarmSetup::record`]) into the replay log `path`, with `site` and `seed` in its metadata.
/// Like `vehicle-sim live`'s log it has no broadcast as sent: that is in the RSU's recording.
pub fn write_log(path: &std::path::Path, site: &SiteModel, seed: u64, report: &SwarmReport) -> Result<(), ReplayError> {
    let (start, end) = report.span.unwrap_or((Timestamp::EPOCH, Timestamp::EPOCH));
    let meta = ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: concat!("vehicle-sim ", env!("CARGO_PKG_VERSION")).to_owned(),
        scenario: "swarm".to_owned(),
        description: format!("{} connected vehicles circling the site (vehicle-sim swarm)", report.connected),
        seed,
        site: site.config.clone(),
        rsu_ids: Vec::new(),
        start_time: start,
        end_time: end,
        truth_ids_per_frame: false,
    };
    let mut writer = ReplayWriter::create(path, &meta)?;
    writer.write_merged(&[&crate::live::receipt_messages(&report.received)])?;
    writer.finish()?;
    Ok(())
}

/// The report as text: counts and a latency line per measure.
pub fn render(report: &SwarmReport) -> String {
    let mut out = format!(
        "{} vehicles connected ({} failed) on {} endpoint(s) (UDP receive buffer {} KiB), {:.1} s: {} frames received ({} before the sensor health), {} skipped by the RSU, {} abandoned (reset by the RSU), {} states sent ({} failed)\n",
        report.connected,
        report.failures.len(),
        report.endpoints,
        report.endpoint_recv_buffer_bytes.map_or_else(|| "?".to_owned(), |b| (b / 1024).to_string()),
        report.wall_s,
        report.frames,
        report.without_health,
        report.skipped_by_rsu,
        report.abandoned,
        report.states_sent,
        report.state_errors
    );
    out.push_str(&report.capture_to_receipt.line("capture→receipt"));
    out.push('\n');
    out.push_str(&report.frame_to_receipt.line("frame→receipt"));
    out.push('\n');
    for f in report.failures.iter().take(5) {
        out.push_str(&format!("  failure: {f}\n"));
    }
    out
}
