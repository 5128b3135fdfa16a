//! The site model shared by the daemon, the simulator and the tools: where the roadside sensors
//! are and how they are calibrated (the fusion core's [`SiteConfig`]), the map (lanes, routes,
//! walkways, crosswalks, buildings, parked vehicles, tunnels, signal heads) and the signal plan.
//!
//! - [`model`]: [`SiteModel`], read from a folder or from the embedded copy, and its parts.
//! - [`geometry`]: polylines, boxes and line-of-sight prisms in the site plane.
//! - [`signals`]: the fixed-time signal plan.
//! - [`mapdata`]: the site's MAP (intersection lanes, manoeuvres, signal groups) for vehicles.
//! - [`rsi`]: road safety information events detected from fused tracks (sans-IO).
//! - [`embedded`]: the representative Yancheng site compiled into the binaries.
//! - [`SiteSource`]: the embedded site or a folder that overrides it, as a command line names it.
//!
//! The crate does no I/O beyond reading a site folder when asked to.

pub mod embedded;
pub mod geometry;
pub mod mapdata;
pub mod model;
pub mod rsi;
pub mod signals;

use std::fmt;
use std::path::PathBuf;

pub use model::{SiteError, SiteModel};
pub use rsu_fusion::SiteConfig;

/// Where a site comes from: the copy built into the binary, or a folder on disk in the same
/// format (`site.toml`, optional `signal_plan.toml`, `*.geojson`) that replaces it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SiteSource {
    /// The representative Yancheng site of [`embedded`].
    #[default]
    Embedded,
    /// A site folder.
    Dir(PathBuf),
}

impl SiteSource {
    /// `Dir` when a folder is given, else `Embedded` (for an optional `--site DIR` argument).
    pub fn from_option(dir: Option<PathBuf>) -> SiteSource {
        dir.map_or(SiteSource::Embedded, SiteSource::Dir)
    }

    /// Loads the site model.
    pub fn load(&self) -> Result<SiteModel, SiteError> {
        match self {
            SiteSource::Embedded => SiteModel::embedded(),
            SiteSource::Dir(dir) => SiteModel::load(dir),
        }
    }
}

impl fmt::Display for SiteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SiteSource::Embedded => write!(f, "the embedded representative Yancheng site"),
            SiteSource::Dir(dir) => write!(f, "the site folder {}", dir.display()),
        }
    }
}

/// The embedded site's `SiteConfig` (sensors and calibration), for a daemon configured without a
/// site of its own.
pub fn embedded_site_config() -> Result<SiteConfig, SiteError> {
    SiteModel::embedded().map(|model| model.config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_site_is_the_folder_in_the_repository() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("yancheng");
        let from_disk = SiteModel::load(&dir).expect("the folder loads");
        let embedded = SiteModel::embedded().expect("the embedded copy loads");
        assert_eq!(embedded.config, from_disk.config);
        assert_eq!(embedded.signal_plan, from_disk.signal_plan);
        assert_eq!(embedded.paths, from_disk.paths);
        assert_eq!(embedded.crosswalks, from_disk.crosswalks);
        assert_eq!(embedded.buildings.len(), from_disk.buildings.len());
        assert_eq!(embedded.parked, from_disk.parked);
        // Every GeoJSON file of the folder is embedded.
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("folder")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".geojson"))
            .collect();
        on_disk.sort();
        let embedded_names: Vec<&str> = embedded::GEOJSON.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, embedded_names);
    }

    #[test]
    fn errors_in_a_folder_name_its_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("site.toml"), "site_id = 3").expect("write");
        let err = SiteSource::Dir(dir.path().to_owned()).load().expect_err("bad site").to_string();
        assert!(err.contains("site.toml"), "{err}");
        assert!(SiteSource::Dir(dir.path().join("missing")).load().is_err());
    }
}
