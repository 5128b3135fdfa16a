//! A development PKI generated with rcgen: a site CA, the RSU's server certificate and vehicle,
//! sensor and signal controller client certificates, each carrying its identity as described in [`crate::identity`].
//! Keys are ECDSA P-256. Production certificates from a real CA work the same way as long as they
//! carry the `v2x://<role>/<id>` SAN URI (and, for the RSU, the DNS name clients connect to).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::identity::{CertRole, Identity, check_id, normalise_serial};

/// Why the PKI could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A bad id.
    #[error("invalid id {id:?}: {problem}")]
    BadId {
        /// The id.
        id: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// Validity of generated certificates [years from one day before now].
pub const VALIDITY_YEARS: i32 = 5;

/// A certificate and its private key, in PEM.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The holder.
    pub identity: Identity,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// Serial number, big-endian without leading zeros.
    pub serial: Vec<u8>,
}

/// Paths of a certificate and its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKeyPaths {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

impl IssuedCert {
    /// Writes `<dir>/<stem>.pem` and `<dir>/<stem>.key` (the key readable by the owner only).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<CertKeyPaths, PkiError> {
        let paths = CertKeyPaths { cert: dir.join(format!("{stem}.pem")), key: dir.join(format!("{stem}.key")) };
        write_file(&paths.cert, &self.cert_pem, false)?;
        write_file(&paths.key, &self.key_pem, true)?;
        Ok(paths)
    }

    /// The serial number as lowercase hex (the revocation-list notation).
    pub fn serial_hex(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A certificate authority that issues site certificates.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
    next_serial: u64,
}

impl DevCa {
    /// A new self-signed CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<DevCa, PkiError> {
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let base = serial_base();
        params.serial_number = Some(SerialNumber::from(base));
        set_validity(&mut params);
        let issuer = CertifiedIssuer::self_signed(params, key)?;
        Ok(DevCa { issuer, key_pem, next_serial: base + 1 })
    }

    /// The CA certificate (PEM): the trust anchor of every party.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA's private key (PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server certificate for RSU `rsu_id`, valid for the DNS names and IP addresses in
    /// `server_names` (what clients pass as the server name), with extended key usage serverAuth.
    pub fn issue_server(&mut self, rsu_id: &str, server_names: &[String]) -> Result<IssuedCert, PkiError> {
        let identity = Identity::rsu(rsu_id);
        let mut sans = Vec::new();
        for n in server_names {
            sans.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.as_str().try_into()?),
            });
        }
        self.issue(identity, sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for a vehicle or sensor, with extended key usage clientAuth.
    pub fn issue_client(&mut self, identity: &Identity) -> Result<IssuedCert, PkiError> {
        self.issue(identity.clone(), Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &mut self,
        identity: Identity,
        mut sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<IssuedCert, PkiError> {
        check_id(&identity.id).map_err(|problem| PkiError::BadId { id: identity.id.clone(), problem })?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&identity.id);
        sans.push(SanType::URI(identity.uri().try_into()?));
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let serial = self.next_serial;
        self.next_serial += 1;
        params.serial_number = Some(SerialNumber::from(serial));
        set_validity(&mut params);
        let cert = params.signed_by(&key, &*self.issuer)?;
        Ok(IssuedCert {
            identity,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: normalise_serial(&serial.to_be_bytes()),
        })
    }
}

/// The files of a development PKI written by [`write_dev_pki`].
#[derive(Clone, Debug)]
pub struct DevPkiFiles {
    /// `ca.pem`: the trust anchor for the RSU and every client.
    pub ca_cert: PathBuf,
    /// `ca.key`: the CA's key (keep it offline in a real deployment).
    pub ca_key: PathBuf,
    /// `rsu.pem` / `rsu.key`: the RSU's server certificate.
    pub server: CertKeyPaths,
    /// `revoked.txt`: an empty revocation list to add serial numbers to.
    pub revocations: PathBuf,
    /// `vehicles/<id>.pem` / `.key`, by vehicle id.
    pub vehicles: Vec<(String, CertKeyPaths)>,
    /// `sensors/<id>.pem` / `.key`, by sensor id.
    pub sensors: Vec<(String, CertKeyPaths)>,
    /// `signals/<id>.pem` / `.key`, by signal controller id.
    pub signals: Vec<(String, CertKeyPaths)>,
    /// `serials.txt` lines: `<role>/<id> <serial hex>` of every issued certificate.
    pub serials: PathBuf,
}

/// The DNS names and addresses the development server certificate is valid for.
pub fn default_server_names() -> Vec<String> {
    vec!["localhost".into(), "rsu.local".into(), "127.0.0.1".into(), "::1".into()]
}

/// Creates a development PKI in `dir` (created if missing): a CA, a server certificate for RSU
/// `rsu_id` valid for `server_names`, and one client certificate per vehicle and sensor id.
pub fn write_dev_pki(
    dir: &Path,
    rsu_id: &str,
    server_names: &[String],
    vehicle_ids: &[String],
    sensor_ids: &[String],
) -> Result<DevPkiFiles, PkiError> {
    write_dev_pki_with_signals(dir, rsu_id, server_names, vehicle_ids, sensor_ids, &[])
}

/// [`write_dev_pki`] with a signal controller certificate (`v2x://signal/<id>`, in
/// `signals/`) per id in `signal_ids`.
pub fn write_dev_pki_with_signals(
    dir: &Path,
    rsu_id: &str,
    server_names: &[String],
    vehicle_ids: &[String],
    sensor_ids: &[String],
    signal_ids: &[String],
) -> Result<DevPkiFiles, PkiError> {
    for sub in [dir.to_owned(), dir.join("vehicles"), dir.join("sensors"), dir.join("signals")] {
        std::fs::create_dir_all(&sub).map_err(|cause| PkiError::Io { path: sub.clone(), cause })?;
    }
    let mut ca = DevCa::generate(&format!("{rsu_id} development site CA"))?;
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    write_file(&ca_cert, &ca.cert_pem(), false)?;
    write_file(&ca_key, ca.key_pem(), true)?;
    let server_cert = ca.issue_server(rsu_id, server_names)?;
    let server = server_cert.write(dir, "rsu")?;
    let mut serials = format!("rsu/{rsu_id} {}\n", server_cert.serial_hex());
    let mut issue_all = |role: CertRole, ids: &[String], sub: &str| -> Result<Vec<(String, CertKeyPaths)>, PkiError> {
        let mut out = Vec::new();
        for id in ids {
            let cert = ca.issue_client(&Identity { role, id: id.clone() })?;
            serials.push_str(&format!("{}/{id} {}\n", role.as_str(), cert.serial_hex()));
            out.push((id.clone(), cert.write(&dir.join(sub), id)?));
        }
        Ok(out)
    };
    let vehicles = issue_all(CertRole::Vehicle, vehicle_ids, "vehicles")?;
    let sensors = issue_all(CertRole::Sensor, sensor_ids, "sensors")?;
    let signals = issue_all(CertRole::Signal, signal_ids, "signals")?;
    let revocations = dir.join("revoked.txt");
    write_file(
        &revocations,
        "# Revoked certificate serial numbers, one hex number per line (see serials.txt).\n",
        false,
    )?;
    let serials_path = dir.join("serials.txt");
    write_file(&serials_path, &serials, false)?;
    Ok(DevPkiFiles { ca_cert, ca_key, server, revocations, vehicles, sensors, signals, serials: serials_path })
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Yancheng V2X test field");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from one day before now for [`VALIDITY_YEARS`].
fn set_validity(params: &mut CertificateParams) {
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let start_s = now_s.saturating_sub(86_400);
    // Civil date of `start_s` (days since the epoch to year/month/day, proleptic Gregorian).
    let (year, month, day) = rsu_fusion::time::civil_from_days(i64::try_from(start_s / 86_400).unwrap_or(0));
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + VALIDITY_YEARS, month, day.min(28));
}

/// A serial base unique per CA generation: nanoseconds since the epoch, with room for the
/// certificates it issues.
fn serial_base() -> u64 {
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos());
    (u64::try_from(ns).unwrap_or(u64::MAX >> 1) & (u64::MAX >> 2)) << 1
}

