//! Recording tests: the same arguments give byte-identical logs, and a log decodes with the
//! replay reader into meta, every sensor's frames, ground truth and self-reports.

use std::collections::BTreeSet;
use std::sync::Arc;

use v2x_replays::{ReplayBody, ReplayReader};
use vehicle_sim::record::record;
use vehicle_sim::site::{SiteModel, default_site_dir};

#[test]
fn recording_twice_gives_identical_bytes_and_the_log_decodes() {
    let site = Arc::new(SiteModel::load(&default_site_dir()).expect("site loads"));
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
                sensors.insert(f.sensor_id);
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
            ReplayBody::Meta(_) | ReplayBody::Roadside(_) => {}
        }
    }
    assert_eq!(sensors.len(), site.config.sensors.len());
    assert_eq!(truth, 61, "20 Hz over 3 s");
    assert_eq!(vehicles, 31, "10 Hz over 3 s");
}
