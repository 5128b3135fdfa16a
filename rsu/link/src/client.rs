//! Async clients of the protocol.
//!
//! - [`VehicleClient`]: connects with a vehicle certificate, says hello with a subscription,
//!   sends its [`VehicleState`] as datagrams, changes its subscription, and receives
//!   [`RoadsideFrame`]s (through [`FrameReceiver`], which can live in another task).
//! - [`SensorClient`]: connects with a sensor certificate and sends each [`SensorFrame`] on its
//!   own unidirectional stream.
//! - [`SignalControllerClient`]: connects with a signal controller certificate and sends its
//!   [`SignalControllerState`] as datagrams. A vehicle receives the SPaT the RSU makes of them
//!   with [`VehicleClient::next_spat`], and (protocol version 4) the MAP and road safety
//!   information events on its control stream with [`VehicleClient::next_control`], which checks
//!   them and counts what it refuses.
//!
//! Both start from a [`ClientSettings`]: the RSU's address and server name, the site CA, the
//! client's certificate and transport limits.
//!
//! By default each client binds its own UDP socket and QUIC endpoint. A load generator that
//! plays hundreds of vehicles from one process instead shares one [`ClientEndpoint`] among them
//! ([`VehicleClient::connect_on`]): one socket and one endpoint driver task for all, each
//! connection still with its own TLS configuration (its own vehicle certificate), so the RSU
//! sees as many independent vehicle sessions as before at a fraction of the client's cost.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rsu_fusion::{RoadsideFrame, SensorFrame, VehicleState};
use tokio::task::JoinSet;
use v2x_proto::domain::{
    ClientControl, ClientHello, RoadsideDatagram, Role, ServerControl, ServerHello, SignalControllerState, Spat,
    Subscription,
};

use crate::codes::{CloseCode, StreamCode};
use crate::framing::{read_message, write_message};
use crate::identity::{CertRole, Identity};
use crate::tls::{CertKey, TlsError, TransportLimits, client_tls, load_roots, quinn_client};
use crate::{ALPN, MAX_CONTROL_MESSAGE_BYTES, MAX_ROADSIDE_FRAME_BYTES, PROTOCOL_VERSIONS};

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS configuration (certificate files).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The client certificate has no usable identity.
    #[error("client certificate: {0}")]
    Identity(#[from] crate::IdentityError),
    /// The certificate's role does not fit the client.
    #[error("the certificate is for {found}, this client needs a {expected} certificate")]
    WrongRole {
        /// The certificate's identity.
        found: Identity,
        /// The role the client needs.
        expected: &'static str,
    },
    /// Local socket setup.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// Connecting failed before the QUIC handshake.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection was refused or lost.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The RSU closed the connection with a protocol close code.
    #[error("closed by the RSU: {code}: {reason}")]
    Closed {
        /// The close code.
        code: CloseCode,
        /// The RSU's reason.
        reason: String,
    },
    /// The RSU broke the protocol (bad ServerHello or frame).
    #[error("protocol: {0}")]
    Protocol(String),
    /// No ServerHello within the timeout.
    #[error("no ServerHello within {0:?}")]
    Timeout(Duration),
    /// The message cannot be sent as a datagram.
    #[error("datagram: {0}")]
    Datagram(#[from] quinn::SendDatagramError),
    /// Writing a stream failed.
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
}

impl ClientError {
    fn from_connection(e: quinn::ConnectionError) -> ClientError {
        if let quinn::ConnectionError::ApplicationClosed(close) = &e
            && let Some(code) = CloseCode::from_code(close.error_code.into_inner())
        {
            return ClientError::Closed { code, reason: String::from_utf8_lossy(&close.reason).into_owned() };
        }
        ClientError::Connection(e)
    }
}

/// How to reach and authenticate to an RSU.
#[derive(Clone)]
pub struct ClientSettings {
    /// The RSU's UDP address.
    pub server_addr: SocketAddr,
    /// The name the RSU's certificate must be valid for (e.g. `localhost` for the development
    /// PKI).
    pub server_name: String,
    /// The quinn client configuration (TLS and transport).
    pub quic: quinn::ClientConfig,
    /// This client's certificate identity.
    pub identity: Identity,
    /// Local address to bind (port 0 for any).
    pub bind_addr: SocketAddr,
    /// How long to wait for the ServerHello [s].
    pub hello_timeout_s: f64,
}

impl ClientSettings {
    /// Settings from PEM files: the site CA, the client certificate and its key, with
    /// [`TransportLimits::client_default`].
    pub fn from_files(
        server_addr: SocketAddr,
        server_name: &str,
        ca: &Path,
        cert: &Path,
        key: &Path,
    ) -> Result<ClientSettings, ClientError> {
        let cert_key = CertKey::load(cert, key)?;
        let identity = cert_key.identity()?;
        let tls = client_tls(load_roots(ca)?, Some(&cert_key), &[ALPN])?;
        let quic = quinn_client(tls, &TransportLimits::client_default())?;
        Ok(ClientSettings {
            server_addr,
            server_name: server_name.to_owned(),
            quic,
            identity,
            bind_addr: unspecified_for(server_addr),
            hello_timeout_s: 5.0,
        })
    }

    /// Connects through `endpoint` with this client's own TLS configuration and runs the
    /// handshake with `hello`, returning the connection, its control stream and the server's
    /// hello.
    async fn handshake(
        &self,
        endpoint: &quinn::Endpoint,
        hello: &ClientHello,
    ) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream, ServerHello), ClientError> {
        let connection = endpoint
            .connect_with(self.quic.clone(), self.server_addr, &self.server_name)?
            .await
            .map_err(ClientError::from_connection)?;
        let timeout = Duration::from_secs_f64(self.hello_timeout_s.clamp(0.01, 600.0));
        let exchange = async {
            let (mut send, mut recv) = connection.open_bi().await.map_err(ClientError::from_connection)?;
            write_message(&mut send, hello).await.map_err(|e| closed_or(&connection, e))?;
            let bytes = match read_message(&mut recv, MAX_CONTROL_MESSAGE_BYTES).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return Err(closed_or(&connection, "control stream ended before ServerHello")),
                Err(e) => return Err(closed_or(&connection, e)),
            };
            let server_hello = v2x_proto::decode_limited::<ServerHello>(&bytes, bytes.len())
                .map_err(|e| ClientError::Protocol(format!("ServerHello: {e}")))?;
            Ok::<_, ClientError>((send, recv, server_hello))
        };
        let (send, recv, server_hello) =
            tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout(timeout))??;
        Ok((connection, send, recv, server_hello))
    }
}

