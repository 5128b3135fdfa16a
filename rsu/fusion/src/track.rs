//! One track's lifecycle and attributes, apart from its motion model: tentative → confirmed
//! after M hits in the last N opportunities → coasting when not updated → deleted after a timeout;
//! class evidence fused across sources, smoothed box size, V2X link and path history.

use std::collections::VecDeque;

use crate::class::{BoxSize, ObjectClass, SourceSet};
use crate::motion::MotionState;
use crate::time::Timestamp;

/// Where a track is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackStatus {
    /// Seen, not yet confirmed (not reported).
    Tentative,
    /// Confirmed and recently updated.
    Confirmed,
    /// Confirmed but not updated for a while: predicted only, uncertainty growing.
    Coasting,
}

/// Floor of a class's log-likelihood relative to the best class (the evidence against a class
/// stops growing there).
const LOG_LIK_FLOOR: f64 = -50.0;

/// The largest of `values` (NaN ignored, −∞ for none), in four independent running maxima: a
/// shorter dependency chain than one fold.
fn max_of(values: impl Iterator<Item = f64>) -> f64 {
    let mut m = [f64::NEG_INFINITY; 4];
    for (i, v) in values.enumerate() {
        m[i % 4] = m[i % 4].max(v);
    }
    m[0].max(m[1]).max(m[2].max(m[3]))
}

/// Accumulated class evidence: per class a log-likelihood, with forgetting.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassEvidence {
    log_lik: [f64; ObjectClass::COUNT],
    /// The most likely known class and whether every other known class trails it by more than 3
    /// (its posterior is then above one half); `None` before any evidence. Kept up to date by
    /// `add` and `merge`.
    leader: Option<(ObjectClass, bool)>,
}

impl Default for ClassEvidence {
    fn default() -> Self {
        ClassEvidence { log_lik: [0.0; ObjectClass::COUNT], leader: None }
    }
}

impl ClassEvidence {
    /// Adds one observation: class scores (the rest of the probability mass spread over the other
    /// classes), weighted by `weight`, after decaying the old evidence by `decay`.
    pub fn add(&mut self, scores: &[(ObjectClass, f64)], weight: f64, decay: f64) {
        match scores {
            [(class, score)] => self.add_one(*class, *score, weight, decay),
            _ => self.add_many(scores, weight, decay),
        }
    }

    /// [`ClassEvidence::add`] for any number of scores.
    fn add_many(&mut self, scores: &[(ObjectClass, f64)], weight: f64, decay: f64) {
        let mut p = [0.0; ObjectClass::COUNT];
        let mut mass = 0.0;
        for &(class, score) in scores {
            if score.is_finite() && score > 0.0 && class != ObjectClass::Unknown {
                p[class.index()] += score.min(1.0);
                mass += score.min(1.0);
            }
        }
        if mass <= 0.0 {
            return;
        }
        let mass = mass.min(1.0);
        let others = ((1.0 - mass) / (ObjectClass::COUNT - 2) as f64).max(1e-3);
        // Most classes share the probability `others` (and Unknown 1e-3): their logarithms are
        // taken once (the same values, so the same results as one logarithm per class).
        let mut ln_p = [others.ln(); ObjectClass::COUNT];
        ln_p[ObjectClass::Unknown.index()] = 1e-3f64.ln();
        for &(class, _) in scores {
            if class != ObjectClass::Unknown {
                ln_p[class.index()] = p[class.index()].max(others).ln();
            }
        }
        for (l, ln_pi) in self.log_lik.iter_mut().zip(ln_p) {
            *l = *l * decay + weight * ln_pi;
        }
        self.normalise();
    }

    /// [`ClassEvidence::add`] for a single class score (most detectors give one), with the same
    /// arithmetic: every class but the scored one and Unknown gets `others`.
    fn add_one(&mut self, class: ObjectClass, score: f64, weight: f64, decay: f64) {
        if !(score.is_finite() && score > 0.0 && class != ObjectClass::Unknown) {
            return;
        }
        let p = score.min(1.0);
        let others = ((1.0 - p) / (ObjectClass::COUNT - 2) as f64).max(1e-3);
        let (i, unknown) = (class.index(), ObjectClass::Unknown.index());
        let (old_i, old_unknown) = (self.log_lik[i], self.log_lik[unknown]);
        let w_ln_others = weight * others.ln();
        for l in &mut self.log_lik {
            *l = *l * decay + w_ln_others;
        }
        self.log_lik[unknown] = old_unknown * decay + weight * 1e-3f64.ln();
        self.log_lik[i] = old_i * decay + weight * p.max(others).ln();
        self.normalise();
    }

    /// Merges another track's evidence into this one.
    pub fn merge(&mut self, other: &ClassEvidence) {
        for (a, b) in self.log_lik.iter_mut().zip(other.log_lik.iter()) {
            *a += b;
        }
        self.normalise();
    }

