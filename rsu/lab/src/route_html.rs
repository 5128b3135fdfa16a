//! The route report as a self-contained HTML page for people: the verdict and its counts, the
//! blind spots and failing segments with their chainage, the route drawn on the site map
//! (lanes, walkways, buildings, parked vehicles, sensors) coloured by verdict, and plots along
//! the chainage (detection probability with its 95 % interval, position error, sensor coverage,
//! observations). The charts are inline SVG drawn with `plotters`; the page loads nothing.

use std::fmt::Write as _;

use nalgebra::Point2;
use plotters::prelude::*;
use rsu_site::SiteModel;
use rsu_site::model::PathKind;

use v2x_replays::route::Route;
use v2x_replays::route::criteria::GROUPS;
use v2x_replays::route::output::verdict_colour;
use v2x_replays::route::verdict::{RouteReport, SegmentReport, Verdict};

/// Maps a plotters error into one naming the chart.
fn chart_error<E: std::fmt::Display>(chart: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |e| anyhow::anyhow!("drawing the {chart}: {e}")
}

/// The colour of each group in the plots (`vru`, `vehicle`, `static`).
const GROUP_COLOURS: [RGBColor; 3] =
    [RGBColor(0x6a, 0x3d, 0x9a), RGBColor(0x1f, 0x78, 0xb4), RGBColor(0x99, 0x99, 0x99)];

fn rgb(hex: &str) -> RGBColor {
    let byte = |i: usize| hex.get(i..i + 2).and_then(|s| u8::from_str_radix(s, 16).ok()).unwrap_or(0);
    RGBColor(byte(1), byte(3), byte(5))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const FONT: &str = "sans-serif";
/// Width of every chart [px].
const WIDTH_PX: u32 = 1000;

/// An axis-aligned rectangle in the site frame [m].
#[derive(Clone, Copy, Debug)]
struct Bounds {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Bounds {
    fn contains(&self, p: (f64, f64)) -> bool {
        p.0 >= self.x0 && p.0 <= self.x1 && p.1 >= self.y0 && p.1 <= self.y1
    }

    /// The part of the segment `a`-`b` inside (Liang–Barsky), if any.
    fn clip_segment(&self, a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [(-dx, a.0 - self.x0), (dx, self.x1 - a.0), (-dy, a.1 - self.y0), (dy, self.y1 - a.1)] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
            }
        }
        (t0 <= t1).then_some(((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy)))
    }

    /// A polyline cut to the inside: its pieces.
    fn clip_line(&self, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
        let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut current: Vec<(f64, f64)> = Vec::new();
        for w in points.windows(2) {
            match self.clip_segment(w[0], w[1]) {
                Some((a, b)) => {
                    if current.last() != Some(&a) {
                        if current.len() > 1 {
                            pieces.push(std::mem::take(&mut current));
                        }
                        current = vec![a];
                    }
                    current.push(b);
                }
                None => {
                    if current.len() > 1 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.clear();
                }
            }
        }
        if current.len() > 1 {
            pieces.push(current);
        }
        pieces
    }

    /// A polygon cut to the inside (Sutherland–Hodgman: exact for a convex clip window).
    fn clip_polygon(&self, polygon: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = polygon.to_vec();
        let edges: [(usize, f64, bool); 4] =
            [(0, self.x0, true), (0, self.x1, false), (1, self.y0, true), (1, self.y1, false)];
        for (axis, bound, keep_above) in edges {
            let coord = |p: &(f64, f64)| if axis == 0 { p.0 } else { p.1 };
            let inside = |p: &(f64, f64)| if keep_above { coord(p) >= bound } else { coord(p) <= bound };
            let input = std::mem::take(&mut out);
            for (i, cur) in input.iter().enumerate() {
                let prev = &input[(i + input.len() - 1) % input.len()];
                let cross = || {
                    let t = (bound - coord(prev)) / (coord(cur) - coord(prev));
                    (prev.0 + t * (cur.0 - prev.0), prev.1 + t * (cur.1 - prev.1))
                };
                match (inside(prev), inside(cur)) {
                    (true, true) => out.push(*cur),
                    (true, false) => out.push(cross()),
                    (false, true) => {
                        out.push(cross());
                        out.push(*cur);
                    }
                    (false, false) => {}
                }
            }
        }
        out
    }
}

