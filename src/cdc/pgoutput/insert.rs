//! `Insert` (`I`): a new row.

use super::stream_xid;
use super::tuple::Tuple;
use crate::catalog::Oid;
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Xid;

/// A row inserted into a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insert {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// The table, as announced by a [`Relation`](super::Relation) message.
    pub relation: Oid,
    /// The new row.
    pub new: Tuple,
}

impl Insert {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Insert, DecodeError> {
        let xid = stream_xid(r, in_stream, "Insert Xid")?;
        let relation = r.oid("Insert relation OID")?;
        match r.u8("Insert tuple kind")? {
            b'N' => Ok(Insert {
                xid,
                relation,
                new: Tuple::read(r)?,
            }),
            byte => Err(DecodeError::InvalidByte {
                what: "Insert tuple kind",
                byte,
            }),
        }
    }
}
