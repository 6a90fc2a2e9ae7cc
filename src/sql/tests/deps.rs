//! What cached statements depend on: rows by key, rows by column value, or
//! every change to a table.

use super::*;
use crate::catalog::Oid;
use crate::sql::deps::{Dependency, KeySource, List, dependencies};

fn deps(fx: &Fx, sql: &str) -> Option<Vec<Dependency>> {
    let c = cacheable(fx, sql);
    dependencies(
        &c.shape,
        |oid| fx.snapshot.tables().find(|t| t.oid == oid),
        |t| fx.snapshot.plain_null_test(t),
    )
}

fn oid(fx: &Fx, name: &str) -> Oid {
    fx.snapshot
        .tables()
        .find(|t| t.name == name)
        .map(|t| t.oid)
        .unwrap()
}

fn row(fx: &Fx, table: &str, parts: &[(KeySource, u32)]) -> Dependency {
    Dependency::Row {
        table: oid(fx, table),
        parts: parts.iter().map(|&(s, t)| (s, Oid(t))).collect(),
    }
}

fn value(fx: &Fx, table: &str, column: &str, source: KeySource, ty: u32) -> Dependency {
    Dependency::Value {
        table: oid(fx, table),
        column: column.to_owned(),
        source,
        type_oid: Oid(ty),
        members: None,
    }
}

/// `dep` (a value dependency) with the table's key at output `positions`.
fn with_members(dep: Dependency, positions: &[(usize, u32)]) -> Dependency {
    let key = Some(positions.iter().map(|&(p, t)| (p, Oid(t))).collect());
    match dep {
        Dependency::Value {
            table,
            column,
            source,
            type_oid,
            ..
        } => Dependency::Value {
            table,
            column,
            source,
            type_oid,
            members: key,
        },
        Dependency::Values {
            table,
            column,
            list,
            type_oid,
            ..
        } => Dependency::Values {
            table,
            column,
            list,
            type_oid,
            members: key,
        },
        other => other,
    }
}

const INT4: u32 = 23;
const INT8: u32 = 20;
const TEXT: u32 = 25;
const VARCHAR: u32 = 1043;
const UUID: u32 = 2950;

#[test]
fn a_point_lookup_depends_on_its_row() {
    let fx = Fx::new();
    assert_eq!(
        deps(&fx, "SELECT * FROM users WHERE id = 5"),
        Some(vec![row(&fx, "users", &[(KeySource::Lifted(0), INT8)])])
    );
    assert_eq!(
        deps(&fx, "SELECT name FROM users WHERE email = $1 AND id = $2"),
        Some(vec![row(&fx, "users", &[(KeySource::Client(2), INT8)])])
    );
}

#[test]
fn one_to_many_joins_depend_on_the_parent_row_and_the_children_by_value() {
    let fx = Fx::new();
    let sql = "SELECT p.title, c.body FROM blog_post p \
               JOIN blog_comment c ON c.post_id = p.id WHERE p.id = $1 ORDER BY c.id";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            row(&fx, "blog_post", &[(KeySource::Client(1), INT8)]),
            value(&fx, "blog_comment", "post_id", KeySource::Client(1), INT8),
        ])
    );
    // Written the other way round, as a comma join, with an aggregate.
    let sql = "SELECT count(*) FROM blog_comment c, blog_post p \
               WHERE 7 = p.id AND p.id = c.post_id";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            value(&fx, "blog_comment", "post_id", KeySource::Lifted(0), INT8),
            row(&fx, "blog_post", &[(KeySource::Lifted(0), INT8)]),
        ])
    );
}

#[test]
fn a_table_joined_by_its_key_to_a_row_read_by_key_depends_on_a_lookup() {
    let fx = Fx::new();
    let sql = "SELECT p.title, u.username FROM blog_post p \
               JOIN auth_user u ON u.id = p.author_id WHERE p.id = $1";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            row(&fx, "blog_post", &[(KeySource::Client(1), INT8)]),
            Dependency::Lookup {
                table: oid(&fx, "auth_user"),
                via: oid(&fx, "blog_post"),
                via_key: vec![("id".to_owned(), KeySource::Client(1), Oid(INT8))],
                columns: vec!["author_id".to_owned()],
            },
        ])
    );
    // Not by its whole key, or not to a row read by key: every change.
    let sql = "SELECT p.title, u.username FROM blog_post p \
               JOIN auth_user u ON u.id = p.author_id WHERE p.slug = $1 AND p.views = 3";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            value(&fx, "blog_post", "slug", KeySource::Client(1), VARCHAR),
            Dependency::Table(oid(&fx, "auth_user")),
        ])
    );
    let sql = "SELECT p.title FROM blog_post p \
               JOIN auth_user u ON u.username = p.slug AND u.id > p.author_id WHERE p.id = 1";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            row(&fx, "blog_post", &[(KeySource::Lifted(0), INT8)]),
            Dependency::Table(oid(&fx, "auth_user")),
        ])
    );
    // Joined by the child's column bound to a value: both narrowed.
    let sql = "SELECT p.id, u.username FROM blog_post p JOIN auth_user u \
               ON u.id = p.author_id WHERE p.author_id = 7 AND p.status = 'open'";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            // p.id is output: the posts read are named by the result.
            with_members(
                value(&fx, "blog_post", "author_id", KeySource::Lifted(0), INT4),
                &[(0, INT8)]
            ),
            row(&fx, "auth_user", &[(KeySource::Lifted(0), INT4)]),
        ])
    );
}

