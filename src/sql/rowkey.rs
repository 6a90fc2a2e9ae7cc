//! Statements that read one row by its whole primary key.
//!
//! A cacheable single-table `SELECT` whose `WHERE` requires every primary
//! key column to equal a parameter reads at most one row: its result changes
//! only when that row does. The change stream names the rows each change
//! touched by their key ([`crate::cache::row_hash`]), so such an entry need
//! not be dropped when another row of its table changes.
//!
//! Only integer keys (`int2`, `int4`, `int8`) of tables whose replica
//! identity is the primary key qualify: their values have one canonical
//! form on both sides (the statement's literal or parameter, the stream's
//! text), and old keys of updates and deletes carry exactly those columns.

use super::ast::{Expr, OperatorName, SelectItem, SetExpr, TableRef};
use super::shape::{ParamValue, Shape};
use crate::catalog::{Oid, ReplicaIdentity, Table};

/// Where a key column's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A lifted literal: index into the analysis's parameter values.
    Lifted(usize),
    /// The client's own parameter `$n` (1-based): a Bind value.
    Client(u32),
}

/// How to name the row a statement reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowKey {
    pub table: Oid,
    /// One per primary key column, in column (`attnum`) order, with the
    /// column's type OID.
    pub parts: Vec<(KeySource, Oid)>,
}

/// `int2`, `int4`, `int8`.
const INTEGER_TYPES: [u32; 3] = [21, 23, 20];

/// The row key of `shape`, when it reads one row of `table` by its whole
/// integer primary key (and nothing else).
pub fn row_key(shape: &Shape, table: &Table) -> Option<RowKey> {
    if shape.tables != [table.oid]
        || table.replica_identity != ReplicaIdentity::Default
        || table.primary_key.is_empty()
    {
        return None;
    }
    let query = &shape.query;
    if query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = &query.body else {
        return None;
    };
    if !matches!(select.from.as_slice(), [TableRef::Table { .. }]) {
        return None;
    }
    // Anything that could read other rows (of this table or another).
    let mut exprs: Vec<&Expr> = Vec::new();
    for t in &select.targets {
        if let SelectItem::Expr { expr, .. } = t {
            exprs.push(expr);
        }
    }
    exprs.extend(select.selection.iter());
    exprs.extend(select.group_by.iter());
    exprs.extend(select.having.iter());
    if let super::ast::Distinct::On(on) = &select.distinct {
        exprs.extend(on.iter());
    }
    exprs.extend(query.order_by.iter().map(|o| &o.expr));
    exprs.extend(query.limit.iter());
    exprs.extend(query.offset.iter());
    if exprs.into_iter().any(has_subquery) {
        return None;
    }

    let conjuncts: Vec<&Expr> = match &select.selection {
        Some(Expr::And(list)) => list.iter().collect(),
        Some(e) => vec![e],
        None => return None,
    };
    let mut key_columns: Vec<_> = table
        .primary_key
        .iter()
        .map(|&attnum| table.columns.iter().find(|c| c.attnum == attnum))
        .collect::<Option<Vec<_>>>()?;
    key_columns.sort_by_key(|c| c.attnum);
    let mut parts = Vec::with_capacity(key_columns.len());
    for column in key_columns {
        if !INTEGER_TYPES.contains(&column.type_oid.0) {
            return None;
        }
        let param = conjuncts
            .iter()
            .find_map(|c| equated_param(c, &column.name))?;
        let source = if param <= shape.client_params {
            KeySource::Client(param)
        } else {
            KeySource::Lifted(usize::try_from(param - shape.client_params - 1).ok()?)
        };
        parts.push((source, column.type_oid));
    }
    Some(RowKey {
        table: table.oid,
        parts,
    })
}

/// `column = $n` or `$n = column` with the built-in `=`: `n`.
fn equated_param(expr: &Expr, column: &str) -> Option<u32> {
    let Expr::Binary { op, left, right } = expr else {
        return None;
    };
    if !is_builtin_equals(op) {
        return None;
    }
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column { name, .. }, Expr::Param(n))
        | (Expr::Param(n), Expr::Column { name, .. })
            if name == column =>
        {
            Some(*n)
        }
        _ => None,
    }
}

fn is_builtin_equals(op: &OperatorName) -> bool {
    op.name == "=" && op.schema.as_deref().is_none_or(|s| s == "pg_catalog")
}

fn has_subquery(expr: &Expr) -> bool {
    let mut found = false;
    let mut copy = expr.clone();
    copy.for_each_mut(&mut |e| {
        if matches!(e, Expr::Subquery { .. }) {
            found = true;
        }
    });
    found
}

