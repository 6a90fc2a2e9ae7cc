use std::time::Duration;

use super::*;

/// [`row_hash`] of integer key values.
fn int_row(table: Oid, key: &[i64]) -> u64 {
    let parts: Vec<KeyPart> = key.iter().map(|&k| KeyPart::Int(k)).collect();
    row_hash(table, &parts)
}

/// [`value_hash`] of an integer value.
fn int_value(table: Oid, column: &str, value: i64) -> u64 {
    value_hash(table, column, &KeyPart::Int(value))
}

fn limits(max_memory: u64) -> Limits {
    Limits {
        max_memory,
        max_result_size: max_memory,
        admit_after: 2,
        role_ttl: Duration::from_secs(60),
        fenced: false,
    }
}

fn fenced() -> ResultCache {
    let cache = ResultCache::new(Limits {
        fenced: true,
        ..limits(1 << 20)
    });
    cache.set_serving(true);
    cache
}

fn result(rows: usize, row_len: usize) -> CapturedResult {
    CapturedResult::new(
        Some(b"T\0\0\0\x06\0\0"),
        &vec![b'D'; rows * row_len],
        rows as u64,
        b"C\0\0\0\x0dSELECT 1\0",
    )
}

fn fill(cache: &ResultCache, key: &[u8], tables: &[Oid], rows: usize) {
    let capture = cache.begin_capture(key, tables, None).unwrap();
    cache.finish_capture(capture, 7, result(rows, 10)).unwrap();
}

#[test]
fn capture_then_hit() {
    let cache = ResultCache::new(limits(1 << 20));
    assert!(cache.get(KeyRef(b"k")).is_none());
    fill(&cache, b"k", &[Oid(100)], 3);
    let e = cache.get(KeyRef(b"k")).unwrap();
    assert_eq!(e.result.row_count, 3);
    assert_eq!(e.shape, 7);
    assert_eq!(cache.counters().rows.load(Ordering::Relaxed), 3);
    assert_eq!(cache.entry_count(), 1);
}

#[test]
fn single_flight() {
    let cache = ResultCache::new(limits(1 << 20));
    let first = cache.begin_capture(b"k", &[], None).unwrap();
    assert!(cache.begin_capture(b"k", &[], None).is_none());
    assert!(cache.begin_capture(b"other", &[], None).is_some());
    cache.abandon_capture(first);
    assert!(cache.begin_capture(b"k", &[], None).is_some());
}

#[test]
fn write_to_the_table_invalidates() {
    let cache = ResultCache::new(limits(1 << 20));
    fill(&cache, b"a", &[Oid(100)], 1);
    fill(&cache, b"b", &[Oid(200)], 1);
    cache.invalidate(&Written {
        tables: vec![Oid(100)],
        all: false,
    });
    assert!(cache.get(KeyRef(b"a")).is_none());
    assert!(cache.get(KeyRef(b"b")).is_some());
    cache.invalidate(&Written {
        tables: vec![],
        all: true,
    });
    assert!(cache.get(KeyRef(b"b")).is_none());
}

#[test]
fn write_during_capture_makes_the_capture_stale() {
    let cache = ResultCache::new(limits(1 << 20));
    let capture = cache.begin_capture(b"a", &[Oid(100)], None).unwrap();
    cache.invalidate(&Written {
        tables: vec![Oid(100)],
        all: false,
    });
    cache.finish_capture(capture, 1, result(1, 10)).unwrap();
    assert!(cache.get(KeyRef(b"a")).is_none());
}

#[test]
fn sweep_frees_stale_entries() {
    let cache = ResultCache::new(limits(1 << 20));
    for i in 0..50u32 {
        fill(&cache, &i.to_be_bytes(), &[Oid(i % 2)], 2);
    }
    assert_eq!(cache.counters().rows.load(Ordering::Relaxed), 100);
    cache.invalidate(&Written {
        tables: vec![Oid(0)],
        all: false,
    });
    cache.sweep();
    assert_eq!(cache.entry_count(), 25);
    assert_eq!(cache.counters().rows.load(Ordering::Relaxed), 50);
}

