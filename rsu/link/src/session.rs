//! The server side of the session handshake: check that the certificate carries a vehicle,
//! sensor or signal controller identity, wait for the client's control stream, read its `ClientHello`, check version,
//! role and id against the certificate, let the caller decide, and
//! answer with `ServerHello` — or close the connection with a [`CloseCode`] and reason.
//! Also the reader of later control messages (`ClientControl`).

use std::time::Duration;

use v2x_proto::domain::{ClientControl, ClientHello, Role, ServerHello, Subscription};

use crate::codes::CloseCode;
use crate::framing::{FrameError, read_message, write_message};
use crate::identity::{CertRole, Identity};
use crate::{MAX_CONTROL_MESSAGE_BYTES, PROTOCOL_VERSIONS, negotiate};

/// A handshake that failed; the connection has been closed with `code` and `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session refused: {code}: {reason}")]
pub struct SessionError {
    /// The close code sent.
    pub code: CloseCode,
    /// The reason sent.
    pub reason: String,
}

/// An established session.
#[derive(Debug)]
pub struct Session {
    /// The connection.
    pub connection: quinn::Connection,
    /// The certificate identity (equal to the hello's role and id).
    pub identity: Identity,
    /// Serial number of the client certificate.
    pub serial: Vec<u8>,
    /// The client's hello.
    pub hello: ClientHello,
    /// The protocol version negotiated (see [`negotiate`]).
    pub version: u32,
    /// Send half of the control stream.
    pub control_send: quinn::SendStream,
    /// Receive half of the control stream.
    pub control_recv: quinn::RecvStream,
}

/// Runs the server side of the handshake on a freshly established `connection`. `decide` sees the
/// verified identity and hello and returns the `ServerHello` to send (its `version` is replaced
/// by the one negotiated) or a refusal.
pub async fn accept_session(
    connection: quinn::Connection,
    hello_timeout: Duration,
    decide: impl FnOnce(&Identity, &ClientHello) -> Result<ServerHello, (CloseCode, String)>,
) -> Result<Session, SessionError> {
    let refuse = |code: CloseCode, reason: String| {
        code.close(&connection, &reason);
        SessionError { code, reason }
    };
    // The TLS handshake checked the chain and the revocation list; the identity is checked here,
    // before anything is read, so that the client learns why it is refused.
    let (identity, serial) = crate::tls::peer_identity(&connection)
        .map_err(|e| refuse(CloseCode::NoIdentity, format!("client certificate: {e}")))?;
    if !matches!(identity.role, CertRole::Vehicle | CertRole::Sensor | CertRole::Signal) {
        return Err(refuse(
            CloseCode::NoIdentity,
            format!("client certificate: {identity} is not a vehicle, sensor or signal controller identity"),
        ));
    }
    let first = tokio::time::timeout(hello_timeout, async {
        let (send, mut recv) = connection.accept_bi().await.map_err(|e| (CloseCode::ProtocolError, e.to_string()))?;
        let bytes = read_message(&mut recv, MAX_CONTROL_MESSAGE_BYTES)
            .await
            .map_err(|e| (CloseCode::ProtocolError, format!("ClientHello: {e}")))?
            .ok_or((CloseCode::ProtocolError, "control stream ended before ClientHello".to_owned()))?;
        Ok::<_, (CloseCode, String)>((send, recv, bytes))
    })
    .await;
    let (mut control_send, control_recv, bytes) = match first {
        Err(_) => {
            return Err(refuse(CloseCode::HelloTimeout, format!("no ClientHello within {hello_timeout:?}")));
        }
        Ok(Err((code, reason))) => return Err(refuse(code, reason)),
        Ok(Ok(parts)) => parts,
    };
    let hello: ClientHello = v2x_proto::decode_limited(&bytes, MAX_CONTROL_MESSAGE_BYTES)
        .map_err(|e| refuse(CloseCode::ProtocolError, format!("ClientHello: {e}")))?;
    let Some(version) = negotiate(&hello.versions) else {
        return Err(refuse(
            CloseCode::UnsupportedVersion,
            format!("client speaks versions {:?}; this RSU speaks {PROTOCOL_VERSIONS:?}", hello.versions),
        ));
    };
    let hello_role = match hello.role {
        Role::Vehicle => CertRole::Vehicle,
        Role::Sensor => CertRole::Sensor,
        Role::SignalController => CertRole::Signal,
    };
    if hello_role != identity.role || hello.id != identity.id {
        return Err(refuse(
            CloseCode::IdentityMismatch,
            format!("hello claims {}/{} but the certificate is {identity}", hello_role.as_str(), hello.id),
        ));
    }
    if hello.role != Role::Vehicle && hello.subscription.is_some() {
        return Err(refuse(CloseCode::ProtocolError, "only a vehicle can subscribe".into()));
    }
    if hello.role == Role::SignalController && version < crate::SPAT_VERSION {
        return Err(refuse(
            CloseCode::UnsupportedVersion,
            format!("a signal controller needs protocol version 3; the client chose {version}"),
        ));
    }
    let mut server_hello = decide(&identity, &hello).map_err(|(code, reason)| refuse(code, reason))?;
    server_hello.version = version;
    write_message(&mut control_send, &server_hello)
        .await
        .map_err(|e| refuse(CloseCode::ProtocolError, format!("sending ServerHello: {e}")))?;
    Ok(Session { connection, identity, serial, hello, version, control_send, control_recv })
}

/// Why a control message was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Framing failed (stream error, oversized, truncated).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Not a valid `ClientControl`.
    #[error("malformed ClientControl: {0}")]
    Malformed(String),
}

/// Reads the next `ClientControl` from the control stream and returns its new subscription.
/// `Ok(None)`: the client finished the stream.
pub async fn read_control(recv: &mut quinn::RecvStream) -> Result<Option<Subscription>, ControlError> {
    let Some(bytes) = read_message(recv, MAX_CONTROL_MESSAGE_BYTES).await? else { return Ok(None) };
    match v2x_proto::decode_limited(&bytes, MAX_CONTROL_MESSAGE_BYTES) {
        Ok(ClientControl::Subscribe(subscription)) => Ok(Some(subscription)),
        Err(e) => Err(ControlError::Malformed(e.to_string())),
    }
}
