//! Joins kept up to date in place from the change stream (ADR 018).
//!
//! A [`Joined`] entry holds rows, table by table, as
//! [`crate::sql::joined`] describes: for the driving table every row its
//! filter accepts, for each other table every row its filter accepts whose
//! join column has a value in the table's **complete set** (the values
//! for which every such row is held). Its reply is the join of the held
//! rows, ordered and cut as the statement says, rebuilt at each commit
//! that changed them.
//!
//! A change to a table is applied to the rows held for it, as for ADR 017:
//! the row with this key is gone, and its new version is held when the
//! filter surely accepts it and (for a joined table) its join value is in
//! the complete set. At the end of the commit, every value a parent row
//! held names must be in its child's complete set: a row that moved to an
//! author, a product, an order whose rows are not held ends the entry (it
//! is dropped, and the next read captures it again). So does anything the
//! filters cannot decide, a TOAST value of a row not held, an order that
//! is not strict, or a result grown too large.
//!
//! The rows are read by [`Gather`] in one snapshot on the proxy's own
//! connection, level by level: the driving table's rows by its anchor,
//! then each table's rows by the values its parent's rows name.
//!
//! Pure: bytes and values in, bytes out.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use bytes::{BufMut, Bytes, BytesMut};

use super::live::{Lost, compare_by, data_row, select_complete};
use super::response::CapturedResult;
use super::{row_hash, value_hash};
use crate::catalog::Oid;
use crate::cdc::apply::{NewRows, cell};
use crate::cdc::pgoutput::{ColumnValue, Tuple};
use crate::check::quote_ident;
use crate::sql::filter::{Cell, Filter};
use crate::sql::joined::{Edge, JoinSpec};
use crate::sql::rowkey::{KeyKind, KeyPart, stream_value};

/// Most rows a joined entry holds, all tables together.
pub const MAX_JOIN_ROWS: usize = 1024;

/// Most rows its result may have before `LIMIT`.
const MAX_RESULT_ROWS: usize = 4096;

/// A [`JoinSpec`] bound to one execution's values.
#[derive(Clone, Debug)]
pub struct JoinPlan {
    pub spec: Arc<JoinSpec>,
    /// Each table's filter, bound.
    pub filters: Vec<Filter>,
    pub limit: Option<u64>,
    /// Each table's schema and name, for reading its rows.
    pub names: Vec<(String, String)>,
    /// Names the entry's generation slot.
    pub id: u64,
}

impl JoinPlan {
    /// The tables read, each once.
    pub fn tables(&self) -> Vec<Oid> {
        let mut out: Vec<Oid> = Vec::with_capacity(self.spec.tables.len());
        for t in &self.spec.tables {
            if !out.contains(&t.oid) {
                out.push(t.oid);
            }
        }
        out
    }

    fn select(&self, i: usize, condition: &str) -> String {
        let columns: Vec<String> = self.spec.tables[i]
            .columns
            .iter()
            .map(|(n, _)| quote_ident(n))
            .collect();
        let (schema, table) = &self.names[i];
        format!(
            "SELECT {} FROM ONLY {}.{} WHERE {} LIMIT {}",
            columns.join(", "),
            quote_ident(schema),
            quote_ident(table),
            condition,
            MAX_JOIN_ROWS + 1
        )
    }

    fn parent_edge(&self, child: usize) -> Option<&Edge> {
        self.spec.edges.iter().find(|e| e.child == child)
    }
}

/// One row held: its key and its held columns' text (`None`: NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    key: Vec<KeyPart>,
    values: Vec<Option<Bytes>>,
}

/// Reads a joined entry's rows: the queries to run in one snapshot, in
/// order, and what their rows mean.
#[derive(Debug)]
pub struct Gather {
    plan: JoinPlan,
    rows: Vec<Vec<Row>>,
    complete: Vec<HashSet<i64>>,
    /// Queries answered: the driving table's, then one per edge.
    step: usize,
}

impl Gather {
    pub fn new(plan: &JoinPlan) -> Gather {
        let n = plan.spec.tables.len();
        Gather {
            plan: plan.clone(),
            rows: vec![Vec::new(); n],
            complete: vec![HashSet::new(); n],
            step: 0,
        }
    }

