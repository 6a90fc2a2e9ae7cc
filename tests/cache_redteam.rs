//! Adversarial scenarios for the result cache: every test is a situation in
//! which a client talking through the proxy must get exactly what it would
//! get from PostgreSQL directly (same bytes, same errors, no stale rows, no
//! hang). Single-session scenarios are golden scripts (direct vs proxied,
//! byte for byte); multi-session ones check values against what the origin
//! holds.
//!
//! Writes made directly on the origin (not through the proxy) are out of
//! scope here: every write below goes through the proxy.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::support::cache::{col, one, q, setup, warm, warm_raw};
use crate::support::origin::{MD5_PASSWORD, MD5_USER, SUPERUSER};
use crate::support::wire::{Golden, Msg, RawConn, Step, Until, fe, run_script, step};
use crate::support::{Proxy, connect, connect_direct, eventually, origin, pg_config};

// -------------------------------------------------------------------------
// Helpers
// -------------------------------------------------------------------------

/// Parse `sql` as statement `name`, then Sync.
fn prepare(name: &str, sql: &str) -> Step {
    step(&[fe::parse(name, sql, &[]), fe::sync()], Until::Ready(1))
}

/// Bind `stmt` into `portal` with text parameters, Describe the portal,
/// Execute it, Sync.
fn run_in(portal: &str, stmt: &str, params: &[&str]) -> Step {
    let values: Vec<Option<&[u8]>> = params.iter().map(|p| Some(p.as_bytes())).collect();
    step(
        &[
            fe::bind(portal, stmt, &[], &values, &[]),
            fe::describe_portal(portal),
            fe::execute(portal, 0),
            fe::sync(),
        ],
        Until::Ready(1),
    )
}

fn run(stmt: &str, params: &[&str]) -> Step {
    run_in("", stmt, params)
}

fn startup_params<'a>(user: &'a str, app: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("user", user),
        ("database", "postgres"),
        ("application_name", app),
    ]
}

/// A golden script run as `user` (trust authentication).
async fn golden_as(proxy: SocketAddr, user: &str, app: &str, steps: &[Step]) -> Golden {
    let params = startup_params(user, app);
    let direct = run_script(origin().addr(), &params, steps).await;
    let proxied = run_script(proxy, &params, steps).await;
    Golden { direct, proxied }
}

/// Run a golden script as the superuser, print what it is, compare, and
/// return how many hits the proxy counted meanwhile.
async fn checked(proxy: &Proxy, what: &str, steps: &[Step]) -> u64 {
    checked_as(proxy, SUPERUSER, what, steps).await
}

async fn checked_as(proxy: &Proxy, user: &str, what: &str, steps: &[Step]) -> u64 {
    let before = proxy.metrics.cache_hits.get();
    let g = golden_as(proxy.addr, user, "rt_golden", steps).await;
    eprintln!("checking: {what}");
    g.assert_same();
    proxy.metrics.cache_hits.get() - before
}

/// Make sure the proxy knows `client`'s settings (a cache hit proves it):
/// a write by a session whose settings are unknown is conservatively taken
/// to touch every table, which would hide what a test looks at.
async fn settings_known(proxy: &Proxy, client: &Client, sql: &str) {
    let _ = warm(proxy, client, sql).await;
}

/// `sql` `n` times as separate Query steps.
fn reads(sql: &str, n: usize) -> Vec<Step> {
    (0..n).map(|_| q(sql)).collect()
}

/// Steps after which the proxy knows the session's settings: the first
/// `SELECT 1` makes it send its settings probe, whose answer the origin
/// sends before its reply to the second. (A request that arrives while the
/// probe is out is forwarded unwatched, so without this the first reads
/// after a settings change may or may not be captured.)
fn settle() -> Vec<Step> {
    vec![q("SELECT 1"), q("SELECT 1")]
}