/// A client-side QUIC endpoint (one UDP socket and its driver task) that many clients can share.
/// Cloning it is cheap and yields the same endpoint.
#[derive(Clone)]
pub struct ClientEndpoint {
    endpoint: quinn::Endpoint,
    recv_buffer_bytes: Option<usize>,
}

/// The UDP receive buffer a client endpoint asks for [bytes]: room for a burst of frames to a few
/// hundred vehicles sharing it.
pub const CLIENT_RECV_BUFFER_BYTES: usize = 4 << 20;

impl ClientEndpoint {
    /// Binds a UDP socket on `addr` (port 0 for any) in the current tokio runtime, asking for a
    /// receive buffer of [`CLIENT_RECV_BUFFER_BYTES`].
    pub fn bind(addr: SocketAddr) -> Result<ClientEndpoint, ClientError> {
        // The RSU sends every vehicle its frame in the same instant: on a shared socket that is
        // one burst of N frames, which overflows a default buffer (about 200 KiB on Linux) at a
        // few dozen vehicles and turns into drops and retransmissions.
        let (socket, recv_buffer_bytes) = crate::tls::bind_udp(addr, CLIENT_RECV_BUFFER_BYTES)?;
        let endpoint =
            quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, Arc::new(quinn::TokioRuntime))?;
        Ok(ClientEndpoint { endpoint, recv_buffer_bytes })
    }

    /// The UDP receive buffer the kernel granted [bytes] (Linux reports twice the size asked
    /// for: it counts its bookkeeping too), if it said.
    pub fn recv_buffer_bytes(&self) -> Option<usize> {
        self.recv_buffer_bytes
    }

    /// Binds on any local port of the address family of `server` (what a client of `server`
    /// needs).
    pub fn for_server(server: SocketAddr) -> Result<ClientEndpoint, ClientError> {
        ClientEndpoint::bind(unspecified_for(server))
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Connections open on this endpoint.
    pub fn open_connections(&self) -> usize {
        self.endpoint.open_connections()
    }

    /// Waits (up to `timeout`) until every connection on the endpoint has finished closing, so
    /// the RSU heard each close.
    pub async fn wait_idle(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.endpoint.wait_idle()).await;
    }
}

