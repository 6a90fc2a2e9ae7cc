//! Cached results as the origin sent them, and hits built from them.
//!
//! A result is captured from the origin's own reply to a miss (ADR 011): the
//! bytes are exactly what the origin sends a session with the same settings,
//! role and result formats, so a hit replays them. [`parse_reply`] checks a
//! captured reply and keeps its parts; [`write_hit`] builds the reply to a
//! repeated request. Pure: bytes in, bytes out.

use bytes::{BufMut, Bytes, BytesMut};

/// The parts of a reply kept for hits, in one buffer (one allocation per
/// entry): `[ParameterDescription RowDescription] [RowDescription] DataRow*
/// CommandComplete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedResult {
    bytes: Bytes,
    /// Length of the statement's description at the front, as a `Describe`
    /// of the statement got it (`ParameterDescription`, then a
    /// `RowDescription` whose format codes are all text); 0 when the request
    /// did not describe its statement.
    statement_len: usize,
    /// Length of the portal's `RowDescription` after it (0: none — the
    /// request asked for none, as an extended-protocol Execute without
    /// Describe).
    description_len: usize,
    /// Length of the `DataRow`s after it.
    rows_len: usize,
    pub row_count: u64,
}

impl CapturedResult {
    pub fn new(
        row_description: Option<&[u8]>,
        rows: &[u8],
        row_count: u64,
        complete: &[u8],
    ) -> CapturedResult {
        CapturedResult::with_statement(&[], row_description, rows, row_count, complete)
    }

    /// With the statement's description (`ParameterDescription` and
    /// `RowDescription`, back to back, as the origin sent them; empty for
    /// none).
    pub fn with_statement(
        statement: &[u8],
        row_description: Option<&[u8]>,
        rows: &[u8],
        row_count: u64,
        complete: &[u8],
    ) -> CapturedResult {
        let rd = row_description.unwrap_or_default();
        let mut bytes =
            BytesMut::with_capacity(statement.len() + rd.len() + rows.len() + complete.len());
        bytes.put_slice(statement);
        bytes.put_slice(rd);
        bytes.put_slice(rows);
        bytes.put_slice(complete);
        CapturedResult {
            bytes: bytes.freeze(),
            statement_len: statement.len(),
            description_len: rd.len(),
            rows_len: rows.len(),
            row_count,
        }
    }

    /// The statement's description (`ParameterDescription`
    /// `RowDescription`), when the request described its statement.
    pub fn statement_description(&self) -> Option<&[u8]> {
        (self.statement_len > 0).then(|| &self.bytes[..self.statement_len])
    }

    /// The portal's `RowDescription`, when the request asked for one.
    pub fn row_description(&self) -> Option<&[u8]> {
        (self.description_len > 0)
            .then(|| &self.bytes[self.statement_len..self.statement_len + self.description_len])
    }

    /// Every `DataRow`, in order, back to back.
    pub fn rows(&self) -> &[u8] {
        let start = self.statement_len + self.description_len;
        &self.bytes[start..start + self.rows_len]
    }

    /// [`Self::rows`], sharing the reply's buffer.
    pub fn rows_bytes(&self) -> Bytes {
        let start = self.statement_len + self.description_len;
        self.bytes.slice(start..start + self.rows_len)
    }

    /// `CommandComplete` (`SELECT n`).
    pub fn complete(&self) -> &[u8] {
        &self.bytes[self.statement_len + self.description_len + self.rows_len..]
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Why a captured reply is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The reply is cut or a length field is wrong.
    Malformed,
    /// A message a cached reply cannot replay (an error, a notice, a
    /// parameter change, a notification, a suspended portal, COPY, …).
    Unexpected(u8),
    /// Messages in an order a single `SELECT` does not produce.
    OutOfOrder(u8),
    /// No `CommandComplete`, or not for a `SELECT`.
    NotASelect,
    /// The session is not idle after the reply (`ReadyForQuery` status).
    NotIdle,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Malformed => f.write_str("malformed reply"),
            Rejected::Unexpected(t) => write!(f, "reply contains message '{}'", *t as char),
            Rejected::OutOfOrder(t) => write!(f, "message '{}' out of order", *t as char),
            Rejected::NotASelect => f.write_str("reply is not a complete SELECT"),
            Rejected::NotIdle => f.write_str("session not idle after the reply"),
        }
    }
}

