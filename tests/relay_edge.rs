//! Edge cases of protocol 3.0 through the relay: COPY accounting in the
//! extended protocol, flow control while both directions are busy, a
//! Terminate pipelined behind a query, protocol-version negotiation and the
//! cancel key, start-up packets in tiny pieces.

use std::pin::pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::support::wire::{Msg, RawConn, fe, tags};
use crate::support::{
    HANG_GUARD, Proxy, SETTLE, connect_direct, eventually, wait_until_running, within,
};

/// Shut `proxy` down and check that `conn`, idle, is told 57P01 and closed
/// at once rather than when `shutdown.timeout` (60 s) runs out: the relay
/// must know that no statement is running.
async fn assert_closed_as_idle(mut proxy: Proxy, conn: &mut RawConn) {
    proxy.begin_shutdown();
    let msgs = within(
        Duration::from_secs(15),
        "an idle session to be closed at shutdown",
        conn.recv_until_closed(),
    )
    .await;
    assert_eq!(tags(&msgs), "E", "{msgs:?}");
    assert_eq!(msgs[0].sqlstate().as_deref(), Some("57P01"), "{msgs:?}");
    proxy
        .join(Duration::from_secs(15))
        .await
        .expect("serve returns Ok");
}

/// `COPY … FROM STDIN` in the extended protocol, as libpq and tokio-postgres
/// send it: Parse/Bind/Execute/Sync, then the data, CopyDone (or CopyFail)
/// and a second Sync. The backend ignores a Sync read in copy-in mode, so the
/// two Syncs get one ReadyForQuery between them.
async fn extended_copy(conn: &mut RawConn, table: &str, end: &[Vec<u8>]) -> Vec<Msg> {
    conn.send(
        &[
            fe::parse("", &format!("COPY {table} FROM STDIN"), &[]),
            fe::bind("", "", &[], &[], &[]),
            fe::execute("", 0),
            fe::sync(),
        ]
        .concat(),
    )
    .await;
    let started = conn.recv_until(|m| m.tag == b'G' || m.tag == b'Z').await;
    assert_eq!(tags(&started), "12G", "{started:?}");
    conn.send(&end.concat()).await;
    conn.recv_until_ready().await
}

#[tokio::test]
async fn extended_copy_in_leaves_the_session_idle() {
    let direct = connect_direct("edge_ext_copy_setup").await;
    direct
        .batch_execute("CREATE TABLE edge_ext_copy_t (id int4)")
        .await
        .expect("create table");
    let proxy = Proxy::start().await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "edge_ext_copy").await;
    let reply = extended_copy(
        &mut conn,
        "edge_ext_copy_t",
        &[fe::copy_data(b"1\n2\n"), fe::copy_done(), fe::sync()],
    )
    .await;
    assert_eq!(tags(&reply), "CZ", "{reply:?}");
    assert_closed_as_idle(proxy, &mut conn).await;
}

#[tokio::test]
async fn extended_copy_fail_leaves_the_session_idle() {
    let direct = connect_direct("edge_ext_copy_fail_setup").await;
    direct
        .batch_execute("CREATE TABLE edge_ext_copy_fail_t (id int4)")
        .await
        .expect("create table");
    let proxy = Proxy::start().await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "edge_ext_copy_fail").await;
    let reply = extended_copy(
        &mut conn,
        "edge_ext_copy_fail_t",
        &[
            fe::copy_data(b"1\n"),
            fe::copy_fail("changed my mind"),
            fe::sync(),
        ],
    )
    .await;
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].sqlstate().as_deref(), Some("57014"), "{reply:?}");
    assert_closed_as_idle(proxy, &mut conn).await;
}

/// Bad data: the backend reports the error during copy-in, discards up to
/// the client's next Sync and answers that one only.
#[tokio::test]
async fn extended_copy_with_bad_data_leaves_the_session_idle() {
    let direct = connect_direct("edge_ext_copy_bad_setup").await;
    direct
        .batch_execute("CREATE TABLE edge_ext_copy_bad_t (id int4)")
        .await
        .expect("create table");
    let proxy = Proxy::start().await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "edge_ext_copy_bad").await;
    let reply = extended_copy(
        &mut conn,
        "edge_ext_copy_bad_t",
        &[fe::copy_data(b"1\nthree\n"), fe::copy_done(), fe::sync()],
    )
    .await;
    assert_eq!(tags(&reply), "EZ", "{reply:?}");
    assert_eq!(reply[0].sqlstate().as_deref(), Some("22P02"), "{reply:?}");
    assert_closed_as_idle(proxy, &mut conn).await;
}