/// The key value of a lifted literal, when it reads as exactly one integer.
pub fn lifted_value(value: &ParamValue) -> Option<i64> {
    match value {
        ParamValue::Int4(v) => Some(i64::from(*v)),
        ParamValue::Int8(v) => Some(*v),
        ParamValue::Text(s) => s.trim().parse().ok(),
        ParamValue::Numeric(_) => None,
    }
}

/// The key value of a client parameter as the Bind message carries it:
/// text (`binary = false`) or the binary form of the column's type
/// `column_type` (`declared` is the type the Parse declared, 0 when none).
pub fn bound_value(bytes: &[u8], binary: bool, declared: u32, column_type: Oid) -> Option<i64> {
    if !binary {
        return std::str::from_utf8(bytes).ok()?.trim().parse().ok();
    }
    // Unspecified: the origin takes the column's type from `column = $n`.
    let ty = if declared == 0 {
        column_type.0
    } else {
        declared
    };
    match (ty, bytes.len()) {
        (21, 2) => Some(i64::from(i16::from_be_bytes([bytes[0], bytes[1]]))),
        (23, 4) => Some(i64::from(i32::from_be_bytes(bytes.try_into().ok()?))),
        (20, 8) => Some(i64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// One Bind parameter: its value (`None` for NULL) and whether it is in
/// binary format.
pub type BoundParam<'a> = (Option<&'a [u8]>, bool);

/// The parameters of a Bind message's tail (after the portal and statement
/// names). `None` when the tail is malformed.
pub fn bind_params(tail: &[u8]) -> Option<Vec<BoundParam<'_>>> {
    let int16 = |b: &[u8]| -> Option<(usize, usize)> {
        let v = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
        Some((usize::from(v), 2))
    };
    let (nformats, used) = int16(tail)?;
    let formats = tail.get(used..used + 2 * nformats)?;
    let format = |i: usize| -> bool {
        let at = if nformats == 1 { 0 } else { i };
        formats.get(2 * at + 1).is_some_and(|&b| b == 1)
    };
    let mut rest = tail.get(used + 2 * nformats..)?;
    let (nvalues, used) = int16(rest)?;
    if nformats > 1 && nformats != nvalues {
        return None;
    }
    rest = rest.get(used..)?;
    let mut out = Vec::with_capacity(nvalues);
    for i in 0..nvalues {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = rest.get(4..)?;
        if len < 0 {
            out.push((None, nformats > 0 && format(i)));
            continue;
        }
        let len = usize::try_from(len).ok()?;
        out.push((Some(rest.get(..len)?), nformats > 0 && format(i)));
        rest = rest.get(len..)?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bind_tail_parameters() {
        // 1 format code (binary), 2 values: int4 7 and NULL, 0 result formats.
        let tail = [
            0, 1, 0, 1, 0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ];
        let params = bind_params(&tail).unwrap();
        assert_eq!(
            params,
            vec![(Some(&[0u8, 0, 0, 7][..]), true), (None, true)]
        );
        // No format codes: text.
        let tail = [0, 0, 0, 1, 0, 0, 0, 2, b'4', b'2', 0, 0];
        assert_eq!(bind_params(&tail).unwrap(), vec![(Some(&b"42"[..]), false)]);
        // Truncated.
        assert_eq!(bind_params(&[0, 0, 0, 1, 0, 0, 0, 9, b'4']), None);
        assert_eq!(bind_params(&[0]), None);
    }

    #[test]
    fn key_values() {
        assert_eq!(bound_value(b" 42 ", false, 0, Oid(23)), Some(42));
        assert_eq!(bound_value(b"4x", false, 0, Oid(23)), None);
        assert_eq!(bound_value(&7i32.to_be_bytes(), true, 0, Oid(23)), Some(7));
        assert_eq!(bound_value(&7i64.to_be_bytes(), true, 20, Oid(23)), Some(7));
        assert_eq!(
            bound_value(&(-3i16).to_be_bytes(), true, 0, Oid(21)),
            Some(-3)
        );
        // A float8 parameter of 8 bytes is not an int8 key.
        assert_eq!(bound_value(&1.0f64.to_be_bytes(), true, 701, Oid(20)), None);
        // Width not the column's.
        assert_eq!(bound_value(&7i32.to_be_bytes(), true, 0, Oid(20)), None);
        assert_eq!(lifted_value(&ParamValue::Int4(5)), Some(5));
        assert_eq!(lifted_value(&ParamValue::Text(" 5".into())), Some(5));
        assert_eq!(lifted_value(&ParamValue::Numeric("5.0".into())), None);
    }
}
