//! Catalog loading against the shared PostgreSQL 15, and the analysis of
//! statements against what was loaded: schemas and search_path changes,
//! row-level security, views, partitioned, unlogged and key-less tables,
//! function volatility from `pg_proc`, publication membership, refresh.
//!
//! Every test uses its own schemas and publication (`cat_<test>_…`).

use pgcache::catalog::{
    self, Membership, Persistence, RelKind, ReplicaIdentity, SearchPath, Snapshot, Table, TypeKind,
    Volatility, oids,
};
use pgcache::sql::kind::{SetValue, StatementKind};
use pgcache::sql::{Context, Session, Verdict, analyze_uncached, parse};
use tokio_postgres::Client;

use crate::support::{connect_direct, simple_rows};

fn table<'a>(snap: &'a Snapshot, schema: &str, name: &str) -> &'a Table {
    let s = snap
        .schema_by_name(schema)
        .unwrap_or_else(|| panic!("schema {schema}"));
    snap.table_in(s.oid, name)
        .unwrap_or_else(|| panic!("table {schema}.{name}"))
}

/// The verdict code of `sql` for a session with `search_path` = `path`.
fn code(snap: &Snapshot, path: &str, temp: bool, sql: &str) -> String {
    let effective = SearchPath::parse(path).unwrap().effective(snap, "postgres");
    let session = Session {
        context: Context {
            snapshot: snap,
            search_path: Some(&effective),
            has_temp_objects: temp,
        },
        standard_conforming_strings: true,
    };
    match analyze_uncached(sql, &session).verdict {
        Verdict::Cacheable(_) => "cacheable".to_owned(),
        Verdict::NotCacheable(r) => r.code().to_owned(),
    }
}

fn tables_read(snap: &Snapshot, path: &str, sql: &str) -> Vec<String> {
    let effective = SearchPath::parse(path).unwrap().effective(snap, "postgres");
    let session = Session {
        context: Context {
            snapshot: snap,
            search_path: Some(&effective),
            has_temp_objects: false,
        },
        standard_conforming_strings: true,
    };
    match analyze_uncached(sql, &session).verdict {
        Verdict::Cacheable(c) => c
            .shape
            .tables
            .iter()
            .map(|t| snap.qualified_table_name(snap.table(*t).unwrap()))
            .collect(),
        Verdict::NotCacheable(r) => panic!("{sql}: {r}"),
    }
}

async fn set_up(client: &Client, p: &str) {
    client
        .batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {p}_pub;
             DROP SCHEMA IF EXISTS {p}_a, {p}_b CASCADE;
             CREATE SCHEMA {p}_a;
             CREATE SCHEMA {p}_b;
             CREATE TABLE {p}_a.items (id int PRIMARY KEY, name text, made date, price numeric(10,2));
             CREATE TABLE {p}_b.items (id bigint PRIMARY KEY, label varchar(20) NOT NULL);
             CREATE TABLE {p}_a.secrets (id int PRIMARY KEY, body text);
             ALTER TABLE {p}_a.secrets ENABLE ROW LEVEL SECURITY;
             CREATE VIEW {p}_a.items_view AS SELECT id, name FROM {p}_a.items;
             CREATE TABLE {p}_a.events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
             CREATE TABLE {p}_a.events_2024 PARTITION OF {p}_a.events
                 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
             CREATE UNLOGGED TABLE {p}_a.scratch (id int PRIMARY KEY);
             CREATE TABLE {p}_a.nopk (a int);
             CREATE TABLE {p}_a.nopk_full (a int);
             ALTER TABLE {p}_a.nopk_full REPLICA IDENTITY FULL;
             CREATE TABLE {p}_a.unpublished (id int PRIMARY KEY);
             CREATE TABLE {p}_a.filtered (id int PRIMARY KEY, region text);
             CREATE TABLE {p}_a.docs (id int PRIMARY KEY, body text,
                 len int GENERATED ALWAYS AS (length(body)) STORED);
             CREATE TYPE {p}_a.mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN {p}_a.posint AS int CHECK (VALUE > 0);
             CREATE TABLE {p}_a.people (id int PRIMARY KEY, mood {p}_a.mood, age {p}_a.posint, tags text[]);
             CREATE FUNCTION {p}_a.f_imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
             CREATE FUNCTION {p}_a.f_stable() RETURNS int LANGUAGE sql STABLE AS 'SELECT 1';
             CREATE FUNCTION {p}_a.f_vol() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
             CREATE PUBLICATION {p}_pub FOR TABLE {p}_a.items, {p}_b.items, {p}_a.secrets,
                 {p}_a.nopk, {p}_a.nopk_full, {p}_a.events, {p}_a.people,
                 {p}_a.docs, {p}_a.filtered WHERE (region = 'eu');"
        ))
        .await
        .unwrap_or_else(|e| panic!("set up {p}: {e}"));
}

