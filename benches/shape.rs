//! Cost per statement of the analysis hit paths (`docs/sql-support.md`
//! records the numbers): a known shape with a new literal must stay well
//! under the cost of a full parse.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pgcache::catalog::fixture;
use pgcache::sql::{AnalysisPath, Analyzer, Context, Session, analyze_uncached};

fn shape(c: &mut Criterion) {
    let snapshot = fixture::snapshot();
    let path = fixture::fixture_path(&snapshot);
    let session = Session {
        context: Context {
            snapshot: &snapshot,
            search_path: Some(&path),
            has_temp_objects: false,
        },
        standard_conforming_strings: true,
    };
    let texts: Vec<String> = (0..4096)
        .map(|i| {
            format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {}",
                10_000 + i * 37
            )
        })
        .collect();
    let analyzer = Analyzer::new(1024);
    analyzer.analyze(&texts[0], &session);
    assert_eq!(
        analyzer.analyze(&texts[1], &session).path,
        AnalysisPath::Normalized
    );

    let mut i = 0;
    c.bench_function("known shape, new literal (scanner path)", |b| {
        b.iter(|| {
            i = (i + 1) % texts.len();
            black_box(analyzer.analyze(black_box(&texts[i]), &session))
        })
    });
    c.bench_function("known text (exact-text path)", |b| {
        b.iter(|| black_box(analyzer.analyze(black_box(&texts[0]), &session)))
    });
    c.bench_function("pg_query::parse (for comparison)", |b| {
        b.iter(|| black_box(pg_query::parse(black_box(&texts[7]), 0)))
    });
    c.bench_function("full analysis without caches", |b| {
        b.iter(|| black_box(analyze_uncached(black_box(&texts[7]), &session)))
    });
    c.bench_function("pg_query::scan_tokens (for comparison)", |b| {
        b.iter(|| black_box(pg_query::scan_tokens(black_box(&texts[7]))))
    });
}

criterion_group!(benches, shape);
criterion_main!(benches);
