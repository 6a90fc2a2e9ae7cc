//! Transaction assembly: what each committed transaction of the change
//! stream means for the cache.
//!
//! Pure state machine, fed the stream's messages in order: `Begin`, the
//! pgoutput payloads in between, `Commit`. At each commit it hands back the
//! tables the transaction changed (rows inserted, updated, deleted or
//! truncated) and the relation definitions the stream sent that differ from
//! the ones it sent before. The caller applies a [`Committed`] as one step,
//! so readers see the origin commit by commit, never half a transaction.
//!
//! Row names: for a table whose replica identity is its primary key and
//! whose key columns are all key-like (integers, `uuid`, `text`, `varchar`:
//! [`crate::sql::rowkey`]), each change names the rows it touched
//! ([`crate::cache::row_hash`] of the key values, old and new); and for every
//! table, each change names the old and new value of each key-like column
//! ([`crate::cache::value_hash`]), or says an old value was not sent
//! ([`crate::cache::any_value_hash`]: a column outside the replica identity
//! of an update or delete). Entries reading rows by key or by column value
//! are then dropped only when such a row changes (`crate::sql::deps`). A
//! change that cannot be named (a truncate, a key that does not read, too
//! many names in one transaction) names the whole table
//! ([`Committed::whole`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use super::error::DecodeError;
use super::pgoutput::{
    self, ColumnValue, LogicalMessage, OldTuple, Relation, ReplicaIdentity, Tuple,
};
use crate::cache::{KeyPart, any_value_hash, row_hash, value_hash};
use crate::catalog::Oid;
use crate::sql::filter::{Cell, Filter};
use crate::sql::rowkey::{KeyKind, key_kind, stream_value};

/// Names (rows and values) per transaction; beyond, tables are named whole.
pub const MAX_ROWS_PER_TRANSACTION: usize = 8192;

/// Why the stream cannot be applied (the caller drops the stream and starts
/// over; the cache forgets everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    Decode(DecodeError),
    /// A change arrived outside `Begin` … `Commit`, or a transaction began
    /// inside another.
    OutOfTransaction(&'static str),
    /// A message pgcache does not request (streamed or two-phase
    /// transactions).
    Unexpected(&'static str),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Decode(e) => write!(f, "undecodable pgoutput message: {e}"),
            ApplyError::OutOfTransaction(what) => {
                write!(f, "{what} outside a transaction of the change stream")
            }
            ApplyError::Unexpected(what) => write!(f, "unexpected {what} message"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// One committed transaction, as the cache needs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Tables whose rows changed, each once.
    pub tables: Vec<Oid>,
    /// Of those, the ones changed in a way that names no row (or too many
    /// rows): every entry reading them is affected.
    pub whole: Vec<Oid>,
    /// `(table, hash)` naming what changed in the other tables: the
    /// [`row_hash`] of each row's old and new key, the [`value_hash`] of
    /// each integer column's old and new value, the [`any_value_hash`] of
    /// columns whose old value was not sent (those once per transaction).
    pub rows: Vec<(Oid, u64)>,
    /// Relation definitions that are new to this stream or differ from the
    /// one it sent before for the same table (a column added, dropped,
    /// renamed or retyped, a new replica identity).
    pub redefined: Vec<Relation>,
    /// Row changes (an insert, update or delete of one row; a truncate
    /// counts once per table).
    pub changes: u64,
    /// The transaction ran DDL (the origin's event trigger said so): any
    /// table, view, function, policy or privilege may have changed.
    pub ddl: bool,
    /// Its transaction id (from `Begin`).
    pub xid: u32,
    /// The new versions of the rows it inserted or updated, per table,
    /// for the tables not named whole (entries' filters are tested against
    /// them: [`filter_hits`]).
    pub new_rows: Vec<NewRows>,
}

/// The row changes of one table in a transaction: the new versions of
/// rows (inserts and updates), and every change in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRows {
    pub table: Oid,
    /// The table's columns as the stream describes them: name and type.
    pub columns: Arc<[(String, Oid)]>,
    pub rows: Vec<Tuple>,
    /// Every insert, update and delete, in order.
    pub changes: Vec<Change>,
    /// Bytes of the rows' values.
    pub bytes: usize,
}

/// One row change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The old row (or only its key) when the change sent it: a delete, an
    /// update of the replica identity (or of any row under `FULL`).
    pub old: Option<Tuple>,
    /// The new version's index in [`NewRows::rows`] (inserts, updates).
    pub new: Option<u32>,
    /// Its names ([`Committed::rows`]): the rows' keys and key-like values,
    /// old and new, that route it to the entries it may concern.
    pub names: Vec<u64>,
    /// Whether its names include its rows' keys (the table's replica
    /// identity is its key-like primary key).
    pub keyed: bool,
}

