//! The fixed-time signal plan of the city-block intersection: which signal group shows green,
//! yellow or red at a given time into the cycle, and how long that lasts.

use serde::{Deserialize, Serialize};

/// What a signal head shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LightPhase {
    /// Stop.
    Red,
    /// Stop if you safely can.
    Yellow,
    /// Go.
    Green,
}

/// The state of one signal group at one time.
#[derive(Clone, Debug, PartialEq)]
pub struct LightState {
    /// The group's id, e.g. `sig-ew`.
    pub signal_id: String,
    /// What it shows.
    pub phase: LightPhase,
    /// Time until the phase changes [s].
    pub remaining_s: f64,
}

/// A fixed-time plan: every group repeats green, yellow, red within one common cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalPlan {
    /// Cycle length [s].
    pub cycle_s: f64,
    /// The signal groups.
    #[serde(default)]
    pub groups: Vec<SignalGroup>,
}

/// One signal group of a [`SignalPlan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalGroup {
    /// Id that lanes and crosswalks refer to.
    pub signal_id: String,
    /// Start of green within the cycle [s].
    pub green_start_s: f64,
    /// Green duration [s].
    pub green_s: f64,
    /// Yellow duration after green [s].
    pub yellow_s: f64,
}

impl SignalPlan {
    /// Checks that durations are positive and fit in the cycle; the error names the group.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.cycle_s.is_finite() && self.cycle_s > 0.0) {
            return Err("cycle_s must be positive".into());
        }
        for g in &self.groups {
            let fits = g.green_s > 0.0 && g.yellow_s >= 0.0 && g.green_s + g.yellow_s < self.cycle_s;
            if !fits || !g.green_start_s.is_finite() {
                return Err(format!(
                    "group {:?}: green_s + yellow_s must be positive and shorter than the cycle",
                    g.signal_id
                ));
            }
        }
        Ok(())
    }

    /// The state of group `signal_id` at `cycle_time_s` (any real number; taken modulo the
    /// cycle). `None` for an unknown group.
    pub fn state(&self, signal_id: &str, cycle_time_s: f64) -> Option<LightState> {
        let g = self.groups.iter().find(|g| g.signal_id == signal_id)?;
        Some(g.state_at(cycle_time_s, self.cycle_s))
    }

    /// The signal group number (J2735 `SignalGroupID`) of group `signal_id`: the group's place
    /// in the plan, from 1. This is the number the site's controller sends in its SPaT and the
    /// MAP's connections carry. `None` for an unknown group or beyond 255.
    pub fn signal_group(&self, signal_id: &str) -> Option<u8> {
        let k = self.groups.iter().position(|g| g.signal_id == signal_id)?;
        u8::try_from(k + 1).ok()
    }

    /// Every group's state at `cycle_time_s`, in plan order.
    pub fn states(&self, cycle_time_s: f64) -> Vec<LightState> {
        self.groups.iter().map(|g| g.state_at(cycle_time_s, self.cycle_s)).collect()
    }
}

impl SignalGroup {
    fn state_at(&self, cycle_time_s: f64, cycle_s: f64) -> LightState {
        let into = (cycle_time_s - self.green_start_s).rem_euclid(cycle_s);
        let (phase, remaining_s) = if into < self.green_s {
            (LightPhase::Green, self.green_s - into)
        } else if into < self.green_s + self.yellow_s {
            (LightPhase::Yellow, self.green_s + self.yellow_s - into)
        } else {
            (LightPhase::Red, cycle_s - into)
        };
        LightState { signal_id: self.signal_id.clone(), phase, remaining_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_plan_and_wrap() {
        let plan: SignalPlan = toml::from_str(
            "cycle_s = 60.0\n[[groups]]\nsignal_id = \"a\"\ngreen_start_s = 50.0\ngreen_s = 20.0\nyellow_s = 3.0\n",
        )
        .expect("parses");
        plan.validate().expect("valid");
        let at = |t: f64| plan.state("a", t).expect("known group");
        assert_eq!(at(55.0).phase, LightPhase::Green);
        assert_eq!(at(5.0).phase, LightPhase::Green, "green wraps over the cycle end");
        assert!((at(5.0).remaining_s - 5.0).abs() < 1e-9);
        assert_eq!(at(11.0).phase, LightPhase::Yellow);
        assert_eq!(at(14.0).phase, LightPhase::Red);
        assert!((at(14.0).remaining_s - 36.0).abs() < 1e-9);
        assert!(plan.state("b", 0.0).is_none());
    }
}
