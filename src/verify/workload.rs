//! The run: set-up, concurrent readers, writers and faults, the final check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::outcome::{Conn, Lost, Outcome};
use super::schema::{self, Pools};
use super::settings::{self, Detour, PROFILES, Switch, SwitchSteps};
use super::shapes::{self, Kind, Protocol, Shape};
use super::{Mismatch, Report, VerifyError, VerifyOptions, faults, writes};
use crate::rng::Rng;

/// Concurrent readers (each a proxy connection and an origin connection
/// with the same settings) and writers.
const READERS: usize = 4;
const WRITERS: usize = 2;
/// Examples kept in the report.
const MAX_EXAMPLES: usize = 5;
/// How long a task tries to reconnect before it gives up.
const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// Connections lost this long after an origin restart are expected.
const RESTART_GRACE: Duration = Duration::from_secs(30);
/// Writes come in a cycle: writes for the first part, then quiet (so that
/// cached entries live long enough to be served).
pub(super) const WRITE_CYCLE_MS: u128 = 4000;
pub(super) const QUIET_FROM_MS: u128 = 1500;
/// Each reader has this many hot reads (shape, values, protocol) that make
/// most of its reads, like an application's; the rest are drawn from all.
const HOT_READS: usize = 24;
const HOT_SHARE_PERCENT: u64 = 85;

/// One read of the final check: shape, value set, protocol, profile.
type Combo = (usize, usize, Protocol, usize);

#[derive(Default)]
pub(super) struct Counters {
    pub(super) reads: AtomicU64,
    converged: AtomicU64,
    pub(super) writes_direct: AtomicU64,
    pub(super) writes_proxied: AtomicU64,
    pub(super) writes_refused: AtomicU64,
    pub(super) transactions: AtomicU64,
    pub(super) rollbacks: AtomicU64,
    pub(super) truncates: AtomicU64,
    pub(super) ddl: AtomicU64,
    pub(super) own_write_checks: AtomicU64,
    pub(super) walsender_terminations: AtomicU64,
    pub(super) pipelines_dropped: AtomicU64,
    pub(super) origin_restarts: AtomicU64,
    settings_changes: AtomicU64,
    pipelined_reads: AtomicU64,
    quiet_reads: AtomicU64,
    quiet_hits: AtomicU64,
    final_combinations: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every task shares.
pub(super) struct Shared {
    pub(super) options: VerifyOptions,
    pub(super) start: Instant,
    pub(super) shapes: Vec<Shape>,
    pub(super) pools: Pools,
    pub(super) stop_writes: AtomicBool,
    stop_reads: AtomicBool,
    pub(super) counters: Counters,
    mismatches: Mutex<(u64, Vec<Mismatch>)>,
    errors: Mutex<(u64, Vec<String>)>,
    pub(super) last_restart: Mutex<Option<Instant>>,
    used: Mutex<BTreeSet<Combo>>,
    /// The origin's sessions were described after a statement timed out.
    diagnosed: AtomicBool,
}

/// Which server a connection goes to.
#[derive(Clone, Copy)]
pub(super) enum Target {
    Origin,
    Proxy,
}

impl Shared {
    pub(super) fn s(&self) -> &str {
        &self.options.schema
    }

    pub(super) fn config(
        &self,
        target: Target,
        profile: usize,
        app: &str,
    ) -> tokio_postgres::Config {
        let mut config = match target {
            Target::Origin => self.options.origin.clone(),
            Target::Proxy => self.options.proxy.clone(),
        };
        config.application_name(format!("pgcache-verify-{app}"));
        if settings::at_startup(profile) {
            let given = config.get_options().unwrap_or_default();
            let ours = settings::startup_options(profile, self.s());
            config.options(format!("{given} {ours}").trim_start().to_owned());
        }
        config
    }

