//! search_path parsing and resolution, and the fixture's consistency.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use super::search_path::{PathEntry, PathSlot};
use super::*;

fn entries(s: &str) -> Vec<PathEntry> {
    SearchPath::parse(s).unwrap().entries().to_vec()
}

fn schema(s: &str) -> PathEntry {
    PathEntry::Schema(s.to_owned())
}

#[test]
fn parses_settings_like_postgres() {
    assert_eq!(
        entries("\"$user\", public"),
        vec![PathEntry::User, schema("public")]
    );
    assert_eq!(
        entries("$user,public"),
        vec![PathEntry::User, schema("public")]
    );
    assert_eq!(
        entries("  App ,  \"My Schema\",pg_temp"),
        vec![schema("app"), schema("My Schema"), PathEntry::Temp]
    );
    assert_eq!(entries("\"a\"\"b\""), vec![schema("a\"b")]);
    assert_eq!(entries(""), vec![]);
    assert_eq!(entries("   "), vec![]);
    assert_eq!(entries(&"x".repeat(70)), vec![schema(&"x".repeat(63))]);
    assert_eq!(
        SearchPath::parse("a,,b"),
        Err(SearchPathError::EmptyElement)
    );
    assert_eq!(SearchPath::parse("a,"), Err(SearchPathError::EmptyElement));
    assert_eq!(
        SearchPath::parse("\"a"),
        Err(SearchPathError::UnterminatedQuote)
    );
    assert_eq!(
        SearchPath::parse("\"\""),
        Err(SearchPathError::EmptyElement)
    );
    assert_eq!(
        SearchPath::parse("a b"),
        Err(SearchPathError::ExpectedComma(2))
    );
}

#[test]
fn displays_as_a_setting() {
    for s in [
        "\"$user\", public",
        "app, \"My Schema\", pg_temp",
        "\"a\"\"b\", x1",
    ] {
        let p = SearchPath::parse(s).unwrap();
        assert_eq!(SearchPath::parse(&p.to_string()).unwrap(), p, "{s}");
    }
    assert_eq!(SearchPath::default().to_string(), "\"$user\", public");
}

#[test]
fn set_values_are_names() {
    let p = SearchPath::from_values(&["app", "My Schema", "$user", "a, b"]);
    assert_eq!(
        p.entries(),
        [
            schema("app"),
            schema("My Schema"),
            PathEntry::User,
            schema("a, b")
        ]
    );
}

#[test]
fn effective_path_puts_temp_and_catalog_first() {
    let snap = fixture::snapshot();
    let path = SearchPath::default().effective(&snap, "app");
    assert_eq!(
        path.slots(),
        [
            PathSlot::Temp,
            PathSlot::Schema(oids::PG_CATALOG),
            PathSlot::Schema(fixture::APP),
            PathSlot::Schema(fixture::PUBLIC),
        ]
    );
    // A user without a schema of its own; missing schemas are skipped.
    let path = SearchPath::parse("\"$user\", nosuch, public")
        .unwrap()
        .effective(&snap, "bob");
    assert_eq!(
        path.schemas().collect::<Vec<_>>(),
        vec![oids::PG_CATALOG, fixture::PUBLIC]
    );
    // Listed explicitly, pg_catalog and pg_temp keep their place.
    let path = SearchPath::parse("public, pg_catalog, pg_temp")
        .unwrap()
        .effective(&snap, "app");
    assert_eq!(
        path.slots(),
        [
            PathSlot::Schema(fixture::PUBLIC),
            PathSlot::Schema(oids::PG_CATALOG),
            PathSlot::Temp
        ]
    );
    assert_eq!(path.rank(fixture::PUBLIC), Some(0));
    assert_eq!(path.rank(fixture::APP), None);
}

#[test]
fn fixture_is_consistent() {
    let snap = fixture::snapshot();
    let users = snap.table_in(fixture::PUBLIC, "users").unwrap();
    assert_eq!(users.column("email").unwrap().type_oid, oids::VARCHAR);
    assert_eq!(users.primary_key, vec![1]);
    assert_eq!(snap.qualified_table_name(users), "public.users");
    assert!(
        snap.functions_named("now")
            .all(|f| f.volatility == Volatility::Stable)
    );
    assert!(snap.operators_named("=").count() > 30);
    assert_eq!(snap.type_(oids::INT4).unwrap().array, Some(Oid(1007)));
    assert_eq!(snap.publication().unwrap().missing_action(), None);
    let a = fixture::snapshot();
    assert_ne!(a.generation(), snap.generation());
}

#[test]
fn byte_codes() {
    assert_eq!(RelKind::from_byte(b'p'), RelKind::PartitionedTable);
    assert_eq!(RelKind::from_byte(b'c'), RelKind::Other(b'c'));
    assert_eq!(Persistence::from_byte(b'x'), Persistence::Temporary);
    assert_eq!(ReplicaIdentity::from_byte(b'f'), ReplicaIdentity::Full);
    assert_eq!(Volatility::from_byte(b'?'), Volatility::Volatile);
    assert_eq!(CastContext::from_byte(b'i'), CastContext::Implicit);
    assert_eq!(FunctionKind::from_byte(b'a'), FunctionKind::Aggregate);
    assert_eq!(TypeKind::from_byte(b'e'), TypeKind::Enum);
}
