//! The tester's tables, their key pools and row generators.
//!
//! Four related tables, one per primary-key type, with nullable columns of
//! the types whose text and binary forms depend on session settings:
//!
//! ```text
//! t_int  (id int PK, grp int, n numeric, s text, ts timestamptz, j jsonb, a int[])
//! t_big  (id bigint PK, int_id int → t_int.id, v text, f float8, iv interval)
//! t_uuid (id uuid PK, big_id bigint → t_big.id, label text, flag bool, b bytea)
//! t_text (k text PK, int_id int → t_int.id, note text, amount numeric(12,2))
//! ```
//!
//! The references are plain columns (no foreign keys): writers move keys,
//! delete and truncate freely. Keys come from small pools, so inserts,
//! deletes and key changes keep hitting the rows the reads look at.

use super::values::{quote, uuid_text};
use crate::rng::Rng;

/// `t_int` keys are `1..=INT_KEYS`; a key change moves a row to `id + MOVED`.
pub(crate) const INT_KEYS: i64 = 400;
/// Offset of `t_int` keys moved out of the pool (and back).
pub(crate) const MOVED: i64 = 1000;
/// `t_big` keys are `BIG_BASE + 1..=BIG_KEYS` (beyond int4: literals type as int8).
pub(crate) const BIG_BASE: i64 = 5_000_000_000;
pub(crate) const BIG_KEYS: i64 = 400;
/// Rows of each table at the start (roughly: a share of the pool).
const UUID_KEYS: usize = 300;
const TEXT_KEYS: usize = 320;

/// Words for text columns: quotes, non-ASCII, empty, spaces, case.
pub(crate) const WORDS: &[&str] = &[
    "alpha", "Beta", "gamma", "delta", "", "O'Brien", "Zürich", "émile", "ZZ top", "a b", "x", "Ω",
];
/// Values of `t_big.v` (few, so equality predicates select many rows).
pub(crate) const COLOURS: &[&str] = &["red", "green", "blue", "", "Red"];
/// Values of `t_int.j ->> 'k'`.
pub(crate) const JSON_KEYS: &[&str] = &["v0", "v1", "v2", "v3", "ü"];
/// Prefixes of `t_text` keys (their collation order is not byte order).
pub(crate) const TEXT_PREFIXES: &[&str] = &["a", "A", "b", "é", "Z", "k ", "k-", "ß"];

/// The keys every generator draws from, fixed by the seed.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub(crate) uuids: Vec<u128>,
    pub(crate) text_keys: Vec<String>,
}

impl Pools {
    pub(crate) fn new(rng: &mut Rng) -> Pools {
        let uuids = (0..UUID_KEYS)
            .map(|_| {
                let hi = u128::from(rng.next_u64());
                let lo = u128::from(rng.next_u64());
                // Version 4, variant 1, like gen_random_uuid().
                let u = (hi << 64) | lo;
                (((u & !(0xF << 76)) | (0x4 << 76)) & !(0x3 << 62)) | (0x2 << 62)
            })
            .collect();
        let text_keys = (0..TEXT_KEYS)
            .map(|i| format!("{}{:03}", TEXT_PREFIXES[i % TEXT_PREFIXES.len()], i))
            .collect();
        Pools { uuids, text_keys }
    }

    pub(crate) fn int_key(&self, rng: &mut Rng) -> i64 {
        rng.between(1, INT_KEYS)
    }

    pub(crate) fn big_key(&self, rng: &mut Rng) -> i64 {
        BIG_BASE + rng.between(1, BIG_KEYS)
    }

    pub(crate) fn uuid(&self, rng: &mut Rng) -> u128 {
        *rng.pick(&self.uuids)
    }

    pub(crate) fn text_key(&self, rng: &mut Rng) -> String {
        rng.pick(&self.text_keys).clone()
    }
}

