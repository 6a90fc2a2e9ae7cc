//! `TupleData`: the column values of one row inside a change message.

use bytes::Bytes;

use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;

/// One row's values, in the column order of the table's latest
/// [`Relation`](super::Relation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// One value per published column.
    pub columns: Vec<ColumnValue>,
}

/// One column's value as pgoutput sends it. Values are slices of the received
/// message (no copy); hold them as long as needed, the message buffer stays
/// alive with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnValue {
    /// `n`: SQL `NULL`.
    Null,
    /// `u`: a TOASTed value that the change did not touch. The actual value
    /// is not sent; the consumer must already know it (or give up on the row).
    UnchangedToast,
    /// `t`: the type's text output, in the replication connection's settings.
    Text(Bytes),
    /// `b`: the type's binary send format (only with the `binary` option).
    Binary(Bytes),
}

impl Tuple {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<Tuple, DecodeError> {
        let count = usize::from(r.u16("TupleData column count")?);
        // Each column takes at least its one kind byte.
        let mut columns = Vec::with_capacity(r.capacity_for(count, 1));
        for _ in 0..count {
            columns.push(ColumnValue::read(r)?);
        }
        Ok(Tuple { columns })
    }
}

impl ColumnValue {
    fn read(r: &mut Reader<'_>) -> Result<ColumnValue, DecodeError> {
        match r.u8("TupleData column kind")? {
            b'n' => Ok(ColumnValue::Null),
            b'u' => Ok(ColumnValue::UnchangedToast),
            b't' => {
                let len = r.u32("TupleData text length")?;
                r.bytes(len, "TupleData text value").map(ColumnValue::Text)
            }
            b'b' => {
                let len = r.u32("TupleData binary length")?;
                r.bytes(len, "TupleData binary value")
                    .map(ColumnValue::Binary)
            }
            byte => Err(DecodeError::InvalidByte {
                what: "TupleData column kind",
                byte,
            }),
        }
    }
}
