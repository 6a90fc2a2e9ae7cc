//! Positions, transaction ids and timestamps as the change stream carries them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A write-ahead log position (`pg_lsn`): a byte offset into the WAL.
///
/// Displays and parses as PostgreSQL writes it, two hexadecimal halves
/// separated by a slash (`16/B374D848`). Ordered: a later position is greater.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`, PostgreSQL's `InvalidXLogRecPtr` ("no position").
    pub const INVALID: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Text that is not an LSN: two groups of 1 to 8 hexadecimal digits around a `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LsnParseError(pub String);

impl fmt::Display for LsnParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid LSN {:?}: expected hex digits like 16/B374D848",
            self.0
        )
    }
}

impl std::error::Error for LsnParseError {}

impl FromStr for Lsn {
    type Err = LsnParseError;

    /// Accepts what PostgreSQL's `pg_lsn` input accepts: 1 to 8 hex digits
    /// (either case), a slash, 1 to 8 hex digits, nothing else.
    fn from_str(s: &str) -> Result<Lsn, LsnParseError> {
        let half = |part: &str| {
            let valid =
                (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit());
            valid.then(|| u32::from_str_radix(part, 16).ok()).flatten()
        };
        let (high, low) = s
            .split_once('/')
            .ok_or_else(|| LsnParseError(s.to_owned()))?;
        match (half(high), half(low)) {
            (Some(high), Some(low)) => Ok(Lsn((u64::from(high) << 32) | u64::from(low))),
            _ => Err(LsnParseError(s.to_owned())),
        }
    }
}

/// A transaction id (`xid`, 32 bits as the stream sends it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xid(pub u32);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point in time as the replication protocol sends it: microseconds since
/// 2000-01-01 00:00:00 UTC (PostgreSQL's epoch), signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// Seconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_UNIX_SECS: u64 = 946_684_800;

impl Timestamp {
    /// PostgreSQL's epoch as a [`SystemTime`].
    fn pg_epoch() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS)
    }

    /// The same instant as a [`SystemTime`]; `None` if the platform's clock
    /// type cannot represent it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let micros = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            Self::pg_epoch().checked_add(micros)
        } else {
            Self::pg_epoch().checked_sub(micros)
        }
    }

    /// The instant `time` in protocol form; `None` if it lies more than
    /// `i64::MAX` microseconds from PostgreSQL's epoch.
    pub fn from_system_time(time: SystemTime) -> Option<Timestamp> {
        let micros = |d: Duration| i64::try_from(d.as_micros()).ok();
        match time.duration_since(Self::pg_epoch()) {
            Ok(after) => micros(after).map(Timestamp),
            Err(before) => micros(before.duration()).map(|m| Timestamp(-m)),
        }
    }

    /// Now, by this machine's clock (for the client time of a status update).
    pub fn now() -> Timestamp {
        Self::from_system_time(SystemTime::now()).unwrap_or(Timestamp(i64::MAX))
    }
}
