//! `pgcache demo`: a throwaway PostgreSQL with a sample schema, the proxy in
//! front of it, and a short workload through the proxy.
//!
//! 1. [`start_origin`] runs `initdb` and `pg_ctl start` in a fresh temporary
//!    directory (as the `postgres` OS user through `sudo` when pgcache runs as
//!    root) and waits until the server accepts connections.
//! 2. [`SAMPLE_SCHEMA`] is loaded into database `demo`.
//! 3. The proxy ([`crate::proxy::serve`]) and, when configured, the admin
//!    endpoint start in-process, with the origin pointed at the throwaway server.
//! 4. The workload runs through the proxy and its summary is printed, followed
//!    by the proxy's counters.
//! 5. Unless told to exit, the proxy keeps running until Ctrl-C or SIGTERM.
//!
//! Whatever happens, the proxy is shut down, PostgreSQL is stopped and the
//! temporary directory removed.

/// `println!` that ignores a closed stdout (`pgcache demo | head`): the
/// demo must still clean up rather than panic on a broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` with the same tolerance as [`say!`].
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod origin;
mod workload;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Metrics, PopulationLabels};
use crate::check::describe_pg_error;
use crate::config::Config;
use crate::config::{CacheMode, CdcMode};

pub use origin::{OriginOptions, ThrowawayOrigin, start_origin};
pub use workload::{Kind, KindSummary, Mix, Summary, percentile, run as run_workload};

/// The sample schema loaded into database [`DEMO_DATABASE`]: `customers`,
/// `products` and `orders`, a few thousand rows from `generate_series`.
pub const SAMPLE_SCHEMA: &str = include_str!("schema.sql");

/// Database the sample schema goes into.
pub const DEMO_DATABASE: &str = "demo";

/// Extra time, beyond `shutdown.timeout`, the proxy gets to return after its
/// shutdown signal.
const PROXY_STOP_SLACK: Duration = Duration::from_secs(5);

/// What `pgcache demo` should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How long the workload runs (0: no workload).
    pub seconds: u64,
    /// Concurrent workload connections (0: no workload).
    pub clients: usize,
    /// Stop after the workload instead of waiting for Ctrl-C.
    pub exit_after_workload: bool,
}

