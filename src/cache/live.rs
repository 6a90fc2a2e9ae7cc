//! Entries kept up to date in place from the change stream (ADR 017).
//!
//! A [`Live`] entry is a single-table result whose rows the stream's text
//! reproduces byte for byte ([`crate::sql::layout`]): every output a plain
//! column of a type whose text output depends on no setting, text format,
//! a UTF-8 session on a UTF-8 database, ordered by integer columns that
//! include the whole primary key, its whole `WHERE` a [`Filter`] decided
//! exactly on the stream's values. At each commit the stream hands it the
//! table's changes in order ([`Live::apply`]): a row whose old key it holds
//! is removed, a new row the filter surely accepts is inserted at its
//! place under `ORDER BY`, and the reply is rebuilt. Anything it cannot
//! decide (a filter that might go either way, an unchanged TOAST value of a
//! row it does not hold, a `LIMIT` window that can no longer be completed
//! from what it holds, a result grown too large) ends it: the caller then
//! drops the entry.
//!
//! Applying a change is "the row with this key is now this (or gone)", so
//! applying a commit that the captured rows already show changes nothing:
//! an entry can follow every commit applied after its capture began,
//! whether or not its snapshot saw them (the fence-and-replay recipe).
//!
//! Pure: bytes and values in, bytes out.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use bytes::{BufMut, Bytes, BytesMut};

use super::response::{self, CapturedResult};
use super::{row_hash, value_hash};
use crate::catalog::Oid;
use crate::cdc::apply::{NewRows, cell};
use crate::cdc::pgoutput::{ColumnValue, Tuple};
use crate::sql::filter::{Cell, Filter};
use crate::sql::layout::Layout;
use crate::sql::rowkey::{KeyKind, KeyPart, bound_value, key_kind, stream_value};

/// Most rows a live entry holds (its state is searched per change, and
/// each row it holds routes changes to it).
pub const MAX_LIVE_ROWS: usize = 1024;

/// Integer values are routed to range entries in buckets of 2^6.
pub const BUCKET_BITS: u32 = 6;
/// Most buckets a range entry is registered under (ranges up to about
/// 2,000 values); a wider range is tested against every change.
const MAX_BUCKETS: i64 = 32;

/// The name of the bucket holding value `v` of integer column `column`
/// (`v >> BUCKET_BITS`).
pub fn bucket_hash(table: Oid, column: &str, bucket: i64) -> u64 {
    super::fnv(&[
        b"b",
        &table.0.to_le_bytes(),
        column.as_bytes(),
        &[0],
        &bucket.to_le_bytes(),
    ])
}

/// What applying changes did to a live entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The reply changed.
    pub changed: bool,
    /// [`row_hash`]es of rows it started and stopped holding.
    pub added: Vec<u64>,
    pub removed: Vec<u64>,
}

/// A row held: its key (and its [`row_hash`]), its sort values and its
/// `DataRow` message.
#[derive(Clone, Debug)]
struct Held {
    key: Vec<KeyPart>,
    hash: u64,
    sort: Vec<Option<i64>>,
    row: Bytes,
}

/// Sort values (one per `ORDER BY` item; `None` is NULL).
type SortValues = Vec<Option<i64>>;

/// A table's columns as the stream describes them (name, type).
type Columns = Arc<[(String, Oid)]>;

#[derive(Debug)]
struct State {
    held: Vec<Held>,
    /// With a `LIMIT` whose window was full: every row that satisfies the
    /// `WHERE` and is not held sorts after this.
    beyond: Option<SortValues>,
    /// Where the layout's outputs, key and filter columns are in the
    /// stream's rows, for the column list they were computed for.
    positions: Option<(Columns, Positions)>,
}

#[derive(Debug)]
struct Positions {
    outputs: Vec<usize>,
    filter: Vec<Option<usize>>,
}

