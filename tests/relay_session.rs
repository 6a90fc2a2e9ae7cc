//! Asynchronous messages and errors in a session through the proxy:
//! NoticeResponse, NotificationResponse (LISTEN/NOTIFY), ErrorResponse with
//! its SQLSTATE and fields, and the session carrying on afterwards.

use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::support::{HANG_GUARD, Proxy, connect, connect_direct, pg_config, simple_rows, within};

/// Connect with `cfg`, forwarding notices and notifications to a channel.
async fn connect_with_messages(
    cfg: &tokio_postgres::Config,
) -> (Client, mpsc::UnboundedReceiver<AsyncMessage>) {
    let (client, mut connection) = within(HANG_GUARD, "connect", cfg.connect(NoTls))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            let _ = tx.send(msg);
        }
    });
    (client, rx)
}

async fn next_message(rx: &mut mpsc::UnboundedReceiver<AsyncMessage>) -> AsyncMessage {
    within(HANG_GUARD, "an asynchronous message", rx.recv())
        .await
        .expect("connection ended")
}

#[tokio::test]
async fn notice_reaches_the_client() {
    let proxy = Proxy::start().await;
    let (client, mut rx) = connect_with_messages(&proxy.pg_config("session_notice")).await;
    client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hello %', 'proxy'; END $$")
        .await
        .expect("DO block");
    match next_message(&mut rx).await {
        AsyncMessage::Notice(n) => {
            assert_eq!(n.message(), "hello proxy");
            assert_eq!(n.code(), &SqlState::SUCCESSFUL_COMPLETION);
            assert_eq!(n.severity(), "NOTICE");
        }
        other => panic!("expected a notice, got {other:?}"),
    }
}

#[tokio::test]
async fn listen_notify_through_proxy() {
    let proxy = Proxy::start().await;
    let (listener, mut rx) = connect_with_messages(&proxy.pg_config("session_listen")).await;
    listener
        .batch_execute("LISTEN session_listen_chan")
        .await
        .expect("LISTEN");

    // Notified from a direct session while the listener sits idle: the proxy
    // must relay what the origin sends unprompted.
    let notifier = connect_direct("session_listen_notifier").await;
    let notifier_pid: i32 = notifier
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    notifier
        .batch_execute("NOTIFY session_listen_chan, 'payload one'")
        .await
        .expect("NOTIFY");
    match next_message(&mut rx).await {
        AsyncMessage::Notification(n) => {
            assert_eq!(n.channel(), "session_listen_chan");
            assert_eq!(n.payload(), "payload one");
            assert_eq!(n.process_id(), notifier_pid);
        }
        other => panic!("expected a notification, got {other:?}"),
    }

    // And from another session through the same proxy.
    let notifier2 = proxy.connect("session_listen_notifier2").await;
    notifier2
        .batch_execute("SELECT pg_notify('session_listen_chan', 'payload two')")
        .await
        .expect("pg_notify");
    match next_message(&mut rx).await {
        AsyncMessage::Notification(n) => assert_eq!(n.payload(), "payload two"),
        other => panic!("expected a notification, got {other:?}"),
    }
    assert_eq!(
        simple_rows(&listener, "SELECT 'listener still works'").await,
        vec![vec![Some("listener still works".to_owned())]]
    );
}

#[tokio::test]
async fn error_response_keeps_sqlstate_and_session_continues() {
    let proxy = Proxy::start().await;
    let client = proxy.connect("session_errors").await;

    // Simple protocol.
    let err = client
        .simple_query("SELECT * FROM session_errors_missing")
        .await
        .expect_err("undefined table");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    assert_eq!(
        simple_rows(&client, "SELECT 1").await,
        vec![vec![Some("1".into())]]
    );

    // Extended protocol: the error arrives for Parse.
    let err = client
        .query(
            "SELECT * FROM session_errors_missing WHERE x = $1",
            &[&1i32],
        )
        .await
        .expect_err("undefined table");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    let n: i32 = client
        .query_one("SELECT $1::int4 * 2", &[&21i32])
        .await
        .expect("query after error")
        .get(0);
    assert_eq!(n, 42);

    // All the fields of the origin's error are relayed: compare with direct.
    let sql = "CREATE TEMP TABLE session_errors_t (id int PRIMARY KEY); \
               INSERT INTO session_errors_t VALUES (1); \
               INSERT INTO session_errors_t VALUES (1)";
    let direct = connect(&pg_config(
        crate::support::origin().addr(),
        "session_errors_direct",
    ))
    .await
    .expect("direct");
    let via = client.batch_execute(sql).await.expect_err("duplicate key");
    let straight = direct.batch_execute(sql).await.expect_err("duplicate key");
    let (via, straight) = (
        via.as_db_error().expect("db error"),
        straight.as_db_error().expect("db error"),
    );
    assert_eq!(via.code(), &SqlState::UNIQUE_VIOLATION);
    assert_eq!(via.severity(), straight.severity());
    assert_eq!(via.message(), straight.message());
    assert_eq!(via.detail(), straight.detail());
    assert_eq!(via.detail(), Some("Key (id)=(1) already exists."));
    // Temp schemas are per backend (pg_temp_N), so only the prefix matches.
    assert!(
        via.schema().is_some_and(|s| s.starts_with("pg_temp")),
        "{via:?}"
    );
    assert_eq!(via.table(), Some("session_errors_t"));
    assert_eq!(via.constraint(), Some("session_errors_t_pkey"));

    // A failed transaction block, then recovery.
    client.batch_execute("BEGIN").await.expect("BEGIN");
    let err = client
        .batch_execute("SELECT 1/0")
        .await
        .expect_err("div by zero");
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let err = client.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    client.batch_execute("ROLLBACK").await.expect("ROLLBACK");
    assert_eq!(
        simple_rows(&client, "SELECT 2").await,
        vec![vec![Some("2".into())]]
    );
}