fn xy(p: &Point2<f64>) -> (f64, f64) {
    (p.x, p.y)
}

/// The site map around the route: map features, sensors, the route's segments coloured by
/// verdict, its blind spots, chainage marks every 100 m.
pub fn site_map_svg(report: &RouteReport, route: &Route, site: &SiteModel) -> anyhow::Result<String> {
    let err = chart_error("site map");
    let pts: Vec<(f64, f64)> = route.line.points().iter().map(xy).collect();
    let margin_m = 40.0;
    let (mut b, _) = pts.iter().fold(
        (Bounds { x0: f64::INFINITY, y0: f64::INFINITY, x1: f64::NEG_INFINITY, y1: f64::NEG_INFINITY }, ()),
        |(b, ()), p| (Bounds { x0: b.x0.min(p.0), y0: b.y0.min(p.1), x1: b.x1.max(p.0), y1: b.y1.max(p.1) }, ()),
    );
    b = Bounds { x0: b.x0 - margin_m, y0: b.y0 - margin_m, x1: b.x1 + margin_m, y1: b.y1 + margin_m };
    // Equal scales on both axes: the plot is as tall as the map's shape asks, within limits, and
    // the shorter extent grows to keep the scale.
    let (plot_w, label_px) = (f64::from(WIDTH_PX) - 90.0, 60.0);
    let (w_m, h_m) = (b.x1 - b.x0, b.y1 - b.y0);
    let plot_h = (plot_w * h_m / w_m).clamp(300.0, 900.0);
    if plot_h / plot_w > h_m / w_m {
        let grow = (plot_h / plot_w * w_m - h_m) / 2.0;
        b = Bounds { y0: b.y0 - grow, y1: b.y1 + grow, ..b };
    } else {
        let grow = (plot_w / plot_h * h_m - w_m) / 2.0;
        b = Bounds { x0: b.x0 - grow, x1: b.x1 + grow, ..b };
    }
    let height_px = (plot_h + label_px + 50.0) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, height_px)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Route {} on site {}", report.route.id, report.site_id), (FONT, 18))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(b.x0..b.x1, b.y0..b.y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("east [m] (site frame)")
            .y_desc("north [m]")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(&err)?;
        // Buildings and parked vehicles.
        let building = RGBColor(190, 190, 190);
        let polygons = site
            .buildings
            .iter()
            .map(|p| (p.polygon.iter().map(xy).collect::<Vec<_>>(), building))
            .chain(
                site.parked.iter().map(|p| (p.footprint.corners().iter().map(xy).collect(), RGBColor(150, 150, 170))),
            )
            .map(|(poly, colour)| (b.clip_polygon(&poly), colour))
            .filter(|(poly, _)| poly.len() >= 3)
            .collect::<Vec<_>>();
        chart
            .draw_series(polygons.into_iter().map(|(poly, colour)| Polygon::new(poly, colour.filled())))
            .map_err(&err)?
            .label("building / parked vehicle")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], building.filled()));
        // Lanes, walkways, other routes.
        for (kind, colour, width, label) in [
            (PathKind::Lane, RGBColor(120, 120, 120), 1, "lane"),
            (PathKind::Walkway, RGBColor(200, 170, 120), 1, "walkway"),
            (PathKind::Route, RGBColor(120, 120, 120), 1, "other route"),
        ] {
            let pieces: Vec<Vec<(f64, f64)>> = site
                .paths
                .values()
                .filter(|p| p.kind == kind && p.id != route.id)
                .flat_map(|p| {
                    let mut points: Vec<(f64, f64)> = p.line.points().iter().map(xy).collect();
                    if p.line.is_closed()
                        && let Some(&first) = points.first()
                    {
                        points.push(first);
                    }
                    b.clip_line(&points)
                })
                .collect();
            if pieces.is_empty() {
                continue;
            }
            chart
                .draw_series(pieces.into_iter().map(|piece| PathElement::new(piece, colour.stroke_width(width))))
                .map_err(&err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        // Blind spots under the route, wide and dark.
        let blind = RGBColor(0, 0, 0);
        let half = 0.5 * report.criteria.coverage_step_m;
        let blind_pieces: Vec<Vec<(f64, f64)>> = report
            .blind_spots
            .iter()
            .map(|s| route.line.points_between((s.from_m - half).max(0.0), (s.to_m + half).min(route.length_m())))
            .map(|p| p.iter().map(xy).collect())
            .collect();
        chart
            .draw_series(blind_pieces.into_iter().map(|p| PathElement::new(p, blind.mix(0.45).stroke_width(12))))
            .map_err(&err)?
            .label("blind spot (no sensor sees the corridor)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], blind.mix(0.45).stroke_width(8)));
        // Segments by verdict.
        for verdict in [Verdict::Pass, Verdict::Insufficient, Verdict::Fail] {
            let colour = rgb(verdict_colour(verdict));
            let lines: Vec<Vec<(f64, f64)>> = report
                .segments
                .iter()
                .filter(|s| s.verdict == verdict)
                .map(|s| route.line.points_between(s.from_m, s.to_m).iter().map(xy).collect())
                .collect();
            let count = lines.len();
            chart
                .draw_series(lines.into_iter().map(|p| PathElement::new(p, colour.stroke_width(5))))
                .map_err(&err)?
                .label(format!("segment: {} ({count})", verdict.name()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(5)));
        }
        // Chainage marks.
        let step_m = if route.length_m() > 3000.0 { 500.0 } else { 100.0 };
        let marks: Vec<(f64, (f64, f64))> = (0..=((route.length_m() / step_m).floor() as usize))
            .map(|k| k as f64 * step_m)
            .filter(|s| *s < route.length_m() - 1.0 || !route.line.is_closed())
            .map(|s| (s, xy(&route.point_at(s, 0.0))))
            .collect();
        chart.draw_series(marks.iter().map(|&(_, p)| Circle::new(p, 3, BLACK.filled()))).map_err(&err)?;
        chart
            .draw_series(
                marks.iter().map(|&(s, p)| Text::new(format!("{s:.0} m"), p, (FONT, 12).into_font().color(&BLACK))),
            )
            .map_err(&err)?;
        // Sensors.
        let sensor = RGBColor(0xe3, 0x1a, 0x1c);
        let sensors: Vec<(String, (f64, f64))> = site
            .config
            .sensors
            .iter()
            .map(|s| (s.id.clone(), (s.position().x, s.position().y)))
            .filter(|(_, p)| b.contains(*p))
            .collect();
        chart
            .draw_series(sensors.iter().map(|(_, p)| TriangleMarker::new(*p, 7, sensor.filled())))
            .map_err(&err)?
            .label("roadside sensor")
            .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, sensor.filled()));
        chart
            .draw_series(
                sensors.iter().map(|(id, p)| {
                    Text::new(id.clone(), (p.0 + 3.0, p.1 + 3.0), (FONT, 12).into_font().color(&sensor))
                }),
            )
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// The site map's legend, as HTML under it (a legend inside the map would hide part of it).
fn map_legend(report: &RouteReport) -> String {
    let chip = |style: &str, label: &str| {
        format!("<span style=\"margin-right:1.2em\"><span class=\"chip\" style=\"{style}\"></span> {label}</span>")
    };
    let count = |v: Verdict| report.segments.iter().filter(|s| s.verdict == v).count();
    let mut items = vec![
        chip("background:#bebebe", "building"),
        chip("background:#9696aa", "parked vehicle"),
        chip("background:#787878;height:2px", "lane / other route"),
        chip("background:#c8aa78;height:2px", "walkway"),
        chip("background:rgba(0,0,0,0.45)", "blind spot (no sensor sees the corridor)"),
    ];
    for v in [Verdict::Pass, Verdict::Insufficient, Verdict::Fail] {
        items
            .push(chip(&format!("background:{}", verdict_colour(v)), &format!("segment: {} ({})", v.name(), count(v))));
    }
    items.push(chip("background:#e31a1c;border-radius:50%", "roadside sensor"));
    items.push(chip("background:#000;border-radius:50%;width:0.5em;height:0.5em", "chainage mark"));
    format!("<p style=\"font-size:13px\">{}</p>", items.join(""))
}

/// The groups with data or limits in the report, with their colour.
fn plotted_groups(report: &RouteReport) -> Vec<(usize, &'static str, RGBColor)> {
    GROUPS
        .iter()
        .enumerate()
        .filter(|(g, name)| {
            report.criteria.group(*g).is_some() || report.segments.iter().any(|s| s.groups.contains_key(**name))
        })
        .map(|(g, name)| (g, *name, GROUP_COLOURS[g]))
        .collect()
}

fn mid(s: &SegmentReport) -> f64 {
    0.5 * (s.from_m + s.to_m)
}

/// Verdict bands under a chainage plot: one rectangle per segment between `y0` and `y1`.
fn verdict_band(report: &RouteReport, y0: f64, y1: f64) -> Vec<Rectangle<(f64, f64)>> {
    report
        .segments
        .iter()
        .map(|s| Rectangle::new([(s.from_m, y0), (s.to_m, y1)], rgb(verdict_colour(s.verdict)).mix(0.8).filled()))
        .collect()
}

/// Detection probability per segment and group, with the 95 % Wilson interval as whiskers and
/// each group's limit; the segments' verdicts as a band along the bottom.
pub fn detection_svg(report: &RouteReport) -> anyhow::Result<String> {
    let err = chart_error("detection plot");
    let length_m = report.route.length_m;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Detection probability along the route (95 % Wilson interval)", (FONT, 16))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..length_m, -0.08..1.05)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("chainage [m]")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("detection probability")
            .y_labels(8)
            .y_label_formatter(&|v| if *v < 0.0 { String::new() } else { format!("{v:.2}") })
            .light_line_style(WHITE)
            .draw()
            .map_err(&err)?;
        chart.draw_series(verdict_band(report, -0.075, -0.03)).map_err(&err)?;
        for (g, name, colour) in plotted_groups(report) {
            let points: Vec<(f64, f64, f64, f64)> = report
                .segments
                .iter()
                .filter_map(|s| {
                    let d = s.groups.get(name)?.detection?;
                    Some((mid(s), d.ci95_low, d.probability, d.ci95_high))
                })
                .collect();
            chart
                .draw_series(
                    points.iter().map(|&(x, lo, p, hi)| ErrorBar::new_vertical(x, lo, p, hi, colour.filled(), 4)),
                )
                .map_err(&err)?
                .label(format!("{name}: matched / observed, 95 % CI"))
                .legend(move |(x, y)| Circle::new((x + 8, y), 3, colour.filled()));
            if let Some(limit) = report.criteria.group(g).and_then(|c| c.detection_min) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(0.0, limit), (length_m, limit)],
                        colour.mix(0.6).stroke_width(1),
                    )))
                    .map_err(&err)?
                    .label(format!("{name} limit {limit}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.mix(0.6).stroke_width(1)));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// Position error p95 per segment and group, with each group's limit.
pub fn position_svg(report: &RouteReport) -> anyhow::Result<String> {
    let err = chart_error("position error plot");
    let length_m = report.route.length_m;
    let groups = plotted_groups(report);
    let highest = report
        .segments
        .iter()
        .flat_map(|s| s.groups.values().filter_map(|f| f.position_p95_m))
        .chain(groups.iter().filter_map(|(g, _, _)| report.criteria.group(*g).and_then(|c| c.position_p95_max_m)))
        .fold(0.5f64, f64::max);
    let top = highest * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Position error of matched objects: 95th percentile per segment", (FONT, 16))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..length_m, 0.0..top)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("chainage [m]")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("position error p95 [m]")
            .light_line_style(WHITE)
            .draw()
            .map_err(&err)?;
        for (g, name, colour) in groups {
            let points: Vec<(f64, f64)> =
                report.segments.iter().filter_map(|s| Some((mid(s), s.groups.get(name)?.position_p95_m?))).collect();
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(&err)?
                .label(format!("{name} p95"))
                .legend(move |(x, y)| Circle::new((x + 8, y), 3, colour.filled()));
            if let Some(limit) = report.criteria.group(g).and_then(|c| c.position_p95_max_m) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(0.0, limit), (length_m, limit)],
                        colour.mix(0.6).stroke_width(1),
                    )))
                    .map_err(&err)?
                    .label(format!("{name} limit {limit} m"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.mix(0.6).stroke_width(1)));
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// Sensors seeing each segment's corridor (fewest and most over its sampled points), with the
/// blind spots, and the observations behind the figures (log scale).
pub fn coverage_svg(report: &RouteReport) -> anyhow::Result<String> {
    let err = chart_error("coverage plot");
    let length_m = report.route.length_m;
    let most = report.segments.iter().map(|s| s.coverage.sensors_max).max().unwrap_or(0).max(2) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let (upper, lower) = root.split_vertically(290);
        let mut chart = ChartBuilder::on(&upper)
            .caption("Sensor coverage of the corridor", (FONT, 16))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..length_m, -0.6..(most + 0.5))
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("chainage [m]")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("sensors")
            .y_labels((most as usize + 2).min(12))
            .y_label_formatter(&|v| if *v < 0.0 || v.fract().abs() > 1e-9 { String::new() } else { format!("{v:.0}") })
            .light_line_style(WHITE)
            .draw()
            .map_err(&err)?;
        let blind = RGBColor(0, 0, 0);
        chart
            .draw_series(
                report
                    .blind_spots
                    .iter()
                    .map(|b| Rectangle::new([(b.from_m, -0.55), (b.to_m.max(b.from_m + 0.5), -0.2)], blind.filled())),
            )
            .map_err(&err)?
            .label("blind spot")
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], blind.filled()));
        let steps = |value: fn(&SegmentReport) -> usize| -> Vec<(f64, f64)> {
            report.segments.iter().flat_map(|s| [(s.from_m, value(s) as f64), (s.to_m, value(s) as f64)]).collect()
        };
        for (label, colour, series) in [
            ("most sensors on a point", RGBColor(0x1f, 0x78, 0xb4), steps(|s| s.coverage.sensors_max)),
            ("fewest sensors on a point", RGBColor(0xd7, 0x30, 0x27), steps(|s| s.coverage.sensors_min)),
        ] {
            chart
                .draw_series(LineSeries::new(series, colour.stroke_width(2)))
                .map_err(&err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(&err)?;

        let groups = plotted_groups(report);
        let max_obs =
            report.segments.iter().flat_map(|s| s.groups.values().map(|f| f.observations)).max().unwrap_or(1).max(10)
                as f64;
        let mut chart = ChartBuilder::on(&lower)
            .caption("Observations behind the figures (object x truth frame, per segment)", (FONT, 16))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..length_m, (0.8..max_obs * 2.0).log_scale())
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("chainage [m]")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("observations")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .draw()
            .map_err(&err)?;
        let n = groups.len().max(1) as f64;
        for (k, (_, name, colour)) in groups.into_iter().enumerate() {
            let bars: Vec<Rectangle<(f64, f64)>> = report
                .segments
                .iter()
                .filter_map(|s| {
                    let obs = s.groups.get(name)?.observations;
                    (obs > 0).then(|| {
                        let w = s.to_m - s.from_m;
                        let x0 = s.from_m + w * (0.1 + 0.8 * k as f64 / n);
                        Rectangle::new([(x0, 0.8), (x0 + 0.8 * w / n, obs as f64)], colour.filled())
                    })
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(&err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], colour.filled()));
        }
        let min_obs = report.criteria.min_observations as f64;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, min_obs), (length_m, min_obs)],
                BLACK.stroke_width(1),
            )))
            .map_err(&err)?
            .label(format!("min_observations {min_obs:.0}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The whole page.
pub fn html_page(report: &RouteReport, route: &Route, site: &SiteModel) -> anyhow::Result<String> {
    let map = site_map_svg(report, route, site)?;
    let detection = detection_svg(report)?;
    let position = position_svg(report)?;
    let coverage = coverage_svg(report)?;
    let s = &report.summary;
    let mut h = String::new();
    let (banner, colour) = if report.passed {
        ("PASS", verdict_colour(Verdict::Pass))
    } else {
        ("NOT CERTIFIED", verdict_colour(Verdict::Fail))
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Route validation: {id}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px;color:#222}}\
         table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right;font-size:13px}}\
         th{{background:#f2f2f2}}td.l,th.l{{text-align:left}}.banner{{padding:0.6em 1em;color:white;font-size:1.4em;font-weight:bold}}\
         .chip{{display:inline-block;width:0.9em;height:0.9em;border-radius:2px;vertical-align:middle}}svg{{display:block;margin:0.5em 0}}</style>\
         </head><body><h1>Route validation: {id}</h1>\
         <div class=\"banner\" style=\"background:{colour}\">{banner}: {pass} pass, {fail} fail, {ins} insufficient data of {n} segments</div>\
         <p>Route {id} ({src}), {len:.0} m{closed}, cut into {n} segments of {seg:.0} m; site {site_id}. Criteria: {crit}. \
         Objects within {near} m of the route count for it. {obs} observations near the route, {matched} matched, from {logs} log(s); {blind:.0} m of blind corridor.</p>",
        id = esc(&report.route.id),
        src = esc(&report.route.source),
        len = report.route.length_m,
        closed = if report.route.closed { ", a loop" } else { "" },
        n = report.segments.len(),
        seg = report.criteria.segment_length_m,
        site_id = esc(&report.site_id),
        crit = esc(&report.criteria_source),
        near = report.criteria.near_m,
        pass = s.pass,
        fail = s.fail,
        ins = s.insufficient,
        obs = s.observations,
        matched = s.matched,
        logs = report.logs.len(),
        blind = s.blind_m,
    );
    if !report.skipped.is_empty() {
        h.push_str("<h2>Logs skipped</h2><table><tr><th class=\"l\">log</th><th class=\"l\">why</th></tr>");
        for k in &report.skipped {
            let _ = write!(h, "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>", esc(&k.file), esc(&k.error));
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Blind spots</h2>");
    if report.blind_spots.is_empty() {
        h.push_str("<p>None: every sampled point of the corridor is seen by a sensor.</p>");
    } else {
        h.push_str("<table><tr><th>from [m]</th><th>to [m]</th><th>length [m]</th><th class=\"l\">where</th></tr>");
        for b in &report.blind_spots {
            let _ = write!(
                h,
                "<tr><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td class=\"l\">{}</td></tr>",
                b.from_m,
                b.to_m,
                b.to_m - b.from_m + report.criteria.coverage_step_m,
                if b.on_the_line { "on the route's line" } else { "corridor edge only" }
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Site map</h2>");
    h.push_str(&map);
    h.push_str(&map_legend(report));
    h.push_str("<h2>Along the route</h2>");
    h.push_str(&detection);
    h.push_str(
        "<p style=\"font-size:13px\">Dots: matched / observed per segment and group, whiskers: its 95 % Wilson \
         interval; the band along the bottom is each segment's verdict (green pass, amber insufficient data, red fail).</p>",
    );
    h.push_str(&position);
    h.push_str(&coverage);
    h.push_str("<h2>Failing segments</h2>");
    let failing: Vec<&SegmentReport> = report.segments.iter().filter(|s| s.verdict == Verdict::Fail).collect();
    if failing.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><tr><th>chainage [m]</th><th class=\"l\">failing checks</th></tr>");
        for seg in failing {
            let reasons: Vec<String> = seg
                .checks
                .iter()
                .filter(|c| c.verdict == Verdict::Fail)
                .map(|c| format!("<b>{}</b>: {}", esc(&c.name), esc(&c.message)))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{:.0}–{:.0}</td><td class=\"l\">{}</td></tr>",
                seg.from_m,
                seg.to_m,
                reasons.join("<br>")
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Every segment</h2><details><summary>figures per segment</summary><table><tr><th>chainage [m]</th><th class=\"l\">verdict</th><th>sensors min–max</th>");
    let groups = plotted_groups(report);
    for (_, name, _) in &groups {
        let _ = write!(
            h,
            "<th>{name} obs / objects</th><th>{name} detection [95 % CI]</th><th>{name} pos p95 [m]</th><th>{name} entries / TTT max [s]</th>"
        );
    }
    h.push_str("<th>age p95 [s]</th></tr>");
    for seg in &report.segments {
        let _ = write!(
            h,
            "<tr><td>{:.0}–{:.0}</td><td class=\"l\"><span class=\"chip\" style=\"background:{}\"></span> {}</td><td>{}–{}</td>",
            seg.from_m,
            seg.to_m,
            verdict_colour(seg.verdict),
            seg.verdict.name(),
            seg.coverage.sensors_min,
            seg.coverage.sensors_max
        );
        for (_, name, _) in &groups {
            match seg.groups.get(*name) {
                Some(f) => {
                    let det = f.detection.map_or_else(
                        || "–".to_owned(),
                        |d| format!("{:.3} [{:.3}, {:.3}]", d.probability, d.ci95_low, d.ci95_high),
                    );
                    let _ = write!(
                        h,
                        "<td>{} / {}</td><td>{det}</td><td>{}</td><td>{} / {}</td>",
                        f.observations,
                        f.objects,
                        opt(f.position_p95_m, 2),
                        f.entries,
                        opt(f.time_to_track_max_s, 2)
                    );
                }
                None => h.push_str("<td>–</td><td>–</td><td>–</td><td>–</td>"),
            }
        }
        let _ = write!(h, "<td>{}</td></tr>", opt(seg.broadcast_age.as_ref().map(|a| a.p95_s), 3));
    }
    h.push_str("</table></details><h2>Logs</h2><table><tr><th class=\"l\">log</th><th class=\"l\">scenario</th><th>duration [s]</th><th>truth frames</th><th>observations near the route</th><th>matched</th><th>recorded broadcast frames</th></tr>");
    for l in &report.logs {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.file),
            esc(&l.scenario),
            l.duration_s,
            l.truth_frames,
            l.observations,
            l.matched,
            l.broadcast_frames
        );
    }
    h.push_str("</table><p>Definitions and verdict rules: METRICS.md, \"Route validation\".</p></body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_what_is_inside() {
        let b = Bounds { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0 };
        assert_eq!(b.clip_segment((-5.0, 5.0), (15.0, 5.0)), Some(((0.0, 5.0), (10.0, 5.0))));
        assert_eq!(b.clip_segment((-5.0, -5.0), (-1.0, 20.0)), None);
        let pieces = b.clip_line(&[(-5.0, 5.0), (5.0, 5.0), (5.0, 20.0), (8.0, 20.0), (8.0, 5.0)]);
        assert_eq!(pieces, vec![vec![(0.0, 5.0), (5.0, 5.0), (5.0, 10.0)], vec![(8.0, 10.0), (8.0, 5.0)]]);
        let square = b.clip_polygon(&[(5.0, 5.0), (15.0, 5.0), (15.0, 15.0), (5.0, 15.0)]);
        let mut got: Vec<(i64, i64)> = square.iter().map(|p| (p.0.round() as i64, p.1.round() as i64)).collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got, vec![(5, 5), (5, 10), (10, 5), (10, 10)]);
        assert!(b.clip_polygon(&[(20.0, 20.0), (30.0, 20.0), (30.0, 30.0)]).is_empty());
    }
}
