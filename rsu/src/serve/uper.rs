//! The standard encoding gateway (`[uper]`, off by default): the fused participants as RSM, the
//! SPaT as SPAT and the connected vehicles' states as BSM, each a T/CSAE 53-2020 `MessageFrame`
//! in ASN.1 UPER ([`v2x_uper`]), sent to a roadside PC5 radio as commercial RSUs feed one: one
//! message per UDP datagram to a configured address, within a payload budget (1400 bytes by
//! default; an RSM that does not fit is split).
//!
//! The gateway is a task of its own. The event loop hands it the newest frame and SPaTs through
//! watch channels (the newest wins, nothing waits) and vehicle states through a bounded queue
//! that drops (and counts) when full, so the vehicle path never blocks on it. The task sends an
//! RSM of each new frame at most `rsm_rate_hz`, the SPAT of the current SPaTs every
//! `1 / spat_rate_hz` (counting down from the time it is sent), and a BSM per vehicle state as
//! it arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rsu_fusion::{EnuFrame, RoadsideFrame, VehicleState};
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use v2x_proto::domain::Spat;
use v2x_uper::convert::{self, Clamps};
use v2x_uper::msg::MessageFrame;

use crate::recorder::wall_now;

/// `[uper]`: the standard encoding gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UperConfig {
    /// Whether to run the gateway. Default false.
    pub enabled: bool,
    /// Where the PC5 radio takes the datagrams (required when enabled).
    pub destination: Option<SocketAddr>,
    /// The local address to send from. Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// RSMs per second, at most one per fused frame [Hz], 1..=50. Default 10.
    pub rsm_rate_hz: f64,
    /// SPATs per second [Hz], 1..=50. Default 10.
    pub spat_rate_hz: f64,
    /// Forward each accepted vehicle state as a BSM. Default true.
    pub forward_bsm: bool,
    /// Largest datagram payload [bytes], 200..=1400. Default 1400.
    pub max_payload_bytes: usize,
    /// Vehicle states waiting for the gateway; more are dropped (`queue_full`), 16..=65536.
    /// Default 1024.
    pub queue: usize,
    /// The RSU's 8-byte id in RSMs, 16 hex digits. Default: derived from the RSU's id
    /// ([`convert::temporary_id`]).
    pub station_id: Option<String>,
}

impl Default for UperConfig {
    fn default() -> Self {
        UperConfig {
            enabled: false,
            destination: None,
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            rsm_rate_hz: 10.0,
            spat_rate_hz: 10.0,
            forward_bsm: true,
            max_payload_bytes: v2x_uper::MAX_PAYLOAD_BYTES,
            queue: 1024,
            station_id: None,
        }
    }
}

impl UperConfig {
    /// Checks ranges, and that an enabled gateway has a destination.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (field, v) in [("uper.rsm_rate_hz", self.rsm_rate_hz), ("uper.spat_rate_hz", self.spat_rate_hz)] {
            if !(v.is_finite() && (1.0..=50.0).contains(&v)) {
                bail!("{field}: {v} is out of range 1..=50 Hz");
            }
        }
        if !(200..=v2x_uper::MAX_PAYLOAD_BYTES).contains(&self.max_payload_bytes) {
            bail!(
                "uper.max_payload_bytes: {} is out of range 200..={}",
                self.max_payload_bytes,
                v2x_uper::MAX_PAYLOAD_BYTES
            );
        }
        if !(16..=65_536).contains(&self.queue) {
            bail!("uper.queue: {} is out of range 16..=65536", self.queue);
        }
        if let Some(id) = &self.station_id {
            parse_station_id(id)?;
        }
        if self.enabled && self.destination.is_none() {
            bail!("uper.destination: required when the gateway is enabled");
        }
        Ok(())
    }
}

fn parse_station_id(text: &str) -> anyhow::Result<[u8; 8]> {
    let mut id = [0u8; 8];
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("uper.station_id: {text:?} is not 16 hex digits");
    }
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).context("uper.station_id")?;
    }
    Ok(id)
}

/// The event loop's handle on the running gateway.
#[derive(Debug)]
pub struct Gateway {
    frames: watch::Sender<Option<Arc<RoadsideFrame>>>,
    spats: watch::Sender<Vec<Spat>>,
    vehicles: Option<mpsc::Sender<VehicleState>>,
}

