//! Joined entries (ADR 018) from hand-built specs: the rows a [`Gather`]
//! reads, the reply they give, and the stream's changes applied to them.
//!
//! The tables, as the stream describes them (key first):
//! - articles (`id int4, title text, author_id int4, body text`);
//! - users (`id int8, email text, name text`);
//! - votes (`id int8, kind text, value int4, article_id int4`);
//! - orders (`id int8, customer_id int8`), items (`id int8, order_id
//!   int8, product_id int8, qty int4`), products (`id int8, name text`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking"
)]

use super::*;
use crate::cache::response::fields_at;
use crate::cdc::apply::Change;
use crate::sql::deps::KeySource;
use crate::sql::filter::{CmpOp, FilterColumn, FilterSpec, Pred};
use crate::sql::joined::{JoinSort, JoinTable};

const INT4: Oid = Oid(23);
const INT8: Oid = Oid(20);
const TEXT: Oid = Oid(25);

const ARTICLES: Oid = Oid(601);
const USERS: Oid = Oid(602);
const VOTES: Oid = Oid(603);
const ORDERS: Oid = Oid(604);
const ITEMS: Oid = Oid(605);
const PRODUCTS: Oid = Oid(606);

const ARTICLE_COLUMNS: &[(&str, Oid)] = &[
    ("id", INT4),
    ("title", TEXT),
    ("author_id", INT4),
    ("body", TEXT),
];
const USER_COLUMNS: &[(&str, Oid)] = &[("id", INT8), ("email", TEXT), ("name", TEXT)];
const VOTE_COLUMNS: &[(&str, Oid)] = &[
    ("id", INT8),
    ("kind", TEXT),
    ("value", INT4),
    ("article_id", INT4),
];
const ORDER_COLUMNS: &[(&str, Oid)] = &[("id", INT8), ("customer_id", INT8)];
const ITEM_COLUMNS: &[(&str, Oid)] = &[
    ("id", INT8),
    ("order_id", INT8),
    ("product_id", INT8),
    ("qty", INT4),
];
const PRODUCT_COLUMNS: &[(&str, Oid)] = &[("id", INT8), ("name", TEXT)];

/// A table of a spec: its held columns, the key first.
fn table(oid: Oid, columns: &[(&str, Oid)], filter: FilterSpec) -> JoinTable {
    JoinTable {
        oid,
        columns: columns.iter().map(|&(n, t)| (n.to_owned(), t)).collect(),
        key: vec![0],
        filter,
    }
}

fn no_filter() -> FilterSpec {
    FilterSpec {
        columns: Vec::new(),
        pred: Pred::And(Vec::new()),
    }
}

/// `column = <lifted value k>`.
fn equal(column: &str, type_oid: Oid, k: usize) -> FilterSpec {
    FilterSpec {
        columns: vec![FilterColumn {
            name: column.to_owned(),
            type_oid,
        }],
        pred: Pred::And(vec![Pred::Cmp {
            column: 0,
            op: CmpOp::Eq,
            value: KeySource::Lifted(k),
        }]),
    }
}

/// `SELECT a.id, a.title, u.name, u.email FROM articles a JOIN users u
/// ON u.id = a.author_id WHERE a.id = $1`.
fn authored() -> JoinSpec {
    JoinSpec {
        tables: vec![
            table(
                ARTICLES,
                &[("id", INT4), ("author_id", INT4), ("title", TEXT)],
                equal("id", INT4, 0),
            ),
            table(
                USERS,
                &[("id", INT8), ("name", TEXT), ("email", TEXT)],
                no_filter(),
            ),
        ],
        driving: 0,
        edges: vec![Edge {
            parent: 0,
            parent_column: 1,
            child: 1,
            column: 0,
        }],
        extra: Vec::new(),
        outputs: vec![(0, 0), (0, 2), (1, 1), (1, 2)],
        order: Vec::new(),
        limit: None,
    }
}

/// `SELECT a.title, v.id, v.value FROM articles a JOIN votes v
/// ON v.article_id = a.id WHERE a.id = $1 AND v.kind = $2
/// ORDER BY v.id DESC [LIMIT $3]`.
fn voted() -> JoinSpec {
    JoinSpec {
        tables: vec![
            table(
                ARTICLES,
                &[("id", INT4), ("author_id", INT4), ("title", TEXT)],
                equal("id", INT4, 0),
            ),
            table(
                VOTES,
                &[
                    ("id", INT8),
                    ("article_id", INT4),
                    ("value", INT4),
                    ("kind", TEXT),
                ],
                equal("kind", TEXT, 1),
            ),
        ],
        driving: 0,
        edges: vec![Edge {
            parent: 0,
            parent_column: 0,
            child: 1,
            column: 1,
        }],
        extra: Vec::new(),
        outputs: vec![(0, 2), (1, 0), (1, 2)],
        order: vec![JoinSort {
            table: 1,
            column: 0,
            descending: true,
            nulls_first: true,
        }],
        limit: Some(KeySource::Lifted(2)),
    }
}

/// `SELECT o.id, i.id, p.name, i.qty FROM orders o
/// JOIN items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id
/// WHERE o.customer_id = $1 ORDER BY o.id, i.id`.
fn ordered() -> JoinSpec {
    JoinSpec {
        tables: vec![
            table(
                ORDERS,
                &[("id", INT8), ("customer_id", INT8)],
                equal("customer_id", INT8, 0),
            ),
            table(
                ITEMS,
                &[
                    ("id", INT8),
                    ("order_id", INT8),
                    ("product_id", INT8),
                    ("qty", INT4),
                ],
                no_filter(),
            ),
            table(PRODUCTS, &[("id", INT8), ("name", TEXT)], no_filter()),
        ],
        driving: 0,
        edges: vec![
            Edge {
                parent: 0,
                parent_column: 0,
                child: 1,
                column: 1,
            },
            Edge {
                parent: 1,
                parent_column: 2,
                child: 2,
                column: 0,
            },
        ],
        extra: Vec::new(),
        outputs: vec![(0, 0), (1, 0), (2, 1), (1, 3)],
        order: vec![
            JoinSort {
                table: 0,
                column: 0,
                descending: false,
                nulls_first: false,
            },
            JoinSort {
                table: 1,
                column: 0,
                descending: false,
                nulls_first: false,
            },
        ],
        limit: None,
    }
}

