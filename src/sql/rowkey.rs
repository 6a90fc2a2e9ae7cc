//! Key values as statements carry them: lifted literals and Bind
//! parameters read as integers, to name the rows a statement depends on
//! ([`super::deps`]).

use super::shape::ParamValue;
use crate::catalog::Oid;

/// The key value of a lifted literal, when it reads as exactly one integer.
pub fn lifted_value(value: &ParamValue) -> Option<i64> {
    match value {
        ParamValue::Int4(v) => Some(i64::from(*v)),
        ParamValue::Int8(v) => Some(*v),
        ParamValue::Text(s) => s.trim().parse().ok(),
        ParamValue::Numeric(_) => None,
    }
}

/// The key value of a client parameter as the Bind message carries it:
/// text (`binary = false`) or the binary form of the column's type
/// `column_type` (`declared` is the type the Parse declared, 0 when none).
pub fn bound_value(bytes: &[u8], binary: bool, declared: u32, column_type: Oid) -> Option<i64> {
    // A parameter declared as another type compares by that type's
    // equality (`int8 = float8` rounds): not a key value.
    if declared != 0 && !super::deps::INTEGER_TYPES.contains(&declared) {
        return None;
    }
    if !binary {
        return std::str::from_utf8(bytes).ok()?.trim().parse().ok();
    }
    // Unspecified: the origin takes the column's type from `column = $n`.
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
    fn key_values() {
        assert_eq!(bound_value(b" 42 ", false, 0, Oid(23)), Some(42));
        assert_eq!(bound_value(b"4x", false, 0, Oid(23)), None);
        assert_eq!(bound_value(&7i32.to_be_bytes(), true, 0, Oid(23)), Some(7));
        assert_eq!(bound_value(&7i64.to_be_bytes(), true, 20, Oid(23)), Some(7));
        assert_eq!(
            bound_value(&(-3i16).to_be_bytes(), true, 0, Oid(21)),
            Some(-3)
        );
        // A float8 parameter of 8 bytes is not an int8 key.
        assert_eq!(bound_value(&1.0f64.to_be_bytes(), true, 701, Oid(20)), None);
        // Nor is text declared float8 or numeric.
        assert_eq!(bound_value(b"5", false, 701, Oid(20)), None);
        assert_eq!(bound_value(b"5", false, 1700, Oid(23)), None);
        // Width not the column's.
        assert_eq!(bound_value(&7i32.to_be_bytes(), true, 0, Oid(20)), None);
        assert_eq!(lifted_value(&ParamValue::Int4(5)), Some(5));
        assert_eq!(lifted_value(&ParamValue::Text(" 5".into())), Some(5));
        assert_eq!(lifted_value(&ParamValue::Numeric("5.0".into())), None);
    }
}
