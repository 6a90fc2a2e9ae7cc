//! Function and operator resolution, following PostgreSQL's documented
//! steps far enough to know every candidate that could be chosen.

use crate::catalog::{FunctionKind, Oid, Volatility, oids};

use super::super::ast::*;
use super::super::reason::Reason;
use super::{
    Arg, Ty, Typer, is_array_polymorphic, is_element_polymorphic, is_polymorphic, keep_best,
};

impl Typer<'_> {
    /// Resolve a call among `candidates` (parameter lists with their
    /// function's schema rank) following PostgreSQL's documented steps
    /// (typeconv-func / typeconv-oper), and check every candidate that
    /// remains: a tie PostgreSQL would break further is checked as a whole.
    #[expect(
        clippy::too_many_arguments,
        reason = "one resolution routine for functions and operators"
    )]
    pub(super) fn resolve<C: Copy>(
        &self,
        args: &[Arg],
        candidates: Vec<(C, usize, Vec<Oid>)>,
        operator: bool,
        what: &dyn Fn() -> String,
        unknown: &dyn Fn(String) -> Reason,
        check_candidate: &dyn Fn(C) -> Result<(), Reason>,
        result_of: &dyn Fn(C) -> Oid,
    ) -> Result<Ty, Reason> {
        // Schema privileges are not in the snapshot, and PostgreSQL skips
        // schemas the user may not use: when the name is found in several
        // schemas, any candidate that accepts the arguments may be the one
        // chosen, so each is checked (below) besides the best match.
        let spans_schemas = candidates.iter().any(|c| c.1 != candidates[0].1);
        let all = if spans_schemas {
            candidates.clone()
        } else {
            Vec::new()
        };
        // Same signature in several schemas: the earliest on the path wins.
        let mut kept: Vec<(C, usize, Vec<Oid>)> = Vec::new();
        for c in candidates {
            if let Some(pos) = kept.iter().position(|k| k.2 == c.2) {
                if c.1 < kept[pos].1 {
                    kept[pos] = c;
                }
            } else {
                kept.push(c);
            }
        }
        let known: Vec<Option<Oid>> = args
            .iter()
            .map(|a| match a.ty {
                Ty::Known(t) => Some(t),
                _ => None,
            })
            .collect();
        let sibling = known.iter().flatten().next().copied();
        // Exact match; for a binary operator an unknown operand is assumed
        // to have the other operand's type, then domains are reduced to
        // their base types.
        let exact = |params: &[Oid], base: bool| {
            params.iter().zip(args.iter()).all(|(&p, a)| match a.ty {
                Ty::Known(t) => p == t || (base && p == self.base(t)),
                Ty::Unknown => {
                    operator
                        && args.len() == 2
                        && sibling.is_some_and(|s| p == s || (base && p == self.base(s)))
                }
                _ => false,
            })
        };
        let mut chosen: Vec<&(C, usize, Vec<Oid>)> =
            kept.iter().filter(|c| exact(&c.2, false)).collect();
        if chosen.is_empty() && operator {
            chosen = kept.iter().filter(|c| exact(&c.2, true)).collect();
        }
        if chosen.is_empty() {
            chosen = kept
                .iter()
                .filter(|c| c.2.iter().zip(args).all(|(&p, a)| self.can_coerce(a.ty, p)))
                .collect();
            // (c) most exact matches on known inputs (domains as their base).
            let exact_count = |c: &(C, usize, Vec<Oid>)| {
                c.2.iter()
                    .zip(&known)
                    .filter(|(p, k)| k.is_some_and(|k| k == **p || self.base(k) == **p))
                    .count()
            };
            keep_best(&mut chosen, exact_count);
            // (e) most preferred types where a conversion is needed.
            let preferred_count = |c: &(C, usize, Vec<Oid>)| {
                c.2.iter()
                    .zip(&known)
                    .filter(|(p, k)| {
                        k.is_some_and(|k| {
                            let k = self.base(k);
                            k != **p
                                && self.snapshot.type_(**p).is_some_and(|pt| {
                                    pt.preferred
                                        && self
                                            .snapshot
                                            .type_(k)
                                            .is_some_and(|kt| kt.category == pt.category)
                                })
                        })
                    })
                    .count()
            };
            keep_best(&mut chosen, preferred_count);
            // (f) unknown inputs: the string category if any candidate
            // accepts it there, else the one category all accept; within
            // it, the preferred type if any candidate accepts that.
            for (i, a) in args.iter().enumerate() {
                if a.ty != Ty::Unknown || chosen.len() < 2 {
                    continue;
                }
                let category = |c: &(C, usize, Vec<Oid>)| self.category(c.2[i]);
                let categories: Vec<u8> = chosen.iter().map(|c| category(c)).collect();
                let selected = if categories.contains(&b'S') {
                    Some(b'S')
                } else if categories.windows(2).all(|w| w[0] == w[1]) {
                    categories.first().copied()
                } else {
                    None
                };
                let Some(selected) = selected else { continue };
                chosen.retain(|c| category(c) == selected);
                let preferred = |c: &(C, usize, Vec<Oid>)| {
                    self.snapshot.type_(c.2[i]).is_some_and(|t| t.preferred)
                };
                if chosen.iter().any(|c| preferred(c)) {
                    chosen.retain(|c| preferred(c));
                }
            }
        }
        if chosen.is_empty() {
            return Err(unknown(what()));
        }
        let mut result: Option<Ty> = None;
        for c in &chosen {
            check_candidate(c.0)?;
            for (&p, a) in c.2.iter().zip(args) {
                self.check_coercion(a.ty, p, sibling)?;
            }
            self.check_polymorphic(&c.2, args)?;
            let r = self.result_type(result_of(c.0), &c.2, args);
            result = match result {
                None => Some(r),
                Some(prev) if prev == r => Some(prev),
                Some(_) => Some(Ty::Unresolved),
            };
        }
        for c in &all {
            if !c.2.iter().zip(args).all(|(&p, a)| self.can_coerce(a.ty, p)) {
                continue;
            }
            check_candidate(c.0)?;
            for (&p, a) in c.2.iter().zip(args) {
                self.check_coercion(a.ty, p, sibling)?;
            }
            self.check_polymorphic(&c.2, args)?;
        }
        Ok(result.unwrap_or(Ty::Unresolved))
    }

    /// `typcategory` of a type; pseudo-types are `P`.
    pub(super) fn category(&self, t: Oid) -> u8 {
        self.snapshot.type_(t).map_or(b'X', |t| t.category)
    }

    /// A candidate's result type, with polymorphic results resolved from
    /// the arguments where that is unambiguous.
    pub(super) fn result_type(&self, result: Oid, params: &[Oid], args: &[Arg]) -> Ty {
        if !is_polymorphic(result) {
            return Ty::Known(result);
        }
        for (&p, a) in params.iter().zip(args) {
            let Ty::Known(t) = a.ty else { continue };
            let t = self.base(t);
            let resolved = match (is_array_polymorphic(p), is_array_polymorphic(result)) {
                (true, true) => Some(t),
                (true, false) if is_element_polymorphic(result) => self.element(t),
                (false, true) if is_element_polymorphic(p) => self.array_of(t),
                (false, false) if is_element_polymorphic(p) && is_element_polymorphic(result) => {
                    Some(t)
                }
                _ => None,
            };
            if let Some(r) = resolved {
                return Ty::Known(r);
            }
        }
        if args.iter().all(|a| a.ty == Ty::Unknown) && is_element_polymorphic(result) {
            return Ty::Known(oids::TEXT);
        }
        Ty::Unresolved
    }

    pub(super) fn schema_rank(
        &self,
        schema: &Option<String>,
        candidate_schema: Oid,
    ) -> Option<usize> {
        match schema {
            Some(s) => self
                .snapshot
                .schema_by_name(s)
                .filter(|s| s.oid == candidate_schema)
                .map(|_| 0),
            None => self.path.rank(candidate_schema),
        }
    }

    pub(super) fn operator(
        &self,
        op: &OperatorName,
        left: Option<Ty>,
        right: Ty,
    ) -> Result<Ty, Reason> {
        let mut args = Vec::with_capacity(2);
        if let Some(l) = left {
            args.push(Arg { ty: l });
        }
        args.push(Arg { ty: right });
        let candidates: Vec<(Oid, usize, Vec<Oid>)> = self
            .snapshot
            .operators_named(&op.name)
            .filter(|o| o.left.is_some() == left.is_some())
            .filter_map(|o| {
                let rank = self.schema_rank(&op.schema, o.schema)?;
                let params = match o.left {
                    Some(l) => vec![l, o.right],
                    None => vec![o.right],
                };
                Some((o.oid, rank, params))
            })
            .collect();
        let describe = || {
            let show = |t: Ty| match t {
                Ty::Known(t) => self.type_name_of(t),
                Ty::Unknown => "unknown".to_owned(),
                Ty::Null => "null".to_owned(),
                Ty::Unresolved => "?".to_owned(),
            };
            match left {
                Some(l) => format!("{} {} {}", show(l), op, show(right)),
                None => format!("{} {}", op, show(right)),
            }
        };
        self.resolve(
            &args,
            candidates,
            true,
            &describe,
            &Reason::UnknownOperator,
            &|oid| match self.snapshot.operator_by_oid(oid) {
                Some(o) if o.volatility == Volatility::Immutable => Ok(()),
                Some(o) => Err(Reason::NonImmutableOperator {
                    name: describe(),
                    volatility: o.volatility,
                }),
                None => Err(Reason::UnknownOperator(describe())),
            },
            &|oid| {
                self.snapshot
                    .operator_by_oid(oid)
                    .map_or(oids::UNKNOWN, |o| o.result)
            },
        )
    }

    pub(super) fn function(&mut self, f: &FunctionCall) -> Result<Ty, Reason> {
        let name = f.name.to_string();
        if !f.order_by.is_empty() {
            return Err(Reason::Unsupported(
                "ORDER BY inside an aggregate".to_owned(),
            ));
        }
        if f.filter.is_some() {
            return Err(Reason::Unsupported("aggregate FILTER clauses".to_owned()));
        }
        if f.variadic {
            return Err(Reason::Unsupported("VARIADIC arguments".to_owned()));
        }
        let mut args = Vec::with_capacity(f.args.len());
        for a in &f.args {
            args.push(Arg { ty: self.expr(a)? });
        }
        let n = args.len();
        let candidates: Vec<(Oid, usize, Vec<Oid>)> = self
            .snapshot
            .functions_named(&f.name.name)
            .filter_map(|c| {
                let rank = self.schema_rank(&f.name.schema, c.schema)?;
                let declared = c.args.len();
                let params = if declared == n {
                    c.args.clone()
                } else if declared > n && declared - usize::from(c.arg_defaults) <= n {
                    c.args[..n].to_vec()
                } else if let Some(v) = c.variadic
                    && declared >= 1
                    && n >= declared - 1
                {
                    let mut p = c.args[..declared - 1].to_vec();
                    p.resize(n, v);
                    p
                } else {
                    return None;
                };
                Some((c.oid, rank, params))
            })
            .collect();
        let star = f.star;
        let describe = || name.clone();
        let mut aggregate = false;
        let ty = {
            let aggregate = &mut aggregate;
            let cell = std::cell::Cell::new(false);
            let ty = self.resolve(
                &args,
                candidates,
                false,
                &describe,
                &Reason::UnknownFunction,
                &|oid| {
                    let Some(c) = self.snapshot.function(oid) else {
                        return Err(Reason::UnknownFunction(name.clone()));
                    };
                    if c.args.len() > n {
                        // Default argument expressions run in the call and
                        // may be anything (`DEFAULT now()`).
                        return Err(Reason::Unsupported(format!(
                            "default arguments of {name}()"
                        )));
                    }
                    match c.kind {
                        FunctionKind::Function => {
                            if star {
                                return Err(Reason::UnknownFunction(format!("{name}(*)")));
                            }
                        }
                        FunctionKind::Aggregate => cell.set(true),
                        FunctionKind::Window | FunctionKind::Procedure => {
                            return Err(Reason::NotAPlainFunction(name.clone()));
                        }
                    }
                    if c.returns_set {
                        return Err(Reason::SetReturningFunction(name.clone()));
                    }
                    if c.volatility != Volatility::Immutable {
                        return Err(Reason::NonImmutableFunction {
                            name: name.clone(),
                            volatility: c.volatility,
                        });
                    }
                    Ok(())
                },
                &|oid| {
                    self.snapshot
                        .function(oid)
                        .map_or(oids::UNKNOWN, |c| c.result)
                },
            )?;
            *aggregate = cell.get();
            ty
        };
        if aggregate {
            self.saw_aggregate = true;
        }
        Ok(ty)
    }
}
