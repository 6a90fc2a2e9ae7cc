//! Which joins are kept in place (ADR 018): statements analysed against
//! the fixture catalog. Its tables stand in for the usual examples:
//! `blog_post` (articles, `author_id int4`), `users`, `blog_comment`
//! (votes on an article, `post_id int8`), and `purchase_order` →
//! `order_line` → `product` (orders, items, products).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use super::*;
use crate::catalog::{Snapshot, fixture};
use crate::sql::filter::CmpOp;
use crate::sql::{Context, Session, Verdict, analyze_uncached};

const INT4: Oid = Oid(23);
const INT8: Oid = Oid(20);

fn catalog() -> Snapshot {
    fixture::snapshot()
}

/// The spec of `sql`, which must be cacheable.
fn spec_in(snapshot: &Snapshot, sql: &str) -> Option<JoinSpec> {
    let path = fixture::fixture_path(snapshot);
    let session = Session {
        context: Context {
            snapshot,
            search_path: Some(&path),
            has_temp_objects: false,
        },
        standard_conforming_strings: true,
    };
    let shape = match analyze_uncached(sql, &session).verdict {
        Verdict::Cacheable(c) => c.shape,
        Verdict::NotCacheable(r) => panic!("{sql}: not cacheable: {r}"),
    };
    join_spec(
        &shape,
        |oid| snapshot.table(oid),
        |t| snapshot.plain_null_test(t),
    )
}

fn spec(sql: &str) -> Option<JoinSpec> {
    spec_in(&catalog(), sql)
}

fn accepted(sql: &str) -> JoinSpec {
    spec(sql).unwrap_or_else(|| panic!("{sql}: not kept in place"))
}

#[track_caller]
fn refused(sql: &str) {
    assert_eq!(spec(sql), None, "{sql}: kept in place");
}

/// The spec of `sql` (which must be cacheable) with its query changed by
/// `edit`: for statements the analysis would not let through.
fn edited_spec(sql: &str, edit: impl FnOnce(&mut crate::sql::ast::SqlQuery)) -> Option<JoinSpec> {
    let snapshot = catalog();
    let path = fixture::fixture_path(&snapshot);
    let session = Session {
        context: Context {
            snapshot: &snapshot,
            search_path: Some(&path),
            has_temp_objects: false,
        },
        standard_conforming_strings: true,
    };
    let Verdict::Cacheable(c) = analyze_uncached(sql, &session).verdict else {
        panic!("{sql}: not cacheable");
    };
    let mut query = (*c.shape.query).clone();
    edit(&mut query);
    let shape = Shape::new(
        std::sync::Arc::new(query),
        c.shape.client_params,
        c.shape.lifted_types.clone(),
        c.shape.tables.clone(),
        c.shape.maintenance,
        c.shape.aggregates,
    );
    join_spec(
        &shape,
        |oid| snapshot.table(oid),
        |t| snapshot.plain_null_test(t),
    )
}

fn oid(snapshot: &Snapshot, name: &str) -> Oid {
    snapshot.table_in(fixture::PUBLIC, name).unwrap().oid
}

