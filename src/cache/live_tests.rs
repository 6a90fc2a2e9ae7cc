#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::cdc::apply::Change;
use crate::sql::deps::KeySource;
use crate::sql::filter::{CmpOp, FilterColumn, FilterSpec, Pred};
use crate::sql::layout::SortKey;

const TABLE: Oid = Oid(500);
const INT4: Oid = Oid(23);
const TEXT: Oid = Oid(25);

/// `SELECT id, n, note FROM t WHERE n > 5 ORDER BY id [LIMIT limit]`.
fn layout(limit: Option<u64>, descending: bool) -> Layout {
    Layout {
        outputs: vec![
            ("id".to_owned(), INT4),
            ("n".to_owned(), INT4),
            ("note".to_owned(), TEXT),
        ],
        order: vec![SortKey {
            output: 0,
            descending,
            nulls_first: descending,
        }],
        limit,
    }
}

fn n_above_five() -> Filter {
    FilterSpec {
        columns: vec![FilterColumn {
            name: "n".to_owned(),
            type_oid: INT4,
        }],
        pred: Pred::Cmp {
            column: 0,
            op: CmpOp::Gt,
            value: KeySource::Lifted(0),
        },
    }
    .bind(TABLE, 77, &|_, _| Some(KeyPart::Int(5)))
    .unwrap()
}

type Row<'a> = (i64, Option<i64>, Option<&'a str>);

