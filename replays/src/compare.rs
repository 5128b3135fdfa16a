//! Comparing two campaign reports (`rsu-lab replay validate FOLDER --report R.json`, before and
//! after a software or calibration change): what got better, what got worse, and whether it
//! holds beyond the logs at hand.
//!
//! Replay is deterministic, so a change in one log's score is a real change of the software on
//! that log, not noise: a log that now fails its criteria, or whose MOTA fell by more than the
//! minimum effect, is a regression. Whether a change holds *in general* is a question about the
//! logs as a sample: for the whole campaign, each scenario and each class, the pooled MOTA
//! (1 − errors / truths over the group's logs) is compared with a 95 % interval from a paired
//! bootstrap over the logs (seeded, so a comparison run twice prints the same), and a change is
//! significant when the group has at least [`MIN_LOGS_TO_TEST`] logs and the interval excludes
//! zero. A group that is significantly worse by more than
//! the minimum effect is a regression too. Logs are paired by file name; logs in one report only
//! are listed, not compared.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rsu_fusion::ObjectClass;
use serde::{Deserialize, Serialize};

/// A campaign report as `validate --report` writes it: the fields compared (a figure that was
/// not a number is written as `null`, read as `None`).
#[derive(Clone, Debug, Deserialize)]
pub struct Campaign {
    /// Every log scored.
    pub logs: Vec<LogEntry>,
}

/// One log of a campaign report.
#[derive(Clone, Debug, Deserialize)]
pub struct LogEntry {
    /// The log's path.
    pub file: String,
    /// Its scenario.
    pub scenario: String,
    /// Whether it passed its criteria.
    pub passed: bool,
    /// Its checks.
    pub checks: Vec<CheckEntry>,
    /// Its metrics.
    pub metrics: MetricsEntry,
}

/// One check of a log.
#[derive(Clone, Debug, Deserialize)]
pub struct CheckEntry {
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
}

/// A log's metrics.
#[derive(Clone, Debug, Deserialize)]
pub struct MetricsEntry {
    /// All classes.
    pub overall: ClassEntry,
    /// Per truth class.
    pub per_class: BTreeMap<ObjectClass, ClassEntry>,
    /// IDF1.
    pub idf1: Option<f64>,
    /// Position RMSE [m].
    pub position_rmse_m: Option<f64>,
}

/// CLEAR MOT counts of one class (or all).
#[derive(Clone, Debug, Deserialize)]
pub struct ClassEntry {
    /// MOTA (`None` without truths).
    pub mota: Option<f64>,
    /// Truth instances.
    pub num_truths: u64,
    /// Misses.
    pub num_misses: u64,
    /// False positives.
    pub num_false_positives: u64,
    /// Identity switches (`None` where identities do not apply).
    pub num_switches: Option<u64>,
}

/// How to compare.
#[derive(Clone, Copy, Debug)]
pub struct CompareOptions {
    /// Smallest MOTA drop that counts as a regression.
    pub min_effect: f64,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { min_effect: 0.01, resamples: 2000, seed: 1 }
    }
}

/// Fewest logs in a group for its change to be tested: below it the bootstrap over logs says
/// nothing about logs not in the campaign (one log gives an interval of zero width), and only
/// the per-log rule applies.
pub const MIN_LOGS_TO_TEST: usize = 5;

/// One log, before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogChange {
    /// File name.
    pub file: String,
    /// Scenario.
    pub scenario: String,
    /// MOTA before, after.
    pub mota: (f64, f64),
    /// IDF1 before, after (absent where identities do not apply).
    pub idf1: (Option<f64>, Option<f64>),
    /// Position RMSE before, after [m].
    pub position_rmse_m: (Option<f64>, Option<f64>),
    /// Criteria passed before, after.
    pub passed: (bool, bool),
    /// Criteria failing after that passed before.
    pub newly_failing: Vec<String>,
    /// A regression: it now fails, or its MOTA fell by more than the minimum effect.
    pub regression: bool,
    /// It now passes where it failed, or its MOTA rose by more than the minimum effect.
    pub improvement: bool,
}

