//! The roadside-unit daemon as a library, so its integration tests can run it in-process on
//! `127.0.0.1:0` and `rsu-lab demo` can start it as a child process of its own. The `rsu` binary
//! (`src/main.rs`) is a thin command line over it.
//!
//! - [`config`]: the `rsu serve` configuration file.
//! - [`serve`]: the daemon: QUIC endpoint, event loop, connection tasks, counters.
//! - [`recorder`]: MCAP recording with rotation and scheduled fsync.
//! - [`metrics`]: Prometheus `/metrics` and `/healthz`.
//! - [`live_view`]: the live rerun view (feature `live-view`; without it the daemon does not link
//!   rerun, and asking for a live view is a configuration error).
//! - [`certs`]: `rsu certs init`, the development PKI.
//! - [`log_info`]: `log info`, a summary of a replay log or recording.
//! - [`ntcip`]: the parser of the NTCIP 1202 v03 SPaT blob signal controllers push over UDP.
//! - [`uper_decode`]: `rsu decode`, a T/CSAE 53-2020 UPER message as JSON.

pub mod certs;
pub mod config;
#[cfg(feature = "live-view")]
pub mod live_view;
pub mod log_info;
pub mod metrics;
pub mod ntcip;
pub mod recorder;
pub mod serve;
pub mod uper_decode;

use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `serve` (shared by `rsu serve` and the daemon `rsu-lab demo` starts).
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Live view: `save FILE.rrd` or `connect ADDR` (overrides the config's [rerun]; needs a
    /// build with the `live-view` feature).
    #[arg(long, num_args = 2, value_names = ["MODE", "TARGET"])]
    pub rerun: Option<Vec<String>>,
    /// Load and check the configuration (site, certificates, limits), print what would run, and
    /// exit without serving (for `ExecStartPre=` and after editing the file).
    #[arg(long)]
    pub check: bool,
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// Runs `serve`: loads the configuration and runs the daemon until SIGINT or SIGTERM (or, with
/// `--check`, only checks the configuration).
pub fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let loaded = config::ServeConfig::load(&args.config)?;
    let rerun = match &args.rerun {
        Some(words) => Some(serve::LiveTarget::parse(words)?),
        None => None,
    };
    if args.check {
        serve::server_crypto(&loaded.config.tls)?;
        let northbound = &loaded.config.northbound;
        if let Some(tls) = northbound.tls.as_ref().filter(|_| northbound.enabled) {
            serve::northbound::client_tls(tls)?;
        }
        println!(
            "configuration {} is valid: rsu {} on {} (UDP), site {} with {} sensors ({}), certificates load; recording {}; northbound {}",
            args.config.display(),
            loaded.rsu_id,
            loaded.config.listen,
            loaded.site.site_id,
            loaded.site.sensors.len(),
            loaded.site_source,
            if loaded.config.recording.enabled {
                format!("to {}", loaded.config.recording.dir.display())
            } else {
                "off".to_owned()
            },
            if northbound.enabled {
                let scheme = if northbound.tls.is_some() { "mqtts" } else { "mqtt" };
                format!("to {scheme}://{}:{}", northbound.host, northbound.port)
            } else {
                "off".to_owned()
            },
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve::serve(loaded, rerun))?;
    Ok(())
}
