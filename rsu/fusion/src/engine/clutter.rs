//! Where clutter has been: the places where tracks were born and died without ever becoming (or
//! long staying) real objects. Real detectors fire again and again at the same places (a pole, a
//! bush in the wind, a reflective sign), each burst spawning a track that dies when the burst
//! ends; a score threshold cannot tell them from real objects because their scores overlap. The
//! map remembers those deaths for a while, and a track born where they keep happening needs more
//! evidence to be confirmed (see `FusionConfig::clutter_*`). It is part of the fused state: it is
//! checkpointed and rolled back with the tracks, so out-of-sequence fusion stays exact.

use std::collections::VecDeque;

use nalgebra::Vector2;

use crate::time::Timestamp;

/// Most remembered deaths; the oldest are forgotten first.
const CAPACITY: usize = 2048;

/// The remembered clutter deaths, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ClutterMap {
    deaths: VecDeque<(Timestamp, Vector2<f64>)>,
}

impl ClutterMap {
    /// Remembers a clutter death at `p` [m] at `t`.
    pub(super) fn note(&mut self, t: Timestamp, p: Vector2<f64>) {
        if self.deaths.len() >= CAPACITY {
            self.deaths.pop_front();
        }
        self.deaths.push_back((t, p));
    }

    /// Forgets deaths older than `memory_s` before `t`.
    pub(super) fn forget_before(&mut self, t: Timestamp, memory_s: f64) {
        while self.deaths.front().is_some_and(|(t0, _)| t.secs_since(*t0) > memory_s) {
            self.deaths.pop_front();
        }
    }

    /// Deaths within `radius_m` of `p` no longer than `memory_s` before `t` (later ones count
    /// too: a rollback may ask about an earlier time).
    pub(super) fn count_near(&self, t: Timestamp, p: &Vector2<f64>, radius_m: f64, memory_s: f64) -> usize {
        let r2 = radius_m * radius_m;
        self.deaths.iter().filter(|(t0, q)| t.secs_since(*t0) <= memory_s && (q - p).norm_squared() <= r2).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_recent_deaths_nearby_and_forgets_old_ones() {
        let mut map = ClutterMap::default();
        let t0 = Timestamp::from_nanos(1_000_000_000_000);
        map.note(t0, Vector2::new(0.0, 0.0));
        map.note(t0.add_secs(1.0), Vector2::new(0.5, 0.0));
        map.note(t0.add_secs(2.0), Vector2::new(10.0, 0.0));
        let now = t0.add_secs(3.0);
        assert_eq!(map.count_near(now, &Vector2::zeros(), 1.0, 60.0), 2);
        assert_eq!(map.count_near(now, &Vector2::zeros(), 1.0, 2.5), 1);
        map.forget_before(now, 1.5);
        assert_eq!(map.count_near(now, &Vector2::zeros(), 1.0, 60.0), 0);
        assert_eq!(map.count_near(now, &Vector2::new(10.0, 0.0), 1.0, 60.0), 1);
    }

    #[test]
    fn holds_at_most_its_capacity() {
        let mut map = ClutterMap::default();
        let t0 = Timestamp::from_nanos(1_000_000_000_000);
        for i in 0..(CAPACITY + 10) {
            map.note(t0.add_secs(i as f64 * 0.01), Vector2::zeros());
        }
        assert_eq!(map.deaths.len(), CAPACITY);
    }
}
