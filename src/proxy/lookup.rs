//! Narrowing join entries after their capture.
//!
//! `FROM articles a JOIN users u ON u.id = a.author_id WHERE a.id = $1`
//! reads one article by key and the one user its `author_id` names; which
//! user the statement does not say. Until the proxy knows, the entry
//! depends on every change to `users`. After the capture, this task reads
//! `author_id` of that article on the proxy's own connection and narrows
//! the dependency to that user's row ([`ResultCache::narrow`]) before the
//! entry is stored.
//!
//! Why the value read later is the one the capture saw: the entry depends
//! on the article's row by key from before its capture began. If
//! `author_id` changed between the capture and the lookup, that change is
//! applied before the entry is ever served (its fence position is read
//! after the lookup) and drops it. And a change to `users` applied before
//! the narrowing leaves the dependency on the whole table.
//!
//! Lookups run in batches, pipelined on one connection; when the queue is
//! full, or the origin cannot be reached, entries are stored with their
//! whole-table dependency. A failed lookup never reaches a client.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::SimpleQueryMessage;
use tracing::debug;

use super::cached::CacheRuntime;
use crate::cache::joined::Gather;
use crate::cache::{Capture, CapturedResult, JoinPlan, Joined, KeyPart, row_hash};
use crate::catalog::Oid;
use crate::check::quote_ident;

/// Jobs waiting for the lookup task; beyond, entries are not narrowed.
pub(crate) const QUEUE: usize = 1024;

/// How long one lookup may take.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Read a row's key columns to narrow a dependency on `table`.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    /// The table whose dependency is narrowed.
    pub table: Oid,
    /// `SELECT <table's key values> FROM <the row read by key>`: integers,
    /// one per key column of `table`, in column order.
    pub sql: String,
}

/// A finished capture waiting for its lookups.
pub(crate) struct Job {
    pub capture: Capture,
    pub shape: u64,
    pub result: CapturedResult,
    pub lookups: Vec<Lookup>,
    /// A join to keep in place from rows read now (ADR 018).
    pub join: Option<JoinPlan>,
}

/// Jobs taken from the queue at once; their lookups are sent together
/// (pipelined on the one connection).
const BATCH: usize = 256;

/// The lookup task: narrows and stores each job's entry.
pub(crate) async fn run(
    rt: Arc<CacheRuntime>,
    origin: crate::config::OriginConfig,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut client: Option<Arc<tokio_postgres::Client>> = None;
    // Joined entries' rows are read by a task of its own, on a connection
    // of its own (in a transaction; lookups are pipelined here), so that
    // lookups never wait for them.
    let (joins_tx, joins_rx) = mpsc::channel(QUEUE);
    tokio::spawn(run_joins(Arc::clone(&rt), origin.clone(), joins_rx));
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    while jobs.recv_many(&mut batch, BATCH).await > 0 {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = connect(&origin).await.map(Arc::new);
        }
        // Every lookup of the batch in flight at once, numbered in order.
        let mut reads = tokio::task::JoinSet::new();
        let total: usize = batch.iter().map(|j| j.lookups.len()).sum();
        if let Some(c) = &client {
            let lookups = batch.iter().flat_map(|j| &j.lookups);
            for (k, lookup) in lookups.enumerate() {
                let (c, sql) = (Arc::clone(c), lookup.sql.clone());
                reads.spawn(async move { (k, read(&c, &sql).await) });
            }
        }
        let mut results: Vec<Option<Result<Option<Vec<i64>>, Failure>>> =
            (0..total).map(|_| None).collect();
        while let Some(done) = reads.join_next().await {
            if let Ok((k, read)) = done
                && let Some(slot) = results.get_mut(k)
            {
                *slot = Some(read);
            }
        }
        let mut lost = false;
        let mut results = results.into_iter();
        for job in &mut batch {
            for lookup in &job.lookups {
                let result = match results.next().flatten() {
                    Some(Ok(key)) => {
                        let row = key.map(|k| {
                            let parts: Vec<KeyPart> = k.into_iter().map(KeyPart::Int).collect();
                            row_hash(lookup.table, &parts)
                        });
                        if rt.cache.narrow(&mut job.capture, lookup.table, row) {
                            "narrowed"
                        } else {
                            "changed"
                        }
                    }
                    Some(Err(Failure::Connection)) => {
                        lost = true;
                        "failed"
                    }
                    Some(Err(Failure::Value)) | None => "failed",
                };
                rt.lookup_done(result);
            }
        }
        if lost {
            client = None;
        }
        for job in batch.drain(..) {
            if job.join.is_none() {
                rt.store(job.capture, job.shape, job.result);
                continue;
            }
            // Its rows are read next; with too many waiting, stored as it is.
            if let Err(
                mpsc::error::TrySendError::Full(mut job)
                | mpsc::error::TrySendError::Closed(mut job),
            ) = joins_tx.try_send(job)
            {
                job.join = None;
                rt.join_done("queue_full");
                rt.store(job.capture, job.shape, job.result);
            }
        }
    }
}

