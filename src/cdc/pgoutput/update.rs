//! `Update` (`U`): a changed row, with its old key or old values when sent.

use super::stream_xid;
use super::tuple::Tuple;
use crate::catalog::Oid;
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Xid;

/// A row updated in a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// The table, as announced by a [`Relation`](super::Relation) message.
    pub relation: Oid,
    /// The row's identity before the change. `None` when the replica
    /// identity columns did not change (the key is then read from
    /// [`Update::new`]); always sent for `REPLICA IDENTITY FULL`.
    pub old: Option<OldTuple>,
    /// The row after the change. Columns holding an unchanged TOASTed value
    /// come as [`ColumnValue::UnchangedToast`](super::ColumnValue::UnchangedToast).
    pub new: Tuple,
}

/// The "before" image a change carries to identify the row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OldTuple {
    /// `K`: the replica identity (key) columns; every other column is `NULL`.
    Key(Tuple),
    /// `O`: every column of the old row (`REPLICA IDENTITY FULL`).
    Full(Tuple),
}

impl OldTuple {
    /// The tuple, whichever kind it is, by value.
    pub fn into_tuple(self) -> Tuple {
        match self {
            OldTuple::Key(tuple) | OldTuple::Full(tuple) => tuple,
        }
    }

    /// The tuple, whichever kind it is.
    pub fn tuple(&self) -> &Tuple {
        match self {
            OldTuple::Key(tuple) | OldTuple::Full(tuple) => tuple,
        }
    }

    /// Reads the tuple that follows the `kind` byte `K` or `O`.
    pub(super) fn read(
        r: &mut Reader<'_>,
        kind: u8,
        what: &'static str,
    ) -> Result<OldTuple, DecodeError> {
        match kind {
            b'K' => Tuple::read(r).map(OldTuple::Key),
            b'O' => Tuple::read(r).map(OldTuple::Full),
            byte => Err(DecodeError::InvalidByte { what, byte }),
        }
    }
}

impl Update {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Update, DecodeError> {
        let xid = stream_xid(r, in_stream, "Update Xid")?;
        let relation = r.oid("Update relation OID")?;
        let (old, kind) = match r.u8("Update tuple kind")? {
            kind @ (b'K' | b'O') => (
                Some(OldTuple::read(r, kind, "Update tuple kind")?),
                r.u8("Update new tuple kind")?,
            ),
            kind => (None, kind),
        };
        if kind != b'N' {
            return Err(DecodeError::InvalidByte {
                what: "Update new tuple kind",
                byte: kind,
            });
        }
        Ok(Update {
            xid,
            relation,
            old,
            new: Tuple::read(r)?,
        })
    }
}
