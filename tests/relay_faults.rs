//! Faults: malformed and oversized frontend messages (08P01, then close;
//! other sessions unaffected), an origin that is down (class 08 error with
//! the reason, proxy keeps serving) or refuses the session (its own FATAL).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio_postgres::error::SqlState;

use crate::support::wire::{Msg, RawConn, fe};
use crate::support::{HANG_GUARD, Proxy, SETTLE, connect, eventually, simple_rows, within};

/// Read until the proxy closes; the last message must be an ErrorResponse.
async fn error_then_close(conn: &mut RawConn) -> Msg {
    let msgs = within(HANG_GUARD, "error then close", conn.recv_until_closed()).await;
    let last = msgs
        .last()
        .unwrap_or_else(|| panic!("connection closed without an ErrorResponse"));
    assert!(
        last.is_error(),
        "last message should be ErrorResponse: {msgs:#?}"
    );
    last.clone()
}

/// [`error_then_close`] with SQLSTATE `sqlstate`.
async fn expect_error_then_close(conn: &mut RawConn, sqlstate: &str) -> Msg {
    let err = error_then_close(conn).await;
    assert_eq!(err.sqlstate().as_deref(), Some(sqlstate), "{err:?}");
    err
}

async fn bystander_works(bystander: &tokio_postgres::Client) {
    assert_eq!(
        simple_rows(bystander, "SELECT 'bystander ok'").await,
        vec![vec![Some("bystander ok".to_owned())]]
    );
}

#[tokio::test]
async fn message_length_below_four_is_rejected() {
    let proxy = Proxy::start().await;
    let bystander = proxy.connect("faults_short_length_bystander").await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "faults_short_length").await;
    // 'Q' with length 3: not even the length field fits.
    conn.send(&[b'Q', 0, 0, 0, 3]).await;
    expect_error_then_close(&mut conn, "08P01").await;
    eventually(SETTLE, "protocol_errors counted", || async {
        proxy.metrics.protocol_errors.get() == 1
    })
    .await;
    bystander_works(&bystander).await;
}

#[tokio::test]
async fn unknown_message_type_is_rejected() {
    let proxy = Proxy::start().await;
    let bystander = proxy.connect("faults_unknown_type_bystander").await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "faults_unknown_type").await;
    conn.send(&fe::message(b'z', b"")).await;
    expect_error_then_close(&mut conn, "08P01").await;
    bystander_works(&bystander).await;
}

const LIMIT: usize = 64 * 1024;

/// Header of a Query whose length field is `len` (type byte excluded, length
/// field included), and the first bytes of its body. The rest is never sent:
/// the proxy must decide from the length field alone.
fn oversized_query_start(len: usize) -> Vec<u8> {
    let mut m = vec![b'Q'];
    m.extend_from_slice(&(len as i32).to_be_bytes());
    m.extend_from_slice(b"SELECT '");
    m.extend(std::iter::repeat_n(b'x', 1000));
    m
}

/// A complete Query whose length field is exactly `len`.
fn query_of_length(len: usize) -> (Vec<u8>, usize) {
    // 'Q' len "SELECT length('" x… "')" NUL
    let fixed = 4 + "SELECT length('".len() + "')".len() + 1;
    let n = len - fixed;
    let sql = format!("SELECT length('{}')", "x".repeat(n));
    let m = fe::query(&sql);
    assert_eq!(m.len(), len + 1);
    (m, n)
}

#[tokio::test]
async fn oversized_message_is_rejected() {
    let proxy = Proxy::start_with(|c| c.limits.max_message_size = LIMIT).await;
    let bystander = proxy.connect("faults_oversized_bystander").await;

    let (mut conn, _) = RawConn::startup_app(proxy.addr, "faults_oversized").await;
    conn.send(&oversized_query_start(1024 * 1024)).await;
    expect_error_then_close(&mut conn, "08P01").await;
    eventually(SETTLE, "protocol_errors counted", || async {
        proxy.metrics.protocol_errors.get() == 1
    })
    .await;
    bystander_works(&bystander).await;

    // Just under the limit works.
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "faults_under_limit").await;
    let (query, n) = query_of_length(LIMIT - 100);
    conn.send(&query).await;
    let reply = conn.recv_until_ready().await;
    let row = reply
        .iter()
        .find(|m| m.tag == b'D')
        .unwrap_or_else(|| panic!("no DataRow: {reply:#?}"));
    assert_eq!(row.data_row(), vec![Some(n.to_string().into_bytes())]);
}

