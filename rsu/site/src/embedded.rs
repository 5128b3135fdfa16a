//! The representative Yancheng site, compiled into every binary so that `rsu-lab demo`, replay
//! reviews and the simulator work from any folder, with no checkout beside them. The files are
//! the ones in `rsu/site/yancheng/`; a folder in the same format given on the command line (or
//! in `rsu.toml`) overrides them.

/// How errors name the embedded files (`<embedded>/yancheng/site.toml`).
pub const PATH_PREFIX: &str = "<embedded>/yancheng";

/// `site.toml`: the `SiteConfig` (origin, ground, sensors and their calibration).
pub const SITE_TOML: &str = include_str!("../yancheng/site.toml");

/// `signal_plan.toml`: the fixed-time plan of the city-block intersection.
pub const SIGNAL_PLAN_TOML: &str = include_str!("../yancheng/signal_plan.toml");

/// The GeoJSON map files, in name order (the order [`crate::SiteModel::load`] reads a folder in).
pub const GEOJSON: [(&str, &str); 3] = [
    ("intersection.geojson", include_str!("../yancheng/intersection.geojson")),
    ("multilane_tunnel.geojson", include_str!("../yancheng/multilane_tunnel.geojson")),
    ("shuttle_loop.geojson", include_str!("../yancheng/shuttle_loop.geojson")),
];
