//! Validation reports: a JSON document for machines (stable field names, documented in
//! `METRICS.md`) and a self-contained HTML page for people, with pass/fail and the failing
//! criteria at the top, a metrics table, and inline SVG plots (bird's-eye trajectories of ground
//! truth against fused tracks, position error over time, broadcast age histogram).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rsu_site::SiteModel;
use serde::{Deserialize, Serialize};

use crate::charts;
use crate::criteria::Check;
use crate::pipeline::ReplaySummary;
use crate::scoring::Metrics;

/// The report version; bumped when a field changes meaning or is removed.
/// 2: MOTP, the state errors and the time-to-track summaries are `null` when undefined (nothing
/// to measure them on) instead of 0; `num_transfers` and `never_tracked_in_coverage_s` added.
pub const REPORT_VERSION: u32 = 2;

/// The validation result of one log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogReport {
    /// Report format version ([`REPORT_VERSION`]).
    pub report_version: u32,
    /// The log file.
    pub file: String,
    /// Scenario name from the log's metadata.
    pub scenario: String,
    /// Seed from the log's metadata.
    pub seed: u64,
    /// Whether every check passed.
    pub passed: bool,
    /// Which criteria judged the log (a file, a scenario's built-in criteria, or the generic
    /// defaults); absent in reports that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<crate::criteria::CriteriaSource>,
    /// Every check, failing and passing.
    pub checks: Vec<Check>,
    /// The metrics.
    pub metrics: Metrics,
    /// Age of broadcast objects (frame time minus newest fused measurement) [s], over the
    /// broadcast ticks up to the log's last input.
    pub broadcast_age_s: Distribution,
    /// The recorded live broadcast's scores (`replay validate --live`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<crate::live::LiveSection>,
    /// Counters of the replay.
    pub replay: ReplaySummary,
    /// Wall time of the validation [s] and how much faster than real time it ran.
    pub wall_time_s: f64,
    /// Log duration / wall time.
    pub speedup: f64,
}

/// A few quantiles of a sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Sample size.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Distribution {
    /// Quantiles (nearest rank) of `values`, ordered by `f64::total_cmp`.
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Distribution::default();
        }
        // Each quantile is one order statistic, found by selection instead of a full sort (values
        // equal under `total_cmp` have the same bits, so the value found is the same).
        let mut v = values.to_vec();
        let n = v.len();
        let mut q =
            |p: f64| *v.select_nth_unstable_by(((p * n as f64).ceil() as usize).clamp(1, n) - 1, f64::total_cmp).1;
        Distribution { count: n as u64, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: q(1.0) }
    }
}

/// What the HTML plots draw, gathered during the replay.
#[derive(Clone, Debug, Default)]
pub struct PlotData {
    /// Ground-truth trajectories by id: (east, north) [m].
    pub truth_tracks: BTreeMap<u32, Vec<[f64; 2]>>,
    /// Fused trajectories by track id: (east, north) [m].
    pub fused_tracks: BTreeMap<u32, Vec<[f64; 2]>>,
    /// (seconds since start, mean matched position error [m]) per scored frame.
    pub error_over_time: Vec<(f64, f64)>,
    /// Broadcast object ages [s].
    pub ages_s: Vec<f64>,
    /// Sensor positions (east, north) [m] and ids.
    pub sensors: Vec<(String, [f64; 2])>,
    /// The log's site id (its map is drawn under the bird's-eye view when known).
    pub site_id: String,
}

