//! One client session: startup negotiation, then a relay between the client
//! and its origin connection.
//!
//! States, in order:
//!
//! 1. **Negotiating** — read startup packets. `SSLRequest` and `GSSENCRequest`
//!    are answered `N` (TLS is not configured); a `CancelRequest` is mapped and
//!    forwarded, then the connection closes; a `StartupMessage` moves on.
//! 2. **Connecting** — open the origin connection and pass the
//!    `StartupMessage` on unchanged. Failure → `FATAL 08001` with the reason.
//! 3. **Relaying** — one loop reads both sockets; every message is framed in
//!    both directions ([`FrameScanner`]) and passed on in arrival order.
//!    Authentication is just relayed traffic. `BackendKeyData` is rewritten to
//!    a proxy-issued key; `ReadyForQuery` settles outstanding requests.
//! 4. **Closing** — on `Terminate`, either side's EOF, a protocol violation
//!    (`FATAL 08P01` to the client) or shutdown (at the next idle point, or
//!    at once when the drain timeout expires).
//!
//! Handlers are synchronous: they decide what to forward; all socket I/O is in
//! [`relay`]'s loop. The reads raced in its `select!` are `read_buf`, which is
//! cancel-safe: a read that loses the race has consumed nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::{debug, info, warn};

use super::origin::{self, OriginStream};
use super::{Phase, Shared};
use crate::protocol::ProtocolError;
use crate::protocol::frame::{Direction, FrameScanner, Step, backend, frontend};
use crate::protocol::message::{self, Severity};
use crate::protocol::sqlstate::SqlState;
use crate::protocol::startup::{self, CancelKey, StartupPacket};

/// Bytes read from a socket at a time; also the steady-state buffer size.
const READ_CHUNK: usize = 16 * 1024;

/// Why a session ended early. Only logged: the client has already been told
/// whatever it can be told.
#[derive(Debug)]
enum SessionEnd {
    Io(std::io::Error),
    Protocol(ProtocolError),
    StartupTimeout,
    OriginUnreachable,
}

impl From<std::io::Error> for SessionEnd {
    fn from(e: std::io::Error) -> Self {
        SessionEnd::Io(e)
    }
}

/// Serve one accepted client until its session ends.
pub(crate) async fn run(
    mut client: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let _ = client.set_nodelay(true);
    shared.metrics.client_connections.inc();
    shared.metrics.client_connections_active.inc();
    match serve_client(&mut client, &shared, permit.is_some()).await {
        Ok(()) => debug!(%peer, "session closed"),
        Err(SessionEnd::Io(e)) => debug!(%peer, error = %e, "session ended by I/O error"),
        Err(SessionEnd::Protocol(e)) => info!(%peer, error = %e, "protocol violation"),
        Err(SessionEnd::StartupTimeout) => debug!(%peer, "no startup packet in time"),
        Err(SessionEnd::OriginUnreachable) => {}
    }
    shared.metrics.client_connections_active.dec();
    drop(permit);
}

