//! The `rsu` binary as a user runs it: `schema` and `log info`, on intact and damaged logs.

use std::process::Command;

use prost::Message;
use rsu_fusion::Timestamp;
use v2x_proto::domain::{REPLAY_FORMAT_VERSION, ReplayMeta};
use v2x_proto::sample;
use v2x_replays::ReplayWriter;

fn rsu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rsu"))
}

#[test]
fn schema_writes_a_descriptor_set_with_the_protocol_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("v2x.fds");
    let status = rsu().args(["schema", "--out"]).arg(&out).status().expect("runs");
    assert!(status.success());
    let fds = prost_types::FileDescriptorSet::decode(std::fs::read(&out).expect("written").as_slice()).expect("valid");
    let names: Vec<String> = fds
        .file
        .iter()
        .flat_map(|f| f.message_type.iter().map(move |m| format!("{}.{}", f.package(), m.name())))
        .collect();
    for needed in ["v2x.v1.SensorFrame", "v2x.v1.RoadsideFrame", "v2x.v1.VehicleState"] {
        assert!(names.iter().any(|n| n == needed), "{needed} missing");
    }
}

#[test]
fn log_info_summarises_intact_logs_and_flags_damaged_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.mcap");
    let meta = ReplayMeta {
        format_version: REPLAY_FORMAT_VERSION,
        software_version: "cli-test".into(),
        scenario: "cli".into(),
        description: String::new(),
        seed: 1,
        site: sample::site(),
        rsu_ids: vec![],
        start_time: Timestamp::from_nanos(1_795_000_000_000_000_000),
        end_time: Timestamp::EPOCH,
        truth_ids_per_frame: false,
    };
    let mut w = ReplayWriter::create(&path, &meta).expect("create");
    for k in 0..3000 {
        let mut f = sample::lidar_frame();
        f.sequence = k;
        f.capture_time = meta.start_time.add_nanos(k as i64 * 100_000_000);
        w.write_sensor_frame(&f).expect("write");
    }
    w.finish().expect("finish");

    let out = rsu().args(["log", "info", "--json"]).arg(&path).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(summary["topics"]["/sensors/lidar-ne"]["messages"], 3000);
    assert!(summary["damage"].is_null());

    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    let out = rsu().args(["log", "info"]).arg(&cut).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DAMAGED") && text.contains("cut.mcap"), "{text}");

    let out = rsu().args(["log", "info", "--recover", "--json"]).arg(&cut).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let recovered = summary["topics"]["/sensors/lidar-ne"]["messages"].as_u64().expect("count");
    assert!(recovered > 0 && recovered < 3000, "recovered {recovered}");

    let missing = rsu().args(["log", "info"]).arg(dir.path().join("nope.mcap")).output().expect("runs");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.mcap"));
}
