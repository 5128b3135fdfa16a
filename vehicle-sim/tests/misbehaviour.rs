//! Misbehaviour detection in the closed loop ([`run_offline_observed`]): the `v2x-spoofing`
//! scenario's two lying cars are flagged by the RSU's fusion core within 1 s of starting to lie,
//! their lies never reach the broadcast, and the honest cars are never flagged.

use std::collections::BTreeMap;
use std::sync::Arc;

use rsu_fusion::{MisbehaviourReason, RoadsideFrame, Timestamp};
use rsu_site::SiteModel;
use vehicle_sim::connected::CarConfig;
use vehicle_sim::cosim::run_offline_observed;
use vehicle_sim::scenario::build;

/// A lie smaller than this is not told apart from GNSS and lidar noise [m] (the default
/// `misbehaviour_lidar_mismatch_m`); larger ones must not reach the broadcast.
const DISTINGUISHABLE_M: f64 = 2.5;

#[test]
fn spoofing_cars_are_flagged_within_a_second_and_their_lies_never_broadcast() {
    for seed in [1, 2, 3] {
        spoofing(seed);
    }
}

fn spoofing(seed: u64) {
    let site = Arc::new(SiteModel::embedded().expect("site"));
    let scenario = build("v2x-spoofing", site.clone(), seed).expect("builds");
    let spoofs = scenario.spoofs.clone();
    assert_eq!(spoofs.len(), 2);
    let start = scenario.world.start_time();
    let mut first_flag: BTreeMap<String, (Timestamp, MisbehaviourReason)> = BTreeMap::new();
    let mut frames: Vec<RoadsideFrame> = Vec::new();
    let outcome = run_offline_observed(&site, "v2x-spoofing", seed, 12.0, &CarConfig::default(), |fusion, frame| {
        for flag in fusion.misbehaving_vehicles(frame.time) {
            eprintln!("seed {seed} {:.1} s: {} flagged: {flag}", frame.time.secs_since(start), flag.vehicle_id);
            first_flag.entry(flag.vehicle_id.clone()).or_insert((flag.since, flag.reason));
        }
        frames.push(frame.clone());
    })
    .expect("runs");

    // Only the liars are flagged, each within 1 s of starting to lie, for the reason expected.
    let flagged: Vec<&String> = first_flag.keys().collect();
    assert_eq!(flagged, ["spoof-drift", "spoof-jump"], "seed {seed}");
    for spoof in &spoofs {
        let (since, reason) = first_flag[&spoof.vehicle_id];
        let after_s = since.secs_since(start) - spoof.from_s;
        eprintln!("seed {seed}: {} flagged {after_s:.2} s after it started lying ({reason})", spoof.vehicle_id);
        assert!((0.0..=1.0).contains(&after_s), "{}: flagged {after_s} s after lying", spoof.vehicle_id);
        let expected =
            if spoof.ramp_s > 0.0 { MisbehaviourReason::LidarMismatch } else { MisbehaviourReason::Teleport };
        assert_eq!(reason, expected, "{}", spoof.vehicle_id);
    }

    // The honest cars' reports are still fused: their ids are on broadcast participants.
    for honest in ["cv-honest-1", "cv-honest-2"] {
        let named =
            frames.iter().filter(|f| f.participants.iter().any(|p| p.v2x_id.as_deref() == Some(honest))).count();
        assert!(named > 50, "seed {seed}: {honest} named in {named} frames");
    }

    // No lie reaches the broadcast: no participant where a liar claims to be (unless something
    // real is there), and no participant named after a liar once it is flagged.
    let frame_enu = site.config.frame();
    let truth_at: BTreeMap<i64, _> = outcome.truth.iter().map(|t| (t.time.as_nanos(), t)).collect();
    let mut lies_checked = 0;
    // How far the track nearest a liar's true position strayed while it lied [m].
    let mut max_pull_m: f64 = 0.0;
    for spoof in &spoofs {
        let (since, _) = first_flag[&spoof.vehicle_id];
        for frame in frames.iter().filter(|f| f.time >= since) {
            assert!(
                frame.participants.iter().all(|p| p.v2x_id.as_deref() != Some(spoof.vehicle_id.as_str())),
                "seed {seed}: {} still named at {}",
                spoof.vehicle_id,
                frame.time
            );
        }
        let liar_actor = outcome.cars.iter().find(|c| c.v2x_id == spoof.vehicle_id).expect("the liar").actor_id;
        for state in outcome.vehicle_states.iter().filter(|s| s.vehicle_id == spoof.vehicle_id) {
            let elapsed_s = state.time.secs_since(start);
            if spoof.offset_at(elapsed_s).norm() < DISTINGUISHABLE_M {
                continue;
            }
            // The first frame made after the report (frames are made 10 ms before reports are
            // due), and where the report's claim is by then.
            let next = frames.iter().find(|f| f.time >= state.time && f.time.secs_since(state.time) < 0.1);
            let (Some(frame), Some(truth)) = (next, truth_at.get(&state.time.as_nanos())) else {
                continue;
            };
            let dt_s = frame.time.secs_since(state.time);
            let reported = frame_enu.enu_from_wgs84(&state.position);
            let claimed = ahead([reported.x, reported.y], state.speed_mps, state.yaw_rad, dt_s);
            let near = |p: [f64; 2], r: f64| dist(p, claimed) <= r;
            let truths = || {
                truth.objects.iter().map(|o| (o.id, ahead([o.center_m.x, o.center_m.y], o.speed_mps, o.yaw_rad, dt_s)))
            };
            if truths().any(|(id, p)| id != liar_actor && near(p, 3.0)) {
                continue; // something real is there
            }
            let Some((_, real)) = truths().find(|(id, _)| *id == liar_actor) else { continue };
            lies_checked += 1;
            // A ghost: a participant near the claim, and nearer to it than to the real car (the
            // real car's own track, pulled a little by lies too small to tell from noise, is not
            // one).
            let ghost = frame.participants.iter().find(|p| {
                let at = [p.position_m.x, p.position_m.y];
                near(at, 2.0) && dist(at, claimed) < dist(at, real)
            });
            assert!(ghost.is_none(), "seed {seed}: {} lie broadcast at {elapsed_s:.1} s: {ghost:?}", spoof.vehicle_id);
            let pull_m = frame
                .participants
                .iter()
                .map(|p| dist([p.position_m.x, p.position_m.y], real))
                .fold(f64::INFINITY, f64::min);
            max_pull_m = max_pull_m.max(pull_m);
        }
    }
    eprintln!("seed {seed}: {lies_checked} lies checked, the liars' own tracks strayed at most {max_pull_m:.2} m");
    assert!(lies_checked > 50, "seed {seed}: {lies_checked} lies checked");
}

/// Where something at `p` [m] moving at `speed_mps` along `yaw_rad` is `dt_s` later.
fn ahead(p: [f64; 2], speed_mps: f64, yaw_rad: f64, dt_s: f64) -> [f64; 2] {
    [p[0] + speed_mps * dt_s * yaw_rad.cos(), p[1] + speed_mps * dt_s * yaw_rad.sin()]
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}
