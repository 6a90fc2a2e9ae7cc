//! Key values as statements carry them and as the change stream sends them,
//! in one canonical form per column kind, to name the rows a statement
//! depends on ([`super::deps`]).
//!
//! A column names rows only where equality in PostgreSQL is equality of the
//! canonical form: integers (`int2`, `int4`, `int8`, compared as numbers),
//! `uuid` (16 bytes, whatever the spelling) and `text`/`varchar` under a
//! deterministic collation (byte equality, so the bytes must be in the same
//! encoding on both sides: UTF-8, the change stream's).

use super::shape::ParamValue;
use crate::catalog::Oid;

/// How a column's values name rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `int2`, `int4`, `int8`.
    Int,
    /// `uuid`.
    Uuid,
    /// `text`, `varchar`: the bytes.
    Text,
}

/// `int2`, `int4`, `int8`.
pub const INTEGER_TYPES: [u32; 3] = [21, 23, 20];
const UUID: u32 = 2950;
const TEXT: u32 = 25;
const VARCHAR: u32 = 1043;

/// The kind of key a column of type `type_oid` gives, if any.
pub fn key_kind(type_oid: Oid) -> Option<KeyKind> {
    match type_oid.0 {
        t if INTEGER_TYPES.contains(&t) => Some(KeyKind::Int),
        UUID => Some(KeyKind::Uuid),
        TEXT | VARCHAR => Some(KeyKind::Text),
        _ => None,
    }
}

/// The built-in collations whose equality is byte equality (`default`,
/// `C`, `POSIX`; 0 for a type without one). Every database default is
/// deterministic; a collation created with `deterministic = false` is not
/// among these.
pub fn byte_equal_collation(collation: Oid) -> bool {
    matches!(collation.0, 0 | 100 | 950 | 951)
}

/// A key value in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    Int(i64),
    /// A uuid's 16 bytes, or text's UTF-8 bytes.
    Bytes(Box<[u8]>),
}

/// The key value of a lifted literal for a column of kind `kind`, when it
/// reads as exactly one value. `utf8`: the session's text is UTF-8.
pub fn lifted_value(value: &ParamValue, kind: KeyKind, utf8: bool) -> Option<KeyPart> {
    match (kind, value) {
        (KeyKind::Int, ParamValue::Int4(v)) => Some(KeyPart::Int(i64::from(*v))),
        (KeyKind::Int, ParamValue::Int8(v)) => Some(KeyPart::Int(*v)),
        (KeyKind::Int, ParamValue::Text(s)) => s.trim().parse().ok().map(KeyPart::Int),
        (KeyKind::Uuid, ParamValue::Text(s)) => uuid(s.as_bytes()),
        (KeyKind::Text, ParamValue::Text(s)) if utf8 => Some(bytes(s.as_bytes())),
        _ => None,
    }
}

/// The key value of a client parameter as the Bind message carries it:
/// text (`binary = false`) or the binary form of the column's type
/// `column_type` (`declared` is the type the Parse declared, 0 when none).
/// `utf8`: the session's text is UTF-8.
pub fn bound_value(
    bytes: &[u8],
    binary: bool,
    declared: u32,
    column_type: Oid,
    utf8: bool,
) -> Option<KeyPart> {
    let kind = key_kind(column_type)?;
    // A parameter declared as another type compares by that type's
    // equality (`int8 = float8` rounds, `text = bpchar` drops trailing
    // spaces, `name` truncates): not a key value.
    let declared_ok = declared == 0
        || match kind {
            KeyKind::Int => INTEGER_TYPES.contains(&declared),
            KeyKind::Uuid => declared == UUID,
            KeyKind::Text => declared == TEXT || declared == VARCHAR,
        };
    if !declared_ok {
        return None;
    }
    match kind {
        // Text and binary forms of text are the same bytes.
        KeyKind::Text => utf8.then(|| self::bytes(bytes)),
        KeyKind::Uuid if binary => (bytes.len() == 16).then(|| self::bytes(bytes)),
        KeyKind::Uuid => uuid(bytes),
        KeyKind::Int if !binary => std::str::from_utf8(bytes)
            .ok()?
            .trim()
            .parse()
            .ok()
            .map(KeyPart::Int),
        KeyKind::Int => {
            // Unspecified: the origin takes the column's type from
            // `column = $n`.
            let ty = if declared == 0 {
                column_type.0
            } else {
                declared
            };
            match (ty, bytes.len()) {
                (21, 2) => Some(i64::from(i16::from_be_bytes([bytes[0], bytes[1]]))),
                (23, 4) => Some(i64::from(i32::from_be_bytes(bytes.try_into().ok()?))),
                (20, 8) => Some(i64::from_be_bytes(bytes.try_into().ok()?)),
                _ => None,
            }
            .map(KeyPart::Int)
        }
    }
}

