//! The revocation list: serial numbers of certificates the RSU refuses although they chain to the
//! site CA. The file is either
//!
//! - text: one serial number per line in hex, either case (`0a1b2c`, `0A:1B:2C`, `0x0a1b2c` or
//!   `0X0A1B2C`), leading zeros ignored, `#` starts a comment, blank lines are ignored; or
//! - an X.509 CRL in PEM (`-----BEGIN X509 CRL-----`) or DER, whose signature must verify against
//!   the site CA that issued it; its revoked serial numbers are used.
//!
//! PROTOCOL.md §1.2 specifies both formats.
//!
//! [`Revocations`] is shared by the TLS verifier and the daemon, which calls
//! [`Revocations::reload_if_changed`] periodically so edits apply without a restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate};

use crate::identity::normalise_serial;

/// Why a revocation list cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Reading the file failed.
    #[error("cannot read revocation list {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// A line that is not a hex serial number.
    #[error("revocation list {path}, line {line}: {problem}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A CRL that cannot be parsed, or whose signature does not verify against the site CA.
    #[error("revocation list {path}: bad CRL: {problem}")]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Default)]
struct State {
    serials: BTreeSet<Vec<u8>>,
    modified: Option<SystemTime>,
    len: u64,
}

/// A shared, reloadable set of revoked serial numbers. Cloning shares the set.
#[derive(Clone, Debug, Default)]
pub struct Revocations {
    path: Option<PathBuf>,
    /// The site CA certificates (DER) a CRL must be signed by.
    issuers: Arc<Vec<CertificateDer<'static>>>,
    state: Arc<RwLock<State>>,
}

impl Revocations {
    /// An empty list with no file.
    pub fn none() -> Self {
        Revocations::default()
    }