/// Why `pgcache demo` failed. Every message says what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum DemoError {
    /// A PostgreSQL server program is neither on PATH nor in /usr/lib/postgresql/15/bin.
    PostgresNotInstalled { program: &'static str },
    /// pgcache runs as root and needs `sudo` to run PostgreSQL as `postgres`.
    SudoNotInstalled,
    /// pgcache runs as root and there is no `postgres` OS user.
    NoPostgresUser { reason: String },
    /// Creating or writing into the temporary directory failed.
    TempDir { path: PathBuf, source: io::Error },
    /// A program could not be started.
    Spawn { program: String, source: io::Error },
    /// `initdb` failed.
    Initdb {
        status: String,
        output: String,
        hint: Option<String>,
    },
    /// The throwaway server did not come up.
    ServerStart {
        reason: String,
        log_file: PathBuf,
        log_tail: String,
    },
    /// The throwaway server could not be stopped; its directory was left in place.
    ServerStop {
        data_dir: PathBuf,
        dir: PathBuf,
        output: String,
    },
    /// Removing the temporary directory failed.
    RemoveTempDir { path: PathBuf, source: io::Error },
    /// A statement on the throwaway server failed (creating the database, loading the schema).
    Origin { action: String, reason: String },
    /// A listener could not be bound.
    Bind {
        what: &'static str,
        addr: String,
        source: io::Error,
    },
    /// The proxy or admin endpoint stopped with an error.
    Proxy { reason: String },
    /// Ctrl-C / SIGTERM handlers could not be installed.
    Signals { source: io::Error },
    /// Not a single workload statement succeeded through the proxy.
    Workload { first_error: String },
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::PostgresNotInstalled { program } => write!(
                f,
                "`{program}` was found neither on PATH nor in /usr/lib/postgresql/15/bin; the \
                 demo needs the PostgreSQL 15 server programs: install them with \
                 `apt-get install postgresql-15` (or put the bin directory of an existing \
                 installation on PATH)"
            ),
            DemoError::SudoNotInstalled => write!(
                f,
                "pgcache runs as root, and PostgreSQL refuses to run as root, so the demo starts \
                 it as the `postgres` OS user through `sudo`, which is not installed: install it \
                 with `apt-get install sudo`, or run `pgcache demo` as a non-root user"
            ),
            DemoError::NoPostgresUser { reason } => write!(
                f,
                "pgcache runs as root, so the demo starts PostgreSQL as the `postgres` OS user, \
                 but that user could not be looked up ({reason}); `apt-get install postgresql-15` \
                 creates it (or `useradd --system postgres`), or run `pgcache demo` as a non-root \
                 user"
            ),
            DemoError::TempDir { path, source } => write!(
                f,
                "could not set up the demo's temporary directory {}: {source} (set TMPDIR to a \
                 writable directory)",
                path.display()
            ),
            DemoError::Spawn { program, source } => {
                write!(f, "could not run `{program}`: {source}")
            }
            DemoError::Initdb {
                status,
                output,
                hint,
            } => {
                write!(f, "initdb failed ({status})")?;
                if let Some(hint) = hint {
                    write!(f, "; {hint}")?;
                }
                write!(f, "\n{}", indent(output))
            }
            DemoError::ServerStart {
                reason,
                log_file,
                log_tail,
            } => {
                write!(f, "the throwaway PostgreSQL did not start: {reason}")?;
                // The log itself is removed with the temporary directory.
                if log_tail.is_empty() {
                    write!(f, "\n(its log {} was empty)", log_file.display())
                } else {
                    write!(f, "\nlast lines of its log:\n{}", indent(log_tail))
                }
            }
            DemoError::ServerStop {
                data_dir,
                dir,
                output,
            } => write!(
                f,
                "could not stop the throwaway PostgreSQL: {output}\nstop it with `pg_ctl stop -m \
                 immediate -D {}` (as the postgres user when root), then remove {}",
                data_dir.display(),
                dir.display()
            ),
            DemoError::RemoveTempDir { path, source } => write!(
                f,
                "could not remove the demo's temporary directory {}: {source}; remove it by hand",
                path.display()
            ),
            DemoError::Origin { action, reason } => write!(f, "{action} failed: {reason}"),
            DemoError::Bind { what, addr, source } => {
                write!(f, "could not listen on {addr} for {what}: {source}")?;
                if source.kind() == io::ErrorKind::AddrNotAvailable {
                    write!(f, " (the host part is not an address of this machine)")?;
                }
                Ok(())
            }
            DemoError::Proxy { reason } => write!(f, "{reason}"),
            DemoError::Signals { source } => {
                write!(f, "could not install the Ctrl-C/SIGTERM handlers: {source}")
            }
            DemoError::Workload { first_error } => write!(
                f,
                "no workload statement succeeded through the proxy; the first error was: \
                 {first_error}"
            ),
        }
    }
}

