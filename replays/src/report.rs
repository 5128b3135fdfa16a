//! Validation reports: a JSON document for machines (stable field names, documented in
//! `METRICS.md`) and a self-contained HTML page for people, with pass/fail and the failing
//! criteria at the top, a metrics table, and inline SVG plots (bird's-eye trajectories of ground
//! truth against fused tracks, position error over time, broadcast age histogram).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

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
}

/// A metric that may not apply to the log (identity metrics of ground truth without persistent
/// ids) with `decimals` decimals, or `n/a`.
pub fn or_na<T: std::fmt::Display>(value: Option<T>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Maps data coordinates into an SVG box.
struct Frame {
    x0: f64,
    y0: f64,
    sx: f64,
    sy: f64,
    h: f64,
    pad: f64,
}

impl Frame {
    fn new(min: [f64; 2], max: [f64; 2], w: f64, h: f64, equal: bool) -> Frame {
        let pad = 40.0;
        let dx = (max[0] - min[0]).max(1e-9);
        let dy = (max[1] - min[1]).max(1e-9);
        let (mut sx, mut sy) = ((w - 2.0 * pad) / dx, (h - 2.0 * pad) / dy);
        if equal {
            let s = sx.min(sy);
            sx = s;
            sy = s;
        }
        Frame { x0: min[0], y0: min[1], sx, sy, h, pad }
    }
    fn x(&self, v: f64) -> f64 {
        self.pad + (v - self.x0) * self.sx
    }
    fn y(&self, v: f64) -> f64 {
        self.h - self.pad - (v - self.y0) * self.sy
    }
}

fn bounds<'a>(points: impl Iterator<Item = &'a [f64; 2]>) -> Option<([f64; 2], [f64; 2])> {
    let mut b: Option<([f64; 2], [f64; 2])> = None;
    for p in points {
        let (lo, hi) = b.get_or_insert((*p, *p));
        lo[0] = lo[0].min(p[0]);
        lo[1] = lo[1].min(p[1]);
        hi[0] = hi[0].max(p[0]);
        hi[1] = hi[1].max(p[1]);
    }
    b
}

fn polyline(frame: &Frame, points: &[[f64; 2]], style: &str) -> String {
    let mut d = String::new();
    for p in points {
        let _ = write!(d, "{:.1},{:.1} ", frame.x(p[0]), frame.y(p[1]));
    }
    format!("<polyline points=\"{d}\" style=\"{style}\"/>")
}

fn birds_eye_svg(plot: &PlotData) -> String {
    // Frame the trajectories (with a margin); sensors far from them are left out of the plot.
    let all = plot.truth_tracks.values().chain(plot.fused_tracks.values()).flatten();
    let Some((mut min, mut max)) = bounds(all) else {
        return "<p>No trajectories.</p>".into();
    };
    let margin_m = 10.0;
    min = [min[0] - margin_m, min[1] - margin_m];
    max = [max[0] + margin_m, max[1] + margin_m];
    let inside = |p: &[f64; 2]| (min[0]..=max[0]).contains(&p[0]) && (min[1]..=max[1]).contains(&p[1]);
    let (w, h) = (720.0, 560.0);
    let f = Frame::new(min, max, w, h, true);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"bird's-eye view\">"
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#fbfbf8\"/>");
    for points in plot.truth_tracks.values() {
        s.push_str(&polyline(&f, points, "fill:none;stroke:#888;stroke-width:5;stroke-opacity:0.35"));
    }
    let palette = ["#d1495b", "#00798c", "#edae49", "#30638e", "#6a4c93", "#2b9348", "#e36414", "#9a031e"];
    for (id, points) in &plot.fused_tracks {
        let color = palette[*id as usize % palette.len()];
        s.push_str(&polyline(&f, points, &format!("fill:none;stroke:{color};stroke-width:1.5")));
        if let Some(p) = points.last() {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"{color}\">{id}</text>",
                f.x(p[0]) + 2.0,
                f.y(p[1]) - 2.0
            );
        }
    }
    for (id, p) in plot.sensors.iter().filter(|(_, p)| inside(p)) {
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\" fill=\"#222\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
            f.x(p[0]) - 3.5,
            f.y(p[1]) - 3.5,
            f.x(p[0]) + 6.0,
            f.y(p[1]) + 4.0,
            esc(id)
        );
    }
    let _ = write!(
        s,
        "<text x=\"10\" y=\"18\" font-size=\"12\">grey: ground truth · colour: fused tracks (id at the end) · ■ sensors · x east {:.0}..{:.0} m, y north {:.0}..{:.0} m</text></svg>",
        min[0], max[0], min[1], max[1]
    );
    s
}

