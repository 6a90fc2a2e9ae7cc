//! A raw PostgreSQL wire-protocol client for tests.
//!
//! [`fe`] builds frontend messages as bytes; [`RawConn`] writes bytes and reads
//! backend messages as [`Msg`] frames (tag + body); [`golden`] runs the same
//! script of frontend bytes directly against the origin and through a proxy and
//! returns both transcripts for a byte-for-byte comparison.

use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{HANG_GUARD, within};

/// Authentication request codes (first Int32 of an 'R' message).
pub const AUTH_OK: i32 = 0;
pub const AUTH_CLEARTEXT: i32 = 3;
pub const AUTH_MD5: i32 = 5;
pub const AUTH_SASL: i32 = 10;

/// Frontend message builders. Each returns the complete message bytes.
pub mod fe {
    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A typed message: tag, Int32 length (including itself), body.
    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(tag);
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// An untyped message (startup family): Int32 length, body.
    fn untyped(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// StartupMessage, protocol 3.0, with the given parameters.
    pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for (k, v) in params {
            cstr(&mut body, k);
            cstr(&mut body, v);
        }
        body.push(0);
        untyped(&body)
    }

    pub fn ssl_request() -> Vec<u8> {
        untyped(&80_877_103i32.to_be_bytes())
    }

    pub fn gssenc_request() -> Vec<u8> {
        untyped(&80_877_104i32.to_be_bytes())
    }

    pub fn cancel_request(pid: i32, secret: i32) -> Vec<u8> {
        let mut body = 80_877_102i32.to_be_bytes().to_vec();
        body.extend_from_slice(&pid.to_be_bytes());
        body.extend_from_slice(&secret.to_be_bytes());
        untyped(&body)
    }

    pub fn password(password: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, password);
        message(b'p', &body)
    }

    pub fn query(sql: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, sql);
        message(b'Q', &body)
    }

    pub fn parse(name: &str, sql: &str, param_types: &[u32]) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, name);
        cstr(&mut body, sql);
        body.extend_from_slice(&(param_types.len() as i16).to_be_bytes());
        for t in param_types {
            body.extend_from_slice(&t.to_be_bytes());
        }
        message(b'P', &body)
    }

    /// Bind `portal` to `statement`. `params` are already encoded in the formats
    /// given by `param_formats` (empty: all text); `None` is NULL.
    pub fn bind(
        portal: &str,
        statement: &str,
        param_formats: &[i16],
        params: &[Option<&[u8]>],
        result_formats: &[i16],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, portal);
        cstr(&mut body, statement);
        body.extend_from_slice(&(param_formats.len() as i16).to_be_bytes());
        for f in param_formats {
            body.extend_from_slice(&f.to_be_bytes());
        }
        body.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for p in params {
            match p {
                Some(v) => {
                    body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    body.extend_from_slice(v);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        body.extend_from_slice(&(result_formats.len() as i16).to_be_bytes());
        for f in result_formats {
            body.extend_from_slice(&f.to_be_bytes());
        }
        message(b'B', &body)
    }

    fn named(tag: u8, kind: u8, name: &str) -> Vec<u8> {
        let mut body = vec![kind];
        cstr(&mut body, name);
        message(tag, &body)
    }

    pub fn describe_statement(name: &str) -> Vec<u8> {
        named(b'D', b'S', name)
    }

    pub fn describe_portal(name: &str) -> Vec<u8> {
        named(b'D', b'P', name)
    }

    pub fn close_statement(name: &str) -> Vec<u8> {
        named(b'C', b'S', name)
    }

    pub fn close_portal(name: &str) -> Vec<u8> {
        named(b'C', b'P', name)
    }

    /// Execute `portal`, returning at most `max_rows` rows (0: all).
    pub fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, portal);
        body.extend_from_slice(&max_rows.to_be_bytes());
        message(b'E', &body)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }

    pub fn flush() -> Vec<u8> {
        message(b'H', &[])
    }

    pub fn copy_data(data: &[u8]) -> Vec<u8> {
        message(b'd', data)
    }

    pub fn copy_done() -> Vec<u8> {
        message(b'c', &[])
    }

    pub fn copy_fail(reason: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, reason);
        message(b'f', &body)
    }

    pub fn terminate() -> Vec<u8> {
        message(b'X', &[])
    }
}

/// One backend message.
#[derive(Clone, PartialEq, Eq)]
pub struct Msg {
    pub tag: u8,
    pub body: Bytes,
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 160;
        let shown = &self.body[..self.body.len().min(SHOWN)];
        write!(
            f,
            "'{}' [{}] {}",
            self.tag as char,
            self.body.len(),
            shown.escape_ascii()
        )?;
        if self.body.len() > SHOWN {
            write!(f, "…")?;
        }
        Ok(())
    }
}