impl std::error::Error for DemoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DemoError::TempDir { source, .. }
            | DemoError::Spawn { source, .. }
            | DemoError::RemoveTempDir { source, .. }
            | DemoError::Bind { source, .. }
            | DemoError::Signals { source } => Some(source),
            _ => None,
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Ctrl-C and SIGTERM, installed up front so neither kills the process
/// before cleanup.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals, DemoError> {
        let install = |kind| signal(kind).map_err(|source| DemoError::Signals { source });
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Resolves on the next Ctrl-C or SIGTERM, naming it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Run `pgcache demo` (see the module documentation).
pub async fn run(config: Config, opts: DemoOptions) -> Result<(), DemoError> {
    let mut signals = StopSignals::install()?;

    say!("Starting a throwaway PostgreSQL…");
    // Started in its own task so that Ctrl-C cannot abandon initdb or pg_ctl
    // half-way: on Ctrl-C the start is allowed to finish, then it is undone.
    let mut starting = tokio::spawn(async { start_origin(&OriginOptions::default()).await });
    let origin = tokio::select! {
        started = &mut starting => started.map_err(start_task_failed)??,
        which = signals.recv() => {
            say!("{which}: stopping as soon as PostgreSQL has finished starting…");
            let origin = starting.await.map_err(start_task_failed)??;
            return origin.stop().await;
        }
    };
    say!(
        "PostgreSQL is running in {} on {}:{} (log: {}).",
        origin.dir().display(),
        origin.host(),
        origin.port(),
        origin.log_file().display()
    );

    let result = with_origin(config, &opts, &origin, &mut signals).await;

    say!(
        "Stopping PostgreSQL and removing {}…",
        origin.dir().display()
    );
    let stopped = origin.stop().await;
    match (result, stopped) {
        (Err(e), Err(stop)) => {
            eprintln!("error: {stop}");
            Err(e)
        }
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(())) => {
            say!("Done.");
            Ok(())
        }
    }
}

fn start_task_failed(error: tokio::task::JoinError) -> DemoError {
    DemoError::Origin {
        action: "starting the throwaway PostgreSQL".to_string(),
        reason: error.to_string(),
    }
}

/// Everything between starting and stopping the origin.
async fn with_origin(
    config: Config,
    opts: &DemoOptions,
    origin: &ThrowawayOrigin,
    signals: &mut StopSignals,
) -> Result<(), DemoError> {
    tokio::select! {
        loaded = load_sample_schema(origin) => loaded?,
        which = signals.recv() => {
            say!("{which}: stopping.");
            return Ok(());
        }
    }
    say!("Loaded the sample schema into database {DEMO_DATABASE:?} (customers, products, orders).");

    let config = demo_config(config, origin);
    let grace = config.shutdown.timeout + PROXY_STOP_SLACK;
    let mut proxy = RunningProxy::start(config).await?;
    let result = with_proxy(opts, &mut proxy, origin, signals).await;
    say!("Stopping the proxy…");
    let stopped = proxy.shutdown(grace).await;
    result.and(stopped)
}

