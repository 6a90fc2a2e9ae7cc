//! `Truncate` (`T`): one `TRUNCATE` statement over one or more tables.

use super::stream_xid;
use crate::catalog::Oid;
use crate::cdc::error::DecodeError;
use crate::cdc::reader::Reader;
use crate::cdc::wal::Xid;

/// Tables emptied by one `TRUNCATE`, including those reached by `CASCADE`
/// (only the published ones are listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncate {
    /// The streamed transaction this message belongs to (protocol 2+, only
    /// between `Stream Start` and `Stream Stop`); `None` otherwise.
    pub xid: Option<Xid>,
    /// The statement had `CASCADE`.
    pub cascade: bool,
    /// The statement had `RESTART IDENTITY`.
    pub restart_identity: bool,
    /// The emptied tables, as announced by [`Relation`](super::Relation) messages.
    pub relations: Vec<Oid>,
}

const OPTION_CASCADE: u8 = 1;
const OPTION_RESTART_IDENTITY: u8 = 2;

impl Truncate {
    pub(super) fn read(r: &mut Reader<'_>, in_stream: bool) -> Result<Truncate, DecodeError> {
        let xid = stream_xid(r, in_stream, "Truncate Xid")?;
        let count = r.u32("Truncate relation count")?;
        let options = r.u8("Truncate options")?;
        if options & !(OPTION_CASCADE | OPTION_RESTART_IDENTITY) != 0 {
            return Err(DecodeError::InvalidFlags {
                what: "Truncate options",
                flags: options.into(),
            });
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let mut relations = Vec::with_capacity(r.capacity_for(count, 4));
        for _ in 0..count {
            relations.push(r.oid("Truncate relation OID")?);
        }
        Ok(Truncate {
            xid,
            cascade: options & OPTION_CASCADE != 0,
            restart_identity: options & OPTION_RESTART_IDENTITY != 0,
            relations,
        })
    }
}