#[tokio::test]
async fn catalog_describes_relations() {
    let client = connect_direct("catalog_relations").await;
    let p = "cat_rel";
    set_up(&client, p).await;
    let snap = catalog::load(&client, Some(&format!("{p}_pub")))
        .await
        .unwrap();
    let a = format!("{p}_a");
    let b = format!("{p}_b");

    let items = table(&snap, &a, "items");
    assert_eq!(items.kind, RelKind::Table);
    assert_eq!(items.persistence, Persistence::Permanent);
    assert_eq!(items.replica_identity, ReplicaIdentity::Default);
    assert_eq!(items.membership, Membership::Published);
    assert_eq!(items.primary_key, vec![1]);
    let names: Vec<&str> = items.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "made", "price"]);
    assert_eq!(items.columns[0].type_oid, oids::INT4);
    assert!(items.columns[0].not_null);
    assert_eq!(items.columns[1].collation.0, 100, "default collation");
    assert_eq!(items.columns[3].type_oid, oids::NUMERIC);
    assert_eq!(items.columns[3].typmod, (10 << 16) + 2 + 4);
    let label = table(&snap, &b, "items").column("label").unwrap();
    assert_eq!(
        (label.type_oid, label.typmod, label.not_null),
        (oids::VARCHAR, 24, true)
    );

    assert!(table(&snap, &a, "secrets").row_security);
    assert_eq!(table(&snap, &a, "items_view").kind, RelKind::View);
    let events = table(&snap, &a, "events");
    assert_eq!(events.kind, RelKind::PartitionedTable);
    assert!(events.has_children);
    let part = table(&snap, &a, "events_2024");
    assert!(part.is_partition);
    assert_eq!(
        part.membership,
        Membership::Published,
        "leaf partitions are published"
    );
    assert_eq!(
        table(&snap, &a, "scratch").persistence,
        Persistence::Unlogged
    );
    assert!(table(&snap, &a, "nopk").primary_key.is_empty());
    assert_eq!(
        table(&snap, &a, "nopk_full").replica_identity,
        ReplicaIdentity::Full
    );
    assert_eq!(
        table(&snap, &a, "unpublished").membership,
        Membership::NotPublished
    );
    assert_eq!(
        table(&snap, &a, "filtered").membership,
        Membership::RowFilter
    );
    let publication = snap.publication().unwrap();
    assert_eq!(publication.name, format!("{p}_pub"));
    assert_eq!(publication.missing_action(), None);

    // Types: enum labels in order, domain base, array element.
    let schema_a = snap.schema_by_name(&a).unwrap().oid;
    let mood = snap.type_in(schema_a, "mood").unwrap();
    assert_eq!(mood.kind, TypeKind::Enum);
    assert_eq!(mood.enum_labels, ["sad", "ok", "happy"]);
    let posint = snap.type_in(schema_a, "posint").unwrap();
    assert_eq!(
        (posint.kind, posint.base),
        (TypeKind::Domain, Some(oids::INT4))
    );
    let int4_array = snap
        .type_(snap.type_(oids::INT4).unwrap().array.unwrap())
        .unwrap();
    assert_eq!(
        (int4_array.category, int4_array.element),
        (b'A', Some(oids::INT4))
    );
    assert_eq!(
        snap.type_(oids::TIMESTAMPTZ).unwrap().input_volatility,
        Volatility::Stable
    );
    assert_eq!(
        snap.type_(oids::INT4).unwrap().input_volatility,
        Volatility::Immutable
    );

    // Function volatility straight from pg_proc.
    let volatility = |schema: &str, name: &str| {
        let s = snap.schema_by_name(schema).unwrap().oid;
        snap.functions_named(name)
            .find(|f| f.schema == s)
            .map(|f| f.volatility)
            .unwrap()
    };
    assert_eq!(volatility(&a, "f_imm"), Volatility::Immutable);
    assert_eq!(volatility(&a, "f_stable"), Volatility::Stable);
    assert_eq!(volatility(&a, "f_vol"), Volatility::Volatile);
    assert_eq!(volatility("pg_catalog", "now"), Volatility::Stable);
    assert_eq!(volatility("pg_catalog", "random"), Volatility::Volatile);
    assert_eq!(
        volatility("pg_catalog", "clock_timestamp"),
        Volatility::Volatile
    );
    assert_eq!(volatility("pg_catalog", "nextval"), Volatility::Volatile);
    assert!(
        snap.operators_named("<")
            .any(|o| o.left == Some(oids::TIMESTAMP)
                && o.right == oids::TIMESTAMPTZ
                && o.volatility == Volatility::Stable),
        "timestamp < timestamptz is stable"
    );
}

