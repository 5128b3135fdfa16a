//! Fuzzing on stable Rust: targets for every decoder and loader of untrusted input (the
//! `v2x.v1` messages, control-stream framing, the replay-log reader in strict and recover mode,
//! the site, daemon-config, criteria and route loaders, the DAIR-V2X and OpenLABEL importers), their
//! seed corpus and the mutations applied to it.
//!
//! `tests/fuzz.rs` drives each target with bolero's random engine under `cargo test` (a short
//! smoke run by default; `scripts/fuzz` sets the execution count or time of a long run) and
//! replays the crash regressions of `fuzz/regressions/`.
//!
//! - [`mutate`]: the mutations of a seed the generator draws.
//! - [`seeds`]: the corpus, from the committed logs, site, configs and fixtures.
//! - [`targets`]: one function per target.

pub mod mutate;
pub mod seeds;
pub mod targets;