fn write_file(path: &Path, content: &str, private: bool) -> Result<(), PkiError> {
    let io = |cause| PkiError::Io { path: path.to_owned(), cause };
    std::fs::write(path, content).map_err(io)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_their_identity_and_serial() {
        let mut ca = DevCa::generate("test CA").expect("CA");
        let cert = ca.issue_client(&Identity::vehicle("veh-1")).expect("cert");
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("PEM").to_vec();
        assert_eq!(Identity::from_cert_der(&der), Ok(Identity::vehicle("veh-1")));
        assert_eq!(crate::identity::cert_serial(&der).expect("serial"), cert.serial);
        let other = ca.issue_client(&Identity::sensor("lidar-ne")).expect("cert");
        assert_ne!(other.serial, cert.serial);
        assert!(ca.issue_client(&Identity::vehicle("bad id")).is_err());
    }

    #[test]
    fn the_dev_pki_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_dev_pki(
            dir.path(),
            "rsu-1",
            &default_server_names(),
            &["veh-1".to_owned()],
            &["lidar-ne".to_owned(), "cam-n".to_owned()],
        )
        .expect("pki");
        for p in [&files.ca_cert, &files.ca_key, &files.server.cert, &files.server.key, &files.revocations] {
            assert!(p.is_file(), "{}", p.display());
        }
        assert_eq!(files.vehicles.len(), 1);
        assert_eq!(files.sensors.len(), 2);
        assert!(files.sensors[1].1.cert.ends_with("sensors/cam-n.pem"));
        let serials = std::fs::read_to_string(&files.serials).expect("serials");
        assert_eq!(serials.lines().count(), 4);
        assert!(files.signals.is_empty());
        let with_signals = write_dev_pki_with_signals(
            &dir.path().join("signals"),
            "rsu-1",
            &default_server_names(),
            &[],
            &[],
            &["tsc-1201".to_owned()],
        )
        .expect("pki");
        let (id, paths) = &with_signals.signals[0];
        assert!(id == "tsc-1201" && paths.cert.ends_with("signals/tsc-1201.pem"));
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(&paths.cert).expect("cert");
        let der = CertificateDer::from_pem_slice(&pem).expect("PEM").to_vec();
        assert_eq!(Identity::from_cert_der(&der), Ok(Identity::signal("tsc-1201")));
    }
}