/// How long [`VehicleClient::close`] and [`SensorClient::close`] wait for the close to reach the
/// RSU on an endpoint of their own.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Closes `connection` normally; waits for the close to drain when the endpoint is the client's
/// own (a shared endpoint's owner waits for all its connections at once with
/// [`ClientEndpoint::wait_idle`]).
async fn close_session(connection: &quinn::Connection, own_endpoint: Option<&ClientEndpoint>) {
    CloseCode::NoError.close(connection, "bye");
    if let Some(endpoint) = own_endpoint {
        endpoint.wait_idle(CLOSE_WAIT).await;
    }
}

/// The error to report when a stream operation failed: the connection's close reason if it is
/// closed (it explains the failure), else `e`.
fn closed_or(connection: &quinn::Connection, e: impl std::fmt::Display) -> ClientError {
    match connection.close_reason() {
        Some(reason) => ClientError::from_connection(reason),
        None => ClientError::Protocol(e.to_string()),
    }
}

fn unspecified_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// A connected vehicle's session with the RSU.
pub struct VehicleClient {
    /// The endpoint when it is this client's own (`None` on a shared one).
    own_endpoint: Option<ClientEndpoint>,
    connection: quinn::Connection,
    control_send: quinn::SendStream,
    control_recv: quinn::RecvStream,
    server: ServerHello,
    id: String,
    frames: FrameReceiver,
    /// `ServerControl` messages refused, by reason.
    control_rejected: std::collections::BTreeMap<&'static str, u64>,
}

impl VehicleClient {
    /// Connects as the vehicle named in the certificate of `settings` and subscribes to
    /// `subscription` (`None`: the RSU's default region, "around me" with its default radius).
    pub async fn connect(settings: &ClientSettings, subscription: Option<Subscription>) -> Result<Self, ClientError> {
        let endpoint = ClientEndpoint::bind(settings.bind_addr)?;
        let mut client = VehicleClient::connect_on(&endpoint, settings, subscription).await?;
        client.own_endpoint = Some(endpoint);
        Ok(client)
    }

    /// As [`VehicleClient::connect`], through `endpoint`, which other clients may share
    /// (`settings.bind_addr` is not used). The session is as independent as one on an endpoint
    /// of its own: own connection, own certificate, own streams.
    pub async fn connect_on(
        endpoint: &ClientEndpoint,
        settings: &ClientSettings,
        subscription: Option<Subscription>,
    ) -> Result<Self, ClientError> {
        if settings.identity.role != CertRole::Vehicle {
            return Err(ClientError::WrongRole { found: settings.identity.clone(), expected: "vehicle" });
        }
        let hello = ClientHello {
            versions: PROTOCOL_VERSIONS.to_vec(),
            role: Role::Vehicle,
            id: settings.identity.id.clone(),
            subscription,
        };
        let (connection, control_send, control_recv, server) = settings.handshake(&endpoint.endpoint, &hello).await?;
        let frames = FrameReceiver::new(connection.clone());
        Ok(VehicleClient {
            own_endpoint: None,
            connection,
            control_send,
            control_recv,
            server,
            id: hello.id,
            frames,
            control_rejected: std::collections::BTreeMap::new(),
        })
    }

    /// The RSU's hello (id, site origin, broadcast rate, default radius).
    pub fn server_hello(&self) -> &ServerHello {
        &self.server
    }

    /// This vehicle's id (from its certificate).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends the vehicle's own state as one datagram. The state's `vehicle_id` must be this
    /// vehicle's id or the RSU drops it. Datagrams are unreliable: a lost one is not resent.
    pub fn send_state(&self, state: &VehicleState) -> Result<(), ClientError> {
        self.connection.send_datagram(v2x_proto::encode(state).into())?;
        Ok(())
    }

    /// Replaces the subscription (takes effect from the next frame the RSU computes).
    pub async fn subscribe(&mut self, subscription: &Subscription) -> Result<(), ClientError> {
        let control = ClientControl::Subscribe(subscription.clone());
        write_message(&mut self.control_send, &control).await.map_err(|e| closed_or(&self.connection, e))
    }