/// The task reading joined entries' rows (ADR 018), then storing them.
async fn run_joins(
    rt: Arc<CacheRuntime>,
    origin: crate::config::OriginConfig,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut client: Option<Arc<tokio_postgres::Client>> = None;
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH);
    while jobs.recv_many(&mut batch, BATCH).await > 0 {
        let plans: Vec<(usize, JoinPlan)> = batch
            .iter_mut()
            .enumerate()
            .filter_map(|(k, job)| job.join.take().map(|plan| (k, plan)))
            .collect();
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = connect(&origin).await.map(Arc::new);
        }
        let lost = match &client {
            Some(c) => {
                let joins = joins(&rt, c, &mut batch, plans);
                tokio::time::timeout(TIMEOUT, joins).await.unwrap_or(true)
            }
            None => {
                for _ in &plans {
                    rt.join_done("failed");
                }
                false
            }
        };
        if lost {
            client = None;
        }
        for job in batch.drain(..) {
            rt.store(job.capture, job.shape, job.result);
        }
    }
}

/// A joined entry whose rows are being read: its job's index, the entry,
/// the generations it is to depend on, what reads its rows (`None` once
/// they cannot be kept).
type Reading = (usize, Arc<Joined>, Vec<(usize, u64)>, Option<Gather>);

/// Read the rows of every `plans`' tables in one snapshot (the queries of
/// each level pipelined) and make their jobs' entries joined ones (ADR 018).
/// Returns whether the connection is to be given up.
async fn joins(
    rt: &CacheRuntime,
    client: &Arc<tokio_postgres::Client>,
    batch: &mut [Job],
    plans: Vec<(usize, JoinPlan)>,
) -> bool {
    // Registered first: from now on every change of their tables is kept
    // for them, and replayed on the rows read below.
    let mut work: Vec<Reading> = Vec::new();
    for (k, plan) in plans {
        let gather = Gather::new(&plan);
        if gather.next_sql().is_none() {
            rt.join_done("refused");
            continue;
        }
        let Some(job) = batch.get(k) else {
            continue;
        };
        let joined = Arc::new(Joined::pending(
            plan,
            &job.result,
            rt.max_join_len(&job.result),
        ));
        match rt.cache.register_joined(&joined) {
            Some(slots) => work.push((k, joined, slots, Some(gather))),
            None => rt.join_done("full"),
        }
    }
    if work.is_empty() {
        return false;
    }
    let read = read_rows(client, &mut work).await;
    let mut lost = false;
    for (k, joined, slots, gather) in work {
        let filled = match (&read, gather) {
            (Ok(()), Some(gather)) => joined.fill(gather).map_err(|_| "refused"),
            (Ok(()), None) => Err("refused"),
            (Err(Failure::Value), _) => Err("failed"),
            (Err(Failure::Connection), _) => {
                lost = true;
                Err("failed")
            }
        };
        let result = match (filled, batch.get_mut(k)) {
            (Ok(()), Some(job)) => {
                rt.cache.activate_joined(&joined);
                rt.cache.narrow_joined(&mut job.capture, joined, slots);
                "joined"
            }
            (filled, _) => {
                // Not stored as joined: nothing is to follow it.
                joined.kill();
                filled.err().unwrap_or("failed")
            }
        };
        rt.join_done(result);
    }
    lost
}

