//! The daemon's configuration file (`rsu serve --config rsu.toml`): TOML with a documented default
//! and unit for every field. Loading validates everything and names the offending field.
//!
//! ```toml
//! listen = "0.0.0.0:4433"          # UDP address of the QUIC endpoint
//! site_file = "site.toml"          # or an inline [site] table (SiteConfig)
//!
//! [tls]
//! ca = "pki/ca.pem"
//! cert = "pki/rsu.pem"
//! key = "pki/rsu.key"
//! revocations = "pki/revoked.txt"  # optional
//!
//! [broadcast]
//! rate_hz = 10.0                   # heartbeat: at least this often per vehicle
//! max_rate_hz = 20.0               # at most this often per vehicle (frames go out on change)
//! frame_deadline_s = 0.5           # a frame in flight this long is given up
//!
//! [fusion]                         # FusionConfig; every field optional
//! max_lag_s = 0.5
//!
//! [signals]                        # traffic signal controllers and the SPaT broadcast
//! spat_rate_hz = 10.0
//! [[signals.controllers]]
//! id = "tsc-1201"                  # its certificate: v2x://signal/tsc-1201
//! intersection_id = 1201
//! ntcip_listen = "0.0.0.0:6053"    # optional: NTCIP 1202 v03 SPaT blobs over UDP
//! ntcip_source = "192.0.2.10"      # optional: the controller's IP address
//!
//! [uper]                           # T/CSAE 53-2020 UPER to a PC5 radio (off by default)
//! enabled = true
//! destination = "192.0.2.20:30299" # one MessageFrame per UDP datagram, at most 1400 bytes
//!
//! [map]                            # the MAP and RSI events (protocol version 4)
//! site_dir = "site"                # a site folder with GeoJSON; default: the embedded site's
//!                                  # map when the daemon serves the embedded site, else none
//! [rsi]                            # RsiConfig thresholds; every field optional
//! stopped_after_s = 5.0
//! [northbound]                     # MQTT to the city's V2X platform (off by default)
//! enabled = true
//! host = "mqtt.city.example"
//! port = 8883
//! rsm_rate_hz = 2.0
//! [northbound.tls]                 # optional: TLS, with a client certificate if cert/key given
//! ca = "pki/platform-ca.pem"
//! cert = "pki/rsu-mqtt.pem"
//! key = "pki/rsu-mqtt.key"
//! [northbound.topics]              # optional: override a topic or its QoS
//! rsm = { topic = "V2X/RSU/{rsu_id}/RSM/UP", qos = 0 }
//! ```
//!
//! Relative paths are relative to the directory of the configuration file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rsu_fusion::{FusionConfig, SiteConfig};
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// UDP address of the QUIC endpoint. Default `0.0.0.0:4433`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The RSU's id, sent in ServerHello and every RoadsideFrame. Default: `fusion.rsu_id`, or
    /// the site id when that is empty too.
    #[serde(default)]
    pub rsu_id: Option<String>,
    /// A site file (`SiteConfig` TOML: origin, ground, sensor calibration). At most one of
    /// `site_file` and `site` may be given; with neither, the daemon serves the embedded
    /// representative Yancheng site (and says so at start).
    #[serde(default)]
    pub site_file: Option<PathBuf>,
    /// The site inline.
    #[serde(default)]
    pub site: Option<SiteConfig>,
    /// Tracker tuning (all fields optional, see `FusionConfig`).
    #[serde(default)]
    pub fusion: FusionConfig,
    /// Certificates.
    pub tls: TlsConfig,
    /// Broadcast.
    #[serde(default)]
    pub broadcast: BroadcastConfig,
    /// Limits and timeouts.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Recording.
    #[serde(default)]
    pub recording: RecordingConfig,
    /// Metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Live view.
    #[serde(default)]
    pub rerun: RerunConfig,
    /// Traffic signal controllers and the SPaT broadcast.
    #[serde(default)]
    pub signals: SignalsConfig,
    /// The standard encoding gateway (T/CSAE 53-2020 UPER to a PC5 radio).
    #[serde(default)]
    pub uper: crate::serve::uper::UperConfig,
    /// Where the MAP comes from (PROTOCOL.md §2.9).
    #[serde(default)]
    pub map: MapConfig,
    /// Road safety information events (PROTOCOL.md §2.10).
    #[serde(default)]
    pub rsi: rsu_site::rsi::RsiConfig,
    /// MQTT to the V2X platform (README, "Northbound MQTT").
    #[serde(default)]
    pub northbound: NorthboundConfig,
}

