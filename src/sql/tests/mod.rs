//! Unit tests of the SQL analysis, one file per pass.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

mod analyze;
mod convert;
mod corpus;
mod deps;
mod fast_path;
mod redteam;
mod robustness;
mod session;

use crate::catalog::{EffectivePath, SearchPath, Snapshot, fixture};

use super::{Analysis, Context, Session, Verdict, analyze_uncached};

/// The fixture catalog with a session on its default search_path.
pub(super) struct Fx {
    pub snapshot: Snapshot,
    pub path: EffectivePath,
    pub temp: bool,
    pub scs: bool,
}

impl Fx {
    pub fn new() -> Fx {
        let snapshot = fixture::snapshot();
        let path = fixture::fixture_path(&snapshot);
        Fx {
            snapshot,
            path,
            temp: false,
            scs: true,
        }
    }

    pub fn with_path(mut self, setting: &str) -> Fx {
        self.path = SearchPath::parse(setting)
            .unwrap()
            .effective(&self.snapshot, "app");
        self
    }

    pub fn session(&self) -> Session<'_> {
        Session {
            context: Context {
                snapshot: &self.snapshot,
                search_path: Some(&self.path),
                has_temp_objects: self.temp,
            },
            standard_conforming_strings: self.scs,
        }
    }

    pub fn analyze(&self, sql: &str) -> Analysis {
        analyze_uncached(sql, &self.session())
    }

    pub fn verdict(&self, sql: &str) -> Verdict {
        self.analyze(sql).verdict
    }
}

/// The shape and parameters of `sql`, which must be cacheable.
fn cacheable(fx: &Fx, sql: &str) -> crate::sql::Cacheable {
    match fx.verdict(sql) {
        Verdict::Cacheable(c) => c,
        Verdict::NotCacheable(r) => panic!("{sql}: not cacheable: {r}"),
    }
}

/// Why `sql` is not cacheable; it must not be.
fn reason(fx: &Fx, sql: &str) -> crate::sql::Reason {
    match fx.verdict(sql) {
        Verdict::NotCacheable(r) => r,
        Verdict::Cacheable(c) => panic!("{sql}: cacheable: {c:?}"),
    }
}

/// Feed every statement of `sql` to the search_path tracker.
fn run(t: &mut crate::sql::SearchPathTracker, sql: &str, in_tx: bool) {
    for s in crate::sql::parse(sql, true).unwrap() {
        t.executed(s.kind(), sql, in_tx);
    }
}

/// A parsed search_path setting.
fn path(s: &str) -> Option<SearchPath> {
    Some(SearchPath::parse(s).unwrap())
}