    /// Loads `path`; a CRL must be signed by one of the site CA certificates `ca` (the trust
    /// anchors of the client certificates).
    pub fn load(path: &Path, ca: &[CertificateDer<'static>]) -> Result<Self, RevocationError> {
        let revocations =
            Revocations { path: Some(path.to_owned()), issuers: Arc::new(ca.to_vec()), state: Arc::default() };
        revocations.reload()?;
        Ok(revocations)
    }

    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file unconditionally; on error the previous list stays in force.
    pub fn reload(&self) -> Result<usize, RevocationError> {
        let Some(path) = &self.path else { return Ok(0) };
        let io = |cause| RevocationError::Io { path: path.clone(), cause };
        let meta = std::fs::metadata(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let serials = parse(path, &bytes, &self.issuers)?;
        let count = serials.len();
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *state = State { serials, modified: meta.modified().ok(), len: meta.len() };
        Ok(count)
    }

    /// Re-reads the file when its modification time or size changed. `Ok(Some(n))`: reloaded, `n`
    /// serials; `Ok(None)`: unchanged.
    pub fn reload_if_changed(&self) -> Result<Option<usize>, RevocationError> {
        let Some(path) = &self.path else { return Ok(None) };
        let meta = std::fs::metadata(path).map_err(|cause| RevocationError::Io { path: path.clone(), cause })?;
        let changed = {
            let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            state.modified != meta.modified().ok() || state.len != meta.len()
        };
        if changed { self.reload().map(Some) } else { Ok(None) }
    }

    /// Whether `serial` (big-endian, leading zeros allowed) is revoked.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.serials.contains(&normalise_serial(serial))
    }

    /// Number of revoked serials.
    pub fn len(&self) -> usize {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).serials.len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse(path: &Path, bytes: &[u8], issuers: &[CertificateDer<'_>]) -> Result<BTreeSet<Vec<u8>>, RevocationError> {
    let text = std::str::from_utf8(bytes).ok();
    if let Some(text) = text
        && text.contains("-----BEGIN X509 CRL-----")
    {
        use rustls::pki_types::CertificateRevocationListDer;
        use rustls::pki_types::pem::PemObject;
        let der = CertificateRevocationListDer::from_pem_slice(bytes)
            .map(|crl| crl.to_vec())
            .map_err(|e| RevocationError::BadCrl { path: path.to_owned(), problem: e.to_string() })?;
        return parse_crl(path, &der, issuers);
    }
    match text {
        Some(text) => parse_text(path, text),
        None => parse_crl(path, bytes, issuers),
    }
}

/// The serials of a DER CRL whose signature verifies against the key of the issuer it names,
/// which must be one of `issuers`.
fn parse_crl(path: &Path, der: &[u8], issuers: &[CertificateDer<'_>]) -> Result<BTreeSet<Vec<u8>>, RevocationError> {
    let bad = |problem: String| RevocationError::BadCrl { path: path.to_owned(), problem };
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| bad(e.to_string()))?;
    let mut named = false;
    for issuer in issuers {
        let Ok((_, ca)) = X509Certificate::from_der(issuer) else { continue };
        if ca.subject() != crl.issuer() {
            continue;
        }
        named = true;
        if crl.verify_signature(ca.public_key()).is_ok() {
            return Ok(crl.iter_revoked_certificates().map(|r| normalise_serial(r.raw_serial())).collect());
        }
    }
    Err(bad(if named {
        format!("its signature does not verify with the key of the site CA ({})", crl.issuer())
    } else {
        format!("issued by {}, which is not the site CA", crl.issuer())
    }))
}

fn parse_text(path: &Path, text: &str) -> Result<BTreeSet<Vec<u8>>, RevocationError> {
    let mut serials = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let bad = |problem: String| RevocationError::BadLine { path: path.to_owned(), line: i + 1, problem };
        let digits = content.strip_prefix("0x").or_else(|| content.strip_prefix("0X")).unwrap_or(content);
        let hex: String = digits.chars().filter(|c| *c != ':').collect();
        if hex.is_empty() || hex.len() > 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(format!("{content:?} is not a hex serial number of at most 20 bytes")));
        }
        let padded = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex };
        let bytes = (0..padded.len())
            .step_by(2)
            .map(|j| u8::from_str_radix(&padded[j..j + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        serials.insert(normalise_serial(&bytes));
    }
    Ok(serials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_parse_in_every_notation() {
        let set = parse_text(Path::new("x"), "# header\n0a1b2c\n0x00FF # with comment\n\n01:02:03\nabc\n").expect("ok");
        let expected: BTreeSet<Vec<u8>> =
            [vec![0x0a, 0x1b, 0x2c], vec![0xff], vec![1, 2, 3], vec![0x0a, 0xbc]].into_iter().collect();
        assert_eq!(set, expected);
        let err = parse_text(Path::new("x"), "0a\nxyz\n").expect_err("bad line");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn reload_picks_up_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, "# nothing\n").expect("write");
        let list = Revocations::load(&path, &[]).expect("load");
        assert!(list.is_empty());
        assert_eq!(list.reload_if_changed().expect("check"), None);
        std::fs::write(&path, "# one\n00ab12\n").expect("write");
        assert_eq!(list.reload_if_changed().expect("check"), Some(1));
        assert!(list.is_revoked(&[0xab, 0x12]));
        assert!(list.is_revoked(&[0, 0, 0xab, 0x12]));
        std::fs::write(&path, "not hex at all\n").expect("write");
        assert!(list.reload_if_changed().is_err());
        assert!(list.is_revoked(&[0xab, 0x12]), "a bad file keeps the previous list");
    }

    #[test]
    fn text_lists_ignore_case_prefixes_leading_zeros_and_comments() {
        let set = parse_text(Path::new("x"), "0XAB12\n  0x00ab12  # same serial\n000000AB:12\n#0a\n").expect("ok");
        assert_eq!(set, [vec![0xab, 0x12]].into_iter().collect::<BTreeSet<_>>());
        for bad in ["0x", "0x0xab", "ab 12", "g1", &"1".repeat(41)] {
            assert!(parse_text(Path::new("x"), bad).is_err(), "{bad:?} accepted");
        }
    }

    /// A CA (its certificate and an issuer to sign with) named `name`.
    fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        (cert, Issuer::new(params, key))
    }

    /// A CRL revoking serial 0x1234, signed by `issuer`, in PEM.
    fn crl_pem(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> String {
        use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
        CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2027, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(0x1234_u64),
                revocation_time: rcgen::date_time_ymd(2026, 6, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .expect("crl")
        .pem()
        .expect("pem")
    }

    #[test]
    fn crls_signed_by_the_site_ca_are_read() {
        use rustls::pki_types::pem::PemObject;
        let (site_ca, site) = ca("site CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.crl");
        std::fs::write(&path, crl_pem(&site)).expect("write");
        let list = Revocations::load(&path, &[site_ca.der().clone()]).expect("load");
        assert!(list.is_revoked(&[0x12, 0x34]));
        assert_eq!(list.len(), 1);
        // The same CRL as DER.
        let der =
            rustls::pki_types::CertificateRevocationListDer::from_pem_slice(crl_pem(&site).as_bytes()).expect("pem");
        std::fs::write(&path, der.as_ref()).expect("write");
        assert_eq!(list.reload().expect("DER CRL"), 1);
    }

    #[test]
    fn crls_not_signed_by_the_site_ca_are_refused() {
        let (site_ca, _) = ca("site CA");
        // Another key under the site CA's name, and another CA altogether.
        let (_, impostor) = ca("site CA");
        let (_, other) = ca("other CA");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.crl");
        for (issuer, expected) in [(&impostor, "signature does not verify"), (&other, "not the site CA")] {
            std::fs::write(&path, crl_pem(issuer)).expect("write");
            let err = Revocations::load(&path, &[site_ca.der().clone()]).expect_err("refused");
            assert!(matches!(err, RevocationError::BadCrl { .. }), "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
        // A good list stays in force when the file is replaced by a forged CRL.
        std::fs::write(&path, "1234\n").expect("write");
        let list = Revocations::load(&path, &[site_ca.der().clone()]).expect("text list");
        std::fs::write(&path, crl_pem(&impostor)).expect("write");
        assert!(list.reload().is_err());
        assert!(list.is_revoked(&[0x12, 0x34]));
    }
}