/// Why a live entry cannot follow a change (it is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// A column of the layout is not in the stream's rows (with its type).
    Columns,
    /// A key that does not read, or a value sent in binary.
    Unreadable,
    /// The filter might accept the row or not.
    Undecided,
    /// An unchanged TOAST value of a row not held.
    Toast,
    /// A `LIMIT` window lost a row it cannot refill.
    Window,
    /// The result grew past its bound.
    Size,
    /// A joined row names a value whose rows are not all held.
    Incomplete,
    /// Rows a join gives are not in a strict order.
    Order,
}

impl Lost {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Lost::Columns => "columns",
            Lost::Unreadable => "unreadable",
            Lost::Undecided => "undecided",
            Lost::Toast => "toast",
            Lost::Window => "window",
            Lost::Size => "size",
            Lost::Incomplete => "incomplete",
            Lost::Order => "order",
        }
    }
}

/// One live entry's state, shared by its cache entry and the stream.
#[derive(Debug)]
pub struct Live {
    pub table: Oid,
    /// Names the generation slot that drops the entry.
    pub id: u64,
    /// The change stream's commit count when the capture began (see
    /// [`super::ResultCache::next_commit`]).
    pub begin: u64,
    /// The [`value_hash`] of the filter's anchor: every row it accepts has
    /// that value ([`Filter::anchor`]).
    pub anchor: Option<u64>,
    /// Without an anchor, a narrow range of an integer column every row it
    /// accepts is in ([`Filter::bounds`]): the column and the
    /// [`bucket_hash`]es of the buckets the range covers.
    pub buckets: Option<(String, Vec<u64>)>,
    filter: Filter,
    layout: Layout,
    /// Output positions of the primary key, with each column's kind.
    key: Vec<(usize, KeyKind)>,
    statement: Bytes,
    description: Bytes,
    max_len: usize,
    state: Mutex<State>,
    current: RwLock<CapturedResult>,
    dead: AtomicBool,
}

impl Live {
    /// A live entry for `result`, the captured reply of a statement with
    /// `layout` whose whole `WHERE` is `filter` and whose key is at
    /// `key` (output position, type) in its text-format rows. `None` when
    /// the rows do not read as the layout says (the entry then stays a
    /// plain one).
    pub fn new(
        filter: Filter,
        layout: Layout,
        key: &[(usize, Oid)],
        result: &CapturedResult,
        begin: u64,
        max_len: usize,
    ) -> Option<Live> {
        let key = key
            .iter()
            .map(|&(p, ty)| {
                (p < layout.outputs.len() && layout.outputs[p].1 == ty)
                    .then_some(())
                    .and(key_kind(ty).map(|k| (p, k)))
            })
            .collect::<Option<Vec<_>>>()?;
        if key.is_empty()
            || layout
                .order
                .iter()
                .any(|o| o.output >= layout.outputs.len())
        {
            return None;
        }
        let all: Vec<usize> = (0..layout.outputs.len()).collect();
        let rows = response::fields_at(result.rows(), &all)?;
        if rows.len() > MAX_LIVE_ROWS || layout.limit.is_some_and(|n| rows.len() as u64 > n) {
            return None;
        }
        let mut held = Vec::with_capacity(rows.len());
        let mut at = 0;
        let bytes = result.rows();
        // Held rows share the captured reply's buffer.
        let shared = result.rows_bytes();
        for fields in &rows {
            let len = 1 + usize::try_from(u32::from_be_bytes(
                bytes.get(at + 1..at + 5)?.try_into().ok()?,
            ))
            .ok()?;
            // Exactly the layout's columns.
            let count = u16::from_be_bytes(bytes.get(at + 5..at + 7)?.try_into().ok()?);
            if usize::from(count) != layout.outputs.len() {
                return None;
            }
            bytes.get(at..at + len)?;
            let row = shared.slice(at..at + len);
            at += len;
            let key = key
                .iter()
                .map(|&(p, _)| {
                    let ty = layout.outputs[p].1;
                    bound_value((*fields.get(p)?)?, false, ty.0, ty, true)
                })
                .collect::<Option<Vec<_>>>()?;
            let sort = layout
                .order
                .iter()
                .map(|o| match fields.get(o.output)? {
                    None => Some(None),
                    Some(text) => int(text).map(Some),
                })
                .collect::<Option<Vec<_>>>()?;
            let hash = row_hash(filter.table, &key);
            held.push(Held {
                key,
                hash,
                sort,
                row,
            });
        }
        // The origin's order must be the one understood here, strictly.
        if held
            .windows(2)
            .any(|w| compare(&w[0].sort, &w[1].sort, &layout) != Ordering::Less)
        {
            return None;
        }
        let beyond = match layout.limit {
            Some(n) if held.len() as u64 == n => held.last().map(|h| h.sort.clone()),
            _ => None,
        };
        let anchor = filter
            .anchor()
            .map(|(column, value)| value_hash(filter.table, column, value));
        let buckets = match (anchor, filter.bounds()) {
            (None, Some((column, lo, hi)))
                if (hi >> BUCKET_BITS) - (lo >> BUCKET_BITS) < MAX_BUCKETS =>
            {
                let names = ((lo >> BUCKET_BITS)..=(hi >> BUCKET_BITS))
                    .map(|b| bucket_hash(filter.table, column, b))
                    .collect();
                Some((column.to_owned(), names))
            }
            _ => None,
        };
        Some(Live {
            table: filter.table,
            id: filter.id,
            begin,
            anchor,
            buckets,
            filter,
            layout,
            key,
            statement: Bytes::copy_from_slice(result.statement_description().unwrap_or_default()),
            description: Bytes::copy_from_slice(result.row_description().unwrap_or_default()),
            max_len,
            state: Mutex::new(State {
                held,
                beyond,
                positions: None,
            }),
            current: RwLock::new(result.clone()),
            dead: AtomicBool::new(false),
        })
    }

