//! Row filters: a single-table statement's whole `WHERE` as a predicate that
//! the change stream's new rows are tested against (ADR 016).
//!
//! An entry that outputs its table's key names every row it read (ADR 015):
//! a change to one of those rows names it. Any other row matters only if
//! its new version could satisfy the `WHERE`, so with the `WHERE` compiled
//! here the entry depends on its rows, on its filter (bumped when a new row
//! might match) and on changes that name no row, not on every change.
//!
//! Only what can be decided exactly from the stream's text is compiled:
//! `AND`, `OR`, `NOT`; a column compared with a parameter (`= <> < <= > >=`
//! for integers, `=`/`<>` for `uuid` and byte-equal text, the
//! [`super::rowkey`] kinds); `BETWEEN` (not `SYMMETRIC`) and `IN` lists of
//! parameters on those columns; `IS [NOT] NULL` on any column; `IS [NOT]
//! DISTINCT FROM` a parameter. Anything else leaves the statement
//! uncompiled (every change to the table then counts).
//!
//! Evaluation is three-valued, over the set of outcomes a row can have: a
//! value the stream did not send ("unchanged TOAST", or a column it does
//! not know) may be anything, and the row then "might match".

use super::ast::{Expr, OperatorName};
use super::deps::KeySource;
use super::rowkey::{KeyKind, KeyPart, byte_equal_collation, key_kind, stream_value};
use crate::catalog::{Column, Oid};

/// A comparison operator, column on the left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The built-in operator named `op`.
    fn of(op: &OperatorName) -> Option<CmpOp> {
        if op.schema.as_deref().is_some_and(|s| s != "pg_catalog") {
            return None;
        }
        Some(match op.name.as_str() {
            "=" => CmpOp::Eq,
            "<>" | "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }

    /// `value op column` as `column op' value`.
    fn flipped(self) -> CmpOp {
        match self {
            CmpOp::Eq | CmpOp::Ne => self,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }

    fn ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

/// A predicate over a row's columns (indexes into the filter's columns),
/// comparing them with values of type `V`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pred<V> {
    And(Vec<Pred<V>>),
    Or(Vec<Pred<V>>),
    Not(Box<Pred<V>>),
    Cmp { column: usize, op: CmpOp, value: V },
    IsNull { column: usize },
}

/// A column a filter reads: its name and type when compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterColumn {
    pub name: String,
    pub type_oid: Oid,
}

/// A compiled `WHERE` whose values are still to be bound (parameters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterSpec {
    pub columns: Vec<FilterColumn>,
    pub pred: Pred<KeySource>,
}

/// A `WHERE` with its values: what new rows are tested against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub table: Oid,
    /// Names the filter's generation slot (unique per registered filter).
    pub id: u64,
    columns: Vec<FilterColumn>,
    pred: Pred<KeyPart>,
}

/// One column of a row as the change stream sent it.
#[derive(Clone, Copy, Debug)]
pub enum Cell<'a> {
    Null,
    /// The type's text output (UTF-8).
    Text(&'a [u8]),
    /// A value that was not sent: unchanged TOAST (never NULL).
    Unsent,
    /// The stream's row has no such column (of that type).
    Missing,
}

/// Compile `selection` (a single-table statement's `WHERE`). `column`
/// resolves a column reference to the table's column; `param` gives where
/// parameter `$n`'s value comes from (the caller checks that its every use
/// is compiled here, so its type is the column's); `plain_null_test` says
/// whether `IS NULL` on a type is a test of NULL only (not of a row value
/// whose fields are all NULL).
pub fn compile<'t>(
    selection: &Expr,
    column: &dyn Fn(&Expr) -> Option<&'t Column>,
    param: &dyn Fn(u32) -> Option<KeySource>,
    plain_null_test: &dyn Fn(Oid) -> bool,
) -> Option<FilterSpec> {
    let mut c = Compiler {
        columns: Vec::new(),
        column,
        param,
        plain_null_test,
    };
    let pred = c.pred(selection)?;
    Some(FilterSpec {
        columns: c.columns,
        pred,
    })
}

