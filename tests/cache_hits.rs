//! Cache hits: repeated cacheable statements are answered by the proxy, and
//! every reply is byte-for-byte what the origin sends (golden scripts run
//! directly and through a caching proxy).

use crate::support::Proxy;
use crate::support::cache::{q, setup};
use crate::support::wire::{Until, fe, golden, step, tags};

#[tokio::test]
async fn simple_query_hits_are_exact() {
    setup(
        "DROP TABLE IF EXISTS hits_simple; \
         CREATE TABLE hits_simple (id int PRIMARY KEY, v text, n numeric); \
         INSERT INTO hits_simple SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 50) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = "SELECT id, v, n FROM hits_simple WHERE id = 3";
    let other = "SELECT id, v, n FROM hits_simple WHERE id = 4";
    let steps = [q(sql), q(sql), q(sql), q(other), q(other), q(sql)];
    let g = golden(proxy.addr, "hits_simple", &steps).await;
    g.assert_same();
    // 1st: settings unknown (read right after it, so the 2nd may find the
    // read still under way); then captured once per key, then hits.
    assert!(
        proxy.metrics.cache_hits.get() >= 2,
        "hits: {}",
        proxy.metrics.cache_hits.get()
    );
}

#[tokio::test]
async fn extended_protocol_hits_are_exact() {
    setup(
        "DROP TABLE IF EXISTS hits_ext; \
         CREATE TABLE hits_ext (id int PRIMARY KEY, v text, f float8); \
         INSERT INTO hits_ext SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 50) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let prepare = step(
        &[
            fe::parse("s1", "SELECT v, f FROM hits_ext WHERE id = $1", &[]),
            fe::sync(),
        ],
        Until::Ready(1),
    );
    let run = |id: &str, formats: &[i16]| {
        step(
            &[
                fe::bind("", "s1", &[], &[Some(id.as_bytes())], formats),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let steps = [
        prepare,
        q("SELECT 1 FROM hits_ext WHERE id = 1"),
        run("5", &[]),
        run("5", &[]),
        run("5", &[1]),
        run("5", &[1]),
        run("6", &[0, 1]),
        run("6", &[0, 1]),
        // two groups in one batch, both hits
        step(
            &[
                fe::bind("", "s1", &[], &[Some(b"5")], &[]),
                fe::execute("", 0),
                fe::bind("p2", "s1", &[], &[Some(b"5")], &[1]),
                fe::describe_portal("p2"),
                fe::execute("p2", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
    ];
    let before = proxy.metrics.cache_hits.get();
    let g = golden(proxy.addr, "hits_ext", &steps).await;
    g.assert_same();
    let hits = proxy.metrics.cache_hits.get() - before;
    assert!(hits >= 4, "hits: {hits}; proxied: {}", tags(&g.proxied));
}

/// libpq's PQexecParams, and most drivers before they prepare: Parse of the
/// unnamed statement, Bind, Describe, Execute, Sync every time. The Parse is
/// answered by the proxy on a hit and sent to the origin later, before
/// anything uses the unnamed statement.
#[tokio::test]
async fn unnamed_statement_hits_are_exact() {
    setup(
        "DROP TABLE IF EXISTS hits_unnamed; \
         CREATE TABLE hits_unnamed (id int PRIMARY KEY, v text); \
         INSERT INTO hits_unnamed SELECT g, 'v' || g FROM generate_series(1, 20) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = "SELECT v FROM hits_unnamed WHERE id = $1";
    let exec_params = |id: &str| {
        step(
            &[
                fe::parse("", sql, &[23]),
                fe::bind("", "", &[], &[Some(id.as_bytes())], &[]),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let reuse = |id: &str| {
        step(
            &[
                fe::bind("", "", &[], &[Some(id.as_bytes())], &[1]),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let steps = [
        q("SELECT 1 FROM hits_unnamed WHERE id = 1"),
        exec_params("7"),
        exec_params("7"),
        exec_params("7"),
        exec_params("7"),
        // The unnamed statement is used without a Parse: the origin must
        // have it (the proxy sends the deferred Parse first).
        reuse("8"),
        exec_params("7"),
        step(&[fe::describe_statement(""), fe::sync()], Until::Ready(1)),
        exec_params("7"),
        step(&[fe::close_statement(""), fe::sync()], Until::Ready(1)),
        // Closed: using it is an error, as directly.
        reuse("8"),
        exec_params("9"),
        exec_params("9"),
        // A simple query destroys the unnamed statement, also when it is
        // answered from the cache.
        q("SELECT 2 FROM hits_unnamed WHERE id = 2"),
        reuse("9"),
        exec_params("9"),
        q("SELECT 2 FROM hits_unnamed WHERE id = 2"),
        q("SELECT 2 FROM hits_unnamed WHERE id = 2"),
        reuse("9"),
        step(&[fe::describe_statement(""), fe::sync()], Until::Ready(1)),
        exec_params("9"),
    ];
    let before = proxy.metrics.cache_hits.get();
    let g = golden(proxy.addr, "hits_unnamed", &steps).await;
    g.assert_same();
    let hits = proxy.metrics.cache_hits.get() - before;
    assert!(hits >= 4, "hits: {hits}; proxied: {}", tags(&g.proxied));
}

/// tokio-postgres' `query_typed`: Parse of the unnamed statement, Bind,
/// Describe of the *statement*, Execute, Sync, one round trip. The hit
/// replays the statement's description (ParameterDescription and a
/// RowDescription with text format codes) as the origin sent it; an entry
/// captured with one kind of Describe does not answer the other.
#[tokio::test]
async fn statement_described_after_bind_hits_are_exact() {
    setup(
        "DROP TABLE IF EXISTS hits_typed; \
         CREATE TABLE hits_typed (id int PRIMARY KEY, v text, n numeric); \
         INSERT INTO hits_typed SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 20) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = "SELECT v, n FROM hits_typed WHERE id = $1";
    let typed = |types: &'static [u32], id: &str, formats: &'static [i16]| {
        step(
            &[
                fe::parse("", sql, types),
                fe::bind("", "", &[], &[Some(id.as_bytes())], formats),
                fe::describe_statement(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let portal = |id: &str| {
        step(
            &[
                fe::parse("", sql, &[23]),
                fe::bind("", "", &[], &[Some(id.as_bytes())], &[1]),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let named = |id: &str| {
        step(
            &[
                fe::bind("", "typed_s", &[], &[Some(id.as_bytes())], &[1]),
                fe::describe_statement("typed_s"),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let steps = [
        typed(&[23], "3", &[1]),
        typed(&[23], "3", &[1]),
        typed(&[23], "3", &[1]),
        typed(&[23], "3", &[1]),
        // The same key described as a portal: not the statement's bytes.
        portal("3"),
        portal("3"),
        typed(&[23], "3", &[1]),
        typed(&[23], "3", &[1]),
        // Text results; a parameter type left to the origin (its inferred
        // type is in the captured ParameterDescription).
        typed(&[0], "4", &[]),
        typed(&[0], "4", &[]),
        typed(&[0], "4", &[]),
        // A named statement described after its Bind.
        step(
            &[fe::parse("typed_s", sql, &[20]), fe::sync()],
            Until::Ready(1),
        ),
        named("5"),
        named("5"),
        named("5"),
        // The unnamed statement the hits parsed is the origin's too.
        step(&[fe::describe_statement(""), fe::sync()], Until::Ready(1)),
    ];
    let before = proxy.metrics.cache_hits.get();
    let g = golden(proxy.addr, "hits_typed", &steps).await;
    g.assert_same();
    let hits = proxy.metrics.cache_hits.get() - before;
    assert!(hits >= 6, "hits: {hits}; proxied: {}", tags(&g.proxied));

    // And through tokio-postgres itself.
    let client = proxy.connect("hits_typed_client").await;
    let before = proxy.metrics.cache_hits.get();
    for _ in 0..4 {
        let rows = client
            .query_typed(sql, &[(&6i32, tokio_postgres::types::Type::INT4)])
            .await
            .expect("query_typed");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), "v6");
    }
    assert!(proxy.metrics.cache_hits.get() - before >= 2);
}

/// tokio-postgres' `query(&str, …)`: each call prepares a new named
/// statement (Parse, Describe, Sync), runs it (Bind, Execute, Sync) and
/// closes it (Close, Sync) when done. Repeated calls are hits.
#[tokio::test]
async fn statements_prepared_per_query_and_closed_are_hits() {
    setup(
        "DROP TABLE IF EXISTS hits_closed; \
         CREATE TABLE hits_closed (id int PRIMARY KEY, v text); \
         INSERT INTO hits_closed SELECT g, 'v' || g FROM generate_series(1, 20) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let client = proxy.connect("hits_closed").await;
    let before = proxy.metrics.cache_hits.get();
    for _ in 0..6 {
        let rows = client
            .query("SELECT v FROM hits_closed WHERE id = $1", &[&3i32])
            .await
            .expect("query");
        assert_eq!(rows[0].get::<_, String>(0), "v3");
    }
    let hits = proxy.metrics.cache_hits.get() - before;
    assert!(
        hits >= 3,
        "hits: {hits}, misses {}, populations {:?}",
        proxy.metrics.cache_misses.get(),
        proxy.metrics.cache_populations
    );
}

/// `DEALLOCATE name` (SQL-level statements share the namespace of
/// protocol-level ones) drops that statement only, and `DISCARD PLANS`
/// none: the client's other prepared statements are still known, so they
/// are still served.
#[tokio::test]
async fn statements_outlive_a_deallocate_of_another() {
    setup(
        "DROP TABLE IF EXISTS hits_dealloc; \
         CREATE TABLE hits_dealloc (id int PRIMARY KEY, v text); \
         INSERT INTO hits_dealloc SELECT g, 'v' || g FROM generate_series(1, 20) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let client = proxy.connect("hits_dealloc").await;
    let statement = client
        .prepare("SELECT v FROM hits_dealloc WHERE id = $1")
        .await
        .expect("prepare");
    let read = async || {
        let before = proxy.metrics.cache_hits.get();
        let rows = client.query(&statement, &[&5i32]).await.expect("query");
        assert_eq!(rows[0].get::<_, String>(0), "v5");
        proxy.metrics.cache_hits.get() > before
    };
    let until_hit = async |what: &str| {
        // Settings are read again after the batch: the first reads go to
        // the origin.
        for _ in 0..20 {
            if read().await {
                return;
            }
        }
        panic!("{what}: the prepared statement is never served");
    };
    until_hit("before").await;
    client
        .batch_execute(
            "PREPARE hits_dealloc_other AS SELECT 1; DEALLOCATE hits_dealloc_other; \
             DISCARD PLANS",
        )
        .await
        .expect("deallocate");
    until_hit("after DEALLOCATE of another statement").await;
    // DEALLOCATE ALL drops it on the origin too: the next use is the
    // origin's error, not a hit.
    client
        .batch_execute("DEALLOCATE ALL")
        .await
        .expect("deallocate all");
    let err = client
        .query(&statement, &[&5i32])
        .await
        .expect_err("the statement is gone");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME)
    );
}