#[test]
fn memory_stays_bounded() {
    let max = 256 * 1024;
    let cache = ResultCache::new(limits(max));
    for i in 0..10_000u32 {
        fill(&cache, &i.to_be_bytes(), &[], 4);
        assert!(cache.memory() <= max, "{} > {max}", cache.memory());
    }
    assert!(cache.counters().evictions.load(Ordering::Relaxed) > 0);
    let held = cache.counters().rows.load(Ordering::Relaxed);
    assert_eq!(held as usize, cache.entry_count() * 4);
}

#[test]
fn oversized_results_are_not_stored() {
    let mut l = limits(1 << 20);
    l.max_result_size = 1000;
    let cache = ResultCache::new(l);
    let capture = cache.begin_capture(b"big", &[], None).unwrap();
    assert!(cache.finish_capture(capture, 1, result(200, 10)).is_none());
    assert!(cache.get(KeyRef(b"big")).is_none());
    // the claim is released
    assert!(cache.begin_capture(b"big", &[], None).is_some());
}

#[test]
fn admission_after_sightings() {
    let cache = ResultCache::new(limits(1 << 20));
    assert!(!cache.sighted(9));
    assert!(cache.sighted(9));
    assert!(cache.sighted(9));
    assert!(!cache.sighted(10));
}

#[test]
fn grants_are_per_role_and_expire() {
    let mut l = limits(1 << 20);
    l.role_ttl = Duration::from_millis(0);
    let expired = ResultCache::new(l);
    let alice: Arc<str> = Arc::from("alice");
    expired.grant(&alice, 1);
    assert!(expired.granted(&alice, 1).is_none());

    let cache = ResultCache::new(limits(1 << 20));
    let bob: Arc<str> = Arc::from("bob");
    cache.grant(&alice, 1);
    assert!(cache.granted(&alice, 1).is_some());
    assert!(cache.granted(&bob, 1).is_none());
    assert!(cache.granted(&alice, 2).is_none());
}

#[test]
fn classes_are_interned() {
    let cache = ResultCache::new(limits(1 << 20));
    let a = cache.class_id("UTC|ISO, MDY");
    let b = cache.class_id("Asia/Kolkata|ISO, MDY");
    assert_ne!(a, b);
    assert_eq!(cache.class_id("UTC|ISO, MDY"), a);
}

#[test]
fn grant_deadlines_on_the_coarse_clock() {
    let cache = ResultCache::new(limits(1 << 20));
    let alice: Arc<str> = Arc::from("alice");
    assert!(cache.granted_until(&alice, 1).is_none());
    cache.grant(&alice, 1);
    cache.tick();
    let until = cache.granted_until(&alice, 1).unwrap();
    // role_ttl is 60 s: the deadline is at most that far, rounded down.
    assert!(until <= cache.coarse_now() + 60);
    assert!(until >= cache.coarse_now() + 58);
}

#[test]
fn fenced_entry_waits_for_its_position() {
    let cache = fenced();
    cache.advance(100);
    fill(&cache, b"k", &[Oid(1)], 1);
    // Stored, but no fence position yet.
    assert!(cache.get(KeyRef(b"k")).is_none());
    assert_eq!(cache.entry_count(), 1);
    // Not captured again while it waits.
    assert!(cache.begin_capture(b"k", &[Oid(1)], None).is_none());
    let pending = cache.take_waiting();
    assert_eq!(pending.len(), 1);
    assert!(cache.take_waiting().is_empty());
    pending.settle(150);
    assert!(cache.get(KeyRef(b"k")).is_none(), "applied 100 < 150");
    cache.advance(149);
    assert!(cache.get(KeyRef(b"k")).is_none());
    cache.advance(150);
    assert!(cache.get(KeyRef(b"k")).is_some());
    // The applied position never moves back.
    cache.advance(120);
    assert_eq!(cache.applied(), 150);
}

#[test]
fn fenced_entry_invalidated_while_pending_is_never_served() {
    let cache = fenced();
    fill(&cache, b"k", &[Oid(1)], 1);
    cache.invalidate(&Written {
        tables: vec![Oid(1)],
        all: false,
    });
    cache.take_waiting().settle(10);
    cache.advance(10);
    assert!(cache.get(KeyRef(b"k")).is_none());
    // A stale pending entry does not block a new capture.
    assert!(cache.begin_capture(b"k", &[Oid(1)], None).is_some());
}