#[test]
fn self_joins_depend_per_alias() {
    let fx = Fx::new();
    let sql = "SELECT a.name, b.name FROM category a JOIN category b \
               ON b.parent_id = a.id WHERE a.id = 3";
    assert_eq!(
        deps(&fx, sql),
        Some(vec![
            row(&fx, "category", &[(KeySource::Lifted(0), INT8)]),
            value(&fx, "category", "parent_id", KeySource::Lifted(0), INT8),
        ])
    );
}

#[test]
fn composite_keys_and_full_identity() {
    let fx = Fx::new();
    assert_eq!(
        deps(
            &fx,
            "SELECT * FROM tpch.partsupp WHERE ps_suppkey = 2 AND ps_partkey = 1"
        ),
        Some(vec![row(
            &fx,
            "partsupp",
            &[(KeySource::Lifted(1), INT4), (KeySource::Lifted(0), INT4)]
        )])
    );
    // Part of the key: the rows with that value.
    assert_eq!(
        deps(&fx, "SELECT * FROM tpch.partsupp WHERE ps_partkey = 1"),
        Some(vec![with_members(
            value(&fx, "partsupp", "ps_partkey", KeySource::Lifted(0), INT4),
            &[(0, INT4), (1, INT4)]
        )])
    );
    // REPLICA IDENTITY FULL: no row naming by key, values are named.
    assert_eq!(
        deps(&fx, "SELECT * FROM events_full WHERE id = 3"),
        Some(vec![value(
            &fx,
            "events_full",
            "id",
            KeySource::Lifted(0),
            INT8
        )])
    );
}

#[test]
fn anything_else_depends_on_every_change() {
    // (`id = 5.0` names a row by a numeric value, which the proxy does not
    // read as a key: that table then depends on every change.)
    let fx = Fx::new();
    for sql in [
        "SELECT * FROM users WHERE email LIKE 'x'",
        "SELECT * FROM users WHERE lower(email) = 'x'",
        "SELECT name FROM users WHERE id > 5",
        "SELECT * FROM users WHERE id > 5 OFFSET 2",
        "SELECT count(*) FROM users WHERE id > 5",
        "SELECT * FROM users WHERE email > 'x'",
        "SELECT * FROM users WHERE id > 5 AND admin",
        "SELECT * FROM users WHERE id BETWEEN SYMMETRIC 5 AND 1",
        "SELECT * FROM users WHERE id NOT IN (1, sign_in_count)",
        "SELECT *, $1::int8 AS k FROM users WHERE id > $1",
        "SELECT * FROM users u LEFT JOIN organizations o \
         ON o.id = u.organization_id WHERE u.id = 1",
        "SELECT * FROM users u JOIN organizations o ON o.id = u.organization_id",
        // `$1` may be typed by its other use (float4): not a key value.
        "SELECT $1::float4 AS k, name FROM users WHERE id = $1",
        "SELECT name FROM users WHERE id = $1 AND sign_in_count < $1",
    ] {
        assert_eq!(deps(&fx, sql), None, "{sql}");
    }
}

