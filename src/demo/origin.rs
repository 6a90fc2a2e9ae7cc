//! A throwaway PostgreSQL server: `initdb` into a fresh temporary directory,
//! start it on a free loopback port, and stop it and remove the directory
//! afterwards — also when the caller bails out early, through [`Drop`].
//!
//! As root, every server binary runs as the `postgres` OS user through
//! `sudo -u postgres` (PostgreSQL refuses to run as root).

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::{Client, NoTls};

use super::DemoError;
use crate::check::describe_pg_error;

/// Address the throwaway server listens on.
const HOST: &str = "127.0.0.1";
/// Superuser `initdb` creates; loopback connections use trust authentication.
const SUPERUSER: &str = "postgres";
/// OS user the server runs as when pgcache runs as root.
const OS_USER: &str = "postgres";
/// Where Debian's `postgresql-15` package puts the server binaries (not on PATH by default).
const FALLBACK_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// How often readiness is probed while the server starts.
const READY_POLL: Duration = Duration::from_millis(50);
/// How long `pg_ctl stop` may take before it gives up.
const STOP_TIMEOUT_SECS: &str = "30";
/// How many times to pick another port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

/// Settings every throwaway server gets (CDC prerequisites, and no durability:
/// the data is thrown away anyway).
const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", HOST),
    ("wal_level", "logical"),
    ("max_replication_slots", "10"),
    ("max_wal_senders", "10"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
];

/// How to start a [`ThrowawayOrigin`].
#[derive(Debug, Clone)]
pub struct OriginOptions {
    /// Extra `postgresql.conf` settings (name, value), applied after the defaults
    /// (`wal_level=logical`, `max_replication_slots=10`, `max_wal_senders=10`,
    /// `fsync=off`, …) so they can override them.
    pub settings: Vec<(String, String)>,
    /// How long to wait for the server to accept connections.
    pub ready_timeout: Duration,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            settings: Vec::new(),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Who runs the server binaries.
#[derive(Debug, Clone)]
enum RunAs {
    /// pgcache is not root: run them directly.
    CurrentUser,
    /// pgcache is root: `sudo -n -u postgres -- <program>`.
    Postgres { sudo: PathBuf },
}

impl RunAs {
    fn std_command(&self, program: &Path) -> std::process::Command {
        match self {
            RunAs::CurrentUser => std::process::Command::new(program),
            RunAs::Postgres { sudo } => {
                let mut cmd = std::process::Command::new(sudo);
                cmd.args(["-n", "-u", OS_USER, "--"]).arg(program);
                cmd
            }
        }
    }

