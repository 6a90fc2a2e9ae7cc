//! Expression typing against the catalog, only as far as it is certain:
//! columns, literals, parameters, casts, and function and operator resolution
//! following PostgreSQL's rules closely enough to know every candidate that
//! could be chosen. A call is accepted only when every such candidate, every
//! implicit cast it needs and every literal conversion is immutable.

mod coerce;
mod resolve;

use crate::catalog::{CastContext, EffectivePath, FunctionKind, Oid, Snapshot, oids};

use super::ast::*;
use super::check::RangeEntry;
use super::reason::Reason;

/// Columns that exist on every table but are not in the change stream.
const SYSTEM_COLUMNS: [&str; 6] = ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"];

/// The types of the query's parameters: the client's own (`$1..=$client`)
/// are untyped; lifted literals (`$client+1..`) have their literal's type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ParamTypes<'a> {
    pub client: u32,
    pub lifted: &'a [LiteralType],
}

/// The type of an expression as far as it is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Known(Oid),
    /// A string literal or an untyped parameter: typed by context, converted
    /// by the target type's input function.
    Unknown,
    /// `NULL`.
    Null,
    /// More than one type is possible.
    Unresolved,
}

/// One argument position of a call being resolved.
#[derive(Clone, Copy)]
struct Arg {
    ty: Ty,
}

pub(crate) struct Typer<'a> {
    snapshot: &'a Snapshot,
    path: &'a EffectivePath,
    entries: &'a [RangeEntry<'a>],
    params: ParamTypes<'a>,
    /// The session created temporary objects: `pg_temp` comes first for
    /// unqualified type names too (a temporary table is also a type).
    has_temp_objects: bool,
    saw_aggregate: bool,
    in_aggregate: bool,
}

fn is_polymorphic(t: Oid) -> bool {
    matches!(
        t,
        oids::ANY
            | oids::ANYELEMENT
            | oids::ANYARRAY
            | oids::ANYNONARRAY
            | oids::ANYENUM
            | oids::ANYRANGE
            | oids::ANYMULTIRANGE
            | oids::ANYCOMPATIBLE
            | oids::ANYCOMPATIBLEARRAY
            | oids::ANYCOMPATIBLENONARRAY
            | oids::ANYCOMPATIBLERANGE
            | oids::ANYCOMPATIBLEMULTIRANGE
    )
}

fn is_array_polymorphic(t: Oid) -> bool {
    matches!(t, oids::ANYARRAY | oids::ANYCOMPATIBLEARRAY)
}

fn is_element_polymorphic(t: Oid) -> bool {
    matches!(
        t,
        oids::ANYELEMENT
            | oids::ANYNONARRAY
            | oids::ANYENUM
            | oids::ANYCOMPATIBLE
            | oids::ANYCOMPATIBLENONARRAY
    )
}