/// Everything while the proxy runs.
async fn with_proxy(
    opts: &DemoOptions,
    proxy: &mut RunningProxy,
    origin: &ThrowawayOrigin,
    signals: &mut StopSignals,
) -> Result<(), DemoError> {
    let psql = proxy.psql_command();
    say!("Proxy listening on {}; connect with:", proxy.proxy_addr);
    say!("    {psql}");
    match proxy.admin_addr {
        Some(addr) => say!("Metrics: http://{}/metrics", display_addr(addr)),
        None => say!("Metrics: admin endpoint disabled (set admin.listen in pgcache.toml)."),
    }

    if proxy.stream {
        if wait_until(Duration::from_secs(15), || {
            proxy.metrics.cdc_serving.get() == 1
        })
        .await
        {
            say!(
                "Change stream: following the origin's committed changes (publication pgcache, temporary slot)."
            );
        } else {
            say!(
                "Change stream: not serving yet (see the log); statements are forwarded meanwhile."
            );
        }
    }

    if opts.seconds > 0 && opts.clients > 0 {
        // Reads first (the cache fills and answers), then the full mix
        // (writes through the proxy drop the entries of what they write),
        // then reads while another program writes on the origin directly
        // (the change stream drops what they change).
        let third = opts.seconds / 3;
        let reads = opts.seconds - 2 * third;
        let phases = [
            (Mix::ReadsOnly, reads, "reads only", false),
            (Mix::WithWrites, third, "reads and writes", false),
            (
                Mix::ReadsOnly,
                if proxy.stream { third } else { 0 },
                "reads, with writes on the origin directly",
                true,
            ),
        ];
        let mut total = 0;
        let mut first_error = None;
        for (mix, seconds, label, origin_writes) in phases {
            if seconds == 0 {
                continue;
            }
            say!(
                "Running {seconds} s of {label} with {} client{} through the proxy…",
                opts.clients,
                if opts.clients == 1 { "" } else { "s" }
            );
            let (hits0, misses0) = (
                proxy.metrics.cache_hits.get(),
                proxy.metrics.cache_misses.get(),
            );
            let workload = workload::run(
                proxy.client_config(),
                opts.clients,
                Duration::from_secs(seconds),
                mix,
            );
            let writer = async {
                if origin_writes {
                    origin_writer(origin, Duration::from_secs(seconds)).await
                } else {
                    Ok(0)
                }
            };
            let (summary, written) = tokio::select! {
                both = async { tokio::join!(workload, writer) } => both,
                which = signals.recv() => {
                    say!("{which}: stopping.");
                    return Ok(());
                }
            };
            if origin_writes {
                say!(
                    "Meanwhile {} price updates were committed on the origin directly.",
                    written?
                );
            }
            say_raw!("{summary}");
            let hits = proxy.metrics.cache_hits.get() - hits0;
            let misses = proxy.metrics.cache_misses.get() - misses0;
            if hits + misses > 0 {
                say!(
                    "Cache ({label}): {hits} of {} cacheable statements answered from memory ({:.0}%).",
                    hits + misses,
                    100.0 * hits as f64 / (hits + misses) as f64
                );
            }
            total += summary.total;
            if first_error.is_none() {
                first_error = summary.first_error.clone();
            }
        }
        say!("Proxy counters: {}", proxy_counters(&proxy.metrics));
        if proxy.stream {
            check_against_origin(proxy, origin).await?;
        }
        if total == 0 {
            return Err(DemoError::Workload {
                first_error: first_error.unwrap_or_else(|| "none recorded".to_string()),
            });
        }
    } else {
        say!("Workload skipped (--seconds 0 or --clients 0).");
    }

    if opts.exit_after_workload {
        return Ok(());
    }
    say!("Proxy is running; connect with {psql} … Press Ctrl-C to stop.");
    tokio::select! {
        which = signals.recv() => {
            say!("{which}: stopping.");
            Ok(())
        }
        ended = proxy.wait_unexpected_end() => Err(ended),
    }
}

/// Poll `condition` every 10 ms for up to `limit`; whether it held.
async fn wait_until(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Update product prices on the origin directly (not through the proxy),
/// one small transaction every 10 ms, for `duration`; how many committed.
async fn origin_writer(origin: &ThrowawayOrigin, duration: Duration) -> Result<u64, DemoError> {
    let client = origin.connect(DEMO_DATABASE).await?;
    let deadline = tokio::time::Instant::now() + duration;
    let mut rng = crate::rng::Rng::seeded();
    let mut written = 0;
    while tokio::time::Instant::now() < deadline {
        let id = rng.skewed_key(workload::PRODUCTS);
        client
            .execute(
                "UPDATE products SET price = price + 0.01 WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| DemoError::Origin {
                action: "updating prices on the origin directly".to_string(),
                reason: describe_pg_error(&e),
            })?;
        written += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(written)
}

/// Once the change stream has applied everything the origin committed,
/// read the hottest products through the proxy and directly: the answers
/// must be the same, cached or not.
async fn check_against_origin(
    proxy: &RunningProxy,
    origin: &ThrowawayOrigin,
) -> Result<(), DemoError> {
    let direct = origin.connect(DEMO_DATABASE).await?;
    let origin_err = |action: &str| {
        let action = action.to_string();
        move |e: tokio_postgres::Error| DemoError::Origin {
            action,
            reason: describe_pg_error(&e),
        }
    };
    let lsn: i64 = direct
        .query_one("SELECT (pg_current_wal_flush_lsn() - '0/0')::int8", &[])
        .await
        .map_err(origin_err("reading the origin's WAL position"))?
        .get(0);
    let caught_up = wait_until(Duration::from_secs(15), || {
        proxy.metrics.cdc_applied_lsn.get() >= lsn && proxy.metrics.cdc_serving.get() == 1
    })
    .await;
    if !caught_up {
        say!("Change stream did not catch up within 15 s; results not compared.");
        return Ok(());
    }
    let (via_proxy, conn) = proxy
        .client_config()
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| DemoError::Proxy {
            reason: describe_pg_error(&e),
        })?;
    tokio::spawn(conn);
    let hits0 = proxy.metrics.cache_hits.get();
    let mut compared = 0;
    for round in 0..2 {
        for id in 1..=50 {
            let sql = format!("SELECT name, price::text FROM products WHERE id = {id}");
            let text = |rows: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<Vec<Option<String>>> {
                rows.iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                        }
                        _ => None,
                    })
                    .collect()
            };
            let from_proxy =
                text(
                    via_proxy
                        .simple_query(&sql)
                        .await
                        .map_err(|e| DemoError::Proxy {
                            reason: describe_pg_error(&e),
                        })?,
                );
            let from_origin = text(
                direct
                    .simple_query(&sql)
                    .await
                    .map_err(origin_err("reading products directly"))?,
            );
            if from_proxy != from_origin {
                return Err(DemoError::Proxy {
                    reason: format!(
                        "round {round}: {sql} returned {from_proxy:?} through the proxy, \
                         {from_origin:?} from the origin"
                    ),
                });
            }
            compared += 1;
        }
    }
    say!(
        "Checked {compared} reads of the hottest products against the origin after the change \
         stream caught up: all equal ({} from the cache).",
        proxy.metrics.cache_hits.get() - hits0
    );
    Ok(())
}