/// Northbound MQTT: the RSU publishes its fused frames, SPaT, heartbeats and device information
/// to the platform's broker and takes road events and runtime settings from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NorthboundConfig {
    /// Whether to connect to a broker. Default false.
    pub enabled: bool,
    /// The broker's host name or IP address. Default `127.0.0.1`.
    pub host: String,
    /// The broker's TCP port. Default 1883 (8883 is the usual port with TLS).
    pub port: u16,
    /// The MQTT client id. Default `rsu-<rsu_id>`.
    pub client_id: Option<String>,
    /// User name for the broker (with `password_file`). Optional.
    pub username: Option<String>,
    /// A file whose first line is the broker password (kept out of the configuration file).
    pub password_file: Option<PathBuf>,
    /// TLS to the broker. Optional: without it the connection is plain TCP.
    pub tls: Option<NorthboundTlsConfig>,
    /// MQTT keep-alive [s], 5..=3600. Default 30.
    pub keep_alive_s: f64,
    /// First wait before reconnecting after the broker went away [s], 0.1..=60; doubled after
    /// every failed attempt up to `reconnect_max_s`. Default 0.5.
    pub reconnect_min_s: f64,
    /// Longest wait between reconnection attempts [s], `reconnect_min_s`..=600. Default 30.
    pub reconnect_max_s: f64,
    /// Messages kept while the broker is away; when full the oldest is dropped and counted
    /// (`rsu_northbound_dropped_total{reason="queue_full"}`), 1..=1000000. Default 1000.
    pub queue_messages: usize,
    /// Fused frames published on RSM/UP per second [Hz], 0.1..=20. Default 2.
    pub rsm_rate_hz: f64,
    /// SPaT published on SPAT/UP per second and intersection [Hz], 0.1..=10. Default 1.
    pub spat_rate_hz: f64,
    /// Seconds between heartbeats on HB/UP [s], 1..=3600. Default 10.
    pub heartbeat_interval_s: f64,
    /// Largest downlink message taken [bytes], 256..=1048576; larger ones are rejected
    /// (`oversized`). Default 65536.
    pub max_downlink_bytes: usize,
    /// Road events (RSI/DOWN) kept at once, 1..=100000; more are rejected (`too_many`).
    /// Default 256.
    pub max_road_events: usize,
    /// Topic names and QoS by message: keys `rsm`, `spat`, `hb`, `info`, `rsi_down`, `rsi_ack`,
    /// `config_down`, `config_ack`. `{rsu_id}` in a name is replaced by the RSU's id. Default:
    /// the OpenV2X layout (`V2X/RSU/{rsu_id}/RSM/UP`, ...).
    pub topics: std::collections::BTreeMap<String, TopicOverride>,
}

impl Default for NorthboundConfig {
    fn default() -> Self {
        NorthboundConfig {
            enabled: false,
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: None,
            username: None,
            password_file: None,
            tls: None,
            keep_alive_s: 30.0,
            reconnect_min_s: 0.5,
            reconnect_max_s: 30.0,
            queue_messages: 1000,
            rsm_rate_hz: 2.0,
            spat_rate_hz: 1.0,
            heartbeat_interval_s: 10.0,
            max_downlink_bytes: 64 * 1024,
            max_road_events: 256,
            topics: std::collections::BTreeMap::new(),
        }
    }
}

/// TLS to the broker (PEM files). The broker's certificate must be valid for `host`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NorthboundTlsConfig {
    /// The CA the broker's certificate must chain to.
    pub ca: PathBuf,
    /// The RSU's client certificate chain (with `key`), for brokers that require one. Optional.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key. Optional.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// One topic's name and QoS, each optional (the default stays).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicOverride {
    /// The topic; `{rsu_id}` is replaced by the RSU's id.
    #[serde(default)]
    pub topic: Option<String>,
    /// MQTT QoS, 0..=2.
    #[serde(default)]
    pub qos: Option<u8>,
}

