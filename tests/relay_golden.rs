//! Golden wire scripts: the same frontend bytes sent directly to PostgreSQL
//! and through the proxy must get the same backend messages, byte for byte
//! (BackendKeyData aside). Scripts read table data through aggregates or
//! expressions so RowDescription carries no per-session table OID.

use crate::support::Proxy;
use crate::support::wire::{Golden, Msg, Step, Until, fe, golden, step};

/// Sanity checks on a transcript, so a script that silently stopped doing
/// what it is meant to do fails too.
fn has_error(msgs: &[Msg], sqlstate: &str) -> bool {
    msgs.iter()
        .any(|m| m.is_error() && m.sqlstate().as_deref() == Some(sqlstate))
}

fn count(msgs: &[Msg], tag: u8) -> usize {
    msgs.iter().filter(|m| m.tag == tag).count()
}

fn ready_statuses(msgs: &[Msg]) -> String {
    msgs.iter()
        .filter(|m| m.tag == b'Z')
        .map(|m| m.ready_status() as char)
        .collect()
}

async fn run(app: &str, steps: &[Step]) -> Golden {
    let proxy = Proxy::start().await;
    let g = golden(proxy.addr, app, steps).await;
    g.assert_same();
    g
}

#[tokio::test]
async fn simple_query_multi_statement() {
    let steps = [
        step(
            &[fe::query(
                "SELECT 1; SELECT 'a' AS letter, NULL::text AS nothing; \
                 CREATE TEMP TABLE golden_simple_t (id int PRIMARY KEY, v text); \
                 INSERT INTO golden_simple_t VALUES (1, 'x'), (2, NULL); \
                 SELECT count(*), string_agg(coalesce(v, 'null'), ',' ORDER BY id) \
                 FROM golden_simple_t",
            )],
            Until::Ready(1),
        ),
        // A failing statement in the middle: the rest is skipped.
        step(
            &[fe::query(
                "SELECT 1; SELECT * FROM golden_simple_missing; SELECT 2",
            )],
            Until::Ready(1),
        ),
        // A ParameterStatus in mid-session, and an empty query.
        step(&[fe::query("SET DateStyle = 'SQL, DMY'")], Until::Ready(1)),
        step(&[fe::query("")], Until::Ready(1)),
        step(&[fe::query(";")], Until::Ready(1)),
        // Failed explicit transaction: 'E' until ROLLBACK.
        step(&[fe::query("BEGIN; SELECT 1/0; SELECT 3")], Until::Ready(1)),
        step(&[fe::query("SELECT 4")], Until::Ready(1)),
        step(&[fe::query("ROLLBACK")], Until::Ready(1)),
        // Two queries pipelined in one write.
        step(
            &[
                // An error whose fields do not name the session's temp
                // schema (pg_temp_N differs between the two connections).
                fe::query("INSERT INTO golden_simple_t VALUES ('one', 'dup')"),
                fe::query("SELECT now()::date = current_date, 'still alive'"),
            ],
            Until::Ready(2),
        ),
        step(&[fe::terminate()], Until::Closed),
    ];
    let g = run("golden_simple", &steps).await;
    let p = &g.proxied;
    assert!(has_error(p, "42P01"), "undefined table error expected");
    assert!(has_error(p, "22012"), "division by zero expected");
    assert!(has_error(p, "25P02"), "in failed transaction expected");
    assert!(has_error(p, "22P02"), "invalid integer input expected");
    assert_eq!(count(p, b'I'), 2, "two EmptyQueryResponse");
    assert_eq!(
        ready_statuses(p),
        "IIIIIIEEIII",
        "start-up, then one per step"
    );
}

