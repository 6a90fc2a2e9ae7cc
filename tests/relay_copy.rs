//! COPY through the proxy with real clients: tokio-postgres (binary COPY FROM
//! STDIN), psql `\copy` both ways, and a failing COPY that leaves the session
//! usable. (The wire-level COPY sub-protocol is compared byte for byte in
//! `relay_golden::copy_in_and_out`.)

use std::pin::pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::support::wire::{RawConn, fe};
use crate::support::{
    HANG_GUARD, Proxy, ScratchDir, connect_direct, describe_output, pg_tool, run_tool, simple_rows,
};

const ROWS: i32 = 10_000;

#[tokio::test]
async fn tokio_postgres_copy_in_and_out() {
    let proxy = Proxy::start().await;
    let client = proxy.connect("copy_tokio").await;
    client
        .batch_execute("CREATE TABLE copy_tokio_t (id int4, v text)")
        .await
        .expect("create table");

    let sink = client
        .copy_in("COPY copy_tokio_t (id, v) FROM STDIN (FORMAT binary)")
        .await
        .expect("COPY FROM STDIN");
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::INT4, Type::TEXT]));
    for i in 0..ROWS {
        let v = if i % 100 == 0 {
            None
        } else {
            Some(format!("row {i} \t tab \\ backslash"))
        };
        writer.as_mut().write(&[&i, &v]).await.expect("write row");
    }
    let copied = writer.finish().await.expect("finish COPY");
    assert_eq!(copied, ROWS as u64);

    // Read back through a raw session via the proxy: COPY TO STDOUT.
    let (mut raw, _) = RawConn::startup_app(proxy.addr, "copy_tokio_out").await;
    let reply = raw
        .simple("COPY (SELECT id, v FROM copy_tokio_t ORDER BY id) TO STDOUT")
        .await;
    assert!(reply.iter().all(|m| !m.is_error()), "{reply:?}");
    let lines: Vec<String> = reply
        .iter()
        .filter(|m| m.tag == b'd')
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(lines.len(), ROWS as usize);
    assert_eq!(lines[0], "0\t\\N\n");
    assert_eq!(lines[7], "7\trow 7 \\t tab \\\\ backslash\n");
    let complete = reply
        .iter()
        .find(|m| m.tag == b'C')
        .expect("CommandComplete");
    assert_eq!(complete.cstrs()[0], format!("COPY {ROWS}"));

    // And directly: the origin holds exactly what went through the proxy.
    let direct = connect_direct("copy_tokio_check").await;
    let row = direct
        .query_one("SELECT count(*), count(v), sum(id) FROM copy_tokio_t", &[])
        .await
        .expect("count");
    assert_eq!(row.get::<_, i64>(0), ROWS as i64);
    assert_eq!(row.get::<_, i64>(1), (ROWS - ROWS / 100) as i64);
    assert_eq!(row.get::<_, i64>(2), (0..ROWS as i64).sum::<i64>());
}

#[tokio::test]
async fn psql_backslash_copy_both_ways() {
    let proxy = Proxy::start().await;
    let dir = ScratchDir::new("copy_psql");
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    let mut csv = String::new();
    for i in 1..=ROWS {
        csv.push_str(&format!("{i},\"value, {i}\"\n"));
    }
    std::fs::write(&input, &csv).expect("write input");

    let direct = connect_direct("copy_psql_setup").await;
    direct
        .batch_execute("CREATE TABLE copy_psql_t (id int4, v text)")
        .await
        .expect("create table");

    let psql = |command: String| {
        let mut cmd = pg_tool("psql");
        cmd.args(["-X", "-v", "ON_ERROR_STOP=1"])
            .arg(format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                proxy.addr.port()
            ))
            .args(["-c", &command]);
        cmd
    };
    let out = run_tool(
        psql(format!(
            "\\copy copy_psql_t FROM '{}' WITH (FORMAT csv)",
            input.display()
        )),
        HANG_GUARD,
    )
    .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("COPY {ROWS}")
    );

    let out = run_tool(
        psql(format!(
            "\\copy (SELECT * FROM copy_psql_t ORDER BY id) TO '{}' WITH (FORMAT csv)",
            output.display()
        )),
        HANG_GUARD,
    )
    .await;
    assert!(out.status.success(), "{}", describe_output(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("COPY {ROWS}")
    );
    let round_trip = std::fs::read_to_string(&output).expect("read output");
    assert_eq!(round_trip, csv);
}

#[tokio::test]
async fn failing_copy_from_keeps_session_usable() {
    let proxy = Proxy::start().await;
    let client = proxy.connect("copy_failing").await;
    client
        .batch_execute("CREATE TABLE copy_failing_t (id int4 NOT NULL)")
        .await
        .expect("create table");

    // tokio-postgres: binary rows with a NULL into a NOT NULL column.
    let sink = client
        .copy_in("COPY copy_failing_t FROM STDIN (FORMAT binary)")
        .await
        .expect("COPY FROM STDIN");
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::INT4]));
    writer.as_mut().write(&[&1i32]).await.expect("row 1");
    let _ = writer.as_mut().write(&[&None::<i32>]).await;
    let err = writer.finish().await.expect_err("NULL into NOT NULL");
    assert_eq!(err.code(), Some(&SqlState::NOT_NULL_VIOLATION), "{err:?}");
    assert_eq!(
        simple_rows(&client, "SELECT count(*) FROM copy_failing_t").await,
        vec![vec![Some("0".into())]]
    );

    // Raw text COPY with bad data: the origin's ErrorResponse, then ReadyForQuery.
    let (mut raw, _) = RawConn::startup_app(proxy.addr, "copy_failing_raw").await;
    raw.send(&fe::query("COPY copy_failing_t FROM STDIN")).await;
    let g = raw.recv_until(|m| m.tag == b'G' || m.tag == b'Z').await;
    assert_eq!(g.last().map(|m| m.tag), Some(b'G'), "{g:?}");
    raw.send(&[fe::copy_data(b"1\n2\nthree\n"), fe::copy_done()].concat())
        .await;
    let reply = raw.recv_until_ready().await;
    let err = reply.iter().find(|m| m.is_error()).expect("ErrorResponse");
    assert_eq!(err.sqlstate().as_deref(), Some("22P02"), "{err:?}");
    assert_eq!(reply.last().map(|m| m.ready_status()), Some(b'I'));
    let after = raw.simple("SELECT count(*) FROM copy_failing_t").await;
    let row = after.iter().find(|m| m.tag == b'D').expect("DataRow");
    assert_eq!(row.data_row(), vec![Some(b"0".to_vec())]);
}
