//! Class evidence fused across sources: per known class a log-likelihood with forgetting, kept
//! relative to the leader and floored, classes with equal values held as one group so an update
//! costs the same whatever the number of classes. Kept apart from the track's lifecycle: it is a
//! self-contained model with its own invariants and tests.

use crate::class::ObjectClass;

/// Floor of a class's log-likelihood relative to the best class (the evidence against a class
/// stops growing there).
const LOG_LIK_FLOOR: f64 = -50.0;

/// `LOG_LIK_FLOOR.exp()` (checked by a test): the share of a class at the floor in a posterior.
const FLOOR_EXP: f64 = 1.928_749_847_963_917_8e-22;

/// The leader's posterior when every other known class is at the floor: what
/// [`ClassEvidence::best`] sums and inverts in that case, computed the same way (checked by a
/// test).
const SETTLED_POSTERIOR: f64 = 1.0 / ((ObjectClass::COUNT - 2) as f64 * FLOOR_EXP + 1.0);

/// The known classes (all but Unknown, index 0) as a set of class-index bits.
const KNOWN: u16 = ((1u32 << ObjectClass::COUNT) - 2) as u16;

/// The set holding only class index `i`.
const fn bit(i: usize) -> u16 {
    1 << i
}

/// The class indices in `set`, lowest first.
fn members(set: u16) -> impl Iterator<Item = usize> {
    let mut rest = set;
    std::iter::from_fn(move || {
        (rest != 0).then(|| {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            i
        })
    })
}

