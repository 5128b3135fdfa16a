//! Self-report tests: connected vehicles leaving the tunnel report dead reckoning with a growing
//! error, then standalone, differential and RTK fixes, and the reported accuracy covers the error.

use std::sync::Arc;

use nalgebra::Point3;
use rsu_fusion::measurement::GnssStatus;
use rsu_site::SiteModel;
use vehicle_sim::record::{Output, Simulation};
use vehicle_sim::scenario::build;

#[test]
fn tunnel_exit_degrades_then_recovers_the_fix() {
    let site = Arc::new(SiteModel::embedded().expect("site loads"));
    let scenario = build("tunnel-exit-gnss", site.clone(), 1).expect("builds");
    let mut sim = Simulation::new(scenario, 1);
    let mut truth_at = std::collections::BTreeMap::new();
    let mut reports = Vec::new();
    sim.run(30.0, |o| {
        match o {
            Output::Truth(g) => {
                for obj in g.objects.iter().filter(|o| o.v2x_id.as_deref() == Some("cv-tunnel-1")) {
                    truth_at.insert(g.time, obj.center_m);
                }
            }
            Output::Vehicle(v) if v.vehicle_id == "cv-tunnel-1" => reports.push(v),
            _ => {}
        }
        Ok::<(), ()>(())
    })
    .expect("runs");
    let statuses: Vec<GnssStatus> = reports.iter().map(|r| r.gnss).collect();
    let first = |s: GnssStatus| statuses.iter().position(|x| *x == s).expect("status reported");
    assert_eq!(statuses[0], GnssStatus::DeadReckoning, "starts inside the tunnel");
    let (standalone, differential, rtk) =
        (first(GnssStatus::Standalone), first(GnssStatus::Differential), first(GnssStatus::RtkFixed));
    assert!(standalone < differential && differential < rtk, "{statuses:?}");
    let error_of = |i: usize| {
        let r = &reports[i];
        let truth = truth_at[&r.time];
        let p = site.frame.enu_from_wgs84(&r.position);
        (p - Point3::new(truth.x, truth.y, p.z)).norm()
    };
    // Dead-reckoning drift grows with the distance driven, and the reported accuracy covers it.
    let dr_end = standalone - 1;
    assert!(error_of(dr_end) > 1.0 && error_of(dr_end) > error_of(2), "{} {}", error_of(2), error_of(dr_end));
    assert!(reports[dr_end].accuracy.semi_major_m > error_of(dr_end));
    // Back on RTK the error is centimetres.
    let last = reports.len() - 1;
    assert!(rtk < last && error_of(last) < 0.2, "{}", error_of(last));
    assert!(reports[last].accuracy.semi_major_m < 0.1);
}
