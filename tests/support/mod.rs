//! Test harness shared by every integration test.
//!
//! - [`origin`]: the one PostgreSQL 15 server of this test binary, with the
//!   auth-test roles and pg_hba rules; it never outlives the test process.
//! - [`proxy`]: an in-process proxy on `127.0.0.1:0` with a shutdown handle.
//! - [`wire`]: a raw protocol client, frontend message builders and the golden
//!   script runner (same bytes direct and through the proxy, compare replies).
//! - [`binary`]: spawning the real `pgcache` binary, `/proc` probes.
//! - [`cache`]: helpers of the cache tests (set-up, reads, waiting for a hit).
//!
//! Synchronisation is by polling with a deadline ([`eventually`]), never by
//! sleeping for a guessed time; timeouts exist only as hang guards.

#![allow(
    dead_code,
    reason = "not every test module uses every helper; the harness is one API"
)]

pub mod binary;
pub mod cache;
pub mod origin;
pub mod proxy;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub use origin::origin;
pub use proxy::Proxy;

/// Hang guard for a single operation that should finish promptly. Tests never
/// assert on speed; this only turns a hang into a failure with a message.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Default deadline for [`eventually`].
pub const SETTLE: Duration = Duration::from_secs(20);

/// Await `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("hang guard: {what} did not finish within {limit:?}"),
    }
}

/// Poll `condition` until it returns true, failing the test with `what` once
/// `deadline` has passed. Polls quickly at first, then every 100 ms.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if condition().await {
            return;
        }
        if start.elapsed() > deadline {
            panic!("eventually: {what} did not happen within {deadline:?}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// tokio-postgres settings for `user=postgres dbname=postgres` at `addr`, with
/// the given `application_name` (which tests use to find their origin backend).
pub fn pg_config(addr: SocketAddr, application_name: &str) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(addr.ip().to_string())
        .port(addr.port())
        .user(origin::SUPERUSER)
        .dbname("postgres")
        .application_name(application_name)
        .connect_timeout(Duration::from_secs(10));
    cfg
}

/// Connect with `cfg` (NoTls) and drive the connection on a spawned task.
pub async fn connect(cfg: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = within(HANG_GUARD, "connect", cfg.connect(NoTls)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A superuser session straight to the origin (bypassing any proxy).
pub async fn connect_direct(application_name: &str) -> Client {
    connect(&pg_config(origin().addr(), application_name))
        .await
        .expect("direct connection to the origin")
}

/// The rows of a simple query as text (NULL → `None`).
pub async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<&SqlState> {
    err.code()
}

/// Origin backends (pid, state) whose `application_name` is `app`, read straight
/// from the origin's `pg_stat_activity`.
pub async fn origin_backends(direct: &Client, app: &str) -> Vec<(i32, Option<String>)> {
    direct
        .query(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Wait until the origin backend named `app` is running a statement containing
/// `needle` (so a test can act "while the query runs" without sleeping).
pub async fn wait_until_running(direct: &Client, app: &str, needle: &str) {
    let what = format!("a backend with application_name {app} running {needle}");
    eventually(SETTLE, &what, || async {
        let rows = direct
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 \
                 AND state = 'active' AND position($2 in query) > 0",
                &[&app, &needle],
            )
            .await
            .expect("pg_stat_activity");
        !rows.is_empty()
    })
    .await;
}

/// Wait until no origin backend is named `app`.
pub async fn wait_until_gone(direct: &Client, app: &str) {
    let what = format!("the origin backend with application_name {app} to go away");
    eventually(SETTLE, &what, || async {
        origin_backends(direct, app).await.is_empty()
    })
    .await;
}

/// A PostgreSQL client tool (`psql`, `pgbench`) with every libpq environment
/// variable that could change its behaviour removed.
pub fn pg_tool(program: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Run a client tool to completion (hang guard `limit`), returning its output.
pub async fn run_tool(mut cmd: tokio::process::Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    within(limit, &what, cmd.output())
        .await
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"))
}

/// Render a tool's output for assertion messages.
pub fn describe_output(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch directory under Cargo's `CARGO_TARGET_TMPDIR`, removed on drop.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pgcache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        ScratchDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
