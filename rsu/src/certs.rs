//! `rsu certs init`: writes a development PKI (site CA, RSU server certificate, vehicle, sensor
//! and signal controller client certificates, an empty revocation list) so the stack runs without outside
//! tools. Identities live in each certificate's `v2x://<role>/<id>` SAN URI (see
//! `v2x_link::identity`).

use std::path::Path;

use anyhow::Context;
use v2x_link::pki::{default_server_names, write_dev_pki_with_signals};

/// Creates the PKI in `out` for RSU `rsu_id` with `vehicles` vehicle certificates named
/// `veh-0001`.., one per id in `named_vehicles`, one sensor certificate per id in `sensors` and
/// one signal controller certificate per id in `signals`;
/// extra server names (DNS or IP) are added to the defaults (`localhost`, `rsu.local`,
/// `127.0.0.1`, `::1`).
pub fn init(
    out: &Path,
    rsu_id: &str,
    vehicles: usize,
    named_vehicles: &[String],
    sensors: &[String],
    signals: &[String],
    extra_names: &[String],
) -> anyhow::Result<()> {
    let mut vehicle_ids: Vec<String> = (1..=vehicles).map(|i| format!("veh-{i:04}")).collect();
    vehicle_ids.extend(named_vehicles.iter().cloned());
    let mut names = default_server_names();
    names.extend(extra_names.iter().cloned());
    let files = write_dev_pki_with_signals(out, rsu_id, &names, &vehicle_ids, sensors, signals)
        .with_context(|| format!("creating the development PKI in {}", out.display()))?;
    println!("development PKI for RSU {rsu_id} in {}:", out.display());
    println!("  CA certificate      {}", files.ca_cert.display());
    println!("  CA key              {} (keep it private)", files.ca_key.display());
    println!("  RSU certificate     {} (valid for {})", files.server.cert.display(), names.join(", "));
    println!("  RSU key             {}", files.server.key.display());
    println!("  revocation list     {}", files.revocations.display());
    println!("  serial numbers      {}", files.serials.display());
    println!("  vehicles            {} in {}", files.vehicles.len(), out.join("vehicles").display());
    println!("  sensors             {} in {}", files.sensors.len(), out.join("sensors").display());
    println!("  signal controllers  {} in {}", files.signals.len(), out.join("signals").display());
    Ok(())
}
