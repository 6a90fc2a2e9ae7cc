//! Type facts and conversions: domains, arrays, input functions, casts, and
//! whether an argument can be passed where a type is declared.

use crate::catalog::{CastContext, Oid, TypeKind, Volatility, oids};

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
}