/// Create database `demo` and load [`SAMPLE_SCHEMA`] into it.
async fn load_sample_schema(origin: &ThrowawayOrigin) -> Result<(), DemoError> {
    origin.create_database(DEMO_DATABASE).await?;
    let client = origin.connect(DEMO_DATABASE).await?;
    client
        .batch_execute(SAMPLE_SCHEMA)
        .await
        .map_err(|e| DemoError::Origin {
            action: "loading the sample schema".to_string(),
            reason: crate::check::describe_pg_error(&e),
        })
}

/// The configuration from `pgcache.toml`, with the origin replaced by the
/// throwaway server (superuser `postgres`, trust authentication).
fn demo_config(mut config: Config, origin: &ThrowawayOrigin) -> Config {
    config.origin.host = origin.host().to_string();
    config.origin.port = origin.port();
    config.origin.user = origin.user().to_string();
    config.origin.database = DEMO_DATABASE.to_string();
    config.origin.password = None;
    config.origin.passfile = None;
    // The demo is about the cache: on unless pgcache.toml asks for explicit.
    if config.cache.mode == CacheMode::Off {
        config.cache.mode = CacheMode::Auto;
    }
    config
}

/// The proxy's counters, for the line after the workload summary. One entry
/// per counter: adding one (cache hits, misses, …) is one line here.
fn proxy_counters(metrics: &Metrics) -> String {
    let counters = [
        (
            "client connections",
            Amount::Count(metrics.client_connections.get()),
        ),
        (
            "received",
            Amount::Bytes(metrics.client_bytes_received.get()),
        ),
        ("sent", Amount::Bytes(metrics.client_bytes_sent.get())),
        ("cache hits", Amount::Count(metrics.cache_hits.get())),
        ("cache misses", Amount::Count(metrics.cache_misses.get())),
        (
            "entries filled",
            Amount::Count(
                metrics
                    .cache_populations
                    .get_or_create(&PopulationLabels { result: "ok" })
                    .get(),
            ),
        ),
    ];
    counters
        .iter()
        .map(|(name, amount)| format!("{name} {amount}"))
        .collect::<Vec<_>>()
        .join(", ")
}

enum Amount {
    Count(u64),
    Bytes(u64),
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Amount::Count(n) => write!(f, "{n}"),
            Amount::Bytes(n) if n < 1024 => write!(f, "{n} B"),
            Amount::Bytes(n) if n < 1024 * 1024 => write!(f, "{:.1} KiB", n as f64 / 1024.0),
            Amount::Bytes(n) => write!(f, "{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
        }
    }
}

