//! Expressions, with literal lifting in the regions [`Cx`] marks.

use pg_query::protobuf::{self as pb, node::Node as N};

use super::super::ast::*;
use super::query::{query, sort_by};
use super::{Cx, LIFT_BASE, LiftedLiteral, R, unsupported};

pub(super) fn strings(nodes: &[pb::Node]) -> R<Vec<String>> {
    nodes
        .iter()
        .map(|n| match &n.node {
            Some(N::String(s)) => Ok(s.sval.clone()),
            _ => unsupported("an unusual name"),
        })
        .collect()
}

pub(super) fn object_name(nodes: &[pb::Node]) -> R<ObjectName> {
    let mut parts = strings(nodes)?;
    match parts.len() {
        1 => Ok(ObjectName::bare(parts.remove(0))),
        2 => {
            let name = parts.remove(1);
            Ok(ObjectName {
                schema: Some(parts.remove(0)),
                name,
            })
        }
        _ => unsupported("database-qualified names"),
    }
}

fn operator_name(nodes: &[pb::Node]) -> R<OperatorName> {
    let n = object_name(nodes)?;
    Ok(OperatorName {
        schema: n.schema,
        name: n.name,
    })
}

pub(super) fn exprs(cx: &mut Cx, nodes: &[pb::Node]) -> R<Vec<Expr>> {
    nodes.iter().map(|n| expr(cx, n)).collect()
}

pub(super) fn boxed(cx: &mut Cx, n: Option<&pb::Node>) -> R<Box<Expr>> {
    match n {
        Some(n) => Ok(Box::new(expr(cx, n)?)),
        None => unsupported("a malformed expression"),
    }
}

fn list_items(cx: &mut Cx, n: Option<&pb::Node>) -> R<Vec<Expr>> {
    match n.and_then(|n| n.node.as_ref()) {
        Some(N::List(l)) => exprs(cx, &l.items),
        _ => unsupported("a malformed list"),
    }
}

pub(super) fn literal(c: &pb::AConst) -> Literal {
    if c.isnull {
        return Literal::Null;
    }
    match &c.val {
        Some(pb::a_const::Val::Ival(i)) => Literal::Integer(i.ival),
        Some(pb::a_const::Val::Fval(f)) => Literal::Numeric(f.fval.clone()),
        Some(pb::a_const::Val::Sval(s)) => Literal::String(s.sval.clone()),
        Some(pb::a_const::Val::Bsval(b)) => Literal::BitString(b.bsval.clone()),
        Some(pb::a_const::Val::Boolval(b)) => Literal::Boolean(b.boolval),
        None => Literal::Null,
    }
}

pub(super) fn type_name(cx: &mut Cx, t: &pb::TypeName) -> R<TypeName> {
    if t.setof || t.pct_type {
        return unsupported("%TYPE or SETOF type names");
    }
    let saved = cx.lifting;
    cx.lifting = false;
    let modifiers = exprs(cx, &t.typmods);
    cx.lifting = saved;
    Ok(TypeName {
        name: object_name(&t.names)?,
        modifiers: modifiers?,
        array_dims: u32::try_from(t.array_bounds.len()).unwrap_or(u32::MAX),
    })
}