    fn command(&self, program: &Path) -> tokio::process::Command {
        tokio::process::Command::from(self.std_command(program))
    }
}

/// A running PostgreSQL in a temporary directory, with trust authentication for
/// the superuser `postgres` on `127.0.0.1:<port>` and on a Unix socket in
/// [`socket_dir`](Self::socket_dir).
///
/// [`stop`](Self::stop) shuts it down and removes the directory; dropping it
/// without `stop` does the same synchronously (blocking the current thread for
/// up to a few seconds).
#[derive(Debug)]
pub struct ThrowawayOrigin {
    dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    pg_ctl: PathBuf,
    run_as: RunAs,
    /// `pg_ctl start` was run, so a server may be running.
    started: bool,
    /// The directory still exists and is ours to remove.
    owns_dir: bool,
}

/// Start a throwaway PostgreSQL server (`initdb` + `pg_ctl start` from the
/// PostgreSQL 15 binaries on PATH or in `/usr/lib/postgresql/15/bin`) and wait
/// until it accepts connections.
pub async fn start_origin(options: &OriginOptions) -> Result<ThrowawayOrigin, DemoError> {
    let initdb = find_program("initdb", None)?;
    let bin_dir = initdb.parent().map(Path::to_path_buf);
    let pg_ctl = find_program("pg_ctl", bin_dir.as_deref())?;
    // pg_ctl starts the `postgres` next to it; check now for a clear error.
    find_program("postgres", bin_dir.as_deref())?;

    let (run_as, owner) = if is_root() {
        let sudo = find_on_path("sudo").ok_or(DemoError::SudoNotInstalled)?;
        (RunAs::Postgres { sudo }, Some(os_user_ids(OS_USER)?))
    } else {
        (RunAs::CurrentUser, None)
    };

    let dir = create_temp_dir(owner)?;
    let mut origin = ThrowawayOrigin {
        data_dir: dir.join("data"),
        dir,
        port: 0,
        pg_ctl,
        run_as,
        started: false,
        owns_dir: true,
    };
    origin.initdb(&initdb).await?;
    origin.write_settings(&options.settings)?;

    let mut attempt = 1;
    loop {
        origin.port = free_port()?;
        match origin.start(options.ready_timeout).await {
            Ok(()) => return Ok(origin),
            Err(DemoError::ServerStart { log_tail, .. })
                if attempt < PORT_ATTEMPTS && log_tail.contains("Address already in use") =>
            {
                tracing::debug!(port = origin.port, "port taken meanwhile; trying another");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl ThrowawayOrigin {
    /// The temporary directory holding everything (data directory, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory (`PGDATA`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// TCP host the server listens on (`127.0.0.1`).
    pub fn host(&self) -> &str {
        HOST
    }

    /// TCP port the server listens on (also the Unix socket's port number).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser to connect as (`postgres`, no password).
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// libpq-style connection string for `dbname`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={} dbname={}",
            self.host(),
            self.port,
            self.user(),
            dbname
        )
    }

    /// tokio-postgres connection parameters for `dbname` over TCP.
    pub fn pg_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.host())
            .port(self.port)
            .user(self.user())
            .dbname(dbname)
            .application_name("pgcache-demo")
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// Connect to `dbname` as the superuser; the connection is driven by a
    /// spawned task.
    pub async fn connect(&self, dbname: &str) -> Result<Client, DemoError> {
        let (client, connection) =
            self.pg_config(dbname)
                .connect(NoTls)
                .await
                .map_err(|e| DemoError::Origin {
                    action: format!(
                        "connecting to the throwaway PostgreSQL ({})",
                        self.connection_string(dbname)
                    ),
                    reason: describe_pg_error(&e),
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "throwaway origin connection ended");
            }
        });
        Ok(client)
    }