/// Bytes of new rows' values kept per transaction; beyond, the table is
/// named whole.
pub const MAX_NEW_ROW_BYTES: usize = 16 << 20;

/// Bytes of a row's values.
fn row_bytes(row: &Tuple) -> usize {
    row.columns
        .iter()
        .map(|c| match c {
            ColumnValue::Text(b) | ColumnValue::Binary(b) => b.len(),
            ColumnValue::Null | ColumnValue::UnchangedToast => 0,
        })
        .sum()
}

/// Most filter tests per table and transaction; beyond, every filter of
/// the table counts as matched.
pub const MAX_FILTER_TESTS: usize = 1 << 20;

/// The ids of the filters (of each table's live filters, `filters_of`)
/// that a new row in `new_rows` might satisfy.
pub fn filter_hits(new_rows: &[NewRows], filters_of: &dyn Fn(Oid) -> Vec<Arc<Filter>>) -> Vec<u64> {
    let mut hits = Vec::new();
    for batch in new_rows {
        let filters = filters_of(batch.table);
        if filters.is_empty() {
            continue;
        }
        if batch.rows.len().saturating_mul(filters.len()) > MAX_FILTER_TESTS {
            hits.extend(filters.iter().map(|f| f.id));
            continue;
        }
        for f in &filters {
            let positions = f.positions(&batch.columns);
            let matched = batch
                .rows
                .iter()
                .any(|row| f.may_match(&positions, &|p| cell(row, p)));
            if matched {
                hits.push(f.id);
            }
        }
    }
    hits
}

/// Column `p` of a row the stream sent, as a filter reads it.
pub fn cell(row: &Tuple, p: usize) -> Cell<'_> {
    match row.columns.get(p) {
        Some(ColumnValue::Null) => Cell::Null,
        Some(ColumnValue::Text(text)) => Cell::Text(text),
        Some(ColumnValue::UnchangedToast) => Cell::Unsent,
        Some(ColumnValue::Binary(_)) | None => Cell::Missing,
    }
}

/// A snapshot as `pg_current_snapshot()` prints it (`xmin:xmax:xip,…`):
/// which transactions had finished when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XidSnapshot {
    xmin: u32,
    xmax: u32,
    in_progress: Vec<u32>,
}

