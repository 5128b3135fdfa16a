//! Detector error effects that the lidar and camera models share, the ones that make detections
//! look like a real detector's rather than like noisy ground truth: heavy-tailed errors (Student-t
//! instead of Gaussian), missed detections in bursts (a two-state Gilbert–Elliott chain per
//! object), objects a detector consistently finds ambiguous (class confusion that sticks to an
//! object instead of flickering frame by frame), clutter scores that overlap the real ones, and
//! persistent clutter sites that fire again and again at the same place.
//!
//! Every draw comes from the sensor's own seeded stream, so a recording stays a pure function of
//! its seed.

use std::collections::BTreeMap;

use nalgebra::{Point2, Point3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StudentT};
use rsu_fusion::{BoxSize, ObjectClass};

use super::maybe_confuse;

/// A zero-centred Student-t sample with `dof` degrees of freedom and scale `scale` (the core
/// width: a t with many degrees of freedom is N(0, scale)); 0 when the scale is not positive.
/// With 3 to 5 degrees of freedom most samples fall where the Gaussian's would, but a few
/// percent land 3 to 10 scales out: the outliers that real detectors produce (a box fitted to
/// half an object, two clusters taken for one).
pub fn heavy_tailed(rng: &mut ChaCha8Rng, scale: f64, dof: f64) -> f64 {
    if scale <= 0.0 {
        return 0.0;
    }
    StudentT::new(dof).map_or(0.0, |t| scale * t.sample(rng))
}

/// A Gilbert–Elliott chain for missed detections: per object and sensor, a *good* state (the
/// detector's usual probability) and a *bad* one (a reflective surface, an unusual pose, a
/// cluster the segmentation splits off: the detection probability falls to a fraction of its
/// value) that lasts a few frames. Misses then come in bursts, as on real detectors, instead of
/// as independent coin flips the tracker can easily bridge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstMisses {
    /// Probability per frame of entering the bad state [0..1].
    pub p_enter: f64,
    /// Probability per frame of leaving it (mean burst length 1 / p_leave frames) [0..1].
    pub p_leave: f64,
    /// Factor on the detection probability while bad [0..1].
    pub detection_factor: f64,
}

impl Default for BurstMisses {
    /// Bursts of 3.3 frames on average (p_leave 0.3), entered with p = 0.03 per frame, the
    /// detection probability × 0.15 while in one: about 8 % of an object's frames are misses.
    fn default() -> Self {
        BurstMisses { p_enter: 0.03, p_leave: 0.3, detection_factor: 0.15 }
    }
}

/// A per-object trait of one sensor's detector, decided when the sensor first sees the object.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ambiguity {
    /// Probability that an object is one the detector finds ambiguous [0..1].
    pub prob: f64,
    /// Class confusion probability for such an object, in every frame [0..1].
    pub confusion_prob: f64,
}

impl Default for Ambiguity {
    /// One object in ten confused in 30 % of its frames.
    fn default() -> Self {
        Ambiguity { prob: 0.1, confusion_prob: 0.3 }
    }
}

/// What a sensor's detector remembers about one object between frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ObjectMemory {
    /// In the bad state of the burst chain.
    bad: bool,
    /// Consistently confused.
    ambiguous: bool,
    /// The frame it was last evaluated in.
    frame: u64,
}

/// The per-object state of one sensor's detector, kept while the object stays in view (an
/// object that leaves and comes back starts afresh).
#[derive(Clone, Debug, Default)]
pub struct ObjectStates {
    objects: BTreeMap<u32, ObjectMemory>,
    frame: u64,
}

/// One object's draw for one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObjectDraw {
    /// Factor on the detection probability (the burst chain).
    pub detection_factor: f64,
    /// Consistently confused by this sensor.
    pub ambiguous: bool,
}

impl ObjectStates {
    /// Starts a frame: objects not evaluated in the previous one are forgotten.
    pub fn begin_frame(&mut self) {
        let last = self.frame;
        self.objects.retain(|_, m| m.frame == last);
        self.frame += 1;
    }

