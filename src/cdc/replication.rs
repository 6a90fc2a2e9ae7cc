//! The `CopyData` messages of a `START_REPLICATION` stream around pgoutput.
//!
//! After `START_REPLICATION SLOT … LOGICAL …` the connection is in COPY BOTH
//! mode. The server sends `XLogData` (`w`, carrying one pgoutput message) and
//! `Primary keepalive` (`k`); the client sends `Standby status update` (`r`)
//! to report how far it has written, flushed and applied. These functions
//! take and produce the `CopyData` *payloads* (the bytes after the `d`
//! header); the transport owns the sockets.

use bytes::Bytes;

use super::error::DecodeError;
use super::reader::Reader;
use super::wal::{Lsn, Timestamp};

/// A message the server sends on the replication stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// `w`
    XLogData(XLogData),
    /// `k`
    PrimaryKeepalive(PrimaryKeepalive),
}

/// `w`: a piece of the decoded WAL, for logical replication one pgoutput
/// message (decode [`XLogData::data`] with [`pgoutput`](super::pgoutput)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XLogData {
    /// Where the data starts in the WAL (0 for messages, such as `Relation`,
    /// that have no position of their own).
    pub wal_start: Lsn,
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when it sent the message.
    pub send_time: Timestamp,
    /// The payload, a slice of the received message.
    pub data: Bytes,
}

/// `k`: the server is alive; says how far its WAL reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when it sent the message.
    pub send_time: Timestamp,
    /// The client must answer with a [`StandbyStatusUpdate`] at once, or be
    /// disconnected after `wal_sender_timeout`.
    pub reply_requested: bool,
}

/// `r`: the client's progress, sent periodically and whenever a keepalive
/// asks. The server may recycle WAL (and advance the slot) up to `flush`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    /// The last WAL byte + 1 received and written.
    pub write: Lsn,
    /// The last WAL byte + 1 durably applied: the slot's confirmed position.
    pub flush: Lsn,
    /// The last WAL byte + 1 applied.
    pub apply: Lsn,
    /// The client's clock when it sends the update.
    pub client_time: Timestamp,
    /// Ask the server to answer with a keepalive at once.
    pub reply_requested: bool,
}

impl ServerMessage {
    /// Decodes one `CopyData` payload the server sent.
    pub fn decode(payload: &Bytes) -> Result<ServerMessage, DecodeError> {
        let mut r = Reader::new(payload);
        let tag = r.u8("CopyData message type")?;
        let message = match tag {
            b'w' => ServerMessage::XLogData(XLogData {
                wal_start: r.lsn("XLogData start LSN")?,
                wal_end: r.lsn("XLogData end LSN")?,
                send_time: r.timestamp("XLogData send time")?,
                data: r.rest(),
            }),
            b'k' => ServerMessage::PrimaryKeepalive(PrimaryKeepalive {
                wal_end: r.lsn("Primary keepalive WAL end")?,
                send_time: r.timestamp("Primary keepalive send time")?,
                reply_requested: r.bool("Primary keepalive reply flag")?,
            }),
            _ => return Err(DecodeError::UnknownTag(tag)),
        };
        r.finish(tag)?;
        Ok(message)
    }
}

impl StandbyStatusUpdate {
    /// Length of the encoded payload.
    pub const LEN: usize = 34;

    /// The `CopyData` payload for this update.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[0] = b'r';
        out[1..9].copy_from_slice(&self.write.0.to_be_bytes());
        out[9..17].copy_from_slice(&self.flush.0.to_be_bytes());
        out[17..25].copy_from_slice(&self.apply.0.to_be_bytes());
        out[25..33].copy_from_slice(&self.client_time.0.to_be_bytes());
        out[33] = u8::from(self.reply_requested);
        out
    }
}
