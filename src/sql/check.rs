//! Pass 3: resolve a (shaped) query against a catalog snapshot and decide
//! whether it is cacheable.
//!
//! The rules, in order: only a plain `SELECT` block; every `FROM` item an
//! ordinary, published, permanent table with a primary key (or replica
//! identity FULL) and no row-level security, joined by inner equi-joins;
//! every column, function, operator, cast and literal conversion resolved and
//! immutable. Anything uncertain is a [`Reason`].

use crate::catalog::{
    EffectivePath, Membership, Oid, Persistence, RelKind, ReplicaIdentity, Snapshot, Table, oids,
};

use super::ast::*;
use super::reason::Reason;
use super::typing::{ParamTypes, Typer};

/// What the analysis needs to know about the session and the origin.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    /// The session's resolved `search_path`; `None` when it is not known
    /// (then nothing is cacheable: even operators resolve through it).
    pub search_path: Option<&'a EffectivePath>,
    /// The session created temporary objects: an unqualified name may refer
    /// to one, which the snapshot (loaded on another connection) cannot see.
    pub has_temp_objects: bool,
}

/// How a cached result of this shape is kept exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Maintenance {
    /// Row changes can be applied to the cached result (filter and project).
    Incremental,
    /// The result is recomputed on any change to its tables (aggregates,
    /// `GROUP BY`, `DISTINCT`, `LIMIT`/`OFFSET`).
    Invalidate,
}

/// A cacheable query's resolved facts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Checked {
    /// The `FROM` tables in order of appearance (a self-join lists a table twice).
    pub tables: Vec<Oid>,
    pub maintenance: Maintenance,
    /// The query uses aggregate functions or `GROUP BY`/`HAVING`.
    pub aggregates: bool,
}

/// One `FROM` table with the name it is referenced by.
#[derive(Debug)]
pub(crate) struct RangeEntry<'s> {
    /// The alias, or the table name when there is none.
    pub name: String,
    pub has_alias: bool,
    pub schema_name: String,
    pub table: &'s Table,
}

