//! The cheap path from statement text to a known shape: PostgreSQL's own
//! scanner (no parser, no protobuf) turns the text into a key in which
//! literals are replaced by typed placeholders.
//!
//! Two texts with the same key are the same token sequence apart from the
//! values of plain literals of the same scanner class, so the grammar parses
//! them into the same tree apart from those constants (the parser's
//! decisions depend on token kinds, never on literal values; constants
//! whose value changes the tree — `ORDER BY 1`, type modifiers — are not
//! lifted and are compared verbatim by the template). Anything unusual keeps
//! its exact text in the key, so it only ever matches itself, and a text
//! with a backslash under `standard_conforming_strings = off` is not keyed
//! at all.

use pg_query::protobuf::Token;

use super::ast::LiteralType;
use super::shape::{ParamValue, numeric_value};

/// The scanner class of a plain literal token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LiteralClass {
    /// `ICONST` written as plain decimal digits.
    Int,
    /// `FCONST` written as plain decimal (`1.5`, `.5`, `1e10`, big integers).
    Float,
    /// `SCONST` written as `'…'` with only `''` escapes.
    Str,
}

/// One token (comments dropped).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tok {
    pub start: usize,
    pub end: usize,
    pub token: i32,
    pub literal: Option<LiteralClass>,
}

/// A scanned statement: its key and its tokens.
#[derive(Debug)]
pub(crate) struct Scan {
    pub key: Vec<u8>,
    pub tokens: Vec<Tok>,
}

const MINUS: i32 = Token::Ascii45 as i32;

fn plain_int(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `digits [. digits] [e [+-] digits]` or `. digits …`, nothing else.
fn plain_float(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// The value of a `'…'` literal whose only escapes are doubled quotes;
/// `None` for anything else (continuations across lines, prefixes).
fn plain_string(text: &str) -> Option<String> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Whether PostgreSQL's scanner finds no token at all in `sql`.
///
/// `pg_query::scan_tokens` (18.1) builds a slice from a null pointer when
/// there are no tokens, which is undefined behaviour (and aborts in debug
/// builds), so such texts never reach it. Every other character starts a
/// token or a scanner error.
pub(crate) fn has_no_tokens(sql: &str) -> bool {
    sql.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// Whether `sql` writes a number in a form PostgreSQL 16 introduced
/// (`0x1F`, `0o17`, `0b101`, `1_000`). pg_query reads it as the plain value,
/// so it would share a shape with the decimal spelling, but servers before 16
/// reject it ("trailing junk after numeric literal"); the analyzer does not
/// know the origin's version.
pub(crate) fn has_non_decimal_number(sql: &str) -> bool {
    let suspicious = sql.as_bytes().windows(2).any(|w| {
        w[0].is_ascii_digit() && matches!(w[1], b'_' | b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
    });
    if !suspicious || has_no_tokens(sql) {
        return false;
    }
    let Ok(raw) = pg_query::scan_tokens(sql) else {
        return true;
    };
    raw.iter().any(|t| {
        let text = usize::try_from(t.start)
            .ok()
            .zip(usize::try_from(t.end).ok())
            .and_then(|(s, e)| sql.get(s..e))
            .unwrap_or("_");
        (t.token == Token::Iconst as i32 && !plain_int(text))
            || (t.token == Token::Fconst as i32 && !plain_float(text))
    })
}

/// Scan `sql` into a key, or `None` when the text must take the full parse.
pub(crate) fn scan(sql: &str, standard_conforming_strings: bool) -> Option<Scan> {
    if !standard_conforming_strings && sql.contains('\\') {
        return None;
    }
    if has_no_tokens(sql) {
        return None;
    }
    let raw = pg_query::scan_tokens(sql).ok()?;
    let mut key = Vec::with_capacity(sql.len() + 16);
    let mut tokens = Vec::with_capacity(raw.len());
    for t in &raw {
        if t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32 {
            continue;
        }
        let (start, end) = (usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?);
        let text = sql.get(start..end)?;
        let literal = if t.token == Token::Iconst as i32 && plain_int(text) {
            Some(LiteralClass::Int)
        } else if t.token == Token::Fconst as i32 && plain_float(text) {
            Some(LiteralClass::Float)
        } else if t.token == Token::Sconst as i32 && plain_string(text).is_some() {
            Some(LiteralClass::Str)
        } else {
            None
        };
        key.extend_from_slice(&t.token.to_le_bytes());
        match literal {
            Some(class) => key.push(class as u8),
            None => {
                key.extend_from_slice(&u32::try_from(text.len()).ok()?.to_le_bytes());
                let fold = t.keyword_kind != 0
                    || (t.token == Token::Ident as i32 && !text.starts_with('"'));
                if fold {
                    key.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
                } else {
                    key.extend_from_slice(text.as_bytes());
                }
            }
        }
        tokens.push(Tok {
            start,
            end,
            token: t.token,
            literal,
        });
    }
    Some(Scan { key, tokens })
}

/// Where a lifted parameter's value comes from in a scanned text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Source {
    /// Index of the literal token.
    pub token: usize,
    /// A unary minus the parser folded into the constant.
    pub negate: bool,
}

/// Map each lifted literal (by its parser location) to its token; `None`
/// when any cannot be mapped to a plain literal token.
pub(crate) fn sources(scan: &Scan, locations: &[usize]) -> Option<Vec<Source>> {
    locations
        .iter()
        .map(|&loc| {
            let i = scan.tokens.iter().position(|t| t.start == loc)?;
            let t = scan.tokens[i];
            if t.literal.is_some() {
                return Some(Source {
                    token: i,
                    negate: false,
                });
            }
            let next = scan.tokens.get(i + 1)?;
            (t.token == MINUS
                && matches!(next.literal, Some(LiteralClass::Int | LiteralClass::Float)))
            .then_some(Source {
                token: i + 1,
                negate: true,
            })
        })
        .collect()
}

/// The parser's `doNegate` on a float constant's text.
fn negate_float(text: &str) -> String {
    let t = text.strip_prefix('+').unwrap_or(text);
    match t.strip_prefix('-') {
        Some(rest) => rest.to_owned(),
        None => format!("-{t}"),
    }
}

/// The value of the literal at `source` in `sql`, as the full parse would
/// produce it, if it has the `expected` type.
pub(crate) fn value(
    sql: &str,
    scan: &Scan,
    source: Source,
    expected: LiteralType,
) -> Option<ParamValue> {
    let t = scan.tokens.get(source.token)?;
    let text = sql.get(t.start..t.end)?;
    let v = match t.literal? {
        LiteralClass::Int => {
            let i: i32 = text.parse().ok()?;
            ParamValue::Int4(if source.negate { -i } else { i })
        }
        LiteralClass::Float => {
            if source.negate {
                let n = negate_float(text);
                numeric_value(&n)
            } else {
                numeric_value(text)
            }
        }
        LiteralClass::Str => {
            if source.negate {
                return None;
            }
            ParamValue::Text(plain_string(text)?)
        }
    };
    (v.literal_type() == expected).then_some(v)
}
