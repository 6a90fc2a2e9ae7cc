//! Cache exactness: a reply served from the cache is byte for byte what the
//! origin sends to that session, whatever its settings (TimeZone, DateStyle,
//! IntervalStyle, extra_float_digits, bytea_output, client_encoding,
//! standard_conforming_strings, …) and result formats, and a reply captured
//! under one session's settings never reaches a session whose settings differ.
//!
//! Every script runs directly against the origin and through one caching
//! proxy (golden comparison); scripts run one after another through the same
//! proxy, so a later one meets every entry an earlier one left behind.

use std::net::SocketAddr;

use crate::support::cache::{q, setup};
use crate::support::wire::{Golden, Step, Until, fe, run_script, step};
use crate::support::{Proxy, origin};

/// A Query message whose text is raw bytes (not necessarily UTF-8).
fn q_bytes(sql: &[u8]) -> Step {
    let mut body = sql.to_vec();
    body.push(0);
    step(&[fe::message(b'Q', &body)], Until::Ready(1))
}

/// Parse `sql` as statement `name`, then Sync.
fn prepare(name: &str, sql: &str) -> Step {
    step(&[fe::parse(name, sql, &[]), fe::sync()], Until::Ready(1))
}

/// Bind `stmt` with one parameter, Describe the portal, Execute it, Sync.
fn run(stmt: &str, param_formats: &[i16], param: &[u8], result_formats: &[i16]) -> Step {
    step(
        &[
            fe::bind("", stmt, param_formats, &[Some(param)], result_formats),
            fe::describe_portal(""),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    )
}

/// Bind `stmt` without parameters, Describe, Execute, Sync.
fn run0(stmt: &str, result_formats: &[i16]) -> Step {
    step(
        &[
            fe::bind("", stmt, &[], &[], result_formats),
            fe::describe_portal(""),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    )
}

/// Result formats alternating text and binary, one per column.
fn mixed(columns: usize) -> Vec<i16> {
    (0..columns).map(|i| (i % 2) as i16).collect()
}

/// Run `steps` directly and through the proxy, both starting up with
/// `extra` startup parameters besides user, database and application_name.
async fn golden_with(
    proxy: SocketAddr,
    app: &str,
    extra: &[(&str, &str)],
    steps: &[Step],
) -> Golden {
    let mut params = vec![
        ("user", crate::support::origin::SUPERUSER),
        ("database", "postgres"),
        ("application_name", app),
    ];
    params.extend_from_slice(extra);
    let direct = run_script(origin().addr(), &params, steps).await;
    let proxied = run_script(proxy, &params, steps).await;
    Golden { direct, proxied }
}

/// Run a golden script, compare, and return how many hits the proxy counted
/// while it ran.
async fn checked(proxy: &Proxy, what: &str, extra: &[(&str, &str)], steps: &[Step]) -> u64 {
    let before = proxy.metrics.cache_hits.get();
    let g = golden_with(proxy.addr, "cache_exact", extra, steps).await;
    eprintln!("checking: {what}");
    g.assert_same();
    proxy.metrics.cache_hits.get() - before
}

// -------------------------------------------------------------------------
// The table of every type
// -------------------------------------------------------------------------

/// Columns of the wide table (after `id int PRIMARY KEY`); `{t}` is replaced
/// by the table name (its enum and domains are named after it).
const COLUMNS: &[(&str, &str)] = &[
    ("b", "bool"),
    ("i2", "int2"),
    ("i4", "int4"),
    ("i8", "int8"),
    ("f4", "float4"),
    ("f8", "float8"),
    ("n", "numeric"),
    ("t", "text"),
    ("vc", "varchar(5)"),
    ("c", "char(5)"),
    ("nm", "name"),
    ("by", "bytea"),
    ("u", "uuid"),
    ("d", "date"),
    ("tm", "time"),
    ("ttz", "timetz"),
    ("ts", "timestamp"),
    ("tstz", "timestamptz"),
    ("iv", "interval"),
    ("js", "json"),
    ("jb", "jsonb"),
    ("ip", "inet"),
    ("cd", "cidr"),
    ("m", "money"),
    ("mood", "{t}_mood"),
    ("amt", "{t}_amount"),
    ("lbl", "{t}_label"),
    ("ab", "bool[]"),
    ("ai", "int4[]"),
    ("ai2", "int4[]"),
    ("at", "text[]"),
    ("at2", "text[]"),
    ("af", "float8[]"),
    ("af4", "float4[]"),
    ("an", "numeric[]"),
    ("ad", "date[]"),
    ("ats", "timestamptz[]"),
    ("aiv", "interval[]"),
    ("aby", "bytea[]"),
    ("amood", "{t}_mood[]"),
    ("ajb", "jsonb[]"),
];

/// Rows: id and (column, SQL literal) pairs; unlisted columns are NULL.
/// Literals are standard strings (standard_conforming_strings on).
const ROWS: &[(i32, &[(&str, &str)])] = &[
    (
        1,
        &[
            ("b", "true"),
            ("i2", "1"),
            ("i4", "2"),
            ("i8", "3"),
            ("f4", "1.5"),
            ("f8", "0.1"),
            ("n", "1.000000000000000000001"),
            ("t", "'héllo wörld ☃ 日本 🎉'"),
            ("vc", "'abc'"),
            ("c", "'ab'"),
            ("nm", "'pg_name'"),
            ("by", r"'\x00ff5c'"),
            ("u", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
            ("d", "'2024-02-29'"),
            ("tm", "'13:45:56.789'"),
            ("ttz", "'13:45:56.789+05:30'"),
            ("ts", "'2024-02-29 13:45:56.789012'"),
            ("tstz", "'2024-02-29 13:45:56.789012+00'"),
            ("iv", "'1 year 2 months 3 days 04:05:06.789'"),
            (
                "js",
                r#"'{"a": [1, 2.50, 1e400], "b" : null,  "dup": 1, "dup": 2, "u": "\u00e9\n"}'"#,
            ),
            (
                "jb",
                r#"'{"k": "v", "n": 1.10, "big": 1e-20, "nested": {"arr": [true, false, null]}, "uni": "\u00e9☃"}'"#,
            ),
            ("ip", "'192.168.1.1/24'"),
            ("cd", "'10.0.0.0/8'"),
            ("m", "12.34"),
            ("mood", "'happy'"),
            ("amt", "12.345"),
            ("lbl", "'label'"),
            ("ab", "'{t,f,NULL}'"),
            ("ai", "'{1,NULL,3}'"),
            ("ai2", "'{{1,2},{3,4}}'"),
            (
                "at",
                r#"'{"a\"b","c,d","NULL",NULL,"","back\\slash","{x}"," sp "}'"#,
            ),
            ("at2", r#"'{{"a","b"},{"c,","NULL"}}'"#),
            ("af", "'{NaN,Infinity,-Infinity,-0,0.1,1e-300}'"),
            ("af4", "'{3.4e38,-0,0.1}'"),
            (
                "an",
                "'{NaN,0,1.000000000000000000001,-12345678901234567890.123456789}'",
            ),
            ("ad", r#"'{2000-02-29,infinity,"0001-01-01 BC"}'"#),
            (
                "ats",
                r#"'{"2024-03-10 07:30:00+00",infinity,-infinity,NULL}'"#,
            ),
            ("aiv", r#"'{"1 mon -1 day","-00:00:00.000001"}'"#),
            ("aby", r#"'{"\\x00ff",NULL,"\\x5c"}'"#),
            ("amood", r#"'{sad,"with space",NULL}'"#),
            ("ajb", r#"'{"{\"a\": 1}",null}'"#),
        ],
    ),
    (
        2,
        &[
            ("b", "false"),
            ("i2", "-32768"),
            ("i4", "-2147483648"),
            ("i8", "-9223372036854775808"),
            ("f4", "'-Infinity'"),
            ("f8", "'-Infinity'"),
            ("n", "'NaN'"),
            ("t", "''"),
            ("vc", "''"),
            ("c", "''"),
            ("nm", "''"),
            ("by", r"'\x'"),
            ("u", "'00000000-0000-0000-0000-000000000000'"),
            ("d", "'-infinity'"),
            ("tm", "'00:00'"),
            ("ttz", "'00:00:00-15:59'"),
            ("ts", "'-infinity'"),
            ("tstz", "'-infinity'"),
            ("iv", "'-178000000 years'"),
            ("js", "'[]'"),
            ("jb", "'{}'"),
            ("ip", "'::ffff:1.2.3.4'"),
            ("cd", "'2001:db8::/32'"),
            ("m", "-92233720368547758.08"),
            ("mood", "'sad'"),
            ("amt", "-999999.999"),
            ("lbl", "''"),
            ("ab", "'{}'"),
            ("ai", "'{-2147483648,2147483647}'"),
            ("ai2", "'{{NULL,2},{3,NULL}}'"),
            ("at", "'{}'"),
            ("at2", r#"'{{"",NULL},{"\\","\""}}'"#),
            ("af", "'{}'"),
            ("an", "'{-Infinity,Infinity}'"),
            ("ad", "'{-infinity}'"),
            ("ats", r#"'{"0001-01-01 00:00:00+00 BC"}'"#),
            ("amood", "'{}'"),
        ],
    ),
    (
        3,
        &[
            ("b", "true"),
            ("i2", "32767"),
            ("i4", "2147483647"),
            ("i8", "9223372036854775807"),
            ("f4", "'Infinity'"),
            ("f8", "'Infinity'"),
            ("n", "-12345678901234567890.123456789"),
            ("t", r#"'quote''s "dq" back\slash {braces} ,comma'"#),
            ("vc", "'ÿéü日本'"),
            ("c", "'☃'"),
            ("nm", "'Ünïcödé name'"),
            ("by", r"'\x5c5c00ff7f80'"),
            ("u", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
            ("d", "'infinity'"),
            ("tm", "'24:00:00'"),
            ("ttz", "'23:59:59.999999-12'"),
            ("ts", "'infinity'"),
            ("tstz", "'infinity'"),
            ("iv", "'-1 days +02:03:04'"),
            ("js", r#"'"just a string \"quoted\""'"#),
            ("jb", "'[1, \"two\", 3.0, null, false]'"),
            ("ip", "'::1'"),
            ("cd", "'192.168.0.0/16'"),
            ("m", "92233720368547758.07"),
            ("mood", "'with space'"),
            ("amt", "999999999.999"),
            ("lbl", "'NULL'"),
            ("ai", "'[0:2]={7,8,9}'"),
            ("ai2", "'{{{1}},{{2}}}'"),
            ("at", r#"'{"NULL","null",NULL}'"#),
            ("af4", "'{NaN}'"),
            ("ad", "'{NULL}'"),
            (
                "aiv",
                r#"'{"178000000 years","-1 year -2 mons +3 days -04:05:06.000001"}'"#,
            ),
            ("aby", r#"'{"\\x"}'"#),
            ("amood", r#"'{"quote''s","ünï"}'"#),
            ("ajb", r#"'{"[]","\"s\""}'"#),
        ],
    ),
    // 4: every column NULL
    (4, &[]),
    (
        5,
        &[
            ("f4", "'-0'"),
            ("f8", "'-0'"),
            ("n", "0"),
            ("t", "'NULL'"),
            ("by", r"'\x5c'"),
            ("d", "'0001-01-01 BC'"),
            ("tm", "'23:59:59.999999'"),
            ("ttz", "'00:00:00+15:59'"),
            ("ts", "'0001-01-01 00:00:00 BC'"),
            ("tstz", "'1900-01-01 00:00:00+00'"),
            ("iv", "'-1 year -2 months +3 days -04:05:06.000001'"),
            ("js", "'null'"),
            ("jb", "'\"\\u00e9\"'"),
            ("mood", r#"'quote''s'"#),
            ("amt", "0"),
            ("ai2", "'{{1,2,3}}'"),
            ("af", "'{NULL,5e-324}'"),
        ],
    ),
    (
        6,
        &[
            ("f4", "3.4e38"),
            ("f8", "1e-300"),
            ("n", "0.000000000000000000000000000001"),
            ("t", "E'tab\\there\\nnewline\\r\\\\ end '"),
            ("by", r"'\x5c7830303030'"),
            ("d", "'2000-02-29'"),
            ("ts", "'2000-01-01 00:00:00'"),
            ("tstz", "'2024-03-10 07:30:00+00'"),
            ("iv", "'1 mon -1 day 00:00:00.000001'"),
            ("mood", "'ünï'"),
        ],
    ),
    (
        7,
        &[
            ("f4", "'NaN'"),
            ("f8", "'NaN'"),
            ("n", "'Infinity'"),
            ("tstz", "'1969-12-31 23:59:59.999999+00'"),
            ("iv", "'0'"),
        ],
    ),
    (
        8,
        &[
            ("f4", "0.1"),
            ("f8", "1.7976931348623157e308"),
            ("n", "1e100"),
            ("tstz", "'2024-11-03 05:30:00.5+00'"),
            ("iv", "'-00:00:00.000001'"),
        ],
    ),
    (
        9,
        &[
            ("f4", "1.4e-45"),
            ("f8", "5e-324"),
            ("n", "-0.5"),
            ("tstz", "'2000-02-29 12:00:00-08'"),
        ],
    ),
    (10, &[("f4", "'-Infinity'"), ("f8", "0.30000000000000004")]),
    (11, &[("f8", "1.0000000000000002"), ("f4", "16777217")]),
    (12, &[("f8", "123456789012345678"), ("f4", "0.33333334")]),
];

/// The immutable projection (after `SELECT`), and how many columns it has.
const PROJECTION: &[&str] = &[
    "id + 1 AS next",
    "i2::int4 * 2",
    "i8 / 2",
    "f4::float8 * 2",
    "-f8",
    "abs(f8)",
    "n + 1",
    "n * n",
    "t || '!'",
    "upper(t)",
    "length(t)",
    "c || '|'",
    "octet_length(by)",
    "d + 7",
    "date_trunc('hour', ts)",
    "tstz AT TIME ZONE 'UTC'",
    "iv / 2",
    "-iv",
    "js -> 'a'",
    "jb -> 'k'",
    "jb ->> 'n'",
    "host(ip)",
    "masklen(cd)",
    "array_upper(ai, 1)",
    "array_length(ai2, 1)",
    "cardinality(at)",
    "array_ndims(ai2)",
    "ai[1]",
    "ai2[2][1]",
    "ai2[1:1][2:]",
    "at[id]",
    "justify_interval(iv)",
    "f8::text",
    "by::text",
    "quote_ident(t)",
    "n::text",
    "quote_literal(t)",
    "mood",
    "amt * 2",
    "lbl || 'x'",
    "coalesce(t, '<null>')",
    "b AND true",
];

fn create_types_table(t: &str) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, ty)| format!("{name} {}", ty.replace("{t}", t)))
        .collect();
    let mut sql = format!(
        "DROP TABLE IF EXISTS {t}; \
         DROP TYPE IF EXISTS {t}_mood CASCADE; \
         DROP DOMAIN IF EXISTS {t}_amount CASCADE; \
         DROP DOMAIN IF EXISTS {t}_label CASCADE; \
         CREATE TYPE {t}_mood AS ENUM ('sad', 'ok', 'happy', 'with space', 'quote''s', 'ünï'); \
         CREATE DOMAIN {t}_amount AS numeric(12,3) CHECK (VALUE > -1000000000); \
         CREATE DOMAIN {t}_label AS text CHECK (VALUE <> 'forbidden'); \
         CREATE TABLE {t} (id int PRIMARY KEY, {}); ",
        columns.join(", ")
    );
    for (id, values) in ROWS {
        let mut names = vec!["id".to_owned()];
        let mut literals = vec![id.to_string()];
        for (c, v) in *values {
            names.push((*c).to_owned());
            literals.push((*v).to_owned());
        }
        sql.push_str(&format!(
            "INSERT INTO {t} ({}) VALUES ({}); ",
            names.join(", "),
            literals.join(", ")
        ));
    }
    sql
}

/// The statements of one settings combination: every row selected by
/// primary key, as `SELECT *` and as the immutable projection, each three
/// times in the simple protocol and three times per result-format choice
/// through a named prepared statement (the id as a text parameter), then
/// twice with the id as a binary parameter; first, a statement that fails.
fn row_steps(t: &str) -> Vec<Step> {
    let star = format!("SELECT * FROM {t} WHERE id = ");
    let proj = format!("SELECT {} FROM {t} WHERE id = ", PROJECTION.join(", "));
    let mut steps = vec![
        prepare("exact_star", &format!("{star}$1")),
        prepare("exact_proj", &format!("{proj}$1")),
    ];
    let statements = [
        (star.as_str(), "exact_star", COLUMNS.len() + 1),
        (proj.as_str(), "exact_proj", PROJECTION.len()),
    ];
    // An error (integer out of range) is never served from the cache.
    let failing = format!("SELECT i4 + 1 FROM {t} WHERE id = 3");
    for _ in 0..3 {
        steps.push(q(&failing));
    }
    for (id, _) in ROWS {
        for (text, name, columns) in statements {
            let sql = format!("{text}{id}");
            for _ in 0..3 {
                steps.push(q(&sql));
            }
            let param = id.to_string();
            for formats in [vec![], vec![1], mixed(columns)] {
                for _ in 0..3 {
                    steps.push(run(name, &[], param.as_bytes(), &formats));
                }
            }
            let binary = id.to_be_bytes();
            for _ in 0..2 {
                steps.push(run(name, &[1], &binary, &mixed(columns)));
            }
        }
    }
    steps
}

/// The settings combinations, as SET statements.
const COMBINATIONS: &[(&str, &[&str])] = &[
    ("default", &[]),
    (
        "TimeZone America/New_York",
        &["SET TimeZone = 'America/New_York'"],
    ),
    ("TimeZone Asia/Kolkata", &["SET TimeZone = 'Asia/Kolkata'"]),
    ("DateStyle SQL, DMY", &["SET DateStyle = 'SQL, DMY'"]),
    ("DateStyle German", &["SET DateStyle = 'German'"]),
    (
        "DateStyle Postgres, MDY",
        &["SET DateStyle = 'Postgres, MDY'"],
    ),
    (
        "IntervalStyle postgres_verbose",
        &["SET IntervalStyle = 'postgres_verbose'"],
    ),
    (
        "IntervalStyle iso_8601",
        &["SET IntervalStyle = 'iso_8601'"],
    ),
    (
        "IntervalStyle sql_standard",
        &["SET IntervalStyle = 'sql_standard'"],
    ),
    ("extra_float_digits 0", &["SET extra_float_digits = 0"]),
    ("extra_float_digits 3", &["SET extra_float_digits = 3"]),
    ("extra_float_digits -15", &["SET extra_float_digits = -15"]),
    ("bytea_output escape", &["SET bytea_output = 'escape'"]),
    (
        "several non-defaults",
        &[
            "SET TimeZone = 'Asia/Kolkata'",
            "SET DateStyle = 'SQL, DMY'",
            "SET IntervalStyle = 'sql_standard'",
            "SET extra_float_digits = 0",
            "SET bytea_output = 'escape'",
        ],
    ),
    (
        "several non-defaults, other values",
        &[
            "SET TimeZone = 'America/New_York'",
            "SET DateStyle = 'German'",
            "SET IntervalStyle = 'iso_8601'",
            "SET extra_float_digits = -15",
        ],
    ),
    ("default again", &[]),
];

#[tokio::test]
async fn every_type_under_every_setting_is_exact() {
    let t = "exact_types";
    setup(&create_types_table(t)).await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let rows = row_steps(t);
    let mut hits = Vec::new();
    for (name, sets) in COMBINATIONS {
        let mut steps: Vec<Step> = sets.iter().map(|s| q(s)).collect();
        steps.extend(rows.iter().cloned());
        let n = checked(&proxy, name, &[], &steps).await;
        assert!(n > 0, "{name}: no cache hits");
        hits.push((*name, n));
    }
    // The last combination is the first one again: its entries are all
    // there, so nearly every request is a hit (the first few may come
    // before the session's settings are read).
    let requests = ROWS.len() as u64 * 2 * (3 + 9 + 2);
    let last = hits.last().expect("combinations").1;
    assert!(
        last + 3 >= requests,
        "default again: {last} hits of {requests} requests; per combination: {hits:?}"
    );
}

// -------------------------------------------------------------------------
// Settings changed in the middle of a session
// -------------------------------------------------------------------------

/// Rows 1, 5, 6 and 10 of a types table (times, bytea, intervals, floats),
/// each as `SELECT *` three times in the simple protocol and twice per
/// result-format choice through prepared statement `stmt`.
fn reads(t: &str, stmt: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for id in [1, 5, 6, 10] {
        let sql = format!("SELECT * FROM {t} WHERE id = {id}");
        for _ in 0..3 {
            steps.push(q(&sql));
        }
        let param = id.to_string();
        for formats in [vec![], mixed(COLUMNS.len() + 1)] {
            for _ in 0..2 {
                steps.push(run(stmt, &[], param.as_bytes(), &formats));
            }
        }
    }
    steps
}

/// Several statements sent in one write, then their replies read.
fn pipelined(sqls: &[&str]) -> Step {
    let messages: Vec<Vec<u8>> = sqls.iter().map(|s| fe::query(s)).collect();
    step(&messages, Until::Ready(sqls.len()))
}

#[tokio::test]
async fn settings_changed_mid_session_are_exact() {
    let t = "exact_mid";
    setup(&format!(
        "{} \
         CREATE OR REPLACE FUNCTION {t}_set_tz() RETURNS int LANGUAGE plpgsql AS \
         $$BEGIN PERFORM set_config('TimeZone', 'Asia/Kolkata', false); RETURN 1; END$$;",
        create_types_table(t)
    ))
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let stmt = "exact_mid_star";
    let r = || reads(t, stmt);
    let mut steps = vec![prepare(stmt, &format!("SELECT * FROM {t} WHERE id = $1"))];
    // hits under the defaults
    steps.extend(r());
    // plain SET
    steps.push(q("SET TimeZone = 'America/New_York'"));
    steps.extend(r());
    steps.push(q("SET extra_float_digits = 0"));
    steps.extend(r());
    // a SET rolled back: the settings before it apply again
    steps.push(q("BEGIN"));
    steps.push(q("SET TimeZone = 'Asia/Kolkata'"));
    steps.push(q("SET extra_float_digits = 3"));
    steps.push(q(&format!("SELECT * FROM {t} WHERE id = 1")));
    steps.push(q("ROLLBACK"));
    steps.extend(r());
    // SET LOCAL ends with its transaction
    steps.push(q("BEGIN"));
    steps.push(q("SET LOCAL bytea_output = 'escape'"));
    steps.push(q("SET LOCAL IntervalStyle = 'sql_standard'"));
    steps.push(q(&format!("SELECT * FROM {t} WHERE id = 5")));
    steps.push(q("COMMIT"));
    steps.extend(r());
    // set_config() called by a SELECT
    steps.push(q("SELECT set_config('IntervalStyle', 'iso_8601', false)"));
    steps.extend(r());
    steps.push(q(&format!(
        "SELECT id, set_config('extra_float_digits', '3', false) FROM {t} WHERE id = 1"
    )));
    steps.extend(r());
    // SET through the extended protocol
    steps.push(step(
        &[
            fe::parse("", "SET DateStyle = 'German'", &[]),
            fe::bind("", "", &[], &[], &[]),
            fe::execute("", 0),
            fe::sync(),
        ],
        Until::Ready(1),
    ));
    steps.extend(r());
    // a function of the database changes a setting
    steps.push(q(&format!("SELECT {t}_set_tz()")));
    steps.extend(r());
    // a DO block changes a setting
    steps.push(q(
        "DO $$BEGIN PERFORM set_config('bytea_output', 'escape', false); END$$",
    ));
    steps.extend(r());
    // a savepoint rolled back
    steps.push(q("BEGIN"));
    steps.push(q("SAVEPOINT a"));
    steps.push(q("SET IntervalStyle = 'sql_standard'"));
    steps.push(q("SET bytea_output = 'hex'"));
    steps.push(q("ROLLBACK TO SAVEPOINT a"));
    steps.push(q("COMMIT"));
    steps.extend(r());
    // a failed transaction
    steps.push(q("BEGIN"));
    steps.push(q("SET extra_float_digits = -15"));
    steps.push(q("SELECT 1/0"));
    steps.push(q("ROLLBACK"));
    steps.extend(r());
    // several statements in one query string
    steps.push(q(
        "SET TimeZone = 'UTC'; SET extra_float_digits = 0; SELECT 1",
    ));
    steps.extend(r());
    steps.push(q("SET TIME ZONE INTERVAL '+05:45' HOUR TO MINUTE"));
    steps.extend(r());
    // back to the defaults
    steps.push(q("RESET ALL"));
    steps.extend(r());
    // Twice through the same proxy: the second run meets every entry the
    // first one left behind.
    let first = checked(&proxy, "mid-session changes, first run", &[], &steps).await;
    let second = checked(&proxy, "mid-session changes, second run", &[], &steps).await;
    // The DO block and the database function may do anything: they drop
    // every entry and grant, so the second run is not all hits either.
    assert!(first > 0, "first run: no cache hits");
    assert!(second > 0, "second run: no cache hits");
}

const PIPE_STMT: &str = "exact_pipe_star";

/// Steps reading row `id` of `t`: four simple queries and four executions
/// of [`PIPE_STMT`] (prepared by the caller).
fn pipe_reads(t: &str, id: i32) -> Vec<Step> {
    let sql = format!("SELECT * FROM {t} WHERE id = {id}");
    let param = id.to_string();
    let mut steps = four(&[&sql]);
    for _ in 0..4 {
        steps.push(run(PIPE_STMT, &[], param.as_bytes(), &[]));
    }
    steps
}

/// A types table `t` and a proxy whose cache holds rows 1 (bytea) and 10
/// (floats) under the default settings.
async fn primed(t: &str) -> Proxy {
    setup(&create_types_table(t)).await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let mut steps = vec![prepare(
        PIPE_STMT,
        &format!("SELECT * FROM {t} WHERE id = $1"),
    )];
    steps.extend(pipe_reads(t, 10));
    steps.extend(pipe_reads(t, 1));
    let hits = checked(&proxy, "defaults", &[], &steps).await;
    assert!(hits > 0, "defaults: no cache hits");
    proxy
}

// A SET written together with the SELECT that makes the proxy read the
// session's settings reaches the origin before that read's answer is back.
// extra_float_digits and bytea_output are not reported by ParameterStatus.

#[tokio::test]
async fn extra_float_digits_set_pipelined_behind_a_select_is_exact() {
    let t = "exact_pipe_f";
    let proxy = primed(t).await;
    let sql = format!("SELECT * FROM {t} WHERE id = 10");
    let mut steps = vec![
        prepare(PIPE_STMT, &format!("SELECT * FROM {t} WHERE id = $1")),
        pipelined(&[&sql, "SET extra_float_digits = 0"]),
    ];
    steps.extend(pipe_reads(t, 10));
    checked(&proxy, "SET extra_float_digits pipelined", &[], &steps).await;
}

#[tokio::test]
async fn bytea_output_set_pipelined_behind_a_select_is_exact() {
    let t = "exact_pipe_b";
    let proxy = primed(t).await;
    let sql = format!("SELECT * FROM {t} WHERE id = 1");
    let mut steps = vec![
        prepare(PIPE_STMT, &format!("SELECT * FROM {t} WHERE id = $1")),
        pipelined(&[&sql, "SET bytea_output = 'escape'"]),
    ];
    steps.extend(pipe_reads(t, 1));
    checked(&proxy, "SET bytea_output pipelined", &[], &steps).await;
}

#[tokio::test]
async fn set_pipelined_behind_an_execute_is_exact() {
    let t = "exact_pipe_x";
    let proxy = primed(t).await;
    let steps = [
        prepare(PIPE_STMT, &format!("SELECT * FROM {t} WHERE id = $1")),
        // the session's settings are unknown after a SET (of the default)
        q("SET extra_float_digits = 1"),
        step(
            &[
                fe::bind("", PIPE_STMT, &[], &[Some(b"10")], &[]),
                fe::describe_portal(""),
                fe::execute("", 0),
                fe::sync(),
                fe::query("SET extra_float_digits = 0"),
            ],
            Until::Ready(2),
        ),
    ];
    let mut steps = steps.to_vec();
    steps.extend(pipe_reads(t, 10));
    checked(&proxy, "SET pipelined behind an Execute", &[], &steps).await;
}

// -------------------------------------------------------------------------
// client_encoding and standard_conforming_strings
// -------------------------------------------------------------------------

const LATIN1_TABLE: &str = "DROP TABLE IF EXISTS exact_latin; \
     CREATE TABLE exact_latin (id int PRIMARY KEY, v text, c char(6), a text[]); \
     INSERT INTO exact_latin VALUES \
     (1, 'café', 'é', '{café,\"ü,ö\",NULL}'), \
     (2, 'naïve Ærø ß', 'Ærø', '{ß}'), \
     (3, '£5 ½ ÿ © «»', '½', '{}'), \
     (4, 'plain ascii', 'x', '{a}'), \
     (5, '€ is not in Latin-1', '€', '{€}')";

/// The statements of the encoding test: rows by key (the fifth does not
/// convert to LATIN1), a literal spelled in UTF-8 and one spelled in
/// Latin-1 bytes.
fn latin1_steps(stmt: &str) -> Vec<Step> {
    let mut steps = vec![prepare(stmt, "SELECT * FROM exact_latin WHERE id = $1")];
    for id in 1..=5 {
        let sql = format!("SELECT * FROM exact_latin WHERE id = {id}");
        for _ in 0..3 {
            steps.push(q(&sql));
        }
        let param = id.to_string();
        for formats in [vec![], vec![1], vec![0, 1, 0, 1]] {
            for _ in 0..2 {
                steps.push(run(stmt, &[], param.as_bytes(), &formats));
            }
        }
    }
    for _ in 0..3 {
        steps.push(q("SELECT id, v FROM exact_latin WHERE v = 'café'"));
    }
    for _ in 0..3 {
        steps.push(q_bytes(
            b"SELECT id, v FROM exact_latin WHERE v = 'caf\xe9'",
        ));
    }
    steps
}

#[tokio::test]
async fn latin1_client_encoding_is_exact() {
    setup(LATIN1_TABLE).await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let stmt = "exact_latin_star";
    let steps = latin1_steps(stmt);
    let hits = checked(&proxy, "client_encoding UTF8", &[], &steps).await;
    assert!(hits > 0, "UTF8: no cache hits");
    let hits = checked(
        &proxy,
        "client_encoding LATIN1 at startup",
        &[("client_encoding", "LATIN1")],
        &steps,
    )
    .await;
    assert!(hits > 0, "LATIN1 at startup: no cache hits");
    let mut set = vec![q("SET client_encoding = 'LATIN1'")];
    set.extend(steps.iter().cloned());
    checked(&proxy, "SET client_encoding LATIN1", &[], &set).await;
    let mut set = vec![q("SET client_encoding = 'WIN1252'")];
    set.extend(steps.iter().cloned());
    checked(&proxy, "SET client_encoding WIN1252", &[], &set).await;
    // LATIN1 at startup, then back to UTF8 in the session
    let mut back = vec![q("SET client_encoding = 'UTF8'")];
    back.extend(steps.iter().cloned());
    checked(
        &proxy,
        "LATIN1 at startup, then SET client_encoding UTF8",
        &[("client_encoding", "LATIN1")],
        &back,
    )
    .await;
    let hits = checked(&proxy, "client_encoding UTF8 again", &[], &steps).await;
    assert!(hits > 0, "UTF8 again: no cache hits");
}

const SCS_BACKSLASH: &str = r"SELECT id, v FROM exact_scs WHERE v = 'a\\b'";
const SCS_QUOTE: &str = r"SELECT id, v FROM exact_scs WHERE v = 'a\'b'";
const SCS_ESCAPE: &str = r"SELECT id, v FROM exact_scs WHERE v = E'a\\b'";

/// Each statement four times: the first makes the proxy read the session's
/// settings (the second may still find that read under way), the third is
/// captured, the fourth is a hit.
fn four(sqls: &[&str]) -> Vec<Step> {
    sqls.iter().flat_map(|s| [q(s), q(s), q(s), q(s)]).collect()
}

#[tokio::test]
async fn standard_conforming_strings_off_is_exact() {
    setup(
        r"DROP TABLE IF EXISTS exact_scs;
          CREATE TABLE exact_scs (id int PRIMARY KEY, v text);
          INSERT INTO exact_scs VALUES (1, E'a\\b'), (2, E'a\\\\b'), (3, 'a''b')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let hits = checked(
        &proxy,
        "standard_conforming_strings on",
        &[],
        &four(&[SCS_BACKSLASH, SCS_ESCAPE]),
    )
    .await;
    assert!(hits > 0, "on: no cache hits");
    // Off: each backslash literal draws a warning from the origin.
    let mut steps = vec![q("SET standard_conforming_strings = off")];
    steps.extend(four(&[SCS_BACKSLASH, SCS_QUOTE, SCS_ESCAPE]));
    checked(&proxy, "standard_conforming_strings off", &[], &steps).await;
    // Off without the warning.
    let mut steps = vec![
        q("SET standard_conforming_strings = off"),
        q("SET escape_string_warning = off"),
    ];
    steps.extend(four(&[SCS_BACKSLASH, SCS_QUOTE, SCS_ESCAPE]));
    let hits = checked(
        &proxy,
        "standard_conforming_strings off, escape_string_warning off",
        &[],
        &steps,
    )
    .await;
    assert!(hits > 0, "off, no warning: no cache hits");
    let hits = checked(
        &proxy,
        "standard_conforming_strings on again",
        &[],
        &four(&[SCS_BACKSLASH, SCS_ESCAPE]),
    )
    .await;
    assert!(hits > 0, "on again: no cache hits");
}

#[tokio::test]
async fn warnings_hidden_by_client_min_messages_are_exact() {
    // A reply captured while client_min_messages hid the origin's warning,
    // then the same statement in a session that gets the warning.
    setup(
        r"DROP TABLE IF EXISTS exact_scs_warn;
          CREATE TABLE exact_scs_warn (id int PRIMARY KEY, v text);
          INSERT INTO exact_scs_warn VALUES (1, E'a\\b'), (2, E'a\\\\b')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = r"SELECT id, v FROM exact_scs_warn WHERE v = 'a\\b'";
    let mut steps = vec![
        q("SET standard_conforming_strings = off"),
        q("SET client_min_messages = error"),
    ];
    steps.extend(four(&[sql]));
    let hits = checked(&proxy, "scs off, client_min_messages error", &[], &steps).await;
    assert!(hits > 0, "client_min_messages error: no cache hits");
    let mut steps = vec![q("SET standard_conforming_strings = off")];
    steps.extend(four(&[sql]));
    checked(&proxy, "scs off, client_min_messages notice", &[], &steps).await;
}

// -------------------------------------------------------------------------
// Prepared statements parsed under other settings than they run under
// -------------------------------------------------------------------------

#[tokio::test]
async fn statement_parsed_with_scs_off_run_with_scs_on_is_exact() {
    // The text of a prepared statement is parsed once, under the settings
    // of its Parse; its executions run that meaning whatever the settings
    // are now.
    setup(
        r"DROP TABLE IF EXISTS exact_prep_scs;
          CREATE TABLE exact_prep_scs (id int PRIMARY KEY, v text);
          INSERT INTO exact_prep_scs VALUES (1, E'a\\b'), (2, E'a\\\\b')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = r"SELECT id, v FROM exact_prep_scs WHERE v = 'a\\b'";
    let stmt = "exact_prep_scs";
    let mut steps = vec![
        q("SET standard_conforming_strings = off"),
        q("SET client_min_messages = error"),
        prepare(stmt, sql),
        q("SET standard_conforming_strings = on"),
        q("RESET client_min_messages"),
    ];
    for _ in 0..4 {
        steps.push(run0(stmt, &[]));
    }
    let hits = checked(&proxy, "parsed with scs off, run with scs on", &[], &steps).await;
    assert!(hits > 0, "parsed off: no cache hits");
    let mut steps = vec![prepare(stmt, sql)];
    for _ in 0..4 {
        steps.push(run0(stmt, &[]));
    }
    checked(&proxy, "parsed and run with scs on", &[], &steps).await;
}

#[tokio::test]
async fn statement_parsed_in_latin1_run_in_utf8_is_exact() {
    setup(
        "DROP TABLE IF EXISTS exact_prep_enc; \
         CREATE TABLE exact_prep_enc (id int PRIMARY KEY, v text); \
         INSERT INTO exact_prep_enc VALUES (1, 'café'), (2, 'cafÃ©')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    // The UTF-8 bytes of 'café' read as Latin-1 spell 'cafÃ©'.
    let sql = "SELECT id, v FROM exact_prep_enc WHERE v = 'café'";
    let stmt = "exact_prep_enc";
    let mut steps = vec![
        q("SET client_encoding = 'LATIN1'"),
        prepare(stmt, sql),
        q("SET client_encoding = 'UTF8'"),
    ];
    for _ in 0..4 {
        steps.push(run0(stmt, &[]));
    }
    let hits = checked(&proxy, "parsed in LATIN1, run in UTF8", &[], &steps).await;
    assert!(hits > 0, "parsed in LATIN1: no cache hits");
    let mut steps = vec![prepare(stmt, sql)];
    for _ in 0..4 {
        steps.push(run0(stmt, &[]));
    }
    checked(&proxy, "parsed and run in UTF8", &[], &steps).await;
}

#[tokio::test]
async fn statement_parsed_under_other_search_path_is_exact() {
    // PostgreSQL parses a prepared statement again when search_path has
    // changed since: it reads the table the current path names.
    setup(
        "DROP SCHEMA IF EXISTS exact_a CASCADE; DROP SCHEMA IF EXISTS exact_b CASCADE; \
         CREATE SCHEMA exact_a; CREATE SCHEMA exact_b; \
         CREATE TABLE exact_a.exact_sp (id int PRIMARY KEY, v text); \
         CREATE TABLE exact_b.exact_sp (id int PRIMARY KEY, v text); \
         INSERT INTO exact_a.exact_sp VALUES (1, 'from a'); \
         INSERT INTO exact_b.exact_sp VALUES (1, 'from b')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = "SELECT id, v FROM exact_sp WHERE id = 1";
    let stmt = "exact_sp";
    let mut steps = vec![
        q("SET search_path = exact_a, public"),
        prepare(stmt, sql),
        q("SET search_path = exact_b, public"),
    ];
    for _ in 0..4 {
        steps.push(run0(stmt, &[]));
    }
    steps.extend(four(&[sql]));
    let hits = checked(
        &proxy,
        "parsed under exact_a, run under exact_b",
        &[],
        &steps,
    )
    .await;
    assert!(hits > 0, "no cache hits");
    for path in ["exact_a", "exact_b"] {
        let mut steps = vec![
            q(&format!("SET search_path = {path}, public")),
            prepare(stmt, sql),
        ];
        for _ in 0..3 {
            steps.push(run0(stmt, &[]));
        }
        steps.extend(four(&[sql]));
        checked(&proxy, &format!("parsed and run under {path}"), &[], &steps).await;
    }
}

// -------------------------------------------------------------------------
// Settings that change the output of immutable functions
// -------------------------------------------------------------------------

#[tokio::test]
async fn quote_all_identifiers_is_exact() {
    setup(
        "DROP TABLE IF EXISTS exact_qi; \
         CREATE TABLE exact_qi (id int PRIMARY KEY, v text); \
         INSERT INTO exact_qi VALUES (1, 'plain'), (2, 'Mixed Case')",
    )
    .await;
    let proxy = Proxy::start_cached(|_| {}).await;
    let sql = "SELECT id, quote_ident(v) FROM exact_qi WHERE id = 1";
    let hits = checked(&proxy, "quote_all_identifiers off", &[], &four(&[sql])).await;
    assert!(hits > 0, "no cache hits");
    let mut steps = vec![q("SET quote_all_identifiers = on")];
    steps.extend(four(&[sql]));
    checked(&proxy, "quote_all_identifiers on", &[], &steps).await;
}

#[tokio::test]
async fn settings_given_at_startup_are_exact() {
    let t = "exact_startup";
    let proxy = primed(t).await;
    let mut steps = vec![prepare(
        PIPE_STMT,
        &format!("SELECT * FROM {t} WHERE id = $1"),
    )];
    steps.extend(pipe_reads(t, 1));
    steps.extend(pipe_reads(t, 10));
    let startup: &[&[(&str, &str)]] = &[
        &[
            ("options", "-c extra_float_digits=0 -c bytea_output=escape"),
            ("DateStyle", "German"),
            ("TimeZone", "Asia/Kolkata"),
        ],
        &[("options", "-c IntervalStyle=iso_8601")],
        &[("extra_float_digits", "3")],
        &[],
    ];
    for params in startup {
        let hits = checked(&proxy, &format!("startup {params:?}"), params, &steps).await;
        assert!(hits > 0, "startup {params:?}: no cache hits");
    }
}