/// Where column `name` is among table `t`'s held columns.
#[track_caller]
fn col(spec: &JoinSpec, t: usize, name: &str) -> usize {
    spec.tables[t]
        .columns
        .iter()
        .position(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not held for table {t}"))
}

/// `(table, column)` of an output, by the column's name.
fn out(spec: &JoinSpec, t: usize, name: &str) -> (usize, usize) {
    (t, col(spec, t, name))
}

/// The statements below that are kept in place; each refusal test changes
/// one of them in one way.
const AUTHOR: &str = "SELECT a.id, a.title, u.name FROM blog_post a \
                      JOIN users u ON u.id = a.author_id WHERE a.id = $1";
const VOTES: &str = "SELECT a.title, v.id, v.body FROM blog_post a \
                     JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY v.id";

#[test]
fn an_article_with_its_author_is_kept_from_both_rows() {
    let snapshot = catalog();
    let s = spec_in(&snapshot, AUTHOR).expect("kept in place");
    assert_eq!(
        s.tables.iter().map(|t| t.oid).collect::<Vec<_>>(),
        [oid(&snapshot, "blog_post"), oid(&snapshot, "users")]
    );
    assert_eq!(s.driving, 0);
    // The author is reached by its key from the article's author_id.
    assert_eq!(
        s.edges,
        [Edge {
            parent: 0,
            parent_column: col(&s, 0, "author_id"),
            child: 1,
            column: col(&s, 1, "id"),
        }]
    );
    assert_eq!(s.tables[0].key, [col(&s, 0, "id")]);
    assert_eq!(s.tables[1].key, [s.edges[0].column]);
    assert_eq!(
        s.outputs,
        [out(&s, 0, "id"), out(&s, 0, "title"), out(&s, 1, "name")]
    );
    assert!(s.extra.is_empty());
    // At most one row each: no order needed.
    assert!(s.order.is_empty());
    assert_eq!(s.limit, None);
    // Held columns keep their types.
    assert_eq!(s.tables[0].columns[col(&s, 0, "author_id")].1, INT4);
    assert_eq!(s.tables[1].columns[col(&s, 1, "id")].1, INT8);
    // The article's filter is its anchor, on the client's $1; the author
    // has no condition of its own.
    assert_eq!(s.tables[0].filter.anchor_column(), Some("id"));
    assert_eq!(
        s.tables[0].filter.pred,
        Pred::And(vec![Pred::Cmp {
            column: 0,
            op: CmpOp::Eq,
            value: KeySource::Client(1),
        }])
    );
    assert!(!s.tables[1].filter.anchored());
    assert!(s.tables[1].filter.columns.is_empty());
}

#[test]
fn the_anchored_table_drives_whatever_the_from_order() {
    let s = accepted(
        "SELECT a.id, a.title, u.name FROM users u \
         JOIN blog_post a ON a.author_id = u.id WHERE a.id = $1",
    );
    assert_eq!(s.driving, 1);
    assert_eq!(
        s.edges,
        [Edge {
            parent: 1,
            parent_column: col(&s, 1, "author_id"),
            child: 0,
            column: col(&s, 0, "id"),
        }]
    );
    assert_eq!(
        s.outputs,
        [out(&s, 1, "id"), out(&s, 1, "title"), out(&s, 0, "name")]
    );
    assert!(s.order.is_empty());
    // Of two anchored tables, the one anchored on its key drives.
    let s = accepted(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.views = $1 AND u.id = $2 ORDER BY a.id",
    );
    assert_eq!(s.driving, 1);
    assert_eq!(
        s.edges,
        [Edge {
            parent: 1,
            parent_column: col(&s, 1, "id"),
            child: 0,
            column: col(&s, 0, "author_id"),
        }]
    );
}

#[test]
fn one_to_many_is_kept_when_ordered_by_the_many_sides_key() {
    let s = accepted(VOTES);
    assert_eq!(s.driving, 0);
    assert_eq!(
        s.edges,
        [Edge {
            parent: 0,
            parent_column: col(&s, 0, "id"),
            child: 1,
            column: col(&s, 1, "post_id"),
        }]
    );
    assert_eq!(
        s.outputs,
        [out(&s, 0, "title"), out(&s, 1, "id"), out(&s, 1, "body")]
    );
    assert_eq!(
        s.order,
        [JoinSort {
            table: 1,
            column: col(&s, 1, "id"),
            descending: false,
            nulls_first: false,
        }]
    );
    // Descending puts NULLs first unless told otherwise; the LIMIT is kept.
    let s = accepted(
        "SELECT a.title, v.id FROM blog_post a JOIN blog_comment v ON v.post_id = a.id \
         WHERE a.id = $1 ORDER BY v.id DESC LIMIT $2",
    );
    assert_eq!(
        s.order,
        [JoinSort {
            table: 1,
            column: col(&s, 1, "id"),
            descending: true,
            nulls_first: true,
        }]
    );
    assert_eq!(s.limit, Some(KeySource::Client(2)));
    let s = accepted(
        "SELECT a.title, v.id FROM blog_post a JOIN blog_comment v ON v.post_id = a.id \
         WHERE a.id = $1 ORDER BY v.id DESC NULLS LAST",
    );
    assert!(s.order[0].descending && !s.order[0].nulls_first);
}

#[test]
fn one_to_many_without_the_many_sides_key_in_order_is_refused() {
    // Several comments per article: their order would be the origin's.
    refused(
        "SELECT a.title, v.id, v.body FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1",
    );
    refused(
        "SELECT a.title, v.id, v.body FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY a.id",
    );
    // Ordered by the many side's key after the article's: kept.
    accepted(
        "SELECT a.title, v.id, v.body FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY a.id, v.id",
    );
}

#[test]
fn a_comma_join_with_where_equalities_is_the_same_join() {
    let comma = accepted(
        "SELECT a.id, a.title, u.name FROM blog_post a, users u \
         WHERE a.author_id = u.id AND a.id = $1",
    );
    assert_eq!(comma, accepted(AUTHOR));
}

#[test]
fn a_three_table_chain_is_reached_parents_first() {
    let snapshot = catalog();
    let sql = "SELECT o.id, i.id, p.name, i.quantity FROM purchase_order o \
               JOIN order_line i ON i.order_id = o.id \
               JOIN product p ON p.id = i.product_id \
               WHERE o.customer_id = $1 ORDER BY o.id, i.id, p.id";
    let s = spec_in(&snapshot, sql).expect("kept in place");
    assert_eq!(
        s.tables.iter().map(|t| t.oid).collect::<Vec<_>>(),
        [
            oid(&snapshot, "purchase_order"),
            oid(&snapshot, "order_line"),
            oid(&snapshot, "product")
        ]
    );
    // Anchored on a column that is not its key.
    assert_eq!(s.driving, 0);
    assert_eq!(s.tables[0].filter.anchor_column(), Some("customer_id"));
    assert_eq!(
        s.edges,
        [
            Edge {
                parent: 0,
                parent_column: col(&s, 0, "id"),
                child: 1,
                column: col(&s, 1, "order_id"),
            },
            Edge {
                parent: 1,
                parent_column: col(&s, 1, "product_id"),
                child: 2,
                column: col(&s, 2, "id"),
            }
        ]
    );
    assert_eq!(
        s.outputs,
        [
            out(&s, 0, "id"),
            out(&s, 1, "id"),
            out(&s, 2, "name"),
            out(&s, 1, "quantity")
        ]
    );
    assert_eq!(
        s.order
            .iter()
            .map(|o| (o.table, o.column))
            .collect::<Vec<_>>(),
        [out(&s, 0, "id"), out(&s, 1, "id"), out(&s, 2, "id")]
    );
}

#[test]
fn a_chain_written_children_first_still_lists_parents_first() {
    let s = accepted(
        "SELECT o.id, i.id, p.name FROM product p \
         JOIN order_line i ON p.id = i.product_id \
         JOIN purchase_order o ON i.order_id = o.id \
         WHERE o.customer_id = $1 ORDER BY o.id, i.id, p.id",
    );
    assert_eq!(s.driving, 2);
    assert_eq!(
        s.edges
            .iter()
            .map(|e| (e.parent, e.child))
            .collect::<Vec<_>>(),
        [(2, 1), (1, 0)]
    );
    // Every edge's parent is the driving table or an earlier edge's child.
    for (k, e) in s.edges.iter().enumerate() {
        assert!(e.parent == s.driving || s.edges[..k].iter().any(|p| p.child == e.parent));
    }
}

/// The product is joined by its key to an order line: it adds one row per
/// line, so the orders' and lines' keys already order the result totally.
#[test]
fn a_chain_ordered_by_the_keys_of_the_many_sides_is_kept() {
    let s = accepted(
        "SELECT o.id, i.id, p.name, i.quantity FROM purchase_order o \
         JOIN order_line i ON i.order_id = o.id \
         JOIN product p ON p.id = i.product_id \
         WHERE o.customer_id = $1 ORDER BY o.id, i.id",
    );
    assert_eq!(s.edges.len(), 2);
    // The product's key is not needed, but a line's is.
    refused(
        "SELECT o.id, i.id, p.name, i.quantity FROM purchase_order o \
         JOIN order_line i ON i.order_id = o.id \
         JOIN product p ON p.id = i.product_id \
         WHERE o.customer_id = $1 ORDER BY o.id, p.id",
    );
    // Articles of one author's view count, each with its author.
    accepted(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.views = $1 ORDER BY a.id",
    );
}

#[test]
fn outer_joins_are_refused() {
    refused(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         LEFT JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    refused(
        "SELECT a.title, v.id, v.body FROM blog_post a \
         LEFT JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY v.id",
    );
}

#[test]
fn distinct_offset_and_aggregates_are_refused() {
    refused(
        "SELECT DISTINCT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    let limited = "SELECT a.title, v.id, v.body FROM blog_post a \
                   JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY v.id LIMIT 4";
    accepted(limited);
    refused(&format!("{limited} OFFSET 2"));
    refused(
        "SELECT a.id, count(v.id) FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 GROUP BY a.id",
    );
    refused(
        "SELECT count(*) FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    // Grouped by plain columns, each table giving one row.
    refused(&format!("{AUTHOR} GROUP BY a.id, a.title, u.name"));
    refused(&format!(
        "{AUTHOR} GROUP BY a.id, a.title, u.name HAVING u.name IS NOT NULL"
    ));
}

#[test]
fn outputs_must_be_plain_columns_of_stable_text_types() {
    refused(
        "SELECT a.id, a.title, lower(u.name) FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    refused(
        "SELECT a.id, a.views + 1 FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    // float8 and timestamps print by the session's settings.
    let product = |column: &str| {
        format!(
            "SELECT i.id, p.{column} FROM order_line i \
             JOIN product p ON p.id = i.product_id WHERE i.id = $1"
        )
    };
    accepted(&product("name"));
    accepted(&product("price"));
    refused(&product("weight"));
    refused(
        "SELECT a.id, a.published_at, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    refused(
        "SELECT a.id, u.created_at FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = $1",
    );
    // A wildcard brings every column, timestamps too.
    refused("SELECT * FROM blog_post a JOIN users u ON u.id = a.author_id WHERE a.id = $1");
    refused("SELECT u.* FROM blog_post a JOIN users u ON u.id = a.author_id WHERE a.id = $1");
}

#[test]
fn wildcards_of_stable_columns_are_kept_even_in_a_self_join() {
    let snapshot = catalog();
    let s = spec_in(
        &snapshot,
        "SELECT * FROM category c JOIN category p ON p.id = c.parent_id WHERE c.id = $1",
    )
    .expect("kept in place");
    let category = oid(&snapshot, "category");
    assert_eq!(s.tables[0].oid, category);
    assert_eq!(s.tables[1].oid, category);
    assert_eq!(
        s.outputs,
        [
            out(&s, 0, "id"),
            out(&s, 0, "name"),
            out(&s, 0, "parent_id"),
            out(&s, 1, "id"),
            out(&s, 1, "name"),
            out(&s, 1, "parent_id")
        ]
    );
    let s = accepted(
        "SELECT p.*, c.name FROM category c JOIN category p ON p.id = c.parent_id WHERE c.id = $1",
    );
    assert_eq!(
        s.outputs,
        [
            out(&s, 1, "id"),
            out(&s, 1, "name"),
            out(&s, 1, "parent_id"),
            out(&s, 0, "name")
        ]
    );
}

#[test]
fn a_condition_across_tables_must_be_a_column_equality() {
    let base = "SELECT a.id, a.title, u.name FROM blog_post a \
                JOIN users u ON u.id = a.author_id WHERE a.id = $1";
    refused(&format!("{base} AND a.views < u.sign_in_count"));
    refused(&format!("{base} AND a.views + 0 = u.sign_in_count"));
    // Another equality of integer columns is tested on each combination.
    let s = accepted(&format!("{base} AND a.views = u.sign_in_count"));
    assert_eq!(
        s.extra,
        [(out(&s, 0, "views"), out(&s, 1, "sign_in_count"))]
    );
    // Equalities of text columns do not join.
    refused(
        "SELECT a.title, v.id FROM blog_post a JOIN blog_comment v ON v.author_name = a.title \
         WHERE a.id = $1 ORDER BY v.id",
    );
}

#[test]
fn conditions_on_one_table_become_its_filter() {
    let s = accepted(&format!(
        "{AUTHOR} AND u.deleted_at IS NULL AND u.admin IS NOT NULL"
    ));
    // The columns tested are held, whatever their type.
    col(&s, 1, "deleted_at");
    col(&s, 1, "admin");
    assert!(!s.tables[1].filter.anchored());
    assert_eq!(s.tables[1].filter.columns.len(), 2);
    // A condition no filter compiles leaves the join uncompiled.
    refused(&format!("{AUTHOR} AND lower(u.name) = 'x'"));
}

#[test]
fn a_join_needs_an_integer_anchor() {
    // Anchored on a column that is not its key: ordered by the keys.
    let s = accepted(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.views = $1 ORDER BY a.id, u.id",
    );
    assert_eq!(s.tables[0].filter.anchor_column(), Some("views"));
    // A range, a text equality, a uuid equality: no integer anchor.
    refused(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id > $1 ORDER BY a.id, u.id",
    );
    refused(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.slug = $1 ORDER BY a.id, u.id",
    );
    refused(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE u.uuid = $1 ORDER BY a.id, u.id",
    );
    refused(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id ORDER BY a.id, u.id",
    );
}

#[test]
fn every_table_must_be_reached_by_equalities() {
    // The analysis refuses a cross join before a spec is asked for.
    // Ordered by both keys: only the missing equality refuses it.
    let both = "SELECT a.id, a.title, u.name FROM blog_post a, users u \
                WHERE a.id = $1 AND u.id = $2 AND u.id = a.author_id ORDER BY a.id, u.id";
    accepted(both);
    assert!(edited_spec(both, |_| {}).is_some());
    // Both anchored on their keys, but not joined.
    let unjoined = edited_spec(both, |q| {
        let SetExpr::Select(select) = &mut q.body else {
            panic!("a SELECT");
        };
        let Some(Expr::And(list)) = &mut select.selection else {
            panic!("conjuncts: {:?}", select.selection);
        };
        let before = list.len();
        list.retain(|c| {
            !matches!(c, Expr::Binary { left, right, .. }
                if matches!(**left, Expr::Column { .. }) && matches!(**right, Expr::Column { .. }))
        });
        assert_eq!(list.len(), before - 1);
    });
    assert_eq!(unjoined, None);
}

#[test]
fn order_by_must_be_integer_columns() {
    refused(
        "SELECT a.title, v.id, v.body FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY v.author_name, v.id",
    );
    refused(
        "SELECT a.title, v.id, v.body FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY v.id + 0",
    );
    // An output's alias is not read as a column.
    accepted(
        "SELECT a.title, v.id AS post_id FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY v.id",
    );
    refused(
        "SELECT a.title, v.id AS post_id FROM blog_post a \
         JOIN blog_comment v ON v.post_id = a.id WHERE a.id = $1 ORDER BY post_id, v.id",
    );
}

#[test]
fn a_client_parameter_read_outside_the_filters_is_refused() {
    refused(
        "SELECT a.title, v.id FROM blog_post a JOIN blog_comment v ON v.post_id = a.id \
         WHERE a.id = $1 ORDER BY v.id LIMIT $1",
    );
}

#[test]
fn one_table_is_not_a_join() {
    refused("SELECT id, title FROM blog_post WHERE id = $1");
}

#[test]
fn literals_are_lifted_into_parameters() {
    let s = accepted(
        "SELECT a.id, a.title, u.name FROM blog_post a \
         JOIN users u ON u.id = a.author_id WHERE a.id = 5",
    );
    assert_eq!(
        s.tables[0].filter.pred,
        Pred::And(vec![Pred::Cmp {
            column: 0,
            op: CmpOp::Eq,
            value: KeySource::Lifted(0),
        }])
    );
    // The same shape as with the client's parameter, but for the source.
    let client = accepted(AUTHOR);
    assert_eq!(
        JoinSpec {
            tables: Vec::new(),
            ..s.clone()
        },
        JoinSpec {
            tables: Vec::new(),
            ..client
        }
    );
    let s = accepted(
        "SELECT a.title, v.id FROM blog_post a JOIN blog_comment v ON v.post_id = a.id \
         WHERE a.id = 5 ORDER BY v.id LIMIT 3",
    );
    assert_eq!(s.limit, Some(KeySource::Lifted(1)));
    assert_eq!(
        s.tables[0].filter.pred,
        Pred::And(vec![Pred::Cmp {
            column: 0,
            op: CmpOp::Eq,
            value: KeySource::Lifted(0),
        }])
    );
}
