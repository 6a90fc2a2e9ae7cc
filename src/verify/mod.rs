//! `pgcache verify`: a seeded differential tester. It creates its own
//! schema on the origin, writes to it concurrently (directly on the origin
//! and through the proxy), reads it through the proxy from a space of query
//! shapes, protocols and session settings, and compares every read with the
//! origin's answer under the same settings. Since the origin moves while it
//! reads, a difference counts only if the proxy does not converge: on a
//! difference it reads origin, proxy, origin again until the proxy's answer
//! equals one of the two origin answers around it, or
//! [`VerifyOptions::staleness`] has passed (a **mismatch**). With faults on,
//! it also terminates the change stream's walsender, drops connections in
//! the middle of pipelines and (with a hook) restarts the origin. At the end
//! the writes stop and every shape, value set, protocol and settings profile
//! used is compared once more, exactly, each read twice through the proxy.
//!
//! One seed gives the same schema, rows, shapes, values and operation
//! sequences; the interleaving of the concurrent tasks is the machine's.
//! See `docs/testing.md`.

mod faults;
mod metrics;
mod outcome;
mod schema;
mod settings;
mod shapes;
mod values;
mod workload;
mod writes;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use metrics::read_counter;

/// Reads the proxy's cache-hit counter (`pgcache_cache_hits_total`).
pub type HitCounter = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Restarts the origin server; the future completes once it accepts
/// connections again.
pub type RestartHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What [`run`] does.
#[derive(Clone)]
pub struct VerifyOptions {
    /// The origin, directly (a superuser, or a role that may create the
    /// schema and, for faults, terminate the walsender).
    pub origin: tokio_postgres::Config,
    /// The same database through the proxy.
    pub proxy: tokio_postgres::Config,
    pub seed: u64,
    /// How long the concurrent workload runs (the final check comes after).
    pub duration: Duration,
    /// Schema for the tester's tables, dropped and recreated at the start
    /// (lower-case letters, digits and `_`).
    pub schema: String,
    /// Inject faults every few seconds.
    pub faults: bool,
    /// How long the proxy may take to converge on the origin's answer.
    pub staleness: Duration,
    /// The proxy's cache-hit counter, if it can be read.
    pub hits: Option<HitCounter>,
    /// The replication slot whose walsender the faults terminate; `None`:
    /// every slot named `pgcache%` (only where no other proxy shares the
    /// origin).
    pub fault_slot: Option<String>,
    /// Restarts the origin as one of the faults; `None`: never.
    pub restart_origin: Option<RestartHook>,
    /// Multiplies the time between faults, `TRUNCATE`s and `ALTER TABLE`s
    /// (1: a fault every 2–5 s, a schema change every 3–7 s, a truncate
    /// every 6–12 s).
    pub calm: u32,
}

impl VerifyOptions {
    /// Defaults: seed 1, 60 s, schema `pgcache_verify`, no faults,
    /// staleness 5 s, no hit counter.
    pub fn new(origin: tokio_postgres::Config, proxy: tokio_postgres::Config) -> VerifyOptions {
        VerifyOptions {
            origin,
            proxy,
            seed: 1,
            duration: Duration::from_secs(60),
            schema: "pgcache_verify".to_owned(),
            faults: false,
            staleness: Duration::from_secs(5),
            hits: None,
            fault_slot: None,
            restart_origin: None,
            calm: 1,
        }
    }
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("seed", &self.seed)
            .field("duration", &self.duration)
            .field("schema", &self.schema)
            .field("faults", &self.faults)
            .field("staleness", &self.staleness)
            .field("hits", &self.hits.is_some())
            .field("fault_slot", &self.fault_slot)
            .field("restart_origin", &self.restart_origin.is_some())
            .field("calm", &self.calm)
            .finish_non_exhaustive()
    }
}