    /// The reply as of the last commit applied.
    pub fn current(&self) -> RwLockReadGuard<'_, CapturedResult> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the entry was given up.
    pub fn dead(&self) -> bool {
        self.dead.load(AtomicOrdering::Acquire)
    }

    /// Give the entry up (the caller drops it from the cache).
    pub fn kill(&self) {
        self.dead.store(true, AtomicOrdering::Release);
    }

    /// The [`row_hash`]es of the rows held now.
    pub fn names(&self) -> Vec<u64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .held
            .iter()
            .map(|h| h.hash)
            .collect()
    }

    /// Rows held now.
    pub fn rows(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .held
            .len()
    }

    /// Apply one commit's changes to this entry's table: those at the
    /// positions `which` (in commit order; the others concern no row it
    /// holds or could hold). After an error the entry must be dropped:
    /// its state is left half-applied.
    pub fn apply(&self, batch: &NewRows, which: &[usize]) -> Result<Applied, Lost> {
        let mut applied = Applied::default();
        if self.dead() || self.layout.limit == Some(0) {
            return Ok(applied);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match &state.positions {
            Some((columns, _)) => !Arc::ptr_eq(columns, &batch.columns),
            None => true,
        };
        if fresh {
            let positions = self.positions(&batch.columns).ok_or(Lost::Columns)?;
            state.positions = Some((Arc::clone(&batch.columns), positions));
        }
        let State {
            held,
            beyond,
            positions,
        } = &mut *state;
        let Some((_, positions)) = positions.as_ref() else {
            return Err(Lost::Columns);
        };
        for &i in which {
            let change = batch.changes.get(i).ok_or(Lost::Unreadable)?;
            let new = match change.new {
                Some(i) => Some(batch.rows.get(i as usize).ok_or(Lost::Unreadable)?),
                None => None,
            };
            let old_key = match &change.old {
                Some(t) => Some(self.key_of(t, positions)?),
                None => None,
            };
            let new_key = match new {
                Some(t) => Some(self.key_of(t, positions)?),
                None => None,
            };
            // The new key's row, if held already (a snapshot that showed
            // this change: its unsent values are that row's), then the old
            // version.
            let mut prior = None;
            for key in [&new_key, &old_key].into_iter().flatten() {
                if let Some(i) = held.iter().position(|h| h.key == *key) {
                    let removed = held.remove(i);
                    applied.removed.push(removed.hash);
                    prior.get_or_insert(removed);
                    applied.changed = true;
                }
            }
            let Some(new) = new else {
                continue;
            };
            // An unsent value of an output column: the held row's.
            let value = |p: usize| -> Cell<'_> {
                match (cell(new, p), positions.outputs.iter().position(|&o| o == p)) {
                    (Cell::Unsent, Some(j)) => prior
                        .as_ref()
                        .and_then(|h| field(&h.row, j))
                        .map_or(Cell::Unsent, |f| f.map_or(Cell::Null, Cell::Text)),
                    (c, _) => c,
                }
            };
            match self.filter.decide(&positions.filter, &value) {
                Some(true) => {}
                Some(false) => continue,
                None => return Err(Lost::Undecided),
            }
            let mut values: Vec<Option<&[u8]>> = Vec::with_capacity(positions.outputs.len());
            for &p in &positions.outputs {
                values.push(match value(p) {
                    Cell::Null => None,
                    Cell::Text(t) => Some(t),
                    Cell::Unsent => return Err(Lost::Toast),
                    Cell::Missing => return Err(Lost::Unreadable),
                });
            }
            let sort = self
                .layout
                .order
                .iter()
                .map(|o| match values[o.output] {
                    None => Ok(None),
                    Some(text) => int(text).map(Some).ok_or(Lost::Unreadable),
                })
                .collect::<Result<SortValues, Lost>>()?;
            if beyond
                .as_ref()
                .is_some_and(|b| compare(&sort, b, &self.layout) == Ordering::Greater)
            {
                // Past the window: not held, as before.
                continue;
            }
            let at = match held.binary_search_by(|h| compare(&h.sort, &sort, &self.layout)) {
                Ok(_) => return Err(Lost::Unreadable),
                Err(at) => at,
            };
            let key = new_key.ok_or(Lost::Unreadable)?;
            let hash = row_hash(self.table, &key);
            held.insert(
                at,
                Held {
                    key,
                    hash,
                    sort,
                    row: data_row(&values),
                },
            );
            applied.added.push(hash);
            applied.changed = true;
        }
        if let Some(n) = self.layout.limit {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if held.len() > n {
                applied.removed.extend(held.drain(n..).map(|h| h.hash));
                *beyond = held.last().map(|h| h.sort.clone());
            }
            if beyond.is_some() && held.len() < n {
                return Err(Lost::Window);
            }
        }
        if held.len() > MAX_LIVE_ROWS {
            return Err(Lost::Size);
        }
        if applied.changed {
            let result = self.build(held);
            if result.len() > self.max_len {
                return Err(Lost::Size);
            }
            *self.current.write().unwrap_or_else(|p| p.into_inner()) = result;
        }
        Ok(applied)
    }

    /// Whether the new row of `batch`'s change `i` might satisfy this
    /// entry's `WHERE` (a change to a row it holds reaches it by the row's
    /// name instead). True when the row cannot be read.
    pub fn may_take(&self, batch: &NewRows, i: usize) -> bool {
        let Some(new) = batch
            .changes
            .get(i)
            .and_then(|c| c.new)
            .and_then(|n| batch.rows.get(n as usize))
        else {
            return false;
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match &state.positions {
            Some((columns, _)) => !Arc::ptr_eq(columns, &batch.columns),
            None => true,
        };
        if fresh {
            match self.positions(&batch.columns) {
                Some(p) => state.positions = Some((Arc::clone(&batch.columns), p)),
                None => return true,
            }
        }
        let Some((_, positions)) = &state.positions else {
            return true;
        };
        self.filter.decide(&positions.filter, &|p| cell(new, p)) != Some(false)
    }

    /// Whether applying `batch` might change this entry: a change names a
    /// row it holds, or a new row might satisfy its `WHERE` (or cannot be
    /// read). An entry whose capture may have missed a commit that was not
    /// yet visible is dropped only when the commit touches it: any later
    /// change to the same rows was applied in place, and a row the commit
    /// left outside the `WHERE` before and after does not matter.
    pub fn touched_by(&self, batch: &NewRows) -> bool {
        if self.dead() {
            return false;
        }
        let Some(positions) = self.positions(&batch.columns) else {
            return true;
        };
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let held = |key: &[KeyPart]| state.held.iter().any(|h| h.key == key);
        batch.changes.iter().any(|change| {
            let new = change.new.and_then(|i| batch.rows.get(i as usize));
            for tuple in change.old.iter().chain(new) {
                match self.key_of(tuple, &positions) {
                    Ok(key) if !held(&key) => {}
                    _ => return true,
                }
            }
            new.is_some_and(|new| {
                self.filter.decide(&positions.filter, &|p| cell(new, p)) != Some(false)
            })
        })
    }

    fn positions(&self, columns: &[(String, Oid)]) -> Option<Positions> {
        let outputs = self
            .layout
            .outputs
            .iter()
            .map(|(name, ty)| columns.iter().position(|(n, t)| n == name && t == ty))
            .collect::<Option<Vec<_>>>()?;
        Some(Positions {
            outputs,
            filter: self.filter.positions(columns),
        })
    }

    /// The key of the row `tuple` (a new row, or an old key).
    fn key_of(&self, tuple: &Tuple, positions: &Positions) -> Result<Vec<KeyPart>, Lost> {
        self.key
            .iter()
            .map(|&(p, kind)| match tuple.columns.get(positions.outputs[p]) {
                Some(ColumnValue::Text(t)) => stream_value(kind, t).ok_or(Lost::Unreadable),
                _ => Err(Lost::Unreadable),
            })
            .collect()
    }

    fn build(&self, held: &[Held]) -> CapturedResult {
        let len: usize = held.iter().map(|h| h.row.len()).sum();
        let mut rows = BytesMut::with_capacity(len);
        for h in held {
            rows.put_slice(&h.row);
        }
        let complete = select_complete(held.len());
        CapturedResult::with_statement(
            &self.statement,
            (!self.description.is_empty()).then_some(&self.description[..]),
            &rows,
            held.len() as u64,
            &complete,
        )
    }
}