    /// `CREATE DATABASE <name>`.
    pub async fn create_database(&self, name: &str) -> Result<(), DemoError> {
        let client = self.connect("postgres").await?;
        let sql = format!("CREATE DATABASE {}", crate::check::quote_ident(name));
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| DemoError::Origin {
                action: format!("creating database {name:?}"),
                reason: describe_pg_error(&e),
            })
    }

    /// The last `lines` lines of the server log (empty if there is none yet).
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(bytes) = std::fs::read(self.log_file()) else {
            return String::new();
        };
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stop the server (`pg_ctl stop -m fast`) and remove the temporary directory.
    ///
    /// If the server cannot be stopped, the directory is left in place and the
    /// error says how to stop it by hand.
    pub async fn stop(mut self) -> Result<(), DemoError> {
        self.stop_server().await?;
        self.remove_dir()
    }

    async fn initdb(&self, initdb: &Path) -> Result<(), DemoError> {
        let output = self
            .run_as
            .command(initdb)
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "--username",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| spawn_error(&self.run_as, initdb, source))?;
        if output.status.success() {
            return Ok(());
        }
        Err(DemoError::Initdb {
            status: output.status.to_string(),
            output: output_text(&output),
            hint: match self.run_as {
                RunAs::Postgres { .. } => Some(format!(
                    "the `{OS_USER}` OS user must be able to reach {}; if it cannot, set TMPDIR \
                     to a directory it can enter, such as /tmp",
                    self.dir.display()
                )),
                RunAs::CurrentUser => None,
            },
        })
    }

    fn write_settings(&self, extra: &[(String, String)]) -> Result<(), DemoError> {
        let path = self.data_dir.join("postgresql.conf");
        let socket_dir = self.socket_dir().to_string_lossy().into_owned();
        let mut text = String::from("\n# Added by pgcache demo.\n");
        let settings = DEFAULT_SETTINGS
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain([("unix_socket_directories", socket_dir.as_str())])
            .chain(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (name, value) in settings {
            text.push_str(&format!("{name} = {}\n", conf_literal(value)));
        }
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|source| DemoError::TempDir { path, source })
    }

    /// `pg_ctl start -w`, racing it against our own readiness probe: ready as
    /// soon as a connection succeeds; failed as soon as pg_ctl reports the
    /// server died; timed out at the deadline.
    async fn start(&mut self, timeout: Duration) -> Result<(), DemoError> {
        let deadline = Instant::now() + timeout;
        let child = self
            .run_as
            .command(&self.pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t"])
            .arg(timeout.as_secs().max(1).to_string())
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| spawn_error(&self.run_as, &self.pg_ctl, source))?;
        // From here on a server may be running: Drop must stop it.
        self.started = true;

        let mut pg_ctl = std::pin::pin!(child.wait_with_output());
        let mut pg_ctl_done = false;
        let mut tick = tokio::time::interval(READY_POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = &mut pg_ctl, if !pg_ctl_done => {
                    pg_ctl_done = true;
                    let output = result
                        .map_err(|source| spawn_error(&self.run_as, &self.pg_ctl, source))?;
                    if !output.status.success() {
                        return Err(self.start_error(format!(
                            "pg_ctl start failed ({}):\n{}",
                            output.status,
                            super::indent(&output_text(&output))
                        )));
                    }
                }
                _ = tick.tick() => {
                    if self.accepts_connections().await {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(self.start_error(format!(
                            "it did not accept connections on {HOST}:{} within {} s",
                            self.port,
                            timeout.as_secs_f64()
                        )));
                    }
                }
            }
        }
    }

    fn start_error(&self, reason: String) -> DemoError {
        DemoError::ServerStart {
            reason,
            log_file: self.log_file(),
            log_tail: self.log_tail(20),
        }
    }

    async fn accepts_connections(&self) -> bool {
        let mut config = self.pg_config("postgres");
        config.connect_timeout(Duration::from_secs(1));
        match config.connect(NoTls).await {
            Ok((client, connection)) => {
                // Dropping the client makes the connection send Terminate and end.
                drop(client);
                let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                true
            }
            Err(_) => false,
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> std::process::Command {
        let mut cmd = self.run_as.std_command(&self.pg_ctl);
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "-t", STOP_TIMEOUT_SECS])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn server_running(&self) -> bool {
        self.data_dir.join("postmaster.pid").exists()
    }

    async fn stop_server(&mut self) -> Result<(), DemoError> {
        if !self.started {
            return Ok(());
        }
        let mut last = String::new();
        for mode in ["fast", "immediate"] {
            let output = tokio::process::Command::from(self.pg_ctl_stop(mode))
                .output()
                .await
                .map_err(|source| spawn_error(&self.run_as, &self.pg_ctl, source))?;
            // pg_ctl stop also fails when no server is running; the pid file tells.
            if output.status.success() || !self.server_running() {
                self.started = false;
                return Ok(());
            }
            last = output_text(&output);
        }
        // Leave the directory alone while a server may still use it.
        self.owns_dir = false;
        self.started = false;
        Err(DemoError::ServerStop {
            data_dir: self.data_dir.clone(),
            dir: self.dir.clone(),
            output: last,
        })
    }

    fn remove_dir(&mut self) -> Result<(), DemoError> {
        if !self.owns_dir {
            return Ok(());
        }
        self.owns_dir = false;
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DemoError::RemoveTempDir {
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

impl Drop for ThrowawayOrigin {
    fn drop(&mut self) {
        if self.started {
            self.started = false;
            let mut stopped = false;
            for mode in ["fast", "immediate"] {
                match self.pg_ctl_stop(mode).output() {
                    Ok(output) if output.status.success() || !self.server_running() => {
                        stopped = true;
                        break;
                    }
                    Ok(output) => {
                        tracing::warn!(mode, output = %output_text(&output), "pg_ctl stop failed");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not run pg_ctl stop"),
                }
            }
            if !stopped {
                self.owns_dir = false;
                eprintln!(
                    "warning: the throwaway PostgreSQL in {} could not be stopped; stop it with \
                     `pg_ctl stop -m immediate -D {}` and remove {}",
                    self.dir.display(),
                    self.data_dir.display(),
                    self.dir.display()
                );
            }
        }
        if let Err(e) = self.remove_dir() {
            eprintln!("warning: {e}");
        }
    }
}

/// A value in `postgresql.conf` syntax: single-quoted, inner quotes doubled.
fn conf_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    if !stderr.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(stderr);
    }
    text
}

fn spawn_error(run_as: &RunAs, program: &Path, source: io::Error) -> DemoError {
    let program = match run_as {
        RunAs::CurrentUser => program.display().to_string(),
        RunAs::Postgres { sudo } => {
            format!("{} -u {OS_USER} {}", sudo.display(), program.display())
        }
    };
    DemoError::Spawn { program, source }
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// `name` from `preferred_dir` (so all binaries come from one installation),
/// else from PATH, else from the Debian PostgreSQL 15 directory.
fn find_program(name: &'static str, preferred_dir: Option<&Path>) -> Result<PathBuf, DemoError> {
    preferred_dir
        .map(|dir| dir.join(name))
        .filter(|p| is_executable(p))
        .or_else(|| find_on_path(name))
        .or_else(|| Some(Path::new(FALLBACK_BIN_DIR).join(name)).filter(|p| is_executable(p)))
        .ok_or(DemoError::PostgresNotInstalled { program: name })
}

fn is_root() -> bool {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return meta.uid() == 0;
    }
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Numeric uid and gid of OS user `user` (via `id`).
fn os_user_ids(user: &str) -> Result<(u32, u32), DemoError> {
    let id = |flag: &str| -> Result<u32, String> {
        let output = std::process::Command::new("id")
            .arg(flag)
            .arg(user)
            .output()
            .map_err(|e| format!("could not run `id`: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("unexpected output from `id {flag} {user}`: {e}"))
    };
    let uid = id("-u").map_err(|reason| DemoError::NoPostgresUser { reason })?;
    let gid = id("-g").map_err(|reason| DemoError::NoPostgresUser { reason })?;
    Ok((uid, gid))
}

fn random_suffix() -> String {
    let n = getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    format!("{n:016x}")
}

/// A fresh `pgcache-demo-…` directory under the system temp dir, mode 0700,
/// owned by `owner` (uid, gid) when given.
fn create_temp_dir(owner: Option<(u32, u32)>) -> Result<PathBuf, DemoError> {
    let base = std::env::temp_dir();
    let mut last_error = None;
    for _ in 0..8 {
        let path = base.join(format!("pgcache-demo-{}", random_suffix()));
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                if let Some((uid, gid)) = owner
                    && let Err(source) = std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                {
                    let _ = std::fs::remove_dir(&path);
                    return Err(DemoError::TempDir { path, source });
                }
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(source) => return Err(DemoError::TempDir { path: base, source }),
        }
    }
    Err(DemoError::TempDir {
        path: base,
        source: last_error.unwrap_or_else(|| io::Error::other("no unused name found")),
    })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, DemoError> {
    std::net::TcpListener::bind((HOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| DemoError::Bind {
            what: "the throwaway PostgreSQL",
            addr: format!("{HOST}:0"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_literal_doubles_quotes() {
        assert_eq!(conf_literal("/tmp/a'b"), "'/tmp/a''b'");
        assert_eq!(conf_literal("logical"), "'logical'");
    }

    #[test]
    fn sudo_command_runs_as_postgres() {
        let run_as = RunAs::Postgres {
            sudo: PathBuf::from("/usr/bin/sudo"),
        };
        let cmd = run_as.std_command(Path::new("/usr/bin/initdb"));
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(cmd.get_program(), "/usr/bin/sudo");
        assert_eq!(args, ["-n", "-u", "postgres", "--", "/usr/bin/initdb"]);
    }
}