#[test]
fn text_and_uuid_columns_name_rows_too() {
    let fx = Fx::new();
    // A text primary key (Prisma's User).
    assert_eq!(
        deps(&fx, "SELECT name FROM \"User\" WHERE id = $1"),
        Some(vec![row(&fx, "User", &[(KeySource::Client(1), TEXT)])])
    );
    // A text foreign key joined to it: the author row by key, the posts by
    // the author's id.
    assert_eq!(
        deps(
            &fx,
            "SELECT p.title FROM \"Post\" p JOIN \"User\" u ON u.id = p.\"authorId\" \
             WHERE u.id = 'cuid1'"
        ),
        Some(vec![
            value(&fx, "Post", "authorId", KeySource::Lifted(0), TEXT),
            row(&fx, "User", &[(KeySource::Lifted(0), TEXT)]),
        ])
    );
    // varchar and uuid columns by value.
    assert_eq!(
        deps(&fx, "SELECT id FROM users WHERE email = 'x'"),
        Some(vec![value(
            &fx,
            "users",
            "email",
            KeySource::Lifted(0),
            VARCHAR
        )])
    );
    assert_eq!(
        deps(&fx, "SELECT id FROM users WHERE uuid = $1"),
        Some(vec![with_members(
            value(&fx, "users", "uuid", KeySource::Client(1), UUID),
            &[(0, INT8)]
        )])
    );
    // A text parameter also used elsewhere may be typed there: not a key.
    assert_eq!(
        deps(&fx, "SELECT $1::char(3) AS c FROM users WHERE email = $1"),
        None
    );
}

#[test]
fn in_lists_name_each_row_or_value() {
    let fx = Fx::new();
    let rows = |sources: Vec<KeySource>| Dependency::Rows {
        table: oid(&fx, "users"),
        list: List::Each(sources),
        type_oid: Oid(INT8),
    };
    assert_eq!(
        deps(&fx, "SELECT name FROM users WHERE id IN ($1, $2, $3)"),
        Some(vec![rows(vec![
            KeySource::Client(1),
            KeySource::Client(2),
            KeySource::Client(3)
        ])])
    );
    // A value list, also through a join equality.
    assert_eq!(
        deps(
            &fx,
            "SELECT p.title, c.body FROM blog_post p JOIN blog_comment c ON c.post_id = p.id \
             WHERE p.id IN ($1, $2)"
        ),
        Some(vec![
            Dependency::Rows {
                table: oid(&fx, "blog_post"),
                list: List::Each(vec![KeySource::Client(1), KeySource::Client(2)]),
                type_oid: Oid(INT8),
            },
            Dependency::Values {
                table: oid(&fx, "blog_comment"),
                column: "post_id".to_owned(),
                list: List::Each(vec![KeySource::Client(1), KeySource::Client(2)]),
                type_oid: Oid(INT8),
                members: None,
            },
        ])
    );
    // Literals are lifted into parameters.
    assert_eq!(
        deps(&fx, "SELECT name FROM users WHERE id IN (1, 2)"),
        Some(vec![rows(vec![KeySource::Lifted(0), KeySource::Lifted(1)])])
    );
    // An equality is narrower than a list.
    assert_eq!(
        deps(
            &fx,
            "SELECT name FROM users WHERE id IN ($1, $2) AND id = $3"
        ),
        Some(vec![row(&fx, "users", &[(KeySource::Client(3), INT8)])])
    );
    // NOT IN, a list with an expression, a parameter also used elsewhere.
    for sql in [
        "SELECT name FROM users WHERE id NOT IN ($1, $2)",
        "SELECT name FROM users WHERE id IN ($1, $2 + 1)",
        "SELECT name FROM users WHERE id IN ($1, $2) AND sign_in_count < $2",
        "SELECT name FROM users WHERE id IN ($1, $2) OR id = 7",
    ] {
        assert_eq!(deps(&fx, sql), None, "{sql}");
    }
}

#[test]
fn any_of_an_array_parameter_names_each_element() {
    let fx = Fx::new();
    assert_eq!(
        deps(&fx, "SELECT name FROM users WHERE id = ANY($1)"),
        Some(vec![Dependency::Rows {
            table: oid(&fx, "users"),
            list: List::Array(KeySource::Client(1)),
            type_oid: Oid(INT8),
        }])
    );
    assert_eq!(
        deps(
            &fx,
            "SELECT id FROM users WHERE email = ANY($1) ORDER BY id"
        ),
        Some(vec![Dependency::Values {
            table: oid(&fx, "users"),
            column: "email".to_owned(),
            list: List::Array(KeySource::Client(1)),
            type_oid: Oid(VARCHAR),
            // Text values: not named by the result (see below).
            members: None,
        }])
    );
    for sql in [
        "SELECT name FROM users WHERE id = ALL($1)",
        "SELECT name FROM users WHERE id <> ANY($1)",
        "SELECT name FROM users WHERE id = ANY($1) AND cardinality($1) > 2",
    ] {
        assert_eq!(deps(&fx, sql), None, "{sql}");
    }
}

