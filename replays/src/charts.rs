//! Charts of the HTML reports, drawn with `plotters` into inline SVG: the site map (buildings,
//! parked vehicles, lanes, walkways, routes, sensors) under whatever has a place on it, and
//! charts with axes, ticks, units and legends. Used by the validation report (bird's-eye view,
//! position error over time, broadcast age) and by `rsu-lab route validate`'s page.

use nalgebra::Point2;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use rsu_site::SiteModel;
use rsu_site::model::PathKind;

use crate::report::PlotData;

/// Font of every chart.
pub const FONT: &str = "sans-serif";
/// Width of every chart [px].
pub const WIDTH_PX: u32 = 1000;

/// A chart on the site frame (east, north) [m], as drawn into SVG.
pub type MapChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Maps a plotters error into one naming the chart.
pub fn chart_error<E: std::fmt::Display>(chart: &'static str) -> impl Fn(E) -> String {
    move |e| format!("drawing the {chart}: {e}")
}

/// (east, north) of a point.
pub fn xy(p: &Point2<f64>) -> (f64, f64) {
    (p.x, p.y)
}

/// An axis-aligned rectangle in the site frame [m].
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// West edge [m].
    pub x0: f64,
    /// South edge [m].
    pub y0: f64,
    /// East edge [m].
    pub x1: f64,
    /// North edge [m].
    pub y1: f64,
}

impl Bounds {
    /// Whether `p` is inside.
    pub fn contains(&self, p: (f64, f64)) -> bool {
        p.0 >= self.x0 && p.0 <= self.x1 && p.1 >= self.y0 && p.1 <= self.y1
    }

    /// The part of the segment `a`-`b` inside (Liang–Barsky), if any.
    pub fn clip_segment(&self, a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
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
    pub fn clip_line(&self, points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
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
    pub fn clip_polygon(&self, polygon: &[(f64, f64)]) -> Vec<(f64, f64)> {
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

impl Bounds {
    /// The smallest rectangle holding `points`, if any.
    pub fn around(points: impl Iterator<Item = (f64, f64)>) -> Option<Bounds> {
        points.fold(None, |b: Option<Bounds>, p| {
            Some(match b {
                None => Bounds { x0: p.0, y0: p.1, x1: p.0, y1: p.1 },
                Some(b) => Bounds { x0: b.x0.min(p.0), y0: b.y0.min(p.1), x1: b.x1.max(p.0), y1: b.y1.max(p.1) },
            })
        })
    }

    /// Grown by `margin_m` on every side.
    pub fn grown(self, margin_m: f64) -> Bounds {
        Bounds { x0: self.x0 - margin_m, y0: self.y0 - margin_m, x1: self.x1 + margin_m, y1: self.y1 + margin_m }
    }

    /// Equal scales on both axes for a plot `plot_w_px` wide: the plot height [px] the shape
    /// asks for within `min_h_px..=max_h_px`, and the bounds with the shorter extent grown to
    /// keep the scale.
    pub fn equal_scale(self, plot_w_px: f64, min_h_px: f64, max_h_px: f64) -> (Bounds, f64) {
        let (w_m, h_m) = ((self.x1 - self.x0).max(1.0), (self.y1 - self.y0).max(1.0));
        let plot_h = (plot_w_px * h_m / w_m).clamp(min_h_px, max_h_px);
        let b = if plot_h / plot_w_px > h_m / w_m {
            let grow = (plot_h / plot_w_px * w_m - h_m) / 2.0;
            Bounds { y0: self.y0 - grow, y1: self.y1 + grow, ..self }
        } else {
            let grow = (plot_w_px / plot_h * h_m - w_m) / 2.0;
            Bounds { x0: self.x0 - grow, x1: self.x1 + grow, ..self }
        };
        (b, plot_h)
    }
}

/// A map chart of `b` on `root`, titled `caption`, with its axes (east, north [m]) drawn.
pub fn map_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    b: &Bounds,
) -> Result<MapChart<'a, 'b>, String> {
    let err = chart_error("map");
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT, 18))
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
    Ok(chart)
}

/// Draws the legend of `chart`'s labelled series at `position`, on a light box.
pub fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(chart_error("legend"))
}

/// The colour of buildings on the map.
pub const BUILDING: RGBColor = RGBColor(190, 190, 190);

