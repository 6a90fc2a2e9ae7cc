//! `Commit` (`C`): the end of a transaction.

use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::{Lsn, Timestamp};

/// The last message of a transaction: everything since its [`Begin`](super::Begin)
/// is now visible at the origin, and may be applied as one unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The LSN of the commit record.
    pub commit_lsn: Lsn,
    /// The end of the commit record: the position to confirm as flushed once
    /// the transaction is applied.
    pub end_lsn: Lsn,
    /// Commit time of the transaction.
    pub commit_time: Timestamp,
}

impl Commit {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Commit, DecodeError> {
        // Currently unused; PostgreSQL's own subscriber rejects anything but 0.
        let flags = r.u8("Commit flags")?;
        if flags != 0 {
            return Err(DecodeError::InvalidFlags {
                what: "Commit flags",
                flags: flags.into(),
            });
        }
        Ok(Commit {
            commit_lsn: r.lsn("Commit LSN")?,
            end_lsn: r.lsn("Commit end LSN")?,
            commit_time: r.timestamp("Commit timestamp")?,
        })
    }
}