/// Where the MAP (and the lanes RSI detection works on) comes from.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapConfig {
    /// A site folder (`site.toml` with the same origin as the daemon's site, GeoJSON with lanes,
    /// crosswalks and `intersection` areas). Default: the embedded site's map when the daemon
    /// serves the embedded site; otherwise no MAP and no RSI.
    pub site_dir: Option<PathBuf>,
}

/// Traffic signal controllers and the SPaT broadcast (PROTOCOL.md §2.8).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalsConfig {
    /// SPaT datagrams per second to each vehicle of protocol version 3 [Hz], 1..=50. Default 10
    /// (the SAE J2735 SPaT rate).
    pub spat_rate_hz: f64,
    /// A controller state is broadcast for at most this long after its time, and one older
    /// than this when it arrives is refused as `late` [s], 0.1..=10. Default 1.
    pub stale_after_s: f64,
    /// Controller states per second one controller may send; more are dropped and counted
    /// [1/s], 1..=1000. Default 20.
    pub max_states_per_s: f64,
    /// The controllers the RSU accepts; any other is refused (`unknown_controller`).
    pub controllers: Vec<ControllerConfig>,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig { spat_rate_hz: 10.0, stale_after_s: 1.0, max_states_per_s: 20.0, controllers: Vec::new() }
    }
}

/// One traffic signal controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// Its id: the certificate `v2x://signal/<id>` of a controller that connects over QUIC.
    pub id: String,
    /// The intersection it controls (J2735 `IntersectionReferenceID.id`), in its SPaT.
    pub intersection_id: u16,
    /// A UDP address to receive the controller's NTCIP 1202 v03 SPaT blobs on (README, "Signal
    /// controllers"). Optional.
    #[serde(default)]
    pub ntcip_listen: Option<SocketAddr>,
    /// The controller's IP address: blobs from any other source are refused
    /// (`unknown_controller`). Optional; without it any source is taken.
    #[serde(default)]
    pub ntcip_source: Option<std::net::IpAddr>,
}

/// Certificate files (PEM).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The site CA: client certificates must chain to it.
    pub ca: PathBuf,
    /// The RSU's certificate chain.
    pub cert: PathBuf,
    /// The RSU's private key.
    pub key: PathBuf,
    /// Revocation list (hex serial numbers, one per line, or an X.509 CRL); reloaded when it
    /// changes. Optional.
    #[serde(default)]
    pub revocations: Option<PathBuf>,
    /// How often the revocation list is checked for changes [s]. Default 2.
    #[serde(default = "default_revocation_poll_s")]
    pub revocation_poll_s: f64,
}

/// The fused broadcast.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcastConfig {
    /// Heartbeat rate [Hz], 1..=50. Default 10. A vehicle gets a frame as soon as a fusion step
    /// changes what it subscribed to, and at least this often when nothing changes.
    pub rate_hz: f64,
    /// Most frames per second one vehicle gets [Hz], `rate_hz`..=50. Default 20. A change within
    /// `1 / max_rate_hz` of the vehicle's previous frame is sent when that interval ends.
    pub max_rate_hz: f64,
    /// How long a frame handed to QUIC may take to be delivered before its stream is reset [s],
    /// 0.05..=5. Default 0.5. Newer frames never cancel older ones in flight: on a link whose
    /// round trip approaches the frame interval every frame still arrives unless it is this old.
    pub frame_deadline_s: f64,
    /// Radius of an "around me" subscription with radius 0, and of the default subscription [m],
    /// 1..=10000. Default 300.
    pub default_radius_m: u32,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        BroadcastConfig { rate_hz: 10.0, max_rate_hz: 20.0, frame_deadline_s: 0.5, default_radius_m: 300 }
    }
}

