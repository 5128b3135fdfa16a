//! End-to-end tests across the stack with real processes on 127.0.0.1 (in `tests/`): the
//! `rsu-lab demo` run with a real daemon, simulated sensors and connected cars; the binaries run
//! as installed, from an empty folder with no repository around them; the crates' dependency
//! rules. This library holds what those tests share.

use std::path::PathBuf;

/// A binary of the workspace (`rsu`, `rsu-lab`, `vehicle-sim`), next to the running test's
/// executable: `cargo test --workspace` builds every binary of the workspace.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: run `cargo test --workspace` (it builds every binary)", bin.display());
    bin
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("workspace root")
}
