//! The cache as seen from the proxy: the shared runtime (result store,
//! analyzer, catalog kept loaded) and each session's view of it (its
//! settings class, prepared statements, the request whose reply is being
//! captured, writes waiting for their transaction to end).
//!
//! Decisions only; the session loop ([`super::session`]) does the I/O and
//! calls in with whole messages (ADR 011).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::sync::Notify;
use tokio_postgres::NoTls;
use tracing::{debug, info, warn};

use crate::admin::{CacheSource, Metrics, PopulationLabels};
use crate::cache::response::{self, READY_IDLE};
use crate::cache::{Capture, KeyRef, Limits, ResultCache, Written};
use crate::catalog::{self, EffectivePath, Oid, RelKind, SearchPath, Snapshot};
use crate::config::{CacheConfig, CacheMode, Config};
use crate::protocol::frontend;
use crate::sql::{
    self, Analyzer, Context as SqlContext, Session as SqlSession, StatementKind, Verdict, Writes,
};

/// The comment that keeps a statement away from the cache.
const SKIP_HINTS: [&str; 2] = ["pgcache: skip", "pgcache:skip"];

/// Hit replies queued for a client that is not reading stop the framing of
/// its further requests at this size.
pub(crate) const HIT_BACKLOG: usize = 256 * 1024;

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
    pg_catalog.current_setting('client_min_messages'), \
    pg_catalog.current_setting('gin_fuzzy_search_limit'), \
    pg_catalog.current_setting('server_encoding'))";

/// The catalog as the cache uses it.
struct Catalog {
    snapshot: Snapshot,
    /// `cache.allow_tables` resolved (`None` = every table).
    allow: Option<HashSet<Oid>>,
    deny: HashSet<Oid>,
    /// Lower-cased names of volatile functions outside `pg_catalog`.
    user_functions: HashSet<String>,
}

/// Shared by every session.
pub(crate) struct CacheRuntime {
    pub(crate) cache: ResultCache,
    analyzer: Analyzer,
    config: CacheConfig,
    metrics: Arc<Metrics>,
    catalog: RwLock<Option<Arc<Catalog>>>,
    /// DDL committed through the proxy: no new captures until the catalog
    /// is reloaded (names may resolve differently now).
    catalog_stale: AtomicBool,
    reload: Notify,
    /// `pg_query` fingerprints of `cache.allow_statements`.
    allow_statements: HashSet<u64>,
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
        let allow_statements = c
            .allow_statements
            .iter()
            .filter_map(|s| match pg_query::fingerprint(s, pg_query::ParserOptions::DEFAULT, pg_query::FingerprintOptions::FULL_RELNAME) {
                Ok(f) => Some(f.value),
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
            }),
            analyzer: Analyzer::new(16_384),
            config: c.clone(),
            metrics: Arc::clone(&metrics),
            catalog: RwLock::new(None),
            catalog_stale: AtomicBool::new(false),
            reload: Notify::new(),
            allow_statements,
        });
        metrics.set_cache_source(Arc::clone(&rt) as Arc<dyn CacheSource>);
        Some(rt)
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
            .user_volatile_functions()
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

    /// Keep the catalog loaded: at start, after DDL through the proxy, and
    /// every few minutes. Also sweeps stale entries. Runs until aborted.
    pub(crate) async fn maintain(self: Arc<Self>, origin: crate::config::OriginConfig) {
        let mut backoff = Duration::from_millis(200);
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            let stale_before = self.catalog_stale.load(Ordering::Acquire);
            match load_catalog(&origin).await {
                Ok(snapshot) => {
                    let tables = snapshot.tables().count();
                    self.install(snapshot);
                    if stale_before {
                        // DDL seen before this load started is reflected now.
                        let _ = self.catalog_stale.compare_exchange(
                            true,
                            false,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        );
                    }
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

    fn catalog_changed(&self) {
        self.catalog_stale.store(true, Ordering::Release);
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
                    || pg_query::fingerprint(
                        sql,
                        pg_query::ParserOptions::DEFAULT,
                        pg_query::FingerprintOptions::FULL_RELNAME,
                    )
                    .is_ok_and(|f| self.allow_statements.contains(&f.value))
            }
        }
    }
}

