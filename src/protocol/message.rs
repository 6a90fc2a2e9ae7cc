//! Messages the proxy builds or reads itself.

use super::sqlstate::SqlState;
use super::startup::CancelKey;

/// Severity of an `ErrorResponse` the proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends after this message.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// Append an `ErrorResponse` with severity (both `S` and `V`), SQLSTATE and
/// message to `out`.
pub fn error_response(out: &mut Vec<u8>, severity: Severity, code: SqlState, message: &str) {
    let start = out.len();
    out.push(b'E');
    out.extend_from_slice(&[0; 4]);
    for (field, value) in [
        (b'S', severity.as_str()),
        (b'V', severity.as_str()),
        (b'C', code.code()),
        (b'M', message),
    ] {
        out.push(field);
        // A NUL inside a field would end it early; PostgreSQL never sends one.
        out.extend(value.bytes().filter(|&b| b != 0));
        out.push(0);
    }
    out.push(0);
    patch_len(out, start);
}

/// Append a `BackendKeyData` carrying `key`.
pub fn backend_key_data(out: &mut Vec<u8>, key: CancelKey) {
    out.push(b'K');
    out.extend_from_slice(&12i32.to_be_bytes());
    out.extend_from_slice(&key.pid.to_be_bytes());
    out.extend_from_slice(&key.secret.to_be_bytes());
}

/// Append a `NegotiateProtocolVersion`: the newest protocol version the
/// server supports (as in a `StartupMessage`, e.g. 3.0 = 196608) and the
/// protocol options (`_pq_.…`) it did not recognise.
pub fn negotiate_protocol_version(out: &mut Vec<u8>, newest: i32, unrecognized: &[&str]) {
    let start = out.len();
    out.push(b'v');
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&newest.to_be_bytes());
    out.extend_from_slice(&(unrecognized.len() as i32).to_be_bytes());
    for name in unrecognized {
        out.extend(name.bytes().filter(|&b| b != 0));
        out.push(0);
    }
    patch_len(out, start);
}

/// Decode the body of a `BackendKeyData` (the whole message, type byte included).
pub fn parse_backend_key_data(msg: &[u8]) -> Option<CancelKey> {
    let body = msg.get(5..13)?;
    Some(CancelKey {
        pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
        secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
    })
}

/// Transaction status carried by `ReadyForQuery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    Idle,
    InTransaction,
    Failed,
}

/// Decode a whole `ReadyForQuery` message.
pub fn parse_ready_for_query(msg: &[u8]) -> Option<TransactionStatus> {
    match msg.get(5)? {
        b'I' => Some(TransactionStatus::Idle),
        b'T' => Some(TransactionStatus::InTransaction),
        b'E' => Some(TransactionStatus::Failed),
        _ => None,
    }
}

/// Append a `Terminate`.
pub fn terminate(out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'X', 0, 0, 0, 4]);
}

/// Fields of an `ErrorResponse` or `NoticeResponse` (whole message), as
/// `(field type, value)` pairs; `None` if malformed.
pub fn parse_error_fields(msg: &[u8]) -> Option<Vec<(u8, String)>> {
    let mut rest = msg.get(5..)?;
    let mut fields = Vec::new();
    loop {
        let (&kind, after) = rest.split_first()?;
        if kind == 0 {
            return Some(fields);
        }
        let nul = after.iter().position(|&b| b == 0)?;
        fields.push((kind, String::from_utf8_lossy(&after[..nul]).into_owned()));
        rest = &after[nul + 1..];
    }
}

fn patch_len(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 1) as i32;
    out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_layout() {
        let mut out = Vec::new();
        error_response(
            &mut out,
            Severity::Fatal,
            SqlState::PROTOCOL_VIOLATION,
            "bad",
        );
        assert_eq!(out[0], b'E');
        let len = i32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize;
        assert_eq!(len + 1, out.len());
        assert_eq!(
            parse_error_fields(&out).unwrap(),
            vec![
                (b'S', "FATAL".to_string()),
                (b'V', "FATAL".to_string()),
                (b'C', "08P01".to_string()),
                (b'M', "bad".to_string()),
            ]
        );
    }

    #[test]
    fn backend_key_data_round_trips() {
        let key = CancelKey { pid: 7, secret: -9 };
        let mut out = Vec::new();
        backend_key_data(&mut out, key);
        assert_eq!(out.len(), 13);
        assert_eq!(parse_backend_key_data(&out), Some(key));
        assert_eq!(parse_backend_key_data(&out[..12]), None);
    }

    #[test]
    fn negotiate_protocol_version_layout() {
        let mut out = Vec::new();
        negotiate_protocol_version(&mut out, 196_608, &[]);
        assert_eq!(out, [b'v', 0, 0, 0, 12, 0, 3, 0, 0, 0, 0, 0, 0]);
        out.clear();
        negotiate_protocol_version(&mut out, 196_608, &["_pq_.x"]);
        assert_eq!(&out[9..13], &1i32.to_be_bytes());
        assert_eq!(&out[13..], b"_pq_.x\0");
        assert_eq!(
            i32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize + 1,
            out.len()
        );
    }

    #[test]
    fn ready_for_query_status() {
        assert_eq!(
            parse_ready_for_query(&[b'Z', 0, 0, 0, 5, b'T']),
            Some(TransactionStatus::InTransaction)
        );
        assert_eq!(parse_ready_for_query(&[b'Z', 0, 0, 0, 5, b'x']), None);
        assert_eq!(parse_ready_for_query(&[b'Z', 0, 0, 0, 5]), None);
    }

    #[test]
    fn malformed_error_fields() {
        assert_eq!(parse_error_fields(&[b'E', 0, 0, 0, 6, b'M']), None);
        assert_eq!(parse_error_fields(b"E"), None);
    }
}
