//! The cache as seen from the proxy: the shared runtime (result store,
//! analyzer, catalog kept loaded) and each session's view of it (its
//! settings class, prepared statements, the request whose reply is being
//! captured, writes waiting for their transaction to end).
//!
//! Decisions only; the session loop ([`super::session`]) does the I/O and
//! calls in with whole messages (ADR 011).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::lookup::{self as lookup, Job, Lookup};
use crate::admin::{CacheSource, LookupLabels, Metrics, PopulationLabels};
use crate::cache::Depend;
use crate::cache::response::{self, Describe, READY_IDLE};
use crate::cache::{Capture, JoinPlan, KeyPart, KeyRef, Limits, ResultCache, Ticket, Written};
use crate::catalog::{self, EffectivePath, Oid, RelKind, SearchPath, Snapshot};
use crate::cdc;
use crate::config::{CacheConfig, CacheMode, CdcMode, Config};
use crate::protocol::frontend;
use crate::sql::ast::ObjectName;
use crate::sql::deps::{self, Dependency, KeySource, List};
use crate::sql::rowkey;
use crate::sql::{
    self, Analyzer, Context as SqlContext, Session as SqlSession, StatementKind, Verdict, Writes,
};

/// `pg_catalog`'s OID.
const PG_CATALOG: Oid = Oid(11);

/// The comment that keeps a statement away from the cache.
const SKIP_HINTS: [&str; 2] = ["pgcache: skip", "pgcache:skip"];

/// Hit replies queued for a client that is not reading stop the framing of
/// its further requests at this size.
pub(crate) const HIT_BACKLOG: usize = 256 * 1024;

/// One hit in this many is timed for `cache_hit_duration_seconds`.
const HIT_SAMPLE: u32 = 8;

/// Held extended-protocol messages are forwarded once they exceed this.
const MAX_HELD: usize = 256 * 1024;

/// Everything that changes a cached reply's bytes or meaning, read from the
/// session itself (`current_user` and `session_user` first, then the
/// settings). Qualified so that no search_path can redirect it.
const PROBE_SQL: &str = "SELECT pg_catalog.current_setting('role') = 'none' \
    AND current_user = session_user, current_user, \
    pg_catalog.current_setting('search_path'), \
    pg_catalog.current_setting('standard_conforming_strings'), \
    pg_catalog.pg_my_temp_schema() <> 0, \
    pg_catalog.current_setting('client_min_messages'), \
    pg_catalog.concat_ws(E'\\x1f', \
    pg_catalog.current_setting('TimeZone'), pg_catalog.current_setting('DateStyle'), \
    pg_catalog.current_setting('IntervalStyle'), pg_catalog.current_setting('extra_float_digits'), \
    pg_catalog.current_setting('bytea_output'), pg_catalog.current_setting('client_encoding'), \
    pg_catalog.current_setting('lc_monetary'), pg_catalog.current_setting('lc_numeric'), \
    pg_catalog.current_setting('lc_time'), pg_catalog.current_setting('array_nulls'), \
    pg_catalog.current_setting('transform_null_equals'), \
    pg_catalog.current_setting('timezone_abbreviations'), \
    pg_catalog.current_setting('backslash_quote'), \
    pg_catalog.current_setting('escape_string_warning'), pg_catalog.current_setting('xmloption'), \
    pg_catalog.current_setting('xmlbinary'), pg_catalog.current_setting('row_security'), \
    pg_catalog.current_setting('default_text_search_config'), \
    pg_catalog.current_setting('quote_all_identifiers'), \
    pg_catalog.current_setting('gin_fuzzy_search_limit'), \
    pg_catalog.current_setting('server_encoding'))";

/// The probe's prepared-statement name (the probe runs through the extended
/// protocol so that it leaves the session's unnamed statement alone).
const PROBE_STATEMENT: &str = "pgcache_settings_probe";

/// The probe as Parse, Bind, Execute, Close and Sync messages.
pub(crate) fn probe_messages(out: &mut BytesMut) {
    let name = PROBE_STATEMENT.as_bytes();
    let mut msg = |tag: u8, parts: &[&[u8]]| {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.put_u8(tag);
        out.put_u32((len + 4) as u32);
        for p in parts {
            out.put_slice(p);
        }
    };
    msg(b'P', &[name, b"\0", PROBE_SQL.as_bytes(), b"\0", b"\0\0"]);
    msg(b'B', &[b"\0", name, b"\0", b"\0\0", b"\0\0", b"\0\0"]);
    msg(b'E', &[b"\0", b"\0\0\0\0"]);
    msg(b'C', &[b"S", name, b"\0"]);
    msg(b'S', &[]);
}

/// The catalog as the cache uses it.
struct Catalog {
    snapshot: Snapshot,
    /// `cache.allow_tables` resolved (`None` = every table).
    allow: Option<HashSet<Oid>>,
    deny: HashSet<Oid>,
    /// Lower-cased names of functions outside `pg_catalog` and
    /// `information_schema` (of any volatility: a stable function may call
    /// `set_config`, a view may call anything).
    user_functions: HashSet<String>,
}

/// What an entry depends on, as named for one execution.
#[derive(Default)]
struct Named {
    depends: Vec<Depend>,
    /// Lookups that may narrow it after the capture.
    lookups: Vec<Lookup>,
    /// Value dependencies the result may narrow.
    members: Vec<Members>,
    /// A filter the result may narrow its table dependency to.
    filter: Option<Filtered>,
    /// A join to keep in place (ADR 018).
    join: Option<JoinPlan>,
}

/// A single-table entry's filter and where its key is in the output
/// ([`ResultCache::narrow_filter`]).
struct Filtered {
    filter: sql::filter::Filter,
    key: deps::OutputKey,
    /// How the result can be kept up to date in place (ADR 017).
    layout: Option<sql::layout::Layout>,
}

/// A table whose value dependencies a capture may narrow to the rows of its
/// result ([`ResultCache::narrow_members`]).
struct Members {
    table: Oid,
    /// The column's unknown-old-value hash.
    any: u64,
    /// Where the table's key is in the output.
    key: deps::OutputKey,
}

/// An entry a hit replies with: a live entry's reply taken once, for the
/// checks and the reply alike (the stream may change it in between).
enum Reply {
    Captured(Arc<crate::cache::Entry>),
    Live(u64, crate::cache::CapturedResult),
}

impl Reply {
    fn of(entry: Arc<crate::cache::Entry>) -> Reply {
        if entry.is_live() {
            Reply::Live(entry.shape, entry.result().clone())
        } else {
            Reply::Captured(entry)
        }
    }

    fn result(&self) -> &crate::cache::CapturedResult {
        match self {
            Reply::Captured(entry) => &entry.result,
            Reply::Live(_, result) => result,
        }
    }

    fn shape(&self) -> u64 {
        match self {
            Reply::Captured(entry) => entry.shape,
            Reply::Live(shape, _) => *shape,
        }
    }
}

/// Most rows a result names for [`Members`]; a larger result keeps its
/// value dependencies as they are.
const MAX_MEMBERS: usize = 1024;

/// Most values of an `IN` list named one by one ([`Dependency::Rows`],
/// [`Dependency::Values`]); a longer list depends on the whole table.
const MAX_LISTED: usize = 64;

/// The lookup reading the key of the row a [`Dependency::Lookup`] narrows
/// to, with the key values of the row it reads.
fn lookup_of(
    catalog: &Catalog,
    via: Oid,
    via_key: &[(String, KeySource, Oid)],
    columns: &[String],
    value: &impl Fn(KeySource, Oid) -> Option<KeyPart>,
) -> Option<String> {
    let table = catalog.snapshot.table(via)?;
    let schema = catalog.snapshot.schema(table.schema)?;
    let key = via_key
        .iter()
        .map(
            |(column, source, type_oid)| match value(*source, *type_oid)? {
                KeyPart::Int(v) => Some((column.as_str(), v)),
                KeyPart::Bytes(_) => None,
            },
        )
        .collect::<Option<Vec<_>>>()?;
    Some(lookup::lookup_sql(&schema.name, &table.name, columns, &key))
}

/// Shared by every session.
pub(crate) struct CacheRuntime {
    pub(crate) cache: ResultCache,
    analyzer: Analyzer,
    config: CacheConfig,
    metrics: Arc<Metrics>,
    catalog: RwLock<Option<Arc<Catalog>>>,
    /// The `ddl_epoch` the loaded catalog reflects (read before its load
    /// began); behind `ddl_epoch` = stale.
    loaded_epoch: AtomicU64,
    reload: Notify,
    /// `pg_query` fingerprints of `cache.allow_statements`.
    allow_statements: HashSet<u64>,
    /// Bumped by every catalog change through the proxy: part of a prepared
    /// statement's key, so that a statement prepared before a change (whose
    /// plan the origin refuses to change the result type of) never shares
    /// entries with one prepared after it.
    ddl_epoch: AtomicU64,
    /// The change stream reports DDL run on the origin (its event trigger
    /// was there at the last position read): code of unknown effects run
    /// through the proxy (`DO`, `CALL`, triggers) need not reload the
    /// catalog itself; any DDL it ran arrives with its transaction.
    ddl_streamed: AtomicBool,
    /// The publication the change stream reads (`None` without a stream:
    /// then only writes through the proxy invalidate).
    publication: Option<String>,
    /// Notified when entries or tickets start waiting for a fence position.
    pub(crate) fence_wanted: Arc<Notify>,
    /// Per shape fingerprint and catalog generation: what its entries
    /// depend on, table by table (`None`: every change to its tables).
    dependencies: quick_cache::sync::Cache<(u64, u64), Option<Arc<[Dependency]>>>,
    /// Per shape fingerprint and catalog generation: how its entries are
    /// kept in place when it is a join that can be (ADR 018).
    join_specs: quick_cache::sync::Cache<(u64, u64), Option<Arc<sql::joined::JoinSpec>>>,
    /// Captures waiting for lookups that narrow their dependencies
    /// (`super::lookup`); `None` without a change stream.
    lookups: Option<tokio::sync::mpsc::Sender<Job>>,
    /// The other end, until the lookup task takes it.
    lookup_jobs: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Job>>>,
}

