//! Sensor coverage along a route, from the site model alone: at points every `coverage_step_m`
//! of chainage, on the route's line and on both edges of its corridor (± `near_m`), at
//! `target_height_m` above the ground, the sensors that see the point: within range and field
//! of view ([`rsu_fusion::SensorCalibration::coverage`], the rule the fusion and the scorer use)
//! with a clear line of sight past the site's occluders (buildings and parked vehicles, the
//! site's prisms: [`Prism::blocks`]). Stretches where some point of the corridor is seen by no
//! sensor are the blind spots.

use nalgebra::Point3;
use rsu_fusion::{SensorMask, SiteConfig};
use rsu_site::SiteModel;
use rsu_site::geometry::Prism;
use serde::Serialize;

use super::{Route, Segment};

/// The sensors seeing one chainage of the route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CoverageSample {
    /// Chainage [m].
    pub s_m: f64,
    /// Sensors seeing each of the corridor's points: left edge, line, right edge.
    pub seen_by: [SensorMask; 3],
}

impl CoverageSample {
    /// The fewest sensors seeing any of its points.
    pub fn min_sensors(&self) -> usize {
        self.seen_by.iter().map(|m| m.len()).min().unwrap_or(0)
    }
}

/// Coverage along a whole route.
#[derive(Clone, Debug)]
pub struct CoverageProfile {
    /// Samples in chainage order, from 0 to the route's length.
    pub samples: Vec<CoverageSample>,
    /// The site's sensor ids, in the order of the masks' indices.
    pub sensor_ids: Vec<String>,
}

/// The coverage of one segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentCoverage {
    /// Fewest sensors seeing a sampled point of its corridor.
    pub sensors_min: usize,
    /// Most sensors seeing a sampled point of its corridor.
    pub sensors_max: usize,
    /// Every sensor that sees some point of it.
    pub sensors: Vec<String>,
    /// Fraction of its sampled chainages where every corridor point is seen by some sensor.
    pub covered_fraction: f64,
    /// Chainages sampled.
    pub samples: usize,
}

/// A stretch of the route where some point of the corridor is seen by no sensor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlindSpot {
    /// Chainage of its first blind sample [m].
    pub from_m: f64,
    /// Chainage of its last blind sample [m].
    pub to_m: f64,
    /// Whether the route's line itself is unseen somewhere in it (not only a corridor edge).
    pub on_the_line: bool,
}

/// The sensors of `config` with their occluders, to ask which see a point.
pub struct SensorView<'a> {
    sensors: Vec<(rsu_fusion::SensorCoverage<'a>, Point3<f64>)>,
    occluders: Vec<Prism>,
}

impl<'a> SensorView<'a> {
    /// The sensors of `site.config` and its buildings and parked vehicles as occluders.
    pub fn of_site(site: &'a SiteModel) -> Self {
        let ground = &site.config.ground;
        let mut occluders = site.buildings.clone();
        occluders.extend(site.parked.iter().map(|p| {
            let z = ground.height_at(p.footprint.center.x, p.footprint.center.y);
            Prism::from_box(None, &p.footprint, z, z + p.height_m)
        }));
        SensorView::new(&site.config, occluders)
    }

    /// The sensors of `config` with `occluders`.
    pub fn new(config: &'a SiteConfig, occluders: Vec<Prism>) -> Self {
        let sensors = config.sensors.iter().map(|s| (s.coverage(), s.position())).collect();
        SensorView { sensors, occluders }
    }

    /// The sensors (by index) that see `p`: in range and field of view, nothing in between.
    pub fn seen_by(&self, p: &Point3<f64>) -> SensorMask {
        let mut mask = SensorMask::NONE;
        for (i, (coverage, position)) in self.sensors.iter().enumerate() {
            if coverage.covers(p) && !self.occluders.iter().any(|o| o.blocks(position, p)) {
                mask = mask.with(i);
            }
        }
        mask
    }
}

/// The coverage of `route` by the sensors of `site`, sampled every `step_m` along it, on its
/// line and `near_m` to each side, `height_m` above the ground.
pub fn profile(route: &Route, site: &SiteModel, step_m: f64, near_m: f64, height_m: f64) -> CoverageProfile {
    let view = SensorView::of_site(site);
    let length_m = route.length_m();
    let steps = (length_m / step_m).ceil().max(1.0) as usize;
    let samples = (0..=steps)
        .map(|k| {
            let s_m = (k as f64 * step_m).min(length_m);
            let seen_by = [near_m, 0.0, -near_m].map(|lateral| {
                let p = route.point_at(s_m, lateral);
                let z = site.config.ground.height_at(p.x, p.y) + height_m;
                view.seen_by(&Point3::new(p.x, p.y, z))
            });
            CoverageSample { s_m, seen_by }
        })
        .collect();
    CoverageProfile { samples, sensor_ids: site.config.sensors.iter().map(|s| s.id.clone()).collect() }
}