/// The key value of a column of kind `kind` as the change stream sends it
/// (the type's text output, UTF-8).
pub fn stream_value(kind: KeyKind, text: &[u8]) -> Option<KeyPart> {
    match kind {
        KeyKind::Int => std::str::from_utf8(text)
            .ok()?
            .parse()
            .ok()
            .map(KeyPart::Int),
        KeyKind::Uuid => uuid(text),
        KeyKind::Text => Some(bytes(text)),
    }
}

/// The key values of an array parameter (`column = ANY($n)`), as the Bind
/// message carries it: text (`{1,2,3}`) or binary, one dimension. `None`
/// for anything else (the caller then depends on the whole table); NULL
/// elements match no row and are left out.
pub fn bound_array(
    bytes: &[u8],
    binary: bool,
    declared: u32,
    column_type: Oid,
    utf8: bool,
) -> Option<Vec<KeyPart>> {
    let kind = key_kind(column_type)?;
    let declared_ok = declared == 0
        || match kind {
            KeyKind::Int => [1005, 1007, 1016].contains(&declared),
            KeyKind::Uuid => declared == 2951,
            KeyKind::Text => [1009, 1015].contains(&declared),
        };
    if !declared_ok || (kind == KeyKind::Text && !utf8) {
        return None;
    }
    if !binary {
        return text_array(bytes, kind);
    }
    // ndim, has-null flag, element type, (size, lower bound) per dimension,
    // then each element: length (-1: NULL) and bytes.
    let int = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let elem = u32::try_from(int(8)?).ok()?;
    let size = match int(0)? {
        1 => usize::try_from(int(12)?).ok()?,
        _ => return None,
    };
    if size > MAX_ARRAY {
        return None;
    }
    let mut at = 20;
    let mut out = Vec::with_capacity(size);
    for _ in 0..size {
        let len = int(at)?;
        at += 4;
        if len < 0 {
            continue;
        }
        let len = usize::try_from(len).ok()?;
        let value = bytes.get(at..at + len)?;
        at += len;
        let part = match (kind, elem, value.len()) {
            (KeyKind::Int, 21, 2) => {
                KeyPart::Int(i64::from(i16::from_be_bytes([value[0], value[1]])))
            }
            (KeyKind::Int, 23, 4) => {
                KeyPart::Int(i64::from(i32::from_be_bytes(value.try_into().ok()?)))
            }
            (KeyKind::Int, 20, 8) => KeyPart::Int(i64::from_be_bytes(value.try_into().ok()?)),
            (KeyKind::Uuid, 2950, 16) | (KeyKind::Text, 25 | 1043, _) => self::bytes(value),
            _ => return None,
        };
        out.push(part);
    }
    (at == bytes.len()).then_some(out)
}

/// The key values of a lifted array literal (`column = ANY('{1,2}')`).
pub fn lifted_array(value: &ParamValue, kind: KeyKind, utf8: bool) -> Option<Vec<KeyPart>> {
    match value {
        ParamValue::Text(s) if kind != KeyKind::Text || utf8 => text_array(s.as_bytes(), kind),
        _ => None,
    }
}

/// Most elements read from one array parameter.
const MAX_ARRAY: usize = 64;