    /// The next query to run (its rows go to [`Self::take`]); `None` when
    /// every table was read, or when the driving table's anchor is not an
    /// integer.
    pub fn next_sql(&self) -> Option<String> {
        let spec = &self.plan.spec;
        if self.step == 0 {
            let filter = self.plan.filters.get(spec.driving)?;
            let (column, KeyPart::Int(v)) = filter.anchor()? else {
                return None;
            };
            return Some(self.plan.select(
                spec.driving,
                &format!("{} OPERATOR(pg_catalog.=) ({v})", quote_ident(column)),
            ));
        }
        let edge = spec.edges.get(self.step - 1)?;
        let values = self.values(edge);
        let list: Vec<String> = values.iter().map(i64::to_string).collect();
        let column = &spec.tables[edge.child].columns[edge.column].0;
        Some(self.plan.select(
            edge.child,
            &format!(
                "{} OPERATOR(pg_catalog.=) ANY ('{{{}}}'::pg_catalog.int8[])",
                quote_ident(column),
                list.join(",")
            ),
        ))
    }

    /// The values `edge`'s parent rows name (NULLs name none).
    fn values(&self, edge: &Edge) -> Vec<i64> {
        let mut values: Vec<i64> = self.rows[edge.parent]
            .iter()
            .filter_map(|r| int_of(&r.values[edge.parent_column]))
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }

    /// The rows the last query read (each its held columns' text). `None`
    /// when the join cannot be kept: too many rows, a key that does not
    /// read, a row its filter might accept or not.
    pub fn take(&mut self, rows: Vec<Vec<Option<Bytes>>>) -> Option<()> {
        let spec = &self.plan.spec;
        let (i, edge) = if self.step == 0 {
            (spec.driving, None)
        } else {
            let edge = *spec.edges.get(self.step - 1)?;
            (edge.child, Some(edge))
        };
        if let Some(edge) = edge {
            let values = self.values(&edge);
            self.complete[i].extend(values);
        }
        // The query stops past the bound: a read that reached it may have
        // left out rows the filter accepts.
        if rows.len() > MAX_JOIN_ROWS {
            return None;
        }
        let table = &spec.tables[i];
        let filter = self.plan.filters.get(i)?;
        let positions = filter.positions(&table.columns);
        for values in rows {
            if values.len() != table.columns.len() {
                return None;
            }
            let at = |j: usize| text_cell(&values, j);
            match filter.decide(&positions, &at) {
                Some(true) => {}
                Some(false) => continue,
                None => return None,
            }
            let key = key_of(table.key.as_slice(), &values)?;
            if self.rows[i].iter().any(|r| r.key == key) {
                return None;
            }
            self.rows[i].push(Row { key, values });
        }
        self.step += 1;
        (self.rows.iter().map(Vec::len).sum::<usize>() <= MAX_JOIN_ROWS).then_some(())
    }

    /// The plan it reads for.
    pub fn plan(&self) -> &JoinPlan {
        &self.plan
    }

    /// Whether every table was read.
    pub fn done(&self) -> bool {
        self.step == 1 + self.plan.spec.edges.len()
    }
}

#[derive(Debug)]
struct State {
    rows: Vec<Vec<Row>>,
    complete: Vec<HashSet<i64>>,
    /// Rows changed since the reply was last built.
    dirty: bool,
    /// Until its rows are read: the changes applied meanwhile, replayed
    /// on them ([`Joined::fill`]).
    pending: Option<Pending>,
    /// Names of rows held since [`Joined::take_added`].
    added: Vec<(Oid, u64)>,
    /// Per table: where its held columns are in the stream's rows, for
    /// the column list they were found in.
    positions: Vec<Option<(Columns, Vec<usize>)>>,
}

/// A table's columns as the stream describes them (name, type).
type Columns = Arc<[(String, Oid)]>;

#[derive(Debug, Default)]
struct Pending {
    /// With the sequence number of their commit: a commit seen finished
    /// only now is kept after later ones, and replayed in its place.
    batches: Vec<(u64, NewRows)>,
    changes: usize,
}

/// Most changes kept for an entry whose rows are being read.
const MAX_PENDING_CHANGES: usize = 4096;