pub(super) fn expr(cx: &mut Cx, n: &pb::Node) -> R<Expr> {
    let Some(node) = &n.node else {
        return unsupported("an empty expression");
    };
    match node {
        N::ColumnRef(c) => {
            if c.fields.iter().any(|f| matches!(f.node, Some(N::AStar(_)))) {
                return unsupported("t.* inside an expression");
            }
            let mut parts = strings(&c.fields)?;
            let Some(name) = parts.pop() else {
                return unsupported("a malformed column reference");
            };
            if parts.len() > 2 {
                return unsupported("database-qualified names");
            }
            Ok(Expr::Column {
                qualifier: parts,
                name,
            })
        }
        N::AConst(c) => {
            let lit = literal(c);
            let liftable = matches!(
                lit,
                Literal::Integer(_) | Literal::Numeric(_) | Literal::String(_)
            );
            match usize::try_from(c.location) {
                Ok(location) if cx.lifting && liftable => {
                    let n =
                        LIFT_BASE + u32::try_from(cx.lifted.len()).unwrap_or(u32::MAX - LIFT_BASE);
                    cx.lifted.push(LiftedLiteral {
                        location,
                        literal: lit,
                    });
                    Ok(Expr::Param(n))
                }
                _ => Ok(Expr::Literal(lit)),
            }
        }
        N::ParamRef(p) => match u32::try_from(p.number) {
            Ok(n) if (1..LIFT_BASE).contains(&n) => {
                cx.max_param = cx.max_param.max(n);
                Ok(Expr::Param(n))
            }
            _ => unsupported("a parameter number out of range"),
        },
        N::AExpr(a) => a_expr(cx, a),
        N::BoolExpr(b) => {
            let args = exprs(cx, &b.args)?;
            match b.boolop() {
                pb::BoolExprType::AndExpr => Ok(Expr::And(args)),
                pb::BoolExprType::OrExpr => Ok(Expr::Or(args)),
                pb::BoolExprType::NotExpr => match <[Expr; 1]>::try_from(args) {
                    Ok([a]) => Ok(Expr::Not(Box::new(a))),
                    Err(_) => unsupported("a malformed NOT"),
                },
                pb::BoolExprType::Undefined => unsupported("a malformed boolean expression"),
            }
        }
        N::NullTest(t) => Ok(Expr::IsNull {
            expr: boxed(cx, t.arg.as_deref())?,
            negated: t.nulltesttype() == pb::NullTestType::IsNotNull,
        }),
        N::BooleanTest(t) => {
            let test = match t.booltesttype() {
                pb::BoolTestType::IsTrue => BoolTest::IsTrue,
                pb::BoolTestType::IsNotTrue => BoolTest::IsNotTrue,
                pb::BoolTestType::IsFalse => BoolTest::IsFalse,
                pb::BoolTestType::IsNotFalse => BoolTest::IsNotFalse,
                pb::BoolTestType::IsUnknown => BoolTest::IsUnknown,
                pb::BoolTestType::IsNotUnknown => BoolTest::IsNotUnknown,
                pb::BoolTestType::Undefined => return unsupported("a malformed IS test"),
            };
            Ok(Expr::IsBool {
                expr: boxed(cx, t.arg.as_deref())?,
                test,
            })
        }
        N::FuncCall(f) => function_call(cx, f).map(Expr::Function),
        N::TypeCast(c) => {
            let Some(t) = &c.type_name else {
                return unsupported("a malformed cast");
            };
            Ok(Expr::Cast {
                expr: boxed(cx, c.arg.as_deref())?,
                ty: type_name(cx, t)?,
            })
        }
        N::CaseExpr(c) => {
            let whens = c
                .args
                .iter()
                .map(|w| match &w.node {
                    Some(N::CaseWhen(w)) => Ok((
                        *boxed(cx, w.expr.as_deref())?,
                        *boxed(cx, w.result.as_deref())?,
                    )),
                    _ => unsupported("a malformed CASE"),
                })
                .collect::<R<Vec<_>>>()?;
            Ok(Expr::Case {
                operand: c.arg.as_deref().map(|a| boxed(cx, Some(a))).transpose()?,
                whens,
                else_result: c
                    .defresult
                    .as_deref()
                    .map(|a| boxed(cx, Some(a)))
                    .transpose()?,
            })
        }
        N::CoalesceExpr(c) => Ok(Expr::Coalesce(exprs(cx, &c.args)?)),
        N::MinMaxExpr(m) => {
            let args = exprs(cx, &m.args)?;
            match m.op() {
                pb::MinMaxOp::IsGreatest => Ok(Expr::Greatest(args)),
                pb::MinMaxOp::IsLeast => Ok(Expr::Least(args)),
                pb::MinMaxOp::Undefined => unsupported("a malformed GREATEST/LEAST"),
            }
        }
        N::AArrayExpr(a) => Ok(Expr::Array(exprs(cx, &a.elements)?)),
        N::RowExpr(r) => Ok(Expr::Row(exprs(cx, &r.args)?)),
        N::SubLink(s) => sublink(cx, s),
        N::SqlvalueFunction(f) => {
            use pb::SqlValueFunctionOp as O;
            // The user/role/catalog forms are calls of pg_catalog functions
            // (as PostgreSQL 16+ parses them), so the catalog decides.
            let function = match f.op() {
                O::SvfopCurrentRole => Some("current_role"),
                O::SvfopCurrentUser => Some("current_user"),
                O::SvfopUser => Some("user"),
                O::SvfopSessionUser => Some("session_user"),
                O::SvfopCurrentCatalog => Some("current_database"),
                O::SvfopCurrentSchema => Some("current_schema"),
                _ => None,
            };
            if let Some(name) = function {
                return Ok(Expr::Function(FunctionCall {
                    name: ObjectName {
                        schema: Some("pg_catalog".to_owned()),
                        name: name.to_owned(),
                    },
                    args: Vec::new(),
                    star: false,
                    distinct: false,
                    variadic: false,
                    order_by: Vec::new(),
                    filter: None,
                }));
            }
            let v = match f.op() {
                O::SvfopCurrentDate => SqlValueFunction::CurrentDate,
                O::SvfopCurrentTime | O::SvfopCurrentTimeN => SqlValueFunction::CurrentTime,
                O::SvfopCurrentTimestamp | O::SvfopCurrentTimestampN => {
                    SqlValueFunction::CurrentTimestamp
                }
                O::SvfopLocaltime | O::SvfopLocaltimeN => SqlValueFunction::LocalTime,
                O::SvfopLocaltimestamp | O::SvfopLocaltimestampN => {
                    SqlValueFunction::LocalTimestamp
                }
                _ => SqlValueFunction::Other,
            };
            Ok(Expr::SqlValue(v))
        }
        N::CollateClause(c) => Ok(Expr::Collate {
            expr: boxed(cx, c.arg.as_deref())?,
            collation: object_name(&c.collname)?,
        }),
        N::AIndirection(a) => {
            let base = boxed(cx, a.arg.as_deref())?;
            let mut indices = Vec::with_capacity(a.indirection.len());
            let mut slice = false;
            for step in &a.indirection {
                let Some(N::AIndices(i)) = &step.node else {
                    return unsupported("field selection");
                };
                slice |= i.is_slice;
                let lower = i.lidx.as_deref().map(|n| expr(cx, n)).transpose()?;
                let upper = i.uidx.as_deref().map(|n| expr(cx, n)).transpose()?;
                indices.push((lower, upper));
            }
            Ok(Expr::Subscript {
                expr: base,
                indices,
                slice,
            })
        }
        N::GroupingFunc(_) => unsupported("GROUPING()"),
        N::SetToDefault(_) => unsupported("DEFAULT"),
        N::XmlExpr(_) | N::XmlSerialize(_) => unsupported("XML expressions"),
        N::NamedArgExpr(_) => unsupported("named function arguments"),
        N::CurrentOfExpr(_) => unsupported("WHERE CURRENT OF"),
        N::JsonIsPredicate(_)
        | N::JsonFuncExpr(_)
        | N::JsonObjectConstructor(_)
        | N::JsonArrayConstructor(_)
        | N::JsonArrayQueryConstructor(_)
        | N::JsonObjectAgg(_)
        | N::JsonArrayAgg(_)
        | N::JsonParseExpr(_)
        | N::JsonScalarExpr(_)
        | N::JsonSerializeExpr(_) => unsupported("SQL/JSON expressions"),
        _ => unsupported("an expression the analyzer does not know"),
    }
}

