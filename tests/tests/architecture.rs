//! The dependency rules of ARCHITECTURE.md, checked against what cargo actually resolves: the
//! daemon links neither the simulator nor (without its `live-view` feature) rerun; the fusion
//! core stays sans-IO; only the tools and the end-to-end tests depend on the daemon crate; only
//! the protocol crate handles protobuf.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(e2e_tests::workspace_root());
    cmd
}

/// Every package in `package`'s normal (non-dev, non-build) dependency tree, with `features`.
fn normal_tree(package: &str, features: &[&str]) -> BTreeSet<String> {
    let mut cmd = cargo();
    cmd.args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "-f", "{p}", "-p", package]);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Each workspace package's direct dependencies on other packages (all kinds), from metadata.
fn workspace_dependencies() -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let out = cargo()
        .args(["metadata", "--locked", "--offline", "--no-deps", "--format-version", "1"])
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = doc["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|d| {
                    let name = d["name"].as_str().expect("name").to_owned();
                    (name, d["kind"].as_str().map(str::to_owned))
                })
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn the_daemon_links_neither_the_simulator_nor_rerun() {
    let daemon = normal_tree("rsu", &[]);
    assert!(daemon.contains("quinn") && daemon.contains("rsu-fusion"), "the daemon's tree: {daemon:?}");
    for forbidden in ["vehicle-sim", "rerun", "rsu-lab", "indicatif", "rayon"] {
        assert!(!daemon.contains(forbidden), "rsu (default features) depends on {forbidden}");
    }
    let with_view = normal_tree("rsu", &["live-view"]);
    assert!(with_view.contains("rerun"), "the live-view feature brings rerun");
    assert!(!with_view.contains("vehicle-sim"), "the live view needs no simulator");
}

#[test]
fn the_fusion_core_stays_sans_io() {
    let core = normal_tree("rsu-fusion", &[]);
    for forbidden in [
        "tokio",
        "quinn",
        "rerun",
        "mcap",
        "prost",
        "v2x-proto",
        "v2x-replays",
        "v2x-link",
        "rsu-site",
        "vehicle-sim",
        "serde_json",
        "toml",
        "rand",
    ] {
        assert!(!core.contains(forbidden), "rsu-fusion depends on {forbidden}: {core:?}");
    }
    let site = normal_tree("rsu-site", &[]);
    for forbidden in ["tokio", "quinn", "rerun", "mcap", "vehicle-sim", "v2x-replays"] {
        assert!(!site.contains(forbidden), "rsu-site depends on {forbidden}");
    }
}

#[test]
fn only_the_tools_and_the_tests_depend_on_the_daemon() {
    let deps = workspace_dependencies();
    let dependents: BTreeSet<&str> = deps
        .iter()
        .filter(|(_, d)| d.iter().any(|(name, _)| name == "rsu"))
        .map(|(package, _)| package.as_str())
        .collect();
    // The fuzz targets load the daemon's config as `rsu serve` does.
    assert_eq!(dependents, BTreeSet::from(["e2e-tests", "rsu-lab", "v2x-fuzz"]));
    // And nothing depends on the tools.
    assert!(deps.values().all(|d| d.iter().all(|(name, _)| name != "rsu-lab")));
    // The fusion core depends on none of our crates, not even for its tests.
    let ours: BTreeSet<&str> = deps.keys().map(String::as_str).collect();
    let fusion_ours: Vec<&str> =
        deps["rsu-fusion"].iter().map(|(n, _)| n.as_str()).filter(|n| ours.contains(n)).collect();
    assert!(fusion_ours.is_empty(), "rsu-fusion depends on {fusion_ours:?}");
}

#[test]
fn only_the_protocol_crate_handles_protobuf() {
    let deps = workspace_dependencies();
    let users: BTreeSet<&str> = deps
        .iter()
        .filter(|(_, d)| d.iter().any(|(name, kind)| name.starts_with("prost") && kind.is_none()))
        .map(|(package, _)| package.as_str())
        .collect();
    assert_eq!(users, BTreeSet::from(["v2x-proto"]), "crates with a normal dependency on prost");
}
