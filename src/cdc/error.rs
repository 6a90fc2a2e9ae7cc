//! Why a message of the change stream could not be decoded.

use std::fmt;

/// Bytes that are not a valid message of the replication stream or of
/// pgoutput. Every such error is *definite*: the same bytes will never decode,
/// so the consumer must stop trusting the stream rather than retry.
///
/// `what` names the field being read, prefixed with its message
/// (`"Insert relation OID"`), so the error pinpoints the byte that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ends before the field `what` (which needs `needed` bytes,
    /// `remaining` are left).
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// A string field has no terminating NUL byte.
    Unterminated { what: &'static str },
    /// A string field is not UTF-8 (the replication connection asks for UTF-8).
    InvalidUtf8 { what: &'static str },
    /// A one-byte code (tuple column kind, replica identity, flags…) that the
    /// protocol does not define at that place.
    InvalidByte { what: &'static str, byte: u8 },
    /// A flags field with bits the protocol does not define.
    InvalidFlags { what: &'static str, flags: u32 },
    /// Bytes are left after the last field of a message of type `tag`.
    TrailingBytes { tag: u8, extra: usize },
    /// A message type byte that neither pgoutput nor the replication stream defines.
    UnknownTag(u8),
    /// A pgoutput message this decoder deliberately does not handle: the
    /// two-phase commit messages of protocol version 3 (`b`, `P`, `K`, `r`,
    /// `p`), which pgcache never requests.
    Unsupported(u8),
    /// A streamed-transaction message where the stream does not allow it:
    /// `Stream Start` inside a streamed block, `Stream Stop` outside one, or a
    /// transaction-level message (`Begin`, `Commit`, …) inside one.
    StreamOrder { tag: u8, in_stream: bool },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated {
                what,
                needed,
                remaining,
            } => write!(
                f,
                "message truncated at {what}: needs {needed} bytes, {remaining} left"
            ),
            DecodeError::Unterminated { what } => write!(f, "{what} is not NUL-terminated"),
            DecodeError::InvalidUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            DecodeError::InvalidByte { what, byte } => {
                write!(f, "invalid {what} {}", show_tag(*byte))
            }
            DecodeError::InvalidFlags { what, flags } => {
                write!(f, "unknown {what} {flags:#x}")
            }
            DecodeError::TrailingBytes { tag, extra } => write!(
                f,
                "{extra} unexpected bytes after the end of a message of type {}",
                show_tag(*tag)
            ),
            DecodeError::UnknownTag(tag) => write!(f, "unknown message type {}", show_tag(*tag)),
            DecodeError::Unsupported(tag) => write!(
                f,
                "unsupported pgoutput message type {} (two-phase commit is not requested)",
                show_tag(*tag)
            ),
            DecodeError::StreamOrder { tag, in_stream } => {
                let place = if *in_stream {
                    "inside a streamed block"
                } else {
                    "outside a streamed block"
                };
                write!(f, "message type {} is not allowed {place}", show_tag(*tag))
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// `'I'` for printable bytes, the number otherwise.
fn show_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        tag.to_string()
    }
}
