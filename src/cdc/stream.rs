//! The change stream at work: publication and slot, the replication
//! connection (`pgwire-replication`), applying each committed transaction to
//! the cache, restarts with backoff, and the position reader that fences new
//! entries and measures lag. The I/O edge of [`super`]; what a transaction
//! means is decided by [`super::apply`].
//!
//! Two loops run side by side:
//!
//! - **stream**: ensures the publication (and a persistent slot when one is
//!   configured), opens a replication connection, creates a temporary slot on
//!   it (dropped by the server when the connection ends), starts pgoutput
//!   and applies transactions in commit order: the tables a transaction
//!   changed are invalidated in one step, then the applied position moves to
//!   its commit. Keepalives outside a transaction move the applied position
//!   to the server's end of WAL. Any failure: stop serving, drop every entry,
//!   reconnect with backoff.
//! - **position**: on its own connection, reads `pg_current_wal_insert_lsn()`
//!   whenever entries or tickets wait for a fence (at most every
//!   [`MIN_GAP`]) and every [`POLL`] otherwise. The position settles what
//!   waited, and is remembered with the time it was read: lag is how long
//!   the oldest position not yet applied has been known. Serving is on only
//!   while both connections are up, the applier has reached a position read
//!   after the stream (re)started, and the lag is within `cdc.max_lag`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgwire_replication::{
    Lsn as WireLsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig,
};
use tokio::sync::Notify;
use tracing::{info, warn};

use super::apply::{
    Applier, DDL_MESSAGE_PREFIX, MAX_FILTER_TESTS, NewRows, XidSnapshot, filter_hits,
};
use super::pgoutput::Relation;
use super::wal::{Lsn, Timestamp};
use crate::admin::{DropLabels, Metrics};
use crate::cache::{Joined, Live, ResultCache, Written};
use crate::catalog::Oid;
use crate::check::quote_ident;
use crate::config::{CdcConfig, OriginConfig};

/// The position is read at least this often (lag resolution).
const POLL: Duration = Duration::from_millis(100);
/// ... and at most this often, however many entries wait.
const MIN_GAP: Duration = Duration::from_millis(2);
/// Restart backoff: first wait, longest wait.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Positions remembered for the lag (older ones are kept, newer dropped).
const MAX_OBSERVATIONS: usize = 4096;
/// Standby status updates: how soon an applied position reaches the server
/// (it answers with a keepalive carrying its end of WAL, which is how the
/// applier learns it is caught up on a quiet origin).
const STATUS_INTERVAL: Duration = Duration::from_millis(10);

/// What the change stream maintains.
pub trait Target: Send + Sync + 'static {
    fn cache(&self) -> &ResultCache;
    /// The origin's catalog may have changed (the stream restarted, or a
    /// transaction ran DDL): reload it.
    fn catalog_changed(&self);
    /// The stream sent a table definition it had not sent before, or one
    /// that differs from the one it sent before.
    fn redefined(&self, relation: &Relation);
    /// Whether DDL run on the origin now reaches the stream (its event
    /// trigger is in place and enabled, as of the last position read).
    fn ddl_streamed(&self, on: bool);
}

/// State the two loops share.
struct Shared {
    target: Arc<dyn Target>,
    metrics: Arc<Metrics>,
    max_lag: Duration,
    stream_up: AtomicBool,
    position_up: AtomicBool,
    /// The applier reached a position read after the stream started.
    synced: AtomicBool,
    /// The stream (re)started and no position read issued since has
    /// passed its visibility barrier (see [`position_once`]).
    barrier: AtomicBool,
    /// Positions read, oldest first, with the time their read began.
    observations: Mutex<VecDeque<(u64, Instant)>>,
    /// Applied transactions not yet seen finished by a position read.
    unseen: Mutex<UnseenList>,
    /// What the last position read said of the DDL event trigger and of
    /// roles (see [`POSITION_SQL`]).
    seen: Mutex<(Option<bool>, Option<i64>)>,
}

