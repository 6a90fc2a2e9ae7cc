//! Change stream benchmark: how fast pgcache applies a large transaction
//! committed directly on the origin, and how stale a cached read can be while
//! the origin keeps committing.
//!
//! `scripts/bench-cdc` sets everything up (a throwaway PostgreSQL 15 cluster
//! with `wal_level=logical`, the tables `cdc_apply` and `cdc_heartbeat`, and
//! pgcache with `cache.mode = auto` and an admin endpoint) and runs this
//! program, which only measures; its docstring says what is measured. Against
//! a setup of your own (same tables, pgcache caching with the change stream
//! on):
//!
//! ```text
//! cargo bench --bench cdc -- \
//!     --origin 'host=127.0.0.1 port=5432 user=postgres dbname=postgres' \
//!     --proxy 'host=127.0.0.1 port=6432 user=postgres dbname=postgres' \
//!     --admin 127.0.0.1:9187
//! ```
//!
//! The three can also come from `BENCH_CDC_ORIGIN`, `BENCH_CDC_PROXY` and
//! `BENCH_CDC_ADMIN`. This is a benchmark, not a test: run without `--bench`
//! (as `cargo test --all-targets` does) it measures nothing and exits.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{MissedTickBehavior, interval_at, sleep, sleep_until, timeout};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Goals.
const APPLY_GOAL_ROWS_PER_SEC: f64 = 200_000.0;
const STALENESS_P99_GOAL_MS: f64 = 20.0;
const STALENESS_MAX_GOAL_MS: f64 = 100.0;

/// How often `/metrics` is read while waiting for the applied position.
const METRICS_POLL: Duration = Duration::from_millis(5);
/// The heartbeat writer's and the reader's periods.
const WRITE_EVERY: Duration = Duration::from_millis(50);
const READ_EVERY: Duration = Duration::from_millis(10);
/// Give up waiting for the change stream after this long.
const APPLY_TIMEOUT: Duration = Duration::from_secs(600);
const SERVING_TIMEOUT: Duration = Duration::from_secs(120);
/// Reading a statement through pgcache until it is served from cache: the
/// pause between reads, and when to give up.
const WARM_PAUSE: Duration = Duration::from_millis(10);
const WARM_TIMEOUT: Duration = Duration::from_secs(10);

const APPLY_POINT: &str = "SELECT n FROM cdc_apply WHERE id = 1";
const APPLY_COUNT: &str = "SELECT count(*) FROM cdc_apply WHERE n >= 0";
const APPLY_UPDATE: &str = "UPDATE cdc_apply SET n = n + 1";
const HEARTBEAT_READ: &str = "SELECT seq FROM cdc_heartbeat WHERE id = 1";
const HEARTBEAT_WRITE: &str = "UPDATE cdc_heartbeat SET seq = $1 WHERE id = 1";
const WAL_POSITION: &str = "SELECT pg_current_wal_lsn() - '0/0'";
/// Commits in this program's origin sessions return only once their WAL is
/// flushed. The walsender decodes only flushed WAL; with
/// `synchronous_commit = off` (scripts/bench-cdc's cluster default) a
/// commit's WAL may wait up to `wal_writer_delay` (200 ms) for the WAL writer
/// before the change stream can see it, which would be measured as pgcache's.
const SYNCHRONOUS_COMMIT: &str = "SET synchronous_commit = on";

const HITS: &str = "pgcache_cache_hits_total";
const SERVING: &str = "pgcache_cdc_serving";
const APPLIED_LSN: &str = "pgcache_cdc_applied_lsn";
const CHANGES: &str = "pgcache_cdc_changes_total";

