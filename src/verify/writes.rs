//! The writers: single statements, multi-row inserts and upserts, updates
//! that move rows in and out of predicates and change primary keys,
//! deletes, transactions committed and rolled back, on the origin directly
//! or through the proxy (simple and extended protocol); now and then a
//! TRUNCATE or an `ALTER TABLE`. Through the proxy, a writer also checks
//! that its session reads its own writes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::types::ToSql;

use super::Mismatch;
use super::outcome::{Conn, Lost, Outcome, STATEMENT_TIMEOUT};
use super::schema::{self, INT_KEYS, MOVED};
use super::settings;
use super::shapes::{self, Protocol};
use super::values::{Value, quote, uuid_text};
use super::workload::{Pair, QUIET_FROM_MS, Shared, Target, WRITE_CYCLE_MS, bump, lost};
use crate::rng::Rng;

/// At most this many columns are added in one run.
const MAX_ADDED_COLUMNS: usize = 6;

/// One write operation.
enum Write {
    /// One statement, simple protocol or (`extended`) an unnamed statement.
    One { sql: String, extended: bool },
    /// Extended protocol with parameters.
    Param { sql: String, values: Vec<Value> },
    /// A transaction: one query string, or statement by statement.
    Txn {
        statements: Vec<String>,
        commit: bool,
        one_string: bool,
    },
    /// Through the proxy: update a row in a transaction and read it back
    /// (it must show the update), then after the transaction (it must show
    /// the update after COMMIT and not after ROLLBACK). Or (`one_string`)
    /// the update and the read in one query string.
    Own {
        id: i64,
        commit: bool,
        one_string: bool,
        form: Form,
    },
    /// A TRUNCATE, alone or followed by fresh rows in the same transaction.
    Truncate { statements: Vec<String> },
    /// An `ALTER TABLE`.
    Ddl(String),
}