/// A transaction applied when the stream delivered it, which can be before
/// other sessions see it committed (the committing backend still waits,
/// e.g. for a synchronous standby): an entry captured in between shows the
/// old rows under the new generations. Once a snapshot shows the
/// transaction finished, its changes are invalidated again.
struct Unseen {
    xid: u32,
    /// Its commit sequence number ([`ResultCache::next_commit`]).
    seq: u64,
    written: Written,
    rows: Vec<(Oid, u64)>,
    /// Tested again against the filters registered by then.
    new_rows: Vec<NewRows>,
}

impl Unseen {
    /// Row names and new rows held, and the new rows' bytes.
    fn size(&self) -> (usize, usize) {
        let rows = self.new_rows.iter().map(|n| n.changes.len()).sum::<usize>();
        let bytes = self.new_rows.iter().map(|n| n.bytes).sum::<usize>();
        (self.rows.len() + rows, bytes)
    }
}

/// The [`Unseen`] transactions and how many row names they hold.
#[derive(Default)]
struct UnseenList {
    list: Vec<Unseen>,
    rows: usize,
    bytes: usize,
}

impl UnseenList {
    fn push(&mut self, unseen: Unseen) {
        let (rows, bytes) = unseen.size();
        self.rows += rows;
        self.bytes += bytes;
        self.list.push(unseen);
    }

    fn extend(&mut self, more: Vec<Unseen>) {
        for unseen in more {
            self.push(unseen);
        }
    }

    fn take(&mut self) -> Vec<Unseen> {
        self.rows = 0;
        self.bytes = 0;
        std::mem::take(&mut self.list)
    }
}

/// Whether following `batch` in entries holding `rows_held` rows costs more than
/// [`MAX_FILTER_TESTS`] steps (a step per change and entry, and per change
/// and row held): they are dropped instead.
fn too_much_work(batch: &NewRows, rows_held: impl Iterator<Item = usize>) -> bool {
    let per_change: usize = rows_held.map(|rows| 1 + rows).sum();
    batch.changes.len().saturating_mul(per_change) > MAX_FILTER_TESTS
}

/// Transactions kept for [`Unseen`], and the row names they may hold in
/// all (16 bytes each: 16 MiB); beyond either, every entry is dropped once.
const MAX_UNSEEN: usize = 100_000;
const MAX_UNSEEN_ROWS: usize = 1 << 20;
/// Bytes of new rows' values kept for [`Unseen`] transactions.
const MAX_UNSEEN_BYTES: usize = 64 << 20;

impl Shared {
    fn cache(&self) -> &ResultCache {
        self.target.cache()
    }

    /// Serve or not, from what is known now.
    fn evaluate(&self) {
        let applied = self.cache().applied();
        let lag = {
            let mut obs = self.observations.lock().unwrap_or_else(|p| p.into_inner());
            while obs.front().is_some_and(|&(lsn, _)| lsn <= applied) {
                obs.pop_front();
                self.synced.store(true, Ordering::Release);
            }
            obs.front().map(|&(_, at)| at.elapsed()).unwrap_or_default()
        };
        self.metrics.cdc_lag_seconds.set(lag.as_secs_f64());
        let serving = self.stream_up.load(Ordering::Acquire)
            && self.position_up.load(Ordering::Acquire)
            && self.synced.load(Ordering::Acquire)
            && lag <= self.max_lag;
        self.cache().set_serving(serving);
        // The stream or the position connection may have gone between the
        // loads above and the store: their loops stop serving after
        // clearing their flag, so a flag seen down now undoes the store.
        let serving = serving
            && self.stream_up.load(Ordering::Acquire)
            && self.position_up.load(Ordering::Acquire);
        if !serving {
            self.cache().set_serving(false);
        }
        self.metrics.cdc_serving.set(i64::from(serving));
    }

    fn stop_serving(&self) {
        self.cache().set_serving(false);
        self.metrics.cdc_serving.set(0);
    }

    /// Keep `unseen` in `list` (the locked [`Shared::unseen`]).
    fn not_yet_visible(&self, list: &mut UnseenList, unseen: Unseen) {
        let (rows, bytes) = unseen.size();
        if list.list.len() >= MAX_UNSEEN
            || list.rows + rows > MAX_UNSEEN_ROWS
            || list.bytes + bytes > MAX_UNSEEN_BYTES
        {
            list.take();
            self.cache().invalidate(&Written::everything());
        }
        list.push(unseen);
    }

