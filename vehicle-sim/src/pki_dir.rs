//! Client settings for the certificates of a PKI folder made by `rsu certs init` (or
//! `v2x_link::pki::write_dev_pki`): `ca.pem` and `<role>/<id>.pem` with `<id>.key`, one client
//! per certificate. `vehicle-sim live`, `vehicle-sim swarm` and the bench's load processes find
//! their identities this way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use v2x_link::client::{ClientError, ClientSettings};

/// Why a PKI folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PkiDirError {
    /// The folder of a role cannot be listed.
    #[error("reading {dir}: {source}")]
    List {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate or its key does not load.
    #[error("loading {cert}: {source}")]
    Load {
        /// The certificate.
        cert: PathBuf,
        /// Why.
        source: ClientError,
    },
}

/// Client settings for every certificate `<pki>/<role_dir>/<id>.pem` (with its `.key`), by id;
/// at most `limit` (in file name order).
pub fn client_settings(
    pki: &Path,
    role_dir: &str,
    rsu: SocketAddr,
    server_name: &str,
    limit: Option<usize>,
) -> Result<BTreeMap<String, ClientSettings>, PkiDirError> {
    let dir = pki.join(role_dir);
    let mut pems: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|source| PkiDirError::List { dir: dir.clone(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    pems.sort();
    pems.truncate(limit.unwrap_or(usize::MAX));
    let ca = pki.join("ca.pem");
    let mut out = BTreeMap::new();
    for cert in pems {
        let key = cert.with_extension("key");
        let settings = ClientSettings::from_files(rsu, server_name, &ca, &cert, &key)
            .map_err(|source| PkiDirError::Load { cert: cert.clone(), source })?;
        out.insert(settings.identity.id.clone(), settings);
    }
    Ok(out)
}