async fn load_catalog(origin: &crate::config::OriginConfig) -> Result<Snapshot, String> {
    let pg = origin.pg_config().map_err(|e| e.to_string())?;
    let limit = origin.connect_timeout.max(Duration::from_secs(1)) * 2;
    let (client, connection) = tokio::time::timeout(limit, pg.connect(NoTls))
        .await
        .map_err(|_| format!("no answer within {} s", limit.as_secs()))?
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "catalog connection ended");
        }
    });
    let loaded = catalog::load(&client, None)
        .await
        .map_err(|e| e.to_string());
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
    let mut snapshot = loaded?;
    snapshot.set_publication_required(false);
    Ok(snapshot)
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
    /// Statement text and declared parameter types, length-prefixed: the
    /// request part of cache keys for its executions.
    prefix: Box<[u8]>,
    kinds: Arc<[StatementKind]>,
    /// The settings the origin parsed it under are known (part of `prefix`);
    /// otherwise its executions are never cached.
    parse_env_known: bool,
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
    errored: bool,
    started: Instant,
}

/// Where a held message lies in the held bytes.
type Span = (usize, usize);

/// One group of a held extended-protocol batch.
struct Group {
    bind: Span,
    describe: bool,
    max_rows: i32,
}

/// A session's view of the cache.
pub(crate) struct SessionCache {
    rt: Arc<CacheRuntime>,
    ctx: Option<Ctx>,
    /// The role may differ from the session user (`SET ROLE`, `SET SESSION
    /// AUTHORIZATION`): nothing is served or captured.
    bypass: bool,
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
    /// Writes of the current transaction, applied when it ends.
    written: Written,
    /// DDL in the current transaction.
    ddl: bool,
    txn_idle: bool,
    /// Bumped whenever the settings may have changed; a probe answer read
    /// under an older epoch is thrown away.
    epoch: u64,
    probe_epoch: u64,
    /// `standard_conforming_strings` and `client_encoding` as last reported
    /// by ParameterStatus: how the origin reads a Parse's text.
    reported_scs: Option<Vec<u8>>,
    reported_encoding: Option<Vec<u8>>,
    key: Vec<u8>,
    /// Last `ReadyForQuery` status was idle and this session's grants memo.
    grants: HashMap<u64, Instant>,
}

impl Drop for SessionCache {
    fn drop(&mut self) {
        // A COMMIT whose reply never arrived may still have committed.
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
            ctx: None,
            bypass: false,
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
            written: Written::default(),
            ddl: false,
            txn_idle: false,
            epoch: 0,
            probe_epoch: 0,
            reported_scs: None,
            reported_encoding: None,
            key: Vec::new(),
            grants: HashMap::new(),
        }
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

    fn servable(&self) -> Option<&Ctx> {
        if self.bypass {
            return None;
        }
        self.ctx.as_ref()
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
        let now = Instant::now();
        if let Some(&until) = self.grants.get(&shape)
            && now < until
        {
            return true;
        }
        let Some(ctx) = &self.ctx else {
            return false;
        };
        match self.rt.cache.granted(&ctx.role, shape) {
            Some(until) => {
                if self.grants.len() > 4096 {
                    self.grants.clear();
                }
                self.grants.insert(shape, until);
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
        let started = Instant::now();
        let Some(sql) = frontend::query(msg) else {
            return false;
        };
        self.key.clear();
        self.key.push(b'Q');
        self.key.extend_from_slice(&class.to_be_bytes());
        self.key.extend_from_slice(sql);
        let Some(entry) = self.rt.cache.get(KeyRef(&self.key)) else {
            return false;
        };
        if entry.result.row_description.is_none() || !self.granted(entry.shape) {
            return false;
        }
        response::write_hit(out, &entry.result, false, true);
        out.put_slice(READY_IDLE);
        // A simple query destroys the unnamed statement.
        self.statements.remove(&b""[..]);
        self.virtual_unnamed = None;
        self.close_unnamed = true;
        self.rt.metrics.cache_hits.inc();
        self.rt
            .metrics
            .cache_hit_duration
            .observe(started.elapsed().as_secs_f64());
        true
    }

    /// A `Query` about to be forwarded. Returns the probe to send after it,
    /// if the session's settings are to be read.
    pub(crate) fn query_forwarded(&mut self, msg: &[u8], idle: bool) -> Option<&'static str> {
        let quiet = self.quiet(idle);
        self.statements.remove(&b""[..]);
        self.virtual_unnamed = None;
        self.close_unnamed = false;
        let sql = frontend::query(msg).and_then(|s| std::str::from_utf8(s).ok());
        let Some(sql) = sql else {
            self.unknown_effects();
            return None;
        };
        let catalog = self.rt.catalog();
        let ctx = self.servable().cloned();
        let (kinds, cacheable) = match (&catalog, &ctx) {
            (Some(catalog), Some(ctx)) => {
                let a = self.analyze(catalog, ctx, sql);
                let cacheable = match &a.verdict {
                    Verdict::Cacheable(c) => Some(Arc::clone(&c.shape)),
                    Verdict::NotCacheable(_) => None,
                };
                (a.kinds, cacheable)
            }
            _ => (self.kinds(sql), None),
        };
        self.account(sql, &kinds, cacheable.is_some(), catalog.as_deref());
        if let (Some(shape), Some(catalog), Some(ctx), true) = (&cacheable, &catalog, &ctx, quiet) {
            self.rt.metrics.cache_misses.inc();
            let capture = if !CacheRuntime::skip_hinted(sql)
                && !self.rt.catalog_stale.load(Ordering::Acquire)
                && self
                    .rt
                    .allowed(catalog, &shape.tables, sql, shape.fingerprint)
            {
                self.key.clear();
                self.key.push(b'Q');
                self.key.extend_from_slice(&ctx.class.to_be_bytes());
                self.key.extend_from_slice(sql.as_bytes());
                self.rt.cache.begin_capture(&self.key, &shape.tables)
            } else {
                None
            };
            self.watch = Some(Watch {
                shape: shape.fingerprint,
                capture: capture.map(|c| (c, BytesMut::new())),
                errored: false,
                started: Instant::now(),
            });
        }
        self.probe_after(quiet, &kinds)
    }

    /// Send the probe after a plain `SELECT` forwarded at a quiet point
    /// while the settings are unknown.
    fn probe_after(&mut self, quiet: bool, kinds: &[StatementKind]) -> Option<&'static str> {
        if quiet && self.ctx.is_none() && kinds == [StatementKind::Select] {
            self.probe = Probe::Waiting(1);
            self.probe_epoch = self.epoch;
            return Some(PROBE_SQL);
        }
        None
    }