    /// Drop the entries whose filters a new row of a commit might satisfy
    /// (after the commit's table slots were bumped).
    fn test_filters(&self, new_rows: &[NewRows]) {
        if new_rows.is_empty() {
            return;
        }
        let cache = self.cache();
        let hits = filter_hits(new_rows, &|table| cache.filters_of(table));
        cache.invalidate_filters(&hits);
    }

    /// Apply a commit's row changes to the live entries of their tables
    /// (after the commit's table slots were bumped): each is updated in
    /// place, or dropped when it cannot follow. A change goes only to the
    /// entries it may concern ([`ResultCache::lives_for`]).
    fn maintain(&self, batches: &[NewRows]) {
        let cache = self.cache();
        for batch in batches {
            let lives = cache.lives_for(batch);
            if lives.is_empty() {
                continue;
            }
            let work: usize = lives
                .iter()
                .map(|(l, which)| which.len().saturating_mul(1 + l.rows()))
                .sum();
            if work > MAX_FILTER_TESTS {
                for (live, _) in &lives {
                    self.drop_live(live, "busy");
                }
                continue;
            }
            for (live, which) in &lives {
                match live.apply(batch, which) {
                    Ok(applied) => {
                        if applied.changed {
                            self.metrics.cdc_entries_updated.inc();
                        }
                        if !applied.added.is_empty() || !applied.removed.is_empty() {
                            cache.reindex(live, &applied.added, &applied.removed);
                        }
                    }
                    Err(lost) => self.drop_live(live, lost.label()),
                }
            }
        }
    }

    /// A commit (sequence number `seq`) that was applied before others
    /// could see it is now seen finished: a live entry whose capture began
    /// after it was applied may not show it, and was not updated by it;
    /// it goes if the commit touches it ([`Live::touched_by`]).
    fn replay_lives(&self, seq: u64, batches: &[NewRows]) {
        for batch in batches {
            let lives = self.cache().lives_since(batch.table, seq);
            let busy = too_much_work(batch, lives.iter().map(|l| l.rows()));
            for live in lives {
                if busy || live.touched_by(batch) {
                    self.drop_live(&live, "unseen");
                }
            }
        }
    }

    /// Apply a commit's row changes to the joined entries they may concern
    /// (ADR 018), each table's in turn, then end the commit for each: an
    /// entry is updated, or dropped when it cannot follow.
    fn maintain_joins(&self, seq: u64, batches: &[NewRows]) {
        let cache = self.cache();
        let mut touched: Vec<Arc<Joined>> = Vec::new();
        let mut seen: HashSet<*const Joined> = HashSet::new();
        for batch in batches {
            let joins = cache.joined_for(batch);
            if joins.is_empty() {
                continue;
            }
            let busy = too_much_work(batch, joins.iter().map(|j| j.rows()));
            for joined in joins {
                if busy {
                    self.drop_joined(&joined, "busy");
                    continue;
                }
                match joined.apply(batch, seq) {
                    Ok(()) => {
                        if seen.insert(Arc::as_ptr(&joined)) {
                            touched.push(joined);
                        }
                    }
                    Err(lost) => self.drop_joined(&joined, lost.label()),
                }
            }
        }
        for joined in touched {
            match joined.finish() {
                Ok(true) => {
                    self.metrics.cdc_entries_updated.inc();
                    cache.reindex_joined(&joined);
                }
                Ok(false) => {}
                Err(lost) => self.drop_joined(&joined, lost.label()),
            }
        }
    }

    /// As [`Self::replay_lives`], for joined entries.
    fn replay_joins(&self, seq: u64, batches: &[NewRows]) {
        for batch in batches {
            let joins = self.cache().joined_since(batch.table, seq);
            let busy = too_much_work(batch, joins.iter().map(|j| j.rows()));
            for joined in joins {
                // Still reading its rows: replayed on them.
                match joined.defer(batch, seq) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(lost) => {
                        self.drop_joined(&joined, lost.label());
                        continue;
                    }
                }
                if busy || joined.touched_by(batch) {
                    self.drop_joined(&joined, "unseen");
                }
            }
        }
    }

    fn drop_joined(&self, joined: &Joined, reason: &'static str) {
        self.cache().kill_joined(joined);
        self.metrics
            .cdc_entries_dropped
            .get_or_create(&DropLabels { reason })
            .inc();
    }

    fn drop_live(&self, live: &Live, reason: &'static str) {
        self.cache().kill(live);
        self.metrics
            .cdc_entries_dropped
            .get_or_create(&DropLabels { reason })
            .inc();
    }

    fn observe(&self, lsn: u64, at: Instant) {
        let mut obs = self.observations.lock().unwrap_or_else(|p| p.into_inner());
        if obs.len() < MAX_OBSERVATIONS {
            obs.push_back((lsn, at));
        }
    }
}