/// The statements that (re)create the schema `s`, and `s_b`, whose `t_int`
/// shadows `s.t_int` for sessions with `s_b` first in their search_path.
/// Also a view, a function and a trigger that write `t_int` without naming
/// it (the writers' own-write checks use them), and tables whose rows
/// change through another table: a partitioned table (`t_part`, leaves
/// `t_part_0`, `t_part_1`), inheritance (`t_base`, `t_child`), a foreign key
/// with `ON DELETE/UPDATE CASCADE` (`t_fk_parent`, `t_fk_child`).
pub(crate) fn ddl(s: &str) -> String {
    format!(
        "SET client_min_messages = warning;
         DROP SCHEMA IF EXISTS {s} CASCADE;
         DROP SCHEMA IF EXISTS {s}_b CASCADE;
         CREATE SCHEMA {s};
         CREATE SCHEMA {s}_b;
         CREATE TABLE {s}_b.t_int (id int PRIMARY KEY, grp int, n numeric, s text, \
             ts timestamptz, j jsonb, a int[]);
         CREATE TABLE {s}.t_int (id int PRIMARY KEY, grp int, n numeric, s text, \
             ts timestamptz, j jsonb, a int[]);
         CREATE TABLE {s}.t_big (id bigint PRIMARY KEY, int_id int, v text, f float8, \
             iv interval);
         CREATE TABLE {s}.t_uuid (id uuid PRIMARY KEY, big_id bigint, label text, flag boolean, \
             b bytea);
         CREATE TABLE {s}.t_text (k text PRIMARY KEY, int_id int, note text, amount numeric(12,2));
         CREATE INDEX ON {s}.t_int (grp);
         CREATE INDEX ON {s}.t_big (int_id);
         CREATE INDEX ON {s}.t_uuid (big_id);
         CREATE INDEX ON {s}.t_text (int_id);
         CREATE TABLE {s}.t_log (id bigserial PRIMARY KEY, k int, note text);
         CREATE FUNCTION {s}.touch(k int, m text) RETURNS int LANGUAGE sql \
             AS $$ UPDATE {s}.t_int SET s = m WHERE id = k RETURNING id $$;
         CREATE FUNCTION {s}.log_touch() RETURNS trigger LANGUAGE plpgsql \
             AS $$ BEGIN UPDATE {s}.t_int SET s = NEW.note WHERE id = NEW.k; RETURN NEW; END $$;
         CREATE FUNCTION {s}.apply_setting(k text, v text) RETURNS text LANGUAGE sql \
             AS $$ SELECT set_config(k, v, false) $$;
         CREATE VIEW {s}.v_int AS SELECT id, grp, s FROM {s}.t_int;
         CREATE TABLE {s}.t_part (id int, grp int, v text, PRIMARY KEY (id, grp)) \
             PARTITION BY LIST (grp);
         CREATE TABLE {s}.t_part_0 PARTITION OF {s}.t_part FOR VALUES IN (0);
         CREATE TABLE {s}.t_part_1 PARTITION OF {s}.t_part FOR VALUES IN (1);
         CREATE TABLE {s}.t_base (id int PRIMARY KEY, v text);
         CREATE TABLE {s}.t_child (PRIMARY KEY (id)) INHERITS ({s}.t_base);
         CREATE TABLE {s}.t_fk_parent (id int PRIMARY KEY);
         CREATE TABLE {s}.t_fk_child (id int PRIMARY KEY, parent_id int \
             REFERENCES {s}.t_fk_parent ON DELETE CASCADE ON UPDATE CASCADE, v text);
         CREATE INDEX ON {s}.t_fk_child (parent_id);
         CREATE TRIGGER log_touch AFTER INSERT ON {s}.t_log \
             FOR EACH ROW EXECUTE FUNCTION {s}.log_touch();"
    )
}