/// The same with a real client: tokio-postgres's `copy_in`.
#[tokio::test]
async fn tokio_postgres_copy_in_leaves_the_session_idle() {
    let app = "edge_tp_copy";
    let mut proxy = Proxy::start().await;
    let client = proxy.connect(app).await;
    client
        .batch_execute("CREATE TABLE edge_tp_copy_t (id int4)")
        .await
        .expect("create table");
    let sink = client
        .copy_in("COPY edge_tp_copy_t FROM STDIN (FORMAT binary)")
        .await
        .expect("COPY FROM STDIN");
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::INT4]));
    for i in 0..3i32 {
        writer.as_mut().write(&[&i]).await.expect("row");
    }
    assert_eq!(writer.finish().await.expect("finish COPY"), 3);

    proxy.begin_shutdown();
    proxy
        .join(Duration::from_secs(15))
        .await
        .expect("serve returns Ok well before shutdown.timeout");
    eventually(SETTLE, "the client's connection to be closed", || async {
        client.is_closed()
    })
    .await;
}

/// Simple-query shapes that end in exactly one ReadyForQuery each: an empty
/// query string, several statements with a COPY among them.
#[tokio::test]
async fn simple_query_shapes_leave_the_session_idle() {
    let direct = connect_direct("edge_simple_shapes_setup").await;
    direct
        .batch_execute("CREATE TABLE edge_simple_shapes_t (id int4)")
        .await
        .expect("create table");
    let proxy = Proxy::start().await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "edge_simple_shapes").await;
    let empty = conn.simple("").await;
    assert_eq!(tags(&empty), "IZ", "{empty:?}");
    conn.send(&fe::query(
        "SELECT 1; COPY edge_simple_shapes_t FROM STDIN; SELECT 2",
    ))
    .await;
    let started = conn.recv_until(|m| m.tag == b'G').await;
    assert_eq!(tags(&started), "TDCG", "{started:?}");
    conn.send(&[fe::copy_data(b"7\n"), fe::copy_done()].concat())
        .await;
    let rest = conn.recv_until_ready().await;
    assert_eq!(tags(&rest), "CTDCZ", "{rest:?}");
    assert_closed_as_idle(proxy, &mut conn).await;
}

/// A COPY FROM STDIN whose every row makes the server send a long notice.
/// The server does not read while it is blocked writing, so a relay that
/// stops reading the origin while it waits to write to it deadlocks once the
/// socket buffers are full; a direct tokio-postgres connection does not.
#[tokio::test]
async fn copy_in_against_a_flood_of_notices() {
    const ROWS: usize = 2_000;
    let app = "edge_copy_notices";
    let proxy = Proxy::start().await;
    let client = proxy.connect(app).await;
    client
        .batch_execute(
            "CREATE TABLE edge_copy_notices_t (v text);
             CREATE FUNCTION edge_copy_notices_f() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE NOTICE '%', repeat('n', 50000); RETURN NEW; END $$;
             CREATE TRIGGER edge_copy_notices_tr BEFORE INSERT ON edge_copy_notices_t
               FOR EACH ROW EXECUTE FUNCTION edge_copy_notices_f();",
        )
        .await
        .expect("set up");
    let copy = async {
        let sink = client
            .copy_in("COPY edge_copy_notices_t FROM STDIN (FORMAT binary)")
            .await
            .expect("COPY FROM STDIN");
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::TEXT]));
        let row = "r".repeat(50_000);
        for _ in 0..ROWS {
            writer.as_mut().write(&[&row]).await.expect("row");
        }
        writer.finish().await.expect("finish COPY")
    };
    let copied = within(
        Duration::from_secs(30),
        "COPY while the server sends a notice per row",
        copy,
    )
    .await;
    assert_eq!(copied, ROWS as u64);
}

/// A client may pipeline Terminate behind a query and read the results until
/// the server closes, as PostgreSQL answers the query before it reads the
/// Terminate.
#[tokio::test]
async fn terminate_pipelined_behind_a_query_still_gets_the_results() {
    let proxy = Proxy::start().await;
    let (mut conn, _) = RawConn::startup_app(proxy.addr, "edge_terminate_pipelined").await;
    conn.send(&[fe::query("SELECT 42"), fe::terminate()].concat())
        .await;
    let msgs = within(HANG_GUARD, "results then close", conn.recv_until_closed()).await;
    assert_eq!(tags(&msgs), "TDCZ", "{msgs:?}");
    assert_eq!(msgs[1].data_row(), vec![Some(b"42".to_vec())]);
}

/// The start-up packet arriving one byte per segment is reassembled.
#[tokio::test]
async fn startup_packet_in_one_byte_segments() {
    let proxy = Proxy::start().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let packet = fe::startup(&[
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "edge_tiny_segments"),
    ]);
    for byte in fe::ssl_request().iter().chain(&packet) {
        conn.send(std::slice::from_ref(byte)).await;
        if conn.buffered() == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(conn.read_byte().await, Some(b'N'));
    let startup = conn.recv_until_ready().await;
    assert_eq!(startup.last().map(|m| m.ready_status()), Some(b'I'));
    // And a query split the same way.
    for byte in fe::query("SELECT 'tiny'") {
        conn.send(&[byte]).await;
    }
    let reply = conn.recv_until_ready().await;
    assert_eq!(tags(&reply), "TDCZ", "{reply:?}");
}

