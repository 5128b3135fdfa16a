//! Operations endpoint: a Prometheus recorder for the `metrics` facade and a tiny HTTP/1.1 server
//! answering `GET /metrics` (Prometheus text format) and `GET /healthz` (`ok` while the fusion
//! loop is alive, 503 once it has not completed a cycle for 2 s).
//!
//! Metrics (all prefixed `rsu_`): `sensor_frames_total{sensor}`, `vehicle_states_total`,
//! `fusion_step_seconds` (histogram: the fusion work of one step), `added_latency_seconds`
//! (histogram: arrival of the newest input in a frame to the frame handed to QUIC),
//! `broadcast_latency_seconds` (histogram, capture of the newest fused measurement to the frame
//! handed to QUIC), `frame_participant_bytes` (histogram), `connected_vehicles`,
//! `connected_sensors`, `connected_signal_controllers`, `signal_states_total{controller}`,
//! `spat_sent_total`, `spat_unsent_total{reason}`, `frames_sent_total`, `frames_delivered_total`,
//! `frames_undelivered_total{reason}`, `ingest_dropped_total`, `rejected_total{reason}`, `sensor_status{sensor}` (0 unknown, 1 ok,
//! 2 degraded, 3 silent), `sensor_last_capture_age_seconds{sensor}`, `tracks`,
//! `recorder_dropped_total`, `recorder_errors_total`, `sessions_total`, `revocations`,
//! `misbehaviour_flags_total{reason}` (vehicles flagged for implausible self-reports) and
//! `misbehaving_vehicles` (flagged now; see `serve::flags`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Histogram buckets of latencies and cycle times [s].
const LATENCY_BUCKETS_S: [f64; 22] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
    0.15, 0.2, 0.3, 0.5, 1.0, 2.0,
];

/// Histogram buckets of sizes [bytes].
const SIZE_BUCKETS_BYTES: [f64; 14] =
    [16.0, 24.0, 32.0, 36.0, 40.0, 44.0, 48.0, 64.0, 96.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// Installs the global Prometheus recorder (once per process) and returns its handle.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_S)
        .context("metrics buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &SIZE_BUCKETS_BYTES)
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Liveness of the fusion loop: the wall time [ms since the epoch] of its last completed cycle.
#[derive(Clone, Debug, Default)]
pub struct Health {
    last_cycle_ms: Arc<AtomicI64>,
}

impl Health {
    /// Marks a completed cycle.
    pub fn beat(&self) {
        self.last_cycle_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether a cycle completed within `max_age`.
    pub fn is_alive(&self, max_age: Duration) -> bool {
        let last = self.last_cycle_ms.load(Ordering::Relaxed);
        last > 0 && now_ms() - last <= i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Binds the HTTP endpoint on `addr`; serve it with [`serve_http`].
pub async fn bind_http(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("metrics.listen: binding {addr}"))
}

/// Serves `/metrics` and `/healthz` until `shutdown`.
pub async fn serve_http(listener: TcpListener, handle: PrometheusHandle, health: Health, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let handle = handle.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, &handle, &health)).await;
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream, handle: &PrometheusHandle, health: &Health) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Read the request head (the first line is all we need).
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            handle.run_upkeep();
            ("200 OK", "text/plain; version=0.0.4", handle.render())
        }
        ("GET", "/healthz") if health.is_alive(Duration::from_secs(2)) => ("200 OK", "text/plain", "ok\n".into()),
        ("GET", "/healthz") => ("503 Service Unavailable", "text/plain", "fusion loop stalled\n".into()),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics or /healthz\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
