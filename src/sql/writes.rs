//! What a forwarded statement may write, so that the cache can drop the
//! results that read it once the write commits.
//!
//! Conservative by construction: [`Writes::Unknown`] (every entry is
//! affected) whenever the targets are not certain — DDL, procedures,
//! `DO`, writable CTEs, statements that name a user-defined volatile
//! function (it may write anything), and whatever is not recognized.
//! Triggers and cascading foreign keys are the caller's concern (it checks
//! the resolved target table).

use std::collections::HashSet;

use pg_query::NodeEnum;
use pg_query::ParserOptions;
use pg_query::protobuf::RangeVar;

use super::ast::ObjectName;
use super::kind::{StatementKind, TransactionKind};

/// What a statement may write: tables as named (not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writes {
    Nothing,
    Tables(Vec<ObjectName>),
    Unknown,
}

impl Writes {
    fn join(self, other: Writes) -> Writes {
        match (self, other) {
            (Writes::Unknown, _) | (_, Writes::Unknown) => Writes::Unknown,
            (Writes::Nothing, w) | (w, Writes::Nothing) => w,
            (Writes::Tables(mut a), Writes::Tables(b)) => {
                a.extend(b);
                Writes::Tables(a)
            }
        }
    }
}

/// Whether `kind` can change data, settings or the catalog as far as the
/// cache is concerned; `None` = decide by parsing.
fn by_kind(kind: &StatementKind) -> Option<Writes> {
    use StatementKind as K;
    Some(match kind {
        K::Select | K::Show(_) | K::Explain | K::Listen | K::Unlisten | K::Notify => {
            Writes::Nothing
        }
        K::Set(_)
        | K::Reset(_)
        | K::Prepare
        | K::Deallocate { .. }
        | K::Discard { .. }
        | K::Lock => Writes::Nothing,
        K::Transaction(t) => match t {
            TransactionKind::CommitPrepared => Writes::Unknown,
            _ => Writes::Nothing,
        },
        K::Insert | K::Update | K::Delete | K::Merge | K::Truncate | K::Copy { .. } => {
            return None;
        }
        _ => Writes::Unknown,
    })
}

/// The tables the statements of `sql` may write. `kinds` are the analyzer's
/// statement kinds for the same text; `user_functions` the lower-cased names
/// of volatile functions outside `pg_catalog` (any text mentioning one may
/// call it). `EXPLAIN` counts as writing nothing only without `ANALYZE`;
/// it is parsed like the rest.
pub fn writes(
    sql: &str,
    kinds: &[StatementKind],
    standard_conforming_strings: bool,
    user_functions: &HashSet<String>,
) -> Writes {
    if kinds.is_empty() {
        // Not parsed: the origin rejects it, but be safe.
        return Writes::Unknown;
    }
    if mentions_any(sql, user_functions) {
        return Writes::Unknown;
    }
    let mut result = Writes::Nothing;
    let mut parse_needed = false;
    for kind in kinds {
        match (kind, by_kind(kind)) {
            (StatementKind::Explain, _) => parse_needed = true,
            (_, Some(w)) => result = result.join(w),
            (_, None) => parse_needed = true,
        }
    }
    if !parse_needed || result == Writes::Unknown {
        return result;
    }
    let options = if standard_conforming_strings {
        ParserOptions::DEFAULT
    } else {
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
    };
    let Ok(parsed) = pg_query::parse(sql, options) else {
        return Writes::Unknown;
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            return Writes::Unknown;
        };
        result = result.join(statement_writes(node));
    }
    result
}

fn statement_writes(node: &NodeEnum) -> Writes {
    let one = |relation: &Option<RangeVar>, with: bool| match relation {
        Some(r) if !with => Writes::Tables(vec![name_of(r)]),
        _ => Writes::Unknown,
    };
    match node {
        NodeEnum::InsertStmt(s) => one(&s.relation, s.with_clause.is_some()),
        NodeEnum::UpdateStmt(s) => one(&s.relation, s.with_clause.is_some()),
        NodeEnum::DeleteStmt(s) => one(&s.relation, s.with_clause.is_some()),
        NodeEnum::MergeStmt(s) => one(&s.relation, s.with_clause.is_some()),
        // `COPY (query) TO`: the query may be a data-modifying statement.
        NodeEnum::CopyStmt(s) if !s.is_from && s.query.is_none() => Writes::Nothing,
        NodeEnum::CopyStmt(s) if !s.is_from => Writes::Unknown,
        NodeEnum::CopyStmt(s) => one(&s.relation, false),
        NodeEnum::TruncateStmt(s) => {
            let mut tables = Vec::new();
            for n in &s.relations {
                match &n.node {
                    Some(NodeEnum::RangeVar(r)) => tables.push(name_of(r)),
                    _ => return Writes::Unknown,
                }
            }
            Writes::Tables(tables)
        }
        NodeEnum::ExplainStmt(s) => {
            let analyze = s.options.iter().any(|o| match &o.node {
                Some(NodeEnum::DefElem(d)) => d.defname.eq_ignore_ascii_case("analyze"),
                _ => true,
            });
            match s.query.as_ref().and_then(|q| q.node.as_ref()) {
                Some(NodeEnum::SelectStmt(_)) if !analyze => Writes::Nothing,
                Some(_) if !analyze => Writes::Nothing,
                _ => Writes::Unknown,
            }
        }
        NodeEnum::SelectStmt(_) => Writes::Nothing,
        _ => Writes::Unknown,
    }
}