/// A metric that may not apply to the log (identity metrics of ground truth without persistent
/// ids) with `decimals` decimals, or `n/a`.
pub fn or_na<T: std::fmt::Display>(value: Option<T>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A self-contained HTML page reporting every log: the overall verdict and a table of logs at
/// the top, then one section per log.
/// Each log's bird's-eye view is drawn on `site`'s map when it is the log's site.
pub fn html_page(logs: &[(LogReport, PlotData)], unreadable: &[(String, String)], site: Option<&SiteModel>) -> String {
    let passed = unreadable.is_empty() && logs.iter().all(|(r, _)| r.passed);
    let verdict = if passed { "PASS" } else { "FAIL" };
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{verdict} · replay validation</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}}\
         .v{{font-size:2em;font-weight:bold}}.fail{{color:#c1121f}}.pass{{color:#2b9348}}\
         section{{border-top:3px solid #ddd;margin-top:2em}}code{{background:#f3f3f3;padding:1px 4px}}</style></head><body>"
    );
    let class = if passed { "pass" } else { "fail" };
    let _ = write!(
        s,
        "<div class=\"v {class}\">{verdict}</div><p>{} logs validated, {} unreadable.</p>",
        logs.len(),
        unreadable.len()
    );
    s.push_str(
        "<table><tr><th>log</th><th>scenario</th><th>result</th><th>MOTA</th><th>IDF1</th><th>failing</th></tr>",
    );
    for (r, _) in logs {
        let (class, word) = if r.passed { ("pass", "pass") } else { ("fail", "FAIL") };
        let failing = r.checks.iter().filter(|c| !c.passed).count();
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"{class}\">{word}</td><td>{:.3}</td><td>{}</td><td>{failing}</td></tr>",
            esc(&r.file),
            esc(&r.scenario),
            r.metrics.overall.mota,
            or_na(r.metrics.idf1, 3)
        );
    }
    for (file, error) in unreadable {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td></td><td class=\"fail\">UNREADABLE</td><td colspan=\"3\">{}</td></tr>",
            esc(file),
            esc(error)
        );
    }
    s.push_str("</table>");
    for (report, plot) in logs {
        s.push_str(&html_section(report, plot, site.filter(|m| m.config.site_id == plot.site_id)));
    }
    s.push_str("</body></html>\n");
    s
}

/// A speed-up factor with the digits it needs: "212×", "3.4×", "0.47×".
pub fn times(factor: f64) -> String {
    if factor >= 10.0 {
        format!("{factor:.0}×")
    } else if factor >= 1.0 {
        format!("{factor:.1}×")
    } else {
        format!("{factor:.2}×")
    }
}

