//! Change data capture: the origin's committed changes, as the cache needs them.
//!
//! This module owns everything between the origin's logical replication slot
//! and the cache: the replication connection, decoding of the stream,
//! transaction assembly and applying changes to the row store. Today it holds
//! the pure part:
//!
//! - [`replication`]: the `CopyData` framing of a `START_REPLICATION` stream
//!   (`XLogData`, `Primary keepalive`, `Standby status update`).
//! - [`pgoutput`]: the decoder for the pgoutput plugin's messages (`Begin`,
//!   `Relation`, `Insert`, …, `Commit`).
//! - [`Lsn`], [`Xid`], [`Timestamp`]: the stream's positions, transaction ids
//!   and times as newtypes.
//!
//! The decoders never touch a socket and import no async runtime; they take
//! bytes and return values or a [`DecodeError`], never panicking on any input.
//! This module must never decide what a change means for a cached query
//! (that is the applier's job) nor guess at a value the stream did not send
//! (an unchanged TOASTed column stays [`pgoutput::ColumnValue::UnchangedToast`]).

pub mod apply;
mod error;
#[cfg(test)]
mod fixtures;
pub mod pgoutput;
mod reader;
pub mod replication;
mod stream;
#[cfg(test)]
mod tests;
mod wal;

pub use error::DecodeError;
pub use stream::{Target, run};
pub use wal::{Lsn, LsnParseError, Timestamp, Xid};