    /// The next roadside frame (frames the RSU abandoned are skipped), in the order frames
    /// complete (see [`FrameReceiver`]). Cancel-safe.
    pub async fn next_frame(&mut self) -> Result<RoadsideFrame, ClientError> {
        self.frames.next().await
    }

    /// A receiver of roadside frames that can be moved to another task. Frames are handed out
    /// once: each one goes to whichever receiver accepts its stream first.
    pub fn frame_receiver(&self) -> FrameReceiver {
        FrameReceiver::new(self.connection.clone())
    }

    /// The underlying QUIC connection (statistics, RTT, raw access).
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// The next SPaT the RSU sent (protocol version 3, PROTOCOL.md §2.8), from the session's
    /// datagrams. A datagram that is not a valid `RoadsideDatagram` is an error (the RSU broke
    /// the protocol); the session goes on and the next call reads the next one. Cancel-safe.
    pub async fn next_spat(&self) -> Result<Spat, ClientError> {
        let bytes = self.connection.read_datagram().await.map_err(ClientError::from_connection)?;
        match v2x_proto::decode_limited::<RoadsideDatagram>(&bytes, v2x_proto::MAX_DATAGRAM_BYTES) {
            Ok(RoadsideDatagram::Spat(spat)) => Ok(spat),
            Err(e) => Err(ClientError::Protocol(format!("roadside datagram: {e}"))),
        }
    }

    /// The next message the RSU sends on the control stream after `ServerHello` (protocol
    /// version 4: the MAP and road safety information events, PROTOCOL.md §2.9, §2.10). A message
    /// that is not valid protobuf or fails its checks (a lane without nodes, a width out of range,
    /// a connection to an unknown lane, an event ending before it starts...) is logged, counted
    /// in `v2x_client_rejected_total{message="server_control",reason}` and in
    /// [`VehicleClient::control_rejected`], and skipped. Fails when the stream or connection
    /// ends, or its framing is broken (the stream cannot be read on).
    pub async fn next_control(&mut self) -> Result<ServerControl, ClientError> {
        loop {
            let bytes = match read_message(&mut self.control_recv, MAX_CONTROL_MESSAGE_BYTES).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return Err(closed_or(&self.connection, "the RSU finished the control stream")),
                Err(e) => return Err(closed_or(&self.connection, e)),
            };
            match v2x_proto::decode_limited::<ServerControl>(&bytes, MAX_CONTROL_MESSAGE_BYTES) {
                Ok(control) => return Ok(control),
                Err(e) => {
                    let reason = match &e {
                        v2x_proto::DecodeError::TooLarge { .. } => "oversized",
                        v2x_proto::DecodeError::Malformed(_) => "malformed",
                        v2x_proto::DecodeError::Invalid(v2x_proto::ConvertError::Inconsistent { .. }) => "inconsistent",
                        v2x_proto::DecodeError::Invalid(_) => "invalid",
                    };
                    *self.control_rejected.entry(reason).or_default() += 1;
                    metrics::counter!("v2x_client_rejected_total", "message" => "server_control", "reason" => reason)
                        .increment(1);
                    tracing::warn!(rsu = %self.server.rsu_id, reason, "refused a control message: {e}");
                }
            }
        }
    }

    /// The control messages [`VehicleClient::next_control`] refused so far, by reason
    /// (`malformed`, `invalid`, `inconsistent`, `oversized`).
    pub fn control_rejected(&self) -> &std::collections::BTreeMap<&'static str, u64> {
        &self.control_rejected
    }

    /// Closes the session normally. On an endpoint of its own it waits (up to 1 s) for the close
    /// to reach the RSU; on a shared one the endpoint's owner waits with
    /// [`ClientEndpoint::wait_idle`].
    pub async fn close(self) {
        close_session(&self.connection, self.own_endpoint.as_ref()).await;
    }
}