/// Check a reply captured from the origin — `[ParseComplete…]
/// [BindComplete] [ParameterDescription RowDescription | RowDescription]
/// DataRow* CommandComplete ReadyForQuery(I)` — and keep its parts. A
/// `RowDescription` right after a `ParameterDescription` is the statement's
/// (a `Describe` of the statement); otherwise the portal's.
pub fn parse_reply(reply: &[u8]) -> Result<CapturedResult, Rejected> {
    // Stages: 0 = before BindComplete, 1 = before RowDescription,
    // 2 = rows, 3 = after CommandComplete, 4 = after ReadyForQuery,
    // 5 = right after ParameterDescription.
    let mut stage = 0;
    let mut pos = 0;
    let mut statement: Option<(usize, usize)> = None;
    let mut row_description: Option<&[u8]> = None;
    let (mut rows_start, mut rows_end, mut row_count) = (None, 0, 0u64);
    let mut complete = None;
    while pos < reply.len() {
        let (tag, len) = message_at(reply, pos).ok_or(Rejected::Malformed)?;
        let msg = &reply[pos..pos + len];
        match tag {
            b'1' if stage == 0 => {}
            b'2' if stage == 0 => stage = 1,
            b't' if stage == 1 => {
                statement = Some((pos, pos + len));
                stage = 5;
            }
            b'T' if stage == 5 => {
                statement = statement.map(|(start, _)| (start, pos + len));
                stage = 2;
            }
            b'T' if stage <= 1 => {
                row_description = Some(msg);
                stage = 2;
            }
            b'D' if stage <= 2 => {
                stage = 2;
                rows_start.get_or_insert(pos);
                if rows_end != 0 && rows_end != pos {
                    return Err(Rejected::OutOfOrder(tag));
                }
                rows_end = pos + len;
                row_count += 1;
            }
            b'C' if stage <= 2 => {
                if !msg[5..].starts_with(b"SELECT ") {
                    return Err(Rejected::NotASelect);
                }
                complete = Some(msg);
                stage = 3;
            }
            b'Z' if stage == 3 => {
                if msg.get(5) != Some(&b'I') || len != 6 {
                    return Err(Rejected::NotIdle);
                }
                stage = 4;
            }
            b'1' | b'2' | b't' | b'T' | b'D' | b'C' | b'Z' => {
                return Err(Rejected::OutOfOrder(tag));
            }
            other => return Err(Rejected::Unexpected(other)),
        }
        pos += len;
    }
    if stage != 4 {
        return Err(Rejected::NotASelect);
    }
    let complete = complete.ok_or(Rejected::NotASelect)?;
    let rows = match rows_start {
        Some(start) => &reply[start..rows_end],
        None => &[],
    };
    let statement = match statement {
        Some((start, end)) => &reply[start..end],
        None => &[],
    };
    Ok(CapturedResult::with_statement(
        statement,
        row_description,
        rows,
        row_count,
        complete,
    ))
}

/// For each `DataRow` in `rows` (as [`CapturedResult::rows`] holds them),
/// the fields at `positions` (`None` for NULL). `None` when a row is
/// malformed or has no such field.
pub fn fields_at<'a>(rows: &'a [u8], positions: &[usize]) -> Option<Vec<Vec<Option<&'a [u8]>>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < rows.len() {
        let (tag, len) = message_at(rows, pos)?;
        if tag != b'D' {
            return None;
        }
        let msg = &rows[pos + 5..pos + len];
        let count = usize::from(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]));
        let mut fields = Vec::with_capacity(count);
        let mut at = 2;
        for _ in 0..count {
            let flen = i32::from_be_bytes(msg.get(at..at + 4)?.try_into().ok()?);
            at += 4;
            if flen < 0 {
                fields.push(None);
            } else {
                let flen = usize::try_from(flen).ok()?;
                fields.push(Some(msg.get(at..at + flen)?));
                at += flen;
            }
        }
        out.push(
            positions
                .iter()
                .map(|&p| fields.get(p).copied())
                .collect::<Option<Vec<_>>>()?,
        );
        pos += len;
    }
    Some(out)
}

