//! Decoder for pgoutput, PostgreSQL's logical replication output plugin.
//!
//! One `XLogData` payload of a `START_REPLICATION … LOGICAL` stream (see
//! [`replication`](super::replication)) is one pgoutput message; [`decode`]
//! turns it into a [`LogicalMessage`]. The formats are those of the
//! PostgreSQL documentation, "Logical Replication Message Formats", one file
//! per message, named after it.
//!
//! The target is protocol version 1 (`proto_version '1'`, what pgcache
//! requests): a transaction arrives whole, after it committed, as `Begin`,
//! changes, `Commit`. The streamed-transaction messages of version 2 are
//! decoded too, through a [`Decoder`] that knows whether it is inside a
//! streamed block (where messages carry an extra Xid); the two-phase messages
//! of version 3 are reported as [`DecodeError::Unsupported`]. See
//! `docs/adr/010-pgoutput-decoder.md`.
//!
//! Decoding is pure: no I/O, no runtime, no state beyond the [`Decoder`]'s one
//! flag. Tuples are not interpreted here; their values stay the bytes
//! PostgreSQL sent, as [`Bytes`] slices of the payload (no copy). Any input,
//! however malformed, yields a value or a [`DecodeError`], never a panic.

mod begin;
mod commit;
mod delete;
mod insert;
mod message;
mod origin;
mod relation;
mod stream;
mod truncate;
mod tuple;
mod type_msg;
mod update;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use self::begin::Begin;
pub use self::commit::Commit;
pub use self::delete::Delete;
pub use self::insert::Insert;
pub use self::message::Message;
pub use self::origin::Origin;
pub use self::relation::{Relation, RelationColumn};
pub use self::stream::{StreamAbort, StreamCommit, StreamStart};
pub use self::truncate::Truncate;
pub use self::tuple::{ColumnValue, Tuple};
pub use self::type_msg::Type;
pub use self::update::{OldTuple, Update};
pub use crate::catalog::{Oid, ReplicaIdentity};
pub use crate::cdc::error::DecodeError;
pub use crate::cdc::wal::{Lsn, Timestamp, Xid};

use crate::cdc::reader::Reader;

/// One decoded pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogicalMessage {
    /// `B`
    Begin(Begin),
    /// `C`
    Commit(Commit),
    /// `O`
    Origin(Origin),
    /// `R`
    Relation(Relation),
    /// `Y`
    Type(Type),
    /// `I`
    Insert(Insert),
    /// `U`
    Update(Update),
    /// `D`
    Delete(Delete),
    /// `T`
    Truncate(Truncate),
    /// `M`
    Message(Message),
    /// `S` (protocol 2+)
    StreamStart(StreamStart),
    /// `E` (protocol 2+): closes the block opened by the last `Stream Start`.
    StreamStop,
    /// `c` (protocol 2+)
    StreamCommit(StreamCommit),
    /// `A` (protocol 2+)
    StreamAbort(StreamAbort),
}

impl LogicalMessage {
    /// The message's type byte.
    pub fn tag(&self) -> u8 {
        match self {
            LogicalMessage::Begin(_) => b'B',
            LogicalMessage::Commit(_) => b'C',
            LogicalMessage::Origin(_) => b'O',
            LogicalMessage::Relation(_) => b'R',
            LogicalMessage::Type(_) => b'Y',
            LogicalMessage::Insert(_) => b'I',
            LogicalMessage::Update(_) => b'U',
            LogicalMessage::Delete(_) => b'D',
            LogicalMessage::Truncate(_) => b'T',
            LogicalMessage::Message(_) => b'M',
            LogicalMessage::StreamStart(_) => b'S',
            LogicalMessage::StreamStop => b'E',
            LogicalMessage::StreamCommit(_) => b'c',
            LogicalMessage::StreamAbort(_) => b'A',
        }
    }
}