/// Receives roadside frames from a vehicle session's server-opened unidirectional streams.
///
/// Streams are read concurrently, each by a task of its own, and a frame is handed out as soon
/// as its stream is complete (PROTOCOL §2.4: frames may complete out of order). Reading one
/// stream at a time would hold a complete frame behind an earlier one that lost a packet: after
/// a radio blackout that earlier stream's reset arrives only when the link is back, and the
/// complete frame behind it would then be handed out seconds old.
pub struct FrameReceiver {
    connection: quinn::Connection,
    max_frame_bytes: usize,
    abandoned: Arc<AtomicU64>,
    /// Streams accepted and still being read (at most the session's concurrent stream limit).
    reading: JoinSet<(quinn::RecvStream, Result<Vec<u8>, quinn::ReadToEndError>)>,
}

impl Clone for FrameReceiver {
    /// Another receiver on the same session: it shares the abandoned count and reads the streams
    /// it accepts itself.
    fn clone(&self) -> Self {
        FrameReceiver {
            connection: self.connection.clone(),
            max_frame_bytes: self.max_frame_bytes,
            abandoned: Arc::clone(&self.abandoned),
            reading: JoinSet::new(),
        }
    }
}

impl FrameReceiver {
    fn new(connection: quinn::Connection) -> Self {
        FrameReceiver {
            connection,
            max_frame_bytes: MAX_ROADSIDE_FRAME_BYTES,
            abandoned: Arc::default(),
            reading: JoinSet::new(),
        }
    }

    /// The next complete roadside frame, in the order frames complete. Streams the RSU reset
    /// (at their delivery deadline) are skipped and counted in [`FrameReceiver::abandoned`].
    /// Errors when the connection ends ([`ClientError::Closed`] with the RSU's code when it
    /// closed it) or a frame is invalid. Cancel-safe: streams being read are kept by the
    /// receiver, so a call dropped half-way loses nothing.
    pub async fn next(&mut self) -> Result<RoadsideFrame, ClientError> {
        let bytes = self.next_bytes().await?;
        v2x_proto::decode_limited::<RoadsideFrame>(&bytes, self.max_frame_bytes)
            .map_err(|e| ClientError::Protocol(format!("roadside frame: {e}")))
    }

    /// As [`FrameReceiver::next`], the frame's encoded bytes as they came off the stream,
    /// undecoded (for relays that pass frames on unchanged).
    pub async fn next_bytes(&mut self) -> Result<Vec<u8>, ClientError> {
        loop {
            tokio::select! {
                biased;
                Some(read) = self.reading.join_next(), if !self.reading.is_empty() => {
                    let (mut stream, result) =
                        read.map_err(|e| ClientError::Protocol(format!("roadside frame reader: {e}")))?;
                    match result {
                        Ok(bytes) => return Ok(bytes),
                        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_))) => {
                            self.abandoned.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e))) => {
                            return Err(ClientError::from_connection(e));
                        }
                        Err(e) => {
                            let _ = stream.stop(StreamCode::MessageTooLarge.varint());
                            return Err(ClientError::Protocol(format!("roadside frame stream: {e}")));
                        }
                    }
                }
                accepted = self.connection.accept_uni() => {
                    let mut stream = accepted.map_err(ClientError::from_connection)?;
                    let max_frame_bytes = self.max_frame_bytes;
                    self.reading.spawn(async move {
                        let result = stream.read_to_end(max_frame_bytes).await;
                        (stream, result)
                    });
                }
            }
        }
    }

    /// Frames the RSU abandoned (reset) before this receiver had them completely.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }
}

/// The session of a client that only sends (a sensor, a signal controller): its own endpoint,
/// the control stream held open, the RSU's hello and the id its certificate names.
struct UplinkSession {
    endpoint: ClientEndpoint,
    connection: quinn::Connection,
    _control: (quinn::SendStream, quinn::RecvStream),
    server: ServerHello,
    id: String,
}

impl UplinkSession {
    /// Connects as the client of `settings`, whose certificate must be of `cert_role`
    /// (`expected` names it in the error), announcing `role`.
    async fn connect(
        settings: &ClientSettings,
        cert_role: CertRole,
        role: Role,
        expected: &'static str,
    ) -> Result<Self, ClientError> {
        if settings.identity.role != cert_role {
            return Err(ClientError::WrongRole { found: settings.identity.clone(), expected });
        }
        let hello = ClientHello {
            versions: PROTOCOL_VERSIONS.to_vec(),
            role,
            id: settings.identity.id.clone(),
            subscription: None,
        };
        let endpoint = ClientEndpoint::bind(settings.bind_addr)?;
        let (connection, send, recv, server) = settings.handshake(&endpoint.endpoint, &hello).await?;
        Ok(UplinkSession { endpoint, connection, _control: (send, recv), server, id: hello.id })
    }