/// Why a run could not be carried out (a mismatch is not an error: it is
/// in the [`Report`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// The options cannot work.
    InvalidOptions(String),
    /// No connection to `target` (`origin` or `proxy`).
    Connect {
        target: &'static str,
        reason: String,
    },
    /// Creating the schema or its rows on the origin failed.
    Setup { statement: String, reason: String },
    /// A task of the tester itself failed (a bug of the tester).
    Task(String),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::InvalidOptions(why) => write!(f, "invalid verify options: {why}"),
            VerifyError::Connect { target, reason } => {
                write!(f, "cannot connect to the {target}: {reason}")
            }
            VerifyError::Setup { statement, reason } => {
                write!(
                    f,
                    "setting up the schema failed: {reason}\n  statement: {statement}"
                )
            }
            VerifyError::Task(why) => write!(f, "a task of the tester failed: {why}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// One read where the proxy did not converge on the origin's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// When and how: `workload`, `final` (after the writes stopped), `own
    /// write by …`.
    pub phase: String,
    /// The shape's name in the tester's list.
    pub shape: String,
    /// The statement as sent (literals inlined for the simple protocol).
    pub statement: String,
    /// Bind parameters (extended protocol), rendered as literals.
    pub parameters: Vec<String>,
    pub protocol: String,
    /// The session settings the read ran under.
    pub settings: String,
    pub proxy: String,
    pub origin: String,
    /// Time since the workload started.
    pub at: Duration,
    pub seed: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  [{}] shape {} at {:.1}s (seed {})",
            self.phase,
            self.shape,
            self.at.as_secs_f64(),
            self.seed
        )?;
        writeln!(f, "    statement:  {}", self.statement)?;
        if !self.parameters.is_empty() {
            writeln!(f, "    parameters: {}", self.parameters.join(", "))?;
        }
        writeln!(f, "    protocol:   {}", self.protocol)?;
        writeln!(f, "    settings:   {}", self.settings)?;
        writeln!(f, "    proxy:      {}", self.proxy.trim_end())?;
        writeln!(f, "    origin:     {}", self.origin.trim_end())
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub duration: Duration,
    pub faults: bool,
    /// Reads through the proxy (retries and the final check included).
    pub reads: u64,
    /// Reads whose first answer differed from the origin's and converged.
    pub converged_after_retry: u64,
    pub writes_direct: u64,
    pub writes_proxied: u64,
    /// Writes the origin refused (duplicate keys and the like; expected).
    pub writes_refused: u64,
    pub transactions: u64,
    pub rollbacks: u64,
    pub truncates: u64,
    /// `ALTER TABLE`s: columns added, dropped, retyped.
    pub schema_changes: u64,
    /// In-transaction and read-your-writes checks made by the writers.
    pub own_write_checks: u64,
    pub walsender_terminations: u64,
    pub pipelines_dropped: u64,
    pub origin_restarts: u64,
    /// Session settings changed mid-session, or for a transaction.
    pub settings_changes: u64,
    /// Reads sent three at a time on one proxy connection.
    pub pipelined_reads: u64,
    /// Cache hits during the run, when a counter was given.
    pub hits: Option<u64>,
    /// Reads while nothing was written (the quiet part of each write cycle)…
    pub quiet_reads: u64,
    /// … and cache hits then, when a counter was given.
    pub quiet_hits: Option<u64>,
    /// Shape × values × protocol × settings combinations checked at the end.
    pub final_combinations: u64,
    /// Cache hits during the final check, when a counter was given.
    pub final_hits: Option<u64>,
    /// After the final check, each combination read twice more, one at a
    /// time: per non-volatile shape, (name, second reads, hits among them).
    /// Empty without a counter.
    pub served: Vec<(&'static str, u64, u64)>,
    pub mismatches: u64,
    /// The first few mismatches.
    pub examples: Vec<Mismatch>,
    /// Unexpected failures (connections lost outside an origin restart,
    /// statements that hung); the first few in `error_examples`.
    pub errors: u64,
    pub error_examples: Vec<String>,
}