/// `INSERT` statements of the initial rows, in batches.
pub(crate) fn seed_rows(s: &str, pools: &Pools, rng: &mut Rng) -> Vec<String> {
    let mut statements = Vec::new();
    let mut batch = |table: &str, rows: Vec<String>| {
        for chunk in rows.chunks(50) {
            statements.push(format!(
                "INSERT INTO {s}.{table} VALUES {}",
                chunk.join(", ")
            ));
        }
    };
    let mut ints = Vec::new();
    for id in 1..=300 {
        if rng.chance(4, 5) {
            ints.push(int_row(id, rng));
        }
    }
    batch("t_int", ints);

    let mut bigs = Vec::new();
    for k in 1..=300 {
        if rng.chance(4, 5) {
            bigs.push(big_row(BIG_BASE + k, pools, rng));
        }
    }
    batch("t_big", bigs);
    let uuids: Vec<u128> = pools.uuids.iter().copied().take(200).collect();
    let uuid_rows = uuids.into_iter().map(|u| uuid_row(u, pools, rng)).collect();
    batch("t_uuid", uuid_rows);
    let keys: Vec<String> = pools
        .text_keys
        .iter()
        .filter(|_| rng.chance(4, 5))
        .cloned()
        .collect();
    let text_rows = keys.iter().map(|k| text_row(k, pools, rng)).collect();
    batch("t_text", text_rows);
    statements.extend(related_rows(s, rng));
    let mut shadow = Vec::new();
    for id in 1..=120 {
        if rng.chance(1, 2) {
            shadow.push(int_row(id, rng));
        }
    }
    statements.push(format!(
        "INSERT INTO {s}_b.t_int VALUES {}",
        shadow.join(", ")
    ));
    statements
}

/// Keys of the related tables: `t_part`, `t_base`/`t_child` ids, and
/// `t_fk_parent` ids (`t_fk_child` ids are `1..=4 * FK_PARENTS`).
pub(crate) const PART_KEYS: i64 = 80;
pub(crate) const FK_PARENTS: i64 = 60;