/// One group (the campaign, a scenario, a class), before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupChange {
    /// `all`, `scenario <name>` or `class <name>`.
    pub group: String,
    /// Paired logs in it.
    pub logs: usize,
    /// Pooled MOTA before, after.
    pub mota: (f64, f64),
    /// 95 % interval of the change of pooled MOTA (paired bootstrap over the logs).
    pub delta_interval: (f64, f64),
    /// The group has at least [`MIN_LOGS_TO_TEST`] logs and the interval excludes zero.
    pub significant: bool,
    /// Significantly worse by more than the minimum effect.
    pub regression: bool,
}

/// The comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// Every paired log.
    pub logs: Vec<LogChange>,
    /// The campaign, each scenario and each class.
    pub groups: Vec<GroupChange>,
    /// Logs in the report before only.
    pub only_before: Vec<String>,
    /// Logs in the report after only.
    pub only_after: Vec<String>,
    /// Any log or group regressed.
    pub regression: bool,
}

/// A log's CLEAR MOT counts, of one class or all.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    truths: f64,
    errors: f64,
}

impl Counts {
    fn of(m: &ClassEntry) -> Counts {
        let errors = m.num_misses + m.num_false_positives + m.num_switches.unwrap_or(0);
        Counts { truths: m.num_truths as f64, errors: errors as f64 }
    }

    fn mota(totals: Counts) -> f64 {
        if totals.truths > 0.0 { 1.0 - totals.errors / totals.truths } else { 0.0 }
    }
}

fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Pooled MOTA change of `pairs` (before, after counts of each log) with its bootstrap interval.
fn group_change(
    group: String,
    pairs: &[(Counts, Counts)],
    options: &CompareOptions,
    rng: &mut ChaCha8Rng,
) -> GroupChange {
    let pooled = |pick: &mut dyn FnMut() -> usize| {
        let (mut b, mut a) = (Counts::default(), Counts::default());
        for _ in 0..pairs.len() {
            let (before, after) = pairs[pick()];
            b.truths += before.truths;
            b.errors += before.errors;
            a.truths += after.truths;
            a.errors += after.errors;
        }
        (Counts::mota(b), Counts::mota(a))
    };
    let mut i = 0;
    let mota = pooled(&mut || {
        i += 1;
        i - 1
    });
    let mut deltas: Vec<f64> = (0..options.resamples.max(1))
        .map(|_| {
            let (b, a) = pooled(&mut || rng.random_range(0..pairs.len()));
            a - b
        })
        .collect();
    deltas.sort_by(f64::total_cmp);
    let at = |q: f64| deltas[((deltas.len() - 1) as f64 * q).round() as usize];
    let delta_interval = (at(0.025), at(0.975));
    let testable = pairs.len() >= MIN_LOGS_TO_TEST;
    let significant = testable && (delta_interval.0 > 0.0 || delta_interval.1 < 0.0);
    let regression = significant && delta_interval.1 < 0.0 && mota.1 - mota.0 < -options.min_effect;
    GroupChange { group, logs: pairs.len(), mota, delta_interval, significant, regression }
}

