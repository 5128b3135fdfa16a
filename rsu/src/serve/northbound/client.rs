//! The MQTT connection: rumqttc's client and event loop, with TLS through rustls on the ring
//! provider (no other provider is linked) or plain TCP, and username and password or a client
//! certificate. A driver task polls the event loop, reports connections, losses and downlink
//! messages to the publisher, and after a loss waits before the next attempt: from
//! `reconnect_min_s`, doubled after each failure up to `reconnect_max_s`, each wait shortened by
//! up to half at random-looking but reproducible amounts (derived from the client id and the
//! attempt), so a city's RSUs do not all reconnect at the same instant after a broker restart.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, Transport};
use tokio::sync::mpsc;
use v2x_link::tls::{CertKey, load_roots};

use super::Link;
use crate::config::{NorthboundConfig, NorthboundTlsConfig};

/// Requests the MQTT client buffers before its event loop takes them: small, so that while the
/// broker is away messages wait in the bounded offline queue, where drops are counted.
const CLIENT_REQUESTS: usize = 32;
/// QoS 1 and 2 publishes in flight at once.
const INFLIGHT: u16 = 32;
/// Downlink messages and link reports waiting for the publisher.
const LINK_QUEUE: usize = 64;

/// The rustls client configuration for the broker: its CA, and the RSU's client certificate
/// when one is configured. TLS 1.2 and 1.3 (brokers differ), ring provider.
pub fn client_tls(tls: &NorthboundTlsConfig) -> anyhow::Result<rustls::ClientConfig> {
    let roots = load_roots(&tls.ca).context("northbound.tls.ca")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .context("northbound.tls")?
        .with_root_certificates(roots);
    Ok(match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let pair = CertKey::load(cert, key).context("northbound.tls.cert / northbound.tls.key")?;
            builder.with_client_auth_cert(pair.chain, pair.key).context("northbound.tls: the client certificate")?
        }
        _ => builder.with_no_client_auth(),
    })
}

/// The MQTT options of `config` for RSU `rsu_id`, with `will` as the last will.
pub fn options(config: &NorthboundConfig, rsu_id: &str, will: LastWill) -> anyhow::Result<MqttOptions> {
    let client_id = config.client_id.clone().unwrap_or_else(|| format!("rsu-{rsu_id}"));
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options.set_keep_alive(Duration::from_secs_f64(config.keep_alive_s));
    // A persistent session: QoS 1 messages in flight when the broker goes away are sent again
    // after the reconnection when the broker kept the session.
    options.set_clean_session(false);
    options.set_inflight(INFLIGHT);
    // Packets up to the protocol's message limit either way: a downlink message over
    // `max_downlink_bytes` is then refused with an ACK (`oversized`) rather than by dropping the
    // connection, which the broker would answer by delivering the same message again.
    let max_packet = v2x_proto::MAX_MESSAGE_BYTES + 4096;
    options.set_max_packet_size(max_packet, max_packet);
    options.set_last_will(will);
    if let (Some(user), Some(file)) = (&config.username, &config.password_file) {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("northbound.password_file: reading {}", file.display()))?;
        let password = text.lines().next().unwrap_or_default().to_owned();
        options.set_credentials(user.clone(), password);
    }
    if let Some(tls) = &config.tls {
        // The broker's certificate is checked against `host`.
        let rustls = client_tls(tls)?;
        options.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(rustls))));
    }
    Ok(options)
}

/// Creates the client and starts its driver: the client, the driver's reports and the driver
/// task (it ends after the client sent DISCONNECT, or when the publisher is gone).
pub fn connect(
    config: &NorthboundConfig,
    rsu_id: &str,
    will: LastWill,
) -> anyhow::Result<(AsyncClient, mpsc::Receiver<Link>, tokio::task::JoinHandle<()>)> {
    let options = options(config, rsu_id, will)?;
    let seed = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        options.client_id().hash(&mut h);
        h.finish()
    };
    let (client, eventloop) = AsyncClient::new(options, CLIENT_REQUESTS);
    let (tx, rx) = mpsc::channel(LINK_QUEUE);
    let backoff = Backoff::new(config.reconnect_min_s, config.reconnect_max_s, seed);
    let driver = tokio::spawn(drive(eventloop, tx, backoff));
    Ok((client, rx, driver))
}

/// Reconnection waits: exponential from `min_s` to `max_s`, with reproducible jitter.
#[derive(Debug)]
pub struct Backoff {
    min_s: f64,
    max_s: f64,
    seed: u64,
    attempt: u32,
}

impl Backoff {
    /// Waits from `min_s` to `max_s` [s]; `seed` spreads the jitter of different clients.
    pub fn new(min_s: f64, max_s: f64, seed: u64) -> Self {
        Backoff { min_s, max_s, seed, attempt: 0 }
    }

    /// The wait before the next attempt (and counts the attempt).
    pub fn next_wait(&mut self) -> Duration {
        let base = (self.min_s * 2f64.powi(self.attempt.min(30) as i32)).min(self.max_s);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.seed, self.attempt).hash(&mut h);
        // A fraction in [0, 1) from the hash: the wait is base * [0.5, 1).
        let fraction = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_secs_f64(base * (0.5 + 0.5 * fraction))
    }

    /// After a successful connection: the next wait starts from `min_s` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

async fn drive(mut eventloop: rumqttc::EventLoop, tx: mpsc::Sender<Link>, mut backoff: Backoff) {
    loop {
        let report = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                Link::Connected
            }
            Ok(Event::Incoming(Packet::Publish(p))) => Link::Message(p.topic, p.payload),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(rumqttc::ConnectionError::RequestsDone) => return,
            Err(e) => {
                if tx.send(Link::Disconnected(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next_wait()).await;
                continue;
            }
        };
        if tx.send(report).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(0.5, 4.0, 7);
        let waits: Vec<f64> = (0..6).map(|_| b.next_wait().as_secs_f64()).collect();
        for (wait, base) in waits.iter().zip([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]) {
            assert!((base * 0.5..base).contains(wait), "{waits:?}");
        }
        b.reset();
        assert!(b.next_wait().as_secs_f64() < 0.5);
        let mut other = Backoff::new(0.5, 4.0, 8);
        let theirs: Vec<f64> = (0..6).map(|_| other.next_wait().as_secs_f64()).collect();
        assert_ne!(waits, theirs, "two RSUs do not wait alike");
    }
}
