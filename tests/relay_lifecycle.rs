//! Session and proxy lifecycle: a client's Terminate or disconnect frees its
//! origin backend; graceful shutdown lets in-flight statements finish, stops
//! accepting, and `serve` returns.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use crate::support::wire::{RawConn, fe};
use crate::support::{
    HANG_GUARD, Proxy, SETTLE, connect, connect_direct, eventually, origin_backends,
    wait_until_gone, wait_until_running, within,
};

#[tokio::test]
async fn terminate_frees_origin_backend() {
    let app = "lifecycle_terminate";
    let proxy = Proxy::start().await;
    let direct = connect_direct("lifecycle_terminate_observer").await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, app).await;
    assert_eq!(origin_backends(&direct, app).await.len(), 1);

    conn.send(&fe::terminate()).await;
    let after = within(
        HANG_GUARD,
        "proxy closing after Terminate",
        conn.recv_until_closed(),
    )
    .await;
    assert!(after.is_empty(), "messages after Terminate: {after:?}");
    wait_until_gone(&direct, app).await;
    eventually(SETTLE, "active client gauge back to 0", || async {
        proxy.metrics.client_connections_active.get() == 0
    })
    .await;
    assert_eq!(proxy.metrics.client_connections.get(), 1);
}

/// The client vanishes while its statement runs: the proxy must free the
/// origin backend (the origin alone would notice only when it next writes,
/// here after 60 s).
#[tokio::test]
async fn client_disconnect_mid_query_frees_origin_backend() {
    let app = "lifecycle_disconnect";
    let proxy = Proxy::start().await;
    let direct = connect_direct("lifecycle_disconnect_observer").await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, app).await;
    conn.send(&fe::query("SELECT pg_sleep(60)")).await;
    wait_until_running(&direct, app, "pg_sleep").await;
    drop(conn);
    wait_until_gone(&direct, app).await;
    eventually(SETTLE, "active client gauge back to 0", || async {
        proxy.metrics.client_connections_active.get() == 0
    })
    .await;
}

/// Idle client disconnecting without Terminate also frees its backend.
#[tokio::test]
async fn client_disconnect_when_idle_frees_origin_backend() {
    let app = "lifecycle_disconnect_idle";
    let proxy = Proxy::start().await;
    let direct = connect_direct("lifecycle_disconnect_idle_observer").await;
    let (conn, _) = RawConn::startup_app(proxy.addr, app).await;
    assert_eq!(origin_backends(&direct, app).await.len(), 1);
    drop(conn);
    wait_until_gone(&direct, app).await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_statement_finish() {
    let app = "lifecycle_shutdown";
    let mut proxy = Proxy::start().await;
    let direct = connect_direct("lifecycle_shutdown_observer").await;
    let client = proxy.connect(app).await;

    let query = client.simple_query("SELECT pg_sleep(1), 'finished'");
    let trigger = async {
        wait_until_running(&direct, app, "pg_sleep").await;
        proxy.begin_shutdown();
    };
    let (result, ()) = within(HANG_GUARD, "in-flight statement", async {
        tokio::join!(query, trigger)
    })
    .await;
    let rows = result.expect("the in-flight statement must complete");
    let value = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(1).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("finished"));

    // No new sessions once shutdown has begun.
    let cfg = proxy.pg_config("lifecycle_shutdown_late");
    eventually(SETTLE, "new connections to be refused", || async {
        connect(&cfg).await.is_err()
    })
    .await;

    // `serve` returns well before `shutdown.timeout` (60 s): the session that
    // is now idle is closed rather than waited for.
    let served = proxy.join(Duration::from_secs(20)).await;
    served.expect("serve returns Ok after graceful shutdown");
    eventually(
        SETTLE,
        "the idle client's connection to be closed",
        || async { client.is_closed() },
    )
    .await;
    wait_until_gone(&direct, app).await;
}

/// A statement outliving `shutdown.timeout` is cut off and `serve` returns.
#[tokio::test]
async fn graceful_shutdown_gives_up_after_timeout() {
    let app = "lifecycle_shutdown_timeout";
    let mut proxy = Proxy::start_with(|c| c.shutdown.timeout = Duration::from_secs(1)).await;
    let direct = connect_direct("lifecycle_shutdown_timeout_observer").await;
    let client = proxy.connect(app).await;

    let query = client.simple_query("SELECT pg_sleep(60)");
    let trigger = async {
        wait_until_running(&direct, app, "pg_sleep").await;
        proxy.begin_shutdown();
    };
    let (result, ()) = within(Duration::from_secs(20), "statement cut off", async {
        tokio::join!(query, trigger)
    })
    .await;
    assert!(
        result.is_err(),
        "pg_sleep(60) cannot have completed: {result:?}"
    );
    proxy
        .join(Duration::from_secs(20))
        .await
        .expect("serve returns Ok");
    wait_until_gone(&direct, app).await;
}
