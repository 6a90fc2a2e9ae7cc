//! `Delete` (`D`): a removed row, identified by its old key or old values.

use super::stream_xid;
use super::update::OldTuple;
use crate::catalog::Oid;
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Xid;

/// A row deleted from a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// The table, as announced by a [`Relation`](super::Relation) message.
    pub relation: Oid,
    /// The deleted row's key (`K`) or, for `REPLICA IDENTITY FULL`, all its
    /// old values (`O`).
    pub old: OldTuple,
}

impl Delete {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Delete, DecodeError> {
        let xid = stream_xid(r, in_stream, "Delete Xid")?;
        let relation = r.oid("Delete relation OID")?;
        let kind = r.u8("Delete tuple kind")?;
        let old = OldTuple::read(r, kind, "Delete tuple kind")?;
        Ok(Delete { xid, relation, old })
    }
}