/// The type byte and total length of the message at `pos`, if it is whole.
fn message_at(buf: &[u8], pos: usize) -> Option<(u8, usize)> {
    let tag = *buf.get(pos)?;
    let len = u32::from_be_bytes(buf.get(pos + 1..pos + 5)?.try_into().ok()?);
    let total = usize::try_from(len).ok()?.checked_add(1)?;
    (len >= 4 && buf.len() - pos >= total).then_some((tag, total))
}

/// `ReadyForQuery`, idle.
pub const READY_IDLE: &[u8] = b"Z\0\0\0\x05I";
/// `ParseComplete`.
pub const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";
/// `BindComplete`.
pub const BIND_COMPLETE: &[u8] = b"2\0\0\0\x04";

/// What a request asked to be described, besides its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Describe {
    /// Nothing (an extended-protocol Execute alone).
    Nothing,
    /// The portal (`RowDescription`; a simple query's too).
    Portal,
    /// The statement, after its Bind (`ParameterDescription`
    /// `RowDescription`).
    Statement,
}

impl CapturedResult {
    /// Whether this result holds the description `describe` asks for.
    pub fn describes(&self, describe: Describe) -> bool {
        match describe {
            Describe::Nothing => true,
            Describe::Portal => self.description_len > 0,
            Describe::Statement => self.statement_len > 0,
        }
    }
}

