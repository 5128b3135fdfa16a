//! Helpers shared by the `rsu-lab` end-to-end tests: the committed logs, running the binary and
//! reading what it said.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A committed log (or its criteria) in `replays/logs`.
pub fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../replays/logs").join(name)
}

/// Runs `rsu-lab` with `args` to its end.
pub fn lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rsu-lab")).args(args).output().expect("rsu-lab runs")
}

/// What a run printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