/// The first equality of an integer or uuid column among the top-level
/// `AND`ed conditions of `pred`: every row the filter accepts has that
/// value (which the change stream always sends: such values are never
/// stored out of line).
fn anchor<'a, V>(pred: &'a Pred<V>, columns: &[FilterColumn]) -> Option<(usize, &'a V)> {
    fn anchored<'a, V>(p: &'a Pred<V>, columns: &[FilterColumn]) -> Option<(usize, &'a V)> {
        match p {
            Pred::Cmp {
                column,
                op: CmpOp::Eq,
                value,
            } => columns
                .get(*column)
                .and_then(|c| key_kind(c.type_oid))
                .filter(|k| matches!(k, KeyKind::Int | KeyKind::Uuid))
                .map(|_| (*column, value)),
            _ => None,
        }
    }
    match pred {
        Pred::And(list) => list.iter().find_map(|p| anchored(p, columns)),
        p => anchored(p, columns),
    }
}

impl FilterSpec {
    /// Whether the filter has an anchor: an equality of an integer or uuid
    /// column that every accepted row satisfies.
    pub fn anchored(&self) -> bool {
        anchor(&self.pred, &self.columns).is_some()
    }

    /// The column of the anchor ([`Self::anchored`]).
    pub fn anchor_column(&self) -> Option<&str> {
        anchor(&self.pred, &self.columns).map(|(c, _)| self.columns[c].name.as_str())
    }

    /// How often each client parameter (`$n`, `n <= client_params`) is
    /// read by the filter.
    pub fn client_uses(&self, client_params: u32) -> Vec<(u32, usize)> {
        let mut out: Vec<(u32, usize)> = Vec::new();
        count_client(&self.pred, client_params, &mut out);
        out
    }
}

fn count_client(p: &Pred<KeySource>, client_params: u32, out: &mut Vec<(u32, usize)>) {
    match p {
        Pred::And(list) | Pred::Or(list) => list
            .iter()
            .for_each(|x| count_client(x, client_params, out)),
        Pred::Not(x) => count_client(x, client_params, out),
        Pred::IsNull { .. } => {}
        Pred::Cmp { value, .. } => {
            if let KeySource::Client(n) = *value
                && n <= client_params
            {
                match out.iter_mut().find(|(m, _)| *m == n) {
                    Some((_, count)) => *count += 1,
                    None => out.push((n, 1)),
                }
            }
        }
    }
}

struct Compiler<'c, 't> {
    columns: Vec<FilterColumn>,
    column: &'c dyn Fn(&Expr) -> Option<&'t Column>,
    param: &'c dyn Fn(u32) -> Option<KeySource>,
    plain_null_test: &'c dyn Fn(Oid) -> bool,
}

