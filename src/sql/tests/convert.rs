//! The converter: SQL in, AST (or kind) out.

use crate::sql::ast::*;
use crate::sql::kind::{SetStatement, SetValue, StatementKind, TransactionKind};
use crate::sql::parse;

fn one(sql: &str) -> Statement {
    let mut s = parse(sql, true).unwrap();
    assert_eq!(s.len(), 1, "{sql}");
    s.remove(0)
}

fn query(sql: &str) -> SqlQuery {
    match one(sql) {
        Statement::Query(q) => *q,
        other => panic!("{sql}: not a query: {other:?}"),
    }
}

fn select(sql: &str) -> Select {
    match query(sql).body {
        SetExpr::Select(s) => *s,
        other => panic!("{sql}: {other:?}"),
    }
}

fn col(q: &[&str], name: &str) -> Expr {
    Expr::Column {
        qualifier: q.iter().map(|s| (*s).to_owned()).collect(),
        name: name.to_owned(),
    }
}

fn bin(op: &str, l: Expr, r: Expr) -> Expr {
    Expr::Binary {
        op: OperatorName::bare(op),
        left: Box::new(l),
        right: Box::new(r),
    }
}

fn int(i: i32) -> Expr {
    Expr::Literal(Literal::Integer(i))
}

fn string(s: &str) -> Expr {
    Expr::Literal(Literal::String(s.to_owned()))
}

#[test]
fn point_select() {
    let s = select("SELECT abalance FROM pgbench_accounts WHERE aid = 12345");
    assert_eq!(s.distinct, Distinct::None);
    assert_eq!(
        s.targets,
        vec![SelectItem::Expr {
            expr: col(&[], "abalance"),
            alias: None
        }]
    );
    assert_eq!(
        s.from,
        vec![TableRef::Table {
            name: ObjectName::bare("pgbench_accounts"),
            alias: None,
            only: false
        }]
    );
    assert_eq!(s.selection, Some(bin("=", col(&[], "aid"), int(12345))));
}