/// A one-dimensional array literal as `array_in` reads it, for element
/// kinds whose delimiter is `,`: `{a,"b c",NULL}`; elements optionally
/// quoted, a backslash takes the next character as is, whitespace around
/// unquoted elements ignored, an unquoted `NULL` is NULL (left out). `None`
/// for dimensions, nesting or anything unusual.
fn text_array(text: &[u8], kind: KeyKind) -> Option<Vec<KeyPart>> {
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let trimmed = text.trim_ascii_start();
    let mut rest = trimmed.strip_prefix(b"{")?;
    let mut out = Vec::new();
    if rest.trim_ascii_start().starts_with(b"}") {
        rest = &rest.trim_ascii_start()[1..];
        return rest.iter().all(|&c| space(c)).then_some(out);
    }
    loop {
        while rest.first().is_some_and(|&c| space(c)) {
            rest = &rest[1..];
        }
        let mut element = Vec::new();
        let quoted = rest.first() == Some(&b'"');
        if quoted {
            rest = &rest[1..];
            loop {
                match *rest.first()? {
                    b'"' => {
                        rest = &rest[1..];
                        break;
                    }
                    b'\\' => {
                        element.push(*rest.get(1)?);
                        rest = &rest[2..];
                    }
                    c => {
                        element.push(c);
                        rest = &rest[1..];
                    }
                }
            }
            while rest.first().is_some_and(|&c| space(c)) {
                rest = &rest[1..];
            }
        } else {
            loop {
                match *rest.first()? {
                    b',' | b'}' => break,
                    b'{' | b'"' | b'\\' => return None,
                    c => {
                        element.push(c);
                        rest = &rest[1..];
                    }
                }
            }
            while element.last().is_some_and(|&c| space(c)) {
                element.pop();
            }
            if element.is_empty() {
                return None;
            }
        }
        if quoted || !element.eq_ignore_ascii_case(b"NULL") {
            if out.len() == MAX_ARRAY {
                return None;
            }
            let part = match kind {
                KeyKind::Int => {
                    KeyPart::Int(std::str::from_utf8(&element).ok()?.trim().parse().ok()?)
                }
                KeyKind::Uuid => uuid(&element)?,
                KeyKind::Text => bytes(&element),
            };
            out.push(part);
        }
        match *rest.first()? {
            b',' => rest = &rest[1..],
            b'}' => {
                rest = &rest[1..];
                break;
            }
            _ => return None,
        }
    }
    rest.iter().all(|&c| space(c)).then_some(out)
}

fn bytes(b: &[u8]) -> KeyPart {
    KeyPart::Bytes(Box::from(b))
}

/// A uuid's text as PostgreSQL's `uuid_in` reads it: 32 hex digits in
/// pairs, an optional `-` after any even-numbered pair but the last, the
/// whole optionally in braces; nothing else (no spaces).
fn uuid(text: &[u8]) -> Option<KeyPart> {
    let mut src = text;
    let braces = src.first() == Some(&b'{');
    if braces {
        src = &src[1..];
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = hex(*src.first()?)?;
        let lo = hex(*src.get(1)?)?;
        *byte = hi << 4 | lo;
        src = &src[2..];
        if src.first() == Some(&b'-') && i % 2 == 1 && i < 15 {
            src = &src[1..];
        }
    }
    if braces {
        src = src.strip_prefix(b"}")?;
    }
    src.is_empty().then(|| bytes(&out))
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// One Bind parameter: its value (`None` for NULL) and whether it is in
/// binary format.
pub type BoundParam<'a> = (Option<&'a [u8]>, bool);

/// The parameters of a Bind message's tail (after the portal and statement
/// names). `None` when the tail is malformed.
pub fn bind_params(tail: &[u8]) -> Option<Vec<BoundParam<'_>>> {
    let int16 = |b: &[u8]| -> Option<(usize, usize)> {
        let v = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
        Some((usize::from(v), 2))
    };
    let (nformats, used) = int16(tail)?;
    let formats = tail.get(used..used + 2 * nformats)?;
    let format = |i: usize| -> bool {
        let at = if nformats == 1 { 0 } else { i };
        formats.get(2 * at + 1).is_some_and(|&b| b == 1)
    };
    let mut rest = tail.get(used + 2 * nformats..)?;
    let (nvalues, used) = int16(rest)?;
    if nformats > 1 && nformats != nvalues {
        return None;
    }
    rest = rest.get(used..)?;
    let mut out = Vec::with_capacity(nvalues);
    for i in 0..nvalues {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = rest.get(4..)?;
        if len < 0 {
            out.push((None, nformats > 0 && format(i)));
            continue;
        }
        let len = usize::try_from(len).ok()?;
        out.push((Some(rest.get(..len)?), nformats > 0 && format(i)));
        rest = rest.get(len..)?;
    }
    Some(out)
}