/// A stand-in origin for what PostgreSQL 15 cannot show: a server that
/// accepts protocol 3.2 and then sends a 32-byte cancel secret (as
/// PostgreSQL 18 does). It answers each start-up with the key length of the
/// version it was asked for, and reports what it received.
async fn fake_origin() -> (
    TcpListener,
    impl FnOnce(TcpListener) -> tokio::task::JoinHandle<(i32, Vec<u8>)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let serve = |listener: TcpListener| {
        tokio::spawn(async move {
            // The session.
            let (mut s, _) = listener.accept().await.expect("accept");
            let len = s.read_i32().await.expect("length") as usize;
            let mut packet = vec![0u8; len - 4];
            s.read_exact(&mut packet).await.expect("startup");
            let version = i32::from_be_bytes(packet[..4].try_into().expect("4"));
            let mut reply = fe::message(b'R', &0i32.to_be_bytes());
            let secret: Vec<u8> = if version == 196_610 {
                (1..=32).collect()
            } else {
                vec![0, 0, 0, 77]
            };
            let mut key = 4242i32.to_be_bytes().to_vec();
            key.extend_from_slice(&secret);
            reply.extend(fe::message(b'K', &key));
            reply.extend(fe::message(b'Z', b"I"));
            s.write_all(&reply).await.expect("reply");
            // A cancel request, if the proxy forwards one.
            let (mut c, _) = listener.accept().await.expect("accept cancel");
            let mut cancel = vec![0u8; 16];
            c.read_exact(&mut cancel).await.expect("cancel request");
            // PostgreSQL closes a cancel connection without a reply.
            drop(c);
            drop(s);
            (version, cancel)
        })
    };
    (listener, serve)
}

/// A client asking for protocol 3.2 (libpq 18 with max_protocol_version)
/// gets 3.0 through the proxy, told by NegotiateProtocolVersion, so the
/// cancel key it holds is one the proxy issued and cancelling works.
#[tokio::test]
async fn protocol_3_2_request_is_negotiated_down_and_cancel_works() {
    let (listener, serve) = fake_origin().await;
    let port = listener.local_addr().expect("addr").port();
    let fake = serve(listener);
    let proxy = Proxy::start_with(|c| {
        c.origin.host = "127.0.0.1".into();
        c.origin.port = port;
    })
    .await;
    let mut conn = RawConn::connect(proxy.addr).await;
    let mut startup = fe::startup(&[("user", "postgres"), ("database", "postgres")]);
    startup[4..8].copy_from_slice(&196_610i32.to_be_bytes());
    conn.send(&startup).await;
    let msgs = conn.recv_until_ready().await;
    assert_eq!(tags(&msgs), "vRKZ", "{msgs:?}");
    assert_eq!(msgs[0].i32_at(0), 196_608, "{msgs:?}");
    assert_eq!(msgs[0].i32_at(4), 0, "{msgs:?}");
    let key = &msgs[2];
    assert_eq!(key.body.len(), 8, "a protocol 3.0 key: {key:?}");

    let mut cancel = RawConn::connect(proxy.addr).await;
    cancel
        .send(&fe::cancel_request(key.i32_at(0), key.i32_at(4)))
        .await;
    let (version, forwarded) = within(HANG_GUARD, "the fake origin", fake)
        .await
        .expect("fake origin");
    assert_eq!(version, 196_608, "the origin is asked for 3.0");
    assert_eq!(forwarded, fe::cancel_request(4242, 77));
}

/// PostgreSQL accepts a CancelRequest on a connection whose SSLRequest it
/// declined; so does the proxy.
#[tokio::test]
async fn cancel_request_after_declined_ssl_request() {
    let app = "edge_cancel_after_ssl";
    let proxy = Proxy::start().await;
    let direct = connect_direct("edge_cancel_after_ssl_observer").await;
    let (mut conn, startup) = RawConn::startup_app(proxy.addr, app).await;
    let key = startup
        .iter()
        .find(|m| m.tag == b'K')
        .expect("BackendKeyData");
    conn.send(&fe::query("SELECT pg_sleep(60)")).await;
    wait_until_running(&direct, app, "pg_sleep").await;

    let mut cancel = RawConn::connect(proxy.addr).await;
    cancel.send(&fe::ssl_request()).await;
    assert_eq!(cancel.read_byte().await, Some(b'N'));
    cancel
        .send(&fe::cancel_request(key.i32_at(0), key.i32_at(4)))
        .await;
    let reply = within(
        Duration::from_secs(20),
        "the cancelled query",
        conn.recv_until_ready(),
    )
    .await;
    let err = reply.iter().find(|m| m.is_error()).expect("ErrorResponse");
    assert_eq!(err.sqlstate().as_deref(), Some("57014"), "{reply:?}");
}
