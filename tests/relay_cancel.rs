//! CancelRequest through the proxy: the client cancels with the key the proxy
//! gave it, the proxy forwards to the right origin backend; a wrong key
//! cancels nothing.

use std::time::Duration;

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::support::wire::{RawConn, fe};
use crate::support::{
    Proxy, SETTLE, connect_direct, eventually, simple_rows, wait_until_running, within,
};

/// Hang guard well below the statement's own duration (60 s).
const CANCEL_GUARD: Duration = Duration::from_secs(20);

#[tokio::test]
async fn cancel_through_proxy_cancels_the_query() {
    let app = "cancel_through_proxy";
    let proxy = Proxy::start().await;
    let direct = connect_direct("cancel_through_proxy_observer").await;
    let client = proxy.connect(app).await;
    let token = client.cancel_token();

    let query = client.simple_query("SELECT pg_sleep(60)");
    let cancel = async {
        wait_until_running(&direct, app, "pg_sleep").await;
        token.cancel_query(NoTls).await
    };
    let (result, cancelled) = within(CANCEL_GUARD, "cancelled pg_sleep(60)", async {
        tokio::join!(query, cancel)
    })
    .await;
    cancelled.expect("sending CancelRequest to the proxy");
    let err = result.expect_err("pg_sleep(60) should have been cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");

    // The session is still usable.
    assert_eq!(
        simple_rows(&client, "SELECT 'after cancel'").await,
        vec![vec![Some("after cancel".to_owned())]]
    );
    eventually(SETTLE, "cancel metrics", || async {
        proxy.metrics.cancel_requests.get() == 1
            && proxy.metrics.cancel_requests_forwarded.get() == 1
    })
    .await;
}

/// Two sessions on one proxy: cancelling one leaves the other's query alone.
#[tokio::test]
async fn cancel_reaches_only_its_own_session() {
    let proxy = Proxy::start().await;
    let direct = connect_direct("cancel_own_session_observer").await;
    let victim = proxy.connect("cancel_own_session_victim").await;
    let bystander = proxy.connect("cancel_own_session_bystander").await;
    let token = victim.cancel_token();

    let victim_query = victim.simple_query("SELECT pg_sleep(60)");
    let bystander_query = bystander.simple_query("SELECT pg_sleep(2), 'bystander done'");
    let cancel = async {
        wait_until_running(&direct, "cancel_own_session_victim", "pg_sleep").await;
        wait_until_running(&direct, "cancel_own_session_bystander", "pg_sleep").await;
        token.cancel_query(NoTls).await
    };
    let (victim_result, bystander_result, cancelled) =
        within(CANCEL_GUARD, "victim and bystander", async {
            tokio::join!(victim_query, bystander_query, cancel)
        })
        .await;
    cancelled.expect("CancelRequest");
    let err = victim_result.expect_err("victim should be cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    let rows = bystander_result.expect("bystander's query must not be cancelled");
    let done = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1).map(str::to_owned),
        _ => None,
    });
    assert_eq!(done.as_deref(), Some("bystander done"));
}

/// A CancelRequest with a key the proxy never issued (right pid, wrong secret;
/// wrong pid, right secret) is dropped: the running query completes.
#[tokio::test]
async fn cancel_with_wrong_key_does_nothing() {
    let app = "cancel_wrong_key";
    let proxy = Proxy::start().await;
    let direct = connect_direct("cancel_wrong_key_observer").await;
    let (mut session, startup) = RawConn::startup_app(proxy.addr, app).await;
    let key = startup
        .iter()
        .find(|m| m.tag == b'K')
        .expect("BackendKeyData from the proxy");
    let (pid, secret) = (key.i32_at(0), key.i32_at(4));

    session
        .send(&fe::query("SELECT pg_sleep(3), 'not cancelled'"))
        .await;
    wait_until_running(&direct, app, "pg_sleep").await;
    for (p, s) in [(pid, secret.wrapping_add(1)), (pid.wrapping_add(1), secret)] {
        let mut c = RawConn::connect(proxy.addr).await;
        c.send(&fe::cancel_request(p, s)).await;
        // The proxy, like PostgreSQL, answers a CancelRequest by closing.
        let reply = within(
            SETTLE,
            "proxy closing the cancel connection",
            c.recv_until_closed(),
        )
        .await;
        assert!(reply.is_empty(), "CancelRequest got a reply: {reply:?}");
    }
    eventually(SETTLE, "both CancelRequests counted", || async {
        proxy.metrics.cancel_requests.get() == 2
    })
    .await;
    assert_eq!(proxy.metrics.cancel_requests_forwarded.get(), 0);

    let reply = session.recv_until_ready().await;
    assert!(
        reply.iter().all(|m| !m.is_error()),
        "query was disturbed: {reply:#?}"
    );
    let row = reply.iter().find(|m| m.tag == b'D').expect("DataRow");
    assert_eq!(row.data_row()[1].as_deref(), Some(&b"not cancelled"[..]));
}