#[test]
fn nothing_served_while_not_serving() {
    let cache = fenced();
    fill(&cache, b"k", &[Oid(1)], 1);
    cache.take_waiting().settle(0);
    assert!(cache.get(KeyRef(b"k")).is_some());
    cache.set_serving(false);
    assert!(cache.get(KeyRef(b"k")).is_none());
    cache.set_serving(true);
    assert!(cache.get(KeyRef(b"k")).is_some());
}

#[test]
fn unfenced_cache_always_serves() {
    let cache = ResultCache::new(limits(1 << 20));
    cache.set_serving(false);
    fill(&cache, b"k", &[Oid(1)], 1);
    assert!(cache.take_waiting().is_empty());
    assert!(cache.get(KeyRef(b"k")).is_some());
}

#[test]
fn clear_drops_pending_and_captures_under_way() {
    let cache = fenced();
    fill(&cache, b"a", &[Oid(1)], 1);
    let under_way = cache.begin_capture(b"b", &[Oid(2)], None).unwrap();
    let ticket = cache.ticket();
    cache.clear();
    let waiting = cache.take_waiting();
    assert_eq!(waiting.len(), 1, "the ticket, not the entry");
    waiting.settle(5);
    cache.advance(4);
    assert!(!cache.passed(&ticket));
    cache.advance(5);
    assert!(cache.passed(&ticket));
    assert_eq!(cache.entry_count(), 0);
    cache.finish_capture(under_way, 7, result(1, 10)).unwrap();
    cache.take_waiting().settle(0);
    assert!(cache.get(KeyRef(b"b")).is_none(), "began before the clear");
}

#[test]
fn ticket_passes_once_settled_and_applied() {
    let cache = fenced();
    let ticket = cache.ticket();
    cache.advance(u64::MAX - 1);
    assert!(!cache.passed(&ticket), "unsettled");
    assert!(cache.has_waiting());
    cache.take_waiting().settle(42);
    assert!(!cache.has_waiting());
    cache.restart(41);
    assert_eq!(cache.applied(), 41, "behind the last position");
    assert!(cache.passed(&ticket), "issued before the restart");
    let ticket = cache.ticket();
    cache.take_waiting().settle(42);
    assert!(!cache.passed(&ticket));
    cache.advance(42);
    assert!(cache.passed(&ticket));
}

#[test]
fn row_entries_depend_on_their_row_only() {
    let cache = ResultCache::new(limits(1 << 20));
    let t = Oid(100);
    let row = |k: i64| int_row(t, &[k]);
    let fill_row = |key: &[u8], k: i64| {
        let capture = cache
            .begin_capture(key, &[t], Some(&[Depend::Row(t, row(k))]))
            .unwrap();
        cache.finish_capture(capture, 7, result(1, 10)).unwrap();
    };
    fill_row(b"one", 1);
    fill_row(b"two", 2);
    fill(&cache, b"scan", &[t], 5);
    // Row 2 changed (named by key): its entry and the table's other
    // entries go, row 1's entry stays.
    cache.invalidate_rows(&[(t, row(2))]);
    assert!(cache.get(KeyRef(b"one")).is_some());
    assert!(cache.get(KeyRef(b"two")).is_none());
    assert!(cache.get(KeyRef(b"scan")).is_none());
    // A change naming no row (or a write through the proxy) takes all.
    cache.invalidate(&Written {
        tables: vec![t],
        all: false,
    });
    assert!(cache.get(KeyRef(b"one")).is_none());
}

