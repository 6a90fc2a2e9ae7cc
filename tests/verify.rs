//! The differential tester (`pgcache::verify`) against an in-process proxy
//! with the change stream on: concurrent writes on the origin and through
//! the proxy, reads of every shape on both protocols under several session
//! settings, with faults (the stream's walsender terminated, connections
//! dropped mid-pipeline). Every read through the proxy must converge on the
//! origin's answer, and be exact once the writes stop.

use std::sync::Arc;
use std::time::Duration;

use pgcache::verify::{self, VerifyOptions};

use crate::support::cache::{col, one};
use crate::support::{Proxy, connect_direct, eventually, origin, pg_config, within};

/// A named slot: the faults terminate this proxy's walsender only, not
/// those of the other tests' proxies on the shared origin.
const SLOT: &str = "pgcache_verify";
/// Fixed: a failure names the seed; rerun it with `pgcache verify --seed`.
const SEED: u64 = 20_251_122;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_run_with_faults_finds_no_mismatch() {
    let direct = connect_direct("verify_admin").await;
    let _ = direct
        .execute("SELECT pg_drop_replication_slot($1)", &[&SLOT])
        .await;
    let proxy = Proxy::start_streaming(|c| c.cdc.slot = Some(SLOT.into())).await;
    let metrics = Arc::clone(&proxy.metrics);
    let mut options = VerifyOptions::new(
        pg_config(origin().addr(), "verify_origin"),
        proxy.pg_config("verify_proxy"),
    );
    options.seed = SEED;
    options.duration = Duration::from_secs(20);
    options.schema = "verify_diff".into();
    options.faults = true;
    options.fault_slot = Some(SLOT.into());
    options.hits = Some(Arc::new(move || metrics.cache_hits.get()));

    let report = within(
        Duration::from_secs(100),
        "verify::run",
        verify::run(options),
    )
    .await
    .unwrap_or_else(|e| panic!("verify run failed: {e}"));
    println!("{report}");
    assert_eq!(report.mismatches, 0, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.reads > 0, "{report}");
    assert!(
        report.writes_direct > 0 && report.writes_proxied > 0,
        "{report}"
    );
    assert!(report.hits.is_some_and(|h| h > 0), "{report}");
    assert!(report.walsender_terminations > 0, "{report}");
    assert!(report.pipelines_dropped > 0, "{report}");

    proxy.shutdown().await.expect("shutdown");
    let slot_active =
        format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'");
    eventually(Duration::from_secs(20), "the slot released", || async {
        col(&direct, &slot_active).await == one("false")
    })
    .await;
    direct
        .execute("SELECT pg_drop_replication_slot($1)", &[&SLOT])
        .await
        .expect("drop the slot");
    direct
        .batch_execute("DROP SCHEMA verify_diff, verify_diff_b CASCADE")
        .await
        .expect("drop the schema");
}