fn line_chart_svg(points: &[(f64, f64)], x_label: &str, y_label: &str) -> String {
    if points.is_empty() {
        return "<p>No data.</p>".into();
    }
    let xs = points.iter().map(|p| p.0);
    let ys = points.iter().map(|p| p.1);
    let (xmin, xmax) = (xs.clone().fold(f64::INFINITY, f64::min), xs.fold(f64::NEG_INFINITY, f64::max));
    let ymax = ys.fold(0.0_f64, f64::max).max(1e-3);
    let (w, h) = (720.0, 240.0);
    let f = Frame::new([xmin, 0.0], [xmax.max(xmin + 1e-3), ymax * 1.1], w, h, false);
    let pts: Vec<[f64; 2]> = points.iter().map(|p| [p.0, p.1]).collect();
    let mut s =
        format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{y_label}\">");
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#fbfbf8\"/>");
    let _ = write!(
        s,
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#444\"/>",
        f.x(xmin),
        f.y(0.0),
        f.x(xmax)
    );
    let _ = write!(
        s,
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#444\"/>",
        f.x(xmin),
        f.y(0.0),
        f.y(ymax * 1.1)
    );
    s.push_str(&polyline(&f, &pts, "fill:none;stroke:#00798c;stroke-width:1.5"));
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text><text x=\"8\" y=\"14\" font-size=\"11\">{} (max {:.2})</text>",
        w / 2.0 - 40.0,
        h - 8.0,
        esc(x_label),
        esc(y_label),
        ymax
    );
    s.push_str("</svg>");
    s
}

fn histogram_svg(values: &[f64], label: &str) -> String {
    if values.is_empty() {
        return "<p>No data.</p>".into();
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-6);
    let bins = 30usize;
    let mut counts = vec![0u64; bins];
    for v in values {
        let i = ((v / max) * bins as f64).floor() as usize;
        counts[i.min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, h) = (720.0, 220.0);
    let bar_w = (w - 80.0) / bins as f64;
    let mut s =
        format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{label}\">");
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#fbfbf8\"/>");
    for (i, c) in counts.iter().enumerate() {
        let bh = (h - 60.0) * (*c as f64 / top);
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#30638e\"/>",
            40.0 + i as f64 * bar_w,
            h - 30.0 - bh,
            bar_w - 1.0,
            bh
        );
    }
    let _ = write!(
        s,
        "<text x=\"40\" y=\"{:.1}\" font-size=\"11\">0</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{:.3}</text><text x=\"8\" y=\"14\" font-size=\"11\">{} (n = {})</text></svg>",
        h - 12.0,
        w - 80.0,
        h - 12.0,
        max,
        esc(label),
        values.len()
    );
    s
}

/// A self-contained HTML page reporting every log: the overall verdict and a table of logs at
/// the top, then one section per log.
pub fn html_page(logs: &[(LogReport, PlotData)], unreadable: &[(String, String)]) -> String {
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
        s.push_str(&html_section(report, plot));
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
fn html_section(report: &LogReport, plot: &PlotData) -> String {
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
    s.push_str(&birds_eye_svg(plot));
    s.push_str("<h2>Position error over time</h2>");
    s.push_str(&line_chart_svg(&plot.error_over_time, "time [s]", "mean matched position error [m]"));
    s.push_str("<h2>Broadcast object age</h2>");
    s.push_str(&histogram_svg(&plot.ages_s, "age of broadcast objects: frame time − newest fused measurement [s]"));
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
