//! The demo's RSU: a real daemon child process on 127.0.0.1 (this same executable's hidden
//! `serve` subcommand, which runs the `rsu` daemon library exactly as `rsu serve` does) with a
//! port of its own, mutual TLS from the demo's development PKI, recording on, metrics off. It
//! is stopped with SIGTERM (the daemon's clean shutdown: sessions closed, recording finished)
//! and killed if it is dropped while still running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use v2x_link::pki::DevPkiFiles;

use rsu::config::{MetricsConfig, RecordingConfig, ServeConfig, TlsConfig};

/// A running daemon.
pub struct Daemon {
    child: Child,
    /// Its QUIC address.
    pub addr: SocketAddr,
    recordings: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Writes `dir/rsu.toml` for site file `site_file` and `pki`, starts the daemon on it and
    /// waits (up to 30 s) until it listens.
    /// Every path must be absolute (the daemon resolves relative ones against its configuration
    /// file's folder).
    pub fn start(dir: &Path, site_file: &Path, pki: &DevPkiFiles, rsu_id: &str) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let recordings = dir.join("recordings");
        let config = ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rsu_id: Some(rsu_id.to_owned()),
            site_file: Some(site_file.to_owned()),
            site: None,
            fusion: Default::default(),
            tls: TlsConfig {
                ca: pki.ca_cert.clone(),
                cert: pki.server.cert.clone(),
                key: pki.server.key.clone(),
                revocations: Some(pki.revocations.clone()),
                revocation_poll_s: 2.0,
            },
            broadcast: Default::default(),
            limits: Default::default(),
            recording: RecordingConfig {
                enabled: true,
                dir: recordings.clone(),
                fsync_interval_s: 1.0,
                ..RecordingConfig::default()
            },
            metrics: MetricsConfig { enabled: false, ..MetricsConfig::default() },
            rerun: Default::default(),
            signals: Default::default(),
            uper: Default::default(),
            map: Default::default(),
            rsi: Default::default(),
            northbound: Default::default(),
        };
        let config_path = dir.join("rsu.toml");
        let text = toml::to_string(&config).context("serialising the daemon configuration")?;
        std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;
        let log = dir.join("rsu.log");
        let stderr = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let exe = std::env::current_exe().context("finding the rsu executable")?;
        let mut child = Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stdout = child.stdout.take().context("daemon stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("rsu serve listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut daemon = Daemon { child, addr: SocketAddr::from(([127, 0, 0, 1], 0)), recordings, log };
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = daemon.child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
                let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
                bail!("the RSU daemon exited ({status}) before listening: {}", log.trim())
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                bail!("the RSU daemon did not start listening within 30 s; see {}", daemon.log.display())
            }
        };
        daemon.addr = addr.parse().with_context(|| format!("daemon address {addr:?}"))?;
        Ok(daemon)
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Stops it with SIGTERM, waits (up to 15 s) for a clean exit and returns its recordings.
    pub fn stop(mut self) -> anyhow::Result<Vec<PathBuf>> {
        let pid = i32::try_from(self.child.id()).context("daemon pid")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
            .context("signalling the daemon")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for the daemon")? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("the RSU daemon did not stop within 15 s of SIGTERM; see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            bail!("the RSU daemon exited with {status}; see {}", self.log.display());
        }
        rsu::recorder::recordings_in(&self.recordings).with_context(|| format!("listing {}", self.recordings.display()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