async fn serve_client(
    client: &mut TcpStream,
    shared: &Shared,
    admitted: bool,
) -> Result<(), SessionEnd> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let negotiated = tokio::time::timeout(
        shared.config.limits.startup_timeout,
        negotiate(client, &mut buf),
    )
    .await
    .map_err(|_| SessionEnd::StartupTimeout)?;
    let (packet, params) = match negotiated {
        Ok(Negotiated::Startup { packet, params }) => (packet, params),
        Ok(Negotiated::Cancel(key)) => {
            forward_cancel(shared, key).await;
            return Ok(());
        }
        Ok(Negotiated::Refused(reply)) => {
            client.write_all(&reply).await?;
            return Ok(());
        }
        Err(SessionEnd::Protocol(e)) => {
            refuse(client, shared, SqlState::PROTOCOL_VIOLATION, &e.to_string()).await;
            shared.metrics.protocol_errors.inc();
            return Err(SessionEnd::Protocol(e));
        }
        Err(e) => return Err(e),
    };
    let span = tracing::Span::current();
    for (name, value) in &params {
        match name.as_str() {
            "user" => span.record("user", value.as_str()),
            "database" => span.record("database", value.as_str()),
            _ => &span,
        };
    }
    if !admitted {
        shared.metrics.client_connections_refused.inc();
        refuse(
            client,
            shared,
            SqlState::TOO_MANY_CONNECTIONS,
            "sorry, too many clients already",
        )
        .await;
        return Ok(());
    }
    if *shared.phase.borrow() != Phase::Running {
        refuse(
            client,
            shared,
            SqlState::CANNOT_CONNECT_NOW,
            "pgcache is shutting down",
        )
        .await;
        return Ok(());
    }

    let stream = match origin::connect(&shared.origin, shared.config.origin.connect_timeout).await {
        Ok(stream) => stream,
        Err(e) => {
            shared.metrics.origin_connect_failures.inc();
            warn!(origin = %shared.origin, error = %e, "could not connect to the origin");
            let text = format!(
                "pgcache could not connect to the origin server at {}: {e}",
                shared.origin
            );
            refuse(client, shared, SqlState::UNABLE_TO_CONNECT, &text).await;
            return Err(SessionEnd::OriginUnreachable);
        }
    };
    // `buf` may hold bytes the client sent after its StartupMessage (a
    // pipelining client); they are relayed after it.
    match stream {
        OriginStream::Tcp(s) => relay(client, s, shared, &packet, buf).await,
        OriginStream::Unix(s) => relay(client, s, shared, &packet, buf).await,
    }
}

enum Negotiated {
    Startup {
        packet: Vec<u8>,
        params: Vec<(String, String)>,
    },
    Cancel(CancelKey),
    /// Say this and close.
    Refused(Vec<u8>),
}

