//! The site's traffic signal controller, simulated: the fixed-time signal plan's state at one
//! instant as the [`SignalControllerState`] a controller sends the RSU (PROTOCOL.md §2.8).
//! Signal group `k` is the plan's `k`-th group (1-based, plan order); green is
//! `PROTECTED_MOVEMENT_ALLOWED`, yellow `PROTECTED_CLEARANCE`, red `STOP_AND_REMAIN`. A fixed-time
//! plan knows its timing exactly: `min_end = likely = max_end` = the end of the current phase,
//! `start` its beginning.

use rsu_fusion::Timestamp;
use rsu_site::signals::{LightPhase, SignalPlan};
use v2x_proto::convert::MAX_MOVEMENTS;
use v2x_proto::domain::{MovementPhase, MovementState, SignalControllerState};

/// The state of controller `controller_id` running `plan`, `cycle_time_s` [s] into its cycle
/// at `now`. Groups beyond the protocol's limit of signal groups are left out.
pub fn controller_state(
    plan: &SignalPlan,
    cycle_time_s: f64,
    now: Timestamp,
    controller_id: &str,
) -> SignalControllerState {
    let movements = plan
        .groups
        .iter()
        .zip(plan.states(cycle_time_s))
        .take(MAX_MOVEMENTS)
        .zip(1u8..)
        .map(|((group, light), signal_group)| {
            let (phase, duration_s) = match light.phase {
                LightPhase::Green => (MovementPhase::ProtectedMovementAllowed, group.green_s),
                LightPhase::Yellow => (MovementPhase::ProtectedClearance, group.yellow_s),
                LightPhase::Red => (MovementPhase::StopAndRemain, plan.cycle_s - group.green_s - group.yellow_s),
            };
            let end = now.add_secs(light.remaining_s);
            MovementState {
                signal_group,
                phase,
                start: Some(end.add_secs(-duration_s)),
                min_end: end,
                max_end: Some(end),
                likely: Some(end),
            }
        })
        .collect();
    SignalControllerState { controller_id: controller_id.to_owned(), time: now, movements }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_becomes_consistent_movement_states() {
        let plan: SignalPlan = toml::from_str(
            "cycle_s = 60.0\n[[groups]]\nsignal_id = \"ew\"\ngreen_start_s = 0.0\ngreen_s = 25.0\nyellow_s = 3.0\n\
             [[groups]]\nsignal_id = \"ns\"\ngreen_start_s = 30.0\ngreen_s = 25.0\nyellow_s = 3.0\n",
        )
        .expect("plan");
        let now = Timestamp::from_nanos(1_795_000_000_000_000_000);
        let state = controller_state(&plan, 10.0, now, "tsc-1");
        assert_eq!(state.time, now);
        let [ew, ns] = &state.movements[..] else { panic!("two groups: {:?}", state.movements) };
        assert_eq!((ew.signal_group, ew.phase), (1, MovementPhase::ProtectedMovementAllowed));
        assert_eq!(ew.min_end, now.add_secs(15.0));
        assert_eq!(ew.start, Some(now.add_secs(-10.0)));
        // "ns" is red from 58 s to 30 s of the next cycle: 32 s, 20 s left at 10 s.
        assert_eq!((ns.signal_group, ns.phase), (2, MovementPhase::StopAndRemain));
        assert_eq!(ns.min_end, now.add_secs(20.0));
        assert_eq!(ns.start, Some(now.add_secs(-12.0)));
        for m in &state.movements {
            m.check_order().expect("consistent");
        }
        // It encodes and passes the RSU's checks.
        let back: SignalControllerState = v2x_proto::decode(&v2x_proto::encode(&state)).expect("valid");
        assert_eq!(back, state);
    }
}