    /// Closes the session normally, waiting (up to 1 s) for the close to reach the RSU.
    async fn close(self) {
        close_session(&self.connection, Some(&self.endpoint)).await;
    }
}

/// A roadside sensor's session with the RSU.
pub struct SensorClient {
    session: UplinkSession,
}

impl SensorClient {
    /// Connects as the sensor named in the certificate of `settings`.
    pub async fn connect(settings: &ClientSettings) -> Result<Self, ClientError> {
        let session = UplinkSession::connect(settings, CertRole::Sensor, Role::Sensor, "sensor").await?;
        Ok(SensorClient { session })
    }

    /// The RSU's hello.
    pub fn server_hello(&self) -> &ServerHello {
        &self.session.server
    }

    /// This sensor's id (from its certificate).
    pub fn id(&self) -> &str {
        &self.session.id
    }

    /// Sends one frame on its own unidirectional stream. The frame's `sensor_id` must be this
    /// sensor's id or the RSU drops it. Returns once the bytes are handed to QUIC.
    pub async fn send_frame(&self, frame: &SensorFrame) -> Result<(), ClientError> {
        self.send_bytes(&v2x_proto::encode(frame)).await
    }

    /// Sends raw bytes as one uplink message stream (for tools and tests of the RSU's input
    /// validation).
    pub async fn send_bytes(&self, bytes: &[u8]) -> Result<(), ClientError> {
        let mut stream = self.session.connection.open_uni().await.map_err(ClientError::from_connection)?;
        stream.write_all(bytes).await?;
        // Finishing only fails when the stream is already closed, which the write reports.
        let _ = stream.finish();
        Ok(())
    }

    /// The underlying QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.session.connection
    }

    /// Sends one frame and waits until the RSU has received all of it (acknowledged) or stopped
    /// the stream; slower than [`SensorClient::send_frame`] by a round trip.
    pub async fn send_frame_acked(&self, frame: &SensorFrame) -> Result<(), ClientError> {
        let mut stream = self.session.connection.open_uni().await.map_err(ClientError::from_connection)?;
        stream.write_all(&v2x_proto::encode(frame)).await?;
        let _ = stream.finish();
        match stream.stopped().await {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(ClientError::Protocol(format!("the RSU stopped the frame stream with code {code}"))),
            Err(quinn::StoppedError::ConnectionLost(e)) => Err(ClientError::from_connection(e)),
            Err(e) => Err(ClientError::Protocol(e.to_string())),
        }
    }

    /// Closes the session normally. Frames whose streams are not yet delivered may be lost; use
    /// [`SensorClient::send_frame_acked`] for the last one when that matters.
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// A traffic signal controller's session with the RSU (protocol version 3).
pub struct SignalControllerClient {
    session: UplinkSession,
}

impl SignalControllerClient {
    /// Connects as the signal controller named in the certificate of `settings`.
    pub async fn connect(settings: &ClientSettings) -> Result<Self, ClientError> {
        let session =
            UplinkSession::connect(settings, CertRole::Signal, Role::SignalController, "signal controller").await?;
        Ok(SignalControllerClient { session })
    }

    /// The RSU's hello.
    pub fn server_hello(&self) -> &ServerHello {
        &self.session.server
    }

    /// This controller's id (from its certificate).
    pub fn id(&self) -> &str {
        &self.session.id
    }

    /// Sends the controller's state as one datagram. Its `controller_id` must be this
    /// controller's id or the RSU drops it. Datagrams are unreliable: send the next state.
    pub fn send_state(&self, state: &SignalControllerState) -> Result<(), ClientError> {
        self.send_bytes(&v2x_proto::encode(state))
    }

    /// Sends raw bytes as one uplink datagram (for tools and tests of the RSU's input
    /// validation).
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.session.connection.send_datagram(bytes.to_vec().into())?;
        Ok(())
    }

    /// The underlying QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.session.connection
    }

    /// Closes the session normally, waiting (up to 1 s) for the close to reach the RSU.
    pub async fn close(self) {
        self.session.close().await;
    }
}
