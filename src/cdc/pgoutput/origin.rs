//! `Origin` (`O`): where a replicated transaction came from.

use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Lsn;

/// Sent after [`Begin`](super::Begin) when the transaction was itself replayed
/// from another node (it carries a replication origin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The LSN of the commit on the origin server.
    pub commit_lsn: Lsn,
    /// The replication origin's name.
    pub name: String,
}

impl Origin {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Origin, DecodeError> {
        Ok(Origin {
            commit_lsn: r.lsn("Origin commit LSN")?,
            name: r.string("Origin name")?,
        })
    }
}