/// The schema changes writer 0 has made: columns added (and not dropped
/// again), `t_text.amount` widened.
#[derive(Default)]
struct SchemaChanges {
    added: Vec<(&'static str, String)>,
    amount_wide: bool,
    count: u64,
}

/// The next `ALTER TABLE`: add a column, drop or rename one added earlier,
/// or change the type (and so the text and binary form) of `t_text.amount`.
fn alter(shared: &Shared, rng: &mut Rng, changes: &mut SchemaChanges) -> Write {
    let s = shared.s();
    changes.count += 1;
    let can_add = changes.added.len() < MAX_ADDED_COLUMNS;
    let choice = rng.weighted(&[
        if can_add { 5 } else { 0 },
        if changes.added.is_empty() { 0 } else { 2 },
        2,
        if changes.added.is_empty() { 0 } else { 2 },
    ]);
    match choice {
        0 => {
            let table = *rng.pick(&["t_int", "t_big", "t_uuid", "t_text"]);
            let column = schema::added_column(changes.count, rng);
            changes.added.push((table, format!("x{}", changes.count)));
            Write::Ddl(format!("ALTER TABLE {s}.{table} ADD COLUMN {column}"))
        }
        1 => {
            let (table, column) = changes.added.remove(rng.index(changes.added.len()));
            Write::Ddl(format!("ALTER TABLE {s}.{table} DROP COLUMN {column}"))
        }
        3 => {
            let i = rng.index(changes.added.len());
            let (table, column) = changes.added[i].clone();
            let renamed = format!("{column}r");
            changes.added[i].1.clone_from(&renamed);
            Write::Ddl(format!(
                "ALTER TABLE {s}.{table} RENAME COLUMN {column} TO {renamed}"
            ))
        }
        _ => {
            changes.amount_wide = !changes.amount_wide;
            let ty = if changes.amount_wide {
                "numeric(14,3)"
            } else {
                "numeric(12,2)"
            };
            Write::Ddl(format!(
                "ALTER TABLE {s}.t_text ALTER COLUMN amount TYPE {ty}"
            ))
        }
    }
}

pub(super) async fn writer(shared: Arc<Shared>, id: usize) {
    let mut rng = Rng::stream(shared.options.seed, 200 + id as u64);
    let app = format!("writer-{id}");
    let Some((mut pair, mut observer)) = connect_writer(&shared, &app).await else {
        return;
    };
    let start = shared.start;
    let calm = shared.options.calm;
    let mut next_truncate = start + Duration::from_millis(rng.between(4000, 9000) as u64) * calm;
    let mut next_alter = start + Duration::from_millis(rng.between(2500, 7000) as u64) * calm;
    let mut marker = 0u64;
    let mut changes = SchemaChanges::default();
    while !shared.stop_writes.load(Ordering::Relaxed) {
        let phase = start.elapsed().as_millis() % WRITE_CYCLE_MS;
        if phase >= QUIET_FROM_MS {
            let quiet = Duration::from_millis((WRITE_CYCLE_MS - phase) as u64);
            shared.pause(quiet, &shared.stop_writes).await;
            continue;
        }
        let now = Instant::now();
        let write = if id == 0 && now >= next_truncate {
            next_truncate = now + Duration::from_millis(rng.between(6000, 12000) as u64) * calm;
            truncate(&shared, &mut rng)
        } else if id == 0 && now >= next_alter {
            next_alter = now + Duration::from_millis(rng.between(3000, 7000) as u64) * calm;
            alter(&shared, &mut rng, &mut changes)
        } else {
            marker += 1;
            next_write(&shared, &mut rng)
        };
        let through_proxy = rng.chance(1, 2);
        let outcome = perform(&shared, &pair, &observer, write, through_proxy, id, marker).await;
        if let Err(e) = outcome {
            lost(&shared, &app, &e);
            match connect_writer(&shared, &app).await {
                Some((p, o)) => (pair, observer) = (p, o),
                None => return,
            }
        }
        let pause = if rng.chance(1, 10) {
            rng.between(20, 120)
        } else {
            rng.between(0, 12)
        };
        tokio::time::sleep(Duration::from_millis(pause as u64)).await;
    }
}

/// A writer's connections: to the proxy and the origin, and a second proxy
/// connection that checks other sessions see its writes.
async fn connect_writer(shared: &Shared, app: &str) -> Option<(Pair, Conn)> {
    let pair = Pair::reconnect(shared, 0, app).await?;
    let config = shared.config(Target::Proxy, 0, &format!("{app}-observer"));
    match Conn::connect(&config).await {
        Ok(observer) => Some((pair, observer)),
        Err(e) => {
            shared.error(format!("{app}: cannot connect to the proxy: {e}"));
            None
        }
    }
}

fn truncate(shared: &Shared, rng: &mut Rng) -> Write {
    let s = shared.s();
    let related = match rng.below(7) {
        // Through the partitioned table, the inheritance parent, the
        // referenced table: the rows of other tables go.
        4 => Some(format!("TRUNCATE {s}.t_part")),
        5 => Some(format!("TRUNCATE {s}.t_base")),
        6 => Some(format!("TRUNCATE {s}.t_fk_parent CASCADE")),
        _ => None,
    };
    if let Some(truncate) = related {
        let mut statements = vec![truncate];
        if rng.chance(3, 5) {
            statements.extend(schema::related_rows(s, rng));
        }
        return Write::Truncate { statements };
    }
    let (tables, table): (String, &str) = match rng.below(4) {
        0 => (format!("{s}.t_int"), "t_int"),
        1 => (format!("{s}.t_big"), "t_big"),
        2 => (format!("{s}.t_uuid, {s}.t_text"), "t_uuid"),
        _ => (format!("{s}.t_text"), "t_text"),
    };
    let mut statements = vec![format!("TRUNCATE {tables}")];
    if rng.chance(3, 5) {
        let rows: Vec<String> = (0..120).map(|_| row_for(table, shared, rng).1).collect();
        statements.push(format!(
            "INSERT INTO {s}.{table} VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        ));
    }
    Write::Truncate { statements }
}

/// A random row of `table`: (key literal, row literal).
fn row_for(table: &str, shared: &Shared, rng: &mut Rng) -> (String, String) {
    let pools = &shared.pools;
    match table {
        "t_int" => {
            let k = pools.int_key(rng);
            (k.to_string(), schema::int_row(k, rng))
        }
        "t_big" => {
            let k = pools.big_key(rng);
            (k.to_string(), schema::big_row(k, pools, rng))
        }
        "t_uuid" => {
            let u = pools.uuid(rng);
            (quote(&uuid_text(u)), schema::uuid_row(u, pools, rng))
        }
        _ => {
            let k = pools.text_key(rng);
            (quote(&k), schema::text_row(&k, pools, rng))
        }
    }
}

const TABLES: [&str; 4] = ["t_int", "t_big", "t_uuid", "t_text"];

fn key_column(table: &str) -> &'static str {
    match table {
        "t_text" => "k",
        _ => "id",
    }
}

/// One ordinary write statement.
fn write_statement(shared: &Shared, rng: &mut Rng) -> String {
    let s = shared.s();
    let pools = &shared.pools;
    match rng.weighted(&[14, 8, 14, 14, 14, 8, 10, 6, 5, 12]) {
        // Single-row insert, plain or upsert.
        0 => {
            let table = *rng.pick(&TABLES);
            let (_, row) = row_for(table, shared, rng);
            let key = key_column(table);
            let conflict = match (rng.below(3), table) {
                (0, _) => String::new(),
                (1, _) => format!(" ON CONFLICT ({key}) DO NOTHING"),
                (_, "t_int") => {
                    " ON CONFLICT (id) DO UPDATE SET grp = EXCLUDED.grp, s = EXCLUDED.s".into()
                }
                (_, "t_text") => " ON CONFLICT (k) DO UPDATE SET note = EXCLUDED.note".into(),
                _ => format!(" ON CONFLICT ({key}) DO NOTHING"),
            };
            format!("INSERT INTO {s}.{table} VALUES {row}{conflict}")
        }
        // Multi-row insert.
        1 => {
            let table = *rng.pick(&TABLES);
            let n = rng.between(2, 6);
            let rows: Vec<String> = (0..n).map(|_| row_for(table, shared, rng).1).collect();
            format!(
                "INSERT INTO {s}.{table} VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            )
        }
        // Rows move in and out of predicates.
        2 => {
            let k = pools.int_key(rng);
            match rng.below(4) {
                0 => format!(
                    "UPDATE {s}.t_int SET grp = {} WHERE id = {k}",
                    schema::grp(rng)
                ),
                1 => format!(
                    "UPDATE {s}.t_int SET grp = {} WHERE id BETWEEN {k} AND {}",
                    schema::grp(rng),
                    k + rng.between(0, 8)
                ),
                2 => format!(
                    "UPDATE {s}.t_big SET int_id = {} WHERE id = {}",
                    rng.between(1, INT_KEYS),
                    pools.big_key(rng)
                ),
                _ => format!(
                    "UPDATE {s}.t_uuid SET flag = NOT flag, big_id = {} WHERE id = {}",
                    pools.big_key(rng),
                    quote(&uuid_text(pools.uuid(rng)))
                ),
            }
        }
        // Values (NULLs included).
        3 => {
            let k = pools.int_key(rng);
            match rng.below(6) {
                0 => format!(
                    "UPDATE {s}.t_int SET n = {}, s = {} WHERE id = {k}",
                    schema::numeric(rng),
                    schema::word(rng)
                ),
                1 => format!(
                    "UPDATE {s}.t_int SET ts = {}, j = {}, a = {} WHERE id = {k}",
                    schema::timestamptz(rng),
                    schema::json(rng),
                    schema::int_array(rng)
                ),
                2 => format!(
                    "UPDATE {s}.t_big SET v = {}, f = {}, iv = {} WHERE id = {}",
                    quote(rng.pick::<&str>(schema::COLOURS)),
                    schema::float8(rng),
                    schema::interval(rng),
                    pools.big_key(rng)
                ),
                3 => format!(
                    "UPDATE {s}.t_text SET note = {}, amount = {} WHERE k = {}",
                    schema::word(rng),
                    schema::amount(rng),
                    quote(&pools.text_key(rng))
                ),
                4 => format!(
                    "UPDATE {s}.t_uuid SET label = {}, b = {} WHERE big_id = {}",
                    schema::word(rng),
                    schema::bytes(rng),
                    pools.big_key(rng)
                ),
                _ => format!(
                    "UPDATE {s}.t_int SET n = n + 1 WHERE grp = {} AND id < {k}",
                    rng.between(0, 4)
                ),
            }
        }
        // Primary keys change.
        4 => match rng.below(5) {
            0 => {
                let k = pools.int_key(rng);
                format!("UPDATE {s}.t_int SET id = id + {MOVED} WHERE id = {k}")
            }
            1 => {
                let k = pools.int_key(rng);
                format!(
                    "UPDATE {s}.t_int SET id = id - {MOVED} WHERE id = {}",
                    k + MOVED
                )
            }
            2 => format!(
                "UPDATE {s}.t_big SET id = {} WHERE id = {}",
                pools.big_key(rng),
                pools.big_key(rng)
            ),
            3 => format!(
                "UPDATE {s}.t_uuid SET id = {} WHERE id = {}",
                quote(&uuid_text(pools.uuid(rng))),
                quote(&uuid_text(pools.uuid(rng)))
            ),
            _ => format!(
                "UPDATE {s}.t_text SET k = {} WHERE k = {}",
                quote(&pools.text_key(rng)),
                quote(&pools.text_key(rng))
            ),
        },
        // Deletes.
        5 => match rng.below(3) {
            0 => format!(
                "DELETE FROM {s}.t_int WHERE id BETWEEN {0} AND {0} + {1}",
                pools.int_key(rng),
                rng.between(0, 3)
            ),
            1 => format!(
                "DELETE FROM {s}.t_big WHERE int_id = {}",
                pools.int_key(rng)
            ),
            _ => {
                let table = *rng.pick(&TABLES);
                let (key, _) = row_for(table, shared, rng);
                format!(
                    "DELETE FROM {s}.{table} WHERE {} = {key}",
                    key_column(table)
                )
            }
        },
        // Point delete of a row the readers look at.
        6 => {
            let table = *rng.pick(&TABLES);
            let (key, _) = row_for(table, shared, rng);
            format!(
                "DELETE FROM {s}.{table} WHERE {} = {key}",
                key_column(table)
            )
        }
        // Partitions, inheritance, cascading foreign keys.
        9 => schema::related_write(s, rng),
        // The table that shadows t_int for some sessions' search_path.
        8 => {
            let k = rng.between(1, 130);
            match rng.below(3) {
                0 => format!(
                    "INSERT INTO {s}_b.t_int VALUES {} ON CONFLICT (id) DO UPDATE SET s = EXCLUDED.s",
                    schema::int_row(k, rng)
                ),
                1 => format!(
                    "UPDATE {s}_b.t_int SET grp = {}, s = {} WHERE id = {k}",
                    schema::grp(rng),
                    schema::word(rng)
                ),
                _ => format!("DELETE FROM {s}_b.t_int WHERE id = {k}"),
            }
        }
        // Re-insert rows moved out of the pool.
        _ => format!(
            "UPDATE {s}.t_int SET id = id - {MOVED} WHERE id > {MOVED} AND id - {MOVED} NOT IN \
             (SELECT id FROM {s}.t_int WHERE id <= {INT_KEYS})"
        ),
    }
}

fn next_write(shared: &Shared, rng: &mut Rng) -> Write {
    match rng.weighted(&[55, 10, 10, 12, 13, 4]) {
        0 => Write::One {
            sql: write_statement(shared, rng),
            extended: false,
        },
        1 => Write::One {
            sql: write_statement(shared, rng),
            extended: true,
        },
        2 => Write::Param {
            sql: format!(
                "UPDATE {}.t_int SET grp = $1, s = $2 WHERE id = $3",
                shared.s()
            ),
            values: vec![
                Value::Int4(rng.between(0, 4) as i32),
                Value::Text((*rng.pick(schema::WORDS)).to_owned()),
                Value::Int4(shared.pools.int_key(rng) as i32),
            ],
        },
        3 => {
            let n = rng.between(2, 4);
            Write::Txn {
                statements: (0..n).map(|_| write_statement(shared, rng)).collect(),
                commit: rng.chance(3, 4),
                one_string: rng.chance(1, 2),
            }
        }
        // A row enters a group and leaves it again in one transaction
        // (results kept in place follow it change by change).
        5 => {
            let s = shared.s();
            let k = shared.pools.int_key(rng);
            let row = schema::int_row(k, rng);
            Write::Txn {
                statements: vec![
                    format!(
                        "INSERT INTO {s}.t_int VALUES {row} \
                         ON CONFLICT (id) DO UPDATE SET grp = EXCLUDED.grp, s = EXCLUDED.s"
                    ),
                    format!(
                        "UPDATE {s}.t_int SET grp = {} WHERE id = {k}",
                        schema::grp(rng)
                    ),
                    format!(
                        "UPDATE {s}.t_int SET grp = {}, n = {} WHERE id = {k}",
                        schema::grp(rng),
                        schema::numeric(rng)
                    ),
                ],
                commit: rng.chance(3, 4),
                one_string: rng.chance(1, 2),
            }
        }
        _ => {
            let form = Form::pick(rng);
            // Mostly a key the readers' reads use.
            let read = &shared.shapes[shapes::named(&shared.shapes, form.shape())];
            let id = match read.values.get(rng.index(read.values.len())) {
                Some(values) if rng.chance(7, 10) => match values.first() {
                    Some(Value::Int4(id)) => i64::from(*id),
                    _ => form.key(shared, rng),
                },
                _ => form.key(shared, rng),
            };
            Write::Own {
                id,
                commit: rng.chance(3, 4),
                one_string: form == Form::Update && rng.chance(1, 4),
                form,
            }
        }
    }
}

/// `statements` (taking an exclusive lock: `TRUNCATE`, `ALTER TABLE`) in
/// a transaction that waits at most 2 s for its locks. A reader of the
/// tester compares inside transactions open on both connections at once
/// (settings detours): a proxy read queued behind this lock while the
/// reader's origin transaction holds a lock this one waits for is a cycle
/// only the reader's statement timeout would end. A refusal (`55P03`)
/// counts as a write the origin refused.
fn exclusive(statements: &str) -> String {
    format!("BEGIN; SET LOCAL lock_timeout = '2s'; {statements}; COMMIT")
}

/// Count a write's outcome: refused by the origin, or done.
fn refused(shared: &Shared, result: &Result<(), Outcome>) {
    if result.is_err() {
        bump(&shared.counters.writes_refused);
    }
}

async fn perform(
    shared: &Shared,
    pair: &Pair,
    observer: &Conn,
    write: Write,
    through_proxy: bool,
    id: usize,
    marker: u64,
) -> Result<(), Lost> {
    let conn = if through_proxy {
        &pair.proxy
    } else {
        &pair.origin
    };
    let c = &shared.counters;
    bump(if through_proxy {
        &c.writes_proxied
    } else {
        &c.writes_direct
    });
    match write {
        Write::One { sql, extended } => {
            let result = if extended {
                execute(conn, &sql, &[]).await?
            } else {
                conn.batch(&sql).await?
            };
            refused(shared, &result);
        }
        Write::Param { sql, values } => {
            let result = execute(conn, &sql, &values).await?;
            refused(shared, &result);
        }
        Write::Txn {
            statements,
            commit,
            one_string,
        } => {
            bump(&c.transactions);
            if !commit {
                bump(&c.rollbacks);
            }
            let end = if commit { "COMMIT" } else { "ROLLBACK" };
            if one_string {
                let sql = format!("BEGIN; {}; {end}", statements.join("; "));
                let result = conn.batch(&sql).await?;
                if result.is_err() {
                    bump(&c.writes_refused);
                    // The error left the transaction block open.
                    let _ = conn.batch("ROLLBACK").await?;
                }
            } else {
                let _ = conn.batch("BEGIN").await?;
                for sql in &statements {
                    let result = conn.batch(sql).await?;
                    refused(shared, &result);
                }
                let _ = conn.batch(end).await?;
            }
        }
        Write::Own {
            id: key,
            one_string: true,
            ..
        } if through_proxy => {
            same_string(shared, conn, key, &format!("w{id}:{marker}")).await?;
        }
        Write::Own {
            id: key,
            commit,
            form,
            ..
        } if through_proxy => {
            bump(&c.transactions);
            if !commit {
                bump(&c.rollbacks);
            }
            let marker = format!("w{id}:{marker}");
            own_write(shared, conn, observer, key, commit, &marker, form).await?;
        }
        Write::Own { id: key, form, .. } => {
            let sql = form.sql(shared.s(), key, &format!("d{id}:{marker}"));
            let result = conn.batch(&sql).await?;
            refused(shared, &result);
        }
        Write::Truncate { statements } => {
            if statements.len() > 1 {
                bump(&c.transactions);
            }
            let sql = exclusive(&statements.join("; "));
            let result = conn.batch(&sql).await?;
            if result.is_ok() {
                bump(&c.truncates);
            } else {
                bump(&c.writes_refused);
                let _ = conn.batch("ROLLBACK").await?;
            }
        }
        Write::Ddl(sql) => {
            let result = conn.batch(&exclusive(&sql)).await?;
            if result.is_ok() {
                bump(&c.ddl);
            } else {
                bump(&c.writes_refused);
                let _ = conn.batch("ROLLBACK").await?;
            }
        }
    }
    Ok(())
}

/// An unnamed-statement write (extended protocol); `Err` of the inner
/// result: the origin refused it.
async fn execute(conn: &Conn, sql: &str, values: &[Value]) -> Result<Result<(), Outcome>, Lost> {
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    let run = conn.client.execute(sql, &params);
    match tokio::time::timeout(STATEMENT_TIMEOUT, run).await {
        Ok(Ok(_)) => Ok(Ok(())),
        Ok(Err(e)) if e.as_db_error().is_some() => Ok(Err(Outcome::Error {
            code: e.code().map(|c| c.code().to_owned()).unwrap_or_default(),
            message: e.to_string(),
        })),
        Ok(Err(e)) => Err(Lost::Closed(crate::check::describe_pg_error(&e))),
        Err(_) => Err(Lost::Timeout(sql.to_owned())),
    }
}

/// An update and the readers' point lookup of the same row in one query
/// string through the proxy: the lookup must show the update.
async fn same_string(shared: &Shared, conn: &Conn, id: i64, marker: &str) -> Result<(), Lost> {
    let s = shared.s();
    let point = &shared.shapes[0];
    let read_sql = point.literal_sql(&[Value::Int4(id as i32)]);
    let sql = format!(
        "UPDATE {s}.t_int SET s = {}, n = coalesce(n, 0) + 1 WHERE id = {id} \
         RETURNING id, grp, n, s, ts, j, a; {read_sql}",
        quote(marker)
    );
    let sets = conn.simple_sets(&sql).await?;
    bump(&shared.counters.reads);
    bump(&shared.counters.own_write_checks);
    if let [updated @ Outcome::Rows { .. }, read] = sets.as_slice()
        && !read.same(updated)
    {
        shared.mismatch(Mismatch {
            phase: "own write, same query string".to_owned(),
            shape: point.name.to_owned(),
            statement: sql.clone(),
            parameters: Vec::new(),
            protocol: Protocol::Simple.to_string(),
            settings: settings::describe(0, s),
            proxy: read.to_string(),
            origin: format!("(the row as UPDATE … RETURNING gave it) {updated}"),
            at: shared.start.elapsed(),
            seed: shared.options.seed,
        });
    }
    if sets.len() != 2 {
        bump(&shared.counters.writes_refused);
    }
    Ok(())
}

/// How a writer's own-write check changes rows: by a statement naming the
/// table, or in ways the proxy cannot see the table in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    Update,
    Function,
    DoBlock,
    WithCte,
    SqlPrepare,
    View,
    Trigger,
    /// `t_part_0`'s row through the partitioned table.
    PartitionedTable,
    /// `t_child`'s row through the inheritance parent.
    InheritanceParent,
    /// `t_fk_child`'s rows by deleting the row they reference.
    CascadingDelete,
}

impl Form {
    fn pick(rng: &mut Rng) -> Form {
        [
            Form::Update,
            Form::Function,
            Form::DoBlock,
            Form::WithCte,
            Form::SqlPrepare,
            Form::View,
            Form::Trigger,
            Form::PartitionedTable,
            Form::InheritanceParent,
            Form::CascadingDelete,
        ][rng.weighted(&[6, 1, 1, 1, 1, 1, 1, 2, 2, 2])]
    }

    fn name(self) -> &'static str {
        match self {
            Form::Update => "UPDATE",
            Form::Function => "a function call",
            Form::DoBlock => "a DO block",
            Form::WithCte => "a data-modifying WITH",
            Form::SqlPrepare => "PREPARE/EXECUTE",
            Form::View => "an updatable view",
            Form::Trigger => "a trigger of another table",
            Form::PartitionedTable => "an UPDATE of the partitioned table",
            Form::InheritanceParent => "an UPDATE of the inheritance parent",
            Form::CascadingDelete => "a DELETE cascading through a foreign key",
        }
    }

    /// The readers' shape whose read is checked.
    fn shape(self) -> &'static str {
        match self {
            Form::PartitionedTable => "part_leaf_point",
            Form::InheritanceParent => "child_only",
            Form::CascadingDelete => "fk_children",
            _ => "int_point",
        }
    }