/// The reply the origin sends for `rows` (a `RowDescription` stands in as
/// opaque bytes).
fn reply(rows: &[Row<'_>]) -> CapturedResult {
    let mut data = Vec::new();
    for &(id, n, note) in rows {
        let id = id.to_string();
        let n = n.map(|n| n.to_string());
        data.extend_from_slice(&data_row(&[
            Some(id.as_bytes()),
            n.as_deref().map(str::as_bytes),
            note.map(str::as_bytes),
        ]));
    }
    let tag = format!("SELECT {}\0", rows.len());
    let mut complete = vec![b'C'];
    complete.extend_from_slice(&(tag.len() as u32 + 4).to_be_bytes());
    complete.extend_from_slice(tag.as_bytes());
    CapturedResult::new(
        Some(b"T\0\0\0\x06\0\0"),
        &data,
        rows.len() as u64,
        &complete,
    )
}

fn live(rows: &[Row<'_>], limit: Option<u64>) -> Live {
    Live::new(
        n_above_five(),
        layout(limit, false),
        &[(0, INT4)],
        &reply(rows),
        0,
        1 << 20,
    )
    .expect("the rows read as the layout says")
}

/// Apply every change of `b`; whether the reply changed.
fn apply(l: &Live, b: &NewRows) -> Result<bool, Lost> {
    let all: Vec<usize> = (0..b.changes.len()).collect();
    l.apply(b, &all).map(|a| a.changed)
}

fn columns() -> Arc<[(String, Oid)]> {
    vec![
        ("id".to_owned(), INT4),
        ("note".to_owned(), TEXT),
        ("n".to_owned(), INT4),
    ]
    .into()
}

/// A stream row (columns id, note, n): `None` note is unchanged TOAST.
fn tuple(id: i64, n: Option<i64>, note: Option<&str>) -> Tuple {
    let text = |s: String| ColumnValue::Text(Bytes::from(s));
    Tuple {
        columns: vec![
            text(id.to_string()),
            note.map_or(ColumnValue::UnchangedToast, |s| text(s.to_owned())),
            n.map_or(ColumnValue::Null, |n| text(n.to_string())),
        ],
    }
}

fn key(id: i64) -> Tuple {
    Tuple {
        columns: vec![
            ColumnValue::Text(Bytes::from(id.to_string())),
            ColumnValue::Null,
            ColumnValue::Null,
        ],
    }
}

enum Op<'a> {
    Upsert(i64, Option<i64>, Option<&'a str>),
    /// An update of the key: old id, new row.
    Rekey(i64, i64, Option<i64>),
    Delete(i64),
}

fn batch(ops: &[Op<'_>]) -> NewRows {
    let mut rows = Vec::new();
    let mut changes = Vec::new();
    for op in ops {
        match *op {
            Op::Upsert(id, n, note) => {
                rows.push(tuple(id, n, note));
                changes.push(Change {
                    old: None,
                    new: Some(rows.len() as u32 - 1),
                    names: Vec::new(),
                    keyed: true,
                });
            }
            Op::Rekey(old, id, n) => {
                rows.push(tuple(id, n, Some("moved")));
                changes.push(Change {
                    old: Some(key(old)),
                    new: Some(rows.len() as u32 - 1),
                    names: Vec::new(),
                    keyed: true,
                });
            }
            Op::Delete(id) => changes.push(Change {
                old: Some(key(id)),
                new: None,
                names: Vec::new(),
                keyed: true,
            }),
        }
    }
    NewRows {
        table: TABLE,
        columns: columns(),
        rows,
        changes,
        bytes: 0,
    }
}

#[test]
fn inserts_land_in_order_and_updates_replace_in_place() {
    let l = live(&[(1, Some(6), Some("a")), (4, Some(9), Some("d"))], None);
    let b = batch(&[
        Op::Upsert(3, Some(7), Some("c")),
        Op::Upsert(4, Some(10), Some("D")),
        Op::Upsert(9, Some(1), Some("filtered out")),
    ]);
    assert_eq!(apply(&l, &b), Ok(true));
    assert_eq!(
        *l.current(),
        reply(&[
            (1, Some(6), Some("a")),
            (3, Some(7), Some("c")),
            (4, Some(10), Some("D"))
        ])
    );
}

#[test]
fn rows_leaving_the_filter_or_deleted_go() {
    let l = live(
        &[
            (1, Some(6), Some("a")),
            (2, Some(7), None),
            (3, Some(8), Some("c")),
        ],
        None,
    );
    let b = batch(&[Op::Upsert(1, Some(5), Some("a")), Op::Delete(3)]);
    assert_eq!(apply(&l, &b), Ok(true));
    assert_eq!(*l.current(), reply(&[(2, Some(7), None)]));
    assert_eq!(l.rows(), 1);
}

#[test]
fn changes_elsewhere_leave_the_reply_alone() {
    let l = live(&[(1, Some(6), Some("a"))], None);
    let before = l.current().clone();
    let b = batch(&[Op::Upsert(2, Some(1), Some("x")), Op::Delete(7)]);
    assert_eq!(apply(&l, &b), Ok(false));
    assert_eq!(*l.current(), before);
}

#[test]
fn a_key_update_moves_the_row() {
    let l = live(&[(1, Some(6), Some("a")), (2, Some(7), Some("b"))], None);
    assert_eq!(apply(&l, &batch(&[Op::Rekey(1, 5, Some(6))])), Ok(true));
    assert_eq!(
        *l.current(),
        reply(&[(2, Some(7), Some("b")), (5, Some(6), Some("moved"))])
    );
}

#[test]
fn applying_a_commit_twice_changes_nothing_more() {
    // A capture whose snapshot already showed a commit gets it again.
    let l = live(&[(1, Some(6), Some("a"))], Some(3));
    let b = batch(&[
        Op::Upsert(2, Some(9), Some("b")),
        Op::Upsert(1, Some(8), Some("a2")),
        Op::Rekey(2, 7, Some(9)),
    ]);
    assert_eq!(apply(&l, &b), Ok(true));
    let once = l.current().clone();
    apply(&l, &b).unwrap();
    assert_eq!(*l.current(), once);
    assert_eq!(
        once,
        reply(&[(1, Some(8), Some("a2")), (7, Some(9), Some("moved"))])
    );
}

#[test]
fn a_full_limit_window_takes_rows_before_its_end_and_ignores_rows_after_it() {
    let l = live(&[(2, Some(6), Some("b")), (4, Some(6), Some("d"))], Some(2));
    // After the window's last row: it was past the window before, too.
    assert_eq!(
        apply(&l, &batch(&[Op::Upsert(9, Some(6), Some("i"))])),
        Ok(false)
    );
    // Before it: the last row falls out.
    assert_eq!(
        apply(&l, &batch(&[Op::Upsert(3, Some(6), Some("c"))])),
        Ok(true)
    );
    assert_eq!(
        *l.current(),
        reply(&[(2, Some(6), Some("b")), (3, Some(6), Some("c"))])
    );
    // A delete and an insert before the end keep it full.
    let b = batch(&[Op::Delete(3), Op::Upsert(1, Some(6), Some("a"))]);
    assert_eq!(apply(&l, &b), Ok(true));
    assert_eq!(
        *l.current(),
        reply(&[(1, Some(6), Some("a")), (2, Some(6), Some("b"))])
    );
    // A row gone with nothing to refill it from: the window is lost.
    assert_eq!(apply(&l, &batch(&[Op::Delete(1)])), Err(Lost::Window));
}

#[test]
fn a_limit_window_not_full_holds_every_row() {
    let l = live(&[(2, Some(6), Some("b"))], Some(3));
    let b = batch(&[Op::Upsert(9, Some(6), Some("i")), Op::Delete(2)]);
    assert_eq!(apply(&l, &b), Ok(true));
    assert_eq!(*l.current(), reply(&[(9, Some(6), Some("i"))]));
    let b = batch(&[
        Op::Upsert(1, Some(6), Some("a")),
        Op::Upsert(3, Some(6), Some("c")),
        Op::Upsert(5, Some(6), Some("e")),
    ]);
    assert_eq!(apply(&l, &b), Ok(true));
    assert_eq!(
        *l.current(),
        reply(&[
            (1, Some(6), Some("a")),
            (3, Some(6), Some("c")),
            (5, Some(6), Some("e"))
        ])
    );
    // Now full: 9 fell out and is past the window.
    assert_eq!(apply(&l, &batch(&[Op::Delete(9)])), Ok(false));
}

#[test]
fn unchanged_toast_keeps_the_held_value_or_gives_up() {
    let l = live(&[(1, Some(6), Some("long text"))], None);
    assert_eq!(apply(&l, &batch(&[Op::Upsert(1, Some(7), None)])), Ok(true));
    assert_eq!(*l.current(), reply(&[(1, Some(7), Some("long text"))]));
    // A row not held comes in with a value the stream did not send.
    assert_eq!(
        apply(&l, &batch(&[Op::Upsert(2, Some(7), None)])),
        Err(Lost::Toast)
    );
}

#[test]
fn nulls_in_the_filter_column_are_not_matches() {
    let l = live(&[(1, Some(6), Some("a"))], None);
    assert_eq!(
        apply(&l, &batch(&[Op::Upsert(1, None, Some("a"))])),
        Ok(true)
    );
    assert_eq!(*l.current(), reply(&[]));
}

#[test]
fn an_output_column_the_stream_lacks_is_lost() {
    let l = live(&[(1, Some(6), Some("a"))], None);
    let mut b = batch(&[Op::Upsert(2, Some(7), Some("b"))]);
    b.columns = vec![
        ("id".to_owned(), INT4),
        ("note".to_owned(), TEXT),
        ("n".to_owned(), Oid(20)),
    ]
    .into();
    // The output `n` is not there with its type either.
    assert_eq!(apply(&l, &b), Err(Lost::Columns));
}

#[test]
fn descending_order_with_nulls_first() {
    let l = Live::new(
        n_above_five(),
        Layout {
            order: vec![
                SortKey {
                    output: 1,
                    descending: true,
                    nulls_first: true,
                },
                SortKey {
                    output: 0,
                    descending: false,
                    nulls_first: false,
                },
            ],
            ..layout(None, true)
        },
        &[(0, INT4)],
        &reply(&[(3, Some(9), Some("c")), (1, Some(7), Some("a"))]),
        0,
        1 << 20,
    )
    .unwrap();
    let b = batch(&[
        Op::Upsert(2, Some(8), Some("b")),
        Op::Upsert(4, Some(9), Some("d")),
    ]);
    assert_eq!(apply(&l, &b), Ok(true));
    assert_eq!(
        *l.current(),
        reply(&[
            (3, Some(9), Some("c")),
            (4, Some(9), Some("d")),
            (2, Some(8), Some("b")),
            (1, Some(7), Some("a"))
        ])
    );
}

#[test]
fn rows_in_another_order_than_understood_are_not_followed() {
    let rows = reply(&[(2, Some(6), Some("b")), (1, Some(6), Some("a"))]);
    assert!(
        Live::new(
            n_above_five(),
            layout(None, false),
            &[(0, INT4)],
            &rows,
            0,
            1 << 20
        )
        .is_none()
    );
    let more_than_the_limit = reply(&[(1, Some(6), None), (2, Some(6), None)]);
    assert!(
        Live::new(
            n_above_five(),
            layout(Some(1), false),
            &[(0, INT4)],
            &more_than_the_limit,
            0,
            1 << 20
        )
        .is_none()
    );
}

#[test]
fn a_result_grown_past_its_bound_is_given_up() {
    let rows = reply(&[(1, Some(6), Some("a"))]);
    let l = Live::new(
        n_above_five(),
        layout(None, false),
        &[(0, INT4)],
        &rows,
        0,
        rows.len() + 10,
    )
    .unwrap();
    let b = batch(&[Op::Upsert(2, Some(6), Some("a longer note than allowed"))]);
    assert_eq!(apply(&l, &b), Err(Lost::Size));
}

#[test]
fn a_commit_touches_an_entry_through_its_rows_or_its_filter() {
    let l = live(&[(1, Some(6), Some("a")), (3, Some(8), Some("c"))], Some(2));
    // Rows it does not hold, outside the WHERE before and after.
    assert!(!l.touched_by(&batch(&[Op::Upsert(2, Some(1), Some("b")), Op::Delete(9)])));
    // A row it holds, by its old key or its new one.
    assert!(l.touched_by(&batch(&[Op::Delete(3)])));
    assert!(l.touched_by(&batch(&[Op::Rekey(4, 1, Some(1))])));
    assert!(l.touched_by(&batch(&[Op::Upsert(1, Some(1), Some("a"))])));
    // A new row the WHERE might accept, even past the window.
    assert!(l.touched_by(&batch(&[Op::Upsert(9, Some(7), Some("i"))])));
    assert!(!l.touched_by(&batch(&[Op::Upsert(9, None, Some("i"))])));
}

/// `… WHERE grp = 3 ORDER BY id` over (id, n, note) where `n` holds the
/// group: a filter anchored on `n = 3`.
fn n_is_three() -> Filter {
    FilterSpec {
        columns: vec![FilterColumn {
            name: "n".to_owned(),
            type_oid: INT4,
        }],
        pred: Pred::And(vec![Pred::Cmp {
            column: 0,
            op: CmpOp::Eq,
            value: KeySource::Lifted(0),
        }]),
    }
    .bind(TABLE, 78, &|_, _| Some(KeyPart::Int(3)))
    .unwrap()
}

#[test]
fn changes_reach_the_entries_holding_their_rows_or_anchored_on_their_values() {
    use crate::cache::{Depend, Limits, ResultCache, row_hash, value_hash};
    let cache = ResultCache::new(Limits {
        max_memory: 1 << 20,
        max_result_size: 1 << 20,
        admit_after: 1,
        role_ttl: std::time::Duration::from_secs(60),
        fenced: false,
    });
    let deps = [Depend::Table(TABLE)];
    let mut anchored = cache
        .begin_capture(b"anchored", &[TABLE], Some(&deps))
        .unwrap();
    let rows = reply(&[(1, Some(3), Some("a")), (2, Some(3), Some("b"))]);
    assert!(cache.narrow_live(
        &mut anchored,
        n_is_three(),
        layout(None, false),
        &[(0, INT4)],
        &rows
    ));
    let mut scanned = cache
        .begin_capture(b"scanned", &[TABLE], Some(&deps))
        .unwrap();
    let rows = reply(&[(7, Some(9), Some("g"))]);
    assert!(cache.narrow_live(
        &mut scanned,
        n_above_five(),
        layout(None, false),
        &[(0, INT4)],
        &rows
    ));
    let (anchored, scanned) = (anchored.live().unwrap(), scanned.live().unwrap());
    let row = |id: i64| row_hash(TABLE, &[KeyPart::Int(id)]);
    let n = |v: i64| value_hash(TABLE, "n", &KeyPart::Int(v));
    // Changes: their names and new row (id, n), if any.
    type Named = (Vec<u64>, Option<(i64, i64)>);
    let routed = |changes: Vec<Named>, keyed: bool| {
        let mut b = batch(&[]);
        for (names, new) in changes {
            let new = new.map(|(id, v)| {
                b.rows.push(tuple(id, Some(v), Some("x")));
                b.rows.len() as u32 - 1
            });
            b.changes.push(Change {
                old: None,
                new,
                names,
                keyed,
            });
        }
        let mut out: Vec<(bool, Vec<usize>)> = cache
            .lives_for(&b)
            .into_iter()
            .map(|(l, which)| {
                assert!(Arc::ptr_eq(&l, &anchored) || Arc::ptr_eq(&l, &scanned));
                (Arc::ptr_eq(&l, &anchored), which)
            })
            .collect();
        out.sort();
        out
    };
    let other = (vec![row(5), n(4)], Some((5, 4)));
    // Another group, another row, outside the other WHERE: neither.
    assert_eq!(routed(vec![other.clone()], true), []);
    // Its group's value, or a row it holds; a new row the other WHERE
    // might accept.
    assert_eq!(
        routed(
            vec![
                other.clone(),
                (vec![row(6), n(3)], Some((6, 3))),
                (vec![row(2), n(8)], Some((2, 8)))
            ],
            true
        ),
        [(false, vec![2]), (true, vec![1, 2])]
    );
    // A row it holds, then every later change of the commit.
    assert_eq!(
        routed(vec![(vec![row(7)], None), other.clone()], true),
        [(false, vec![0, 1])]
    );
    // A change that does not name its row's key reaches every entry.
    assert_eq!(
        routed(vec![other.clone()], false),
        [(false, vec![0]), (true, vec![0])]
    );
    // Rows it starts or stops holding route changes to it from then on.
    cache.reindex(&anchored, &[row(9)], &[row(2)]);
    assert_eq!(
        routed(vec![(vec![row(2)], None), (vec![row(9)], None)], true),
        [(true, vec![1])]
    );
}

#[test]
fn applying_reports_the_rows_it_starts_and_stops_holding() {
    let l = live(&[(1, Some(6), Some("a")), (2, Some(6), Some("b"))], Some(2));
    let b = batch(&[
        Op::Delete(2),
        Op::Upsert(0, Some(9), Some("z")),
        Op::Upsert(9, Some(1), None),
    ]);
    let all: Vec<usize> = (0..b.changes.len()).collect();
    let row = |id: i64| crate::cache::row_hash(TABLE, &[KeyPart::Int(id)]);
    let applied = l.apply(&b, &all).unwrap();
    assert!(applied.changed);
    assert_eq!(applied.added, [row(0)]);
    assert_eq!(applied.removed, [row(2)]);
    // Only the changes chosen are applied.
    let b = batch(&[Op::Delete(1), Op::Upsert(-1, Some(7), Some("y"))]);
    let applied = l.apply(&b, &[1]).unwrap();
    assert_eq!(
        (applied.added, applied.removed),
        (vec![row(-1)], vec![row(1)])
    );
    assert_eq!(
        *l.current(),
        reply(&[(-1, Some(7), Some("y")), (0, Some(9), Some("z"))])
    );
}

fn fresh_cache() -> crate::cache::ResultCache {
    crate::cache::ResultCache::new(crate::cache::Limits {
        max_memory: 1 << 20,
        max_result_size: 1 << 20,
        admit_after: 1,
        role_ttl: std::time::Duration::from_secs(60),
        fenced: false,
    })
}

/// A live entry registered in `cache` under `key` for `rows`.
fn registered(
    cache: &crate::cache::ResultCache,
    key: &[u8],
    filter: Filter,
    rows: &[Row<'_>],
) -> Arc<Live> {
    let deps = [crate::cache::Depend::Table(TABLE)];
    let mut capture = cache.begin_capture(key, &[TABLE], Some(&deps)).unwrap();
    assert!(cache.narrow_live(
        &mut capture,
        filter,
        layout(None, false),
        &[(0, INT4)],
        &reply(rows)
    ));
    capture.live().unwrap()
}

/// Found by review: a row entering an entry is not in the routing index
/// when the same commit's next change to it is routed.
#[test]
fn a_row_that_enters_and_leaves_in_one_commit_is_followed() {
    use crate::cache::{row_hash, value_hash};
    let cache = fresh_cache();
    let anchored = registered(
        &cache,
        b"anchored",
        n_is_three(),
        &[(1, Some(3), Some("a"))],
    );
    let row = |id: i64| row_hash(TABLE, &[KeyPart::Int(id)]);
    let n = |v: i64| value_hash(TABLE, "n", &KeyPart::Int(v));
    // INSERT (10, n = 3); UPDATE … SET n = 4 WHERE id = 10 (old value not sent).
    let mut b = batch(&[
        Op::Upsert(10, Some(3), Some("x")),
        Op::Upsert(10, Some(4), Some("x")),
    ]);
    b.changes[0].names = vec![row(10), n(3)];
    b.changes[1].names = vec![row(10), n(4)];
    let picked = cache.lives_for(&b);
    let [(l, which)] = picked.as_slice() else {
        panic!("{} entries", picked.len());
    };
    assert_eq!(which, &[0, 1]);
    l.apply(&b, which).unwrap();
    assert_eq!(*anchored.current(), reply(&[(1, Some(3), Some("a"))]));
}

/// Found by review: replaying a key change whose snapshot already showed
/// it and a later insert under the old key must keep the moved row's own
/// unsent value.
#[test]
fn an_unsent_value_comes_from_the_row_under_the_new_key_first() {
    let l = live(&[(1, Some(6), Some("B")), (2, Some(6), Some("A"))], None);
    let mut moved = batch(&[Op::Rekey(1, 2, Some(6))]);
    moved.rows[0].columns[1] = ColumnValue::UnchangedToast;
    apply(&l, &moved).unwrap();
    apply(&l, &batch(&[Op::Upsert(1, Some(6), Some("B"))])).unwrap();
    assert_eq!(
        *l.current(),
        reply(&[(1, Some(6), Some("B")), (2, Some(6), Some("A"))])
    );
    // Without the new key held, the old row's value.
    let l = live(&[(1, Some(6), Some("A"))], None);
    apply(&l, &moved).unwrap();
    assert_eq!(*l.current(), reply(&[(2, Some(6), Some("A"))]));
}

/// Found by review: names of dropped entries left the routing index only
/// when their row changed again.
#[test]
fn the_routing_index_forgets_dropped_entries() {
    let cache = fresh_cache();
    let _kept = registered(&cache, b"kept", n_above_five(), &[(-1, Some(9), None)]);
    for page in 0..50i64 {
        let rows: Vec<Row<'_>> = (0..20)
            .map(|i| (page * 20 + i, Some(9), Some("x")))
            .collect();
        drop(registered(
            &cache,
            format!("page{page}").as_bytes(),
            n_above_five(),
            &rows,
        ));
    }
    let names = |cache: &crate::cache::ResultCache| {
        let lives = cache.lives.lock().unwrap();
        lives[&TABLE].by_name.values().map(Vec::len).sum::<usize>()
    };
    assert!(names(&cache) > 1000);
    for _ in 0..super::super::PRUNE_EVERY {
        cache.lives_for(&batch(&[Op::Delete(-5)]));
    }
    assert_eq!(names(&cache), 1);
}

/// `n BETWEEN lo AND hi`.
fn n_between(lo: i64, hi: i64) -> Filter {
    FilterSpec {
        columns: vec![FilterColumn {
            name: "n".to_owned(),
            type_oid: INT4,
        }],
        pred: Pred::And(vec![
            Pred::Cmp {
                column: 0,
                op: CmpOp::Ge,
                value: KeySource::Lifted(0),
            },
            Pred::Cmp {
                column: 0,
                op: CmpOp::Le,
                value: KeySource::Lifted(1),
            },
        ]),
    }
    .bind(TABLE, 79, &|s, _| match s {
        KeySource::Lifted(0) => Some(KeyPart::Int(lo)),
        _ => Some(KeyPart::Int(hi)),
    })
    .unwrap()
}

#[test]
fn narrow_ranges_are_found_by_the_buckets_of_new_values() {
    let cache = fresh_cache();
    let low = registered(&cache, b"low", n_between(6, 20), &[(1, Some(7), Some("a"))]);
    let high = registered(&cache, b"high", n_between(5000, 5100), &[]);
    let wide = registered(&cache, b"wide", n_between(6, 1 << 40), &[]);
    assert!(low.buckets.is_some() && high.buckets.is_some() && wide.buckets.is_none());
    let routed = |values: &[Option<i64>]| {
        let mut b = batch(&[]);
        for &v in values {
            b.rows.push(tuple(100, v, Some("x")));
            b.changes.push(Change {
                old: None,
                new: Some(b.rows.len() as u32 - 1),
                names: Vec::new(),
                keyed: true,
            });
        }
        let mut out: Vec<(&str, Vec<usize>)> = cache
            .lives_for(&b)
            .into_iter()
            .map(|(l, which)| {
                let name = if Arc::ptr_eq(&l, &low) {
                    "low"
                } else if Arc::ptr_eq(&l, &high) {
                    "high"
                } else {
                    "wide"
                };
                (name, which)
            })
            .collect();
        out.sort();
        out
    };
    // A value in a range's bucket reaches it (the wide one is tested).
    assert_eq!(routed(&[Some(8)]), [("low", vec![0]), ("wide", vec![0])]);
    assert_eq!(
        routed(&[Some(3000), Some(5050)]),
        [("high", vec![1]), ("wide", vec![0, 1])]
    );
    // In the bucket but outside the range: its WHERE decides.
    assert_eq!(routed(&[Some(30)]), [("wide", vec![0])]);
    // NULL is in no range.
    assert_eq!(routed(&[None]), []);
}
