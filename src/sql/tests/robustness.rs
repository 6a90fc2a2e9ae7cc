//! Never panic on any input, and the cached paths always agree with the
//! full parse (property tests with a small budget; `fuzz/` runs longer).

use proptest::prelude::*;

use super::corpus;
use super::*;
use crate::sql::Analyzer;

const CASES: u32 = 192;

fn check_agrees(fx: &Fx, analyzer: &Analyzer, sql: &str) {
    let full = fx.analyze(sql);
    let cached = analyzer.analyze(sql, &fx.session());
    assert_eq!(
        cached.verdict, full.verdict,
        "{sql:?} via {:?}",
        cached.path
    );
    assert_eq!(cached.kinds, full.kinds, "{sql:?}");
}

/// Fragments that exercise the lexer's corners when spliced into statements.
const FRAGMENTS: &[&str] = &[
    "'",
    "''",
    "\"",
    "$$",
    "$a$",
    "E'\\'",
    "U&'",
    "--",
    "/*",
    "*/",
    "\n",
    ";",
    "-",
    "- -",
    "(",
    ")",
    "::",
    "1e",
    ".5",
    "0x",
    "_",
    "$1",
    "$0",
    "\\",
    "\u{0}",
    "é",
    "日本",
    "NULL",
    "WHERE",
    "AND 1=1",
    "ORDER BY 1",
    "LIMIT",
    "FOR UPDATE",
    "UNION SELECT 1",
    "(SELECT 1)",
    "'x'::date",
    "ARRAY[",
    "]",
    "OVER ()",
    "COLLATE \"C\"",
];

fn mutate(base: &str, ops: &[(u8, usize, usize)]) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for &(kind, a, b) in ops {
        let len = s.len().max(1);
        let (i, j) = (a % len, b % len);
        let (lo, hi) = (i.min(j), i.max(j));
        match kind % 4 {
            0 if !s.is_empty() => {
                s.drain(lo..hi.min(s.len()));
            }
            1 => {
                let frag: Vec<char> = FRAGMENTS[b % FRAGMENTS.len()].chars().collect();
                let at = lo.min(s.len());
                s.splice(at..at, frag);
            }
            2 if !s.is_empty() => {
                let piece: Vec<char> = s[lo..hi].to_vec();
                let at = hi.min(s.len());
                s.splice(at..at, piece);
            }
            _ if !s.is_empty() && hi < s.len() => s.swap(lo, hi),
            _ => {}
        }
    }
    s.into_iter().collect()
}

fn corpus_sql() -> Vec<String> {
    corpus::load().into_iter().map(|c| c.sql).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(sql in any::<String>()) {
        let fx = Fx::new();
        let analyzer = Analyzer::new(64);
        check_agrees(&fx, &analyzer, &sql);
        let _ = crate::sql::parse(&sql, false);
    }

    #[test]
    fn sql_like_text_never_panics(sql in "(SELECT|select|FROM|WHERE|users|id|=|'|\"|\\$1|-|1|2\\.5|\\(|\\)|,|\\*|--|/\\*|\\*/|\n| ){0,40}") {
        let fx = Fx::new();
        let analyzer = Analyzer::new(64);
        check_agrees(&fx, &analyzer, &sql);
        check_agrees(&fx, &analyzer, &sql);
    }

    #[test]
    fn mutated_corpus_statements_never_panic(
        pick in any::<usize>(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..6),
    ) {
        let all = corpus_sql();
        let base = &all[pick % all.len()];
        let sql = mutate(base, &ops);
        let fx = Fx::new();
        let analyzer = Analyzer::new(64);
        // Learn the original's shape first, so the mutant may hit its key.
        check_agrees(&fx, &analyzer, base);
        check_agrees(&fx, &analyzer, &sql);
    }

    /// Generated statements with literals in every lexical form: the
    /// normalized path returns exactly what the full parse does.
    #[test]
    fn normalized_path_agrees_with_full_parse(
        table in prop::sample::select(vec![
            ("users", "id"), ("users", "sign_in_count"), ("users", "email"), ("product", "price"),
            ("product", "weight"), ("pgbench_accounts", "aid"), ("blog_post", "created"),
        ]),
        op in prop::sample::select(vec!["=", "<>", "<", ">=", "!="]),
        literals in proptest::collection::vec(
            prop_oneof![
                any::<i32>().prop_map(|i| i.to_string()),
                any::<i64>().prop_map(|i| i.to_string()),
                (any::<u32>(), 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
                any::<u16>().prop_map(|i| format!("- {i}")),
                any::<u16>().prop_map(|i| format!("-{i}.5")),
                "[a-z' ]{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
                any::<u8>().prop_map(|i| format!("{i}e2")),
                Just("1_000".to_owned()),
                Just("0x1F".to_owned()),
                Just("E'x'".to_owned()),
                Just("$$x$$".to_owned()),
            ],
            1..4,
        ),
        comment in prop::sample::select(vec!["", " /* c */", " -- c\n"]),
        limit in proptest::option::of(0u16..500),
    ) {
        let (t, c) = table;
        let mut sql = format!("SELECT * FROM {t} WHERE{comment} {c} {op} {}", literals[0]);
        for l in &literals[1..] {
            sql.push_str(&format!(" AND {c} {op} {l}"));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let fx = Fx::new();
        let analyzer = Analyzer::new(64);
        check_agrees(&fx, &analyzer, &sql);
        // A sibling with other values goes through the key learned above.
        if let Some(variant) = corpus::literal_variant(&sql, 3) {
            check_agrees(&fx, &analyzer, &variant);
        }
        check_agrees(&fx, &analyzer, &sql);
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let fx = Fx::new();
    // Parentheses make no nodes: this is `id = 1`.
    let parens = format!(
        "SELECT * FROM users WHERE id = {}1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert_eq!(
        fx.verdict(&parens),
        fx.verdict("SELECT * FROM users WHERE id = 1")
    );
    // Real nesting beyond what the protobuf decoder accepts is not cacheable.
    let deep_not = format!("SELECT * FROM users WHERE {} admin", "NOT ".repeat(3000));
    assert!(!fx.verdict(&deep_not).is_cacheable());
    let long_sum = format!("SELECT * FROM users WHERE id = 1{}", " + 1".repeat(5000));
    assert!(!fx.verdict(&long_sum).is_cacheable());
    let analyzer = Analyzer::new(64);
    check_agrees(&fx, &analyzer, &long_sum);
}