/// Limits that protect the RSU from slow, broken or hostile clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most client connections at once (vehicles and sensors); more are refused. Default 256.
    pub max_connections: usize,
    /// A connection with no packet for this long is closed [s]. Default 10.
    pub idle_timeout_s: f64,
    /// A client must send its ClientHello within this time after connecting [s]. Default 5.
    pub hello_timeout_s: f64,
    /// QUIC/TLS handshakes in progress at once; an Initial beyond this is dropped unanswered
    /// (the client retransmits it) and counted as `handshake_limit`. Default 64.
    pub max_handshakes: usize,
    /// Handshakes in progress beyond which an Initial from an address not yet validated is
    /// answered with a stateless QUIC Retry instead of a handshake (0: always), counted as
    /// `retry`. Default 16.
    pub max_unvalidated_handshakes: usize,
    /// Handshakes in progress at once from one IP address; an Initial beyond this is dropped
    /// unanswered (the client retransmits it) and counted as `handshake_limit`. Default 8.
    pub max_handshakes_per_ip: usize,
    /// A QUIC/TLS handshake not finished this long after its first Initial is abandoned and
    /// counted as `handshake_timeout` [s]. Default 5.
    pub handshake_timeout_s: f64,
    /// Largest VehicleState datagram [bytes]. Default 1024.
    pub max_vehicle_state_bytes: usize,
    /// Largest SignalControllerState datagram [bytes]. Default 1150.
    pub max_signal_state_bytes: usize,
    /// Largest SensorFrame stream [bytes], at most 1048576 (the protocol's message limit).
    /// Default 1048576.
    pub max_sensor_frame_bytes: usize,
    /// Sensor frame streams a sensor may have open at once. Default 16.
    pub max_sensor_streams: u32,
    /// VehicleStates per second one vehicle may send; more are dropped and counted [1/s].
    /// Default 50.
    pub max_vehicle_states_per_s: f64,
    /// SensorFrames per second one sensor may send; more are dropped and counted [1/s].
    /// Default 100.
    pub max_sensor_frames_per_s: f64,
    /// Inputs waiting for the fusion loop; when full, new inputs are dropped and counted.
    /// Default 4096.
    pub ingest_queue: usize,
    /// Received datagrams buffered per connection before the oldest is dropped [bytes].
    /// Default 65536.
    pub datagram_buffer_bytes: usize,
    /// Messages waiting for the recorder; when full, records are dropped and counted. Default 8192.
    pub recorder_queue: usize,
    /// UDP receive buffer the QUIC socket asks the kernel for [bytes], 64 KiB..=256 MiB; the
    /// kernel caps it at `net.core.rmem_max` (a warning says so). Default 8 MiB: hundreds of
    /// vehicles' states and acknowledgments arrive in bursts.
    pub udp_recv_buffer_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 256,
            idle_timeout_s: 10.0,
            hello_timeout_s: 5.0,
            max_handshakes: 64,
            max_unvalidated_handshakes: 16,
            max_handshakes_per_ip: 8,
            handshake_timeout_s: 5.0,
            max_vehicle_state_bytes: v2x_link::MAX_VEHICLE_STATE_BYTES,
            max_signal_state_bytes: v2x_link::MAX_SIGNAL_STATE_BYTES,
            max_sensor_frame_bytes: v2x_link::MAX_SENSOR_FRAME_BYTES,
            max_sensor_streams: 16,
            max_vehicle_states_per_s: 50.0,
            max_sensor_frames_per_s: 100.0,
            ingest_queue: 4096,
            datagram_buffer_bytes: 64 * 1024,
            recorder_queue: 8192,
            udp_recv_buffer_bytes: 8 << 20,
        }
    }
}

/// Recording of everything in and out to MCAP replay logs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Whether to record. Default false.
    pub enabled: bool,
    /// Directory of the logs (created if missing). Default `recordings`.
    pub dir: PathBuf,
    /// Start a new file after this many bytes [bytes]. Default 512 MiB.
    pub rotate_bytes: u64,
    /// Start a new file after this long [s]. Default 3600.
    pub rotate_s: f64,
    /// Flush the current chunk and fsync the file this often [s]; a crash loses at most this
    /// much. Default 2.
    pub fsync_interval_s: f64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: false,
            dir: PathBuf::from("recordings"),
            rotate_bytes: 512 * 1024 * 1024,
            rotate_s: 3600.0,
            fsync_interval_s: 2.0,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether to serve metrics. Default true.
    pub enabled: bool,
    /// TCP address serving `/metrics` and `/healthz`. Default `127.0.0.1:9464`.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