    /// Steps object `id`'s chain for this frame and returns its draw.
    pub fn draw(&mut self, rng: &mut ChaCha8Rng, id: u32, bursts: &BurstMisses, ambiguity: &Ambiguity) -> ObjectDraw {
        let frame = self.frame;
        let memory = match self.objects.get_mut(&id) {
            Some(m) => {
                m.bad = if m.bad {
                    !rng.random_bool(bursts.p_leave.clamp(0.0, 1.0))
                } else {
                    rng.random_bool(bursts.p_enter.clamp(0.0, 1.0))
                };
                m.frame = frame;
                *m
            }
            None => {
                let m = ObjectMemory {
                    bad: rng.random_bool(bursts.p_enter.clamp(0.0, 1.0)),
                    ambiguous: rng.random_bool(ambiguity.prob.clamp(0.0, 1.0)),
                    frame,
                };
                self.objects.insert(id, m);
                m
            }
        };
        ObjectDraw {
            detection_factor: if memory.bad { bursts.detection_factor } else { 1.0 },
            ambiguous: memory.ambiguous,
        }
    }
}

/// `class` as this frame's detector reports it: an ambiguous object is confused with
/// `ambiguity.confusion_prob`, any other with `p_confuse`.
pub fn reported_class(
    rng: &mut ChaCha8Rng,
    class: ObjectClass,
    draw: &ObjectDraw,
    ambiguity: &Ambiguity,
    p_confuse: f64,
) -> ObjectClass {
    maybe_confuse(rng, class, if draw.ambiguous { ambiguity.confusion_prob.max(p_confuse) } else { p_confuse })
}

/// The score of a clutter detection: `min + (max - min) u²` for uniform u, so most clutter scores
/// low but about a quarter of it (with the defaults 0.1 and 0.85) scores above 0.5, where the
/// weaker real detections are: no single score threshold separates the two.
pub fn clutter_score(rng: &mut ChaCha8Rng, min: f64, max: f64) -> f64 {
    let u: f64 = rng.random_range(0.0..1.0);
    min + (max - min) * u * u
}

/// How persistent clutter behaves: a few fixed places per sensor (a pole, a bush moving in the
/// wind, a reflective sign) that produce a detection in runs of frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PersistentClutter {
    /// Clutter sites per sensor.
    pub sites: usize,
    /// Probability per frame that a quiet site starts firing [0..1].
    pub p_start: f64,
    /// Probability per frame that a firing site stops [0..1].
    pub p_stop: f64,
    /// Lowest score of its detections.
    pub score_min: f64,
    /// Highest score of its detections.
    pub score_max: f64,
}

/// One persistent clutter site's on/off chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteChain {
    firing: bool,
}

impl SiteChain {
    /// Steps the chain; true when the site fires in this frame.
    pub fn step(&mut self, rng: &mut ChaCha8Rng, params: &PersistentClutter) -> bool {
        self.firing = if self.firing {
            !rng.random_bool(params.p_stop.clamp(0.0, 1.0))
        } else {
            rng.random_bool(params.p_start.clamp(0.0, 1.0))
        };
        self.firing
    }
}

/// Where a persistent clutter site is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SitePlace {
    /// A lidar's: a box on the ground.
    Ground {
        /// Centre [m], sensor frame.
        center_in_sensor: Point3<f64>,
        /// Extent [m].
        size: BoxSize,
        /// Yaw in the sensor frame [rad].
        yaw_rad: f64,
    },
    /// A camera's: a box in the image.
    Image {
        /// Top-left [px].
        min_px: Point2<f64>,
        /// Bottom-right [px].
        max_px: Point2<f64>,
    },
}

/// A persistent clutter site of one sensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClutterSite {
    /// Where.
    pub place: SitePlace,
    /// The class its detections get.
    pub class: ObjectClass,
    /// Its on/off chain.
    pub chain: SiteChain,
}

/// What one sensor's detector carries from frame to frame.
#[derive(Clone, Debug, Default)]
pub struct DetectorMemory {
    /// Per-object burst and ambiguity state.
    pub objects: ObjectStates,
    /// Persistent clutter sites, placed at the first frame (`None` before).
    pub sites: Option<Vec<ClutterSite>>,
}

