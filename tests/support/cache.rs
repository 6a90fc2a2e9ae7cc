//! Helpers of the cache tests: set-up through a direct connection, one-query
//! steps, reading a column through the proxy, waiting for a hit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::wire::{Msg, RawConn, Step, Until, fe, step};
use super::{Proxy, connect_direct, eventually};

/// Run `sql` directly on the origin (tables, roles, rows for a test).
pub async fn setup(sql: &str) {
    let direct = connect_direct("cache_setup").await;
    direct
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("setup: {e:?}\n{sql}"));
}

/// A simple-query step up to its ReadyForQuery.
pub fn q(sql: &str) -> Step {
    step(&[fe::query(sql)], Until::Ready(1))
}

/// The first column of every row of a simple query.
pub async fn col(client: &Client, sql: &str) -> Vec<Option<String>> {
    rows(client, sql)
        .await
        .into_iter()
        .map(|r| r.into_iter().next().flatten())
        .collect()
}

/// `sql` returns the same rows through `proxied` as on `direct`.
pub async fn same_rows(proxied: &Client, direct: &Client, sql: &str) {
    assert_eq!(rows(proxied, sql).await, rows(direct, sql).await, "{sql}");
}

/// Every row of `sql` (simple protocol), every column as text.
pub async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// One row of one non-NULL value.
pub fn one(v: &str) -> Vec<Option<String>> {
    vec![Some(v.to_owned())]
}

/// How long a test waits for a statement to become a hit: a few reads
/// normally (the first learns the session's settings, the next captures);
/// longer after a catalog change through the proxy, which nothing is
/// captured during until the proxy has reloaded the catalog.
const WARM_DEADLINE: Duration = Duration::from_secs(20);

/// Read `sql` until it is answered from the cache; returns that read.
pub async fn warm(proxy: &Proxy, client: &Client, sql: &str) -> Vec<Option<String>> {
    let deadline = Instant::now() + WARM_DEADLINE;
    for tries in 0.. {
        let before = proxy.metrics.cache_hits.get();
        let rows = col(client, sql).await;
        if proxy.metrics.cache_hits.get() > before {
            return rows;
        }
        if Instant::now() > deadline {
            break;
        }
        if tries >= 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("{sql} never became a cache hit");
}

/// [`warm`] on a raw connection; the reads must not fail.
pub async fn warm_raw(proxy: &Proxy, conn: &mut RawConn, sql: &str) -> Vec<Msg> {
    let deadline = Instant::now() + WARM_DEADLINE;
    for tries in 0.. {
        let before = proxy.metrics.cache_hits.get();
        let msgs = conn.simple(sql).await;
        assert!(msgs.iter().all(|m| !m.is_error()), "{sql}: {msgs:?}");
        if proxy.metrics.cache_hits.get() > before {
            return msgs;
        }
        if Instant::now() > deadline {
            break;
        }
        if tries >= 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("{sql} never became a cache hit");
}

/// How long the change stream may take to catch up in a test.
const CATCH_UP: Duration = Duration::from_secs(20);

/// Wait until the proxy's change stream has applied everything the origin
/// has written so far, and serves. The insert position is read (a commit
/// that returned is at or before it even when it is not flushed yet:
/// the test server runs with `synchronous_commit = off`); right after a
/// page boundary it points past the page header, where the stream's
/// position stops, so it is taken back to the boundary.
pub async fn caught_up(proxy: &Proxy, direct: &Client) {
    let insert: i64 = direct
        .query_one("SELECT (pg_current_wal_insert_lsn() - '0/0')::int8", &[])
        .await
        .expect("insert LSN")
        .get(0);
    let lsn = match insert % 8192 {
        24 | 40 => insert - insert % 8192,
        _ => insert,
    };
    let metrics = Arc::clone(&proxy.metrics);
    eventually(CATCH_UP, "change stream caught up", move || {
        let m = Arc::clone(&metrics);
        async move { m.cdc_applied_lsn.get() >= lsn && m.cdc_serving.get() == 1 }
    })
    .await;
}

/// A column of a binary result as text: integers, `float4`, text and
/// numeric as PostgreSQL writes them, anything else as hex bytes.
pub struct Cell(pub Option<String>);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = match *ty {
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::FLOAT4 => f32::from_sql(ty, raw)?.to_string(),
            Type::BOOL => if bool::from_sql(ty, raw)? { "t" } else { "f" }.to_owned(),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => String::from_sql(ty, raw)?,
            Type::NUMERIC => numeric_text(raw).unwrap_or_else(|| hex(raw)),
            _ => hex(raw),
        };
        Ok(Cell(Some(text)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn hex(raw: &[u8]) -> String {
    let digits: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("\\x{digits}")
}

/// A binary numeric as `numeric_out` writes it (digits in base 10,000).
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*raw.get(at)?, *raw.get(at + 1)?])) };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Option<Vec<u16>>>()?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => return None,
    }
    let digit = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0).to_string());
        for k in 1..=weight {
            text.push_str(&format!("{:04}", digit(k)));
        }
    }
    if dscale > 0 {
        let mut fraction = String::new();
        let mut k = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(k)));
            k += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Some(text)
}