impl Gateway {
    /// Binds the sending socket and returns the handle and the gateway's task (to spawn), which
    /// runs until `shutdown`.
    pub async fn start(
        config: &UperConfig,
        enu: EnuFrame,
        rsu_id: &str,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Gateway, impl Future<Output = ()> + Send + 'static)> {
        let destination = config.destination.context("uper.destination: required when the gateway is enabled")?;
        let socket =
            UdpSocket::bind(config.bind).await.with_context(|| format!("uper.bind: binding UDP {}", config.bind))?;
        let station_id = match &config.station_id {
            Some(text) => v2x_uper::rasn::types::FixedOctetString::from(parse_station_id(text)?),
            None => convert::temporary_id(rsu_id),
        };
        let (frames, frames_rx) = watch::channel(None);
        let (spats, spats_rx) = watch::channel(Vec::new());
        let (vehicles, vehicles_rx) = if config.forward_bsm {
            let (tx, rx) = mpsc::channel(config.queue);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        tracing::info!(%destination, budget = config.max_payload_bytes, "UPER gateway (T/CSAE 53-2020) sending");
        let task = Task {
            socket,
            destination,
            enu,
            station_id,
            budget: config.max_payload_bytes,
            clamps: Clamps::default(),
            rsm_cnt: 0,
            spat_cnt: 0,
            send_error_logged: false,
        }
        .run(config.clone(), frames_rx, spats_rx, vehicles_rx, shutdown);
        Ok((Gateway { frames, spats, vehicles }, task))
    }

    /// A new fused frame (the newest replaces one not yet sent).
    pub fn frame(&self, frame: &Arc<RoadsideFrame>) {
        self.frames.send_replace(Some(frame.clone()));
    }

    /// The SPaT of every intersection with a fresh controller state, as of now.
    pub fn spats(&self, spats: Vec<Spat>) {
        self.spats.send_replace(spats);
    }

    /// An accepted vehicle state, to forward as a BSM; dropped (and counted) when the queue is
    /// full.
    pub fn vehicle(&self, state: &VehicleState) {
        let Some(tx) = &self.vehicles else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(state.clone()) {
            dropped("queue_full");
        }
    }
}

fn dropped(reason: &'static str) {
    metrics::counter!("rsu_uper_dropped_total", "reason" => reason).increment(1);
}

struct Task {
    socket: UdpSocket,
    destination: SocketAddr,
    enu: EnuFrame,
    station_id: v2x_uper::rasn::types::FixedOctetString<8>,
    budget: usize,
    clamps: Clamps,
    rsm_cnt: u8,
    spat_cnt: u8,
    send_error_logged: bool,
}

impl Task {
    async fn run(
        mut self,
        config: UperConfig,
        mut frames: watch::Receiver<Option<Arc<RoadsideFrame>>>,
        spats: watch::Receiver<Vec<Spat>>,
        mut vehicles: Option<mpsc::Receiver<VehicleState>>,
        shutdown: CancellationToken,
    ) {
        let mut rsm_tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rsm_rate_hz));
        rsm_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut spat_tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.spat_rate_hz));
        spat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(state) = recv(&mut vehicles) => {
                    let bsm = convert::bsm(&state, &self.enu, &mut self.clamps);
                    self.send_frame("bsm", &MessageFrame::BsmFrame(bsm)).await;
                }
                _ = rsm_tick.tick() => {
                    if !frames.has_changed().unwrap_or(false) {
                        continue;
                    }
                    let Some(frame) = frames.borrow_and_update().clone() else { continue };
                    let encoded =
                        convert::rsms(&frame, &self.enu, &self.station_id, &mut self.rsm_cnt, self.budget, &mut self.clamps);
                    self.send_encoded("rsm", encoded).await;
                }
                _ = spat_tick.tick() => {
                    let current = spats.borrow().clone();
                    if current.is_empty() {
                        continue;
                    }
                    let encoded = convert::spats(&current, wall_now(), &mut self.spat_cnt, self.budget, &mut self.clamps);
                    self.send_encoded("spat", encoded).await;
                }
            }
            self.export_clamps();
        }
    }

    async fn send_frame(&mut self, kind: &'static str, frame: &MessageFrame) {
        match v2x_uper::encode_msg_frame(frame) {
            Ok(bytes) if bytes.len() > self.budget => {
                dropped("too_large");
                tracing::warn!(kind, bytes = bytes.len(), budget = self.budget, "UPER message over the payload budget");
            }
            Ok(bytes) => self.send(kind, &bytes).await,
            Err(e) => {
                dropped("encode_error");
                tracing::warn!(kind, "UPER encoding failed: {e}");
            }
        }
    }

    async fn send_encoded(&mut self, kind: &'static str, encoded: Result<Vec<(Vec<u8>, usize)>, v2x_uper::UperError>) {
        match encoded {
            Ok(messages) => {
                for (bytes, _) in messages {
                    self.send(kind, &bytes).await;
                }
            }
            Err(v2x_uper::UperError::TooLarge { bytes, budget }) => {
                dropped("too_large");
                tracing::warn!(kind, bytes, budget, "UPER message over the payload budget");
            }
            Err(e) => {
                dropped("encode_error");
                tracing::warn!(kind, "UPER encoding failed: {e}");
            }
        }
    }

    async fn send(&mut self, kind: &'static str, bytes: &[u8]) {
        match self.socket.send_to(bytes, self.destination).await {
            Ok(_) => metrics::counter!("rsu_uper_sent_total", "type" => kind).increment(1),
            Err(e) => {
                dropped("send_error");
                if !self.send_error_logged {
                    tracing::warn!(destination = %self.destination, "UPER datagram not sent: {e} (further errors are only counted)");
                    self.send_error_logged = true;
                }
            }
        }
    }

    fn export_clamps(&mut self) {
        if self.clamps.is_empty() {
            return;
        }
        for (field, n) in self.clamps.counts() {
            metrics::counter!("rsu_uper_clamped_total", "field" => field).increment(n);
        }
        self.clamps.clear();
    }
}

/// The next vehicle state, or never when BSMs are not forwarded.
async fn recv(vehicles: &mut Option<mpsc::Receiver<VehicleState>>) -> Option<VehicleState> {
    match vehicles {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enabled_gateway_needs_a_destination_and_sane_limits() {
        let off = UperConfig::default();
        off.validate().expect("off by default, nothing required");
        let on = UperConfig { enabled: true, ..UperConfig::default() };
        assert!(on.validate().expect_err("no destination").to_string().contains("uper.destination"));
        let good = UperConfig { destination: Some(SocketAddr::from(([127, 0, 0, 1], 30299))), ..on };
        good.validate().expect("valid");
        for bad in [
            UperConfig { max_payload_bytes: 1401, ..good.clone() },
            UperConfig { rsm_rate_hz: 0.0, ..good.clone() },
            UperConfig { spat_rate_hz: f64::NAN, ..good.clone() },
            UperConfig { queue: 1, ..good.clone() },
            UperConfig { station_id: Some("00112233445566".into()), ..good.clone() },
            UperConfig { station_id: Some("001122334455667g".into()), ..good.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(parse_station_id("00112233445566ff").expect("hex"), [0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xff]);
    }
}