/// Read startup packets until a `StartupMessage` or `CancelRequest`.
async fn negotiate(client: &mut TcpStream, buf: &mut BytesMut) -> Result<Negotiated, SessionEnd> {
    loop {
        let len = loop {
            if let Some(len) = startup::packet_len(buf).map_err(SessionEnd::Protocol)?
                && buf.len() >= len
            {
                break len;
            }
            if client.read_buf(buf).await? == 0 {
                return Err(SessionEnd::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        };
        let packet = buf.split_to(len);
        match startup::decode(&packet).map_err(SessionEnd::Protocol)? {
            // No TLS or GSS encryption is configured: say so, the client
            // continues in the clear (sslmode=prefer) or gives up (require).
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                client.write_all(b"N").await?;
            }
            StartupPacket::Cancel(key) => return Ok(Negotiated::Cancel(key)),
            StartupPacket::Startup {
                major: 3, params, ..
            } => {
                return Ok(Negotiated::Startup {
                    packet: packet.to_vec(),
                    params,
                });
            }
            StartupPacket::Startup { major, minor, .. } => {
                let mut reply = Vec::new();
                message::error_response(
                    &mut reply,
                    Severity::Fatal,
                    SqlState::FEATURE_NOT_SUPPORTED,
                    &format!(
                        "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                    ),
                );
                return Ok(Negotiated::Refused(reply));
            }
        }
    }
}

/// Send a FATAL error to a client that will be closed (best effort).
async fn refuse(client: &mut TcpStream, shared: &Shared, code: SqlState, text: &str) {
    let mut out = Vec::new();
    message::error_response(&mut out, Severity::Fatal, code, text);
    if client.write_all(&out).await.is_ok() {
        shared.metrics.client_bytes_sent.inc_by(out.len() as u64);
    }
}

async fn forward_cancel(shared: &Shared, key: CancelKey) {
    shared.metrics.cancel_requests.inc();
    let Some(origin_key) = shared.cancel.lookup(key) else {
        debug!("cancel request for an unknown key ignored");
        return;
    };
    shared.metrics.cancel_requests_forwarded.inc();
    if let Err(e) = origin::send_cancel(
        &shared.origin,
        origin_key,
        shared.config.origin.connect_timeout,
    )
    .await
    {
        warn!(error = %e, "could not forward a cancel request to the origin");
    }
}

/// Which backend messages the relay must see whole.
fn inspected(tag: u8) -> bool {
    tag == backend::BACKEND_KEY_DATA || tag == backend::READY_FOR_QUERY
}

/// Relay state that outlives one read.
struct Relay<'a> {
    shared: &'a Shared,
    from_client: FrameScanner,
    from_origin: FrameScanner,
    /// Requests (Query, Sync, FunctionCall, and the startup itself) whose
    /// `ReadyForQuery` has not come back yet. Zero means the session is idle.
    outstanding: u64,
    /// The client sent Terminate: close once it is passed on.
    terminated: bool,
    /// The origin backend's own cancel key, once known.
    origin_key: Option<CancelKey>,
    /// The key the client holds; removed from the map when the session ends.
    registration: Option<super::cancel::Registration>,
}

async fn relay<O: AsyncRead + AsyncWrite + Unpin>(
    client: &mut TcpStream,
    mut origin: O,
    shared: &Shared,
    startup_packet: &[u8],
    mut client_buf: BytesMut,
) -> Result<(), SessionEnd> {
    origin.write_all(startup_packet).await?;
    let mut state = Relay {
        shared,
        from_client: FrameScanner::new(Direction::Frontend, shared.config.limits.max_message_size),
        from_origin: FrameScanner::new(Direction::Backend, usize::MAX),
        outstanding: 1,
        terminated: false,
        origin_key: None,
        registration: None,
    };
    let mut origin_buf = BytesMut::with_capacity(READ_CHUNK);
    // One waiter on the shutdown phase for the whole session: re-creating it
    // per loop turn would take the channel's waiter lock twice per message.
    let mut draining = *shared.phase.borrow() != Phase::Running;
    let next_phase = phase_after(shared.phase.clone(), Phase::Running);
    tokio::pin!(next_phase);

    loop {
        // Bytes the client pipelined behind its startup packet are handled
        // before waiting on either socket.
        if !client_buf.is_empty() {
            let n = match state.client_bytes(&client_buf) {
                Ok(n) => n,
                Err(e) => return state.protocol_violation(client, &mut origin, e).await,
            };
            if n > 0 {
                origin.write_all(&client_buf[..n]).await?;
                client_buf.advance(n);
            }
            if state.terminated {
                return Ok(());
            }
        }
        if draining && state.outstanding == 0 {
            return state.goodbye(client, &mut origin).await;
        }
        reserve(&mut client_buf);
        reserve(&mut origin_buf);
        tokio::select! {
            read = client.read_buf(&mut client_buf) => {
                let n = read?;
                if n == 0 {
                    return state.client_gone(&mut origin).await;
                }
                shared.metrics.client_bytes_received.inc_by(n as u64);
            }
            read = origin.read_buf(&mut origin_buf) => {
                if read? == 0 {
                    // The origin closed (usually after a FATAL it already sent).
                    return Ok(());
                }
                let n = state.origin_bytes(&mut origin_buf)?;
                if n > 0 {
                    client.write_all(&origin_buf[..n]).await?;
                    shared.metrics.client_bytes_sent.inc_by(n as u64);
                    origin_buf.advance(n);
                }
            }
            (now, rx) = &mut next_phase => {
                draining = true;
                next_phase.set(phase_after(rx, now));
                if now == Phase::Closing {
                    if state.outstanding > 0 {
                        state.cancel_origin_query().await;
                    }
                    return state.goodbye(client, &mut origin).await;
                }
            }
        }
    }
}

impl Relay<'_> {
    /// Frame the client's bytes; returns how many to pass on now.
    fn client_bytes(&mut self, buf: &[u8]) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        loop {
            let step = self.from_client.next(&buf[pos..], |_| false)?;
            let (tag, n) = match step {
                Step::Message { tag, len } => (Some(tag), len),
                Step::Start { tag, avail } => (Some(tag), avail),
                Step::Body(n) => (None, n),
                Step::NeedMore => return Ok(pos),
            };
            match tag {
                Some(frontend::QUERY | frontend::SYNC | frontend::FUNCTION_CALL) => {
                    self.outstanding += 1
                }
                Some(frontend::TERMINATE) => {
                    self.terminated = true;
                    return Ok(pos + n);
                }
                _ => {}
            }
            pos += n;
        }
    }

    /// Frame the origin's bytes, rewriting `BackendKeyData` in place; returns
    /// how many to pass on now.
    fn origin_bytes(&mut self, buf: &mut [u8]) -> Result<usize, SessionEnd> {
        let mut pos = 0;
        loop {
            let step = self
                .from_origin
                .next(&buf[pos..], inspected)
                .map_err(SessionEnd::Protocol)?;
            match step {
                Step::Message { tag, len } => {
                    let msg = &mut buf[pos..pos + len];
                    match tag {
                        backend::BACKEND_KEY_DATA => self.swap_cancel_key(msg),
                        backend::READY_FOR_QUERY => {
                            self.outstanding = self.outstanding.saturating_sub(1);
                        }
                        _ => {}
                    }
                    pos += len;
                }
                Step::Start { avail: n, .. } | Step::Body(n) => pos += n,
                Step::NeedMore => return Ok(pos),
            }
        }
    }

    /// Replace the origin's cancel key with one the proxy issues.
    fn swap_cancel_key(&mut self, msg: &mut [u8]) {
        let Some(origin_key) = message::parse_backend_key_data(msg) else {
            return;
        };
        let registration = self.shared.cancel.register(origin_key);
        let mut rewritten = Vec::with_capacity(13);
        message::backend_key_data(&mut rewritten, registration.key);
        if rewritten.len() == msg.len() {
            msg.copy_from_slice(&rewritten);
        }
        self.origin_key = Some(origin_key);
        self.registration = Some(registration);
    }

    /// The client went away. If a statement is still running for it, cancel
    /// it so its origin backend is freed now rather than when it next writes.
    async fn client_gone<O: AsyncWrite + Unpin>(
        &mut self,
        origin: &mut O,
    ) -> Result<(), SessionEnd> {
        if self.outstanding > 0 {
            self.cancel_origin_query().await;
        }
        if self.from_client.at_boundary() {
            let mut out = Vec::new();
            message::terminate(&mut out);
            let _ = origin.write_all(&out).await;
        }
        Ok(())
    }

    async fn cancel_origin_query(&self) {
        if let Some(key) = self.origin_key {
            let timeout = self.shared.config.origin.connect_timeout;
            if let Err(e) = origin::send_cancel(&self.shared.origin, key, timeout).await {
                warn!(error = %e, "could not cancel the origin query of a closed session");
            }
        }
    }

    async fn protocol_violation<O: AsyncWrite + Unpin>(
        &mut self,
        client: &mut TcpStream,
        origin: &mut O,
        error: ProtocolError,
    ) -> Result<(), SessionEnd> {
        self.shared.metrics.protocol_errors.inc();
        refuse(
            client,
            self.shared,
            SqlState::PROTOCOL_VIOLATION,
            &error.to_string(),
        )
        .await;
        // Everything passed on so far ended on a message boundary.
        let mut out = Vec::new();
        message::terminate(&mut out);
        let _ = origin.write_all(&out).await;
        Err(SessionEnd::Protocol(error))
    }

    /// Close for shutdown: tell the client why, end the origin session.
    async fn goodbye<O: AsyncWrite + Unpin>(
        &mut self,
        client: &mut TcpStream,
        origin: &mut O,
    ) -> Result<(), SessionEnd> {
        refuse(
            client,
            self.shared,
            SqlState::ADMIN_SHUTDOWN,
            "terminating connection because pgcache is shutting down",
        )
        .await;
        if self.from_client.at_boundary() {
            let mut out = Vec::new();
            message::terminate(&mut out);
            let _ = origin.write_all(&out).await;
        }
        Ok(())
    }
}

/// Resolves with the first phase other than `current` (and the receiver, to
/// wait again). A dropped sender means the server is gone: close.
async fn phase_after(
    mut rx: watch::Receiver<Phase>,
    current: Phase,
) -> (Phase, watch::Receiver<Phase>) {
    loop {
        let now = *rx.borrow_and_update();
        if now != current {
            return (now, rx);
        }
        if rx.changed().await.is_err() {
            return (Phase::Closing, rx);
        }
    }
}

/// Make room for the next read without growing past one chunk in steady state.
fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}
