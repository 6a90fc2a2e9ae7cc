//! Queries: `SELECT` blocks, set operations, `VALUES`, `WITH`, `FROM`,
//! `ORDER BY`, `LIMIT`/`OFFSET` and locking clauses.

use pg_query::protobuf::{self as pb, node::Node as N};

use super::super::ast::*;
use super::expr::{expr, exprs, strings};
use super::{Cx, Lift, R, modifying_kind, unsupported};

pub(super) fn query(cx: &mut Cx, s: &pb::SelectStmt) -> R<SqlQuery> {
    let saved = cx.lifting;
    cx.lifting = false;
    cx.depth += 1;
    let q = query_inner(cx, s);
    cx.depth -= 1;
    cx.lifting = saved;
    q
}

/// Run `f` with lifting on if this is the statement's own query.
fn lifted_region<T>(cx: &mut Cx, f: impl FnOnce(&mut Cx) -> T) -> T {
    let saved = cx.lifting;
    cx.lifting = cx.lift == Lift::Shape && cx.depth == 1;
    let r = f(cx);
    cx.lifting = saved;
    r
}

fn query_inner(cx: &mut Cx, s: &pb::SelectStmt) -> R<SqlQuery> {
    if s.into_clause.is_some() {
        return unsupported("SELECT INTO inside a query");
    }
    let with = match &s.with_clause {
        Some(w) => Some(with_clause(cx, w)?),
        None => None,
    };
    let body = match s.op() {
        pb::SetOperation::SetopNone | pb::SetOperation::Undefined => {
            if !s.values_lists.is_empty() {
                let rows = s
                    .values_lists
                    .iter()
                    .map(|row| match &row.node {
                        Some(N::List(l)) => exprs(cx, &l.items),
                        _ => unsupported("a malformed VALUES list"),
                    })
                    .collect::<R<Vec<_>>>()?;
                SetExpr::Values(rows)
            } else {
                SetExpr::Select(Box::new(select(cx, s)?))
            }
        }
        op => {
            let op = match op {
                pb::SetOperation::SetopUnion => SetOperator::Union,
                pb::SetOperation::SetopIntersect => SetOperator::Intersect,
                _ => SetOperator::Except,
            };
            let (Some(l), Some(r)) = (&s.larg, &s.rarg) else {
                return unsupported("a malformed set operation");
            };
            SetExpr::SetOperation {
                op,
                all: s.all,
                left: Box::new(query(cx, l)?),
                right: Box::new(query(cx, r)?),
            }
        }
    };
    let order_by = s
        .sort_clause
        .iter()
        .map(|n| sort_by(cx, n))
        .collect::<R<Vec<_>>>()?;
    let limit = match s.limit_count.as_deref() {
        Some(n) if !is_null_const(n) => Some(lifted_region(cx, |cx| expr(cx, n))?),
        _ => None,
    };
    let offset = match s.limit_offset.as_deref() {
        Some(n) => Some(lifted_region(cx, |cx| expr(cx, n))?),
        None => None,
    };
    let locking = s
        .locking_clause
        .iter()
        .map(locking_clause)
        .collect::<R<Vec<_>>>()?;
    Ok(SqlQuery {
        with,
        body,
        order_by,
        limit,
        limit_with_ties: s.limit_option() == pb::LimitOption::WithTies,
        offset,
        locking,
    })
}

fn is_null_const(n: &pb::Node) -> bool {
    matches!(&n.node, Some(N::AConst(c)) if c.isnull)
}

fn with_clause(cx: &mut Cx, w: &pb::WithClause) -> R<With> {
    let ctes = w
        .ctes
        .iter()
        .map(|c| match &c.node {
            Some(N::CommonTableExpr(cte)) => {
                if cte.search_clause.is_some() || cte.cycle_clause.is_some() {
                    return unsupported("WITH … SEARCH/CYCLE");
                }
                let body = if let Some(kind) = modifying_kind(cte.ctequery.as_deref()) {
                    CteBody::Modifying(kind)
                } else {
                    match cte.ctequery.as_deref().and_then(|n| n.node.as_ref()) {
                        Some(N::SelectStmt(s)) => CteBody::Query(Box::new(query(cx, s)?)),
                        _ => return unsupported("a common table expression of an unknown kind"),
                    }
                };
                Ok(Cte {
                    name: cte.ctename.clone(),
                    columns: strings(&cte.aliascolnames)?,
                    body,
                })
            }
            _ => unsupported("a malformed WITH clause"),
        })
        .collect::<R<Vec<_>>>()?;
    Ok(With {
        recursive: w.recursive,
        ctes,
    })
}

