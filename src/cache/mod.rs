//! The result cache: entries keyed by request and session-settings class,
//! table generations for invalidation, admission, per-role grants and
//! single-flight population. No I/O and no tokio: the proxy's sessions call
//! in with bytes and values (ADR 011).
//!
//! - **Entries** ([`Entry`]) hold a captured reply ([`CapturedResult`]) and
//!   the generations of the tables it read when its capture began. A bounded
//!   `quick_cache` map (weight = bytes held, capacity = `cache.max_memory`,
//!   CLOCK-PRO-like eviction of cold entries) owns them.
//! - **Generations**: a write that commits through the proxy bumps the
//!   generation of each table it wrote (or the global one when the target is
//!   unknown). An entry whose recorded generations differ is stale: it is
//!   never served and is removed on sight or by [`ResultCache::sweep`].
//!   Recording generations when a capture *begins* closes the race with a
//!   write committing while the capture runs.
//! - **Admission** counts sightings of a shape (`cache.admit_after`).
//! - **Grants** remember that the origin executed a shape for a role.
//! - **Single flight**: one capture per key at a time.
//! - **Fence** (when the change stream runs, [`Limits::fenced`]): a captured
//!   reply shows the origin as of its own snapshot, which may be ahead of the
//!   change stream's applied position. It is stored *pending* and served
//!   only once the applier has passed a WAL position read after the capture
//!   finished ([`ResultCache::take_pending`], [`Entry::settle`]), so every
//!   served result shows the origin as of the applied position: readers
//!   never mix two points in time. Nothing is served while the stream is
//!   down or too far behind ([`ResultCache::set_serving`]).

pub mod joined;
pub mod live;
pub mod response;

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::{Equivalent, Lifecycle, Weighter};

use crate::catalog::Oid;
use crate::cdc::apply::{Change, NewRows};
use crate::cdc::pgoutput::ColumnValue;
use crate::sql::filter::Filter;
use crate::sql::layout::Layout;
pub use crate::sql::rowkey::KeyPart;
pub use joined::{JoinPlan, Joined};
pub use live::Live;
pub use response::{CapturedResult, Rejected};

/// Table generations live in this many slots (a table's slot is its OID
/// modulo the count). Two tables sharing a slot only invalidate each other
/// more often; never less.
const GENERATION_SLOTS: usize = 4096;

/// Row generations (by [`row_hash`], [`value_hash`] or [`any_value_hash`]
/// modulo the count): entries that read rows by key or column value depend
/// on those rows' slots, not on their table's. A change bumps a few slots
/// (its key, each integer column's old and new value), so the count keeps
/// an unrelated entry's chance of sharing one small (2 MiB of counters).
const ROW_SLOTS: usize = 1 << 18;

/// The generation array: every change to a table (`GENERATION_SLOTS`), then
/// changes to a table that name no row (`GENERATION_SLOTS`), then rows.
const COARSE_BASE: usize = GENERATION_SLOTS;
const ROW_BASE: usize = 2 * GENERATION_SLOTS;

/// Bytes counted per entry beyond its key and result (map slot, `Arc`,
/// allocator overhead), so that many tiny entries still respect the bound.
/// Measured: 118,609 one-row entries in a 32 MiB cache grew the process by
/// 36.4 MB in all (docs/benchmarks.md).
pub const ENTRY_OVERHEAD: u64 = 224;

/// The hash naming one row of `table` by its primary key values (in column
/// order, [`KeyPart`]s): the change stream and the entries reading one row
/// by key must agree on it. FNV-1a, stable across runs.
pub fn row_hash(table: Oid, key: &[KeyPart]) -> u64 {
    key.iter()
        .fold(fnv_eat(FNV_BASIS, &table.0.to_le_bytes()), eat_part)
}

/// The hash naming the rows of `table` whose column `column` is `value`:
/// the change stream names each key-like column's old and new value,
/// entries reading rows by that column's value depend on it.
pub fn value_hash(table: Oid, column: &str, value: &KeyPart) -> u64 {
    eat_part(
        fnv(&[b"v", &table.0.to_le_bytes(), column.as_bytes(), &[0]]),
        value,
    )
}

fn eat_part(h: u64, part: &KeyPart) -> u64 {
    match part {
        KeyPart::Int(v) => fnv_eat(h, &v.to_le_bytes()),
        KeyPart::Bytes(b) => {
            let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
            fnv_eat(fnv_eat(h, &len.to_le_bytes()), b)
        }
    }
}

/// The hash naming every row of `table` whose `column` had a value the
/// stream did not send (an old value outside the replica identity).
pub fn any_value_hash(table: Oid, column: &str) -> u64 {
    fnv(&[b"a", &table.0.to_le_bytes(), column.as_bytes(), &[0]])
}

fn fnv(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_BASIS, |h, part| fnv_eat(h, part))
}

/// FNV-1a: the offset basis, and `h` followed by `bytes`.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_eat(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What a captured entry depends on, per table it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depend {
    /// Every change to the table.
    Table(Oid),
    /// The row of the table with this [`row_hash`], and changes to the
    /// table that name no row.
    Row(Oid, u64),
    /// Rows with this [`value_hash`] and the column's [`any_value_hash`],
    /// and changes to the table that name no row.
    Value(Oid, u64, u64),
    /// Only changes to the table that name no row (no row of it can be
    /// read).
    Coarse(Oid),
    /// Rows with this [`value_hash`], and changes to the table that name no
    /// row; not the column's unknown old values: the rows the entry read
    /// are [`Depend::Row`]s beside it ([`ResultCache::narrow_members`]).
    Exact(Oid, u64),
}

/// A cache key: the request in a canonical byte form (see the session layer)
/// prefixed with the session-settings class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(Arc<[u8]>);

impl Key {
    pub fn new(bytes: &[u8]) -> Key {
        Key(Arc::from(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_ref().hash(state);
    }
}

/// A borrowed key for lookups without allocating.
#[derive(Debug, Hash)]
pub struct KeyRef<'a>(pub &'a [u8]);

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.as_bytes()
    }
}

/// The generations an entry was captured under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependencies {
    global: u64,
    tables: Box<[(usize, u64)]>,
}

/// `ready_at` of an entry waiting for its fence position.
const PENDING: u64 = u64::MAX;

/// One cached result.
#[derive(Debug)]
pub struct Entry {
    /// Fingerprint of the query shape (for grants).
    pub shape: u64,
    /// The reply as captured; a live entry's reply as of now is
    /// [`Entry::result`].
    pub result: CapturedResult,
    deps: Dependencies,
    weight: u64,
    /// The applied position (LSN) from which the entry may be served;
    /// [`PENDING`] until its fence position is known.
    ready_at: AtomicU64,
    /// The filter the change stream tests new rows against for this entry
    /// (registered by [`ResultCache::narrow_filter`]; it lives as long as
    /// the entry does).
    filter: Option<Arc<Filter>>,
    /// Kept up to date in place by the change stream: its reply is the
    /// kept one's, not `result`.
    kept: Option<Kept>,
}

/// What keeps an entry up to date in place.
#[derive(Debug)]
enum Kept {
    /// A single-table result (ADR 017).
    Live(Arc<Live>),
    /// A join (ADR 018).
    Joined(Arc<Joined>),
}

