//! A radio-like link, sans-IO: a seeded fault model of one direction (delay, jitter, loss,
//! reordering, duplication, blackouts) that says what happens to each datagram from its send
//! time and never reads a clock. The UDP relay ([`super::relay`]) and the in-process emulator
//! (`tests/emulated_link.rs`) both apply it.

use v2x_proto::sample::SplitMix;

/// What the link does to every datagram of one direction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Impairment {
    /// One-way delay [ms].
    pub delay_ms: f64,
    /// Uniform jitter on the delay, ± [ms] (reorders datagrams closer than twice this).
    pub jitter_ms: f64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is held back `reorder_ms` more, so the next ones overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered datagram [ms].
    pub reorder_ms: f64,
    /// Probability that a datagram arrives twice (the copy with a delay of its own).
    pub duplicate: f64,
}

/// What happened to the datagrams given to a [`LinkModel`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkTally {
    /// Datagrams offered to the link.
    pub offered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped in a blackout.
    pub blacked_out: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Delivered twice.
    pub duplicated: u64,
}

/// The fault model of one direction of a link: seeded, so the same seed and the same sequence of
/// send times give the same fates; it never reads a clock (times are arguments, [s] from any
/// origin the caller keeps).
pub struct LinkModel {
    impairment: Impairment,
    rng: SplitMix,
    /// Datagrams sent in `[from, to)` [s] are dropped.
    blackouts: Vec<(f64, f64)>,
    /// What happened so far.
    pub tally: LinkTally,
}

impl LinkModel {
    /// A model of `impairment` drawing from `seed`.
    pub fn new(impairment: Impairment, seed: u64) -> Self {
        LinkModel { impairment, rng: SplitMix(seed), blackouts: Vec::new(), tally: LinkTally::default() }
    }

    /// Drops every datagram sent from `from_s` for `duration_s` [s].
    pub fn blackout(&mut self, from_s: f64, duration_s: f64) {
        self.blackouts.push((from_s, from_s + duration_s));
    }

    /// The delays [s] after which a datagram sent at `now_s` arrives: none when it is lost, two
    /// when it is duplicated.
    pub fn deliveries(&mut self, now_s: f64) -> Vec<f64> {
        let imp = self.impairment;
        self.tally.offered += 1;
        // Every draw is made whatever the outcome, so one fate does not shift the next ones.
        let (lost, reorder, duplicate) = (self.rng.range(0.0, 1.0), self.rng.range(0.0, 1.0), self.rng.range(0.0, 1.0));
        let (jitter, copy_jitter) =
            (self.rng.range(-imp.jitter_ms, imp.jitter_ms), self.rng.range(-imp.jitter_ms, imp.jitter_ms));
        if self.blackouts.iter().any(|&(from, to)| (from..to).contains(&now_s)) {
            self.tally.blacked_out += 1;
            return Vec::new();
        }
        if lost < imp.loss {
            self.tally.lost += 1;
            return Vec::new();
        }
        let mut delay_ms = imp.delay_ms + jitter;
        if reorder < imp.reorder {
            self.tally.reordered += 1;
            delay_ms += imp.reorder_ms;
        }
        let mut out = vec![delay_ms.max(0.0) / 1e3];
        if duplicate < imp.duplicate {
            self.tally.duplicated += 1;
            out.push((imp.delay_ms + copy_jitter).max(0.0) / 1e3);
        }
        out
    }
}
