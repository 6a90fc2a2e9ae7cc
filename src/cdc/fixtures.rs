//! Test-only access to the byte fixtures in `tests/fixtures/pgoutput/`,
//! captured from a real PostgreSQL by `capture.sh` there.

use bytes::Bytes;

/// The text of `tests/fixtures/pgoutput/<name>`, embedded at compile time.
macro_rules! fixture {
    ($name:literal) => {
        $crate::cdc::fixtures::parse(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pgoutput/",
            $name
        )))
    };
}
pub(crate) use fixture;

/// Every fixture file, for tests that run over all of them.
pub(crate) fn all() -> Vec<(&'static str, Vec<Bytes>)> {
    vec![
        ("insert_text.hex", fixture!("insert_text.hex")),
        ("insert_binary.hex", fixture!("insert_binary.hex")),
        ("identity_default.hex", fixture!("identity_default.hex")),
        ("identity_full.hex", fixture!("identity_full.hex")),
        (
            "identity_index_nothing.hex",
            fixture!("identity_index_nothing.hex"),
        ),
        ("toast.hex", fixture!("toast.hex")),
        ("truncate.hex", fixture!("truncate.hex")),
        ("message.hex", fixture!("message.hex")),
        ("origin.hex", fixture!("origin.hex")),
        ("stream.hex", fixture!("stream.hex")),
    ]
}

/// One message per non-comment line, hex-encoded.
pub(crate) fn parse(text: &str) -> Vec<Bytes> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| Bytes::from(hex(line)))
        .collect()
}

/// Decodes lowercase or uppercase hex; panics on anything else (test input).
pub(crate) fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}
