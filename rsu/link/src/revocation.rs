//! The revocation list: serial numbers of certificates the RSU refuses although they chain to the
//! site CA. The file is either
//!
//! - text: one serial number per line in hex (`0a1b2c`, `0A:1B:2C` or `0x0a1b2c`), `#` starts a
//!   comment, blank lines are ignored; or
//! - an X.509 CRL in PEM (`-----BEGIN X509 CRL-----`) or DER; its revoked serial numbers are used.
//!   The CRL is trusted as configuration: its signature is not checked.
//!
//! [`Revocations`] is shared by the TLS verifier and the daemon, which calls
//! [`Revocations::reload_if_changed`] periodically so edits apply without a restart.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use x509_parser::prelude::{CertificateRevocationList, FromDer};

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
    /// A CRL that cannot be parsed.
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
    state: Arc<RwLock<State>>,
}

impl Revocations {
    /// An empty list with no file.
    pub fn none() -> Self {
        Revocations::default()
    }

    /// Loads `path`.
    pub fn load(path: &Path) -> Result<Self, RevocationError> {
        let revocations = Revocations { path: Some(path.to_owned()), state: Arc::default() };
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
        let serials = parse(path, &bytes)?;
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

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeSet<Vec<u8>>, RevocationError> {
    let text = std::str::from_utf8(bytes).ok();
    if let Some(text) = text
        && text.contains("-----BEGIN X509 CRL-----")
    {
        use rustls::pki_types::CertificateRevocationListDer;
        use rustls::pki_types::pem::PemObject;
        let der = CertificateRevocationListDer::from_pem_slice(bytes)
            .map(|crl| crl.to_vec())
            .map_err(|e| RevocationError::BadCrl { path: path.to_owned(), problem: e.to_string() })?;
        return parse_crl(path, &der);
    }
    match text {
        Some(text) => parse_text(path, text),
        None => parse_crl(path, bytes),
    }
}

fn parse_crl(path: &Path, der: &[u8]) -> Result<BTreeSet<Vec<u8>>, RevocationError> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| RevocationError::BadCrl { path: path.to_owned(), problem: e.to_string() })?;
    Ok(crl.iter_revoked_certificates().map(|r| normalise_serial(r.raw_serial())).collect())
}

fn parse_text(path: &Path, text: &str) -> Result<BTreeSet<Vec<u8>>, RevocationError> {
    let mut serials = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let bad = |problem: String| RevocationError::BadLine { path: path.to_owned(), line: i + 1, problem };
        let hex: String = content.trim_start_matches("0x").chars().filter(|c| *c != ':').collect();
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
        let list = Revocations::load(&path).expect("load");
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
    fn crls_are_read() {
        use rcgen::{
            CertificateParams, CertificateRevocationListParams, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
            RevokedCertParams, SerialNumber,
        };
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::KeyCertSign];
        let issuer = Issuer::new(params, key);
        let crl = CertificateRevocationListParams {
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
        .signed_by(&issuer)
        .expect("crl");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.crl");
        std::fs::write(&path, crl.pem().expect("pem")).expect("write");
        let list = Revocations::load(&path).expect("load");
        assert!(list.is_revoked(&[0x12, 0x34]));
        assert_eq!(list.len(), 1);
    }
}