/// Run each gather's queries in one `REPEATABLE READ` transaction, level by
/// level, the queries of a level pipelined. A gather whose rows cannot be
/// kept is set to `None`.
async fn read_rows(
    client: &Arc<tokio_postgres::Client>,
    work: &mut [Reading],
) -> Result<(), Failure> {
    simple(client, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
    loop {
        let mut reads = tokio::task::JoinSet::new();
        for (i, (_, _, _, gather)) in work.iter().enumerate() {
            if let Some(sql) = gather.as_ref().and_then(Gather::next_sql) {
                let c = Arc::clone(client);
                reads.spawn(async move { (i, simple(&c, &sql).await) });
            }
        }
        if reads.is_empty() {
            break;
        }
        let mut failed = None;
        while let Some(done) = reads.join_next().await {
            let Ok((i, read)) = done else {
                failed = Some(Failure::Connection);
                continue;
            };
            match read {
                Ok(messages) => {
                    if let Some(slot) = work.get_mut(i).map(|w| &mut w.3)
                        && slot
                            .as_mut()
                            .is_some_and(|g| g.take(rows_of(&messages)).is_none())
                    {
                        *slot = None;
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            let _ = client.simple_query("ROLLBACK").await;
            return Err(e);
        }
    }
    simple(client, "COMMIT").await?;
    Ok(())
}

async fn simple(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<SimpleQueryMessage>, Failure> {
    match client.simple_query(sql).await {
        Ok(messages) => Ok(messages),
        Err(e) if e.as_db_error().is_some() => {
            debug!(error = %e, "cache: join rows refused");
            Err(Failure::Value)
        }
        Err(_) => Err(Failure::Connection),
    }
}

/// The rows of a reply, each value's text (`None`: NULL).
fn rows_of(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<bytes::Bytes>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| {
                        r.get(i)
                            .map(|t| bytes::Bytes::copy_from_slice(t.as_bytes()))
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

enum Failure {
    /// The connection is gone or stuck: connect again for the next job.
    Connection,
    /// The origin refused the statement, or the values do not read.
    Value,
}

/// The one row `sql` reads: `Some(key)`, or `None` when there is no row or
/// a value is NULL (no row of the narrowed table can then be joined).
async fn read(client: &tokio_postgres::Client, sql: &str) -> Result<Option<Vec<i64>>, Failure> {
    let messages = match tokio::time::timeout(TIMEOUT, client.simple_query(sql)).await {
        Err(_) => return Err(Failure::Connection),
        Ok(Err(e)) if e.as_db_error().is_some() => {
            debug!(error = %e, "cache: lookup refused");
            return Err(Failure::Value);
        }
        Ok(Err(_)) => return Err(Failure::Connection),
        Ok(Ok(messages)) => messages,
    };
    let mut rows = messages.iter().filter_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    let Some(row) = rows.next() else {
        return Ok(None);
    };
    if rows.next().is_some() {
        return Err(Failure::Value);
    }
    let mut key = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        match row.try_get(i) {
            Ok(Some(text)) => key.push(text.parse().map_err(|_| Failure::Value)?),
            Ok(None) => return Ok(None),
            Err(_) => return Err(Failure::Value),
        }
    }
    Ok(Some(key))
}

async fn connect(origin: &crate::config::OriginConfig) -> Option<tokio_postgres::Client> {
    let pg = origin.pg_config().ok()?;
    match crate::check::connect_origin(&pg, origin.connect_timeout).await {
        Ok((client, _connection)) => Some(client),
        Err(e) => {
            debug!(error = %e, "cache: no lookup connection");
            None
        }
    }
}

/// The lookup reading `columns` of the row of `schema.table` whose key
/// columns `key` have the given values.
pub(crate) fn lookup_sql(
    schema: &str,
    table: &str,
    columns: &[String],
    key: &[(&str, i64)],
) -> String {
    let select: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let filter: Vec<String> = key
        .iter()
        .map(|(c, v)| format!("{} OPERATOR(pg_catalog.=) ({v})", quote_ident(c)))
        .collect();
    format!(
        "SELECT {} FROM ONLY {}.{} WHERE {}",
        select.join(", "),
        quote_ident(schema),
        quote_ident(table),
        filter.join(" AND ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_qualified_and_quoted() {
        assert_eq!(
            lookup_sql(
                "public",
                "Articles",
                &["author_id".to_owned()],
                &[("id", -5)]
            ),
            "SELECT \"author_id\" FROM ONLY \"public\".\"Articles\" WHERE \"id\" OPERATOR(pg_catalog.=) (-5)"
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            lookup_sql(
                "s",
                "t",
                &["x".to_owned(), "y".to_owned()],
                &[("a", 1), ("b", 2)]
            ),
            "SELECT \"x\", \"y\" FROM ONLY \"s\".\"t\" WHERE \"a\" OPERATOR(pg_catalog.=) (1) AND \"b\" OPERATOR(pg_catalog.=) (2)"
        );
    }
}
