//! Statements that were judged wrongly once, each checked against what
//! PostgreSQL (15) does with it.

use super::*;
use crate::sql::ast::LiteralType;
use crate::sql::{Analyzer, ParamValue, Reason, SearchPathTracker};

/// `-2147483648` is `2147483648` (an `FCONST`) negated by the grammar, and
/// `make_const` gives it type `int4` because it fits (`pg_typeof` says
/// `integer`). Typed `int8`, it could resolve another overload than the
/// origin does.
#[test]
fn negated_int4_minimum_is_int4() {
    let fx = Fx::new();
    let c = cacheable(&fx, "SELECT * FROM users WHERE id = -2147483648");
    assert_eq!(c.shape.lifted_types, vec![LiteralType::Int4]);
    assert_eq!(c.params.as_ref(), [ParamValue::Int4(i32::MIN)]);
    // The same shape as any other int4 constant.
    let other = cacheable(&fx, "SELECT * FROM users WHERE id = -5");
    assert_eq!(c.shape, other.shape);
    // One past it is int8.
    let c = cacheable(&fx, "SELECT * FROM users WHERE id = -2147483649");
    assert_eq!(c.params.as_ref(), [ParamValue::Int8(-2_147_483_649)]);

    // The cached paths agree, whatever the analyzer learned first.
    let analyzer = Analyzer::new(64);
    let session = fx.session();
    for sql in [
        "SELECT * FROM users WHERE id = -3000000000",
        "SELECT * FROM users WHERE id = -2147483648",
        "SELECT * FROM users WHERE id = -2147483649",
        "SELECT * FROM users WHERE id = - 2147483648",
    ] {
        let cached = analyzer.analyze(sql, &session).verdict;
        assert_eq!(cached, fx.verdict(sql), "{sql}");
    }
}

/// PostgreSQL 16 reads `0x1F`, `0o17`, `0b101` and `1_000` as numbers; 15
/// rejects them ("trailing junk after numeric literal"). pg_query 18 reads
/// them as the decimal value, so `id = 0x1F` would share the shape and
/// parameters of `id = 31` and be served where the origin answers an error.
#[test]
fn non_decimal_numbers_are_not_cacheable() {
    let fx = Fx::new();
    for sql in [
        "SELECT * FROM users WHERE id = 0x1F",
        "SELECT * FROM users WHERE id = 0X1f",
        "SELECT * FROM users WHERE id = 0o17",
        "SELECT * FROM users WHERE id = 0b101",
        "SELECT * FROM users WHERE id = 1_000",
        "SELECT * FROM users WHERE id = -0x80000000",
        "SELECT * FROM users WHERE id = 0x100000000",
        "SELECT * FROM product WHERE price = 1_000.5",
        "SELECT * FROM product WHERE price = 1e1_0",
        "SELECT 0x1F AS n, id FROM users",
        "SELECT id FROM users ORDER BY id LIMIT 1_0",
    ] {
        let r = reason(&fx, sql);
        assert_eq!(r.code(), "unsupported", "{sql}: {r}");
        let analyzer = Analyzer::new(64);
        for _ in 0..2 {
            let v = analyzer.analyze(sql, &fx.session()).verdict;
            assert!(!v.is_cacheable(), "{sql}");
        }
    }
    // Digits next to such letters elsewhere are fine.
    for sql in [
        "SELECT * FROM users WHERE name = '0x1F'",
        "SELECT * FROM users WHERE name = 'a_1_000'",
        "SELECT \"1_000\" FROM (SELECT 1) s",
        "SELECT * FROM users WHERE id = 1 AND name = 'b'",
    ] {
        assert_ne!(
            fx.verdict(sql).reason().map(Reason::code),
            Some("unsupported"),
            "{sql}"
        );
    }
    cacheable(&fx, "SELECT * FROM users WHERE id = 1 AND name = '1_0x'");
}

