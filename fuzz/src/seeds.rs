//! The seed corpus of every target, built from what the repository commits: the messages inside
//! the replay logs (`replays/logs/*.mcap`), small logs rewritten from them, the logs' criteria,
//! the Yancheng site folder, the packaged daemon config and the DAIR-V2X / OpenLABEL fixtures of
//! `fuzz/seeds/`. Multi-file inputs (a site folder, a DAIR-V2X sequence) are one byte string of
//! the files joined by [`FILE_SEPARATOR`], so a mutation can also merge, drop or split files.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use rsu::ntcip::{BlobBuilder, Colour};
use rsu_fusion::Timestamp;
use v2x_proto::domain::{
    ClientControl, ClientHello, MovementPhase, MovementState, RoadsideDatagram, Role, SignalControllerState, Spat,
    Subscription,
};
use v2x_replays::{OpenOptions, ReadMode, ReadOrder, ReplayBody, ReplayMessage, ReplayReader, ReplayWriter, Topic};

/// Separates the files of a multi-file input.
pub const FILE_SEPARATOR: u8 = 0;

/// Messages of each topic taken from each committed log for the message seeds.
const MESSAGES_PER_TOPIC: usize = 4;

/// Messages (after the metadata) in each small log rewritten from a committed log.
const MESSAGES_PER_SMALL_LOG: usize = 24;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_owned).unwrap_or_default()
}

/// The committed replay logs, in name order.
pub fn committed_logs() -> Vec<PathBuf> {
    files_with_extension(&repo_root().join("replays/logs"), "mcap")
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|x| x == extension));
    files.sort();
    files
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()))
}

