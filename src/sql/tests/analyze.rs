//! Verdicts, reasons and shapes of the cacheability pass.

use std::sync::Arc;

use super::*;
use crate::catalog::{SearchPath, Volatility};
use crate::sql::ast::{Expr, LiteralType, SetExpr};
use crate::sql::{Maintenance, ParamValue, Reason, StatementKind};

#[test]
fn literals_share_a_shape() {
    let fx = Fx::new();
    let a = cacheable(&fx, "SELECT abalance FROM pgbench_accounts WHERE aid = 1");
    let b = cacheable(&fx, "SELECT abalance FROM pgbench_accounts WHERE aid = 2");
    assert_eq!(a.shape, b.shape);
    assert_eq!(a.shape.fingerprint, b.shape.fingerprint);
    assert_eq!(a.params.as_ref(), [ParamValue::Int4(1)]);
    assert_eq!(b.params.as_ref(), [ParamValue::Int4(2)]);
    // A string literal is another shape (it resolves by context, not as int4).
    let c = cacheable(&fx, "SELECT abalance FROM pgbench_accounts WHERE aid = '1'");
    assert_ne!(a.shape, c.shape);
    assert_eq!(c.shape.lifted_types, vec![LiteralType::Unknown]);
    // So is a literal that needs int8.
    let d = cacheable(
        &fx,
        "SELECT abalance FROM pgbench_accounts WHERE aid = 3000000000",
    );
    assert_ne!(a.shape, d.shape);
}

#[test]
fn lifted_parameters_follow_the_clients() {
    let fx = Fx::new();
    let c = cacheable(
        &fx,
        "SELECT * FROM users WHERE id = $2 AND email = 'x' AND name = $1 LIMIT 10",
    );
    assert_eq!(c.shape.client_params, 2);
    assert_eq!(
        c.params.as_ref(),
        [ParamValue::Text("x".into()), ParamValue::Int4(10)]
    );
    let SetExpr::Select(s) = &c.shape.query.body else {
        panic!()
    };
    let mut params = Vec::new();
    let mut w = s.selection.clone().unwrap();
    w.for_each_mut(&mut |e| {
        if let Expr::Param(n) = e {
            params.push(*n);
        }
    });
    assert_eq!(params, vec![2, 3, 1]);
    assert_eq!(c.shape.query.limit, Some(Expr::Param(4)));
}

#[test]
fn order_by_and_target_literals_are_part_of_the_shape() {
    let fx = Fx::new();
    let a = cacheable(&fx, "SELECT 1 AS one, id FROM users ORDER BY 2");
    let b = cacheable(&fx, "SELECT 2 AS one, id FROM users ORDER BY 2");
    assert_ne!(a.shape, b.shape);
    assert!(a.params.is_empty());
}

#[test]
fn search_path_decides_the_table() {
    let fx = Fx::new().with_path("app, public");
    assert_eq!(
        reason(&fx, "SELECT * FROM settings").code(),
        "ambiguous_table"
    );
    let only_public = Fx::new().with_path("public");
    let app = Fx::new().with_path("app");
    let p = cacheable(&only_public, "SELECT * FROM settings WHERE key = 'a'");
    let a = cacheable(&app, "SELECT * FROM settings WHERE key = 'a'");
    assert_ne!(p.shape.tables, a.shape.tables);
    assert_ne!(p.shape, a.shape);
    assert_eq!(
        reason(&only_public, "SELECT * FROM preferences").code(),
        "unknown_table"
    );
    // pg_catalog is searched first unless listed.
    assert_eq!(
        reason(&app, "SELECT * FROM pg_class").code(),
        "system_catalog"
    );
    let empty = Fx::new().with_path("");
    assert_eq!(
        reason(&empty, "SELECT * FROM users").code(),
        "unknown_table"
    );
    assert!(
        empty
            .verdict("SELECT * FROM public.users WHERE lower(email) = 'x'")
            .is_cacheable()
    );
}