    /// Account for statements that will run: their writes (applied when the
    /// transaction ends) and whether they may change settings.
    fn account(
        &mut self,
        sql: &str,
        kinds: &[StatementKind],
        cacheable: bool,
        catalog: Option<&Catalog>,
    ) {
        let empty = HashSet::new();
        let functions = catalog.map_or(&empty, |c| &c.user_functions);
        let scs = self
            .ctx
            .as_ref()
            .is_none_or(|c| c.standard_conforming_strings);
        let writes = if cacheable {
            Writes::Nothing
        } else {
            sql::writes(sql, kinds, scs, functions)
        };
        let written = self.resolve(&writes, catalog);
        self.written.add(&written);
        if kinds.iter().any(|k| {
            matches!(
                k,
                StatementKind::Ddl(_)
                    | StatementKind::SelectInto { .. }
                    | StatementKind::Utility(_)
            )
        }) {
            self.ddl = true;
        }
        if kinds
            .iter()
            .any(|k| matches!(k, StatementKind::Deallocate | StatementKind::Discard { .. }))
        {
            self.statements.clear();
            for pp in self.pending_parses.iter_mut() {
                pp.closed = true;
            }
            self.virtual_unnamed = None;
        }
        let harmless_select = kinds == [StatementKind::Select]
            && !sql.to_ascii_lowercase().contains("set_config")
            && !sql::mentions_any(sql, functions);
        let harmless = cacheable
            || harmless_select
            || kinds
                .iter()
                .all(|k| matches!(k, StatementKind::Transaction(_)));
        if !harmless {
            self.settings_changed();
        }
    }

    fn unknown_effects(&mut self) {
        self.written.all = true;
        self.settings_changed();
    }

    fn settings_changed(&mut self) {
        self.ctx = None;
        self.epoch += 1;
    }