/// The HTML section of one log.
fn html_section(report: &LogReport, plot: &PlotData, site: Option<&SiteModel>) -> String {
    let mut s = String::from("<section>");
    let verdict = if report.passed { "PASS" } else { "FAIL" };
    let class = if report.passed { "pass" } else { "fail" };
    // The replay's speed where it was measured (a live run such as the demo's has none).
    let timing = if report.speedup > 0.0 {
        format!(" replayed in {:.2} s ({} real time)", report.wall_time_s, times(report.speedup))
    } else {
        String::new()
    };
    let _ = write!(
        s,
        "<h1 class=\"{class}\">{verdict}: {}</h1><p>Scenario <b>{}</b> (seed {}), log <code>{}</code>: {:.1} s{timing}.</p>",
        esc(&report.scenario),
        esc(&report.scenario),
        report.seed,
        esc(&report.file),
        report.metrics.duration_s,
    );
    if let Some(damage) = &report.replay.damage {
        let _ = write!(s, "<p class=\"fail\">Recovered: validated what precedes the damage: {}</p>", esc(damage));
    }
    if report.replay.truth_frames == 0 {
        let na = report.checks.iter().filter(|c| c.is_not_applicable()).count();
        let _ = write!(
            s,
            "<p>No ground truth: only what needs none is judged (broadcast age, inputs accepted); {na} criteria \
             are not applicable and the tracking metrics below are not measured.</p>"
        );
    }
    let failing: Vec<&Check> = report.checks.iter().filter(|c| !c.passed).collect();
    if failing.is_empty() {
        let _ = write!(s, "<p class=\"pass\">All {} criteria passed.</p>", report.checks.len());
    } else {
        s.push_str("<h2 class=\"fail\">Failing criteria</h2><ul>");
        for c in &failing {
            let _ = write!(s, "<li class=\"fail\"><code>{}</code>: {}</li>", esc(&c.name), esc(&c.message));
        }
        s.push_str("</ul>");
    }
    let m = &report.metrics;
    s.push_str("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>");
    let never_tracked = match m.never_tracked_in_coverage_s.values().copied().reduce(f64::max) {
        Some(longest_s) => format!("{} (longest in coverage {longest_s:.2} s)", m.never_tracked),
        None => m.never_tracked.to_string(),
    };
    let rows: [(&str, String); 17] = [
        ("MOTA", format!("{:.4}", m.overall.mota)),
        ("MOTP [m]", or_na(m.overall.motp_m, 3)),
        ("IDF1", or_na(m.idf1, 4)),
        (
            "HOTA (DetA / AssA / LocA)",
            format!(
                "{} ({:.3} / {} / {:.3})",
                or_na(m.hota.hota, 4),
                m.hota.det_a,
                or_na(m.hota.ass_a, 3),
                m.hota.loc_a
            ),
        ),
        ("id switches", or_na(m.overall.num_switches, 0)),
        ("transfers (a track passed to another object)", m.overall.num_transfers.to_string()),
        ("id switches per 100 track-s", or_na(m.switches_per_100_track_s, 2)),
        ("fragmentations", or_na(m.overall.num_fragmentations, 0)),
        ("misses / false positives", format!("{} / {}", m.overall.num_misses, m.overall.num_false_positives)),
        ("position RMSE / p95 [m]", format!("{} / {}", or_na(m.position_rmse_m, 3), or_na(m.position_p95_m, 3))),
        ("velocity RMSE / p95 [m/s]", format!("{} / {}", or_na(m.velocity_rmse_mps, 3), or_na(m.velocity_p95_mps, 3))),
        ("heading RMSE / p95 [deg]", format!("{} / {}", or_na(m.heading_rmse_deg, 2), or_na(m.heading_p95_deg, 2))),
        (
            "time to track median / max, tracked objects [s]",
            format!("{} / {}", or_na(m.time_to_track_median_s, 2), or_na(m.time_to_track_max_s, 2)),
        ),
        ("objects never tracked", never_tracked),
        ("false tracks per minute", format!("{:.2}", m.false_tracks_per_min)),
        ("coverage", format!("{:.3}", m.coverage)),
        (
            "broadcast age p50 / p99 [s]",
            format!("{:.3} / {:.3}", report.broadcast_age_s.p50, report.broadcast_age_s.p99),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(s, "<tr><td>{k}</td><td>{v}</td></tr>");
    }
    s.push_str("</table><h3>Per class</h3><table><tr><th>class</th><th>instances</th><th>MOTA</th><th>MOTP [m]</th><th>misses</th><th>FP</th><th>switches</th></tr>");
    for (class, c) in &m.per_class {
        let _ = write!(
            s,
            "<tr><td>{class}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.num_truths,
            c.mota,
            or_na(c.motp_m, 3),
            c.num_misses,
            c.num_false_positives,
            or_na(c.num_switches, 0)
        );
    }
    s.push_str("</table><h2>Bird's-eye view</h2>");
    s.push_str(&charts::birds_eye_svg(plot, site));
    s.push_str("<h2>Position error over time</h2>");
    s.push_str(&charts::line_chart_svg(
        &plot.error_over_time,
        "Mean position error of matched objects",
        "time since the first truth frame [s]",
        "position error [m]",
    ));
    s.push_str("<h2>Broadcast object age</h2>");
    s.push_str(&charts::histogram_svg(
        &plot.ages_s,
        "Age of broadcast objects: frame time − newest fused measurement",
        "age [s]",
    ));
    s.push_str("<h2>All checks</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>");
    for c in &report.checks {
        let (class, word) = if c.passed { ("pass", "pass") } else { ("fail", "FAIL") };
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.message)
        );
    }
    s.push_str("</table></section>");
    s
}

#[cfg(test)]
mod tests {
    use super::times;

    #[test]
    fn speed_ups_keep_their_digits_below_ten() {
        assert_eq!(times(212.4), "212×");
        assert_eq!(times(3.44), "3.4×");
        assert_eq!(times(15.0 / 31.93), "0.47×", "the demo's replay took longer than real time");
    }
}