fn name_of(r: &RangeVar) -> ObjectName {
    ObjectName {
        schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
        name: r.relname.clone(),
    }
}

/// Whether `sql` contains any of `names` as a whole word, ignoring ASCII
/// case (over-approximates: a column or a string literal with that name
/// counts too).
pub fn mentions_any(sql: &str, names: &HashSet<String>) -> bool {
    if names.is_empty() {
        return false;
    }
    let lower = sql.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
    let mut i = 0;
    while i < bytes.len() {
        if word(bytes[i]) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            if names.contains(&lower[start..i]) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse;

    fn w(sql: &str) -> Writes {
        w_with(sql, &[])
    }

    fn w_with(sql: &str, functions: &[&str]) -> Writes {
        let kinds: Vec<StatementKind> = parse(sql, true)
            .map(|stmts| stmts.iter().map(|s| s.kind().clone()).collect())
            .unwrap_or_default();
        let functions = functions.iter().map(|s| s.to_string()).collect();
        writes(sql, &kinds, true, &functions)
    }

    fn t(schema: Option<&str>, name: &str) -> ObjectName {
        ObjectName {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    #[test]
    fn dml_targets() {
        assert_eq!(
            w("INSERT INTO a VALUES (1)"),
            Writes::Tables(vec![t(None, "a")])
        );
        assert_eq!(
            w("UPDATE s.\"B.c\" SET x = 1 FROM d WHERE d.id = 1"),
            Writes::Tables(vec![t(Some("s"), "B.c")])
        );
        assert_eq!(
            w("DELETE FROM a; INSERT INTO b SELECT * FROM c"),
            Writes::Tables(vec![t(None, "a"), t(None, "b")])
        );
        assert_eq!(
            w("TRUNCATE a, s.b"),
            Writes::Tables(vec![t(None, "a"), t(Some("s"), "b")])
        );
        assert_eq!(w("COPY a FROM STDIN"), Writes::Tables(vec![t(None, "a")]));
        assert_eq!(w("COPY a TO STDOUT"), Writes::Nothing);
        assert_eq!(
            w("COPY (UPDATE a SET x = 1 RETURNING *) TO STDOUT"),
            Writes::Unknown
        );
        assert_eq!(w("DECLARE c CURSOR FOR SELECT f()"), Writes::Unknown);
        assert_eq!(
            w("MERGE INTO a USING b ON a.id = b.id WHEN MATCHED THEN DELETE"),
            Writes::Tables(vec![t(None, "a")])
        );
    }

    #[test]
    fn unknown_targets() {
        assert_eq!(
            w("WITH x AS (DELETE FROM a RETURNING *) SELECT * FROM x"),
            Writes::Unknown
        );
        assert_eq!(
            w("WITH x AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM x"),
            Writes::Unknown
        );
        assert_eq!(w("CALL p()"), Writes::Unknown);
        assert_eq!(w("DO $$ BEGIN END $$"), Writes::Unknown);
        assert_eq!(w("ALTER TABLE a ADD COLUMN z int"), Writes::Unknown);
        assert_eq!(w("COMMIT PREPARED 'x'"), Writes::Unknown);
        assert_eq!(w("EXPLAIN ANALYZE DELETE FROM a"), Writes::Unknown);
        assert_eq!(w("SELEC nonsense"), Writes::Unknown);
        assert_eq!(w_with("SELECT bump(1)", &["bump"]), Writes::Unknown);
        assert_eq!(
            w_with("INSERT INTO a VALUES (Bump(1))", &["bump"]),
            Writes::Unknown
        );
    }

    #[test]
    fn reads_write_nothing() {
        assert_eq!(w("SELECT * FROM a"), Writes::Nothing);
        assert_eq!(w("EXPLAIN SELECT * FROM a"), Writes::Nothing);
        assert_eq!(w("BEGIN"), Writes::Nothing);
        assert_eq!(w("SET search_path = x"), Writes::Nothing);
        assert_eq!(w_with("SELECT bumper FROM a", &["bump"]), Writes::Nothing);
    }
}