    fn key(self, shared: &Shared, rng: &mut Rng) -> i64 {
        match self {
            Form::PartitionedTable | Form::InheritanceParent => rng.between(1, schema::PART_KEYS),
            Form::CascadingDelete => rng.between(1, schema::FK_PARENTS),
            _ => shared.pools.int_key(rng),
        }
    }

    /// The rows the read shows, locked (`FOR UPDATE`: never from the cache).
    fn locked(self, s: &str, id: i64) -> String {
        match self {
            Form::PartitionedTable => {
                format!("SELECT id, grp, v FROM {s}.t_part_0 WHERE id = {id} FOR UPDATE")
            }
            Form::InheritanceParent => {
                format!("SELECT id, v FROM ONLY {s}.t_child WHERE id = {id} FOR UPDATE")
            }
            Form::CascadingDelete => format!(
                "SELECT id, parent_id, v FROM {s}.t_fk_child WHERE parent_id = {id} \
                 ORDER BY id FOR UPDATE"
            ),
            _ => {
                format!("SELECT id, grp, n, s, ts, j, a FROM {s}.t_int WHERE id = {id} FOR UPDATE")
            }
        }
    }

    /// The statements that change what the read shows (`s` of `t_int` row
    /// `id` becomes `marker`; `Update` also changes `grp` and returns the
    /// row).
    fn sql(self, s: &str, id: i64, marker: &str) -> String {
        let m = quote(marker);
        match self {
            Form::Update => format!(
                "UPDATE {s}.t_int SET s = {m}, grp = (coalesce(grp, 0) + 1) % 5 WHERE id = {id} \
                 RETURNING id, grp, n, s, ts, j, a"
            ),
            Form::Function => format!("SELECT {s}.touch({id}, {m})"),
            Form::DoBlock => format!(
                "DO $verify$ BEGIN UPDATE {s}.t_int SET s = {m} WHERE id = {id}; END $verify$"
            ),
            Form::WithCte => format!(
                "WITH w AS (UPDATE {s}.t_int SET s = {m} WHERE id = {id} RETURNING id) \
                 SELECT count(*) FROM w"
            ),
            Form::SqlPrepare => format!(
                "PREPARE verify_touch(int, text) AS UPDATE {s}.t_int SET s = $2 WHERE id = $1; \
                 EXECUTE verify_touch({id}, {m}); DEALLOCATE verify_touch"
            ),
            Form::View => format!("UPDATE {s}.v_int SET s = {m} WHERE id = {id}"),
            Form::Trigger => format!("INSERT INTO {s}.t_log (k, note) VALUES ({id}, {m})"),
            Form::PartitionedTable => format!("UPDATE {s}.t_part SET v = {m} WHERE id = {id}"),
            Form::InheritanceParent => format!("UPDATE {s}.t_base SET v = {m} WHERE id = {id}"),
            Form::CascadingDelete => format!("DELETE FROM {s}.t_fk_parent WHERE id = {id}"),
        }
    }
}

