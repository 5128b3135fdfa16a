//! TLS and QUIC configuration for both ends: TLS 1.3 only, the ring crypto provider, ALPN
//! `v2x/1`, and mutual authentication against the site CA. The server refuses in the handshake a
//! client certificate that does not chain to the CA or is revoked ([`Revocations`]); whether it
//! carries a vehicle or sensor identity ([`crate::identity`]) is checked right after, by the
//! session handshake, which can tell the client why (close code `NO_IDENTITY`, PROTOCOL §3).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::ALPN;
use crate::identity::{Identity, cert_serial};
use crate::revocation::Revocations;

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("{what} {path}: {problem}")]
    Pem {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The private key is not the key of the certificate.
    #[error(
        "the private key {key} does not belong to the certificate {cert} (their public keys differ): give the key \
         the certificate was issued for"
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration. The cause is part of the message and not a `source`
    /// too, so a chain of contexts prints it once.
    #[error("TLS configuration: {0}")]
    Rustls(rustls::Error),
    /// The client verifier could not be built (the cause printed once, as for `Rustls`).
    #[error("client certificate verifier: {0}")]
    Verifier(rustls::server::VerifierBuilderError),
    /// quinn refused the TLS configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

impl From<rustls::server::VerifierBuilderError> for TlsError {
    fn from(e: rustls::server::VerifierBuilderError) -> Self {
        TlsError::Verifier(e)
    }
}

/// A certificate chain and its private key, loaded from PEM.
#[derive(Debug)]
pub struct CertKey {
    /// End-entity certificate first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

impl CertKey {
    /// Loads a certificate chain (PEM, one or more certificates) and a private key (PEM, PKCS#8,
    /// PKCS#1 or SEC1), and checks that the key is the end-entity certificate's
    /// ([`TlsError::KeyMismatch`] names both files when it is not).
    pub fn load(cert: &Path, key: &Path) -> Result<CertKey, TlsError> {
        let chain = load_certs(cert, "certificate")?;
        let key_pem = |problem: String| TlsError::Pem { what: "private key", path: key.to_owned(), problem };
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| key_pem(e.to_string()))?;
        let signing =
            provider().key_provider.load_private_key(key_der.clone_key()).map_err(|e| key_pem(e.to_string()))?;
        match rustls::sign::CertifiedKey::new(chain.clone(), signing).keys_match() {
            // `Unknown`: the key cannot tell its public key; rustls checks it in the handshake.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::KeyMismatch { cert: cert.to_owned(), key: key.to_owned() });
            }
            Err(e) => {
                return Err(TlsError::Pem { what: "certificate", path: cert.to_owned(), problem: e.to_string() });
            }
        }
        Ok(CertKey { chain, key: key_der })
    }

    /// The identity of the end-entity certificate.
    pub fn identity(&self) -> Result<Identity, crate::IdentityError> {
        let first = self.chain.first().ok_or(crate::IdentityError::Missing)?;
        Identity::from_cert_der(first)
    }

    fn clone_key(&self) -> CertKey {
        CertKey { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

/// Loads every certificate of a PEM file (at least one).
pub fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |problem: String| TlsError::Pem { what, path: path.to_owned(), problem };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE in the file".into()));
    }
    Ok(certs)
}

/// The trust anchors in a CA PEM file.
pub fn load_roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca, "CA certificate")? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            what: "CA certificate",
            path: ca.to_owned(),
            problem: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's rustls configuration: TLS 1.3, ALPN `v2x/1`, `server` as its certificate, client