impl<'a> Typer<'a> {
    pub(crate) fn new(
        snapshot: &'a Snapshot,
        path: &'a EffectivePath,
        entries: &'a [RangeEntry<'a>],
        params: ParamTypes<'a>,
        has_temp_objects: bool,
    ) -> Typer<'a> {
        Typer {
            snapshot,
            path,
            entries,
            params,
            has_temp_objects,
            saw_aggregate: false,
            in_aggregate: false,
        }
    }

    pub(crate) fn saw_aggregate(&self) -> bool {
        self.saw_aggregate
    }

    // -- names ---------------------------------------------------------------

    fn type_name_of(&self, t: Oid) -> String {
        self.snapshot
            .type_(t)
            .map_or_else(|| format!("type {t}"), |t| t.name.clone())
    }

    /// The range entry a qualifier (`t`, or `s.t`) denotes.
    pub(crate) fn range_entry(&self, qualifier: &[String]) -> Result<usize, Reason> {
        let found: Vec<usize> = match qualifier {
            [t] => self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| &e.name == t)
                .map(|(i, _)| i)
                .collect(),
            [s, t] => self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !e.has_alias && &e.table.name == t && &e.schema_name == s)
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        };
        match found.as_slice() {
            [i] => Ok(*i),
            [] => Err(Reason::UnknownColumn(format!("{}.*", qualifier.join(".")))),
            _ => Err(Reason::AmbiguousColumn(qualifier.join("."))),
        }
    }

    /// The range entry a column reference belongs to.
    pub(crate) fn column_entry(&self, qualifier: &[String], name: &str) -> Result<usize, Reason> {
        let shown = || {
            let mut parts = qualifier.to_vec();
            parts.push(name.to_owned());
            parts.join(".")
        };
        let missing = || {
            if SYSTEM_COLUMNS.contains(&name) {
                Reason::SystemColumn(name.to_owned())
            } else {
                Reason::UnknownColumn(shown())
            }
        };
        if qualifier.is_empty() {
            let found: Vec<usize> = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.table.column(name).is_some())
                .map(|(i, _)| i)
                .collect();
            return match found.as_slice() {
                [i] => Ok(*i),
                [] => Err(missing()),
                _ => Err(Reason::AmbiguousColumn(name.to_owned())),
            };
        }
        let i = self.range_entry(qualifier).map_err(|r| match r {
            Reason::UnknownColumn(_) => Reason::UnknownColumn(shown()),
            r => r,
        })?;
        if self.entries[i].table.column(name).is_some() {
            Ok(i)
        } else {
            Err(missing())
        }
    }

    fn column_type(&self, qualifier: &[String], name: &str) -> Result<Oid, Reason> {
        let i = self.column_entry(qualifier, name)?;
        self.entries[i]
            .table
            .column(name)
            .map(|c| c.type_oid)
            .ok_or_else(|| Reason::UnknownColumn(name.to_owned()))
    }

    fn resolve_type(&self, t: &TypeName) -> Result<Oid, Reason> {
        let found = match &t.name.schema {
            Some(s) => self
                .snapshot
                .schema_by_name(s)
                .and_then(|s| self.snapshot.type_in(s.oid, &t.name.name)),
            None if self.has_temp_objects => {
                return Err(Reason::SessionTempObjects(t.name.name.clone()));
            }
            None => self
                .path
                .schemas()
                .find_map(|s| self.snapshot.type_in(s, &t.name.name)),
        };
        let mut ty = found.ok_or_else(|| Reason::UnknownType(t.name.to_string()))?;
        for _ in 0..t.array_dims.min(1) {
            ty = ty
                .array
                .and_then(|a| self.snapshot.type_(a))
                .ok_or_else(|| Reason::UnknownType(format!("{}[]", t.name)))?;
        }
        Ok(ty.oid)
    }

    // -- expressions -----------------------------------------------------------

    /// A top-level expression (target, `LIMIT`, `ORDER BY`, …).
    pub(crate) fn top_expr(&mut self, e: &Expr) -> Result<Ty, Reason> {
        self.expr(e)
    }

    /// A condition (`WHERE`, `ON`, `HAVING`): must be boolean.
    pub(crate) fn predicate(&mut self, e: &Expr) -> Result<(), Reason> {
        match self.expr(e)? {
            Ty::Known(t) if self.base(t) == oids::BOOL => Ok(()),
            Ty::Null => Ok(()),
            Ty::Unknown => self.check_input(oids::BOOL),
            _ => Err(Reason::UncertainTypes(
                "a condition that is not boolean".to_owned(),
            )),
        }
    }

    /// The common type of a list of values (`CASE`, `COALESCE`, `ARRAY[…]`):
    /// their one known type, or the one known type every other known type
    /// converts to implicitly (with immutable casts); otherwise uncertain.
    fn common(&mut self, tys: &[Ty], what: &str) -> Result<Ty, Reason> {
        if tys.contains(&Ty::Unresolved) {
            return Err(Reason::UncertainTypes(what.to_owned()));
        }
        let mut distinct: Vec<Oid> = Vec::new();
        for t in tys {
            if let Ty::Known(t) = t
                && !distinct.contains(t)
            {
                distinct.push(*t);
            }
        }
        let target = match distinct.as_slice() {
            [] => oids::TEXT,
            [one] => *one,
            many => {
                let implicit = |from: Oid, to: Oid| {
                    self.snapshot
                        .cast(from, to)
                        .or_else(|| self.snapshot.cast(self.base(from), to))
                        .is_some_and(|c| c.context == CastContext::Implicit)
                        || self.base(from) == to
                };
                let targets: Vec<Oid> = many
                    .iter()
                    .copied()
                    .filter(|&t| many.iter().all(|&o| o == t || implicit(o, t)))
                    .collect();
                let [t] = targets.as_slice() else {
                    return Err(Reason::UncertainTypes(format!("{what} of different types")));
                };
                for &o in many {
                    if o != *t {
                        self.check_cast(o, *t)?;
                    }
                }
                *t
            }
        };
        if tys.contains(&Ty::Unknown) {
            self.check_input(target)?;
        }
        Ok(if tys.iter().all(|t| *t == Ty::Null) {
            Ty::Null
        } else {
            Ty::Known(target)
        })
    }

    pub(crate) fn expr(&mut self, e: &Expr) -> Result<Ty, Reason> {
        match e {
            Expr::Column { qualifier, name } => Ok(Ty::Known(self.column_type(qualifier, name)?)),
            Expr::Literal(l) => Ok(literal_ty(l.type_class())),
            Expr::Param(n) => {
                if *n <= self.params.client {
                    return Ok(Ty::Unknown);
                }
                let i = (*n - self.params.client - 1) as usize;
                match self.params.lifted.get(i) {
                    Some(t) => Ok(literal_ty(*t)),
                    None => Err(Reason::UncertainTypes(format!("parameter ${n}"))),
                }
            }
            Expr::Prefix { op, expr } => {
                let t = self.expr(expr)?;
                self.operator(op, None, t)
            }
            Expr::Binary { op, left, right } => {
                let (l, r) = (self.expr(left)?, self.expr(right)?);
                self.operator(op, Some(l), r)
            }
            Expr::And(list) | Expr::Or(list) => {
                for x in list {
                    self.predicate(x)?;
                }
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::Not(x) => {
                self.predicate(x)?;
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::IsNull { expr, .. } => {
                self.expr(expr)?;
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::IsBool { expr, .. } => {
                self.predicate(expr)?;
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::IsDistinctFrom { left, right, .. } => {
                let (l, r) = (self.expr(left)?, self.expr(right)?);
                self.operator(&OperatorName::bare("="), Some(l), r)?;
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::InList { expr, list, .. } => {
                let l = self.expr(expr)?;
                let eq = OperatorName::bare("=");
                for x in list {
                    let r = self.expr(x)?;
                    self.operator(&eq, Some(l), r)?;
                }
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let (x, lo, hi) = (self.expr(expr)?, self.expr(low)?, self.expr(high)?);
                self.operator(&OperatorName::bare(">="), Some(x), lo)?;
                self.operator(&OperatorName::bare("<="), Some(x), hi)?;
                Ok(Ty::Known(oids::BOOL))
            }
            Expr::AnyAll {
                left, op, right, ..
            } => {
                let l = self.expr(left)?;
                let element = match right.as_ref() {
                    Expr::Array(items) => {
                        let mut tys = Vec::with_capacity(items.len());
                        for i in items {
                            tys.push(self.expr(i)?);
                        }
                        self.common(&tys, "ARRAY elements")?
                    }
                    other => match self.expr(other)? {
                        Ty::Known(t) => match self.element(t) {
                            Some(e) => Ty::Known(e),
                            None => {
                                return Err(Reason::UncertainTypes(
                                    "the array of ANY/ALL".to_owned(),
                                ));
                            }
                        },
                        Ty::Unknown => match l {
                            // An untyped array literal or parameter becomes
                            // an array of the left operand's type.
                            Ty::Known(t) => {
                                let array = self.array_of(self.base(t)).ok_or_else(|| {
                                    Reason::UncertainTypes("the array of ANY/ALL".to_owned())
                                })?;
                                self.check_input(array)?;
                                Ty::Known(t)
                            }
                            _ => {
                                return Err(Reason::UncertainTypes(
                                    "the array of ANY/ALL".to_owned(),
                                ));
                            }
                        },
                        Ty::Null => Ty::Null,
                        Ty::Unresolved => {
                            return Err(Reason::UncertainTypes("the array of ANY/ALL".to_owned()));
                        }
                    },
                };
                let r = self.operator(op, Some(l), element)?;
                if r != Ty::Known(oids::BOOL) {
                    return Err(Reason::UncertainTypes(format!("{op} ANY/ALL")));
                }
                Ok(r)
            }
            Expr::NullIf { left, right } => {
                let (l, r) = (self.expr(left)?, self.expr(right)?);
                self.operator(&OperatorName::bare("="), Some(l), r)?;
                Ok(l)
            }
            Expr::Function(f) => {
                let was = self.in_aggregate;
                let is_agg_name = self
                    .snapshot
                    .functions_named(&f.name.name)
                    .any(|c| c.kind == FunctionKind::Aggregate);
                if is_agg_name && was {
                    return Err(Reason::Unsupported("nested aggregates".to_owned()));
                }
                self.in_aggregate = was || is_agg_name;
                let r = self.function(f);
                self.in_aggregate = was;
                r
            }
            Expr::Cast { expr, ty } => {
                let from = self.expr(expr)?;
                let to = self.resolve_type(ty)?;
                for m in &ty.modifiers {
                    if !matches!(m, Expr::Literal(Literal::Integer(_)) | Expr::Column { .. }) {
                        return Err(Reason::Unsupported("unusual type modifiers".to_owned()));
                    }
                }
                match from {
                    Ty::Null => {}
                    Ty::Unknown => self.check_input(to)?,
                    Ty::Unresolved => {
                        return Err(Reason::UncertainTypes(format!(
                            "the value cast to {}",
                            ty.name
                        )));
                    }
                    Ty::Known(f) => self.check_cast(f, to)?,
                }
                Ok(Ty::Known(to))
            }
            Expr::Case {
                operand,
                whens,
                else_result,
            } => {
                let operand_ty = operand.as_ref().map(|o| self.expr(o)).transpose()?;
                let mut results = Vec::with_capacity(whens.len() + 1);
                for (cond, result) in whens {
                    match operand_ty {
                        Some(o) => {
                            let c = self.expr(cond)?;
                            self.operator(&OperatorName::bare("="), Some(o), c)?;
                        }
                        None => self.predicate(cond)?,
                    }
                    results.push(self.expr(result)?);
                }
                if let Some(e) = else_result {
                    results.push(self.expr(e)?);
                }
                self.common(&results, "CASE results")
            }
            Expr::Coalesce(list) | Expr::Greatest(list) | Expr::Least(list) => {
                let mut tys = Vec::with_capacity(list.len());
                for x in list {
                    tys.push(self.expr(x)?);
                }
                let what = match e {
                    Expr::Coalesce(_) => "COALESCE arguments",
                    _ => "GREATEST/LEAST arguments",
                };
                self.common(&tys, what)
            }
            // `ARRAY[]` has no type of its own (PostgreSQL requires a cast).
            Expr::Array(items) if items.is_empty() => Ok(Ty::Null),
            Expr::Array(items) => {
                let mut tys = Vec::with_capacity(items.len());
                for i in items {
                    tys.push(self.expr(i)?);
                }
                match self.common(&tys, "ARRAY elements")? {
                    Ty::Known(t) => Ok(self.array_of(t).map_or(Ty::Unresolved, Ty::Known)),
                    _ => Ok(Ty::Unresolved),
                }
            }
            Expr::Row(_) => Err(Reason::Unsupported("row constructors".to_owned())),
            Expr::Subquery { .. } => Err(Reason::Subquery),
            Expr::SqlValue(f) => Err(Reason::SqlValueFunction(f.sql())),
            Expr::Collate { .. } => Err(Reason::Unsupported("COLLATE".to_owned())),
            Expr::Subscript {
                expr,
                indices,
                slice,
            } => {
                // Arrays only (a domain over one reads as its base type);
                // other subscriptable types (jsonb, hstore, point) are not.
                let container = match self.expr(expr)? {
                    Ty::Known(t) => t,
                    _ => {
                        return Err(Reason::UncertainTypes("the subscripted value".to_owned()));
                    }
                };
                let Some(element) = self.element(container) else {
                    return Err(Reason::Unsupported(
                        "subscripts of a value that is not an array".to_owned(),
                    ));
                };
                for index in indices.iter().flat_map(|(l, u)| l.iter().chain(u)) {
                    // Each index is assigned to int4 (an int8 beyond it is
                    // an error, as the origin reports it).
                    match self.expr(index)? {
                        Ty::Known(t) if INTEGER_INDEX.contains(&self.base(t)) => {}
                        Ty::Null => {}
                        Ty::Unknown => self.check_input(oids::INT4)?,
                        _ => {
                            return Err(Reason::Unsupported(
                                "an array subscript that is not an integer".to_owned(),
                            ));
                        }
                    }
                }
                if *slice {
                    // A slice is an array of the element type (`int2vector`
                    // and `oidvector` slices are `int2[]` and `oid[]`).
                    Ok(self.array_of(element).map_or(Ty::Unresolved, Ty::Known))
                } else {
                    Ok(Ty::Known(element))
                }
            }
        }
    }
}

/// Types an array subscript takes as they are (`int2`, `int4`, `int8`).
const INTEGER_INDEX: [Oid; 3] = [oids::INT2, oids::INT4, oids::INT8];

/// Keep only the entries with the highest `score`.
fn keep_best<T>(list: &mut Vec<&T>, score: impl Fn(&T) -> usize) {
    if let Some(best) = list.iter().map(|c| score(c)).max() {
        list.retain(|c| score(c) == best);
    }
}

fn literal_ty(t: LiteralType) -> Ty {
    match t {
        LiteralType::Int4 => Ty::Known(oids::INT4),
        LiteralType::Int8 => Ty::Known(oids::INT8),
        LiteralType::Numeric => Ty::Known(oids::NUMERIC),
        LiteralType::Unknown => Ty::Unknown,
        LiteralType::Bit => Ty::Known(oids::BIT),
        LiteralType::Bool => Ty::Known(oids::BOOL),
        LiteralType::Null => Ty::Null,
    }
}
