//! The space of reads: query shapes over the tester's tables, each with a
//! few literal value sets fixed by the seed, so shapes repeat and get cached.

use std::fmt;

use super::schema::{
    BIG_BASE, BIG_KEYS, COLOURS, FK_PARENTS, INT_KEYS, JSON_KEYS, MOVED, PART_KEYS, Pools,
    TEXT_PREFIXES, WORDS,
};
use super::values::{Value, uuid_text};
use crate::rng::Rng;

/// How a shape's results are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Exactly, with the origin.
    Plain,
    /// `SELECT *`: exactly, and never through a statement prepared earlier
    /// (a column added since would make the origin refuse it, as it should,
    /// at a moment that differs between the two connections).
    Star,
    /// Calls a volatile function: never served from cache. Only that it runs
    /// (same success or SQLSTATE as the origin), and that two reads in a row
    /// differ.
    Volatile,
}

/// One query shape: SQL with `$n` placeholders and its value sets.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) name: &'static str,
    pub(crate) sql: String,
    pub(crate) kind: Kind,
    pub(crate) values: Vec<Vec<Value>>,
}

/// The index of the shape named `name` (the writers' own-write checks read
/// the readers' statements).
pub(crate) fn named(shapes: &[Shape], name: &str) -> usize {
    shapes.iter().position(|s| s.name == name).unwrap_or(0)
}

impl Shape {
    /// The statement with the values inlined as literals (simple protocol).
    pub(crate) fn literal_sql(&self, values: &[Value]) -> String {
        let mut sql = self.sql.clone();
        for (i, v) in values.iter().enumerate().rev() {
            sql = sql.replace(&format!("${}", i + 1), &v.literal());
        }
        sql
    }
}

/// How a read is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Protocol {
    /// Literal SQL, simple query protocol, text results.
    Simple,
    /// A statement prepared once per connection, re-executed (binary results).
    Prepared,
    /// Prepared for this read only (Parse, Describe, Bind, Execute).
    Fresh,
    /// The unnamed statement with declared parameter types, one round trip.
    Typed,
}

impl Protocol {
    pub(crate) const ALL: [Protocol; 4] = [
        Protocol::Simple,
        Protocol::Prepared,
        Protocol::Fresh,
        Protocol::Typed,
    ];

    pub(crate) fn pick(rng: &mut Rng) -> Protocol {
        Protocol::ALL[rng.weighted(&[45, 35, 10, 10])]
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Simple => "simple query (text)",
            Protocol::Prepared => "prepared statement, reused (binary)",
            Protocol::Fresh => "prepared statement, new (binary)",
            Protocol::Typed => "unnamed statement with typed parameters (binary)",
        })
    }
}

/// Value sets per shape.
const SETS: usize = 4;

fn sets(rng: &mut Rng, mut one: impl FnMut(&mut Rng) -> Vec<Value>) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    for _ in 0..SETS * 4 {
        let v = one(rng);
        if !out.contains(&v) {
            out.push(v);
        }
        if out.len() == SETS {
            break;
        }
    }
    out
}

fn int4(v: i64) -> Value {
    Value::Int4(i32::try_from(v).unwrap_or(i32::MAX))
}

