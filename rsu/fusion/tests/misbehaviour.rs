//! Misbehaviour detection in the fusion core: each kind of implausible self-report flags its
//! vehicle with the right reason, a flagged vehicle's reports are not fused until the hold has
//! passed since its last implausible one, and the flags do not depend on arrival order.
//! (Disagreeing with the lidars is tested in the closed loop, `vehicle-sim/tests/misbehaviour.rs`.)

mod synthetic;

use nalgebra::Vector2;
use rsu_fusion::{Fusion, FusionConfig, Ingest, MisbehaviourReason, VehicleState};
use synthetic::*;

/// A change that makes a report lie.
type Lie = dyn Fn(&mut VehicleState);

/// A car driving east at 10 m/s from (200, 200) [m] (far from every sensor), reporting every
/// 100 ms.
fn honest(site: &rsu_fusion::SiteConfig, t: f64) -> VehicleState {
    vehicle_state(site, "liar", t, Vector2::new(200.0 + 10.0 * t, 200.0), 0.0, 10.0)
}

/// Hands in the reports of `t` = 0.1 .. `end_s` (arriving when measured), the one at `lie_at_s`
/// changed by `lie`, reading objects after each.
fn drive(fusion: &mut Fusion, end_s: f64, lie_at_s: f64, lie: &Lie) {
    drive_from(fusion, 0.1, end_s, lie_at_s, lie);
}

/// [`drive`] from `start_s`.
fn drive_from(fusion: &mut Fusion, start_s: f64, end_s: f64, lie_at_s: f64, lie: &Lie) {
    let site = fusion.site().clone();
    for k in (start_s * 10.0).round() as i32..=(end_s * 10.0).round() as i32 {
        let t = 0.1 * f64::from(k);
        let mut state = honest(&site, t);
        if (t - lie_at_s).abs() < 1e-6 {
            lie(&mut state);
        }
        assert_eq!(fusion.handle_vehicle_state(ts(t), &state), Ingest::Accepted);
        fusion.poll_objects(ts(t));
    }
}

#[test]
fn each_kind_of_lie_flags_the_vehicle_for_its_reason() {
    let site = site_2l2c(0.15, 3.0);
    let lies: [(&str, &Lie, MisbehaviourReason); 5] = [
        ("jump 30 m", &|s| s.position = site_jump(s, 30.0), MisbehaviourReason::Teleport),
        ("300 km/h", &|s| s.speed_mps = 83.0, MisbehaviourReason::Speed),
        ("braking at 3 g", &|s| s.accel_long_mps2 = -30.0, MisbehaviourReason::Acceleration),
        ("spinning", &|s| s.yaw_rate_rps = 4.0, MisbehaviourReason::YawRate),
        ("1.5 g in a bend", &|s| s.yaw_rate_rps = 1.5, MisbehaviourReason::YawRate),
    ];
    for (what, lie, reason) in lies {
        let mut fusion = new_fusion(&site);
        drive(&mut fusion, 2.0, 1.0, lie);
        let flags = fusion.misbehaving_vehicles(ts(2.0));
        assert_eq!(flags.len(), 1, "{what}: {flags:?}");
        assert_eq!((flags[0].vehicle_id.as_str(), flags[0].reason), ("liar", reason), "{what}");
        assert_eq!(flags[0].since, ts(1.0), "{what}: flagged on the lying report");
        assert!(flags[0].measured > flags[0].limit, "{what}: {}", flags[0]);
        let m = &fusion.stats().misbehaviour;
        assert_eq!((m.total_flags(), m.flags(reason)), (1, 1), "{what}: {m:?}");
        // The lie and every report after it were withheld: the track stopped at 0.9 s.
        assert_eq!(m.reports_withheld, 11, "{what}");
        let objects = fusion.poll_objects(ts(2.0));
        assert!(objects.iter().all(|o| o.v2x_id.is_none()), "{what}: the liar names no object");
    }
    // Honest, it is never flagged.
    let mut fusion = new_fusion(&site);
    drive(&mut fusion, 2.0, -1.0, &|_| {});
    assert!(fusion.misbehaving_vehicles(ts(2.0)).is_empty());
    assert_eq!(fusion.stats().misbehaviour, Default::default());
}

/// The report's position moved `by_m` north.
fn site_jump(state: &VehicleState, by_m: f64) -> rsu_fusion::Wgs84 {
    let site = site_2l2c(0.15, 3.0);
    let mut p = site.frame().enu_from_wgs84(&state.position);
    p.y += by_m;
    site.frame().wgs84_from_enu(&p)
}

#[test]
fn a_flag_lapses_after_the_hold_and_the_vehicle_is_fused_again() {
    let site = site_2l2c(0.15, 3.0);
    let config = FusionConfig { misbehaviour_hold_s: 2.0, ..FusionConfig::default() };
    let mut fusion = Fusion::new(site.clone(), config).expect("engine");
    // One report claims 83 m/s; the next, honest again, implies a deceleration of 730 m/s²:
    // the last implausible report is at 1.1 s.
    let lie = |s: &mut VehicleState| s.speed_mps = 83.0;
    drive(&mut fusion, 3.1, 1.0, &lie);
    let flags = fusion.misbehaving_vehicles(ts(3.1));
    assert_eq!(flags.len(), 1);
    assert_eq!(
        (flags[0].reason, flags[0].last_evidence, flags[0].until),
        (MisbehaviourReason::Speed, ts(1.1), ts(3.1))
    );
    assert!(fusion.misbehaving_vehicles(ts(3.2)).is_empty(), "lapsed");
    drive_from(&mut fusion, 3.2, 5.0, 1.0, &lie);
    let m = &fusion.stats().misbehaviour;
    assert_eq!((m.speed, m.total_flags()), (1, 1), "one flag: {m:?}");
    assert_eq!(m.reports_withheld, 22, "1.0 s to 3.1 s");
    let objects = fusion.poll_objects(ts(5.0));
    assert!(objects.iter().any(|o| o.v2x_id.as_deref() == Some("liar")), "fused again: {objects:?}");
}

#[test]
fn flags_do_not_depend_on_arrival_order() {
    let site = site_2l2c(0.15, 3.0);
    let run = |delay_s: &dyn Fn(i32) -> f64| {
        let mut fusion = new_fusion(&site);
        let mut arrivals: Vec<(f64, VehicleState)> = (1..=30)
            .map(|k| {
                let t = 0.1 * f64::from(k);
                let mut state = honest(&site, t);
                if k == 15 {
                    state.position = site_jump(&state, 25.0);
                }
                (t + delay_s(k), state)
            })
            .collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (arrive_s, state) in &arrivals {
            assert_eq!(fusion.handle_vehicle_state(ts(*arrive_s), state), Ingest::Accepted);
            fusion.poll_objects(ts(*arrive_s));
        }
        fusion.poll_objects(ts(3.5));
        (fusion.misbehaving_vehicles(ts(3.5)), fusion.stats().misbehaviour.clone(), fusion.stats().rollbacks)
    };
    let (in_order, counts, _) = run(&|_| 0.0);
    // Every third report 250 ms late: overtaken by two newer ones, fused by rollbacks.
    let (shuffled, shuffled_counts, rollbacks) = run(&|k| if k % 3 == 0 { 0.25 } else { 0.0 });
    assert!(rollbacks > 5, "{rollbacks} rollbacks");
    assert_eq!(in_order.len(), 1);
    assert_eq!(in_order[0].reason, MisbehaviourReason::Teleport);
    assert_eq!(in_order, shuffled);
    assert_eq!(counts, shuffled_counts);
}
