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
