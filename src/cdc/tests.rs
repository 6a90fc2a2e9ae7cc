//! The replication-stream framing, captured from PostgreSQL 15
//! (`tests/fixtures/pgoutput/stream_framing.hex`), and the stream's newtypes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use proptest::prelude::*;

use super::fixtures::fixture;
use super::pgoutput::{self, LogicalMessage};
use super::replication::{PrimaryKeepalive, ServerMessage, StandbyStatusUpdate, XLogData};
use super::{DecodeError, Lsn, LsnParseError, Timestamp, Xid};

fn xlog_data(m: &ServerMessage) -> &XLogData {
    match m {
        ServerMessage::XLogData(x) => x,
        other => panic!("expected XLogData, got {other:?}"),
    }
}

fn keepalive(m: &ServerMessage) -> &PrimaryKeepalive {
    match m {
        ServerMessage::PrimaryKeepalive(k) => k,
        other => panic!("expected Primary keepalive, got {other:?}"),
    }
}

#[test]
fn replication_stream_framing() {
    let payloads = fixture!("stream_framing.hex");
    assert_eq!(payloads.len(), 10);
    // The status update (index 8) is what the client sent; the rest came
    // from the server.
    let server: Vec<ServerMessage> = payloads
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 8)
        .map(|(_, p)| ServerMessage::decode(p).unwrap())
        .collect();

    let first = keepalive(&server[0]);
    assert_eq!(first.wal_end, "0/15B6800".parse().unwrap());
    assert!(!first.reply_requested);

    let inner: Vec<LogicalMessage> = server[1..5]
        .iter()
        .map(|m| pgoutput::decode(&xlog_data(m).data).unwrap())
        .collect();
    let tags: String = inner.iter().map(|m| char::from(m.tag())).collect();
    assert_eq!(tags, "BRIC");
    let begin = xlog_data(&server[1]);
    assert_eq!(begin.wal_start, "0/15B6800".parse().unwrap());
    assert_eq!(begin.wal_end, begin.wal_start);
    // A Relation message has no WAL position of its own.
    let relation = xlog_data(&server[2]);
    assert_eq!((relation.wal_start, relation.wal_end), (Lsn(0), Lsn(0)));
    let LogicalMessage::Commit(commit) = &inner[3] else {
        panic!("expected Commit, got {:?}", inner[3]);
    };
    let commit_frame = xlog_data(&server[4]);
    assert_eq!(commit_frame.wal_start, commit.end_lsn);
    assert_eq!(commit.end_lsn, "0/15B6870".parse().unwrap());
    // Send times never go backwards.
    for pair in server.windows(2) {
        let time = |m: &ServerMessage| match m {
            ServerMessage::XLogData(x) => x.send_time,
            ServerMessage::PrimaryKeepalive(k) => k.send_time,
        };
        assert!(time(&pair[0]) <= time(&pair[1]));
    }

    let asked = keepalive(&server[7]);
    assert!(asked.reply_requested);
    assert_eq!(asked.wal_end, commit.end_lsn);
    assert!(!keepalive(&server[8]).reply_requested);
}

#[test]
fn standby_status_update_matches_what_the_server_accepted() {
    let payloads = fixture!("stream_framing.hex");
    let sent = &payloads[8];
    // The capture read the slot's confirmed_flush_lsn back as 0/15B6870.
    let update = StandbyStatusUpdate {
        write: "0/15B6870".parse().unwrap(),
        flush: "0/15B6870".parse().unwrap(),
        apply: "0/15B6870".parse().unwrap(),
        client_time: Timestamp(i64::from_be_bytes(sent[25..33].try_into().unwrap())),
        reply_requested: true,
    };
    assert_eq!(update.encode().as_slice(), sent.as_ref());
    assert_eq!(
        ServerMessage::decode(sent),
        Err(DecodeError::UnknownTag(b'r'))
    );
}

#[test]
fn every_truncation_of_a_server_message_is_an_error() {
    for (i, payload) in fixture!("stream_framing.hex").iter().enumerate() {
        // XLogData ends with its payload, so any cut past the header is a
        // shorter (still framed) payload; only header cuts must fail.
        let must_fail = match payload.first() {
            Some(b'w') => 25,
            _ => payload.len(),
        };
        for len in 0..must_fail {
            assert!(
                ServerMessage::decode(&payload.slice(..len)).is_err(),
                "payload {i} truncated to {len} bytes decoded"
            );
        }
    }
}

#[test]
fn keepalive_reply_flag_must_be_boolean() {
    let bad = Bytes::from_static(b"k\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02\x02");
    assert_eq!(
        ServerMessage::decode(&bad),
        Err(DecodeError::InvalidByte {
            what: "Primary keepalive reply flag",
            byte: 2
        })
    );
    let long = Bytes::from_static(b"k\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x02\x01\0");
    assert_eq!(
        ServerMessage::decode(&long),
        Err(DecodeError::TrailingBytes {
            tag: b'k',
            extra: 1
        })
    );
}

#[test]
fn lsn_text_round_trips_like_postgres() {
    let lsn: Lsn = "16/B374D848".parse().unwrap();
    assert_eq!(lsn, Lsn(0x16_B374_D848));
    assert_eq!(lsn.to_string(), "16/B374D848");
    assert_eq!(Lsn(0).to_string(), "0/0");
    assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    assert_eq!("ffffffff/ffffffff".parse(), Ok(Lsn(u64::MAX)));
    assert_eq!("0/1".parse(), Ok(Lsn(1)));
    assert!(Lsn(1) < "1/0".parse().unwrap());
    for bad in [
        "",
        "/",
        "0/",
        "/0",
        "0",
        "0/0/0",
        "100000000/0",
        "g/0",
        "+1/0",
        " 0/0",
        "0/-1",
    ] {
        assert_eq!(
            bad.parse::<Lsn>(),
            Err(LsnParseError(bad.to_owned())),
            "{bad:?}"
        );
    }
    assert_eq!(
        "x".parse::<Lsn>().unwrap_err().to_string(),
        "invalid LSN \"x\": expected hex digits like 16/B374D848"
    );
}

#[test]
fn timestamps_count_from_2000() {
    assert_eq!(
        Timestamp(0).to_system_time(),
        Some(UNIX_EPOCH + Duration::from_secs(946_684_800))
    );
    assert_eq!(
        Timestamp(-946_684_800_000_000).to_system_time(),
        Some(UNIX_EPOCH)
    );
    let now = SystemTime::now();
    let back = Timestamp::from_system_time(now)
        .and_then(Timestamp::to_system_time)
        .unwrap();
    let diff = now.duration_since(back).unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_micros(1));
    assert_eq!(
        Timestamp::from_system_time(UNIX_EPOCH),
        Some(Timestamp(-946_684_800_000_000))
    );
    assert!(Timestamp::now() > Timestamp(0));
    // Far outside any clock: no panic either way.
    let _ = Timestamp(i64::MIN).to_system_time();
    let _ = Timestamp(i64::MAX).to_system_time();
    assert_eq!(Xid(7).to_string(), "7");
}

proptest! {
    #[test]
    fn lsn_display_parses_back(value in any::<u64>()) {
        let lsn = Lsn(value);
        prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
    }

    #[test]
    fn random_server_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = ServerMessage::decode(&Bytes::from(bytes));
    }

    #[test]
    fn random_lsn_text_never_panics(text in "\\PC{0,24}") {
        let _ = text.parse::<Lsn>();
    }
}