fn select(cx: &mut Cx, s: &pb::SelectStmt) -> R<Select> {
    if !s.window_clause.is_empty() {
        return unsupported("WINDOW clauses");
    }
    if s.group_distinct {
        return unsupported("GROUP BY DISTINCT");
    }
    let distinct = if s.distinct_clause.is_empty() {
        Distinct::None
    } else if s.distinct_clause.len() == 1 && s.distinct_clause[0].node.is_none() {
        Distinct::All
    } else {
        Distinct::On(exprs(cx, &s.distinct_clause)?)
    };
    let targets = s
        .target_list
        .iter()
        .map(|n| select_item(cx, n))
        .collect::<R<Vec<_>>>()?;
    let from = s
        .from_clause
        .iter()
        .map(|n| table_ref(cx, n))
        .collect::<R<Vec<_>>>()?;
    let selection = match s.where_clause.as_deref() {
        Some(w) => Some(lifted_region(cx, |cx| expr(cx, w))?),
        None => None,
    };
    let group_by = s
        .group_clause
        .iter()
        .map(|g| match &g.node {
            Some(N::GroupingSet(_)) => unsupported("GROUPING SETS, ROLLUP or CUBE"),
            _ => expr(cx, g),
        })
        .collect::<R<Vec<_>>>()?;
    let having = s
        .having_clause
        .as_deref()
        .map(|n| expr(cx, n))
        .transpose()?;
    Ok(Select {
        distinct,
        targets,
        from,
        selection,
        group_by,
        having,
    })
}

fn select_item(cx: &mut Cx, n: &pb::Node) -> R<SelectItem> {
    let Some(N::ResTarget(t)) = &n.node else {
        return unsupported("a malformed target list");
    };
    if !t.indirection.is_empty() {
        return unsupported("target indirection");
    }
    let Some(val) = t.val.as_deref() else {
        return unsupported("a malformed target list");
    };
    if let Some(N::ColumnRef(c)) = &val.node
        && matches!(
            c.fields.last().and_then(|f| f.node.as_ref()),
            Some(N::AStar(_))
        )
    {
        let qualifier = strings(&c.fields[..c.fields.len() - 1])?;
        return Ok(if qualifier.is_empty() {
            SelectItem::Wildcard
        } else {
            SelectItem::QualifiedWildcard(qualifier)
        });
    }
    Ok(SelectItem::Expr {
        expr: expr(cx, val)?,
        alias: (!t.name.is_empty()).then(|| t.name.clone()),
    })
}

fn alias(a: &Option<pb::Alias>) -> R<Option<TableAlias>> {
    a.as_ref()
        .map(|a| {
            Ok(TableAlias {
                name: a.aliasname.clone(),
                columns: strings(&a.colnames)?,
            })
        })
        .transpose()
}

fn range_var(r: &pb::RangeVar) -> R<ObjectName> {
    if !r.catalogname.is_empty() {
        return unsupported("database-qualified names");
    }
    Ok(ObjectName {
        schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
        name: r.relname.clone(),
    })
}