#[test]
fn identifiers_fold_unless_quoted() {
    let s = select(r#"SELECT "Id", Name FROM "Public"."Users" AS U"#);
    assert_eq!(
        s.targets[0],
        SelectItem::Expr {
            expr: col(&[], "Id"),
            alias: None
        }
    );
    assert_eq!(
        s.targets[1],
        SelectItem::Expr {
            expr: col(&[], "name"),
            alias: None
        }
    );
    assert_eq!(
        s.from[0],
        TableRef::Table {
            name: ObjectName {
                schema: Some("Public".into()),
                name: "Users".into()
            },
            alias: Some(TableAlias {
                name: "u".into(),
                columns: vec![]
            }),
            only: false
        }
    );
}

#[test]
fn literals_keep_their_types() {
    let s =
        select("SELECT 1, 2147483648, 1.50, 'x', B'101', X'1F', TRUE, NULL, -7, - 2.5, 1e3 FROM t");
    let lits: Vec<Literal> = s
        .targets
        .iter()
        .map(|t| match t {
            SelectItem::Expr {
                expr: Expr::Literal(l),
                ..
            } => l.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        lits,
        vec![
            Literal::Integer(1),
            Literal::Numeric("2147483648".into()),
            Literal::Numeric("1.50".into()),
            Literal::String("x".into()),
            Literal::BitString("b101".into()),
            Literal::BitString("x1F".into()),
            Literal::Boolean(true),
            Literal::Null,
            Literal::Integer(-7),
            Literal::Numeric("-2.5".into()),
            Literal::Numeric("1e3".into()),
        ]
    );
    let types: Vec<LiteralType> = lits.iter().map(Literal::type_class).collect();
    assert_eq!(
        types,
        vec![
            LiteralType::Int4,
            LiteralType::Int8,
            LiteralType::Numeric,
            LiteralType::Unknown,
            LiteralType::Bit,
            LiteralType::Bit,
            LiteralType::Bool,
            LiteralType::Null,
            LiteralType::Int4,
            LiteralType::Numeric,
            LiteralType::Numeric,
        ]
    );
}

#[test]
fn joins_with_conditions() {
    let s = select(
        "SELECT * FROM a JOIN b ON a.x = b.y AND b.z > 1 LEFT JOIN c USING (k) CROSS JOIN d",
    );
    let TableRef::Join(outer) = &s.from[0] else {
        panic!("{:?}", s.from)
    };
    assert_eq!(outer.kind, JoinKind::Inner);
    assert_eq!(outer.constraint, JoinConstraint::None);
    let TableRef::Join(left) = &outer.left else {
        panic!()
    };
    assert_eq!(left.kind, JoinKind::Left);
    assert_eq!(left.constraint, JoinConstraint::Using(vec!["k".into()]));
    let TableRef::Join(inner) = &left.left else {
        panic!()
    };
    assert_eq!(
        inner.constraint,
        JoinConstraint::On(Expr::And(vec![
            bin("=", col(&["a"], "x"), col(&["b"], "y")),
            bin(">", col(&["b"], "z"), int(1)),
        ]))
    );
}

#[test]
fn order_limit_offset_locking() {
    let q = query(
        "SELECT a FROM t ORDER BY a DESC NULLS LAST, b ASC, c NULLS FIRST LIMIT 5 OFFSET $1 FOR UPDATE OF t SKIP LOCKED",
    );
    assert_eq!(
        q.order_by
            .iter()
            .map(|o| (o.direction, o.nulls))
            .collect::<Vec<_>>(),
        vec![
            (SortDirection::Desc, NullsOrder::Last),
            (SortDirection::Asc, NullsOrder::Default),
            (SortDirection::Default, NullsOrder::First),
        ]
    );
    assert_eq!(q.limit, Some(int(5)));
    assert_eq!(q.offset, Some(Expr::Param(1)));
    assert_eq!(
        q.locking,
        vec![Locking {
            strength: LockStrength::Update,
            tables: vec![ObjectName::bare("t")],
            wait: LockWait::SkipLocked
        }]
    );
    assert_eq!(query("SELECT a FROM t LIMIT ALL").limit, None);
    let ties = query("SELECT a FROM t ORDER BY a FETCH FIRST 3 ROWS WITH TIES");
    assert!(ties.limit_with_ties);
    assert_eq!(ties.limit, Some(int(3)));
}

#[test]
fn predicates() {
    let s = select(
        "SELECT 1 FROM t WHERE a IN (1, 2) AND b NOT BETWEEN 1 AND 2 AND c IS NOT NULL \
         AND d IS DISTINCT FROM 3 AND e LIKE 'x%' AND f = ANY($1) AND NOT g AND h IS FALSE",
    );
    let Some(Expr::And(parts)) = s.selection else {
        panic!()
    };
    assert_eq!(
        parts[0],
        Expr::InList {
            expr: Box::new(col(&[], "a")),
            list: vec![int(1), int(2)],
            negated: false
        }
    );
    assert!(matches!(
        parts[1],
        Expr::Between {
            negated: true,
            symmetric: false,
            ..
        }
    ));
    assert_eq!(
        parts[2],
        Expr::IsNull {
            expr: Box::new(col(&[], "c")),
            negated: true
        }
    );
    assert!(matches!(
        parts[3],
        Expr::IsDistinctFrom { negated: false, .. }
    ));
    assert_eq!(parts[4], bin("~~", col(&[], "e"), string("x%")));
    assert!(matches!(&parts[5], Expr::AnyAll { all: false, op, .. } if op.name == "="));
    assert_eq!(parts[6], Expr::Not(Box::new(col(&[], "g"))));
    assert!(matches!(
        parts[7],
        Expr::IsBool {
            test: BoolTest::IsFalse,
            ..
        }
    ));
}

#[test]
fn functions_casts_and_sub_selects() {
    let s = select(
        "SELECT count(*), count(DISTINCT a), lower(b)::varchar(10), CAST(c AS int[]), \
         (SELECT 1), EXISTS (SELECT 1), CURRENT_DATE, COALESCE(a, b), CASE WHEN a THEN 1 END FROM t",
    );
    let exprs: Vec<&Expr> = s
        .targets
        .iter()
        .map(|t| match t {
            SelectItem::Expr { expr, .. } => expr,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        matches!(exprs[0], Expr::Function(f) if f.star && f.args.is_empty() && f.name.name == "count")
    );
    assert!(matches!(exprs[1], Expr::Function(f) if f.distinct));
    let Expr::Cast { ty, .. } = exprs[2] else {
        panic!()
    };
    assert_eq!(
        ty.name,
        ObjectName {
            schema: Some("pg_catalog".into()),
            name: "varchar".into()
        }
    );
    assert_eq!(ty.modifiers, vec![int(10)]);
    let Expr::Cast { ty, .. } = exprs[3] else {
        panic!()
    };
    assert_eq!((ty.name.name.as_str(), ty.array_dims), ("int4", 1));
    assert!(matches!(
        exprs[4],
        Expr::Subquery {
            kind: SubqueryKind::Scalar,
            ..
        }
    ));
    assert!(matches!(
        exprs[5],
        Expr::Subquery {
            kind: SubqueryKind::Exists,
            ..
        }
    ));
    assert_eq!(*exprs[6], Expr::SqlValue(SqlValueFunction::CurrentDate));
    assert!(matches!(exprs[7], Expr::Coalesce(v) if v.len() == 2));
    assert!(matches!(exprs[8], Expr::Case { operand: None, .. }));
}

#[test]
fn distinct_group_having_with_union() {
    let s = select("SELECT DISTINCT ON (a) a, count(*) FROM t GROUP BY a HAVING count(*) > 1");
    assert_eq!(s.distinct, Distinct::On(vec![col(&[], "a")]));
    assert_eq!(s.group_by, vec![col(&[], "a")]);
    assert!(s.having.is_some());
    assert_eq!(select("SELECT DISTINCT a FROM t").distinct, Distinct::All);
    let q = query("WITH x AS (SELECT 1) SELECT * FROM x UNION ALL SELECT 2 ORDER BY 1");
    assert!(q.with.is_some());
    assert!(matches!(
        q.body,
        SetExpr::SetOperation {
            op: SetOperator::Union,
            all: true,
            ..
        }
    ));
    assert_eq!(q.order_by.len(), 1);
    assert!(matches!(query("VALUES (1), (2)").body, SetExpr::Values(v) if v.len() == 2));
}

#[test]
fn unsupported_constructs_are_named() {
    for (sql, construct) in [
        (
            "SELECT row_number() OVER () FROM t",
            "window functions (OVER)",
        ),
        ("SELECT (c).f FROM t", "field selection"),
        ("SELECT c[1].f FROM t", "field selection"),
        ("SELECT * FROM generate_series(1, 2)", "functions in FROM"),
        (
            "SELECT a FROM t GROUP BY CUBE (a)",
            "GROUPING SETS, ROLLUP or CUBE",
        ),
        ("SELECT f(a => 1) FROM t", "named function arguments"),
        ("SELECT * FROM db.s.t", "database-qualified names"),
    ] {
        match one(sql) {
            Statement::Unsupported { kind, construct: c } => {
                assert_eq!(kind, StatementKind::Select, "{sql}");
                assert_eq!(c, construct, "{sql}");
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
}

#[test]
fn array_subscripts() {
    let SelectItem::Expr { expr, .. } = &select("SELECT a[1][$1], a[2:], a[:n] FROM t").targets[0]
    else {
        panic!()
    };
    assert_eq!(
        *expr,
        Expr::Subscript {
            expr: Box::new(col(&[], "a")),
            indices: vec![(None, Some(int(1))), (None, Some(Expr::Param(1)))],
            slice: false,
        }
    );
    let targets = select("SELECT a[2:], a[:n] FROM t").targets;
    let SelectItem::Expr { expr: open_end, .. } = &targets[0] else {
        panic!()
    };
    assert_eq!(
        *open_end,
        Expr::Subscript {
            expr: Box::new(col(&[], "a")),
            indices: vec![(Some(int(2)), None)],
            slice: true,
        }
    );
    let SelectItem::Expr {
        expr: open_start, ..
    } = &targets[1]
    else {
        panic!()
    };
    assert_eq!(
        *open_start,
        Expr::Subscript {
            expr: Box::new(col(&[], "a")),
            indices: vec![(None, Some(col(&[], "n")))],
            slice: true,
        }
    );
}

#[test]
fn statement_kinds() {
    use StatementKind as K;
    let set = |name: &str, values: &[&str], local: bool| {
        K::Set(SetStatement {
            name: name.into(),
            value: SetValue::Values(values.iter().map(|s| (*s).to_owned()).collect()),
            local,
        })
    };
    for (sql, kind) in [
        ("INSERT INTO t VALUES (1)", K::Insert),
        ("UPDATE t SET a = 1", K::Update),
        ("DELETE FROM t", K::Delete),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            K::Merge,
        ),
        ("TRUNCATE t", K::Truncate),
        ("SELECT * INTO u FROM t", K::SelectInto { temporary: false }),
        (
            "SELECT * INTO TEMP u FROM t",
            K::SelectInto { temporary: true },
        ),
        (
            "CREATE TABLE u AS SELECT 1",
            K::SelectInto { temporary: false },
        ),
        (
            "CREATE TEMP TABLE u AS SELECT 1",
            K::SelectInto { temporary: true },
        ),
        (
            "CREATE TEMPORARY TABLE u (a int)",
            K::Ddl("CREATE TEMPORARY TABLE"),
        ),
        (
            "CREATE TABLE pg_temp.u (a int)",
            K::Ddl("CREATE TEMPORARY TABLE"),
        ),
        (
            "CREATE TEMP VIEW v AS SELECT 1",
            K::Ddl("CREATE TEMPORARY VIEW"),
        ),
        (
            "CREATE TEMP SEQUENCE s",
            K::Ddl("CREATE TEMPORARY SEQUENCE"),
        ),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            K::SelectWithWrites,
        ),
        ("CREATE TABLE t (a int)", K::Ddl("CREATE TABLE")),
        ("ALTER TABLE t ADD COLUMN b int", K::Ddl("ALTER TABLE")),
        ("DROP TABLE t", K::Ddl("DROP")),
        ("CREATE INDEX ON t (a)", K::Ddl("CREATE INDEX")),
        ("BEGIN", K::Transaction(TransactionKind::Begin)),
        (
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            K::Transaction(TransactionKind::Begin),
        ),
        ("COMMIT", K::Transaction(TransactionKind::Commit)),
        ("ROLLBACK", K::Transaction(TransactionKind::Rollback)),
        ("SAVEPOINT s", K::Transaction(TransactionKind::Savepoint)),
        (
            "ROLLBACK TO SAVEPOINT s",
            K::Transaction(TransactionKind::RollbackToSavepoint),
        ),
        ("RELEASE s", K::Transaction(TransactionKind::Release)),
        (
            "PREPARE TRANSACTION 'x'",
            K::Transaction(TransactionKind::PrepareTransaction),
        ),
        (
            "SET search_path TO app, \"My Schema\", public",
            set("search_path", &["app", "My Schema", "public"], false),
        ),
        (
            "SET LOCAL search_path = 'a, b'",
            set("search_path", &["a, b"], true),
        ),
        ("SET SCHEMA 'app'", set("search_path", &["app"], false)),
        ("SET TIME ZONE 'UTC'", set("timezone", &["UTC"], false)),
        (
            "SET extra_float_digits = 3",
            set("extra_float_digits", &["3"], false),
        ),
        ("SET ROLE admin", set("role", &["admin"], false)),
        (
            "SET SESSION AUTHORIZATION bob",
            set("session_authorization", &["bob"], false),
        ),
        ("RESET search_path", K::Reset(Some("search_path".into()))),
        ("RESET ALL", K::Reset(None)),
        ("SHOW TimeZone", K::Show("timezone".into())),
        ("COPY t FROM STDIN", K::Copy { from: true }),
        ("COPY (SELECT 1) TO STDOUT", K::Copy { from: false }),
        ("LISTEN ch", K::Listen),
        ("UNLISTEN *", K::Unlisten),
        ("NOTIFY ch, 'x'", K::Notify),
        ("PREPARE p AS SELECT 1", K::Prepare),
        ("EXECUTE p", K::Execute),
        ("DEALLOCATE ALL", K::Deallocate { name: None }),
        (
            "DEALLOCATE PREPARE \"S_1\"",
            K::Deallocate {
                name: Some("S_1".into()),
            },
        ),
        (
            "deallocate Touch",
            K::Deallocate {
                name: Some("touch".into()),
            },
        ),
        ("EXPLAIN SELECT 1", K::Explain),
        (
            "EXPLAIN (ANALYZE) DELETE FROM t",
            K::Utility("EXPLAIN ANALYZE"),
        ),
        ("CALL p()", K::Call),
        ("DO $$ BEGIN END $$", K::Do),
        ("LOCK TABLE t", K::Lock),
        ("DISCARD ALL", K::Discard { all: true }),
        ("DISCARD PLANS", K::Discard { all: false }),
        ("DECLARE c CURSOR FOR SELECT 1", K::Cursor),
        ("FETCH 10 FROM c", K::Cursor),
        ("VACUUM t", K::Utility("VACUUM")),
        ("ANALYZE t", K::Utility("ANALYZE")),
        ("CHECKPOINT", K::Utility("CHECKPOINT")),
    ] {
        assert_eq!(one(sql).kind(), &kind, "{sql}");
    }
    assert!(matches!(
        one("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").kind(),
        K::Set(SetStatement {
            value: SetValue::Other,
            ..
        })
    ));
    assert!(matches!(
        one("SET search_path TO DEFAULT").kind(),
        K::Set(SetStatement {
            value: SetValue::Default,
            ..
        })
    ));
    assert!(K::Insert.writes() && K::Ddl("DROP").writes() && !K::Select.writes());
    for sql in [
        "CREATE TEMP TABLE u (a int)",
        "SELECT 1 INTO TEMP u",
        "CREATE TEMP VIEW v AS SELECT 1",
    ] {
        assert!(one(sql).kind().creates_temp_objects(), "{sql}");
    }
    for sql in [
        "CREATE TABLE u (a int)",
        "SELECT 1 INTO u",
        "CREATE VIEW v AS SELECT 1",
    ] {
        assert!(!one(sql).kind().creates_temp_objects(), "{sql}");
    }
    assert!(K::Copy { from: true }.writes() && !K::Copy { from: false }.writes());
}

#[test]
fn parse_errors_pass_through() {
    let err = parse("SELEC 1", true).unwrap_err();
    assert!(err.contains("syntax error"), "{err}");
}
