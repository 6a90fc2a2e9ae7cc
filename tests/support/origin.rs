//! The shared origin: one PostgreSQL 15 per test binary, started on first use.
//!
//! pgtemp starts the server (as the `postgres` user when the tests run as
//! root). A `static` is never dropped, so pgtemp's own clean-up never runs; a
//! detached watchdog shell stops the postmaster and removes the data directory
//! once the test process is gone, however it ends.
//!
//! Set up once: roles `pgc_trust`, `pgc_md5` (md5-hashed password) and
//! `pgc_scram` (SCRAM-SHA-256), and pg_hba rules that make the server ask
//! `pgc_md5` for md5 and `pgc_scram` for SCRAM over TCP from 127.0.0.1.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use pgtemp::{PgTempDB, PgTempDBBuilder};
use tokio_postgres::NoTls;

use super::wire::{self, RawConn};

pub const SUPERUSER: &str = "postgres";
pub const TRUST_USER: &str = "pgc_trust";
pub const MD5_USER: &str = "pgc_md5";
pub const MD5_PASSWORD: &str = "md5-Secret-1";
pub const SCRAM_USER: &str = "pgc_scram";
pub const SCRAM_PASSWORD: &str = "scram-Secret-2";

/// The running origin server.
pub struct Origin {
    /// Keeps pgtemp's handle (and so its temp dir) alive for the whole process.
    _db: PgTempDB,
    port: u16,
    data_dir: PathBuf,
}

impl Origin {
    /// TCP address of the server (it listens on 127.0.0.1 only).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

static ORIGIN: LazyLock<Origin> = LazyLock::new(|| {
    // Own thread and runtime: the first caller may be inside any test's runtime.
    std::thread::spawn(start)
        .join()
        .unwrap_or_else(|_| panic!("starting the shared PostgreSQL failed (see above)"))
});

/// The shared origin server, started (and set up) on first use.
pub fn origin() -> &'static Origin {
    &ORIGIN
}

fn start() -> Origin {
    let db = PgTempDBBuilder::new()
        .with_config_param("wal_level", "logical")
        .with_config_param("max_replication_slots", "64")
        .with_config_param("max_wal_senders", "64")
        .with_config_param("max_connections", "200")
        .with_config_param("listen_addresses", "127.0.0.1")
        // pgtemp pipes the server's stderr and never reads it; a full pipe
        // would block every backend. The collector writes to files instead.
        .with_config_param("logging_collector", "on")
        .start();
    let port = db.db_port();
    let data_dir = db.data_dir();
    let origin = Origin {
        _db: db,
        port,
        data_dir,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(wait_until_accepting(&origin));
    start_watchdog(&origin.data_dir);
    rt.block_on(set_up_roles_and_hba(&origin));
    origin
}

async fn wait_until_accepting(origin: &Origin) {
    let cfg = super::pg_config(origin.addr(), "pgcache-tests-setup");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match cfg.connect(NoTls).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => {
                panic!(
                    "PostgreSQL on port {} did not accept connections: {e}",
                    origin.port
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Detached (own process group, so a Ctrl-C of the test run doesn't stop it)
/// shell that waits for this process to exit, then stops the postmaster with
/// SIGINT (fast shutdown) and removes pgtemp's directory (after at most a
/// minute, in case an unreaped zombie keeps answering `kill -0`).
#[allow(
    clippy::zombie_processes,
    reason = "the watchdog must outlive this process; nobody waits for it"
)]
fn start_watchdog(data_dir: &Path) {
    let pid_file =
        std::fs::read_to_string(data_dir.join("postmaster.pid")).expect("read postmaster.pid");
    let postmaster: u32 = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("postmaster pid");
    let temp_dir = data_dir.parent().expect("pgtemp dir");
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.2; done; \
         kill -INT {postmaster} 2>/dev/null; \
         n=0; while kill -0 {postmaster} 2>/dev/null && [ $n -lt 600 ]; do \
         sleep 0.1; n=$((n+1)); done; \
         rm -rf '{dir}'",
        me = std::process::id(),
        dir = temp_dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the origin watchdog");
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

async fn set_up_roles_and_hba(origin: &Origin) {
    let client = super::connect(&super::pg_config(origin.addr(), "pgcache-tests-setup"))
        .await
        .expect("setup connection");
    client
        .batch_execute(&format!(
            "CREATE ROLE {TRUST_USER} LOGIN;
             SET password_encryption = 'md5';
             CREATE ROLE {MD5_USER} LOGIN PASSWORD {md5};
             SET password_encryption = 'scram-sha-256';
             CREATE ROLE {SCRAM_USER} LOGIN PASSWORD {scram};",
            md5 = sql_literal(MD5_PASSWORD),
            scram = sql_literal(SCRAM_PASSWORD),
        ))
        .await
        .expect("create auth-test roles");

    let hba_file: String = client
        .query_one(
            "SELECT setting FROM pg_settings WHERE name = 'hba_file'",
            &[],
        )
        .await
        .expect("hba_file")
        .get(0);
    let current: String = client
        .query_one("SELECT pg_read_file($1)", &[&hba_file])
        .await
        .expect("read pg_hba.conf")
        .get(0);
    let mut lines = vec![
        format!("host all {MD5_USER} 127.0.0.1/32 md5"),
        format!("host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256"),
    ];
    // Keep the existing (trust) rules after ours; one space between fields so
    // COPY's text format has nothing to escape.
    lines.extend(
        current
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
    );
    let array = lines
        .iter()
        .map(|l| sql_literal(l))
        .collect::<Vec<_>>()
        .join(", ");
    client
        .batch_execute(&format!(
            "COPY (SELECT unnest(ARRAY[{array}])) TO {path}; SELECT pg_reload_conf();",
            path = sql_literal(&hba_file)
        ))
        .await
        .expect("rewrite pg_hba.conf");

    // The file is what we wrote (and parses) ...
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = client
            .query(
                "SELECT line_number, auth_method, error FROM pg_hba_file_rules \
                 WHERE error IS NOT NULL OR $1 = ANY(user_name)",
                &[&MD5_USER],
            )
            .await
            .expect("pg_hba_file_rules");
        let errors: Vec<String> = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(2))
            .collect();
        assert!(errors.is_empty(), "pg_hba.conf errors: {errors:?}");
        if rows
            .iter()
            .any(|r| r.get::<_, Option<String>>(1).as_deref() == Some("md5"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_hba_file_rules never showed the md5 rule"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and the postmaster has loaded it: a new connection as pgc_md5 is
    // asked for an md5 password.
    loop {
        let mut conn = RawConn::connect(origin.addr()).await;
        conn.send(&wire::fe::startup(&[
            ("user", MD5_USER),
            ("database", "postgres"),
        ]))
        .await;
        let first = conn.recv().await.expect("reply to startup");
        if first.tag == b'R' && first.i32_at(0) == wire::AUTH_MD5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_hba.conf reload not in effect; got {first:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
