//! The session search_path tracker.

use super::{path, run};
use crate::catalog::SearchPath;
use crate::sql::SearchPathTracker;

#[test]
fn follows_set_and_reset() {
    let mut t = SearchPathTracker::new(path("app, public"));
    assert_eq!(t.current().cloned(), path("app, public"));
    run(&mut t, "SET search_path TO tenant_1, public", false);
    assert_eq!(t.current().cloned(), path("tenant_1, public"));
    run(&mut t, "SELECT 1", false);
    assert_eq!(t.current().cloned(), path("tenant_1, public"));
    run(&mut t, "RESET search_path", false);
    assert_eq!(t.current().cloned(), path("app, public"));
    run(&mut t, "SET SCHEMA 'x'", false);
    assert_eq!(t.current().cloned(), path("x"));
    run(&mut t, "SET search_path TO DEFAULT", false);
    assert_eq!(t.current().cloned(), path("app, public"));
    run(&mut t, "SET search_path TO y", false);
    run(&mut t, "RESET ALL", false);
    assert_eq!(t.current().cloned(), path("app, public"));
    run(&mut t, "SET timezone TO 'UTC'", false);
    assert_eq!(t.current().cloned(), path("app, public"));
}

#[test]
fn uncertain_changes_make_it_unknown() {
    for (sql, in_tx) in [
        ("SET search_path TO a", true),
        ("SET LOCAL search_path TO a", true),
        ("RESET search_path", true),
        ("SELECT set_config('search_path', 'a', false)", false),
        (
            "SELECT pg_catalog.SET_CONFIG('search_path', 'a', false) FROM t",
            false,
        ),
        ("DO $$ BEGIN PERFORM 1; END $$", false),
        ("CALL p()", false),
        ("EXECUTE stmt", false),
        ("SET search_path FROM CURRENT", false),
    ] {
        let mut t = SearchPathTracker::new(path("public"));
        run(&mut t, sql, in_tx);
        assert_eq!(t.current(), None, "{sql}");
        run(&mut t, "SET search_path TO b", false);
        assert_eq!(t.current().cloned(), path("b"), "{sql}");
    }
    let mut t = SearchPathTracker::new(path("public"));
    run(&mut t, "SET LOCAL search_path TO a", false);
    assert_eq!(t.current().cloned(), path("public"));
}

#[test]
fn unknown_default_until_learned() {
    let mut t = SearchPathTracker::new(None);
    assert_eq!(t.current(), None);
    run(&mut t, "SET search_path TO a", false);
    assert_eq!(t.current().cloned(), path("a"));
    run(&mut t, "RESET search_path", false);
    assert_eq!(t.current(), None);
    t.learned(SearchPath::default());
    assert_eq!(t.current(), Some(&SearchPath::default()));
    run(&mut t, "SET search_path TO a", false);
    run(&mut t, "DISCARD ALL", false);
    assert_eq!(t.current(), Some(&SearchPath::default()));
    t.reported("\"$user\", app");
    assert_eq!(t.current().cloned(), path("\"$user\", app"));
    t.reported("\"broken");
    assert_eq!(t.current(), None);
}