fn table_ref(cx: &mut Cx, n: &pb::Node) -> R<TableRef> {
    match &n.node {
        Some(N::RangeVar(r)) => Ok(TableRef::Table {
            name: range_var(r)?,
            alias: alias(&r.alias)?,
            only: !r.inh,
        }),
        Some(N::JoinExpr(j)) => {
            let kind = match j.jointype() {
                pb::JoinType::JoinInner => JoinKind::Inner,
                pb::JoinType::JoinLeft => JoinKind::Left,
                pb::JoinType::JoinRight => JoinKind::Right,
                pb::JoinType::JoinFull => JoinKind::Full,
                _ => return unsupported("an unusual join type"),
            };
            if j.join_using_alias.is_some() {
                return unsupported("JOIN … USING … AS");
            }
            let constraint = if j.is_natural {
                JoinConstraint::Natural
            } else if !j.using_clause.is_empty() {
                JoinConstraint::Using(strings(&j.using_clause)?)
            } else if let Some(q) = j.quals.as_deref() {
                JoinConstraint::On(expr(cx, q)?)
            } else {
                JoinConstraint::None
            };
            let (Some(l), Some(r)) = (j.larg.as_deref(), j.rarg.as_deref()) else {
                return unsupported("a malformed join");
            };
            Ok(TableRef::Join(Box::new(Join {
                kind,
                left: table_ref(cx, l)?,
                right: table_ref(cx, r)?,
                constraint,
                alias: alias(&j.alias)?,
            })))
        }
        Some(N::RangeSubselect(s)) => {
            let Some(N::SelectStmt(q)) = s.subquery.as_deref().and_then(|n| n.node.as_ref()) else {
                return unsupported("a malformed subquery in FROM");
            };
            Ok(TableRef::Subquery {
                query: Box::new(query(cx, q)?),
                alias: alias(&s.alias)?,
                lateral: s.lateral,
            })
        }
        Some(N::RangeFunction(_)) => unsupported("functions in FROM"),
        Some(N::RangeTableSample(_)) => unsupported("TABLESAMPLE"),
        Some(N::RangeTableFunc(_)) | Some(N::JsonTable(_)) => unsupported("XMLTABLE or JSON_TABLE"),
        _ => unsupported("an unusual FROM item"),
    }
}

pub(super) fn sort_by(cx: &mut Cx, n: &pb::Node) -> R<OrderBy> {
    let Some(N::SortBy(s)) = &n.node else {
        return unsupported("a malformed ORDER BY");
    };
    let direction = match s.sortby_dir() {
        pb::SortByDir::SortbyAsc => SortDirection::Asc,
        pb::SortByDir::SortbyDesc => SortDirection::Desc,
        pb::SortByDir::SortbyUsing => return unsupported("ORDER BY … USING"),
        _ => SortDirection::Default,
    };
    let nulls = match s.sortby_nulls() {
        pb::SortByNulls::SortbyNullsFirst => NullsOrder::First,
        pb::SortByNulls::SortbyNullsLast => NullsOrder::Last,
        _ => NullsOrder::Default,
    };
    let Some(e) = s.node.as_deref() else {
        return unsupported("a malformed ORDER BY");
    };
    Ok(OrderBy {
        expr: expr(cx, e)?,
        direction,
        nulls,
    })
}

pub(super) fn locking_clause(n: &pb::Node) -> R<Locking> {
    let Some(N::LockingClause(l)) = &n.node else {
        return unsupported("a malformed locking clause");
    };
    let strength = match l.strength() {
        pb::LockClauseStrength::LcsForupdate => LockStrength::Update,
        pb::LockClauseStrength::LcsFornokeyupdate => LockStrength::NoKeyUpdate,
        pb::LockClauseStrength::LcsForshare => LockStrength::Share,
        pb::LockClauseStrength::LcsForkeyshare => LockStrength::KeyShare,
        _ => return unsupported("an unknown locking clause"),
    };
    let wait = match l.wait_policy() {
        pb::LockWaitPolicy::LockWaitSkip => LockWait::SkipLocked,
        pb::LockWaitPolicy::LockWaitError => LockWait::NoWait,
        _ => LockWait::Block,
    };
    let tables = l
        .locked_rels
        .iter()
        .map(|r| match &r.node {
            Some(N::RangeVar(r)) => range_var(r),
            _ => unsupported("a malformed locking clause"),
        })
        .collect::<R<Vec<_>>>()?;
    Ok(Locking {
        strength,
        tables,
        wait,
    })
}
