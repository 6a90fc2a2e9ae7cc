//! Decoding pgoutput messages captured from PostgreSQL 15
//! (`tests/fixtures/pgoutput/*.hex`), field by field, and malformed bytes.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::catalog::oids;
use crate::cdc::fixtures::{self, fixture, hex};

/// Decodes every message of a fixture with one [`Decoder`].
fn decode_all(messages: &[Bytes]) -> Vec<LogicalMessage> {
    let mut decoder = Decoder::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            decoder
                .decode(bytes)
                .unwrap_or_else(|e| panic!("message {i}: {e}"))
        })
        .collect()
}

fn text(s: &str) -> ColumnValue {
    ColumnValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn binary(hex_digits: &str) -> ColumnValue {
    ColumnValue::Binary(Bytes::from(hex(hex_digits)))
}

fn tuple(columns: Vec<ColumnValue>) -> Tuple {
    Tuple { columns }
}

fn column(name: &str, type_oid: Oid, type_modifier: i32, part_of_key: bool) -> RelationColumn {
    RelationColumn {
        part_of_key,
        name: name.to_owned(),
        type_oid,
        type_modifier,
    }
}

fn begin(m: &LogicalMessage) -> &Begin {
    match m {
        LogicalMessage::Begin(b) => b,
        other => panic!("expected Begin, got {other:?}"),
    }
}

fn commit(m: &LogicalMessage) -> &Commit {
    match m {
        LogicalMessage::Commit(c) => c,
        other => panic!("expected Commit, got {other:?}"),
    }
}

fn relation(m: &LogicalMessage) -> &Relation {
    match m {
        LogicalMessage::Relation(r) => r,
        other => panic!("expected Relation, got {other:?}"),
    }
}

fn insert(m: &LogicalMessage) -> &Insert {
    match m {
        LogicalMessage::Insert(i) => i,
        other => panic!("expected Insert, got {other:?}"),
    }
}

fn update(m: &LogicalMessage) -> &Update {
    match m {
        LogicalMessage::Update(u) => u,
        other => panic!("expected Update, got {other:?}"),
    }
}

fn delete(m: &LogicalMessage) -> &Delete {
    match m {
        LogicalMessage::Delete(d) => d,
        other => panic!("expected Delete, got {other:?}"),
    }
}

fn truncate(m: &LogicalMessage) -> &Truncate {
    match m {
        LogicalMessage::Truncate(t) => t,
        other => panic!("expected Truncate, got {other:?}"),
    }
}

fn message(m: &LogicalMessage) -> &Message {
    match m {
        LogicalMessage::Message(m) => m,
        other => panic!("expected Message, got {other:?}"),
    }
}

/// Every transaction in the messages is `Begin … Commit` with matching LSNs
/// and times, later transactions at later positions.
fn assert_transactions_consistent(messages: &[LogicalMessage]) {
    let mut open: Option<&Begin> = None;
    let mut last_end = Lsn::INVALID;
    for m in messages {
        match m {
            LogicalMessage::Begin(b) => {
                assert!(open.is_none(), "nested Begin");
                assert!(
                    b.final_lsn > last_end,
                    "Begin before the previous commit end"
                );
                open = Some(b);
            }
            LogicalMessage::Commit(c) => {
                let b = open.take().expect("Commit without Begin");
                assert_eq!(b.final_lsn, c.commit_lsn);
                assert_eq!(b.commit_time, c.commit_time);
                assert!(c.end_lsn > c.commit_lsn);
                last_end = c.end_lsn;
            }
            _ => {}
        }
    }
    assert!(open.is_none(), "transaction without Commit");
}

/// The kinds table as pgoutput describes it; the enum column's type OID is
/// the one of the preceding Type message.
fn kinds_columns(mood: Oid) -> Vec<RelationColumn> {
    vec![
        column("id", oids::INT4, -1, true),
        column("t", oids::TEXT, -1, false),
        // numeric(10, 2): ((10 << 16) | 2) + VARHDRSZ
        column("n", Oid(1700), ((10 << 16) | 2) + 4, false),
        column("b", oids::BYTEA, -1, false),
        column("flag", oids::BOOL, -1, false),
        column("ts", oids::TIMESTAMPTZ, -1, false),
        column("j", Oid(3802), -1, false),
        column("arr", Oid(1007), -1, false),
        column("m", mood, -1, false),
    ]
}

#[test]
fn insert_with_text_tuples() {
    let m = decode_all(&fixture!("insert_text.hex"));
    assert_eq!(m.len(), 6);
    assert_transactions_consistent(&m);

    let b = begin(&m[0]);
    assert_eq!(b.final_lsn, "0/155ADF8".parse().unwrap());
    assert_eq!(b.xid, Xid(742));
    assert_eq!(commit(&m[5]).end_lsn, "0/155AE28".parse().unwrap());
    let committed = b.commit_time.to_system_time().unwrap();
    assert!(committed > UNIX_EPOCH + Duration::from_secs(1_704_067_200)); // after 2024

    let LogicalMessage::Type(mood) = &m[1] else {
        panic!("expected Type, got {:?}", m[1]);
    };
    assert_eq!(mood.xid, None);
    assert_eq!(mood.namespace, "public");
    assert_eq!(mood.name, "mood");
    assert_eq!(mood.oid, Oid(16386));

    let kinds = relation(&m[2]);
    assert_eq!(kinds.xid, None);
    assert_eq!(kinds.oid, Oid(16393));
    assert_eq!(kinds.namespace, "public");
    assert_eq!(kinds.name, "kinds");
    assert_eq!(kinds.replica_identity, ReplicaIdentity::Default);
    assert_eq!(kinds.columns, kinds_columns(mood.oid));

    let full = insert(&m[3]);
    assert_eq!(full.xid, None);
    assert_eq!(full.relation, kinds.oid);
    assert_eq!(
        full.new,
        tuple(vec![
            text("1"),
            text("héllo"),
            text("12345.67"),
            text("\\xdeadbeef"),
            text("t"),
            text("2024-02-29 12:34:56.789+00"),
            text(r#"{"a": [1, 2], "b": null}"#),
            text("{1,2,3}"),
            text("happy"),
        ])
    );

    let nulls = insert(&m[4]);
    assert_eq!(nulls.relation, kinds.oid);
    let mut expected = vec![text("2")];
    expected.extend(std::iter::repeat_n(ColumnValue::Null, 8));
    assert_eq!(nulls.new, tuple(expected));
}

#[test]
fn insert_with_binary_tuples() {
    let m = decode_all(&fixture!("insert_binary.hex"));
    assert_eq!(m.len(), 6);
    assert_transactions_consistent(&m);
    let LogicalMessage::Type(mood) = &m[1] else {
        panic!("expected Type, got {:?}", m[1]);
    };
    let kinds = relation(&m[2]);
    assert_eq!(kinds.columns, kinds_columns(mood.oid));

    let timestamp = Timestamp(762_525_296_789_000); // 2024-02-29 12:34:56.789 UTC
    assert_eq!(
        timestamp.to_system_time(),
        Some(UNIX_EPOCH + Duration::from_millis(1_709_210_096_789))
    );
    let row = insert(&m[3]);
    assert_eq!(row.relation, kinds.oid);
    assert_eq!(
        row.new,
        tuple(vec![
            binary("00000003"),
            ColumnValue::Binary(Bytes::from_static("héllo".as_bytes())),
            // numeric: 3 digits, weight 1, positive, scale 2: 1 2345 .6700
            binary("0003000100000002000109291a2c"),
            binary("deadbeef"),
            binary("01"),
            ColumnValue::Binary(Bytes::copy_from_slice(&timestamp.0.to_be_bytes())),
            // jsonb: version 1, then the text
            ColumnValue::Binary(Bytes::from_static(b"\x01{\"a\": [1, 2], \"b\": null}")),
            // int4[]: 1 dimension, no nulls, int4, 3 elements from 1, then each (len, value)
            binary(concat!(
                "00000001",
                "00000000",
                "00000017",
                "00000003",
                "00000001",
                "0000000400000001",
                "0000000400000002",
                "0000000400000003",
            )),
            // enum: its label
            ColumnValue::Binary(Bytes::from_static(b"happy")),
        ])
    );
    let mut expected = vec![binary("00000004")];
    expected.extend(std::iter::repeat_n(ColumnValue::Null, 8));
    assert_eq!(insert(&m[4]).new, tuple(expected));
}

#[test]
fn default_identity_sends_the_old_key_only_when_it_changes() {
    let m = decode_all(&fixture!("identity_default.hex"));
    assert_eq!(m.len(), 14);
    assert_transactions_consistent(&m);
    let accounts = relation(&m[1]);
    assert_eq!(accounts.namespace, "app");
    assert_eq!(accounts.name, "accounts");
    assert_eq!(accounts.replica_identity, ReplicaIdentity::Default);
    assert_eq!(
        accounts.columns,
        vec![
            column("id", oids::INT4, -1, true),
            column("owner", oids::TEXT, -1, false),
            column("balance", oids::INT8, -1, false),
        ]
    );
    assert_eq!(
        insert(&m[2]).new,
        tuple(vec![text("1"), text("alice"), text("100")])
    );
    assert_eq!(
        insert(&m[3]).new,
        tuple(vec![text("2"), text("bob"), text("50")])
    );

    // UPDATE … SET balance = 150 WHERE id = 1: the key did not change.
    let balance = update(&m[6]);
    assert_eq!(balance.relation, accounts.oid);
    assert_eq!(balance.old, None);
    assert_eq!(
        balance.new,
        tuple(vec![text("1"), text("alice"), text("150")])
    );

    // UPDATE … SET id = 10 WHERE id = 2: the old key, other columns null.
    let rekey = update(&m[9]);
    assert_eq!(
        rekey.old,
        Some(OldTuple::Key(tuple(vec![
            text("2"),
            ColumnValue::Null,
            ColumnValue::Null
        ])))
    );
    assert_eq!(rekey.new, tuple(vec![text("10"), text("bob"), text("50")]));

    let gone = delete(&m[12]);
    assert_eq!(gone.relation, accounts.oid);
    assert_eq!(
        gone.old,
        OldTuple::Key(tuple(vec![
            text("10"),
            ColumnValue::Null,
            ColumnValue::Null
        ]))
    );
    assert_eq!(gone.old.tuple().columns.len(), 3);
}

#[test]
fn full_identity_sends_the_whole_old_row() {
    let m = decode_all(&fixture!("identity_full.hex"));
    assert_eq!(m.len(), 11);
    assert_transactions_consistent(&m);
    let ledger = relation(&m[1]);
    assert_eq!(ledger.name, "ledger");
    assert_eq!(ledger.replica_identity, ReplicaIdentity::Full);
    assert_eq!(
        ledger.columns,
        vec![
            column("entry", oids::TEXT, -1, true),
            column("amount", Oid(1700), -1, true),
        ]
    );
    let coffee = update(&m[6]);
    assert_eq!(
        coffee.old,
        Some(OldTuple::Full(tuple(vec![text("coffee"), text("3.50")])))
    );
    assert_eq!(coffee.new, tuple(vec![text("coffee"), text("4.00")]));
    assert_eq!(
        delete(&m[9]).old,
        OldTuple::Full(tuple(vec![text("rent"), text("1200.00")]))
    );
}

#[test]
fn index_and_nothing_identities() {
    let m = decode_all(&fixture!("identity_index_nothing.hex"));
    assert_eq!(m.len(), 14);
    assert_transactions_consistent(&m);
    let devices = relation(&m[1]);
    assert_eq!(devices.replica_identity, ReplicaIdentity::Index);
    assert_eq!(
        devices.columns,
        vec![
            column("id", oids::INT4, -1, false),
            column("serial", oids::TEXT, -1, true),
            column("label", oids::TEXT, -1, false),
        ]
    );
    assert_eq!(
        insert(&m[2]).new,
        tuple(vec![text("1"), text("SN-001"), text("router")])
    );
    let relabel = update(&m[5]);
    assert_eq!(relabel.old, None);
    assert_eq!(
        relabel.new,
        tuple(vec![text("1"), text("SN-001"), text("core router")])
    );
    let reserial = update(&m[8]);
    assert_eq!(
        reserial.old,
        Some(OldTuple::Key(tuple(vec![
            ColumnValue::Null,
            text("SN-001"),
            ColumnValue::Null
        ])))
    );
    assert_eq!(
        reserial.new,
        tuple(vec![text("1"), text("SN-002"), text("core router")])
    );

    let events = relation(&m[11]);
    assert_eq!(events.name, "events");
    assert_eq!(events.replica_identity, ReplicaIdentity::Nothing);
    assert_eq!(
        events.columns,
        vec![column("payload", oids::TEXT, -1, false)]
    );
    assert_eq!(insert(&m[12]).new, tuple(vec![text("boot")]));
}

#[test]
fn unchanged_toast_value_is_marked_not_sent() {
    let m = decode_all(&fixture!("toast.hex"));
    assert_eq!(m.len(), 10);
    assert_transactions_consistent(&m);
    let docs = relation(&m[1]);
    assert_eq!(docs.name, "docs");
    let body = "abcdefghij".repeat(300);
    assert_eq!(
        insert(&m[2]).new,
        tuple(vec![text("1"), text(&body), text("1")])
    );
    let bump = update(&m[5]);
    assert_eq!(bump.relation, docs.oid);
    assert_eq!(bump.old, None);
    assert_eq!(
        bump.new,
        tuple(vec![text("1"), ColumnValue::UnchangedToast, text("2")])
    );
    assert_eq!(
        delete(&m[8]).old,
        OldTuple::Key(tuple(vec![text("1"), ColumnValue::Null, ColumnValue::Null]))
    );
}

#[test]
fn truncate_lists_every_table_with_its_options() {
    let m = decode_all(&fixture!("truncate.hex"));
    assert_eq!(m.len(), 15);
    assert_transactions_consistent(&m);
    let (parent, other, child) = (relation(&m[1]), relation(&m[2]), relation(&m[3]));
    assert_eq!(
        [&parent.name, &other.name, &child.name],
        ["parent", "other", "child"]
    );
    assert_eq!(
        other.columns,
        vec![
            column("id", oids::INT8, -1, false),
            column("note", oids::TEXT, -1, false),
        ]
    );

    // TRUNCATE parent, other RESTART IDENTITY CASCADE
    let first = truncate(&m[4]);
    assert_eq!(first.xid, None);
    assert!(first.cascade);
    assert!(first.restart_identity);
    assert_eq!(first.relations, vec![parent.oid, other.oid, child.oid]);

    // TRUNCATE other
    let second = truncate(&m[8]);
    assert!(!second.cascade);
    assert!(!second.restart_identity);
    assert_eq!(second.relations, vec![other.oid]);

    // TRUNCATE parent CASCADE
    let third = truncate(&m[13]);
    assert!(third.cascade);
    assert!(!third.restart_identity);
    assert_eq!(third.relations, vec![parent.oid, child.oid]);
}

#[test]
fn logical_decoding_messages() {
    let m = decode_all(&fixture!("message.hex"));
    assert_eq!(m.len(), 9);
    assert_transactions_consistent(&m);

    let inside = message(&m[3]);
    assert_eq!(inside.xid, None);
    assert!(inside.transactional);
    assert_eq!(inside.prefix, "pgcache");
    assert_eq!(inside.content, Bytes::from_static(b"transactional payload"));
    assert_eq!(inside.lsn, "0/1562B68".parse().unwrap());

    // Non-transactional: on its own, outside any Begin/Commit.
    assert!(matches!(m[4], LogicalMessage::Commit(_)));
    let alone = message(&m[5]);
    assert!(!alone.transactional);
    assert_eq!(
        alone.content,
        Bytes::from_static(b"non-transactional payload")
    );
    assert!(alone.lsn > commit(&m[4]).end_lsn);
    assert!(matches!(m[6], LogicalMessage::Begin(_)));

    let bytes = message(&m[7]);
    assert!(bytes.transactional);
    assert_eq!(bytes.prefix, "bin");
    assert_eq!(bytes.content, Bytes::from_static(b"\x00\xff"));
    assert_eq!(bytes.lsn, begin(&m[6]).final_lsn);
}

#[test]
fn origin_follows_begin() {
    let m = decode_all(&fixture!("origin.hex"));
    assert_eq!(m.len(), 5);
    assert_transactions_consistent(&m);
    let LogicalMessage::Origin(origin) = &m[1] else {
        panic!("expected Origin, got {:?}", m[1]);
    };
    assert_eq!(origin.name, "upstream");
    assert_eq!(origin.commit_lsn, Lsn(0xAABB_CCDD));
    // pg_replication_origin_xact_setup's timestamp becomes the commit time.
    assert_eq!(begin(&m[0]).commit_time, Timestamp(757_382_400_000_000));
    assert_eq!(
        begin(&m[0]).commit_time.to_system_time(),
        Some(UNIX_EPOCH + Duration::from_secs(1_704_067_200))
    );
    assert_eq!(insert(&m[3]).new, tuple(vec![text("from upstream")]));
}

#[test]
fn streamed_transactions_carry_their_xid() {
    let messages = fixture!("stream.hex");
    let m = decode_all(&messages);
    let tags: String = m.iter().map(|m| char::from(m.tag())).collect();
    assert_eq!(tags, "SRIIESIIESIIEASRIEcSRIIEABRIC");

    let top = Xid(768);
    let LogicalMessage::StreamStart(first) = &m[0] else {
        panic!("expected Stream Start, got {:?}", m[0]);
    };
    assert_eq!(
        *first,
        StreamStart {
            xid: top,
            first_segment: true
        }
    );
    let LogicalMessage::StreamStart(later) = &m[5] else {
        panic!("expected Stream Start, got {:?}", m[5]);
    };
    assert_eq!(
        *later,
        StreamStart {
            xid: top,
            first_segment: false
        }
    );

    let bulk = relation(&m[1]);
    assert_eq!(bulk.xid, Some(top));
    assert_eq!(bulk.name, "bulk");
    let row = insert(&m[2]);
    assert_eq!(row.xid, Some(top));
    assert_eq!(row.relation, bulk.oid);
    assert_eq!(row.new, tuple(vec![text("1"), text(&"x".repeat(500))]));

    // ROLLBACK TO SAVEPOINT: only the subtransaction is discarded.
    let LogicalMessage::StreamAbort(sub) = &m[13] else {
        panic!("expected Stream Abort, got {:?}", m[13]);
    };
    assert_eq!(
        *sub,
        StreamAbort {
            xid: top,
            subxid: Xid(769),
            abort: None
        }
    );
    assert_eq!(insert(&m[16]).new, tuple(vec![text("0"), text("after")]));

    let LogicalMessage::StreamCommit(done) = &m[18] else {
        panic!("expected Stream Commit, got {:?}", m[18]);
    };
    assert_eq!(done.xid, top);
    assert_eq!(done.commit_lsn, "0/159A9E0".parse().unwrap());
    assert_eq!(done.end_lsn, "0/159AA18".parse().unwrap());

    // The rolled-back transaction: aborted as a whole.
    let LogicalMessage::StreamAbort(whole) = &m[24] else {
        panic!("expected Stream Abort, got {:?}", m[24]);
    };
    assert_eq!(whole.xid, Xid(771));
    assert_eq!(whole.subxid, whole.xid);

    // A small transaction is not streamed, even under protocol 2.
    assert_eq!(insert(&m[27]).xid, None);
    assert_transactions_consistent(&m[25..]);
}

#[test]
fn decoder_rejects_stream_messages_out_of_order() {
    let messages = fixture!("stream.hex");
    let (start, stop, insert) = (&messages[0], &messages[4], &messages[2]);
    let mut decoder = Decoder::new();
    assert_eq!(
        decoder.decode(stop),
        Err(DecodeError::StreamOrder {
            tag: b'E',
            in_stream: false
        })
    );
    decoder.decode(start).unwrap();
    assert!(decoder.in_stream());
    assert_eq!(
        decoder.decode(start),
        Err(DecodeError::StreamOrder {
            tag: b'S',
            in_stream: true
        })
    );
    let begin = &fixture!("insert_text.hex")[0];
    assert!(matches!(
        decoder.decode(begin),
        Err(DecodeError::StreamOrder { tag: b'B', .. })
    ));
    assert!(
        decoder.in_stream(),
        "a refused message leaves the state alone"
    );
    decoder.decode(insert).unwrap();
    assert_eq!(decoder.decode(stop), Ok(LogicalMessage::StreamStop));
    assert!(!decoder.in_stream());
    // Outside a block, the streamed insert's Xid would be read as its
    // relation, and the relation's first byte as the tuple kind.
    assert!(decode(insert).is_err());
}

#[test]
fn stream_abort_with_parallel_streaming_fields() {
    let bytes = Bytes::from(hex("41000003000000030100000000015b6750000303ccf087f7a2"));
    assert_eq!(
        decode(&bytes),
        Ok(LogicalMessage::StreamAbort(StreamAbort {
            xid: Xid(768),
            subxid: Xid(769),
            abort: Some((Lsn(0x015B_6750), Timestamp(0x0003_03cc_f087_f7a2))),
        }))
    );
}

#[test]
fn every_truncation_of_every_fixture_is_an_error() {
    for (name, messages) in fixtures::all() {
        let mut decoder = Decoder::new();
        for (i, bytes) in messages.iter().enumerate() {
            for len in 0..bytes.len() {
                let short = bytes.slice(..len);
                assert!(
                    decoder.clone().decode(&short).is_err(),
                    "{name} message {i} truncated to {len} bytes decoded"
                );
            }
            decoder.decode(bytes).unwrap();
        }
    }
}

#[test]
fn a_byte_more_is_an_error() {
    for (name, messages) in fixtures::all() {
        let mut decoder = Decoder::new();
        for (i, bytes) in messages.iter().enumerate() {
            let mut long = bytes.to_vec();
            long.push(0);
            let err = decoder.clone().decode(&Bytes::from(long));
            // (A Stream Abort reads it as the start of its optional fields.)
            assert!(err.is_err(), "{name} message {i} with a byte more decoded");
            decoder.decode(bytes).unwrap();
        }
    }
}

#[test]
fn malformed_messages_name_what_is_wrong() {
    let cases: &[(&str, DecodeError)] = &[
        (
            "",
            DecodeError::Truncated {
                what: "message type",
                needed: 1,
                remaining: 0,
            },
        ),
        ("5a", DecodeError::UnknownTag(b'Z')),
        ("50", DecodeError::Unsupported(b'P')),
        ("62", DecodeError::Unsupported(b'b')),
        (
            "43010000000000000000000000000000000000000000000000",
            DecodeError::InvalidFlags {
                what: "Commit flags",
                flags: 1,
            },
        ),
        (
            "42000000000155adf8000303ccf072dd3a000002e600",
            DecodeError::TrailingBytes {
                tag: b'B',
                extra: 1,
            },
        ),
        (
            // Relation with replica identity 'x'
            "52000040096e7300740078",
            DecodeError::InvalidByte {
                what: "Relation replica identity",
                byte: b'x',
            },
        ),
        (
            // Relation column flags 2
            "52000040096e73007400640001027800000000170000000000",
            DecodeError::InvalidFlags {
                what: "Relation column flags",
                flags: 2,
            },
        ),
        (
            // Relation name without its NUL
            "52000040096e730074",
            DecodeError::Unterminated {
                what: "Relation name",
            },
        ),
        (
            // Relation name not UTF-8
            "52000040096e7300ff00640000",
            DecodeError::InvalidUtf8 {
                what: "Relation name",
            },
        ),
        (
            // Insert with tuple kind 'K'
            "49000040094b0000",
            DecodeError::InvalidByte {
                what: "Insert tuple kind",
                byte: b'K',
            },
        ),
        (
            // Insert whose column kind is 'x'
            "49000040094e000178",
            DecodeError::InvalidByte {
                what: "TupleData column kind",
                byte: b'x',
            },
        ),
        (
            // Update with 'K' old key but no 'N' after it
            "55000040094b00006e",
            DecodeError::InvalidByte {
                what: "Update new tuple kind",
                byte: b'n',
            },
        ),
        (
            // Delete with a 'N' tuple
            "44000040094e0000",
            DecodeError::InvalidByte {
                what: "Delete tuple kind",
                byte: b'N',
            },
        ),
        (
            // Truncate with option bit 4
            "54000000000400",
            DecodeError::InvalidFlags {
                what: "Truncate options",
                flags: 4,
            },
        ),
        (
            // Message with flags 2
            "4d02",
            DecodeError::InvalidByte {
                what: "Message flags",
                byte: 2,
            },
        ),
        (
            // Stream Start with first-segment flag 2
            "530000030002",
            DecodeError::InvalidByte {
                what: "Stream Start first-segment flag",
                byte: 2,
            },
        ),
        (
            // Text value claiming 4 GiB
            "49000040094e000174ffffffff",
            DecodeError::Truncated {
                what: "TupleData text value",
                needed: 0xFFFF_FFFF,
                remaining: 0,
            },
        ),
        (
            // Truncate claiming 4 billion relations: no huge allocation first
            "54ffffffff0000004009",
            DecodeError::Truncated {
                what: "Truncate relation OID",
                needed: 4,
                remaining: 0,
            },
        ),
    ];
    for (input, expected) in cases {
        let got = decode(&Bytes::from(hex(input)));
        assert_eq!(got.as_ref(), Err(expected), "input {input}");
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn errors_display_the_field_and_the_byte() {
    let err = decode(&Bytes::from(hex("49000040094e000178"))).unwrap_err();
    assert_eq!(err.to_string(), "invalid TupleData column kind 'x'");
    let err = decode(&Bytes::from(hex("49000040"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "message truncated at Insert relation OID: needs 4 bytes, 3 left"
    );
    assert_eq!(
        DecodeError::Unsupported(b'P').to_string(),
        "unsupported pgoutput message type 'P' (two-phase commit is not requested)"
    );
}

/// Every fixture message, for mutation tests.
fn fixture_messages() -> Vec<Bytes> {
    fixtures::all()
        .into_iter()
        .flat_map(|(_, messages)| messages)
        .collect()
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let bytes = Bytes::from(bytes);
        let _ = decode(&bytes);
        let mut decoder = Decoder::new();
        let _ = decoder.decode(&Bytes::from_static(b"S\0\0\0\x01\x01"));
        let _ = decoder.decode(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_tag_never_panic(
        tag in proptest::sample::select(b"BCORYIUDTMSEcAbPKrp".to_vec()),
        body in proptest::collection::vec(any::<u8>(), 0..128),
        in_stream in any::<bool>(),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(body);
        let _ = decode_message(&Bytes::from(bytes), in_stream);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in any::<proptest::sample::Index>(),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        in_stream in any::<bool>(),
    ) {
        let messages = fixture_messages();
        let mut bytes = index.get(&messages).to_vec();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let _ = decode_message(&Bytes::from(bytes), in_stream);
    }
}
