//! How a single-table result is laid out, for keeping it up to date in
//! place from the change stream (ADR 017): which table column each output
//! column is, the `ORDER BY` as output positions, the `LIMIT`.
//!
//! Only what the stream's text reproduces byte for byte is described: every
//! output a plain column of a type whose text output depends on no setting,
//! the order by integer columns that are output and include the whole
//! primary key (a total order), no `OFFSET` or `DISTINCT`. Pure.

use super::deps::KeySource;
use crate::catalog::Oid;

/// Types whose text output is the same for every session setting (given
/// one encoding): what the change stream sends is what a `SELECT` in text
/// format sends.
pub const STABLE_TEXT_TYPES: [u32; 13] = [
    16,   // bool
    21,   // int2
    23,   // int4
    20,   // int8
    26,   // oid
    25,   // text
    1043, // varchar
    1042, // bpchar
    19,   // name
    2950, // uuid
    1700, // numeric
    114,  // json
    3802, // jsonb
];

/// One `ORDER BY` item: an integer output column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// 0-based output position.
    pub output: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// A statement's layout with its `LIMIT` still to be bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutSpec {
    /// Each output column: the table column's name and type.
    pub outputs: Vec<(String, Oid)>,
    pub order: Vec<SortKey>,
    pub limit: Option<KeySource>,
}

/// A layout with its `LIMIT` bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub outputs: Vec<(String, Oid)>,
    pub order: Vec<SortKey>,
    pub limit: Option<u64>,
}

impl LayoutSpec {
    /// Bind the `LIMIT` (`value` reads a parameter as an integer); `None`
    /// when it does not read as a non-negative integer (`LIMIT NULL` means
    /// no limit to PostgreSQL, which is left alone too).
    pub fn bind(&self, value: &dyn Fn(KeySource) -> Option<i64>) -> Option<Layout> {
        let limit = match self.limit {
            None => None,
            Some(source) => Some(u64::try_from(value(source)?).ok()?),
        };
        Some(Layout {
            outputs: self.outputs.clone(),
            order: self.order.clone(),
            limit,
        })
    }
}