/// A joined entry's state, shared by its cache entry and the stream.
#[derive(Debug)]
pub struct Joined {
    /// Names the generation slot that drops the entry.
    pub id: u64,
    /// The stream's commit count once it was registered
    /// ([`Self::set_begin`]; `u64::MAX` before).
    begin: AtomicU64,
    plan: JoinPlan,
    /// Each table's filter columns among its held columns.
    filter_at: Vec<Vec<Option<usize>>>,
    statement: Bytes,
    description: Bytes,
    max_len: usize,
    state: Mutex<State>,
    current: RwLock<CapturedResult>,
    dead: AtomicBool,
    /// Indexed under its names ([`super::ResultCache::activate_joined`]):
    /// until then, routed every change of its tables.
    active: AtomicBool,
}

impl Joined {
    /// A joined entry for `plan` whose rows are still to be read
    /// ([`Self::fill`]), replying as `result` (the statement's captured
    /// reply: its descriptions are kept) would. Until then every change
    /// of its tables applied to it is kept, to be replayed.
    pub fn pending(plan: JoinPlan, result: &CapturedResult, max_len: usize) -> Joined {
        let n = plan.spec.tables.len();
        let filter_at = plan
            .spec
            .tables
            .iter()
            .zip(&plan.filters)
            .map(|(t, f)| f.positions(&t.columns))
            .collect();
        Joined {
            id: plan.id,
            filter_at,
            begin: AtomicU64::new(u64::MAX),
            statement: Bytes::copy_from_slice(result.statement_description().unwrap_or_default()),
            description: Bytes::copy_from_slice(result.row_description().unwrap_or_default()),
            plan,
            max_len,
            state: Mutex::new(State {
                rows: vec![Vec::new(); n],
                complete: vec![HashSet::new(); n],
                dirty: false,
                pending: Some(Pending::default()),
                added: Vec::new(),
                positions: vec![None; n],
            }),
            current: RwLock::new(result.clone()),
            dead: AtomicBool::new(false),
            active: AtomicBool::new(false),
        }
    }

    /// Whether it is indexed under its names.
    pub fn active(&self) -> bool {
        self.active.load(AtomicOrdering::Acquire)
    }

    /// It is indexed under its names (the registry's lock held).
    pub fn set_active(&self) {
        self.active.store(true, AtomicOrdering::Release);
    }

    /// The stream's commit count, read once it was registered.
    pub fn set_begin(&self, begin: u64) {
        self.begin.store(begin, AtomicOrdering::Release);
    }

    pub fn begin(&self) -> u64 {
        self.begin.load(AtomicOrdering::Acquire)
    }

    /// Whether its rows are still to be read.
    pub fn is_pending(&self) -> bool {
        self.lock().pending.is_some()
    }