impl Compiler<'_, '_> {
    fn pred(&mut self, e: &Expr) -> Option<Pred<KeySource>> {
        match e {
            Expr::And(list) => Some(Pred::And(
                list.iter().map(|x| self.pred(x)).collect::<Option<_>>()?,
            )),
            Expr::Or(list) => Some(Pred::Or(
                list.iter().map(|x| self.pred(x)).collect::<Option<_>>()?,
            )),
            Expr::Not(x) => Some(Pred::Not(Box::new(self.pred(x)?))),
            Expr::IsNull { expr, negated } => {
                let column = self.any_column(expr)?;
                let p = Pred::IsNull { column };
                Some(if *negated { Pred::Not(Box::new(p)) } else { p })
            }
            Expr::Binary { op, left, right } => {
                let op = CmpOp::of(op)?;
                match (&**left, &**right) {
                    (Expr::Param(n), other) => self.cmp(other, op.flipped(), *n),
                    (other, Expr::Param(n)) => self.cmp(other, op, *n),
                    _ => None,
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
                symmetric: false,
            } => {
                let (Expr::Param(lo), Expr::Param(hi)) = (&**low, &**high) else {
                    return None;
                };
                let p = Pred::And(vec![
                    self.cmp(expr, CmpOp::Ge, *lo)?,
                    self.cmp(expr, CmpOp::Le, *hi)?,
                ]);
                Some(if *negated { Pred::Not(Box::new(p)) } else { p })
            }
            Expr::InList {
                expr,
                list,
                negated,
            } if !list.is_empty() => {
                let p = Pred::Or(
                    list.iter()
                        .map(|x| match x {
                            Expr::Param(n) => self.cmp(expr, CmpOp::Eq, *n),
                            _ => None,
                        })
                        .collect::<Option<_>>()?,
                );
                Some(if *negated { Pred::Not(Box::new(p)) } else { p })
            }
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => {
                let (column, n) = match (&**left, &**right) {
                    (Expr::Param(n), other) | (other, Expr::Param(n)) => (other, *n),
                    _ => return None,
                };
                // With a non-NULL value: `c IS NULL OR c <> v` (never NULL).
                let p = Pred::Or(vec![
                    Pred::IsNull {
                        column: self.any_column(column)?,
                    },
                    self.cmp(column, CmpOp::Ne, n)?,
                ]);
                Some(if *negated { Pred::Not(Box::new(p)) } else { p })
            }
            _ => None,
        }
    }

    /// `column op $n`, where the column's values compare exactly.
    fn cmp(&mut self, column: &Expr, op: CmpOp, n: u32) -> Option<Pred<KeySource>> {
        let c = (self.column)(column)?;
        let kind = key_kind(c.type_oid)?;
        if !byte_equal_collation(c.collation) || (op.ordering() && kind != KeyKind::Int) {
            return None;
        }
        let value = (self.param)(n)?;
        Some(Pred::Cmp {
            column: self.index(c),
            op,
            value,
        })
    }

    /// A column whose `IS NULL` tests its value for NULL only.
    fn any_column(&mut self, e: &Expr) -> Option<usize> {
        let c = (self.column)(e)?;
        (self.plain_null_test)(c.type_oid).then(|| self.index(c))
    }

    fn index(&mut self, c: &Column) -> usize {
        match self.columns.iter().position(|f| f.name == c.name) {
            Some(i) => i,
            None => {
                self.columns.push(FilterColumn {
                    name: c.name.clone(),
                    type_oid: c.type_oid,
                });
                self.columns.len() - 1
            }
        }
    }
}

impl FilterSpec {
    /// The filter with its values (`value` of a source for a column type);
    /// `None` when a value does not read as one key value (a NULL
    /// parameter, a number that is not an integer).
    pub fn bind(
        &self,
        table: Oid,
        id: u64,
        value: &dyn Fn(KeySource, Oid) -> Option<KeyPart>,
    ) -> Option<Filter> {
        Some(Filter {
            table,
            id,
            pred: bind(&self.pred, &self.columns, value)?,
            columns: self.columns.clone(),
        })
    }
}

fn bind(
    p: &Pred<KeySource>,
    columns: &[FilterColumn],
    value: &dyn Fn(KeySource, Oid) -> Option<KeyPart>,
) -> Option<Pred<KeyPart>> {
    let all = |list: &[Pred<KeySource>]| {
        list.iter()
            .map(|x| bind(x, columns, value))
            .collect::<Option<Vec<_>>>()
    };
    Some(match p {
        Pred::And(list) => Pred::And(all(list)?),
        Pred::Or(list) => Pred::Or(all(list)?),
        Pred::Not(x) => Pred::Not(Box::new(bind(x, columns, value)?)),
        Pred::IsNull { column } => Pred::IsNull { column: *column },
        Pred::Cmp {
            column,
            op,
            value: source,
        } => Pred::Cmp {
            column: *column,
            op: *op,
            value: value(*source, columns.get(*column)?.type_oid)?,
        },
    })
}

/// Outcome sets: bit 0 true, bit 1 false, bit 2 NULL.
const T: u8 = 1;
const F: u8 = 2;
const N: u8 = 4;
const ANY: u8 = T | F | N;

impl Filter {
    /// Where each of the filter's columns is in a row of `columns` (name
    /// and type, as the stream describes the table); `None` where it is
    /// not there with the same type.
    pub fn positions(&self, columns: &[(String, Oid)]) -> Vec<Option<usize>> {
        self.columns
            .iter()
            .map(|c| {
                columns
                    .iter()
                    .position(|(name, ty)| *name == c.name && *ty == c.type_oid)
            })
            .collect()
    }

