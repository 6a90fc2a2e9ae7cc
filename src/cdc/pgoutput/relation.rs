//! `Relation` (`R`): the shape of a table the following changes refer to.

use super::stream_xid;
use crate::catalog::{Oid, ReplicaIdentity};
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Xid;

/// Describes a published table. pgoutput sends it before the first change to
/// the table in a session and again whenever the table's definition may have
/// changed, so a consumer keeps the latest one per [`Relation::oid`] and reads
/// every tuple of that table against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// The table's OID, which [`Insert`](super::Insert) and friends refer to.
    pub oid: Oid,
    /// The schema name; empty for `pg_catalog`.
    pub namespace: String,
    /// The table name.
    pub name: String,
    /// The table's `REPLICA IDENTITY`: which columns an old key or old tuple
    /// carries in updates and deletes.
    pub replica_identity: ReplicaIdentity,
    /// The published columns, in the order of every tuple of this table.
    pub columns: Vec<RelationColumn>,
}

/// One published column of a [`Relation`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// The column belongs to the replica identity (the key old-key tuples carry).
    pub part_of_key: bool,
    /// The column name.
    pub name: String,
    /// The column's data type.
    pub type_oid: Oid,
    /// The type modifier (`atttypmod`), -1 when the type has none.
    pub type_modifier: i32,
}

/// Column flag: part of the replica identity.
const COLUMN_FLAG_KEY: u8 = 1;

/// A column takes at least flags (1) + name NUL (1) + type OID (4) + typmod (4).
const MIN_COLUMN_SIZE: usize = 10;

impl Relation {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Relation, DecodeError> {
        let xid = stream_xid(r, in_stream, "Relation Xid")?;
        let oid = r.oid("Relation OID")?;
        let namespace = r.string("Relation namespace")?;
        let name = r.string("Relation name")?;
        let replica_identity = match r.u8("Relation replica identity")? {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            byte => {
                return Err(DecodeError::InvalidByte {
                    what: "Relation replica identity",
                    byte,
                });
            }
        };
        let count = usize::from(r.u16("Relation column count")?);
        let mut columns = Vec::with_capacity(r.capacity_for(count, MIN_COLUMN_SIZE));
        for _ in 0..count {
            columns.push(RelationColumn::read(r)?);
        }
        Ok(Relation {
            xid,
            oid,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }
}

impl RelationColumn {
    fn read(r: &mut Reader<'_>) -> Result<RelationColumn, DecodeError> {
        let flags = r.u8("Relation column flags")?;
        if flags & !COLUMN_FLAG_KEY != 0 {
            return Err(DecodeError::InvalidFlags {
                what: "Relation column flags",
                flags: flags.into(),
            });
        }
        Ok(RelationColumn {
            part_of_key: flags & COLUMN_FLAG_KEY != 0,
            name: r.string("Relation column name")?,
            type_oid: r.oid("Relation column type OID")?,
            type_modifier: r.i32("Relation column type modifier")?,
        })
    }
}