#[test]
fn join_entries_depend_on_their_rows_and_values() {
    let cache = ResultCache::new(limits(1 << 20));
    let (articles, votes, users) = (Oid(100), Oid(101), Oid(102));
    let any = any_value_hash(votes, "article_id");
    let fill_join = |key: &[u8], id: i64| {
        let deps = [
            Depend::Row(articles, int_row(articles, &[id])),
            Depend::Value(votes, int_value(votes, "article_id", id), any),
            Depend::Table(users),
        ];
        let capture = cache
            .begin_capture(key, &[articles, votes, users], Some(&deps))
            .unwrap();
        cache.finish_capture(capture, 7, result(3, 10)).unwrap();
    };
    fill_join(b"a1", 1);
    fill_join(b"a2", 2);
    // A vote for article 2 (its article_id named by value).
    cache.invalidate_rows(&[
        (votes, int_row(votes, &[900])),
        (votes, int_value(votes, "article_id", 2)),
    ]);
    assert!(cache.get(KeyRef(b"a1")).is_some());
    assert!(cache.get(KeyRef(b"a2")).is_none());
    // A vote deleted whose article the stream did not say.
    cache.invalidate_rows(&[(votes, int_row(votes, &[901])), (votes, any)]);
    assert!(cache.get(KeyRef(b"a1")).is_none());
    fill_join(b"a1", 1);
    // Any change to users (no narrower dependency).
    cache.invalidate_rows(&[(users, int_row(users, &[5]))]);
    assert!(cache.get(KeyRef(b"a1")).is_none());
    fill_join(b"a1", 1);
    // Article 1's row; another article's row leaves it alone.
    cache.invalidate_rows(&[(articles, int_row(articles, &[3]))]);
    assert!(cache.get(KeyRef(b"a1")).is_some());
    cache.invalidate_rows(&[(articles, int_row(articles, &[1]))]);
    assert!(cache.get(KeyRef(b"a1")).is_none());
}

#[test]
fn value_hashes_name_table_column_and_value() {
    let h = |t: u32, c: &str, v: i64| int_value(Oid(t), c, v);
    assert_eq!(h(1, "a", 5), h(1, "a", 5));
    assert_ne!(h(1, "a", 5), h(2, "a", 5));
    assert_ne!(h(1, "a", 5), h(1, "b", 5));
    assert_ne!(h(1, "a", 5), h(1, "a", 6));
    assert_ne!(h(1, "a", 5), int_row(Oid(1), &[5]));
    assert_ne!(any_value_hash(Oid(1), "a"), any_value_hash(Oid(1), "b"));
}

#[test]
fn row_hash_is_stable_and_keyed_by_table() {
    assert_eq!(int_row(Oid(1), &[5]), int_row(Oid(1), &[5]));
    assert_ne!(int_row(Oid(1), &[5]), int_row(Oid(2), &[5]));
    assert_ne!(int_row(Oid(1), &[5, 6]), int_row(Oid(1), &[6, 5]));
}

#[test]
fn a_lookup_narrows_a_table_dependency_to_one_row() {
    let cache = ResultCache::new(limits(1 << 20));
    let (articles, users) = (Oid(100), Oid(102));
    let deps = [
        Depend::Row(articles, int_row(articles, &[1])),
        Depend::Table(users),
    ];
    let begin = |key: &[u8]| {
        cache
            .begin_capture(key, &[articles, users], Some(&deps))
            .unwrap()
    };

    // Narrowed to user 5: other users' changes leave it alone.
    let mut capture = begin(b"narrowed");
    assert!(cache.narrow(&mut capture, users, Some(int_row(users, &[5]))));
    cache.finish_capture(capture, 7, result(1, 10)).unwrap();
    cache.invalidate_rows(&[(users, int_row(users, &[6]))]);
    assert!(cache.get(KeyRef(b"narrowed")).is_some());
    cache.invalidate_rows(&[(users, int_row(users, &[5]))]);
    assert!(cache.get(KeyRef(b"narrowed")).is_none());

    // A change to users applied between the capture and the lookup: not
    // narrowed, and stale.
    let mut capture = begin(b"raced");
    cache.invalidate_rows(&[(users, int_row(users, &[6]))]);
    assert!(!cache.narrow(&mut capture, users, Some(int_row(users, &[5]))));
    cache.finish_capture(capture, 7, result(1, 10)).unwrap();
    assert!(cache.get(KeyRef(b"raced")).is_none());

    // No user can join (no article, or its author_id is NULL): only
    // changes naming no row (a truncate) matter.
    let mut capture = begin(b"none");
    assert!(cache.narrow(&mut capture, users, None));
    cache.finish_capture(capture, 7, result(0, 10)).unwrap();
    cache.invalidate_rows(&[(users, int_row(users, &[5]))]);
    assert!(cache.get(KeyRef(b"none")).is_some());
    cache.invalidate(&Written {
        tables: vec![users],
        all: false,
    });
    assert!(cache.get(KeyRef(b"none")).is_none());

    // Two instances of the table depending on every change (a self-join):
    // one lookup cannot narrow their shared dependency.
    let both = [Depend::Table(users), Depend::Table(users)];
    let mut capture = cache
        .begin_capture(b"self", &[users, users], Some(&both))
        .unwrap();
    assert!(!cache.narrow(&mut capture, users, Some(int_row(users, &[5]))));
    cache.abandon_capture(capture);
}