/// The initial rows of the related tables (rows whose key is taken are
/// left as they are).
pub(crate) fn related_rows(s: &str, rng: &mut Rng) -> Vec<String> {
    let part: Vec<String> = (1..=PART_KEYS)
        .map(|id| format!("({id}, {}, {})", rng.below(2), word(rng)))
        .collect();
    let base: Vec<String> = (1..=PART_KEYS / 2)
        .map(|id| format!("({id}, {})", word(rng)))
        .collect();
    let mut child = Vec::new();
    for id in 1..=PART_KEYS {
        if rng.chance(3, 4) {
            child.push(format!("({id}, {})", word(rng)));
        }
    }
    let parents: Vec<String> = (1..=FK_PARENTS).map(|id| format!("({id})")).collect();
    let children: Vec<String> = (1..=4 * FK_PARENTS)
        .map(|id| format!("({id}, {}, {})", rng.between(1, FK_PARENTS), word(rng)))
        .collect();
    [
        ("t_part", part),
        ("t_base", base),
        ("t_child", child),
        ("t_fk_parent", parents),
        ("t_fk_child", children),
    ]
    .into_iter()
    .map(|(table, rows)| {
        format!(
            "INSERT INTO {s}.{table} VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        )
    })
    .collect()
}

/// A write of the related tables: through the partitioned parent (rows
/// move between partitions too), the inheritance parent, the referenced
/// table (cascading), or the tables themselves.
pub(crate) fn related_write(s: &str, rng: &mut Rng) -> String {
    let k = rng.between(1, PART_KEYS);
    let p = rng.between(1, FK_PARENTS);
    let w = word(rng);
    match rng.below(12) {
        0 => format!("UPDATE {s}.t_part SET v = {w} WHERE id = {k}"),
        1 => format!("UPDATE {s}.t_part SET grp = 1 - grp WHERE id = {k}"),
        2 => format!(
            "INSERT INTO {s}.t_part VALUES ({k}, {}, {w}) ON CONFLICT DO NOTHING",
            rng.below(2)
        ),
        3 => format!("DELETE FROM {s}.t_part WHERE id = {k}"),
        4 => format!("UPDATE {s}.t_base SET v = {w} WHERE id = {k}"),
        5 => format!("INSERT INTO {s}.t_child VALUES ({k}, {w}) ON CONFLICT DO NOTHING"),
        6 => format!("DELETE FROM {s}.t_base WHERE id = {k}"),
        7 => format!("DELETE FROM {s}.t_fk_parent WHERE id = {p}"),
        8 => format!(
            "UPDATE {s}.t_fk_parent SET id = id + 1000 WHERE id = {p} \
             AND NOT EXISTS (SELECT FROM {s}.t_fk_parent WHERE id = {p} + 1000)"
        ),
        9 => format!(
            "UPDATE {s}.t_fk_parent SET id = id - 1000 WHERE id = {p} + 1000 \
             AND NOT EXISTS (SELECT FROM {s}.t_fk_parent WHERE id = {p})"
        ),
        10 => format!("INSERT INTO {s}.t_fk_parent VALUES ({p}) ON CONFLICT DO NOTHING"),
        _ => format!(
            "INSERT INTO {s}.t_fk_child VALUES ({}, {p}, {w}) ON CONFLICT (id) DO UPDATE \
             SET parent_id = EXCLUDED.parent_id, v = EXCLUDED.v",
            rng.between(1, 4 * FK_PARENTS)
        ),
    }
}

fn or_null(rng: &mut Rng, value: String) -> String {
    if rng.chance(1, 10) {
        "NULL".into()
    } else {
        value
    }
}

pub(crate) fn grp(rng: &mut Rng) -> String {
    let g = rng.between(0, 4).to_string();
    or_null(rng, g)
}

pub(crate) fn numeric(rng: &mut Rng) -> String {
    let v = match rng.below(8) {
        0 => "123456789012345678901.5".to_owned(),
        1 => "0.000001".to_owned(),
        2 => rng.between(-50, 50).to_string(),
        _ => {
            let cents = rng.between(-50_000, 50_000);
            let sign = if cents < 0 { "-" } else { "" };
            format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
        }
    };
    or_null(rng, v)
}

pub(crate) fn word(rng: &mut Rng) -> String {
    let w = quote(rng.pick::<&str>(WORDS));
    or_null(rng, w)
}

pub(crate) fn timestamptz(rng: &mut Rng) -> String {
    let v = match rng.below(20) {
        0 => "'infinity'".to_owned(),
        1 => "'-infinity'".to_owned(),
        // Around a DST change in many zones, and a leap day.
        2 => format!("'2024-03-31 01:{:02}:00+00'", rng.between(0, 59)),
        3 => format!("'2024-02-29 23:59:{:02}.5+00'", rng.between(0, 59)),
        _ => format!(
            "'{}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00'",
            rng.between(1999, 2031),
            rng.between(1, 12),
            rng.between(1, 28),
            rng.between(0, 23),
            rng.between(0, 59),
            rng.between(0, 59),
            rng.between(0, 999_999),
        ),
    };
    or_null(rng, v)
}

pub(crate) fn json(rng: &mut Rng) -> String {
    let key = rng.pick(JSON_KEYS);
    let v = match rng.below(4) {
        0 => format!("'{{\"k\": \"{key}\"}}'"),
        1 => format!(
            "'{{\"k\": \"{key}\", \"n\": {}, \"t\": [1, 2.50, null]}}'",
            rng.between(-5, 5)
        ),
        2 => format!("'{{\"z\": {{\"k\": \"{key}\"}}, \"k\": \"{key}\", \"b\": true}}'"),
        _ => "'[]'".to_owned(),
    };
    or_null(rng, v)
}

pub(crate) fn int_array(rng: &mut Rng) -> String {
    let v = match rng.below(6) {
        0 => "'{}'".to_owned(),
        1 => format!("'{{{},NULL}}'", rng.between(0, 6)),
        _ => {
            let n = rng.between(1, 4);
            let items: Vec<String> = (0..n).map(|_| rng.between(0, 6).to_string()).collect();
            format!("'{{{}}}'", items.join(","))
        }
    };
    or_null(rng, v)
}

pub(crate) fn float8(rng: &mut Rng) -> String {
    let v = match rng.below(12) {
        0 => "'NaN'".to_owned(),
        1 => "'-Infinity'".to_owned(),
        2 => "'-0'".to_owned(),
        3 => "'1e-300'".to_owned(),
        _ => format!("'{:?}'", rng.between(-100_000, 100_000) as f64 / 7.0),
    };
    or_null(rng, format!("{v}::float8"))
}

pub(crate) fn flag(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => "NULL".into(),
        1 | 2 => "true".into(),
        _ => "false".into(),
    }
}

