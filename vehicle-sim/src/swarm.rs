//! Load: many lightweight connected vehicles in one process. Each is a real QUIC client with its
//! own certificate that subscribes around itself, drives a circle around the site (so the RSU
//! fuses its self-reports), sends its state at 10 Hz and receives the RSU's frames. Every frame's
//! latency goes into one histogram per measure: capture to receipt (the newest sensor capture
//! the frame carries; needs sensors feeding the RSU) and frame time to receipt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nalgebra::Point3;
use rsu_fusion::{BoxSize, ObjectClass};
use tokio::task::JoinSet;
use v2x_link::client::{ClientSettings, VehicleClient};
use v2x_link::wall_now;
use v2x_proto::domain::Subscription;

use crate::connected::newest_capture;
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
}

/// What the swarm measured.
pub struct SwarmReport {
    /// Vehicles that connected.
    pub connected: usize,
    /// Vehicles that failed to connect (with the first reason).
    pub connect_failures: Vec<String>,
    /// Frames received by all vehicles.
    pub frames: u64,
    /// Frames lost (message counter gaps).
    pub lost: u64,
    /// States sent.
    pub states_sent: u64,
    /// States that could not be sent.
    pub state_errors: u64,
    /// Capture-to-receipt latency [µs].
    pub capture_to_receipt_us: Histogram<u64>,
    /// Frame-time-to-receipt latency [µs].
    pub frame_to_receipt_us: Histogram<u64>,
    /// Wall time [s].
    pub wall_s: f64,
}

struct VehicleTally {
    frames: u64,
    lost: u64,
    states_sent: u64,
    state_errors: u64,
    capture: Histogram<u64>,
    frame: Histogram<u64>,
}

/// Over how long `n` vehicles connect [s]: 50 per second, at least one second.
fn connect_spread_s(n: usize) -> f64 {
    (n as f64 / 50.0).max(1.0)
}

fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
}

/// Runs the swarm.
pub async fn run(setup: SwarmSetup) -> Result<SwarmReport, SwarmError> {
    if setup.vehicles.is_empty() {
        return Err(SwarmError::Empty);
    }
    let started = Instant::now();
    let n = setup.vehicles.len();
    let mut tasks = JoinSet::new();
    for (i, settings) in setup.vehicles.iter().cloned().enumerate() {
        let (site, duration_s, radius_m, seed) = (setup.site.clone(), setup.duration_s, setup.radius_m, setup.seed);
        tasks.spawn(async move {
            // Spread the connections: 50 handshakes per second at most (TLS handshakes cost
            // CPU on both ends).
            tokio::time::sleep(Duration::from_secs_f64(i as f64 / n as f64 * connect_spread_s(n))).await;
            let id = settings.identity.id.clone();
            let subscription = Subscription::AroundMe { radius_m };
            let client = match VehicleClient::connect(&settings, Some(subscription)).await {
                Ok(c) => c,
                Err(e) => return Err(format!("{id}: {e}")),
            };
            let mut receiver = client.frame_receiver();
            let mut reporter = SelfReporter::new(id.clone(), seed, 5000 + i as u64);
            let mut tally = VehicleTally {
                frames: 0,
                lost: 0,
                states_sent: 0,
                state_errors: 0,
                capture: histogram().map_err(|e| e.to_string())?,
                frame: histogram().map_err(|e| e.to_string())?,
            };
            let mut last_count: Option<u32> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let t0 = Instant::now();
            // A circle of its own around the intersection.
            let radius = 20.0 + 4.0 * (i % 25) as f64;
            let speed = 8.0;
            let phase = i as f64 * 2.399;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let elapsed = t0.elapsed().as_secs_f64();
                        if elapsed >= duration_s {
                            break;
                        }
                        let angle = phase + speed * elapsed / radius;
                        let truth = ActorTruth {
                            id: 100_000 + i as u32,
                            class: ObjectClass::Car,
                            center: Point3::new(radius * angle.cos(), radius * angle.sin(), 0.75),
                            yaw_rad: angle + std::f64::consts::FRAC_PI_2,
                            speed_mps: speed,
                            yaw_rate_rps: speed / radius,
                            accel_mps2: 0.0,
                            steer_rad: 0.0,
                            size: BoxSize::new(4.6, 1.9, 1.5),
                            v2x_id: Some(id.clone()),
                        };
                        let state = reporter.report(&site, &truth, wall_now(), elapsed);
                        match client.send_state(&state) {
                            Ok(()) => tally.states_sent += 1,
                            Err(_) => tally.state_errors += 1,
                        }
                    }
                    received = receiver.next() => {
                        let Ok(f) = received else { break };
                        let now = wall_now();
                        tally.frames += 1;
                        if let Some(last) = last_count {
                            let gap = f.message_count.wrapping_sub(last);
                            if (2..1000).contains(&gap) {
                                tally.lost += u64::from(gap - 1);
                            }
                        }
                        last_count = Some(f.message_count);
                        if let Some(c) = newest_capture(&f) {
                            tally.capture.saturating_record(micros(now.secs_since(c)));
                        }
                        tally.frame.saturating_record(micros(now.secs_since(f.time)));
                    }
                }
            }
            tally.lost += receiver.abandoned();
            client.close().await;
            Ok(tally)
        });
    }
    let mut report = SwarmReport {
        connected: 0,
        connect_failures: Vec::new(),
        frames: 0,
        lost: 0,
        states_sent: 0,
        state_errors: 0,
        capture_to_receipt_us: histogram()?,
        frame_to_receipt_us: histogram()?,
        wall_s: 0.0,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(t)) => {
                report.connected += 1;
                report.frames += t.frames;
                report.lost += t.lost;
                report.states_sent += t.states_sent;
                report.state_errors += t.state_errors;
                // Both histograms have the same bounds: adding cannot fail.
                let _ = report.capture_to_receipt_us.add(&t.capture);
                let _ = report.frame_to_receipt_us.add(&t.frame);
            }
            Ok(Err(reason)) => report.connect_failures.push(reason),
            Err(e) => report.connect_failures.push(format!("task: {e}")),
        }
    }
    report.wall_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn micros(s: f64) -> u64 {
    (s * 1e6).clamp(1.0, 60e6) as u64
}

/// The report as text: counts and a latency table per measure.
pub fn render(report: &SwarmReport) -> String {
    let mut out = format!(
        "{} vehicles connected ({} failed), {:.1} s: {} frames received, {} lost, {} states sent ({} failed)\n",
        report.connected,
        report.connect_failures.len(),
        report.wall_s,
        report.frames,
        report.lost,
        report.states_sent,
        report.state_errors
    );
    for (name, h) in
        [("capture→receipt", &report.capture_to_receipt_us), ("frame→receipt", &report.frame_to_receipt_us)]
    {
        if h.is_empty() {
            out.push_str(&format!("{name:<16} no samples\n"));
            continue;
        }
        out.push_str(&format!(
            "{name:<16} n={:<7} p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  p99.9 {:>7.1} ms  max {:>7.1} ms\n",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.9) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.value_at_quantile(0.999) as f64 / 1e3,
            h.max() as f64 / 1e3
        ));
    }
    for f in report.connect_failures.iter().take(5) {
        out.push_str(&format!("  connect failure: {f}\n"));
    }
    out
}
