//! Sizes (`64MiB`) and durations (`500ms`, `5s`), as integers or strings.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Why a size or duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnitError {
    /// No leading whole number.
    NoNumber,
    /// The unit is not one of the accepted ones.
    UnknownUnit(String),
    /// The value does not fit.
    Overflow,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnitError::NoNumber => f.write_str("it does not start with a whole number"),
            UnitError::UnknownUnit(unit) => write!(f, "unknown unit {unit:?}"),
            UnitError::Overflow => f.write_str("value too large"),
        }
    }
}

/// Split `"64 MiB"` into `(64, "MiB")`.
fn split(text: &str) -> Result<(u64, &str), UnitError> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(UnitError::NoNumber);
    }
    let number = number.parse::<u64>().map_err(|_| UnitError::Overflow)?;
    Ok((number, unit.trim_start()))
}

/// Bytes from `"123"`, `"512B"`, `"64KiB"`/`"64kB"`, `"64MiB"`/`"64MB"`,
/// `"1GiB"`/`"1GB"` (the PostgreSQL spellings are 1024 multiples too).
pub(crate) fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split(text)?;
    let multiplier = match unit {
        "" | "B" => 1,
        "kB" | "KiB" => KIB,
        "MB" | "MiB" => MIB,
        "GB" | "GiB" => GIB,
        other => return Err(UnitError::UnknownUnit(other.to_owned())),
    };
    number.checked_mul(multiplier).ok_or(UnitError::Overflow)
}

/// A duration from `"500ms"`, `"5s"`, `"2m"`/`"2min"`, `"1h"`, or `"30"` (seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let (number, unit) = split(text)?;
    let seconds = |factor: u64| {
        number
            .checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or(UnitError::Overflow)
    };
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" | "min" => seconds(60),
        "h" => seconds(3600),
        other => Err(UnitError::UnknownUnit(other.to_owned())),
    }
}

/// The shortest exact spelling: `64MiB`, `1KiB`, `1500B`.
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// The shortest exact spelling: `500ms`, `5s`, `2m`, `1h`.
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() != 0 || duration.is_zero() {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A size as written in the file: integer bytes or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSize(pub u64);

/// A duration as written in the file: integer seconds or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawDuration(pub Duration);

const SIZE_EXPECTING: &str =
    "a size: bytes, or a string such as \"64MiB\" (units B, kB, KiB, MB, MiB, GB, GiB)";
const DURATION_EXPECTING: &str =
    "a duration: seconds, or a string such as \"500ms\", \"5s\", \"2m\", \"1h\"";

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = RawSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SIZE_EXPECTING)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
        Ok(RawSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
        u64::try_from(v)
            .map(RawSize)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
        parse_size(v).map(RawSize).map_err(|err| {
            E::custom(format_args!(
                "invalid size {v:?}: {err}; expected {SIZE_EXPECTING}"
            ))
        })
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = RawDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(DURATION_EXPECTING)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
        Ok(RawDuration(Duration::from_secs(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
        u64::try_from(v)
            .map(|secs| RawDuration(Duration::from_secs(secs)))
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
        parse_duration(v).map(RawDuration).map_err(|err| {
            E::custom(format_args!(
                "invalid duration {v:?}: {err}; expected {DURATION_EXPECTING}"
            ))
        })
    }
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}