#[derive(Parser)]
#[command(
    name = "cdc",
    about = "Change stream benchmark: apply throughput and freshness of cached reads \
             (normally run by scripts/bench-cdc)"
)]
struct Args {
    /// Connection string for the origin (writes and reference reads go here directly).
    #[arg(long, env = "BENCH_CDC_ORIGIN")]
    origin: String,
    /// Connection string for pgcache (cached reads).
    #[arg(long, env = "BENCH_CDC_PROXY")]
    proxy: String,
    /// pgcache's admin endpoint (host:port) serving /metrics.
    #[arg(long, env = "BENCH_CDC_ADMIN")]
    admin: String,
    /// Apply rounds (one large UPDATE each).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Seconds of the freshness run.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Given by `cargo bench`; without it nothing is measured.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    // `cargo test --all-targets` runs bench targets without `--bench`.
    if !std::env::args().skip(1).any(|a| a == "--bench") {
        println!(
            "cdc: a benchmark (cargo bench --bench cdc, or scripts/bench-cdc); nothing measured"
        );
        return ExitCode::SUCCESS;
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Both measurements and the summary; `Ok(false)` when a read through
/// pgcache disagreed with the origin.
async fn run(args: Args) -> Result<bool, String> {
    let origin = connect(&args.origin, "origin").await?;
    origin
        .batch_execute(SYNCHRONOUS_COMMIT)
        .await
        .map_err(|e| e.to_string())?;
    let proxy = Arc::new(connect(&args.proxy, "pgcache").await?);
    let admin = args.admin.as_str();
    scrape(admin).await?;

    let apply = apply_throughput(&origin, &proxy, admin, args.rounds).await?;
    let fresh = freshness(&args.origin, &proxy, admin, args.duration).await?;

    println!();
    println!("== summary");
    let median = apply.median_after_commit;
    println!(
        "apply throughput  median {} rows/s from commit to applied (goal >= {}: {}); \
         median {} rows/s from the UPDATE's send; {} rows x {} round(s)",
        thousands(median),
        thousands(APPLY_GOAL_ROWS_PER_SEC),
        verdict(median >= APPLY_GOAL_ROWS_PER_SEC),
        thousands(apply.median_after_send),
        thousands(apply.rows as f64),
        args.rounds,
    );
    println!(
        "freshness         p99 {:.2} ms (goal <= {STALENESS_P99_GOAL_MS:.0}: {}), \
         max {:.2} ms (goal <= {STALENESS_MAX_GOAL_MS:.0}: {}), p50 {:.2} ms; \
         {} reads, {:.1}% from cache, {} stale",
        fresh.p99_ms,
        verdict(fresh.p99_ms <= STALENESS_P99_GOAL_MS),
        fresh.max_ms,
        verdict(fresh.max_ms <= STALENESS_MAX_GOAL_MS),
        fresh.p50_ms,
        thousands(fresh.reads as f64),
        fresh.cache_share * 100.0,
        thousands(fresh.stale as f64),
    );
    if apply.mismatches == 0 {
        println!("checks            every read through pgcache after a round matched the origin");
    } else {
        println!(
            "checks            FAILED: {} read(s) through pgcache after a round differed from the origin",
            apply.mismatches
        );
    }
    Ok(apply.mismatches == 0)
}

// ---------------------------------------------------------------------------
// Apply throughput
// ---------------------------------------------------------------------------

struct ApplyResult {
    rows: u64,
    median_after_commit: f64,
    median_after_send: f64,
    mismatches: usize,
}

async fn apply_throughput(
    origin: &Client,
    proxy: &Client,
    admin: &str,
    rounds: u32,
) -> Result<ApplyResult, String> {
    let rows: u64 = parse_number(&query_value(origin, "SELECT count(*) FROM cdc_apply").await?)?;
    println!();
    println!(
        "== apply throughput: `{APPLY_UPDATE}` ({} rows, one transaction) directly on the origin",
        thousands(rows as f64)
    );
    println!(
        "Tstart: the UPDATE is sent; T0: its commit returned; T1: /metrics (read every {} ms) \
         first shows {APPLIED_LSN} >= pg_current_wal_lsn() read right after the commit.",
        METRICS_POLL.as_millis()
    );
    println!(
        "The walsender starts sending a transaction only after its commit, so both rates matter: \
         rows/(T1-T0) is the change stream's catch-up after the commit, rows/(T1-Tstart) \
         includes the UPDATE itself."
    );
    println!(
        "Before each round (untimed): VACUUM cdc_apply on the origin; `{APPLY_POINT}` and \
         `{APPLY_COUNT}` read through pgcache until served from cache. After each round both \
         are read through pgcache until served from cache again, every read compared with \
         the origin."
    );
    println!();
    let header = format!(
        "{:<6}{:>10}{:>12}{:>14}{:>17}{:>12}  {}",
        "round", "update s", "T1-T0 s", "rows/s (T0)", "rows/s (Tstart)", "changes", "check"
    );
    println!("{header}");

    let mut after_commit = Vec::new();
    let mut after_send = Vec::new();
    let mut mismatches = 0;
    for round in 1..=rounds {
        origin
            .batch_execute("VACUUM cdc_apply")
            .await
            .map_err(|e| format!("VACUUM cdc_apply: {e}"))?;
        wait_applied(origin, admin).await?;
        wait_serving(admin).await?;
        make_cached(proxy, admin, APPLY_POINT).await?;
        make_cached(proxy, admin, APPLY_COUNT).await?;
        let changes_before = scrape(admin).await?.number(CHANGES)?;

        let t_start = Instant::now();
        origin
            .batch_execute(APPLY_UPDATE)
            .await
            .map_err(|e| format!("{APPLY_UPDATE}: {e}"))?;
        let t0 = Instant::now();
        let target: u64 = parse_number(&query_value(origin, WAL_POSITION).await?)?;
        let (t1, metrics) = poll_applied(admin, target, t0).await?;
        let changes = metrics.number(CHANGES)?.saturating_sub(changes_before);

        let since_commit = t1.duration_since(t0).as_secs_f64();
        let since_send = t1.duration_since(t_start).as_secs_f64();
        let rate_commit = rows as f64 / since_commit;
        let rate_send = rows as f64 / since_send;
        after_commit.push(rate_commit);
        after_send.push(rate_send);

        let check = check_against_origin(origin, proxy, admin).await?;
        if check.is_err() {
            mismatches += 1;
        }
        println!(
            "{:<6}{:>10.3}{:>12.3}{:>14}{:>17}{:>12}  {}",
            round,
            t0.duration_since(t_start).as_secs_f64(),
            since_commit,
            thousands(rate_commit),
            thousands(rate_send),
            thousands(changes as f64),
            match &check {
                Ok(s) => format!("ok ({s})"),
                Err(s) => format!("MISMATCH ({s})"),
            }
        );
    }
    let median_after_commit = median(&after_commit);
    let median_after_send = median(&after_send);
    println!(
        "{:<6}{:>10}{:>12}{:>14}{:>17}",
        "median",
        "",
        "",
        thousands(median_after_commit),
        thousands(median_after_send)
    );
    println!(
        "goal: rows/(T1-T0) >= {} rows/s: {}",
        thousands(APPLY_GOAL_ROWS_PER_SEC),
        verdict(median_after_commit >= APPLY_GOAL_ROWS_PER_SEC)
    );
    Ok(ApplyResult {
        rows,
        median_after_commit,
        median_after_send,
        mismatches,
    })
}

/// Read `/metrics` every [`METRICS_POLL`] until the applied position reaches
/// `target`; returns when that read's answer arrived, and the read.
async fn poll_applied(admin: &str, target: u64, t0: Instant) -> Result<(Instant, Metrics), String> {
    let mut next = Instant::now();
    loop {
        let metrics = scrape(admin).await?;
        let now = Instant::now();
        if metrics.number(APPLIED_LSN)? >= target {
            return Ok((now, metrics));
        }
        if now.duration_since(t0) > APPLY_TIMEOUT {
            return Err(format!(
                "{APPLIED_LSN} did not reach {target} within {}s of the commit",
                APPLY_TIMEOUT.as_secs()
            ));
        }
        next += METRICS_POLL;
        sleep_until(next.into()).await;
    }
}

/// Both statements read through pgcache, compared with the origin: read
/// until one read is served from cache (the first reads after a change are
/// forwarded; an entry they fill is served once the applier has passed it),
/// every read must return the origin's value. `Ok(description)` when all
/// agree, `Err(description)` when not.
async fn check_against_origin(
    origin: &Client,
    proxy: &Client,
    admin: &str,
) -> Result<Result<String, String>, String> {
    let mut seen = Vec::new();
    let mut differ = Vec::new();
    for (label, sql) in [("n", APPLY_POINT), ("count", APPLY_COUNT)] {
        let want = query_value(origin, sql).await?;
        let reads = read_until_cached(proxy, admin, sql, Some(&want)).await?;
        differ.extend(
            reads
                .differ
                .iter()
                .map(|got| format!("{label}: pgcache {got}, origin {want}")),
        );
        let how = if reads.cached {
            "the last from cache"
        } else {
            "none from cache"
        };
        seen.push(format!("{label}={want} ({} reads, {how})", reads.reads));
    }
    Ok(if differ.is_empty() {
        Ok(seen.join(", "))
    } else {
        Err(differ.join("; "))
    })
}

// ---------------------------------------------------------------------------
// Freshness
// ---------------------------------------------------------------------------

struct Freshness {
    reads: usize,
    stale: usize,
    cache_share: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

async fn freshness(
    origin_conn: &str,
    proxy: &Arc<Client>,
    admin: &str,
    duration: u64,
) -> Result<Freshness, String> {
    println!();
    println!(
        "== freshness: `{}` every {} ms directly on the origin (n = 1, 2, ...); \
         `{HEARTBEAT_READ}` every {} ms through pgcache (simple query protocol), {duration} s",
        HEARTBEAT_WRITE.replace("$1", "$n"),
        WRITE_EVERY.as_millis(),
        READ_EVERY.as_millis()
    );
    println!(
        "Write n is due at n x {} ms plus a shift within the {} ms read period that varies \
         from write to write, so reads land at every distance from a commit instead of in \
         step with the writes.",
        WRITE_EVERY.as_millis(),
        READ_EVERY.as_millis()
    );
    println!(
        "A read sent at t that returned s is stale by t - (when the commit of s+1 returned) \
         if that commit had returned before t, else 0."
    );

    let writer = connect(origin_conn, "origin (heartbeat writer)").await?;
    writer
        .batch_execute(SYNCHRONOUS_COMMIT)
        .await
        .map_err(|e| e.to_string())?;
    writer
        .batch_execute("UPDATE cdc_heartbeat SET seq = 0 WHERE id = 1")
        .await
        .map_err(|e| format!("resetting cdc_heartbeat: {e}"))?;
    wait_applied(&writer, admin).await?;
    wait_serving(admin).await?;
    let first = make_cached(proxy, admin, HEARTBEAT_READ).await?;
    if first != "0" {
        return Err(format!(
            "{HEARTBEAT_READ} through pgcache returned {first}, expected 0"
        ));
    }
    let statement = writer
        .prepare(HEARTBEAT_WRITE)
        .await
        .map_err(|e| format!("preparing {HEARTBEAT_WRITE}: {e}"))?;

    let hits_before = scrape(admin).await?.number(HITS)?;
    let start = Instant::now();
    let end = start + Duration::from_secs(duration);

    // commits[k]: when the commit of seq = k + 1 returned.
    let write_task = tokio::spawn(async move {
        let mut commits: Vec<Instant> = Vec::new();
        for n in 1u32.. {
            sleep_until((start + WRITE_EVERY * n + write_shift(n)).into()).await;
            if Instant::now() >= end {
                break;
            }
            let seq = i64::from(n);
            let updated = writer
                .execute(&statement, &[&seq])
                .await
                .map_err(|e| format!("{HEARTBEAT_WRITE} (n = {n}): {e}"))?;
            commits.push(Instant::now());
            if updated != 1 {
                return Err(format!("{HEARTBEAT_WRITE} updated {updated} rows"));
            }
        }
        Ok::<_, String>(commits)
    });
    // (sent at, value read)
    let reader = Arc::clone(proxy);
    let read_task = tokio::spawn(async move {
        let mut reads: Vec<(Instant, i64)> = Vec::new();
        let mut tick = interval_at(start.into(), READ_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let sent = Instant::now();
            if sent >= end {
                return Ok::<_, String>(reads);
            }
            let value = query_value(&reader, HEARTBEAT_READ).await?;
            let seq: i64 = value
                .parse()
                .map_err(|_| format!("{HEARTBEAT_READ} returned {value:?}"))?;
            reads.push((sent, seq));
        }
    });
    let commits = write_task
        .await
        .map_err(|e| format!("heartbeat writer: {e}"))??;
    let reads = read_task.await.map_err(|e| format!("reader: {e}"))??;
    let metrics = scrape(admin).await?;
    let hits = metrics.number(HITS)?.saturating_sub(hits_before);

    let mut staleness: Vec<f64> = reads
        .iter()
        .map(|&(sent, seq)| {
            let next = usize::try_from(seq).ok().and_then(|s| commits.get(s));
            match next {
                Some(&committed) if committed < sent => {
                    sent.duration_since(committed).as_secs_f64() * 1000.0
                }
                _ => 0.0,
            }
        })
        .collect();
    if staleness.is_empty() {
        return Err("the reader completed no read".into());
    }
    staleness.sort_by(f64::total_cmp);
    let stale = staleness.iter().filter(|&&s| s > 0.0).count();
    let result = Freshness {
        reads: reads.len(),
        stale,
        cache_share: hits as f64 / reads.len() as f64,
        p50_ms: percentile(&staleness, 0.50),
        p99_ms: percentile(&staleness, 0.99),
        max_ms: staleness.last().copied().unwrap_or_default(),
    };
    println!();
    println!(
        "writes {} (last seq {}), reads {}, served from cache {:.1}% ({} hits); \
         {} stale read(s); {SERVING} at the end: {}",
        thousands(commits.len() as f64),
        commits.len(),
        thousands(result.reads as f64),
        result.cache_share * 100.0,
        thousands(hits as f64),
        thousands(stale as f64),
        metrics.number(SERVING)?,
    );
    println!(
        "staleness: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        result.p50_ms, result.p99_ms, result.max_ms
    );
    println!(
        "goals: p99 <= {STALENESS_P99_GOAL_MS:.0} ms: {}; max <= {STALENESS_MAX_GOAL_MS:.0} ms: {}",
        verdict(result.p99_ms <= STALENESS_P99_GOAL_MS),
        verdict(result.max_ms <= STALENESS_MAX_GOAL_MS)
    );
    Ok(result)
}

/// Where write `n` falls within the read period: the fractional parts of
/// n times the golden ratio, spread evenly over [0, 1) for any number of
/// writes, and the same from run to run.
fn write_shift(n: u32) -> Duration {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    READ_EVERY.mul_f64((f64::from(n) * GOLDEN).fract())
}

// ---------------------------------------------------------------------------
// pgcache's state
// ---------------------------------------------------------------------------

/// Wait until the change stream has applied everything the origin wrote so
/// far (as `client` sees the origin's WAL position now).
async fn wait_applied(client: &Client, admin: &str) -> Result<(), String> {
    let target: u64 = parse_number(&query_value(client, WAL_POSITION).await?)?;
    poll_applied(admin, target, Instant::now())
        .await
        .map(|_| ())
}

/// Wait until pgcache serves cached results.
async fn wait_serving(admin: &str) -> Result<(), String> {
    let deadline = Instant::now() + SERVING_TIMEOUT;
    loop {
        if scrape(admin).await?.number(SERVING)? == 1 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{SERVING} stayed 0 for {}s (is the change stream up? see pgcache's log)",
                SERVING_TIMEOUT.as_secs()
            ));
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Read `sql` through pgcache until a read is answered from the cache
/// (`pgcache_cache_hits_total` went up); returns the value last read.
async fn make_cached(proxy: &Client, admin: &str, sql: &str) -> Result<String, String> {
    let reads = read_until_cached(proxy, admin, sql, None).await?;
    if !reads.cached {
        return Err(format!(
            "`{sql}` was not served from cache within {}s ({} reads through pgcache; \
             {HITS} did not increase)",
            WARM_TIMEOUT.as_secs(),
            reads.reads
        ));
    }
    Ok(reads.last)
}

struct WarmReads {
    /// Reads made, and whether the last was served from cache.
    reads: usize,
    cached: bool,
    last: String,
    /// Values read that differ from the one expected.
    differ: Vec<String>,
}

/// Read `sql` through pgcache, [`WARM_PAUSE`] apart, until a read is served
/// from cache or [`WARM_TIMEOUT`] has passed.
async fn read_until_cached(
    proxy: &Client,
    admin: &str,
    sql: &str,
    expect: Option<&str>,
) -> Result<WarmReads, String> {
    let deadline = Instant::now() + WARM_TIMEOUT;
    let mut hits = scrape(admin).await?.number(HITS)?;
    let mut reads = WarmReads {
        reads: 0,
        cached: false,
        last: String::new(),
        differ: Vec::new(),
    };
    loop {
        reads.last = query_value(proxy, sql).await?;
        reads.reads += 1;
        if expect.is_some_and(|want| want != reads.last) {
            reads.differ.push(reads.last.clone());
        }
        let now = scrape(admin).await?.number(HITS)?;
        reads.cached = now > hits;
        hits = now;
        if reads.cached || Instant::now() > deadline {
            return Ok(reads);
        }
        sleep(WARM_PAUSE).await;
    }
}

/// One read of `/metrics`: unlabeled samples by name.
struct Metrics(HashMap<String, String>);

impl Metrics {
    fn number(&self, name: &str) -> Result<u64, String> {
        let text = self
            .0
            .get(name)
            .ok_or_else(|| format!("/metrics has no {name}"))?;
        parse_number(text)
    }
}

/// `GET /metrics` from pgcache's admin endpoint (HTTP/1.1, one connection
/// per read).
async fn scrape(admin: &str) -> Result<Metrics, String> {
    let fetch = async {
        let mut stream = TcpStream::connect(admin).await?;
        stream.set_nodelay(true)?;
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| format!("http://{admin}/metrics: no answer within 10s"))?
        .map_err(|e| format!("http://{admin}/metrics: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("http://{admin}/metrics: malformed response"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("http://{admin}/metrics: {status}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!(
            "http://{admin}/metrics: chunked responses are not read"
        ));
    }
    let samples = body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?;
            let value = parts.next()?;
            (!name.contains('{')).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect();
    Ok(Metrics(samples))
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

async fn connect(conn: &str, what: &'static str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .map_err(|e| format!("connecting to {what} ({conn}): {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("{what} connection: {e}");
        }
    });
    Ok(client)
}

/// First column of the first row of `sql`, run with the simple query protocol.
async fn query_value(client: &Client, sql: &str) -> Result<String, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })
        .flatten()
        .ok_or_else(|| format!("{sql}: no value"))
}

/// A non-negative integer as PostgreSQL or the metrics print it (`12`,
/// `12.0`).
fn parse_number(text: &str) -> Result<u64, String> {
    let integral = text.strip_suffix(".0").unwrap_or(text);
    integral
        .parse()
        .map_err(|_| format!("not a non-negative integer: {text:?}"))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted `values` (not empty).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