/// certificates mandatory and verified against `roots`, `revocations` and the identity rules.
pub fn server_tls(
    server: &CertKey,
    roots: RootCertStore,
    revocations: Revocations,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let verifier = Arc::new(SiteClientVerifier { inner, revocations });
    let server = server.clone_key();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain, server.key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No session resumption: a resumed TLS 1.3 session does not present the client certificate
    // again, so a certificate revoked since the first connection would slip past the verifier.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A client's rustls configuration: TLS 1.3, the given ALPN ids, the server verified against
/// `roots`, and `identity` as the client certificate (`None` sends none, which the RSU refuses;
/// useful for diagnostics and tests).
pub fn client_tls(
    roots: RootCertStore,
    identity: Option<&CertKey>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => {
            let id = id.clone_key();
            builder.with_client_auth_cert(id.chain, id.key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Ok(config)
}

/// Transport settings of one side.
#[derive(Clone, Copy, Debug)]
pub struct TransportLimits {
    /// A connection with no packet for this long is closed [s].
    pub idle_timeout_s: f64,
    /// Send a keep-alive after this much silence [s]; `None`: never (the server leaves it to
    /// clients).
    pub keep_alive_s: Option<f64>,
    /// Unidirectional streams the peer may have open at once.
    pub max_uni_streams: u32,
    /// Bidirectional streams the peer may have open at once (the control stream).
    pub max_bi_streams: u32,
    /// Received datagrams buffered before the oldest is dropped [bytes]; also advertised as the
    /// largest datagram the peer may send.
    pub datagram_receive_buffer_bytes: usize,
    /// Flow-control window per stream [bytes].
    pub stream_receive_window_bytes: u32,
}

impl TransportLimits {
    /// Defaults for the RSU: 10 s idle timeout, 64 concurrent sensor streams, one control stream,
    /// 64 KiB of buffered datagrams, 2 MiB stream window.
    pub fn server_default() -> Self {
        TransportLimits {
            idle_timeout_s: 10.0,
            keep_alive_s: None,
            max_uni_streams: 64,
            max_bi_streams: 1,
            datagram_receive_buffer_bytes: 64 * 1024,
            stream_receive_window_bytes: 2 * 1024 * 1024,
        }
    }

    /// Defaults for clients: 10 s idle timeout with a keep-alive every 2 s, 32 concurrent
    /// downlink streams, no streams opened by the server other than unidirectional ones.
    pub fn client_default() -> Self {
        TransportLimits {
            idle_timeout_s: 10.0,
            keep_alive_s: Some(2.0),
            max_uni_streams: 32,
            max_bi_streams: 0,
            datagram_receive_buffer_bytes: 64 * 1024,
            stream_receive_window_bytes: 2 * 1024 * 1024,
        }
    }

    /// The quinn transport configuration.
    pub fn transport(&self) -> quinn::TransportConfig {
        let mut t = quinn::TransportConfig::default();
        let idle = Duration::from_secs_f64(self.idle_timeout_s.clamp(0.01, 3600.0));
        t.max_idle_timeout(quinn::IdleTimeout::try_from(idle).ok());
        t.keep_alive_interval(self.keep_alive_s.map(|s| Duration::from_secs_f64(s.clamp(0.01, 3600.0))));
        t.max_concurrent_uni_streams(self.max_uni_streams.into());
        t.max_concurrent_bidi_streams(self.max_bi_streams.into());
        t.datagram_receive_buffer_size(Some(self.datagram_receive_buffer_bytes));
        t.stream_receive_window(self.stream_receive_window_bytes.into());
        t
    }
}

/// A UDP socket bound to `addr` that asked the kernel for a receive buffer of `recv_bytes`
/// (capped by `net.core.rmem_max`; a larger buffer costs nothing until used), and the size the
/// kernel granted, if it said. Bursts (a frame to every vehicle at once, every vehicle's state
/// and acknowledgments at once) overflow the default of about 200 KiB and turn into drops,
/// retransmissions and, at the RSU, handshakes that time out.
pub fn bind_udp(
    addr: std::net::SocketAddr,
    recv_bytes: usize,
) -> std::io::Result<(std::net::UdpSocket, Option<usize>)> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    if let Err(e) = state.set_recv_buffer_size((&socket).into(), recv_bytes) {
        tracing::debug!("could not enlarge the UDP receive buffer: {e}");
    }
    let granted = state.recv_buffer_size((&socket).into()).ok();
    Ok((socket, granted))
}

/// The quinn server configuration from a rustls configuration.
pub fn quinn_server(tls: rustls::ServerConfig, limits: &TransportLimits) -> Result<quinn::ServerConfig, TlsError> {
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(limits.transport()));
    // Clients are mobile: let them move between networks.
    config.migration(true);
    Ok(config)
}

/// The quinn client configuration from a rustls configuration.
pub fn quinn_client(tls: rustls::ClientConfig, limits: &TransportLimits) -> Result<quinn::ClientConfig, TlsError> {
    let crypto = QuicClientConfig::try_from(tls).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(limits.transport()));
    Ok(config)
}

/// The verified client identity of a connection (the server has checked it during the
/// handshake).
pub fn peer_identity(connection: &quinn::Connection) -> Result<(Identity, Vec<u8>), crate::IdentityError> {
    let certs = connection
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(crate::IdentityError::Missing)?;
    let first = certs.first().ok_or(crate::IdentityError::Missing)?;
    Ok((Identity::from_cert_der(first)?, cert_serial(first)?))
}

/// Verifies client certificates: the webpki chain check against the site CA, then the revocation
/// list. The identity is the session's to check ([`crate::session::accept_session`]): a TLS
/// alert could only say `access_denied`, the close code `NO_IDENTITY` says what is wrong.
#[derive(Debug)]
struct SiteClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revocations: Revocations,
}

impl ClientCertVerifier for SiteClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let bad = |_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
        let serial = cert_serial(end_entity).map_err(bad)?;
        if self.revocations.is_revoked(&serial) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}