/// Run the change stream for `target` until aborted. `wanted` is notified
/// when entries or tickets start waiting for a fence position.
pub async fn run(
    target: Arc<dyn Target>,
    config: CdcConfig,
    origin: OriginConfig,
    metrics: Arc<Metrics>,
    wanted: Arc<Notify>,
) {
    let shared = Arc::new(Shared {
        target,
        metrics,
        max_lag: config.max_lag,
        stream_up: AtomicBool::new(false),
        position_up: AtomicBool::new(false),
        synced: AtomicBool::new(false),
        barrier: AtomicBool::new(false),
        observations: Mutex::new(VecDeque::new()),
        unseen: Mutex::new(UnseenList::default()),
        seen: Mutex::new((None, None)),
    });
    shared.stop_serving();
    tokio::join!(
        stream_loop(Arc::clone(&shared), config, origin.clone()),
        position_loop(shared, origin, wanted),
    );
}

// ---------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------

async fn stream_loop(shared: Arc<Shared>, config: CdcConfig, origin: OriginConfig) {
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        let started = Instant::now();
        let result = stream_once(&shared, &config, &origin).await;
        shared.target.ddl_streamed(false);
        shared.stream_up.store(false, Ordering::Release);
        shared.metrics.cdc_stream_up.set(0);
        shared.stop_serving();
        // What was cached followed a stream that is gone.
        shared.cache().clear();
        if let Err(e) = result {
            if first {
                warn!(error = %e, "change stream: not started; nothing is served from cache until it is");
            } else {
                warn!(error = %e, "change stream: lost; nothing is served from cache until it is back");
            }
        }
        first = false;
        shared.metrics.cdc_restarts.inc();
        if started.elapsed() > BACKOFF_MAX * 2 {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One replication session, from setup to failure.
async fn stream_once(
    shared: &Shared,
    config: &CdcConfig,
    origin: &OriginConfig,
) -> Result<(), String> {
    let pg = origin.pg_config().map_err(|e| e.to_string())?;
    let resume = prepare(&pg, origin, config).await?;
    let slot = config.slot.clone().unwrap_or_else(temporary_slot_name);
    let password = pg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let repl_config = ReplicationConfig::new(
        origin.host.clone(),
        origin.user.clone(),
        password,
        origin.database.clone(),
        slot.clone(),
        config.publication.clone(),
    )
    .with_port(origin.port)
    .with_tls(TlsConfig::disabled())
    .with_status_interval(STATUS_INTERVAL)
    .with_wakeup_interval(Duration::from_secs(1))
    .with_application_name("pgcache change stream");
    let mut client = ReplicationClient::connect_gated(repl_config)
        .await
        .map_err(|e| format!("replication connection: {e}"))?;
    let start = match resume {
        Some(confirmed) => confirmed,
        None => {
            let rows = client
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT"
                ))
                .await
                .map_err(|e| format!("creating temporary replication slot {slot}: {e}"))?;
            rows.first()
                .and_then(|r| r.get(1))
                .and_then(|v| v.as_ref())
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<Lsn>().ok())
                .ok_or("CREATE_REPLICATION_SLOT returned no consistent point")?
        }
    };
    client
        .start()
        .await
        .map_err(|e| format!("START_REPLICATION: {e}"))?;
    client
        .wait_started()
        .await
        .map_err(|e| format!("START_REPLICATION: {e}"))?;

    // Everything cached before this point followed another stream (or
    // none): forget it, then start from the slot's position (even behind
    // the last one: the origin may be another server now).
    shared.cache().restart(start.0);
    shared
        .unseen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    shared
        .observations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    shared.synced.store(false, Ordering::Release);
    shared.barrier.store(true, Ordering::Release);
    shared.stream_up.store(true, Ordering::Release);
    shared.metrics.cdc_stream_up.set(1);
    // DDL may have run while no stream was watching.
    shared.target.catalog_changed();
    info!(%slot, publication = %config.publication, at = %start, "change stream: started");

    let mut applier = Applier::new();
    loop {
        let event = client
            .recv()
            .await
            .map_err(|e| format!("replication stream: {e}"))?;
        let Some(event) = event else {
            return Err("replication stream ended".into());
        };
        match event {
            ReplicationEvent::Begin { xid, .. } => applier.begin(xid).map_err(|e| e.to_string())?,
            ReplicationEvent::XLogData { data, .. } => {
                applier.message(&data).map_err(|e| e.to_string())?
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let committed = applier.commit().map_err(|e| e.to_string())?;
                for relation in &committed.redefined {
                    shared.target.redefined(relation);
                }
                let written = Written {
                    tables: committed.whole,
                    all: committed.ddl,
                };
                if committed.ddl {
                    shared.target.catalog_changed();
                }
                let m = &shared.metrics;
                m.cdc_transactions.inc();
                m.cdc_changes.inc_by(committed.changes);
                if let Some(t) = Timestamp(commit_time_micros).to_system_time()
                    && let Ok(unix) = t.duration_since(std::time::UNIX_EPOCH)
                {
                    m.cdc_last_commit_timestamp_seconds.set(unix.as_secs_f64());
                }
                // Invalidate first, then publish the position: a reader that
                // sees the position sees the invalidation. Table slots
                // first, then the filters registered by now
                // (`ResultCache::narrow_filter`). The unseen list is held
                // from before the first bump until the transaction is in it:
                // the position task takes it after the entries waiting for
                // a fence, so it holds this transaction for every entry
                // whose capture began after the bump.
                let mut unseen = shared.unseen.lock().unwrap_or_else(|p| p.into_inner());
                let seq = shared.cache().next_commit();
                shared.cache().invalidate(&written);
                shared.cache().invalidate_rows(&committed.rows);
                shared.test_filters(&committed.new_rows);
                shared.maintain(&committed.new_rows);
                shared.maintain_joins(seq, &committed.new_rows);
                applied(shared, &client, end_lsn);
                shared.not_yet_visible(
                    &mut unseen,
                    Unseen {
                        xid: committed.xid,
                        seq,
                        written,
                        rows: committed.rows,
                        new_rows: committed.new_rows,
                    },
                );
                drop(unseen);
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // Everything committed before the server's end of WAL has
                // been sent before this keepalive.
                if !applier.in_transaction() {
                    applied(shared, &client, wal_end);
                }
            }
            ReplicationEvent::Message {
                transactional,
                prefix,
                ..
            } if prefix == DDL_MESSAGE_PREFIX => {
                if transactional && applier.in_transaction() {
                    applier.ddl().map_err(|e| e.to_string())?;
                } else {
                    shared.target.catalog_changed();
                    shared.cache().invalidate(&Written::everything());
                }
            }
            // Other logical messages change no rows.
            ReplicationEvent::Message { .. } => {}
            ReplicationEvent::StoppedAt { .. } => return Err("replication stream stopped".into()),
        }
    }
}