    /// Take the rows `gather` read, replay the changes applied since it was
    /// registered, check and build the reply. After an error the entry
    /// must be dropped.
    pub fn fill(&self, gather: Gather) -> Result<(), Lost> {
        if !gather.done() {
            return Err(Lost::Unreadable);
        }
        let mut state = self.lock();
        let pending = state.pending.take().unwrap_or_default();
        state.rows = gather.rows;
        state.complete = gather.complete;
        let mut batches = pending.batches;
        batches.sort_by_key(|&(seq, _)| seq);
        for (_, batch) in &batches {
            self.apply_to(&mut state, batch)?;
        }
        state.dirty = false;
        state.added.clear();
        self.check(&state)?;
        // The reply's shape is the captured one's.
        let fields = self
            .description
            .get(5..7)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        if fields != Some(self.plan.spec.outputs.len()) {
            return Err(Lost::Columns);
        }
        let reply = self.build(&state.rows)?;
        if reply.len() > self.max_len {
            return Err(Lost::Size);
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = reply;
        Ok(())
    }

    /// Keep `batch` for replay if the rows are still to be read (a commit
    /// seen finished only now may not be in the snapshot they are read
    /// in). Whether it was kept.
    pub fn defer(&self, batch: &NewRows, seq: u64) -> Result<bool, Lost> {
        let mut state = self.lock();
        match &mut state.pending {
            Some(p) => {
                p.changes += batch.changes.len();
                if p.changes > MAX_PENDING_CHANGES {
                    return Err(Lost::Size);
                }
                p.batches.push((seq, batch.clone()));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tables it reads, each once.
    pub fn tables(&self) -> Vec<Oid> {
        self.plan.tables()
    }

    /// The reply as of the last commit applied.
    pub fn current(&self) -> RwLockReadGuard<'_, CapturedResult> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dead(&self) -> bool {
        self.dead.load(AtomicOrdering::Acquire)
    }

    pub fn kill(&self) {
        self.dead.store(true, AtomicOrdering::Release);
    }

    /// Bytes of the values held (besides its reply).
    pub fn held_bytes(&self) -> usize {
        held_bytes(&self.lock().rows)
    }

    /// The names of rows it started holding since the last call, per
    /// table (see [`Self::names`]).
    pub fn take_added(&self) -> Vec<(Oid, u64)> {
        std::mem::take(&mut self.lock().added)
    }

    /// Rows held, all tables together.
    pub fn rows(&self) -> usize {
        self.lock().rows.iter().map(Vec::len).sum()
    }

    /// The names a change to `table` that may concern it carries: the
    /// driving table's anchor value, each other table's complete values of
    /// its join column, and the keys of the rows held.
    pub fn names(&self, table: Oid) -> Vec<u64> {
        let state = self.lock();
        let spec = &self.plan.spec;
        let mut out = Vec::new();
        if state.pending.is_some() {
            return out;
        }
        for (i, t) in spec.tables.iter().enumerate() {
            if t.oid != table {
                continue;
            }
            if i == spec.driving {
                if let Some((column, value)) = self.plan.filters[i].anchor() {
                    out.push(value_hash(table, column, value));
                }
            } else if let Some(edge) = self.plan.parent_edge(i) {
                let column = &t.columns[edge.column].0;
                out.extend(
                    state.complete[i]
                        .iter()
                        .map(|&v| value_hash(table, column, &KeyPart::Int(v))),
                );
            }
            out.extend(state.rows[i].iter().map(|r| row_hash(table, &r.key)));
        }
        out
    }

    /// Whether `batch` may change it: a change that does not name its
    /// rows' keys, or one carrying one of its [`Self::names`].
    pub fn touched_by(&self, batch: &NewRows) -> bool {
        if self.dead() || self.is_pending() {
            return false;
        }
        let names: HashSet<u64> = self.names(batch.table).into_iter().collect();
        batch
            .changes
            .iter()
            .any(|c| !c.keyed || c.names.iter().any(|n| names.contains(n)))
    }

    /// Apply one commit's changes to one of its tables (in commit order);
    /// [`Self::finish`] once the commit's every table is applied. After an
    /// error the entry must be dropped.
    pub fn apply(&self, batch: &NewRows, seq: u64) -> Result<(), Lost> {
        if self.dead() || self.defer(batch, seq)? {
            return Ok(());
        }
        let mut state = self.lock();
        self.apply_to(&mut state, batch)
    }

    fn apply_to(&self, state: &mut State, batch: &NewRows) -> Result<(), Lost> {
        let State {
            rows,
            complete,
            dirty,
            added,
            positions,
            ..
        } = state;
        let spec = &self.plan.spec;
        for (i, table) in spec.tables.iter().enumerate() {
            if table.oid != batch.table {
                continue;
            }
            // Where its held columns are in the stream's rows (found again
            // when the stream describes the table anew).
            let cached = &mut positions[i];
            if cached
                .as_ref()
                .is_none_or(|(columns, _)| !Arc::ptr_eq(columns, &batch.columns))
            {
                let found = table
                    .columns
                    .iter()
                    .map(|(n, ty)| {
                        batch
                            .columns
                            .iter()
                            .position(|(name, t)| name == n && t == ty)
                    })
                    .collect::<Option<Vec<usize>>>()
                    .ok_or(Lost::Columns)?;
                *cached = Some((Arc::clone(&batch.columns), found));
            }
            let Some((_, positions)) = cached.as_ref() else {
                return Err(Lost::Columns);
            };
            let filter = &self.plan.filters[i];
            let filter_at = &self.filter_at[i];
            let edge = self.plan.parent_edge(i);
            for change in &batch.changes {
                let new = match change.new {
                    Some(n) => Some(batch.rows.get(n as usize).ok_or(Lost::Unreadable)?),
                    None => None,
                };
                let stream_key = |tuple: &Tuple| -> Result<Vec<KeyPart>, Lost> {
                    table
                        .key
                        .iter()
                        .map(|&k| match tuple.columns.get(positions[k]) {
                            Some(ColumnValue::Text(t)) => {
                                stream_value(KeyKind::Int, t).ok_or(Lost::Unreadable)
                            }
                            _ => Err(Lost::Unreadable),
                        })
                        .collect()
                };
                let old_key = change.old.as_ref().map(stream_key).transpose()?;
                let new_key = new.map(stream_key).transpose()?;
                // The new key's row first (a snapshot that showed this
                // change: its unsent values are that row's), then the old.
                let mut prior = None;
                for key in [&new_key, &old_key].into_iter().flatten() {
                    if let Some(k) = rows[i].iter().position(|r| r.key == *key) {
                        prior.get_or_insert(rows[i].swap_remove(k));
                        *dirty = true;
                    }
                }
                let (Some(new), Some(key)) = (new, new_key) else {
                    continue;
                };
                // `None` for a value not sent (unchanged TOAST) of a row
                // not held: it ends the entry only if the row may matter.
                let mut sent: Vec<Option<Option<Bytes>>> = Vec::with_capacity(positions.len());
                for (j, &p) in positions.iter().enumerate() {
                    sent.push(match cell(new, p) {
                        Cell::Null => Some(None),
                        Cell::Text(t) => Some(Some(Bytes::copy_from_slice(t))),
                        Cell::Unsent => prior.as_ref().map(|r| r.values[j].clone()),
                        Cell::Missing => return Err(Lost::Unreadable),
                    });
                }
                if let Some(edge) = edge {
                    // Held only for a value whose rows are all held (an
                    // integer: always sent).
                    match sent[edge.column].as_ref().and_then(int_of) {
                        Some(v) if complete[i].contains(&v) => {}
                        _ => continue,
                    }
                }
                let at = |j: usize| match sent.get(j) {
                    Some(Some(v)) => v.as_deref().map_or(Cell::Null, Cell::Text),
                    Some(None) => Cell::Unsent,
                    None => Cell::Missing,
                };
                match filter.decide(filter_at, &at) {
                    Some(true) => {}
                    Some(false) => continue,
                    None => return Err(Lost::Undecided),
                }
                let values = sent
                    .into_iter()
                    .collect::<Option<Vec<Option<Bytes>>>>()
                    .ok_or(Lost::Toast)?;
                // A row held again under its key is indexed already.
                if prior.as_ref().is_none_or(|p| p.key != key) {
                    added.push((table.oid, row_hash(table.oid, &key)));
                }
                rows[i].push(Row { key, values });
                *dirty = true;
            }
        }
        Ok(())
    }

    /// End a commit: check that every row held can be joined from what is
    /// held, and rebuild the reply if a row changed. Whether it changed.
    pub fn finish(&self) -> Result<bool, Lost> {
        if self.dead() {
            return Ok(false);
        }
        let mut state = self.lock();
        if !state.dirty || state.pending.is_some() {
            return Ok(false);
        }
        state.dirty = false;
        self.check(&state)?;
        let reply = self.build(&state.rows)?;
        if reply.len() > self.max_len {
            return Err(Lost::Size);
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = reply;
        Ok(true)
    }

    /// Every value a parent row names is complete in its child; the rows
    /// are within bounds.
    fn check(&self, state: &State) -> Result<(), Lost> {
        if state.rows.iter().map(Vec::len).sum::<usize>() > MAX_JOIN_ROWS
            || held_bytes(&state.rows) > self.max_len
        {
            return Err(Lost::Size);
        }
        for edge in &self.plan.spec.edges {
            for r in &state.rows[edge.parent] {
                let value = &r.values[edge.parent_column];
                match int_of(value) {
                    Some(v) if !state.complete[edge.child].contains(&v) => {
                        return Err(Lost::Incomplete);
                    }
                    None if value.is_some() => return Err(Lost::Unreadable),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The reply: the join of `rows`, ordered, cut by the `LIMIT`.
    fn build(&self, rows: &[Vec<Row>]) -> Result<CapturedResult, Lost> {
        let spec = &self.plan.spec;
        let n = spec.tables.len();
        // Combinations: one row index per table.
        let mut combos: Vec<Vec<usize>> = (0..rows[spec.driving].len())
            .map(|k| {
                let mut c = vec![usize::MAX; n];
                c[spec.driving] = k;
                c
            })
            .collect();
        for edge in &spec.edges {
            let mut next = Vec::new();
            for c in &combos {
                let Some(v) = int_of(&rows[edge.parent][c[edge.parent]].values[edge.parent_column])
                else {
                    continue;
                };
                for (k, r) in rows[edge.child].iter().enumerate() {
                    if int_of(&r.values[edge.column]) == Some(v) {
                        let mut d = c.clone();
                        d[edge.child] = k;
                        next.push(d);
                    }
                }
                if next.len() > MAX_RESULT_ROWS {
                    return Err(Lost::Size);
                }
            }
            combos = next;
        }
        let value = |c: &[usize], (t, col): (usize, usize)| -> &Option<Bytes> {
            &rows[t][c[t]].values[col]
        };
        combos.retain(|c| {
            spec.extra.iter().all(|&(l, r)| {
                let (l, r) = (int_of(value(c, l)), int_of(value(c, r)));
                l.is_some() && l == r
            })
        });
        let sort = |c: &[usize]| -> Vec<Option<i64>> {
            spec.order
                .iter()
                .map(|o| int_of(value(c, (o.table, o.column))))
                .collect()
        };
        let mut keyed: Vec<(Vec<Option<i64>>, Vec<usize>)> =
            combos.into_iter().map(|c| (sort(&c), c)).collect();
        keyed.sort_by(|a, b| self.compare(&a.0, &b.0));
        let strict = if spec.order.is_empty() {
            keyed.len() <= 1
        } else {
            keyed
                .windows(2)
                .all(|w| self.compare(&w[0].0, &w[1].0) == Ordering::Less)
        };
        if !strict {
            return Err(Lost::Order);
        }
        if let Some(limit) = self.plan.limit {
            keyed.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        let mut out = BytesMut::new();
        for (_, c) in &keyed {
            let values: Vec<Option<&[u8]>> = spec
                .outputs
                .iter()
                .map(|&o| value(c, o).as_deref())
                .collect();
            out.put_slice(&data_row(&values));
        }
        let complete = select_complete(keyed.len());
        Ok(CapturedResult::with_statement(
            &self.statement,
            (!self.description.is_empty()).then_some(&self.description[..]),
            &out,
            keyed.len() as u64,
            &complete,
        ))
    }

    /// Order of two combinations' sort values under `ORDER BY`.
    fn compare(&self, a: &[Option<i64>], b: &[Option<i64>]) -> Ordering {
        compare_by(
            self.plan
                .spec
                .order
                .iter()
                .map(|k| (k.descending, k.nulls_first)),
            a,
            b,
        )
    }
}

/// Bytes of the values held.
fn held_bytes(rows: &[Vec<Row>]) -> usize {
    rows.iter()
        .flatten()
        .flat_map(|r| &r.values)
        .map(|v| 16 + v.as_ref().map_or(0, Bytes::len))
        .sum()
}

/// Column `j` of held values as a filter reads it.
fn text_cell(values: &[Option<Bytes>], j: usize) -> Cell<'_> {
    match values.get(j) {
        Some(Some(t)) => Cell::Text(t),
        Some(None) => Cell::Null,
        None => Cell::Missing,
    }
}

/// An integer column's value (`None`: NULL or not an integer).
fn int_of(value: &Option<Bytes>) -> Option<i64> {
    std::str::from_utf8(value.as_deref()?).ok()?.parse().ok()
}

/// The key at positions `key` of held values.
fn key_of(key: &[usize], values: &[Option<Bytes>]) -> Option<Vec<KeyPart>> {
    key.iter()
        .map(|&k| stream_value(KeyKind::Int, values.get(k)?.as_deref()?))
        .collect()
}

#[cfg(test)]
#[path = "joined_tests.rs"]
mod tests;
