//! `Type` (`Y`): a user-defined data type a following relation uses.

use super::stream_xid;
use crate::catalog::Oid;
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Xid;

/// Names a data type that is not built in (an enum, a domain, an extension's
/// type), sent before the [`Relation`](super::Relation) whose column uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// The type's OID, as in [`RelationColumn::type_oid`](super::RelationColumn::type_oid).
    pub oid: Oid,
    /// The schema name; empty for `pg_catalog`.
    pub namespace: String,
    /// The type name.
    pub name: String,
}

impl Type {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Type, DecodeError> {
        Ok(Type {
            xid: stream_xid(r, in_stream, "Type Xid")?,
            oid: r.oid("Type OID")?,
            namespace: r.string("Type namespace")?,
            name: r.string("Type name")?,
        })
    }
}
