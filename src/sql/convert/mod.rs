//! Pass 1b: pg_query's protobuf tree → our [`ast`](super::ast).
//!
//! Every node is either converted exactly or the whole statement becomes
//! [`Statement::Unsupported`] naming the construct; nothing is approximated.

mod classify;
mod expr;
mod query;

use pg_query::protobuf::{self as pb, node::Node as N};

use super::ast::*;
use super::kind::StatementKind;
use classify::{classify, is_temp};
use query::query;

/// A construct the converter does not handle; the text completes "uses …".
#[derive(Debug)]
pub(crate) struct Unsupported(pub String);

type R<T> = Result<T, Unsupported>;

fn unsupported<T>(what: &str) -> R<T> {
    Err(Unsupported(what.to_owned()))
}

/// Temporary numbers of lifted literals until the client's highest `$n` is known.
const LIFT_BASE: u32 = 1 << 30;

/// Whether literals are lifted to parameters while converting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lift {
    /// Keep every literal (the AST as written).
    No,
    /// Lift numeric and string literals of the top-level `WHERE`, `LIMIT`
    /// and `OFFSET` to parameters numbered after the client's own.
    Shape,
}

/// A literal lifted to a parameter, with its source location (byte offset of
/// its token, or of the `-` folded into it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LiftedLiteral {
    pub location: usize,
    pub literal: Literal,
}

/// Conversion state.
pub(crate) struct Cx {
    lift: Lift,
    /// Inside a region whose literals are lifted.
    lifting: bool,
    /// Query nesting depth (1 = the statement's own query).
    depth: u32,
    /// Lifted literals, in parameter order.
    pub lifted: Vec<LiftedLiteral>,
    /// Highest `$n` the client wrote.
    pub max_param: u32,
}

/// A converted statement with what shaping recorded.
pub(crate) struct Converted {
    pub statement: Statement,
    pub lifted: Vec<LiftedLiteral>,
    pub client_params: u32,
}

/// Convert one raw statement.
pub(crate) fn statement(raw: &pb::RawStmt, lift: Lift) -> Converted {
    let mut cx = Cx {
        lift,
        lifting: false,
        depth: 0,
        lifted: Vec::new(),
        max_param: 0,
    };
    let statement = match raw.stmt.as_deref().and_then(|n| n.node.as_ref()) {
        None => Statement::Unsupported {
            kind: StatementKind::Utility("empty statement"),
            construct: "an empty statement".to_owned(),
        },
        Some(N::SelectStmt(s)) => select_statement(&mut cx, s),
        Some(other) => Statement::Other(classify(other)),
    };
    let client_params = cx.max_param;
    let mut statement = statement;
    if !cx.lifted.is_empty()
        && let Statement::Query(q) = &mut statement
    {
        renumber(q, client_params);
    }
    Converted {
        statement,
        lifted: cx.lifted,
        client_params,
    }
}

/// Give lifted literals their final numbers, after the client's `$n`.
fn renumber(q: &mut SqlQuery, client_params: u32) {
    let mut f = |e: &mut Expr| {
        if let Expr::Param(n) = e
            && *n >= LIFT_BASE
        {
            *n = *n - LIFT_BASE + client_params + 1;
        }
    };
    if let SetExpr::Select(s) = &mut q.body
        && let Some(w) = &mut s.selection
    {
        w.for_each_mut(&mut f);
    }
    if let Some(l) = &mut q.limit {
        l.for_each_mut(&mut f);
    }
    if let Some(o) = &mut q.offset {
        o.for_each_mut(&mut f);
    }
}

fn select_statement(cx: &mut Cx, s: &pb::SelectStmt) -> Statement {
    if let Some(into) = &s.into_clause {
        return Statement::Other(StatementKind::SelectInto {
            temporary: into.rel.as_ref().is_some_and(is_temp),
        });
    }
    if let Some(with) = &s.with_clause
        && with.ctes.iter().any(|c| match &c.node {
            Some(N::CommonTableExpr(cte)) => modifying_kind(cte.ctequery.as_deref()).is_some(),
            _ => false,
        })
    {
        return Statement::Other(StatementKind::SelectWithWrites);
    }
    match query(cx, s) {
        Ok(q) => Statement::Query(Box::new(q)),
        Err(Unsupported(construct)) => Statement::Unsupported {
            kind: StatementKind::Select,
            construct,
        },
    }
}

fn modifying_kind(node: Option<&pb::Node>) -> Option<StatementKind> {
    match node.and_then(|n| n.node.as_ref()) {
        Some(N::InsertStmt(_)) => Some(StatementKind::Insert),
        Some(N::UpdateStmt(_)) => Some(StatementKind::Update),
        Some(N::DeleteStmt(_)) => Some(StatementKind::Delete),
        Some(N::MergeStmt(_)) => Some(StatementKind::Merge),
        _ => None,
    }
}
