//! Each camera's pixel noise as its own boxes show it. The calibration's `pixel_sigma_px` is
//! measured in good light; at night, in rain or with a worse detector the box edges scatter more,
//! and a tracker that trusts them as much as by day keeps losing its tracks: the boxes fall
//! outside the gates, and each spawns a duplicate near the true object. The innovations of the
//! confirmed tracks a camera updates tell the noise apart from the tracks' own uncertainty
//! (E[y yᵀ] = J P Jᵀ + R), so the estimate follows the camera's real noise and never drops
//! below the calibration's. It is part of the fused state: checkpointed and rolled back with the
//! tracks, so out-of-sequence fusion stays exact.

use nalgebra::{Matrix2, Vector2};

/// Largest estimated pixel noise as a multiple of the calibration's: no scene moves it further
/// (tracks that go wrong do not make the noise grow without bound).
const MAX_SIGMA_FACTOR: f64 = 4.0;

/// The estimated pixel noise variance of every sensor, by sensor index [px²] (lidars keep 0).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct PixelNoise {
    var_px2: Vec<f64>,
}

impl PixelNoise {
    /// Starts from the calibrations' pixel noise [px] (0 for sensors that are not cameras).
    pub(super) fn new(calibrated_sigma_px: impl Iterator<Item = f64>) -> Self {
        PixelNoise { var_px2: calibrated_sigma_px.map(|s| s * s).collect() }
    }

    /// Estimated pixel noise variance of sensor `si` [px²], at least `calibrated_sigma_px`².
    pub(super) fn variance_px2(&self, si: usize, calibrated_sigma_px: f64) -> f64 {
        self.var_px2.get(si).copied().unwrap_or(0.0).max(calibrated_sigma_px.powi(2))
    }

    /// Learns from one innovation `y` [px] of a confirmed track whose predicted bottom centre has
    /// covariance `jpj` [px²], with `model_var_px2` of box-model error known apart, by a running
    /// mean of weight `weight` (0 learns nothing).
    pub(super) fn observe(
        &mut self,
        si: usize,
        calibrated_sigma_px: f64,
        y: &Vector2<f64>,
        jpj: &Matrix2<f64>,
        model_var_px2: f64,
        weight: f64,
    ) {
        let floor = calibrated_sigma_px.powi(2);
        let ceiling = (MAX_SIGMA_FACTOR * calibrated_sigma_px).powi(2);
        let Some(v) = self.var_px2.get_mut(si) else { return };
        // Per-axis variance this innovation shows beyond the track's own uncertainty.
        let sample = 0.5 * (y.norm_squared() - jpj.trace()) - model_var_px2;
        if !sample.is_finite() || weight <= 0.0 {
            return;
        }
        *v = (*v + weight * (sample.clamp(0.0, ceiling) - *v)).clamp(floor, ceiling);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_noisier_camera_and_stays_within_its_bounds() {
        let mut noise = PixelNoise::new([0.0, 2.5].into_iter());
        assert_eq!(noise.variance_px2(1, 2.5), 6.25);
        // Innovations of 7 px per axis on tracks with 1 px² of their own uncertainty.
        let y = Vector2::new(7.0, -7.0);
        for _ in 0..500 {
            noise.observe(1, 2.5, &y, &Matrix2::identity(), 0.0, 0.05);
        }
        assert!((noise.variance_px2(1, 2.5) - 48.0).abs() < 0.5, "{}", noise.variance_px2(1, 2.5));
        // Small innovations bring it back down to the calibration, not below.
        for _ in 0..500 {
            noise.observe(1, 2.5, &Vector2::zeros(), &Matrix2::identity(), 0.0, 0.05);
        }
        assert_eq!(noise.variance_px2(1, 2.5), 6.25);
        // Outliers cannot push it past the ceiling.
        for _ in 0..500 {
            noise.observe(1, 2.5, &Vector2::new(1e4, 0.0), &Matrix2::zeros(), 0.0, 0.5);
        }
        assert_eq!(noise.variance_px2(1, 2.5), 100.0);
    }
}