/// An entry's reply as of now.
pub enum ResultRef<'a> {
    Captured(&'a CapturedResult),
    Live(std::sync::RwLockReadGuard<'a, CapturedResult>),
}

impl std::ops::Deref for ResultRef<'_> {
    type Target = CapturedResult;

    fn deref(&self) -> &CapturedResult {
        match self {
            ResultRef::Captured(r) => r,
            ResultRef::Live(r) => r,
        }
    }
}

impl Entry {
    pub fn new(shape: u64, result: CapturedResult, deps: Dependencies, key_len: usize) -> Entry {
        let weight = ENTRY_OVERHEAD + key_len as u64 + result.len() as u64;
        Entry {
            shape,
            result,
            deps,
            weight,
            ready_at: AtomicU64::new(0),
            filter: None,
            kept: None,
        }
    }

    /// The reply to serve.
    pub fn result(&self) -> ResultRef<'_> {
        match &self.kept {
            Some(Kept::Live(live)) => ResultRef::Live(live.current()),
            Some(Kept::Joined(joined)) => ResultRef::Live(joined.current()),
            None => ResultRef::Captured(&self.result),
        }
    }

    /// Whether the change stream keeps this entry up to date in place.
    pub fn is_live(&self) -> bool {
        self.kept.is_some()
    }

    /// Bytes this entry counts against `cache.max_memory`.
    pub fn weight(&self) -> u64 {
        self.weight
    }

    /// The entry may be served once the applier has passed `lsn`, a WAL
    /// position read from the origin after the entry's capture finished.
    pub fn settle(&self, lsn: u64) {
        self.ready_at.store(lsn, Ordering::Release);
    }

    fn pending(&self) -> bool {
        self.ready_at.load(Ordering::Acquire) == PENDING
    }
}

#[derive(Clone)]
struct EntryWeight;

impl Weighter<Key, Arc<Entry>> for EntryWeight {
    fn weight(&self, _key: &Key, val: &Arc<Entry>) -> u64 {
        val.weight
    }
}

/// Counters the cache keeps itself (exported as metrics by the caller).
#[derive(Debug, Default)]
pub struct Counters {
    pub evictions: AtomicU64,
    /// Rows held by live entries.
    pub rows: AtomicI64,
}

#[derive(Clone)]
struct Evictions(Arc<Counters>);

impl Lifecycle<Key, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Key, val: Arc<Entry>) {
        self.0.evictions.fetch_add(1, Ordering::Relaxed);
        self.0
            .rows
            .fetch_sub(val.result.row_count as i64, Ordering::Relaxed);
    }
}