/// `limits.max_message_size` counts the length field and excludes the type
/// byte, as the protocol does: a message of exactly the limit passes, one
/// byte more is refused.
#[tokio::test]
async fn max_message_size_boundary() {
    let proxy = Proxy::start_with(|c| c.limits.max_message_size = LIMIT).await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "faults_at_limit").await;
    let (query, n) = query_of_length(LIMIT);
    conn.send(&query).await;
    let reply = conn.recv_until_ready().await;
    assert!(reply.iter().all(|m| !m.is_error()), "{reply:#?}");
    let row = reply.iter().find(|m| m.tag == b'D').expect("DataRow");
    assert_eq!(row.data_row(), vec![Some(n.to_string().into_bytes())]);

    let (mut conn, _) = RawConn::startup_app(proxy.addr, "faults_over_limit").await;
    conn.send(&oversized_query_start(LIMIT + 1)).await;
    expect_error_then_close(&mut conn, "08P01").await;
}

/// A bound socket that is not listening: connecting to it is refused, and
/// nothing else can take the port while we hold it.
fn refusing_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

#[tokio::test]
async fn origin_down_gets_connection_error_and_proxy_keeps_serving() {
    let (_held, dead) = refusing_port();
    let proxy = Proxy::start_with(|c| {
        c.origin.host = dead.ip().to_string();
        c.origin.port = dead.port();
    })
    .await;
    for attempt in 1..=3u64 {
        let mut conn = RawConn::connect(proxy.addr).await;
        conn.send(&fe::startup(&[
            ("user", "postgres"),
            ("database", "postgres"),
        ]))
        .await;
        let err = error_then_close(&mut conn).await;
        let code = err.sqlstate().unwrap_or_default();
        assert!(
            code.starts_with("08"),
            "attempt {attempt}: class 08 expected: {err:?}"
        );
        let message = err.field(b'M').unwrap_or_default();
        assert!(
            message.to_lowercase().contains("refused"),
            "attempt {attempt}: message should give the reason: {err:?}"
        );
        eventually(SETTLE, "origin_connect_failures counted", || async {
            proxy.metrics.origin_connect_failures.get() == attempt
        })
        .await;
    }
    // tokio-postgres sees the same.
    let Err(err) = connect(&proxy.pg_config("faults_origin_down")).await else {
        panic!("connected without an origin");
    };
    let db = err.as_db_error().unwrap_or_else(|| panic!("{err:?}"));
    assert!(db.code().code().starts_with("08"), "{db:?}");
}

#[tokio::test]
async fn origin_refusing_database_relays_fatal() {
    let proxy = Proxy::start().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    conn.send(&fe::startup(&[
        ("user", "postgres"),
        ("database", "faults_no_such_database"),
    ]))
    .await;
    let err = expect_error_then_close(&mut conn, "3D000").await;
    assert_eq!(err.field(b'S').as_deref(), Some("FATAL"));
    assert!(
        err.field(b'M')
            .unwrap_or_default()
            .contains("faults_no_such_database"),
        "{err:?}"
    );

    let mut cfg = proxy.pg_config("faults_no_such_database");
    cfg.dbname("faults_no_such_database");
    let Err(err) = connect(&cfg).await else {
        panic!("connected to a database that does not exist");
    };
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err:?}");

    // The proxy is fine.
    let client = proxy.connect("faults_after_3d000").await;
    bystander_works(&client).await;
}

#[tokio::test]
async fn connections_beyond_max_connections_are_refused() {
    let proxy = Proxy::start_with(|c| c.limits.max_connections = 1).await;
    let first = proxy.connect("faults_max_connections_first").await;

    let mut conn = RawConn::connect(proxy.addr).await;
    conn.send(&fe::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
    ]))
    .await;
    expect_error_then_close(&mut conn, "53300").await;
    eventually(SETTLE, "the refusal counted", || async {
        proxy.metrics.client_connections_refused.get() == 1
    })
    .await;
    bystander_works(&first).await;

    // The slot is released when the first session ends.
    drop(first);
    eventually(SETTLE, "a slot to free up", || async {
        connect(&proxy.pg_config("faults_max_connections_second"))
            .await
            .is_ok()
    })
    .await;
}

/// A client that never sends its startup packet is disconnected after
/// `limits.startup_timeout` (hang guard only; no timing asserted).
#[tokio::test]
async fn silent_client_is_disconnected_after_startup_timeout() {
    let proxy = Proxy::start_with(|c| c.limits.startup_timeout = Duration::from_millis(200)).await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let msgs = within(
        HANG_GUARD,
        "the proxy to close a silent client",
        conn.recv_until_closed(),
    )
    .await;
    assert!(
        msgs.iter().all(|m| m.is_error()),
        "only an ErrorResponse may precede the close: {msgs:?}"
    );
    let other = proxy.connect("faults_startup_timeout_other").await;
    bystander_works(&other).await;
}