/// The in-process proxy and admin endpoint, with the means to stop them.
struct RunningProxy {
    shutdown: watch::Sender<bool>,
    proxy: Option<JoinHandle<io::Result<()>>>,
    admin: Option<JoinHandle<io::Result<()>>>,
    proxy_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    database: String,
    user: String,
    /// The change stream runs (cache on, `cdc.mode = "on"`).
    stream: bool,
}

impl RunningProxy {
    async fn start(config: Config) -> Result<RunningProxy, DemoError> {
        let metrics = Arc::new(Metrics::new());
        let (shutdown, _) = watch::channel(false);
        let shutdown_signal = |tx: &watch::Sender<bool>| {
            let mut rx = tx.subscribe();
            async move {
                // Also resolves when the sender is gone.
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };

        let proxy_listener = bind_with_fallback(&config.listen, "the proxy").await?;
        let proxy_addr = local_addr(&proxy_listener, &config.listen, "the proxy")?;
        let admin_listener = match &config.admin.listen {
            Some(addr) => Some((
                bind_with_fallback(addr, "the admin endpoint").await?,
                addr.clone(),
            )),
            None => None,
        };

        let database = config.origin.database.clone();
        let user = config.origin.user.clone();
        let stream = config.cache.mode != CacheMode::Off && config.cdc.mode == CdcMode::On;
        let proxy = tokio::spawn(crate::proxy::serve(
            proxy_listener,
            Arc::new(config),
            metrics.clone(),
            shutdown_signal(&shutdown),
        ));
        let mut admin_addr = None;
        let mut admin = None;
        if let Some((listener, requested)) = admin_listener {
            admin_addr = Some(local_addr(&listener, &requested, "the admin endpoint")?);
            admin = Some(tokio::spawn(crate::admin::serve(
                listener,
                metrics.clone(),
                shutdown_signal(&shutdown),
            )));
        }
        Ok(RunningProxy {
            shutdown,
            proxy: Some(proxy),
            admin,
            proxy_addr,
            admin_addr,
            metrics,
            database,
            user,
            stream,
        })
    }

    /// Where clients should connect: the listening address, with an
    /// unspecified address (0.0.0.0, ::) replaced by loopback.
    fn connect_ip(&self) -> IpAddr {
        match self.proxy_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        }
    }

    fn psql_command(&self) -> String {
        format!(
            "psql \"host={} port={} user={} dbname={}\"",
            self.connect_ip(),
            self.proxy_addr.port(),
            self.user,
            self.database
        )
    }