    /// Makes the best log-likelihood 0 (floored at [`LOG_LIK_FLOOR`] below it) and finds the
    /// leading known class.
    fn normalise(&mut self) {
        let max = max_of(self.log_lik.iter().copied());
        for l in &mut self.log_lik {
            *l = (*l - max).max(LOG_LIK_FLOOR);
        }
        if self.log_lik.iter().all(|l| *l == 0.0) {
            self.leader = None;
            return;
        }
        // The leading known class (index 0 is Unknown): the first one holding the largest value,
        // and the largest value among the others. Without branches on the data, so the scan
        // costs the same whatever the order of the classes.
        let known = &self.log_lik[1..];
        let best_l = max_of(known.iter().copied());
        let first = known.iter().position(|l| *l == best_l).unwrap_or(0);
        let second_l = max_of(known.iter().enumerate().map(|(i, l)| if i == first { f64::NEG_INFINITY } else { *l }));
        let best = if best_l.is_finite() { ObjectClass::ALL[first + 1] } else { ObjectClass::Unknown };
        // Every other known class below best - 3: their probabilities sum to at most
        // (COUNT - 2)·e⁻³ ≈ 0.65 of the best one's, so its posterior is above 0.6.
        self.leader = Some((best, best_l.is_finite() && second_l < best_l - 3.0));
    }

    /// The most likely class when its posterior probability is not below one half (as
    /// [`ClassEvidence::best`] would report it), `None` otherwise or before any evidence. Needs no
    /// exponentials when every other class is far less likely.
    pub fn best_if_confident(&self) -> Option<ObjectClass> {
        let (leader, clear) = self.leader?;
        if clear {
            return Some(leader);
        }
        let (class, conf) = self.best();
        // A NaN confidence does not count as below one half (as in the callers' `conf < 0.5`).
        (class != ObjectClass::Unknown && (conf.is_nan() || conf >= 0.5)).then_some(class)
    }

    /// The most likely class and its posterior probability (uniform prior over the known
    /// classes); `Unknown` with confidence 0 before any evidence.
    pub fn best(&self) -> (ObjectClass, f64) {
        if self.log_lik.iter().all(|l| *l == 0.0) {
            return (ObjectClass::Unknown, 0.0);
        }
        let mut best = ObjectClass::Unknown;
        let mut best_l = f64::NEG_INFINITY;
        let mut sum = 0.0;
        // Classes at the floor (usually most of them) share one exponential.
        let mut floor_exp = None;
        for class in ObjectClass::ALL.iter().skip(1) {
            let l = self.log_lik[class.index()];
            sum += if l == LOG_LIK_FLOOR { *floor_exp.get_or_insert_with(|| LOG_LIK_FLOOR.exp()) } else { l.exp() };
            if l > best_l {
                best_l = l;
                best = *class;
            }
        }
        (best, if sum > 0.0 { best_l.exp() / sum } else { 0.0 })
    }
}

/// A V2X self-report linked to a track.
#[derive(Clone, Debug, PartialEq)]
pub struct V2xLink {
    /// The vehicle's V2X id.
    pub vehicle_id: String,
    /// Time of its newest report.
    pub last_report: Timestamp,
}

/// One tracked object.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    /// Stable unique id.
    pub id: u32,
    /// Motion model state at `time`.
    pub motion: MotionState,
    /// Time the motion state refers to.
    pub time: Timestamp,
    /// When the track was spawned.
    pub created: Timestamp,
    /// Newest measurement fused.
    pub last_update: Timestamp,
    /// Confirmed (ever).
    pub confirmed: bool,
    /// Hit history of the last opportunities, newest in bit 0.
    pub hit_bits: u32,
    /// Opportunities recorded so far (saturating at 32).
    pub opportunities: u32,
    /// Class evidence.
    pub class_evidence: ClassEvidence,
    /// Smoothed box size [m].
    pub size: BoxSize,
    /// Whether `size` came from a measurement (lidar or V2X) rather than a class default.
    pub size_measured: bool,
    /// Ground height under the box [m].
    pub z_ground_m: f64,
    /// Last known heading, used where the motion model has none [rad].
    pub yaw_hint_rad: f64,
    /// Source kinds that ever updated the track.
    pub sources_ever: SourceSet,
    /// Per sensor index, the capture time of its newest update of this track (sorted by index).
    pub seen: Vec<(usize, Timestamp)>,
    /// The V2X self-report linked to this track.
    pub v2x: Option<V2xLink>,
    /// Smoothed longitudinal acceleration [m/s²].
    pub accel_mps2: f64,
    /// Speed [m/s] at the update before, with its time, for the acceleration estimate.
    pub speed_ref: Option<(Timestamp, f64)>,
    /// Recent positions (time, x, y), oldest first.
    pub path: VecDeque<(Timestamp, [f64; 2])>,
}

impl Track {
    /// Records an opportunity (a sensor update that covered the track): hit or miss.
    pub fn record(&mut self, hit: bool) {
        self.hit_bits = (self.hit_bits << 1) | u32::from(hit);
        self.opportunities = (self.opportunities + 1).min(32);
    }