impl Msg {
    pub fn i32_at(&self, offset: usize) -> i32 {
        i32::from_be_bytes(self.body[offset..offset + 4].try_into().expect("4 bytes"))
    }

    /// NUL-terminated strings of the body (ParameterStatus, CommandComplete, …).
    pub fn cstrs(&self) -> Vec<String> {
        let mut parts: Vec<String> = self
            .body
            .split(|b| *b == 0)
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        parts.pop(); // after the last NUL
        parts
    }

    /// ErrorResponse / NoticeResponse field by its code (`b'C'` SQLSTATE, `b'M'`
    /// message, `b'S'` severity, …).
    pub fn field(&self, code: u8) -> Option<String> {
        let mut rest = &self.body[..];
        while let Some((&c, tail)) = rest.split_first() {
            if c == 0 {
                break;
            }
            let end = tail.iter().position(|b| *b == 0)?;
            if c == code {
                return Some(String::from_utf8_lossy(&tail[..end]).into_owned());
            }
            rest = &tail[end + 1..];
        }
        None
    }

    pub fn is_error(&self) -> bool {
        self.tag == b'E'
    }

    /// SQLSTATE of an ErrorResponse / NoticeResponse.
    pub fn sqlstate(&self) -> Option<String> {
        self.field(b'C')
    }

    /// Transaction status of a ReadyForQuery.
    pub fn ready_status(&self) -> u8 {
        assert_eq!(self.tag, b'Z', "not ReadyForQuery: {self:?}");
        self.body[0]
    }

    /// Columns of a DataRow (`None` for NULL).
    pub fn data_row(&self) -> Vec<Option<Vec<u8>>> {
        assert_eq!(self.tag, b'D', "not DataRow: {self:?}");
        let mut b = &self.body[..];
        let n = b.get_i16();
        (0..n)
            .map(|_| {
                let len = b.get_i32();
                if len < 0 {
                    None
                } else {
                    let v = b[..len as usize].to_vec();
                    b.advance(len as usize);
                    Some(v)
                }
            })
            .collect()
    }

    /// (process id, channel, payload) of a NotificationResponse.
    pub fn notification(&self) -> (i32, String, String) {
        assert_eq!(self.tag, b'A', "not NotificationResponse: {self:?}");
        let pid = self.i32_at(0);
        let rest = Msg {
            tag: b'A',
            body: self.body.slice(4..),
        }
        .cstrs();
        (pid, rest[0].clone(), rest[1].clone())
    }
}

/// Tags of a message sequence as a string, e.g. `"1t T2DCZ"`; handy in asserts.
pub fn tags(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.tag as char).collect()
}

/// A raw client connection.
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = within(HANG_GUARD, "TCP connect", TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Connect, send a StartupMessage with `params` and read up to the first
    /// ReadyForQuery (trust auth). Returns the connection and what it read.
    pub async fn startup(addr: SocketAddr, params: &[(&str, &str)]) -> (RawConn, Vec<Msg>) {
        let mut conn = RawConn::connect(addr).await;
        conn.send(&fe::startup(params)).await;
        let msgs = conn.recv_until_ready().await;
        (conn, msgs)
    }

    /// Startup as `postgres` on database `postgres` with `application_name`.
    pub async fn startup_app(addr: SocketAddr, application_name: &str) -> (RawConn, Vec<Msg>) {
        Self::startup(
            addr,
            &[
                ("user", super::origin::SUPERUSER),
                ("database", "postgres"),
                ("application_name", application_name),
            ],
        )
        .await
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .await
            .unwrap_or_else(|e| panic!("write to server: {e}"));
    }

    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        within(HANG_GUARD, "write", self.stream.write_all(bytes)).await
    }

    /// Read exactly one byte (the answer to SSLRequest / GSSENCRequest).
    /// `None` if the server closed the connection.
    pub async fn read_byte(&mut self) -> Option<u8> {
        if self.buf.is_empty() && !self.fill().await {
            return None;
        }
        let b = self.buf[0];
        self.buf.advance(1);
        Some(b)
    }

    /// Bytes received but not yet consumed as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Read more bytes into the buffer; false on EOF or connection reset.
    async fn fill(&mut self) -> bool {
        self.buf.reserve(64 * 1024);
        match within(HANG_GUARD, "read", self.stream.read_buf(&mut self.buf)).await {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("read from server: {e}"),
        }
    }

    /// The next backend message; `None` if the server closed the connection
    /// (cleanly or by reset) at a message boundary.
    pub async fn recv(&mut self) -> Option<Msg> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes"));
                assert!(len >= 4, "backend message with length {len}");
                let total = 1 + len as usize;
                if self.buf.len() >= total {
                    let mut frame = self.buf.split_to(total);
                    let tag = frame[0];
                    frame.advance(5);
                    return Some(Msg {
                        tag,
                        body: frame.freeze(),
                    });
                }
                self.buf.reserve(total - self.buf.len());
            }
            if !self.fill().await {
                assert!(
                    self.buf.is_empty(),
                    "connection closed in the middle of a message ({} bytes buffered)",
                    self.buf.len()
                );
                return None;
            }
        }
    }

    /// Read messages up to and including the first one for which `stop` holds.
    pub async fn recv_until(&mut self, mut stop: impl FnMut(&Msg) -> bool) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            match self.recv().await {
                Some(m) => {
                    let done = stop(&m);
                    out.push(m);
                    if done {
                        return out;
                    }
                }
                None => panic!("connection closed early; received so far: {out:#?}"),
            }
        }
    }

    /// Read up to and including the next ReadyForQuery.
    pub async fn recv_until_ready(&mut self) -> Vec<Msg> {
        self.recv_until(|m| m.tag == b'Z').await
    }

    /// Read everything until the server closes the connection.
    pub async fn recv_until_closed(&mut self) -> Vec<Msg> {
        let mut out = Vec::new();
        while let Some(m) = self.recv().await {
            out.push(m);
        }
        out
    }

    /// Simple query; returns the messages up to and including ReadyForQuery.
    pub async fn simple(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&fe::query(sql)).await;
        self.recv_until_ready().await
    }
}

