//! `Begin` (`B`): the start of a committed transaction.

use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::{Lsn, Timestamp, Xid};

/// The first message of a transaction. pgoutput sends a transaction only once
/// it has committed, so the commit's position and time are already known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    /// The LSN of the commit record; equals the matching
    /// [`Commit::commit_lsn`](super::Commit::commit_lsn).
    pub final_lsn: Lsn,
    /// Commit time of the transaction.
    pub commit_time: Timestamp,
    /// The transaction's id.
    pub xid: Xid,
}

impl Begin {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Begin, DecodeError> {
        Ok(Begin {
            final_lsn: r.lsn("Begin final LSN")?,
            commit_time: r.timestamp("Begin commit timestamp")?,
            xid: r.xid("Begin Xid")?,
        })
    }
}
