//! Out-of-sequence fusion on committed logs: the sensor frames and V2X states of a log reach the
//! engine at realistic arrival times (lidar 45 ± 10 ms, cameras 85 ± 20 ms after capture, V2X
//! states 0 to 250 ms after their measurement, as a real OBU's reports), so they arrive out of
//! capture order, and the engine is read live at every ground-truth time from what has arrived
//! by then. Scored by the project's scorer against the fully ordered run (every input handed in
//! at its capture time, as `replay` does), the live run must be within 0.01 MOTA, and every V2X
//! state must be fused.

use std::sync::Arc;

use rsu_fusion::{Fusion, FusionConfig, FusionStats, Ingest, SensorFrame, SensorModel, Timestamp, VehicleState};
use v2x_proto::domain::{GroundTruthFrame, ReplayMeta};
use v2x_proto::sample::SplitMix;
use v2x_replays::criteria::Criteria;
use v2x_replays::scoring::{Metrics, Scorer};
use v2x_replays::validate::{hypotheses, truth_objects};
use v2x_replays::{ReplayBody, ReplayReader};

#[derive(Clone)]
enum Input {
    Sensor(Arc<SensorFrame>),
    Vehicle(VehicleState),
}

struct Log {
    meta: ReplayMeta,
    inputs: Vec<(Timestamp, Input)>,
    truths: Vec<GroundTruthFrame>,
}

fn read(name: &str) -> Log {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("logs").join(format!("{name}.mcap"));
    let mut reader = ReplayReader::open(&path).expect("committed log opens");
    let meta = reader.meta().clone();
    let (mut inputs, mut truths) = (Vec::new(), Vec::new());
    for message in reader.by_ref() {
        let message = message.expect("committed log reads");
        match message.body {
            ReplayBody::Sensor(f) => inputs.push((f.capture_time, Input::Sensor(f))),
            ReplayBody::Vehicle(s) => inputs.push((s.time, Input::Vehicle(s))),
            ReplayBody::GroundTruth(t) => truths.push(t),
            _ => {}
        }
    }
    Log { meta, inputs, truths }
}

/// Each input with its arrival time: capture time plus the delay of its kind.
fn arrivals(log: &Log, seed: u64) -> Vec<(Timestamp, Input)> {
    let mut rng = SplitMix(seed);
    let lidar = |id: &str| log.meta.site.sensors.iter().any(|s| s.id == id && matches!(s.model, SensorModel::Lidar(_)));
    let mut out: Vec<(Timestamp, Input)> = log
        .inputs
        .iter()
        .map(|(t, input)| {
            let delay_s = match input {
                Input::Sensor(f) if lidar(&f.sensor_id) => rng.range(0.035, 0.055),
                Input::Sensor(_) => rng.range(0.065, 0.105),
                Input::Vehicle(_) => rng.range(0.0, 0.25),
            };
            (t.add_secs(delay_s), input.clone())
        })
        .collect();
    out.sort_by_key(|(arrival, _)| *arrival);
    out
}

struct Run {
    metrics: Metrics,
    stats: FusionStats,
    verdicts: Vec<Ingest>,
    /// Sensor frames handed in (those arriving after the last ground truth are not).
    frames_handed: u64,
    /// Polls that reported some object linked to a V2X vehicle.
    v2x_linked_polls: usize,
}

/// Hands `inputs` to a fresh engine in order, each with `now` = its time, and scores the engine
/// at every ground-truth time from what it had by then.
fn run(log: &Log, inputs: &[(Timestamp, Input)]) -> Run {
    let mut fusion = Fusion::new(log.meta.site.clone(), FusionConfig::default()).expect("engine");
    let criteria = Criteria::default();
    let mut scorer = Scorer::new(criteria.scoring.clone());
    let mut verdicts = Vec::new();
    let mut next = 0;
    let mut v2x_linked_polls = 0;
    let mut frames_handed = 0;
    for truth in &log.truths {
        while let Some((now, input)) = inputs.get(next).filter(|(now, _)| *now <= truth.time) {
            verdicts.push(match input {
                Input::Sensor(f) => {
                    frames_handed += 1;
                    fusion.handle_sensor_frame(*now, Arc::clone(f))
                }
                Input::Vehicle(s) => fusion.handle_vehicle_state(*now, s),
            });
            next += 1;
        }
        let objects = fusion.poll_kinematics(truth.time);
        v2x_linked_polls += usize::from(objects.iter().any(|o| o.v2x_id.is_some()));
        scorer.add_frame(truth.time, &truth_objects(truth, &log.meta.site), &hypotheses(&objects));
    }
    Run { metrics: scorer.finish(), stats: fusion.stats().clone(), verdicts, frames_handed, v2x_linked_polls }
}

fn compare(name: &str) {
    let log = read(name);
    let ordered = run(&log, &log.inputs);
    let live = run(&log, &arrivals(&log, 17));
    let states = log.inputs.iter().filter(|(_, i)| matches!(i, Input::Vehicle(_))).count();
    println!(
        "{name}: MOTA ordered {:.4} live (out of sequence) {:.4}; IDF1 {:.4} / {:.4}; {} inputs out of sequence, {} rollbacks, {} re-fused; {states} V2X states",
        ordered.metrics.overall.mota,
        live.metrics.overall.mota,
        ordered.metrics.idf1.unwrap_or(f64::NAN),
        live.metrics.idf1.unwrap_or(f64::NAN),
        live.stats.out_of_sequence,
        live.stats.rollbacks,
        live.stats.inputs_refused,
    );
    assert!(live.stats.out_of_sequence > 0, "the arrival order must put inputs out of sequence");
    assert_eq!(live.stats.late_dropped, 0, "nothing within max_lag_s is dropped");
    assert!(live.verdicts.iter().all(|v| *v == Ingest::Accepted), "every input is accepted");
    assert_eq!(live.stats.frames_fused, live.frames_handed, "every sensor frame is fused");
    let states_handed = live.stats.vehicle_states_received;
    assert!(states_handed as usize + 3 >= states, "the V2X states arrive (all but the last few)");
    if states > 0 {
        assert!(live.v2x_linked_polls > 0, "the delayed V2X states reach the tracks");
    }
    assert!(
        (live.metrics.overall.mota - ordered.metrics.overall.mota).abs() <= 0.01,
        "{name}: live MOTA {:.4} is not within 0.01 of the ordered {:.4}",
        live.metrics.overall.mota,
        ordered.metrics.overall.mota
    );
}

#[test]
fn out_of_sequence_fusion_matches_the_ordered_result_on_bus_pedestrian() {
    compare("bus-pedestrian");
}

#[test]
fn out_of_sequence_fusion_matches_the_ordered_result_on_congested_intersection() {
    compare("congested-intersection");
}