/// The result format codes of a Bind message's tail (0 codes: all text; 1:
/// all the same; otherwise one per column). `None` when malformed.
pub fn result_formats(tail: &[u8]) -> Option<Vec<i16>> {
    let int16 = |b: &[u8], at: usize| -> Option<i16> {
        Some(i16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
    };
    let nformats = usize::try_from(int16(tail, 0)?).ok()?;
    let mut at = 2 + 2 * nformats;
    let nvalues = usize::try_from(int16(tail, at)?).ok()?;
    at += 2;
    for _ in 0..nvalues {
        let len = i32::from_be_bytes(tail.get(at..at + 4)?.try_into().ok()?);
        at += 4 + usize::try_from(len.max(0)).ok()?;
    }
    let nresults = usize::try_from(int16(tail, at)?).ok()?;
    at += 2;
    let formats = (0..nresults)
        .map(|i| int16(tail, at + 2 * i))
        .collect::<Option<Vec<i16>>>()?;
    (at + 2 * nresults == tail.len()).then_some(formats)
}

/// Whether output column `position` is in binary format under `formats`
/// ([`result_formats`]).
pub fn binary_result(formats: &[i16], position: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        many => many.get(position) == Some(&1),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bind_tail_parameters() {
        // 1 format code (binary), 2 values: int4 7 and NULL, 0 result formats.
        let tail = [
            0, 1, 0, 1, 0, 2, 0, 0, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ];
        let params = bind_params(&tail).unwrap();
        assert_eq!(
            params,
            vec![(Some(&[0u8, 0, 0, 7][..]), true), (None, true)]
        );
        // No format codes: text.
        let tail = [0, 0, 0, 1, 0, 0, 0, 2, b'4', b'2', 0, 0];
        assert_eq!(bind_params(&tail).unwrap(), vec![(Some(&b"42"[..]), false)]);
        // Truncated.
        assert_eq!(bind_params(&[0, 0, 0, 1, 0, 0, 0, 9, b'4']), None);
        assert_eq!(bind_params(&[0]), None);
    }

    #[test]
    fn bind_result_formats() {
        // 1 parameter format (binary), 1 value, 2 result formats (text, binary).
        let tail = [0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 7, 0, 2, 0, 0, 0, 1];
        assert_eq!(result_formats(&tail), Some(vec![0, 1]));
        assert_eq!(result_formats(&tail[..tail.len() - 1]), None);
        // No parameters, no result formats.
        assert_eq!(result_formats(&[0, 0, 0, 0, 0, 0]), Some(vec![]));
        assert!(!binary_result(&[], 3));
        assert!(binary_result(&[1], 3));
        assert!(binary_result(&[0, 1], 1) && !binary_result(&[0, 1], 0));
    }

    #[test]
    fn key_values() {
        let int = |v| Some(KeyPart::Int(v));
        let b = |v: &[u8]| Some(KeyPart::Bytes(Box::from(v)));
        assert_eq!(bound_value(b" 42 ", false, 0, Oid(23), true), int(42));
        assert_eq!(bound_value(b"4x", false, 0, Oid(23), true), None);
        assert_eq!(
            bound_value(&7i32.to_be_bytes(), true, 0, Oid(23), true),
            int(7)
        );
        assert_eq!(
            bound_value(&7i64.to_be_bytes(), true, 20, Oid(23), true),
            int(7)
        );
        assert_eq!(
            bound_value(&(-3i16).to_be_bytes(), true, 0, Oid(21), true),
            int(-3)
        );
        // A float8 parameter of 8 bytes is not an int8 key.
        assert_eq!(
            bound_value(&1.0f64.to_be_bytes(), true, 701, Oid(20), true),
            None
        );
        // Nor is text declared float8 or numeric.
        assert_eq!(bound_value(b"5", false, 701, Oid(20), true), None);
        assert_eq!(bound_value(b"5", false, 1700, Oid(23), true), None);
        // Width not the column's.
        assert_eq!(
            bound_value(&7i32.to_be_bytes(), true, 0, Oid(20), true),
            None
        );
        // Text: the bytes, in either format, only from a UTF-8 session and
        // only as text or varchar (not name, bpchar, unknown).
        assert_eq!(bound_value(b"ab ", false, 0, Oid(25), true), b(b"ab "));
        assert_eq!(bound_value(b"ab ", true, 1043, Oid(25), true), b(b"ab "));
        assert_eq!(bound_value(b"ab", false, 0, Oid(25), false), None);
        for declared in [19, 1042, 705, 23] {
            assert_eq!(bound_value(b"ab", false, declared, Oid(1043), true), None);
        }
        // uuid: any spelling uuid_in takes, or 16 binary bytes.
        let u: Vec<u8> = (0u8..16).map(|i| i * 17).collect();
        for spelled in [
            "00112233-4455-6677-8899-aabbccddeeff",
            "00112233445566778899AABBCCDDEEFF",
            "{00112233-4455-6677-8899-aabbccddeeff}",
            "0011-2233-4455-6677-8899-aabb-ccdd-eeff",
        ] {
            assert_eq!(
                bound_value(spelled.as_bytes(), false, 0, Oid(2950), true),
                b(&u)
            );
            assert_eq!(stream_value(KeyKind::Uuid, spelled.as_bytes()), b(&u));
        }
        for bad in [
            " 00112233-4455-6677-8899-aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddeeff ",
            "0-0112233-4455-6677-8899-aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddeeff-",
            "{00112233-4455-6677-8899-aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddee",
            "00112233--4455-6677-8899-aabbccddeeff",
            "0011223g-4455-6677-8899-aabbccddeeff",
        ] {
            assert_eq!(
                bound_value(bad.as_bytes(), false, 0, Oid(2950), true),
                None,
                "{bad}"
            );
        }
        assert_eq!(bound_value(&u, true, 2950, Oid(2950), true), b(&u));
        assert_eq!(bound_value(&u[..15], true, 0, Oid(2950), true), None);
        assert_eq!(bound_value(&u, true, 25, Oid(2950), true), None);
        // Lifted literals.
        assert_eq!(
            lifted_value(&ParamValue::Int4(5), KeyKind::Int, true),
            int(5)
        );
        assert_eq!(
            lifted_value(&ParamValue::Text(" 5".into()), KeyKind::Int, true),
            int(5)
        );
        assert_eq!(
            lifted_value(&ParamValue::Numeric("5.0".into()), KeyKind::Int, true),
            None
        );
        assert_eq!(
            lifted_value(&ParamValue::Text("k".into()), KeyKind::Text, true),
            b(b"k")
        );
        assert_eq!(
            lifted_value(&ParamValue::Text("k".into()), KeyKind::Text, false),
            None
        );
        assert_eq!(
            lifted_value(&ParamValue::Int4(5), KeyKind::Text, true),
            None
        );
        assert_eq!(
            lifted_value(
                &ParamValue::Text("00112233445566778899aabbccddeeff".into()),
                KeyKind::Uuid,
                true
            ),
            b(&u)
        );
        // Arrays: text and binary, NULL elements left out.
        let ints = |v: &[i64]| Some(v.iter().map(|&i| KeyPart::Int(i)).collect::<Vec<_>>());
        assert_eq!(
            bound_array(b"{1, 2 ,\"3\",NULL}", false, 0, Oid(23), true),
            ints(&[1, 2, 3])
        );
        assert_eq!(bound_array(b" { } ", false, 0, Oid(23), true), ints(&[]));
        for bad in [
            &b"{{1,2}}"[..],
            b"[1:2]={1,2}",
            b"{1,2",
            b"{1,,2}",
            b"{1,2}x",
            b"{a\\b}",
            b"{1 2}",
        ] {
            assert_eq!(bound_array(bad, false, 0, Oid(23), true), None, "{bad:?}");
        }
        assert_eq!(
            bound_array(b"{\"a b\", c ,\"q\\\"\"}", false, 0, Oid(25), true),
            Some(vec![
                KeyPart::Bytes(Box::from(&b"a b"[..])),
                KeyPart::Bytes(Box::from(&b"c"[..])),
                KeyPart::Bytes(Box::from(&b"q\""[..])),
            ])
        );
        assert_eq!(bound_array(b"{a}", false, 0, Oid(25), false), None);
        assert_eq!(bound_array(b"{1}", false, 1009, Oid(23), true), None);
        // Binary int4[] {7, NULL, -1}.
        let mut bin = Vec::new();
        for v in [1i32, 1, 23, 3, 1] {
            bin.extend_from_slice(&v.to_be_bytes());
        }
        for e in [Some(7i32), None, Some(-1)] {
            match e {
                Some(v) => {
                    bin.extend_from_slice(&4i32.to_be_bytes());
                    bin.extend_from_slice(&v.to_be_bytes());
                }
                None => bin.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(bound_array(&bin, true, 0, Oid(23), true), ints(&[7, -1]));
        assert_eq!(bound_array(&bin, true, 1007, Oid(20), true), ints(&[7, -1]));
        assert_eq!(
            bound_array(&bin[..bin.len() - 1], true, 0, Oid(23), true),
            None
        );
        let mut wrong = bin.clone();
        wrong[11] = 20; // int8 elements of 4 bytes
        assert_eq!(bound_array(&wrong, true, 0, Oid(23), true), None);
        assert_eq!(
            lifted_array(&ParamValue::Text("{4,5}".into()), KeyKind::Int, true),
            ints(&[4, 5])
        );
        // Kinds and collations.
        assert_eq!(key_kind(Oid(1043)), Some(KeyKind::Text));
        assert_eq!(key_kind(Oid(1042)), None);
        assert_eq!(key_kind(Oid(19)), None);
        assert!(byte_equal_collation(Oid(100)) && !byte_equal_collation(Oid(12345)));
    }
}