fn name_of(oid: Oid) -> &'static str {
    match oid {
        ARTICLES => "articles",
        USERS => "users",
        VOTES => "votes",
        ORDERS => "orders",
        ITEMS => "items",
        _ => "products",
    }
}

/// `spec` bound to the lifted `values`, cut by `limit`.
fn plan(spec: JoinSpec, values: &[KeyPart], limit: Option<u64>) -> JoinPlan {
    let filters = spec
        .tables
        .iter()
        .map(|t| {
            t.filter.bind(t.oid, 9, &|source, _| match source {
                KeySource::Lifted(k) => values.get(k).cloned(),
                KeySource::Client(_) => None,
            })
        })
        .collect::<Option<Vec<_>>>()
        .expect("every value binds");
    let names = spec
        .tables
        .iter()
        .map(|t| ("public".to_owned(), name_of(t.oid).to_owned()))
        .collect();
    JoinPlan {
        spec: Arc::new(spec),
        filters,
        limit,
        names,
        id: 9,
    }
}

fn text(s: &str) -> KeyPart {
    KeyPart::Bytes(Box::from(s.as_bytes()))
}

/// Article 3 with its author.
fn authored_plan() -> JoinPlan {
    plan(authored(), &[KeyPart::Int(3)], None)
}

/// Article 3 with its up votes, newest first.
fn voted_plan(limit: Option<u64>) -> JoinPlan {
    plan(voted(), &[KeyPart::Int(3), text("up")], limit)
}

/// Customer 7's orders, their items and the items' products.
fn ordered_plan() -> JoinPlan {
    plan(ordered(), &[KeyPart::Int(7)], None)
}

/// Rows as a query reads them: each value's text, `"NULL"` for NULL.
fn read(rows: &[&[&str]]) -> Vec<Vec<Option<Bytes>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| (*v != "NULL").then(|| Bytes::copy_from_slice(v.as_bytes())))
                .collect()
        })
        .collect()
}

