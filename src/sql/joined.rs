//! Which inner equi-joins the change stream can keep up to date in place
//! (ADR 018), and what their entries hold.
//!
//! A join is kept from **held rows**, not from its result: for one table
//! (the *driving* one) every row its own conditions accept, read by an
//! anchor (`a.id = $1`, `o.customer_id = $1`); for each other table, every
//! row its own conditions accept whose join column has one of the values
//! the rows held for its parent name (`u.id = a.author_id`, `v.article_id
//! = a.id`). The tables form a tree of such equalities, rooted at the
//! driving table. A change is then applied to the held rows of its table
//! and the result is joined again from them.
//!
//! What qualifies, besides the entry being read in text by a UTF-8
//! session (as ADR 017):
//! - two or more tables, joined by inner joins or commas; every condition
//!   (`ON` and `WHERE`, `AND`ed) is either an equality of integer columns
//!   of two tables, or reads one table and compiles as an ADR 016 filter;
//! - one table's filter has an integer anchor; every table is reached
//!   from it by the equalities;
//! - every output a plain column of a type in [`STABLE_TEXT_TYPES`];
//! - `ORDER BY` integer columns that fix each result row: every table's
//!   row is fixed by its key among them, by the anchor on its key, or by a
//!   column of a fixed table equal to its key (`u.id = a.author_id` with
//!   `a` fixed); none needed when the anchor alone fixes every table;
//! - a `LIMIT` (a parameter after lifting) but no `OFFSET`, `DISTINCT`,
//!   aggregates, `GROUP BY`, locking or subqueries;
//! - every table's primary key integer, under the default replica
//!   identity.
//!
//! Pure.

use std::collections::HashMap;

use super::ast::{Distinct, Expr, NullsOrder, SelectItem, SetExpr, SortDirection};
use super::deps::{self, Instance, KeySource};
use super::filter::{self, FilterSpec, Pred};
use super::layout::STABLE_TEXT_TYPES;
use super::rowkey::INTEGER_TYPES;
use super::shape::Shape;
use crate::catalog::{Column, Oid, Table};

/// Most tables a kept join reads.
pub const MAX_JOIN_TABLES: usize = 8;

/// A join whose result can be kept up to date from held rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinSpec {
    /// One per `FROM` table, in order.
    pub tables: Vec<JoinTable>,
    /// The table read by its filter's anchor.
    pub driving: usize,
    /// How each other table is reached: parents before children.
    pub edges: Vec<Edge>,
    /// Other equalities between two tables' columns, tested on each
    /// combination of held rows: `((table, column), (table, column))`.
    pub extra: Vec<((usize, usize), (usize, usize))>,
    /// Each output: `(table, column)`.
    pub outputs: Vec<(usize, usize)>,
    pub order: Vec<JoinSort>,
    pub limit: Option<KeySource>,
}

/// One `FROM` table of a kept join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinTable {
    pub oid: Oid,
    /// The columns held of each row: name and type.
    pub columns: Vec<(String, Oid)>,
    /// Where the primary key is in `columns`, in key column order.
    pub key: Vec<usize>,
    /// The conditions that read this table only.
    pub filter: FilterSpec,
}

/// `child.column = parent.parent_column` (positions in each table's held
/// columns): the child's rows held are those whose column has a value the
/// parent's rows held name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub parent: usize,
    pub parent_column: usize,
    pub child: usize,
    pub column: usize,
}

