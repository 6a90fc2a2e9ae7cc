//! Fuzz target `sql_analyze`: statement analysis must give a verdict for any
//! text, never panic, and the cached paths (exact text, scanner key) must
//! return exactly what the full parse returns.
//!
//! Run with `cargo fuzz run sql_analyze` from the repository root. A good
//! seed corpus is the SELECT corpus, one statement per file: the statements
//! of `tests/corpus/*.corpus` (lines before each `->` line).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pgcache::catalog::{EffectivePath, Snapshot, fixture};
use pgcache::sql::{Analyzer, Context, Session, analyze_uncached, parse};

static CATALOG: LazyLock<(Snapshot, EffectivePath)> = LazyLock::new(|| {
    let snapshot = fixture::snapshot();
    let path = fixture::fixture_path(&snapshot);
    (snapshot, path)
});

/// Shared across inputs, so one input's learned shape meets later inputs.
static ANALYZER: LazyLock<Analyzer> = LazyLock::new(|| Analyzer::new(4096));

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let (snapshot, path) = &*CATALOG;
    for scs in [true, false] {
        let session = Session {
            context: Context {
                snapshot,
                search_path: Some(path),
                has_temp_objects: false,
            },
            standard_conforming_strings: scs,
        };
        let full = analyze_uncached(sql, &session);
        let cached = ANALYZER.analyze(sql, &session);
        assert_eq!(
            cached.verdict, full.verdict,
            "{sql:?} via {:?}",
            cached.path
        );
        assert_eq!(cached.kinds, full.kinds, "{sql:?}");
        let _ = parse(sql, scs);
    }
});