/// The live rerun view (the command line's `--rerun` overrides it).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RerunConfig {
    /// Save the view to this `.rrd` file.
    pub save: Option<PathBuf>,
    /// Stream the view to a viewer at this gRPC URL, e.g.
    /// `rerun+http://127.0.0.1:9876/proxy`.
    pub connect: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4433))
}

fn default_revocation_poll_s() -> f64 {
    2.0
}

/// A loaded and validated configuration with its site resolved and paths made absolute.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The configuration (paths resolved against the file's directory).
    pub config: ServeConfig,
    /// The site.
    pub site: SiteConfig,
    /// The RSU id in use.
    pub rsu_id: String,
    /// Where the site came from.
    pub site_source: SiteOrigin,
}

/// Where a daemon's site came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteOrigin {
    /// `site_file`.
    File(PathBuf),
    /// An inline `[site]` table.
    Inline,
    /// Neither: the embedded representative Yancheng site.
    Embedded,
}

impl SiteOrigin {
    /// Whether the site is the embedded representative one.
    pub fn is_embedded(&self) -> bool {
        *self == SiteOrigin::Embedded
    }
}

impl std::fmt::Display for SiteOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SiteOrigin::File(path) => write!(f, "from {}", path.display()),
            SiteOrigin::Inline => write!(f, "inline"),
            SiteOrigin::Embedded => write!(f, "embedded representative Yancheng site, not surveyed"),
        }
    }
}

