//! The untyped first packet of a connection: `Int32 length + Int32 code + body`.

use super::ProtocolError;

/// `SSLRequest` code.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// `GSSENCRequest` code.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// `CancelRequest` code.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol 3.0 as sent in a `StartupMessage`.
pub const PROTOCOL_3_0: i32 = 196_608;

/// PostgreSQL's own bound on startup packets (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET_LEN: usize = 10_000;

/// A decoded startup packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel(CancelKey),
    /// A `StartupMessage`; `params` in the order sent.
    Startup {
        major: u16,
        minor: u16,
        params: Vec<(String, String)>,
    },
}

/// A process id + secret key pair as carried by `BackendKeyData` and `CancelRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelKey {
    pub pid: i32,
    pub secret: i32,
}

/// How many bytes the startup packet at the front of `buf` occupies, once
/// its length is visible; `None` until 4 bytes arrived.
pub fn packet_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let Some(len) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = i32::from_be_bytes(*len);
    match usize::try_from(len) {
        Ok(n) if (8..=MAX_STARTUP_PACKET_LEN).contains(&n) => Ok(Some(n)),
        _ => Err(ProtocolError::InvalidStartupLength(len)),
    }
}

/// Decode one complete startup packet (length word included).
pub fn decode(packet: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let (Some(_), Some(code)) = (packet.first_chunk::<4>(), packet.get(4..8)) else {
        return Err(ProtocolError::MalformedStartup("too short"));
    };
    let code = i32::from_be_bytes([code[0], code[1], code[2], code[3]]);
    let body = &packet[8..];
    match code {
        SSL_REQUEST_CODE => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            let (Some(pid), Some(secret)) = (body.get(0..4), body.get(4..8)) else {
                return Err(ProtocolError::MalformedStartup("short cancel request"));
            };
            Ok(StartupPacket::Cancel(CancelKey {
                pid: i32::from_be_bytes([pid[0], pid[1], pid[2], pid[3]]),
                secret: i32::from_be_bytes([secret[0], secret[1], secret[2], secret[3]]),
            }))
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            Ok(StartupPacket::Startup {
                major,
                minor,
                params: decode_params(body)?,
            })
        }
    }
}

/// `name\0value\0 … \0`
fn decode_params(body: &[u8]) -> Result<Vec<(String, String)>, ProtocolError> {
    let mut params = Vec::new();
    let mut rest = body;
    loop {
        let (name, after) = cstr(rest)?;
        if name.is_empty() {
            return Ok(params);
        }
        let (value, after) = cstr(after)?;
        params.push((name.to_owned(), value.to_owned()));
        rest = after;
    }
}

fn cstr(buf: &[u8]) -> Result<(&str, &[u8]), ProtocolError> {
    let nul = buf
        .iter()
        .position(|&b| b == 0)
        .ok_or(ProtocolError::MalformedStartup("unterminated string"))?;
    let s = std::str::from_utf8(&buf[..nul])
        .map_err(|_| ProtocolError::MalformedStartup("parameter is not valid UTF-8"))?;
    Ok((s, &buf[nul + 1..]))
}

/// Encode a `CancelRequest` for `key`.
pub fn encode_cancel_request(key: CancelKey) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&16i32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    out[8..12].copy_from_slice(&key.pid.to_be_bytes());
    out[12..16].copy_from_slice(&key.secret.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as i32).to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn ssl_and_gss_requests() {
        let ssl = packet(SSL_REQUEST_CODE, b"");
        assert_eq!(packet_len(&ssl).unwrap(), Some(8));
        assert_eq!(decode(&ssl).unwrap(), StartupPacket::SslRequest);
        assert_eq!(
            decode(&packet(GSSENC_REQUEST_CODE, b"")).unwrap(),
            StartupPacket::GssEncRequest
        );
    }

    #[test]
    fn startup_message_parameters_in_order() {
        let p = packet(
            PROTOCOL_3_0,
            b"user\0alice\0database\0shop\0options\0-c x=1\0\0",
        );
        assert_eq!(
            decode(&p).unwrap(),
            StartupPacket::Startup {
                major: 3,
                minor: 0,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "shop".into()),
                    ("options".into(), "-c x=1".into()),
                ]
            }
        );
    }

    #[test]
    fn cancel_request_round_trips() {
        let key = CancelKey {
            pid: 4242,
            secret: -17,
        };
        let bytes = encode_cancel_request(key);
        assert_eq!(packet_len(&bytes).unwrap(), Some(16));
        assert_eq!(decode(&bytes).unwrap(), StartupPacket::Cancel(key));
    }

    #[test]
    fn bad_packets_are_errors_not_panics() {
        assert!(packet_len(&[0, 0, 0, 4]).is_err());
        assert!(packet_len(&[0, 1, 0, 0]).is_err());
        assert!(packet_len(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(packet_len(&[0, 0]).unwrap(), None);
        assert!(decode(&packet(PROTOCOL_3_0, b"user\0alice")).is_err());
        assert!(decode(&packet(PROTOCOL_3_0, b"user\0\xff\0\0")).is_err());
        assert!(decode(&packet(CANCEL_REQUEST_CODE, b"\0\0")).is_err());
        assert!(decode(&[0, 0, 0]).is_err());
    }
}