/// The larger of `a` and `b`, `a` when they are unordered: a single instruction where `f64::max`
/// needs several to ignore NaN (no NaN reaches it from finite weights and decays).
fn larger(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// Whether a class score counts as evidence: for a known class, finite and positive.
fn usable(class: ObjectClass, score: f64) -> bool {
    score > 0.0 && score < f64::INFINITY && class != ObjectClass::Unknown
}

/// The probability each class without a score gets when the scored classes hold `mass` (Unknown
/// gets 1e-3).
fn others_share(mass: f64) -> f64 {
    ((1.0 - mass) / (ObjectClass::COUNT - 2) as f64).max(1e-3)
}

/// The log-likelihood a class with probability `p` gains over a class without a score, which gets
/// `others`: ln(max(p, others) / others), at least 0.
fn log_ratio(p: f64, others: f64) -> f64 {
    if p > others { (p / others).ln() } else { 0.0 }
}

/// Accumulated class evidence: per known class a log-likelihood, with forgetting; the posterior
/// has a uniform prior over the known classes.
///
/// The log-likelihoods are kept relative to the best one (which is 0) and floored at
/// [`LOG_LIK_FLOOR`] below it. All that Unknown's log-likelihood (never above a known class's)
/// could tell is whether any evidence came at all, so a flag keeps that instead (set by any
/// positive weight; the plain model could also lose it again once thousands of weightless updates
/// decayed every difference to nothing, which this one does not follow).
///
/// Classes holding the same log-likelihood — those never scored, and those pushed down to the
/// floor together — form one group with a single value: decay and renormalisation move them
/// alike until a score picks one out. An update therefore touches only the scored classes and
/// those not in the group (usually the leader and a few recently scored ones), whatever the
/// number of classes. The values match those of the plain model (every class updated and
/// renormalised each time) up to rounding (see the tests).
#[derive(Clone, Debug)]
pub struct ClassEvidence {
    /// Log-likelihood of each known class outside `tied`, relative to the best one (the slots of
    /// Unknown and of the classes in `tied` are not used).
    log_lik: [f64; ObjectClass::COUNT],
    /// The known classes whose log-likelihood is `tied_log_lik` (as class-index bits).
    tied: u16,
    /// The log-likelihood of every class in `tied` ([`LOG_LIK_FLOOR`] while `tied` is empty).
    tied_log_lik: f64,
    /// The leading known class: the first one holding the largest log-likelihood.
    leader: ObjectClass,
    /// Whether every other known class trails the leader by more than 3 (its posterior is then
    /// above one half).
    clear: bool,
    /// Whether evidence of positive weight was added: before that, no class is preferred, not even
    /// a known one over Unknown.
    informed: bool,
    /// The two usable single scores seen last, newest first, with their [`log_ratio`]s: detectors
    /// often repeat a score, and this spares the logarithm.
    ratio_memo: [(f64, f64); 2],
}

impl Default for ClassEvidence {
    fn default() -> Self {
        ClassEvidence {
            log_lik: [0.0; ObjectClass::COUNT],
            tied: KNOWN,
            tied_log_lik: 0.0,
            leader: ObjectClass::ALL[1],
            clear: false,
            informed: false,
            ratio_memo: [(f64::NAN, 0.0); 2],
        }
    }
}

/// Equal when both hold the same evidence (whatever scores they remember).
impl PartialEq for ClassEvidence {
    fn eq(&self, other: &Self) -> bool {
        self.informed == other.informed && self.log_likelihoods() == other.log_likelihoods()
    }
}

impl ClassEvidence {
    /// Adds one observation: class scores (the rest of the probability mass spread over the other
    /// classes), weighted by `weight` (not negative), after decaying the old evidence by `decay`
    /// (in (0, 1]).
    pub fn add(&mut self, scores: &[(ObjectClass, f64)], weight: f64, decay: f64) {
        match scores {
            [(class, score)] => self.add_one(*class, *score, weight, decay),
            _ => self.add_many(scores, weight, decay),
        }
    }

    /// [`ClassEvidence::add`] for any number of scores.
    fn add_many(&mut self, scores: &[(ObjectClass, f64)], weight: f64, decay: f64) {
        let mut p = [0.0; ObjectClass::COUNT];
        let mut scored = 0;
        let mut mass = 0.0;
        for &(class, score) in scores {
            if usable(class, score) {
                p[class.index()] += score.min(1.0);
                mass += score.min(1.0);
                scored |= bit(class.index());
            }
        }
        if mass <= 0.0 {
            return;
        }
        let others = others_share(mass.min(1.0));
        let mut gains = [(0, 0.0); ObjectClass::COUNT];
        let mut n = 0;
        for i in members(scored) {
            gains[n] = (i, weight * log_ratio(p[i], others));
            n += 1;
        }
        self.update(&gains[..n], weight, decay);
    }

    /// [`ClassEvidence::add`] for a single class score (most detectors give one), with the same
    /// arithmetic.
    fn add_one(&mut self, class: ObjectClass, score: f64, weight: f64, decay: f64) {
        if class == ObjectClass::Unknown {
            return;
        }
        // The memory holds usable scores only: a score found there needs no other check.
        let ratio = match self.ratio_memo {
            [(s, ratio), _] if s == score => ratio,
            [newer, (s, ratio)] if s == score => {
                self.ratio_memo = [(s, ratio), newer];
                ratio
            }
            [newer, _] => {
                if !usable(class, score) {
                    return;
                }
                let p = score.min(1.0);
                let ratio = log_ratio(p, others_share(p));
                self.ratio_memo = [(score, ratio), newer];
                ratio
            }
        };
        self.update(&[(class.index(), weight * ratio)], weight, decay);
    }

    /// Decays the evidence by `decay`, adds to each class in `gains` its gain over the classes
    /// without a score (the evidence of weight `weight`), and renormalises.
    #[inline]
    fn update(&mut self, gains: &[(usize, f64)], weight: f64, decay: f64) {
        if let [(i, gain)] = *gains
            && self.settled_under(i, gain, weight, decay)
        {
            return;
        }
        self.update_all(gains, weight, decay);
    }

    /// [`ClassEvidence::update`] without the shortcut for settled evidence.
    #[inline]
    fn update_all(&mut self, gains: &[(usize, f64)], weight: f64, decay: f64) {
        let mut max = f64::NEG_INFINITY;
        let mut scored = 0;
        for &(i, gain) in gains {
            let old = if self.tied & bit(i) != 0 { self.tied_log_lik } else { self.log_lik[i] };
            self.log_lik[i] = old * decay + gain;
            max = larger(max, self.log_lik[i]);
            scored |= bit(i);
        }
        self.tied &= !scored;
        for i in members(KNOWN & !self.tied & !scored) {
            self.log_lik[i] *= decay;
            max = larger(max, self.log_lik[i]);
        }
        if self.tied != 0 {
            self.tied_log_lik *= decay;
            max = larger(max, self.tied_log_lik);
        }
        // Unknown's probability 1e-3 is below every other class's: any weight sets it apart.
        self.informed |= weight > 0.0;
        self.normalise(max);
    }

    /// Whether evidence settled on class `i` (it leads at 0, every other known class is tied at
    /// the floor) stays exactly as it is under an update of `i` alone with `gain`: the update
    /// would set `i` to `gain` and the group to `FLOOR · decay`, and normalising would bring them
    /// back to 0 and the floor, bit for bit, when the group falls to the floor again. A class that
    /// detectors keep confirming, as for most tracks most of the time, then costs no arithmetic.
    fn settled_under(&self, i: usize, gain: f64, weight: f64, decay: f64) -> bool {
        let group_next = self.tied_log_lik * decay;
        let settled = self.tied == KNOWN & !bit(i)
            && self.tied_log_lik == LOG_LIK_FLOOR
            && self.log_lik[i].to_bits() == 0.0f64.to_bits()
            && (self.informed || weight <= 0.0)
            && gain >= group_next
            && gain.is_finite()
            && group_next - gain <= LOG_LIK_FLOOR;
        // Such a state only comes out of `normalise`, which made `i` the leader, clearly.
        debug_assert!(!settled || (self.leader.index() == i && self.clear), "{self:?}");
        settled
    }

    /// Merges another track's evidence into this one.
    pub fn merge(&mut self, other: &ClassEvidence) {
        let (mine, theirs) = (self.log_likelihoods(), other.log_likelihoods());
        let mut max = f64::NEG_INFINITY;
        for i in members(KNOWN) {
            self.log_lik[i] = mine[i] + theirs[i];
            max = larger(max, self.log_lik[i]);
        }
        self.tied = 0;
        self.informed |= other.informed;
        self.normalise(max);
    }

    /// The log-likelihood of every known class (index 0, Unknown, holds 0).
    fn log_likelihoods(&self) -> [f64; ObjectClass::COUNT] {
        let mut l = self.log_lik;
        for i in members(self.tied) {
            l[i] = self.tied_log_lik;
        }
        l[ObjectClass::Unknown.index()] = 0.0;
        l
    }

    /// Makes the best log-likelihood, `max`, 0 (and floors the others at [`LOG_LIK_FLOOR`] below
    /// it), gathers the classes that now hold the group's value into the group and finds the
    /// leading class.
    fn normalise(&mut self, max: f64) {
        self.tied_log_lik = if self.tied == 0 { LOG_LIK_FLOOR } else { larger(self.tied_log_lik - max, LOG_LIK_FLOOR) };
        // The group's first class is the first candidate, then each class outside the group.
        let (mut leader, mut leader_l, mut second_l) = (0, f64::NEG_INFINITY, f64::NEG_INFINITY);
        if self.tied != 0 {
            (leader, leader_l) = (self.tied.trailing_zeros() as usize, self.tied_log_lik);
            if self.tied & (self.tied - 1) != 0 {
                second_l = self.tied_log_lik;
            }
        }
        for i in members(KNOWN & !self.tied) {
            let l = larger(self.log_lik[i] - max, LOG_LIK_FLOOR);
            self.log_lik[i] = l;
            if l == self.tied_log_lik {
                self.tied |= bit(i);
            }
            if l > leader_l || (l == leader_l && i < leader) {
                second_l = leader_l;
                (leader, leader_l) = (i, l);
            } else {
                second_l = larger(second_l, l);
            }
        }
        self.leader = ObjectClass::ALL[leader];
        // Every other known class below best - 3: their probabilities sum to at most
        // (COUNT - 2)·e⁻³ ≈ 0.65 of the best one's, so its posterior is above 0.6.
        self.clear = second_l < leader_l - 3.0;
    }

    /// The most likely class when its posterior probability is not below one half (as
    /// [`ClassEvidence::best`] would report it), `None` otherwise or before any evidence. Needs no
    /// exponentials when every other class is far less likely.
    pub fn best_if_confident(&self) -> Option<ObjectClass> {
        if !self.informed {
            return None;
        }
        if self.clear {
            return Some(self.leader);
        }
        let (class, conf) = self.best();
        // A NaN confidence does not count as below one half (as in the callers' `conf < 0.5`).
        (conf.is_nan() || conf >= 0.5).then_some(class)
    }

    /// The most likely class and its posterior probability (uniform prior over the known
    /// classes); `Unknown` with confidence 0 before any evidence.
    pub fn best(&self) -> (ObjectClass, f64) {
        if !self.informed {
            return (ObjectClass::Unknown, 0.0);
        }
        // Settled on the leader (at 0, every other known class at the floor): the sum below is
        // always the same.
        if self.tied_log_lik == LOG_LIK_FLOOR && self.tied == KNOWN & !bit(self.leader.index()) {
            return (self.leader, SETTLED_POSTERIOR);
        }
        self.best_by_sum()
    }

    /// [`ClassEvidence::best`] of informed evidence, summing the posterior's denominator.
    fn best_by_sum(&self) -> (ObjectClass, f64) {
        // The leader's log-likelihood is 0, and classes at the floor need no exponential either.
        let exp = |l: f64| {
            if l == 0.0 {
                1.0
            } else if l == LOG_LIK_FLOOR {
                FLOOR_EXP
            } else {
                l.exp()
            }
        };
        let mut sum = if self.tied == 0 { 0.0 } else { f64::from(self.tied.count_ones()) * exp(self.tied_log_lik) };
        for i in members(KNOWN & !self.tied) {
            sum += exp(self.log_lik[i]);
        }
        (self.leader, 1.0 / sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field, bit for bit (the derived `PartialEq` compares the evidence only).
    fn same_evidence(a: &ClassEvidence, b: &ClassEvidence) -> bool {
        a.log_lik.iter().zip(&b.log_lik).all(|(x, y)| x.to_bits() == y.to_bits())
            && a.tied == b.tied
            && a.tied_log_lik.to_bits() == b.tied_log_lik.to_bits()
            && a.leader == b.leader
            && a.clear == b.clear
            && a.informed == b.informed
    }

    #[test]
    fn the_settled_posterior_is_the_summed_one() {
        let mut e = ClassEvidence::default();
        for _ in 0..40 {
            e.add(&[(ObjectClass::Truck, 0.9)], 1.0, 0.97);
        }
        assert!(e.tied_log_lik == LOG_LIK_FLOOR && e.tied == KNOWN & !bit(ObjectClass::Truck.index()));
        assert_eq!(e.best(), (ObjectClass::Truck, SETTLED_POSTERIOR));
        assert_eq!(e.best().1.to_bits(), e.best_by_sum().1.to_bits());
    }

    #[test]
    fn settled_evidence_takes_the_shortcut_only_where_the_full_update_changes_nothing() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(37);
        let (mut shortcuts, mut full) = (0, 0);
        for _ in 0..20_000 {
            // Evidence driven towards one class (or not), then one more single-class update.
            let mut e = ClassEvidence::default();
            let class = ObjectClass::ALL[rng.random_range(1..ObjectClass::COUNT)];
            let decay = rng.random_range(0.9..0.99);
            for _ in 0..rng.random_range(0..150) {
                let c = if rng.random_bool(0.95) {
                    class
                } else {
                    ObjectClass::ALL[rng.random_range(1..ObjectClass::COUNT)]
                };
                e.add(&[(c, rng.random_range(0.5..1.0))], rng.random_range(0.5..1.2), decay);
            }
            let gain = rng.random_range(-1.0..6.0);
            let weight = rng.random_range(0.0..1.2);
            let i = if rng.random_bool(0.9) { class.index() } else { rng.random_range(1..ObjectClass::COUNT) };
            let mut all = e.clone();
            all.update_all(&[(i, gain)], weight, decay);
            if e.settled_under(i, gain, weight, decay) {
                shortcuts += 1;
                assert!(same_evidence(&all, &e), "{e:?} → {all:?}");
            } else {
                full += 1;
            }
            let mut via = e.clone();
            via.update(&[(i, gain)], weight, decay);
            assert!(same_evidence(&via, &all));
            if via.informed {
                let (a, b) = (via.best(), via.best_by_sum());
                assert!(a.0 == b.0 && a.1.to_bits() == b.1.to_bits(), "{a:?} vs {b:?}");
            }
        }
        assert!(shortcuts > 2_000 && full > 2_000, "{shortcuts} shortcuts, {full} full updates");
    }

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

    /// The evidence model computed plainly, without the class groups: all
    /// fifteen log-likelihoods, Unknown's included, decayed, updated and renormalised in full.
    #[derive(Clone, Default)]
    struct Reference {
        log_lik: [f64; ObjectClass::COUNT],
    }

    impl Reference {
        fn add(&mut self, scores: &[(ObjectClass, f64)], weight: f64, decay: f64) {
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
            let others = ((1.0 - mass.min(1.0)) / (ObjectClass::COUNT - 2) as f64).max(1e-3);
            for class in ObjectClass::ALL {
                let p = if class == ObjectClass::Unknown { 1e-3 } else { p[class.index()].max(others) };
                let l = &mut self.log_lik[class.index()];
                *l = *l * decay + weight * p.ln();
            }
            self.normalise();
        }

        fn merge(&mut self, other: &Reference) {
            for (a, b) in self.log_lik.iter_mut().zip(other.log_lik) {
                *a += b;
            }
            self.normalise();
        }

        fn normalise(&mut self) {
            let max = self.log_lik.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for l in &mut self.log_lik {
                *l = (*l - max).max(LOG_LIK_FLOOR);
            }
        }

        fn informed(&self) -> bool {
            self.log_lik.iter().any(|l| *l != 0.0)
        }

        fn best(&self) -> (ObjectClass, f64) {
            if !self.informed() {
                return (ObjectClass::Unknown, 0.0);
            }
            let (mut best, mut best_l, mut sum) = (ObjectClass::Unknown, f64::NEG_INFINITY, 0.0);
            for class in &ObjectClass::ALL[1..] {
                let l = self.log_lik[class.index()];
                sum += l.exp();
                if l > best_l {
                    (best, best_l) = (*class, l);
                }
            }
            (best, best_l.exp() / sum)
        }

        fn best_if_confident(&self) -> Option<ObjectClass> {
            let (class, conf) = self.best();
            (class != ObjectClass::Unknown && conf >= 0.5).then_some(class)
        }
    }

    /// Random class scores as detectors give them: mostly one score, often a repeated value, mostly
    /// for the sequence's `favourite` class; sometimes several scores, Unknown, or invalid ones.
    fn random_scores(rng: &mut impl rand::Rng, favourite: ObjectClass) -> Vec<(ObjectClass, f64)> {
        let n = if rng.random_bool(0.7) { 1 } else { rng.random_range(0..5) };
        (0..n)
            .map(|_| {
                let class = if rng.random_bool(0.6) { favourite } else { ObjectClass::ALL[rng.random_range(0..15)] };
                let score = match rng.random_range(0..20) {
                    0 => [0.0, -0.1, f64::NAN, f64::INFINITY, 1.5][rng.random_range(0..5)],
                    1..=6 => [0.9, 0.8, 0.95, 0.5, 0.05, 1.0][rng.random_range(0..6)],
                    _ => rng.random::<f64>(),
                };
                (class, score)
            })
            .collect()
    }

    /// A random evidence weight and decay, often the configured ones or the extremes.
    fn random_weight_decay(rng: &mut impl rand::Rng) -> (f64, f64) {
        let weight =
            if rng.random_bool(0.2) { [0.0, 0.8, 1.0, 4.0][rng.random_range(0..4)] } else { 5.0 * rng.random::<f64>() };
        let decay = match rng.random_range(0..5) {
            0 => 1.0,
            1 => 0.97,
            2 => 0.3 + 0.7 * rng.random::<f64>(),
            _ => 0.85 + 0.15 * rng.random::<f64>(),
        };
        (weight, decay)
    }

    /// Asserts that `e` holds the reference's evidence: log-likelihoods within 1e-9, the same
    /// best class (up to a tie within 1e-9) and confidence (within 1e-9 relative), the same
    /// confident class (up to a confidence within 1e-9 of one half). Returns whether a near tie
    /// was let through.
    fn assert_agrees(e: &ClassEvidence, r: &Reference, what: &str) -> bool {
        assert_eq!(e.informed, r.informed(), "{what}");
        if !e.informed {
            assert_eq!(e.best(), (ObjectClass::Unknown, 0.0), "{what}");
            assert_eq!(e.best_if_confident(), None, "{what}");
            return false;
        }
        let l = e.log_likelihoods();
        for class in &ObjectClass::ALL[1..] {
            let (a, b) = (l[class.index()], r.log_lik[class.index()]);
            assert!((a - b).abs() <= 1e-9, "{what}: {class:?} {a} vs {b}");
        }
        let ((class, conf), (ref_class, ref_conf)) = (e.best(), r.best());
        assert!((conf - ref_conf).abs() <= 1e-9 * ref_conf, "{what}: confidence {conf} vs {ref_conf}");
        let near_tie = class != ref_class;
        if near_tie {
            assert!(r.log_lik[class.index()] >= -1e-9, "{what}: {class:?} vs {ref_class:?}");
        }
        if (ref_conf - 0.5).abs() > 1e-9 {
            let expected = r.best_if_confident().map(|_| class);
            assert_eq!(e.best_if_confident(), expected, "{what}: confidence {ref_conf}");
        }
        near_tie
    }

    #[test]
    fn grouped_evidence_agrees_with_the_plain_model() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        let (mut steps, mut near_ties, mut floored) = (0, 0, 0);
        for sequence in 0..3_000 {
            let favourite = ObjectClass::ALL[rng.random_range(0..15)];
            let (mut e, mut r) = (ClassEvidence::default(), Reference::default());
            for step in 0..rng.random_range(1..400) {
                if rng.random_bool(0.03) {
                    // Another track's evidence, merged in.
                    let (mut e2, mut r2) = (ClassEvidence::default(), Reference::default());
                    for _ in 0..rng.random_range(0..40) {
                        let scores = random_scores(&mut rng, favourite);
                        let (weight, decay) = random_weight_decay(&mut rng);
                        e2.add(&scores, weight, decay);
                        r2.add(&scores, weight, decay);
                    }
                    e.merge(&e2);
                    r.merge(&r2);
                } else {
                    let scores = random_scores(&mut rng, favourite);
                    let (weight, decay) = random_weight_decay(&mut rng);
                    e.add(&scores, weight, decay);
                    r.add(&scores, weight, decay);
                }
                near_ties += usize::from(assert_agrees(&e, &r, &format!("sequence {sequence} step {step}")));
                floored += usize::from(r.log_lik[1..].contains(&LOG_LIK_FLOOR));
                steps += 1;
            }
        }
        println!("{steps} steps, {floored} with a class at the floor, {near_ties} near ties");
        assert!(floored > steps / 5, "the floor is exercised: {floored} of {steps}");
        assert!(near_ties * 10_000 < steps, "{near_ties} near ties in {steps} steps");
    }

    #[test]
    fn floor_exponential_is_exact() {
        assert_eq!(FLOOR_EXP, LOG_LIK_FLOOR.exp());
    }
}