/// The own-write checks on a proxy connection (see [`Write::Own`]): in a
/// transaction, lock the row, change it, read it back through the proxy
/// (the change must show); after COMMIT the same session must not read the
/// row as it was before, nor (for a plain `UPDATE`, which names its table)
/// may another session; after ROLLBACK the session must not read the
/// rolled-back row.
#[allow(clippy::too_many_arguments, reason = "one check of many facts")]
async fn own_write(
    shared: &Shared,
    conn: &Conn,
    observer: &Conn,
    id: i64,
    commit: bool,
    marker: &str,
    form: Form,
) -> Result<(), Lost> {
    let s = shared.s();
    let point = &shared.shapes[shapes::named(&shared.shapes, form.shape())];
    let read_sql = point.literal_sql(&[Value::Int4(id as i32)]);
    let locked = form.locked(s, id);
    // Read it first, so that it is most likely cached.
    for _ in 0..2 {
        let _ = conn.simple(&read_sql).await?;
        bump(&shared.counters.reads);
    }
    // The checks below are about a transaction block: one that did not
    // begin is reported, not checked (the statements would autocommit).
    if let Err(refusal) = conn.batch("BEGIN").await? {
        shared.error(format!(
            "own write by {}: BEGIN refused through the proxy: {refusal}",
            form.name()
        ));
        return Ok(());
    }
    let before = conn.simple(&locked).await?;
    let written = conn.simple(&form.sql(s, id, marker)).await?;
    // The row as the transaction now sees it (FOR UPDATE: never cached).
    let updated = if form == Form::Update {
        written.clone()
    } else {
        conn.simple(&locked).await?
    };
    // Only a row that exists is locked: without one, another transaction
    // may commit a row under that key (a key moved back) before the read
    // inside, which then shows it under READ COMMITTED, as the origin does.
    let usable = matches!(before, Outcome::Rows { .. })
        && before.row_count() > 0
        && matches!(written, Outcome::Rows { .. })
        && matches!(updated, Outcome::Rows { .. });
    if !usable {
        let _ = conn.batch("ROLLBACK").await?;
        bump(&shared.counters.writes_refused);
        return Ok(());
    }
    let inside = conn.simple(&read_sql).await?;
    bump(&shared.counters.reads);
    let record = |what: &str, got: &Outcome, want: String| {
        shared.mismatch(Mismatch {
            phase: format!("own write by {}, {what}", form.name()),
            shape: point.name.to_owned(),
            statement: read_sql.clone(),
            parameters: Vec::new(),
            protocol: Protocol::Simple.to_string(),
            settings: settings::describe(0, shared.s()),
            proxy: got.to_string(),
            origin: want,
            at: shared.start.elapsed(),
            seed: shared.options.seed,
        });
    };
    if !inside.same(&updated) {
        record(
            "read inside the transaction",
            &inside,
            format!("(the row as the transaction has it) {updated}"),
        );
    }
    let end = if commit { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.batch(end).await?;
    let after = conn.simple(&read_sql).await?;
    let seen = if commit && form == Form::Update {
        Some(observer.simple(&read_sql).await?)
    } else {
        None
    };
    bump(&shared.counters.reads);
    bump(&shared.counters.own_write_checks);
    if ended.is_err() || updated.row_count() == 0 || updated.same(&before) {
        return Ok(());
    }
    if commit && after.same(&before) {
        record(
            "read after COMMIT by the same session",
            &after,
            format!("(anything but the row before the committed change) {before}"),
        );
    }
    if let Some(seen) = seen
        && seen.same(&before)
    {
        record(
            "read after COMMIT by another session",
            &seen,
            format!("(anything but the row before the committed change) {before}"),
        );
    }
    if !commit && after.same(&updated) {
        record(
            "read after ROLLBACK",
            &after,
            format!("(anything but the rolled-back row) {updated}"),
        );
    }
    Ok(())
}
