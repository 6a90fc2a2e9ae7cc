//! Decoding the frontend messages the cache looks into: Query, Parse, Bind,
//! Describe, Execute and Close. Each function takes one whole message (type
//! byte and length included) and borrows from it; `None` means malformed
//! (the origin will say so, the proxy just does not use the message).

/// `Query`: the statement text, without its terminating NUL.
pub fn query(msg: &[u8]) -> Option<&[u8]> {
    let body = body(msg)?;
    let (sql, rest) = cstr(body)?;
    rest.is_empty().then_some(sql)
}

/// A decoded `Parse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    pub statement: &'a [u8],
    pub query: &'a [u8],
    /// Declared parameter type OIDs (0 = unspecified), raw big-endian bytes.
    pub param_types: &'a [u8],
}

pub fn parse(msg: &[u8]) -> Option<Parse<'_>> {
    let body = body(msg)?;
    let (statement, rest) = cstr(body)?;
    let (query, rest) = cstr(rest)?;
    let (count, rest) = int16(rest)?;
    let count = usize::try_from(count).ok()?;
    (rest.len() == count * 4).then_some(Parse {
        statement,
        query,
        param_types: rest,
    })
}

/// A decoded `Bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a [u8],
    pub statement: &'a [u8],
    /// Everything after the two names: parameter formats, parameter values
    /// and result formats, exactly as sent (validated to be well formed).
    pub tail: &'a [u8],
}

pub fn bind(msg: &[u8]) -> Option<Bind<'_>> {
    let body = body(msg)?;
    let (portal, rest) = cstr(body)?;
    let (statement, tail) = cstr(rest)?;
    // Validate the tail so that equal tails mean equal bindings.
    let (formats, mut rest) = int16(tail)?;
    rest = rest.get(2 * usize::try_from(formats).ok()?..)?;
    let (values, mut rest2) = int16(rest)?;
    for _ in 0..values {
        let (len, after) = int32(rest2)?;
        rest2 = if len < 0 {
            if len != -1 {
                return None;
            }
            after
        } else {
            after.get(usize::try_from(len).ok()?..)?
        };
    }
    let (results, rest3) = int16(rest2)?;
    (rest3.len() == 2 * usize::try_from(results).ok()?).then_some(Bind {
        portal,
        statement,
        tail,
    })
}

/// `Describe` or `Close`: `b'S'` (statement) or `b'P'` (portal) and a name.
pub fn target(msg: &[u8]) -> Option<(u8, &[u8])> {
    let body = body(msg)?;
    let (&kind, rest) = body.split_first()?;
    let (name, rest) = cstr(rest)?;
    (rest.is_empty() && (kind == b'S' || kind == b'P')).then_some((kind, name))
}

/// `Execute`: the portal and the row limit (0 = no limit).
pub fn execute(msg: &[u8]) -> Option<(&[u8], i32)> {
    let body = body(msg)?;
    let (portal, rest) = cstr(body)?;
    let (max_rows, rest) = int32(rest)?;
    rest.is_empty().then_some((portal, max_rows))
}

fn body(msg: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(msg.get(1..5)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    (msg.len() == len + 1).then(|| &msg[5..])
}

fn cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = buf.iter().position(|&b| b == 0)?;
    Some((&buf[..nul], &buf[nul + 1..]))
}

fn int16(buf: &[u8]) -> Option<(i16, &[u8])> {
    let v = i16::from_be_bytes(buf.get(..2)?.try_into().ok()?);
    if v < 0 {
        return None;
    }
    Some((v, &buf[2..]))
}

fn int32(buf: &[u8]) -> Option<(i32, &[u8])> {
    let v = i32::from_be_bytes(buf.get(..4)?.try_into().ok()?);
    Some((v, &buf[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn query_text() {
        assert_eq!(query(&msg(b'Q', b"SELECT 1\0")), Some(&b"SELECT 1"[..]));
        assert_eq!(query(&msg(b'Q', b"SELECT 1")), None);
        assert_eq!(query(&msg(b'Q', b"a\0b\0")), None);
    }

    #[test]
    fn parse_with_types() {
        let m = msg(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17");
        let p = parse(&m).unwrap();
        assert_eq!(p.statement, b"s1");
        assert_eq!(p.query, b"SELECT $1");
        assert_eq!(p.param_types, b"\0\0\0\x17");
        assert_eq!(parse(&msg(b'P', b"s1\0SELECT $1\0\0\x02\0\0\0\x17")), None);
    }

    #[test]
    fn bind_validates_tail() {
        // one text param "42", one NULL, result formats [1]
        let body = b"p\0s\0\0\x01\0\0\0\x02\0\0\0\x0242\xff\xff\xff\xff\0\x01\0\x01";
        let m = msg(b'B', body);
        let b = bind(&m).unwrap();
        assert_eq!(b.portal, b"p");
        assert_eq!(b.statement, b"s");
        assert_eq!(b.tail, &body[4..]);
        // value longer than the message
        assert_eq!(bind(&msg(b'B', b"\0\0\0\0\0\x01\0\0\0\x09ab\0\0")), None);
        // trailing garbage
        assert_eq!(bind(&msg(b'B', b"\0\0\0\0\0\0\0\0\0")), None);
        // negative length other than -1
        assert_eq!(
            bind(&msg(b'B', b"\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0")),
            None
        );
    }

    #[test]
    fn describe_execute_close() {
        assert_eq!(target(&msg(b'D', b"P\0")), Some((b'P', &b""[..])));
        assert_eq!(target(&msg(b'C', b"Sname\0")), Some((b'S', &b"name"[..])));
        assert_eq!(target(&msg(b'D', b"X\0")), None);
        assert_eq!(execute(&msg(b'E', b"\0\0\0\0\x05")), Some((&b""[..], 5)));
        assert_eq!(execute(&msg(b'E', b"\0\0\0")), None);
    }

    #[test]
    fn never_panics_on_garbage() {
        for len in 0..12 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let _ = (
                query(&junk),
                parse(&junk),
                bind(&junk),
                target(&junk),
                execute(&junk),
            );
        }
    }
}