/// Compares campaign `after` with campaign `before`.
pub fn compare(before: &Campaign, after: &Campaign, options: &CompareOptions) -> Comparison {
    let by_name = |c: &Campaign| -> BTreeMap<String, LogEntry> {
        c.logs.iter().map(|r| (file_name(&r.file), r.clone())).collect()
    };
    let (b, a) = (by_name(before), by_name(after));
    let only_before = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    let only_after = a.keys().filter(|k| !b.contains_key(*k)).cloned().collect();
    let mut logs = Vec::new();
    let mut all = Vec::new();
    let mut scenarios: BTreeMap<String, Vec<(Counts, Counts)>> = BTreeMap::new();
    let mut classes: BTreeMap<ObjectClass, Vec<(Counts, Counts)>> = BTreeMap::new();
    for (name, rb) in &b {
        let Some(ra) = a.get(name) else { continue };
        let (mb, ma) = (&rb.metrics, &ra.metrics);
        // MOTA of the whole log has truths unless the log has none: then it is 0 either way.
        let mota = (mb.overall.mota.unwrap_or(0.0), ma.overall.mota.unwrap_or(0.0));
        let failing_before: Vec<&str> = rb.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
        let newly_failing: Vec<String> = ra
            .checks
            .iter()
            .filter(|c| !c.passed && !failing_before.contains(&c.name.as_str()))
            .map(|c| c.name.clone())
            .collect();
        let regression = (rb.passed && !ra.passed) || mota.1 - mota.0 < -options.min_effect;
        let improvement = !regression && ((!rb.passed && ra.passed) || mota.1 - mota.0 > options.min_effect);
        logs.push(LogChange {
            file: name.clone(),
            scenario: ra.scenario.clone(),
            mota,
            idf1: (mb.idf1, ma.idf1),
            position_rmse_m: (mb.position_rmse_m, ma.position_rmse_m),
            passed: (rb.passed, ra.passed),
            newly_failing,
            regression,
            improvement,
        });
        let pair = (Counts::of(&mb.overall), Counts::of(&ma.overall));
        all.push(pair);
        scenarios.entry(ra.scenario.clone()).or_default().push(pair);
        for (class, cb) in &mb.per_class {
            let ca = ma.per_class.get(class).map(Counts::of).unwrap_or_default();
            classes.entry(*class).or_default().push((Counts::of(cb), ca));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut groups = Vec::new();
    if !all.is_empty() {
        groups.push(group_change("all".into(), &all, options, &mut rng));
    }
    for (scenario, pairs) in &scenarios {
        groups.push(group_change(format!("scenario {scenario}"), pairs, options, &mut rng));
    }
    for (class, pairs) in &classes {
        let name = serde_json::to_value(class).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        groups.push(group_change(format!("class {name}"), pairs, options, &mut rng));
    }
    let regression = logs.iter().any(|l| l.regression) || groups.iter().any(|g| g.regression);
    Comparison { logs, groups, only_before, only_after, regression }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(truths: f64, errors: f64) -> Counts {
        Counts { truths, errors }
    }

    #[test]
    fn a_consistent_drop_over_many_logs_is_significant_and_a_mixed_one_is_not() {
        let options = CompareOptions::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Every log loses 5 points of MOTA.
        let worse: Vec<_> =
            (0..20).map(|i| (counts(1000.0, 50.0 + f64::from(i)), counts(1000.0, 100.0 + f64::from(i)))).collect();
        let g = group_change("all".into(), &worse, &options, &mut rng);
        assert!(g.significant && g.regression, "{g:?}");
        assert!((g.mota.0 - g.mota.1 - 0.05).abs() < 1e-9);
        assert!(g.delta_interval.1 < 0.0);
        // Half the logs better, half worse, by the same amount: no significant change.
        let mixed: Vec<_> = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    (counts(1000.0, 50.0), counts(1000.0, 100.0))
                } else {
                    (counts(1000.0, 100.0), counts(1000.0, 50.0))
                }
            })
            .collect();
        let g = group_change("all".into(), &mixed, &options, &mut rng);
        assert!(!g.significant && !g.regression, "{g:?}");
        assert!(g.delta_interval.0 < 0.0 && g.delta_interval.1 > 0.0);
        // A better group is significant but no regression.
        let better: Vec<_> = worse.iter().map(|(b, a)| (*a, *b)).collect();
        let g = group_change("all".into(), &better, &options, &mut rng);
        assert!(g.significant && !g.regression);
    }

    #[test]
    fn the_bootstrap_is_repeatable() {
        let pairs: Vec<_> =
            (0..7).map(|i| (counts(500.0, f64::from(i) * 7.0), counts(500.0, f64::from(i) * 5.0 + 3.0))).collect();
        let run = || group_change("g".into(), &pairs, &CompareOptions::default(), &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(run(), run());
    }
}
