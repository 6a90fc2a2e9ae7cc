//! Query shapes: a cacheable query with its literals lifted to parameters,
//! resolved against the catalog, with a fingerprint.
//!
//! `SELECT … WHERE id = 1` and `… WHERE id = 2` share one [`Shape`] and differ
//! in their [`ParamValue`]s. Lifting happens while converting (the converter
//! knows each literal's source position, which the fast path needs); this
//! module holds the results.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::catalog::Oid;

use super::ast::{Literal, LiteralType, SqlQuery, numeric_type};
use super::check::Maintenance;

/// The value of a lifted literal, typed as PostgreSQL types the constant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ParamValue {
    /// An integer constant that fits `int4` (`-2147483648` included).
    Int4(i32),
    /// An integer constant that fits `int8` but not `int4`.
    Int8(i64),
    /// Any other numeric constant, as written (`1.50`, `1e3`, huge integers).
    Numeric(String),
    /// A string constant: type `unknown`, resolved from context by the origin.
    Text(String),
}

impl ParamValue {
    /// From a lifted literal; `None` for kinds that are never lifted.
    pub(crate) fn from_literal(l: &Literal) -> Option<ParamValue> {
        match l {
            Literal::Integer(i) => Some(ParamValue::Int4(*i)),
            Literal::Numeric(text) => Some(numeric_value(text)),
            Literal::String(s) => Some(ParamValue::Text(s.clone())),
            Literal::BitString(_) | Literal::Boolean(_) | Literal::Null => None,
        }
    }

    pub fn literal_type(&self) -> LiteralType {
        match self {
            ParamValue::Int4(_) => LiteralType::Int4,
            ParamValue::Int8(_) => LiteralType::Int8,
            ParamValue::Numeric(_) => LiteralType::Numeric,
            ParamValue::Text(_) => LiteralType::Unknown,
        }
    }

    /// The value in PostgreSQL's text format, as a client would bind it.
    pub fn to_text(&self) -> String {
        match self {
            ParamValue::Int4(i) => i.to_string(),
            ParamValue::Int8(i) => i.to_string(),
            ParamValue::Numeric(s) | ParamValue::Text(s) => s.clone(),
        }
    }
}

/// An `FCONST`'s value, typed as [`numeric_type`] says.
pub(crate) fn numeric_value(text: &str) -> ParamValue {
    match numeric_type(text) {
        LiteralType::Int4 | LiteralType::Int8 => match text.parse::<i64>() {
            Ok(i) => match i32::try_from(i) {
                Ok(small) => ParamValue::Int4(small),
                Err(_) => ParamValue::Int8(i),
            },
            Err(_) => ParamValue::Numeric(text.to_owned()),
        },
        _ => ParamValue::Numeric(text.to_owned()),
    }
}

/// A cacheable query shape: equal shapes have equal results for equal
/// parameter values (under the same session settings and role).
///
/// Equality compares everything (the fingerprint first, as a shortcut); the
/// fingerprint alone is for display and indexing, never for identity.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    /// Stable 64-bit hash of the rest (for a given pgcache version).
    pub fingerprint: u64,
    /// The query with literals of `WHERE`, `LIMIT` and `OFFSET` replaced by
    /// parameters `$(client_params + 1)…`.
    pub query: Arc<SqlQuery>,
    /// The highest `$n` the client wrote (its own parameters come first).
    pub client_params: u32,
    /// The type of each lifted parameter, in order.
    pub lifted_types: Vec<LiteralType>,
    /// The tables read, in `FROM` order, as resolved for this session.
    pub tables: Vec<Oid>,
    pub maintenance: Maintenance,
    /// Aggregates, `GROUP BY` or `HAVING`.
    pub aggregates: bool,
}

impl Hash for Shape {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

impl Shape {
    pub(crate) fn new(
        query: Arc<SqlQuery>,
        client_params: u32,
        lifted_types: Vec<LiteralType>,
        tables: Vec<Oid>,
        maintenance: Maintenance,
        aggregates: bool,
    ) -> Shape {
        let mut h = Fnv64::default();
        query.hash(&mut h);
        client_params.hash(&mut h);
        lifted_types.hash(&mut h);
        tables.hash(&mut h);
        Shape {
            fingerprint: h.finish(),
            query,
            client_params,
            lifted_types,
            tables,
            maintenance,
            aggregates,
        }
    }

    /// The fingerprint as 16 hex digits.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }
}

/// FNV-1a, 64 bit: deterministic across runs and platforms (unlike std's
/// `DefaultHasher`, whose algorithm may change), cheap for small inputs.
#[derive(Clone, Copy)]
pub(crate) struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