/// Draws the site's buildings, parked vehicles, lanes, walkways and routes (all but
/// `skip_route`) inside `b`, with legend entries.
pub fn draw_site(
    chart: &mut MapChart<'_, '_>,
    site: &SiteModel,
    b: &Bounds,
    skip_route: Option<&str>,
) -> Result<(), String> {
    let err = chart_error("site map");
    let polygons = site
        .buildings
        .iter()
        .map(|p| (p.polygon.iter().map(xy).collect::<Vec<_>>(), BUILDING))
        .chain(site.parked.iter().map(|p| (p.footprint.corners().iter().map(xy).collect(), RGBColor(150, 150, 170))))
        .map(|(poly, colour)| (b.clip_polygon(&poly), colour))
        .filter(|(poly, _)| poly.len() >= 3)
        .collect::<Vec<_>>();
    chart
        .draw_series(polygons.into_iter().map(|(poly, colour)| Polygon::new(poly, colour.filled())))
        .map_err(&err)?
        .label("building / parked vehicle")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], BUILDING.filled()));
    for (kind, colour, label) in [
        (PathKind::Lane, RGBColor(120, 120, 120), "lane"),
        (PathKind::Walkway, RGBColor(200, 170, 120), "walkway"),
        (PathKind::Route, RGBColor(120, 120, 120), "route"),
    ] {
        let pieces: Vec<Vec<(f64, f64)>> = site
            .paths
            .values()
            .filter(|p| p.kind == kind && Some(p.id.as_str()) != skip_route)
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
            .draw_series(pieces.into_iter().map(|piece| PathElement::new(piece, colour.stroke_width(1))))
            .map_err(&err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    Ok(())
}

/// Draws the sensors inside `b` as triangles with their ids.
pub fn draw_sensors(chart: &mut MapChart<'_, '_>, sensors: &[(String, (f64, f64))], b: &Bounds) -> Result<(), String> {
    let err = chart_error("sensors");
    let colour = RGBColor(0xe3, 0x1a, 0x1c);
    let inside: Vec<&(String, (f64, f64))> = sensors.iter().filter(|(_, p)| b.contains(*p)).collect();
    chart
        .draw_series(inside.iter().map(|(_, p)| TriangleMarker::new(*p, 7, colour.filled())))
        .map_err(&err)?
        .label("roadside sensor")
        .legend(move |(x, y)| TriangleMarker::new((x + 8, y), 6, colour.filled()));
    chart
        .draw_series(
            inside
                .iter()
                .map(|(id, p)| Text::new(id.clone(), (p.0 + 3.0, p.1 + 3.0), (FONT, 12).into_font().color(&colour))),
        )
        .map_err(&err)?;
    Ok(())
}

/// A chart that could not be drawn, said in the page instead.
fn or_note(svg: Result<String, String>) -> String {
    svg.unwrap_or_else(|e| format!("<p>{e}</p>"))
}

/// The colours of fused tracks (by id).
const TRACK_COLOURS: [RGBColor; 8] = [
    RGBColor(0xd1, 0x49, 0x5b),
    RGBColor(0x00, 0x79, 0x8c),
    RGBColor(0xed, 0xae, 0x49),
    RGBColor(0x30, 0x63, 0x8e),
    RGBColor(0x6a, 0x4c, 0x93),
    RGBColor(0x2b, 0x93, 0x48),
    RGBColor(0xe3, 0x64, 0x14),
    RGBColor(0x9a, 0x03, 0x1e),
];

/// The quantile `q` of `values` (sorted in place).
fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let last = values.len().checked_sub(1)?;
    Some(values[((last as f64) * q).round() as usize])
}

/// The bird's-eye view of a log: the ground truth (grey) and the fused tracks (coloured, id at
/// the end) on the site map (when `site` is the log's site), with sensors. The view frames
/// where the truth is (from its 1st to 99th percentile of positions, plus a margin), so a
/// lone far track does not shrink the scene to a tangle; what lies outside is cut.
pub fn birds_eye_svg(plot: &PlotData, site: Option<&SiteModel>) -> String {
    or_note(birds_eye(plot, site))
}

