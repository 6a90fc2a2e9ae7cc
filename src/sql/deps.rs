//! Which rows a cacheable statement's result depends on.
//!
//! The change stream names the rows each change touched
//! ([`crate::cache::row_hash`] of the primary key,
//! [`crate::cache::value_hash`] of each integer column's old and new value,
//! [`crate::cache::any_value_hash`] when an old value is not in the stream).
//! A statement whose inner equi-join conditions and `WHERE` conjuncts equate
//! a table's columns to parameters reads only rows with those values, so its
//! entry depends on those rows, not on every change to the table:
//!
//! - `FROM articles a JOIN votes v ON v.article_id = a.id WHERE a.id = $1`:
//!   the article whose key is `$1`, and the votes whose `article_id` is
//!   `$1` (`v.article_id = a.id = $1`);
//! - a table whose whole integer primary key equals columns of a row read
//!   by key (`JOIN users u ON u.id = a.author_id WHERE a.id = $1`) depends
//!   on the one row the lookup of those columns names
//!   ([`Dependency::Lookup`]: the proxy reads `a.author_id` after the
//!   capture);
//! - `key IN ($1, $2)` or `key = ANY($1)` (or a column equal to one in
//!   such a list): the rows with those keys, or with those values;
//! - a single table whose whole `WHERE` [`super::filter`] compiles, when
//!   the result outputs its key: the rows of the result and the new rows
//!   that might satisfy the `WHERE` ([`Dependency::Filter`], ADR 016);
//! - a table none of whose key-like columns is tied to a parameter depends
//!   on every change to it.
//!
//! Only top-level `AND`ed equalities are used; any other condition only
//! narrows the result further, so leaving it out keeps the dependency a
//! superset. A row that satisfies none of the equalities, before and after a
//! change, cannot be in the result or change it: in an inner join every
//! result row is made of rows that satisfy all of them.
//!
//! Only columns whose equality is equality of one canonical form are named
//! (integers, `uuid`, `text` and `varchar` under a byte-equal collation:
//! [`super::rowkey`]): the statement's literal or parameter and the
//! stream's text then agree on it. Lookups read integer keys only.

use std::collections::HashMap;

use super::ast::{Expr, JoinKind, OperatorName, SelectItem, SetExpr, TableRef};
use super::filter::FilterSpec;
use super::layout::{LayoutSpec, STABLE_TEXT_TYPES, SortKey};
use super::rowkey::{byte_equal_collation, key_kind};
use super::shape::Shape;
use crate::catalog::{Oid, ReplicaIdentity, Table};

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// A lifted literal: index into the analysis's parameter values.
    Lifted(usize),
    /// The client's own parameter `$n` (1-based): a Bind value.
    Client(u32),
}

/// The output columns holding a table's primary key, in key column order:
/// (0-based output position, type).
pub type OutputKey = Vec<(usize, Oid)>;

/// The values of `column IN (…)` or `column = ANY(…)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List {
    /// One value each (`IN ($1, $2)`).
    Each(Vec<KeySource>),
    /// The elements of one array value (`= ANY($1)`).
    Array(KeySource),
}

/// What one `FROM` table of a statement depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dependency {
    /// Every change to the table.
    Table(Oid),
    /// The row whose whole (integer) primary key equals these values, one
    /// per key column in column (`attnum`) order with the column's type.
    Row {
        table: Oid,
        parts: Vec<(KeySource, Oid)>,
    },
    /// Rows whose column `column` (of type `type_oid`) equals the value.
    Value {
        table: Oid,
        column: String,
        source: KeySource,
        type_oid: Oid,
        /// Where the table's primary key is in the output, when the rows
        /// of the result name every row it read ([`output_key`]).
        members: Option<OutputKey>,
    },
    /// The rows whose single-column primary key (of type `type_oid`) is
    /// one of the values (`key IN ($1, $2, …)`, `key = ANY($1)`).
    Rows {
        table: Oid,
        list: List,
        type_oid: Oid,
    },
    /// Rows whose column `column` is one of the values.
    Values {
        table: Oid,
        column: String,
        list: List,
        type_oid: Oid,
        /// As for [`Dependency::Value`].
        members: Option<OutputKey>,
    },
    /// The rows of a single-table statement's result (its key is in the
    /// output: [`output_key`]) and any row whose new version might satisfy
    /// its whole `WHERE` ([`super::filter`]).
    Filter {
        table: Oid,
        filter: FilterSpec,
        members: OutputKey,
        /// How the result can be kept up to date in place, when it can
        /// ([`super::layout`], ADR 017).
        layout: Option<LayoutSpec>,
        /// What the statement depends on when its result cannot be kept
        /// in place after all (binary results, another encoding): the
        /// dependency chosen before filters.
        instead: Option<Box<Dependency>>,
    },
    /// The row of `table` (integer primary key, default replica identity)
    /// whose key equals the `columns` (one per key column, in `attnum`
    /// order) of the row of `via` whose primary key `via_key` (columns and
    /// where their values come from) names. Until that row is read, every
    /// change to `table`.
    Lookup {
        table: Oid,
        via: Oid,
        via_key: Vec<(String, KeySource, Oid)>,
        columns: Vec<String>,
    },
}

