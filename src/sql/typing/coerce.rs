//! Type facts and conversions: domains, arrays, input functions, casts, and
//! whether an argument can be passed where a type is declared.

use crate::catalog::{CastContext, Oid, TypeKind, Volatility, oids};

use super::Arg;

use super::super::reason::Reason;
use super::{Ty, Typer, is_array_polymorphic, is_polymorphic};

/// How deep domains may nest before we stop following them.
const MAX_DOMAIN_DEPTH: usize = 16;

impl Typer<'_> {
    /// A domain's base type (domains of domains followed), else `t`.
    pub(super) fn base(&self, t: Oid) -> Oid {
        let mut t = t;
        for _ in 0..MAX_DOMAIN_DEPTH {
            match self.snapshot.type_(t) {
                Some(ty) if ty.kind == TypeKind::Domain => match ty.base {
                    Some(b) => t = b,
                    None => return t,
                },
                _ => return t,
            }
        }
        t
    }

    pub(super) fn element(&self, t: Oid) -> Option<Oid> {
        self.snapshot
            .type_(self.base(t))
            .filter(|ty| ty.category == b'A')
            .and_then(|ty| ty.element)
    }

    pub(super) fn array_of(&self, t: Oid) -> Option<Oid> {
        self.snapshot.type_(t).and_then(|ty| ty.array)
    }

    /// Converting an unknown-typed literal or parameter to `t` runs `t`'s
    /// input function; it must be immutable.
    ///
    /// Two catalog markings are refined: `array_in` is stable only because
    /// the element type's input may be, so the element's input decides; and
    /// `enum_in` is stable only because it reads `pg_enum`, which the snapshot
    /// pins (a change to the type is DDL and brings a new snapshot).
    pub(super) fn check_input(&self, t: Oid) -> Result<(), Reason> {
        let Some(ty) = self.snapshot.type_(t) else {
            return Err(Reason::UncertainTypes(format!("a value of type {t}")));
        };
        if ty.category == b'A'
            && let Some(e) = ty.element
        {
            return self.check_input(e);
        }
        if ty.kind == TypeKind::Enum {
            return Ok(());
        }
        if ty.input_volatility == Volatility::Immutable {
            Ok(())
        } else {
            Err(Reason::NonImmutableInput {
                type_name: ty.name.clone(),
                function: ty.input_function.clone(),
                volatility: ty.input_volatility,
            })
        }
    }

    /// The volatility of converting a `from` value to `to` (explicitly).
    pub(super) fn check_cast(&self, from: Oid, to: Oid) -> Result<(), Reason> {
        let (bf, bt) = (self.base(from), self.base(to));
        if from == to || bf == to {
            return Ok(());
        }
        if let Some(c) = self
            .snapshot
            .cast(from, to)
            .or_else(|| self.snapshot.cast(bf, bt))
        {
            return if c.volatility == Volatility::Immutable {
                if bt != to {
                    // Into a domain: its constraints are checked (domain_in's rules).
                    self.check_input(to)
                } else {
                    Ok(())
                }
            } else {
                Err(Reason::NonImmutableCast {
                    from: self.type_name_of(from),
                    to: self.type_name_of(to),
                    volatility: c.volatility,
                })
            };
        }
        if bf == bt {
            // Into a domain over the same base.
            return self.check_input(to);
        }
        if let (Some(ef), Some(et)) = (self.element(from), self.element(to)) {
            return self.check_cast(ef, et);
        }
        let (Some(f), Some(t)) = (self.snapshot.type_(bf), self.snapshot.type_(bt)) else {
            return Err(Reason::UncertainTypes(format!(
                "a cast from {from} to {to}"
            )));
        };
        // Automatic I/O conversion casts to and from string types.
        let volatility = if t.category == b'S' {
            f.output_volatility
        } else if f.category == b'S' {
            if f.output_volatility == Volatility::Immutable {
                // The target's input function, with check_input's refinements.
                return self.check_input(bt);
            }
            f.output_volatility
        } else {
            return Err(Reason::UncertainTypes(format!(
                "a cast from {} to {}",
                f.name, t.name
            )));
        };
        if volatility == Volatility::Immutable {
            Ok(())
        } else {
            Err(Reason::NonImmutableCast {
                from: f.name.clone(),
                to: t.name.clone(),
                volatility,
            })
        }
    }

    /// Can an argument of type `arg` be passed where `param` is declared
    /// (exactly, by domain, polymorphically or by an implicit cast)?
    pub(super) fn can_coerce(&self, arg: Ty, param: Oid) -> bool {
        match arg {
            Ty::Unknown | Ty::Null | Ty::Unresolved => true,
            Ty::Known(t) => {
                let b = self.base(t);
                if t == param || b == param {
                    return true;
                }
                if is_polymorphic(param) {
                    let is_array = self.element(t).is_some();
                    let kind = self.snapshot.type_(b).map(|ty| ty.kind);
                    return match param {
                        oids::ANYARRAY | oids::ANYCOMPATIBLEARRAY => is_array,
                        oids::ANYNONARRAY | oids::ANYCOMPATIBLENONARRAY => !is_array,
                        oids::ANYENUM => kind == Some(TypeKind::Enum),
                        oids::ANYRANGE | oids::ANYCOMPATIBLERANGE => kind == Some(TypeKind::Range),
                        oids::ANYMULTIRANGE | oids::ANYCOMPATIBLEMULTIRANGE => {
                            kind == Some(TypeKind::Multirange)
                        }
                        _ => true,
                    };
                }
                [t, b].iter().any(|&s| {
                    self.snapshot
                        .cast(s, param)
                        .is_some_and(|c| c.context == CastContext::Implicit)
                })
            }
        }
    }

    /// Check the conversion of one argument to a chosen candidate's parameter.
    pub(super) fn check_coercion(
        &self,
        arg: Ty,
        param: Oid,
        sibling: Option<Oid>,
    ) -> Result<(), Reason> {
        match arg {
            Ty::Null => Ok(()),
            Ty::Unresolved => Err(Reason::UncertainTypes("an argument".to_owned())),
            Ty::Unknown => {
                if is_polymorphic(param) {
                    // Resolved from the other arguments, or as text.
                    match sibling {
                        Some(s) if is_array_polymorphic(param) => match self.array_of(s) {
                            Some(a) => self.check_input(a),
                            None => self.check_input(s),
                        },
                        Some(s) => self.check_input(s),
                        None => self.check_input(oids::TEXT),
                    }
                } else {
                    self.check_input(param)
                }
            }
            Ty::Known(t) => {
                if t == param || self.base(t) == param || is_polymorphic(param) {
                    Ok(())
                } else {
                    self.check_cast(t, param)
                }
            }
        }
    }

    /// Whether `from` converts to `to` implicitly (`pg_cast` context `i`,
    /// domains as their base type).
    pub(super) fn implicit(&self, from: Oid, to: Oid) -> bool {
        self.base(from) == to
            || self
                .snapshot
                .cast(from, to)
                .or_else(|| self.snapshot.cast(self.base(from), to))
                .is_some_and(|c| c.context == CastContext::Implicit)
    }

    /// The common type of `types` as `select_common_type` chooses it: all in
    /// one category; from the first, move to a later type the current one
    /// converts to implicitly but not back, unless the current one is the
    /// category's preferred type.
    pub(super) fn common_supertype(&self, types: &[Oid]) -> Option<Oid> {
        let (&first, rest) = types.split_first()?;
        let preferred = |t: Oid| self.snapshot.type_(t).is_some_and(|t| t.preferred);
        let mut current = first;
        for &next in rest {
            if next == current {
                continue;
            }
            if self.category(next) != self.category(current) {
                return None;
            }
            if !preferred(current) && self.implicit(current, next) && !self.implicit(next, current)
            {
                current = next;
            }
        }
        Some(current)
    }

    /// The conversions a chosen candidate's polymorphic parameters imply.
    ///
    /// Arguments declared `anyelement`/`anyarray`/`anynonarray`/`anyenum`
    /// share one element type; those declared `anycompatible…` are converted
    /// to their common type (`select_common_type`), which may be a stable
    /// cast (`array_position(timestamptz[], date)` converts the date with the
    /// session's TimeZone). Unknown-typed arguments in either family are read
    /// by the input function of the resolved element type (`text` when none).
    pub(super) fn check_polymorphic(&self, params: &[Oid], args: &[Arg]) -> Result<(), Reason> {
        let uncertain = || Reason::UncertainTypes("polymorphic arguments".to_owned());
        for compatible in [false, true] {
            let mut elements: Vec<Oid> = Vec::new();
            let mut unknown = false;
            let mut range = false;
            for (&p, a) in params.iter().zip(args) {
                let array = match p {
                    oids::ANYELEMENT | oids::ANYNONARRAY | oids::ANYENUM if !compatible => false,
                    oids::ANYARRAY if !compatible => true,
                    oids::ANYCOMPATIBLE | oids::ANYCOMPATIBLENONARRAY if compatible => false,
                    oids::ANYCOMPATIBLEARRAY if compatible => true,
                    oids::ANYRANGE | oids::ANYMULTIRANGE if !compatible => {
                        range = true;
                        continue;
                    }
                    oids::ANYCOMPATIBLERANGE | oids::ANYCOMPATIBLEMULTIRANGE if compatible => {
                        range = true;
                        continue;
                    }
                    _ => continue,
                };
                match a.ty {
                    Ty::Known(t) => {
                        let e = if array {
                            self.element(t).ok_or_else(uncertain)?
                        } else {
                            self.base(t)
                        };
                        if !elements.contains(&e) {
                            elements.push(e);
                        }
                    }
                    Ty::Unknown => unknown = true,
                    Ty::Null => {}
                    Ty::Unresolved => return Err(uncertain()),
                }
            }
            let element = match elements.as_slice() {
                [] => None,
                [one] => Some(*one),
                // anyelement arguments must be alike; PostgreSQL reports an error.
                _ if !compatible => return Err(uncertain()),
                many => {
                    let target = self.common_supertype(many).ok_or_else(uncertain)?;
                    for &o in many {
                        if o != target {
                            self.check_cast(o, target)?;
                        }
                    }
                    Some(target)
                }
            };
            if range && (element.is_some() || unknown) {
                // The range's subtype decides, which the snapshot does not hold.
                if compatible {
                    return Err(uncertain());
                }
                continue;
            }
            if unknown {
                self.check_input(element.unwrap_or(oids::TEXT))?;
            }
        }
        Ok(())
    }
}
