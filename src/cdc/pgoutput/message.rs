//! `Message` (`M`): a logical decoding message from `pg_logical_emit_message`.

use bytes::Bytes;

use super::stream_xid;
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::{Lsn, Xid};

/// A message an application wrote into the WAL with
/// `pg_logical_emit_message` (sent only with the `messages` option).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// Emitted as part of a transaction (arrives between its `Begin` and
    /// `Commit`, and only if it commits); otherwise on its own, at once.
    pub transactional: bool,
    /// The LSN of the message.
    pub lsn: Lsn,
    /// The prefix the application chose.
    pub prefix: String,
    /// The content, arbitrary bytes.
    pub content: Bytes,
}

impl Message {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Message, DecodeError> {
        let xid = stream_xid(r, in_stream, "Message Xid")?;
        let transactional = r.bool("Message flags")?;
        let lsn = r.lsn("Message LSN")?;
        let prefix = r.string("Message prefix")?;
        let len = r.u32("Message content length")?;
        Ok(Message {
            xid,
            transactional,
            lsn,
            prefix,
            content: r.bytes(len, "Message content")?,
        })
    }
}
