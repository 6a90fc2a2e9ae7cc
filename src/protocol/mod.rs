//! Sans-IO PostgreSQL wire codec (protocol 3.0).
//!
//! This module owns the byte-level rules of the protocol: startup packets,
//! message framing in both directions, and the handful of messages the proxy
//! writes itself. It never touches a socket and imports no async runtime, so
//! every rule is unit-tested with plain bytes.
//!
//! The framing is *streaming*: [`frame::FrameScanner`] announces each message
//! as soon as its 5-byte header is visible and lets the caller pass its body
//! on in pieces, so a 1 GB `DataRow` or a result of many rows flows through a
//! fixed-size buffer. Messages the proxy must look inside (`BackendKeyData`,
//! `ReadyForQuery`, …) are only reported once complete.

pub mod frame;
pub mod frontend;
pub mod message;
pub mod sqlstate;
pub mod startup;

use std::fmt;

/// A violation of the wire protocol by the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A message's length field is below the minimum of 4.
    InvalidLength { tag: u8, len: i32 },
    /// A message is longer than the configured limit.
    TooLarge { tag: u8, len: usize, max: usize },
    /// A message type byte that the protocol does not define for this direction.
    UnknownMessageType(u8),
    /// A startup packet whose length is outside 8..=10000 bytes.
    InvalidStartupLength(i32),
    /// A startup packet that could not be decoded.
    MalformedStartup(&'static str),
    /// A message body that could not be decoded.
    Malformed { tag: u8, what: &'static str },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::InvalidLength { tag, len } => {
                write!(
                    f,
                    "invalid message length {len} for message type {}",
                    show_tag(*tag)
                )
            }
            ProtocolError::TooLarge { tag, len, max } => write!(
                f,
                "message of type {} is {len} bytes, larger than the limit of {max} bytes",
                show_tag(*tag)
            ),
            ProtocolError::UnknownMessageType(tag) => {
                write!(f, "invalid frontend message type {}", show_tag(*tag))
            }
            ProtocolError::InvalidStartupLength(len) => {
                write!(f, "invalid length of startup packet: {len}")
            }
            ProtocolError::MalformedStartup(what) => write!(f, "invalid startup packet: {what}"),
            ProtocolError::Malformed { tag, what } => {
                write!(f, "malformed message of type {}: {what}", show_tag(*tag))
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// `'Q'` for printable tags, the number otherwise (as PostgreSQL reports them).
fn show_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        tag.to_string()
    }
}