#[tokio::test]
async fn verdicts_against_the_real_catalog() {
    let client = connect_direct("catalog_verdicts").await;
    let p = "cat_ver";
    set_up(&client, p).await;
    let snap = catalog::load(&client, Some(&format!("{p}_pub")))
        .await
        .unwrap();
    let path = format!("{p}_a, public");
    for (sql, expected) in [
        ("SELECT * FROM items WHERE id = 1", "cacheable"),
        (
            "SELECT name FROM items WHERE name = 'x' AND price > 9.99 ORDER BY id LIMIT 5",
            "cacheable",
        ),
        (
            "SELECT count(*), sum(price) FROM items WHERE lower(name) LIKE 'a%'",
            "cacheable",
        ),
        (
            "SELECT i.id FROM items i JOIN people p ON p.id = i.id WHERE p.mood = 'happy'",
            "cacheable",
        ),
        (
            "SELECT * FROM people WHERE tags @> ARRAY['x'] AND id = ANY('{1,2}')",
            "cacheable",
        ),
        (
            "SELECT * FROM items WHERE made = '2024-01-01'",
            "non_immutable_input",
        ),
        (
            "SELECT * FROM items WHERE made > now()",
            "non_immutable_function",
        ),
        (
            "SELECT * FROM items WHERE id = random()::int",
            "non_immutable_function",
        ),
        ("SELECT * FROM items WHERE id = f_imm(1)", "cacheable"),
        (
            "SELECT * FROM items WHERE id = f_stable()",
            "non_immutable_function",
        ),
        (
            "SELECT * FROM items WHERE id = f_vol()",
            "non_immutable_function",
        ),
        (
            "SELECT * FROM items WHERE name = current_user",
            "non_immutable_function",
        ),
        ("SELECT * FROM people WHERE age = 3", "cacheable"),
        ("SELECT * FROM secrets", "row_level_security"),
        ("SELECT * FROM items_view", "view"),
        ("SELECT * FROM events", "partitioned_table"),
        ("SELECT * FROM events_2024 WHERE id = 1", "cacheable"),
        ("SELECT * FROM scratch", "unlogged_table"),
        ("SELECT * FROM nopk", "no_primary_key"),
        ("SELECT * FROM nopk_full WHERE a = 1", "cacheable"),
        ("SELECT * FROM unpublished", "not_published"),
        ("SELECT * FROM filtered", "publication_filter"),
        ("SELECT id FROM docs WHERE id = 1", "generated_columns"),
        ("SELECT * FROM pg_class", "system_catalog"),
        ("SELECT * FROM information_schema.tables", "system_catalog"),
        ("SELECT * FROM items FOR UPDATE", "locking"),
    ] {
        assert_eq!(code(&snap, &path, false, sql), expected, "{sql}");
    }
}