impl CoverageProfile {
    /// The coverage of `segment`: over its samples (those with `from_m <= s <= to_m`).
    pub fn of_segment(&self, segment: &Segment) -> SegmentCoverage {
        let inside = || self.samples.iter().filter(|c| c.s_m >= segment.from_m - 1e-9 && c.s_m <= segment.to_m + 1e-9);
        let mut seen = SensorMask::NONE;
        let (mut min, mut max, mut n, mut covered) = (usize::MAX, 0, 0, 0);
        for c in inside() {
            n += 1;
            min = min.min(c.min_sensors());
            max = max.max(c.seen_by.iter().map(|m| m.len()).max().unwrap_or(0));
            if c.min_sensors() > 0 {
                covered += 1;
            }
            for m in c.seen_by {
                for i in m.indices() {
                    seen = seen.with(i);
                }
            }
        }
        SegmentCoverage {
            sensors_min: if n == 0 { 0 } else { min },
            sensors_max: max,
            sensors: seen.indices().filter_map(|i| self.sensor_ids.get(i).cloned()).collect(),
            covered_fraction: if n == 0 { 0.0 } else { covered as f64 / n as f64 },
            samples: n,
        }
    }

    /// The blind spots: runs of consecutive samples where some corridor point is seen by no
    /// sensor. On a loop, a run through the end and one from the start are one blind spot
    /// across the seam only in fact; they are listed as two (each with its chainage).
    pub fn blind_spots(&self) -> Vec<BlindSpot> {
        let mut out: Vec<BlindSpot> = Vec::new();
        let mut open: Option<BlindSpot> = None;
        for c in &self.samples {
            if c.min_sensors() == 0 {
                let on_line = c.seen_by[1].is_empty();
                match &mut open {
                    Some(b) => {
                        b.to_m = c.s_m;
                        b.on_the_line |= on_line;
                    }
                    None => open = Some(BlindSpot { from_m: c.s_m, to_m: c.s_m, on_the_line: on_line }),
                }
            } else if let Some(b) = open.take() {
                out.push(b);
            }
        }
        out.extend(open);
        out
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::{Isometry3, Point2, Translation3, UnitQuaternion};
    use rsu_fusion::{GroundModel, LidarNoise, SensorCalibration, SensorModel, Wgs84};
    use rsu_site::geometry::Polyline;

    use super::*;

    fn lidar(id: &str, x: f64, y: f64) -> SensorCalibration {
        SensorCalibration {
            id: id.into(),
            world_from_sensor: Isometry3::from_parts(Translation3::new(x, y, 5.0), UnitQuaternion::identity()),
            max_range_m: 50.0,
            hfov_deg: 360.0,
            vfov_deg: 90.0,
            frame_period_s: 0.1,
            model: SensorModel::Lidar(LidarNoise { position_sigma_m: 0.05, position_sigma_per_m: 0.0 }),
        }
    }

    #[test]
    fn range_and_occluders_make_the_blind_spots() {
        let config = SiteConfig {
            site_id: "test".into(),
            name: String::new(),
            origin: Wgs84::new(33.0, 120.0, 0.0),
            representative: true,
            ground: GroundModel::flat(0.0),
            sensors: vec![lidar("a", 0.0, 10.0), lidar("b", 60.0, 10.0)],
        };
        // A wall between sensor b and the route (it hides the route from about 77 to 88 m east).
        let wall = Prism::new(
            None,
            vec![Point2::new(70.0, 4.0), Point2::new(74.0, 4.0), Point2::new(74.0, 5.0), Point2::new(70.0, 5.0)],
            -1.0,
            20.0,
        );
        let view = SensorView::new(&config, vec![wall.clone()]);
        let line = Polyline::new(vec![Point2::new(0.0, 0.0), Point2::new(200.0, 0.0)], false).expect("line");
        let route = Route::new("r", "test", line).expect("route");
        let site_like = |s_m: f64| view.seen_by(&Point3::new(s_m, 0.0, 0.9)).len();
        assert_eq!(site_like(30.0), 2, "both sensors in range");
        assert_eq!(site_like(82.0), 0, "a is out of range, the wall hides b");
        assert_eq!(site_like(100.0), 1);
        assert_eq!(site_like(150.0), 0, "out of every sensor's range");
        // The same through a profile (a site model whose only sensors are these).
        let mut site = SiteModel::embedded().expect("site");
        site.config = config;
        site.buildings = vec![wall];
        site.parked.clear();
        let p = profile(&route, &site, 1.0, 3.0, 0.9);
        assert_eq!(p.samples.len(), 201);
        let spots = p.blind_spots();
        // The first blind stretch is behind the wall, the last from where b's 50 m range ends
        // (about 109 m) to the end of the route.
        assert_eq!(spots.len(), 2, "{spots:?}");
        let last = spots.last().expect("one");
        assert!((105.0..=110.0).contains(&last.from_m) && last.to_m == 200.0 && last.on_the_line, "{spots:?}");
        assert!(spots[0].from_m >= 70.0 && spots[0].to_m <= 97.0 && spots[0].on_the_line, "{spots:?}");
        let seg = p.of_segment(&Segment { index: 2, from_m: 20.0, to_m: 30.0 });
        assert_eq!((seg.sensors_min, seg.sensors_max, seg.samples), (2, 2, 11));
        assert_eq!(seg.sensors, vec!["a".to_owned(), "b".to_owned()]);
        let seg = p.of_segment(&Segment { index: 15, from_m: 150.0, to_m: 160.0 });
        assert_eq!((seg.sensors_min, seg.covered_fraction), (0, 0.0));
    }
}
