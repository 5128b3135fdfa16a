//! Misbehaviour flags for the operator: after every fusion step the vehicles the fusion core
//! flags ([`Fusion::misbehaving_vehicles`]) are compared with those of the step before. A new
//! flag is logged (warn, with the reason and the figures), counted in
//! `rsu_misbehaviour_flags_total{reason}` and written to the recording as an event (an MCAP
//! metadata record named `misbehaviour`); a lapsed one is logged (info);
//! `rsu_misbehaving_vehicles` is the number flagged now.

use std::collections::BTreeMap;

use rsu_fusion::{Fusion, MisbehaviourFlag, Timestamp};

use crate::recorder::{Record, Recorder};

/// The name of the recording's misbehaviour events.
pub const EVENT_NAME: &str = "misbehaviour";

/// The flags of the last step: vehicle id → measurement time of the report that flagged it.
#[derive(Debug, Default)]
pub struct FlagWatch {
    known: BTreeMap<String, Timestamp>,
}

impl FlagWatch {
    /// Reports what changed in `fusion`'s flags at `now`, recording new flags in `recorder`;
    /// the number of new flags.
    pub fn update(&mut self, fusion: &Fusion, now: Timestamp, recorder: Option<&Recorder>) -> usize {
        let flags = fusion.misbehaving_vehicles(now);
        let mut new = 0;
        for flag in &flags {
            // A flag re-raised by a rollback keeps its time: it is not new.
            if self.known.get(&flag.vehicle_id) == Some(&flag.since) {
                continue;
            }
            tracing::warn!(
                vehicle = %flag.vehicle_id,
                reason = flag.reason.name(),
                measured = flag.measured,
                limit = flag.limit,
                unit = flag.reason.unit(),
                until = %flag.until,
                "misbehaviour: vehicle flagged, its reports are not fused"
            );
            new += 1;
            metrics::counter!("rsu_misbehaviour_flags_total", "reason" => flag.reason.name()).increment(1);
            if let Some(recorder) = recorder {
                recorder.record(Record::Event(EVENT_NAME, event_fields(flag)));
            }
        }
        for vehicle in self.known.keys().filter(|v| !flags.iter().any(|f| &f.vehicle_id == *v)) {
            tracing::info!(vehicle = %vehicle, "misbehaviour: flag lapsed, the vehicle's reports are fused again");
        }
        self.known = flags.iter().map(|f| (f.vehicle_id.clone(), f.since)).collect();
        metrics::gauge!("rsu_misbehaving_vehicles").set(self.known.len() as f64);
        new
    }
}

/// The fields of a flag's recorded event (times in UTC ns, figures in the reason's unit).
pub fn event_fields(flag: &MisbehaviourFlag) -> BTreeMap<String, String> {
    [
        ("vehicle_id", flag.vehicle_id.clone()),
        ("reason", flag.reason.name().to_owned()),
        ("measured", format!("{:.3}", flag.measured)),
        ("limit", format!("{:.3}", flag.limit)),
        ("unit", flag.reason.unit().to_owned()),
        ("since_ns", flag.since.as_nanos().to_string()),
        ("until_ns", flag.until.as_nanos().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsu_fusion::FusionConfig;

    #[test]
    fn a_flag_is_reported_once_and_its_lapse_is_noticed() {
        let site = v2x_proto::sample::site();
        let config = FusionConfig { misbehaviour_hold_s: 1.0, ..FusionConfig::default() };
        let mut fusion = Fusion::new(site, config).expect("engine");
        let mut watch = FlagWatch::default();
        let honest = v2x_proto::sample::vehicle_state();
        let t0 = honest.time;
        let mut new_flags = 0;
        // One report claiming 250 km/h (over the 70 m/s limit), then honest ones every 100 ms.
        for k in 0..30 {
            let mut state = honest.clone();
            state.time = t0.add_secs(0.1 * f64::from(k));
            // The reported position stays put, so the honest reports say it stands still.
            state.speed_mps = if k == 5 { 71.0 } else { 0.0 };
            fusion.handle_vehicle_state(state.time, &state);
            fusion.poll_objects(state.time);
            new_flags += watch.update(&fusion, state.time, None);
            let flagged = watch.known.contains_key(&honest.vehicle_id);
            // Flagged at 0.5 s; the deceleration implied at 0.6 s renews it until 1.6 s.
            assert_eq!(flagged, (5..=16).contains(&k), "at report {k}");
        }
        assert_eq!(new_flags, 1, "logged, counted and recorded once");
        assert_eq!(fusion.stats().misbehaviour.speed, 1);
    }
}
