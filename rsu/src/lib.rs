//! The roadside-unit daemon as a library, so its integration tests can run it in-process on
//! `127.0.0.1:0`. The binary (`src/main.rs`) is a thin command line over it.
//!
//! - [`config`]: the `rsu serve` configuration file.
//! - [`serve`]: the daemon: QUIC endpoint, event loop, connection tasks, counters.
//! - [`recorder`]: MCAP recording with rotation and scheduled fsync.
//! - [`metrics`]: Prometheus `/metrics` and `/healthz`.
//! - [`live_view`]: the live rerun view.
//! - [`certs`]: `rsu certs init`, the development PKI.

pub mod certs;
pub mod config;
pub mod live_view;
pub mod metrics;
pub mod recorder;
pub mod serve;
