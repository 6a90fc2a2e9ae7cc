//! The streamed-transaction messages of protocol version 2: `Stream Start`
//! (`S`), `Stream Stop` (`E`), `Stream Commit` (`c`), `Stream Abort` (`A`).
//!
//! With the `streaming` option, a large transaction is sent in blocks while
//! it is still running; each block is bracketed by `Stream Start` and
//! `Stream Stop`, and every message inside carries the transaction's Xid. The
//! transaction ends later with `Stream Commit` or `Stream Abort`. pgcache
//! requests protocol version 1 without streaming; these are decoded so that a
//! misconfigured stream fails loudly and precisely rather than as garbage.

use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::{Lsn, Timestamp, Xid};

/// Opens a block of changes of the in-progress transaction `xid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStart {
    /// The transaction the block belongs to.
    pub xid: Xid,
    /// The first block of this transaction.
    pub first_segment: bool,
}

/// Commits a streamed transaction; all its blocks become visible together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamCommit {
    /// The committed transaction.
    pub xid: Xid,
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The end of the commit record.
    pub end_lsn: Lsn,
    /// Commit time of the transaction.
    pub commit_time: Timestamp,
}

/// Discards a streamed transaction or one of its subtransactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamAbort {
    /// The top-level transaction.
    pub xid: Xid,
    /// The aborted (sub)transaction; equal to `xid` when the whole
    /// transaction aborted, otherwise only that subtransaction's changes are
    /// discarded.
    pub subxid: Xid,
    /// The abort's LSN and time, sent only for `streaming = parallel`
    /// (protocol version 4, PostgreSQL 16+).
    pub abort: Option<(Lsn, Timestamp)>,
}

impl StreamStart {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<StreamStart, DecodeError> {
        Ok(StreamStart {
            xid: r.xid("Stream Start Xid")?,
            first_segment: r.bool("Stream Start first-segment flag")?,
        })
    }
}

impl StreamCommit {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<StreamCommit, DecodeError> {
        let xid = r.xid("Stream Commit Xid")?;
        let flags = r.u8("Stream Commit flags")?;
        if flags != 0 {
            return Err(DecodeError::InvalidFlags {
                what: "Stream Commit flags",
                flags: flags.into(),
            });
        }
        Ok(StreamCommit {
            xid,
            commit_lsn: r.lsn("Stream Commit LSN")?,
            end_lsn: r.lsn("Stream Commit end LSN")?,
            commit_time: r.timestamp("Stream Commit timestamp")?,
        })
    }
}

impl StreamAbort {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<StreamAbort, DecodeError> {
        let xid = r.xid("Stream Abort Xid")?;
        let subxid = r.xid("Stream Abort subtransaction Xid")?;
        // The parallel-streaming fields are present exactly when bytes follow.
        let abort = if r.remaining() == 0 {
            None
        } else {
            Some((
                r.lsn("Stream Abort LSN")?,
                r.timestamp("Stream Abort timestamp")?,
            ))
        };
        Ok(StreamAbort { xid, subxid, abort })
    }
}