impl ServeConfig {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> anyhow::Result<LoadedConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        let config: ServeConfig = toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        config.resolve(&base).with_context(|| format!("config {}", path.display()))
    }

    /// Resolves relative paths against `base`, loads the site and validates every field.
    pub fn resolve(mut self, base: &Path) -> anyhow::Result<LoadedConfig> {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.tls.ca);
        abs(&mut self.tls.cert);
        abs(&mut self.tls.key);
        if let Some(p) = &mut self.tls.revocations {
            abs(p);
        }
        abs(&mut self.recording.dir);
        if let Some(p) = &mut self.rerun.save {
            abs(p);
        }
        if let Some(p) = &mut self.map.site_dir {
            abs(p);
        }
        if let Some(p) = &mut self.northbound.password_file {
            abs(p);
        }
        if let Some(tls) = &mut self.northbound.tls {
            abs(&mut tls.ca);
            for p in [&mut tls.cert, &mut tls.key].into_iter().flatten() {
                abs(p);
            }
        }
        let (site, site_source) = match (&mut self.site_file, &self.site) {
            (Some(_), Some(_)) => bail!("site_file and [site]: give only one of them"),
            (None, None) => (rsu_site::embedded_site_config().context("the embedded site")?, SiteOrigin::Embedded),
            (None, Some(site)) => (site.clone(), SiteOrigin::Inline),
            (Some(file), None) => {
                abs(file);
                let text = std::fs::read_to_string(&*file)
                    .with_context(|| format!("site_file: reading {}", file.display()))?;
                let site = toml::from_str(&text).with_context(|| format!("site_file: {}", file.display()))?;
                (site, SiteOrigin::File(file.clone()))
            }
        };
        site.validate().context("site")?;
        self.fusion.validate().context("fusion")?;
        self.validate()?;
        let rsu_id = match &self.rsu_id {
            Some(id) => id.clone(),
            None if !self.fusion.rsu_id.is_empty() => self.fusion.rsu_id.clone(),
            None => site.site_id.clone(),
        };
        v2x_link::identity::check_id(&rsu_id).map_err(|problem| anyhow::anyhow!("rsu_id: {rsu_id:?}: {problem}"))?;
        self.fusion.rsu_id = rsu_id.clone();
        Ok(LoadedConfig { config: self, site, rsu_id, site_source })
    }

    fn validate(&self) -> anyhow::Result<()> {
        fn range(field: &str, v: f64, lo: f64, hi: f64, unit: &str) -> anyhow::Result<()> {
            if !(v.is_finite() && v >= lo && v <= hi) {
                bail!("{field}: {v} is out of range {lo}..={hi} {unit}");
            }
            Ok(())
        }
        fn count(field: &str, v: u64, lo: u64, hi: u64) -> anyhow::Result<()> {
            if !(lo..=hi).contains(&v) {
                bail!("{field}: {v} is out of range {lo}..={hi}");
            }
            Ok(())
        }
        range("broadcast.rate_hz", self.broadcast.rate_hz, 1.0, 50.0, "Hz")?;
        range("broadcast.max_rate_hz", self.broadcast.max_rate_hz, self.broadcast.rate_hz, 50.0, "Hz")?;
        range("broadcast.frame_deadline_s", self.broadcast.frame_deadline_s, 0.05, 5.0, "s")?;
        count("broadcast.default_radius_m", u64::from(self.broadcast.default_radius_m), 1, 10_000)?;
        range("tls.revocation_poll_s", self.tls.revocation_poll_s, 0.1, 3600.0, "s")?;
        let l = &self.limits;
        count("limits.max_connections", l.max_connections as u64, 1, 100_000)?;
        range("limits.idle_timeout_s", l.idle_timeout_s, 0.5, 3600.0, "s")?;
        range("limits.hello_timeout_s", l.hello_timeout_s, 0.1, 600.0, "s")?;
        count("limits.max_handshakes", l.max_handshakes as u64, 1, 100_000)?;
        count("limits.max_unvalidated_handshakes", l.max_unvalidated_handshakes as u64, 0, l.max_handshakes as u64)?;
        count("limits.max_handshakes_per_ip", l.max_handshakes_per_ip as u64, 1, l.max_handshakes as u64)?;
        range("limits.handshake_timeout_s", l.handshake_timeout_s, 0.1, 600.0, "s")?;
        count("limits.max_vehicle_state_bytes", l.max_vehicle_state_bytes as u64, 64, 65_536)?;
        count("limits.max_signal_state_bytes", l.max_signal_state_bytes as u64, 64, 65_536)?;
        // No larger than a message may be anywhere (a recording's reader refuses more).
        count(
            "limits.max_sensor_frame_bytes",
            l.max_sensor_frame_bytes as u64,
            1024,
            v2x_proto::MAX_MESSAGE_BYTES as u64,
        )?;
        count("limits.max_sensor_streams", u64::from(l.max_sensor_streams), 1, 1024)?;
        range("limits.max_vehicle_states_per_s", l.max_vehicle_states_per_s, 1.0, 10_000.0, "1/s")?;
        range("limits.max_sensor_frames_per_s", l.max_sensor_frames_per_s, 1.0, 10_000.0, "1/s")?;
        count("limits.ingest_queue", l.ingest_queue as u64, 16, 1 << 20)?;
        count("limits.datagram_buffer_bytes", l.datagram_buffer_bytes as u64, 4096, 64 << 20)?;
        count("limits.udp_recv_buffer_bytes", l.udp_recv_buffer_bytes as u64, 64 << 10, 256 << 20)?;
        count("limits.recorder_queue", l.recorder_queue as u64, 16, 1 << 20)?;
        let sig = &self.signals;
        range("signals.spat_rate_hz", sig.spat_rate_hz, 1.0, 50.0, "Hz")?;
        range("signals.stale_after_s", sig.stale_after_s, 0.1, 10.0, "s")?;
        range("signals.max_states_per_s", sig.max_states_per_s, 1.0, 1000.0, "1/s")?;
        for (i, c) in sig.controllers.iter().enumerate() {
            v2x_link::identity::check_id(&c.id)
                .map_err(|problem| anyhow::anyhow!("signals.controllers[{i}].id: {:?}: {problem}", c.id))?;
            if sig.controllers[..i].iter().any(|o| o.id == c.id) {
                bail!("signals.controllers[{i}].id: {:?} is listed twice", c.id);
            }
            if sig.controllers[..i].iter().any(|o| o.ntcip_listen.is_some() && o.ntcip_listen == c.ntcip_listen) {
                bail!("signals.controllers[{i}].ntcip_listen: another controller listens on it");
            }
        }
        self.uper.validate()?;
        self.rsi.validate().map_err(|problem| anyhow::anyhow!(problem))?;
        let r = &self.recording;
        count("recording.rotate_bytes", r.rotate_bytes, 1 << 20, 1 << 40)?;
        range("recording.rotate_s", r.rotate_s, 1.0, 7.0 * 86_400.0, "s")?;
        range("recording.fsync_interval_s", r.fsync_interval_s, 0.05, 600.0, "s")?;
        self.validate_northbound()?;
        #[cfg(not(feature = "live-view"))]
        crate::serve::refuse_live_view_config(&self.rerun)?;
        if self.rerun.save.is_some() && self.rerun.connect.is_some() {
            bail!("rerun: give save or connect, not both");
        }
        for (field, path) in [("tls.ca", &self.tls.ca), ("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
            if !path.is_file() {
                bail!("{field}: {} is not a file", path.display());
            }
        }
        Ok(())
    }

    fn validate_northbound(&self) -> anyhow::Result<()> {
        let n = &self.northbound;
        if !n.enabled {
            return Ok(());
        }
        if n.host.is_empty() {
            bail!("northbound.host: empty");
        }
        if n.port == 0 {
            bail!("northbound.port: 0 is not a port");
        }
        if let Some(id) = &n.client_id
            && (id.is_empty() || id.len() > 64)
        {
            bail!("northbound.client_id: {id:?} must have 1..=64 characters");
        }
        let range = |field: &str, v: f64, lo: f64, hi: f64| -> anyhow::Result<()> {
            if !(v.is_finite() && v >= lo && v <= hi) {
                bail!("northbound.{field}: {v} is out of range {lo}..={hi}");
            }
            Ok(())
        };
        range("keep_alive_s", n.keep_alive_s, 5.0, 3600.0)?;
        range("reconnect_min_s", n.reconnect_min_s, 0.1, 60.0)?;
        range("reconnect_max_s", n.reconnect_max_s, n.reconnect_min_s, 600.0)?;
        range("queue_messages", n.queue_messages as f64, 1.0, 1e6)?;
        crate::serve::northbound::check_settings(&crate::serve::northbound::Settings {
            rsm_rate_hz: n.rsm_rate_hz,
            spat_rate_hz: n.spat_rate_hz,
            heartbeat_interval_s: n.heartbeat_interval_s,
            vehicle_spat_rate_hz: self.signals.spat_rate_hz,
        })
        .map_err(|e| anyhow::anyhow!("northbound.{e}"))?;
        range("max_downlink_bytes", n.max_downlink_bytes as f64, 256.0, 1_048_576.0)?;
        range("max_road_events", n.max_road_events as f64, 1.0, 100_000.0)?;
        crate::serve::northbound::Topics::resolve(&n.topics, "rsu")
            .map_err(|e| anyhow::anyhow!("northbound.topics: {e}"))?;
        if n.username.is_some() != n.password_file.is_some() {
            bail!("northbound: give username and password_file together");
        }
        if let Some(p) = &n.password_file
            && !p.is_file()
        {
            bail!("northbound.password_file: {} is not a file", p.display());
        }
        if let Some(tls) = &n.tls {
            if tls.cert.is_some() != tls.key.is_some() {
                bail!("northbound.tls: give cert and key together");
            }
            for (field, path) in [("ca", Some(&tls.ca)), ("cert", tls.cert.as_ref()), ("key", tls.key.as_ref())] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    bail!("northbound.tls.{field}: {} is not a file", path.display());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_files(dir: &Path) {
        for f in ["ca.pem", "rsu.pem", "rsu.key"] {
            std::fs::write(dir.join(f), "x").expect("write");
        }
        let site = toml::to_string(&v2x_proto::sample::site()).expect("site");
        std::fs::write(dir.join("site.toml"), site).expect("write");
    }

    fn base_config() -> String {
        "site_file = \"site.toml\"\n[tls]\nca = \"ca.pem\"\ncert = \"rsu.pem\"\nkey = \"rsu.key\"\n".to_owned()
    }

    fn load(text: &str) -> anyhow::Result<LoadedConfig> {
        let dir = tempfile::tempdir().expect("tempdir");
        write_files(dir.path());
        let path = dir.path().join("rsu.toml");
        std::fs::write(&path, text).expect("write");
        ServeConfig::load(&path)
    }

    #[test]
    fn defaults_apply_and_paths_resolve() {
        let loaded = load(&base_config()).expect("valid");
        assert_eq!(loaded.config.broadcast.rate_hz, 10.0);
        assert_eq!(loaded.config.listen.port(), 4433);
        assert!(loaded.config.tls.ca.is_absolute());
        assert_eq!(loaded.rsu_id, "yancheng-cityblock");
        assert_eq!(loaded.config.fusion.rsu_id, "yancheng-cityblock");
    }

    #[test]
    fn without_a_site_the_embedded_one_serves_and_says_so() {
        let loaded = load("[tls]\nca = \"ca.pem\"\ncert = \"rsu.pem\"\nkey = \"rsu.key\"\n").expect("valid");
        assert_eq!(loaded.site_source, SiteOrigin::Embedded);
        let embedded = rsu_site::embedded_site_config().expect("embedded site");
        assert_eq!(loaded.site, embedded);
        assert!(loaded.site.representative, "the embedded site is marked representative");
        assert!(!load(&base_config()).expect("valid").site_source.is_embedded());
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("[broadcast]\nrate_hz = 60.0\n", "broadcast.rate_hz"),
            ("[limits]\nidle_timeout_s = -1.0\n", "limits.idle_timeout_s"),
            ("[limits]\nno_such_limit = 1\n", "no_such_limit"),
            // Over the protocol's message limit: a recording of it would not read back.
            ("[limits]\nmax_sensor_frame_bytes = 2097152\n", "limits.max_sensor_frame_bytes"),
            ("[fusion]\nmax_gate_radius_m = 500.0\n", "max_gate_radius_m"),
            ("[fusion]\ngate_chi2 = -3.0\n", "gate_chi2"),
            ("[recording]\nfsync_interval_s = 0.0\n", "recording.fsync_interval_s"),
            ("rsu_id = \"bad id\"\n", "rsu_id"),
            ("[signals]\nspat_rate_hz = 0.0\n", "signals.spat_rate_hz"),
            ("[northbound]\nenabled = true\nrsm_rate_hz = 50.0\n", "northbound.rsm_rate_hz"),
            ("[northbound]\nenabled = true\nqueue_messages = 0\n", "northbound.queue_messages"),
            ("[northbound]\nenabled = true\n[northbound.topics]\nmap = { qos = 1 }\n", "northbound.topics"),
            ("[northbound]\nenabled = true\nusername = \"u\"\n", "password_file"),
            ("[northbound]\nenabled = true\n[northbound.tls]\nca = \"missing.pem\"\n", "northbound.tls.ca"),
            ("[[signals.controllers]]\nid = \"a b\"\nintersection_id = 1\n", "signals.controllers[0].id"),
            (
                "[[signals.controllers]]\nid = \"t\"\nintersection_id = 1\n[[signals.controllers]]\nid = \"t\"\nintersection_id = 2\n",
                "signals.controllers[1].id",
            ),
        ];
        for (extra, field) in cases {
            // Top-level keys must precede the tables.
            let text = if extra.starts_with('[') {
                format!("{}\n{extra}", base_config())
            } else {
                format!("{extra}{}", base_config())
            };
            let err = format!("{:#}", load(&text).expect_err(field));
            assert!(err.contains(field), "{field}: {err}");
        }
        let missing = base_config().replace("ca.pem", "missing.pem");
        let err = format!("{:#}", load(&missing).expect_err("missing file"));
        assert!(err.contains("tls.ca"), "{err}");
    }
}
