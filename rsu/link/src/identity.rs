//! Identities in certificates: every certificate of the site PKI names its holder's role and id
//! in exactly one subjectAltName URI of the form `v2x://<role>/<id>`, where `<role>` is
//! `vehicle`, `sensor`, `signal` (a traffic signal controller) or `rsu` and `<id>` is 1..=64 characters from `[A-Za-z0-9._-]`. Examples:
//! `v2x://vehicle/veh-0007`, `v2x://sensor/lidar-ne`, `v2x://rsu/rsu-1`. Other SAN entries (DNS
//! names, IP addresses) are allowed and ignored here; the subject name is not used.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// URI scheme prefix of identity SANs.
pub const URI_PREFIX: &str = "v2x://";

/// Longest id [characters].
pub const MAX_ID_LEN: usize = 64;

/// A certificate holder's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertRole {
    /// A connected vehicle.
    Vehicle,
    /// A roadside sensor.
    Sensor,
    /// A traffic signal controller.
    Signal,
    /// A roadside unit (server certificates).
    Rsu,
}

impl CertRole {
    /// The role's name in the URI.
    pub const fn as_str(self) -> &'static str {
        match self {
            CertRole::Vehicle => "vehicle",
            CertRole::Sensor => "sensor",
            CertRole::Signal => "signal",
            CertRole::Rsu => "rsu",
        }
    }

    fn parse(s: &str) -> Option<CertRole> {
        match s {
            "vehicle" => Some(CertRole::Vehicle),
            "sensor" => Some(CertRole::Sensor),
            "signal" => Some(CertRole::Signal),
            "rsu" => Some(CertRole::Rsu),
            _ => None,
        }
    }
}

/// Who a certificate belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// Role.
    pub role: CertRole,
    /// Id (vehicle id, sensor id, signal controller id or RSU id).
    pub id: String,
}

/// Why a certificate has no usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not a parseable X.509 certificate.
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
    /// No `v2x://` URI in the subjectAltName extension.
    #[error("the certificate has no v2x://<role>/<id> subjectAltName URI")]
    Missing,
    /// More than one `v2x://` URI.
    #[error("the certificate has more than one v2x:// subjectAltName URI")]
    Ambiguous,
    /// A `v2x://` URI that does not follow the rules.
    #[error("invalid identity URI {uri:?}: {problem}")]
    Invalid {
        /// The URI.
        uri: String,
        /// What is wrong.
        problem: &'static str,
    },
}

impl Identity {
    /// A vehicle identity.
    pub fn vehicle(id: impl Into<String>) -> Self {
        Identity { role: CertRole::Vehicle, id: id.into() }
    }

    /// A sensor identity.
    pub fn sensor(id: impl Into<String>) -> Self {
        Identity { role: CertRole::Sensor, id: id.into() }
    }

    /// A signal controller identity.
    pub fn signal(id: impl Into<String>) -> Self {
        Identity { role: CertRole::Signal, id: id.into() }
    }

    /// An RSU identity.
    pub fn rsu(id: impl Into<String>) -> Self {
        Identity { role: CertRole::Rsu, id: id.into() }
    }

    /// The SAN URI that carries this identity.
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}/{}", self.role.as_str(), self.id)
    }

    /// Parses a `v2x://<role>/<id>` URI.
    pub fn from_uri(uri: &str) -> Result<Identity, IdentityError> {
        let invalid = |problem| IdentityError::Invalid { uri: uri.to_owned(), problem };
        let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(|| invalid("does not start with v2x://"))?;
        let (role, id) = rest.split_once('/').ok_or_else(|| invalid("no /<id> after the role"))?;
        let role = CertRole::parse(role).ok_or_else(|| invalid("role is not vehicle, sensor, signal or rsu"))?;
        check_id(id).map_err(invalid)?;
        Ok(Identity { role, id: id.to_owned() })
    }

    /// The identity in a DER certificate's subjectAltName.
    pub fn from_cert_der(der: &[u8]) -> Result<Identity, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let san = cert.subject_alternative_name().map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
        let mut found = None;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            if let GeneralName::URI(uri) = name
                && uri.starts_with(URI_PREFIX)
            {
                if found.is_some() {
                    return Err(IdentityError::Ambiguous);
                }
                found = Some(Identity::from_uri(uri)?);
            }
        }
        found.ok_or(IdentityError::Missing)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role.as_str(), self.id)
    }
}

/// Checks an id against the identity rules: 1..=64 characters from `[A-Za-z0-9._-]`.
pub fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err("id must be 1..=64 characters");
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err("id may only contain A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// The serial number of a DER certificate, big-endian without leading zero bytes.
pub fn cert_serial(der: &[u8]) -> Result<Vec<u8>, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| IdentityError::BadCertificate(e.to_string()))?;
    Ok(normalise_serial(cert.raw_serial()))
}

/// `serial` without leading zero bytes (an all-zero serial becomes one zero byte).
pub fn normalise_serial(serial: &[u8]) -> Vec<u8> {
    let first = serial.iter().position(|b| *b != 0).unwrap_or(serial.len().saturating_sub(1));
    serial[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for identity in [
            Identity::vehicle("veh-0007"),
            Identity::sensor("lidar.ne_1"),
            Identity::signal("tsc-1201"),
            Identity::rsu("rsu-1"),
        ] {
            assert_eq!(Identity::from_uri(&identity.uri()), Ok(identity));
        }
    }

    #[test]
    fn bad_uris_are_refused() {
        for uri in [
            "https://vehicle/x",
            "v2x://vehicle",
            "v2x://truck/x",
            "v2x://vehicle/",
            "v2x://vehicle/a/b",
            "v2x://vehicle/a b",
            &format!("v2x://sensor/{}", "x".repeat(65)),
        ] {
            assert!(Identity::from_uri(uri).is_err(), "{uri} should be refused");
        }
    }

    #[test]
    fn serials_lose_leading_zeros() {
        assert_eq!(normalise_serial(&[0, 0, 1, 2]), vec![1, 2]);
        assert_eq!(normalise_serial(&[0, 0]), vec![0]);
        assert_eq!(normalise_serial(&[7]), vec![7]);
    }
}