pub(crate) fn amount(rng: &mut Rng) -> String {
    let cents = rng.between(-1_000_000, 1_000_000);
    let sign = if cents < 0 { "-" } else { "" };
    let v = format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100);
    or_null(rng, v)
}

fn ref_int(rng: &mut Rng) -> String {
    let v = rng.between(1, INT_KEYS).to_string();
    or_null(rng, v)
}

/// `(id, grp, n, s, ts, j, a)`.
pub(crate) fn int_row(id: i64, rng: &mut Rng) -> String {
    format!(
        "({id}, {}, {}, {}, {}, {}, {})",
        grp(rng),
        numeric(rng),
        word(rng),
        timestamptz(rng),
        json(rng),
        int_array(rng)
    )
}

/// `(id, int_id, v, f, iv)`.
pub(crate) fn big_row(id: i64, _pools: &Pools, rng: &mut Rng) -> String {
    let colour = quote(rng.pick::<&str>(COLOURS));
    format!(
        "({id}, {}, {}, {}, {})",
        ref_int(rng),
        or_null(rng, colour),
        float8(rng),
        interval(rng)
    )
}

/// An interval literal (its output follows IntervalStyle).
pub(crate) fn interval(rng: &mut Rng) -> String {
    let v = format!(
        "'{} years {} mons {} days {:02}:{:02}:{:02}.{:03}'::interval",
        rng.between(-2, 3),
        rng.between(-11, 11),
        rng.between(-40, 40),
        rng.between(0, 23),
        rng.between(0, 59),
        rng.between(0, 59),
        rng.between(0, 999)
    );
    or_null(rng, v)
}

/// A bytea literal (its output follows bytea_output).
pub(crate) fn bytes(rng: &mut Rng) -> String {
    let n = rng.between(0, 6);
    let hex: String = (0..n).map(|_| format!("{:02x}", rng.below(256))).collect();
    or_null(rng, format!("'\\x{hex}'::bytea"))
}

/// `(id, big_id, label, flag, b)`.
pub(crate) fn uuid_row(id: u128, _pools: &Pools, rng: &mut Rng) -> String {
    let big = (BIG_BASE + rng.between(1, BIG_KEYS)).to_string();
    format!(
        "({}, {}, {}, {}, {})",
        quote(&uuid_text(id)),
        or_null(rng, big),
        word(rng),
        flag(rng),
        bytes(rng)
    )
}

/// `(k, int_id, note, amount)`.
pub(crate) fn text_row(k: &str, _pools: &Pools, rng: &mut Rng) -> String {
    format!(
        "({}, {}, {}, {})",
        quote(k),
        ref_int(rng),
        word(rng),
        amount(rng)
    )
}

/// A column definition for `ALTER TABLE … ADD COLUMN` number `n`.
pub(crate) fn added_column(n: u64, rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("x{n} int DEFAULT {}", rng.between(-9, 9)),
        1 => format!("x{n} text DEFAULT {}", quote(rng.pick::<&str>(WORDS))),
        _ => format!("x{n} numeric"),
    }
}

/// Whether `name` can be used unquoted as the tester's schema.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 61
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows() {
        let rows = |seed| {
            let mut rng = Rng::new(seed);
            let pools = Pools::new(&mut rng);
            seed_rows("v", &pools, &mut rng)
        };
        assert_eq!(rows(3), rows(3));
        assert_ne!(rows(3), rows(4));
    }

    #[test]
    fn uuids_are_version_4() {
        let mut rng = Rng::new(9);
        let pools = Pools::new(&mut rng);
        for u in &pools.uuids {
            let text = uuid_text(*u);
            assert_eq!(&text[14..15], "4", "{text}");
            assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
        }
    }

    #[test]
    fn schema_names() {
        assert!(valid_schema_name("pgcache_verify"));
        assert!(valid_schema_name("v1"));
        assert!(!valid_schema_name("1v"));
        assert!(!valid_schema_name("Verify"));
        assert!(!valid_schema_name("a;drop"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("pg_x"));
    }
}