struct Generations {
    global: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Generations {
    fn new() -> Generations {
        Generations {
            global: AtomicU64::new(0),
            slots: (0..ROW_BASE + ROW_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn slot(table: Oid) -> usize {
        table.0 as usize % GENERATION_SLOTS
    }

    fn row_slot(hash: u64) -> usize {
        ROW_BASE + (hash % ROW_SLOTS as u64) as usize
    }

    fn depend(&self, slots: impl Iterator<Item = usize>) -> Dependencies {
        let mut slots: Vec<(usize, u64)> = slots
            .map(|s| (s, self.slots[s].load(Ordering::Acquire)))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        Dependencies {
            global: self.global.load(Ordering::Acquire),
            tables: slots.into_boxed_slice(),
        }
    }

    /// Depends on every change to `tables`.
    fn current(&self, tables: &[Oid]) -> Dependencies {
        self.depend(tables.iter().map(|&t| Self::slot(t)))
    }

    /// Depends on what `deps` name.
    fn current_deps(&self, deps: &[Depend]) -> Dependencies {
        self.depend(deps.iter().flat_map(Self::slots_of))
    }

    /// The generation slots `d` reads.
    fn slots_of(d: &Depend) -> impl Iterator<Item = usize> {
        let (a, b, c) = match *d {
            Depend::Table(t) => (Self::slot(t), None, None),
            Depend::Row(t, row) | Depend::Exact(t, row) => {
                (COARSE_BASE + Self::slot(t), Some(Self::row_slot(row)), None)
            }
            Depend::Value(t, value, any) => (
                COARSE_BASE + Self::slot(t),
                Some(Self::row_slot(value)),
                Some(Self::row_slot(any)),
            ),
            Depend::Coarse(t) => (COARSE_BASE + Self::slot(t), None, None),
        };
        [Some(a), b, c].into_iter().flatten()
    }

    fn bump(&self, slot: usize) {
        self.slots[slot].fetch_add(1, Ordering::AcqRel);
    }

    fn fresh(&self, deps: &Dependencies) -> bool {
        deps.global == self.global.load(Ordering::Acquire)
            && deps
                .tables
                .iter()
                .all(|&(s, g)| self.slots[s].load(Ordering::Acquire) == g)
    }
}

/// Which tables a committed write touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub tables: Vec<Oid>,
    /// The target is unknown: every entry is affected.
    pub all: bool,
}

impl Written {
    /// Every table: the target is unknown.
    pub fn everything() -> Written {
        Written {
            tables: Vec::new(),
            all: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.tables.is_empty()
    }

    pub fn add(&mut self, other: &Written) {
        self.all |= other.all;
        if !self.all {
            for t in &other.tables {
                if !self.tables.contains(t) {
                    self.tables.push(*t);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.all = false;
        self.tables.clear();
    }
}

/// What the cache is configured to hold.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_memory: u64,
    pub max_result_size: u64,
    pub admit_after: u32,
    pub role_ttl: Duration,
    /// A change stream maintains the cache: entries wait for their fence
    /// and nothing is served unless [`ResultCache::set_serving`] allows it.
    pub fenced: bool,
}

/// The shared result cache.
pub struct ResultCache {
    entries: Cache<Key, Arc<Entry>, EntryWeight, RandomState, Evictions>,
    generations: Generations,
    counters: Arc<Counters>,
    sightings: Cache<u64, u32>,
    /// Hashes of keys whose entries a change dropped lately: a join
    /// captured again is kept in place (ADR 018).
    dropped: Cache<u64, ()>,
    grants: Cache<(Arc<str>, u64), Instant>,
    populating: Mutex<HashSet<Key>>,
    statements: Cache<Key, u64>,
    next_statement: AtomicU64,
    classes: Mutex<HashMap<Arc<str>, u32>>,
    /// Set by invalidations, cleared by [`ResultCache::sweep`].
    stale: AtomicU64,
    /// Seconds since `started`, advanced by [`ResultCache::tick`]: a clock
    /// the hit path reads without a system call.
    coarse: AtomicU64,
    started: Instant,
    limits: Limits,
    /// Entries may be served (always, unless fenced).
    serving: AtomicBool,
    /// The change stream's applied position (LSN).
    applied: AtomicU64,
    /// Times the change stream (re)started.
    starts: AtomicU64,
    /// Entries stored and tickets issued since the last [`Self::take_waiting`].
    pending: Mutex<Waiting>,
    /// Filters of entries by table ([`Self::narrow_filter`]).
    filters: Mutex<HashMap<Oid, Vec<Weak<Filter>>>>,
    next_filter: AtomicU64,
    /// Live entries by table ([`Self::narrow_live`]).
    lives: Mutex<HashMap<Oid, TableLives>>,
    /// Joined entries by table ([`Self::narrow_joined`]).
    joins: Mutex<HashMap<Oid, TableJoins>>,
    /// Commits the change stream has applied ([`Self::next_commit`]).
    commits: AtomicU64,
}

/// Most live filters per table; beyond, new entries of the table depend on
/// every change to it (each change is tested against every filter).
pub const MAX_FILTERS_PER_TABLE: usize = 4096;

/// A session's promise to read nothing from the cache that is older than
/// its own last write: settled with a WAL position read after that write
/// committed; passed once the applier is there.
#[derive(Debug)]
pub struct Ticket {
    lsn: AtomicU64,
    /// The change stream's start count when the ticket was issued.
    stream: u64,
}

/// What waits for a fence position: entries captured and tickets issued
/// before [`ResultCache::take_waiting`] was called.
#[derive(Debug, Default)]
pub struct Waiting {
    entries: Vec<Arc<Entry>>,
    tickets: Vec<Arc<Ticket>>,
}

impl Waiting {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.tickets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.tickets.len()
    }

    /// Everything waiting becomes servable (passed) once the applier has
    /// passed `lsn`, a WAL position read from the origin after the call to
    /// [`ResultCache::take_waiting`] that returned this.
    pub fn settle(self, lsn: u64) {
        for e in self.entries {
            e.settle(lsn);
        }
        for t in self.tickets {
            t.lsn.store(lsn, Ordering::Release);
        }
    }
}

impl ResultCache {
    pub fn new(limits: Limits) -> ResultCache {
        let counters = Arc::new(Counters::default());
        // Room for small entries; the weight bound is what limits memory.
        let estimated = usize::try_from(limits.max_memory / 1024)
            .unwrap_or(usize::MAX)
            .clamp(1024, 1 << 22);
        let entries = Cache::with(
            estimated,
            limits.max_memory,
            EntryWeight,
            RandomState::new(),
            Evictions(Arc::clone(&counters)),
        );
        ResultCache {
            entries,
            generations: Generations::new(),
            counters,
            sightings: Cache::new(65_536),
            dropped: Cache::new(65_536),
            grants: Cache::new(65_536),
            populating: Mutex::new(HashSet::new()),
            statements: Cache::new(65_536),
            next_statement: AtomicU64::new(1),
            classes: Mutex::new(HashMap::new()),
            stale: AtomicU64::new(0),
            coarse: AtomicU64::new(0),
            started: Instant::now(),
            serving: AtomicBool::new(!limits.fenced),
            applied: AtomicU64::new(0),
            starts: AtomicU64::new(0),
            pending: Mutex::new(Waiting::default()),
            filters: Mutex::new(HashMap::new()),
            next_filter: AtomicU64::new(1),
            lives: Mutex::new(HashMap::new()),
            joins: Mutex::new(HashMap::new()),
            commits: AtomicU64::new(0),
            limits,
        }
    }

    /// Allow or stop serving entries (the change stream is up and caught
    /// up, or not). Without a change stream, serving is always on.
    pub fn set_serving(&self, on: bool) {
        self.serving
            .store(on || !self.limits.fenced, Ordering::Release);
    }

    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The change stream applied everything up to `lsn`: every commit
    /// before it has been through [`Self::invalidate`]. Never moves back.
    pub fn advance(&self, lsn: u64) {
        self.applied.fetch_max(lsn, Ordering::AcqRel);
    }

    /// The change stream's applied position.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Entries stored and tickets issued since the last call, to be
    /// settled with a WAL position read after this call.
    pub fn take_waiting(&self) -> Waiting {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Put back what [`Self::take_waiting`] returned, unsettled (the
    /// position could not be read).
    pub fn requeue(&self, waiting: Waiting) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.entries.extend(waiting.entries);
        pending.tickets.extend(waiting.tickets);
    }

    /// Whether the applier has passed `ticket`'s position. A ticket of an
    /// earlier stream has passed: every entry of that time is gone.
    pub fn passed(&self, ticket: &Ticket) -> bool {
        ticket.stream != self.starts.load(Ordering::Acquire)
            || ticket.lsn.load(Ordering::Acquire) <= self.applied()
    }

    /// The change stream (re)started at `lsn`: forget every entry, and take
    /// `lsn` as the applied position even if it is behind the last one (the
    /// origin may be another server now, whose WAL is behind).
    pub fn restart(&self, lsn: u64) {
        self.clear();
        self.starts.fetch_add(1, Ordering::AcqRel);
        self.applied.store(lsn, Ordering::Release);
    }

    /// Whether anything waits for a fence position.
    pub fn has_waiting(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// A ticket for a session that just committed a write: it reads from
    /// the cache again once the ticket has [`passed`](Self::passed).
    pub fn ticket(&self) -> Arc<Ticket> {
        let ticket = Arc::new(Ticket {
            lsn: AtomicU64::new(PENDING),
            stream: self.starts.load(Ordering::Acquire),
        });
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tickets
            .push(Arc::clone(&ticket));
        ticket
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A small number naming a session-settings class (the values of every
    /// setting that changes a result's bytes, the search_path, and so on).
    pub fn class_id(&self, class: &str) -> u32 {
        let mut classes = self.classes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&id) = classes.get(class) {
            return id;
        }
        let id = u32::try_from(classes.len()).unwrap_or(u32::MAX);
        classes.insert(Arc::from(class), id);
        id
    }

    /// A number standing for `prefix` (a prepared statement's text, types
    /// and parse settings) in keys. Never the same number for two prefixes;
    /// a prefix forgotten by the bounded map gets a new number (its old
    /// entries are then simply not found).
    pub fn statement_id(&self, prefix: &[u8]) -> u64 {
        if let Some(id) = self.statements.get(&KeyRef(prefix)) {
            return id;
        }
        let id = self.next_statement.fetch_add(1, Ordering::Relaxed);
        self.statements.insert(Key::new(prefix), id);
        id
    }

    /// A fresh entry for `key` that may be served now, if any. A stale one
    /// is removed.
    pub fn get(&self, key: KeyRef<'_>) -> Option<Arc<Entry>> {
        if !self.serving() {
            return None;
        }
        let entry = self.entries.get(&key)?;
        // Applied position first: the invalidations of every commit before
        // it are visible to the generation check below.
        if entry.ready_at.load(Ordering::Acquire) > self.applied() {
            return None;
        }
        if self.generations.fresh(&entry.deps) {
            return Some(entry);
        }
        self.dropped.insert(fnv(&[key.0]), ());
        self.remove(&key);
        None
    }

    fn remove(&self, key: &KeyRef<'_>) {
        if let Some((_, old)) = self.entries.remove(key) {
            self.counters
                .rows
                .fetch_sub(old.result.row_count as i64, Ordering::Relaxed);
        }
    }

    /// Count a sighting of a cacheable shape; whether it is now admitted.
    pub fn sighted(&self, shape: u64) -> bool {
        let seen = self.sightings.get(&shape).unwrap_or(0);
        if seen >= self.limits.admit_after {
            return true;
        }
        let seen = seen + 1;
        self.sightings.insert(shape, seen);
        seen >= self.limits.admit_after
    }

    /// Whether a change dropped the entry of `key` lately (found stale by a
    /// read or a sweep): a join captured again is kept in place (ADR 018).
    pub fn dropped_lately(&self, key: &[u8]) -> bool {
        self.dropped.get(&fnv(&[key])).is_some()
    }

    /// Claim the capture of `key` (single flight). `None` when another
    /// session is capturing it already.
    ///
    /// `deps`: what the statement reads of each table, when narrower than
    /// every change to `tables` (rows by key or column value).
    pub fn begin_capture(
        &self,
        key: &[u8],
        tables: &[Oid],
        deps: Option<&[Depend]>,
    ) -> Option<Capture> {
        if self.limits.fenced
            && self
                .entries
                .get(&KeyRef(key))
                .is_some_and(|e| e.pending() && self.generations.fresh(&e.deps))
        {
            // Captured already, waiting for its fence.
            return None;
        }
        let key = Key::new(key);
        let mut populating = self.populating.lock().unwrap_or_else(|p| p.into_inner());
        if !populating.insert(key.clone()) {
            return None;
        }
        drop(populating);
        // The tables' generations before any other (see `narrow_members`).
        let started = tables
            .iter()
            .map(|&t| {
                let s = Generations::slot(t);
                (s, self.generations.slots[s].load(Ordering::Acquire))
            })
            .collect();
        let (generations, depends) = match deps {
            Some(deps) => (self.generations.current_deps(deps), deps.to_vec()),
            None => (
                self.generations.current(tables),
                tables.iter().map(|&t| Depend::Table(t)).collect(),
            ),
        };
        // After the generations: a commit counted later bumped its slots
        // later (`next_commit`).
        let begin = self.commits.load(Ordering::Acquire);
        Some(Capture {
            key,
            deps: generations,
            depends,
            started,
            filter: None,
            begin,
            kept: None,
        })
    }

    /// Finish a capture: store `result` unless it is too large. Returns the
    /// entry's weight when stored.
    pub fn finish_capture(
        &self,
        capture: Capture,
        shape: u64,
        result: CapturedResult,
    ) -> Option<u64> {
        self.release(&capture.key);
        let mut entry = Entry::new(shape, result, capture.deps, capture.key.as_bytes().len());
        entry.filter = capture.filter;
        if let Some(Kept::Joined(joined)) = &capture.kept {
            // Its rows are held besides the reply.
            entry.weight += joined.held_bytes() as u64;
        }
        entry.kept = capture.kept;
        if entry.weight > self.limits.max_result_size {
            return None;
        }
        let weight = entry.weight;
        let rows = entry.result.row_count as i64;
        let entry = Arc::new(entry);
        if self.limits.fenced {
            entry.ready_at.store(PENDING, Ordering::Release);
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entries
                .push(Arc::clone(&entry));
        }
        self.remove(&KeyRef(capture.key.as_bytes()));
        self.counters.rows.fetch_add(rows, Ordering::Relaxed);
        self.entries.insert(capture.key, entry);
        Some(weight)
    }

    /// Give a capture up.
    pub fn abandon_capture(&self, capture: Capture) {
        self.release(&capture.key);
    }

    fn release(&self, key: &Key) {
        let mut populating = self.populating.lock().unwrap_or_else(|p| p.into_inner());
        populating.remove(key);
    }

    /// A write committed: entries reading what it wrote are stale.
    pub fn invalidate(&self, written: &Written) {
        if written.all {
            self.generations.global.fetch_add(1, Ordering::AcqRel);
        } else {
            for &t in &written.tables {
                let slot = Generations::slot(t);
                self.generations.bump(slot);
                self.generations.bump(COARSE_BASE + slot);
            }
        }
        if !written.is_empty() {
            self.stale.fetch_add(1, Ordering::Release);
        }
    }

    /// A write committed that changed exactly these rows (`(table,
    /// row_hash)`, old and new keys): entries reading one of them by key,
    /// and entries reading their tables otherwise, are stale.
    pub fn invalidate_rows(&self, rows: &[(Oid, u64)]) {
        // Table slots before row slots (see [`Self::narrow`]).
        let mut tables: Vec<usize> = Vec::new();
        for &(t, _) in rows {
            let slot = Generations::slot(t);
            if !tables.contains(&slot) {
                tables.push(slot);
            }
        }
        for slot in tables {
            self.generations.bump(slot);
        }
        for &(_, row) in rows {
            self.generations.bump(Generations::row_slot(row));
        }
        if !rows.is_empty() {
            self.stale.fetch_add(1, Ordering::Release);
        }
    }

    /// Drop stale entries (their memory is freed now rather than when they
    /// are next looked up or evicted). Cheap when nothing was invalidated.
    pub fn sweep(&self) {
        if self.stale.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        let counters = &self.counters;
        self.entries.retain(|key, entry| {
            let keep = self.generations.fresh(&entry.deps);
            if !keep {
                self.dropped.insert(fnv(&[key.as_bytes()]), ());
                counters
                    .rows
                    .fetch_sub(entry.result.row_count as i64, Ordering::Relaxed);
            }
            keep
        });
    }

    /// Advance the coarse clock (call about once a second).
    pub fn tick(&self) {
        let secs = self.started.elapsed().as_secs();
        self.coarse.fetch_max(secs, Ordering::AcqRel);
    }

    /// Seconds since the cache was made, as of the last [`Self::tick`].
    pub fn coarse_now(&self) -> u64 {
        self.coarse.load(Ordering::Acquire)
    }

    /// [`Self::granted`] as a coarse-clock deadline (rounded down).
    pub fn granted_until(&self, role: &Arc<str>, shape: u64) -> Option<u64> {
        let until = self.granted(role, shape)?;
        let left = until.saturating_duration_since(Instant::now()).as_secs();
        Some(self.coarse_now() + left)
    }

    /// The origin executed `shape` for `role` successfully just now.
    pub fn grant(&self, role: &Arc<str>, shape: u64) {
        self.grants
            .insert((Arc::clone(role), shape), Instant::now());
    }

    /// Whether `role` may be served results of `shape`: the origin executed
    /// it for that role within `cache.role_ttl`. Returns when the grant
    /// expires.
    pub fn granted(&self, role: &Arc<str>, shape: u64) -> Option<Instant> {
        let at = self.grants.get(&GrantRef(role, shape))?;
        let until = at + self.limits.role_ttl;
        (Instant::now() < until).then_some(until)
    }

    /// Forget every grant (after a catalog change through the proxy).
    pub fn clear_grants(&self) {
        self.grants.clear();
    }

    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held by entries (their weights).
    pub fn memory(&self) -> u64 {
        self.entries.weight()
    }

    /// Forget every entry, and every capture under way (a change stream
    /// (re)started: what happened before it is not known).
    pub fn clear(&self) {
        self.generations.global.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
        let waiting = self.take_waiting();
        // Tickets stay valid: they wait for a position, not for entries.
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.tickets.extend(waiting.tickets);
        self.counters.rows.store(0, Ordering::Relaxed);
    }
}

struct GrantRef<'a>(&'a Arc<str>, u64);

impl Hash for GrantRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Same as the tuple `(Arc<str>, u64)`.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<(Arc<str>, u64)> for GrantRef<'_> {
    fn equivalent(&self, key: &(Arc<str>, u64)) -> bool {
        *self.0 == key.0 && self.1 == key.1
    }
}

/// A capture in progress: the key it fills and the generations when it began.
#[derive(Debug)]
pub struct Capture {
    key: Key,
    deps: Dependencies,
    /// What the generations stand for.
    depends: Vec<Depend>,
    /// Each table's generation slot as it was before the others were read.
    started: Vec<(usize, u64)>,
    filter: Option<Arc<Filter>>,
    /// The commit count after the generations were read.
    begin: u64,
    kept: Option<Kept>,
}

impl Capture {
    pub fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }

    /// The live entry it was made (tests).
    #[cfg(test)]
    fn live(&self) -> Option<Arc<Live>> {
        match &self.kept {
            Some(Kept::Live(live)) => Some(Arc::clone(live)),
            _ => None,
        }
    }

    /// Whether `table` is the one dependency on every change to a table
    /// that reads its generation slot (a self-join's two instances, or two
    /// tables sharing a slot, cannot be narrowed one at a time).
    fn sole_table_dependency(&self, table: Oid) -> bool {
        let slot = Generations::slot(table);
        let sharing = self
            .depends
            .iter()
            .filter(|d| matches!(d, Depend::Table(t) if Generations::slot(*t) == slot))
            .count();
        sharing == 1 && self.depends.contains(&Depend::Table(table))
    }

    /// `table`'s generation when the capture began, when `table` is its
    /// sole dependency on every change to the table's slot
    /// ([`Self::sole_table_dependency`]).
    fn started_alone(&self, table: Oid) -> Option<u64> {
        let slot = Generations::slot(table);
        let &(_, started) = self.started.iter().find(|&&(s, _)| s == slot)?;
        self.sole_table_dependency(table).then_some(started)
    }

    /// Stop reading generation slot `slot`; read the `narrower` slots at
    /// the generations given, except those read already (a generation
    /// recorded when the capture began is older, so it is kept).
    fn replace_slot(&mut self, slot: usize, narrower: Vec<(usize, u64)>) {
        let mut slots: Vec<(usize, u64)> = self
            .deps
            .tables
            .iter()
            .copied()
            .filter(|&(s, _)| s != slot)
            .collect();
        for (s, g) in narrower {
            if !slots.iter().any(|&(have, _)| have == s) {
                slots.push((s, g));
            }
        }
        slots.sort_unstable();
        self.deps.tables = slots.into_boxed_slice();
    }
}

impl ResultCache {
    /// Narrow a capture's dependency on every change to `table` to the row
    /// with [`row_hash`] `row` (`None`: no row of `table` can be read),
    /// learned after the capture began. Done only when no change to `table`
    /// was applied since the capture began (its generation is the one
    /// recorded then): a change applied from now on bumps that row's
    /// generation, read now. Returns whether it narrowed.
    ///
    /// The caller must know that the row the capture read is that row as
    /// long as the entry is not invalidated otherwise (it read the key from
    /// a row the entry depends on by key, after the capture).
    pub fn narrow(&self, capture: &mut Capture, table: Oid, row: Option<u64>) -> bool {
        let slot = Generations::slot(table);
        if !capture.sole_table_dependency(table) {
            return false;
        }
        // The narrower generations first, then the table's: a change is
        // applied table slot first (`invalidate`, `invalidate_rows`), so a
        // change whose row bump is seen here is seen on the table too.
        let narrower: Vec<(usize, u64)> =
            [Some(COARSE_BASE + slot), row.map(Generations::row_slot)]
                .into_iter()
                .flatten()
                .map(|s| (s, self.generations.slots[s].load(Ordering::Acquire)))
                .collect();
        let recorded = capture.deps.tables.iter().find(|&&(s, _)| s == slot);
        let fresh = recorded
            .is_some_and(|&(_, g)| g == self.generations.slots[slot].load(Ordering::Acquire));
        if !fresh {
            return false;
        }
        capture.replace_slot(slot, narrower);
        for d in &mut capture.depends {
            if matches!(d, Depend::Table(t) if *t == table) {
                *d = match row {
                    Some(row) => Depend::Row(table, row),
                    None => Depend::Coarse(table),
                };
            }
        }
        true
    }

    /// A new filter id: names a generation slot of its own (as a row hash
    /// does; a shared slot only costs a spurious invalidation).
    pub fn filter_id(&self, table: Oid) -> u64 {
        let n = self.next_filter.fetch_add(1, Ordering::Relaxed);
        let mut h = std::hash::DefaultHasher::new();
        (b"filter", table.0, n).hash(&mut h);
        h.finish()
    }

    /// The live filters of `table` (dropped entries' filters are pruned).
    pub fn filters_of(&self, table: Oid) -> Vec<Arc<Filter>> {
        let mut filters = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = filters.get_mut(&table) else {
            return Vec::new();
        };
        let mut live = Vec::with_capacity(list.len());
        list.retain(|w| match w.upgrade() {
            Some(f) => {
                live.push(f);
                true
            }
            None => false,
        });
        if list.is_empty() {
            filters.remove(&table);
        }
        live
    }

    /// Bump the generation slots of these filters (their tables' slots
    /// were bumped by the same commit already).
    pub fn invalidate_filters(&self, ids: &[u64]) {
        for &id in ids {
            self.generations.bump(Generations::row_slot(id));
        }
        if !ids.is_empty() {
            self.stale.fetch_add(1, Ordering::Release);
        }
    }

    /// Narrow a capture's dependency on every change to `filter.table` to
    /// the rows of its result (`rows`: their [`row_hash`]es), the filter
    /// (bumped by the change stream when a new row might satisfy it) and
    /// changes that name no row. Sound when every row that could be in the
    /// result and changed is one of `rows` or has a new version (the
    /// caller's statement reads one table, outputs its key, and `filter`
    /// is its whole `WHERE`).
    ///
    /// The filter is registered first, then the rows' and the filter's
    /// generations are read, then the table's is checked unchanged since
    /// the capture began: a commit applied later bumps the table's slot
    /// before it tests the registered filters. Returns whether it narrowed.
    pub fn narrow_filter(&self, capture: &mut Capture, filter: Filter, rows: &[u64]) -> bool {
        let table = filter.table;
        let slot = Generations::slot(table);
        let Some(started) = capture.started_alone(table) else {
            return false;
        };
        let filter = Arc::new(filter);
        if !register(&self.filters, table, &filter) {
            return false;
        }
        let narrower: Vec<(usize, u64)> = [COARSE_BASE + slot, Generations::row_slot(filter.id)]
            .into_iter()
            .chain(rows.iter().map(|&r| Generations::row_slot(r)))
            .map(|s| (s, self.generations.slots[s].load(Ordering::Acquire)))
            .collect();
        if self.generations.slots[slot].load(Ordering::Acquire) != started {
            return false;
        }
        capture.replace_slot(slot, narrower);
        capture.depends.retain(|d| *d != Depend::Table(table));
        capture.depends.push(Depend::Coarse(table));
        capture.depends.push(Depend::Row(table, filter.id));
        capture
            .depends
            .extend(rows.iter().map(|&r| Depend::Row(table, r)));
        capture.filter = Some(filter);
        true
    }

    /// Count a commit of the change stream, before its invalidations and
    /// in-place changes; returns its sequence number. A capture that read
    /// the count at or after it may have missed the commit if the commit
    /// was not yet visible to others (the stream then drops the live entries
    /// it touches whose capture began at or after it).
    pub fn next_commit(&self) -> u64 {
        self.commits.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Make a capture's entry live (ADR 017): kept up to date in place by
    /// the change stream, dropped only by changes that name no row, by
    /// DDL, or when a change cannot be followed. `filter` is the
    /// statement's whole `WHERE`, `layout` its outputs and order, `key`
    /// where its table's primary key is in the output, `result` the
    /// captured reply (text format, UTF-8). Done as [`Self::narrow_filter`]
    /// (registered, then the table's slot checked unchanged since the
    /// capture began: every commit applied later finds it registered).
    /// Returns whether it did.
    pub fn narrow_live(
        &self,
        capture: &mut Capture,
        filter: Filter,
        layout: Layout,
        key: &[(usize, Oid)],
        result: &CapturedResult,
    ) -> bool {
        let table = filter.table;
        let slot = Generations::slot(table);
        let Some(started) = capture.started_alone(table) else {
            return false;
        };
        let max_len = usize::try_from(self.limits.max_result_size)
            .unwrap_or(usize::MAX)
            .min(
                result
                    .len()
                    .saturating_mul(2)
                    .max(result.len() + (64 << 10)),
            );
        let Some(live) = Live::new(filter, layout, key, result, capture.begin, max_len) else {
            return false;
        };
        let live = Arc::new(live);
        if !self.register_live(&live) {
            return false;
        }
        let narrower: Vec<(usize, u64)> = [COARSE_BASE + slot, Generations::row_slot(live.id)]
            .into_iter()
            .map(|s| (s, self.generations.slots[s].load(Ordering::Acquire)))
            .collect();
        if self.generations.slots[slot].load(Ordering::Acquire) != started {
            live.kill();
            return false;
        }
        capture.replace_slot(slot, narrower);
        capture.depends.retain(|d| *d != Depend::Table(table));
        capture.depends.push(Depend::Coarse(table));
        capture.depends.push(Depend::Row(table, live.id));
        capture.kept = Some(Kept::Live(live));
        true
    }

    /// Register a live entry: under its table, under its anchor's value
    /// and the rows it holds (or with the entries every change may
    /// concern). Whether it was (at most [`MAX_FILTERS_PER_TABLE`] per
    /// table).
    fn register_live(&self, live: &Arc<Live>) -> bool {
        let mut lives = self.lives.lock().unwrap_or_else(|p| p.into_inner());
        let t = lives.entry(live.table).or_default();
        let scanned = live.anchor.is_none() && live.buckets.is_none();
        if scanned && t.scan.len() >= MAX_FILTERS_PER_TABLE {
            t.scan.retain(|w| w.upgrade().is_some_and(|l| !l.dead()));
            if t.scan.len() >= MAX_FILTERS_PER_TABLE {
                return false;
            }
        }
        if t.all.len() >= MAX_LIVES_PER_TABLE {
            // Full: look for dropped entries once every so many refusals
            // (a pass over the index per miss would cost every miss).
            t.refused += 1;
            if t.refused % PRUNE_EVERY == 1 {
                t.prune();
            }
            if t.all.len() >= MAX_LIVES_PER_TABLE {
                return false;
            }
        }
        t.newest = t.newest.max(live.begin);
        let weak = Arc::downgrade(live);
        t.all.push(weak.clone());
        match (live.anchor, &live.buckets) {
            (Some(value), _) => t.by_name.entry(value).or_default().push(weak.clone()),
            (None, Some((column, buckets))) => {
                if !t.bucketed.contains(column) {
                    t.bucketed.push(column.clone());
                }
                for &b in buckets {
                    t.by_name.entry(b).or_default().push(weak.clone());
                }
            }
            (None, None) => t.scan.push(weak.clone()),
        }
        for row in live.names() {
            t.by_name.entry(row).or_default().push(weak.clone());
        }
        true
    }

    /// The live entries of `table` whose capture began at or after commit
    /// `seq` ([`Self::next_commit`]).
    pub fn lives_since(&self, table: Oid, seq: u64) -> Vec<Arc<Live>> {
        let mut lives = self.lives.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = lives.get_mut(&table) else {
            return Vec::new();
        };
        if t.newest < seq {
            return Vec::new();
        }
        t.all
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|l| l.begin >= seq && !l.dead())
            .collect()
    }

    /// The live entries `batch` may concern, each with the positions of
    /// the changes (in order) that may concern it: from the first change
    /// naming a row it holds, the value of its anchor, a value in its
    /// range's buckets, or (neither) bringing a row its `WHERE` might
    /// accept, to the end; every change for all of them when a change does
    /// not name its rows' keys or a bucketed value does not read.
    pub fn lives_for(&self, batch: &NewRows) -> Vec<(Arc<Live>, Vec<usize>)> {
        let mut lives = self.lives.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = lives.get_mut(&batch.table) else {
            return Vec::new();
        };
        t.routed += 1;
        if t.routed % PRUNE_EVERY == 0 {
            t.prune();
        }
        let every = || (0..batch.changes.len()).collect::<Vec<usize>>();
        // The names of the buckets of each new row's values of the columns
        // range entries are bucketed by; `None` when one does not read.
        let buckets: Option<Vec<Vec<u64>>> = batch
            .changes
            .iter()
            .map(|c| bucket_names(batch, c, &t.bucketed))
            .collect();
        let (false, Some(buckets)) = (batch.changes.iter().any(|c| !c.keyed), buckets) else {
            return t
                .live(|t| &mut t.all)
                .into_iter()
                .map(|l| (l, every()))
                .collect();
        };
        let mut picked: Vec<(Arc<Live>, Vec<usize>)> = Vec::new();
        let mut at: HashMap<*const Live, usize> = HashMap::new();
        // Entries without an anchor: the changes whose new row might
        // satisfy their `WHERE`.
        for live in t.live(|t| &mut t.scan) {
            if let Some(i) = (0..batch.changes.len()).find(|&i| live.may_take(batch, i)) {
                at.insert(Arc::as_ptr(&live), picked.len());
                picked.push((live, vec![i]));
            }
        }
        for (i, change) in batch.changes.iter().enumerate() {
            // Rows held and anchors name exactly the entries a change
            // concerns; a bucket names entries whose range may not hold
            // the value: their filters decide.
            let exact = change.names.iter().map(|n| (n, true));
            for (name, exact) in exact.chain(buckets[i].iter().map(|n| (n, false))) {
                let Some(bucket) = t.by_name.get_mut(name) else {
                    continue;
                };
                bucket.retain(|w| w.upgrade().is_some_and(|l| !l.dead()));
                let reached = bucket
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|l| exact || l.may_take(batch, i));
                for live in reached {
                    let k = *at.entry(Arc::as_ptr(&live)).or_insert_with(|| {
                        picked.push((Arc::clone(&live), Vec::new()));
                        picked.len() - 1
                    });
                    // The first change that reaches it.
                    if picked[k].1.first().is_none_or(|&first| i < first) {
                        picked[k].1 = vec![i];
                    }
                }
            }
        }
        // From its first change on, an entry gets every later change of
        // the commit: a row that enters it is not in the index yet when
        // the commit's next change to that row is routed.
        for (_, which) in &mut picked {
            if let Some(&first) = which.first() {
                *which = (first..batch.changes.len()).collect();
            }
        }
        picked
    }

    /// A live entry of `table` stopped holding the rows `removed` and
    /// started holding `added` (row hashes).
    pub fn reindex(&self, live: &Arc<Live>, added: &[u64], removed: &[u64]) {
        let mut lives = self.lives.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = lives.get_mut(&live.table) else {
            return;
        };
        for row in removed {
            if let Some(bucket) = t.by_name.get_mut(row) {
                bucket.retain(|w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(live)));
                if bucket.is_empty() {
                    t.by_name.remove(row);
                }
            }
        }
        for &row in added {
            t.by_name.entry(row).or_default().push(Arc::downgrade(live));
        }
    }

    /// Drop a live entry: it can no longer follow its table.
    pub fn kill(&self, live: &Live) {
        live.kill();
        self.generations.bump(Generations::row_slot(live.id));
        self.stale.fetch_add(1, Ordering::Release);
    }

    /// Narrow a capture's dependencies on rows of `table` by column value
    /// (`Depend::Value` with the column's unknown-old-value hash `any`) to
    /// those values and the rows the capture read (`rows`: their
    /// [`row_hash`]es, from its result): an update or delete whose old value
    /// the stream does not carry then drops the entry only when it changes
    /// one of those rows. Sound when every row of `table` that could be in
    /// the result and was changed is either one of `rows` (it was in the
    /// result) or has one of the values now (named by the stream): the
    /// caller's statement has no `OFFSET` and outputs the table's key.
    ///
    /// Done only when no change to `table` was applied since the capture
    /// began: the rows' generations are read first, then the table's,
    /// which a change bumps before its rows. Returns whether it narrowed.
    pub fn narrow_members(
        &self,
        capture: &mut Capture,
        table: Oid,
        any: u64,
        rows: &[u64],
    ) -> bool {
        let slot = Generations::slot(table);
        let Some(&(_, started)) = capture.started.iter().find(|&&(s, _)| s == slot) else {
            return false;
        };
        let members: Vec<(usize, u64)> = rows
            .iter()
            .map(|&r| {
                let s = Generations::row_slot(r);
                (s, self.generations.slots[s].load(Ordering::Acquire))
            })
            .collect();
        if self.generations.slots[slot].load(Ordering::Acquire) != started {
            return false;
        }
        let mut replaced = false;
        for d in &mut capture.depends {
            if let Depend::Value(t, value, a) = *d
                && t == table
                && a == any
            {
                *d = Depend::Exact(t, value);
                replaced = true;
            }
        }
        if !replaced {
            return false;
        }
        // The unknown-value slot goes unless another dependency reads it.
        let any_slot = Generations::row_slot(any);
        let kept = capture
            .depends
            .iter()
            .any(|d| Generations::slots_of(d).any(|s| s == any_slot));
        let mut slots: Vec<(usize, u64)> = capture
            .deps
            .tables
            .iter()
            .copied()
            .filter(|&(s, _)| kept || s != any_slot)
            .collect();
        for (s, g) in members {
            if !slots.iter().any(|&(have, _)| have == s) {
                slots.push((s, g));
            }
        }
        slots.sort_unstable();
        capture.deps.tables = slots.into_boxed_slice();
        capture
            .depends
            .extend(rows.iter().map(|&r| Depend::Row(table, r)));
        true
    }
}

impl ResultCache {
    /// Register a joined entry whose rows are still to be read
    /// ([`Joined::pending`]): from now on every change of its tables is
    /// applied to it (kept, then replayed on its rows). Then its `begin` is
    /// read (a commit counted before may have been applied before it was
    /// registered: replayed when seen finished, ADR 017). Returns the
    /// generations its entry will depend on (its tables' coarse slots and
    /// its own), read now, before its rows are: `None` when the registry is
    /// full.
    pub fn register_joined(&self, joined: &Arc<Joined>) -> Option<Vec<(usize, u64)>> {
        let tables = joined.tables();
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        for &table in &tables {
            let t = joins.entry(table).or_default();
            if t.all.len() >= MAX_LIVES_PER_TABLE {
                t.refused += 1;
                if t.refused % PRUNE_EVERY == 1 {
                    t.prune(table);
                }
                if t.all.len() >= MAX_LIVES_PER_TABLE {
                    return None;
                }
            }
        }
        for &table in &tables {
            let t = joins.entry(table).or_default();
            t.all.push(Arc::downgrade(joined));
            t.pending.push(Arc::downgrade(joined));
        }
        let begin = self.commits.load(Ordering::Acquire);
        joined.set_begin(begin);
        for &table in &tables {
            let t = joins.entry(table).or_default();
            t.newest = t.newest.max(begin);
        }
        drop(joins);
        let mut slots: Vec<(usize, u64)> = tables
            .iter()
            .map(|&t| COARSE_BASE + Generations::slot(t))
            .chain([Generations::row_slot(joined.id)])
            .map(|s| (s, self.generations.slots[s].load(Ordering::Acquire)))
            .collect();
        slots.sort_unstable();
        slots.dedup_by_key(|&mut (s, _)| s);
        Some(slots)
    }

    /// Make a capture's entry a joined one (ADR 018) once its rows are read
    /// ([`Joined::fill`]) and indexed ([`Self::reindex_joined`]): its
    /// reply is from now on [`Joined::current`]; it depends only on
    /// changes that name no row, DDL, and its own slot, at the generations
    /// [`Self::register_joined`] read.
    pub fn narrow_joined(
        &self,
        capture: &mut Capture,
        joined: Arc<Joined>,
        slots: Vec<(usize, u64)>,
    ) {
        let tables = joined.tables();
        capture.deps.tables = slots.into_boxed_slice();
        capture.depends = tables.iter().map(|&t| Depend::Coarse(t)).collect();
        capture
            .depends
            .extend(tables.first().map(|&t| Depend::Row(t, joined.id)));
        capture.filter = None;
        capture.kept = Some(Kept::Joined(joined));
    }

    /// The joined entries a change of `batch` may concern: those it names
    /// ([`Joined::names`]), or all of the table's when a change does not
    /// name its rows' keys.
    pub fn joined_for(&self, batch: &NewRows) -> Vec<Arc<Joined>> {
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = joins.get_mut(&batch.table) else {
            return Vec::new();
        };
        t.routed += 1;
        if t.routed % PRUNE_EVERY == 0 {
            t.prune(batch.table);
        }
        let alive = |w: &Weak<Joined>| w.upgrade().filter(|j| !j.dead());
        if batch.changes.iter().any(|c| !c.keyed) {
            return t.all.iter().filter_map(alive).collect();
        }
        // Entries not yet indexed (their rows being read) take every change.
        t.pending
            .retain(|w| w.upgrade().is_some_and(|j| !j.dead() && !j.active()));
        let mut out: Vec<Arc<Joined>> = t.pending.iter().filter_map(alive).collect();
        let mut seen: HashSet<*const Joined> = out.iter().map(Arc::as_ptr).collect();
        for change in &batch.changes {
            for name in &change.names {
                let Some(bucket) = t.by_name.get(name) else {
                    continue;
                };
                for j in bucket.iter().filter_map(alive) {
                    if seen.insert(Arc::as_ptr(&j)) {
                        out.push(j);
                    }
                }
            }
        }
        out
    }

    /// Index a joined entry whose rows were just read under its names.
    pub fn activate_joined(&self, joined: &Arc<Joined>) {
        let tables = joined.tables();
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        for table in tables {
            if let Some(t) = joins.get_mut(&table) {
                for name in joined.names(table) {
                    t.add(name, joined);
                }
            }
        }
        joined.set_active();
    }

    /// Index a joined entry under the rows it started holding (names it no
    /// longer has stay until the index is pruned: a superset).
    pub fn reindex_joined(&self, joined: &Arc<Joined>) {
        let added = joined.take_added();
        if added.is_empty() {
            return;
        }
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        for (table, name) in added {
            if let Some(t) = joins.get_mut(&table) {
                t.add(name, joined);
            }
        }
    }

    /// The joined entries reading `table` whose rows began to be read at or
    /// after commit `seq` ([`Self::next_commit`]).
    pub fn joined_since(&self, table: Oid, seq: u64) -> Vec<Arc<Joined>> {
        let mut joins = self.joins.lock().unwrap_or_else(|p| p.into_inner());
        let Some(t) = joins.get_mut(&table) else {
            return Vec::new();
        };
        if t.newest < seq {
            return Vec::new();
        }
        t.all
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|j| j.begin() >= seq && !j.dead())
            .collect()
    }

    /// Drop a joined entry: it can no longer follow its tables.
    pub fn kill_joined(&self, joined: &Joined) {
        joined.kill();
        self.generations.bump(Generations::row_slot(joined.id));
        self.stale.fetch_add(1, Ordering::Release);
    }
}

/// The joined entries reading one table, and how changes find them.
#[derive(Default)]
struct TableJoins {
    all: Vec<Weak<Joined>>,
    /// Each entry under its names for this table ([`Joined::names`]).
    by_name: HashMap<u64, Vec<Weak<Joined>>>,
    /// Entries whose rows are being read ([`Joined::pending`]).
    pending: Vec<Weak<Joined>>,
    routed: u64,
    refused: u64,
    /// The latest `begin` of an entry registered.
    newest: u64,
}

impl TableJoins {
    /// Index `joined` under `name` (an entry may be listed twice under a
    /// name until the next prune; routing removes duplicates).
    fn add(&mut self, name: u64, joined: &Arc<Joined>) {
        self.by_name
            .entry(name)
            .or_default()
            .push(Arc::downgrade(joined));
    }

    /// Forget dropped entries, and the names entries no longer have.
    fn prune(&mut self, table: Oid) {
        self.all.retain(|w| w.upgrade().is_some_and(|j| !j.dead()));
        self.pending
            .retain(|w| w.upgrade().is_some_and(|j| !j.dead() && !j.active()));
        self.by_name.clear();
        let alive: Vec<Arc<Joined>> = self.all.iter().filter_map(Weak::upgrade).collect();
        for joined in &alive {
            for name in joined.names(table) {
                self.add(name, joined);
            }
        }
    }
}

/// Most live entries per table (those without an anchor or a narrow
/// range, tested against every change, at most [`MAX_FILTERS_PER_TABLE`]).
pub const MAX_LIVES_PER_TABLE: usize = 1 << 16;

/// The bucket names of `change`'s new row's values of the `columns`
/// (integer columns ranges are bucketed by): empty without a new row or
/// for NULLs; `None` when a value does not read as an integer or the
/// column is not in the stream's rows as an integer.
fn bucket_names(batch: &NewRows, change: &Change, columns: &[String]) -> Option<Vec<u64>> {
    let Some(new) = change.new.and_then(|n| batch.rows.get(n as usize)) else {
        return Some(Vec::new());
    };
    let mut out = Vec::with_capacity(columns.len());
    for column in columns {
        let p = batch.columns.iter().position(|(name, ty)| {
            name == column && crate::sql::rowkey::INTEGER_TYPES.contains(&ty.0)
        })?;
        match new.columns.get(p)? {
            ColumnValue::Null => {}
            ColumnValue::Text(text) => {
                let v: i64 = std::str::from_utf8(text).ok()?.parse().ok()?;
                out.push(live::bucket_hash(
                    batch.table,
                    column,
                    v >> live::BUCKET_BITS,
                ));
            }
            ColumnValue::UnchangedToast | ColumnValue::Binary(_) => return None,
        }
    }
    Some(out)
}

/// The live entries of one table, and how changes find them.
#[derive(Default)]
struct TableLives {
    all: Vec<Weak<Live>>,
    /// Those without an anchor: any change may concern them.
    scan: Vec<Weak<Live>>,
    /// An anchored entry under its anchor's [`value_hash`], every entry
    /// under the [`row_hash`] of each row it holds (and maybe of rows it
    /// held: a superset).
    by_name: HashMap<u64, Vec<Weak<Live>>>,
    /// Commits routed (the index is pruned of dropped entries every
    /// [`PRUNE_EVERY`]).
    routed: u64,
    /// Registrations refused while full (pruned every [`PRUNE_EVERY`]).
    refused: u64,
    /// Columns range entries are bucketed by ([`Live::buckets`]).
    bucketed: Vec<String>,
    /// The latest `begin` of an entry registered.
    newest: u64,
}

/// Commits routed to a table's live entries between prunings of its index.
const PRUNE_EVERY: u64 = 256;

impl TableLives {
    /// The entries of one list still followed (the list pruned).
    fn live(&mut self, list: fn(&mut TableLives) -> &mut Vec<Weak<Live>>) -> Vec<Arc<Live>> {
        let mut out = Vec::new();
        list(self).retain(|w| match w.upgrade() {
            Some(l) if !l.dead() => {
                out.push(l);
                true
            }
            _ => false,
        });
        out
    }

    fn prune(&mut self) {
        let alive = |w: &Weak<Live>| w.upgrade().is_some_and(|l| !l.dead());
        self.all.retain(alive);
        self.scan.retain(alive);
        self.by_name.retain(|_, bucket| {
            bucket.retain(alive);
            !bucket.is_empty()
        });
    }
}

/// Register `item` under `table` (at most [`MAX_FILTERS_PER_TABLE`] live
/// ones); whether it was.
fn register<T>(registry: &Mutex<HashMap<Oid, Vec<Weak<T>>>>, table: Oid, item: &Arc<T>) -> bool {
    let mut registry = registry.lock().unwrap_or_else(|p| p.into_inner());
    let list = registry.entry(table).or_default();
    if list.len() >= MAX_FILTERS_PER_TABLE {
        list.retain(|w| w.strong_count() > 0);
        if list.len() >= MAX_FILTERS_PER_TABLE {
            return false;
        }
    }
    list.push(Arc::downgrade(item));
    true
}

#[cfg(test)]
mod tests;