    pub(super) fn error(&self, message: String) {
        let mut errors = lock(&self.errors);
        errors.0 += 1;
        // The origin's sessions after a timeout are kept beyond the examples.
        if errors.1.len() < MAX_EXAMPLES || message.starts_with("diagnosis: ") {
            let at = self.start.elapsed().as_secs_f64();
            errors.1.push(format!("{at:.1}s: {message}"));
        }
    }

    pub(super) fn mismatch(&self, m: Mismatch) {
        let mut mismatches = lock(&self.mismatches);
        mismatches.0 += 1;
        if mismatches.1.len() < MAX_EXAMPLES {
            mismatches.1.push(m);
        }
    }

    /// A mismatch of read `si`/`vi` sent with `protocol` under `profile`.
    #[allow(clippy::too_many_arguments, reason = "one record of many facts")]
    fn read_mismatch(
        &self,
        phase: &'static str,
        si: usize,
        vi: usize,
        protocol: Protocol,
        profile: usize,
        proxy: &Outcome,
        origin: String,
    ) {
        let shape = &self.shapes[si];
        let values = &shape.values[vi];
        let (statement, parameters) = match protocol {
            Protocol::Simple => (shape.literal_sql(values), Vec::new()),
            _ => (
                shape.sql.clone(),
                values.iter().map(ToString::to_string).collect(),
            ),
        };
        self.mismatch(Mismatch {
            phase: phase.to_owned(),
            shape: shape.name.to_owned(),
            statement,
            parameters,
            protocol: protocol.to_string(),
            settings: settings::describe(profile, self.s()),
            proxy: proxy.to_string(),
            origin,
            at: self.start.elapsed(),
            seed: self.options.seed,
        });
    }

    /// Whether a lost connection is explained by an origin restart.
    pub(super) fn restarting(&self) -> bool {
        lock(&self.last_restart).is_some_and(|at| at.elapsed() < RESTART_GRACE)
    }

    /// Sleep up to `duration`, returning early once `stop` is set.
    pub(super) async fn pause(&self, duration: Duration, stop: &AtomicBool) {
        let until = Instant::now() + duration;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        }
    }
}

/// A proxy connection and an origin connection under the same settings.
pub(super) struct Pair {
    pub(super) proxy: Conn,
    pub(super) origin: Conn,
    profile: usize,
}

impl Pair {
    pub(super) async fn connect(
        shared: &Shared,
        profile: usize,
        app: &str,
    ) -> Result<Pair, String> {
        let proxy = Conn::connect(&shared.config(Target::Proxy, profile, app))
            .await
            .map_err(|e| format!("proxy: {e}"))?;
        let origin = Conn::connect(&shared.config(Target::Origin, profile, app))
            .await
            .map_err(|e| format!("origin: {e}"))?;
        let mut pair = Pair {
            proxy,
            origin,
            profile,
        };
        if !settings::at_startup(profile) && !settings::settings(profile, shared.s()).is_empty() {
            pair.switch(shared, profile, Switch::Set)
                .await
                .map_err(|e| format!("settings: {e}"))?;
        }
        Ok(pair)
    }