impl CacheSource for CacheRuntime {
    fn entries(&self) -> u64 {
        self.cache.entry_count() as u64
    }
    fn rows(&self) -> i64 {
        self.cache.counters().rows.load(Ordering::Relaxed)
    }
    fn memory_bytes(&self) -> u64 {
        self.cache.memory()
    }
    fn evictions(&self) -> u64 {
        self.cache.counters().evictions.load(Ordering::Relaxed)
    }
}

impl CacheRuntime {
    /// The runtime for `config`, or `None` when caching is off.
    pub(crate) fn new(config: &Config, metrics: Arc<Metrics>) -> Option<Arc<CacheRuntime>> {
        let c = &config.cache;
        if c.mode == CacheMode::Off {
            return None;
        }
        let lookups =
            (config.cdc.mode == CdcMode::On).then(|| tokio::sync::mpsc::channel(lookup::QUEUE));
        let allow_statements = c
            .allow_statements
            .iter()
            .filter_map(|s| match fingerprint(s) {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!(statement = %s, error = %e, "cache.allow_statements: statement does not parse; ignored");
                    None
                }
            })
            .collect();
        let rt = Arc::new(CacheRuntime {
            cache: ResultCache::new(Limits {
                max_memory: c.max_memory,
                max_result_size: c.max_result_size,
                admit_after: c.admit_after,
                role_ttl: c.role_ttl,
                fenced: config.cdc.mode == CdcMode::On,
            }),
            analyzer: Analyzer::new(16_384),
            config: c.clone(),
            metrics: Arc::clone(&metrics),
            catalog: RwLock::new(None),
            loaded_epoch: AtomicU64::new(0),
            reload: Notify::new(),
            allow_statements,
            ddl_epoch: AtomicU64::new(0),
            ddl_streamed: AtomicBool::new(false),
            publication: (config.cdc.mode == CdcMode::On).then(|| config.cdc.publication.clone()),
            fence_wanted: Arc::new(Notify::new()),
            dependencies: quick_cache::sync::Cache::new(16_384),
            join_specs: quick_cache::sync::Cache::new(16_384),
            lookups: lookups.as_ref().map(|(tx, _)| tx.clone()),
            lookup_jobs: std::sync::Mutex::new(lookups.map(|(_, rx)| rx)),
        });
        metrics.set_cache_source(Arc::clone(&rt) as Arc<dyn CacheSource>);
        Some(rt)
    }

    /// The lookup task's queue (once; `None` without a change stream).
    pub(crate) fn take_lookup_jobs(&self) -> Option<tokio::sync::mpsc::Receiver<Job>> {
        self.lookup_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Count a lookup's result (`cache_lookups`).
    pub(crate) fn lookup_done(&self, result: &'static str) {
        self.metrics
            .cache_lookups
            .get_or_create(&LookupLabels { result })
            .inc();
    }

    /// Count a joined entry's read (`cache_joins`).
    pub(crate) fn join_done(&self, result: &'static str) {
        self.metrics
            .cache_joins
            .get_or_create(&LookupLabels { result })
            .inc();
    }

    /// Most bytes a joined entry's reply may grow to: twice its captured
    /// size (at least 64 KiB more), within `cache.max_result_size`.
    pub(crate) fn max_join_len(&self, result: &response::CapturedResult) -> usize {
        let len = result.len();
        usize::try_from(self.cache.limits().max_result_size)
            .unwrap_or(usize::MAX)
            .min(len.saturating_mul(2).max(len + (64 << 10)))
    }

    /// Store a finished capture (and wake the fence when it waits for one).
    pub(crate) fn store(&self, capture: Capture, shape: u64, result: response::CapturedResult) {
        let stored = self.cache.finish_capture(capture, shape, result).is_some();
        if stored && self.publication.is_some() {
            self.fence_wanted.notify_one();
        }
        let label = if stored { "ok" } else { "failed" };
        self.metrics
            .cache_populations
            .get_or_create(&PopulationLabels { result: label })
            .inc();
    }

    fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn install(&self, snapshot: Snapshot) {
        let resolve = |names: &[String]| -> HashSet<Oid> {
            let mut set = HashSet::new();
            for n in names {
                let (schema, table) = match n.split_once('.') {
                    Some((s, t)) => (Some(s), t),
                    None => (None, n.as_str()),
                };
                for t in snapshot.tables() {
                    let schema_ok = schema
                        .is_none_or(|s| snapshot.schema(t.schema).is_some_and(|sc| sc.name == s));
                    if t.name == table && schema_ok {
                        set.insert(t.oid);
                    }
                }
            }
            set
        };
        let allow =
            if self.config.mode == CacheMode::Explicit || !self.config.allow_tables.is_empty() {
                Some(resolve(&self.config.allow_tables))
            } else {
                None
            };
        let deny = resolve(&self.config.deny_tables);
        let user_functions = snapshot
            .user_functions()
            .map(|f| f.to_ascii_lowercase())
            .collect();
        let catalog = Catalog {
            snapshot,
            allow,
            deny,
            user_functions,
        };
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(catalog));
    }

    /// Advance the cache's coarse clock every second. Runs until aborted.
    pub(crate) async fn clock(self: Arc<Self>) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            self.cache.tick();
        }
    }

    /// Keep the catalog loaded: at start, after catalog changes through the
    /// proxy, and every five minutes. Also sweeps stale entries every
    /// second while the catalog is loaded. Runs until aborted.
    pub(crate) async fn maintain(self: Arc<Self>, origin: crate::config::OriginConfig) {
        let mut backoff = Duration::from_millis(200);
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            let epoch = self.ddl_epoch.load(Ordering::Acquire);
            match load_catalog(&origin, self.publication.as_deref()).await {
                Ok(snapshot) => {
                    let tables = snapshot.tables().count();
                    self.install(snapshot);
                    // Catalog changes committed before this load began are in it.
                    self.loaded_epoch.store(epoch, Ordering::Release);
                    self.metrics.cache_catalog_loads.inc();
                    info!(tables, "cache: origin catalog loaded");
                    backoff = Duration::from_millis(200);
                    let deadline = tokio::time::sleep(Duration::from_secs(300));
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            () = &mut deadline => break,
                            () = self.reload.notified() => break,
                            _ = sweep.tick() => self.cache.sweep(),
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cache: could not load the origin catalog; statements are forwarded until it loads");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Whether DDL on the origin reaches the cache through the change
    /// stream ([`Self::ddl_streamed`] field).
    fn ddl_streamed(&self) -> bool {
        self.publication.is_some() && self.ddl_streamed.load(Ordering::Acquire)
    }

    /// A catalog change through the proxy is not in the loaded catalog yet:
    /// nothing new is captured and every write counts as writing everything.
    fn catalog_stale(&self) -> bool {
        self.loaded_epoch.load(Ordering::Acquire) != self.ddl_epoch.load(Ordering::Acquire)
    }

    fn catalog_changed(&self) {
        self.ddl_epoch.fetch_add(1, Ordering::AcqRel);
        // Privileges and columns may have changed: every role proves its
        // access again.
        self.cache.clear_grants();
        self.reload.notify_one();
    }

    fn skip_hinted(sql: &str) -> bool {
        SKIP_HINTS.iter().any(|h| sql.contains(h))
    }

    /// Whether a cacheable statement of `shape` may get an entry.
    fn allowed(&self, catalog: &Catalog, tables: &[Oid], sql: &str, shape: u64) -> bool {
        if tables.iter().any(|t| catalog.deny.contains(t)) {
            return false;
        }
        let listed_tables = catalog
            .allow
            .as_ref()
            .is_none_or(|allow| tables.iter().all(|t| allow.contains(t)));
        match self.config.mode {
            CacheMode::Off => false,
            CacheMode::Auto => listed_tables && self.cache.sighted(shape),
            CacheMode::Explicit => {
                (listed_tables && !self.config.allow_tables.is_empty())
                    || fingerprint(sql).is_ok_and(|f| self.allow_statements.contains(&f))
            }
        }
    }
}

/// `key` := the key of simple query `sql` in settings class `class`.
fn query_key(key: &mut Vec<u8>, class: u32, sql: &[u8]) {
    key.clear();
    key.push(b'Q');
    key.extend_from_slice(&class.to_be_bytes());
    key.extend_from_slice(sql);
}

/// `key` := the key of an execution of prepared statement number `stmt`
/// in settings class `class`, with the Bind `tail` (parameters and result
/// formats).
fn execute_key(key: &mut Vec<u8>, class: u32, stmt: u64, tail: &[u8]) {
    key.clear();
    key.push(b'E');
    key.extend_from_slice(&class.to_be_bytes());
    key.extend_from_slice(&stmt.to_be_bytes());
    key.extend_from_slice(tail);
}

/// What `cache.allow_statements` matches: the statement with its literal
/// values left out, table names kept whole (the default fingerprint would
/// take `orders_2024_01` and `orders_2024_02` for one table).
fn fingerprint(sql: &str) -> Result<u64, pg_query::Error> {
    pg_query::fingerprint(
        sql,
        pg_query::ParserOptions::DEFAULT,
        pg_query::FingerprintOptions::FULL_RELNAME,
    )
    .map(|f| f.value)
}

/// The origin's catalog. With a change stream (`publication`), only tables
/// it publishes whole are cacheable: changes to others would not be seen.
async fn load_catalog(
    origin: &crate::config::OriginConfig,
    publication: Option<&str>,
) -> Result<Snapshot, String> {
    let pg = origin.pg_config().map_err(|e| e.to_string())?;
    let (client, conn) = crate::check::connect_origin(&pg, origin.connect_timeout).await?;
    let loaded = catalog::load(&client, publication)
        .await
        .map_err(|e| e.to_string());
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
    let mut snapshot = loaded?;
    snapshot.set_publication_required(publication.is_some());
    Ok(snapshot)
}

impl cdc::Target for CacheRuntime {
    fn cache(&self) -> &ResultCache {
        &self.cache
    }

    fn catalog_changed(&self) {
        CacheRuntime::catalog_changed(self);
    }

    fn ddl_streamed(&self, on: bool) {
        self.ddl_streamed.store(on, Ordering::Release);
    }

    fn redefined(&self, relation: &cdc::pgoutput::Relation) {
        let same = self.catalog().is_some_and(|c| {
            let snapshot = &c.snapshot;
            snapshot.tables().any(|t| {
                t.oid == relation.oid
                    && t.name == relation.name
                    && snapshot.schema(t.schema).is_some_and(|s| {
                        s.name == relation.namespace
                            || (relation.namespace.is_empty() && s.name == "pg_catalog")
                    })
                    && t.replica_identity == relation.replica_identity
                    && {
                        let published = t.columns.iter().filter(|c| !c.generated);
                        published.clone().count() == relation.columns.len()
                            && published.zip(&relation.columns).all(|(c, r)| {
                                c.name == r.name
                                    && c.type_oid == r.type_oid
                                    && c.typmod == r.type_modifier
                            })
                    }
            })
        });
        if !same {
            info!(table = %format!("{}.{}", relation.namespace, relation.name), "cache: table definition changed on the origin; catalog reloaded");
            self.catalog_changed();
        }
    }
}

/// The session's settings class as last read from the origin.
#[derive(Debug, Clone)]
struct Ctx {
    class: u32,
    role: Arc<str>,
    search_path: SearchPath,
    standard_conforming_strings: bool,
    temp: bool,
}

/// A prepared statement as the origin has it.
#[derive(Debug)]
struct Stmt {
    sql: Arc<str>,
    /// Declared parameter type OIDs (0 = unspecified).
    param_types: Arc<[u32]>,
    /// The request part of cache keys for its executions: its text,
    /// declared parameter types, parse-time settings and catalog epoch
    /// (length-prefixed bytes), interned process-wide so that a hit hashes
    /// and compares a few bytes. Never the same number for two prefixes.
    id: u64,
    kinds: Arc<[StatementKind]>,
    /// The settings the origin parsed it under are known (part of the
    /// prefix); otherwise its executions are never cached.
    parse_env_known: bool,
}

/// What statements did that matters to the cache once they commit.
#[derive(Debug, Default)]
struct Effects {
    written: Written,
    /// The catalog may have changed (DDL, DO, CALL, …).
    ddl: bool,
    /// The request runs something (a query, a Parse, Bind, Execute, …):
    /// not only Close, Flush and Sync, which change no setting.
    runs: bool,
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.runs |= other.runs;
        self.written.add(&other.written);
        self.ddl |= other.ddl;
    }
}

/// A Parse sent to the origin, waiting for its ParseComplete.
#[derive(Debug)]
struct PendingParse {
    name: Vec<u8>,
    stmt: Arc<Stmt>,
    /// Sent by the proxy on its own (a deferred unnamed Parse): its
    /// ParseComplete is not relayed.
    swallow: bool,
    /// Closed (or deallocated) after it was sent.
    closed: bool,
}

/// The state of the settings probe.
#[derive(Debug)]
enum Probe {
    Idle,
    /// Sent; this many client replies come first.
    Waiting(u64),
    /// Its reply is arriving: swallowed, not relayed.
    Receiving(Option<Vec<Option<Vec<u8>>>>),
}

/// The request forwarded at an idle point whose reply is watched.
struct Watch {
    shape: u64,
    capture: Option<(Capture, BytesMut)>,
    /// Lookups to run before the capture is stored (`super::lookup`).
    lookups: Vec<Lookup>,
    /// A join to keep in place, from rows read before it is stored.
    join: Option<JoinPlan>,
    /// Value dependencies to narrow to the rows of the result.
    members: Vec<Members>,
    filter: Option<Filtered>,
    /// The result format codes the request asked for (Bind's).
    formats: Vec<i16>,
    errored: bool,
    started: Instant,
}

/// Where a held message lies in the held bytes.
type Span = (usize, usize);

/// One group of a held extended-protocol batch.
struct Group {
    bind: Span,
    describe: Describe,
    max_rows: i32,
}

/// A session's view of the cache.
pub(crate) struct SessionCache {
    rt: Arc<CacheRuntime>,
    /// The session committed a write whose tables are not known: nothing is
    /// served to it until the change stream has applied that write.
    ticket: Option<Arc<Ticket>>,
    ctx: Option<Ctx>,
    /// The role may differ from the session user (`SET ROLE`, `SET SESSION
    /// AUTHORIZATION`): nothing is served or captured.
    bypass: bool,
    /// The settings could not be read at all: do not keep trying.
    bypass_for_good: bool,
    /// The session declared a cursor: named portals may outlive a
    /// transaction (`WITH HOLD`), so only the unnamed portal is served.
    cursors: bool,
    /// The session may have temporary relations (seen by a probe, or DDL).
    maybe_temp: bool,
    probe: Probe,
    statements: HashMap<Vec<u8>, Arc<Stmt>>,
    /// Parses sent and not yet confirmed by ParseComplete, in order.
    pending_parses: VecDeque<PendingParse>,
    /// The client's unnamed statement, parsed by a batch served from the
    /// cache: the origin has not seen that Parse. It is sent ahead of the
    /// next forwarded message that uses the unnamed statement.
    virtual_unnamed: Option<(Vec<u8>, Arc<Stmt>)>,
    /// A simple query was answered from the cache: the origin still has
    /// the unnamed statement that query destroyed for the client. A Close
    /// is sent ahead of the next extended-protocol message.
    close_unnamed: bool,
    /// CloseCompletes of Closes the proxy sent on its own, not relayed.
    swallow_close: u32,
    /// Extended-protocol messages held until Sync (whole messages, in order).
    held: BytesMut,
    held_tags: Vec<(u8, usize, usize)>,
    /// Extended-protocol messages were forwarded without their Sync.
    batch_open: bool,
    watch: Option<Watch>,
    /// Effects accounted for the request being sent, of each request sent
    /// and not yet answered (in order), and of the current transaction.
    req: Effects,
    inflight: VecDeque<Effects>,
    txn: Effects,
    /// The last `ReadyForQuery` said idle (no transaction block).
    txn_idle: bool,
    /// Bumped whenever the settings may have changed; a probe answer read
    /// under an older epoch is thrown away.
    epoch: u64,
    probe_epoch: u64,
    /// `standard_conforming_strings` and `client_encoding` as last reported
    /// by ParameterStatus: how the origin reads a Parse's text.
    reported_scs: Option<Vec<u8>>,
    reported_encoding: Option<Vec<u8>>,
    /// `server_encoding` as reported at startup: text keys need UTF-8 on
    /// both sides of the origin's conversions (ADR 014).
    server_encoding: Option<Vec<u8>>,
    key: Vec<u8>,
    /// Hit lookups so far (for sampling their latency).
    hits_seen: u32,
    /// Verdicts on prepared statements, by statement number, for the
    /// settings class and catalog they were reached under.
    verdicts: HashMap<u64, (u32, u64, Option<sql::Cacheable>)>,
    /// Grants this session saw, by shape: (coarse-clock deadline, the
    /// `ddl_epoch` they were read under).
    grants: HashMap<u64, (u64, u64)>,
}

impl Drop for SessionCache {
    fn drop(&mut self) {
        // A COMMIT whose reply never arrived may still have committed.
        let req = std::mem::take(&mut self.req);
        self.txn.merge(req);
        while let Some(e) = self.inflight.pop_front() {
            self.txn.merge(e);
        }
        self.end_of_transaction();
        if let Some(w) = self.watch.take()
            && let Some((capture, _)) = w.capture
        {
            self.rt.cache.abandon_capture(capture);
        }
    }
}

impl SessionCache {
    pub(crate) fn new(rt: Arc<CacheRuntime>) -> SessionCache {
        SessionCache {
            rt,
            ticket: None,
            ctx: None,
            bypass: false,
            bypass_for_good: false,
            cursors: false,
            maybe_temp: false,
            probe: Probe::Idle,
            statements: HashMap::new(),
            pending_parses: VecDeque::new(),
            virtual_unnamed: None,
            close_unnamed: false,
            swallow_close: 0,
            held: BytesMut::new(),
            held_tags: Vec::new(),
            batch_open: false,
            watch: None,
            req: Effects::default(),
            inflight: VecDeque::new(),
            txn: Effects::default(),
            txn_idle: false,
            epoch: 0,
            probe_epoch: 0,
            reported_scs: None,
            reported_encoding: None,
            server_encoding: None,
            key: Vec::new(),
            hits_seen: 0,
            verdicts: HashMap::new(),
            grants: HashMap::new(),
        }
    }

    /// The probe is out: client requests wait until its answer is in, so
    /// that nothing sent after it can make the answer stale.
    pub(crate) fn probe_in_flight(&self) -> bool {
        !matches!(self.probe, Probe::Idle)
    }

    /// The origin's reply to the probe is arriving (every message whole).
    pub(crate) fn probe_receiving(&self) -> bool {
        matches!(self.probe, Probe::Receiving(_))
    }

    pub(crate) fn holding(&self) -> bool {
        !self.held_tags.is_empty()
    }

    /// Whether the session is at a point where a request may be answered
    /// from the cache or watched: nothing in flight, not in a transaction
    /// block, no half-sent extended batch, no probe under way.
    fn quiet(&self, idle: bool) -> bool {
        idle && self.txn_idle && !self.batch_open && matches!(self.probe, Probe::Idle)
    }

    /// Whether to time this hit: one in [`HIT_SAMPLE`] (a clock read costs
    /// as much as a good part of a hit).
    fn sample_hit(&mut self) -> bool {
        self.hits_seen = self.hits_seen.wrapping_add(1);
        self.hits_seen.is_multiple_of(HIT_SAMPLE)
    }

    fn servable(&self) -> Option<&Ctx> {
        if self.bypass {
            return None;
        }
        self.ctx.as_ref()
    }

    /// Whether the session may read from the cache now (read-your-writes:
    /// its last write of unknown tables has been applied).
    fn reads_own_writes(&self) -> bool {
        self.ticket.as_ref().is_none_or(|t| self.rt.cache.passed(t))
    }

    fn analyze(&self, catalog: &Catalog, ctx: &Ctx, sql: &str) -> sql::Analysis {
        let path: EffectivePath = ctx.search_path.effective(&catalog.snapshot, &ctx.role);
        let session = SqlSession {
            context: SqlContext {
                snapshot: &catalog.snapshot,
                search_path: Some(&path),
                has_temp_objects: ctx.temp,
            },
            standard_conforming_strings: ctx.standard_conforming_strings,
        };
        self.rt.analyzer.analyze(sql, &session)
    }

    fn kinds(&self, sql: &str) -> Arc<[StatementKind]> {
        let scs = self
            .ctx
            .as_ref()
            .is_none_or(|c| c.standard_conforming_strings);
        match sql::parse(sql, scs) {
            Ok(stmts) => stmts.iter().map(|s| s.kind().clone()).collect(),
            Err(_) => Arc::from(Vec::new()),
        }
    }

    fn granted(&mut self, shape: u64) -> bool {
        let now = self.rt.cache.coarse_now();
        let epoch = self.rt.ddl_epoch.load(Ordering::Acquire);
        if let Some(&(until, e)) = self.grants.get(&shape)
            && now < until
            && e == epoch
        {
            return true;
        }
        let Some(ctx) = &self.ctx else {
            return false;
        };
        match self.rt.cache.granted_until(&ctx.role, shape) {
            Some(until) => {
                if self.grants.len() > 4096 {
                    self.grants.clear();
                }
                self.grants.insert(shape, (until, epoch));
                true
            }
            None => false,
        }
    }

    // ---------------------------------------------------------------
    // Simple query protocol
    // ---------------------------------------------------------------

    /// A `Query` at a quiet point: answer it from the cache into `out` if
    /// possible.
    pub(crate) fn query_hit(&mut self, msg: &[u8], idle: bool, out: &mut BytesMut) -> bool {
        if !self.quiet(idle) {
            return false;
        }
        let Some(class) = self.servable().map(|c| c.class) else {
            return false;
        };
        if !self.reads_own_writes() {
            return false;
        }
        let started = self.sample_hit().then(Instant::now);
        let Some(sql) = frontend::query(msg) else {
            return false;
        };
        query_key(&mut self.key, class, sql);
        let Some(entry) = self.rt.cache.get(KeyRef(&self.key)) else {
            return false;
        };
        let result = entry.result();
        if result.row_description().is_none() || !self.granted(entry.shape) {
            return false;
        }
        response::write_hit(out, &result, false, Describe::Portal);
        drop(result);
        out.put_slice(READY_IDLE);
        // A simple query destroys the unnamed statement.
        self.statements.remove(&b""[..]);
        self.virtual_unnamed = None;
        self.close_unnamed = true;
        self.rt.metrics.cache_hits.inc();
        if let Some(started) = started {
            self.rt
                .metrics
                .cache_hit_duration
                .observe(started.elapsed().as_secs_f64());
        }
        true
    }

    /// A `Query` about to be forwarded. Returns the probe to send after it,
    /// if the session's settings are to be read.
    pub(crate) fn query_forwarded(&mut self, msg: &[u8], idle: bool) -> bool {
        self.req.runs = true;
        let quiet = self.quiet(idle);
        self.statements.remove(&b""[..]);
        self.virtual_unnamed = None;
        self.close_unnamed = false;
        let raw = frontend::query(msg);
        if let Some(raw) = raw
            && std::str::from_utf8(raw).is_err()
            && self
                .reported_encoding
                .as_deref()
                .is_none_or(|e| e.eq_ignore_ascii_case(b"UTF8"))
        {
            // The origin refuses text that is not valid in the client
            // encoding before parsing it: nothing runs.
            return false;
        }
        let text = raw.and_then(|raw| self.decode(raw));
        let Some(text) = text else {
            self.unknown_effects();
            return false;
        };
        let sql: &str = &text;
        let catalog = self.rt.catalog();
        let ctx = self.servable().cloned();
        let (kinds, cacheable) = match (&catalog, &ctx) {
            (Some(catalog), Some(ctx)) => {
                let a = self.analyze(catalog, ctx, sql);
                let cacheable = match a.verdict {
                    Verdict::Cacheable(c) => Some(c),
                    Verdict::NotCacheable(_) => None,
                };
                (a.kinds, cacheable)
            }
            _ => (self.kinds(sql), None),
        };
        self.account(sql, &kinds, cacheable.is_some(), catalog.as_deref());
        if let (Some(c), Some(catalog), Some(ctx), true) = (&cacheable, &catalog, &ctx, quiet) {
            query_key(&mut self.key, ctx.class, sql.as_bytes());
            let utf8 = self.utf8();
            let deps = self.deps_of(
                catalog,
                ctx,
                &c.shape,
                true,
                |part, column_type| match part {
                    KeySource::Lifted(i) => {
                        rowkey::lifted_value(c.params.get(i)?, rowkey::key_kind(column_type)?, utf8)
                    }
                    KeySource::Client(_) => None,
                },
                |part, column_type| match part {
                    KeySource::Lifted(i) => {
                        rowkey::lifted_array(c.params.get(i)?, rowkey::key_kind(column_type)?, utf8)
                    }
                    KeySource::Client(_) => None,
                },
            );
            self.watch_miss(catalog, &c.shape, sql, deps, Vec::new());
        }
        self.probe_after(quiet, &kinds)
    }

    /// Statement text for analysis. The origin reads it in the client
    /// encoding; UTF-8 is analyzed as is. In other encodings whose bytes
    /// below 0x80 are always ASCII characters (LATIN1, WIN1252, EUC_JP, …)
    /// the ASCII structure is what the parser needs: other bytes become
    /// U+FFFD, so such names resolve to nothing and are not cached, while
    /// keys keep the raw bytes. In SJIS, BIG5, GBK, UHC, GB18030 and JOHAB a
    /// backslash or quote byte can be half of a character: not analyzed.
    /// The session's text and the database's are UTF-8 (the change
    /// stream's is): text key values compare byte for byte with the
    /// stream's. With another database encoding, text goes through a
    /// conversion that need not be one-to-one (EUC_JP stores U+00A6 and
    /// U+FFE4 alike and gives back U+FFE4).
    fn utf8(&self) -> bool {
        let utf8 = |e: &Option<Vec<u8>>| {
            e.as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(b"UTF8"))
        };
        utf8(&self.reported_encoding) && utf8(&self.server_encoding)
    }

    fn decode<'a>(&self, raw: &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
        if let Ok(s) = std::str::from_utf8(raw) {
            return Some(std::borrow::Cow::Borrowed(s));
        }
        let encoding = self.reported_encoding.as_deref().unwrap_or(b"UTF8");
        let unsafe_encoding = [
            &b"SJIS"[..],
            b"BIG5",
            b"GBK",
            b"UHC",
            b"GB18030",
            b"JOHAB",
            b"UTF8",
        ]
        .iter()
        .any(|e| encoding.eq_ignore_ascii_case(e));
        (!unsafe_encoding).then(|| String::from_utf8_lossy(raw))
    }

    /// Send the probe after a plain `SELECT` forwarded at a quiet point
    /// while the settings are unknown.
    fn probe_after(&mut self, quiet: bool, kinds: &[StatementKind]) -> bool {
        if quiet && self.ctx.is_none() && !self.bypass_for_good && kinds == [StatementKind::Select]
        {
            self.probe = Probe::Waiting(1);
            self.probe_epoch = self.epoch;
            return true;
        }
        false
    }

    /// Account for statements that will run: their writes (applied when
    /// their transaction ends), catalog changes, and whether they may
    /// change settings.
    fn account(
        &mut self,
        sql: &str,
        kinds: &[StatementKind],
        cacheable: bool,
        catalog: Option<&Catalog>,
    ) {
        if kinds.is_empty() {
            // Not understood (does not parse here, or not decodable).
            self.unknown_effects();
            return;
        }
        // SQL-level `DEALLOCATE` shares the namespace of protocol-level
        // statements: the one it names goes; `DEALLOCATE ALL` and
        // `DISCARD ALL` drop every one (other `DISCARD`s drop none).
        for k in kinds {
            match k {
                StatementKind::Deallocate { name: Some(name) } => {
                    let name = name.as_bytes();
                    self.statements.remove(name);
                    for pp in self.pending_parses.iter_mut() {
                        if pp.name == name {
                            pp.closed = true;
                        }
                    }
                }
                StatementKind::Deallocate { name: None } | StatementKind::Discard { all: true } => {
                    self.statements.clear();
                    for pp in self.pending_parses.iter_mut() {
                        pp.closed = true;
                    }
                    self.virtual_unnamed = None;
                }
                _ => {}
            }
        }
        if kinds.iter().any(|k| matches!(k, StatementKind::Cursor)) {
            self.cursors = true;
        }
        if cacheable {
            // A table without row-level security, immutable functions only.
            return;
        }
        if kinds.iter().any(StatementKind::may_change_catalog) {
            // DDL itself reloads at once; code that may run some (`DO`,
            // `CALL`) leaves it to the change stream when that reports DDL.
            self.req.ddl |= !kinds
                .iter()
                .filter(|k| k.may_change_catalog())
                .all(|k| matches!(k, StatementKind::Do | StatementKind::Call))
                || !self.rt.ddl_streamed();
            self.maybe_temp = true;
        }
        let empty = HashSet::new();
        let functions = catalog.map_or(&empty, |c| &c.user_functions);
        let calls_code =
            sql.to_ascii_lowercase().contains("set_config") || sql::mentions_any(sql, functions);
        // The session's search_path, resolved once for this statement.
        let path = catalog
            .zip(self.ctx.as_ref())
            .map(|(catalog, ctx)| ctx.search_path.effective(&catalog.snapshot, &ctx.role));
        let (writes, may_change_settings) = if kinds == [StatementKind::Select] {
            // Views, row-level security policies and functions can run
            // anything; a select of plain tables calling only built-ins
            // (other than set_config) changes nothing.
            if !calls_code && self.plain_tables_only(sql, catalog, path.as_ref()) {
                (Writes::Nothing, false)
            } else {
                (Writes::Unknown, true)
            }
        } else {
            let rows_only = kinds
                .iter()
                .all(|k| k.writes_rows() || matches!(k, StatementKind::Transaction(_)));
            let w = sql::writes(sql, kinds, self.scs(), functions);
            (w, !rows_only || calls_code)
        };
        // Names after a statement that may change the search_path resolve
        // through a path the proxy does not know.
        let path = path.filter(|_| !may_change_settings);
        let written = self.resolve(&writes, catalog, path.as_ref());
        if written.all && !matches!(writes, Writes::Nothing) && kinds != [StatementKind::Select] {
            // A write with side effects (triggers…) may change settings too.
            self.settings_changed();
        }
        self.req.written.add(&written);
        if may_change_settings {
            self.settings_changed();
        }
    }

    fn scs(&self) -> bool {
        self.ctx
            .as_ref()
            .is_none_or(|c| c.standard_conforming_strings)
    }

    /// The table `name` certainly denotes, through `path` when it is known.
    fn lookup<'c>(
        &self,
        catalog: &'c Catalog,
        path: Option<&EffectivePath>,
        name: &ObjectName,
    ) -> Option<&'c catalog::Table> {
        let temp = self.ctx.as_ref().map_or(self.maybe_temp, |c| c.temp);
        match path {
            Some(path) => sql::lookup_table(&catalog.snapshot, path, temp, name).ok(),
            // A qualified name does not depend on the path.
            None if name.schema.is_some() => {
                let no_path = SearchPath::from_values::<&str>(&[]).effective(&catalog.snapshot, "");
                sql::lookup_table(&catalog.snapshot, &no_path, temp, name).ok()
            }
            None => None,
        }
    }

    /// Every relation `sql` names is an ordinary table without row-level
    /// security (so reading it runs no user code).
    fn plain_tables_only(
        &self,
        sql: &str,
        catalog: Option<&Catalog>,
        path: Option<&EffectivePath>,
    ) -> bool {
        let Some(catalog) = catalog else {
            return false;
        };
        let options = if self.scs() {
            pg_query::ParserOptions::DEFAULT
        } else {
            pg_query::ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS
        };
        let Ok(parsed) = pg_query::parse(sql, options) else {
            return false;
        };
        let snapshot = &catalog.snapshot;
        let plain = |t: &catalog::Table| t.kind == RelKind::Table && !t.row_security;
        parsed.tables().iter().all(|joined| {
            // pg_query joins the name's parts with dots: a name that has
            // more than one cannot be split back with certainty.
            let name = match joined.split_once('.') {
                Some((schema, table)) if !table.contains('.') => ObjectName {
                    schema: Some(schema.to_owned()),
                    name: table.to_owned(),
                },
                Some(_) => return false,
                None => ObjectName {
                    schema: None,
                    name: joined.clone(),
                },
            };
            match self.lookup(catalog, path, &name) {
                Some(t) => plain(t),
                // search_path unknown: plain whichever schema it is in,
                // unless the session may have temporary relations.
                None if path.is_none() && name.schema.is_none() && !self.maybe_temp => {
                    let mut found = snapshot.tables().filter(|t| t.name == name.name).peekable();
                    found.peek().is_some() && found.all(plain)
                }
                None => false,
            }
        })
    }

    fn unknown_effects(&mut self) {
        self.req.written.all = true;
        self.req.ddl |= !self.rt.ddl_streamed();
        self.settings_changed();
    }

    fn settings_changed(&mut self) {
        self.ctx = None;
        self.epoch += 1;
    }

    /// Writes to tables named in a statement → the tables they are.
    /// Unqualified names resolve only through a known `path`.
    fn resolve(
        &self,
        writes: &Writes,
        catalog: Option<&Catalog>,
        path: Option<&EffectivePath>,
    ) -> Written {
        let all = Written::everything();
        let names = match writes {
            Writes::Nothing => return Written::default(),
            Writes::Unknown => return all,
            Writes::Tables(names) => names,
        };
        // With the catalog not loaded, or behind a change through the
        // proxy (a trigger or rule may have been created since), nothing
        // is certain.
        let Some(catalog) = catalog.filter(|_| !self.rt.catalog_stale()) else {
            return all;
        };
        let mut out = Written::default();
        for name in names {
            match self.lookup(catalog, path, name) {
                Some(t)
                    if t.kind == RelKind::Table
                        && !t.has_children
                        && !t.write_side_effects
                        && !t.is_partition =>
                {
                    out.tables.push(t.oid)
                }
                _ => return all,
            }
        }
        out
    }

    /// A request (Query, Sync, FunctionCall) was forwarded: what was
    /// accounted since the previous one belongs to it.
    pub(crate) fn request_sent(&mut self) {
        let effects = std::mem::take(&mut self.req);
        self.inflight.push_back(effects);
    }

    /// The relay found that the last `n` requests sent get no
    /// `ReadyForQuery` (Syncs read in copy-in mode): their effects go with
    /// the next request.
    pub(crate) fn requests_absorbed(&mut self, n: u64) {
        for _ in 0..n {
            if let Some(e) = self.inflight.pop_back() {
                self.req.merge(e);
            }
        }
    }

    // ---------------------------------------------------------------
    // Extended query protocol
    // ---------------------------------------------------------------

    /// A Parse, Bind, Describe or Execute at a quiet point, or while a
    /// batch is held: hold it until Sync.
    pub(crate) fn try_hold(&mut self, tag: u8, msg: &[u8], idle: bool) -> bool {
        if !self.holding() && (!self.quiet(idle) || !matches!(tag, b'B' | b'P')) {
            return false;
        }
        if self.held.len() + msg.len() > MAX_HELD {
            return false;
        }
        let start = self.held.len();
        self.held.extend_from_slice(msg);
        self.held_tags.push((tag, start, self.held.len()));
        true
    }

    /// The held messages, to be forwarded now (the batch is not served):
    /// accounted for as forwarded.
    pub(crate) fn release_held(&mut self, out: &mut BytesMut, idle: bool) {
        let held = std::mem::take(&mut self.held);
        let tags = std::mem::take(&mut self.held_tags);
        for &(tag, s, e) in &tags {
            self.forward(tag, &held[s..e], idle, out);
        }
    }

    /// The settings the origin will parse a Parse sent now under: known only
    /// when nothing runs before it (the values reported are then current).
    /// Requests that only close statements may still be in flight:
    /// tokio-postgres sends a dropped statement's Close and Sync and, without
    /// waiting, the next Parse.
    fn parse_env(&self, idle: bool) -> Option<Vec<u8>> {
        let settled = idle || self.inflight.iter().all(|e| !e.runs);
        match (&self.reported_scs, &self.reported_encoding) {
            (Some(scs), Some(enc)) if settled && self.txn_idle && !self.batch_open => {
                Some([scs.as_slice(), b"\0", enc.as_slice()].concat())
            }
            _ => None,
        }
    }

    fn make_stmt(&self, p: &frontend::Parse<'_>, env: Option<Vec<u8>>) -> Arc<Stmt> {
        let (sql, kinds): (Arc<str>, Arc<[StatementKind]>) = match self.decode(p.query) {
            Some(text) => {
                let kinds = self.kinds(&text);
                (Arc::from(text.as_ref()), kinds)
            }
            None => (Arc::from(""), Arc::from(Vec::new())),
        };
        let mut prefix = Vec::with_capacity(p.query.len() + p.param_types.len() + 64);
        match &env {
            Some(env) => {
                prefix.push(1);
                prefix.extend_from_slice(&(env.len() as u32).to_be_bytes());
                prefix.extend_from_slice(env);
            }
            None => prefix.push(0),
        }
        prefix.extend_from_slice(&self.rt.ddl_epoch.load(Ordering::Acquire).to_be_bytes());
        prefix.extend_from_slice(&(p.query.len() as u32).to_be_bytes());
        prefix.extend_from_slice(p.query);
        prefix.extend_from_slice(&(p.param_types.len() as u32).to_be_bytes());
        prefix.extend_from_slice(p.param_types);
        let param_types = p
            .param_types
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Arc::new(Stmt {
            sql,
            param_types,
            id: self.rt.cache.statement_id(&prefix),
            kinds,
            parse_env_known: env.is_some(),
        })
    }

    /// Forward one extended-protocol (or Close, Flush, FunctionCall, COPY)
    /// message: a deferred unnamed Parse goes first when the message uses
    /// the unnamed statement.
    pub(crate) fn forward(&mut self, tag: u8, msg: &[u8], idle: bool, out: &mut BytesMut) {
        if self.close_unnamed {
            self.close_unnamed = false;
            let replaces =
                tag == b'P' && frontend::parse(msg).is_some_and(|p| p.statement.is_empty());
            if !replaces && tag != b'X' {
                // The message it goes ahead of opens the batch; a Close
                // runs nothing that a Parse after it could depend on.
                out.extend_from_slice(CLOSE_UNNAMED);
                self.swallow_close += 1;
            }
        }
        if self.virtual_unnamed.is_some()
            && matches!(tag, b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'S' | b'F')
        {
            // Before anything that could change the settings it is parsed
            // under, unless a Parse replaces it.
            let replaced =
                tag == b'P' && frontend::parse(msg).is_some_and(|p| p.statement.is_empty());
            let taken = self.virtual_unnamed.take();
            if !replaced && let Some((parse, stmt)) = taken {
                self.batch_open = true;
                out.extend_from_slice(&parse);
                self.pending_parses.push_back(PendingParse {
                    name: Vec::new(),
                    stmt,
                    swallow: true,
                    closed: false,
                });
            }
        }
        self.extended_forwarded(tag, msg, idle);
        out.extend_from_slice(msg);
    }

    /// An extended-protocol message (or Close, Flush, FunctionCall) is
    /// being forwarded.
    pub(crate) fn extended_forwarded(&mut self, tag: u8, msg: &[u8], idle: bool) {
        if !matches!(tag, b'C' | b'H' | b'S') {
            self.req.runs = true;
        }
        match tag {
            b'P' => {
                let env = self.parse_env(idle);
                self.batch_open = true;
                let Some(p) = frontend::parse(msg) else {
                    return;
                };
                self.statements.remove(p.statement);
                let stmt = self.make_stmt(&p, env);
                if p.statement.is_empty() {
                    self.virtual_unnamed = None;
                }
                self.pending_parses.push_back(PendingParse {
                    name: p.statement.to_vec(),
                    stmt,
                    swallow: false,
                    closed: false,
                });
            }
            b'B' => {
                self.batch_open = true;
                let stmt = frontend::bind(msg).and_then(|b| self.statement(b.statement));
                match stmt {
                    Some(stmt) => {
                        let catalog = self.rt.catalog();
                        let cacheable = self.stmt_cacheable(&stmt, catalog.as_deref()).is_some();
                        let sql = Arc::clone(&stmt.sql);
                        self.account(&sql, &stmt.kinds, cacheable, catalog.as_deref());
                    }
                    None => self.unknown_effects(),
                }
            }
            b'C' => {
                self.batch_open = true;
                if let Some((b'S', name)) = frontend::target(msg) {
                    self.statements.remove(name);
                    for pp in self.pending_parses.iter_mut() {
                        if pp.name == name {
                            pp.closed = true;
                        }
                    }
                }
            }
            b'F' => self.unknown_effects(),
            b'S' => self.batch_open = false,
            b'D' | b'E' | b'H' => self.batch_open = true,
            // Authentication, COPY data, Terminate: not part of a batch.
            _ => {}
        }
    }

    /// The statement a Bind names: the newest Parse of that name sent and
    /// not refused, else the confirmed one.
    fn statement(&self, name: &[u8]) -> Option<Arc<Stmt>> {
        self.pending_parses
            .iter()
            .rev()
            .find(|pp| pp.name == name && !pp.closed)
            .map(|pp| Arc::clone(&pp.stmt))
            .or_else(|| self.statements.get(name).cloned())
    }

    fn stmt_cacheable(&mut self, stmt: &Stmt, catalog: Option<&Catalog>) -> Option<sql::Cacheable> {
        if !stmt.parse_env_known {
            return None;
        }
        let (catalog, ctx) = (catalog?, self.servable()?);
        let (class, generation) = (ctx.class, catalog.snapshot.generation());
        if let Some((c, g, verdict)) = self.verdicts.get(&stmt.id)
            && *c == class
            && *g == generation
        {
            return verdict.clone();
        }
        let verdict = match self.analyze(catalog, ctx, &stmt.sql).verdict {
            Verdict::Cacheable(c) => Some(c),
            Verdict::NotCacheable(_) => None,
        };
        if self.verdicts.len() >= 4096 {
            self.verdicts.clear();
        }
        self.verdicts
            .insert(stmt.id, (class, generation, verdict.clone()));
        verdict
    }

    /// Sync of a held batch: serve it from the cache into `out`, or return
    /// false (then [`Self::sync_forwarded`] follows).
    pub(crate) fn batch_hit(&mut self, out: &mut BytesMut) -> bool {
        let started = self.sample_hit().then(Instant::now);
        let Some(ctx) = self.servable() else {
            return false;
        };
        let class = ctx.class;
        if !self.reads_own_writes() {
            return false;
        }
        let Some((parse, groups)) = self.groups() else {
            return false;
        };
        let parsed = match parse {
            Some((s, e)) => {
                let Some(p) = frontend::parse(&self.held[s..e]) else {
                    return false;
                };
                let env = self.parse_env(true);
                if env.is_none() {
                    return false;
                }
                Some(self.make_stmt(&p, env))
            }
            None => None,
        };
        let mut entries = Vec::with_capacity(groups.len());
        for g in &groups {
            let Some(bind) = frontend::bind(&self.held[g.bind.0..g.bind.1]) else {
                return false;
            };
            if self.cursors && !bind.portal.is_empty() {
                // A WITH HOLD cursor may hold that name.
                return false;
            }
            let stmt = match (&parsed, bind.statement.is_empty()) {
                (Some(stmt), true) => Arc::clone(stmt),
                _ => match self.statements.get(bind.statement) {
                    Some(stmt) => Arc::clone(stmt),
                    None => return false,
                },
            };
            execute_key(&mut self.key, class, stmt.id, bind.tail);
            let Some(entry) = self.rt.cache.get(KeyRef(&self.key)) else {
                return false;
            };
            let reply = Reply::of(entry);
            let result = reply.result();
            let fits = g.max_rows == 0 || result.row_count < g.max_rows as u64;
            if !fits || !result.describes(g.describe) || !self.granted(reply.shape()) {
                return false;
            }
            entries.push(reply);
        }
        if let (Some((s, e)), Some(stmt)) = (parse, parsed) {
            out.put_slice(response::PARSE_COMPLETE);
            self.virtual_unnamed = Some((self.held[s..e].to_vec(), Arc::clone(&stmt)));
            self.statements.insert(Vec::new(), stmt);
        }
        for (g, reply) in groups.iter().zip(&entries) {
            response::write_hit(out, reply.result(), true, g.describe);
        }
        out.put_slice(READY_IDLE);
        self.held.clear();
        self.held_tags.clear();
        let n = entries.len() as u64;
        self.rt.metrics.cache_hits.inc_by(n);
        if let Some(started) = started {
            self.rt
                .metrics
                .cache_hit_duration
                .observe(started.elapsed().as_secs_f64());
        }
        true
    }

    /// The held batch as Bind [Describe portal] Execute groups (Parse
    /// allowed only in front), each naming the portal its Bind created.
    fn groups(&self) -> Option<(Option<Span>, Vec<Group>)> {
        let mut groups: Vec<Group> = Vec::new();
        let mut portal: Option<&[u8]> = None;
        let mut statement: Option<&[u8]> = None;
        let mut open: Option<Group> = None;
        let mut parse = None;
        for (i, &(tag, s, e)) in self.held_tags.iter().enumerate() {
            let msg = &self.held[s..e];
            match tag {
                // Only the unnamed statement, parsed first: the origin gets
                // that Parse later, before the unnamed statement is used.
                b'P' if i == 0 && frontend::parse(msg)?.statement.is_empty() => {
                    parse = Some((s, e));
                }
                b'P' => return None,
                b'B' => {
                    if open.is_some() {
                        return None;
                    }
                    let bind = frontend::bind(msg)?;
                    portal = Some(bind.portal);
                    statement = Some(bind.statement);
                    open = Some(Group {
                        bind: (s, e),
                        describe: Describe::Nothing,
                        max_rows: 0,
                    });
                }
                b'D' => {
                    // Of the portal the Bind created, or of the statement
                    // it bound (after the Bind, as tokio-postgres sends).
                    let g = open.as_mut()?;
                    let (kind, name) = frontend::target(msg)?;
                    g.describe = match (kind, g.describe) {
                        (b'P', Describe::Nothing) if Some(name) == portal => Describe::Portal,
                        (b'S', Describe::Nothing) if Some(name) == statement => Describe::Statement,
                        _ => return None,
                    };
                }
                b'E' => {
                    let mut g = open.take()?;
                    let (name, max_rows) = frontend::execute(msg)?;
                    if Some(name) != portal || max_rows < 0 {
                        return None;
                    }
                    g.max_rows = max_rows;
                    groups.push(g);
                }
                _ => return None,
            }
        }
        (open.is_none() && !groups.is_empty()).then_some((parse, groups))
    }

    /// A held batch's Sync is forwarded (after [`Self::release_held`] when
    /// it was held from a quiet point). Sets up the watch and returns the
    /// probe to send after it, if any.
    pub(crate) fn sync_forwarded(
        &mut self,
        held: BytesMut,
        tags: Vec<(u8, usize, usize)>,
        quiet: bool,
    ) -> bool {
        self.batch_open = false;
        quiet && self.watch_batch(&held, &tags).unwrap_or(false)
    }

    /// Watch a single-statement batch forwarded at a quiet point; whether
    /// to send the probe after it.
    fn watch_batch(&mut self, held: &[u8], tags: &[(u8, usize, usize)]) -> Option<bool> {
        // One Bind [Describe portal] Execute(0) of the portal it binds,
        // perhaps after its Parse.
        let mut bind: Option<frontend::Bind<'_>> = None;
        let mut execs = 0;
        for &(tag, s, e) in tags {
            let msg = &held[s..e];
            match tag {
                b'B' if bind.is_none() => bind = Some(frontend::bind(msg)?),
                b'E' => {
                    execs += 1;
                    let (portal, max_rows) = frontend::execute(msg)?;
                    if max_rows != 0 || Some(portal) != bind.as_ref().map(|b| b.portal) {
                        return None;
                    }
                }
                b'D' => {
                    // Of its portal, or of its statement after the Bind.
                    let (kind, name) = frontend::target(msg)?;
                    let b = bind.as_ref()?;
                    let target = if kind == b'P' { b.portal } else { b.statement };
                    if !matches!(kind, b'P' | b'S') || name != target {
                        return None;
                    }
                }
                b'P' => {}
                _ => return None,
            }
        }
        let b = bind?;
        let stmt = self.statement(b.statement)?;
        if execs != 1 {
            return None;
        }
        if self.ctx.is_none() {
            let kinds = Arc::clone(&stmt.kinds);
            return Some(self.probe_after(true, &kinds));
        }
        let catalog = self.rt.catalog()?;
        let sql::Cacheable {
            shape,
            params: lifted,
        } = self.stmt_cacheable(&stmt, Some(&catalog))?;
        let ctx = self.servable()?.clone();
        execute_key(&mut self.key, ctx.class, stmt.id, b.tail);
        let params = rowkey::bind_params(b.tail);
        let utf8 = self.utf8();
        let param = |part: KeySource| match part {
            KeySource::Client(n) => {
                let i = usize::try_from(n).ok()?.checked_sub(1)?;
                let &(value, binary) = params.as_ref()?.get(i)?;
                let declared = stmt.param_types.get(i).copied().unwrap_or(0);
                Some((value?, binary, declared))
            }
            KeySource::Lifted(_) => None,
        };
        let formats = rowkey::result_formats(b.tail).unwrap_or_default();
        let deps = self.deps_of(
            &catalog,
            &ctx,
            &shape,
            formats.iter().all(|&f| f == 0),
            |part, column_type| match part {
                // A literal of the statement's text, as in a simple query.
                KeySource::Lifted(i) => {
                    rowkey::lifted_value(lifted.get(i)?, rowkey::key_kind(column_type)?, utf8)
                }
                KeySource::Client(_) => {
                    let (value, binary, declared) = param(part)?;
                    rowkey::bound_value(value, binary, declared, column_type, utf8)
                }
            },
            |part, column_type| match part {
                KeySource::Lifted(i) => {
                    rowkey::lifted_array(lifted.get(i)?, rowkey::key_kind(column_type)?, utf8)
                }
                KeySource::Client(_) => {
                    let (value, binary, declared) = param(part)?;
                    rowkey::bound_array(value, binary, declared, column_type, utf8)
                }
            },
        );
        self.watch_miss(&catalog, &shape, &stmt.sql, deps, formats);
        Some(false)
    }

    /// What an entry of `shape` depends on, table by table, with values
    /// from `value` (by source and column type), and the lookups that may
    /// narrow it after the capture; `None` for every change to its tables.
    /// `text`: the results are read in text format.
    fn deps_of(
        &self,
        catalog: &Catalog,
        ctx: &Ctx,
        shape: &sql::Shape,
        text: bool,
        value: impl Fn(KeySource, Oid) -> Option<KeyPart>,
        array: impl Fn(KeySource, Oid) -> Option<Vec<KeyPart>>,
    ) -> Option<Named> {
        let generation = catalog.snapshot.generation();
        let spec = match self.rt.dependencies.get(&(shape.fingerprint, generation)) {
            Some(spec) => spec,
            None => {
                let spec = deps::dependencies(
                    shape,
                    |oid| catalog.snapshot.table(oid),
                    |t| catalog.snapshot.plain_null_test(t),
                )
                .map(Arc::from);
                self.rt
                    .dependencies
                    .insert((shape.fingerprint, generation), spec.clone());
                spec
            }
        }?;
        // `=` must be the built-in one: pg_catalog searched first.
        let path = ctx.search_path.effective(&catalog.snapshot, &ctx.role);
        if path.schemas().next() != Some(PG_CATALOG) {
            return None;
        }
        let mut lookups = Vec::new();
        let mut members = Vec::new();
        let mut filtered = None;
        let mut named = Vec::with_capacity(spec.len());
        // One dependency per listed value, or the whole table.
        let listed =
            |table: Oid, list: &List, type_oid: Oid, depend: &dyn Fn(KeyPart) -> Depend| {
                let values = match list {
                    List::Each(sources) => sources
                        .iter()
                        .map(|&s| value(s, type_oid))
                        .collect::<Option<Vec<KeyPart>>>(),
                    List::Array(source) => array(*source, type_oid),
                };
                match values {
                    // No value (`= ANY('{}')`): no row can be read; changes
                    // that name no row still count.
                    Some(values) if values.is_empty() => vec![Depend::Coarse(table)],
                    Some(values) if values.len() <= MAX_LISTED => {
                        values.into_iter().map(depend).collect()
                    }
                    _ => vec![Depend::Table(table)],
                }
            };
        let limit = |source| match value(source, crate::catalog::oids::INT8)? {
            KeyPart::Int(n) => Some(n),
            KeyPart::Bytes(_) => None,
        };
        // A result kept in place needs text rows in UTF-8 (ADR 017).
        let live = text && self.utf8();
        for d in spec.iter() {
            // A filter chosen to keep the result in place gives way to the
            // dependency chosen before filters when it cannot be.
            let d = match d {
                Dependency::Filter {
                    instead: Some(instead),
                    layout,
                    ..
                } if !live || layout.as_ref().and_then(|l| l.bind(&limit)).is_none() => {
                    instead.as_ref()
                }
                d => d,
            };
            match d {
                Dependency::Table(t) => named.push(Depend::Table(*t)),
                Dependency::Row { table, parts } => named.push(
                    parts
                        .iter()
                        .map(|&(source, column_type)| value(source, column_type))
                        .collect::<Option<Vec<KeyPart>>>()
                        .map_or(Depend::Table(*table), |key| {
                            Depend::Row(*table, crate::cache::row_hash(*table, &key))
                        }),
                ),
                Dependency::Value {
                    table,
                    column,
                    source,
                    type_oid,
                    members: key,
                } => {
                    let any = crate::cache::any_value_hash(*table, column);
                    let depend = value(*source, *type_oid).map_or(Depend::Table(*table), |v| {
                        Depend::Value(*table, crate::cache::value_hash(*table, column, &v), any)
                    });
                    if let (Depend::Value(..), Some(key)) = (depend, key) {
                        members.push(Members {
                            table: *table,
                            any,
                            key: key.clone(),
                        });
                    }
                    named.push(depend);
                }
                Dependency::Rows {
                    table,
                    list,
                    type_oid,
                } => named.extend(listed(*table, list, *type_oid, &|key| {
                    Depend::Row(*table, crate::cache::row_hash(*table, &[key]))
                })),
                Dependency::Values {
                    table,
                    column,
                    list,
                    type_oid,
                    members: key,
                } => {
                    let any = crate::cache::any_value_hash(*table, column);
                    let depends = listed(*table, list, *type_oid, &|v| {
                        Depend::Value(*table, crate::cache::value_hash(*table, column, &v), any)
                    });
                    if let (Some(Depend::Value(..)), Some(key)) = (depends.first(), key) {
                        members.push(Members {
                            table: *table,
                            any,
                            key: key.clone(),
                        });
                    }
                    named.extend(depends);
                }
                Dependency::Filter {
                    table,
                    filter,
                    members: key,
                    layout,
                    ..
                } => {
                    let id = self.rt.cache.filter_id(*table);
                    let layout = layout.as_ref().and_then(|l| l.bind(&limit));
                    filtered = filter
                        .bind(*table, id, &|source, column_type| {
                            value(source, column_type)
                        })
                        .map(|filter| Filtered {
                            filter,
                            key: key.clone(),
                            layout,
                        });
                    named.push(Depend::Table(*table));
                }
                Dependency::Lookup {
                    table,
                    via,
                    via_key,
                    columns,
                } => {
                    if self.rt.lookups.is_some()
                        && let Some(sql) = lookup_of(catalog, *via, via_key, columns, &value)
                    {
                        lookups.push(Lookup { table: *table, sql });
                    }
                    named.push(Depend::Table(*table));
                }
            }
        }
        // A join is kept in place once a change dropped its entry: reading
        // its rows costs the origin a few statements per capture, which
        // entries never written (most of a long tail) do not repay.
        let join = if live
            && self.rt.lookups.is_some()
            && shape.tables.len() > 1
            && self.rt.cache.dropped_lately(&self.key)
        {
            self.join_plan(catalog, shape, &value, &limit)
        } else {
            None
        };
        Some(Named {
            depends: named,
            lookups,
            members,
            filter: filtered,
            join,
        })
    }

    /// `shape`'s join bound to this execution's values, when it can be
    /// kept in place (ADR 018).
    fn join_plan(
        &self,
        catalog: &Catalog,
        shape: &sql::Shape,
        value: &impl Fn(KeySource, Oid) -> Option<KeyPart>,
        limit: &impl Fn(KeySource) -> Option<i64>,
    ) -> Option<JoinPlan> {
        let generation = catalog.snapshot.generation();
        let key = (shape.fingerprint, generation);
        let spec = match self.rt.join_specs.get(&key) {
            Some(spec) => spec,
            None => {
                let spec = sql::joined::join_spec(
                    shape,
                    |oid| catalog.snapshot.table(oid),
                    |t| catalog.snapshot.plain_null_test(t),
                )
                .map(Arc::new);
                self.rt.join_specs.insert(key, spec.clone());
                spec
            }
        }?;
        let id = self.rt.cache.filter_id(spec.tables[spec.driving].oid);
        let filters = spec
            .tables
            .iter()
            .map(|t| t.filter.bind(t.oid, id, &|s, ty| value(s, ty)))
            .collect::<Option<Vec<_>>>()?;
        let limit = match spec.limit {
            None => None,
            Some(source) => Some(u64::try_from(limit(source)?).ok()?),
        };
        let names = spec
            .tables
            .iter()
            .map(|t| {
                let table = catalog.snapshot.table(t.oid)?;
                let schema = catalog.snapshot.schema(table.schema)?;
                Some((schema.name.clone(), table.name.clone()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(JoinPlan {
            spec,
            filters,
            limit,
            names,
            id,
        })
    }

    /// A cacheable request whose key is in `self.key` was just forwarded:
    /// watch its reply (for the grant and the miss latency) and capture it
    /// when the statement may get an entry.
    fn watch_miss(
        &mut self,
        catalog: &Catalog,
        shape: &sql::Shape,
        sql: &str,
        deps: Option<Named>,
        formats: Vec<i16>,
    ) {
        self.rt.metrics.cache_misses.inc();
        let admitted = !CacheRuntime::skip_hinted(sql)
            && !self.rt.catalog_stale()
            && self
                .rt
                .allowed(catalog, &shape.tables, sql, shape.fingerprint);
        let named = deps.unwrap_or_default();
        let capture = if admitted {
            self.rt.cache.begin_capture(
                &self.key,
                &shape.tables,
                (!named.depends.is_empty()).then_some(named.depends.as_slice()),
            )
        } else {
            None
        };
        self.watch = Some(Watch {
            shape: shape.fingerprint,
            capture: capture.map(|c| (c, BytesMut::with_capacity(512))),
            lookups: named.lookups,
            join: named.join,
            members: named.members,
            filter: named.filter,
            formats,
            errored: false,
            started: Instant::now(),
        });
    }

    /// Take the held batch (for [`Self::sync_forwarded`]).
    pub(crate) fn take_held(&mut self) -> (BytesMut, Vec<(u8, usize, usize)>) {
        (
            std::mem::take(&mut self.held),
            std::mem::take(&mut self.held_tags),
        )
    }

    // ---------------------------------------------------------------
    // Origin side
    // ---------------------------------------------------------------

    /// Bytes of the origin's reply that are relayed to the client: the
    /// watched request's reply is captured.
    pub(crate) fn relayed(&mut self, bytes: &[u8]) {
        if let Some(w) = &mut self.watch
            && let Some((_, buf)) = &mut w.capture
        {
            if buf.len() + bytes.len() > self.rt.config.max_result_size as usize + 4096 {
                if let Some((capture, _)) = w.capture.take() {
                    self.rt.cache.abandon_capture(capture);
                    self.rt
                        .metrics
                        .cache_populations
                        .get_or_create(&PopulationLabels { result: "failed" })
                        .inc();
                }
            } else {
                buf.extend_from_slice(bytes);
            }
        }
    }

    /// A backend message starts. Returns true when it is to be swallowed
    /// (part of the probe's reply); then it is whole in `msg`.
    pub(crate) fn origin_message(&mut self, tag: u8, msg: &[u8]) -> bool {
        if let Probe::Receiving(row) = &mut self.probe {
            match tag {
                // Notifications and parameter changes are the session's;
                // notices in the reply (statement logging) are the probe's.
                b'A' | b'S' => {}
                b'D' => {
                    *row = data_row(msg);
                    return true;
                }
                b'E' => {
                    *row = None;
                    return true;
                }
                b'Z' => {
                    let row = row.take();
                    self.probe = Probe::Idle;
                    self.probe_done(row);
                    return true;
                }
                _ => return true,
            }
        }
        match tag {
            b'1' => {
                if let Some(pp) = self.pending_parses.pop_front() {
                    let swallow = pp.swallow;
                    if !pp.closed {
                        self.statements.insert(pp.name, pp.stmt);
                    }
                    return swallow;
                }
            }
            b'3' if self.swallow_close > 0 => {
                self.swallow_close -= 1;
                return true;
            }
            b'E' => {
                // Messages after the failing one are skipped: no
                // ParseComplete or CloseComplete will come for them.
                self.pending_parses.clear();
                self.swallow_close = 0;
                if let Some(w) = &mut self.watch {
                    w.errored = true;
                }
            }
            b'S' => {
                if let Some((name, value)) = parameter_status(msg) {
                    match name {
                        b"standard_conforming_strings" => self.reported_scs = Some(value.to_vec()),
                        b"client_encoding" => self.reported_encoding = Some(value.to_vec()),
                        b"server_encoding" => self.server_encoding = Some(value.to_vec()),
                        _ => {}
                    }
                }
                self.settings_changed();
            }
            _ => {}
        }
        false
    }

    /// A `ReadyForQuery` that answers a client request was relayed.
    pub(crate) fn ready_for_query(&mut self, status: u8) {
        self.txn_idle = status == b'I';
        if let Some(e) = self.inflight.pop_front() {
            self.txn.merge(e);
        }
        if self.txn_idle {
            // Committed or rolled back: either way, apply (a rollback
            // only costs entries).
            self.end_of_transaction();
        }
        if let Some(w) = self.watch.take() {
            self.watch_done(w);
        }
        if let Probe::Waiting(n) = &mut self.probe {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.probe = Probe::Receiving(None);
            }
        }
    }

    fn end_of_transaction(&mut self) {
        if self
            .ticket
            .as_ref()
            .is_some_and(|t| self.rt.cache.passed(t))
        {
            self.ticket = None;
        }
        let txn = std::mem::take(&mut self.txn);
        let stream = self.rt.publication.is_some();
        if !txn.written.is_empty() && !txn.ddl && stream {
            // The change stream will say which rows changed (dropping the
            // tables here would drop the entries of every other row); until
            // it has, this session reads nothing from the cache.
            self.ticket = Some(self.rt.cache.ticket());
            self.rt.fence_wanted.notify_one();
        } else if !txn.written.is_empty() {
            // No change stream (or DDL): at once, so that every session
            // reads the write from here on.
            self.rt.cache.invalidate(&txn.written);
        }
        if txn.ddl {
            self.rt.catalog_changed();
        }
    }

    /// Narrow the capture's value dependencies on `m.table` to the rows its
    /// result holds (their keys read from the output as the client asked
    /// for it: text, or binary per `formats`).
    fn narrow_members(&self, capture: &mut Capture, m: &Members, formats: &[i16], rows: &[u8]) {
        if let Some(hashes) = self.member_hashes(m.table, &m.key, formats, rows) {
            self.rt
                .cache
                .narrow_members(capture, m.table, m.any, &hashes);
        }
    }

    /// The [`crate::cache::row_hash`]es of the rows of `table` a captured
    /// result holds, its key at output `key` (read as the client asked for
    /// it: text, or binary per `formats`); `None` beyond [`MAX_MEMBERS`].
    fn member_hashes(
        &self,
        table: Oid,
        key: &deps::OutputKey,
        formats: &[i16],
        rows: &[u8],
    ) -> Option<Vec<u64>> {
        let positions: Vec<usize> = key.iter().map(|&(p, _)| p).collect();
        let fields = response::fields_at(rows, &positions)?;
        if fields.len() > MAX_MEMBERS {
            return None;
        }
        let utf8 = self.utf8();
        fields
            .iter()
            .map(|row| {
                let key = row
                    .iter()
                    .zip(key)
                    .map(|(field, &(p, ty))| {
                        let binary = rowkey::binary_result(formats, p);
                        rowkey::bound_value((*field)?, binary, ty.0, ty, utf8)
                    })
                    .collect::<Option<Vec<KeyPart>>>()?;
                Some(crate::cache::row_hash(table, &key))
            })
            .collect()
    }

    fn watch_done(&mut self, w: Watch) {
        let m = &self.rt.metrics;
        m.cache_miss_duration
            .observe(w.started.elapsed().as_secs_f64());
        if !w.errored
            && let Some(ctx) = &self.ctx
        {
            // Refresh the grant when less than half its time is left (a
            // write to the shared map per miss would cost every miss).
            let now = self.rt.cache.coarse_now();
            let ttl = self.rt.config.role_ttl.as_secs();
            let epoch = self.rt.ddl_epoch.load(Ordering::Acquire);
            let fresh = self
                .grants
                .get(&w.shape)
                .is_some_and(|&(until, e)| e == epoch && until >= now + ttl / 2);
            if !fresh {
                self.rt.cache.grant(&ctx.role, w.shape);
                // The coarse clock lags by up to a second: end a second early.
                self.grants
                    .insert(w.shape, ((now + ttl).saturating_sub(1), epoch));
            }
        }
        let Some((capture, buf)) = w.capture else {
            return;
        };
        let result = if w.errored {
            Err(response::Rejected::Unexpected(b'E'))
        } else {
            response::parse_reply(&buf)
        };
        let mut capture = capture;
        if let Ok(r) = &result {
            for m in &w.members {
                self.narrow_members(&mut capture, m, &w.formats, r.rows());
            }
            if let Some(f) = w.filter {
                let text = w.formats.iter().all(|&format| format == 0);
                let live = match f.layout {
                    Some(layout) if text && self.utf8() => {
                        self.rt
                            .cache
                            .narrow_live(&mut capture, f.filter.clone(), layout, &f.key, r)
                    }
                    _ => false,
                };
                if !live
                    && let Some(hashes) =
                        self.member_hashes(f.filter.table, &f.key, &w.formats, r.rows())
                {
                    self.rt.cache.narrow_filter(&mut capture, f.filter, &hashes);
                }
            }
        }
        match result {
            Ok(r) if w.lookups.is_empty() && w.join.is_none() => self.rt.store(capture, w.shape, r),
            Ok(r) => {
                let job = Job {
                    capture,
                    shape: w.shape,
                    result: r,
                    lookups: w.lookups,
                    join: w.join,
                };
                // The lookup task stores it; when its queue is full, it is
                // stored as it is.
                let unsent = match &self.rt.lookups {
                    Some(tx) => match tx.try_send(job) {
                        Ok(()) => None,
                        Err(
                            tokio::sync::mpsc::error::TrySendError::Full(job)
                            | tokio::sync::mpsc::error::TrySendError::Closed(job),
                        ) => Some(job),
                    },
                    None => Some(job),
                };
                if let Some(job) = unsent {
                    for _ in &job.lookups {
                        self.rt.lookup_done("queue_full");
                    }
                    if job.join.is_some() {
                        self.rt.join_done("queue_full");
                    }
                    self.rt.store(job.capture, job.shape, job.result);
                }
            }
            Err(reason) => {
                debug!(%reason, "cache: reply not cached");
                self.rt.cache.abandon_capture(capture);
                m.cache_populations
                    .get_or_create(&PopulationLabels { result: "failed" })
                    .inc();
            }
        }
    }

    fn probe_done(&mut self, row: Option<Vec<Option<Vec<u8>>>>) {
        if self.probe_epoch != self.epoch {
            // Something sent after the probe may have changed a setting.
            return;
        }
        let parsed = row.and_then(|r| {
            let text = |i: usize| -> Option<String> {
                r.get(i)?
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            let same_role = text(0)? == "t";
            let role = text(1)?;
            let path = SearchPath::parse(&text(2)?).ok()?;
            let scs = text(3)? == "on";
            let temp = text(4)? == "t";
            let min_messages = text(5)?;
            let settings = text(6)?;
            Some((same_role, role, path, scs, temp, min_messages, settings))
        });
        let Some((same_role, role, search_path, scs, temp, min_messages, settings)) = parsed else {
            debug!("cache: session settings could not be read; this session is not served");
            self.bypass = true;
            self.bypass_for_good = true;
            return;
        };
        // Statement logging sent to the client (client_min_messages log or
        // debug) comes with every statement: a hit could not repeat it.
        let logs_to_client = min_messages == "log" || min_messages.starts_with("debug");
        self.bypass = !same_role || logs_to_client;
        self.maybe_temp = temp;
        // The role is part of the class: `$user` in the search_path, and
        // entries are never shared across roles.
        let class_text = format!(
            "{role}\u{1e}{}\u{1e}{scs}\u{1e}{temp}\u{1e}{min_messages}\u{1e}{settings}",
            text_of(&search_path),
        );
        let class = self.rt.cache.class_id(&class_text);
        if self.ctx.as_ref().is_none_or(|c| *c.role != *role) {
            self.grants.clear();
        }
        self.ctx = Some(Ctx {
            class,
            role: Arc::from(role),
            search_path,
            standard_conforming_strings: scs,
            temp,
        });
    }
}

fn text_of(path: &SearchPath) -> String {
    format!("{path:?}")
}

/// `Close` of the unnamed statement.
const CLOSE_UNNAMED: &[u8] = b"C\0\0\0\x06S\0";

/// Name and value of a `ParameterStatus` (whole or at least its strings).
fn parameter_status(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = msg.get(5..)?;
    let nul = body.iter().position(|&b| b == 0)?;
    let rest = &body[nul + 1..];
    let end = rest.iter().position(|&b| b == 0)?;
    Some((&body[..nul], &rest[..end]))
}

/// The fields of a whole `DataRow` message.
fn data_row(msg: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    let body = msg.get(5..)?;
    let n = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut pos = 2;
    let mut fields = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        if len < 0 {
            fields.push(None);
        } else {
            let end = pos + usize::try_from(len).ok()?;
            fields.push(Some(body.get(pos..end)?.to_vec()));
            pos = end;
        }
    }
    Some(fields)
}