impl XidSnapshot {
    /// Parses the text form; transaction ids are kept modulo 2^32, as the
    /// change stream sends them.
    pub fn parse(text: &str) -> Option<XidSnapshot> {
        let mut parts = text.split(':');
        let low = |v: &str| v.parse::<u64>().ok().map(|x| x as u32);
        let xmin = low(parts.next()?)?;
        let xmax = low(parts.next()?)?;
        let in_progress = match parts.next()? {
            "" => Vec::new(),
            list => list.split(',').map(low).collect::<Option<Vec<_>>>()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(XidSnapshot {
            xmin,
            xmax,
            in_progress,
        })
    }

    /// Whether transaction `xid` (one that committed before the snapshot
    /// was requested) is visible to it: finished, not in progress.
    pub fn finished(&self, xid: u32) -> bool {
        let precedes = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
        precedes(xid, self.xmin) || (precedes(xid, self.xmax) && !self.in_progress.contains(&xid))
    }

    /// The transactions in progress when the snapshot was taken.
    pub fn in_progress(&self) -> &[u32] {
        &self.in_progress
    }
}

/// Prefix of the logical messages the origin's DDL event trigger emits.
pub const DDL_MESSAGE_PREFIX: &str = "pgcache.ddl";

/// Assembles transactions from the stream.
#[derive(Debug, Default)]
pub struct Applier {
    open: Option<Committed>,
    relations: HashMap<Oid, Relation>,
    /// Per table: how its changes are named.
    keys: HashMap<Oid, Naming>,
    /// [`any_value_hash`]es named in the open transaction.
    anys: HashSet<u64>,
}

/// How a table's changes are named.
#[derive(Debug, Default)]
struct Naming {
    /// Positions (in its tuples) and kinds of its primary key columns,
    /// when rows can be named by key.
    key: Option<Vec<(usize, KeyKind)>>,
    /// Key-like columns: position, name, kind, part of the replica
    /// identity.
    columns: Vec<(usize, String, KeyKind, bool)>,
    /// Every column: name and type.
    all: Arc<[(String, Oid)]>,
}

/// The old row a change carries.
#[derive(Clone, Copy)]
enum Old<'a> {
    /// An insert.
    None,
    /// An update that sent no old tuple: the replica identity did not change.
    Unsent,
    Key(&'a Tuple),
    Full(&'a Tuple),
}

impl<'a> Old<'a> {
    fn of(old: &'a OldTuple) -> Old<'a> {
        match old {
            OldTuple::Key(t) => Old::Key(t),
            OldTuple::Full(t) => Old::Full(t),
        }
    }
}

impl Applier {
    pub fn new() -> Applier {
        Applier::default()
    }

    /// Whether a transaction is open (between `Begin` and `Commit`).
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// `Begin` of transaction `xid`.
    pub fn begin(&mut self, xid: u32) -> Result<(), ApplyError> {
        if self.open.is_some() {
            return Err(ApplyError::OutOfTransaction("Begin"));
        }
        self.open = Some(Committed {
            xid,
            ..Committed::default()
        });
        self.anys.clear();
        Ok(())
    }

    /// One pgoutput payload between `Begin` and `Commit` (the transport
    /// reports those two itself).
    pub fn message(&mut self, data: &Bytes) -> Result<(), ApplyError> {
        // A row change to a table this transaction already names whole
        // (a large update): nothing in its tuple can matter, so it is only
        // counted, not decoded.
        if let (Some(b'I' | b'U' | b'D'), Some(relation), Some(txn)) =
            (data.first(), data.get(1..5), self.open.as_mut())
        {
            let oid = Oid(u32::from_be_bytes([
                relation[0],
                relation[1],
                relation[2],
                relation[3],
            ]));
            if txn.whole.contains(&oid) {
                txn.changes += 1;
                return Ok(());
            }
        }
        let message = pgoutput::decode(data).map_err(ApplyError::Decode)?;
        let touched = match message {
            LogicalMessage::Insert(m) => {
                let names = self.names(m.relation, Some(&m.new), Old::None);
                Some((m.relation, names, None, Some(m.new)))
            }
            LogicalMessage::Update(m) => {
                let old = m.old.as_ref().map_or(Old::Unsent, Old::of);
                let names = self.names(m.relation, Some(&m.new), old);
                let old = m.old.map(OldTuple::into_tuple);
                Some((m.relation, names, old, Some(m.new)))
            }
            LogicalMessage::Delete(m) => {
                let names = self.names(m.relation, None, Old::of(&m.old));
                Some((m.relation, names, Some(m.old.into_tuple()), None))
            }
            LogicalMessage::Truncate(m) => {
                let txn = self.open_txn("Truncate")?;
                for oid in m.relations {
                    txn.touch(oid, 1, None);
                }
                None
            }
            LogicalMessage::Relation(relation) => {
                let txn = self
                    .open
                    .as_mut()
                    .ok_or(ApplyError::OutOfTransaction("Relation"))?;
                if self.relations.get(&relation.oid) != Some(&relation) {
                    txn.redefined.push(relation.clone());
                    self.keys.insert(relation.oid, naming(&relation));
                    self.relations.insert(relation.oid, relation);
                }
                None
            }
            // Types, replication origins and logical messages change no rows.
            LogicalMessage::Type(_) | LogicalMessage::Origin(_) | LogicalMessage::Message(_) => {
                None
            }
            LogicalMessage::Begin(_) => return Err(ApplyError::OutOfTransaction("Begin")),
            LogicalMessage::Commit(_) => return Err(ApplyError::Unexpected("Commit payload")),
            _ => return Err(ApplyError::Unexpected("streamed-transaction")),
        };
        if let Some((oid, names, old, new)) = touched {
            let naming = self.keys.get(&oid);
            let columns = naming.map(|k| Arc::clone(&k.all));
            let keyed = naming.is_some_and(|k| k.key.is_some());
            let routed = names.clone().unwrap_or_default();
            let txn = self.open_txn("a row change")?;
            txn.touch(oid, 1, names);
            if let Some(columns) = columns {
                txn.change(
                    oid,
                    columns,
                    Change {
                        old,
                        new: None,
                        names: routed,
                        keyed,
                    },
                    new,
                );
            }
        }
        Ok(())
    }

    /// The names of one change to `oid` (`new` row, `old` row): `None`
    /// when it cannot be named (the stream sent no definition, or a key
    /// that does not read).
    fn names(&mut self, oid: Oid, new: Option<&Tuple>, old: Old<'_>) -> Option<Vec<u64>> {
        let naming = self.keys.get(&oid)?;
        let mut names = Vec::with_capacity(2 + 2 * naming.columns.len());
        if let Some(positions) = &naming.key {
            for tuple in [new, key_tuple(old)].into_iter().flatten() {
                let key = positions
                    .iter()
                    .map(|&(p, kind)| match value(tuple.columns.get(p)?, kind) {
                        Value::Key(part) => Some(part),
                        Value::Null | Value::Unknown => None,
                    })
                    .collect::<Option<Vec<KeyPart>>>()?;
                names.push(row_hash(oid, &key));
            }
        }
        for (position, name, kind, in_identity) in &naming.columns {
            // A column missing from a tuple is as unknown as an unsent one.
            let value_of = |tuple: &Tuple| {
                tuple
                    .columns
                    .get(*position)
                    .map_or(Value::Unknown, |c| value(c, *kind))
            };
            let old_value = match old {
                // An insert; or the identity did not change: the new value
                // was the old one.
                Old::None => None,
                Old::Unsent if *in_identity => None,
                Old::Key(t) if *in_identity => Some(value_of(t)),
                Old::Unsent | Old::Key(_) => Some(Value::Unknown),
                Old::Full(t) => Some(value_of(t)),
            };
            for side in new.map(value_of).into_iter().chain(old_value) {
                match side {
                    Value::Null => {}
                    Value::Key(v) => names.push(value_hash(oid, name, &v)),
                    Value::Unknown => {
                        let any = any_value_hash(oid, name);
                        if self.anys.insert(any) {
                            names.push(any);
                        }
                    }
                }
            }
        }
        Some(names)
    }

    /// A transactional logical message with [`DDL_MESSAGE_PREFIX`] (the
    /// transport reports messages itself).
    pub fn ddl(&mut self) -> Result<(), ApplyError> {
        self.open_txn("a DDL message")?.ddl = true;
        Ok(())
    }

    /// `Commit`: the transaction, ready to apply.
    pub fn commit(&mut self) -> Result<Committed, ApplyError> {
        let mut c = self
            .open
            .take()
            .ok_or(ApplyError::OutOfTransaction("Commit"))?;
        // Every table changed is named whole or by rows.
        for &t in &c.tables {
            if !c.whole.contains(&t) && !c.rows.iter().any(|&(r, _)| r == t) {
                c.whole.push(t);
            }
        }
        let whole = &c.whole;
        c.new_rows.retain(|n| !whole.contains(&n.table));
        Ok(c)
    }

    /// The stream restarted: forget the relations it sent.
    pub fn reset(&mut self) {
        self.open = None;
        self.relations.clear();
        self.keys.clear();
        self.anys.clear();
    }

    fn open_txn(&mut self, what: &'static str) -> Result<&mut Committed, ApplyError> {
        self.open.as_mut().ok_or(ApplyError::OutOfTransaction(what))
    }
}

impl Committed {
    /// `n` changes to `oid`, named by `names` (`None`: it cannot be).
    fn touch(&mut self, oid: Oid, n: u64, names: Option<Vec<u64>>) {
        self.changes += n;
        // Transactions touch few tables: a linear scan beats hashing.
        if !self.tables.contains(&oid) {
            self.tables.push(oid);
        }
        if self.whole.contains(&oid) {
            return;
        }
        match names {
            Some(names) if self.rows.len() + names.len() <= MAX_ROWS_PER_TRANSACTION => {
                self.rows.extend(names.into_iter().map(|h| (oid, h)));
            }
            _ => self.name_whole(oid),
        }
    }

    /// Every entry reading `oid` is affected: its rows are not named.
    fn name_whole(&mut self, oid: Oid) {
        self.whole.push(oid);
        self.rows.retain(|&(t, _)| t != oid);
        self.new_rows.retain(|n| n.table != oid);
    }

    /// A change to a row of `oid`: the old row or key it sent (updates of
    /// the key, deletes) and the new version (inserts, updates). Not kept
    /// once the table is named whole: every entry of it is dropped anyway.
    fn change(
        &mut self,
        oid: Oid,
        columns: Arc<[(String, Oid)]>,
        mut change: Change,
        new: Option<Tuple>,
    ) {
        if self.whole.contains(&oid) {
            return;
        }
        let held: usize = self.new_rows.iter().map(|n| n.changes.len()).sum();
        let bytes: usize = self.new_rows.iter().map(|n| n.bytes).sum();
        let size = change.old.as_ref().map_or(0, row_bytes) + new.as_ref().map_or(0, row_bytes);
        if held >= MAX_ROWS_PER_TRANSACTION || bytes + size > MAX_NEW_ROW_BYTES {
            self.name_whole(oid);
            return;
        }
        let at = match self.new_rows.iter().position(|n| n.table == oid) {
            Some(at) => at,
            None => {
                self.new_rows.push(NewRows {
                    table: oid,
                    columns: Arc::clone(&columns),
                    rows: Vec::new(),
                    changes: Vec::new(),
                    bytes: 0,
                });
                self.new_rows.len() - 1
            }
        };
        let n = &mut self.new_rows[at];
        if !Arc::ptr_eq(&n.columns, &columns) {
            // Redefined inside the transaction: count it whole.
            self.name_whole(oid);
            return;
        }
        change.new = new.map(|row| {
            n.rows.push(row);
            (n.rows.len() - 1) as u32
        });
        n.changes.push(change);
        n.bytes += size;
    }
}

/// The tuple holding an old key, when the change sent one.
fn key_tuple(old: Old<'_>) -> Option<&Tuple> {
    match old {
        Old::Key(t) | Old::Full(t) => Some(t),
        Old::None | Old::Unsent => None,
    }
}

/// A key-like column's value in a tuple.
enum Value {
    Null,
    Key(KeyPart),
    /// Not sent (unchanged TOAST) or not readable.
    Unknown,
}

fn value(column: &ColumnValue, kind: KeyKind) -> Value {
    match column {
        ColumnValue::Null => Value::Null,
        ColumnValue::Text(text) => stream_value(kind, text).map_or(Value::Unknown, Value::Key),
        ColumnValue::UnchangedToast | ColumnValue::Binary(_) => Value::Unknown,
    }
}

/// How `relation`'s changes are named.
fn naming(relation: &Relation) -> Naming {
    Naming {
        key: key_positions(relation),
        columns: relation
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.name.clone(), key_kind(c.type_oid)?, c.part_of_key)))
            .collect(),
        all: relation
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.type_oid))
            .collect(),
    }
}