/// Order of two rows' sort values under `layout`'s `ORDER BY`.
fn compare(a: &[Option<i64>], b: &[Option<i64>], layout: &Layout) -> Ordering {
    compare_by(
        layout.order.iter().map(|k| (k.descending, k.nulls_first)),
        a,
        b,
    )
}

/// Order of two rows' integer sort values (`None`: NULL) under `ORDER BY`
/// items given as `(descending, nulls_first)`.
pub(super) fn compare_by(
    order: impl Iterator<Item = (bool, bool)>,
    a: &[Option<i64>],
    b: &[Option<i64>],
) -> Ordering {
    for ((descending, nulls_first), (x, y)) in order.zip(a.iter().zip(b)) {
        let o = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) if nulls_first => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) if nulls_first => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) if descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// The `CommandComplete` of a `SELECT` of `rows` rows.
pub(super) fn select_complete(rows: usize) -> BytesMut {
    let tag = format!("SELECT {rows}");
    let mut complete = BytesMut::with_capacity(tag.len() + 6);
    complete.put_u8(b'C');
    complete.put_u32((tag.len() + 5) as u32);
    complete.put_slice(tag.as_bytes());
    complete.put_u8(0);
    complete
}

/// An integer's text output.
fn int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Field `j` of a `DataRow` message (`None` inside for NULL).
fn field(row: &[u8], j: usize) -> Option<Option<&[u8]>> {
    let fields = response::fields_at(row, &[j])?;
    fields.into_iter().next()?.into_iter().next()
}

/// A `DataRow` of text values (`None` is NULL).
pub(super) fn data_row(values: &[Option<&[u8]>]) -> Bytes {
    let len: usize = 6 + values
        .iter()
        .map(|v| 4 + v.map_or(0, <[u8]>::len))
        .sum::<usize>();
    let mut out = BytesMut::with_capacity(len + 1);
    out.put_u8(b'D');
    out.put_u32(len as u32);
    out.put_u16(values.len() as u16);
    for v in values {
        match v {
            None => out.put_i32(-1),
            Some(v) => {
                out.put_u32(v.len() as u32);
                out.put_slice(v);
            }
        }
    }
    out.freeze()
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