#[test]
fn unknown_search_path_or_temp_objects() {
    let fx = Fx::new();
    let ctx = Context {
        snapshot: &fx.snapshot,
        search_path: None,
        has_temp_objects: false,
    };
    let session = Session {
        context: ctx,
        standard_conforming_strings: true,
    };
    let r = analyze_uncached("SELECT * FROM public.users", &session).verdict;
    assert_eq!(r, Verdict::NotCacheable(Reason::UnknownSearchPath));

    let mut temp = Fx::new();
    temp.temp = true;
    assert_eq!(
        reason(&temp, "SELECT * FROM users"),
        Reason::SessionTempObjects("users".into())
    );
    assert!(temp.verdict("SELECT * FROM public.users").is_cacheable());
}

#[test]
fn maintenance_by_query_form() {
    let fx = Fx::new();
    for (sql, m, aggregates) in [
        (
            "SELECT * FROM users WHERE id = 1",
            Maintenance::Incremental,
            false,
        ),
        (
            "SELECT u.id FROM users u JOIN organizations o ON o.id = u.organization_id",
            Maintenance::Incremental,
            false,
        ),
        ("SELECT count(*) FROM users", Maintenance::Invalidate, true),
        (
            "SELECT organization_id FROM users GROUP BY organization_id",
            Maintenance::Invalidate,
            true,
        ),
        (
            "SELECT DISTINCT name FROM users",
            Maintenance::Invalidate,
            false,
        ),
        (
            "SELECT * FROM users ORDER BY id LIMIT 5",
            Maintenance::Invalidate,
            false,
        ),
        (
            "SELECT * FROM users ORDER BY id",
            Maintenance::Incremental,
            false,
        ),
    ] {
        let c = cacheable(&fx, sql);
        assert_eq!(
            (c.shape.maintenance, c.shape.aggregates),
            (m, aggregates),
            "{sql}"
        );
    }
}

#[test]
fn reasons_read_well() {
    let fx = Fx::new();
    for (sql, text) in [
        (
            "SELECT * FROM users WHERE id = random()",
            "calls volatile function random()",
        ),
        (
            "SELECT * FROM users WHERE created_at < now()",
            "calls stable function now()",
        ),
        (
            "SELECT * FROM active_users",
            "reads view public.active_users: views are not cached",
        ),
        (
            "SELECT * FROM secure_docs",
            "table public.secure_docs has row-level security",
        ),
        (
            "SELECT * FROM users FOR UPDATE",
            "FOR UPDATE locks rows at the origin",
        ),
        (
            "SELECT * FROM audit_log",
            "table public.audit_log has no primary key and its replica identity is not FULL",
        ),
        (
            "SELECT * FROM staging_rows",
            "table public.staging_rows is not in publication pgcache_pub",
        ),
        (
            "SELECT * FROM scratch",
            "reads unlogged table public.scratch: its changes are not replicated",
        ),
        (
            "SELECT * FROM pg_class",
            "reads system catalog pg_catalog.pg_class",
        ),
        (
            "SELECT id, row_number() OVER () FROM users",
            "uses window functions (OVER), which the analyzer does not cache",
        ),
        (
            "SELECT * FROM users WHERE created_at > CURRENT_TIMESTAMP",
            "uses CURRENT_TIMESTAMP, whose value depends on the transaction or session",
        ),
        (
            "INSERT INTO users (id) VALUES (1)",
            "INSERT statements are not cached",
        ),
        (
            "SELECT * FROM users u FULL JOIN organizations o ON o.id = u.organization_id",
            "uses a FULL join; only inner, LEFT and RIGHT joins are cached",
        ),
        (
            "SELECT * FROM users, organizations",
            "users and organizations are not joined by an equality of columns (a cross or non-equi join)",
        ),
    ] {
        assert_eq!(reason(&fx, sql).to_string(), text, "{sql}");
    }
    let r = reason(&fx, "SELECT * FROM users WHERE created_at > '2024-01-01'");
    assert_eq!(
        r,
        Reason::NonImmutableInput {
            type_name: "timestamp".into(),
            function: "timestampin".into(),
            volatility: Volatility::Stable
        }
    );
    assert!(
        r.to_string()
            .contains("stable input function timestampin()"),
        "{r}"
    );
    let r = reason(&fx, "SELECT * FROM blog_post WHERE published_at > created");
    assert_eq!(r.to_string(), "uses stable operator timestamptz > date");
}

