//! One client session: startup negotiation, then a relay between the client
//! and its origin connection.
//!
//! States, in order:
//!
//! 1. **Negotiating** — read startup packets. `SSLRequest` and `GSSENCRequest`
//!    are answered `N` (TLS is not configured); a `CancelRequest` is mapped and
//!    forwarded, then the connection closes; a `StartupMessage` moves on.
//! 2. **Connecting** — open the origin connection and pass the
//!    `StartupMessage` on (a request for protocol 3.x, x > 0, as 3.0; the
//!    client is sent NegotiateProtocolVersion). Failure → `FATAL 08001` with
//!    the reason.
//! 3. **Relaying** — one loop reads both sockets; every message is framed in
//!    both directions ([`FrameScanner`]) and passed on in arrival order.
//!    Authentication is just relayed traffic. `BackendKeyData` is rewritten to
//!    a proxy-issued key; `ReadyForQuery` settles outstanding requests.
//! 4. **Closing** — on `Terminate` (once the origin has answered what was
//!    pipelined before it), either side's EOF, a protocol violation by either
//!    side (`FATAL 08P01` to the client) or shutdown (at the next idle point,
//!    or at once when the drain timeout expires).
//!
//! Handlers are synchronous: they decide what to forward; all socket I/O is in
//! [`relay`]'s loop. The reads and writes raced in its `select!` are
//! `read_buf` and `write`, which are cancel-safe: one that loses the race has
//! moved no bytes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::{debug, info, warn};

use super::cached::{self, HIT_BACKLOG, SessionCache};
use super::origin::{self, OriginStream};
use super::{Phase, Shared};
use crate::protocol::ProtocolError;
use crate::protocol::frame::{Direction, FrameScanner, backend, frontend};
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
    let (packet, params, downgraded) = match negotiated {
        Ok(Negotiated::Startup {
            packet,
            params,
            downgraded,
        }) => (packet, params, downgraded),
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
    let replication = params
        .iter()
        .any(|(k, v)| k == "replication" && v != "false" && v != "off" && v != "0" && v != "no");
    // The cache (its catalog and change stream) covers one database; the
    // startup packet names the session's (the user's name when absent).
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let database = param("database")
        .filter(|d| !d.is_empty())
        .or_else(|| param("user"));
    let same_database = database.is_some_and(|d| *d == shared.config.origin.database);
    let start = Start {
        cache: if replication || !same_database {
            None
        } else {
            shared.cache.clone()
        },
        packet: &packet,
        downgraded,
        client_buf: buf,
    };
    match stream {
        OriginStream::Tcp(mut s) => {
            let (rd, wr) = s.split();
            relay(client, rd, wr, shared, start).await
        }
        OriginStream::Unix(mut s) => {
            let (rd, wr) = s.split();
            relay(client, rd, wr, shared, start).await
        }
    }
}