/// Decide whether `query` is cacheable under `ctx`.
pub(crate) fn check(
    query: &SqlQuery,
    params: ParamTypes<'_>,
    ctx: &Context<'_>,
) -> Result<Checked, Reason> {
    let path = ctx.search_path.ok_or(Reason::UnknownSearchPath)?;
    if query.with.is_some() {
        return Err(Reason::Cte);
    }
    if let Some(l) = query.locking.first() {
        return Err(Reason::Locking(l.strength.sql()));
    }
    let select = match &query.body {
        SetExpr::Select(s) => s,
        SetExpr::Values(_) => return Err(Reason::Values),
        SetExpr::SetOperation { .. } => return Err(Reason::SetOperation),
    };
    if select.from.is_empty() {
        return Err(Reason::NoTable);
    }
    let mut entries = Vec::new();
    let mut join_conditions = Vec::new();
    for item in &select.from {
        collect_from(item, ctx, path, &mut entries, &mut join_conditions)?;
    }
    for (i, e) in entries.iter().enumerate() {
        if entries[..i].iter().any(|o| o.name == e.name) {
            return Err(Reason::DuplicateTableName(e.name.clone()));
        }
    }

    let mut typer = Typer::new(ctx.snapshot, path, &entries, params, ctx.has_temp_objects);
    for t in &select.targets {
        match t {
            SelectItem::Wildcard => {}
            SelectItem::QualifiedWildcard(q) => {
                typer.range_entry(q)?;
            }
            SelectItem::Expr { expr, .. } => {
                typer.top_expr(expr)?;
            }
        }
    }
    for c in &join_conditions {
        typer.predicate(c)?;
    }
    if let Some(w) = &select.selection {
        typer.predicate(w)?;
    }
    let output_names: Vec<&str> = select
        .targets
        .iter()
        .filter_map(|t| match t {
            SelectItem::Expr { alias: Some(a), .. } => Some(a.as_str()),
            SelectItem::Expr {
                expr: Expr::Column { name, .. },
                alias: None,
            } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    for g in &select.group_by {
        grouping_expr(&mut typer, g, &output_names, false)?;
    }
    if let Some(h) = &select.having {
        typer.predicate(h)?;
    }
    if let Distinct::On(list) = &select.distinct {
        for e in list {
            grouping_expr(&mut typer, e, &output_names, true)?;
        }
    }
    for o in &query.order_by {
        grouping_expr(&mut typer, &o.expr, &output_names, true)?;
    }
    if let Some(l) = &query.limit {
        typer.top_expr(l)?;
    }
    if let Some(o) = &query.offset {
        typer.top_expr(o)?;
    }
    let aggregates =
        typer.saw_aggregate() || !select.group_by.is_empty() || select.having.is_some();

    if entries.len() > 1 {
        check_connected(
            &entries,
            &join_conditions,
            select.selection.as_ref(),
            &typer,
        )?;
    }
    let invalidate = aggregates
        || select.from.iter().any(has_outer_join)
        || select.distinct != Distinct::None
        || query.limit.is_some()
        || query.offset.is_some();
    Ok(Checked {
        tables: entries.iter().map(|e| e.table.oid).collect(),
        maintenance: if invalidate {
            Maintenance::Invalidate
        } else {
            Maintenance::Incremental
        },
        aggregates,
    })
}

/// `ORDER BY`/`GROUP BY`/`DISTINCT ON` items: an output column name or
/// position, or an expression over the input.
fn grouping_expr(
    typer: &mut Typer<'_>,
    e: &Expr,
    output_names: &[&str],
    output_first: bool,
) -> Result<(), Reason> {
    match e {
        Expr::Literal(Literal::Integer(_)) => Ok(()),
        Expr::Column { qualifier, name } if qualifier.is_empty() => {
            let is_output = output_names.contains(&name.as_str());
            if output_first && is_output {
                return Ok(());
            }
            match typer.expr(e) {
                Ok(_) => Ok(()),
                Err(Reason::UnknownColumn(_)) if is_output => Ok(()),
                Err(r) => Err(r),
            }
        }
        _ => typer.top_expr(e).map(|_| ()),
    }
}

fn collect_from<'s>(
    item: &TableRef,
    ctx: &Context<'s>,
    path: &EffectivePath,
    entries: &mut Vec<RangeEntry<'s>>,
    conditions: &mut Vec<Expr>,
) -> Result<(), Reason> {
    match item {
        TableRef::Table { name, alias, only } => {
            if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                return Err(Reason::Unsupported("column aliases in FROM".to_owned()));
            }
            let table = resolve_table(name, ctx, path)?;
            let schema_name = ctx
                .snapshot
                .schema(table.schema)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            check_table(table, &schema_name, *only, ctx.snapshot)?;
            entries.push(RangeEntry {
                name: alias
                    .as_ref()
                    .map_or_else(|| table.name.clone(), |a| a.name.clone()),
                has_alias: alias.is_some(),
                schema_name,
                table,
            });
            Ok(())
        }
        TableRef::Join(j) => {
            match j.kind {
                // Outer joins are kept by invalidation on any change to
                // their tables (`deps` narrows inner joins only).
                JoinKind::Inner | JoinKind::Left | JoinKind::Right => {}
                JoinKind::Full => return Err(Reason::OuterJoin("FULL")),
            }
            if j.alias.is_some() {
                return Err(Reason::Unsupported("aliased joins".to_owned()));
            }
            collect_from(&j.left, ctx, path, entries, conditions)?;
            collect_from(&j.right, ctx, path, entries, conditions)?;
            match &j.constraint {
                JoinConstraint::On(e) => conditions.push(e.clone()),
                JoinConstraint::Using(_) | JoinConstraint::Natural => {
                    return Err(Reason::JoinUsing);
                }
                JoinConstraint::None => {}
            }
            Ok(())
        }
        TableRef::Subquery { .. } => Err(Reason::Subquery),
    }
}

fn resolve_table<'s>(
    name: &ObjectName,
    ctx: &Context<'s>,
    path: &EffectivePath,
) -> Result<&'s Table, Reason> {
    lookup_table(ctx.snapshot, path, ctx.has_temp_objects, name)
}

/// The table `name` denotes for a session with `path` (and temporary
/// objects, when `has_temp_objects`), when that is certain: a name found in
/// several schemas of the path is refused, as which one PostgreSQL uses
/// depends on the user's schema privileges. Shared by the cacheability
/// check and the proxy's accounting of writes.
pub fn lookup_table<'s>(
    snapshot: &'s Snapshot,
    path: &EffectivePath,
    has_temp_objects: bool,
    name: &ObjectName,
) -> Result<&'s Table, Reason> {
    if let Some(schema) = &name.schema {
        if schema == "pg_temp" || schema.starts_with("pg_temp_") {
            return Err(Reason::TemporaryTable(name.to_string()));
        }
        let s = snapshot
            .schema_by_name(schema)
            .ok_or_else(|| Reason::UnknownTable(name.to_string()))?;
        return snapshot
            .table_in(s.oid, &name.name)
            .ok_or_else(|| Reason::UnknownTable(name.to_string()));
    }
    if has_temp_objects {
        return Err(Reason::SessionTempObjects(name.name.clone()));
    }
    let found: Vec<&Table> = path
        .schemas()
        .filter_map(|s| snapshot.table_in(s, &name.name))
        .collect();
    match found.as_slice() {
        [] => Err(Reason::UnknownTable(name.name.clone())),
        [t] => Ok(t),
        many => Err(Reason::AmbiguousTable {
            name: name.name.clone(),
            schemas: many
                .iter()
                .map(|t| {
                    snapshot
                        .schema(t.schema)
                        .map_or_else(|| t.schema.to_string(), |s| s.name.clone())
                })
                .collect(),
        }),
    }
}

