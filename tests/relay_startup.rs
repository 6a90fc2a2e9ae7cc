//! Connection start-up through the proxy: SSL/GSSAPI negotiation is declined
//! with `N`, the StartupMessage that follows on the same socket works, and
//! what the client sees at start-up matches a direct connection.

use crate::support::wire::{AUTH_OK, Msg, RawConn, fe, golden, tags};
use crate::support::{HANG_GUARD, Proxy, origin, pg_tool, run_tool};

/// Check a start-up transcript: AuthenticationOk, ParameterStatus…, one
/// BackendKeyData, ReadyForQuery 'I' last.
fn assert_started(msgs: &[Msg]) {
    assert!(
        msgs.first()
            .is_some_and(|m| m.tag == b'R' && m.i32_at(0) == AUTH_OK),
        "expected AuthenticationOk first: {msgs:#?}"
    );
    assert!(
        msgs.iter().all(|m| !m.is_error()),
        "error at start-up: {msgs:#?}"
    );
    let keys: Vec<&Msg> = msgs.iter().filter(|m| m.tag == b'K').collect();
    assert_eq!(keys.len(), 1, "BackendKeyData: {msgs:#?}");
    assert_eq!(keys[0].body.len(), 8, "BackendKeyData body: {:?}", keys[0]);
    let last = msgs.last().expect("messages");
    assert_eq!(last.ready_status(), b'I', "{}", tags(msgs));
}

async fn startup_after_negotiation(conn: &mut RawConn, app: &str) {
    conn.send(&fe::startup(&[
        ("user", origin::SUPERUSER),
        ("database", "postgres"),
        ("application_name", app),
    ]))
    .await;
    let msgs = conn.recv_until_ready().await;
    assert_started(&msgs);
    let reply = conn.simple("SELECT 'after negotiation'").await;
    let row = reply
        .iter()
        .find(|m| m.tag == b'D')
        .unwrap_or_else(|| panic!("no DataRow: {reply:#?}"));
    assert_eq!(row.data_row(), vec![Some(b"after negotiation".to_vec())]);
}

#[tokio::test]
async fn psql_with_default_sslmode_connects() {
    let proxy = Proxy::start().await;
    let mut psql = pg_tool("psql");
    psql.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            proxy.addr.port()
        ))
        .args(["-c", "select 1"]);
    let out = run_tool(psql, HANG_GUARD).await;
    assert!(
        out.status.success(),
        "{}",
        crate::support::describe_output(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[tokio::test]
async fn ssl_request_is_declined_then_startup_works() {
    let proxy = Proxy::start().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    conn.send(&fe::ssl_request()).await;
    assert_eq!(conn.read_byte().await, Some(b'N'));
    assert_eq!(conn.buffered(), 0, "bytes after the SSLRequest answer");
    startup_after_negotiation(&mut conn, "ssl_request_is_declined").await;
}

#[tokio::test]
async fn gssenc_request_is_declined_then_startup_works() {
    let proxy = Proxy::start().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    conn.send(&fe::gssenc_request()).await;
    assert_eq!(conn.read_byte().await, Some(b'N'));
    assert_eq!(conn.buffered(), 0, "bytes after the GSSENCRequest answer");
    startup_after_negotiation(&mut conn, "gssenc_request_is_declined").await;
}

/// libpq with gssencmode=prefer and sslmode=prefer: GSSENCRequest, then
/// SSLRequest, then StartupMessage, all on one socket.
#[tokio::test]
async fn gssenc_then_ssl_request_then_startup() {
    let proxy = Proxy::start().await;
    let mut conn = RawConn::connect(proxy.addr).await;
    conn.send(&fe::gssenc_request()).await;
    assert_eq!(conn.read_byte().await, Some(b'N'));
    conn.send(&fe::ssl_request()).await;
    assert_eq!(conn.read_byte().await, Some(b'N'));
    assert_eq!(conn.buffered(), 0);
    startup_after_negotiation(&mut conn, "gssenc_then_ssl_request").await;
}

/// Start-up through the proxy is what a direct connection sees: the same
/// ParameterStatus messages in the same order, one BackendKeyData, ReadyForQuery 'I'.
#[tokio::test]
async fn startup_matches_direct_connection() {
    let proxy = Proxy::start().await;
    let g = golden(proxy.addr, "startup_matches_direct", &[]).await;
    assert_started(&g.direct);
    assert_started(&g.proxied);
    let names = |msgs: &[Msg]| -> Vec<String> {
        msgs.iter()
            .filter(|m| m.tag == b'S')
            .map(|m| m.cstrs()[0].clone())
            .collect()
    };
    let proxied_names = names(&g.proxied);
    for expected in ["server_version", "client_encoding", "application_name"] {
        assert!(
            proxied_names.iter().any(|n| n == expected),
            "ParameterStatus {expected} missing: {proxied_names:?}"
        );
    }
    assert_eq!(names(&g.direct), proxied_names);
    g.assert_same();
}