enum Negotiated {
    Startup {
        packet: Vec<u8>,
        params: Vec<(String, String)>,
        /// The client asked for a newer 3.x than the proxy speaks: `packet`
        /// now asks the origin for 3.0 and the client must be told.
        downgraded: bool,
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
            // The proxy speaks protocol 3.0 (it rewrites the 3.0 form of
            // BackendKeyData), so a request for a newer minor version
            // (libpq 18 asks for 3.2 with max_protocol_version) is passed
            // on as 3.0 and answered with NegotiateProtocolVersion, as a
            // 3.0 server answers it.
            StartupPacket::Startup {
                major: 3,
                minor,
                params,
            } => {
                let mut packet = packet.to_vec();
                packet[4..8].copy_from_slice(&startup::PROTOCOL_3_0.to_be_bytes());
                return Ok(Negotiated::Startup {
                    packet,
                    params,
                    downgraded: minor > 0,
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
async fn refuse<W: AsyncWrite + Unpin>(
    client: &mut W,
    shared: &Shared,
    code: SqlState,
    text: &str,
) {
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

/// Which frontend messages a session with the cache must see whole (all
/// small: bounded by `limits.max_message_size`).
fn cached_whole(tag: u8) -> bool {
    matches!(
        tag,
        frontend::QUERY
            | frontend::PARSE
            | frontend::BIND
            | frontend::DESCRIBE
            | frontend::EXECUTE
            | frontend::CLOSE
            | frontend::SYNC
            | frontend::FLUSH
            | frontend::FUNCTION_CALL
    )
}

/// Which backend messages the relay must see whole.
fn inspected(tag: u8) -> bool {
    tag == backend::BACKEND_KEY_DATA || tag == backend::READY_FOR_QUERY
}

/// What the relay starts from once the origin is connected.
struct Start<'a> {
    /// The result cache, unless off or this is a replication connection.
    cache: Option<Arc<cached::CacheRuntime>>,
    /// The `StartupMessage` to send to the origin.
    packet: &'a [u8],
    /// See [`Negotiated::Startup`].
    downgraded: bool,
    /// Bytes the client sent after its `StartupMessage` (a pipelining
    /// client); they are relayed after it.
    client_buf: BytesMut,
}

/// Relay state that outlives one read.
struct Relay<'a> {
    shared: &'a Shared,
    from_client: FrameScanner,
    from_origin: FrameScanner,
    /// Requests (Query, Sync, FunctionCall, and the startup itself) whose
    /// `ReadyForQuery` has not come back yet. Zero means the session is idle.
    outstanding: u64,
    /// Syncs passed on since the last Query, Execute or FunctionCall. If that
    /// statement is a `COPY … FROM STDIN`, the origin reads them in copy-in
    /// mode, where it ignores Sync: they get no `ReadyForQuery`.
    syncs_since_statement: u64,
    /// The origin sent CopyInResponse and has not left copy-in mode as far
    /// as the relay has seen (CopyDone/CopyFail from the client, or an error).
    copy_in: bool,
    /// The client sent Terminate: the origin answers what was pipelined
    /// before it, then closes; nothing more is read from the client.
    terminated: bool,
    /// The client still has to be told that the origin speaks 3.0 only.
    negotiation_owed: bool,
    /// The origin broke the protocol at the front of the unframed bytes.
    origin_violation: Option<ProtocolError>,
    /// The origin backend's own cancel key, once known.
    origin_key: Option<CancelKey>,
    /// The key the client holds; removed from the map when the session ends.
    registration: Option<super::cancel::Registration>,
    /// This session's view of the result cache.
    cache: Option<SessionCache>,
}

/// Relay until the session ends.
///
/// Each direction holds at most one read's worth of framed bytes waiting to
/// be written, and reads its source only once they are gone. The two
/// directions never wait for each other: while a write to the origin waits
/// (the origin is not reading), the origin is still read and its messages
/// reach the client. PostgreSQL does not read while it is blocked writing,
/// so a relay that stopped reading the origin while writing to it would
/// deadlock on a large COPY FROM STDIN whose rows make the server send
/// notices.
async fn relay<R, W>(
    client: &mut TcpStream,
    mut origin_rd: R,
    mut origin_wr: W,
    shared: &Shared,
    start: Start<'_>,
) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    origin_wr.write_all(start.packet).await?;
    let mut client_buf = start.client_buf;
    let (mut client_rd, mut client_wr) = client.split();
    let mut state = Relay {
        shared,
        from_client: FrameScanner::new(Direction::Frontend, shared.config.limits.max_message_size),
        from_origin: FrameScanner::new(Direction::Backend, usize::MAX),
        outstanding: 1,
        syncs_since_statement: 0,
        copy_in: false,
        terminated: false,
        negotiation_owed: start.downgraded,
        origin_violation: None,
        origin_key: None,
        registration: None,
        cache: start.cache.map(SessionCache::new),
    };
    let mut origin_buf = BytesMut::with_capacity(READ_CHUNK);
    // Unframed client bytes held at most (a whole message must fit: the
    // cache frames requests whole; they wait while the settings probe is out).
    let client_buf_cap = shared.config.limits.max_message_size + READ_CHUNK;
    // Framed bytes waiting to be written, one per direction.
    let mut to_origin = BytesMut::new();
    let mut to_client = BytesMut::new();
    // One waiter on the shutdown phase for the whole session: re-creating it
    // per loop turn would take the channel's waiter lock twice per message.
    let mut draining = *shared.phase.borrow() != Phase::Running;
    let next_phase = phase_after(shared.phase.clone(), Phase::Running);
    tokio::pin!(next_phase);

    loop {
        // Frame what the client sent (also bytes it pipelined behind its
        // startup packet) once the previous batch is written.
        if to_origin.is_empty()
            && !client_buf.is_empty()
            && !state.terminated
            && state.cache.is_some()
        {
            match state.client_bytes_cached(&client_buf, &mut to_origin, &mut to_client) {
                Ok(n) => client_buf.advance(n),
                Err(e) => {
                    return state
                        .protocol_violation(&mut client_wr, &mut origin_wr, &to_client, e)
                        .await;
                }
            }
        }
        if to_origin.is_empty()
            && !client_buf.is_empty()
            && !state.terminated
            && state.cache.is_none()
        {
            match state.client_bytes(&client_buf) {
                Ok(n) => to_origin = client_buf.split_to(n),
                Err(e) => {
                    return state
                        .protocol_violation(&mut client_wr, &mut origin_wr, &to_client, e)
                        .await;
                }
            }
        }
        // Most writes find room in the socket: make them now rather than one
        // loop turn later. What does not fit waits in the raced writes below.
        if !to_origin.is_empty() {
            write_now(&mut origin_wr, &mut to_origin)?;
        }
        if !to_client.is_empty() {
            let n = write_now(&mut client_wr, &mut to_client)?;
            shared.metrics.client_bytes_sent.inc_by(n as u64);
        }
        if to_client.is_empty() {
            if let Some(e) = state.origin_violation.take() {
                return state
                    .origin_violation(&mut client_wr, &mut origin_wr, e)
                    .await;
            }
            if to_origin.is_empty() && state.outstanding == 0 {
                if state.terminated {
                    return Ok(());
                }
                if draining {
                    return state
                        .goodbye(&mut client_wr, &mut origin_wr, &to_client, &to_origin)
                        .await;
                }
            }
        }
        reserve(&mut client_buf);
        reserve(&mut origin_buf);
        tokio::select! {
            read = client_rd.read_buf(&mut client_buf),
                if to_origin.is_empty()
                    && !state.terminated
                    && to_client.len() < HIT_BACKLOG
                    && client_buf.len() <= client_buf_cap =>
            {
                let n = read?;
                if n == 0 {
                    return state.client_gone(&mut origin_wr).await;
                }
                shared.metrics.client_bytes_received.inc_by(n as u64);
            }
            read = origin_rd.read_buf(&mut origin_buf),
                if to_client.is_empty() && state.origin_violation.is_none() =>
            {
                if read? == 0 {
                    // The origin closed (usually after a FATAL it already
                    // sent, or after the client's Terminate).
                    return Ok(());
                }
                if state.negotiation_owed {
                    state.negotiation_owed = false;
                    if origin_buf[0] != backend::NEGOTIATE_PROTOCOL_VERSION {
                        let mut npv = Vec::new();
                        message::negotiate_protocol_version(
                            &mut npv,
                            startup::PROTOCOL_3_0,
                            &[],
                        );
                        to_client.extend_from_slice(&npv);
                    }
                }
                if state.cache.is_some() {
                    let n = state.origin_bytes_cached(&mut origin_buf, &mut to_client);
                    origin_buf.advance(n);
                    continue;
                }
                let n = state.origin_bytes(&mut origin_buf);
                if to_client.is_empty() {
                    to_client = origin_buf.split_to(n);
                } else {
                    to_client.extend_from_slice(&origin_buf[..n]);
                    origin_buf.advance(n);
                }
            }
            written = origin_wr.write(&to_origin), if !to_origin.is_empty() => {
                consume(&mut to_origin, nonzero(written?)?);
            }
            written = client_wr.write(&to_client), if !to_client.is_empty() => {
                let n = nonzero(written?)?;
                shared.metrics.client_bytes_sent.inc_by(n as u64);
                consume(&mut to_client, n);
            }
            (now, rx) = &mut next_phase => {
                draining = true;
                next_phase.set(phase_after(rx, now));
                if now == Phase::Closing {
                    if state.outstanding > 0 {
                        state.cancel_origin_query().await;
                    }
                    return state
                        .goodbye(&mut client_wr, &mut origin_wr, &to_client, &to_origin)
                        .await;
                }
            }
        }
    }
}

/// Write as much of `buf` as the socket takes without waiting, and drop the
/// written bytes. Polling once with a
/// no-op waker is sound with tokio's readiness model: a later poll from the
/// loop's `select!` registers the real waker.
fn write_now<W: AsyncWrite + Unpin>(wr: &mut W, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(wr).poll_write(&mut cx, buf) {
        Poll::Ready(written) => {
            let n = nonzero(written?)?;
            consume(buf, n);
            Ok(n)
        }
        Poll::Pending => Ok(0),
    }
}

/// Drop `n` written bytes; once all are gone, let go of the shared buffer so
/// the next `reserve` on the read buffer can reuse it.
fn consume(buf: &mut BytesMut, n: usize) {
    buf.advance(n);
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
}

/// A write that accepted no bytes means the peer can take no more.
fn nonzero(n: usize) -> std::io::Result<usize> {
    if n == 0 {
        Err(std::io::ErrorKind::WriteZero.into())
    } else {
        Ok(n)
    }
}

impl Relay<'_> {
    /// Frame the client's bytes; returns how many to pass on now.
    fn client_bytes(&mut self, buf: &[u8]) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        loop {
            let step = self.from_client.next(&buf[pos..], |_| false)?;
            let Some((tag, n)) = step.span() else {
                return Ok(pos);
            };
            match tag {
                Some(frontend::QUERY | frontend::FUNCTION_CALL) => {
                    self.outstanding += 1;
                    self.syncs_since_statement = 0;
                }
                Some(frontend::EXECUTE) => self.syncs_since_statement = 0,
                Some(frontend::SYNC) => {
                    self.outstanding += 1;
                    self.syncs_since_statement += 1;
                }
                Some(frontend::COPY_DONE | frontend::COPY_FAIL) if self.copy_in => {
                    self.copy_in_ended();
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

    /// Whether nothing is in flight between the client and the origin.
    fn idle(&self) -> bool {
        self.outstanding == 0 && !self.copy_in && self.from_origin.at_boundary()
    }

    /// [`Self::client_bytes`] for a session with the cache: requests the
    /// cache answers are replied to in `to_client`; everything else is
    /// copied to `to_origin`. Returns how many bytes of `buf` were used.
    fn client_bytes_cached(
        &mut self,
        buf: &[u8],
        to_origin: &mut BytesMut,
        to_client: &mut BytesMut,
    ) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        loop {
            if to_client.len() >= HIT_BACKLOG
                || self.cache.as_ref().is_some_and(|c| c.probe_in_flight())
            {
                return Ok(pos);
            }
            let step = self.from_client.next(&buf[pos..], cached_whole)?;
            let Some((tag, n)) = step.span() else {
                return Ok(pos);
            };
            let msg = &buf[pos..pos + n];
            let idle = self.idle();
            let Some(sc) = self.cache.as_mut() else {
                return Ok(pos);
            };
            let Some(tag) = tag else {
                to_origin.extend_from_slice(msg);
                pos += n;
                continue;
            };
            match tag {
                frontend::QUERY => {
                    if sc.holding() {
                        sc.release_held(to_origin, idle);
                    }
                    if sc.query_hit(msg, idle, to_client) {
                        pos += n;
                        continue;
                    }
                    let probe = sc.query_forwarded(msg, idle);
                    to_origin.extend_from_slice(msg);
                    sc.request_sent();
                    self.outstanding += 1;
                    self.syncs_since_statement = 0;
                    if probe {
                        cached::probe_messages(to_origin);
                    }
                }
                frontend::PARSE | frontend::BIND | frontend::DESCRIBE | frontend::EXECUTE => {
                    if sc.try_hold(tag, msg, idle) {
                        pos += n;
                        continue;
                    }
                    if sc.holding() {
                        sc.release_held(to_origin, idle);
                    }
                    sc.forward(tag, msg, idle, to_origin);
                    if tag == frontend::EXECUTE {
                        self.syncs_since_statement = 0;
                    }
                }
                frontend::SYNC => {
                    if sc.holding() && sc.batch_hit(to_client) {
                        pos += n;
                        continue;
                    }
                    let held = sc.holding();
                    let (batch, tags) = sc.take_held();
                    for &(t, s, e) in &tags {
                        sc.forward(t, &batch[s..e], idle, to_origin);
                        if t == frontend::EXECUTE {
                            self.syncs_since_statement = 0;
                        }
                    }
                    sc.forward(tag, msg, idle, to_origin);
                    sc.request_sent();
                    self.outstanding += 1;
                    self.syncs_since_statement += 1;
                    if sc.sync_forwarded(batch, tags, held) {
                        cached::probe_messages(to_origin);
                    }
                }
                _ => {
                    if sc.holding() {
                        sc.release_held(to_origin, idle);
                    }
                    sc.forward(tag, msg, idle, to_origin);
                    match tag {
                        frontend::FUNCTION_CALL => {
                            sc.request_sent();
                            self.outstanding += 1;
                            self.syncs_since_statement = 0;
                        }
                        frontend::COPY_DONE | frontend::COPY_FAIL if self.copy_in => {
                            self.copy_in_ended();
                        }
                        frontend::TERMINATE => {
                            self.terminated = true;
                            return Ok(pos + n);
                        }
                        _ => {}
                    }
                }
            }
            pos += n;
        }
    }

    /// [`Self::origin_bytes`] for a session with the cache: relayed bytes
    /// are copied to `to_client` (and to a capture); the reply to the
    /// settings probe is swallowed. Returns how many bytes of `buf` were used.
    fn origin_bytes_cached(&mut self, buf: &mut [u8], to_client: &mut BytesMut) -> usize {
        let mut pos = 0;
        loop {
            let receiving = self.cache.as_ref().is_some_and(|c| c.probe_receiving());
            let step = match self.from_origin.next(&buf[pos..], |t| {
                receiving || inspected(t) || t == b'1' || t == b'3'
            }) {
                Ok(step) => step,
                Err(e) => {
                    self.origin_violation = Some(e);
                    return pos;
                }
            };
            let Some((tag, n)) = step.span() else {
                return pos;
            };
            if let Some(tag) = tag {
                if let Some(sc) = self.cache.as_mut()
                    && sc.origin_message(tag, &buf[pos..pos + n])
                {
                    pos += n;
                    continue;
                }
                match tag {
                    backend::BACKEND_KEY_DATA => {
                        if let Err(e) = self.swap_cancel_key(&mut buf[pos..pos + n]) {
                            self.origin_violation = Some(e);
                            return pos;
                        }
                    }
                    backend::COPY_IN_RESPONSE => self.copy_in = true,
                    backend::ERROR_RESPONSE if self.copy_in => self.copy_in_ended(),
                    _ => {}
                }
            }
            let bytes = &buf[pos..pos + n];
            to_client.extend_from_slice(bytes);
            if let Some(sc) = self.cache.as_mut() {
                sc.relayed(bytes);
                if tag == Some(backend::READY_FOR_QUERY) {
                    // Copy-in mode is over by now, whatever the relay saw
                    // (a CopyDone pipelined before CopyInResponse).
                    self.copy_in = false;
                    self.outstanding = self.outstanding.saturating_sub(1);
                    sc.ready_for_query(bytes.get(5).copied().unwrap_or(b'I'));
                }
            }
            pos += n;
        }
    }

    /// Copy-in mode is over at the origin. The Syncs the client sent since
    /// the COPY statement were read in copy-in mode and ignored: no
    /// `ReadyForQuery` will answer them. (libpq and tokio-postgres send one
    /// with the COPY's Execute and another after CopyDone/CopyFail; only the
    /// second is answered. The one case this misjudges — an error raised
    /// before the origin read anything in copy-in mode, such as a failing
    /// statement-level BEFORE trigger — yields one extra `ReadyForQuery`,
    /// which `outstanding` absorbs at zero.)
    fn copy_in_ended(&mut self) {
        if let Some(sc) = self.cache.as_mut() {
            sc.requests_absorbed(self.syncs_since_statement);
        }
        self.outstanding = self.outstanding.saturating_sub(self.syncs_since_statement);
        self.syncs_since_statement = 0;
        self.copy_in = false;
    }

    /// Frame the origin's bytes, rewriting `BackendKeyData` in place; returns
    /// how many to pass on now. A protocol violation stops framing in front
    /// of the offending message and is kept in `origin_violation`.
    fn origin_bytes(&mut self, buf: &mut [u8]) -> usize {
        let mut pos = 0;
        loop {
            let step = match self.from_origin.next(&buf[pos..], inspected) {
                Ok(step) => step,
                Err(e) => {
                    self.origin_violation = Some(e);
                    return pos;
                }
            };
            let Some((tag, n)) = step.span() else {
                return pos;
            };
            match tag {
                Some(backend::BACKEND_KEY_DATA) => {
                    if let Err(e) = self.swap_cancel_key(&mut buf[pos..pos + n]) {
                        self.origin_violation = Some(e);
                        return pos;
                    }
                }
                Some(backend::READY_FOR_QUERY) => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                }
                Some(backend::COPY_IN_RESPONSE) => self.copy_in = true,
                Some(backend::ERROR_RESPONSE) if self.copy_in => self.copy_in_ended(),
                _ => {}
            }
            pos += n;
        }
    }

    /// Replace the origin's cancel key with one the proxy issues. Only the
    /// protocol 3.0 form (4-byte secret) is expected, as the proxy asks the
    /// origin for 3.0; anything else would leave the client holding a key
    /// the proxy cannot map, so it is refused rather than passed on.
    fn swap_cancel_key(&mut self, msg: &mut [u8]) -> Result<(), ProtocolError> {
        let malformed = ProtocolError::Malformed {
            tag: backend::BACKEND_KEY_DATA,
            what: "cancel key is not the protocol 3.0 form (4-byte secret)",
        };
        let Some(origin_key) = message::parse_backend_key_data(msg) else {
            return Err(malformed);
        };
        if self.registration.is_some() || msg.len() != 13 {
            return Err(malformed);
        }
        let registration = self.shared.cancel.register(origin_key);
        let mut rewritten = Vec::with_capacity(13);
        message::backend_key_data(&mut rewritten, registration.key);
        msg.copy_from_slice(&rewritten);
        self.origin_key = Some(origin_key);
        self.registration = Some(registration);
        Ok(())
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
        self.terminate_origin(origin, &[]).await;
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

    /// Tell the client `FATAL code text` after the origin bytes still owed
    /// to it, unless the client is in the middle of an origin message (a
    /// message of ours there would corrupt the stream; it gets the close).
    async fn fatal_to_client<C: AsyncWrite + Unpin>(
        &self,
        client: &mut C,
        pending: &[u8],
        code: SqlState,
        text: &str,
    ) {
        if !self.from_origin.at_boundary() {
            return;
        }
        let mut out = pending.to_vec();
        message::error_response(&mut out, Severity::Fatal, code, text);
        if client.write_all(&out).await.is_ok() {
            self.shared
                .metrics
                .client_bytes_sent
                .inc_by(out.len() as u64);
        }
    }

    /// End the origin session with Terminate if the bytes it has received
    /// end on a message boundary (otherwise closing the socket ends it).
    async fn terminate_origin<O: AsyncWrite + Unpin>(&self, origin: &mut O, pending: &[u8]) {
        if pending.is_empty() && self.from_client.at_boundary() {
            let mut out = Vec::new();
            message::terminate(&mut out);
            let _ = origin.write_all(&out).await;
        }
    }

    async fn protocol_violation<C: AsyncWrite + Unpin, O: AsyncWrite + Unpin>(
        &mut self,
        client: &mut C,
        origin: &mut O,
        to_client: &[u8],
        error: ProtocolError,
    ) -> Result<(), SessionEnd> {
        self.shared.metrics.protocol_errors.inc();
        self.fatal_to_client(
            client,
            to_client,
            SqlState::PROTOCOL_VIOLATION,
            &error.to_string(),
        )
        .await;
        // Everything passed on so far ended on a message boundary.
        self.terminate_origin(origin, &[]).await;
        Err(SessionEnd::Protocol(error))
    }

    /// The origin sent something the relay cannot pass on faithfully.
    async fn origin_violation<C: AsyncWrite + Unpin, O: AsyncWrite + Unpin>(
        &mut self,
        client: &mut C,
        origin: &mut O,
        error: ProtocolError,
    ) -> Result<(), SessionEnd> {
        self.shared.metrics.protocol_errors.inc();
        warn!(error = %error, "protocol violation by the origin");
        if self.outstanding > 0 {
            self.cancel_origin_query().await;
        }
        self.fatal_to_client(
            client,
            &[],
            SqlState::PROTOCOL_VIOLATION,
            &format!("pgcache received an invalid message from the origin server: {error}"),
        )
        .await;
        self.terminate_origin(origin, &[]).await;
        Err(SessionEnd::Protocol(error))
    }

    /// Close for shutdown: tell the client why, end the origin session.
    async fn goodbye<C: AsyncWrite + Unpin, O: AsyncWrite + Unpin>(
        &mut self,
        client: &mut C,
        origin: &mut O,
        to_client: &[u8],
        to_origin: &[u8],
    ) -> Result<(), SessionEnd> {
        self.fatal_to_client(
            client,
            to_client,
            SqlState::ADMIN_SHUTDOWN,
            "terminating connection because pgcache is shutting down",
        )
        .await;
        self.terminate_origin(origin, to_origin).await;
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
