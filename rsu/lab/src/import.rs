//! `rsu-lab replay import dair-v2x | openlabel | autoware`: command-line arguments of the
//! importers (the same noise model for the two annotation datasets; Autoware bags carry their
//! own detections).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rsu_fusion::Wgs84;
use v2x_replays::import_dair::{
    DEFAULT_CALIB_TOLERANCE_DEG, DEFAULT_CALIB_TOLERANCE_M, DEFAULT_FILL_GAPS_S, DairOptions, import_dair,
};
use v2x_replays::import_openlabel::import_openlabel;

/// The dataset formats.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// DAIR-V2X / V2X-Seq.
    DairV2x,
    /// ASAM OpenLABEL.
    OpenLabel,
}

/// Arguments of `rsu-lab replay import dair-v2x` and `rsu-lab replay import openlabel`.
#[derive(clap::Args)]
pub struct DairArgs {
    /// DAIR-V2X: the dataset folder holding `data_info.json`; OpenLABEL: a JSON file or a folder
    /// of them.
    pub dir: PathBuf,
    /// Output log.
    #[arg(long)]
    pub out: PathBuf,
    /// WGS84 origin of the dataset's world frame as LAT,LON[,ALT] [deg, deg, m].
    #[arg(long, default_value = "0,0,0")]
    pub origin: String,
    /// Seed of the detection noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Detection position noise, 1 sigma [m].
    #[arg(long, default_value_t = 0.15)]
    pub position_sigma_m: f64,
    /// Detection yaw noise, 1 sigma [rad].
    #[arg(long, default_value_t = 0.05)]
    pub yaw_sigma_rad: f64,
    /// Probability of missing a labelled object in a frame.
    #[arg(long, default_value_t = 0.05)]
    pub miss_probability: f64,
    /// Longest gap in an object's labels bridged in the ground truth [s] (an object labelled
    /// before and after was there, hidden; by track id, or by position for cones without ids);
    /// 0 turns it off.
    #[arg(long, default_value_t = DEFAULT_FILL_GAPS_S)]
    pub fill_gaps_s: f64,
    /// DAIR-V2X: largest distance of a frame's `virtuallidar_to_world` position from the mean of
    /// all frames' [m] (the per-frame re-estimates of one lidar differ by centimetres).
    #[arg(long, default_value_t = DEFAULT_CALIB_TOLERANCE_M)]
    pub calib_tolerance_m: f64,
    /// DAIR-V2X: largest rotation of a frame's `virtuallidar_to_world` from the mean of all
    /// frames' [deg] (the per-frame re-estimates of one lidar differ by about 0.1°).
    #[arg(long, default_value_t = DEFAULT_CALIB_TOLERANCE_DEG)]
    pub calib_tolerance_deg: f64,
}

fn parse_origin(s: &str) -> anyhow::Result<Wgs84> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>().with_context(|| format!("--origin: {p:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let origin = match parts.as_slice() {
        [lat, lon] => Wgs84::new(*lat, *lon, 0.0),
        [lat, lon, alt] => Wgs84::new(*lat, *lon, *alt),
        _ => anyhow::bail!("--origin takes LAT,LON or LAT,LON,ALT"),
    };
    origin.validate().context("--origin")?;
    Ok(origin)
}

/// Runs the import.
pub fn import(args: &DairArgs, format: Format) -> anyhow::Result<ExitCode> {
    let options = DairOptions {
        origin: parse_origin(&args.origin)?,
        seed: args.seed,
        position_sigma_m: args.position_sigma_m,
        yaw_sigma_rad: args.yaw_sigma_rad,
        miss_probability: args.miss_probability,
        fill_gaps_s: args.fill_gaps_s,
        calib_tolerance_m: args.calib_tolerance_m,
        calib_tolerance_deg: args.calib_tolerance_deg,
        ..Default::default()
    };
    let summary = match format {
        Format::DairV2x => import_dair(&args.dir, &args.out, &options),
        Format::OpenLabel => {
            import_openlabel(&args.dir, &args.out, &DairOptions { scenario: "openlabel-import".into(), ..options })
        }
    }
    .with_context(|| format!("importing {} into {}", args.dir.display(), args.out.display()))?;
    println!(
        "imported {} frames ({} truth instances, {} of them bridging gaps in an object's labels) from {} into {}",
        summary.frames,
        summary.labels,
        summary.bridged,
        args.dir.display(),
        args.out.display()
    );
    if let Some(spread) = &summary.calibration_spread {
        println!(
            "calibration: the mean of the frames' virtuallidar_to_world; frames within {:.3} m and {:.3}° of it (tolerance {} m, {}°)",
            spread.max_translation_m, spread.max_rotation_deg, args.calib_tolerance_m, args.calib_tolerance_deg
        );
    }
    if summary.truth_ids_per_frame {
        println!(
            "identities: the labels carry no track ids; truth ids hold for one frame, so IDF1, HOTA/AssA and id switches are not applicable"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `rsu-lab replay import autoware`.
#[derive(clap::Args)]
pub struct AutowareArgs {
    /// The rosbag2 recording (MCAP storage, CDR messages).
    pub bag: PathBuf,
    /// Output log.
    #[arg(long)]
    pub out: PathBuf,
    /// `autoware_perception_msgs/msg/DetectedObjects` topics to import, one roadside lidar each
    /// (repeatable; default: every such topic).
    #[arg(long = "detections")]
    pub detections: Vec<String>,
    /// The `autoware_perception_msgs/msg/TrackedObjects` topic that is the ground truth.
    #[arg(long)]
    pub truth: Option<String>,
    /// A site file (`site.toml`) whose sensors, named as the detections' frames, give poses,
    /// coverage and noise, and whose origin is the site's. Without it, poses come from
    /// `/tf_static`.
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// WGS84 origin of the world frame as LAT,LON[,ALT] (without `--calibration`).
    #[arg(long, default_value = "0,0,0")]
    pub origin: String,
    /// The world frame of the bag's tf tree.
    #[arg(long, default_value = "map")]
    pub world_frame: String,
    /// Scenario name written into the log.
    #[arg(long, default_value = "autoware-import")]
    pub scenario: String,
}

/// Runs `rsu-lab replay import autoware`.
pub fn import_autoware(args: &AutowareArgs) -> anyhow::Result<ExitCode> {
    let calibration = match &args.calibration {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let site: rsu_fusion::SiteConfig =
                toml::from_str(&text).with_context(|| format!("--calibration {}", path.display()))?;
            Some(site)
        }
        None => None,
    };
    let options = v2x_replays::import_autoware::AutowareOptions {
        detections: args.detections.clone(),
        truth: args.truth.clone(),
        calibration,
        origin: parse_origin(&args.origin)?,
        world_frame: args.world_frame.clone(),
        scenario: args.scenario.clone(),
        ..Default::default()
    };
    let summary = v2x_replays::import_autoware::import_autoware(&args.bag, &args.out, &options)
        .with_context(|| format!("importing {} into {}", args.bag.display(), args.out.display()))?;
    println!(
        "imported {} sensor frames ({} detections) and {} ground-truth frames from {} into {}",
        summary.frames,
        summary.detections,
        summary.truth_frames,
        args.bag.display(),
        args.out.display()
    );
    for (id, topic, source) in &summary.sensors {
        println!("  sensor {id}: {topic}, pose from {source}");
    }
    for (reason, n) in &summary.skipped {
        println!("  skipped {n}: {reason}");
    }
    Ok(ExitCode::SUCCESS)
}