/// Append the reply to one cached statement: for the extended protocol
/// `BindComplete` first; the description asked for (the caller checks it is
/// held, [`CapturedResult::describes`]); the rows; `CommandComplete`.
/// `ReadyForQuery` is the caller's.
pub fn write_hit(
    out: &mut BytesMut,
    result: &CapturedResult,
    bind_complete: bool,
    describe: Describe,
) {
    out.reserve(BIND_COMPLETE.len() + result.len() + READY_IDLE.len());
    if bind_complete {
        out.put_slice(BIND_COMPLETE);
    }
    let described = result.statement_len + result.description_len;
    match describe {
        Describe::Nothing => {}
        Describe::Portal => out.put_slice(&result.bytes[result.statement_len..described]),
        Describe::Statement => out.put_slice(&result.bytes[..result.statement_len]),
    }
    out.put_slice(&result.bytes[described..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn simple_reply(rows: usize) -> Vec<u8> {
        let mut r = msg(
            b'T',
            b"\0\x01a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        );
        for i in 0..rows {
            r.extend(msg(b'D', &[0, 1, 0, 0, 0, 1, b'0' + i as u8]));
        }
        r.extend(msg(b'C', format!("SELECT {rows}\0").as_bytes()));
        r.extend_from_slice(READY_IDLE);
        r
    }

    #[test]
    fn simple_reply_round_trip() {
        let reply = simple_reply(3);
        let c = parse_reply(&reply).unwrap();
        assert_eq!(c.row_count, 3);
        let mut out = BytesMut::new();
        write_hit(&mut out, &c, false, Describe::Portal);
        out.extend_from_slice(READY_IDLE);
        assert_eq!(&out[..], &reply[..]);
    }

    #[test]
    fn extended_reply_round_trip() {
        let mut reply = msg(b'1', b"");
        reply.extend_from_slice(BIND_COMPLETE);
        reply.extend(simple_reply(2));
        let c = parse_reply(&reply).unwrap();
        let mut out = BytesMut::new();
        write_hit(&mut out, &c, true, Describe::Portal);
        out.extend_from_slice(READY_IDLE);
        // the hit does not repeat ParseComplete
        assert_eq!(&out[..], &reply[5..]);
    }

    #[test]
    fn statement_described_after_bind() {
        // Parse, Bind, Describe statement, Execute, Sync (tokio-postgres'
        // query_typed): the statement's description comes back as it was.
        let t = msg(b't', b"\0\x01\0\0\0\x17");
        let mut reply = msg(b'1', b"");
        reply.extend_from_slice(BIND_COMPLETE);
        reply.extend_from_slice(&t);
        reply.extend(simple_reply(2));
        let c = parse_reply(&reply).unwrap();
        assert!(c.describes(Describe::Statement));
        assert!(!c.describes(Describe::Portal));
        assert!(c.statement_description().unwrap().starts_with(&t));
        assert_eq!(c.row_count, 2);
        let mut out = BytesMut::new();
        write_hit(&mut out, &c, true, Describe::Statement);
        out.extend_from_slice(READY_IDLE);
        assert_eq!(&out[..], &reply[5..]);
        // Without the description: BindComplete, rows, CommandComplete.
        let mut out = BytesMut::new();
        write_hit(&mut out, &c, true, Describe::Nothing);
        let body = simple_reply(2);
        let rd_len =
            1 + usize::try_from(u32::from_be_bytes(body[1..5].try_into().unwrap())).unwrap();
        assert_eq!(&out[..5], BIND_COMPLETE);
        assert_eq!(&out[5..], &body[rd_len..body.len() - READY_IDLE.len()]);
        // A portal's description is not the statement's.
        let portal = parse_reply(&simple_reply(1)).unwrap();
        assert!(portal.describes(Describe::Portal));
        assert!(!portal.describes(Describe::Statement));
        // The parameter description only right after BindComplete, and
        // followed by the statement's RowDescription.
        let mut early = t.clone();
        early.extend(simple_reply(1));
        assert!(parse_reply(&early).is_err());
        let mut no_rd = msg(b'1', b"");
        no_rd.extend_from_slice(BIND_COMPLETE);
        no_rd.extend_from_slice(&t);
        no_rd.extend(msg(b'C', b"SELECT 0\0"));
        no_rd.extend_from_slice(READY_IDLE);
        assert!(parse_reply(&no_rd).is_err());
    }

    #[test]
    fn fields_of_rows() {
        let mut rows = msg(b'D', &[0, 2, 0, 0, 0, 1, b'7', 0xff, 0xff, 0xff, 0xff]);
        rows.extend(msg(b'D', &[0, 2, 0, 0, 0, 2, b'1', b'2', 0, 0, 0, 1, b'x']));
        let got = fields_at(&rows, &[0, 1]).unwrap();
        assert_eq!(got[0], vec![Some(&b"7"[..]), None]);
        assert_eq!(got[1], vec![Some(&b"12"[..]), Some(&b"x"[..])]);
        assert_eq!(fields_at(&rows, &[2]), None);
        assert_eq!(fields_at(&rows[..rows.len() - 1], &[0]), None);
        assert_eq!(fields_at(&[], &[0]), Some(vec![]));
    }

    #[test]
    fn empty_result() {
        let c = parse_reply(&simple_reply(0)).unwrap();
        assert_eq!(c.row_count, 0);
        assert!(c.rows().is_empty());
        assert!(c.row_description().is_some());
        assert!(c.complete().starts_with(b"C"));
    }

    #[test]
    fn rejects() {
        let mut with_notice = simple_reply(1);
        with_notice.splice(0..0, msg(b'N', b"SWARNING\0\0"));
        assert_eq!(parse_reply(&with_notice), Err(Rejected::Unexpected(b'N')));
        let mut error = msg(b'E', b"SERROR\0\0");
        error.extend_from_slice(READY_IDLE);
        assert_eq!(parse_reply(&error), Err(Rejected::Unexpected(b'E')));
        let mut in_txn = simple_reply(1);
        let n = in_txn.len();
        in_txn[n - 1] = b'T';
        assert_eq!(parse_reply(&in_txn), Err(Rejected::NotIdle));
        let r = simple_reply(2);
        assert_eq!(parse_reply(&r[..r.len() - 1]), Err(Rejected::Malformed));
        let mut insert = msg(b'C', b"INSERT 0 1\0");
        insert.extend_from_slice(READY_IDLE);
        assert_eq!(parse_reply(&insert), Err(Rejected::NotASelect));
        let mut suspended = simple_reply(1);
        let at = suspended.len() - 6 - 13;
        suspended.splice(at..at + 13, msg(b's', b""));
        assert!(parse_reply(&suspended).is_err());
        assert!(parse_reply(b"").is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let reply = simple_reply(2);
        for cut in 0..reply.len() {
            let _ = parse_reply(&reply[..cut]);
            let mut bad = reply.clone();
            bad[cut] ^= 0xff;
            let _ = parse_reply(&bad);
        }
    }
}