/// When a golden script step has received everything it waits for.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// This many ReadyForQuery messages.
    Ready(usize),
    /// The first message with this tag.
    Tag(u8),
    /// The server closes the connection.
    Closed,
}

/// One step of a golden script: bytes to send, then what to read.
#[derive(Clone, Debug)]
pub struct Step {
    pub send: Vec<u8>,
    pub until: Until,
}

/// A step sending the concatenation of `messages`.
pub fn step(messages: &[Vec<u8>], until: Until) -> Step {
    Step {
        send: messages.concat(),
        until,
    }
}

/// Run `steps` on a fresh connection to `addr` that starts up with `params`;
/// returns every backend message, startup included.
pub async fn run_script(addr: SocketAddr, params: &[(&str, &str)], steps: &[Step]) -> Vec<Msg> {
    let (mut conn, mut out) = RawConn::startup(addr, params).await;
    for s in steps {
        conn.send(&s.send).await;
        match s.until {
            Until::Ready(n) => {
                for _ in 0..n {
                    out.extend(conn.recv_until_ready().await);
                }
            }
            Until::Tag(tag) => out.extend(conn.recv_until(|m| m.tag == tag).await),
            Until::Closed => out.extend(conn.recv_until_closed().await),
        }
    }
    out
}

/// Both transcripts of a golden script: (direct to the origin, through the proxy).
pub struct Golden {
    pub direct: Vec<Msg>,
    pub proxied: Vec<Msg>,
}

/// Run `steps` directly against the origin, then through `proxy_addr`, with
/// the same startup parameters (`application_name` = `app`).
pub async fn golden(proxy_addr: SocketAddr, app: &str, steps: &[Step]) -> Golden {
    let params = [
        ("user", super::origin::SUPERUSER),
        ("database", "postgres"),
        ("application_name", app),
    ];
    let direct = run_script(super::origin().addr(), &params, steps).await;
    let proxied = run_script(proxy_addr, &params, steps).await;
    Golden { direct, proxied }
}

impl Golden {
    /// Assert both transcripts are byte-for-byte equal, except BackendKeyData
    /// (the proxy issues its own cancel keys), of which each has exactly one.
    pub fn assert_same(&self) {
        for (name, t) in [("direct", &self.direct), ("proxied", &self.proxied)] {
            let keys = t.iter().filter(|m| m.tag == b'K').count();
            assert_eq!(keys, 1, "{name}: expected one BackendKeyData, got {keys}");
        }
        let d: Vec<&Msg> = self.direct.iter().filter(|m| m.tag != b'K').collect();
        let p: Vec<&Msg> = self.proxied.iter().filter(|m| m.tag != b'K').collect();
        if d != p {
            let first = d
                .iter()
                .zip(&p)
                .position(|(a, b)| a != b)
                .unwrap_or(d.len().min(p.len()));
            panic!(
                "golden transcripts differ at message {first} (BackendKeyData excluded)\n\
                 --- direct ({} messages) ---\n{}\n--- through the proxy ({} messages) ---\n{}",
                d.len(),
                render(&d, first),
                p.len(),
                render(&p, first),
            );
        }
    }
}

fn render(msgs: &[&Msg], mark: usize) -> String {
    msgs.iter()
        .enumerate()
        .map(|(i, m)| format!("{}{i:3} {m:?}", if i == mark { ">>" } else { "  " }))
        .collect::<Vec<_>>()
        .join("\n")
}