/// Decodes one pgoutput message sent outside a streamed block: every message
/// of protocol version 1, and the version-2 stream control messages
/// themselves. Use a [`Decoder`] when the stream may contain streamed
/// transactions.
pub fn decode(payload: &Bytes) -> Result<LogicalMessage, DecodeError> {
    decode_message(payload, false)
}

/// Decodes a sequence of pgoutput messages, tracking streamed blocks
/// (protocol 2+): between `Stream Start` and `Stream Stop`, messages carry
/// the transaction's Xid and only changes, relations, types and
/// logical decoding messages may appear.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    /// Between a `Stream Start` and its `Stream Stop`.
    in_stream: bool,
}

impl Decoder {
    /// A decoder outside any streamed block.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Whether the next message is expected inside a streamed block.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes the next message of the stream. A message that may not appear
    /// at this point fails with [`DecodeError::StreamOrder`] and leaves the
    /// decoder's state unchanged.
    pub fn decode(&mut self, payload: &Bytes) -> Result<LogicalMessage, DecodeError> {
        if let Some(&tag) = payload.first() {
            let allowed = match tag {
                b'B' | b'C' | b'O' | b'S' | b'c' | b'A' => !self.in_stream,
                b'E' => self.in_stream,
                _ => true,
            };
            if !allowed {
                return Err(DecodeError::StreamOrder {
                    tag,
                    in_stream: self.in_stream,
                });
            }
        }
        let message = decode_message(payload, self.in_stream)?;
        match message {
            LogicalMessage::StreamStart(_) => self.in_stream = true,
            LogicalMessage::StreamStop => self.in_stream = false,
            _ => {}
        }
        Ok(message)
    }
}

/// Decodes one message; `in_stream` says whether the change messages carry
/// the streamed transaction's Xid first.
fn decode_message(payload: &Bytes, in_stream: bool) -> Result<LogicalMessage, DecodeError> {
    let mut r = Reader::new(payload);
    let tag = r.u8("message type")?;
    let message = match tag {
        b'B' => LogicalMessage::Begin(Begin::read(&mut r)?),
        b'C' => LogicalMessage::Commit(Commit::read(&mut r)?),
        b'O' => LogicalMessage::Origin(Origin::read(&mut r)?),
        b'R' => LogicalMessage::Relation(Relation::read(&mut r, in_stream)?),
        b'Y' => LogicalMessage::Type(Type::read(&mut r, in_stream)?),
        b'I' => LogicalMessage::Insert(Insert::read(&mut r, in_stream)?),
        b'U' => LogicalMessage::Update(Update::read(&mut r, in_stream)?),
        b'D' => LogicalMessage::Delete(Delete::read(&mut r, in_stream)?),
        b'T' => LogicalMessage::Truncate(Truncate::read(&mut r, in_stream)?),
        b'M' => LogicalMessage::Message(Message::read(&mut r, in_stream)?),
        b'S' => LogicalMessage::StreamStart(StreamStart::read(&mut r)?),
        b'E' => LogicalMessage::StreamStop,
        b'c' => LogicalMessage::StreamCommit(StreamCommit::read(&mut r)?),
        b'A' => LogicalMessage::StreamAbort(StreamAbort::read(&mut r)?),
        // Begin Prepare, Prepare, Commit Prepared, Rollback Prepared, Stream
        // Prepare: two-phase commit (protocol 3), never requested.
        b'b' | b'P' | b'K' | b'r' | b'p' => return Err(DecodeError::Unsupported(tag)),
        _ => return Err(DecodeError::UnknownTag(tag)),
    };
    r.finish(tag)?;
    Ok(message)
}

/// The Xid that prefixes a message inside a streamed block.
fn stream_xid(
    r: &mut Reader<'_>,
    in_stream: bool,
    what: &'static str,
) -> Result<Option<Xid>, DecodeError> {
    if in_stream {
        r.xid(what).map(Some)
    } else {
        Ok(None)
    }
}