    /// Whether a row whose cell at position `p` is `cell(p)` might satisfy
    /// the filter (`positions` from [`Self::positions`]).
    pub fn may_match<'a>(
        &self,
        positions: &[Option<usize>],
        cell: &dyn Fn(usize) -> Cell<'a>,
    ) -> bool {
        let at = |i: usize| match positions.get(i).copied().flatten() {
            Some(p) => cell(p),
            None => Cell::Missing,
        };
        self.outcomes(&self.pred, &at) & T != 0
    }

    /// The filter's anchor, when it has one: the column's name and the
    /// value every accepted row has in it.
    pub fn anchor(&self) -> Option<(&str, &KeyPart)> {
        anchor(&self.pred, &self.columns)
            .and_then(|(c, v)| Some((self.columns.get(c)?.name.as_str(), v)))
    }

    /// A closed range `[lo, hi]` of an integer column that every row the
    /// filter accepts is in, from its top-level `AND`ed comparisons of
    /// that column (the first column bounded on both sides).
    pub fn bounds(&self) -> Option<(&str, i64, i64)> {
        let list = match &self.pred {
            Pred::And(list) => list.as_slice(),
            p => std::slice::from_ref(p),
        };
        let mut ranges: Vec<(usize, i64, i64)> = Vec::new();
        for p in list {
            let Pred::Cmp {
                column,
                op,
                value: KeyPart::Int(v),
            } = p
            else {
                continue;
            };
            if self.columns.get(*column).and_then(|c| key_kind(c.type_oid)) != Some(KeyKind::Int) {
                continue;
            }
            let (lo, hi) = match op {
                CmpOp::Eq => (*v, *v),
                CmpOp::Ge => (*v, i64::MAX),
                CmpOp::Gt => (v.saturating_add(1), i64::MAX),
                CmpOp::Le => (i64::MIN, *v),
                CmpOp::Lt => (i64::MIN, v.saturating_sub(1)),
                CmpOp::Ne => continue,
            };
            match ranges.iter_mut().find(|r| r.0 == *column) {
                Some(r) => {
                    r.1 = r.1.max(lo);
                    r.2 = r.2.min(hi);
                }
                None => ranges.push((*column, lo, hi)),
            }
        }
        ranges
            .into_iter()
            .find(|&(_, lo, hi)| lo != i64::MIN && hi != i64::MAX)
            .and_then(|(c, lo, hi)| Some((self.columns.get(c)?.name.as_str(), lo, hi)))
    }