/// `anycompatible` arguments are converted to their common type:
/// `array_position(timestamptz[], date)` converts the date to timestamptz
/// with the session's TimeZone (a stable cast), so the rows found depend on
/// it (checked on PostgreSQL 15 with `SET timezone`).
#[test]
fn anycompatible_arguments_are_converted_to_their_common_type() {
    let fx = Fx::new();
    for sql in [
        "SELECT array_position(slots, day) FROM schedules",
        "SELECT id FROM schedules WHERE array_position(slots, starts) = 1",
    ] {
        let r = reason(&fx, sql);
        assert_eq!(r.code(), "non_immutable_cast", "{sql}: {r}");
    }
    // An unknown argument is read as the common element type.
    let r = reason(
        &fx,
        "SELECT id FROM schedules WHERE array_position(slots, '2024-01-01') = 1",
    );
    assert_eq!(r.code(), "non_immutable_input", "{r}");
    // Immutable conversions stay cacheable.
    cacheable(&fx, "SELECT array_position(tags, status) FROM blog_post");
    cacheable(
        &fx,
        "SELECT id FROM blog_post WHERE array_position(tags, 'x') = 1",
    );
    cacheable(&fx, "SELECT id FROM blog_post WHERE tags || tags = tags");
}

/// A temporary table is also a type, and `pg_temp` is searched first for
/// type names: after `CREATE TEMP TABLE text (…)`, `'x'::text` is a record
/// (PostgreSQL 15: "malformed record literal").
#[test]
fn unqualified_types_may_be_temporary_in_sessions_with_temp_objects() {
    let mut fx = Fx::new();
    fx.temp = true;
    let r = reason(&fx, "SELECT * FROM public.users WHERE name = 'x'::text");
    assert_eq!(r, Reason::SessionTempObjects("text".to_owned()));
    // Names the grammar qualifies (SQL-standard spellings) and qualified names are fine.
    cacheable(
        &fx,
        "SELECT * FROM public.users WHERE id = CAST('1' AS bigint)",
    );
    cacheable(
        &fx,
        "SELECT * FROM public.users WHERE name = 'x'::pg_catalog.text",
    );
    fx.temp = false;
    cacheable(&fx, "SELECT * FROM public.users WHERE name = 'x'::text");
}

/// Only `DISCARD ALL` resets settings; `DISCARD PLANS/TEMP/SEQUENCES` keep
/// the search_path (checked on PostgreSQL 15).
#[test]
fn only_discard_all_resets_the_search_path() {
    for other in ["DISCARD PLANS", "DISCARD TEMP", "DISCARD SEQUENCES"] {
        let mut t = SearchPathTracker::new(path("public"));
        run(&mut t, "SET search_path TO tenant_1", false);
        run(&mut t, other, false);
        assert_eq!(t.current().cloned(), path("tenant_1"), "{other}");
    }
    let mut t = SearchPathTracker::new(path("public"));
    run(&mut t, "SET search_path TO tenant_1", false);
    run(&mut t, "DISCARD ALL", false);
    assert_eq!(t.current().cloned(), path("public"));
}

/// `"$user"` is the current user: after `SET ROLE alice` an unqualified name
/// is looked up in schema `alice` first (checked on PostgreSQL 15), and
/// `RESET ALL` keeps the role.
#[test]
fn role_changes_make_the_path_unknown() {
    for sql in [
        "SET ROLE alice",
        "SET LOCAL ROLE alice",
        "SET SESSION AUTHORIZATION alice",
        "SET SESSION AUTHORIZATION DEFAULT",
    ] {
        for in_tx in [false, true] {
            let mut t = SearchPathTracker::new(path("\"$user\", public"));
            run(&mut t, sql, in_tx);
            assert_eq!(t.current(), None, "{sql}");
            run(&mut t, "SET search_path TO \"$user\", app", false);
            assert_eq!(t.current(), None, "{sql}");
            run(&mut t, "RESET ALL", false);
            assert_eq!(t.current(), None, "{sql}");
            run(&mut t, "DISCARD ALL", false);
            assert_eq!(t.current().cloned(), path("\"$user\", public"), "{sql}");
        }
    }
    let mut t = SearchPathTracker::new(path("public"));
    run(&mut t, "RESET ROLE", false);
    assert_eq!(t.current().cloned(), path("public"));
}

/// PostgreSQL leaves schemas the user may not use out of the search path,
/// for functions and operators too, and the snapshot does not know schema
/// privileges: without `USAGE` on `app`, `initials(name)` calls the volatile
/// `public.initials(text)`, not the exact match `app.initials(varchar)`.
#[test]
fn names_in_several_schemas_check_every_applicable_candidate() {
    let fx = Fx::new();
    let r = reason(&fx, "SELECT initials(name) FROM users");
    assert_eq!(r.code(), "non_immutable_function", "{r}");
    cacheable(&fx, "SELECT app.initials(name) FROM users");
    // Only one schema on the path holds the name.
    let fx = Fx::new().with_path("app");
    cacheable(&fx, "SELECT initials(name) FROM public.users");
}
