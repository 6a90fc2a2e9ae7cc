//! A client parameter whose type PostgreSQL infers from another place of
//! the statement than the key equality (`SELECT $1::float4 … WHERE id =
//! $1`, Parse with no declared types) must not be read as a value of the
//! key column's type: the binary `float4` 5.0 would become the `int4`
//! 1084227584, and the entry would depend on row 1084227584 (or on votes
//! of article 1084227584, or on no user at all after a lookup of article
//! 1084227584) while the origin compared `id = 5.0` and returned row 5.
//! Changes to the rows the result was read from must reach it.

use std::time::Duration;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use crate::support::cache::{Cell, caught_up, setup};
use crate::support::{Proxy, connect_direct};

/// How long a stale answer is given to go away once the stream caught up.
const CONVERGE: Duration = Duration::from_secs(20);

/// How long a statement may take to become a hit.
const WARM: Duration = Duration::from_secs(20);

type Rows = Vec<Vec<Option<String>>>;

async fn read(client: &Client, statement: &Statement, arg: f32) -> Rows {
    client
        .query(statement, &[&arg])
        .await
        .expect("read")
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get::<_, Cell>(i).0).collect())
        .collect()
}

/// Read through the proxy until the read is a cache hit.
async fn warm(proxy: &Proxy, client: &Client, statement: &Statement, arg: f32) -> Rows {
    let deadline = tokio::time::Instant::now() + WARM;
    loop {
        let before = proxy.metrics.cache_hits.get();
        let rows = read(client, statement, arg).await;
        if proxy.metrics.cache_hits.get() > before {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never a hit: {:?}",
            statement
                .columns()
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After `write` on the origin, the proxy must give the origin's answer.
async fn follows(
    proxy: &Proxy,
    client: &Client,
    direct: &Client,
    sql: &str,
    arg: f32,
    write: &str,
) -> Result<(), String> {
    let through = client.prepare(sql).await.expect("prepare");
    assert_eq!(through.params(), &[Type::FLOAT4], "{sql}");
    let origin = direct.prepare(sql).await.expect("prepare direct");
    let before = warm(proxy, client, &through, arg).await;
    assert_eq!(before, read(direct, &origin, arg).await, "{sql}");
    direct.batch_execute(write).await.expect(write);
    caught_up(proxy, direct).await;
    let want = read(direct, &origin, arg).await;
    assert_ne!(want, before, "{write} changes the result of {sql}");
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let hits = proxy.metrics.cache_hits.get();
        let got = read(client, &through, arg).await;
        if got == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{sql} after {write}: the proxy still serves {got:?} (a cache hit: {}), \
                 the origin has {want:?}",
                proxy.metrics.cache_hits.get() > hits
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each case in turn (one test: another test's DDL would drop every entry
/// and hide the bug): a table read by primary key (the path that predates
/// joins), a join reading the article's votes (a value dependency) and a
/// join reading its author (a lookup).
#[tokio::test]
async fn a_parameter_typed_elsewhere_is_not_a_key_value() {
    setup(
        "DROP TABLE IF EXISTS pt_t, pt_a, pt_u, pt_vote; \
         CREATE TABLE pt_t (id int PRIMARY KEY, v text); \
         CREATE TABLE pt_u (id int PRIMARY KEY, name text); \
         CREATE TABLE pt_a (id int PRIMARY KEY, author_id int, title text); \
         CREATE TABLE pt_vote (id int PRIMARY KEY, article_id int, who text); \
         INSERT INTO pt_t VALUES (5, 'five'); \
         INSERT INTO pt_u VALUES (1, 'ann'); \
         INSERT INTO pt_a VALUES (5, 1, 'title'); \
         INSERT INTO pt_vote VALUES (1, 5, 'bob')",
    )
    .await;
    let proxy = Proxy::start_streaming(|_| {}).await;
    let direct = connect_direct("pt_writer").await;
    let cases = [
        (
            "SELECT $1::float4 AS k, v FROM pt_t WHERE id = $1",
            "UPDATE pt_t SET v = 'changed' WHERE id = 5",
        ),
        (
            "SELECT $1::float4 AS k, a.title, v.who FROM pt_a a \
             JOIN pt_vote v ON v.article_id = a.id WHERE a.id = $1 ORDER BY v.id",
            "INSERT INTO pt_vote VALUES (2, 5, 'cat')",
        ),
        (
            "SELECT $1::float4 AS k, a.title, u.name FROM pt_a a \
             JOIN pt_u u ON u.id = a.author_id WHERE a.id = $1",
            "UPDATE pt_u SET name = 'anna' WHERE id = 1",
        ),
    ];
    let mut stale = Vec::new();
    for (sql, write) in cases {
        let client = proxy.connect("rvd").await;
        if let Err(e) = follows(&proxy, &client, &direct, sql, 5.0, write).await {
            stale.push(e);
        }
    }
    assert!(stale.is_empty(), "stale results:\n{}", stale.join("\n"));
}