    /// Whether a row surely satisfies the filter (`Some(true)`), surely
    /// does not (`Some(false)`: false or NULL), or might either way.
    pub fn decide<'a>(
        &self,
        positions: &[Option<usize>],
        cell: &dyn Fn(usize) -> Cell<'a>,
    ) -> Option<bool> {
        let at = |i: usize| match positions.get(i).copied().flatten() {
            Some(p) => cell(p),
            None => Cell::Missing,
        };
        match self.outcomes(&self.pred, &at) {
            T => Some(true),
            o if o & T == 0 => Some(false),
            _ => None,
        }
    }

    fn outcomes<'a>(&self, p: &Pred<KeyPart>, at: &dyn Fn(usize) -> Cell<'a>) -> u8 {
        match p {
            Pred::And(list) => list
                .iter()
                .fold(T, |acc, x| combine(acc, self.outcomes(x, at), and3)),
            Pred::Or(list) => list
                .iter()
                .fold(F, |acc, x| combine(acc, self.outcomes(x, at), or3)),
            Pred::Not(x) => {
                let o = self.outcomes(x, at);
                (if o & T != 0 { F } else { 0 }) | (if o & F != 0 { T } else { 0 }) | (o & N)
            }
            Pred::IsNull { column } => match at(*column) {
                Cell::Null => T,
                Cell::Text(_) | Cell::Unsent => F,
                Cell::Missing => T | F,
            },
            Pred::Cmp { column, op, value } => {
                let kind = match self.columns.get(*column).and_then(|c| key_kind(c.type_oid)) {
                    Some(k) => k,
                    None => return ANY,
                };
                match at(*column) {
                    Cell::Null => N,
                    Cell::Unsent => T | F,
                    Cell::Missing => ANY,
                    Cell::Text(text) => match stream_value(kind, text) {
                        Some(v) => match compare(&v, *op, value) {
                            Some(true) => T,
                            Some(false) => F,
                            None => T | F,
                        },
                        None => ANY,
                    },
                }
            }
        }
    }
}

/// `row op value`; `None` when the kinds do not compare.
fn compare(row: &KeyPart, op: CmpOp, value: &KeyPart) -> Option<bool> {
    match (row, value) {
        (KeyPart::Int(a), KeyPart::Int(b)) => Some(match op {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }),
        (KeyPart::Bytes(a), KeyPart::Bytes(b)) => match op {
            CmpOp::Eq => Some(a == b),
            CmpOp::Ne => Some(a != b),
            _ => None,
        },
        _ => None,
    }
}

/// Every outcome of `f(x, y)` for `x` in `a`, `y` in `b`.
fn combine(a: u8, b: u8, f: fn(u8, u8) -> u8) -> u8 {
    let mut out = 0;
    for x in [T, F, N] {
        for y in [T, F, N] {
            if a & x != 0 && b & y != 0 {
                out |= f(x, y);
            }
        }
    }
    out
}

fn and3(x: u8, y: u8) -> u8 {
    if x == F || y == F {
        F
    } else if x == N || y == N {
        N
    } else {
        T
    }
}