pub use super::rowkey::INTEGER_TYPES;

/// What `shape` depends on, one [`Dependency`] per `FROM` table, with
/// `table` giving the catalog entry of a table OID. `None` when nothing can
/// be narrowed (every table depends on every change).
pub fn dependencies<'t>(
    shape: &Shape,
    table: impl Fn(Oid) -> Option<&'t Table>,
    plain_null_test: impl Fn(Oid) -> bool,
) -> Option<Vec<Dependency>> {
    let query = &shape.query;
    if query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = &query.body else {
        return None;
    };
    let (instances, conditions) = instances_of(shape, select, table)?;
    // Anything that could read other rows (of these tables or others).
    let mut exprs: Vec<&Expr> = Vec::new();
    for t in &select.targets {
        if let SelectItem::Expr { expr, .. } = t {
            exprs.push(expr);
        }
    }
    exprs.extend(select.selection.iter());
    exprs.extend(conditions.iter().copied());
    exprs.extend(select.group_by.iter());
    exprs.extend(select.having.iter());
    if let super::ast::Distinct::On(on) = &select.distinct {
        exprs.extend(on.iter());
    }
    exprs.extend(query.order_by.iter().map(|o| &o.expr));
    exprs.extend(query.limit.iter());
    exprs.extend(query.offset.iter());
    if exprs.iter().any(|e| has_subquery(e)) {
        return None;
    }
    // How often each client parameter appears anywhere.
    let mut uses: HashMap<u32, usize> = HashMap::new();
    for e in &exprs {
        count_params(e, &mut uses);
    }

    let mut conjuncts = Vec::new();
    for c in conditions.iter().copied().chain(select.selection.iter()) {
        flatten_and(c, &mut conjuncts);
    }
    // Equalities of key-like columns with each other or with a parameter;
    // a key-like column in a list of parameters.
    let node = |e: &Expr| -> Option<Node> {
        match e {
            Expr::Column { qualifier, name } => {
                let (i, column) = resolve(&instances, qualifier, name)?;
                keyable(column).then_some(Node::Column(i, column.attnum))
            }
            Expr::Param(n) => Some(Node::Param(*n)),
            _ => None,
        }
    };
    let mut pairs: Vec<(Node, Node)> = Vec::new();
    let mut lists: Vec<(Node, Listed)> = Vec::new();
    for c in conjuncts {
        if let Expr::AnyAll {
            left,
            op,
            right,
            all: false,
        } = c
            && is_builtin_equals(op)
            && let (Some(column @ Node::Column(..)), Expr::Param(n)) = (node(left), &**right)
        {
            lists.push((column, Listed::Array(*n)));
            continue;
        }
        if let Expr::InList {
            expr,
            list,
            negated: false,
        } = c
        {
            let params = list
                .iter()
                .map(|e| match e {
                    Expr::Param(n) => Some(*n),
                    _ => None,
                })
                .collect::<Option<Vec<u32>>>();
            if let (Some(column @ Node::Column(..)), Some(params)) = (node(expr), params)
                && !params.is_empty()
            {
                lists.push((column, Listed::Params(params)));
            }
            continue;
        }
        let Expr::Binary { op, left, right } = c else {
            continue;
        };
        if !is_builtin_equals(op) {
            continue;
        }
        match (node(left), node(right)) {
            (Some(l @ Node::Column(..)), Some(r)) | (Some(r), Some(l @ Node::Column(..))) => {
                pairs.push((l, r));
            }
            _ => {}
        }
    }
    // A client parameter whose type the Parse leaves open takes the type
    // PostgreSQL infers at its first use, which may be elsewhere in the
    // statement (`SELECT $1::float4 … WHERE id = $1` compares as float4):
    // its value names rows only when every use is `integer column = $n`.
    let mut typed_by_column: HashMap<u32, usize> = HashMap::new();
    for (_, r) in &pairs {
        if let Node::Param(n) = r {
            *typed_by_column.entry(*n).or_default() += 1;
        }
    }
    for (_, listed) in &lists {
        for n in listed.params() {
            *typed_by_column.entry(n).or_default() += 1;
        }
    }
    let usable = |n: u32| n > shape.client_params || typed_by_column.get(&n) == uses.get(&n);
    // Classes of equal integer columns, and the value each is bound to.
    let mut classes = Classes::default();
    for (l, r) in pairs {
        if matches!(r, Node::Param(n) if !usable(n)) {
            continue;
        }
        classes.equate(l, r);
    }

    let source = |n: u32| param_source(shape, n);
    // The list a column (or any column equal to it) is in.
    let listed = |column: Node| -> Option<List> {
        let root = classes.find(column);
        let (_, listed) = lists
            .iter()
            .find(|(c, listed)| classes.find(*c) == root && listed.params().all(usable))?;
        Some(match listed {
            Listed::Params(params) => {
                List::Each(params.iter().map(|&n| source(n)).collect::<Option<_>>()?)
            }
            Listed::Array(n) => List::Array(source(*n)?),
        })
    };
    let mut narrowed = false;
    let mut out = Vec::with_capacity(instances.len());
    for (i, instance) in instances.iter().enumerate() {
        let table = instance.table?;
        let bound = |attnum: i16| classes.bound(Node::Column(i, attnum)).and_then(source);
        // The whole `WHERE` of a statement reading one table.
        let whole_where = || {
            if instances.len() != 1 || !conditions.is_empty() {
                return None;
            }
            let members = output_key(shape, &instances, i)?;
            let column = |e: &Expr| match e {
                Expr::Column { qualifier, name } => {
                    resolve(&instances, qualifier, name).map(|(_, c)| c)
                }
                _ => None,
            };
            let filter = super::filter::compile(
                select.selection.as_ref()?,
                &column,
                &source,
                &plain_null_test,
            )?;
            // A client parameter is read as the column's type only when
            // every use of it is in the filter's comparisons.
            let typed = filter
                .client_uses(shape.client_params)
                .iter()
                .all(|&(n, count)| uses.get(&n) == Some(&count));
            typed.then_some(Dependency::Filter {
                table: table.oid,
                filter,
                layout: layout_of(shape, &instances, &members, &source),
                members,
                instead: None,
            })
        };
        let dep = row_dependency(table, &bound)
            .or_else(|| lookup_dependency(i, &instances, &classes, &source))
            .or_else(|| {
                let value = table.columns.iter().find_map(|c| {
                    if !keyable(c) {
                        return None;
                    }
                    Some(Dependency::Value {
                        table: table.oid,
                        column: c.name.clone(),
                        source: bound(c.attnum)?,
                        type_oid: c.type_oid,
                        members: members_of(c, shape, &instances, i),
                    })
                })?;
                // A result kept in place beats one dropped by its own rows'
                // changes, when an equality anchors it (ADR 017); the value
                // dependency stands in where it cannot be kept in place.
                match whole_where() {
                    Some(Dependency::Filter {
                        table,
                        filter,
                        members,
                        layout: Some(layout),
                        ..
                    }) if filter.anchored() => Some(Dependency::Filter {
                        table,
                        filter,
                        members,
                        layout: Some(layout),
                        instead: Some(Box::new(value)),
                    }),
                    _ => Some(value),
                }
            })
            .or_else(|| {
                let key = primary_key(table, keyable)?;
                let [column] = key.as_slice() else {
                    return None;
                };
                Some(Dependency::Rows {
                    table: table.oid,
                    list: listed(Node::Column(i, column.attnum))?,
                    type_oid: column.type_oid,
                })
            })
            .or_else(|| {
                table.columns.iter().find_map(|c| {
                    if !keyable(c) {
                        return None;
                    }
                    Some(Dependency::Values {
                        table: table.oid,
                        column: c.name.clone(),
                        list: listed(Node::Column(i, c.attnum))?,
                        type_oid: c.type_oid,
                        members: members_of(c, shape, &instances, i),
                    })
                })
            })
            .or_else(whole_where)
            .unwrap_or(Dependency::Table(table.oid));
        narrowed |= !matches!(dep, Dependency::Table(_));
        out.push(dep);
    }
    narrowed.then_some(out)
}