#[tokio::test]
async fn search_path_changes_resolve_the_same_name_differently() {
    let client = connect_direct("catalog_search_path").await;
    let p = "cat_sp";
    set_up(&client, p).await;
    let snap = catalog::load(&client, Some(&format!("{p}_pub")))
        .await
        .unwrap();
    let sql = "SELECT * FROM items WHERE id = 1";
    assert_eq!(
        tables_read(&snap, &format!("{p}_a"), sql),
        [format!("{p}_a.items")]
    );
    assert_eq!(
        tables_read(&snap, &format!("{p}_b, public"), sql),
        [format!("{p}_b.items")]
    );
    assert_eq!(
        code(&snap, &format!("{p}_a, {p}_b"), false, sql),
        "ambiguous_table"
    );
    assert_eq!(code(&snap, "public", false, sql), "unknown_table");
    assert_eq!(
        code(&snap, &format!("{p}_a"), true, sql),
        "session_temp_objects"
    );

    // What PostgreSQL reports after a SET is what our parser makes of the SET.
    for set in [
        format!("SET search_path TO {p}_b, public"),
        format!("SET search_path = \"{p}_a\", '$user'"),
        "SET search_path TO 'Mixed Case', public".to_owned(),
    ] {
        client.batch_execute(&set).await.unwrap();
        let shown = simple_rows(&client, "SHOW search_path").await;
        let setting = shown[0][0].clone().unwrap();
        let StatementKind::Set(s) = parse(&set, true).unwrap().remove(0).kind().clone() else {
            panic!("{set}")
        };
        let SetValue::Values(values) = s.value else {
            panic!("{set}")
        };
        assert_eq!(
            SearchPath::parse(&setting).unwrap(),
            SearchPath::from_values(&values),
            "{set} → {setting}"
        );
    }
    client.batch_execute("RESET search_path").await.unwrap();
    let shown = simple_rows(&client, "SHOW search_path").await;
    assert_eq!(
        SearchPath::parse(shown[0][0].as_deref().unwrap()).unwrap(),
        SearchPath::default()
    );
}

#[tokio::test]
async fn refresh_sees_schema_changes_and_temp_tables() {
    let client = connect_direct("catalog_refresh").await;
    let p = "cat_ref";
    set_up(&client, p).await;
    let pubname = format!("{p}_pub");
    let path = format!("{p}_a");
    let before = catalog::load(&client, Some(&pubname)).await.unwrap();
    assert_eq!(
        code(&before, &path, false, "SELECT * FROM items"),
        "cacheable"
    );

    client
        .batch_execute(&format!(
            "ALTER TABLE {p}_a.items ENABLE ROW LEVEL SECURITY;
             ALTER PUBLICATION {pubname} DROP TABLE {p}_b.items;
             CREATE TEMP TABLE items (id int PRIMARY KEY);"
        ))
        .await
        .unwrap();
    let after = catalog::load(&client, Some(&pubname)).await.unwrap();
    assert_ne!(after.generation(), before.generation());
    assert_eq!(
        code(&after, &path, false, "SELECT * FROM items"),
        "row_level_security"
    );
    assert_eq!(
        code(&after, &format!("{p}_b"), false, "SELECT * FROM items"),
        "not_published"
    );
    // The temporary table lives in this session's pg_temp_N schema.
    assert!(
        after
            .tables()
            .any(|t| t.name == "items" && t.persistence == Persistence::Temporary)
    );
    assert_eq!(
        code(&after, &path, false, "SELECT * FROM pg_temp.items"),
        "temporary_table"
    );

    // Without a publication nothing is cacheable.
    let none = catalog::load(&client, None).await.unwrap();
    assert!(none.publication().is_none());
    assert_eq!(
        code(
            &none,
            &format!("{p}_b"),
            false,
            "SELECT * FROM items WHERE id = 1"
        ),
        "no_publication"
    );
    assert_eq!(
        table(&none, &format!("{p}_b"), "items").membership,
        Membership::NotPublished
    );
}