fn applied(shared: &Shared, client: &ReplicationClient, lsn: WireLsn) {
    let lsn = lsn.as_u64();
    shared.cache().advance(lsn);
    shared
        .metrics
        .cdc_applied_lsn
        .set(i64::try_from(shared.cache().applied()).unwrap_or(i64::MAX));
    client.update_applied_lsn(WireLsn::from_u64(lsn));
}

fn temporary_slot_name() -> String {
    let n = getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    format!("pgcache_{}_{:08x}", std::process::id(), n & 0xffff_ffff)
}

/// Ensure the publication exists (created FOR ALL TABLES when missing) and,
/// for a persistent slot, the slot; returns the persistent slot's confirmed
/// position (`None` for a temporary slot, made on the replication
/// connection itself).
async fn prepare(
    pg: &tokio_postgres::Config,
    origin: &OriginConfig,
    config: &CdcConfig,
) -> Result<Option<Lsn>, String> {
    let (client, conn) = crate::check::connect_origin(pg, origin.connect_timeout).await?;
    let result = async {
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
                &[&config.publication],
            )
            .await
            .map_err(|e| format!("reading pg_publication: {e}"))?
            .is_some();
        if !exists {
            let create = format!(
                "CREATE PUBLICATION {} FOR ALL TABLES",
                quote_ident(&config.publication)
            );
            match client.batch_execute(&create).await {
                Ok(()) => info!(publication = %config.publication, "change stream: publication created FOR ALL TABLES"),
                // Created meanwhile by someone else.
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {}
                Err(e) => {
                    return Err(format!(
                        "publication {} does not exist and could not be created: {}",
                        config.publication,
                        crate::check::describe_pg_error(&e)
                    ));
                }
            }
        }
        install_ddl_trigger(&client).await;
        let Some(slot) = &config.slot else {
            return Ok(None);
        };
        let row = client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots \
                 WHERE slot_name = $1",
                &[slot],
            )
            .await
            .map_err(|e| format!("reading pg_replication_slots: {e}"))?;
        let confirmed: Option<String> = match row {
            Some(row) => row.try_get(0).map_err(|e| e.to_string())?,
            None => {
                let row = client
                    .query_one(
                        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[slot],
                    )
                    .await
                    .map_err(|e| {
                        format!(
                            "creating replication slot {slot}: {}",
                            crate::check::describe_pg_error(&e)
                        )
                    })?;
                info!(%slot, "change stream: persistent replication slot created");
                row.try_get(0).map_err(|e| e.to_string())?
            }
        };
        let lsn = confirmed
            .and_then(|c| c.parse::<Lsn>().ok())
            .unwrap_or(Lsn::INVALID);
        Ok(Some(lsn))
    }
    .await;
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
    result
}