/// Probability that two detected objects whose footprints are `gap_m` apart come out as one box:
/// `max_prob` when they touch or overlap, falling linearly to 0 at `max_gap_m`.
pub fn merge_probability(gap_m: f64, max_gap_m: f64, max_prob: f64) -> f64 {
    if max_gap_m <= 0.0 {
        return 0.0;
    }
    max_prob * (1.0 - gap_m / max_gap_m).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::rng_stream;

    #[test]
    fn heavy_tails_have_a_gaussian_core_and_outliers() {
        let mut rng = rng_stream(3, 1);
        let samples: Vec<f64> = (0..20_000).map(|_| heavy_tailed(&mut rng, 1.0, 4.0)).collect();
        let mut abs: Vec<f64> = samples.iter().map(|s| s.abs()).collect();
        abs.sort_by(f64::total_cmp);
        // The median absolute value of t(4) is 0.741 (N(0,1): 0.674).
        let median = abs[abs.len() / 2];
        assert!((median - 0.741).abs() < 0.03, "{median}");
        // Beyond 4 scales: 1.6 % for t(4), 0.006 % for a Gaussian.
        let beyond = abs.iter().filter(|a| **a > 4.0).count() as f64 / abs.len() as f64;
        assert!(beyond > 0.01 && beyond < 0.025, "{beyond}");
        assert_eq!(heavy_tailed(&mut rng, 0.0, 4.0), 0.0);
    }

    #[test]
    fn misses_come_in_bursts_of_the_configured_length() {
        let bursts = BurstMisses { p_enter: 0.05, p_leave: 0.25, detection_factor: 0.0 };
        let never = Ambiguity { prob: 0.0, confusion_prob: 0.0 };
        let mut states = ObjectStates::default();
        let mut rng = rng_stream(5, 2);
        let mut bad = Vec::new();
        for _ in 0..40_000 {
            states.begin_frame();
            bad.push(states.draw(&mut rng, 7, &bursts, &never).detection_factor == 0.0);
        }
        let bad_fraction = bad.iter().filter(|b| **b).count() as f64 / bad.len() as f64;
        // Stationary: p_enter / (p_enter + p_leave) = 1/6.
        assert!((bad_fraction - 1.0 / 6.0).abs() < 0.02, "{bad_fraction}");
        let bursts_started = bad.windows(2).filter(|w| !w[0] && w[1]).count();
        let mean_burst = bad.iter().filter(|b| **b).count() as f64 / bursts_started as f64;
        assert!((mean_burst - 4.0).abs() < 0.4, "{mean_burst}");
    }

    #[test]
    fn an_object_out_of_view_for_a_frame_is_forgotten() {
        let bursts = BurstMisses { p_enter: 0.0, p_leave: 0.0, detection_factor: 0.0 };
        let always = Ambiguity { prob: 1.0, confusion_prob: 1.0 };
        let mut states = ObjectStates::default();
        let mut rng = rng_stream(5, 3);
        states.begin_frame();
        assert!(states.draw(&mut rng, 1, &bursts, &always).ambiguous);
        states.begin_frame();
        states.begin_frame();
        assert!(states.objects.is_empty());
    }

    #[test]
    fn about_a_quarter_of_clutter_scores_above_one_half() {
        let mut rng = rng_stream(9, 1);
        let scores: Vec<f64> = (0..10_000).map(|_| clutter_score(&mut rng, 0.1, 0.85)).collect();
        let high = scores.iter().filter(|s| **s > 0.5).count() as f64 / scores.len() as f64;
        assert!((high - 0.27).abs() < 0.02, "{high}");
        assert!(scores.iter().all(|s| (0.1..=0.85).contains(s)));
    }

    #[test]
    fn merge_probability_falls_with_the_gap() {
        assert_eq!(merge_probability(-0.2, 0.5, 0.7), 0.7);
        assert!((merge_probability(0.25, 0.5, 0.7) - 0.35).abs() < 1e-12);
        assert_eq!(merge_probability(0.6, 0.5, 0.7), 0.0);
        assert_eq!(merge_probability(0.0, 0.0, 0.7), 0.0);
    }
}
