//! Helpers of the cache tests: set-up through a direct connection, one-query
//! steps, reading a column through the proxy, waiting for a hit.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
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