    /// Writes to tables named in a statement → the tables they are.
    fn resolve(&self, writes: &Writes, catalog: Option<&Catalog>) -> Written {
        let mut out = Written::default();
        let names = match writes {
            Writes::Nothing => return out,
            Writes::Unknown => {
                out.all = true;
                return out;
            }
            Writes::Tables(names) => names,
        };
        let Some(catalog) = catalog else {
            out.all = true;
            return out;
        };
        let snapshot = &catalog.snapshot;
        for n in names {
            let table = match &n.schema {
                Some(s) => snapshot
                    .schema_by_name(s)
                    .and_then(|sc| snapshot.table_in(sc.oid, &n.name)),
                None => self.ctx.as_ref().and_then(|ctx| {
                    let path = ctx.search_path.effective(snapshot, &ctx.role);
                    path.schemas()
                        .find_map(|schema| snapshot.table_in(schema, &n.name))
                }),
            };
            match table {
                Some(t)
                    if t.kind == RelKind::Table
                        && !t.has_children
                        && !t.has_triggers
                        && !t.is_partition =>
                {
                    out.tables.push(t.oid)
                }
                _ => {
                    out.all = true;
                    return out;
                }
            }
        }
        out
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
    fn parse_env(&self, idle: bool) -> Option<Vec<u8>> {
        match (&self.reported_scs, &self.reported_encoding) {
            (Some(scs), Some(enc)) if idle && self.txn_idle && !self.batch_open => {
                Some([scs.as_slice(), b"\0", enc.as_slice()].concat())
            }
            _ => None,
        }
    }

    fn make_stmt(&self, p: &frontend::Parse<'_>, env: Option<Vec<u8>>) -> Arc<Stmt> {
        let sql: Arc<str> = Arc::from(String::from_utf8_lossy(p.query).as_ref());
        let kinds = self.kinds(&sql);
        let mut prefix = Vec::with_capacity(p.query.len() + p.param_types.len() + 64);
        match &env {
            Some(env) => {
                prefix.push(1);
                prefix.extend_from_slice(&(env.len() as u32).to_be_bytes());
                prefix.extend_from_slice(env);
            }
            None => prefix.push(0),
        }
        prefix.extend_from_slice(&(p.query.len() as u32).to_be_bytes());
        prefix.extend_from_slice(p.query);
        prefix.extend_from_slice(&(p.param_types.len() as u32).to_be_bytes());
        prefix.extend_from_slice(p.param_types);
        Arc::new(Stmt {
            sql,
            prefix: prefix.into_boxed_slice(),
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
        if self.virtual_unnamed.is_some() {
            let uses_unnamed = match tag {
                b'B' => frontend::bind(msg).is_some_and(|b| b.statement.is_empty()),
                b'D' | b'C' => frontend::target(msg) == Some((b'S', &b""[..])),
                _ => false,
            };
            if uses_unnamed && let Some((parse, stmt)) = self.virtual_unnamed.take() {
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
            _ => self.batch_open = true,
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

    fn stmt_cacheable(&self, stmt: &Stmt, catalog: Option<&Catalog>) -> Option<Arc<sql::Shape>> {
        if !stmt.parse_env_known {
            return None;
        }
        let (catalog, ctx) = (catalog?, self.servable()?);
        match self.analyze(catalog, ctx, &stmt.sql).verdict {
            Verdict::Cacheable(c) => Some(c.shape),
            Verdict::NotCacheable(_) => None,
        }
    }

    /// Sync of a held batch: serve it from the cache into `out`, or return
    /// false (then [`Self::sync_forwarded`] follows).
    pub(crate) fn batch_hit(&mut self, out: &mut BytesMut) -> bool {
        let started = Instant::now();
        let Some(ctx) = self.servable() else {
            return false;
        };
        let class = ctx.class;
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
            let stmt = match (&parsed, bind.statement.is_empty()) {
                (Some(stmt), true) => Arc::clone(stmt),
                _ => match self.statements.get(bind.statement) {
                    Some(stmt) => Arc::clone(stmt),
                    None => return false,
                },
            };
            self.key.clear();
            self.key.push(b'E');
            self.key.extend_from_slice(&class.to_be_bytes());
            self.key.extend_from_slice(&stmt.prefix);
            self.key.extend_from_slice(bind.tail);
            let Some(entry) = self.rt.cache.get(KeyRef(&self.key)) else {
                return false;
            };
            let fits = g.max_rows == 0 || entry.result.row_count < g.max_rows as u64;
            if !fits || (g.describe && entry.result.row_description.is_none()) {
                return false;
            }
            if !self.granted(entry.shape) {
                return false;
            }
            entries.push(entry);
        }
        if let (Some((s, e)), Some(stmt)) = (parse, parsed) {
            out.put_slice(response::PARSE_COMPLETE);
            self.virtual_unnamed = Some((self.held[s..e].to_vec(), Arc::clone(&stmt)));
            self.statements.insert(Vec::new(), stmt);
        }
        for (g, entry) in groups.iter().zip(&entries) {
            response::write_hit(out, &entry.result, true, g.describe);
        }
        out.put_slice(READY_IDLE);
        self.held.clear();
        self.held_tags.clear();
        let n = entries.len() as u64;
        self.rt.metrics.cache_hits.inc_by(n);
        self.rt
            .metrics
            .cache_hit_duration
            .observe(started.elapsed().as_secs_f64());
        true
    }

    /// The held batch as Bind [Describe portal] Execute groups (Parse
    /// allowed only in front), each naming the portal its Bind created.
    fn groups(&self) -> Option<(Option<Span>, Vec<Group>)> {
        let mut groups: Vec<Group> = Vec::new();
        let mut portal: Option<&[u8]> = None;
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
                    portal = Some(frontend::bind(msg)?.portal);
                    open = Some(Group {
                        bind: (s, e),
                        describe: false,
                        max_rows: 0,
                    });
                }
                b'D' => {
                    let g = open.as_mut()?;
                    let (kind, name) = frontend::target(msg)?;
                    if kind != b'P' || Some(name) != portal || g.describe {
                        return None;
                    }
                    g.describe = true;
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
    ) -> Option<&'static str> {
        self.batch_open = false;
        if !quiet {
            return None;
        }
        // One Bind [Describe] Execute(0), perhaps after its Parse.
        let mut bind = None;
        let mut execs = 0;
        for &(tag, s, e) in &tags {
            match tag {
                b'B' if bind.is_none() => bind = Some((s, e)),
                b'E' => {
                    execs += 1;
                    if frontend::execute(&held[s..e]).is_none_or(|(_, n)| n != 0) {
                        return None;
                    }
                }
                b'P' | b'D' => {}
                _ => return None,
            }
        }
        let (s, e) = bind?;
        let b = frontend::bind(&held[s..e])?;
        let stmt = self.statement(b.statement)?;
        if execs != 1 {
            return None;
        }
        if self.ctx.is_none() {
            let kinds = Arc::clone(&stmt.kinds);
            return self.probe_after(true, &kinds);
        }
        let catalog = self.rt.catalog()?;
        let shape = self.stmt_cacheable(&stmt, Some(&catalog))?;
        let class = self.servable()?.class;
        self.rt.metrics.cache_misses.inc();
        let capture = if !CacheRuntime::skip_hinted(&stmt.sql)
            && !self.rt.catalog_stale.load(Ordering::Acquire)
            && self
                .rt
                .allowed(&catalog, &shape.tables, &stmt.sql, shape.fingerprint)
        {
            self.key.clear();
            self.key.push(b'E');
            self.key.extend_from_slice(&class.to_be_bytes());
            self.key.extend_from_slice(&stmt.prefix);
            self.key.extend_from_slice(b.tail);
            self.rt.cache.begin_capture(&self.key, &shape.tables)
        } else {
            None
        };
        self.watch = Some(Watch {
            shape: shape.fingerprint,
            capture: capture.map(|c| (c, BytesMut::new())),
            errored: false,
            started: Instant::now(),
        });
        None
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
                b'A' | b'N' | b'S' => {}
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
        if self.txn_idle {
            self.end_of_transaction();
        } else if status == b'E' {
            // Writes of a failed transaction block roll back; keep them
            // anyway (a savepoint may have kept some): applied at its end.
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
        if !self.written.is_empty() {
            self.rt.cache.invalidate(&self.written);
            self.written.clear();
        }
        if std::mem::take(&mut self.ddl) {
            self.rt.catalog_changed();
        }
    }

    fn watch_done(&mut self, w: Watch) {
        let m = &self.rt.metrics;
        m.cache_miss_duration
            .observe(w.started.elapsed().as_secs_f64());
        if !w.errored
            && let Some(ctx) = &self.ctx
        {
            self.rt.cache.grant(&ctx.role, w.shape);
            self.grants.remove(&w.shape);
        }
        let Some((capture, buf)) = w.capture else {
            return;
        };
        let result = if w.errored {
            Err(response::Rejected::Unexpected(b'E'))
        } else {
            response::parse_reply(&buf)
        };
        let stored = match result {
            Ok(r) => self.rt.cache.finish_capture(capture, w.shape, r).is_some(),
            Err(reason) => {
                debug!(%reason, "cache: reply not cached");
                self.rt.cache.abandon_capture(capture);
                false
            }
        };
        let label = if stored { "ok" } else { "failed" };
        m.cache_populations
            .get_or_create(&PopulationLabels { result: label })
            .inc();
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
            let settings = text(5)?;
            Some((same_role, role, path, scs, temp, settings))
        });
        let Some((same_role, role, search_path, scs, temp, settings)) = parsed else {
            debug!("cache: session settings could not be read; this session is not served");
            self.bypass = true;
            return;
        };
        self.bypass = !same_role;
        let class_text = format!(
            "{}\u{1e}{}\u{1e}{}\u{1e}{}",
            text_of(&search_path),
            scs,
            temp,
            settings
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

/// A `Query` message for `sql`.
pub(crate) fn query_message(out: &mut BytesMut, sql: &str) {
    out.put_u8(b'Q');
    out.put_u32((sql.len() + 5) as u32);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
}
