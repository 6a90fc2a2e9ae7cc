//! The scanner key and the analyzer's caches.

use super::*;
use crate::sql::normalize::{LiteralClass, scan};
use crate::sql::{AnalysisPath, Analyzer, ParamValue};

fn key(sql: &str) -> Vec<u8> {
    scan(sql, true).unwrap().key
}

#[test]
fn keys_ignore_literal_values_case_and_layout() {
    assert_eq!(
        key("SELECT a FROM t WHERE id = 1"),
        key("select  a\nfrom T where ID=2 -- c")
    );
    assert_eq!(
        key("SELECT a FROM t WHERE s = 'x'"),
        key("SELECT a FROM t WHERE s = 'it''s'")
    );
    assert_eq!(
        key("SELECT a FROM t WHERE n = 1.5"),
        key("SELECT a FROM t WHERE n = 2e9")
    );
}

#[test]
fn keys_keep_what_changes_the_parse() {
    let base = key("SELECT a FROM t WHERE id = 1");
    for other in [
        "SELECT a FROM t WHERE id = '1'",
        "SELECT a FROM t WHERE id = 1.0",
        "SELECT a FROM t WHERE id = 3000000000",
        "SELECT a FROM t WHERE id = -1",
        "SELECT a FROM \"T\" WHERE id = 1",
        "SELECT a FROM t WHERE id = $1",
        "SELECT a FROM t WHERE id = 0x1",
        "SELECT a FROM t WHERE id = 1_0",
        "SELECT a FROM t WHERE id > 1",
    ] {
        assert_ne!(key(other), base, "{other}");
    }
    // Unusual string forms keep their text: they only ever match themselves.
    assert_ne!(
        key("SELECT 1 WHERE a = E'x'"),
        key("SELECT 1 WHERE a = E'y'")
    );
    assert_ne!(
        key("SELECT 1 WHERE a = $$x$$"),
        key("SELECT 1 WHERE a = $$y$$")
    );
    assert_ne!(
        key("SELECT 1 WHERE a = U&'x'"),
        key("SELECT 1 WHERE a = U&'y'")
    );
    assert_ne!(
        key("SELECT 1 WHERE a = 'x'\n'y'"),
        key("SELECT 1 WHERE a = 'x'\n'z'")
    );
}

#[test]
fn literal_classes() {
    let s = scan("SELECT 1, 1.5, 'x', 0x1F, E'y', 99999999999", true).unwrap();
    let classes: Vec<Option<LiteralClass>> = s.tokens.iter().map(|t| t.literal).collect();
    assert_eq!(
        classes,
        vec![
            None,
            Some(LiteralClass::Int),
            None,
            Some(LiteralClass::Float),
            None,
            Some(LiteralClass::Str),
            None,
            None,
            None,
            None,
            None,
            Some(LiteralClass::Float),
        ]
    );
}

#[test]
fn backslashes_without_standard_strings_take_the_full_parse() {
    assert!(scan(r"SELECT 'a\'b'", false).is_none());
    assert!(scan("SELECT 'ab'", false).is_some());
    assert!(scan("   \n\t", true).is_none());
    assert!(scan("", true).is_none());
    assert!(scan("SELECT 'unterminated", true).is_none());
}

#[test]
fn paths_taken() {
    let fx = Fx::new();
    let s = fx.session();
    let a = Analyzer::new(64);
    let first = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1", &s);
    assert_eq!(first.path, AnalysisPath::Parsed);
    let same = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1", &s);
    assert_eq!(same.path, AnalysisPath::ExactText);
    let other = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 77", &s);
    assert_eq!(other.path, AnalysisPath::Normalized);
    let Verdict::Cacheable(c) = other.verdict else {
        panic!()
    };
    assert_eq!(c.params.as_ref(), [ParamValue::Int4(77)]);
    // A unary minus folded into the constant.
    let neg = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = -5", &s);
    assert_eq!(neg.path, AnalysisPath::Parsed);
    let neg2 = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = -6", &s);
    assert_eq!(neg2.path, AnalysisPath::Normalized);
    let Verdict::Cacheable(c) = neg2.verdict else {
        panic!()
    };
    assert_eq!(c.params.as_ref(), [ParamValue::Int4(-6)]);
    // An integer that now needs int8 is a different shape: full parse.
    let big = a.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1.0", &s);
    assert_eq!(big.path, AnalysisPath::Parsed);
    let big2 = a.analyze(
        "SELECT abalance FROM pgbench_accounts WHERE aid = 99999999999",
        &s,
    );
    assert_ne!(big2.path, AnalysisPath::Normalized);
}

#[test]
fn fixed_literals_must_match() {
    let fx = Fx::new();
    let s = fx.session();
    let a = Analyzer::new(64);
    a.analyze("SELECT 1 AS one FROM users WHERE id = 5", &s);
    let same_target = a.analyze("SELECT 1 AS one FROM users WHERE id = 6", &s);
    assert_eq!(same_target.path, AnalysisPath::Normalized);
    let other_target = a.analyze("SELECT 2 AS one FROM users WHERE id = 6", &s);
    assert_eq!(other_target.path, AnalysisPath::Parsed);
    assert_eq!(
        other_target.verdict,
        fx.verdict("SELECT 2 AS one FROM users WHERE id = 6")
    );
}

#[test]
fn verdicts_follow_the_session() {
    let fx = Fx::new();
    let app = Fx::new().with_path("app");
    let public = Fx::new().with_path("public");
    let a = Analyzer::new(64);
    let sql = "SELECT * FROM settings WHERE key = 'k'";
    let x = a.analyze(sql, &app.session());
    let y = a.analyze(sql, &public.session());
    let z = a.analyze(sql, &fx.session());
    assert_eq!(x.verdict, app.verdict(sql));
    assert_eq!(y.verdict, public.verdict(sql));
    assert_eq!(z.verdict, fx.verdict(sql));
    assert_ne!(x.verdict, y.verdict);
    assert_eq!(
        z.verdict.reason().map(|r| r.code()),
        Some("ambiguous_table")
    );
}

#[test]
fn not_cacheable_statements_are_remembered_too() {
    let fx = Fx::new();
    let s = fx.session();
    let a = Analyzer::new(64);
    a.analyze("INSERT INTO users (id) VALUES (1)", &s);
    let again = a.analyze("INSERT INTO users (id) VALUES (1)", &s);
    assert_eq!(again.path, AnalysisPath::ExactText);
    assert_eq!(again.kinds.as_ref(), [crate::sql::StatementKind::Insert]);
}

#[test]
fn long_texts_are_analyzed_but_not_remembered() {
    let fx = Fx::new();
    let s = fx.session();
    let a = Analyzer::new(64);
    let list: Vec<String> = (0..5000).map(|i| i.to_string()).collect();
    let sql = format!("SELECT * FROM users WHERE id IN ({})", list.join(", "));
    assert!(sql.len() > 16 * 1024);
    let first = a.analyze(&sql, &s);
    assert!(first.verdict.is_cacheable());
    assert_eq!(a.analyze(&sql, &s).path, AnalysisPath::Parsed);
}