fn check_table(
    table: &Table,
    schema_name: &str,
    only: bool,
    snapshot: &Snapshot,
) -> Result<(), Reason> {
    let qualified = format!("{schema_name}.{}", table.name);
    if table.schema == oids::PG_CATALOG
        || matches!(
            schema_name,
            "pg_catalog" | "information_schema" | "pg_toast"
        )
    {
        return Err(Reason::SystemCatalog(qualified));
    }
    match table.kind {
        RelKind::Table => {}
        RelKind::View => return Err(Reason::View(qualified)),
        RelKind::MaterializedView => return Err(Reason::MaterializedView(qualified)),
        RelKind::ForeignTable => return Err(Reason::ForeignTable(qualified)),
        RelKind::Sequence => return Err(Reason::Sequence(qualified)),
        RelKind::PartitionedTable => return Err(Reason::PartitionedTable(qualified)),
        RelKind::Other(_) => return Err(Reason::OtherRelation(qualified)),
    }
    match table.persistence {
        Persistence::Permanent => {}
        Persistence::Temporary => return Err(Reason::TemporaryTable(qualified)),
        Persistence::Unlogged => return Err(Reason::UnloggedTable(qualified)),
    }
    if table.row_security {
        return Err(Reason::RowLevelSecurity(qualified));
    }
    if table.has_children && !only {
        return Err(Reason::InheritanceParent(qualified));
    }
    if table.primary_key.is_empty() && table.replica_identity != ReplicaIdentity::Full {
        return Err(Reason::NoPrimaryKey(qualified));
    }
    // Conservative for every server version: PostgreSQL 18 can publish them
    // (publish_generated_columns), which the snapshot does not read yet.
    if table.columns.iter().any(|c| c.generated) {
        return Err(Reason::GeneratedColumns(qualified));
    }
    if !snapshot.publication_required() {
        return Ok(());
    }
    let Some(publication) = snapshot.publication() else {
        return Err(Reason::NoPublication);
    };
    if let Some(action) = publication.missing_action() {
        return Err(Reason::PublicationOmits {
            publication: publication.name.clone(),
            action,
        });
    }
    match table.membership {
        Membership::Published => Ok(()),
        Membership::NotPublished => Err(Reason::NotPublished {
            table: qualified,
            publication: publication.name.clone(),
        }),
        Membership::RowFilter | Membership::ColumnList => Err(Reason::PublicationFilter {
            table: qualified,
            publication: publication.name.clone(),
        }),
    }
}

/// Every table must be linked to the others by `a.x = b.y` equalities in
/// `JOIN … ON` conditions or top-level `WHERE` conjuncts.
fn check_connected(
    entries: &[RangeEntry<'_>],
    join_conditions: &[Expr],
    selection: Option<&Expr>,
    typer: &Typer<'_>,
) -> Result<(), Reason> {
    let mut parent: Vec<usize> = (0..entries.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut conjuncts = Vec::new();
    for c in join_conditions.iter().chain(selection) {
        flatten_and(c, &mut conjuncts);
    }
    for c in conjuncts {
        if let Expr::Binary { op, left, right } = c
            && op.name == "="
            && op.schema.is_none()
            && let (
                Expr::Column {
                    qualifier: lq,
                    name: ln,
                },
                Expr::Column {
                    qualifier: rq,
                    name: rn,
                },
            ) = (left.as_ref(), right.as_ref())
            && let (Ok(l), Ok(r)) = (typer.column_entry(lq, ln), typer.column_entry(rq, rn))
        {
            let (a, b) = (find(&mut parent, l), find(&mut parent, r));
            parent[a] = b;
        }
    }
    let root = find(&mut parent, 0);
    for i in 1..entries.len() {
        if find(&mut parent, i) != root {
            return Err(Reason::CrossJoin(format!(
                "{} and {}",
                entries[0].name, entries[i].name
            )));
        }
    }
    Ok(())
}

fn has_outer_join(item: &TableRef) -> bool {
    match item {
        TableRef::Join(j) => {
            j.kind != JoinKind::Inner || has_outer_join(&j.left) || has_outer_join(&j.right)
        }
        TableRef::Table { .. } | TableRef::Subquery { .. } => false,
    }
}

fn flatten_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::And(list) => list.iter().for_each(|x| flatten_and(x, out)),
        other => out.push(other),
    }
}