/// Where the primary key columns are in `relation`'s tuples, when rows can
/// be named by them: the replica identity is the primary key (`DEFAULT`,
/// so old keys carry exactly those columns) and every key column is
/// key-like. In column order, as [`crate::cache::row_hash`] expects.
fn key_positions(relation: &Relation) -> Option<Vec<(usize, KeyKind)>> {
    if relation.replica_identity != ReplicaIdentity::Default {
        return None;
    }
    let positions = relation
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.part_of_key)
        .map(|(i, c)| Some((i, key_kind(c.type_oid)?)))
        .collect::<Option<Vec<_>>>()?;
    (!positions.is_empty()).then_some(positions)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::cdc::fixtures::fixture;

    /// [`row_hash`] of integer key values.
    fn int_row(table: Oid, key: &[i64]) -> u64 {
        let parts: Vec<KeyPart> = key.iter().map(|&k| KeyPart::Int(k)).collect();
        row_hash(table, &parts)
    }

    /// [`value_hash`] of an integer value.
    fn int_value(table: Oid, column: &str, value: i64) -> u64 {
        value_hash(table, column, &KeyPart::Int(value))
    }

    /// Feed a captured stream (Begin and Commit included, as the fixtures
    /// hold them) and collect the commits.
    fn run(messages: &[Bytes]) -> Vec<Committed> {
        let mut applier = Applier::new();
        let mut out = Vec::new();
        for m in messages {
            match m[0] {
                b'B' => applier.begin(1).unwrap(),
                b'C' => out.push(applier.commit().unwrap()),
                _ => applier.message(m).unwrap(),
            }
        }
        assert!(!applier.in_transaction());
        out
    }

    #[test]
    fn each_transaction_reports_its_tables_and_changes() {
        let commits = run(&fixture!("identity_default.hex"));
        assert_eq!(commits.len(), 4);
        let table = commits[0].tables[0];
        assert_eq!(commits[0].tables, vec![table]);
        assert_eq!(commits[0].changes, 2, "two inserts");
        assert_eq!(commits[0].redefined.len(), 1, "first sight of the table");
        for c in &commits[1..] {
            assert_eq!(c.tables, vec![table]);
            assert_eq!(c.changes, 1);
            assert!(c.redefined.is_empty(), "same definition as before");
        }
    }

    #[test]
    fn changes_name_their_rows_and_integer_values() {
        // app.accounts (id int PRIMARY KEY, owner text, balance bigint).
        let commits = run(&fixture!("identity_default.hex"));
        let t = commits[0].tables[0];
        let row = |k: i64| int_row(t, &[k]);
        let id = |v: i64| int_value(t, "id", v);
        let balance = |v: i64| int_value(t, "balance", v);
        let any_balance = any_value_hash(t, "balance");
        let owner = |v: &str| value_hash(t, "owner", &KeyPart::Bytes(Box::from(v.as_bytes())));
        let any_owner = any_value_hash(t, "owner");
        let want: [Vec<u64>; 4] = [
            // Two inserts: every value is new.
            vec![
                row(1),
                id(1),
                owner("alice"),
                balance(100),
                row(2),
                id(2),
                owner("bob"),
                balance(50),
            ],
            // A non-key update: the key is unchanged, the old values unsent.
            vec![
                row(1),
                id(1),
                owner("alice"),
                balance(150),
                any_owner,
                any_balance,
            ],
            // A key update: old key 'K'.
            vec![
                row(10),
                row(2),
                id(10),
                id(2),
                owner("bob"),
                balance(50),
                any_owner,
                any_balance,
            ],
            // A delete: old key 'K' only.
            vec![row(10), id(10), any_owner, any_balance],
        ];
        assert_eq!(commits.len(), want.len());
        for (c, want) in commits.iter().zip(want) {
            assert!(c.whole.is_empty(), "{c:?}");
            let mut got: Vec<u64> = c
                .rows
                .iter()
                .map(|&(table, h)| {
                    assert_eq!(table, t);
                    h
                })
                .collect();
            let mut want = want;
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{c:?}");
        }
    }

    #[test]
    fn inserts_and_updates_carry_their_new_rows() {
        // app.accounts (id int PRIMARY KEY, owner text, balance bigint):
        // two inserts, an update, a key update, a delete.
        let commits = run(&fixture!("identity_default.hex"));
        let t = commits[0].tables[0];
        let text = |v: &str| ColumnValue::Text(Bytes::copy_from_slice(v.as_bytes()));
        let rows: Vec<Vec<Vec<ColumnValue>>> = commits
            .iter()
            .map(|c| {
                c.new_rows
                    .iter()
                    .flat_map(|n| {
                        assert_eq!(n.table, t);
                        let names: Vec<&str> = n.columns.iter().map(|(c, _)| c.as_str()).collect();
                        assert_eq!(names, ["id", "owner", "balance"]);
                        n.rows.iter().map(|r| r.columns.clone())
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![
                    vec![text("1"), text("alice"), text("100")],
                    vec![text("2"), text("bob"), text("50")],
                ],
                vec![vec![text("1"), text("alice"), text("150")]],
                vec![vec![text("10"), text("bob"), text("50")]],
                vec![],
            ]
        );
    }

    #[test]
    fn truncates_are_named_whole() {
        let commits = run(&fixture!("truncate.hex"));
        for c in &commits {
            assert!(c.rows.is_empty(), "{c:?}");
            assert_eq!(c.whole, c.tables);
        }
    }

    #[test]
    fn full_identity_names_old_and_new_text_values() {
        // ledger (entry text, amount numeric), REPLICA IDENTITY FULL, no
        // key: insert rent and coffee; update coffee's amount; delete rent.
        let commits = run(&fixture!("identity_full.hex"));
        let t = commits[0].tables[0];
        let entry = |v: &str| value_hash(t, "entry", &KeyPart::Bytes(Box::from(v.as_bytes())));
        let want = [
            vec![entry("rent"), entry("coffee")],
            vec![entry("coffee"), entry("coffee")],
            vec![entry("rent")],
        ];
        assert_eq!(commits.len(), want.len());
        for (c, want) in commits.iter().zip(want) {
            assert!(c.whole.is_empty(), "{c:?}");
            let got: Vec<u64> = c.rows.iter().map(|&(_, h)| h).collect();
            assert_eq!(got, want, "{c:?}");
        }
    }

    #[test]
    fn values_outside_the_replica_identity_are_unknown_in_old_rows() {
        // devices (id int PRIMARY KEY, serial text, label text), REPLICA
        // IDENTITY USING INDEX (serial): old keys carry only serial.
        // events (payload text): REPLICA IDENTITY NOTHING.
        let commits = run(&fixture!("identity_index_nothing.hex"));
        let devices = commits[0].tables[0];
        let mut saw_any = false;
        for c in &commits {
            if c.tables == [devices] {
                assert!(c.whole.is_empty(), "{c:?}");
                assert!(
                    c.rows.contains(&(devices, int_value(devices, "id", 1))),
                    "{c:?}"
                );
                assert!(!c.rows.contains(&(devices, int_row(devices, &[1]))));
                saw_any |= c.rows.contains(&(devices, any_value_hash(devices, "id")));
            } else {
                // The insert into events names its new text value.
                let events = c.tables[0];
                let boot = value_hash(events, "payload", &KeyPart::Bytes(Box::from(&b"boot"[..])));
                assert_eq!(c.rows, vec![(events, boot)], "{c:?}");
            }
        }
        assert!(saw_any, "updates do not send the old id");
    }

    #[test]
    fn too_many_rows_name_the_table() {
        let messages = fixture!("identity_default.hex");
        let mut applier = Applier::new();
        applier.begin(1).unwrap();
        applier.message(&messages[1]).unwrap();
        for _ in 0..MAX_ROWS_PER_TRANSACTION + 1 {
            applier.message(&messages[2]).unwrap();
        }
        let c = applier.commit().unwrap();
        assert!(c.rows.is_empty());
        assert!(c.new_rows.is_empty(), "new rows are not kept either");
        assert_eq!(c.whole, c.tables);
    }

    #[test]
    fn truncate_touches_every_listed_table() {
        let commits = run(&fixture!("truncate.hex"));
        assert_eq!(commits.len(), 3);
        assert_eq!(
            commits[0].tables.len(),
            3,
            "parent, other, child by cascade"
        );
        assert_eq!(commits[1].tables.len(), 1);
        assert_eq!(commits[2].tables.len(), 2);
        // The relations were sent once each in the first transaction.
        assert_eq!(commits[0].redefined.len(), 3);
        assert!(commits[1].redefined.is_empty());
    }

    #[test]
    fn changed_definition_is_reported_again() {
        let messages = fixture!("identity_default.hex");
        let mut applier = Applier::new();
        applier.begin(1).unwrap();
        applier.message(&messages[1]).unwrap();
        assert_eq!(applier.commit().unwrap().redefined.len(), 1);
        // The same relation with one more column.
        let mut relation = match pgoutput::decode(&messages[1]).unwrap() {
            LogicalMessage::Relation(r) => r,
            other => panic!("{other:?}"),
        };
        let mut changed = messages[1].to_vec();
        // Column count is the big-endian i16 before the columns; add a
        // column `x int4 -1` at the end.
        let count_at = 1 + 4 + relation.namespace.len() + 1 + relation.name.len() + 1 + 1;
        let count = i16::from_be_bytes([changed[count_at], changed[count_at + 1]]);
        changed[count_at..count_at + 2].copy_from_slice(&(count + 1).to_be_bytes());
        changed.extend_from_slice(&[0, b'x', 0, 0, 0, 0, 23, 0xff, 0xff, 0xff, 0xff]);
        applier.begin(1).unwrap();
        applier.message(&Bytes::from(changed)).unwrap();
        let redefined = applier.commit().unwrap().redefined;
        assert_eq!(redefined.len(), 1);
        relation.columns.push(pgoutput::RelationColumn {
            part_of_key: false,
            name: "x".into(),
            type_oid: Oid(23),
            type_modifier: -1,
        });
        assert_eq!(redefined[0], relation);
    }

    #[test]
    fn snapshots_say_which_transactions_finished() {
        let s = XidSnapshot::parse("100:105:101,103").unwrap();
        assert!(s.finished(99));
        assert!(s.finished(100), "xmin itself is in progress only if listed");
        assert!(!s.finished(101));
        assert!(s.finished(102));
        assert!(!s.finished(103));
        assert!(s.finished(104));
        assert!(!s.finished(105), "not yet begun when taken");
        let empty = XidSnapshot::parse("7:7:").unwrap();
        assert!(empty.finished(6));
        assert!(!empty.finished(7));
        // 64-bit ids past the first epoch, compared modulo 2^32.
        let wrapped = XidSnapshot::parse("4294967300:4294967310:").unwrap();
        assert!(wrapped.finished(4294967305u64 as u32));
        assert!(wrapped.finished(u32::MAX), "just before the wrap");
        for bad in ["", "1:2", "1:2:3:4", "a:2:", "1:2:x"] {
            assert_eq!(XidSnapshot::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ddl_marks_the_transaction() {
        let mut applier = Applier::new();
        assert!(applier.ddl().is_err(), "outside a transaction");
        applier.begin(1).unwrap();
        applier.ddl().unwrap();
        let committed = applier.commit().unwrap();
        assert!(committed.ddl);
        assert!(committed.tables.is_empty());
        applier.begin(1).unwrap();
        assert!(!applier.commit().unwrap().ddl);
    }

    #[test]
    fn changes_outside_a_transaction_are_errors() {
        let messages = fixture!("identity_default.hex");
        let mut applier = Applier::new();
        assert_eq!(
            applier.message(&messages[2]),
            Err(ApplyError::OutOfTransaction("a row change"))
        );
        assert!(applier.commit().is_err());
        applier.begin(1).unwrap();
        assert!(applier.begin(2).is_err());
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut applier = Applier::new();
        applier.begin(1).unwrap();
        for bad in [&b""[..], b"I", b"I\0\0", b"Z123", b"T\0\0\0\x05\0"] {
            assert!(
                matches!(
                    applier.message(&Bytes::copy_from_slice(bad)),
                    Err(ApplyError::Decode(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn streamed_transactions_are_refused() {
        let messages = fixture!("stream.hex");
        let start = messages
            .iter()
            .find(|m| m[0] == b'S')
            .expect("a Stream Start");
        let mut applier = Applier::new();
        applier.begin(1).unwrap();
        assert!(matches!(
            applier.message(start),
            Err(ApplyError::Unexpected(_))
        ));
    }
}
