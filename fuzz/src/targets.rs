//! The fuzz targets: each takes one input (bytes) and runs it through a decoder or loader of
//! untrusted input as the daemon and the tools do. A target panics only when the code under test
//! breaks a promise: a panic inside it, decoders that disagree, a reader that yields more items
//! than its file has bytes (a loop). Errors are the expected outcome of most inputs.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rsu_fusion::{RoadsideFrame, SensorFrame, VehicleState};
use v2x_proto::domain::{
    ClientControl, ClientHello, GroundTruthFrame, ReplayMeta, RoadsideDatagram, ServerControl, ServerHello,
    SignalControllerState,
};
use v2x_proto::{MAX_MESSAGE_BYTES, decode, decode_outcome, decode_reference, wire};
use v2x_replays::import_dair::DairOptions;
use v2x_replays::{OpenOptions, ReadMode, ReadOrder, ReplayReader};

use crate::seeds::FILE_SEPARATOR;

/// Every `v2x.v1` message type decoded from `bytes`; the hand-written decoders of sensor frames
/// and ground truth must agree with prost and the conversion (the same check as
/// `proto/tests/fuzz_decode.rs`, on mutated real messages).
pub fn wire_messages(bytes: &[u8]) {
    let _ = decode::<VehicleState>(bytes);
    let _ = decode::<RoadsideFrame>(bytes);
    let _ = decode::<ReplayMeta>(bytes);
    let _ = decode::<ClientHello>(bytes);
    let _ = decode::<ServerHello>(bytes);
    let _ = decode::<ClientControl>(bytes);
    let _ = decode::<SignalControllerState>(bytes);
    let _ = decode::<RoadsideDatagram>(bytes);
    let _ = decode::<ServerControl>(bytes);
    if bytes.len() <= MAX_MESSAGE_BYTES {
        let fast = decode::<SensorFrame>(bytes);
        let reference = decode_reference::<wire::SensorFrame, SensorFrame>(bytes);
        assert_eq!(decode_outcome(&fast), decode_outcome(&reference), "the SensorFrame decoders disagree");
        let fast = decode::<GroundTruthFrame>(bytes);
        let reference = decode_reference::<wire::GroundTruthFrame, GroundTruthFrame>(bytes);
        assert_eq!(decode_outcome(&fast), decode_outcome(&reference), "the GroundTruthFrame decoders disagree");
    }
}

/// An NTCIP 1202 SPaT blob through the daemon's parser: what parses is consistent and within
/// the blob's 32 signal groups.
pub fn ntcip_blob(bytes: &[u8]) {
    let arrival = rsu_fusion::Timestamp::from_nanos(1_795_000_000_000_000_000);
    if let Ok(blob) = rsu::ntcip::parse(bytes, arrival) {
        assert!(blob.movements.len() <= 2 * rsu::ntcip::PHASES, "more signal groups than the blob has");
        for m in &blob.movements {
            assert!(m.check_order().is_ok(), "an inconsistent movement parsed: {m:?}");
        }
    }
}

/// A T/CSAE 53-2020 UPER `MessageFrame` as `rsu decode` reads it: what decodes encodes again to
/// bytes that decode to the same frame, and renders as JSON without panic.
pub fn uper_frame(bytes: &[u8]) {
    if let Ok(frame) = v2x_uper::decode_msg_frame(bytes) {
        let again = v2x_uper::encode_msg_frame(&frame).expect("a decoded frame encodes");
        let back = v2x_uper::decode_msg_frame(&again).expect("a re-encoded frame decodes");
        assert_eq!(back, frame, "a frame changed in a round trip");
        let _ = v2x_uper::to_json(&frame);
    }
}

/// ROS 2 CDR bytes as each message the Autoware importer decodes: what decodes re-encodes to
/// bytes that decode and re-encode to the same bytes (a stable round trip, whatever the floats).
pub fn autoware_cdr(bytes: &[u8]) {
    use v2x_replays::import_autoware::{decode_cdr, encode_cdr, ros};
    fn stable<T: serde::Serialize + serde::de::DeserializeOwned>(bytes: &[u8]) {
        let Ok(message) = decode_cdr::<T>(bytes) else { return };
        let once = encode_cdr(&message).expect("what decodes encodes");
        let again: T = decode_cdr(&once).expect("what we encode decodes");
        assert_eq!(encode_cdr(&again).expect("encodes"), once, "the CDR round trip is not stable");
    }
    stable::<ros::DetectedObjects>(bytes);
    stable::<ros::TrackedObjects>(bytes);
    stable::<ros::TfMessage>(bytes);
}

/// Runs a future that never waits (reads from memory) to its end.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading from memory never waits"),
    }
}