#[test]
fn results_that_output_the_key_name_the_rows_they_read() {
    let fx = Fx::new();
    let count = || value(&fx, "users", "sign_in_count", KeySource::Client(1), INT4);
    // The key's position: after other columns, through `*` and `t.*`.
    for (sql, at) in [
        ("SELECT name, id FROM users WHERE sign_in_count = $1", 1),
        (
            "SELECT name, users.id FROM users WHERE sign_in_count = $1 ORDER BY name LIMIT 5",
            1,
        ),
        (
            "SELECT DISTINCT name, id FROM users WHERE sign_in_count = $1",
            1,
        ),
        ("SELECT * FROM users WHERE sign_in_count = $1", 0),
        (
            "SELECT 1 AS one, u.* FROM users u WHERE sign_in_count = $1",
            1,
        ),
    ] {
        assert_eq!(
            deps(&fx, sql),
            Some(vec![with_members(count(), &[(at, INT8)])]),
            "{sql}"
        );
    }
    // An OFFSET can skip rows read; an aggregate, a key not output, an
    // expression of the key, DISTINCT ON: the rows are not named.
    for sql in [
        "SELECT id FROM users WHERE sign_in_count = $1 ORDER BY id OFFSET 2",
        "SELECT count(*) FROM users WHERE sign_in_count = $1",
        "SELECT name FROM users WHERE sign_in_count = $1",
        "SELECT id + 0 AS id FROM users WHERE sign_in_count = $1",
        "SELECT DISTINCT ON (name) id, name FROM users WHERE sign_in_count = $1 ORDER BY name",
    ] {
        assert_eq!(deps(&fx, sql), Some(vec![count()]), "{sql}");
    }
    // A text value can be sent as "unchanged TOAST" (no new value): the
    // result does not stand for the rows read by it.
    assert_eq!(
        deps(&fx, "SELECT * FROM users WHERE email = $1"),
        Some(vec![value(
            &fx,
            "users",
            "email",
            KeySource::Client(1),
            VARCHAR
        )])
    );
}

#[test]
fn whole_where_clauses_of_one_table_become_filters() {
    use crate::sql::filter::{CmpOp, FilterColumn, FilterSpec, Pred};
    let fx = Fx::new();
    let users = oid(&fx, "users");
    let id = FilterColumn {
        name: "id".to_owned(),
        type_oid: Oid(INT8),
    };
    let filter = |sql: &str| match deps(&fx, sql) {
        Some(d) => match d.as_slice() {
            [
                Dependency::Filter {
                    table,
                    filter,
                    members,
                    ..
                },
            ] => {
                assert_eq!(*table, users, "{sql}");
                (filter.clone(), members.clone())
            }
            other => panic!("{sql}: {other:?}"),
        },
        None => panic!("{sql}: no dependencies"),
    };
    let cmp = |column, op, value| Pred::Cmp { column, op, value };
    assert_eq!(
        filter("SELECT * FROM users WHERE id > 5"),
        (
            FilterSpec {
                columns: vec![id.clone()],
                pred: cmp(0, CmpOp::Gt, KeySource::Lifted(0)),
            },
            vec![(0, Oid(INT8))]
        )
    );
    // A value on the left compares the other way round.
    assert_eq!(
        filter("SELECT id, name FROM users WHERE 5 <= id ORDER BY id LIMIT 3").0,
        FilterSpec {
            columns: vec![id.clone()],
            pred: cmp(0, CmpOp::Ge, KeySource::Lifted(0)),
        }
    );
    assert_eq!(
        filter("SELECT * FROM users WHERE id = 1 OR id = 2").0.pred,
        Pred::Or(vec![
            cmp(0, CmpOp::Eq, KeySource::Lifted(0)),
            cmp(0, CmpOp::Eq, KeySource::Lifted(1)),
        ])
    );
    // Any column's NULL test; ranges, lists and NOT of integer columns; the
    // key found anywhere in the output.
    let (spec, members) = filter(
        "SELECT name, id FROM users WHERE deleted_at IS NULL \
         AND sign_in_count NOT BETWEEN $1 AND $2 AND NOT (id IN ($3, 7))",
    );
    assert_eq!(members, vec![(1, Oid(INT8))]);
    assert_eq!(
        spec.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["deleted_at", "sign_in_count", "id"]
    );
    assert_eq!(
        spec.pred,
        Pred::And(vec![
            Pred::IsNull { column: 0 },
            Pred::Not(Box::new(Pred::And(vec![
                cmp(1, CmpOp::Ge, KeySource::Client(1)),
                cmp(1, CmpOp::Le, KeySource::Client(2)),
            ]))),
            Pred::Not(Box::new(Pred::Or(vec![
                cmp(2, CmpOp::Eq, KeySource::Client(3)),
                cmp(2, CmpOp::Eq, KeySource::Lifted(0)),
            ]))),
        ])
    );
    // uuid and text compare by equality only.
    filter("SELECT * FROM users WHERE uuid <> $1 AND email <> 'a@b'");
    filter("SELECT * FROM users WHERE email IS DISTINCT FROM $1");
}