fn birds_eye(plot: &PlotData, site: Option<&SiteModel>) -> Result<String, String> {
    let err = chart_error("bird's-eye view");
    let framed: Vec<[f64; 2]> = if plot.truth_tracks.is_empty() {
        plot.fused_tracks.values().flatten().copied().collect()
    } else {
        plot.truth_tracks.values().flatten().copied().collect()
    };
    let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = framed.iter().map(|p| (p[0], p[1])).unzip();
    let (Some(x0), Some(x1), Some(y0), Some(y1)) =
        (quantile(&mut xs, 0.01), quantile(&mut xs, 0.99), quantile(&mut ys, 0.01), quantile(&mut ys, 0.99))
    else {
        return Ok("<p>No trajectories.</p>".into());
    };
    let (b, plot_h) = Bounds { x0, y0, x1, y1 }.grown(15.0).equal_scale(f64::from(WIDTH_PX) - 100.0, 320.0, 700.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, (plot_h + 110.0) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = map_chart(&root, "Ground truth and fused tracks", &b)?;
        if let Some(site) = site {
            draw_site(&mut chart, site, &b, None)?;
        }
        let clip = |points: &Vec<[f64; 2]>| b.clip_line(&points.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>());
        let grey = RGBColor(90, 90, 90);
        let truth: Vec<Vec<(f64, f64)>> = plot.truth_tracks.values().flat_map(clip).collect();
        chart
            .draw_series(truth.into_iter().map(|p| PathElement::new(p, grey.mix(0.35).stroke_width(5))))
            .map_err(&err)?
            .label("ground truth")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], grey.mix(0.35).stroke_width(5)));
        let mut labelled = false;
        for (id, points) in &plot.fused_tracks {
            let colour = TRACK_COLOURS[*id as usize % TRACK_COLOURS.len()];
            let series = chart
                .draw_series(clip(points).into_iter().map(|p| PathElement::new(p, colour.stroke_width(2))))
                .map_err(&err)?;
            if !labelled {
                labelled = true;
                series
                    .label("fused track (id at its end)")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
            }
            if let Some(end) = points.last().map(|p| (p[0], p[1])).filter(|p| b.contains(*p)) {
                chart
                    .draw_series(std::iter::once(Text::new(id.to_string(), end, (FONT, 11).into_font().color(&colour))))
                    .map_err(&err)?;
            }
        }
        let sensors: Vec<(String, (f64, f64))> =
            plot.sensors.iter().map(|(id, p)| (id.clone(), (p[0], p[1]))).collect();
        draw_sensors(&mut chart, &sensors, &b)?;
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// A line chart of `points` (x, y) with axes described by `x_desc` and `y_desc` (units in
/// them), titled `caption`.
pub fn line_chart_svg(points: &[(f64, f64)], caption: &str, x_desc: &str, y_desc: &str) -> String {
    or_note(line_chart(points, caption, x_desc, y_desc))
}

fn line_chart(points: &[(f64, f64)], caption: &str, x_desc: &str, y_desc: &str) -> Result<String, String> {
    let err = chart_error("line chart");
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    let Some(b) = Bounds::around(finite.iter().copied()) else { return Ok("<p>No data.</p>".into()) };
    let y1 = if b.y1 > 0.0 { b.y1 * 1.1 } else { 1.0 };
    let x1 = if b.x1 > b.x0 { b.x1 } else { b.x0 + 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 16))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(b.x0..x1, 0.0..y1)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(&err)?;
        chart.draw_series(LineSeries::new(finite, RGBColor(0x00, 0x79, 0x8c).stroke_width(2))).map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// A histogram of `values` (20 bins from 0 to the largest) with the value axis described by
/// `x_desc`, titled `caption`.
pub fn histogram_svg(values: &[f64], caption: &str, x_desc: &str) -> String {
    or_note(histogram(values, caption, x_desc))
}

fn histogram(values: &[f64], caption: &str, x_desc: &str) -> Result<String, String> {
    let err = chart_error("histogram");
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite() && *v >= 0.0).collect();
    let Some(max) = finite.iter().copied().reduce(f64::max) else { return Ok("<p>No data.</p>".into()) };
    const BINS: usize = 20;
    let width = (max / BINS as f64).max(1e-6);
    let mut counts = [0u64; BINS];
    for v in &finite {
        counts[((v / width) as usize).min(BINS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{caption} (n = {})", finite.len()), (FONT, 16))
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..width * BINS as f64, 0.0..top)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc("objects")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(&err)?;
        let fill = RGBColor(0x30, 0x63, 0x8e);
        chart
            .draw_series(counts.iter().enumerate().map(|(i, n)| {
                let x = i as f64 * width;
                Rectangle::new([(x, 0.0), (x + width * 0.9, *n as f64)], fill.filled())
            }))
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
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

    #[test]
    fn the_charts_draw_axes_and_the_site() {
        let site = SiteModel::embedded().expect("site");
        let plot = PlotData {
            truth_tracks: [(1, vec![[-40.0, -4.0], [0.0, -4.0]]), (2, vec![[300.0, 300.0]])].into_iter().collect(),
            fused_tracks: [(7, vec![[-39.0, -4.2], [1.0, -4.1]])].into_iter().collect(),
            sensors: vec![("lidar-ne".into(), [10.0, 10.0])],
            ..Default::default()
        };
        let svg = birds_eye_svg(&plot, Some(&site));
        assert!(svg.starts_with("<svg") && svg.contains("east [m]") && svg.contains("lidar-ne"), "{svg}");
        assert!(svg.contains("fused track"), "the legend is drawn");
        assert!(svg.contains("polygon"), "buildings of the site are drawn");
        let line = line_chart_svg(&[(0.0, 0.1), (1.0, 0.3)], "error", "time [s]", "error [m]");
        assert!(line.contains("time [s]") && line.contains("error [m]"));
        assert!(histogram_svg(&[], "age", "age [s]").contains("No data"));
        assert!(histogram_svg(&[0.1, 0.2, f64::NAN], "age", "age [s]").contains("n = 2"));
    }
}
