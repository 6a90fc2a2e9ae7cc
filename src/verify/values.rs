//! Parameter values (as SQL literals for the simple protocol, as Bind
//! parameters for the extended one) and raw result cells.

use std::error::Error;
use std::fmt;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{Format, FromSql, IsNull, ToSql, Type};

/// One parameter of a query shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Value {
    Int4(i32),
    Int8(i64),
    Text(String),
    /// Sent in text format; the literal `12.50` in the simple protocol.
    Numeric(String),
    Uuid(u128),
    Bool(bool),
    Int4Array(Vec<i32>),
}

impl Value {
    /// The value as a literal in SQL text (simple protocol).
    pub(crate) fn literal(&self) -> String {
        match self {
            Value::Int4(v) => v.to_string(),
            Value::Int8(v) => v.to_string(),
            Value::Text(s) => quote(s),
            Value::Numeric(s) => s.clone(),
            Value::Uuid(u) => quote(&uuid_text(*u)),
            Value::Bool(b) => b.to_string(),
            Value::Int4Array(items) => quote(&int_array_text(items)),
        }
    }

    /// The parameter type declared with `query_typed`.
    pub(crate) fn pg_type(&self) -> Type {
        match self {
            Value::Int4(_) => Type::INT4,
            Value::Int8(_) => Type::INT8,
            Value::Text(_) => Type::TEXT,
            Value::Numeric(_) => Type::NUMERIC,
            Value::Uuid(_) => Type::UUID,
            Value::Bool(_) => Type::BOOL,
            Value::Int4Array(_) => Type::INT4_ARRAY,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int4(v) => write!(f, "{v}::int4"),
            Value::Int8(v) => write!(f, "{v}::int8"),
            Value::Numeric(v) => write!(f, "{v}::numeric"),
            other => f.write_str(&other.literal()),
        }
    }
}

/// `'text'` with quotes doubled (standard_conforming_strings on).
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn uuid_text(u: u128) -> String {
    let h = format!("{u:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn int_array_text(items: &[i32]) -> String {
    let inner: Vec<String> = items.iter().map(i32::to_string).collect();
    format!("{{{}}}", inner.join(","))
}

type BoxError = Box<dyn Error + Sync + Send>;

fn wrong_type(value: &Value, ty: &Type) -> BoxError {
    format!("cannot bind {value} as a parameter of type {ty}").into()
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let int = |v: i64, out: &mut BytesMut| -> Result<IsNull, BoxError> {
            match *ty {
                Type::INT2 => out.put_i16(i16::try_from(v)?),
                Type::INT4 => out.put_i32(i32::try_from(v)?),
                Type::INT8 => out.put_i64(v),
                _ => return Err(wrong_type(self, ty)),
            }
            Ok(IsNull::No)
        };
        match self {
            Value::Int4(v) => int(i64::from(*v), out),
            Value::Int8(v) => int(*v, out),
            Value::Text(s) | Value::Numeric(s) => {
                // Text format (see encode_format): the bytes are the input text.
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            Value::Uuid(u) if *ty == Type::UUID => {
                out.put_slice(&u.to_be_bytes());
                Ok(IsNull::No)
            }
            Value::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            Value::Int4Array(items) if *ty == Type::INT4_ARRAY => items.to_sql(ty, out),
            _ => Err(wrong_type(self, ty)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        self.to_sql(ty, out)
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        match self {
            Value::Text(_) | Value::Numeric(_) => Format::Text,
            _ => Format::Binary,
        }
    }
}

/// A result cell as the server sent it (binary format), any type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw(pub(crate) Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

/// A binary-format cell decoded for a report (exactness is checked on the
/// bytes; this is only what a person reads).
pub(crate) fn render_binary(ty: &Type, raw: &[u8]) -> String {
    let decoded: Option<String> = match *ty {
        Type::INT2 => <[u8; 2]>::try_from(raw)
            .ok()
            .map(|b| i16::from_be_bytes(b).to_string()),
        Type::INT4 => <[u8; 4]>::try_from(raw)
            .ok()
            .map(|b| i32::from_be_bytes(b).to_string()),
        Type::INT8 => <[u8; 8]>::try_from(raw)
            .ok()
            .map(|b| i64::from_be_bytes(b).to_string()),
        Type::FLOAT8 => <[u8; 8]>::try_from(raw)
            .ok()
            .map(|b| format!("{:?}", f64::from_be_bytes(b))),
        Type::BOOL => raw.first().map(|b| (*b != 0).to_string()),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            std::str::from_utf8(raw).ok().map(|s| format!("{s:?}"))
        }
        Type::JSONB => raw
            .split_first()
            .and_then(|(_, rest)| std::str::from_utf8(rest).ok())
            .map(str::to_owned),
        Type::UUID => <[u8; 16]>::try_from(raw)
            .ok()
            .map(|b| uuid_text(u128::from_be_bytes(b))),
        Type::TIMESTAMPTZ => <[u8; 8]>::try_from(raw)
            .ok()
            .map(|b| format!("{}µs since 2000-01-01 UTC", i64::from_be_bytes(b))),
        Type::NUMERIC => render_numeric(raw),
        _ => None,
    };
    decoded.unwrap_or_else(|| {
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        format!("\\x{hex}")
    })
}

/// PostgreSQL's binary numeric: ndigits, weight, sign, dscale, base-10000 digits.
fn render_numeric(raw: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        let b = raw.get(i * 2..i * 2 + 2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).ok()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    let mut int_part = String::new();
    for pos in 0..=weight.max(0) {
        let d = if pos <= weight {
            usize::try_from(pos)
                .ok()
                .and_then(|p| digits.get(p))
                .copied()
                .unwrap_or(0)
        } else {
            0
        };
        if int_part.is_empty() {
            int_part = d.to_string();
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if weight < 0 {
        int_part = "0".into();
    }
    let mut frac = String::new();
    let mut pos = weight + 1;
    while frac.len() < dscale {
        let d = usize::try_from(pos)
            .ok()
            .and_then(|p| digits.get(p))
            .copied()
            .unwrap_or(0);
        frac.push_str(&format!("{d:04}"));
        pos += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(Value::Text("O'Brien".into()).literal(), "'O''Brien'");
        assert_eq!(Value::Int4Array(vec![1, -2]).literal(), "'{1,-2}'");
        assert_eq!(
            Value::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef).literal(),
            "'01234567-89ab-cdef-0123-456789abcdef'"
        );
    }

    #[test]
    fn numerics_render() {
        // 12345.670 : ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6700
        let raw: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6700]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(render_numeric(&raw).as_deref(), Some("12345.670"));
        // -0.05 : ndigits 1, weight -1, sign -, dscale 2, digits 500
        let raw: Vec<u8> = [1i16, -1, 0x4000, 2, 500]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(render_numeric(&raw).as_deref(), Some("-0.05"));
    }
}