#[test]
fn results_of_plain_columns_in_key_order_have_a_layout() {
    use crate::sql::layout::{LayoutSpec, SortKey};
    let fx = Fx::new();
    let layout = |sql: &str| match deps(&fx, sql).as_deref() {
        Some([Dependency::Filter { layout, .. }]) => layout.clone(),
        other => panic!("{sql}: {other:?}"),
    };
    let asc = |output| SortKey {
        output,
        descending: false,
        nulls_first: false,
    };
    assert_eq!(
        layout(
            "SELECT id, name, sign_in_count FROM users WHERE sign_in_count > $1 ORDER BY id LIMIT $2"
        ),
        Some(LayoutSpec {
            outputs: vec![
                ("id".to_owned(), Oid(INT8)),
                ("name".to_owned(), Oid(VARCHAR)),
                ("sign_in_count".to_owned(), Oid(23)),
            ],
            order: vec![asc(0)],
            limit: Some(KeySource::Client(2)),
        })
    );
    // A lifted LIMIT, a descending order on another integer then the key,
    // an alias of the same column.
    assert_eq!(
        layout(
            "SELECT u.id AS id, sign_in_count FROM users u WHERE id > 5 \
             ORDER BY sign_in_count DESC, u.id LIMIT 10"
        ),
        Some(LayoutSpec {
            outputs: vec![
                ("id".to_owned(), Oid(INT8)),
                ("sign_in_count".to_owned(), Oid(23)),
            ],
            order: vec![
                SortKey {
                    output: 1,
                    descending: true,
                    nulls_first: true,
                },
                asc(0),
            ],
            limit: Some(KeySource::Lifted(1)),
        })
    );
    for sql in [
        // No order, or not a total one.
        "SELECT id, name FROM users WHERE id > 5",
        "SELECT id, sign_in_count FROM users WHERE id > 5 ORDER BY sign_in_count",
        // Text order follows a collation.
        "SELECT id, name FROM users WHERE id > 5 ORDER BY name, id",
        // The order reads a column not output.
        "SELECT name, id FROM users WHERE id > 5 ORDER BY sign_in_count, id",
        // A timestamp's text depends on DateStyle.
        "SELECT * FROM users WHERE id > 5 ORDER BY id",
        "SELECT id, created_at FROM users WHERE id > 5 ORDER BY id",
        // Not a plain column.
        "SELECT id, sign_in_count + 1 FROM users WHERE id > 5 ORDER BY id",
        // `ORDER BY id` is the output named id: sign_in_count.
        "SELECT sign_in_count AS id, id AS n FROM users WHERE id > 5 ORDER BY id",
        "SELECT DISTINCT id, name FROM users WHERE id > 5 ORDER BY id",
    ] {
        assert_eq!(layout(sql), None, "{sql}");
    }
}

#[test]
fn an_anchored_page_kept_in_place_stands_in_for_its_value_dependency() {
    let fx = Fx::new();
    let users = oid(&fx, "users");
    let value = with_members(
        value(&fx, "users", "organization_id", KeySource::Client(1), INT8),
        &[(0, INT8)],
    );
    match deps(
        &fx,
        "SELECT id, name FROM users WHERE organization_id = $1 ORDER BY id LIMIT 20",
    )
    .as_deref()
    {
        Some(
            [
                Dependency::Filter {
                    table,
                    layout: Some(_),
                    instead: Some(instead),
                    ..
                },
            ],
        ) => {
            assert_eq!(*table, users);
            assert_eq!(**instead, value);
        }
        other => panic!("{other:?}"),
    }
    // Not kept in place (a timestamp output, no order, a text anchor):
    // the value dependency as before.
    for sql in [
        "SELECT * FROM users WHERE organization_id = $1 ORDER BY id",
        "SELECT id, name FROM users WHERE organization_id = $1",
    ] {
        assert_eq!(deps(&fx, sql), Some(vec![value.clone()]), "{sql}");
    }
    assert!(matches!(
        deps(&fx, "SELECT id FROM users WHERE email = $1 ORDER BY id").as_deref(),
        Some([Dependency::Value { .. }])
    ));
}