#[test]
fn a_result_narrows_value_dependencies_to_the_rows_it_read() {
    let cache = ResultCache::new(limits(1 << 20));
    let (comments, posts) = (Oid(200), Oid(201));
    let any = any_value_hash(comments, "post_id");
    let deps = [
        Depend::Value(comments, int_value(comments, "post_id", 7), any),
        Depend::Row(posts, int_row(posts, &[7])),
    ];
    let begin = |key: &[u8]| {
        cache
            .begin_capture(key, &[comments, posts], Some(&deps))
            .unwrap()
    };
    let members = [int_row(comments, &[1]), int_row(comments, &[2])];

    let mut capture = begin(b"narrowed");
    assert!(cache.narrow_members(&mut capture, comments, any, &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    // An update or delete of another comment (old post_id not sent).
    cache.invalidate_rows(&[(comments, int_row(comments, &[9])), (comments, any)]);
    assert!(cache.get(KeyRef(b"narrowed")).is_some());
    // A comment moved to post 7 (its new value named).
    cache.invalidate_rows(&[
        (comments, int_row(comments, &[9])),
        (comments, int_value(comments, "post_id", 7)),
        (comments, any),
    ]);
    assert!(cache.get(KeyRef(b"narrowed")).is_none());
    // One of the comments read, changed or deleted.
    for member in members {
        let mut capture = begin(b"member");
        assert!(cache.narrow_members(&mut capture, comments, any, &members));
        cache.finish_capture(capture, 7, result(2, 10)).unwrap();
        assert!(cache.get(KeyRef(b"member")).is_some());
        cache.invalidate_rows(&[(comments, member), (comments, any)]);
        assert!(cache.get(KeyRef(b"member")).is_none());
    }
    // A truncate (names no row).
    let mut capture = begin(b"truncated");
    assert!(cache.narrow_members(&mut capture, comments, any, &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    cache.invalidate(&Written {
        tables: vec![comments],
        all: false,
    });
    assert!(cache.get(KeyRef(b"truncated")).is_none());

    // A change to the table applied after the capture began: not narrowed
    // (the result may predate it), and the entry is stale.
    let mut capture = begin(b"raced");
    cache.invalidate_rows(&[(comments, int_row(comments, &[1])), (comments, any)]);
    assert!(!cache.narrow_members(&mut capture, comments, any, &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    assert!(cache.get(KeyRef(b"raced")).is_none());
    // Even an insert elsewhere refuses (the table's generation moved); the
    // entry keeps its unknown-value dependency.
    let mut capture = begin(b"refused");
    cache.invalidate_rows(&[
        (comments, int_row(comments, &[50])),
        (comments, int_value(comments, "post_id", 8)),
    ]);
    assert!(!cache.narrow_members(&mut capture, comments, any, &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    assert!(cache.get(KeyRef(b"refused")).is_some());
    cache.invalidate_rows(&[(comments, int_row(comments, &[9])), (comments, any)]);
    assert!(cache.get(KeyRef(b"refused")).is_none());
}

/// A filter on `n > 5` of `table` (column `n int4`), registered under `id`.
fn n_above_five(cache: &ResultCache, table: Oid) -> crate::sql::filter::Filter {
    use crate::sql::deps::KeySource;
    use crate::sql::filter::{CmpOp, FilterColumn, FilterSpec, Pred};
    let spec = FilterSpec {
        columns: vec![FilterColumn {
            name: "n".to_owned(),
            type_oid: Oid(23),
        }],
        pred: Pred::Cmp {
            column: 0,
            op: CmpOp::Gt,
            value: KeySource::Lifted(0),
        },
    };
    spec.bind(table, cache.filter_id(table), &|_, _| Some(KeyPart::Int(5)))
        .unwrap()
}

#[test]
fn a_filter_narrows_a_table_dependency_to_its_rows_and_matching_new_rows() {
    let cache = ResultCache::new(limits(1 << 20));
    let items = Oid(300);
    let deps = [Depend::Table(items)];
    let begin = |key: &[u8]| cache.begin_capture(key, &[items], Some(&deps)).unwrap();
    let members = [int_row(items, &[1]), int_row(items, &[2])];
    let matched = |cache: &ResultCache| {
        let ids: Vec<u64> = cache.filters_of(items).iter().map(|f| f.id).collect();
        cache.invalidate_filters(&ids);
    };

    let mut capture = begin(b"narrowed");
    assert!(cache.narrow_filter(&mut capture, n_above_five(&cache, items), &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    assert_eq!(cache.filters_of(items).len(), 1);
    // A change to another row whose new version does not match.
    cache.invalidate_rows(&[(items, int_row(items, &[9]))]);
    assert!(cache.get(KeyRef(b"narrowed")).is_some());
    // One whose new version might.
    matched(&cache);
    assert!(cache.get(KeyRef(b"narrowed")).is_none());
    // A row of the result changed or deleted.
    for member in members {
        let mut capture = begin(b"member");
        assert!(cache.narrow_filter(&mut capture, n_above_five(&cache, items), &members));
        cache.finish_capture(capture, 7, result(2, 10)).unwrap();
        cache.invalidate_rows(&[(items, int_row(items, &[9]))]);
        assert!(cache.get(KeyRef(b"member")).is_some());
        cache.invalidate_rows(&[(items, member)]);
        assert!(cache.get(KeyRef(b"member")).is_none());
    }
    // A truncate (names no row).
    let mut capture = begin(b"truncated");
    assert!(cache.narrow_filter(&mut capture, n_above_five(&cache, items), &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    cache.invalidate(&Written {
        tables: vec![items],
        all: false,
    });
    assert!(cache.get(KeyRef(b"truncated")).is_none());
    // Dropped entries' filters are no longer tested.
    cache.sweep();
    assert!(cache.filters_of(items).is_empty());

    // A change applied after the capture began: not narrowed, stale.
    let mut capture = begin(b"raced");
    cache.invalidate_rows(&[(items, int_row(items, &[9]))]);
    assert!(!cache.narrow_filter(&mut capture, n_above_five(&cache, items), &members));
    cache.finish_capture(capture, 7, result(2, 10)).unwrap();
    assert!(cache.get(KeyRef(b"raced")).is_none());
    assert!(
        cache.filters_of(items).is_empty(),
        "a refused filter is not kept"
    );
}

/// The cache knows whether a change dropped a key's entry lately (found
/// stale by a read or by a sweep): joins are kept in place only then.
#[test]
fn the_cache_knows_when_a_change_dropped_an_entry() {
    let cache = ResultCache::new(limits(1 << 20));
    assert!(!cache.dropped_lately(b"a"));
    let first = cache.begin_capture(b"a", &[Oid(1)], None).unwrap();
    cache.finish_capture(first, 7, result(1, 10)).unwrap();
    fill(&cache, b"b", &[Oid(1)], 1);
    fill(&cache, b"c", &[Oid(2)], 1);
    cache.invalidate(&Written {
        tables: vec![Oid(1)],
        all: false,
    });
    // Found stale by a read.
    assert!(cache.get(KeyRef(b"a")).is_none());
    // Swept.
    cache.sweep();
    for (key, again) in [
        (&b"a"[..], true),
        (b"b", true),
        (b"c", false),
        (b"d", false),
    ] {
        assert_eq!(cache.dropped_lately(key), again, "{key:?}");
    }
}
