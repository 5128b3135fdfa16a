//! The `rsu` binary as a user runs it: `schema` and `log info`, on intact and damaged logs;
//! `decode` on UPER messages, binary and hex, and on bad input.

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

/// A committed log (the smallest), to damage copies of.
fn committed_log() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../replays/logs/stopped-vehicle.mcap")
}

/// `rsu log info [--recover] --json FILE`: exit code and the JSON it printed.
fn info_json(file: &std::path::Path, recover: bool) -> (Option<i32>, serde_json::Value) {
    let mut command = rsu();
    command.args(["log", "info", "--json"]);
    if recover {
        command.arg("--recover");
    }
    let out = command.arg(file).output().expect("runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{}: no JSON ({e}): stdout {:?}", file.display(), String::from_utf8_lossy(&out.stdout))
    });
    (out.status.code(), json)
}

#[test]
fn bytes_appended_to_a_log_are_damage_named_with_their_place() {
    let intact = std::fs::read(committed_log()).expect("committed log");
    let (code, json) = info_json(&committed_log(), false);
    assert_eq!(code, Some(0), "{json}");
    let messages = json["messages"].as_u64().expect("count");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, garbage) in [
        ("one-zero-byte", vec![0u8]),
        ("text", b"garbage after the end\n".to_vec()),
        ("4k-ff", vec![0xff; 4096]),
        ("64k-pattern", (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect()),
        ("300k-zeros", vec![0; 300 * 1024]),
    ] {
        let path = dir.path().join(format!("{name}.mcap"));
        std::fs::write(&path, [intact.as_slice(), garbage.as_slice()].concat()).expect("write");
        for recover in [false, true] {
            let (code, json) = info_json(&path, recover);
            assert_eq!(code, Some(2), "{name} (recover {recover}) passes as intact: {json}");
            let damage = json["damage"].as_str().expect("damage named");
            let place = format!(
                "{} bytes that are not MCAP follow the end of the MCAP file (its end magic ends at byte {})",
                garbage.len(),
                intact.len()
            );
            assert!(damage.contains(&place) && damage.contains(name), "{name}: {damage}");
            // Every message is still read.
            assert_eq!(json["messages"].as_u64(), Some(messages), "{name}");
        }
        let out = rsu().args(["log", "info"]).arg(&path).output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("DAMAGED") && !text.contains("intact\n"), "{text}");
    }
}

#[test]
fn a_zeroed_block_in_the_summary_section_is_damage() {
    let intact = std::fs::read(committed_log()).expect("committed log");
    // The footer (opcode, length, summary start, summary offset start, CRC) before the end magic.
    let footer_at = intact.len() - 37;
    let summary_start = u64::from_le_bytes(intact[footer_at + 9..footer_at + 17].try_into().expect("8 bytes"));
    let summary_start = usize::try_from(summary_start).expect("offset");
    assert!(summary_start > 0 && summary_start < footer_at, "the committed log has a summary section");
    let (_, json) = info_json(&committed_log(), false);
    let messages = json["messages"].as_u64().expect("count");
    let dir = tempfile::tempdir().expect("tempdir");
    let summary_len = footer_at - summary_start;
    let mut checked = 0;
    for block in [16usize, 64, 512] {
        for k in 0..8 {
            let at = summary_start + (summary_len.saturating_sub(block)) * k / 7;
            let end = (at + block).min(footer_at);
            let mut damaged = intact.clone();
            damaged[at..end].fill(0);
            if damaged == intact {
                continue; // already zeros there
            }
            let path = dir.path().join(format!("zeroed-{block}-{k}.mcap"));
            std::fs::write(&path, &damaged).expect("write");
            for recover in [false, true] {
                let (code, json) = info_json(&path, recover);
                assert_eq!(code, Some(2), "zeros at {at}..{end} (recover {recover}) pass as intact: {json}");
                let damage = json["damage"].as_str().expect("damage named");
                assert!(damage.contains(&format!("zeroed-{block}-{k}.mcap")), "{damage}");
                assert!(damage.contains("summary section"), "zeros at {at}..{end}: {damage}");
                // The damage is after every message: all of them are read.
                assert_eq!(json["messages"].as_u64(), Some(messages), "zeros at {at}..{end}: {json}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} damaged copies");
}

#[test]
fn damage_in_the_first_record_still_prints_json() {
    let intact = std::fs::read(committed_log()).expect("committed log");
    let dir = tempfile::tempdir().expect("tempdir");
    // The header record follows the 8-byte magic; then the meta chunk.
    for (name, range) in [("header", 8..40), ("meta-chunk", 60..200), ("magic", 0..8)] {
        let mut damaged = intact.clone();
        damaged[range.clone()].iter_mut().for_each(|b| *b ^= 0xa5);
        let path = dir.path().join(format!("{name}.mcap"));
        std::fs::write(&path, &damaged).expect("write");
        for recover in [false, true] {
            let (code, json) = info_json(&path, recover);
            assert_eq!(code, Some(2), "{name}");
            assert_eq!(json["messages"].as_u64(), Some(0), "{name}: {json}");
            let damage = json["damage"].as_str().expect("damage named");
            assert!(damage.contains(&format!("{name}.mcap")), "{name}: {damage}");
            assert!(json["file"].as_str().is_some_and(|f| f.ends_with(&format!("{name}.mcap"))));
        }
        // In text, an error naming the file.
        let out = rsu().args(["log", "info", "--recover"]).arg(&path).output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{name}.mcap")));
    }
}

#[test]
fn decode_prints_a_uper_message_as_json_and_refuses_bad_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = sample::vehicle_state();
    let enu = rsu_fusion::EnuFrame::new(state.position);
    let bsm = v2x_uper::convert::bsm(&state, &enu, &mut v2x_uper::convert::Clamps::default());
    let bytes = v2x_uper::encode_msg_frame(&v2x_uper::msg::MessageFrame::BsmFrame(bsm)).expect("encodes");
    let file = dir.path().join("bsm.uper");
    std::fs::write(&file, &bytes).expect("written");
    let out = rsu().arg("decode").arg(&file).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["bsmFrame"]["msgCnt"], 12);
    assert_eq!(json["bsmFrame"]["pos"]["lat"], 332_012_345);
    assert_eq!(json["bsmFrame"]["speed"], 555);
    // The same as hex text on standard input.
    let hex: String = bytes.iter().map(|b| format!("{b:02X} ")).collect();
    let mut child = rsu()
        .args(["decode", "--hex", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(hex.as_bytes()).expect("written");
    let out = child.wait_with_output().expect("ends");
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("JSON"), json);
    // Bad input: an error message and exit code 2, no panic.
    let bad = dir.path().join("bad.uper");
    for (content, needle) in
        [(&b"\xff\xff\xff"[..], "not a T/CSAE 53-2020"), (&bytes[..bytes.len() / 2], "not a T/CSAE 53-2020")]
    {
        std::fs::write(&bad, content).expect("written");
        let out = rsu().arg("decode").arg(&bad).output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle) && !stderr.contains("panicked"), "{stderr}");
    }
    let out = rsu().args(["decode", "--hex"]).arg(&file).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "binary bytes are not hex text");
}
