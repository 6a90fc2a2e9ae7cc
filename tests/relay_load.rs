//! Volume: a ~300 MB result streams through the real binary in bounded
//! memory, and pgbench runs clean through the proxy in every query mode.

use std::time::Duration;

use crate::support::binary::{ProxyProcess, vm_rss_kib};
use crate::support::wire::{RawConn, fe};
use crate::support::{Proxy, connect_direct, describe_output, pg_tool, run_tool};

const ROWS: usize = 300_000;
const SLACK_KIB: u64 = 16 * 1024;

#[tokio::test]
async fn large_result_streams_in_bounded_memory() {
    let proxy = ProxyProcess::start("load_stream", &[]).await;
    let pid = proxy.pid();
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "load_stream").await;
    let warm_up = conn
        .simple("SELECT repeat('x', 1000) FROM generate_series(1, 10)")
        .await;
    assert!(warm_up.iter().all(|m| !m.is_error()), "{warm_up:?}");
    let idle = vm_rss_kib(pid);

    conn.send(&fe::query(&format!(
        "SELECT repeat('x', 1000) FROM generate_series(1, {ROWS})"
    )))
    .await;
    let (mut rows, mut bytes, mut peak) = (0usize, 0usize, idle);
    loop {
        let m = conn
            .recv()
            .await
            .unwrap_or_else(|| panic!("closed after {rows} rows; stderr:\n{}", proxy.stderr()));
        match m.tag {
            b'D' => {
                rows += 1;
                bytes += m.body.len() + 5;
                if rows % 1000 == 0 {
                    peak = peak.max(vm_rss_kib(pid));
                }
            }
            b'Z' => break,
            b'E' => panic!("error after {rows} rows: {m:?}"),
            _ => {}
        }
    }
    peak = peak.max(vm_rss_kib(pid));
    println!("pgcache RSS: idle {idle} KiB, peak {peak} KiB, {bytes} bytes relayed");
    assert_eq!(rows, ROWS);
    assert!(bytes > 300_000_000, "{bytes} bytes relayed");
    assert!(
        peak <= idle + SLACK_KIB,
        "proxy RSS grew from {idle} KiB idle to a peak of {peak} KiB (limit +{SLACK_KIB} KiB) \
         while relaying {bytes} bytes"
    );
}

/// pgbench output must report no failed transactions (pgbench 15 wording).
const NO_FAILURES: &str = "number of failed transactions: 0 (0.000%)";
const PGBENCH_GUARD: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_through_proxy() {
    let direct = connect_direct("pgbench_setup").await;
    direct
        .batch_execute("CREATE DATABASE pgbench_relay")
        .await
        .expect("create database");
    let proxy = Proxy::start().await;
    let pgbench = |args: &[&str]| {
        let mut cmd = pg_tool("pgbench");
        cmd.args(["-h", "127.0.0.1", "-p", &proxy.addr.port().to_string()])
            .args(["-U", "postgres"])
            .args(args)
            .arg("pgbench_relay");
        cmd
    };

    let out = run_tool(pgbench(&["-i", "-s", "1"]), PGBENCH_GUARD).await;
    assert!(
        out.status.success(),
        "pgbench -i: {}",
        describe_output(&out)
    );

    for mode in [
        &["-S", "-M", "simple"][..],
        &["-S", "-M", "extended"],
        &["-S", "-M", "prepared"],
        &[],
    ] {
        let args = [mode, &["-c", "4", "-j", "2", "-t", "200"]].concat();
        let out = run_tool(pgbench(&args), PGBENCH_GUARD).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(NO_FAILURES),
            "pgbench {args:?}: {}",
            describe_output(&out)
        );
        assert!(
            stdout.contains("number of transactions actually processed: 800/800"),
            "pgbench {args:?}: {}",
            describe_output(&out)
        );
    }
}
