//! The `pgcache` binary's command line: help, and configuration errors that
//! exit with code 2 and name the offending key.

use crate::support::binary::pgcache_command;
use crate::support::{HANG_GUARD, ScratchDir, describe_output, run_tool};

#[tokio::test]
async fn help_lists_subcommands() {
    let mut cmd = pgcache_command();
    cmd.arg("--help");
    let out = run_tool(cmd, HANG_GUARD).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe_output(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for sub in ["demo", "check"] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(sub)),
            "--help should list `{sub}`: {}",
            describe_output(&out)
        );
    }
}

#[tokio::test]
async fn out_of_range_port_in_environment_exits_2() {
    let mut cmd = pgcache_command();
    cmd.env("PGCACHE_ORIGIN_PORT", "70000");
    let out = run_tool(cmd, HANG_GUARD).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("origin.port") || stderr.contains("PGCACHE_ORIGIN_PORT"),
        "stderr should name the key: {}",
        describe_output(&out)
    );
}

#[tokio::test]
async fn unknown_key_in_config_file_exits_2() {
    let dir = ScratchDir::new("binary_cli_unknown_key");
    let file = dir.path().join("pgcache.toml");
    std::fs::write(&file, "[origin]\nhots = \"x\"\n").expect("write config");
    let mut cmd = pgcache_command();
    cmd.arg("--config").arg(&file);
    let out = run_tool(cmd, HANG_GUARD).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe_output(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hots"),
        "stderr should name the key: {}",
        describe_output(&out)
    );
}