    /// Retry [`Pair::connect`] for [`RECONNECT_FOR`].
    pub(super) async fn reconnect(shared: &Shared, profile: usize, app: &str) -> Option<Pair> {
        let until = Instant::now() + RECONNECT_FOR;
        loop {
            match Pair::connect(shared, profile, app).await {
                Ok(pair) => return Some(pair),
                Err(e) if Instant::now() > until => {
                    shared.error(format!("{app}: cannot reconnect: {e}"));
                    return None;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Move both connections to `profile` (never the server defaults).
    async fn switch(&mut self, shared: &Shared, profile: usize, how: Switch) -> Result<(), String> {
        match settings::switch_sql(profile, shared.s(), how) {
            SwitchSteps::Simple(steps) => {
                for sql in steps {
                    self.both(&sql).await?;
                }
            }
            SwitchSteps::Prepared(pairs) => {
                for (name, value) in pairs {
                    for conn in [&self.proxy, &self.origin] {
                        conn.set_config(name, &value).await?;
                    }
                }
            }
        }
        if how == Switch::DiscardAllThenSet {
            self.proxy.forget_prepared();
            self.origin.forget_prepared();
        }
        self.profile = profile;
        Ok(())
    }

    /// Run `sql` on both connections; it must succeed on both.
    async fn both(&self, sql: &str) -> Result<(), String> {
        for conn in [&self.proxy, &self.origin] {
            match conn.batch(sql).await {
                Ok(Ok(())) => {}
                Ok(Err(outcome)) => return Err(format!("{sql}: {outcome}")),
                Err(lost) => return Err(lost.to_string()),
            }
        }
        Ok(())
    }
}

/// Record a lost connection (unless an origin restart explains it). The
/// first statement that times out also records what the origin's other
/// sessions were doing (who waits for whom).
pub(super) fn lost(shared: &Arc<Shared>, app: &str, what: &Lost) {
    if matches!(what, Lost::Timeout(_)) || !shared.restarting() {
        shared.error(format!("{app}: {what}"));
    }
    if matches!(what, Lost::Timeout(_)) && !shared.diagnosed.swap(true, Ordering::AcqRel) {
        tokio::spawn(diagnose(Arc::clone(shared)));
    }
}

/// Record the origin's sessions that are not idle: state, wait, the
/// sessions blocking them, transaction age and statement.
async fn diagnose(shared: Arc<Shared>) {
    const SESSIONS: &str = "SELECT pid, pg_blocking_pids(pid)::text, application_name, state, \
        coalesce(wait_event_type || ':' || wait_event, ''), \
        coalesce(round(extract(epoch FROM now() - xact_start))::text, ''), left(query, 120) \
        FROM pg_stat_activity WHERE datname = current_database() \
        AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' ORDER BY xact_start";
    let conn = match Conn::connect(&shared.config(Target::Origin, 0, "diagnosis")).await {
        Ok(conn) => conn,
        Err(e) => {
            shared.error(format!("diagnosis: origin: {e}"));
            return;
        }
    };
    match conn.simple(SESSIONS).await {
        Ok(Outcome::Rows { rows, .. }) => {
            for row in rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|c| {
                        c.as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default()
                            .into_owned()
                    })
                    .collect();
                shared.error(format!("diagnosis: session {}", cells.join(" | ")));
            }
        }
        Ok(other) => shared.error(format!("diagnosis: {other}")),
        Err(e) => shared.error(format!("diagnosis: {e}")),
    }
}

pub(super) async fn run(options: VerifyOptions) -> Result<Report, VerifyError> {
    if !schema::valid_schema_name(&options.schema) {
        return Err(VerifyError::InvalidOptions(format!(
            "schema {:?}: use lower-case letters, digits and _ (not starting with a digit or pg_)",
            options.schema
        )));
    }
    if options.duration.is_zero() {
        return Err(VerifyError::InvalidOptions(
            "duration must not be zero".into(),
        ));
    }
    let mut rng = Rng::new(options.seed);
    let pools = Pools::new(&mut rng);
    let shapes = shapes::shapes(&options.schema, &pools, &mut rng);
    set_up(&options, &pools, &mut rng).await?;

    let hits_at_start = options.hits.as_ref().map(|h| h());
    let shared = Arc::new(Shared {
        options,
        start: Instant::now(),
        shapes,
        pools,
        stop_writes: AtomicBool::new(false),
        stop_reads: AtomicBool::new(false),
        counters: Counters::default(),
        mismatches: Mutex::new((0, Vec::new())),
        errors: Mutex::new((0, Vec::new())),
        last_restart: Mutex::new(None),
        used: Mutex::new(BTreeSet::new()),
        diagnosed: AtomicBool::new(false),
    });

    let mut writers = JoinSet::new();
    for id in 0..WRITERS {
        writers.spawn(writes::writer(Arc::clone(&shared), id));
    }
    if shared.options.faults {
        writers.spawn(faults::faults(Arc::clone(&shared)));
    }
    writers.spawn(monitor(Arc::clone(&shared)));
    let mut readers = JoinSet::new();
    for id in 0..READERS {
        readers.spawn(reader(Arc::clone(&shared), id));
    }
    tokio::time::sleep(shared.options.duration).await;
    // Readers first: the last writes are then followed by nothing but the
    // final check (a session's statement of unknown effect, such as a
    // set_config() call, may drop entries and hide what the writes left).
    shared.stop_reads.store(true, Ordering::Relaxed);
    join_all(readers).await?;
    shared.stop_writes.store(true, Ordering::Relaxed);
    join_all(writers).await?;

    let (final_hits, served) = final_check(&shared).await?;
    let hits = match (hits_at_start, shared.options.hits.as_ref()) {
        (Some(before), Some(h)) => Some(h().saturating_sub(before)),
        _ => None,
    };
    let c = &shared.counters;
    let (mismatches, examples) = lock(&shared.mismatches).clone();
    let (errors, error_examples) = lock(&shared.errors).clone();
    Ok(Report {
        seed: shared.options.seed,
        duration: shared.options.duration,
        faults: shared.options.faults,
        reads: get(&c.reads),
        converged_after_retry: get(&c.converged),
        writes_direct: get(&c.writes_direct),
        writes_proxied: get(&c.writes_proxied),
        writes_refused: get(&c.writes_refused),
        transactions: get(&c.transactions),
        rollbacks: get(&c.rollbacks),
        truncates: get(&c.truncates),
        schema_changes: get(&c.ddl),
        own_write_checks: get(&c.own_write_checks),
        walsender_terminations: get(&c.walsender_terminations),
        pipelines_dropped: get(&c.pipelines_dropped),
        origin_restarts: get(&c.origin_restarts),
        settings_changes: get(&c.settings_changes),
        pipelined_reads: get(&c.pipelined_reads),
        hits,
        quiet_reads: get(&c.quiet_reads),
        quiet_hits: shared.options.hits.as_ref().map(|_| get(&c.quiet_hits)),
        final_combinations: get(&c.final_combinations),
        final_hits,
        served,
        mismatches,
        examples,
        errors,
        error_examples,
    })
}

/// Counts reads and cache hits in the quiet part of each write cycle (no
/// writes then: most reads should be hits).
async fn monitor(shared: Arc<Shared>) {
    let Some(hits) = shared.options.hits.clone() else {
        return;
    };
    let c = &shared.counters;
    while !shared.stop_writes.load(Ordering::Relaxed) {
        let phase = shared.start.elapsed().as_millis() % WRITE_CYCLE_MS;
        if phase < QUIET_FROM_MS {
            let wait = Duration::from_millis((QUIET_FROM_MS - phase) as u64);
            shared.pause(wait, &shared.stop_writes).await;
            continue;
        }
        // The cycle's quiet part has begun: from a moment in (the stream
        // applying the last writes) to its end.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (reads, hit) = (get(&c.reads), hits());
        let phase = shared.start.elapsed().as_millis() % WRITE_CYCLE_MS;
        let left = Duration::from_millis(WRITE_CYCLE_MS.saturating_sub(phase + 20) as u64);
        tokio::time::sleep(left).await;
        if shared.stop_writes.load(Ordering::Relaxed) {
            break;
        }
        c.quiet_reads
            .fetch_add(get(&c.reads).saturating_sub(reads), Ordering::Relaxed);
        c.quiet_hits
            .fetch_add(hits().saturating_sub(hit), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

pub(super) async fn join_all(mut set: JoinSet<()>) -> Result<(), VerifyError> {
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| VerifyError::Task(e.to_string()))?;
    }
    Ok(())
}

/// Create the schema and its rows on the origin; make sure the proxy answers.
async fn set_up(options: &VerifyOptions, pools: &Pools, rng: &mut Rng) -> Result<(), VerifyError> {
    let mut origin = options.origin.clone();
    origin.application_name("pgcache-verify-setup");
    let admin = Conn::connect(&origin)
        .await
        .map_err(|reason| VerifyError::Connect {
            target: "origin",
            reason,
        })?;
    let mut statements = vec![schema::ddl(&options.schema)];
    statements.extend(schema::seed_rows(&options.schema, pools, rng));
    for statement in statements {
        let failed = match admin.batch(&statement).await {
            Ok(Ok(())) => continue,
            Ok(Err(outcome)) => outcome.to_string(),
            Err(lost) => lost.to_string(),
        };
        return Err(VerifyError::Setup {
            statement,
            reason: failed,
        });
    }
    let mut proxy = options.proxy.clone();
    proxy.application_name("pgcache-verify-setup");
    let probe = Conn::connect(&proxy)
        .await
        .map_err(|reason| VerifyError::Connect {
            target: "proxy",
            reason,
        })?;
    match probe.simple("SELECT 1").await {
        Ok(Outcome::Rows { .. }) => Ok(()),
        Ok(other) => Err(VerifyError::Connect {
            target: "proxy",
            reason: other.to_string(),
        }),
        Err(lost) => Err(VerifyError::Connect {
            target: "proxy",
            reason: lost.to_string(),
        }),
    }
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/// One read: shape, value set, protocol.
type Read = (usize, usize, Protocol);

fn pick_read(shared: &Shared, rng: &mut Rng) -> Read {
    let si = rng.index(shared.shapes.len());
    let vi = rng.index(shared.shapes[si].values.len());
    let mut protocol = Protocol::pick(rng);
    if shared.shapes[si].kind == Kind::Star && protocol == Protocol::Prepared {
        // A column added since the statement was prepared would make the
        // origin refuse it on one connection and not on the other.
        protocol = Protocol::Fresh;
    }
    (si, vi, protocol)
}

async fn reader(shared: Arc<Shared>, id: usize) {
    let mut rng = Rng::stream(shared.options.seed, 100 + id as u64);
    let app = format!("reader-{id}");
    let hot: Vec<Read> = (0..HOT_READS)
        .map(|_| pick_read(&shared, &mut rng))
        .collect();
    let Some(mut pair) = Pair::reconnect(&shared, id % PROFILES.len(), &app).await else {
        return;
    };
    let mut used = BTreeSet::new();
    while !shared.stop_reads.load(Ordering::Relaxed) {
        let step = async {
            let roll = rng.below(1000);
            if roll < 3 {
                // Settings change in the middle of the session.
                let next = 1 + rng.index(PROFILES.len() - 1);
                let how = Switch::pick(&mut rng);
                pair.switch(&shared, next, how)
                    .await
                    .map_err(Lost::Closed)?;
                bump(&shared.counters.settings_changes);
                return Ok(());
            }
            if roll < 6 {
                return detour(&shared, &mut pair, &mut rng, &mut used).await;
            }
            if roll < 40 {
                let reads: Vec<Read> = (0..3).map(|_| pick_read(&shared, &mut rng)).collect();
                for &(si, vi, protocol) in &reads {
                    used.insert((si, vi, protocol, pair.profile));
                }
                return pipelined(&shared, &mut pair, &reads).await;
            }
            let (si, vi, protocol) = if rng.below(100) < HOT_SHARE_PERCENT {
                *rng.pick(&hot)
            } else {
                pick_read(&shared, &mut rng)
            };
            used.insert((si, vi, protocol, pair.profile));
            check_read(&shared, &mut pair, si, vi, protocol, "workload")
                .await
                .map(|_| ())
        };
        if let Err(e) = step.await {
            lost(&shared, &app, &e);
            let profile = pair.profile;
            match Pair::reconnect(&shared, profile, &app).await {
                Some(p) => pair = p,
                None => break,
            }
        }
    }
    lock(&shared.used).extend(used);
}

/// A transaction that changes the settings for a while, with a read inside
/// (compared like any other); after it the profile's settings are back.
async fn detour(
    shared: &Shared,
    pair: &mut Pair,
    rng: &mut Rng,
    used: &mut BTreeSet<Combo>,
) -> Result<(), Lost> {
    let home = pair.profile;
    let other = 1 + (home + rng.index(PROFILES.len() - 2)) % (PROFILES.len() - 1);
    let (begin, end) = Detour::pick(rng).sql(other, shared.s());
    pair.both(&begin).await.map_err(Lost::Closed)?;
    bump(&shared.counters.settings_changes);
    // Not a volatile read: now() stays the same inside a transaction.
    let (si, vi, protocol) = loop {
        let read = pick_read(shared, rng);
        if shared.shapes[read.0].kind != Kind::Volatile {
            break read;
        }
    };
    used.insert((si, vi, protocol, other));
    pair.profile = other;
    let read = check_read(
        shared,
        pair,
        si,
        vi,
        protocol,
        "workload (in a transaction)",
    )
    .await;
    pair.profile = home;
    read?;
    pair.both(end).await.map_err(Lost::Closed)
}

/// Three reads pipelined on the proxy connection (sent before the first
/// answer is read), each then compared with the origin.
async fn pipelined(shared: &Shared, pair: &mut Pair, reads: &[Read]) -> Result<(), Lost> {
    let [a, b, c] = reads else {
        return Ok(());
    };
    let shape = |r: &Read| &shared.shapes[r.0];
    let values = |r: &Read| &shared.shapes[r.0].values[r.1];
    let proxy = &pair.proxy;
    let (pa, pb, pc) = tokio::join!(
        proxy.read_shared(shape(a), values(a), a.2),
        proxy.read_shared(shape(b), values(b), b.2),
        proxy.read_shared(shape(c), values(c), c.2),
    );
    shared
        .counters
        .pipelined_reads
        .fetch_add(3, Ordering::Relaxed);
    for (read, proxied) in [(a, pa?), (b, pb?), (c, pc?)] {
        bump(&shared.counters.reads);
        let (si, vi, protocol) = *read;
        if shape(read).kind == Kind::Volatile {
            check_volatile(shared, pair, si, vi, protocol, "workload (pipelined)").await?;
            continue;
        }
        let origin = pair
            .origin
            .read_shared(shape(read), values(read), protocol)
            .await?;
        if !proxied.same(&origin) {
            converge(shared, pair, si, vi, protocol, "workload (pipelined)").await?;
        }
    }
    Ok(())
}

/// Compare one read through the proxy with the origin; on a difference,
/// retry until the proxy converges or the staleness bound passes.
async fn check_read(
    shared: &Shared,
    pair: &mut Pair,
    si: usize,
    vi: usize,
    protocol: Protocol,
    phase: &'static str,
) -> Result<bool, Lost> {
    let shape = &shared.shapes[si];
    if shape.kind == Kind::Volatile {
        return check_volatile(shared, pair, si, vi, protocol, phase).await;
    }
    let values = &shape.values[vi];
    let proxied = pair.proxy.read(si, shape, values, protocol).await?;
    bump(&shared.counters.reads);
    let origin = pair.origin.read(si, shape, values, protocol).await?;
    if proxied.same(&origin) {
        return Ok(true);
    }
    converge(shared, pair, si, vi, protocol, phase).await
}

/// Read origin, proxy, origin until the proxy's answer equals one of the
/// origin's around it; a mismatch once the staleness bound has passed.
async fn converge(
    shared: &Shared,
    pair: &mut Pair,
    si: usize,
    vi: usize,
    protocol: Protocol,
    phase: &'static str,
) -> Result<bool, Lost> {
    let shape = &shared.shapes[si];
    let values = &shape.values[vi];
    let deadline = Instant::now() + shared.options.staleness;
    let mut pause = Duration::from_millis(1);
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
        let before = pair.origin.read(si, shape, values, protocol).await?;
        let proxied = pair.proxy.read(si, shape, values, protocol).await?;
        bump(&shared.counters.reads);
        let after = pair.origin.read(si, shape, values, protocol).await?;
        if proxied.same(&before) || proxied.same(&after) {
            bump(&shared.counters.converged);
            return Ok(true);
        }
        if Instant::now() >= deadline {
            let origin = if before.same(&after) {
                after.to_string()
            } else {
                format!("{before}\n                (and a moment later) {after}")
            };
            shared.read_mismatch(phase, si, vi, protocol, pair.profile, &proxied, origin);
            return Ok(false);
        }
    }
}

/// A read calling a volatile function: it must run like on the origin (rows,
/// or the same SQLSTATE), and two reads in a row must differ (a cached
/// reply would repeat the function's value).
async fn check_volatile(
    shared: &Shared,
    pair: &mut Pair,
    si: usize,
    vi: usize,
    protocol: Protocol,
    phase: &'static str,
) -> Result<bool, Lost> {
    let shape = &shared.shapes[si];
    let values = &shape.values[vi];
    let first = pair.proxy.read(si, shape, values, protocol).await?;
    let second = pair.proxy.read(si, shape, values, protocol).await?;
    shared.counters.reads.fetch_add(2, Ordering::Relaxed);
    if first.row_count() > 0 && first.same(&second) {
        let origin = format!("(a volatile function: two reads must differ) {second}");
        shared.read_mismatch(phase, si, vi, protocol, pair.profile, &first, origin);
        return Ok(false);
    }
    let origin = pair.origin.read(si, shape, values, protocol).await?;
    if first.same_status(&origin) {
        return Ok(true);
    }
    let deadline = Instant::now() + shared.options.staleness;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let before = pair.origin.read(si, shape, values, protocol).await?;
        let proxied = pair.proxy.read(si, shape, values, protocol).await?;
        bump(&shared.counters.reads);
        let after = pair.origin.read(si, shape, values, protocol).await?;
        if proxied.same_status(&before) || proxied.same_status(&after) {
            bump(&shared.counters.converged);
            return Ok(true);
        }
        if Instant::now() >= deadline {
            shared.read_mismatch(
                phase,
                si,
                vi,
                protocol,
                pair.profile,
                &proxied,
                after.to_string(),
            );
            return Ok(false);
        }
    }
}

// ---------------------------------------------------------------------------
// The final check
// ---------------------------------------------------------------------------

/// Writes have stopped: every combination read during the run converges
/// (the proxy catches up), then is compared exactly, read twice through the
/// proxy. Returns the cache hits of the exact pass.
async fn final_check(shared: &Arc<Shared>) -> Result<(Option<u64>, Served), VerifyError> {
    let used = std::mem::take(&mut *lock(&shared.used));
    let mut by_profile: BTreeMap<usize, Vec<Combo>> = BTreeMap::new();
    for combo in used {
        by_profile.entry(combo.3).or_default().push(combo);
    }
    let by_profile = Arc::new(by_profile);
    // Pass 1: converge.
    run_final_pass(shared, &by_profile, false).await?;
    // Pass 2: exact.
    let hits = shared.options.hits.clone();
    let before = hits.as_ref().map(|h| h());
    run_final_pass(shared, &by_profile, true).await?;
    let final_hits = match (before, hits) {
        (Some(b), Some(h)) => Some(h().saturating_sub(b)),
        _ => None,
    };
    Ok((final_hits, served_by_shape(shared, &by_profile).await))
}

/// Per shape: name, reads, hits.
type Served = Vec<(&'static str, u64, u64)>;

/// The second exact read of each combination, one at a time with the hit
/// counter read around it: which shapes the cache answers once nothing
/// moves. Returns (shape name, reads, hits) for every non-volatile shape
/// read; nothing without a counter.
async fn served_by_shape(shared: &Arc<Shared>, by_profile: &BTreeMap<usize, Vec<Combo>>) -> Served {
    let Some(hits) = shared.options.hits.clone() else {
        return Vec::new();
    };
    let count = move || {
        let hits = Arc::clone(&hits);
        async move { tokio::task::spawn_blocking(move || hits()).await.ok() }
    };
    let mut tally: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for (&profile, combos) in by_profile {
        let app = format!("served-{profile}");
        let Some(mut pair) = Pair::reconnect(shared, profile, &app).await else {
            continue;
        };
        for &(si, vi, protocol, _) in combos {
            let shape = &shared.shapes[si];
            if shape.kind == Kind::Volatile {
                continue;
            }
            // Twice: the first may capture (admission, a lost entry).
            if pair
                .proxy
                .read(si, shape, &shape.values[vi], protocol)
                .await
                .is_err()
            {
                continue;
            }
            let Some(before) = count().await else {
                continue;
            };
            let read = pair
                .proxy
                .read(si, shape, &shape.values[vi], protocol)
                .await;
            let Some(after) = count().await else { continue };
            if read.is_ok() {
                let entry = tally.entry(shape.name).or_default();
                entry.0 += 1;
                entry.1 += after.saturating_sub(before);
            }
        }
    }
    tally
        .into_iter()
        .map(|(name, (r, h))| (name, r, h))
        .collect()
}

async fn run_final_pass(
    shared: &Arc<Shared>,
    by_profile: &Arc<BTreeMap<usize, Vec<Combo>>>,
    exact: bool,
) -> Result<(), VerifyError> {
    let mut tasks = JoinSet::new();
    for &profile in by_profile.keys() {
        let shared = Arc::clone(shared);
        let by_profile = Arc::clone(by_profile);
        tasks.spawn(async move {
            let app = format!("final-{profile}");
            let combos = by_profile.get(&profile).cloned().unwrap_or_default();
            let Some(mut pair) = Pair::reconnect(&shared, profile, &app).await else {
                return;
            };
            for (si, vi, protocol, _) in combos {
                let checked = if exact {
                    exact_read(&shared, &mut pair, si, vi, protocol).await
                } else {
                    check_read(&shared, &mut pair, si, vi, protocol, "final")
                        .await
                        .map(|_| ())
                };
                if let Err(e) = checked {
                    lost(&shared, &app, &e);
                    match Pair::reconnect(&shared, profile, &app).await {
                        Some(p) => pair = p,
                        None => return,
                    }
                }
            }
        });
    }
    join_all(tasks).await
}

/// With nothing moving: the origin's answer, then the proxy's twice (the
/// second most likely from the cache); both must be the origin's.
async fn exact_read(
    shared: &Shared,
    pair: &mut Pair,
    si: usize,
    vi: usize,
    protocol: Protocol,
) -> Result<(), Lost> {
    bump(&shared.counters.final_combinations);
    let shape = &shared.shapes[si];
    if shape.kind == Kind::Volatile {
        return check_volatile(shared, pair, si, vi, protocol, "final (exact)")
            .await
            .map(|_| ());
    }
    let values = &shape.values[vi];
    let origin = pair.origin.read(si, shape, values, protocol).await?;
    for read in ["final (exact)", "final (exact, second read)"] {
        let proxied = pair.proxy.read(si, shape, values, protocol).await?;
        bump(&shared.counters.reads);
        if !proxied.same(&origin) {
            shared.read_mismatch(
                read,
                si,
                vi,
                protocol,
                pair.profile,
                &proxied,
                origin.to_string(),
            );
            break;
        }
    }
    Ok(())
}