impl Report {
    /// No mismatch and no unexpected error.
    pub fn is_clean(&self) -> bool {
        self.mismatches == 0 && self.errors == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pgcache verify: seed {}, workload {:.1}s, faults {}",
            self.seed,
            self.duration.as_secs_f64(),
            if self.faults { "on" } else { "off" }
        )?;
        writeln!(
            f,
            "  reads through the proxy: {} ({} pipelined; {} converged after a retry); \
             {} settings changes",
            self.reads, self.pipelined_reads, self.converged_after_retry, self.settings_changes
        )?;
        writeln!(
            f,
            "  writes: {} ({} direct, {} through the proxy; {} refused by the origin as expected), \
             {} transactions ({} rolled back), {} truncates, {} schema changes, \
             {} own-write checks",
            self.writes_direct + self.writes_proxied,
            self.writes_direct,
            self.writes_proxied,
            self.writes_refused,
            self.transactions,
            self.rollbacks,
            self.truncates,
            self.schema_changes,
            self.own_write_checks
        )?;
        if self.faults {
            writeln!(
                f,
                "  faults: {} walsender terminations, {} pipelines dropped, {} origin restarts",
                self.walsender_terminations, self.pipelines_dropped, self.origin_restarts
            )?;
        }
        match self.hits {
            Some(hits) => {
                let share = if self.reads == 0 {
                    0.0
                } else {
                    100.0 * hits as f64 / self.reads as f64
                };
                writeln!(f, "  cache hits: {hits} ({share:.0}% of the reads)")?;
            }
            None => writeln!(f, "  cache hits: not known (no counter)")?,
        }
        if let Some(quiet) = self.quiet_hits {
            let share = if self.quiet_reads == 0 {
                0.0
            } else {
                100.0 * quiet as f64 / self.quiet_reads as f64
            };
            writeln!(
                f,
                "  while no writes ran: {} reads, {quiet} hits ({share:.0}%)",
                self.quiet_reads
            )?;
        }
        write!(
            f,
            "  final check: {} combinations, each read twice through the proxy",
            self.final_combinations
        )?;
        match self.final_hits {
            Some(h) => writeln!(f, ", {h} hits")?,
            None => writeln!(f)?,
        }
        let unserved: Vec<String> = self
            .served
            .iter()
            .filter(|&&(_, reads, hits)| hits < reads)
            .map(|&(name, reads, hits)| format!("{name} {hits}/{reads}"))
            .collect();
        if !self.served.is_empty() {
            if unserved.is_empty() {
                writeln!(f, "  at rest, every shape served from the cache")?;
            } else {
                writeln!(
                    f,
                    "  at rest, shapes not always served from the cache (hits/reads): {}",
                    unserved.join(", ")
                )?;
            }
        }
        writeln!(f, "  mismatches: {}", self.mismatches)?;
        for m in &self.examples {
            write!(f, "{m}")?;
        }
        writeln!(f, "  unexpected errors: {}", self.errors)?;
        for e in &self.error_examples {
            writeln!(f, "    {e}")?;
        }
        Ok(())
    }
}

/// Run the differential test described by `options`.
pub async fn run(options: VerifyOptions) -> Result<Report, VerifyError> {
    workload::run(options).await
}

/// A restart hook running `command` with `sh -c`, then waiting (up to 60 s)
/// until the origin accepts connections again.
fn restart_hook(command: String, origin: tokio_postgres::Config) -> RestartHook {
    let command = Arc::new(command);
    Arc::new(move || {
        let (command, origin) = (Arc::clone(&command), origin.clone());
        Box::pin(async move {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command.as_str())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .status()
                .await;
            if !status.as_ref().is_ok_and(std::process::ExitStatus::success) {
                eprintln!("pgcache verify: restart command failed: {status:?}");
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                if outcome::Conn::connect(&origin).await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    })
}

/// The metric `--metrics` reads.
const HITS_METRIC: &str = "pgcache_cache_hits_total";

/// `pgcache verify`: run, print the report; `Err` on any mismatch or
/// unexpected error.
pub async fn command(args: crate::cli::VerifyArgs) -> Result<(), String> {
    let origin: tokio_postgres::Config =
        args.origin.parse().map_err(|e| format!("--origin: {e}"))?;
    let proxy: tokio_postgres::Config = args.proxy.parse().map_err(|e| format!("--proxy: {e}"))?;
    let mut options = VerifyOptions::new(origin, proxy);
    options.seed = args.seed;
    options.duration = args.duration;
    options.schema = args.schema;
    options.faults = args.faults;
    options.staleness = args.staleness;
    options.fault_slot = args.fault_slot;
    options.calm = args.calm;
    if let Some(command) = args.restart_command {
        options.restart_origin = Some(restart_hook(command, options.origin.clone()));
    }
    if let Some(url) = args.metrics {
        // Blocking reads of a local endpoint, three times a run.
        let first = read_counter(&url, HITS_METRIC).map_err(|e| format!("--metrics: {e}"))?;
        let last = Arc::new(std::sync::atomic::AtomicU64::new(first));
        options.hits = Some(Arc::new(move || {
            use std::sync::atomic::Ordering;
            match read_counter(&url, HITS_METRIC) {
                Ok(value) => {
                    last.store(value, Ordering::Relaxed);
                    value
                }
                Err(_) => last.load(Ordering::Relaxed),
            }
        }));
    }
    let report = run(options).await.map_err(|e| e.to_string())?;
    print!("{report}");
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!(
            "{} mismatch(es) and {} unexpected error(s); rerun with --seed {} to reproduce",
            report.mismatches, report.errors, report.seed
        ))
    }
}