    /// Hits among the last `window` opportunities.
    pub fn hits_in(&self, window: u32) -> u32 {
        let mask = if window >= 32 { u32::MAX } else { (1u32 << window) - 1 };
        (self.hit_bits & mask).count_ones()
    }

    /// Notes that sensor `sensor` updated the track with a measurement captured at `t`.
    pub fn mark_seen(&mut self, sensor: usize, t: Timestamp) {
        match self.seen.binary_search_by_key(&sensor, |e| e.0) {
            Ok(i) => self.seen[i].1 = self.seen[i].1.max(t),
            Err(i) => self.seen.insert(i, (sensor, t)),
        }
    }

    /// Lifecycle status at `at`.
    pub fn status(&self, at: Timestamp, coast_after_s: f64) -> TrackStatus {
        if !self.confirmed {
            TrackStatus::Tentative
        } else if at.secs_since(self.last_update) > coast_after_s {
            TrackStatus::Coasting
        } else {
            TrackStatus::Confirmed
        }
    }

    /// Blends a measured size in with factor `alpha` (the first measured size is taken whole).
    pub fn smooth_size(&mut self, measured: &BoxSize, alpha: f64) {
        if !measured.is_valid() {
            return;
        }
        if !self.size_measured {
            self.size = *measured;
            self.size_measured = true;
            return;
        }
        let mix = |a: f64, b: f64| a + alpha * (b - a);
        self.size = BoxSize::new(
            mix(self.size.length_m, measured.length_m),
            mix(self.size.width_m, measured.width_m),
            mix(self.size.height_m, measured.height_m),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_evidence_accumulates_across_sources() {
        let mut e = ClassEvidence::default();
        assert_eq!(e.best(), (ObjectClass::Unknown, 0.0));
        e.add(&[(ObjectClass::Car, 0.6), (ObjectClass::Van, 0.3)], 1.0, 0.97);
        let (c, p1) = e.best();
        assert_eq!(c, ObjectClass::Car);
        e.add(&[(ObjectClass::Car, 0.8)], 0.8, 0.97);
        let (c, p2) = e.best();
        assert_eq!(c, ObjectClass::Car);
        assert!(p2 > p1 && p2 < 1.0, "{p1} {p2}");
        for _ in 0..20 {
            e.add(&[(ObjectClass::Van, 0.9)], 1.0, 0.8);
        }
        assert_eq!(e.best().0, ObjectClass::Van, "forgetting lets the class change");
    }

    #[test]
    fn a_single_score_takes_the_same_arithmetic_as_many() {
        let mut rng_state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            (rng_state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut one, mut many) = (ClassEvidence::default(), ClassEvidence::default());
        for k in 0..2_000 {
            let class = ObjectClass::ALL[k % ObjectClass::COUNT];
            let score = match k % 7 {
                0 => 0.0,
                1 => 1.5,
                2 => f64::NAN,
                _ => next(),
            };
            let (weight, decay) = (0.2 + next(), 0.5 + 0.5 * next());
            one.add_one(class, score, weight, decay);
            many.add_many(&[(class, score)], weight, decay);
            assert_eq!(one, many, "step {k}: {class:?} {score}");
        }
    }

    #[test]
    fn hit_window_counts() {
        let mut t = Track {
            id: 1,
            motion: MotionState::Static { x: nalgebra::Vector2::zeros(), p: nalgebra::Matrix2::identity() },
            time: Timestamp::EPOCH,
            created: Timestamp::EPOCH,
            last_update: Timestamp::EPOCH,
            confirmed: false,
            hit_bits: 0,
            opportunities: 0,
            class_evidence: ClassEvidence::default(),
            size: BoxSize::new(1.0, 1.0, 1.0),
            size_measured: false,
            z_ground_m: 0.0,
            yaw_hint_rad: 0.0,
            sources_ever: SourceSet::NONE,
            seen: Vec::new(),
            v2x: None,
            accel_mps2: 0.0,
            speed_ref: None,
            path: VecDeque::new(),
        };
        for hit in [true, false, true, true, false] {
            t.record(hit);
        }
        assert_eq!(t.hits_in(5), 3);
        assert_eq!(t.hits_in(2), 1);
        t.mark_seen(3, Timestamp::from_nanos(5));
        t.mark_seen(1, Timestamp::from_nanos(7));
        t.mark_seen(3, Timestamp::from_nanos(9));
        assert_eq!(t.seen, vec![(1, Timestamp::from_nanos(7)), (3, Timestamp::from_nanos(9))]);
        t.smooth_size(&BoxSize::new(4.0, 2.0, 1.5), 0.5);
        t.smooth_size(&BoxSize::new(6.0, 2.0, 1.5), 0.5);
        assert!((t.size.length_m - 5.0).abs() < 1e-12);
    }
}
