//! Fuzz target `pgoutput`: the pgoutput decoder and the replication-stream
//! framing must return a value or an error for any bytes, never panic.
//!
//! Run with `cargo fuzz run pgoutput` from the repository root. A good seed
//! corpus is the captured messages, one file each:
//! `tests/fixtures/pgoutput/*.hex` (one hex message per non-comment line).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pgcache::cdc::pgoutput::{self, Decoder};
use pgcache::cdc::replication::ServerMessage;

fuzz_target!(|data: &[u8]| {
    let whole = Bytes::copy_from_slice(data);
    let _ = pgoutput::decode(&whole);
    if let Ok(ServerMessage::XLogData(x)) = ServerMessage::decode(&whole) {
        let _ = pgoutput::decode(&x.data);
    }

    // The same bytes as a sequence of messages, each prefixed by a one-byte
    // length, through one stateful decoder (reaches the streamed-block rules).
    let mut decoder = Decoder::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (message, next) = tail.split_at(usize::from(len).min(tail.len()));
        let _ = decoder.decode(&Bytes::copy_from_slice(message));
        rest = next;
    }
});
