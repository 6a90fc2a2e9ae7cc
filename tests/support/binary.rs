//! The real `pgcache` binary as a child process, and `/proc` probes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{SETTLE, origin, wire};

/// `pgcache` with no `PGCACHE_*` / `RUST_LOG` variables inherited from the
/// test's environment.
pub fn pgcache_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgcache"));
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("PGCACHE_") || k == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// A `pgcache` proxy process relaying to the shared origin. Killed on drop.
pub struct ProxyProcess {
    child: tokio::process::Child,
    /// Where the child's stderr goes; shown when it misbehaves.
    stderr_path: PathBuf,
    _scratch: super::ScratchDir,
    pub addr: SocketAddr,
}

impl ProxyProcess {
    /// Start `pgcache` listening on `127.0.0.1:0` (admin endpoint on
    /// `127.0.0.1:0` too) and find the proxy's port from `/proc` once it
    /// listens; no port is guessed and no log line is parsed.
    pub async fn start(name: &str, extra_env: &[(&str, &str)]) -> ProxyProcess {
        let scratch = super::ScratchDir::new(name);
        let stderr_path = scratch.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let origin = origin();
        let mut cmd = pgcache_command();
        cmd.env("PGCACHE_LISTEN", "127.0.0.1:0")
            .env("PGCACHE_ADMIN_LISTEN", "127.0.0.1:0")
            .env("PGCACHE_ORIGIN_HOST", origin.addr().ip().to_string())
            .env("PGCACHE_ORIGIN_PORT", origin.port().to_string())
            .env("PGCACHE_ORIGIN_USER", super::origin::SUPERUSER)
            .env("PGCACHE_ORIGIN_DATABASE", "postgres")
            .env("PGCACHE_LOG_LEVEL", "warn")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().expect("spawn pgcache");
        let mut proc = ProxyProcess {
            child,
            stderr_path,
            _scratch: scratch,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let pid = proc.pid();
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!(
                    "pgcache exited early with {status}; stderr:\n{}",
                    proc.stderr()
                );
            }
            for port in listening_ports(pid) {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if speaks_postgres(addr).await {
                    proc.addr = addr;
                    return proc;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pgcache did not listen for PostgreSQL clients within {SETTLE:?}; stderr:\n{}",
                proc.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("child pid")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

/// Whether `addr` answers an SSLRequest the way a PostgreSQL server does
/// (`N` or `S`) — tells the proxy port from the admin HTTP port.
async fn speaks_postgres(addr: SocketAddr) -> bool {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
    else {
        return false;
    };
    if s.write_all(&wire::fe::ssl_request()).await.is_err() {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut b)).await,
        Ok(Ok(_)) if b[0] == b'N' || b[0] == b'S'
    )
}

/// Resident set size of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// TCP ports `pid` listens on (IPv4 and IPv6), from its socket fds and
/// `/proc/net/tcp{,6}`.
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if cols.len() < 10 || cols[3] != "0A" || !inodes.iter().any(|i| i == cols[9]) {
                continue;
            }
            if let Some(port) = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}