/// `bytes` read as a control stream (varint-length-delimited messages) with the daemon's limit
/// and with a small one, every message decoded as what a control stream carries.
pub fn control_stream(bytes: &[u8]) {
    for max in [MAX_MESSAGE_BYTES, 64] {
        let mut rest = bytes;
        loop {
            let before = rest.len();
            match now(v2x_link::framing::read_message(&mut rest, max)) {
                Ok(Some(body)) => {
                    assert!(body.len() <= max, "a message of {} bytes passed the limit of {max}", body.len());
                    assert!(rest.len() < before, "a message read consumed nothing");
                    let _ = decode::<ClientHello>(&body);
                    let _ = decode::<ClientControl>(&body);
                    let _ = decode::<ServerHello>(&body);
                    let _ = decode::<ServerControl>(&body);
                    let _ = decode::<VehicleState>(&body);
                    let _ = decode::<SensorFrame>(&body);
                    let _ = decode::<RoadsideFrame>(&body);
                }
                Ok(None) => {
                    assert!(rest.is_empty(), "a clean end with {} bytes left", rest.len());
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

/// A folder for the targets that read files, removed when dropped. The last input of a
/// file-based target stays there until the next one: after an abort (an allocation over the
/// fuzz binary's limit) it is the input that caused it.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch folder.
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::Builder::new().prefix("v2x-fuzz-").tempdir().expect("a scratch folder") }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `bytes` to `name` (creating its folders) and returns its path.
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("scratch folder");
        }
        std::fs::write(&path, bytes).expect("scratch file");
        path
    }

    /// An empty folder `name` (emptied if it existed).
    fn fresh_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("scratch folder");
        }
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// `bytes` read as a replay log in `mode` (log-time order for inputs of even length, file order
/// for odd ones): the metadata, then every item. The reader may not yield more items than the
/// file has bytes (that would be a loop).
pub fn replay_log(scratch: &Scratch, bytes: &[u8], mode: ReadMode) {
    let path = scratch.write("log.mcap", bytes);
    let order = if bytes.len().is_multiple_of(2) { ReadOrder::LogTime } else { ReadOrder::File };
    let Ok(reader) = ReplayReader::open_with(&path, OpenOptions { mode, order, ..OpenOptions::default() }) else {
        return;
    };
    let mut items = 0usize;
    for _ in reader {
        items += 1;
        assert!(items <= bytes.len(), "more items than the {} bytes of the file", bytes.len());
    }
}

/// The parts of a multi-file input.
fn files(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|b| *b == FILE_SEPARATOR).collect()
}

/// `bytes` as a site folder (`site.toml`, `signal_plan.toml`, then GeoJSON maps) loaded as
/// `rsu serve --site DIR` does; a loaded site's signal plan is asked for its states.
pub fn site_folder(scratch: &Scratch, bytes: &[u8]) {
    let dir = scratch.fresh_dir("site");
    for (i, part) in files(bytes).into_iter().enumerate() {
        let name = match i {
            0 => "site.toml".to_owned(),
            1 => "signal_plan.toml".to_owned(),
            n => format!("map-{n}.geojson"),
        };
        scratch.write(&format!("site/{name}"), part);
    }
    if let Ok(model) = rsu_site::SiteModel::load(&dir) {
        for t_s in [0.0, 17.5, 1e9] {
            let _ = model.signal_plan.states(t_s);
        }
    }
}

/// `bytes` as the daemon's config file (`rsu serve --config`), loaded and validated.
pub fn serve_config(scratch: &Scratch, bytes: &[u8]) {
    let path = scratch.write("rsu.toml", bytes);
    let _ = rsu::config::ServeConfig::load(&path);
}

/// `bytes` as a log's validation criteria (`<log>.criteria.toml`).
pub fn criteria(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = v2x_replays::criteria::parse(text, "fuzz input");
    }
}

/// `bytes` as the inputs of `rsu-lab route validate`: a route (GeoJSON in WGS84, into the
/// embedded site's frame, then cut into segments and located against) and route criteria.
pub fn route_input(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let frame = rsu_fusion::EnuFrame::new(rsu_fusion::Wgs84::new(33.1995, 120.4862, 4.0));
    if let Ok(route) = v2x_replays::route::Route::from_geojson(text, "fuzz input", "fuzz", &frame) {
        let route = route.indexed_for(3.0);
        let segments = route.segments(10.0);
        if let Some(last) = segments.last() {
            let _ = route.segment_points(last);
        }
        let _ = route.locate(&route.point_at(route.length_m() * 0.5, 1.0), 3.0);
    }
    let _ = v2x_replays::route::criteria::RouteCriteria::parse(text, "fuzz input");
}

/// `bytes` as a DAIR-V2X infrastructure sequence (`data_info.json`, then each frame's label
/// and calibration file) imported into a replay log.
pub fn dair_import(scratch: &Scratch, bytes: &[u8]) {
    let dir = scratch.fresh_dir("dair");
    let parts = files(bytes);
    for (i, part) in parts.iter().enumerate() {
        let name = match i {
            0 => "data_info.json".to_owned(),
            n if n % 2 == 1 => format!("label/virtuallidar/{}.json", (n - 1) / 2),
            n => format!("calib/virtuallidar_to_world/{}.json", (n - 2) / 2),
        };
        scratch.write(&format!("dair/{name}"), part);
    }
    let out = scratch.path().join("dair.mcap");
    let _ = v2x_replays::import_dair::import_dair(&dir, &out, &DairOptions::default());
}

/// `bytes` as an OpenLABEL file imported into a replay log.
pub fn openlabel_import(scratch: &Scratch, bytes: &[u8]) {
    let path = scratch.write("scene.json", bytes);
    let out = scratch.path().join("openlabel.mcap");
    let _ = v2x_replays::import_openlabel::import_openlabel(&path, &out, &DairOptions::default());
}