fn or3(x: u8, y: u8) -> u8 {
    if x == T || y == T {
        T
    } else if x == N || y == N {
        N
    } else {
        F
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const INT4: Oid = Oid(23);
    const TEXT: Oid = Oid(25);
    const UUID: Oid = Oid(2950);

    fn column(name: &str, type_oid: Oid) -> FilterColumn {
        FilterColumn {
            name: name.to_owned(),
            type_oid,
        }
    }

    fn cmp(column: usize, op: CmpOp, n: u32) -> Pred<KeySource> {
        Pred::Cmp {
            column,
            op,
            value: KeySource::Client(n),
        }
    }

    /// Columns `n int4`, `s text`, `u uuid`; `$1..` bound to `values`.
    fn filter(pred: Pred<KeySource>, values: &[KeyPart]) -> Filter {
        let spec = FilterSpec {
            columns: vec![column("n", INT4), column("s", TEXT), column("u", UUID)],
            pred,
        };
        spec.bind(Oid(1), 9, &|source, _| match source {
            KeySource::Client(n) => values.get(n as usize - 1).cloned(),
            KeySource::Lifted(_) => None,
        })
        .unwrap()
    }

    /// Whether a row `n, s, u` (stream order) might match.
    fn row(f: &Filter, cells: [Cell<'_>; 3]) -> bool {
        let columns = [
            ("n".to_owned(), INT4),
            ("s".to_owned(), TEXT),
            ("u".to_owned(), UUID),
        ];
        f.may_match(&f.positions(&columns), &|p| cells[p])
    }

    fn int(v: i64) -> KeyPart {
        KeyPart::Int(v)
    }

    #[test]
    fn integer_comparisons_follow_postgresql() {
        let f = filter(cmp(0, CmpOp::Gt, 1), &[int(5)]);
        let t = |text: &'static str| Cell::Text(text.as_bytes());
        assert!(row(&f, [t("7"), Cell::Null, Cell::Null]));
        assert!(!row(&f, [t("5"), Cell::Null, Cell::Null]));
        assert!(!row(&f, [t("-70"), Cell::Null, Cell::Null]));
        // NULL > 5 is NULL: not in the result.
        assert!(!row(&f, [Cell::Null, Cell::Null, Cell::Null]));
        // Unreadable or absent: it might.
        assert!(row(&f, [t("x"), Cell::Null, Cell::Null]));
        assert!(row(&f, [Cell::Missing, Cell::Null, Cell::Null]));
        let between = filter(
            Pred::And(vec![cmp(0, CmpOp::Ge, 1), cmp(0, CmpOp::Le, 2)]),
            &[int(3), int(6)],
        );
        for (n, inside) in [("2", false), ("3", true), ("6", true), ("7", false)] {
            assert_eq!(row(&between, [t(n), Cell::Null, Cell::Null]), inside, "{n}");
        }
    }

    #[test]
    fn three_valued_logic() {
        let t = |text: &'static str| Cell::Text(text.as_bytes());
        // NOT (n IN (3, 7)): NULL for a NULL n, so not in the result.
        let not_in = filter(
            Pred::Not(Box::new(Pred::Or(vec![
                cmp(0, CmpOp::Eq, 1),
                cmp(0, CmpOp::Eq, 2),
            ]))),
            &[int(3), int(7)],
        );
        assert!(!row(&not_in, [Cell::Null, Cell::Null, Cell::Null]));
        assert!(!row(&not_in, [t("7"), Cell::Null, Cell::Null]));
        assert!(row(&not_in, [t("4"), Cell::Null, Cell::Null]));
        // n = 1 OR s IS NULL: true with a NULL n when s is NULL.
        let or = filter(
            Pred::Or(vec![cmp(0, CmpOp::Eq, 1), Pred::IsNull { column: 1 }]),
            &[int(1)],
        );
        assert!(row(&or, [Cell::Null, Cell::Null, Cell::Null]));
        assert!(!row(&or, [Cell::Null, t("a"), Cell::Null]));
        // Unchanged TOAST is a value, never NULL.
        assert!(!row(&or, [t("2"), Cell::Unsent, Cell::Null]));
        let not_null = filter(Pred::Not(Box::new(Pred::IsNull { column: 1 })), &[]);
        assert!(row(&not_null, [Cell::Null, Cell::Unsent, Cell::Null]));
        assert!(!row(&not_null, [Cell::Null, Cell::Null, Cell::Null]));
    }

    #[test]
    fn text_and_uuid_compare_by_equality() {
        let t = |text: &'static str| Cell::Text(text.as_bytes());
        let uuid = crate::sql::rowkey::bound_value(
            b"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            false,
            0,
            UUID,
            true,
        )
        .unwrap();
        let f = filter(
            Pred::And(vec![cmp(1, CmpOp::Ne, 1), cmp(2, CmpOp::Eq, 2)]),
            &[KeyPart::Bytes(b"abc".to_vec().into()), uuid],
        );
        let u = t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert!(row(&f, [Cell::Null, t("abd"), u]));
        assert!(!row(&f, [Cell::Null, t("abc"), u]));
        assert!(!row(
            &f,
            [
                Cell::Null,
                t("abd"),
                t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12")
            ]
        ));
        // A text value not sent might be anything.
        assert!(row(&f, [Cell::Null, Cell::Unsent, u]));
    }

    #[test]
    fn a_column_retyped_or_gone_might_match() {
        let f = filter(cmp(0, CmpOp::Eq, 1), &[int(1)]);
        let columns = [("n".to_owned(), Oid(20)), ("s".to_owned(), TEXT)];
        let positions = f.positions(&columns);
        assert_eq!(positions[0], None);
        assert!(f.may_match(&positions, &|_| Cell::Text(b"2")));
    }
}