#[test]
fn statement_kinds_of_multi_statement_strings() {
    let fx = Fx::new();
    let a = fx.analyze("BEGIN; SELECT 1; COMMIT");
    assert_eq!(
        a.kinds.as_ref(),
        [
            StatementKind::Transaction(crate::sql::kind::TransactionKind::Begin),
            StatementKind::Select,
            StatementKind::Transaction(crate::sql::kind::TransactionKind::Commit),
        ]
    );
    assert_eq!(
        a.verdict,
        Verdict::NotCacheable(Reason::MultipleStatements(3))
    );
    let p = fx.analyze("SELEC 1");
    assert!(p.kinds.is_empty());
    assert_eq!(p.verdict.reason().map(Reason::code), Some("parse_error"));
}

#[test]
fn standard_conforming_strings_off() {
    let mut fx = Fx::new();
    fx.scs = false;
    let c = cacheable(&fx, r"SELECT * FROM users WHERE name = 'a\'b'");
    assert_eq!(c.params.as_ref(), [ParamValue::Text("a'b".into())]);
    fx.scs = true;
    assert_eq!(
        reason(&fx, r"SELECT * FROM users WHERE name = 'a\'b'").code(),
        "parse_error"
    );
}

#[test]
fn a_new_snapshot_changes_the_verdict() {
    let fx = Fx::new();
    assert!(
        fx.verdict("SELECT * FROM users WHERE id = 1")
            .is_cacheable()
    );
    // The same catalog without a publication: nothing is cacheable.
    let mut b = crate::catalog::Snapshot::builder();
    for t in fx.snapshot.tables() {
        b.table(t.clone());
    }
    for name in ["pg_catalog", "public", "app"] {
        b.schema(fx.snapshot.schema_by_name(name).unwrap().clone());
    }
    let bare = b.build();
    assert_ne!(bare.generation(), fx.snapshot.generation());
    let path = SearchPath::default().effective(&bare, "app");
    let session = Session {
        context: Context {
            snapshot: &bare,
            search_path: Some(&path),
            has_temp_objects: false,
        },
        standard_conforming_strings: true,
    };
    let v = analyze_uncached("SELECT * FROM users WHERE id = 1", &session).verdict;
    assert_eq!(v, Verdict::NotCacheable(Reason::NoPublication));
    // The analyzer never reuses a verdict across snapshots.
    let analyzer = crate::sql::Analyzer::new(64);
    assert!(
        analyzer
            .analyze("SELECT * FROM users WHERE id = 1", &fx.session())
            .verdict
            .is_cacheable()
    );
    let again = analyzer.analyze("SELECT * FROM users WHERE id = 1", &session);
    assert_eq!(again.verdict, Verdict::NotCacheable(Reason::NoPublication));
}

#[test]
fn shapes_are_shared_through_arc() {
    let fx = Fx::new();
    let analyzer = crate::sql::Analyzer::new(64);
    let s = fx.session();
    let Verdict::Cacheable(a) = analyzer
        .analyze("SELECT * FROM users WHERE id = 1", &s)
        .verdict
    else {
        panic!()
    };
    let Verdict::Cacheable(b) = analyzer
        .analyze("SELECT * FROM users WHERE id = 2", &s)
        .verdict
    else {
        panic!()
    };
    assert!(Arc::ptr_eq(&a.shape, &b.shape));
    assert_eq!(a.shape.fingerprint_hex().len(), 16);
}

#[test]
fn array_subscripts_are_typed_by_the_element() {
    let fx = Fx::new();
    for sql in [
        "SELECT id, tags[1] FROM blog_post WHERE id = 1",
        "SELECT id, tags[2:3], tags[:1] FROM blog_post WHERE id = 1",
        "SELECT id FROM blog_post WHERE tags[1] = 'rust'",
        "SELECT id FROM blog_post WHERE tags[views] = 'rust'",
        "SELECT id FROM blog_post WHERE tags[$1] = $2",
    ] {
        cacheable(&fx, sql);
    }
    for (sql, why) in [
        (
            "SELECT id, metadata['a'] FROM blog_post",
            "subscripts of a value that is not an array",
        ),
        (
            "SELECT id, tags[rating] FROM blog_post",
            "an array subscript that is not an integer",
        ),
        (
            "SELECT id, tags[1.5] FROM blog_post",
            "an array subscript that is not an integer",
        ),
    ] {
        assert_eq!(
            reason(&fx, sql),
            Reason::Unsupported(why.to_owned()),
            "{sql}"
        );
    }
}