#[tokio::test]
async fn extended_protocol_pipeline() {
    let five = 5i32.to_be_bytes();
    let steps = [
        // Everything before one Sync.
        step(
            &[
                fe::parse("s1", "SELECT $1::int4 + 1 AS n, $2::text AS t", &[23, 25]),
                fe::describe_statement("s1"),
                fe::bind("p1", "s1", &[], &[Some(b"41"), Some(b"hello")], &[1]),
                fe::describe_portal("p1"),
                fe::execute("p1", 0),
                fe::parse(
                    "",
                    "SELECT g, repeat('x', g) AS r, g::float8 / 3 AS third \
                     FROM generate_series(1, $1::int4) AS g",
                    &[],
                ),
                // Binary parameter; mixed result formats.
                fe::bind("", "", &[1], &[Some(&five[..])], &[0, 1, 1]),
                fe::describe_portal(""),
                fe::execute("", 2),
                fe::execute("", 2),
                fe::execute("", 0),
                fe::bind("", "s1", &[], &[None, Some(b"null in")], &[]),
                fe::execute("", 0),
                fe::close_portal("p1"),
                fe::close_statement("s1"),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        // An error mid-pipeline: messages up to Sync are skipped.
        step(
            &[
                fe::parse("s2", "SELECT 10 / $1::int4 AS q", &[]),
                fe::bind("", "s2", &[], &[Some(b"0")], &[]),
                fe::execute("", 0),
                fe::parse("s3", "SELECT 'skipped'", &[]),
                fe::bind("", "s3", &[], &[], &[]),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        // s2 survived (prepared statements are not transactional), s3 never existed.
        step(
            &[
                fe::bind("", "s2", &[], &[Some(b"4")], &[1]),
                fe::execute("", 0),
                fe::describe_statement("s3"),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        // Flush without Sync: ParseComplete arrives on its own.
        step(
            &[fe::parse("s4", "SELECT $1::text AS echo", &[]), fe::flush()],
            Until::Tag(b'1'),
        ),
        step(
            &[
                fe::bind("", "s4", &[], &[Some(b"flushed")], &[]),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        // A named portal living across Syncs inside an explicit transaction.
        step(&[fe::query("BEGIN")], Until::Ready(1)),
        step(
            &[
                fe::parse("", "SELECT g FROM generate_series(1, 3) AS g", &[]),
                fe::bind("cur", "", &[], &[], &[]),
                fe::execute("cur", 1),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        step(
            &[fe::execute("cur", 1), fe::execute("cur", 0), fe::sync()],
            Until::Ready(1),
        ),
        step(&[fe::query("COMMIT")], Until::Ready(1)),
        // Closing what does not exist is not an error.
        step(
            &[
                fe::close_statement("s1"),
                fe::close_portal("nope"),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        step(&[fe::terminate()], Until::Closed),
    ];
    let g = run("golden_extended", &steps).await;
    let p = &g.proxied;
    assert_eq!(
        count(p, b's'),
        4,
        "PortalSuspended: two on the unnamed portal, two on the cursor"
    );
    assert!(has_error(p, "22012"), "division by zero expected");
    assert!(
        has_error(p, "26000"),
        "undefined prepared statement expected"
    );
    assert_eq!(count(p, b'3'), 4, "CloseComplete ×4");
    assert_eq!(count(p, b't'), 1, "ParameterDescription ×1");
    assert_eq!(
        ready_statuses(p),
        "IIIIITTTII",
        "start-up, then one per step"
    );
}

#[tokio::test]
async fn notices_and_warnings() {
    let steps = [
        step(
            &[fe::query(
                "DO $$ BEGIN RAISE NOTICE 'hello'; RAISE WARNING 'careful' \
                 USING DETAIL = 'some detail', HINT = 'a hint'; END $$",
            )],
            Until::Ready(1),
        ),
        step(
            &[fe::query(
                "DROP TABLE IF EXISTS golden_notice_never_existed",
            )],
            Until::Ready(1),
        ),
        step(
            &[
                fe::parse("", "DO $$ BEGIN RAISE NOTICE 'extended %', 42; END $$", &[]),
                fe::bind("", "", &[], &[], &[]),
                fe::execute("", 0),
                fe::sync(),
            ],
            Until::Ready(1),
        ),
        step(&[fe::terminate()], Until::Closed),
    ];
    let g = run("golden_notice", &steps).await;
    let notices: Vec<String> = g
        .proxied
        .iter()
        .filter(|m| m.tag == b'N')
        .filter_map(|m| m.field(b'M'))
        .collect();
    assert!(notices.contains(&"hello".to_owned()), "{notices:?}");
    assert!(notices.contains(&"careful".to_owned()), "{notices:?}");
    assert!(notices.contains(&"extended 42".to_owned()), "{notices:?}");
    assert_eq!(notices.len(), 4, "{notices:?}");
}

#[tokio::test]
async fn copy_in_and_out() {
    let steps = [
        step(
            &[fe::query(
                "CREATE TEMP TABLE golden_copy_t (id int, v text)",
            )],
            Until::Ready(1),
        ),
        // COPY FROM STDIN in the simple protocol.
        step(
            &[fe::query("COPY golden_copy_t FROM STDIN")],
            Until::Tag(b'G'),
        ),
        step(
            &[
                fe::copy_data(b"1\tone\n2\t\\N\n"),
                fe::copy_data(b"3\tth"),
                fe::copy_data(b"ree\n"),
                fe::copy_done(),
            ],
            Until::Ready(1),
        ),
        // Bad data: ErrorResponse, ReadyForQuery; the CopyDone after it is ignored.
        step(
            &[fe::query("COPY golden_copy_t FROM STDIN")],
            Until::Tag(b'G'),
        ),
        step(
            &[
                fe::copy_data(b"4\tfour\nnot a number\tx\n"),
                fe::copy_done(),
            ],
            Until::Ready(1),
        ),
        // CopyFail from the client.
        step(
            &[fe::query("COPY golden_copy_t FROM STDIN")],
            Until::Tag(b'G'),
        ),
        step(
            &[fe::copy_data(b"5\tfive\n"), fe::copy_fail("client gave up")],
            Until::Ready(1),
        ),
        // COPY FROM STDIN in the extended protocol.
        step(
            &[
                fe::parse("", "COPY golden_copy_t FROM STDIN (FORMAT csv)", &[]),
                fe::bind("", "", &[], &[], &[]),
                fe::execute("", 0),
                fe::flush(),
            ],
            Until::Tag(b'G'),
        ),
        step(
            &[fe::copy_data(b"6,six\n"), fe::copy_done(), fe::sync()],
            Until::Ready(1),
        ),
        // COPY TO STDOUT, then the session continues.
        step(
            &[fe::query(
                "COPY (SELECT * FROM golden_copy_t ORDER BY id) TO STDOUT",
            )],
            Until::Ready(1),
        ),
        step(
            &[fe::query("SELECT count(*) FROM golden_copy_t")],
            Until::Ready(1),
        ),
        step(&[fe::terminate()], Until::Closed),
    ];
    let g = run("golden_copy", &steps).await;
    let p = &g.proxied;
    assert!(has_error(p, "22P02"), "invalid integer expected");
    assert!(has_error(p, "57014"), "COPY from stdin failed expected");
    let out: Vec<u8> = p
        .iter()
        .filter(|m| m.tag == b'd')
        .flat_map(|m| m.body.to_vec())
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "1\tone\n2\t\\N\n3\tthree\n6\tsix\n"
    );
}