/// The `RowDescription` of `width` text columns.
fn description(width: usize) -> Vec<u8> {
    let mut body = (width as u16).to_be_bytes().to_vec();
    for k in 0..width {
        body.extend_from_slice(format!("column_{k}_of_the_reply\0").as_bytes());
        body.extend_from_slice(&0u32.to_be_bytes()); // table
        body.extend_from_slice(&0u16.to_be_bytes()); // attnum
        body.extend_from_slice(&TEXT.0.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes()); // typlen
        body.extend_from_slice(&(-1i32).to_be_bytes()); // typmod
        body.extend_from_slice(&0u16.to_be_bytes()); // text
    }
    let mut out = vec![b'T'];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The reply the origin sends for `rows` of `width` columns (`"NULL"`
/// for NULL).
fn reply_of(width: usize, rows: &[&[&str]]) -> CapturedResult {
    let mut data = Vec::new();
    for r in rows {
        assert_eq!(r.len(), width);
        let values: Vec<Option<&[u8]>> = r
            .iter()
            .map(|v| (*v != "NULL").then_some(v.as_bytes()))
            .collect();
        data.extend_from_slice(&data_row(&values));
    }
    let tag = format!("SELECT {}\0", rows.len());
    let mut complete = vec![b'C'];
    complete.extend_from_slice(&(tag.len() as u32 + 4).to_be_bytes());
    complete.extend_from_slice(tag.as_bytes());
    CapturedResult::new(
        Some(&description(width)),
        &data,
        rows.len() as u64,
        &complete,
    )
}

/// The reply the origin sends for `rows` (one at least).
fn reply(rows: &[&[&str]]) -> CapturedResult {
    reply_of(rows[0].len(), rows)
}

/// A reply captured for `plan`'s statement (its rows do not matter: the
/// entry's are the join of the rows read).
fn captured(plan: &JoinPlan) -> CapturedResult {
    reply_of(plan.spec.outputs.len(), &[])
}

/// The reply's rows, each as its values joined by `|` (`NULL` for NULL),
/// after checking that its `CommandComplete` counts them.
fn shown(reply: &CapturedResult) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    let rows = reply.rows();
    while pos < rows.len() {
        let len = u32::from_be_bytes(rows[pos + 1..pos + 5].try_into().unwrap()) as usize;
        let width = usize::from(u16::from_be_bytes([rows[pos + 5], rows[pos + 6]]));
        let row = &rows[pos..pos + 1 + len];
        let positions: Vec<usize> = (0..width).collect();
        let fields = fields_at(row, &positions).expect("a DataRow");
        let values: Vec<String> = fields[0]
            .iter()
            .map(|f| f.map_or_else(|| "NULL".to_owned(), |b| String::from_utf8_lossy(b).into()))
            .collect();
        out.push(values.join("|"));
        pos += 1 + len;
    }
    let tag = format!("SELECT {}\0", out.len());
    assert_eq!(&reply.complete()[5..], tag.as_bytes());
    assert_eq!(reply.row_count, out.len() as u64);
    out
}

/// What the entry replies now.
fn now(j: &Joined) -> Vec<String> {
    shown(&j.current())
}

/// A joined entry from the rows `gather` read, no change since (as the
/// join task makes one: pending, then filled).
fn new_joined(
    gather: Gather,
    result: &CapturedResult,
    begin: u64,
    max_len: usize,
) -> Option<Joined> {
    let joined = Joined::pending(gather.plan().clone(), result, max_len);
    joined.set_begin(begin);
    joined.fill(gather).ok()?;
    Some(joined)
}

/// A joined entry from the rows each of `plan`'s queries reads, in order.
fn joined(plan: &JoinPlan, reads: &[&[&[&str]]]) -> Joined {
    let mut gather = Gather::new(plan);
    for rows in reads {
        assert!(gather.next_sql().is_some(), "a query for every read");
        gather.take(read(rows)).expect("rows held");
    }
    assert!(gather.done());
    assert_eq!(gather.next_sql(), None);
    new_joined(gather, &captured(plan), 0, usize::MAX).expect("a reply")
}

/// Article 3 (by author 4) and its author.
fn article_and_author() -> Joined {
    joined(
        &authored_plan(),
        &[&[&["3", "4", "Hello"]], &[&["4", "Ann", "ann@example.com"]]],
    )
}

/// Article 3 and its up votes 20, 21 and 23 (22 is down).
fn article_and_votes(limit: Option<u64>) -> Joined {
    joined(
        &voted_plan(limit),
        &[
            &[&["3", "4", "Hello"]],
            &[
                &["20", "3", "1", "up"],
                &["21", "3", "5", "up"],
                &["22", "3", "2", "down"],
                &["23", "3", "4", "up"],
            ],
        ],
    )
}

/// Customer 7's orders 10 and 12; items 100, 101 (order 10), 102, 103
/// (order 12, no product); products 3 and 5.
fn customer_orders() -> Joined {
    joined(
        &ordered_plan(),
        &[
            &[&["10", "7"], &["12", "7"]],
            &[
                &["100", "10", "5", "1"],
                &["101", "10", "3", "2"],
                &["102", "12", "5", "1"],
                &["103", "12", "NULL", "1"],
            ],
            &[&["3", "Nut"], &["5", "Bolt"]],
        ],
    )
}

fn t(s: &str) -> ColumnValue {
    ColumnValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

/// SQL `NULL`.
fn null() -> ColumnValue {
    ColumnValue::Null
}

/// An unchanged TOAST value: not sent.
fn toast() -> ColumnValue {
    ColumnValue::UnchangedToast
}

enum Op {
    /// An insert or an update: the new row, in the stream's column order.
    Put(Vec<ColumnValue>),
    /// An update of the key: the old id, the new row.
    Move(i64, Vec<ColumnValue>),
    Delete(i64),
}

/// The old key of a row as a delete or a key update sends it.
fn key(width: usize, id: i64) -> Tuple {
    let mut columns = vec![ColumnValue::Null; width];
    columns[0] = t(&id.to_string());
    Tuple { columns }
}

/// One commit's changes to `table` (the key is the first column).
fn batch(table: Oid, columns: &[(&str, Oid)], ops: Vec<Op>) -> NewRows {
    let mut rows = Vec::new();
    let mut changes = Vec::new();
    for op in ops {
        let (old, new) = match op {
            Op::Put(row) => (None, Some(row)),
            Op::Move(old, row) => (Some(key(columns.len(), old)), Some(row)),
            Op::Delete(old) => (Some(key(columns.len(), old)), None),
        };
        let new = new.map(|row| {
            assert_eq!(row.len(), columns.len());
            rows.push(Tuple { columns: row });
            rows.len() as u32 - 1
        });
        changes.push(Change {
            old,
            new,
            names: Vec::new(),
            keyed: true,
        });
    }
    NewRows {
        table,
        columns: columns
            .iter()
            .map(|&(n, t)| (n.to_owned(), t))
            .collect::<Vec<_>>()
            .into(),
        rows,
        changes,
        bytes: 0,
    }
}

fn articles(ops: Vec<Op>) -> NewRows {
    batch(ARTICLES, ARTICLE_COLUMNS, ops)
}

fn users(ops: Vec<Op>) -> NewRows {
    batch(USERS, USER_COLUMNS, ops)
}

fn votes(ops: Vec<Op>) -> NewRows {
    batch(VOTES, VOTE_COLUMNS, ops)
}

/// A vote (id, kind, value, article).
fn vote(id: i64, kind: &str, value: i64, article: i64) -> Op {
    Op::Put(vec![
        t(&id.to_string()),
        t(kind),
        t(&value.to_string()),
        t(&article.to_string()),
    ])
}

/// Apply one commit (its tables' batches in order) and end it.
fn commit(j: &Joined, batches: &[NewRows]) -> Result<bool, Lost> {
    for b in batches {
        j.apply(b, 0)?;
    }
    j.finish()
}

/// Check a query for `table`: its columns, then (`FROM`, possibly `FROM
/// ONLY`) the table and `condition`, then the bound on its rows.
#[track_caller]
fn query(sql: &str, columns: &str, table: &str, condition: &str) {
    let head = format!("SELECT {columns} FROM ");
    let tail = format!(
        "\"public\".\"{table}\" WHERE {condition} LIMIT {}",
        MAX_JOIN_ROWS + 1
    );
    assert!(sql.starts_with(&head) && sql.ends_with(&tail), "{sql}");
    assert!(
        sql.len() <= head.len() + "ONLY ".len() + tail.len(),
        "{sql}"
    );
}

#[test]
fn the_driving_table_is_read_by_its_anchor_then_each_child_by_the_values_named() {
    let plan = authored_plan();
    let mut gather = Gather::new(&plan);
    query(
        &gather.next_sql().unwrap(),
        r#""id", "author_id", "title""#,
        "articles",
        r#""id" OPERATOR(pg_catalog.=) (3)"#,
    );
    gather.take(read(&[&["3", "4", "Hello"]])).unwrap();
    assert!(!gather.done());
    query(
        &gather.next_sql().unwrap(),
        r#""id", "name", "email""#,
        "users",
        r#""id" OPERATOR(pg_catalog.=) ANY ('{4}'::pg_catalog.int8[])"#,
    );
    gather
        .take(read(&[&["4", "Ann", "ann@example.com"]]))
        .unwrap();
    assert!(gather.done());
    assert_eq!(gather.next_sql(), None);
}

#[test]
fn each_level_is_read_by_the_values_its_parents_name_once_each() {
    let plan = ordered_plan();
    let mut gather = Gather::new(&plan);
    query(
        &gather.next_sql().unwrap(),
        r#""id", "customer_id""#,
        "orders",
        r#""customer_id" OPERATOR(pg_catalog.=) (7)"#,
    );
    gather.take(read(&[&["12", "7"], &["10", "7"]])).unwrap();
    query(
        &gather.next_sql().unwrap(),
        r#""id", "order_id", "product_id", "qty""#,
        "items",
        r#""order_id" OPERATOR(pg_catalog.=) ANY ('{10,12}'::pg_catalog.int8[])"#,
    );
    // Product 5 twice, one item without a product.
    gather
        .take(read(&[
            &["100", "10", "5", "1"],
            &["101", "10", "3", "2"],
            &["102", "12", "5", "1"],
            &["103", "12", "NULL", "1"],
        ]))
        .unwrap();
    query(
        &gather.next_sql().unwrap(),
        r#""id", "name""#,
        "products",
        r#""id" OPERATOR(pg_catalog.=) ANY ('{3,5}'::pg_catalog.int8[])"#,
    );
    gather.take(read(&[&["3", "Nut"], &["5", "Bolt"]])).unwrap();
    assert!(gather.done());
}

#[test]
fn names_in_the_queries_are_quoted() {
    let mut plan = authored_plan();
    plan.names[0] = ("My \"Schema\"".to_owned(), "Articles".to_owned());
    let sql = Gather::new(&plan).next_sql().unwrap();
    assert!(
        sql.contains(r#" "My ""Schema"""."Articles" WHERE "#),
        "{sql}"
    );
}

#[test]
fn a_parent_naming_no_value_reads_an_empty_list() {
    let plan = authored_plan();
    let mut gather = Gather::new(&plan);
    gather.take(read(&[&["3", "NULL", "Hello"]])).unwrap();
    assert!(
        gather
            .next_sql()
            .unwrap()
            .contains("ANY ('{}'::pg_catalog.int8[])")
    );
    gather.take(Vec::new()).unwrap();
    let j = new_joined(gather, &captured(&plan), 0, usize::MAX).unwrap();
    // Inner join: no author, no row.
    assert_eq!(now(&j), Vec::<String>::new());
}

#[test]
fn rows_read_that_cannot_be_held_refuse_the_join() {
    let plan = voted_plan(None);
    let article = read(&[&["3", "4", "Hello"]]);
    let votes_read = |rows: &[&[&str]]| {
        let mut gather = Gather::new(&plan);
        gather.take(article.clone()).unwrap();
        gather.take(read(rows))
    };
    assert_eq!(votes_read(&[&["20", "3", "1", "up"]]), Some(()));
    // A row of other columns, a key twice, a key that does not read.
    assert_eq!(votes_read(&[&["20", "3", "1"]]), None);
    assert_eq!(votes_read(&[&["20", "3", "1", "up", "more"]]), None);
    assert_eq!(
        votes_read(&[&["20", "3", "1", "up"], &["20", "3", "2", "up"]]),
        None
    );
    assert_eq!(votes_read(&[&["x", "3", "1", "up"]]), None);
    assert_eq!(votes_read(&[&["NULL", "3", "1", "up"]]), None);
    // A filter value that does not read: the filter cannot decide.
    let mut gather = Gather::new(&plan);
    assert_eq!(
        gather.take(read(&[&["3", "4", "Hello"], &["x3", "4", "Bye"]])),
        None
    );
    // More rows than an entry holds.
    let many: Vec<Vec<Option<Bytes>>> = (0..=MAX_JOIN_ROWS)
        .map(|k| {
            ["id", "3", "1", "up"]
                .iter()
                .map(|v| {
                    let v = if *v == "id" {
                        k.to_string()
                    } else {
                        (*v).to_owned()
                    };
                    Some(Bytes::from(v))
                })
                .collect()
        })
        .collect();
    let mut gather = Gather::new(&plan);
    gather.take(article.clone()).unwrap();
    assert_eq!(gather.take(many), None);
}

#[test]
fn without_an_integer_anchor_nothing_is_read() {
    let mut spec = authored();
    spec.tables[0].filter = no_filter();
    let plan = plan(spec, &[], None);
    assert_eq!(Gather::new(&plan).next_sql(), None);
    let spec = JoinSpec {
        tables: vec![
            table(
                ARTICLES,
                &[("id", INT4), ("author_id", INT4), ("title", TEXT)],
                equal("title", TEXT, 0),
            ),
            authored().tables[1].clone(),
        ],
        ..authored()
    };
    let plan = self::plan(spec, &[text("Hello")], None);
    assert_eq!(Gather::new(&plan).next_sql(), None);
}

#[test]
fn an_entry_needs_every_table_read() {
    let plan = authored_plan();
    // Without an author: no author to read, but the query is still to run.
    let mut gather = Gather::new(&plan);
    gather.take(read(&[&["3", "NULL", "Hello"]])).unwrap();
    assert!(!gather.done());
    assert!(new_joined(gather, &captured(&plan), 0, usize::MAX).is_none());
}

#[test]
fn the_first_reply_is_the_join_of_the_rows_read() {
    let j = article_and_author();
    assert_eq!(now(&j), ["3|Hello|Ann|ann@example.com"]);
    // Byte for byte what the origin sends, with the captured description.
    assert_eq!(
        *j.current(),
        reply(&[&["3", "Hello", "Ann", "ann@example.com"]])
    );
    assert_eq!(j.rows(), 2);
    // Filtered rows are not held; the order is the statement's.
    let j = article_and_votes(None);
    assert_eq!(now(&j), ["Hello|23|4", "Hello|21|5", "Hello|20|1"]);
    assert_eq!(j.rows(), 4);
    let j = article_and_votes(Some(2));
    assert_eq!(now(&j), ["Hello|23|4", "Hello|21|5"]);
    let j = customer_orders();
    assert_eq!(now(&j), ["10|100|Bolt|1", "10|101|Nut|2", "12|102|Bolt|1"]);
}

#[test]
fn the_statement_description_is_kept() {
    let plan = authored_plan();
    let mut gather = Gather::new(&plan);
    gather.take(read(&[&["3", "4", "Hello"]])).unwrap();
    gather.take(read(&[&["4", "Ann", "a@x"]])).unwrap();
    let captured = CapturedResult::with_statement(
        b"t\0\0\0\x06\0\0",
        Some(&description(4)),
        b"",
        0,
        b"C\0\0\0\x0dSELECT 0\0",
    );
    let j = new_joined(gather, &captured, 0, usize::MAX).unwrap();
    let renamed = users(vec![Op::Put(vec![t("4"), t("a@x"), t("Anne")])]);
    assert_eq!(commit(&j, &[renamed]), Ok(true));
    let current = j.current();
    assert_eq!(
        current.statement_description(),
        Some(&b"t\0\0\0\x06\0\0"[..])
    );
    assert_eq!(current.row_description(), Some(&description(4)[..]));
    assert_eq!(shown(&current), ["3|Hello|Anne|a@x"]);
}

#[test]
fn renaming_the_author_or_retitling_the_article_changes_the_reply() {
    let j = article_and_author();
    let renamed = users(vec![Op::Put(vec![t("4"), t("ann@example.com"), t("Anne")])]);
    assert_eq!(commit(&j, &[renamed]), Ok(true));
    assert_eq!(now(&j), ["3|Hello|Anne|ann@example.com"]);
    let retitled = articles(vec![Op::Put(vec![t("3"), t("Bye"), t("4"), t("…")])]);
    assert_eq!(commit(&j, &[retitled]), Ok(true));
    assert_eq!(now(&j), ["3|Bye|Anne|ann@example.com"]);
    // Both sides in one commit.
    let both = [
        articles(vec![Op::Put(vec![t("3"), t("Again"), t("4"), toast()])]),
        users(vec![Op::Put(vec![t("4"), t("a@x"), t("A.")])]),
    ];
    assert_eq!(commit(&j, &both), Ok(true));
    assert_eq!(now(&j), ["3|Again|A.|a@x"]);
}

#[test]
fn the_author_deleted_and_back_leaves_and_rejoins_the_reply() {
    let j = article_and_author();
    assert_eq!(commit(&j, &[users(vec![Op::Delete(4)])]), Ok(true));
    assert_eq!(now(&j), Vec::<String>::new());
    // Its value's rows are all held: a new row with it is held too.
    let back = users(vec![Op::Put(vec![t("4"), t("b@x"), t("Bea")])]);
    assert_eq!(commit(&j, &[back]), Ok(true));
    assert_eq!(now(&j), ["3|Hello|Bea|b@x"]);
}

#[test]
fn votes_inserted_land_in_order_and_deleted_ones_go() {
    let j = article_and_votes(None);
    assert_eq!(commit(&j, &[votes(vec![vote(22, "up", 7, 3)])]), Ok(true));
    assert_eq!(
        now(&j),
        ["Hello|23|4", "Hello|22|7", "Hello|21|5", "Hello|20|1"]
    );
    assert_eq!(commit(&j, &[votes(vec![Op::Delete(21)])]), Ok(true));
    assert_eq!(now(&j), ["Hello|23|4", "Hello|22|7", "Hello|20|1"]);
    // A vote leaving the filter goes too.
    assert_eq!(commit(&j, &[votes(vec![vote(23, "down", 4, 3)])]), Ok(true));
    assert_eq!(now(&j), ["Hello|22|7", "Hello|20|1"]);
    // A vote moving from another article comes.
    assert_eq!(
        commit(
            &j,
            &[votes(vec![Op::Move(
                900,
                vec![t("30"), t("up"), t("2"), t("3")]
            )])]
        ),
        Ok(true)
    );
    assert_eq!(now(&j), ["Hello|30|2", "Hello|22|7", "Hello|20|1"]);
}

#[test]
fn the_limit_cuts_the_rows_held_and_refills_from_them() {
    let j = article_and_votes(Some(2));
    assert_eq!(now(&j), ["Hello|23|4", "Hello|21|5"]);
    // Newer: first; the last falls out.
    assert_eq!(commit(&j, &[votes(vec![vote(24, "up", 1, 3)])]), Ok(true));
    assert_eq!(now(&j), ["Hello|24|1", "Hello|23|4"]);
    // Rows past the limit are held: a row gone is refilled.
    assert_eq!(
        commit(&j, &[votes(vec![Op::Delete(24), Op::Delete(23)])]),
        Ok(true)
    );
    assert_eq!(now(&j), ["Hello|21|5", "Hello|20|1"]);
}

#[test]
fn a_key_update_moves_the_row() {
    let j = article_and_votes(None);
    let rekeyed = votes(vec![Op::Move(20, vec![t("25"), t("up"), t("1"), t("3")])]);
    assert_eq!(commit(&j, &[rekeyed]), Ok(true));
    assert_eq!(now(&j), ["Hello|25|1", "Hello|23|4", "Hello|21|5"]);
    assert_eq!(j.rows(), 4);
}

#[test]
fn changes_to_rows_of_other_values_change_nothing() {
    let j = article_and_votes(None);
    let before = j.current().clone();
    let elsewhere = [
        // Votes of another article, a down vote, another article.
        votes(vec![vote(40, "up", 1, 9), vote(41, "down", 1, 3)]),
        articles(vec![Op::Put(vec![t("8"), t("Other"), t("4"), t("b")])]),
        users(vec![Op::Put(vec![t("5"), t("e"), t("Eve")])]),
    ];
    assert_eq!(commit(&j, &elsewhere), Ok(false));
    assert_eq!(*j.current(), before);
    assert_eq!(j.rows(), 4);
    // Nothing at all: nothing to rebuild.
    assert_eq!(j.finish(), Ok(false));
    let j = article_and_author();
    let other_author = users(vec![Op::Put(vec![t("5"), t("e"), t("Eve")]), Op::Delete(6)]);
    assert_eq!(commit(&j, &[other_author]), Ok(false));
}

#[test]
fn a_parent_moving_to_a_value_not_held_ends_the_entry() {
    // The article moves to author 5, whose row is not held.
    let j = article_and_author();
    let moved = articles(vec![Op::Put(vec![t("3"), t("Hello"), t("5"), toast()])]);
    assert_eq!(j.apply(&moved, 0), Ok(()));
    assert_eq!(j.finish(), Err(Lost::Incomplete));
    // An item moves to product 9.
    let j = customer_orders();
    let moved = batch(
        ITEMS,
        ITEM_COLUMNS,
        vec![Op::Put(vec![t("101"), t("10"), t("9"), t("2")])],
    );
    assert_eq!(commit(&j, &[moved]), Err(Lost::Incomplete));
    // A new order for the customer: its items are not held.
    let j = customer_orders();
    let new = batch(ORDERS, ORDER_COLUMNS, vec![Op::Put(vec![t("14"), t("7")])]);
    assert_eq!(commit(&j, &[new]), Err(Lost::Incomplete));
}

#[test]
fn a_parent_moving_to_a_value_held_is_followed() {
    let j = customer_orders();
    let moved = batch(
        ITEMS,
        ITEM_COLUMNS,
        vec![Op::Put(vec![t("101"), t("10"), t("5"), t("2")])],
    );
    assert_eq!(commit(&j, &[moved]), Ok(true));
    assert_eq!(now(&j), ["10|100|Bolt|1", "10|101|Bolt|2", "12|102|Bolt|1"]);
    // A product renamed changes every row it is in.
    let renamed = batch(
        PRODUCTS,
        PRODUCT_COLUMNS,
        vec![Op::Put(vec![t("5"), t("Big bolt")])],
    );
    assert_eq!(commit(&j, &[renamed]), Ok(true));
    assert_eq!(
        now(&j),
        [
            "10|100|Big bolt|1",
            "10|101|Big bolt|2",
            "12|102|Big bolt|1"
        ]
    );
    // An item added to an order held, one given a product, one gone; an
    // order leaving the customer takes its items from the reply.
    let items = batch(
        ITEMS,
        ITEM_COLUMNS,
        vec![
            Op::Put(vec![t("99"), t("12"), t("3"), t("4")]),
            Op::Put(vec![t("103"), t("12"), t("3"), t("1")]),
            Op::Delete(100),
        ],
    );
    assert_eq!(commit(&j, &[items]), Ok(true));
    assert_eq!(
        now(&j),
        [
            "10|101|Big bolt|2",
            "12|99|Nut|4",
            "12|102|Big bolt|1",
            "12|103|Nut|1"
        ]
    );
    let left = batch(ORDERS, ORDER_COLUMNS, vec![Op::Put(vec![t("10"), t("8")])]);
    assert_eq!(commit(&j, &[left]), Ok(true));
    assert_eq!(
        now(&j),
        ["12|99|Nut|4", "12|102|Big bolt|1", "12|103|Nut|1"]
    );
}

#[test]
fn a_row_the_filter_may_or_may_not_accept_ends_the_entry() {
    // A vote not held whose kind (filtered on) was not sent.
    let j = article_and_votes(None);
    let unsent = votes(vec![Op::Put(vec![t("50"), toast(), t("1"), t("3")])]);
    assert_eq!(j.apply(&unsent, 0), Err(Lost::Undecided));
    // One the filter accepts whose output value was not sent.
    let j = article_and_votes(None);
    let unsent = votes(vec![Op::Put(vec![t("51"), t("up"), toast(), t("3")])]);
    assert_eq!(j.apply(&unsent, 0), Err(Lost::Toast));
    // Values not sent of rows that cannot matter: another article's vote,
    // one the filter rejects.
    let j = article_and_votes(None);
    let other = votes(vec![
        Op::Put(vec![t("52"), toast(), toast(), t("9")]),
        Op::Put(vec![t("53"), t("down"), toast(), t("3")]),
    ]);
    assert_eq!(commit(&j, &[other]), Ok(false));
    // An order whose customer does not read as an integer.
    let j = customer_orders();
    let unread = batch(ORDERS, ORDER_COLUMNS, vec![Op::Put(vec![t("13"), t("7x")])]);
    assert_eq!(j.apply(&unread, 0), Err(Lost::Undecided));
    // A join value that does not read as an integer.
    let j = customer_orders();
    let unread = batch(
        ITEMS,
        ITEM_COLUMNS,
        vec![Op::Put(vec![t("100"), t("10"), t("five"), t("1")])],
    );
    assert_eq!(commit(&j, &[unread]), Err(Lost::Unreadable));
    // A key that does not read.
    let j = customer_orders();
    let unread = batch(ORDERS, ORDER_COLUMNS, vec![Op::Put(vec![null(), t("7")])]);
    assert_eq!(j.apply(&unread, 0), Err(Lost::Unreadable));
}

#[test]
fn an_unsent_value_of_a_held_row_is_the_held_one() {
    let j = article_and_author();
    let mailed = users(vec![Op::Put(vec![t("4"), t("new@example.com"), toast()])]);
    assert_eq!(commit(&j, &[mailed]), Ok(true));
    assert_eq!(now(&j), ["3|Hello|Ann|new@example.com"]);
    // A held vote whose kind (a filter column) was not sent stays.
    let j = article_and_votes(None);
    let valued = votes(vec![Op::Put(vec![t("21"), toast(), t("9"), t("3")])]);
    assert_eq!(commit(&j, &[valued]), Ok(true));
    assert_eq!(now(&j), ["Hello|23|4", "Hello|21|9", "Hello|20|1"]);
}

#[test]
fn a_stream_without_a_held_column_ends_the_entry() {
    let j = article_and_author();
    let mut renamed = users(vec![Op::Put(vec![t("4"), t("a@x"), t("Anne")])]);
    renamed.columns = vec![
        ("id".to_owned(), INT8),
        ("email".to_owned(), TEXT),
        ("name".to_owned(), Oid(1043)),
    ]
    .into();
    assert_eq!(j.apply(&renamed, 0), Err(Lost::Columns));
}

#[test]
fn a_reply_grown_past_its_bound_ends_the_entry() {
    let plan = authored_plan();
    let read_all = || {
        let mut gather = Gather::new(&plan);
        gather.take(read(&[&["3", "4", "Hello"]])).unwrap();
        gather.take(read(&[&["4", "Ann", "a@x"]])).unwrap();
        gather
    };
    let len = reply(&[&["3", "Hello", "Ann", "a@x"]]).len();
    assert!(new_joined(read_all(), &captured(&plan), 0, len - 1).is_none());
    let j = new_joined(read_all(), &captured(&plan), 0, len + 4).unwrap();
    let longer = users(vec![Op::Put(vec![t("4"), t("a@x"), t("Annabelle")])]);
    assert_eq!(commit(&j, &[longer]), Err(Lost::Size));
}

#[test]
fn rows_in_no_strict_order_are_not_followed() {
    // Ordered by the vote's value only: two votes of value 4 tie.
    let mut spec = voted();
    spec.order[0].column = 2;
    let plan = plan(spec, &[KeyPart::Int(3), text("up")], None);
    let mut gather = Gather::new(&plan);
    gather.take(read(&[&["3", "4", "Hello"]])).unwrap();
    gather
        .take(read(&[&["20", "3", "4", "up"], &["21", "3", "4", "up"]]))
        .unwrap();
    assert!(new_joined(gather, &captured(&plan), 0, usize::MAX).is_none());
    // Without an order, a second row.
    let mut spec = voted();
    spec.order.clear();
    let plan = self::plan(spec, &[KeyPart::Int(3), text("up")], None);
    let j = joined(
        &plan,
        &[&[&["3", "4", "Hello"]], &[&["20", "3", "1", "up"]]],
    );
    assert_eq!(now(&j), ["Hello|20|1"]);
    assert_eq!(
        commit(&j, &[votes(vec![vote(21, "up", 1, 3)])]),
        Err(Lost::Order)
    );
}

#[test]
fn other_equalities_are_tested_on_each_combination() {
    // … AND u.id = a.author_id AND a.id = u.id (not the case here).
    let mut spec = authored();
    spec.extra = vec![((0, 0), (1, 0))];
    let j = joined(
        &plan(spec, &[KeyPart::Int(4)], None),
        &[&[&["4", "4", "Self"]], &[&["4", "Ann", "a@x"]]],
    );
    assert_eq!(now(&j), ["4|Self|Ann|a@x"]);
    let mut spec = authored();
    spec.extra = vec![((0, 0), (1, 0))];
    let j = joined(
        &plan(spec, &[KeyPart::Int(3)], None),
        &[&[&["3", "4", "Hello"]], &[&["4", "Ann", "a@x"]]],
    );
    assert_eq!(now(&j), Vec::<String>::new());
}

#[test]
fn a_commit_applied_twice_changes_nothing_more() {
    // A commit the snapshot already showed is applied again.
    let j = article_and_votes(None);
    let b = votes(vec![
        vote(22, "up", 7, 3),
        Op::Delete(21),
        Op::Move(20, vec![t("26"), t("up"), t("1"), t("3")]),
    ]);
    assert_eq!(commit(&j, std::slice::from_ref(&b)), Ok(true));
    let once = now(&j);
    assert_eq!(once, ["Hello|26|1", "Hello|23|4", "Hello|22|7"]);
    commit(&j, &[b]).unwrap();
    assert_eq!(now(&j), once);
    assert_eq!(j.rows(), 4);
}

#[test]
fn names_are_the_anchor_the_complete_values_and_the_rows_held() {
    let j = article_and_votes(None);
    let set = |v: Vec<u64>| v.into_iter().collect::<HashSet<u64>>();
    let vote_row = |id: i64| row_hash(VOTES, &[KeyPart::Int(id)]);
    assert_eq!(
        set(j.names(ARTICLES)),
        set(vec![
            value_hash(ARTICLES, "id", &KeyPart::Int(3)),
            row_hash(ARTICLES, &[KeyPart::Int(3)]),
        ])
    );
    assert_eq!(
        set(j.names(VOTES)),
        set(vec![
            value_hash(VOTES, "article_id", &KeyPart::Int(3)),
            vote_row(20),
            vote_row(21),
            vote_row(23),
        ])
    );
    assert_eq!(j.names(USERS), Vec::<u64>::new());
    // A row held from now on is named; one gone is not.
    commit(&j, &[votes(vec![vote(22, "up", 7, 3), Op::Delete(20)])]).unwrap();
    let names = set(j.names(VOTES));
    assert!(names.contains(&vote_row(22)));
    assert!(!names.contains(&vote_row(20)));
    // The complete values of a table joined by its key.
    let j = customer_orders();
    assert_eq!(
        set(j.names(PRODUCTS)),
        set(vec![
            value_hash(PRODUCTS, "id", &KeyPart::Int(3)),
            value_hash(PRODUCTS, "id", &KeyPart::Int(5)),
            row_hash(PRODUCTS, &[KeyPart::Int(3)]),
            row_hash(PRODUCTS, &[KeyPart::Int(5)]),
        ])
    );
    assert!(set(j.names(ITEMS)).contains(&value_hash(ITEMS, "order_id", &KeyPart::Int(12))));
    assert!(set(j.names(ORDERS)).contains(&value_hash(ORDERS, "customer_id", &KeyPart::Int(7))));
}

#[test]
fn a_commit_touches_an_entry_through_its_names() {
    let j = article_and_votes(None);
    let named = |names: Vec<u64>, keyed: bool| {
        let mut b = votes(vec![vote(40, "up", 1, 9)]);
        b.changes[0].names = names;
        b.changes[0].keyed = keyed;
        b
    };
    let vote_row = |id: i64| row_hash(VOTES, &[KeyPart::Int(id)]);
    let article = |v: i64| value_hash(VOTES, "article_id", &KeyPart::Int(v));
    assert!(!j.touched_by(&named(vec![vote_row(40), article(9)], true)));
    assert!(j.touched_by(&named(vec![vote_row(40), article(3)], true)));
    assert!(j.touched_by(&named(vec![vote_row(21), article(9)], true)));
    // A vote filtered out is not held: not named by its key.
    assert!(!j.touched_by(&named(vec![vote_row(22)], true)));
    // Names of another table are not this one's.
    assert!(!j.touched_by(&named(
        vec![value_hash(ARTICLES, "id", &KeyPart::Int(3))],
        true
    )));
    // A change that does not name its row's key may be any row.
    assert!(j.touched_by(&named(vec![vote_row(40)], false)));
    // A dropped entry is touched by nothing and follows nothing.
    j.kill();
    assert!(j.dead());
    assert!(!j.touched_by(&named(vec![vote_row(21)], false)));
    assert_eq!(commit(&j, &[votes(vec![Op::Delete(21)])]), Ok(false));
    assert_eq!(now(&j), ["Hello|23|4", "Hello|21|5", "Hello|20|1"]);
    assert_eq!(j.rows(), 4);
}

#[test]
fn nulls_sort_as_the_order_says() {
    // ORDER BY v.value DESC NULLS FIRST, v.id.
    let mut spec = voted();
    spec.order = vec![
        JoinSort {
            table: 1,
            column: 2,
            descending: true,
            nulls_first: true,
        },
        JoinSort {
            table: 1,
            column: 0,
            descending: false,
            nulls_first: false,
        },
    ];
    let reads: &[&[&[&str]]] = &[
        &[&["3", "4", "Hello"]],
        &[
            &["20", "3", "4", "up"],
            &["21", "3", "NULL", "up"],
            &["22", "3", "5", "up"],
            &["23", "3", "4", "up"],
        ],
    ];
    let j = joined(
        &plan(spec.clone(), &[KeyPart::Int(3), text("up")], None),
        reads,
    );
    assert_eq!(
        now(&j),
        ["Hello|21|NULL", "Hello|22|5", "Hello|20|4", "Hello|23|4"]
    );
    // ORDER BY v.value NULLS FIRST, v.id DESC.
    spec.order[0].descending = false;
    spec.order[1].descending = true;
    let j = joined(
        &plan(spec.clone(), &[KeyPart::Int(3), text("up")], None),
        reads,
    );
    assert_eq!(
        now(&j),
        ["Hello|21|NULL", "Hello|23|4", "Hello|20|4", "Hello|22|5"]
    );
    // ORDER BY v.value, v.id DESC: NULLs last.
    spec.order[0].nulls_first = false;
    let j = joined(&plan(spec, &[KeyPart::Int(3), text("up")], None), reads);
    assert_eq!(
        now(&j),
        ["Hello|23|4", "Hello|20|4", "Hello|22|5", "Hello|21|NULL"]
    );
    // A second NULL ties with the first.
    assert_eq!(
        commit(
            &j,
            &[votes(vec![Op::Put(vec![t("24"), t("up"), null(), t("3")])])]
        ),
        Ok(true)
    );
    assert_eq!(
        now(&j),
        [
            "Hello|23|4",
            "Hello|20|4",
            "Hello|22|5",
            "Hello|24|NULL",
            "Hello|21|NULL"
        ]
    );
}

const CATEGORIES: Oid = Oid(607);
const CATEGORY_COLUMNS: &[(&str, Oid)] = &[("id", INT8), ("name", TEXT), ("parent_id", INT8)];

/// `SELECT c.name, p.name FROM categories c JOIN categories p
/// ON p.id = c.parent_id WHERE c.id = $1`: one table read twice.
fn categories_plan(id: i64) -> JoinPlan {
    let columns = &[("id", INT8), ("name", TEXT), ("parent_id", INT8)];
    let spec = JoinSpec {
        tables: vec![
            table(CATEGORIES, columns, equal("id", INT8, 0)),
            table(CATEGORIES, columns, no_filter()),
        ],
        driving: 0,
        edges: vec![Edge {
            parent: 0,
            parent_column: 2,
            child: 1,
            column: 0,
        }],
        extra: Vec::new(),
        outputs: vec![(0, 1), (1, 1)],
        order: Vec::new(),
        limit: None,
    };
    let mut plan = plan(spec, &[KeyPart::Int(id)], None);
    plan.names = vec![("public".to_owned(), "categories".to_owned()); 2];
    plan
}

#[test]
fn a_table_read_twice_follows_both_of_its_roles() {
    let plan = categories_plan(1);
    assert_eq!(plan.tables(), [CATEGORIES]);
    let j = joined(
        &plan,
        &[&[&["1", "Bolts", "2"]], &[&["2", "Hardware", "NULL"]]],
    );
    assert_eq!(now(&j), ["Bolts|Hardware"]);
    assert_eq!(j.tables(), [CATEGORIES]);
    let names: HashSet<u64> = j.names(CATEGORIES).into_iter().collect();
    for name in [
        value_hash(CATEGORIES, "id", &KeyPart::Int(1)),
        value_hash(CATEGORIES, "id", &KeyPart::Int(2)),
        row_hash(CATEGORIES, &[KeyPart::Int(1)]),
        row_hash(CATEGORIES, &[KeyPart::Int(2)]),
    ] {
        assert!(names.contains(&name));
    }
    let renamed = batch(
        CATEGORIES,
        CATEGORY_COLUMNS,
        vec![
            Op::Put(vec![t("2"), t("Tools"), null()]),
            Op::Put(vec![t("1"), t("Screws"), t("2")]),
        ],
    );
    assert_eq!(commit(&j, &[renamed]), Ok(true));
    assert_eq!(now(&j), ["Screws|Tools"]);
    // Its parent becomes itself: the child role never read row 1.
    let own = batch(
        CATEGORIES,
        CATEGORY_COLUMNS,
        vec![Op::Put(vec![t("1"), t("Screws"), t("1")])],
    );
    assert_eq!(commit(&j, &[own]), Err(Lost::Incomplete));
}

/// Changes applied while the rows are read are kept and replayed on them,
/// in commit order even when a commit seen finished only late is kept
/// after a later one; a commit the rows already show changes nothing.
#[test]
fn changes_kept_while_rows_are_read_are_replayed_in_commit_order() {
    let plan = authored_plan();
    let j = Joined::pending(plan.clone(), &captured(&plan), usize::MAX);
    assert!(j.is_pending());
    assert!(j.names(USERS).is_empty());
    // Commit 5 renames the author (applied while the rows are read); commit
    // 4, seen finished only now, had renamed her before.
    let fifth = users(vec![Op::Put(vec![t("4"), t("ann@example.com"), t("Five")])]);
    let fourth = users(vec![Op::Put(vec![t("4"), t("ann@example.com"), t("Four")])]);
    assert_eq!(j.apply(&fifth, 5), Ok(()));
    assert_eq!(j.defer(&fourth, 4), Ok(true));
    // Nothing shown, nothing to end while pending.
    assert_eq!(j.finish(), Ok(false));
    // The rows were read in a snapshot that showed commit 4 only.
    let mut gather = Gather::new(&plan);
    gather.take(read(&[&["3", "4", "Hello"]])).expect("article");
    gather
        .take(read(&[&["4", "Four", "ann@example.com"]]))
        .expect("author");
    assert_eq!(j.fill(gather), Ok(()));
    assert!(!j.is_pending());
    assert_eq!(now(&j), ["3|Hello|Five|ann@example.com"]);
    // A commit seen finished after the rows were read is not kept.
    assert_eq!(j.defer(&fourth, 4), Ok(false));
}

/// Too many changes kept while the rows are read end the entry.
#[test]
fn changes_kept_while_rows_are_read_are_bounded() {
    let plan = authored_plan();
    let j = Joined::pending(plan.clone(), &captured(&plan), usize::MAX);
    let many = users(
        (0..5000)
            .map(|i| Op::Put(vec![t(&i.to_string()), t("x@x"), t("X")]))
            .collect(),
    );
    assert_eq!(j.apply(&many, 1), Err(Lost::Size));
}
