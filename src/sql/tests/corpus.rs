//! The SELECT corpus in `tests/corpus/*.corpus` (format in its README):
//! expected verdicts, reasons, tables and lifted parameters, plus agreement
//! of the cached paths with the full parse on literal variants.

use std::path::{Path, PathBuf};

use pg_query::protobuf::Token;

use super::*;
use crate::sql::{AnalysisPath, Analyzer, ParamValue};

#[derive(Debug)]
enum Expect {
    Cacheable {
        tables: Vec<String>,
        params: Vec<ParamValue>,
    },
    Reason(String),
}

#[derive(Debug)]
pub(super) struct Case {
    pub place: String,
    pub sql: String,
    expect: Expect,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `int4 5, text 'a, b', numeric 1.5`
fn parse_params(s: &str) -> Result<Vec<ParamValue>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (ty, after) = rest
            .split_once(' ')
            .ok_or_else(|| format!("bad parameter list: {s}"))?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('\'') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if quoted[i + 1..].starts_with('\'') {
                        v.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    v.push(c);
                }
            }
            let end = end.ok_or_else(|| format!("unterminated string in {s}"))?;
            (v, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        out.push(match ty {
            "int4" => ParamValue::Int4(value.parse().map_err(|e| format!("{value}: {e}"))?),
            "int8" => ParamValue::Int8(value.parse().map_err(|e| format!("{value}: {e}"))?),
            "numeric" => ParamValue::Numeric(value),
            "text" => ParamValue::Text(value),
            other => return Err(format!("unknown parameter type {other}")),
        });
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

fn parse_expect(line: &str) -> Result<Expect, String> {
    let line = line.trim();
    let Some(rest) = line.strip_prefix("cacheable") else {
        return Ok(Expect::Reason(line.to_owned()));
    };
    let rest = rest.trim();
    let (tables, rest) = rest
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .ok_or_else(|| format!("expected [tables] in {line}"))?;
    let params = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected (params) in {line}"))?;
    Ok(Expect::Cacheable {
        tables: tables
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        params: parse_params(params)?,
    })
}

pub(super) fn load() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "corpus"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut sql: Vec<&str> = Vec::new();
        let mut first_line = 0;
        for (i, line) in text.lines().enumerate() {
            if let Some(expect) = line.strip_prefix("->") {
                let place = format!("{name}:{}", first_line + 1);
                let expect = parse_expect(expect).unwrap_or_else(|e| panic!("{place}: {e}"));
                cases.push(Case {
                    place,
                    sql: sql.join("\n"),
                    expect,
                });
                sql.clear();
            } else if line.starts_with('#') && sql.is_empty() {
                continue;
            } else {
                if sql.is_empty() {
                    first_line = i;
                }
                sql.push(line);
            }
        }
        assert!(
            sql.iter().all(|l| l.trim().is_empty()),
            "{name}: statement without expectation at the end"
        );
    }
    cases
}

fn qualified(fx: &Fx, oid: crate::catalog::Oid) -> String {
    fx.snapshot
        .table(oid)
        .map_or_else(|| oid.to_string(), |t| fx.snapshot.qualified_table_name(t))
}

fn check_case(fx: &Fx, case: &Case) -> Option<String> {
    let verdict = fx.verdict(&case.sql);
    match (&case.expect, &verdict) {
        (Expect::Reason(code), Verdict::NotCacheable(r)) if r.code() == code => None,
        (Expect::Cacheable { tables, params }, Verdict::Cacheable(c)) => {
            let got_tables: Vec<String> =
                c.shape.tables.iter().map(|t| qualified(fx, *t)).collect();
            if &got_tables != tables {
                return Some(format!("tables {got_tables:?}, expected {tables:?}"));
            }
            if c.params.as_ref() != params.as_slice() {
                return Some(format!("params {:?}, expected {params:?}", c.params));
            }
            None
        }
        (_, Verdict::NotCacheable(r)) => Some(format!(
            "not cacheable: {} ({}), expected {:?}",
            r.code(),
            r,
            case.expect
        )),
        (_, Verdict::Cacheable(c)) => Some(format!(
            "cacheable {:?} {:?}, expected {:?}",
            c.shape
                .tables
                .iter()
                .map(|t| qualified(fx, *t))
                .collect::<Vec<_>>(),
            c.params,
            case.expect
        )),
    }
}

#[test]
fn corpus_verdicts() {
    let fx = Fx::new();
    let cases = load();
    let selects = cases
        .iter()
        .filter(|c| {
            let s = c.sql.trim_start().to_ascii_lowercase();
            s.contains("select") || s.starts_with("table")
        })
        .count();
    assert!(
        selects >= 300,
        "the corpus holds {selects} SELECT statements, want at least 300"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(&fx, c).map(|f| format!("{}: {}\n    {f}", c.place, c.sql)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `sql` with every plain integer literal changed and every plain string
/// literal extended, or `None` when there is nothing to change.
pub(super) fn literal_variant(sql: &str, salt: u32) -> Option<String> {
    if crate::sql::normalize::has_no_tokens(sql) {
        return None;
    }
    let tokens = pg_query::scan_tokens(sql).ok()?;
    let mut out = String::with_capacity(sql.len() + 8);
    let mut last = 0;
    let mut changed = false;
    for t in tokens {
        let (s, e) = (t.start as usize, t.end as usize);
        let text = &sql[s..e];
        let replacement =
            if t.token == Token::Iconst as i32 && text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse::<i32>()
                    .ok()
                    .map(|v| (v % 1_000_000 + 1 + salt as i32).to_string())
            } else if t.token == Token::Sconst as i32
                && text.starts_with('\'')
                && text.ends_with('\'')
                && !text.contains('\n')
            {
                Some(format!("'{}v{salt}'", &text[1..text.len() - 1]))
            } else {
                None
            };
        if let Some(r) = replacement {
            out.push_str(&sql[last..s]);
            out.push_str(&r);
            last = e;
            changed = true;
        }
    }
    out.push_str(&sql[last..]);
    changed.then_some(out)
}

#[test]
fn corpus_cached_paths_agree_with_full_parse() {
    let fx = Fx::new();
    let analyzer = Analyzer::new(4096);
    let session = fx.session();
    let mut normalized_hits = 0;
    let mut failures = Vec::new();
    for case in load() {
        let mut texts = vec![case.sql.clone(), case.sql.clone()];
        texts.extend((1..=2).filter_map(|salt| literal_variant(&case.sql, salt)));
        for text in texts {
            let full = fx.analyze(&text);
            let cached = analyzer.analyze(&text, &session);
            if cached.path == AnalysisPath::Normalized {
                normalized_hits += 1;
            }
            if cached.verdict != full.verdict || cached.kinds != full.kinds {
                failures.push(format!(
                    "{}: {text}\n    cached ({:?}): {:?}\n    full: {:?}",
                    case.place, cached.path, cached.verdict, full.verdict
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        normalized_hits > 100,
        "only {normalized_hits} variants took the normalized path"
    );
}