/// The `FROM` tables of `select` (inner joins and commas only) with their
/// catalog entries, and the `ON` conditions.
pub(super) fn instances_of<'q, 't>(
    shape: &Shape,
    select: &'q super::ast::Select,
    table: impl Fn(Oid) -> Option<&'t Table>,
) -> Option<(Vec<Instance<'t>>, Vec<&'q Expr>)> {
    let mut instances: Vec<Instance<'t>> = Vec::new();
    let mut conditions: Vec<&Expr> = Vec::new();
    for item in &select.from {
        collect(item, &mut instances, &mut conditions)?;
    }
    if instances.len() != shape.tables.len() {
        return None;
    }
    for (instance, &oid) in instances.iter_mut().zip(&shape.tables) {
        instance.table = Some(table(oid)?);
    }
    Some((instances, conditions))
}

/// The one `FROM` table `q.*` names (`t.*`, `schema.t.*`: only an
/// unaliased table).
pub(super) fn starred(instances: &[Instance<'_>], q: &[String]) -> Option<usize> {
    let name = q.last()?;
    let matching: Vec<usize> = (0..instances.len())
        .filter(|&k| instances[k].name == *name && (q.len() == 1 || !instances[k].aliased))
        .collect();
    match matching.as_slice() {
        [k] => Some(*k),
        _ => None,
    }
}

/// Where parameter `$n` of `shape` comes from: the client's, or a lifted
/// literal.
pub(super) fn param_source(shape: &Shape, n: u32) -> Option<KeySource> {
    if n <= shape.client_params {
        Some(KeySource::Client(n))
    } else {
        Some(KeySource::Lifted(
            usize::try_from(n - shape.client_params - 1).ok()?,
        ))
    }
}

/// Whether `column`'s values name rows ([`super::rowkey`]).
pub(super) fn keyable(column: &crate::catalog::Column) -> bool {
    key_kind(column.type_oid).is_some() && byte_equal_collation(column.collation)
}

/// The row dependency of `table` when every column of its primary key is
/// bound and the stream names its rows by that key (the replica identity
/// is the primary key, every key column [`keyable`]).
fn row_dependency(table: &Table, bound: &impl Fn(i16) -> Option<KeySource>) -> Option<Dependency> {
    let parts = primary_key(table, keyable)?
        .iter()
        .map(|c| bound(c.attnum).map(|s| (s, c.type_oid)))
        .collect::<Option<Vec<_>>>()?;
    Some(Dependency::Row {
        table: table.oid,
        parts,
    })
}

/// [`output_key`] for a value dependency on `column`, which must not be
/// text: a text value can be stored out of line, and an update that leaves
/// it unchanged sends no new value to name ("unchanged TOAST"), so a row
/// outside the result could gain the entry's other conditions unnamed.
/// Integers and uuids are always sent.
fn members_of(
    column: &crate::catalog::Column,
    shape: &Shape,
    instances: &[Instance<'_>],
    i: usize,
) -> Option<OutputKey> {
    if key_kind(column.type_oid) == Some(super::rowkey::KeyKind::Text) {
        return None;
    }
    output_key(shape, instances, i)
}

/// Where instance `i`'s primary key is in the statement's output, when its
/// result names every row of that table it read: each result row carries
/// the key of the row it came from, and no row read is left out of the
/// result without being outside its equalities (no `OFFSET`, no `WITH
/// TIES`, no aggregate or `GROUP BY`, no `DISTINCT ON`; the table read
/// once). A row read and not output is then one that an `OFFSET` would
/// have skipped — excluded — or that a `LIMIT` cut off after every output
/// row, whose change cannot change the output.
fn output_key(shape: &Shape, instances: &[Instance<'_>], i: usize) -> Option<OutputKey> {
    let query = &shape.query;
    let SetExpr::Select(select) = &query.body else {
        return None;
    };
    if query.offset.is_some()
        || query.limit_with_ties
        || shape.aggregates
        || !select.group_by.is_empty()
        || select.having.is_some()
        || matches!(select.distinct, super::ast::Distinct::On(_))
    {
        return None;
    }
    let table = instances[i].table?;
    if instances
        .iter()
        .filter(|inst| inst.table.is_some_and(|t| t.oid == table.oid))
        .count()
        != 1
    {
        return None;
    }
    let key = primary_key(table, keyable)?;
    // Output position of each of instance `i`'s columns (first use).
    let mut at: HashMap<i16, usize> = HashMap::new();
    let mut position = 0;
    let columns_of = |k: usize, at: &mut HashMap<i16, usize>, position: &mut usize| {
        for c in &instances[k].table?.columns {
            if k == i {
                at.entry(c.attnum).or_insert(*position);
            }
            *position += 1;
        }
        Some(())
    };
    for target in &select.targets {
        match target {
            SelectItem::Wildcard => {
                for k in 0..instances.len() {
                    columns_of(k, &mut at, &mut position)?;
                }
            }
            SelectItem::QualifiedWildcard(q) => {
                columns_of(starred(instances, q)?, &mut at, &mut position)?;
            }
            SelectItem::Expr { expr, .. } => {
                if let Expr::Column { qualifier, name } = expr
                    && let Some((k, column)) = resolve(instances, qualifier, name)
                    && k == i
                {
                    at.entry(column.attnum).or_insert(position);
                }
                position += 1;
            }
        }
    }
    key.iter()
        .map(|c| Some((*at.get(&c.attnum)?, c.type_oid)))
        .collect()
}

/// The layout of a single-table statement whose key is at `key` in its
/// output, when its result can be kept up to date in place: every output a
/// plain column of a type in [`STABLE_TEXT_TYPES`], ordered by integer
/// output columns that include the whole key, no `DISTINCT`; a `LIMIT`
/// (a parameter after lifting) but no `OFFSET` ([`output_key`] checked
/// that and the rest).
fn layout_of(
    shape: &Shape,
    instances: &[Instance<'_>],
    key: &OutputKey,
    source: &impl Fn(u32) -> Option<KeySource>,
) -> Option<LayoutSpec> {
    let query = &shape.query;
    let SetExpr::Select(select) = &query.body else {
        return None;
    };
    if !matches!(select.distinct, super::ast::Distinct::None) || !query.locking.is_empty() {
        return None;
    }
    let [instance] = instances else {
        return None;
    };
    let table = instance.table?;
    let stable = |c: &crate::catalog::Column| STABLE_TEXT_TYPES.contains(&c.type_oid.0);
    // Each output: its column's attnum, name and type.
    let mut outputs: Vec<(i16, String, Oid)> = Vec::new();
    let mut aliases: Vec<(&str, Option<i16>)> = Vec::new();
    for target in &select.targets {
        match target {
            SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
                if let SelectItem::QualifiedWildcard(q) = target
                    && (q.last() != Some(&instance.name) || (q.len() > 1 && instance.aliased))
                {
                    return None;
                }
                for c in &table.columns {
                    if !stable(c) {
                        return None;
                    }
                    outputs.push((c.attnum, c.name.clone(), c.type_oid));
                }
            }
            SelectItem::Expr { expr, alias } => {
                let Expr::Column { qualifier, name } = expr else {
                    return None;
                };
                let (_, c) = resolve(instances, qualifier, name)?;
                if !stable(c) {
                    return None;
                }
                if let Some(alias) = alias {
                    aliases.push((alias.as_str(), Some(c.attnum)));
                }
                outputs.push((c.attnum, c.name.clone(), c.type_oid));
            }
        }
    }
    let mut order = Vec::with_capacity(query.order_by.len());
    let mut ordered: Vec<i16> = Vec::new();
    for item in &query.order_by {
        let Expr::Column { qualifier, name } = &item.expr else {
            return None;
        };
        // A bare name in `ORDER BY` is an output column's name first.
        if qualifier.is_empty() && aliases.iter().any(|&(a, _)| a == name.as_str()) {
            return None;
        }
        let (_, c) = resolve(instances, qualifier, name)?;
        if !INTEGER_TYPES.contains(&c.type_oid.0) {
            return None;
        }
        let output = outputs
            .iter()
            .position(|(attnum, ..)| *attnum == c.attnum)?;
        let descending = matches!(item.direction, super::ast::SortDirection::Desc);
        let nulls_first = match item.nulls {
            super::ast::NullsOrder::Default => descending,
            super::ast::NullsOrder::First => true,
            super::ast::NullsOrder::Last => false,
        };
        order.push(SortKey {
            output,
            descending,
            nulls_first,
        });
        ordered.push(c.attnum);
    }
    // The order is total: the whole key is in it.
    let key_columns = primary_key(table, keyable)?;
    if key.len() != key_columns.len() || !key_columns.iter().all(|c| ordered.contains(&c.attnum)) {
        return None;
    }
    let limit = match &query.limit {
        None => None,
        Some(Expr::Param(n)) => Some(source(*n)?),
        Some(_) => return None,
    };
    Some(LayoutSpec {
        outputs: outputs.into_iter().map(|(_, n, t)| (n, t)).collect(),
        order,
        limit,
    })
}

/// The lookup dependency of instance `i`: its whole integer primary key is
/// equated to columns of one other instance whose row is named by key.
fn lookup_dependency(
    i: usize,
    instances: &[Instance<'_>],
    classes: &Classes,
    source: &impl Fn(u32) -> Option<KeySource>,
) -> Option<Dependency> {
    let table = instances[i].table?;
    let key = integer_key(table)?;
    for (j, via) in instances.iter().enumerate() {
        if j == i {
            continue;
        }
        let via_table = via.table?;
        let bound = |attnum: i16| classes.bound(Node::Column(j, attnum)).and_then(source);
        let Some(Dependency::Row { parts, .. }) = row_dependency(via_table, &bound) else {
            continue;
        };
        // Each key column of `table` equals an integer column of `via`.
        let columns = key
            .iter()
            .map(|c| {
                let root = classes.find(Node::Column(i, c.attnum));
                via_table
                    .columns
                    .iter()
                    .find(|v| {
                        INTEGER_TYPES.contains(&v.type_oid.0)
                            && classes.find(Node::Column(j, v.attnum)) == root
                    })
                    .map(|v| v.name.clone())
            })
            .collect::<Option<Vec<String>>>();
        let Some(columns) = columns else {
            continue;
        };
        let Some(via_columns) = integer_key(via_table) else {
            continue;
        };
        let via_key = via_columns
            .iter()
            .zip(parts)
            .map(|(c, (source, type_oid))| (c.name.clone(), source, type_oid))
            .collect();
        return Some(Dependency::Lookup {
            table: table.oid,
            via: via_table.oid,
            via_key,
            columns,
        });
    }
    None
}

/// The primary key columns of `table` in `attnum` order, when the stream
/// names its rows by them: default replica identity, integer columns.
fn integer_key(table: &Table) -> Option<Vec<&crate::catalog::Column>> {
    primary_key(table, |c| INTEGER_TYPES.contains(&c.type_oid.0))
}

/// The primary key columns of `table` in `attnum` order, when the stream
/// names its rows by them (default replica identity) and each is `ok`.
pub(super) fn primary_key(
    table: &Table,
    ok: impl Fn(&crate::catalog::Column) -> bool,
) -> Option<Vec<&crate::catalog::Column>> {
    if table.replica_identity != ReplicaIdentity::Default || table.primary_key.is_empty() {
        return None;
    }
    let mut key: Vec<_> = table
        .primary_key
        .iter()
        .map(|&attnum| table.columns.iter().find(|c| c.attnum == attnum))
        .collect::<Option<Vec<_>>>()?;
    key.sort_by_key(|c| c.attnum);
    key.iter().all(|c| ok(c)).then_some(key)
}

/// One `FROM` table as the statement names it.
pub(super) struct Instance<'t> {
    /// `(name, aliased)`: the alias, or the table's own name.
    pub(super) name: String,
    pub(super) aliased: bool,
    pub(super) table: Option<&'t Table>,
}

/// `FROM` tables in order (as the analysis lists them) and the `ON`
/// conditions of inner joins. `None` for anything else (outer joins are
/// cached by table).
pub(super) fn collect<'q>(
    item: &'q TableRef,
    out: &mut Vec<Instance<'_>>,
    conditions: &mut Vec<&'q Expr>,
) -> Option<()> {
    match item {
        TableRef::Table { name, alias, .. } => {
            let (name, aliased) = match alias {
                Some(a) => (a.name.clone(), true),
                None => (name.name.clone(), false),
            };
            out.push(Instance {
                name,
                aliased,
                table: None,
            });
            Some(())
        }
        TableRef::Join(j) => {
            if j.kind != JoinKind::Inner {
                return None;
            }
            collect(&j.left, out, conditions)?;
            collect(&j.right, out, conditions)?;
            match &j.constraint {
                super::ast::JoinConstraint::On(e) => conditions.push(e),
                super::ast::JoinConstraint::None => {}
                _ => return None,
            }
            Some(())
        }
        TableRef::Subquery { .. } => None,
    }
}

/// The instance and column a column reference names, when certain.
pub(super) fn resolve<'t>(
    instances: &[Instance<'t>],
    qualifier: &[String],
    name: &str,
) -> Option<(usize, &'t crate::catalog::Column)> {
    let mut found = None;
    for (i, instance) in instances.iter().enumerate() {
        let table = instance.table?;
        let matches = match qualifier {
            [] => true,
            [q] => *q == instance.name,
            // `schema.table` (or `db.schema.table`): only unaliased tables.
            [.., t] => !instance.aliased && *t == instance.name,
        };
        if !matches {
            continue;
        }
        if let Some(column) = table.column(name) {
            if found.is_some() {
                return None;
            }
            found = Some((i, column));
        }
    }
    found
}

/// The parameters of a list, as the statement has them.
enum Listed {
    Params(Vec<u32>),
    Array(u32),
}

impl Listed {
    fn params(&self) -> impl Iterator<Item = u32> + '_ {
        let (many, one) = match self {
            Listed::Params(p) => (p.as_slice(), None),
            Listed::Array(n) => (&[][..], Some(*n)),
        };
        many.iter().copied().chain(one)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    /// Instance index and `attnum`.
    Column(usize, i16),
    Param(u32),
}

/// Union-find over columns and parameters.
#[derive(Default)]
struct Classes {
    parent: HashMap<Node, Node>,
}

impl Classes {
    fn find(&self, n: Node) -> Node {
        let mut at = n;
        while let Some(&p) = self.parent.get(&at) {
            at = p;
        }
        at
    }

    fn equate(&mut self, a: Node, b: Node) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }

    /// The lowest-numbered parameter equal to `n`, when its class has one.
    fn bound(&self, n: Node) -> Option<u32> {
        let root = self.find(n);
        self.parent
            .keys()
            .copied()
            .chain([root])
            .filter(|&m| self.find(m) == root)
            .filter_map(|m| match m {
                Node::Param(p) => Some(p),
                Node::Column(..) => None,
            })
            .min()
    }
}

pub(super) fn flatten_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::And(list) => list.iter().for_each(|x| flatten_and(x, out)),
        other => out.push(other),
    }
}

pub(super) fn is_builtin_equals(op: &OperatorName) -> bool {
    op.name == "=" && op.schema.as_deref().is_none_or(|s| s == "pg_catalog")
}

/// Count the uses of each parameter in `expr`.
pub(super) fn count_params(expr: &Expr, uses: &mut HashMap<u32, usize>) {
    let mut copy = expr.clone();
    copy.for_each_mut(&mut |e| {
        if let Expr::Param(n) = e {
            *uses.entry(*n).or_default() += 1;
        }
    });
}

pub(super) fn has_subquery(expr: &Expr) -> bool {
    let mut found = false;
    let mut copy = expr.clone();
    copy.for_each_mut(&mut |e| {
        if matches!(e, Expr::Subquery { .. }) {
            found = true;
        }
    });
    found
}