    fn client_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.connect_ip().to_string())
            .port(self.proxy_addr.port())
            .user(&self.user)
            .dbname(&self.database)
            .application_name("pgcache-demo-workload")
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// Resolves if the proxy or admin task ends while it should be running.
    async fn wait_unexpected_end(&mut self) -> DemoError {
        let (what, result, was_proxy) = tokio::select! {
            result = wait_task(&mut self.proxy) => ("the proxy", result, true),
            result = wait_task(&mut self.admin) => ("the admin endpoint", result, false),
        };
        // The finished handle is cleared so shutdown does not await it again.
        if was_proxy {
            self.proxy = None;
        } else {
            self.admin = None;
        }
        let reason = match result {
            Ok(Ok(())) => format!("{what} stopped unexpectedly"),
            Ok(Err(e)) => format!("{what} failed: {e}"),
            Err(e) => format!("{what} task failed: {e}"),
        };
        DemoError::Proxy { reason }
    }

    /// Signal shutdown and wait (up to `grace`) for both tasks to return.
    async fn shutdown(mut self, grace: Duration) -> Result<(), DemoError> {
        let _ = self.shutdown.send(true);
        let mut first_error = None;
        for (what, handle) in [
            ("the proxy", self.proxy.take()),
            ("the admin endpoint", self.admin.take()),
        ] {
            let Some(mut handle) = handle else { continue };
            let reason = match tokio::time::timeout(grace, &mut handle).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => format!("{what} failed: {e}"),
                Ok(Err(e)) => format!("{what} task failed: {e}"),
                Err(_) => {
                    handle.abort();
                    format!(
                        "{what} did not stop within {} s of being asked to",
                        grace.as_secs()
                    )
                }
            };
            if first_error.is_none() {
                first_error = Some(DemoError::Proxy { reason });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Waits for the task, or forever if there is none.
async fn wait_task<T>(handle: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// `host:port` for URLs: IPv6 in brackets, unspecified addresses as loopback.
fn display_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

fn local_addr(
    listener: &TcpListener,
    requested: &str,
    what: &'static str,
) -> Result<SocketAddr, DemoError> {
    listener.local_addr().map_err(|source| DemoError::Bind {
        what,
        addr: requested.to_string(),
        source,
    })
}

/// Bind `addr` (`host:port`); if the port is taken (or not ours to take),
/// bind an ephemeral port on the same host instead and say so.
async fn bind_with_fallback(addr: &str, what: &'static str) -> Result<TcpListener, DemoError> {
    let error = |addr: &str, source| DemoError::Bind {
        what,
        addr: addr.to_string(),
        source,
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
            ) =>
        {
            let Some(fallback) = ephemeral_on_same_host(addr) else {
                return Err(error(addr, e));
            };
            let listener = TcpListener::bind(&fallback)
                .await
                .map_err(|source| error(&fallback, source))?;
            let actual = listener
                .local_addr()
                .map_or_else(|_| fallback.clone(), |a| a.to_string());
            say!("Note: {addr} is unavailable ({e}); {what} listens on {actual} instead.");
            Ok(listener)
        }
        Err(e) => Err(error(addr, e)),
    }
}

/// `host:0` for a `host:port` address (`[::1]:6432` → `[::1]:0`).
fn ephemeral_on_same_host(addr: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Some(format!("{host}:0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_address_keeps_the_host() {
        assert_eq!(
            ephemeral_on_same_host("127.0.0.1:6432").as_deref(),
            Some("127.0.0.1:0")
        );
        assert_eq!(
            ephemeral_on_same_host("[::1]:6432").as_deref(),
            Some("[::1]:0")
        );
        assert_eq!(
            ephemeral_on_same_host("localhost:6432").as_deref(),
            Some("localhost:0")
        );
        assert_eq!(ephemeral_on_same_host("localhost"), None);
    }

    #[tokio::test]
    async fn taken_port_falls_back_to_an_ephemeral_one() -> Result<(), Box<dyn std::error::Error>> {
        let taken = TcpListener::bind("127.0.0.1:0").await?;
        let addr = taken.local_addr()?.to_string();
        let listener = bind_with_fallback(&addr, "the test").await?;
        let actual = listener.local_addr()?;
        assert_ne!(actual.to_string(), addr);
        assert_eq!(actual.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        Ok(())
    }

    #[test]
    fn counters_line() {
        let metrics = Metrics::new();
        metrics.client_connections.inc_by(4);
        metrics.client_bytes_received.inc_by(2048);
        metrics.client_bytes_sent.inc_by(3 * 1024 * 1024);
        metrics.cache_hits.inc_by(7);
        metrics.cache_misses.inc_by(3);
        assert_eq!(
            proxy_counters(&metrics),
            "client connections 4, received 2.0 KiB, sent 3.0 MiB, \
             cache hits 7, cache misses 3, entries filled 0"
        );
    }

    #[test]
    fn unspecified_addresses_display_as_loopback() {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9090);
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 9090);
        assert_eq!(display_addr(v4), "127.0.0.1:9090");
        assert_eq!(display_addr(v6), "[::1]:9090");
    }

    #[test]
    fn errors_say_what_to_install() {
        let missing = DemoError::PostgresNotInstalled { program: "initdb" }.to_string();
        assert!(
            missing.contains("apt-get install postgresql-15"),
            "{missing}"
        );
        let sudo = DemoError::SudoNotInstalled.to_string();
        assert!(sudo.contains("apt-get install sudo"), "{sudo}");
    }
}
