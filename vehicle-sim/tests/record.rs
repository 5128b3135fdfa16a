//! Recording tests: the same arguments give byte-identical logs, a log decodes with the replay
//! reader into meta, every sensor's frames, ground truth and self-reports, and the recording
//! options change the ground-truth rate and thin the crowd.

use std::collections::BTreeSet;
use std::sync::Arc;

use rsu_site::SiteModel;
use v2x_replays::{ReplayBody, ReplayReader};
use vehicle_sim::record::{RecordError, RecordOptions, record, record_with};
use vehicle_sim::scenario::ScenarioOptions;

#[test]
fn recording_twice_gives_identical_bytes_and_the_log_decodes() {
    let site = Arc::new(SiteModel::embedded().expect("site loads"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (dir.path().join("a.mcap"), dir.path().join("b.mcap"), dir.path().join("c.mcap"));
    record(site.clone(), "bus-pedestrian", 7, 3.0, &a).expect("records");
    record(site.clone(), "bus-pedestrian", 7, 3.0, &b).expect("records");
    record(site.clone(), "bus-pedestrian", 8, 3.0, &c).expect("records");
    let bytes = std::fs::read(&a).expect("read");
    assert_eq!(bytes, std::fs::read(&b).expect("read"), "same arguments, same bytes");
    assert_ne!(bytes, std::fs::read(&c).expect("read"), "another seed, other noise");

    let reader = ReplayReader::open(&a).expect("opens");
    assert_eq!(reader.meta().scenario, "bus-pedestrian");
    assert_eq!(reader.meta().seed, 7);
    assert!(reader.meta().site.representative);
    let (mut sensors, mut truth, mut vehicles, mut last_time) = (BTreeSet::new(), 0, 0, None);
    for message in reader {
        let message = message.expect("decodes");
        assert!(last_time.is_none_or(|t| message.log_time >= t), "log-time order");
        last_time = Some(message.log_time);
        match message.body {
            ReplayBody::Sensor(f) => {
                assert_eq!(f.capture_time, message.log_time);
                sensors.insert(f.sensor_id.clone());
            }
            ReplayBody::GroundTruth(g) => {
                truth += 1;
                assert!(g.objects.iter().any(|o| o.v2x_id.as_deref() == Some("cv-bus-ped")));
                assert_eq!(g.signals.len(), 2);
            }
            ReplayBody::Vehicle(v) => {
                vehicles += 1;
                assert_eq!(v.vehicle_id, "cv-bus-ped");
            }
            ReplayBody::Meta(_)
            | ReplayBody::Roadside(_)
            | ReplayBody::Received(_)
            | ReplayBody::Signal(_)
            | ReplayBody::Spat(_)
            | ReplayBody::Rsi(_) => {}
        }
    }
    assert_eq!(sensors.len(), site.config.sensors.len());
    assert_eq!(truth, 61, "20 Hz over 3 s");
    assert_eq!(vehicles, 31, "10 Hz over 3 s");
}

#[test]
fn options_set_the_truth_rate_and_cap_the_participants() {
    let site = Arc::new(SiteModel::embedded().expect("site loads"));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dense.mcap");
    let options = RecordOptions { truth_hz: 10, scenario: ScenarioOptions { max_participants: Some(150) } };
    let summary = record_with(site.clone(), "congested-intersection", 1, 2.0, &out, &options).expect("records");
    assert_eq!(summary.truth_frames, 21, "10 Hz over 2 s");
    // Thinned from more than 300 to 150, and the spawners keep it there.
    assert!(summary.min_participants >= 140 && summary.max_participants <= 150, "{summary:?}");

    let reader = ReplayReader::open(&out).expect("opens");
    assert!(
        reader.meta().description.ends_with("Recorded with at most 150 participants at once. Ground truth at 10 Hz.")
    );
    let truth_times: Vec<i64> = reader
        .filter_map(|m| match m.expect("decodes").body {
            ReplayBody::GroundTruth(g) => Some(g.time.as_nanos()),
            _ => None,
        })
        .collect();
    assert_eq!(truth_times.len(), 21);
    assert!(truth_times.windows(2).all(|w| w[1] - w[0] == 100_000_000), "every 100 ms");

    // Rates that are no whole number of 10 ms steps are refused before anything is written.
    for truth_hz in [0, 3, 30, 200] {
        let bad = RecordOptions { truth_hz, ..RecordOptions::default() };
        let result = record_with(site.clone(), "bus-pedestrian", 1, 1.0, &dir.path().join("bad.mcap"), &bad);
        assert!(matches!(result, Err(RecordError::TruthRate(hz)) if hz == truth_hz), "{truth_hz} Hz: {result:?}");
    }
}