/// The first column of every DataRow in `msgs`.
fn values(msgs: &[Msg]) -> Vec<Option<String>> {
    msgs.iter()
        .filter(|m| m.tag == b'D')
        .map(|m| {
            m.data_row()[0]
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

fn error_code(msgs: &[Msg]) -> Option<String> {
    msgs.iter().find(|m| m.is_error()).and_then(Msg::sqlstate)
}

/// Send one step's bytes and read up to its ReadyForQuery.
async fn exchange(c: &mut RawConn, s: Step) -> Vec<Msg> {
    c.send(&s.send).await;
    c.recv_until_ready().await
}

/// Wait until the proxy has loaded the origin's catalog again (after DDL).
async fn catalog_reloaded(proxy: &Proxy, before: u64) {
    let metrics = std::sync::Arc::clone(&proxy.metrics);
    eventually(Duration::from_secs(20), "catalog reloaded", move || {
        let m = std::sync::Arc::clone(&metrics);
        async move { m.cache_catalog_loads.get() > before }
    })
    .await;
}

// -------------------------------------------------------------------------
// Writes: when they are applied
// -------------------------------------------------------------------------

/// A pipelining client: an autocommit statement, then BEGIN and an UPDATE,
/// all in one write. The UPDATE is accounted when forwarded, but applied at
/// the first idle ReadyForQuery (that of the first statement), before the
/// UPDATE even ran; its COMMIT later finds nothing to apply. A result
/// captured in between (old row, new generation) outlives the commit.
#[tokio::test]
async fn write_pipelined_behind_an_idle_statement_is_applied_at_its_own_commit() {
    setup(
        "DROP TABLE IF EXISTS rt_pipe_w; \
         CREATE TABLE rt_pipe_w (id int PRIMARY KEY, v text); \
         INSERT INTO rt_pipe_w VALUES (1, 'old')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_pipe_w_reader").await;
    let read = "SELECT v FROM rt_pipe_w WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("old"));

    let (mut writer, _) = RawConn::startup_app(proxy.addr, "rt_pipe_w_writer").await;
    warm_raw(&proxy, &mut writer, "SELECT v FROM rt_pipe_w WHERE id = 1").await;
    writer
        .send(
            &[
                fe::query("SELECT 1"),
                fe::query("BEGIN"),
                fe::query("UPDATE rt_pipe_w SET v = 'new' WHERE id = 1"),
            ]
            .concat(),
        )
        .await;
    for _ in 0..3 {
        let msgs = writer.recv_until_ready().await;
        assert!(error_code(&msgs).is_none(), "{msgs:?}");
    }
    // Not committed yet: the old row is right, and gets cached again.
    assert_eq!(warm(&proxy, &reader, read).await, one("old"));
    let msgs = writer.simple("COMMIT").await;
    assert!(error_code(&msgs).is_none(), "{msgs:?}");

    let direct = connect_direct("rt_pipe_w_check").await;
    assert_eq!(col(&direct, read).await, one("new"), "the origin has it");
    assert_eq!(
        col(&reader, read).await,
        one("new"),
        "committed UPDATE not seen through the proxy"
    );
}

/// A search_path change and an UPDATE of an unqualified table in one Query:
/// the UPDATE writes the table the new path names. (The reader uses a path
/// with rt_msb only: a name found in two schemas of its path would not be
/// cached at all.) With `SET` the proxy takes the write as unknown (every
/// table); with `SELECT set_config(…)` it resolves the UPDATE's target with
/// the search_path from before the change.
#[tokio::test]
async fn write_after_search_path_change_in_the_same_query_is_seen() {
    setup(
        "DROP SCHEMA IF EXISTS rt_msb CASCADE; CREATE SCHEMA rt_msb; \
         DROP TABLE IF EXISTS public.rt_mst; \
         CREATE TABLE public.rt_mst (id int PRIMARY KEY, v text); \
         CREATE TABLE rt_msb.rt_mst (id int PRIMARY KEY, v text); \
         INSERT INTO public.rt_mst VALUES (1, 'public'); \
         INSERT INTO rt_msb.rt_mst VALUES (1, 'b old')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_msb_reader").await;
    reader
        .simple_query("SET search_path = rt_msb")
        .await
        .unwrap();
    let read = "SELECT v FROM rt_mst WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("b old"));

    let writer = proxy.connect("rt_msb_writer").await;
    // The writer's settings are known (search_path public).
    assert_eq!(
        warm(&proxy, &writer, "SELECT v FROM public.rt_mst WHERE id = 1").await,
        one("public")
    );
    writer
        .simple_query("SET search_path = rt_msb; UPDATE rt_mst SET v = 'b new' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        col(&reader, read).await,
        one("b new"),
        "UPDATE after SET search_path not seen through the proxy"
    );

    assert_eq!(warm(&proxy, &reader, read).await, one("b new"));
    writer.simple_query("RESET search_path").await.unwrap();
    settings_known(&proxy, &writer, "SELECT v FROM public.rt_mst WHERE id = 1").await;
    writer
        .simple_query(
            "SELECT pg_catalog.set_config('search_path', 'rt_msb', false); \
             UPDATE rt_mst SET v = 'b newer' WHERE id = 1",
        )
        .await
        .unwrap();
    let direct = connect_direct("rt_msb_check").await;
    assert_eq!(
        col(&direct, "SELECT v FROM rt_msb.rt_mst WHERE id = 1").await,
        one("b newer"),
        "the origin has it"
    );
    assert_eq!(
        col(&reader, read).await,
        one("b newer"),
        "UPDATE after set_config('search_path') not seen through the proxy"
    );
}

// -------------------------------------------------------------------------
// Writes: paths the write detection misses
// -------------------------------------------------------------------------

/// A rule on the written table writes another table (`DO ALSO`).
#[tokio::test]
async fn write_by_a_rule_on_the_written_table_is_seen() {
    setup(
        "DROP TABLE IF EXISTS rt_rule_src, rt_rule_log; \
         CREATE TABLE rt_rule_src (id int PRIMARY KEY, v int); \
         CREATE TABLE rt_rule_log (id int PRIMARY KEY, n int); \
         INSERT INTO rt_rule_src VALUES (1, 0); INSERT INTO rt_rule_log VALUES (1, 0); \
         CREATE RULE rt_rule_also AS ON UPDATE TO rt_rule_src \
         DO ALSO UPDATE rt_rule_log SET n = n + 1 WHERE id = 1",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_rule_reader").await;
    let writer = proxy.connect("rt_rule_writer").await;
    let read = "SELECT n FROM rt_rule_log WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("0"));
    settings_known(&proxy, &writer, "SELECT v FROM rt_rule_src WHERE id = 1").await;
    writer
        .simple_query("UPDATE rt_rule_src SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        col(&reader, read).await,
        one("1"),
        "write made by the rule not seen through the proxy"
    );
}

/// `COPY (UPDATE … RETURNING …) TO STDOUT` writes.
#[tokio::test]
async fn write_by_copy_to_of_a_data_modifying_statement_is_seen() {
    setup(
        "DROP TABLE IF EXISTS rt_copy_to; \
         CREATE TABLE rt_copy_to (id int PRIMARY KEY, v text); \
         INSERT INTO rt_copy_to VALUES (1, 'old')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_copy_to_reader").await;
    let read = "SELECT v FROM rt_copy_to WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("old"));
    let (mut writer, _) = RawConn::startup_app(proxy.addr, "rt_copy_to_writer").await;
    let msgs = writer
        .simple("COPY (UPDATE rt_copy_to SET v = 'new' WHERE id = 1 RETURNING id) TO STDOUT")
        .await;
    assert!(error_code(&msgs).is_none(), "{msgs:?}");
    assert_eq!(
        col(&reader, read).await,
        one("new"),
        "UPDATE inside COPY … TO not seen through the proxy"
    );
}

/// A view whose select list calls a writing function: selecting from the
/// view writes, though the statement names no function.
#[tokio::test]
async fn write_by_a_function_called_from_a_view_is_seen() {
    setup(
        "DROP VIEW IF EXISTS rt_vw_bump; DROP TABLE IF EXISTS rt_vw_log; \
         CREATE TABLE rt_vw_log (id int PRIMARY KEY, n int); \
         INSERT INTO rt_vw_log VALUES (1, 0); \
         CREATE OR REPLACE FUNCTION rt_vw_bump_fn() RETURNS int LANGUAGE sql VOLATILE \
         AS 'UPDATE rt_vw_log SET n = n + 1 WHERE id = 1 RETURNING n'; \
         CREATE VIEW rt_vw_bump AS SELECT rt_vw_bump_fn() AS n",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_vw_reader").await;
    let writer = proxy.connect("rt_vw_writer").await;
    let read = "SELECT n FROM rt_vw_log WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("0"));
    assert_eq!(col(&writer, "SELECT n FROM rt_vw_bump").await, one("1"));
    assert_eq!(
        col(&reader, read).await,
        one("1"),
        "write made through the view not seen through the proxy"
    );
}

/// A column default calls a function that writes another table.
#[tokio::test]
async fn write_by_a_column_default_is_seen() {
    setup(
        "DROP TABLE IF EXISTS rt_dflt, rt_dflt_log; \
         CREATE TABLE rt_dflt_log (id int PRIMARY KEY, n int); \
         INSERT INTO rt_dflt_log VALUES (1, 0); \
         CREATE OR REPLACE FUNCTION rt_dflt_next() RETURNS int LANGUAGE sql VOLATILE \
         AS 'UPDATE rt_dflt_log SET n = n + 1 WHERE id = 1 RETURNING n'; \
         CREATE TABLE rt_dflt (id int PRIMARY KEY, seq int DEFAULT rt_dflt_next())",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_dflt_reader").await;
    let writer = proxy.connect("rt_dflt_writer").await;
    let read = "SELECT n FROM rt_dflt_log WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("0"));
    settings_known(&proxy, &writer, "SELECT n FROM rt_dflt_log WHERE id = 1").await;
    writer
        .simple_query("INSERT INTO rt_dflt (id) VALUES (1)")
        .await
        .unwrap();
    assert_eq!(
        col(&reader, read).await,
        one("1"),
        "write made by the column default not seen through the proxy"
    );
}

/// DDL run by a `DO` block (a trigger created on the written table) does
/// not make the proxy reload its catalog: later writes to that table are
/// resolved as trigger-free and the trigger's writes are missed.
#[tokio::test]
async fn trigger_created_in_a_do_block_is_taken_into_account() {
    setup(
        "DROP TABLE IF EXISTS rt_do_src, rt_do_log; \
         CREATE TABLE rt_do_src (id int PRIMARY KEY, v int); \
         CREATE TABLE rt_do_log (id int PRIMARY KEY, n int); \
         INSERT INTO rt_do_src VALUES (1, 0); INSERT INTO rt_do_log VALUES (1, 0); \
         CREATE OR REPLACE FUNCTION rt_do_log_fn() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN UPDATE rt_do_log SET n = n + 1 WHERE id = 1; RETURN NEW; END$$",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let reader = proxy.connect("rt_do_reader").await;
    let writer = proxy.connect("rt_do_writer").await;
    writer
        .simple_query(
            "DO $$BEGIN CREATE TRIGGER rt_do_trg AFTER UPDATE ON rt_do_src \
             FOR EACH ROW EXECUTE FUNCTION rt_do_log_fn(); END$$",
        )
        .await
        .unwrap();
    let read = "SELECT n FROM rt_do_log WHERE id = 1";
    assert_eq!(warm(&proxy, &reader, read).await, one("0"));
    settings_known(&proxy, &writer, "SELECT v FROM rt_do_src WHERE id = 1").await;
    writer
        .simple_query("UPDATE rt_do_src SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        col(&reader, read).await,
        one("1"),
        "write made by the trigger not seen through the proxy"
    );
}

/// Write paths the proxy does see (each: warm a read, write, read again).
#[tokio::test]
async fn writes_through_other_paths_are_seen() {
    setup(
        "DROP VIEW IF EXISTS rt_wp_view; \
         DROP TABLE IF EXISTS rt_wp_child, rt_wp_parent, rt_wp, rt_wp_trg_src, rt_wp_trg_log, \
           rt_wp_swap_a, rt_wp_swap_b, rt_wp_re; \
         CREATE TABLE rt_wp (id int PRIMARY KEY, v text); \
         INSERT INTO rt_wp VALUES (1, 'a'); \
         CREATE TABLE rt_wp_parent (id int PRIMARY KEY); \
         CREATE TABLE rt_wp_child (id int PRIMARY KEY, \
           p int REFERENCES rt_wp_parent ON DELETE CASCADE, v text); \
         INSERT INTO rt_wp_parent VALUES (1), (2); \
         INSERT INTO rt_wp_child VALUES (1, 1, 'c1'), (2, 2, 'c2'); \
         CREATE TABLE rt_wp_trg_src (id int PRIMARY KEY, v int); \
         CREATE TABLE rt_wp_trg_log (id int PRIMARY KEY, n int); \
         INSERT INTO rt_wp_trg_src VALUES (1, 0); INSERT INTO rt_wp_trg_log VALUES (1, 0); \
         CREATE OR REPLACE FUNCTION rt_wp_trg_fn() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN UPDATE rt_wp_trg_log SET n = n + 1 WHERE id = 1; RETURN NEW; END$$; \
         CREATE TRIGGER rt_wp_trg AFTER UPDATE ON rt_wp_trg_src \
           FOR EACH ROW EXECUTE FUNCTION rt_wp_trg_fn(); \
         CREATE VIEW rt_wp_view AS SELECT id, v FROM rt_wp; \
         CREATE TABLE rt_wp_swap_a (id int PRIMARY KEY, v text); \
         CREATE TABLE rt_wp_swap_b (id int PRIMARY KEY, v text); \
         INSERT INTO rt_wp_swap_a VALUES (1, 'from a'); INSERT INTO rt_wp_swap_b VALUES (1, 'from b'); \
         CREATE TABLE rt_wp_re (id int PRIMARY KEY, v text); INSERT INTO rt_wp_re VALUES (1, 'first'); \
         DROP TABLE IF EXISTS rt_wp_known; CREATE TABLE rt_wp_known (id int PRIMARY KEY); \
         INSERT INTO rt_wp_known VALUES (1)",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let r = proxy.connect("rt_wp_reader").await;
    let w = proxy.connect("rt_wp_writer").await;
    let read = "SELECT v FROM rt_wp WHERE id = 1";
    // The writer's settings are known before each write (otherwise every
    // write counts as touching every table).
    let known = "SELECT id FROM rt_wp_known WHERE id = 1";

    // Writable CTE in a prepared statement.
    assert_eq!(warm(&proxy, &r, read).await, one("a"));
    settings_known(&proxy, &w, known).await;
    let cte = w
        .prepare(
            "WITH u AS (UPDATE rt_wp SET v = $1 WHERE id = 1 RETURNING 1) \
             SELECT count(*) FROM u",
        )
        .await
        .unwrap();
    w.query(&cte, &[&"b"]).await.unwrap();
    assert_eq!(col(&r, read).await, one("b"), "writable CTE");

    // INSERT … ON CONFLICT DO UPDATE.
    assert_eq!(warm(&proxy, &r, read).await, one("b"));
    settings_known(&proxy, &w, known).await;
    w.simple_query(
        "INSERT INTO rt_wp VALUES (1, 'c') ON CONFLICT (id) DO UPDATE SET v = excluded.v",
    )
    .await
    .unwrap();
    assert_eq!(col(&r, read).await, one("c"), "ON CONFLICT");

    // SQL-level PREPARE / EXECUTE.
    assert_eq!(warm(&proxy, &r, read).await, one("c"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("PREPARE rt_wp_upd(text) AS UPDATE rt_wp SET v = $1 WHERE id = 1")
        .await
        .unwrap();
    settings_known(&proxy, &w, known).await;
    w.simple_query("EXECUTE rt_wp_upd('d')").await.unwrap();
    assert_eq!(col(&r, read).await, one("d"), "EXECUTE");

    // UPDATE through a view.
    assert_eq!(warm(&proxy, &r, read).await, one("d"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("UPDATE rt_wp_view SET v = 'e' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&r, read).await, one("e"), "view");

    // COPY FROM STDIN through the extended protocol.
    assert_eq!(warm(&proxy, &r, read).await, one("e"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("DELETE FROM rt_wp WHERE id = 1")
        .await
        .unwrap();
    assert!(col(&r, read).await.is_empty());
    let _ = warm(&proxy, &r, read).await;
    settings_known(&proxy, &w, known).await;
    {
        let sink = w
            .copy_in("COPY rt_wp (id, v) FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &[Type::INT4, Type::TEXT]));
        writer.as_mut().write(&[&1i32, &"f"]).await.unwrap();
        writer.finish().await.unwrap();
    }
    assert_eq!(col(&r, read).await, one("f"), "COPY FROM (extended)");

    // A trigger writing another table.
    let log = "SELECT n FROM rt_wp_trg_log WHERE id = 1";
    assert_eq!(warm(&proxy, &r, log).await, one("0"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("UPDATE rt_wp_trg_src SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&r, log).await, one("1"), "trigger");

    // ON DELETE CASCADE, then TRUNCATE … CASCADE.
    let child = "SELECT v FROM rt_wp_child WHERE id = 1";
    assert_eq!(warm(&proxy, &r, child).await, one("c1"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("DELETE FROM rt_wp_parent WHERE id = 1")
        .await
        .unwrap();
    assert!(col(&r, child).await.is_empty(), "ON DELETE CASCADE");
    let child2 = "SELECT v FROM rt_wp_child WHERE id = 2";
    assert_eq!(warm(&proxy, &r, child2).await, one("c2"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("TRUNCATE rt_wp_parent CASCADE")
        .await
        .unwrap();
    assert!(col(&r, child2).await.is_empty(), "TRUNCATE CASCADE");

    // Two tables swap names.
    let swap = "SELECT v FROM rt_wp_swap_a WHERE id = 1";
    assert_eq!(warm(&proxy, &r, swap).await, one("from a"));
    let loads = proxy.metrics.cache_catalog_loads.get();
    settings_known(&proxy, &w, known).await;
    w.simple_query(
        "BEGIN; ALTER TABLE rt_wp_swap_a RENAME TO rt_wp_swap_t; \
         ALTER TABLE rt_wp_swap_b RENAME TO rt_wp_swap_a; \
         ALTER TABLE rt_wp_swap_t RENAME TO rt_wp_swap_b; COMMIT",
    )
    .await
    .unwrap();
    assert_eq!(col(&r, swap).await, one("from b"), "renamed");
    catalog_reloaded(&proxy, loads).await;
    assert_eq!(warm(&proxy, &r, swap).await, one("from b"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("UPDATE rt_wp_swap_a SET v = 'b updated' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(col(&r, swap).await, one("b updated"), "write after rename");

    // Dropped and created again under the same name.
    let re = "SELECT v FROM rt_wp_re WHERE id = 1";
    assert_eq!(warm(&proxy, &r, re).await, one("first"));
    let loads = proxy.metrics.cache_catalog_loads.get();
    settings_known(&proxy, &w, known).await;
    w.simple_query(
        "DROP TABLE rt_wp_re; CREATE TABLE rt_wp_re (id int PRIMARY KEY, v text); \
         INSERT INTO rt_wp_re VALUES (1, 'second')",
    )
    .await
    .unwrap();
    assert_eq!(col(&r, re).await, one("second"), "re-created");
    catalog_reloaded(&proxy, loads).await;
    assert_eq!(warm(&proxy, &r, re).await, one("second"));
    settings_known(&proxy, &w, known).await;
    w.simple_query("UPDATE rt_wp_re SET v = 'third' WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(
        col(&r, re).await,
        one("third"),
        "write to the re-created table"
    );
}

// -------------------------------------------------------------------------
// Settings and roles
// -------------------------------------------------------------------------

/// `"$user"` in search_path names a different schema for each role, but
/// the settings class holds the search_path as written: a role that once
/// ran the shape under an explicit path is served another role's entry.
#[tokio::test]
async fn dollar_user_in_search_path_resolves_per_role() {
    setup(
        "DROP SCHEMA IF EXISTS rt_usr CASCADE; DROP TABLE IF EXISTS public.rt_upath; \
         DROP ROLE IF EXISTS rt_usr; CREATE ROLE rt_usr LOGIN; \
         CREATE SCHEMA rt_usr AUTHORIZATION rt_usr; \
         CREATE TABLE public.rt_upath (id int PRIMARY KEY, v text); \
         CREATE TABLE rt_usr.rt_upath (id int PRIMARY KEY, v text); \
         INSERT INTO public.rt_upath VALUES (1, 'public row'); \
         INSERT INTO rt_usr.rt_upath VALUES (1, 'rt_usr row'); \
         GRANT SELECT ON public.rt_upath, rt_usr.rt_upath TO rt_usr",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_upath WHERE id = 1";
    // The superuser (no schema of its name) caches the public row.
    let (mut admin, _) =
        RawConn::startup(proxy.addr, &startup_params(SUPERUSER, "rt_golden")).await;
    let msgs = warm_raw(&proxy, &mut admin, read).await;
    assert_eq!(values(&msgs), one("public row"));

    let mut steps = vec![q("SET search_path = public")];
    steps.extend(settle());
    steps.extend(reads(read, 2));
    steps.push(q("RESET search_path"));
    steps.extend(settle());
    steps.extend(reads(read, 2));
    checked_as(&proxy, "rt_usr", "\"$user\" in search_path", &steps).await;
}

/// A SELECT from a view that calls set_config('search_path', …) changes a
/// setting the origin does not report; the proxy keeps serving under the
/// old settings class.
#[tokio::test]
async fn search_path_changed_by_a_view_is_seen() {
    setup(
        "DROP VIEW IF EXISTS public.rt_sp_switch; \
         DROP SCHEMA IF EXISTS rt_spb CASCADE; CREATE SCHEMA rt_spb; \
         DROP TABLE IF EXISTS public.rt_spt; \
         CREATE TABLE public.rt_spt (id int PRIMARY KEY, v text); \
         CREATE TABLE rt_spb.rt_spt (id int PRIMARY KEY, v text); \
         INSERT INTO public.rt_spt VALUES (1, 'from public'); \
         INSERT INTO rt_spb.rt_spt VALUES (1, 'from b'); \
         CREATE VIEW public.rt_sp_switch AS \
           SELECT pg_catalog.set_config('search_path', 'rt_spb, public', false) AS s",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_spt WHERE id = 1";
    let mut steps = settle();
    steps.extend(reads(read, 3));
    steps.push(q("SELECT s FROM rt_sp_switch"));
    steps.extend(reads(read, 3));
    let hits = checked(&proxy, "search_path set by a view", &steps).await;
    assert!(hits > 0);
}

/// The same with the role: a view that calls set_config('role', …) (no
/// ParameterStatus when is_superuser does not change). The new role may not
/// read the table; the origin refuses, the proxy must too.
#[tokio::test]
async fn role_changed_by_a_view_is_seen() {
    setup(
        "DROP VIEW IF EXISTS rt_sr_become; DROP TABLE IF EXISTS rt_srt; \
         DROP ROLE IF EXISTS rt_sr_a; DROP ROLE IF EXISTS rt_sr_b; \
         CREATE ROLE rt_sr_b NOLOGIN; CREATE ROLE rt_sr_a LOGIN IN ROLE rt_sr_b; \
         CREATE TABLE rt_srt (id int PRIMARY KEY, v text); \
         INSERT INTO rt_srt VALUES (1, 'for a only'); \
         GRANT SELECT ON rt_srt TO rt_sr_a; \
         CREATE VIEW rt_sr_become AS \
           SELECT pg_catalog.set_config('role', 'rt_sr_b', false) AS r; \
         GRANT SELECT ON rt_sr_become TO rt_sr_a",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_srt WHERE id = 1";
    let mut steps = settle();
    steps.extend(reads(read, 3));
    steps.push(q("SELECT r FROM rt_sr_become"));
    steps.extend(reads(read, 3));
    checked_as(&proxy, "rt_sr_a", "role set by a view", &steps).await;
}

/// With client_min_messages = log, log_statement = 'all' makes the origin
/// send a LOG notice before every statement's result: it is part of what
/// the client receives.
#[tokio::test]
async fn log_statement_notices_are_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_logst; \
         CREATE TABLE rt_logst (id int PRIMARY KEY, v text); \
         INSERT INTO rt_logst VALUES (1, 'x')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_logst WHERE id = 1";
    let mut steps = vec![q("SET client_min_messages = log")];
    steps.extend(settle());
    steps.extend(reads(read, 3));
    steps.push(q("SET log_statement = 'all'"));
    steps.extend(reads(read, 4));
    checked(&proxy, "log_statement = all", &steps).await;
}

/// A role with privileges on some columns only ran `SELECT *`; a column is
/// added (through the proxy), the superuser caches the wider row; the role
/// may not read the new column, the origin refuses it.
#[tokio::test]
async fn column_added_after_a_grant_is_not_served_to_a_role_without_privilege() {
    setup(
        "DROP TABLE IF EXISTS rt_colp; DROP ROLE IF EXISTS rt_colp_r; \
         CREATE ROLE rt_colp_r LOGIN; \
         CREATE TABLE rt_colp (id int PRIMARY KEY, v text); \
         INSERT INTO rt_colp VALUES (1, 'visible'); \
         GRANT SELECT (id, v) ON rt_colp TO rt_colp_r",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT * FROM rt_colp WHERE id = 1";
    let (mut role, _) = RawConn::startup(proxy.addr, &startup_params("rt_colp_r", "rt_colp")).await;
    warm_raw(&proxy, &mut role, read).await;

    let (mut admin, _) = RawConn::startup(proxy.addr, &startup_params(SUPERUSER, "rt_colp")).await;
    let loads = proxy.metrics.cache_catalog_loads.get();
    let msgs = admin
        .simple("ALTER TABLE rt_colp ADD COLUMN secret text DEFAULT 'classified'")
        .await;
    assert!(error_code(&msgs).is_none(), "{msgs:?}");
    catalog_reloaded(&proxy, loads).await;
    warm_raw(&proxy, &mut admin, read).await;

    let (mut direct, _) =
        RawConn::startup(origin().addr(), &startup_params("rt_colp_r", "rt_colp")).await;
    let expected = direct.simple(read).await;
    assert_eq!(error_code(&expected).as_deref(), Some("42501"));
    let got = role.simple(read).await;
    assert_eq!(
        error_code(&got).as_deref(),
        Some("42501"),
        "served through the proxy: {got:?}"
    );
}

/// Session-state changes the proxy handles (DISCARD ALL, RESET ALL, SET
/// SESSION AUTHORIZATION to a role without the privilege).
#[tokio::test]
async fn session_state_changes_are_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_ss; DROP ROLE IF EXISTS rt_ss_noread; \
         CREATE ROLE rt_ss_noread; \
         CREATE TABLE rt_ss (id int PRIMARY KEY, v text); \
         INSERT INTO rt_ss VALUES (1, 'permanent')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_ss WHERE id = 1";
    let three = || reads(read, 3);
    let mut steps = three();
    steps.push(q("SET SESSION AUTHORIZATION rt_ss_noread"));
    steps.extend(three());
    steps.push(q("RESET SESSION AUTHORIZATION"));
    steps.extend(three());
    steps.push(q("SET bytea_output = escape; SET extra_float_digits = 0"));
    steps.extend(three());
    steps.push(q("RESET ALL"));
    steps.extend(three());
    steps.push(q("DISCARD ALL"));
    steps.extend(three());
    let hits = checked(&proxy, "session state", &steps).await;
    assert!(hits > 0);
}

// -------------------------------------------------------------------------
// Extended protocol
// -------------------------------------------------------------------------

/// A temporary table shadowing a cached table is read in its session (not
/// compared byte for byte: a temporary table has a new OID every time).
#[tokio::test]
async fn temporary_table_shadowing_a_cached_table_is_read() {
    setup(
        "DROP TABLE IF EXISTS rt_tmp; \
         CREATE TABLE rt_tmp (id int PRIMARY KEY, v text); \
         INSERT INTO rt_tmp VALUES (1, 'permanent')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let c = proxy.connect("rt_tmp").await;
    let read = "SELECT v FROM rt_tmp WHERE id = 1";
    assert_eq!(warm(&proxy, &c, read).await, one("permanent"));
    let loads = proxy.metrics.cache_catalog_loads.get();
    c.simple_query(
        "CREATE TEMP TABLE rt_tmp (id int PRIMARY KEY, v text); \
         INSERT INTO rt_tmp VALUES (1, 'temporary')",
    )
    .await
    .unwrap();
    for _ in 0..4 {
        assert_eq!(col(&c, read).await, one("temporary"));
    }
    let stmt = c
        .prepare("SELECT v FROM rt_tmp WHERE id = $1")
        .await
        .unwrap();
    for _ in 0..4 {
        let rows = c.query(&stmt, &[&1i32]).await.unwrap();
        assert_eq!(rows[0].get::<_, String>(0), "temporary");
    }
    catalog_reloaded(&proxy, loads).await;
    let other = proxy.connect("rt_tmp_other").await;
    assert_eq!(warm(&proxy, &other, read).await, one("permanent"));
}

/// The settings probe the proxy sends after a statement is a simple Query,
/// and a simple Query drops the unnamed prepared statement: the client's
/// next Bind of it must still work.
#[tokio::test]
async fn unnamed_statement_survives_the_settings_probe() {
    setup(
        "DROP TABLE IF EXISTS rt_unprobe; \
         CREATE TABLE rt_unprobe (id int PRIMARY KEY, v text); \
         INSERT INTO rt_unprobe VALUES (1, 'x')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let steps = [
        prepare("", "SELECT v FROM rt_unprobe WHERE id = $1"),
        run("", &["1"]),
        run("", &["1"]),
        run("", &["1"]),
    ];
    checked(&proxy, "unnamed statement and the probe", &steps).await;
}

/// A simple Query drops the unnamed prepared statement; a Bind of it then
/// fails at the origin ("unnamed prepared statement does not exist"). The
/// session's settings are known first, so no probe runs in between.
#[tokio::test]
async fn unnamed_statement_is_gone_after_a_simple_query() {
    setup(
        "DROP TABLE IF EXISTS rt_unnamed; \
         CREATE TABLE rt_unnamed (id int PRIMARY KEY, v text); \
         INSERT INTO rt_unnamed VALUES (1, 'x')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let mut steps = settle();
    steps.push(prepare("", "SELECT v FROM rt_unnamed WHERE id = $1"));
    for _ in 0..3 {
        steps.push(run("", &["1"]));
    }
    steps.push(q("SELECT 1"));
    steps.push(run("", &["1"]));
    steps.push(run("", &["1"]));
    checked(&proxy, "unnamed statement after a Query", &steps).await;
}

/// An unnamed statement whose Parse was answered from the cache is parsed
/// at the origin only later, when it is next used: under the settings of
/// that moment, not those of the client's Parse
/// (standard_conforming_strings changed in between through the extended
/// protocol, which leaves the unnamed statement alone).
#[tokio::test]
async fn unnamed_statement_answered_from_the_cache_keeps_its_parse_settings() {
    setup(
        r"DROP TABLE IF EXISTS rt_vun;
          CREATE TABLE rt_vun (id int PRIMARY KEY, v text);
          INSERT INTO rt_vun VALUES (1, E'a\\b'), (2, E'a\\\\b')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    // Read with standard_conforming_strings on, the literal is two
    // backslashes (row 2); off, one (row 1).
    let sql = r"SELECT id, v FROM rt_vun WHERE v = 'a\\b'";
    let batch = || {
        step(
            &[
                fe::parse("", sql, &[]),
                fe::bind("", "", &[], &[], &[]),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let set = |name: &str, sql: &str| {
        step(
            &[
                fe::parse(name, sql, &[]),
                fe::bind("", name, &[], &[], &[]),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        )
    };
    let mut steps = settle();
    for _ in 0..3 {
        steps.push(batch());
    }
    steps.push(set("rt_vun_cmm", "SET client_min_messages = error"));
    steps.push(set("rt_vun_scs", "SET standard_conforming_strings = off"));
    for _ in 0..2 {
        steps.push(run0_unnamed());
    }
    let hits = checked(&proxy, "unnamed statement parsed from the cache", &steps).await;
    assert!(hits > 0);
}

/// Bind the unnamed statement, Describe, Execute, Sync.
fn run0_unnamed() -> Step {
    step(
        &[
            fe::bind("", "", &[], &[], &[]),
            fe::describe_portal(""),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    )
}

/// The script of [`statement_prepared_before_a_column_type_change_is_exact`]
/// against `addr`; through `proxy`, it waits for the catalog reload the
/// ALTER causes before going on.
async fn alter_script(addr: SocketAddr, proxy: Option<&Proxy>) -> Vec<Msg> {
    let sql = "SELECT id, v FROM rt_alt WHERE id = $1";
    let loads = proxy.map(|p| p.metrics.cache_catalog_loads.get());
    let (mut c, mut out) = RawConn::startup(addr, &startup_params(SUPERUSER, "rt_alt")).await;
    out.extend(exchange(&mut c, prepare("rt_alt_s1", sql)).await);
    out.extend(exchange(&mut c, q("ALTER TABLE rt_alt ALTER COLUMN v TYPE int8")).await);
    if let (Some(p), Some(l)) = (proxy, loads) {
        catalog_reloaded(p, l).await;
    }
    for s in settle() {
        out.extend(exchange(&mut c, s).await);
    }
    out.extend(exchange(&mut c, prepare("rt_alt_s2", sql)).await);
    for _ in 0..2 {
        out.extend(exchange(&mut c, run("rt_alt_s2", &["1"])).await);
    }
    for _ in 0..2 {
        out.extend(exchange(&mut c, run("rt_alt_s1", &["1"])).await);
    }
    out
}

/// A statement prepared before its table's column changed type fails at
/// the origin ("cached plan must not change result type"); a statement of
/// the same text prepared after the change is cached meanwhile.
#[tokio::test]
async fn statement_prepared_before_a_column_type_change_is_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_alt; \
         CREATE TABLE rt_alt (id int PRIMARY KEY, v int4); \
         INSERT INTO rt_alt VALUES (1, 7)",
    )
    .await;
    let direct = alter_script(origin().addr(), None).await;
    setup("ALTER TABLE rt_alt ALTER COLUMN v TYPE int4").await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let proxied = alter_script(proxy.addr, Some(&proxy)).await;
    assert!(
        direct
            .iter()
            .any(|m| m.sqlstate().as_deref() == Some("0A000")),
        "{direct:?}"
    );
    Golden { direct, proxied }.assert_same();
}

/// A holdable cursor is a portal that outlives its transaction: a Bind of
/// a portal of the same name fails at the origin (42P03).
#[tokio::test]
async fn bind_to_the_name_of_a_holdable_cursor_is_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_hold; \
         CREATE TABLE rt_hold (id int PRIMARY KEY, v text); \
         INSERT INTO rt_hold VALUES (1, 'x')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let run = || run_in("rt_hold_p", "rt_hold_s", &["1"]);
    let mut steps = settle();
    steps.push(prepare("rt_hold_s", "SELECT v FROM rt_hold WHERE id = $1"));
    steps.extend([run(), run()]);
    steps.push(q("DECLARE rt_hold_p CURSOR WITH HOLD FOR SELECT 42"));
    steps.extend(settle());
    steps.extend([run(), run()]);
    steps.push(q("CLOSE rt_hold_p"));
    checked(&proxy, "Bind onto a holdable cursor's name", &steps).await;
}

/// A batch that binds a statement but executes another portal (a holdable
/// cursor) must not be cached as the bound statement's result.
#[tokio::test]
async fn execute_of_another_portal_is_not_cached_as_the_bound_statement() {
    setup(
        "DROP TABLE IF EXISTS rt_xport; \
         CREATE TABLE rt_xport (id int PRIMARY KEY, v text); \
         INSERT INTO rt_xport VALUES (1, 'table row')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let stmt = "rt_xport_s";
    let mut steps = vec![
        prepare(stmt, "SELECT v FROM rt_xport WHERE id = $1"),
        q("DECLARE rt_xport_cur CURSOR WITH HOLD FOR SELECT 'cursor row'::text AS v"),
    ];
    steps.extend(settle());
    steps.extend([
        step(
            &[
                fe::bind("", stmt, &[], &[Some(b"1")], &[]),
                fe::execute("rt_xport_cur", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        step(
            &[
                fe::bind("", stmt, &[], &[Some(b"1")], &[]),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        step(
            &[
                fe::bind("", stmt, &[], &[Some(b"1")], &[]),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        q("CLOSE rt_xport_cur"),
    ]);
    checked(&proxy, "Execute of another portal", &steps).await;
}

/// Extended-protocol corner cases around cached statements, each after the
/// statement is cached: Describe statement, Close portal, named portals,
/// row limits and continuing a portal, wrong parameter count, binary
/// parameters, a Parse error and an error in the middle of a batch, empty
/// queries, Flush instead of Sync, a pipeline right after connecting, and
/// rows around cache.max_result_size.
#[tokio::test]
async fn extended_protocol_corner_cases_are_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_ext; \
         CREATE TABLE rt_ext (id int PRIMARY KEY, v text); \
         INSERT INTO rt_ext SELECT g, repeat('x', g * 1000) FROM generate_series(1, 40) g",
    )
    .await;
    let proxy = Proxy::start_cached(|c| {
        c.cache.max_result_size = 16 * 1024;
        c.cache.max_memory = 1024 * 1024;
    })
    .await;
    let s = "rt_ext_s";
    let sql = "SELECT id, v FROM rt_ext WHERE id = $1";
    let range = "SELECT id, v FROM rt_ext WHERE id <= $1 ORDER BY id";
    let bind1 = || fe::bind("", s, &[], &[Some(b"1")], &[]);
    let mut steps = vec![
        // Pipelined right after connecting: the settings probe is in flight
        // while the next requests arrive.
        step(
            &[
                fe::query("SELECT v FROM rt_ext WHERE id = 2"),
                fe::query("SELECT v FROM rt_ext WHERE id = 2"),
                fe::parse(s, sql, &[]),
                fe::sync(),
                fe::query("SELECT v FROM rt_ext WHERE id = 2"),
            ],
            Until::Ready(4),
        ),
        prepare("rt_ext_r", range),
    ];
    for _ in 0..3 {
        steps.push(run(s, &["1"]));
        steps.push(run("rt_ext_r", &["3"]));
    }
    // Describe statement in the batch.
    steps.push(step(
        &[
            fe::describe_statement(s),
            bind1(),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    // Named portal, Close portal in the batch.
    steps.push(step(
        &[
            fe::bind("rt_p", s, &[], &[Some(b"1")], &[]),
            fe::describe_portal("rt_p"),
            fe::execute("rt_p", 0),
            fe::close_portal("rt_p"),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    // Row limits: above, at and below the row count; continuing a portal.
    for limit in [5, 3, 2] {
        steps.push(step(
            &[
                fe::bind("", "rt_ext_r", &[], &[Some(b"3")], &[]),
                fe::describe_portal(""),
                fe::execute("", limit),
                fe::sync(),
            ],
            Until::Ready(1),
        ));
    }
    steps.push(step(
        &[
            fe::bind("rt_q", "rt_ext_r", &[], &[Some(b"3")], &[]),
            fe::execute("rt_q", 1),
            fe::execute("rt_q", 1),
            fe::execute("rt_q", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    // Wrong parameter count, then the cached one.
    steps.push(step(
        &[
            fe::bind("", s, &[], &[Some(b"1"), Some(b"2")], &[]),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    steps.push(run(s, &["1"]));
    // Binary parameter and binary results.
    for _ in 0..3 {
        steps.push(step(
            &[
                fe::bind("", s, &[1], &[Some(&1i32.to_be_bytes())], &[1]),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ));
    }
    // A Parse error in front of a cached Bind/Execute.
    steps.push(step(
        &[
            fe::parse("", "SELEC broken", &[]),
            bind1(),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    // An error in the middle of a batch of cached executions.
    steps.push(step(
        &[
            bind1(),
            fe::execute("", 0),
            fe::bind("", s, &[], &[Some(b"not a number")], &[]),
            fe::execute("", 0),
            bind1(),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    // Empty queries.
    steps.push(q(""));
    steps.push(step(
        &[
            fe::parse("", "", &[]),
            fe::bind("", "", &[], &[], &[]),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    // Flush instead of Sync, then Sync.
    steps.push(step(
        &[
            bind1(),
            fe::describe_portal(""),
            fe::execute("", 0),
            fe::flush(),
        ],
        Until::Tag(b'C'),
    ));
    steps.push(step(&[fe::sync()], Until::Ready(1)));
    steps.push(run(s, &["1"]));
    // Results around cache.max_result_size (16 KiB).
    for id in ["14", "15", "16", "17"] {
        for _ in 0..3 {
            steps.push(run(s, &[id]));
            steps.push(q(&format!("SELECT id, v FROM rt_ext WHERE id = {id}")));
        }
    }
    let hits = checked(&proxy, "extended protocol corner cases", &steps).await;
    assert!(hits > 0);
}

/// An extended batch that writes and then reads (one Sync, one implicit
/// transaction): the read sees the write, and later reads see it too.
#[tokio::test]
async fn write_then_read_in_one_extended_batch_is_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_wrb; \
         CREATE TABLE rt_wrb (id int PRIMARY KEY, v text); \
         INSERT INTO rt_wrb VALUES (1, 'a')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sel = "SELECT v FROM rt_wrb WHERE id = $1";
    let upd = "UPDATE rt_wrb SET v = $1 WHERE id = 1";
    let mut steps = settle();
    steps.push(q("UPDATE rt_wrb SET v = 'a' WHERE id = 1"));
    steps.extend(settle());
    steps.push(prepare("rt_wrb_sel", sel));
    steps.push(prepare("rt_wrb_upd", upd));
    for _ in 0..3 {
        steps.push(run("rt_wrb_sel", &["1"]));
    }
    steps.push(step(
        &[
            fe::bind("", "rt_wrb_sel", &[], &[Some(b"1")], &[]),
            fe::execute("", 0),
            fe::bind("", "rt_wrb_upd", &[], &[Some(b"b")], &[]),
            fe::execute("", 0),
            fe::bind("", "rt_wrb_sel", &[], &[Some(b"1")], &[]),
            fe::describe_portal(""),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    steps.extend(settle());
    for _ in 0..3 {
        steps.push(run("rt_wrb_sel", &["1"]));
        steps.push(q("SELECT v FROM rt_wrb WHERE id = 1"));
    }
    // A savepoint released inside a transaction block.
    steps.push(q("BEGIN"));
    steps.push(q("SAVEPOINT s"));
    steps.push(run("rt_wrb_upd", &["c"]));
    steps.push(q("RELEASE SAVEPOINT s"));
    steps.push(run("rt_wrb_sel", &["1"]));
    steps.push(q("COMMIT"));
    steps.extend(settle());
    for _ in 0..3 {
        steps.push(run("rt_wrb_sel", &["1"]));
        steps.push(q("SELECT v FROM rt_wrb WHERE id = 1"));
    }
    let hits = checked(&proxy, "write then read in one batch", &steps).await;
    assert!(hits > 0);
}

/// COPY pipelined behind the first SELECT of a session (the settings probe
/// goes out between them), and a cacheable query whose immutable function
/// raises a NOTICE (never kept).
#[tokio::test]
async fn copy_and_notices_around_cached_selects_are_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_cn; \
         CREATE TABLE rt_cn (id int PRIMARY KEY, v text); \
         INSERT INTO rt_cn VALUES (1, 'x'); \
         CREATE OR REPLACE FUNCTION rt_cn_loud(t text) RETURNS text LANGUAGE plpgsql \
         IMMUTABLE AS $$BEGIN RAISE NOTICE 'loud %', t; RETURN t; END$$",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_cn WHERE id = 1";
    let mut steps = vec![
        step(
            &[
                fe::query(read),
                fe::query("COPY (SELECT 1) TO STDOUT"),
                fe::query(read),
            ],
            Until::Ready(3),
        ),
        q("CREATE TEMP TABLE rt_cn_sink (id int)"),
        step(
            &[
                fe::query("SELECT v FROM public.rt_cn WHERE id = 1"),
                fe::query("COPY rt_cn_sink FROM STDIN"),
                fe::copy_data(b"1\n2\n"),
                fe::copy_done(),
                fe::query("SELECT v FROM public.rt_cn WHERE id = 1"),
            ],
            Until::Ready(3),
        ),
    ];
    steps.extend(reads("SELECT v FROM public.rt_cn WHERE id = 1", 3));
    steps.extend(reads(
        "SELECT rt_cn_loud(v) FROM public.rt_cn WHERE id = 1",
        4,
    ));
    checked(&proxy, "COPY and notices", &steps).await;
}

/// Settings a role gets from ALTER ROLE … SET (not reported to the
/// client), and set_config() called by a prepared SELECT.
#[tokio::test]
async fn role_settings_and_set_config_in_a_prepared_select_are_exact() {
    setup(
        "DROP TABLE IF EXISTS rt_rs; DROP ROLE IF EXISTS rt_rs_role; \
         CREATE ROLE rt_rs_role LOGIN; \
         ALTER ROLE rt_rs_role SET bytea_output = 'escape'; \
         ALTER ROLE rt_rs_role SET extra_float_digits = 0; \
         CREATE TABLE rt_rs (id int PRIMARY KEY, b bytea, f float8); \
         INSERT INTO rt_rs VALUES (1, '\\x6869', 1.0 / 3); \
         GRANT SELECT ON rt_rs TO rt_rs_role",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT b, f FROM rt_rs WHERE id = 1";
    // The superuser caches the row under the default settings first.
    let (mut admin, _) =
        RawConn::startup(proxy.addr, &startup_params(SUPERUSER, "rt_golden")).await;
    warm_raw(&proxy, &mut admin, read).await;
    let mut steps = settle();
    steps.extend(reads(read, 3));
    steps.push(prepare("rt_rs_s", read));
    steps.push(run("rt_rs_s", &[]));
    steps.push(run("rt_rs_s", &[]));
    steps.push(prepare(
        "rt_rs_set",
        "SELECT pg_catalog.set_config('bytea_output', 'hex', false)",
    ));
    steps.push(run("rt_rs_set", &[]));
    steps.extend(reads(read, 3));
    steps.push(run("rt_rs_s", &[]));
    steps.push(run("rt_rs_s", &[]));
    checked_as(&proxy, "rt_rs_role", "role settings", &steps).await;
}

// -------------------------------------------------------------------------
// Sessions that are never served
// -------------------------------------------------------------------------

/// A session authenticated by password (md5) is served from the cache
/// like any other.
#[tokio::test]
async fn session_authenticated_by_password_is_served() {
    setup(
        "DROP TABLE IF EXISTS rt_md5; \
         CREATE TABLE rt_md5 (id int PRIMARY KEY, v text); \
         INSERT INTO rt_md5 VALUES (1, 'x'); \
         GRANT SELECT ON rt_md5 TO pgc_md5",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let mut cfg = pg_config(proxy.addr, "rt_md5");
    cfg.user(MD5_USER).password(MD5_PASSWORD);
    let client = connect(&cfg).await.expect("md5 login through the proxy");
    assert_eq!(
        warm(&proxy, &client, "SELECT v FROM rt_md5 WHERE id = 1").await,
        one("x")
    );
}

/// After a COPY … FROM STDIN in the simple protocol the session is served
/// from the cache again.
#[tokio::test]
async fn session_is_served_after_a_copy_from_stdin() {
    setup(
        "DROP TABLE IF EXISTS rt_copyin, rt_copyin_sink; \
         CREATE TABLE rt_copyin (id int PRIMARY KEY, v text); \
         CREATE TABLE rt_copyin_sink (id int PRIMARY KEY); \
         INSERT INTO rt_copyin VALUES (1, 'x')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let read = "SELECT v FROM rt_copyin WHERE id = 1";
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "rt_copyin").await;
    warm_raw(&proxy, &mut conn, read).await;
    conn.send(
        &[
            fe::query("COPY rt_copyin_sink FROM STDIN"),
            fe::copy_data(b"1\n"),
            fe::copy_done(),
        ]
        .concat(),
    )
    .await;
    let msgs = conn.recv_until_ready().await;
    assert!(error_code(&msgs).is_none(), "{msgs:?}");
    warm_raw(&proxy, &mut conn, read).await;
}