fn a_expr(cx: &mut Cx, a: &pb::AExpr) -> R<Expr> {
    use pb::AExprKind as K;
    let op = || operator_name(&a.name);
    match a.kind() {
        K::AexprOp | K::AexprLike | K::AexprIlike | K::AexprSimilar => match a.lexpr.as_deref() {
            None => Ok(Expr::Prefix {
                op: op()?,
                expr: boxed(cx, a.rexpr.as_deref())?,
            }),
            Some(l) => Ok(Expr::Binary {
                op: op()?,
                left: Box::new(expr(cx, l)?),
                right: boxed(cx, a.rexpr.as_deref())?,
            }),
        },
        K::AexprOpAny | K::AexprOpAll => Ok(Expr::AnyAll {
            left: boxed(cx, a.lexpr.as_deref())?,
            op: op()?,
            right: boxed(cx, a.rexpr.as_deref())?,
            all: a.kind() == K::AexprOpAll,
        }),
        K::AexprDistinct | K::AexprNotDistinct => Ok(Expr::IsDistinctFrom {
            left: boxed(cx, a.lexpr.as_deref())?,
            right: boxed(cx, a.rexpr.as_deref())?,
            negated: a.kind() == K::AexprNotDistinct,
        }),
        K::AexprNullif => Ok(Expr::NullIf {
            left: boxed(cx, a.lexpr.as_deref())?,
            right: boxed(cx, a.rexpr.as_deref())?,
        }),
        K::AexprIn => {
            let negated = match op()?.name.as_str() {
                "=" => false,
                "<>" => true,
                _ => return unsupported("a malformed IN"),
            };
            Ok(Expr::InList {
                expr: boxed(cx, a.lexpr.as_deref())?,
                list: list_items(cx, a.rexpr.as_deref())?,
                negated,
            })
        }
        K::AexprBetween | K::AexprNotBetween | K::AexprBetweenSym | K::AexprNotBetweenSym => {
            let bounds = list_items(cx, a.rexpr.as_deref())?;
            let Ok([low, high]) = <[Expr; 2]>::try_from(bounds) else {
                return unsupported("a malformed BETWEEN");
            };
            Ok(Expr::Between {
                expr: boxed(cx, a.lexpr.as_deref())?,
                low: Box::new(low),
                high: Box::new(high),
                negated: matches!(a.kind(), K::AexprNotBetween | K::AexprNotBetweenSym),
                symmetric: matches!(a.kind(), K::AexprBetweenSym | K::AexprNotBetweenSym),
            })
        }
        K::Undefined => unsupported("a malformed operator expression"),
    }
}

