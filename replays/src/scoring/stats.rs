//! Summaries of error samples: root mean square and nearest-rank percentiles.

/// RMSE and 95th percentile of `errors`, which it reorders (no copy); `None` (undefined) when
/// there are none.
pub(super) fn rmse_p95(mut errors: Vec<f64>) -> Option<(f64, f64)> {
    if errors.is_empty() {
        return None;
    }
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    // The one order statistic needed, without sorting everything (values equal under
    // `total_cmp` are the same bits, so any algorithm picks the same value).
    let p95_rank = rank(errors.len(), 0.95);
    let (_, p95, _) = errors.select_nth_unstable_by(p95_rank - 1, f64::total_cmp);
    Some((rmse, *p95))
}

/// The 1-based nearest rank of quantile `q` among `n > 0` values.
fn rank(n: usize, q: f64) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n)
}

/// Nearest-rank percentile of sorted values; `None` when there are none.
pub(super) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[rank(sorted.len(), q) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&sorted, 0.5), Some(5.0));
        assert_eq!(percentile(&sorted, 0.95), Some(10.0));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None, "no value, no percentile");
        let (rmse, p95) = rmse_p95(vec![3.0, -4.0]).expect("two errors");
        assert!((rmse - 12.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(p95, 3.0);
        assert_eq!(rmse_p95(Vec::new()), None, "no error, no RMSE (not 0)");
    }
}