/// Every committed log's metadata and its first messages of each topic (file order, intact
/// prefix).
fn log_messages() -> Vec<(ReplayMessage, Vec<ReplayMessage>)> {
    let options = OpenOptions { mode: ReadMode::Recover, order: ReadOrder::File, ..OpenOptions::default() };
    committed_logs()
        .iter()
        .map(|path| {
            let reader = ReplayReader::open_with(path, options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let meta = ReplayMessage::new(ReplayBody::Meta(Box::new(reader.meta().clone())), None);
            let mut per_topic = std::collections::BTreeMap::<Topic, usize>::new();
            let mut first = Vec::new();
            for message in reader.flatten() {
                let n = per_topic.entry(message.topic.clone()).or_default();
                if *n < MESSAGES_PER_TOPIC {
                    *n += 1;
                    first.push(message);
                }
            }
            (meta, first)
        })
        .collect()
}

/// The wire encoding of a message's body.
fn encoded(body: &ReplayBody) -> Vec<u8> {
    match body {
        ReplayBody::Meta(meta) => v2x_proto::encode(meta.as_ref()),
        ReplayBody::Sensor(frame) => v2x_proto::encode(frame.as_ref()),
        ReplayBody::GroundTruth(frame) => v2x_proto::encode(frame),
        ReplayBody::Vehicle(state) => v2x_proto::encode(state),
        ReplayBody::Roadside(frame) => v2x_proto::encode(frame),
        ReplayBody::Received(received) => v2x_proto::encode(&received.frame),
        ReplayBody::Signal(state) => v2x_proto::encode(state),
        ReplayBody::Spat(spat) => v2x_proto::encode(spat),
        ReplayBody::Rsi(event) => v2x_proto::encode(event),
    }
}

/// The seeds of every target, built once.
pub struct Seeds {
    /// `v2x.v1` messages: every topic's first messages of every committed log, and the samples.
    pub messages: Vec<Vec<u8>>,
    /// Control streams: hellos, subscriptions and vehicle states, length-delimited.
    pub control: Vec<Vec<u8>>,
    /// Small logs rewritten from the committed logs, and the head of each committed log (a log
    /// cut short).
    pub logs: Vec<Vec<u8>>,
    /// Site folders: `site.toml`, `signal_plan.toml` and one GeoJSON map, joined.
    pub sites: Vec<Vec<u8>>,
    /// Daemon configs.
    pub configs: Vec<Vec<u8>>,
    /// Validation criteria.
    pub criteria: Vec<Vec<u8>>,
    /// DAIR-V2X sequences: `data_info.json`, then each frame's label and calibration, joined.
    pub dair: Vec<Vec<u8>>,
    /// OpenLABEL files.
    pub openlabel: Vec<Vec<u8>>,
    /// NTCIP 1202 SPaT blobs (`rsu::ntcip`).
    pub ntcip: Vec<Vec<u8>>,
    /// T/CSAE 53-2020 UPER frames: the gateway's RSMs, SPAT and BSM of the samples.
    pub uper: Vec<Vec<u8>>,
    /// ROS 2 CDR messages of the Autoware importer.
    pub autoware: Vec<Vec<u8>>,
    /// Route validation inputs: the site's GeoJSON maps (routes among them) and route criteria.
    pub routes: Vec<Vec<u8>>,
}

impl Seeds {
    /// Reads the repository's files into seeds (panics naming a file that cannot be read: the
    /// corpus is part of the repository).
    pub fn load() -> Seeds {
        let root = repo_root();
        let logs = log_messages();

        let mut messages: Vec<Vec<u8>> = logs
            .iter()
            .flat_map(|(meta, first)| std::iter::once(meta).chain(first))
            .map(|m| encoded(&m.body))
            .collect();
        messages.push(v2x_proto::encode(&v2x_proto::sample::lidar_frame()));
        messages.push(v2x_proto::encode(&v2x_proto::sample::camera_frame()));
        messages.push(v2x_proto::encode(&v2x_proto::sample::vehicle_state()));
        messages.push(v2x_proto::encode(&v2x_proto::sample::intersection_frame(8, 3)));
        let controller_state = signal_state();
        let spat = Spat {
            intersection_id: 1201,
            revision: 3,
            time: controller_state.time,
            controller_time: controller_state.time,
            movements: controller_state.movements.clone(),
        };
        messages.push(v2x_proto::encode(&controller_state));
        messages.push(v2x_proto::encode(&RoadsideDatagram::Spat(spat)));
        // The embedded site's MAP, as a version 4 vehicle gets it on its control stream.
        if let Ok(map) = rsu_site::SiteModel::embedded()
            .map_err(|e| e.to_string())
            .and_then(|site| rsu_site::mapdata::map_data(&site, 0, controller_state.time).map_err(|e| e.to_string()))
        {
            messages.push(v2x_proto::encode(&v2x_proto::domain::ServerControl::Map(map)));
        }
        messages.sort();
        messages.dedup();

        let hello = |role, id: &str, subscription| ClientHello { versions: vec![1], role, id: id.into(), subscription };
        let mut control = vec![
            v2x_proto::encode_length_delimited(&hello(Role::Sensor, "lidar-1", None)),
            [
                v2x_proto::encode_length_delimited(&hello(
                    Role::Vehicle,
                    "cv-7",
                    Some(Subscription::AroundMe { radius_m: 150 }),
                )),
                v2x_proto::encode_length_delimited(&ClientControl::Subscribe(Subscription::Polygon(vec![
                    [0.0, 0.0],
                    [40.0, 0.0],
                    [40.0, 30.0],
                ]))),
                v2x_proto::encode_length_delimited(&ClientControl::Subscribe(Subscription::Everything)),
            ]
            .concat(),
        ];
        for (_, first) in &logs {
            let states: Vec<u8> = first
                .iter()
                .filter_map(|m| match &m.body {
                    ReplayBody::Vehicle(state) => Some(v2x_proto::encode_length_delimited(state)),
                    _ => None,
                })
                .flatten()
                .collect();
            if !states.is_empty() {
                let mut stream = v2x_proto::encode_length_delimited(&hello(Role::Vehicle, "cv-1", None));
                stream.extend(states);
                control.push(stream);
            }
        }

        let mut small_logs = Vec::new();
        for ((meta, first), path) in logs.iter().zip(committed_logs()) {
            let ReplayBody::Meta(meta) = &meta.body else { unreachable!("built as metadata above") };
            let mut writer = ReplayWriter::new(Cursor::new(Vec::new()), &path, meta).expect("in-memory log");
            for message in first.iter().take(MESSAGES_PER_SMALL_LOG) {
                writer.write_message(message).expect("in-memory log");
            }
            small_logs.push(writer.finish().expect("in-memory log").into_inner());
            // The head of the committed log: a log cut short inside its first data chunk.
            let mut head = read(&path);
            head.truncate(16 * 1024);
            small_logs.push(head);
        }

        let site_dir = root.join("rsu/site/yancheng");
        let site_toml = read(&site_dir.join("site.toml"));
        let plan = read(&site_dir.join("signal_plan.toml"));
        let sites = files_with_extension(&site_dir, "geojson")
            .iter()
            .map(|map| joined(&[site_toml.clone(), plan.clone(), read(map)]))
            .collect();

        let configs = vec![read(&root.join("rsu/packaging/rsu.toml"))];
        let criteria = files_with_extension(&root.join("replays/logs"), "toml").iter().map(|p| read(p)).collect();

        let dair_dir = root.join("fuzz/seeds/dair");
        let mut dair_files = vec![read(&dair_dir.join("data_info.json"))];
        for frame in 0..3 {
            dair_files.push(read(&dair_dir.join(format!("label/virtuallidar/{frame}.json"))));
            dair_files.push(read(&dair_dir.join(format!("calib/virtuallidar_to_world/{frame}.json"))));
        }
        let dair = vec![joined(&dair_files)];
        let openlabel =
            files_with_extension(&root.join("fuzz/seeds/openlabel"), "json").iter().map(|p| read(p)).collect();

        let ntcip = vec![
            BlobBuilder::default().build().to_vec(),
            BlobBuilder::default()
                .phase(2, false, Colour::Green, 50, 325)
                .phase(4, false, Colour::Red, 120, 400)
                .phase(6, false, Colour::Yellow, 30, 30)
                .phase(1, true, Colour::Green, 50, 325)
                .sequence(42)
                .build()
                .to_vec(),
        ];
        let uper = uper_frames();
        let autoware = autoware_seeds();
        let mut routes: Vec<Vec<u8>> = files_with_extension(&site_dir, "geojson").iter().map(|p| read(p)).collect();
        routes.extend(files_with_extension(&root.join("replays/routes"), "toml").iter().map(|p| read(p)));
        routes.push(
            br#"{"type":"LineString","coordinates":[[120.4862,33.1995],[120.4872,33.1995],[120.4872,33.2005]]}"#
                .to_vec(),
        );
        Seeds {
            messages,
            control,
            logs: small_logs,
            sites,
            configs,
            criteria,
            dair,
            openlabel,
            ntcip,
            uper,
            autoware,
            routes,
        }
    }
}

/// The gateway's UPER frames of the samples: the RSMs of an intersection frame, a SPAT, a BSM.
fn uper_frames() -> Vec<Vec<u8>> {
    use v2x_uper::convert;
    let frame = v2x_proto::sample::intersection_frame(20, 5);
    let enu = rsu_fusion::EnuFrame::new(frame.reference);
    let mut clamps = convert::Clamps::default();
    let mut cnt = 0;
    let station = convert::temporary_id("rsu-1");
    let mut out: Vec<Vec<u8>> =
        convert::rsms(&frame, &enu, &station, &mut cnt, v2x_uper::MAX_PAYLOAD_BYTES, &mut clamps)
            .expect("the sample frame encodes")
            .into_iter()
            .map(|(bytes, _)| bytes)
            .collect();
    let now = frame.time;
    let movement = |group, phase| MovementState {
        signal_group: group,
        phase,
        start: Some(now.add_secs(-3.0)),
        min_end: now.add_secs(4.0),
        max_end: Some(now.add_secs(20.0)),
        likely: Some(now.add_secs(9.0)),
    };
    let spat = Spat {
        intersection_id: 11,
        revision: 0,
        time: now,
        controller_time: now,
        movements: vec![
            movement(2, MovementPhase::ProtectedMovementAllowed),
            movement(4, MovementPhase::StopAndRemain),
        ],
    };
    let spats = convert::spats(&[spat], now, &mut cnt, v2x_uper::MAX_PAYLOAD_BYTES, &mut clamps)
        .expect("the sample SPaT encodes");
    out.extend(spats.into_iter().map(|(bytes, _)| bytes));
    let bsm = convert::bsm(&v2x_proto::sample::vehicle_state(), &enu, &mut clamps);
    out.push(v2x_uper::encode_msg_frame(&v2x_uper::msg::MessageFrame::BsmFrame(bsm)).expect("the sample BSM encodes"));
    out
}

/// `files` joined by [`FILE_SEPARATOR`].
pub fn joined(files: &[Vec<u8>]) -> Vec<u8> {
    files.join(&FILE_SEPARATOR)
}

/// A signal controller state with every field set (a seed of the message targets).
fn signal_state() -> SignalControllerState {
    let t0 = Timestamp::from_nanos(1_795_000_000_000_000_000);
    let movement = MovementState {
        signal_group: 2,
        phase: MovementPhase::ProtectedMovementAllowed,
        start: Some(t0.add_secs(-3.0)),
        min_end: t0.add_secs(5.0),
        max_end: Some(t0.add_secs(30.0)),
        likely: Some(t0.add_secs(12.0)),
    };
    SignalControllerState { controller_id: "tsc-1".into(), time: t0, movements: vec![movement] }
}

/// One of each Autoware message, little-endian with a header as rosbag2 records them.
fn autoware_seeds() -> Vec<Vec<u8>> {
    use v2x_replays::import_autoware::{encode_cdr, ros};
    let header = ros::Header { stamp: ros::Time { sec: 1_795_000_000, nanosec: 5 }, frame_id: "lidar_ne".into() };
    let classification = vec![ros::ObjectClassification { label: 7, probability: 0.8 }];
    let detected = ros::DetectedObjects {
        header: header.clone(),
        objects: vec![
            ros::DetectedObject {
                existence_probability: 0.9,
                classification: classification.clone(),
                ..Default::default()
            },
            ros::DetectedObject::default(),
        ],
    };
    let tracked = ros::TrackedObjects {
        header: header.clone(),
        objects: vec![ros::TrackedObject { object_id: [7; 16], classification, ..Default::default() }],
    };
    let tf = ros::TfMessage {
        transforms: vec![ros::TransformStamped { header, child_frame_id: "lidar_sw".into(), ..Default::default() }],
    };
    [encode_cdr(&detected), encode_cdr(&tracked), encode_cdr(&tf)]
        .into_iter()
        .map(|m| m.expect("seed encodes"))
        .collect()
}