/// One `ORDER BY` item: an integer column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinSort {
    pub table: usize,
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// The spec of `shape` when it is a join that can be kept in place.
pub fn join_spec<'t>(
    shape: &Shape,
    table: impl Fn(Oid) -> Option<&'t Table>,
    plain_null_test: impl Fn(Oid) -> bool,
) -> Option<JoinSpec> {
    let query = &shape.query;
    let SetExpr::Select(select) = &query.body else {
        return None;
    };
    if query.with.is_some()
        || query.offset.is_some()
        || query.limit_with_ties
        || !query.locking.is_empty()
        || shape.aggregates
        || !select.group_by.is_empty()
        || select.having.is_some()
        || !matches!(select.distinct, Distinct::None)
    {
        return None;
    }
    let (instances, conditions) = deps::instances_of(shape, select, table)?;
    if instances.len() < 2 || instances.len() > MAX_JOIN_TABLES {
        return None;
    }
    let mut exprs: Vec<&Expr> = Vec::new();
    for t in &select.targets {
        if let SelectItem::Expr { expr, .. } = t {
            exprs.push(expr);
        }
    }
    exprs.extend(select.selection.iter());
    exprs.extend(conditions.iter().copied());
    exprs.extend(query.order_by.iter().map(|o| &o.expr));
    exprs.extend(query.limit.iter());
    if exprs.iter().any(|e| deps::has_subquery(e)) {
        return None;
    }
    let mut uses: HashMap<u32, usize> = HashMap::new();
    for e in &exprs {
        deps::count_params(e, &mut uses);
    }
    let source = |n: u32| deps::param_source(shape, n);

    let mut tables: Vec<JoinTable> = Vec::with_capacity(instances.len());
    for instance in &instances {
        let t = instance.table?;
        let key = deps::primary_key(t, |c| INTEGER_TYPES.contains(&c.type_oid.0))?;
        let mut jt = JoinTable {
            oid: t.oid,
            columns: Vec::new(),
            key: Vec::new(),
            filter: FilterSpec {
                columns: Vec::new(),
                pred: Pred::And(Vec::new()),
            },
        };
        jt.key = key.iter().map(|c| held(&mut jt.columns, c)).collect();
        tables.push(jt);
    }

    // Each condition: an equality of two tables' integer columns, or a
    // condition on one table.
    let mut conjuncts = Vec::new();
    for c in conditions.iter().copied().chain(select.selection.iter()) {
        deps::flatten_and(c, &mut conjuncts);
    }
    let mut pairs: Vec<(Side<'_>, Side<'_>)> = Vec::new();
    let mut own: Vec<Vec<Expr>> = vec![Vec::new(); instances.len()];
    for c in conjuncts {
        if let Expr::Binary { op, left, right } = c
            && deps::is_builtin_equals(op)
            && let (
                Expr::Column {
                    qualifier: ql,
                    name: nl,
                },
                Expr::Column {
                    qualifier: qr,
                    name: nr,
                },
            ) = (&**left, &**right)
        {
            let l = deps::resolve(&instances, ql, nl)?;
            let r = deps::resolve(&instances, qr, nr)?;
            if l.0 != r.0 {
                if !INTEGER_TYPES.contains(&l.1.type_oid.0)
                    || !INTEGER_TYPES.contains(&r.1.type_oid.0)
                {
                    return None;
                }
                pairs.push((l, r));
                continue;
            }
        }
        let tables = referenced(c, &instances)?;
        let [i] = tables.as_slice() else {
            return None;
        };
        own[*i].push(c.clone());
    }
    // Each table's own conditions as a filter; a client parameter is read
    // as its column's type only when every use of it is in the filters.
    let mut counted: HashMap<u32, usize> = HashMap::new();
    for (i, conditions) in own.into_iter().enumerate() {
        if conditions.is_empty() {
            continue;
        }
        let column = |e: &Expr| match e {
            Expr::Column { qualifier, name } => match deps::resolve(&instances, qualifier, name) {
                Some((k, c)) if k == i => Some(c),
                _ => None,
            },
            _ => None,
        };
        let spec = filter::compile(&Expr::And(conditions), &column, &source, &plain_null_test)?;
        for (n, count) in spec.client_uses(shape.client_params) {
            *counted.entry(n).or_default() += count;
        }
        let t = instances[i].table?;
        for c in &spec.columns {
            let column = t.column(&c.name)?;
            held(&mut tables[i].columns, column);
        }
        tables[i].filter = spec;
    }
    if counted.iter().any(|(n, count)| uses.get(n) != Some(count)) {
        return None;
    }

    // The driving table: anchored, on its key first.
    let anchored: Vec<(usize, bool)> = tables
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let column = t.filter.anchor_column()?;
            let c = instances[i].table?.column(column)?;
            if !INTEGER_TYPES.contains(&c.type_oid.0) {
                return None;
            }
            let on_key = matches!(t.key.as_slice(), [k] if t.columns[*k].0 == c.name);
            Some((i, on_key))
        })
        .collect();
    let &(driving, _) = anchored
        .iter()
        .find(|(_, on_key)| *on_key)
        .or(anchored.first())?;

    // The tree of equalities from the driving table; the rest are tested
    // on each combination.
    let mut reached = vec![false; instances.len()];
    reached[driving] = true;
    let mut single = vec![false; instances.len()];
    single[driving] = anchored.iter().any(|&(i, k)| i == driving && k);
    let mut edges = Vec::new();
    let mut used = vec![false; pairs.len()];
    loop {
        let next = pairs.iter().enumerate().find_map(|(k, &(l, r))| {
            if used[k] {
                return None;
            }
            match (reached[l.0], reached[r.0]) {
                (true, false) => Some((k, l, r)),
                (false, true) => Some((k, r, l)),
                _ => None,
            }
        });
        let Some((k, (p, pc), (c, cc))) = next else {
            break;
        };
        used[k] = true;
        reached[c] = true;
        let edge = Edge {
            parent: p,
            parent_column: held(&mut tables[p].columns, pc),
            child: c,
            column: held(&mut tables[c].columns, cc),
        };
        single[c] = single[p] && matches!(tables[c].key.as_slice(), [key] if *key == edge.column);
        edges.push(edge);
    }
    if reached.iter().any(|r| !r) {
        return None;
    }
    let mut extra = Vec::new();
    for (k, &((li, lc), (ri, rc))) in pairs.iter().enumerate() {
        if !used[k] {
            extra.push((
                (li, held(&mut tables[li].columns, lc)),
                (ri, held(&mut tables[ri].columns, rc)),
            ));
        }
    }

    // Outputs: plain columns of stable text types.
    let stable = |c: &Column| STABLE_TEXT_TYPES.contains(&c.type_oid.0);
    let mut outputs = Vec::new();
    let mut aliases: Vec<&str> = Vec::new();
    for target in &select.targets {
        let whole: Vec<usize> = match target {
            SelectItem::Wildcard => (0..instances.len()).collect(),
            SelectItem::QualifiedWildcard(q) => vec![deps::starred(&instances, q)?],
            SelectItem::Expr { expr, alias } => {
                let Expr::Column { qualifier, name } = expr else {
                    return None;
                };
                let (i, c) = deps::resolve(&instances, qualifier, name)?;
                if !stable(c) {
                    return None;
                }
                if let Some(alias) = alias {
                    aliases.push(alias.as_str());
                }
                outputs.push((i, held(&mut tables[i].columns, c)));
                continue;
            }
        };
        for i in whole {
            for c in &instances[i].table?.columns {
                if !stable(c) {
                    return None;
                }
                outputs.push((i, held(&mut tables[i].columns, c)));
            }
        }
    }

    // A total order: every table that may give several rows has its key in
    // the `ORDER BY`.
    let mut order = Vec::with_capacity(query.order_by.len());
    for item in &query.order_by {
        let Expr::Column { qualifier, name } = &item.expr else {
            return None;
        };
        if qualifier.is_empty() && aliases.contains(&name.as_str()) {
            return None;
        }
        let (i, c) = deps::resolve(&instances, qualifier, name)?;
        if !INTEGER_TYPES.contains(&c.type_oid.0) {
            return None;
        }
        let descending = matches!(item.direction, SortDirection::Desc);
        order.push(JoinSort {
            table: i,
            column: held(&mut tables[i].columns, c),
            descending,
            nulls_first: match item.nulls {
                NullsOrder::Default => descending,
                NullsOrder::First => true,
                NullsOrder::Last => false,
            },
        });
    }
    // A total order: every table's row is fixed by the `ORDER BY` values
    // (its key is in them), by the anchor (on its key), or by a fixed
    // table's column equal to its key.
    let mut fixed: Vec<bool> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            single[i]
                || t.key
                    .iter()
                    .all(|&k| order.iter().any(|o| o.table == i && o.column == k))
        })
        .collect();
    let equalities: Vec<((usize, usize), (usize, usize))> = edges
        .iter()
        .map(|e| ((e.parent, e.parent_column), (e.child, e.column)))
        .chain(extra.iter().copied())
        .collect();
    loop {
        let mut more = false;
        for &(l, r) in &equalities {
            for ((a, _), (b, bc)) in [(l, r), (r, l)] {
                if fixed[a] && !fixed[b] && tables[b].key.as_slice() == [bc] {
                    fixed[b] = true;
                    more = true;
                }
            }
        }
        if !more {
            break;
        }
    }
    if fixed.iter().any(|f| !f) {
        return None;
    }
    let limit = match &query.limit {
        None => None,
        Some(Expr::Param(n)) => Some(source(*n)?),
        Some(_) => return None,
    };
    Some(JoinSpec {
        tables,
        driving,
        edges,
        extra,
        outputs,
        order,
        limit,
    })
}

/// A column of one `FROM` table: the table's index and the column.
type Side<'t> = (usize, &'t Column);

/// Position of `column` among the held `columns`, added when missing.
fn held(columns: &mut Vec<(String, Oid)>, column: &Column) -> usize {
    match columns.iter().position(|(n, _)| *n == column.name) {
        Some(p) => p,
        None => {
            columns.push((column.name.clone(), column.type_oid));
            columns.len() - 1
        }
    }
}

/// The tables whose columns `e` reads; `None` when a column does not
/// resolve.
fn referenced(e: &Expr, instances: &[Instance<'_>]) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    let mut ok = true;
    let mut copy = e.clone();
    copy.for_each_mut(&mut |x| {
        if let Expr::Column { qualifier, name } = x {
            match deps::resolve(instances, qualifier, name) {
                Some((i, _)) if !out.contains(&i) => out.push(i),
                Some(_) => {}
                None => ok = false,
            }
        }
    });
    ok.then_some(out)
}

#[cfg(test)]
#[path = "joined_tests.rs"]
mod tests;