/// The event trigger that puts a logical message into the transaction of
/// every DDL command run on the origin, so that the change stream sees DDL
/// that does not pass through the proxy, in commit order. It swallows its
/// own errors: DDL on the origin never fails because of it.
const DDL_TRIGGER_SQL: &str = "\
BEGIN;
CREATE SCHEMA IF NOT EXISTS pgcache;
CREATE OR REPLACE FUNCTION pgcache.ddl_notice() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
BEGIN
  IF current_setting('wal_level') = 'logical' THEN
    PERFORM pg_logical_emit_message(true, 'pgcache.ddl', tg_tag);
  END IF;
EXCEPTION WHEN OTHERS THEN
  NULL;
END
$fn$;
CREATE EVENT TRIGGER pgcache_ddl ON ddl_command_end EXECUTE FUNCTION pgcache.ddl_notice();
ALTER EVENT TRIGGER pgcache_ddl ENABLE ALWAYS;
COMMIT";

/// Install [`DDL_TRIGGER_SQL`] unless it is there. Without it (the proxy's
/// role may not create event triggers), DDL run on the origin directly is
/// seen only when the stream sends the changed table's definition with its
/// next row change, or at the next catalog reload: say so.
async fn install_ddl_trigger(client: &tokio_postgres::Client) {
    let present = client
        .query_opt(
            "SELECT evtenabled = 'A' FROM pg_catalog.pg_event_trigger WHERE evtname = 'pgcache_ddl'",
            &[],
        )
        .await
        .map(|row| row.map(|r| r.try_get::<_, bool>(0).unwrap_or(false)));
    let sql = match present {
        Ok(Some(true)) => return,
        // Disabled, or firing only in some session_replication_role modes:
        // DDL run in the others would go unseen.
        Ok(Some(false)) => "ALTER EVENT TRIGGER pgcache_ddl ENABLE ALWAYS",
        Ok(None) => DDL_TRIGGER_SQL,
        Err(e) => {
            warn!(error = %crate::check::describe_pg_error(&e), "change stream: cannot read pg_event_trigger");
            return;
        }
    };
    match client.batch_execute(sql).await {
        Ok(()) => info!(
            "change stream: event trigger pgcache_ddl installed (DDL on the origin reaches the cache)"
        ),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            // Installed by another connection meanwhile (the stream and the
            // position task both install it; two `CREATE SCHEMA IF NOT
            // EXISTS` at once fail with a unique violation): the position
            // task checks it at its next read either way.
            let raced = [
                tokio_postgres::error::SqlState::DUPLICATE_OBJECT,
                tokio_postgres::error::SqlState::UNIQUE_VIOLATION,
            ];
            if !e.code().is_some_and(|c| raced.contains(c)) {
                warn!(
                    error = %crate::check::describe_pg_error(&e),
                    "change stream: could not install the DDL event trigger; DDL run directly on the origin \
                     is seen only with the changed table's next row change or the next catalog reload"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Position
// ---------------------------------------------------------------------------

async fn position_loop(shared: Arc<Shared>, origin: OriginConfig, wanted: Arc<Notify>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let result = position_once(&shared, &origin, &wanted, &mut backoff).await;
        shared.position_up.store(false, Ordering::Release);
        shared.stop_serving();
        if let Err(e) = result {
            warn!(error = %e, "change stream: cannot read the origin's WAL position; nothing is served from cache until it can");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn position_once(
    shared: &Shared,
    origin: &OriginConfig,
    wanted: &Notify,
    backoff: &mut Duration,
) -> Result<(), String> {
    let pg = origin.pg_config().map_err(|e| e.to_string())?;
    let (client, _conn) = crate::check::connect_origin(&pg, origin.connect_timeout).await?;
    let statement = client
        .prepare(POSITION_SQL)
        .await
        .map_err(|e| format!("preparing the position query: {e}"))?;
    shared.position_up.store(true, Ordering::Release);
    *backoff = BACKOFF_MIN;
    let mut last = Instant::now() - POLL;
    // A read that takes longer counts as a lost connection.
    let limit = shared.max_lag.max(Duration::from_secs(1));
    // Kept across reconnections: a change made meanwhile is seen at the
    // first read.
    let (mut trigger_ok, mut roles_seen) = *shared.seen.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if !shared.cache().has_waiting() {
            let next = last + POLL;
            tokio::select! {
                () = wanted.notified() => {}
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
        let gap = last + MIN_GAP;
        if Instant::now() < gap {
            tokio::time::sleep_until(gap.into()).await;
        }
        // A read issued after the stream (re)started: its snapshot is the
        // visibility barrier.
        let barrier = shared.barrier.swap(false, Ordering::AcqRel);
        // Whatever waits now finished before the position is read.
        let waiting = shared.cache().take_waiting();
        let unseen = shared
            .unseen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let at = Instant::now();
        last = at;
        let read = match tokio::time::timeout(limit, client.query_one(&statement, &[])).await {
            Ok(read) => read.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
        };
        let parsed = read.and_then(|row| {
            let lsn: String = row.try_get(0).map_err(|e| e.to_string())?;
            let snapshot: String = row.try_get(1).map_err(|e| e.to_string())?;
            let trigger: bool = row.try_get(2).map_err(|e| e.to_string())?;
            let roles: i64 = row.try_get(3).map_err(|e| e.to_string())?;
            let lsn = lsn.parse::<Lsn>().map_err(|e| e.to_string())?;
            let snapshot = XidSnapshot::parse(&snapshot)
                .ok_or_else(|| format!("unreadable snapshot {snapshot:?}"))?;
            Ok((reachable(lsn.0), snapshot, trigger, roles))
        });
        let (lsn, snapshot, trigger, roles) = match parsed {
            Ok(p) => p,
            Err(e) => {
                shared.cache().requeue(waiting);
                shared
                    .unseen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(unseen);
                if barrier {
                    shared.barrier.store(true, Ordering::Release);
                }
                return Err(e);
            }
        };
        if barrier {
            // A transaction whose commit the new slot starts after is never
            // streamed, and may not have been visible to others when the
            // slot was made (its backend still finishing the commit, or
            // waiting for a synchronous standby). Entries captured since
            // the restart may predate it: they go now. Those it shows still
            // in progress count as changing everything once they finish.
            shared.cache().invalidate(&Written::everything());
            let mut list = shared.unseen.lock().unwrap_or_else(|p| p.into_inner());
            for &xid in snapshot.in_progress() {
                shared.not_yet_visible(
                    &mut list,
                    Unseen {
                        xid,
                        seq: 0,
                        written: Written::everything(),
                        rows: Vec::new(),
                        new_rows: Vec::new(),
                    },
                );
            }
        }
        // Transactions applied before this read that it shows finished:
        // entries captured while they were not yet visible go now.
        let mut still = Vec::new();
        for u in unseen {
            if snapshot.finished(u.xid) {
                shared.cache().invalidate(&u.written);
                shared.cache().invalidate_rows(&u.rows);
                shared.test_filters(&u.new_rows);
                shared.replay_lives(u.seq, &u.new_rows);
                shared.replay_joins(u.seq, &u.new_rows);
            } else {
                still.push(u);
            }
        }
        shared
            .unseen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(still);
        if trigger_ok == Some(true) && !trigger {
            // DDL may run unseen from now on, and may have already.
            warn!(
                "change stream: the DDL event trigger pgcache_ddl is gone or disabled; every entry dropped"
            );
            shared.cache().clear();
            shared.target.catalog_changed();
        }
        if trigger_ok != Some(trigger) && !trigger {
            install_ddl_trigger(&client).await;
        }
        trigger_ok = Some(trigger);
        shared
            .target
            .ddl_streamed(trigger && shared.stream_up.load(Ordering::Acquire));
        if roles_seen.is_some_and(|r| r != roles) {
            // A membership or role attribute changed: every role proves
            // its access again.
            shared.target.catalog_changed();
        }
        roles_seen = Some(roles);
        *shared.seen.lock().unwrap_or_else(|p| p.into_inner()) = (trigger_ok, roles_seen);
        waiting.settle(lsn);
        shared.observe(lsn, at);
        shared
            .metrics
            .cdc_origin_lsn
            .set(i64::try_from(lsn).unwrap_or(i64::MAX));
        shared.evaluate();
    }
}

/// The position, a snapshot (which transactions have finished), whether
/// the DDL event trigger fires always, and a fingerprint of role
/// memberships and role attributes (which fire no event trigger).
const POSITION_SQL: &str = "SELECT pg_catalog.pg_current_wal_insert_lsn()::text, \
     pg_catalog.pg_current_snapshot()::text, \
     coalesce((SELECT evtenabled = 'A' FROM pg_catalog.pg_event_trigger \
     WHERE evtname = 'pgcache_ddl'), false), \
     (SELECT coalesce(sum(pg_catalog.hashtext(m.roleid::text || ':' || m.member::text || ':' \
     || m.admin_option::text)), 0) FROM pg_catalog.pg_auth_members m) \
     + (SELECT coalesce(sum(pg_catalog.hashtext(r.oid::text || ':' || r.rolsuper::text \
     || r.rolinherit::text || r.rolbypassrls::text || r.rolcanlogin::text)), 0) \
     FROM pg_catalog.pg_roles r)";

/// WAL page size and the sizes of the headers at the start of a page.
const WAL_PAGE: u64 = 8192;
const SHORT_PAGE_HEADER: u64 = 24;
const LONG_PAGE_HEADER: u64 = 40;

/// The insert position as the change stream can reach it: right after a
/// page boundary the insert position points past the new page's header,
/// where no record ends yet; the last record ended at the boundary.
fn reachable(insert: u64) -> u64 {
    match insert % WAL_PAGE {
        SHORT_PAGE_HEADER | LONG_PAGE_HEADER => insert - insert % WAL_PAGE,
        _ => insert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_position_after_a_page_header_is_the_boundary() {
        assert_eq!(reachable(0x1_6000_0000 + 24), 0x1_6000_0000);
        assert_eq!(reachable(0x1_6000_2000 + 40), 0x1_6000_2000);
        assert_eq!(reachable(0x1_6000_2000 + 48), 0x1_6000_2000 + 48);
        assert_eq!(reachable(0x1_6000_2000), 0x1_6000_2000);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("pgcache"), "\"pgcache\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn temporary_slot_names_are_valid_and_distinct() {
        let a = temporary_slot_name();
        let b = temporary_slot_name();
        assert_ne!(a, b);
        for n in [a, b] {
            assert!(n.len() <= 63);
            assert!(
                n.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            );
        }
    }
}
