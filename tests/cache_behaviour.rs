//! What the cache must and must not do, end to end against PostgreSQL:
//! writes through the proxy drop entries once they commit, transaction
//! blocks are forwarded, a role never reads what the origin refuses it,
//! hints and allow/deny lists, pipelines keep their order, row limits,
//! memory stays bounded, metrics.

use tokio_postgres::SimpleQueryMessage;

use crate::support::cache::{col, one, setup, warm};
use crate::support::wire::{RawConn, Until, fe, golden, step};
use crate::support::{Proxy, pg_config, sqlstate};

#[tokio::test]
async fn writes_through_the_proxy_drop_entries_at_commit() {
    setup(
        "DROP TABLE IF EXISTS beh_write; \
         CREATE TABLE beh_write (id int PRIMARY KEY, v text); \
         INSERT INTO beh_write VALUES (1, 'a'), (2, 'b')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("beh_write_reader").await;
    let writer = proxy.connect("beh_write_writer").await;
    let read = "SELECT v FROM beh_write WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("a"));

    // Autocommit write by another session.
    writer
        .simple_query("UPDATE beh_write SET v = 'b' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&reader, read).await, one("b"));
    assert_eq!(warm(&proxy, &reader, read).await, one("b"));

    // In a transaction block: the old value stays right until COMMIT, the
    // writer reads its own write (forwarded), the new one right after.
    writer.simple_query("BEGIN").await.unwrap();
    writer
        .simple_query("UPDATE beh_write SET v = 'c' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&writer, read).await, one("c"), "own write in the block");
    assert_eq!(col(&reader, read).await, one("b"));
    writer.simple_query("COMMIT").await.unwrap();
    assert_eq!(col(&reader, read).await, one("c"));

    // Rolled back: the value stays.
    assert_eq!(warm(&proxy, &reader, read).await, one("c"));
    writer
        .simple_query("BEGIN; UPDATE beh_write SET v = 'x' WHERE id = 1; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(col(&reader, read).await, one("c"));

    // Extended protocol write (prepared), DELETE, INSERT, TRUNCATE, COPY.
    assert_eq!(warm(&proxy, &reader, read).await, one("c"));
    let upd = writer
        .prepare("UPDATE beh_write SET v = $1 WHERE id = $2")
        .await
        .unwrap();
    writer.execute(&upd, &[&"d", &1i32]).await.unwrap();
    assert_eq!(col(&reader, read).await, one("d"));

    assert_eq!(warm(&proxy, &reader, read).await, one("d"));
    writer
        .simple_query("DELETE FROM beh_write WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&reader, read).await, Vec::<Option<String>>::new());

    let empty = warm(&proxy, &reader, read).await;
    assert!(empty.is_empty());
    writer
        .simple_query("INSERT INTO beh_write VALUES (1, 'e')")
        .await
        .unwrap();
    assert_eq!(col(&reader, read).await, one("e"));

    assert_eq!(warm(&proxy, &reader, read).await, one("e"));
    writer.simple_query("TRUNCATE beh_write").await.unwrap();
    assert_eq!(col(&reader, read).await, Vec::<Option<String>>::new());

    let _ = warm(&proxy, &reader, read).await;
    let (mut raw, _) = RawConn::startup_app(proxy.addr, "beh_write_copy").await;
    raw.send(
        &[
            fe::query("COPY beh_write FROM STDIN"),
            fe::copy_data(b"1\tf\n"),
            fe::copy_done(),
        ]
        .concat(),
    )
    .await;
    let msgs = raw.recv_until_ready().await;
    assert!(msgs.iter().all(|m| !m.is_error()), "{msgs:?}");
    assert_eq!(col(&reader, read).await, one("f"));

    // A write in another schema-qualified spelling still hits the table.
    assert_eq!(warm(&proxy, &reader, read).await, one("f"));
    writer
        .simple_query("UPDATE public.beh_write SET v = 'g' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&reader, read).await, one("g"));
}

#[tokio::test]
async fn functions_and_ddl_with_unknown_effects_drop_everything() {
    setup(
        "DROP TABLE IF EXISTS beh_fn; \
         CREATE TABLE beh_fn (id int PRIMARY KEY, v int); \
         INSERT INTO beh_fn VALUES (1, 0); \
         CREATE OR REPLACE FUNCTION beh_bump() RETURNS int LANGUAGE sql VOLATILE \
         AS 'UPDATE beh_fn SET v = v + 1 RETURNING v'",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("beh_fn_reader").await;
    let writer = proxy.connect("beh_fn_writer").await;
    let read = "SELECT v FROM beh_fn WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("0"));
    writer.simple_query("SELECT beh_bump()").await.unwrap();
    assert_eq!(col(&reader, read).await, one("1"));

    // DDL: the shape of `SELECT *` changes.
    let star = "SELECT * FROM beh_fn WHERE id = 1";
    let _ = warm(&proxy, &reader, star).await;
    writer
        .simple_query("ALTER TABLE beh_fn ADD COLUMN w text DEFAULT 'new'")
        .await
        .unwrap();
    let rows = reader.simple_query(star).await.unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(row.len(), 3, "the added column is there");
    assert_eq!(row.get(2), Some("new"));
}

#[tokio::test]
async fn transaction_blocks_are_forwarded() {
    setup(
        "DROP TABLE IF EXISTS beh_txn; \
         CREATE TABLE beh_txn (id int PRIMARY KEY, v text); \
         INSERT INTO beh_txn VALUES (1, 'a')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let c = proxy.connect("beh_txn").await;
    let read = "SELECT v FROM beh_txn WHERE id = 1";
    let _ = warm(&proxy, &c, read).await;
    c.simple_query("BEGIN").await.unwrap();
    let before = proxy.metrics.cache_hits.get();
    for _ in 0..3 {
        assert_eq!(col(&c, read).await, one("a"));
    }
    assert_eq!(proxy.metrics.cache_hits.get(), before, "no hits in a block");
    c.simple_query("COMMIT").await.unwrap();
    let _ = warm(&proxy, &c, read).await;
}

#[tokio::test]
async fn a_role_never_reads_what_the_origin_refuses_it() {
    setup(
        "DROP TABLE IF EXISTS beh_secret; \
         CREATE TABLE beh_secret (id int PRIMARY KEY, v text); \
         INSERT INTO beh_secret VALUES (1, 'secret'); \
         DROP ROLE IF EXISTS beh_yes; DROP ROLE IF EXISTS beh_no; \
         CREATE ROLE beh_yes LOGIN; CREATE ROLE beh_no LOGIN; \
         GRANT SELECT ON beh_secret TO beh_yes",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let connect_as = |user: &'static str| {
        let mut cfg = pg_config(proxy.addr, "beh_secret");
        cfg.user(user);
        async move {
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client
        }
    };
    let read = "SELECT v FROM beh_secret WHERE id = 1";
    let yes = connect_as("beh_yes").await;
    assert_eq!(warm(&proxy, &yes, read).await, one("secret"));
    let no = connect_as("beh_no").await;
    for _ in 0..4 {
        let err = no.simple_query(read).await.expect_err("must be refused");
        assert_eq!(sqlstate(&err).map(|s| s.code()), Some("42501"), "{err}");
    }
    // The superuser reads it, then becomes the refused role: refused.
    let admin = proxy.connect("beh_secret_admin").await;
    let _ = warm(&proxy, &admin, read).await;
    admin.simple_query("SET ROLE beh_no").await.unwrap();
    for _ in 0..3 {
        let err = admin.simple_query(read).await.expect_err("refused");
        assert_eq!(sqlstate(&err).map(|s| s.code()), Some("42501"), "{err}");
    }
    admin.simple_query("RESET ROLE").await.unwrap();
    assert_eq!(col(&admin, read).await, one("secret"));
    // Prepared, through the extended protocol, as the refused role.
    let stmt = no.prepare("SELECT v FROM beh_secret WHERE id = $1").await;
    if let Ok(stmt) = stmt {
        for _ in 0..3 {
            assert!(no.query(&stmt, &[&1i32]).await.is_err());
        }
    }
    // Once granted, the role is served.
    setup("GRANT SELECT ON beh_secret TO beh_no").await;
    assert_eq!(warm(&proxy, &no, read).await, one("secret"));
}

#[tokio::test]
async fn hints_and_table_lists() {
    setup(
        "DROP TABLE IF EXISTS beh_allowed, beh_denied; \
         CREATE TABLE beh_allowed (id int PRIMARY KEY, v text); \
         CREATE TABLE beh_denied (id int PRIMARY KEY, v text); \
         INSERT INTO beh_allowed VALUES (1, 'a'); INSERT INTO beh_denied VALUES (1, 'd')",
    )
    .await;
    let proxy = Proxy::start_cached(|c| c.cache.deny_tables = vec!["beh_denied".into()]).await;
    let c = proxy.connect("beh_lists").await;
    let _ = warm(&proxy, &c, "SELECT v FROM beh_allowed WHERE id = 1").await;
    let before = proxy.metrics.cache_hits.get();
    for _ in 0..4 {
        col(&c, "SELECT v FROM beh_denied WHERE id = 1").await;
        col(
            &c,
            "/* pgcache: skip */ SELECT v FROM beh_allowed WHERE id = 1",
        )
        .await;
    }
    assert_eq!(proxy.metrics.cache_hits.get(), before);

    // Explicit mode: only the listed table.
    let explicit = Proxy::start_cached(|c| {
        c.cache.mode = pgcache::config::CacheMode::Explicit;
        c.cache.allow_tables = vec!["public.beh_denied".into()];
    })
    .await;
    let c = explicit.connect("beh_explicit").await;
    let _ = warm(&explicit, &c, "SELECT v FROM beh_denied WHERE id = 1").await;
    let before = explicit.metrics.cache_hits.get();
    for _ in 0..4 {
        col(&c, "SELECT v FROM beh_allowed WHERE id = 1").await;
    }
    assert_eq!(explicit.metrics.cache_hits.get(), before);
}

#[tokio::test]
async fn pipelines_keep_their_order_and_row_limits_are_exact() {
    setup(
        "DROP TABLE IF EXISTS beh_pipe; \
         CREATE TABLE beh_pipe (id int PRIMARY KEY, v text); \
         INSERT INTO beh_pipe SELECT g, 'v' || g FROM generate_series(1, 5) g",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let hit = "SELECT v FROM beh_pipe WHERE id = 2";
    let range = "SELECT id, v FROM beh_pipe WHERE id <= 3 ORDER BY id";
    let q = |s: &str| step(&[fe::query(s)], Until::Ready(1));
    let run = |portal: &str, stmt: &str, max_rows: i32| {
        vec![
            fe::bind(portal, stmt, &[], &[], &[]),
            fe::describe_portal(portal),
            fe::execute(portal, max_rows),
        ]
    };
    let mut steps = vec![
        q(hit),
        q(hit),
        q(hit),
        step(&[fe::parse("r", range, &[]), fe::sync()], Until::Ready(1)),
        step(&[run("", "r", 0).concat(), fe::sync()], Until::Ready(1)),
        step(&[run("", "r", 0).concat(), fe::sync()], Until::Ready(1)),
    ];
    // Pipelined: hit, forwarded, hit, forwarded error, hit — in one write.
    steps.push(step(
        &[
            fe::query(hit),
            fe::query("SELECT pg_catalog.now() IS NOT NULL"),
            fe::query(hit),
            fe::query("SELECT 1/0"),
            fe::query(hit),
        ],
        Until::Ready(5),
    ));
    // Extended pipeline mixing a hit batch, a forwarded batch and a hit.
    steps.push(step(
        &[
            run("", "r", 0).concat(),
            fe::sync(),
            fe::parse("", "SELECT pg_catalog.clock_timestamp() IS NOT NULL", &[]),
            fe::bind("", "", &[], &[], &[]),
            fe::execute("", 0),
            fe::sync(),
            run("", "r", 0).concat(),
            fe::sync(),
        ],
        Until::Ready(3),
    ));
    // Row limits: fewer rows than the limit (servable), exactly as many and
    // more (PortalSuspended, forwarded), then the rest of a suspended portal.
    steps.push(step(
        &[run("", "r", 10).concat(), fe::sync()],
        Until::Ready(1),
    ));
    steps.push(step(
        &[run("", "r", 3).concat(), fe::sync()],
        Until::Ready(1),
    ));
    steps.push(step(
        &[
            run("p", "r", 1).concat(),
            fe::execute("p", 1),
            fe::execute("p", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    let before = proxy.metrics.cache_hits.get();
    let g = golden(proxy.addr, "beh_pipe", &steps).await;
    g.assert_same();
    // Hits: the repeated query, the prepared range, the first request of
    // each pipeline (later ones wait behind forwarded requests, so they are
    // forwarded too, in order), and the row limit above the row count.
    let hits = proxy.metrics.cache_hits.get() - before;
    assert!(hits >= 4, "hits: {hits}");
}

#[tokio::test]
async fn memory_stays_within_the_bound() {
    setup(
        "DROP TABLE IF EXISTS beh_mem; \
         CREATE TABLE beh_mem (id int PRIMARY KEY, v text); \
         INSERT INTO beh_mem SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g",
    )
    .await;
    let max = 128 * 1024;
    let proxy = Proxy::start_cached(|c| {
        c.cache.max_memory = max;
        c.cache.max_result_size = 16 * 1024;
    })
    .await;
    let c = proxy.connect("beh_mem").await;
    for round in 0..2 {
        for id in 1..=2000 {
            let rows = col(&c, &format!("SELECT v FROM beh_mem WHERE id = {id}")).await;
            assert_eq!(rows.len(), 1, "round {round} id {id}");
        }
        let text = proxy.metrics.encode();
        let memory = metric(&text, "pgcache_cache_memory_bytes");
        assert!(
            memory > 0.0 && memory <= max as f64,
            "memory {memory} > {max}"
        );
    }
    let text = proxy.metrics.encode();
    assert!(
        metric(&text, "pgcache_cache_evictions_total") > 0.0,
        "{text}"
    );
    assert!(metric(&text, "pgcache_cache_entries") > 0.0);
    assert!(metric(&text, "pgcache_cache_rows") > 0.0);
    for name in [
        "pgcache_cache_hits_total",
        "pgcache_cache_misses_total",
        "pgcache_cache_populations_total{result=\"ok\"}",
        "pgcache_cache_hit_duration_seconds_count",
        "pgcache_cache_miss_duration_seconds_count",
    ] {
        assert!(metric(&text, name) > 0.0, "{name} in {text}");
    }
}

/// The value of the first sample named exactly `name` (labels included).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no sample {name}"))
}