/// Every shape of the run, value sets drawn from `rng`.
pub(crate) fn shapes(s: &str, pools: &Pools, rng: &mut Rng) -> Vec<Shape> {
    let int_cols = "id, grp, n, s, ts, j, a";
    let mut out = Vec::new();
    let mut add = |name: &'static str, kind: Kind, sql: String, values: Vec<Vec<Value>>| {
        out.push(Shape {
            name,
            sql,
            kind,
            values: if values.is_empty() {
                vec![Vec::new()]
            } else {
                values
            },
        });
    };
    let int_key = |r: &mut Rng| int4(r.between(1, INT_KEYS));
    let big_key = |r: &mut Rng| Value::Int8(BIG_BASE + r.between(1, BIG_KEYS));
    let grp = |r: &mut Rng| int4(r.between(0, 4));

    // Point lookups by each key type.
    add(
        "int_point",
        Kind::Plain,
        format!("SELECT {int_cols} FROM {s}.t_int WHERE id = $1"),
        sets(rng, |r| vec![int_key(r)]),
    );
    add(
        "big_point",
        Kind::Plain,
        format!("SELECT id, int_id, v, f, iv FROM {s}.t_big WHERE id = $1"),
        sets(rng, |r| vec![big_key(r)]),
    );
    add(
        "uuid_point",
        Kind::Plain,
        format!("SELECT id, big_id, label, flag, b FROM {s}.t_uuid WHERE id = $1"),
        sets(rng, |r| vec![Value::Uuid(pools.uuid(r))]),
    );
    add(
        "text_point",
        Kind::Plain,
        format!("SELECT k, int_id, note, amount FROM {s}.t_text WHERE k = $1"),
        sets(rng, |r| vec![Value::Text(pools.text_key(r))]),
    );
    // Ranges, ORDER BY, LIMIT, OFFSET.
    add(
        "int_range",
        Kind::Plain,
        format!("SELECT id, grp, s FROM {s}.t_int WHERE id BETWEEN $1 AND $2 ORDER BY id"),
        sets(rng, |r| {
            let lo = r.between(1, INT_KEYS);
            vec![int4(lo), int4(lo + r.between(0, 12))]
        }),
    );
    add(
        "int_page",
        Kind::Plain,
        format!(
            "SELECT id, n, ts FROM {s}.t_int WHERE grp = $1 \
             ORDER BY n DESC NULLS LAST, id LIMIT $2 OFFSET $3"
        ),
        sets(rng, |r| {
            vec![
                grp(r),
                Value::Int8(r.between(1, 8)),
                Value::Int8(r.between(0, 20)),
            ]
        }),
    );
    add(
        "big_page",
        Kind::Plain,
        format!("SELECT id, v, f, iv FROM {s}.t_big WHERE id > $1 ORDER BY id LIMIT $2"),
        sets(rng, |r| vec![big_key(r), Value::Int8(r.between(1, 10))]),
    );
    add(
        "int_in",
        Kind::Plain,
        format!("SELECT id, s, a FROM {s}.t_int WHERE id IN ($1, $2, $3, $4) ORDER BY id"),
        sets(rng, |r| (0..4).map(|_| int_key(r)).collect()),
    );
    add(
        "int_any",
        Kind::Plain,
        format!("SELECT id, grp FROM {s}.t_int WHERE id = ANY($1) ORDER BY id"),
        sets(rng, |r| {
            let n = r.between(1, 6);
            let keys = (0..n)
                .map(|_| i32::try_from(r.between(1, INT_KEYS)).unwrap_or(1))
                .collect();
            vec![Value::Int4Array(keys)]
        }),
    );
    add(
        "uuid_in",
        Kind::Plain,
        format!("SELECT id, label FROM {s}.t_uuid WHERE id IN ($1, $2) ORDER BY id"),
        sets(rng, |r| {
            vec![Value::Uuid(pools.uuid(r)), Value::Uuid(pools.uuid(r))]
        }),
    );
    add(
        "int_all",
        Kind::Plain,
        format!("SELECT id, grp, n, s, ts FROM {s}.t_int ORDER BY id"),
        Vec::new(),
    );
    // NULLs.
    add(
        "s_is_null",
        Kind::Plain,
        format!("SELECT id, grp FROM {s}.t_int WHERE s IS NULL ORDER BY id"),
        Vec::new(),
    );
    add(
        "grp_n_not_null",
        Kind::Plain,
        format!("SELECT id, n FROM {s}.t_int WHERE grp = $1 AND n IS NOT NULL ORDER BY id"),
        sets(rng, |r| vec![grp(r)]),
    );
    add(
        "or_not",
        Kind::Plain,
        format!(
            "SELECT id FROM {s}.t_int WHERE (grp = $1 OR grp IS NULL) AND NOT (id > $2) ORDER BY id"
        ),
        sets(rng, |r| vec![grp(r), int4(r.between(20, INT_KEYS))]),
    );
    // Text equality, ordering, LIKE.
    add(
        "text_eq",
        Kind::Plain,
        format!("SELECT k, amount FROM {s}.t_text WHERE note = $1 ORDER BY k"),
        sets(rng, |r| vec![Value::Text((*r.pick(WORDS)).to_owned())]),
    );
    add(
        "text_order",
        Kind::Plain,
        format!("SELECT k, note FROM {s}.t_text WHERE k >= $1 ORDER BY k LIMIT 7"),
        sets(rng, |r| vec![Value::Text(pools.text_key(r))]),
    );
    add(
        "text_like",
        Kind::Plain,
        format!("SELECT k FROM {s}.t_text WHERE k LIKE $1 ORDER BY k"),
        sets(rng, |r| {
            let prefix = r.pick(TEXT_PREFIXES);
            vec![Value::Text(format!("{prefix}{}%", r.between(0, 3)))]
        }),
    );
    // DISTINCT.
    add(
        "distinct_grp",
        Kind::Plain,
        format!("SELECT DISTINCT grp FROM {s}.t_int ORDER BY grp"),
        Vec::new(),
    );
    add(
        "distinct_int_id",
        Kind::Plain,
        format!("SELECT DISTINCT int_id FROM {s}.t_big WHERE v = $1 ORDER BY int_id"),
        sets(rng, |r| vec![Value::Text((*r.pick(COLOURS)).to_owned())]),
    );
    // Aggregates.
    add(
        "agg_grp",
        Kind::Plain,
        format!("SELECT count(*), sum(n), min(s), max(ts), avg(n) FROM {s}.t_int WHERE grp = $1"),
        sets(rng, |r| vec![grp(r)]),
    );
    add(
        "agg_group_by",
        Kind::Plain,
        format!(
            "SELECT grp, count(*), sum(n), count(DISTINCT s) FROM {s}.t_int \
             GROUP BY grp ORDER BY grp NULLS FIRST"
        ),
        Vec::new(),
    );
    add(
        "agg_having",
        Kind::Plain,
        format!(
            "SELECT int_id, count(*) FROM {s}.t_big GROUP BY int_id \
             HAVING count(*) > 1 ORDER BY int_id"
        ),
        Vec::new(),
    );
    add(
        "agg_text",
        Kind::Plain,
        format!(
            "SELECT count(*), min(k), max(k), sum(amount) FROM {s}.t_text \
             WHERE int_id BETWEEN $1 AND $2"
        ),
        sets(rng, |r| {
            let lo = r.between(1, INT_KEYS);
            vec![int4(lo), int4(lo + r.between(0, 60))]
        }),
    );
    add(
        "agg_uuid",
        Kind::Plain,
        format!("SELECT count(*), count(big_id), min(label) FROM {s}.t_uuid WHERE flag = $1"),
        vec![vec![Value::Bool(true)], vec![Value::Bool(false)]],
    );
    // Joins.
    add(
        "join_int_big",
        Kind::Plain,
        format!(
            "SELECT i.id, i.s, b.id, b.v FROM {s}.t_int i JOIN {s}.t_big b ON b.int_id = i.id \
             WHERE i.grp = $1 ORDER BY b.id"
        ),
        sets(rng, |r| vec![grp(r)]),
    );
    add(
        "join_text_int",
        Kind::Plain,
        format!(
            "SELECT t.k, t.note, i.grp, i.n FROM {s}.t_text t JOIN {s}.t_int i ON i.id = t.int_id \
             WHERE t.k = $1 ORDER BY i.id"
        ),
        sets(rng, |r| vec![Value::Text(pools.text_key(r))]),
    );
    add(
        "join3",
        Kind::Plain,
        format!(
            "SELECT i.id, b.id, u.id, u.label FROM {s}.t_int i \
             JOIN {s}.t_big b ON b.int_id = i.id JOIN {s}.t_uuid u ON u.big_id = b.id \
             WHERE i.id BETWEEN $1 AND $2 ORDER BY u.id"
        ),
        sets(rng, |r| {
            let lo = r.between(1, INT_KEYS);
            vec![int4(lo), int4(lo + r.between(10, 80))]
        }),
    );
    // Joins kept in place (ADR 018): one row by key through a key join;
    // a parent's children in key order, cut.
    add(
        "join_big_int_key",
        Kind::Plain,
        format!(
            "SELECT b.id, b.v, i.s, i.grp FROM {s}.t_big b JOIN {s}.t_int i ON i.id = b.int_id \
             WHERE b.id = $1"
        ),
        sets(rng, |r| vec![big_key(r)]),
    );
    add(
        "join_fk_children",
        Kind::Plain,
        format!(
            "SELECT p.id, c.id, c.v FROM {s}.t_fk_parent p JOIN {s}.t_fk_child c \
             ON c.parent_id = p.id WHERE p.id = $1 ORDER BY c.id DESC LIMIT 3"
        ),
        sets(rng, |r| vec![int4(r.between(1, FK_PARENTS))]),
    );
    add(
        "join3_where",
        Kind::Plain,
        format!(
            "SELECT count(*), sum(i.n), max(u.label) FROM {s}.t_int i, {s}.t_big b, {s}.t_uuid u \
             WHERE b.int_id = i.id AND u.big_id = b.id AND u.flag = $1"
        ),
        vec![vec![Value::Bool(true)], vec![Value::Bool(false)]],
    );
    // jsonb, arrays, numeric, timestamptz.
    add(
        "jsonb_key",
        Kind::Plain,
        format!("SELECT id, j FROM {s}.t_int WHERE j ->> 'k' = $1 ORDER BY id"),
        sets(rng, |r| vec![Value::Text((*r.pick(JSON_KEYS)).to_owned())]),
    );
    add(
        "array_any",
        Kind::Plain,
        format!("SELECT id, a FROM {s}.t_int WHERE $1 = ANY(a) ORDER BY id"),
        sets(rng, |r| vec![int4(r.between(0, 6))]),
    );
    add(
        "numeric_cmp",
        Kind::Plain,
        format!("SELECT id, n, n * 2 FROM {s}.t_int WHERE n > $1 ORDER BY n, id LIMIT 10"),
        sets(rng, |r| {
            vec![Value::Numeric(format!(
                "{}.{}",
                r.between(-400, 400),
                r.between(0, 9)
            ))]
        }),
    );
    add(
        "ts_order",
        Kind::Plain,
        format!("SELECT id, ts FROM {s}.t_int WHERE grp = $1 ORDER BY ts NULLS FIRST, id"),
        sets(rng, |r| vec![grp(r)]),
    );
    add(
        "float_point",
        Kind::Plain,
        format!("SELECT id, f, f * 3 FROM {s}.t_big WHERE int_id = $1 ORDER BY id"),
        sets(rng, |r| vec![int_key(r)]),
    );
    // Expressions (a subscript is not cacheable: forwarded).
    add(
        "expressions",
        Kind::Plain,
        format!(
            "SELECT id, coalesce(s, '-') || ':' || grp::text, \
             CASE WHEN n > 0 THEN 'pos' ELSE 'other' END, greatest(grp, 2), a[1] \
             FROM {s}.t_int WHERE grp IS DISTINCT FROM $1 AND id < $2 ORDER BY id"
        ),
        sets(rng, |r| vec![grp(r), int4(r.between(5, 60))]),
    );
    // An error that depends on the data (grp = 0).
    add(
        "division",
        Kind::Plain,
        format!("SELECT id, 100 / grp FROM {s}.t_int WHERE id BETWEEN $1 AND $2 ORDER BY id"),
        sets(rng, |r| {
            let lo = r.between(1, INT_KEYS);
            vec![int4(lo), int4(lo + r.between(0, 6))]
        }),
    );
    // SELECT *: follows added columns.
    add(
        "star_int",
        Kind::Star,
        format!("SELECT * FROM {s}.t_int WHERE id = $1"),
        sets(rng, |r| vec![int_key(r)]),
    );
    add(
        "star_text",
        Kind::Star,
        format!("SELECT * FROM {s}.t_text WHERE k >= $1 ORDER BY k LIMIT 3"),
        sets(rng, |r| vec![Value::Text(pools.text_key(r))]),
    );
    add(
        "star_uuid",
        Kind::Star,
        format!("SELECT * FROM {s}.t_uuid WHERE id = $1"),
        sets(rng, |r| vec![Value::Uuid(pools.uuid(r))]),
    );
    add(
        "star_big",
        Kind::Star,
        format!("SELECT * FROM {s}.t_big WHERE int_id = $1 ORDER BY id"),
        sets(rng, |r| vec![int_key(r)]),
    );
    // Volatile functions: must never be served from cache.
    add(
        "volatile_random",
        Kind::Volatile,
        format!("SELECT id, s, random() FROM {s}.t_int WHERE id = $1"),
        sets(rng, |r| vec![int_key(r)]),
    );
    add(
        "volatile_clock",
        Kind::Volatile,
        format!("SELECT count(*), clock_timestamp() FROM {s}.t_int WHERE grp = $1"),
        sets(rng, |r| vec![grp(r)]),
    );
    add(
        "volatile_now",
        Kind::Volatile,
        format!("SELECT count(*), now() FROM {s}.t_text WHERE int_id = $1"),
        sets(rng, |r| vec![int_key(r)]),
    );
    // Unqualified names: found through the search_path of some profiles;
    // elsewhere an error (42P01) the proxy must return too.
    add(
        "unqualified_point",
        Kind::Plain,
        "SELECT id, grp, s FROM t_int WHERE id = $1".to_owned(),
        sets(rng, |r| vec![int_key(r)]),
    );
    add(
        "unqualified_join",
        Kind::Plain,
        "SELECT t.k, i.s, i.ts FROM t_text t JOIN t_int i ON i.id = t.int_id \
         WHERE t.int_id BETWEEN $1 AND $2 ORDER BY t.k"
            .to_owned(),
        sets(rng, |r| {
            let lo = r.between(1, INT_KEYS);
            vec![int4(lo), int4(lo + r.between(5, 40))]
        }),
    );
    // Point lookups whose key is spelled otherwise than the row's: text
    // parameters with leading zeros, signs and spaces, upper-case and
    // unhyphenated uuids, other types; keys moved out of the pool and back;
    // a point lookup joined to another table, with another predicate,
    // aggregated, or two points.
    add(
        "int_point_spelled",
        Kind::Plain,
        format!("SELECT id, grp, s FROM {s}.t_int WHERE id = $1"),
        sets(rng, |r| {
            let k = r.between(1, INT_KEYS);
            let text = match r.below(4) {
                0 => format!("{k:04}"),
                1 => format!(" +{k}"),
                2 => format!("{k} "),
                _ => k.to_string(),
            };
            vec![Value::Text(text)]
        }),
    );
    add(
        "int_point_moved",
        Kind::Plain,
        format!("SELECT id, grp, s FROM {s}.t_int WHERE id = $1"),
        sets(rng, |r| vec![int4(MOVED + r.between(1, INT_KEYS))]),
    );
    add(
        "int_point_int8",
        Kind::Plain,
        format!("SELECT id, s FROM {s}.t_int WHERE id = $1::int8"),
        sets(rng, |r| vec![Value::Int8(r.between(1, INT_KEYS))]),
    );
    add(
        "int_point_numeric",
        Kind::Plain,
        format!("SELECT id, s FROM {s}.t_int WHERE id = $1::numeric"),
        sets(rng, |r| {
            vec![Value::Text(format!("{}.0", r.between(1, INT_KEYS)))]
        }),
    );
    add(
        "big_point_spelled",
        Kind::Plain,
        format!("SELECT id, v FROM {s}.t_big WHERE id = $1"),
        sets(rng, |r| {
            vec![Value::Text(format!(
                "00{}",
                BIG_BASE + r.between(1, BIG_KEYS)
            ))]
        }),
    );
    add(
        "uuid_point_spelled",
        Kind::Plain,
        format!("SELECT id, label FROM {s}.t_uuid WHERE id = $1"),
        sets(rng, |r| {
            let text = uuid_text(pools.uuid(r));
            let spelled = match r.below(3) {
                0 => text.to_uppercase(),
                1 => text.replace('-', ""),
                _ => format!("{{{text}}}"),
            };
            vec![Value::Text(spelled)]
        }),
    );
    add(
        "text_point_varchar",
        Kind::Plain,
        format!("SELECT k, note FROM {s}.t_text WHERE k = $1::varchar"),
        sets(rng, |r| vec![Value::Text(pools.text_key(r))]),
    );
    add(
        "point_join",
        Kind::Plain,
        format!(
            "SELECT i.id, i.s, b.id, b.v FROM {s}.t_int i JOIN {s}.t_big b ON b.int_id = i.id \
             WHERE i.id = $1 ORDER BY b.id"
        ),
        sets(rng, |r| vec![int_key(r)]),
    );
    // The joined t_int row is the one the t_big row's int_id names (the
    // proxy reads it after the capture).
    add(
        "point_join_lookup",
        Kind::Plain,
        format!(
            "SELECT b.id, b.v, i.s, i.grp FROM {s}.t_big b JOIN {s}.t_int i ON i.id = b.int_id \
             WHERE b.id = $1"
        ),
        sets(rng, |r| vec![big_key(r)]),
    );
    add(
        "point_and",
        Kind::Plain,
        format!("SELECT id, s FROM {s}.t_int WHERE id = $1 AND grp = $2"),
        sets(rng, |r| vec![int_key(r), grp(r)]),
    );
    add(
        "point_count",
        Kind::Plain,
        format!("SELECT count(*), max(s) FROM {s}.t_int WHERE id = $1"),
        sets(rng, |r| vec![int_key(r)]),
    );
    add(
        "point_or",
        Kind::Plain,
        format!("SELECT id, s FROM {s}.t_int WHERE id = $1 OR id = $2 ORDER BY id"),
        sets(rng, |r| vec![int_key(r), int_key(r)]),
    );
    // Tables whose rows change through another table.
    let part_key = |r: &mut Rng| int4(r.between(1, PART_KEYS));
    add(
        "part_leaf_point",
        Kind::Plain,
        format!("SELECT id, grp, v FROM {s}.t_part_0 WHERE id = $1"),
        sets(rng, |r| vec![part_key(r)]),
    );
    add(
        "part_leaf_all",
        Kind::Plain,
        format!("SELECT id, v FROM {s}.t_part_1 ORDER BY id"),
        Vec::new(),
    );
    add(
        "child_only",
        Kind::Plain,
        format!("SELECT id, v FROM ONLY {s}.t_child WHERE id = $1"),
        sets(rng, |r| vec![part_key(r)]),
    );
    add(
        "base_only",
        Kind::Plain,
        format!("SELECT count(*), max(v) FROM ONLY {s}.t_base"),
        Vec::new(),
    );
    add(
        "fk_children",
        Kind::Plain,
        format!("SELECT id, parent_id, v FROM {s}.t_fk_child WHERE parent_id = $1 ORDER BY id"),
        sets(rng, |r| vec![int4(r.between(1, FK_PARENTS))]),
    );
    add(
        "fk_count",
        Kind::Plain,
        format!("SELECT count(*), count(DISTINCT parent_id) FROM {s}.t_fk_child"),
        Vec::new(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_sql_replaces_highest_numbers_first() {
        let shape = Shape {
            name: "t",
            sql: "SELECT $1, $10, $2".into(),
            kind: Kind::Plain,
            values: Vec::new(),
        };
        let values: Vec<Value> = (1..=10).map(Value::Int4).collect();
        assert_eq!(shape.literal_sql(&values), "SELECT 1, 10, 2");
    }

    #[test]
    fn shapes_are_deterministic_and_have_values() {
        let make = |seed| {
            let mut rng = Rng::new(seed);
            let pools = Pools::new(&mut rng);
            shapes("v", &pools, &mut rng)
        };
        let a = make(5);
        let b = make(5);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.values, y.values, "{}", x.name);
            assert!(!x.values.is_empty(), "{}", x.name);
            let placeholders = (1..=9).filter(|n| x.sql.contains(&format!("${n}"))).count();
            for v in &x.values {
                assert_eq!(v.len(), placeholders, "{}", x.name);
            }
        }
    }
}
