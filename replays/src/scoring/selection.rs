//! Which truths and hypotheses of a frame the scorer counts, for tools outside the scorer (the
//! plain-file export that other trackers and py-motmetrics are scored from): the same decisions
//! [`super::Scorer::add_frame`] makes, taken from the same per-frame matching code.

use rsu_fusion::ObjectClass;
use rsu_fusion::class::MotionFamily;
use rsu_fusion::spatial::SpatialGrid;

use super::matching::{FrameScratch, match_family};
use super::{Hypothesis, ScoringConfig, TruthObject};

/// A frame's scoring selection: by index into the frame's truths, whether it is scored (in
/// coverage); by index into its hypotheses, whether it is kept (not within the gate of a truth
/// outside coverage).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameSelection {
    /// Per truth: counted by the scorer.
    pub scored: Vec<bool>,
    /// Per hypothesis: counted by the scorer.
    pub kept: Vec<bool>,
}

/// What [`super::Scorer::add_frame`] would count of `truths` and `hyps` under `config`.
pub fn frame_selection(config: &ScoringConfig, truths: &[TruthObject], hyps: &[Hypothesis]) -> FrameSelection {
    let mut grid = SpatialGrid::new(config.largest_gate_m());
    grid.rebuild(hyps.iter().map(|h| (h.position_m[0], h.position_m[1])));
    let mut f = FrameScratch::default();
    f.gate(config, truths, hyps, &grid, 0.0, |_, _| {});
    let mut scored = vec![false; truths.len()];
    for &i in &f.scored_at {
        scored[i] = true;
    }
    FrameSelection { scored, kept: f.kept }
}

/// The family a class is matched within, by name: `"vehicle"`, `"vru"` (pedestrians and riders)
/// or `"static"`. A truth matches hypotheses of its own family or of class `unknown`.
pub fn match_family_name(class: ObjectClass) -> &'static str {
    match match_family(class) {
        MotionFamily::Vehicle => "vehicle",
        MotionFamily::Pedestrian => "vru",
        MotionFamily::Static => "static",
    }
}

/// The match gate [m] of a truth of `class` under `config`.
pub fn gate_for(config: &ScoringConfig, class: ObjectClass) -> f64 {
    config.gate(match_family(class))
}