pub(super) fn function_call(cx: &mut Cx, f: &pb::FuncCall) -> R<FunctionCall> {
    if f.over.is_some() {
        return unsupported("window functions (OVER)");
    }
    if f.agg_within_group {
        return unsupported("WITHIN GROUP");
    }
    Ok(FunctionCall {
        name: object_name(&f.funcname)?,
        args: exprs(cx, &f.args)?,
        star: f.agg_star,
        distinct: f.agg_distinct,
        variadic: f.func_variadic,
        order_by: f
            .agg_order
            .iter()
            .map(|n| sort_by(cx, n))
            .collect::<R<Vec<_>>>()?,
        filter: f
            .agg_filter
            .as_deref()
            .map(|e| boxed(cx, Some(e)))
            .transpose()?,
    })
}

fn sublink(cx: &mut Cx, s: &pb::SubLink) -> R<Expr> {
    use pb::SubLinkType as T;
    let Some(N::SelectStmt(q)) = s.subselect.as_deref().and_then(|n| n.node.as_ref()) else {
        return unsupported("a malformed subquery");
    };
    let query = Box::new(query(cx, q)?);
    let op = || -> R<OperatorName> {
        if s.oper_name.is_empty() {
            Ok(OperatorName::bare("="))
        } else {
            operator_name(&s.oper_name)
        }
    };
    let kind = match s.sub_link_type() {
        T::ExistsSublink => SubqueryKind::Exists,
        T::ExprSublink => SubqueryKind::Scalar,
        T::ArraySublink => SubqueryKind::Array,
        T::AnySublink => SubqueryKind::Any {
            expr: boxed(cx, s.testexpr.as_deref())?,
            op: op()?,
        },
        T::AllSublink => SubqueryKind::All {
            expr: boxed(cx, s.testexpr.as_deref())?,
            op: op()?,
        },
        _ => return unsupported("row comparisons with subqueries"),
    };
    Ok(Expr::Subquery { kind, query })
}
