//! The signal controllers the RSU knows and the SPaT it broadcasts from their states
//! (PROTOCOL.md §2.8): the newest state of each configured controller, checked for age, and one
//! `Spat` per intersection whose controller state is fresh. Deterministic: every call takes the
//! time as an argument.

use std::collections::BTreeMap;

use rsu_fusion::Timestamp;
use v2x_proto::domain::{SignalControllerState, Spat};

use super::stats::Reject;
use crate::config::SignalsConfig;

/// The newest state of every configured controller.
#[derive(Debug)]
pub struct SpatTable {
    controllers: BTreeMap<String, Controller>,
    /// How long a state is broadcast after its time, and the oldest one taken in [s].
    stale_after_s: f64,
    /// How far ahead of the RSU's clock a state may be [s].
    max_future_s: f64,
}

#[derive(Debug)]
struct Controller {
    intersection_id: u16,
    latest: Option<SignalControllerState>,
    /// J2735 revision of the intersection's SPaT: bumped (modulo 128) when the movements change.
    revision: u8,
}

/// Why a controller state was not taken in, with what to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The reason it is counted under.
    pub reason: Reject,
    /// What was wrong.
    pub detail: String,
}

impl SpatTable {
    /// A table of the controllers of `config`; states more than `max_future_s` [s] ahead of the
    /// clock are refused.
    pub fn new(config: &SignalsConfig, max_future_s: f64) -> SpatTable {
        let controllers = config
            .controllers
            .iter()
            .map(|c| (c.id.clone(), Controller { intersection_id: c.intersection_id, latest: None, revision: 0 }))
            .collect();
        SpatTable { controllers, stale_after_s: config.stale_after_s, max_future_s }
    }

    /// Whether `id` is a configured controller.
    pub fn knows(&self, id: &str) -> bool {
        self.controllers.contains_key(id)
    }

    /// Takes in `state`, received at `now`: refused when its controller is not configured, when
    /// it is older than `stale_after_s` or older than the newest state taken from its
    /// controller (`late`), or further ahead than `max_future_s` (`from_future`).
    pub fn ingest(&mut self, now: Timestamp, state: SignalControllerState) -> Result<(), Refused> {
        let refuse = |reason, detail: String| Err(Refused { reason, detail });
        let Some(controller) = self.controllers.get_mut(&state.controller_id) else {
            return refuse(
                Reject::UnknownController,
                format!("controller {:?} is not configured", state.controller_id),
            );
        };
        let age_s = now.secs_since(state.time);
        if age_s > self.stale_after_s {
            return refuse(Reject::Late, format!("controller state {age_s:.3} s old at arrival"));
        }
        if -age_s > self.max_future_s {
            return refuse(Reject::FromFuture, format!("controller state {:.3} s ahead of the RSU's clock", -age_s));
        }
        if let Some(latest) = &controller.latest {
            if latest.time > state.time {
                return refuse(Reject::Late, "controller state older than one already taken in".to_owned());
            }
            if latest.movements != state.movements {
                controller.revision = (controller.revision + 1) % 128;
            }
        }
        controller.latest = Some(state);
        Ok(())
    }

    /// The SPaT of every intersection whose controller's newest state is at most
    /// `stale_after_s` old at `now`, made at `now`, in controller id order.
    pub fn spats(&self, now: Timestamp) -> Vec<Spat> {
        self.controllers
            .values()
            .filter_map(|c| {
                let state = c.latest.as_ref().filter(|s| now.secs_since(s.time) <= self.stale_after_s)?;
                Some(Spat {
                    intersection_id: c.intersection_id,
                    revision: c.revision,
                    time: now,
                    controller_time: state.time,
                    movements: state.movements.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ControllerConfig;
    use v2x_proto::domain::{MovementPhase, MovementState};

    fn at(s: f64) -> Timestamp {
        Timestamp::from_nanos(1_795_000_000_000_000_000).add_secs(s)
    }

    fn table() -> SpatTable {
        let controller = |id: &str, intersection_id| ControllerConfig {
            id: id.into(),
            intersection_id,
            ntcip_listen: None,
            ntcip_source: None,
        };
        let config = SignalsConfig {
            controllers: vec![controller("tsc-a", 11), controller("tsc-b", 12)],
            ..SignalsConfig::default()
        };
        SpatTable::new(&config, 0.2)
    }

    fn state(id: &str, time: f64, phase: MovementPhase) -> SignalControllerState {
        let movement = MovementState {
            signal_group: 2,
            phase,
            start: None,
            min_end: at(time + 5.0),
            max_end: Some(at(time + 30.0)),
            likely: None,
        };
        SignalControllerState { controller_id: id.into(), time: at(time), movements: vec![movement] }
    }

    #[test]
    fn the_newest_fresh_state_is_broadcast_with_its_revision() {
        let mut table = table();
        let red = MovementPhase::StopAndRemain;
        let green = MovementPhase::ProtectedMovementAllowed;
        table.ingest(at(0.05), state("tsc-a", 0.0, red)).expect("taken");
        let spats = table.spats(at(0.1));
        assert_eq!(spats.len(), 1, "tsc-b has sent nothing");
        assert_eq!((spats[0].intersection_id, spats[0].revision, spats[0].time), (11, 0, at(0.1)));
        assert_eq!(spats[0].controller_time, at(0.0));
        // The same movements again (a later state, same phases and end times): the revision
        // stays; a change of phase or of an end time bumps it.
        let mut same = state("tsc-a", 0.0, red);
        same.time = at(0.1);
        table.ingest(at(0.15), same).expect("taken");
        assert_eq!(table.spats(at(0.2))[0].revision, 0);
        table.ingest(at(0.25), state("tsc-a", 0.2, red)).expect("taken");
        assert_eq!(table.spats(at(0.3))[0].revision, 1, "the end times moved");
        table.ingest(at(0.35), state("tsc-a", 0.3, green)).expect("taken");
        assert_eq!(table.spats(at(0.4))[0].revision, 2);
        assert_eq!(table.spats(at(0.4))[0].movements[0].phase, green);
        // A controller that falls silent leaves the broadcast after stale_after_s (1 s).
        assert_eq!(table.spats(at(1.3)).len(), 1);
        assert!(table.spats(at(1.31)).is_empty());
    }

    #[test]
    fn unknown_old_reordered_and_future_states_are_refused() {
        let mut table = table();
        let red = MovementPhase::StopAndRemain;
        let reason = |r: Result<(), Refused>| r.expect_err("refused").reason;
        assert_eq!(reason(table.ingest(at(0.0), state("tsc-x", 0.0, red))), Reject::UnknownController);
        assert_eq!(reason(table.ingest(at(2.0), state("tsc-a", 0.5, red))), Reject::Late);
        assert_eq!(reason(table.ingest(at(0.0), state("tsc-a", 0.5, red))), Reject::FromFuture);
        table.ingest(at(1.0), state("tsc-a", 1.0, red)).expect("taken");
        assert_eq!(reason(table.ingest(at(1.0), state("tsc-a", 0.9, red))), Reject::Late, "reordered");
        assert!(table.knows("tsc-b") && !table.knows("tsc-x"));
        assert_eq!(table.spats(at(1.0))[0].controller_time, at(1.0));
    }
}
